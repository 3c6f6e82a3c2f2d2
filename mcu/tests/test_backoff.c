/* test_backoff.c - unit tests of the microcontroller agent's reconnect delays (mcu/agent/
 * tether_mcu.c, whose static functions this file includes): the back-off doubles from its base
 * to its cap, each delay jittered to [0.8 d, 1.2 d) by the random callback; a registration that
 * lasted STABLE_MS starts it over, a shorter one or a TAKEOVER does not; GOAWAY SHUTDOWN means
 * about a second; a 503's Retry-After is honoured. The connect timeout of an attempt doubles
 * after one that timed out with its TCP connection up, up to 4 times its base, and goes back to
 * the base at WELCOME (tt_dialtimeout_next, driven through the agent's timer). The clock is the
 * test's (sys_now); lwIP is initialised for the timer's sys_timeout. cmocka;
 * built and run by make mcu-test (build/mcu/host/tests/test_backoff). */
/* First: cmocka defines a macro fail(), the agent a function of that name. */
#include "../agent/tether_mcu.c"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "lwip/init.h"

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
    cfg.connect_timeout_ms = 0;
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

/* The rule the agent runs (src/core/dialtimeout.c), as tests/unit/test_backoff.c checks it for the
 * reference agent: the firmware build links the same function. */
static void test_dial_timeout_rule(void **state)
{
    (void)state;

    assert_int_equal(tt_dialtimeout_next(0, TT_DIAL_END_FAILED, 15000, 60000), 15000);
    assert_int_equal(tt_dialtimeout_next(0, TT_DIAL_END_STALLED, 15000, 60000), 30000);
    assert_int_equal(tt_dialtimeout_next(15000, TT_DIAL_END_STALLED, 15000, 60000), 30000);
    assert_int_equal(tt_dialtimeout_next(30000, TT_DIAL_END_STALLED, 15000, 60000), 60000);
    assert_int_equal(tt_dialtimeout_next(60000, TT_DIAL_END_STALLED, 15000, 60000), 60000);
    assert_int_equal(tt_dialtimeout_next(45000, TT_DIAL_END_STALLED, 15000, 60000), 60000);
    assert_int_equal(tt_dialtimeout_next(30000, TT_DIAL_END_FAILED, 15000, 60000), 30000);
    assert_int_equal(tt_dialtimeout_next(60000, TT_DIAL_END_REGISTERED, 15000, 60000), 15000);
    /* Always within [base, max]; a max below the base is the base; a zero base is 1 ms. */
    assert_int_equal(tt_dialtimeout_next(1000, TT_DIAL_END_FAILED, 15000, 60000), 15000);
    assert_int_equal(tt_dialtimeout_next(90000, TT_DIAL_END_FAILED, 15000, 60000), 60000);
    assert_int_equal(tt_dialtimeout_next(0, TT_DIAL_END_STALLED, 15000, 5000), 15000);
    assert_int_equal(tt_dialtimeout_next(0, TT_DIAL_END_FAILED, 0, 0), 1);
    assert_int_equal(tt_dialtimeout_next(0xF0000000u, TT_DIAL_END_STALLED, 1, 0xFFFFFFFFu),
                     0xFFFFFFFFu);
}

/* One tick of the agent's timer at the fake clock (the tick it re-arms is taken back: the test
 * drives the timer itself). */
static void tick_at(uint32_t t)
{
    fake_now = t;
    tick(&agent);
    sys_untimeout(tick, &agent);
}

/* An attempt that reaches state (no real connection: pcb stays NULL) and that nothing answers:
 * returns how long after it began the agent gave it up, ticking every 250 ms up to 5 minutes. */
static uint32_t attempt_times_out(enum tether_mcu_state st)
{
    uint32_t start = fake_now + 1000, t;

    agent.state = (uint8_t)st;
    agent.attempt_at = start;
    agent.retry_planned = 0;
    for (t = start; t - start <= 300000; t += TICK_MS) {
        tick_at(t);
        if (agent.state != st)
            break;
    }
    assert_int_equal(agent.state, TETHER_MCU_WAITING);
    return t - start;
}

