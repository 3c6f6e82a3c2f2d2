/* loadgen.c - many idle devices for the relay benchmarks (bench/bench.py; never part of make
 * test). Opens N device connections to one relay from many loopback source addresses
 * (127.0.0.0/8: each socket is bound to 127.A.B.C before connect, --per-src devices per
 * address, so that neither the 64k ports of one source address nor the kernel's search for a
 * free one - slow with tens of thousands of sockets on one address - limits the run), does the
 * WebSocket handshake, registers each device (HELLO, WELCOME), answers pings, pings like the
 * agent does (only after --ping-ms of hearing nothing: the relay's own pings every 15 s make
 * that never happen with a current relay), and reconnects like the agent does (back-off with
 * jitter; about 1 s after a GOAWAY(SHUTDOWN); a 503 handshake answer's Retry-After plus 0 to
 * 50 %). It reports on stdout, one JSON object per line:
 * a status line every --status-ms, and an "all_registered" event each time every device is
 * registered again (with how many kept the label they had first).
 *
 * A cluster (bench/cluster.py): --alt-url names the other nodes; a device whose connect fails
 * dials the next one (each device starting at a different one). SIGUSR1 is a reconnect storm:
 * every device drops its connection and dials again at once (a "storm" event).
 *
 * Mode "tether" speaks the Tether protocol with the project's own core (frame.c) and framing
 * (wsframe.c, wshs.c). Mode "wstunnel" holds node-reverse-wstunnel control connections
 * (GET /?dst=127.0.0.1:PORT, subprotocol tunnel-protocol), one public port per device, for the
 * same memory figure on that relay.
 *
 * wss: --url wss://127.0.0.1:PORT[/PATH] (or --wss with a ws:// URL) runs TLS under the
 * WebSocket, one OpenSSL SSL per device, non-blocking, over a BIO of ours (ciphertext goes
 * straight from the read buffer shared by all devices to OpenSSL and from OpenSSL to the
 * socket: no per-device BIO buffers; SSL_MODE_RELEASE_BUFFERS, so an idle device holds no
 * record buffers either). --sni NAME sends NAME as SNI and in the Host header (the relay's
 * certificate is for its domain; default: none, an IP literal is never sent as SNI).
 * --ca-file FILE verifies the relay's certificate against FILE's CAs (and its name against
 * --sni's, or the IP); without it nothing is verified (a benchmark on loopback). Like the
 * agent, each device keeps the TLS session (ticket) it got, in memory, and offers it when it
 * reconnects; --no-resume makes every handshake a full one. Status lines count handshakes:
 * "tls_full", "tls_resumed" (the relay accepted the session offered) and "tls_fail".
 * --cycle-ms MS closes each registered device's connection MS (jittered +-20 %) after it
 * registered, and it reconnects at once: a steady reconnect storm, for handshakes per second.
 *
 * Dial timeout: a connection not registered (WELCOME) in time is given up, with the agent's rule
 * (src/agent/backoff.h, tt_dialtimeout_next, called here): --dial-timeout-ms (15000, the
 * agent's TT_DIAL_TIMEOUT_MS) at first and after each registration, doubled after each dial
 * that timed out once its TCP connection was up (a "stall"), at most --dial-timeout-max-ms
 * (60000, TT_DIAL_TIMEOUT_MAX_MS; the same as --dial-timeout-ms: a fixed timeout, as before);
 * other failures keep it. Status lines count "dial_timeouts" (all), "dial_timeouts_unconnected"
 * (no TCP connection: no growth), "dial_timeouts_by_ms" (how many timed out at each timeout
 * used) and "dial_timeout_max_used_ms" (the longest timeout any dial had).
 *
 * Command line (stable; bench/ scripts rely on it):
 *   loadgen --url ws[s]://127.x.y.z:PORT[/PATH] -n N [--token TOKEN] [--mode tether|wstunnel]
 *           [--src 127.1.0.1] [--per-src 1000] [--max-pending 512] [--rate PER_S]
 *           [--ping-ms 20000] [--prefix lg] [--duration-s 120] [--status-ms 1000]
 *           [--wst-port-base 40000] [--wss] [--ca-file FILE] [--sni NAME] [--no-resume]
 *           [--cycle-ms MS] [--dial-timeout-ms 15000] [--dial-timeout-max-ms 60000]
 *
 * Bounded: it exits by itself after --duration-s seconds (default 120), or on SIGTERM/SIGINT,
 * and only ever connects to the loopback address given in --url. Single thread, one libuv loop;
 * one uv_tcp_t and one uv_timer_t per device (and with TLS one SSL and, once it has one, one
 * SSL_SESSION). */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <uv.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "agent/backoff.h"
#include "core/frame.h"
#include "common/util.h"
#include "common/wsframe.h"
#include "common/wshs.h"

#define LG_HEAD_MAX 4096  /* the relay's 101 answer */
#define LG_PEND_MAX 70000 /* a partial WebSocket frame kept between reads */
#define LG_BACKOFF_BASE 1000u
#define LG_BACKOFF_CAP 60000u
#define LG_SHUTDOWN_RETRY 1000u
#define LG_STABLE_MS 10000u
#define LG_ALT_MAX 15 /* --alt-url: other nodes of a cluster */
/* connect + handshake + WELCOME: the agent's TT_DIAL_TIMEOUT_MS and TT_DIAL_TIMEOUT_MAX_MS
 * (src/agent/dial.h), the defaults of --dial-timeout-ms and --dial-timeout-max-ms */
#define LG_DIAL_TIMEOUT_MS 15000u
#define LG_DIAL_TIMEOUT_MAX_MS 60000u
#define LG_DIAL_TIMEOUT_KINDS 8 /* distinct timeouts counted in "dial_timeouts_by_ms" */

enum mode { MODE_TETHER, MODE_WSTUNNEL };

enum dev_state {
    ST_IDLE,       /* waiting for its timer (first start or reconnect) */
    ST_CONNECTING, /* TCP connect under way */
    ST_TLS,        /* TLS handshake under way (wss) */
    ST_HANDSHAKE,  /* request sent, reading the 101 */
    ST_HELLO,      /* HELLO sent, waiting for WELCOME */
    ST_READY,      /* registered (tether) / control connection up (wstunnel) */
    ST_CLOSING,    /* uv_close under way */
};

