/* server.c - what the relay does with a request head on its main port (server.h):
 *   Host LABEL.DOMAIN or SERVICE--LABEL.DOMAIN of a known device -> proxied (or 503 offline;
 *   a private service first needs a session: signin.h);
 *   otherwise a WebSocket upgrade -> tether connect's endpoint when it offers the
 *   tether-connect.v1 subprotocol (visitor.h), else the device endpoint (any path);
 *   otherwise -> 404. Bad Host, or an absolute-form target naming another host -> 400. */
#include <stdlib.h>
#include <string.h>
#include "tether_err.h"
#include "common/log.h"
#include "common/wshs.h"
#include "relay/cluster/cluster.h"
#include "relay/device/device.h"
#include "relay/cluster/drain.h"
#include "relay/http/pages.h"
#include "relay/device/forward.h"
#include "relay/http/httpstats.h"
#include "relay/core.h"
#include "relay/http/respond.h"
#include "relay/http/route.h"
#include "relay/http/server.h"
#include "relay/access/signin.h"
#include "relay/device/visitor.h"
#include "relay/http/wsrequest.h"
#include "relay/cluster/peerlink.h"

struct hs_write {
    uv_write_t req;
    char data[512];
};

/* Answers with a rendered page; a HEAD request gets its head only. */
static void respond_raw(struct tt_headconn *hc, const char *out, int n)
{
    size_t len = n > 0 ? (size_t)n : 0;
    const char *end = n > 0 ? strstr(out, "\r\n\r\n") : NULL;
    if (end && hc->hp.p.method == HTTP_HEAD)
        len = (size_t)(end - out) + 4;
    tt_headconn_respond(hc, out, len);
}

static void respond_page(struct tt_headconn *hc, enum tt_page page)
{
    char out[TT_PAGE_MAX];
    int n = tt_pages_render(out, sizeof(out), page);
    TT_LOG(TT_LOG_DEBUG, "answered peer=%s:%u status=%d", hc->peer_ip, hc->peer_port,
           tt_pages_status(page));
    respond_raw(hc, out, n);
}

static void on_hs_written(uv_write_t *req, int status)
{
    (void)status; /* a failed write shows up on the wsconn as well */
    free(req->data);
}

/* A WebSocket upgrade that is not for a device address: the device endpoint. The request is
 * checked as RFC 6455 asks (400, or 426 for another version) before anything is allocated. */
static void device_endpoint(struct tt_relay *r, struct tt_headconn *hc)
{
    const uint8_t *key, *proto;
    size_t keylen, protolen;
    struct tt_wshs_request rq;
    tt_wsrequest_fill(&hc->hp, &rq);
    int verdict;
    if (tt_wshs_check_request(&rq, &verdict) != 0) {
        respond_page(hc, verdict == 426 ? TT_PAGE_UPGRADE_REQUIRED : TT_PAGE_BAD_REQUEST);
        return;
    }
    char loc[TT_ADVERTISE_MAX + 1100];
    if (!r->mode->trusted(r, &hc->hp) &&
        r->mode->redirect(r, (const char *)hc->data + hc->hp.url_off, hc->hp.url_len,
                          tt_drain_on(r), loc, sizeof(loc))) {
        char out[sizeof(loc) + 200];
        int n = snprintf(out, sizeof(out),
                         "HTTP/1.1 307 Temporary Redirect\r\nLocation: %s\r\n"
                         "Content-Length: 0\r\nConnection: close\r\n\r\n",
                         loc);
        TT_LOG(TT_LOG_INFO, "device redirected peer=%s:%u location=%s", hc->peer_ip, hc->peer_port,
               loc);
        tt_headconn_respond(hc, out, n > 0 && (size_t)n < sizeof(out) ? (size_t)n : 0);
        return;
    }
    /* Admission (drain.h): a draining node with nowhere to send the device, or too many
     * registrations under way: 503 and when to come back, before anything is allocated. */
    unsigned retry_after;
    enum tt_drain_refusal why = tt_drain_admit(r, &retry_after);
    if (why != TT_DRAIN_ADMIT) {
        static const char body_busy[] = "relay busy: too many devices registering, retry later\n";
        static const char body_drain[] = "relay draining: it takes no new devices\n";
        const char *body = why == TT_DRAIN_BUSY ? body_busy : body_drain;
        char out[512];
        int n = snprintf(out, sizeof(out),
                         "HTTP/1.1 503 Service Unavailable\r\nRetry-After: %u\r\n"
                         "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
                         "Cache-Control: no-store\r\nConnection: close\r\n\r\n%s",
                         retry_after, strlen(body), body);
        TT_LOG(TT_LOG_DEBUG, "device handshake refused peer=%s:%u reason=%s retry_after=%u",
               hc->peer_ip, hc->peer_port, why == TT_DRAIN_BUSY ? "busy" : "draining", retry_after);
        respond_raw(hc, out, n > 0 && (size_t)n < sizeof(out) ? n : 0);
        return;
    }
    key = rq.key;
    keylen = rq.keylen;
    bool sub = false;
    if (tt_headparse_find(&hc->hp, "sec-websocket-protocol", &proto, &protolen) > 0)
        sub = tt_headparse_has_token(proto, protolen, TT_WS_SUBPROTOCOL);
    struct hs_write *w = malloc(sizeof(*w));
    if (!w) {
        respond_page(hc, TT_PAGE_UNAVAILABLE);
        return;
    }
    int n = tt_wshs_server_response(w->data, sizeof(w->data), (const char *)key, keylen, sub);
    if (n <= 0) {
        free(w);
        respond_page(hc, TT_PAGE_BAD_REQUEST);
        return;
    }
    struct tt_conn *conn = tt_headconn_take(hc);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    w->req.data = w;
    if (tt_conn_write(conn, &w->req, &b, 1, on_hs_written) != 0) {
        free(w);
        tt_respond_drop(conn);
        tt_headconn_free(hc);
        return;
    }
    tt_device_accept(r, conn, hc->data + hc->headlen, hc->len - hc->headlen);
    tt_headconn_free(hc);
}

