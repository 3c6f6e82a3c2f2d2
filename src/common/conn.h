/* conn.h - a connected byte stream: the transport under wsconn, pipe, the relay's head reading
 * and its canned answers, and the agent's dial. A libuv TCP socket, plain or with a TLS session
 * on it (tls.h). The calls mirror libuv's stream calls and keep their rules, so that an owner's
 * code is the same either way:
 * - read memory comes from the owner's alloc callback, and every callback gets the conn's
 *   handle (uv_stream_t *)&c->tcp, whose data field is the owner's, as with libuv;
 * - nread 0 gives a buffer back unused, UV_EOF ends the input, a negative code is an error;
 * - buffers handed to a write stay the owner's until its callback; a request that fails to
 *   start (negative return) never gets its callback; requests still under way when the conn
 *   closes get UV_ECANCELED, before the close callback.
 * On a plain conn every call is libuv's own: no copy, no buffer or state of ours. On a TLS conn
 * reads are decrypted straight into the owner's buffer and writes are encrypted into pooled
 * chunks; a write's callback comes once its ciphertext is on the socket (so the owner's
 * back-pressure works unchanged), and a shutdown sends close_notify first.
 *
 * Hand-over: an owner passes a conn on by stopping its reads and passing the pointer (the new
 * owner sets c->tcp.data). A TLS conn carries its session along, together with anything it
 * has read and not yet delivered: the new owner gets it when it starts reading.
 *
 * Return values: the stream calls below are libuv's and keep libuv's codes, as their callbacks
 * do (the one place in common/ where a libuv code is seen: it is logged with uv_err_name where
 * it happens and passed up as a tether_err through tt_conn_err, as STYLE.md asks); everything
 * else follows common/'s convention (util.h): 0 or a negative tether_err.
 *
 * A filter (TLS: tls.c, the only one) puts itself on a conn by setting c->filter to its table of
 * calls (struct tt_conn_filter below) and c->tls to its session: conn.c then hands every stream
 * call to it (one call through a pointer per read start, write or shutdown; nothing per byte),
 * and knows nothing else of TLS, so that this module does not depend on tls.c.
 *
 * Owns: its uv_tcp_t (embedded) and its TLS session. Freed only by tt_conn_close(). */
#ifndef TT_CONN_H
#define TT_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct tt_tls;
struct tt_conn;

/* The calls of a filter on a conn (TLS: tls.c), which take the place of libuv's stream calls
 * and keep the rules of the tt_conn_* calls below. close closes the socket and the filter's own
 * handles, then calls tt_conn_closed(c) once. The table is static: a conn points to it. */
struct tt_conn_filter {
    int (*read_start)(struct tt_conn *c, uv_alloc_cb alloc_cb, uv_read_cb read_cb);
    int (*read_stop)(struct tt_conn *c);
    int (*write)(struct tt_conn *c, uv_write_t *req, const uv_buf_t bufs[], unsigned nbufs,
                 uv_write_cb cb);
    int (*shutdown)(struct tt_conn *c, uv_shutdown_t *req, uv_shutdown_cb cb);
    void (*close)(struct tt_conn *c);
};

struct tt_conn {
    uv_tcp_t tcp;       /* the socket; tcp.data belongs to the owner */
    struct tt_tls *tls; /* the TLS session on it (tls.h), or NULL: plain TCP. Owned */
    const struct tt_conn_filter *filter; /* the calls of that session (set with tls), or NULL */
    uv_close_cb close_cb;                /* private: tt_conn_close's callback */
};

/* Allocates a conn into *out whose socket is initialized on loop, not connected (uv_tcp_connect,
 * uv_accept or uv_tcp_open on &c->tcp next). tcp.data is NULL. Returns 0, or TETHER_ERR_NOMEM
 * (*out NULL). Free it with tt_conn_close(). */
int tt_conn_new(struct tt_conn **out, uv_loop_t *loop);

/* The tether_err for a libuv code (0 for 0): what a conn's owner passes up once a libuv code
 * from the calls below or their callbacks leaves the transport (after logging it with
 * uv_err_name where it happened). */
int tt_conn_err(int uverr);

/* The conn whose handle h is (h must be &c->tcp of a conn, as handed to every callback). */
struct tt_conn *tt_conn_of(uv_handle_t *h);

/* uv_read_start / uv_read_stop on c. With TLS, alloc_cb and read_cb see plaintext only; the
 * handshake runs whether or not the owner reads. Return 0 or a libuv error. */
int tt_conn_read_start(struct tt_conn *c, uv_alloc_cb alloc_cb, uv_read_cb read_cb);
int tt_conn_read_stop(struct tt_conn *c);

/* uv_write on c: bufs[0..nbufs) (the array is copied; the bytes must live until cb). With
 * TLS, req->handle and req->cb are set as libuv sets them, and at most TT_TLS_MAX_WRITES
 * writes may be under way at once (UV_ENOBUFS beyond). Returns 0 (cb follows) or a libuv
 * error (no cb). */
int tt_conn_write(struct tt_conn *c, uv_write_t *req, const uv_buf_t bufs[], unsigned nbufs,
                  uv_write_cb cb);

/* uv_try_write on c: writes what the socket takes at once, with no request and no callback.
 * Returns the bytes written (> 0), or UV_EAGAIN when none could go (then use tt_conn_write), or
 * another libuv error. A TLS conn always answers UV_EAGAIN: its writes go through
 * tt_conn_write. */
int tt_conn_try_write(struct tt_conn *c, const uv_buf_t bufs[], unsigned nbufs);

/* uv_shutdown on c: after the writes under way, ends our direction (with TLS: close_notify,
 * then the TCP write shutdown). Returns 0 (cb follows) or a libuv error (no cb). */
int tt_conn_shutdown(struct tt_conn *c, uv_shutdown_t *req, uv_shutdown_cb cb);

/* Closes c: requests under way get UV_ECANCELED, then cb (may be NULL) is called with
 * (uv_handle_t *)&c->tcp, whose data is still the owner's, and c is freed. Call it once. */
void tt_conn_close(struct tt_conn *c, uv_close_cb cb);

/* For a filter's close (struct tt_conn_filter), once the socket and its own handles are closed:
 * does tt_conn_close's ending (its callback, with the owner's data, then c freed). */
void tt_conn_closed(struct tt_conn *c);

/* True once tt_conn_close() has been called. */
bool tt_conn_is_closing(const struct tt_conn *c);

/* Closes loop (uv_loop_close) for the owner's free, once its handles have been closed and the
 * loop run until their callbacks. Should a handle still be open (a bug), logs a warning, closes
 * every handle left, runs the loop to their close callbacks and closes it then: nothing leaks. */
void tt_conn_loop_close(uv_loop_t *loop);

/* Writes the peer's address as "IP:PORT" ("[IP]:PORT" for IPv6) into out; "" when unknown. */
void tt_conn_peer(const struct tt_conn *c, char *out, size_t outlen);

#endif
