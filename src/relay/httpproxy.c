/* httpproxy.c - request-head rewriting filter (httpproxy.h). Head bytes are gathered in a pool
 * chunk that is given back as soon as the head is sent, so an idle keep-alive connection holds
 * no buffer. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "tether_err.h"
#include "httpproxy.h"
#include "route.h"

void tt_httpproxy_init(struct tt_httpproxy *x, const char *host, const char *client_ip)
{
    memset(x, 0, sizeof(*x));
    tt_headparse_init(&x->hp);
    snprintf(x->host, sizeof(x->host), "%s", host);
    snprintf(x->client_ip, sizeof(x->client_ip), "%s", client_ip);
    x->mode = TT_HTTPPROXY_HEAD;
}

void tt_httpproxy_reset(struct tt_httpproxy *x)
{
    tt_chunk_put(x->head);
    x->head = NULL;
    x->hlen = 0;
}

struct out {
    uint8_t *p;
    size_t len, cap;
    bool full;
};

static void put(struct out *o, const void *data, size_t len)
{
    if (o->full || o->cap - o->len < len) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->len, data, len);
    o->len += len;
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static bool name_is(const uint8_t *base, const struct tt_head_hdr *h, const char *name)
{
    size_t n = strlen(name);
    return h->flen == n && strncasecmp((const char *)base + h->foff, name, n) == 0;
}

tt_ssize tt_httpproxy_rewrite(const uint8_t *head, size_t headlen, const struct tt_headparse *hp,
                              const char *client_ip, bool https, uint8_t *out, size_t outlen)
{
    struct out o = {out, 0, outlen, false};
    if (hp->line_len == 0 || (size_t)hp->line_off + hp->line_len > headlen)
        return TETHER_ERR_INVAL;
    put(&o, head + hp->line_off, hp->line_len); /* the request line, as sent (empty lines
                                                   before it dropped) */
    puts_(&o, "\r\n");
    int last_xff = -1;
    for (uint32_t i = 0; i < hp->nhdr; i++)
        if (name_is(head, &hp->hdr[i], "x-forwarded-for"))
            last_xff = (int)i;
    const uint8_t *hostv = NULL;
    size_t hostlen = 0;
    for (uint32_t i = 0; i < hp->nhdr; i++) {
        const struct tt_head_hdr *h = &hp->hdr[i];
        if (name_is(head, h, "x-forwarded-proto") || name_is(head, h, "x-forwarded-host"))
            continue;
        /* a cluster's internal headers (cluster.h) never reach a device */
        if (name_is(head, h, "x-tether-cluster") || name_is(head, h, "x-tether-client") ||
            name_is(head, h, "x-tether-proto"))
            continue;
        if (!hostv && name_is(head, h, "host")) {
            hostv = head + h->voff;
            hostlen = h->vlen;
        }
        put(&o, head + h->foff, h->flen);
        puts_(&o, ": ");
        put(&o, head + h->voff, h->vlen);
        if ((int)i == last_xff) {
            puts_(&o, h->vlen ? ", " : "");
            puts_(&o, client_ip);
        }
        puts_(&o, "\r\n");
    }
    if (last_xff < 0) {
        puts_(&o, "X-Forwarded-For: ");
        puts_(&o, client_ip);
        puts_(&o, "\r\n");
    }
    puts_(&o, https ? "X-Forwarded-Proto: https\r\n" : "X-Forwarded-Proto: http\r\n");
    if (hostv) {
        puts_(&o, "X-Forwarded-Host: ");
        put(&o, hostv, hostlen);
        puts_(&o, "\r\n");
    }
    puts_(&o, "\r\n");
    return o.full ? TETHER_ERR_AGAIN : (tt_ssize)o.len;
}

