/* tether_mcu.c - the microcontroller agent (tether_mcu.h): one relay connection on lwIP's raw
 * TCP API, the WebSocket client of mcuws.c and the session of src/core, with a ring buffer of
 * one window per stream. No heap and no formatting: every buffer is in struct tether_mcu.
 *
 * Control flow. Every way in (lwIP's callbacks, the agent's timer, the application's calls)
 * goes through enter()/leave(). Session callbacks only record what happened in the stream
 * slots (except data and open, which go to the application at once); leave() at the outermost
 * level then runs service() (delivers buffered bytes, FIN, "writable", the ends of streams),
 * flush() (WINDOW credit, pongs) and a pending drop of the connection, so that the application
 * is never called back from inside the core while the core is mid-frame, and a connection is
 * never closed under lwIP's feet (a tcp_abort in a recv or sent callback returns ERR_ABRT). */
#include "tether_mcu.h"

#include <string.h>

#include "core/dialtimeout.h"
#include "lwip/tcp.h"
#include "lwip/sys.h"
#include "lwip/timeouts.h"
#include "lwip/ip_addr.h"
#if LWIP_DNS
#include "lwip/dns.h"
#endif

#define TICK_MS 250u
/* A registration that lasted this long was a success: the back-off starts over after it. */
#define STABLE_MS 10000u
/* After GOAWAY SHUTDOWN the relay goes away on purpose: come back (elsewhere) soon. */
#define SHUTDOWN_RETRY_MS 1000u
/* The connect timeout (config.connect_timeout_ms, 15 s by default) doubles after each attempt
 * that stalled, up to this many times itself (60 s by default). */
#define DIAL_TIMEOUT_FACTOR 4u
/* Room kept in lwIP's send buffer for control frames (WINDOW, RESET, FIN, pong): DATA leaves it. */
#define CTRL_RESERVE 160u
/* Room for one control message: WebSocket header and a few Tether frames. */
#define CTRL_OUT 64u

/* Stream slot flags. */
#define SF_REMOTE_FIN 0x01 /* the relay's FIN arrived */
#define SF_FIN_DONE 0x02   /* ... and was delivered (after every buffered byte) */
#define SF_GONE 0x04       /* the session's stream ended (FIN both ways) */
#define SF_RESET 0x08      /* reset by the relay, or for a rule it broke */
#define SF_WANT 0x10       /* a write was cut short: tell the application when it may go on */
#define SF_NOTIFY 0x20     /* ... which is now */
#define SF_LOCAL_FIN 0x40  /* our FIN was sent */

enum { DROP_NONE = 0, DROP_CLOSE = 1, DROP_ABORT = 2 };

static uint32_t now_ms(void)
{
    return sys_now();
}

static bool elapsed(uint32_t now, uint32_t since, uint32_t ms)
{
    return (uint32_t)(now - since) >= ms;
}

static uint32_t cfg_or(uint32_t v, uint32_t def)
{
    return v != 0 ? v : def;
}