struct dev {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t creq;
    SSL *ssl;          /* wss: this connection's session (NULL otherwise) */
    SSL_SESSION *sess; /* wss: the last session the relay gave (offered on reconnect) */
    uint32_t idx;
    uint8_t state;
    bool goaway_shutdown; /* GOAWAY(SHUTDOWN) seen on this connection */
    uint32_t retry_ms;    /* a 503's Retry-After, jittered as the agent does (0: none) */
    bool counted_conn;    /* counted in g.connected */
    bool cycled;          /* closed by --cycle-ms: reconnect at once */
    uint8_t attempt;      /* back-off step */
    uint8_t url_try;      /* --alt-url: which of the relay's URLs this device dials (dev_target) */
    bool storm;           /* SIGUSR1: reconnect at once after this close */
    uint32_t dial_to_ms;  /* this dial's timeout (tt_dialtimeout_next; 0: none yet) */
    uint8_t *pend;        /* bytes kept between reads (head or partial frame) */
    uint32_t pendlen;
    uint64_t reg_at;  /* loop ms of the last registration */
    uint64_t last_rx; /* loop ms of the last bytes read */
    char key[TT_WS_KEYLEN + 1];
    char label[TT_MAX_LABEL + 1]; /* label of the first registration */
    char devkey[TT_MAX_KEY + 1];  /* the device key the relay issued (presented from then on) */
};

static struct {
    uv_loop_t *loop;
    enum mode mode;
    char host[64];
    uint16_t port;
    char path[256];
    char token[TT_MAX_TOKEN + 1];
    char prefix[32];
    uint32_t n;
    uint32_t src_base; /* host order, first source address */
    uint32_t per_src;
    uint32_t max_pending;
    uint32_t rate; /* new first connections per second (0: as fast as max_pending allows) */
    uint32_t ping_ms;
    uint32_t duration_s;
    uint32_t status_ms;
    uint32_t wst_port_base;
    uint16_t alt_port[LG_ALT_MAX]; /* --alt-url: other nodes (same host and path as --url) */
    uint32_t nalt;
    uint64_t storms;
    uint64_t dial_timeouts;
    uint64_t dial_timeouts_unconnected;            /* timed out before TCP was up (no growth) */
    uint32_t dial_timeout_ms, dial_timeout_max_ms; /* --dial-timeout-ms, --dial-timeout-max-ms */
    uint32_t dial_timeout_max_used_ms;             /* the longest timeout a dial had */
    /* how many dials timed out at each timeout (the first LG_DIAL_TIMEOUT_KINDS distinct ones;
     * with the defaults there are three: 15000, 30000, 60000) */
    uint32_t to_ms[LG_DIAL_TIMEOUT_KINDS];
    uint64_t to_count[LG_DIAL_TIMEOUT_KINDS];
    bool tls;          /* wss */
    bool resume;       /* offer the kept session on reconnect */
    uint32_t cycle_ms; /* close a registered device after this long (0: never) */
    char sni[256];     /* SNI and Host (empty: none, Host is the address) */
    SSL_CTX *ssl_ctx;
    BIO_METHOD *bio_method;
    const uint8_t *in; /* ciphertext being fed to OpenSSL (inside on_read only) */
    size_t inlen;
    struct dev *devs;
    uv_timer_t tick, stop;
    uv_signal_t sigterm, sigint, sigusr1;
    uint64_t t0;
    uint32_t next_start; /* devices started so far (first connection) */
    /* counters */
    uint32_t pending;   /* connects + handshakes + hellos under way */
    uint32_t connected; /* TCP connected now */
    uint32_t ready;     /* registered now */
    uint64_t regs, same, changed, conn_fail, refused, lost, pings_in, pongs_in, errors;
    uint64_t busy; /* handshakes answered 503 with Retry-After (waited out) */
    uint64_t tls_full, tls_resumed, tls_fail, cycled;
    uint32_t round;
    bool all_before;      /* ready == n at some point since the last round started */
    uint64_t round_start; /* loop ms of the first loss after all were ready */
    uint64_t first_all_ms;
    bool stopping;
    uint32_t rng;
} g;

static uint8_t rbuf[1 << 16];
static uint8_t pbuf[1 << 16]; /* plaintext (wss) */

/* ---- small helpers ---------------------------------------------------------------------- */

static uint32_t rnd(void)
{
    uint32_t x = g.rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    g.rng = x;
    return x;
}

/* d jittered to [0.8 d, 1.2 d), as the agent's back-off does. */
static uint32_t jitter(uint32_t d)
{
    uint32_t span = d * 2 / 5;
    return d * 4 / 5 + (span ? rnd() % span : 0);
}

static uint32_t backoff_next(struct dev *d)
{
    uint64_t ms = LG_BACKOFF_BASE;
    for (unsigned i = 0; i < d->attempt && ms < LG_BACKOFF_CAP; i++)
        ms *= 2;
    if (ms > LG_BACKOFF_CAP)
        ms = LG_BACKOFF_CAP;
    if (d->attempt < 32)
        d->attempt++;
    uint32_t out = jitter((uint32_t)ms);
    return out > LG_BACKOFF_CAP ? LG_BACKOFF_CAP : out;
}

static double since_start(void)
{
    return (double)(uv_now(g.loop) - g.t0) / 1000.0;
}

