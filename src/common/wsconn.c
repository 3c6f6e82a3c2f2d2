/* wsconn.c - one device connection: WebSocket framing (wsframe.h) over a libuv TCP stream,
 * carrying a Tether session. Reads land in pooled chunks, are unmasked in place and go on to
 * tt_session_recv; output frames are built (and masked, on the client side) straight into a
 * queue of pooled chunks, one copy per byte, flushed by a uv_idle handle, one uv_write per loop
 * iteration, before the loop polls.
 * Application callbacks are never called from inside tt_wsconn_* calls; on_close always comes
 * from the idle handle, and the struct is freed only after its last handle's close callback. */
#include "common/wsconn.h"

#include <stdlib.h>
#include <string.h>

#include "common/conn.h"
#include "common/log.h"
#include "common/pool.h"
#include "common/util.h"
#include "common/wsframe.h"

#define WSCONN_DEFAULT_HIGH (1024u * 1024u)
#define WSCONN_DEFAULT_MAX_MESSAGE (1024u * 1024u)
#define WSCONN_MAX_BUFS 64
#define WSCONN_FIRST_TABLE 8
/* How long a closing connection may take to flush its close frame and see the peer's EOF. */
#define WSCONN_CLOSE_TIMEOUT_MS 3000
/* Session frames (WINDOW, RESET) are pumped out through this much stack. */
#define WSCONN_PUMP_BUF 1024

struct tt_wsconn {
    uv_loop_t *loop;
    struct tt_conn *conn;
    uv_timer_t timer; /* pings and ping timeout; the close deadline once closing */
    uv_idle_t idle;   /* flushes before the loop polls; delivers on_close */
    uv_write_t wreq;
    uv_shutdown_t sreq;

    struct tt_session sess;
    struct tt_session_callbacks scb; /* the application's, with our table callbacks */
    struct tt_stream *table;         /* the session's current table (we allocated it) */
    uint32_t maxcap;
    struct tt_wsconn_config cfg;
    struct tt_wsconn_callbacks cb;
    void *ud;

    /* output */
    struct tt_chunkq out;
    size_t inflight;                 /* bytes of out in the uv_write under way (0: none) */
    struct tt_wsconn_waiter waiters; /* list sentinel */
    uint8_t maskpool[256];
    size_t maskpos;

    /* input */
    uint8_t *pre;
    size_t prelen;
    uint8_t hdrbuf[TT_WSFRAME_MAX_HEADER]; /* a frame header split across reads */
    size_t hdrlen;
    bool in_frame;     /* a frame's payload is under way */
    uint8_t fr_opcode; /* its opcode, FIN bit, mask */
    bool fr_fin;
    bool fr_masked;
    uint8_t fr_key[4];
    uint64_t fr_off;  /* its payload bytes seen so far */
    uint64_t fr_left; /* its payload bytes still to come */
    bool in_msg;      /* a fragmented binary message is under way */
    uint64_t msg_len;
    uint8_t ctrl[125];
    size_t ctrl_len;
    uint64_t last_rx; /* loop time of the last bytes received */

    uint64_t bytes_in, bytes_out;
    char peer[64];

    /* state */
    bool started;      /* reading has begun and pre was fed */
    bool closing;      /* close requested: no more input processed or output accepted */
    bool notified;     /* on_close delivered */
    bool dead;         /* the socket is unusable or we gave up on it: close it now */
    bool broken;       /* output stream broken (allocation failed mid-frame) */
    bool eof;          /* the peer's EOF was read */
    bool shut;         /* uv_shutdown issued */
    bool hclosing;     /* handles are being closed */
    bool no_goaway;    /* the peer closed the WebSocket: no GOAWAY */
    bool force_goaway; /* session error: GOAWAY even though the session reads as closed */
    bool try_refuse;   /* relay, handshake failed: REFUSE rather than GOAWAY */
    int nhandles;
    int close_err;
    uint16_t goaway_code;
    uint16_t ws_code;
    char reason[TT_MAX_REASON + 1];
};

static void on_idle(uv_idle_t *h);
static void close_with(struct tt_wsconn *c, uint16_t goaway_code, uint16_t ws_code, int err,
                       const char *reason);

