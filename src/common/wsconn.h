/* wsconn.h - one device connection: a WebSocket (wsframe.h framing) over a conn (conn.h: TCP,
 * plain or TLS), carrying a Tether session (src/core/session.h). Relay side (server) or agent
 * side (client); the opening handshake is done before (wshs.h) and any bytes read past it are
 * handed in.
 *
 * Owns: the conn it is given (closed by it), the tt_session and its stream table, the output
 * queue (capped: see "Bounded output" below) and a pong buffer. The wsconns of one loop share one
 * uv_idle handle, which flushes each output queue once per loop iteration, before the loop polls
 * (many frames, one write), and one uv_timer for pings, ping timeouts and close deadlines; both
 * close with the loop's last wsconn. (An idle rather than a prepare handle: one started from
 * another handle's prepare callback would only run after the poll, and an active idle handle keeps
 * the poll from blocking.)
 *
 * Flow: bytes read -> frame parsing and unmasking in place -> tt_session_recv -> callbacks
 * (the application's, given in the config; their user data is the wsconn's ud). Fragmented
 * binary messages are accepted; a text frame closes with 1003, a binary message over
 * max_message with 1009, a WebSocket protocol error (including a frame masked the wrong way)
 * with 1002, a Tether session error with a GOAWAY (on the relay, a REFUSE when the handshake
 * failed) and 1002. Pings are answered, only the latest one when several come before a pong can
 * be written (RFC 6455 5.5.3): at most one pong is in the output queue and one more payload
 * waits (in a 125-byte buffer) for it to be written, whatever the peer sends. If
 * ping_interval_ms is set, the link is checked that
 * often: a ping goes out when nothing has been received for ping_quiet_ms (default: half the
 * interval, so a quiet link is pinged every interval and a peer that pings or talks often
 * enough saves us ours), and if ping_timeout_ms is set we close with TETHER_ERR_TIMEOUT when
 * nothing at all has been received for that long (noticed at the first check after it). Checks
 * are served in batches: a connection's check may come up to 1/32 of its interval (at most
 * 100 ms) late, so that a relay wakes a few times a second for the pings of all its
 * connections rather than once per connection. A close flushes, shuts down writing and
 * waits (at most 3 s) for the peer's EOF before the socket is closed; on_close comes before that
 * wait.
 *
 * Bounded output. The output queue has three marks. Above out_high (1 MiB by default) the
 * wsconn is not writable: pipes stop reading their sockets (tt_wsconn_wait_writable), so the
 * data path queues at most out_high plus one DATA frame. Above out_high + 128 KiB, which only
 * frames the peer provokes without reading can reach (answers to its input, OPENs and RESETs
 * queued faster than it reads), the wsconn stops reading the peer until the queue is back under
 * out_high. At out_max (4 x out_high by default) the queue is full: a frame that does not fit
 * is not queued and the connection is closed at once, without a close frame (err
 * TETHER_ERR_IO, reason "peer does not read"). Control frames (pings, pongs, close) go through
 * the same queue and the same cap. A connection whose queued output has not moved for stall_ms
 * (30 s by default: no byte taken by the socket; checked at each link check, so up to one
 * check period later) is closed the same way. Both closes are counted (tt_wsconn_get_stats).
 * Return values: common/'s convention (util.h): 0 or a negative tether_err; counts of bytes
 * or chunks taken are returned as such (>= 0) or a negative tether_err. */
#ifndef TT_WSCONN_H
#define TT_WSCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "../core/session.h"
#include "conn.h"

struct tt_wsconn;
struct tt_chunk; /* pool.h */

struct tt_wsconn_config {
    bool client;                                   /* agent: mask our frames */
    struct tt_session_config session;              /* role, window, max_streams */
    const struct tt_session_callbacks *session_cb; /* their ud is the wsconn's ud */
    uint32_t ping_interval_ms;                     /* link check period; 0: never ping */
    uint32_t ping_quiet_ms;                        /* ping after this much silence (0: half) */
    uint32_t ping_timeout_ms;                      /* 0: never time out */
    size_t out_high;    /* output queue above this: not writable (0: 1 MiB) */
    size_t out_max;     /* hard cap on the output queue (0: 4 x out_high; at least out_high) */
    uint32_t stall_ms;  /* close when queued output has not moved for this long (0: 30 s) */
    size_t max_message; /* largest WebSocket message accepted (0: 1 MiB) */
};

