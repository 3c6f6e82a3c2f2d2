/* admin.c - answers on the admin listener (admin.h): the dashboard, the device API, the grants
 * API, metrics and the health check. Every answer closes the connection. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include "tether_err.h"
#include "common/log.h"
#include "common/wsconn.h"
#include "admin.h"
#include "adminhost.h"
#include "cluster.h"
#include "device.h"
#include "grants.h"
#include "httpproxy.h"
#include "httpstats.h"
#include "signin.h"
#include "relay.h"
#include "visitor.h"
#include "webhook.h"

/* A growable answer body, capped at TT_ADMIN_BODY_MAX (beyond: ok = false). */
#define TT_ADMIN_BODY_MAX (64u * 1024 * 1024)

struct buf {
    char *p;
    size_t len, cap;
    bool ok;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (!b->ok)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = cap <= TT_ADMIN_BODY_MAX ? realloc(b->p, cap) : NULL;
        if (!p) {
            b->ok = false;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void buf_fmt(struct buf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        b->ok = false;
    else
        buf_add(b, tmp, (size_t)n);
}

static const char oom[] = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                          "Connection: close\r\n\r\n";

/* Sends status with body[0..len) (left out for HEAD) and closes. extra: more header lines,
 * each ending in CRLF, or NULL. */
static void answer(struct tt_headconn *hc, const char *status, const char *ctype, const char *extra,
                   const char *body, size_t len)
{
    struct buf b = {.ok = true};
    buf_fmt(&b,
            "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
            status, ctype, len, extra ? extra : "");
    if (hc->hp.p.method != HTTP_HEAD)
        buf_add(&b, body, len);
    if (b.ok)
        tt_headconn_respond(hc, b.p, b.len);
    else
        tt_headconn_respond(hc, oom, sizeof(oom) - 1);
    free(b.p);
}

static void answer_oom(struct tt_headconn *hc)
{
    answer(hc, "500 Internal Server Error", "text/plain; charset=utf-8", NULL, "out of memory\n",
           14);
}

/* Answers 200 with the page built in b (of type ctype), or 500 if building it ran out of
 * memory (ok false or b->ok false); frees b's bytes either way. */
static void answer_built(struct tt_headconn *hc, bool ok, const char *ctype, struct buf *b)
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
    if (tt_config_device_url(&d->relay->cfg, d->label, v->url, sizeof(v->url)) < 0)
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
    if (tt_config_device_url(&r->cfg, cd->label, w->v.url, sizeof(w->v.url)) < 0)
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
    json_t *j =
        json_pack("{s:s, s:b, s:s, s:s, s:o, s:o, s:o, s:o, s:I, s:I, s:I}", "name", w->name,
                  "online", w->v.online, "label", w->label, "url", w->v.url, "services", svcs,
                  "connected_since", str_or_null(w->v.since), "last_seen", str_or_null(w->v.seen),
                  "remote_addr", str_or_null(w->v.remote), "bytes_in", (json_int_t)w->v.in,
                  "bytes_out", (json_int_t)w->v.out, "streams", (json_int_t)w->streams);
    if (j && r->cluster && json_object_set_new(j, "node", str_or_null(w->node)) != 0) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* The devices to show, by name: this node's, or in cluster mode every device of the shared
 * registry (this node's own from memory, the others' as their holders published them; this
 * node's alone when Redis cannot be reached). name: that device only. Returns false when out
 * of memory. Free with rows_free. */
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
    if (name) {
        struct tt_device *d = tt_strmap_get(&r->by_name, name);
        if (!d || gone(d, rs->now))
            return true;
        if (!(rs->v = calloc(1, sizeof(*rs->v))))
            return false;
        row_local(d, rs->now, &rs->v[0]);
        rs->n = 1;
        return true;
    }
    struct devlist l;
    if (!collect(r, &l)) {
        free(l.v);
        return false;
    }
    rs->v = l.n ? calloc(l.n, sizeof(*rs->v)) : NULL;
    if (l.n && !rs->v) {
        free(l.v);
        return false;
    }
    for (size_t i = 0; i < l.n; i++)
        row_local(l.v[i], rs->now, &rs->v[rs->n++]);
    free(l.v);
    return true;
}

static void api_devices(struct tt_headconn *hc, struct tt_relay *r)
{
    struct rows rs;
    json_t *arr = rows_get(r, NULL, &rs) ? json_array() : NULL;
    for (size_t i = 0; arr && i < rs.n; i++) {
        if (json_array_append_new(arr, row_json(r, &rs.v[i])) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    rows_free(&rs);
    answer_json(hc, "200 OK", NULL, arr ? json_pack("{s:o}", "devices", arr) : NULL);
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

static void api_grant_delete(struct tt_headconn *hc, struct tt_relay *r, const char *id)
{
    int64_t now = tt_relay_now_ms();
    int rc = tt_grants_delete(r->access.grants, id, now);
    if (rc == TETHER_ERR_IO) {
        answer_error(hc, "503 Service Unavailable", NULL,
                     "the grant store (redis) cannot be reached: the grant is not revoked");
        return;
    }
    if (rc != 0) {
        answer_error(hc, "404 Not Found", NULL, "no such grant");
        return;
    }
    /* this node's connections under it close now; the other nodes' at their next read */
    size_t closed = tt_access_recheck(&r->access, now);
    if (closed)
        TT_LOG(TT_LOG_INFO, "grant revoked id=%s connections_closed=%zu", id, closed);
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
static void prom_label(struct buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            buf_str(b, "\\\\");
        else if (*s == '"')
            buf_str(b, "\\\"");
        else if (*s == '\n')
            buf_str(b, "\\n");
        else
            buf_add(b, s, 1);
    }
}

/* The abuse limits' block (limits.h): unauthenticated connections and what was shed, streams
 * refused per reason, timeouts per kind. */
static void limits_metrics(struct buf *b, const struct tt_limits *l)
{
    buf_fmt(b,
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
    buf_fmt(b,
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
    buf_fmt(b,
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
    buf_fmt(b,
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
static void metrics_wsconn(struct buf *b)
{
    struct tt_wsconn_stats w;
    tt_wsconn_get_stats(&w);
    buf_fmt(b,
            "# HELP tether_ws_output_overflow_total Connections closed because the peer did not "
            "read: a frame did not fit under the output queue's cap (cap), or queued output did "
            "not move for 30 s (stall).\n"
            "# TYPE tether_ws_output_overflow_total counter\n"
            "tether_ws_output_overflow_total{reason=\"cap\"} %llu\n"
            "tether_ws_output_overflow_total{reason=\"stall\"} %llu\n",
            (unsigned long long)w.overflow_cap, (unsigned long long)w.overflow_stall);
    buf_fmt(b,
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
static void drain_metrics(struct buf *b, struct tt_relay *r)
{
    const struct tt_drain *d = &r->drain;
    buf_fmt(b,
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
            (unsigned long long)r->cfg.max_registering,
            (unsigned long long)d->refused[TT_DRAIN_BUSY],
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
static void http_metrics(struct buf *b)
{
    buf_str(b, "# HELP tether_http_refused_total Requests the relay refused, by reason (400 "
               "syntax, target, header, framing, host, other_host; 501 transfer_coding; 431 "
               "too_large; 414 uri_too_long; none: the relay's own failure).\n"
               "# TYPE tether_http_refused_total counter\n");
    for (int i = 0; i < TT_REFUSAL_COUNT; i++)
        buf_fmt(b, "tether_http_refused_total{reason=\"%s\"} %llu\n",
                tt_headparse_refusal_name((enum tt_http_refusal)i),
                (unsigned long long)tt_httpstats.refused[i]);
    buf_fmt(b,
            "# HELP tether_http_upgrades_declined_total Upgrade and CONNECT requests the device "
            "answered with something else than 101 (2xx for CONNECT): the connection stayed "
            "HTTP.\n"
            "# TYPE tether_http_upgrades_declined_total counter\n"
            "tether_http_upgrades_declined_total %llu\n",
            (unsigned long long)tt_httpstats.upgrades_declined);
    buf_fmt(b,
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
    buf_fmt(b,
            "# HELP tether_http_device_cookie_refused_total Device responses cut before their "
            "head ended because they set the relay's session cookie (the connection closed).\n"
            "# TYPE tether_http_device_cookie_refused_total counter\n"
            "tether_http_device_cookie_refused_total %llu\n",
            (unsigned long long)tt_httpstats.device_cookie);
}

/* --tcp-allow refusals and the audit log's lines (forward.h, audit.h). */
static void audit_metrics(struct buf *b, const struct tt_relay *r)
{
    buf_fmt(b,
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
static void webhook_metrics(struct buf *b, const struct tt_relay *r)
{
    struct tt_webhook_stats s;
    tt_webhook_stats(r->webhooks, &s);
    buf_fmt(b,
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

static void metrics(struct tt_headconn *hc, struct tt_relay *r)
{
    struct devlist l;
    struct buf b = {.ok = true};
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
    buf_fmt(&b,
            "# HELP tether_devices_online Devices connected now.\n"
            "# TYPE tether_devices_online gauge\n"
            "tether_devices_online %llu\n"
            "# HELP tether_devices_known Devices online or offline within the grace period.\n"
            "# TYPE tether_devices_known gauge\n"
            "tether_devices_known %zu\n",
            (unsigned long long)online, l.n);
    buf_fmt(&b,
            "# HELP tether_relay_bytes_total Bytes relayed from (in) and to (out) devices.\n"
            "# TYPE tether_relay_bytes_total counter\n"
            "tether_relay_bytes_total{direction=\"in\"} %llu\n"
            "tether_relay_bytes_total{direction=\"out\"} %llu\n",
            (unsigned long long)in, (unsigned long long)out);
    buf_str(&b, "# HELP tether_device_bytes_total Bytes relayed from (in) and to (out) each "
                "known device.\n"
                "# TYPE tether_device_bytes_total counter\n");
    for (size_t i = 0; vs && i < l.n; i++) {
        for (int dir = 0; dir < 2; dir++) {
            buf_str(&b, "tether_device_bytes_total{device=\"");
            prom_label(&b, l.v[i]->name);
            buf_fmt(&b, "\",direction=\"%s\"} %llu\n", dir ? "out" : "in",
                    (unsigned long long)(dir ? vs[i].out : vs[i].in));
        }
    }
    buf_fmt(&b,
            "# HELP tether_streams_total Streams opened to devices.\n"
            "# TYPE tether_streams_total counter\n"
            "tether_streams_total %llu\n"
            "# HELP tether_device_connects_total Device registrations accepted.\n"
            "# TYPE tether_device_connects_total counter\n"
            "tether_device_connects_total %llu\n",
            (unsigned long long)streams, (unsigned long long)connects);
    buf_fmt(&b,
            "# HELP tether_admin_refused_total Admin requests refused: a Host that is not the "
            "admin listener's own (421, DNS rebinding), a state-changing request from another "
            "site's Origin (403).\n"
            "# TYPE tether_admin_refused_total counter\n"
            "tether_admin_refused_total{reason=\"host\"} %llu\n"
            "tether_admin_refused_total{reason=\"origin\"} %llu\n",
            (unsigned long long)r->admin_refused_host, (unsigned long long)r->admin_refused_origin);
    limits_metrics(&b, &r->limits);
    drain_metrics(&b, r);
    metrics_wsconn(&b);
    http_metrics(&b);
    audit_metrics(&b, r);
    webhook_metrics(&b, r);
    buf_fmt(&b,
            "# HELP tether_tls_refused_total Connections to a --tls-listen port that got no TLS "
            "session: plain HTTP (answered 400), a failed or non-TLS handshake (headconn.h).\n"
            "# TYPE tether_tls_refused_total counter\n"
            "tether_tls_refused_total{reason=\"plain_http\"} %llu\n"
            "tether_tls_refused_total{reason=\"handshake\"} %llu\n",
            (unsigned long long)r->web_tls.plain_http, (unsigned long long)r->web_tls.tls_failed);
    if (r->cluster) {
        const struct tt_cluster *c = r->cluster;
        buf_fmt(&b,
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
        buf_fmt(&b,
                "# HELP tether_cluster_forwarded_total Clients passed to the node holding "
                "their device.\n"
                "# TYPE tether_cluster_forwarded_total counter\n"
                "tether_cluster_forwarded_total{kind=\"http\"} %llu\n"
                "tether_cluster_forwarded_total{kind=\"tcp\"} %llu\n",
                (unsigned long long)c->forwarded_http, (unsigned long long)c->forwarded_tcp);
        buf_fmt(&b,
                "# HELP tether_cluster_beat_seconds Duration of this node's last beat (Redis "
                "calls included), and of its device check (takeovers, deletions, live fields).\n"
                "# TYPE tether_cluster_beat_seconds gauge\n"
                "tether_cluster_beat_seconds{part=\"all\"} %.6f\n"
                "tether_cluster_beat_seconds{part=\"devices\"} %.6f\n"
                "# HELP tether_cluster_live_published_total Devices whose live fields (bytes, "
                "streams) this node wrote to Redis because they changed.\n"
                "# TYPE tether_cluster_live_published_total counter\n"
                "tether_cluster_live_published_total %llu\n",
                (double)c->beat_us / 1e6, (double)c->check_us / 1e6,
                (unsigned long long)c->published);
        buf_fmt(&b,
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
    buf_str(&b, auth);
    char acc[8192];
    size_t aclen = 0;
    acc[0] = '\0';
    (void)tt_access_metrics(&r->access, acc, sizeof(acc), &aclen); /* access.h */
    buf_str(&b, acc);
    char signin[4096];
    size_t slen = 0;
    signin[0] = '\0';
    tt_signin_metrics(r, signin, sizeof(signin), &slen);
    buf_str(&b, signin);
    char vis[4096];
    (void)tt_visitor_metrics(r, vis, sizeof(vis));
    buf_str(&b, vis);
    free(vs);
    free(l.v);
    answer_built(hc, true, "text/plain; version=0.0.4", &b);
}

/* ---- dashboard ---- */

static void html(struct buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            buf_str(b, "&amp;");
            break;
        case '<':
            buf_str(b, "&lt;");
            break;
        case '>':
            buf_str(b, "&gt;");
            break;
        case '"':
            buf_str(b, "&quot;");
            break;
        case '\'':
            buf_str(b, "&#39;");
            break;
        default:
            buf_add(b, s, 1);
        }
    }
}

static void html_fmt(struct buf *b, const char *fmt, const char *s)
{
    char tmp[512];
    snprintf(tmp, sizeof(tmp), fmt, s);
    html(b, tmp);
}

/* How the dashboard marks a private service (access.h): a private HTTP service asks visitors
 * to sign in; a private TCP service has no public port. */
static const char private_tag[] =
    " <span class=\"private\" title=\"reachable only by users with a grant\">private</span>";

/* One line on the relay's access rules (--access, --public). */
static void access_summary(struct buf *b, const struct tt_relay *r)
{
    if (r->cfg.access != TT_ACCESS_PRIVATE) {
        buf_str(b, "<p>access: public (every service is reachable by anyone)</p>\n");
        return;
    }
    buf_str(b, "<p>access: private (services reachable only with a grant)");
    for (size_t i = 0; i < r->cfg.npublic; i++) {
        buf_str(b, i == 0 ? "; public: " : ", ");
        buf_str(b, "<code>");
        html(b, r->cfg.public_patterns[i]);
        buf_str(b, "</code>");
    }
    buf_str(b, "</p>\n");
}

static void dashboard(struct tt_headconn *hc, struct tt_relay *r)
{
    struct rows rs;
    struct buf b = {.ok = true};
    bool ok = rows_get(r, NULL, &rs);
    bool cluster = r->cluster != NULL;
    buf_str(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<title>tetherd</title><style>body{font-family:sans-serif;margin:2em}"
                "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.3em .6em;"
                "text-align:left;vertical-align:top}.online{color:#070}.offline{color:#a00}"
                ".private{color:#555;font-size:.85em;border:1px solid #999;border-radius:3px;"
                "padding:0 .3em;margin-left:.3em}"
                "</style></head><body>\n<h1>tetherd: devices</h1>\n");
    access_summary(&b, r);
    if (cluster) {
        buf_str(&b, "<p>cluster node ");
        html(&b, r->cfg.node_id);
        buf_fmt(&b, ", %zu live nodes; %zu known</p>\n", r->cluster->nnodes + 1, rs.n);
    } else {
        buf_fmt(&b, "<p>%zu known</p>\n", rs.n);
    }
    buf_fmt(&b,
            "<table>\n<tr><th>name</th><th>state</th>%s<th>URLs</th><th>ports</th>"
            "<th>bytes in</th><th>bytes out</th><th>connected since</th><th>last seen</th>"
            "</tr>\n",
            cluster ? "<th>node</th>" : "");
    for (size_t i = 0; ok && i < rs.n; i++) {
        const struct row *w = &rs.v[i];
        const char *state = w->v.online ? "online" : "offline";
        buf_str(&b, "<tr><td>");
        html(&b, w->name);
        buf_fmt(&b, "</td><td class=\"%s\">%s</td><td>", state, state);
        if (cluster) {
            html(&b, w->node[0] ? w->node : "-");
            buf_str(&b, "</td><td>");
        }
        size_t k;
        json_t *o;
        json_array_foreach(w->svcs, k, o)
        {
            const char *url = json_string_value(json_object_get(o, "url"));
            const char *kind = json_string_value(json_object_get(o, "kind"));
            if (!url || !kind || strcmp(kind, "http") != 0)
                continue;
            buf_str(&b, "<a href=\"");
            html(&b, url);
            buf_str(&b, "\">");
            html(&b, url);
            buf_str(&b, "</a>");
            if (json_is_true(json_object_get(o, "private")))
                buf_str(&b, private_tag);
            buf_str(&b, "<br>");
        }
        buf_str(&b, "</td><td>");
        json_array_foreach(w->svcs, k, o)
        {
            const char *name = json_string_value(json_object_get(o, "name"));
            const char *kind = json_string_value(json_object_get(o, "kind"));
            json_t *port = json_object_get(o, "port");
            if (!name || !kind || strcmp(kind, "tcp") != 0)
                continue;
            html(&b, name);
            if (json_is_integer(port))
                buf_fmt(&b, " %lld", (long long)json_integer_value(port));
            if (json_is_true(json_object_get(o, "private")))
                buf_str(&b, private_tag); /* no port: reached with tether connect */
            buf_str(&b, "<br>");
        }
        buf_fmt(&b, "</td><td>%llu</td><td>%llu</td><td>", (unsigned long long)w->v.in,
                (unsigned long long)w->v.out);
        html_fmt(&b, "%s", w->v.since[0] ? w->v.since : "-");
        buf_str(&b, "</td><td>");
        html_fmt(&b, "%s", w->v.seen[0] ? w->v.seen : "-");
        buf_str(&b, "</td></tr>\n");
    }
    buf_str(&b, "</table>\n</body></html>\n");
    rows_free(&rs);
    answer_built(hc, ok, "text/html; charset=utf-8", &b);
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
    if (!authorized(hc, r->cfg.admin_token)) {
        answer_error(hc, "401 Unauthorized", "WWW-Authenticate: Bearer realm=\"tetherd\"\r\n",
                     "a valid Authorization: Bearer token is required");
        return;
    }
    if (route_grants(hc, r, path, plen))
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
        dashboard(hc, r);
    else if (which == DEVICES)
        api_devices(hc, r);
    else
        metrics(hc, r);
}
