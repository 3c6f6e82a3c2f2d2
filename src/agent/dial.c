/* dial.c - one attempt to reach a relay (dial.h): a name lookup (resolve.h), a TCP connect to
 * each address in turn, then the connection filters, bottom to top, each consuming the bytes meant
 * for it and passing what is left to the one above: the HTTP proxy CONNECT filter (when a proxy
 * applies to the hop: the TCP connect then goes to the proxy), a TLS filter, the WebSocket
 * handshake. Redirects restart the attempt at the new URL. This file owns the socket until it hands
 * it over on success; it never speaks the Tether protocol itself. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "agent/dial.h"
#include "agent/proxy.h"
#include "agent/relaytext.h"
#include "agent/resolve.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/wshs.h"
#include "tether_err.h"

#define URL_MAX 2048
#define RBUF_LEN (17 * 1024) /* holds a 16 KiB head (wshs's limit) plus what follows it */
#define BODY_MAX 512         /* of a refusal's text body: the first line is what we keep */
#define DIAL_REDIRECT 2      /* filter input: follow d->location */

/* A connection filter: a layer of the dial path above the TCP socket. start() runs once the
 * layers below are connected (it may write its opening bytes); input() gets the bytes that came
 * up from below, says how many it used, and returns 1 when this layer is connected, 0 for more
 * bytes, DIAL_REDIRECT, or a negative tether_err with d->msg set. */
struct dial_filter {
    const char *name;
    int (*start)(struct tt_dial *d);
    int (*input)(struct tt_dial *d, const uint8_t *in, size_t len, size_t *used);
};

#define MAX_FILTERS 3 /* proxy CONNECT, TLS, WebSocket */

struct tt_dial {
    uv_loop_t *loop;
    tt_dial_cb cb;
    void *ud;
    struct tt_dial_options opt;
    char url[URL_MAX]; /* the current hop */
    struct tt_url u;
    unsigned redirects;
    bool done;      /* the callback ran (or was cancelled): only cleanup remains */
    bool cancelled; /* never call the callback */
    int pending;    /* libuv callbacks still to come; d is freed when done and 0 */
    uv_timer_t timer;
    struct tt_resolve *lookup; /* the name lookup under way, or NULL */
    union tt_sockaddr addrs[TT_RESOLVE_MAX_ADDRS];
    size_t naddrs, next_addr; /* the addresses found, and the next one to try */
    struct tt_conn *conn;     /* the current socket; NULL once closed or handed over */
    const struct dial_filter *stack[MAX_FILTERS];
    size_t nfilters, cur;
    uint8_t rbuf[RBUF_LEN];
    size_t rlen;
    int last_err;        /* of the last failed connect, for the final message */
    char msg[TT_ERRLEN]; /* a filter's failure */
    /* HTTP proxy of the current hop (tt_proxy_select); the TCP connect goes to it */
    bool via_proxy;
    bool tcp_up;                /* the current socket is connected: the filters are running */
    bool stalled;               /* the hop's timer struck while tcp_up (tt_dial_result.stalled) */
    struct tt_tls_ctx *own_tls; /* made on demand when opt.tls is NULL (a redirect to wss://) */
    struct tt_proxy proxy;
    /* WebSocket filter state */
    char key[TT_WS_KEYLEN + 1];
    char location[1024];
    int status;
    uint32_t retry_after; /* of the refusal (tt_wshs_response) */
    bool refused;         /* a refusal's head came; its body is being read (up to BODY_MAX) */
    size_t body_off;      /* where the body starts in rbuf */
    uint64_t body_want;   /* bytes of it to wait for */
    char body[BODY_MAX];  /* the refusal's first body line, cleaned */
};

struct connect_req {
    uv_connect_t req;
    struct tt_dial *d;
};

struct write_req {
    uv_write_t req;
    struct tt_dial *d;
    size_t len;
    char buf[]; /* len bytes */
};

