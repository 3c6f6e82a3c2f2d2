/* test_hostaddr.c - unit tests for src/agent/hostaddr.c: --dns values (every accepted form and
 * the refusals, with their messages), the localhost rule of RFC 6761 (names, case, final dot,
 * look-alikes), the addresses of names that need no lookup, and the choice of resolver. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "agent/hostaddr.h"

static void dns_ok(const char *in, int family, const char *display, uint16_t port)
{
    struct tt_dns_server d;
    char err[TT_ERRLEN] = "";

    if (tt_hostaddr_parse_dns(in, &d, err) != 0)
        fail_msg("'%s' refused: %s", in, err);
    assert_int_equal(d.family, family);
    assert_int_equal(d.port, port);
    assert_string_equal(d.display, display);
}

static void dns_bad(const char *in, const char *words)
{
    struct tt_dns_server d;
    char err[TT_ERRLEN] = "";

    if (tt_hostaddr_parse_dns(in, &d, err) == 0)
        fail_msg("'%s' accepted", in);
    if (strstr(err, words) == NULL)
        fail_msg("'%s': message '%s' lacks '%s'", in, err, words);
}

static void test_parse_dns(void **state)
{
    struct tt_dns_server d;
    char err[TT_ERRLEN];
    (void)state;

    dns_ok("192.0.2.1", AF_INET, "192.0.2.1:53", 53);
    dns_ok("127.0.0.1:5353", AF_INET, "127.0.0.1:5353", 5353);
    dns_ok("10.0.0.2:1", AF_INET, "10.0.0.2:1", 1);
    dns_ok("10.0.0.2:65535", AF_INET, "10.0.0.2:65535", 65535);
    dns_ok("::1", AF_INET6, "[::1]:53", 53);
    dns_ok("2001:DB8::53", AF_INET6, "[2001:db8::53]:53", 53);
    dns_ok("[::1]", AF_INET6, "[::1]:53", 53);
    dns_ok("[2001:db8::1]:5300", AF_INET6, "[2001:db8::1]:5300", 5300);
    dns_ok("::ffff:192.0.2.1", AF_INET6, "[::ffff:192.0.2.1]:53", 53);

    assert_int_equal(tt_hostaddr_parse_dns("192.0.2.7:99", &d, err), 0);
    assert_memory_equal(d.addr, "\xc0\x00\x02\x07", 4);
    assert_int_equal(tt_hostaddr_parse_dns("[::2]", &d, err), 0);
    assert_memory_equal(d.addr, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x02", 16);

    dns_bad("", "empty");
    dns_bad("dns.example", "a name cannot be used");
    dns_bad("localhost", "not an IP address");
    dns_bad("1.2.3", "not an IP address");
    dns_bad("1.2.3.4.5", "not an IP address");
    dns_bad("256.1.1.1", "not an IP address");
    dns_bad(" 1.2.3.4", "not an IP address");
    dns_bad("1.2.3.4 ", "not an IP address");
    dns_bad("1.2.3.4:", "bad port");
    dns_bad("1.2.3.4:0", "bad port");
    dns_bad("1.2.3.4:65536", "bad port");
    dns_bad("1.2.3.4:99999999", "bad port");
    dns_bad("1.2.3.4:-1", "bad port");
    dns_bad("1.2.3.4:+53", "bad port");
    dns_bad("1.2.3.4:53 ", "bad port");
    dns_bad("1.2.3.4:0x35", "bad port");
    dns_bad("[::1", "missing ']'");
    dns_bad("[::1]53", "unexpected text");
    dns_bad("[::1]:", "bad port");
    dns_bad("[1.2.3.4]:53", "not an IPv6 address");
    dns_bad("[]", "not an IPv6 address");
    dns_bad("fe80::1%eth0", "zone index");
    dns_bad("[fe80::1%eth0]:53", "zone index");
    dns_bad("1.2.3.4%x", "zone index");
    dns_bad("::1:53:", "not an IP address");
    dns_bad("1:2", "not an IP address");
    dns_bad("0123456789012345678901234567890123456789012345678901234567890123456789", "too long");
    /* a NUL-free input is read to its end only up to the cap */
    {
        char big[4096];
        memset(big, '1', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        dns_bad(big, "too long");
    }
}

