/* test_httpproxy.c - unit tests for src/relay/httpproxy.c and headparse.c: request heads
 * rewritten (X-Forwarded-*), bodies (Content-Length and chunked) and upgrades passed through,
 * keep-alive sequences, and errors; every input fed whole, byte by byte, split at every offset
 * and against a guard page. */
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

#include "tether_err.h"
#include "relay/httpproxy.h"

struct sink {
    uint8_t buf[65536];
    size_t len;
};

static int collect(void *ud, const uint8_t *data, size_t len)
{
    struct sink *s = ud;
    assert_true(s->len + len <= sizeof(s->buf));
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    return 0;
}

/* Feeds in[0..len) in pieces of at most step bytes (the first piece split at first, if > 0);
 * returns the first error or 0. */
static int feed_split(struct tt_httpproxy *x, const char *in, size_t len, size_t first, size_t step,
                      struct sink *s)
{
    size_t off = 0;
    if (first > 0 && first < len) {
        int rc = tt_httpproxy_feed(x, (const uint8_t *)in, first, collect, s);
        if (rc)
            return rc;
        off = first;
    }
    while (off < len) {
        size_t n = len - off < step ? len - off : step;
        int rc = tt_httpproxy_feed(x, (const uint8_t *)in + off, n, collect, s);
        if (rc)
            return rc;
        off += n;
    }
    return 0;
}

/* Runs in through a fresh filter in every split and checks the output is want. */
static void check_all_splits(const char *host, const char *in, size_t len, const char *want,
                             size_t wantlen)
{
    static struct tt_httpproxy x;
    static struct sink s;
    for (size_t mode = 0; mode < 3; mode++) {
        size_t nsplits = mode == 2 ? len : 1;
        for (size_t sp = 0; sp < nsplits; sp++) {
            tt_httpproxy_init(&x, host, "10.0.0.1");
            s.len = 0;
            int rc = mode == 0   ? feed_split(&x, in, len, 0, len, &s)
                     : mode == 1 ? feed_split(&x, in, len, 0, 1, &s)
                                 : feed_split(&x, in, len, sp, len, &s);
            assert_int_equal(rc, 0);
            if (s.len != wantlen || memcmp(s.buf, want, wantlen) != 0) {
                fprintf(stderr, "mode %zu split %zu: got [%.*s]\n", mode, sp, (int)s.len,
                        (const char *)s.buf);
                fail();
            }
            tt_httpproxy_reset(&x);
        }
    }
}

#define CHECK(host, in, want) check_all_splits(host, in, sizeof(in) - 1, want, sizeof(want) - 1)

static void test_simple_get(void **state)
{
    (void)state;
    CHECK("abc.localhost", "GET /x?y=1 HTTP/1.1\r\nHost: abc.localhost:8080\r\nAccept: */*\r\n\r\n",
          "GET /x?y=1 HTTP/1.1\r\nHost: abc.localhost:8080\r\nAccept: */*\r\n"
          "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
          "X-Forwarded-Host: abc.localhost:8080\r\n\r\n");
}

static void test_client_forwarded_headers(void **state)
{
    (void)state;
    CHECK("abc.localhost",
          "GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\nHost: ABC.localhost\r\n"
          "x-forwarded-for: 1.2.3.4\r\nX-Forwarded-Host: evil\r\n\r\n",
          "GET / HTTP/1.1\r\nHost: ABC.localhost\r\nx-forwarded-for: 1.2.3.4, 10.0.0.1\r\n"
          "X-Forwarded-Proto: http\r\nX-Forwarded-Host: ABC.localhost\r\n\r\n");
}

/* A cluster's internal headers (secret, client, protocol) never reach a device. */
static void test_cluster_headers_dropped(void **state)
{
    (void)state;
    CHECK("abc.localhost",
          "GET / HTTP/1.1\r\nHost: abc.localhost\r\nX-Tether-Cluster: s3cret\r\n"
          "x-tether-client: 6.6.6.6\r\nX-TETHER-PROTO: https\r\nX-Tether-Other: kept\r\n\r\n",
          "GET / HTTP/1.1\r\nHost: abc.localhost\r\nX-Tether-Other: kept\r\n"
          "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
          "X-Forwarded-Host: abc.localhost\r\n\r\n");
}

