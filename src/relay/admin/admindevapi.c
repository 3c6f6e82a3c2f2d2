/* admindevapi.c - the device API of the admin listener: GET /api/devices (a page, adminquery.h),
 * GET /api/devices/NAME and DELETE /api/devices/NAME. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "tether_err.h"
#include "common/log.h"
#include "relay/admin/adminint.h"
#include "relay/core.h"
#include "relay/device/device.h"
#include "relay/admin/webhook.h"

static void devices_answer(struct tt_headconn *hc, struct tt_relay *r,
                           const struct tt_adminquery *q, struct page *pg, enum tt_admin_got got,
                           bool flag)
{
    (void)q;
    (void)flag;
    if (got == TT_ADMIN_GOT_BUSY) {
        tt_admin_answer_busy(hc, r, true);
        return;
    }
    json_t *arr = got == TT_ADMIN_GOT_OK ? json_array() : NULL;
    for (size_t i = 0; arr && i < pg->rs.n; i++) {
        if (json_array_append_new(arr, tt_admin_row_json(r, &pg->rs.v[i])) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    json_t *j = arr ? json_pack("{s:o, s:I, s:o}", "devices", arr, "total", (json_int_t)pg->total,
                                "next", pg->has_next ? json_string(pg->next) : json_null())
                    : NULL;
    tt_admin_answer_json(hc, "200 OK", NULL, j);
}

void tt_admin_api_devices(struct tt_headconn *hc, struct tt_relay *r)
{
    struct tt_adminquery q;
    if (!tt_admin_query_of(hc, &q, true))
        return;
    tt_admin_page_start(hc, r, &q, false, devices_answer);
}

static void device_answer(struct tt_headconn *hc, struct tt_relay *r, struct rows *rs,
                          enum tt_admin_got got)
{
    if (got == TT_ADMIN_GOT_BUSY)
        tt_admin_answer_busy(hc, r, true);
    else if (got != TT_ADMIN_GOT_OK)
        tt_admin_answer_error(hc, "500 Internal Server Error", NULL, "out of memory");
    else if (rs->n == 0)
        tt_admin_answer_error(hc, "404 Not Found", NULL, "no such device");
    else
        tt_admin_answer_json(hc, "200 OK", NULL, tt_admin_row_json(r, &rs->v[0]));
}

void tt_admin_api_device(struct tt_headconn *hc, struct tt_relay *r, const char *name)
{
    tt_admin_rows_start(hc, r, name, device_answer);
}

/* The device named name, unless unknown or past its grace period. */
static struct tt_device *find_device(struct tt_relay *r, const char *name)
{
    struct tt_device *d = tt_strmap_get(&r->by_name, name);
    return d && !tt_admin_gone(d, tt_relay_now_ms()) ? d : NULL;
}

/* Deletes name when this node has it (single relay; a cluster deletes through
 * tt_admin_delete_start). Returns 0 or TETHER_ERR_NOT_FOUND. */
static int delete_record(struct tt_relay *r, const char *name)
{
    struct tt_device *d = find_device(r, name);
    if (!d)
        return TETHER_ERR_NOT_FOUND;
    char label[TT_MAX_LABEL + 1];
    snprintf(label, sizeof(label), "%s", d->label);
    int drc = tt_device_delete(r, name);
    if (drc == 0)
        tt_webhook_emit(r->webhooks, "deleted", name, label, tt_relay_now_ms());
    return drc;
}

/* Deletes name's device key first (the name is then free for a new device, even when its record
 * expired long ago), then its record (delete_record). Returns 0 when either was there,
 * TETHER_ERR_NOT_FOUND when neither, or the registry's error (nothing deleted when the key's
 * deletion failed). */
int tt_admin_delete_device(struct tt_relay *r, const char *name)
{
    if (r->cluster)
        return TETHER_ERR_IO; /* the asynchronous connection is closed (shutdown) */
    int krc = tt_registry_key_del(r->reg, name);
    if (krc != 0 && krc != TETHER_ERR_NOT_FOUND)
        return krc;
    if (krc == 0)
        TT_LOG(TT_LOG_INFO, "device key deleted, the name is free device=%s", name);
    int rc = delete_record(r, name);
    return rc == TETHER_ERR_NOT_FOUND && krc == 0 ? 0 : rc;
}

/* ---- the operator's delete in a cluster, answered from Redis' reply */

/* A delete waiting for Redis: the held admin connection's job (tt_admin_hold), freed by the
 * reply (the asynchronous connection always calls back: a reply, or none within its timeout, or
 * its closing at shutdown). */
struct deljob {
    struct tt_headconn *hc; /* NULL: the client went; the reply still acts, then frees the job */
    struct tt_relay *r;
    tt_admin_deleted_cb cb;
    bool local; /* this node held the device when the delete was sent */
    char name[TT_MAX_NAME + 1];
};

