/* test_pattern.c - unit tests for src/relay/lib/pattern.c and src/relay/lib/cidr.c: DEVICE/SERVICE
 * globs
 * ('*' never crossing the '/', '?', no blow-up on long names), pattern checks, CIDR parsing
 * (host bits refused) and membership (IPv4-mapped IPv6 as IPv4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>

#include "relay/lib/cidr.h"
#include "relay/lib/pattern.h"

static void test_pattern_match(void **state)
{
    (void)state;
    assert_true(tt_pattern_match("*/http", "cam-1", "http"));
    assert_false(tt_pattern_match("*/http", "cam-1", "ssh"));
    assert_true(tt_pattern_match("plant-7-*/ssh", "plant-7-gw", "ssh"));
    assert_false(tt_pattern_match("plant-7-*/ssh", "plant-8-gw", "ssh"));
    assert_true(tt_pattern_match("plant-7-*/*", "plant-7-", "anything"));
    assert_true(tt_pattern_match("cam-?/h*p", "cam-1", "http"));
    assert_false(tt_pattern_match("cam-?/http", "cam-10", "http"));
    assert_true(tt_pattern_match("*-gw*/s*h", "plant-gw-2", "ssh"));
    /* '*' does not cross the '/' (the device part is matched alone) */
    assert_false(tt_pattern_match("a*/x", "a", "b/x"));
    /* many stars against a long name that almost matches: no blow-up */
    char name[65];
    memset(name, 'a', 64);
    name[64] = '\0';
    assert_false(tt_pattern_match("*a*a*a*a*a*a*a*a*a*a*a*b/*", name, "x"));
    const char pats[2][TT_PATTERN_MAX + 1] = {"x/y", "*/ssh"};
    assert_true(tt_pattern_match_any(pats, 2, "gw", "ssh"));
    assert_false(tt_pattern_match_any(pats, 2, "gw", "http"));
    assert_false(tt_pattern_match_any(pats, 0, "x", "y"));
}

static void test_pattern_check(void **state)
{
    (void)state;
    char err[TT_ERRLEN];
    assert_int_equal(tt_pattern_check("*/http", err), 0);
    assert_int_equal(tt_pattern_check("plant-7-*/ssh", err), 0);
    const char *bad[] = {"", "nohttp", "/http", "dev/", "a/b/c", "a b/c", "a/\x01", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(tt_pattern_check(bad[i], err), -1);
    char longp[200];
    memset(longp, 'a', 70);
    strcpy(longp + 70, "/x");
    assert_int_equal(tt_pattern_check(longp, err), -1);
}

static void test_cidr(void **state)
{
    (void)state;
    char err[TT_ERRLEN];
    struct tt_cidr c[3];
    assert_int_equal(tt_cidr_parse("10.0.0.0/8", &c[0], err), 0);
    assert_int_equal(tt_cidr_parse("2001:db8::/32", &c[1], err), 0);
    assert_int_equal(tt_cidr_parse("192.0.2.7", &c[2], err), 0);
    assert_int_equal(c[2].bits, 32);
    struct tt_cidr x;
    assert_int_equal(tt_cidr_parse("10.0.0.1/8", &x, err), -1);
    assert_int_equal(tt_cidr_parse("10.0.0.0/33", &x, err), -1);
    assert_int_equal(tt_cidr_parse("host/8", &x, err), -1);
    assert_int_equal(tt_cidr_parse("10.0.0.0/", &x, err), -1);
    assert_int_equal(tt_cidr_parse("0.0.0.0/0", &x, err), 0);
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
    uv_ip4_addr("10.200.1.2", 1, &in);
    assert_true(tt_cidr_match_any(c, 3, (struct sockaddr *)&in));
    uv_ip4_addr("11.0.0.1", 1, &in);
    assert_false(tt_cidr_match_any(c, 3, (struct sockaddr *)&in));
    uv_ip4_addr("192.0.2.7", 1, &in);
    assert_true(tt_cidr_match_any(c, 3, (struct sockaddr *)&in));
    uv_ip4_addr("192.0.2.8", 1, &in);
    assert_false(tt_cidr_match_any(c, 3, (struct sockaddr *)&in));
    uv_ip6_addr("2001:db8:ffff::1", 1, &in6);
    assert_true(tt_cidr_match_any(c, 3, (struct sockaddr *)&in6));
    uv_ip6_addr("2001:db9::1", 1, &in6);
    assert_false(tt_cidr_match_any(c, 3, (struct sockaddr *)&in6));
    uv_ip6_addr("::ffff:10.9.9.9", 1, &in6);
    assert_true(tt_cidr_match_any(c, 3, (struct sockaddr *)&in6));
    assert_false(tt_cidr_match_any(c, 0, (struct sockaddr *)&in6));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pattern_match),
        cmocka_unit_test(test_pattern_check),
        cmocka_unit_test(test_cidr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
