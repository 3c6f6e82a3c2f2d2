/* test_backoff.c - unit tests for src/agent/backoff.c: the reconnection schedule (about 1 s,
 * doubling, capped at 60 s, jitter within [0.8, 1.2) of the step), reset, and "soon", with the
 * random source pinned; and the dial timeout that grows after stalled dials. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/backoff.h"

static uint32_t rand_zero(void *ud)
{
    (void)ud;
    return 0;
}

static uint32_t rand_max(void *ud)
{
    (void)ud;
    return UINT32_MAX;
}

static uint32_t rand_counter(void *ud)
{
    uint32_t *n = ud;
    return (*n)++ * 2654435761u;
}

static void test_lower_bound_doubles_to_cap(void **state)
{
    struct tt_backoff b;
    const uint32_t want[] = {800, 1600, 3200, 6400, 12800, 25600, 48000, 48000, 48000};
    (void)state;

    tt_backoff_init(&b, 1000, 60000, rand_zero, NULL);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_int_equal(tt_backoff_next(&b), want[i]);
}

static void test_upper_bound_never_over_cap(void **state)
{
    struct tt_backoff b;
    (void)state;

    tt_backoff_init(&b, 1000, 60000, rand_max, NULL);
    uint32_t first = tt_backoff_next(&b);
    assert_true(first >= 800 && first < 1200);
    for (int i = 0; i < 100; i++)
        assert_true(tt_backoff_next(&b) <= 60000);
    assert_true(tt_backoff_next(&b) >= 48000);
}

static void test_jitter_stays_in_band(void **state)
{
    struct tt_backoff b;
    uint32_t n = 1;
    (void)state;

    tt_backoff_init(&b, 1000, 60000, rand_counter, &n);
    for (int round = 0; round < 50; round++) {
        uint64_t step = 1000;
        tt_backoff_reset(&b);
        for (int i = 0; i < 10; i++) {
            uint32_t d = tt_backoff_next(&b);
            uint64_t s = step > 60000 ? 60000 : step;
            assert_true(d >= s * 4 / 5);
            assert_true(d < s * 6 / 5 || d == 60000);
            assert_true(d <= 60000);
            step *= 2;
        }
    }
}

static void test_reset_starts_over(void **state)
{
    struct tt_backoff b;
    (void)state;

    tt_backoff_init(&b, 1000, 60000, rand_zero, NULL);
    for (int i = 0; i < 20; i++)
        tt_backoff_next(&b);
    assert_int_equal(tt_backoff_next(&b), 48000);
    tt_backoff_reset(&b);
    assert_int_equal(tt_backoff_next(&b), 800);
    assert_int_equal(tt_backoff_next(&b), 1600);
}

static void test_soon_does_not_count(void **state)
{
    struct tt_backoff b;
    (void)state;

    tt_backoff_init(&b, 1000, 60000, rand_zero, NULL);
    assert_int_equal(tt_backoff_soon(&b, 1000), 800);
    assert_int_equal(tt_backoff_soon(&b, 1000), 800);
    assert_int_equal(tt_backoff_next(&b), 800);
}

static void test_default_random_source(void **state)
{
    struct tt_backoff b;
    (void)state;

    tt_backoff_init(&b, 1000, 60000, NULL, NULL);
    uint32_t d = tt_backoff_next(&b);
    assert_true(d >= 800 && d < 1200);
}

static void test_degenerate_parameters(void **state)
{
    struct tt_backoff b;
    (void)state;

    tt_backoff_init(&b, 0, 0, rand_max, NULL); /* base 0 becomes 1, cap follows base */
    assert_true(tt_backoff_next(&b) <= 1);
    tt_backoff_init(&b, 5000, 1000, rand_zero, NULL); /* cap under base: cap = base */
    assert_int_equal(tt_backoff_next(&b), 4000);
    assert_int_equal(tt_backoff_next(&b), 4000);
}

