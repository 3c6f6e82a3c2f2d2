/* main.c - the example firmware on the Arm MPS2 AN385 board (Cortex-M3, LAN9118 Ethernet), as
 * QEMU's mps2-an385 emulates it: the board's side of port.h (console on UART0, a millisecond
 * clock from SysTick, the device key in a flash sector, random bytes), lwIP (NO_SYS=1) on the
 * LAN9118 driver, and the main loop of a bare-metal firmware: poll the controller, run lwIP's
 * timers, sleep (WFI) until the next SysTick when nothing is waiting.
 *
 * The board's network and relay settings come from its configuration sector (mps2.ld): text
 * lines "key=value" after a first line "tether-mcu-config 1", ended by a NUL or the sector's
 * end; keys ip (A.B.C.D/PREFIX), gw, relay (A.B.C.D), port, name, token, seed (hex, mixed into
 * the random generator), ping_after, dead_after, backoff, backoff_cap, connect_timeout (ms).
 * Without a valid sector the firmware prints that and stops. The QEMU test writes the sector
 * with -device loader; a product writes it at provisioning. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "lwip/init.h"
#include "lwip/ip4_addr.h"
#include "lwip/netif.h"
#include "lwip/timeouts.h"
#include "netif/ethernet.h"

#include "app.h"
#include "board.h"
#include "lan9118.h"
#include "port.h"
#include "tether_mcu.h"

#define REG32(a) (*(volatile uint32_t *)(uintptr_t)(a))

/* ---- console: CMSDK APB UART ------------------------------------------------------------------
 */

#define UART_DATA 0x00
#define UART_STATE 0x04
#define UART_CTRL 0x08
#define UART_BAUDDIV 0x10
#define UART_STATE_TXFULL 1u
#define UART_CTRL_TXEN 1u

static void uart_init(void)
{
    REG32(TT_BOARD_UART0 + UART_BAUDDIV) = TT_BOARD_CPU_HZ / 115200u;
    REG32(TT_BOARD_UART0 + UART_CTRL) = UART_CTRL_TXEN;
}

void tt_port_print(const char *s)
{
    for (; *s != '\0'; s++) {
        while (REG32(TT_BOARD_UART0 + UART_STATE) & UART_STATE_TXFULL)
            ;
        REG32(TT_BOARD_UART0 + UART_DATA) = (uint8_t)*s;
    }
}

void tt_port_panic(const char *what)
{
    tt_port_print("panic: ");
    tt_port_print(what);
    tt_port_print("\n");
    for (;;)
        __asm volatile("wfi");
}

/* ---- time: SysTick, 1 ms ----------------------------------------------------------------------
 */

#define SYST_CSR 0xE000E010u
#define SYST_RVR 0xE000E014u
#define SYST_CVR 0xE000E018u

static volatile uint32_t ticks;

void tt_board_systick(void)
{
    ticks++;
}

static void systick_init(void)
{
    REG32(SYST_RVR) = TT_BOARD_CPU_HZ / 1000u - 1u;
    REG32(SYST_CVR) = 0;
    REG32(SYST_CSR) = 7; /* processor clock, interrupt, enable */
}

uint32_t tt_port_now_ms(void)
{
    return ticks;
}

u32_t sys_now(void)
{
    return ticks;
}

/* ---- stack high-water mark --------------------------------------------------------------------
 */

#define STACK_PAINT 0xA5A5A5A5u
extern uint32_t tt_stack_bottom[], tt_stack_top[];

void tt_board_stack_paint(void)
{
    uint32_t *p = tt_stack_bottom, *sp;

    __asm volatile("mov %0, sp" : "=r"(sp));
    while (p < sp - 16) /* what the reset handler's own frame uses, and a margin */
        *p++ = STACK_PAINT;
}

uint32_t tt_board_stack_peak(void)
{
    uint32_t *p = tt_stack_bottom;

    while (p < tt_stack_top && *p == STACK_PAINT)
        p++;
    return (uint32_t)((char *)tt_stack_top - (char *)p);
}

