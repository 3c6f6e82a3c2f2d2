/* registry_async.c - the asynchronous forms of the registry (registry.h): the backend's own when
 * it has them (Redis), else the synchronous operation with the callback called at once
 * (SQLite); and the read-only view over a lookup that devauth.c decides a registration with. */
#include <stdio.h>
#include <string.h>
#include "tether_err.h"
#include "relay/store/registry.h"

/* The lookup through the synchronous operations. */
static void lookup_sync(struct tt_registry *r, struct tt_reg_lookup *q)
{
    q->get_rc = tt_registry_get(r, q->name, &q->dev);
    q->key_rc = tt_registry_key_get(r, q->name, q->key_hash);
    q->counts_rc = TETHER_ERR_AGAIN; /* not read: counting is a scan in SQLite (the view asks) */
    struct tt_reg_device rd;
    q->label_rc = q->label[0] ? tt_registry_find_label(r, q->label, &rd) : TETHER_ERR_NOT_FOUND;
}

int tt_registry_lookup(struct tt_registry *r, struct tt_reg_lookup *q, tt_registry_lookup_cb cb,
                       void *ud)
{
    if (r->aops && r->aops->lookup)
        return r->aops->lookup(r, q, cb, ud);
    lookup_sync(r, q);
    cb(q, ud);
    return 0;
}

int tt_registry_put_async(struct tt_registry *r, const struct tt_reg_device *d,
                          tt_registry_done_cb cb, void *ud)
{
    if (r->aops && r->aops->put)
        return r->aops->put(r, d, cb, ud);
    cb(tt_registry_put(r, d), ud);
    return 0;
}

int tt_registry_del_async(struct tt_registry *r, const char *name, tt_registry_done_cb cb, void *ud)
{
    if (r->aops && r->aops->del)
        return r->aops->del(r, name, cb, ud);
    cb(tt_registry_del(r, name), ud);
    return 0;
}

int tt_registry_key_del_if_async(struct tt_registry *r, const char *name, const uint8_t hash[32],
                                 tt_registry_done_cb cb, void *ud)
{
    if (r->aops && r->aops->key_del_if)
        return r->aops->key_del_if(r, name, hash, cb, ud);
    uint8_t cur[32];
    int rc = tt_registry_key_get(r, name, cur);
    if (rc == 0 && memcmp(cur, hash, sizeof(cur)) != 0)
        rc = TETHER_ERR_NOT_FOUND; /* another key's now */
    if (rc == 0)
        rc = tt_registry_key_del(r, name);
    cb(rc, ud);
    return 0;
}

int tt_registry_heartbeat_async(struct tt_registry *r, int64_t now_ms, tt_registry_done_cb cb,
                                void *ud)
{
    if (r->aops && r->aops->heartbeat)
        return r->aops->heartbeat(r, now_ms, cb, ud);
    int64_t prev;
    cb(tt_registry_heartbeat(r, now_ms, &prev), ud);
    return 0;
}

int tt_registry_erase_async(struct tt_registry *r, const char *name, int64_t cutoff, bool force,
                            tt_registry_erased_cb cb, void *ud)
{
    if (r->aops && r->aops->erase)
        return r->aops->erase(r, name, cutoff, force, cb, ud);
    struct tt_reg_erased e;
    memset(&e, 0, sizeof(e));
    int rc = tt_registry_key_del(r, name);
    if (rc != 0 && rc != TETHER_ERR_NOT_FOUND) {
        e.rc = rc; /* nothing deleted */
        cb(&e, ud);
        return 0;
    }
    e.key = rc == 0;
    struct tt_reg_device rd;
    rc = tt_registry_get(r, name, &rd);
    bool shown = rc == 0 && rd.label[0] &&
                 (rd.node[0] || rd.offline_since <= 0 || rd.offline_since > cutoff);
    if (rc == 0 && (force || shown)) {
        rc = tt_registry_del(r, name);
        e.record = rc == 0;
        if (rc == 0)
            snprintf(e.label, sizeof(e.label), "%s", rd.label);
    }
    e.rc = rc == TETHER_ERR_NOT_FOUND ? 0 : rc;
    cb(&e, ud);
    return 0;
}

int tt_registry_key_counts_nowait(struct tt_registry *r, uint64_t *names, uint64_t *ports)
{
    if (r->aops && r->aops->counts_nowait)
        return r->aops->counts_nowait(r, names, ports);
    return tt_registry_key_counts(r, names, ports);
}

bool tt_registry_busy(struct tt_registry *r, size_t n)
{
    return r && r->aops && r->aops->busy && r->aops->busy(r, n);
}

int tt_registry_async_metrics(struct tt_registry *r, char *out, size_t outlen, size_t *len)
{
    if (r && r->aops && r->aops->metrics)
        return r->aops->metrics(r, out, outlen, len);
    return 0;
}

