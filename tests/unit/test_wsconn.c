/* test_wsconn.c - src/common/wsconn.c and pipe.c on a real libuv loop over loopback TCP: a relay
 * wsconn and a device wsconn register (HELLO/WELCOME), open streams and carry bytes through
 * pipes to a local echo server; raw peers check the WebSocket error paths and the ping timeout.
 * Every test ends by closing every handle and checking uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <wslay/wslay.h>

#include "common/conn.h"
#include "common/pipe.h"
#include "common/pool.h"
#include "common/wsconn.h"
#include "common/wsframe.h"

#include "support_loop.h"

/* ---- loopback helpers ------------------------------------------------------------------- */

/* The uv stream of a conn, for the raw (test) side of a pair. */
static uv_stream_t *S(struct tt_conn *c)
{
    return (uv_stream_t *)&c->tcp;
}

/* ---- echo server ------------------------------------------------------------------------ */

struct echo_conn {
    uv_tcp_t tcp;
    uv_shutdown_t sreq;
    int writes;
    bool eof;
};

struct echo_write {
    uv_write_t req;
    struct echo_conn *ec;
    char data[];
};

static void echo_closed(uv_handle_t *h)
{
    free(h->data);
}

static void echo_maybe_end(struct echo_conn *ec);

static void echo_on_shutdown(uv_shutdown_t *req, int status)
{
    struct echo_conn *ec = req->data;
    (void)status;
    uv_close((uv_handle_t *)&ec->tcp, echo_closed);
}

static void echo_maybe_end(struct echo_conn *ec)
{
    if (ec->eof && ec->writes == 0) {
        ec->sreq.data = ec;
        if (uv_shutdown(&ec->sreq, (uv_stream_t *)&ec->tcp, echo_on_shutdown) != 0)
            uv_close((uv_handle_t *)&ec->tcp, echo_closed);
    }
}

static void echo_on_write(uv_write_t *req, int status)
{
    struct echo_write *w = (struct echo_write *)req;
    (void)status;
    w->ec->writes--;
    echo_maybe_end(w->ec);
    free(w);
}

static void echo_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(sz);
    buf->len = sz;
}

static void echo_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct echo_conn *ec = s->data;
    if (nread > 0) {
        struct echo_write *w = malloc(sizeof(*w) + (size_t)nread);
        memcpy(w->data, buf->base, (size_t)nread);
        w->ec = ec;
        uv_buf_t b = uv_buf_init(w->data, (unsigned)nread);
        ec->writes++;
        assert_int_equal(uv_write(&w->req, s, &b, 1, echo_on_write), 0);
    } else if (nread < 0) {
        uv_read_stop(s);
        ec->eof = true;
        echo_maybe_end(ec);
    }
    free(buf->base);
}

/* Set by a test: the "echo" server accepts and never reads (a stuck local service). */
static uv_tcp_t *sinks[8];
static size_t nsinks;
static bool sink_mode;

static void echo_on_conn(uv_stream_t *server, int status)
{
    assert_int_equal(status, 0);
    if (sink_mode) {
        int small = 16384;
        uv_tcp_t *t = malloc(sizeof(*t));
        uv_tcp_init(server->loop, t);
        assert_int_equal(uv_accept(server, (uv_stream_t *)t), 0);
        assert_int_equal(uv_recv_buffer_size((uv_handle_t *)t, &small), 0);
        assert_true(nsinks < 8);
        sinks[nsinks++] = t;
        return;
    }
    struct echo_conn *ec = calloc(1, sizeof(*ec));
    uv_tcp_init(server->loop, &ec->tcp);
    ec->tcp.data = ec;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&ec->tcp), 0);
    uv_read_start((uv_stream_t *)&ec->tcp, echo_alloc, echo_on_read);
}

static void echo_listen(uv_loop_t *loop, uv_tcp_t *lst, struct sockaddr_storage *addr)
{
    memset(addr, 0, sizeof(*addr));
    uv_ip4_addr("127.0.0.1", ut_listen(loop, lst, NULL, echo_on_conn), (struct sockaddr_in *)addr);
}

/* ---- a relay and a device --------------------------------------------------------------- */

#define NCLIENTS_MAX 32

struct client {
    struct world *w;
    struct tt_conn *tcp;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    uint8_t *out;
    size_t outlen;
    uint8_t *in;
    size_t inlen;
    bool eof, closed;
};

struct world {
    uv_loop_t loop;
    uv_timer_t guard;
    struct tt_wsconn *relay, *device;
    struct tt_session_callbacks relay_cb, device_cb;
    uv_tcp_t echo;
    struct sockaddr_storage echo_addr;
    bool welcomed;
    int relay_closed, device_closed;
    int relay_err, device_err;
    char device_reason[256];
    int pipes_done;
    uint32_t window;
    uint16_t max_streams;
    size_t nclients, clients_done;
    size_t payload;
    struct client clients[NCLIENTS_MAX];
    bool refuse_open; /* device: every connect goes to a closed port */
    int fails;
    int last_fail_code;
};

static void pipe_done(struct tt_pipe *p, uint64_t up, uint64_t down, void *ud)
{
    struct world *w = ud;
    (void)p;
    (void)up;
    (void)down;
    w->pipes_done++;
}

static bool pipe_fail(struct tt_pipe *p, int code, void *ud)
{
    struct world *w = ud;
    static const char page[] = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n";
    w->fails++;
    w->last_fail_code = code;
    assert_int_equal(tt_pipe_write(p, (const uint8_t *)page, sizeof(page) - 1), 0);
    return true;
}

static const struct tt_pipe_hooks relay_hooks = {.on_fail = pipe_fail, .on_done = pipe_done};
static const struct tt_pipe_hooks device_hooks = {.on_done = pipe_done};

