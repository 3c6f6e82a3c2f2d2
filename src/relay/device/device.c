/* device.c - device connections and devices at run time (device.h): HELLO handling (name,
 * services and token checks, takeover, label and port assignment, WELCOME), the offline state
 * within the grace period, and expiry. Streams are opened by proxy.c; their bytes are moved by
 * pipe.c, whose stream callbacks are installed next to ours. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include "tether_err.h"
#include "common/log.h"
#include "common/pipe.h"
#include "common/util.h"
#include "relay/device/admission.h"
#include "relay/device/device.h"
#include "relay/http/respond.h"
#include "relay/admin/webhook.h"

bool tt_device_online(const struct tt_device *d)
{
    return d->conn && d->conn->ws &&
           tt_session_state(tt_wsconn_session(d->conn->ws)) == TT_SESSION_OPEN;
}

static void send_frame(struct tt_devconn *dc, const uint8_t *f, tt_ssize n)
{
    if (n > 0 && dc->ws)
        tt_wsconn_send_frame(dc->ws, f, (size_t)n);
}

/* d's record (label, TCP ports, offline since, last seen) into rd; with key, the device key of
 * the registration under way when it has one to store (in the same write). Returns false when
 * there is nothing to write (cluster mode: a device without a label). */
static bool record(const struct tt_device *d, const struct tt_devconn *key,
                   struct tt_reg_device *rd)
{
    if (d->relay->mode->shared && !d->label[0])
        return false;
    memset(rd, 0, sizeof(*rd));
    snprintf(rd->name, sizeof(rd->name), "%s", d->name);
    snprintf(rd->label, sizeof(rd->label), "%s", d->label);
    rd->offline_since = d->offline_since;
    rd->last_seen = d->last_seen;
    for (uint8_t i = 0; i < d->nsvc; i++) {
        if (d->svc[i].kind != TT_SERVICE_TCP || !d->svc[i].portno)
            continue;
        snprintf(rd->ports[rd->nports].service, sizeof(rd->ports[0].service), "%s", d->svc[i].name);
        rd->ports[rd->nports++].port = d->svc[i].portno;
    }
    if (key && key->set_key) {
        rd->set_key = true;
        memcpy(rd->key_hash, key->key_hash, sizeof(rd->key_hash));
    }
    return true;
}

/* A background write ended (ud: a copy of the device name, or NULL): failures are logged. */
static void written(int rc, void *ud)
{
    char *name = ud;
    if (rc && rc != TETHER_ERR_NOT_FOUND)
        TT_LOG(TT_LOG_ERROR, "registry update failed device=%s err=%s", TT_LOG_V(name ? name : ""),
               tether_err_name(rc));
    free(name);
}

/* Records d's state in the registry in the background (asynchronous with Redis: sent behind
 * every write queued before it, so that a device's writes land in order). */
static void save(struct tt_device *d)
{
    struct tt_reg_device rd;
    if (!record(d, NULL, &rd))
        return;
    char *name = strdup(d->name);
    int rc = tt_registry_put_async(d->relay->reg, &rd, written, name);
    if (rc)
        written(rc, name);
}

/* The peer's "IP:PORT" for logs. */
static const char *peer(const struct tt_devconn *dc)
{
    return dc->ws ? tt_wsconn_peer(dc->ws) : "";
}

/* Where clients reach service s of d (WELCOME): the URL of an HTTP service (LABEL.DOMAIN for the
 * main one, SERVICE--LABEL.DOMAIN for the others), the host of a TCP one. Returns 0, or -1 when
 * it does not fit. */
static int svc_address(const struct tt_device *d, const struct tt_device_svc *s,
                       char out[TT_MAX_ADDR + 1])
{
    const struct tt_config *cfg = &d->relay->cfg;
    char prefix[TT_ROUTE_SVCLEN + 2 + TT_MAX_LABEL + 1];
    if (s->kind != TT_SERVICE_HTTP) {
        snprintf(out, TT_MAX_ADDR + 1, "%.128s", cfg->domain);
        return 0;
    }
    if (s->dnsname[0])
        snprintf(prefix, sizeof(prefix), "%s--%s", s->dnsname, d->label);
    else
        snprintf(prefix, sizeof(prefix), "%s", d->label);
    return tt_config_device_url(cfg, prefix, out, TT_MAX_ADDR + 1) < 0 ? -1 : 0;
}

/* Room for n services (at least one slot, so that NULL means out of memory). */
static struct tt_device_svc *svcs_new(size_t n)
{
    return calloc(n ? n : 1, sizeof(struct tt_device_svc));
}

static void device_free(struct tt_device *d)
{
    free(d->svc);
    free(d);
}

static void close_ports(struct tt_device *d)
{
    for (uint8_t i = 0; i < d->nsvc; i++) {
        if (d->svc[i].port)
            tt_tcpport_close(d->svc[i].port);
        d->svc[i].port = NULL;
    }
}

/* d leaves this node: its listeners and map entries go, its counters go to the relay's, d is
 * freed; its registry record is left alone (cluster mode: it went offline, or another node
 * holds it now, and its ports stay with the cluster's listeners). */
void tt_device_drop_local(struct tt_device *d)
{
    struct tt_relay *r = d->relay;
    r->gone_bytes_in += d->bytes_in;
    r->gone_bytes_out += d->bytes_out;
    r->gone_streams += d->streams;
    r->gone_connects += d->connects;
    close_ports(d);
    tt_strmap_del(&r->by_name, d->name);
    tt_strmap_del(&r->by_label, d->label);
    device_free(d);
}

/* Forgets d: label and ports are released (the registry's delete goes in the background), its
 * counters go to the relay's. d is freed. */
static void forget(struct tt_device *d)
{
    char *name = strdup(d->name);
    int rc = tt_registry_del_async(d->relay->reg, d->name, written, name);
    if (rc)
        written(rc, name);
    tt_device_drop_local(d);
}

int tt_device_save_async(struct tt_device *d, tt_registry_done_cb cb, void *ud)
{
    struct tt_reg_device rd;
    if (!record(d, NULL, &rd))
        return TETHER_ERR_NOT_FOUND;
    return tt_registry_put_async(d->relay->reg, &rd, cb, ud);
}

static int count_online(const char *key, void *val, void *ud)
{
    struct tt_device *d = val;
    (void)key;
    if (d->conn && d->offline_since == 0)
        (*(size_t *)ud)++;
    return 0;
}

size_t tt_device_online_count(struct tt_relay *r)
{
    size_t n = 0;
    tt_strmap_foreach(&r->by_name, count_online, &n);
    return n;
}

static void expire(struct tt_device *d)
{
    TT_LOG(TT_LOG_INFO, "device expired device=%s label=%s", TT_LOG_V(d->name), d->label);
    forget(d);
}

/* d's grace period is over: the "expired" webhook (webhook.h), then expire(). In cluster mode
 * the Redis script that forgets a device tells the one node that forgot it (cluster.c), so
 * nothing is sent from here. */
static void expire_grace(struct tt_device *d)
{
    d->relay->mode->expired(d);
    expire(d);
}

int tt_device_delete(struct tt_relay *r, const char *name)
{
    struct tt_device *d = tt_strmap_get(&r->by_name, name);
    if (!d)
        return TETHER_ERR_NOT_FOUND;
    struct tt_devconn *dc = d->conn;
    TT_LOG(TT_LOG_INFO, "device deleted device=%s label=%s peer=%s", TT_LOG_V(d->name), d->label,
           dc ? peer(dc) : "");
    if (dc) {
        if (dc->ws) {
            d->bytes_in += tt_wsconn_bytes_in(dc->ws);
            d->bytes_out += tt_wsconn_bytes_out(dc->ws);
        }
        dc->dev = NULL;
        d->conn = NULL;
        if (dc->ws)
            tt_wsconn_close(dc->ws, TT_GOAWAY_DELETED, tt_wsconn_close_code(TT_GOAWAY_DELETED), 0,
                            "device deleted by the operator");
    }
    forget(d);
    return 0;
}

