/* drain.h - taking a node out of service (POST /api/drain), and the refusal of device
 * handshakes in front of admission control (docs/operators-guide.md, "Draining a node and rolling
 * upgrades" and "Limits and abuse"):
 *   - draining: /healthz answers 503 "draining"; a new device handshake is redirected to
 *     another node that takes devices (cluster mode) or answered 503 with Retry-After; the
 *     node's devices are sent GOAWAY SHUTDOWN at most --drain-rate a second (so that they come
 *     back within about a second, through this node's redirect, to the others), only while
 *     another live node takes devices: on a single relay (or the last node of a cluster) the
 *     devices it holds stay until it is stopped. DELETE /api/drain ends the drain; a restart
 *     ends it too (it lives in memory; the node record in Redis carries it to the other nodes);
 *   - admission (tt_drain_admit): a draining node's refusal first, then admission control of
 *     registrations (device/admission.h: --max-registering, the registry's business).
 * One per relay (struct tt_relay.drain: its state is in drainstate.h), on the loop's thread. */
#ifndef TT_DRAIN_H
#define TT_DRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "relay/cluster/drainstate.h"
#include "relay/device/admission.h"

struct tt_relay;

#define TT_DRAIN_TICK_MS 100
/* Retry-After (seconds) of a handshake refused because the node drains. */
#define TT_DRAIN_RETRY_AFTER_S 10
/* Redis commands a registration keeps in flight at most (its lookup, then its write): a
 * handshake is refused busy when that many more would pass the admission share of
 * --redis-max-pending (store/redisasync.h). */
#define TT_DRAIN_STORE_COMMANDS 2

/* Starts draining. Returns 1 when it starts now, 0 when it was draining already. */
int tt_drain_start(struct tt_relay *r);

/* Ends a drain (DELETE /api/drain): devices are taken again. Returns 1 when it was draining. */
int tt_drain_stop(struct tt_relay *r);

bool tt_drain_on(const struct tt_relay *r);

/* Whether a device handshake may go on to its 101 (TT_DRAIN_ADMIT) or why not: draining, then
 * admission control (device/admission.h, with the registry's business); for a refusal,
 * *retry_after gets the seconds to put in Retry-After, and it is counted. Draining is not
 * checked here when the caller redirects the device instead (cluster). */
enum tt_drain_refusal tt_drain_admit(struct tt_relay *r, unsigned *retry_after);

/* Counts a refusal because of draining (the caller found no node to redirect to). */
void tt_drain_refuse_draining(struct tt_relay *r);

/* Closes the timer (relay shutdown). */
void tt_drain_shutdown(struct tt_relay *r);

#endif
