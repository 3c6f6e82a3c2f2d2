/* httpproxy.c - the relay's HTTP filter (httpproxy.h): request heads rewritten, bodies
 * re-framed, responses tracked. Head bytes are gathered in a pool chunk that is given back as
 * soon as the head is sent, so an idle keep-alive connection holds no buffer; the response
 * parser and the FIFO of unanswered requests live in the struct (fixed size). */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "tether_err.h"
#include "relay/lib/form.h"
#include "relay/http/httpproxy.h"
#include "relay/http/route.h"

/* What an unanswered request was (x->pending[]). */
#define PEND_HEAD 1u    /* HEAD: its response has no body */
#define PEND_UPGRADE 2u /* Upgrade: a 101 switches protocols */
#define PEND_CONNECT 4u /* CONNECT: a 2xx switches protocols */

/* Client headers that claim to say who the client is, or how it came: the relay's own
 * X-Forwarded-Proto/-Host, Forwarded and X-Real-IP replace them, and a device must never take
 * a client's word for them. X-Forwarded-For is kept and appended to (SPEC). The cluster's
 * internal headers (cluster.h) never reach a device either. */
/* clang-format off */
#define NAME(s) {s, sizeof(s) - 1}
/* clang-format on */
static const struct {
    const char *name;
    size_t len;
} dropped_headers[] = {
    NAME("x-forwarded-proto"),  NAME("x-forwarded-host"),    NAME("x-forwarded-port"),
    NAME("x-forwarded-scheme"), NAME("x-forwarded-ssl"),     NAME("x-forwarded-server"),
    NAME("forwarded"),          NAME("x-real-ip"),           NAME("x-client-ip"),
    NAME("true-client-ip"),     NAME("x-cluster-client-ip"), NAME("client-ip"),
    NAME("x-tether-cluster"),   NAME("x-tether-client"),     NAME("x-tether-proto"),
    NAME("x-tether-peer-port"),
};

static int on_body_piece(void *ud, enum tt_headparse_piece what, const uint8_t *data, size_t len,
                         uint64_t size);
static const http_parser_settings response_settings;

void tt_httpproxy_init(struct tt_httpproxy *x, const char *host, const char *client_ip)
{
    memset(x, 0, sizeof(*x));
    tt_headparse_init(&x->hp);
    tt_headparse_set_body(&x->hp, on_body_piece, x);
    http_parser_init(&x->rp, HTTP_RESPONSE);
    /* Responses are only followed, never changed: read them as browsers do (both
     * Transfer-Encoding: chunked and Content-Length: chunked wins; odd bytes in header values
     * are the device's business), so that a sloppy server does not lose the tracking. */
    x->rp.allow_chunked_length = 1;
    x->rp.lenient_http_headers = 1;
    x->rp.data = x;
    snprintf(x->host, sizeof(x->host), "%s", host);
    snprintf(x->client_ip, sizeof(x->client_ip), "%s", client_ip);
    x->mode = TT_HTTPPROXY_HEAD;
    x->track = TT_HTTPPROXY_TRACKING;
}

/* Gives back the head buffer (once a head is sent). */
static void put_head(struct tt_httpproxy *x)
{
    tt_chunk_put(x->head);
    x->head = NULL;
    x->hlen = 0;
}

void tt_httpproxy_reset(struct tt_httpproxy *x)
{
    put_head(x);
    tt_chunk_put(x->held);
    x->held = NULL;
}

/* ---- the head for the device ---------------------------------------------------------- */

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

/* s is a string literal */
#define put_lit(o, s) put(o, s, sizeof(s) - 1)

/* data[0..len) as an RFC 9110 quoted-string. */
static void put_quoted(struct out *o, const uint8_t *data, size_t len)
{
    put_lit(o, "\"");
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '"' || data[i] == '\\')
            put_lit(o, "\\");
        put(o, data + i, 1);
    }
    put_lit(o, "\"");
}

