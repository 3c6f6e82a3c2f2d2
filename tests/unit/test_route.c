/* test_route.c - unit tests for src/relay/http/route.c: Host normalization, device-address
 * classification (LABEL.DOMAIN, SERVICE--LABEL.DOMAIN, everything else), service DNS names and
 * absolute-form request targets checked against Host. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "relay/http/route.h"

static int norm(const char *in, char out[TT_HOSTLEN])
{
    return tt_route_host_normalize((const uint8_t *)in, strlen(in), out);
}

static void test_normalize(void **state)
{
    char h[TT_HOSTLEN];
    (void)state;
    assert_int_equal(norm("ABC.LocalHost:8080", h), 0);
    assert_string_equal(h, "abc.localhost");
    assert_int_equal(norm("abc.localhost.", h), 0);
    assert_string_equal(h, "abc.localhost");
    assert_int_equal(norm("[::1]:8080", h), 0);
    assert_string_equal(h, "[::1]");
    assert_int_equal(norm("127.0.0.1", h), 0);
    assert_string_equal(h, "127.0.0.1");
    assert_int_equal(norm("", h), -1);
    assert_int_equal(norm(":80", h), -1);
    assert_int_equal(norm("a b", h), -1);
    assert_int_equal(norm("a:", h), -1);
    assert_int_equal(norm("a:80x", h), -1);
    assert_int_equal(norm("a:123456", h), -1);
    assert_int_equal(norm("[::1", h), -1);
    assert_int_equal(norm("a/b", h), -1);
}

static int target(const char *t, const char *host)
{
    return tt_route_target_matches((const uint8_t *)t, strlen(t), host);
}

static void test_target_matches(void **state)
{
    (void)state;
    /* not absolute-form: nothing to compare */
    assert_int_equal(target("/", "abc.localhost"), 1);
    assert_int_equal(target("/http://evil/", "abc.localhost"), 1);
    assert_int_equal(target("*", "abc.localhost"), 1);
    assert_int_equal(target("evil.example:443", "abc.localhost"), 1);
    /* absolute-form: the host must be Host's (any port, any case, a trailing dot) */
    assert_int_equal(target("http://abc.localhost/x", "abc.localhost"), 1);
    assert_int_equal(target("http://ABC.localhost.:9999/x?y", "abc.localhost"), 1);
    assert_int_equal(target("https://abc.localhost", "abc.localhost"), 1);
    assert_int_equal(target("http://[::1]:8080/", "[::1]"), 1);
    assert_int_equal(target("http://other.localhost/", "abc.localhost"), 0);
    assert_int_equal(target("http://abc.localhost.evil/", "abc.localhost"), 0);
    assert_int_equal(target("http://abc.localhost@evil/", "abc.localhost"), 0);
    assert_int_equal(target("http://evil@abc.localhost/", "abc.localhost"), 0);
    assert_int_equal(target("http:///x", "abc.localhost"), 0);
    assert_int_equal(target("http://", "abc.localhost"), 0);
    assert_int_equal(target("http://[::2]/", "[::1]"), 0);
}

static void test_classify(void **state)
{
    char label[TT_MAX_LABEL + 1], svc[TT_ROUTE_SVCLEN + 1];
    (void)state;
    assert_int_equal(tt_route_classify("k3j9x2mq.localhost", "localhost", label, svc),
                     TT_ROUTE_DEVICE);
    assert_string_equal(label, "k3j9x2mq");
    assert_string_equal(svc, "");
    assert_int_equal(tt_route_classify("my-api--k3j9x2mq.localhost", "localhost", label, svc),
                     TT_ROUTE_DEVICE);
    assert_string_equal(label, "k3j9x2mq");
    assert_string_equal(svc, "my-api");
    assert_int_equal(tt_route_classify("localhost", "localhost", label, svc), TT_ROUTE_OTHER);
    assert_int_equal(tt_route_classify("a.b.localhost", "localhost", label, svc), TT_ROUTE_OTHER);
    assert_int_equal(tt_route_classify("127.0.0.1", "localhost", label, svc), TT_ROUTE_OTHER);
    assert_int_equal(tt_route_classify("xlocalhost", "localhost", label, svc), TT_ROUTE_OTHER);
    assert_int_equal(tt_route_classify("ab-c.localhost", "localhost", label, svc), TT_ROUTE_OTHER);
    assert_int_equal(tt_route_classify("--abc.localhost", "localhost", label, svc), TT_ROUTE_OTHER);
    assert_int_equal(tt_route_classify("abc.relay.example.com", "relay.example.com", label, svc),
                     TT_ROUTE_DEVICE);
    assert_string_equal(label, "abc");
}

static void test_service_dnsname(void **state)
{
    char out[TT_ROUTE_SVCLEN + 1];
    (void)state;
    tt_route_service_dnsname((const uint8_t *)"API", 3, out);
    assert_string_equal(out, "api");
    tt_route_service_dnsname((const uint8_t *)"my__web.ui-", 11, out);
    assert_string_equal(out, "my-web-ui");
    tt_route_service_dnsname((const uint8_t *)"___", 3, out);
    assert_string_equal(out, "svc");
    char longname[100];
    memset(longname, 'x', sizeof(longname));
    tt_route_service_dnsname((const uint8_t *)longname, sizeof(longname), out);
    assert_int_equal(strlen(out), TT_ROUTE_SVCLEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_service_dnsname),
        cmocka_unit_test(test_target_matches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