static void test_keepalive_bodies(void **state)
{
    (void)state;
    CHECK("abc.localhost",
          "POST /a HTTP/1.1\r\nHost: abc.localhost\r\nContent-Length: 5\r\n\r\nhello"
          "GET /b HTTP/1.1\r\nHost: abc.localhost\r\n\r\n"
          "PUT /c HTTP/1.1\r\nHost: abc.localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
          "5\r\nworld\r\n3;ext=1\r\nGET\r\n0\r\nTrailer: x\r\n\r\n"
          "GET /d HTTP/1.1\r\nHost: abc.localhost\r\n\r\n",
          "POST /a HTTP/1.1\r\nHost: abc.localhost\r\nContent-Length: 5\r\n"
          "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
          "X-Forwarded-Host: abc.localhost\r\n\r\nhello"
          "GET /b HTTP/1.1\r\nHost: abc.localhost\r\n"
          "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
          "X-Forwarded-Host: abc.localhost\r\n\r\n"
          "PUT /c HTTP/1.1\r\nHost: abc.localhost\r\nTransfer-Encoding: chunked\r\n"
          "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
          "X-Forwarded-Host: abc.localhost\r\n\r\n"
          "5\r\nworld\r\n3;ext=1\r\nGET\r\n0\r\nTrailer: x\r\n\r\n"
          "GET /d HTTP/1.1\r\nHost: abc.localhost\r\n"
          "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
          "X-Forwarded-Host: abc.localhost\r\n\r\n");
}

static void test_upgrade_goes_raw(void **state)
{
    (void)state;
    CHECK("abc.localhost",
          "GET /ws HTTP/1.1\r\nHost: abc.localhost\r\nUpgrade: websocket\r\n"
          "Connection: Upgrade\r\n\r\n\x81\x05hello GET / HTTP/1.1\r\nHost: other\r\n\r\n",
          "GET /ws HTTP/1.1\r\nHost: abc.localhost\r\nUpgrade: websocket\r\n"
          "Connection: Upgrade\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
          "X-Forwarded-Host: abc.localhost\r\n\r\n\x81\x05hello GET / HTTP/1.1\r\nHost: "
          "other\r\n\r\n");
}

static int feed_whole(const char *host, const char *in, size_t len)
{
    static struct tt_httpproxy x;
    static struct sink s;
    tt_httpproxy_init(&x, host, "10.0.0.1");
    s.len = 0;
    int rc = tt_httpproxy_feed(&x, (const uint8_t *)in, len, collect, &s);
    tt_httpproxy_reset(&x);
    return rc;
}

static void test_errors(void **state)
{
    (void)state;
    static const char other[] = "GET / HTTP/1.1\r\nHost: abc.localhost\r\n\r\n"
                                "GET / HTTP/1.1\r\nHost: xyz.localhost\r\n\r\n";
    assert_int_equal(feed_whole("abc.localhost", other, sizeof(other) - 1), TETHER_ERR_NOT_FOUND);
    static const char nohost[] = "GET / HTTP/1.1\r\nAccept: x\r\n\r\n";
    assert_int_equal(feed_whole("abc.localhost", nohost, sizeof(nohost) - 1), TETHER_ERR_HTTP);
    static const char twohosts[] = "GET / HTTP/1.1\r\nHost: abc.localhost\r\nHost: a\r\n\r\n";
    assert_int_equal(feed_whole("abc.localhost", twohosts, sizeof(twohosts) - 1), TETHER_ERR_HTTP);
    static const char bad[] = "NOT HTTP AT ALL\r\n\r\n";
    assert_int_equal(feed_whole("abc.localhost", bad, sizeof(bad) - 1), TETHER_ERR_HTTP);
    static const char badlen[] = "GET / HTTP/1.1\r\nHost: abc.localhost\r\n"
                                 "Content-Length: banana\r\n\r\n";
    assert_int_equal(feed_whole("abc.localhost", badlen, sizeof(badlen) - 1), TETHER_ERR_HTTP);
    static const char badchunk[] = "POST / HTTP/1.1\r\nHost: abc.localhost\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\nzz\r\n";
    assert_int_equal(feed_whole("abc.localhost", badchunk, sizeof(badchunk) - 1), TETHER_ERR_HTTP);
}

