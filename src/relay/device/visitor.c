/* visitor.c - tether connect on the relay (visitor.h): the upgrade's checks and answers, the
 * pass to the node holding the device in a cluster, and the bridge between the visitor's stream
 * and a device stream. A struct visitor is made for each upgrade that names a target; before
 * the 101 it holds the request (and, while a secret is checked, the head connection itself);
 * after it, the two ends of the bridge. The device's wsconn calls the bridge through the pipe
 * callbacks (pipe.h, struct tt_stream_owner); the visitor's wsconn calls it directly. Work that
 * could end a stream inside a session's callback waits for the visitor's idle turn. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "tether_err.h"
#include "common/log.h"
#include "common/pipe.h"
#include "common/pool.h"
#include "common/wshs.h"
#include "relay/cluster/cluster.h"
#include "relay/device/device.h"
#include "relay/cluster/peerlink.h"
#include "relay/http/respond.h"
#include "relay/http/wsrequest.h"
#include "relay/device/visitor.h"

enum { V_VISITOR = 0, V_DEVICE = 1 };

struct tt_visitor;

/* One end of the bridge: a stream on a wsconn. */
struct vend {
    struct tt_visitor *v;
    struct tt_wsconn *ws; /* NULL once the stream on this end has ended */
    uint32_t id;
    bool fin_in;   /* the peer's FIN came on this end */
    bool fin_out;  /* we sent FIN on this end */
    bool done;     /* the stream on this end has ended */
    bool broken;   /* ... not by FIN both ways: the other end is reset */
    uint16_t code; /* the RESET code passed on to the other end */
    /* bytes received on this end and not yet passed to the other (not credited back yet):
     * at most this end's receive window, grown by at most TT_VISITOR_EXTRA_MAX */
    struct tt_chunkq q;
    struct tt_wsconn_waiter writable; /* on this end's ws: the other end's bytes wait for it */
    uint32_t extra;                   /* window growth granted on this end */
    uint64_t bytes;                   /* received on this end and passed on */
};

struct tt_visitor {
    struct tt_stream_owner owner; /* first: the device stream's user (pipe.h) */
    struct tt_relay *r;
    struct tt_visitor *prev, *next; /* r->visitors->list, once bridged */
    /* the request */
    struct tt_headconn *hc;           /* kept while the secret is checked */
    struct tt_access_verify *check;   /* that check */
    char device[TT_MAX_NAME + 1];     /* Tether-Device */
    char service[TT_MAX_NAME + 1];    /* Tether-Service */
    char client[TT_MAX_ADDR];         /* the visitor's "IP:PORT" (vouched for when trusted) */
    char typed_user[TT_MAX_NAME + 1]; /* a Basic user, for the audit line of a refusal */
    bool trusted;
    /* the lookup of a device not online here (mode.h): while it runs, the request (its
     * credentials point into hc) waits in rq; its answer, for decide() */
    struct tt_visitor_request *rq;
    bool looking;
    bool *answered; /* while locate runs: set when the answer came at once */
    bool have_where;
    struct tt_where where;
    struct tt_principal who; /* kind NONE: public access */
    /* the bridge */
    struct tt_wsconn *vws; /* the visitor's connection, until its on_close */
    struct tt_session *vsess;
    struct vend e[2];
    uv_idle_t idle;
    bool idle_on;    /* idle initialized (closed with the visitor) */
    bool freeing;    /* the idle handle is closing */
    bool vclosing;   /* tt_wsconn_close was called on vws */
    uint8_t kind;    /* of the service */
    int64_t started; /* unix ms */
    uint16_t goaway; /* what the visitor hears when the bridge ends badly */
    const char *why; /* ... and the reason */
    const char *outcome;
    struct tt_access_conn ac;
    struct tt_limits_stream ls;
};

static const struct tt_session_callbacks *bridge_callbacks(void);

static struct tt_visitor_set *set_of(struct tt_relay *r)
{
    if (!r->visitors)
        r->visitors = calloc(1, sizeof(*r->visitors));
    return r->visitors;
}

/* ---- the request ------------------------------------------------------------------------ */

bool tt_visitor_is_upgrade(const struct tt_headparse *hp)
{
    const uint8_t *v;
    size_t n;
    return tt_headparse_find(hp, "sec-websocket-protocol", &v, &n) > 0 &&
           tt_headparse_has_token(v, n, TT_WS_SUBPROTOCOL_CONNECT);
}

/* The only value of header name, blanks trimmed; NULL when absent or repeated. */
static const uint8_t *one_value(const struct tt_headparse *hp, const char *name, size_t *n)
{
    const uint8_t *v;
    if (tt_headparse_find(hp, name, &v, n) != 1)
        return NULL;
    while (*n > 0 && (v[0] == ' ' || v[0] == '\t'))
        v++, (*n)--;
    while (*n > 0 && (v[*n - 1] == ' ' || v[*n - 1] == '\t'))
        (*n)--;
    return v;
}

/* A device or service name: 1..64 printable ASCII bytes without spaces (what the agent takes). */
static bool copy_name(char out[TT_MAX_NAME + 1], const uint8_t *v, size_t n)
{
    if (!v || n < 1 || n > TT_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] <= 0x20 || v[i] >= 0x7f)
            return false;
    memcpy(out, v, n);
    out[n] = '\0';
    return true;
}

static const char *status_text(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    default:
        return "Service Unavailable";
    }
}

static void count_refusal(struct tt_relay *r, int status)
{
    struct tt_visitor_set *vs = set_of(r);
    enum tt_visitor_refusal k;
    if (!vs)
        return;
    switch (status) {
    case 401:
        k = TT_VISITOR_REFUSED_401;
        break;
    case 403:
        k = TT_VISITOR_REFUSED_403;
        break;
    case 404:
        k = TT_VISITOR_REFUSED_404;
        break;
    case 429:
        k = TT_VISITOR_REFUSED_429;
        break;
    case 503:
        k = TT_VISITOR_REFUSED_503;
        break;
    default:
        k = TT_VISITOR_REFUSED_400;
        break;
    }
    vs->refused[k]++;
}

/* Answers hc with status and a one-line text body (printf-style), and closes it. A 401 says
 * how to authenticate; a 426 which version to speak. */
static void refuse_hc(struct tt_relay *r, struct tt_headconn *hc, int status, const char *fmt, ...)
    TT_PRINTF(4, 5);

