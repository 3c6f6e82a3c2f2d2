/* server.h - routing of requests on the --listen ports: by Host to a device's web service
 * (forward.h), to the device WebSocket endpoint (device.h), or to an HTML page (pages.h). */
#ifndef TT_SERVER_H
#define TT_SERVER_H

#include "common/wshs.h"
#include "relay/http/headconn.h"

/* The headconn callback of the --listen ports; ud is the struct tt_relay. Always disposes of
 * hc (taken over, answered or freed). */
void tt_server_on_head(struct tt_headconn *hc, void *ud);

/* Fills rq from the head of an upgrade request (hp after TT_HEADPARSE_HEAD) for
 * tt_wshs_check_request: the first Sec-WebSocket-Key and -Version values without trailing
 * blanks, and their counts. rq points into hp's buffer. Cannot fail. */
void tt_server_ws_request(const struct tt_headparse *hp, struct tt_wshs_request *rq);

#endif
