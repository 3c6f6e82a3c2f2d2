/* drainstate.h - the state of a node's drain and of the admission of device registrations
 * (struct tt_drain, one per relay as struct tt_relay.drain, core.h): what drain.c keeps between
 * its ticks and the counters /metrics shows. The behaviour is drain.h's; this header stays a
 * leaf so that core.h can hold the struct without depending on the drain module. */
#ifndef TT_DRAINSTATE_H
#define TT_DRAINSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* A device connection that has sent no HELLO this long after its 101 stops counting in
 * registering below, against --max-registering (a real agent sends it at once; a stranger
 * holding handshakes open must not keep new devices out for the whole HELLO deadline). */
#define TT_DRAIN_SILENT_MS 5000

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
    /* admission (device/admission.h) */
    size_t registering; /* device connections accepted and not answered yet */
    uint64_t refused[TT_DRAIN_N];
    uint64_t window_ms;       /* uv_now at the start of the current second */
    uint64_t window_refusals; /* busy refusals in it */
    uint64_t window_done;     /* registrations answered WELCOME in it */
    uint64_t last_done;       /* ... in the second before */
};

#endif