static int relay_on_hello(struct tt_session *s, const struct tt_hello *m, void *ud)
{
    struct world *w = ud;
    struct tt_welcome wel;
    uint8_t buf[1024];
    memset(&wel, 0, sizeof(wel));
    wel.label.p = (const uint8_t *)"abcdefgh";
    wel.label.len = 8;
    wel.nservices = m->nservices;
    for (uint8_t i = 0; i < m->nservices; i++) {
        wel.services[i].kind = m->services[i].kind;
        wel.services[i].name = m->services[i].name;
        wel.services[i].port = 20000;
        wel.services[i].address.p = (const uint8_t *)"localhost";
        wel.services[i].address.len = 9;
    }
    tt_ssize n = tt_session_accept(s, &wel, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(tt_wsconn_send_frame(w->relay, buf, (size_t)n), 0);
    return 0;
}

static void relay_on_close(struct tt_wsconn *c, int err, const char *reason, void *ud)
{
    struct world *w = ud;
    (void)c;
    (void)reason;
    w->relay_closed++;
    w->relay_err = err;
    w->relay = NULL;
}

static int device_on_welcome(struct tt_session *s, const struct tt_welcome *m, void *ud)
{
    struct world *w = ud;
    (void)s;
    assert_int_equal(m->label.len, 8);
    w->welcomed = true;
    return 0;
}

static void device_connected(uv_connect_t *req, int status)
{
    struct tt_pipe *p = req->data;
    if (sink_mode && status == 0) {
        int small = 16384;
        assert_int_equal(uv_send_buffer_size((uv_handle_t *)req->handle, &small), 0);
    }
    free(req);
    tt_pipe_connected(p, status);
}

static int device_on_open(struct tt_session *s, struct tt_stream *st, const struct tt_open *m,
                          void *ud)
{
    struct world *w = ud;
    struct tt_pipe *p;
    struct tt_conn *sock;
    assert_int_equal(tt_conn_new(&sock, &w->loop), 0);
    uv_connect_t *req = malloc(sizeof(*req));
    struct sockaddr_storage addr = w->echo_addr;
    (void)m;
    if (w->refuse_open)
        ((struct sockaddr_in *)&addr)->sin_port = htons(1); /* nothing listens on port 1 */
    assert_int_equal(tt_pipe_new(&p, &w->loop, sock, true, tt_wsconn_from_session(s), st->id, NULL,
                                 0, &device_hooks, w),
                     0);
    assert_ptr_equal(st->user, p);
    req->data = p;
    assert_int_equal(uv_tcp_connect(req, &sock->tcp, (struct sockaddr *)&addr, device_connected),
                     0);
    return 0;
}

static void device_on_close(struct tt_wsconn *c, int err, const char *reason, void *ud)
{
    struct world *w = ud;
    (void)c;
    w->device_closed++;
    w->device_err = err;
    snprintf(w->device_reason, sizeof(w->device_reason), "%s", reason);
    w->device = NULL;
}

static void world_init(struct world *w, uint32_t window, uint16_t max_streams)
{
    memset(w, 0, sizeof(*w));
    w->window = window;
    w->max_streams = max_streams;
    assert_int_equal(uv_loop_init(&w->loop), 0);
    ut_start_guard(&w->loop, &w->guard);
    echo_listen(&w->loop, &w->echo, &w->echo_addr);
    tt_pipe_session_callbacks(&w->relay_cb);
    w->relay_cb.on_hello = relay_on_hello;
    tt_pipe_session_callbacks(&w->device_cb);
    w->device_cb.on_welcome = device_on_welcome;
    w->device_cb.on_open = device_on_open;
}

/* Connects a relay wsconn and a device wsconn and runs until the device is welcomed. */
static void world_connect(struct world *w)
{
    struct tt_conn *a, *b;
    struct tt_wsconn_config rc = {0}, dc = {0};
    static const struct tt_wsconn_callbacks rcb = {relay_on_close};
    static const struct tt_wsconn_callbacks dcb = {device_on_close};
    struct tt_hello h;
    uint8_t buf[512];

    ut_make_pair(&w->loop, &a, &b);
    rc.client = false;
    rc.session.role = TT_ROLE_RELAY;
    rc.session.window = w->window;
    rc.session.max_streams = w->max_streams;
    rc.session_cb = &w->relay_cb;
    rc.ping_interval_ms = 1000;
    rc.ping_timeout_ms = 5000;
    dc = rc;
    dc.client = true;
    dc.session.role = TT_ROLE_DEVICE;
    dc.session_cb = &w->device_cb;
    assert_int_equal(tt_wsconn_new(&w->relay, &w->loop, b, NULL, 0, &rc, &rcb, w), 0);
    assert_int_equal(tt_wsconn_new(&w->device, &w->loop, a, NULL, 0, &dc, &dcb, w), 0);
    assert_ptr_equal(tt_wsconn_from_session(tt_wsconn_session(w->relay)), w->relay);
    assert_string_not_equal(tt_wsconn_peer(w->relay), "");

    memset(&h, 0, sizeof(h));
    h.name.p = (const uint8_t *)"dev1";
    h.name.len = 4;
    h.token.p = (const uint8_t *)"secret";
    h.token.len = 6;
    h.nservices = 1;
    h.services[0].kind = TT_SERVICE_TCP;
    h.services[0].name.p = (const uint8_t *)"echo";
    h.services[0].name.len = 4;
    tt_ssize n = tt_session_hello(tt_wsconn_session(w->device), &h, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(tt_wsconn_send_frame(w->device, buf, (size_t)n), 0);
    while (!w->welcomed)
        uv_run(&w->loop, UV_RUN_ONCE);
    assert_int_equal(tt_session_state(tt_wsconn_session(w->relay)), TT_SESSION_OPEN);
}

static void client_closed(uv_handle_t *h)
{
    free(h);
}

static void client_check_done(struct client *cl)
{
    struct world *w = cl->w;
    if (!cl->eof || cl->closed)
        return;
    cl->closed = true;
    tt_conn_close(cl->tcp, NULL);
    w->clients_done++;
}

static void client_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    struct client *cl = h->data;
    (void)sz;
    size_t room = cl->outlen + 4096 - cl->inlen;
    buf->base = (char *)cl->in + cl->inlen;
    buf->len = room;
}

static void client_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct client *cl = s->data;
    (void)buf;
    if (nread > 0) {
        cl->inlen += (size_t)nread;
        assert_true(cl->inlen <= cl->outlen + 4096);
    } else if (nread < 0) {
        uv_read_stop(s);
        cl->eof = true;
        client_check_done(cl);
    }
}

static void client_on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

static void client_on_write(uv_write_t *req, int status)
{
    struct client *cl = req->data;
    if (status == 0) {
        cl->sreq.data = cl;
        uv_shutdown(&cl->sreq, S(cl->tcp), client_on_shutdown);
    }
}

/* The relay's pipe of the last client started. */
static struct tt_pipe *last_relay_pipe;

