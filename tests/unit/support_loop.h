/* support_loop.h - a harness for unit tests that run a real libuv loop over loopback TCP: a
 * listener on 127.0.0.1, a connected pair of conns, a guard timer that fails a hung test, and the
 * end of a test that closes the loop and checks that nothing was left open. Linked into every
 * unit test binary (see UNIT_SUPPORT in the Makefile). */
#ifndef TT_TESTS_SUPPORT_LOOP_H
#define TT_TESTS_SUPPORT_LOOP_H

#include <uv.h>

#include "common/conn.h"

/* A close callback for handles that nothing owns (on the stack or inside a struct). */
void ut_close_nothing(uv_handle_t *h);

/* Starts listener (uv_tcp_init'ed here) on 127.0.0.1 at a free port with backlog 64, its data
 * set to data and cb called for each connection; returns the port. Fails the test on error. */
int ut_listen(uv_loop_t *loop, uv_tcp_t *listener, void *data, uv_connection_cb cb);

/* Makes a connected TCP pair on 127.0.0.1: *a is the connecting side, *b the accepted one (both
 * plain conns from tt_conn_new(); the caller closes them). Runs the loop until both are up. */
void ut_make_pair(uv_loop_t *loop, struct tt_conn **a, struct tt_conn **b);

/* Starts t as an unreferenced timer that fails the test if the loop still runs 20 s later. */
void ut_start_guard(uv_loop_t *loop, uv_timer_t *t);

/* Closes the guard, runs the loop until every handle is closed, checks uv_loop_close() == 0 and
 * drains the chunk pool (so that leak checks see no pooled memory). */
void ut_finish_loop(uv_loop_t *loop, uv_timer_t *guard);

#endif
