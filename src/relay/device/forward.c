/* forward.c - opening device streams for browser and TCP clients (forward.h). Each HTTP client
 * gets a small state (the request filter) that lives as long as its pipe, on a process-wide
 * list that one timer sweeps for the idle, head and body timeouts; each TCP client a smaller
 * one on another list, swept for the TCP idle timeout (the relay runs one loop on one thread).
 * Every stream is counted against its device's shares (limits.h) from its opening until its
 * pipe is over, and writes its audit line (audit.h) when it is over. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "tether_err.h"
#include "common/log.h"
#include "common/pipe.h"
#include "relay/access/access.h"
#include "relay/access/audit.h"
#include "relay/lib/cidr.h"
#include "relay/http/httpproxy.h"
#include "relay/http/httpstats.h"
#include "relay/http/pages.h"
#include "relay/device/forward.h"
#include "relay/core.h"
#include "relay/http/respond.h"
#include "relay/access/sessions.h"

/* What a connection's audit line needs, gathered only when there is an audit log. */
struct audit_rec {
    struct tt_audit *audit; /* NULL: no audit log (nothing else is set) */
    int64_t started;        /* unix ms */
    const char *outcome;    /* set where the relay decided it; NULL: from how the pipe ended */
    char device[TT_MAX_NAME + 1];
    char service[TT_MAX_NAME + 1];
};

struct http_client {
    struct tt_httpproxy hx;
    char origin[TT_MAX_ADDR]; /* the browser's "IP:PORT" (vouched for by a cluster node) */
    struct tt_principal who;  /* whom it runs under (kind NONE: public access) */
    struct audit_rec audit;
    struct tt_pipe *pipe;
    struct http_client *prev, *next; /* the clients list, once the pipe exists */
    uint64_t head_since;             /* loop time a later request head began; 0: none pending */
    uint64_t head_req;               /* hx.requests when it began */
    /* The request body being read (body_since 0: none): since when, of which request, the
     * bytes received, the time the relay itself held the socket back (not counted against the
     * client), and the peer's bytes when it began (for the 408: nothing answered yet). */
    uint64_t body_since, body_req, body_bytes, body_held_ms, body_mark;
    uint64_t timed_out_at; /* loop time it was cut off (0: not) */
    struct tt_limits_stream ls;
    /* A private service (priv): the principal, device and service (in ac, tracked while the
     * pipe lives), the session of the last request that passed, and the relay's own answer to
     * the request the check refused (malloc'd) or to a held one. */
    struct tt_relay *r;
    bool priv;
    bool revoked; /* closed because access went or the session ended */
    int verdict;  /* the check's last enum tt_httpproxy_verdict */
    struct tt_access_conn ac;
    char session[TT_SESSION_KEY_LEN + 1];
    char *answer;
    size_t answerlen;
};

/* A raw TCP client with a pipe (for its idle timeout and its stream count). */
struct tcp_client {
    struct tt_pipe *pipe;
    struct tcp_client *prev, *next;
    struct tt_limits_stream ls;
    bool timed_out;
    struct audit_rec audit;
    char origin[TT_MAX_ADDR]; /* the client's "IP:PORT" (kept for the audit line only) */
};

/* Every HTTP and TCP client with a pipe, and the timer that enforces their timeouts. */
static struct {
    uv_loop_t *loop;
    uv_timer_t timer;
    bool started;
    uint64_t idle_ms, head_ms, body_ms, body_rate, tcp_idle_ms;
    uint64_t last_sweep;   /* loop time of the last sweep */
    uint64_t tcp_every;    /* the TCP list is walked this often... */
    uint64_t tcp_next;     /* ...next at this loop time */
    struct tt_limits *lim; /* the relay's */
    struct http_client *list;
    struct tcp_client *tcp;
} clients;

/* ---- audit ---------------------------------------------------------------------------- */

/* Starts a's record for a stream to service svc of d, when there is an audit log. */
static void audit_begin(struct audit_rec *a, const struct tt_device *d, int svc)
{
    if (!tt_audit_on(&d->relay->audit))
        return;
    a->audit = &d->relay->audit;
    a->started = tt_relay_now_ms();
    snprintf(a->device, sizeof(a->device), "%s", d->name);
    snprintf(a->service, sizeof(a->service), "%s", d->svc[svc].name);
}