/* A public client: a TCP pair whose far end the relay pipes to a new stream. */
static void client_start(struct world *w, struct client *cl, size_t len, uint8_t seed)
{
    struct tt_conn *pub;
    uint8_t buf[256];
    uint32_t id = 0;
    struct tt_pipe *p;

    cl->w = w;
    ut_make_pair(&w->loop, &cl->tcp, &pub);
    if (sink_mode) {
        int small = 16384;
        assert_int_equal(uv_send_buffer_size((uv_handle_t *)S(cl->tcp), &small), 0);
        assert_int_equal(uv_recv_buffer_size((uv_handle_t *)S(pub), &small), 0);
    }
    cl->out = malloc(len ? len : 1);
    cl->outlen = len;
    cl->in = malloc(len + 4096);
    for (size_t i = 0; i < len; i++)
        cl->out[i] = (uint8_t)(seed + i * 31 + (i >> 9));
    cl->tcp->tcp.data = cl;
    tt_ssize n = tt_session_open(tt_wsconn_session(w->relay), 0, "127.0.0.1:1234", NULL, &id, buf,
                                 sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(tt_wsconn_send_frame(w->relay, buf, (size_t)n), 0);
    assert_int_equal(tt_pipe_new(&p, &w->loop, pub, false, w->relay, id, NULL, 0, &relay_hooks, w),
                     0);
    assert_int_equal(tt_pipe_stream_id(p), id);
    last_relay_pipe = p;
    assert_ptr_equal(tt_pipe_ud(p), w);
    uv_read_start(S(cl->tcp), client_alloc, client_on_read);
    if (len > 0) {
        uv_buf_t b = uv_buf_init((char *)cl->out, (unsigned)len);
        cl->wreq.data = cl;
        assert_int_equal(uv_write(&cl->wreq, S(cl->tcp), &b, 1, client_on_write), 0);
    } else {
        cl->sreq.data = cl;
        uv_shutdown(&cl->sreq, S(cl->tcp), client_on_shutdown);
    }
}

static void world_close(struct world *w)
{
    if (w->relay != NULL)
        tt_wsconn_close(w->relay, TT_GOAWAY_SHUTDOWN, 1001, 0, "test over");
    uv_close((uv_handle_t *)&w->echo, ut_close_nothing);
    while (w->relay_closed == 0 || w->device_closed == 0)
        uv_run(&w->loop, UV_RUN_ONCE);
    for (size_t i = 0; i < w->nclients; i++) {
        free(w->clients[i].out);
        free(w->clients[i].in);
    }
    ut_finish_loop(&w->loop, &w->guard);
}

/* A world on the heap (free() it after world_close()), its relay and device connected, with
 * nclients clients to come. */
static struct world *world_open(uint32_t window, uint16_t max_streams, size_t nclients)
{
    struct world *w = malloc(sizeof(*w));
    world_init(w, window, max_streams);
    world_connect(w);
    w->nclients = nclients;
    return w;
}

/* Runs the loop until clients clients are done, then until pipes pipes have ended. */
static void run_until_done(struct world *w, size_t clients, int pipes)
{
    while (w->clients_done < clients)
        uv_run(&w->loop, UV_RUN_ONCE);
    while (w->pipes_done < pipes)
        uv_run(&w->loop, UV_RUN_ONCE);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void run_echo(size_t nclients, size_t len, uint32_t window, uint16_t max_streams)
{
    struct world *w = world_open(window, max_streams, nclients);
    for (size_t i = 0; i < nclients; i++)
        client_start(w, &w->clients[i], len, (uint8_t)i);
    run_until_done(w, nclients, 0);
    for (size_t i = 0; i < nclients; i++) {
        assert_int_equal(w->clients[i].inlen, len);
        assert_memory_equal(w->clients[i].in, w->clients[i].out, len);
    }
    /* Each stream ends on both sides. */
    run_until_done(w, nclients, (int)(2 * nclients));
    assert_int_equal(tt_session_nstreams(tt_wsconn_session(w->relay)), 0);
    assert_true(tt_wsconn_bytes_out(w->relay) >= len * nclients);
    assert_true(tt_wsconn_bytes_in(w->relay) >= len * nclients);
    world_close(w);
    assert_int_equal(w->relay_err, 0);
    assert_int_equal(w->device_closed, 1);
    assert_int_equal(w->device_err, 0);
    assert_int_equal(w->fails, 0);
    free(w);
}

static void test_echo_small(void **state)
{
    (void)state;
    run_echo(1, 1000, 65536, 16);
}

static void test_echo_flow_control(void **state)
{
    (void)state;
    /* 3 MiB through a 16 KiB window: reading stops and resumes many times. */
    run_echo(1, 3u << 20, 16384, 16);
}

static void test_echo_many_streams(void **state)
{
    (void)state;
    /* More streams than the first table holds: the table grows. */
    run_echo(20, 200000, 65536, 32);
}

static void test_empty_stream(void **state)
{
    (void)state;
    run_echo(2, 0, 65536, 16);
}

static void test_connect_refused(void **state)
{
    struct world *w = world_open(65536, 16, 1);
    (void)state;
    w->refuse_open = true;
    client_start(w, &w->clients[0], 100, 1);
    run_until_done(w, 1, 0);
    /* The relay's on_fail wrote a 502 answer and closed. */
    assert_int_equal(w->fails, 1);
    assert_int_equal(w->last_fail_code, TT_RESET_REFUSED);
    assert_true(w->clients[0].inlen > 12);
    assert_memory_equal(w->clients[0].in, "HTTP/1.1 502", 12);
    run_until_done(w, 1, 2);
    world_close(w);
    free(w);
}

static void test_close_with_open_streams(void **state)
{
    struct world *w = world_open(65536, 16, 1);
    (void)state;
    /* A client that never finishes: the wsconn closes under it. */
    client_start(w, &w->clients[0], 100000, 3);
    while (w->clients[0].inlen < 100000)
        uv_run(&w->loop, UV_RUN_ONCE);
    tt_wsconn_close(w->device, TT_GOAWAY_NORMAL, 1000, 0, "device leaving");
    run_until_done(w, 1, 2);
    assert_int_equal(w->device_closed, 1);
    while (w->relay_closed == 0)
        uv_run(&w->loop, UV_RUN_ONCE);
    /* The relay heard the device's GOAWAY and close frame. */
    world_close(w);
    free(w);
}

/* ---- raw peers -------------------------------------------------------------------------- */

struct raw {
    struct tt_conn *tcp;
    uv_write_t wreq;
    uint8_t in[4096];
    size_t inlen;
    bool eof;
    int closed;
    int err;
    char reason[256];
};

static void raw_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    struct raw *r = h->data;
    (void)sz;
    buf->base = (char *)r->in + r->inlen;
    buf->len = sizeof(r->in) - r->inlen;
}

static void raw_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct raw *r = s->data;
    (void)buf;
    if (nread > 0)
        r->inlen += (size_t)nread;
    else if (nread < 0) {
        r->eof = true;
        uv_read_stop(s);
    }
}

static void raw_on_close(struct tt_wsconn *c, int err, const char *reason, void *ud)
{
    struct raw *r = ud;
    (void)c;
    r->closed++;
    r->err = err;
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
}

static bool seen_pong;
static int raw_hellos;

static int raw_on_hello(struct tt_session *s, const struct tt_hello *m, void *ud)
{
    (void)ud;
    assert_int_equal(m->name.len, 4);
    assert_memory_equal(m->name.p, "dev1", 4);
    raw_hellos++;
    tt_wsconn_close(tt_wsconn_from_session(s), TT_GOAWAY_NORMAL, 1000, 0, "seen");
    return 0;
}

/* A wsconn (server side unless client) facing a raw socket; feeds raw bytes, returns the close
 * code the wsconn sent back. */
