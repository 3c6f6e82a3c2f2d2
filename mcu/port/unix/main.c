/* main.c - the user-space port of the example firmware (make mcu-test): the same agent and
 * application as the Cortex-M build, on lwIP (NO_SYS=1) in one Linux process whose "Ethernet"
 * is a TAP device (/dev/net/tun): frames read from it go to lwIP's netif, lwIP's frames are
 * written to it. The main loop is a firmware's: poll the interface, run lwIP's timers. Also the
 * port's services (port.h): console on stdout, random bytes from getrandom(), the device key in
 * a file, written atomically. Not part of the firmware.
 *
 * Usage: tether-mcu-host --tap IFNAME --ip A.B.C.D/PREFIX --gw A.B.C.D --host RELAY-IP
 *        --port PORT --name NAME --token TOKEN [--key-file FILE] [--path PATH]
 *        [--ping-after MS] [--dead-after MS] [--backoff MS] [--backoff-cap MS]
 *        [--connect-timeout MS]
 * SIGTERM or SIGINT: says GOAWAY, closes, exits 0. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lwip/etharp.h"
#include "lwip/init.h"
#include "lwip/ip4_addr.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/timeouts.h"
#include "netif/ethernet.h"

#include "app.h"
#include "port.h"
#include "tether_mcu.h"

#define FRAME_MAX 1536

static int tapfd = -1;
static const char *key_file;
static volatile sig_atomic_t stop_signal;
static struct timespec t0;

/* ---- port.h ---------------------------------------------------------------------------------- */

void tt_port_print(const char *s)
{
    fputs(s, stdout);
    fflush(stdout);
}

void tt_unix_diag(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("lwip: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

void tt_port_random(uint8_t *out, size_t n)
{
    size_t got = 0;
    ssize_t r;

    while (got < n) {
        r = getrandom(out + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, "tether-mcu-host: getrandom failed\n");
            exit(1);
        }
        got += (size_t)r;
    }
}

unsigned int tt_port_rand32(void)
{
    uint32_t v;

    tt_port_random((uint8_t *)&v, sizeof v);
    return v;
}

uint32_t tt_port_now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint32_t)((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
}

u32_t sys_now(void)
{
    return tt_port_now_ms();
}

size_t tt_port_key_load(char *out, size_t cap)
{
    FILE *f;
    size_t n;

    if (key_file == NULL || (f = fopen(key_file, "rb")) == NULL)
        return 0;
    n = fread(out, 1, cap, f);
    fclose(f);
    return n == cap ? n : 0;
}

int tt_port_key_store(const char *key, size_t len)
{
    char tmp[4096];
    int fd;

    if (key_file == NULL)
        return -1;
    snprintf(tmp, sizeof tmp, "%s.tmp", key_file);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -1;
    if (write(fd, key, len) != (ssize_t)len || fsync(fd) != 0) {
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    return rename(tmp, key_file) == 0 ? 0 : -1;
}

/* ---- the TAP netif ----------------------------------------------------------------------------
 */

static err_t tap_output(struct netif *nif, struct pbuf *p)
{
    uint8_t frame[FRAME_MAX];
    u16_t n;
    (void)nif;

    if (p->tot_len > sizeof frame)
        return ERR_BUF;
    n = pbuf_copy_partial(p, frame, p->tot_len, 0);
    if (write(tapfd, frame, n) != (ssize_t)n)
        return ERR_IF; /* lost, as on a wire */
    return ERR_OK;
}

static err_t tap_init(struct netif *nif)
{
    static const uint8_t mac[6] = {0x02, 0x00, 0x74, 0x74, 0x6d, 0x01}; /* locally administered */

    nif->name[0] = 't';
    nif->name[1] = 'p';
    nif->output = etharp_output;
    nif->linkoutput = tap_output;
    nif->mtu = 1500;
    nif->hwaddr_len = 6;
    memcpy(nif->hwaddr, mac, 6);
    nif->flags =
        NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET | NETIF_FLAG_LINK_UP;
    return ERR_OK;
}

static int tap_open(const char *name)
{
    struct ifreq ifr;
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);

    if (fd < 0)
        return -1;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Every frame waiting on the TAP device, into lwIP. */
static void tap_poll(struct netif *nif)
{
    uint8_t frame[FRAME_MAX];
    struct pbuf *p;
    ssize_t n;

    for (;;) {
        n = read(tapfd, frame, sizeof frame);
        if (n <= 0)
            return;
        p = pbuf_alloc(PBUF_RAW, (u16_t)n, PBUF_POOL);
        if (p == NULL)
            continue; /* no buffer: dropped, as a NIC would */
        pbuf_take(p, frame, (u16_t)n);
        if (nif->input(p, nif) != ERR_OK)
            pbuf_free(p);
    }
}

/* ---- main ---------------------------------------------------------------------------------------
 */

static void on_signal(int sig)
{
    stop_signal = sig;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: tether-mcu-host --tap IFNAME --ip A.B.C.D/PREFIX --gw A.B.C.D --host "
            "RELAY-IP --port PORT --name NAME --token TOKEN [--key-file FILE] [--path PATH] "
            "[--ping-after MS] [--dead-after MS] [--backoff MS] [--backoff-cap MS] "
            "[--connect-timeout MS]\n");
    exit(2);
}

static uint32_t num(const char *s)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v > 0xffffffffUL)
        usage();
    return (uint32_t)v;
}

