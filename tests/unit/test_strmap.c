/* test_strmap.c - unit tests for src/relay/lib/strmap.c: growth, replacement, deleting the
 * current entry from foreach, the walk a slice at a time, and the keyed hash (two tables put
 * the same keys in different buckets; a reset table draws a new key). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "relay/lib/strmap.h"

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

struct order {
    char keys[200][8];
    size_t n;
};

static int order_cb(const char *key, void *val, void *ud)
{
    struct order *o = ud;
    (void)val;
    if (o->n < 200)
        snprintf(o->keys[o->n++], sizeof(o->keys[0]), "%s", key);
    return 0;
}

/* The order foreach visits 200 keys in: the order of their buckets, so of their hashes. */
static void fill_and_order(struct tt_strmap *m, struct order *o)
{
    char key[8];
    for (long i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "d%ld", i);
        assert_int_equal(tt_strmap_put(m, key, (void *)(i + 1)), 0);
    }
    memset(o, 0, sizeof(*o));
    assert_int_equal(tt_strmap_foreach(m, order_cb, o), 0);
    assert_int_equal(o->n, 200);
}

/* With an unkeyed hash (FNV-1a before) every table puts a name in the same bucket, so names
 * that collide once collide everywhere; a keyed hash spreads them differently per table. The
 * odds that 200 keys fall in the same order by chance are nil. */
static void test_strmap_tables_hash_differently(void **state)
{
    struct tt_strmap a, b;
    static struct order oa, ob, oc;
    (void)state;
    tt_strmap_init(&a);
    tt_strmap_init(&b);
    assert_null(tt_strmap_get(&a, "nothing yet")); /* no key needed before the first put */
    assert_null(tt_strmap_del(&a, "nothing yet"));
    fill_and_order(&a, &oa);
    fill_and_order(&b, &ob);
    assert_int_not_equal(memcmp(&oa, &ob, sizeof(oa)), 0);
    /* each table still finds its own */
    for (long i = 0; i < 200; i++) {
        char key[8];
        snprintf(key, sizeof(key), "d%ld", i);
        assert_ptr_equal(tt_strmap_get(&a, key), (void *)(i + 1));
        assert_ptr_equal(tt_strmap_get(&b, key), (void *)(i + 1));
    }
    assert_null(tt_strmap_get(&a, "d200"));
    /* a reset table gets a new key */
    tt_strmap_reset(&a);
    assert_int_equal(tt_strmap_count(&a), 0);
    fill_and_order(&a, &oc);
    assert_int_not_equal(memcmp(&oa, &oc, sizeof(oa)), 0);
    tt_strmap_reset(&a);
    tt_strmap_reset(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strmap_grow_and_delete),
        cmocka_unit_test(test_strmap_walk_slices),
        cmocka_unit_test(test_strmap_tables_hash_differently),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
