/* lan9118.c - the LAN9118 netif driver (lan9118.h), from the datasheet's register map.
 *
 * Transmit: for each frame, TX command A (first and last segment, buffer size), TX command B
 * (packet tag and length), then the frame as little-endian 32-bit words into the TX data FIFO.
 * Receive: while RX_FIFO_INF counts a status word, pop it from the RX status FIFO; it holds the
 * frame's length including the 4-byte FCS; read that many bytes, rounded up to words, from the RX
 * data FIFO and give lwIP the frame without its FCS. Transmit status words are drained and not
 * looked at (lwIP's TCP retransmits whatever a wire loses). */
#include "lan9118.h"

#include <string.h>

#include "lwip/pbuf.h"
#include "netif/etharp.h"

/* Registers (offsets from the base). */
#define RX_DATA_FIFO 0x00
#define TX_DATA_FIFO 0x20
#define RX_STATUS_FIFO 0x40
#define TX_STATUS_FIFO 0x48
#define ID_REV 0x50
#define INT_EN 0x5C
#define BYTE_TEST 0x64
#define TX_CFG 0x70
#define HW_CFG 0x74
#define RX_FIFO_INF 0x7C
#define TX_FIFO_INF 0x80
#define PMT_CTRL 0x84
#define MAC_CSR_CMD 0xA4
#define MAC_CSR_DATA 0xA8

#define BYTE_TEST_VALUE 0x87654321u
#define HW_CFG_SRST (1u << 0)
#define PMT_CTRL_READY (1u << 0)
#define TX_CFG_TX_ON (1u << 1)
#define TX_CFG_TXSAO (1u << 2) /* TX status FIFO may overrun: statuses are not needed */
#define CSR_BUSY (1u << 31)
#define CSR_READ (1u << 30)

/* MAC CSRs (through MAC_CSR_CMD). */
#define MAC_CR 1
#define MAC_ADDRH 2
#define MAC_ADDRL 3
#define MAC_CR_RXEN (1u << 2)
#define MAC_CR_TXEN (1u << 3)
#define MAC_CR_FDPX (1u << 20)

/* TX command A: first segment, last segment, buffer size; command B: tag and packet length. */
#define TXA_FIRST (1u << 13)
#define TXA_LAST (1u << 12)
#define RXS_ERROR (1u << 15)
#define RXS_LEN(s) (((s) >> 16) & 0x3FFFu)

#define FRAME_MAX 1518 /* without the FCS */
#define SPIN_MAX 100000

static uint32_t frame[(FRAME_MAX + 4 + 3) / 4]; /* one frame in or out, word-aligned */
static uint32_t dropped;
static uint16_t tx_tag;

static inline volatile uint32_t *reg(const struct netif *nif, uint32_t off)
{
    return (volatile uint32_t *)((uintptr_t)nif->state + off);
}

static int csr_wait(const struct netif *nif)
{
    int i;

    for (i = 0; i < SPIN_MAX; i++)
        if ((*reg(nif, MAC_CSR_CMD) & CSR_BUSY) == 0)
            return 0;
    return -1;
}

static uint32_t mac_read(const struct netif *nif, uint32_t csr)
{
    if (csr_wait(nif) != 0)
        return 0;
    *reg(nif, MAC_CSR_CMD) = CSR_BUSY | CSR_READ | csr;
    if (csr_wait(nif) != 0)
        return 0;
    return *reg(nif, MAC_CSR_DATA);
}

static void mac_write(const struct netif *nif, uint32_t csr, uint32_t v)
{
    if (csr_wait(nif) != 0)
        return;
    *reg(nif, MAC_CSR_DATA) = v;
    *reg(nif, MAC_CSR_CMD) = CSR_BUSY | csr;
    (void)csr_wait(nif);
}

static err_t lan_output(struct netif *nif, struct pbuf *p)
{
    uint16_t len = p->tot_len;
    uint32_t words = (len + 3u) / 4u, i;
    int spin;

    if (len == 0 || len > FRAME_MAX)
        return ERR_BUF;
    /* Room in the TX data FIFO for both command words and the frame (TDFREE, bytes). */
    for (spin = 0; (*reg(nif, TX_FIFO_INF) & 0xFFFFu) < words * 4u + 8u; spin++)
        if (spin >= SPIN_MAX)
            return ERR_IF;
    frame[words - 1] = 0;
    pbuf_copy_partial(p, frame, len, 0);
    tx_tag++;
    *reg(nif, TX_DATA_FIFO) = TXA_FIRST | TXA_LAST | len;
    *reg(nif, TX_DATA_FIFO) = (uint32_t)tx_tag << 16 | len;
    for (i = 0; i < words; i++)
        *reg(nif, TX_DATA_FIFO) = frame[i];
    while ((*reg(nif, TX_FIFO_INF) >> 16) & 0xFFu)
        (void)*reg(nif, TX_STATUS_FIFO);
    return ERR_OK;
}

