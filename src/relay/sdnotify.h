/* sdnotify.h - tells systemd how tetherd is doing (Type=notify units, tetherd.service): READY=1
 * once the listeners are bound, RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 when
 * a graceful stop begins, and WATCHDOG=1 every half of WATCHDOG_USEC when systemd asks for a
 * watchdog. Messages go through libsystemd's sd_notify() to $NOTIFY_SOCKET; without that variable
 * (not started by systemd) every call does nothing. Builds without libsystemd (TT_HAVE_SYSTEMD
 * unset: not Linux, or libsystemd-dev missing) get the same functions, doing nothing.
 *
 * Owns: one libuv timer (the watchdog), stopped and closed by tt_sdnotify_stopping. */
#ifndef TT_SDNOTIFY_H
#define TT_SDNOTIFY_H

#include <uv.h>

/* READY=1 and STATUS=MSG; starts the watchdog timer on loop when WATCHDOG_USEC is set for this
 * process. Call once, after the listeners are bound. */
void tt_sdnotify_ready(uv_loop_t *loop, const char *status);

/* RELOADING=1 before a reload; tt_sdnotify_reloaded() sends READY=1 after it. */
void tt_sdnotify_reloading(void);
void tt_sdnotify_reloaded(void);

/* STOPPING=1; closes the watchdog timer, so that it keeps no loop alive. */
void tt_sdnotify_stopping(void);

#endif
