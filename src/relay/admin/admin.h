/* admin.h - the admin listener (--admin-listen): the dashboard (GET /, a page of the fleet at a
 * time: adminpage.h), the device API (/api/devices, pages and filters: adminquery.h), the grants
 * API, Prometheus metrics (/metrics) and the health check (/healthz), behind --admin-token when
 * it is set (a Bearer token, or the dashboard's session: adminsession.h).
 * docs/operators-guide.md, "Admin API". In cluster mode the device API and the dashboard show
 * every device of the shared registry (cluster.h), the metrics this node's own. */
#ifndef TT_ADMIN_H
#define TT_ADMIN_H

#include "relay/http/headconn.h"

/* With --admin-token, a browser signs in at GET / (a form, POST / with the field token) and
 * carries a session cookie from then on (adminsession.h); POST /signout ends it. */

/* The headconn callback of the admin listener; ud is the struct tt_relay. Always answers. */
void tt_admin_on_head(struct tt_headconn *hc, void *ud);

struct tt_device;

/* The services of d as compact JSON (malloc'd; NULL when out of memory), in a form any node
 * turns into what GET /api/devices shows: [{"name","kind":"http","sub"} or {"name",
 * "kind":"tcp","port"}]. Cluster mode: the beat publishes it for the other nodes' admin APIs. */
char *tt_admin_services_dump(const struct tt_device *d);

struct tt_relay;

/* Frees the admin listener's state (sign-in sessions); at relay shutdown. */
void tt_admin_free(struct tt_relay *r);

#endif