static void refuse_hc(struct tt_relay *r, struct tt_headconn *hc, int status, const char *fmt, ...)
{
    char body[512], out[1024];
    va_list ap;
    va_start(ap, fmt);
    int bn = vsnprintf(body, sizeof(body) - 1, fmt, ap);
    va_end(ap);
    if (bn < 0)
        bn = 0;
    if ((size_t)bn > sizeof(body) - 2)
        bn = (int)sizeof(body) - 2;
    body[bn++] = '\n';
    body[bn] = '\0';
    const char *extra = status == 401   ? "WWW-Authenticate: Basic realm=\"tether\", "
                                          "charset=\"UTF-8\"\r\nWWW-Authenticate: Bearer "
                                          "realm=\"tether\"\r\n"
                        : status == 426 ? "Sec-WebSocket-Version: 13\r\n"
                        : status == 429 ? "Retry-After: 60\r\n"
                                        : "";
    int n = snprintf(out, sizeof(out),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %d\r\nCache-Control: no-store\r\n%sConnection: close\r\n\r\n"
                     "%s",
                     status, status_text(status), bn, extra, body);
    count_refusal(r, status);
    TT_LOG(TT_LOG_DEBUG, "tether connect refused peer=%s:%u status=%d: %.*s", hc->peer_ip,
           (unsigned)hc->peer_port, status, bn - 1, body);
    hc->on_drop = NULL;
    tt_headconn_respond(hc, out, n > 0 && (size_t)n < sizeof(out) ? (size_t)n : 0);
}

/* The kind of service svc of device, when this node knows the device ("tcp" otherwise: what a
 * tether connect stream is). */
static const char *kind_of(struct tt_relay *r, const char *device, const char *svc)
{
    struct tt_device *d = tt_strmap_get(&r->by_name, device);
    for (uint8_t i = 0; d && i < d->nsvc; i++)
        if (strcmp(d->svc[i].name, svc) == 0)
            return d->svc[i].kind == TT_SERVICE_HTTP ? "http" : "tcp";
    return "tcp";
}

/* The audit line of a refused upgrade (outcome "refused" or "offline"). */
static void audit_refusal(struct tt_visitor *v, const char *outcome)
{
    struct tt_relay *r = v->r;
    if (!tt_audit_on(&r->audit))
        return;
    struct tt_audit_conn a;
    memset(&a, 0, sizeof(a));
    a.device = v->device;
    a.service = v->service;
    a.kind = kind_of(r, v->device, v->service);
    a.user = v->who.kind != TT_PRINCIPAL_NONE ? v->who.user
             : v->typed_user[0]               ? v->typed_user
                                              : NULL;
    a.client = v->client;
    a.outcome = outcome;
    tt_audit_connection(&r->audit, &a, tt_relay_now_ms());
}

static void free_pending(struct tt_visitor *v)
{
    if (v->looking)
        v->r->mode->cancel(v->r, v);
    if (v->rq) {
        tt_visitor_request_wipe(v->rq);
        free(v->rq);
    }
    tt_access_verify_cancel(v->check);
    OPENSSL_cleanse(v->typed_user, sizeof(v->typed_user));
    free(v);
}

/* Refuses the upgrade v holds (audit line, answer) and frees v. */
static void refuse(struct tt_visitor *v, int status, const char *outcome, const char *fmt, ...)
    TT_PRINTF(4, 5);