int main(int argc, char **argv)
{
    static struct tether_mcu agent;
    static struct tether_mcu_config cfg;
    static struct netif nif;
    const char *tap = NULL, *ip = NULL, *gw = NULL;
    ip4_addr_t addr, mask, gwaddr;
    unsigned prefix = 24;
    char ipbuf[32], *slash;
    struct pollfd pfd;
    uint32_t stop_at = 0;
    bool stopping = false;
    int i, rc;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    cfg.nservices = 2;
    cfg.services = tt_app_services;
    for (i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            usage();
        i++;
        if (strcmp(o, "--tap") == 0)
            tap = v;
        else if (strcmp(o, "--ip") == 0)
            ip = v;
        else if (strcmp(o, "--gw") == 0)
            gw = v;
        else if (strcmp(o, "--host") == 0)
            cfg.host = v;
        else if (strcmp(o, "--port") == 0)
            cfg.port = (uint16_t)num(v);
        else if (strcmp(o, "--path") == 0)
            cfg.path = v;
        else if (strcmp(o, "--name") == 0)
            cfg.name = v;
        else if (strcmp(o, "--token") == 0)
            cfg.token = v;
        else if (strcmp(o, "--key-file") == 0)
            key_file = v;
        else if (strcmp(o, "--ping-after") == 0)
            cfg.ping_after_ms = num(v);
        else if (strcmp(o, "--dead-after") == 0)
            cfg.dead_after_ms = num(v);
        else if (strcmp(o, "--backoff") == 0)
            cfg.backoff_base_ms = num(v);
        else if (strcmp(o, "--backoff-cap") == 0)
            cfg.backoff_cap_ms = num(v);
        else if (strcmp(o, "--connect-timeout") == 0)
            cfg.connect_timeout_ms = num(v);
        else
            usage();
    }
    if (tap == NULL || ip == NULL || gw == NULL || cfg.host == NULL || cfg.name == NULL)
        usage();
    snprintf(ipbuf, sizeof ipbuf, "%s", ip);
    if ((slash = strchr(ipbuf, '/')) != NULL) {
        *slash = '\0';
        prefix = num(slash + 1);
    }
    if (prefix > 32 || !ip4addr_aton(ipbuf, &addr) || !ip4addr_aton(gw, &gwaddr))
        usage();
    ip4_addr_set_u32(&mask, prefix ? lwip_htonl(0xffffffffu << (32 - prefix)) : 0);

    tapfd = tap_open(tap);
    if (tapfd < 0) {
        fprintf(stderr, "tether-mcu-host: cannot attach to TAP device %s: %s\n", tap,
                strerror(errno));
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);

    lwip_init();
    netif_add(&nif, &addr, &mask, &gwaddr, NULL, tap_init, ethernet_input);
    netif_set_default(&nif);
    netif_set_up(&nif);

    rc = tether_mcu_init(&agent, &cfg, &tt_app_callbacks, NULL);
    if (rc != 0) {
        fprintf(stderr, "tether-mcu-host: bad configuration (name, token or services)\n");
        return 2;
    }
    fprintf(stderr, "tether-mcu-host: agent %zu bytes (session %zu, streams %zu)\n", sizeof agent,
            sizeof agent.session, sizeof agent.streams);
    tether_mcu_start(&agent);

    for (;;) {
        u32_t sleep = sys_timeouts_sleeptime();
        pfd.fd = tapfd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        poll(&pfd, 1, sleep > 50 ? 50 : (int)sleep);
        if (pfd.revents & POLLIN)
            tap_poll(&nif);
        sys_check_timeouts();
        if (stop_signal && !stopping) {
            stopping = true;
            stop_at = sys_now();
            tether_mcu_stop(&agent);
        }
        /* After a stop, a moment for the GOAWAY and the close to leave. */
        if (stopping && (tether_mcu_state(&agent) == TETHER_MCU_IDLE) && sys_now() - stop_at >= 300)
            break;
    }
    close(tapfd);
    return 0;
}
