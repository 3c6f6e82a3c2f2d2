/* frame.c - encodes and decodes Tether frames (docs/PROTOCOL.md). Pure functions over caller
 * buffers: no allocation, no I/O, no globals. Wire integers go through the big-endian helpers
 * below only. Decoders are strict (no trailing bytes, every length checked) and never read past
 * the payload they are given. */
#include <string.h>

#include "frame.h"

#define STREAM_MASK 0x7fffffffu
#define MAX_INCREMENT 0x7fffffffu

static void enc16be(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void enc32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint16_t dec16be(const uint8_t *p)
{
    return (uint16_t)(((unsigned)p[0] << 8) | (unsigned)p[1]);
}

static uint32_t dec32be(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

void tt_frame_header_encode(uint8_t out[TT_FRAME_HEADER_LEN], const struct tt_frame_header *h)
{
    enc16be(out, h->length);
    out[2] = h->type;
    out[3] = h->flags;
    enc32be(out + 4, h->stream & STREAM_MASK);
}

void tt_frame_header_decode(struct tt_frame_header *h, const uint8_t in[TT_FRAME_HEADER_LEN])
{
    h->length = dec16be(in);
    h->type = in[2];
    h->flags = in[3];
    h->stream = dec32be(in + 4) & STREAM_MASK;
}

/* ---- encoding ---- */

/* A bounded writer: the frame is first sized, then written, so "too small" never leaves half a
 * frame behind that a caller might mistake for output. */
struct writer {
    uint8_t *p;
    size_t len;
};

static void put8(struct writer *w, uint8_t v)
{
    w->p[w->len++] = v;
}

static void put16(struct writer *w, uint16_t v)
{
    enc16be(w->p + w->len, v);
    w->len += 2;
}

static void put32(struct writer *w, uint32_t v)
{
    enc32be(w->p + w->len, v);
    w->len += 4;
}

static void putbytes(struct writer *w, const struct tt_str *s)
{
    if (s->len > 0)
        memcpy(w->p + w->len, s->p, s->len);
    w->len += s->len;
}

static void putstr8(struct writer *w, const struct tt_str *s)
{
    put8(w, (uint8_t)s->len);
    putbytes(w, s);
}

/* A string is acceptable when its length is within [min, max] and it has bytes to read. */
static bool str_ok(const struct tt_str *s, size_t min, size_t max)
{
    return s->len >= min && s->len <= max && (s->len == 0 || s->p != NULL);
}

static bool kind_ok(uint8_t kind)
{
    return kind == TT_SERVICE_HTTP || kind == TT_SERVICE_TCP;
}

/* The key field of a HELLO or WELCOME of this version: version 2 has one (0..TT_MAX_KEY bytes),
 * version 1 none (its key must be empty); other versions are not encoded. */
static bool version_key_ok(uint8_t version, const struct tt_str *key)
{
    if (version == 2)
        return str_ok(key, 0, TT_MAX_KEY);
    return version == 1 && key->len == 0;
}

/* Starts a frame of payload length plen: checks room, writes the header. */
static tt_ssize begin(struct writer *w, uint8_t *out, size_t outlen, uint8_t type, uint8_t flags,
                      uint32_t stream, size_t plen)
{
    struct tt_frame_header h;

    if (plen > TT_FRAME_MAX_PAYLOAD)
        return TETHER_ERR_INVAL;
    if (out == NULL || outlen < TT_FRAME_HEADER_LEN + plen)
        return TETHER_ERR_AGAIN;
    h.length = (uint16_t)plen;
    h.type = type;
    h.flags = flags;
    h.stream = stream;
    tt_frame_header_encode(out, &h);
    w->p = out;
    w->len = TT_FRAME_HEADER_LEN;
    return 0;
}

tt_ssize tt_frame_encode_hello(uint8_t *out, size_t outlen, const struct tt_hello *m)
{
    struct writer w;
    size_t plen;
    tt_ssize rv;
    unsigned i;

    if (m->window > MAX_INCREMENT || !str_ok(&m->name, 1, TT_MAX_NAME) ||
        !str_ok(&m->token, 0, TT_MAX_TOKEN) || m->nservices > TT_MAX_SERVICES ||
        !version_key_ok(m->version, &m->key))
        return TETHER_ERR_INVAL;
    plen = 1 + 2 + 4 + 1 + m->name.len + 1 + m->token.len + 1;
    if (m->version == 2)
        plen += 1 + m->key.len;
    for (i = 0; i < m->nservices; i++) {
        if (!kind_ok(m->services[i].kind) || !str_ok(&m->services[i].name, 1, TT_MAX_NAME))
            return TETHER_ERR_INVAL;
        plen += 1 + 1 + m->services[i].name.len;
    }
    rv = begin(&w, out, outlen, TT_FRAME_HELLO, 0, 0, plen);
    if (rv < 0)
        return rv;
    put8(&w, m->version);
    put16(&w, m->max_streams);
    put32(&w, m->window);
    putstr8(&w, &m->name);
    putstr8(&w, &m->token);
    if (m->version == 2)
        putstr8(&w, &m->key);
    put8(&w, m->nservices);
    for (i = 0; i < m->nservices; i++) {
        put8(&w, m->services[i].kind);
        putstr8(&w, &m->services[i].name);
    }
    return (tt_ssize)w.len;
}

tt_ssize tt_frame_encode_welcome(uint8_t *out, size_t outlen, const struct tt_welcome *m)
{
    struct writer w;
    size_t plen;
    tt_ssize rv;
    unsigned i;

    if (m->window > MAX_INCREMENT || !str_ok(&m->label, 1, TT_MAX_LABEL) ||
        m->nservices > TT_MAX_SERVICES || !version_key_ok(m->version, &m->key))
        return TETHER_ERR_INVAL;
    plen = 1 + 2 + 4 + 1 + m->label.len + 1;
    if (m->version == 2)
        plen += 1 + m->key.len;
    for (i = 0; i < m->nservices; i++) {
        if (!kind_ok(m->services[i].kind) || !str_ok(&m->services[i].name, 1, TT_MAX_NAME) ||
            !str_ok(&m->services[i].address, 0, TT_MAX_ADDR))
            return TETHER_ERR_INVAL;
        plen += 1 + 1 + m->services[i].name.len + 2 + 1 + m->services[i].address.len;
    }
    rv = begin(&w, out, outlen, TT_FRAME_WELCOME, 0, 0, plen);
    if (rv < 0)
        return rv;
    put8(&w, m->version);
    put16(&w, m->max_streams);
    put32(&w, m->window);
    putstr8(&w, &m->label);
    put8(&w, m->nservices);
    for (i = 0; i < m->nservices; i++) {
        put8(&w, m->services[i].kind);
        putstr8(&w, &m->services[i].name);
        put16(&w, m->services[i].port);
        putstr8(&w, &m->services[i].address);
    }
    if (m->version == 2)
        putstr8(&w, &m->key);
    return (tt_ssize)w.len;
}

/* REFUSE, RESET and GOAWAY: code u16 | reason (rest of the payload). */
static tt_ssize encode_coded(uint8_t *out, size_t outlen, uint8_t type, uint32_t stream,
                             const struct tt_coded *m)
{
    struct writer w;
    tt_ssize rv;

    if (!str_ok(&m->reason, 0, TT_MAX_REASON))
        return TETHER_ERR_INVAL;
    rv = begin(&w, out, outlen, type, 0, stream, 2 + m->reason.len);
    if (rv < 0)
        return rv;
    put16(&w, m->code);
    putbytes(&w, &m->reason);
    return (tt_ssize)w.len;
}

static bool stream_ok(uint32_t stream)
{
    return stream != 0 && stream <= STREAM_MASK;
}

tt_ssize tt_frame_encode_refuse(uint8_t *out, size_t outlen, const struct tt_coded *m)
{
    return encode_coded(out, outlen, TT_FRAME_REFUSE, 0, m);
}

tt_ssize tt_frame_encode_goaway(uint8_t *out, size_t outlen, const struct tt_coded *m)
{
    return encode_coded(out, outlen, TT_FRAME_GOAWAY, 0, m);
}

tt_ssize tt_frame_encode_reset(uint8_t *out, size_t outlen, uint32_t stream,
                               const struct tt_coded *m)
{
    if (!stream_ok(stream))
        return TETHER_ERR_INVAL;
    return encode_coded(out, outlen, TT_FRAME_RESET, stream, m);
}

tt_ssize tt_frame_encode_open(uint8_t *out, size_t outlen, uint32_t stream, const struct tt_open *m)
{
    struct writer w;
    tt_ssize rv;

    if (!stream_ok(stream) || !str_ok(&m->origin, 0, TT_MAX_ADDR))
        return TETHER_ERR_INVAL;
    rv = begin(&w, out, outlen, TT_FRAME_OPEN, 0, stream, 1 + m->origin.len);
    if (rv < 0)
        return rv;
    put8(&w, m->service);
    putbytes(&w, &m->origin);
    return (tt_ssize)w.len;
}

tt_ssize tt_frame_encode_window(uint8_t *out, size_t outlen, uint32_t stream, uint32_t increment)
{
    struct writer w;
    tt_ssize rv;

    if (!stream_ok(stream) || increment == 0 || increment > MAX_INCREMENT)
        return TETHER_ERR_INVAL;
    rv = begin(&w, out, outlen, TT_FRAME_WINDOW, 0, stream, 4);
    if (rv < 0)
        return rv;
    put32(&w, increment);
    return (tt_ssize)w.len;
}

tt_ssize tt_frame_encode_data_header(uint8_t out[TT_FRAME_HEADER_LEN], uint32_t stream, size_t len,
                                     bool fin)
{
    struct tt_frame_header h;

    if (out == NULL || !stream_ok(stream) || len > TT_FRAME_MAX_PAYLOAD)
        return TETHER_ERR_INVAL;
    h.length = (uint16_t)len;
    h.type = TT_FRAME_DATA;
    h.flags = fin ? TT_FLAG_FIN : 0;
    h.stream = stream;
    tt_frame_header_encode(out, &h);
    return TT_FRAME_HEADER_LEN;
}

/* ---- decoding ---- */

/* A bounded reader: every get checks the bytes left first, so a short payload is an error,
 * never an over-read. */
struct reader {
    const uint8_t *p;
    size_t len;
    size_t off;
};

static bool get8(struct reader *r, uint8_t *v)
{
    if (r->len - r->off < 1)
        return false;
    *v = r->p[r->off++];
    return true;
}

static bool get16(struct reader *r, uint16_t *v)
{
    if (r->len - r->off < 2)
        return false;
    *v = dec16be(r->p + r->off);
    r->off += 2;
    return true;
}

static bool get32(struct reader *r, uint32_t *v)
{
    if (r->len - r->off < 4)
        return false;
    *v = dec32be(r->p + r->off);
    r->off += 4;
    return true;
}

/* str8 with its length in [min, max]. */
static bool getstr8(struct reader *r, struct tt_str *s, size_t min, size_t max)
{
    uint8_t n;

    if (!get8(r, &n) || n < min || n > max || r->len - r->off < n)
        return false;
    s->p = r->p + r->off;
    s->len = n;
    r->off += n;
    return true;
}

/* The rest of the payload as a string of at most max bytes. */
static bool getrest(struct reader *r, struct tt_str *s, size_t max)
{
    size_t n = r->len - r->off;

    if (n > max)
        return false;
    s->p = r->p + r->off;
    s->len = n;
    r->off = r->len;
    return true;
}

static void reader_init(struct reader *r, const uint8_t *payload, size_t len)
{
    r->p = payload;
    r->len = payload != NULL ? len : 0;
    r->off = 0;
}

int tt_frame_decode_hello(struct tt_hello *m, const uint8_t *payload, size_t len)
{
    struct reader r;
    unsigned i;

    memset(m, 0, sizeof(*m));
    reader_init(&r, payload, len);
    if (!get8(&r, &m->version) || (m->version != 1 && m->version != 2) ||
        !get16(&r, &m->max_streams) || !get32(&r, &m->window) || m->window > MAX_INCREMENT ||
        !getstr8(&r, &m->name, 1, TT_MAX_NAME) || !getstr8(&r, &m->token, 0, TT_MAX_TOKEN) ||
        (m->version == 2 && !getstr8(&r, &m->key, 0, TT_MAX_KEY)) || !get8(&r, &m->nservices) ||
        m->nservices > TT_MAX_SERVICES)
        return TETHER_ERR_PROTO;
    for (i = 0; i < m->nservices; i++) {
        if (!get8(&r, &m->services[i].kind) || !kind_ok(m->services[i].kind) ||
            !getstr8(&r, &m->services[i].name, 1, TT_MAX_NAME))
            return TETHER_ERR_PROTO;
    }
    return r.off == r.len ? 0 : TETHER_ERR_PROTO;
}

int tt_frame_decode_welcome(struct tt_welcome *m, const uint8_t *payload, size_t len)
{
    struct reader r;
    unsigned i;

    memset(m, 0, sizeof(*m));
    reader_init(&r, payload, len);
    if (!get8(&r, &m->version) || (m->version != 1 && m->version != 2) ||
        !get16(&r, &m->max_streams) || !get32(&r, &m->window) || m->window > MAX_INCREMENT ||
        !getstr8(&r, &m->label, 1, TT_MAX_LABEL) || !get8(&r, &m->nservices) ||
        m->nservices > TT_MAX_SERVICES)
        return TETHER_ERR_PROTO;
    for (i = 0; i < m->nservices; i++) {
        if (!get8(&r, &m->services[i].kind) || !kind_ok(m->services[i].kind) ||
            !getstr8(&r, &m->services[i].name, 1, TT_MAX_NAME) ||
            !get16(&r, &m->services[i].port) ||
            !getstr8(&r, &m->services[i].address, 0, TT_MAX_ADDR))
            return TETHER_ERR_PROTO;
    }
    if (m->version == 2 && !getstr8(&r, &m->key, 0, TT_MAX_KEY))
        return TETHER_ERR_PROTO;
    return r.off == r.len ? 0 : TETHER_ERR_PROTO;
}

int tt_frame_decode_coded(struct tt_coded *m, const uint8_t *payload, size_t len)
{
    struct reader r;

    memset(m, 0, sizeof(*m));
    reader_init(&r, payload, len);
    if (!get16(&r, &m->code) || !getrest(&r, &m->reason, TT_MAX_REASON))
        return TETHER_ERR_PROTO;
    return 0;
}

int tt_frame_decode_open(struct tt_open *m, const uint8_t *payload, size_t len)
{
    struct reader r;

    memset(m, 0, sizeof(*m));
    reader_init(&r, payload, len);
    if (!get8(&r, &m->service) || !getrest(&r, &m->origin, TT_MAX_ADDR))
        return TETHER_ERR_PROTO;
    return 0;
}

int tt_frame_decode_window(uint32_t *increment, const uint8_t *payload, size_t len)
{
    struct reader r;
    uint32_t v = 0;

    *increment = 0;
    reader_init(&r, payload, len);
    if (!get32(&r, &v) || v == 0 || v > MAX_INCREMENT || r.off != r.len)
        return TETHER_ERR_PROTO;
    *increment = v;
    return 0;
}
