/* test_httpproxy.c - unit tests for src/relay/http/httpproxy.c and headparse.c: request heads
 * rewritten (X-Forwarded-*, Forwarded, X-Real-IP; client identity headers dropped), bodies
 * re-framed (Content-Length and chunked), strict heads and framing, the response tracker
 * (HEAD, interim and body-less responses, upgrades accepted and declined, CONNECT, tracking
 * lost), the cap on unanswered requests, and refusals answered after the responses owed before
 * them. Inputs are fed whole, byte by byte, split at every offset and against a guard page. */
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
#include "relay/http/httpproxy.h"
#include "support_guard.h"

struct sink {
    uint8_t buf[65536];
    size_t len;
};

static int collect(void *ud, const uint8_t *data, size_t len)
{
    struct sink *s = ud;
    assert_true(len > 0);
    assert_true(s->len + len <= sizeof(s->buf));
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    return 0;
}

/* What the relay adds to every head from 10.0.0.1 over plain HTTP with Host h. */
#define ADDED(h)                                                                                   \
    "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: " h "\r\n"          \
    "Forwarded: for=10.0.0.1;host=\"" h "\";proto=http\r\nX-Real-IP: 10.0.0.1\r\n\r\n"
/* The same when the client sent an X-Forwarded-For (appended to, not added). */
#define ADDED_NO_XFF(h)                                                                            \
    "X-Forwarded-Proto: http\r\nX-Forwarded-Host: " h "\r\n"                                       \
    "Forwarded: for=10.0.0.1;host=\"" h "\";proto=http\r\nX-Real-IP: 10.0.0.1\r\n\r\n"

/* Feeds in[0..len) in pieces of at most step bytes (the first piece split at first, if > 0);
 * every piece must be taken whole. Returns the first error or 0. */
static int feed_split(struct tt_httpproxy *x, const char *in, size_t len, size_t first, size_t step,
                      struct sink *s)
{
    size_t off = 0;
    if (first > 0 && first < len) {
        tt_ssize rc = tt_httpproxy_feed(x, (const uint8_t *)in, first, collect, s);
        if (rc < 0)
            return (int)rc;
        assert_int_equal(rc, first);
        off = first;
    }
    while (off < len) {
        size_t n = len - off < step ? len - off : step;
        tt_ssize rc = tt_httpproxy_feed(x, (const uint8_t *)in + off, n, collect, s);
        if (rc < 0)
            return (int)rc;
        assert_int_equal(rc, n);
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
          "GET /x?y=1 HTTP/1.1\r\nHost: abc.localhost:8080\r\nAccept: */*\r\n" ADDED(
              "abc.localhost:8080"));
}

static void test_client_forwarded_headers(void **state)
{
    (void)state;
    CHECK("abc.localhost",
          "GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\nHost: ABC.localhost\r\n"
          "x-forwarded-for: 1.2.3.4\r\nX-Forwarded-Host: evil\r\n\r\n",
          "GET / HTTP/1.1\r\nHost: ABC.localhost\r\nx-forwarded-for: 1.2.3.4, "
          "10.0.0.1\r\n" ADDED_NO_XFF("ABC.localhost"));
}

/* Headers with which a client claims to be someone else never reach the device: the relay's
 * own Forwarded and X-Real-IP say who it is. */
static void test_identity_headers_dropped(void **state)
{
    (void)state;
    CHECK("abc.localhost",
          "GET / HTTP/1.1\r\nHost: abc.localhost\r\nForwarded: for=6.6.6.6;proto=https\r\n"
          "X-Real-IP: 6.6.6.6\r\nX-Forwarded-Port: 443\r\nX-Client-IP: 6.6.6.6\r\n"
          "True-Client-IP: 6.6.6.6\r\nX-Forwarded-Scheme: https\r\nforwarded: for=7.7.7.7\r\n"
          "X-Forwarded-Ssl: on\r\nX-Other: kept\r\n\r\n",
          "GET / HTTP/1.1\r\nHost: abc.localhost\r\nX-Other: kept\r\n" ADDED("abc.localhost"));
}

/* RFC 7239 6: an IPv6 address is bracketed and quoted; over TLS proto is https. */
static void test_forwarded_ipv6_https(void **state)
{
    (void)state;
    static const char req[] = "GET / HTTP/1.1\r\nHost: abc.localhost\r\n\r\n";
    static struct tt_httpproxy x;
    static struct sink s;
    tt_httpproxy_init(&x, "abc.localhost", "2001:db8::7");
    x.https = true;
    s.len = 0;
    assert_int_equal(tt_httpproxy_feed(&x, (const uint8_t *)req, sizeof(req) - 1, collect, &s),
                     sizeof(req) - 1);
    static const char want[] =
        "GET / HTTP/1.1\r\nHost: abc.localhost\r\nX-Forwarded-For: 2001:db8::7\r\n"
        "X-Forwarded-Proto: https\r\nX-Forwarded-Host: abc.localhost\r\n"
        "Forwarded: for=\"[2001:db8::7]\";host=\"abc.localhost\";proto=https\r\n"
        "X-Real-IP: 2001:db8::7\r\n\r\n";
    assert_int_equal(s.len, sizeof(want) - 1);
    assert_memory_equal(s.buf, want, sizeof(want) - 1);
    tt_httpproxy_reset(&x);
}

/* A cluster's internal headers (secret, client, protocol) never reach a device. */
static void test_cluster_headers_dropped(void **state)
{
    (void)state;
    CHECK(
        "abc.localhost",
        "GET / HTTP/1.1\r\nHost: abc.localhost\r\nX-Tether-Cluster: s3cret\r\n"
        "x-tether-client: 6.6.6.6\r\nX-TETHER-PROTO: https\r\nX-Tether-Peer-Port: 1\r\n"
        "X-Tether-Other: kept\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: abc.localhost\r\nX-Tether-Other: kept\r\n" ADDED("abc.localhost"));
}

/* Bodies are re-framed: one framing header written by the relay, chunks re-encoded with the
 * sizes sent (extensions and trailers dropped). */
