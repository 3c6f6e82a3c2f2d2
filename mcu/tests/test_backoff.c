/* test_backoff.c - unit tests of the microcontroller agent's reconnect delays (mcu/agent/
 * tether_mcu.c, whose static functions this file includes): the back-off doubles from its base
 * to its cap, each delay jittered to [0.8 d, 1.2 d) by the random callback; a registration that
 * lasted STABLE_MS starts it over, a shorter one or a TAKEOVER does not; GOAWAY SHUTDOWN means
 * about a second; a 503's Retry-After is honoured. The clock is the test's (sys_now). cmocka;
 * built and run by make mcu-test (build/mcu/host/tests/test_backoff). */
/* First: cmocka defines a macro fail(), the agent a function of that name. */
#include "../agent/tether_mcu.c"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

static uint32_t fake_now;
static uint32_t next_random; /* what the random callback returns, big-endian (rand32) */

u32_t sys_now(void)
{
    return fake_now;
}

unsigned int tt_port_rand32(void)
{
    return 4; /* lwIP's ports and sequence numbers: not used here */
}

void tt_unix_diag(const char *fmt, ...)
{
    (void)fmt;
}

static void fill_random(void *ud, uint8_t *out, size_t len)
{
    size_t i;
    (void)ud;

    for (i = 0; i < len; i++)
        out[i] = (uint8_t)(next_random >> (8 * (3 - i % 4)));
}

static int open_cb(struct tether_mcu *a, uint32_t stream, uint8_t service, void *ud)
{
    (void)a, (void)stream, (void)service, (void)ud;
    return 0;
}

static size_t data_cb(struct tether_mcu *a, uint32_t stream, const uint8_t *p, size_t len, void *ud)
{
    (void)a, (void)stream, (void)p, (void)ud;
    return len;
}

static const struct tether_mcu_callbacks cbs = {
    .open = open_cb, .data = data_cb, .random = fill_random};
static const struct tether_mcu_service svc[1] = {{TT_SERVICE_HTTP, "http"}};
static struct tether_mcu_config cfg = {.host = "10.0.0.1",
                                       .name = "dev",
                                       .token = "t",
                                       .services = svc,
                                       .nservices = 1,
                                       .backoff_base_ms = 1000,
                                       .backoff_cap_ms = 60000};
static struct tether_mcu agent;

/* A connection attempt that ended: plan_retry() once, as do_drop does. */
static uint32_t ended(void)
{
    uint32_t d = plan_retry(&agent);

    agent.retry_planned = 0;
    agent.got_goaway = agent.registered = 0;
    agent.goaway_code = 0;
    agent.retry_after_s = 0;
    return d;
}

static int setup(void **state)
{
    (void)state;
    fake_now = 1000000;
    next_random = 0;
    assert_int_equal(tether_mcu_init(&agent, &cfg, &cbs, NULL), 0);
    return 0;
}

static void test_doubles_to_cap(void **state)
{
    static const uint32_t want[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000};
    unsigned i;
    (void)state;

    next_random = 0; /* the low end: 0.8 d */
    for (i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_int_equal(ended(), want[i] * 4 / 5);
}

static void test_jitter_span(void **state)
{
    uint32_t d;
    (void)state;

    next_random = 399; /* 399 % 400: the top of [800, 1200) for a 1000 ms delay */
    assert_int_equal(ended(), 800 + 399);
    next_random = 0xFFFFFFFFu;
    d = ended(); /* 2000 ms: [1600, 2400) */
    assert_true(d >= 1600 && d < 2400);
    /* Never past the cap, even jittered up. */
    for (int i = 0; i < 10; i++)
        d = ended();
    assert_true(d <= 60000 && d >= 48000);
}

static void test_stable_registration_resets(void **state)
{
    (void)state;

    next_random = 0;
    for (int i = 0; i < 5; i++)
        (void)ended();
    /* Registered for 9.9 s: not yet a success, the back-off goes on (32 s). */
    agent.registered = 1;
    agent.registered_at = fake_now - 9900;
    assert_int_equal(ended(), 32000 * 4 / 5);
    /* Registered for 10 s: the back-off starts over. */
    agent.registered = 1;
    agent.registered_at = fake_now - STABLE_MS;
    assert_int_equal(ended(), 1000 * 4 / 5);
    assert_int_equal(ended(), 2000 * 4 / 5);
}

static void test_takeover_does_not_reset(void **state)
{
    (void)state;

    next_random = 0;
    for (int i = 0; i < 3; i++)
        (void)ended();
    agent.registered = 1;
    agent.registered_at = fake_now - 60000;
    agent.got_goaway = 1;
    agent.goaway_code = TT_GOAWAY_TAKEOVER;
    assert_int_equal(ended(), 8000 * 4 / 5);
}

static void test_shutdown_and_retry_after(void **state)
{
    (void)state;

    next_random = 0;
    for (int i = 0; i < 4; i++)
        (void)ended();
    agent.got_goaway = 1;
    agent.goaway_code = TT_GOAWAY_SHUTDOWN;
    assert_int_equal(ended(), SHUTDOWN_RETRY_MS * 4 / 5);
    assert_int_equal(ended(), 1000 * 4 / 5); /* started over after the shutdown */
    agent.retry_after_s = 30;
    assert_int_equal(ended(), 30000 * 4 / 5); /* Retry-After: 30 beats 4 s */
}

static void test_planned_once_per_connection(void **state)
{
    (void)state;

    next_random = 0;
    assert_int_equal(plan_retry(&agent), 800);
    next_random = 100;
    assert_int_equal(plan_retry(&agent), 800); /* the same decision, not a second step */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_doubles_to_cap, setup),
        cmocka_unit_test_setup(test_jitter_span, setup),
        cmocka_unit_test_setup(test_stable_registration_resets, setup),
        cmocka_unit_test_setup(test_takeover_does_not_reset, setup),
        cmocka_unit_test_setup(test_shutdown_and_retry_after, setup),
        cmocka_unit_test_setup(test_planned_once_per_connection, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
