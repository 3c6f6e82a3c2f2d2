/* wsrequest.h - reads a WebSocket upgrade request out of a parsed head (headparse.h) into the
 * form common/wshs.h checks. Shared by the device endpoint (server.c) and tether connect's
 * endpoint (visitor.c); it knows nothing of the relay. */
#ifndef TT_WSREQUEST_H
#define TT_WSREQUEST_H

#include "common/wshs.h"
#include "relay/http/headparse.h"

/* Fills rq from the head of an upgrade request (hp after TT_HEADPARSE_HEAD) for
 * tt_wshs_check_request: the first Sec-WebSocket-Key and -Version values without trailing
 * blanks, and their counts. rq points into hp's buffer. Cannot fail. */
void tt_wsrequest_fill(const struct tt_headparse *hp, struct tt_wshs_request *rq);

#endif
