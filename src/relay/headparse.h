/* headparse.h - incremental HTTP/1.x request parsing with http-parser, for the relay's
 * listener (first request head) and its HTTP proxy filter (every request on a keep-alive
 * connection). While a head is read, header names and values are recorded as offsets into one
 * stable buffer (the caller's, given to tt_headparse_begin), so nothing is copied; the parser
 * stops at the end of each head and of each message, so the caller knows where they end.
 * No allocation, no I/O. */
#ifndef TT_HEADPARSE_H
#define TT_HEADPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <http_parser.h>

#define TT_HEAD_MAX (16u * 1024) /* largest request head accepted (431 beyond) */
#define TT_HEAD_MAX_HEADERS 128  /* more header lines than this: 431 */
#define TT_URI_MAX (8u * 1024)   /* longest request target accepted (414 beyond) */

struct tt_head_hdr {
    uint32_t foff, flen; /* name: base[foff .. foff+flen) */
    uint32_t voff, vlen; /* value */
};

enum tt_headparse_event {
    TT_HEADPARSE_MORE = 0,    /* everything consumed; nothing ended */
    TT_HEADPARSE_HEAD = 1,    /* a request head ended at the last consumed byte */
    TT_HEADPARSE_MESSAGE = 2, /* a request (head and body) ended at the last consumed byte */
    TT_HEADPARSE_ERROR = 3,   /* malformed input (h->err says how) */
};

struct tt_headparse {
    http_parser p;
    const uint8_t *base; /* the buffer the current head is read into */
    bool collecting;     /* between tt_headparse_begin and the end of the head */
    bool head_done, msg_done, need_lf;
    uint8_t last;      /* 0 none, 1 a name, 2 a value was the last callback */
    int err;           /* after TT_HEADPARSE_ERROR: TETHER_ERR_HTTP or TETHER_ERR_TOO_LARGE */
    bool uri_too_long; /* with TETHER_ERR_TOO_LARGE: the request target is over TT_URI_MAX */
    uint32_t url_off, url_len;
    uint32_t line_off, line_len; /* after TT_HEADPARSE_HEAD: the request line, without CRLF */
    uint32_t nhdr;
    struct tt_head_hdr hdr[TT_HEAD_MAX_HEADERS];
};

/* Prepares h for a stream of requests. h must not move afterwards (the parser points at it).
 * Cannot fail. */
void tt_headparse_init(struct tt_headparse *h);

/* Starts recording a new head whose bytes will all be fed from base[0] on, within
 * base[0..TT_HEAD_MAX). */
void tt_headparse_begin(struct tt_headparse *h, const uint8_t *base);

/* Feeds data[0..len): inside base while a head is read, anywhere while a body is. Returns the
 * bytes consumed and sets *ev to what stopped it. After TT_HEADPARSE_HEAD the head is
 * data[..ret) plus what came before; its headers are in h->hdr. Heads are checked more
 * strictly than http-parser's lenient build does, so that what the relay forwards is what it
 * understood: the request line must be METHOD SP target SP HTTP/D.D (after any empty lines;
 * runs of SP allowed) and header names may not hold blanks (TETHER_ERR_HTTP otherwise).
 * After TT_HEADPARSE_MESSAGE
 * call tt_headparse_begin before feeding the next head. Feeding 0 bytes is allowed (it may
 * complete a body-less request: TT_HEADPARSE_MESSAGE with 0 consumed). */
size_t tt_headparse_execute(struct tt_headparse *h, const uint8_t *data, size_t len,
                            enum tt_headparse_event *ev);

/* After TT_HEADPARSE_HEAD: true when the request switches protocols (Upgrade or CONNECT):
 * what follows the head is not HTTP. */
bool tt_headparse_upgrade(const struct tt_headparse *h);

/* After TT_HEADPARSE_HEAD: the first header named name (case-insensitive) in *val and *vlen, and
 * how many headers have that name (0: none, *val untouched). */
unsigned tt_headparse_find(const struct tt_headparse *h, const char *name, const uint8_t **val,
                           size_t *vlen);

/* True when value[0..len) holds token as a comma-separated element (case-insensitive), as in
 * "Connection: keep-alive, Upgrade". */
bool tt_headparse_has_token(const uint8_t *value, size_t len, const char *token);

#endif