static void test_head_too_large(void **state)
{
    (void)state;
    size_t cap = TT_HEAD_MAX + 4096;
    char *big = malloc(cap);
    assert_non_null(big);
    size_t n = (size_t)snprintf(big, cap, "GET / HTTP/1.1\r\nHost: abc.localhost\r\nX-A: ");
    memset(big + n, 'a', cap - n);
    assert_int_equal(feed_whole("abc.localhost", big, cap), TETHER_ERR_TOO_LARGE);
    /* many small headers */
    n = (size_t)snprintf(big, cap, "GET / HTTP/1.1\r\nHost: abc.localhost\r\n");
    for (int i = 0; i < TT_HEAD_MAX_HEADERS + 2; i++)
        n += (size_t)snprintf(big + n, cap - n, "X-%d: 1\r\n", i);
    n += (size_t)snprintf(big + n, cap - n, "\r\n");
    assert_int_equal(feed_whole("abc.localhost", big, n), TETHER_ERR_TOO_LARGE);
    free(big);
}

/* What http-parser's lenient build lets through but the relay must not forward as it was
 * understood: a version that is not "HTTP/D.D" (even spanning a line break), blanks in header
 * names. Empty lines before a request line are dropped from what is forwarded. */
static void test_strict_heads(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "GET / Ha\r\nH1.1\r\nHost: abc.localhost\r\n\r\n",
        "GET / XTTP/1.1\r\nHost: abc.localhost\r\n\r\n",
        "GET / HTTP/1.10\r\nHost: abc.localhost\r\n\r\n",
        "GET /\r\nHost: abc.localhost\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: abc.localhost\r\nTransfer-Encoding : chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: abc.localhost\r\nX Y: z\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: abc.localhost\r\n\r\nGET / HTTPS1.1\r\nHost: "
        "abc.localhost\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (feed_whole("abc.localhost", bad[i], strlen(bad[i])) != TETHER_ERR_HTTP) {
            fprintf(stderr, "accepted: %s\n", bad[i]);
            fail();
        }
    }
    static const char lead[] = "\r\nGET  /x  HTTP/1.1\r\nHost: abc.localhost\r\n\r\n";
    CHECK("abc.localhost", lead,
          "GET  /x  HTTP/1.1\r\nHost: abc.localhost\r\nX-Forwarded-For: 10.0.0.1\r\n"
          "X-Forwarded-Proto: http\r\nX-Forwarded-Host: abc.localhost\r\n\r\n");
}

/* A request target over TT_URI_MAX is refused as it arrives (414), whatever the split; one at
 * the limit passes. */
static void test_uri_too_long(void **state)
{
    static struct tt_httpproxy x;
    static struct sink s;
    (void)state;
    size_t cap = TT_URI_MAX + 256;
    char *req = malloc(cap);
    assert_non_null(req);
    for (size_t over = 0; over < 2; over++) {
        size_t n = (size_t)snprintf(req, cap, "GET /");
        memset(req + n, 'u', TT_URI_MAX - 1 + over);
        n += TT_URI_MAX - 1 + over;
        n += (size_t)snprintf(req + n, cap - n, " HTTP/1.1\r\nHost: abc.localhost\r\n\r\n");
        for (size_t step = 1; step <= 4096; step *= 8) {
            tt_httpproxy_init(&x, "abc.localhost", "10.0.0.1");
            s.len = 0;
            int rc = feed_split(&x, req, over ? TT_URI_MAX + 8 : n, 0, step, &s);
            assert_int_equal(rc, over ? TETHER_ERR_TOO_LARGE : 0);
            assert_int_equal(x.hp.uri_too_long, over != 0);
            tt_httpproxy_reset(&x);
        }
    }
    free(req);
}

