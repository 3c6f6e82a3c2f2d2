/* dialtimeout.c - the next dial's timeout (dialtimeout.h). */
#include "dialtimeout.h"

uint32_t tt_dialtimeout_next(uint32_t cur_ms, enum tt_dial_end end, uint32_t base_ms,
                                 uint32_t max_ms)
{
    uint64_t next;

    if (base_ms == 0)
        base_ms = 1;
    if (max_ms < base_ms)
        max_ms = base_ms;
    switch (end) {
    case TT_DIAL_END_STALLED:
        next = cur_ms ? (uint64_t)cur_ms * 2 : (uint64_t)base_ms * 2;
        break;
    case TT_DIAL_END_FAILED:
        next = cur_ms ? cur_ms : base_ms;
        break;
    default: /* TT_DIAL_END_REGISTERED */
        next = base_ms;
        break;
    }
    if (next < base_ms)
        next = base_ms;
    return (uint32_t)(next > max_ms ? max_ms : next);
}