static void raw_case(bool client, const uint8_t *bytes, size_t len, uint32_t ping_interval,
                     uint32_t ping_timeout, uint16_t want_code, int want_err, size_t max_message)
{
    uv_loop_t loop;
    uv_timer_t guard;
    struct tt_conn *a, *b;
    struct raw r;
    struct tt_wsconn *c;
    struct tt_session_callbacks scb;
    struct tt_wsconn_config cfg = {0};
    static const struct tt_wsconn_callbacks cb = {raw_on_close};

    memset(&r, 0, sizeof(r));
    memset(&scb, 0, sizeof(scb));
    tt_pipe_session_callbacks(&scb);
    scb.on_hello = raw_on_hello;
    raw_hellos = 0;
    assert_int_equal(uv_loop_init(&loop), 0);
    ut_start_guard(&loop, &guard);
    ut_make_pair(&loop, &a, &b);
    cfg.client = client;
    cfg.session.role = client ? TT_ROLE_DEVICE : TT_ROLE_RELAY;
    cfg.session.window = 65536;
    cfg.session.max_streams = 4;
    cfg.session_cb = &scb;
    cfg.ping_interval_ms = ping_interval;
    cfg.ping_timeout_ms = ping_timeout;
    cfg.max_message = max_message;
    r.tcp = a;
    a->tcp.data = &r;
    uv_read_start(S(a), raw_alloc, raw_on_read);
    /* Half the bytes come as "already read after the handshake", half over the socket. */
    assert_int_equal(tt_wsconn_new(&c, &loop, b, bytes, len / 2, &cfg, &cb, &r), 0);
    if (len - len / 2 > 0) {
        uv_buf_t wb = uv_buf_init((char *)bytes + len / 2, (unsigned)(len - len / 2));
        assert_int_equal(uv_try_write(S(a), &wb, 1), (int)(len - len / 2));
    }
    while (!r.closed)
        uv_run(&loop, UV_RUN_ONCE);
    /* Answer the close like a peer would: EOF. */
    uv_shutdown_t sreq;
    while (!r.eof)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(uv_shutdown(&sreq, S(a), NULL), 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(r.err, want_err);
    /* The last frame from the wsconn is a close frame with want_code. */
    size_t off = 0;
    uint16_t code = 0;
    bool seen_close = false;
    seen_pong = false;
    while (off + 2 <= r.inlen) {
        uint8_t op = r.in[off] & 0x0f;
        bool masked = r.in[off + 1] & 0x80;
        size_t plen = r.in[off + 1] & 0x7f, hl = 2;
        assert_true(plen < 126);
        assert_int_equal(masked, client);
        if (masked)
            hl += 4;
        assert_true(off + hl + plen <= r.inlen);
        if (op == 0xa)
            seen_pong = plen == 2 && !seen_close;
        if (op == 0x8) {
            uint8_t p0 = r.in[off + hl], p1 = r.in[off + hl + 1];
            if (masked) {
                p0 ^= r.in[off + 2];
                p1 ^= r.in[off + 3];
            }
            code = (uint16_t)(p0 << 8 | p1);
            seen_close = true;
        }
        off += hl + plen;
    }
    assert_true(seen_close);
    assert_int_equal(code, want_code);
    tt_conn_close(a, NULL);
    ut_finish_loop(&loop, &guard);
}

static void test_text_frame(void **state)
{
    /* Masked text frame "hi" from a client. */
    static const uint8_t f[] = {0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2};
    (void)state;
    raw_case(false, f, sizeof(f), 0, 0, 1003, TETHER_ERR_PROTO, 0);
}

static void test_unmasked_from_client(void **state)
{
    static const uint8_t f[] = {0x82, 0x01, 0x00};
    (void)state;
    raw_case(false, f, sizeof(f), 0, 0, 1002, TETHER_ERR_PROTO, 0);
}

static void test_masked_from_server(void **state)
{
    static const uint8_t f[] = {0x82, 0x81, 1, 2, 3, 4, 0};
    (void)state;
    raw_case(true, f, sizeof(f), 0, 0, 1002, TETHER_ERR_PROTO, 0);
}

static void test_too_large(void **state)
{
    /* A masked binary frame announcing 2000 bytes against max_message 1000. */
    static const uint8_t f[] = {0x82, 0xfe, 0x07, 0xd0, 0, 0, 0, 0, 0};
    (void)state;
    raw_case(false, f, sizeof(f), 0, 0, 1009, TETHER_ERR_TOO_LARGE, 1000);
}

static void test_peer_close(void **state)
{
    /* Masked close 1000 "bye": orderly. */
    static const uint8_t f[] = {0x88, 0x85, 0, 0, 0, 0, 0x03, 0xe8, 'b', 'y', 'e'};
    (void)state;
    raw_case(false, f, sizeof(f), 0, 0, 1000, 0, 0);
}

static void test_ping_timeout(void **state)
{
    (void)state;
    /* The raw peer never answers pings. */
    raw_case(true, NULL, 0, 50, 200, 1001, TETHER_ERR_TIMEOUT, 0);
}

static void test_ping_pong(void **state)
{
    /* A ping (masked, "ab") then a close: the pong must come back before the close. */
    static const uint8_t f[] = {0x89, 0x82, 0, 0, 0, 0, 'a',  'b',
                                0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe9};
    (void)state;
    raw_case(false, f, sizeof(f), 0, 0, 1001, 0, 0);
    assert_true(seen_pong);
}

static void test_bad_session_bytes(void **state)
{
    /* A masked binary frame whose payload is a DATA frame before any HELLO: session error. */
    static const uint8_t f[] = {0x82, 0x88, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 1};
    (void)state;
    raw_case(false, f, sizeof(f), 0, 0, 1002, TETHER_ERR_PROTO, 0);
}

/* Appends a masked WebSocket frame (payload < 126) to out. */
static size_t put_frame(uint8_t *out, uint8_t b0, const uint8_t *payload, size_t len)
{
    static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    out[0] = b0;
    out[1] = (uint8_t)(0x80 | len);
    memcpy(out + 2, key, 4);
    for (size_t i = 0; i < len; i++)
        out[6 + i] = payload[i] ^ key[i % 4];
    return 6 + len;
}

static void test_fragmented_hello(void **state)
{
    uint8_t hello[256], wire[512];
    struct tt_hello h;
    size_t off = 0;
    (void)state;
    memset(&h, 0, sizeof(h));
    h.version = TT_PROTO_VERSION;
    h.max_streams = 4;
    h.window = 65536;
    h.name.p = (const uint8_t *)"dev1";
    h.name.len = 4;
    h.token.p = (const uint8_t *)"tok";
    h.token.len = 3;
    tt_ssize n = tt_frame_encode_hello(hello, sizeof(hello), &h);
    assert_true(n > 12);
    /* binary (no FIN) | ping | continuation (no FIN) | continuation (FIN) */
    off += put_frame(wire + off, 0x02, hello, 5);
    off += put_frame(wire + off, 0x89, (const uint8_t *)"ab", 2);
    off += put_frame(wire + off, 0x00, hello + 5, 4);
    off += put_frame(wire + off, 0x80, hello + 9, (size_t)n - 9);
    raw_case(false, wire, off, 0, 0, 1000, 0, 0);
    assert_int_equal(raw_hellos, 1);
    assert_true(seen_pong);
}

static void test_continuation_without_message(void **state)
{
    uint8_t wire[64];
    size_t off = put_frame(wire, 0x80, (const uint8_t *)"x", 1);
    (void)state;
    raw_case(false, wire, off, 0, 0, 1002, TETHER_ERR_PROTO, 0);
}

static void test_reserved_bits(void **state)
{
    uint8_t wire[64];
    size_t off = put_frame(wire, 0xc2, (const uint8_t *)"x", 1);
    (void)state;
    raw_case(false, wire, off, 0, 0, 1002, TETHER_ERR_PROTO, 0);
}

static void test_fragments_over_max_message(void **state)
{
    uint8_t wire[512], junk[100];
    size_t off = 0;
    (void)state;
    /* A HELLO header announcing 2000 payload bytes: the session just waits for more. */
    memset(junk, 0, sizeof(junk));
    junk[0] = 0x07;
    junk[1] = 0xd0;
    junk[2] = TT_FRAME_HELLO;
    off += put_frame(wire + off, 0x02, junk, 100);
    off += put_frame(wire + off, 0x00, junk, 100);
    off += put_frame(wire + off, 0x80, junk, 100);
    raw_case(false, wire, off, 0, 0, 1009, TETHER_ERR_TOO_LARGE, 250);
}

static void test_abort_while_closing(void **state)
{
    struct world *w = world_open(65536, 16, 2);
    (void)state;
    client_start(w, &w->clients[0], 50000, 1);
    client_start(w, &w->clients[1], 50000, 2);
    while (w->clients[0].inlen < 50000 || w->clients[1].inlen < 50000)
        uv_run(&w->loop, UV_RUN_ONCE);
    /* Close the relay, and before its close runs, abort one pipe: the stream's slot must not
     * point at the pipe once it is gone. */
    tt_wsconn_close(w->relay, TT_GOAWAY_SHUTDOWN, 1001, 0, "bye");
    tt_pipe_abort(last_relay_pipe, TT_RESET_CANCEL);
    run_until_done(w, 2, 4);
    world_close(w);
    assert_int_equal(w->relay_closed, 1);
    assert_int_equal(w->device_closed, 1);
    free(w);
}

static void stop_loop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void test_stuck_service_backpressure(void **state)
{
    struct world *w;
    uv_timer_t t;
    (void)state;
    sink_mode = true;
    nsinks = 0;
    w = world_open(65536, 16, 1);
    client_start(w, &w->clients[0], 8u << 20, 9);
    uv_timer_init(&w->loop, &t);
    uv_timer_start(&t, stop_loop, 500, 0);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Half a second later: the upload is stuck at the client, the relay stopped reading (the
     * stream's window is spent), and neither side queued more than a window. */
    assert_int_equal(nsinks, 1);
    assert_int_equal(w->clients_done, 0);
    assert_true(uv_stream_get_write_queue_size(S(w->clients[0].tcp)) > (4u << 20));
    assert_true(tt_wsconn_queued(w->relay) < 2 * 65536);
    assert_true(tt_wsconn_queued(w->device) < 65536);
    assert_int_equal(tt_session_send_window(tt_wsconn_session(w->relay), 1), 0);
    assert_true(tt_wsconn_writable(w->relay));
    /* The service goes away: the stream fails and the client is cut off. */
    uv_close((uv_handle_t *)sinks[0], client_closed);
    uv_close((uv_handle_t *)&t, ut_close_nothing);
    run_until_done(w, 1, 2);
    sink_mode = false;
    world_close(w);
    free(w);
}

/* ---- a peer that does not read: pongs, the output cap, the read pause, the stall ---------- */

struct deaf {
    struct tt_conn *raw; /* the test's side of the pair */
    struct tt_conn *ws;  /* the other side, the wsconn's (valid while d->c is) */
    struct tt_wsconn *c; /* the wsconn under test, facing it */
    uint8_t *in;         /* what raw read, once it reads */
    size_t inlen, cap;
    bool eof, written;
    int closed, err;
    char reason[128];
    uv_write_t wreq;
    uv_shutdown_t sreq;
};

static void deaf_on_close(struct tt_wsconn *c, int err, const char *reason, void *ud)
{
    struct deaf *d = ud;
    (void)c;
    d->closed++;
    d->err = err;
    snprintf(d->reason, sizeof(d->reason), "%s", reason);
    d->c = NULL;
}

static void deaf_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    struct deaf *d = h->data;
    (void)sz;
    buf->base = (char *)d->in + d->inlen;
    buf->len = d->cap - d->inlen;
}

static void deaf_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct deaf *d = s->data;
    (void)buf;
    if (nread > 0) {
        d->inlen += (size_t)nread;
        assert_true(d->inlen < d->cap);
    } else if (nread < 0) {
        d->eof = true;
        uv_read_stop(s);
        /* Answer the close as a peer does: our EOF, so that the wsconn does not wait for it. */
        if (uv_shutdown(&d->sreq, s, NULL) != 0)
            d->sreq.handle = NULL;
    }
}

