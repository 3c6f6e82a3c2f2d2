/* test_form.c - unit tests for src/relay/lib/form.c: urlencoded fields decoded ('+', %XX, encoded
 * names), malformed values refused (bad escapes, control bytes), a field given twice refused,
 * values that do not fit, the lenient count, and the Content-Type check. Inputs sit against a
 * guard page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "tether_err.h"
#include "relay/lib/form.h"
#include "support_guard.h"

static int get(const char *body, const char *name, char *out, size_t cap, size_t *len)
{
    return tt_form_get(ut_guarded(body, strlen(body)), strlen(body), name, out, cap, len);
}

static void is(const char *body, const char *name, const char *want)
{
    char out[300];
    size_t len;
    int rc = get(body, name, out, sizeof(out), &len);
    if (rc != 0 || strcmp(out, want) != 0 || len != strlen(want)) {
        fprintf(stderr, "[%s] %s: rc %d [%s]\n", body, name, rc, out);
        fail();
    }
}

static void rc_is(const char *body, const char *name, int want)
{
    char out[300];
    size_t len;
    assert_int_equal(get(body, name, out, sizeof(out), &len), want);
    if (want != 0)
        assert_string_equal(out, "");
}

static void test_get(void **state)
{
    (void)state;
    is("user=alice&secret=s3", "user", "alice");
    is("user=alice&secret=s3", "secret", "s3");
    is("secret=a+b%20c%2B%25&user=x", "secret", "a b c+%");
    is("%75ser=bob", "user", "bob"); /* an encoded name */
    is("us%65r=bob&x", "user", "bob");
    is("&&user=&secret=x", "user", ""); /* empty pairs skipped; an empty value */
    is("user", "user", "");             /* no '=': an empty value */
    is("user=a=b", "user", "a=b");
    is("user=%C3%A9", "user", "\xc3\xa9"); /* UTF-8 bytes pass */
    is("x=%zz&user=ok", "user", "ok");     /* another field's bad escape is not ours */
    rc_is("userx=1&xuser=2", "user", TETHER_ERR_NOT_FOUND);
    rc_is("", "user", TETHER_ERR_NOT_FOUND);
    rc_is("user=1&user=2", "user", TETHER_ERR_INVAL);
    rc_is("user=1&%75ser=2", "user", TETHER_ERR_INVAL);
    rc_is("user=%zz", "user", TETHER_ERR_INVAL);
    rc_is("user=%4", "user", TETHER_ERR_INVAL);
    rc_is("user=%", "user", TETHER_ERR_INVAL);
    rc_is("user=a%00b", "user", TETHER_ERR_INVAL);
    rc_is("user=a%0Ab", "user", TETHER_ERR_INVAL);
    rc_is("user=a%7f", "user", TETHER_ERR_INVAL);
    char out[4];
    size_t len;
    assert_int_equal(get("user=abcd", "user", out, sizeof(out), &len), TETHER_ERR_TOO_LARGE);
    assert_int_equal(get("user=abc", "user", out, sizeof(out), &len), 0);
    assert_string_equal(out, "abc");
    assert_int_equal(get("user=abc", "user", out, 0, &len), TETHER_ERR_TOO_LARGE);
    /* a name over 64 bytes never matches */
    char longname[200];
    memset(longname, 'u', 100);
    snprintf(longname + 100, sizeof(longname) - 100, "=1");
    char name[101];
    memset(name, 'u', 100);
    name[100] = '\0';
    rc_is(longname, name, TETHER_ERR_NOT_FOUND);
}

static void test_count(void **state)
{
    (void)state;
    const char *b = "user=1&secret=2&user=%zz&%75ser";
    assert_int_equal(tt_form_count(ut_guarded(b, strlen(b)), strlen(b), "user"), 3);
    assert_int_equal(tt_form_count(ut_guarded(b, strlen(b)), strlen(b), "secret"), 1);
    assert_int_equal(tt_form_count(ut_guarded(b, strlen(b)), strlen(b), "x"), 0);
    const char *bad = "%u%73er=1&%";
    /* lenient: "%u" stays as it is, "%73" is 's' */
    assert_int_equal(tt_form_count(ut_guarded(bad, strlen(bad)), strlen(bad), "%user"), 1);
    assert_int_equal(tt_form_count(ut_guarded(bad, strlen(bad)), strlen(bad), "%"), 1);
}

static void test_content_type(void **state)
{
    (void)state;
    static const char *const yes[] = {
        "application/x-www-form-urlencoded", "Application/X-WWW-Form-URLEncoded",
        "application/x-www-form-urlencoded; charset=UTF-8", "  application/x-www-form-urlencoded  ",
        "application/x-www-form-urlencoded;"};
    static const char *const no[] = {
        "application/x-www-form-urlencodedx",  "multipart/form-data",   "text/plain", "",
        "application/x-www-form-urlencoded x", "application/x-www-form"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        assert_true(tt_form_content_type(ut_guarded(yes[i], strlen(yes[i])), strlen(yes[i])));
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_false(tt_form_content_type(ut_guarded(no[i], strlen(no[i])), strlen(no[i])));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_content_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
