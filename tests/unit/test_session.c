/* test_session.c - unit tests for src/core/session.c. Every vector of tests/vectors is fed to a
 * session in the context its file names and must produce the events it lists, whole, one byte
 * at a time and split at every offset; scripted conversations check the state machine, the
 * stream end rules, flow control and the growth of the stream table (also with a failing
 * alloc_table). Events are recorded as text in the vector format (docs/PROTOCOL.md). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/session.h"
#include "tt_vectors.h"

static struct tv_set *vectors;

/* ---- the recorder: a session plus everything its callbacks saw ---- */

#define EV_MAX 16384

struct rec {
    struct tt_session s;
    struct tt_session_callbacks cb;
    struct tt_stream *table;
    uint32_t cap;
    char ev[EV_MAX];
    size_t evlen;
    uint32_t data_id; /* the last event is data(data_id, data_n), starting at last_start */
    size_t data_n;
    size_t last_start;
    /* behaviour knobs */
    int open_ret;           /* what on_open returns */
    int data_ret;           /* what on_data returns */
    bool consume_on_data;   /* call tt_session_consume right away */
    uint32_t reset_in_data; /* on_data: tt_session_reset this id */
    bool accept_on_hello;   /* on_hello: accept, then open streams */
    int opens_on_hello;     /* how many streams to open after accepting */
    bool goaway_on_data;    /* on_data: tt_session_goaway */
    long alloc_left;        /* alloc_table succeeds this many more times (-1: always) */
    int nalloc, nrelease;
    uint8_t out[8192]; /* frames written by calls made inside callbacks */
    size_t outlen;
    uint8_t hellobuf[TT_CTRL_MAX];
};

static void ev(struct rec *r, const char *fmt, ...)
{
    va_list ap;
    int n;

    r->last_start = r->evlen;
    if (r->evlen > 0 && r->evlen < EV_MAX - 1)
        r->ev[r->evlen++] = ' ';
    va_start(ap, fmt);
    n = vsnprintf(r->ev + r->evlen, EV_MAX - r->evlen, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < EV_MAX - r->evlen);
    r->evlen += (size_t)n;
    r->data_id = 0;
}

static struct rec *R(void *ud)
{
    return ud;
}

static int cb_hello(struct tt_session *s, const struct tt_hello *m, void *ud)
{
    struct rec *r = R(ud);
    ev(r, "hello(%.*s)", (int)m->name.len, (const char *)m->name.p);
    if (r->accept_on_hello) {
        struct tt_welcome w;
        tt_ssize n;
        int i;
        memset(&w, 0, sizeof(w));
        w.label.p = (const uint8_t *)"k3j9x2mq";
        w.label.len = 8;
        n = tt_session_accept(s, &w, r->out + r->outlen, sizeof(r->out) - r->outlen);
        assert_true(n > 0);
        r->outlen += (size_t)n;
        for (i = 0; i < r->opens_on_hello; i++) {
            uint32_t id = 0;
            n = tt_session_open(s, (uint8_t)(i % m->nservices), "198.51.100.1:40000", NULL, &id,
                                r->out + r->outlen, sizeof(r->out) - r->outlen);
            assert_true(n > 0);
            assert_int_equal(id, (uint32_t)i + 1);
            r->outlen += (size_t)n;
        }
    }
    return 0;
}

static int cb_welcome(struct tt_session *s, const struct tt_welcome *m, void *ud)
{
    (void)s;
    ev(R(ud), "welcome(%.*s)", (int)m->label.len, (const char *)m->label.p);
    return 0;
}

static int cb_refuse(struct tt_session *s, const struct tt_coded *m, void *ud)
{
    (void)s;
    ev(R(ud), "refuse(%u)", m->code);
    return 0;
}

static int cb_open(struct tt_session *s, struct tt_stream *st, const struct tt_open *m, void *ud)
{
    (void)s;
    ev(R(ud), "open(%u,%u)", st->id, m->service);
    assert_int_equal(st->service, m->service);
    st->user = (void *)(uintptr_t)(st->id * 7u);
    return R(ud)->open_ret;
}

static int cb_data(struct tt_session *s, struct tt_stream *st, const uint8_t *d, size_t len,
                   void *ud)
{
    struct rec *r = R(ud);
    uint32_t id = st->id;
    size_t total = len;

    assert_true(len > 0);
    assert_non_null(d);
    if (r->data_id == id) {
        /* pieces of one frame (or back-to-back frames of one stream) add up */
        total += r->data_n;
        r->evlen = r->last_start;
        r->ev[r->evlen] = '\0';
    }
    ev(r, "data(%u,%zu)", id, total);
    r->data_id = id;
    r->data_n = total;
    if (r->consume_on_data)
        tt_session_consume(s, id, len);
    if (r->reset_in_data == id) {
        tt_ssize n = tt_session_reset(s, id, TT_RESET_CANCEL, r->out + r->outlen,
                                      sizeof(r->out) - r->outlen);
        assert_true(n > 0);
        r->outlen += (size_t)n;
    }
    if (r->goaway_on_data) {
        tt_ssize n = tt_session_goaway(s, TT_GOAWAY_NORMAL, NULL, r->out + r->outlen,
                                       sizeof(r->out) - r->outlen);
        assert_true(n > 0);
        r->outlen += (size_t)n;
    }
    return r->data_ret;
}

static int cb_fin(struct tt_session *s, struct tt_stream *st, void *ud)
{
    (void)s;
    ev(R(ud), "fin(%u)", st->id);
    return 0;
}

static int cb_reset(struct tt_session *s, struct tt_stream *st, const struct tt_coded *m, void *ud)
{
    (void)s;
    ev(R(ud), "reset(%u,%u)", st->id, m->code);
    return 0;
}

static int cb_window(struct tt_session *s, struct tt_stream *st, void *ud)
{
    (void)s;
    ev(R(ud), "window(%u,%u)", st->id, st->send_window);
    return 0;
}

static int cb_goaway(struct tt_session *s, const struct tt_coded *m, void *ud)
{
    assert_int_equal(tt_session_state(s), TT_SESSION_CLOSED);
    ev(R(ud), "goaway(%u)", m->code);
    return 0;
}

static void cb_close(struct tt_session *s, struct tt_stream *st, void *ud)
{
    (void)s;
    ev(R(ud), "close(%u)", st->id);
}

static struct tt_stream *cb_alloc(struct tt_session *s, uint32_t newcap, void *ud)
{
    struct rec *r = R(ud);
    (void)s;
    if (r->alloc_left == 0)
        return NULL;
    if (r->alloc_left > 0)
        r->alloc_left--;
    r->nalloc++;
    return calloc(newcap, sizeof(struct tt_stream));
}

static void cb_release(struct tt_session *s, struct tt_stream *old, void *ud)
{
    struct rec *r = R(ud);
    (void)s;
    r->nrelease++;
    if (old != r->table)
        free(old);
}

/* The protocol version of the next rec_new's session (0: the default, TT_PROTO_VERSION, for a
 * relay; version 1 for a device, whose scripts below speak version 1 unless a test says so). */
static uint8_t next_version;

static struct rec *rec_new(enum tt_role role, uint32_t window, uint16_t max_streams, uint32_t cap,
                           bool growable)
{
    struct rec *r = calloc(1, sizeof(*r));
    struct tt_session_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.version = next_version ? next_version : role == TT_ROLE_DEVICE ? 1 : 0;
    next_version = 0;

    assert_non_null(r);
    r->cb.on_hello = cb_hello;
    r->cb.on_welcome = cb_welcome;
    r->cb.on_refuse = cb_refuse;
    r->cb.on_open = cb_open;
    r->cb.on_data = cb_data;
    r->cb.on_fin = cb_fin;
    r->cb.on_reset = cb_reset;
    r->cb.on_window = cb_window;
    r->cb.on_goaway = cb_goaway;
    r->cb.on_stream_close = cb_close;
    if (growable) {
        r->cb.alloc_table = cb_alloc;
        r->cb.release_table = cb_release;
    }
    r->alloc_left = -1;
    r->cap = cap;
    r->table = calloc(cap, sizeof(struct tt_stream));
    cfg.role = role;
    cfg.window = window;
    cfg.max_streams = max_streams;
    assert_int_equal(tt_session_init(&r->s, &cfg, &r->cb, r, r->table, cap), 0);
    return r;
}

static void rec_free(struct rec *r)
{
    if (r->s.streams != r->table)
        free(r->s.streams);
    free(r->table);
    free(r);
}

static void rec_clear(struct rec *r)
{
    r->evlen = 0;
    r->ev[0] = '\0';
    r->data_id = 0;
    r->outlen = 0;
}

static const char *short_err(int err)
{
    const char *n = tether_err_name(err);
    return strncmp(n, "TETHER_ERR_", 11) == 0 ? n + 11 : n;
}

/* Drains tt_session_send into events (send:RESET / send:WINDOW). */
static void drain(struct rec *r)
{
    uint8_t buf[4096];
    tt_ssize n;

    while ((n = tt_session_send(&r->s, buf, sizeof(buf))) > 0) {
        size_t off = 0;
        while (off < (size_t)n) {
            struct tt_frame_header h;
            const uint8_t *p = buf + off + TT_FRAME_HEADER_LEN;
            tt_frame_header_decode(&h, buf + off);
            if (h.type == TT_FRAME_RESET) {
                struct tt_coded c;
                assert_int_equal(tt_frame_decode_coded(&c, p, h.length), 0);
                ev(r, "send:RESET(%u,%u)", h.stream, c.code);
            } else {
                uint32_t inc;
                assert_int_equal(h.type, TT_FRAME_WINDOW);
                assert_int_equal(tt_frame_decode_window(&inc, p, h.length), 0);
                ev(r, "send:WINDOW(%u,%u)", h.stream, inc);
            }
            off += TT_FRAME_HEADER_LEN + h.length;
        }
        assert_int_equal(off, (size_t)n);
    }
    assert_false(tt_session_want_write(&r->s));
}

