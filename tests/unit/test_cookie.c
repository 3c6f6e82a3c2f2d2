/* test_cookie.c - unit tests for src/relay/lib/cookie.c: Cookie headers split into pairs, the
 * relay's cookie recognized under every spelling a device might read, stripped from a header
 * whatever its shape (never longer, other pairs byte for byte), and a device's Set-Cookie of
 * it spotted whichever way the value is cut into pieces. Inputs sit against a guard page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "relay/lib/cookie.h"
#include "support_guard.h"

static void test_pairs(void **state)
{
    (void)state;
    static const char v[] = " a=1;b = 2 ;;c; =d;e=\"q;";
    const uint8_t *g = ut_guarded(v, sizeof(v) - 1);
    static const char *const want[][2] = {{"a", "1"}, {"b", "2"}, {"", ""},
                                          {"", "c"},  {"", "d"},  {"e", "\"q"}};
    size_t pos = 0, i = 0;
    struct tt_cookie_pair p;
    while (tt_cookie_next(g, sizeof(v) - 1, &pos, &p)) {
        assert_true(i < sizeof(want) / sizeof(want[0]));
        assert_int_equal(p.namelen, strlen(want[i][0]));
        assert_memory_equal(p.name, want[i][0], p.namelen);
        assert_int_equal(p.valuelen, strlen(want[i][1]));
        assert_memory_equal(p.value, want[i][1], p.valuelen);
        i++;
    }
    assert_int_equal(i, 6);
    pos = 0;
    assert_false(tt_cookie_next(g, 0, &pos, &p));
}

static void test_is_ours(void **state)
{
    (void)state;
    static const char *const yes[] = {"tether_session",        "TETHER_SESSION",
                                      "Tether_Session",        "__Host-tether_session",
                                      "__host-TETHER_session", "__Secure-tether_session"};
    static const char *const no[] = {
        "tether_sessions", "tether-session",        "_tether_session", "__Host-tether_sessio", "",
        "tether_session ", "x__Host-tether_session"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        assert_true(tt_cookie_is_ours((const uint8_t *)yes[i], strlen(yes[i])));
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_false(tt_cookie_is_ours((const uint8_t *)no[i], strlen(no[i])));
}

static void strip_is(const char *in, const char *want, bool removed)
{
    uint8_t out[512];
    bool r;
    size_t n = strlen(in);
    const uint8_t *g = ut_guarded(in, n);
    size_t got = tt_cookie_strip(g, n, out, &r);
    if (got != strlen(want) || memcmp(out, want, got) != 0 || r != removed) {
        fprintf(stderr, "strip [%s]: got [%.*s] removed=%d\n", in, (int)got, (char *)out, r);
        fail();
    }
    assert_true(got <= n);
}

static void test_strip(void **state)
{
    (void)state;
    strip_is("a=1", "a=1", false);
    strip_is("a=1;  b=2 ;", "a=1;  b=2 ;", false); /* untouched: the same bytes */
    strip_is("tether_session=x", "", true);
    strip_is("tether_session=x; a=1", "a=1", true);
    strip_is("a=1; tether_session=x", "a=1", true);
    strip_is("a=1; tether_session=x; b=2", "a=1; b=2", true);
    strip_is("a=1;tether_session=x;b=2", "a=1;b=2", true);
    strip_is("  TETHER_SESSION = x ;a=1", "a=1", true);
    strip_is("__Host-tether_session=1; __Secure-tether_session=2; tether_session=3", "", true);
    strip_is("a=tether_session; tether_session_x=1", "a=tether_session; tether_session_x=1", false);
    strip_is("a; b; tether_session=1; c", "a; b; c", true);
    strip_is(";;tether_session=1;;", "", true);
    /* never longer, whatever the shape: many one-letter pairs around ours */
    char many[256], want[256];
    size_t n = 0, w = 0;
    for (int i = 0; i < 40; i++) {
        n += (size_t)snprintf(many + n, sizeof(many) - n, "%c;", 'a' + i % 26);
        w += (size_t)snprintf(want + w, sizeof(want) - w, "%c;", 'a' + i % 26);
    }
    snprintf(many + n, sizeof(many) - n, "tether_session=1");
    want[w - 1] = '\0';
    strip_is(many, want, true);
}

/* The scan over a Set-Cookie value, whole, byte by byte and split at every offset. */
static bool scan_split(const char *v, size_t sp, size_t step)
{
    struct tt_cookie_scan s;
    tt_cookie_scan_init(&s);
    size_t n = strlen(v), off = 0;
    if (sp > 0 && sp < n) {
        tt_cookie_scan_feed(&s, ut_guarded(v, sp), sp);
        off = sp;
    }
    while (off < n) {
        size_t k = n - off < step ? n - off : step;
        tt_cookie_scan_feed(&s, ut_guarded(v + off, k), k);
        off += k;
    }
    return tt_cookie_scan_end(&s);
}

static void scan_is(const char *v, bool want)
{
    size_t n = strlen(v);
    assert_int_equal(tt_cookie_set_is_ours((const uint8_t *)v, n), want);
    assert_int_equal(scan_split(v, 0, 1), want);
    for (size_t sp = 0; sp <= n; sp++)
        assert_int_equal(scan_split(v, sp, n), want);
}

static void test_set_cookie(void **state)
{
    (void)state;
    scan_is("tether_session=1", true);
    scan_is("tether_session=", true);
    scan_is("  TETHER_SESSION  =1; Domain=localhost", true);
    scan_is("__Host-tether_session=1; Secure; Path=/", true);
    scan_is("=tether_session=1", true);
    scan_is("= \t tether_session =1", true);
    scan_is("tether_session", false); /* no '=': a value without a name */
    scan_is("tether_session; Domain=x", false);
    scan_is("==tether_session=1", false); /* sent back as "=tether_session=1": no name */
    scan_is("a=tether_session=1", false);
    scan_is("tether_sessions=1", false);
    scan_is("tether session=1", false);
    scan_is("", false);
    /* a long name (past the scan's buffer) is never ours, blanks included */
    char longname[200];
    memset(longname, 'x', 150);
    snprintf(longname + 150, sizeof(longname) - 150, "=1");
    scan_is(longname, false);
    char blanks[200];
    snprintf(blanks, sizeof(blanks), "tether_session%80s=1", "");
    scan_is(blanks, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pairs),
        cmocka_unit_test(test_is_ours),
        cmocka_unit_test(test_strip),
        cmocka_unit_test(test_set_cookie),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
