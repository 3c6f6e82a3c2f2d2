/* httphead.h - the one reader of a single HTTP/1.x head (a request's or an answer's) held in a
 * caller's buffer, through http-parser: where the head ends, the status or the request line, the
 * framing http-parser found, and every header as offsets into the caller's buffer, in bounded
 * storage (TT_HTTPHEAD_MAX_HEADERS). The agent's upgrade answer (common/wshs.c), a proxy's
 * answer to CONNECT (agent/proxy.c) and a webhook receiver's answer (relay/admin/webhookbody.c)
 * are read with it. The relay's listener and HTTP filter read a stream of requests with bodies
 * incrementally instead (relay/http/headparse.c), recording headers the same way with the
 * building blocks at the end of this file (one header record, one way to add and find one).
 *
 * Return convention (as everywhere in common/): 0 or a negative tether_err; results through
 * out-parameters. No allocation, no I/O. */
#ifndef TT_HTTPHEAD_H
#define TT_HTTPHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TT_HTTPHEAD_MAX_HEADERS 128 /* more header lines than this: TETHER_ERR_TOO_LARGE */

enum tt_httphead_kind {
    TT_HTTPHEAD_REQUEST = 0,
    TT_HTTPHEAD_RESPONSE = 1,
};

/* One header: the name is in[foff .. foff+flen), the value in[voff .. voff+vlen) (http-parser
 * drops the blanks around a value). The record of relay/http/headparse.h too. */
struct tt_head_hdr {
    uint32_t foff, flen;
    uint32_t voff, vlen;
};

/* What tt_httphead_parse read. Offsets point into the buffer it was given, which the caller
 * keeps as long as it looks at them. */
struct tt_httphead {
    size_t head_len;                 /* bytes through the blank line that ends the head */
    int status;                      /* an answer's status (100-999) */
    unsigned method;                 /* a request's method (http-parser's enum http_method) */
    uint32_t url_off, url_len;       /* a request's target */
    uint32_t reason_off, reason_len; /* an answer's reason phrase */
    uint8_t http_major, http_minor;
    uint64_t content_length; /* UINT64_MAX: no Content-Length */
    bool chunked;            /* Transfer-Encoding: chunked (as http-parser read it) */
    bool upgrade;            /* http-parser's upgrade flag (Upgrade with Connection: upgrade,
                                CONNECT, or a 101) */
    uint32_t nhdr;
    struct tt_head_hdr hdr[TT_HTTPHEAD_MAX_HEADERS];
};

/* Reads the head at the start of in[0..len), looking at no more than max bytes of it.
 * Returns:
 *   0                    the head is whole: h is filled (what follows h->head_len is not read);
 *   TETHER_ERR_AGAIN     no end of head yet and the bytes so far are a valid beginning;
 *   TETHER_ERR_HTTP      not an HTTP/1.x head of that kind (http-parser refused it, a folded
 *                        header line, or an answer's status outside 100-999);
 *   TETHER_ERR_TOO_LARGE no end of head within max bytes, or more than TT_HTTPHEAD_MAX_HEADERS
 *                        header lines.
 * Pure: it never reads in[len] or past max, and h is zeroed unless 0 is returned. */
int tt_httphead_parse(enum tt_httphead_kind kind, const uint8_t *in, size_t len, size_t max,
                      struct tt_httphead *h);

/* The first header named name (case-insensitive) of h, read from in (the buffer h was parsed
 * from): its value in *val, *vlen. Returns how many headers have that name (0: none, *val and
 * *vlen untouched). Cannot fail. */
unsigned tt_httphead_find(const struct tt_httphead *h, const uint8_t *in, const char *name,
                          const uint8_t **val, size_t *vlen);

/* True when value[0..len) holds token as a comma-separated element (case-insensitive, blanks
 * around elements ignored), as in "Connection: keep-alive, Upgrade". Pure. */
bool tt_httphead_has_token(const uint8_t *value, size_t len, const char *token);

/* ---- Building blocks for an http-parser reader that records a head as offsets into one
 * buffer base (this file's reader, and relay/http/headparse.c's incremental one). http-parser
 * hands a target, a name or a value over in pieces when its input comes in pieces; the pieces
 * of one are adjacent in base. */

/* Extends the span base[*off .. *off + *len) with the piece at[0..n) (at points into base);
 * the first piece (*len == 0) sets *off. Cannot fail. */
static inline void tt_httphead_span_add(const uint8_t *base, uint32_t *off, uint32_t *len,
                                        const char *at, size_t n)
{
    if (*len == 0)
        *off = (uint32_t)((const uint8_t *)at - base);
    *len = (uint32_t)((const uint8_t *)at + n - base) - *off;
}

/* Opens the header hdr[*nhdr] (of at most max) whose name begins with the piece at[0..n): its
 * name is that piece, its value empty, just after the name. Returns 0, or TETHER_ERR_TOO_LARGE
 * (nothing added) when the table is full. */
int tt_httphead_hdr_add(struct tt_head_hdr *hdr, uint32_t *nhdr, uint32_t max, const uint8_t *base,
                        const char *at, size_t n);

/* The first of hdr[0..n) named name (case-insensitive), read from base: its value in *val,
 * *vlen. Returns how many have that name (0: none, *val and *vlen untouched). Cannot fail. */
unsigned tt_httphead_hdr_find(const struct tt_head_hdr *hdr, uint32_t n, const uint8_t *base,
                              const char *name, const uint8_t **val, size_t *vlen);

#endif