/* ---- helpers ---------------------------------------------------------------------------- */

static void schedule(struct tt_wsconn *c)
{
    if (!c->hclosing && !uv_is_active((uv_handle_t *)&c->idle))
        uv_idle_start(&c->idle, on_idle);
}

static void set_reason(struct tt_wsconn *c, const char *reason)
{
    size_t n = reason ? strlen(reason) : 0;
    if (n > TT_MAX_REASON)
        n = TT_MAX_REASON;
    if (n > 0)
        memcpy(c->reason, reason, n);
    c->reason[n] = '\0';
}

static void on_handle_closed(uv_handle_t *h)
{
    struct tt_wsconn *c = h->data;
    if (--c->nhandles > 0)
        return;
    tt_chunkq_clear(&c->out);
    free(c->table);
    free(c->pre);
    free(c);
}

/* Closes every handle; the struct goes in the last close callback. Only after on_close. */
static void close_handles(struct tt_wsconn *c)
{
    if (c->hclosing)
        return;
    c->hclosing = true;
    c->nhandles = 3;
    tt_conn_close(c->conn, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->idle, on_handle_closed);
}

/* The socket is done with: close it now (after on_close if that is still due). */
static void finish(struct tt_wsconn *c)
{
    c->dead = true;
    if (c->notified)
        close_handles(c);
    else
        schedule(c);
}

/* ---- output ----------------------------------------------------------------------------- */

/* The next 4-byte mask key, from a pool refilled 256 bytes at a time. Returns 0 or -1. */
static int next_mask(struct tt_wsconn *c, uint8_t key[4])
{
    if (c->maskpos + 4 > sizeof(c->maskpool)) {
        if (tt_random_bytes(c->maskpool, sizeof(c->maskpool)) != 0)
            return -1;
        c->maskpos = 0;
    }
    memcpy(key, c->maskpool + c->maskpos, 4);
    c->maskpos += 4;
    return 0;
}

/* Appends payload bytes (masked with key from payload offset off on the client side). */
static int put_payload(struct tt_wsconn *c, const uint8_t *src, size_t len, const uint8_t key[4],
                       uint64_t off)
{
    if (!c->cfg.client)
        return tt_chunkq_append(&c->out, src, len);
    while (len > 0) {
        size_t room;
        uint8_t *dst = tt_chunkq_reserve(&c->out, &room);
        if (dst == NULL)
            return TETHER_ERR_NOMEM;
        if (room > len)
            room = len;
        tt_wsframe_mask(dst, src, room, key, off);
        tt_chunkq_commit(&c->out, room);
        src += room;
        len -= room;
        off += room;
    }
    return 0;
}

/* Queues one WebSocket frame (FIN set) whose payload is hdr[0..hlen) + data[0..len). Returns 0 or
 * TETHER_ERR_NOMEM (the output is then broken and the connection is being closed). */
static int ws_send(struct tt_wsconn *c, uint8_t opcode, const uint8_t *hdr, size_t hlen,
                   const uint8_t *data, size_t len)
{
    uint8_t head[TT_WSFRAME_MAX_HEADER], key[4];
    size_t n;

    if (c->broken)
        return TETHER_ERR_NOMEM;
    if (c->cfg.client && next_mask(c, key) != 0)
        goto broken;
    n = tt_wsframe_encode(head, true, opcode, c->cfg.client ? key : NULL, hlen + len);
    if (tt_chunkq_append(&c->out, head, n) != 0 || put_payload(c, hdr, hlen, key, 0) != 0 ||
        put_payload(c, data, len, key, hlen) != 0)
        goto broken;
    schedule(c);
    return 0;
broken:
    c->broken = true;
    TT_LOG(TT_LOG_WARN, "wsconn: output failed (out of memory) peer=%s", c->peer);
    close_with(c, TT_GOAWAY_NORMAL, 1011, TETHER_ERR_NOMEM, "out of memory");
    c->dead = true;
    return TETHER_ERR_NOMEM;
}

static void ws_send_close(struct tt_wsconn *c, uint16_t code, const char *reason)
{
    uint8_t p[125];
    size_t n = reason ? strlen(reason) : 0;
    if (n > sizeof(p) - 2)
        n = sizeof(p) - 2;
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    if (n > 0)
        memcpy(p + 2, reason, n);
    (void)ws_send(c, TT_WS_CLOSE, p, 2 + n, NULL, 0);
}

