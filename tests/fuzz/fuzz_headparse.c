/* fuzz_headparse.c - libFuzzer target for the relay's first request head
 * (src/relay/http/headparse.c as headconn.c drives it, then what server.c does with the head). The
 * first input byte seeds how the rest is cut into reads; the rest is what a client sends. Bytes are
 * copied into a TT_HEAD_MAX buffer read by read, as the listener does. On a complete head: every
 * recorded offset must lie inside the head; Host normalization and routing, the WebSocket handshake
 * check and the 101 answer run on it; and the head rewritten for the device (by the request filter)
 * must parse again, strictly, as one complete head with the same method, target and body
 * framing. Every refusal must say why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/wshs.h"
#include "relay/http/headparse.h"
#include "relay/http/httpproxy.h"
#include "relay/http/route.h"
#include "relay/http/wsrequest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_head(const struct tt_headparse *hp, size_t headlen)
{
    if (hp->url_off + (size_t)hp->url_len > headlen)
        abort();
    for (uint32_t i = 0; i < hp->nhdr; i++) {
        const struct tt_head_hdr *x = &hp->hdr[i];
        if ((size_t)x->foff + x->flen > headlen || (size_t)x->voff + x->vlen > headlen)
            abort();
    }
    if (hp->nhdr > TT_HEAD_MAX_HEADERS || hp->url_len > TT_URI_MAX)
        abort();
}

/* What server.c does with a head: Host, route, the device endpoint's handshake checks. */
static void serve(const struct tt_headparse *hp)
{
    const uint8_t *hv;
    size_t hvlen;
    char host[TT_HOSTLEN];
    if (tt_headparse_find(hp, "host", &hv, &hvlen) == 1 &&
        tt_route_host_normalize(hv, hvlen, host) == 0) {
        char label[TT_MAX_LABEL + 1], svc[TT_ROUTE_SVCLEN + 1];
        (void)tt_route_classify(host, "localhost", label, svc);
        if (strlen(host) >= TT_HOSTLEN)
            abort();
    }
    struct tt_wshs_request rq;
    tt_wsrequest_fill(hp, &rq);
    int verdict = -1;
    int vrc = tt_wshs_check_request(&rq, &verdict);
    if ((vrc == 0) != (verdict == 0) || (verdict != 0 && verdict != 400 && verdict != 426))
        abort();
    if (verdict == 0) {
        char out[512], key[TT_WS_KEYLEN + 1];
        struct tt_wshs_response r;
        if (rq.keylen != TT_WS_KEYLEN)
            abort();
        memcpy(key, rq.key, TT_WS_KEYLEN);
        key[TT_WS_KEYLEN] = '\0';
        int n = tt_wshs_server_response(out, sizeof(out), key, TT_WS_KEYLEN, true);
        /* What the relay answers, a client that sent this key accepts. */
        if (n <= 0 || tt_wshs_read_response((const uint8_t *)out, (size_t)n, key, &r) != 0 ||
            !r.accepted)
            abort();
    }
}

struct sink {
    uint8_t buf[TT_HEAD_MAX + 2 * TT_HOSTLEN + 1024];
    size_t len;
};

static int collect(void *ud, const uint8_t *p, size_t len)
{
    struct sink *s = ud;
    if (len > sizeof(s->buf) - s->len)
        abort(); /* headlen + the Host value + 256 always fits */
    memcpy(s->buf + s->len, p, len);
    s->len += len;
    return 0;
}

/* The head as the request filter rewrites it for the device parses again as one whole head
 * with the same method and target. */
static void rewrite(const uint8_t *head, size_t headlen, const struct tt_headparse *hp)
{
    static struct tt_httpproxy x;
    static struct tt_headparse again;
    static struct sink out;
    const uint8_t *hv;
    size_t hvlen;
    char host[TT_HOSTLEN];
    if (tt_headparse_find(hp, "host", &hv, &hvlen) != 1 ||
        tt_route_host_normalize(hv, hvlen, host) != 0 ||
        !tt_route_target_matches(head + hp->url_off, hp->url_len, host))
        return; /* the relay answers 400 */
    tt_httpproxy_init(&x, host, "2001:db8::1");
    out.len = 0;
    tt_ssize rc = tt_httpproxy_feed(&x, head, headlen, collect, &out);
    tt_httpproxy_reset(&x);
    if (rc != (tt_ssize)headlen || out.len == 0)
        abort(); /* the listener accepted this head: the filter must too, whole */
    if (hp->nhdr + 5 > TT_HEAD_MAX_HEADERS)
        return; /* the device may get up to 5 more lines than the relay itself accepts */
    tt_headparse_init(&again);
    tt_headparse_begin(&again, out.buf);
    enum tt_headparse_event ev;
    size_t r = tt_headparse_execute(&again, out.buf, out.len, &ev);
    if (ev != TT_HEADPARSE_HEAD || r != out.len)
        abort();
    if (again.url_len != hp->url_len ||
        memcmp(out.buf + again.url_off, head + hp->url_off, hp->url_len) != 0 ||
        again.p.method != hp->p.method || again.framing != hp->framing ||
        again.content_length != hp->content_length)
        abort();
    /* one framing header at most, and none of the client's identity headers */
    const uint8_t *v;
    size_t vlen;
    if (tt_headparse_find(&again, "content-length", &v, &vlen) +
                tt_headparse_find(&again, "transfer-encoding", &v, &vlen) >
            1 ||
        tt_headparse_find(&again, "forwarded", &v, &vlen) != 1 ||
        tt_headparse_find(&again, "x-real-ip", &v, &vlen) != 1 ||
        tt_headparse_find(&again, "true-client-ip", &v, &vlen) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[TT_HEAD_MAX];
    static struct tt_headparse hp;
    if (size < 1)
        return 0;
    uint32_t seed = data[0] * 2654435761u;
    data++;
    size--;
    tt_headparse_init(&hp);
    tt_headparse_begin(&hp, buf);
    size_t len = 0, off = 0;
    while (off < size && len < TT_HEAD_MAX) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % 97;
        if (piece > size - off)
            piece = size - off;
        if (piece > TT_HEAD_MAX - len)
            piece = TT_HEAD_MAX - len;
        memcpy(buf + len, data + off, piece);
        enum tt_headparse_event ev;
        size_t r = tt_headparse_execute(&hp, buf + len, piece, &ev);
        if (r > piece + 1)
            abort();
        if (ev == TT_HEADPARSE_HEAD) {
            size_t headlen = len + r;
            if (headlen > len + piece || headlen == 0)
                abort();
            check_head(&hp, headlen);
            serve(&hp);
            rewrite(buf, headlen, &hp);
            return 0;
        }
        if (ev == TT_HEADPARSE_ERROR) {
            if (hp.err != TETHER_ERR_HTTP && hp.err != TETHER_ERR_TOO_LARGE)
                abort();
            if (hp.reason == TT_REFUSAL_NONE || hp.reason >= TT_REFUSAL_COUNT)
                abort();
            if (hp.uri_too_long && hp.err != TETHER_ERR_TOO_LARGE)
                abort();
            return 0;
        }
        if (ev != TT_HEADPARSE_MORE || r != piece)
            abort(); /* a message cannot end before its head */
        len += piece;
        off += piece;
    }
    return 0;
}
