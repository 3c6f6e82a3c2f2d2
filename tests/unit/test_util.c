/* test_util.c - unit tests for src/common/util.c and log.c: durations, HOST:PORT, port ranges,
 * URLs, random labels, constant-time compare, secrets read from a file, log level names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/log.h"
#include "common/util.h"

static void test_duration(void **state)
{
    char err[TT_ERRLEN];
    uint64_t ms;
    (void)state;
    assert_int_equal(tt_parse_duration("30s", &ms, err), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(tt_parse_duration("5m", &ms, err), 0);
    assert_int_equal(ms, 300000);
    assert_int_equal(tt_parse_duration("2h", &ms, err), 0);
    assert_int_equal(ms, 7200000);
    assert_int_equal(tt_parse_duration("7d", &ms, err), 0);
    assert_int_equal(ms, 7ull * 86400000);
    assert_int_equal(tt_parse_duration("1500ms", &ms, err), 0);
    assert_int_equal(ms, 1500);
    assert_int_equal(tt_parse_duration("45", &ms, err), 0);
    assert_int_equal(ms, 45000);
    assert_int_equal(tt_parse_duration("0", &ms, err), 0);
    assert_int_equal(ms, 0);
    const char *bad[] = {"",
                         "s",
                         "-5s",
                         "5x",
                         "5 s",
                         "1.5h",
                         "5ss",
                         "99999999999999999999d",
                         "18446744073709551615s",
                         "h5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(tt_parse_duration(bad[i], &ms, err), TETHER_ERR_INVAL);
        assert_true(strlen(err) > 0);
    }
    assert_int_equal(tt_parse_duration(NULL, &ms, err), TETHER_ERR_INVAL);
}

static void test_hostport(void **state)
{
    char err[TT_ERRLEN], host[TT_HOSTLEN];
    uint16_t port;
    (void)state;
    assert_int_equal(tt_parse_hostport("127.0.0.1:8080", host, &port, false, err), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_int_equal(tt_parse_hostport("[::1]:443", host, &port, false, err), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 443);
    assert_int_equal(tt_parse_hostport("localhost:65535", host, &port, false, err), 0);
    assert_string_equal(host, "localhost");
    assert_int_equal(port, 65535);
    assert_int_equal(tt_parse_hostport("0.0.0.0:0", host, &port, true, err), 0);
    assert_int_equal(port, 0);
    assert_int_equal(tt_parse_hostport("0.0.0.0:0", host, &port, false, err), TETHER_ERR_INVAL);
    const char *bad[] = {"",       "localhost", ":80",  "host:",   "host:65536", "host:-1",
                         "::1:80", "[::1]80",   "[::1", "host:8o", "ho st:80",   "[]:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(tt_parse_hostport(bad[i], host, &port, true, err), TETHER_ERR_INVAL);
        assert_true(strlen(err) > 0);
    }
    char longhost[400];
    memset(longhost, 'a', 300);
    strcpy(longhost + 300, ":80");
    assert_int_equal(tt_parse_hostport(longhost, host, &port, false, err), TETHER_ERR_INVAL);
}

static void test_port_range(void **state)
{
    char err[TT_ERRLEN];
    uint16_t lo, hi;
    (void)state;
    assert_int_equal(tt_parse_port_range("20000-20999", &lo, &hi, err), 0);
    assert_int_equal(lo, 20000);
    assert_int_equal(hi, 20999);
    assert_int_equal(tt_parse_port_range("1-65535", &lo, &hi, err), 0);
    assert_int_equal(tt_parse_port_range("5000", &lo, &hi, err), 0);
    assert_int_equal(lo, 5000);
    assert_int_equal(hi, 5000);
    const char *bad[] = {"", "0-10", "10-5", "1-65536", "a-b", "-5", "5-", "1--2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(tt_parse_port_range(bad[i], &lo, &hi, err), TETHER_ERR_INVAL);
}

static void test_url(void **state)
{
    static const char *const ws[] = {"ws", "wss", NULL};
    static const char *const http[] = {"http", NULL};
    char err[TT_ERRLEN];
    struct tt_url u;
    (void)state;
    assert_int_equal(tt_parse_url("ws://relay.example.com", ws, &u, err), 0);
    assert_string_equal(u.scheme, "ws");
    assert_string_equal(u.host, "relay.example.com");
    assert_int_equal(u.port, 80);
    assert_false(u.port_explicit);
    assert_string_equal(u.path, "/");

    assert_int_equal(tt_parse_url("WSS://[::1]:8443/tether/ws?x=1#frag", ws, &u, err), 0);
    assert_string_equal(u.scheme, "wss");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 8443);
    assert_true(u.port_explicit);
    assert_string_equal(u.path, "/tether/ws?x=1");

    assert_int_equal(tt_parse_url("http://us%40r:p%3Ass@proxy:3128", http, &u, err), 0);
    assert_string_equal(u.user, "us@r");
    assert_string_equal(u.pass, "p:ss");
    assert_string_equal(u.host, "proxy");
    assert_int_equal(u.port, 3128);

    assert_int_equal(tt_parse_url("http://user@proxy:3128", http, &u, err), 0);
    assert_string_equal(u.user, "user");
    assert_string_equal(u.pass, "");

    assert_int_equal(tt_parse_url("wss://h", ws, &u, err), 0);
    assert_int_equal(u.port, 443);

    assert_int_equal(tt_parse_url("http://h", ws, &u, err), TETHER_ERR_INVAL);
    assert_true(strstr(err, "scheme") != NULL);
    assert_int_equal(tt_parse_url("relay:80", ws, &u, err), TETHER_ERR_INVAL);
    assert_int_equal(tt_parse_url("ws://", ws, &u, err), TETHER_ERR_INVAL);
    assert_int_equal(tt_parse_url("", ws, &u, err), TETHER_ERR_INVAL);
    assert_int_equal(tt_parse_url("ws://h:99999/", ws, &u, err), TETHER_ERR_INVAL);
    assert_int_equal(tt_parse_url("http://a%zz@h", http, &u, err), TETHER_ERR_INVAL);
    assert_int_equal(tt_parse_url("http://a%2@h", http, &u, err), TETHER_ERR_INVAL);
}

static void test_random_label(void **state)
{
    char label[65];
    int counts[36] = {0};
    (void)state;
    for (int round = 0; round < 500; round++) {
        assert_int_equal(tt_random_label(label, 16), 0);
        assert_int_equal(strlen(label), 16);
        assert_true(label[0] >= 'a' && label[0] <= 'z');
        for (int i = 0; i < 16; i++) {
            char ch = label[i];
            assert_true((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'));
            counts[ch >= 'a' ? ch - 'a' : 26 + ch - '0']++;
        }
    }
    /* Every digit shows up somewhere after the first position. */
    for (int i = 26; i < 36; i++)
        assert_true(counts[i] > 0);
    assert_int_equal(tt_random_label(label, 0), 0);
    assert_string_equal(label, "");

    uint8_t a[32] = {0}, b[32] = {0};
    assert_int_equal(tt_random_bytes(a, sizeof(a)), 0);
    assert_int_equal(tt_random_bytes(b, sizeof(b)), 0);
    assert_memory_not_equal(a, b, sizeof(a));
}