static void test_localhost(void **state)
{
    (void)state;
    assert_true(tt_hostaddr_is_localhost("localhost"));
    assert_true(tt_hostaddr_is_localhost("LocalHost"));
    assert_true(tt_hostaddr_is_localhost("localhost."));
    assert_true(tt_hostaddr_is_localhost("relay.localhost"));
    assert_true(tt_hostaddr_is_localhost("a.b.LOCALHOST"));
    assert_true(tt_hostaddr_is_localhost("x.localhost."));
    assert_true(tt_hostaddr_is_localhost("k3j9x2mq.localhost"));

    assert_false(tt_hostaddr_is_localhost(""));
    assert_false(tt_hostaddr_is_localhost("."));
    assert_false(tt_hostaddr_is_localhost("localhost.."));
    assert_false(
        tt_hostaddr_is_localhost("::6%.localhost")); /* an IPv6 literal, zone ".localhost" */
    assert_false(tt_hostaddr_is_localhost("a b.localhost"));
    assert_false(tt_hostaddr_is_localhost(".localhost"));
    assert_false(tt_hostaddr_is_localhost("a..localhost"));
    assert_false(tt_hostaddr_is_localhost("notlocalhost"));
    assert_false(tt_hostaddr_is_localhost("xlocalhost"));
    assert_false(tt_hostaddr_is_localhost("localhost.example"));
    assert_false(tt_hostaddr_is_localhost("localhost.localdomain"));
    assert_false(tt_hostaddr_is_localhost("localhos"));
    assert_false(tt_hostaddr_is_localhost("127.0.0.1"));
}

static void test_fixed(void **state)
{
    union tt_sockaddr a[4];
    char ip[64];
    (void)state;

    assert_int_equal(tt_hostaddr_fixed("localhost", 8080, a, 4), 2);
    assert_int_equal(a[0].sa.sa_family, AF_INET);
    uv_ip4_name(&a[0].in, ip, sizeof ip);
    assert_string_equal(ip, "127.0.0.1");
    assert_int_equal(ntohs(a[0].in.sin_port), 8080);
    assert_int_equal(a[1].sa.sa_family, AF_INET6);
    uv_ip6_name(&a[1].in6, ip, sizeof ip);
    assert_string_equal(ip, "::1");
    assert_int_equal(ntohs(a[1].in6.sin6_port), 8080);

    assert_int_equal(tt_hostaddr_fixed("dev.LOCALHOST.", 1, a, 1), 1); /* room for one */
    assert_int_equal(a[0].sa.sa_family, AF_INET);
    assert_int_equal(tt_hostaddr_fixed("localhost", 1, a, 0), 0);

    assert_int_equal(tt_hostaddr_fixed("192.0.2.9", 443, a, 4), 1);
    assert_int_equal(a[0].sa.sa_family, AF_INET);
    assert_int_equal(ntohs(a[0].in.sin_port), 443);
    assert_int_equal(tt_hostaddr_fixed("2001:db8::1", 443, a, 4), 1);
    assert_int_equal(a[0].sa.sa_family, AF_INET6);
    uv_ip6_name(&a[0].in6, ip, sizeof ip);
    assert_string_equal(ip, "2001:db8::1");

    assert_int_equal(tt_hostaddr_fixed("relay.example.com", 443, a, 4), 0);
    assert_int_equal(tt_hostaddr_fixed("localhost.example", 443, a, 4), 0);
    assert_int_equal(tt_hostaddr_fixed("1.2.3", 443, a, 4), 0);
    assert_int_equal(tt_hostaddr_fixed("", 443, a, 4), 0);
}

static void test_pick_mode(void **state)
{
    (void)state;
    /* --dns wins everywhere */
    assert_int_equal(tt_hostaddr_pick_mode(true, true, true), TT_RESOLVE_DNS);
    assert_int_equal(tt_hostaddr_pick_mode(true, false, true), TT_RESOLVE_DNS);
    assert_int_equal(tt_hostaddr_pick_mode(true, false, false), TT_RESOLVE_DNS);
    /* no /etc/resolv.conf: the hosts file only, whatever the build */
    assert_int_equal(tt_hostaddr_pick_mode(false, false, true), TT_RESOLVE_HOSTS);
    assert_int_equal(tt_hostaddr_pick_mode(false, false, false), TT_RESOLVE_HOSTS);
    /* the system's own resolver, or c-ares reading its files in the Android build */
    assert_int_equal(tt_hostaddr_pick_mode(false, true, true), TT_RESOLVE_SYSTEM);
    assert_int_equal(tt_hostaddr_pick_mode(false, true, false), TT_RESOLVE_FILES_DNS);

    assert_string_equal(tt_hostaddr_mode_name(TT_RESOLVE_SYSTEM), "system");
    assert_string_equal(tt_hostaddr_mode_name(TT_RESOLVE_DNS), "dns");
    assert_string_equal(tt_hostaddr_mode_name(TT_RESOLVE_FILES_DNS), "files+dns");
    assert_string_equal(tt_hostaddr_mode_name(TT_RESOLVE_HOSTS), "hosts");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_dns),
        cmocka_unit_test(test_localhost),
        cmocka_unit_test(test_fixed),
        cmocka_unit_test(test_pick_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