static void deaf_written(uv_write_t *req, int status)
{
    struct deaf *d = req->data;
    assert_int_equal(status, 0);
    d->written = true;
}

/* A wsconn (the agent's side if client, else the relay's) facing a raw socket that reads nothing
 * until told to, with a small send buffer; cfg's queue and stall settings apply. */
static void deaf_open(uv_loop_t *loop, struct deaf *d, bool client, struct tt_wsconn_config *cfg)
{
    static struct tt_session_callbacks scb;
    static const struct tt_wsconn_callbacks cb = {deaf_on_close};
    struct tt_conn *a, *b;
    int small = 4096;

    memset(d, 0, sizeof(*d));
    memset(&scb, 0, sizeof(scb));
    tt_pipe_session_callbacks(&scb);
    d->cap = 4u << 20;
    d->in = malloc(d->cap);
    ut_make_pair(loop, &a, &b);
    /* (Not the raw side's receive buffer: shrunk after the connect, it stays clamped and
     * loopback crawls at 8 KiB per 200 ms once it reads.) */
    assert_int_equal(uv_send_buffer_size((uv_handle_t *)&b->tcp, &small), 0);
    d->raw = a;
    d->ws = b;
    a->tcp.data = d;
    cfg->client = client;
    cfg->session.role = client ? TT_ROLE_DEVICE : TT_ROLE_RELAY;
    cfg->session.window = 65536;
    cfg->session.max_streams = 4;
    cfg->session_cb = &scb;
    assert_int_equal(tt_wsconn_new(&d->c, loop, b, NULL, 0, cfg, &cb, d), 0);
}

/* Reads until the wsconn is gone, then closes the raw side and the loop. */
static void deaf_finish(uv_loop_t *loop, uv_timer_t *guard, struct deaf *d)
{
    if (d->c != NULL)
        tt_wsconn_close(d->c, TT_GOAWAY_NORMAL, 1000, 0, "done");
    if (!d->eof)
        uv_read_start(S(d->raw), deaf_alloc, deaf_read);
    while (!d->eof || !d->closed)
        uv_run(loop, UV_RUN_ONCE);
    tt_conn_close(d->raw, NULL);
    ut_finish_loop(loop, guard);
}

/* The WebSocket frames in d->in: calls fn for each whole one with its unmasked payload. */
static void deaf_frames(struct deaf *d, void (*fn)(uint8_t op, const uint8_t *p, size_t n, void *),
                        void *arg)
{
    size_t off = 0;
    uint8_t payload[200000];
    while (off + 2 <= d->inlen) {
        uint8_t op = d->in[off] & 0x0f, key[4] = {0};
        bool masked = d->in[off + 1] & 0x80;
        uint64_t n = d->in[off + 1] & 0x7f;
        size_t hl = 2;
        if (n == 126) {
            n = (uint64_t)d->in[off + 2] << 8 | d->in[off + 3];
            hl = 4;
        } else if (n == 127) {
            n = 0;
            for (int i = 0; i < 8; i++)
                n = n << 8 | d->in[off + 2 + (size_t)i];
            hl = 10;
        }
        if (masked) {
            memcpy(key, d->in + off + hl, 4);
            hl += 4;
        }
        if (off + hl + n > d->inlen)
            break;
        assert_true(n <= sizeof(payload));
        for (size_t i = 0; i < n; i++)
            payload[i] = d->in[off + hl + i] ^ key[i % 4];
        fn(op, payload, (size_t)n, arg);
        off += hl + (size_t)n;
    }
}

