/* test_strmap.c - unit tests for src/relay/strmap.c: growth, replacement, deleting the
 * current entry from foreach, and the walk a slice at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "relay/strmap.h"

static int del_cb(const char *key, void *val, void *ud)
{
    (void)val;
    tt_strmap_del(ud, key);
    return 0;
}

static int count_cb(const char *key, void *val, void *ud)
{
    (void)key;
    ((int *)ud)[(long)val - 1]++;
    return 0;
}

static int stop_cb(const char *key, void *val, void *ud)
{
    (void)key;
    (void)val;
    return ++*(size_t *)ud >= 3;
}

/* Slices of a walk cover every entry once per round, each slice at least max entries (whole
 * buckets), and a callback's non-zero stops it at the end of the bucket. */
static void test_strmap_walk_slices(void **state)
{
    struct tt_strmap m;
    char key[32];
    static int seen[1000];
    size_t pos = 0, total = 0;
    (void)state;
    tt_strmap_init(&m);
    assert_int_equal(tt_strmap_walk(&m, &pos, 10, count_cb, seen), 0);
    for (long i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%ld", i);
        assert_int_equal(tt_strmap_put(&m, key, (void *)(i + 1)), 0);
    }
    /* one slice as large as the map: every entry once */
    assert_int_equal(tt_strmap_walk(&m, &pos, 1000, count_cb, seen), 1000);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(seen[i], 1);
    /* slices of 64 resuming where the last stopped: every entry within 1000 + one slice */
    memset(seen, 0, sizeof(seen));
    for (int k = 0; k < 1000 && total < 1000; k++) {
        size_t n = tt_strmap_walk(&m, &pos, 64, count_cb, seen);
        assert_true(n >= 64);
        total += n;
    }
    assert_true(total >= 1000 && total < 1000 + 64 + 16);
    for (int i = 0; i < 1000; i++)
        assert_true(seen[i] == 1 || seen[i] == 2);
    size_t calls = 0;
    size_t n = tt_strmap_walk(&m, &pos, 500, stop_cb, &calls);
    assert_true(n >= 3 && n < 500);
    assert_int_equal(n, calls);
    tt_strmap_reset(&m);
}

static void test_strmap_grow_and_delete(void **state)
{
    struct tt_strmap m;
    char key[32];
    (void)state;
    tt_strmap_init(&m);
    for (long i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%ld", i);
        assert_int_equal(tt_strmap_put(&m, key, (void *)(i + 1)), 0);
    }
    assert_int_equal(tt_strmap_count(&m), 1000);
    for (long i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%ld", i);
        assert_ptr_equal(tt_strmap_get(&m, key), (void *)(i + 1));
    }
    assert_int_equal(tt_strmap_put(&m, "k5", (void *)7), 0);
    assert_ptr_equal(tt_strmap_get(&m, "k5"), (void *)7);
    assert_int_equal(tt_strmap_count(&m), 1000);
    assert_int_equal(tt_strmap_foreach(&m, del_cb, &m), 0);
    assert_int_equal(tt_strmap_count(&m), 0);
    assert_null(tt_strmap_get(&m, "k1"));
    tt_strmap_reset(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strmap_grow_and_delete),
        cmocka_unit_test(test_strmap_walk_slices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