static uint32_t rand32(struct tether_mcu *a)
{
    uint8_t b[4];

    a->cb->random(a->ud, b, sizeof b);
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* d jittered to [0.8 d, 1.2 d), as the reference agent does (src/agent/backoff.c). */
static uint32_t jitter(struct tether_mcu *a, uint32_t d)
{
    uint32_t span = (uint32_t)((uint64_t)d * 2 / 5);

    return (uint32_t)((uint64_t)d * 4 / 5) + (span ? rand32(a) % span : 0);
}

static uint32_t backoff_next(struct tether_mcu *a)
{
    uint32_t cap = cfg_or(a->cfg->backoff_cap_ms, 60000);
    uint64_t d = cfg_or(a->cfg->backoff_base_ms, 1000);
    uint32_t i, out;

    for (i = 0; i < a->backoff_attempt && d < cap; i++)
        d *= 2;
    if (d > cap)
        d = cap;
    out = jitter(a, (uint32_t)d);
    if (out > cap)
        out = cap;
    if (a->backoff_attempt < 32)
        a->backoff_attempt++;
    return out;
}

/* The next attempt's timeout grows after attempts that stalled: tt_dialtimeout_next
 * (core/dialtimeout.h), the rule the reference agent follows too. */

static uint32_t dial_base(const struct tether_mcu *a)
{
    return cfg_or(a->cfg->connect_timeout_ms, 15000);
}

static uint32_t dial_max(const struct tether_mcu *a)
{
    uint64_t m = (uint64_t)dial_base(a) * DIAL_TIMEOUT_FACTOR;

    return m > UINT32_MAX ? UINT32_MAX : (uint32_t)m;
}

/* This attempt's timeout (resolve, connect, upgrade, WELCOME). */
static uint32_t dial_timeout(const struct tether_mcu *a)
{
    return tt_dialtimeout_next(a->dial_timeout_ms, TT_DIAL_END_FAILED, dial_base(a), dial_max(a));
}

/* Decides when the next attempt is, once per connection, from how this one ended. */
static uint32_t plan_retry(struct tether_mcu *a)
{
    uint32_t d, ra;

    if (a->retry_planned)
        return a->retry_delay;
    if (a->got_goaway && a->goaway_code == TT_GOAWAY_SHUTDOWN) {
        a->backoff_attempt = 0;
        d = jitter(a, SHUTDOWN_RETRY_MS);
    } else {
        if (a->registered && !(a->got_goaway && a->goaway_code == TT_GOAWAY_TAKEOVER) &&
            elapsed(now_ms(), a->registered_at, STABLE_MS))
            a->backoff_attempt = 0;
        d = backoff_next(a);
        if (a->retry_after_s != 0) { /* 503 Retry-After: wait that long, with jitter */
            ra = jitter(a, a->retry_after_s * 1000u);
            if (ra > d)
                d = ra;
        }
    }
    a->retry_planned = 1;
    a->retry_delay = d;
    return d;
}

static void emit(struct tether_mcu *a, enum tether_mcu_event_kind kind, const char *what,
                 uint16_t code, struct tt_str reason, const struct tt_welcome *w)
{
    struct tether_mcu_event ev;

    if (a->cb->event == NULL)
        return;
    ev.kind = kind;
    ev.what = what ? what : "";
    ev.code = code;
    ev.reason = reason;
    ev.retry_ms =
        kind == TETHER_MCU_EV_READY || kind == TETHER_MCU_EV_KEY_LOST ? 0 : a->retry_delay;
    ev.welcome = w;
    a->cb->event(a, &ev, a->ud);
}

/* Asks for the connection to be dropped at the end of the current entry point. The first
 * reason is kept; an abort wins over an orderly close. */
static void fail(struct tether_mcu *a, int kind, const char *what)
{
    if (a->drop == DROP_NONE)
        a->drop_what = what;
    if (kind > a->drop)
        a->drop = (uint8_t)kind;
}

static struct tether_mcu_stream *slot_of(struct tether_mcu *a, uint32_t id)
{
    unsigned i;

    if (id == 0)
        return NULL;
    for (i = 0; i < TETHER_MCU_MAX_STREAMS; i++)
        if (a->streams[i].id == id)
            return &a->streams[i];
    return NULL;
}

static void slot_free(struct tether_mcu_stream *sl)
{
    sl->id = 0;
    sl->user = NULL;
    sl->head = 0;
    sl->len = 0;
    sl->flags = 0;
    sl->reset_code = 0;
}

/* ---- output ---------------------------------------------------------------------------- */

static bool can_send(struct tether_mcu *a, size_t total, size_t chunks)
{
    if (a->pcb == NULL || a->drop != DROP_NONE)
        return false;
    return tcp_sndbuf(a->pcb) >= total && tcp_sndqueuelen(a->pcb) + chunks + 2 <= TCP_SND_QUEUELEN;
}

static void tx_flush(struct tether_mcu *a)
{
    if (a->txfill == 0 || a->pcb == NULL)
        return;
    if (tcp_write(a->pcb, a->tx, (u16_t)a->txfill, TCP_WRITE_FLAG_COPY) != ERR_OK)
        a->tx_failed = 1;
    a->txfill = 0;
}

/* One masked WebSocket message of len bytes, given by msg_put in pieces. */
static void msg_begin(struct tether_mcu *a, uint8_t opcode, size_t len)
{
    a->cb->random(a->ud, a->mask, sizeof a->mask);
    a->txfill = (uint32_t)tt_mcuws_header(a->tx, opcode, len, a->mask);
    a->txoff = 0;
    a->tx_failed = 0;
}

static void msg_put(struct tether_mcu *a, const void *p, size_t n)
{
    const uint8_t *b = p;
    size_t k;

    while (n > 0) {
        k = TETHER_MCU_TXBUF - a->txfill;
        if (k > n)
            k = n;
        memcpy(a->tx + a->txfill, b, k);
        tt_mcuws_mask(a->tx + a->txfill, k, a->mask, a->txoff);
        a->txfill += (uint32_t)k;
        a->txoff += k;
        b += k;
        n -= k;
        if (a->txfill == TETHER_MCU_TXBUF)
            tx_flush(a);
    }
}

static void msg_end(struct tether_mcu *a)
{
    tx_flush(a);
    if (a->tx_failed) {
        /* Half a message is in lwIP's queue: the stream of frames is broken. */
        fail(a, DROP_ABORT, "lwIP could not queue output");
        return;
    }
    if (a->pcb != NULL)
        tcp_output(a->pcb);
}

/* Chunks (tcp_write calls) a message of n bytes takes. */
static size_t chunks_for(size_t n)
{
    return (n + TT_MCUWS_HDR_MAX + TETHER_MCU_TXBUF - 1) / TETHER_MCU_TXBUF;
}

/* A whole small message; false when lwIP has no room for it now. */
static bool send_msg(struct tether_mcu *a, uint8_t opcode, const void *p, size_t n)
{
    if (!can_send(a, n + TT_MCUWS_HDR_MAX, chunks_for(n)))
        return false;
    msg_begin(a, opcode, n);
    msg_put(a, p, n);
    msg_end(a);
    return true;
}

static void send_close(struct tether_mcu *a, uint16_t code)
{
    uint8_t b[2];

    b[0] = (uint8_t)(code >> 8);
    b[1] = (uint8_t)code;
    (void)send_msg(a, TT_MCUWS_CLOSE, b, sizeof b);
}

/* A fatal protocol error: GOAWAY PROTOCOL (once registered or registering), close 1002, drop. */
static void protocol_error(struct tether_mcu *a, const char *what)
{
    uint8_t b[TT_FRAME_HEADER_LEN + 2];
    tt_ssize n;

    if (a->state >= TETHER_MCU_HELLO) {
        n = tt_session_goaway(&a->session, TT_GOAWAY_PROTOCOL, NULL, b, sizeof b);
        if (n > 0)
            (void)send_msg(a, TT_MCUWS_BINARY, b, (size_t)n);
    }
    send_close(a, TT_MCUWS_CLOSE_PROTOCOL);
    fail(a, DROP_CLOSE, what);
}

/* Frames the session queued by itself (WINDOW credit, RESETs), and a pong that is due. */
static void flush(struct tether_mcu *a)
{
    uint8_t b[CTRL_OUT];
    tt_ssize n;

    if (a->pcb == NULL || a->state < TETHER_MCU_HELLO)
        return;
    if (a->pong_due && send_msg(a, TT_MCUWS_PONG, a->pong, a->ponglen))
        a->pong_due = 0;
    while (a->drop == DROP_NONE && tt_session_want_write(&a->session) &&
           can_send(a, sizeof b + TT_MCUWS_HDR_MAX, 1)) {
        n = tt_session_send(&a->session, b, sizeof b);
        if (n <= 0)
            break;
        (void)send_msg(a, TT_MCUWS_BINARY, b, (size_t)n);
    }
}

/* ---- streams --------------------------------------------------------------------------- */

/* Offers a stream's buffered bytes to the application, oldest first. */
static void drain(struct tether_mcu *a, struct tether_mcu_stream *sl)
{
    uint32_t id = sl->id;
    size_t chunk, took;

    while (sl->id == id && sl->len > 0) {
        chunk = TETHER_MCU_WINDOW - sl->head;
        if (chunk > sl->len)
            chunk = sl->len;
        took = a->cb->data(a, id, sl->buf + sl->head, chunk, a->ud);
        if (sl->id != id)
            return; /* the application reset it */
        if (took > chunk)
            took = chunk;
        sl->head = (uint16_t)((sl->head + took) % TETHER_MCU_WINDOW);
        sl->len = (uint16_t)(sl->len - took);
        if (!(sl->flags & SF_GONE))
            tt_session_consume(&a->session, id, took);
        if (took < chunk)
            return;
    }
}

/* Deferred work on every stream: buffered bytes, FIN, "writable", ends. */
static void service(struct tether_mcu *a)
{
    struct tether_mcu_stream *sl;
    unsigned i, pass;
    uint32_t id;
    uint16_t code;

    for (pass = 0; pass < 4; pass++) {
        a->dirty = 0;
        for (i = 0; i < TETHER_MCU_MAX_STREAMS && a->drop == DROP_NONE; i++) {
            sl = &a->streams[i];
            if ((id = sl->id) == 0)
                continue;
            if (sl->flags & SF_RESET) {
                code = sl->reset_code;
                slot_free(sl);
                if (a->cb->close)
                    a->cb->close(a, id, TETHER_MCU_END_RESET, code, a->ud);
                continue;
            }
            drain(a, sl);
            if (sl->id == id && sl->len == 0 &&
                (sl->flags & (SF_REMOTE_FIN | SF_FIN_DONE)) == SF_REMOTE_FIN) {
                sl->flags |= SF_FIN_DONE;
                if (a->cb->fin)
                    a->cb->fin(a, id, a->ud);
            }
            if (sl->id == id && (sl->flags & SF_NOTIFY)) {
                sl->flags &= (uint8_t) ~(SF_NOTIFY | SF_WANT);
                if (a->cb->writable)
                    a->cb->writable(a, id, a->ud);
            }
            if (sl->id == id && (sl->flags & SF_GONE) && sl->len == 0 &&
                (sl->flags & SF_FIN_DONE)) {
                slot_free(sl);
                if (a->cb->close)
                    a->cb->close(a, id, TETHER_MCU_END_DONE, 0, a->ud);
            }
        }
        if (!a->dirty)
            break;
    }
}

/* Every stream is over with the connection: the application hears END_LOST for each. */
static void streams_lost(struct tether_mcu *a)
{
    unsigned i;
    uint32_t id;

    for (i = 0; i < TETHER_MCU_MAX_STREAMS; i++) {
        if ((id = a->streams[i].id) == 0)
            continue;
        slot_free(&a->streams[i]);
        if (a->cb->close)
            a->cb->close(a, id, TETHER_MCU_END_LOST, 0, a->ud);
    }
}

/* ---- the connection's end ---------------------------------------------------------------- */

static err_t on_tcp_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err);
static err_t on_tcp_sent(void *arg, struct tcp_pcb *pcb, u16_t len);
static void on_tcp_err(void *arg, err_t err);