/* Moves the session's own frames (WINDOW, RESET) into the output queue. */
static void pump_session(struct tt_wsconn *c)
{
    uint8_t buf[WSCONN_PUMP_BUF];
    while (!c->closing && tt_session_want_write(&c->sess)) {
        tt_ssize n = tt_session_send(&c->sess, buf, sizeof(buf));
        if (n <= 0)
            break;
        if (ws_send(c, TT_WS_BINARY, buf, (size_t)n, NULL, 0) != 0)
            break;
        c->bytes_out += (uint64_t)n;
    }
}

static void on_write(uv_write_t *req, int status)
{
    struct tt_wsconn *c = req->data;
    tt_chunkq_consume(&c->out, c->inflight);
    c->inflight = 0;
    if (c->hclosing)
        return;
    if (status < 0) {
        TT_LOG(TT_LOG_DEBUG, "wsconn: write failed peer=%s err=%s", c->peer, uv_err_name(status));
        close_with(c, TT_GOAWAY_NORMAL, 1006, TETHER_ERR_IO, "write failed");
        finish(c);
        return;
    }
    schedule(c);
}

static void flush(struct tt_wsconn *c)
{
    uv_buf_t bufs[WSCONN_MAX_BUFS]; /* uv_write copies the array */
    size_t nbytes;
    unsigned n;
    int r;

    if (c->dead || c->hclosing || c->inflight > 0)
        return;
    n = tt_chunkq_bufs(&c->out, bufs, WSCONN_MAX_BUFS, &nbytes);
    if (n == 0)
        return;
    /* What the socket takes at once needs no request, no callback and no extra loop turn. */
    r = tt_conn_try_write(c->conn, bufs, n);
    if (r > 0) {
        tt_chunkq_consume(&c->out, (size_t)r);
        if ((size_t)r == nbytes) {
            /* more than WSCONN_MAX_BUFS chunks were queued, or waiters may go on now */
            if (c->out.bytes > 0 || c->waiters.next != &c->waiters)
                schedule(c);
            return;
        }
        n = tt_chunkq_bufs(&c->out, bufs, WSCONN_MAX_BUFS, &nbytes);
    } else if (r != UV_EAGAIN) {
        TT_LOG(TT_LOG_DEBUG, "wsconn: write failed peer=%s err=%s", c->peer, uv_err_name(r));
        close_with(c, TT_GOAWAY_NORMAL, 1006, TETHER_ERR_IO, "write failed");
        finish(c);
        return;
    }
    c->wreq.data = c;
    r = tt_conn_write(c->conn, &c->wreq, bufs, n, on_write);
    if (r < 0) {
        TT_LOG(TT_LOG_DEBUG, "wsconn: write failed peer=%s err=%s", c->peer, uv_err_name(r));
        close_with(c, TT_GOAWAY_NORMAL, 1006, TETHER_ERR_IO, "write failed");
        finish(c);
        return;
    }
    c->inflight = nbytes;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct tt_wsconn *c = req->data;
    if (c->hclosing)
        return;
    /* Our side is done; wait for the peer's EOF (bounded by the close deadline). */
    if (status < 0 || c->eof)
        finish(c);
}

/* ---- waiters ---------------------------------------------------------------------------- */

static void waiter_unlink(struct tt_wsconn_waiter *w)
{
    w->prev->next = w->next;
    w->next->prev = w->prev;
    w->next = w->prev = NULL;
}

static void call_waiters(struct tt_wsconn *c)
{
    struct tt_wsconn_waiter local;
    if (c->waiters.next == &c->waiters || c->closing)
        return;
    if (c->out.bytes >= c->cfg.out_high / 2)
        return;
    /* Take the whole list first: a callback may queue its waiter again. */
    local.next = c->waiters.next;
    local.prev = c->waiters.prev;
    local.next->prev = &local;
    local.prev->next = &local;
    c->waiters.next = c->waiters.prev = &c->waiters;
    while (local.next != &local) {
        struct tt_wsconn_waiter *w = local.next;
        waiter_unlink(w);
        w->cb(w);
    }
}

