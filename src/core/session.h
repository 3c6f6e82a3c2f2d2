/* session.h - the sans-I/O Tether session (docs/PROTOCOL.md), shared by relay and device.
 * Bytes in (tt_session_recv), events out (callbacks), frames out into caller buffers.
 * No sockets, clocks, randomness, globals or malloc: the caller owns the session struct and the
 * stream table, and grows the table through a callback if it wants to.
 *
 * Output rules. Frames the application decides to send (HELLO, WELCOME, REFUSE, OPEN, DATA
 * header, RESET, GOAWAY) are written at once into the buffer given to that call. Frames the
 * session decides to send by itself (WINDOW credit, RESET of a stream that broke the rules) are
 * queued and come out of tt_session_send(); call it after each tt_session_recv() and after
 * tt_session_consume(), whenever tt_session_want_write() is true.
 *
 * Stream lifetime. Streams are named by id in every call: slots in the table move, so a
 * struct tt_stream pointer is valid only during the callback that hands it out. A stream ends
 * (its slot is freed, on_stream_close is called) when the peer's RESET arrives, when the session
 * resets it for a rule broken by the peer, or when both directions have carried FIN and the
 * last FIN came from the peer. When the application's own call ends the stream (its FIN after
 * the peer's, or tt_session_reset), the slot is freed inside that call and on_stream_close is
 * NOT called: the application already knows. Calls that add or remove a stream (tt_session_open,
 * _data_header with fin, _reset) may move other slots, so a struct tt_stream pointer must not be
 * used after such a call, even inside the callback that handed it out.
 *
 * Errors. A fatal error (from the peer's bytes or a callback) is kept in the session, which then
 * reads as TT_SESSION_CLOSED and ignores further input: answer with tt_session_goaway() (or, on
 * the relay before any WELCOME, tt_session_refuse(): TETHER_ERR_VERSION means "send REFUSE
 * TT_REFUSE_VERSION"), which also frees the streams, or call tt_session_shutdown(). */
#ifndef TT_SESSION_H
#define TT_SESSION_H

#include "frame.h"

enum tt_role {
    TT_ROLE_RELAY = 1,
    TT_ROLE_DEVICE = 2,
    /* Either side of a visitor connection (tether connect and the relay's visitor endpoint,
     * docs/PROTOCOL.md "The visitor's side"): both run the same state machine. No registration:
     * the session is OPEN from tt_session_init, with stream TT_VISITOR_STREAM open both ways and
     * TT_VISITOR_WINDOW of credit each way (cfg.window, max_streams and version are not used).
     * Only DATA, WINDOW and RESET on that stream, GOAWAY, and unknown types (skipped) may
     * arrive; anything else, or a stream frame on another id, is a fatal protocol error. Once
     * the stream has ended the connection has nothing more to carry: close it (GOAWAY). */
    TT_ROLE_VISITOR = 3,
};

enum tt_session_state {
    TT_SESSION_HANDSHAKE = 0, /* relay: waiting for HELLO; device: HELLO sent, waiting */
    TT_SESSION_OPEN = 1,      /* registered: streams may flow */
    TT_SESSION_CLOSED = 2,    /* GOAWAY/REFUSE sent or received, or failed: nothing more */
};

/* Stream flags. */
#define TT_STREAM_LOCAL_FIN 0x01  /* we sent FIN */
#define TT_STREAM_REMOTE_FIN 0x02 /* the peer sent FIN */
#define TT_STREAM_WINDOW_DUE 0x04 /* a WINDOW frame is queued for tt_session_send */

struct tt_stream {
    uint32_t id; /* 0: free slot */
    uint8_t service;
    uint8_t flags;
    uint32_t send_window;  /* DATA bytes we may still send */
    uint32_t recv_window;  /* DATA bytes the peer may still send */
    uint32_t recv_unacked; /* bytes consumed by the application, not yet credited back */
    uint32_t window;       /* our receive window: cfg.window, plus any tt_session_grow_window */
    void *user;            /* the application's; the core never touches it */
};

struct tt_session;

/* Every callback gets the session's user_data. A callback returning a negative tether_err makes
 * tt_session_recv() stop and return it (the session is then failed). */