static void emit(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void status_line(const char *event)
{
    char by_ms[LG_DIAL_TIMEOUT_KINDS * 40 + 4];
    size_t off = 0;
    by_ms[off++] = '{';
    for (int i = 0; i < LG_DIAL_TIMEOUT_KINDS && g.to_ms[i] != 0; i++)
        off += (size_t)snprintf(by_ms + off, sizeof by_ms - off, "%s\"%u\":%" PRIu64, i ? "," : "",
                                (unsigned)g.to_ms[i], g.to_count[i]);
    snprintf(by_ms + off, sizeof by_ms - off, "}");
    emit("{\"event\":\"%s\",\"t\":%.3f,\"n\":%u,\"started\":%u,\"pending\":%u,"
         "\"connected\":%u,\"ready\":%u,\"regs\":%" PRIu64 ",\"same\":%" PRIu64
         ",\"changed\":%" PRIu64 ",\"conn_fail\":%" PRIu64 ",\"refused\":%" PRIu64
         ",\"lost\":%" PRIu64 ",\"pings_in\":%" PRIu64 ",\"pongs_in\":%" PRIu64
         ",\"errors\":%" PRIu64 ",\"busy\":%" PRIu64 ",\"round\":%u,\"tls_full\":%" PRIu64
         ",\"tls_resumed\":%" PRIu64 ",\"tls_fail\":%" PRIu64 ",\"cycled\":%" PRIu64
         ",\"dial_timeouts\":%" PRIu64 ",\"dial_timeouts_unconnected\":%" PRIu64
         ",\"dial_timeouts_by_ms\":%s,\"dial_timeout_max_used_ms\":%u}",
         event, since_start(), g.n, g.next_start, g.pending, g.connected, g.ready, g.regs, g.same,
         g.changed, g.conn_fail, g.refused, g.lost, g.pings_in, g.pongs_in, g.errors, g.busy,
         g.round, g.tls_full, g.tls_resumed, g.tls_fail, g.cycled, g.dial_timeouts,
         g.dial_timeouts_unconnected, by_ms, (unsigned)g.dial_timeout_max_used_ms);
}

/* ---- sending ---------------------------------------------------------------------------- */

struct wreq {
    uv_write_t req;
    uint8_t data[];
};

static void on_written(uv_write_t *req, int status)
{
    (void)status; /* a failed write shows up as a read error */
    free(req);
}

/* Writes data to the socket (copied when it cannot go out at once). Returns 0 or -1. */
static int send_raw(struct dev *d, const uint8_t *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int r = uv_try_write((uv_stream_t *)&d->tcp, &b, 1);
    if (r == (int)len)
        return 0;
    if (r < 0 && r != UV_EAGAIN && r != UV_ENOSYS)
        return -1;
    if (r < 0)
        r = 0;
    struct wreq *w = malloc(sizeof(*w) + len - (size_t)r);
    if (w == NULL)
        return -1;
    memcpy(w->data, data + r, len - (size_t)r);
    b = uv_buf_init((char *)w->data, (unsigned)(len - (size_t)r));
    if (uv_write(&w->req, (uv_stream_t *)&d->tcp, &b, 1, on_written) != 0) {
        free(w);
        return -1;
    }
    return 0;
}

/* Writes plaintext: through the device's TLS session (wss) or straight. Returns 0 or -1. */
static int send_bytes(struct dev *d, const uint8_t *data, size_t len)
{
    if (d->ssl == NULL)
        return send_raw(d, data, len);
    ERR_clear_error();
    /* The BIO never refuses a write: SSL_write takes it all at once, or fails. */
    int r = SSL_write(d->ssl, data, (int)len);
    ERR_clear_error();
    return r == (int)len ? 0 : -1;
}

/* ---- TLS (wss) -------------------------------------------------------------------------- */

/* The BIO: reads from g.in (the bytes on_read got, for the device being read), writes to the
 * socket. */
static int lg_bio_write(BIO *b, const char *data, int len)
{
    struct dev *d = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    return send_raw(d, (const uint8_t *)data, (size_t)len) == 0 ? len : -1;
}

static int lg_bio_read(BIO *b, char *out, int len)
{
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (g.inlen == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = g.inlen < (size_t)len ? g.inlen : (size_t)len;
    memcpy(out, g.in, n);
    g.in += n;
    g.inlen -= n;
    return (int)n;
}

static long lg_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int lg_bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

/* A session (ticket) from the relay: the device keeps the newest. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct dev *d = SSL_get_app_data(ssl);
    if (d == NULL || !g.resume)
        return 0;
    SSL_SESSION_free(d->sess);
    d->sess = sess;
    return 1; /* we keep the reference */
}

static int tls_setup(const char *ca_file)
{
    static const unsigned char alpn[] = "\x08http/1.1";
    g.ssl_ctx = SSL_CTX_new(TLS_client_method());
    g.bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "loadgen");
    if (g.ssl_ctx == NULL || g.bio_method == NULL)
        return -1;
    BIO_meth_set_write(g.bio_method, lg_bio_write);
    BIO_meth_set_read(g.bio_method, lg_bio_read);
    BIO_meth_set_ctrl(g.bio_method, lg_bio_ctrl);
    BIO_meth_set_create(g.bio_method, lg_bio_create);
    SSL_CTX_set_min_proto_version(g.ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(g.ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(g.ssl_ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_alpn_protos(g.ssl_ctx, alpn, sizeof(alpn) - 1);
    SSL_CTX_set_session_cache_mode(g.ssl_ctx,
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(g.ssl_ctx, on_new_session);
    if (ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(g.ssl_ctx, ca_file, NULL) != 1) {
            fprintf(stderr, "loadgen: cannot load --ca-file %s\n", ca_file);
            return -1;
        }
        SSL_CTX_set_verify(g.ssl_ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(g.ssl_ctx, SSL_VERIFY_NONE, NULL);
    }
    return 0;
}

/* Ends d's TLS session. One that completed its handshake stays resumable: OpenSSL marks the
 * session of an SSL freed without a close_notify as not resumable (the relay closing first, or
 * --cycle-ms, is not a broken session). */
static void tls_free(struct dev *d)
{
    if (d->ssl == NULL)
        return;
    if (SSL_is_init_finished(d->ssl))
        SSL_set_shutdown(d->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(d->ssl);
    d->ssl = NULL;
}

/* A new session for d's connection; sends the ClientHello. Returns 0 or -1. */
static int tls_start(struct dev *d)
{
    BIO *b;
    d->ssl = SSL_new(g.ssl_ctx);
    b = d->ssl != NULL ? BIO_new(g.bio_method) : NULL;
    if (b == NULL)
        goto fail;
    BIO_set_data(b, d);
    SSL_set_bio(d->ssl, b, b);
    SSL_set_app_data(d->ssl, d);
    SSL_set_connect_state(d->ssl);
    if (g.sni[0] != '\0') {
        if (SSL_set_tlsext_host_name(d->ssl, g.sni) != 1 || SSL_set1_host(d->ssl, g.sni) != 1)
            goto fail;
    } else if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(d->ssl), g.host) != 1) {
        goto fail;
    }
    if (g.resume && d->sess != NULL)
        (void)SSL_set_session(d->ssl, d->sess);
    ERR_clear_error();
    int r = SSL_do_handshake(d->ssl);
    if (r != 1 && SSL_get_error(d->ssl, r) != SSL_ERROR_WANT_READ)
        goto fail;
    ERR_clear_error();
    return 0;
fail:
    ERR_clear_error();
    SSL_free(d->ssl);
    d->ssl = NULL;
    return -1;
}

/* One masked client frame. */
static int send_ws(struct dev *d, uint8_t opcode, const uint8_t *payload, size_t len)
{
    uint8_t buf[TT_WSFRAME_MAX_HEADER + TT_FRAME_HEADER_LEN + TT_CTRL_MAX];
    uint8_t key[4];
    uint32_t k = rnd();
    memcpy(key, &k, 4);
    if (len > sizeof(buf) - TT_WSFRAME_MAX_HEADER)
        return -1;
    size_t h = tt_wsframe_encode(buf, true, opcode, key, len);
    tt_wsframe_mask(buf + h, payload, len, key, 0);
    return send_bytes(d, buf, h + len);
}

static int send_hello(struct dev *d)
{
    uint8_t out[TT_FRAME_HEADER_LEN + TT_CTRL_MAX];
    char name[64];
    struct tt_hello h;
    memset(&h, 0, sizeof(h));
    snprintf(name, sizeof(name), "%s-%u", g.prefix, d->idx);
    h.version = TT_PROTO_VERSION;
    h.max_streams = 1024;
    h.window = 256u * 1024u;
    h.name = (struct tt_str){(const uint8_t *)name, strlen(name)};
    h.token = (struct tt_str){(const uint8_t *)g.token, strlen(g.token)};
    h.key = (struct tt_str){(const uint8_t *)d->devkey, strlen(d->devkey)};
    h.nservices = 1;
    h.services[0].kind = TT_SERVICE_HTTP;
    h.services[0].name = (struct tt_str){(const uint8_t *)"http", 4};
    tt_ssize n = tt_frame_encode_hello(out, sizeof(out), &h);
    if (n < 0)
        return -1;
    return send_ws(d, TT_WS_BINARY, out, (size_t)n);
}

/* ---- several nodes (--alt-url) and the storm (SIGUSR1) ----------------------------------- */

/* The port this device dials: --url's until a connect fails, then the other nodes' in turn,
 * each device starting at a different one (idx), as DNS round-robin would spread them, so that
 * a dead node's devices spread over the others instead of all landing on the next one. */
static uint16_t dev_target(const struct dev *d)
{
    if (g.nalt == 0 || d->url_try == 0)
        return g.port;
    return g.alt_port[(d->idx + d->url_try - 1u) % g.nalt];
}

/* A connect failed: the next URL (back to --url after every other one was tried). */
static void dev_next_url(struct dev *d)
{
    if (g.nalt > 0)
        d->url_try = (uint8_t)((d->url_try + 1u) % (g.nalt + 1u));
}

/* --alt-url ws[s]://HOST:PORT: another node; HOST, the scheme and the path are --url's. */
static int parse_alt_url(const char *url)
{
    char host[64];
    const char *p = url;
    if (g.nalt == LG_ALT_MAX)
        return -1;
    if (strncmp(p, "wss://", 6) == 0)
        p += 6; /* the scheme is --url's (or --wss) for every node */
    else if (strncmp(p, "ws://", 5) == 0)
        p += 5;
    else
        return -1;
    const char *colon = strchr(p, ':');
    if (colon == NULL || (size_t)(colon - p) >= sizeof(host))
        return -1;
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    unsigned long port = strtoul(colon + 1, NULL, 10);
    if (port == 0 || port > 65535 || strcmp(host, g.host) != 0)
        return -1;
    g.alt_port[g.nalt++] = (uint16_t)port;
    return 0;
}

static void drop(struct dev *d, bool failed_connect);
static void dev_timer(uv_timer_t *t);

/* SIGUSR1: every device drops its connection and dials again at once (a reconnect storm, as
 * after a network outage); devices waiting for their timer dial now too. */
static void on_storm(uv_signal_t *s, int signum)
{
    uint32_t dropped = 0;
    (void)s;
    (void)signum;
    if (g.stopping)
        return;
    g.storms++;
    for (uint32_t i = 0; i < g.next_start; i++) {
        struct dev *d = &g.devs[i];
        if (d->state == ST_CLOSING) {
            d->storm = true;
        } else if (d->state == ST_IDLE) {
            d->retry_ms = 0;
            uv_timer_start(&d->timer, dev_timer, 0, 0);
        } else {
            d->storm = true;
            drop(d, false);
            dropped++;
        }
    }
    emit("{\"event\":\"storm\",\"t\":%.3f,\"dropped\":%u,\"storms\":%" PRIu64 "}", since_start(),
         dropped, g.storms);
}

/* The agent's rule for the next dial's timeout (tt_dialtimeout_next), with our flags. */
static void dial_timeout_next(struct dev *d, enum tt_dial_end end)
{
    d->dial_to_ms =
        tt_dialtimeout_next(d->dial_to_ms, end, g.dial_timeout_ms, g.dial_timeout_max_ms);
}

/* A connection not registered within its dial timeout is given up as the agent gives up a dial
 * (a lost SYN or an answer that never comes would otherwise hold the device forever). */
static void dial_timer_start(struct dev *d)
{
    if (d->dial_to_ms == 0)
        dial_timeout_next(d, TT_DIAL_END_FAILED); /* the first: --dial-timeout-ms */
    if (d->dial_to_ms > g.dial_timeout_max_used_ms)
        g.dial_timeout_max_used_ms = d->dial_to_ms;
    uv_timer_start(&d->timer, dev_timer, d->dial_to_ms, 0);
}

/* Counts a dial that timed out after timeout_ms. */
static void count_timeout(uint32_t timeout_ms)
{
    for (int i = 0; i < LG_DIAL_TIMEOUT_KINDS; i++) {
        if (g.to_ms[i] == 0)
            g.to_ms[i] = timeout_ms;
        if (g.to_ms[i] == timeout_ms) {
            g.to_count[i]++;
            return;
        }
    }
}

/* dev_timer's part for the dial timeout: true when it dropped d. Past ST_CONNECTING the TCP
 * connection was up and the relay was working on it: a stall, and the next dial waits longer. */
static bool dial_timed_out(struct dev *d)
{
    if (d->state != ST_CONNECTING && d->state != ST_TLS && d->state != ST_HANDSHAKE &&
        d->state != ST_HELLO)
        return false;
    g.dial_timeouts++;
    count_timeout(d->dial_to_ms);
    if (d->state == ST_CONNECTING)
        g.dial_timeouts_unconnected++;
    dial_timeout_next(d, d->state == ST_CONNECTING ? TT_DIAL_END_FAILED : TT_DIAL_END_STALLED);
    drop(d, true);
    return true;
}

/* ---- connection life cycle -------------------------------------------------------------- */

static void start_connect(struct dev *d);
static void dev_timer(uv_timer_t *t);

static void pend_clear(struct dev *d)
{
    free(d->pend);
    d->pend = NULL;
    d->pendlen = 0;
}

static void on_closed(uv_handle_t *h)
{
    struct dev *d = h->data;
    uint32_t delay;
    d->state = ST_IDLE;
    tls_free(d);
    if (g.stopping)
        return;
    if (d->storm || d->cycled) {
        d->storm = false;
        d->cycled = false;
        d->retry_ms = 0;
        d->attempt = 0;
        delay = 0;
    } else if (d->retry_ms) {
        delay = d->retry_ms;
        d->retry_ms = 0;
    } else if (d->goaway_shutdown) {
        d->attempt = 0;
        delay = jitter(LG_SHUTDOWN_RETRY);
    } else {
        if (d->reg_at && uv_now(g.loop) - d->reg_at >= LG_STABLE_MS)
            d->attempt = 0;
        delay = backoff_next(d);
    }
    d->reg_at = 0;
    uv_timer_start(&d->timer, dev_timer, delay, 0);
}

/* Ends the current connection (any state but idle/closing) and schedules the next one. */
static void drop(struct dev *d, bool failed_connect)
{
    /* stopping: every handle is being closed already (a connect cancelled by that calls back) */
    if (d->state == ST_IDLE || d->state == ST_CLOSING || g.stopping)
        return;
    if (d->state == ST_READY) {
        g.ready--;
        g.lost++;
        if (g.all_before && g.round_start == 0)
            g.round_start = uv_now(g.loop);
    } else {
        g.pending--;
    }
    if (d->counted_conn) {
        g.connected--;
        d->counted_conn = false;
    }
    if (failed_connect) {
        g.conn_fail++;
        dev_next_url(d);
    }
    pend_clear(d);
    d->state = ST_CLOSING;
    uv_timer_stop(&d->timer);
    uv_close((uv_handle_t *)&d->tcp, on_closed);
}

static void became_ready(struct dev *d, const char *label, size_t len)
{
    g.pending--;
    g.ready++;
    g.regs++;
    d->state = ST_READY;
    d->reg_at = uv_now(g.loop);
    uv_timer_stop(&d->timer); /* the dial timeout */
    dial_timeout_next(d, TT_DIAL_END_REGISTERED);
    if (label != NULL) {
        if (d->label[0] == '\0') {
            if (len > TT_MAX_LABEL)
                len = TT_MAX_LABEL;
            memcpy(d->label, label, len);
            d->label[len] = '\0';
        } else if (strlen(d->label) == len && memcmp(d->label, label, len) == 0) {
            g.same++;
        } else {
            g.changed++;
        }
    }
    /* the agent's rule: a ping once nothing has been heard for ping_ms; the first one at a
     * random point of that interval, as for devices started at different times */
    if (g.cycle_ms > 0) {
        uv_timer_start(&d->timer, dev_timer, jitter(g.cycle_ms), 0);
    } else if (g.ping_ms > 0) {
        uint64_t ago = rnd() % g.ping_ms;
        d->last_rx = uv_now(g.loop) - ago;
        uv_timer_start(&d->timer, dev_timer, g.ping_ms - ago, 0);
    }
    if (g.ready == g.n) {
        uint64_t now = uv_now(g.loop);
        if (!g.all_before) {
            g.first_all_ms = now - g.t0;
            emit("{\"event\":\"all_registered\",\"round\":%u,\"t\":%.3f,\"elapsed\":%.3f,"
                 "\"rate\":%.1f,\"same\":%" PRIu64 ",\"changed\":%" PRIu64 "}",
                 g.round, since_start(), since_start(),
                 g.first_all_ms ? (double)g.n * 1000.0 / (double)g.first_all_ms : 0.0, g.same,
                 g.changed);
        } else if (g.round_start) {
            emit("{\"event\":\"all_registered\",\"round\":%u,\"t\":%.3f,\"elapsed\":%.3f,"
                 "\"same\":%" PRIu64 ",\"changed\":%" PRIu64 "}",
                 g.round, since_start(), (double)(now - g.round_start) / 1000.0, g.same, g.changed);
        }
        g.all_before = true;
        g.round++;
        g.round_start = 0;
    }
}

/* One Tether frame (whole) from the relay. Returns -1 to drop the connection. */
static int on_tether_frame(struct dev *d, const uint8_t *p, size_t len)
{
    struct tt_frame_header h;
    if (len < TT_FRAME_HEADER_LEN)
        return -1;
    tt_frame_header_decode(&h, p);
    if ((size_t)h.length + TT_FRAME_HEADER_LEN > len)
        return -1;
    p += TT_FRAME_HEADER_LEN;
    switch (h.type) {
    case TT_FRAME_WELCOME: {
        struct tt_welcome w;
        if (d->state != ST_HELLO || tt_frame_decode_welcome(&w, p, h.length) != 0)
            return -1;
        if (w.key.len > 0) {
            memcpy(d->devkey, w.key.p, w.key.len);
            d->devkey[w.key.len] = '\0';
        }
        became_ready(d, (const char *)w.label.p, w.label.len);
        return 0;
    }
    case TT_FRAME_REFUSE: {
        struct tt_coded c;
        g.refused++;
        if (tt_frame_decode_coded(&c, p, h.length) == 0 && g.refused <= 5)
            emit("{\"event\":\"refused\",\"device\":%u,\"code\":%u,\"reason\":\"%.*s\"}", d->idx,
                 (unsigned)c.code, (int)c.reason.len, (const char *)c.reason.p);
        return -1;
    }
    case TT_FRAME_GOAWAY: {
        struct tt_coded c;
        if (tt_frame_decode_coded(&c, p, h.length) == 0 && c.code == TT_GOAWAY_SHUTDOWN)
            d->goaway_shutdown = true;
        return 0; /* the close frame follows */
    }
    case TT_FRAME_OPEN: {
        /* Nobody should open streams to these devices: refuse (RESET). */
        uint8_t out[64];
        struct tt_coded c = {TT_RESET_REFUSED, {NULL, 0}};
        tt_ssize n = tt_frame_encode_reset(out, sizeof(out), h.stream, &c);
        return n > 0 ? send_ws(d, TT_WS_BINARY, out, (size_t)n) : -1;
    }
    default:
        return 0;
    }
}

/* One whole WebSocket frame from the server. Returns -1 to drop the connection. */
static int on_ws_frame(struct dev *d, const struct tt_wsframe_hdr *h, const uint8_t *p)
{
    size_t len = (size_t)h->len;
    switch (h->opcode) {
    case TT_WS_PING:
        g.pings_in++;
        return send_ws(d, TT_WS_PONG, p, len);
    case TT_WS_PONG:
        g.pongs_in++;
        return 0;
    case TT_WS_CLOSE:
        (void)send_ws(d, TT_WS_CLOSE, p, len >= 2 ? 2 : 0);
        return -1;
    case TT_WS_BINARY:
        if (g.mode != MODE_TETHER)
            return 0;
        while (len >= TT_FRAME_HEADER_LEN) {
            size_t fl = TT_FRAME_HEADER_LEN + ((size_t)p[0] << 8 | p[1]);
            if (fl > len || on_tether_frame(d, p, fl) != 0)
                return -1;
            p += fl;
            len -= fl;
        }
        return len == 0 ? 0 : -1;
    case TT_WS_TEXT: /* wstunnel: "NC:id" new-connection requests; nobody connects here */
        return 0;
    default:
        return -1;
    }
}

/* Parses frames from data[0..len); keeps a partial one. Returns -1 to drop. */
static int parse_ws(struct dev *d, const uint8_t *data, size_t len)
{
    while (len > 0) {
        struct tt_wsframe_hdr h;
        int hl = tt_wsframe_decode(&h, data, len);
        if (hl < 0 || h.masked)
            return -1;
        if (hl == 0 || h.len > LG_PEND_MAX || (size_t)hl + h.len > len) {
            if (len > LG_PEND_MAX)
                return -1;
            uint8_t *p = malloc(len);
            if (p == NULL)
                return -1;
            memmove(p, data, len);
            free(d->pend);
            d->pend = p;
            d->pendlen = (uint32_t)len;
            return 0;
        }
        if (on_ws_frame(d, &h, data + hl) != 0)
            return -1;
        data += (size_t)hl + h.len;
        len -= (size_t)hl + h.len;
    }
    return 0;
}

/* The handshake answer (in data[0..len)); the rest goes to parse_ws. */
static int parse_head(struct dev *d, const uint8_t *data, size_t len)
{
    size_t headlen;
    if (g.mode == MODE_TETHER) {
        struct tt_wshs_response r;
        int rc = tt_wshs_read_response(data, len, d->key, &r);
        if (rc == TETHER_ERR_AGAIN)
            goto partial;
        if (rc != 0)
            return -1;
        if (!r.accepted) {
            if (r.retry_after > 0) { /* the agent's rule: that long plus 0-50 %, <= 300 s */
                uint32_t ms = r.retry_after > 300 ? 300000 : r.retry_after * 1000;
                d->retry_ms = ms + rnd() % (ms / 2 + 1);
                d->retry_ms = d->retry_ms > 300000 ? 300000 : d->retry_ms;
                g.busy++;
            }
            return -1;
        }
        headlen = r.head_len;
    } else {
        const uint8_t *end = NULL;
        for (size_t i = 3; i < len; i++)
            if (data[i] == '\n' && data[i - 1] == '\r' && data[i - 2] == '\n' &&
                data[i - 3] == '\r') {
                end = data + i + 1;
                break;
            }
        if (end == NULL)
            goto partial;
        if (len < 12 || memcmp(data, "HTTP/1.1 101", 12) != 0)
            return -1;
        headlen = (size_t)(end - data);
    }
    pend_clear(d);
    if (g.mode == MODE_TETHER) {
        d->state = ST_HELLO;
        if (send_hello(d) != 0)
            return -1;
    } else {
        became_ready(d, NULL, 0);
    }
    return parse_ws(d, data + headlen, len - headlen);
partial:
    if (len > LG_HEAD_MAX)
        return -1;
    if (d->pend != data) {
        uint8_t *p = malloc(LG_HEAD_MAX);
        if (p == NULL)
            return -1;
        memcpy(p, data, len);
        free(d->pend);
        d->pend = p;
    }
    d->pendlen = (uint32_t)len;
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init((char *)rbuf, sizeof(rbuf));
}

/* Plaintext bytes from the relay. Returns 0, or -1 when d was dropped. */
static int on_plain(struct dev *d, const uint8_t *in, size_t len)
{
    const uint8_t *data = in;
    uint8_t *joined = NULL;
    if (d->pendlen > 0) {
        joined = malloc(d->pendlen + len);
        if (joined == NULL) {
            drop(d, false);
            return -1;
        }
        memcpy(joined, d->pend, d->pendlen);
        memcpy(joined + d->pendlen, in, len);
        len += d->pendlen;
        data = joined;
        pend_clear(d);
    }
    int rc = d->state == ST_HANDSHAKE ? parse_head(d, data, len) : parse_ws(d, data, len);
    free(joined);
    if (rc != 0) {
        if (d->state != ST_READY)
            g.errors++;
        drop(d, false);
        return -1;
    }
    return 0;
}

static int send_ws_request(struct dev *d);

/* Ciphertext from the relay: the handshake, then records decrypted into pbuf. */
static void on_tls_input(struct dev *d, const uint8_t *data, size_t len)
{
    g.in = data;
    g.inlen = len;
    if (d->state == ST_TLS) {
        ERR_clear_error();
        int r = SSL_do_handshake(d->ssl);
        if (r != 1) {
            int e = SSL_get_error(d->ssl, r);
            ERR_clear_error();
            if (e != SSL_ERROR_WANT_READ) {
                g.tls_fail++;
                if (g.tls_fail <= 5)
                    emit("{\"event\":\"tls_failed\",\"device\":%u,\"verify\":\"%s\"}", d->idx,
                         X509_verify_cert_error_string(SSL_get_verify_result(d->ssl)));
                drop(d, false);
            }
            goto out;
        }
        if (SSL_session_reused(d->ssl))
            g.tls_resumed++;
        else
            g.tls_full++;
        d->state = ST_HANDSHAKE;
        if (send_ws_request(d) != 0) {
            drop(d, false);
            goto out;
        }
    }
    while (d->state != ST_CLOSING) {
        ERR_clear_error();
        int r = SSL_read(d->ssl, pbuf, (int)sizeof(pbuf));
        if (r > 0) {
            if (on_plain(d, pbuf, (size_t)r) != 0)
                break;
            continue;
        }
        int e = SSL_get_error(d->ssl, r);
        ERR_clear_error();
        if (e != SSL_ERROR_WANT_READ)
            drop(d, false); /* close_notify or a bad record */
        break;
    }
out:
    g.in = NULL;
    g.inlen = 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct dev *d = s->data;
    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (d->state == ST_TLS)
            g.tls_fail++;
        drop(d, false);
        return;
    }
    d->last_rx = uv_now(g.loop);
    if (d->ssl != NULL)
        on_tls_input(d, rbuf, (size_t)nread);
    else
        (void)on_plain(d, rbuf, (size_t)nread);
}

/* The WebSocket upgrade request. Returns 0 or -1. */
static int send_ws_request(struct dev *d)
{
    char reqbuf[1024];
    const char *host = g.sni[0] != '\0' ? g.sni : g.host;
    int n;
    if (g.mode == MODE_TETHER) {
        if (tt_wshs_make_key(d->key) != 0)
            return -1;
        n = tt_wshs_client_request(reqbuf, sizeof(reqbuf), host, dev_target(d),
                                   dev_target(d) == (g.tls ? 443 : 80), g.path, d->key);
    } else {
        snprintf(d->key, sizeof(d->key), "dGhlIHNhbXBsZSBub25jZQ==");
        n = snprintf(reqbuf, sizeof(reqbuf),
                     "GET /?dst=127.0.0.1:%u HTTP/1.1\r\nHost: %s:%u\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tunnel-protocol\r\n\r\n",
                     (unsigned)(g.wst_port_base + d->idx), host, (unsigned)g.port, d->key);
    }
    if (n <= 0 || (size_t)n >= sizeof(reqbuf))
        return -1;
    return send_bytes(d, (const uint8_t *)reqbuf, (size_t)n);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct dev *d = req->data;
    if (d->state != ST_CONNECTING)
        return;
    if (status < 0) {
        drop(d, true);
        return;
    }
    g.connected++;
    d->counted_conn = true;
    if (g.tls) {
        d->state = ST_TLS;
        if (tls_start(d) != 0) {
            g.tls_fail++;
            drop(d, false);
            return;
        }
    } else {
        d->state = ST_HANDSHAKE;
        if (send_ws_request(d) != 0) {
            drop(d, false);
            return;
        }
    }
    if (uv_read_start((uv_stream_t *)&d->tcp, on_alloc, on_read) != 0)
        drop(d, false);
}

static void start_connect(struct dev *d)
{
    struct sockaddr_in src, dst;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;

    d->goaway_shutdown = false;
    if (fd < 0) {
        g.conn_fail++;
        uv_timer_start(&d->timer, dev_timer, backoff_next(d), 0);
        return;
    }
#ifdef IP_BIND_ADDRESS_NO_PORT
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
    (void)setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
    memset(&src, 0, sizeof(src));
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(g.src_base + d->idx / g.per_src);
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
        close(fd);
        g.conn_fail++;
        uv_timer_start(&d->timer, dev_timer, backoff_next(d), 0);
        return;
    }
    uv_tcp_init(g.loop, &d->tcp);
    d->tcp.data = d;
    if (uv_tcp_open(&d->tcp, fd) != 0) {
        close(fd);
        d->state = ST_CONNECTING;
        g.pending++;
        drop(d, true);
        return;
    }
    uv_ip4_addr(g.host, dev_target(d), &dst);
    d->state = ST_CONNECTING;
    g.pending++;
    dial_timer_start(d);
    d->creq.data = d;
    if (uv_tcp_connect(&d->creq, &d->tcp, (struct sockaddr *)&dst, on_connect) != 0)
        drop(d, true);
}

static void dev_timer(uv_timer_t *t)
{
    struct dev *d = t->data;
    if (g.stopping)
        return;
    if (d->state == ST_IDLE) {
        start_connect(d);
        return;
    }
    if (dial_timed_out(d))
        return;
    if (d->state == ST_READY && g.cycle_ms > 0) {
        g.cycled++;
        d->cycled = true;
        drop(d, false);
        return;
    }
    if (d->state == ST_READY && g.ping_ms > 0) {
        uint64_t now = uv_now(g.loop);
        uint8_t p[8];
        if (now - d->last_rx < g.ping_ms) {
            /* heard from the relay since: look again ping_ms after that */
            uv_timer_start(&d->timer, dev_timer, d->last_rx + g.ping_ms - now, 0);
            return;
        }
        for (int i = 0; i < 8; i++)
            p[i] = (uint8_t)(now >> (56 - 8 * i));
        if (send_ws(d, TT_WS_PING, p, sizeof(p)) != 0) {
            drop(d, false);
            return;
        }
        uv_timer_start(&d->timer, dev_timer, g.ping_ms, 0);
    }
}

/* ---- the run ---------------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    static uint64_t last_status;
    uint64_t now = uv_now(g.loop);
    (void)t;
    /* first connections: within max_pending, and at most rate per second */
    uint32_t budget = g.n;
    if (g.rate > 0) {
        uint64_t due = (now - g.t0) * g.rate / 1000 + 1;
        budget = due > g.next_start ? (uint32_t)(due - g.next_start) : 0;
    }
    while (g.next_start < g.n && budget > 0 && g.pending < g.max_pending) {
        start_connect(&g.devs[g.next_start++]);
        budget--;
    }
    if (now - last_status >= g.status_ms) {
        last_status = now;
        status_line("status");
    }
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void stop_all(void)
{
    if (g.stopping)
        return;
    status_line("final");
    g.stopping = true;
    uv_walk(g.loop, close_walk, NULL);
}

static void on_stop(uv_timer_t *t)
{
    (void)t;
    stop_all();
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    stop_all();
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen --url ws[s]://127.0.0.1:PORT[/PATH] -n N [--token TOKEN]\n"
            "       [--mode tether|wstunnel] [--src 127.1.0.1] [--per-src 1000]\n"
            "       [--max-pending 512] [--rate PER_S] [--ping-ms 20000] [--prefix lg]\n"
            "       [--duration-s 120] [--status-ms 1000] [--wst-port-base 40000]\n"
            "       [--wss] [--ca-file FILE] [--sni NAME] [--no-resume] [--cycle-ms MS]\n"
            "       [--dial-timeout-ms 15000] [--dial-timeout-max-ms 60000]\n"
            "       [--alt-url ws[s]://127.0.0.1:PORT]...   (SIGUSR1: reconnect all now)\n");
    exit(2);
}

