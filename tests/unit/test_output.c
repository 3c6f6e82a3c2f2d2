/* test_output.c - unit tests for src/cli/output.c: the "ready" lines and the --json event
 * objects, byte for byte as SPEC.md shows them. src/cli is a program, not a library module, so
 * its source is compiled in here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cli/output.c"

static const struct tether_service_info services[] = {
    {"http", TETHER_SERVICE_HTTP, "http://k3j9x2mq.localhost:8080", NULL, 0, "127.0.0.1:8000",
     false},
    {"ssh", TETHER_SERVICE_TCP, NULL, "localhost", 20001, "127.0.0.1:22", false},
};

static struct tether_event ready(void)
{
    struct tether_event ev = {0};
    ev.kind = TETHER_EVENT_READY;
    ev.server = "ws://127.0.0.1:8080";
    ev.label = "k3j9x2mq";
    ev.services = services;
    ev.nservices = 2;
    return ev;
}

static void test_ready_lines(void **state)
{
    struct tether_event ev = ready();
    char buf[512];
    (void)state;

    int n = tt_output_ready_text(&ev, buf, sizeof buf);
    assert_int_equal(n, strlen(buf));
    assert_string_equal(buf, "ready http http://k3j9x2mq.localhost:8080 -> 127.0.0.1:8000\n"
                             "ready tcp ssh localhost:20001 -> 127.0.0.1:22\n");
    /* Too small: -1, never a cut line. */
    assert_int_equal(tt_output_ready_text(&ev, buf, 20), -1);
    ev.kind = TETHER_EVENT_ERROR;
    assert_int_equal(tt_output_ready_text(&ev, buf, sizeof buf), 0);
}

static void test_ready_ipv6_host(void **state)
{
    const struct tether_service_info v6[] = {
        {"db", TETHER_SERVICE_TCP, NULL, "::1", 20002, "[::1]:5432", false},
    };
    struct tether_event ev = ready();
    char buf[256];
    (void)state;

    ev.services = v6;
    ev.nservices = 1;
    assert_true(tt_output_ready_text(&ev, buf, sizeof buf) > 0);
    assert_string_equal(buf, "ready tcp db [::1]:20002 -> [::1]:5432\n");
}

static void test_json_ready(void **state)
{
    struct tether_event ev = ready();
    char *s;
    (void)state;

    s = tt_output_json(&ev);
    assert_non_null(s);
    assert_string_equal(s,
                        "{\"event\":\"ready\",\"services\":[{\"name\":\"http\",\"kind\":\"http\","
                        "\"url\":\"http://k3j9x2mq.localhost:8080\",\"target\":\"127.0.0.1:8000\"},"
                        "{\"name\":\"ssh\",\"kind\":\"tcp\",\"host\":\"localhost\",\"port\":20001,"
                        "\"target\":\"127.0.0.1:22\"}]}");
    free(s);
}

/* A relay with --access private: the TCP service has no port (SPEC: "ready tcp ssh private ->
 * 127.0.0.1:22", JSON "private":true without host or port); the HTTP one keeps its URL and its
 * line, and says "private":true in JSON only. */
static void test_ready_private(void **state)
{
    static const struct tether_service_info priv[] = {
        {"http", TETHER_SERVICE_HTTP, "http://k3j9x2mq.localhost:8080", NULL, 0, "127.0.0.1:8000",
         true},
        {"ssh", TETHER_SERVICE_TCP, NULL, NULL, 0, "127.0.0.1:22", true},
    };
    struct tether_event ev = ready();
    char buf[512];
    char *s;
    (void)state;

    ev.services = priv;
    assert_true(tt_output_ready_text(&ev, buf, sizeof buf) > 0);
    assert_string_equal(buf, "ready http http://k3j9x2mq.localhost:8080 -> 127.0.0.1:8000\n"
                             "ready tcp ssh private -> 127.0.0.1:22\n");
    s = tt_output_json(&ev);
    assert_non_null(s);
    assert_string_equal(s,
                        "{\"event\":\"ready\",\"services\":[{\"name\":\"http\",\"kind\":\"http\","
                        "\"url\":\"http://k3j9x2mq.localhost:8080\",\"target\":\"127.0.0.1:8000\","
                        "\"private\":true},"
                        "{\"name\":\"ssh\",\"kind\":\"tcp\",\"target\":\"127.0.0.1:22\","
                        "\"private\":true}]}");
    free(s);
    /* a forged name still cannot add a line */
    static const struct tether_service_info forged[] = {
        {"ssh\nready tcp x", TETHER_SERVICE_TCP, NULL, NULL, 0, "127.0.0.1:22", true},
    };
    ev.services = forged;
    ev.nservices = 1;
    assert_true(tt_output_ready_text(&ev, buf, sizeof buf) > 0);
    assert_string_equal(buf, "ready tcp ssh?ready?tcp?x private -> 127.0.0.1:22\n");
}