static void refuse(struct tt_visitor *v, int status, const char *outcome, const char *fmt, ...)
{
    char body[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    audit_refusal(v, outcome);
    refuse_hc(v->r, v->hc, status, "%s", body);
    v->hc = NULL;
    free_pending(v);
}

/* The visitor's address: the peer's, or the one another node vouches for. */
static void client_of(struct tt_headconn *hc, bool trusted, char out[TT_MAX_ADDR])
{
    size_t n;
    /* only another node is trusted (mode.h) */
    const uint8_t *v = trusted ? one_value(&hc->hp, TT_CLUSTER_HDR_CLIENT, &n) : NULL;
    if (v && n > 0 && n < TT_MAX_ADDR) {
        memcpy(out, v, n);
        out[n] = '\0';
        return;
    }
    if (strchr(hc->peer_ip, ':'))
        snprintf(out, TT_MAX_ADDR, "[%s]:%u", hc->peer_ip, (unsigned)hc->peer_port);
    else
        snprintf(out, TT_MAX_ADDR, "%s:%u", hc->peer_ip, (unsigned)hc->peer_port);
}

/* Where the device named v->device is. */
enum where { W_UNKNOWN, W_OFFLINE, W_BUSY, W_LOCAL, W_REMOTE };

/* The mode's answer, when it comes at once (mode.h). */
struct where_now {
    bool done;
    struct tt_where a;
};

static void where_now_cb(const struct tt_where *a, bool timed_out, void *ud)
{
    struct where_now *w = ud;
    w->done = true;
    w->a = *a;
    if (timed_out)
        w->a.kind = TT_WHERE_BUSY;
}

/* Where v's device is: online here, or what the lookup made before the credentials were
 * checked said, or what the mode answers at once (the single relay always does; a cluster node
 * asked now would have to wait: "cannot be reached now"). */
static enum where locate(struct tt_visitor *v, struct tt_device **dp, char host[TT_HOSTLEN],
                         uint16_t *port)
{
    struct tt_relay *r = v->r;
    struct tt_device *d = tt_strmap_get(&r->by_name, v->device);
    *dp = d;
    if (d && tt_device_online(d))
        return W_LOCAL;
    struct where_now w;
    memset(&w, 0, sizeof(w));
    if (v->have_where) {
        w.done = true;
        w.a = v->where;
    } else if (v->trusted || r->mode->locate(r, v->device, true, where_now_cb, &w) != 0 ||
               !w.done) {
        if (!w.done && !v->trusted)
            r->mode->cancel(r, &w);
        return W_BUSY;
    }
    switch (w.a.kind) {
    case TT_WHERE_REMOTE:
        snprintf(host, TT_HOSTLEN, "%s", w.a.host);
        *port = w.a.port;
        return W_REMOTE;
    case TT_WHERE_OFFLINE:
        return W_OFFLINE;
    case TT_WHERE_BUSY:
        return W_BUSY;
    default:
        return W_UNKNOWN;
    }
}

/* ---- the cluster hop -------------------------------------------------------------------- */

static bool internal_header(const uint8_t *base, const struct tt_head_hdr *h)
{
    static const char *const names[] = {TT_CLUSTER_HDR_SECRET, TT_CLUSTER_HDR_CLIENT,
                                        TT_CLUSTER_HDR_PROTO};
    for (size_t i = 0; i < 3; i++)
        if (h->flen == strlen(names[i]) &&
            strncasecmp((const char *)base + h->foff, names[i], h->flen) == 0)
            return true;
    return false;
}

/* Passes the upgrade (its head, internal headers replaced by ours, and what followed) to the
 * node at host:port, which answers it; the two connections are then joined byte for byte. */
static void forward(struct tt_visitor *v, const char *host, uint16_t port)
{
    struct tt_headconn *hc = v->hc;
    const struct tt_headparse *hp = &hc->hp;
    struct tt_cluster *c = v->r->cluster;
    size_t rest = hc->len - hc->headlen;
    size_t cap = hc->len + 4 * ((size_t)hp->nhdr + 1) + TT_CLUSTER_SECRET_LEN + 256;
    uint8_t *o = hp->line_len ? malloc(cap) : NULL;
    size_t n = 0;
    if (!o) {
        refuse(v, 503, "refused", "the relay cannot serve this now (out of memory)");
        return;
    }
#define PUT(p, len)                                                                                \
    do {                                                                                           \
        if ((len) <= cap - n) {                                                                    \
            memcpy(o + n, (p), (len));                                                             \
            n += (len);                                                                            \
        }                                                                                          \
    } while (0)
    PUT(hc->data + hp->line_off, hp->line_len);
    PUT("\r\n", 2);
    for (uint32_t i = 0; i < hp->nhdr; i++) {
        const struct tt_head_hdr *h = &hp->hdr[i];
        if (internal_header(hc->data, h))
            continue;
        PUT(hc->data + h->foff, h->flen);
        PUT(": ", 2);
        PUT(hc->data + h->voff, h->vlen);
        PUT("\r\n", 2);
    }
    char extra[TT_CLUSTER_SECRET_LEN + TT_MAX_ADDR + 128];
    int en = snprintf(extra, sizeof(extra), "%s: %s\r\n%s: %s\r\n%s: %s\r\n\r\n",
                      TT_CLUSTER_HDR_SECRET, c->secret, TT_CLUSTER_HDR_CLIENT, v->client,
                      TT_CLUSTER_HDR_PROTO, hc->conn->tls ? "https" : "http");
    if (en > 0 && (size_t)en < sizeof(extra))
        PUT(extra, (size_t)en);
    PUT(hc->data + hc->headlen, rest);
#undef PUT
    OPENSSL_cleanse(extra, sizeof(extra));
    if (set_of(v->r))
        set_of(v->r)->forwarded++;
    TT_LOG(TT_LOG_DEBUG, "tether connect forwarded peer=%s device=%s to=%s:%u", v->client,
           TT_LOG_V(v->device), host, (unsigned)port);
    /* a peer node that cannot be reached answers 502 and this node writes the audit line
     * (peerlink.h): its fields copied, as v goes with free_pending */
    char device[TT_MAX_NAME + 1], service[TT_MAX_NAME + 1], client[TT_MAX_ADDR];
    struct tt_principal who = v->who;
    snprintf(device, sizeof(device), "%s", v->device);
    snprintf(service, sizeof(service), "%s", v->service);
    snprintf(client, sizeof(client), "%s", v->client);
    struct tt_peerlink_audit audit = {
        .r = v->r,
        .device = device,
        .service = service,
        .kind = kind_of(v->r, device, service),
        .client = client,
        .who = who.kind != TT_PRINCIPAL_NONE ? &who : NULL,
        .text = true,
    };
    hc->on_drop = NULL;
    struct tt_conn *conn = tt_headconn_take(hc);
    tt_headconn_free(hc);
    v->hc = NULL;
    free_pending(v);
    tt_peerlink_start(c->r->loop, conn, host, port, o, n, true, &audit);
}

/* ---- the bridge ------------------------------------------------------------------------- */

static struct tt_visitor *of_owner(void *user)
{
    return (struct tt_visitor *)user; /* owner is the first member */
}

static int end_index(const struct tt_visitor *v, const struct tt_session *s)
{
    return s == v->vsess ? V_VISITOR : V_DEVICE;
}

static void on_idle(uv_idle_t *h);

static void schedule(struct tt_visitor *v)
{
    if (v->idle_on && !v->freeing && !uv_is_active((uv_handle_t *)&v->idle))
        uv_idle_start(&v->idle, on_idle);
}

/* The stream on end i has ended (broken: not by FIN both ways). */
static void end_stream(struct tt_visitor *v, int i, bool broken, uint16_t code)
{
    struct vend *a = &v->e[i];
    if (a->done)
        return;
    a->done = true;
    a->broken = broken;
    a->code = code;
    if (a->ws)
        tt_wsconn_cancel_wait(a->ws, &a->writable);
    a->ws = NULL;
    schedule(v);
}

/* Credits n bytes back on end a (its peer may send them again). */
static void credit(struct tt_visitor *v, struct vend *a, size_t n)
{
    a->bytes += n;
    struct tt_visitor_set *vs = v->r->visitors;
    if (vs) {
        if (a == &v->e[V_VISITOR])
            vs->bytes_in += n;
        else
            vs->bytes_out += n;
    }
    if (a->ws && n > 0)
        tt_wsconn_consume(a->ws, a->id, n);
}

/* End i's peer keeps up (its data went on at once and the other end took all of it): its window
 * grows, doubling, within TT_VISITOR_EXTRA_MAX and the relay's budget. */
static void grow(struct tt_visitor *v, struct vend *a)
{
    struct tt_visitor_set *vs = v->r->visitors;
    if (!a->ws || !vs || a->extra >= TT_VISITOR_EXTRA_MAX ||
        vs->extra_in_use >= TT_VISITOR_EXTRA_BUDGET)
        return;
    size_t want = TT_VISITOR_EXTRA_MAX - a->extra;
    if (want > TT_VISITOR_EXTRA_BUDGET - vs->extra_in_use)
        want = TT_VISITOR_EXTRA_BUDGET - vs->extra_in_use;
    uint32_t got = tt_wsconn_grow_window(a->ws, a->id, (uint32_t)want);
    a->extra += got;
    vs->extra_in_use += got;
}

/* Passes what end i holds to the other end, within its window and while its connection takes
 * more; then end i's FIN once everything before it went. */
static void pump(struct tt_visitor *v, int i)
{
    struct vend *a = &v->e[i], *b = &v->e[!i];
    if (b->done || b->fin_out) {
        /* nowhere to go (the other end is reset: this one will be too) */
        if (a->q.bytes > 0 && a->ws)
            tt_wsconn_consume(a->ws, a->id, a->q.bytes);
        tt_chunkq_clear(&a->q);
        return;
    }
    while (a->q.bytes > 0) {
        if (!tt_wsconn_writable(b->ws)) {
            tt_wsconn_wait_writable(b->ws, &b->writable);
            return;
        }
        struct tt_chunk *h = a->q.head;
        size_t n = h->len - h->off;
        tt_ssize r = tt_wsconn_send_data(b->ws, b->id, h->data + h->off, n, false);
        if (r <= 0)
            return; /* window shut (on_window follows), or closing (on_stream_close follows) */
        tt_chunkq_consume(&a->q, (size_t)r);
        credit(v, a, (size_t)r);
        if ((size_t)r < n)
            return;
    }
    if (a->fin_in) {
        tt_ssize r = tt_wsconn_send_data(b->ws, b->id, NULL, 0, true);
        if (r >= 0) {
            b->fin_out = true;
            if (b->fin_in) /* our FIN completed the stream: no on_stream_close */
                end_stream(v, !i, false, 0);
        }
    }
}

static void close_visitor(struct tt_visitor *v, uint16_t goaway, const char *why)
{
    if (!v->vws || v->vclosing)
        return;
    v->vclosing = true;
    tt_wsconn_close(v->vws, goaway, tt_wsconn_close_code(goaway), 0, why);
}

static void on_idle_closed(uv_handle_t *h);

/* The visitor's connection is gone and the device stream has ended: the audit line, then v
 * goes (after its idle handle). */
static void finish(struct tt_visitor *v)
{
    struct tt_relay *r = v->r;
    struct tt_visitor_set *vs = r->visitors;
    if (v->freeing)
        return;
    v->freeing = true;
    tt_access_untrack(&r->access, &v->ac);
    tt_limits_stream_give(&r->limits, &v->ls);
    if (vs) {
        vs->extra_in_use -= v->e[0].extra + v->e[1].extra;
        if (v->prev)
            v->prev->next = v->next;
        else
            vs->list = v->next;
        if (v->next)
            v->next->prev = v->prev;
        vs->open--;
    }
    int64_t now = tt_relay_now_ms();
    if (tt_audit_on(&r->audit)) {
        struct tt_audit_conn a;
        memset(&a, 0, sizeof(a));
        a.device = v->device;
        a.service = v->service;
        a.kind = v->kind == TT_SERVICE_HTTP ? "http" : "tcp";
        a.user = v->who.kind != TT_PRINCIPAL_NONE ? v->who.user : NULL;
        a.client = v->client;
        a.bytes_in = v->e[V_VISITOR].bytes;
        a.bytes_out = v->e[V_DEVICE].bytes;
        a.duration_ms = now - v->started;
        a.outcome = v->outcome;
        tt_audit_connection(&r->audit, &a, now);
    }
    TT_LOG(TT_LOG_INFO,
           "tether connect ended device=%s service=%s user=%s peer=%s in=%llu out=%llu "
           "outcome=%s",
           TT_LOG_V(v->device), TT_LOG_V(v->service),
           v->who.kind != TT_PRINCIPAL_NONE ? TT_LOG_V(v->who.user) : "-", v->client,
           (unsigned long long)v->e[V_VISITOR].bytes, (unsigned long long)v->e[V_DEVICE].bytes,
           v->outcome);
    tt_chunkq_clear(&v->e[0].q);
    tt_chunkq_clear(&v->e[1].q);
    uv_close((uv_handle_t *)&v->idle, on_idle_closed);
}

static void on_idle_closed(uv_handle_t *h)
{
    struct tt_visitor *v = h->data;
    free(v);
}

/* Everything the bridge does outside the sessions' callbacks. */
static void run(struct tt_visitor *v)
{
    struct vend *ve = &v->e[V_VISITOR], *de = &v->e[V_DEVICE];
    /* a broken end breaks the other: its RESET code passes on */
    if (de->done && de->broken && !ve->done && v->vws) {
        tt_wsconn_reset_stream(v->vws, ve->id, de->code);
        end_stream(v, V_VISITOR, true, de->code);
    }
    if (ve->done && ve->broken && !de->done && de->ws) {
        tt_wsconn_reset_stream(de->ws, de->id, ve->code);
        end_stream(v, V_DEVICE, true, ve->code);
    }
    if (!ve->done)
        pump(v, V_DEVICE); /* the device's bytes to the visitor */
    if (!de->done)
        pump(v, V_VISITOR); /* the visitor's bytes to the device */
    if (ve->done) {
        close_visitor(v, de->broken ? v->goaway : TT_GOAWAY_NORMAL,
                      de->broken ? v->why : "stream over");
    }
    if (!v->vws && de->done)
        finish(v);
}

static void on_idle(uv_idle_t *h)
{
    struct tt_visitor *v = h->data;
    uv_idle_stop(h);
    if (!v->freeing)
        run(v);
}

/* The connection of an end took its queue down: the other end's bytes may go on. */
static void on_writable(struct tt_wsconn_waiter *w)
{
    struct vend *a = (struct vend *)(void *)((char *)w - offsetof(struct vend, writable));
    schedule(a->v);
}

/* ---- session callbacks (both ends) ------------------------------------------------------ */

static int bridge_on_data(struct tt_session *s, struct tt_stream *st, const uint8_t *data,
                          size_t len, void *ud)
{
    struct tt_visitor *v = of_owner(st->user);
    int i = end_index(v, s);
    struct vend *a = &v->e[i], *b = &v->e[!i];
    size_t sent = 0;
    (void)ud;
    if (b->done || b->fin_out || v->freeing) {
        tt_session_consume(s, st->id, len); /* nowhere to go: drop and credit */
        return 0;
    }
    if (a->q.bytes == 0 && tt_wsconn_writable(b->ws)) {
        tt_ssize r = tt_wsconn_send_data(b->ws, b->id, data, len, false);
        if (r > 0)
            sent = (size_t)r;
    }
    if (sent > 0)
        credit(v, a, sent);
    if (sent == len) {
        grow(v, a);
        return 0;
    }
    if (tt_chunkq_append(&a->q, data + sent, len - sent) != 0) {
        /* cannot happen within the window (the session enforces it) but out of memory */
        tt_session_consume(s, st->id, len - sent);
        end_stream(v, i, true, TT_RESET_CANCEL);
        return 0;
    }
    if (!tt_wsconn_writable(b->ws))
        tt_wsconn_wait_writable(b->ws, &b->writable);
    return 0;
}

static int bridge_on_fin(struct tt_session *s, struct tt_stream *st, void *ud)
{
    struct tt_visitor *v = of_owner(st->user);
    (void)ud;
    TT_LOG(TT_LOG_DEBUG, "tether connect: FIN from the %s peer=%s",
           end_index(v, s) == V_VISITOR ? "visitor" : "device", v->client);
    v->e[end_index(v, s)].fin_in = true;
    schedule(v);
    return 0;
}

static int bridge_on_reset(struct tt_session *s, struct tt_stream *st, const struct tt_coded *m,
                           void *ud)
{
    struct tt_visitor *v = of_owner(st->user);
    (void)ud;
    v->e[end_index(v, s)].code = m->code;
    return 0;
}

static int bridge_on_window(struct tt_session *s, struct tt_stream *st, void *ud)
{
    struct tt_visitor *v = of_owner(st->user);
    (void)s;
    (void)ud;
    schedule(v); /* sending from here could end the stream inside the session's callback */
    return 0;
}

static void bridge_on_stream_close(struct tt_session *s, struct tt_stream *st, void *ud)
{
    struct tt_visitor *v = of_owner(st->user);
    int i = end_index(v, s);
    struct vend *a = &v->e[i];
    (void)ud;
    st->user = NULL;
    bool normal = a->fin_in && a->fin_out;
    if (!normal && i == V_DEVICE && v->why == NULL) {
        /* the device's side failed (its service refused or reset, or the device went away):
         * an error, unlike a visitor that leaves abruptly */
        v->goaway = TT_GOAWAY_NORMAL;
        v->why = a->code == TT_RESET_REFUSED ? "the device's service refused the connection"
                 : a->code == TT_RESET_CANCEL && !v->e[V_DEVICE].fin_in
                     ? "the device ended the connection"
                     : "the device reset the connection";
        if (strcmp(v->outcome, "ok") == 0)
            v->outcome = "error";
    }
    end_stream(v, i, !normal, a->code);
}

static int visitor_on_goaway(struct tt_session *s, const struct tt_coded *m, void *ud)
{
    struct tt_visitor *v = ud;
    (void)s;
    (void)m;
    /* the visitor leaves; its stream closes right after this (on_stream_close) */
    close_visitor(v, TT_GOAWAY_NORMAL, "visitor going away");
    return 0;
}

/* The device stream's callbacks come through the device wsconn's pipe callbacks (owner.cb);
 * the visitor's wsconn has these as its own. */
static const struct tt_session_callbacks *bridge_callbacks(void)
{
    static const struct tt_session_callbacks cb = {
        .on_data = bridge_on_data,
        .on_fin = bridge_on_fin,
        .on_reset = bridge_on_reset,
        .on_window = bridge_on_window,
        .on_stream_close = bridge_on_stream_close,
    };
    return &cb;
}

static const struct tt_session_callbacks *visitor_session_callbacks(void)
{
    static struct tt_session_callbacks cb;
    static bool ready;
    if (!ready) {
        cb = *bridge_callbacks();
        cb.on_goaway = visitor_on_goaway;
        ready = true;
    }
    return &cb;
}

static void visitor_on_close(struct tt_wsconn *c, int err, const char *reason, void *ud)
{
    struct tt_visitor *v = ud;
    (void)c;
    TT_LOG(TT_LOG_DEBUG, "tether connect closed peer=%s err=%s reason=\"%s\"", v->client,
           tether_err_name(err), TT_LOG_E(reason));
    v->vws = NULL;
    v->vsess = NULL;
    /* the stream had its on_stream_close already; nothing was waiting on a gone wsconn */
    end_stream(v, V_VISITOR, true, TT_RESET_CANCEL);
    if (v->freeing)
        return;
    run(v);
}

static const struct tt_wsconn_callbacks visitor_conn_cb = {.on_close = visitor_on_close};

/* Revoked (access.h): both sides close at once. */
static void on_revoke(struct tt_access_conn *c, void *ud)
{
    struct tt_visitor *v = ud;
    (void)c;
    if (v->r->visitors)
        v->r->visitors->revoked++;
    v->outcome = "refused";
    if (!v->e[V_DEVICE].done && v->e[V_DEVICE].ws) {
        tt_wsconn_reset_stream(v->e[V_DEVICE].ws, v->e[V_DEVICE].id, TT_RESET_CANCEL);
        end_stream(v, V_DEVICE, true, TT_RESET_CANCEL);
    }
    v->e[V_VISITOR].done = true; /* the GOAWAY ends it */
    if (v->vws)
        tt_wsconn_cancel_wait(v->vws, &v->e[V_VISITOR].writable);
    v->e[V_VISITOR].ws = NULL;
    close_visitor(v, TT_GOAWAY_REVOKED, "access revoked");
    schedule(v);
}

/* ---- accepting -------------------------------------------------------------------------- */

static bool both_kinds(const struct tt_device *d)
{
    bool http = false, tcp = false;
    for (uint8_t i = 0; i < d->nsvc; i++) {
        http |= d->svc[i].kind == TT_SERVICE_HTTP;
        tcp |= d->svc[i].kind == TT_SERVICE_TCP;
    }
    return http && tcp;
}

struct hs_write {
    uv_write_t req;
    char data[512];
};

static void on_hs_written(uv_write_t *req, int status)
{
    (void)status; /* a failed write shows up on the wsconn as well */
    free(req->data);
}

/* Everything checked: the device stream, the 101 and the bridge. */
static void accept_visitor(struct tt_visitor *v, struct tt_device *d, int svc)
{
    struct tt_relay *r = v->r;
    struct tt_headconn *hc = v->hc;
    struct tt_visitor_set *vs = set_of(r);
    struct tt_wsconn *dws = d->conn->ws;
    uint8_t buf[TT_FRAME_HEADER_LEN + 8 + TT_MAX_ADDR];
    uint32_t id = 0;

    if (!vs) {
        refuse(v, 503, "refused", "the relay cannot serve this now (out of memory)");
        return;
    }
    v->kind = d->svc[svc].kind;
    int why = tt_limits_stream_take(&r->limits, &v->ls, d->name, v->kind, both_kinds(d), v->client);
    if (why != TT_LIMITS_OK) {
        refuse(v, 503, "refused", "device busy: %s/%s has too many connections%s", v->device,
               v->service, why == TT_LIMITS_REFUSED_CLIENT ? " from this address" : "");
        return;
    }
    v->owner.cb = bridge_callbacks();
    tt_ssize n = tt_session_open(tt_wsconn_session(dws), (uint8_t)svc, v->client, &v->owner, &id,
                                 buf, sizeof(buf));
    if (n < 0 || tt_wsconn_send_frame(dws, buf, (size_t)n) != 0) {
        if (n >= 0)
            tt_wsconn_reset_stream(dws, id, TT_RESET_CANCEL);
        else if (n == TETHER_ERR_STREAM_LIMIT)
            r->limits.refused[TT_LIMITS_REFUSED_DEVICE]++;
        tt_limits_stream_give(&r->limits, &v->ls);
        refuse(v, 503, "refused", "device busy: %s cannot take another connection now", v->device);
        return;
    }
    d->streams++;
    d->last_seen = tt_relay_now_ms();

    /* the 101 */
    const uint8_t *key;
    size_t keylen;
    struct hs_write *w = malloc(sizeof(*w));
    key = one_value(&hc->hp, "sec-websocket-key", &keylen);
    int hn = w && key ? tt_wshs_server_response_ex(w->data, sizeof(w->data), (const char *)key,
                                                   keylen, TT_WS_SUBPROTOCOL_CONNECT)
                      : -1;
    if (hn <= 0) {
        free(w);
        tt_wsconn_reset_stream(dws, id, TT_RESET_CANCEL);
        tt_limits_stream_give(&r->limits, &v->ls);
        refuse(v, 503, "refused", "the relay cannot serve this now (out of memory)");
        return;
    }
    hc->on_drop = NULL;
    struct tt_conn *conn = tt_headconn_take(hc);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)hn);
    w->req.data = w;
    struct tt_wsconn_config wc;
    memset(&wc, 0, sizeof(wc));
    wc.client = false;
    wc.session.role = TT_ROLE_VISITOR;
    wc.session.window = TT_VISITOR_WINDOW; /* fixed by the protocol */
    wc.session.max_streams = 1;
    wc.session_cb = visitor_session_callbacks();
    wc.ping_interval_ms = TT_VISITOR_PING_MS;
    wc.ping_timeout_ms = TT_VISITOR_TIMEOUT_MS;
    int rc = tt_conn_write(conn, &w->req, &b, 1, on_hs_written);
    if (rc != 0)
        free(w);
    if (rc != 0 || tt_wsconn_new(&v->vws, r->loop, conn, hc->data + hc->headlen,
                                 hc->len - hc->headlen, &wc, &visitor_conn_cb, v) != 0) {
        tt_respond_drop(conn);
        tt_headconn_free(hc);
        v->hc = NULL;
        tt_wsconn_reset_stream(dws, id, TT_RESET_CANCEL);
        tt_limits_stream_give(&r->limits, &v->ls);
        count_refusal(r, 503);
        free_pending(v);
        return;
    }
    tt_headconn_free(hc);
    v->hc = NULL;
    v->check = NULL;
    OPENSSL_cleanse(v->typed_user, sizeof(v->typed_user));
    v->vsess = tt_wsconn_session(v->vws);
    (void)tt_session_set_user(v->vsess, TT_VISITOR_STREAM, &v->owner);
    v->e[V_VISITOR].ws = v->vws;
    v->e[V_VISITOR].id = TT_VISITOR_STREAM;
    v->e[V_DEVICE].ws = dws;
    v->e[V_DEVICE].id = id;
    for (int i = 0; i < 2; i++) {
        v->e[i].v = v;
        v->e[i].writable.cb = on_writable;
        tt_chunkq_init(&v->e[i].q, (size_t)tt_wsconn_window(v->e[i].ws) + TT_VISITOR_EXTRA_MAX);
    }
    uv_idle_init(r->loop, &v->idle);
    v->idle.data = v;
    v->idle_on = true;
    v->started = tt_relay_now_ms();
    v->outcome = "ok";
    v->goaway = TT_GOAWAY_NORMAL;
    v->ac.who = v->who;
    snprintf(v->ac.device, sizeof(v->ac.device), "%s", v->device);
    snprintf(v->ac.service, sizeof(v->ac.service), "%s", v->service);
    v->ac.revoke = on_revoke;
    v->ac.ud = v;
    tt_access_track(&r->access, &v->ac);
    v->next = vs->list;
    if (vs->list)
        vs->list->prev = v;
    vs->list = v;
    vs->open++;
    vs->accepted++;
    TT_LOG(TT_LOG_INFO, "tether connect device=%s service=%s user=%s peer=%s stream=%u",
           TT_LOG_V(v->device), TT_LOG_V(v->service),
           v->who.kind != TT_PRINCIPAL_NONE ? TT_LOG_V(v->who.user) : "-", v->client, (unsigned)id);
}

