/* drain.c - draining a node (drain.h), and the draining refusal of device handshakes in front
 * of admission control (device/admission.c). */
#include <string.h>
#include "common/log.h"
#include "common/wsconn.h"
#include "relay/device/admission.h"
#include "relay/device/device.h"
#include "relay/cluster/drain.h"
#include "relay/core.h"

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
    if (!r->mode->can_take(r)) {
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

enum tt_drain_refusal tt_drain_admit(struct tt_relay *r, unsigned *retry_after)
{
    *retry_after = 0;
    if (r->drain.on) {
        tt_drain_refuse_draining(r);
        *retry_after = TT_DRAIN_RETRY_AFTER_S;
        return TT_DRAIN_DRAINING;
    }
    /* the registry's connection past its admission share (store/redisasync.h): busy too */
    bool store_busy = tt_registry_busy(r->reg, TT_DRAIN_STORE_COMMANDS);
    return tt_admission_check(&r->drain, uv_now(r->loop), r->cfg.max_registering, store_busy,
                              retry_after);
}

void tt_drain_shutdown(struct tt_relay *r)
{
    struct tt_drain *d = &r->drain;
    if (d->timer_init && !uv_is_closing((uv_handle_t *)&d->timer))
        uv_close((uv_handle_t *)&d->timer, NULL);
    d->timer_on = false;
}
