/* test_tickets.c - unit tests for src/relay/cluster/tickets.c against a real redis-server started
 * here (skipped when there is none): the synchronous read at start makes E's and E+1's keys; an
 * asynchronous refresh returns at once, and its replies put the next epoch's key into the ring
 * (the key another node wrote first wins); with Redis stopped (SIGSTOP) the refresh stays in
 * flight while the loop runs, the keys held stay, a refresh due meanwhile is skipped and counted
 * as failed, and after SIGCONT the key comes; with Redis gone the failure is counted and the
 * keys held stay; the connection freed with a refresh in flight (shutdown): it ends failed,
 * nothing leaks; no connection: counted as failed. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <uv.h>

#include "common/tls.h"
#include "relay/cluster/tickets.h"
#include "support_loop.h"
#include "support_redis.h"

#define PERIOD 3600u

struct ctx {
    uv_loop_t loop;
    uv_timer_t guard, wait;
    struct tt_redis_url u;
    struct tt_redisconn rc;
    struct tt_redisasync *ra;
    bool waited;
};

static void open_ctx(struct ctx *c)
{
    char err[TT_ERRLEN];
    memset(c, 0, sizeof(*c));
    snprintf(c->u.host, sizeof(c->u.host), "127.0.0.1");
    c->u.port = (uint16_t)ut_redis.port;
    assert_int_equal(uv_loop_init(&c->loop), 0);
    ut_start_guard(&c->loop, &c->guard);
    assert_int_equal(tt_redisconn_open(&c->rc, &c->u, err), 0);
    assert_int_equal(tt_redisasync_new(&c->ra, &c->loop, &c->u, 0, err), 0);
    uv_timer_init(&c->loop, &c->wait);
    c->wait.data = c;
    tt_tls_tickets_configure(PERIOD, true);
}

static void close_ctx(struct ctx *c)
{
    tt_redisasync_free(c->ra);
    tt_redisconn_close(&c->rc);
    uv_close((uv_handle_t *)&c->wait, NULL);
    ut_finish_loop(&c->loop, &c->guard);
}

static void on_waited(uv_timer_t *t)
{
    ((struct ctx *)t->data)->waited = true;
}

static void run_for(struct ctx *c, uint64_t ms)
{
    c->waited = false;
    uv_timer_start(&c->wait, on_waited, ms, 0);
    while (!c->waited)
        uv_run(&c->loop, UV_RUN_ONCE);
}

#define RUN_UNTIL(c, cond, ms)                                                                     \
    do {                                                                                           \
        for (int i_ = 0; i_ < (ms) / 10 && !(cond); i_++)                                          \
            run_for((c), 10);                                                                      \
    } while (0)

/* The ring's key of epoch e, or NULL. */
static const struct tt_tls_ticket_key *held(int64_t e)
{
    const struct tt_tls_ticket_ring *ring = tt_tls_tickets();
    for (size_t i = 0; i < TT_TLS_TICKET_SLOTS; i++)
        if (ring->slot[i].set && ring->slot[i].epoch == e)
            return &ring->slot[i];
    return NULL;
}

/* The key of epoch e as Redis holds it (synchronously, from the test): 1 found, 0 none. */
static int redis_key(struct ctx *c, int64_t e, uint8_t m[TT_TLS_TICKET_KEYLEN])
{
    redisReply *rep =
        tt_redisconn_cmd(&c->rc, "GET tether:tls:ticket:%u:%lld", PERIOD, (long long)e);
    assert_non_null(rep);
    int found = rep->type == REDIS_REPLY_STRING && rep->len == TT_TLS_TICKET_KEYLEN;
    if (found)
        memcpy(m, rep->str, TT_TLS_TICKET_KEYLEN);
    freeReplyObject(rep);
    return found;
}

static struct tt_tls_stats stats_now(void)
{
    struct tt_tls_stats st;
    tt_tls_stats_get(&st);
    return st;
}

static void sync_start_then_async_turn(void **state)
{
    (void)state;
    if (!ut_redis.pid)
        skip();
    struct ctx c;
    open_ctx(&c);
    int64_t now = (int64_t)time(NULL), e = now / PERIOD;
    uint8_t m[TT_TLS_TICKET_KEYLEN];
    struct tt_tls_stats st0 = stats_now();

    /* start-up: E's and E+1's made (SET NX) and read back; E-1's is not in Redis */
    tt_cluster_tickets_refresh(&c.rc, now);
    assert_non_null(held(e));
    assert_non_null(held(e + 1));
    assert_null(held(e - 1));
    assert_int_equal(redis_key(&c, e, m), 1);
    assert_memory_equal(m, held(e)->material, TT_TLS_TICKET_KEYLEN);
    assert_int_equal(stats_now().keys_shared, st0.keys_shared + 2);

    /* the next epoch, whose E+1 key another node wrote first: the asynchronous refresh returns
     * at once with the replies due, and they put that node's key in */
    uint8_t theirs[TT_TLS_TICKET_KEYLEN];
    memset(theirs, 0x5a, sizeof(theirs));
    redisReply *rep = tt_redisconn_cmd(&c.rc, "SET tether:tls:ticket:%u:%lld %b EX 60", PERIOD,
                                       (long long)(e + 2), (const char *)theirs, sizeof(theirs));
    assert_non_null(rep);
    freeReplyObject(rep);
    int64_t later = now + PERIOD;
    assert_int_equal(tt_cluster_tickets_refresh_async(c.ra, later), 0);
    assert_true(tt_cluster_tickets_inflight());
    assert_null(held(e + 2)); /* nothing waited for */
    RUN_UNTIL(&c, !tt_cluster_tickets_inflight(), 5000);
    assert_false(tt_cluster_tickets_inflight());
    assert_non_null(held(e + 2));
    assert_memory_equal(theirs, held(e + 2)->material, TT_TLS_TICKET_KEYLEN);
    assert_non_null(held(e + 1));
    assert_non_null(held(e));
    assert_int_equal(stats_now().share_failures, st0.share_failures);

    /* nothing missing: no round */
    assert_int_equal(tt_cluster_tickets_refresh_async(c.ra, later), 0);
    assert_false(tt_cluster_tickets_inflight());
    close_ctx(&c);
}

