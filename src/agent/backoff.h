/* backoff.h - the agent's reconnection schedule: exponential back-off with jitter (about 1 s at
 * first, doubling, capped at about 60 s), reset after a registration that lasted; and how long
 * the next dial may take (tt_dialtimeout_next: longer after dials that timed out). Pure: the
 * random source is a function given at init, so tests can pin it. No clock, no I/O. */
#ifndef TT_AGENT_BACKOFF_H
#define TT_AGENT_BACKOFF_H

#include <stdint.h>

#include "core/dialtimeout.h"

#define TT_BACKOFF_BASE_MS 1000u
#define TT_BACKOFF_CAP_MS 60000u
/* The longest wait a relay's Retry-After obtains (tt_backoff_after). */
#define TT_BACKOFF_AFTER_CAP_MS 300000u

/* Returns a uniformly distributed 32-bit value. ud is the one given to tt_backoff_init. */
typedef uint32_t (*tt_backoff_rand_fn)(void *ud);

struct tt_backoff {
    uint32_t base_ms;
    uint32_t cap_ms;
    unsigned attempt; /* failures since the last reset */
    tt_backoff_rand_fn rand;
    void *rand_ud;
};

/* Prepares b with the first delay base_ms and the cap cap_ms (base_ms <= cap_ms, both > 0), and
 * rand (NULL: a built-in source seeded from OpenSSL's CSPRNG). Cannot fail. */
void tt_backoff_init(struct tt_backoff *b, uint32_t base_ms, uint32_t cap_ms,
                     tt_backoff_rand_fn rand, void *rand_ud);

/* Returns the delay before the next attempt and counts one more failure: d = base * 2^attempt
 * capped at cap, then jittered uniformly to [0.8 d, 1.2 d) and capped at cap again. So the first
 * is 0.8..1.2 s and the last 48..60 s with the defaults. Cannot fail. */
uint32_t tt_backoff_next(struct tt_backoff *b);

/* Returns a short jittered delay of about ms (0.8..1.2 ms), without counting a failure (the
 * relay said it is shutting down: come back soon). Cannot fail. */
uint32_t tt_backoff_soon(struct tt_backoff *b, uint32_t ms);

/* The delay a relay asked for with Retry-After (a 503 to the WebSocket handshake): seconds plus
 * a jitter of 0 to 50 % (so that the devices it refused together do not come back together),
 * at most TT_BACKOFF_AFTER_CAP_MS in all. Not counted as a failure. Cannot fail. */
uint32_t tt_backoff_after(struct tt_backoff *b, uint32_t seconds);

/* Forgets past failures: the next delay is about base_ms again. Cannot fail. */
void tt_backoff_reset(struct tt_backoff *b);

/* The next dial's timeout: tt_dialtimeout_next (core/dialtimeout.h, shared with the
 * microcontroller agent). */

#endif
