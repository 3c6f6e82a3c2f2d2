/* app.c - the example firmware's application (app.h): an HTTP service and a TCP echo on the
 * microcontroller agent, and the console lines that report registration. The request head is
 * read by picohttpparser; responses are written as the agent's windows allow (tether_mcu_write
 * takes what fits, "writable" says when to go on). Static state only: one slot per stream. */
#include "app.h"

#include <string.h>

#include "picohttpparser.h"
#include "port.h"

const struct tether_mcu_service tt_app_services[2] = {
    {TT_SERVICE_HTTP, "http"},
    {TT_SERVICE_TCP, "echo"},
};

#define REQ_MAX 512
#define DATA_MAX (16u * 1024u * 1024u) /* the largest /data/N body */

enum phase { HEAD, BODY, RESPOND, DONE };

struct conn {
    uint32_t id; /* 0: free */
    uint8_t service;
    uint8_t phase;
    uint8_t fin_due; /* echo: the relay's FIN came; ours waits for room */
    uint16_t inlen;
    uint16_t outlen, outpos; /* response head (and small body) in buf */
    uint32_t body_left, body_got, sum;
    uint32_t gen_left, gen_pos; /* a generated body (/data/N) after buf */
    char buf[REQ_MAX];
};

static struct conn conns[TETHER_MCU_MAX_STREAMS];
static uint32_t served;

