/* test_wshs.c - unit tests for src/common/wshs.c: RFC 6455 section 1.3 accept vector, request and
 * response writers, and the response parser fed whole, byte by byte and against a guard page. */
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

#include "common/wshs.h"
#include "core/frame.h"
#include "tether_err.h"
#include "support_guard.h"

static void test_accept_rfc(void **state)
{
    char acc[TT_WS_ACCEPTLEN + 1];
    (void)state;
    assert_int_equal(tt_wshs_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, acc), 0);
    assert_string_equal(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_make_key(void **state)
{
    char a[TT_WS_KEYLEN + 1], b[TT_WS_KEYLEN + 1];
    (void)state;
    assert_int_equal(tt_wshs_make_key(a), 0);
    assert_int_equal(tt_wshs_make_key(b), 0);
    assert_int_equal(strlen(a), 24);
    assert_string_not_equal(a, b);
    assert_int_equal(a[22], '=');
    assert_int_equal(a[23], '=');
}

static void test_client_request(void **state)
{
    char out[1024];
    (void)state;
    int n = tt_wshs_client_request(out, sizeof(out), "relay.example", 8080, false, "/ws",
                                   "dGhlIHNhbXBsZSBub25jZQ==");
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(out));
    assert_true(strncmp(out, "GET /ws HTTP/1.1\r\n", 18) == 0);
    assert_non_null(strstr(out, "\r\nHost: relay.example:8080\r\n"));
    assert_non_null(strstr(out, "\r\nUpgrade: websocket\r\n"));
    assert_non_null(strstr(out, "\r\nConnection: Upgrade\r\n"));
    assert_non_null(strstr(out, "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
    assert_non_null(strstr(out, "\r\nSec-WebSocket-Version: 13\r\n"));
    assert_non_null(strstr(out, "\r\nSec-WebSocket-Protocol: tether.v1\r\n"));
    assert_true(strcmp(out + n - 4, "\r\n\r\n") == 0);

    n = tt_wshs_client_request(out, sizeof(out), "::1", 443, true, "", "k");
    assert_true(n > 0);
    assert_true(strncmp(out, "GET / HTTP/1.1\r\n", 16) == 0);
    assert_non_null(strstr(out, "\r\nHost: [::1]\r\n"));
    assert_int_equal(tt_wshs_client_request(out, 50, "h", 80, true, "/", "k"),
                     TETHER_ERR_TOO_LARGE);
}

static const char ok_resp[] = "HTTP/1.1 101 Switching Protocols\r\n"
                              "Upgrade: WebSocket\r\n"
                              "Connection: keep-alive, Upgrade\r\n"
                              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                              "Sec-WebSocket-Protocol: tether.v1\r\n"
                              "\r\n";
#define KEY "dGhlIHNhbXBsZSBub25jZQ=="

/* Copies s right before a PROT_NONE page and parses it there: any over-read crashes. */
static int parse_guarded(const char *s, size_t len, struct tt_wshs_response *r)
{
    return tt_wshs_read_response(ut_guarded(s, len), len, KEY, r);
}

static void test_parse_ok(void **state)
{
    struct tt_wshs_response r;
    char buf[1024];
    size_t hl = strlen(ok_resp);
    (void)state;
    /* With WebSocket bytes after the head. */
    memcpy(buf, ok_resp, hl);
    memcpy(buf + hl, "\x82\x00", 2);
    assert_int_equal(parse_guarded(buf, hl + 2, &r), 0);
    assert_int_equal(r.status, 101);
    assert_true(r.accepted);
    assert_int_equal(r.head_len, hl);
    /* Every prefix is incomplete. */
    for (size_t i = 0; i < hl; i++)
        assert_int_equal(parse_guarded(ok_resp, i, &r), TETHER_ERR_AGAIN);
    assert_int_equal(parse_guarded(ok_resp, hl, &r), 0);
    assert_true(r.accepted);
}

static void test_parse_rejects(void **state)
{
    struct tt_wshs_response r;
    (void)state;
    const char *wrong_accept = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n";
    assert_int_equal(parse_guarded(wrong_accept, strlen(wrong_accept), &r), 0);
    assert_int_equal(r.status, 101);
    assert_false(r.accepted);
    const char *no_upgrade = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    assert_int_equal(parse_guarded(no_upgrade, strlen(no_upgrade), &r), 0);
    assert_false(r.accepted);
    const char *no_conn = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: keep-alive\r\n"
                          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    assert_int_equal(parse_guarded(no_conn, strlen(no_conn), &r), 0);
    assert_false(r.accepted);
    const char *bad_proto = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Protocol: other\r\n"
                            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    assert_int_equal(parse_guarded(bad_proto, strlen(bad_proto), &r), 0);
    assert_false(r.accepted);
    const char *redirect = "HTTP/1.1 307 Temporary Redirect\r\n"
                           "Location: ws://node2.example:8080/ws\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(parse_guarded(redirect, strlen(redirect), &r), 0);
    assert_int_equal(r.status, 307);
    assert_false(r.accepted);
    assert_string_equal(r.location, "ws://node2.example:8080/ws");
    const char *refused = "HTTP/1.1 401 Unauthorized\r\nLocation: x\r\n\r\nbody";
    assert_int_equal(parse_guarded(refused, strlen(refused), &r), 0);
    assert_int_equal(r.status, 401);
    assert_string_equal(r.location, "");
    const char *garbage = "SSH-2.0-OpenSSH\r\n\r\n";
    assert_int_equal(parse_guarded(garbage, strlen(garbage), &r), TETHER_ERR_HTTP);
    const char *lf_only = "HTTP/1.1 101 OK\nUpgrade: websocket\nConnection: upgrade\n"
                          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\n\n";
    assert_int_equal(parse_guarded(lf_only, strlen(lf_only), &r), 0);
    assert_true(r.accepted);
    assert_int_equal(r.head_len, strlen(lf_only));
}

static void test_parse_too_long(void **state)
{
    static char big[20000];
    struct tt_wshs_response r;
    (void)state;
    memcpy(big, "HTTP/1.1 200 OK\r\n", 17);
    for (size_t i = 17; i < sizeof(big); i += 10)
        memcpy(big + i, "X-A: b\r\n\0\0", i + 10 <= sizeof(big) ? 10 : sizeof(big) - i);
    for (size_t i = 0; i < sizeof(big); i++)
        if (big[i] == '\0')
            big[i] = 'y';
    assert_int_equal(tt_wshs_read_response((const uint8_t *)big, sizeof(big), KEY, &r),
                     TETHER_ERR_HTTP);
    assert_int_equal(tt_wshs_read_response((const uint8_t *)big, 1000, KEY, &r), TETHER_ERR_AGAIN);
}

static void test_server_response(void **state)
{
    char out[512];
    struct tt_wshs_response r;
    (void)state;
    int n = tt_wshs_server_response(out, sizeof(out), KEY, strlen(KEY), true);
    assert_true(n > 0);
    assert_non_null(strstr(out, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert_non_null(strstr(out, "Sec-WebSocket-Protocol: tether.v1\r\n"));
    /* What the server writes, the client accepts. */
    assert_int_equal(tt_wshs_read_response((const uint8_t *)out, (size_t)n, KEY, &r), 0);
    assert_true(r.accepted);
    assert_int_equal(r.head_len, (size_t)n);
    n = tt_wshs_server_response(out, sizeof(out), KEY, strlen(KEY), false);
    assert_null(strstr(out, "Sec-WebSocket-Protocol"));
    assert_int_equal(tt_wshs_server_response(out, 40, KEY, strlen(KEY), true),
                     TETHER_ERR_TOO_LARGE);
}

static struct tt_wshs_request good_request(void)
{
    struct tt_wshs_request rq;
    memset(&rq, 0, sizeof(rq));
    rq.get = rq.http11 = rq.connection_upgrade = true;
    rq.key = (const uint8_t *)KEY;
    rq.keylen = strlen(KEY);
    rq.nkeys = 1;
    rq.version = (const uint8_t *)"13";
    rq.versionlen = 2;
    rq.nversions = 1;
    return rq;
}

/* The answer tt_wshs_check_request asks for (0: none), checked against its return value. */
static int verdict(const struct tt_wshs_request *rq)
{
    int status = -1;
    int rc = tt_wshs_check_request(rq, &status);
    assert_int_equal(rc, status == 0     ? 0
                         : status == 426 ? TETHER_ERR_VERSION
                                         : TETHER_ERR_HANDSHAKE);
    return status;
}

static void test_check_request(void **state)
{
    struct tt_wshs_request rq = good_request();
    (void)state;
    assert_int_equal(verdict(&rq), 0);
    rq.version = (const uint8_t *)" 13\t";
    rq.versionlen = 4;
    assert_int_equal(verdict(&rq), 0);
    /* another version: 426 */
    static const char *const versions[] = {"8", "14", "", "130", "1 3"};
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        rq = good_request();
        rq.version = (const uint8_t *)versions[i];
        rq.versionlen = strlen(versions[i]);
        assert_int_equal(verdict(&rq), 426);
    }
    /* malformed: 400 */
    rq = good_request();
    rq.get = false;
    assert_int_equal(verdict(&rq), 400);
    rq = good_request();
    rq.http11 = false;
    assert_int_equal(verdict(&rq), 400);
    rq = good_request();
    rq.connection_upgrade = false;
    assert_int_equal(verdict(&rq), 400);
    rq = good_request();
    rq.nkeys = 0;
    rq.key = NULL;
    rq.keylen = 0;
    assert_int_equal(verdict(&rq), 400);
    rq = good_request();
    rq.nkeys = 2;
    assert_int_equal(verdict(&rq), 400);
    rq = good_request();
    rq.nversions = 0;
    assert_int_equal(verdict(&rq), 400);
    rq = good_request();
    rq.nversions = 2;
    assert_int_equal(verdict(&rq), 400);
    static const char *const keys[] = {"",
                                       "short",
                                       "dGhlIHNhbXBsZSBub25jZQ=",
                                       "dGhlIHNhbXBsZSBub25jZQ==x",
                                       "dGhlIHNhbXBsZSBub25j*Q==",
                                       "dGhlIHNhbXBsZSBub25jZ===",
                                       "dGhlIHNhbXBsZSBub25jZQ=A"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        rq = good_request();
        rq.key = (const uint8_t *)keys[i];
        rq.keylen = strlen(keys[i]);
        assert_int_equal(verdict(&rq), 400);
    }
}

/* ---- the visitor's side (docs/PROTOCOL.md section 14) ---- */

/* The code block of docs/PROTOCOL.md that follows the first line starting with heading and
 * then the first line starting with first: each of its lines up to its literal "\r\n" (a
 * comment may follow), with the escape turned into CR LF. Returns the bytes' length. */
static size_t doc_block(const char *heading, const char *first, char *out, size_t cap)
{
    static char doc[262144];
    const char *vdir = getenv("TT_VECTORS_DIR"); /* tests/vectors, as test_frame finds it */
    char path[1024];
    FILE *fp;
    size_t n, len = 0;
    const char *p, *end;

    snprintf(path, sizeof(path), "%s/../../docs/PROTOCOL.md",
             vdir != NULL && vdir[0] != '\0' ? vdir : "tests/vectors");
    fp = fopen(path, "rb");
    assert_non_null(fp);
    n = fread(doc, 1, sizeof(doc) - 1, fp);
    fclose(fp);
    doc[n] = '\0';
    p = strstr(doc, heading);
    assert_non_null(p);
    p = strstr(p, first);
    assert_non_null(p);
    end = strstr(p, "```");
    assert_non_null(end);
    while (p < end) {
        const char *eol = strchr(p, '\n');
        const char *crlf = strstr(p, "\\r\\n");
        assert_true(crlf != NULL && crlf < eol);
        assert_true(len + (size_t)(crlf - p) + 2 < cap);
        memcpy(out + len, p, (size_t)(crlf - p));
        len += (size_t)(crlf - p);
        out[len++] = '\r';
        out[len++] = '\n';
        p = eol + 1;
    }
    out[len] = '\0';
    return len;
}

/* The reference visitor's upgrade and the relay's 101 are exactly the bytes the document
 * prints. */
static void test_visitor_handshake_as_documented(void **state)
{
    char want[4096], got[4096];
    size_t wn;
    int n;
    (void)state;

    wn = doc_block("### 14.1 The upgrade request", "GET / HTTP/1.1", want, sizeof(want));
    n = tt_wshs_client_request_ex(got, sizeof(got), "relay.example.com", 443, true, "/",
                                  "dGhlIHNhbXBsZSBub25jZQ==", TT_WS_SUBPROTOCOL_CONNECT,
                                  "Tether-Device: plant-7-gw\r\nTether-Service: ssh\r\n"
                                  "Authorization: Basic YWxpY2U6czNjcmV0\r\n");
    assert_int_equal(n, (int)wn);
    assert_memory_equal(got, want, wn);

    wn = doc_block("### 14.2 The answer", "HTTP/1.1 101", want, sizeof(want));
    n = tt_wshs_server_response_ex(got, sizeof(got), "dGhlIHNhbXBsZSBub25jZQ==", 24,
                                   TT_WS_SUBPROTOCOL_CONNECT);
    assert_int_equal(n, (int)wn);
    assert_memory_equal(got, want, wn);
}

/* A visitor requires its subprotocol in the 101; a device does not. A refusal's text body is
 * found by its length and type. */
static void test_parse_subprotocol_and_body(void **state)
{
    static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
    static const char ok[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\nSec-WebSocket-Accept: "
                             "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";
    char buf[512];
    struct tt_wshs_response r;
    (void)state;

    /* no subprotocol: fine for a device, not for a visitor (an older relay's answer) */
    snprintf(buf, sizeof(buf), "%s\r\n", ok);
    assert_int_equal(tt_wshs_read_response((const uint8_t *)buf, strlen(buf), key, &r), 0);
    assert_true(r.accepted);
    assert_int_equal(tt_wshs_read_response_ex((const uint8_t *)buf, strlen(buf), key,
                                              TT_WS_SUBPROTOCOL_CONNECT, &r),
                     0);
    assert_false(r.accepted);
    /* the device's subprotocol: not the visitor's */
    snprintf(buf, sizeof(buf), "%sSec-WebSocket-Protocol: tether.v1\r\n\r\n", ok);
    assert_int_equal(tt_wshs_read_response_ex((const uint8_t *)buf, strlen(buf), key,
                                              TT_WS_SUBPROTOCOL_CONNECT, &r),
                     0);
    assert_false(r.accepted);
    /* the visitor's: accepted for it, not for a device */
    snprintf(buf, sizeof(buf), "%sSec-WebSocket-Protocol: tether-connect.v1\r\n\r\n", ok);
    assert_int_equal(tt_wshs_read_response_ex((const uint8_t *)buf, strlen(buf), key,
                                              TT_WS_SUBPROTOCOL_CONNECT, &r),
                     0);
    assert_true(r.accepted);
    assert_int_equal(tt_wshs_read_response((const uint8_t *)buf, strlen(buf), key, &r), 0);
    assert_false(r.accepted);
    /* a refusal */
    snprintf(buf, sizeof(buf),
             "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n"
             "Content-Length: 53\r\nConnection: close\r\n\r\n"
             "access denied: no grant of bob covers plant-7-gw/ssh\n");
    assert_int_equal(tt_wshs_read_response((const uint8_t *)buf, strlen(buf), key, &r), 0);
    assert_int_equal(r.status, 403);
    assert_false(r.accepted);
    assert_true(r.text_plain);
    assert_int_equal(r.content_length, 53);
    assert_int_equal(strlen(buf) - r.head_len, 53);
    /* an HTML page without a length */
    snprintf(buf, sizeof(buf), "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\n\r\n<p>");
    assert_int_equal(tt_wshs_read_response((const uint8_t *)buf, strlen(buf), key, &r), 0);
    assert_false(r.text_plain);
    assert_true(r.content_length == UINT64_MAX);
}

/* Retry-After in delta-seconds only, bounded; read on a 503 or 429 only. */
static void test_retry_after(void **state)
{
    (void)state;
    assert_int_equal(tt_wshs_retry_after("5", 1), 5);
    assert_int_equal(tt_wshs_retry_after(" 120 ", 5), 120);
    assert_int_equal(tt_wshs_retry_after("0", 1), 0);
    assert_int_equal(tt_wshs_retry_after("", 0), 0);
    assert_int_equal(tt_wshs_retry_after("-1", 2), 0);
    assert_int_equal(tt_wshs_retry_after("1.5", 3), 0);
    assert_int_equal(tt_wshs_retry_after("+3", 2), 0);
    assert_int_equal(tt_wshs_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 29), 0);
    assert_int_equal(tt_wshs_retry_after("999999999", 9), TT_WSHS_RETRY_AFTER_MAX);
    assert_int_equal(tt_wshs_retry_after("9999999999", 10), 0);
    assert_int_equal(tt_wshs_retry_after("86401", 5), TT_WSHS_RETRY_AFTER_MAX);

    struct tt_wshs_response r;
    const char *busy = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n"
                       "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\n\r\nbusy\n";
    assert_int_equal(tt_wshs_read_response((const uint8_t *)busy, strlen(busy), "k", &r), 0);
    assert_int_equal(r.status, 503);
    assert_int_equal(r.retry_after, 7);
    const char *twice = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n"
                        "Retry-After: 9\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(tt_wshs_read_response((const uint8_t *)twice, strlen(twice), "k", &r), 0);
    assert_int_equal(r.retry_after, 0);
    const char *toolong = "HTTP/1.1 503 Service Unavailable\r\n"
                          "Retry-After: 0000000000000000000000000000000000000000001\r\n\r\n";
    assert_int_equal(tt_wshs_read_response((const uint8_t *)toolong, strlen(toolong), "k", &r), 0);
    assert_int_equal(r.retry_after, 0);
    const char *other = "HTTP/1.1 500 Internal Server Error\r\nRetry-After: 7\r\n\r\n";
    assert_int_equal(tt_wshs_read_response((const uint8_t *)other, strlen(other), "k", &r), 0);
    assert_int_equal(r.retry_after, 0);
    const char *many = "HTTP/1.1 429 Too Many Requests\r\nretry-after:30\r\n\r\n";
    assert_int_equal(tt_wshs_read_response((const uint8_t *)many, strlen(many), "k", &r), 0);
    assert_int_equal(r.retry_after, 30);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_request),
        cmocka_unit_test(test_accept_rfc),
        cmocka_unit_test(test_make_key),
        cmocka_unit_test(test_client_request),
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_parse_too_long),
        cmocka_unit_test(test_server_response),
        cmocka_unit_test(test_visitor_handshake_as_documented),
        cmocka_unit_test(test_parse_subprotocol_and_body),
        cmocka_unit_test(test_retry_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
