/* test_pages.c - unit tests for src/relay/http/pages.c: status lines, headers, Content-Length
 * matching the body, the offline page's time and "minutes ago", and small buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "relay/http/pages.h"

/* Checks the response's framing and returns its body. */
static const char *check_response(const char *out, int n, const char *status_line)
{
    assert_true(n > 0);
    assert_int_equal(strlen(out), (size_t)n);
    assert_memory_equal(out, status_line, strlen(status_line));
    assert_non_null(strstr(out, "\r\nContent-Type: text/html; charset=utf-8\r\n"));
    assert_non_null(strstr(out, "\r\nConnection: close\r\n"));
    const char *cl = strstr(out, "\r\nContent-Length: ");
    assert_non_null(cl);
    const char *body = strstr(out, "\r\n\r\n");
    assert_non_null(body);
    body += 4;
    assert_int_equal(strtol(cl + 18, NULL, 10), (long)strlen(body));
    assert_non_null(strstr(body, "<title>"));
    return body;
}

static void test_pages(void **state)
{
    static const struct {
        enum tt_page page;
        const char *line;
    } cases[] = {
        {TT_PAGE_BAD_REQUEST, "HTTP/1.1 400 Bad Request\r\n"},
        {TT_PAGE_NOT_FOUND, "HTTP/1.1 404 Not Found\r\n"},
        {TT_PAGE_TOO_LARGE, "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
        {TT_PAGE_BAD_GATEWAY, "HTTP/1.1 502 Bad Gateway\r\n"},
        {TT_PAGE_NO_SERVICE, "HTTP/1.1 502 Bad Gateway\r\n"},
        {TT_PAGE_BUSY, "HTTP/1.1 503 Service Unavailable\r\n"},
        {TT_PAGE_UNAVAILABLE, "HTTP/1.1 503 Service Unavailable\r\n"},
        {TT_PAGE_URI_TOO_LONG, "HTTP/1.1 414 URI Too Long\r\n"},
        {TT_PAGE_UPGRADE_REQUIRED, "HTTP/1.1 426 Upgrade Required\r\n"},
    };
    char out[TT_PAGE_MAX];
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int n = tt_pages_render(out, sizeof(out), cases[i].page);
        check_response(out, n, cases[i].line);
        assert_int_equal(tt_pages_status(cases[i].page), atoi(cases[i].line + 9));
        assert_int_equal(tt_pages_render(out, (size_t)n, cases[i].page), -1);
    }
    int n = tt_pages_render(out, sizeof(out), TT_PAGE_UPGRADE_REQUIRED);
    assert_true(n > 0);
    assert_non_null(strstr(out, "\r\nSec-WebSocket-Version: 13\r\n"));
}

static void test_offline(void **state)
{
    char out[TT_PAGE_MAX];
    (void)state;
    /* 2024-01-02T03:04:05Z, 12 minutes and 7 seconds earlier than now */
    int n = tt_pages_offline(out, sizeof(out), 1704164645, 1704164645 + 727);
    const char *body = check_response(out, n, "HTTP/1.1 503 Service Unavailable\r\n");
    assert_non_null(strstr(body, "<title>Device offline</title>"));
    assert_non_null(strstr(body, "offline since 2024-01-02T03:04:05Z"));
    assert_non_null(strstr(body, "(12 minutes ago)"));
    n = tt_pages_offline(out, sizeof(out), 1704164645, 1704164645 + 60);
    assert_non_null(strstr(out, "(1 minute ago)"));
    n = tt_pages_offline(out, sizeof(out), 1704164645, 1704164645 - 5);
    assert_non_null(strstr(out, "(0 minutes ago)"));
    assert_int_equal(tt_pages_offline(out, 100, 0, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pages),
        cmocka_unit_test(test_offline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