static void start_hop(struct tt_dial *d);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void maybe_free(struct tt_dial *d)
{
    if (d->done && d->pending == 0) {
        OPENSSL_cleanse(&d->proxy, sizeof d->proxy); /* the proxy's credentials */
        tt_tls_ctx_free(d->own_tls);
        free(d);
    }
}

static void on_tcp_closed(uv_handle_t *h)
{
    struct tt_dial *d = h->data;
    d->pending--;
    maybe_free(d);
}

static void close_tcp(struct tt_dial *d)
{
    if (d->conn == NULL)
        return;
    d->pending++;
    tt_conn_close(d->conn, on_tcp_closed);
    d->conn = NULL;
}

/* True when h is the current socket's handle (a callback of an older one is stale). */
static bool is_current(const struct tt_dial *d, const void *h)
{
    return !d->done && d->conn != NULL && h == (const void *)&d->conn->tcp;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct tt_dial *d = h->data;
    d->pending--;
    maybe_free(d);
}

/* Everything after the outcome: close what is open, free d once the last callback is in. */
static void cleanup(struct tt_dial *d)
{
    d->done = true;
    uv_timer_stop(&d->timer);
    d->pending++;
    uv_close((uv_handle_t *)&d->timer, on_timer_closed);
    close_tcp(d);
    if (d->lookup != NULL) {
        tt_resolve_cancel(d->lookup); /* it frees itself */
        d->lookup = NULL;
    }
    maybe_free(d);
}

static void fail(struct tt_dial *d, int err, const char *fmt, ...) TT_PRINTF(3, 4);

static void fail(struct tt_dial *d, int err, const char *fmt, ...)
{
    struct tt_dial_result r = {0};
    char msg[TT_ERRLEN];
    va_list ap;

    if (d->done)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    d->done = true;
    r.err = err;
    r.message = msg;
    r.url = d->url;
    r.status = d->refused ? d->status : 0;
    r.body = d->refused ? d->body : "";
    r.retry_after = d->refused ? d->retry_after : 0;
    r.stalled = d->stalled;
    r.timeout_ms = d->opt.timeout_ms;
    TT_LOG(TT_LOG_DEBUG, "dial failed url=%s err=%s: %s", TT_LOG_V(d->url), tether_err_name(err),
           TT_LOG_E(msg));
    if (!d->cancelled)
        d->cb(d, &r, d->ud);
    cleanup(d);
}

static void succeed(struct tt_dial *d)
{
    struct tt_dial_result r = {0};

    tt_conn_read_stop(d->conn);
    d->done = true;
    r.err = 0;
    r.message = "";
    r.url = d->url;
    r.conn = d->conn;
    r.pre = d->rbuf;
    r.prelen = d->rlen;
    d->conn = NULL; /* the callback's now */
    TT_LOG(TT_LOG_DEBUG, "dial connected url=%s", TT_LOG_V(d->url));
    d->cb(d, &r, d->ud);
    cleanup(d);
}

/* What the dial's caller gets for a libuv code: refused, timed out, out of memory, or I/O. */
static int map_uv_err(int uverr)
{
    int e = tt_conn_err(uverr);
    return e == TETHER_ERR_REFUSED || e == TETHER_ERR_TIMEOUT || e == TETHER_ERR_NOMEM
               ? e
               : TETHER_ERR_IO;
}

/* ---- writing (straight to the socket until a TLS filter sits below the caller) ---------- */

static void on_written(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct tt_dial *d = w->d;
    bool current = is_current(d, req->handle);

    OPENSSL_cleanse(w->buf, w->len); /* a CONNECT carries the proxy's credentials */
    free(w);
    d->pending--;
    if (current && status < 0)
        fail(d, map_uv_err(status), "cannot send to %s: %s", d->url, uv_strerror(status));
    maybe_free(d);
}