struct tt_session_callbacks {
    /* Relay: a valid HELLO arrived. Answer with tt_session_accept() or tt_session_refuse(),
     * now or later. */
    int (*on_hello)(struct tt_session *s, const struct tt_hello *m, void *ud);
    /* Device: registration accepted / refused. After on_refuse the session is closed. */
    int (*on_welcome)(struct tt_session *s, const struct tt_welcome *m, void *ud);
    int (*on_refuse)(struct tt_session *s, const struct tt_coded *m, void *ud);
    /* Device: the relay opened stream st to service m->service (already checked against the
     * HELLO's service list). Set st->user. Return 0 to accept, or a positive TT_RESET_* code to
     * refuse it (the session queues the RESET and frees the slot; no on_stream_close). When
     * on_open is NULL every OPEN is refused with TT_RESET_REFUSED. */
    int (*on_open)(struct tt_session *s, struct tt_stream *st, const struct tt_open *m, void *ud);
    /* Bytes for st, a view into the input valid during the call. The application calls
     * tt_session_consume() when it has disposed of them, now or later. */
    int (*on_data)(struct tt_session *s, struct tt_stream *st, const uint8_t *data, size_t len,
                   void *ud);
    /* The peer will send no more data on st (no WINDOW credit is sent for it any more). */
    int (*on_fin)(struct tt_session *s, struct tt_stream *st, void *ud);
    /* The peer reset st; on_stream_close follows. */
    int (*on_reset)(struct tt_session *s, struct tt_stream *st, const struct tt_coded *m, void *ud);
    /* st->send_window grew (it was 0 or the application may have been waiting). */
    int (*on_window)(struct tt_session *s, struct tt_stream *st, void *ud);
    /* The peer is going away; the session is closed. */
    int (*on_goaway)(struct tt_session *s, const struct tt_coded *m, void *ud);
    /* st's slot is about to be freed (see "Stream lifetime" above). */
    void (*on_stream_close)(struct tt_session *s, struct tt_stream *st, void *ud);
    /* Optional: give the session a bigger stream table. Return a zeroed array of newcap
     * entries (a power of two), or NULL to refuse; the session moves the streams over and
     * hands the old table back through release_table. */
    struct tt_stream *(*alloc_table)(struct tt_session *s, uint32_t newcap, void *ud);
    void (*release_table)(struct tt_session *s, struct tt_stream *old, void *ud);
    /* Optional trace output, one line without newline. */
    void (*log)(void *ud, const char *msg);
};

struct tt_session_config {
    enum tt_role role;
    uint32_t window;      /* our initial receive credit per stream (sent in HELLO/WELCOME) */
    uint16_t max_streams; /* most concurrent streams we accept (device) or open (relay) */
    /* Protocol version, TT_PROTO_VERSION_MIN..TT_PROTO_VERSION (0: TT_PROTO_VERSION). Device: the
     * version of its HELLO; the WELCOME must be of the same version. Relay: the newest version
     * it accepts; it accepts every version from TT_PROTO_VERSION_MIN up to it, and its WELCOME
     * is of the HELLO's version (tt_session_version). */
    uint8_t version;
};

/* Pending session-generated RESETs (rare: a peer that breaks flow control). */
#define TT_PENDING_RESETS 8

/* The session. Fields are private; read them through the functions below. */
struct tt_session {
    struct tt_session_config cfg;
    const struct tt_session_callbacks *cb;
    void *ud;
    uint8_t state;   /* enum tt_session_state */
    uint8_t hs;      /* handshake progress bits (session.c) */
    uint8_t version; /* device: of its HELLO; relay: newest accepted, then the HELLO's */
    int err;         /* first fatal error, kept until tt_session_init */
    /* stream table: open addressing, linear probing, cap a power of two */
    struct tt_stream *streams;
    uint32_t cap;
    uint8_t capbits; /* log2(cap) */
    uint32_t nstreams;
    uint32_t next_id; /* relay: next stream id to try */
    uint32_t ndue;    /* streams with TT_STREAM_WINDOW_DUE */
    /* what the peer told us (HELLO on the relay, WELCOME on the device) */
    uint32_t peer_window;
    uint16_t peer_max_streams;
    uint8_t nservices; /* relay: from HELLO; device: from its own HELLO */
    uint8_t pending_resets;
    struct {
        uint32_t stream;
        uint16_t code;
    } resets[TT_PENDING_RESETS];
    /* decoder */
    uint8_t hdrbuf[TT_FRAME_HEADER_LEN];
    uint8_t hdrlen; /* bytes of the current header held in hdrbuf */
    struct tt_frame_header cur;
    uint32_t got; /* payload bytes of the current frame seen so far */
    uint8_t skip; /* drop the rest of the current DATA payload (stream gone or reset) */
    uint8_t ctrl[TT_CTRL_MAX];
};