static bool expired(const struct tt_device *d, int64_t now)
{
    return !d->conn && now - d->offline_since >= (int64_t)d->relay->cfg.grace_ms;
}

/* dc has been answered (or is being closed for want of a HELLO): the HELLO deadline no longer
 * applies to it. */
static void set_registered(struct tt_devconn *dc)
{
    if (!dc->registered && dc->relay->unregistered > 0)
        dc->relay->unregistered--;
    dc->registered = true;
    tt_limits_leave(&dc->relay->limits, &dc->lim);
}

/* d is offline since t: the sweep must look again by the end of its grace period. */
static void set_offline(struct tt_device *d, int64_t t)
{
    struct tt_relay *r = d->relay;
    d->offline_since = t;
    if (t + (int64_t)r->cfg.grace_ms < r->sweep_expiry_at)
        r->sweep_expiry_at = t + (int64_t)r->cfg.grace_ms;
}

struct tt_device *tt_device_by_label(struct tt_relay *r, const char *label)
{
    struct tt_device *d = tt_strmap_get(&r->by_label, label);
    if (d && expired(d, tt_relay_now_ms())) {
        expire_grace(d);
        return NULL;
    }
    return d;
}

int tt_device_http_service(const struct tt_device *d, const char *svc)
{
    for (uint8_t i = 0; i < d->nsvc; i++)
        if (d->svc[i].kind == TT_SERVICE_HTTP && strcmp(d->svc[i].dnsname, svc) == 0)
            return i;
    return -1;
}

static bool label_free(struct tt_relay *r, struct tt_registry *reg, const char *label)
{
    struct tt_reg_device rd;
    return !tt_strmap_get(&r->by_label, label) &&
           tt_registry_find_label(reg, label, &rd) == TETHER_ERR_NOT_FOUND;
}

/* A record past its grace, not swept yet, was deleted (in the background) by this node. */
struct expired_note {
    struct tt_relay *r;
    char name[TT_MAX_NAME + 1], label[TT_MAX_LABEL + 1];
    int64_t now;
};

static void expired_deleted(int rc, void *ud)
{
    struct expired_note *e = ud;
    if (rc == 0) {
        TT_LOG(TT_LOG_INFO, "device expired device=%s label=%s", TT_LOG_V(e->name), e->label);
        tt_webhook_emit(e->r->webhooks, "expired", e->name, e->label, e->now);
    }
    free(e);
}

/* A new runtime device for name, with its remembered label and ports when the registry (reg:
 * the registration's lookup, registry.h's view) still holds them, else a fresh label: label
 * when it is free, else a random one. Returns NULL when out of memory or labels. */
static struct tt_device *device_create(struct tt_relay *r, struct tt_registry *reg,
                                       const char *name, const char *label, bool *held)
{
    struct tt_device *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->relay = r;
    snprintf(d->name, sizeof(d->name), "%s", name);
    struct tt_reg_device rd;
    if (tt_registry_get(reg, name, &rd) == 0) {
        int64_t now = tt_relay_now_ms();
        if (rd.offline_since == 0 || now - rd.offline_since < (int64_t)r->cfg.grace_ms) {
            *held = rd.offline_since == 0 && rd.node[0] && strcmp(rd.node, r->cfg.node_id) != 0;
            d->svc = svcs_new(rd.nports);
            if (!d->svc) {
                free(d);
                return NULL;
            }
            snprintf(d->label, sizeof(d->label), "%s", rd.label);
            for (uint8_t i = 0; i < rd.nports && i < TT_MAX_SERVICES; i++) {
                d->svc[i].kind = TT_SERVICE_TCP;
                snprintf(d->svc[i].name, sizeof(d->svc[i].name), "%s", rd.ports[i].service);
                d->svc[i].portno = rd.ports[i].port;
            }
            d->nsvc = rd.nports;
        } else {
            /* past its grace, not swept yet: expired here, by the node that deletes it (sent
             * before this registration's own write, so it lands first) */
            struct expired_note *e = calloc(1, sizeof(*e));
            if (e) {
                e->r = r;
                snprintf(e->name, sizeof(e->name), "%s", name);
                snprintf(e->label, sizeof(e->label), "%s", rd.label);
                e->now = now;
                if (tt_registry_del_async(r->reg, name, expired_deleted, e) != 0)
                    free(e);
            }
        }
    }
    if (!d->label[0] && label[0] && label_free(r, reg, label))
        snprintf(d->label, sizeof(d->label), "%s", label);
    for (int tries = 0; !d->label[0] && tries < 100; tries++) {
        char fresh[TT_DEVICE_LABEL_LEN + 1];
        if (tt_random_label(fresh, TT_DEVICE_LABEL_LEN) == 0 && label_free(r, reg, fresh))
            snprintf(d->label, sizeof(d->label), "%s", fresh);
    }
    if (!d->label[0] || tt_strmap_put(&r->by_name, d->name, d) != 0) {
        device_free(d);
        return NULL;
    }
    if (tt_strmap_put(&r->by_label, d->label, d) != 0) {
        tt_strmap_del(&r->by_name, d->name);
        device_free(d);
        return NULL;
    }
    return d;
}

/* The main HTTP service: the one named "http", else the first HTTP one; -1 if none. */
static int main_http(const struct tt_hello *m)
{
    int first = -1;
    for (int i = 0; i < m->nservices; i++) {
        if (m->services[i].kind != TT_SERVICE_HTTP)
            continue;
        if (m->services[i].name.len == 4 && memcmp(m->services[i].name.p, "http", 4) == 0)
            return i;
        if (first < 0)
            first = i;
    }
    return first;
}

/* ns[i]'s DNS name (docs/PROTOCOL.md 4.2): its name mapped by tt_route_service_dnsname; when
 * an earlier HTTP service of ns has that one, "sI" (I = i), else "sI-1", "sI-2"... the first
 * that none has. Eight services cannot take them all. */
static void service_dnsname(struct tt_device_svc *ns, int i, const struct tt_str *name)
{
    char *out = ns[i].dnsname;
    tt_route_service_dnsname(name->p, name->len, out);
    for (int k = 0; k <= TT_MAX_SERVICES; k++) {
        bool taken = false;
        for (int j = 0; j < i && !taken; j++)
            taken = ns[j].kind == TT_SERVICE_HTTP && strcmp(ns[j].dnsname, out) == 0;
        if (!taken)
            return;
        if (k == 0)
            snprintf(out, sizeof(ns[i].dnsname), "s%d", i);
        else
            snprintf(out, sizeof(ns[i].dnsname), "s%d-%d", i, k);
    }
}

/* The TCP ports d held that its new services ns[0..n) do not keep (a service gone, or now
 * private): logged, and in cluster mode this node's listener closes now (the registry write
 * releases the port; the other nodes close theirs at their next beat). Outside cluster mode
 * close_ports() closes them. */
static void release_dropped(struct tt_device *d, const struct tt_device_svc *ns, int n)
{
    for (uint8_t j = 0; j < d->nsvc; j++) {
        const struct tt_device_svc *o = &d->svc[j];
        bool kept = false;
        if (o->kind != TT_SERVICE_TCP || !o->portno)
            continue;
        for (int i = 0; i < n && !kept; i++)
            kept = ns[i].kind == TT_SERVICE_TCP && ns[i].portno == o->portno;
        if (kept)
            continue;
        for (int i = 0; i < n; i++)
            if (ns[i].kind == TT_SERVICE_TCP && ns[i].is_private &&
                strcmp(ns[i].name, o->name) == 0)
                TT_LOG(TT_LOG_INFO,
                       "tcp port released, the service is private device=%s "
                       "service=%s port=%u",
                       TT_LOG_V(d->name), TT_LOG_V(o->name), (unsigned)o->portno);
        d->relay->mode->release_port(d->relay, d->name, o->portno);
    }
}