struct pongs {
    size_t n;
    int64_t last; /* counter in the last pong (-1: none) */
    bool ordered;
    bool seen_hi;
};

static void count_pongs(uint8_t op, const uint8_t *p, size_t n, void *arg)
{
    struct pongs *k = arg;
    if (op != 0xa)
        return;
    if (n == 2 && memcmp(p, "hi", 2) == 0) {
        k->seen_hi = true;
        return;
    }
    assert_int_equal(n, 125);
    int64_t v = (int64_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
    if (v <= k->last)
        k->ordered = false;
    k->last = v;
    k->n++;
}

/* A WebSocket frame from the peer (masked unless it plays the relay). */
static size_t peer_frame(uint8_t *out, bool masked, uint8_t op, const uint8_t *p, size_t n)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t hl = 2;
    out[0] = (uint8_t)(0x80 | op);
    assert_true(n < 126);
    out[1] = (uint8_t)((masked ? 0x80 : 0) | n);
    if (masked) {
        memcpy(out + 2, key, 4);
        hl += 4;
    }
    for (size_t i = 0; i < n; i++)
        out[hl + i] = masked ? p[i] ^ key[i % 4] : p[i];
    return hl + n;
}

/* 20,000 pings from a peer that does not read: the wsconn keeps at most one pong in its queue
 * (the rest coalesce into the latest payload), and once the peer reads, the pongs it gets are in
 * order and the last one answers the last ping. */
static void ping_flood(bool client)
{
    enum { N = 20000 };
    uv_loop_t loop;
    uv_timer_t guard;
    struct deaf d;
    struct tt_wsconn_config cfg = {0};
    struct tt_wsconn_stats before, after;
    struct pongs k = {0, -1, true, false};
    uint8_t *wire = malloc((size_t)N * 131), p[125];
    size_t len = 0, most = 0;

    assert_int_equal(uv_loop_init(&loop), 0);
    ut_start_guard(&loop, &guard);
    deaf_open(&loop, &d, client, &cfg);
    memset(p, 'p', sizeof(p));
    for (uint32_t i = 0; i < N; i++) {
        p[0] = (uint8_t)(i >> 24);
        p[1] = (uint8_t)(i >> 16);
        p[2] = (uint8_t)(i >> 8);
        p[3] = (uint8_t)i;
        len += peer_frame(wire + len, !client, 0x9, p, sizeof(p));
    }
    tt_wsconn_get_stats(&before);
    uv_buf_t b = uv_buf_init((char *)wire, (unsigned)len);
    d.wreq.data = &d;
    assert_int_equal(uv_write(&d.wreq, S(d.raw), &b, 1, deaf_written), 0);
    for (;;) {
        uv_run(&loop, UV_RUN_ONCE);
        if (d.c != NULL && tt_wsconn_queued(d.c) > most)
            most = tt_wsconn_queued(d.c);
        tt_wsconn_get_stats(&after);
        if (after.pings_answered + after.pings_coalesced -
                (before.pings_answered + before.pings_coalesced) >=
            N - 1)
            break;
    }
    assert_non_null(d.c);
    assert_true(d.written);
    /* At most one pong frame queued, ever: the payloads waited in the pong buffer. */
    assert_true(most <= TT_WSFRAME_MAX_HEADER + 125);
    assert_true(after.pings_coalesced - before.pings_coalesced > N / 2);
    /* The peer reads now: the waiting pong comes, with the last ping's payload. */
    uv_read_start(S(d.raw), deaf_alloc, deaf_read);
    for (;;) {
        uv_run(&loop, UV_RUN_ONCE);
        tt_wsconn_get_stats(&after);
        if (after.pings_answered + after.pings_coalesced -
                (before.pings_answered + before.pings_coalesced) ==
            N)
            break;
    }
    while (tt_wsconn_queued(d.c) > 0)
        uv_run(&loop, UV_RUN_ONCE);
    deaf_finish(&loop, &guard, &d);
    assert_int_equal(d.err, 0);
    deaf_frames(&d, count_pongs, &k);
    assert_true(k.ordered);
    assert_int_equal(k.last, N - 1);
    assert_int_equal(k.n, after.pings_answered - before.pings_answered);
    assert_true(k.n < N / 2);
    free(d.in);
    free(wire);
}

static void test_ping_flood_relay_side(void **state)
{
    (void)state;
    ping_flood(false);
}

static void test_ping_flood_agent_side(void **state)
{
    (void)state;
    ping_flood(true);
}

/* Frames queued for a peer that does not read: never more than out_max queued; the frame that
 * does not fit is refused and the connection closes at once as a peer that does not read. */
static void test_output_cap(void **state)
{
    uv_loop_t loop;
    uv_timer_t guard;
    struct deaf d;
    struct tt_wsconn_config cfg = {0};
    struct tt_wsconn_stats before, after;
    uint8_t *big = calloc(1, 60000);
    int r, k = 0;
    (void)state;

    assert_int_equal(uv_loop_init(&loop), 0);
    ut_start_guard(&loop, &guard);
    cfg.out_high = 64u << 10;
    cfg.out_max = 256u << 10;
    deaf_open(&loop, &d, false, &cfg);
    tt_wsconn_get_stats(&before);
    while ((r = tt_wsconn_send_frame(d.c, big, 60000)) == 0) {
        assert_true(tt_wsconn_queued(d.c) <= cfg.out_max);
        assert_true(++k < 10);
    }
    /* 4 x (60000 + 4) fit in 256 KiB; the fifth does not. */
    assert_int_equal(r, TETHER_ERR_CLOSED);
    assert_int_equal(k, 4);
    assert_true(tt_wsconn_queued(d.c) <= cfg.out_max);
    assert_int_equal(tt_wsconn_send_frame(d.c, big, 10), TETHER_ERR_CLOSED);
    while (!d.closed)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(d.err, TETHER_ERR_IO);
    assert_non_null(strstr(d.reason, "does not read"));
    tt_wsconn_get_stats(&after);
    assert_int_equal(after.overflow_cap - before.overflow_cap, 1);
    /* Past out_high + 128 KiB (192 KiB) it had stopped reading too. */
    assert_int_equal(after.read_paused - before.read_paused, 1);
    deaf_finish(&loop, &guard, &d);
    free(d.in);
    free(big);
}

struct counter {
    size_t binary;
};

static void count_binary(uint8_t op, const uint8_t *p, size_t n, void *arg)
{
    struct counter *k = arg;
    (void)p;
    if (op == 0x2)
        k->binary += n;
}