static bool name_is_n(const uint8_t *base, const struct tt_head_hdr *h, const char *name, size_t n)
{
    return h->flen == n && strncasecmp((const char *)base + h->foff, name, n) == 0;
}

/* name is a string literal */
#define name_is(base, h, name) name_is_n(base, h, name, sizeof(name) - 1)

static bool dropped(const uint8_t *base, const struct tt_head_hdr *h)
{
    /* every name on the list has 9 letters or more and starts with x, f, t or c */
    uint8_t c = h->flen ? (uint8_t)(base[h->foff] | 0x20) : 0;
    if (h->flen < 9 || (c != 'x' && c != 'f' && c != 't' && c != 'c'))
        return false;
    for (size_t i = 0; i < sizeof(dropped_headers) / sizeof(dropped_headers[0]); i++)
        if (name_is_n(base, h, dropped_headers[i].name, dropped_headers[i].len))
            return true;
    return false;
}

/* A Cookie header without the relay's cookie (cookie.h), or nothing when no pair is left. The
 * stripped value is never longer than the original: it is written in place. */
static void put_cookie(struct out *o, const uint8_t *base, const struct tt_head_hdr *h)
{
    size_t mark = o->len;
    put(o, base + h->foff, h->flen);
    put_lit(o, ": ");
    if (o->full || o->cap - o->len < (size_t)h->vlen + 2) {
        o->full = true;
        return;
    }
    bool removed;
    size_t n = tt_cookie_strip(base + h->voff, h->vlen, o->p + o->len, &removed);
    if (n == 0) {
        o->len = mark; /* nothing left: no header */
        return;
    }
    o->len += n;
    put_lit(o, "\r\n");
}

/* The one framing header of the rewritten head, as http-parser framed the body. */
static void put_framing(struct out *o, const struct tt_headparse *hp)
{
    char line[64];
    if (hp->framing == TT_FRAMING_CHUNKED) {
        put_lit(o, "Transfer-Encoding: chunked\r\n");
    } else if (hp->framing == TT_FRAMING_LENGTH) {
        snprintf(line, sizeof(line), "Content-Length: %llu\r\n",
                 (unsigned long long)hp->content_length);
        puts_(o, line);
    }
}

/* Forwarded (RFC 7239 4): for=IP, an IPv6 address bracketed and quoted; host= the Host value
 * quoted; proto=http or https. */
static void put_forwarded(struct out *o, const char *client_ip, const uint8_t *hostv,
                          size_t hostlen, bool https)
{
    put_lit(o, "Forwarded: for=");
    if (client_ip[0] == '\0') {
        put_lit(o, "unknown");
    } else if (strchr(client_ip, ':') != NULL) {
        put_lit(o, "\"[");
        puts_(o, client_ip);
        put_lit(o, "]\"");
    } else {
        puts_(o, client_ip);
    }
    if (hostv) {
        put_lit(o, ";host=");
        put_quoted(o, hostv, hostlen);
    }
    puts_(o, https ? ";proto=https\r\n" : ";proto=http\r\n");
}