static int dial_write(struct tt_dial *d, const void *data, size_t len)
{
    struct write_req *w = malloc(sizeof *w + len);
    uv_buf_t b;
    int rc;

    if (w == NULL) {
        tt_errf(d->msg, "out of memory");
        return TETHER_ERR_NOMEM;
    }
    w->d = d;
    w->len = len;
    memcpy(w->buf, data, len);
    b = uv_buf_init(w->buf, (unsigned)len);
    rc = tt_conn_write(d->conn, &w->req, &b, 1, on_written);
    if (rc < 0) {
        OPENSSL_cleanse(w->buf, w->len);
        free(w);
        tt_errf(d->msg, "cannot send to %s: %s", d->url, uv_strerror(rc));
        return map_uv_err(rc);
    }
    d->pending++;
    return 0;
}

/* ---- the WebSocket handshake filter -------------------------------------------------------- */

static int ws_start(struct tt_dial *d)
{
    char req[4096];
    char host[TT_HOSTLEN + 2];
    bool default_port = d->u.port == (strcmp(d->u.scheme, "wss") == 0 ? 443 : 80);
    int n;

    if (tt_wshs_make_key(d->key) != 0) {
        tt_errf(d->msg, "cannot make a WebSocket key (no randomness)");
        return TETHER_ERR_IO;
    }
    if (strchr(d->u.host, ':'))
        snprintf(host, sizeof host, "[%s]", d->u.host);
    else
        snprintf(host, sizeof host, "%s", d->u.host);
    n = tt_wshs_client_request_ex(req, sizeof req, host, d->u.port, default_port, d->u.path, d->key,
                                  d->opt.subprotocol, d->opt.headers);
    if (n < 0) {
        tt_errf(d->msg, "WebSocket request for %s is too long", d->url);
        return TETHER_ERR_TOO_LARGE;
    }
    int rc = dial_write(d, req, (size_t)n);
    OPENSSL_cleanse(req, sizeof req); /* extra headers may hold credentials */
    return rc;
}

/* The refusal's body (in rbuf from body_off) as one cleaned line into d->body. */
static void keep_body(struct tt_dial *d)
{
    size_t n = d->rlen > d->body_off ? d->rlen - d->body_off : 0;
    const uint8_t *p = d->rbuf + d->body_off;

    if (n > d->body_want)
        n = (size_t)d->body_want;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r' || p[i] == '\n') {
            n = i;
            break;
        }
    }
    tt_relaytext_clean(d->body, sizeof d->body, p, n);
}

/* A refused handshake, once its body is in (or will not come): the failure. */
static int refusal(struct tt_dial *d)
{
    keep_body(d);
    if (d->status == 101)
        tt_errf(d->msg, "WebSocket handshake with %s failed: bad upgrade answer", d->url);
    else
        tt_errf(d->msg, "WebSocket handshake with %s failed: HTTP %d", d->url, d->status);
    return TETHER_ERR_HANDSHAKE;
}

static int ws_input(struct tt_dial *d, const uint8_t *in, size_t len, size_t *used)
{
    struct tt_wshs_response r;
    int rc;

    if (d->refused) /* waiting for the refusal's body */
        return d->rlen - d->body_off >= d->body_want ? refusal(d) : 0;
    rc = tt_wshs_read_response_ex(in, len, d->key, d->opt.subprotocol, &r);
    if (rc == TETHER_ERR_AGAIN)
        return 0;
    if (rc != 0) {
        tt_errf(d->msg, "bad HTTP answer from %s during the WebSocket handshake", d->url);
        return TETHER_ERR_HTTP;
    }
    d->status = r.status;
    d->retry_after = r.retry_after;
    if (r.accepted) {
        *used = r.head_len;
        return 1;
    }
    if ((r.status == 301 || r.status == 302 || r.status == 307 || r.status == 308) &&
        r.location[0] != '\0') {
        /* the relay's text, in our messages and logs from now on */
        tt_relaytext_clean(d->location, sizeof d->location, r.location, strlen(r.location));
        return DIAL_REDIRECT;
    }
    d->refused = true;
    d->body_off = r.head_len;
    d->body_want = 0;
    if (r.status != 101 && r.text_plain && r.content_length != UINT64_MAX)
        d->body_want = r.content_length < BODY_MAX ? r.content_length : BODY_MAX;
    return d->rlen - d->body_off >= d->body_want ? refusal(d) : 0;
}

