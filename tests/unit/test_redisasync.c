/* test_redisasync.c - unit tests for src/relay/store/redisasync.c against a real redis-server
 * started here (skipped when there is none): pipelined commands answered in order, a Redis
 * stopped with SIGSTOP whose commands complete after SIGCONT while the loop keeps running, the
 * cap on commands in flight, free with commands pending (callbacks with NULL), and Redis killed
 * then started again (commands fail at once while down, the connection comes back), and the
 * command timeout. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <uv.h>

#include "tether_err.h"
#include "relay/store/redisasync.h"
#include "support_loop.h"
#include "support_redis.h"

struct ctx {
    uv_loop_t loop;
    uv_timer_t guard, wait;
    struct tt_redisasync *ra;
    int answered, nulls, order_bad;
    long long last;
    bool waited;
};

static void open_ctx(struct ctx *c, size_t max_pending)
{
    char err[TT_ERRLEN];
    struct tt_redis_url u;
    memset(c, 0, sizeof(*c));
    memset(&u, 0, sizeof(u));
    snprintf(u.host, sizeof(u.host), "127.0.0.1");
    u.port = (uint16_t)ut_redis.port;
    assert_int_equal(uv_loop_init(&c->loop), 0);
    ut_start_guard(&c->loop, &c->guard);
    assert_int_equal(tt_redisasync_new(&c->ra, &c->loop, &u, max_pending, err), 0);
    uv_timer_init(&c->loop, &c->wait);
    c->wait.data = c;
}

static void close_ctx(struct ctx *c)
{
    tt_redisasync_free(c->ra);
    uv_close((uv_handle_t *)&c->wait, NULL);
    ut_finish_loop(&c->loop, &c->guard);
}

static void on_waited(uv_timer_t *t)
{
    ((struct ctx *)t->data)->waited = true;
}

/* Runs the loop for ms (a referenced timer keeps it running). */
static void run_for(struct ctx *c, uint64_t ms)
{
    c->waited = false;
    uv_timer_start(&c->wait, on_waited, ms, 0);
    while (!c->waited)
        uv_run(&c->loop, UV_RUN_ONCE);
}

/* Runs until cond (checked every 10 ms), at most ms. */
#define RUN_UNTIL(c, cond, ms)                                                                     \
    do {                                                                                           \
        for (int i_ = 0; i_ < (ms) / 10 && !(cond); i_++)                                          \
            run_for((c), 10);                                                                      \
    } while (0)

static void on_incr(redisReply *rep, void *ud)
{
    struct ctx *c = ud;
    if (!rep) {
        c->nulls++;
        return;
    }
    c->answered++;
    if (rep->type != REDIS_REPLY_INTEGER || rep->integer != c->last + 1)
        c->order_bad++;
    else
        c->last = rep->integer;
}

static void pipelined(void **state)
{
    (void)state;
    if (!ut_redis.pid)
        skip();
    struct ctx c;
    open_ctx(&c, 0);
    /* queued while still connecting: sent behind the handshake */
    assert_int_equal(tt_redisasync_cmd(c.ra, on_incr, &c, "DEL %s", "ut:n"), 0);
    c.last = -1; /* DEL answers 0 or 1: counted below only as an answer */
    RUN_UNTIL(&c, c.answered + c.nulls == 1, 2000);
    assert_int_equal(c.nulls, 0);
    assert_true(tt_redisasync_up(c.ra));
    c.answered = 0;
    c.order_bad = 0;
    c.last = 0;
    for (int i = 0; i < 2000; i++)
        assert_int_equal(tt_redisasync_cmd(c.ra, on_incr, &c, "INCR %s", "ut:n"), 0);
    struct tt_redisasync_stats st;
    tt_redisasync_stats(c.ra, &st);
    assert_int_equal(st.pending, 2000); /* all in flight at once */
    RUN_UNTIL(&c, c.answered + c.nulls == 2000, 5000);
    assert_int_equal(c.answered, 2000);
    assert_int_equal(c.order_bad, 0);
    tt_redisasync_stats(c.ra, &st);
    assert_int_equal(st.pending, 0);
    assert_true(st.commands >= 2001);
    char m[4096];
    size_t len = 0;
    assert_int_equal(tt_redisasync_metrics(c.ra, m, sizeof(m), &len), 0);
    assert_non_null(strstr(m, "tether_redis_pending 0\n"));
    assert_non_null(strstr(m, "tether_redis_reply_seconds_count "));
    close_ctx(&c);
}