/* Feeds in[0..len) cut at the given offsets (ascending), then drains the queued frames. */
static void feed_cuts(struct rec *r, const uint8_t *in, size_t len, const size_t *cuts,
                      size_t ncuts)
{
    size_t prev = 0, i;

    for (i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        tt_ssize rv = tt_session_recv(&r->s, in + prev, end - prev);
        if (rv < 0) {
            ev(r, "error(%s)", short_err((int)rv));
            assert_int_equal(tt_session_error(&r->s), rv);
            assert_int_equal(tt_session_recv(&r->s, in, len), rv); /* sticky */
            return;
        }
        assert_int_equal(rv, (tt_ssize)(end - prev));
        prev = end;
    }
    drain(r);
}

static void feed(struct rec *r, const uint8_t *in, size_t len)
{
    feed_cuts(r, in, len, NULL, 0);
}

/* ---- building frames ---- */

struct buf {
    uint8_t b[1 << 17];
    size_t len;
};

static void put(struct buf *b, tt_ssize n)
{
    assert_true(n > 0);
    b->len += (size_t)n;
}

static struct tt_str S(const char *s) {
    struct tt_str t;
    t.p = (const uint8_t *)s;
    t.len = strlen(s);
    return t;
}

static void
add_welcome(struct buf *b, uint32_t window, uint16_t max_streams)
{
    struct tt_welcome w;
    memset(&w, 0, sizeof(w));
    w.version = 1;
    w.window = window;
    w.max_streams = max_streams;
    w.label = S("k3j9x2mq");
    put(b, tt_frame_encode_welcome(b->b + b->len, sizeof(b->b) - b->len, &w));
}

static void add_hello(struct buf *b, uint8_t version, uint32_t window, uint16_t max_streams,
                      uint8_t nservices)
{
    struct tt_hello h;
    uint8_t i;
    memset(&h, 0, sizeof(h));
    h.version = version;
    h.window = window;
    h.max_streams = max_streams;
    h.name = S("sensor-1");
    h.token = S("s3cret");
    h.nservices = nservices;
    for (i = 0; i < nservices; i++) {
        h.services[i].kind = TT_SERVICE_TCP;
        h.services[i].name = S("svc");
    }
    put(b, tt_frame_encode_hello(b->b + b->len, sizeof(b->b) - b->len, &h));
}

static void add_open(struct buf *b, uint32_t id, uint8_t service)
{
    struct tt_open o;
    o.service = service;
    o.origin = S("203.0.113.7:51234");
    put(b, tt_frame_encode_open(b->b + b->len, sizeof(b->b) - b->len, id, &o));
}

static void add_data(struct buf *b, uint32_t id, const char *data, size_t len, bool fin)
{
    put(b, tt_frame_encode_data_header(b->b + b->len, id, len, fin));
    memcpy(b->b + b->len, data, len);
    b->len += len;
}

static void add_window(struct buf *b, uint32_t id, uint32_t inc)
{
    put(b, tt_frame_encode_window(b->b + b->len, sizeof(b->b) - b->len, id, inc));
}

static void add_coded(struct buf *b, uint8_t type, uint32_t id, uint16_t code, const char *why)
{
    struct tt_coded c;
    c.code = code;
    c.reason = S(why);
    if (type == TT_FRAME_RESET)
        put(b, tt_frame_encode_reset(b->b + b->len, sizeof(b->b) - b->len, id, &c));
    else if (type == TT_FRAME_GOAWAY)
        put(b, tt_frame_encode_goaway(b->b + b->len, sizeof(b->b) - b->len, &c));
    else
        put(b, tt_frame_encode_refuse(b->b + b->len, sizeof(b->b) - b->len, &c));
}

static void add_raw(struct buf *b, const void *p, size_t n)
{
    memcpy(b->b + b->len, p, n);
    b->len += n;
}

/* ---- contexts (see the vector files' header) ---- */

/* D0: a device that sent a version-1 HELLO (window 16, max_streams 4; services 0 = http,
 * 1 = ssh); D2: the same with a version-2 HELLO (version 2). */
static struct rec *ctx_dv(uint32_t cap, bool growable, uint8_t version)
{
    struct rec *r;

    next_version = version;
    r = rec_new(TT_ROLE_DEVICE, 16, 4, cap, growable);
    struct tt_hello h;
    uint8_t out[512];

    memset(&h, 0, sizeof(h));
    h.name = S("sensor-1");
    h.token = S("s3cret");
    h.nservices = 2;
    h.services[0].kind = TT_SERVICE_HTTP;
    h.services[0].name = S("http");
    h.services[1].kind = TT_SERVICE_TCP;
    h.services[1].name = S("ssh");
    assert_true(tt_session_hello(&r->s, &h, out, sizeof(out)) > 0);
    assert_int_equal(out[TT_FRAME_HEADER_LEN], version);
    assert_int_equal(tt_session_hello(&r->s, &h, out, sizeof(out)), TETHER_ERR_STATE);
    return r;
}

static struct rec *ctx_d0(uint32_t cap, bool growable)
{
    return ctx_dv(cap, growable, 1);
}

/* D1: D0 after WELCOME (window 262144, max_streams 100) and OPEN of stream 1 to service 0. */
static struct rec *ctx_d1(uint32_t cap, bool growable)
{
    struct rec *r = ctx_d0(cap, growable);
    static struct buf b;

    b.len = 0;
    add_welcome(&b, 262144, 100);
    add_open(&b, 1, 0);
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "welcome(k3j9x2mq) open(1,0)");
    rec_clear(r);
    return r;
}

/* V: a visitor session (either side) that has received nothing: stream 1 open both ways. */
static struct rec *ctx_v(void)
{
    struct rec *r = rec_new(TT_ROLE_VISITOR, 0, 0, 8, false);

    assert_int_equal(tt_session_state(&r->s), TT_SESSION_OPEN);
    assert_int_equal(tt_session_nstreams(&r->s), 1);
    assert_int_equal(tt_session_send_window(&r->s, TT_VISITOR_STREAM), TT_VISITOR_WINDOW);
    return r;
}

static struct rec *ctx_for(const struct tv_vector *v)
{
    uint8_t t = tv_file_type(v);
    if (strncmp(v->file, "visitor", 7) == 0)
        return ctx_v();
    if (t == TT_FRAME_HELLO)
        return rec_new(TT_ROLE_RELAY, 65536, 16, 8, false);
    if (t == TT_FRAME_WELCOME || t == TT_FRAME_REFUSE)
        return ctx_dv(8, false, tv_file_version(v));
    return ctx_d1(8, false);
}

/* ---- vectors through sessions ---- */

/* Frames written from inside callbacks by the whole-input run of run_script. */
static uint8_t script_out[8192];
static size_t script_outlen;

static void expect_events(const struct rec *r, const char *want, const char *what, size_t cut)
{
    const char *w = strcmp(want, "none") == 0 ? "" : want;
    if (strcmp(r->ev, w) != 0)
        fail_msg("%s (cut %zu): events '%s', want '%s'", what, cut, r->ev, w);
}

/* The frames callbacks wrote must not depend on how the input was cut either. */
static void expect_out(const struct rec *r, const char *what, size_t cut)
{
    if (r->outlen != script_outlen || memcmp(r->out, script_out, r->outlen) != 0)
        fail_msg("%s (cut %zu): callbacks wrote different frames", what, cut);
}

static void test_vectors_session(void **state)
{
    size_t i, k, checked = 0;

    (void)state;
    for (i = 0; i < vectors->n; i++) {
        const struct tv_vector *v = &vectors->v[i];
        struct rec *r;
        size_t cuts[TV_MAX_BYTES];

        /* whole */
        r = ctx_for(v);
        feed(r, v->bytes, v->len);
        expect_events(r, v->events, v->name, 0);
        rec_free(r);
        /* one byte at a time */
        for (k = 0; k + 1 < v->len; k++)
            cuts[k] = k + 1;
        r = ctx_for(v);
        feed_cuts(r, v->bytes, v->len, cuts, v->len > 0 ? v->len - 1 : 0);
        expect_events(r, v->events, v->name, 1);
        rec_free(r);
        /* split once at every offset (every 13th for the big ones) */
        for (k = 1; k<v->len; k += v->len> 600 ? 13 : 1) {
            r = ctx_for(v);
            feed_cuts(r, v->bytes, v->len, &k, 1);
            expect_events(r, v->events, v->name, k);
            rec_free(r);
        }
        checked++;
    }
    assert_true(checked >= 80);
}

/* ---- scripted conversations, fed with every split ---- */

/* Feeds script to fresh sessions made by mk: whole, bytewise, split once at every offset and
 * split twice at a spread of offset pairs; each must give want. */
static void run_script(struct rec *(*mk)(void), const struct buf *b, const char *want)
{
    static size_t cuts[65536];
    struct rec *r;
    size_t k, j;

    r = mk();
    feed(r, b->b, b->len);
    if (strcmp(r->ev, want) != 0)
        fail_msg("whole: events\n  '%s', want\n  '%s'", r->ev, want);
    memcpy(script_out, r->out, r->outlen);
    script_outlen = r->outlen;
    rec_free(r);

    for (k = 0; k + 1 < b->len; k++)
        cuts[k] = k + 1;
    r = mk();
    feed_cuts(r, b->b, b->len, cuts, b->len - 1);
    expect_events(r, want, "bytewise", 1);
    expect_out(r, "bytewise", 1);
    rec_free(r);

    for (k = 1; k < b->len; k++) {
        r = mk();
        feed_cuts(r, b->b, b->len, &k, 1);
        expect_events(r, want, "split", k);
        expect_out(r, "split", k);
        rec_free(r);
    }
    for (k = 1; k < b->len; k += 7) {
        for (j = k + 1; j < b->len; j += 11) {
            size_t two[2] = {k, j};
            r = mk();
            feed_cuts(r, b->b, b->len, two, 2);
            expect_events(r, want, "split2", k * 100000 + j);
            expect_out(r, "split2", k * 100000 + j);
            rec_free(r);
        }
    }
}