/* Prepares s. table must hold cap zeroed entries, cap a power of two >= 2; the caller owns it
 * (and s) and frees it after the session is done (or after release_table handed it back, when
 * the table grew). cb and ud must outlive s. cfg->window must be 1..2^31-1 and
 * cfg->max_streams at least 1 (both are not read for TT_ROLE_VISITOR, whose session starts OPEN
 * with stream TT_VISITOR_STREAM open, its user pointer NULL). Returns 0 or TETHER_ERR_INVAL. */
int tt_session_init(struct tt_session *s, const struct tt_session_config *cfg,
                    const struct tt_session_callbacks *cb, void *ud, struct tt_stream *table,
                    uint32_t cap);

/* Feeds inlen bytes received from the peer (the concatenated payloads of WebSocket binary
 * messages; any split is fine). Fires callbacks. Returns inlen, or a negative fatal error
 * (TETHER_ERR_PROTO, _FRAME_SIZE, _VERSION, _STATE, or a callback's), which the session keeps:
 * send a GOAWAY and close the connection (see "Errors" above). Once the session is closed
 * (GOAWAY or REFUSE sent or received, or shutdown) the input is ignored and inlen returned;
 * on a failed session the error is returned again. TETHER_ERR_INVAL: in is NULL with inlen > 0.
 * Before registration (relay: the HELLO; device: the WELCOME) only the handshake frames are
 * accepted and unknown frame types are an error; afterwards unknown types are skipped. */
tt_ssize tt_session_recv(struct tt_session *s, const uint8_t *in, size_t inlen);

/* True when tt_session_send() has frames to write. */
bool tt_session_want_write(const struct tt_session *s);

/* Writes queued WINDOW and RESET frames into out[0..outlen). Returns the bytes written (0 if
 * none or if out cannot hold the next frame: TT_FRAME_HEADER_LEN + 4 bytes is always enough
 * for one). */
tt_ssize tt_session_send(struct tt_session *s, uint8_t *out, size_t outlen);

/* Device: writes the HELLO for m (version, window and max_streams are taken from the config,
 * the rest from m; m->key must be empty when the session speaks version 1). Returns its length,
 * TETHER_ERR_AGAIN (out too small), _INVAL or _STATE. */
tt_ssize tt_session_hello(struct tt_session *s, const struct tt_hello *m, uint8_t *out,
                          size_t outlen);

/* Relay: accept the HELLO with m (window, max_streams from the config; the version of the HELLO,
 * so m->key must be empty when that is 1) / refuse it.
 * Returns the frame length, TETHER_ERR_AGAIN, _INVAL or _STATE. After refuse the session is
 * closed. tt_session_refuse is allowed once, before any WELCOME: after a valid HELLO, or after
 * the session failed during the handshake (TETHER_ERR_VERSION: refuse with TT_REFUSE_VERSION;
 * a malformed HELLO: TT_REFUSE_INVALID). reason (may be NULL) is cut to TT_MAX_REASON bytes on
 * a UTF-8 boundary. */
tt_ssize tt_session_accept(struct tt_session *s, const struct tt_welcome *m, uint8_t *out,
                           size_t outlen);
tt_ssize tt_session_refuse(struct tt_session *s, uint16_t code, const char *reason, uint8_t *out,
                           size_t outlen);

/* Relay: opens a stream to service (index into the HELLO's list), with origin (may be NULL; cut
 * to TT_MAX_ADDR bytes) for the device's logs. Stores the new id in *id (if id is not NULL) and
 * user in the stream. Ids count up from 1 (31 bits) and skip ids in use. Returns the OPEN
 * frame's length, or TETHER_ERR_STATE (not registered), _NO_SERVICE, _STREAM_LIMIT (peer's or
 * our max_streams reached, or the table is full and cannot grow), _AGAIN (out too small;
 * nothing changed). */
