/* looplag.h - how long the relay's one event loop keeps everything else waiting, measured by
 * the relay itself (docs/operators-guide.md, "Limits and abuse", "The loop's stall"):
 *   - lag: a timer due every TT_LOOPLAG_PERIOD_MS; how late it runs (uv_hrtime against when it
 *     was due) is what any timer, and any request arriving then, waited for the loop. Kept as
 *     a histogram (tether_loop_lag_seconds) and its largest value since start;
 *   - turns: each loop turn's work (from one wait for I/O to the next, minus the wait itself:
 *     libuv's idle time, UV_METRICS_IDLE_TIME), its largest since start, the turns longer than
 *     TT_LOOPLAG_LONG_TURN_MS, and the loop's busy time in all.
 *     The CPU time of the costliest turn is kept too: a turn longer than its CPU time waited
 *     for a core (the machine's load), not for the relay's own work.
 * Cost: three clock reads per loop turn (one a system call) and ten a second; nothing per byte. One
 * per process (the relay runs one loop on one thread); nothing here is locked. */
#ifndef TT_LOOPLAG_H
#define TT_LOOPLAG_H

#include <stdint.h>
#include <uv.h>

/* The timer's period. */
#define TT_LOOPLAG_PERIOD_MS 100
/* A turn longer than this is counted in long_turns. */
#define TT_LOOPLAG_LONG_TURN_MS 100
/* The histogram's upper bounds in seconds (+Inf follows). */
#define TT_LOOPLAG_BOUNDS                                                                          \
    {                                                                                              \
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10                             \
    }
#define TT_LOOPLAG_NBOUNDS 12

struct tt_looplag_stats {
    uint64_t bucket[TT_LOOPLAG_NBOUNDS + 1]; /* lag samples at or below each bound (not
                                                cumulative; [NBOUNDS]: above the last) */
    uint64_t count;                          /* lag samples */
    uint64_t sum_ns;                         /* their sum */
    uint64_t lag_max_ns;                     /* the largest lag since start */
    uint64_t turn_max_ns;                    /* the longest turn's work since start */
    uint64_t turn_cpu_max_ns;                /* the most CPU time one turn used since start
                                                (less than turn_max_ns: the turn waited for a
                                                core, the machine's load) */
    uint64_t long_turns;                     /* turns longer than TT_LOOPLAG_LONG_TURN_MS */
    uint64_t busy_ns;                        /* the loop's work in all (turns summed) */
    int running;                             /* 1 between start and stop */
};

/* Starts measuring loop (the relay's): its timer and prepare handles are unreferenced, so they
 * keep no loop alive; idle-time metrics are turned on for it (must come before uv_run).
 * Returns 0 or a libuv error (then nothing is measured; the relay runs on). */
int tt_looplag_start(uv_loop_t *loop);

/* Stops and closes the handles (their close callbacks run on the loop). Nothing if stopped. */
void tt_looplag_stop(void);

/* Copies the figures so far (zeros if never started). */
void tt_looplag_read(struct tt_looplag_stats *out);

/* Counts one lag sample of ns nanoseconds (the timer's job; for tests). */
void tt_looplag_observe(uint64_t ns);

#endif