static void stopped_then_continued(void **state)
{
    (void)state;
    if (!ut_redis.pid)
        skip();
    struct ctx c;
    open_ctx(&c, 0);
    RUN_UNTIL(&c, tt_redisasync_up(c.ra), 2000);
    assert_true(tt_redisasync_up(c.ra));
    c.last = 0;
    tt_redisasync_cmd(c.ra, on_incr, &c, "DEL %s", "ut:s");
    RUN_UNTIL(&c, c.answered == 1, 2000);
    c.answered = c.order_bad = 0;
    assert_int_equal(kill(ut_redis.pid, SIGSTOP), 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(tt_redisasync_cmd(c.ra, on_incr, &c, "INCR %s", "ut:s"), 0);
    /* the loop runs on while Redis sleeps: a timer of ours fires, nothing is answered */
    run_for(&c, 1500);
    assert_int_equal(c.answered, 0);
    assert_int_equal(c.nulls, 0);
    assert_int_equal(kill(ut_redis.pid, SIGCONT), 0);
    RUN_UNTIL(&c, c.answered + c.nulls == 100, 3000);
    assert_int_equal(c.answered, 100);
    assert_int_equal(c.order_bad, 0);
    close_ctx(&c);
}

static void cap_and_free(void **state)
{
    (void)state;
    if (!ut_redis.pid)
        skip();
    struct ctx c;
    open_ctx(&c, 16);
    RUN_UNTIL(&c, tt_redisasync_up(c.ra), 2000);
    assert_int_equal(kill(ut_redis.pid, SIGSTOP), 0);
    c.last = 0;
    for (int i = 0; i < 16; i++)
        assert_int_equal(tt_redisasync_cmd(c.ra, on_incr, &c, "INCR %s", "ut:c"), 0);
    assert_int_equal(tt_redisasync_cmd(c.ra, on_incr, &c, "INCR %s", "ut:c"), TETHER_ERR_CAPACITY);
    assert_true(tt_redisasync_busy(c.ra, 1));
    struct tt_redisasync_stats st;
    tt_redisasync_stats(c.ra, &st);
    assert_int_equal(st.full, 1);
    /* freed with 16 in flight: each callback gets NULL, at once */
    tt_redisasync_free(c.ra);
    c.ra = NULL;
    assert_int_equal(c.nulls, 16);
    assert_int_equal(kill(ut_redis.pid, SIGCONT), 0);
    close_ctx(&c);
}

static void killed_and_back(void **state)
{
    (void)state;
    if (!ut_redis.pid)
        skip();
    struct ctx c;
    open_ctx(&c, 0);
    RUN_UNTIL(&c, tt_redisasync_up(c.ra), 2000);
    assert_int_equal(kill(ut_redis.pid, SIGSTOP), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(tt_redisasync_cmd(c.ra, on_incr, &c, "INCR %s", "ut:k"), 0);
    ut_redis_stop(); /* the connection resets: the 10 complete with NULL */
    RUN_UNTIL(&c, c.nulls == 10, 3000);
    assert_int_equal(c.nulls, 10);
    assert_false(tt_redisasync_up(c.ra));
    RUN_UNTIL(&c, false, 50);
    assert_int_equal(tt_redisasync_cmd(c.ra, on_incr, &c, "PING"), TETHER_ERR_IO);
    ut_redis_start();
    RUN_UNTIL(&c, tt_redisasync_up(c.ra), 8000); /* the back-off: 0.5 s, 1 s, ... */
    assert_true(tt_redisasync_up(c.ra));
    struct tt_redisasync_stats st;
    tt_redisasync_stats(c.ra, &st);
    assert_true(st.reconnects >= 1);
    close_ctx(&c);
}

/* A command unanswered for TT_REDISASYNC_TIMEOUT_MS: the connection is dropped, the command
 * completes with NULL, and the connection comes back once Redis answers again. */
static void command_timeout(void **state)
{
    (void)state;
    if (!ut_redis.pid)
        skip();
    struct ctx c;
    open_ctx(&c, 0);
    RUN_UNTIL(&c, tt_redisasync_up(c.ra), 2000);
    assert_int_equal(kill(ut_redis.pid, SIGSTOP), 0);
    assert_int_equal(tt_redisasync_cmd(c.ra, on_incr, &c, "PING"), 0);
    RUN_UNTIL(&c, c.nulls == 1, TT_REDISASYNC_TIMEOUT_MS + 2000);
    assert_int_equal(c.nulls, 1);
    struct tt_redisasync_stats st;
    tt_redisasync_stats(c.ra, &st);
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(kill(ut_redis.pid, SIGCONT), 0);
    RUN_UNTIL(&c, tt_redisasync_up(c.ra), 8000);
    assert_true(tt_redisasync_up(c.ra));
    close_ctx(&c);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pipelined),       cmocka_unit_test(stopped_then_continued),
        cmocka_unit_test(cap_and_free),    cmocka_unit_test(killed_and_back),
        cmocka_unit_test(command_timeout),
    };
    return cmocka_run_group_tests(tests, ut_redis_setup, ut_redis_teardown);
}
