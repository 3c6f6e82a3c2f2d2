/* headconn.h - a freshly accepted HTTP connection whose request head is being read, for the
 * relay's main and admin listeners. The head is read into a pool chunk (at most TT_HEAD_MAX
 * bytes) and parsed as it arrives; a malformed head is answered 400, one too large 431, a
 * request target over TT_URI_MAX 414, and a head not complete within the set's timeout_ms of
 * the accept (a total deadline: trickling bytes does not extend it) is dropped, all without
 * the owner hearing of it. Once the
 * head is complete the owner's on_head decides: it takes the socket (tt_headconn_take) or
 * answers (tt_headconn_respond). On a TLS listener (the set has a context) each connection gets
 * a TLS session first, and its head is read through it: the handshake counts in the timeout;
 * a failed one drops the connection; the socket handed on carries the session. The first bytes
 * on a TLS listener tell TLS (a record starts 0x16) from plain HTTP (a method: ASCII capitals),
 * before OpenSSL sees them: plain HTTP is answered 400 with a page saying to use https (as
 * nginx does), anything else is dropped. Plain HTTP and failed handshakes are logged at info
 * with the peer's address, at most TT_HEADCONN_LOG_BURST lines per TT_LIMITS_LOG_EVERY_MS per
 * listener set (the next line says how many were not logged). */
#ifndef TT_HEADCONN_H
#define TT_HEADCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "common/conn.h"
#include "common/pool.h"
#include "common/tls.h"
#include "relay/http/headparse.h"
#include "relay/limits.h"

#define TT_HEADCONN_TIMEOUT_MS 30000
/* Complete request heads whose owner's on_head a capped set runs per loop turn (the relay's
 * device-and-browser listeners; docs/operators-guide.md, "The loop's stall"): past it a
 * connection whose head is complete stops being read and waits, in order, for the next turns
 * (an idle handle keeps the loop from waiting for I/O meanwhile); its head deadline still
 * runs. */
#define TT_HEADCONN_PER_TURN 128
/* TLS connections whose first bytes (the ClientHello: the handshake's costly part follows at
 * once) a capped TLS set starts reading per loop turn (docs/operators-guide.md, "The loop's
 * stall"). Past it a newly accepted connection is not read: it waits, in order, holding no
 * buffer, for a later turn, its head deadline running. Whenever a connection is about to be
 * read for its handshake, one whose client already went (it closed or reset the connection
 * while it waited in the kernel's accept queue or here) is dropped with no handshake: in a
 * reconnect storm the agents that gave up and dialled again would otherwise have every
 * abandoned attempt's handshake paid for. */
#define TT_HEADCONN_HANDSHAKES_PER_TURN 64
/* Once the oldest connection waiting for its handshake has waited this long, the newest are
 * served first (until the wait is short again): under a storm the oldest ones' clients are
 * about to give up (the agent's dial timeout), and a handshake paid for a client that leaves
 * before its registration is done is lost; the newest have their whole timeout ahead. The
 * oldest are dropped by the head deadline, or before their handshake once their client has
 * gone. */
#define TT_HEADCONN_LIFO_AFTER_MS 1000
#define TT_HEADCONN_GATE_RETRY_MS 20
/* Connections waiting for their handshake past which the relay's TLS listeners stop accepting
 * (acceptcap.h: the next ones wait in the kernel's accept queue, costing nothing; past the
 * listen backlog the kernel drops new SYNs and clients retry them): accepting more would only
 * make a longer queue of clients that give up before their turn, each accepted, and shed by
 * --max-pending, for nothing. About four seconds of handshakes at the rates measured. */
#define TT_HEADCONN_WAITING_MAX 1024
/* A connection counts in handshakes_active (the handshakes under way the owner's gate weighs)
 * from the moment its first bytes are read until its head is complete, and at most this long:
 * a live client's handshake takes a round trip, and a client that holds its connection open
 * without a head (a browser's preconnection, a stranger) must not keep the gate shut. */
