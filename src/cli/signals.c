/* signals.c - installs the stop signals' handler of tether and `tether connect` (signals.h). */
#include <signal.h>
#include <string.h>

#include "cli/signals.h"

void tt_signals_install(void (*on_signal)(int), bool hangup)
{
#if defined(_WIN32)
    /* The C runtime calls these from its console-control thread (Ctrl-C, Ctrl-Break); Windows
     * has no SIGPIPE (a write to a closed socket fails with an error instead). */
    (void)hangup;
    signal(SIGINT, on_signal);
    signal(SIGBREAK, on_signal);
    signal(SIGTERM, on_signal);
#else
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (hangup)
        sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
#endif
}