/* Counters of every wsconn of the process (for /metrics). */
struct tt_wsconn_stats {
    uint64_t overflow_cap;    /* closed: a frame did not fit under out_max */
    uint64_t overflow_stall;  /* closed: queued output did not move for stall_ms */
    uint64_t read_paused;     /* times reading stopped because the queue passed its stop mark */
    uint64_t pings_answered;  /* pongs sent (or queued) */
    uint64_t pings_coalesced; /* pings left unanswered because a later one came first */
    uint64_t run_capped;      /* idle turns that reached TT_WSCONN_RUN_PER_TURN connections */
};

/* Connections (start, flush, close) one loop's idle turn runs at most; the rest wait for the
 * next turn, after one poll (wsconn.c, on_loop_idle). */
#define TT_WSCONN_RUN_PER_TURN 256

/* Copies the process's counters into *out. Cannot fail; any thread. */
void tt_wsconn_get_stats(struct tt_wsconn_stats *out);

struct tt_wsconn_callbacks {
    /* The connection is over: peer close frame, EOF, read/write error, ping timeout, protocol
     * error, or tt_wsconn_close(). err is 0 for an orderly close, else a tether_err.
     * Every open stream has had on_stream_close before this is called. The wsconn is freed
     * when this returns (its handles close afterwards): do not use c again. */
    void (*on_close)(struct tt_wsconn *c, int err, const char *reason, void *ud);
};

/* A pipe (or anything) waiting for the output queue to drain. */
struct tt_wsconn_waiter {
    struct tt_wsconn_waiter *next, *prev;   /* owned by the wsconn while queued */
    void (*cb)(struct tt_wsconn_waiter *w); /* called once; the waiter is unqueued first */
};

/* Creates a wsconn over conn, which must be connected (any TLS handshake done) and not reading
 * (call tt_conn_read_stop first); the wsconn takes it over (sets conn->tcp.data, closes it).
 * pre[0..prelen) are bytes already read after the handshake; they are copied. The
 * session's stream table starts small and grows up to cfg->session.max_streams. Returns 0 and
 * *out, or TETHER_ERR_NOMEM / _INVAL (then conn is still the caller's). */
int tt_wsconn_new(struct tt_wsconn **out, uv_loop_t *loop, struct tt_conn *conn, const uint8_t *pre,
                  size_t prelen, const struct tt_wsconn_config *cfg,
                  const struct tt_wsconn_callbacks *cb, void *ud);

/* The session inside c (to call tt_session_open, _hello, _accept... with a scratch buffer, then
 * tt_wsconn_send_frame). */
struct tt_session *tt_wsconn_session(struct tt_wsconn *c);
/* The wsconn whose session s is (s must come from tt_wsconn_session or a session callback of a
 * wsconn). Cannot fail. */
struct tt_wsconn *tt_wsconn_from_session(struct tt_session *s);
/* The ud given to tt_wsconn_new. */
void *tt_wsconn_ud(const struct tt_wsconn *c);

/* Queues one complete Tether frame (or several concatenated) as one binary WebSocket message.
 * Copies it. Returns 0, TETHER_ERR_NOMEM or _CLOSED (also when it did not fit under out_max:
 * the connection is then closing). */
int tt_wsconn_send_frame(struct tt_wsconn *c, const uint8_t *frame, size_t len);

/* Sends up to len bytes of data on stream id as DATA frames (each at most 65535 bytes, within
 * the stream's send window); FIN rides on the last frame when fin is true and all of len fits
 * (len may be 0 with fin). Copies the bytes into the output queue. Returns the number of bytes
 * taken (0..len; fewer when the window shuts), or TETHER_ERR_NO_STREAM, _CLOSED (also when a
 * frame did not fit under out_max), _NOMEM. Callers check tt_wsconn_writable() first. */
tt_ssize tt_wsconn_send_data(struct tt_wsconn *c, uint32_t id, const uint8_t *data, size_t len,
                             bool fin);

/* Sends ch's bytes [off, len) on stream id as one DATA frame without copying them: the frame
 * headers are written into the chunk just before off (which must leave TT_CHUNK_HEADROOM), the
 * payload is masked in place on the client side, and the chunk joins the output queue. Only
 * for at least half a chunk of bytes, so that the queue's memory stays within twice the bytes
 * it counts. Returns 1 when it was taken (c owns ch now), 0 when not (fewer bytes than that,
 * more than the window or one frame take, no headroom, or no room under out_max: ch is still
 * the caller's and unchanged; send it with tt_wsconn_send_data), or TETHER_ERR_NO_STREAM,
 * _CLOSED. */