static const struct dial_filter ws_filter = {"websocket", ws_start, ws_input};

/* ---- the HTTP proxy CONNECT filter (proxy.h) ---------------------------------------------- */

static int proxy_start(struct tt_dial *d)
{
    char req[TT_PROXY_REQUEST_MAX];
    int n = tt_proxy_connect_request(req, sizeof req, &d->proxy, d->u.host, d->u.port);
    int rc;

    if (n < 0) {
        tt_errf(d->msg, "CONNECT request to proxy %s is too long", d->proxy.display);
        return TETHER_ERR_TOO_LARGE;
    }
    TT_LOG(TT_LOG_DEBUG, "proxy CONNECT proxy=%s from=%s target=%s:%u auth=%s", d->proxy.display,
           d->proxy.source, TT_LOG_V(d->u.host), (unsigned)d->u.port,
           d->proxy.auth ? "basic" : "none");
    rc = dial_write(d, req, (size_t)n);
    OPENSSL_cleanse(req, sizeof req);
    return rc;
}

static int proxy_input(struct tt_dial *d, const uint8_t *in, size_t len, size_t *used)
{
    struct tt_proxy_response r;
    int rc = tt_proxy_parse_response(in, len, &r);

    if (rc == 0)
        return 0;
    if (rc < 0) {
        tt_errf(d->msg, "bad answer from proxy %s to CONNECT %s:%u%s", d->proxy.display, d->u.host,
                (unsigned)d->u.port, len >= TT_PROXY_MAX_HEAD ? " (head too large)" : "");
        return len >= TT_PROXY_MAX_HEAD ? TETHER_ERR_TOO_LARGE : TETHER_ERR_HTTP;
    }
    if (r.status >= 200 && r.status < 300) {
        TT_LOG(TT_LOG_DEBUG, "proxy tunnel open proxy=%s status=%d", d->proxy.display, r.status);
        *used = r.head_len;
        return 1;
    }
    if (r.status == 407 || r.status == 401) {
        /* The words matter: with credentials they were wrong, without they are missing. 407 is
         * the standard answer; some proxies (tinyproxy 1.11, for wrong credentials) say 401. */
        tt_errf(d->msg, "%s (proxy %s from %s answered %d %s to CONNECT %s:%u)",
                d->proxy.auth ? "proxy authentication failed" : "proxy requires authentication",
                d->proxy.display, d->proxy.source, r.status, r.reason, d->u.host,
                (unsigned)d->u.port);
        return TETHER_ERR_AUTH;
    }
    tt_errf(d->msg, "proxy refused CONNECT: %d %s (proxy %s from %s, target %s:%u)", r.status,
            r.reason, d->proxy.display, d->proxy.source, d->u.host, (unsigned)d->u.port);
    return TETHER_ERR_REFUSED;
}

static const struct dial_filter proxy_filter = {"proxy", proxy_start, proxy_input};

/* ---- the TLS filter (wss://) --------------------------------------------------------------- */

static void next_filter(struct tt_dial *d);

/* The handshake is over (the TLS session reads the socket on its own until then, so input()
 * never sees its bytes). */
static void on_tls_handshake(struct tt_conn *c, int err, const char *msg, void *ud)
{
    struct tt_dial *d = ud;
    char desc[96];

    if (d->done)
        return;
    if (err != 0) {
        fail(d, err, "TLS handshake with %s failed: %s", d->url, msg);
        return;
    }
    tt_tls_describe(c, desc, sizeof desc);
    TT_LOG(TT_LOG_DEBUG, "tls connected url=%s %s", TT_LOG_V(d->url), desc);
    next_filter(d);
}

