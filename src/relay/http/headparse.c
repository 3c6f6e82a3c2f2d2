/* headparse.c - http-parser driven request head and message boundaries (headparse.h). The
 * parser is paused in on_headers_complete and on_message_complete; a pause in the first leaves
 * the final LF of the head unconsumed by http-parser, so it is fed again (need_lf) before the
 * body. A complete head is then read again by the strict checks (request line, target, header
 * bytes, framing headers) before it is reported. */
#include <string.h>
#include <strings.h>
#include "tether_err.h"
#include "relay/http/headparse.h"

enum { LAST_NONE = 0, LAST_FIELD = 1, LAST_VALUE = 2 };

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct tt_headparse *h = p->data;
    if (!h->collecting)
        return 0;
    if (len > TT_URI_MAX - h->url_len) {
        /* Checked piece by piece, so a long target is refused before the head is whole. */
        h->err = TETHER_ERR_TOO_LARGE;
        h->reason = TT_REFUSAL_URI_TOO_LONG;
        h->uri_too_long = true;
        return -1;
    }
    tt_httphead_span_add(h->base, &h->url_off, &h->url_len, at, len);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct tt_headparse *h = p->data;
    if (!h->collecting)
        return 0; /* chunked trailers: not recorded */
    /* http-parser's lenient build takes blanks inside a name ("Transfer-Encoding : chunked"),
     * which servers read differently (RFC 9112 5.1: reject). */
    if (memchr(at, ' ', len) != NULL || memchr(at, '\t', len) != NULL) {
        h->reason = TT_REFUSAL_SYNTAX;
        return -1;
    }
    if (h->last != LAST_FIELD) {
        if (tt_httphead_hdr_add(h->hdr, &h->nhdr, TT_HEAD_MAX_HEADERS, h->base, at, len) != 0) {
            h->err = TETHER_ERR_TOO_LARGE;
            h->reason = TT_REFUSAL_TOO_LARGE;
            return -1;
        }
    } else {
        struct tt_head_hdr *x = &h->hdr[h->nhdr - 1];
        tt_httphead_span_add(h->base, &x->foff, &x->flen, at, len);
    }
    h->last = LAST_FIELD;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct tt_headparse *h = p->data;
    if (!h->collecting || h->nhdr == 0)
        return 0;
    struct tt_head_hdr *x = &h->hdr[h->nhdr - 1];
    if (h->last != LAST_VALUE)
        x->vlen = 0; /* a new value: its first piece sets voff */
    /* the pieces of one value are adjacent in base (an obs-fold keeps its CRLF) */
    tt_httphead_span_add(h->base, &x->voff, &x->vlen, at, len);
    h->last = LAST_VALUE;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct tt_headparse *h = p->data;
    h->collecting = false;
    h->head_done = true;
    /* As http-parser will frame the body (s_headers_done): CONNECT has none, chunked wins. */
    h->content_length = 0;
    if (p->method == HTTP_CONNECT) {
        h->framing = TT_FRAMING_NONE;
    } else if (p->flags & F_CHUNKED) {
        h->framing = TT_FRAMING_CHUNKED;
    } else if (p->flags & F_CONTENTLENGTH) {
        h->framing = TT_FRAMING_LENGTH;
        h->content_length = p->content_length;
    } else {
        h->framing = TT_FRAMING_NONE;
    }
    http_parser_pause(p, 1);
    return 0;
}

