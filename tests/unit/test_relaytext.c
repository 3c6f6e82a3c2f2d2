/* test_relaytext.c - unit tests for src/agent/relaytext.c: which WELCOME texts the agent accepts
 * (they end up in its ready lines) and the cleaning of the relay's free text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tether_err.h"
#include "agent/relaytext.h"

#define S(lit) ((struct tt_str){(const uint8_t *)(lit), sizeof(lit) - 1})

static struct tt_welcome good(void)
{
    struct tt_welcome m;
    memset(&m, 0, sizeof m);
    m.label = S("k3j9x2mq");
    m.nservices = 2;
    m.services[0].kind = TT_SERVICE_HTTP;
    m.services[0].name = S("http");
    m.services[0].address = S("http://k3j9x2mq.localhost:8080");
    m.services[1].kind = TT_SERVICE_TCP;
    m.services[1].name = S("ssh");
    m.services[1].port = 20001;
    m.services[1].address = S("localhost");
    return m;
}

static void test_good_welcome(void **state)
{
    char why[128];
    (void)state;
    struct tt_welcome m = good();
    assert_int_equal(tt_relaytext_check_welcome(&m, why, sizeof why), 0);
    m.services[0].address = S("HTTPS://api--k3j9x2mq.relay.example.com");
    m.services[1].address = S("[2001:db8::1]");
    assert_int_equal(tt_relaytext_check_welcome(&m, why, sizeof why), 0);
    m.services[1].address = S("private");
    assert_int_equal(tt_relaytext_check_welcome(&m, why, sizeof why), 0);
    m.services[0].address = S("");
    assert_int_equal(tt_relaytext_check_welcome(&m, why, sizeof why), 0);
}

static void test_forged_welcome(void **state)
{
    char why[128];
    (void)state;
    static const struct {
        int field; /* 0 label, 1 http address, 2 tcp address, 3 a name */
        struct tt_str v;
        const char *says;
    } cases[] = {
        {0, S("k3j9\nready http http://evil -> x"), "label"},
        {0, S(""), "label"},
        {0, S("k3j9 x"), "label"},
        {0, S("k3j9.evil"), "label"},
        {0, S("k3j9\xc3\xa9"), "label"},
        {0, S("0123456789012345678901234567890123456789012345678901234567890123"), "label"},
        {1, S("http://x\nready http http://evil -> x"), "service 0"},
        {1, S("http://x -> y"), "service 0"},
        {1, S("http://x\r"), "service 0"},
        {1, S("http://x\x1b[2K"), "service 0"},
        {1, S("http://\x7f"), "service 0"},
        {1, S("http://\xc3\xa9"), "service 0"},
        {1, S("javascript:alert(1)"), "not an http"},
        {2, S("evil\nready"), "service 1"},
        {2, S("a b"), "service 1"},
        {3, S("ss\nh"), "name of service 1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tt_welcome m = good();
        if (cases[i].field == 0)
            m.label = cases[i].v;
        else if (cases[i].field == 1)
            m.services[0].address = cases[i].v;
        else if (cases[i].field == 2)
            m.services[1].address = cases[i].v;
        else
            m.services[1].name = cases[i].v;
        why[0] = '\0';
        if (tt_relaytext_check_welcome(&m, why, sizeof why) != TETHER_ERR_PROTO)
            fail_msg("case %zu accepted", i);
        if (!strstr(why, cases[i].says))
            fail_msg("case %zu: '%s' lacks '%s'", i, why, cases[i].says);
        assert_null(strstr(why, "evil")); /* the relay's bytes are not repeated */
    }
}

/* --access private: a TCP service without a port has no address either, and an HTTP one
 * carries the private flag in its port field; a TCP service with only one of the two is
 * malformed (the agent would print "ready tcp ssh :20001" or a host with port 0). */
static void test_private_services(void **state)
{
    char why[128];
    (void)state;
    struct tt_welcome m = good();
    m.services[0].port = TT_WELCOME_HTTP_PRIVATE;
    m.services[1].port = 0;
    m.services[1].address = S("");
    assert_int_equal(tt_relaytext_check_welcome(&m, why, sizeof why), 0);
    m.services[0].port = 0xffff; /* unknown flag bits are ignored */
    assert_int_equal(tt_relaytext_check_welcome(&m, why, sizeof why), 0);

    m = good();
    m.services[1].port = 0; /* an address without a port */
    assert_int_equal(tt_relaytext_check_welcome(&m, why, sizeof why), TETHER_ERR_PROTO);
    assert_non_null(strstr(why, "TCP service 1"));
    m = good();
    m.services[1].address = S(""); /* a port without an address */
    assert_int_equal(tt_relaytext_check_welcome(&m, why, sizeof why), TETHER_ERR_PROTO);
    assert_non_null(strstr(why, "no address"));
}

static void test_clean(void **state)
{
    char out[16];
    (void)state;
    assert_string_equal(tt_relaytext_clean(out, sizeof out, "a\nb\x1b[c\x7f\xc3", 9), "a?b?[c???");
    assert_string_equal(tt_relaytext_clean(out, sizeof out, "0123456789abcdefXYZ", 19),
                        "0123456789abcde");
    assert_string_equal(tt_relaytext_clean(out, sizeof out, NULL, 0), "");
    assert_string_equal(tt_relaytext_clean(out, sizeof out, "a\0b", 3), "a?b");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_welcome),
        cmocka_unit_test(test_forged_welcome),
        cmocka_unit_test(test_private_services),
        cmocka_unit_test(test_clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