/* The relay decided how the connection ends (the first decision stands). */
static void audit_outcome(struct audit_rec *a, const char *outcome)
{
    if (a->audit && !a->outcome)
        a->outcome = outcome;
}

/* Writes a's line: in bytes from the client, out bytes to it; failed: the pipe did not end
 * well (the outcome when the relay decided none). */
static void audit_end(const struct audit_rec *a, const char *kind, const struct tt_principal *who,
                      const char *client, uint64_t in, uint64_t out, bool failed)
{
    if (!a->audit)
        return;
    int64_t now = tt_relay_now_ms();
    struct tt_audit_conn c = {
        .device = a->device,
        .service = a->service,
        .kind = kind,
        .user = who && who->kind != TT_PRINCIPAL_NONE ? who->user : NULL,
        .client = client,
        .bytes_in = in,
        .bytes_out = out,
        .duration_ms = now - a->started,
        .outcome = a->outcome ? a->outcome
                   : failed   ? "error"
                              : "ok",
    };
    tt_audit_connection(a->audit, &c, now);
}

void tt_forward_audit_refused(struct tt_relay *r, const char *device, const char *service,
                              const char *kind, const struct tt_principal *who, const char *client,
                              const char *outcome)
{
    if (!tt_audit_on(&r->audit))
        return;
    struct tt_audit_conn c = {
        .device = device,
        .service = service,
        .kind = kind,
        .user = who && who->kind != TT_PRINCIPAL_NONE ? who->user : NULL,
        .client = client,
        .outcome = outcome,
    };
    tt_audit_connection(&r->audit, &c, tt_relay_now_ms());
}

char *tt_forward_client_addr(char *out, size_t len, const char *ip, uint16_t port)
{
    bool v6 = strchr(ip, ':') != NULL;
    snprintf(out, len, "%s%s%s:%u", v6 ? "[" : "", ip, v6 ? "]" : "", (unsigned)port);
    return out;
}

void tt_forward_port_accept(struct tt_tcpport *p, struct tt_conn *client, void *ud)
{
    struct tt_device *d = ud;
    for (uint8_t i = 0; i < d->nsvc; i++) {
        if (d->svc[i].port != p)
            continue;
        if (!tt_forward_tcp_admit(d->relay, client, d->name, d->svc[i].name))
            return; /* --tcp-allow: closed, counted and audited */
        if (tt_device_online(d)) {
            tt_forward_tcp(d, i, client);
            return;
        }
        if (tt_audit_on(&d->relay->audit)) {
            char peer[TT_MAX_ADDR];
            tt_conn_peer(client, peer, sizeof(peer));
            tt_forward_audit_refused(d->relay, d->name, d->svc[i].name, "tcp", NULL, peer,
                                     "offline");
        }
        break;
    }
    tt_respond_drop(client); /* offline: closed at once */
}

bool tt_forward_tcp_admit(struct tt_relay *r, struct tt_conn *client, const char *device,
                          const char *service)
{
    if (r->cfg.ntcp_allow == 0)
        return true;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&client->tcp, (struct sockaddr *)&ss, &len) == 0 &&
        tt_cidr_match_any(r->cfg.tcp_allow, r->cfg.ntcp_allow, (const struct sockaddr *)&ss))
        return true;
    r->tcp_allow_refused++;
    char peer[TT_MAX_ADDR];
    tt_conn_peer(client, peer, sizeof(peer));
    TT_LOG(TT_LOG_DEBUG, "tcp client refused by --tcp-allow peer=%s device=%s service=%s", peer,
           TT_LOG_V(device ? device : "-"), TT_LOG_V(service ? service : "-"));
    tt_forward_audit_refused(r, device, service, "tcp", NULL, peer, "refused");
    tt_respond_drop(client);
    return false;
}

/* ---- clients ---------------------------------------------------------------------------- */

static void unlink_client(struct http_client *hc)
{
    if (hc->prev)
        hc->prev->next = hc->next;
    else if (clients.list == hc)
        clients.list = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    hc->prev = hc->next = NULL;
}

/* The answer to a request on a proxied connection that the filter refused (counted): the
 * refusal's page, or 503 for the relay's own failure (out of memory, a full queue). */
static enum tt_page refusal_page(const struct http_client *hc)
{
    enum tt_page page = tt_httpstats_refuse((enum tt_http_refusal)hc->hx.reason);
    return hc->hx.reason == TT_REFUSAL_NONE ? TT_PAGE_UNAVAILABLE : page;
}

