/* test_frame.c - unit tests for src/core/frame.c and err.c: every vector in tests/vectors is
 * decoded (fields must match) and re-encoded from its fields (bytes must match); decoders run
 * against a guard page so an over-read crashes; encoders are checked for INVAL and AGAIN;
 * docs/PROTOCOL.md holds every vector file verbatim, and every frame of its examples is what the
 * encoders write. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/mman.h>
#include <unistd.h>

#include "core/frame.h"
#include "tt_vectors.h"
#include "support_guard.h"

static struct tv_set *vectors;

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

/* ---- field helpers ---- */

static struct tt_str S(const char *s) {
    struct tt_str t;
    t.p = (const uint8_t *)s;
    t.len = strlen(s);
    return t;
}

static void
assert_str(struct tt_str got, const char *want, const char *vname)
{
    if (got.len != strlen(want) || (got.len > 0 && memcmp(got.p, want, got.len) != 0))
        fail_msg("%s: string '%.*s' != '%s'", vname, (int)got.len, (const char *)got.p, want);
}

/* Splits a copy of a service= value "KIND NAME [PORT [ADDRESS]]" into parts (in buf). */
struct svc {
    uint8_t kind;
    char name[TV_MAX_LINE];
    uint16_t port;
    char address[TV_MAX_LINE];
};

static void parse_svc(const char *val, struct svc *s)
{
    char buf[TV_MAX_LINE], *p, *q;

    memset(s, 0, sizeof(*s));
    snprintf(buf, sizeof(buf), "%s", val);
    s->kind = (uint8_t)strtoul(buf, &p, 0);
    assert_true(*p == ' ');
    p++;
    q = strchr(p, ' ');
    if (q == NULL) {
        snprintf(s->name, sizeof(s->name), "%s", p);
        return;
    }
    *q++ = '\0';
    snprintf(s->name, sizeof(s->name), "%s", p);
    s->port = (uint16_t)strtoul(q, &p, 0);
    if (*p == ' ')
        p++;
    snprintf(s->address, sizeof(s->address), "%s", p);
}

