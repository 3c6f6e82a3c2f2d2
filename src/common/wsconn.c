/* wsconn.c - one device connection: WebSocket framing (wsframe.h) over a libuv TCP stream,
 * carrying a Tether session. Reads land in pooled chunks, are unmasked in place and go on to
 * tt_session_recv (readers of DATA may write it out from there until the read is over:
 * tt_wsconn_after_input); output frames are built (and masked, on the client side) straight into
 * a queue of pooled chunks, one copy per byte, or framed in place in a pipe's read chunk that
 * then joins the queue (tt_wsconn_send_chunk), and flushed from an idle handle, one write per
 * loop iteration, before the loop polls.
 * The wsconns of one loop share that idle handle and one timer (struct wsloop), so that an idle
 * connection costs a few list links rather than libuv handles of its own: a relay holds 100,000
 * of them.
 * Application callbacks are never called from inside tt_wsconn_* calls; on_close always comes
 * from the idle handle, and the struct is freed only after its socket's close callback.
 * The output queue is capped (wsconn.h, "Bounded output"): every frame, pongs and close frames
 * included, goes through ws_send's or send_control's room check, and a ping flood costs one
 * queued pong and one 125-byte buffer. */
#include "common/wsconn.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/conn.h"
#include "common/log.h"
#include "common/pool.h"
#include "common/util.h"
#include "common/wsframe.h"

#define WSCONN_DEFAULT_HIGH (1024u * 1024u)
/* Default hard cap on the output queue: this many times out_high. */
#define WSCONN_DEFAULT_MAX_FACTOR 4u
/* Reading the peer stops when the queue passes out_high by this much: more than the data path
 * ever queues past out_high (one DATA frame, at most 65,543 bytes plus its WebSocket header,
 * and a few small control frames). */
#define WSCONN_STOP_ABOVE (128u * 1024u)
/* Queued output that has not moved for this long: the peer does not read. */
#define WSCONN_DEFAULT_STALL_MS 30000u
/* Largest control frame payload (RFC 6455 5.5). */
#define WSCONN_CTRL_MAX 125u
#define WSCONN_DEFAULT_MAX_MESSAGE (1024u * 1024u)
#define WSCONN_MAX_BUFS 64
/* Streams are rare on most connections: the table starts with room for one and doubles. */
#define WSCONN_FIRST_TABLE 2
#define WSCONN_MIN_MAXCAP 8
/* Write requests kept for reuse per loop (the rest go back to free()). */
#define WSLOOP_SPARE_WREQS 64
/* How long a closing connection may take to flush its close frame and see the peer's EOF. */
#define WSCONN_CLOSE_TIMEOUT_MS 3000
/* Session frames (WINDOW, RESET) are pumped out through this much stack. */
#define WSCONN_PUMP_BUF 1024

/* A link in one of a loop's lists: circular, with a sentinel; a detached link points to
 * itself. */
struct wslink {
    struct wslink *next, *prev;
};

/* What the wsconns of one loop share: one idle handle that runs the connections that have
 * something to do before the loop polls (flush, start, close), and one timer for their
 * deadlines (pings, ping timeouts, close deadlines). A connection's next deadline is always
 * "now + one of its periods", so the deadlines of each period sit in a FIFO, oldest first, and
 * the timer is set for the earliest head. The handles close with the loop's last wsconn. */
struct wsqueue {
    uint32_t period;   /* ms */
    uint32_t slack;    /* ms the timer may be late for them: deadlines are served in batches */
    struct wslink due; /* wsconns due at (when armed) + period, oldest first */
};

/* An application's session callbacks with the wsconn's table callbacks in: one copy per loop
 * and set of callbacks (usually one), shared by the wsconns that use it. */
struct wscallbacks {
    struct wscallbacks *next;
    struct tt_session_callbacks cb;
};

struct wsloop {
    uv_loop_t *loop;
    struct wsloop *next; /* this thread's loops */
    uv_idle_t idle;
    uv_timer_t timer;
    unsigned refs;     /* wsconns on this loop */
    int nclosing;      /* handles not closed yet, once refs fell to 0 */
    struct wslink run; /* wsconns to run in the next idle turn */
    struct wsqueue *q; /* deadline queues, one per period */
    unsigned nq;
    uint64_t timer_due; /* loop time the timer is set for (UINT64_MAX: not set) */
    uv_write_t *spare;  /* write requests for reuse, linked through ->data */
    unsigned nspare;
    struct wscallbacks *cbs; /* the session callbacks its wsconns use */
};

static _Thread_local struct wsloop *wsloops;

/* tt_wsconn_get_stats's counters: process-wide, as /metrics reports them. */
static _Atomic uint64_t stat_overflow_cap, stat_overflow_stall, stat_read_paused,
    stat_pings_answered, stat_pings_coalesced, stat_run_capped;

static void count(_Atomic uint64_t *n)
{
    atomic_fetch_add_explicit(n, 1, memory_order_relaxed);
}

struct tt_wsconn {
    uv_loop_t *loop;
    struct tt_conn *conn;
    struct wsloop *L;
    struct wslink runlink; /* in L->run while scheduled */
    struct wslink tlink;   /* in a deadline queue while a deadline is set */
    uint64_t due;          /* that deadline (loop time) */
    uint8_t q_tick;        /* queue of the ping period (or the timeout check) */
    uint8_t q_close;       /* queue of the close deadline */

    struct tt_session sess;
    const struct tt_session_callbacks *scb; /* the application's, with our table callbacks */
    struct tt_stream *table;                /* the session's current table (we allocated it) */
    uint32_t maxcap;
    struct tt_wsconn_config cfg;
    struct tt_wsconn_callbacks cb;
    void *ud;