/* The head head->data[0..headlen) is complete: check it, rewrite it, send it. */
static int finish_head(struct tt_httpproxy *x, size_t headlen, tt_httpproxy_emit emit, void *ud)
{
    const uint8_t *hv;
    size_t hvlen;
    char host[TT_HOSTLEN];
    if (tt_headparse_find(&x->hp, "host", &hv, &hvlen) != 1 ||
        tt_route_host_normalize(hv, hvlen, host) != 0)
        return TETHER_ERR_HTTP;
    if (strcmp(host, x->host) != 0)
        return TETHER_ERR_NOT_FOUND;
    struct tt_chunk *o = tt_chunk_get();
    if (!o)
        return TETHER_ERR_NOMEM;
    tt_ssize n = tt_httpproxy_rewrite(x->head->data, headlen, &x->hp, x->client_ip, x->https,
                                      o->data, TT_CHUNK_SIZE);
    int rc = n < 0 ? TETHER_ERR_TOO_LARGE : emit(ud, o->data, (size_t)n);
    tt_chunk_put(o);
    tt_httpproxy_reset(x);
    x->requests++;
    x->mode = tt_headparse_upgrade(&x->hp) ? TT_HTTPPROXY_RAW : TT_HTTPPROXY_BODY;
    return rc;
}

/* Head mode: gathers bytes into the head buffer. Returns the bytes of in consumed, or a
 * negative error. */
static tt_ssize feed_head(struct tt_httpproxy *x, const uint8_t *in, size_t len,
                          tt_httpproxy_emit emit, void *ud)
{
    if (!x->head) {
        x->head = tt_chunk_get();
        if (!x->head)
            return TETHER_ERR_NOMEM;
        x->hlen = 0;
        tt_headparse_begin(&x->hp, x->head->data);
    }
    size_t room = TT_HEAD_MAX - x->hlen;
    size_t n = len < room ? len : room;
    memcpy(x->head->data + x->hlen, in, n);
    enum tt_headparse_event ev;
    size_t r = tt_headparse_execute(&x->hp, x->head->data + x->hlen, n, &ev);
    switch (ev) {
    case TT_HEADPARSE_HEAD: {
        int rc = finish_head(x, x->hlen + r, emit, ud);
        return rc < 0 ? rc : (tt_ssize)r;
    }
    case TT_HEADPARSE_MORE:
        x->hlen += n;
        if (x->hlen == TT_HEAD_MAX)
            return TETHER_ERR_TOO_LARGE;
        return (tt_ssize)n;
    case TT_HEADPARSE_ERROR:
        return x->hp.err ? x->hp.err : TETHER_ERR_HTTP;
    default:
        return TETHER_ERR_HTTP; /* a message cannot end inside its head */
    }
}

/* Body mode: passes bytes up to the end of the request. */
static tt_ssize feed_body(struct tt_httpproxy *x, const uint8_t *in, size_t len,
                          tt_httpproxy_emit emit, void *ud)
{
    enum tt_headparse_event ev;
    size_t r = tt_headparse_execute(&x->hp, in, len, &ev);
    if (ev == TT_HEADPARSE_ERROR)
        return x->hp.err ? x->hp.err : TETHER_ERR_HTTP;
    if (r > 0) {
        int rc = emit(ud, in, r);
        if (rc < 0)
            return rc;
    }
    if (ev == TT_HEADPARSE_MESSAGE)
        x->mode = TT_HTTPPROXY_HEAD;
    return (tt_ssize)r;
}

int tt_httpproxy_feed(struct tt_httpproxy *x, const uint8_t *in, size_t len, tt_httpproxy_emit emit,
                      void *ud)
{
    while (len > 0) {
        tt_ssize r;
        uint8_t mode = x->mode;
        switch (x->mode) {
        case TT_HTTPPROXY_RAW:
            return emit(ud, in, len);
        case TT_HTTPPROXY_BODY:
            r = feed_body(x, in, len, emit, ud);
            break;
        default:
            r = feed_head(x, in, len, emit, ud);
            break;
        }
        if (r < 0)
            return (int)r;
        if (r == 0 && x->mode == mode)
            return TETHER_ERR_HTTP; /* no progress: never loop */
        in += r;
        len -= (size_t)r;
    }
    return 0;
}