#define TT_HEADCONN_ACTIVE_MAX_MS 2000
/* While the owner's gate is shut, handshakes still start, at most this many per
 * TT_HEADCONN_GATE_WINDOW_MS (oldest-first rules as always): whatever fills the node's
 * registrations (a storm, a stopped Redis, silent WebSocket clients), browsers and devices keep
 * getting handshakes, slowly. */
#define TT_HEADCONN_GATE_FLOOR 8
#define TT_HEADCONN_GATE_WINDOW_MS 100
#define TT_HEADCONN_LOG_BURST 10

struct tt_headconn;

/* The head is complete: hc->hp holds its headers, hc->data[0..hc->headlen) is the head and
 * hc->data[0..hc->len) everything read so far. The callee must end with tt_headconn_take +
 * tt_headconn_free, or tt_headconn_respond. */
typedef void (*tt_headconn_cb)(struct tt_headconn *hc, void *ud);

/* The live connections of one listener, and the timer that drops slow ones. */
struct tt_headconn_set {
    uv_timer_t timer;
    struct tt_headconn *list;
    tt_headconn_cb on_head;
    void *ud;
    uint64_t timeout_ms;    /* TT_HEADCONN_TIMEOUT_MS after init; the owner may change it */
    struct tt_tls_ctx *tls; /* NULL: plain TCP; else the server context new connections get
                               (the owner's; it may replace it at any time: SIGHUP) */
    /* NULL, or where connections are counted as unauthenticated until their head is complete
     * (taken or answered): a connection refused there is closed at once, one shed is freed */
    struct tt_limits *limits;
    bool closed;
    /* TLS listeners: plain HTTP requests answered 400, handshakes failed (or not TLS at all),
     * and the rate limit of their log lines (headconn.c) */
    uint64_t plain_http, tls_failed;
    uint64_t log_window_at, log_skipped;
    unsigned log_in_window;
    /* The cap on heads run per loop turn (0, after init: none; the owner sets it): */
    unsigned heads_per_turn;
    uint64_t turn;       /* the loop turn (tt_acceptcap_turn) heads were last counted in */
    unsigned turn_heads; /* heads run in it */
    uv_idle_t idle;      /* runs the waiting heads and handshakes while there are any */
    struct tt_headconn *ready_head, *ready_tail; /* complete heads waiting, oldest first */
    uint64_t heads_deferred;                     /* heads that waited for a later turn */
    /* TLS sets: the cap on handshakes started per loop turn (0, after init: none; the owner
     * sets it), the connections not read yet that wait for one, oldest first, and counters:
     * connections that waited, connections dropped before their handshake because their
     * client had gone, and how many wait now. */
    unsigned handshakes_per_turn;
    uint64_t hs_turn;
    unsigned turn_handshakes;
    struct tt_headconn *hs_head, *hs_tail;
    uint64_t handshakes_deferred, handshakes_abandoned;
    size_t handshakes_waiting;
    /* Connections read for their handshake whose head is not complete yet (TLS sets). */
    size_t handshakes_active;
    /* NULL, or the owner's gate (TLS sets): false while no handshake should start now (the
     * node registers as many devices as it may: each would be refused busy once its handshake
     * is paid for); the waiting ones wait (but TT_HEADCONN_GATE_FLOOR), checked again every
     * TT_HEADCONN_GATE_RETRY_MS. */
    bool (*may_start)(struct tt_headconn_set *set, void *ud);
    uv_timer_t gate_timer;
    uint64_t handshakes_gated; /* times a handshake waited at the gate */
    uint64_t floor_window;     /* the TT_HEADCONN_GATE_WINDOW_MS window of floor_used */
    unsigned floor_used;       /* handshakes started through the shut gate in it */
};