static void do_drop(struct tether_mcu *a)
{
    struct tcp_pcb *pcb = a->pcb;
    bool had_session = a->state >= TETHER_MCU_HELLO;
    bool graceful = a->drop == DROP_CLOSE;
    uint32_t delay;

    a->drop = DROP_NONE;
    a->pcb = NULL;
    if (pcb != NULL) {
        tcp_arg(pcb, NULL);
        tcp_recv(pcb, NULL);
        tcp_sent(pcb, NULL);
        tcp_err(pcb, NULL);
        if (!graceful || tcp_close(pcb) != ERR_OK) {
            tcp_abort(pcb);
            a->aborted = pcb;
        }
    }
    a->state = TETHER_MCU_WAITING;
    if (had_session) {
        a->tearing = 1;
        streams_lost(a);
        tt_session_shutdown(&a->session);
        a->tearing = 0;
    }
    if (a->stopping) {
        a->state = TETHER_MCU_IDLE;
        return;
    }
    delay = plan_retry(a);
    a->retry_at = now_ms() + delay;
    if (!a->reported)
        emit(a, a->registered ? TETHER_MCU_EV_DISCONNECTED : TETHER_MCU_EV_FAILED, a->drop_what,
             a->got_goaway ? a->goaway_code : a->fail_status, (struct tt_str){NULL, 0}, NULL);
}

static void enter(struct tether_mcu *a)
{
    if (a->depth++ == 0)
        a->aborted = NULL;
}

static void leave(struct tether_mcu *a)
{
    if (a->depth > 1) {
        a->depth--;
        return;
    }
    if (a->drop == DROP_NONE && a->state >= TETHER_MCU_HELLO) {
        service(a);
        flush(a);
    }
    if (a->drop != DROP_NONE)
        do_drop(a);
    a->depth = 0;
}

/* ---- session callbacks -------------------------------------------------------------------- */