static int emit(void *ud, const uint8_t *data, size_t len)
{
    return tt_pipe_send(ud, data, len);
}

/* After the filter took len bytes: starts, or advances, the clock of a request body (a total
 * deadline extended by the bytes received, as Apache's mod_reqtimeout does). Only the filter's
 * mode is read. */
static void track_body(struct http_client *hc, size_t len)
{
    if (hc->hx.mode != TT_HTTPPROXY_BODY) {
        hc->body_since = 0;
        return;
    }
    if (hc->body_since != 0 && hc->body_req == hc->hx.requests) {
        hc->body_bytes += len;
        return;
    }
    /* a new body: what came with its head is not counted */
    hc->body_since = uv_now(clients.loop);
    hc->body_req = hc->hx.requests;
    hc->body_bytes = 0;
    hc->body_held_ms = 0;
    hc->body_mark = tt_pipe_peer_bytes(hc->pipe);
}

/* Counts and logs what the filter reported (x->events), and lets the pipe offer the client's
 * held bytes again when the filter can take them. */
static void take_events(struct http_client *hc, struct tt_pipe *p)
{
    unsigned ev = hc->hx.events;
    hc->hx.events = 0;
    if (ev & TT_HTTPPROXY_EV_FULL)
        tt_httpstats.pipeline_full++;
    if (ev & TT_HTTPPROXY_EV_DECLINED) {
        tt_httpstats.upgrades_declined++;
        TT_LOG(TT_LOG_DEBUG, "upgrade declined by the device peer=%s stream=%u", hc->origin,
               (unsigned)tt_pipe_stream_id(p));
    }
    if (ev & TT_HTTPPROXY_EV_LOST) {
        tt_httpstats.tracking_lost++;
        TT_LOG(TT_LOG_INFO,
               "unreadable response from the device: no more requests on this connection "
               "peer=%s stream=%u",
               hc->origin, (unsigned)tt_pipe_stream_id(p));
    }
    if (ev & TT_HTTPPROXY_EV_RESUME)
        tt_pipe_refeed(p);
}

/* What the sign-in module does for this one (tt_forward_set_signin; NULL until relay.c sets it:
 * every request of a private service is then refused). */
static const struct tt_forward_signin *signin;

void tt_forward_set_signin(const struct tt_forward_signin *s)
{
    signin = s;
}

/* The filter's check of each request head of a private service (signin.h, through signin). */
static int http_check(void *ud, const struct tt_httpproxy *x, const uint8_t *head, size_t headlen)
{
    struct http_client *hc = ud;
    (void)headlen;
    char key[TT_SESSION_KEY_LEN + 1];
    free(hc->answer);
    hc->answer = NULL;
    hc->answerlen = 0;
    if (!signin) {
        hc->verdict = TT_HTTPPROXY_ANSWER;
        return hc->verdict;
    }
    hc->verdict = signin->check(hc->r, head, x, &hc->ac, hc, key, &hc->answer, &hc->answerlen);
    if (hc->verdict != TT_HTTPPROXY_ANSWER && key[0])
        memcpy(hc->session, key, sizeof(hc->session));
    return hc->verdict;
}