tt_ssize tt_httpproxy_rewrite(const uint8_t *head, size_t headlen, const struct tt_headparse *hp,
                              const char *client_ip, bool https, uint8_t *out, size_t outlen)
{
    struct out o = {out, 0, outlen, false};
    if (hp->line_len == 0 || (size_t)hp->line_off + hp->line_len > headlen)
        return TETHER_ERR_INVAL;
    put(&o, head + hp->line_off, hp->line_len); /* the request line, as sent (empty lines
                                                   before it dropped) */
    put_lit(&o, "\r\n");
    int last_xff = -1;
    for (uint32_t i = 0; i < hp->nhdr; i++)
        if (name_is(head, &hp->hdr[i], "x-forwarded-for"))
            last_xff = (int)i;
    const uint8_t *hostv = NULL;
    size_t hostlen = 0;
    bool framed = false;
    for (uint32_t i = 0; i < hp->nhdr; i++) {
        const struct tt_head_hdr *h = &hp->hdr[i];
        if (dropped(head, h))
            continue;
        if (name_is(head, h, "content-length") || name_is(head, h, "transfer-encoding")) {
            /* the relay's own, where the client's first one was */
            if (!framed)
                put_framing(&o, hp);
            framed = true;
            continue;
        }
        if (!hostv && name_is(head, h, "host")) {
            hostv = head + h->voff;
            hostlen = h->vlen;
        }
        if (name_is(head, h, "cookie")) {
            put_cookie(&o, head, h);
            continue;
        }
        put(&o, head + h->foff, h->flen);
        put_lit(&o, ": ");
        put(&o, head + h->voff, h->vlen);
        if ((int)i == last_xff) {
            puts_(&o, h->vlen ? ", " : "");
            puts_(&o, client_ip);
        }
        put_lit(&o, "\r\n");
    }
    if (!framed)
        put_framing(&o, hp);
    if (last_xff < 0) {
        put_lit(&o, "X-Forwarded-For: ");
        puts_(&o, client_ip);
        put_lit(&o, "\r\n");
    }
    puts_(&o, https ? "X-Forwarded-Proto: https\r\n" : "X-Forwarded-Proto: http\r\n");
    if (hostv) {
        put_lit(&o, "X-Forwarded-Host: ");
        put(&o, hostv, hostlen);
        put_lit(&o, "\r\n");
    }
    put_forwarded(&o, client_ip, hostv, hostlen, https);
    if (client_ip[0] != '\0') {
        put_lit(&o, "X-Real-IP: ");
        puts_(&o, client_ip);
        put_lit(&o, "\r\n");
    }
    put_lit(&o, "\r\n");
    return o.full ? TETHER_ERR_AGAIN : (tt_ssize)o.len;
}

/* ---- requests ------------------------------------------------------------------------- */

/* A held request's body piece (TT_HTTPPROXY_HOLD): kept until the whole body is there, then
 * the request is sent, or refused as the owner's answer when it is the sign-in form. */
static int hold_body(struct tt_httpproxy *x, const uint8_t *data, size_t len)
{
    if (len > x->held_left)
        return TETHER_ERR_HTTP; /* cannot happen: the parser stops at the body's end */
    memcpy(x->held->data + x->held_len, data, len);
    x->held_len += len;
    x->held_left -= len;
    if (x->held_left > 0)
        return 0;
    const uint8_t *body = x->held->data + x->held_head;
    size_t blen = x->held_len - x->held_head;
    int rc;
    if (tt_form_count(body, blen, "user") > 0 && tt_form_count(body, blen, "secret") > 0) {
        x->local = true; /* the relay's sign-in form: never the device's */
        rc = TETHER_ERR_AUTH;
    } else {
        rc = x->emit(x->ud, x->held->data, x->held_len);
    }
    tt_chunk_put(x->held);
    x->held = NULL;
    return rc;
}

/* The body, re-framed: data as it comes, chunk sizes as the client declared them, clean CRLFs,
 * no extensions, no trailers. */
static int on_body_piece(void *ud, enum tt_headparse_piece what, const uint8_t *data, size_t len,
                         uint64_t size)
{
    struct tt_httpproxy *x = ud;
    char line[32];
    switch (what) {
    case TT_HEADPARSE_CHUNK: {
        int n = snprintf(line, sizeof(line), "%llx\r\n", (unsigned long long)size);
        return x->emit(x->ud, (const uint8_t *)line, (size_t)n);
    }
    case TT_HEADPARSE_CHUNK_END:
        return x->emit(x->ud, (const uint8_t *)"\r\n", 2);
    default:
        if (x->held)
            return hold_body(x, data, len);
        return len > 0 ? x->emit(x->ud, data, len) : 0;
    }
}