/* Past its stop mark the wsconn does not read the peer (a ping then goes unanswered); once the
 * peer reads and the queue is back under out_high, reading resumes and the ping is answered. */
static void test_read_pause_and_resume(void **state)
{
    uv_loop_t loop;
    uv_timer_t guard;
    struct deaf d;
    struct tt_wsconn_config cfg = {0};
    struct tt_wsconn_stats before, after;
    struct pongs k = {0, -1, true, false};
    struct counter bin = {0};
    uint8_t *big = calloc(1, 200000), ping[16];
    (void)state;

    assert_int_equal(uv_loop_init(&loop), 0);
    ut_start_guard(&loop, &guard);
    cfg.out_high = 256u << 10;
    cfg.out_max = 2u << 20;
    deaf_open(&loop, &d, false, &cfg);
    for (int i = 0; i < 10; i++)
        uv_run(&loop, UV_RUN_NOWAIT); /* reading has started */
    tt_wsconn_get_stats(&before);
    for (int i = 0; i < 4; i++)
        assert_int_equal(tt_wsconn_send_frame(d.c, big, 200000), 0);
    tt_wsconn_get_stats(&after);
    assert_int_equal(after.read_paused - before.read_paused, 1);
    /* A ping now is not read while the queue stays over out_high (the peer does not read). */
    size_t n = peer_frame(ping, true, 0x9, (const uint8_t *)"hi", 2);
    uv_buf_t b = uv_buf_init((char *)ping, (unsigned)n);
    assert_int_equal(uv_try_write(S(d.raw), &b, 1), (int)n);
    for (int i = 0; i < 50; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_true(tt_wsconn_queued(d.c) > cfg.out_high);
    tt_wsconn_get_stats(&after);
    assert_int_equal(after.pings_answered, before.pings_answered);
    /* The peer reads (the wsconn's send buffer grown back, so that loopback does not crawl):
     * the queue drains, reading resumes, the ping is answered. */
    int roomy = 1 << 20;
    assert_int_equal(uv_send_buffer_size((uv_handle_t *)&d.ws->tcp, &roomy), 0);
    uv_read_start(S(d.raw), deaf_alloc, deaf_read);
    do {
        uv_run(&loop, UV_RUN_ONCE);
        tt_wsconn_get_stats(&after);
    } while (after.pings_answered == before.pings_answered);
    assert_non_null(d.c);
    deaf_finish(&loop, &guard, &d);
    assert_int_equal(d.err, 0);
    deaf_frames(&d, count_pongs, &k);
    deaf_frames(&d, count_binary, &bin);
    assert_true(k.seen_hi);
    assert_int_equal(bin.binary, 4 * 200000);
    free(d.in);
    free(big);
}

/* Output that does not move for stall_ms (a peer that never reads, below the cap): closed. */
static void test_output_stall(void **state)
{
    uv_loop_t loop;
    uv_timer_t guard;
    struct deaf d;
    struct tt_wsconn_config cfg = {0};
    struct tt_wsconn_stats before, after;
    uint8_t *big = calloc(1, 1u << 20);
    (void)state;

    assert_int_equal(uv_loop_init(&loop), 0);
    ut_start_guard(&loop, &guard);
    cfg.stall_ms = 300;
    deaf_open(&loop, &d, true, &cfg);
    tt_wsconn_get_stats(&before);
    assert_int_equal(tt_wsconn_send_frame(d.c, big, 1u << 20), 0);
    while (!d.closed)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(d.err, TETHER_ERR_IO);
    assert_non_null(strstr(d.reason, "stalled"));
    tt_wsconn_get_stats(&after);
    assert_int_equal(after.overflow_stall - before.overflow_stall, 1);
    assert_int_equal(after.overflow_cap, before.overflow_cap);
    deaf_finish(&loop, &guard, &d);
    free(d.in);
    free(big);
}

/* ---- interop with wslay (the reference) ------------------------------------------------ */

struct sink {
    uint8_t *buf;
    size_t len, cap, off;
    bool eof;
};

static void sink_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    struct sink *k = h->data;
    (void)sz;
    buf->base = (char *)k->buf + k->len;
    buf->len = k->cap - k->len;
}

static void sink_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct sink *k = s->data;
    (void)buf;
    if (nread > 0)
        k->len += (size_t)nread;
    else if (nread < 0) {
        k->eof = true;
        uv_read_stop(s);
    }
}

static ssize_t wslay_recv_from_sink(uint8_t *buf, size_t len, int flags, void *ud)
{
    struct sink *k = ud;
    size_t n = k->len - k->off;
    (void)flags;
    if (n > len)
        n = len;
    memcpy(buf, k->buf + k->off, n);
    k->off += n;
    return (ssize_t)n;
}

static ssize_t wslay_send_to_sink(const uint8_t *data, size_t len, int flags, void *ud)
{
    struct sink *k = ud;
    (void)flags;
    assert_true(k->len + len <= k->cap);
    memcpy(k->buf + k->len, data, len);
    k->len += len;
    return (ssize_t)len;
}

static int wslay_mask(uint8_t *buf, size_t len, void *ud)
{
    (void)ud;
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(0xa5 + 7 * i);
    return 0;
}