static tt_ssize http_filter(struct tt_pipe *p, const uint8_t *in, size_t len, bool eof, void *ud)
{
    struct http_client *hc = ud;
    if (eof)
        return 0;
    tt_ssize rc = tt_httpproxy_feed(&hc->hx, in, len, emit, p);
    take_events(hc, p);
    if (rc < 0 && hc->hx.cut) {
        /* the device tried to set the relay's cookie: part of a head went out, nothing more */
        tt_httpstats.device_cookie++;
        TT_LOG(TT_LOG_INFO,
               "device response set the relay's cookie: connection closed peer=%s "
               "stream=%u",
               hc->origin, (unsigned)tt_pipe_stream_id(p));
        return rc;
    }
    if (rc < 0 && hc->hx.local) {
        /* the relay's own answer (sign-in page, sign-out...), after the responses owed */
        if (hc->verdict == TT_HTTPPROXY_HOLD)
            signin->repeat();
        TT_LOG(TT_LOG_DEBUG, "request answered by the relay peer=%s stream=%u", hc->origin,
               (unsigned)tt_pipe_stream_id(p));
        if (hc->answer)
            tt_pipe_write(p, (const uint8_t *)hc->answer, hc->answerlen);
        return rc;
    }
    if (rc < 0) {
        /* Answered as the listener answers a first request, after the responses to the
         * requests before it; the stream is reset and the connection closed after the page.
         * When the responses could not be followed, a page could land inside one: none. */
        enum tt_page which = refusal_page(hc);
        audit_outcome(&hc->audit, "refused");
        TT_LOG(TT_LOG_DEBUG, "request refused peer=%s stream=%u err=%s reason=%s status=%d",
               hc->origin, (unsigned)tt_pipe_stream_id(p), tether_err_name((int)rc),
               tt_headparse_refusal_name((enum tt_http_refusal)hc->hx.reason),
               tt_pages_status(which));
        if (hc->hx.track != TT_HTTPPROXY_LOST) {
            char page[TT_PAGE_MAX];
            int n = tt_pages_render(page, sizeof(page), which);
            if (n > 0)
                tt_pipe_write(p, (const uint8_t *)page, (size_t)n);
        }
        return rc;
    }
    /* A later head that is not whole yet starts the head clock (a total deadline, as on the
     * listener: trickling bytes does not extend it). */
    if (hc->hx.mode == TT_HTTPPROXY_HEAD && hc->hx.head != NULL && hc->hx.hlen > 0) {
        if (hc->head_since == 0 || hc->head_req != hc->hx.requests) {
            hc->head_since = uv_now(clients.loop);
            hc->head_req = hc->hx.requests;
        }
    } else {
        hc->head_since = 0;
    }
    track_body(hc, (size_t)rc);
    return rc;
}

/* The device's bytes: the filter follows the responses (and says where the ones owed before a
 * refusal end); they pass unchanged. */
static size_t http_downstream(struct tt_pipe *p, const uint8_t *data, size_t len, void *ud)
{
    struct http_client *hc = ud;
    size_t pass = tt_httpproxy_response(&hc->hx, data, len);
    take_events(hc, p);
    return pass;
}

static bool http_on_fail(struct tt_pipe *p, int code, void *ud)
{
    struct http_client *hc = ud;
    char page[TT_PAGE_MAX];
    enum tt_page which = code == TT_RESET_LIMIT ? TT_PAGE_BUSY
                         : code < 0             ? TT_PAGE_UNAVAILABLE
                                                : TT_PAGE_BAD_GATEWAY;
    if (code == TT_RESET_LIMIT)
        clients.lim->refused[TT_LIMITS_REFUSED_DEVICE]++; /* the device's own limit */
    audit_outcome(&hc->audit, code == TT_RESET_LIMIT ? "refused" : code < 0 ? "offline" : "error");
    int n = tt_pages_render(page, sizeof(page), which);
    TT_LOG(TT_LOG_DEBUG, "device stream failed peer=%s stream=%u code=%d status=%d", hc->origin,
           (unsigned)tt_pipe_stream_id(p), code, tt_pages_status(which));
    if (n > 0)
        tt_pipe_write(p, (const uint8_t *)page, (size_t)n);
    return n > 0;
}

static void http_on_done(struct tt_pipe *p, uint64_t up, uint64_t down, void *ud)
{
    struct http_client *hc = ud;
    TT_LOG(TT_LOG_DEBUG, "http stream done peer=%s stream=%u requests=%llu up=%llu down=%llu",
           hc->origin, (unsigned)tt_pipe_stream_id(p), (unsigned long long)hc->hx.requests,
           (unsigned long long)up, (unsigned long long)down);
    audit_end(&hc->audit, "http", hc->priv ? &hc->ac.who : &hc->who, hc->origin, up, down,
              tt_pipe_failed(p));
    unlink_client(hc);
    tt_limits_stream_give(clients.lim, &hc->ls);
    tt_httpproxy_reset(&hc->hx);
    if (hc->priv)
        tt_access_untrack(&hc->r->access, &hc->ac);
    free(hc->answer);
    free(hc);
}

static const struct tt_pipe_hooks http_hooks = {
    .filter = http_filter,
    .on_fail = http_on_fail,
    .on_done = http_on_done,
    .downstream = http_downstream,
};