/* The principal is known (or none is needed): may it reach the target, and is it there? */
static void decide(struct tt_visitor *v)
{
    struct tt_relay *r = v->r;
    struct tt_device *d;
    char host[TT_HOSTLEN];
    uint16_t port = 0;

    if (r->stopping) {
        refuse(v, 503, "refused", "the relay is shutting down");
        return;
    }
    if (!tt_access_allows(&r->access, v->who.kind ? &v->who : NULL, v->device, v->service,
                          tt_relay_now_ms())) {
        if (v->who.kind == TT_PRINCIPAL_NONE)
            refuse(v, 401, "refused", "authentication required for %s/%s", v->device, v->service);
        else
            refuse(v, 403, "refused", "access denied: no grant of %s covers %s/%s", v->who.user,
                   v->device, v->service);
        return;
    }
    switch (locate(v, &d, host, &port)) {
    case W_UNKNOWN:
        refuse(v, 404, "refused", "not found: no device named %s", v->device);
        return;
    case W_OFFLINE:
        refuse(v, 503, "offline", "device offline: %s", v->device);
        return;
    case W_BUSY:
        refuse(v, 503, "offline", "device unavailable: %s cannot be reached now", v->device);
        return;
    case W_REMOTE:
        if (!v->trusted) {
            forward(v, host, port);
            return;
        }
        /* another node sent it here, and it is not here (any more): never passed on again */
        refuse(v, 503, "offline", "device unavailable: %s cannot be reached now", v->device);
        return;
    case W_LOCAL:
        break;
    }
    for (uint8_t i = 0; i < d->nsvc; i++) {
        if (strcmp(d->svc[i].name, v->service) == 0) {
            accept_visitor(v, d, i);
            return;
        }
    }
    refuse(v, 404, "refused", "not found: device %s has no service named %s", v->device,
           v->service);
}

