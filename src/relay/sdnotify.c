/* sdnotify.c - systemd readiness, reload, stop and watchdog messages (sdnotify.h). */
#include <stdio.h>
#include "common/log.h"
#include "relay/sdnotify.h"

#ifdef TT_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

static uv_timer_t watchdog;
static int watchdog_on;

/* A failure is logged once (a watchdog would otherwise repeat it every few seconds). */
static void notify_send(const char *msg)
{
    static int warned;
    int rc = sd_notify(0, msg);
    if (rc < 0 && !warned) {
        warned = 1;
        TT_LOG(TT_LOG_WARN, "systemd notification failed: %s msg=%.20s", uv_strerror(rc), msg);
    }
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    notify_send("WATCHDOG=1");
}

void tt_sdnotify_ready(uv_loop_t *loop, const char *status)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status);
    notify_send(msg);
    uint64_t usec = 0;
    if (watchdog_on || sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return;
    uint64_t every_ms = usec / 2000; /* half of WATCHDOG_USEC, as sd_watchdog_enabled(3) says */
    if (every_ms == 0)
        every_ms = 1;
    uv_timer_init(loop, &watchdog);
    uv_timer_start(&watchdog, on_watchdog, every_ms, every_ms);
    uv_unref((uv_handle_t *)&watchdog); /* never what keeps the loop running */
    watchdog_on = 1;
    notify_send("WATCHDOG=1");
    TT_LOG(TT_LOG_INFO, "systemd watchdog every_ms=%llu", (unsigned long long)every_ms);
}

void tt_sdnotify_reloading(void)
{
    notify_send("RELOADING=1");
}

void tt_sdnotify_reloaded(void)
{
    notify_send("READY=1");
}

void tt_sdnotify_stopping(void)
{
    notify_send("STOPPING=1");
    if (watchdog_on) {
        uv_timer_stop(&watchdog);
        uv_close((uv_handle_t *)&watchdog, NULL);
        watchdog_on = 0;
    }
}

#else

void tt_sdnotify_ready(uv_loop_t *loop, const char *status)
{
    (void)loop;
    (void)status;
}

void tt_sdnotify_reloading(void)
{
}

void tt_sdnotify_reloaded(void)
{
}

void tt_sdnotify_stopping(void)
{
}

#endif