void tt_registry_stop_async(struct tt_registry *r)
{
    if (r && r->aops && r->aops->stop)
        r->aops->stop(r);
}

/* ---- the view */

static const struct tt_reg_lookup *vq(struct tt_registry *r)
{
    return ((struct tt_reg_view *)r)->q;
}

static int v_get(struct tt_registry *r, const char *name, struct tt_reg_device *out)
{
    const struct tt_reg_lookup *q = vq(r);
    if (strcmp(name, q->name) != 0)
        return TETHER_ERR_NOT_FOUND;
    if (q->get_rc == 0)
        *out = q->dev;
    return q->get_rc;
}

static int v_find_label(struct tt_registry *r, const char *label, struct tt_reg_device *out)
{
    const struct tt_reg_lookup *q = vq(r);
    if (q->label_rc != 0 && q->label_rc != TETHER_ERR_NOT_FOUND)
        return q->label_rc; /* the lookup failed: no label can be known free */
    if (q->get_rc == 0 && strcmp(label, q->dev.label) == 0) {
        *out = q->dev;
        return 0;
    }
    if (q->label[0] && strcmp(label, q->label) == 0) {
        if (q->label_rc == 0)
            memset(out, 0, sizeof(*out)); /* held by a name the lookup did not read */
        return q->label_rc;
    }
    struct tt_registry *fb = ((struct tt_reg_view *)r)->fallback;
    if (fb)
        return tt_registry_find_label(fb, label, out);
    return TETHER_ERR_NOT_FOUND; /* a label the lookup did not check: put() has the last word */
}

static int v_key_get(struct tt_registry *r, const char *name, uint8_t hash[32])
{
    const struct tt_reg_lookup *q = vq(r);
    if (strcmp(name, q->name) != 0)
        return TETHER_ERR_NOT_FOUND;
    if (q->key_rc == 0)
        memcpy(hash, q->key_hash, 32);
    return q->key_rc;
}

static int v_key_counts(struct tt_registry *r, uint64_t *names, uint64_t *ports)
{
    const struct tt_reg_lookup *q = vq(r);
    struct tt_registry *fb = ((struct tt_reg_view *)r)->fallback;
    if (q->counts_rc == TETHER_ERR_AGAIN && fb)
        return tt_registry_key_counts(fb, names, ports);
    if (q->counts_rc == 0) {
        *names = q->names;
        *ports = q->ports;
    }
    return q->counts_rc;
}

static int v_put(struct tt_registry *r, const struct tt_reg_device *d)
{
    (void)r;
    (void)d;
    return TETHER_ERR_IO;
}

static int v_name(struct tt_registry *r, const char *name)
{
    (void)r;
    (void)name;
    return TETHER_ERR_IO;
}

static int v_foreach(struct tt_registry *r, int (*cb)(const struct tt_reg_device *d, void *ud),
                     void *ud)
{
    (void)r;
    (void)cb;
    (void)ud;
    return TETHER_ERR_IO;
}

static int v_since(struct tt_registry *r, int64_t ms)
{
    (void)r;
    (void)ms;
    return TETHER_ERR_IO;
}

static int v_heartbeat(struct tt_registry *r, int64_t now_ms, int64_t *prev_ms)
{
    (void)r;
    (void)now_ms;
    (void)prev_ms;
    return TETHER_ERR_IO;
}

static int v_cred_get(struct tt_registry *r, const char *name, uint8_t hash[32])
{
    (void)r;
    (void)name;
    (void)hash;
    return TETHER_ERR_IO;
}

static int v_cred_put(struct tt_registry *r, const char *name, const uint8_t hash[32])
{
    (void)r;
    (void)name;
    (void)hash;
    return TETHER_ERR_IO;
}

static int v_sync_fd(struct tt_registry *r, int *fd)
{
    (void)r;
    *fd = -1;
    return TETHER_ERR_IO;
}

static void v_free(struct tt_registry *r)
{
    (void)r; /* the caller's */
}

static const struct tt_registry_ops view_ops = {
    .get = v_get,
    .find_label = v_find_label,
    .put = v_put,
    .del = v_name,
    .foreach = v_foreach,
    .mark_offline = v_since,
    .heartbeat = v_heartbeat,
    .cred_get = v_cred_get,
    .cred_put = v_cred_put,
    .key_get = v_key_get,
    .key_del = v_name,
    .key_counts = v_key_counts,
    .sync_fd = v_sync_fd,
    .free = v_free,
};

struct tt_registry *tt_registry_view(struct tt_reg_view *v, const struct tt_reg_lookup *q,
                                     struct tt_registry *fallback)
{
    memset(v, 0, sizeof(*v));
    v->base.ops = &view_ops;
    v->q = q;
    v->fallback = fallback;
    return &v->base;
}