static bool tcp_on_fail(struct tt_pipe *p, int code, void *ud)
{
    struct tcp_client *tc = ud;
    (void)p;
    audit_outcome(&tc->audit, code == TT_RESET_LIMIT ? "refused" : code < 0 ? "offline" : "error");
    return false; /* the client is closed */
}

static void tcp_on_done(struct tt_pipe *p, uint64_t up, uint64_t down, void *ud)
{
    struct tcp_client *tc = ud;
    audit_end(&tc->audit, "tcp", NULL, tc->origin, up, down, tt_pipe_failed(p));
    if (tc->prev)
        tc->prev->next = tc->next;
    else if (clients.tcp == tc)
        clients.tcp = tc->next;
    if (tc->next)
        tc->next->prev = tc->prev;
    tt_limits_stream_give(clients.lim, &tc->ls);
    free(tc);
}

static const struct tt_pipe_hooks tcp_hooks = {.on_fail = tcp_on_fail, .on_done = tcp_on_done};

static void respond_page(struct tt_conn *client, enum tt_page page)
{
    char out[TT_PAGE_MAX];
    int n = tt_pages_render(out, sizeof(out), page);
    tt_respond_close(client, out, n > 0 ? (size_t)n : 0);
}

/* True when d has services of both kinds (each kind then has its share of the streams). */
static bool both_kinds(const struct tt_device *d)
{
    bool http = false, tcp = false;
    for (uint8_t i = 0; i < d->nsvc; i++) {
        http |= d->svc[i].kind == TT_SERVICE_HTTP;
        tcp |= d->svc[i].kind == TT_SERVICE_TCP;
    }
    return http && tcp;
}

/* Opens a stream to service svc of d for the client at client (its address: limits.h), counted
 * in ls. Returns its id (> 0), or a negative tether_err: TETHER_ERR_STREAM_LIMIT when a share
 * (the device's, its kind's or the client's) is used up. */
static int64_t open_stream(struct tt_device *d, int svc, const char *origin, const char *client,
                           struct tt_limits_stream *ls)
{
    struct tt_limits *lim = &d->relay->limits;
    struct tt_wsconn *ws = d->conn->ws;
    uint8_t buf[TT_FRAME_HEADER_LEN + 8 + TT_MAX_ADDR];
    uint32_t id;
    int why = tt_limits_stream_take(lim, ls, d->name, d->svc[svc].kind, both_kinds(d), client);
    if (why != TT_LIMITS_OK) {
        TT_LOG(TT_LOG_DEBUG, "stream refused device=%s peer=%s reason=%s", d->name, origin,
               why == TT_LIMITS_REFUSED_KIND     ? "kind"
               : why == TT_LIMITS_REFUSED_CLIENT ? "client"
                                                 : "device");
        return TETHER_ERR_STREAM_LIMIT;
    }
    tt_ssize n =
        tt_session_open(tt_wsconn_session(ws), (uint8_t)svc, origin, NULL, &id, buf, sizeof(buf));
    if (n < 0) {
        tt_limits_stream_give(lim, ls);
        if (n == TETHER_ERR_STREAM_LIMIT)
            lim->refused[TT_LIMITS_REFUSED_DEVICE]++;
        return n;
    }
    int rc = tt_wsconn_send_frame(ws, buf, (size_t)n);
    if (rc < 0) {
        tt_limits_stream_give(lim, ls);
        tt_wsconn_reset_stream(ws, id, TT_RESET_CANCEL);
        return rc;
    }
    d->streams++;
    d->last_seen = tt_relay_now_ms();
    return id;
}

void tt_forward_http(struct tt_device *d, int svc, struct tt_conn *client, const uint8_t *pre,
                     size_t prelen, const char *host, const char *client_ip, uint16_t client_port)
{
    tt_forward_http_as(d, svc, client, pre, prelen, host, client_ip, client_port,
                       client->tls != NULL, NULL);
}

/* Access went (access.h: a user removed, a grant revoked): closed at once. */
static void on_revoke(struct tt_access_conn *c, void *ud)
{
    struct http_client *hc = ud;
    (void)c;
    hc->revoked = true;
    TT_LOG(TT_LOG_DEBUG, "http client closed: access revoked peer=%s", hc->origin);
    audit_outcome(&hc->audit, "refused"); /* as tether connect's revoked streams */
    tt_pipe_kill(hc->pipe, TT_RESET_CANCEL);
}

