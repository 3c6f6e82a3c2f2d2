/* server.h - routing of requests on the --listen ports: by Host to a device's web service
 * (forward.h), to the device WebSocket endpoint (device.h), or to an HTML page (pages.h). */
#ifndef TT_SERVER_H
#define TT_SERVER_H

#include "relay/http/headconn.h"

/* The headconn callback of the --listen ports; ud is the struct tt_relay. Always disposes of
 * hc (taken over, answered or freed). */
void tt_server_on_head(struct tt_headconn *hc, void *ud);

#endif