static void on_checked(void *ud, int rc, const struct tt_principal *who)
{
    struct tt_visitor *v = ud;
    v->check = NULL;
    if (rc == 0 && who) {
        v->who = *who;
        decide(v);
    } else if (rc == TETHER_ERR_THROTTLED) {
        refuse(v, 429, "refused", "too many failed attempts from this address, retry later");
    } else if (rc == TETHER_ERR_AGAIN) {
        refuse(v, 503, "refused", "the relay is busy checking secrets, retry later");
    } else {
        refuse(v, 401, "refused", "authentication failed: wrong user or secret");
    }
}

/* The answer to a bearer token that waited for a read of the cluster's grants. */
static void on_token_checked(void *ud, int rc, const struct tt_principal *who)
{
    struct tt_visitor *v = ud;
    v->check = NULL;
    if (rc == 0 && who) {
        v->who = *who;
        decide(v);
    } else {
        refuse(v, 401, "refused", "authentication failed: unknown or expired grant");
    }
}

/* hc went without us (its deadline, a shed, the relay closing) while the check ran. */
static void on_hc_drop(struct tt_headconn *hc, void *ud)
{
    struct tt_visitor *v = ud;
    (void)hc;
    v->hc = NULL;
    free_pending(v);
}

/* Base64 of "user:secret" into user and secret (1..TT_USERS_SECRET_MAX bytes). */
static bool basic_credentials(const uint8_t *b64, size_t n, char user[TT_MAX_NAME + 1],
                              uint8_t *secret, size_t *slen)
{
    unsigned char dec[TT_VISITOR_AUTH_MAX];
    if (n == 0 || n % 4 != 0 || n > sizeof(dec) - 1)
        return false;
    char in[TT_VISITOR_AUTH_MAX + 1];
    memcpy(in, b64, n);
    in[n] = '\0';
    int len = EVP_DecodeBlock(dec, (const unsigned char *)in, (int)n);
    OPENSSL_cleanse(in, sizeof(in));
    if (len < 0)
        return false;
    if (b64[n - 1] == '=')
        len--;
    if (b64[n - 2] == '=')
        len--;
    const unsigned char *colon = memchr(dec, ':', (size_t)len);
    bool ok = false;
    if (colon) {
        size_t ul = (size_t)(colon - dec), sl = (size_t)len - ul - 1;
        if (ul >= 1 && ul <= TT_MAX_NAME && sl >= 1 && sl <= TT_USERS_SECRET_MAX &&
            !memchr(dec, '\0', ul)) {
            memcpy(user, dec, ul);
            user[ul] = '\0';
            memcpy(secret, colon + 1, sl);
            *slen = sl;
            ok = true;
        }
    }
    OPENSSL_cleanse(dec, sizeof(dec));
    return ok;
}