static void test_interop_wslay(void **state)
{
    uv_loop_t loop;
    uv_timer_t guard;
    struct tt_conn *a, *b;
    struct raw r;
    struct tt_wsconn *c;
    struct tt_session_callbacks scb;
    struct tt_wsconn_config cfg = {0};
    static const struct tt_wsconn_callbacks cb = {raw_on_close};
    static const size_t sizes[] = {0, 1, 125, 126, 65535, 65536, 200000};
    struct sink k = {0};
    (void)state;

    /* Our client frames (masked, every length encoding) parsed by wslay. */
    memset(&r, 0, sizeof(r));
    memset(&scb, 0, sizeof(scb));
    tt_pipe_session_callbacks(&scb);
    assert_int_equal(uv_loop_init(&loop), 0);
    ut_start_guard(&loop, &guard);
    ut_make_pair(&loop, &a, &b);
    cfg.client = true;
    cfg.session.role = TT_ROLE_DEVICE;
    cfg.session.window = 65536;
    cfg.session.max_streams = 4;
    cfg.session_cb = &scb;
    k.cap = 1 << 20;
    k.buf = malloc(k.cap);
    a->tcp.data = &k;
    uv_read_start(S(a), sink_alloc, sink_read);
    assert_int_equal(tt_wsconn_new(&c, &loop, b, NULL, 0, &cfg, &cb, &r), 0);
    uint8_t *pat = malloc(200000);
    for (size_t i = 0; i < 200000; i++)
        pat[i] = (uint8_t)(i * 13 + (i >> 8));
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        assert_int_equal(tt_wsconn_send_frame(c, pat, sizes[i]), 0);
    tt_wsconn_close(c, TT_GOAWAY_NORMAL, 1000, 0, "done");
    while (!k.eof)
        uv_run(&loop, UV_RUN_ONCE);
    tt_conn_close(a, NULL);
    while (!r.closed)
        uv_run(&loop, UV_RUN_ONCE);
    ut_finish_loop(&loop, &guard);

    struct wslay_frame_callbacks wcb = {wslay_send_to_sink, wslay_recv_from_sink, wslay_mask};
    wslay_frame_context_ptr ws;
    assert_int_equal(wslay_frame_context_init(&ws, &wcb, &k), 0);
    size_t frame = 0, got = 0;
    uint8_t *msg = malloc(200000);
    bool closed = false;
    while (!closed) {
        struct wslay_frame_iocb io;
        memset(&io, 0, sizeof(io));
        ssize_t n = wslay_frame_recv(ws, &io);
        assert_true(n >= 0);
        assert_true(io.mask);
        assert_int_equal(io.rsv, 0);
        if (io.opcode == WSLAY_CONNECTION_CLOSE) {
            closed = io.payload_length == (uint64_t)got + (uint64_t)n;
            got += (size_t)n;
            if (closed)
                assert_int_equal(frame, sizeof(sizes) / sizeof(sizes[0]));
            continue;
        }
        assert_int_equal(io.opcode, WSLAY_BINARY_FRAME);
        assert_int_equal(io.payload_length, sizes[frame]);
        memcpy(msg + got, io.data, (size_t)n);
        got += (size_t)n;
        if (got == sizes[frame]) {
            assert_memory_equal(msg, pat, got);
            frame++;
            got = 0;
        }
    }
    wslay_frame_context_free(ws);

    /* wslay's masked frames (a fragmented HELLO, 16-bit length, a ping between) into our
     * server side, split into single bytes over the socket. */
    uint8_t hello[1024];
    struct tt_hello h;
    memset(&h, 0, sizeof(h));
    h.version = TT_PROTO_VERSION;
    h.max_streams = 4;
    h.window = 65536;
    h.name.p = (const uint8_t *)"dev1";
    h.name.len = 4;
    memset(msg, 't', 128);
    h.token.p = msg;
    h.token.len = 128;
    tt_ssize hn = tt_frame_encode_hello(hello, sizeof(hello), &h);
    assert_true(hn > 126);
    k.len = k.off = 0;
    assert_int_equal(wslay_frame_context_init(&ws, &wcb, &k), 0);
    struct wslay_frame_iocb parts[] = {
        {0, 0, WSLAY_BINARY_FRAME, 3, 1, hello, 3},
        {1, 0, WSLAY_PING, 2, 1, (const uint8_t *)"pp", 2},
        {1, 0, WSLAY_CONTINUATION_FRAME, (uint64_t)hn - 3, 1, hello + 3, (size_t)hn - 3},
    };
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(wslay_frame_send(ws, &parts[i]), (ssize_t)parts[i].data_length);
    wslay_frame_context_free(ws);

    memset(&r, 0, sizeof(r));
    scb.on_hello = raw_on_hello;
    raw_hellos = 0;
    assert_int_equal(uv_loop_init(&loop), 0);
    ut_start_guard(&loop, &guard);
    ut_make_pair(&loop, &a, &b);
    cfg.client = false;
    cfg.session.role = TT_ROLE_RELAY;
    r.tcp = a;
    a->tcp.data = &r;
    uv_read_start(S(a), raw_alloc, raw_on_read);
    assert_int_equal(tt_wsconn_new(&c, &loop, b, NULL, 0, &cfg, &cb, &r), 0);
    for (size_t i = 0; i < k.len && !r.closed; i++) {
        uv_buf_t wb = uv_buf_init((char *)k.buf + i, 1);
        assert_int_equal(uv_try_write(S(a), &wb, 1), 1);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    while (!r.eof)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(raw_hellos, 1);
    assert_int_equal(r.err, 0);
    tt_conn_close(a, NULL);
    ut_finish_loop(&loop, &guard);
    free(pat);
    free(msg);
    free(k.buf);
}

/* A burst of closes (every device of a node dropping at once): one idle turn runs at most
 * TT_WSCONN_RUN_PER_TURN connections, the rest the turns after, every one closed in the end. */
static void test_close_burst_over_turns(void **state)
{
    enum { N = TT_WSCONN_RUN_PER_TURN + 44 };
    uv_loop_t loop;
    uv_timer_t guard;
    static struct tt_conn *peer[N];
    static struct tt_wsconn *ws[N];
    struct raw r;
    struct tt_session_callbacks scb;
    struct tt_wsconn_config cfg = {0};
    static const struct tt_wsconn_callbacks cb = {raw_on_close};
    struct tt_wsconn_stats st0, st1;
    (void)state;

    memset(&r, 0, sizeof(r));
    memset(&scb, 0, sizeof(scb));
    tt_pipe_session_callbacks(&scb);
    assert_int_equal(uv_loop_init(&loop), 0);
    ut_start_guard(&loop, &guard);
    cfg.session.role = TT_ROLE_RELAY;
    cfg.session.window = 65536;
    cfg.session.max_streams = 4;
    cfg.session_cb = &scb;
    for (int i = 0; i < N; i++) {
        struct tt_conn *b;
        ut_make_pair(&loop, &peer[i], &b);
        assert_int_equal(tt_wsconn_new(&ws[i], &loop, b, NULL, 0, &cfg, &cb, &r), 0);
    }
    for (int i = 0; i < 8; i++) /* every one started (at most the cap a turn) */
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(r.closed, 0);
    tt_wsconn_get_stats(&st0);
    for (int i = 0; i < N; i++)
        tt_wsconn_close(ws[i], TT_GOAWAY_NORMAL, 1000, 0, "burst");
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(r.closed, TT_WSCONN_RUN_PER_TURN); /* one turn: the cap */
    tt_wsconn_get_stats(&st1);
    assert_true(st1.run_capped > st0.run_capped);
    for (int i = 0; i < 100 && r.closed < N; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(r.closed, N); /* the rest in the next turn */
    for (int i = 0; i < N; i++)
        tt_conn_close(peer[i], NULL);
    ut_finish_loop(&loop, &guard);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_small),
        cmocka_unit_test(test_close_burst_over_turns),
        cmocka_unit_test(test_echo_flow_control),
        cmocka_unit_test(test_echo_many_streams),
        cmocka_unit_test(test_empty_stream),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_close_with_open_streams),
        cmocka_unit_test(test_text_frame),
        cmocka_unit_test(test_unmasked_from_client),
        cmocka_unit_test(test_masked_from_server),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_peer_close),
        cmocka_unit_test(test_ping_timeout),
        cmocka_unit_test(test_ping_pong),
        cmocka_unit_test(test_bad_session_bytes),
        cmocka_unit_test(test_fragmented_hello),
        cmocka_unit_test(test_continuation_without_message),
        cmocka_unit_test(test_reserved_bits),
        cmocka_unit_test(test_fragments_over_max_message),
        cmocka_unit_test(test_abort_while_closing),
        cmocka_unit_test(test_interop_wslay),
        cmocka_unit_test(test_stuck_service_backpressure),
        cmocka_unit_test(test_ping_flood_relay_side),
        cmocka_unit_test(test_ping_flood_agent_side),
        cmocka_unit_test(test_output_cap),
        cmocka_unit_test(test_read_pause_and_resume),
        cmocka_unit_test(test_output_stall),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