static void test_consttime(void **state)
{
    (void)state;
    assert_true(tt_consttime_equal("secret", 6, "secret", 6));
    assert_false(tt_consttime_equal("secret", 6, "secreT", 6));
    assert_false(tt_consttime_equal("secret", 6, "secret1", 7));
    assert_false(tt_consttime_equal("secret", 6, "", 0));
    assert_true(tt_consttime_equal(NULL, 0, NULL, 0));
    assert_true(tt_consttime_equal("", 0, "", 0));
}

static void test_log_level(void **state)
{
    (void)state;
    int lvl = -1;
    assert_int_equal(tt_log_parse_level("error", &lvl), 0);
    assert_int_equal(lvl, TT_LOG_ERROR);
    assert_int_equal(tt_log_parse_level("WARN", &lvl), 0);
    assert_int_equal(lvl, TT_LOG_WARN);
    assert_int_equal(tt_log_parse_level("Info", &lvl), 0);
    assert_int_equal(lvl, TT_LOG_INFO);
    assert_int_equal(tt_log_parse_level("debug", &lvl), 0);
    assert_int_equal(lvl, TT_LOG_DEBUG);
    assert_int_equal(tt_log_parse_level("loud", &lvl), TETHER_ERR_INVAL);
    assert_int_equal(tt_log_parse_level(NULL, &lvl), TETHER_ERR_INVAL);
    assert_int_equal(lvl, TT_LOG_DEBUG);
    tt_log_set_program("test");
    tt_log_write(TT_LOG_INFO, "unit test line with a newline\nin it key=%d", 42);
}

