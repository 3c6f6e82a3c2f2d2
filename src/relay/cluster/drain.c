/* drain.c - draining a node and admission control of device registrations (drain.h). */
#include <string.h>
#include "common/log.h"
#include "common/wsconn.h"
#include "relay/cluster/cluster.h"
#include "relay/device/device.h"
#include "relay/cluster/drain.h"
#include "relay/relay.h"

bool tt_drain_on(const struct tt_relay *r)
{
    return r->drain.on;
}

/* Sends up to the tokens' worth of this node's registered devices GOAWAY SHUTDOWN (the agent
 * comes back within about a second, and this node's handshake redirects it elsewhere). */
static void on_tick(uv_timer_t *t)
{
    struct tt_relay *r = t->data;
    struct tt_drain *d = &r->drain;
    uint64_t now = uv_now(r->loop);
    double rate = (double)(r->cfg.drain_rate ? r->cfg.drain_rate : 1);
    double burst = rate / 10 < 1 ? 1 : rate / 10;
    d->tokens += rate * (double)(now - d->last_ms) / 1000.0;
    if (d->tokens > burst)
        d->tokens = burst;
    d->last_ms = now;
    if (!d->on || r->stopping)
        return;
    if (!r->cluster || !tt_cluster_can_take(r->cluster)) {
        if (!d->idle_logged)
            TT_LOG(TT_LOG_INFO, "draining: no other node takes devices; the devices held here "
                                "stay until one does (or until this node stops)");
        d->idle_logged = true;
        return;
    }
    d->idle_logged = false;
    size_t left = 0;
    for (struct tt_devconn *dc = r->conns, *next; dc; dc = next) {
        next = dc->next; /* dc may be freed by its close */
        if (dc->drained || !dc->ws)
            continue;
        if (!dc->welcomed || !dc->dev || d->tokens < 1) {
            left++;
            if (d->tokens < 1)
                break;
            continue;
        }
        d->tokens -= 1;
        d->moved++;
        dc->drained = true;
        TT_LOG(TT_LOG_DEBUG, "draining: device sent away device=%s", TT_LOG_V(dc->dev->name));
        tt_wsconn_close(dc->ws, TT_GOAWAY_SHUTDOWN, tt_wsconn_close_code(TT_GOAWAY_SHUTDOWN), 0,
                        "relay draining");
    }
    if (left == 0 && !d->empty_logged) {
        TT_LOG(TT_LOG_INFO, "drained: every device was sent to the other nodes moved=%llu",
               (unsigned long long)d->moved);
        d->empty_logged = true;
    } else if (left > 0) {
        d->empty_logged = false;
    }
}

int tt_drain_start(struct tt_relay *r)
{
    struct tt_drain *d = &r->drain;
    if (d->on)
        return 0;
    if (!d->timer_init) {
        if (uv_timer_init(r->loop, &d->timer) != 0)
            return -1;
        d->timer.data = r;
        d->timer_init = true;
    }
    d->on = true;
    d->since = tt_relay_now_ms();
    d->tokens = 0;
    d->last_ms = uv_now(r->loop);
    d->idle_logged = d->empty_logged = false;
    if (!d->timer_on && uv_timer_start(&d->timer, on_tick, TT_DRAIN_TICK_MS, TT_DRAIN_TICK_MS) == 0)
        d->timer_on = true;
    TT_LOG(TT_LOG_INFO,
           "draining: no new devices; devices=%zu sent to the other nodes at "
           "rate=%llu/s",
           tt_device_online_count(r), (unsigned long long)r->cfg.drain_rate);
    return 1;
}

int tt_drain_stop(struct tt_relay *r)
{
    struct tt_drain *d = &r->drain;
    if (!d->on)
        return 0;
    d->on = false;
    if (d->timer_on)
        uv_timer_stop(&d->timer);
    d->timer_on = false;
    TT_LOG(TT_LOG_INFO, "drain ended: devices are taken again moved=%llu",
           (unsigned long long)d->moved);
    return 1;
}

void tt_drain_refuse_draining(struct tt_relay *r)
{
    r->drain.refused[TT_DRAIN_DRAINING]++;
}

/* Starts a new one-second window when the current one is over. */
static void roll_window(struct tt_drain *d, uint64_t now)
{
    if (now - d->window_ms < 1000)
        return;
    d->last_done = now - d->window_ms < 2000 ? d->window_done : 0;
    d->window_ms = now;
    d->window_refusals = d->window_done = 0;
}

void tt_drain_registered(struct tt_relay *r)
{
    roll_window(&r->drain, uv_now(r->loop));
    r->drain.window_done++;
}

enum tt_drain_refusal tt_drain_admit(struct tt_relay *r, unsigned *retry_after)
{
    struct tt_drain *d = &r->drain;
    *retry_after = 0;
    if (d->on) {
        tt_drain_refuse_draining(r);
        *retry_after = TT_DRAIN_RETRY_AFTER_S;
        return TT_DRAIN_DRAINING;
    }
    uint64_t max = r->cfg.max_registering;
    if (max == 0 || d->registering < max)
        return TT_DRAIN_ADMIT;
    roll_window(d, uv_now(r->loop));
    d->window_refusals++;
    d->refused[TT_DRAIN_BUSY]++;
    uint64_t rate =
        d->last_done > TT_DRAIN_RATE_FLOOR * max ? d->last_done : TT_DRAIN_RATE_FLOOR * max;
    uint64_t s = 1 + d->window_refusals / rate;
    *retry_after = (unsigned)(s > TT_DRAIN_BUSY_RETRY_MAX_S ? TT_DRAIN_BUSY_RETRY_MAX_S : s);
    if (d->window_refusals == 1) /* one line a second at most; /metrics counts them all */
        TT_LOG(TT_LOG_INFO,
               "device handshakes refused: too many registrations under way registering=%zu "
               "max_registering=%llu retry_after=%u",
               d->registering, (unsigned long long)max, *retry_after);
    return TT_DRAIN_BUSY;
}

void tt_drain_shutdown(struct tt_relay *r)
{
    struct tt_drain *d = &r->drain;
    if (d->timer_init && !uv_is_closing((uv_handle_t *)&d->timer))
        uv_close((uv_handle_t *)&d->timer, NULL);
    d->timer_on = false;
}
