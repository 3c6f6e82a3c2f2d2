/* test_strmap.c - unit tests for src/relay/strmap.c: growth, replacement, and deleting the
 * current entry from foreach. */
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