/* A request has been sent whole. */
static void message_done(struct tt_httpproxy *x)
{
    if (!tt_headparse_upgrade(&x->hp)) {
        x->mode = TT_HTTPPROXY_HEAD;
        return;
    }
    if (x->track == TT_HTTPPROXY_SWITCHED) {
        x->mode = TT_HTTPPROXY_RAW; /* the device said 101 before the request ended */
        return;
    }
    if (x->declined_early) {
        x->declined_early = false; /* the device declined before the request was all sent */
        x->mode = TT_HTTPPROXY_HEAD;
        return;
    }
    /* http-parser has stopped after the message (what follows is not HTTP to it); it is ready
     * for a new request if the device declines. */
    x->mode = TT_HTTPPROXY_WAIT;
}

/* Body mode: passes body pieces up to the end of the request (through on_body_piece). */
static tt_ssize feed_body(struct tt_httpproxy *x, const uint8_t *in, size_t len)
{
    enum tt_headparse_event ev;
    size_t r = tt_headparse_execute(&x->hp, in, len, &ev);
    if (ev == TT_HEADPARSE_ERROR) {
        x->reason = x->hp.reason;
        return x->hp.err ? x->hp.err : TETHER_ERR_HTTP;
    }
    if (ev == TT_HEADPARSE_MESSAGE)
        message_done(x);
    return (tt_ssize)r;
}

/* The head head->data[0..headlen) is complete: check it, rewrite it, send it. */
static int finish_head(struct tt_httpproxy *x, size_t headlen)
{
    const uint8_t *hv;
    size_t hvlen;
    char host[TT_HOSTLEN];
    if (tt_headparse_find(&x->hp, "host", &hv, &hvlen) != 1 ||
        tt_route_host_normalize(hv, hvlen, host) != 0) {
        x->reason = TT_REFUSAL_HOST;
        return TETHER_ERR_HTTP;
    }
    if (strcmp(host, x->host) != 0 ||
        !tt_route_target_matches(x->head->data + x->hp.url_off, x->hp.url_len, host)) {
        x->reason = TT_REFUSAL_OTHER_HOST;
        return TETHER_ERR_NOT_FOUND;
    }
    int verdict = x->check ? x->check(x->check_ud, x, x->head->data, headlen) : TT_HTTPPROXY_PASS;
    if (verdict == TT_HTTPPROXY_ANSWER) {
        x->local = true;
        return TETHER_ERR_AUTH;
    }
    bool hold = verdict == TT_HTTPPROXY_HOLD && x->hp.framing == TT_FRAMING_LENGTH &&
                x->hp.content_length > 0 && x->hp.content_length <= TT_HTTPPROXY_HOLD_MAX;
    struct tt_chunk *o = tt_chunk_get();
    if (!o)
        return TETHER_ERR_NOMEM;
    tt_ssize n = tt_httpproxy_rewrite(x->head->data, headlen, &x->hp, x->client_ip, x->https,
                                      o->data, TT_CHUNK_SIZE);
    if (n < 0) {
        tt_chunk_put(o);
        x->reason = TT_REFUSAL_TOO_LARGE;
        return TETHER_ERR_TOO_LARGE;
    }
    uint8_t what = 0;
    if (x->hp.p.method == HTTP_HEAD)
        what |= PEND_HEAD;
    if (tt_headparse_upgrade(&x->hp))
        what |= x->hp.p.method == HTTP_CONNECT ? PEND_CONNECT : PEND_UPGRADE;
    x->pending[(x->pfirst + x->npending) % TT_HTTPPROXY_MAX_PENDING] = what;
    x->npending++;
    int rc = 0;
    if (hold && (size_t)n + TT_HTTPPROXY_HOLD_MAX <= TT_CHUNK_SIZE) {
        /* sent with its body, once the body is known not to be the sign-in form */
        x->held = o;
        x->held_head = x->held_len = (size_t)n;
        x->held_left = (size_t)x->hp.content_length;
    } else {
        rc = x->emit(x->ud, o->data, (size_t)n);
        tt_chunk_put(o);
    }
    put_head(x);
    x->requests++;
    x->mode = TT_HTTPPROXY_BODY;
    if (rc < 0)
        return rc;
    /* A request without a body ends here: the mode says so at once. */
    tt_ssize r = feed_body(x, NULL, 0);
    return r < 0 ? (int)r : 0;
}

