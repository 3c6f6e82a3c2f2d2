/* test_agent.c - unit tests for src/agent/agent.c through the public SDK (tether.h): config
 * checks at tether_agent_new, stop before run, stop from another thread while the agent retries
 * an unreachable relay, stop from inside the event callback, and the error events' contents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <cmocka.h>

#include "tether.h"

/* A port nothing listens on: bind one, note it, close it. */
#include <uv.h>
static int closed_port(void)
{
    uv_loop_t loop;
    uv_tcp_t t;
    struct sockaddr_in sa;
    struct sockaddr_storage got;
    int len = sizeof got;

    uv_loop_init(&loop);
    uv_tcp_init(&loop, &t);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&t, (struct sockaddr *)&sa, 0), 0);
    uv_tcp_getsockname(&t, (struct sockaddr *)&got, &len);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return ntohs(((struct sockaddr_in *)&got)->sin_port);
}

static tether_config *good_config(void)
{
    tether_config *cfg;
    char url[64];

    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", closed_port());
    assert_int_equal(tether_config_new(&cfg), 0);
    assert_int_equal(tether_config_add_server(cfg, url), 0);
    assert_int_equal(tether_config_set_name(cfg, "unit-dev"), 0);
    assert_int_equal(tether_config_set_token(cfg, "tok"), 0);
    assert_int_equal(tether_config_add_http(cfg, NULL, "127.0.0.1:9"), 0);
    return cfg;
}

struct seen {
    atomic_int errors;
    atomic_int others;
    int last_err;
    uint32_t last_retry;
    char message[256];
    bool stop_in_callback;
};

static void on_event(tether_agent *a, const struct tether_event *ev, void *ud)
{
    struct seen *s = ud;

    assert_non_null(ev->server);
    if (ev->kind != TETHER_EVENT_ERROR) {
        atomic_fetch_add(&s->others, 1);
        return;
    }
    s->last_err = ev->err;
    s->last_retry = ev->retry_ms;
    snprintf(s->message, sizeof s->message, "%s", ev->message);
    atomic_fetch_add(&s->errors, 1);
    if (s->stop_in_callback)
        tether_agent_stop(a);
}

static void test_new_checks_config(void **state)
{
    tether_config *cfg;
    tether_agent *a = NULL;
    struct tether_callbacks cb = {on_event};
    (void)state;

    assert_int_equal(tether_config_new(&cfg), 0);
    assert_int_equal(tether_agent_new(cfg, &cb, NULL, &a), TETHER_ERR_CONFIG);
    assert_non_null(strstr(tether_config_error(cfg), "server"));
    assert_null(a);
    assert_int_equal(tether_agent_new(NULL, &cb, NULL, &a), TETHER_ERR_INVAL);
    assert_int_equal(tether_agent_new(cfg, &cb, NULL, NULL), TETHER_ERR_INVAL);
    tether_config_free(cfg);
    assert_int_equal(tether_agent_run(NULL), TETHER_ERR_INVAL);
    tether_agent_stop(NULL);
    tether_agent_free(NULL);
}

static void test_stop_before_run_and_free_unrun(void **state)
{
    tether_config *cfg = good_config();
    tether_agent *a;
    struct seen s = {0};
    struct tether_callbacks cb = {on_event};
    (void)state;

    assert_int_equal(tether_agent_new(cfg, &cb, &s, &a), 0);
    tether_config_free(cfg); /* the agent has its own copy */
    tether_agent_stop(a);
    tether_agent_stop(a);
    assert_int_equal(tether_agent_run(a), 0);
    assert_int_equal(tether_agent_run(a), TETHER_ERR_INVAL); /* once per agent */
    tether_agent_free(a);
    assert_int_equal(atomic_load(&s.errors), 0);

    cfg = good_config();
    assert_int_equal(tether_agent_new(cfg, NULL, NULL, &a), 0);
    tether_config_free(cfg);
    tether_agent_free(a); /* never ran */
}

static void *runner(void *arg)
{
    static int rc;
    rc = tether_agent_run(arg);
    return &rc;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_stop_from_another_thread(void **state)
{
    tether_config *cfg = good_config();
    tether_agent *a;
    struct seen s = {0};
    struct tether_callbacks cb = {on_event};
    pthread_t th;
    void *ret;
    (void)state;

    assert_int_equal(tether_agent_new(cfg, &cb, &s, &a), 0);
    tether_config_free(cfg);
    assert_int_equal(pthread_create(&th, NULL, runner, a), 0);
    for (int i = 0; i < 500 && atomic_load(&s.errors) == 0; i++)
        sleep_ms(10);
    tether_agent_stop(a);
    assert_int_equal(pthread_join(th, &ret), 0);
    assert_int_equal(*(int *)ret, 0);
    tether_agent_free(a);

    assert_true(atomic_load(&s.errors) >= 1);
    assert_int_equal(atomic_load(&s.others), 0);
    assert_int_equal(s.last_err, TETHER_ERR_REFUSED);
    assert_non_null(strstr(s.message, "connection refused"));
    assert_true(s.last_retry >= 800 && s.last_retry < 1200);
}

static void test_stop_from_the_callback(void **state)
{
    tether_config *cfg = good_config();
    tether_agent *a;
    struct seen s = {0};
    struct tether_callbacks cb = {on_event};
    (void)state;

    s.stop_in_callback = true;
    assert_int_equal(tether_agent_new(cfg, &cb, &s, &a), 0);
    tether_config_free(cfg);
    assert_int_equal(tether_agent_run(a), 0);
    tether_agent_free(a);
    assert_int_equal(atomic_load(&s.errors), 1);
}

static void test_version_and_log_level(void **state)
{
    (void)state;
    assert_string_equal(tether_version(), TETHER_VERSION);
    tether_set_log_level(99);
    tether_set_log_level(-5);
    tether_set_log_level(TETHER_LOG_INFO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_checks_config),
        cmocka_unit_test(test_stop_before_run_and_free_unrun),
        cmocka_unit_test(test_stop_from_another_thread),
        cmocka_unit_test(test_stop_from_the_callback),
        cmocka_unit_test(test_version_and_log_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