static int s_on_welcome(struct tt_session *s, const struct tt_welcome *m, void *ud)
{
    struct tether_mcu *a = ud;
    (void)s;

    if (m->key.len > 0) {
        /* Kept before the registration is reported (docs/PROTOCOL.md 6.4). */
        memcpy(a->key, m->key.p, m->key.len);
        a->keylen = (uint8_t)m->key.len;
        if (a->cb->key_store == NULL ||
            a->cb->key_store(a->ud, (const char *)a->key, a->keylen) != 0)
            emit(a, TETHER_MCU_EV_KEY_LOST, "could not store the device key", 0,
                 (struct tt_str){NULL, 0}, NULL);
    }
    a->state = TETHER_MCU_ONLINE;
    a->registered = 1;
    a->dial_timeout_ms =
        tt_dialtimeout_next(a->dial_timeout_ms, TT_DIAL_END_REGISTERED, dial_base(a), dial_max(a));
    a->registered_at = now_ms();
    a->last_ping = a->registered_at;
    emit(a, TETHER_MCU_EV_READY, "", 0, (struct tt_str){NULL, 0}, m);
    return 0;
}

static int s_on_refuse(struct tt_session *s, const struct tt_coded *m, void *ud)
{
    struct tether_mcu *a = ud;
    (void)s;

    a->refused = 1;
    plan_retry(a);
    emit(a, TETHER_MCU_EV_REFUSED, "relay refused registration", m->code, m->reason, NULL);
    a->reported = 1;
    send_close(a, TT_MCUWS_CLOSE_NORMAL);
    fail(a, DROP_CLOSE, "relay refused registration");
    return 0;
}

static int s_on_goaway(struct tt_session *s, const struct tt_coded *m, void *ud)
{
    struct tether_mcu *a = ud;
    const char *what;
    (void)s;

    a->got_goaway = 1;
    a->goaway_code = m->code;
    switch (m->code) {
    case TT_GOAWAY_SHUTDOWN:
        what = "relay is shutting down";
        break;
    case TT_GOAWAY_TAKEOVER:
        what = "another connection with the same name took over";
        break;
    case TT_GOAWAY_DELETED:
        what = "device deleted on the relay";
        break;
    case TT_GOAWAY_PROTOCOL:
        what = "protocol error reported by the relay";
        break;
    default:
        what = "relay closed the connection";
        break;
    }
    plan_retry(a);
    emit(a, a->registered ? TETHER_MCU_EV_DISCONNECTED : TETHER_MCU_EV_FAILED, what, m->code,
         m->reason, NULL);
    a->reported = 1;
    send_close(a, TT_MCUWS_CLOSE_NORMAL);
    fail(a, DROP_CLOSE, what);
    return 0;
}

static int s_on_open(struct tt_session *s, struct tt_stream *st, const struct tt_open *m, void *ud)
{
    struct tether_mcu *a = ud;
    struct tether_mcu_stream *sl = NULL;
    unsigned i;
    int rc;
    (void)s;

    for (i = 0; i < TETHER_MCU_MAX_STREAMS && sl == NULL; i++)
        if (a->streams[i].id == 0)
            sl = &a->streams[i];
    if (sl == NULL)
        return TT_RESET_LIMIT; /* slots still draining streams the session has ended */
    slot_free(sl);
    sl->id = st->id;
    st->user = sl;
    rc = a->cb->open(a, sl->id, m->service, a->ud);
    if (rc > 0)
        slot_free(sl);
    return rc > 0 ? rc : 0;
}

static int s_on_data(struct tt_session *s, struct tt_stream *st, const uint8_t *data, size_t len,
                     void *ud)
{
    struct tether_mcu *a = ud;
    struct tether_mcu_stream *sl = st->user;
    uint32_t id = st->id;
    size_t took = 0, tail, k;

    if (sl == NULL || sl->id != id)
        return 0;
    if (sl->len == 0) { /* nothing waiting: straight from lwIP's buffer to the application */
        took = a->cb->data(a, id, data, len, a->ud);
        if (sl->id != id)
            return 0; /* reset by the application meanwhile */
        if (took > len)
            took = len;
        tt_session_consume(s, id, took);
    }
    data += took;
    len -= took;
    if (len == 0)
        return 0;
    /* The rest waits in the ring. Flow control bounds it: the relay may have at most one window
     * outstanding, and only taken bytes are credited. */
    if ((size_t)sl->len + len > TETHER_MCU_WINDOW) {
        sl->flags |= SF_RESET;
        sl->reset_code = TT_RESET_FLOW;
        return 0;
    }
    tail = (sl->head + sl->len) % TETHER_MCU_WINDOW;
    while (len > 0) {
        k = TETHER_MCU_WINDOW - tail;
        if (k > len)
            k = len;
        memcpy(sl->buf + tail, data, k);
        sl->len = (uint16_t)(sl->len + k);
        data += k;
        len -= k;
        tail = (tail + k) % TETHER_MCU_WINDOW;
    }
    return 0;
}

static int s_on_fin(struct tt_session *s, struct tt_stream *st, void *ud)
{
    struct tether_mcu_stream *sl = st->user;
    (void)s;
    (void)ud;

    if (sl != NULL && sl->id == st->id)
        sl->flags |= SF_REMOTE_FIN;
    return 0;
}

static int s_on_reset(struct tt_session *s, struct tt_stream *st, const struct tt_coded *m,
                      void *ud)
{
    struct tether_mcu_stream *sl = st->user;
    (void)s;
    (void)ud;

    if (sl != NULL && sl->id == st->id)
        sl->reset_code = m->code;
    return 0;
}

