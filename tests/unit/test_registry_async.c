/* test_registry_async.c - unit tests for the registry's asynchronous forms
 * (src/relay/store/registry_async.c, and registry_redis.c's over store/redisasync.c):
 * SQLite completes at once (the callback runs before the call returns); the lookup's answers
 * (record, device key, key counts, whether a label is free); the view devauth decides on;
 * withdrawing a key only while it is still that key's; and against a real redis-server started
 * here (skipped without one): the same operations pipelined, a label conflict, and the registry
 * freed with operations in flight (Redis stopped): every callback gets TETHER_ERR_IO, which is
 * what a registration whose connection went away sees (device.c's cancellation rule). */
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
#include "relay/store/redisconn.h"
#include "relay/store/registry.h"
#include "support_loop.h"
#include "support_redis.h"

static struct tt_reg_device rec(const char *name, const char *label, bool key, uint8_t kb)
{
    struct tt_reg_device d;
    memset(&d, 0, sizeof(d));
    snprintf(d.name, sizeof(d.name), "%s", name);
    snprintf(d.label, sizeof(d.label), "%s", label);
    d.last_seen = 1000;
    if (key) {
        d.set_key = true;
        memset(d.key_hash, kb, sizeof(d.key_hash));
    }
    return d;
}

struct res {
    int calls, rc;
    struct tt_reg_lookup *q;
};

static void done(int rc, void *ud)
{
    struct res *r = ud;
    r->calls++;
    r->rc = rc;
}

static void looked(struct tt_reg_lookup *q, void *ud)
{
    struct res *r = ud;
    r->calls++;
    r->q = q;
}

static void lookup_of(struct tt_reg_lookup *q, const char *name, const char *label)
{
    memset(q, 0, sizeof(*q));
    snprintf(q->name, sizeof(q->name), "%s", name);
    snprintf(q->label, sizeof(q->label), "%s", label);
}

/* ---- SQLite: at once */

