/* test_httphead.c - unit tests for src/common/httphead.c: answers and requests read whole, every
 * prefix incomplete, every input against a guard page (an over-read crashes), the bound, the
 * header cap, folded lines, garbage refused at once, and the header look-ups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include <http_parser.h>

#include "common/httphead.h"
#include "tether_err.h"
#include "support_guard.h"

/* Parses s[0..len) copied right before a PROT_NONE page. */
static int parse_guarded(enum tt_httphead_kind kind, const char *s, size_t len, size_t max,
                         struct tt_httphead *h)
{
    return tt_httphead_parse(kind, ut_guarded(s, len), len, max, h);
}

static const char answer[] = "HTTP/1.1 503 Service Unavailable\r\n"
                             "Retry-After: 7\r\n"
                             "Connection: keep-alive,  Upgrade \r\n"
                             "Content-Length: 5\r\n"
                             "X-Empty:\r\n"
                             "connection: close\r\n"
                             "\r\n";

static void test_answer(void **state)
{
    struct tt_httphead h;
    char buf[512];
    size_t hl = strlen(answer);
    (void)state;
    memcpy(buf, answer, hl);
    memcpy(buf + hl, "busy\n", 5);
    assert_int_equal(parse_guarded(TT_HTTPHEAD_RESPONSE, buf, hl + 5, 16384, &h), 0);
    assert_int_equal(h.status, 503);
    assert_int_equal(h.head_len, hl);
    assert_int_equal(h.content_length, 5);
    assert_int_equal(h.http_major, 1);
    assert_int_equal(h.http_minor, 1);
    assert_int_equal(h.nhdr, 5);
    assert_memory_equal(answer + h.reason_off, "Service Unavailable", h.reason_len);
    assert_int_equal(h.reason_len, 19);

    const uint8_t *in = (const uint8_t *)answer, *v = NULL;
    size_t n = 0;
    assert_int_equal(tt_httphead_find(&h, in, "retry-after", &v, &n), 1);
    assert_int_equal(n, 1);
    assert_memory_equal(v, "7", 1);
    assert_int_equal(tt_httphead_find(&h, in, "CONNECTION", &v, &n), 2);
    assert_true(tt_httphead_has_token(v, n, "upgrade"));
    assert_false(tt_httphead_has_token(v, n, "close"));
    assert_int_equal(tt_httphead_find(&h, in, "x-empty", &v, &n), 1);
    assert_int_equal(n, 0);
    v = NULL;
    assert_int_equal(tt_httphead_find(&h, in, "location", &v, &n), 0);
    assert_null(v);

    /* every prefix: more is needed */
    for (size_t i = 0; i < hl; i++)
        assert_int_equal(parse_guarded(TT_HTTPHEAD_RESPONSE, answer, i, 16384, &h),
                         TETHER_ERR_AGAIN);
    /* a bare LF ends lines too */
    const char *lf = "HTTP/1.0 204 No Content\nServer: x\n\n";
    assert_int_equal(parse_guarded(TT_HTTPHEAD_RESPONSE, lf, strlen(lf), 16384, &h), 0);
    assert_int_equal(h.head_len, strlen(lf));
    assert_int_equal(h.status, 204);
    assert_true(h.content_length == UINT64_MAX);
}

static void test_request(void **state)
{
    struct tt_httphead h;
    const char *rq = "POST /api/x?y=1 HTTP/1.1\r\nHost: relay\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n0\r\n\r\n";
    (void)state;
    assert_int_equal(parse_guarded(TT_HTTPHEAD_REQUEST, rq, strlen(rq), 16384, &h), 0);
    assert_int_equal(h.method, HTTP_POST);
    assert_memory_equal(rq + h.url_off, "/api/x?y=1", h.url_len);
    assert_int_equal(h.url_len, 10);
    assert_true(h.chunked);
    assert_int_equal(h.status, 0);
    assert_int_equal(h.nhdr, 2);
    assert_int_equal(h.head_len, strlen(rq) - strlen("5\r\nhello\r\n0\r\n\r\n"));
    /* an answer is not a request, and the other way round */
    assert_int_equal(parse_guarded(TT_HTTPHEAD_RESPONSE, rq, strlen(rq), 16384, &h),
                     TETHER_ERR_HTTP);
    assert_int_equal(parse_guarded(TT_HTTPHEAD_REQUEST, answer, strlen(answer), 16384, &h),
                     TETHER_ERR_HTTP);
    const char *up =
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    assert_int_equal(parse_guarded(TT_HTTPHEAD_REQUEST, up, strlen(up), 16384, &h), 0);
    assert_true(h.upgrade);
}

static void test_refused(void **state)
{
    struct tt_httphead h;
    (void)state;
    /* not HTTP: refused with the first bytes, not at the bound */
    assert_int_equal(parse_guarded(TT_HTTPHEAD_RESPONSE, "SSH-2.0-x", 9, 16384, &h),
                     TETHER_ERR_HTTP);
    /* a status that is not 3 digits */
    const char *two = "HTTP/1.1 2 OK\r\n\r\n";
    assert_int_equal(parse_guarded(TT_HTTPHEAD_RESPONSE, two, strlen(two), 16384, &h),
                     TETHER_ERR_HTTP);
    /* a folded header line */
    const char *fold = "HTTP/1.1 200 OK\r\nX-A: a\r\n  b\r\n\r\n";
    assert_int_equal(parse_guarded(TT_HTTPHEAD_RESPONSE, fold, strlen(fold), 16384, &h),
                     TETHER_ERR_HTTP);
    assert_int_equal(h.status, 0);
    /* no end of head within max */
    const char *ok = "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n";
    assert_int_equal(parse_guarded(TT_HTTPHEAD_RESPONSE, ok, strlen(ok), strlen(ok) - 1, &h),
                     TETHER_ERR_TOO_LARGE);
    assert_int_equal(parse_guarded(TT_HTTPHEAD_RESPONSE, ok, strlen(ok), strlen(ok), &h), 0);
    /* nothing yet */
    assert_int_equal(tt_httphead_parse(TT_HTTPHEAD_RESPONSE, (const uint8_t *)"", 0, 16, &h),
                     TETHER_ERR_AGAIN);
}

static void test_header_cap(void **state)
{
    struct tt_httphead h;
    static char big[8192];
    size_t n = (size_t)snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\n");
    (void)state;
    for (int i = 0; i < TT_HTTPHEAD_MAX_HEADERS; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "X-%d: v\r\n", i);
    memcpy(big + n, "\r\n", 2);
    assert_int_equal(parse_guarded(TT_HTTPHEAD_RESPONSE, big, n + 2, sizeof(big), &h), 0);
    assert_int_equal(h.nhdr, TT_HTTPHEAD_MAX_HEADERS);
    n += (size_t)snprintf(big + n, sizeof(big) - n, "X-last: v\r\n\r\n");
    assert_int_equal(parse_guarded(TT_HTTPHEAD_RESPONSE, big, n, sizeof(big), &h),
                     TETHER_ERR_TOO_LARGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer),
        cmocka_unit_test(test_request),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_header_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
