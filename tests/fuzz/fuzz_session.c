/* fuzz_session.c - libFuzzer target for src/core/session.c. The first input byte picks the
 * role and how the rest is cut; the rest is fed to a session as bytes from its peer, with
 * callbacks that answer like a real relay or device (accept, open streams, send and consume
 * data, refuse, reset). Any crash, sanitizer report or broken invariant is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
    struct tt_session s;
    struct tt_stream *first;
    uint8_t knobs;
    uint8_t out[4096];
};

#define KNOB_DEVICE 0x01 /* device role (else relay) */
#define KNOB_REGISTER                                                                              \
    0x02                 /* device: start registered with stream 1 open (vector context D1);       \
                            without KNOB_DEVICE: the visitor role (context V) */
#define KNOB_REFUSE 0x04 /* on_open / on_hello refuse */
#define KNOB_ANSWER 0x08 /* send DATA (and FIN) from callbacks */
#define KNOB_SPLIT 0x70  /* chunk size: 0 = whole, else (k * k) bytes */
#define KNOB_NOGROW 0x80 /* no alloc_table */

static void sink(struct fz *f, tt_ssize n)
{
    if (n < 0 && n != TETHER_ERR_AGAIN && n != TETHER_ERR_FLOW && n != TETHER_ERR_STATE &&
        n != TETHER_ERR_NO_STREAM && n != TETHER_ERR_STREAM_LIMIT && n != TETHER_ERR_NO_SERVICE)
        abort(); /* an error the API does not list for these calls */
    (void)f;
}

static int on_hello(struct tt_session *s, const struct tt_hello *m, void *ud)
{
    struct fz *f = ud;
    struct tt_welcome w;
    uint32_t id;
    int i;

    if (m->version < TT_PROTO_VERSION_MIN || m->version > TT_PROTO_VERSION || m->name.len == 0 ||
        m->version != tt_session_version(s) || (m->version == 1 && m->key.len != 0))
        abort();
    if (f->knobs & KNOB_REFUSE) {
        sink(f, tt_session_refuse(s, TT_REFUSE_AUTH, "no", f->out, sizeof(f->out)));
        return 0;
    }
    memset(&w, 0, sizeof(w));
    w.label.p = (const uint8_t *)"fuzzlabel";
    w.label.len = 9;
    w.nservices = m->nservices;
    for (i = 0; i < m->nservices; i++) {
        w.services[i].kind = m->services[i].kind;
        w.services[i].name = m->services[i].name;
        w.services[i].port = (uint16_t)(20000 + i);
    }
    sink(f, tt_session_accept(s, &w, f->out, sizeof(f->out)));
    for (i = 0; i < 3; i++)
        sink(f, tt_session_open(s, (uint8_t)i, "192.0.2.1:1", NULL, &id, f->out, sizeof(f->out)));
    return 0;
}

static int on_welcome(struct tt_session *s, const struct tt_welcome *m, void *ud)
{
    (void)s, (void)m, (void)ud;
    return 0;
}

static int on_refuse(struct tt_session *s, const struct tt_coded *m, void *ud)
{
    (void)m, (void)ud;
    if (tt_session_state(s) != TT_SESSION_CLOSED)
        abort();
    return 0;
}

static int on_open(struct tt_session *s, struct tt_stream *st, const struct tt_open *m, void *ud)
{
    struct fz *f = ud;
    (void)s;
    if (st->service != m->service || m->origin.len > TT_MAX_ADDR)
        abort();
    return (f->knobs & KNOB_REFUSE) && (st->id & 1) ? TT_RESET_REFUSED : 0;
}

static void answer(struct fz *f, struct tt_session *s, uint32_t id, bool fin)
{
    uint32_t w = tt_session_send_window(s, id);
    size_t len = w < 100 ? w : 100;
    sink(f, tt_session_data_header(s, id, len, fin, f->out));
}

