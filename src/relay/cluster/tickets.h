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
 * ring (tls.h), fixed at three keys; only the keys the ring lacks are asked for (after the
 * first read: one or two Redis commands per period).
 *
 * Waiting. Only the read at start is synchronous (start-up, before the loop runs: the cluster's
 * synchronous connection, with its timeout). Every later refresh goes on the cluster's
 * asynchronous connection (store/redisasync.h): the commands are pipelined (for E's and E+1's
 * key: SET NX of a new key, then GET right behind it, which reads whichever node's key won;
 * for E-1's: GET), and each reply puts its key into the ring when it arrives. The loop never
 * waits: a handshake uses the keys held at that moment, and one whose ticket is under a key
 * not held yet gets a full handshake. At most one refresh is in flight: while Redis has not
 * answered the previous one, a due refresh is skipped (not queued) and counted as failed. A
 * command not sent (Redis down, the connection's cap), not answered (its timeout) or answered
 * with an error counts the refresh as failed (tls.h's share_failures) and the keys held go on
 * being used; a node that never got a key issues no tickets (full handshakes only) until it
 * does. The keys are never logged; the copies this module holds are wiped (hiredis' own
 * buffers are not: they are freed as they are).
 *
 * Ownership: one instance per process (static state). Start it once both of the cluster's
 * Redis connections exist; stop it before they close (a reply due after that is still taken
 * into the ring, or counted as failed: it holds nothing of the cluster's). */
#ifndef TT_CLUSTER_TICKETS_H
#define TT_CLUSTER_TICKETS_H

#include <uv.h>

#include <stdbool.h>
#include <stdint.h>

#include "relay/store/redisasync.h"
#include "relay/store/redisconn.h"

#define TT_TICKETS_REFRESH_MAX_MS 60000u
#define TT_TICKETS_REFRESH_MIN_MS 250u

/* Reads (or makes) the keys now, synchronously on rc (start-up), then on a timer on ra. Does
 * nothing when tickets are off (period 0). rc and ra must outlive tt_cluster_tickets_stop.
 * Returns 0, or a libuv error (timer). */
int tt_cluster_tickets_start(uv_loop_t *loop, struct tt_redisconn *rc, struct tt_redisasync *ra);

/* Stops the timer (closed on the loop's next turn) and lets go of ra. */
void tt_cluster_tickets_stop(void);

/* One synchronous refresh at now_s (start-up, and tests): reads the keys missing from the ring,
 * making E's and E+1's when Redis has none. */
void tt_cluster_tickets_refresh(struct tt_redisconn *rc, int64_t now_s);

/* One asynchronous refresh at now_s (the timer, and tests): queues the commands for the keys
 * missing from the ring on ra and returns at once; the replies put the keys in as they come.
 * Returns 0 (queued, or nothing missing), 1 (the previous refresh is still in flight: skipped,
 * counted as failed) or -1 (ra NULL or out of memory: counted as failed). */
int tt_cluster_tickets_refresh_async(struct tt_redisasync *ra, int64_t now_s);

/* True while a refresh's replies are due (tests). */
bool tt_cluster_tickets_inflight(void);

#endif