static int s_on_window(struct tt_session *s, struct tt_stream *st, void *ud)
{
    struct tether_mcu_stream *sl = st->user;
    (void)s;
    (void)ud;

    if (sl != NULL && sl->id == st->id && (sl->flags & SF_WANT))
        sl->flags |= SF_NOTIFY;
    return 0;
}

static void s_on_stream_close(struct tt_session *s, struct tt_stream *st, void *ud)
{
    struct tether_mcu *a = ud;
    struct tether_mcu_stream *sl = st->user;
    (void)s;

    if (a->tearing || sl == NULL || sl->id != st->id)
        return;
    sl->flags |= SF_GONE;
    /* Both FINs: a normal end (delivered once the buffer is drained). Otherwise the relay reset
     * the stream, or broke a rule and the session reset it. */
    if ((st->flags & (TT_STREAM_LOCAL_FIN | TT_STREAM_REMOTE_FIN)) !=
        (TT_STREAM_LOCAL_FIN | TT_STREAM_REMOTE_FIN)) {
        sl->flags |= SF_RESET;
        if (sl->reset_code == 0)
            sl->reset_code = TT_RESET_PROTOCOL;
    }
}

/* ---- WebSocket reader callbacks ---------------------------------------------------------- */

static int ws_data(void *ud, const uint8_t *p, size_t n)
{
    struct tether_mcu *a = ud;
    tt_ssize rv = tt_session_recv(&a->session, p, n);

    if (rv < 0) {
        protocol_error(a, "protocol error from the relay");
        return -1;
    }
    return a->drop != DROP_NONE ? -1 : 0;
}

static int ws_control(void *ud, uint8_t opcode, const uint8_t *p, size_t n)
{
    struct tether_mcu *a = ud;

    switch (opcode) {
    case TT_MCUWS_PING: /* only the latest ping is answered (RFC 6455 5.5.3) */
        memcpy(a->pong, p, n);
        a->ponglen = (uint8_t)n;
        a->pong_due = 1;
        return 0;
    case TT_MCUWS_PONG:
        a->ping_out = 0;
        return 0;
    default: /* close: answer it and end the connection */
        send_close(a, n >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : TT_MCUWS_CLOSE_NORMAL);
        fail(a, DROP_CLOSE, "relay closed the WebSocket");
        return -1;
    }
}

static const struct tt_mcuws_reader_callbacks ws_cb = {ws_data, ws_control};

/* ---- connecting ---------------------------------------------------------------------------- */

/* The HELLO for this connection, into head[]. */
static tt_ssize hello(struct tether_mcu *a)
{
    struct tt_hello m;
    const struct tether_mcu_config *c = a->cfg;
    unsigned i;

    memset(&m, 0, sizeof m);
    m.name.p = (const uint8_t *)c->name;
    m.name.len = strlen(c->name);
    m.token.p = (const uint8_t *)c->token;
    m.token.len = c->token ? strlen(c->token) : 0;
    m.key.p = a->key;
    m.key.len = a->keylen;
    m.nservices = c->nservices;
    for (i = 0; i < c->nservices; i++) {
        m.services[i].kind = c->services[i].kind;
        m.services[i].name.p = (const uint8_t *)c->services[i].name;
        m.services[i].name.len = strlen(c->services[i].name);
    }
    return tt_session_hello(&a->session, &m, (uint8_t *)a->head, sizeof a->head);
}

static int session_start(struct tether_mcu *a)
{
    struct tt_session_config sc;

    memset(&sc, 0, sizeof sc);
    sc.role = TT_ROLE_DEVICE;
    sc.window = TETHER_MCU_WINDOW;
    sc.max_streams = TETHER_MCU_MAX_STREAMS;
    sc.version = TT_PROTO_VERSION;
    memset(a->table, 0, sizeof a->table);
    return tt_session_init(&a->session, &sc, &a->scb, a, a->table, TETHER_MCU_TABLE_CAP);
}

/* The relay's answer head is complete and valid: the session starts with our HELLO. */
static void upgraded(struct tether_mcu *a)
{
    tt_ssize n;

    tt_mcuws_reader_init(&a->ws);
    if (session_start(a) != 0 || (n = hello(a)) <= 0) {
        fail(a, DROP_ABORT, "could not write the HELLO");
        return;
    }
    a->state = TETHER_MCU_HELLO;
    if (!send_msg(a, TT_MCUWS_BINARY, a->head, (size_t)n))
        fail(a, DROP_ABORT, "no room in lwIP's send buffer for the HELLO");
}

static const char *answer_what(int r)
{
    switch (r) {
    case TT_MCUWS_NOT_101:
        return "relay answered the upgrade with an HTTP error";
    case TT_MCUWS_BAD_UPGRADE:
        return "relay's 101 lacks Upgrade: websocket";
    case TT_MCUWS_BAD_ACCEPT:
        return "relay's Sec-WebSocket-Accept is wrong";
    case TT_MCUWS_BAD_PROTOCOL:
        return "relay chose another subprotocol";
    default:
        return "relay's answer is not HTTP";
    }
}