bool tt_lan9118_pending(const struct netif *nif)
{
    return ((*reg(nif, RX_FIFO_INF) >> 16) & 0xFFu) != 0;
}

uint32_t tt_lan9118_dropped(void)
{
    return dropped;
}

void tt_lan9118_poll(struct netif *nif)
{
    uint32_t status, len, words, i;
    struct pbuf *p;
    int budget = 32; /* frames per call: timers get their turn under a flood */

    while (budget-- > 0 && tt_lan9118_pending(nif)) {
        status = *reg(nif, RX_STATUS_FIFO);
        len = RXS_LEN(status);
        words = (len + 3u) / 4u;
        if ((status & RXS_ERROR) || len < 14u + 4u || len > FRAME_MAX + 4u) {
            for (i = 0; i < words; i++) /* drain it */
                (void)*reg(nif, RX_DATA_FIFO);
            dropped++;
            continue;
        }
        for (i = 0; i < words; i++)
            frame[i] = *reg(nif, RX_DATA_FIFO);
        len -= 4; /* the FCS */
        p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_POOL);
        if (p == NULL) {
            dropped++;
            continue;
        }
        pbuf_take(p, frame, (u16_t)len);
        if (nif->input(p, nif) != ERR_OK) {
            pbuf_free(p);
            dropped++;
        }
    }
}

err_t tt_lan9118_init(struct netif *nif)
{
    uint32_t lo, hi;
    int spin;

    if (*reg(nif, BYTE_TEST) != BYTE_TEST_VALUE)
        return ERR_IF;
    *reg(nif, HW_CFG) = HW_CFG_SRST;
    for (spin = 0; spin < SPIN_MAX && (*reg(nif, HW_CFG) & HW_CFG_SRST); spin++)
        ;
    for (spin = 0; spin < SPIN_MAX && !(*reg(nif, PMT_CTRL) & PMT_CTRL_READY); spin++)
        ;
    *reg(nif, INT_EN) = 0;
    /* The MAC address the controller loaded (from its EEPROM; QEMU's -nic mac=). */
    lo = mac_read(nif, MAC_ADDRL);
    hi = mac_read(nif, MAC_ADDRH);
    nif->hwaddr[0] = (uint8_t)lo;
    nif->hwaddr[1] = (uint8_t)(lo >> 8);
    nif->hwaddr[2] = (uint8_t)(lo >> 16);
    nif->hwaddr[3] = (uint8_t)(lo >> 24);
    nif->hwaddr[4] = (uint8_t)hi;
    nif->hwaddr[5] = (uint8_t)(hi >> 8);
    if ((nif->hwaddr[0] & 1) || (lo == 0 && (hi & 0xFFFFu) == 0)) {
        /* None (or a multicast one): a locally administered address of our own. */
        static const uint8_t mine[6] = {0x02, 0x00, 0x74, 0x74, 0x6d, 0x02};
        memcpy(nif->hwaddr, mine, 6);
        mac_write(nif, MAC_ADDRL,
                  (uint32_t)mine[3] << 24 | (uint32_t)mine[2] << 16 | (uint32_t)mine[1] << 8 |
                      mine[0]);
        mac_write(nif, MAC_ADDRH, (uint32_t)mine[5] << 8 | mine[4]);
    }
    /* Exact-match unicast and broadcast (not promiscuous), full duplex. */
    mac_write(nif, MAC_CR, MAC_CR_RXEN | MAC_CR_TXEN | MAC_CR_FDPX);
    *reg(nif, TX_CFG) = TX_CFG_TX_ON | TX_CFG_TXSAO;
    (void)*reg(nif, ID_REV);

    nif->name[0] = 'e';
    nif->name[1] = 'n';
    nif->output = etharp_output;
    nif->linkoutput = lan_output;
    nif->mtu = 1500;
    nif->hwaddr_len = 6;
    nif->flags =
        NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET | NETIF_FLAG_LINK_UP;
    return ERR_OK;
}