static void drop_waiters(struct tt_wsconn *c)
{
    while (c->waiters.next != &c->waiters)
        waiter_unlink(c->waiters.next);
}

/* ---- closing ---------------------------------------------------------------------------- */

static void close_with(struct tt_wsconn *c, uint16_t goaway_code, uint16_t ws_code, int err,
                       const char *reason)
{
    if (c->closing)
        return;
    c->closing = true;
    c->goaway_code = goaway_code;
    c->ws_code = ws_code;
    c->close_err = err;
    set_reason(c, reason);
    /* No more pings; the idle handle arms the close deadline once the close frame is queued. */
    if (!c->hclosing)
        uv_timer_stop(&c->timer);
    schedule(c);
}

/* Called from the idle handle once: the last frames out, the streams closed, on_close. */
static void deliver_close(struct tt_wsconn *c)
{
    uint8_t buf[TT_FRAME_HEADER_LEN + 4 + TT_MAX_REASON + 8];
    tt_ssize n = 0;

    if (!c->dead && !c->broken) {
        if (c->try_refuse)
            n = tt_session_refuse(&c->sess,
                                  tt_session_error(&c->sess) == TETHER_ERR_VERSION
                                      ? TT_REFUSE_VERSION
                                      : TT_REFUSE_INVALID,
                                  c->reason, buf, sizeof(buf));
        if (n <= 0 && !c->no_goaway &&
            (tt_session_state(&c->sess) == TT_SESSION_OPEN || c->force_goaway))
            n = tt_session_goaway(&c->sess, c->goaway_code, c->reason, buf, sizeof(buf));
        if (n > 0 && ws_send(c, TT_WS_BINARY, buf, (size_t)n, NULL, 0) == 0)
            c->bytes_out += (uint64_t)n;
        if (!c->broken)
            ws_send_close(c, c->ws_code, c->close_err == 0 ? "" : tether_err_name(c->close_err));
    }
    tt_session_shutdown(&c->sess);
    drop_waiters(c);
    c->notified = true;
    if (c->cb.on_close != NULL)
        c->cb.on_close(c, c->close_err, c->reason, c->ud);
}

/* ---- input ------------------------------------------------------------------------------ */

static void protocol_error(struct tt_wsconn *c, uint16_t ws_code, int err, const char *why)
{
    TT_LOG(TT_LOG_DEBUG, "wsconn: closing peer=%s ws_code=%u reason=\"%s\"", c->peer,
           (unsigned)ws_code, why);
    close_with(c, TT_GOAWAY_PROTOCOL, ws_code, err, why);
    c->force_goaway = tt_session_state(&c->sess) != TT_SESSION_CLOSED;
}

static void handle_control(struct tt_wsconn *c)
{
    switch (c->fr_opcode) {
    case TT_WS_PING:
        (void)ws_send(c, TT_WS_PONG, c->ctrl, c->ctrl_len, NULL, 0);
        break;
    case TT_WS_PONG:
        break;
    case TT_WS_CLOSE: {
        uint16_t code = 1005;
        char why[TT_MAX_REASON + 1];
        size_t tlen = 0;
        if (c->ctrl_len == 1) {
            protocol_error(c, 1002, TETHER_ERR_PROTO, "bad close frame");
            return;
        }
        if (c->ctrl_len >= 2) {
            code = (uint16_t)(c->ctrl[0] << 8 | c->ctrl[1]);
            tlen = c->ctrl_len - 2;
        }
        int n = snprintf(why, sizeof(why), "peer closed the websocket (%u%s%.*s)", (unsigned)code,
                         tlen ? ": " : "", (int)tlen, (const char *)c->ctrl + 2);
        (void)n;
        bool orderly = code == 1000 || code == 1001 || code == 1005;
        uint16_t reply =
            (code >= 1000 && code < 5000 && code != 1005 && code != 1006 && code != 1015) ? code
                                                                                          : 1000;
        c->no_goaway = true;
        close_with(c, TT_GOAWAY_NORMAL, reply, orderly ? 0 : TETHER_ERR_CLOSED, why);
        break;
    }
    default:
        break;
    }
}

/* Starts a frame: the checks the header decoder leaves to us. Returns false when the connection
 * is closing. */