/* Puts a TLS session on the socket, the bytes left below (none, normally: the server speaks
 * second) as its first input, and starts the handshake: the relay's certificate is checked
 * against the context's CAs and against the URL's host, which also goes out as SNI. */
static int tls_start(struct tt_dial *d)
{
    struct tt_tls_ctx *ctx = d->opt.tls;
    int rc;

    if (ctx == NULL) {
        if (d->own_tls == NULL && (rc = tt_tls_ctx_client(&d->own_tls, NULL, false, d->msg)) != 0)
            return rc;
        ctx = d->own_tls;
    }
    tt_conn_read_stop(d->conn);
    rc = tt_tls_connect(d->conn, ctx, d->u.host, d->rbuf, d->rlen, on_tls_handshake, d);
    d->rlen = 0;
    if (rc != 0) {
        tt_errf(d->msg, "cannot start TLS with %s: %s", d->url, tether_strerror(rc));
        return rc;
    }
    /* From here on the socket's reads come as plaintext. */
    rc = tt_conn_read_start(d->conn, on_alloc, on_read);
    if (rc < 0) {
        tt_errf(d->msg, "cannot read from %s: %s", d->url, uv_strerror(rc));
        return map_uv_err(rc);
    }
    return 0;
}

static int tls_input(struct tt_dial *d, const uint8_t *in, size_t len, size_t *used)
{
    (void)d;
    (void)in;
    (void)len;
    (void)used;
    return 0; /* plaintext only comes after the handshake, and on_tls_handshake moves on */
}

static const struct dial_filter tls_filter = {"tls", tls_start, tls_input};

/* The stack for the current hop, bottom to top: the proxy's CONNECT when the hop goes through
 * one, TLS for wss://, the WebSocket handshake. */
static void build_stack(struct tt_dial *d)
{
    d->nfilters = 0;
    if (d->via_proxy)
        d->stack[d->nfilters++] = &proxy_filter;
    if (strcmp(d->u.scheme, "wss") == 0)
        d->stack[d->nfilters++] = &tls_filter;
    d->stack[d->nfilters++] = &ws_filter;
    d->cur = 0;
}

/* What the TCP connect goes to, for messages: the relay's URL, or the proxy and why. */
static void describe_peer(const struct tt_dial *d, char *out, size_t outlen)
{
    if (d->via_proxy)
        snprintf(out, outlen, "proxy %s (from %s) for %s", d->proxy.display, d->proxy.source,
                 d->url);
    else
        snprintf(out, outlen, "%s", d->url);
}

/* ---- reading and feeding the filters ------------------------------------------------------- */

static void redirect(struct tt_dial *d)
{
    char next[URL_MAX];
    char err[TT_ERRLEN];

    if (tt_dial_redirect_url(d->url, d->location, next, sizeof next, err) != 0) {
        fail(d, TETHER_ERR_HANDSHAKE, "%s redirected (HTTP %d) to an unusable location: %s", d->url,
             d->status, err);
        return;
    }
    if (++d->redirects > d->opt.max_redirects) {
        fail(d, TETHER_ERR_HANDSHAKE, "too many redirects (more than %u) from %s",
             d->opt.max_redirects, d->url);
        return;
    }
    TT_LOG(TT_LOG_INFO, "redirected from=%s to=%s status=%d", TT_LOG_V(d->url), TT_LOG_V(next),
           d->status);
    close_tcp(d);
    snprintf(d->url, sizeof d->url, "%s", next);
    start_hop(d);
}

/* The current filter is connected: start the next one, or hand the socket over. */
static void next_filter(struct tt_dial *d)
{
    int rc;

    if (++d->cur == d->nfilters) {
        succeed(d);
        return;
    }
    rc = d->stack[d->cur]->start(d);
    if (rc < 0)
        fail(d, rc, "%s", d->msg);
}