static struct rec *mk_d0(void)
{
    return ctx_d0(4, true);
}

static void test_device_conversation(void **state)
{
    static struct buf b;
    static const uint8_t unknown[] = {0x00, 0x03, 0x77, 0xff, 0x00, 0x00, 0x00, 0x09, 1, 2, 3};

    (void)state;
    b.len = 0;
    add_welcome(&b, 1000, 50);
    add_open(&b, 1, 0);
    add_open(&b, 3, 1);
    add_data(&b, 1, "hello", 5, false);
    add_raw(&b, unknown, sizeof(unknown));
    add_data(&b, 3, "abc", 3, true);
    add_window(&b, 1, 100);
    add_open(&b, 5, 7); /* no such service */
    add_coded(&b, TT_FRAME_RESET, 3, 6, "io");
    add_open(&b, 9, 1);
    add_data(&b, 9, "0123456789abcdef", 16, false); /* the whole window */
    add_data(&b, 9, "x", 1, false);                 /* beyond it: reset FLOW */
    add_data(&b, 9, "late", 4, true);               /* for a stream that is gone: skipped */
    add_data(&b, 1, "", 0, true);
    add_open(&b, 11, 0);
    add_open(&b, 13, 0);
    add_open(&b, 15, 0);
    add_open(&b, 17, 0); /* 4 open already: over max_streams, reset LIMIT */
    add_coded(&b, TT_FRAME_GOAWAY, 0, 1, "bye");
    add_data(&b, 1, "ignored", 7, false); /* after GOAWAY: ignored */
    run_script(mk_d0, &b,
               "welcome(k3j9x2mq) open(1,0) open(3,1) data(1,5) data(3,3) fin(3) "
               "window(1,1100) reset(3,6) close(3) open(9,1) data(9,16) close(9) fin(1) "
               "open(11,0) open(13,0) open(15,0) goaway(1) close(13) close(15) close(1) "
               "close(11)");
    /* The queued RESETs are dropped by GOAWAY; without it they come out: */
    b.len -= 8 + 7;     /* the DATA after GOAWAY */
    b.len -= 8 + 2 + 3; /* the GOAWAY */
    run_script(mk_d0, &b,
               "welcome(k3j9x2mq) open(1,0) open(3,1) data(1,5) data(3,3) fin(3) "
               "window(1,1100) reset(3,6) close(3) open(9,1) data(9,16) close(9) fin(1) "
               "open(11,0) open(13,0) open(15,0) send:RESET(5,2) send:RESET(9,4) "
               "send:RESET(17,5)");
}

static struct rec *mk_relay(void)
{
    struct rec *r = rec_new(TT_ROLE_RELAY, 500, 8, 2, true);
    r->accept_on_hello = true;
    r->opens_on_hello = 3;
    return r;
}

static void test_relay_conversation(void **state)
{
    static struct buf b;

    (void)state;
    b.len = 0;
    add_hello(&b, 1, 10, 8, 2);
    add_data(&b, 1, "HTTP/1.1 200 OK\r\n", 17, false);
    add_window(&b, 2, 5);
    add_data(&b, 2, "ssh", 3, true);
    add_coded(&b, TT_FRAME_RESET, 3, TT_RESET_REFUSED, "connection refused");
    add_data(&b, 1, "", 0, true);
    add_coded(&b, TT_FRAME_RESET, 3, 0, ""); /* unknown by now: ignored */
    run_script(mk_relay, &b,
               "hello(sensor-1) data(1,17) window(2,15) data(2,3) fin(2) reset(3,1) close(3) "
               "fin(1)");
    /* WELCOME (8 + 17 bytes) and three OPENs (8 + 1 + 18 each) went out from on_hello */
    assert_int_equal(script_outlen, 25 + 3 * 27);
    assert_int_equal(script_out[2], TT_FRAME_WELCOME);
    assert_int_equal(script_out[25 + 2], TT_FRAME_OPEN);
}

/* ---- relay and device talking to each other ---- */

static void pipe_to(struct rec *to, const uint8_t *p, size_t n)
{
    assert_int_equal(tt_session_recv(&to->s, p, n), (tt_ssize)n);
}

static void test_relay_device_pair(void **state)
{
    struct rec *relay = rec_new(TT_ROLE_RELAY, 64, 4, 2, true);
    struct rec *dev = rec_new(TT_ROLE_DEVICE, 32, 2, 2, true);
    uint8_t buf[1024], big[100];
    struct tt_hello h;
    struct tt_welcome w;
    tt_ssize n;
    uint32_t id1, id2, id3;

    (void)state;
    memset(big, 'z', sizeof(big));
    memset(&h, 0, sizeof(h));
    h.name = S("pump-7");
    h.nservices = 1;
    h.services[0].kind = TT_SERVICE_HTTP;
    h.services[0].name = S("http");
    n = tt_session_hello(&dev->s, &h, buf, sizeof(buf));
    pipe_to(relay, buf, (size_t)n);
    assert_string_equal(relay->ev, "hello(pump-7)");
    assert_int_equal(tt_session_peer_window(&relay->s), 32);
    assert_int_equal(tt_session_peer_max_streams(&relay->s), 2);
    assert_int_equal(tt_session_open(&relay->s, 0, NULL, NULL, &id1, buf, sizeof(buf)),
                     TETHER_ERR_STATE);
    memset(&w, 0, sizeof(w));
    w.label = S("abcdefgh");
    n = tt_session_accept(&relay->s, &w, buf, sizeof(buf));
    assert_int_equal(tt_session_accept(&relay->s, &w, buf + n, sizeof(buf)), TETHER_ERR_STATE);
    assert_int_equal(tt_session_refuse(&relay->s, 1, NULL, buf + n, sizeof(buf)), TETHER_ERR_STATE);
    pipe_to(dev, buf, (size_t)n);
    assert_string_equal(dev->ev, "welcome(abcdefgh)");
    assert_int_equal(tt_session_state(&dev->s), TT_SESSION_OPEN);
    assert_int_equal(tt_session_peer_window(&dev->s), 64);

    assert_int_equal(tt_session_open(&relay->s, 1, NULL, NULL, &id1, buf, sizeof(buf)),
                     TETHER_ERR_NO_SERVICE);
    n = tt_session_open(&relay->s, 0, "192.0.2.1:1234", (void *)buf, &id1, buf, sizeof(buf));
    assert_int_equal(n, 8 + 1 + 14);
    assert_int_equal(id1, 1);
    assert_ptr_equal(tt_session_stream_user(&relay->s, id1), buf);
    pipe_to(dev, buf, (size_t)n);
    n = tt_session_open(&relay->s, 0, NULL, NULL, &id2, buf, sizeof(buf));
    assert_int_equal(id2, 2);
    pipe_to(dev, buf, (size_t)n);
    /* the device announced max_streams 2 */
    assert_int_equal(tt_session_open(&relay->s, 0, NULL, NULL, &id3, buf, sizeof(buf)),
                     TETHER_ERR_STREAM_LIMIT);
    assert_string_equal(dev->ev, "welcome(abcdefgh) open(1,0) open(2,0)");
    rec_clear(dev);

    /* relay -> device: window 32 */
    assert_int_equal(tt_session_send_window(&relay->s, id1), 32);
    assert_int_equal(tt_session_data_header(&relay->s, id1, 33, false, buf), TETHER_ERR_FLOW);
    assert_int_equal(tt_session_data_header(&relay->s, id1, 20, false, buf), 8);
    memcpy(buf + 8, big, 20);
    pipe_to(dev, buf, 28);
    assert_int_equal(tt_session_send_window(&relay->s, id1), 12);
    assert_int_equal(tt_session_data_header(&relay->s, id1, 12, false, buf), 8);
    memcpy(buf + 8, big, 12);
    pipe_to(dev, buf, 20);
    assert_int_equal(tt_session_send_window(&relay->s, id1), 0);
    assert_int_equal(tt_session_data_header(&relay->s, id1, 1, false, buf), TETHER_ERR_FLOW);
    assert_string_equal(dev->ev, "data(1,32)");
    /* the device consumes 10 (under half its window, but the relay's credit is 0 < 16): a
     * WINDOW goes back and the relay may send again */
    tt_session_consume(&dev->s, id1, 10);
    assert_true(tt_session_want_write(&dev->s));
    n = tt_session_send(&dev->s, buf, sizeof(buf));
    assert_int_equal(n, 12);
    rec_clear(relay);
    pipe_to(relay, buf, (size_t)n);
    assert_string_equal(relay->ev, "window(1,10)");
    assert_int_equal(tt_session_send_window(&relay->s, id1), 10);

    /* device -> relay: window 64, FIN both ways ends the stream on both sides */
    assert_int_equal(tt_session_send_window(&dev->s, id2), 64);
    assert_int_equal(tt_session_data_header(&dev->s, id2, 64, true, buf), 8);
    memcpy(buf + 8, big, 64);
    rec_clear(relay);
    pipe_to(relay, buf, 72);
    assert_string_equal(relay->ev, "data(2,64) fin(2)");
    assert_int_equal(tt_session_data_header(&relay->s, id2, 0, true, buf), 8);
    assert_int_equal(tt_session_nstreams(&relay->s), 1);
    rec_clear(dev);
    pipe_to(dev, buf, 8);
    assert_string_equal(dev->ev, "fin(2) close(2)");
    assert_int_equal(tt_session_nstreams(&dev->s), 1);

    /* the relay resets stream 1; the device sees on_reset then on_stream_close */
    n = tt_session_reset(&relay->s, id1, TT_RESET_TIMEOUT, buf, sizeof(buf));
    rec_clear(dev);
    pipe_to(dev, buf, (size_t)n);
    assert_string_equal(dev->ev, "reset(1,7) close(1)");
    assert_int_equal(tt_session_nstreams(&dev->s), 0);
    assert_int_equal(tt_session_nstreams(&relay->s), 0);

    /* the relay goes away */
    n = tt_session_goaway(&relay->s, TT_GOAWAY_SHUTDOWN, "maintenance", buf, sizeof(buf));
    rec_clear(dev);
    pipe_to(dev, buf, (size_t)n);
    assert_string_equal(dev->ev, "goaway(1)");
    assert_int_equal(tt_session_state(&dev->s), TT_SESSION_CLOSED);
    rec_free(relay);
    rec_free(dev);
}