int tt_visitor_parse(const struct tt_headparse *hp, struct tt_visitor_request *rq)
{
    size_t dn = 0, sn = 0, an = 0;
    const uint8_t *dv = one_value(hp, "tether-device", &dn);
    const uint8_t *sv = one_value(hp, "tether-service", &sn);
    const uint8_t *raw, *av;
    size_t rn;

    memset(rq, 0, sizeof(*rq));
    if (!copy_name(rq->device, dv, dn) || !copy_name(rq->service, sv, sn))
        return TETHER_ERR_HTTP;
    unsigned nauth = tt_headparse_find(hp, "authorization", &raw, &rn);
    if (nauth == 0)
        return 0; /* TT_VISITOR_AUTH_NONE */
    av = one_value(hp, "authorization", &an);
    rq->auth = TT_VISITOR_AUTH_BAD;
    if (nauth > 1 || !av || an > TT_VISITOR_AUTH_MAX)
        return 0;
    if (an > 7 && strncasecmp((const char *)av, "bearer ", 7) == 0) {
        const uint8_t *tok = av + 7;
        size_t tn = an - 7;
        while (tn > 0 && *tok == ' ')
            tok++, tn--;
        if (tn > 0) {
            rq->auth = TT_VISITOR_AUTH_BEARER;
            rq->token = tok;
            rq->token_len = tn;
        }
        return 0;
    }
    if (an > 6 && strncasecmp((const char *)av, "basic ", 6) == 0) {
        const uint8_t *b = av + 6;
        size_t bn = an - 6;
        while (bn > 0 && *b == ' ')
            b++, bn--;
        if (basic_credentials(b, bn, rq->user, rq->secret, &rq->secret_len))
            rq->auth = TT_VISITOR_AUTH_BASIC;
    }
    return 0;
}

