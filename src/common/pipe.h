/* pipe.h - joins one socket (a conn, conn.h: TCP, or TLS on the relay's https listener) to one
 * stream of a wsconn, both ways: socket input goes upstream as DATA within the stream's send
 * window (reading stops while the window or the wsconn's output queue is full, so a slow peer
 * holds back only this stream); DATA from the peer is written to the socket and credited back
 * (tt_wsconn_consume) only once written, so a slow socket holds at most one window. A stream
 * whose socket takes everything at once while the peer is window-limited gets its window grown
 * (tt_wsconn_grow_window: doubling, at most 4 MiB more per stream and 64 MiB for all the pipes
 * of a thread), so that the window does not cap a fast stream. EOF on the socket becomes FIN;
 * the peer's FIN becomes a write shutdown (half-close). Errors become RESET / socket close.
 *
 * Used by the agent (local service sockets), the relay's TCP ports, and the relay's HTTP
 * proxying (with a filter that rewrites requests and may hold input back, and a downstream
 * hook that reads the responses; the agent's pipes have neither).
 *
 * Owns: the conn it is given (closed by it), its read chunk and two queues, each capped:
 * - the upstream queue (filter output and pre bytes not yet sent): the socket stops being read
 *   once it holds 64 KiB, and it takes at most 4 MiB (what the filter makes of one read beyond
 *   that mark); tt_pipe_send answers TETHER_ERR_AGAIN past the cap;
 * - the write queue (the peer's DATA not yet written to the socket, and the answers written
 *   with tt_pipe_write): the peer's part is at most the stream's receive window (the session
 *   fails a peer that sends more) plus the growth granted (at most 4 MiB); its cap is that plus
 *   64 KiB for answer pages. Past it the stream is reset (TT_RESET_CANCEL).
 * A pipe frees itself once both its socket is closed and its stream has ended; on_done is the
 * last callback. DATA is written to the socket at the end of the wsconn read that brought it,
 * from the wsconn's receive buffer (one writev), when that read is the last of the loop turn;
 * otherwise (bulk: the read chunk itself is queued when this pipe had it alone), and for what
 * the socket does not take, it is queued and flushed once per loop iteration.
 * Return values: common/'s convention (util.h): 0 or a negative tether_err. */
#ifndef TT_PIPE_H
#define TT_PIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "wsconn.h"

struct tt_pipe;

/* A stream's user that is not a pipe, on a wsconn whose other streams are pipes (the relay's
 * visitor bridge joins a device stream to a tether connect connection, relay/visitor.h): the
 * stream callbacks of tt_pipe_session_callbacks hand the stream's events on to cb (its on_data,
 * on_fin, on_reset, on_window and on_stream_close) when st->user points to a struct that starts
 * with this one and cb is set. A pipe starts with one whose cb is NULL. */
struct tt_stream_owner {
    const struct tt_session_callbacks *cb;
};

struct tt_pipe_hooks {
    /* Optional. Socket input goes through here instead of straight upstream (the relay's HTTP
     * filter). The hook passes on what it wants with tt_pipe_send(), which always takes
     * everything. eof: the socket has no more input (len is then 0; given once every byte
     * before it was taken). Return how many bytes of in it took (0..len), or a negative
     * tether_err to reset the stream and close the socket after flushing anything written with
     * tt_pipe_write(). What it does not take is kept (copied; at most 128 KiB, beyond which the
     * stream is reset) and the socket is not read, nor its EOF passed on, until tt_pipe_refeed()
     * offers it again. */
    tt_ssize (*filter)(struct tt_pipe *p, const uint8_t *in, size_t len, bool eof, void *ud);
    /* Optional. The stream ended (RESET from the peer, the session went away, or the connect
     * failed) before a single byte came from it; code is the TT_RESET_* code (or -1 when the
     * session went away). Return true after writing an answer with tt_pipe_write() (the
     * relay's 502 page): the pipe flushes it and closes the socket. */
    bool (*on_fail)(struct tt_pipe *p, int code, void *ud);
    /* Optional. The pipe is over and about to be freed. up: bytes read from the socket; down:
     * bytes written to the socket. */
    void (*on_done)(struct tt_pipe *p, uint64_t up, uint64_t down, void *ud);
    /* Optional. Sees each DATA payload from the peer, data[0..len), before it goes to the
     * socket (the relay's HTTP response tracking), and returns how many of its first bytes go
     * on (len, or fewer: the rest is dropped and credited back). Called from inside the
     * session's callback: it must not end the pipe; it may call tt_pipe_refeed(). */
    size_t (*downstream)(struct tt_pipe *p, const uint8_t *data, size_t len, void *ud);
};