/* ---- the visitor role (tether connect) ---- */

static struct rec *mk_visitor(void)
{
    return ctx_v();
}

/* A script as the relay's end of a visitor connection receives it: data, credit, the
 * visitor's half-close, then frames for the ended stream and an unknown type. */
static void test_visitor_conversation(void **state)
{
    static struct buf b;
    static const uint8_t unknown[] = {0x00, 0x02, 0x66, 0x00, 0x00, 0x00, 0x00, 0x00, 9, 9};
    static char chunk[600];

    (void)state;
    memset(chunk, 'c', sizeof(chunk));
    b.len = 0;
    add_data(&b, 1, "GET / HTTP/1.0\r\n\r\n", 18, false);
    add_raw(&b, unknown, sizeof(unknown));
    add_window(&b, 1, 1000);
    add_data(&b, 1, chunk, 600, false);
    add_data(&b, 1, "", 0, true);
    add_data(&b, 1, "after fin", 9, false);  /* DATA after FIN: reset PROTOCOL */
    add_data(&b, 1, "late", 4, false);       /* the stream is gone: skipped */
    add_coded(&b, TT_FRAME_RESET, 1, 0, ""); /* likewise */
    add_window(&b, 1, 5);                    /* likewise */
    add_coded(&b, TT_FRAME_GOAWAY, 0, 0, "done");
    run_script(mk_visitor, &b, "data(1,18) window(1,263144) data(1,600) fin(1) close(1) goaway(0)");
    /* without the GOAWAY the session's RESET comes out */
    b.len -= 8 + 2 + 4;
    run_script(mk_visitor, &b,
               "data(1,18) window(1,263144) data(1,600) fin(1) close(1) send:RESET(1,3)");
}

/* 262144 bytes of credit each way, and not one more. */
static void test_visitor_window(void **state)
{
    struct rec *r = ctx_v();
    static struct buf b;
    static char chunk[65536];
    uint8_t out[64];

    (void)state;
    memset(chunk, 'w', sizeof(chunk));
    for (int i = 0; i < 4; i++) {
        b.len = 0;
        add_data(&b, 1, chunk, 65535, false);
        feed(r, b.b, b.len);
    }
    b.len = 0;
    add_data(&b, 1, chunk, 4, false); /* 262144 in all */
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "data(1,262144)");
    rec_clear(r);
    b.len = 0;
    add_data(&b, 1, "!", 1, false); /* one more: FLOW */
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "close(1) send:RESET(1,4)");
    assert_int_equal(tt_session_nstreams(&r->s), 0);
    assert_int_equal(tt_session_state(&r->s), TT_SESSION_OPEN);
    rec_free(r);

    /* consuming half the window credits it back in one WINDOW */
    r = ctx_v();
    for (int i = 0; i < 2; i++) {
        b.len = 0;
        add_data(&b, 1, chunk, 65535, false);
        feed(r, b.b, b.len);
    }
    b.len = 0;
    add_data(&b, 1, chunk, 2, false);
    feed(r, b.b, b.len);
    tt_session_consume(&r->s, TT_VISITOR_STREAM, 131071);
    assert_false(tt_session_want_write(&r->s));
    tt_session_consume(&r->s, TT_VISITOR_STREAM, 1);
    assert_true(tt_session_want_write(&r->s));
    assert_int_equal(tt_session_send(&r->s, out, sizeof(out)), 12);
    assert_memory_equal(out, "\x00\x04\x06\x00\x00\x00\x00\x01\x00\x02\x00\x00", 12);
    rec_free(r);
}

/* Two visitor sessions joined back to back: what one writes the other takes, both ways; the
 * registration calls are refused; FIN both ways ends the stream on both sides. */
static void test_visitor_pair(void **state)
{
    struct rec *a = ctx_v(), *b = ctx_v();
    uint8_t buf[1024];
    uint32_t id = 0;
    tt_ssize n;
    struct tt_hello h;
    struct tt_welcome w;

    (void)state;
    memset(&h, 0, sizeof(h));
    memset(&w, 0, sizeof(w));
    assert_int_equal(tt_session_hello(&a->s, &h, buf, sizeof(buf)), TETHER_ERR_STATE);
    assert_int_equal(tt_session_accept(&a->s, &w, buf, sizeof(buf)), TETHER_ERR_STATE);
    assert_int_equal(tt_session_refuse(&a->s, 1, NULL, buf, sizeof(buf)), TETHER_ERR_STATE);
    assert_int_equal(tt_session_open(&a->s, 0, NULL, NULL, &id, buf, sizeof(buf)),
                     TETHER_ERR_STATE);
    assert_int_equal(tt_session_data_header(&a->s, 2, 1, false, buf), TETHER_ERR_NO_STREAM);
    assert_int_equal(tt_session_data_header(&a->s, 1, TT_FRAME_MAX_PAYLOAD, false, buf), 8);
    assert_int_equal(tt_session_send_window(&a->s, 1), TT_VISITOR_WINDOW - 65535);

    /* a -> b: "ping" and a's FIN */
    assert_int_equal(tt_session_data_header(&a->s, 1, 4, true, buf), 8);
    memcpy(buf + 8, "ping", 4);
    rec_clear(b);
    pipe_to(b, buf, 12);
    assert_string_equal(b->ev, "data(1,4) fin(1)");
    assert_int_equal(tt_session_send_window(&a->s, 1), 0); /* FIN sent */
    /* b -> a: "pong" and b's FIN, which completes the stream on both sides */
    assert_int_equal(tt_session_data_header(&b->s, 1, 4, false, buf), 8);
    memcpy(buf + 8, "pong", 4);
    assert_int_equal(tt_session_data_header(&b->s, 1, 0, true, buf + 12), 8);
    assert_int_equal(tt_session_nstreams(&b->s), 0); /* b's own call ended it: no close */
    rec_clear(a);
    pipe_to(a, buf, 20);
    assert_string_equal(a->ev, "data(1,4) fin(1) close(1)");
    assert_int_equal(tt_session_nstreams(&a->s), 0);
    assert_int_equal(tt_session_state(&a->s), TT_SESSION_OPEN);

    /* either one says goodbye */
    n = tt_session_goaway(&b->s, TT_GOAWAY_REVOKED, "access revoked", buf, sizeof(buf));
    assert_int_equal(n, 8 + 2 + 14);
    rec_clear(a);
    pipe_to(a, buf, (size_t)n);
    assert_string_equal(a->ev, "goaway(5)");
    assert_int_equal(tt_session_state(&a->s), TT_SESSION_CLOSED);
    rec_free(a);
    rec_free(b);

    /* a RESET from one side aborts both directions on the other */
    a = ctx_v();
    b = ctx_v();
    n = tt_session_reset(&a->s, 1, TT_RESET_REFUSED, buf, sizeof(buf));
    assert_int_equal(n, 10);
    assert_int_equal(tt_session_nstreams(&a->s), 0);
    pipe_to(b, buf, (size_t)n);
    assert_string_equal(b->ev, "reset(1,1) close(1)");
    rec_free(a);
    rec_free(b);
}

static void test_consume_window(void **state)
{
    struct rec *r = ctx_d1(8, false); /* device window 16 */
    static struct buf b;
    uint8_t out[64];

    (void)state;
    b.len = 0;
    add_data(&b, 1, "12345", 5, false);
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "data(1,5)");
    tt_session_consume(&r->s, 1, 5); /* 5 < 8 and 11 left >= 8: not yet */
    assert_false(tt_session_want_write(&r->s));
    b.len = 0;
    add_data(&b, 1, "1234", 4, false);
    feed(r, b.b, b.len); /* 7 left */
    assert_false(tt_session_want_write(&r->s));
    tt_session_consume(&r->s, 1, 1); /* 6 unacked, remaining 7 < 8: due */
    assert_true(tt_session_want_write(&r->s));
    tt_session_consume(&r->s, 1, 100);                    /* capped at the 3 bytes still held */
    assert_int_equal(tt_session_send(&r->s, out, 11), 0); /* no room for 12 bytes */
    assert_int_equal(tt_session_send(&r->s, out, sizeof(out)), 12);
    assert_int_equal(out[2], TT_FRAME_WINDOW);
    assert_int_equal(out[11], 9);
    assert_false(tt_session_want_write(&r->s));
    assert_int_equal(r->s.streams[0].id == 1 || r->s.nstreams == 1, 1);
    /* the full window is back: 16 bytes pass, 17 do not */
    rec_clear(r);
    b.len = 0;
    add_data(&b, 1, "0123456789abcdef", 16, false);
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "data(1,16)");
    tt_session_consume(&r->s, 1, 8); /* half a window: due */
    tt_session_consume(&r->s, 1, 8);
    rec_clear(r);
    drain(r);
    assert_string_equal(r->ev, "send:WINDOW(1,16)");
    /* after the peer's FIN nothing is credited */
    rec_clear(r);
    b.len = 0;
    add_data(&b, 1, "0123456789", 10, true);
    feed(r, b.b, b.len);
    tt_session_consume(&r->s, 1, 10);
    assert_false(tt_session_want_write(&r->s));
    assert_string_equal(r->ev, "data(1,10) fin(1)");
    rec_free(r);
}

/* tt_session_grow_window: only while the peer is window-limited; at most doubling; credited at
 * once; the grown window is what the peer may then send. */
