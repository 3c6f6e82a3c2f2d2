/* admin.c - answers on the admin listener (admin.h): the dashboard, the device API, the grants
 * API, metrics and the health check. Every answer closes the connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include "tether_err.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/wsconn.h"
#include "relay/admin/admin.h"
#include "relay/admin/adminbuf.h"
#include "relay/admin/adminhost.h"
#include "relay/admin/adminpage.h"
#include "relay/admin/adminquery.h"
#include "relay/admin/adminsession.h"
#include "relay/cluster/cluster.h"
#include "relay/device/device.h"
#include "relay/access/grants.h"
#include "relay/http/httpproxy.h"
#include "relay/http/httpstats.h"
#include "relay/lib/form.h"
#include "relay/admin/procmetrics.h"
#include "relay/access/signin.h"
#include "relay/relay.h"
#include "relay/device/visitor.h"
#include "relay/admin/webhook.h"

/* The commit built (buildinfo.c; not linked into unit tests: NULL there). */
extern const char *const tt_buildinfo_commit __attribute__((weak));

static const char oom[] = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                          "Connection: close\r\n\r\n";

/* Sends status with body[0..len) (left out for HEAD) and closes. extra: more header lines,
 * each ending in CRLF, or NULL. */
static void answer(struct tt_headconn *hc, const char *status, const char *ctype, const char *extra,
                   const char *body, size_t len)
{
    struct tt_adminbuf b = {.ok = true};
    tt_adminbuf_fmt(&b,
                    "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                    "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                    status, ctype, len, extra ? extra : "");
    if (hc->hp.p.method != HTTP_HEAD)
        tt_adminbuf_add(&b, body, len);
    if (b.ok)
        tt_headconn_respond(hc, b.p, b.len);
    else
        tt_headconn_respond(hc, oom, sizeof(oom) - 1);
    free(b.p);
}

/* answer() for a body holding a secret (a grant's token): every copy is wiped once sent. */
static void answer_secret(struct tt_headconn *hc, const char *status, const char *ctype,
                          const char *extra, const char *body, size_t len)
{
    struct tt_adminbuf b = {.ok = true};
    tt_adminbuf_fmt(&b,
                    "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                    "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                    status, ctype, len, extra ? extra : "");
    if (hc->hp.p.method != HTTP_HEAD)
        tt_adminbuf_add(&b, body, len);
    if (b.ok)
        tt_headconn_respond(hc, b.p, b.len);
    else
        tt_headconn_respond(hc, oom, sizeof(oom) - 1);
    if (b.p)
        tt_secret_wipe(b.p, b.cap);
    free(b.p);
}

static void answer_oom(struct tt_headconn *hc)
{
    answer(hc, "500 Internal Server Error", "text/plain; charset=utf-8", NULL, "out of memory\n",
           14);
}

/* Answers 200 with the page built in b (of type ctype), or 500 if building it ran out of
 * memory (ok false or b->ok false); frees b's bytes either way. */
static void answer_built(struct tt_headconn *hc, bool ok, const char *ctype, struct tt_adminbuf *b)
{
    if (ok && b->ok)
        answer(hc, "200 OK", ctype, NULL, b->p, b->len);
    else
        answer_oom(hc);
    free(b->p);
}

static void answer_json(struct tt_headconn *hc, const char *status, const char *extra, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) {
        answer(hc, "500 Internal Server Error", "application/json", NULL,
               "{\"error\":\"out of memory\"}\n", 26);
        return;
    }
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (t) {
        s = t;
        s[n++] = '\n';
        s[n] = '\0';
    }
    answer(hc, status, "application/json", extra, s, n);
    free(s);
}

static void answer_error(struct tt_headconn *hc, const char *status, const char *extra,
                         const char *msg)
{
    answer_json(hc, status, extra, json_pack("{s:s}", "error", msg));
}

/* ---- device views ---- */

static bool gone(const struct tt_device *d, int64_t now)
{
    return !d->conn && now - d->offline_since >= (int64_t)d->relay->cfg.grace_ms;
}

struct devlist {
    struct tt_device **v;
    size_t n, cap;
    int64_t now;
    bool ok;
};

static int collect_one(const char *key, void *val, void *ud)
{
    (void)key;
    struct devlist *l = ud;
    struct tt_device *d = val;
    if (gone(d, l->now))
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        struct tt_device **v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            l->ok = false;
            return 1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = d;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(struct tt_device *const *)a)->name, (*(struct tt_device *const *)b)->name);
}

/* The devices the registry knows (online, or offline within the grace period), by name.
 * Returns false when out of memory. Free l->v. */
static bool collect(struct tt_relay *r, struct devlist *l)
{
    memset(l, 0, sizeof(*l));
    l->ok = true;
    l->now = tt_relay_now_ms();
    tt_strmap_foreach(&r->by_name, collect_one, l);
    if (l->ok && l->n)
        qsort(l->v, l->n, sizeof(l->v[0]), by_name);
    return l->ok;
}