static bool frame_start(struct tt_wsconn *c, const struct tt_wsframe_hdr *h)
{
    c->in_frame = true;
    c->fr_opcode = h->opcode;
    c->fr_fin = h->fin;
    c->fr_masked = h->masked;
    memcpy(c->fr_key, h->key, 4);
    c->fr_off = 0;
    c->fr_left = h->len;
    if (h->rsv != 0) {
        protocol_error(c, 1002, TETHER_ERR_PROTO, "reserved bits set");
        return false;
    }
    if (c->cfg.client ? h->masked : !h->masked) {
        protocol_error(c, 1002, TETHER_ERR_PROTO,
                       c->cfg.client ? "masked frame from server" : "unmasked frame from client");
        return false;
    }
    switch (h->opcode) {
    case TT_WS_CONTINUATION:
        if (!c->in_msg) {
            protocol_error(c, 1002, TETHER_ERR_PROTO, "continuation without a message");
            return false;
        }
        break;
    case TT_WS_BINARY:
        if (c->in_msg) {
            protocol_error(c, 1002, TETHER_ERR_PROTO, "new message inside a fragmented one");
            return false;
        }
        c->msg_len = 0;
        break;
    case TT_WS_TEXT:
        protocol_error(c, 1003, TETHER_ERR_PROTO, "text frames are not accepted");
        return false;
    case TT_WS_CLOSE:
    case TT_WS_PING:
    case TT_WS_PONG:
        c->ctrl_len = 0;
        return true;
    default:
        protocol_error(c, 1002, TETHER_ERR_PROTO, "unknown opcode");
        return false;
    }
    if (h->len > c->cfg.max_message - c->msg_len) {
        protocol_error(c, 1009, TETHER_ERR_TOO_LARGE, "message too large");
        return false;
    }
    return true;
}

/* n payload bytes of the current frame, in data (ours: unmasked in place). */
static void frame_piece(struct tt_wsconn *c, uint8_t *data, size_t n)
{
    if (c->fr_masked && n > 0)
        tt_wsframe_mask(data, data, n, c->fr_key, c->fr_off);
    c->fr_off += n;
    c->fr_left -= n;
    if (tt_wsframe_is_control(c->fr_opcode)) {
        /* The decoder caps control payloads at 125 bytes, the size of ctrl. */
        memcpy(c->ctrl + c->ctrl_len, data, n);
        c->ctrl_len += n;
        if (c->fr_left == 0) {
            c->in_frame = false;
            handle_control(c);
        }
        return;
    }
    c->msg_len += n;
    c->bytes_in += n;
    if (c->fr_left == 0) {
        c->in_frame = false;
        c->in_msg = !c->fr_fin;
    }
    if (n > 0) {
        bool handshake = tt_session_state(&c->sess) == TT_SESSION_HANDSHAKE;
        tt_ssize r = tt_session_recv(&c->sess, data, n);
        if (r < 0 && !c->closing) {
            TT_LOG(TT_LOG_DEBUG, "wsconn: session error peer=%s err=%s", c->peer,
                   tether_err_name((int)r));
            close_with(c, TT_GOAWAY_PROTOCOL, 1002, (int)r, tether_strerror((int)r));
            c->force_goaway = true;
            c->try_refuse = handshake && c->cfg.session.role == TT_ROLE_RELAY;
        }
    }
}

