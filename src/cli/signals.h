/* signals.h - the stop signals of tether and `tether connect`: one set-up for both programs. */
#ifndef TT_CLI_SIGNALS_H
#define TT_CLI_SIGNALS_H

#include <stdbool.h>

/* Calls on_signal (which must be async-signal-safe: it only asks the running loop to stop) on
 * SIGINT and SIGTERM, and on SIGHUP too when hangup is true; ignores SIGPIPE, so that a write to
 * a closed socket fails with an error instead. On Windows: SIGINT, SIGBREAK and SIGTERM (there
 * is neither SIGHUP nor SIGPIPE). Process-wide; call it once, from main's thread. */
void tt_signals_install(void (*on_signal)(int), bool hangup);

#endif