static int parse_url(const char *url)
{
    const char *p = url;
    if (strncmp(p, "wss://", 6) == 0) {
        g.tls = true;
        p += 6;
    } else if (strncmp(p, "ws://", 5) == 0) {
        p += 5;
    } else {
        return -1;
    }
    const char *colon = strchr(p, ':');
    if (colon == NULL || (size_t)(colon - p) >= sizeof(g.host))
        return -1;
    memcpy(g.host, p, (size_t)(colon - p));
    g.host[colon - p] = '\0';
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (port == 0 || port > 65535)
        return -1;
    g.port = (uint16_t)port;
    snprintf(g.path, sizeof(g.path), "%s", *end ? end : "/");
    struct in_addr a;
    if (inet_pton(AF_INET, g.host, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127)
        return -1; /* loopback only */
    return 0;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    const char *src = "127.1.0.1";
    const char *ca_file = NULL;
    g.mode = MODE_TETHER;
    g.resume = true;
    g.per_src = 1000;
    g.max_pending = 512;
    g.ping_ms = 20000; /* src/agent/agent.c AGENT_PING_QUIET_MS */
    g.duration_s = 120;
    g.status_ms = 1000;
    g.wst_port_base = 40000;
    g.dial_timeout_ms = LG_DIAL_TIMEOUT_MS;
    g.dial_timeout_max_ms = LG_DIAL_TIMEOUT_MAX_MS;
    snprintf(g.prefix, sizeof(g.prefix), "lg");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--wss") == 0) {
            g.tls = true;
            continue;
        }
        if (strcmp(a, "--no-resume") == 0) {
            g.resume = false;
            continue;
        }
        if (v == NULL)
            usage();
        i++;
        if (strcmp(a, "--url") == 0) {
            if (parse_url(v) != 0) {
                fprintf(stderr, "loadgen: --url must be ws[s]://127.x.y.z:PORT[/PATH]\n");
                return 2;
            }
        } else if (strcmp(a, "-n") == 0) {
            g.n = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--token") == 0) {
            snprintf(g.token, sizeof(g.token), "%s", v);
        } else if (strcmp(a, "--mode") == 0) {
            if (strcmp(v, "tether") == 0)
                g.mode = MODE_TETHER;
            else if (strcmp(v, "wstunnel") == 0)
                g.mode = MODE_WSTUNNEL;
            else
                usage();
        } else if (strcmp(a, "--src") == 0) {
            src = v;
        } else if (strcmp(a, "--per-src") == 0) {
            g.per_src = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--max-pending") == 0) {
            g.max_pending = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--rate") == 0) {
            g.rate = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--ping-ms") == 0) {
            g.ping_ms = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--prefix") == 0) {
            snprintf(g.prefix, sizeof(g.prefix), "%s", v);
        } else if (strcmp(a, "--duration-s") == 0) {
            g.duration_s = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--status-ms") == 0) {
            g.status_ms = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--alt-url") == 0) {
            if (parse_alt_url(v) != 0) {
                fprintf(stderr, "loadgen: --alt-url must be ws[s]://HOST:PORT, HOST as in --url "
                                "(which comes first), at most 15\n");
                return 2;
            }
        } else if (strcmp(a, "--wst-port-base") == 0) {
            g.wst_port_base = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--ca-file") == 0) {
            ca_file = v;
        } else if (strcmp(a, "--sni") == 0) {
            if (strlen(v) >= sizeof(g.sni))
                usage();
            snprintf(g.sni, sizeof(g.sni), "%s", v);
        } else if (strcmp(a, "--cycle-ms") == 0) {
            g.cycle_ms = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--dial-timeout-ms") == 0) {
            g.dial_timeout_ms = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--dial-timeout-max-ms") == 0) {
            g.dial_timeout_max_ms = (uint32_t)strtoul(v, NULL, 10);
        } else {
            usage();
        }
    }
    struct in_addr sa;
    if (g.port == 0 || g.n == 0 || g.per_src == 0 || g.max_pending == 0 || g.duration_s == 0 ||
        inet_pton(AF_INET, src, &sa) != 1 || (ntohl(sa.s_addr) >> 24) != 127)
        usage();
    g.src_base = ntohl(sa.s_addr);
    if (((g.src_base & 0xffffff) + (g.n - 1) / g.per_src) > 0xfffffe) {
        fprintf(stderr, "loadgen: not enough loopback source addresses\n");
        return 2;
    }
    if (g.mode == MODE_WSTUNNEL && g.wst_port_base + g.n > 65536) {
        fprintf(stderr, "loadgen: --wst-port-base + n is past port 65535\n");
        return 2;
    }
    if (g.status_ms == 0)
        g.status_ms = 1000;
    if (g.dial_timeout_ms == 0 || g.dial_timeout_max_ms < g.dial_timeout_ms) {
        fprintf(stderr, "loadgen: --dial-timeout-ms must be > 0 and at most "
                        "--dial-timeout-max-ms\n");
        return 2;
    }
    if (g.tls && tls_setup(ca_file) != 0) {
        fprintf(stderr, "loadgen: cannot set up TLS\n");
        return 2;
    }
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    if (tt_random_bytes(&g.rng, sizeof(g.rng)) != 0 || g.rng == 0)
        g.rng = 0x9e3779b9u;

    g.loop = uv_default_loop();
    g.devs = calloc(g.n, sizeof(struct dev));
    if (g.devs == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 1;
    }
    for (uint32_t i = 0; i < g.n; i++) {
        g.devs[i].idx = i;
        uv_timer_init(g.loop, &g.devs[i].timer);
        g.devs[i].timer.data = &g.devs[i];
    }
    g.t0 = uv_now(g.loop);
    uv_timer_init(g.loop, &g.tick);
    uv_timer_start(&g.tick, on_tick, 0, 10);
    uv_timer_init(g.loop, &g.stop);
    uv_timer_start(&g.stop, on_stop, (uint64_t)g.duration_s * 1000, 0);
    uv_signal_init(g.loop, &g.sigterm);
    uv_signal_init(g.loop, &g.sigint);
    uv_signal_start(&g.sigterm, on_signal, SIGTERM);
    uv_signal_start(&g.sigint, on_signal, SIGINT);
    uv_signal_init(g.loop, &g.sigusr1);
    uv_signal_start(&g.sigusr1, on_storm, SIGUSR1);
    emit("{\"event\":\"start\",\"n\":%u,\"mode\":\"%s\",\"url\":\"%s://%s:%u%s\",\"pid\":%d}", g.n,
         g.mode == MODE_TETHER ? "tether" : "wstunnel", g.tls ? "wss" : "ws", g.host,
         (unsigned)g.port, g.path, (int)getpid());
    uv_run(g.loop, UV_RUN_DEFAULT);
    for (uint32_t i = 0; i < g.n; i++) {
        free(g.devs[i].pend);
        tls_free(&g.devs[i]);
        SSL_SESSION_free(g.devs[i].sess);
    }
    free(g.devs);
    SSL_CTX_free(g.ssl_ctx);
    BIO_meth_free(g.bio_method);
    uv_loop_close(g.loop);
    return 0;
}