static bool is_websocket(struct tt_headconn *hc)
{
    const uint8_t *v;
    size_t vlen;
    return tt_headparse_find(&hc->hp, "upgrade", &v, &vlen) > 0 &&
           tt_headparse_has_token(v, vlen, "websocket");
}

/* Who the browser is: the peer, or, for a request another cluster node forwarded (trusted),
 * the browser's address and protocol that node vouches for. */
struct origin {
    char ip[64];
    uint16_t port;
    bool https;
};

static void find_origin(struct tt_headconn *hc, bool trusted, struct origin *o)
{
    snprintf(o->ip, sizeof(o->ip), "%s", hc->peer_ip);
    o->port = hc->peer_port;
    o->https = hc->conn->tls != NULL;
    const uint8_t *v;
    size_t n;
    if (!trusted) /* only another node is trusted (mode.h) */
        return;
    if (tt_headparse_find_trimmed(&hc->hp, TT_CLUSTER_HDR_CLIENT, &v, &n) == 1 && n > 0 &&
        n < sizeof(o->ip)) {
        memcpy(o->ip, v, n);
        o->ip[n] = '\0';
        o->port = 0;
        /* the browser's port, for the audit log (a node of an older version sends none) */
        char pb[8];
        if (tt_headparse_find_trimmed(&hc->hp, TT_CLUSTER_HDR_CLIENT_PORT, &v, &n) == 1 && n > 0 &&
            n < sizeof(pb)) {
            memcpy(pb, v, n);
            pb[n] = '\0';
            char *end;
            unsigned long p = strtoul(pb, &end, 10);
            if (*end == '\0' && pb[0] >= '0' && pb[0] <= '9' && p <= 65535)
                o->port = (uint16_t)p;
        }
    }
    if (tt_headparse_find_trimmed(&hc->hp, TT_CLUSTER_HDR_PROTO, &v, &n) == 1)
        o->https = n == 5 && memcmp(v, "https", 5) == 0;
}

/* The audit line of a browser the relay answered itself (the device offline or out of
 * reach): service is the name of the HTTP service Host names when the relay knows it (d may be
 * NULL), else Host's service part ("http" for the main one). */
static void audit_answered(struct tt_relay *r, const struct tt_device *d, const char *device,
                           const char *svc, const struct origin *o, const char *outcome)
{
    if (!tt_audit_on(&r->audit) || !device || !device[0])
        return;
    int idx = d ? tt_device_http_service(d, svc) : -1;
    char client[TT_MAX_ADDR];
    tt_forward_client_addr(client, sizeof(client), o->ip, o->port);
    tt_forward_audit_refused(r, device,
                             idx >= 0 ? d->svc[idx].name
                             : svc[0] ? svc
                                      : "http",
                             "http", NULL, client, outcome);
}

