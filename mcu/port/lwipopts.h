/* lwipopts.h - lwIP's configuration for the microcontroller agent and its example firmware:
 * NO_SYS=1 (no OS, raw API, one thread), static pools only (no malloc), IPv4 and TCP over
 * Ethernet. Shared by the Cortex-M firmware (mcu/port/mps2) and the user-space test build
 * (mcu/port/unix), so the agent runs on the same lwIP configuration in both. Sizes are chosen
 * for two streams of 1 KiB windows: see docs/mcu.md. */
#ifndef TT_MCU_LWIPOPTS_H
#define TT_MCU_LWIPOPTS_H

#define NO_SYS 1
#define SYS_LIGHTWEIGHT_PROT 0 /* one thread; interrupts only set flags (mps2 port) */
#define LWIP_SOCKET 0
#define LWIP_NETCONN 0
#define LWIP_NETIF_API 0

#define LWIP_IPV4 1
#define LWIP_IPV6 0
#define LWIP_ARP 1
#define LWIP_ETHERNET 1
#define LWIP_ICMP 1
#define LWIP_RAW 0
#define LWIP_TCP 1
#define LWIP_DHCP 0
#define LWIP_AUTOIP 0
#define LWIP_IGMP 0
/* Name resolution: define TT_MCU_DNS=1 to resolve the relay's name with lwIP's DNS client
 * (needs UDP); the example firmware names its relay by address. */
#ifndef TT_MCU_DNS
#define TT_MCU_DNS 0
#endif
#define LWIP_DNS TT_MCU_DNS
#define LWIP_UDP TT_MCU_DNS

/* Memory: lwIP's own static heap (ram_heap) and pools; no libc malloc. */
#define MEM_LIBC_MALLOC 0
#define MEMP_MEM_MALLOC 0
#define MEM_ALIGNMENT __SIZEOF_POINTER__ /* 4 on a Cortex-M, 8 in the 64-bit test build */
#define MEM_SIZE (10 * 1024)             /* PBUF_RAM: outgoing segments (tcp_write copies here) */
#define MEMP_NUM_PBUF 8
#define MEMP_NUM_TCP_PCB 6 /* the relay connection, and closed ones in TIME-WAIT */
#define MEMP_NUM_TCP_PCB_LISTEN 1
#define MEMP_NUM_TCP_SEG 24
#define MEMP_NUM_SYS_TIMEOUT 8 /* lwIP's own timers and the agent's tick */
#define PBUF_POOL_SIZE 10      /* received frames */
#define PBUF_POOL_BUFSIZE 1536

#define TCP_MSS 1460
#define TCP_WND (4 * TCP_MSS)
#define TCP_SND_BUF (4 * TCP_MSS)
#define TCP_SND_QUEUELEN 20
#define TCP_QUEUE_OOSEQ 0
#define TCP_OVERSIZE TCP_MSS
#define LWIP_TCP_KEEPALIVE 0
#define ARP_TABLE_SIZE 4
#define ARP_QUEUEING 1

#define LWIP_NETIF_LINK_CALLBACK 0
#define LWIP_NETIF_STATUS_CALLBACK 0
#define LWIP_NETIF_LOOPBACK 0
#define LWIP_HAVE_LOOPIF 0
#define LWIP_CHECKSUM_ON_COPY 0
#define LWIP_STATS 0
#define LWIP_SINGLE_NETIF 1

/* Initial sequence numbers and local ports from the port's random source. */
#define LWIP_RANDOMIZE_INITIAL_LOCAL_PORTS 1
unsigned int tt_port_rand32(void);
#define LWIP_RAND() tt_port_rand32()

#endif