static void sqlite_completes_at_once(void **state)
{
    (void)state;
    char err[TT_ERRLEN];
    struct tt_registry *reg = tt_registry_sqlite_open(":memory:", err);
    assert_non_null(reg);
    struct tt_reg_device d = rec("cam", "lbl1", true, 7);
    d.nports = 1;
    snprintf(d.ports[0].service, sizeof(d.ports[0].service), "ssh");
    d.ports[0].port = 20001;
    struct res r = {0};
    assert_int_equal(tt_registry_put_async(reg, &d, done, &r), 0);
    assert_int_equal(r.calls, 1); /* before the call returned */
    assert_int_equal(r.rc, 0);

    struct tt_reg_lookup q;
    lookup_of(&q, "cam", "lbl1");
    memset(&r, 0, sizeof(r));
    assert_int_equal(tt_registry_lookup(reg, &q, looked, &r), 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(q.get_rc, 0);
    assert_string_equal(q.dev.label, "lbl1");
    assert_int_equal(q.key_rc, 0);
    assert_int_equal(q.key_hash[0], 7);
    assert_int_equal(q.counts_rc, TETHER_ERR_AGAIN); /* SQLite: read when asked (a scan) */
    assert_int_equal(q.label_rc, 0);                 /* held */

    lookup_of(&q, "new", "free1");
    assert_int_equal(tt_registry_lookup(reg, &q, looked, &r), 0);
    assert_int_equal(q.get_rc, TETHER_ERR_NOT_FOUND);
    assert_int_equal(q.key_rc, TETHER_ERR_NOT_FOUND);
    assert_int_equal(q.label_rc, TETHER_ERR_NOT_FOUND);

    /* the view answers from the lookup */
    struct tt_reg_view v;
    struct tt_registry *view = tt_registry_view(&v, &q, reg);
    struct tt_reg_device out;
    uint8_t h[32];
    uint64_t names, ports;
    assert_int_equal(tt_registry_get(view, "new", &out), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_registry_get(view, "cam", &out), TETHER_ERR_NOT_FOUND); /* not asked */
    assert_int_equal(tt_registry_key_get(view, "new", h), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_registry_key_counts(view, &names, &ports), 0); /* from reg */
    assert_int_equal(names, 1);
    assert_int_equal(ports, 1);
    assert_int_equal(tt_registry_find_label(view, "free1", &out), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_registry_put(view, &d), TETHER_ERR_IO); /* read-only */
    q.label_rc = TETHER_ERR_IO; /* a failed lookup: no label is known free */
    assert_int_equal(tt_registry_find_label(view, "other", &out), TETHER_ERR_IO);
    tt_registry_free(view); /* nothing to free: the caller's */

    /* withdraw the key only while it is that key's */
    uint8_t wrong[32], right[32];
    memset(wrong, 9, sizeof(wrong));
    memset(right, 7, sizeof(right));
    memset(&r, 0, sizeof(r));
    assert_int_equal(tt_registry_key_del_if_async(reg, "cam", wrong, done, &r), 0);
    assert_int_equal(r.rc, TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_registry_key_get(reg, "cam", h), 0);
    assert_int_equal(tt_registry_key_del_if_async(reg, "cam", right, done, &r), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(tt_registry_key_get(reg, "cam", h), TETHER_ERR_NOT_FOUND);

    assert_int_equal(tt_registry_del_async(reg, "cam", done, &r), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(tt_registry_del_async(reg, "cam", done, &r), 0);
    assert_int_equal(r.rc, TETHER_ERR_NOT_FOUND);
    assert_false(tt_registry_busy(reg, 1));
    tt_registry_stop_async(reg); /* none: nothing happens */
    tt_registry_free(reg);
}

/* ---- the operator's delete (tt_registry_erase_async) */

struct eres {
    int calls;
    struct tt_reg_erased e;
};

static void erased(const struct tt_reg_erased *e, void *ud)
{
    struct eres *r = ud;
    r->calls++;
    r->e = *e;
}

/* The same checks on either backend: run(ctx, calls, want) runs until *calls is want (SQLite:
 * nothing to run, every callback was called before its call returned). */
static void erase_checks(struct tt_registry *reg,
                         void (*run)(void *ctx, const int *calls, int want), void *ctx)
{
    struct tt_reg_device held = rec("eh", "elh", true, 4), old = rec("eo", "elo", false, 0),
                         fresh = rec("ef", "elf", true, 5);
    held.nports = 1;
    snprintf(held.ports[0].service, sizeof(held.ports[0].service), "ssh");
    held.ports[0].port = 20011;
    old.offline_since = 1000; /* past the cutoff below */
    fresh.offline_since = 5000;
    struct res r = {0};
    assert_int_equal(tt_registry_put_async(reg, &held, done, &r), 0);
    assert_int_equal(tt_registry_put_async(reg, &old, done, &r), 0);
    assert_int_equal(tt_registry_put_async(reg, &fresh, done, &r), 0);
    run(ctx, &r.calls, 3);
    assert_int_equal(r.calls, 3);
    struct eres e1 = {0}, e2 = {0}, e3 = {0}, e4 = {0}, e5 = {0};
    /* a shown record with a key: both go, label and port free */
    assert_int_equal(tt_registry_erase_async(reg, "eh", 2000, false, erased, &e1), 0);
    /* offline since the cutoff or earlier: not shown, left to the expiry (unless forced) */
    assert_int_equal(tt_registry_erase_async(reg, "eo", 2000, false, erased, &e2), 0);
    /* offline after the cutoff: shown */
    assert_int_equal(tt_registry_erase_async(reg, "ef", 2000, false, erased, &e3), 0);
    /* unknown */
    assert_int_equal(tt_registry_erase_async(reg, "nobody", 2000, false, erased, &e4), 0);
    run(ctx, &e4.calls, 1); /* the last sent: answered last */
    assert_int_equal(e1.e.rc, 0);
    assert_true(e1.e.key && e1.e.record);
    assert_string_equal(e1.e.label, "elh");
    assert_int_equal(e2.e.rc, 0);
    assert_false(e2.e.key || e2.e.record);
    assert_int_equal(e3.e.rc, 0);
    assert_true(e3.e.key && e3.e.record);
    assert_int_equal(e4.e.rc, 0);
    assert_false(e4.e.key || e4.e.record);
    assert_int_equal(tt_registry_erase_async(reg, "eo", 2000, true, erased, &e5), 0);
    run(ctx, &e5.calls, 1);
    assert_true(!e5.e.key && e5.e.record);
    assert_string_equal(e5.e.label, "elo");
    /* what is left: no record, label, port or key of theirs */
    struct tt_reg_device out;
    uint8_t h[32];
    uint64_t names = 9, ports = 9;
    assert_int_equal(tt_registry_get(reg, "eh", &out), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_registry_get(reg, "eo", &out), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_registry_find_label(reg, "elh", &out), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_registry_key_get(reg, "eh", h), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_registry_key_get(reg, "ef", h), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_registry_key_counts(reg, &names, &ports), 0);
    assert_int_equal(names, 0);
    assert_int_equal(ports, 0);
    /* the port is free for another name */
    struct tt_reg_device other = rec("ex", "elx", false, 0);
    other.nports = 1;
    snprintf(other.ports[0].service, sizeof(other.ports[0].service), "ssh");
    other.ports[0].port = 20011;
    assert_int_equal(tt_registry_put(reg, &other), 0);
}

static void run_none(void *ctx, const int *calls, int want)
{
    (void)ctx;
    assert_int_equal(*calls, want);
}

static void sqlite_erase(void **state)
{
    (void)state;
    char err[TT_ERRLEN];
    struct tt_registry *reg = tt_registry_sqlite_open(":memory:", err);
    assert_non_null(reg);
    erase_checks(reg, run_none, NULL);
    tt_registry_free(reg);
}

/* ---- Redis: pipelined, through the loop */

struct rctx {
    uv_loop_t loop;
    uv_timer_t guard;
    struct tt_redisconn rc;
    struct tt_registry *reg;
};

static void ropen(struct rctx *c)
{
    char err[TT_ERRLEN];
    struct tt_redis_url u;
    memset(&u, 0, sizeof(u));
    snprintf(u.host, sizeof(u.host), "127.0.0.1");
    u.port = (uint16_t)ut_redis.port;
    assert_int_equal(uv_loop_init(&c->loop), 0);
    ut_start_guard(&c->loop, &c->guard);
    assert_int_equal(tt_redisconn_open(&c->rc, &u, err), 0);
    c->reg = tt_registry_redis_new(&c->rc, "node-u");
    assert_non_null(c->reg);
    assert_int_equal(tt_registry_redis_async(c->reg, &c->loop, &u, 0, err), 0);
    assert_non_null(tt_registry_redis_conn(c->reg));
}

static void rclose(struct rctx *c)
{
    tt_registry_free(c->reg);
    tt_redisconn_close(&c->rc);
    ut_finish_loop(&c->loop, &c->guard);
}

static void run_until(struct rctx *c, const int *calls, int want)
{
    for (int i = 0; i < 5000 && *calls < want; i++)
        uv_run(&c->loop, UV_RUN_NOWAIT), usleep(1000);
    assert_int_equal(*calls, want);
}

static void redis_pipelined(void **state)
{
    (void)state;
    if (!ut_redis.pid)
        skip();
    struct rctx c;
    ropen(&c);
    struct tt_reg_device a = rec("ua", "la", true, 3), b = rec("ub", "la", false, 0);
    struct res ra = {0}, rb = {0}, rl = {0};
    struct tt_reg_lookup q;
    lookup_of(&q, "ua", "la");
    /* three in flight at once, answered in order: a's put, b's conflicting put, the lookup */
    assert_int_equal(tt_registry_put_async(c.reg, &a, done, &ra), 0);
    assert_int_equal(tt_registry_put_async(c.reg, &b, done, &rb), 0);
    assert_int_equal(tt_registry_lookup(c.reg, &q, looked, &rl), 0);
    assert_int_equal(ra.calls + rb.calls + rl.calls, 0); /* not at once: through the loop */
    run_until(&c, &rl.calls, 1);
    assert_int_equal(ra.rc, 0);
    assert_int_equal(rb.rc, TETHER_ERR_INVAL); /* the label is a's */
    assert_int_equal(q.get_rc, 0);
    assert_string_equal(q.dev.label, "la");
    assert_string_equal(q.dev.node, "node-u");
    assert_int_equal(q.key_rc, 0);
    assert_int_equal(q.key_hash[31], 3);
    assert_int_equal(q.counts_rc, 0);
    assert_int_equal(q.names, 1);
    assert_int_equal(q.label_rc, 0);
    uint8_t wrong[32], right[32];
    memset(wrong, 1, sizeof(wrong));
    memset(right, 3, sizeof(right));
    struct res rk = {0}, rk2 = {0}, rd = {0}, rd2 = {0};
    assert_int_equal(tt_registry_key_del_if_async(c.reg, "ua", wrong, done, &rk), 0);
    assert_int_equal(tt_registry_key_del_if_async(c.reg, "ua", right, done, &rk2), 0);
    assert_int_equal(tt_registry_del_async(c.reg, "ua", done, &rd), 0);
    assert_int_equal(tt_registry_del_async(c.reg, "ua", done, &rd2), 0);
    run_until(&c, &rd2.calls, 1);
    assert_int_equal(rk.rc, TETHER_ERR_NOT_FOUND);
    assert_int_equal(rk2.rc, 0);
    assert_int_equal(rd.rc, 0);
    assert_int_equal(rd2.rc, TETHER_ERR_NOT_FOUND);
    /* the counts for /metrics, never waiting: the last lookup's (a's key: one name), and a
     * lookup sent to read them again (a's key is gone by now: none) */
    uint64_t names = 9, ports = 9;
    assert_int_equal(tt_registry_key_counts_nowait(c.reg, &names, &ports), 0);
    assert_int_equal(names, 1);
    struct res rz = {0};
    struct tt_reg_lookup qz;
    lookup_of(&qz, "zz", "");
    assert_int_equal(tt_registry_lookup(c.reg, &qz, looked, &rz), 0); /* behind the refresh */
    run_until(&c, &rz.calls, 1);
    assert_int_equal(tt_registry_key_counts_nowait(c.reg, &names, &ports), 0);
    assert_int_equal(names, 0);
    char m[4096];
    size_t len = 0;
    assert_int_equal(tt_registry_async_metrics(c.reg, m, sizeof(m), &len), 0);
    assert_non_null(strstr(m, "tether_redis_commands_total "));
    rclose(&c);
}

static void run_redis(void *ctx, const int *calls, int want)
{
    run_until(ctx, calls, want);
}

static void redis_erase(void **state)
{
    (void)state;
    if (!ut_redis.pid)
        skip();
    struct rctx c;
    ropen(&c);
    erase_checks(c.reg, run_redis, &c);
    rclose(&c);
}

static void redis_freed_in_flight(void **state)
{
    (void)state;
    if (!ut_redis.pid)
        skip();
    struct rctx c;
    ropen(&c);
    struct res r0 = {0};
    struct tt_reg_lookup q0;
    lookup_of(&q0, "x", "");
    assert_int_equal(tt_registry_lookup(c.reg, &q0, looked, &r0), 0);
    run_until(&c, &r0.calls, 1); /* up */
    assert_int_equal(kill(ut_redis.pid, SIGSTOP), 0);
    struct res rp = {0}, rl = {0};
    struct tt_reg_device a = rec("uc", "lc", false, 0);
    struct tt_reg_lookup q;
    lookup_of(&q, "uc", "lc");
    assert_int_equal(tt_registry_put_async(c.reg, &a, done, &rp), 0);
    assert_int_equal(tt_registry_lookup(c.reg, &q, looked, &rl), 0);
    for (int i = 0; i < 20; i++)
        uv_run(&c.loop, UV_RUN_NOWAIT), usleep(1000);
    assert_int_equal(rp.calls + rl.calls, 0); /* Redis sleeps */
    /* shutdown with both in flight: each callback runs now, with an error */
    tt_registry_stop_async(c.reg);
    assert_int_equal(rp.calls, 1);
    assert_int_equal(rp.rc, TETHER_ERR_IO);
    assert_int_equal(rl.calls, 1);
    assert_int_equal(q.get_rc, TETHER_ERR_IO);
    assert_int_equal(q.label_rc, TETHER_ERR_IO);
    assert_null(tt_registry_redis_conn(c.reg));
    assert_int_equal(kill(ut_redis.pid, SIGCONT), 0);
    rclose(&c);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sqlite_completes_at_once),
        cmocka_unit_test(redis_pipelined),
        cmocka_unit_test(redis_freed_in_flight),
        cmocka_unit_test(sqlite_erase),
        cmocka_unit_test(redis_erase),
    };
    return cmocka_run_group_tests(tests, ut_redis_setup, ut_redis_teardown);
}