/* Sets d's services from the HELLO: URLs for HTTP services, ports for public TCP ones (kept per
 * service name), none for private TCP ones. Returns 0 or TETHER_ERR_CAPACITY / _NOMEM (d
 * unchanged). */
static int configure_services(struct tt_device *d, const struct tt_hello *m)
{
    struct tt_relay *r = d->relay;
    struct tt_device_svc ns[TT_MAX_SERVICES];
    int carried[TT_MAX_SERVICES]; /* index in d->svc whose listener ns[i] keeps, or -1 */
    int mh = main_http(m);
    memset(ns, 0, sizeof(ns));
    for (int i = 0; i < m->nservices; i++) {
        struct tt_device_svc *s = &ns[i];
        carried[i] = -1;
        s->kind = m->services[i].kind;
        memcpy(s->name, m->services[i].name.p, m->services[i].name.len);
        /* the relay decides, not the device (access.h) */
        s->is_private = !tt_access_public(&r->access, d->name, s->name);
        if (s->kind == TT_SERVICE_HTTP) {
            char url[TT_MAX_ADDR + 1];
            if (i != mh)
                service_dnsname(ns, i, &m->services[i].name);
            /* made again for the WELCOME; here only checked */
            if (svc_address(d, s, url) != 0)
                return TETHER_ERR_NOMEM;
            continue;
        }
        if (s->is_private)
            continue; /* no public port; one it held before is released below */
        for (int j = 0; j < d->nsvc; j++) {
            if (d->svc[j].kind == TT_SERVICE_TCP && strcmp(d->svc[j].name, s->name) == 0) {
                if (d->svc[j].port)
                    carried[i] = j;
                s->portno = d->svc[j].portno;
            }
        }
    }
    struct tt_device_svc *nsv = svcs_new(m->nservices);
    if (!nsv)
        return TETHER_ERR_NOMEM;
    int prc = r->mode->claim_ports(d, ns, m->nservices, carried); /* mode.h */
    if (prc) {
        free(nsv);
        return prc;
    }
    for (int i = 0; i < m->nservices; i++) {
        if (carried[i] >= 0) {
            ns[i].port = d->svc[carried[i]].port;
            ns[i].portno = d->svc[carried[i]].portno;
            d->svc[carried[i]].port = NULL;
        }
    }
    release_dropped(d, ns, m->nservices);
    close_ports(d);
    memcpy(nsv, ns, m->nservices * sizeof(ns[0]));
    free(d->svc);
    d->svc = nsv;
    d->nsvc = m->nservices;
    return 0;
}

static bool printable(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] <= 0x20 || p[i] >= 0x7f)
            return false;
    return n > 0;
}

/* Checks the name and the service list; NULL if fine, else the reason. */
static const char *check_hello(const struct tt_hello *m, char name[TT_MAX_NAME + 1])
{
    if (m->name.len > TT_MAX_NAME || !printable(m->name.p, m->name.len))
        return "invalid device name";
    memcpy(name, m->name.p, m->name.len);
    name[m->name.len] = '\0';
    for (int i = 0; i < m->nservices; i++) {
        const struct tt_str *a = &m->services[i].name;
        if (a->len > TT_MAX_NAME || !printable(a->p, a->len))
            return "invalid service name";
        for (int j = 0; j < i; j++) {
            const struct tt_str *b = &m->services[j].name;
            if (a->len == b->len && memcmp(a->p, b->p, a->len) == 0)
                return "service name given twice";
        }
    }
    return NULL;
}

/* dc's registration is answered (or abandoned): no longer counted by admission control. */
static void admitted(struct tt_devconn *dc)
{
    if (dc->admitting && dc->relay->drain.registering > 0)
        dc->relay->drain.registering--;
    dc->admitting = false;
}

static int refuse(struct tt_devconn *dc, struct tt_session *s, uint16_t code, const char *why)
{
    admitted(dc);
    uint8_t buf[512];
    dc->key_issued = dc->set_key = false; /* nothing stored: a refused HELLO writes no record */
    OPENSSL_cleanse(dc->key, sizeof(dc->key));
    set_registered(dc); /* answered: the HELLO deadline no longer applies */
    send_frame(dc, buf, tt_session_refuse(s, code, why, buf, sizeof(buf)));
    if (dc->ws)
        tt_wsconn_close(dc->ws, TT_GOAWAY_NORMAL, code == TT_REFUSE_AUTH ? 1008 : 1000,
                        code == TT_REFUSE_AUTH ? TETHER_ERR_AUTH : TETHER_ERR_REFUSED, why);
    return 0;
}

/* The withdrawal of an issued key ended (ud: a copy of the name). */
static void key_withdrawn(int rc, void *ud)
{
    char *name = ud;
    if (rc != TETHER_ERR_NOT_FOUND) /* NOT_FOUND: another key's now, or none: left alone */
        TT_LOG(rc ? TT_LOG_ERROR : TT_LOG_INFO,
               "device key withdrawn, its registration was not acknowledged device=%s err=%s",
               name ? name : "", tether_err_name(rc));
    free(name);
}

/* dc's registration will not be acknowledged: a key the relay issued for it (and maybe stored
 * with it) must not stay, or the name would belong to a key that nobody has. The stored hash is
 * removed only while it is still that key's (one atomic step, sent behind the registration's
 * own write). The key itself is wiped. */
static void drop_issued_key(struct tt_devconn *dc)
{
    if (dc->key_issued) {
        char *name = strdup(dc->key_name);
        int rc = tt_registry_key_del_if_async(dc->relay->reg, dc->key_name, dc->key_hash,
                                              key_withdrawn, name);
        if (rc)
            key_withdrawn(rc, name);
    }
    dc->key_issued = dc->set_key = false;
    OPENSSL_cleanse(dc->key, sizeof(dc->key));
}

/* The device's current connection leaves in favour of a new one. */
static void takeover(struct tt_device *d)
{
    struct tt_devconn *old = d->conn;
    d->bytes_in += tt_wsconn_bytes_in(old->ws);
    d->bytes_out += tt_wsconn_bytes_out(old->ws);
    old->dev = NULL;
    d->conn = NULL;
    TT_LOG(TT_LOG_INFO, "device taken over device=%s label=%s peer=%s", TT_LOG_V(d->name), d->label,
           peer(old));
    tt_wsconn_close(old->ws, TT_GOAWAY_TAKEOVER, tt_wsconn_close_code(TT_GOAWAY_TAKEOVER), 0,
                    "another connection took over");
}

static void welcome(struct tt_devconn *dc);
static void fail_registration(struct tt_devconn *dc, const char *why);
/* Queues dc's WELCOME until a registry sync that starts after now has ended (starting one if
 * none is running). Returns 1 (queued), 0 (the registry needs no sync: send it now) or
 * TETHER_ERR_IO. */
static int wait_sync(struct tt_relay *r, struct tt_devconn *dc);