static void stack_report(void)
{
    static uint32_t reported, last;
    uint32_t peak;
    char d[12];
    int n = 0;

    if ((uint32_t)(ticks - last) < 1000)
        return;
    last = ticks;
    peak = tt_board_stack_peak();
    if (peak <= reported)
        return;
    reported = peak;
    do {
        d[n++] = (char)('0' + peak % 10);
        peak /= 10;
    } while (peak != 0);
    tt_port_print("stack: peak ");
    while (n > 0) {
        char c[2] = {d[--n], 0};
        tt_port_print(c);
    }
    tt_port_print(" bytes\n");
}

/* ---- random bytes ------------------------------------------------------------------------------
 * The AN385 has no random number generator. This generator (xorshift128+) is seeded from the
 * configuration sector's seed and stirred with the SysTick counter's value at every call: good
 * enough for WebSocket masks, back-off jitter and TCP ports in a test, NOT for a product, which
 * must feed tt_port_random from its hardware TRNG (docs/mcu.md, "Porting"). The agent itself
 * generates no secrets: the device key comes from the relay. */
static uint64_t rs[2] = {0x9E3779B97F4A7C15ull, 0xD1B54A32D192ED03ull};

static uint64_t next64(void)
{
    uint64_t x = rs[0], y = rs[1];

    rs[0] = y;
    x ^= x << 23;
    rs[1] = x ^ y ^ (x >> 17) ^ (y >> 26);
    return rs[1] + y;
}

void tt_port_random(uint8_t *out, size_t n)
{
    uint64_t v = 0;
    size_t i;

    rs[0] ^= REG32(SYST_CVR) ^ ((uint64_t)ticks << 32);
    for (i = 0; i < n; i++) {
        if (i % 8 == 0)
            v = next64();
        out[i] = (uint8_t)(v >> (8 * (i % 8)));
    }
}

unsigned int tt_port_rand32(void)
{
    uint8_t b[4];

    tt_port_random(b, sizeof b);
    return (unsigned int)b[0] | (unsigned int)b[1] << 8 | (unsigned int)b[2] << 16 |
           (unsigned int)b[3] << 24;
}

/* ---- the device key in its flash sector ------------------------------------------------------
 * Layout: "TTK1", then the 64 hex digits. On QEMU the sector is RAM: the tests save it through
 * QEMU's monitor when they stop a board and load it into the next one (-device loader), as flash
 * would keep it across a power cycle. A product erases and programs its flash here (and keeps
 * two copies if a power cut during the write must not lose the key). */
extern uint8_t tt_key_sector[];
extern const char tt_config_sector[];
#define KEY_MAGIC "TTK1"

size_t tt_port_key_load(char *out, size_t cap)
{
    if (cap < TETHER_MCU_KEY_LEN || memcmp(tt_key_sector, KEY_MAGIC, 4) != 0)
        return 0;
    memcpy(out, tt_key_sector + 4, TETHER_MCU_KEY_LEN);
    return TETHER_MCU_KEY_LEN;
}

int tt_port_key_store(const char *key, size_t len)
{
    if (len != TETHER_MCU_KEY_LEN)
        return -1;
    memcpy(tt_key_sector + 4, key, len); /* the key first, the magic last: a torn write is no key */
    memcpy(tt_key_sector, KEY_MAGIC, 4);
    return 0;
}

/* ---- the configuration sector -----------------------------------------------------------------
 */

#define CONFIG_SECTOR_SIZE 4096
#define CONFIG_MAGIC "tether-mcu-config 1\n"

static char cfg_ip[20], cfg_gw[16], cfg_relay[16], cfg_name[65], cfg_token[257];
static struct tether_mcu_config cfg;

static uint32_t parse_u32(const char *p, size_t n, int base)
{
    uint32_t v = 0;
    size_t i;
    int d;

    for (i = 0; i < n; i++) {
        char c = p[i];
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (base == 16 && c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else
            break;
        v = v * (uint32_t)base + (uint32_t)d;
    }
    return v;
}

static void set_str(char *dst, size_t cap, const char *p, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, p, n);
    dst[n] = '\0';
}