void tt_forward_close_session(const char *key, const void *except)
{
    for (struct http_client *hc = clients.list; hc; hc = hc->next) {
        if (!hc->priv || hc == except || hc->revoked || strcmp(hc->session, key) != 0)
            continue;
        hc->revoked = true;
        TT_LOG(TT_LOG_DEBUG, "http client closed: signed out peer=%s", hc->origin);
        audit_outcome(&hc->audit, "ok"); /* the user's own doing: a normal end */
        tt_pipe_kill(hc->pipe, TT_RESET_CANCEL);
    }
}

void tt_forward_http_as(struct tt_device *d, int svc, struct tt_conn *client, const uint8_t *pre,
                        size_t prelen, const char *host, const char *client_ip,
                        uint16_t client_port, bool https, const struct tt_principal *who)
{
    struct http_client *hc = calloc(1, sizeof(*hc));
    if (!hc) {
        respond_page(client, TT_PAGE_UNAVAILABLE);
        return;
    }
    tt_forward_client_addr(hc->origin, sizeof(hc->origin), client_ip, client_port);
    if (who)
        hc->who = *who;
    int64_t id = open_stream(d, svc, hc->origin, client_ip, &hc->ls);
    if (id < 0) {
        TT_LOG(TT_LOG_DEBUG, "cannot open stream device=%s peer=%s err=%s", TT_LOG_V(d->name),
               hc->origin, tether_err_name((int)id));
        tt_forward_audit_refused(d->relay, d->name, d->svc[svc].name, "http", who, hc->origin,
                                 id == TETHER_ERR_STREAM_LIMIT ? "refused" : "error");
        free(hc);
        respond_page(client, id == TETHER_ERR_STREAM_LIMIT ? TT_PAGE_BUSY : TT_PAGE_UNAVAILABLE);
        return;
    }
    tt_httpproxy_init(&hc->hx, host, client_ip);
    hc->hx.https = https;
    hc->r = d->relay;
    if (who) {
        hc->priv = true;
        hc->ac.who = *who;
        snprintf(hc->ac.device, sizeof(hc->ac.device), "%s", d->name);
        snprintf(hc->ac.service, sizeof(hc->ac.service), "%s", d->svc[svc].name);
        hc->ac.revoke = on_revoke;
        hc->ac.ud = hc;
        hc->hx.check = http_check;
        hc->hx.check_ud = hc;
    }
    struct tt_pipe *p;
    int rc = tt_pipe_new(&p, d->relay->loop, client, false, d->conn->ws, (uint32_t)id, pre, prelen,
                         &http_hooks, hc);
    if (rc) {
        tt_wsconn_reset_stream(d->conn->ws, (uint32_t)id, TT_RESET_CANCEL);
        tt_limits_stream_give(&d->relay->limits, &hc->ls);
        tt_httpproxy_reset(&hc->hx);
        tt_forward_audit_refused(d->relay, d->name, d->svc[svc].name, "http", who, hc->origin,
                                 "error");
        free(hc->answer);
        free(hc);
        respond_page(client, TT_PAGE_UNAVAILABLE);
        return;
    }
    audit_begin(&hc->audit, d, svc);
    hc->pipe = p;
    hc->next = clients.list;
    if (clients.list)
        clients.list->prev = hc;
    clients.list = hc;
    if (hc->priv)
        tt_access_track(&d->relay->access, &hc->ac);
}

void tt_forward_tcp(struct tt_device *d, int svc, struct tt_conn *client)
{
    tt_forward_tcp_pre(d, svc, client, NULL, 0, NULL);
}