static void test_grow_window(void **state)
{
    struct rec *r = ctx_d1(8, false); /* device window 16 */
    static struct buf b;

    (void)state;
    b.len = 0;
    add_data(&b, 1, "12345", 5, false);
    feed(r, b.b, b.len);
    assert_int_equal(tt_session_grow_window(&r->s, 1, 100), 0); /* 11 of 16 left: not limited */
    assert_int_equal(tt_session_grow_window(&r->s, 9, 100), 0); /* no such stream */
    b.len = 0;
    add_data(&b, 1, "12345678", 8, false);
    feed(r, b.b, b.len); /* 3 left < 16 / 4 */
    tt_session_consume(&r->s, 1, 13);
    assert_int_equal(tt_session_grow_window(&r->s, 1, 100), 16); /* doubles, no more */
    rec_clear(r);
    drain(r);
    assert_string_equal(r->ev, "send:WINDOW(1,29)");
    /* the peer may now send the whole grown window */
    rec_clear(r);
    b.len = 0;
    add_data(&b, 1, "0123456789abcdef0123456789abcdef", 32, false);
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "data(1,32)");
    /* after the peer's FIN it does not grow */
    b.len = 0;
    add_data(&b, 1, "", 0, true);
    feed(r, b.b, b.len);
    assert_int_equal(tt_session_grow_window(&r->s, 1, 100), 0);
    rec_free(r);
}

static void test_consume_on_data_flow(void **state)
{
    /* A device that consumes as it receives never runs out of window. */
    struct rec *r = ctx_d0(8, false);
    static struct buf b;
    size_t i;
    uint8_t out[256];
    char chunk[7] = "abcdefg";

    (void)state;
    r->consume_on_data = true;
    b.len = 0;
    add_welcome(&b, 1000, 10);
    add_open(&b, 1, 1);
    feed(r, b.b, b.len);
    rec_clear(r);
    for (i = 0; i < 100; i++) {
        struct tt_stream *st;
        b.len = 0;
        add_data(&b, 1, chunk, sizeof(chunk), false);
        assert_int_equal(tt_session_recv(&r->s, b.b, b.len), (tt_ssize)b.len);
        while (tt_session_want_write(&r->s))
            assert_true(tt_session_send(&r->s, out, sizeof(out)) > 0);
        st = NULL;
        for (uint32_t j = 0; j < r->s.cap; j++)
            if (r->s.streams[j].id == 1)
                st = &r->s.streams[j];
        assert_non_null(st);
        assert_true(st->recv_window >= 16 - 7 - 7);
    }
    rec_free(r);
}

static void test_peer_window_updates(void **state)
{
    struct rec *relay = rec_new(TT_ROLE_RELAY, 64, 4, 4, false);
    static struct buf b;
    uint8_t out[64];
    uint32_t id;

    (void)state;
    b.len = 0;
    add_hello(&b, 1, 100, 4, 1);
    feed(relay, b.b, b.len);
    assert_string_equal(relay->ev, "hello(sensor-1)");
    memset(out, 0, sizeof(out));
    {
        struct tt_welcome w;
        memset(&w, 0, sizeof(w));
        w.label = S("x");
        assert_int_equal(tt_session_accept(&relay->s, &w, out, 10), TETHER_ERR_AGAIN);
        assert_true(tt_session_accept(&relay->s, &w, out, sizeof(out)) > 0);
    }
    assert_int_equal(tt_session_open(&relay->s, 0, NULL, NULL, &id, out, 8), TETHER_ERR_AGAIN);
    assert_int_equal(tt_session_nstreams(&relay->s), 0);
    assert_int_equal(tt_session_open(&relay->s, 0, NULL, NULL, &id, out, 9), 9);
    assert_int_equal(tt_session_send_window(&relay->s, id), 100);
    assert_int_equal(tt_session_data_header(&relay->s, id, 100, false, out), 8);
    assert_int_equal(tt_session_send_window(&relay->s, id), 0);
    rec_clear(relay);
    b.len = 0;
    add_window(&b, id, 50);
    add_window(&b, id, 0x7fffffffu - 50); /* exactly 2^31-1: fine */
    feed(relay, b.b, b.len);
    assert_string_equal(relay->ev, "window(1,50) window(1,2147483647)");
    rec_clear(relay);
    b.len = 0;
    add_window(&b, id, 1); /* one over: the session resets the stream */
    feed(relay, b.b, b.len);
    assert_string_equal(relay->ev, "close(1) send:RESET(1,4)");
    assert_int_equal(tt_session_nstreams(&relay->s), 0);
    assert_int_equal(tt_session_send_window(&relay->s, id), 0);
    assert_int_equal(tt_session_data_header(&relay->s, id, 1, false, out), TETHER_ERR_NO_STREAM);
    rec_free(relay);
}

/* ---- stream end rules ---- */

static void test_end_rules(void **state)
{
    struct rec *r;
    static struct buf b;
    uint8_t out[64];

    (void)state;
    /* our FIN first, then the peer's: on_fin, then on_stream_close */
    r = ctx_d1(8, false);
    assert_int_equal(tt_session_data_header(&r->s, 1, 0, true, out), 8);
    assert_int_equal(out[3], TT_FLAG_FIN);
    assert_int_equal(tt_session_send_window(&r->s, 1), 0);
    assert_int_equal(tt_session_data_header(&r->s, 1, 0, true, out), TETHER_ERR_STATE);
    assert_int_equal(tt_session_nstreams(&r->s), 1);
    b.len = 0;
    add_window(&b, 1, 10); /* after our FIN: applied silently */
    add_data(&b, 1, "tail", 4, true);
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "data(1,4) fin(1) close(1)");
    assert_int_equal(tt_session_nstreams(&r->s), 0);
    rec_free(r);

    /* the peer's FIN first, then ours: freed in our call, no on_stream_close */
    r = ctx_d1(8, false);
    b.len = 0;
    add_data(&b, 1, "", 0, true);
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "fin(1)");
    assert_int_equal(tt_session_data_header(&r->s, 1, 3, false, out), 8); /* still may send */
    assert_int_equal(tt_session_data_header(&r->s, 1, 0, true, out), 8);
    assert_int_equal(tt_session_nstreams(&r->s), 0);
    assert_null(tt_session_stream_user(&r->s, 1));
    assert_string_equal(r->ev, "fin(1)");
    rec_free(r);

    /* DATA after the peer's FIN: reset PROTOCOL, on_stream_close */
    r = ctx_d1(8, false);
    b.len = 0;
    add_data(&b, 1, "a", 1, true);
    add_data(&b, 1, "b", 1, false);
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "data(1,1) fin(1) close(1) send:RESET(1,3)");
    rec_free(r);

    /* our reset: frame written, slot freed, no on_stream_close */
    r = ctx_d1(8, false);
    assert_int_equal(tt_session_reset(&r->s, 1, TT_RESET_IO, out, 9), TETHER_ERR_AGAIN);
    assert_int_equal(tt_session_nstreams(&r->s), 1);
    assert_int_equal(tt_session_reset(&r->s, 1, TT_RESET_IO, out, sizeof(out)), 10);
    assert_int_equal(out[2], TT_FRAME_RESET);
    assert_int_equal(out[9], TT_RESET_IO);
    assert_int_equal(tt_session_nstreams(&r->s), 0);
    assert_int_equal(tt_session_reset(&r->s, 1, TT_RESET_IO, out, sizeof(out)),
                     TETHER_ERR_NO_STREAM);
    b.len = 0;
    add_data(&b, 1, "in flight", 9, true);
    add_window(&b, 1, 5);
    add_coded(&b, TT_FRAME_RESET, 1, 0, "");
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "");
    rec_free(r);

    /* on_open refuses: RESET queued, no on_stream_close */
    r = ctx_d1(8, false);
    r->open_ret = TT_RESET_REFUSED;
    b.len = 0;
    add_open(&b, 2, 1);
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "open(2,1) send:RESET(2,1)");
    assert_int_equal(tt_session_nstreams(&r->s), 1);
    rec_free(r);

    /* the application resets inside on_data: the rest of the frame is skipped */
    r = ctx_d1(8, false);
    r->reset_in_data = 1;
    b.len = 0;
    add_data(&b, 1, "abcdef", 6, true);
    add_data(&b, 1, "gh", 2, false);
    {
        size_t cut = 8 + 2; /* on_data sees "ab" first */
        feed_cuts(r, b.b, b.len, &cut, 1);
    }
    assert_string_equal(r->ev, "data(1,2)");
    assert_int_equal(r->outlen, 10);
    rec_free(r);

    /* tt_session_goaway and _shutdown close every stream */
    r = ctx_d1(8, false);
    b.len = 0;
    add_open(&b, 2, 1);
    feed(r, b.b, b.len);
    rec_clear(r);
    assert_int_equal(tt_session_goaway(&r->s, 1, "x", out, 8), TETHER_ERR_AGAIN);
    assert_int_equal(tt_session_state(&r->s), TT_SESSION_OPEN);
    assert_int_equal(tt_session_goaway(&r->s, TT_GOAWAY_SHUTDOWN, "bye", out, sizeof(out)),
                     8 + 2 + 3);
    assert_string_equal(r->ev, "close(2) close(1)"); /* table order */
    assert_int_equal(tt_session_state(&r->s), TT_SESSION_CLOSED);
    assert_int_equal(tt_session_nstreams(&r->s), 0);
    assert_int_equal(tt_session_recv(&r->s, b.b, b.len), (tt_ssize)b.len); /* ignored */
    assert_string_equal(r->ev, "close(2) close(1)");
    rec_free(r);

    r = ctx_d1(8, false);
    tt_session_shutdown(&r->s);
    assert_string_equal(r->ev, "close(1)");
    assert_int_equal(tt_session_state(&r->s), TT_SESSION_CLOSED);
    tt_session_shutdown(&r->s);
    assert_string_equal(r->ev, "close(1)");
    rec_free(r);

    /* goaway from inside on_data: the session stops reading */
    r = ctx_d1(8, false);
    r->goaway_on_data = true;
    b.len = 0;
    add_data(&b, 1, "a", 1, false);
    add_data(&b, 1, "b", 1, false);
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "data(1,1) close(1)");
    rec_free(r);
}

/* ---- versions ---- */

/* A relay that speaks versions 1 and 2 answers each HELLO in its version; a key needs
 * version 2; a device takes only a WELCOME of its own version. */
