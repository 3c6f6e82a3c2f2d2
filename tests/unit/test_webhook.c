/* test_webhook.c - unit tests for src/relay/admin/webhookbody.c and src/relay/admin/webhook.c: the
 * event's JSON body byte for byte (keys in SPEC's order, null node, escaping), the signature
 * against RFC 4231's HMAC-SHA256 vectors, the request head, the answer's status read with
 * http-parser (split anywhere, garbage, oversized heads, EOF), the retry schedule's bounds, the
 * --webhook URL check, and, on a real loop, the queue's cap (what does not fit is dropped and
 * counted) and a delivery to a receiver on loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>

#include "relay/config.h"
#include "relay/admin/webhook.h"
#include "relay/admin/webhookbody.h"

static void test_body(void **state)
{
    (void)state;
    char out[TT_WEBHOOK_BODY_MAX];
    /* 2026-12-07T10:00:00Z */
    int64_t t = 1796637600000LL;
    int n = tt_webhook_body("online", "dev-1", "k3j9x2mq", NULL, t + 999, out);
    const char *want = "{\"event\":\"online\",\"device\":\"dev-1\",\"label\":\"k3j9x2mq\","
                       "\"node\":null,\"time\":\"2026-12-07T10:00:00Z\"}";
    assert_string_equal(out, want);
    assert_int_equal(n, (int)strlen(want));
    n = tt_webhook_body("takeover", "a\"b\\c\n", "l", "node-a", t, out);
    assert_string_equal(out, "{\"event\":\"takeover\",\"device\":\"a\\\"b\\\\c\\n\",\"label\":"
                             "\"l\",\"node\":\"node-a\",\"time\":\"2026-12-07T10:00:00Z\"}");
    /* "" node is a single relay too */
    tt_webhook_body("deleted", "d", "l", "", t, out);
    assert_non_null(strstr(out, "\"node\":null"));
    /* the longest names fit */
    char name[65], node[65];
    memset(name, 0x01, 64);
    name[64] = '\0';
    memset(node, 'n', 64);
    node[64] = '\0';
    assert_true(tt_webhook_body("expired", name, name, node, t, out) > 0);
}

static void hex(const char *sig, const char *want)
{
    assert_memory_equal(sig, "sha256=", 7);
    assert_string_equal(sig + 7, want);
}