static void feed(struct tt_dial *d)
{
    while (!d->done) {
        size_t used = 0;
        int rc = d->stack[d->cur]->input(d, d->rbuf, d->rlen, &used);

        if (rc == 0) {
            if (d->rlen == sizeof d->rbuf)
                fail(d, TETHER_ERR_TOO_LARGE, "answer from %s is too large", d->url);
            return;
        }
        if (rc == DIAL_REDIRECT) {
            redirect(d);
            return;
        }
        if (rc < 0) {
            fail(d, rc, "%s", d->msg);
            return;
        }
        memmove(d->rbuf, d->rbuf + used, d->rlen - used);
        d->rlen -= used;
        next_filter(d);
        if (d->rlen == 0)
            return;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct tt_dial *d = h->data;
    (void)suggested;
    *buf = uv_buf_init((char *)d->rbuf + d->rlen, (unsigned)(sizeof d->rbuf - d->rlen));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tt_dial *d = s->data;
    (void)buf;

    if (!is_current(d, s))
        return;
    if (nread == UV_EOF) {
        if (d->refused) /* the refusal's body ended early: what came is what we have */
            fail(d, refusal(d), "%s", d->msg);
        else if (d->stack[d->cur] == &proxy_filter)
            fail(d, TETHER_ERR_CLOSED, "proxy %s closed the connection before answering CONNECT",
                 d->proxy.display);
        else
            fail(d, TETHER_ERR_CLOSED, "%s closed the connection during the handshake", d->url);
        return;
    }
    if (nread == UV_ENOBUFS) {
        fail(d, TETHER_ERR_TOO_LARGE, "answer from %s is too large", d->url);
        return;
    }
    if (nread < 0) {
        fail(d, map_uv_err((int)nread), "cannot read from %s: %s", d->url, uv_strerror((int)nread));
        return;
    }
    d->rlen += (size_t)nread;
    if (nread > 0)
        feed(d);
}

/* ---- connecting ---------------------------------------------------------------------------- */

static void try_next_addr(struct tt_dial *d);

static void on_connect(uv_connect_t *req, int status)
{
    struct connect_req *cr = (struct connect_req *)req;
    struct tt_dial *d = cr->d;
    bool current = is_current(d, req->handle);
    int rc;

    free(cr);
    d->pending--;
    if (!current) {
        maybe_free(d);
        return;
    }
    if (status < 0) {
        d->last_err = status;
        TT_LOG(TT_LOG_DEBUG, "connect failed url=%s err=%s", TT_LOG_V(d->url), uv_err_name(status));
        close_tcp(d);
        d->next_addr++;
        try_next_addr(d);
        return;
    }
    d->naddrs = d->next_addr = 0;
    d->tcp_up = true;
    uv_tcp_nodelay(&d->conn->tcp, 1);
    rc = tt_conn_read_start(d->conn, on_alloc, on_read);
    if (rc < 0) {
        fail(d, map_uv_err(rc), "cannot read from %s: %s", d->url, uv_strerror(rc));
        return;
    }
    rc = d->stack[d->cur]->start(d);
    if (rc < 0)
        fail(d, rc, "%s", d->msg);
}

static void try_next_addr(struct tt_dial *d)
{
    while (d->next_addr < d->naddrs) {
        struct connect_req *cr;
        int rc;

        cr = malloc(sizeof *cr);
        d->conn = NULL;
        if (cr == NULL || tt_conn_new(&d->conn, d->loop) != 0) {
            free(cr);
            fail(d, TETHER_ERR_NOMEM, "out of memory");
            return;
        }
        d->conn->tcp.data = d;
        cr->d = d;
        rc = uv_tcp_connect(&cr->req, &d->conn->tcp, &d->addrs[d->next_addr].sa, on_connect);
        if (rc == 0) {
            d->pending++;
            return;
        }
        free(cr);
        d->last_err = rc;
        close_tcp(d);
        d->next_addr++;
    }
    {
        char peer[TT_ERRLEN];
        describe_peer(d, peer, sizeof peer);
        fail(d, map_uv_err(d->last_err), "cannot connect to %s: %s", peer,
             d->last_err ? uv_strerror(d->last_err) : "no address");
    }
}

static void on_resolved(struct tt_resolve *r, const struct tt_resolve_result *res, void *ud)
{
    struct tt_dial *d = ud;
    (void)r;

    d->lookup = NULL;
    if (res->err != 0) {
        if (d->via_proxy)
            fail(d, res->err, "proxy %s (from %s): %s", d->proxy.url.host, d->proxy.source,
                 res->message);
        else
            fail(d, res->err, "%s", res->message);
        return;
    }
    memcpy(d->addrs, res->addrs, res->naddrs * sizeof d->addrs[0]);
    d->naddrs = res->naddrs;
    d->next_addr = 0;
    d->last_err = 0;
    try_next_addr(d);
}

static void on_timeout(uv_timer_t *t)
{
    struct tt_dial *d = t->data;
    char secs[32];

    if (d->refused) { /* the refusal's body never came whole: what came is what we have */
        fail(d, refusal(d), "%s", d->msg);
        return;
    }
    /* the timeout used, in the message: it grows after stalled dials (tt_dialtimeout_next) */
    if (d->opt.timeout_ms % 1000 == 0)
        snprintf(secs, sizeof secs, "%u s", (unsigned)(d->opt.timeout_ms / 1000));
    else
        snprintf(secs, sizeof secs, "%.1f s", d->opt.timeout_ms / 1000.0);
    d->stalled = d->tcp_up;
    if (d->via_proxy && d->tcp_up && d->stack[d->cur] == &proxy_filter)
        fail(d, TETHER_ERR_TIMEOUT,
             "timed out waiting for proxy %s to answer CONNECT %s:%u (no answer in %s)",
             d->proxy.display, d->u.host, (unsigned)d->u.port, secs);
    else {
        char peer[TT_ERRLEN];
        describe_peer(d, peer, sizeof peer);
        fail(d, TETHER_ERR_TIMEOUT, "timed out connecting to %s (%s in %s)", peer,
             d->tcp_up ? "connected, but no answer" : "no connection", secs);
    }
}

/* Starts (or restarts, after a redirect) the attempt at d->url. */
static void start_hop(struct tt_dial *d)
{
    static const char *const schemes[] = {"ws", "wss", NULL};
    char perr[TT_ERRLEN];
    int rc;

    if (tt_parse_url(d->url, schemes, &d->u, perr) != 0) {
        fail(d, TETHER_ERR_CONFIG, "bad server URL %s: %s", d->url, perr);
        return;
    }
    d->rlen = 0;
    d->tcp_up = false;
    d->refused = false;
    rc = tt_proxy_select(d->opt.proxy, d->u.scheme, d->u.host, &d->proxy, perr);
    if (rc < 0) {
        fail(d, rc, "bad proxy setting for %s: %s", d->url, perr);
        return;
    }
    d->via_proxy = rc == 1;
    if (d->via_proxy)
        TT_LOG(TT_LOG_DEBUG, "dialing url=%s via proxy=%s from=%s", TT_LOG_V(d->url),
               d->proxy.display, d->proxy.source);
    build_stack(d);
    uv_timer_start(&d->timer, on_timeout, d->opt.timeout_ms, 0);
    d->naddrs = d->next_addr = 0;
    rc = tt_resolve_start(&d->lookup, d->loop, d->opt.resolver,
                          d->via_proxy ? d->proxy.url.host : d->u.host,
                          d->via_proxy ? d->proxy.url.port : d->u.port, on_resolved, d, perr);
    if (rc != 0) {
        d->lookup = NULL;
        fail(d, rc, "%s", perr);
    }
}

static void on_first_hop(uv_timer_t *t)
{
    start_hop(t->data);
}

int tt_dial_start(struct tt_dial **out, uv_loop_t *loop, const char *url,
                  const struct tt_dial_options *opt, tt_dial_cb cb, void *ud, char err[TT_ERRLEN])
{
    static const char *const schemes[] = {"ws", "wss", NULL};
    struct tt_dial *d;
    struct tt_url u;
    char perr[TT_ERRLEN];

    if (strlen(url) >= URL_MAX || tt_parse_url(url, schemes, &u, perr) != 0) {
        tt_errf(err, "bad server URL %s (expected ws:// or wss://)", url);
        return TETHER_ERR_CONFIG;
    }
    d = calloc(1, sizeof *d);
    if (d == NULL) {
        tt_errf(err, "out of memory");
        return TETHER_ERR_NOMEM;
    }
    d->loop = loop;
    d->cb = cb;
    d->ud = ud;
    d->opt.timeout_ms = opt && opt->timeout_ms ? opt->timeout_ms : TT_DIAL_TIMEOUT_MS;
    d->opt.max_redirects = opt && opt->max_redirects ? opt->max_redirects : TT_DIAL_MAX_REDIRECTS;
    d->opt.proxy = opt ? opt->proxy : NULL;
    d->opt.tls = opt ? opt->tls : NULL;
    d->opt.subprotocol = opt ? opt->subprotocol : NULL;
    d->opt.headers = opt ? opt->headers : NULL;
    d->opt.resolver = opt ? opt->resolver : NULL;
    snprintf(d->url, sizeof d->url, "%s", url);
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    *out = d;
    /* Failures from here on are reported through cb, asynchronously: defer the first hop to
     * the timer so that cb never runs inside tt_dial_start(). */
    uv_timer_start(&d->timer, on_first_hop, 0, 0);
    return 0;
}

void tt_dial_cancel(struct tt_dial *d)
{
    if (d == NULL || d->done)
        return;
    d->cancelled = true;
    d->done = true;
    cleanup(d);
}

static bool has_prefix_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

int tt_dial_redirect_url(const char *base, const char *location, char *out, size_t outlen,
                         char err[TT_ERRLEN])
{
    static const char *const any[] = {"ws", "wss", "http", "https", NULL};
    struct tt_url u;
    char perr[TT_ERRLEN];
    int n;

    if (location[0] == '/' && location[1] != '/') {
        if (tt_parse_url(base, any, &u, perr) != 0) {
            tt_errf(err, "bad base URL %s", base);
            return -1;
        }
        if (strchr(u.host, ':'))
            n = snprintf(out, outlen, "%s://[%s]:%u%s", u.scheme, u.host, (unsigned)u.port,
                         location);
        else
            n = snprintf(out, outlen, "%s://%s:%u%s", u.scheme, u.host, (unsigned)u.port, location);
    } else if (has_prefix_ci(location, "http://")) {
        n = snprintf(out, outlen, "ws://%s", location + 7);
    } else if (has_prefix_ci(location, "https://")) {
        n = snprintf(out, outlen, "wss://%s", location + 8);
    } else if (has_prefix_ci(location, "ws://")) {
        n = snprintf(out, outlen, "ws://%s", location + 5);
    } else if (has_prefix_ci(location, "wss://")) {
        n = snprintf(out, outlen, "wss://%s", location + 6);
    } else {
        tt_errf(err, "unsupported Location '%s' (need an absolute ws:// or http:// URL)", location);
        return -1;
    }
    if (n < 0 || (size_t)n >= outlen) {
        tt_errf(err, "Location is too long");
        return -1;
    }
    if (tt_parse_url(out, any, &u, perr) != 0) {
        tt_errf(err, "bad Location '%s': %s", location, perr);
        return -1;
    }
    /* no way down from TLS: the next hop would get the device's name and token in clear */
    if ((has_prefix_ci(base, "wss://") || has_prefix_ci(base, "https://")) &&
        strcmp(u.scheme, "ws") == 0) {
        tt_errf(err,
                "refused: %s would leave TLS for cleartext ws:// (a redirect never downgrades "
                "wss://, so the device's token is not sent unencrypted)",
                out);
        return -1;
    }
    return 0;
}