/* Head mode: gathers bytes into the head buffer. Returns the bytes of in consumed, or a
 * negative error. */
static tt_ssize feed_head(struct tt_httpproxy *x, const uint8_t *in, size_t len)
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
        int rc = finish_head(x, x->hlen + r);
        return rc < 0 ? rc : (tt_ssize)r;
    }
    case TT_HEADPARSE_MORE:
        x->hlen += n;
        if (x->hlen == TT_HEAD_MAX) {
            x->reason = TT_REFUSAL_TOO_LARGE;
            return TETHER_ERR_TOO_LARGE;
        }
        return (tt_ssize)n;
    case TT_HEADPARSE_ERROR:
        x->reason = x->hp.reason;
        return x->hp.err ? x->hp.err : TETHER_ERR_HTTP;
    default:
        x->reason = TT_REFUSAL_SYNTAX;
        return TETHER_ERR_HTTP; /* a message cannot end inside its head */
    }
}

/* A request is refused with err. Returns err when the browser is owed nothing more (answer
 * now), else 0: the refusal waits for the responses owed before it. */
static int refuse(struct tt_httpproxy *x, int err)
{
    if (x->reason == TT_REFUSAL_NONE && err == TETHER_ERR_HTTP)
        x->reason = TT_REFUSAL_SYNTAX;
    if (x->reason == TT_REFUSAL_NONE && err == TETHER_ERR_TOO_LARGE)
        x->reason = TT_REFUSAL_TOO_LARGE;
    x->refused = err;
    /* A request cut inside its body is never answered: the device waits for the rest. */
    unsigned owed = x->npending - (x->mode == TT_HTTPPROXY_BODY ? 1u : 0u);
    /* (no reason: the relay's own failure, emit's; the stream is broken already) */
    if ((x->reason == TT_REFUSAL_NONE && !x->local) || owed == 0 ||
        x->track != TT_HTTPPROXY_TRACKING)
        return err;
    x->owed = owed;
    return 0;
}

tt_ssize tt_httpproxy_feed(struct tt_httpproxy *x, const uint8_t *in, size_t len,
                           tt_httpproxy_emit emit, void *ud)
{
    if (x->cut)
        return TETHER_ERR_PROTO;
    if (x->refused)
        return x->owed == 0 || x->track != TT_HTTPPROXY_TRACKING ? x->refused : 0;
    x->emit = emit;
    x->ud = ud;
    size_t off = 0;
    while (off < len) {
        tt_ssize r;
        uint8_t mode = x->mode;
        switch (mode) {
        case TT_HTTPPROXY_RAW: {
            int rc = emit(ud, in + off, len - off);
            return rc < 0 ? rc : (tt_ssize)len;
        }
        case TT_HTTPPROXY_WAIT:
            return (tt_ssize)off;
        case TT_HTTPPROXY_BODY:
            r = feed_body(x, in + off, len - off);
            break;
        default:
            if (x->track != TT_HTTPPROXY_TRACKING)
                return (tt_ssize)off; /* fail closed: no new request */
            if (x->head == NULL && x->npending >= TT_HTTPPROXY_MAX_PENDING) {
                x->events |= TT_HTTPPROXY_EV_FULL;
                return (tt_ssize)off;
            }
            r = feed_head(x, in + off, len - off);
            break;
        }
        if (r == 0 && x->mode == mode) {
            r = TETHER_ERR_HTTP; /* no progress: never loop */
            x->reason = TT_REFUSAL_SYNTAX;
        }
        if (r < 0) {
            int rc = refuse(x, (int)r);
            return rc < 0 ? rc : (tt_ssize)off;
        }
        off += (size_t)r;
    }
    return (tt_ssize)off;
}

/* ---- responses ------------------------------------------------------------------------ */