/* Parses len received bytes (a buffer we own: payloads are unmasked in place). */
static void feed(struct tt_wsconn *c, uint8_t *data, size_t len)
{
    while (!c->closing && len > 0) {
        if (c->in_frame) {
            size_t n = len < c->fr_left ? len : (size_t)c->fr_left;
            frame_piece(c, data, n);
            data += n;
            len -= n;
            continue;
        }
        struct tt_wsframe_hdr h;
        size_t old = c->hdrlen, take = TT_WSFRAME_MAX_HEADER - old;
        if (take > len)
            take = len;
        memcpy(c->hdrbuf + old, data, take);
        int r = tt_wsframe_decode(&h, c->hdrbuf, old + take);
        if (r < 0) {
            protocol_error(c, 1002, TETHER_ERR_PROTO, "bad frame header");
            break;
        }
        if (r == 0) {
            c->hdrlen = old + take; /* all of data was taken */
            break;
        }
        data += (size_t)r - old;
        len -= (size_t)r - old;
        c->hdrlen = 0;
        if (!frame_start(c, &h))
            break;
        if (c->fr_left == 0)
            frame_piece(c, data, 0);
    }
    pump_session(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct tt_chunk *ch = tt_chunk_get();
    (void)h;
    (void)suggested;
    if (ch == NULL) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)ch->data, TT_CHUNK_SIZE);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tt_wsconn *c = s->data;
    struct tt_chunk *ch = NULL;

    if (buf != NULL && buf->base != NULL)
        ch = (struct tt_chunk *)(void *)(buf->base - offsetof(struct tt_chunk, data));
    if (nread > 0) {
        c->last_rx = uv_now(c->loop);
        if (!c->closing)
            feed(c, (uint8_t *)buf->base, (size_t)nread);
    } else if (nread == UV_EOF) {
        c->eof = true;
        tt_conn_read_stop(c->conn);
        if (c->closing) {
            if (c->shut || c->dead)
                finish(c);
        } else {
            close_with(c, TT_GOAWAY_NORMAL, 1000, TETHER_ERR_CLOSED, "connection closed by peer");
        }
    } else if (nread < 0) {
        TT_LOG(TT_LOG_DEBUG, "wsconn: read failed peer=%s err=%s", c->peer, uv_err_name(nread));
        tt_conn_read_stop(c->conn);
        close_with(c, TT_GOAWAY_NORMAL, 1006, TETHER_ERR_IO, "read failed");
        finish(c);
    }
    tt_chunk_put(ch);
}

/* ---- timer ------------------------------------------------------------------------------ */

static void on_timer(uv_timer_t *t)
{
    struct tt_wsconn *c = t->data;
    if (c->closing) {
        /* The close deadline: the peer did not take our close in time. */
        finish(c);
        return;
    }
    uint64_t now = uv_now(c->loop);
    if (c->cfg.ping_timeout_ms > 0 && now - c->last_rx >= c->cfg.ping_timeout_ms) {
        TT_LOG(TT_LOG_DEBUG, "wsconn: ping timeout peer=%s", c->peer);
        close_with(c, TT_GOAWAY_NORMAL, 1001, TETHER_ERR_TIMEOUT, "ping timeout");
        return;
    }
    if (c->cfg.ping_interval_ms > 0) {
        uint8_t p[8];
        for (int i = 0; i < 8; i++)
            p[i] = (uint8_t)(now >> (56 - 8 * i));
        (void)ws_send(c, TT_WS_PING, p, sizeof(p), NULL, 0);
    }
}

/* ---- idle: start, flush, close ---------------------------------------------------------- */

static void on_idle(uv_idle_t *h)
{
    struct tt_wsconn *c = h->data;

    uv_idle_stop(h);
    if (c->hclosing)
        return;
    if (!c->started) {
        c->started = true;
        if (c->prelen > 0 && !c->closing)
            feed(c, c->pre, c->prelen);
        free(c->pre);
        c->pre = NULL;
        c->prelen = 0;
        if (!c->dead) {
            int r = tt_conn_read_start(c->conn, on_alloc, on_read);
            if (r < 0) {
                close_with(c, TT_GOAWAY_NORMAL, 1006, TETHER_ERR_IO, "read failed");
                c->dead = true;
            }
        }
    }
    if (c->closing && !c->notified) {
        deliver_close(c);
        if (!c->dead) {
            uv_timer_stop(&c->timer);
            uv_timer_start(&c->timer, on_timer, WSCONN_CLOSE_TIMEOUT_MS, 0);
        }
    }
    if (!c->closing) {
        pump_session(c);
        call_waiters(c);
    }
    if (c->dead) {
        close_handles(c);
        return;
    }
    flush(c);
    if (c->closing && c->out.bytes == 0 && c->inflight == 0 && !c->shut && !c->dead) {
        c->shut = true;
        c->sreq.data = c;
        if (tt_conn_shutdown(c->conn, &c->sreq, on_shutdown) < 0)
            finish(c);
    }
}

/* ---- table growth ----------------------------------------------------------------------- */