void tt_forward_tcp_pre(struct tt_device *d, int svc, struct tt_conn *client, const uint8_t *pre,
                        size_t prelen, const char *client_addr)
{
    char origin[TT_MAX_ADDR];
    if (client_addr && client_addr[0])
        snprintf(origin, sizeof(origin), "%s", client_addr);
    else
        tt_conn_peer(client, origin, sizeof(origin));
    struct tcp_client *tc = calloc(1, sizeof(*tc));
    int64_t id = tc ? open_stream(d, svc, origin, origin, &tc->ls) : TETHER_ERR_NOMEM;
    if (id < 0) {
        TT_LOG(TT_LOG_DEBUG, "cannot open stream device=%s peer=%s err=%s", TT_LOG_V(d->name),
               origin, tether_err_name((int)id));
        tt_forward_audit_refused(d->relay, d->name, d->svc[svc].name, "tcp", NULL, origin,
                                 id == TETHER_ERR_STREAM_LIMIT ? "refused" : "error");
        free(tc);
        tt_respond_drop(client);
        return;
    }
    if (tt_pipe_new(&tc->pipe, d->relay->loop, client, false, d->conn->ws, (uint32_t)id, pre,
                    prelen, &tcp_hooks, tc) != 0) {
        tt_wsconn_reset_stream(d->conn->ws, (uint32_t)id, TT_RESET_CANCEL);
        tt_limits_stream_give(&d->relay->limits, &tc->ls);
        tt_forward_audit_refused(d->relay, d->name, d->svc[svc].name, "tcp", NULL, origin, "error");
        free(tc);
        tt_respond_drop(client);
        return;
    }
    audit_begin(&tc->audit, d, svc);
    if (tc->audit.audit)
        snprintf(tc->origin, sizeof(tc->origin), "%s", origin);
    tc->next = clients.tcp;
    if (clients.tcp)
        clients.tcp->prev = tc;
    clients.tcp = tc;
}

/* The body of hc is past its deadline: --body-timeout from its start, plus a second per
 * --body-min-rate bytes received, plus the time the relay held the socket back. */
static bool body_late(const struct http_client *hc, uint64_t now)
{
    if (!clients.body_ms || !hc->body_since)
        return false;
    uint64_t allowed = clients.body_ms + hc->body_held_ms;
    if (clients.body_rate)
        allowed += hc->body_bytes * 1000 / clients.body_rate;
    return now - hc->body_since >= allowed;
}

/* Cuts hc off: with a 408 page when nothing of this request's answer came from the device yet
 * (the page is flushed, the socket closed; tt_pipe_abort), else without a word. */
static void body_timeout(struct http_client *hc)
{
    char page[TT_PAGE_MAX];
    int n = -1;
    if (tt_pipe_peer_bytes(hc->pipe) == hc->body_mark)
        n = tt_pages_render(page, sizeof(page), TT_PAGE_REQUEST_TIMEOUT);
    TT_LOG(TT_LOG_DEBUG,
           "http client timed out peer=%s stream=%u what=\"request body\" bytes=%llu status=%d",
           hc->origin, (unsigned)tt_pipe_stream_id(hc->pipe), (unsigned long long)hc->body_bytes,
           n > 0 ? 408 : 0);
    if (n > 0 && tt_pipe_write(hc->pipe, (const uint8_t *)page, (size_t)n) == 0)
        tt_pipe_abort(hc->pipe, TT_RESET_TIMEOUT);
    else
        tt_pipe_kill(hc->pipe, TT_RESET_TIMEOUT);
}

/* A private service's connection whose session has ended (expired, signed out or evicted
 * here or on another node: sessions.h reads Redis again at most every second). */
static bool session_gone(struct http_client *hc, int64_t wall)
{
    if (!hc->priv || hc->revoked || !hc->session[0])
        return false;
    if (tt_sessions_alive(&hc->r->sessions, hc->session, wall))
        return false;
    hc->revoked = true;
    TT_LOG(TT_LOG_DEBUG, "http client closed: session ended peer=%s", hc->origin);
    audit_outcome(&hc->audit, "ok"); /* expired or signed out: a normal end */
    tt_pipe_kill(hc->pipe, TT_RESET_CANCEL);
    return true;
}