/* Retry-After: the seconds asked for plus 0..50 %, capped at 300 s, not counted as a failure. */
static void test_after_retry_after(void **state)
{
    struct tt_backoff b;
    uint32_t n = 1;
    (void)state;

    tt_backoff_init(&b, 1000, 60000, rand_zero, NULL);
    assert_int_equal(tt_backoff_after(&b, 5), 5000);
    assert_int_equal(tt_backoff_after(&b, 0), 0);
    assert_int_equal(tt_backoff_after(&b, 1000), TT_BACKOFF_AFTER_CAP_MS);
    assert_int_equal(tt_backoff_after(&b, UINT32_MAX), TT_BACKOFF_AFTER_CAP_MS);
    assert_int_equal(tt_backoff_next(&b), 800); /* the back-off did not move */
    tt_backoff_init(&b, 1000, 60000, rand_max, NULL);
    uint32_t hi = tt_backoff_after(&b, 10);
    assert_true(hi >= 10000 && hi <= 15000);
    assert_int_equal(tt_backoff_after(&b, 250), TT_BACKOFF_AFTER_CAP_MS);
    tt_backoff_init(&b, 1000, 60000, rand_counter, &n);
    for (int i = 0; i < 1000; i++) {
        uint32_t d = tt_backoff_after(&b, 4);
        assert_true(d >= 4000 && d <= 6000);
    }
}

/* The agent's rule, as a device in a storm lives it: 15 s, then 30, 60, 60 after stalls; a quick
 * failure keeps what was reached; a registration starts over. */
static void test_dial_timeout_grows_after_stalls(void **state)
{
    uint32_t t = tt_dialtimeout_next(0, TT_DIAL_END_FAILED, 15000, 60000);
    (void)state;

    assert_int_equal(t, 15000); /* the first dial */
    t = tt_dialtimeout_next(t, TT_DIAL_END_FAILED, 15000, 60000);
    assert_int_equal(t, 15000); /* refused, a TLS error, a 503: no growth */
    t = tt_dialtimeout_next(t, TT_DIAL_END_STALLED, 15000, 60000);
    assert_int_equal(t, 30000);
    t = tt_dialtimeout_next(t, TT_DIAL_END_FAILED, 15000, 60000);
    assert_int_equal(t, 30000); /* kept: a 503 says nothing about how long a handshake takes */
    t = tt_dialtimeout_next(t, TT_DIAL_END_STALLED, 15000, 60000);
    assert_int_equal(t, 60000);
    t = tt_dialtimeout_next(t, TT_DIAL_END_STALLED, 15000, 60000);
    assert_int_equal(t, 60000); /* capped */
    t = tt_dialtimeout_next(t, TT_DIAL_END_REGISTERED, 15000, 60000);
    assert_int_equal(t, 15000); /* a WELCOME starts over */
    assert_int_equal(tt_dialtimeout_next(0, TT_DIAL_END_REGISTERED, 15000, 60000), 15000);
}

static void test_dial_timeout_bounds(void **state)
{
    (void)state;
    /* not a power-of-two multiple of the base: capped, not overshot */
    assert_int_equal(tt_dialtimeout_next(40000, TT_DIAL_END_STALLED, 15000, 60000), 60000);
    /* a current value out of range is brought back into [base, max] */
    assert_int_equal(tt_dialtimeout_next(1000, TT_DIAL_END_FAILED, 15000, 60000), 15000);
    assert_int_equal(tt_dialtimeout_next(90000, TT_DIAL_END_FAILED, 15000, 60000), 60000);
    /* no overflow at the top of the range */
    assert_int_equal(tt_dialtimeout_next(UINT32_MAX, TT_DIAL_END_STALLED, 15000, UINT32_MAX),
                     UINT32_MAX);
    /* degenerate parameters: max below base is base; base 0 is 1 */
    assert_int_equal(tt_dialtimeout_next(15000, TT_DIAL_END_STALLED, 15000, 1000), 15000);
    assert_int_equal(tt_dialtimeout_next(0, TT_DIAL_END_REGISTERED, 0, 0), 1);
    assert_int_equal(tt_dialtimeout_next(1, TT_DIAL_END_STALLED, 0, 10), 2);
    /* an unknown end is taken as a registration: never longer than asked */
    assert_int_equal(tt_dialtimeout_next(60000, (enum tt_dial_end)42, 15000, 60000), 15000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lower_bound_doubles_to_cap),
        cmocka_unit_test(test_upper_bound_never_over_cap),
        cmocka_unit_test(test_jitter_stays_in_band),
        cmocka_unit_test(test_reset_starts_over),
        cmocka_unit_test(test_soon_does_not_count),
        cmocka_unit_test(test_default_random_source),
        cmocka_unit_test(test_degenerate_parameters),
        cmocka_unit_test(test_after_retry_after),
        cmocka_unit_test(test_dial_timeout_grows_after_stalls),
        cmocka_unit_test(test_dial_timeout_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
