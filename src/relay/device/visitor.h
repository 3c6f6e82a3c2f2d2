/* visitor.h - tether connect on the relay (docs/PROTOCOL.md, "The visitor's side"): a WebSocket
 * upgrade on the main listener that offers the tether-connect.v1 subprotocol and names its
 * target in Tether-Device and Tether-Service. Everything is decided before the 101: the
 * credentials (Basic user and secret, checked off the loop while the connection stays
 * unauthenticated for limits.h; or a Bearer grant token; none for a public service), the grant
 * (access.h), the device and its service, the device's stream shares (limits.h, under the
 * visitor's address); each refusal is an HTTP status with a one-line text body and an audit
 * line. In a cluster the node that does not hold the device passes the whole upgrade to the node
 * that does, over the cluster hop (peerlink.h), vouching for the visitor's address.
 *
 * Accepted, the visitor's connection carries one stream (core's visitor role), joined by a
 * bridge to a new stream on the device's session, both ways: bytes from one side are passed to
 * the other within its window and credited back to the sender only once the other side's
 * connection took them (its output queue below its mark), so each direction holds at most the
 * sender's window (256 KiB, grown to at most 4 MiB more while the other side keeps up) in the
 * bridge's queue; FIN, RESET and the loss of either connection are passed on. The connection is
 * tracked (tt_access_conn): revoking its user or grant closes both sides at once (GOAWAY
 * REVOKED to the visitor, RESET to the device). When it ends, one audit line.
 *
 * One set per relay (r->visitors), on the loop's thread. */
#ifndef TT_VISITOR_H
#define TT_VISITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/frame.h"
#include "relay/http/headconn.h"
#include "relay/http/headparse.h"
#include "relay/core.h"
#include "relay/access/users.h"

/* The relay's heartbeat on visitor connections (as on device connections, device.h). */
#define TT_VISITOR_PING_MS 15000
#define TT_VISITOR_TIMEOUT_MS 90000
/* Window growth of one bridge direction whose other side keeps up, and of all of them. */
#define TT_VISITOR_EXTRA_MAX (4u * 1024u * 1024u)
#define TT_VISITOR_EXTRA_BUDGET (64u * 1024u * 1024u)
/* Longest Authorization value read (a 64-byte user and a 256-byte secret take 432). */
#define TT_VISITOR_AUTH_MAX 1024

/* Refusals counted by status (tt_visitor_metrics). */
enum tt_visitor_refusal {
    TT_VISITOR_REFUSED_400 = 0, /* malformed upgrade or target */
    TT_VISITOR_REFUSED_401 = 1, /* no or bad credentials */
    TT_VISITOR_REFUSED_403 = 2, /* no grant covers the service */
    TT_VISITOR_REFUSED_404 = 3, /* no such device or service */
    TT_VISITOR_REFUSED_429 = 4, /* the address failed too often (throttled) */
    TT_VISITOR_REFUSED_503 = 5, /* offline, busy (stream shares), checks busy, shutting down */
    TT_VISITOR_REFUSED_N
};

/* The relay's visitor connections and their counters. */
struct tt_visitor_set {
    struct tt_visitor *list; /* bridges (after the 101) */
    size_t open;
    size_t extra_in_use; /* window growth granted by every bridge (TT_VISITOR_EXTRA_BUDGET) */
    uint64_t accepted, forwarded, revoked;
    uint64_t refused[TT_VISITOR_REFUSED_N];
    uint64_t bytes_in, bytes_out; /* visitor -> device, device -> visitor */
};

/* How a tether connect upgrade authenticates (tt_visitor_request.auth). */
enum tt_visitor_auth {
    TT_VISITOR_AUTH_NONE = 0,   /* no Authorization: public services only */
    TT_VISITOR_AUTH_BASIC = 1,  /* user and secret */
    TT_VISITOR_AUTH_BEARER = 2, /* a grant token */
    TT_VISITOR_AUTH_BAD = 3,    /* repeated, too long, another scheme, or malformed: 401 */
};

/* What an upgrade asks for, read from its head (tt_visitor_parse). The secret is a copy (wipe
 * it: tt_visitor_request_wipe); the token points into the head's buffer. */
struct tt_visitor_request {
    char device[TT_MAX_NAME + 1];  /* Tether-Device: 1..64 bytes 0x21-0x7e */
    char service[TT_MAX_NAME + 1]; /* Tether-Service, the same */
    uint8_t auth;                  /* enum tt_visitor_auth */
    char user[TT_MAX_NAME + 1];    /* BASIC: 1..64 bytes, no ':' or NUL */
    uint8_t secret[TT_USERS_SECRET_MAX];
    size_t secret_len; /* BASIC: 1..TT_USERS_SECRET_MAX */
    const uint8_t *token;
    size_t token_len; /* BEARER: >= 1, within TT_VISITOR_AUTH_MAX */
};

/* Reads the target and the credentials of a tether connect upgrade from hp (docs/PROTOCOL.md
 * 14.1). Pure. Returns 0 (rq filled; rq->auth says how it authenticates), or TETHER_ERR_HTTP
 * when Tether-Device or Tether-Service is missing, repeated or malformed (400). */
int tt_visitor_parse(const struct tt_headparse *hp, struct tt_visitor_request *rq);

/* Wipes rq (its secret). */
void tt_visitor_request_wipe(struct tt_visitor_request *rq);

/* True when the upgrade request hp offers the tether-connect.v1 subprotocol. */
bool tt_visitor_is_upgrade(const struct tt_headparse *hp);

/* Serves a tether connect upgrade that is not for a device address (server.c), from on_head;
 * hc is consumed (answered, passed on, or kept until its secret check answers). trusted: the
 * request came from another cluster node, which names the visitor in x-tether-client. */
void tt_visitor_endpoint(struct tt_relay *r, struct tt_headconn *hc, bool trusted);

/* Relay shutdown: every visitor connection gets GOAWAY (SHUTDOWN) and its device stream a
 * RESET; they close asynchronously. */
void tt_visitor_shutdown(struct tt_relay *r);

/* Frees the set (after the loop ended; every connection is gone by then). */
void tt_visitor_free(struct tt_relay *r);

/* Appends the /metrics block (Prometheus text) to out[0..cap), NUL-terminated; returns its
 * length (cut to fit). */
size_t tt_visitor_metrics(const struct tt_relay *r, char *out, size_t cap);

#endif