static bool config_load(void)
{
    const char *p = tt_config_sector, *end = tt_config_sector + CONFIG_SECTOR_SIZE;
    size_t ml = sizeof CONFIG_MAGIC - 1;

    if (memcmp(p, CONFIG_MAGIC, ml) != 0)
        return false;
    p += ml;
    while (p < end && *p != '\0') {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *eq;
        const char *le = nl ? nl : end;
        size_t kl, vl;

        eq = memchr(p, '=', (size_t)(le - p));
        if (eq != NULL) {
            const char *v = eq + 1;
            kl = (size_t)(eq - p);
            vl = (size_t)(le - v);
#define KEY(k) (kl == sizeof(k) - 1 && memcmp(p, k, kl) == 0)
            if (KEY("ip"))
                set_str(cfg_ip, sizeof cfg_ip, v, vl);
            else if (KEY("gw"))
                set_str(cfg_gw, sizeof cfg_gw, v, vl);
            else if (KEY("relay"))
                set_str(cfg_relay, sizeof cfg_relay, v, vl);
            else if (KEY("name"))
                set_str(cfg_name, sizeof cfg_name, v, vl);
            else if (KEY("token"))
                set_str(cfg_token, sizeof cfg_token, v, vl);
            else if (KEY("port"))
                cfg.port = (uint16_t)parse_u32(v, vl, 10);
            else if (KEY("seed"))
                for (size_t i = 0; i + 16 <= vl && i < 32; i += 16)
                    rs[i / 16] ^=
                        (uint64_t)parse_u32(v + i, 8, 16) << 32 | parse_u32(v + i + 8, 8, 16);
            else if (KEY("ping_after"))
                cfg.ping_after_ms = parse_u32(v, vl, 10);
            else if (KEY("dead_after"))
                cfg.dead_after_ms = parse_u32(v, vl, 10);
            else if (KEY("backoff"))
                cfg.backoff_base_ms = parse_u32(v, vl, 10);
            else if (KEY("backoff_cap"))
                cfg.backoff_cap_ms = parse_u32(v, vl, 10);
            else if (KEY("connect_timeout"))
                cfg.connect_timeout_ms = parse_u32(v, vl, 10);
#undef KEY
        }
        p = nl ? nl + 1 : end;
    }
    cfg.host = cfg_relay;
    cfg.name = cfg_name;
    cfg.token = cfg_token;
    cfg.services = tt_app_services;
    cfg.nservices = 2;
    return cfg_ip[0] != '\0' && cfg_relay[0] != '\0' && cfg_name[0] != '\0';
}

/* ---- main -------------------------------------------------------------------------------------
 */

/* The agent (its RAM is reported by make mcu as the agent's, not the board's). */
struct tether_mcu tt_fw_agent;
static struct netif nif;

int main(void)
{
    ip4_addr_t addr, mask, gw;
    unsigned prefix = 24;
    char *slash;

    uart_init();
    systick_init();
    tt_port_print("tether-mcu: mps2-an385 firmware\n");
    if (!config_load())
        tt_port_panic("no configuration sector (ip, relay, name)");
    if ((slash = strchr(cfg_ip, '/')) != NULL) {
        *slash = '\0';
        prefix = parse_u32(slash + 1, strlen(slash + 1), 10);
    }
    if (prefix > 32 || !ip4addr_aton(cfg_ip, &addr) || !ip4addr_aton(cfg_gw, &gw))
        tt_port_panic("bad ip or gw in the configuration sector");
    ip4_addr_set_u32(&mask, prefix ? lwip_htonl(0xffffffffu << (32 - prefix)) : 0);

    lwip_init();
    if (netif_add(&nif, &addr, &mask, &gw, (void *)(uintptr_t)TT_BOARD_LAN9118, tt_lan9118_init,
                  ethernet_input) == NULL)
        tt_port_panic("no LAN9118");
    netif_set_default(&nif);
    netif_set_up(&nif);
    if (tether_mcu_init(&tt_fw_agent, &cfg, &tt_app_callbacks, NULL) != 0)
        tt_port_panic("bad name, token or services");
    tt_port_print("tether-mcu: network up, connecting\n");
    tether_mcu_start(&tt_fw_agent);
    for (;;) {
        tt_lan9118_poll(&nif);
        sys_check_timeouts();
        stack_report(); /* once a second, when the peak grew */
        if (!tt_lan9118_pending(&nif))
            __asm volatile("wfi"); /* until the next SysTick (1 ms) */
    }
}