static void lose(struct tt_httpproxy *x)
{
    x->track = TT_HTTPPROXY_LOST;
    x->switching = false;
    x->events |= TT_HTTPPROXY_EV_LOST | TT_HTTPPROXY_EV_RESUME;
}

/* ---- the relay's cookie in responses ---- */

/* The device tried to set the relay's cookie: cut the response at `at` (a byte of the current
 * input, inside the head: the browser never gets the end of the head, so it sets nothing). */
static int cut_here(struct tt_httpproxy *x, const char *at)
{
    x->cut = true;
    x->cut_at = (size_t)((const uint8_t *)at - x->rsp_base);
    return -1;
}

static int rsp_header_field(http_parser *p, const char *at, size_t len)
{
    static const char sc[] = "set-cookie";
    struct tt_httpproxy *x = p->data;
    if (x->rsp_hstate != 1) {
        /* a new header (http-parser calls the value callback, with 0 bytes, for an empty
         * value, so two names in a row are pieces of one) */
        x->value_sc = false;
        x->rsp_hstate = 1;
        x->field_pos = 0;
        x->field_ok = true;
    }
    for (size_t i = 0; i < len && x->field_ok; i++) {
        uint8_t c = (uint8_t)at[i];
        if (c >= 'A' && c <= 'Z')
            c |= 0x20;
        if (x->field_pos >= sizeof(sc) - 1 || c != (uint8_t)sc[x->field_pos])
            x->field_ok = false;
        else
            x->field_pos++;
    }
    return 0;
}

static int rsp_header_value(http_parser *p, const char *at, size_t len)
{
    struct tt_httpproxy *x = p->data;
    if (x->rsp_hstate != 2) {
        x->rsp_hstate = 2;
        x->value_sc = x->field_ok && x->field_pos == sizeof("set-cookie") - 1;
        if (x->value_sc)
            tt_cookie_scan_init(&x->scan);
    }
    if (!x->value_sc)
        return 0;
    tt_cookie_scan_feed(&x->scan, (const uint8_t *)at, len);
    /* A Set-Cookie is ours as soon as its '=' is read (no later byte can change that): cut
     * before the rest of the value, well inside the head. */
    if (tt_cookie_scan_decided(&x->scan) && x->scan.ours)
        return cut_here(x, at);
    return 0;
}

/* Untracked bytes (TT_HTTPPROXY_LOST) are not read as HTTP here, but a browser may still read
 * them: any that spell the cookie's name (any case) cut the stream there. A KMP match over
 * "tether_session", whose only self-overlap is its first letter. Returns the offset of the cut,
 * or len. */
static size_t scan_untracked(struct tt_httpproxy *x, const uint8_t *in, size_t len)
{
    static const char word[] = "tether_session";
    const uint8_t wl = sizeof(word) - 1;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = in[i] >= 'A' && in[i] <= 'Z' ? (uint8_t)(in[i] | 0x20) : in[i];
        while (x->lost_match > 0 && c != (uint8_t)word[x->lost_match])
            x->lost_match = x->lost_match == 3 ? 1 : 0; /* after "tet" the last "t" may begin it */
        if (c == (uint8_t)word[x->lost_match])
            x->lost_match++;
        if (x->lost_match == wl) {
            x->cut = true;
            x->lost_match = 0;
            return i + 1 > wl ? i + 1 - wl : 0;
        }
    }
    return len;
}

