/* admin.h - the admin listener (--admin-listen): the dashboard (GET /), the device API
 * (/api/devices), Prometheus metrics (/metrics) and the health check (/healthz), behind
 * --admin-token when it is set. docs/operators-guide.md, "Admin API". */
#ifndef TT_ADMIN_H
#define TT_ADMIN_H

#include "headconn.h"

/* The headconn callback of the admin listener; ud is the struct tt_relay. Always answers. */
void tt_admin_on_head(struct tt_headconn *hc, void *ud);

#endif