struct tt_headconn {
    struct tt_headconn_set *set;
    struct tt_headconn *prev, *next;
    struct tt_conn *conn; /* NULL once taken */
    struct tt_chunk *buf;
    const uint8_t *data; /* buf->data */
    size_t len, headlen;
    uint64_t started; /* uv_now at accept */
    char peer_ip[64];
    uint16_t peer_port;
    struct tt_limits_conn lim; /* on set->limits until taken or freed */
    tt_headconn_cb on_body;    /* tt_headconn_read_body: called once len reaches want */
    size_t want;
    void *owner_data; /* the owner's malloc'd state while the body is read (NULL: none); freed
                         with hc unless the owner takes it back (sets it NULL) */
    /* Optional, for an owner that keeps hc after on_head while something asynchronous runs (a
     * secret check: visitor.c; it stops reading hc->conn meanwhile): called by tt_headconn_free
     * just before hc goes when it goes without the owner (its deadline, a shed, the set
     * closing). The owner clears it before it answers or takes hc itself. */
    void (*on_drop)(struct tt_headconn *hc, void *ud);
    void *drop_ud;
    bool sniff;     /* a TLS listener's connection whose first bytes are not read yet */
    bool queued;    /* its head is complete and waits on set->ready (read stopped) */
    bool hs_queued; /* not read yet: waits on set->hs_head for its handshake (rprev, rnext) */
    bool hs_active; /* counted in set->handshakes_active (since read_at) */
    uint64_t read_at;
    struct tt_headconn *rprev, *rnext;
    struct tt_headparse hp;
};

/* Prepares set (its timer starts). Returns 0 or a libuv error. */
int tt_headconn_set_init(struct tt_headconn_set *set, uv_loop_t *loop, tt_headconn_cb on_head,
                         void *ud);
/* Drops every connection of set and closes its timer; set must stay allocated until the loop
 * has run once more (the timer's close). */
void tt_headconn_set_close(struct tt_headconn_set *set);

/* Accepts one connection from server into set and starts reading its head (on a TLS set past
 * this turn's TT_HEADCONN_HANDSHAKES_PER_TURN, it waits for a later turn first). On failure the
 * pending connection is accepted and dropped. Returns 0 or a negative tether_err
 * (TETHER_ERR_CAPACITY: refused by set->limits, tt_limits_admit; TETHER_ERR_IO: it cannot be
 * read, or on a TLS set its client has gone already). */
int tt_headconn_accept(struct tt_headconn_set *set, uv_stream_t *server);

/* Takes the socket out of hc (reading stopped; conn->tcp.data is the caller's); the connection
 * no longer counts as unauthenticated. hc->data stays valid until tt_headconn_free. */
struct tt_conn *tt_headconn_take(struct tt_headconn *hc);
/* Frees hc (and its socket unless taken). */
void tt_headconn_free(struct tt_headconn *hc);
/* Largest request body tt_headconn_read_body can gather (head and body share hc's chunk). */
#define TT_HEADCONN_BODY_MAX (32u * 1024)

/* From on_head: gathers the request's body (a form, a small JSON document) before the owner
 * answers. The body must have a Content-Length of at most max (and TT_HEADCONN_BODY_MAX); it
 * ends up in hc->data[hc->headlen .. hc->headlen + content length). The head's deadline keeps
 * running and the connection stays unauthenticated meanwhile. Returns 1 when the body is there
 * already (on_body is not called: go on), 0 when on_body will be called once it is (from the
 * read callback; it must end as on_head does), TETHER_ERR_HTTP for a chunked body (answer 411)
 * or TETHER_ERR_TOO_LARGE for a longer one (answer 413). The connection is answered and closed
 * afterwards: bytes past the body are ignored. */
int tt_headconn_read_body(struct tt_headconn *hc, size_t max, tt_headconn_cb on_body);

/* For an owner that stopped reading hc after on_head (tt_conn_read_stop, while something
 * asynchronous ran) and then asked for the body (tt_headconn_read_body returned 0): reading
 * starts again, so that on_body comes (possibly from inside this call: set what on_body needs
 * first, and touch hc no more after it). Returns 0, or TETHER_ERR_IO (the caller still owns hc
 * then). */
int tt_headconn_read_again(struct tt_headconn *hc);

/* The length of the body tt_headconn_read_body gathered (0 without a Content-Length). */
size_t tt_headconn_body_len(const struct tt_headconn *hc);

/* Answers data[0..len) (copied) on hc's socket, closes it and frees hc. */
void tt_headconn_respond(struct tt_headconn *hc, const void *data, size_t len);

#endif