/* Received bytes, in the order they came. */
static void feed(struct tether_mcu *a, const uint8_t *p, size_t n)
{
    struct tt_mcuws_answer ans;
    size_t before, k;
    int r;

    if (a->state == TETHER_MCU_UPGRADING) {
        before = a->headlen;
        k = sizeof a->head - before;
        if (k > n)
            k = n;
        memcpy(a->head + before, p, k);
        a->headlen = (uint16_t)(before + k);
        r = tt_mcuws_answer_check(a->head, a->headlen, a->accept, &ans);
        if (r == TT_MCUWS_PARTIAL) {
            if (a->headlen == sizeof a->head)
                fail(a, DROP_ABORT, "relay's answer head is too large");
            return;
        }
        if (r < 0) {
            a->fail_status = (uint16_t)(ans.status > 0 && ans.status < 1000 ? ans.status : 0);
            a->retry_after_s = ans.status == 503 ? ans.retry_after : 0;
            fail(a, DROP_ABORT, answer_what(r));
            return;
        }
        p += (size_t)r - before;
        n -= (size_t)r - before;
        upgraded(a);
        if (a->drop != DROP_NONE)
            return;
    }
    if (a->state >= TETHER_MCU_HELLO && n > 0 && tt_mcuws_read(&a->ws, p, n, &ws_cb, a) < 0 &&
        a->drop == DROP_NONE) {
        if (a->ws.err == TT_MCUWS_ERR_TEXT) {
            send_close(a, TT_MCUWS_CLOSE_UNSUPPORTED);
            fail(a, DROP_CLOSE, "relay sent a text message");
        } else {
            protocol_error(a, "WebSocket protocol error from the relay");
        }
    }
}

static err_t on_tcp_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    struct tether_mcu *a = arg;
    struct pbuf *q;

    enter(a);
    if (p == NULL || err != ERR_OK) {
        if (p != NULL)
            pbuf_free(p);
        fail(a, DROP_CLOSE, "connection closed by the relay");
    } else {
        a->last_rx = now_ms();
        for (q = p; q != NULL && a->drop == DROP_NONE && a->pcb == pcb; q = q->next)
            feed(a, q->payload, q->len);
        if (a->drop == DROP_NONE && a->pcb == pcb)
            tcp_recved(pcb, p->tot_len);
        pbuf_free(p);
    }
    leave(a);
    return a->aborted == pcb ? ERR_ABRT : ERR_OK;
}

static err_t on_tcp_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
    struct tether_mcu *a = arg;
    unsigned i;
    (void)len;

    enter(a);
    for (i = 0; i < TETHER_MCU_MAX_STREAMS; i++)
        if (a->streams[i].flags & SF_WANT)
            a->streams[i].flags |= SF_NOTIFY;
    leave(a);
    return a->aborted == pcb ? ERR_ABRT : ERR_OK;
}

static void on_tcp_err(void *arg, err_t err)
{
    struct tether_mcu *a = arg;

    /* lwIP has freed the pcb already. */
    enter(a);
    a->pcb = NULL;
    fail(a, DROP_ABORT,
         err == ERR_RST                      ? "connection reset"
         : a->state == TETHER_MCU_CONNECTING ? "could not connect to the relay"
                                             : "connection lost");
    leave(a);
}

static err_t on_tcp_connected(void *arg, struct tcp_pcb *pcb, err_t err)
{
    struct tether_mcu *a = arg;
    uint8_t nonce[16];
    char key[TT_MCUWS_KEY_LEN + 1];
    size_t n;

    enter(a);
    if (err != ERR_OK) {
        fail(a, DROP_ABORT, "could not connect to the relay");
    } else {
        a->cb->random(a->ud, nonce, sizeof nonce);
        n = 0;
        if (tt_mcuws_key(nonce, key, a->accept) == 0)
            n = tt_mcuws_request(a->head, sizeof a->head, a->cfg->host, cfg_or(a->cfg->port, 80),
                                 a->cfg->path, key);
        if (n == 0 || tcp_write(pcb, a->head, (u16_t)n, TCP_WRITE_FLAG_COPY) != ERR_OK) {
            fail(a, DROP_ABORT, "could not write the upgrade request");
        } else {
            tcp_output(pcb);
            a->state = TETHER_MCU_UPGRADING;
            a->headlen = 0;
        }
    }
    leave(a);
    return a->aborted == pcb ? ERR_ABRT : ERR_OK;
}

static void connect_to(struct tether_mcu *a, const ip_addr_t *ip)
{
    struct tcp_pcb *pcb = tcp_new_ip_type(IPADDR_TYPE_V4);

    if (pcb == NULL) {
        fail(a, DROP_ABORT, "lwIP has no free TCP pcb");
        return;
    }
    tcp_arg(pcb, a);
    tcp_recv(pcb, on_tcp_recv);
    tcp_sent(pcb, on_tcp_sent);
    tcp_err(pcb, on_tcp_err);
    /* Small WINDOW frames must not wait behind unacknowledged data (docs/PROTOCOL.md). */
    tcp_nagle_disable(pcb);
    a->pcb = pcb;
    a->state = TETHER_MCU_CONNECTING;
    if (tcp_connect(pcb, ip, (u16_t)cfg_or(a->cfg->port, 80), on_tcp_connected) != ERR_OK)
        fail(a, DROP_ABORT, "could not connect to the relay");
}

#if LWIP_DNS
static void on_dns(const char *name, const ip_addr_t *ip, void *arg)
{
    struct tether_mcu *a = arg;
    (void)name;

    if (a->state != TETHER_MCU_RESOLVING)
        return; /* an answer for an attempt that timed out */
    enter(a);
    if (ip == NULL)
        fail(a, DROP_ABORT, "could not resolve the relay's name");
    else
        connect_to(a, ip);
    leave(a);
}
#endif

static void attempt(struct tether_mcu *a)
{
    ip_addr_t ip;

    a->state = TETHER_MCU_RESOLVING;
    a->attempt_at = now_ms();
    a->got_goaway = a->refused = a->registered = a->ping_out = a->pong_due = 0;
    a->reported = a->retry_planned = 0;
    a->goaway_code = a->fail_status = 0;
    a->retry_after_s = 0;
    a->drop_what = NULL;
    if (ipaddr_aton(a->cfg->host, &ip)) {
        connect_to(a, &ip);
        return;
    }
#if LWIP_DNS
    switch (dns_gethostbyname(a->cfg->host, &ip, on_dns, a)) {
    case ERR_OK:
        connect_to(a, &ip);
        return;
    case ERR_INPROGRESS:
        return;
    default:
        fail(a, DROP_ABORT, "could not resolve the relay's name");
        return;
    }
#else
    fail(a, DROP_ABORT, "the relay's host is not an IPv4 address (built without DNS)");
#endif
}