/* Host names a device label: proxy, or say why not. */
static void to_device(struct tt_relay *r, struct tt_headconn *hc, struct tt_device *d,
                      const char *svc, const char *host, const struct origin *o)
{
    if (!d->conn) {
        char out[TT_PAGE_MAX];
        int n =
            tt_pages_offline(out, sizeof(out), d->offline_since / 1000, tt_relay_now_ms() / 1000);
        TT_LOG(TT_LOG_DEBUG, "answered peer=%s:%u status=503 device=%s offline", hc->peer_ip,
               hc->peer_port, TT_LOG_V(d->name));
        audit_answered(r, d, d->name, svc, o, "offline");
        respond_raw(hc, out, n);
        return;
    }
    if (!tt_device_online(d)) {
        audit_answered(r, d, d->name, svc, o, "offline");
        respond_page(hc, TT_PAGE_UNAVAILABLE);
        return;
    }
    int idx = tt_device_http_service(d, svc);
    if (idx < 0) {
        respond_page(hc, svc[0] ? TT_PAGE_NOT_FOUND : TT_PAGE_NO_SERVICE);
        return;
    }
    if (!tt_access_public(&r->access, d->name, d->svc[idx].name)) {
        /* a private service: a session, or the sign-in (signin.h) */
        tt_signin_gate(r, hc, d, idx, host, o->ip, o->port, o->https);
        return;
    }
    struct tt_conn *conn = tt_headconn_take(hc);
    tt_forward_http_as(d, idx, conn, hc->data, hc->len, host, o->ip, o->port, o->https, NULL);
    tt_headconn_free(hc);
}

/* A request for a device label this node does not serve from its tables (mode.h: held by
 * another node, offline in the shared registry, or unknown), while its node is looked up. */
struct lookup {
    struct tt_relay *r;
    struct tt_headconn *hc;
    bool trusted;
    bool *answered; /* while locate runs: set when the answer came at once */
    char svc[TT_ROUTE_SVCLEN + 1];
    struct origin o;
};

/* What is left of on_head once no device answers for Host: a WebSocket upgrade (tether
 * connect, or a device), else 404. */
static void not_a_device(struct tt_relay *r, struct tt_headconn *hc, bool trusted)
{
    if (is_websocket(hc)) {
        if (tt_visitor_is_upgrade(&hc->hp))
            tt_visitor_endpoint(r, hc, trusted); /* tether connect */
        else
            device_endpoint(r, hc);
        return;
    }
    respond_page(hc, TT_PAGE_NOT_FOUND);
}

/* The headconn went (its deadline, a shed, the relay stopping) while its lookup waited. */
static void on_lookup_drop(struct tt_headconn *hc, void *ud)
{
    struct lookup *lk = ud;
    (void)hc;
    lk->r->mode->cancel(lk->r, lk); /* lk itself is hc's owner_data: freed with it */
}

/* The answer of the lookup: forward the request to the node holding the device, or answer;
 * an unknown label goes on as any other Host. A lookup not answered in time (the shared
 * registry slow or away, or too many waiting: timed_out) gets the 503 page. */
static void on_located(const struct tt_where *a, bool timed_out, void *ud)
{
    struct lookup *lk = ud;
    struct tt_relay *r = lk->r;
    struct tt_headconn *hc = lk->hc;
    hc->on_drop = NULL;
    hc->owner_data = NULL; /* lk is ours again */
    if (lk->answered)
        *lk->answered = true;
    struct origin o = lk->o;
    char svc[sizeof(lk->svc)];
    memcpy(svc, lk->svc, sizeof(svc));
    bool trusted = lk->trusted;
    free(lk);
    if (timed_out) {
        TT_LOG(TT_LOG_DEBUG, "answered peer=%s:%u status=503 registry lookup timed out",
               hc->peer_ip, hc->peer_port);
        respond_page(hc, TT_PAGE_UNAVAILABLE);
        return;
    }
    switch (a->kind) {
    case TT_WHERE_REMOTE: {
        char client[TT_MAX_ADDR];
        tt_forward_client_addr(client, sizeof(client), o.ip, o.port);
        struct tt_peerlink_audit audit = {.r = r,
                                          .device = a->name,
                                          .service = svc[0] ? svc : "http",
                                          .kind = "http",
                                          .client = client};
        r->mode->forward_http(r, hc, a->host, a->port, &audit);
        return;
    }
    case TT_WHERE_OFFLINE: {
        char out[TT_PAGE_MAX];
        int n = tt_pages_offline(out, sizeof(out), a->since / 1000, tt_relay_now_ms() / 1000);
        audit_answered(r, NULL, a->name, svc, &o, "offline");
        respond_raw(hc, out, n);
        return;
    }
    case TT_WHERE_BUSY:
        /* its node cannot be reached: "offline", as tether connect's 503 and a TCP client's */
        audit_answered(r, NULL, a->name, svc, &o, "offline");
        respond_page(hc, TT_PAGE_UNAVAILABLE);
        return;
    default:
        not_a_device(r, hc, trusted);
        return;
    }
}