int tt_wsconn_send_chunk(struct tt_wsconn *c, uint32_t id, struct tt_chunk *ch);

/* Resets stream id (frees its slot without on_stream_close) and queues the RESET. Once c is
 * closing the slot is still freed but no frame is sent. */
void tt_wsconn_reset_stream(struct tt_wsconn *c, uint32_t id, uint16_t code);

/* The application has written n bytes received on id: credit them back (tt_session_consume)
 * and schedule a flush. */
void tt_wsconn_consume(struct tt_wsconn *c, uint32_t id, size_t n);

/* tt_session_grow_window on stream id (the WINDOW frame goes out with the next flush).
 * Returns the bytes the window grew by (0: not grown). */
uint32_t tt_wsconn_grow_window(struct tt_wsconn *c, uint32_t id, uint32_t extra);

/* True while the output queue is below out_high (false once closing). */
bool tt_wsconn_writable(const struct tt_wsconn *c);
/* Bytes in the output queue, including those being written (at most out_max). */
size_t tt_wsconn_queued(const struct tt_wsconn *c);
/* Calls w->cb once when the queue has drained below out_high/2 (at once, on the next flush, if
 * it already has). w must start zeroed (w->next == NULL means "not queued"); queuing a waiter
 * that is already queued does nothing. Waiters are dropped without a call once c is closing. */
void tt_wsconn_wait_writable(struct tt_wsconn *c, struct tt_wsconn_waiter *w);
/* Takes w off the wait list (or the read-end list) if it is on it. */
void tt_wsconn_cancel_wait(struct tt_wsconn *c, struct tt_wsconn_waiter *w);
/* From a session callback (on_data): calls w->cb once the session has taken all of the input
 * under way. The bytes on_data gave stay valid until then (they are in the wsconn's receive
 * buffer), so that w->cb may write them out without a copy; they are not afterwards. w must
 * start zeroed; queuing a queued waiter does nothing. Called even when c started closing
 * during that input. */
void tt_wsconn_after_input(struct tt_wsconn *c, struct tt_wsconn_waiter *w);
/* During a session callback or an after-input call: true when the read being fed filled its
 * buffer, so more input is most likely waiting and will be read in this same loop turn. */
bool tt_wsconn_input_full(const struct tt_wsconn *c);
/* From the after-input call of the only reader of the read just fed: takes that read's chunk
 * (the caller owns it now: tt_chunk_put, or keep it), so that the bytes on_data gave it can
 * stay where they are; its bytes outside them (frame headers, other frames) are the caller's
 * to overwrite. Returns NULL when there were other readers, the input was not a socket read,
 * or the chunk was taken already. */
struct tt_chunk *tt_wsconn_take_input(struct tt_wsconn *c);

/* Sends a GOAWAY (code, reason) if the session is open, then a WebSocket close frame
 * (ws_code), flushes, and closes: on_close follows (asynchronously) with err. Safe to call more
 * than once. */
void tt_wsconn_close(struct tt_wsconn *c, uint16_t goaway_code, uint16_t ws_code, int err,
                     const char *reason);

/* The WebSocket close code that follows a GOAWAY of code goaway (docs/PROTOCOL.md 2.4): 1001
 * after SHUTDOWN, 1002 after PROTOCOL, 1008 after REVOKED, 1000 after the others (NORMAL,
 * TAKEOVER, DELETED, and codes this version does not know). Cannot fail. */
uint16_t tt_wsconn_close_code(uint16_t goaway);

/* Closes c now, without GOAWAY, close frame or waiting for the peer (a connection shed to make
 * room for others): on_close is called (with err and reason) and the socket closed before this
 * returns, so its descriptor is free; c's memory goes after the close callback. Not from one of
 * c's own callbacks. Does nothing once c's socket is closing. */
void tt_wsconn_abort(struct tt_wsconn *c, int err, const char *reason);

/* Peer address "IP:PORT" (empty if unknown). */
const char *tt_wsconn_peer(const struct tt_wsconn *c);
/* Our initial receive window per stream (cfg.session.window): what the peer may send on a
 * stream before it gets credit back (for sizing queues of received data). */
uint32_t tt_wsconn_window(const struct tt_wsconn *c);
/* Bytes of Tether payload received and sent (for stats). */
uint64_t tt_wsconn_bytes_in(const struct tt_wsconn *c);
uint64_t tt_wsconn_bytes_out(const struct tt_wsconn *c);

#endif
