/* headparse.h - incremental HTTP/1.x request parsing with http-parser, for the relay's
 * listener (first request head) and its HTTP proxy filter (every request on a keep-alive
 * connection). While a head is read, header names and values are recorded as offsets into one
 * stable buffer (the caller's, given to tt_headparse_begin), so nothing is copied; the parser
 * stops at the end of each head and of each message, so the caller knows where they end, and
 * hands a body over piece by piece (decoded from chunked framing) to an optional callback.
 * Heads are held to stricter rules than Debian's lenient http-parser build applies (see
 * tt_headparse_execute), and every refusal says why (enum tt_http_refusal).
 * No allocation, no I/O. */
#ifndef TT_HEADPARSE_H
#define TT_HEADPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <http_parser.h>

#include "common/httphead.h"

#define TT_HEAD_MAX (16u * 1024) /* largest request head accepted (431 beyond) */
#define TT_HEAD_MAX_HEADERS 128  /* more header lines than this: 431 */
#define TT_URI_MAX (8u * 1024)   /* longest request target accepted (414 beyond) */

/* A header is a struct tt_head_hdr (common/httphead.h): name base[foff .. foff+flen), value
 * base[voff .. voff+vlen). */

/* Why a request was refused: h->reason after TT_HEADPARSE_ERROR, and the reasons the listener
 * and the filter add (Host). The answer's status is in brackets. Names for /metrics:
 * tt_headparse_refusal_name. */
enum tt_http_refusal {
    TT_REFUSAL_NONE = 0,
    TT_REFUSAL_SYNTAX,       /* [400] not HTTP/1.x: request line, header names, http-parser */
    TT_REFUSAL_TARGET,       /* [400] a control byte (a tab...) in the request target */
    TT_REFUSAL_HEADER,       /* [400] obs-fold, a control byte or a CR without LF in a header */
    TT_REFUSAL_FRAMING,      /* [400] bad or conflicting Content-Length / Transfer-Encoding,
                                a bad chunk */
    TT_REFUSAL_CODING,       /* [501] a transfer coding other than chunked before chunked */
    TT_REFUSAL_HOST,         /* [400] no Host, two of them, or a malformed one */
    TT_REFUSAL_OTHER_HOST,   /* [400] an absolute-form target naming another host than Host,
                                or a later request naming another Host */
    TT_REFUSAL_TOO_LARGE,    /* [431] head over TT_HEAD_MAX or too many header lines */
    TT_REFUSAL_URI_TOO_LONG, /* [414] request target over TT_URI_MAX */
    TT_REFUSAL_COUNT
};

/* How the request's body is framed (after TT_HEADPARSE_HEAD). */
enum tt_headparse_framing {
    TT_FRAMING_NONE = 0,    /* no body */
    TT_FRAMING_LENGTH = 1,  /* Content-Length: h->content_length bytes */
    TT_FRAMING_CHUNKED = 2, /* Transfer-Encoding: chunked */
};

/* Pieces of a body handed to the body callback, in order. */
enum tt_headparse_piece {
    TT_HEADPARSE_CHUNK = 0,     /* a chunk of size bytes begins (size 0: the last chunk) */
    TT_HEADPARSE_DATA = 1,      /* body bytes data[0..len) (any body; pieces of any size) */
    TT_HEADPARSE_CHUNK_END = 2, /* the chunk's data ended (after the last chunk: its trailers,
                                   which are not handed over) */
};

/* Receives body pieces; data[0..len) is valid during the call only (it points into the fed
 * input). Returns 0, or a negative tether_err that stops the parse (TT_HEADPARSE_ERROR with
 * h->err set to it). */
typedef int (*tt_headparse_body_cb)(void *ud, enum tt_headparse_piece what, const uint8_t *data,
                                    size_t len, uint64_t size);

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
    int err;           /* after TT_HEADPARSE_ERROR: TETHER_ERR_HTTP or TETHER_ERR_TOO_LARGE (or
                          the body callback's error) */
    bool uri_too_long; /* with TETHER_ERR_TOO_LARGE: the request target is over TT_URI_MAX */
    uint8_t reason;    /* enum tt_http_refusal, after TT_HEADPARSE_ERROR (NONE: the body
                          callback's error) */
    uint8_t framing;   /* enum tt_headparse_framing, after TT_HEADPARSE_HEAD */
    uint64_t content_length; /* with TT_FRAMING_LENGTH */
    tt_headparse_body_cb body_cb;
    void *body_ud;
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

/* Sets the callback that gets the body pieces of every later request (NULL: bodies are
 * parsed and dropped). */
void tt_headparse_set_body(struct tt_headparse *h, tt_headparse_body_cb cb, void *ud);

/* Feeds data[0..len): inside base while a head is read, anywhere while a body is. Returns the
 * bytes consumed and sets *ev to what stopped it. After TT_HEADPARSE_HEAD the head is
 * data[..ret) plus what came before; its headers are in h->hdr, its framing in h->framing.
 * Heads are checked more strictly than http-parser's lenient build does, so that what the
 * relay forwards is what it understood (TETHER_ERR_HTTP and h->reason otherwise):
 *  - the request line must be METHOD SP target SP HTTP/D.D (after any empty lines; runs of SP
 *    allowed; SYNTAX), and the target may not hold a control byte or DEL (TARGET);
 *  - header names may not hold blanks (SYNTAX); no header line may start with SP or HTAB
 *    (obs-fold), and no byte of the header section may be a control byte other than HTAB,
 *    CR and LF, nor a CR not followed by LF (HEADER); a bare LF ends a line, as RFC 9112 2.2
 *    allows;
 *  - Transfer-Encoding, if present, must be exactly "chunked" (one coding, one header; other
 *    codings before it: CODING, 501; anything else: FRAMING), never with Content-Length nor in
 *    an HTTP/1.0 request (FRAMING); http-parser's own framing errors (a bad or second
 *    Content-Length, a bad chunk size) are FRAMING too.
 * After TT_HEADPARSE_MESSAGE call tt_headparse_begin before feeding the next head. Feeding 0
 * bytes is allowed (it may complete a body-less request: TT_HEADPARSE_MESSAGE with 0
 * consumed). */
size_t tt_headparse_execute(struct tt_headparse *h, const uint8_t *data, size_t len,
                            enum tt_headparse_event *ev);

/* After TT_HEADPARSE_HEAD: true when the request switches protocols (Upgrade or CONNECT):
 * what follows the head is not HTTP. */
bool tt_headparse_upgrade(const struct tt_headparse *h);

/* After TT_HEADPARSE_HEAD: the first header named name (case-insensitive) in *val and *vlen, and
 * how many headers have that name (0: none, *val untouched). */
unsigned tt_headparse_find(const struct tt_headparse *h, const char *name, const uint8_t **val,
                           size_t *vlen);
/* The same, with the value's trailing blanks cut (http-parser keeps them); *val NULL and *vlen
 * 0 when there is no such header. */
unsigned tt_headparse_find_trimmed(const struct tt_headparse *h, const char *name,
                                   const uint8_t **val, size_t *vlen);

/* The metrics name of a refusal reason ("syntax", "target"...; "none" for TT_REFUSAL_NONE). */
const char *tt_headparse_refusal_name(enum tt_http_refusal r);

/* True when value[0..len) holds token as a comma-separated element (case-insensitive), as in
 * "Connection: keep-alive, Upgrade". */
bool tt_headparse_has_token(const uint8_t *value, size_t len, const char *token);

#endif