static void test_keepalive_bodies(void **state)
{
    (void)state;
    CHECK("abc.localhost",
          "POST /a HTTP/1.1\r\nHost: abc.localhost\r\ncontent-length:  5\r\n\r\nhello"
          "GET /b HTTP/1.1\r\nHost: abc.localhost\r\n\r\n"
          "PUT /c HTTP/1.1\r\nHost: abc.localhost\r\nTransfer-Encoding: Chunked\r\n\r\n"
          "5\r\nworld\r\n3;ext=1\r\nGET\r\n0\r\nTrailer: x\r\n\r\n"
          "GET /d HTTP/1.1\r\nHost: abc.localhost\r\n\r\n",
          "POST /a HTTP/1.1\r\nHost: abc.localhost\r\nContent-Length: 5\r\n" ADDED(
              "abc.localhost") "hello"
                               "GET /b HTTP/1.1\r\nHost: abc.localhost\r\n" ADDED(
                                   "abc.localhost") "PUT /c HTTP/1.1\r\nHost: "
                                                    "abc.localhost\r\nTransfer-Encoding: "
                                                    "chunked\r\n" ADDED(
                                                        "abc.localhost") "5\r\nworld\r\n3\r\nGE"
                                                                         "T\r\n0\r\n\r\n"
                                                                         "GET /d "
                                                                         "HTTP/1.1\r\nHost: "
                                                                         "abc.localhost\r\n" ADDED(
                                                                             "abc.localhost"));
}

/* The chunked smuggling of issue 9: what a device reading chunk lines loosely (a bare LF ends a
 * line; anything after chunk data up to a LF is skipped) would take for a second request is,
 * after re-framing, body bytes inside one clean chunk. */
static void test_chunked_smuggling_reframed(void **state)
{
    (void)state;
    /* A bare LF inside the chunk-size line: http-parser reads "2d;x\nAAA...A" as the size line,
     * a loose reader as "2d;x" followed by 45 bytes of A. */
    CHECK("abc.localhost",
          "POST / HTTP/1.1\r\nHost: abc.localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
          "2d;x\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n"
          "0\r\n\r\nGET /s HTTP/1.1\r\nHost: evil\r\nX: 1234\r\n\r\n"
          "\r\n0\r\n\r\n",
          "POST / HTTP/1.1\r\nHost: abc.localhost\r\nTransfer-Encoding: chunked\r\n" ADDED(
              "abc.localhost") "2d\r\n0\r\n\r\nGET /s HTTP/1.1\r\nHost: evil\r\nX: "
                               "1234\r\n\r\n\r\n0\r\n\r\n");
    /* No CRLF after the chunk data: http-parser skips any two bytes there. */
    CHECK("abc.localhost",
          "POST / HTTP/1.1\r\nHost: abc.localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
          "1\r\nZYY5\r\nhello\r\n0\r\n\r\n",
          "POST / HTTP/1.1\r\nHost: abc.localhost\r\nTransfer-Encoding: chunked\r\n" ADDED(
              "abc.localhost") "1\r\nZ\r\n5\r\nhello\r\n0\r\n\r\n");
}

