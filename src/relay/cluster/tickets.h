/* tickets.h - the cluster's TLS session ticket keys, shared by its nodes through Redis, so that
 * a device whose node went away resumes its TLS session at any other node (no certificate, no
 * signature: a reconnect storm's handshakes are the cheap kind).
 *
 * Keys live by epoch of the rotation period (tls.h, --tls-ticket-rotate): the key of epoch E is
 * TT_REDIS_PREFIX "tls:ticket:PERIOD:E" (80 bytes from a node's CSPRNG; PERIOD in seconds, so
 * nodes configured with different periods never mix keys). Whichever node first finds E's or
 * E+1's key missing makes it and writes it with SET NX (the first writer wins; every node then
 * reads the winner's), with an expiry of three periods plus a minute: Redis forgets rotated-out
 * keys by itself. Each node reads E-1, E and E+1 at start and then every period / 4 (at most
 * every TT_TICKETS_REFRESH_MAX_MS, at least every TT_TICKETS_REFRESH_MIN_MS) into the process's
 * ring (tls.h), fixed at three keys. A failed Redis call is counted (tls.h's share_failures)
 * and the keys held go on being used; a node that never got a key issues no tickets (full
 * handshakes only) until it does. The keys are never logged.
 *
 * Ownership: one instance per process (static state); start it once the cluster's Redis
 * connection is up, stop it before that connection closes. */
#ifndef TT_CLUSTER_TICKETS_H
#define TT_CLUSTER_TICKETS_H

#include <uv.h>

#include "relay/store/redisconn.h"

#define TT_TICKETS_REFRESH_MAX_MS 60000u
#define TT_TICKETS_REFRESH_MIN_MS 250u

/* Reads (or makes) the keys now, then on a timer. Does nothing when tickets are off (period 0).
 * rc must outlive tt_cluster_tickets_stop. Returns 0, or a libuv error (timer). */
int tt_cluster_tickets_start(uv_loop_t *loop, struct tt_redisconn *rc);

/* Stops the timer (closed on the loop's next turn). */
void tt_cluster_tickets_stop(void);

/* One refresh at now_s (for the timer and for tests): reads the keys missing from the ring,
 * making E's and E+1's when Redis has none. */
void tt_cluster_tickets_refresh(struct tt_redisconn *rc, int64_t now_s);

#endif
