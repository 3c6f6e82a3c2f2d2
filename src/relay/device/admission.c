/* admission.c - admission control of device registrations (admission.h): the busy refusal,
 * its Retry-After and the registration-rate window, over struct tt_drain's counters. */
#include "common/log.h"
#include "relay/device/admission.h"

/* Starts a new one-second window when the current one is over. */
static void roll_window(struct tt_drain *d, uint64_t now)
{
    if (now - d->window_ms < 1000)
        return;
    d->last_done = now - d->window_ms < 2000 ? d->window_done : 0;
    d->window_ms = now;
    d->window_refusals = d->window_done = 0;
}

void tt_admission_registered(struct tt_drain *d, uint64_t now)
{
    roll_window(d, now);
    d->window_done++;
}

bool tt_admission_room(const struct tt_drain *d, uint64_t max, uint64_t more)
{
    return max == 0 || d->registering + more < max;
}

enum tt_drain_refusal tt_admission_check(struct tt_drain *d, uint64_t now, uint64_t max,
                                         bool store_busy, unsigned *retry_after)
{
    *retry_after = 0;
    if (!store_busy && (max == 0 || d->registering < max))
        return TT_DRAIN_ADMIT;
    roll_window(d, now);
    d->window_refusals++;
    d->refused[TT_DRAIN_BUSY]++;
    uint64_t floor = TT_DRAIN_RATE_FLOOR * (max ? max : 1);
    uint64_t rate = d->last_done > floor ? d->last_done : floor;
    uint64_t s = 1 + d->window_refusals / rate;
    *retry_after = (unsigned)(s > TT_DRAIN_BUSY_RETRY_MAX_S ? TT_DRAIN_BUSY_RETRY_MAX_S : s);
    if (d->window_refusals == 1) /* one line a second at most; /metrics counts them all */
        TT_LOG(TT_LOG_INFO,
               "device handshakes refused: too many registrations under way registering=%zu "
               "max_registering=%llu registry_busy=%d retry_after=%u",
               d->registering, (unsigned long long)max, store_busy ? 1 : 0, *retry_after);
    return TT_DRAIN_BUSY;
}