/* ISO-8601 UTC ("2026-11-25T03:20:00Z") of unix milliseconds ms, "" for 0. */
static void iso_time(int64_t ms, char out[32])
{
    out[0] = '\0';
    if (ms <= 0)
        return;
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* What the admin API shows of d, at now. */
struct view {
    bool online;
    char url[TT_MAX_ADDR + 1];
    char since[32], seen[32];
    const char *remote; /* "" if never connected */
    uint64_t in, out;
};

static void view_of(const struct tt_device *d, int64_t now, struct view *v)
{
    memset(v, 0, sizeof(*v));
    v->online = tt_device_online(d);
    /* the device's URL is its main HTTP service's: a device without one (TCP only) has none;
     * one restored from the registry and not registered since keeps it (its registry record
     * holds TCP ports only: whether it has an HTTP service is not known) */
    if ((d->connects > 0 && tt_device_http_service(d, "") < 0) ||
        tt_config_device_url(&d->relay->cfg, d->label, v->url, sizeof(v->url)) < 0)
        v->url[0] = '\0';
    iso_time(v->online ? d->connected_since : 0, v->since);
    iso_time(v->online ? now : d->last_seen, v->seen);
    v->remote = d->remote_addr;
    v->in = d->bytes_in;
    v->out = d->bytes_out;
    if (d->conn && d->conn->ws) {
        v->in += tt_wsconn_bytes_in(d->conn->ws);
        v->out += tt_wsconn_bytes_out(d->conn->ws);
    }
}

/* The public address of service s of d: its URL (http) or "" (tcp: the host is the domain). */
static void svc_url(const struct tt_device *d, const struct tt_device_svc *s,
                    char out[TT_MAX_ADDR + 1])
{
    char prefix[TT_ROUTE_SVCLEN + 2 + TT_MAX_LABEL + 1];
    if (s->dnsname[0])
        snprintf(prefix, sizeof(prefix), "%s--%s", s->dnsname, d->label);
    else
        snprintf(prefix, sizeof(prefix), "%s", d->label);
    if (tt_config_device_url(&d->relay->cfg, prefix, out, TT_MAX_ADDR + 1) < 0)
        out[0] = '\0';
}

static json_t *str_or_null(const char *s)
{
    return s && s[0] ? json_string(s) : json_null();
}

/* One TCP service as the API shows it: private, with no port or host (it has none); or its
 * public port. */
static json_t *tcp_json(const struct tt_relay *r, const char *name, bool priv, json_int_t port)
{
    if (priv)
        return json_pack("{s:s, s:s, s:b}", "name", name, "kind", "tcp", "private", 1);
    return json_pack("{s:s, s:s, s:s, s:I, s:b}", "name", name, "kind", "tcp", "host",
                     r->cfg.domain, "port", port, "private", 0);
}

/* The services of d as the API shows them (a new array), or NULL when out of memory. Every
 * service has "private"; a private TCP service has no "host" or "port". */
static json_t *services_json(const struct tt_device *d)
{
    json_t *svcs = json_array();
    for (uint8_t i = 0; svcs && i < d->nsvc; i++) {
        const struct tt_device_svc *s = &d->svc[i];
        bool priv = s->is_private; /* decided at registration (device.c) */
        json_t *o;
        if (s->kind == TT_SERVICE_HTTP) {
            char url[TT_MAX_ADDR + 1];
            svc_url(d, s, url);
            o = json_pack("{s:s, s:s, s:s, s:b}", "name", s->name, "kind", "http", "url", url,
                          "private", priv);
        } else {
            o = tcp_json(d->relay, s->name, priv || !s->portno, (json_int_t)s->portno);
        }
        if (json_array_append_new(svcs, o) != 0) {
            json_decref(svcs);
            svcs = NULL;
        }
    }
    return svcs;
}

char *tt_admin_services_dump(const struct tt_device *d)
{
    json_t *j = json_array();
    for (uint8_t i = 0; j && i < d->nsvc; i++) {
        const struct tt_device_svc *s = &d->svc[i];
        json_t *o = s->kind == TT_SERVICE_HTTP
                        ? json_pack("{s:s, s:s, s:s, s:b}", "name", s->name, "kind", "http", "sub",
                                    s->dnsname, "private", s->is_private)
                        : json_pack("{s:s, s:s, s:i, s:b}", "name", s->name, "kind", "tcp", "port",
                                    (json_int_t)s->portno, "private", s->is_private);
        if (json_array_append_new(j, o) != 0) {
            json_decref(j);
            j = NULL;
        }
    }
    char *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return out;
}

/* One device as the API and the dashboard show it: a device of this node, or (cluster mode) a
 * record of the shared registry. */
struct row {
    char name[TT_MAX_NAME + 1];
    char label[TT_MAX_LABEL + 1];
    char node[TT_NODE_ID_MAX + 1]; /* cluster mode: the holder while online, else "" */
    struct view v;
    char remote[64];
    uint64_t streams;
    json_t *svcs; /* owned; NULL when out of memory */
};

static void row_local(const struct tt_device *d, int64_t now, struct row *w)
{
    memset(w, 0, sizeof(*w));
    snprintf(w->name, sizeof(w->name), "%s", d->name);
    snprintf(w->label, sizeof(w->label), "%s", d->label);
    view_of(d, now, &w->v);
    snprintf(w->remote, sizeof(w->remote), "%s", d->remote_addr);
    w->v.remote = w->remote;
    w->streams = d->streams;
    w->svcs = services_json(d);
    if (d->relay->cluster && w->v.online)
        snprintf(w->node, sizeof(w->node), "%s", d->relay->cfg.node_id);
}

/* One service of a record held elsewhere, from what its holder published (tt_admin_services_dump),
 * with the URL this node gives it; NULL when malformed. Its "private" is the holder's decision
 * (a holder of an older version publishes none: this node's rules decide then). */
static json_t *remote_service(const struct tt_relay *r, const char *device, const char *label,
                              json_t *p)
{
    const char *name = json_string_value(json_object_get(p, "name"));
    const char *kind = json_string_value(json_object_get(p, "kind"));
    if (!name || !kind)
        return NULL;
    json_t *pv = json_object_get(p, "private");
    bool priv =
        json_is_boolean(pv) ? json_is_true(pv) : !tt_access_public(&r->access, device, name);
    if (strcmp(kind, "tcp") == 0) {
        json_t *port = json_object_get(p, "port");
        if (!json_is_integer(port))
            return NULL;
        return tcp_json(r, name, priv || json_integer_value(port) == 0, json_integer_value(port));
    }
    const char *sub = json_string_value(json_object_get(p, "sub"));
    char prefix[TT_ROUTE_SVCLEN + 2 + TT_MAX_LABEL + 1], url[TT_MAX_ADDR + 1];
    if (sub && sub[0])
        snprintf(prefix, sizeof(prefix), "%.*s--%s", TT_ROUTE_SVCLEN, sub, label);
    else
        snprintf(prefix, sizeof(prefix), "%s", label);
    if (tt_config_device_url(&r->cfg, prefix, url, sizeof(url)) < 0)
        url[0] = '\0';
    return json_pack("{s:s, s:s, s:s, s:b}", "name", name, "kind", "http", "url", url, "private",
                     priv);
}

/* The services of a record held elsewhere: those its holder published, else its TCP ports. */
static json_t *remote_services(const struct tt_relay *r, const struct tt_cluster_dev *cd)
{
    json_t *pub = cd->svc ? json_loads(cd->svc, 0, NULL) : NULL;
    json_t *j = json_array();
    if (json_is_array(pub)) {
        size_t i;
        json_t *p;
        json_array_foreach(pub, i, p)
        {
            json_t *o = remote_service(r, cd->name, cd->label, p);
            if (o && json_array_append_new(j, o) != 0) {
                json_decref(j);
                j = NULL;
                break;
            }
        }
        json_decref(pub);
        return j;
    }
    json_decref(pub);
    for (uint8_t i = 0; j && i < cd->nports; i++) {
        json_t *o = tcp_json(r, cd->ports[i].service, false, (json_int_t)cd->ports[i].port);
        if (json_array_append_new(j, o) != 0) {
            json_decref(j);
            j = NULL;
        }
    }
    return j;
}

/* Whether a record held elsewhere has a main HTTP service (one at LABEL.DOMAIN): one its holder
 * published without a "sub"; a holder of an older version publishes no services, and then the
 * record keeps its URL as before. */
static bool remote_has_main_http(const struct tt_cluster_dev *cd)
{
    json_t *pub = cd->svc ? json_loads(cd->svc, 0, NULL) : NULL;
    bool has = !json_is_array(pub);
    size_t i;
    json_t *p;
    json_array_foreach(pub, i, p)
    {
        const char *kind = json_string_value(json_object_get(p, "kind"));
        const char *sub = json_string_value(json_object_get(p, "sub"));
        if (kind && strcmp(kind, "http") == 0 && (!sub || !sub[0]))
            has = true;
    }
    json_decref(pub);
    return has;
}

static void row_remote(const struct tt_relay *r, const struct tt_cluster_dev *cd, int64_t now,
                       struct row *w)
{
    memset(w, 0, sizeof(*w));
    snprintf(w->name, sizeof(w->name), "%s", cd->name);
    snprintf(w->label, sizeof(w->label), "%s", cd->label);
    /* a record naming this node without a local session is a session just ending */
    w->v.online = cd->node_alive && strcmp(cd->node, r->cfg.node_id) != 0;
    if (w->v.online)
        snprintf(w->node, sizeof(w->node), "%s", cd->node);
    if (!remote_has_main_http(cd) ||
        tt_config_device_url(&r->cfg, cd->label, w->v.url, sizeof(w->v.url)) < 0)
        w->v.url[0] = '\0';
    iso_time(w->v.online && cd->has_live ? cd->connected_since : 0, w->v.since);
    iso_time(w->v.online ? now : cd->last_seen, w->v.seen);
    snprintf(w->remote, sizeof(w->remote), "%s", cd->remote);
    w->v.remote = w->remote;
    w->v.in = cd->in;
    w->v.out = cd->out;
    w->streams = cd->streams;
    w->svcs = remote_services(r, cd);
}

static json_t *row_json(const struct tt_relay *r, struct row *w)
{
    json_t *svcs = w->svcs;
    w->svcs = NULL;
    if (!svcs)
        return NULL;
    json_t *j = json_pack("{s:s, s:b, s:s, s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:I}", "name",
                          w->name, "online", w->v.online, "label", w->label, "url",
                          str_or_null(w->v.url), "services", svcs, "connected_since",
                          str_or_null(w->v.since), "last_seen", str_or_null(w->v.seen),
                          "remote_addr", str_or_null(w->v.remote), "bytes_in", (json_int_t)w->v.in,
                          "bytes_out", (json_int_t)w->v.out, "streams", (json_int_t)w->streams);
    if (j && r->cluster && json_object_set_new(j, "node", str_or_null(w->node)) != 0) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* Devices as shown, by name: a page (page_get) or one device (rows_get). In cluster mode a
 * device of this node is shown from memory, the others' as their holders published them (this
 * node's alone when Redis cannot be reached). Free with rows_free. */
struct rows {
    struct row *v;
    size_t n;
    int64_t now;
};

static void rows_free(struct rows *rs)
{
    for (size_t i = 0; i < rs->n; i++)
        json_decref(rs->v[i].svcs);
    free(rs->v);
    rs->v = NULL;
    rs->n = 0;
}

/* Cluster mode: whether cd is shown (known: online, or offline within the grace period). */
static bool record_known(const struct tt_relay *r, const struct tt_cluster_dev *cd, int64_t now)
{
    if (cd->node[0])
        return true;
    return cd->offline_since <= 0 || now - cd->offline_since < (int64_t)r->cfg.grace_ms;
}

static bool rows_cluster(struct tt_relay *r, const char *name, struct rows *rs, bool *done)
{
    struct tt_cluster_dev *cds;
    size_t n;
    *done = false;
    int rc = tt_cluster_devs(r->cluster, name, &cds, &n);
    if (rc == TETHER_ERR_IO)
        return true; /* Redis unreachable: this node's devices only */
    if (rc)
        return false;
    rs->v = n ? calloc(n, sizeof(*rs->v)) : NULL;
    if (n && !rs->v) {
        tt_cluster_devs_free(cds, n);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const struct tt_cluster_dev *cd = &cds[i];
        if (!record_known(r, cd, rs->now))
            continue;
        struct tt_device *d = tt_strmap_get(&r->by_name, cd->name);
        if (d && !gone(d, rs->now))
            row_local(d, rs->now, &rs->v[rs->n]);
        else
            row_remote(r, cd, rs->now, &rs->v[rs->n]);
        rs->n++;
    }
    tt_cluster_devs_free(cds, n);
    *done = true;
    return true;
}

/* The device called name, if known (rs->n 0 or 1). Returns false when out of memory. */
static bool rows_get(struct tt_relay *r, const char *name, struct rows *rs)
{
    memset(rs, 0, sizeof(*rs));
    rs->now = tt_relay_now_ms();
    if (r->cluster) {
        bool done;
        if (!rows_cluster(r, name, rs, &done))
            return false;
        if (done)
            return true;
    }
    struct tt_device *d = tt_strmap_get(&r->by_name, name);
    if (!d || gone(d, rs->now))
        return true;
    if (!(rs->v = calloc(1, sizeof(*rs->v))))
        return false;
    row_local(d, rs->now, &rs->v[0]);
    rs->n = 1;
    return true;
}

/* ---- pages of the device list (adminquery.h) ---- */

/* One page of the devices a query asks for, with the counts the dashboard shows. */
struct page {
    struct rows rs; /* the page, by name */
    size_t total;   /* devices that match, on every page */
    char next[TT_MAX_NAME + 1];
    bool has_next;
    char prev[TT_MAX_NAME + 1]; /* the page before starts after this ("": the first) */
    size_t online, offline;     /* every known device */
    /* cluster mode: online devices per live node (cp.nodes) */
    struct tt_cluster_page cp;
    bool cluster; /* cp was read */
};

static void page_free(struct page *pg)
{
    rows_free(&pg->rs);
    if (pg->cluster)
        tt_cluster_page_free(&pg->cp);
}

/* This node's devices: counted, filtered, and the page's rows built (only theirs). */
static bool page_local(struct tt_relay *r, const struct tt_adminquery *q, struct page *pg)
{
    struct devlist l;
    memset(&l, 0, sizeof(l));
    l.ok = true;
    l.now = pg->rs.now;
    tt_strmap_foreach(&r->by_name, collect_one, &l);
    if (!l.ok) {
        free(l.v);
        return false;
    }
    /* keep the matches at the front of l.v, sorted; the page starts after q->after */
    size_t k = 0;
    for (size_t i = 0; i < l.n; i++) {
        struct tt_device *d = l.v[i];
        bool on = tt_device_online(d);
        *(on ? &pg->online : &pg->offline) += 1;
        if (tt_adminquery_match(q, d->name, d->label, on))
            l.v[k++] = d;
    }
    pg->total = k;
    if (k > 1)
        qsort(l.v, k, sizeof(l.v[0]), by_name);
    size_t lo = 0, hi = k; /* the first index after q->after */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tt_adminquery_after(q, l.v[mid]->name))
            hi = mid;
        else
            lo = mid + 1;
    }
    size_t n = k - lo < q->limit ? k - lo : q->limit;
    pg->rs.v = n ? calloc(n, sizeof(*pg->rs.v)) : NULL;
    if (n && !pg->rs.v) {
        free(l.v);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        row_local(l.v[lo + i], pg->rs.now, &pg->rs.v[pg->rs.n++]);
    if (lo + n < k) {
        pg->has_next = true;
        snprintf(pg->next, sizeof(pg->next), "%s", l.v[lo + n - 1]->name);
    }
    if (lo > q->limit)
        snprintf(pg->prev, sizeof(pg->prev), "%s", l.v[lo - q->limit - 1]->name);
    free(l.v);
    return true;
}

/* Cluster mode: the page from Redis (tt_cluster_devs_page); *done false when Redis cannot be
 * reached (this node's devices are shown then). */
static bool page_cluster(struct tt_relay *r, const struct tt_adminquery *q, struct page *pg,
                         bool *done)
{
    *done = false;
    int rc = tt_cluster_devs_page(r->cluster, q, pg->rs.now, r->cfg.grace_ms, &pg->cp);
    if (rc == TETHER_ERR_IO)
        return true;
    if (rc)
        return false;
    pg->cluster = true;
    pg->total = pg->cp.total;
    pg->online = pg->cp.online;
    pg->offline = pg->cp.offline;
    pg->rs.v = pg->cp.n ? calloc(pg->cp.n, sizeof(*pg->rs.v)) : NULL;
    if (pg->cp.n && !pg->rs.v)
        return false;
    for (size_t i = 0; i < pg->cp.n; i++) {
        const struct tt_cluster_dev *cd = &pg->cp.v[i];
        struct tt_device *d = tt_strmap_get(&r->by_name, cd->name);
        if (d && !gone(d, pg->rs.now))
            row_local(d, pg->rs.now, &pg->rs.v[pg->rs.n]);
        else
            row_remote(r, cd, pg->rs.now, &pg->rs.v[pg->rs.n]);
        pg->rs.n++;
    }
    snprintf(pg->prev, sizeof(pg->prev), "%s", pg->cp.prev);
    if (pg->cp.more && pg->cp.n) {
        pg->has_next = true;
        snprintf(pg->next, sizeof(pg->next), "%s", pg->cp.v[pg->cp.n - 1].name);
    }
    *done = true;
    return true;
}

/* The page q asks for. Returns false when out of memory. Free with page_free. */
static bool page_get(struct tt_relay *r, const struct tt_adminquery *q, struct page *pg)
{
    memset(pg, 0, sizeof(*pg));
    pg->rs.now = tt_relay_now_ms();
    if (r->cluster) {
        bool done;
        if (!page_cluster(r, q, pg, &done))
            return false;
        if (done)
            return true;
    }
    return page_local(r, q, pg);
}

/* The query of the request hc (what follows '?' in its target), parsed into q; false after
 * answering 400 (json: the API's JSON error, else a line of text). */
static bool query_of(struct tt_headconn *hc, struct tt_adminquery *q, bool json)
{
    const char *url = (const char *)hc->data + hc->hp.url_off;
    size_t ulen = hc->hp.url_len;
    const char *qm = memchr(url, '?', ulen);
    size_t off = qm ? (size_t)(qm - url) + 1 : ulen;
    const char *hash = memchr(url + off, '#', ulen - off);
    size_t qlen = (hash ? (size_t)(hash - url) : ulen) - off;
    char err[TT_ERRLEN];
    if (tt_adminquery_parse(url + off, qlen, q, err) == 0)
        return true;
    if (json) {
        answer_error(hc, "400 Bad Request", NULL, err);
    } else {
        char line[TT_ERRLEN + 32];
        int n = snprintf(line, sizeof(line), "bad query: %s\n", err);
        answer(hc, "400 Bad Request", "text/plain; charset=utf-8", NULL, line,
               n > 0 && (size_t)n < sizeof(line) ? (size_t)n : 0);
    }
    return false;
}

static void api_devices(struct tt_headconn *hc, struct tt_relay *r)
{
    struct tt_adminquery q;
    struct page pg;
    if (!query_of(hc, &q, true))
        return;
    json_t *arr = page_get(r, &q, &pg) ? json_array() : NULL;
    for (size_t i = 0; arr && i < pg.rs.n; i++) {
        if (json_array_append_new(arr, row_json(r, &pg.rs.v[i])) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    json_t *j = arr ? json_pack("{s:o, s:I, s:o}", "devices", arr, "total", (json_int_t)pg.total,
                                "next", pg.has_next ? json_string(pg.next) : json_null())
                    : NULL;
    page_free(&pg);
    answer_json(hc, "200 OK", NULL, j);
}

static void api_device(struct tt_headconn *hc, struct tt_relay *r, const char *name)
{
    struct rows rs;
    if (!rows_get(r, name, &rs)) {
        rows_free(&rs);
        answer_error(hc, "500 Internal Server Error", NULL, "out of memory");
        return;
    }
    if (rs.n == 0)
        answer_error(hc, "404 Not Found", NULL, "no such device");
    else
        answer_json(hc, "200 OK", NULL, row_json(r, &rs.v[0]));
    rows_free(&rs);
}

/* The device named name, unless unknown or past its grace period. */
static struct tt_device *find_device(struct tt_relay *r, const char *name)
{
    struct tt_device *d = tt_strmap_get(&r->by_name, name);
    return d && !gone(d, tt_relay_now_ms()) ? d : NULL;
}

/* Deletes name: here when this node has it, else (cluster mode) in the shared registry, where
 * its label and ports are released at once and its holder, if any, closes its session at its
 * next beat. Returns 0 or TETHER_ERR_NOT_FOUND (or the registry's error). */
static int delete_record(struct tt_relay *r, const char *name)
{
    /* the "deleted" webhook goes from the node that answers the DELETE, once (the holder, told
     * at its next beat, closes the session without one) */
    struct tt_device *d = find_device(r, name);
    if (d) {
        char label[TT_MAX_LABEL + 1];
        snprintf(label, sizeof(label), "%s", d->label);
        int drc = tt_device_delete(r, name);
        if (drc == 0)
            tt_webhook_emit(r->webhooks, "deleted", name, label, tt_relay_now_ms());
        return drc;
    }
    if (!r->cluster)
        return TETHER_ERR_NOT_FOUND;
    struct tt_cluster_dev *cd;
    size_t n;
    char label[TT_MAX_LABEL + 1] = "";
    int rc = tt_cluster_devs(r->cluster, name, &cd, &n);
    bool known = rc == 0 && n == 1 && record_known(r, &cd[0], tt_relay_now_ms());
    if (known)
        snprintf(label, sizeof(label), "%s", cd[0].label);
    tt_cluster_devs_free(cd, n);
    if (rc)
        return rc;
    if (!known)
        return TETHER_ERR_NOT_FOUND;
    rc = tt_registry_del(r->reg, name);
    if (rc == 0) {
        TT_LOG(TT_LOG_INFO, "device deleted device=%s (held elsewhere or offline)", TT_LOG_V(name));
        tt_webhook_emit(r->webhooks, "deleted", name, label, tt_relay_now_ms());
    }
    return rc;
}

/* Deletes name's device key first (the name is then free for a new device, even when its record
 * expired long ago), then its record (delete_record). Returns 0 when either was there,
 * TETHER_ERR_NOT_FOUND when neither, or the registry's error (nothing deleted when the key's
 * deletion failed). */
static int delete_device(struct tt_relay *r, const char *name)
{
    int krc = tt_registry_key_del(r->reg, name);
    if (krc != 0 && krc != TETHER_ERR_NOT_FOUND)
        return krc;
    if (krc == 0)
        TT_LOG(TT_LOG_INFO, "device key deleted, the name is free device=%s", name);
    int rc = delete_record(r, name);
    return rc == TETHER_ERR_NOT_FOUND && krc == 0 ? 0 : rc;
}

static void api_delete(struct tt_headconn *hc, struct tt_relay *r, const char *name)
{
    int rc = delete_device(r, name);
    if (rc == TETHER_ERR_IO) {
        answer_error(hc, "503 Service Unavailable", NULL, "the registry cannot be reached");
        return;
    }
    if (rc == TETHER_ERR_NOMEM) {
        answer_error(hc, "500 Internal Server Error", NULL, "out of memory");
        return;
    }
    if (rc != 0) {
        answer_error(hc, "404 Not Found", NULL, "no such device");
        return;
    }
    answer_json(hc, "200 OK", NULL, json_pack("{s:s}", "deleted", name));
}

/* ---- grants (grants.h) ---- */

/* Largest POST /api/grants body: a user, 64 patterns and a ttl fit well within. */
#define TT_ADMIN_GRANT_BODY_MAX (16u * 1024)

/* One grant as the API shows it (never its token or hash), or NULL when out of memory. */
static json_t *grant_json(const struct tt_grant *gr)
{
    char created[32], expires[32];
    json_t *pats = json_array();
    for (size_t i = 0; pats && i < gr->npatterns; i++) {
        if (json_array_append_new(pats, json_string(gr->patterns[i])) != 0) {
            json_decref(pats);
            pats = NULL;
        }
    }
    if (!pats)
        return NULL;
    iso_time(gr->created, created);
    iso_time(gr->expires, expires);
    return json_pack("{s:s, s:s, s:o, s:s, s:s}", "id", gr->id, "user", gr->user, "grants", pats,
                     "created", created, "expires", expires);
}

static void api_grants(struct tt_headconn *hc, struct tt_relay *r)
{
    int64_t now = tt_relay_now_ms();
    const struct tt_grant **v;
    size_t n;
    /* cluster mode: the cluster's grants as Redis has them now (else the last ones read) */
    (void)tt_grants_refresh(r->access.grants, now);
    if (tt_grants_list(r->access.grants, now, &v, &n) != 0) {
        answer_error(hc, "500 Internal Server Error", NULL, "out of memory");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        if (json_array_append_new(arr, grant_json(v[i])) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    free(v);
    answer_json(hc, "200 OK", NULL, arr ? json_pack("{s:o}", "grants", arr) : NULL);
}

static void api_grant(struct tt_headconn *hc, struct tt_relay *r, const char *id)
{
    int64_t now = tt_relay_now_ms();
    const struct tt_grant *gr = tt_grants_find(r->access.grants, id, now);
    if (!gr && tt_grants_refresh(r->access.grants, now) == 0)
        gr = tt_grants_find(r->access.grants, id, now);
    if (!gr)
        answer_error(hc, "404 Not Found", NULL, "no such grant");
    else
        answer_json(hc, "200 OK", NULL, grant_json(gr));
}

/* Revokes grant id, closing this node's connections under it. Returns 0, TETHER_ERR_IO (the
 * store cannot be reached) or another error (no such grant). */
static int grant_revoke(struct tt_relay *r, const char *id)
{
    int64_t now = tt_relay_now_ms();
    int rc = tt_grants_delete(r->access.grants, id, now);
    if (rc != 0)
        return rc;
    /* this node's connections under it close now; the other nodes' at their next read */
    size_t closed = tt_access_recheck(&r->access, now);
    if (closed)
        TT_LOG(TT_LOG_INFO, "grant revoked id=%s connections_closed=%zu", id, closed);
    return 0;
}

static void api_grant_delete(struct tt_headconn *hc, struct tt_relay *r, const char *id)
{
    int rc = grant_revoke(r, id);
    if (rc == TETHER_ERR_IO) {
        answer_error(hc, "503 Service Unavailable", NULL,
                     "the grant store (redis) cannot be reached: the grant is not revoked");
        return;
    }
    if (rc != 0) {
        answer_error(hc, "404 Not Found", NULL, "no such grant");
        return;
    }
    answer_json(hc, "200 OK", NULL, json_pack("{s:s}", "deleted", id));
}

/* The body of POST /api/grants is here: make the grant and show its token, once. */
static void grants_post_body(struct tt_headconn *hc, void *ud)
{
    struct tt_relay *r = ud;
    char err[TT_ERRLEN], id[TT_GRANT_ID_LEN + 1], token[TT_GRANT_TOKEN_LEN + 1], exp[32];
    int64_t expires;
    struct tt_grants_request *rq = malloc(sizeof(*rq));
    if (!rq) {
        answer_error(hc, "500 Internal Server Error", NULL, "out of memory");
        return;
    }
    if (tt_grants_parse_request((const char *)hc->data + hc->headlen, tt_headconn_body_len(hc), rq,
                                err) != 0) {
        free(rq);
        answer_error(hc, "400 Bad Request", NULL, err);
        return;
    }
    int rc = tt_grants_create(r->access.grants, rq->user, rq->p, rq->n, rq->ttl_ms,
                              tt_relay_now_ms(), id, token, &expires, err);
    free(rq);
    if (rc != 0) {
        answer_error(hc,
                     rc == TETHER_ERR_INVAL   ? "400 Bad Request"
                     : rc == TETHER_ERR_NOMEM ? "500 Internal Server Error"
                                              : "503 Service Unavailable",
                     NULL, err);
        return;
    }
    /* The token's only appearance: written straight into the answer, which is then wiped. */
    char body[256], out[1024];
    iso_time(expires, exp);
    int blen = snprintf(body, sizeof(body), "{\"id\":\"%s\",\"token\":\"%s\",\"expires\":\"%s\"}\n",
                        id, token, exp);
    int len = snprintf(out, sizeof(out),
                       "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                       "Content-Length: %d\r\nLocation: /api/grants/%s\r\n"
                       "Cache-Control: no-store\r\nConnection: close\r\n\r\n%s",
                       blen, id, body);
    tt_secret_wipe(token, sizeof(token));
    tt_secret_wipe(body, sizeof(body));
    tt_headconn_respond(hc, out, len > 0 && (size_t)len < sizeof(out) ? (size_t)len : 0);
    tt_secret_wipe(out, sizeof(out));
}

static void api_grants_post(struct tt_headconn *hc, struct tt_relay *r)
{
    int rc = tt_headconn_read_body(hc, TT_ADMIN_GRANT_BODY_MAX, grants_post_body);
    if (rc == 1)
        grants_post_body(hc, r);
    else if (rc == TETHER_ERR_HTTP)
        answer_error(hc, "411 Length Required", NULL, "a Content-Length is required");
    else if (rc == TETHER_ERR_TOO_LARGE)
        answer_error(hc, "413 Content Too Large", NULL, "the body is larger than 16 KiB");
    else if (rc != 0)
        answer_error(hc, "400 Bad Request", NULL, "bad request body");
}

/* Routes /api/grants and /api/grants/ID (path[0..plen) starts with "/api/grants"). Returns false
 * when the path is another one. */
static bool route_grants(struct tt_headconn *hc, struct tt_relay *r, const char *path, size_t plen)
{
    static const char base[] = "/api/grants";
    size_t blen = sizeof(base) - 1;
    enum http_method m = hc->hp.p.method;
    bool get = m == HTTP_GET || m == HTTP_HEAD;
    if (plen < blen || memcmp(path, base, blen) != 0 || (plen > blen && path[blen] != '/'))
        return false;
    if (plen <= blen + 1) {
        if (get)
            api_grants(hc, r);
        else if (m == HTTP_POST)
            api_grants_post(hc, r);
        else
            answer_error(hc, "405 Method Not Allowed", "Allow: GET, HEAD, POST\r\n",
                         "method not allowed");
        return true;
    }
    char id[TT_GRANT_ID_LEN + 1];
    size_t ilen = plen - blen - 1;
    if (ilen != TT_GRANT_ID_LEN) {
        answer_error(hc, "404 Not Found", NULL, "no such grant");
        return true;
    }
    memcpy(id, path + blen + 1, ilen);
    id[ilen] = '\0';
    if (get)
        api_grant(hc, r, id);
    else if (m == HTTP_DELETE)
        api_grant_delete(hc, r, id);
    else
        answer_error(hc, "405 Method Not Allowed", "Allow: GET, HEAD, DELETE\r\n",
                     "method not allowed");
    return true;
}

/* ---- metrics ---- */

/* Writes s as a Prometheus label value (backslash, double quote and newline escaped). */
static void prom_label(struct tt_adminbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            tt_adminbuf_str(b, "\\\\");
        else if (*s == '"')
            tt_adminbuf_str(b, "\\\"");
        else if (*s == '\n')
            tt_adminbuf_str(b, "\\n");
        else
            tt_adminbuf_add(b, s, 1);
    }
}

/* The abuse limits' block (limits.h): unauthenticated connections and what was shed, streams
 * refused per reason, timeouts per kind. */
static void limits_metrics(struct tt_adminbuf *b, const struct tt_limits *l)
{
    tt_adminbuf_fmt(
        b,
        "# HELP tether_pending_connections Connections without a whole request head or "
        "device HELLO yet (unauthenticated).\n"
        "# TYPE tether_pending_connections gauge\n"
        "tether_pending_connections %zu\n"
        "# HELP tether_pending_connections_max Cap on them (--max-pending).\n"
        "# TYPE tether_pending_connections_max gauge\n"
        "tether_pending_connections_max %zu\n"
        "# HELP tether_open_files_limit The descriptor limit; the last fd_reserve of it are "
        "kept from unauthenticated connections.\n"
        "# TYPE tether_open_files_limit gauge\n"
        "tether_open_files_limit %llu\n",
        l->npending, l->max_pending, (unsigned long long)l->fd_limit);
    tt_adminbuf_fmt(
        b,
        "# HELP tether_connections_shed_total Unauthenticated connections closed to make "
        "room: the oldest over --max-pending (total) or near the descriptor limit (fds), a "
        "new one over --max-pending-per-addr (per_addr).\n"
        "# TYPE tether_connections_shed_total counter\n"
        "tether_connections_shed_total{reason=\"total\"} %llu\n"
        "tether_connections_shed_total{reason=\"per_addr\"} %llu\n"
        "tether_connections_shed_total{reason=\"fds\"} %llu\n"
        "# HELP tether_accept_errors_total Failed accepts (EMFILE: out of descriptors).\n"
        "# TYPE tether_accept_errors_total counter\n"
        "tether_accept_errors_total %llu\n",
        (unsigned long long)l->shed[TT_LIMITS_SHED_TOTAL],
        (unsigned long long)l->shed[TT_LIMITS_SHED_PER_ADDR],
        (unsigned long long)l->shed[TT_LIMITS_SHED_FDS], (unsigned long long)l->accept_errors);
    tt_adminbuf_fmt(
        b,
        "# HELP tether_streams_refused_total Streams refused: the device's session full "
        "(device), its HTTP or TCP share used (kind), the client address's share used "
        "(client).\n"
        "# TYPE tether_streams_refused_total counter\n"
        "tether_streams_refused_total{reason=\"device\"} %llu\n"
        "tether_streams_refused_total{reason=\"kind\"} %llu\n"
        "tether_streams_refused_total{reason=\"client\"} %llu\n",
        (unsigned long long)l->refused[TT_LIMITS_REFUSED_DEVICE],
        (unsigned long long)l->refused[TT_LIMITS_REFUSED_KIND],
        (unsigned long long)l->refused[TT_LIMITS_REFUSED_CLIENT]);
    tt_adminbuf_fmt(
        b,
        "# HELP tether_timeouts_total Connections closed for slowness: request head, request "
        "body, idle browser connection, idle TCP client, device without HELLO.\n"
        "# TYPE tether_timeouts_total counter\n"
        "tether_timeouts_total{kind=\"head\"} %llu\n"
        "tether_timeouts_total{kind=\"body\"} %llu\n"
        "tether_timeouts_total{kind=\"idle\"} %llu\n"
        "tether_timeouts_total{kind=\"tcp_idle\"} %llu\n"
        "tether_timeouts_total{kind=\"hello\"} %llu\n",
        (unsigned long long)l->timeouts[TT_LIMITS_TIMEOUT_HEAD],
        (unsigned long long)l->timeouts[TT_LIMITS_TIMEOUT_BODY],
        (unsigned long long)l->timeouts[TT_LIMITS_TIMEOUT_IDLE],
        (unsigned long long)l->timeouts[TT_LIMITS_TIMEOUT_TCP_IDLE],
        (unsigned long long)l->timeouts[TT_LIMITS_TIMEOUT_HELLO]);
}

/* The device connections' output queues and pings (common/wsconn.c): connections closed because
 * their peer did not read what it was sent, times reading stopped for it, pings answered and
 * pings left unanswered because a later one came first. */
static void metrics_wsconn(struct tt_adminbuf *b)
{
    struct tt_wsconn_stats w;
    tt_wsconn_get_stats(&w);
    tt_adminbuf_fmt(
        b,
        "# HELP tether_ws_output_overflow_total Connections closed because the peer did not "
        "read: a frame did not fit under the output queue's cap (cap), or queued output did "
        "not move for 30 s (stall).\n"
        "# TYPE tether_ws_output_overflow_total counter\n"
        "tether_ws_output_overflow_total{reason=\"cap\"} %llu\n"
        "tether_ws_output_overflow_total{reason=\"stall\"} %llu\n",
        (unsigned long long)w.overflow_cap, (unsigned long long)w.overflow_stall);
    tt_adminbuf_fmt(
        b,
        "# HELP tether_ws_read_paused_total Times a connection stopped being read because "
        "its output queue passed the stop mark (its peer provoked output it did not read).\n"
        "# TYPE tether_ws_read_paused_total counter\n"
        "tether_ws_read_paused_total %llu\n"
        "# HELP tether_ws_pings_answered_total WebSocket pings answered with a pong.\n"
        "# TYPE tether_ws_pings_answered_total counter\n"
        "tether_ws_pings_answered_total %llu\n"
        "# HELP tether_ws_pings_coalesced_total WebSocket pings left unanswered because a "
        "later ping came before their pong could be written (only the latest is answered).\n"
        "# TYPE tether_ws_pings_coalesced_total counter\n"
        "tether_ws_pings_coalesced_total %llu\n",
        (unsigned long long)w.read_paused, (unsigned long long)w.pings_answered,
        (unsigned long long)w.pings_coalesced);
}

/* Drain and admission control (drain.h). */
static void drain_metrics(struct tt_adminbuf *b, struct tt_relay *r)
{
    const struct tt_drain *d = &r->drain;
    tt_adminbuf_fmt(
        b,
        "# HELP tether_drain_state 1 while this node drains (POST /api/drain), else 0.\n"
        "# TYPE tether_drain_state gauge\n"
        "tether_drain_state %d\n"
        "# HELP tether_drain_moved_total Devices a drain sent to the other nodes (GOAWAY "
        "SHUTDOWN).\n"
        "# TYPE tether_drain_moved_total counter\n"
        "tether_drain_moved_total %llu\n"
        "# HELP tether_registering Device connections accepted whose registration is not "
        "answered yet.\n"
        "# TYPE tether_registering gauge\n"
        "tether_registering %zu\n"
        "# HELP tether_max_registering The cap on them (--max-registering; 0: none).\n"
        "# TYPE tether_max_registering gauge\n"
        "tether_max_registering %llu\n"
        "# HELP tether_registrations_refused_total Device handshakes answered 503 with "
        "Retry-After: --max-registering reached (busy), the node drains (draining).\n"
        "# TYPE tether_registrations_refused_total counter\n"
        "tether_registrations_refused_total{reason=\"busy\"} %llu\n"
        "tether_registrations_refused_total{reason=\"draining\"} %llu\n",
        d->on ? 1 : 0, (unsigned long long)d->moved, d->registering,
        (unsigned long long)r->cfg.max_registering, (unsigned long long)d->refused[TT_DRAIN_BUSY],
        (unsigned long long)d->refused[TT_DRAIN_DRAINING]);
}

/* POST /api/drain (202, idempotent), DELETE /api/drain (200: devices are taken again), GET
 * /api/drain (the state). */
static void api_drain(struct tt_headconn *hc, struct tt_relay *r)
{
    enum http_method m = hc->hp.p.method;
    int rc = 0;
    const char *status = "200 OK";
    if (m == HTTP_POST) {
        rc = tt_drain_start(r);
        status = "202 Accepted";
    } else if (m == HTTP_DELETE) {
        tt_drain_stop(r);
    } else if (m != HTTP_GET && m != HTTP_HEAD) {
        answer_error(hc, "405 Method Not Allowed", "Allow: GET, HEAD, POST, DELETE\r\n",
                     "method not allowed");
        return;
    }
    if (rc < 0) {
        answer_error(hc, "500 Internal Server Error", NULL, "cannot start the drain");
        return;
    }
    const struct tt_drain *d = &r->drain;
    answer_json(hc, status, NULL,
                json_pack("{s:b,s:I,s:I,s:I}", "draining", d->on ? 1 : 0, "devices",
                          (json_int_t)tt_device_online_count(r), "moved", (json_int_t)d->moved,
                          "rate", (json_int_t)r->cfg.drain_rate));
}

/* The HTTP proxying counters (httpstats.h). */
static void http_metrics(struct tt_adminbuf *b)
{
    tt_adminbuf_str(b,
                    "# HELP tether_http_refused_total Requests the relay refused, by reason (400 "
                    "syntax, target, header, framing, host, other_host; 501 transfer_coding; 431 "
                    "too_large; 414 uri_too_long; none: the relay's own failure).\n"
                    "# TYPE tether_http_refused_total counter\n");
    for (int i = 0; i < TT_REFUSAL_COUNT; i++)
        tt_adminbuf_fmt(b, "tether_http_refused_total{reason=\"%s\"} %llu\n",
                        tt_headparse_refusal_name((enum tt_http_refusal)i),
                        (unsigned long long)tt_httpstats.refused[i]);
    tt_adminbuf_fmt(
        b,
        "# HELP tether_http_upgrades_declined_total Upgrade and CONNECT requests the device "
        "answered with something else than 101 (2xx for CONNECT): the connection stayed "
        "HTTP.\n"
        "# TYPE tether_http_upgrades_declined_total counter\n"
        "tether_http_upgrades_declined_total %llu\n",
        (unsigned long long)tt_httpstats.upgrades_declined);
    tt_adminbuf_fmt(
        b,
        "# HELP tether_http_tracking_lost_total Proxied connections on which the relay could "
        "not read a device's response: its bytes passed on, no further request taken.\n"
        "# TYPE tether_http_tracking_lost_total counter\n"
        "tether_http_tracking_lost_total %llu\n"
        "# HELP tether_http_pipeline_full_total Times a browser's pipelined requests waited "
        "because %d of them were unanswered.\n"
        "# TYPE tether_http_pipeline_full_total counter\n"
        "tether_http_pipeline_full_total %llu\n",
        (unsigned long long)tt_httpstats.tracking_lost, TT_HTTPPROXY_MAX_PENDING,
        (unsigned long long)tt_httpstats.pipeline_full);
    tt_adminbuf_fmt(
        b,
        "# HELP tether_http_device_cookie_refused_total Device responses cut before their "
        "head ended because they set the relay's session cookie (the connection closed).\n"
        "# TYPE tether_http_device_cookie_refused_total counter\n"
        "tether_http_device_cookie_refused_total %llu\n",
        (unsigned long long)tt_httpstats.device_cookie);
}

/* --tcp-allow refusals and the audit log's lines (forward.h, audit.h). */
static void audit_metrics(struct tt_adminbuf *b, const struct tt_relay *r)
{
    tt_adminbuf_fmt(
        b,
        "# HELP tether_access_tcp_refused_total TCP clients closed at once on a public port "
        "because their address is in no --tcp-allow network.\n"
        "# TYPE tether_access_tcp_refused_total counter\n"
        "tether_access_tcp_refused_total %llu\n"
        "# HELP tether_audit_lines_total Lines written to the audit log (--audit-log).\n"
        "# TYPE tether_audit_lines_total counter\n"
        "tether_audit_lines_total %llu\n"
        "# HELP tether_audit_errors_total Audit lines that could not be written (dropped).\n"
        "# TYPE tether_audit_errors_total counter\n"
        "tether_audit_errors_total %llu\n",
        (unsigned long long)r->tcp_allow_refused, (unsigned long long)r->audit.lines,
        (unsigned long long)r->audit.errors);
}

/* --webhook deliveries (webhook.h). */
static void webhook_metrics(struct tt_adminbuf *b, const struct tt_relay *r)
{
    struct tt_webhook_stats s;
    tt_webhook_stats(r->webhooks, &s);
    tt_adminbuf_fmt(
        b,
        "# HELP tether_webhook_events_total Device events for the --webhook URLs (one per "
        "URL): delivered (a 2xx answer), dropped (the queue was full), expired (retried "
        "for --webhook-max-age without success).\n"
        "# TYPE tether_webhook_events_total counter\n"
        "tether_webhook_events_total{result=\"delivered\"} %llu\n"
        "tether_webhook_events_total{result=\"dropped\"} %llu\n"
        "tether_webhook_events_total{result=\"expired\"} %llu\n"
        "# HELP tether_webhook_requests_total Webhook requests: ok (a 2xx answer), failed "
        "(refused, reset, timed out or another status; retried).\n"
        "# TYPE tether_webhook_requests_total counter\n"
        "tether_webhook_requests_total{result=\"ok\"} %llu\n"
        "tether_webhook_requests_total{result=\"failed\"} %llu\n"
        "# HELP tether_webhook_queue Events waiting for delivery, every URL together.\n"
        "# TYPE tether_webhook_queue gauge\n"
        "tether_webhook_queue %llu\n"
        "# HELP tether_webhook_queue_max The cap on tether_webhook_queue (--webhook-queue).\n"
        "# TYPE tether_webhook_queue_max gauge\n"
        "tether_webhook_queue_max %llu\n",
        (unsigned long long)s.delivered, (unsigned long long)s.dropped,
        (unsigned long long)s.expired, (unsigned long long)s.ok, (unsigned long long)s.failed,
        (unsigned long long)s.queued,
        (unsigned long long)(r->webhooks ? s.queue_max : r->cfg.webhook_queue));
}
static void session_metrics(struct tt_adminbuf *b, const struct tt_relay *r);

static void metrics(struct tt_headconn *hc, struct tt_relay *r)
{
    struct devlist l;
    struct tt_adminbuf b = {.ok = true};
    if (!collect(r, &l)) {
        free(l.v);
        answer_oom(hc);
        return;
    }
    uint64_t online = 0, in = r->gone_bytes_in, out = r->gone_bytes_out;
    uint64_t streams = r->gone_streams, connects = r->gone_connects;
    struct view *vs = l.n ? calloc(l.n, sizeof(*vs)) : NULL;
    if (l.n && !vs)
        b.ok = false;
    for (size_t i = 0; vs && i < l.n; i++) {
        view_of(l.v[i], l.now, &vs[i]);
        online += vs[i].online;
        in += vs[i].in;
        out += vs[i].out;
        streams += l.v[i]->streams;
        connects += l.v[i]->connects;
    }
    /* devices past their grace period but not yet swept still count in the totals */
    tt_adminbuf_fmt(
        &b,
        "# HELP tether_devices_online Devices connected now.\n"
        "# TYPE tether_devices_online gauge\n"
        "tether_devices_online %llu\n"
        "# HELP tether_devices_known Devices online or offline within the grace period.\n"
        "# TYPE tether_devices_known gauge\n"
        "tether_devices_known %zu\n",
        (unsigned long long)online, l.n);
    tt_adminbuf_fmt(
        &b,
        "# HELP tether_relay_bytes_total Bytes relayed from (in) and to (out) devices.\n"
        "# TYPE tether_relay_bytes_total counter\n"
        "tether_relay_bytes_total{direction=\"in\"} %llu\n"
        "tether_relay_bytes_total{direction=\"out\"} %llu\n",
        (unsigned long long)in, (unsigned long long)out);
    /* per-device series: two per device, left out of a large node's scrape (config.h) */
    uint8_t per = r->cfg.metrics_per_device;
    bool per_device = per == TT_METRICS_PER_DEVICE_ON || (per == TT_METRICS_PER_DEVICE_AUTO &&
                                                          l.n <= TT_CONFIG_METRICS_PER_DEVICE_MAX);
    tt_adminbuf_fmt(
        &b,
        "# HELP tether_metrics_per_device 1 when this answer has the per-device series "
        "(tether_device_bytes_total): --metrics-per-device on, or auto with at most %d known "
        "devices.\n"
        "# TYPE tether_metrics_per_device gauge\n"
        "tether_metrics_per_device %d\n",
        TT_CONFIG_METRICS_PER_DEVICE_MAX, per_device ? 1 : 0);
    if (per_device)
        tt_adminbuf_str(
            &b, "# HELP tether_device_bytes_total Bytes relayed from (in) and to (out) each "
                "known device.\n"
                "# TYPE tether_device_bytes_total counter\n");
    for (size_t i = 0; per_device && vs && i < l.n; i++) {
        for (int dir = 0; dir < 2; dir++) {
            tt_adminbuf_str(&b, "tether_device_bytes_total{device=\"");
            prom_label(&b, l.v[i]->name);
            tt_adminbuf_fmt(&b, "\",direction=\"%s\"} %llu\n", dir ? "out" : "in",
                            (unsigned long long)(dir ? vs[i].out : vs[i].in));
        }
    }
    tt_adminbuf_fmt(&b,
                    "# HELP tether_streams_total Streams opened to devices.\n"
                    "# TYPE tether_streams_total counter\n"
                    "tether_streams_total %llu\n"
                    "# HELP tether_device_connects_total Device registrations accepted.\n"
                    "# TYPE tether_device_connects_total counter\n"
                    "tether_device_connects_total %llu\n",
                    (unsigned long long)streams, (unsigned long long)connects);
    tt_adminbuf_fmt(
        &b,
        "# HELP tether_admin_refused_total Admin requests refused: a Host that is not the "
        "admin listener's own (421, DNS rebinding), a state-changing request from another "
        "site's Origin (403).\n"
        "# TYPE tether_admin_refused_total counter\n"
        "tether_admin_refused_total{reason=\"host\"} %llu\n"
        "tether_admin_refused_total{reason=\"origin\"} %llu\n",
        (unsigned long long)r->admin_refused_host, (unsigned long long)r->admin_refused_origin);
    session_metrics(&b, r);
    limits_metrics(&b, &r->limits);
    drain_metrics(&b, r);
    metrics_wsconn(&b);
    http_metrics(&b);
    audit_metrics(&b, r);
    webhook_metrics(&b, r);
    tt_adminbuf_fmt(
        &b,
        "# HELP tether_tls_refused_total Connections to a --tls-listen port that got no TLS "
        "session: plain HTTP (answered 400), a failed or non-TLS handshake (headconn.h).\n"
        "# TYPE tether_tls_refused_total counter\n"
        "tether_tls_refused_total{reason=\"plain_http\"} %llu\n"
        "tether_tls_refused_total{reason=\"handshake\"} %llu\n",
        (unsigned long long)r->web_tls.plain_http, (unsigned long long)r->web_tls.tls_failed);
    { /* handshakes full and resumed, ticket keys (tls.h) */
        char tlstext[2048];
        size_t n = tt_tls_metrics(tlstext, sizeof(tlstext));
        tt_adminbuf_fmt(&b, "%.*s", (int)n, tlstext);
    }
    { /* build info, the process (/proc/self), the TLS certificate's expiry: procmetrics.h */
        struct tt_procmetrics pm;
        char pmtext[8192];
        tt_procmetrics_read("/proc", &pm);
        size_t n = tt_procmetrics_format(
            &pm, TT_RELAY_VERSION, &tt_buildinfo_commit ? tt_buildinfo_commit : NULL,
            r->tls ? r->cfg.tls_cert : NULL, tt_tls_ctx_not_after(r->tls), pmtext, sizeof(pmtext));
        tt_adminbuf_add(&b, pmtext, n < sizeof(pmtext) ? n : strlen(pmtext));
    }
    if (r->cluster) {
        const struct tt_cluster *c = r->cluster;
        tt_adminbuf_fmt(
            &b,
            "# HELP tether_cluster_nodes Live nodes of the cluster, this one included.\n"
            "# TYPE tether_cluster_nodes gauge\n"
            "tether_cluster_nodes %zu\n"
            "# HELP tether_cluster_redis_up 1 while this node reaches Redis.\n"
            "# TYPE tether_cluster_redis_up gauge\n"
            "tether_cluster_redis_up %d\n"
            "# HELP tether_cluster_redirects_total Device handshakes sent to another node.\n"
            "# TYPE tether_cluster_redirects_total counter\n"
            "tether_cluster_redirects_total %llu\n"
            "# HELP tether_cluster_devices_online Devices online on every live node, as "
            "the nodes published them at this node's last beat.\n"
            "# TYPE tether_cluster_devices_online gauge\n"
            "tether_cluster_devices_online %lld\n",
            c->nnodes + 1, tt_redisconn_up(&c->rc) ? 1 : 0, (unsigned long long)c->redirects,
            (long long)c->fleet_online);
        if (c->rc.url.sentinel)
            tt_adminbuf_fmt(
                &b,
                "# HELP tether_redis_master_changes_total Redis masters at a new address "
                "found through the sentinels since start (failovers followed).\n"
                "# TYPE tether_redis_master_changes_total counter\n"
                "tether_redis_master_changes_total %llu\n"
                "# HELP tether_redis_repair_conflicts_total Devices closed after a master "
                "change because another device held their label or port there.\n"
                "# TYPE tether_redis_repair_conflicts_total counter\n"
                "tether_redis_repair_conflicts_total %llu\n",
                (unsigned long long)c->rc.master_changes, (unsigned long long)c->repair_conflict);
        tt_adminbuf_fmt(&b,
                        "# HELP tether_cluster_forwarded_total Clients passed to the node holding "
                        "their device.\n"
                        "# TYPE tether_cluster_forwarded_total counter\n"
                        "tether_cluster_forwarded_total{kind=\"http\"} %llu\n"
                        "tether_cluster_forwarded_total{kind=\"tcp\"} %llu\n",
                        (unsigned long long)c->forwarded_http,
                        (unsigned long long)c->forwarded_tcp);
        tt_adminbuf_fmt(
            &b,
            "# HELP tether_cluster_beat_seconds Duration of this node's last beat (Redis "
            "calls included), and of its device check (takeovers, deletions, live fields).\n"
            "# TYPE tether_cluster_beat_seconds gauge\n"
            "tether_cluster_beat_seconds{part=\"all\"} %.6f\n"
            "tether_cluster_beat_seconds{part=\"devices\"} %.6f\n"
            "# HELP tether_cluster_live_published_total Devices whose live fields (bytes, "
            "streams) this node wrote to Redis because they changed.\n"
            "# TYPE tether_cluster_live_published_total counter\n"
            "tether_cluster_live_published_total %llu\n",
            (double)c->beat_us / 1e6, (double)c->check_us / 1e6, (unsigned long long)c->published);
        tt_adminbuf_fmt(
            &b,
            "# HELP tether_cluster_sessions_closed_total Sessions this node closed because "
            "another node took their device over or the operator deleted it on another "
            "node: told by the other node (pushed) or found by the beat's check (scan).\n"
            "# TYPE tether_cluster_sessions_closed_total counter\n"
            "tether_cluster_sessions_closed_total{how=\"pushed\"} %llu\n"
            "tether_cluster_sessions_closed_total{how=\"scan\"} %llu\n"
            "# HELP tether_cluster_full_checks_total Beats that checked every device of this "
            "node because Redis listed fewer of them than it holds (Redis restarted, or took "
            "the node for dead).\n"
            "# TYPE tether_cluster_full_checks_total counter\n"
            "tether_cluster_full_checks_total %llu\n",
            (unsigned long long)c->closed_pushed, (unsigned long long)c->closed_scan,
            (unsigned long long)c->full_checks);
    }
    char auth[4096];
    size_t alen = 0;
    auth[0] = '\0';
    (void)tt_devauth_metrics(&r->auth, r->reg, auth, sizeof(auth), &alen);
    tt_adminbuf_str(&b, auth);
    char acc[8192];
    size_t aclen = 0;
    acc[0] = '\0';
    (void)tt_access_metrics(&r->access, acc, sizeof(acc), &aclen); /* access.h */
    tt_adminbuf_str(&b, acc);
    char signin[4096];
    size_t slen = 0;
    signin[0] = '\0';
    tt_signin_metrics(r, signin, sizeof(signin), &slen);
    tt_adminbuf_str(&b, signin);
    char vis[4096];
    (void)tt_visitor_metrics(r, vis, sizeof(vis));
    tt_adminbuf_str(&b, vis);
    free(vs);
    free(l.v);
    answer_built(hc, true, "text/plain; version=0.0.4", &b);
}

/* ---- dashboard ---- */

/* The dashboard's list reloads itself this often (meta refresh; ?live=0 stops it). */
#define TT_ADMIN_REFRESH_S 15u

/* The value of field name in the request's query string into out (form.h's decoding): true
 * when it is there and well formed. */
static bool query_param(struct tt_headconn *hc, const char *name, char *out, size_t cap,
                        size_t *len)
{
    const char *url = (const char *)hc->data + hc->hp.url_off;
    size_t ulen = hc->hp.url_len;
    const char *qm = memchr(url, '?', ulen);
    if (!qm)
        return false;
    size_t off = (size_t)(qm - url) + 1;
    const char *hash = memchr(url + off, '#', ulen - off);
    size_t qlen = (hash ? (size_t)(hash - url) : ulen) - off;
    return tt_form_get((const uint8_t *)url + off, qlen, name, out, cap, len) == 0;
}

/* What the pages need for times and tether connect lines; server: at least TT_MAX_ADDR + 16
 * bytes (ws://HOST[:PORT], wss:// when the public URL is https). */
static int session_of(struct tt_headconn *hc, struct tt_relay *r, const uint8_t **v, size_t *vlen);

static void page_ctx(struct tt_relay *r, struct tt_headconn *hc, struct tt_adminpage_ctx *c,
                     char *server)
{
    const uint8_t *v;
    size_t vlen;
    bool tls = strcmp(r->cfg.url_scheme, "https") == 0;
    if (r->cfg.url_port)
        snprintf(server, TT_MAX_ADDR + 16, "%s://%s:%u", tls ? "wss" : "ws", r->cfg.url_host,
                 (unsigned)r->cfg.url_port);
    else
        snprintf(server, TT_MAX_ADDR + 16, "%s://%s", tls ? "wss" : "ws", r->cfg.url_host);
    *c = (struct tt_adminpage_ctx){
        .now_ms = tt_relay_now_ms(),
        .grace_ms = r->cfg.grace_ms,
        .server = server,
        .private_mode = r->cfg.access == TT_ACCESS_PRIVATE,
        .node_id = r->cluster ? r->cfg.node_id : NULL,
        .signout = hc && session_of(hc, r, &v, &vlen) >= 0,
    };
}

static void addr_html(struct tt_adminbuf *b, const struct tt_config_addr *a)
{
    bool v6 = strchr(a->host, ':') != NULL;
    tt_adminbuf_fmt(b, "<code>%s", v6 ? "[" : "");
    tt_adminbuf_html(b, a->host);
    tt_adminbuf_fmt(b, "%s:%u</code>", v6 ? "]" : "", (unsigned)a->port);
}

struct totals {
    uint64_t in, out, streams;
    int64_t now;
};

static int total_one(const char *key, void *val, void *ud)
{
    (void)key;
    struct totals *t = ud;
    struct view v;
    view_of(val, t->now, &v);
    t->in += v.in;
    t->out += v.out;
    t->streams += ((struct tt_device *)val)->streams;
    return 0;
}

/* The relay summary: version, uptime, listeners (HTML into lis), this node's totals, drain. */
static void relay_summary(struct tt_relay *r, struct tt_adminpage_summary *s,
                          struct tt_adminbuf *lis)
{
    struct tt_procmetrics pm;
    tt_procmetrics_read("/proc", &pm);
    struct totals t = {r->gone_bytes_in, r->gone_bytes_out, r->gone_streams, tt_relay_now_ms()};
    tt_strmap_foreach(&r->by_name, total_one, &t);
    char base[TT_MAX_ADDR + 1];
    if (tt_config_device_url(&r->cfg, "LABEL", base, sizeof(base)) < 0)
        base[0] = '\0';
    tt_adminbuf_str(lis, "devices and browsers: ");
    for (size_t i = 0; i < r->cfg.nlisten; i++) {
        tt_adminbuf_str(lis, i ? ", " : "");
        addr_html(lis, &r->cfg.listen[i]);
    }
    for (size_t i = 0; i < r->cfg.ntls_listen; i++) {
        tt_adminbuf_str(lis, ", TLS ");
        addr_html(lis, &r->cfg.tls_listen[i]);
    }
    if (base[0]) {
        tt_adminbuf_str(lis, "<br>device URLs: <code>");
        tt_adminbuf_html(lis, base);
        tt_adminbuf_str(lis, "</code>");
    }
    if (r->cfg.tcp_low)
        tt_adminbuf_fmt(lis, "<br>TCP ports: %u-%u", (unsigned)r->cfg.tcp_low,
                        (unsigned)r->cfg.tcp_high);
    tt_adminbuf_str(lis, "<br>admin: ");
    addr_html(lis, &r->cfg.admin);
    tt_adminbuf_str(lis, r->cfg.admin_token[0] ? " (admin token set)" : " (no admin token)");
    *s = (struct tt_adminpage_summary){
        .version = TT_RELAY_VERSION,
        .uptime_s =
            pm.has_stat && pm.start_time > 0 ? (int64_t)((double)t.now / 1000 - pm.start_time) : -1,
        .listeners = lis->ok ? lis->p : NULL,
        .bytes_in = t.in,
        .bytes_out = t.out,
        .streams = t.streams,
        .draining = tt_drain_on(r),
        .draining_since_ms = r->drain.since,
    };
}

/* How the dashboard marks a private service (access.h) is adminpage.c's; this is the line on
 * the relay's access rules (--access, --public). */
static void access_summary(struct tt_adminbuf *b, const struct tt_relay *r)
{
    if (r->cfg.access != TT_ACCESS_PRIVATE) {
        tt_adminbuf_str(b, "<p>access: public (every service is reachable by anyone)</p>\n");
        return;
    }
    tt_adminbuf_str(b, "<p>access: private (services reachable only with a grant)");
    for (size_t i = 0; i < r->cfg.npublic; i++) {
        tt_adminbuf_str(b, i == 0 ? "; public: " : ", ");
        tt_adminbuf_str(b, "<code>");
        tt_adminbuf_html(b, r->cfg.public_patterns[i]);
        tt_adminbuf_str(b, "</code>");
    }
    tt_adminbuf_str(b, "</p>\n");
}

/* GET /: one page of the fleet (TT_ADMINPAGE_LIMIT devices unless the query says), never the
 * whole of it. signout: the request came with a session (a sign-out button is shown). */
static void dashboard(struct tt_headconn *hc, struct tt_relay *r, bool signout)
{
    struct tt_adminquery q;
    struct page pg;
    struct tt_adminbuf b = {.ok = true}, acc = {.ok = true};
    if (!query_of(hc, &q, false))
        return;
    if (!q.limit_given)
        q.limit = TT_ADMINPAGE_LIMIT;
    bool ok = page_get(r, &q, &pg);
    struct tt_adminpage_row *rows = pg.rs.n ? calloc(pg.rs.n, sizeof(*rows)) : NULL;
    struct tt_adminpage_node nodes[TT_CLUSTER_PAGE_NODES];
    ok = ok && (rows || !pg.rs.n);
    for (size_t i = 0; ok && i < pg.rs.n; i++) {
        const struct row *w = &pg.rs.v[i];
        rows[i] = (struct tt_adminpage_row){w->name,    w->label,   w->node,   w->v.online,
                                            w->v.since, w->v.seen,  w->remote, w->v.in,
                                            w->v.out,   w->streams, w->svcs};
    }
    size_t nnodes = pg.cluster ? pg.cp.nnodes : 0;
    for (size_t i = 0; i < nnodes; i++) {
        const char *id = pg.cp.nodes[i].node;
        bool self = strcmp(id, r->cfg.node_id) == 0, draining = self && tt_drain_on(r);
        for (size_t k = 0; !self && r->cluster && k < r->cluster->nnodes; k++)
            if (strcmp(r->cluster->nodes[k].id, id) == 0)
                draining = r->cluster->nodes[k].draining;
        nodes[i] = (struct tt_adminpage_node){id, pg.cp.nodes[i].online, draining, self};
    }
    access_summary(&acc, r);
    struct tt_adminpage_ctx ctx;
    char server[TT_MAX_ADDR + 16];
    page_ctx(r, hc, &ctx, server);
    struct tt_adminbuf lis = {.ok = true};
    struct tt_adminpage_summary sum;
    relay_summary(r, &sum, &lis);
    /* the summary's nodes: this one, then every other live node (online devices as the page
     * counted them, else as the node published them at its last beat) */
    size_t nsn = r->cluster ? r->cluster->nnodes + 1 : 0;
    struct tt_adminpage_node *snodes = nsn ? calloc(nsn, sizeof(*snodes)) : NULL;
    for (size_t i = 0; snodes && i < nsn; i++) {
        const struct tt_cluster_node *cn = i ? &r->cluster->nodes[i - 1] : NULL;
        const char *id = cn ? cn->id : r->cfg.node_id;
        size_t online = cn ? (size_t)(cn->devices > 0 ? cn->devices : 0)
                           : (size_t)(r->cluster->online > 0 ? r->cluster->online : 0);
        for (size_t k = 0; k < nnodes; k++)
            if (strcmp(nodes[k].id, id) == 0)
                online = nodes[k].online;
        snodes[i] = (struct tt_adminpage_node){id, online, cn ? cn->draining : tt_drain_on(r), !cn};
    }
    sum.nodes = snodes;
    sum.nnodes = snodes ? nsn : 0;
    char live[8];
    size_t livelen = 0;
    bool paused = query_param(hc, "live", live, sizeof(live), &livelen) && strcmp(live, "0") == 0;
    struct tt_adminpage p = {
        .q = &q,
        .node_id = r->cluster ? r->cfg.node_id : NULL,
        .live_nodes = r->cluster ? r->cluster->nnodes + 1 : 1,
        .nodes = nodes,
        .nnodes = nnodes,
        .total = pg.total,
        .online = pg.online,
        .offline = pg.offline,
        .partial = r->cluster && !pg.cluster,
        .rows = rows,
        .nrows = ok ? pg.rs.n : 0,
        .next = pg.has_next ? pg.next : NULL,
        .prev = q.after[0] ? pg.prev : NULL,
        .access_html = acc.ok ? acc.p : NULL,
        .signout = signout,
        .sum = lis.ok ? &sum : NULL,
        .ctx = &ctx,
        .refresh = paused ? 0 : TT_ADMIN_REFRESH_S,
    };
    if (ok)
        tt_adminpage_dashboard(&b, &p);
    free(rows);
    free(snodes);
    free(acc.p);
    free(lis.p);
    page_free(&pg);
    if (ok && b.ok)
        answer(hc, "200 OK", "text/html; charset=utf-8", TT_ADMINPAGE_HEADERS, b.p, b.len);
    else
        answer_oom(hc);
    free(b.p);
}

/* ---- the console's pages and forms (adminpage.h): a device, its deletion, grants ---- */

/* Form bodies of the console's actions: a name or id; a grant's fields. */
#define TT_ADMIN_FORM_BODY_MAX 4096u

static void answer_page(struct tt_headconn *hc, const char *status, struct tt_adminbuf *b)
{
    if (b->ok)
        answer(hc, status, "text/html; charset=utf-8", TT_ADMINPAGE_HEADERS, b->p, b->len);
    else
        answer_oom(hc);
    free(b->p);
}

static void done_page(struct tt_headconn *hc, const char *status, const char *title,
                      const char *text, const char *back, bool err)
{
    struct tt_adminbuf b = {.ok = true};
    struct tt_adminpage_ctx ctx;
    char server[TT_MAX_ADDR + 16];
    page_ctx(hc->set->ud, hc, &ctx, server);
    tt_adminpage_done(&b, &ctx, title, text, back, err);
    answer_page(hc, status, &b);
}

/* GET /device?name=NAME */
static void device_page(struct tt_headconn *hc, struct tt_relay *r)
{
    char name[TT_MAX_NAME + 1];
    size_t nlen;
    struct rows rs;
    if (!query_param(hc, "name", name, sizeof(name), &nlen)) {
        done_page(hc, "404 Not Found", "tetherd: no such device", "No such device.", "/", true);
        return;
    }
    if (!rows_get(r, name, &rs)) {
        rows_free(&rs);
        answer_oom(hc);
        return;
    }
    if (rs.n == 0 || !rs.v[0].svcs) {
        rows_free(&rs);
        done_page(hc, "404 Not Found", "tetherd: no such device", "No such device.", "/", true);
        return;
    }
    const struct row *w = &rs.v[0];
    struct tt_adminpage_row pr = {w->name,   w->label, w->node,  w->v.online, w->v.since, w->v.seen,
                                  w->remote, w->v.in,  w->v.out, w->streams,  w->svcs};
    struct tt_adminpage_ctx ctx;
    char server[TT_MAX_ADDR + 16];
    page_ctx(r, hc, &ctx, server);
    struct tt_adminbuf b = {.ok = true};
    tt_adminpage_device(&b, &ctx, &pr);
    rows_free(&rs);
    answer_page(hc, "200 OK", &b);
}

/* GET /device/delete?name=NAME: the confirmation page. */
static void delete_confirm(struct tt_headconn *hc, struct tt_relay *r)
{
    char name[TT_MAX_NAME + 1];
    size_t nlen;
    if (!query_param(hc, "name", name, sizeof(name), &nlen)) {
        done_page(hc, "404 Not Found", "tetherd: no such device", "No such device.", "/", true);
        return;
    }
    struct tt_adminbuf b = {.ok = true};
    struct tt_adminpage_ctx ctx;
    char server[TT_MAX_ADDR + 16];
    page_ctx(r, hc, &ctx, server);
    tt_adminpage_confirm_delete(&b, &ctx, name);
    answer_page(hc, "200 OK", &b);
}

/* The body of POST /device/delete (name=NAME) is here. */
static void delete_form_body(struct tt_headconn *hc, void *ud)
{
    struct tt_relay *r = ud;
    char name[TT_MAX_NAME + 1], text[TT_MAX_NAME + 64];
    size_t nlen;
    if (tt_form_get(hc->data + hc->headlen, tt_headconn_body_len(hc), "name", name, sizeof(name),
                    &nlen) != 0) {
        done_page(hc, "400 Bad Request", "tetherd: delete", "The form has no device name.", "/",
                  true);
        return;
    }
    int rc = delete_device(r, name);
    if (rc == 0) {
        TT_LOG(TT_LOG_INFO, "device deleted from the dashboard device=%s peer=%s", TT_LOG_V(name),
               hc->peer_ip);
        snprintf(text, sizeof(text), "Device %s deleted.", name);
        done_page(hc, "200 OK", "tetherd: device deleted", text, "/", false);
    } else if (rc == TETHER_ERR_IO) {
        done_page(hc, "503 Service Unavailable", "tetherd: delete",
                  "The registry cannot be reached: nothing was deleted.", "/", true);
    } else if (rc == TETHER_ERR_NOMEM) {
        answer_oom(hc);
    } else {
        snprintf(text, sizeof(text), "No device %s (deleted already?).", name);
        done_page(hc, "404 Not Found", "tetherd: delete", text, "/", true);
    }
}

typedef void (*form_cb)(struct tt_headconn *hc, void *ud);

/* Reads a form's body (at most max bytes), then calls cb. */
static void read_form(struct tt_headconn *hc, struct tt_relay *r, size_t max, form_cb cb)
{
    int rc = tt_headconn_read_body(hc, max, cb);
    if (rc == 1)
        cb(hc, r);
    else if (rc == TETHER_ERR_HTTP)
        done_page(hc, "411 Length Required", "tetherd", "A Content-Length is required.", "/", true);
    else if (rc == TETHER_ERR_TOO_LARGE)
        done_page(hc, "413 Content Too Large", "tetherd", "The form is too large.", "/", true);
    else if (rc != 0)
        done_page(hc, "400 Bad Request", "tetherd", "Bad request body.", "/", true);
}

/* The grants page; token..: a grant just made (its token shown once), err: the form's error. */
static void grants_page(struct tt_headconn *hc, struct tt_relay *r, const char *status,
                        const char *token, const char *id, int64_t expires, const char *err)
{
    int64_t now = tt_relay_now_ms();
    const struct tt_grant **v;
    size_t n;
    (void)tt_grants_refresh(r->access.grants, now);
    if (tt_grants_list(r->access.grants, now, &v, &n) != 0) {
        answer_oom(hc);
        return;
    }
    struct tt_adminpage_grant *g = n ? calloc(n, sizeof(*g)) : NULL;
    if (n && !g) {
        free(v);
        answer_oom(hc);
        return;
    }
    for (size_t i = 0; i < n; i++)
        g[i] = (struct tt_adminpage_grant){
            v[i]->id,        v[i]->user,    (const char *const *)v[i]->patterns,
            v[i]->npatterns, v[i]->created, v[i]->expires};
    struct tt_adminpage_ctx ctx;
    char server[TT_MAX_ADDR + 16];
    page_ctx(r, hc, &ctx, server);
    struct tt_adminbuf b = {.ok = true};
    tt_adminpage_grants(&b, &ctx, g, n, token, id, expires, err);
    free(g);
    free(v);
    if (b.ok)
        answer_secret(hc, status, "text/html; charset=utf-8", TT_ADMINPAGE_HEADERS, b.p, b.len);
    else
        answer_oom(hc);
    if (b.p)
        tt_secret_wipe(b.p, b.cap); /* it may hold a token */
    free(b.p);
}

/* The body of POST /grants (user, patterns separated by blanks or commas, ttl) is here: the
 * grant is made as POST /api/grants makes it (the same checks), its token shown once. */
static void grant_form_body(struct tt_headconn *hc, void *ud)
{
    struct tt_relay *r = ud;
    const uint8_t *body = hc->data + hc->headlen;
    size_t blen = tt_headconn_body_len(hc), n;
    char user[TT_MAX_NAME + 2], pats[2048], ttl[32], err[TT_ERRLEN];
    if (tt_form_get(body, blen, "user", user, sizeof(user), &n) != 0 ||
        tt_form_get(body, blen, "patterns", pats, sizeof(pats), &n) != 0) {
        grants_page(hc, r, "400 Bad Request", NULL, NULL, 0,
                    "user and devices/services are needed");
        return;
    }
    if (tt_form_get(body, blen, "ttl", ttl, sizeof(ttl), &n) != 0 || !ttl[0])
        snprintf(ttl, sizeof(ttl), "15m");
    json_t *arr = json_array();
    for (char *save = NULL, *p = strtok_r(pats, " ,\t\r\n", &save); arr && p;
         p = strtok_r(NULL, " ,\t\r\n", &save))
        if (json_array_append_new(arr, json_string(p)) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    json_t *j = arr ? json_pack("{s:s, s:o, s:s}", "user", user, "grants", arr, "ttl", ttl) : NULL;
    char *js = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    struct tt_grants_request *rq = js ? malloc(sizeof(*rq)) : NULL;
    if (!rq) {
        free(js);
        answer_oom(hc);
        return;
    }
    int prc = tt_grants_parse_request(js, strlen(js), rq, err);
    free(js);
    if (prc != 0) {
        free(rq);
        grants_page(hc, r, "400 Bad Request", NULL, NULL, 0, err);
        return;
    }
    char id[TT_GRANT_ID_LEN + 1], token[TT_GRANT_TOKEN_LEN + 1];
    int64_t expires;
    int rc = tt_grants_create(r->access.grants, rq->user, rq->p, rq->n, rq->ttl_ms,
                              tt_relay_now_ms(), id, token, &expires, err);
    free(rq);
    if (rc != 0) {
        grants_page(hc, r,
                    rc == TETHER_ERR_INVAL   ? "400 Bad Request"
                    : rc == TETHER_ERR_NOMEM ? "500 Internal Server Error"
                                             : "503 Service Unavailable",
                    NULL, NULL, 0, err);
        return;
    }
    TT_LOG(TT_LOG_INFO, "grant made from the dashboard id=%s peer=%s", id, hc->peer_ip);
    grants_page(hc, r, "201 Created", token, id, expires, NULL);
    tt_secret_wipe(token, sizeof(token));
}

/* The body of POST /grants/revoke (id=ID) is here. */
static void revoke_form_body(struct tt_headconn *hc, void *ud)
{
    struct tt_relay *r = ud;
    char id[TT_GRANT_ID_LEN + 2];
    size_t n;
    if (tt_form_get(hc->data + hc->headlen, tt_headconn_body_len(hc), "id", id, sizeof(id), &n) !=
            0 ||
        n != TT_GRANT_ID_LEN) {
        grants_page(hc, r, "400 Bad Request", NULL, NULL, 0, "the form has no grant id");
        return;
    }
    int rc = grant_revoke(r, id);
    if (rc == 0)
        answer(hc, "303 See Other", "text/plain; charset=utf-8", "Location: /grants\r\n", "", 0);
    else
        grants_page(hc, r, rc == TETHER_ERR_IO ? "503 Service Unavailable" : "404 Not Found", NULL,
                    NULL, 0,
                    rc == TETHER_ERR_IO ? "the grant store (redis) cannot be reached: the grant "
                                          "is not revoked"
                                        : "no such grant (revoked or expired already?)");
}

/* Routes the console's pages: /device, /device/delete, /grants, /grants/revoke. Returns false
 * when the path is another one. */
static bool route_console(struct tt_headconn *hc, struct tt_relay *r, const char *path, size_t plen)
{
    enum http_method m = hc->hp.p.method;
    bool get = m == HTTP_GET || m == HTTP_HEAD;
#define IS(lit) (plen == sizeof(lit) - 1 && memcmp(path, lit, plen) == 0)
    if (IS("/device")) {
        if (get)
            device_page(hc, r);
        else
            answer(hc, "405 Method Not Allowed", "text/plain; charset=utf-8",
                   "Allow: GET, HEAD\r\n", "method not allowed\n", 19);
    } else if (IS("/device/delete")) {
        if (get)
            delete_confirm(hc, r);
        else if (m == HTTP_POST)
            read_form(hc, r, TT_ADMIN_FORM_BODY_MAX, delete_form_body);
        else
            answer(hc, "405 Method Not Allowed", "text/plain; charset=utf-8",
                   "Allow: GET, HEAD, POST\r\n", "method not allowed\n", 19);
    } else if (IS("/grants")) {
        if (get)
            grants_page(hc, r, "200 OK", NULL, NULL, 0, NULL);
        else if (m == HTTP_POST)
            read_form(hc, r, TT_ADMIN_FORM_BODY_MAX, grant_form_body);
        else
            answer(hc, "405 Method Not Allowed", "text/plain; charset=utf-8",
                   "Allow: GET, HEAD, POST\r\n", "method not allowed\n", 19);
    } else if (IS("/grants/revoke")) {
        if (m == HTTP_POST)
            read_form(hc, r, TT_ADMIN_FORM_BODY_MAX, revoke_form_body);
        else
            answer(hc, "405 Method Not Allowed", "text/plain; charset=utf-8", "Allow: POST\r\n",
                   "method not allowed\n", 19);
    } else {
        return false;
    }
#undef IS
    return true;
}

/* ---- sign-in (adminsession.h) ---- */

void tt_admin_free(struct tt_relay *r)
{
    if (!r->admin_sessions)
        return;
    tt_adminsession_free(r->admin_sessions);
    free(r->admin_sessions);
    r->admin_sessions = NULL;
}

static struct tt_adminsession_set *sessions_of(struct tt_relay *r)
{
    if (!r->admin_sessions && (r->admin_sessions = malloc(sizeof(*r->admin_sessions))))
        tt_adminsession_init(r->admin_sessions);
    return r->admin_sessions;
}

/* The sign-in page (401; 429 when throttled). */
static void signin_page(struct tt_headconn *hc, bool wrong, bool throttled)
{
    struct tt_adminbuf b = {.ok = true};
    tt_adminpage_signin(&b, wrong, throttled);
    if (b.ok)
        answer(hc, throttled ? "429 Too Many Requests" : "401 Unauthorized",
               "text/html; charset=utf-8",
               throttled ? TT_ADMINPAGE_HEADERS "Retry-After: 5\r\n"
                         : TT_ADMINPAGE_HEADERS "WWW-Authenticate: Bearer realm=\"tetherd\"\r\n",
               b.p, b.len);
    else
        answer_oom(hc);
    free(b.p);
}

/* At most this many Cookie pairs named like the session's are checked per request. */
#define ADMIN_COOKIE_TRIES 8

/* The live session the request's Cookie headers carry: its slot, or -1; *v, *vlen its value. */
static int session_of(struct tt_headconn *hc, struct tt_relay *r, const uint8_t **v, size_t *vlen)
{
    const uint8_t *vals[ADMIN_COOKIE_TRIES];
    size_t lens[ADMIN_COOKIE_TRIES], n = 0;
    if (!r->admin_sessions)
        return -1;
    for (uint32_t i = 0; i < hc->hp.nhdr && n < ADMIN_COOKIE_TRIES; i++) {
        const struct tt_head_hdr *h = &hc->hp.hdr[i];
        if (h->flen == 6 && strncasecmp((const char *)hc->data + h->foff, "cookie", 6) == 0) {
            vals[n] = hc->data + h->voff;
            lens[n++] = h->vlen;
        }
    }
    return tt_adminsession_from_cookies(r->admin_sessions, vals, lens, n, tt_relay_now_ms(), v,
                                        vlen);
}

/* The body of POST / (the sign-in form) is here: the token checked, a session made. */
static void signin_body(struct tt_headconn *hc, void *ud)
{
    struct tt_relay *r = ud;
    struct tt_adminsession_set *s = sessions_of(r);
    if (!s) {
        answer_oom(hc);
        return;
    }
    char key[TT_ADDRKEY_LEN], token[TT_MAX_TOKEN + 2];
    int64_t mono = (int64_t)uv_now(r->loop);
    tt_throttle_key(hc->peer_ip, key);
    struct tt_throttle_addr *e = tt_throttle_get(&s->throttle, key, true, mono);
    if (tt_throttle_blocked(e, mono)) {
        s->signin_throttled++;
        if (tt_throttle_note(&s->throttle, e, true, mono))
            TT_LOG(TT_LOG_WARN, "admin sign-in refused peer=%s reason=throttled", hc->peer_ip);
        signin_page(hc, false, true);
        return;
    }
    size_t tlen = 0;
    const uint8_t *body = hc->data + hc->headlen;
    int rc = tt_form_get(body, tt_headconn_body_len(hc), "token", token, sizeof(token), &tlen);
    size_t want = strlen(r->cfg.admin_token);
    bool same_len = rc == 0 && tlen == want;
    int diff = CRYPTO_memcmp(same_len ? token : r->cfg.admin_token, r->cfg.admin_token, want);
    tt_secret_wipe(token, sizeof(token));
    if (!same_len || diff != 0) {
        tt_throttle_fail(e, mono);
        tt_throttle_touch(&s->throttle, e, mono);
        s->signin_wrong++;
        if (tt_throttle_note(&s->throttle, e, false, mono))
            TT_LOG(TT_LOG_INFO, "admin sign-in refused peer=%s reason=token", hc->peer_ip);
        signin_page(hc, true, false);
        return;
    }
    char value[TT_ADMINSESSION_VALUE_LEN + 1], extra[256];
    uint64_t ttl = r->cfg.session_ttl_ms;
    if (tt_adminsession_create(s, tt_relay_now_ms(), ttl, value) != 0) {
        answer_oom(hc);
        return;
    }
    /* the admin listener speaks plain HTTP only: no Secure attribute (it would be dropped) */
    snprintf(extra, sizeof(extra),
             "Location: /\r\nSet-Cookie: " TT_ADMINSESSION_COOKIE
             "=%s; Path=/; Max-Age=%llu; HttpOnly; SameSite=Strict\r\n",
             value, (unsigned long long)(ttl / 1000));
    tt_secret_wipe(value, sizeof(value));
    TT_LOG(TT_LOG_INFO, "admin signed in peer=%s sessions=%zu", hc->peer_ip,
           tt_adminsession_count(s, tt_relay_now_ms()));
    answer(hc, "303 See Other", "text/plain; charset=utf-8", extra, "", 0);
    tt_secret_wipe(extra, sizeof(extra));
}

static void signin_post(struct tt_headconn *hc, struct tt_relay *r)
{
    if (!r->cfg.admin_token[0]) {
        answer(hc, "303 See Other", "text/plain; charset=utf-8", "Location: /\r\n", "", 0);
        return;
    }
    int rc = tt_headconn_read_body(hc, TT_SIGNIN_BODY_MAX, signin_body);
    if (rc == 1)
        signin_body(hc, r);
    else if (rc == TETHER_ERR_HTTP)
        answer_error(hc, "411 Length Required", NULL, "a Content-Length is required");
    else if (rc == TETHER_ERR_TOO_LARGE)
        answer_error(hc, "413 Content Too Large", NULL, "the body is larger than 4 KiB");
    else if (rc != 0)
        answer_error(hc, "400 Bad Request", NULL, "bad request body");
}

/* POST /signout: the session ends, the cookie is cleared. */
static void signout(struct tt_headconn *hc, struct tt_relay *r, const uint8_t *v, size_t vlen)
{
    if (r->admin_sessions && v)
        tt_adminsession_end(r->admin_sessions, v, vlen, tt_relay_now_ms());
    answer(hc, "303 See Other", "text/plain; charset=utf-8",
           "Location: /\r\nSet-Cookie: " TT_ADMINSESSION_COOKIE
           "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict\r\n",
           "", 0);
}

static void session_metrics(struct tt_adminbuf *b, const struct tt_relay *r)
{
    const struct tt_adminsession_set *s = r->admin_sessions;
    tt_adminbuf_fmt(b,
                    "# HELP tether_admin_sessions Dashboard sign-in sessions alive (at most %d; "
                    "a new one past the cap replaces the oldest).\n"
                    "# TYPE tether_admin_sessions gauge\n"
                    "tether_admin_sessions %zu\n"
                    "# HELP tether_admin_sessions_evicted_total Dashboard sessions replaced at "
                    "the cap.\n"
                    "# TYPE tether_admin_sessions_evicted_total counter\n"
                    "tether_admin_sessions_evicted_total %llu\n",
                    TT_ADMINSESSION_MAX, s ? tt_adminsession_count(s, tt_relay_now_ms()) : 0,
                    (unsigned long long)(s ? s->evicted : 0));
    tt_adminbuf_fmt(b,
                    "# HELP tether_admin_signins_total Dashboard sign-ins with the admin token: "
                    "accepted (ok), wrong token (wrong), refused unchecked because the address "
                    "failed too often (throttled).\n"
                    "# TYPE tether_admin_signins_total counter\n"
                    "tether_admin_signins_total{result=\"ok\"} %llu\n"
                    "tether_admin_signins_total{result=\"wrong\"} %llu\n"
                    "tether_admin_signins_total{result=\"throttled\"} %llu\n",
                    (unsigned long long)(s ? s->created : 0),
                    (unsigned long long)(s ? s->signin_wrong : 0),
                    (unsigned long long)(s ? s->signin_throttled : 0));
}

/* ---- routing ---- */

/* True when the request carries "Authorization: Bearer TOKEN" with the --admin-token (compared
 * in constant time), or when there is no admin token. */
static bool authorized(struct tt_headconn *hc, const char *token)
{
    if (!token[0])
        return true;
    const uint8_t *val;
    size_t vlen;
    if (tt_headparse_find(&hc->hp, "authorization", &val, &vlen) != 1)
        return false;
    while (vlen && (val[vlen - 1] == ' ' || val[vlen - 1] == '\t'))
        vlen--;
    if (vlen < 7 || strncasecmp((const char *)val, "Bearer ", 7) != 0)
        return false;
    val += 7;
    vlen -= 7;
    while (vlen && *val == ' ') {
        val++;
        vlen--;
    }
    size_t tlen = strlen(token);
    /* compare as many bytes as the token has whatever the length given */
    bool same_len = vlen == tlen;
    int diff = CRYPTO_memcmp(same_len ? val : (const uint8_t *)token, token, tlen);
    return same_len && diff == 0;
}

static const char allow_get[] = "Allow: GET, HEAD\r\n";

/* The address hc arrived at, as an IP literal, into out ("" when unknown). */
static void local_ip(struct tt_headconn *hc, char out[64])
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    out[0] = '\0';
    if (!hc->conn || uv_tcp_getsockname(&hc->conn->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET)
        uv_ip4_name((const struct sockaddr_in *)&ss, out, 64);
    else if (ss.ss_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)&ss, out, 64);
}

/* DNS rebinding and cross-site requests (adminhost.h): answers 400 (HTTP/1.1 without Host, or
 * several Host headers), 421 (a Host that does not name this listener) or 403 (a request that
 * changes something, from another site's Origin) and returns false; true when hc may go on. */
static bool request_allowed(struct tt_headconn *hc, struct tt_relay *r)
{
    char ip[64];
    const uint8_t *host = NULL, *origin;
    size_t hlen = 0, olen;
    unsigned nhost = tt_headparse_find(&hc->hp, "host", &host, &hlen);
    bool http11 = hc->hp.p.http_major > 1 || (hc->hp.p.http_major == 1 && hc->hp.p.http_minor >= 1);
    if (nhost > 1 || (nhost == 0 && http11)) {
        answer_error(hc, "400 Bad Request", NULL,
                     nhost ? "more than one Host header"
                           : "an HTTP/1.1 request needs a Host header");
        return false;
    }
    local_ip(hc, ip);
    struct tt_adminhost a = {.listen_ip = r->cfg.admin.host, .local_ip = ip};
    if (nhost == 1 && !tt_adminhost_host_ok(&a, (const char *)host, hlen)) {
        r->admin_refused_host++;
        TT_LOG(TT_LOG_DEBUG, "admin request refused peer=%s:%u reason=host host=%s", hc->peer_ip,
               (unsigned)hc->peer_port, TT_LOG_VN((const char *)host, hlen));
        answer_error(hc, "421 Misdirected Request", NULL,
                     "this is the admin listener: the Host header must be its own address or "
                     "localhost (DNS rebinding protection)");
        return false;
    }
    enum http_method m = hc->hp.p.method;
    if (m == HTTP_GET || m == HTTP_HEAD || m == HTTP_OPTIONS)
        return true;
    unsigned norigin = tt_headparse_find(&hc->hp, "origin", &origin, &olen);
    if (norigin == 0)
        return true;
    if (norigin > 1 || !host ||
        !tt_adminhost_origin_ok(&a, (const char *)origin, olen, (const char *)host, hlen)) {
        r->admin_refused_origin++;
        TT_LOG(TT_LOG_DEBUG, "admin request refused peer=%s:%u reason=origin origin=%s",
               hc->peer_ip, (unsigned)hc->peer_port,
               TT_LOG_VN((const char *)origin, norigin ? olen : 0));
        answer_error(hc, "403 Forbidden", NULL,
                     "cross-site request refused: the Origin is not this admin listener");
        return false;
    }
    return true;
}

void tt_admin_on_head(struct tt_headconn *hc, void *ud)
{
    struct tt_relay *r = ud;
    const char *path = (const char *)hc->data + hc->hp.url_off;
    size_t plen = hc->hp.url_len;
    const char *q = memchr(path, '?', plen);
    if (q)
        plen = (size_t)(q - path);
    enum http_method m = hc->hp.p.method;
    bool get = m == HTTP_GET || m == HTTP_HEAD;
    if (!request_allowed(hc, r))
        return;
    if (plen == 8 && memcmp(path, "/healthz", 8) == 0 && !r->stopping) {
        if (!get)
            answer(hc, "405 Method Not Allowed", "text/plain; charset=utf-8", allow_get,
                   "method not allowed\n", 19);
        else if (tt_drain_on(r))
            answer(hc, "503 Service Unavailable", "text/plain; charset=utf-8", NULL, "draining\n",
                   9);
        else
            answer(hc, "200 OK", "text/plain; charset=utf-8", NULL, "ok\n", 3);
        return;
    }
    bool root = plen == 1 && path[0] == '/';
    if (root && m == HTTP_POST) {
        signin_post(hc, r); /* the sign-in form */
        return;
    }
    const uint8_t *cookie = NULL;
    size_t clen = 0;
    bool bearer = authorized(hc, r->cfg.admin_token);
    bool session = !bearer && session_of(hc, r, &cookie, &clen) >= 0;
    if (plen == 8 && memcmp(path, "/signout", 8) == 0) {
        if (m != HTTP_POST)
            answer(hc, "405 Method Not Allowed", "text/plain; charset=utf-8", "Allow: POST\r\n",
                   "method not allowed\n", 19);
        else
            signout(hc, r, session ? cookie : NULL, clen);
        return;
    }
    if (!bearer && !session) {
        if (root && get)
            signin_page(hc, false, false);
        else
            answer_error(hc, "401 Unauthorized", "WWW-Authenticate: Bearer realm=\"tetherd\"\r\n",
                         "a valid Authorization: Bearer token or the dashboard's session is "
                         "required");
        return;
    }
    /* a browser's session changes nothing without its Origin (checked by request_allowed) */
    if (session && !get && m != HTTP_OPTIONS &&
        tt_headparse_find(&hc->hp, "origin", &cookie, &clen) == 0) {
        r->admin_refused_origin++;
        answer_error(hc, "403 Forbidden", NULL,
                     "a request with the dashboard's session that changes something needs its "
                     "Origin header");
        return;
    }
    if (route_grants(hc, r, path, plen))
        return;
    if (route_console(hc, r, path, plen))
        return;
    if (plen == 10 && memcmp(path, "/api/drain", 10) == 0) {
        api_drain(hc, r);
        return;
    }
    static const char dev_prefix[] = "/api/devices/";
    size_t dplen = sizeof(dev_prefix) - 1;
    if (plen > dplen && memcmp(path, dev_prefix, dplen) == 0) {
        char name[TT_MAX_NAME * 3 + 1];
        if (!tt_pct_decode(path + dplen, plen - dplen, name, sizeof(name))) {
            answer_error(hc, "404 Not Found", NULL, "no such device");
            return;
        }
        if (get)
            api_device(hc, r, name);
        else if (m == HTTP_DELETE)
            api_delete(hc, r, name);
        else
            answer_error(hc, "405 Method Not Allowed", "Allow: GET, HEAD, DELETE\r\n",
                         "method not allowed");
        return;
    }
    enum { NONE, ROOT, DEVICES, METRICS } which = NONE;
    if (plen == 1 && path[0] == '/')
        which = ROOT;
    else if ((plen == 12 && memcmp(path, "/api/devices", 12) == 0) ||
             (plen == 13 && memcmp(path, "/api/devices/", 13) == 0))
        which = DEVICES;
    else if (plen == 8 && memcmp(path, "/metrics", 8) == 0)
        which = METRICS;
    if (which == NONE) {
        bool api = plen >= 4 && memcmp(path, "/api", 4) == 0;
        if (api)
            answer_error(hc, "404 Not Found", NULL, "not found");
        else
            answer(hc, "404 Not Found", "text/plain; charset=utf-8", NULL, "not found\n", 10);
        return;
    }
    if (!get) {
        if (which == DEVICES)
            answer_error(hc, "405 Method Not Allowed", allow_get, "method not allowed");
        else
            answer(hc, "405 Method Not Allowed", "text/plain; charset=utf-8", allow_get,
                   "method not allowed\n", 19);
        return;
    }
    if (which == ROOT)
        dashboard(hc, r, session);
    else if (which == DEVICES)
        api_devices(hc, r);
    else
        metrics(hc, r);
}