    /* output */
    struct tt_chunkq out; /* capped at cfg.out_max */
    size_t out_stop;      /* above this, the peer is not read (read_paused) */
    size_t inflight;      /* bytes of out in the uv_write under way (0: none) */
    size_t pong_ahead;    /* bytes of out up to the end of the pong queued there (0: none) */
    uint8_t *pong;        /* the latest ping's payload, waiting for that pong to be written */
    uint8_t pong_len;     /* (malloc'd WSCONN_CTRL_MAX bytes on first need, kept until freed) */
    bool pong_due;        /* pong[] holds a payload to answer */
    bool read_paused;     /* reading stopped: the queue passed out_stop */
    uint64_t last_tx;     /* loop time the queue was last empty or some of it was written */
    size_t stall_wqs;     /* the socket's write queue size at the last link check */
    struct tt_wsconn_waiter waiters; /* list sentinel */
    struct tt_wsconn_waiter readers; /* tt_wsconn_after_input list sentinel */

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
    uint8_t *ctrl; /* a control frame split across reads (malloc'd, 125 bytes at most) */
    uint8_t ctrl_len;
    uint64_t last_rx; /* loop time of the last bytes received */

    uint64_t bytes_in, bytes_out;
    char peer[64];

    /* state */
    bool started;                 /* reading has begun and pre was fed */
    bool closing;                 /* close requested: no more input processed or output accepted */
    bool notified;                /* on_close delivered */
    bool dead;                    /* the socket is unusable or we gave up on it: close it now */
    bool broken;                  /* output stream broken (allocation failed mid-frame) */
    bool eof;                     /* the peer's EOF was read */
    bool input_full;              /* the read being fed filled its chunk: more input is waiting */
    unsigned input_readers;       /* tt_wsconn_after_input calls during that read */
    struct tt_chunk *input_chunk; /* its chunk (NULL: none, or taken) */
    bool shut;                    /* uv_shutdown issued */
    bool hclosing;                /* handles are being closed */
    bool no_goaway;               /* the peer closed the WebSocket: no GOAWAY */
    bool force_goaway; /* session error: GOAWAY even though the session reads as closed */
    bool try_refuse;   /* relay, handshake failed: REFUSE rather than GOAWAY */
    int close_err;
    uint16_t goaway_code;
    uint16_t ws_code;
    char *reason; /* malloc'd when closing; NULL reads as "" */
};

static void run(struct tt_wsconn *c);
static void on_due(struct tt_wsconn *c);
static void close_with(struct tt_wsconn *c, uint16_t goaway_code, uint16_t ws_code, int err,
                       const char *reason);

/* ---- the loop's shared handles ---------------------------------------------------------- */

static void link_init(struct wslink *l)
{
    l->next = l->prev = l;
}

static bool link_linked(const struct wslink *l)
{
    return l->next != l;
}

static void link_remove(struct wslink *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    link_init(l);
}