static int on_data(struct tt_session *s, struct tt_stream *st, const uint8_t *d, size_t len,
                   void *ud)
{
    struct fz *f = ud;
    uint32_t id = st->id;
    volatile uint8_t x = 0;
    size_t i;

    if (len == 0 || st->recv_window > 0x7fffffffu)
        abort();
    for (i = 0; i < len; i++) /* touch every byte: the view must be readable */
        x = (uint8_t)(x ^ d[i]);
    tt_session_consume(s, id, len);
    if ((f->knobs & KNOB_ANSWER) && len > 3)
        answer(f, s, id, d[0] == 'F');
    if (len > 2 && d[0] == 'R' && d[1] == '!')
        sink(f, tt_session_reset(s, id, TT_RESET_CANCEL, f->out, sizeof(f->out)));
    return len > 2 && d[0] == 'E' && d[1] == '!' ? TETHER_ERR_IO : 0;
}

static int on_fin(struct tt_session *s, struct tt_stream *st, void *ud)
{
    struct fz *f = ud;
    if (!(st->flags & TT_STREAM_REMOTE_FIN))
        abort();
    if (f->knobs & KNOB_ANSWER)
        answer(f, s, st->id, true);
    return 0;
}

static int on_reset(struct tt_session *s, struct tt_stream *st, const struct tt_coded *m, void *ud)
{
    (void)s, (void)st, (void)ud;
    if (m->reason.len > TT_MAX_REASON)
        abort();
    return 0;
}

static int on_window(struct tt_session *s, struct tt_stream *st, void *ud)
{
    struct fz *f = ud;
    if (st->send_window > 0x7fffffffu)
        abort();
    if (f->knobs & KNOB_ANSWER)
        answer(f, s, st->id, false);
    return 0;
}

static int on_goaway(struct tt_session *s, const struct tt_coded *m, void *ud)
{
    (void)m, (void)ud;
    if (tt_session_state(s) != TT_SESSION_CLOSED)
        abort();
    return 0;
}

static void on_stream_close(struct tt_session *s, struct tt_stream *st, void *ud)
{
    (void)s, (void)ud;
    if (st->id == 0)
        abort();
}

static struct tt_stream *alloc_table(struct tt_session *s, uint32_t newcap, void *ud)
{
    (void)s, (void)ud;
    if (newcap > 4096)
        return NULL;
    return calloc(newcap, sizeof(struct tt_stream));
}

static void release_table(struct tt_session *s, struct tt_stream *old, void *ud)
{
    struct fz *f = ud;
    (void)s;
    if (old != f->first)
        free(old);
}

static void drain(struct fz *f)
{
    tt_ssize n;
    int guard = 0;

    while (tt_session_want_write(&f->s)) {
        n = tt_session_send(&f->s, f->out, sizeof(f->out));
        if (n <= 0 || ++guard > 1000)
            abort(); /* want_write promised output and 4096 bytes always hold a frame */
    }
}

static void feed(struct fz *f, const uint8_t *p, size_t n)
{
    tt_ssize rv = tt_session_recv(&f->s, p, n);

    if (rv >= 0 && (size_t)rv != n)
        abort();
    if (rv < 0 && (tt_session_error(&f->s) != rv || !tether_err_is_fatal((int)rv)))
        abort();
    drain(f);
}