static void sweep_http(uint64_t now, uint64_t step)
{
    int64_t wall = tt_relay_now_ms();
    for (struct http_client *hc = clients.list; hc; hc = hc->next) {
        if (session_gone(hc, wall))
            continue;
        if (hc->timed_out_at) {
            /* a 408 the client does not read: give up on it */
            if (now - hc->timed_out_at >= TT_RESPOND_LINGER_MS)
                tt_pipe_kill(hc->pipe, TT_RESET_TIMEOUT);
            continue;
        }
        if (hc->body_since && !tt_pipe_reading(hc->pipe))
            hc->body_held_ms += step; /* sampled: the relay holds the body back, not the client */
        const char *why = NULL;
        if (clients.idle_ms && now - tt_pipe_last_io(hc->pipe) >= clients.idle_ms)
            why = "idle";
        else if (hc->head_since && now - hc->head_since >= clients.head_ms)
            why = "request head";
        if (!why && body_late(hc, now)) {
            hc->timed_out_at = now ? now : 1;
            clients.lim->timeouts[TT_LIMITS_TIMEOUT_BODY]++;
            audit_outcome(&hc->audit, "refused");
            body_timeout(hc);
            continue;
        }
        if (!why)
            continue;
        hc->timed_out_at = now ? now : 1;
        clients.lim->timeouts[why[0] == 'i' ? TT_LIMITS_TIMEOUT_IDLE : TT_LIMITS_TIMEOUT_HEAD]++;
        /* an idle keep-alive connection ends normally; a head too slow is refused */
        audit_outcome(&hc->audit, why[0] == 'i' ? "ok" : "refused");
        TT_LOG(TT_LOG_DEBUG, "http client timed out peer=%s stream=%u what=\"%s\"", hc->origin,
               (unsigned)tt_pipe_stream_id(hc->pipe), why);
        /* Nothing is flushed (the client may have stopped reading). The pipe is freed from its
         * close callbacks, later: the list stays intact here. */
        tt_pipe_kill(hc->pipe, TT_RESET_CANCEL);
    }
}

static void sweep_tcp(uint64_t now)
{
    if (!clients.tcp_idle_ms || now < clients.tcp_next)
        return;
    clients.tcp_next = now + clients.tcp_every;
    for (struct tcp_client *tc = clients.tcp; tc; tc = tc->next) {
        if (tc->timed_out || now - tt_pipe_last_io(tc->pipe) < clients.tcp_idle_ms)
            continue;
        tc->timed_out = true;
        clients.lim->timeouts[TT_LIMITS_TIMEOUT_TCP_IDLE]++;
        audit_outcome(&tc->audit, "ok"); /* nobody used it: it ends normally */
        TT_LOG(TT_LOG_DEBUG, "tcp client timed out device=%s stream=%u what=idle", tc->ls.dev,
               (unsigned)tt_pipe_stream_id(tc->pipe));
        /* the device hears RESET TIMEOUT; freed from the close callbacks, later */
        tt_pipe_kill(tc->pipe, TT_RESET_TIMEOUT);
    }
}

static void on_sweep(uv_timer_t *t)
{
    uint64_t now = uv_now(t->loop);
    uint64_t step = now - clients.last_sweep;
    clients.last_sweep = now;
    sweep_http(now, step);
    sweep_tcp(now);
}

/* A quarter of ms, within [50 ms, cap]. */
static uint64_t quarter(uint64_t ms, uint64_t cap)
{
    ms /= 4;
    return ms < 50 ? 50 : ms > cap ? cap : ms;
}

int tt_forward_start(uv_loop_t *loop, const struct tt_config *cfg, struct tt_limits *lim)
{
    uint64_t every = cfg->head_timeout_ms;
    if (cfg->idle_timeout_ms && cfg->idle_timeout_ms < every)
        every = cfg->idle_timeout_ms;
    if (cfg->body_timeout_ms && cfg->body_timeout_ms < every)
        every = cfg->body_timeout_ms;
    every = quarter(every, 1000);
    /* idle TCP clients are looked at less often: an hour's timeout needs no precision */
    clients.tcp_every = quarter(cfg->tcp_idle_timeout_ms, 10000);
    if (cfg->tcp_idle_timeout_ms && clients.tcp_every < every)
        every = clients.tcp_every;
    int rc = uv_timer_init(loop, &clients.timer);
    if (rc)
        return rc;
    clients.loop = loop;
    clients.lim = lim;
    clients.idle_ms = cfg->idle_timeout_ms;
    clients.head_ms = cfg->head_timeout_ms;
    clients.body_ms = cfg->body_timeout_ms;
    clients.body_rate = cfg->body_min_rate;
    clients.tcp_idle_ms = cfg->tcp_idle_timeout_ms;
    clients.last_sweep = uv_now(loop);
    clients.tcp_next = 0;
    clients.started = true;
    uv_timer_start(&clients.timer, on_sweep, every, every);
    uv_unref((uv_handle_t *)&clients.timer);
    return 0;
}

void tt_forward_stop(void)
{
    if (!clients.started)
        return;
    clients.started = false;
    uv_close((uv_handle_t *)&clients.timer, NULL);
}