void tt_visitor_request_wipe(struct tt_visitor_request *rq)
{
    OPENSSL_cleanse(rq, sizeof(*rq));
}

/* Checks the credentials of the request (rq) and goes on to decide(), now or once a secret
 * check answers. */
static void authenticate(struct tt_visitor *v, struct tt_visitor_request *rq)
{
    struct tt_relay *r = v->r;
    struct tt_headconn *hc = v->hc;
    switch (rq->auth) {
    case TT_VISITOR_AUTH_NONE:
        decide(v); /* a public service, or 401 */
        break;
    case TT_VISITOR_AUTH_BEARER: {
        int rc = tt_access_verify_token_async(&r->access, rq->token, rq->token_len, v->client,
                                              tt_relay_now_ms(), &v->who, on_token_checked, v,
                                              &v->check);
        if (rc == TT_GRANTS_PENDING) {
            /* a token new to this node: the head connection stays ours, unread and
             * unauthenticated, until the read of the cluster's grants answers */
            tt_conn_read_stop(hc->conn);
            hc->on_drop = on_hc_drop;
            hc->drop_ud = v;
        } else if (rc == TETHER_ERR_THROTTLED)
            refuse(v, 429, "refused", "too many failed attempts from this address, retry later");
        else if (rc != 0)
            refuse(v, 401, "refused", "authentication failed: unknown or expired grant");
        else
            decide(v);
        break;
    }
    case TT_VISITOR_AUTH_BASIC: {
        memcpy(v->typed_user, rq->user, sizeof(v->typed_user));
        /* the head connection stays ours, unauthenticated (limits.h), until the answer */
        tt_conn_read_stop(hc->conn);
        hc->on_drop = on_hc_drop;
        hc->drop_ud = v;
        int rc = tt_access_verify(&r->access, rq->user, rq->secret, rq->secret_len, v->client,
                                  on_checked, v, &v->check);
        if (rc == TETHER_ERR_AGAIN)
            refuse(v, 503, "refused", "the relay is busy checking secrets, retry later");
        else if (rc != 0)
            refuse(v, 503, "refused", "the relay cannot serve this now (out of memory)");
        break;
    }
    default:
        refuse(v, 401, "refused",
               "authentication failed: malformed Authorization (use Basic or Bearer)");
        break;
    }
}

/* The mode's answer for a device not online here: passed to its node, or checked here (the
 * answer kept for decide()). Not answered in time: 503, as a holder out of reach. */
static void on_where(const struct tt_where *a, bool timed_out, void *ud)
{
    struct tt_visitor *v = ud;
    v->looking = false;
    if (v->answered)
        *v->answered = true;
    v->hc->on_drop = NULL;
    struct tt_visitor_request rq = *v->rq;
    tt_visitor_request_wipe(v->rq);
    free(v->rq);
    v->rq = NULL;
    if (timed_out) {
        tt_visitor_request_wipe(&rq);
        refuse(v, 503, "offline", "device unavailable: %s cannot be reached now", v->device);
        return;
    }
    if (a->kind == TT_WHERE_REMOTE) {
        tt_visitor_request_wipe(&rq);
        forward(v, a->host, a->port);
        return;
    }
    v->have_where = true;
    v->where = *a;
    authenticate(v, &rq);
    tt_visitor_request_wipe(&rq);
}

