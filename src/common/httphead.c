/* httphead.c - reads one HTTP/1.x head held in a caller's buffer through http-parser
 * (httphead.h): the end of the head is found first (a blank line within the bound), then
 * http-parser reads exactly the head and its callbacks record offsets into the buffer. No
 * allocation, no I/O. */
#include "common/httphead.h"

#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "tether_err.h"

struct st {
    struct tt_httphead *h;
    const uint8_t *base;
    uint8_t last; /* 0: none, 1: a name, 2: a value was the last callback */
    bool folded;  /* a value came in two pieces: an obs-fold */
    bool too_many;
    bool complete;
};

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct st *s = p->data;
    tt_httphead_span_add(s->base, &s->h->url_off, &s->h->url_len, at, len);
    return 0;
}

static int on_status(http_parser *p, const char *at, size_t len)
{
    struct st *s = p->data;
    tt_httphead_span_add(s->base, &s->h->reason_off, &s->h->reason_len, at, len);
    return 0;
}

static int on_field(http_parser *p, const char *at, size_t len)
{
    struct st *s = p->data;
    struct tt_httphead *h = s->h;
    if (s->last != 1) {
        if (tt_httphead_hdr_add(h->hdr, &h->nhdr, TT_HTTPHEAD_MAX_HEADERS, s->base, at, len) != 0) {
            s->too_many = true;
            return -1;
        }
    } else {
        struct tt_head_hdr *x = &h->hdr[h->nhdr - 1];
        tt_httphead_span_add(s->base, &x->foff, &x->flen, at, len);
    }
    s->last = 1;
    return 0;
}

static int on_value(http_parser *p, const char *at, size_t len)
{
    struct st *s = p->data;
    struct tt_head_hdr *x = &s->h->hdr[s->h->nhdr - 1];
    if (s->last == 2) {
        /* the same value again: the head is contiguous, so only a folded line does this */
        s->folded = true;
        return -1;
    }
    x->voff = (uint32_t)((const uint8_t *)at - s->base);
    x->vlen = (uint32_t)len;
    s->last = 2;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct st *s = p->data;
    s->complete = true;
    /* the head is all we read: stop here, whatever follows (a body, WebSocket data, a tunnel) */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_status = on_status,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_complete,
};

/* The length of the head (through its blank line) in in[0..len), 0 if it is not all there. A
 * bare LF ends a line, as http-parser allows. */
static size_t head_length(const uint8_t *in, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (in[i] != '\n')
            continue;
        if (i + 1 < len && in[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && in[i + 1] == '\r' && in[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

int tt_httphead_parse(enum tt_httphead_kind kind, const uint8_t *in, size_t len, size_t max,
                      struct tt_httphead *h)
{
    size_t n = len < max ? len : max;
    size_t head = head_length(in, n);
    struct st s = {.h = h, .base = in};
    http_parser p;

    memset(h, 0, offsetof(struct tt_httphead, hdr));
    http_parser_init(&p, kind == TT_HTTPHEAD_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE);
    p.data = &s;
    /* the whole head, or all there is of its beginning (so that a stream that is not HTTP is
     * refused at once, not when the bound is reached) */
    if (head > 0 || n > 0) /* (0 bytes would tell http-parser the stream ended) */
        (void)http_parser_execute(&p, &settings, (const char *)in, head ? head : n);
    enum http_errno e = HTTP_PARSER_ERRNO(&p);
    int rc = 0;
    if (s.too_many)
        rc = TETHER_ERR_TOO_LARGE;
    else if (s.folded || (e != HPE_OK && e != HPE_PAUSED))
        rc = TETHER_ERR_HTTP;
    else if (head == 0)
        rc = len >= max ? TETHER_ERR_TOO_LARGE : TETHER_ERR_AGAIN;
    else if (!s.complete)
        rc = TETHER_ERR_HTTP;
    else if (kind == TT_HTTPHEAD_RESPONSE && (p.status_code < 100 || p.status_code > 999))
        rc = TETHER_ERR_HTTP; /* http-parser takes "HTTP/1.1 2 OK"; RFC 9112 wants 3 digits */
    if (rc != 0) {
        memset(h, 0, offsetof(struct tt_httphead, hdr));
        return rc;
    }
    h->head_len = head;
    h->status = kind == TT_HTTPHEAD_RESPONSE ? (int)p.status_code : 0;
    h->method = kind == TT_HTTPHEAD_REQUEST ? p.method : 0;
    h->http_major = (uint8_t)p.http_major;
    h->http_minor = (uint8_t)p.http_minor;
    h->content_length = (p.flags & F_CONTENTLENGTH) ? p.content_length : UINT64_MAX;
    h->chunked = (p.flags & F_CHUNKED) != 0;
    h->upgrade = p.upgrade != 0;
    return 0;
}

unsigned tt_httphead_find(const struct tt_httphead *h, const uint8_t *in, const char *name,
                          const uint8_t **val, size_t *vlen)
{
    return tt_httphead_hdr_find(h->hdr, h->nhdr, in, name, val, vlen);
}

int tt_httphead_hdr_add(struct tt_head_hdr *hdr, uint32_t *nhdr, uint32_t max, const uint8_t *base,
                        const char *at, size_t n)
{
    if (*nhdr >= max)
        return TETHER_ERR_TOO_LARGE;
    struct tt_head_hdr *x = &hdr[(*nhdr)++];
    x->foff = (uint32_t)((const uint8_t *)at - base);
    x->flen = (uint32_t)n;
    x->voff = x->foff + x->flen;
    x->vlen = 0;
    return 0;
}

unsigned tt_httphead_hdr_find(const struct tt_head_hdr *hdr, uint32_t n, const uint8_t *base,
                              const char *name, const uint8_t **val, size_t *vlen)
{
    size_t nl = strlen(name);
    unsigned count = 0;
    for (uint32_t i = 0; i < n; i++) {
        const struct tt_head_hdr *x = &hdr[i];
        if (x->flen != nl || strncasecmp((const char *)base + x->foff, name, nl) != 0)
            continue;
        if (count++ == 0) {
            *val = base + x->voff;
            *vlen = x->vlen;
        }
    }
    return count;
}

bool tt_httphead_has_token(const uint8_t *value, size_t len, const char *token)
{
    size_t tl = strlen(token), i = 0;
    while (i < len) {
        while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
            i++;
        size_t start = i;
        while (i < len && value[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
            end--;
        if (end - start == tl && strncasecmp((const char *)value + start, token, tl) == 0)
            return true;
    }
    return false;
}