static const char pattern[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
#define PATTERN_LEN (sizeof pattern - 1)

static struct conn *conn_of(uint32_t id)
{
    unsigned i;

    for (i = 0; i < TETHER_MCU_MAX_STREAMS; i++)
        if (conns[i].id == id)
            return &conns[i];
    return NULL;
}

/* ---- text ---------------------------------------------------------------------------------- */

static size_t fmt_u32(char *out, uint32_t v)
{
    char d[10];
    size_t n = 0, i;

    do {
        d[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (i = 0; i < n; i++)
        out[i] = d[n - 1 - i];
    return n;
}

/* Appends to buf[0..cap) at *pos; what does not fit is cut. */
static void add(char *buf, size_t cap, size_t *pos, const char *s, size_t n)
{
    if (*pos + n > cap)
        n = cap - *pos;
    memcpy(buf + *pos, s, n);
    *pos += n;
}

static void adds(char *buf, size_t cap, size_t *pos, const char *s)
{
    add(buf, cap, pos, s, strlen(s));
}

static void addu(char *buf, size_t cap, size_t *pos, uint32_t v)
{
    char d[10];

    add(buf, cap, pos, d, fmt_u32(d, v));
}

static void print_u32(uint32_t v)
{
    char d[11];

    d[fmt_u32(d, v)] = '\0';
    tt_port_print(d);
}

/* Prints bytes from the network: printable ASCII only. */
static void print_view(const uint8_t *p, size_t n)
{
    char b[2] = {0, 0};
    size_t i;

    for (i = 0; i < n && i < 200; i++) {
        b[0] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
        tt_port_print(b);
    }
}

/* ---- HTTP ---------------------------------------------------------------------------------- */

static uint32_t parse_u32(const char *p, size_t n, bool *ok)
{
    uint32_t v = 0;
    size_t i;

    *ok = n > 0 && n <= 9;
    for (i = 0; i < n && *ok; i++) {
        if (p[i] < '0' || p[i] > '9')
            *ok = false;
        else
            v = v * 10 + (uint32_t)(p[i] - '0');
    }
    return v;
}

/* A response whose body is in buf after the head. */
static void respond(struct conn *c, const char *status, const char *type, const char *body,
                    size_t bodylen, uint32_t gen)
{
    size_t pos = 0;

    adds(c->buf, sizeof c->buf, &pos, "HTTP/1.1 ");
    adds(c->buf, sizeof c->buf, &pos, status);
    adds(c->buf, sizeof c->buf, &pos, "\r\nContent-Type: ");
    adds(c->buf, sizeof c->buf, &pos, type);
    adds(c->buf, sizeof c->buf, &pos, "\r\nContent-Length: ");
    addu(c->buf, sizeof c->buf, &pos, (uint32_t)(gen ? gen : bodylen));
    adds(c->buf, sizeof c->buf, &pos, "\r\nConnection: close\r\nServer: tether-mcu\r\n\r\n");
    add(c->buf, sizeof c->buf, &pos, body, bodylen);
    c->outlen = (uint16_t)pos;
    c->outpos = 0;
    c->gen_left = gen;
    c->gen_pos = 0;
    c->phase = RESPOND;
}

static void respond_page(struct conn *c)
{
    char body[256];
    size_t n = 0;

    adds(body, sizeof body, &n,
         "<!doctype html><title>tether-mcu</title><h1>Hello from a "
         "microcontroller</h1><p>Served by the Tether MCU agent. Uptime ");
    addu(body, sizeof body, &n, tt_port_now_ms() / 1000);
    adds(body, sizeof body, &n, " s, streams served ");
    addu(body, sizeof body, &n, served);
    adds(body, sizeof body, &n, ".</p>\n");
    respond(c, "200 OK", "text/html; charset=utf-8", body, n, 0);
}

static void respond_sum(struct conn *c)
{
    char body[64];
    size_t n = 0;

    adds(body, sizeof body, &n, "received ");
    addu(body, sizeof body, &n, c->body_got);
    adds(body, sizeof body, &n, " bytes, sum ");
    addu(body, sizeof body, &n, c->sum);
    adds(body, sizeof body, &n, "\n");
    respond(c, "200 OK", "text/plain", body, n, 0);
}

static void body_bytes(struct conn *c, const uint8_t *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        c->sum += p[i];
    c->body_got += (uint32_t)n;
    c->body_left -= (uint32_t)n;
}

/* The head is complete in buf[0..inlen): decide the answer (after the body, for POST). */
static void request(struct conn *c, size_t headlen, const char *path, size_t pathlen,
                    const struct phr_header *h, size_t nh)
{
    uint32_t cl = 0, n;
    size_t i;
    bool ok = true;

    for (i = 0; i < nh; i++) {
        if (h[i].name_len == 14 && (h[i].name[0] == 'C' || h[i].name[0] == 'c') &&
            memcmp(h[i].name + 1, "ontent-", 7) == 0 &&
            (h[i].name[8] == 'L' || h[i].name[8] == 'l') && memcmp(h[i].name + 9, "ength", 5) == 0)
            cl = parse_u32(h[i].value, h[i].value_len, &ok);
    }
    if (!ok) {
        respond(c, "400 Bad Request", "text/plain", "bad Content-Length\n", 19, 0);
        return;
    }
    c->body_left = cl;
    c->body_got = 0;
    c->sum = 0;
    n = (uint32_t)(c->inlen - headlen);
    if (n > c->body_left)
        n = c->body_left; /* a pipelined request after the body is not served */
    body_bytes(c, (const uint8_t *)c->buf + headlen, n);
    if (pathlen == 1 && path[0] == '/') {
        respond_page(c);
    } else if (pathlen > 6 && memcmp(path, "/data/", 6) == 0) {
        n = parse_u32(path + 6, pathlen - 6, &ok);
        if (ok && n <= DATA_MAX)
            respond(c, "200 OK", "application/octet-stream", "", 0, n ? n : 0);
        else
            respond(c, "400 Bad Request", "text/plain", "bad size\n", 9, 0);
        if (ok && n == 0) /* an empty body: Content-Length 0 */
            c->gen_left = 0;
    } else if (pathlen == 4 && memcmp(path, "/sum", 4) == 0) {
        c->phase = BODY; /* the answer comes once the whole body is in */
        if (c->body_left == 0)
            respond_sum(c);
    } else {
        respond(c, "404 Not Found", "text/plain", "not found\n", 10, 0);
    }
}

/* Writes what the windows allow; FIN once everything is out. */
static void pump(struct tether_mcu *a, struct conn *c)
{
    uint8_t chunk[256];
    uint32_t k, i;
    long n;

    if (c->phase != RESPOND)
        return;
    while (c->outpos < c->outlen) {
        n = tether_mcu_write(a, c->id, c->buf + c->outpos, (size_t)(c->outlen - c->outpos));
        if (n <= 0)
            return;
        c->outpos = (uint16_t)(c->outpos + n);
    }
    while (c->gen_left > 0) {
        k = c->gen_left < sizeof chunk ? c->gen_left : (uint32_t)sizeof chunk;
        for (i = 0; i < k; i++)
            chunk[i] = (uint8_t)pattern[(c->gen_pos + i) % PATTERN_LEN];
        n = tether_mcu_write(a, c->id, chunk, k);
        if (n <= 0)
            return;
        c->gen_pos += (uint32_t)n;
        c->gen_left -= (uint32_t)n;
    }
    if (tether_mcu_fin(a, c->id) == 0)
        c->phase = DONE;
}

static size_t http_data(struct tether_mcu *a, struct conn *c, const uint8_t *p, size_t len)
{
    struct phr_header h[16];
    size_t nh = 16, took, methodlen, pathlen;
    const char *method, *path;
    int minor, r;

    switch (c->phase) {
    case HEAD:
        took = sizeof c->buf - c->inlen;
        if (took > len)
            took = len;
        memcpy(c->buf + c->inlen, p, took);
        c->inlen = (uint16_t)(c->inlen + took);
        r = phr_parse_request(c->buf, c->inlen, &method, &methodlen, &path, &pathlen, &minor, h,
                              &nh, 0);
        if (r == -2 && c->inlen == sizeof c->buf)
            respond(c, "431 Request Header Fields Too Large", "text/plain", "head too large\n", 15,
                    0);
        else if (r == -1)
            respond(c, "400 Bad Request", "text/plain", "bad request\n", 12, 0);
        else if (r > 0)
            request(c, (size_t)r, path, pathlen, h, nh);
        pump(a, c);
        return took;
    case BODY:
        took = len < c->body_left ? len : c->body_left;
        body_bytes(c, p, took);
        if (c->body_left == 0) {
            respond_sum(c);
            pump(a, c);
        }
        return len; /* bytes after the body are dropped */
    default:
        return len; /* answering: what else comes is dropped */
    }
}

/* ---- the agent's callbacks ----------------------------------------------------------------- */

static int on_open(struct tether_mcu *a, uint32_t stream, uint8_t service, void *ud)
{
    struct conn *c = conn_of(0);
    (void)a;
    (void)ud;

    if (c == NULL)
        return TT_RESET_LIMIT;
    memset(c, 0, sizeof *c);
    c->id = stream;
    c->service = service;
    served++;
    return 0;
}

static size_t on_data(struct tether_mcu *a, uint32_t stream, const uint8_t *p, size_t len, void *ud)
{
    struct conn *c = conn_of(stream);
    long n;
    (void)ud;

    if (c == NULL)
        return len;
    if (c->service == TT_APP_SERVICE_HTTP)
        return http_data(a, c, p, len);
    n = tether_mcu_write(a, stream, p, len); /* echo: take what could be sent back */
    return n > 0 ? (size_t)n : 0;
}

static void echo_fin(struct tether_mcu *a, struct conn *c)
{
    if (tether_mcu_fin(a, c->id) == TETHER_ERR_AGAIN)
        c->fin_due = 1;
    else
        c->fin_due = 0;
}

static void on_fin(struct tether_mcu *a, uint32_t stream, void *ud)
{
    struct conn *c = conn_of(stream);
    (void)ud;

    if (c != NULL && c->service == TT_APP_SERVICE_ECHO)
        echo_fin(a, c); /* every byte was echoed: end our side too */
}

static void on_writable(struct tether_mcu *a, uint32_t stream, void *ud)
{
    struct conn *c = conn_of(stream);
    (void)ud;

    if (c == NULL)
        return;
    if (c->service == TT_APP_SERVICE_HTTP) {
        pump(a, c);
    } else {
        tether_mcu_resume(a, stream); /* echo: the buffered bytes can go out now */
        if (c->fin_due)
            echo_fin(a, c);
    }
}

static void on_close(struct tether_mcu *a, uint32_t stream, enum tether_mcu_end how, uint16_t code,
                     void *ud)
{
    struct conn *c = conn_of(stream);
    (void)a;
    (void)how;
    (void)code;
    (void)ud;

    if (c != NULL)
        c->id = 0;
}

static const char *refuse_name(uint16_t code)
{
    switch (code) {
    case TT_REFUSE_AUTH:
        return "AUTH";
    case TT_REFUSE_VERSION:
        return "VERSION";
    case TT_REFUSE_INVALID:
        return "INVALID";
    case TT_REFUSE_CAPACITY:
        return "CAPACITY";
    default:
        return "INTERNAL";
    }
}

static void print_retry(uint32_t ms)
{
    tt_port_print("; retry in ");
    print_u32(ms);
    tt_port_print(" ms\n");
}

static void on_event(struct tether_mcu *a, const struct tether_mcu_event *ev, void *ud)
{
    const struct tt_welcome *w = ev->welcome;
    unsigned i;
    (void)a;
    (void)ud;

    switch (ev->kind) {
    case TETHER_MCU_EV_READY:
        for (i = 0; i < w->nservices; i++) {
            tt_port_print(w->services[i].kind == TT_SERVICE_HTTP ? "ready http " : "ready tcp ");
            if (w->services[i].kind == TT_SERVICE_HTTP) {
                print_view(w->services[i].address.p, w->services[i].address.len);
            } else {
                print_view(w->services[i].name.p, w->services[i].name.len);
                if (w->services[i].port == 0) {
                    tt_port_print(" private");
                } else {
                    tt_port_print(" ");
                    print_view(w->services[i].address.p, w->services[i].address.len);
                    tt_port_print(":");
                    print_u32(w->services[i].port);
                }
            }
            tt_port_print("\n");
        }
        return;
    case TETHER_MCU_EV_REFUSED:
        tt_port_print("refused ");
        tt_port_print(refuse_name(ev->code));
        if (ev->reason.len > 0) {
            tt_port_print(": ");
            print_view(ev->reason.p, ev->reason.len);
        }
        print_retry(ev->retry_ms);
        return;
    case TETHER_MCU_EV_DISCONNECTED:
    case TETHER_MCU_EV_FAILED:
        tt_port_print(ev->kind == TETHER_MCU_EV_DISCONNECTED ? "disconnected: " : "error: ");
        tt_port_print(ev->what);
        if (ev->reason.len > 0) {
            tt_port_print(" (");
            print_view(ev->reason.p, ev->reason.len);
            tt_port_print(")");
        } else if (ev->kind == TETHER_MCU_EV_FAILED && ev->code != 0) {
            tt_port_print(" (status ");
            print_u32(ev->code);
            tt_port_print(")");
        }
        print_retry(ev->retry_ms);
        return;
    case TETHER_MCU_EV_KEY_LOST:
        tt_port_print("warning: ");
        tt_port_print(ev->what);
        tt_port_print("\n");
        return;
    }
}

static size_t key_load(void *ud, char out[TETHER_MCU_KEY_LEN])
{
    (void)ud;
    return tt_port_key_load(out, TETHER_MCU_KEY_LEN);
}

static int key_store(void *ud, const char *key, size_t len)
{
    (void)ud;
    return tt_port_key_store(key, len);
}

static void random_bytes(void *ud, uint8_t *out, size_t len)
{
    (void)ud;
    tt_port_random(out, len);
}

const struct tether_mcu_callbacks tt_app_callbacks = {
    .open = on_open,
    .data = on_data,
    .fin = on_fin,
    .writable = on_writable,
    .close = on_close,
    .event = on_event,
    .key_load = key_load,
    .key_store = key_store,
    .random = random_bytes,
};
