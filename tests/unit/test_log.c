/* test_log.c - unit tests for src/common/log.c: the escaping of peer-chosen text in log fields
 * (tt_log_value, tt_log_escape, TT_LOG_V/TT_LOG_E), so that a device name or close reason cannot
 * add a key=value field or a line of its own (level parsing is in test_util.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "common/log.h"

static void test_plain_values_stay_bare(void **state)
{
    char b[TT_LOG_VALUE_MAX];
    (void)state;
    assert_string_equal(tt_log_value(b, sizeof b, "camera-1"), "camera-1");
    assert_string_equal(tt_log_value(b, sizeof b, "http://k3j9.localhost:8080/x?y"),
                        "http://k3j9.localhost:8080/x?y");
    assert_string_equal(tt_log_escape(b, sizeof b, "relay going away"), "relay going away");
}

static void test_quotes_when_needed(void **state)
{
    char b[TT_LOG_VALUE_MAX];
    (void)state;
    assert_string_equal(tt_log_value(b, sizeof b, ""), "\"\"");
    assert_string_equal(tt_log_value(b, sizeof b, NULL), "\"\"");
    assert_string_equal(tt_log_value(b, sizeof b, "a b"), "\"a b\"");
    assert_string_equal(tt_log_value(b, sizeof b, "a=b"), "\"a=b\"");
    assert_string_equal(tt_log_value(b, sizeof b, "a\\b"), "\"a\\\\b\"");
    /* the escape alone never adds quotes */
    assert_string_equal(tt_log_escape(b, sizeof b, ""), "");
    assert_string_equal(tt_log_escape(b, sizeof b, "a=b c"), "a=b c");
}

static void test_forged_fields_are_escaped(void **state)
{
    char b[TT_LOG_VALUE_MAX];
    (void)state;
    /* a close reason that tries to end the quoted field and add one */
    assert_string_equal(tt_log_escape(b, sizeof b, "x\" device=forged"), "x\\\" device=forged");
    assert_string_equal(tt_log_value(b, sizeof b, "x\" device=forged"), "\"x\\\" device=forged\"");
    /* a new line, a carriage return, a tab, an escape sequence, DEL and non-ASCII bytes */
    assert_string_equal(tt_log_escape(b, sizeof b, "a\nb\rc\td\x1b[31me\x7f\xc3\xa9"),
                        "a\\nb\\rc\\td\\x1b[31me\\x7f\\xc3\\xa9");
    assert_string_equal(tt_log_valuen(b, sizeof b, "a\0b", 3), "\"a\\x00b\"");
    /* what comes out holds no byte that could end the field or the line */
    for (size_t i = 0; b[i]; i++)
        assert_true((unsigned char)b[i] >= 0x20 && (unsigned char)b[i] < 0x7f);
}

/* No control byte, no unescaped quote: out reads back as one quoted field. */
static void assert_one_field(const char *out)
{
    size_t n = strlen(out);
    assert_true(n >= 2);
    assert_int_equal(out[0], '"');
    assert_int_equal(out[n - 1], '"');
    for (size_t i = 1; i + 1 < n; i++) {
        assert_true((unsigned char)out[i] >= 0x20 && (unsigned char)out[i] < 0x7f);
        if (out[i] == '\\')
            i++; /* the escaped byte */
        else
            assert_int_not_equal(out[i], '"');
    }
}

static void test_long_text_is_cut_whole(void **state)
{
    char in[1000], b[TT_LOG_VALUE_MAX], small[16];
    (void)state;
    memset(in, 'a', sizeof in - 1);
    in[sizeof in - 1] = '\0';
    tt_log_value(b, sizeof b, in);
    assert_int_equal(strlen(b), TT_LOG_VALUE_MAX - 1);
    assert_non_null(strstr(b, "..."));
    /* a cut never splits an escape: every length of quote-heavy text */
    for (size_t n = 0; n < 40; n++) {
        char q[64];
        memset(q, '"', n);
        q[n] = '\0';
        if (n == 0)
            continue;
        tt_log_value(small, sizeof small, q);
        assert_true(strlen(small) < sizeof small);
        assert_one_field(small);
        tt_log_escape(small, sizeof small, q);
        assert_true(strlen(small) < sizeof small);
        for (size_t i = 0; small[i]; i++)
            if (small[i] == '\\')
                assert_int_equal(small[++i], '"');
    }
    /* too small a buffer: nothing */
    assert_string_equal(tt_log_value(small, 4, "abc"), "");
}

static void test_macros(void **state)
{
    char line[512];
    (void)state;
    snprintf(line, sizeof line, "device=%s reason=\"%s\"", TT_LOG_V("a b"), TT_LOG_E("\" x=y"));
    assert_string_equal(line, "device=\"a b\" reason=\"\\\" x=y\"");
}

/* --log-format json: a line as tt_log_write builds it, as one JSON object. */
static void test_json_line(void **state)
{
    char out[1024], line[512];
    size_t start;
    (void)state;

    tt_log_set_program("tether");
    start = (size_t)snprintf(line, sizeof line, "2026-12-07T14:03:11.512Z tether INFO ");
    snprintf(line + start, sizeof line - start, "device gone device=%s reason=\"%s\" n=3",
             TT_LOG_V("a b"), TT_LOG_E("\" x=y"));
    size_t n = tt_log_json_line(out, sizeof out, line, start, strlen(line), 2);
    assert_int_equal(n, strlen(out));
    assert_string_equal(out, "{\"time\":\"2026-12-07T14:03:11.512Z\",\"program\":\"tether\","
                             "\"level\":\"info\",\"msg\":\"device gone\",\"device\":\"a b\","
                             "\"reason\":\"\\\" x=y\",\"n\":\"3\"}\n");
    /* a field named like a reserved key, words after a pair, a bad key */
    start = (size_t)snprintf(line, sizeof line, "2026-12-07T14:03:11.512Z tether WARN ");
    snprintf(line + start, sizeof line - start, "x msg=1 then More=2 time=t");
    tt_log_json_line(out, sizeof out, line, start, strlen(line), 1);
    assert_string_equal(out, "{\"time\":\"2026-12-07T14:03:11.512Z\",\"program\":\"tether\","
                             "\"level\":\"warn\",\"msg\":\"x then More=2\",\"field_msg\":\"1\","
                             "\"field_time\":\"t\"}\n");
    /* bytes that are not UTF-8 are masked, never dropped with the line */
    start = (size_t)snprintf(line, sizeof line, "2026-12-07T14:03:11.512Z tether ERROR ");
    snprintf(line + start, sizeof line - start, "bad \xff byte v=\xfe");
    assert_true(tt_log_json_line(out, sizeof out, line, start, strlen(line), 0) > 0);
    assert_string_equal(out, "{\"time\":\"2026-12-07T14:03:11.512Z\",\"program\":\"tether\","
                             "\"level\":\"error\",\"msg\":\"bad ? byte\",\"v\":\"?\"}\n");
    /* no room: 0, and the caller writes the text line */
    assert_int_equal(tt_log_json_line(out, 16, line, start, strlen(line), 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_values_stay_bare),
        cmocka_unit_test(test_quotes_when_needed),
        cmocka_unit_test(test_forged_fields_are_escaped),
        cmocka_unit_test(test_long_text_is_cut_whole),
        cmocka_unit_test(test_macros),
        cmocka_unit_test(test_json_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