/* label is not served by a device in this node's tables: another node that forwarded it is
 * answered 503 at once (never forwarded twice); else the mode looks up where it is (mode.h).
 * hc is consumed, now or once the answer comes. */
static void to_elsewhere(struct tt_relay *r, struct tt_headconn *hc, const char *label,
                         bool trusted, const char *svc, const struct origin *o)
{
    if (trusted) {
        respond_page(hc, TT_PAGE_UNAVAILABLE);
        return;
    }
    struct lookup *lk = calloc(1, sizeof(*lk));
    if (!lk) {
        respond_page(hc, TT_PAGE_UNAVAILABLE);
        return;
    }
    lk->r = r;
    lk->hc = hc;
    lk->trusted = trusted;
    snprintf(lk->svc, sizeof(lk->svc), "%s", svc);
    lk->o = *o;
    /* lk goes with hc should hc go first */
    bool answered = false;
    lk->answered = &answered;
    hc->owner_data = lk;
    hc->on_drop = on_lookup_drop;
    hc->drop_ud = lk;
    if (r->mode->locate(r, label, false, on_located, lk) != 0) {
        hc->on_drop = NULL; /* too many waiting: lk goes with hc */
        respond_page(hc, TT_PAGE_UNAVAILABLE);
        return;
    }
    if (answered)
        return; /* hc is answered (and gone) already */
    /* the connection waits unread (and still counted as unauthenticated, its head deadline
     * running) for the answer */
    lk->answered = NULL;
    tt_conn_read_stop(hc->conn);
}

void tt_server_on_head(struct tt_headconn *hc, void *ud)
{
    struct tt_relay *r = ud;
    const uint8_t *hv;
    size_t hvlen;
    char host[TT_HOSTLEN];
    bool trusted = r->mode->trusted(r, &hc->hp);
    if (trusted && hc->hp.p.method == HTTP_CONNECT) {
        r->mode->on_tunnel(r, hc); /* a TCP client of another node */
        return;
    }
    if (tt_headparse_find(&hc->hp, "host", &hv, &hvlen) != 1 ||
        tt_route_host_normalize(hv, hvlen, host) != 0) {
        respond_page(hc, tt_httpstats_refuse(TT_REFUSAL_HOST));
        return;
    }
    /* The relay routes by Host; a server behind it may route by an absolute-form target. */
    if (!tt_route_target_matches(hc->data + hc->hp.url_off, hc->hp.url_len, host)) {
        respond_page(hc, tt_httpstats_refuse(TT_REFUSAL_OTHER_HOST));
        return;
    }
    char label[TT_MAX_LABEL + 1], svc[TT_ROUTE_SVCLEN + 1];
    enum tt_route_kind kind = tt_route_classify(host, r->cfg.domain, label, svc);
    if (kind == TT_ROUTE_DEVICE) {
        struct tt_device *d = tt_device_by_label(r, label);
        struct origin o;
        find_origin(hc, trusted, &o);
        /* the single relay's tables hold every device it knows (offline ones answer the 503
         * page from here); a cluster node's only those online here (mode.h) */
        if (d && (!r->mode->shared || d->conn)) {
            to_device(r, hc, d, svc, host, &o);
            return;
        }
        if (r->mode->shared) {
            to_elsewhere(r, hc, label, trusted, svc, &o);
            return;
        }
    }
    not_a_device(r, hc, trusted);
}
