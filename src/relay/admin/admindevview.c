/* admindevview.c - the admin listener's view of the devices (adminint.h): this node's and, in
 * cluster mode, the shared registry's, as rows and as pages of the device list (adminquery.h), and
 * their JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>

#include "tether_err.h"
#include "relay/admin/adminint.h"
#include "relay/core.h"
#include "relay/device/device.h"

/* ---- device views ---- */

bool tt_admin_gone(const struct tt_device *d, int64_t now)
{
    return !d->conn && now - d->offline_since >= (int64_t)d->relay->cfg.grace_ms;
}

static int collect_one(const char *key, void *val, void *ud)
{
    (void)key;
    struct devlist *l = ud;
    struct tt_device *d = val;
    if (tt_admin_gone(d, l->now))
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

int tt_admin_by_name(const void *a, const void *b)
{
    return strcmp((*(struct tt_device *const *)a)->name, (*(struct tt_device *const *)b)->name);
}

/* The devices the registry knows (online, or offline within the grace period), by name.
 * Returns false when out of memory. Free l->v. */
bool tt_admin_collect(struct tt_relay *r, struct devlist *l)
{
    memset(l, 0, sizeof(*l));
    l->ok = true;
    l->now = tt_relay_now_ms();
    tt_strmap_foreach(&r->by_name, collect_one, l);
    if (l->ok && l->n)
        qsort(l->v, l->n, sizeof(l->v[0]), tt_admin_by_name);
    return l->ok;
}

/* ISO-8601 UTC ("2026-11-25T03:20:00Z") of unix milliseconds ms, "" for 0. */
void tt_admin_iso_time(int64_t ms, char out[32])
{
    out[0] = '\0';
    if (ms <= 0)
        return;
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void tt_admin_view_of(const struct tt_device *d, int64_t now, struct view *v)
{
    memset(v, 0, sizeof(*v));
    v->online = tt_device_online(d);
    /* the device's URL is its main HTTP service's: a device without one (TCP only) has none;
     * one restored from the registry and not registered since keeps it (its registry record
     * holds TCP ports only: whether it has an HTTP service is not known) */
    if ((d->connects > 0 && tt_device_http_service(d, "") < 0) ||
        tt_config_device_url(&d->relay->cfg, d->label, v->url, sizeof(v->url)) < 0)
        v->url[0] = '\0';
    tt_admin_iso_time(v->online ? d->connected_since : 0, v->since);
    tt_admin_iso_time(v->online ? now : d->last_seen, v->seen);
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

static void row_local(const struct tt_device *d, int64_t now, struct row *w)
{
    memset(w, 0, sizeof(*w));
    snprintf(w->name, sizeof(w->name), "%s", d->name);
    snprintf(w->label, sizeof(w->label), "%s", d->label);
    tt_admin_view_of(d, now, &w->v);
    snprintf(w->remote, sizeof(w->remote), "%s", d->remote_addr);
    w->v.remote = w->remote;
    w->streams = d->streams;
    w->svcs = services_json(d);
    if (d->relay->cluster && w->v.online)
        snprintf(w->node, sizeof(w->node), "%s", d->relay->cfg.node_id);
}

/* One service of a record held elsewhere, from what its holder published
 * (tt_cluster_services_dump), with the URL this node gives it; NULL when malformed. Its "private"
 * is the holder's decision (a holder of an older version publishes none: this node's rules decide
 * then). */
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
    tt_admin_iso_time(w->v.online && cd->has_live ? cd->connected_since : 0, w->v.since);
    tt_admin_iso_time(w->v.online ? now : cd->last_seen, w->v.seen);
    snprintf(w->remote, sizeof(w->remote), "%s", cd->remote);
    w->v.remote = w->remote;
    w->v.in = cd->in;
    w->v.out = cd->out;
    w->streams = cd->streams;
    w->svcs = remote_services(r, cd);
}

json_t *tt_admin_row_json(const struct tt_relay *r, struct row *w)
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

void tt_admin_rows_free(struct rows *rs)
{
    for (size_t i = 0; i < rs->n; i++)
        json_decref(rs->v[i].svcs);
    free(rs->v);
    rs->v = NULL;
    rs->n = 0;
}

/* Cluster mode: whether cd is shown (known: online, or offline within the grace period). */
bool tt_admin_record_known(const struct tt_relay *r, const struct tt_cluster_dev *cd, int64_t now)
{
    if (cd->node[0])
        return true;
    return cd->offline_since <= 0 || now - cd->offline_since < (int64_t)r->cfg.grace_ms;
}

/* The rows of the records cds[0..n) read from Redis (the page's, or one device's). Returns false
 * when out of memory. */
static bool rows_of_records(struct tt_relay *r, const struct tt_cluster_dev *cds, size_t n,
                            struct rows *rs, bool known_only)
{
    rs->v = n ? calloc(n, sizeof(*rs->v)) : NULL;
    if (n && !rs->v)
        return false;
    for (size_t i = 0; i < n; i++) {
        const struct tt_cluster_dev *cd = &cds[i];
        if (known_only && !tt_admin_record_known(r, cd, rs->now))
            continue;
        struct tt_device *d = tt_strmap_get(&r->by_name, cd->name);
        if (d && !tt_admin_gone(d, rs->now))
            row_local(d, rs->now, &rs->v[rs->n]);
        else
            row_remote(r, cd, rs->now, &rs->v[rs->n]);
        rs->n++;
    }
    return true;
}

/* The device called name from this node's memory (rs->n 0 or 1). Returns false when out of
 * memory. */
static bool rows_local(struct tt_relay *r, const char *name, struct rows *rs)
{
    struct tt_device *d = tt_strmap_get(&r->by_name, name);
    if (!d || tt_admin_gone(d, rs->now))
        return true;
    if (!(rs->v = calloc(1, sizeof(*rs->v))))
        return false;
    row_local(d, rs->now, &rs->v[0]);
    rs->n = 1;
    return true;
}

/* A read of the devices from Redis for a held admin connection (the connection's: freed by
 * held_drop when it goes first). */
struct readjob {
    struct tt_headconn *hc;
    struct tt_relay *r;
    struct tt_cluster_walk *walk;
    int64_t now;
    char name[TT_MAX_NAME + 1];
    struct tt_adminquery q;
    bool flag;
    tt_admin_rows_cb rows_cb;
    tt_admin_page_cb page_cb;
};

static void held_drop(struct tt_headconn *hc, void *ud)
{
    struct readjob *j = ud;
    (void)hc;
    tt_cluster_walk_cancel(j->walk);
    free(j);
}

static void rows_answer(struct tt_headconn *hc, struct tt_relay *r, struct rows *rs, bool ok,
                        tt_admin_rows_cb cb)
{
    cb(hc, r, rs, ok ? TT_ADMIN_GOT_OK : TT_ADMIN_GOT_NOMEM);
    tt_admin_rows_free(rs);
}

static void on_dev_read(void *ud, int rc, struct tt_cluster_page *cp)
{
    struct readjob *j = ud;
    struct tt_headconn *hc = j->hc;
    struct rows rs = {.now = j->now};
    tt_admin_unhold(hc);
    if (rc == TETHER_ERR_TIMEOUT)
        j->rows_cb(hc, j->r, &rs, TT_ADMIN_GOT_BUSY);
    else if (rc == TETHER_ERR_IO) /* Redis did not answer: this node's devices only */
        rows_answer(hc, j->r, &rs, rows_local(j->r, j->name, &rs), j->rows_cb);
    else
        rows_answer(hc, j->r, &rs, rc == 0 && rows_of_records(j->r, cp->v, cp->n, &rs, true),
                    j->rows_cb);
    tt_cluster_page_free(cp);
    free(j);
}

void tt_admin_rows_start(struct tt_headconn *hc, struct tt_relay *r, const char *name,
                         tt_admin_rows_cb cb)
{
    struct rows rs = {.now = tt_relay_now_ms()};
    struct readjob *j = r->cluster ? calloc(1, sizeof(*j)) : NULL;
    if (r->cluster && !j) {
        cb(hc, r, &rs, TT_ADMIN_GOT_NOMEM);
        return;
    }
    if (j) {
        *j = (struct readjob){.hc = hc, .r = r, .now = rs.now, .rows_cb = cb};
        snprintf(j->name, sizeof(j->name), "%s", name);
        int rc = tt_cluster_dev_async(r->cluster, name, on_dev_read, j, &j->walk);
        if (rc == TT_CLUSTER_PENDING) {
            tt_admin_hold(hc, held_drop, j);
            return;
        }
        free(j);
        if (rc == TETHER_ERR_CAPACITY) {
            cb(hc, r, &rs, TT_ADMIN_GOT_BUSY);
            return;
        }
        if (rc == TETHER_ERR_NOMEM) {
            cb(hc, r, &rs, TT_ADMIN_GOT_NOMEM);
            return;
        }
        /* Redis cannot be reached (or the name is too long for any record): this node's */
    }
    rows_answer(hc, r, &rs, rows_local(r, name, &rs), cb);
}

/* ---- pages of the device list (adminquery.h) ---- */

void tt_admin_page_free(struct page *pg)
{
    tt_admin_rows_free(&pg->rs);
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
        qsort(l.v, k, sizeof(l.v[0]), tt_admin_by_name);
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

/* Cluster mode: the page from the walk's page cp (taken). Returns false when out of memory. */
static bool page_cluster(struct tt_relay *r, struct page *pg, struct tt_cluster_page *cp)
{
    pg->cp = *cp;
    memset(cp, 0, sizeof(*cp));
    pg->cluster = true;
    pg->total = pg->cp.total;
    pg->online = pg->cp.online;
    pg->offline = pg->cp.offline;
    if (!rows_of_records(r, pg->cp.v, pg->cp.n, &pg->rs, false))
        return false;
    snprintf(pg->prev, sizeof(pg->prev), "%s", pg->cp.prev);
    if (pg->cp.more && pg->cp.n) {
        pg->has_next = true;
        snprintf(pg->next, sizeof(pg->next), "%s", pg->cp.v[pg->cp.n - 1].name);
    }
    return true;
}

static void page_answer(struct tt_headconn *hc, struct tt_relay *r, const struct tt_adminquery *q,
                        struct page *pg, enum tt_admin_got got, bool flag, tt_admin_page_cb cb)
{
    cb(hc, r, q, pg, got, flag);
    tt_admin_page_free(pg);
}

static void on_page_read(void *ud, int rc, struct tt_cluster_page *cp)
{
    struct readjob *j = ud;
    struct tt_headconn *hc = j->hc;
    struct page pg;
    memset(&pg, 0, sizeof(pg));
    pg.rs.now = j->now;
    tt_admin_unhold(hc);
    bool ok;
    if (rc == TETHER_ERR_TIMEOUT) {
        page_answer(hc, j->r, &j->q, &pg, TT_ADMIN_GOT_BUSY, j->flag, j->page_cb);
    } else {
        if (rc == TETHER_ERR_IO) /* Redis did not answer: this node's devices only */
            ok = page_local(j->r, &j->q, &pg);
        else
            ok = rc == 0 && page_cluster(j->r, &pg, cp);
        page_answer(hc, j->r, &j->q, &pg, ok ? TT_ADMIN_GOT_OK : TT_ADMIN_GOT_NOMEM, j->flag,
                    j->page_cb);
    }
    tt_cluster_page_free(cp);
    free(j);
}

void tt_admin_page_start(struct tt_headconn *hc, struct tt_relay *r, const struct tt_adminquery *q,
                         bool flag, tt_admin_page_cb cb)
{
    struct page pg;
    memset(&pg, 0, sizeof(pg));
    pg.rs.now = tt_relay_now_ms();
    struct readjob *j = r->cluster ? calloc(1, sizeof(*j)) : NULL;
    if (r->cluster && !j) {
        page_answer(hc, r, q, &pg, TT_ADMIN_GOT_NOMEM, flag, cb);
        return;
    }
    if (j) {
        *j = (struct readjob){
            .hc = hc, .r = r, .now = pg.rs.now, .q = *q, .flag = flag, .page_cb = cb};
        int rc = tt_cluster_page_async(r->cluster, q, pg.rs.now, r->cfg.grace_ms, on_page_read, j,
                                       &j->walk);
        if (rc == TT_CLUSTER_PENDING) {
            tt_admin_hold(hc, held_drop, j);
            return;
        }
        free(j);
        if (rc == TETHER_ERR_CAPACITY || rc == TETHER_ERR_NOMEM) {
            page_answer(hc, r, q, &pg,
                        rc == TETHER_ERR_CAPACITY ? TT_ADMIN_GOT_BUSY : TT_ADMIN_GOT_NOMEM, flag,
                        cb);
            return;
        }
        /* Redis cannot be reached now: this node's devices only */
    }
    bool ok = page_local(r, q, &pg);
    page_answer(hc, r, q, &pg, ok ? TT_ADMIN_GOT_OK : TT_ADMIN_GOT_NOMEM, flag, cb);
}

/* The query of the request hc (what follows '?' in its target), parsed into q; false after
 * answering 400 (json: the API's JSON error, else a line of text). */
bool tt_admin_query_of(struct tt_headconn *hc, struct tt_adminquery *q, bool json)
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
        tt_admin_answer_error(hc, "400 Bad Request", NULL, err);
    } else {
        char line[TT_ERRLEN + 32];
        int n = snprintf(line, sizeof(line), "bad query: %s\n", err);
        tt_admin_answer(hc, "400 Bad Request", "text/plain; charset=utf-8", NULL, line,
                        n > 0 && (size_t)n < sizeof(line) ? (size_t)n : 0);
    }
    return false;
}