/* The head parser reads nothing past its input: the request ends on a PROT_NONE page. */
static void test_guard_page(void **state)
{
    (void)state;
    static const char req[] =
        "GET / HTTP/1.1\r\nHost: abc.localhost\r\nContent-Length: 2\r\n\r\nok";
    long pg = sysconf(_SC_PAGESIZE);
    uint8_t *mem =
        mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(mem != MAP_FAILED);
    assert_int_equal(mprotect(mem + pg, (size_t)pg, PROT_NONE), 0);
    uint8_t *in = mem + pg - (sizeof(req) - 1);
    memcpy(in, req, sizeof(req) - 1);
    static struct tt_httpproxy x;
    static struct sink s;
    for (size_t i = 0; i < sizeof(req) - 1; i++) {
        tt_httpproxy_init(&x, "abc.localhost", "10.0.0.1");
        s.len = 0;
        assert_int_equal(tt_httpproxy_feed(&x, in, i, collect, &s), 0);
        assert_int_equal(tt_httpproxy_feed(&x, in + i, sizeof(req) - 1 - i, collect, &s), 0);
        assert_true(s.len > sizeof(req) - 1);
        assert_memory_equal(s.buf + s.len - 2, "ok", 2);
        tt_httpproxy_reset(&x);
    }
    munmap(mem, (size_t)pg * 2);
}

static void test_rewrite_small_buffer(void **state)
{
    (void)state;
    static const char req[] = "GET / HTTP/1.1\r\nHost: abc.localhost\r\n\r\n";
    static struct tt_headparse hp;
    enum tt_headparse_event ev;
    tt_headparse_init(&hp);
    tt_headparse_begin(&hp, (const uint8_t *)req);
    size_t n = tt_headparse_execute(&hp, (const uint8_t *)req, sizeof(req) - 1, &ev);
    assert_int_equal(ev, TT_HEADPARSE_HEAD);
    assert_int_equal(n, sizeof(req) - 1);
    uint8_t out[64];
    assert_int_equal(tt_httpproxy_rewrite((const uint8_t *)req, n, &hp, "1.2.3.4", false, out, 20),
                     TETHER_ERR_AGAIN);
    assert_true(tt_httpproxy_rewrite((const uint8_t *)req, n, &hp, "1.2.3.4", false, out,
                                     sizeof(out) + 0) == TETHER_ERR_AGAIN);
    uint8_t big[512];
    assert_true(
        tt_httpproxy_rewrite((const uint8_t *)req, n, &hp, "1.2.3.4", false, big, sizeof(big)) > 0);
}

/* A browser that came through the TLS listener: X-Forwarded-Proto says https. */
static void test_rewrite_https(void **state)
{
    (void)state;
    static const char req[] =
        "GET / HTTP/1.1\r\nHost: abc.localhost\r\nX-Forwarded-Proto: http\r\n\r\n";
    static const char want[] = "GET / HTTP/1.1\r\nHost: abc.localhost\r\n"
                               "X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n"
                               "X-Forwarded-Host: abc.localhost\r\n\r\n";
    static struct tt_headparse hp;
    enum tt_headparse_event ev;
    tt_headparse_init(&hp);
    tt_headparse_begin(&hp, (const uint8_t *)req);
    size_t n = tt_headparse_execute(&hp, (const uint8_t *)req, sizeof(req) - 1, &ev);
    assert_int_equal(ev, TT_HEADPARSE_HEAD);
    uint8_t out[512];
    tt_ssize r =
        tt_httpproxy_rewrite((const uint8_t *)req, n, &hp, "1.2.3.4", true, out, sizeof(out));
    assert_int_equal(r, sizeof(want) - 1);
    assert_memory_equal(out, want, sizeof(want) - 1);
}

static void test_has_token(void **state)
{
    (void)state;
    const uint8_t *v = (const uint8_t *)"keep-alive, Upgrade";
    assert_true(tt_headparse_has_token(v, strlen((const char *)v), "upgrade"));
    assert_true(tt_headparse_has_token(v, strlen((const char *)v), "keep-alive"));
    assert_false(tt_headparse_has_token(v, strlen((const char *)v), "close"));
    assert_false(tt_headparse_has_token(v, 4, "keep-alive"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_client_forwarded_headers),
        cmocka_unit_test(test_keepalive_bodies),
        cmocka_unit_test(test_upgrade_goes_raw),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_head_too_large),
        cmocka_unit_test(test_guard_page),
        cmocka_unit_test(test_rewrite_small_buffer),
        cmocka_unit_test(test_rewrite_https),
        cmocka_unit_test(test_has_token),
        cmocka_unit_test(test_uri_too_long),
        cmocka_unit_test(test_strict_heads),
        cmocka_unit_test(test_cluster_headers_dropped),
    };
    tt_chunk_pool_drain();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tt_chunk_pool_drain();
    return rc;
}
