/* backoff.c - exponential back-off with jitter for the agent's reconnections, and the growing
 * dial timeout (backoff.h). Pure arithmetic over a caller-owned struct and an injected random
 * function. */
#include <stddef.h>

#include "agent/backoff.h"
#include "common/util.h"

/* xorshift32: jitter needs spread, not secrecy; seeded once from the CSPRNG. */
static uint32_t default_rand(void *ud)
{
    static uint32_t state;
    uint32_t x;

    (void)ud;
    if (state == 0) {
        if (tt_random_bytes(&state, sizeof state) != 0 || state == 0)
            state = 0x9e3779b9u;
    }
    x = state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    state = x;
    return x;
}

void tt_backoff_init(struct tt_backoff *b, uint32_t base_ms, uint32_t cap_ms,
                     tt_backoff_rand_fn rand, void *rand_ud)
{
    b->base_ms = base_ms ? base_ms : 1;
    b->cap_ms = cap_ms >= b->base_ms ? cap_ms : b->base_ms;
    b->attempt = 0;
    b->rand = rand ? rand : default_rand;
    b->rand_ud = rand_ud;
}

/* d jittered to [0.8 d, 1.2 d). */
static uint32_t jitter(struct tt_backoff *b, uint32_t d)
{
    uint64_t span = (uint64_t)d * 2 / 5;
    uint64_t lo = (uint64_t)d * 4 / 5;
    uint64_t r = span ? b->rand(b->rand_ud) % span : 0;
    return (uint32_t)(lo + r);
}

uint32_t tt_backoff_next(struct tt_backoff *b)
{
    uint64_t d = b->base_ms;
    uint32_t out;

    for (unsigned i = 0; i < b->attempt && d < b->cap_ms; i++)
        d *= 2;
    if (d > b->cap_ms)
        d = b->cap_ms;
    out = jitter(b, (uint32_t)d);
    if (out > b->cap_ms)
        out = b->cap_ms;
    if (b->attempt < 64)
        b->attempt++;
    return out;
}

uint32_t tt_backoff_soon(struct tt_backoff *b, uint32_t ms)
{
    return jitter(b, ms);
}

uint32_t tt_backoff_after(struct tt_backoff *b, uint32_t seconds)
{
    uint64_t ms = (uint64_t)seconds * 1000;
    if (ms > TT_BACKOFF_AFTER_CAP_MS)
        ms = TT_BACKOFF_AFTER_CAP_MS;
    uint64_t span = ms / 2; /* + 0..50 % */
    ms += span ? b->rand(b->rand_ud) % (span + 1) : 0;
    return (uint32_t)(ms > TT_BACKOFF_AFTER_CAP_MS ? TT_BACKOFF_AFTER_CAP_MS : ms);
}

void tt_backoff_reset(struct tt_backoff *b)
{
    b->attempt = 0;
}