/* The device's HELLO and, with KNOB_REGISTER, the relay's WELCOME and OPEN of stream 1. */
static void device_start(struct fz *f)
{
    struct tt_hello h;

    memset(&h, 0, sizeof(h));
    h.name.p = (const uint8_t *)"sensor-1";
    h.name.len = 8;
    h.token.p = (const uint8_t *)"s3cret";
    h.token.len = 6;
    h.nservices = 2;
    h.services[0].kind = TT_SERVICE_HTTP;
    h.services[0].name.p = (const uint8_t *)"http";
    h.services[0].name.len = 4;
    h.services[1].kind = TT_SERVICE_TCP;
    h.services[1].name.p = (const uint8_t *)"ssh";
    h.services[1].name.len = 3;
    if (tt_session_hello(&f->s, &h, f->out, sizeof(f->out)) <= 0)
        abort();
    if (f->knobs & KNOB_REGISTER) {
        uint8_t buf[128];
        struct tt_welcome w;
        struct tt_open o;
        tt_ssize n, k;
        memset(&w, 0, sizeof(w));
        w.version = tt_session_version(&f->s);
        w.max_streams = 100;
        w.window = 262144;
        w.label.p = (const uint8_t *)"k3j9x2mq";
        w.label.len = 8;
        n = tt_frame_encode_welcome(buf, sizeof(buf), &w);
        o.service = 0;
        o.origin.p = NULL;
        o.origin.len = 0;
        k = tt_frame_encode_open(buf + n, sizeof(buf) - (size_t)n, 1, &o);
        if (n <= 0 || k <= 0)
            abort();
        feed(f, buf, (size_t)(n + k));
        if (tt_session_state(&f->s) != TT_SESSION_OPEN ||
            tt_session_nstreams(&f->s) != ((f->knobs & KNOB_REFUSE) ? 0u : 1u))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct tt_session_callbacks cbs = {
        on_hello,  on_welcome, on_refuse,       on_open,     on_data,       on_fin, on_reset,
        on_window, on_goaway,  on_stream_close, alloc_table, release_table, NULL,
    };
    struct tt_session_callbacks nogrow = cbs;
    struct tt_session_config cfg;
    struct fz *f;
    size_t chunk, pos;
    uint8_t sh;

    if (size < 1)
        return 0;
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        return 0;
    f->knobs = data[0];
    data++;
    size--;
    nogrow.alloc_table = NULL;
    nogrow.release_table = NULL;
    f->first = calloc(4, sizeof(struct tt_stream));
    memset(&cfg, 0, sizeof(cfg));
    cfg.role = (f->knobs & KNOB_DEVICE)     ? TT_ROLE_DEVICE
               : (f->knobs & KNOB_REGISTER) ? TT_ROLE_VISITOR
                                            : TT_ROLE_RELAY;
    cfg.window = 16;
    cfg.max_streams = 4;
    /* A device speaks version 2 when the relay's bytes start with a version-2 WELCOME (the
     * seeds of welcome-v2.txt), else version 1 (contexts D0 and D1); a relay speaks both. */
    if (cfg.role == TT_ROLE_DEVICE)
        cfg.version = size > TT_FRAME_HEADER_LEN && data[2] == TT_FRAME_WELCOME &&
                              data[TT_FRAME_HEADER_LEN] == 2
                          ? 2
                          : 1;
    if (f->first == NULL || tt_session_init(&f->s, &cfg, (f->knobs & KNOB_NOGROW) ? &nogrow : &cbs,
                                            f, f->first, 4) != 0)
        abort();
    if (cfg.role == TT_ROLE_DEVICE)
        device_start(f);
    sh = (uint8_t)((f->knobs & KNOB_SPLIT) >> 4);
    chunk = sh == 0 ? size : (size_t)sh * sh;
    for (pos = 0; pos < size; pos += chunk)
        feed(f, data + pos, size - pos < chunk ? size - pos : chunk);
    if (tt_session_nstreams(&f->s) * 2 > f->s.cap ||
        (cfg.role == TT_ROLE_VISITOR && tt_session_nstreams(&f->s) > 1))
        abort();
    if (tt_session_goaway(&f->s, TT_GOAWAY_NORMAL, "done", f->out, sizeof(f->out)) <= 0)
        abort();
    if (tt_session_nstreams(&f->s) != 0 || tt_session_want_write(&f->s))
        abort();
    if (f->s.streams != f->first)
        free(f->s.streams);
    free(f->first);
    free(f);
    return 0;
}