static int body_piece(struct tt_headparse *h, enum tt_headparse_piece what, const char *at,
                      size_t len, uint64_t size)
{
    if (h->collecting || h->body_cb == NULL)
        return 0;
    int rc = h->body_cb(h->body_ud, what, (const uint8_t *)at, len, size);
    if (rc != 0) {
        h->err = rc < 0 ? rc : TETHER_ERR_INVAL;
        h->reason = TT_REFUSAL_NONE;
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    return body_piece(p->data, TT_HEADPARSE_DATA, at, len, 0);
}

static int on_chunk_header(http_parser *p)
{
    /* http-parser keeps the chunk's size in content_length while it calls this */
    return body_piece(p->data, TT_HEADPARSE_CHUNK, NULL, 0, p->content_length);
}

static int on_chunk_complete(http_parser *p)
{
    return body_piece(p->data, TT_HEADPARSE_CHUNK_END, NULL, 0, 0);
}

static int on_message_complete(http_parser *p)
{
    struct tt_headparse *h = p->data;
    h->msg_done = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
    .on_body = on_body,
    .on_chunk_header = on_chunk_header,
    .on_chunk_complete = on_chunk_complete,
};

void tt_headparse_init(struct tt_headparse *h)
{
    memset(h, 0, sizeof(*h));
    http_parser_init(&h->p, HTTP_REQUEST);
    h->p.data = h;
}

void tt_headparse_begin(struct tt_headparse *h, const uint8_t *base)
{
    h->base = base;
    h->collecting = true;
    h->last = LAST_NONE;
    h->nhdr = 0;
    h->url_off = h->url_len = 0;
    h->line_off = h->line_len = 0;
    h->reason = TT_REFUSAL_NONE;
    h->framing = TT_FRAMING_NONE;
    h->content_length = 0;
}

void tt_headparse_set_body(struct tt_headparse *h, tt_headparse_body_cb cb, void *ud)
{
    h->body_cb = cb;
    h->body_ud = ud;
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* Checks the request line of the head base[0..end) that http-parser accepted, and records it
 * in line_off/line_len; *lf gets the index of its LF. http-parser's lenient build does not
 * check the letters of "HTTP/" (it takes "GET / Ha\r\nH1.1" as HTTP/1.1), so the line is read
 * again here. */
static bool request_line_ok(struct tt_headparse *h, size_t end, size_t *lf)
{
    const uint8_t *b = h->base;
    size_t i = 0;
    while (i < end && (b[i] == '\r' || b[i] == '\n'))
        i++;
    size_t start = i;
    const char *m = http_method_str((enum http_method)h->p.method);
    size_t mlen = strlen(m);
    if (end - i < mlen || memcmp(b + i, m, mlen) != 0)
        return false;
    i += mlen;
    if (i >= end || b[i] != ' ')
        return false;
    while (i < end && b[i] == ' ')
        i++;
    if (i != h->url_off || h->url_len == 0 || end - i < h->url_len)
        return false;
    i += h->url_len;
    if (i >= end || b[i] != ' ')
        return false;
    while (i < end && b[i] == ' ')
        i++;
    if (end - i < 9 || memcmp(b + i, "HTTP/", 5) != 0 || !is_digit(b[i + 5]) || b[i + 6] != '.' ||
        !is_digit(b[i + 7]))
        return false;
    i += 8;
    size_t stop = i;
    if (b[i] == '\r')
        i++;
    if (i >= end || b[i] != '\n')
        return false;
    h->line_off = (uint32_t)start;
    h->line_len = (uint32_t)(stop - start);
    *lf = i;
    return true;
}

/* The request target: no control byte, no DEL (http-parser's lenient build takes a tab or a
 * form feed, which other servers read as the end of the target). */
static bool target_ok(const struct tt_headparse *h)
{
    const uint8_t *t = h->base + h->url_off;
    for (uint32_t i = 0; i < h->url_len; i++)
        if (t[i] <= 0x20 || t[i] == 0x7f)
            return false;
    return true;
}

/* The header section base[lf..end), from the request line's LF to the head's last LF: no line
 * starts with a blank (obs-fold, RFC 9112 5.2: rejected), no control byte but HTAB, CR and LF,
 * no CR but before LF (a lone CR is a line end to some servers and not to others). */
static bool header_bytes_ok(const struct tt_headparse *h, size_t lf, size_t end)
{
    const uint8_t *b = h->base;
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    for (size_t i = lf; i < end; i++) {
        /* Eight ordinary bytes at a time (no byte below 0x20, none 0x7f: the bit tricks of
         * "Bit Twiddling Hacks", hasless and haszero), each odd byte on its own. */
        while (end - i >= 8) {
            uint64_t w;
            memcpy(&w, b + i, 8);
            uint64_t d = w ^ (0x7f * ones);
            if ((((w - 0x20 * ones) & ~w) | ((d - ones) & ~d)) & highs)
                break;
            i += 8;
        }
        if (i >= end)
            break;
        uint8_t c = b[i];
        if (c >= 0x20 && c != 0x7f)
            continue;
        if (c == '\n') {
            if (i + 1 < end && (b[i + 1] == ' ' || b[i + 1] == '\t'))
                return false;
        } else if (c == '\r') {
            if (i + 1 >= end || b[i + 1] != '\n')
                return false;
        } else if (c != '\t') {
            return false;
        }
    }
    return true;
}

static bool name_is(const struct tt_headparse *h, const struct tt_head_hdr *x, const char *name)
{
    size_t n = strlen(name);
    return x->flen == n && strncasecmp((const char *)h->base + x->foff, name, n) == 0;
}

/* Transfer-Encoding as RFC 9112 6.1 and 6.3 want it read, and as the relay will re-frame the
 * body: exactly one coding, chunked; chunked after other codings is a coding the relay does
 * not implement (501); anything else is a body whose length cannot be known (400). */
static enum tt_http_refusal framing_check(const struct tt_headparse *h)
{
    unsigned codings = 0, chunked = 0;
    bool any = false, last_chunked = false;
    for (uint32_t n = 0; n < h->nhdr; n++) {
        const struct tt_head_hdr *x = &h->hdr[n];
        if (!name_is(h, x, "transfer-encoding"))
            continue;
        any = true;
        const uint8_t *v = h->base + x->voff;
        size_t i = 0, len = x->vlen;
        do {
            while (i < len && (v[i] == ' ' || v[i] == '\t'))
                i++;
            size_t start = i;
            while (i < len && v[i] != ',')
                i++;
            size_t stop = i;
            while (stop > start && (v[stop - 1] == ' ' || v[stop - 1] == '\t'))
                stop--;
            if (stop == start)
                return TT_REFUSAL_FRAMING; /* an empty coding */
            codings++;
            last_chunked =
                stop - start == 7 && strncasecmp((const char *)v + start, "chunked", 7) == 0;
            chunked += last_chunked;
            if (i < len)
                i++; /* the comma */
        } while (i < len);
    }
    if (!any) /* (http-parser also takes "Transfer-EncodingX" for one, and refuses later) */
        return (h->p.flags & F_CHUNKED) || h->p.uses_transfer_encoding ? TT_REFUSAL_FRAMING
                                                                       : TT_REFUSAL_NONE;
    if (h->p.http_major != 1 || h->p.http_minor == 0 || (h->p.flags & F_CONTENTLENGTH))
        return TT_REFUSAL_FRAMING;
    if (!last_chunked || chunked != 1)
        return TT_REFUSAL_FRAMING;
    if (codings != 1)
        return TT_REFUSAL_CODING;
    /* the relay's reading and http-parser's agree, or the request goes no further */
    return (h->p.flags & F_CHUNKED) ? TT_REFUSAL_NONE : TT_REFUSAL_FRAMING;
}

/* Every strict check on the complete head base[0..end). */
static enum tt_http_refusal check_head(struct tt_headparse *h, size_t end)
{
    size_t lf = 0;
    if (!request_line_ok(h, end, &lf))
        return TT_REFUSAL_SYNTAX;
    if (!target_ok(h))
        return TT_REFUSAL_TARGET;
    if (!header_bytes_ok(h, lf, end))
        return TT_REFUSAL_HEADER;
    return framing_check(h);
}

/* The reason for an error http-parser found. */
static enum tt_http_refusal parser_reason(enum http_errno e)
{
    switch (e) {
    case HPE_INVALID_CONTENT_LENGTH:
    case HPE_UNEXPECTED_CONTENT_LENGTH:
    case HPE_INVALID_CHUNK_SIZE:
    case HPE_INVALID_TRANSFER_ENCODING:
        return TT_REFUSAL_FRAMING;
    case HPE_HEADER_OVERFLOW:
        return TT_REFUSAL_TOO_LARGE;
    case HPE_INVALID_HEADER_TOKEN:
    case HPE_LF_EXPECTED:
        return TT_REFUSAL_HEADER;
    case HPE_INVALID_URL:
        return TT_REFUSAL_TARGET;
    default:
        return TT_REFUSAL_SYNTAX;
    }
}

/* Runs the parser; returns consumed bytes and the event. */
static size_t run(struct tt_headparse *h, const uint8_t *data, size_t len,
                  enum tt_headparse_event *ev)
{
    size_t r = http_parser_execute(&h->p, &settings, (const char *)data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&h->p);
    if (e == HPE_PAUSED) {
        http_parser_pause(&h->p, 0);
        if (h->head_done) {
            h->head_done = false;
            h->need_lf = true;
            enum tt_http_refusal why = check_head(h, (size_t)(data - h->base) + r + 1);
            if (why != TT_REFUSAL_NONE) {
                h->err = TETHER_ERR_HTTP;
                h->reason = why;
                *ev = TT_HEADPARSE_ERROR;
                return r;
            }
            *ev = TT_HEADPARSE_HEAD;
            return r + 1; /* the LF is part of the head; it is fed again later */
        }
        if (h->msg_done) {
            h->msg_done = false;
            *ev = TT_HEADPARSE_MESSAGE;
            return r;
        }
    }
    if (e != HPE_OK) {
        if (h->err == 0)
            h->err = TETHER_ERR_HTTP;
        if (h->reason == TT_REFUSAL_NONE && h->err == TETHER_ERR_HTTP)
            h->reason = parser_reason(e);
        *ev = TT_HEADPARSE_ERROR;
        return r;
    }
    *ev = TT_HEADPARSE_MORE;
    return r;
}

size_t tt_headparse_execute(struct tt_headparse *h, const uint8_t *data, size_t len,
                            enum tt_headparse_event *ev)
{
    if (h->need_lf) {
        h->need_lf = false;
        run(h, (const uint8_t *)"\n", 1, ev);
        if (*ev == TT_HEADPARSE_ERROR || *ev == TT_HEADPARSE_MESSAGE)
            return 0;
    }
    if (len == 0) {
        *ev = TT_HEADPARSE_MORE; /* never hand http-parser 0 bytes: that means EOF */
        return 0;
    }
    return run(h, data, len, ev);
}

bool tt_headparse_upgrade(const struct tt_headparse *h)
{
    return h->p.upgrade != 0;
}

unsigned tt_headparse_find(const struct tt_headparse *h, const char *name, const uint8_t **val,
                           size_t *vlen)
{
    return tt_httphead_hdr_find(h->hdr, h->nhdr, h->base, name, val, vlen);
}

unsigned tt_headparse_find_trimmed(const struct tt_headparse *h, const char *name,
                                   const uint8_t **val, size_t *vlen)
{
    *val = NULL;
    *vlen = 0;
    unsigned count = tt_headparse_find(h, name, val, vlen);
    while (*vlen > 0 && ((*val)[*vlen - 1] == ' ' || (*val)[*vlen - 1] == '\t'))
        (*vlen)--;
    return count;
}

const char *tt_headparse_refusal_name(enum tt_http_refusal r)
{
    static const char *const names[TT_REFUSAL_COUNT] = {
        [TT_REFUSAL_NONE] = "none",           [TT_REFUSAL_SYNTAX] = "syntax",
        [TT_REFUSAL_TARGET] = "target",       [TT_REFUSAL_HEADER] = "header",
        [TT_REFUSAL_FRAMING] = "framing",     [TT_REFUSAL_CODING] = "transfer_coding",
        [TT_REFUSAL_HOST] = "host",           [TT_REFUSAL_OTHER_HOST] = "other_host",
        [TT_REFUSAL_TOO_LARGE] = "too_large", [TT_REFUSAL_URI_TOO_LONG] = "uri_too_long",
    };
    return (unsigned)r < TT_REFUSAL_COUNT ? names[r] : "none";
}

bool tt_headparse_has_token(const uint8_t *value, size_t len, const char *token)
{
    return tt_httphead_has_token(value, len, token);
}
