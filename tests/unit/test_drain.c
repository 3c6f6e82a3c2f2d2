/* test_drain.c - admission control and the drain flag (src/relay/cluster/drain.c): the cap on
 * registrations in progress, the Retry-After a busy node suggests (growing with the refusals of
 * the current second, over the node's registration rate, at most 60 s), the draining refusal,
 * the counters, and drain start/stop being idempotent. A zeroed relay on a real loop; no I/O. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>
#include "relay/cluster/drain.h"
#include "relay/core.h"

static uv_loop_t loop;
static struct tt_relay r;

static int setup(void **state)
{
    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(uv_loop_init(&loop), 0);
    r.loop = &loop;
    r.cfg.max_registering = 2;
    r.cfg.drain_rate = 50;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tt_drain_shutdown(&r);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

static void test_busy_beyond_the_cap(void **state)
{
    (void)state;
    unsigned ra = 99;
    assert_int_equal(tt_drain_admit(&r, &ra), TT_DRAIN_ADMIT);
    assert_int_equal(ra, 0);
    r.drain.registering = 2;
    assert_int_equal(tt_drain_admit(&r, &ra), TT_DRAIN_BUSY);
    assert_int_equal(ra, 1);
    /* the refusals of this second over the rate floor (16 x 2 a second) */
    for (int i = 0; i < 63; i++)
        tt_drain_admit(&r, &ra);
    assert_int_equal(ra, 3); /* 64 refusals / 32 + 1 */
    for (int i = 0; i < 10000; i++)
        tt_drain_admit(&r, &ra);
    assert_int_equal(ra, TT_DRAIN_BUSY_RETRY_MAX_S);
    assert_int_equal(r.drain.refused[TT_DRAIN_BUSY], 10064);
    r.drain.registering = 1;
    assert_int_equal(tt_drain_admit(&r, &ra), TT_DRAIN_ADMIT);
    r.cfg.max_registering = 0; /* no cap */
    r.drain.registering = 1000000;
    assert_int_equal(tt_drain_admit(&r, &ra), TT_DRAIN_ADMIT);
}

static void test_draining_refuses(void **state)
{
    (void)state;
    unsigned ra;
    assert_false(tt_drain_on(&r));
    r.stopping = true; /* the tick does nothing; no device table needed */
    assert_int_equal(tt_drain_start(&r), 1);
    assert_int_equal(tt_drain_start(&r), 0); /* idempotent */
    assert_true(tt_drain_on(&r));
    assert_int_equal(tt_drain_admit(&r, &ra), TT_DRAIN_DRAINING);
    assert_int_equal(ra, TT_DRAIN_RETRY_AFTER_S);
    assert_int_equal(r.drain.refused[TT_DRAIN_DRAINING], 1);
    assert_int_equal(tt_drain_stop(&r), 1);
    assert_int_equal(tt_drain_stop(&r), 0);
    assert_int_equal(tt_drain_admit(&r, &ra), TT_DRAIN_ADMIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_busy_beyond_the_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_draining_refuses, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