/* Writes n bytes of data to a new temp file; returns its path (static buffer). */
static const char *secret_file(const char *data, size_t n)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/tt-secret-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);
    return path;
}

static void test_secret_file(void **state)
{
    char tok[9], err[TT_ERRLEN];
    const char *p;
    (void)state;
    static const struct {
        const char *data;
        size_t n;
        int rc;
        const char *want;
    } cases[] = {
        {"s3cret\n", 7, 0, "s3cret"},
        {"s3cret", 6, 0, "s3cret"},
        {"s3cret\r\nsecond line\n", 21, 0, "s3cret"},
        {"12345678\r\n", 10, 0, "12345678"},       /* exactly the room, CRLF */
        {"123456789\n", 10, TETHER_ERR_INVAL, ""}, /* one byte too long */
        {"\n", 1, TETHER_ERR_INVAL, ""},
        {"", 0, TETHER_ERR_INVAL, ""},
        {"\r\n", 2, TETHER_ERR_INVAL, ""},
        {"a b\n", 4, TETHER_ERR_INVAL, ""},
        {"a\tb\n", 4, TETHER_ERR_INVAL, ""},
        {"ab\x7f\n", 4, TETHER_ERR_INVAL, ""},
        {"a\0b\n", 4, TETHER_ERR_INVAL, ""},
        {" ab\n", 4, TETHER_ERR_INVAL, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        p = secret_file(cases[i].data, cases[i].n);
        memset(tok, 'x', sizeof(tok));
        int rc = tt_read_secret_file(p, tok, sizeof(tok), err);
        unlink(p);
        if (rc != cases[i].rc)
            fail_msg("case %zu: rc %d, want %d (%s)", i, rc, cases[i].rc, err);
        assert_string_equal(tok, cases[i].want);
        if (rc != 0) {
            assert_non_null(strstr(err, p));    /* names the file... */
            assert_null(strstr(err, "s3cret")); /* ...never the content */
        }
    }
    assert_int_equal(tt_read_secret_file("/nonexistent/tt-token", tok, sizeof(tok), err),
                     TT_SECRET_IO);
    assert_non_null(strstr(err, "/nonexistent/tt-token"));
    assert_int_equal(tt_read_secret_file("/tmp", tok, sizeof(tok), err), TT_SECRET_IO);
    assert_int_equal(tt_check_secret("ok-token", 8, "TETHER_TOKEN", err), 0);
    assert_int_equal(tt_check_secret("", 8, "TETHER_TOKEN", err), TETHER_ERR_INVAL);
    assert_non_null(strstr(err, "TETHER_TOKEN"));
    assert_int_equal(tt_check_secret("a b", 8, "TETHER_TOKEN", err), TETHER_ERR_INVAL);
    assert_int_equal(tt_check_secret("123456789", 8, "TETHER_TOKEN", err), TETHER_ERR_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration),     cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_port_range),   cmocka_unit_test(test_url),
        cmocka_unit_test(test_random_label), cmocka_unit_test(test_consttime),
        cmocka_unit_test(test_log_level),    cmocka_unit_test(test_secret_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