/* ---- registration: a short pipeline of steps
 *
 * on_hello -> check -> lookup (registry, async) -> auth -> claim -> ports -> save (registry,
 * async) -> saved -> sync (group commit, async) -> welcome.
 * Each step is one function; an asynchronous step's continuation is its callback, which may run
 * before the call returns (SQLite completes at once). Many registrations are under way at once,
 * each in its own job. The job is the registration's state (the HELLO copied, the registry's
 * answers); the connection owns it (dc->job) until it closes.
 *
 * Cancellation rule: a connection that closes clears job->dc (on_ws_close); every continuation
 * first checks it (job_alive) and, when it is NULL, frees the job and does nothing else. What
 * the registration already did is the close path's to undo, as for a registered device: once
 * the device is claimed (d->conn == dc) the close marks it offline with a write queued behind
 * the registration's own, so the last write wins in order; an issued key is withdrawn the same
 * way. After the claim, a device taken from the connection (a newer HELLO for the name, the
 * operator's delete, a cluster eviction) shows as dc->dev == NULL: the job ends without touching
 * it (job_bound). */
struct tt_regjob {
    struct tt_devconn *dc; /* NULL once the connection closed */
    struct tt_relay *r;
    struct tt_hello m; /* the HELLO, its strings pointing into strs */
    uint8_t strs[TT_MAX_NAME + TT_MAX_TOKEN + TT_MAX_KEY + TT_MAX_SERVICES * TT_MAX_NAME];
    char name[TT_MAX_NAME + 1];
    struct tt_reg_lookup q; /* what the registry said */
    bool fresh;             /* the device was made by this registration */
    int tries;              /* cluster: port claims retried after a conflict */
    int64_t now;
};

static void step_lookup(struct tt_regjob *job);
static void step_auth(struct tt_regjob *job);
static void step_claim(struct tt_regjob *job);
static void step_save(struct tt_regjob *job);
static void step_sync(struct tt_regjob *job);

/* Copies str into the job's strings. Returns false when it does not fit its cap. */
static bool job_str(struct tt_regjob *job, size_t *used, struct tt_str *out,
                    const struct tt_str *in, size_t cap)
{
    if (in->len > cap || *used + in->len > sizeof(job->strs))
        return false;
    if (in->len)
        memcpy(job->strs + *used, in->p, in->len);
    *out = (struct tt_str){job->strs + *used, in->len};
    *used += in->len;
    return true;
}

/* A job for dc's HELLO m (name checked). NULL when out of memory or a field is past its cap. */
static struct tt_regjob *job_new(struct tt_devconn *dc, const struct tt_hello *m, const char *name)
{
    struct tt_regjob *job = calloc(1, sizeof(*job));
    if (!job)
        return NULL;
    size_t used = 0;
    bool ok = job_str(job, &used, &job->m.name, &m->name, TT_MAX_NAME) &&
              job_str(job, &used, &job->m.token, &m->token, TT_MAX_TOKEN) &&
              job_str(job, &used, &job->m.key, &m->key, TT_MAX_KEY);
    job->m.version = m->version;
    job->m.max_streams = m->max_streams;
    job->m.window = m->window;
    job->m.nservices = m->nservices;
    for (int i = 0; ok && i < m->nservices; i++) {
        job->m.services[i].kind = m->services[i].kind;
        ok = job_str(job, &used, &job->m.services[i].name, &m->services[i].name, TT_MAX_NAME);
    }
    if (!ok) {
        OPENSSL_cleanse(job->strs, sizeof(job->strs));
        free(job);
        return NULL;
    }
    job->dc = dc;
    job->r = dc->relay;
    snprintf(job->name, sizeof(job->name), "%s", name);
    dc->job = job;
    return job;
}

/* The job is over: its connection lets go of it; the token and key it copied are wiped. */
static void job_end(struct tt_regjob *job)
{
    if (job->dc)
        job->dc->job = NULL;
    OPENSSL_cleanse(job, sizeof(*job));
    free(job);
}

/* A continuation's first check: false (job ended) when the connection closed meanwhile, or was
 * refused because the relay is stopping. */
static bool job_alive(struct tt_regjob *job)
{
    struct tt_devconn *dc = job->dc;
    if (dc && dc->ws && !job->r->stopping)
        return true;
    if (dc && dc->ws)
        refuse(dc, tt_wsconn_session(dc->ws), TT_REFUSE_INTERNAL, "relay shutting down");
    job_end(job);
    return false;
}

/* After the claim: false (job ended) when the connection closed, or the device was taken from
 * it (a newer connection, the operator, another node, shutdown): no WELCOME then, and the key
 * it was issued is withdrawn. */
static bool job_bound(struct tt_regjob *job)
{
    struct tt_devconn *dc = job->dc;
    if (!dc) {
        job_end(job);
        return false;
    }
    if (dc->dev && dc->dev->conn == dc && !job->r->stopping)
        return true;
    admitted(dc);
    drop_issued_key(dc);
    if (dc->dev && dc->dev->conn == dc) { /* stopping: its connection is closed with the rest */
        dc->dev->conn = NULL;
        dc->dev = NULL;
    }
    job_end(job);
    return false;
}

/* Refuses the job's connection and ends the job. */
static void job_refuse(struct tt_regjob *job, uint16_t code, const char *why)
{
    struct tt_devconn *dc = job->dc;
    refuse(dc, tt_wsconn_session(dc->ws), code, why);
    job_end(job);
}

/* The registry the lookup's view falls back to: a synchronous backend's (SQLite), none for one
 * with asynchronous forms (Redis: no round trip on the loop). */
static struct tt_registry *sync_reg(struct tt_relay *r)
{
    return r->reg->aops ? NULL : r->reg;
}

/* A shared registry (cluster mode) that did not answer the lookup: Redis cannot be reached. */
static bool unreachable(const struct tt_regjob *job)
{
    return job->r->mode->shared && job->q.get_rc == TETHER_ERR_IO;
}

static int on_hello(struct tt_session *s, const struct tt_hello *m, void *ud)
{
    struct tt_devconn *dc = ud;
    struct tt_relay *r = dc->relay;
    char name[TT_MAX_NAME + 1];
    const char *bad = check_hello(m, name);
    if (bad) {
        TT_LOG(TT_LOG_INFO, "device refused peer=%s reason=\"%s\"", peer(dc), bad);
        return refuse(dc, s, TT_REFUSE_INVALID, bad);
    }
    if (r->stopping)
        return refuse(dc, s, TT_REFUSE_INTERNAL, "relay shutting down");
    struct tt_regjob *job = job_new(dc, m, name);
    if (!job)
        return refuse(dc, s, TT_REFUSE_INTERNAL, "out of memory");
    step_lookup(job);
    return 0;
}

static void on_looked_up(struct tt_reg_lookup *q, void *ud)
{
    struct tt_regjob *job = ud;
    (void)q;
    if (job_alive(job))
        step_auth(job);
}

/* Everything the registry knows that the registration needs, in one round trip: the name's
 * record and device key, the fleet's counts, and whether a fresh label is free. */
static void step_lookup(struct tt_regjob *job)
{
    struct tt_reg_lookup *q = &job->q;
    snprintf(q->name, sizeof(q->name), "%s", job->name);
    if (tt_random_label(q->label, TT_DEVICE_LABEL_LEN) != 0)
        q->label[0] = '\0';
    int rc = tt_registry_lookup(job->r->reg, q, on_looked_up, job);
    if (rc) { /* Redis down or too busy: as if it had not answered */
        q->get_rc = q->key_rc = q->counts_rc = q->label_rc = TETHER_ERR_IO;
        on_looked_up(q, job);
    }
}

/* Who may hold this name (devauth.h): its own token, its device key, or the fleet token for a
 * name that has neither yet (within the fleet's caps), decided on the lookup's answers.
 * Refusals are logged there. */
