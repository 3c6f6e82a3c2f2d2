/* test_throttle.c - unit tests for src/relay/lib/throttle.c: the token bucket (fill, refill, cap,
 * a clock that goes back, give back), the address keys of "IP", "IP:PORT" and "[IPv6]:PORT",
 * the burst then one failure a second, the LRU table (eviction at the cap, idle expiry) and the
 * log policy (one line per address per interval). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "relay/lib/throttle.h"

static void test_bucket(void **state)
{
    (void)state;
    struct tt_throttle_bucket b;
    tt_throttle_bucket_fill(&b, 3, 1000);
    for (int i = 0; i < 3; i++) {
        assert_true(tt_throttle_bucket_has(&b));
        tt_throttle_bucket_take(&b);
    }
    assert_false(tt_throttle_bucket_has(&b));
    tt_throttle_bucket_take(&b); /* empty stays empty */
    assert_int_equal(b.milli, 0);
    tt_throttle_bucket_refill(&b, 3, 2, 1499); /* 2 a second: 0.998 of a token */
    assert_false(tt_throttle_bucket_has(&b));
    tt_throttle_bucket_refill(&b, 3, 2, 1500);
    assert_true(tt_throttle_bucket_has(&b));
    tt_throttle_bucket_refill(&b, 3, 2, 100000000); /* never above the burst */
    assert_int_equal(b.milli, 3000);
    tt_throttle_bucket_take(&b);
    tt_throttle_bucket_refill(&b, 3, 2, 5); /* a clock that went back adds nothing */
    assert_int_equal(b.milli, 2000);
    assert_int_equal(b.at, 5);
    tt_throttle_bucket_give(&b, 3);
    tt_throttle_bucket_give(&b, 3);
    assert_int_equal(b.milli, 3000);
}

static void test_keys(void **state)
{
    (void)state;
    char k[TT_ADDRKEY_LEN];
    const struct {
        const char *client, *key;
    } cases[] = {
        {"192.0.2.7", "192.0.2.7"},
        {"192.0.2.7:40000", "192.0.2.7"},
        {"[2001:db8:1:2::7]:443", "2001:db8:1:2::/64"},
        {"2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"},
        {"::1", "::/64"},
        {"[::ffff:192.0.2.9]:1", "192.0.2.9"},
        {"::ffff:192.0.2.9", "192.0.2.9"},
        {"", ""},
        {"unix", ""},
        {"host.example:80", ""},
        {"[2001:db8::1", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tt_throttle_key(cases[i].client, k);
        assert_string_equal(k, cases[i].key);
    }
    tt_throttle_key(NULL, k);
    assert_string_equal(k, "");
}

static void test_burst_then_one_a_second(void **state)
{
    (void)state;
    struct tt_throttle t;
    int64_t now = 5000;
    tt_throttle_init(&t, "test attempts");
    assert_null(tt_throttle_get(&t, "", true, now)); /* not an address: not counted */
    assert_null(tt_throttle_get(&t, "192.0.2.1", false, now));
    assert_false(tt_throttle_blocked(NULL, now));
    struct tt_throttle_addr *e = tt_throttle_get(&t, "192.0.2.1", true, now);
    assert_non_null(e);
    assert_ptr_equal(tt_throttle_get(&t, "192.0.2.1", true, now), e);
    for (int i = 0; i < TT_THROTTLE_BURST; i++) {
        assert_false(tt_throttle_blocked(e, now));
        tt_throttle_fail(e, now);
    }
    assert_true(tt_throttle_blocked(e, now));
    assert_true(tt_throttle_blocked(e, now + 1000 / TT_THROTTLE_PER_SEC - 1));
    assert_false(tt_throttle_blocked(e, now + 1000 / TT_THROTTLE_PER_SEC));
    tt_throttle_fail(e, now + 1000 / TT_THROTTLE_PER_SEC);
    assert_true(tt_throttle_blocked(e, now + 1000 / TT_THROTTLE_PER_SEC));
    /* another address has its own bucket */
    struct tt_throttle_addr *o = tt_throttle_get(&t, "192.0.2.2", true, now);
    assert_false(tt_throttle_blocked(o, now));
    assert_int_equal(tt_throttle_addresses(&t), 2);
    /* a long quiet refills it whole */
    assert_false(tt_throttle_blocked(e, now + 3600000));
    tt_throttle_fail(NULL, now);
    tt_throttle_touch(&t, NULL, now);
    tt_throttle_reset(&t);
    assert_int_equal(tt_throttle_addresses(&t), 0);
}

static void test_lru_and_idle(void **state)
{
    (void)state;
    struct tt_throttle t;
    int64_t now = 1;
    tt_throttle_init(&t, "test attempts");
    for (int i = 0; i < TT_THROTTLE_MAX_ADDRS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        assert_non_null(tt_throttle_get(&t, key, true, now));
    }
    assert_int_equal(tt_throttle_addresses(&t), TT_THROTTLE_MAX_ADDRS);
    /* the oldest is touched: the next oldest goes at the cap */
    struct tt_throttle_addr *first = tt_throttle_get(&t, "10.0.0.0", false, now);
    tt_throttle_touch(&t, first, now + 1);
    assert_non_null(tt_throttle_get(&t, "192.0.2.1", true, now + 2));
    assert_int_equal(tt_throttle_addresses(&t), TT_THROTTLE_MAX_ADDRS);
    assert_int_equal(t.evicted, 1);
    assert_non_null(tt_throttle_get(&t, "10.0.0.0", false, now));
    assert_null(tt_throttle_get(&t, "10.0.0.1", false, now));
    /* idle ones are forgotten, at most 512 a sweep */
    tt_throttle_sweep(&t, now + TT_THROTTLE_IDLE_MS);
    assert_int_equal(tt_throttle_addresses(&t), TT_THROTTLE_MAX_ADDRS - 512);
    for (int i = 0; i < 200; i++)
        tt_throttle_sweep(&t, now + TT_THROTTLE_IDLE_MS);
    /* those active at now + 1 and now + 2 are not idle yet */
    assert_int_equal(tt_throttle_addresses(&t), 2);
    tt_throttle_sweep(&t, now + 2 + TT_THROTTLE_IDLE_MS);
    assert_int_equal(tt_throttle_addresses(&t), 0);
    tt_throttle_reset(&t);
}

static void test_log_policy(void **state)
{
    (void)state;
    struct tt_throttle t;
    tt_throttle_init(&t, "test attempts");
    struct tt_throttle_addr *e = tt_throttle_get(&t, "192.0.2.1", true, 1000);
    assert_true(tt_throttle_note(&t, NULL, false, 1000)); /* no entry: always logged */
    assert_true(tt_throttle_note(&t, e, false, 1000));    /* opens an interval */
    assert_false(tt_throttle_note(&t, e, false, 2000));
    assert_false(tt_throttle_note(&t, e, true, 3000));
    assert_int_equal(e->refused, 1);
    assert_int_equal(e->throttled, 1);
    assert_true(tt_throttle_note(&t, e, false, 1000 + TT_THROTTLE_LOG_MS)); /* the next one */
    assert_int_equal(e->refused, 0);
    assert_true(tt_throttle_note(&t, e, false, 10)); /* a clock that went back */
    tt_throttle_reset(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_burst_then_one_a_second),
        cmocka_unit_test(test_lru_and_idle),
        cmocka_unit_test(test_log_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
