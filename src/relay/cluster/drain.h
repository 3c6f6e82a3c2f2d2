/* drain.h - taking a node out of service (POST /api/drain) and admission control of device
 * registrations (docs/operators-guide.md, "Draining a node and rolling upgrades" and "Limits
 * and abuse"):
 *   - draining: /healthz answers 503 "draining"; a new device handshake is redirected to
 *     another node that takes devices (cluster mode) or answered 503 with Retry-After; the
 *     node's devices are sent GOAWAY SHUTDOWN at most --drain-rate a second (so that they come
 *     back within about a second, through this node's redirect, to the others), only while
 *     another live node takes devices: on a single relay (or the last node of a cluster) the
 *     devices it holds stay until it is stopped. DELETE /api/drain ends the drain; a restart
 *     ends it too (it lives in memory; the node record in Redis carries it to the other nodes);
 *   - admission: at most --max-registering device connections in registration (the WebSocket
 *     accepted, the HELLO not answered yet, the registry write and sync included; one silent
 *     for TT_DRAIN_SILENT_MS after its 101 no longer counts); beyond, the handshake is answered
 *     503 with a Retry-After that grows with the refusals of the current second.
 * One per relay (struct tt_relay.drain), on the loop's thread. */
#ifndef TT_DRAIN_H
#define TT_DRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct tt_relay;

#define TT_DRAIN_TICK_MS 100
/* A device connection that has sent no HELLO this long after its 101 stops counting against
 * --max-registering (a real agent sends it at once; a stranger holding handshakes open must not
 * keep new devices out for the whole HELLO deadline). */
#define TT_DRAIN_SILENT_MS 5000
/* Retry-After (seconds) of a handshake refused because the node drains. */
#define TT_DRAIN_RETRY_AFTER_S 10
/* Retry-After of a busy refusal: 1 s plus the refusals of the current second divided by what
 * the node registers in a second (the last second's registrations, at least
 * TT_DRAIN_RATE_FLOOR × --max-registering), at most TT_DRAIN_BUSY_RETRY_MAX_S. */
#define TT_DRAIN_BUSY_RETRY_MAX_S 60
#define TT_DRAIN_RATE_FLOOR 16

/* Why a device handshake is refused (tt_drain.refused[]). */
enum tt_drain_refusal {
    TT_DRAIN_ADMIT = 0,
    TT_DRAIN_BUSY = 1,     /* --max-registering reached */
    TT_DRAIN_DRAINING = 2, /* the node drains and has nowhere to send the device */
    TT_DRAIN_N
};

struct tt_drain {
    bool on;
    int64_t since; /* unix ms, when the drain began */
    uv_timer_t timer;
    bool timer_init, timer_on;
    double tokens;     /* devices that may be moved now (at most a tenth of a second's worth) */
    uint64_t last_ms;  /* uv_now of the last tick */
    bool idle_logged;  /* "no other node takes devices" said once per stretch */
    bool empty_logged; /* "drained: no device left" said once */
    uint64_t moved;    /* devices sent GOAWAY SHUTDOWN by the drain, in total */
    /* admission */
    size_t registering; /* device connections accepted and not answered yet */
    uint64_t refused[TT_DRAIN_N];
    uint64_t window_ms;       /* uv_now at the start of the current second */
    uint64_t window_refusals; /* busy refusals in it */
    uint64_t window_done;     /* registrations answered WELCOME in it */
    uint64_t last_done;       /* ... in the second before */
};

/* Starts draining. Returns 1 when it starts now, 0 when it was draining already. */
int tt_drain_start(struct tt_relay *r);

/* Ends a drain (DELETE /api/drain): devices are taken again. Returns 1 when it was draining. */
int tt_drain_stop(struct tt_relay *r);

bool tt_drain_on(const struct tt_relay *r);

/* Whether a device handshake may go on to its 101 (TT_DRAIN_ADMIT) or why not; for a refusal,
 * *retry_after gets the seconds to put in Retry-After, and it is counted. Draining is not
 * checked here when the caller redirects the device instead (cluster). */
enum tt_drain_refusal tt_drain_admit(struct tt_relay *r, unsigned *retry_after);

/* Counts a registration answered WELCOME (the node's registration rate, for Retry-After). */
void tt_drain_registered(struct tt_relay *r);

/* Counts a refusal because of draining (the caller found no node to redirect to). */
void tt_drain_refuse_draining(struct tt_relay *r);

/* Closes the timer (relay shutdown). */
void tt_drain_shutdown(struct tt_relay *r);

#endif