static void test_versions(void **state)
{
    static struct buf b;
    uint8_t out[512];
    struct tt_welcome w, got;
    struct tt_session_config cfg;
    struct tt_session s;
    struct tt_stream table[2];
    struct tt_session_callbacks cb;
    struct rec *r;
    uint8_t v;

    (void)state;
    memset(&w, 0, sizeof(w));
    w.label = S("abc");
    for (v = 1; v <= 2; v++) {
        r = rec_new(TT_ROLE_RELAY, 100, 4, 4, false);
        assert_int_equal(tt_session_version(&r->s), TT_PROTO_VERSION);
        b.len = 0;
        add_hello(&b, v, 100, 4, 1);
        feed(r, b.b, b.len);
        assert_string_equal(r->ev, "hello(sensor-1)");
        assert_int_equal(tt_session_version(&r->s), v);
        w.key = S("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        assert_int_equal(tt_session_accept(&r->s, &w, out, sizeof(out)),
                         v == 1 ? TETHER_ERR_INVAL : 8 + 7 + 4 + 1 + 65);
        w.key = S("");
        if (v == 1)
            assert_true(tt_session_accept(&r->s, &w, out, sizeof(out)) > 0);
        assert_int_equal(out[TT_FRAME_HEADER_LEN], v);
        assert_int_equal(tt_frame_decode_welcome(&got, out + TT_FRAME_HEADER_LEN, (size_t)out[1]),
                         0);
        assert_int_equal(got.key.len, v == 1 ? 0 : 64);
        rec_free(r);
    }
    /* a device of version 1 cannot send a key */
    r = rec_new(TT_ROLE_DEVICE, 100, 4, 4, false);
    {
        struct tt_hello h;
        memset(&h, 0, sizeof(h));
        h.name = S("d");
        h.key = S("k");
        assert_int_equal(tt_session_hello(&r->s, &h, out, sizeof(out)), TETHER_ERR_INVAL);
        next_version = 2;
        rec_free(r);
        r = rec_new(TT_ROLE_DEVICE, 100, 4, 4, false);
        assert_int_equal(tt_session_hello(&r->s, &h, out, sizeof(out)), 8 + 7 + 2 + 1 + 2 + 1);
        assert_int_equal(out[TT_FRAME_HEADER_LEN], 2);
        rec_free(r);
    }
    /* the configured version must be one the session speaks */
    memset(&cb, 0, sizeof(cb));
    memset(&cfg, 0, sizeof(cfg));
    cfg.role = TT_ROLE_DEVICE;
    cfg.window = 1;
    cfg.max_streams = 1;
    cfg.version = TT_PROTO_VERSION + 1;
    assert_int_equal(tt_session_init(&s, &cfg, &cb, NULL, table, 2), TETHER_ERR_INVAL);
    cfg.version = 0;
    assert_int_equal(tt_session_init(&s, &cfg, &cb, NULL, table, 2), 0);
    assert_int_equal(tt_session_version(&s), TT_PROTO_VERSION);
}

/* ---- handshake and state errors ---- */

static void test_handshake(void **state)
{
    struct rec *r;
    static struct buf b;
    uint8_t out[512];
    struct tt_welcome w;

    (void)state;
    memset(&w, 0, sizeof(w));
    w.label = S("abc");

    /* relay: HELLO of another version fails the session, which may still refuse (a relay that
     * speaks version 1 only, given a version-2 HELLO) */
    next_version = 1;
    r = rec_new(TT_ROLE_RELAY, 100, 4, 4, false);
    b.len = 0;
    add_hello(&b, 2, 100, 4, 1);
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "error(VERSION)");
    assert_int_equal(tt_session_state(&r->s), TT_SESSION_CLOSED);
    assert_int_equal(tt_session_accept(&r->s, &w, out, sizeof(out)), TETHER_ERR_STATE);
    assert_int_equal(tt_session_refuse(&r->s, TT_REFUSE_VERSION, "use version 1", out, 10),
                     TETHER_ERR_AGAIN);
    assert_int_equal(tt_session_refuse(&r->s, TT_REFUSE_VERSION, "use version 1", out, sizeof(out)),
                     8 + 2 + 13);
    assert_int_equal(out[2], TT_FRAME_REFUSE);
    assert_int_equal(out[9], TT_REFUSE_VERSION);
    assert_int_equal(tt_session_refuse(&r->s, TT_REFUSE_VERSION, NULL, out, sizeof(out)),
                     TETHER_ERR_STATE);
    assert_int_equal(tt_session_error(&r->s), TETHER_ERR_VERSION);
    rec_free(r);

    /* relay: refuse after a valid HELLO; later input ignored */
    r = rec_new(TT_ROLE_RELAY, 100, 4, 4, false);
    assert_int_equal(tt_session_refuse(&r->s, 1, NULL, out, sizeof(out)), TETHER_ERR_STATE);
    b.len = 0;
    add_hello(&b, 1, 100, 4, 1);
    feed(r, b.b, b.len);
    {
        char reason[300];
        memset(reason, 'r', sizeof(reason) - 1);
        reason[sizeof(reason) - 1] = '\0';
        memcpy(reason + 199, "\xc3\xa9", 2); /* a 2-byte character across the limit */
        assert_int_equal(tt_session_refuse(&r->s, TT_REFUSE_AUTH, reason, out, sizeof(out)),
                         8 + 2 + 199);
    }
    assert_int_equal(tt_session_state(&r->s), TT_SESSION_CLOSED);
    assert_int_equal(tt_session_error(&r->s), 0);
    assert_int_equal(tt_session_recv(&r->s, b.b, b.len), (tt_ssize)b.len);
    rec_free(r);

    /* relay: a second HELLO, OPEN from the device, DATA before HELLO */
    r = rec_new(TT_ROLE_RELAY, 100, 4, 4, false);
    b.len = 0;
    add_hello(&b, 1, 100, 4, 1);
    add_hello(&b, 1, 100, 4, 1);
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "hello(sensor-1) error(PROTO)");
    /* sticky until init */
    assert_int_equal(tt_session_recv(&r->s, out, 1), TETHER_ERR_PROTO);
    assert_int_equal(tt_session_refuse(&r->s, TT_REFUSE_INVALID, "bad", out, sizeof(out)), 13);
    rec_free(r);

    r = rec_new(TT_ROLE_RELAY, 100, 4, 4, false);
    r->accept_on_hello = true;
    b.len = 0;
    add_hello(&b, 1, 100, 4, 1);
    add_open(&b, 2, 0);
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "hello(sensor-1) error(PROTO)");
    rec_free(r);

    r = rec_new(TT_ROLE_RELAY, 100, 4, 4, false);
    b.len = 0;
    add_hello(&b, 1, 100, 4, 1);
    add_data(&b, 1, "x", 1, false); /* before the WELCOME: no stream can exist */
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "hello(sensor-1) error(PROTO)");
    rec_free(r);

    r = rec_new(TT_ROLE_RELAY, 100, 4, 4, false);
    b.len = 0;
    add_coded(&b, TT_FRAME_GOAWAY, 0, 0, "");
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "error(PROTO)");
    rec_free(r);

    r = rec_new(TT_ROLE_RELAY, 100, 4, 4, false);
    b.len = 0;
    add_hello(&b, 1, 100, 4, 1);
    add_coded(&b, TT_FRAME_GOAWAY, 0, 0, ""); /* the device leaves before the answer */
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "hello(sensor-1) goaway(0)");
    assert_int_equal(tt_session_accept(&r->s, &w, out, sizeof(out)), TETHER_ERR_STATE);
    rec_free(r);

    /* device: nothing is valid before its HELLO */
    r = rec_new(TT_ROLE_DEVICE, 100, 4, 4, false);
    b.len = 0;
    add_welcome(&b, 100, 4);
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "error(PROTO)");
    assert_int_equal(tt_session_hello(&r->s, NULL, out, sizeof(out)), TETHER_ERR_STATE);
    rec_free(r);

    /* device: REFUSE closes the session */
    r = ctx_d0(4, false);
    b.len = 0;
    add_coded(&b, TT_FRAME_REFUSE, 0, TT_REFUSE_AUTH, "no");
    add_welcome(&b, 100, 4);
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "refuse(1)");
    assert_int_equal(tt_session_state(&r->s), TT_SESSION_CLOSED);
    assert_int_equal(tt_session_error(&r->s), 0);
    rec_free(r);

    /* device: a HELLO from the relay, a second WELCOME */
    r = ctx_d0(4, false);
    b.len = 0;
    add_hello(&b, 1, 100, 4, 1);
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "error(PROTO)");
    rec_free(r);
    r = ctx_d0(4, false);
    b.len = 0;
    add_welcome(&b, 100, 4);
    add_welcome(&b, 100, 4);
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "welcome(k3j9x2mq) error(PROTO)");
    /* a failed session still says goodbye, and frees the streams */
    assert_int_equal(tt_session_goaway(&r->s, TT_GOAWAY_PROTOCOL, NULL, out, sizeof(out)), 10);
    rec_free(r);

    /* relay API misuse */
    r = rec_new(TT_ROLE_RELAY, 100, 4, 4, false);
    {
        struct tt_hello h;
        memset(&h, 0, sizeof(h));
        h.name = S("x");
        assert_int_equal(tt_session_hello(&r->s, &h, out, sizeof(out)), TETHER_ERR_STATE);
    }
    assert_int_equal(tt_session_accept(&r->s, &w, out, sizeof(out)), TETHER_ERR_STATE);
    assert_int_equal(tt_session_data_header(&r->s, 1, 1, false, out), TETHER_ERR_NO_STREAM);
    assert_int_equal(tt_session_data_header(&r->s, 1, 65536, false, out), TETHER_ERR_INVAL);
    assert_int_equal(tt_session_set_user(&r->s, 1, NULL), TETHER_ERR_NO_STREAM);
    tt_session_consume(&r->s, 1, 10);
    assert_int_equal(tt_session_send(&r->s, out, sizeof(out)), 0);
    assert_int_equal(tt_session_recv(&r->s, NULL, 1), TETHER_ERR_INVAL);
    assert_int_equal(tt_session_recv(&r->s, NULL, 0), 0);
    rec_free(r);
}