/* ---- the timer ------------------------------------------------------------------------------ */

static void tick(void *arg)
{
    struct tether_mcu *a = arg;
    uint32_t now = now_ms(), ping_after, dead_after, silence, limit;

    if (a->state == TETHER_MCU_IDLE) {
        a->ticking = 0;
        return;
    }
    sys_timeout(TICK_MS, tick, a);
    enter(a);
    ping_after = cfg_or(a->cfg->ping_after_ms, 20000);
    dead_after = cfg_or(a->cfg->dead_after_ms, 30000);
    switch (a->state) {
    case TETHER_MCU_WAITING:
        if ((int32_t)(now - a->retry_at) >= 0)
            attempt(a);
        break;
    case TETHER_MCU_ONLINE:
        silence = now - a->last_rx;
        if (silence >= dead_after) {
            fail(a, DROP_ABORT, "no answer from the relay (ping timeout)");
        } else if (silence >= ping_after &&
                   elapsed(now, a->last_ping, (dead_after - ping_after) / 2 + 1)) {
            if (send_msg(a, TT_MCUWS_PING, NULL, 0)) {
                a->last_ping = now;
                a->ping_out = 1;
            }
        }
        a->dirty = 1; /* offer buffered bytes again */
        break;
    default: /* resolving, connecting, upgrading, waiting for WELCOME */
        limit = dial_timeout(a);
        if (elapsed(now, a->attempt_at, limit)) {
            /* Past CONNECTING the relay took the connection but did not finish in time: the
             * next attempt waits longer (tt_dialtimeout_next). */
            a->dial_timeout_ms = tt_dialtimeout_next(
                limit, a->state > TETHER_MCU_CONNECTING ? TT_DIAL_END_STALLED : TT_DIAL_END_FAILED,
                dial_base(a), dial_max(a));
            fail(a, DROP_ABORT,
                 a->state == TETHER_MCU_HELLO ? "no answer to the HELLO" : "timed out connecting");
        }
        break;
    }
    leave(a);
}

/* ---- the application's calls --------------------------------------------------------------- */

int tether_mcu_init(struct tether_mcu *a, const struct tether_mcu_config *cfg,
                    const struct tether_mcu_callbacks *cb, void *ud)
{
    size_t i, n;
    tt_ssize h;

    if (a == NULL || cfg == NULL || cb == NULL || cb->open == NULL || cb->data == NULL ||
        cb->random == NULL || cfg->host == NULL || cfg->name == NULL ||
        cfg->nservices > TETHER_MCU_MAX_SERVICES || cfg->nservices > TT_MAX_SERVICES ||
        (cfg->nservices > 0 && cfg->services == NULL))
        return TETHER_ERR_INVAL;
    n = strlen(cfg->name);
    if (n == 0 || n > TT_MAX_NAME || (cfg->token != NULL && strlen(cfg->token) > TT_MAX_TOKEN))
        return TETHER_ERR_INVAL;
    for (i = 0; i < cfg->nservices; i++) {
        n = cfg->services[i].name ? strlen(cfg->services[i].name) : 0;
        if (n == 0 || n > TT_MAX_NAME)
            return TETHER_ERR_INVAL;
    }
    memset(a, 0, sizeof *a);
    a->cfg = cfg;
    a->cb = cb;
    a->ud = ud;
    a->scb.on_welcome = s_on_welcome;
    a->scb.on_refuse = s_on_refuse;
    a->scb.on_open = s_on_open;
    a->scb.on_data = s_on_data;
    a->scb.on_fin = s_on_fin;
    a->scb.on_reset = s_on_reset;
    a->scb.on_window = s_on_window;
    a->scb.on_goaway = s_on_goaway;
    a->scb.on_stream_close = s_on_stream_close;
    /* The HELLO must fit head[] with the longest key it may carry. */
    a->keylen = TETHER_MCU_KEY_LEN;
    h = session_start(a) == 0 ? hello(a) : TETHER_ERR_INVAL;
    memset(&a->session, 0, sizeof a->session);
    a->keylen = 0;
    if (cb->key_load != NULL && cb->key_load(ud, (char *)a->key) == TETHER_MCU_KEY_LEN)
        a->keylen = TETHER_MCU_KEY_LEN;
    return h > 0 ? 0 : TETHER_ERR_INVAL;
}

void tether_mcu_start(struct tether_mcu *a)
{
    if (a->state != TETHER_MCU_IDLE)
        return;
    a->stopping = 0;
    a->state = TETHER_MCU_WAITING;
    a->retry_at = now_ms();
    if (!a->ticking) {
        a->ticking = 1;
        sys_timeout(0, tick, a);
    }
}

void tether_mcu_stop(struct tether_mcu *a)
{
    uint8_t b[TT_FRAME_HEADER_LEN + 2];
    tt_ssize n;

    enter(a);
    a->stopping = 1;
    if (a->state == TETHER_MCU_ONLINE && a->drop == DROP_NONE) {
        n = tt_session_goaway(&a->session, TT_GOAWAY_NORMAL, NULL, b, sizeof b);
        if (n > 0)
            (void)send_msg(a, TT_MCUWS_BINARY, b, (size_t)n);
        send_close(a, TT_MCUWS_CLOSE_NORMAL);
    }
    if (a->pcb != NULL || a->state >= TETHER_MCU_HELLO)
        fail(a, DROP_CLOSE, "stopped");
    else
        a->state = TETHER_MCU_IDLE;
    leave(a);
}

