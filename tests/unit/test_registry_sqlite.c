/* test_registry_mem.c - unit tests for src/relay/registry_mem.c (and strmap.c beneath it):
 * put/get/find_label/del, label ownership, updates that change the label, and foreach. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "tether_err.h"
#include "relay/registry.h"
#include "relay/strmap.h"

static struct tt_reg_device rec(const char *name, const char *label)
{
    struct tt_reg_device d;
    memset(&d, 0, sizeof(d));
    snprintf(d.name, sizeof(d.name), "%s", name);
    snprintf(d.label, sizeof(d.label), "%s", label);
    return d;
}

static int count_cb(const struct tt_reg_device *d, void *ud)
{
    (void)d;
    (*(int *)ud)++;
    return 0;
}

static void test_registry(void **state)
{
    struct tt_registry *r = tt_registry_mem_new();
    struct tt_reg_device d = rec("dev1", "label1"), out;
    (void)state;
    assert_non_null(r);
    d.nports = 1;
    snprintf(d.ports[0].service, sizeof(d.ports[0].service), "ssh");
    d.ports[0].port = 20001;
    assert_int_equal(tt_registry_put(r, &d), 0);
    assert_int_equal(tt_registry_get(r, "dev1", &out), 0);
    assert_string_equal(out.label, "label1");
    assert_int_equal(out.ports[0].port, 20001);
    assert_int_equal(tt_registry_find_label(r, "label1", &out), 0);
    assert_string_equal(out.name, "dev1");
    assert_int_equal(tt_registry_get(r, "dev2", &out), TETHER_ERR_NOT_FOUND);
    /* another name cannot take label1 */
    struct tt_reg_device e = rec("dev2", "label1");
    assert_int_equal(tt_registry_put(r, &e), TETHER_ERR_INVAL);
    e = rec("dev2", "label2");
    assert_int_equal(tt_registry_put(r, &e), 0);
    /* dev1 moves to label3: label1 becomes free */
    d = rec("dev1", "label3");
    d.offline_since = 12345;
    assert_int_equal(tt_registry_put(r, &d), 0);
    assert_int_equal(tt_registry_find_label(r, "label1", &out), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_registry_find_label(r, "label3", &out), 0);
    assert_int_equal(out.offline_since, 12345);
    int n = 0;
    assert_int_equal(tt_registry_foreach(r, count_cb, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(tt_registry_del(r, "dev1"), 0);
    assert_int_equal(tt_registry_del(r, "dev1"), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_registry_find_label(r, "label3", &out), TETHER_ERR_NOT_FOUND);
    tt_registry_free(r);
}

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
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_strmap_grow_and_delete),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
