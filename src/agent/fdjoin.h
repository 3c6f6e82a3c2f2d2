/* fdjoin.h - joins two file descriptors (tether connect --stdio: ssh's ProxyCommand gives its
 * pipes as standard input and output) to one stream of a wsconn, as pipe.h joins a socket:
 * bytes read from in_fd go out as DATA within the stream's send window (reading stops while the
 * window or the wsconn's output queue is full, and what one read brought beyond the window waits
 * in its buffer); the peer's DATA is written to out_fd and credited back (tt_wsconn_consume)
 * only once written, so the write queue holds at most the stream's receive window. The end of
 * in_fd becomes FIN; the peer's FIN closes out_fd once everything before it was written (the
 * reader sees its end). A RESET from the peer, or the session's end, stops both.
 *
 * Each descriptor may be a pipe, a terminal or a socket (read and written through libuv
 * streams), or a file or device such as /dev/null (libuv's file calls, in its thread pool).
 *
 * Owns: its handles and buffers; the descriptors are closed with them (they are the process's
 * standard ones). The stream's user is the join (struct tt_stream_owner, pipe.h): the wsconn's
 * session callbacks may be the pipe's (tt_pipe_session_callbacks), which hand its events here. */
#ifndef TT_AGENT_FDJOIN_H
#define TT_AGENT_FDJOIN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "common/wsconn.h"

struct tt_fdjoin;

/* The join is over: clean when both directions carried FIN (everything written), else the
 * stream was reset or lost (code: the peer's RESET code, or -1), or a descriptor failed. up:
 * bytes read from in_fd and sent; down: bytes written to out_fd. The join frees itself after
 * this returns; its handles close later (the loop runs them out). */
typedef void (*tt_fdjoin_done_cb)(struct tt_fdjoin *j, bool clean, int code, uint64_t up,
                                  uint64_t down, void *ud);

/* Joins in_fd and out_fd to stream id of c (open, its user pointer NULL: set to the join here).
 * Reading starts at once. Returns 0 and *out, or TETHER_ERR_NOMEM / _IO (a descriptor libuv
 * cannot take) / _NO_STREAM; then nothing was kept open. */
int tt_fdjoin_new(struct tt_fdjoin **out, uv_loop_t *loop, int in_fd, int out_fd,
                  struct tt_wsconn *c, uint32_t id, tt_fdjoin_done_cb done, void *ud);

/* Ends the join now (tether_connect_stop): resets the stream if it is still open, closes both
 * descriptors; done follows (not clean). */
void tt_fdjoin_abort(struct tt_fdjoin *j);

#endif