static void step_auth(struct tt_regjob *job)
{
    struct tt_devconn *dc = job->dc;
    struct tt_relay *r = job->r;
    struct tt_reg_view view;
    struct tt_devauth_verdict v;
    tt_devauth_hello(&r->auth, tt_registry_view(&view, &job->q, sync_reg(r)), &r->tokens, job->name,
                     &job->m, tt_session_version(tt_wsconn_session(dc->ws)), peer(dc),
                     (int64_t)uv_now(r->loop), &v);
    /* the token and the key are not needed any more */
    OPENSSL_cleanse((void *)(uintptr_t)job->m.token.p, job->m.token.len);
    OPENSSL_cleanse((void *)(uintptr_t)job->m.key.p, job->m.key.len);
    job->m.token.len = job->m.key.len = 0;
    if (v.refuse) {
        if (v.refuse == TT_REFUSE_INTERNAL && unreachable(job)) {
            job_refuse(job, TT_REFUSE_INTERNAL, "relay registry unreachable");
            return;
        }
        {
            job_refuse(job, v.refuse, v.reason);
            return;
        }
    }
    dc->set_key = v.set_key;
    dc->key_issued = v.issued;
    memcpy(dc->key_hash, v.key_hash, sizeof(dc->key_hash));
    memcpy(dc->key, v.key, sizeof(dc->key));
    snprintf(dc->key_name, sizeof(dc->key_name), "%s", job->name);
    OPENSSL_cleanse(v.key, sizeof(v.key));
    step_claim(job);
}

/* The device: this node's (taking it over from its current connection) or a new one with its
 * remembered label and ports; bound to the connection from here on. */
static void step_claim(struct tt_regjob *job)
{
    struct tt_devconn *dc = job->dc;
    struct tt_relay *r = job->r;
    struct tt_reg_view view;
    int64_t now = job->now = tt_relay_now_ms();
    struct tt_device *d = tt_strmap_get(&r->by_name, job->name);
    if (d && expired(d, now)) {
        expire_grace(d);
        d = NULL;
    }
    bool held = false;
    job->fresh = !d;
    if (!d && !(d = device_create(r, tt_registry_view(&view, &job->q, sync_reg(r)), job->name,
                                  job->q.label, &held))) {
        if (unreachable(job)) {
            TT_LOG(TT_LOG_WARN, "device refused device=%s peer=%s reason=\"registry unreachable\"",
                   TT_LOG_V(job->name), peer(dc));
            {
                job_refuse(job, TT_REFUSE_INTERNAL, "relay registry unreachable");
                return;
            }
        }
        {
            job_refuse(job, TT_REFUSE_CAPACITY, "no label available");
            return;
        }
    }
    /* a takeover: of a session of this node, or (cluster mode) of another node's, which
     * closes it silently at its next beat; the "takeover" webhook goes from here, once */
    if (d->conn || held)
        tt_webhook_emit(r->webhooks, "takeover", d->name, d->label, now);
    if (d->conn)
        takeover(d);
    d->conn = dc;
    dc->dev = d;
    step_save(job);
}

/* The claim failed: no TCP port (rc) or the registry write (saved). The device goes back to
 * what it was without this connection, which is refused. */
static void claim_failed(struct tt_regjob *job, int rc, int saved)
{
    struct tt_devconn *dc = job->dc;
    struct tt_device *d = dc->dev;
    struct tt_relay *r = job->r;
    int64_t now = job->now;
    d->conn = NULL;
    dc->dev = NULL;
    if (rc) {
        TT_LOG(TT_LOG_WARN, "device refused device=%s peer=%s reason=\"no TCP port left\"",
               TT_LOG_V(job->name), peer(dc));
        if (r->mode->shared) {
            if (!job->fresh && !d->offline_since) {
                d->offline_since = now;
                save(d);
            }
            r->mode->session_ended(d);
        } else if (job->fresh) {
            expire(d);
        } else if (!d->offline_since) {
            set_offline(d, now);
            save(d);
        }
        {
            job_refuse(job, TT_REFUSE_CAPACITY,
                       rc == TETHER_ERR_CAPACITY ? "no TCP port left" : "out of memory");
            return;
        }
    }
    (void)saved;
    TT_LOG(TT_LOG_WARN, "device refused device=%s peer=%s reason=\"registry failure\"",
           TT_LOG_V(job->name), peer(dc));
    if (r->mode->shared)
        r->mode->session_ended(d); /* the shared record is untouched */
    else if (job->fresh)
        expire(d);
    else
        set_offline(d, now);
    job_refuse(job, TT_REFUSE_INTERNAL, "relay registry failure");
}

/* The cluster's ports learnt again (a port claimed elsewhere a moment ago): claim again. */
static void on_ports_learnt(void *ud)
{
    struct tt_regjob *job = ud;
    if (!job_bound(job))
        return;
    job->tries++;
    step_save(job);
}

static void on_saved(int rc, void *ud)
{
    struct tt_regjob *job = ud;
    if (!job_bound(job))
        return;
    if (rc)
        TT_LOG(TT_LOG_ERROR, "registry update failed device=%s err=%s", TT_LOG_V(job->name),
               tether_err_name(rc));
    /* cluster mode: another node claimed that port a moment ago; learn the cluster's ports
     * again and take another */
    if (rc == TETHER_ERR_INVAL && job->tries < 3 &&
        job->r->mode->ports_conflict(job->r, on_ports_learnt, job) == 0)
        return;
    if (rc) {
        claim_failed(job, 0, rc);
        return;
    }
    step_sync(job);
}

/* The services (listeners, ports), then the record, durable before it is acknowledged: a
 * WELCOME the device saw is never forgotten. The record (with the device key) is written now
 * and the WELCOME goes once the registry has synced it. */
static void step_save(struct tt_regjob *job)
{
    struct tt_devconn *dc = job->dc;
    struct tt_device *d = dc->dev;
    int rc = configure_services(d, &job->m);
    if (rc) {
        claim_failed(job, rc, 0);
        return;
    }
    d->offline_since = 0;
    d->last_seen = job->now;
    struct tt_reg_device rd;
    if (!record(d, dc, &rd)) {
        on_saved(0, job);
        return;
    }
    rc = tt_registry_put_async(job->r->reg, &rd, on_saved, job);
    if (rc)
        on_saved(rc, job);
}

/* Registered: the HELLO deadline no longer applies; the WELCOME waits for the registry's sync
 * (group commit, in the thread pool) when it needs one. The job ends here: the connection
 * carries the rest (dc->sync_waiting). */
static void step_sync(struct tt_regjob *job)
{
    struct tt_devconn *dc = job->dc;
    struct tt_relay *r = job->r;
    job_end(job);
    set_registered(dc);
    int waiting = wait_sync(r, dc);
    if (waiting > 0)
        return;
    if (waiting < 0) {
        fail_registration(dc, "relay registry failure");
        return;
    }
    welcome(dc);
}

/* Sends dc's WELCOME (its device's label and services) now that the registration is durable,
 * or refuses it when that cannot be encoded. dc may have been taken over meanwhile: then
 * nothing is sent. */