static int rsp_headers_complete(http_parser *p)
{
    struct tt_httpproxy *x = p->data;
    x->rsp_hstate = 0;
    x->value_sc = false;
    if (x->npending == 0)
        return -1; /* a response to no request */
    uint8_t *what = &x->pending[x->pfirst];
    unsigned st = p->status_code;
    if (st == 101) {
        if (!(*what & PEND_UPGRADE))
            return -1; /* switching protocols unasked */
        x->switching = true;
        return 2; /* no body; what follows is not HTTP */
    }
    if (st >= 100 && st < 200)
        return 1; /* interim (100 Continue, 103 Early Hints): the final answer follows */
    if (*what & (PEND_UPGRADE | PEND_CONNECT)) {
        if ((*what & PEND_CONNECT) && st >= 200 && st < 300) {
            x->switching = true;
            return 2;
        }
        /* Declined: the connection stays HTTP, and the client's bytes held since are read as
         * requests again. */
        *what = (uint8_t)(*what & ~(PEND_UPGRADE | PEND_CONNECT));
        x->events |= TT_HTTPPROXY_EV_DECLINED;
        if (x->mode == TT_HTTPPROXY_WAIT) {
            x->mode = TT_HTTPPROXY_HEAD;
            x->events |= TT_HTTPPROXY_EV_RESUME;
        } else {
            x->declined_early = true; /* answered before it was all sent: message_done */
        }
    }
    if ((*what & PEND_HEAD) || st == 204 || st == 304)
        return 1; /* no body, whatever Content-Length says */
    return 0;
}

static int rsp_message_complete(http_parser *p)
{
    struct tt_httpproxy *x = p->data;
    if (p->status_code >= 100 && p->status_code < 200 && !x->switching)
        return 0; /* interim */
    if (x->npending == TT_HTTPPROXY_MAX_PENDING)
        x->events |= TT_HTTPPROXY_EV_RESUME; /* the filter may take a request again */
    x->pfirst = (uint8_t)((x->pfirst + 1u) % TT_HTTPPROXY_MAX_PENDING);
    x->npending--;
    if (x->switching) {
        x->switching = false;
        x->track = TT_HTTPPROXY_SWITCHED;
        x->mode = TT_HTTPPROXY_RAW;
        x->events |= TT_HTTPPROXY_EV_SWITCHED | TT_HTTPPROXY_EV_RESUME;
        return 0;
    }
    if (x->refused && x->owed > 0 && --x->owed == 0) {
        x->events |= TT_HTTPPROXY_EV_RESUME;
        http_parser_pause(p, 1); /* stop right here: what follows is not owed */
    }
    return 0;
}

static const http_parser_settings response_settings = {
    .on_header_field = rsp_header_field,
    .on_header_value = rsp_header_value,
    .on_headers_complete = rsp_headers_complete,
    .on_message_complete = rsp_message_complete,
};

size_t tt_httpproxy_response(struct tt_httpproxy *x, const uint8_t *in, size_t len)
{
    size_t off = 0;
    while (off < len) {
        if (x->cut)
            return off;
        if (x->track == TT_HTTPPROXY_LOST) {
            size_t pass = off + scan_untracked(x, in + off, len - off);
            if (x->cut)
                x->events |= TT_HTTPPROXY_EV_RESUME; /* the next feed ends the connection */
            return pass;
        }
        if (x->track != TT_HTTPPROXY_TRACKING)
            return len;
        if (x->refused && x->owed == 0)
            return off; /* every response owed has passed: the rest is dropped */
        x->rsp_base = in + off;
        size_t n =
            http_parser_execute(&x->rp, &response_settings, (const char *)in + off, len - off);
        enum http_errno e = HTTP_PARSER_ERRNO(&x->rp);
        if (x->cut) {
            /* the bytes before the cut pass (a part of a head), none after */
            x->track = TT_HTTPPROXY_LOST;
            x->events |= TT_HTTPPROXY_EV_RESUME;
            return off + x->cut_at;
        }
        off += n;
        if (e == HPE_PAUSED) {
            http_parser_pause(&x->rp, 0);
            continue;
        }
        if (e != HPE_OK || (n == 0 && x->track == TT_HTTPPROXY_TRACKING)) {
            /* untracked from the byte the parser stopped at (the same whatever the cuts) */
            lose(x);
            off = off > len ? len : off;
            size_t pass = off + scan_untracked(x, in + off, len - off);
            if (x->cut)
                x->events |= TT_HTTPPROXY_EV_RESUME;
            return pass;
        }
    }
    return len;
}
