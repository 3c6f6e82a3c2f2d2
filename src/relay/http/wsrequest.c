/* wsrequest.c - the fields of a WebSocket upgrade request (RFC 6455) read out of a parsed head
 * for wshs.h's checks (wsrequest.h). Pure: it only points into the head's buffer. */
#include <string.h>
#include "relay/http/wsrequest.h"

/* The first value of header name, without trailing blanks (http-parser keeps them). Returns
 * how many such headers there are. */
static unsigned find_trimmed(const struct tt_headparse *hp, const char *name, const uint8_t **v,
                             size_t *n)
{
    *v = NULL;
    *n = 0;
    unsigned count = tt_headparse_find(hp, name, v, n);
    while (*n > 0 && ((*v)[*n - 1] == ' ' || (*v)[*n - 1] == '\t'))
        (*n)--;
    return count;
}

void tt_wsrequest_fill(const struct tt_headparse *hp, struct tt_wshs_request *rq)
{
    memset(rq, 0, sizeof(*rq));
    rq->get = hp->p.method == HTTP_GET;
    rq->http11 = hp->p.http_major > 1 || (hp->p.http_major == 1 && hp->p.http_minor >= 1);
    /* http-parser's upgrade flag: an Upgrade header and "upgrade" in some Connection header */
    rq->connection_upgrade = tt_headparse_upgrade(hp);
    rq->nkeys = find_trimmed(hp, "sec-websocket-key", &rq->key, &rq->keylen);
    rq->nversions = find_trimmed(hp, "sec-websocket-version", &rq->version, &rq->versionlen);
}
