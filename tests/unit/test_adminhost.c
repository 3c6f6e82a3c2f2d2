/* test_adminhost.c - unit tests for src/relay/admin/adminhost.c: which Host values name the admin
 * listener (DNS rebinding: 421 otherwise) and which Origin values are its own (a state-changing
 * request from any other is refused). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "relay/admin/adminhost.h"

static bool host_ok(const char *listen, const char *local, const char *v)
{
    struct tt_adminhost a = {.listen_ip = listen, .local_ip = local};
    return tt_adminhost_host_ok(&a, v, strlen(v));
}

static bool origin_ok(const char *listen, const char *origin, const char *host)
{
    struct tt_adminhost a = {.listen_ip = listen, .local_ip = listen};
    return tt_adminhost_origin_ok(&a, origin, strlen(origin), host, strlen(host));
}

static void test_loopback_listener(void **state)
{
    (void)state;
    const char *ok[] = {"127.0.0.1:9090", "127.0.0.1",  "localhost", "localhost:9090",
                        "LocalHost:1",    "[::1]:9090", "[::1]",     " 127.0.0.1:9090 "};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_true(host_ok("127.0.0.1", "127.0.0.1", ok[i]));
    const char *bad[] = {"evil.example",
                         "evil.example:9090",
                         "127.0.0.1.evil.example",
                         "localhost.evil.example:9090",
                         "evil.localhost:9090",
                         "10.0.0.1:9090",
                         "127.0.0.2:9090",
                         "[::2]:9090",
                         "::1",
                         "[127.0.0.1]:9090",
                         "127.1:9090",
                         "127.0.0.1:",
                         "127.0.0.1:0",
                         "127.0.0.1:65536",
                         "127.0.0.1:90x",
                         "127.0.0.1:9090:1",
                         "[::1",
                         "[::1]x",
                         "",
                         "   ",
                         ":9090",
                         "[]:9090",
                         "localhost\t.evil"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (host_ok("127.0.0.1", "127.0.0.1", bad[i]))
            fail_msg("Host '%s' accepted", bad[i]);
    }
    /* a NUL inside the value never cuts it short */
    struct tt_adminhost a = {.listen_ip = "127.0.0.1", .local_ip = "127.0.0.1"};
    assert_false(tt_adminhost_host_ok(&a, "localhost\0.evil", 15));
}

static void test_other_listeners(void **state)
{
    (void)state;
    /* a listener on another address: that address and localhost, not 127.0.0.1 */
    assert_true(host_ok("192.0.2.7", "192.0.2.7", "192.0.2.7:9090"));
    assert_true(host_ok("192.0.2.7", "192.0.2.7", "localhost:9090"));
    assert_false(host_ok("192.0.2.7", "192.0.2.7", "127.0.0.1:9090"));
    assert_false(host_ok("192.0.2.7", "192.0.2.7", "admin.example.com"));
    /* a wildcard listener: the address the connection came to */
    assert_true(host_ok("0.0.0.0", "192.0.2.7", "192.0.2.7:9090"));
    assert_true(host_ok("0.0.0.0", "127.0.0.1", "127.0.0.1:9090"));
    assert_false(host_ok("0.0.0.0", "192.0.2.7", "192.0.2.8:9090"));
    assert_false(host_ok("0.0.0.0", NULL, "192.0.2.8:9090"));
    assert_true(host_ok("::", "::ffff:192.0.2.7", "192.0.2.7"));
    assert_true(host_ok("::", "2001:db8::1", "[2001:db8::1]:9090"));
    assert_true(host_ok("::", "2001:db8::1", "[2001:DB8:0::1]"));
    assert_false(host_ok("::", "2001:db8::1", "[2001:db8::2]:9090"));
    /* an IPv6 loopback listener */
    assert_true(host_ok("::1", "::1", "[::1]:9090"));
    assert_true(host_ok("::1", "::1", "127.0.0.1:9090"));
}

static void test_origin(void **state)
{
    (void)state;
    assert_true(origin_ok("127.0.0.1", "http://127.0.0.1:9090", "127.0.0.1:9090"));
    assert_true(origin_ok("127.0.0.1", "HTTP://localhost:9090", "127.0.0.1:9090"));
    assert_true(origin_ok("127.0.0.1", "http://[::1]:9090", "localhost:9090"));
    assert_true(origin_ok("127.0.0.1", "http://localhost", "localhost:80"));
    assert_true(origin_ok("127.0.0.1", "http://localhost:80", "localhost"));
    const char *bad[] = {"null",
                         "http://evil.example",
                         "http://evil.example:9090",
                         "https://127.0.0.1:9090",
                         "http://127.0.0.1:9091",
                         "http://127.0.0.1",
                         "http://127.0.0.1:9090/",
                         "http://user@127.0.0.1:9090",
                         "http://",
                         "",
                         "file://",
                         "ws://127.0.0.1:9090",
                         "http://127.0.0.1:9090 http://evil.example"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (origin_ok("127.0.0.1", bad[i], "127.0.0.1:9090"))
            fail_msg("Origin '%s' accepted", bad[i]);
    }
    /* the Host itself must be sound */
    assert_false(origin_ok("127.0.0.1", "http://127.0.0.1:9090", "evil.example:9090"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_listener),
        cmocka_unit_test(test_other_listeners),
        cmocka_unit_test(test_origin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
