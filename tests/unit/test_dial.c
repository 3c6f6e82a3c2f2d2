/* test_dial.c - unit tests for src/agent/dial.c: redirect targets (pure), and whole attempts on
 * a real loop against small loopback servers written here: a redirect followed to a server that
 * accepts (bytes past the handshake handed over), an HTTP error, a refused connect, a redirect
 * loop, and a cancel. Every test closes its handles and checks uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/dial.h"
#include "common/wshs.h"
#include "tether_err.h"

#include "support_loop.h"

static void test_redirect_url(void **state)
{
    char out[256], err[TT_ERRLEN];
    (void)state;

    assert_int_equal(tt_dial_redirect_url("ws://a:1/", "http://b:2/x?y=1", out, sizeof out, err),
                     0);
    assert_string_equal(out, "ws://b:2/x?y=1");
    assert_int_equal(tt_dial_redirect_url("ws://a:1/", "HTTP://b/", out, sizeof out, err), 0);
    assert_string_equal(out, "ws://b/");
    assert_int_equal(tt_dial_redirect_url("ws://a:1/", "https://b:443/", out, sizeof out, err), 0);
    assert_string_equal(out, "wss://b:443/");
    assert_int_equal(tt_dial_redirect_url("ws://a:1/", "ws://[::1]:9/p", out, sizeof out, err), 0);
    assert_string_equal(out, "ws://[::1]:9/p");
    assert_int_equal(tt_dial_redirect_url("ws://a:1/old", "/new", out, sizeof out, err), 0);
    assert_string_equal(out, "ws://a:1/new");
    assert_int_equal(tt_dial_redirect_url("ws://[::1]:7/", "/n", out, sizeof out, err), 0);
    assert_string_equal(out, "ws://[::1]:7/n");
    assert_int_equal(tt_dial_redirect_url("ws://a/", "/n", out, sizeof out, err), 0);
    assert_string_equal(out, "ws://a:80/n");

    assert_int_equal(tt_dial_redirect_url("ws://a:1/", "ftp://b/", out, sizeof out, err), -1);
    assert_non_null(strstr(err, "ftp://b/"));
    assert_int_equal(tt_dial_redirect_url("ws://a:1/", "relative", out, sizeof out, err), -1);
    assert_int_equal(tt_dial_redirect_url("ws://a:1/", "//b/x", out, sizeof out, err), -1);
    assert_int_equal(tt_dial_redirect_url("ws://a:1/", "http://", out, sizeof out, err), -1);
    assert_int_equal(tt_dial_redirect_url("ws://a:1/", "http://b:2/x", out, 8, err), -1);

    /* never down from TLS, on any host; up is fine */
    assert_int_equal(tt_dial_redirect_url("wss://a:1/", "ws://evil:80/", out, sizeof out, err), -1);
    assert_non_null(strstr(err, "cleartext ws://"));
    assert_int_equal(tt_dial_redirect_url("wss://a:1/", "http://a:1/", out, sizeof out, err), -1);
    assert_int_equal(tt_dial_redirect_url("WSS://a:1/", "ws://a:1/", out, sizeof out, err), -1);
    assert_int_equal(tt_dial_redirect_url("wss://a:1/", "wss://b:2/", out, sizeof out, err), 0);
    assert_string_equal(out, "wss://b:2/");
    assert_int_equal(tt_dial_redirect_url("wss://a:1/", "https://b/", out, sizeof out, err), 0);
    assert_string_equal(out, "wss://b/");
    assert_int_equal(tt_dial_redirect_url("wss://a:1/x", "/y", out, sizeof out, err), 0);
    assert_string_equal(out, "wss://a:1/y");
    assert_int_equal(tt_dial_redirect_url("ws://a:1/", "wss://b:2/", out, sizeof out, err), 0);
    assert_int_equal(tt_dial_redirect_url("wss://a:1/", "ftp://b/", out, sizeof out, err), -1);
}

/* ---- a tiny loopback HTTP server ---------------------------------------------------------- */

enum srv_mode { SRV_ACCEPT, SRV_REDIRECT, SRV_404, SRV_LOOP, SRV_SILENT };

struct srv {
    uv_tcp_t listener;
    enum srv_mode mode;
    int port;
    char location[128];
    int requests;
};

struct srv_conn {
    uv_tcp_t tcp;
    struct srv *srv;
    bool answered;
    char buf[8192];
    size_t len;
    uv_write_t wr;
    char out[1024];
};

static void conn_closed(uv_handle_t *h)
{
    free(h);
}

static void conn_written(uv_write_t *req, int status)
{
    struct srv_conn *c = req->data;
    (void)status;
    /* An accepting server keeps the connection (and reads on, until the client closes). */
    if (c->srv->mode != SRV_ACCEPT)
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void conn_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    struct srv_conn *c = h->data;
    (void)sz;
    if (c->answered || c->srv->mode == SRV_SILENT)
        c->len = 0; /* drop what comes after the request */
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - 1 - c->len));
}

