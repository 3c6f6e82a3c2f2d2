/* wsrequest.c - the fields of a WebSocket upgrade request (RFC 6455) read out of a parsed head
 * for wshs.h's checks (wsrequest.h). Pure: it only points into the head's buffer. */
#include <string.h>
#include "relay/http/wsrequest.h"

void tt_wsrequest_fill(const struct tt_headparse *hp, struct tt_wshs_request *rq)
{
    memset(rq, 0, sizeof(*rq));
    rq->get = hp->p.method == HTTP_GET;
    rq->http11 = hp->p.http_major > 1 || (hp->p.http_major == 1 && hp->p.http_minor >= 1);
    /* http-parser's upgrade flag: an Upgrade header and "upgrade" in some Connection header */
    rq->connection_upgrade = tt_headparse_upgrade(hp);
    rq->nkeys = tt_headparse_find_trimmed(hp, "sec-websocket-key", &rq->key, &rq->keylen);
    rq->nversions =
        tt_headparse_find_trimmed(hp, "sec-websocket-version", &rq->version, &rq->versionlen);
}