static void welcome(struct tt_devconn *dc)
{
    struct tt_device *d = dc->dev;
    admitted(dc);
    if (!d || d->conn != dc || !dc->ws) {
        drop_issued_key(dc);
        return;
    }
    struct tt_session *s = tt_wsconn_session(dc->ws);
    int64_t now = tt_relay_now_ms();
    struct tt_welcome w;
    memset(&w, 0, sizeof(w));
    w.label = (struct tt_str){(const uint8_t *)d->label, strlen(d->label)};
    w.nservices = d->nsvc;
    char addr[TT_MAX_SERVICES][TT_MAX_ADDR + 1];
    for (uint8_t i = 0; i < d->nsvc; i++) {
        const struct tt_device_svc *sv = &d->svc[i];
        w.services[i].kind = sv->kind;
        w.services[i].name = (struct tt_str){(const uint8_t *)sv->name, strlen(sv->name)};
        /* a private TCP service: port 0 and no address; a private HTTP one: its flag */
        if (sv->kind == TT_SERVICE_TCP)
            w.services[i].port = sv->is_private ? 0 : sv->portno;
        else
            w.services[i].port = sv->is_private ? TT_WELCOME_HTTP_PRIVATE : 0;
        if ((sv->kind == TT_SERVICE_TCP && sv->is_private) || svc_address(d, sv, addr[i]) != 0)
            addr[i][0] = '\0'; /* (svc_address cannot fail: checked when the services were set) */
        w.services[i].address = (struct tt_str){(const uint8_t *)addr[i], strlen(addr[i])};
    }
    if (dc->key_issued)
        w.key = (struct tt_str){(const uint8_t *)dc->key, strlen(dc->key)};
    uint8_t buf[4096];
    tt_ssize n = tt_session_accept(s, &w, buf, sizeof(buf));
    if (n < 0) {
        TT_LOG(TT_LOG_ERROR, "cannot accept device device=%s err=%s", TT_LOG_V(d->name),
               tether_err_name((int)n));
        fail_registration(dc, "relay failure");
        return;
    }
    send_frame(dc, buf, n);
    OPENSSL_cleanse(buf, (size_t)n); /* it may hold the key */
    if (dc->set_key) {
        struct tt_devauth *a = &dc->relay->auth;
        if (dc->key_issued)
            a->keys_issued++;
        else
            a->keys_adopted++;
        TT_LOG(TT_LOG_INFO, "device key %s device=%s", dc->key_issued ? "issued" : "adopted",
               d->name);
    }
    dc->key_issued = dc->set_key = false;
    OPENSSL_cleanse(dc->key, sizeof(dc->key));
    d->connected_since = now;
    d->connects++;
    snprintf(d->remote_addr, sizeof(d->remote_addr), "%s", peer(dc));
    TT_LOG(TT_LOG_INFO, "device connected device=%s label=%s peer=%s services=%u",
           TT_LOG_V(d->name), d->label, peer(dc), (unsigned)d->nsvc);
    dc->welcomed = true;
    tt_admission_registered(&dc->relay->drain, uv_now(dc->relay->loop));
    tt_webhook_emit(dc->relay->webhooks, "online", d->name, d->label, now);
}

/* A registration that was committed but cannot be acknowledged: the device is offline again
 * (its label and ports kept for the grace period) and dc is refused. */
static void fail_registration(struct tt_devconn *dc, const char *why)
{
    struct tt_device *d = dc->dev;
    drop_issued_key(dc);
    if (d && d->conn == dc) {
        d->conn = NULL;
        set_offline(d, tt_relay_now_ms());
        save(d);
        d->relay->mode->session_ended(d);
    }
    dc->dev = NULL;
    TT_LOG(TT_LOG_WARN, "device refused peer=%s reason=\"%s\"", peer(dc), TT_LOG_E(why));
    if (dc->ws)
        refuse(dc, tt_wsconn_session(dc->ws), TT_REFUSE_INTERNAL, why);
}

/* Takes dc off the queue of registrations waiting for a sync. */
static void sync_unqueue(struct tt_devconn *dc)
{
    struct tt_devconn **pp = &dc->relay->sync_q;
    while (*pp && *pp != dc)
        pp = &(*pp)->sync_next;
    if (*pp)
        *pp = dc->sync_next;
    dc->sync_next = NULL;
    dc->sync_waiting = false;
}

static void sync_start(struct tt_relay *r);

/* A sync of generation r->sync_gen ended with res (0 or a libuv error): the registrations it
 * covers are acknowledged (or refused if it failed), and the next sync starts if anything
 * waits for one. */
static void synced(struct tt_relay *r, int res)
{
    uint64_t done = r->sync_gen;
    struct tt_devconn *ready = NULL, **tail = &ready, **pp = &r->sync_q;
    r->sync_busy = false;
    if (res < 0)
        TT_LOG(TT_LOG_ERROR, "registry sync failed err=%s", uv_err_name(res));
    while (*pp) {
        struct tt_devconn *dc = *pp;
        if (dc->sync_need > done) {
            pp = &dc->sync_next;
            continue;
        }
        *pp = dc->sync_next; /* in arrival order onto ready */
        dc->sync_next = NULL;
        dc->sync_waiting = false;
        *tail = dc;
        tail = &dc->sync_next;
    }
    while (ready) {
        struct tt_devconn *dc = ready;
        ready = dc->sync_next; /* dc may be freed below */
        dc->sync_next = NULL;
        if (res < 0)
            fail_registration(dc, "relay registry failure");
        else
            welcome(dc);
    }
    if (r->sync_q || r->sync_again)
        sync_start(r);
}

static void on_synced(uv_fs_t *req)
{
    struct tt_relay *r = req->data;
    int res = (int)req->result;
    uv_fs_req_cleanup(req);
    synced(r, res);
}

/* Starts a sync of the registry in the thread pool (a new generation). */
static void sync_start(struct tt_relay *r)
{
    int fd = -1;
    r->sync_again = false;
    r->sync_gen++;
    r->sync_busy = true;
    r->sync_req.data = r;
    int rc = tt_registry_sync_fd(r->reg, &fd) ? UV_EIO : 0;
    if (rc == 0 && fd >= 0)
        rc = uv_fs_fdatasync(r->loop, &r->sync_req, fd, on_synced);
    if (rc != 0 || fd < 0)
        synced(r, rc);
}

/* Asks for a sync (the heartbeat's): now, or after the one running. */
static void sync_request(struct tt_relay *r)
{
    if (r->sync_busy)
        r->sync_again = true;
    else
        sync_start(r);
}

static int wait_sync(struct tt_relay *r, struct tt_devconn *dc)
{
    int fd;
    if (tt_registry_sync_fd(r->reg, &fd) != 0)
        return TETHER_ERR_IO;
    if (fd < 0)
        return 0;
    /* committed now, so only a sync that starts from now on covers it */
    dc->sync_need = r->sync_gen + 1;
    dc->sync_waiting = true;
    dc->sync_next = NULL;
    struct tt_devconn **pp = &r->sync_q;
    while (*pp)
        pp = &(*pp)->sync_next;
    *pp = dc;
    if (!r->sync_busy)
        sync_start(r);
    return 1;
}

static int on_goaway(struct tt_session *s, const struct tt_coded *m, void *ud)
{
    struct tt_devconn *dc = ud;
    (void)s;
    TT_LOG(TT_LOG_DEBUG, "device going away peer=%s code=%u", peer(dc), (unsigned)m->code);
    if (dc->ws)
        tt_wsconn_close(dc->ws, TT_GOAWAY_NORMAL, 1000, 0, "device going away");
    return 0;
}

static const struct tt_session_callbacks *callbacks(void)
{
    static struct tt_session_callbacks cb;
    static bool ready;
    if (!ready) {
        memset(&cb, 0, sizeof(cb));
        tt_pipe_session_callbacks(&cb);
        cb.on_hello = on_hello;
        cb.on_goaway = on_goaway;
        ready = true;
    }
    return &cb;
}

static void unlink_conn(struct tt_devconn *dc)
{
    struct tt_relay *r = dc->relay;
    set_registered(dc); /* no longer counted as waiting for its HELLO */
    admitted(dc);
    if (dc->prev)
        dc->prev->next = dc->next;
    else if (r->conns == dc)
        r->conns = dc->next;
    if (dc->next)
        dc->next->prev = dc->prev;
    dc->prev = dc->next = NULL;
}