static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct srv_conn *c = s->data;
    const char *k;
    char key[TT_WS_KEYLEN + 1], accept[TT_WS_ACCEPTLEN + 1];
    int outlen = 0;
    uv_buf_t ob;
    (void)b;

    if (n < 0) {
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)&c->tcp, conn_closed);
        return;
    }
    if (c->answered || c->srv->mode == SRV_SILENT)
        return;
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    if (strstr(c->buf, "\r\n\r\n") == NULL)
        return;
    c->answered = true;
    c->srv->requests++;
    switch (c->srv->mode) {
    case SRV_ACCEPT:
        k = strstr(c->buf, "Sec-WebSocket-Key: ");
        assert_non_null(k);
        memcpy(key, k + 19, TT_WS_KEYLEN);
        key[TT_WS_KEYLEN] = '\0';
        assert_int_equal(tt_wshs_accept(key, TT_WS_KEYLEN, accept), 0);
        outlen = snprintf(c->out, sizeof c->out,
                          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                          "Sec-WebSocket-Protocol: tether.v1\r\n\r\nPRE!",
                          accept);
        break;
    case SRV_REDIRECT:
    case SRV_LOOP:
        outlen = snprintf(c->out, sizeof c->out,
                          "HTTP/1.1 307 Temporary Redirect\r\nLocation: %s\r\n"
                          "Content-Length: 0\r\n\r\n",
                          c->srv->location);
        break;
    case SRV_404:
        outlen =
            snprintf(c->out, sizeof c->out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        break;
    case SRV_SILENT:
        return;
    }
    if (c->srv->mode != SRV_ACCEPT)
        uv_read_stop(s);
    ob = uv_buf_init(c->out, (unsigned)outlen);
    c->wr.data = c;
    uv_write(&c->wr, s, &ob, 1, conn_written);
}

static void on_conn(uv_stream_t *l, int status)
{
    struct srv *srv = l->data;
    struct srv_conn *c = calloc(1, sizeof *c);
    (void)status;

    c->srv = srv;
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = c;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
    uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
}

static void srv_start(uv_loop_t *loop, struct srv *srv, enum srv_mode mode)
{
    memset(srv, 0, sizeof *srv);
    srv->mode = mode;
    srv->port = ut_listen(loop, &srv->listener, srv, on_conn);
}

/* ---- dialing ------------------------------------------------------------------------------ */

struct outcome {
    int calls;
    int err;
    char message[TT_ERRLEN];
    char url[256];
    char pre[16];
    bool stalled;
    uint32_t timeout_ms;
    struct srv *stop[2];
};

static void on_dialed(struct tt_dial *d, const struct tt_dial_result *r, void *ud)
{
    struct outcome *o = ud;
    (void)d;

    o->calls++;
    o->err = r->err;
    snprintf(o->message, sizeof o->message, "%s", r->message);
    snprintf(o->url, sizeof o->url, "%s", r->url);
    o->stalled = r->stalled;
    o->timeout_ms = r->timeout_ms;
    if (r->err == 0) {
        assert_non_null(r->conn);
        assert_true(r->prelen < sizeof o->pre);
        memcpy(o->pre, r->pre, r->prelen);
        o->pre[r->prelen] = '\0';
        tt_conn_close(r->conn, NULL);
    } else {
        assert_null(r->conn);
    }
    for (int i = 0; i < 2; i++)
        if (o->stop[i])
            uv_close((uv_handle_t *)&o->stop[i]->listener, NULL);
}

