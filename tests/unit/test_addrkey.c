/* test_addrkey.c - unit tests for src/relay/lib/addrkey.c: IPv4 as it is, IPv6 cut to its /64,
 * IPv4-mapped IPv6 as IPv4, text and sockaddr forms agreeing, and non-addresses refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>

#include "tether_err.h"
#include "relay/lib/addrkey.h"

static void expect_ip(const char *ip, const char *want)
{
    char out[TT_ADDRKEY_LEN];
    assert_int_equal(tt_addrkey_from_ip(ip, out), 0);
    assert_string_equal(out, want);
}

static void test_addrkey_text(void **state)
{
    (void)state;
    expect_ip("192.0.2.7", "192.0.2.7");
    expect_ip("127.0.0.1", "127.0.0.1");
    expect_ip("::1", "::/64");
    expect_ip("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64");
    expect_ip("2001:db8:1:2::ffff", "2001:db8:1:2::/64");
    expect_ip("::ffff:192.0.2.7", "192.0.2.7");
    char out[TT_ADDRKEY_LEN];
    const char *bad[] = {"", "example.com", "1.2.3", "1.2.3.4:80", "2001:db8::/64", NULL};
    for (int i = 0; bad[i]; i++) {
        assert_int_equal(tt_addrkey_from_ip(bad[i], out), TETHER_ERR_INVAL);
        assert_string_equal(out, "");
    }
    assert_int_equal(tt_addrkey_from_ip(NULL, out), TETHER_ERR_INVAL);
}

static void test_addrkey_sockaddr(void **state)
{
    (void)state;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
    char a[TT_ADDRKEY_LEN], b[TT_ADDRKEY_LEN];
    assert_int_equal(uv_ip4_addr("198.51.100.9", 4242, &in), 0);
    assert_int_equal(tt_addrkey_from_sockaddr((struct sockaddr *)&in, a), 0);
    assert_string_equal(a, "198.51.100.9");
    assert_int_equal(uv_ip6_addr("2001:db8:aa:bb:1::1", 4242, &in6), 0);
    assert_int_equal(tt_addrkey_from_sockaddr((struct sockaddr *)&in6, a), 0);
    assert_int_equal(tt_addrkey_from_ip("2001:db8:aa:bb:ffff::2", b), 0);
    assert_string_equal(a, b);
    assert_int_equal(uv_ip6_addr("::ffff:10.1.2.3", 1, &in6), 0);
    assert_int_equal(tt_addrkey_from_sockaddr((struct sockaddr *)&in6, a), 0);
    assert_string_equal(a, "10.1.2.3");
    struct sockaddr other = {.sa_family = AF_UNIX};
    assert_int_equal(tt_addrkey_from_sockaddr(&other, a), TETHER_ERR_INVAL);
    assert_int_equal(tt_addrkey_from_sockaddr(NULL, a), TETHER_ERR_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addrkey_text),
        cmocka_unit_test(test_addrkey_sockaddr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