void tt_visitor_endpoint(struct tt_relay *r, struct tt_headconn *hc, bool trusted)
{
    struct tt_wshs_request ws;
    tt_wsrequest_fill(&hc->hp, &ws);
    int verdict;
    if (tt_wshs_check_request(&ws, &verdict) != 0) {
        refuse_hc(r, hc, verdict,
                  verdict == 426 ? "WebSocket version 13 is required"
                                 : "bad request: not a valid WebSocket upgrade");
        return;
    }
    struct tt_visitor_request rq;
    if (tt_visitor_parse(&hc->hp, &rq) != 0) {
        refuse_hc(r, hc, 400,
                  "bad request: name the target in one Tether-Device and one Tether-Service "
                  "header (1 to 64 printable characters, no spaces)");
        return;
    }
    struct tt_visitor *v = calloc(1, sizeof(*v));
    if (!v) {
        tt_visitor_request_wipe(&rq);
        refuse_hc(r, hc, 503, "the relay cannot serve this now (out of memory)");
        return;
    }
    v->r = r;
    v->hc = hc;
    v->trusted = trusted;
    client_of(hc, trusted, v->client);
    memcpy(v->device, rq.device, sizeof(v->device));
    memcpy(v->service, rq.service, sizeof(v->service));
    /* A device another node holds: that node decides everything (it checks the credentials
     * too), so that nothing is checked twice and nothing here tells who exists. Where it is
     * comes from the mode (mode.h), maybe later: the request waits meanwhile. */
    struct tt_device *d = tt_strmap_get(&r->by_name, v->device);
    if (r->mode->shared && !trusted && !r->stopping && !(d && tt_device_online(d))) {
        if (!(v->rq = malloc(sizeof(*v->rq)))) {
            tt_visitor_request_wipe(&rq);
            refuse(v, 503, "refused", "the relay cannot serve this now (out of memory)");
            return;
        }
        *v->rq = rq;
        tt_visitor_request_wipe(&rq);
        bool answered = false;
        v->answered = &answered;
        v->looking = true;
        hc->on_drop = on_hc_drop;
        hc->drop_ud = v;
        if (r->mode->locate(r, v->device, true, on_where, v) != 0) {
            v->looking = false;
            refuse(v, 503, "offline", "device unavailable: %s cannot be reached now", v->device);
            return;
        }
        if (answered)
            return; /* v is answered (and maybe gone) already */
        v->answered = NULL;
        tt_conn_read_stop(hc->conn); /* the connection waits unread for the answer */
        return;
    }
    authenticate(v, &rq);
    tt_visitor_request_wipe(&rq);
}

/* ---- the set ---------------------------------------------------------------------------- */

void tt_visitor_shutdown(struct tt_relay *r)
{
    struct tt_visitor_set *vs = r->visitors;
    if (!vs)
        return;
    for (struct tt_visitor *v = vs->list; v; v = v->next) {
        if (v->freeing)
            continue;
        if (!v->e[V_DEVICE].done && v->e[V_DEVICE].ws) {
            tt_wsconn_reset_stream(v->e[V_DEVICE].ws, v->e[V_DEVICE].id, TT_RESET_CANCEL);
            end_stream(v, V_DEVICE, true, TT_RESET_CANCEL);
        }
        v->why = "relay shutting down";
        v->goaway = TT_GOAWAY_SHUTDOWN;
        close_visitor(v, TT_GOAWAY_SHUTDOWN, "relay shutting down");
    }
}

void tt_visitor_free(struct tt_relay *r)
{
    free(r->visitors);
    r->visitors = NULL;
}

size_t tt_visitor_metrics(const struct tt_relay *r, char *out, size_t cap)
{
    static const struct tt_visitor_set zero;
    const struct tt_visitor_set *vs = r->visitors ? r->visitors : &zero;
    int n = snprintf(
        out, cap,
        "# HELP tether_connect_open tether connect connections open now.\n"
        "# TYPE tether_connect_open gauge\n"
        "tether_connect_open %zu\n"
        "# HELP tether_connect_accepted_total tether connect connections joined to a device "
        "service on this node.\n"
        "# TYPE tether_connect_accepted_total counter\n"
        "tether_connect_accepted_total %llu\n"
        "# HELP tether_connect_refused_total tether connect upgrades refused, by status.\n"
        "# TYPE tether_connect_refused_total counter\n"
        "tether_connect_refused_total{status=\"400\"} %llu\n"
        "tether_connect_refused_total{status=\"401\"} %llu\n"
        "tether_connect_refused_total{status=\"403\"} %llu\n"
        "tether_connect_refused_total{status=\"404\"} %llu\n"
        "tether_connect_refused_total{status=\"429\"} %llu\n"
        "tether_connect_refused_total{status=\"503\"} %llu\n"
        "# HELP tether_connect_forwarded_total tether connect upgrades passed to the node holding "
        "the device.\n"
        "# TYPE tether_connect_forwarded_total counter\n"
        "tether_connect_forwarded_total %llu\n"
        "# HELP tether_connect_revoked_total tether connect connections closed because their "
        "user or grant lost access.\n"
        "# TYPE tether_connect_revoked_total counter\n"
        "tether_connect_revoked_total %llu\n"
        "# HELP tether_connect_bytes_total Bytes passed from visitors to devices (in) and back "
        "(out).\n"
        "# TYPE tether_connect_bytes_total counter\n"
        "tether_connect_bytes_total{direction=\"in\"} %llu\n"
        "tether_connect_bytes_total{direction=\"out\"} %llu\n"
        "# HELP tether_connect_window_extra_bytes Window growth granted by every tether connect "
        "bridge (at most 64 MiB in all).\n"
        "# TYPE tether_connect_window_extra_bytes gauge\n"
        "tether_connect_window_extra_bytes %zu\n",
        vs->open, (unsigned long long)vs->accepted,
        (unsigned long long)vs->refused[TT_VISITOR_REFUSED_400],
        (unsigned long long)vs->refused[TT_VISITOR_REFUSED_401],
        (unsigned long long)vs->refused[TT_VISITOR_REFUSED_403],
        (unsigned long long)vs->refused[TT_VISITOR_REFUSED_404],
        (unsigned long long)vs->refused[TT_VISITOR_REFUSED_429],
        (unsigned long long)vs->refused[TT_VISITOR_REFUSED_503], (unsigned long long)vs->forwarded,
        (unsigned long long)vs->revoked, (unsigned long long)vs->bytes_in,
        (unsigned long long)vs->bytes_out, vs->extra_in_use);
    if (n < 0) {
        if (cap)
            out[0] = '\0';
        return 0;
    }
    return (size_t)n < cap ? (size_t)n : cap ? cap - 1 : 0;
}