static void test_init_inval(void **state)
{
    struct tt_session s;
    struct tt_session_callbacks cb;
    struct tt_session_config cfg = {TT_ROLE_RELAY, 1000, 10, 0};
    struct tt_stream t[8];

    (void)state;
    memset(&cb, 0, sizeof(cb));
    assert_int_equal(tt_session_init(&s, &cfg, &cb, NULL, t, 8), 0);
    assert_int_equal(tt_session_init(&s, &cfg, &cb, NULL, t, 6), TETHER_ERR_INVAL);
    assert_int_equal(tt_session_init(&s, &cfg, &cb, NULL, t, 1), TETHER_ERR_INVAL);
    assert_int_equal(tt_session_init(&s, &cfg, &cb, NULL, NULL, 8), TETHER_ERR_INVAL);
    assert_int_equal(tt_session_init(&s, &cfg, NULL, NULL, t, 8), TETHER_ERR_INVAL);
    cfg.window = 0;
    assert_int_equal(tt_session_init(&s, &cfg, &cb, NULL, t, 8), TETHER_ERR_INVAL);
    cfg.window = 0x80000000u;
    assert_int_equal(tt_session_init(&s, &cfg, &cb, NULL, t, 8), TETHER_ERR_INVAL);
    cfg.window = 10;
    cfg.max_streams = 0;
    assert_int_equal(tt_session_init(&s, &cfg, &cb, NULL, t, 8), TETHER_ERR_INVAL);
    cfg.max_streams = 1;
    cfg.role = (enum tt_role)7;
    assert_int_equal(tt_session_init(&s, &cfg, &cb, NULL, t, 8), TETHER_ERR_INVAL);
}

/* A session with no callbacks at all must still work (and refuse OPENs). */
static void test_null_callbacks(void **state)
{
    struct tt_session s;
    struct tt_session_callbacks cb;
    struct tt_session_config cfg = {TT_ROLE_DEVICE, 16, 4, 1};
    struct tt_stream t[4];
    struct tt_hello h;
    static struct buf b;
    uint8_t out[64];

    (void)state;
    memset(&cb, 0, sizeof(cb));
    memset(&h, 0, sizeof(h));
    h.name = S("d");
    h.nservices = 1;
    h.services[0].kind = TT_SERVICE_TCP;
    h.services[0].name = S("x");
    assert_int_equal(tt_session_init(&s, &cfg, &cb, NULL, t, 4), 0);
    assert_true(tt_session_hello(&s, &h, out, sizeof(out)) > 0);
    b.len = 0;
    add_welcome(&b, 100, 4);
    add_open(&b, 1, 0);
    add_data(&b, 1, "x", 1, true);
    add_coded(&b, TT_FRAME_GOAWAY, 0, 0, "");
    assert_int_equal(tt_session_recv(&s, b.b, b.len), (tt_ssize)b.len);
    assert_int_equal(tt_session_state(&s), TT_SESSION_CLOSED);
}

/* ---- errors from callbacks, garbage ---- */

static void test_callback_error(void **state)
{
    struct rec *r = ctx_d1(8, false);
    static struct buf b;

    (void)state;
    r->data_ret = TETHER_ERR_NOMEM;
    b.len = 0;
    add_data(&b, 1, "abc", 3, false);
    add_data(&b, 1, "def", 3, false);
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "data(1,3) error(NOMEM)");
    assert_int_equal(tt_session_error(&r->s), TETHER_ERR_NOMEM);
    assert_int_equal(tt_session_data_header(&r->s, 1, 1, false, b.b), TETHER_ERR_STATE);
    assert_false(tt_session_want_write(&r->s));
    tt_session_shutdown(&r->s);
    assert_string_equal(r->ev, "data(1,3) error(NOMEM) close(1)");
    rec_free(r);
}

static uint32_t rng_state = 0x12345678u;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* Random bytes, and valid conversations with random bytes flipped, never crash a session. */
static void test_garbage(void **state)
{
    static struct buf b;
    uint8_t junk[600];
    int round;
    size_t i;

    (void)state;
    for (round = 0; round < 400; round++) {
        struct rec *r = round % 2 ? ctx_d1(4, true) : rec_new(TT_ROLE_RELAY, 64, 8, 2, true);
        for (i = 0; i < sizeof(junk); i++)
            junk[i] = (uint8_t)rnd();
        if (round % 4 < 2) {
            /* plausible headers: small lengths, known types */
            for (i = 0; i + 8 < sizeof(junk); i += 8 + junk[i + 1] % 16) {
                junk[i] = 0;
                junk[i + 1] %= 16;
                junk[i + 2] = (uint8_t)(junk[i + 2] % 10);
                junk[i + 4] = junk[i + 5] = junk[i + 6] = 0;
                junk[i + 7] %= 4;
            }
        }
        (void)tt_session_recv(&r->s, junk, rnd() % sizeof(junk));
        drain(r);
        tt_session_shutdown(&r->s);
        rec_free(r);
    }
    /* a valid conversation with one byte flipped at every offset */
    b.len = 0;
    add_welcome(&b, 1000, 50);
    add_open(&b, 1, 0);
    add_data(&b, 1, "hello", 5, true);
    add_window(&b, 1, 100);
    add_coded(&b, TT_FRAME_RESET, 1, 6, "io");
    add_coded(&b, TT_FRAME_GOAWAY, 0, 1, "bye");
    for (i = 0; i < b.len; i++) {
        struct rec *r = ctx_d0(2, true);
        uint8_t saved = b.b[i];
        b.b[i] = (uint8_t)(b.b[i] ^ (1u << (i % 8)));
        (void)tt_session_recv(&r->s, b.b, b.len);
        drain(r);
        tt_session_shutdown(&r->s);
        b.b[i] = saved;
        rec_free(r);
    }
}

static void test_truncated(void **state)
{
    static struct buf b;
    size_t i;

    (void)state;
    b.len = 0;
    add_welcome(&b, 1000, 50);
    add_open(&b, 1, 0);
    add_data(&b, 1, "hello", 5, true);
    for (i = 0; i < b.len; i++) {
        struct rec *r = ctx_d0(4, false);
        assert_int_equal(tt_session_recv(&r->s, b.b, i), (tt_ssize)i);
        assert_int_equal(tt_session_error(&r->s), 0);
        rec_free(r);
    }
}

static void test_unknown_types(void **state)
{
    struct rec *r = ctx_d1(8, false);
    static struct buf b;
    static uint8_t big[8 + 65535];

    (void)state;
    memset(big, 0xab, sizeof(big));
    big[0] = 0xff;
    big[1] = 0xff;
    big[2] = 0x99;
    big[3] = 0xff;
    big[4] = 0x80; /* reserved bit, stream 0 */
    big[5] = big[6] = big[7] = 0;
    b.len = 0;
    add_raw(&b, big, sizeof(big));
    add_data(&b, 1, "after", 5, false);
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "data(1,5)");
    rec_free(r);
}

static void test_pending_reset_overflow(void **state)
{
    struct rec *r = ctx_d1(8, false);
    static struct buf b;
    uint32_t i;

    (void)state;
    b.len = 0;
    for (i = 0; i < TT_PENDING_RESETS; i++)
        add_open(&b, 100 + i, 9);
    feed(r, b.b, b.len);
    assert_int_equal(tt_session_error(&r->s), 0); /* 8 fit, and were drained */
    rec_clear(r);
    b.len = 0;
    for (i = 0; i <= TT_PENDING_RESETS; i++)
        add_open(&b, 200 + i, 9);
    feed(r, b.b, b.len);
    assert_int_equal(tt_session_error(&r->s), TETHER_ERR_PROTO);
    rec_free(r);
}

static void test_send_partial(void **state)
{
    struct rec *r = ctx_d1(8, false);
    static struct buf b;
    uint8_t out[64];

    (void)state;
    b.len = 0;
    add_open(&b, 2, 9);
    add_open(&b, 3, 9);
    assert_int_equal(tt_session_recv(&r->s, b.b, b.len), (tt_ssize)b.len);
    assert_true(tt_session_want_write(&r->s));
    assert_int_equal(tt_session_send(&r->s, out, 9), 0);
    assert_int_equal(tt_session_send(&r->s, out, 19), 10);
    assert_int_equal(out[7], 2);
    assert_true(tt_session_want_write(&r->s));
    assert_int_equal(tt_session_send(&r->s, out, 20), 10);
    assert_int_equal(out[7], 3);
    assert_false(tt_session_want_write(&r->s));
    rec_free(r);
}

/* ---- the stream table ---- */

/* Checks that every id the model holds is found with its user pointer, and nothing else. */
static void check_table(struct rec *r, const uint32_t *ids, size_t n)
{
    size_t i, used = 0;

    for (i = 0; i < n; i++)
        assert_ptr_equal(tt_session_stream_user(&r->s, ids[i]), (void *)(uintptr_t)(ids[i] * 7u));
    for (i = 0; i < r->s.cap; i++)
        used += r->s.streams[i].id != 0;
    assert_int_equal(used, n);
    assert_int_equal(tt_session_nstreams(&r->s), n);
    assert_true(n * 2 <= r->s.cap);
}

static struct rec *relay_ready(uint32_t cap, bool growable, uint16_t max_streams)
{
    struct rec *r = rec_new(TT_ROLE_RELAY, 64, max_streams, cap, growable);
    static struct buf b;
    struct tt_welcome w;
    uint8_t out[64];

    b.len = 0;
    add_hello(&b, 1, 64, 65535, 2);
    feed(r, b.b, b.len);
    memset(&w, 0, sizeof(w));
    w.label = S("t");
    assert_true(tt_session_accept(&r->s, &w, out, sizeof(out)) > 0);
    rec_clear(r);
    return r;
}