static void link_append(struct wslink *head, struct wslink *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

static struct tt_wsconn *of_runlink(struct wslink *l)
{
    return (struct tt_wsconn *)(void *)((char *)l - offsetof(struct tt_wsconn, runlink));
}

static struct tt_wsconn *of_tlink(struct wslink *l)
{
    return (struct tt_wsconn *)(void *)((char *)l - offsetof(struct tt_wsconn, tlink));
}

/* One idle turn: runs the connections scheduled before it, at most TT_WSCONN_RUN_PER_TURN of
 * them; those scheduled meanwhile wait for the next turn (as libuv runs idle handles started
 * from an idle callback). Past the cap the rest go first in the next idle turn, after the loop
 * has polled once (without waiting: the idle handle stays active), so that a burst (every
 * device of a node closing at once) does not hold the loop for one long turn. */
static void on_loop_idle(uv_idle_t *h)
{
    struct wsloop *L = h->data;
    struct wslink turn;
    unsigned done = 0;

    if (!link_linked(&L->run)) {
        uv_idle_stop(h);
        return;
    }
    turn.next = L->run.next;
    turn.prev = L->run.prev;
    turn.next->prev = &turn;
    turn.prev->next = &turn;
    link_init(&L->run);
    while (link_linked(&turn)) {
        if (done == TT_WSCONN_RUN_PER_TURN) { /* the rest, before any scheduled meanwhile */
            struct wslink *first = turn.next, *last = turn.prev;
            first->prev = &L->run;
            last->next = L->run.next;
            L->run.next->prev = last;
            L->run.next = first;
            count(&stat_run_capped);
            return;
        }
        struct tt_wsconn *c = of_runlink(turn.next);
        link_remove(&c->runlink);
        run(c);
        done++;
    }
    if (!link_linked(&L->run))
        uv_idle_stop(h);
}

/* When the deadline due of queue q is served: rounded up to a multiple of the queue's slack,
 * so that the deadlines of many connections come due together, one wakeup for all of them. */
static uint64_t served_at(const struct wsqueue *q, uint64_t due)
{
    if (q->slack <= 1)
        return due;
    return (due + q->slack - 1) / q->slack * q->slack;
}

static void set_timer(struct wsloop *L, uint64_t due);

static void on_loop_timer(uv_timer_t *t)
{
    struct wsloop *L = t->data;
    uint64_t now = uv_now(L->loop), next = UINT64_MAX;

    L->timer_due = UINT64_MAX;
    for (unsigned i = 0; i < L->nq; i++) {
        struct wslink *head = &L->q[i].due;
        while (link_linked(head)) {
            struct tt_wsconn *c = of_tlink(head->next);
            if (c->due > now)
                break;
            link_remove(&c->tlink);
            on_due(c); /* may set c's next deadline: at a queue's tail, later than now */
        }
    }
    for (unsigned i = 0; i < L->nq; i++) {
        struct wslink *head = &L->q[i].due;
        if (link_linked(head) && served_at(&L->q[i], of_tlink(head->next)->due) < next)
            next = served_at(&L->q[i], of_tlink(head->next)->due);
    }
    if (next != UINT64_MAX)
        set_timer(L, next);
}

/* Makes the timer fire by due at the latest. */
static void set_timer(struct wsloop *L, uint64_t due)
{
    uint64_t now = uv_now(L->loop);
    if (due >= L->timer_due)
        return;
    L->timer_due = due;
    uv_timer_start(&L->timer, on_loop_timer, due > now ? due - now : 0, 0);
}

/* The loop's shared state, made with its first wsconn. Returns NULL when out of memory. */
static struct wsloop *wsloop_get(uv_loop_t *loop)
{
    struct wsloop *L;
    for (L = wsloops; L != NULL; L = L->next)
        if (L->loop == loop)
            return L;
    L = calloc(1, sizeof(*L));
    if (L == NULL)
        return NULL;
    L->loop = loop;
    link_init(&L->run);
    L->timer_due = UINT64_MAX;
    uv_idle_init(loop, &L->idle);
    uv_timer_init(loop, &L->timer);
    L->idle.data = L;
    L->timer.data = L;
    L->next = wsloops;
    wsloops = L;
    return L;
}

static void wsloop_closed(uv_handle_t *h)
{
    struct wsloop *L = h->data;
    if (--L->nclosing > 0)
        return;
    while (L->spare != NULL) {
        uv_write_t *w = L->spare;
        L->spare = w->data;
        free(w);
    }
    while (L->cbs != NULL) {
        struct wscallbacks *k = L->cbs;
        L->cbs = k->next;
        free(k);
    }
    free(L->q);
    free(L);
}

/* A wsconn of L is gone; the last one closes L's handles. */
static void wsloop_put(struct wsloop *L)
{
    if (--L->refs > 0)
        return;
    for (struct wsloop **p = &wsloops; *p != NULL; p = &(*p)->next) {
        if (*p == L) {
            *p = L->next;
            break;
        }
    }
    L->nclosing = 2;
    uv_close((uv_handle_t *)&L->idle, wsloop_closed);
    uv_close((uv_handle_t *)&L->timer, wsloop_closed);
}

/* Index of L's deadline queue for period (added if new). Returns TETHER_ERR_CAPACITY past 255
 * queues, TETHER_ERR_NOMEM when out of memory. */
static int wsloop_queue(struct wsloop *L, uint32_t period)
{
    struct wsqueue *q;
    unsigned i;
    for (i = 0; i < L->nq; i++)
        if (L->q[i].period == period)
            return (int)i;
    if (L->nq == UINT8_MAX)
        return TETHER_ERR_CAPACITY;
    q = malloc((L->nq + 1) * sizeof(*q));
    if (q == NULL)
        return TETHER_ERR_NOMEM;
    /* The sentinels move: the lists' ends point at the new places. */
    for (i = 0; i < L->nq; i++) {
        q[i].period = L->q[i].period;
        q[i].slack = L->q[i].slack;
        if (link_linked(&L->q[i].due)) {
            q[i].due = L->q[i].due;
            q[i].due.next->prev = &q[i].due;
            q[i].due.prev->next = &q[i].due;
        } else {
            link_init(&q[i].due);
        }
    }
    free(L->q);
    L->q = q;
    q[L->nq].period = period;
    q[L->nq].slack = period / 32 < 100 ? period / 32 : 100;
    link_init(&q[L->nq].due);
    return (int)L->nq++;
}

static struct tt_stream *table_alloc(struct tt_session *s, uint32_t newcap, void *ud);
static void table_release(struct tt_session *s, struct tt_stream *old, void *ud);

/* L's copy of cb with our table callbacks in, made on first use and kept while L lives.
 * Returns NULL when out of memory. */
static const struct tt_session_callbacks *wsloop_callbacks(struct wsloop *L,
                                                           const struct tt_session_callbacks *cb)
{
    struct tt_session_callbacks want = *cb;
    struct wscallbacks *k;
    want.alloc_table = table_alloc;
    want.release_table = table_release;
    for (k = L->cbs; k != NULL; k = k->next)
        if (memcmp(&k->cb, &want, sizeof(want)) == 0)
            return &k->cb;
    k = malloc(sizeof(*k));
    if (k == NULL)
        return NULL;
    k->cb = want;
    k->next = L->cbs;
    L->cbs = k;
    return &k->cb;
}

static uv_write_t *wreq_get(struct wsloop *L)
{
    uv_write_t *w = L->spare;
    if (w == NULL)
        return malloc(sizeof(*w));
    L->spare = w->data;
    L->nspare--;
    return w;
}

static void wreq_put(struct wsloop *L, uv_write_t *w)
{
    if (L->nspare >= WSLOOP_SPARE_WREQS) {
        free(w);
        return;
    }
    w->data = L->spare;
    L->spare = w;
    L->nspare++;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static void schedule(struct tt_wsconn *c)
{
    if (c->hclosing || link_linked(&c->runlink))
        return;
    link_append(&c->L->run, &c->runlink);
    if (!uv_is_active((uv_handle_t *)&c->L->idle))
        uv_idle_start(&c->L->idle, on_loop_idle);
}

/* Sets c's deadline to now + the period of queue qi, replacing any earlier one. */
static void arm(struct tt_wsconn *c, uint8_t qi)
{
    struct wsloop *L = c->L;
    link_remove(&c->tlink);
    c->due = uv_now(c->loop) + L->q[qi].period;
    link_append(&L->q[qi].due, &c->tlink);
    set_timer(L, served_at(&L->q[qi], c->due));
}

static void set_reason(struct tt_wsconn *c, const char *reason)
{
    size_t n = reason ? strlen(reason) : 0;
    if (n > TT_MAX_REASON)
        n = TT_MAX_REASON;
    free(c->reason);
    c->reason = malloc(n + 1); /* NULL (out of memory) reads as "" */
    if (c->reason == NULL)
        return;
    if (n > 0)
        memcpy(c->reason, reason, n);
    c->reason[n] = '\0';
}

static const char *reason_of(const struct tt_wsconn *c)
{
    return c->reason != NULL ? c->reason : "";
}

static void on_conn_closed(uv_handle_t *h)
{
    struct tt_wsconn *c = h->data;
    struct wsloop *L = c->L;
    tt_chunkq_clear(&c->out);
    free(c->table);
    free(c->pre);
    free(c->reason);
    free(c->ctrl);
    free(c->pong);
    free(c);
    wsloop_put(L);
}

/* Closes the socket; the struct goes in its close callback. Only after on_close. */
static void close_handles(struct tt_wsconn *c)
{
    if (c->hclosing)
        return;
    c->hclosing = true;
    link_remove(&c->runlink);
    link_remove(&c->tlink);
    tt_conn_close(c->conn, on_conn_closed);
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

/* This thread's mask keys: CSPRNG bytes drawn 256 at a time, shared by its connections. */
static _Thread_local uint8_t maskpool[256];
static _Thread_local size_t maskpos = sizeof(maskpool);

/* The next 4-byte mask key. Returns 0 or TETHER_ERR_IO (no randomness). */
static int next_mask(uint8_t key[4])
{
    if (maskpos + 4 > sizeof(maskpool)) {
        if (tt_random_bytes(maskpool, sizeof(maskpool)) != 0)
            return TETHER_ERR_IO;
        maskpos = 0;
    }
    memcpy(key, maskpool + maskpos, 4);
    maskpos += 4;
    return 0;
}

/* Appends payload bytes (masked with key from payload offset off on the client side). The
 * caller checked the room: only running out of memory fails. */
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

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static bool send_control(struct tt_wsconn *c, uint8_t opcode, const uint8_t *p, size_t len);

/* The peer does not read what it is sent (the queue is full, or has not moved for stall_ms):
 * the connection closes at once, without a close frame, which it would not read either. */
static void overflow(struct tt_wsconn *c, bool stall)
{
    if (c->dead || c->hclosing)
        return;
    count(stall ? &stat_overflow_stall : &stat_overflow_cap);
    TT_LOG(TT_LOG_INFO, "wsconn: peer does not read, closing peer=%s queued=%zu cause=%s", c->peer,
           c->out.bytes, stall ? "stalled" : "full");
    close_with(c, TT_GOAWAY_NORMAL, 1008, TETHER_ERR_IO,
               stall ? "peer does not read (output stalled)" : "peer does not read (output full)");
    c->dead = true;
    schedule(c);
}

/* Bytes are about to join the queue: an empty queue starts its stall clock now. */
static void out_starting(struct tt_wsconn *c)
{
    if (c->out.bytes == 0) {
        c->last_tx = uv_now(c->loop);
        c->stall_wqs = 0;
    }
}

/* Bytes joined the queue. Past out_stop only frames the peer provokes without reading can have
 * taken it: its input is not read until the queue is back under out_high. */
static void out_grew(struct tt_wsconn *c)
{
    if (c->read_paused || c->out.bytes <= c->out_stop || c->dead || c->hclosing)
        return;
    c->read_paused = true;
    count(&stat_read_paused);
    TT_LOG(TT_LOG_DEBUG, "wsconn: output over %zu bytes, not reading peer=%s", c->out_stop,
           c->peer);
    tt_conn_read_stop(c->conn);
}

/* n bytes of the queue were written (and consumed): the queued pong may be out (then the
 * waiting payload is answered), and a paused peer is read again once the queue is back under
 * out_high. */
static void out_moved(struct tt_wsconn *c, size_t n)
{
    c->last_tx = uv_now(c->loop);
    if (c->pong_ahead > 0) {
        c->pong_ahead = n < c->pong_ahead ? c->pong_ahead - n : 0;
        if (c->pong_ahead == 0 && c->pong_due && !c->closing) {
            c->pong_due = false;
            count(&stat_pings_answered);
            if (send_control(c, TT_WS_PONG, c->pong, c->pong_len))
                c->pong_ahead = c->out.bytes;
        }
    }
    if (c->read_paused && c->out.bytes <= c->cfg.out_high && c->started && !c->eof && !c->dead &&
        !c->hclosing) {
        c->read_paused = false;
        if (tt_conn_read_start(c->conn, on_alloc, on_read) < 0) {
            close_with(c, TT_GOAWAY_NORMAL, 1006, TETHER_ERR_IO, "read failed");
            c->dead = true;
            schedule(c);
        }
    }
}

/* Queues one WebSocket frame (FIN set) whose payload is hdr[0..hlen) + data[0..len). Returns 0,
 * TETHER_ERR_NOMEM (the output is then broken and the connection is being closed), or
 * TETHER_ERR_CLOSED (the connection is dead, or the frame does not fit under out_max: then it
 * is closed as a peer that does not read). Nothing is queued when it fails. */
static int ws_send(struct tt_wsconn *c, uint8_t opcode, const uint8_t *hdr, size_t hlen,
                   const uint8_t *data, size_t len)
{
    uint8_t head[TT_WSFRAME_MAX_HEADER], key[4];
    size_t n;

    if (c->broken)
        return TETHER_ERR_NOMEM;
    if (c->dead)
        return TETHER_ERR_CLOSED;
    if (c->cfg.client && next_mask(key) != 0)
        goto broken;
    n = tt_wsframe_encode(head, true, opcode, c->cfg.client ? key : NULL, hlen + len);
    if (n + hlen + len > tt_chunkq_room(&c->out)) {
        overflow(c, false);
        return TETHER_ERR_CLOSED;
    }
    out_starting(c);
    if (tt_chunkq_append(&c->out, head, n) != 0 || put_payload(c, hdr, hlen, key, 0) != 0 ||
        put_payload(c, data, len, key, hlen) != 0)
        goto broken;
    out_grew(c);
    schedule(c);
    return 0;
broken:
    c->broken = true;
    TT_LOG(TT_LOG_WARN, "wsconn: output failed (out of memory) peer=%s", c->peer);
    close_with(c, TT_GOAWAY_NORMAL, 1011, TETHER_ERR_NOMEM, "out of memory");
    c->dead = true;
    return TETHER_ERR_NOMEM;
}

static void flush_failed(struct tt_wsconn *c, int r);

/* Sends a ping or pong (payload p[0..len), len <= 125) at once when nothing is queued before
 * it: one write from the stack, no pooled chunk held until the idle turn (a relay sends the
 * pings of hundreds of connections in one timer turn and answers pings as it reads them).
 * Whatever the socket does not take at once (or a TLS connection) goes through the queue, under
 * its cap. Returns true when (the rest of) the frame was queued, false when it went out whole or
 * could not be sent (the connection is then closing). */
static bool send_control(struct tt_wsconn *c, uint8_t opcode, const uint8_t *p, size_t len)
{
    uint8_t frame[TT_WSFRAME_MAX_HEADER + WSCONN_CTRL_MAX], key[4];
    size_t n;
    int r;

    if (c->out.bytes > 0 || c->inflight > 0 || c->dead || c->hclosing || c->broken ||
        len > WSCONN_CTRL_MAX || (c->cfg.client && next_mask(key) != 0))
        return ws_send(c, opcode, p, len, NULL, 0) == 0;
    n = tt_wsframe_encode(frame, true, opcode, c->cfg.client ? key : NULL, len);
    if (c->cfg.client)
        tt_wsframe_mask(frame + n, p, len, key, 0);
    else if (len > 0)
        memcpy(frame + n, p, len);
    n += len;
    uv_buf_t buf = uv_buf_init((char *)frame, (unsigned)n);
    r = tt_conn_try_write(c->conn, &buf, 1);
    if (r == UV_EAGAIN)
        r = 0;
    else if (r < 0) {
        flush_failed(c, r);
        return false;
    }
    if ((size_t)r == n)
        return false;
    out_starting(c);
    r = tt_chunkq_append(&c->out, frame + r, n - (size_t)r);
    if (r == TETHER_ERR_AGAIN) {
        overflow(c, false);
        return false;
    }
    if (r != 0) {
        c->broken = true;
        TT_LOG(TT_LOG_WARN, "wsconn: output failed (out of memory) peer=%s", c->peer);
        close_with(c, TT_GOAWAY_NORMAL, 1011, TETHER_ERR_NOMEM, "out of memory");
        c->dead = true;
        return false;
    }
    out_grew(c);
    schedule(c);
    return true;
}

/* A ping came with payload p[0..len). Answered at once unless a pong is still queued: then its
 * payload waits in c->pong, replacing any earlier one (RFC 6455 5.5.3 lets us answer only the
 * latest), and is answered once that pong is written (out_moved). So a peer that pings and
 * never reads costs one queued pong and one buffer, however much it sends. */
static void answer_ping(struct tt_wsconn *c, const uint8_t *p, size_t len)
{
    if (c->pong_ahead > 0) {
        if (c->pong == NULL && (c->pong = malloc(WSCONN_CTRL_MAX)) == NULL) {
            count(&stat_pings_coalesced); /* out of memory: this one goes unanswered */
            return;
        }
        if (c->pong_due)
            count(&stat_pings_coalesced);
        if (len > 0)
            memcpy(c->pong, p, len);
        c->pong_len = (uint8_t)len;
        c->pong_due = true;
        return;
    }
    count(&stat_pings_answered);
    if (send_control(c, TT_WS_PONG, p, len))
        c->pong_ahead = c->out.bytes;
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

/* Moves the session's own frames (WINDOW, RESET) into the output queue (also while closing:
 * deliver_close sends them before the GOAWAY, so that a peer learns why its stream ended). */
static void pump_session_frames(struct tt_wsconn *c)
{
    uint8_t buf[WSCONN_PUMP_BUF];
    while (tt_session_want_write(&c->sess)) {
        tt_ssize n = tt_session_send(&c->sess, buf, sizeof(buf));
        if (n <= 0)
            break;
        if (ws_send(c, TT_WS_BINARY, buf, (size_t)n, NULL, 0) != 0)
            break;
        c->bytes_out += (uint64_t)n;
    }
}

static void pump_session(struct tt_wsconn *c)
{
    if (!c->closing)
        pump_session_frames(c);
}

static void on_write(uv_write_t *req, int status)
{
    struct tt_wsconn *c = req->data;
    size_t n = c->inflight;
    wreq_put(c->L, req);
    tt_chunkq_consume(&c->out, n);
    c->inflight = 0;
    if (c->hclosing)
        return;
    if (status < 0) {
        TT_LOG(TT_LOG_DEBUG, "wsconn: write failed peer=%s err=%s", c->peer, uv_err_name(status));
        close_with(c, TT_GOAWAY_NORMAL, 1006, TETHER_ERR_IO, "write failed");
        finish(c);
        return;
    }
    out_moved(c, n);
    schedule(c);
}

/* A write failed with r: the connection is over. */
static void flush_failed(struct tt_wsconn *c, int r)
{
    TT_LOG(TT_LOG_DEBUG, "wsconn: write failed peer=%s err=%s", c->peer, uv_err_name(r));
    close_with(c, TT_GOAWAY_NORMAL, 1006, TETHER_ERR_IO, "write failed");
    finish(c);
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
        out_moved(c, (size_t)r);
        if (c->dead)
            return;
        if ((size_t)r == nbytes) {
            /* more than WSCONN_MAX_BUFS chunks were queued, a pong joined, or waiters may go
             * on now */
            if (c->out.bytes > 0 || c->waiters.next != &c->waiters)
                schedule(c);
            return;
        }
        n = tt_chunkq_bufs(&c->out, bufs, WSCONN_MAX_BUFS, &nbytes);
    } else if (r != UV_EAGAIN) {
        flush_failed(c, r);
        return;
    }
    uv_write_t *req = wreq_get(c->L);
    r = UV_ENOMEM;
    if (req != NULL) {
        req->data = c;
        r = tt_conn_write(c->conn, req, bufs, n, on_write);
        if (r < 0)
            wreq_put(c->L, req);
    }
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
    free(req);
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

/* The end of feed(): the input handed to on_data is still valid. */
static void call_readers(struct tt_wsconn *c)
{
    struct tt_wsconn_waiter local;
    if (c->readers.next == &c->readers)
        return;
    local.next = c->readers.next;
    local.prev = c->readers.prev;
    local.next->prev = &local;
    local.prev->next = &local;
    c->readers.next = c->readers.prev = &c->readers;
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
    /* No more pings; the idle turn sets the close deadline once the close frame is queued. */
    link_remove(&c->tlink);
    schedule(c);
}

/* Called from the idle handle once: the last frames out, the streams closed, on_close. */
static void deliver_close(struct tt_wsconn *c)
{
    uint8_t buf[TT_FRAME_HEADER_LEN + 4 + TT_MAX_REASON + 8];
    tt_ssize n = 0;

    if (!c->dead && !c->broken) {
        pump_session_frames(c); /* a RESET the session queued goes before the GOAWAY */
        if (c->try_refuse)
            n = tt_session_refuse(&c->sess,
                                  tt_session_error(&c->sess) == TETHER_ERR_VERSION
                                      ? TT_REFUSE_VERSION
                                      : TT_REFUSE_INVALID,
                                  reason_of(c), buf, sizeof(buf));
        if (n <= 0 && !c->no_goaway &&
            (tt_session_state(&c->sess) == TT_SESSION_OPEN || c->force_goaway))
            n = tt_session_goaway(&c->sess, c->goaway_code, reason_of(c), buf, sizeof(buf));
        if (n > 0 && ws_send(c, TT_WS_BINARY, buf, (size_t)n, NULL, 0) == 0)
            c->bytes_out += (uint64_t)n;
        if (!c->broken)
            ws_send_close(c, c->ws_code, c->close_err == 0 ? "" : tether_err_name(c->close_err));
    }
    tt_session_shutdown(&c->sess);
    drop_waiters(c);
    c->notified = true;
    if (c->cb.on_close != NULL)
        c->cb.on_close(c, c->close_err, reason_of(c), c->ud);
}

/* ---- input ------------------------------------------------------------------------------ */

static void protocol_error(struct tt_wsconn *c, uint16_t ws_code, int err, const char *why)
{
    TT_LOG(TT_LOG_DEBUG, "wsconn: closing peer=%s ws_code=%u reason=\"%s\"", c->peer,
           (unsigned)ws_code, why);
    close_with(c, TT_GOAWAY_PROTOCOL, ws_code, err, why);
    c->force_goaway = tt_session_state(&c->sess) != TT_SESSION_CLOSED;
}

/* A whole control frame's payload p[0..len), len <= 125. */
static void handle_control(struct tt_wsconn *c, const uint8_t *p, size_t len)
{
    switch (c->fr_opcode) {
    case TT_WS_PING:
        answer_ping(c, p, len);
        break;
    case TT_WS_PONG:
        break;
    case TT_WS_CLOSE: {
        uint16_t code = 1005;
        char why[TT_MAX_REASON + 1];
        size_t tlen = 0;
        if (len == 1) {
            protocol_error(c, 1002, TETHER_ERR_PROTO, "bad close frame");
            return;
        }
        if (len >= 2) {
            code = (uint16_t)(p[0] << 8 | p[1]);
            tlen = len - 2;
        }
        int n = snprintf(why, sizeof(why), "peer closed the websocket (%u%s%.*s)", (unsigned)code,
                         tlen ? ": " : "", (int)tlen, tlen ? (const char *)p + 2 : "");
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
        if (c->fr_left == 0 && c->ctrl_len == 0) {
            /* Whole in this read (the usual case): no copy. */
            c->in_frame = false;
            handle_control(c, data, n);
            return;
        }
        /* The decoder caps control payloads at 125 bytes. */
        if (c->ctrl == NULL && (c->ctrl = malloc(125)) == NULL) {
            TT_LOG(TT_LOG_WARN, "wsconn: out of memory peer=%s", c->peer);
            close_with(c, TT_GOAWAY_NORMAL, 1011, TETHER_ERR_NOMEM, "out of memory");
            return;
        }
        memcpy(c->ctrl + c->ctrl_len, data, n);
        c->ctrl_len = (uint8_t)(c->ctrl_len + n);
        if (c->fr_left == 0) {
            c->in_frame = false;
            handle_control(c, c->ctrl, c->ctrl_len);
            free(c->ctrl);
            c->ctrl = NULL;
            c->ctrl_len = 0;
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
    call_readers(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    tt_chunk_read_buf(0, buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tt_wsconn *c = s->data;
    struct tt_chunk *ch = tt_chunk_of_read_buf(buf, 0);

    if (nread > 0) {
        c->last_rx = uv_now(c->loop);
        if (!c->closing) {
            c->input_full = (size_t)nread == TT_CHUNK_SIZE;
            c->input_readers = 0;
            c->input_chunk = ch;
            feed(c, (uint8_t *)buf->base, (size_t)nread);
            ch = c->input_chunk; /* NULL if a reader took it */
            c->input_chunk = NULL;
            c->input_full = false;
        }
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

/* ---- deadlines -------------------------------------------------------------------------- */

/* At a link check: true (and the connection closing) when queued output has not moved for
 * stall_ms. It moves when a write completes, or when the socket's own write queue shrinks (a
 * large write under way is taken bit by bit by a slow reader). */
static bool stalled(struct tt_wsconn *c, uint64_t now)
{
    size_t wqs;
    if (c->out.bytes == 0)
        return false;
    wqs = uv_stream_get_write_queue_size((const uv_stream_t *)&c->conn->tcp);
    if (wqs < c->stall_wqs)
        c->last_tx = now;
    c->stall_wqs = wqs;
    if (now - c->last_tx < c->cfg.stall_ms)
        return false;
    overflow(c, true);
    return true;
}

/* c's deadline came: the close deadline, or the tick of its ping period (or timeout check). */
static void on_due(struct tt_wsconn *c)
{
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
    if (stalled(c, now))
        return;
    /* A ping only on a quiet link: a peer that pings (or talks) often enough saves us ours, and
     * its traffic already proves the link alive. */
    if (c->cfg.ping_interval_ms > 0 && now - c->last_rx >= c->cfg.ping_quiet_ms) {
        uint8_t p[8];
        for (int i = 0; i < 8; i++)
            p[i] = (uint8_t)(now >> (56 - 8 * i));
        (void)send_control(c, TT_WS_PING, p, sizeof(p));
    }
    arm(c, c->q_tick);
}

/* ---- the idle turn: start, flush, close -------------------------------------------------- */

static void run(struct tt_wsconn *c)
{
    if (c->hclosing)
        return;
    if (!c->started) {
        c->started = true;
        if (c->prelen > 0 && !c->closing)
            feed(c, c->pre, c->prelen);
        free(c->pre);
        c->pre = NULL;
        c->prelen = 0;
        if (!c->dead && !c->read_paused) {
            int r = tt_conn_read_start(c->conn, on_alloc, on_read);
            if (r < 0) {
                close_with(c, TT_GOAWAY_NORMAL, 1006, TETHER_ERR_IO, "read failed");
                c->dead = true;
            }
        }
    }
    if (c->closing && !c->notified) {
        deliver_close(c);
        if (!c->dead)
            arm(c, c->q_close);
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
        uv_shutdown_t *req = malloc(sizeof(*req));
        c->shut = true;
        if (req == NULL) {
            finish(c);
            return;
        }
        req->data = c;
        if (tt_conn_shutdown(c->conn, req, on_shutdown) < 0) {
            free(req);
            finish(c);
        }
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
    if (c->cfg.out_max == 0)
        c->cfg.out_max = WSCONN_DEFAULT_MAX_FACTOR * c->cfg.out_high;
    if (c->cfg.out_max < c->cfg.out_high)
        c->cfg.out_max = c->cfg.out_high;
    c->out_stop = c->cfg.out_high + WSCONN_STOP_ABOVE;
    if (c->out_stop > c->cfg.out_max)
        c->out_stop = c->cfg.out_max;
    if (c->cfg.stall_ms == 0)
        c->cfg.stall_ms = WSCONN_DEFAULT_STALL_MS;
    if (c->cfg.max_message == 0)
        c->cfg.max_message = WSCONN_DEFAULT_MAX_MESSAGE;
    if (c->cfg.ping_quiet_ms == 0)
        c->cfg.ping_quiet_ms = c->cfg.ping_interval_ms / 2;
    c->cb = *cb;
    c->ud = ud;
    c->maxcap = WSCONN_MIN_MAXCAP;
    while (c->maxcap < 2u * (uint32_t)cfg->session.max_streams)
        c->maxcap *= 2;
    c->waiters.next = c->waiters.prev = &c->waiters;
    c->readers.next = c->readers.prev = &c->readers;
    link_init(&c->runlink);
    link_init(&c->tlink);
    tt_chunkq_init(&c->out, c->cfg.out_max);

    /* The link check: every ping interval, else often enough for the ping timeout, else for
     * the stall check. */
    uint32_t tick = c->cfg.ping_interval_ms;
    if (tick == 0 && c->cfg.ping_timeout_ms > 0)
        tick = c->cfg.ping_timeout_ms / 4 < 50 ? 50 : c->cfg.ping_timeout_ms / 4;
    if (tick == 0)
        tick = c->cfg.stall_ms / 4 < 50 ? 50 : c->cfg.stall_ms / 4;
    int q_tick = -1, q_close = -1;
    c->L = wsloop_get(loop);
    if (c->L != NULL) {
        c->L->refs++;
        q_tick = tick > 0 ? wsloop_queue(c->L, tick) : 0;
        q_close = wsloop_queue(c->L, WSCONN_CLOSE_TIMEOUT_MS);
        c->scb = wsloop_callbacks(c->L, cfg->session_cb);
        c->cfg.session_cb = c->scb;
    }
    c->table = calloc(WSCONN_FIRST_TABLE, sizeof(struct tt_stream));
    r = TETHER_ERR_NOMEM;
    if (q_tick >= 0 && q_close >= 0 && c->scb != NULL && c->table != NULL)
        r = tt_session_init(&c->sess, &cfg->session, c->scb, ud, c->table, WSCONN_FIRST_TABLE);
    if (r == 0 && prelen > 0) {
        c->pre = malloc(prelen);
        if (c->pre == NULL)
            r = TETHER_ERR_NOMEM;
        else
            memcpy(c->pre, pre, prelen);
        c->prelen = prelen;
    }
    if (r != 0) {
        if (c->L != NULL)
            wsloop_put(c->L);
        free(c->pre);
        free(c->table);
        free(c);
        return r;
    }
    c->q_tick = (uint8_t)q_tick;
    c->q_close = (uint8_t)q_close;

    /* Nothing below fails: from here on the conn is ours. */
    conn->tcp.data = c;
    (void)uv_tcp_nodelay(&conn->tcp, 1);
    tt_conn_peer(conn, c->peer, sizeof(c->peer));
    c->last_rx = uv_now(loop);
    if (tick > 0)
        arm(c, c->q_tick);
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

int tt_wsconn_send_chunk(struct tt_wsconn *c, uint32_t id, struct tt_chunk *ch)
{
    uint8_t head[TT_WSFRAME_MAX_HEADER], key[4], *t;
    size_t n = ch->len - ch->off, hn;
    tt_ssize r;

    if (c->closing)
        return TETHER_ERR_CLOSED;
    /* A small read is copied: a queue of mostly empty chunks would hold far more memory than
     * the bytes out_high counts. */
    if (c->broken || c->dead || n < TT_CHUNK_SIZE / 2 || n > TT_FRAME_MAX_PAYLOAD ||
        ch->off < TT_WSFRAME_MAX_HEADER + TT_FRAME_HEADER_LEN ||
        TT_WSFRAME_MAX_HEADER + TT_FRAME_HEADER_LEN + n > tt_chunkq_room(&c->out) ||
        n > tt_session_send_window(&c->sess, id))
        return 0;
    if (c->cfg.client && next_mask(key) != 0)
        return 0; /* the copying path reports it */
    t = ch->data + ch->off - TT_FRAME_HEADER_LEN;
    r = tt_session_data_header(&c->sess, id, n, false, t);
    if (r < 0)
        return (int)r;
    hn = tt_wsframe_encode(head, true, TT_WS_BINARY, c->cfg.client ? key : NULL,
                           TT_FRAME_HEADER_LEN + n);
    if (c->cfg.client)
        tt_wsframe_mask(t, t, TT_FRAME_HEADER_LEN + n, key, 0);
    memcpy(t - hn, head, hn);
    ch->off -= TT_FRAME_HEADER_LEN + hn;
    out_starting(c);
    (void)tt_chunkq_push(&c->out, ch); /* cannot fail: the room was checked above */
    c->bytes_out += TT_FRAME_HEADER_LEN + n;
    out_grew(c);
    schedule(c);
    return 1;
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

uint32_t tt_wsconn_grow_window(struct tt_wsconn *c, uint32_t id, uint32_t extra)
{
    uint32_t n;
    if (c->closing)
        return 0;
    n = tt_session_grow_window(&c->sess, id, extra);
    if (n > 0)
        schedule(c);
    return n;
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

bool tt_wsconn_input_full(const struct tt_wsconn *c)
{
    return c->input_full;
}

struct tt_chunk *tt_wsconn_take_input(struct tt_wsconn *c)
{
    struct tt_chunk *ch = c->input_chunk;
    if (c->input_readers != 1)
        return NULL;
    c->input_chunk = NULL;
    return ch;
}

void tt_wsconn_after_input(struct tt_wsconn *c, struct tt_wsconn_waiter *w)
{
    if (w->next != NULL)
        return;
    c->input_readers++;
    w->prev = c->readers.prev;
    w->next = &c->readers;
    c->readers.prev->next = w;
    c->readers.prev = w;
}

void tt_wsconn_close(struct tt_wsconn *c, uint16_t goaway_code, uint16_t ws_code, int err,
                     const char *reason)
{
    close_with(c, goaway_code, ws_code, err, reason);
}

uint16_t tt_wsconn_close_code(uint16_t goaway)
{
    switch (goaway) {
    case TT_GOAWAY_SHUTDOWN:
        return 1001;
    case TT_GOAWAY_PROTOCOL:
        return 1002;
    case TT_GOAWAY_REVOKED:
        return 1008;
    default:
        return 1000;
    }
}

void tt_wsconn_abort(struct tt_wsconn *c, int err, const char *reason)
{
    if (c->hclosing)
        return;
    close_with(c, TT_GOAWAY_NORMAL, 1006, err, reason);
    c->dead = true;
    /* what the idle turn would do, now: the descriptor is free when this returns */
    if (!c->notified)
        deliver_close(c);
    close_handles(c);
}

const char *tt_wsconn_peer(const struct tt_wsconn *c)
{
    return c->peer;
}

uint32_t tt_wsconn_window(const struct tt_wsconn *c)
{
    /* a visitor session has the protocol's fixed window, whatever the config said */
    return c->cfg.session.role == TT_ROLE_VISITOR ? TT_VISITOR_WINDOW : c->cfg.session.window;
}

uint64_t tt_wsconn_bytes_in(const struct tt_wsconn *c)
{
    return c->bytes_in;
}

uint64_t tt_wsconn_bytes_out(const struct tt_wsconn *c)
{
    return c->bytes_out;
}

void tt_wsconn_get_stats(struct tt_wsconn_stats *out)
{
    out->overflow_cap = atomic_load_explicit(&stat_overflow_cap, memory_order_relaxed);
    out->overflow_stall = atomic_load_explicit(&stat_overflow_stall, memory_order_relaxed);
    out->read_paused = atomic_load_explicit(&stat_read_paused, memory_order_relaxed);
    out->run_capped = atomic_load_explicit(&stat_run_capped, memory_order_relaxed);
    out->pings_answered = atomic_load_explicit(&stat_pings_answered, memory_order_relaxed);
    out->pings_coalesced = atomic_load_explicit(&stat_pings_coalesced, memory_order_relaxed);
}