/* Creates a pipe between sock (a conn, not reading, taken over: the pipe sets sock->tcp.data
 * and closes it) and stream id of c, and sets the stream's user pointer to the pipe.
 * If connecting is true the socket's connect is still under way: call tt_pipe_connected()
 * from its callback; DATA arriving meanwhile is queued (the window bounds it). Otherwise the
 * pipe starts reading now. pre[0..prelen) are bytes already read from the socket; they go
 * through the filter (or upstream) first. hooks and ud must outlive the pipe. Returns 0 and *out,
 * or TETHER_ERR_NOMEM / _NO_STREAM (then sock is still the caller's). */
int tt_pipe_new(struct tt_pipe **out, uv_loop_t *loop, struct tt_conn *sock, bool connecting,
                struct tt_wsconn *c, uint32_t id, const uint8_t *pre, size_t prelen,
                const struct tt_pipe_hooks *hooks, void *ud);

/* The socket's connect finished with status (a libuv code: 0 or negative). On failure the
 * stream is reset with TT_RESET_REFUSED and the pipe ends. */
void tt_pipe_connected(struct tt_pipe *p, int status);

/* From a filter: sends len bytes upstream (copied; queued until the window allows). Returns 0,
 * TETHER_ERR_AGAIN (the upstream queue's cap, 4 MiB, would be passed: nothing taken; fail the
 * stream) or TETHER_ERR_NOMEM. */
int tt_pipe_send(struct tt_pipe *p, const uint8_t *data, size_t len);

/* Offers the socket input the filter left to it again, from the loop's next idle turn (with
 * len 0 when none was left), then reads the socket again. Safe from any callback. */
void tt_pipe_refeed(struct tt_pipe *p);

/* Writes len bytes to the socket (copied). Returns 0, TETHER_ERR_AGAIN (the write queue's cap
 * would be passed: nothing taken) or TETHER_ERR_NOMEM. */
int tt_pipe_write(struct tt_pipe *p, const uint8_t *data, size_t len);

/* Ends the pipe now: resets the stream (code) if it is still open, flushes what was written
 * with tt_pipe_write, and closes the socket. */
void tt_pipe_abort(struct tt_pipe *p, uint16_t code);

/* Ends the pipe now without flushing: resets the stream (code) if it is still open and closes
 * the socket, dropping whatever the socket has not taken (a client that stopped reading). */
void tt_pipe_kill(struct tt_pipe *p, uint16_t code);

/* Loop time (uv_now) of the last bytes read from or written to the socket; the pipe's
 * creation until then. For idle timeouts. */
uint64_t tt_pipe_last_io(const struct tt_pipe *p);

/* True while the pipe reads its socket; false while it holds it back (the stream's window, the
 * wsconn's output queue or the filter's queue is full; or the socket's input has ended). For
 * timeouts that must not count the time the relay itself stopped reading. */
bool tt_pipe_reading(const struct tt_pipe *p);

/* Bytes of the peer's DATA so far: written to the socket or waiting to be (plus anything
 * written with tt_pipe_write). Unchanged over a time span: nothing came from the peer. */
uint64_t tt_pipe_peer_bytes(const struct tt_pipe *p);

/* True once the pipe is known not to end well: its stream was reset (by either side), its
 * session went away, or its socket failed; false while it may still end with a FIN each way
 * (read it in on_done for how it ended). */
bool tt_pipe_failed(const struct tt_pipe *p);

/* The pipe's user data (ud given to tt_pipe_new) and stream id. */
void *tt_pipe_ud(const struct tt_pipe *p);
uint32_t tt_pipe_stream_id(const struct tt_pipe *p);

/* Fills the stream callbacks of cb (on_data, on_fin, on_reset, on_window, on_stream_close) with
 * the pipe's handlers, which find the pipe in st->user (a NULL user: data is consumed and
 * dropped). The application sets the others (on_hello or on_welcome, on_open, on_goaway...). */
void tt_pipe_session_callbacks(struct tt_session_callbacks *cb);

#endif
