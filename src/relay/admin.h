/* admin.h - the admin listener (--admin-listen). For now it serves GET /healthz ("ok"); the
 * device API, dashboard and metrics come with a later issue. */
#ifndef TT_ADMIN_H
#define TT_ADMIN_H

#include "headconn.h"

/* The headconn callback of the admin listener; ud is the struct tt_relay. Always answers. */
void tt_admin_on_head(struct tt_headconn *hc, void *ud);

#endif
