/* core.c - the relay's wall clock (core.h tt_relay_now_ms). struct tt_relay itself has no code
 * of its own: relay.c fills it and the parts work on it. */
#include <time.h>
#include "relay/core.h"

int64_t tt_relay_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
