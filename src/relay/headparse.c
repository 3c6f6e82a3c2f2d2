/* headparse.c - http-parser driven request head and message boundaries (headparse.h). The
 * parser is paused in on_headers_complete and on_message_complete; a pause in the first leaves
 * the final LF of the head unconsumed by http-parser, so it is fed again (need_lf) before the
 * body. */
#include <string.h>
#include <strings.h>
#include "tether_err.h"
#include "headparse.h"

enum { LAST_NONE = 0, LAST_FIELD = 1, LAST_VALUE = 2 };

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct tt_headparse *h = p->data;
    if (!h->collecting)
        return 0;
    if (h->url_len == 0)
        h->url_off = (uint32_t)((const uint8_t *)at - h->base);
    if (len > TT_URI_MAX - h->url_len) {
        /* Checked piece by piece, so a long target is refused before the head is whole. */
        h->err = TETHER_ERR_TOO_LARGE;
        h->uri_too_long = true;
        return -1;
    }
    h->url_len += (uint32_t)len;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct tt_headparse *h = p->data;
    if (!h->collecting)
        return 0; /* chunked trailers: not recorded */
    /* http-parser's lenient build takes blanks inside a name ("Transfer-Encoding : chunked"),
     * which servers read differently (RFC 9112 5.1: reject). */
    if (memchr(at, ' ', len) != NULL || memchr(at, '\t', len) != NULL)
        return -1;
    if (h->last != LAST_FIELD) {
        if (h->nhdr == TT_HEAD_MAX_HEADERS) {
            h->err = TETHER_ERR_TOO_LARGE;
            return -1;
        }
        struct tt_head_hdr *x = &h->hdr[h->nhdr++];
        x->foff = (uint32_t)((const uint8_t *)at - h->base);
        x->flen = (uint32_t)len;
        x->voff = x->foff + x->flen;
        x->vlen = 0;
    } else {
        h->hdr[h->nhdr - 1].flen += (uint32_t)len;
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
    if (h->last != LAST_VALUE) {
        x->voff = (uint32_t)((const uint8_t *)at - h->base);
        x->vlen = (uint32_t)len;
    } else {
        /* the pieces of one value are adjacent in base (an obs-fold keeps its CRLF) */
        x->vlen = (uint32_t)((const uint8_t *)at - h->base) + (uint32_t)len - x->voff;
    }
    h->last = LAST_VALUE;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct tt_headparse *h = p->data;
    h->collecting = false;
    h->head_done = true;
    http_parser_pause(p, 1);
    return 0;
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
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* Checks the request line of the head base[0..end) that http-parser accepted, and records it
 * in line_off/line_len. http-parser's lenient build does not check the letters of "HTTP/" (it
 * takes "GET / Ha\r\nH1.1" as HTTP/1.1), so the line is read again here. */
static bool request_line_ok(struct tt_headparse *h, size_t end)
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
    return true;
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
            if (!request_line_ok(h, (size_t)(data - h->base) + r + 1)) {
                h->err = TETHER_ERR_HTTP;
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
    size_t nlen = strlen(name);
    unsigned count = 0;
    for (uint32_t i = 0; i < h->nhdr; i++) {
        const struct tt_head_hdr *x = &h->hdr[i];
        if (x->flen != nlen || strncasecmp((const char *)h->base + x->foff, name, nlen) != 0)
            continue;
        if (count++ == 0) {
            *val = h->base + x->voff;
            *vlen = x->vlen;
        }
    }
    return count;
}

bool tt_headparse_has_token(const uint8_t *value, size_t len, const char *token)
{
    size_t tlen = strlen(token);
    size_t i = 0;
    while (i < len) {
        while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
            i++;
        size_t start = i;
        while (i < len && value[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
            end--;
        if (end - start == tlen && strncasecmp((const char *)value + start, token, tlen) == 0)
            return true;
    }
    return false;
}