static void test_table_growth(void **state)
{
    struct rec *r = relay_ready(2, true, 1000);
    static uint32_t ids[600];
    size_t n = 0, i;
    uint8_t out[64];
    int step;

    (void)state;
    for (i = 0; i < 5; i++) {
        uint32_t id;
        assert_int_equal(tt_session_open(&r->s, 0, NULL, NULL, &id, out, sizeof(out)), 9);
        assert_int_equal(tt_session_set_user(&r->s, id, (void *)(uintptr_t)(id * 7u)), 0);
        ids[n++] = id;
        check_table(r, ids, n);
    }
    assert_int_equal(r->s.cap, 16);
    assert_int_equal(r->nalloc, 3); /* 2 -> 4 -> 8 -> 16 */
    assert_int_equal(r->nrelease, 3);
    /* random opens and resets against a model */
    for (step = 0; step < 20000; step++) {
        if (n < 500 && (n == 0 || rnd() % 3 != 0)) {
            uint32_t id;
            assert_int_equal(tt_session_open(&r->s, 1, NULL, NULL, &id, out, sizeof(out)), 9);
            for (i = 0; i < n; i++)
                assert_true(ids[i] != id);
            assert_int_equal(tt_session_set_user(&r->s, id, (void *)(uintptr_t)(id * 7u)), 0);
            ids[n++] = id;
        } else {
            size_t k = rnd() % n;
            assert_int_equal(tt_session_reset(&r->s, ids[k], 0, out, sizeof(out)), 10);
            ids[k] = ids[--n];
        }
        if (step % 97 == 0)
            check_table(r, ids, n);
    }
    check_table(r, ids, n);
    tt_session_shutdown(&r->s);
    assert_int_equal(tt_session_nstreams(&r->s), 0);
    rec_free(r);
}

static void test_table_no_growth(void **state)
{
    struct rec *r = relay_ready(4, false, 100);
    static struct buf b;
    uint8_t out[64];
    uint32_t id;

    (void)state;
    assert_int_equal(tt_session_open(&r->s, 0, NULL, NULL, &id, out, sizeof(out)), 9);
    assert_int_equal(tt_session_open(&r->s, 0, NULL, NULL, &id, out, sizeof(out)), 9);
    assert_int_equal(tt_session_open(&r->s, 0, NULL, NULL, &id, out, sizeof(out)),
                     TETHER_ERR_STREAM_LIMIT);
    assert_int_equal(tt_session_nstreams(&r->s), 2);
    assert_int_equal(tt_session_reset(&r->s, 1, 0, out, sizeof(out)), 10);
    assert_int_equal(tt_session_open(&r->s, 0, NULL, NULL, &id, out, sizeof(out)), 9);
    assert_int_equal(id, 3);
    rec_free(r);

    /* device side: the third OPEN is reset LIMIT */
    r = ctx_d0(4, false);
    b.len = 0;
    add_welcome(&b, 100, 10);
    add_open(&b, 1, 0);
    add_open(&b, 2, 0);
    add_open(&b, 3, 1);
    feed(r, b.b, b.len);
    assert_string_equal(r->ev, "welcome(k3j9x2mq) open(1,0) open(2,0) send:RESET(3,5)");
    rec_free(r);
}

/* alloc_table failing at each growth in turn: the failing call reports the limit, nothing
 * breaks, and the next growth (when allowed again) works. */
static void test_table_alloc_fails(void **state)
{
    long fail_at;

    (void)state;
    for (fail_at = 0; fail_at < 5; fail_at++) {
        struct rec *r = relay_ready(2, true, 1000);
        static uint32_t ids[64];
        size_t n = 0;
        uint8_t out[64];
        int i, limited = 0;

        r->alloc_left = fail_at;
        for (i = 0; i < 40; i++) {
            uint32_t id;
            tt_ssize rv = tt_session_open(&r->s, 0, NULL, NULL, &id, out, sizeof(out));
            if (rv == TETHER_ERR_STREAM_LIMIT) {
                limited++;
                assert_int_equal(r->s.cap, 2u << fail_at);
                r->alloc_left = -1; /* memory is back */
                continue;
            }
            assert_int_equal(rv, 9);
            assert_int_equal(tt_session_set_user(&r->s, id, (void *)(uintptr_t)(id * 7u)), 0);
            ids[n++] = id;
            check_table(r, ids, n);
        }
        assert_int_equal(limited, 1);
        assert_int_equal(r->nalloc, r->nrelease);
        rec_free(r);
    }

    /* device side: a failed growth resets the OPEN with LIMIT */
    {
        struct rec *r = ctx_d0(2, true);
        static struct buf b;
        r->alloc_left = 0;
        b.len = 0;
        add_welcome(&b, 100, 10);
        add_open(&b, 1, 0);
        add_open(&b, 2, 0);
        feed(r, b.b, b.len);
        assert_string_equal(r->ev, "welcome(k3j9x2mq) open(1,0) send:RESET(2,5)");
        r->alloc_left = -1;
        rec_clear(r);
        b.len = 0;
        add_open(&b, 2, 0);
        add_open(&b, 4, 1);
        feed(r, b.b, b.len);
        assert_string_equal(r->ev, "open(2,0) open(4,1)");
        assert_int_equal(r->s.cap, 8);
        rec_free(r);
    }
}

static void test_relay_ids(void **state)
{
    struct rec *r = relay_ready(4, true, 100);
    uint8_t out[64];
    uint32_t id, i;

    (void)state;
    /* ids wrap at 2^31 and skip 0 and ids in use */
    assert_int_equal(tt_session_open(&r->s, 0, NULL, NULL, &id, out, sizeof(out)), 9);
    assert_int_equal(id, 1);
    r->s.next_id = 0x7ffffffeu;
    assert_int_equal(tt_session_open(&r->s, 0, NULL, NULL, &id, out, sizeof(out)), 9);
    assert_int_equal(id, 0x7ffffffeu);
    assert_int_equal(tt_session_open(&r->s, 0, NULL, NULL, &id, out, sizeof(out)), 9);
    assert_int_equal(id, 0x7fffffffu);
    assert_int_equal(tt_session_open(&r->s, 0, NULL, NULL, &id, out, sizeof(out)), 9);
    assert_int_equal(id, 2); /* 0 skipped, 1 in use */
    assert_int_equal(out[4], 0);
    /* our max_streams (100) and the peer's (65535): ours limits */
    for (i = 4; i < 100; i++)
        assert_int_equal(tt_session_open(&r->s, 0, NULL, NULL, NULL, out, sizeof(out)), 9);
    assert_int_equal(tt_session_open(&r->s, 0, NULL, NULL, &id, out, sizeof(out)),
                     TETHER_ERR_STREAM_LIMIT);
    /* a long origin is cut to TT_MAX_ADDR */
    assert_int_equal(tt_session_reset(&r->s, 1, 0, out, sizeof(out)), 10);
    {
        char origin[300];
        uint8_t o[400];
        memset(origin, 'o', sizeof(origin) - 1);
        origin[sizeof(origin) - 1] = '\0';
        assert_int_equal(tt_session_open(&r->s, 0, origin, NULL, &id, o, sizeof(o)),
                         8 + 1 + TT_MAX_ADDR);
    }
    rec_free(r);
}

static int nlogs;

static void cb_log(void *ud, const char *msg)
{
    (void)ud;
    assert_true(strlen(msg) > 0);
    nlogs++;
}

/* A queued WINDOW disappears with its stream or with the peer's FIN; the log hook traces. */
static void test_window_due_dropped(void **state)
{
    struct rec *r = ctx_d1(8, false);
    static struct buf b;
    uint8_t out[64];

    (void)state;
    r->cb.log = cb_log;
    b.len = 0;
    add_data(&b, 1, "0123456789", 10, false);
    feed(r, b.b, b.len);
    tt_session_consume(&r->s, 1, 10);
    assert_true(tt_session_want_write(&r->s));
    assert_int_equal(tt_session_reset(&r->s, 1, 0, out, sizeof(out)), 10);
    assert_false(tt_session_want_write(&r->s));

    b.len = 0;
    add_open(&b, 2, 0);
    add_data(&b, 2, "0123456789", 10, false);
    feed(r, b.b, b.len);
    tt_session_consume(&r->s, 2, 10);
    assert_true(tt_session_want_write(&r->s));
    b.len = 0;
    add_data(&b, 2, "", 0, true);
    add_open(&b, 3, 5); /* traced: unknown service */
    nlogs = 0;
    assert_int_equal(tt_session_recv(&r->s, b.b, b.len), (tt_ssize)b.len);
    assert_int_equal(tt_session_send(&r->s, out, sizeof(out)), 10); /* only the RESET */
    assert_false(tt_session_want_write(&r->s));
    assert_true(nlogs > 0);
    rec_free(r);
}

static int setup(void **state)
{
    (void)state;
    vectors = tv_load();
    return vectors != NULL && vectors->n > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    free(vectors);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_session),
        cmocka_unit_test(test_device_conversation),
        cmocka_unit_test(test_relay_conversation),
        cmocka_unit_test(test_relay_device_pair),
        cmocka_unit_test(test_consume_window),
        cmocka_unit_test(test_grow_window),
        cmocka_unit_test(test_consume_on_data_flow),
        cmocka_unit_test(test_peer_window_updates),
        cmocka_unit_test(test_end_rules),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_handshake),
        cmocka_unit_test(test_init_inval),
        cmocka_unit_test(test_null_callbacks),
        cmocka_unit_test(test_callback_error),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_unknown_types),
        cmocka_unit_test(test_pending_reset_overflow),
        cmocka_unit_test(test_send_partial),
        cmocka_unit_test(test_table_growth),
        cmocka_unit_test(test_table_no_growth),
        cmocka_unit_test(test_table_alloc_fails),
        cmocka_unit_test(test_relay_ids),
        cmocka_unit_test(test_window_due_dropped),
        cmocka_unit_test(test_visitor_conversation),
        cmocka_unit_test(test_visitor_window),
        cmocka_unit_test(test_visitor_pair),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
