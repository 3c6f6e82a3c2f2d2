/* mcuws.c - the WebSocket client side of the microcontroller agent (mcuws.h): opening request,
 * answer check (picohttpparser reads the head; SHA-1 and base64 are mbedTLS's), frame reader and
 * masking. Pure functions over caller buffers; no heap, no I/O. */
#include "mcuws.h"

#include <string.h>

#include "mbedtls/base64.h"
#include "mbedtls/sha1.h"
#include "picohttpparser.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define ANSWER_MAX_HEADERS 16

int tt_mcuws_key(const uint8_t nonce[16], char key[TT_MCUWS_KEY_LEN + 1],
                 char accept[TT_MCUWS_ACCEPT_LEN + 1])
{
    uint8_t cat[TT_MCUWS_KEY_LEN + sizeof WS_GUID - 1];
    uint8_t digest[20];
    size_t olen = 0;

    if (mbedtls_base64_encode((unsigned char *)key, TT_MCUWS_KEY_LEN + 1, &olen, nonce, 16) != 0 ||
        olen != TT_MCUWS_KEY_LEN)
        return -1;
    memcpy(cat, key, TT_MCUWS_KEY_LEN);
    memcpy(cat + TT_MCUWS_KEY_LEN, WS_GUID, sizeof WS_GUID - 1);
    if (mbedtls_sha1_ret(cat, sizeof cat, digest) != 0)
        return -1;
    if (mbedtls_base64_encode((unsigned char *)accept, TT_MCUWS_ACCEPT_LEN + 1, &olen, digest,
                              sizeof digest) != 0 ||
        olen != TT_MCUWS_ACCEPT_LEN)
        return -1;
    return 0;
}

/* Bounded string building: once something does not fit, pos goes past cap and stays there. */
struct out {
    char *p;
    size_t cap, pos;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->pos + n > o->cap) {
        o->pos = o->cap + 1;
        return;
    }
    memcpy(o->p + o->pos, s, n);
    o->pos += n;
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_u16(struct out *o, uint16_t v)
{
    char d[5];
    size_t n = 0;

    do {
        d[sizeof d - 1 - n++] = (char)('0' + v % 10);
        v = (uint16_t)(v / 10);
    } while (v != 0);
    put(o, d + sizeof d - n, n);
}

size_t tt_mcuws_request(char *out, size_t outlen, const char *host, uint16_t port, const char *path,
                        const char *key)
{
    struct out o = {out, outlen, 0};

    puts_(&o, "GET ");
    puts_(&o, path && path[0] ? path : "/");
    puts_(&o, " HTTP/1.1\r\nHost: ");
    puts_(&o, host);
    if (port != 80) {
        put(&o, ":", 1);
        put_u16(&o, port);
    }
    puts_(&o, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
    puts_(&o, key);
    puts_(&o, "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tether.v1\r\n"
              "User-Agent: tether-mcu/1\r\n\r\n");
    return o.pos <= o.cap ? o.pos : 0;
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Case-insensitive equality of a header's bytes with a lowercase word. */
static bool is(const char *p, size_t n, const char *word)
{
    size_t i;

    if (strlen(word) != n)
        return false;
    for (i = 0; i < n; i++)
        if (lower((unsigned char)p[i]) != word[i])
            return false;
    return true;
}

/* Does a comma-separated list hold the token (case-insensitive, blanks around items ignored)? */
static bool has_token(const char *p, size_t n, const char *word)
{
    size_t i = 0, start, end;

    while (i < n) {
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == ','))
            i++;
        start = i;
        while (i < n && p[i] != ',')
            i++;
        end = i;
        while (end > start && (p[end - 1] == ' ' || p[end - 1] == '\t'))
            end--;
        if (end > start && is(p + start, end - start, word))
            return true;
    }
    return false;
}

static uint32_t seconds(const char *p, size_t n)
{
    uint32_t v = 0;
    size_t i;

    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        v = v * 10 + (uint32_t)(p[i] - '0');
        if (v > 86400)
            return 86400;
    }
    return v;
}

int tt_mcuws_answer_check(const char *buf, size_t len, const char *accept,
                          struct tt_mcuws_answer *ans)
{
    struct phr_header h[ANSWER_MAX_HEADERS];
    size_t nh = ANSWER_MAX_HEADERS, msglen, i;
    const char *msg;
    int minor, status, r;
    bool upgrade = false, connection = false, accepted = false, proto_ok = true;

    ans->status = 0;
    ans->retry_after = 0;
    r = phr_parse_response(buf, len, &minor, &status, &msg, &msglen, h, &nh, 0);
    if (r == -2)
        return TT_MCUWS_PARTIAL;
    if (r < 0)
        return TT_MCUWS_BAD;
    ans->status = status;
    for (i = 0; i < nh; i++) {
        if (h[i].name == NULL)
            continue; /* a folded continuation line */
        if (is(h[i].name, h[i].name_len, "retry-after"))
            ans->retry_after = seconds(h[i].value, h[i].value_len);
        else if (is(h[i].name, h[i].name_len, "upgrade"))
            upgrade = is(h[i].value, h[i].value_len, "websocket");
        else if (is(h[i].name, h[i].name_len, "connection"))
            connection = has_token(h[i].value, h[i].value_len, "upgrade");
        else if (is(h[i].name, h[i].name_len, "sec-websocket-accept"))
            accepted = h[i].value_len == TT_MCUWS_ACCEPT_LEN &&
                       memcmp(h[i].value, accept, TT_MCUWS_ACCEPT_LEN) == 0;
        else if (is(h[i].name, h[i].name_len, "sec-websocket-protocol"))
            proto_ok = is(h[i].value, h[i].value_len, "tether.v1");
    }
    if (status != 101)
        return TT_MCUWS_NOT_101;
    if (!upgrade || !connection)
        return TT_MCUWS_BAD_UPGRADE;
    if (!accepted)
        return TT_MCUWS_BAD_ACCEPT;
    if (!proto_ok)
        return TT_MCUWS_BAD_PROTOCOL;
    return r;
}