static void deljob_drop(struct tt_headconn *hc, void *ud)
{
    struct deljob *j = ud;
    (void)hc;
    j->hc = NULL;
    if (j->r->cluster)
        j->r->cluster->deletes_cancelled++;
}

/* Redis answered (or did not): the device this node held is closed (as a local delete), the
 * "deleted" webhook goes, then the client (if still there) is answered. */
static void on_erased(const struct tt_reg_erased *e, void *ud)
{
    struct deljob *j = ud;
    struct tt_relay *r = j->r;
    struct tt_cluster *c = r->cluster;
    if (c && c->deletes > 0)
        c->deletes--;
    int rc = e->rc;
    if (rc == 0) {
        if (e->key)
            TT_LOG(TT_LOG_INFO, "device key deleted, the name is free device=%s",
                   TT_LOG_V(j->name));
        bool deleted = e->record;
        char label[TT_MAX_LABEL + 1];
        snprintf(label, sizeof(label), "%s", e->label);
        struct tt_device *d = j->local ? find_device(r, j->name) : NULL;
        if (d) {
            snprintf(label, sizeof(label), "%s", d->label);
            deleted = tt_device_delete(r, j->name) == 0 || deleted;
        } else if (e->record) {
            TT_LOG(TT_LOG_INFO, "device deleted device=%s (held elsewhere or offline)",
                   TT_LOG_V(j->name));
        }
        if (deleted)
            tt_webhook_emit(r->webhooks, "deleted", j->name, label, tt_relay_now_ms());
        rc = deleted || e->key ? 0 : TETHER_ERR_NOT_FOUND;
        if (c)
            c->deletes_done++;
    } else if (c) {
        c->deletes_failed++;
    }
    if (j->hc) {
        tt_admin_unhold(j->hc);
        j->cb(j->hc, r, j->name, rc);
    }
    free(j);
}

void tt_admin_delete_start(struct tt_headconn *hc, struct tt_relay *r, const char *name,
                           tt_admin_deleted_cb cb)
{
    struct tt_cluster *c = r->cluster;
    if (!c || !r->reg->aops) { /* single relay; or a cluster shutting down (IO) */
        cb(hc, r, name, tt_admin_delete_device(r, name));
        return;
    }
    if (c->deletes >= TT_ADMIN_DELETES_MAX) {
        c->deletes_refused++;
        cb(hc, r, name, TETHER_ERR_CAPACITY);
        return;
    }
    struct deljob *j = calloc(1, sizeof(*j));
    if (!j) {
        cb(hc, r, name, TETHER_ERR_NOMEM);
        return;
    }
    j->hc = hc;
    j->r = r;
    j->cb = cb;
    j->local = find_device(r, name) != NULL;
    snprintf(j->name, sizeof(j->name), "%s", name);
    /* a record offline since cutoff or earlier (and not held) is past its grace period: not
     * shown, not deleted (the expiry's) */
    int64_t cutoff = tt_relay_now_ms() - (int64_t)r->cfg.grace_ms;
    c->deletes++;
    if (c->deletes > c->deletes_peak)
        c->deletes_peak = c->deletes;
    tt_admin_hold(hc, deljob_drop, j);
    int rc = tt_registry_erase_async(r->reg, name, cutoff, j->local, on_erased, j);
    if (rc != 0) {
        c->deletes--;
        c->deletes_failed++;
        tt_admin_unhold(hc);
        free(j);
        cb(hc, r, name, rc == TETHER_ERR_NOMEM ? rc : TETHER_ERR_IO);
    }
}

static void api_deleted(struct tt_headconn *hc, struct tt_relay *r, const char *name, int rc)
{
    (void)r;
    if (rc == TETHER_ERR_CAPACITY) {
        char extra[48];
        snprintf(extra, sizeof(extra), "Retry-After: %d\r\n", TT_CLUSTER_WALK_RETRY_S);
        tt_admin_answer_error(hc, "503 Service Unavailable", extra,
                              "too many deletes waiting for the registry: retry later");
        return;
    }
    if (rc == TETHER_ERR_IO) {
        tt_admin_answer_error(hc, "503 Service Unavailable", NULL,
                              "the registry cannot be reached");
        return;
    }
    if (rc == TETHER_ERR_NOMEM) {
        tt_admin_answer_error(hc, "500 Internal Server Error", NULL, "out of memory");
        return;
    }
    if (rc != 0) {
        tt_admin_answer_error(hc, "404 Not Found", NULL, "no such device");
        return;
    }
    tt_admin_answer_json(hc, "200 OK", NULL, json_pack("{s:s}", "deleted", name));
}

void tt_admin_api_delete(struct tt_headconn *hc, struct tt_relay *r, const char *name)
{
    tt_admin_delete_start(hc, r, name, api_deleted);
}
