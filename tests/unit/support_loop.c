/* support_loop.c - the loopback harness shared by the unit tests that run a real libuv loop
 * (support_loop.h). No main(): this file is linked into every unit test binary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/pool.h"

#include "support_loop.h"

void ut_close_nothing(uv_handle_t *h)
{
    (void)h;
}

int ut_listen(uv_loop_t *loop, uv_tcp_t *listener, void *data, uv_connection_cb cb)
{
    struct sockaddr_in sa;
    struct sockaddr_storage name;
    int namelen = sizeof name;

    uv_tcp_init(loop, listener);
    listener->data = data;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(listener, (const struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)listener, 64, cb), 0);
    assert_int_equal(uv_tcp_getsockname(listener, (struct sockaddr *)&name, &namelen), 0);
    return ntohs(((struct sockaddr_in *)&name)->sin_port);
}

struct pair_ctx {
    struct tt_conn *accepted;
    int connected;
};

static void pair_on_conn(uv_stream_t *server, int status)
{
    struct pair_ctx *pc = server->data;
    assert_int_equal(status, 0);
    assert_int_equal(tt_conn_new(&pc->accepted, server->loop), 0);
    assert_int_equal(uv_accept(server, (uv_stream_t *)&pc->accepted->tcp), 0);
}

static void pair_on_connect(uv_connect_t *req, int status)
{
    struct pair_ctx *pc = req->data;
    assert_int_equal(status, 0);
    pc->connected = 1;
}

void ut_make_pair(uv_loop_t *loop, struct tt_conn **a, struct tt_conn **b)
{
    uv_tcp_t lst;
    struct sockaddr_in addr;
    struct pair_ctx pc = {0};
    uv_connect_t req;

    uv_ip4_addr("127.0.0.1", ut_listen(loop, &lst, &pc, pair_on_conn), &addr);
    assert_int_equal(tt_conn_new(a, loop), 0);
    req.data = &pc;
    assert_int_equal(uv_tcp_connect(&req, &(*a)->tcp, (struct sockaddr *)&addr, pair_on_connect),
                     0);
    while (!pc.connected || pc.accepted == NULL)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&lst, ut_close_nothing);
    uv_run(loop, UV_RUN_NOWAIT);
    *b = pc.accepted;
}

static void hang_guard_cb(uv_timer_t *t)
{
    (void)t;
    fail_msg("test hung");
}

void ut_start_guard(uv_loop_t *loop, uv_timer_t *t)
{
    uv_timer_init(loop, t);
    uv_timer_start(t, hang_guard_cb, 20000, 0);
    uv_unref((uv_handle_t *)t);
}

void ut_finish_loop(uv_loop_t *loop, uv_timer_t *guard)
{
    uv_close((uv_handle_t *)guard, ut_close_nothing);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
    tt_chunk_pool_drain();
}