size_t tt_mcuws_header(uint8_t out[TT_MCUWS_HDR_MAX], uint8_t opcode, uint64_t len,
                       const uint8_t mask[4])
{
    size_t n = 2, i;

    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        out[1] = 0x80 | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = 0x80 | 127;
        for (i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    memcpy(out + n, mask, 4);
    return n + 4;
}

void tt_mcuws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t off)
{
    size_t i;

    for (i = 0; i < n; i++)
        p[i] ^= mask[(off + i) & 3];
}

void tt_mcuws_reader_init(struct tt_mcuws_reader *r)
{
    memset(r, 0, sizeof *r);
}

static long reader_fail(struct tt_mcuws_reader *r, enum tt_mcuws_reader_err e)
{
    r->err = (uint8_t)e;
    return -1;
}

/* The header is complete: check it against RFC 6455 for a client receiving. */
static long header_done(struct tt_mcuws_reader *r)
{
    uint8_t op = r->hdr[0] & 0x0f;
    uint8_t len7 = r->hdr[1] & 0x7f;
    uint64_t len = len7;
    int i;

    if (len7 == 126) {
        len = (uint64_t)r->hdr[2] << 8 | r->hdr[3];
        if (len < 126)
            return reader_fail(r, TT_MCUWS_ERR_PROTOCOL); /* not the shortest form */
    } else if (len7 == 127) {
        len = 0;
        for (i = 0; i < 8; i++)
            len = len << 8 | r->hdr[2 + i];
        if (len >> 63 || len <= 0xffff)
            return reader_fail(r, TT_MCUWS_ERR_PROTOCOL);
    }
    r->fin = (r->hdr[0] & 0x80) != 0;
    r->opcode = op;
    r->left = len;
    r->ctrllen = 0;
    switch (op) {
    case TT_MCUWS_BINARY:
        if (r->in_msg)
            return reader_fail(r, TT_MCUWS_ERR_PROTOCOL);
        r->in_msg = !r->fin;
        return 0;
    case TT_MCUWS_CONT:
        if (!r->in_msg)
            return reader_fail(r, TT_MCUWS_ERR_PROTOCOL);
        r->in_msg = !r->fin;
        return 0;
    case TT_MCUWS_TEXT:
        return reader_fail(r, TT_MCUWS_ERR_TEXT);
    case TT_MCUWS_CLOSE:
    case TT_MCUWS_PING:
    case TT_MCUWS_PONG:
        if (!r->fin || len > TT_MCUWS_CTRL_MAX)
            return reader_fail(r, TT_MCUWS_ERR_PROTOCOL);
        return 0;
    default:
        return reader_fail(r, TT_MCUWS_ERR_PROTOCOL);
    }
}

/* A frame's payload is all in: hand a control frame over. */
static long frame_done(struct tt_mcuws_reader *r, const struct tt_mcuws_reader_callbacks *cb,
                       void *ud)
{
    r->hdrlen = 0;
    r->need = 2;
    if (r->opcode >= TT_MCUWS_CLOSE && cb->control != NULL)
        return cb->control(ud, r->opcode, r->ctrl, r->ctrllen);
    return 0;
}

long tt_mcuws_read(struct tt_mcuws_reader *r, const uint8_t *in, size_t n,
                   const struct tt_mcuws_reader_callbacks *cb, void *ud)
{
    size_t pos = 0, k;
    long rv;

    if (r->err != TT_MCUWS_ERR_NONE)
        return -1;
    if (r->need == 0)
        r->need = 2;
    while (pos < n) {
        if (r->hdrlen < r->need) {
            k = (size_t)(r->need - r->hdrlen);
            if (k > n - pos)
                k = n - pos;
            memcpy(r->hdr + r->hdrlen, in + pos, k);
            r->hdrlen = (uint8_t)(r->hdrlen + k);
            pos += k;
            if (r->hdrlen < r->need)
                break;
            if (r->need == 2) {
                if (r->hdr[0] & 0x70)
                    return reader_fail(r, TT_MCUWS_ERR_PROTOCOL); /* no extension agreed */
                if (r->hdr[1] & 0x80)
                    return reader_fail(r, TT_MCUWS_ERR_PROTOCOL); /* servers never mask */
                k = r->hdr[1] & 0x7f;
                r->need = (uint8_t)(2 + (k == 126 ? 2 : k == 127 ? 8 : 0));
                if (r->hdrlen < r->need)
                    continue;
            }
            rv = header_done(r);
            if (rv < 0)
                return rv;
            if (r->left == 0 && (rv = frame_done(r, cb, ud)) < 0)
                return rv;
            continue;
        }
        k = n - pos;
        if (k > r->left)
            k = (size_t)r->left;
        if (r->opcode >= TT_MCUWS_CLOSE) {
            memcpy(r->ctrl + r->ctrllen, in + pos, k);
            r->ctrllen = (uint8_t)(r->ctrllen + k);
        } else if (cb->data != NULL && (rv = cb->data(ud, in + pos, k)) < 0) {
            return rv;
        }
        pos += k;
        r->left -= k;
        if (r->left == 0 && (rv = frame_done(r, cb, ud)) < 0)
            return rv;
    }
    return (long)n;
}