static void test_sign(void **state)
{
    (void)state;
    char sig[TT_WEBHOOK_SIG_LEN + 1];
    /* RFC 4231 test case 2 */
    const char *data = "what do ya want for nothing?";
    assert_int_equal(tt_webhook_sign("Jefe", 4, data, strlen(data), sig), 0);
    hex(sig, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* RFC 4231 test case 1 */
    uint8_t key[20];
    memset(key, 0x0b, sizeof(key));
    assert_int_equal(tt_webhook_sign(key, sizeof(key), "Hi There", 8, sig), 0);
    hex(sig, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    assert_int_equal(strlen(sig), TT_WEBHOOK_SIG_LEN);
}

static void test_head(void **state)
{
    (void)state;
    struct tt_webhook_url u;
    char err[TT_ERRLEN], head[TT_WEBHOOK_HEAD_MAX];
    assert_int_equal(tt_webhook_parse_url("http://[::1]:8081/in?k=v", &u, err), 0);
    int n = tt_webhook_head(&u, "online", 97, "sha256=ab", head, sizeof(head));
    assert_true(n > 0);
    assert_string_equal(head, "POST /in?k=v HTTP/1.1\r\n"
                              "Host: [::1]:8081\r\n"
                              "User-Agent: tetherd/" TT_RELAY_VERSION "\r\n"
                              "Content-Type: application/json\r\n"
                              "Content-Length: 97\r\n"
                              "X-Tether-Event: online\r\n"
                              "X-Tether-Signature: sha256=ab\r\n"
                              "Connection: close\r\n\r\n");
    assert_int_equal(tt_webhook_parse_url("http://hooks.example", &u, err), 0);
    tt_webhook_head(&u, "offline", 5, NULL, head, sizeof(head));
    assert_null(strstr(head, "Signature"));
    assert_non_null(strstr(head, "POST / HTTP/1.1\r\nHost: hooks.example\r\n"));
    assert_int_equal(tt_webhook_head(&u, "offline", 5, NULL, head, 20), -1);
}

static void test_url(void **state)
{
    (void)state;
    struct tt_webhook_url u;
    char err[TT_ERRLEN];
    assert_int_equal(tt_webhook_parse_url("https://hooks.example/t", &u, err), 0);
    assert_true(u.tls);
    assert_int_equal(u.port, 443);
    assert_string_equal(u.host, "hooks.example");
    assert_int_equal(tt_webhook_parse_url("http://127.0.0.1:9/", &u, err), 0);
    assert_false(u.tls);
    assert_int_equal(u.port, 9);
    static const char *const bad[] = {"",           "ftp://x/",         "127.0.0.1:80",
                                      "http://",    "http://u:p@host/", "http://host:0/",
                                      "ws://host/", "http://host/a b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(tt_webhook_parse_url(bad[i], &u, err), -1);
        assert_memory_equal(err, "--webhook: ", 11);
        assert_null(strchr(err, '\n'));
    }
}

static int feed_split(const char *s, size_t at, bool eof)
{
    struct tt_webhook_resp r;
    tt_webhook_resp_init(&r);
    int st = tt_webhook_resp_feed(&r, s, at, false);
    if (st != 0)
        return st;
    return tt_webhook_resp_feed(&r, s + at, strlen(s) - at, eof);
}

static void test_resp(void **state)
{
    (void)state;
    const char *ok = "HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n";
    for (size_t i = 0; i <= strlen(ok); i++)
        assert_int_equal(feed_split(ok, i, false), 204);
    assert_int_equal(feed_split("HTTP/1.0 503 Busy\r\nContent-Length: 3\r\n\r\nabc", 5, false),
                     503);
    /* interim answers are skipped; what follows the final head is not read */
    assert_int_equal(feed_split("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 A\r\n\r\n", 7, false),
                     202);
    assert_int_equal(feed_split("HTTP/1.1 204 N\r\n\r\nHTTP/1.1 500 X\r\n\r\n", 30, false), 204);
    assert_int_equal(feed_split("HTTP/1.1 200 OK\r\n\r\n\x01\x02garbage", 3, false), 200);
    assert_int_equal(feed_split("HTTP/1.1 200 OK\r\n", 4, false), 0); /* more needed */
    assert_int_equal(feed_split("HTTP/1.1 200 OK\r\n", 4, true), -1); /* cut by EOF */
    assert_int_equal(feed_split("SSH-2.0-OpenSSH\r\n", 3, false), -1);
    assert_int_equal(feed_split("", 0, true), -1);
    /* a head that never ends is cut at TT_WEBHOOK_RESP_MAX */
    struct tt_webhook_resp r;
    tt_webhook_resp_init(&r);
    assert_int_equal(tt_webhook_resp_feed(&r, "HTTP/1.1 200 OK\r\n", 17, false), 0);
    char line[1024];
    memset(line, 'a', sizeof(line));
    memcpy(line, "X-A: ", 5);
    line[sizeof(line) - 2] = '\r';
    line[sizeof(line) - 1] = '\n';
    int st = 0;
    for (int i = 0; i < 100 && st == 0; i++)
        st = tt_webhook_resp_feed(&r, line, sizeof(line), false);
    assert_int_equal(st, -1);
}

static void test_backoff(void **state)
{
    (void)state;
    uint64_t base = 1000;
    for (unsigned a = 1; a <= 40; a++) {
        uint64_t lo = tt_webhook_backoff(a, 0), hi = tt_webhook_backoff(a, UINT32_MAX - 1);
        assert_int_equal(lo, base / 2);
        assert_true(hi >= lo && hi <= base);
        for (uint32_t r = 0; r < 2000; r += 7) {
            uint64_t d = tt_webhook_backoff(a, r * 2654435761u);
            assert_true(d >= base / 2 && d <= base);
        }
        base = base * 2 > 60000 ? 60000 : base * 2;
    }
    assert_int_equal(tt_webhook_backoff(1, 0), 500);
    assert_int_equal(tt_webhook_backoff(2, 0), 1000);
    assert_int_equal(tt_webhook_backoff(7, 0), 30000); /* 64 s capped at 60 s */
    assert_int_equal(tt_webhook_backoff(1000, 30000), 60000);
}

static void run_until(uv_loop_t *loop, bool (*done)(void *), void *ud, int ms)
{
    uint64_t end = uv_now(loop) + (uint64_t)ms;
    while (!done(ud) && uv_now(loop) < end)
        uv_run(loop, UV_RUN_NOWAIT), uv_sleep(1), uv_update_time(loop);
}

static void close_all(uv_loop_t *loop)
{
    for (int i = 0; i < 100 && uv_run(loop, UV_RUN_NOWAIT) != 0; i++)
        uv_sleep(5);
}

static void test_queue_cap(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char urls[2][TT_WEBHOOK_URL_MAX + 1] = {"http://127.0.0.1:1/a", "http://127.0.0.1:1/b"};
    struct tt_webhooks *w;
    char err[TT_ERRLEN];
    assert_int_equal(tt_webhooks_new(&w, &loop, urls, 2, "k", NULL, 3, 3600000, err), 0);
    struct tt_webhook_stats s;
    tt_webhook_emit(w, "online", "d", "l", 1);  /* 2 queued */
    tt_webhook_emit(w, "offline", "d", "l", 2); /* 1 queued, 1 dropped */
    tt_webhook_emit(w, "online", "d", "l", 3);  /* 2 dropped */
    tt_webhook_stats(w, &s);
    assert_int_equal(s.queued, 3);
    assert_int_equal(s.dropped, 3);
    assert_int_equal(s.queue_max, 3);
    assert_int_equal(s.delivered, 0);
    /* the shutdown's "offline" of many devices into full queues: each dropped for both
     * receivers (checked before its body is built and signed), counted, nothing queued */
    for (int i = 0; i < 1500; i++)
        tt_webhook_emit(w, "offline", "d", "l", 4 + i);
    tt_webhook_stats(w, &s);
    assert_int_equal(s.queued, 3);
    assert_int_equal(s.dropped, 3 + 2 * 1500);
    tt_webhooks_stop(w);
    tt_webhook_emit(w, "online", "d", "l", 4); /* stopped: nothing */
    tt_webhook_stats(w, &s);
    assert_int_equal(s.dropped, 3 + 2 * 1500);
    close_all(&loop);
    tt_webhooks_free(w);
    assert_int_equal(uv_loop_close(&loop), 0);
    /* no URL: no set, and emit on NULL does nothing */
    assert_int_equal(tt_webhooks_new(&w, &loop, urls, 0, NULL, NULL, 3, 1000, err), 0);
    assert_null(w);
    tt_webhook_emit(NULL, "online", "d", "l", 1);
    strcpy(urls[0], "gopher://x/");
    assert_int_equal(tt_webhooks_new(&w, &loop, urls, 1, NULL, NULL, 3, 1000, err), -1);
}

/* A receiver on loopback: answers each connection "HTTP/1.1 STATUS" once it has read a whole
 * request (head and Content-Length body). */
struct rx {
    uv_tcp_t srv;
    uv_tcp_t cli[8];
    int ncli;
    char got[8][2048];
    size_t gotlen[8];
    int statuses[8];
    int done;
    uv_write_t wr[8];
};

static void rx_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct rx *x = h->loop->data;
    int i = (int)(intptr_t)h->data;
    (void)size;
    *buf = uv_buf_init(x->got[i] + x->gotlen[i], (unsigned)(sizeof(x->got[i]) - 1 - x->gotlen[i]));
}

static void rx_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct rx *x = s->loop->data;
    int i = (int)(intptr_t)s->data;
    (void)buf;
    if (n <= 0) {
        uv_read_stop(s);
        return;
    }
    x->gotlen[i] += (size_t)n;
    x->got[i][x->gotlen[i]] = '\0';
    char *end = strstr(x->got[i], "\r\n\r\n");
    char *cl = strstr(x->got[i], "Content-Length: ");
    if (!end || !cl || strlen(end + 4) < (size_t)atoi(cl + 16))
        return;
    static char ans[8][64];
    snprintf(ans[i], sizeof(ans[i]), "HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n", x->statuses[i]);
    uv_buf_t b = uv_buf_init(ans[i], (unsigned)strlen(ans[i]));
    uv_write(&x->wr[i], s, &b, 1, NULL);
    x->done++;
}

