/* test_cidr.c - unit tests for src/relay/lib/cidr.c: the networks of --tcp-allow (parsing, host
 * bits refused) and whether a client's address lies in one (IPv4, IPv6, IPv4-mapped IPv6, /0 and
 * odd prefix lengths). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "relay/lib/cidr.h"

static struct sockaddr_storage addr(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *b = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &a->sin_addr) == 1) {
        a->sin_family = AF_INET;
        a->sin_port = htons(4242);
    } else {
        assert_int_equal(inet_pton(AF_INET6, ip, &b->sin6_addr), 1);
        b->sin6_family = AF_INET6;
        b->sin6_port = htons(4242);
    }
    return ss;
}

static bool in(const char *nets, const char *ip)
{
    struct tt_cidr c[8];
    char err[TT_ERRLEN], buf[256], *save = NULL;
    size_t n = 0;
    snprintf(buf, sizeof(buf), "%s", nets);
    for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (tt_cidr_parse(t, &c[n], err) != 0)
            fail_msg("'%s' refused: %s", t, err);
        n++;
    }
    struct sockaddr_storage ss = addr(ip);
    return tt_cidr_match_any(c, n, (const struct sockaddr *)&ss);
}

static void test_parse(void **state)
{
    struct tt_cidr c;
    char err[TT_ERRLEN];
    (void)state;
    assert_int_equal(tt_cidr_parse("10.0.0.0/8", &c, err), 0);
    assert_int_equal(c.family, 4);
    assert_int_equal(c.bits, 8);
    assert_int_equal(tt_cidr_parse("192.0.2.7", &c, err), 0);
    assert_int_equal(c.bits, 32);
    assert_int_equal(tt_cidr_parse("2001:db8::/32", &c, err), 0);
    assert_int_equal(c.family, 6);
    assert_int_equal(c.bits, 32);
    assert_int_equal(tt_cidr_parse("::1", &c, err), 0);
    assert_int_equal(c.bits, 128);
    assert_int_equal(tt_cidr_parse("0.0.0.0/0", &c, err), 0);
    assert_int_equal(c.bits, 0);

    static const char *const bad[] = {
        "",
        "/8",
        "10.0.0.0/",
        "10.0.0.0/33",
        "10.0.0.0/-1",
        "10.0.0.0/8x",
        "10.0.0/8",
        "example.com/8",
        "::1/129",
        "10.0.0.0/ 8",
        "10.0.0.0/0008",
        "1.2.3.4/+8",
        "10.0.0.0/8/8",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (tt_cidr_parse(bad[i], &c, err) == 0)
            fail_msg("'%s' accepted", bad[i]);
        assert_non_null(strstr(err, "not an IP network"));
    }
    /* what is written is what is meant: host bits past the prefix are refused */
    assert_int_equal(tt_cidr_parse("10.0.0.1/8", &c, err), -1);
    assert_non_null(strstr(err, "past the /8 prefix"));
    assert_int_equal(tt_cidr_parse("2001:db8::1/64", &c, err), -1);
}

static void test_match(void **state)
{
    (void)state;
    assert_true(in("127.0.0.2/32", "127.0.0.2"));
    assert_false(in("127.0.0.2/32", "127.0.0.1"));
    assert_true(in("10.0.0.0/8", "10.255.1.2"));
    assert_false(in("10.0.0.0/8", "11.0.0.1"));
    assert_true(in("192.168.4.0/22", "192.168.7.255"));
    assert_false(in("192.168.4.0/22", "192.168.8.0"));
    assert_true(in("0.0.0.0/0", "203.0.113.9"));
    assert_false(in("0.0.0.0/0", "2001:db8::1")); /* an IPv4 network never takes IPv6 */
    assert_true(in("2001:db8::/32", "2001:db8:ffff::1"));
    assert_false(in("2001:db8::/32", "2001:db9::1"));
    assert_true(in("::/0", "::1"));
    assert_false(in("::/0", "127.0.0.1"));
    /* an IPv4 client on a dual-stack socket is an IPv4-mapped IPv6 address */
    assert_true(in("127.0.0.0/8", "::ffff:127.0.0.9"));
    assert_false(in("10.0.0.0/8", "::ffff:127.0.0.9"));
    /* several networks: any of them */
    assert_true(in("10.0.0.0/8 192.0.2.7 2001:db8::/32", "192.0.2.7"));
    assert_true(in("10.0.0.0/8 192.0.2.7 2001:db8::/32", "2001:db8::5"));
    assert_false(in("10.0.0.0/8 192.0.2.7 2001:db8::/32", "192.0.2.8"));
    /* none: nothing matches (the caller treats "no --tcp-allow" as "anyone") */
    struct sockaddr_storage ss = addr("127.0.0.1");
    assert_false(tt_cidr_match_any(NULL, 0, (const struct sockaddr *)&ss));
    assert_false(tt_cidr_match_any(NULL, 0, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