static void test_upload_sizes(void **state)
{
    (void)state;
    /* a large declared chunk passes piece by piece; Content-Length: 0 is kept as 0 */
    static struct tt_httpproxy x;
    static struct sink s;
    static char req[4096];
    int n = snprintf(req, sizeof(req),
                     "POST / HTTP/1.1\r\nHost: abc.localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "ABCDEF0123\r\n");
    tt_httpproxy_init(&x, "abc.localhost", "10.0.0.1");
    s.len = 0;
    assert_int_equal(tt_httpproxy_feed(&x, (const uint8_t *)req, (size_t)n, collect, &s), n);
    assert_int_equal(x.mode, TT_HTTPPROXY_BODY);
    assert_non_null(memmem(s.buf, s.len, "\r\n\r\nabcdef0123\r\n", 16));
    tt_httpproxy_reset(&x);
    CHECK("abc.localhost", "POST / HTTP/1.1\r\nHost: abc.localhost\r\nContent-Length: 0\r\n\r\n",
          "POST / HTTP/1.1\r\nHost: abc.localhost\r\nContent-Length: 0\r\n" ADDED("abc.localhost"));
}

/* Feeds in whole; a refusal that waits for responses gets them (empty 200s), then is asked
 * again. Returns the error or 0. */
static int feed_whole(const char *host, const char *in, size_t len, uint8_t *reason)
{
    static struct tt_httpproxy x;
    static struct sink s;
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    tt_httpproxy_init(&x, host, "10.0.0.1");
    s.len = 0;
    tt_ssize rc = tt_httpproxy_feed(&x, (const uint8_t *)in, len, collect, &s);
    if (rc >= 0 && x.refused) {
        while (x.owed > 0)
            assert_int_equal(tt_httpproxy_response(&x, (const uint8_t *)ok, sizeof(ok) - 1),
                             sizeof(ok) - 1);
        rc = tt_httpproxy_feed(&x, NULL, 0, collect, &s);
    }
    if (reason)
        *reason = x.reason;
    tt_httpproxy_reset(&x);
    return rc < 0 ? (int)rc : 0;
}

static void expect_refused(const char *in, int err, enum tt_http_refusal why)
{
    uint8_t reason = 0;
    int rc = feed_whole("abc.localhost", in, strlen(in), &reason);
    if (rc != err || reason != why) {
        fprintf(stderr, "%s: got %s/%s, want %s/%s\n", in, tether_err_name(rc),
                tt_headparse_refusal_name((enum tt_http_refusal)reason), tether_err_name(err),
                tt_headparse_refusal_name(why));
        fail();
    }
}

static void test_errors(void **state)
{
    (void)state;
    expect_refused("GET / HTTP/1.1\r\nHost: abc.localhost\r\n\r\n"
                   "GET / HTTP/1.1\r\nHost: xyz.localhost\r\n\r\n",
                   TETHER_ERR_NOT_FOUND, TT_REFUSAL_OTHER_HOST);
    expect_refused("GET / HTTP/1.1\r\nAccept: x\r\n\r\n", TETHER_ERR_HTTP, TT_REFUSAL_HOST);
    expect_refused("GET / HTTP/1.1\r\nHost: abc.localhost\r\nHost: a\r\n\r\n", TETHER_ERR_HTTP,
                   TT_REFUSAL_HOST);
    expect_refused("NOT HTTP AT ALL\r\n\r\n", TETHER_ERR_HTTP, TT_REFUSAL_SYNTAX);
    expect_refused("GET / HTTP/1.1\r\nHost: abc.localhost\r\nContent-Length: banana\r\n\r\n",
                   TETHER_ERR_HTTP, TT_REFUSAL_FRAMING);
    expect_refused("POST / HTTP/1.1\r\nHost: abc.localhost\r\n"
                   "Transfer-Encoding: chunked\r\n\r\nzz\r\n",
                   TETHER_ERR_HTTP, TT_REFUSAL_FRAMING);
}

/* Framing the relay will not guess at (RFC 9112 6.1, 6.3). */
static void test_framing_refused(void **state)
{
    (void)state;
    static const char *const framing[] = {
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: xchunked\r\n",
        "Transfer-Encoding: chunked, gzip\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        "Transfer-Encoding: chunked,\r\n",
        "Transfer-Encoding: \r\n",
        "Transfer-Encoding: chunked;q=1\r\n",
        "Content-Length: 5\r\nContent-Length: 5\r\n",
        "Content-Length: 5, 5\r\n",
        "Content-Length: -1\r\n",
    };
    char req[512];
    for (size_t i = 0; i < sizeof(framing) / sizeof(framing[0]); i++) {
        snprintf(req, sizeof(req), "POST / HTTP/1.1\r\nHost: abc.localhost\r\n%s\r\n", framing[i]);
        expect_refused(req, TETHER_ERR_HTTP, TT_REFUSAL_FRAMING);
    }
    expect_refused("POST / HTTP/1.0\r\nHost: abc.localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
                   TETHER_ERR_HTTP, TT_REFUSAL_FRAMING);
    expect_refused("POST / HTTP/1.1\r\nHost: abc.localhost\r\nTransfer-Encoding: gzip, "
                   "chunked\r\n\r\n",
                   TETHER_ERR_HTTP, TT_REFUSAL_CODING);
    expect_refused("POST / HTTP/1.1\r\nHost: abc.localhost\r\nTransfer-Encoding: gzip\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n",
                   TETHER_ERR_HTTP, TT_REFUSAL_CODING);
}

static void test_head_too_large(void **state)
{
    (void)state;
    size_t cap = TT_HEAD_MAX + 4096;
    char *big = malloc(cap);
    assert_non_null(big);
    size_t n = (size_t)snprintf(big, cap, "GET / HTTP/1.1\r\nHost: abc.localhost\r\nX-A: ");
    memset(big + n, 'a', cap - n);
    uint8_t reason;
    assert_int_equal(feed_whole("abc.localhost", big, cap, &reason), TETHER_ERR_TOO_LARGE);
    assert_int_equal(reason, TT_REFUSAL_TOO_LARGE);
    /* many small headers */
    n = (size_t)snprintf(big, cap, "GET / HTTP/1.1\r\nHost: abc.localhost\r\n");
    for (int i = 0; i < TT_HEAD_MAX_HEADERS + 2; i++)
        n += (size_t)snprintf(big + n, cap - n, "X-%d: 1\r\n", i);
    n += (size_t)snprintf(big + n, cap - n, "\r\n");
    assert_int_equal(feed_whole("abc.localhost", big, n, &reason), TETHER_ERR_TOO_LARGE);
    assert_int_equal(reason, TT_REFUSAL_TOO_LARGE);
    free(big);
}

/* What http-parser's lenient build lets through but the relay must not forward as it was
 * understood: a version that is not "HTTP/D.D" (even spanning a line break), blanks in header
 * names, control bytes in the target or the headers, obs-fold, a lone CR, an absolute-form
 * target naming another host. Empty lines before a request line are dropped from what is
 * forwarded; bare LF line ends are accepted (and forwarded as CRLF). */
static void test_strict_heads(void **state)
{
    (void)state;
    static const struct {
        const char *req;
        int err;
        enum tt_http_refusal why;
    } bad[] = {
        {"GET / Ha\r\nH1.1\r\nHost: abc.localhost\r\n\r\n", TETHER_ERR_HTTP, TT_REFUSAL_SYNTAX},
        {"GET / XTTP/1.1\r\nHost: abc.localhost\r\n\r\n", TETHER_ERR_HTTP, TT_REFUSAL_SYNTAX},
        {"GET / HTTP/1.10\r\nHost: abc.localhost\r\n\r\n", TETHER_ERR_HTTP, TT_REFUSAL_SYNTAX},
        {"GET /\r\nHost: abc.localhost\r\n\r\n", TETHER_ERR_HTTP, TT_REFUSAL_SYNTAX},
        {"GET / HTTP/1.1\r\nHost: abc.localhost\r\nTransfer-Encoding : chunked\r\n\r\n",
         TETHER_ERR_HTTP, TT_REFUSAL_SYNTAX},
        {"GET / HTTP/1.1\r\nHost: abc.localhost\r\nX Y: z\r\n\r\n", TETHER_ERR_HTTP,
         TT_REFUSAL_SYNTAX},
        {"GET / HTTP/1.1\r\nHost: abc.localhost\r\n\r\nGET / HTTPS1.1\r\nHost: "
         "abc.localhost\r\n\r\n",
         TETHER_ERR_HTTP, TT_REFUSAL_SYNTAX},
        {"GET /a\tb HTTP/1.1\r\nHost: abc.localhost\r\n\r\n", TETHER_ERR_HTTP, TT_REFUSAL_TARGET},
        {"GET /a\fb HTTP/1.1\r\nHost: abc.localhost\r\n\r\n", TETHER_ERR_HTTP, TT_REFUSAL_TARGET},
        {"GET /\t HTTP/1.1\r\nHost: abc.localhost\r\n\r\n", TETHER_ERR_HTTP, TT_REFUSAL_TARGET},
        {"GET / HTTP/1.1\r\nHost: abc.localhost\r\nX-A: a\r\n b\r\n\r\n", TETHER_ERR_HTTP,
         TT_REFUSAL_HEADER},
        {"GET / HTTP/1.1\r\nHost: abc.localhost\r\nX-A: a\r\n\tHost: evil\r\n\r\n", TETHER_ERR_HTTP,
         TT_REFUSAL_HEADER},
        {"GET / HTTP/1.1\r\n Host: abc.localhost\r\n\r\n", TETHER_ERR_HTTP, TT_REFUSAL_SYNTAX},
        {"GET / HTTP/1.1\r\nHost: abc.localhost\r\nTransfer-Encoding: x\r\n chunked\r\n\r\n",
         TETHER_ERR_HTTP, TT_REFUSAL_HEADER},
        {"GET / HTTP/1.1\r\nHost: abc.localhost\r\nX-A: a\x01z\r\n\r\n", TETHER_ERR_HTTP,
         TT_REFUSAL_HEADER},
        {"GET / HTTP/1.1\r\nHost: abc.localhost\r\nX-A: a\rX-B: b\r\n\r\n", TETHER_ERR_HTTP,
         TT_REFUSAL_HEADER},
        {"GET http://other.localhost/ HTTP/1.1\r\nHost: abc.localhost\r\n\r\n",
         TETHER_ERR_NOT_FOUND, TT_REFUSAL_OTHER_HOST},
        {"GET http://abc.localhost@other/ HTTP/1.1\r\nHost: abc.localhost\r\n\r\n",
         TETHER_ERR_NOT_FOUND, TT_REFUSAL_OTHER_HOST},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_refused(bad[i].req, bad[i].err, bad[i].why);
    static const char lead[] = "\r\nGET  /x  HTTP/1.1\r\nHost: abc.localhost\r\n\r\n";
    CHECK("abc.localhost", lead,
          "GET  /x  HTTP/1.1\r\nHost: abc.localhost\r\n" ADDED("abc.localhost"));
    static const char lf[] = "GET /x HTTP/1.1\nHost: abc.localhost\nX-A:\tb\t\n\n";
    CHECK("abc.localhost", lf,
          "GET /x HTTP/1.1\r\nHost: abc.localhost\r\nX-A: b\t\r\n" ADDED("abc.localhost"));
    static const char absolute[] =
        "GET http://ABC.localhost:9/x HTTP/1.1\r\nHost: abc.localhost\r\n\r\n";
    CHECK(
        "abc.localhost", absolute,
        "GET http://ABC.localhost:9/x HTTP/1.1\r\nHost: abc.localhost\r\n" ADDED("abc.localhost"));
}

/* Every byte of the header section is checked, wherever it falls in the words the check
 * reads eight bytes at a time: a control byte or DEL anywhere is refused, bytes over 0x7f (obs-
 * text) are not. */
static void test_header_bytes_everywhere(void **state)
{
    (void)state;
    static const uint8_t bad[] = {0x00, 0x01, 0x0b, 0x1f, 0x7f};
    char req[256];
    for (size_t pos = 0; pos < 40; pos++) {
        for (size_t k = 0; k < sizeof(bad); k++) {
            int n = snprintf(req, sizeof(req),
                             "GET / HTTP/1.1\r\nHost: abc.localhost\r\nX-Long: "
                             "0123456789abcdef0123456789abcdef0123456789\r\n\r\n");
            size_t at = 45 + pos; /* inside the X-Long value */
            req[at] = (char)bad[k];
            uint8_t reason = 0;
            assert_int_equal(feed_whole("abc.localhost", req, (size_t)n, &reason), TETHER_ERR_HTTP);
            assert_true(reason == TT_REFUSAL_HEADER || reason == TT_REFUSAL_SYNTAX);
            req[at] = (char)(0x80 + pos); /* obs-text passes */
            assert_int_equal(feed_whole("abc.localhost", req, (size_t)n, NULL), 0);
        }
    }
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
            if (over)
                assert_int_equal(x.reason, TT_REFUSAL_URI_TOO_LONG);
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
    const uint8_t *in = ut_guarded(req, sizeof(req) - 1);
    static struct tt_httpproxy x;
    static struct sink s;
    for (size_t i = 0; i < sizeof(req) - 1; i++) {
        tt_httpproxy_init(&x, "abc.localhost", "10.0.0.1");
        s.len = 0;
        assert_int_equal(tt_httpproxy_feed(&x, in, i, collect, &s), i);
        assert_int_equal(tt_httpproxy_feed(&x, in + i, sizeof(req) - 1 - i, collect, &s),
                         sizeof(req) - 1 - i);
        assert_true(s.len > sizeof(req) - 1);
        assert_memory_equal(s.buf + s.len - 2, "ok", 2);
        tt_httpproxy_reset(&x);
    }
    /* and the response parser: a response ending on the guard page */
    static const char rsp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    in = ut_guarded(rsp, sizeof(rsp) - 1);
    for (size_t i = 0; i < sizeof(rsp) - 1; i++) {
        tt_httpproxy_init(&x, "abc.localhost", "10.0.0.1");
        s.len = 0;
        assert_int_equal(tt_httpproxy_feed(&x, (const uint8_t *)req, sizeof(req) - 1, collect, &s),
                         sizeof(req) - 1);
        assert_int_equal(tt_httpproxy_response(&x, in, i), i);
        assert_int_equal(tt_httpproxy_response(&x, in + i, sizeof(rsp) - 1 - i),
                         sizeof(rsp) - 1 - i);
        assert_int_equal(x.npending, 0);
        assert_int_equal(x.track, TT_HTTPPROXY_TRACKING);
        tt_httpproxy_reset(&x);
    }
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
                               "X-Forwarded-Host: abc.localhost\r\n"
                               "Forwarded: for=1.2.3.4;host=\"abc.localhost\";proto=https\r\n"
                               "X-Real-IP: 1.2.3.4\r\n\r\n";
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

/* ---- both ways ------------------------------------------------------------------------- */

static struct tt_httpproxy cx;
static struct sink cs;

static void conn_start(void)
{
    tt_httpproxy_init(&cx, "abc.localhost", "10.0.0.1");
    cs.len = 0;
}

/* Feeds the client's in; returns what the filter took (or the error). */
static tt_ssize client(const char *in)
{
    return tt_httpproxy_feed(&cx, (const uint8_t *)in, strlen(in), collect, &cs);
}

/* Feeds the device's in; returns how many bytes pass, and the events in *ev. */
static size_t device(const char *in, unsigned *ev)
{
    cx.events = 0;
    size_t n = tt_httpproxy_response(&cx, (const uint8_t *)in, strlen(in));
    *ev = cx.events;
    cx.events = 0;
    return n;
}

static bool sent(const char *needle)
{
    return memmem(cs.buf, cs.len, needle, strlen(needle)) != NULL;
}

/* Issue 9, item 4: a device that ignores an Upgrade keeps the connection HTTP: the request
 * pipelined after it waits for the answer, then goes through the filter (a forged Host is
 * refused, X-Forwarded-* are the relay's). */
static void test_upgrade_declined(void **state)
{
    (void)state;
    static const char up[] = "GET /ws HTTP/1.1\r\nHost: abc.localhost\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\n\r\n";
    static const char next[] = "GET /2 HTTP/1.1\r\nHost: abc.localhost\r\n"
                               "X-Forwarded-Host: evil\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n";
    char both[512];
    snprintf(both, sizeof(both), "%s%s", up, next);
    unsigned ev;
    conn_start();
    assert_int_equal(client(both), sizeof(up) - 1); /* the second request waits */
    assert_int_equal(cx.mode, TT_HTTPPROXY_WAIT);
    assert_false(sent("GET /2"));
    assert_int_equal(client(next), 0); /* offered again too early: still waiting */
    static const char no[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno";
    assert_int_equal(device(no, &ev), sizeof(no) - 1);
    assert_true(ev & TT_HTTPPROXY_EV_DECLINED);
    assert_true(ev & TT_HTTPPROXY_EV_RESUME);
    assert_int_equal(cx.mode, TT_HTTPPROXY_HEAD);
    assert_int_equal(client(next), sizeof(next) - 1);
    assert_true(sent("GET /2 HTTP/1.1\r\nHost: abc.localhost\r\nX-Forwarded-For: 6.6.6.6, "
                     "10.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: abc.localhost\r\n"));
    assert_false(sent("evil"));
    tt_httpproxy_reset(&cx);

    /* the same with another Host: refused, as on any keep-alive connection */
    conn_start();
    static const char other[] = "GET /2 HTTP/1.1\r\nHost: evil.localhost\r\n\r\n";
    assert_int_equal(client(up), sizeof(up) - 1);
    assert_int_equal(client(other), 0);
    assert_int_equal(device("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", &ev), 45);
    assert_int_equal(client(other), TETHER_ERR_NOT_FOUND);
    assert_int_equal(cx.reason, TT_REFUSAL_OTHER_HOST);
    assert_false(sent("evil"));
    tt_httpproxy_reset(&cx);
}

static void test_upgrade_accepted(void **state)
{
    (void)state;
    static const char up[] = "GET /ws HTTP/1.1\r\nHost: abc.localhost\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\n\r\n";
    unsigned ev;
    conn_start();
    char both[512];
    snprintf(both, sizeof(both), "%s%s", up, "\x81\x05hello GET / HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_int_equal(client(both), sizeof(up) - 1);
    size_t before = cs.len;
    static const char yes[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\n\r\n\x81\x02hi";
    assert_int_equal(device(yes, &ev), sizeof(yes) - 1);
    assert_true(ev & TT_HTTPPROXY_EV_SWITCHED);
    assert_true(ev & TT_HTTPPROXY_EV_RESUME);
    assert_int_equal(cx.mode, TT_HTTPPROXY_RAW);
    assert_int_equal(cx.track, TT_HTTPPROXY_SWITCHED);
    const char *rest = both + sizeof(up) - 1;
    assert_int_equal(client(rest), strlen(rest));
    assert_int_equal(cs.len - before, strlen(rest));
    assert_memory_equal(cs.buf + before, rest, strlen(rest)); /* raw, byte for byte */
    assert_int_equal(device("anything at all \r\n\xff", &ev), 19);
    tt_httpproxy_reset(&cx);

    /* CONNECT: a 2xx opens the tunnel, anything else does not */
    conn_start();
    static const char connect[] =
        "CONNECT abc.localhost:80 HTTP/1.1\r\nHost: abc.localhost\r\n\r\n";
    assert_int_equal(client(connect), sizeof(connect) - 1);
    assert_int_equal(cx.mode, TT_HTTPPROXY_WAIT);
    device("HTTP/1.1 200 Connection established\r\n\r\n", &ev);
    assert_true(ev & TT_HTTPPROXY_EV_SWITCHED);
    assert_int_equal(cx.mode, TT_HTTPPROXY_RAW);
    tt_httpproxy_reset(&cx);
    conn_start();
    assert_int_equal(client(connect), sizeof(connect) - 1);
    device("HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n", &ev);
    assert_true(ev & TT_HTTPPROXY_EV_DECLINED);
    assert_int_equal(cx.mode, TT_HTTPPROXY_HEAD);
    assert_int_equal(cx.track, TT_HTTPPROXY_TRACKING);
    tt_httpproxy_reset(&cx);
}

/* Responses without a body (HEAD; 1xx, 204, 304 whatever Content-Length says), interim
 * responses, chunked and Content-Length bodies: each answers the right request. */
static void test_response_tracking(void **state)
{
    (void)state;
    unsigned ev;
    conn_start();
    assert_true(client("HEAD /a HTTP/1.1\r\nHost: abc.localhost\r\n\r\n"
                       "GET /b HTTP/1.1\r\nHost: abc.localhost\r\n\r\n"
                       "GET /c HTTP/1.1\r\nHost: abc.localhost\r\n\r\n"
                       "POST /d HTTP/1.1\r\nHost: abc.localhost\r\nContent-Length: 1\r\n\r\nx"
                       "GET /e HTTP/1.1\r\nHost: abc.localhost\r\n\r\n") > 0);
    assert_int_equal(cx.npending, 5);
    device("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", &ev); /* HEAD: no body */
    assert_int_equal(cx.npending, 4);
    device("HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n", &ev);
    assert_int_equal(cx.npending, 3);
    device("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", &ev);
    assert_int_equal(cx.npending, 3);
    device("0\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n",
           &ev);
    assert_int_equal(cx.npending, 2);
    device("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", &ev);
    assert_int_equal(cx.npending, 1);
    /* a sloppy server's chunked body with a Content-Length too: read as a browser reads it */
    device("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
           "2\r\nok\r\n0\r\n\r\n",
           &ev);
    assert_int_equal(cx.npending, 0);
    assert_int_equal(cx.track, TT_HTTPPROXY_TRACKING);
    assert_int_equal(ev, 0);
    tt_httpproxy_reset(&cx);
}

/* What the tracker cannot read: it stops, the bytes pass, no new request is taken. */
static void test_tracking_lost(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", /* to nobody */
        "garbage\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        unsigned ev;
        conn_start();
        assert_true(client("GET / HTTP/1.1\r\nHost: abc.localhost\r\n\r\n") > 0);
        assert_int_equal(device(bad[i], &ev), strlen(bad[i]));
        assert_true(ev & TT_HTTPPROXY_EV_LOST);
        assert_int_equal(cx.track, TT_HTTPPROXY_LOST);
        assert_int_equal(device("more bytes", &ev), 10);
        size_t before = cs.len;
        assert_int_equal(client("GET /2 HTTP/1.1\r\nHost: abc.localhost\r\n\r\n"), 0);
        assert_int_equal(cs.len, before);
        tt_httpproxy_reset(&cx);
    }
}

/* At TT_HTTPPROXY_MAX_PENDING unanswered requests the filter takes no more until a response
 * ends. */
static void test_pipeline_cap(void **state)
{
    (void)state;
    static const char one[] = "GET / HTTP/1.1\r\nHost: abc.localhost\r\n\r\n";
    static char many[(sizeof(one) - 1) * (TT_HTTPPROXY_MAX_PENDING + 8) + 1];
    size_t n = 0;
    for (int i = 0; i < TT_HTTPPROXY_MAX_PENDING + 8; i++) {
        memcpy(many + n, one, sizeof(one) - 1);
        n += sizeof(one) - 1;
    }
    many[n] = '\0';
    unsigned ev;
    conn_start();
    size_t took = (size_t)client(many);
    assert_int_equal(took, (sizeof(one) - 1) * TT_HTTPPROXY_MAX_PENDING);
    assert_true(cx.events & TT_HTTPPROXY_EV_FULL);
    cx.events = 0;
    assert_int_equal(cx.npending, TT_HTTPPROXY_MAX_PENDING);
    device("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &ev);
    assert_true(ev & TT_HTTPPROXY_EV_RESUME);
    assert_int_equal(client(many + took), sizeof(one) - 1);
    tt_httpproxy_reset(&cx);
}

/* Issue 9: a valid request pipelined before a refused one is answered first; the page waits
 * for its response, and whatever the device sends after it is not passed on. */
static void test_refusal_after_responses(void **state)
{
    (void)state;
    static const char good[] = "GET /a HTTP/1.1\r\nHost: abc.localhost\r\n\r\n"
                               "HEAD /b HTTP/1.1\r\nHost: abc.localhost\r\n\r\n";
    char both[512];
    snprintf(both, sizeof(both), "%sGET /bad\tx HTTP/1.1\r\nHost: abc.localhost\r\n\r\n", good);
    unsigned ev;
    conn_start();
    assert_int_equal(client(both), sizeof(good) - 1);
    assert_int_equal(cx.refused, TETHER_ERR_HTTP);
    assert_int_equal(cx.owed, 2);
    assert_int_equal(client(""), 0); /* still owed */
    static const char r1[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    static const char r2[] = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n";
    assert_int_equal(device(r1, &ev), sizeof(r1) - 1);
    assert_false(ev & TT_HTTPPROXY_EV_RESUME);
    char rest[256];
    snprintf(rest, sizeof(rest), "%sHTTP/1.1 200 OK\r\n\r\nnot owed", r2);
    assert_int_equal(device(rest, &ev), sizeof(r2) - 1);
    assert_true(ev & TT_HTTPPROXY_EV_RESUME);
    assert_int_equal(device("more", &ev), 0);
    assert_int_equal(client(""), TETHER_ERR_HTTP);
    assert_int_equal(cx.reason, TT_REFUSAL_TARGET);
    tt_httpproxy_reset(&cx);

    /* nothing owed: refused at once */
    conn_start();
    assert_int_equal(client("GET /bad\tx HTTP/1.1\r\nHost: abc.localhost\r\n\r\n"),
                     TETHER_ERR_HTTP);
    tt_httpproxy_reset(&cx);

    /* a body cut by a bad chunk: that request is never answered, the ones before it are */
    conn_start();
    assert_true(client("GET /a HTTP/1.1\r\nHost: abc.localhost\r\n\r\n"
                       "POST /b HTTP/1.1\r\nHost: abc.localhost\r\nTransfer-Encoding: chunked\r\n"
                       "\r\n2\r\nab\r\nzz\r\n") >= 0);
    assert_int_equal(cx.refused, TETHER_ERR_HTTP);
    assert_int_equal(cx.owed, 1);
    assert_int_equal(device(r1, &ev), sizeof(r1) - 1);
    assert_true(ev & TT_HTTPPROXY_EV_RESUME);
    assert_int_equal(client(""), TETHER_ERR_HTTP);
    assert_int_equal(cx.reason, TT_REFUSAL_FRAMING);
    tt_httpproxy_reset(&cx);
}

/* The tracker does not depend on how the device's bytes are cut: the same events, the same
 * bytes passed, split at every offset. */
static void test_response_splits(void **state)
{
    (void)state;
    static const char req[] = "GET /a HTTP/1.1\r\nHost: abc.localhost\r\n\r\n"
                              "HEAD /b HTTP/1.1\r\nHost: abc.localhost\r\n\r\n"
                              "GET /c HTTP/1.1\r\nHost: abc.localhost\r\n\r\n"
                              "GET /bad\tx HTTP/1.1\r\nHost: abc.localhost\r\n\r\n";
    static const char rsp[] = "HTTP/1.1 100 Continue\r\n\r\n"
                              "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "4\r\nabcd\r\n0\r\n\r\n"
                              "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n"
                              "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nxyz"
                              "HTTP/1.1 500 Not owed\r\n\r\n";
    size_t owed_end = sizeof(rsp) - 1 - strlen("HTTP/1.1 500 Not owed\r\n\r\n");
    for (size_t sp = 0; sp <= sizeof(rsp) - 1; sp++) {
        unsigned all = 0;
        conn_start();
        assert_true(client(req) > 0);
        assert_int_equal(cx.owed, 3);
        cx.events = 0;
        size_t p1 = tt_httpproxy_response(&cx, (const uint8_t *)rsp, sp);
        all |= cx.events;
        cx.events = 0;
        size_t p2 = tt_httpproxy_response(&cx, (const uint8_t *)rsp + sp, sizeof(rsp) - 1 - sp);
        all |= cx.events;
        cx.events = 0;
        assert_int_equal(p1 < sp ? p1 : p1 + p2, owed_end);
        if (p1 < sp)
            assert_int_equal(p2, 0);
        assert_int_equal(all, TT_HTTPPROXY_EV_RESUME);
        assert_int_equal(cx.track, TT_HTTPPROXY_TRACKING);
        assert_int_equal(client(""), TETHER_ERR_HTTP);
        tt_httpproxy_reset(&cx);
    }
}

/* Issue 10: the relay's cookie never reaches a device, whatever the Cookie header's shape;
 * other cookies pass byte for byte; a header left empty is dropped. */
static void test_cookie_stripped(void **state)
{
    (void)state;
    CHECK("abc.localhost",
          "GET / HTTP/1.1\r\nHost: abc.localhost\r\nCookie: a=1; tether_session=s3; b=2\r\n"
          "Cookie: tether_session=x\r\ncookie:c=3;__Host-tether_session=y\r\n"
          "Cookie: d=4\r\nCOOKIE:  TETHER_SESSION = z ;  \r\n\r\n",
          "GET / HTTP/1.1\r\nHost: abc.localhost\r\nCookie: a=1; b=2\r\ncookie: c=3\r\n"
          "Cookie: d=4\r\n" ADDED("abc.localhost"));
    /* untouched when it is not there: the same bytes */
    CHECK(
        "abc.localhost", "GET / HTTP/1.1\r\nHost: abc.localhost\r\nCookie:   x=1;;y = 2  \r\n\r\n",
        "GET / HTTP/1.1\r\nHost: abc.localhost\r\nCookie: x=1;;y = 2  \r\n" ADDED("abc.localhost"));
}

/* The owner's check: ANSWER refuses a request (after the responses owed), HOLD sends a small
 * form only once its body is known not to be the sign-in form. */
static int check_verdict;
static unsigned check_calls;
static int test_check(void *ud, const struct tt_httpproxy *x, const uint8_t *head, size_t len)
{
    (void)ud;
    (void)head;
    (void)len;
    check_calls++;
    return x->hp.p.method == HTTP_POST ? check_verdict : TT_HTTPPROXY_PASS;
}

static void test_check_answer_and_hold(void **state)
{
    (void)state;
    unsigned ev;
    static const char get[] = "GET /a HTTP/1.1\r\nHost: abc.localhost\r\n\r\n";
    static const char post_signin[] =
        "POST /f HTTP/1.1\r\nHost: abc.localhost\r\nContent-Length: 27\r\n\r\n"
        "user=alice&secret=s3cr3t%21";
    static const char post_other[] =
        "POST /f HTTP/1.1\r\nHost: abc.localhost\r\nContent-Length: 7\r\n\r\nname=xy";
    static const char r1[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    /* ANSWER after a valid request: waits for its response */
    check_verdict = TT_HTTPPROXY_ANSWER;
    check_calls = 0;
    conn_start();
    cx.check = test_check;
    char both[512];
    snprintf(both, sizeof(both), "%s%s", get, post_other);
    assert_int_equal(client(both), sizeof(get) - 1);
    assert_true(cx.local);
    assert_int_equal(cx.owed, 1);
    size_t sent = cs.len;
    assert_int_equal(device(r1, &ev), sizeof(r1) - 1);
    assert_true(ev & TT_HTTPPROXY_EV_RESUME);
    assert_int_equal(client(""), TETHER_ERR_AUTH);
    assert_int_equal(cs.len, sent); /* the POST never went out */
    assert_int_equal(check_calls, 2);
    tt_httpproxy_reset(&cx);

    /* HOLD: the sign-in form is refused, head and body unsent, whatever the split */
    check_verdict = TT_HTTPPROXY_HOLD;
    for (size_t sp = 1; sp < sizeof(post_signin) - 1; sp++) {
        conn_start();
        cx.check = test_check;
        tt_ssize rc = tt_httpproxy_feed(&cx, (const uint8_t *)post_signin, sp, collect, &cs);
        if (rc >= 0)
            rc = tt_httpproxy_feed(&cx, (const uint8_t *)post_signin + sp,
                                   sizeof(post_signin) - 1 - sp, collect, &cs);
        assert_int_equal(rc, TETHER_ERR_AUTH);
        assert_true(cx.local);
        assert_int_equal(cs.len, 0);
        tt_httpproxy_reset(&cx);
    }
    /* another form passes whole (head then body), and the connection goes on */
    for (size_t sp = 1; sp < sizeof(post_other) - 1; sp++) {
        conn_start();
        cx.check = test_check;
        assert_int_equal(tt_httpproxy_feed(&cx, (const uint8_t *)post_other, sp, collect, &cs), sp);
        assert_int_equal(tt_httpproxy_feed(&cx, (const uint8_t *)post_other + sp,
                                           sizeof(post_other) - 1 - sp, collect, &cs),
                         sizeof(post_other) - 1 - sp);
        assert_true(cs.len > 7 && memcmp(cs.buf + cs.len - 7, "name=xy", 7) == 0);
        assert_non_null(memmem(cs.buf, cs.len, "Content-Length: 7\r\n", 19));
        assert_null(cx.held);
        assert_int_equal(client(get), sizeof(get) - 1);
        tt_httpproxy_reset(&cx);
    }
    /* a body too large to hold passes at once */
    conn_start();
    cx.check = test_check;
    static const char big[] = "POST /f HTTP/1.1\r\nHost: abc.localhost\r\nContent-Length: 5000"
                              "\r\n\r\nuser=";
    assert_int_equal(client(big), sizeof(big) - 1);
    assert_null(cx.held);
    assert_true(cs.len > 0);
    tt_httpproxy_reset(&cx); /* (and reset gives back a held chunk: see below) */
    conn_start();
    cx.check = test_check;
    static const char part[] = "POST /f HTTP/1.1\r\nHost: abc.localhost\r\nContent-Length: 20"
                               "\r\n\r\nuser=a";
    assert_int_equal(client(part), sizeof(part) - 1);
    assert_non_null(cx.held);
    assert_int_equal(cs.len, 0);
    tt_httpproxy_reset(&cx);
    assert_null(cx.held);
}

/* A device response that sets the relay's cookie is cut inside its head (the browser never
 * gets the end of the head), whatever the split; the next feed ends the connection. */
static void test_device_sets_relay_cookie(void **state)
{
    (void)state;
    static const char *const evil[] = {
        "HTTP/1.1 200 OK\r\nSet-Cookie: tether_session=abc; Domain=localhost\r\n"
        "Content-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-Empty:\r\nset-cookie:__Host-tether_session=1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nSET-COOKIE:    =TeThEr_SeSsIoN=1\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 103 Early Hints\r\nSet-Cookie: tether_session  =2\r\n\r\n"
        "HTTP/1.1 204 No Content\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
        "Set-Cookie: tether_session=3\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(evil) / sizeof(evil[0]); i++) {
        size_t len = strlen(evil[i]);
        for (size_t sp = 0; sp <= len; sp++) {
            unsigned ev;
            conn_start();
            assert_true(client("GET / HTTP/1.1\r\nHost: abc.localhost\r\n\r\n") > 0);
            size_t p1 = tt_httpproxy_response(&cx, (const uint8_t *)evil[i], sp);
            size_t p2 = tt_httpproxy_response(&cx, (const uint8_t *)evil[i] + sp, len - sp);
            ev = cx.events;
            assert_true(cx.cut);
            assert_true(ev & TT_HTTPPROXY_EV_RESUME);
            size_t passed = p1 < sp ? p1 : p1 + p2;
            if (p1 < sp)
                assert_int_equal(p2, 0);
            /* what passed ends before the cookie's value (and so before the head's end) */
            const char *cookie = strcasestr(evil[i], "ession");
            size_t value_at = (size_t)(strchr(cookie, '=') - evil[i]);
            if (passed > value_at)
                fprintf(stderr, "case %zu split %zu: passed %zu\n", i, sp, passed);
            assert_true(passed <= value_at);
            assert_int_equal(device("more", &ev), 0);
            assert_int_equal(client(""), TETHER_ERR_PROTO);
            tt_httpproxy_reset(&cx);
        }
    }
    /* the device's own cookies pass */
    unsigned ev;
    conn_start();
    assert_true(client("GET / HTTP/1.1\r\nHost: abc.localhost\r\n\r\n") > 0);
    static const char ok[] = "HTTP/1.1 200 OK\r\nSet-Cookie: a=tether_session\r\n"
                             "Set-Cookie: tether_sessions=1\r\nSet-Cookie: tether_session\r\n"
                             "Set-Cookiex: tether_session=1\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(device(ok, &ev), sizeof(ok) - 1);
    assert_false(cx.cut);
    assert_int_equal(cx.npending, 0);
    tt_httpproxy_reset(&cx);
    /* untracked bytes that spell the name are cut too, across calls */
    conn_start();
    assert_true(client("GET / HTTP/1.1\r\nHost: abc.localhost\r\n\r\n") > 0);
    assert_int_equal(device("garbage\r\n", &ev), 9);
    assert_int_equal(cx.track, TT_HTTPPROXY_LOST);
    assert_int_equal(device("xx tettether_SES", &ev), 16); /* not whole yet: passes */
    assert_false(cx.cut);
    assert_int_equal(device("sion=1", &ev), 0);
    assert_true(cx.cut);
    assert_int_equal(client(""), TETHER_ERR_PROTO);
    tt_httpproxy_reset(&cx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_client_forwarded_headers),
        cmocka_unit_test(test_identity_headers_dropped),
        cmocka_unit_test(test_forwarded_ipv6_https),
        cmocka_unit_test(test_keepalive_bodies),
        cmocka_unit_test(test_chunked_smuggling_reframed),
        cmocka_unit_test(test_upload_sizes),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_framing_refused),
        cmocka_unit_test(test_head_too_large),
        cmocka_unit_test(test_guard_page),
        cmocka_unit_test(test_rewrite_small_buffer),
        cmocka_unit_test(test_rewrite_https),
        cmocka_unit_test(test_has_token),
        cmocka_unit_test(test_uri_too_long),
        cmocka_unit_test(test_strict_heads),
        cmocka_unit_test(test_header_bytes_everywhere),
        cmocka_unit_test(test_cluster_headers_dropped),
        cmocka_unit_test(test_upgrade_declined),
        cmocka_unit_test(test_upgrade_accepted),
        cmocka_unit_test(test_response_tracking),
        cmocka_unit_test(test_tracking_lost),
        cmocka_unit_test(test_pipeline_cap),
        cmocka_unit_test(test_refusal_after_responses),
        cmocka_unit_test(test_response_splits),
        cmocka_unit_test(test_cookie_stripped),
        cmocka_unit_test(test_check_answer_and_hold),
        cmocka_unit_test(test_device_sets_relay_cookie),
    };
    tt_chunk_pool_drain();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tt_chunk_pool_drain();
    return rc;
}