static int err_by_name(const char *name)
{
    if (strcmp(name, "ok") == 0)
        return 0;
#define TT_ERR_LOOKUP_(n, value, text)                                                             \
    if (strcmp(name, #n) == 0)                                                                     \
        return value;
    TETHER_ERR_MAP(TT_ERR_LOOKUP_)
#undef TT_ERR_LOOKUP_
    fail_msg("unknown error name %s", name);
    return 1;
}

static void assert_encoded(const struct tv_vector *v, const uint8_t *buf, tt_ssize n)
{
    if (n != (tt_ssize)v->len || memcmp(buf, v->bytes, v->len) != 0)
        fail_msg("%s: encoding differs (got %td bytes, want %zu)", v->name, n, v->len);
}

/* Encodes the frame described by v's fields with every smaller buffer (AGAIN) and the right
 * one (exact bytes). */
typedef tt_ssize (*encode_fn)(uint8_t *out, size_t outlen, const void *arg);

static void check_encode(const struct tv_vector *v, encode_fn fn, const void *arg)
{
    uint8_t buf[TV_MAX_BYTES + 16];
    size_t i;
    tt_ssize n;

    for (i = 0; i < v->len; i += (v->len > 300 ? 37 : 1))
        assert_int_equal(fn(buf, i, arg), TETHER_ERR_AGAIN);
    memset(buf, 0xee, sizeof(buf));
    n = fn(buf, sizeof(buf), arg);
    assert_encoded(v, buf, n);
    assert_int_equal(buf[v->len], 0xee); /* nothing past the frame */
}

struct enc_arg {
    uint32_t stream;
    const void *m;
    uint32_t increment;
};

static tt_ssize enc_hello(uint8_t *o, size_t l, const void *a)
{
    return tt_frame_encode_hello(o, l, ((const struct enc_arg *)a)->m);
}
static tt_ssize enc_welcome(uint8_t *o, size_t l, const void *a)
{
    return tt_frame_encode_welcome(o, l, ((const struct enc_arg *)a)->m);
}
static tt_ssize enc_refuse(uint8_t *o, size_t l, const void *a)
{
    return tt_frame_encode_refuse(o, l, ((const struct enc_arg *)a)->m);
}
static tt_ssize enc_goaway(uint8_t *o, size_t l, const void *a)
{
    return tt_frame_encode_goaway(o, l, ((const struct enc_arg *)a)->m);
}
static tt_ssize enc_reset(uint8_t *o, size_t l, const void *a)
{
    const struct enc_arg *e = a;
    return tt_frame_encode_reset(o, l, e->stream, e->m);
}
static tt_ssize enc_open(uint8_t *o, size_t l, const void *a)
{
    const struct enc_arg *e = a;
    return tt_frame_encode_open(o, l, e->stream, e->m);
}
static tt_ssize enc_window(uint8_t *o, size_t l, const void *a)
{
    const struct enc_arg *e = a;
    return tt_frame_encode_window(o, l, e->stream, e->increment);
}

/* ---- per-type checks: decoded fields == vector fields, fields encode to the bytes ---- */

static void vec_hello(const struct tv_vector *v, const uint8_t *pl, size_t plen, int want)
{
    struct tt_hello m, e;
    struct svc sv[TT_MAX_SERVICES];
    struct enc_arg a;
    unsigned i;

    assert_int_equal(tt_frame_decode_hello(&m, ut_guarded(pl, plen), plen), want);
    if (want != 0)
        return;
    assert_int_equal(m.version, tv_num(v, "version", 999));
    assert_int_equal(m.max_streams, tv_num(v, "max_streams", 999999));
    assert_int_equal(m.window, tv_num(v, "window", 0xffffffffu));
    assert_str(m.name, tv_get(v, "name", 0), v->name);
    assert_str(m.token, tv_get(v, "token", 0), v->name);
    assert_str(m.key, tv_get(v, "key", 0) ? tv_get(v, "key", 0) : "", v->name);
    assert_int_equal(m.nservices, tv_num(v, "nservices", 999));
    assert_null(tv_get(v, "service", m.nservices));
    memset(&e, 0, sizeof(e));
    e.version = (uint8_t)tv_num(v, "version", 0);
    e.max_streams = (uint16_t)tv_num(v, "max_streams", 0);
    e.window = (uint32_t)tv_num(v, "window", 0);
    e.name = S(tv_get(v, "name", 0));
    e.token = S(tv_get(v, "token", 0));
    e.key = S(tv_get(v, "key", 0) ? tv_get(v, "key", 0) : "");
    e.nservices = m.nservices;
    for (i = 0; i < m.nservices; i++) {
        parse_svc(tv_get(v, "service", i), &sv[i]);
        assert_int_equal(m.services[i].kind, sv[i].kind);
        assert_str(m.services[i].name, sv[i].name, v->name);
        e.services[i].kind = sv[i].kind;
        e.services[i].name = S(sv[i].name);
    }
    if (!v->encode_no) {
        a.m = &e;
        check_encode(v, enc_hello, &a);
    }
}

static void vec_welcome(const struct tv_vector *v, const uint8_t *pl, size_t plen, int want)
{
    struct tt_welcome m, e;
    struct svc sv[TT_MAX_SERVICES];
    struct enc_arg a;
    unsigned i;

    assert_int_equal(tt_frame_decode_welcome(&m, ut_guarded(pl, plen), plen), want);
    if (want != 0)
        return;
    assert_int_equal(m.version, tv_num(v, "version", 999));
    assert_int_equal(m.max_streams, tv_num(v, "max_streams", 999999));
    assert_int_equal(m.window, tv_num(v, "window", 0xffffffffu));
    assert_str(m.label, tv_get(v, "label", 0), v->name);
    assert_str(m.key, tv_get(v, "key", 0) ? tv_get(v, "key", 0) : "", v->name);
    assert_int_equal(m.nservices, tv_num(v, "nservices", 999));
    assert_null(tv_get(v, "service", m.nservices));
    memset(&e, 0, sizeof(e));
    e.version = m.version;
    e.max_streams = (uint16_t)tv_num(v, "max_streams", 0);
    e.window = (uint32_t)tv_num(v, "window", 0);
    e.label = S(tv_get(v, "label", 0));
    e.key = S(tv_get(v, "key", 0) ? tv_get(v, "key", 0) : "");
    e.nservices = m.nservices;
    for (i = 0; i < m.nservices; i++) {
        parse_svc(tv_get(v, "service", i), &sv[i]);
        assert_int_equal(m.services[i].kind, sv[i].kind);
        assert_str(m.services[i].name, sv[i].name, v->name);
        assert_int_equal(m.services[i].port, sv[i].port);
        assert_str(m.services[i].address, sv[i].address, v->name);
        e.services[i].kind = sv[i].kind;
        e.services[i].name = S(sv[i].name);
        e.services[i].port = sv[i].port;
        e.services[i].address = S(sv[i].address);
    }
    if (!v->encode_no) {
        a.m = &e;
        check_encode(v, enc_welcome, &a);
    }
}

static void vec_coded(const struct tv_vector *v, uint8_t type, uint32_t stream, const uint8_t *pl,
                      size_t plen, int want)
{
    struct tt_coded m, e;
    struct enc_arg a;

    assert_int_equal(tt_frame_decode_coded(&m, ut_guarded(pl, plen), plen), want);
    if (want != 0)
        return;
    assert_int_equal(m.code, tv_num(v, "code", 999999));
    assert_str(m.reason, tv_get(v, "reason", 0), v->name);
    e.code = (uint16_t)tv_num(v, "code", 0);
    e.reason = S(tv_get(v, "reason", 0));
    if (v->encode_no)
        return;
    a.m = &e;
    a.stream = stream;
    check_encode(v,
                 type == TT_FRAME_REFUSE  ? enc_refuse
                 : type == TT_FRAME_RESET ? enc_reset
                                          : enc_goaway,
                 &a);
}

static void vec_open(const struct tv_vector *v, uint32_t stream, const uint8_t *pl, size_t plen,
                     int want)
{
    struct tt_open m, e;
    struct enc_arg a;

    assert_int_equal(tt_frame_decode_open(&m, ut_guarded(pl, plen), plen), want);
    if (want != 0)
        return;
    assert_int_equal(m.service, tv_num(v, "service", 999));
    assert_str(m.origin, tv_get(v, "origin", 0), v->name);
    e.service = m.service;
    e.origin = S(tv_get(v, "origin", 0));
    if (v->encode_no)
        return;
    a.m = &e;
    a.stream = stream;
    check_encode(v, enc_open, &a);
}

static void vec_window(const struct tv_vector *v, uint32_t stream, const uint8_t *pl, size_t plen,
                       int want)
{
    struct enc_arg a;
    uint32_t inc = 99;

    assert_int_equal(tt_frame_decode_window(&inc, ut_guarded(pl, plen), plen), want);
    if (want != 0) {
        assert_int_equal(inc, 0);
        return;
    }
    assert_int_equal(inc, tv_num(v, "increment", 0));
    if (v->encode_no)
        return;
    a.stream = stream;
    a.increment = inc;
    check_encode(v, enc_window, &a);
}

static void vec_data(const struct tv_vector *v, const struct tt_frame_header *h, const uint8_t *pl,
                     size_t plen)
{
    uint8_t want[TV_MAX_BYTES], buf[TV_MAX_BYTES + 8];
    size_t wlen = 0;
    const char *d = tv_get(v, "data", 0);

    if (d == NULL)
        return; /* an invalid frame (see its events): nothing to decode */
    assert_true(tv_hex(d, want, sizeof(want), &wlen));
    assert_int_equal(wlen, plen);
    if (plen > 0)
        assert_memory_equal(want, pl, plen);
    if (v->encode_no)
        return;
    assert_int_equal(
        tt_frame_encode_data_header(buf, h->stream, plen, (h->flags & TT_FLAG_FIN) != 0),
        TT_FRAME_HEADER_LEN);
    if (plen > 0)
        memcpy(buf + TT_FRAME_HEADER_LEN, pl, plen);
    assert_encoded(v, buf, (tt_ssize)(plen + TT_FRAME_HEADER_LEN));
}

/* An entry whose payload is not checked gives no payload field: only stream= and flags=. */
static void header_fields_only(const struct tv_vector *v)
{
    for (size_t k = 0; k < v->nfields; k++)
        if (strcmp(v->key[k], "stream") != 0 && strcmp(v->key[k], "flags") != 0)
            fail_msg("%s: field %s= in an entry whose payload is not checked", v->name, v->key[k]);
}

static void test_vectors(void **state)
{
    size_t i, checked = 0;

    (void)state;
    for (i = 0; i < vectors->n; i++) {
        const struct tv_vector *v = &vectors->v[i];
        struct tt_frame_header h;
        const uint8_t *pl = v->bytes + TT_FRAME_HEADER_LEN;
        size_t plen;
        int want;

        assert_true(v->len >= TT_FRAME_HEADER_LEN);
        assert_true(v->has_events);
        tt_frame_header_decode(&h, v->bytes);
        plen = v->len - TT_FRAME_HEADER_LEN;
        /* The header's fields are given in every entry (absent: 0), the payload's only where
         * the payload is checked (docs/PROTOCOL.md, "Test vectors"). */
        if (h.stream != tv_num(v, "stream", 0) || h.flags != tv_num(v, "flags", 0))
            fail_msg("%s: stream= or flags= does not match the header", v->name);
        if (strcmp(v->decode, "ok") != 0 &&
            !(h.type == TT_FRAME_DATA && tv_get(v, "data", 0) != NULL)) {
            header_fields_only(v);
            if (v->encode_no)
                fail_msg("%s: encode: no in an entry that has nothing to encode", v->name);
        }
        if (v->decode[0] == '\0' && plen == 0 && h.length > 0)
            continue; /* header-only vector: the session test covers it */
        assert_int_equal(h.length, plen);
        if (v->decode[0] == '\0' && (h.type != TT_FRAME_DATA || tv_get(v, "data", 0) == NULL))
            continue; /* no payload decoder, or a frame only the session rejects */
        want = v->decode[0] != '\0' ? err_by_name(v->decode) : 0;
        switch (h.type) {
        case TT_FRAME_HELLO:
            vec_hello(v, pl, plen, want);
            break;
        case TT_FRAME_WELCOME:
            vec_welcome(v, pl, plen, want);
            break;
        case TT_FRAME_REFUSE:
        case TT_FRAME_RESET:
        case TT_FRAME_GOAWAY:
            vec_coded(v, h.type, h.stream, pl, plen, want);
            break;
        case TT_FRAME_OPEN:
            vec_open(v, h.stream, pl, plen, want);
            break;
        case TT_FRAME_WINDOW:
            vec_window(v, h.stream, pl, plen, want);
            break;
        case TT_FRAME_DATA:
            vec_data(v, &h, pl, plen);
            break;
        default:
            fail_msg("%s: decode given for unknown type", v->name);
        }
        checked++;
    }
    assert_true(checked >= 60);
}

/* Vector names are unique: they are cited by name in docs/PROTOCOL.md. */
static void test_vector_names_unique(void **state)
{
    size_t i, j;

    (void)state;
    for (i = 0; i < vectors->n; i++)
        for (j = i + 1; j < vectors->n; j++)
            if (strcmp(vectors->v[i].name, vectors->v[j].name) == 0)
                fail_msg("duplicate vector %s", vectors->v[i].name);
}

/* Every proper prefix of a valid HELLO/WELCOME/WINDOW payload is malformed; no decoder reads
 * past its input, whatever the prefix. */
static void test_prefixes(void **state)
{
    size_t i, k;

    (void)state;
    for (i = 0; i < vectors->n; i++) {
        const struct tv_vector *v = &vectors->v[i];
        struct tt_frame_header h;
        union {
            struct tt_hello h;
            struct tt_welcome w;
            struct tt_coded c;
            struct tt_open o;
            uint32_t inc;
        } m;

        if (v->len < TT_FRAME_HEADER_LEN)
            continue;
        tt_frame_header_decode(&h, v->bytes);
        for (k = 0; k + TT_FRAME_HEADER_LEN < v->len; k++) {
            const uint8_t *p = ut_guarded(v->bytes + TT_FRAME_HEADER_LEN, k);
            bool full_ok = strcmp(v->decode, "ok") == 0;
            switch (h.type) {
            case TT_FRAME_HELLO:
                if (tt_frame_decode_hello(&m.h, p, k) == 0)
                    assert_false(full_ok);
                break;
            case TT_FRAME_WELCOME:
                if (tt_frame_decode_welcome(&m.w, p, k) == 0)
                    assert_false(full_ok);
                break;
            case TT_FRAME_WINDOW:
                if (full_ok)
                    assert_int_equal(tt_frame_decode_window(&m.inc, p, k), TETHER_ERR_PROTO);
                break;
            default:
                (void)tt_frame_decode_coded(&m.c, p, k);
                (void)tt_frame_decode_open(&m.o, p, k);
                break;
            }
        }
    }
}

static void test_header_roundtrip(void **state)
{
    struct tt_frame_header h = {0xabcd, 0x42, 0x81, 0xfedcba98u}, d;
    uint8_t b[8];
    static const uint8_t want[8] = {0xab, 0xcd, 0x42, 0x81, 0x7e, 0xdc, 0xba, 0x98};

    (void)state;
    tt_frame_header_encode(b, &h);
    assert_memory_equal(b, want, 8); /* reserved bit sent as 0 */
    b[4] = 0xfe;
    tt_frame_header_decode(&d, b);
    assert_int_equal(d.length, 0xabcd);
    assert_int_equal(d.type, 0x42);
    assert_int_equal(d.flags, 0x81);
    assert_int_equal(d.stream, 0x7edcba98u); /* reserved bit ignored */
}

static void test_encode_inval(void **state)
{
    uint8_t buf[4096];
    char big[300];
    struct tt_hello h;
    struct tt_welcome w;
    struct tt_coded c;
    struct tt_open o;

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';

    memset(&h, 0, sizeof(h));
    h.version = 1;
    h.name = S("dev");
    assert_true(tt_frame_encode_hello(buf, sizeof(buf), &h) > 0);
    h.name = S("");
    assert_int_equal(tt_frame_encode_hello(buf, sizeof(buf), &h), TETHER_ERR_INVAL);
    h.name.p = (const uint8_t *)big;
    h.name.len = TT_MAX_NAME + 1;
    assert_int_equal(tt_frame_encode_hello(buf, sizeof(buf), &h), TETHER_ERR_INVAL);
    h.name = S("dev");
    h.token.p = (const uint8_t *)big;
    h.token.len = TT_MAX_TOKEN + 1;
    assert_int_equal(tt_frame_encode_hello(buf, sizeof(buf), &h), TETHER_ERR_INVAL);
    h.token.len = TT_MAX_TOKEN;
    assert_true(tt_frame_encode_hello(buf, sizeof(buf), &h) > 0);
    h.nservices = TT_MAX_SERVICES + 1;
    assert_int_equal(tt_frame_encode_hello(buf, sizeof(buf), &h), TETHER_ERR_INVAL);
    h.nservices = 1;
    h.services[0].kind = 3;
    h.services[0].name = S("x");
    assert_int_equal(tt_frame_encode_hello(buf, sizeof(buf), &h), TETHER_ERR_INVAL);
    h.services[0].kind = TT_SERVICE_TCP;
    h.services[0].name = S("");
    assert_int_equal(tt_frame_encode_hello(buf, sizeof(buf), &h), TETHER_ERR_INVAL);
    h.services[0].name = S("x");
    h.window = 0x80000000u;
    assert_int_equal(tt_frame_encode_hello(buf, sizeof(buf), &h), TETHER_ERR_INVAL);
    h.window = 0x7fffffffu;
    assert_true(tt_frame_encode_hello(buf, sizeof(buf), &h) > 0);
    h.name.p = NULL; /* a length without bytes */
    h.name.len = 3;
    assert_int_equal(tt_frame_encode_hello(buf, sizeof(buf), &h), TETHER_ERR_INVAL);

    /* the key: none in version 1, 0..64 bytes in version 2, no other version */
    h.name = S("dev");
    h.version = 2;
    h.key.p = (const uint8_t *)big;
    h.key.len = TT_MAX_KEY;
    assert_true(tt_frame_encode_hello(buf, sizeof(buf), &h) > 0);
    h.key.len = TT_MAX_KEY + 1;
    assert_int_equal(tt_frame_encode_hello(buf, sizeof(buf), &h), TETHER_ERR_INVAL);
    h.key.len = 1;
    h.version = 1;
    assert_int_equal(tt_frame_encode_hello(buf, sizeof(buf), &h), TETHER_ERR_INVAL);
    h.key.len = 0;
    h.version = 3;
    assert_int_equal(tt_frame_encode_hello(buf, sizeof(buf), &h), TETHER_ERR_INVAL);
    h.version = 0;
    assert_int_equal(tt_frame_encode_hello(buf, sizeof(buf), &h), TETHER_ERR_INVAL);

    memset(&w, 0, sizeof(w));
    w.version = 1;
    w.label = S("abc");
    assert_true(tt_frame_encode_welcome(buf, sizeof(buf), &w) > 0);
    w.label.p = (const uint8_t *)big;
    w.label.len = TT_MAX_LABEL + 1;
    assert_int_equal(tt_frame_encode_welcome(buf, sizeof(buf), &w), TETHER_ERR_INVAL);
    w.label = S("");
    assert_int_equal(tt_frame_encode_welcome(buf, sizeof(buf), &w), TETHER_ERR_INVAL);
    w.label = S("abc");
    w.nservices = 1;
    w.services[0].kind = TT_SERVICE_HTTP;
    w.services[0].name = S("http");
    w.services[0].address.p = (const uint8_t *)big;
    w.services[0].address.len = TT_MAX_ADDR + 1;
    assert_int_equal(tt_frame_encode_welcome(buf, sizeof(buf), &w), TETHER_ERR_INVAL);
    w.services[0].address.len = TT_MAX_ADDR;
    assert_true(tt_frame_encode_welcome(buf, sizeof(buf), &w) > 0);
    w.services[0].kind = 0;
    assert_int_equal(tt_frame_encode_welcome(buf, sizeof(buf), &w), TETHER_ERR_INVAL);
    w.services[0].kind = TT_SERVICE_HTTP;
    w.key.p = (const uint8_t *)big;
    w.key.len = 1;
    assert_int_equal(tt_frame_encode_welcome(buf, sizeof(buf), &w), TETHER_ERR_INVAL);
    w.version = 2;
    w.key.len = TT_MAX_KEY;
    assert_true(tt_frame_encode_welcome(buf, sizeof(buf), &w) > 0);
    w.key.len = TT_MAX_KEY + 1;
    assert_int_equal(tt_frame_encode_welcome(buf, sizeof(buf), &w), TETHER_ERR_INVAL);
    w.key.len = 0;
    w.version = 3;
    assert_int_equal(tt_frame_encode_welcome(buf, sizeof(buf), &w), TETHER_ERR_INVAL);

    c.code = 1;
    c.reason.p = (const uint8_t *)big;
    c.reason.len = TT_MAX_REASON + 1;
    assert_int_equal(tt_frame_encode_refuse(buf, sizeof(buf), &c), TETHER_ERR_INVAL);
    assert_int_equal(tt_frame_encode_goaway(buf, sizeof(buf), &c), TETHER_ERR_INVAL);
    assert_int_equal(tt_frame_encode_reset(buf, sizeof(buf), 1, &c), TETHER_ERR_INVAL);
    c.reason.len = TT_MAX_REASON;
    assert_int_equal(tt_frame_encode_refuse(buf, sizeof(buf), &c), 8 + 2 + TT_MAX_REASON);
    assert_int_equal(tt_frame_encode_reset(buf, sizeof(buf), 0, &c), TETHER_ERR_INVAL);
    assert_int_equal(tt_frame_encode_reset(buf, sizeof(buf), 0x80000001u, &c), TETHER_ERR_INVAL);

    o.service = 0;
    o.origin.p = (const uint8_t *)big;
    o.origin.len = TT_MAX_ADDR + 1;
    assert_int_equal(tt_frame_encode_open(buf, sizeof(buf), 1, &o), TETHER_ERR_INVAL);
    o.origin.len = 0;
    assert_int_equal(tt_frame_encode_open(buf, sizeof(buf), 0, &o), TETHER_ERR_INVAL);
    assert_int_equal(tt_frame_encode_open(buf, sizeof(buf), 1, &o), 9);

    assert_int_equal(tt_frame_encode_window(buf, sizeof(buf), 1, 0), TETHER_ERR_INVAL);
    assert_int_equal(tt_frame_encode_window(buf, sizeof(buf), 1, 0x80000000u), TETHER_ERR_INVAL);
    assert_int_equal(tt_frame_encode_window(buf, sizeof(buf), 0, 1), TETHER_ERR_INVAL);
    assert_int_equal(tt_frame_encode_window(buf, 11, 1, 1), TETHER_ERR_AGAIN);
    assert_int_equal(tt_frame_encode_window(buf, 12, 1, 1), 12);
    assert_int_equal(tt_frame_encode_window(NULL, 0, 1, 1), TETHER_ERR_AGAIN);

    assert_int_equal(tt_frame_encode_data_header(buf, 0, 1, false), TETHER_ERR_INVAL);
    assert_int_equal(tt_frame_encode_data_header(buf, 1, 65536, false), TETHER_ERR_INVAL);
    assert_int_equal(tt_frame_encode_data_header(buf, 1, 65535, true), 8);
    assert_int_equal(buf[0], 0xff);
    assert_int_equal(buf[3], TT_FLAG_FIN);
}

static void test_decode_null(void **state)
{
    struct tt_hello h;
    struct tt_welcome w;
    struct tt_coded c;
    struct tt_open o;
    uint32_t inc;

    (void)state;
    assert_int_equal(tt_frame_decode_hello(&h, NULL, 0), TETHER_ERR_PROTO);
    assert_int_equal(tt_frame_decode_welcome(&w, NULL, 0), TETHER_ERR_PROTO);
    assert_int_equal(tt_frame_decode_coded(&c, NULL, 0), TETHER_ERR_PROTO);
    assert_int_equal(tt_frame_decode_open(&o, NULL, 0), TETHER_ERR_PROTO);
    assert_int_equal(tt_frame_decode_window(&inc, NULL, 0), TETHER_ERR_PROTO);
}

static void test_err_names(void **state)
{
    (void)state;
    assert_string_equal(tether_err_name(TETHER_ERR_PROTO), "TETHER_ERR_PROTO");
    assert_string_equal(tether_err_name(TETHER_ERR_GOAWAY), "TETHER_ERR_GOAWAY");
    assert_string_equal(tether_err_name(0), "TETHER_OK");
    assert_string_equal(tether_err_name(-9999), "TETHER_ERR_UNKNOWN");
    assert_string_equal(tether_strerror(0), "success");
    assert_string_equal(tether_strerror(TETHER_ERR_FLOW), "flow-control window exceeded");
    assert_string_equal(tether_strerror(12345), "unknown error");
    assert_false(tether_err_is_fatal(0));
    assert_false(tether_err_is_fatal(TETHER_ERR_AGAIN));
    assert_true(tether_err_is_fatal(TETHER_ERR_PROTO));
    assert_true(tether_err_is_fatal(TETHER_ERR_GOAWAY));
    assert_false(tether_err_is_fatal(5));
#define TT_ERR_CHECK_(n, value, text)                                                              \
    assert_string_equal(tether_err_name(value), "TETHER_ERR_" #n);                                 \
    assert_string_equal(tether_strerror(value), text);                                             \
    assert_true(tether_err_is_fatal(value) == (value != TETHER_ERR_AGAIN));
    TETHER_ERR_MAP(TT_ERR_CHECK_)
#undef TT_ERR_CHECK_
}

/* Reads a whole file into a NUL-terminated malloc'd string, or returns NULL. */
static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (fp == NULL)
        return NULL;
    if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf != NULL && fread(buf, 1, (size_t)n, fp) == (size_t)n) {
            buf[n] = '\0';
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(fp);
    return buf;
}

/* docs/PROTOCOL.md prints the vector files verbatim (tests/vectors/update-doc.sh). */
static void test_vectors_in_doc(void **state)
{
    char path[600], *doc;
    struct dirent *de;
    DIR *d;
    int files = 0;

    (void)state;
    snprintf(path, sizeof(path), "%s/../../docs/PROTOCOL.md", tv_dir());
    doc = slurp(path);
    if (doc == NULL) {
        print_message("skipping: %s not found\n", path);
        skip();
    }
    d = opendir(tv_dir());
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        char *txt;
        if (n <= 4 || strcmp(de->d_name + n - 4, ".txt") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", tv_dir(), de->d_name);
        txt = slurp(path);
        assert_non_null(txt);
        if (strstr(doc, txt) == NULL)
            fail_msg("docs/PROTOCOL.md does not hold %s verbatim: run tests/vectors/update-doc.sh",
                     path);
        free(txt);
        files++;
    }
    closedir(d);
    free(doc);
    assert_true(files >= 11);
}

/* ---- the examples of docs/PROTOCOL.md (sections 3, 13 and 14) ---- */

#define EX_MAX 4096

/* Tether frame names as the examples write them, indexed by type. */
static const char *const ex_type_names[] = {NULL,   "HELLO",  "WELCOME", "REFUSE", "OPEN",
                                            "DATA", "WINDOW", "RESET",   "GOAWAY"};

/* True if line holds hex byte pairs only (at least one), each a token of its own. */
static bool ex_hex_line(const char *line, size_t n)
{
    size_t i = 0, pairs = 0;

    while (i < n) {
        if (line[i] == ' ') {
            i++;
            continue;
        }
        if (i + 2 > n || tv_hexval((unsigned char)line[i]) < 0 ||
            tv_hexval((unsigned char)line[i + 1]) < 0 || (i + 2 < n && line[i + 2] != ' '))
            return false;
        i += 2;
        pairs++;
    }
    return pairs > 0;
}

/* The type the description names (its first frame name), or 0. */
static int ex_named_type(const char *desc)
{
    const char *best = NULL;
    int type = 0;

    for (int t = 1; t < (int)(sizeof ex_type_names / sizeof ex_type_names[0]); t++) {
        const char *p = strstr(desc, ex_type_names[t]);
        if (p != NULL && (best == NULL || p < best)) {
            best = p;
            type = t;
        }
    }
    return type;
}

static void ex_decoded(int rc, const char *desc)
{
    if (rc != 0)
        fail_msg("example '%s': the decoder fails (%s)", desc, tether_err_name(rc));
}

/* Decodes one Tether frame of b[0..n) and encodes its fields again: the bytes must be what the
 * reference encoder writes. Returns the frame's length; fails the test otherwise. */
static size_t ex_roundtrip(const uint8_t *b, size_t n, const char *desc)
{
    struct tt_frame_header h;
    uint8_t out[EX_MAX];
    tt_ssize w = -1;
    const uint8_t *p = b + TT_FRAME_HEADER_LEN;

    if (n < TT_FRAME_HEADER_LEN)
        fail_msg("example '%s': %zu bytes, shorter than a header", desc, n);
    tt_frame_header_decode(&h, b);
    if ((size_t)h.length + TT_FRAME_HEADER_LEN > n)
        fail_msg("example '%s': the header says %u payload bytes, %zu follow", desc, h.length,
                 n - TT_FRAME_HEADER_LEN);
    switch (h.type) {
    case TT_FRAME_HELLO: {
        struct tt_hello m;
        ex_decoded(tt_frame_decode_hello(&m, p, h.length), desc);
        w = tt_frame_encode_hello(out, sizeof out, &m);
        break;
    }
    case TT_FRAME_WELCOME: {
        struct tt_welcome m;
        ex_decoded(tt_frame_decode_welcome(&m, p, h.length), desc);
        w = tt_frame_encode_welcome(out, sizeof out, &m);
        break;
    }
    case TT_FRAME_REFUSE:
    case TT_FRAME_GOAWAY:
    case TT_FRAME_RESET: {
        struct tt_coded m;
        ex_decoded(tt_frame_decode_coded(&m, p, h.length), desc);
        w = h.type == TT_FRAME_REFUSE   ? tt_frame_encode_refuse(out, sizeof out, &m)
            : h.type == TT_FRAME_GOAWAY ? tt_frame_encode_goaway(out, sizeof out, &m)
                                        : tt_frame_encode_reset(out, sizeof out, h.stream, &m);
        break;
    }
    case TT_FRAME_OPEN: {
        struct tt_open m;
        ex_decoded(tt_frame_decode_open(&m, p, h.length), desc);
        w = tt_frame_encode_open(out, sizeof out, h.stream, &m);
        break;
    }
    case TT_FRAME_WINDOW: {
        uint32_t inc;
        ex_decoded(tt_frame_decode_window(&inc, p, h.length), desc);
        w = tt_frame_encode_window(out, sizeof out, h.stream, inc);
        break;
    }
    case TT_FRAME_DATA:
        w = tt_frame_encode_data_header(out, h.stream, h.length, (h.flags & TT_FLAG_FIN) != 0);
        if (w == TT_FRAME_HEADER_LEN && h.length > 0) {
            memcpy(out + TT_FRAME_HEADER_LEN, p, h.length);
            w += h.length;
        }
        break;
    default:
        fail_msg("example '%s': frame type %u", desc, h.type);
    }
    if (w != (tt_ssize)h.length + TT_FRAME_HEADER_LEN || memcmp(out, b, (size_t)w) != 0)
        fail_msg("example '%s': the encoder does not write these bytes", desc);
    return (size_t)w;
}

/* Checks an example: bytes b[0..n) under the description desc. Returns its Tether bytes (the
 * unmasked payload of a WebSocket frame) in tb[0..*tn) for the "which unmasks to" line. */
static void ex_check(const char *desc, const uint8_t *b, size_t n, uint8_t *tb, size_t *tn)
{
    int named = ex_named_type(desc);
    const char *st = strstr(desc, "stream ");
    size_t i = 0, off = 0;

    *tn = 0;
    if (strstr(desc, "WebSocket") != NULL) {
        /* A WebSocket frame (RFC 6455): FIN, binary, a 7-bit length, a mask key if masked. */
        size_t len, hl = 2;
        assert_true(n >= 2);
        if (b[0] != 0x82 || (b[1] & 0x7f) > 125)
            fail_msg("example '%s': not a short binary WebSocket frame", desc);
        len = b[1] & 0x7f;
        if (b[1] & 0x80)
            hl += 4;
        if (n != hl + len)
            fail_msg("example '%s': %zu bytes, the WebSocket header says %zu", desc, n, hl + len);
        for (size_t k = 0; k < len; k++)
            tb[k] = (uint8_t)(b[hl + k] ^ ((b[1] & 0x80) ? b[2 + k % 4] : 0));
        *tn = len;
        b = tb;
        n = len;
    }
    while (off < n) {
        struct tt_frame_header h;
        tt_frame_header_decode(&h, b + off);
        if (i == 0 && named != 0 && h.type != named)
            fail_msg("example '%s': a frame of type %u", desc, h.type);
        if (i == 0 && st != NULL && st[7] >= '0' && st[7] <= '9' &&
            h.stream != (uint32_t)strtoul(st + 7, NULL, 10))
            fail_msg("example '%s': stream %u", desc, (unsigned)h.stream);
        off += ex_roundtrip(b + off, n - off, desc);
        i++;
    }
}

/* Every frame of the examples (the fenced blocks of sections 13 and 14, and hex in backquotes in
 * sections 1 to 14) decodes, names the type and stream its description says, and is exactly what
 * the encoders write from its fields; each WebSocket frame's payload is the frame shown after it.
 */
static void test_examples_in_doc(void **state)
{
    char path[600], *doc, *end, *s;
    static uint8_t b[EX_MAX], tb[EX_MAX], prev[EX_MAX];
    size_t n = 0, tn = 0, prevn = 0;
    char desc[256] = "";
    bool fence = false, have_prev = false;
    int frames = 0, inline_frames = 0;

    (void)state;
    snprintf(path, sizeof(path), "%s/../../docs/PROTOCOL.md", tv_dir());
    doc = slurp(path);
    if (doc == NULL) {
        print_message("skipping: %s not found\n", path);
        skip();
    }
    end = strstr(doc, "\n## 15.");
    assert_non_null(end);
    *end = '\0';
    /* inline examples: `hex hex ...` of at least a header */
    for (s = strchr(doc, '`'); s != NULL; s = strchr(s + 1, '`')) {
        char *q = strchr(s + 1, '`');
        if (q == NULL)
            break;
        if (ex_hex_line(s + 1, (size_t)(q - s - 1))) {
            size_t m = 0;
            *q = '\0';
            assert_true(tv_hex(s + 1, b, sizeof b, &m));
            *q = '`';
            if (m >= TT_FRAME_HEADER_LEN) {
                ex_check("(inline)", b, m, tb, &tn);
                inline_frames++;
            }
        }
        s = q;
    }
    /* the fenced blocks of sections 13 and 14 */
    s = strstr(doc, "\n## 13.");
    assert_non_null(s);
    while (s != NULL && *s != '\0') {
        char *nl = strchr(s + 1, '\n');
        size_t len = nl != NULL ? (size_t)(nl - s - 1) : strlen(s + 1);
        const char *line = s + 1;
        bool hex = fence && ex_hex_line(line, len);
        bool item_ends = !fence || !hex;
        if (item_ends && n > 0) {
            if (strncmp(desc, "which unmasks to", 16) == 0) {
                if (!have_prev || prevn != n || memcmp(prev, b, n) != 0)
                    fail_msg("example '%s': not the WebSocket frame's payload", desc);
            }
            ex_check(desc, b, n, tb, &tn);
            memcpy(prev, tb, tn);
            prevn = tn;
            have_prev = tn > 0;
            frames++;
            n = 0;
            desc[0] = '\0';
        }
        if (len >= 3 && strncmp(line, "```", 3) == 0) {
            fence = !fence;
            desc[0] = '\0';
        } else if (hex) {
            char tmp[512];
            assert_true(len < sizeof tmp);
            memcpy(tmp, line, len);
            tmp[len] = '\0';
            assert_true(tv_hex(tmp, b, sizeof b, &n));
        } else if (fence && desc[0] == '\0' && len > 0) {
            snprintf(desc, sizeof desc, "%.*s", (int)len, line);
        }
        s = nl;
    }
    free(doc);
    /* 13: 9 frames; 14.4: 2 WebSocket frames, 5 frames; inline: 3 at least */
    if (frames < 16 || inline_frames < 3)
        fail_msg("%d examples in fenced blocks, %d inline: the document lost some", frames,
                 inline_frames);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),         cmocka_unit_test(test_vector_names_unique),
        cmocka_unit_test(test_prefixes),        cmocka_unit_test(test_header_roundtrip),
        cmocka_unit_test(test_encode_inval),    cmocka_unit_test(test_decode_null),
        cmocka_unit_test(test_err_names),       cmocka_unit_test(test_vectors_in_doc),
        cmocka_unit_test(test_examples_in_doc),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
