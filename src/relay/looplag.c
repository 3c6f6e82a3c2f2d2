/* looplag.c - the loop's own stall measure (looplag.h). */
#include <string.h>
#include <time.h>
#include "relay/looplag.h"

static struct {
    uv_loop_t *loop;
    uv_timer_t timer;
    uv_prepare_t prepare;
    uint64_t due_ns;     /* when the timer is due (uv_hrtime) */
    uint64_t turn_at_ns; /* uv_hrtime at the last prepare (0: none yet) */
    uint64_t idle_at_ns; /* uv_metrics_idle_time then */
    uint64_t cpu_at_ns;  /* the thread's CPU time then */
    int open;            /* handles initialised and not closed */
    int closing;         /* close callbacks still to come */
    struct tt_looplag_stats s;
} lag;

static const double bounds[TT_LOOPLAG_NBOUNDS] = TT_LOOPLAG_BOUNDS;

void tt_looplag_observe(uint64_t ns)
{
    size_t i = 0;
    while (i < TT_LOOPLAG_NBOUNDS && (double)ns > bounds[i] * 1e9)
        i++;
    lag.s.bucket[i]++;
    lag.s.count++;
    lag.s.sum_ns += ns;
    if (ns > lag.s.lag_max_ns)
        lag.s.lag_max_ns = ns;
}

static void on_tick(uv_timer_t *t)
{
    uint64_t now = uv_hrtime();
    tt_looplag_observe(now > lag.due_ns ? now - lag.due_ns : 0);
    /* due again a period from now: a stall is counted once, not once per period it lasted */
    lag.due_ns = now + (uint64_t)TT_LOOPLAG_PERIOD_MS * 1000000u;
    uv_timer_start(t, on_tick, TT_LOOPLAG_PERIOD_MS, 0);
}

/* The loop thread's CPU time (one system call: clock_gettime of a thread clock has no vDSO). */
static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Just before the loop waits for I/O: the turn that ends here did work for the time since the
 * last one, less the time it waited. */
static void on_prepare(uv_prepare_t *p)
{
    uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(p->loop), cpu = thread_cpu_ns();
    if (lag.turn_at_ns != 0) {
        uint64_t used = cpu > lag.cpu_at_ns ? cpu - lag.cpu_at_ns : 0;
        if (used > lag.s.turn_cpu_max_ns)
            lag.s.turn_cpu_max_ns = used;
        uint64_t all = now - lag.turn_at_ns;
        uint64_t waited = idle - lag.idle_at_ns;
        uint64_t work = all > waited ? all - waited : 0;
        lag.s.busy_ns += work;
        if (work > lag.s.turn_max_ns)
            lag.s.turn_max_ns = work;
        if (work > (uint64_t)TT_LOOPLAG_LONG_TURN_MS * 1000000u)
            lag.s.long_turns++;
    }
    lag.turn_at_ns = now;
    lag.idle_at_ns = idle;
    lag.cpu_at_ns = cpu;
}

int tt_looplag_start(uv_loop_t *loop)
{
    if (lag.open)
        return 0;
    if (lag.closing)
        return UV_EBUSY; /* the last loop has not closed them yet */
    memset(&lag, 0, sizeof(lag));
    lag.loop = loop;
    int rc = uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
    if (rc != 0)
        return rc;
    uv_timer_init(loop, &lag.timer);
    uv_prepare_init(loop, &lag.prepare);
    lag.open = 1;
    uv_unref((uv_handle_t *)&lag.timer);
    uv_unref((uv_handle_t *)&lag.prepare);
    lag.due_ns = uv_hrtime() + (uint64_t)TT_LOOPLAG_PERIOD_MS * 1000000u;
    uv_timer_start(&lag.timer, on_tick, TT_LOOPLAG_PERIOD_MS, 0);
    uv_prepare_start(&lag.prepare, on_prepare);
    lag.s.running = 1;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    (void)h;
    lag.closing--;
}

void tt_looplag_stop(void)
{
    if (!lag.open)
        return;
    lag.open = 0;
    lag.s.running = 0;
    lag.closing = 2;
    uv_close((uv_handle_t *)&lag.timer, on_closed);
    uv_close((uv_handle_t *)&lag.prepare, on_closed);
}

void tt_looplag_read(struct tt_looplag_stats *out)
{
    *out = lag.s;
}