static void on_ws_close(struct tt_wsconn *c, int err, const char *reason, void *ud)
{
    struct tt_devconn *dc = ud;
    struct tt_device *d = dc->dev;
    const char *why = reason && reason[0] ? reason : err ? tether_strerror(err) : "closed";
    if (dc->job) { /* a registration under way: it ends at its next step (device.c's rule) */
        dc->job->dc = NULL;
        dc->job = NULL;
    }
    if (dc->sync_waiting)
        sync_unqueue(dc);
    drop_issued_key(dc); /* closed before its WELCOME went out */
    if (d && d->conn == dc) {
        d->bytes_in += tt_wsconn_bytes_in(c);
        d->bytes_out += tt_wsconn_bytes_out(c);
        d->conn = NULL;
        d->last_seen = tt_relay_now_ms();
        set_offline(d, d->last_seen);
        save(d);
        TT_LOG(TT_LOG_INFO, "device disconnected device=%s label=%s peer=%s reason=\"%s\"",
               TT_LOG_V(d->name), d->label, peer(dc), TT_LOG_E(why));
        if (dc->welcomed) /* an "online" went out for this session */
            tt_webhook_emit(d->relay->webhooks, "offline", d->name, d->label, d->last_seen);
        /* cluster: the shared registry remembers it; any node answers for it */
        d->relay->mode->session_ended(d);
    } else {
        TT_LOG(TT_LOG_DEBUG, "device connection closed peer=%s reason=\"%s\"", peer(dc),
               TT_LOG_E(why));
    }
    unlink_conn(dc);
    free(dc);
}

/* Shed to make room for newer connections (limits.h): the socket closes now, no GOAWAY. */
static void shed(struct tt_limits_conn *c)
{
    struct tt_devconn *dc =
        (struct tt_devconn *)(void *)((char *)c - offsetof(struct tt_devconn, lim));
    set_registered(dc); /* closing: the HELLO deadline no longer applies */
    if (dc->ws)
        tt_wsconn_abort(dc->ws, TETHER_ERR_CAPACITY, "shed: too many unauthenticated connections");
}

void tt_device_accept(struct tt_relay *r, struct tt_conn *tcp, const uint8_t *pre, size_t prelen)
{
    static const struct tt_wsconn_callbacks wcb = {.on_close = on_ws_close};
    struct tt_wsconn_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.client = false;
    cfg.session.role = TT_ROLE_RELAY;
    cfg.session.window = TT_DEVICE_WINDOW;
    cfg.session.max_streams = r->cfg.max_streams;
    cfg.session_cb = callbacks();
    cfg.ping_interval_ms = TT_DEVICE_PING_MS;
    cfg.ping_timeout_ms = TT_DEVICE_TIMEOUT_MS;
    struct tt_devconn *dc = calloc(1, sizeof(*dc));
    if (!dc || r->stopping) {
        free(dc);
        tt_respond_drop(tcp);
        return;
    }
    dc->relay = r;
    dc->lim.shed = shed;
    /* The listener counted it until its head was complete; its descriptor was checked then. */
    if (tt_limits_admit(&r->limits, &dc->lim, &tcp->tcp, false) != 0) {
        free(dc);
        tt_respond_drop(tcp);
        return;
    }
    dc->started = tt_relay_now_ms();
    r->unregistered++;
    r->drain.registering++;
    dc->admitting = true;
    dc->next = r->conns;
    if (r->conns)
        r->conns->prev = dc;
    r->conns = dc;
    int rc = tt_wsconn_new(&dc->ws, r->loop, tcp, pre, prelen, &cfg, &wcb, dc);
    if (rc) {
        TT_LOG(TT_LOG_WARN, "cannot start device connection err=%s", tether_err_name(rc));
        unlink_conn(dc);
        free(dc);
        tt_respond_drop(tcp);
        return;
    }
    TT_LOG(TT_LOG_DEBUG, "device connection peer=%s", peer(dc));
}

static int sweep_one(const char *key, void *val, void *ud)
{
    struct tt_device *d = val;
    struct tt_relay *r = d->relay;
    int64_t now = *(int64_t *)ud;
    (void)key;
    if (expired(d, now))
        expire_grace(d);
    else if (!d->conn && d->offline_since + (int64_t)r->cfg.grace_ms < r->sweep_expiry_at)
        r->sweep_expiry_at = d->offline_since + (int64_t)r->cfg.grace_ms;
    return 0;
}

/* Expires the devices past their grace period: a walk over every device only when one may be
 * due (the earliest end of a grace period, kept by set_offline), when the clock went back, or
 * every TT_DEVICE_FULL_SWEEP_MS; otherwise the sweep costs nothing per device, which matters
 * with 100,000 of them online. */
static void sweep_devices(struct tt_relay *r, int64_t now)
{
    if (now < r->sweep_expiry_at && now >= r->sweep_full_at - TT_DEVICE_FULL_SWEEP_MS &&
        now < r->sweep_full_at)
        return;
    r->sweep_expiry_at = INT64_MAX;
    r->sweep_full_at = now + TT_DEVICE_FULL_SWEEP_MS;
    tt_strmap_foreach(&r->by_name, sweep_one, &now);
}

/* Closes the connections that did not register within TT_DEVICE_HELLO_MS. Nothing to do while
 * every connection is registered (the usual case: no walk over 100,000 of them every second).
 * r->conns is newest first: only its head can have reached the deadline since the last sweep
 * (the sweep runs at least every second), so the walk stops at connections old enough to have
 * been checked before, except on a full sweep. */
static void sweep_hello(struct tt_relay *r, int64_t now, bool full)
{
    if (r->unregistered == 0 && !full)
        return;
    for (struct tt_devconn *dc = r->conns; dc; dc = dc->next) {
        int64_t age = now - dc->started;
        if (!full && age > TT_DEVICE_HELLO_MS + TT_DEVICE_FULL_SWEEP_MS / 4)
            break;
        /* silent since its 101 (no HELLO: no job): it no longer holds a registration slot
         * (drain.h) */
        if (dc->admitting && !dc->registered && !dc->job && age >= TT_DRAIN_SILENT_MS)
            admitted(dc);
        if (!dc->registered && dc->ws && age >= TT_DEVICE_HELLO_MS) {
            set_registered(dc); /* close once */
            r->limits.timeouts[TT_LIMITS_TIMEOUT_HELLO]++;
            TT_LOG(TT_LOG_INFO, "device connection without registration closed peer=%s", peer(dc));
            tt_wsconn_close(dc->ws, TT_GOAWAY_PROTOCOL, 1008, TETHER_ERR_TIMEOUT,
                            "no registration in time");
        }
    }
}

/* The heartbeat written (tt_device_heartbeat). */
static void heartbeat_written(int rc, void *ud)
{
    struct tt_relay *r = ud;
    if (rc)
        TT_LOG(TT_LOG_ERROR, "registry heartbeat failed err=%s", tether_err_name(rc));
    else if (!r->stopping)
        sync_request(r);
}

/* Records the relay's heartbeat (in the background): after a crash, the devices that were
 * online count as offline since then. */
void tt_device_heartbeat(struct tt_relay *r, int64_t now)
{
    r->heartbeat_at = now;
    int rc = tt_registry_heartbeat_async(r->reg, now, heartbeat_written, r);
    if (rc)
        heartbeat_written(rc, r);
}

static void on_sweep(uv_timer_t *t)
{
    struct tt_relay *r = t->data;
    int64_t now = tt_relay_now_ms();
    bool full = now >= r->sweep_full_at || now < r->sweep_full_at - TT_DEVICE_FULL_SWEEP_MS;
    sweep_devices(r, now);
    tt_devauth_sweep(&r->auth, (int64_t)uv_now(r->loop));
    tt_access_tick(&r->access, now); /* grants' expiry and cluster reads, then revocations */
    /* the mode's (mode.h): a cluster node's beat writes its heartbeat every second */
    if (now - r->heartbeat_at >= TT_DEVICE_HEARTBEAT_MS || now < r->heartbeat_at)
        r->mode->heartbeat(r, now);
    sweep_hello(r, now, full);
}

