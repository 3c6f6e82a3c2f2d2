/* admindrain.c - the drain API of the admin listener (drain.h): POST, DELETE and GET /api/drain. */
#include <jansson.h>

#include "relay/admin/adminint.h"
#include "relay/cluster/drain.h"
#include "relay/core.h"
#include "relay/device/device.h"

/* POST /api/drain (202, idempotent), DELETE /api/drain (200: devices are taken again), GET
 * /api/drain (the state). */
void tt_admin_api_drain(struct tt_headconn *hc, struct tt_relay *r)
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
        tt_admin_answer_error(hc, "405 Method Not Allowed", "Allow: GET, HEAD, POST, DELETE\r\n",
                              "method not allowed");
        return;
    }
    if (rc < 0) {
        tt_admin_answer_error(hc, "500 Internal Server Error", NULL, "cannot start the drain");
        return;
    }
    const struct tt_drain *d = &r->drain;
    tt_admin_answer_json(hc, status, NULL,
                         json_pack("{s:b,s:I,s:I,s:I}", "draining", d->on ? 1 : 0, "devices",
                                   (json_int_t)tt_device_online_count(r), "moved",
                                   (json_int_t)d->moved, "rate", (json_int_t)r->cfg.drain_rate));
}

/* The HTTP proxying counters (httpstats.h). */