static struct tt_wsconn *from_session(struct tt_session *s)
{
    return (struct tt_wsconn *)(void *)((char *)s - offsetof(struct tt_wsconn, sess));
}

static struct tt_stream *table_alloc(struct tt_session *s, uint32_t newcap, void *ud)
{
    struct tt_wsconn *c = from_session(s);
    struct tt_stream *t;
    (void)ud;
    if (newcap > c->maxcap)
        return NULL;
    t = calloc(newcap, sizeof(*t));
    if (t != NULL)
        c->table = t;
    return t;
}

static void table_release(struct tt_session *s, struct tt_stream *old, void *ud)
{
    (void)s;
    (void)ud;
    free(old);
}

/* ---- public ----------------------------------------------------------------------------- */

int tt_wsconn_new(struct tt_wsconn **out, uv_loop_t *loop, struct tt_conn *conn, const uint8_t *pre,
                  size_t prelen, const struct tt_wsconn_config *cfg,
                  const struct tt_wsconn_callbacks *cb, void *ud)
{
    struct tt_wsconn *c;
    int r;

    if (out == NULL || loop == NULL || conn == NULL || cfg == NULL || cb == NULL ||
        cfg->session_cb == NULL || (prelen > 0 && pre == NULL))
        return TETHER_ERR_INVAL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return TETHER_ERR_NOMEM;
    c->loop = loop;
    c->conn = conn;
    c->cfg = *cfg;
    if (c->cfg.out_high == 0)
        c->cfg.out_high = WSCONN_DEFAULT_HIGH;
    if (c->cfg.max_message == 0)
        c->cfg.max_message = WSCONN_DEFAULT_MAX_MESSAGE;
    c->cb = *cb;
    c->ud = ud;
    c->scb = *cfg->session_cb;
    c->scb.alloc_table = table_alloc;
    c->scb.release_table = table_release;
    c->cfg.session_cb = &c->scb;
    c->maxcap = WSCONN_FIRST_TABLE;
    while (c->maxcap < 2u * (uint32_t)cfg->session.max_streams)
        c->maxcap *= 2;
    c->waiters.next = c->waiters.prev = &c->waiters;
    c->maskpos = sizeof(c->maskpool);
    tt_chunkq_init(&c->out);

    c->table = calloc(WSCONN_FIRST_TABLE, sizeof(struct tt_stream));
    if (c->table == NULL) {
        free(c);
        return TETHER_ERR_NOMEM;
    }
    r = tt_session_init(&c->sess, &cfg->session, &c->scb, ud, c->table, WSCONN_FIRST_TABLE);
    if (r != 0) {
        free(c->table);
        free(c);
        return r;
    }
    if (prelen > 0) {
        c->pre = malloc(prelen);
        if (c->pre == NULL) {
            free(c->table);
            free(c);
            return TETHER_ERR_NOMEM;
        }
        memcpy(c->pre, pre, prelen);
        c->prelen = prelen;
    }

    /* Nothing below fails: from here on the handles are ours. */
    uv_timer_init(loop, &c->timer);
    uv_idle_init(loop, &c->idle);
    c->timer.data = c;
    c->idle.data = c;
    conn->tcp.data = c;
    (void)uv_tcp_nodelay(&conn->tcp, 1);
    tt_conn_peer(conn, c->peer, sizeof(c->peer));
    c->last_rx = uv_now(loop);
    if (c->cfg.ping_interval_ms > 0) {
        uv_timer_start(&c->timer, on_timer, c->cfg.ping_interval_ms, c->cfg.ping_interval_ms);
    } else if (c->cfg.ping_timeout_ms > 0) {
        uint64_t every = c->cfg.ping_timeout_ms / 4;
        if (every < 50)
            every = 50;
        uv_timer_start(&c->timer, on_timer, every, every);
    }
    schedule(c);
    *out = c;
    return 0;
}

struct tt_session *tt_wsconn_session(struct tt_wsconn *c)
{
    return &c->sess;
}

struct tt_wsconn *tt_wsconn_from_session(struct tt_session *s)
{
    return from_session(s);
}

void *tt_wsconn_ud(const struct tt_wsconn *c)
{
    return c->ud;
}

