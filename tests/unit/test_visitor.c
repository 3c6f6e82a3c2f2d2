/* test_visitor.c - unit tests for the pure part of src/relay/device/visitor.c: what a tether
 * connect upgrade asks for (tt_visitor_parse, docs/PROTOCOL.md 14.1): the target's two headers,
 * Basic and Bearer credentials, and every malformed form. Heads are parsed by headparse.c as the
 * listener parses them; the input sits at the end of a buffer, before a guard page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "relay/http/headparse.h"
#include "relay/device/visitor.h"

static uint8_t buf[TT_HEAD_MAX];
static struct tt_headparse hp;

/* Parses the upgrade with the given extra header lines; returns tt_visitor_parse's answer. */
static int parse(const char *extra, struct tt_visitor_request *rq)
{
    int n = snprintf((char *)buf, sizeof(buf),
                     "GET / HTTP/1.1\r\nHost: relay.example.com\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tether-connect.v1\r\n"
                     "%s\r\n",
                     extra);
    enum tt_headparse_event ev;
    tt_headparse_init(&hp);
    tt_headparse_begin(&hp, buf);
    (void)tt_headparse_execute(&hp, buf, (size_t)n, &ev);
    assert_int_equal(ev, TT_HEADPARSE_HEAD);
    assert_true(tt_visitor_is_upgrade(&hp));
    return tt_visitor_parse(&hp, rq);
}

#define TARGET "Tether-Device: plant-7-gw\r\nTether-Service: ssh\r\n"

static void test_target_and_no_credentials(void **state)
{
    struct tt_visitor_request rq;
    (void)state;
    assert_int_equal(parse(TARGET, &rq), 0);
    assert_string_equal(rq.device, "plant-7-gw");
    assert_string_equal(rq.service, "ssh");
    assert_int_equal(rq.auth, TT_VISITOR_AUTH_NONE);
    /* blanks around values are not part of them; names are taken as they are */
    assert_int_equal(parse("tether-device:   A/b:c  \r\nTETHER-SERVICE:\tx\r\n", &rq), 0);
    assert_string_equal(rq.device, "A/b:c");
    assert_string_equal(rq.service, "x");
}

static void test_bad_targets(void **state)
{
    static const char *const bad[] = {
        "Tether-Service: ssh\r\n",
        "Tether-Device: d\r\n",
        "Tether-Device: d\r\nTether-Device: e\r\nTether-Service: ssh\r\n",
        "Tether-Device: d\r\nTether-Service: ssh\r\nTether-Service: http\r\n",
        "Tether-Device: a b\r\nTether-Service: ssh\r\n",
        "Tether-Device: \r\nTether-Service: ssh\r\n",
        "Tether-Device: d\xc3\xa9\r\nTether-Service: ssh\r\n",
        "Tether-Device: "
        "ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd\r\n"
        "Tether-Service: ssh\r\n", /* 65 bytes */
    };
    struct tt_visitor_request rq;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parse(bad[i], &rq) != TETHER_ERR_HTTP)
            fail_msg("case %zu was accepted", i);
    /* 64 bytes is fine */
    assert_int_equal(parse("Tether-Device: "
                           "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd\r\n"
                           "Tether-Service: ssh\r\n",
                           &rq),
                     0);
    assert_int_equal(strlen(rq.device), 64);
}

static void test_basic(void **state)
{
    struct tt_visitor_request rq;
    (void)state;
    /* "alice:s3cret" */
    assert_int_equal(parse(TARGET "Authorization: Basic YWxpY2U6czNjcmV0\r\n", &rq), 0);
    assert_int_equal(rq.auth, TT_VISITOR_AUTH_BASIC);
    assert_string_equal(rq.user, "alice");
    assert_int_equal(rq.secret_len, 6);
    assert_memory_equal(rq.secret, "s3cret", 6);
    tt_visitor_request_wipe(&rq);
    assert_int_equal(rq.secret_len, 0);
    /* the scheme in any case; the secret may hold ':' ("bob:a:b") */
    assert_int_equal(parse(TARGET "Authorization: BASIC Ym9iOmE6Yg==\r\n", &rq), 0);
    assert_int_equal(rq.auth, TT_VISITOR_AUTH_BASIC);
    assert_string_equal(rq.user, "bob");
    assert_int_equal(rq.secret_len, 3);
    assert_memory_equal(rq.secret, "a:b", 3);
}

static void test_bearer(void **state)
{
    struct tt_visitor_request rq;
    (void)state;
    assert_int_equal(parse(TARGET "Authorization: Bearer ttg_abc-123\r\n", &rq), 0);
    assert_int_equal(rq.auth, TT_VISITOR_AUTH_BEARER);
    assert_int_equal(rq.token_len, 11);
    assert_memory_equal(rq.token, "ttg_abc-123", 11);
    assert_true(rq.token > buf && rq.token + rq.token_len < buf + sizeof(buf));
    assert_int_equal(parse(TARGET "authorization: bearer   t\r\n", &rq), 0);
    assert_int_equal(rq.auth, TT_VISITOR_AUTH_BEARER);
    assert_int_equal(rq.token_len, 1);
}

static void test_bad_credentials(void **state)
{
    static const char *const bad[] = {
        "Authorization: Basic\r\n",
        "Authorization: Basic YWxpY2U=\r\n",        /* "alice": no ':' */
        "Authorization: Basic OnNlY3JldA==\r\n",    /* ":secret": no user */
        "Authorization: Basic YWxpY2U6\r\n",        /* "alice:": no secret */
        "Authorization: Basic !!!!\r\n",            /* not base64 */
        "Authorization: Basic YWxpY2U6czNjcmV\r\n", /* not a multiple of 4 */
        "Authorization: Basic YQBiOmM=\r\n",        /* "a\0b:c": NUL in the user */
        "Authorization: Bearer\r\n",
        "Authorization: Bearer   \r\n",
        "Authorization: Digest x\r\n",
        "Authorization: Basic YQ==\r\nAuthorization: Basic YQ==\r\n",
    };
    struct tt_visitor_request rq;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char extra[512];
        snprintf(extra, sizeof(extra), TARGET "%s", bad[i]);
        assert_int_equal(parse(extra, &rq), 0);
        if (rq.auth != TT_VISITOR_AUTH_BAD)
            fail_msg("case %zu: auth %u", i, rq.auth);
    }
    /* a value over TT_VISITOR_AUTH_MAX */
    char extra[TT_VISITOR_AUTH_MAX + 200];
    int n = snprintf(extra, sizeof(extra), TARGET "Authorization: Bearer ");
    memset(extra + n, 'x', TT_VISITOR_AUTH_MAX);
    snprintf(extra + n + TT_VISITOR_AUTH_MAX, sizeof(extra) - (size_t)n - TT_VISITOR_AUTH_MAX,
             "\r\n");
    assert_int_equal(parse(extra, &rq), 0);
    assert_int_equal(rq.auth, TT_VISITOR_AUTH_BAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_target_and_no_credentials),
        cmocka_unit_test(test_bad_targets),
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_bad_credentials),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