static void test_stalled_attempts_grow_the_timeout(void **state)
{
    (void)state;

    /* The first attempt waits the base (connect_timeout_ms 0: 15 s). */
    assert_int_equal(dial_timeout(&agent), 15000);
    /* Connected, the upgrade unanswered: the next one waits 30 s. */
    assert_int_equal(attempt_times_out(TETHER_MCU_UPGRADING), 15000);
    assert_int_equal(dial_timeout(&agent), 30000);
    /* HELLO sent, no WELCOME: 60 s, the cap (4 times the base). */
    assert_int_equal(attempt_times_out(TETHER_MCU_HELLO), 30000);
    assert_int_equal(attempt_times_out(TETHER_MCU_HELLO), 60000);
    assert_int_equal(attempt_times_out(TETHER_MCU_UPGRADING), 60000);
    assert_int_equal(dial_timeout(&agent), 60000);
}

static void test_timeout_without_connection_keeps_it(void **state)
{
    (void)state;

    assert_int_equal(attempt_times_out(TETHER_MCU_UPGRADING), 15000);
    /* No SYN-ACK (the host is down, a packet filter), or no name: it stays at 30 s. */
    assert_int_equal(attempt_times_out(TETHER_MCU_CONNECTING), 30000);
    assert_int_equal(attempt_times_out(TETHER_MCU_RESOLVING), 30000);
    assert_int_equal(dial_timeout(&agent), 30000);
    /* A quick failure (refused, a wrong answer) leaves it too. */
    agent.state = TETHER_MCU_UPGRADING;
    agent.retry_planned = 0;
    enter(&agent);
    (fail)(&agent, DROP_ABORT, "could not connect to the relay"); /* the agent's, not cmocka's */
    leave(&agent);
    assert_int_equal(agent.state, TETHER_MCU_WAITING);
    assert_int_equal(dial_timeout(&agent), 30000);
}

static void test_welcome_resets_the_timeout(void **state)
{
    struct tt_welcome w;
    (void)state;

    assert_int_equal(attempt_times_out(TETHER_MCU_HELLO), 15000);
    assert_int_equal(attempt_times_out(TETHER_MCU_HELLO), 30000);
    assert_int_equal(dial_timeout(&agent), 60000);
    memset(&w, 0, sizeof w);
    agent.state = TETHER_MCU_HELLO;
    assert_int_equal(s_on_welcome(&agent.session, &w, &agent), 0);
    assert_int_equal(agent.state, TETHER_MCU_ONLINE);
    assert_int_equal(dial_timeout(&agent), 15000);
    agent.state = TETHER_MCU_WAITING;
    assert_int_equal(attempt_times_out(TETHER_MCU_UPGRADING), 15000);
}

/* connect_timeout_ms is the base; the cap is 4 times it. */
static void test_configured_base(void **state)
{
    (void)state;

    cfg.connect_timeout_ms = 2000;
    assert_int_equal(attempt_times_out(TETHER_MCU_UPGRADING), 2000);
    assert_int_equal(attempt_times_out(TETHER_MCU_HELLO), 4000);
    assert_int_equal(attempt_times_out(TETHER_MCU_HELLO), 8000);
    assert_int_equal(attempt_times_out(TETHER_MCU_HELLO), 8000);
    cfg.connect_timeout_ms = 0;
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
        cmocka_unit_test_setup(test_dial_timeout_rule, setup),
        cmocka_unit_test_setup(test_stalled_attempts_grow_the_timeout, setup),
        cmocka_unit_test_setup(test_timeout_without_connection_keeps_it, setup),
        cmocka_unit_test_setup(test_welcome_resets_the_timeout, setup),
        cmocka_unit_test_setup(test_configured_base, setup),
    };
    lwip_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