struct load_ctx {
    struct tt_relay *r;
    int64_t now;
    unsigned loaded;
    int err;
    tt_tcpport_accept_cb accept; /* of the devices' TCP listeners */
};

/* Makes the runtime device of one remembered record: offline, its label routed to the 503
 * page, its TCP ports held (clients are closed at once) unless its grace period is over (the
 * sweep then forgets it). */
static int load_one(const struct tt_reg_device *rd, void *ud)
{
    struct load_ctx *lc = ud;
    struct tt_relay *r = lc->r;
    struct tt_device *d = calloc(1, sizeof(*d));
    if (!d) {
        lc->err = TETHER_ERR_NOMEM;
        return 1;
    }
    d->relay = r;
    snprintf(d->name, sizeof(d->name), "%s", rd->name);
    snprintf(d->label, sizeof(d->label), "%s", rd->label);
    set_offline(d, rd->offline_since ? rd->offline_since : lc->now);
    d->last_seen = rd->last_seen;
    d->svc = svcs_new(rd->nports);
    if (!d->svc) {
        free(d);
        lc->err = TETHER_ERR_NOMEM;
        return 1;
    }
    bool live = !expired(d, lc->now);
    for (uint8_t i = 0; i < rd->nports && i < TT_MAX_SERVICES; i++) {
        struct tt_device_svc *sv = &d->svc[d->nsvc];
        sv->kind = TT_SERVICE_TCP;
        snprintf(sv->name, sizeof(sv->name), "%s", rd->ports[i].service);
        sv->portno = rd->ports[i].port;
        if (!tt_access_public(&r->access, d->name, sv->name)) {
            /* the relay went private since: the port is not held (and the record re-saved) */
            TT_LOG(TT_LOG_INFO,
                   "tcp port released, the service is private device=%s service=%s port=%u",
                   TT_LOG_V(d->name), TT_LOG_V(sv->name), (unsigned)sv->portno);
            memset(sv, 0, sizeof(*sv));
            continue;
        }
        if (live && tt_tcpports_open_exact(&r->ports, sv->portno, lc->accept, d, &sv->port)) {
            TT_LOG(TT_LOG_WARN,
                   "remembered tcp port unavailable, the device will get another device=%s "
                   "service=%s port=%u",
                   TT_LOG_V(d->name), TT_LOG_V(sv->name), (unsigned)sv->portno);
            continue;
        }
        d->nsvc++;
    }
    if (tt_strmap_put(&r->by_name, d->name, d) != 0 ||
        tt_strmap_put(&r->by_label, d->label, d) != 0) {
        tt_strmap_del(&r->by_name, d->name);
        close_ports(d);
        device_free(d);
        lc->err = TETHER_ERR_NOMEM;
        return 1;
    }
    lc->loaded++;
    return 0;
}

/* Re-saves the devices that lost a port while loading (fewer ports than remembered: a port
 * another program holds now, or a service the relay keeps private now). */
static int resave_one(const char *key, void *val, void *ud)
{
    struct tt_device *d = val;
    struct tt_reg_device rd;
    (void)key;
    if (!expired(d, *(int64_t *)ud) && tt_registry_get(d->relay->reg, d->name, &rd) == 0 &&
        rd.nports != d->nsvc)
        save(d);
    return 0;
}

/* Restores the devices the registry remembers (see tt_device_start). */
int tt_device_load_registry(struct tt_relay *r, tt_tcpport_accept_cb accept, char err[TT_ERRLEN])
{
    struct load_ctx lc = {r, tt_relay_now_ms(), 0, 0, accept};
    int64_t prev = 0;
    int rc = tt_registry_heartbeat(r->reg, lc.now, &prev);
    if (!rc)
        rc = tt_registry_mark_offline(r->reg, prev);
    if (!rc)
        rc = tt_registry_foreach(r->reg, load_one, &lc);
    if (rc || lc.err) {
        snprintf(err, TT_ERRLEN, "cannot load the registry: %s",
                 tether_strerror(lc.err ? lc.err : rc));
        return -1;
    }
    r->heartbeat_at = lc.now;
    r->sweep_full_at = 0; /* the first sweep walks everything */
    tt_strmap_foreach(&r->by_name, resave_one, &lc.now);
    size_t before = tt_strmap_count(&r->by_name);
    tt_strmap_foreach(&r->by_name, sweep_one, &lc.now);
    TT_LOG(TT_LOG_INFO, "registry loaded devices=%u kept=%zu expired=%zu", lc.loaded,
           tt_strmap_count(&r->by_name), before - tt_strmap_count(&r->by_name));
    return 0;
}

int tt_device_evict(struct tt_relay *r, const char *name)
{
    struct tt_device *d = tt_strmap_get(&r->by_name, name);
    if (!d)
        return TETHER_ERR_NOT_FOUND;
    if (d->conn)
        takeover(d); /* its connection closes without writing the registry */
    tt_device_drop_local(d);
    return 0;
}

int tt_device_start(struct tt_relay *r, char err[TT_ERRLEN])
{
    /* cluster mode: the registry is the cluster's; only live devices are kept here */
    if (r->mode->start(r, err) != 0)
        return -1;
    uint64_t every = r->cfg.grace_ms / 4;
    if (every < 100)
        every = 100;
    if (every > 1000)
        every = 1000;
    int rc = uv_timer_init(r->loop, &r->sweep);
    if (rc) {
        snprintf(err, TT_ERRLEN, "cannot start timers: %s", uv_strerror(rc));
        return -1;
    }
    r->sweep.data = r;
    uv_timer_start(&r->sweep, on_sweep, every, every);
    uv_unref((uv_handle_t *)&r->sweep);
    return 0;
}

static int free_one(const char *key, void *val, void *ud)
{
    struct tt_device *d = val;
    (void)key;
    (void)ud;
    if (d->conn)
        d->conn->dev = NULL;
    close_ports(d);
    device_free(d);
    return 0;
}

void tt_device_shutdown(struct tt_relay *r)
{
    int64_t now = tt_relay_now_ms();
    /* the asynchronous registry closes first (registrations under way end, refused); the
     * writes below are synchronous, the loop about to stop */
    tt_registry_stop_async(r->reg);
    if (!uv_is_closing((uv_handle_t *)&r->sweep))
        uv_close((uv_handle_t *)&r->sweep, NULL);
    /* The devices are told to go away: offline from now on, in one write. */
    int rc = tt_registry_mark_offline(r->reg, now);
    if (rc)
        TT_LOG(TT_LOG_ERROR, "registry update at shutdown failed err=%s", tether_err_name(rc));
    int64_t prev;
    if ((rc = tt_registry_heartbeat(r->reg, now, &prev)) != 0)
        TT_LOG(TT_LOG_ERROR, "registry heartbeat failed err=%s", tether_err_name(rc));
    else
        sync_request(r);
    r->heartbeat_at = now;
    /* an "offline" for every session that had its "online", queued before the webhooks stop
     * (tt_relay_stop), which deliver them within their flush deadline (webhook.h) */
    for (struct tt_devconn *dc = r->conns; dc; dc = dc->next)
        if (dc->dev && dc->dev->conn == dc && dc->welcomed)
            tt_webhook_emit(r->webhooks, "offline", dc->dev->name, dc->dev->label, now);
    r->mode->stop(r);
    for (struct tt_devconn *dc = r->conns; dc; dc = dc->next)
        if (dc->ws)
            tt_wsconn_close(dc->ws, TT_GOAWAY_SHUTDOWN, tt_wsconn_close_code(TT_GOAWAY_SHUTDOWN), 0,
                            "relay shutting down");
    tt_strmap_foreach(&r->by_name, free_one, NULL);
    tt_strmap_reset(&r->by_name);
    tt_strmap_reset(&r->by_label);
}