tt_ssize tt_session_open(struct tt_session *s, uint8_t service, const char *origin, void *user,
                         uint32_t *id, uint8_t *out, size_t outlen);

/* How many DATA bytes may be sent on id now (0 when the window is shut, the stream is gone or
 * our FIN was sent). */
uint32_t tt_session_send_window(const struct tt_session *s, uint32_t id);

/* Writes the 8-byte header of a DATA frame carrying len bytes (len <= min(65535, send window))
 * and fin, and debits the window. The caller sends the payload right after it. Returns 8, or
 * TETHER_ERR_NO_STREAM, _FLOW (len over the window), _STATE (FIN already sent, or the session
 * failed), _INVAL (len over 65535, out NULL). When fin completes the stream (the peer's FIN came
 * first) the slot is freed here. */
tt_ssize tt_session_data_header(struct tt_session *s, uint32_t id, size_t len, bool fin,
                                uint8_t out[TT_FRAME_HEADER_LEN]);

/* The application has disposed of n bytes received on id: they are credited back to the peer
 * (a WINDOW frame is queued once the uncredited bytes reach half of the stream's window, or the
 * peer's remaining credit falls under half of it). Unknown ids are ignored; n is capped at the
 * bytes received and not yet credited; nothing is credited after the peer's FIN. */
void tt_session_consume(struct tt_session *s, uint32_t id, size_t n);

/* Receive-window growth, for a stream whose data the application disposes of as fast as it
 * comes (its socket took everything at once): when the peer has used more than three quarters
 * of the stream's window (it is sending as fast as the window lets it), the window grows by
 * min(extra, its size) bytes, credited at once (a WINDOW frame is queued). The application bounds
 * what it grants in all (it holds up to a window of data per stream when its reader stalls).
 * Returns the bytes added: 0 when the peer is not window-limited, id is not open, the peer's FIN
 * came, or the window would pass 2^31-1. */
uint32_t tt_session_grow_window(struct tt_session *s, uint32_t id, uint32_t extra);

/* Resets stream id with code and frees its slot; writes the RESET frame into out. Returns its
 * length, TETHER_ERR_NO_STREAM (also once the session is closed or failed) or _AGAIN (out too
 * small; nothing changed). */
tt_ssize tt_session_reset(struct tt_session *s, uint32_t id, uint16_t code, uint8_t *out,
                          size_t outlen);

/* Writes a GOAWAY and closes the session (every stream is freed with on_stream_close). Works in
 * any state, a failed session included; reason (may be NULL) is cut to TT_MAX_REASON bytes on a
 * UTF-8 boundary. Returns its length or TETHER_ERR_AGAIN (nothing changed). */
tt_ssize tt_session_goaway(struct tt_session *s, uint16_t code, const char *reason, uint8_t *out,
                           size_t outlen);

/* Ends the session without writing anything (the connection is gone): every open stream is
 * freed with on_stream_close, and the state becomes TT_SESSION_CLOSED. Cannot fail. */
void tt_session_shutdown(struct tt_session *s);

/* Accessors. */
enum tt_session_state tt_session_state(const struct tt_session *s);
int tt_session_error(const struct tt_session *s); /* 0 or the first fatal error */
uint32_t tt_session_nstreams(const struct tt_session *s);
/* The protocol version of the session: device, that of its HELLO; relay, before a HELLO the
 * newest it accepts, after it the HELLO's (the version of the WELCOME it writes). */
uint8_t tt_session_version(const struct tt_session *s);
/* The role the session was set up with (cfg.role). */
enum tt_role tt_session_role(const struct tt_session *s);
uint32_t tt_session_peer_window(const struct tt_session *s);
uint16_t tt_session_peer_max_streams(const struct tt_session *s);
/* The stream's user pointer, or NULL if id is not open. */
void *tt_session_stream_user(const struct tt_session *s, uint32_t id);
/* Sets the stream's user pointer. Returns 0 or TETHER_ERR_NO_STREAM. */
int tt_session_set_user(struct tt_session *s, uint32_t id, void *user);

#endif
