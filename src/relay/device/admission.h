/* admission.h - admission control of device registrations (docs/operators-guide.md, "Limits
 * and abuse"): at most --max-registering device connections in registration (the WebSocket
 * accepted, the HELLO not answered yet, the registry write and sync included; see
 * TT_DRAIN_SILENT_MS); beyond, or with the registry's connection past its admission share, a
 * handshake is refused busy, with a Retry-After that grows with the refusals of the current
 * second. It works on the admission fields of struct tt_drain (drainstate.h) and nothing else of
 * the relay, so that device.c counts its registrations without depending on the drain (drain.h
 * puts the draining refusal in front). On the loop's thread. */
#ifndef TT_ADMISSION_H
#define TT_ADMISSION_H

#include <stdbool.h>
#include <stdint.h>
#include "relay/cluster/drainstate.h"

/* Retry-After of a busy refusal: 1 s plus the refusals of the current second divided by what
 * the node registers in a second (the last second's registrations, at least
 * TT_DRAIN_RATE_FLOOR × --max-registering), at most TT_DRAIN_BUSY_RETRY_MAX_S. */
#define TT_DRAIN_BUSY_RETRY_MAX_S 60
#define TT_DRAIN_RATE_FLOOR 16

/* Whether a device handshake may go on (TT_DRAIN_ADMIT) or is refused busy (TT_DRAIN_BUSY,
 * counted in d->refused; *retry_after gets the seconds for Retry-After, else 0). now: uv_now;
 * max: --max-registering (0: no cap); store_busy: the registry's connection is past its
 * admission share (store/redisasync.h). */
enum tt_drain_refusal tt_admission_check(struct tt_drain *d, uint64_t now, uint64_t max,
                                         bool store_busy, unsigned *retry_after);

/* Whether the node may take `more` registrations on top of those under way (max:
 * --max-registering, 0: no cap). Counts nothing. */
bool tt_admission_room(const struct tt_drain *d, uint64_t max, uint64_t more);

/* Counts a registration answered WELCOME (the node's registration rate, for Retry-After). */
void tt_admission_registered(struct tt_drain *d, uint64_t now);

#endif
