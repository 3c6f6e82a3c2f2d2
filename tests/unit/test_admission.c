/* test_admission.c - unit tests for src/relay/device/admission.c: admission control of device
 * registrations over struct tt_drain's counters, with the time given: the cap on registrations
 * under way (none when max is 0), the registry's business refusing too, the Retry-After of a busy
 * refusal (the refusals of the current second over the node's registration rate, with its
 * floor, at most TT_DRAIN_BUSY_RETRY_MAX_S), and the one-second windows rolling. No I/O. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "relay/device/admission.h"

static void test_cap_and_no_cap(void **state)
{
    (void)state;
    struct tt_drain d;
    memset(&d, 0, sizeof(d));
    unsigned ra = 99;
    assert_int_equal(tt_admission_check(&d, 1000, 2, false, &ra), TT_DRAIN_ADMIT);
    assert_int_equal(ra, 0);
    d.registering = 2;
    assert_int_equal(tt_admission_check(&d, 1000, 2, false, &ra), TT_DRAIN_BUSY);
    assert_int_equal(ra, 1);
    assert_int_equal(d.refused[TT_DRAIN_BUSY], 1);
    assert_int_equal(d.refused[TT_DRAIN_DRAINING], 0);
    /* no cap: admitted whatever is under way */
    d.registering = 1000000;
    assert_int_equal(tt_admission_check(&d, 1000, 0, false, &ra), TT_DRAIN_ADMIT);
    assert_int_equal(ra, 0);
}

static void test_registry_busy_refuses(void **state)
{
    (void)state;
    struct tt_drain d;
    memset(&d, 0, sizeof(d));
    unsigned ra;
    assert_int_equal(tt_admission_check(&d, 1000, 0, true, &ra), TT_DRAIN_BUSY);
    assert_int_equal(tt_admission_check(&d, 1000, 100, true, &ra), TT_DRAIN_BUSY);
    assert_int_equal(ra, 1);
    assert_int_equal(d.refused[TT_DRAIN_BUSY], 2);
}

static void test_retry_after_grows_and_is_capped(void **state)
{
    (void)state;
    struct tt_drain d;
    memset(&d, 0, sizeof(d));
    d.registering = 2;
    unsigned ra = 0;
    /* the floor: 16 x max (2) = 32 a second; 64 refusals in this second: 64 / 32 + 1 */
    for (int i = 0; i < 64; i++)
        tt_admission_check(&d, 5000, 2, false, &ra);
    assert_int_equal(ra, 3);
    for (int i = 0; i < 10000; i++)
        tt_admission_check(&d, 5000, 2, false, &ra);
    assert_int_equal(ra, TT_DRAIN_BUSY_RETRY_MAX_S);
    /* a new second: the count starts again */
    tt_admission_check(&d, 6000, 2, false, &ra);
    assert_int_equal(ra, 1);
}

static void test_registration_rate_sets_retry_after(void **state)
{
    (void)state;
    struct tt_drain d;
    memset(&d, 0, sizeof(d));
    /* 100 registrations answered in the second from 10000 */
    for (int i = 0; i < 100; i++)
        tt_admission_registered(&d, 10000);
    assert_int_equal(d.window_done, 100);
    d.registering = 1;
    unsigned ra = 0;
    /* the next second: last second's rate (100) is above the floor (16): 250 refusals give
     * 250 / 100 + 1 */
    for (int i = 0; i < 250; i++)
        tt_admission_check(&d, 11000, 1, false, &ra);
    assert_int_equal(d.last_done, 100);
    assert_int_equal(ra, 3);
    /* a quiet stretch of more than a second forgets the rate: back to the floor (16) */
    for (int i = 0; i < 32; i++)
        tt_admission_check(&d, 14000, 1, false, &ra);
    assert_int_equal(d.last_done, 0);
    assert_int_equal(ra, 3); /* 32 / 16 + 1 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_and_no_cap),
        cmocka_unit_test(test_registry_busy_refuses),
        cmocka_unit_test(test_retry_after_grows_and_is_capped),
        cmocka_unit_test(test_registration_rate_sets_retry_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