static void stopped_then_continued(void **state)
{
    (void)state;
    if (!ut_redis.pid)
        skip();
    struct ctx c;
    open_ctx(&c);
    int64_t now = (int64_t)time(NULL), e = now / PERIOD;
    tt_cluster_tickets_refresh(&c.rc, now);
    assert_non_null(held(e + 1));
    RUN_UNTIL(&c, tt_redisasync_up(c.ra), 3000);
    assert_true(tt_redisasync_up(c.ra));
    uint8_t kept[TT_TLS_TICKET_KEYLEN];
    memcpy(kept, held(e + 1)->material, sizeof(kept));
    struct tt_tls_stats st0 = stats_now();

    /* Redis sleeps across the turn to E+1: the refresh (E+2's key) waits, the loop runs */
    kill(ut_redis.pid, SIGSTOP);
    int64_t later = now + PERIOD;
    assert_int_equal(tt_cluster_tickets_refresh_async(c.ra, later), 0);
    run_for(&c, 500);
    assert_true(tt_cluster_tickets_inflight());
    assert_null(held(e + 2));
    assert_non_null(held(e + 1)); /* the keys held go on being used */
    assert_memory_equal(kept, held(e + 1)->material, sizeof(kept));
    /* the next one due: skipped (not queued), counted */
    assert_int_equal(tt_cluster_tickets_refresh_async(c.ra, later), 1);
    assert_int_equal(stats_now().share_failures, st0.share_failures + 1);
    kill(ut_redis.pid, SIGCONT);
    RUN_UNTIL(&c, !tt_cluster_tickets_inflight(), 8000);
    assert_false(tt_cluster_tickets_inflight());
    assert_non_null(held(e + 2));
    assert_int_equal(stats_now().share_failures, st0.share_failures + 1);
    close_ctx(&c);
}

static void redis_gone_keys_kept(void **state)
{
    (void)state;
    if (!ut_redis.pid)
        skip();
    struct ctx c;
    open_ctx(&c);
    int64_t now = (int64_t)time(NULL), e = now / PERIOD;
    tt_cluster_tickets_refresh(&c.rc, now);
    RUN_UNTIL(&c, tt_redisasync_up(c.ra), 3000);
    struct tt_tls_stats st0 = stats_now();

    /* no connection at all: counted, nothing changes */
    assert_int_equal(tt_cluster_tickets_refresh_async(NULL, now + PERIOD), -1);
    assert_int_equal(stats_now().share_failures, st0.share_failures + 1);

    /* Redis killed: the commands get no answer (or are refused at once): counted, keys kept */
    ut_redis_stop();
    tt_cluster_tickets_refresh_async(c.ra, now + PERIOD);
    RUN_UNTIL(&c, !tt_cluster_tickets_inflight(), 8000);
    assert_false(tt_cluster_tickets_inflight());
    assert_int_equal(stats_now().share_failures, st0.share_failures + 2);
    assert_non_null(held(e));
    assert_non_null(held(e + 1));
    assert_null(held(e + 2));
    /* and again while down: refused at once, counted */
    assert_int_equal(tt_cluster_tickets_refresh_async(c.ra, now + PERIOD), 0);
    assert_false(tt_cluster_tickets_inflight());
    assert_int_equal(stats_now().share_failures, st0.share_failures + 3);
    close_ctx(&c);
    ut_redis_start(); /* for any test after this one */
}

static void freed_with_refresh_in_flight(void **state)
{
    (void)state;
    if (!ut_redis.pid)
        skip();
    struct ctx c;
    open_ctx(&c);
    int64_t now = (int64_t)time(NULL), e = now / PERIOD;
    tt_cluster_tickets_refresh(&c.rc, now);
    RUN_UNTIL(&c, tt_redisasync_up(c.ra), 3000);
    struct tt_tls_stats st0 = stats_now();

    /* Redis stopped, a refresh due, then the connection freed (shutdown): its replies come
     * with NULL, the refresh ends failed, nothing leaks, the keys held stay */
    kill(ut_redis.pid, SIGSTOP);
    assert_int_equal(tt_cluster_tickets_refresh_async(c.ra, now + PERIOD), 0);
    run_for(&c, 100);
    assert_true(tt_cluster_tickets_inflight());
    tt_redisasync_free(c.ra);
    c.ra = NULL;
    assert_false(tt_cluster_tickets_inflight());
    assert_int_equal(stats_now().share_failures, st0.share_failures + 1);
    assert_non_null(held(e + 1));
    kill(ut_redis.pid, SIGCONT);
    close_ctx(&c);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sync_start_then_async_turn),
        cmocka_unit_test(stopped_then_continued),
        cmocka_unit_test(freed_with_refresh_in_flight),
        cmocka_unit_test(redis_gone_keys_kept),
    };
    return cmocka_run_group_tests(tests, ut_redis_setup, ut_redis_teardown);
}
