/* test_signinpage.c - unit tests for src/relay/access/signinpage.c: every page is a whole response
 * (status, Content-Length that matches, no-store, no framing, a CSP whose style hash matches the
 * page's one style), the sign-in form (method post, no action, fields user and secret), names
 * chosen by a device escaped, HEAD answers without a body, Set-Cookie placed as given, and the
 * redirects' Location kept on the host (no "//other", no control bytes, a host checked). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "relay/access/signinpage.h"

static char out[TT_SIGNINPAGE_MAX + 9000];

static int render(enum tt_signinpage_kind kind, const char *dev, const char *svc,
                  const char *cookie, bool head)
{
    struct tt_signinpage p = {kind, dev, svc, cookie, head};
    int n = tt_signinpage_render(out, sizeof(out), &p);
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(out));
    return n;
}

/* The body after the head, and a check that Content-Length says its length. */
static const char *body_of(const char *resp, bool head)
{
    const char *end = strstr(resp, "\r\n\r\n");
    assert_non_null(end);
    const char *cl = strstr(resp, "Content-Length: ");
    assert_non_null(cl);
    size_t want = strtoul(cl + 16, NULL, 10);
    assert_int_equal(strlen(end + 4), head ? 0 : want);
    return end + 4;
}

static void test_pages(void **state)
{
    (void)state;
    for (int k = 0; k < TT_SIGNINPAGE_COUNT; k++) {
        render((enum tt_signinpage_kind)k, "cam-1", "http", NULL, false);
        char status[32];
        snprintf(status, sizeof(status), "HTTP/1.1 %d ",
                 tt_signinpage_status((enum tt_signinpage_kind)k));
        assert_true(strncmp(out, status, strlen(status)) == 0);
        const char *body = body_of(out, false);
        assert_non_null(strstr(out, "Cache-Control: no-store\r\n"));
        assert_non_null(strstr(out, "X-Frame-Options: DENY\r\n"));
        assert_non_null(strstr(out, "frame-ancestors 'none'"));
        assert_non_null(strstr(out, "Connection: close\r\n"));
        assert_null(strstr(out, "Set-Cookie"));
        assert_null(strstr(body, "<script"));
        assert_null(strstr(body, "http://"));
        assert_null(strstr(body, "https://"));
        assert_non_null(strstr(body, "name=\"viewport\""));
        /* the style's hash in the policy is the page's style's */
        const char *s = strstr(body, "<style>"), *e = strstr(body, "</style>");
        assert_true(s && e && e > s);
        unsigned char h[SHA256_DIGEST_LENGTH], b64[64];
        SHA256((const unsigned char *)s + 7, (size_t)(e - s - 7), h);
        int n = EVP_EncodeBlock(b64, h, sizeof(h));
        char src[100];
        snprintf(src, sizeof(src), "style-src 'sha256-%.*s'", n, (const char *)b64);
        assert_non_null(strstr(out, src));
        assert_non_null(strstr(out, "default-src 'none'"));
    }
    render(TT_SIGNINPAGE_FORM, "cam-1", "http", NULL, false);
    assert_non_null(strstr(out, "WWW-Authenticate: "));
    assert_null(strstr(out, "Basic"));
    const char *body = body_of(out, false);
    assert_non_null(strstr(body, "<form method=\"post\">"));
    assert_null(strstr(body, "action="));
    assert_non_null(strstr(body, "name=\"user\""));
    assert_non_null(strstr(body, "name=\"secret\" type=\"password\""));
    assert_non_null(strstr(body, "<b>http</b> on <b>cam-1</b>"));
    render(TT_SIGNINPAGE_WRONG, "cam-1", "http", NULL, false);
    assert_non_null(strstr(out, "not right"));
    render(TT_SIGNINPAGE_SIGNED_OUT, "cam-1", "http", "c=; Max-Age=0", false);
    assert_non_null(strstr(out, "\r\nSet-Cookie: c=; Max-Age=0\r\n"));
    /* HEAD: the same head, no body */
    int n = render(TT_SIGNINPAGE_FORM, "cam-1", "http", NULL, true);
    body_of(out, true);
    assert_string_equal(out + n - 4, "\r\n\r\n");
}

static void test_escaping(void **state)
{
    (void)state;
    render(TT_SIGNINPAGE_FORM, "<script>alert(1)</script>", "a\"b'c&d", NULL, false);
    const char *body = body_of(out, false);
    assert_null(strstr(body, "<script>"));
    assert_non_null(strstr(body, "&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_non_null(strstr(body, "a&quot;b&#39;c&amp;d"));
    render(TT_SIGNINPAGE_FORM, "a\x01\x7f\xc3\xa9z", NULL, NULL, false);
    assert_non_null(strstr(out, "<b>a????z</b>"));
    /* the longest names fit, all escaped */
    char big[65];
    memset(big, '&', 64);
    big[64] = '\0';
    render(TT_SIGNINPAGE_WRONG, big, big, NULL, false);
    char esc[8];
    /* never half an entity */
    assert_int_equal(tt_signinpage_escape("<>", 2, esc, sizeof(esc)), 4);
    assert_string_equal(esc, "&lt;");
    assert_int_equal(tt_signinpage_escape("abc", 1, esc, sizeof(esc)), 1);
    assert_int_equal(tt_signinpage_escape(NULL, 5, esc, sizeof(esc)), 0);
}

static int redirect(int status, bool https, const char *host, const char *path, const char *c)
{
    return tt_signinpage_redirect(out, sizeof(out), status, https, (const uint8_t *)host,
                                  strlen(host), (const uint8_t *)path, strlen(path), c);
}

static void location_is(const char *want)
{
    char line[600];
    snprintf(line, sizeof(line), "\r\nLocation: %s\r\n", want);
    if (!strstr(out, line)) {
        fprintf(stderr, "want %s in %s\n", want, out);
        fail();
    }
}

static void test_redirects(void **state)
{
    (void)state;
    assert_true(redirect(303, false, "abc.localhost:8080", "/x?y=1", "s=1; HttpOnly") > 0);
    assert_true(strncmp(out, "HTTP/1.1 303 See Other\r\n", 24) == 0);
    location_is("http://abc.localhost:8080/x?y=1");
    assert_non_null(strstr(out, "\r\nSet-Cookie: s=1; HttpOnly\r\n"));
    assert_non_null(strstr(out, "Content-Length: 0\r\n"));
    assert_true(redirect(307, true, "[::1]:443", "/", NULL) > 0);
    assert_true(strncmp(out, "HTTP/1.1 307 Temporary Redirect\r\n", 33) == 0);
    location_is("https://[::1]:443/");
    assert_null(strstr(out, "Set-Cookie"));
    /* a path that would leave the host, or is not a path: "/" */
    static const char *const away[] = {
        "//evil.example/x", "/\\evil.example", "http://x/", "", "*", "/a b", "/a\x01", "/a\\b"};
    for (size_t i = 0; i < sizeof(away) / sizeof(away[0]); i++) {
        assert_true(redirect(303, false, "abc.localhost", away[i], NULL) > 0);
        location_is("http://abc.localhost/");
    }
    /* a Host that is not a host: no redirect */
    static const char *const hosts[] = {"", "a b", "a\r\nSet-Cookie: x", "a/b", "a@b", "a?b"};
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++)
        assert_int_equal(redirect(303, false, hosts[i], "/", NULL), -1);
    char small[64];
    assert_int_equal(tt_signinpage_redirect(small, sizeof(small), 303, false,
                                            (const uint8_t *)"abc.localhost", 13,
                                            (const uint8_t *)"/", 1, NULL),
                     -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pages),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_redirects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