static void run_and_close(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* Dials ws://127.0.0.1:port/ (with options opt, NULL for the defaults) on loop, runs the loop
 * until every handle is closed, and checks that on_dialed was called once, with error want. */
static void dial_port(uv_loop_t *loop, int port, const struct tt_dial_options *opt,
                      struct outcome *o, int want)
{
    struct tt_dial *d;
    char url[128], err[TT_ERRLEN];

    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    assert_int_equal(tt_dial_start(&d, loop, url, opt, on_dialed, o, err), 0);
    run_and_close(loop);
    assert_int_equal(o->calls, 1);
    assert_int_equal(o->err, want);
}

static void test_redirect_then_accept(void **state)
{
    uv_loop_t loop;
    struct srv a, b;
    struct outcome o = {0};
    (void)state;

    uv_loop_init(&loop);
    srv_start(&loop, &a, SRV_REDIRECT);
    srv_start(&loop, &b, SRV_ACCEPT);
    snprintf(a.location, sizeof a.location, "http://127.0.0.1:%d/tether", b.port);
    o.stop[0] = &a;
    o.stop[1] = &b;
    dial_port(&loop, a.port, NULL, &o, 0);
    assert_string_equal(o.pre, "PRE!");
    assert_non_null(strstr(o.url, "ws://127.0.0.1:"));
    assert_non_null(strstr(o.url, "/tether"));
    assert_int_equal(a.requests, 1);
    assert_int_equal(b.requests, 1);
}

static void test_http_error(void **state)
{
    uv_loop_t loop;
    struct srv a;
    struct outcome o = {0};
    (void)state;

    uv_loop_init(&loop);
    srv_start(&loop, &a, SRV_404);
    o.stop[0] = &a;
    dial_port(&loop, a.port, NULL, &o, TETHER_ERR_HANDSHAKE);
    assert_non_null(strstr(o.message, "HTTP 404"));
}

static void test_redirect_loop_is_cut(void **state)
{
    uv_loop_t loop;
    struct srv a;
    struct outcome o = {0};
    (void)state;

    uv_loop_init(&loop);
    srv_start(&loop, &a, SRV_LOOP);
    snprintf(a.location, sizeof a.location, "ws://127.0.0.1:%d/again", a.port);
    o.stop[0] = &a;
    dial_port(&loop, a.port, NULL, &o, TETHER_ERR_HANDSHAKE);
    assert_non_null(strstr(o.message, "too many redirects"));
    assert_int_equal(a.requests, 1 + TT_DIAL_MAX_REDIRECTS);
}

static void test_refused(void **state)
{
    uv_loop_t loop;
    struct srv a;
    struct outcome o = {0};
    (void)state;

    uv_loop_init(&loop);
    srv_start(&loop, &a, SRV_404); /* take a free port, then give it back */
    uv_close((uv_handle_t *)&a.listener, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    dial_port(&loop, a.port, NULL, &o, TETHER_ERR_REFUSED);
    assert_non_null(strstr(o.message, "connection refused"));
    assert_false(o.stalled); /* a quick failure is no stall */
    assert_int_equal(o.timeout_ms, TT_DIAL_TIMEOUT_MS);
}

static void test_timeout_and_cancel(void **state)
{
    uv_loop_t loop;
    struct srv a;
    struct outcome o = {0};
    struct tt_dial *d;
    struct tt_dial_options opt = {.timeout_ms = 100};
    char err[TT_ERRLEN];
    (void)state;

    uv_loop_init(&loop);
    srv_start(&loop, &a, SRV_SILENT);
    o.stop[0] = &a;
    dial_port(&loop, a.port, &opt, &o, TETHER_ERR_TIMEOUT);
    /* the server took the connection and never answered: stalled, and the message says how
     * long the dial waited */
    assert_true(o.stalled);
    assert_int_equal(o.timeout_ms, 100);
    assert_non_null(strstr(o.message, "timed out connecting to ws://127.0.0.1:"));
    assert_non_null(strstr(o.message, "(connected, but no answer in 0.1 s)"));

    /* Cancelled at once: no callback, nothing left open. */
    uv_loop_init(&loop);
    memset(&o, 0, sizeof o);
    assert_int_equal(tt_dial_start(&d, &loop, "ws://127.0.0.1:9/", NULL, on_dialed, &o, err), 0);
    tt_dial_cancel(d);
    run_and_close(&loop);
    assert_int_equal(o.calls, 0);

    assert_int_equal(tt_dial_start(&d, &loop, "http://127.0.0.1:9/", NULL, on_dialed, &o, err),
                     TETHER_ERR_CONFIG);
}

/* A listener whose accept queue is full (backlog 0, one connection queued, never accepted):
 * the kernel drops further SYNs, so the dial never gets a TCP connection. Its timeout is no
 * stall (the relay spent nothing on it: the next dial's timeout does not grow). */
static void test_timeout_without_connection(void **state)
{
    uv_loop_t loop;
    struct outcome o = {0};
    struct tt_dial_options opt = {.timeout_ms = 300};
    struct sockaddr_in sin;
    socklen_t slen = sizeof sin;
    int lfd, cfd;
    (void)state;

    lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(lfd, 0), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &slen), 0);
    cfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(cfd >= 0);
    assert_int_equal(connect(cfd, (struct sockaddr *)&sin, sizeof sin), 0); /* fills the queue */

    uv_loop_init(&loop);
    dial_port(&loop, ntohs(sin.sin_port), &opt, &o, TETHER_ERR_TIMEOUT);
    assert_false(o.stalled);
    assert_non_null(strstr(o.message, "(no connection in 0.3 s)"));
    close(cfd);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redirect_url),
        cmocka_unit_test(test_redirect_then_accept),
        cmocka_unit_test(test_http_error),
        cmocka_unit_test(test_redirect_loop_is_cut),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_timeout_and_cancel),
        cmocka_unit_test(test_timeout_without_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
