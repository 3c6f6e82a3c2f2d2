/* acceptcap.h - a cap on the connections one listener accepts per loop turn
 * (docs/operators-guide.md, "Limits and abuse", "The loop's stall"). libuv accepts on a
 * readable listener until the kernel's queue is empty, so a reconnect storm (every device of a
 * node dialling at once) used to be accepted in one turn, and their request heads read and
 * answered in the next, thousands at a time, while nothing else on the node (the admin
 * listener, other devices' traffic, timers) was served. With the cap, once a listener has
 * accepted TT_ACCEPTCAP_PER_TURN connections in a turn its callback leaves the next one where
 * it is: libuv stops watching the listener, the check after this turn's poll accepts that one
 * connection and watches the listener again, and the rest wait in the kernel's accept queue
 * (the listen backlog) for the next turns. Each such pause is counted (paused).
 * One per process (the relay runs one loop on one thread); nothing here is locked. */
#ifndef TT_ACCEPTCAP_H
#define TT_ACCEPTCAP_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* Connections one capped listener accepts per loop turn. */
#define TT_ACCEPTCAP_PER_TURN 128

struct tt_acceptcap_listener;
/* Accepts the one connection waiting on l's listener (uv_accept on &l->tcp, as a connection
 * callback would). */
typedef void (*tt_acceptcap_cb)(struct tt_acceptcap_listener *l);

/* A listener: tcp first (a uv_tcp_t * to it is a pointer to the whole; whoever closes the
 * handle frees the whole in its close callback). Zeroed, then tcp initialised by the owner. */
struct tt_acceptcap_listener {
    uv_tcp_t tcp;
    tt_acceptcap_cb accept; /* set by the owner */
    void *ud;               /* the owner's */
    bool capped;            /* false: never held (the admin listener) */
    /* NULL, or the owner's say that its connections' queue is full: then the listener is held
     * (its next connection left where it is, the rest in the kernel's queue) until a check
     * after a later poll finds it is not (the owner's queue must keep the loop turning while
     * it drains: an idle handle or a timer) */
    bool (*full)(void *ud);
    /* this module's */
    uint64_t turn;  /* the turn count was last counted in */
    unsigned count; /* connections accepted in that turn */
    bool held;      /* one connection left unaccepted until the check */
    struct tt_acceptcap_listener *next_held;
};

struct tt_acceptcap_stats {
    uint64_t paused;      /* times a listener reached the cap in a turn */
    uint64_t full_paused; /* times a listener was held because its owner's queue was full */
};

/* Starts the check handle on loop (unreferenced: it keeps no loop alive). Returns 0 or a libuv
 * error (then no listener is ever held). */
int tt_acceptcap_start(uv_loop_t *loop);

/* Stops it: held listeners are forgotten (their owner closes them). Nothing if stopped. */
void tt_acceptcap_stop(void);

/* From l's connection callback (status 0): true when the connection may be accepted now
 * (counted); false when l reached its cap this turn, or its owner's queue is full: the caller
 * leaves it (l->accept takes it after this turn's poll, or after a later one once the queue
 * is not full). */
bool tt_acceptcap_take(struct tt_acceptcap_listener *l);

/* l is closing: it leaves the held list. */
void tt_acceptcap_forget(struct tt_acceptcap_listener *l);

void tt_acceptcap_read(struct tt_acceptcap_stats *out);

/* The loop turns counted so far (by the check after each poll; 0 before the first one and
 * when stopped: no turn to count against). */
uint64_t tt_acceptcap_turn(void);

#endif