/* The slot of a stream the session still has (writes, FIN). */
static struct tether_mcu_stream *live(struct tether_mcu *a, uint32_t id)
{
    struct tether_mcu_stream *sl = slot_of(a, id);

    if (sl == NULL || (sl->flags & (SF_GONE | SF_RESET)))
        return NULL;
    return sl;
}

long tether_mcu_write(struct tether_mcu *a, uint32_t stream, const void *p, size_t len)
{
    struct tether_mcu_stream *sl = live(a, stream);
    uint8_t hdr[TT_FRAME_HEADER_LEN];
    size_t n, room, qfree, cap;

    if (sl == NULL)
        return TETHER_ERR_NO_STREAM;
    if (a->state != TETHER_MCU_ONLINE || a->drop != DROP_NONE || a->pcb == NULL)
        return TETHER_ERR_STATE;
    if (sl->flags & SF_LOCAL_FIN)
        return TETHER_ERR_STATE;
    n = tt_session_send_window(&a->session, stream);
    if (n > len)
        n = len;
    if (n > TT_FRAME_MAX_PAYLOAD)
        n = TT_FRAME_MAX_PAYLOAD;
    room = tcp_sndbuf(a->pcb);
    cap = room > CTRL_RESERVE + TT_MCUWS_HDR_MAX + TT_FRAME_HEADER_LEN
              ? room - CTRL_RESERVE - TT_MCUWS_HDR_MAX - TT_FRAME_HEADER_LEN
              : 0;
    qfree = TCP_SND_QUEUELEN > tcp_sndqueuelen(a->pcb) + 4
                ? (size_t)(TCP_SND_QUEUELEN - tcp_sndqueuelen(a->pcb) - 4)
                : 0;
    if (cap > qfree * TETHER_MCU_TXBUF)
        cap = qfree * TETHER_MCU_TXBUF > TT_MCUWS_HDR_MAX + TT_FRAME_HEADER_LEN
                  ? qfree * TETHER_MCU_TXBUF - TT_MCUWS_HDR_MAX - TT_FRAME_HEADER_LEN
                  : 0;
    if (n > cap)
        n = cap;
    if (n < len)
        sl->flags |= SF_WANT;
    if (n == 0)
        return 0;
    enter(a);
    if (tt_session_data_header(&a->session, stream, n, false, hdr) < 0) {
        leave(a);
        return TETHER_ERR_STATE;
    }
    msg_begin(a, TT_MCUWS_BINARY, TT_FRAME_HEADER_LEN + n);
    msg_put(a, hdr, sizeof hdr);
    msg_put(a, p, n);
    msg_end(a);
    leave(a);
    return (long)n;
}

int tether_mcu_fin(struct tether_mcu *a, uint32_t stream)
{
    struct tether_mcu_stream *sl = live(a, stream);
    uint8_t hdr[TT_FRAME_HEADER_LEN];

    if (sl == NULL)
        return TETHER_ERR_NO_STREAM;
    if (a->state != TETHER_MCU_ONLINE || a->drop != DROP_NONE || (sl->flags & SF_LOCAL_FIN))
        return TETHER_ERR_STATE;
    if (!can_send(a, TT_FRAME_HEADER_LEN + TT_MCUWS_HDR_MAX, 1)) {
        sl->flags |= SF_WANT;
        return TETHER_ERR_AGAIN;
    }
    enter(a);
    if (tt_session_data_header(&a->session, stream, 0, true, hdr) < 0) {
        leave(a);
        return TETHER_ERR_STATE;
    }
    (void)send_msg(a, TT_MCUWS_BINARY, hdr, sizeof hdr);
    sl->flags |= SF_LOCAL_FIN;
    if (tt_session_stream_user(&a->session, stream) == NULL)
        sl->flags |= SF_GONE; /* our FIN completed it: close(DONE) follows from service() */
    leave(a);
    return 0;
}

int tether_mcu_reset(struct tether_mcu *a, uint32_t stream, uint16_t code)
{
    struct tether_mcu_stream *sl = slot_of(a, stream);
    uint8_t b[TT_FRAME_HEADER_LEN + 2];
    tt_ssize n;

    if (sl == NULL)
        return TETHER_ERR_NO_STREAM;
    enter(a);
    if (!(sl->flags & (SF_GONE | SF_RESET)) && a->state == TETHER_MCU_ONLINE) {
        n = tt_session_reset(&a->session, stream, code, b, sizeof b);
        if (n > 0 && !send_msg(a, TT_MCUWS_BINARY, b, (size_t)n))
            fail(a, DROP_ABORT, "no room in lwIP's send buffer for a RESET");
    }
    slot_free(sl); /* the application's own call ended it: no close */
    leave(a);
    return 0;
}

void tether_mcu_resume(struct tether_mcu *a, uint32_t stream)
{
    (void)stream;
    enter(a);
    a->dirty = 1;
    leave(a);
}

void *tether_mcu_user(const struct tether_mcu *a, uint32_t stream)
{
    unsigned i;

    for (i = 0; i < TETHER_MCU_MAX_STREAMS; i++)
        if (stream != 0 && a->streams[i].id == stream)
            return a->streams[i].user;
    return NULL;
}

int tether_mcu_set_user(struct tether_mcu *a, uint32_t stream, void *user)
{
    struct tether_mcu_stream *sl = slot_of(a, stream);

    if (sl == NULL)
        return TETHER_ERR_NO_STREAM;
    sl->user = user;
    return 0;
}

enum tether_mcu_state tether_mcu_state(const struct tether_mcu *a)
{
    return (enum tether_mcu_state)a->state;
}
