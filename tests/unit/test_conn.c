/* test_conn.c - unit tests for src/common/conn.c's filter table (struct tt_conn_filter, which
 * tls.c fills): a conn with a filter hands every stream call to it (read start and stop, write,
 * shutdown, close; try_write answers UV_EAGAIN), a plain one goes to libuv, and a filter's close
 * ends with tt_conn_closed: the owner's close callback, with its data, then the conn freed (ASan
 * sees no leak). A real loop and a loopback pair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>

#include "common/conn.h"
#include "support_loop.h"

static int calls_read_start, calls_read_stop, calls_write, calls_shutdown, calls_close;
static int owner_closed;
static void *owner_data_seen;

static int f_read_start(struct tt_conn *c, uv_alloc_cb alloc_cb, uv_read_cb read_cb)
{
    (void)c, (void)alloc_cb, (void)read_cb;
    calls_read_start++;
    return 0;
}

static int f_read_stop(struct tt_conn *c)
{
    (void)c;
    calls_read_stop++;
    return 0;
}

static int f_write(struct tt_conn *c, uv_write_t *req, const uv_buf_t bufs[], unsigned nbufs,
                   uv_write_cb cb)
{
    (void)c, (void)req, (void)bufs, (void)cb;
    calls_write += (int)nbufs;
    return UV_ENOBUFS; /* refused: no callback */
}

static int f_shutdown(struct tt_conn *c, uv_shutdown_t *req, uv_shutdown_cb cb)
{
    (void)c, (void)req, (void)cb;
    calls_shutdown++;
    return UV_ENOTCONN;
}

static void f_on_tcp_closed(uv_handle_t *h)
{
    tt_conn_closed(tt_conn_of(h));
}

static void f_close(struct tt_conn *c)
{
    calls_close++;
    uv_close((uv_handle_t *)&c->tcp, f_on_tcp_closed);
}

static const struct tt_conn_filter fake = {f_read_start, f_read_stop, f_write, f_shutdown, f_close};

static void on_owner_closed(uv_handle_t *h)
{
    owner_closed++;
    owner_data_seen = h->data;
}

static void alloc_nothing(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h, (void)size;
    *buf = uv_buf_init(NULL, 0);
}

static void read_nothing(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)s, (void)nread, (void)buf;
}

static void test_filter_takes_every_call(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_timer_t guard;
    struct tt_conn *a, *b;
    assert_int_equal(uv_loop_init(&loop), 0);
    ut_start_guard(&loop, &guard);
    ut_make_pair(&loop, &a, &b);
    assert_null(a->filter);
    a->filter = &fake;
    int owner;
    a->tcp.data = &owner;

    assert_int_equal(tt_conn_read_start(a, alloc_nothing, read_nothing), 0);
    assert_int_equal(tt_conn_read_stop(a), 0);
    uv_write_t wr;
    uv_shutdown_t sh;
    uv_buf_t bufs[2] = {uv_buf_init((char *)"ab", 2), uv_buf_init((char *)"cd", 2)};
    assert_int_equal(tt_conn_write(a, &wr, bufs, 2, NULL), UV_ENOBUFS);
    assert_int_equal(tt_conn_try_write(a, bufs, 2), UV_EAGAIN); /* never the socket's own */
    assert_int_equal(tt_conn_shutdown(a, &sh, NULL), UV_ENOTCONN);
    assert_int_equal(calls_read_start, 1);
    assert_int_equal(calls_read_stop, 1);
    assert_int_equal(calls_write, 2);
    assert_int_equal(calls_shutdown, 1);

    /* the plain side goes to libuv: the bytes reach the socket at once */
    assert_int_equal(tt_conn_try_write(b, bufs, 1), 2);

    tt_conn_close(a, on_owner_closed);
    assert_true(tt_conn_is_closing(a));
    assert_int_equal(calls_close, 1);
    tt_conn_close(b, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(owner_closed, 1);
    assert_ptr_equal(owner_data_seen, &owner);
    ut_finish_loop(&loop, &guard);
}

static void never(uv_timer_t *t)
{
    (void)t;
    fail();
}

/* A loop whose handles were closed closes at once; one with a handle left open (a timer, even a
 * running one) is emptied and closed all the same: ASan's leak check sees nothing left. */
static void test_loop_close(void **state)
{
    uv_loop_t loop;
    uv_timer_t t;
    (void)state;

    assert_int_equal(uv_loop_init(&loop), 0);
    tt_conn_loop_close(&loop);

    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(uv_timer_init(&loop, &t), 0);
    assert_int_equal(uv_timer_start(&t, never, 60000, 0), 0);
    tt_conn_loop_close(&loop); /* logs a warning; the timer is closed, never fired */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_takes_every_call),
        cmocka_unit_test(test_loop_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