static void rx_conn(uv_stream_t *srv, int status)
{
    struct rx *x = srv->loop->data;
    assert_int_equal(status, 0);
    assert_true(x->ncli < 8);
    uv_tcp_t *c = &x->cli[x->ncli];
    uv_tcp_init(srv->loop, c);
    c->data = (void *)(intptr_t)x->ncli;
    x->ncli++;
    assert_int_equal(uv_accept(srv, (uv_stream_t *)c), 0);
    uv_read_start((uv_stream_t *)c, rx_alloc, rx_read);
}

static bool two_delivered(void *ud)
{
    struct tt_webhook_stats s;
    tt_webhook_stats(ud, &s);
    return s.delivered == 2;
}

static void test_delivery(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct rx x;
    memset(&x, 0, sizeof(x));
    x.statuses[0] = 500; /* the first attempt fails: retried about 1 s later */
    x.statuses[1] = x.statuses[2] = 200;
    loop.data = &x;
    uv_tcp_init(&loop, &x.srv);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&x.srv, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&x.srv, 8, rx_conn), 0);
    int len = sizeof(a);
    uv_tcp_getsockname(&x.srv, (struct sockaddr *)&a, &len);
    char urls[1][TT_WEBHOOK_URL_MAX + 1];
    snprintf(urls[0], sizeof(urls[0]), "http://127.0.0.1:%u/hook", (unsigned)ntohs(a.sin_port));
    struct tt_webhooks *w;
    char err[TT_ERRLEN];
    assert_int_equal(tt_webhooks_new(&w, &loop, urls, 1, "Jefe", "node-a", 100, 60000, err), 0);
    tt_webhook_emit(w, "online", "dev", "lab", 1796637600000LL);
    tt_webhook_emit(w, "offline", "dev", "lab", 1796637601000LL);
    run_until(&loop, two_delivered, w, 8000);
    struct tt_webhook_stats s;
    tt_webhook_stats(w, &s);
    assert_int_equal(s.delivered, 2);
    assert_int_equal(s.failed, 1);
    assert_int_equal(s.ok, 2);
    assert_int_equal(s.queued, 0);
    /* in order: the failed "online" again, then "offline" */
    assert_non_null(strstr(x.got[0], "\"event\":\"online\""));
    assert_non_null(strstr(x.got[1], "\"event\":\"online\""));
    assert_non_null(strstr(x.got[2], "\"event\":\"offline\""));
    assert_non_null(strstr(x.got[1], "\"node\":\"node-a\""));
    assert_non_null(strstr(x.got[1], "X-Tether-Signature: sha256="));
    tt_webhooks_stop(w);
    for (int i = 0; i < x.ncli; i++)
        uv_close((uv_handle_t *)&x.cli[i], NULL);
    uv_close((uv_handle_t *)&x.srv, NULL);
    close_all(&loop);
    tt_webhooks_free(w);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body),      cmocka_unit_test(test_sign),
        cmocka_unit_test(test_head),      cmocka_unit_test(test_url),
        cmocka_unit_test(test_resp),      cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_queue_cap), cmocka_unit_test(test_delivery),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