int tt_wsconn_send_frame(struct tt_wsconn *c, const uint8_t *frame, size_t len)
{
    int r;
    if (c->closing)
        return TETHER_ERR_CLOSED;
    r = ws_send(c, TT_WS_BINARY, frame, len, NULL, 0);
    if (r == 0)
        c->bytes_out += len;
    return r;
}

static bool stream_open(struct tt_session *s, uint32_t id)
{
    /* Setting the user pointer to itself is the public way to ask "is id open?". */
    return tt_session_set_user(s, id, tt_session_stream_user(s, id)) == 0;
}

tt_ssize tt_wsconn_send_data(struct tt_wsconn *c, uint32_t id, const uint8_t *data, size_t len,
                             bool fin)
{
    size_t taken = 0;

    if (c->closing)
        return TETHER_ERR_CLOSED;
    for (;;) {
        uint8_t hdr[TT_FRAME_HEADER_LEN];
        size_t n = len - taken;
        uint32_t win = tt_session_send_window(&c->sess, id);
        if (n > win)
            n = win;
        if (n > TT_FRAME_MAX_PAYLOAD)
            n = TT_FRAME_MAX_PAYLOAD;
        bool last = taken + n == len;
        if (n == 0 && !(fin && last)) {
            if (taken == 0 && len > 0 && !stream_open(&c->sess, id))
                return TETHER_ERR_NO_STREAM;
            break;
        }
        tt_ssize r = tt_session_data_header(&c->sess, id, n, fin && last, hdr);
        if (r < 0) {
            if (taken > 0)
                break;
            return r == TETHER_ERR_NO_STREAM ? TETHER_ERR_NO_STREAM : r;
        }
        r = ws_send(c, TT_WS_BINARY, hdr, TT_FRAME_HEADER_LEN, data + taken, n);
        if (r != 0)
            return r;
        c->bytes_out += TT_FRAME_HEADER_LEN + n;
        taken += n;
        if (last)
            break;
    }
    return (tt_ssize)taken;
}

void tt_wsconn_reset_stream(struct tt_wsconn *c, uint32_t id, uint16_t code)
{
    uint8_t buf[TT_FRAME_HEADER_LEN + 4 + TT_MAX_REASON];
    tt_ssize n;
    /* Even while closing the slot is freed (the frame is then dropped): the caller is done
     * with the stream and must not hear on_stream_close for it. */
    n = tt_session_reset(&c->sess, id, code, buf, sizeof(buf));
    if (n > 0 && !c->closing && ws_send(c, TT_WS_BINARY, buf, (size_t)n, NULL, 0) == 0)
        c->bytes_out += (uint64_t)n;
}

void tt_wsconn_consume(struct tt_wsconn *c, uint32_t id, size_t n)
{
    if (c->closing)
        return;
    tt_session_consume(&c->sess, id, n);
    if (tt_session_want_write(&c->sess))
        schedule(c);
}

bool tt_wsconn_writable(const struct tt_wsconn *c)
{
    return !c->closing && c->out.bytes < c->cfg.out_high;
}

size_t tt_wsconn_queued(const struct tt_wsconn *c)
{
    return c->out.bytes;
}

void tt_wsconn_wait_writable(struct tt_wsconn *c, struct tt_wsconn_waiter *w)
{
    if (w->next != NULL || c->closing)
        return;
    w->prev = c->waiters.prev;
    w->next = &c->waiters;
    c->waiters.prev->next = w;
    c->waiters.prev = w;
    schedule(c);
}

void tt_wsconn_cancel_wait(struct tt_wsconn *c, struct tt_wsconn_waiter *w)
{
    (void)c;
    if (w->next != NULL)
        waiter_unlink(w);
}

void tt_wsconn_close(struct tt_wsconn *c, uint16_t goaway_code, uint16_t ws_code, int err,
                     const char *reason)
{
    close_with(c, goaway_code, ws_code, err, reason);
}

const char *tt_wsconn_peer(const struct tt_wsconn *c)
{
    return c->peer;
}

uint64_t tt_wsconn_bytes_in(const struct tt_wsconn *c)
{
    return c->bytes_in;
}

uint64_t tt_wsconn_bytes_out(const struct tt_wsconn *c)
{
    return c->bytes_out;
}
