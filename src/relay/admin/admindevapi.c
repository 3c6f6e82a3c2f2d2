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
    bool known = rc == 0 && n == 1 && tt_admin_record_known(r, &cd[0], tt_relay_now_ms());
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
int tt_admin_delete_device(struct tt_relay *r, const char *name)
{
    int krc = tt_registry_key_del(r->reg, name);
    if (krc != 0 && krc != TETHER_ERR_NOT_FOUND)
        return krc;
    if (krc == 0)
        TT_LOG(TT_LOG_INFO, "device key deleted, the name is free device=%s", name);
    int rc = delete_record(r, name);
    return rc == TETHER_ERR_NOT_FOUND && krc == 0 ? 0 : rc;
}

void tt_admin_api_delete(struct tt_headconn *hc, struct tt_relay *r, const char *name)
{
    int rc = tt_admin_delete_device(r, name);
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