static void test_json_disconnected_and_error(void **state)
{
    struct tether_event ev = {0};
    char *s;
    (void)state;

    ev.kind = TETHER_EVENT_DISCONNECTED;
    ev.server = "ws://r:1";
    ev.reason = "relay is shutting down";
    s = tt_output_json(&ev);
    assert_string_equal(s, "{\"event\":\"disconnected\",\"reason\":\"relay is shutting down\"}");
    free(s);

    ev.kind = TETHER_EVENT_ERROR;
    ev.message = "relay refused registration: invalid token (\"x\"\n)";
    s = tt_output_json(&ev);
    assert_string_equal(s, "{\"event\":\"error\",\"message\":\"relay refused registration: "
                           "invalid token (\\\"x\\\"\\n)\"}");
    free(s);

    /* Invalid UTF-8 from a peer still gives a line. */
    ev.message = "bad \xff byte";
    s = tt_output_json(&ev);
    assert_string_equal(s, "{\"event\":\"error\",\"message\":\"bad ? byte\"}");
    free(s);
}

/* Text from the relay never breaks a line: control bytes and spaces in what a ready line holds
 * come out as '?', and so do control bytes in an event line on stderr. */
static void test_relay_text_is_masked(void **state)
{
    static const struct tether_service_info forged[] = {
        {"http", TETHER_SERVICE_HTTP, "http://x\nready http http://evil -> x", NULL, 0,
         "127.0.0.1:8000", false},
        {"ssh", TETHER_SERVICE_TCP, NULL, "evil\r\x1b[2K", 20001, "127.0.0.1:22", false},
    };
    struct tether_event ev = ready();
    char buf[512];
    (void)state;

    ev.services = forged;
    assert_true(tt_output_ready_text(&ev, buf, sizeof buf) > 0);
    assert_string_equal(buf, "ready http http://x?ready?http?http://evil?->?x -> 127.0.0.1:8000\n"
                             "ready tcp ssh evil??[2K:20001 -> 127.0.0.1:22\n");
    memset(&ev, 0, sizeof ev);
    ev.kind = TETHER_EVENT_ERROR;
    ev.message = "relay refused registration: x\nready http http://evil -> x";
    ev.retry_ms = 1500;
    assert_true(tt_output_event_text(&ev, buf, sizeof buf) > 0);
    assert_string_equal(buf, "error: relay refused registration: x?ready http http://evil -> x "
                             "(retrying in 1.5 s)\n");
    ev.kind = TETHER_EVENT_DISCONNECTED;
    ev.reason = "closed\x1b]0;title\x07";
    assert_true(tt_output_event_text(&ev, buf, sizeof buf) > 0);
    assert_string_equal(buf, "disconnected: closed?]0;title? (reconnecting in 1.5 s)\n");
    assert_int_equal(tt_output_event_text(&ev, buf, 10), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_lines),
        cmocka_unit_test(test_ready_ipv6_host),
        cmocka_unit_test(test_json_ready),
        cmocka_unit_test(test_ready_private),
        cmocka_unit_test(test_json_disconnected_and_error),
        cmocka_unit_test(test_relay_text_is_masked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
