/* test_mcuws.c - unit tests of the microcontroller agent's WebSocket client (mcu/agent/mcuws.c):
 * RFC 6455's example key, the request, every answer the relay may give or a hostile one might,
 * and the frame reader fed whole, one byte at a time and split at every offset. cmocka; built and
 * run by make mcu-test (build/mcu/host/tests/test_mcuws). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "mcuws.h"

/* RFC 6455 1.3: the nonce "the sample nonce" and its accept value. */
static const uint8_t sample_nonce[16] = "the sample nonce";

static void test_key_rfc_example(void **state)
{
    char key[TT_MCUWS_KEY_LEN + 1], accept[TT_MCUWS_ACCEPT_LEN + 1];

    assert_int_equal(tt_mcuws_key(sample_nonce, key, accept), 0);
    assert_string_equal(key, "dGhlIHNhbXBsZSBub25jZQ==");
    assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_request(void **state)
{
    char out[512];
    size_t n = tt_mcuws_request(out, sizeof out, "10.0.0.1", 8080, NULL, "KEY");

    out[n] = '\0';
    assert_string_equal(out, "GET / HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\nSec-WebSocket-Key: KEY\r\n"
                             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tether.v1\r\n"
                             "User-Agent: tether-mcu/1\r\n\r\n");
    n = tt_mcuws_request(out, sizeof out, "relay.example", 80, "/dev", "KEY");
    out[n] = '\0';
    assert_non_null(strstr(out, "GET /dev HTTP/1.1\r\nHost: relay.example\r\n"));
    /* Too small: 0, never a cut request. */
    for (size_t cap = 0; cap < 100; cap++)
        assert_int_equal(tt_mcuws_request(out, cap, "10.0.0.1", 8080, NULL, "KEY"), 0);
}

static const char *ok101 = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                           "Sec-WebSocket-Protocol: tether.v1\r\n\r\n";

static int check(const char *head)
{
    struct tt_mcuws_answer ans;

    return tt_mcuws_answer_check(head, strlen(head), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", &ans);
}

static void test_answer_ok_and_partial(void **state)
{
    struct tt_mcuws_answer ans;
    char buf[512];
    size_t len = strlen(ok101), i;

    assert_int_equal(check(ok101), (int)len);
    /* Every prefix is partial; bytes after the head are not part of it. */
    for (i = 0; i < len; i++)
        assert_int_equal(tt_mcuws_answer_check(ok101, i, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", &ans),
                         TT_MCUWS_PARTIAL);
    memcpy(buf, ok101, len);
    memcpy(buf + len, "\x82\x02\x00\x01", 4);
    assert_int_equal(tt_mcuws_answer_check(buf, len + 4, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", &ans),
                     (int)len);
    /* Header names and the upgrade token in any case, Connection as a list. */
    assert_true(check("HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nCONNECTION: keep-alive, Upgrade\r\n"
                      "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n") > 0);
}

static void test_answer_refusals(void **state)
{
    struct tt_mcuws_answer ans;
    const char *h503 = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n"
                       "Content-Length: 0\r\n\r\n";

    assert_int_equal(tt_mcuws_answer_check(h503, strlen(h503), "x", &ans), TT_MCUWS_NOT_101);
    assert_int_equal(ans.status, 503);
    assert_int_equal(ans.retry_after, 7);
    assert_int_equal(check("HTTP/1.1 101 OK\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"),
                     TT_MCUWS_BAD_UPGRADE);
    assert_int_equal(check("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo\r\n\r\n"),
                     TT_MCUWS_BAD_ACCEPT);
    assert_int_equal(check("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
                     TT_MCUWS_BAD_ACCEPT);
    assert_int_equal(check("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                           "Sec-WebSocket-Protocol: chat\r\n\r\n"),
                     TT_MCUWS_BAD_PROTOCOL);
    assert_int_equal(check("SSH-2.0-OpenSSH_9.6\r\n\r\n"), TT_MCUWS_BAD);
    assert_int_equal(check("HTTP/1.1 101 OK\r\nUpgrade websocket\r\n\r\n"), TT_MCUWS_BAD);
}

static void test_answer_too_many_headers(void **state)
{
    char buf[1024];
    size_t n = 0;
    int i;

    n += (size_t)snprintf(buf + n, sizeof buf - n, "HTTP/1.1 101 OK\r\n");
    for (i = 0; i < 17; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "X-%d: y\r\n", i);
    snprintf(buf + n, sizeof buf - n, "\r\n");
    assert_int_equal(check(buf), TT_MCUWS_BAD);
}

static void test_header_and_mask(void **state)
{
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t h[TT_MCUWS_HDR_MAX], p[5] = "Hello";

    /* RFC 6455 5.7: a masked "Hello". */
    assert_int_equal(tt_mcuws_header(h, TT_MCUWS_TEXT, 5, mask), 6);
    assert_memory_equal(h, "\x81\x85\x37\xfa\x21\x3d", 6);
    tt_mcuws_mask(p, 5, mask, 0);
    assert_memory_equal(p, "\x7f\x9f\x4d\x51\x58", 5);
    assert_int_equal(tt_mcuws_header(h, TT_MCUWS_BINARY, 256, mask), 8);
    assert_memory_equal(h, "\x82\xfe\x01\x00", 4);
    assert_int_equal(tt_mcuws_header(h, TT_MCUWS_BINARY, 65536, mask), 14);
    assert_memory_equal(h, "\x82\xff\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    /* Masking in pieces equals masking at once. */
    uint8_t a[7] = "abcdefg", b[7] = "abcdefg";
    tt_mcuws_mask(a, 7, mask, 0);
    tt_mcuws_mask(b, 3, mask, 0);
    tt_mcuws_mask(b + 3, 4, mask, 3);
    assert_memory_equal(a, b, 7);
}

/* What the reader handed out, written down. */
struct rec {
    char log[512];
    size_t len;
};

static int rec_data(void *ud, const uint8_t *p, size_t n)
{
    struct rec *r = ud;
    r->len +=
        (size_t)snprintf(r->log + r->len, sizeof r->log - r->len, "%.*s", (int)n, (const char *)p);
    return 0;
}

static int rec_control(void *ud, uint8_t op, const uint8_t *p, size_t n)
{
    struct rec *r = ud;
    r->len += (size_t)snprintf(r->log + r->len, sizeof r->log - r->len, "[%x:%.*s]", op, (int)n,
                               (const char *)p);
    return 0;
}

static const struct tt_mcuws_reader_callbacks rec_cb = {rec_data, rec_control};

/* Feeds in split at every offset (and byte by byte): the same log and result each time. */
static void feed_all_ways(const uint8_t *in, size_t n, const char *want, int want_err)
{
    struct tt_mcuws_reader rd;
    struct rec r;
    size_t cut, i;
    long rv;

    for (cut = 0; cut <= n + 1; cut++) {
        memset(&r, 0, sizeof r);
        tt_mcuws_reader_init(&rd);
        if (cut <= n) {
            rv = tt_mcuws_read(&rd, in, cut, &rec_cb, &r);
            if (rv >= 0)
                rv = tt_mcuws_read(&rd, in + cut, n - cut, &rec_cb, &r);
        } else {
            for (i = 0, rv = 0; i < n && rv >= 0; i++)
                rv = tt_mcuws_read(&rd, in + i, 1, &rec_cb, &r);
        }
        if (want_err) {
            assert_int_equal(rv, -1);
            assert_int_equal(rd.err, want_err);
        } else {
            assert_true(rv >= 0);
            assert_string_equal(r.log, want);
        }
    }
}

static void test_reader_frames(void **state)
{
    /* binary "ab" in two fragments with a ping between, a pong, a 126-byte length form, close. */
    uint8_t in[300];
    size_t n = 0;

    memcpy(in + n,
           "\x02\x01"
           "a",
           3),
        n += 3;
    memcpy(in + n, "\x89\x02hi", 4), n += 4;
    memcpy(in + n,
           "\x80\x01"
           "b",
           3),
        n += 3;
    memcpy(in + n, "\x8a\x00", 2), n += 2;
    memcpy(in + n, "\x82\x7e\x00\x80", 4), n += 4;
    memset(in + n, 'x', 128), n += 128;
    memcpy(in + n, "\x88\x02\x03\xe8", 4), n += 4;
    char want[400];
    snprintf(want, sizeof want, "a[9:hi]b[a:]%0128d[8:\x03\xe8]", 0);
    memset(want + 12, 'x', 128);
    feed_all_ways(in, n, want, 0);
}

static void test_reader_rejects(void **state)
{
    feed_all_ways((const uint8_t *)"\x81\x01x", 3, NULL, TT_MCUWS_ERR_TEXT);
    feed_all_ways((const uint8_t *)"\x82\x81\x00\x00\x00\x00x", 7, NULL, TT_MCUWS_ERR_PROTOCOL);
    feed_all_ways((const uint8_t *)"\xc2\x01x", 3, NULL, TT_MCUWS_ERR_PROTOCOL); /* RSV1 */
    feed_all_ways((const uint8_t *)"\x80\x01x", 3, NULL, TT_MCUWS_ERR_PROTOCOL); /* stray cont */
    feed_all_ways((const uint8_t *)"\x02\x01x\x82\x01y", 6, NULL, TT_MCUWS_ERR_PROTOCOL);
    feed_all_ways((const uint8_t *)"\x09\x00", 2, NULL, TT_MCUWS_ERR_PROTOCOL); /* split ping */
    feed_all_ways((const uint8_t *)"\x89\x7e\x00\x7e", 4, NULL, TT_MCUWS_ERR_PROTOCOL);
    feed_all_ways((const uint8_t *)"\x83\x00", 2, NULL, TT_MCUWS_ERR_PROTOCOL); /* opcode 3 */
    feed_all_ways((const uint8_t *)"\x82\x7e\x00\x10", 4, NULL, TT_MCUWS_ERR_PROTOCOL);
    feed_all_ways((const uint8_t *)"\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00", 10, NULL,
                  TT_MCUWS_ERR_PROTOCOL);
}

/* Bounded random input: the reader never reads or writes out of bounds (ASan) and either goes on
 * or fails with a reason. */
static void test_reader_random(void **state)
{
    struct tt_mcuws_reader rd;
    struct rec r;
    uint8_t in[64];
    uint32_t x = 12345;
    int round, i;
    long rv;

    for (round = 0; round < 20000; round++) {
        tt_mcuws_reader_init(&rd);
        memset(&r, 0, sizeof r);
        for (i = 0; i < (int)sizeof in; i++) {
            x = x * 1103515245u + 12345u;
            in[i] = (uint8_t)(x >> 16);
        }
        in[0] = (uint8_t)((in[0] & 0x8f) | 0x80);
        in[1] &= 0x7f;
        rv = tt_mcuws_read(&rd, in, sizeof in, &rec_cb, &r);
        assert_true(rv == (long)sizeof in || (rv == -1 && rd.err != TT_MCUWS_ERR_NONE));
        r.len = 0;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_rfc_example),         cmocka_unit_test(test_request),
        cmocka_unit_test(test_answer_ok_and_partial),   cmocka_unit_test(test_answer_refusals),
        cmocka_unit_test(test_answer_too_many_headers), cmocka_unit_test(test_header_and_mask),
        cmocka_unit_test(test_reader_frames),           cmocka_unit_test(test_reader_rejects),
        cmocka_unit_test(test_reader_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
