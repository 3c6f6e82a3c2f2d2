/* pipe.c - joins one TCP socket to one stream of a wsconn. Upstream, socket reads land in a
 * pooled chunk and go out as DATA straight from it (or through the filter hook and a bounded
 * queue); reading stops while the window or the wsconn's output is full. Downstream, DATA
 * payloads are kept as pointers into the wsconn's receive buffer until the end of that read
 * (tt_wsconn_after_input), then written to the socket from there in one writev when it was
 * the last read of the loop turn; otherwise (bulk: the read chunk itself when this pipe had it
 * alone), and for what the socket does not take, they go into a write queue (copied), flushed
 * by a uv_idle handle before the loop polls. Bytes are credited back only once written. Stream
 * end and socket close are tracked separately; the pipe frees itself when both are over, after
 * on_done. */
#include "common/pipe.h"

#include <stdlib.h>
#include <string.h>

#include "common/conn.h"
#include "common/log.h"
#include "common/pool.h"

#define PIPE_MAX_BUFS 64
/* DATA payloads of one read kept by pointer (more are copied into the write queue). */
#define PIPE_MAX_HELD 8
/* Filter output held back before the socket stops being read. */
#define PIPE_UPQ_HIGH (64u * 1024u)
/* The upstream queue's cap: PIPE_UPQ_HIGH plus what the filter makes of one read (a 64 KiB read
 * of the smallest pipelined requests, each head rewritten with the relay's headers, is well
 * under this). A filter that emits more gets TETHER_ERR_AGAIN and fails the stream. */
#define PIPE_UPQ_MAX (4u * 1024u * 1024u)
/* Room in the write queue beyond the stream's receive window, for the relay's answer pages
 * (tt_pipe_write: a few KiB each, one or two per stream). */
#define PIPE_WQ_EXTRA (64u * 1024u)
/* Socket input the filter left (it stops reading the socket; one read, or the pre bytes, and
 * whatever a TLS record still held). */
#define PIPE_HELD_MAX (128u * 1024u)
/* Receive-window growth (tt_session_grow_window) of one stream whose socket keeps up, and of all
 * the pipes of a thread: what a stalled reader can hold beyond the initial windows. */
#define PIPE_EXTRA_MAX (4u * 1024u * 1024u)
#define PIPE_EXTRA_BUDGET (64u * 1024u * 1024u)

static _Thread_local size_t extra_in_use; /* sum of the live pipes' extra */

struct tt_pipe {
    struct tt_stream_owner owner; /* first: cb NULL (pipe.h) */
    uv_loop_t *loop;
    struct tt_conn *sock;
    uv_idle_t idle;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    struct tt_wsconn *c; /* NULL once the stream has ended */
    uint32_t id;
    const struct tt_pipe_hooks *hooks;
    void *ud;

    /* upstream: socket -> peer */
    struct tt_chunk *rchunk; /* an unfiltered read; [off, len) not sent yet */
    struct tt_chunkq upq;    /* filter output and pre bytes not sent yet */
    struct tt_chunkq fheld;  /* socket input the filter did not take yet (copied) */
    bool refeed;             /* offer fheld to the filter at the idle turn (tt_pipe_refeed) */
    bool eof_unfiltered;     /* the socket's EOF came while fheld held bytes */
    struct tt_wsconn_waiter waiter;
    uint8_t *pre;
    size_t prelen;
    bool reading;
    bool sock_eof; /* the socket's EOF was read (and given to the filter) */
    bool fin_sent;

    /* downstream: peer -> socket */
    struct tt_chunkq wq;
    uv_buf_t held[PIPE_MAX_HELD]; /* DATA after wq, still in the wsconn's receive buffer */
    unsigned nheld;
    struct tt_wsconn_waiter input_done; /* end of the read that held[] points into */
    size_t inflight;                    /* bytes of wq in the uv_write under way (0: none) */
    size_t peer_pending;                /* bytes of the peer's DATA in wq, not credited yet */
    bool peer_fin;                      /* the peer's FIN arrived */
    bool got_peer;                      /* any DATA or FIN came from the peer */
    bool was_reset;                     /* the peer's RESET arrived */
    uint16_t reset_code;
    bool shut, shut_done;

    /* lifecycle */
    bool connecting;
    bool started;
    bool ending;  /* the stream ended badly: flush wq, then close the socket */
    bool failed;  /* it did not end with a FIN each way (tt_pipe_failed) */
    bool closing; /* the handles are being closed */
    int nhandles;
    int pending_abort; /* >= 0: abort with this code from the idle handle */
    uint64_t up, down;
    uint32_t extra;   /* receive-window growth granted to this stream */
    uint64_t last_io; /* uv_now of the last socket read or write (tt_pipe_last_io) */
};

static void on_idle(uv_idle_t *h);
static void update_read(struct tt_pipe *p);
static void read_start(struct tt_pipe *p);
static void keep_held(struct tt_pipe *p);

static void schedule(struct tt_pipe *p)
{
    if (!p->closing && !uv_is_active((uv_handle_t *)&p->idle))
        uv_idle_start(&p->idle, on_idle);
}

/* ---- ending ----------------------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    struct tt_pipe *p = h->data;
    if (--p->nhandles > 0)
        return;
    if (p->hooks != NULL && p->hooks->on_done != NULL)
        p->hooks->on_done(p, p->up, p->down, p->ud);
    tt_chunk_put(p->rchunk);
    tt_chunkq_clear(&p->upq);
    tt_chunkq_clear(&p->fheld);
    tt_chunkq_clear(&p->wq);
    free(p->pre);
    extra_in_use -= p->extra;
    free(p);
}

/* Closes the socket and the idle handle; the pipe goes in the last close callback. The stream
 * must have ended already. */
static void close_socket(struct tt_pipe *p)
{
    if (p->closing)
        return;
    p->closing = true;
    p->nhandles = 2;
    tt_conn_close(p->sock, on_handle_closed);
    uv_close((uv_handle_t *)&p->idle, on_handle_closed);
}

/* Forgets the stream (it ended, or we reset it). */
static void detach(struct tt_pipe *p)
{
    if (p->c == NULL)
        return;
    keep_held(p);
    tt_wsconn_cancel_wait(p->c, &p->waiter);
    tt_wsconn_cancel_wait(p->c, &p->input_done);
    /* The slot may outlive us (a RESET the closing wsconn did not send, a failed session):
     * make sure no later on_stream_close finds this pipe there. */
    (void)tt_session_set_user(tt_wsconn_session(p->c), p->id, NULL);
    p->c = NULL;
    if (p->reading) {
        tt_conn_read_stop(p->sock);
        p->reading = false;
    }
}

/* Resets the stream if it is still open, then flushes the socket's queue and closes it. */
static void end_with_reset(struct tt_pipe *p, uint16_t code, bool flush_first)
{
    p->failed = true;
    if (p->c != NULL) {
        tt_wsconn_reset_stream(p->c, p->id, code);
        detach(p);
    }
    if (flush_first) {
        p->ending = true;
        schedule(p);
    } else {
        close_socket(p);
    }
}

/* A socket error: RESET the stream and close at once. On the relay the socket is a public
 * client's, which went away (CANCEL); on a device or a visitor it is the local connection,
 * which failed (IO): docs/PROTOCOL.md section 5. */
static void socket_failed(struct tt_pipe *p, const char *what, int err)
{
    bool relay = p->c != NULL && tt_session_role(tt_wsconn_session(p->c)) == TT_ROLE_RELAY;
    TT_LOG(TT_LOG_DEBUG, "pipe: socket %s failed stream=%u err=%s", what, (unsigned)p->id,
           uv_err_name(err));
    end_with_reset(p, relay ? TT_RESET_CANCEL : TT_RESET_IO, false);
}

/* The stream is over from the session's side (on_stream_close). */
static void stream_closed(struct tt_pipe *p)
{
    bool normal = p->fin_sent && p->peer_fin && !p->was_reset;
    detach(p);
    p->failed |= !normal;
    if (normal) {
        schedule(p); /* finish the writes, shut down, close */
        return;
    }
    if (!p->got_peer && p->hooks != NULL && p->hooks->on_fail != NULL &&
        p->hooks->on_fail(p, p->was_reset ? (int)p->reset_code : -1, p->ud)) {
        p->ending = true;
        schedule(p);
        return;
    }
    close_socket(p);
}

/* ---- upstream --------------------------------------------------------------------------- */

static void on_writable(struct tt_wsconn_waiter *w)
{
    struct tt_pipe *p = (struct tt_pipe *)(void *)((char *)w - offsetof(struct tt_pipe, waiter));
    schedule(p);
}

/* Sends what the window allows. Returns false if the pipe was ended meanwhile. */
static bool send_up(struct tt_pipe *p, const uint8_t *data, size_t len, size_t *sent)
{
    tt_ssize r = tt_wsconn_send_data(p->c, p->id, data, len, false);
    *sent = 0;
    if (r == TETHER_ERR_NOMEM) {
        end_with_reset(p, TT_RESET_CANCEL, false);
        return false;
    }
    if (r < 0)
        return true; /* closing or gone: on_stream_close is on its way */
    *sent = (size_t)r;
    return true;
}

static void pump_up(struct tt_pipe *p)
{
    size_t sent;

    if (p->c == NULL || p->fin_sent || p->connecting || !p->started)
        return;
    while (p->upq.bytes > 0) {
        if (!tt_wsconn_writable(p->c))
            goto blocked;
        struct tt_chunk *h = p->upq.head;
        size_t n = h->len - h->off;
        if (!send_up(p, h->data + h->off, n, &sent))
            return;
        tt_chunkq_consume(&p->upq, sent);
        if (sent < n)
            goto out;
    }
    if (p->rchunk != NULL) {
        if (!tt_wsconn_writable(p->c))
            goto blocked;
        /* The whole read as one frame, the chunk itself queued: no copy. */
        int taken = tt_wsconn_send_chunk(p->c, p->id, p->rchunk);
        if (taken < 0)
            goto out; /* closing or gone: on_stream_close is on its way */
        if (taken == 0) {
            /* Not all of it fits the window: what does is copied. */
            size_t n = p->rchunk->len - p->rchunk->off;
            if (!send_up(p, p->rchunk->data + p->rchunk->off, n, &sent))
                return;
            p->rchunk->off += sent;
            if (p->rchunk->off < p->rchunk->len)
                goto out;
            tt_chunk_put(p->rchunk);
        }
        p->rchunk = NULL;
    }
    if (p->sock_eof && p->c != NULL && p->fheld.bytes == 0 && !p->eof_unfiltered) {
        tt_ssize r = tt_wsconn_send_data(p->c, p->id, NULL, 0, true);
        if (r >= 0) {
            p->fin_sent = true;
            if (p->peer_fin) {
                /* Our FIN completed the stream: the slot is gone, no on_stream_close. */
                detach(p);
                schedule(p);
            }
        }
    }
out:
    update_read(p);
    return;
blocked:
    tt_wsconn_wait_writable(p->c, &p->waiter);
    update_read(p);
}

/* Keeps in[0..len) for the filter, after what it holds already. Returns false when the pipe
 * was ended (over PIPE_HELD_MAX, or out of memory). */
static bool hold_input(struct tt_pipe *p, const uint8_t *in, size_t len)
{
    if (len > PIPE_HELD_MAX - p->fheld.bytes || tt_chunkq_append(&p->fheld, in, len) != 0) {
        end_with_reset(p, TT_RESET_CANCEL, false);
        return false;
    }
    return true;
}

/* Gives in[0..len) (or the EOF) to the filter, in order after any input it left before. */
static void run_filter(struct tt_pipe *p, const uint8_t *in, size_t len, bool eof)
{
    if (p->fheld.bytes > 0) {
        if (len > 0 && !hold_input(p, in, len))
            return;
        if (eof)
            p->eof_unfiltered = true;
        return;
    }
    tt_ssize r = p->hooks->filter(p, in, len, eof, p->ud);
    if (r < 0) {
        if (!p->closing)
            end_with_reset(p, TT_RESET_CANCEL, true);
        return;
    }
    if ((size_t)r < len)
        (void)hold_input(p, in + r, len - (size_t)r);
}

/* tt_pipe_refeed's work, at the idle turn: the held input goes to the filter again, chunk by
 * chunk, until it takes all of it (then the EOF, if it came meanwhile) or stops again. */
static void refeed(struct tt_pipe *p)
{
    if (p->closing || p->ending || p->c == NULL)
        return;
    if (p->fheld.bytes == 0 && !p->eof_unfiltered) {
        tt_ssize r = p->hooks->filter(p, NULL, 0, false, p->ud);
        if (r < 0 && !p->closing)
            end_with_reset(p, TT_RESET_CANCEL, true);
        return;
    }
    while (p->fheld.bytes > 0) {
        struct tt_chunk *h = p->fheld.head;
        size_t n = h->len - h->off;
        tt_ssize r = p->hooks->filter(p, h->data + h->off, n, false, p->ud);
        if (r < 0) {
            if (!p->closing)
                end_with_reset(p, TT_RESET_CANCEL, true);
            return;
        }
        tt_chunkq_consume(&p->fheld, (size_t)r);
        if ((size_t)r < n)
            return;
    }
    if (p->eof_unfiltered) {
        p->eof_unfiltered = false;
        run_filter(p, NULL, 0, true);
    }
}

static bool filtered(const struct tt_pipe *p)
{
    return p->hooks != NULL && p->hooks->filter != NULL;
}

static void update_read(struct tt_pipe *p)
{
    bool want = p->started && !p->connecting && !p->sock_eof && !p->closing && !p->ending &&
                p->c != NULL && !p->fin_sent;
    if (want) {
        if (!tt_wsconn_writable(p->c)) {
            want = false;
            tt_wsconn_wait_writable(p->c, &p->waiter);
        } else if (filtered(p)) {
            want = p->upq.bytes < PIPE_UPQ_HIGH && p->fheld.bytes == 0;
        } else {
            want = p->rchunk == NULL && p->upq.bytes == 0 &&
                   tt_session_send_window(tt_wsconn_session(p->c), p->id) > 0;
        }
    }
    if (want && !p->reading) {
        read_start(p);
    } else if (!want && p->reading) {
        tt_conn_read_stop(p->sock);
        p->reading = false;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    /* Headroom for the frame headers that tt_wsconn_send_chunk writes in front. */
    tt_chunk_read_buf(TT_CHUNK_HEADROOM, buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tt_pipe *p = s->data;
    struct tt_chunk *ch = tt_chunk_of_read_buf(buf, TT_CHUNK_HEADROOM);

    if (nread > 0)
        p->last_io = uv_now(p->loop);
    if (nread > 0 && p->c != NULL && !p->closing && !p->ending) {
        p->up += (uint64_t)nread;
        if (filtered(p)) {
            run_filter(p, (const uint8_t *)buf->base, (size_t)nread, false);
        } else if (p->rchunk == NULL && p->upq.bytes == 0) {
            /* The common case: send straight from the read chunk. */
            ch->off = TT_CHUNK_HEADROOM;
            ch->len = TT_CHUNK_HEADROOM + (size_t)nread;
            p->rchunk = ch;
            ch = NULL;
        } else {
            /* Reading should have stopped; keep the order anyway. */
            struct tt_chunk *r = p->rchunk;
            p->rchunk = NULL;
            if ((r != NULL && tt_chunkq_append(&p->upq, r->data + r->off, r->len - r->off) != 0) ||
                tt_chunkq_append(&p->upq, (const uint8_t *)buf->base, (size_t)nread) != 0)
                end_with_reset(p, TT_RESET_CANCEL, false);
            tt_chunk_put(r);
        }
        if (!p->closing)
            pump_up(p);
    } else if (nread == UV_EOF) {
        tt_conn_read_stop(p->sock);
        p->reading = false;
        if (!p->sock_eof) {
            p->sock_eof = true;
            if (filtered(p) && p->c != NULL)
                run_filter(p, NULL, 0, true);
            pump_up(p);
        }
    } else if (nread < 0) {
        socket_failed(p, "read", (int)nread);
    }
    tt_chunk_put(ch);
}

static void read_start(struct tt_pipe *p)
{
    int r = tt_conn_read_start(p->sock, on_alloc, on_read);
    if (r < 0) {
        socket_failed(p, "read", r);
        return;
    }
    p->reading = true;
}

/* ---- downstream ------------------------------------------------------------------------- */

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct tt_pipe *p = req->data;
    if (p->closing)
        return;
    p->shut_done = true;
    if (status < 0) {
        socket_failed(p, "shutdown", status);
        return;
    }
    schedule(p);
}

/* n bytes of wq (already consumed) are on the socket: count them and credit the peer. */
static void written(struct tt_pipe *p, size_t n)
{
    p->down += n;
    p->last_io = uv_now(p->loop);
    size_t credit = n < p->peer_pending ? n : p->peer_pending;
    p->peer_pending -= credit;
    if (credit > 0 && p->c != NULL)
        tt_wsconn_consume(p->c, p->id, credit);
}

static void on_write(uv_write_t *req, int status)
{
    struct tt_pipe *p = req->data;
    size_t n = p->inflight;
    tt_chunkq_consume(&p->wq, n);
    p->inflight = 0;
    if (p->closing)
        return;
    if (status < 0) {
        socket_failed(p, "write", status);
        return;
    }
    written(p, n);
    schedule(p);
}

/* The socket took everything at once: if the stream's window is what holds the peer back, it
 * grows (doubling, at most PIPE_EXTRA_MAX more), within the thread's PIPE_EXTRA_BUDGET. A single
 * stream then is not capped at a window per round trip; a slow reader never gets here. */
static void grow_window(struct tt_pipe *p)
{
    size_t want = PIPE_EXTRA_MAX - p->extra;
    if (p->c == NULL || p->extra >= PIPE_EXTRA_MAX || extra_in_use >= PIPE_EXTRA_BUDGET)
        return;
    if (want > PIPE_EXTRA_BUDGET - extra_in_use)
        want = PIPE_EXTRA_BUDGET - extra_in_use;
    uint32_t got = tt_wsconn_grow_window(p->c, p->id, (uint32_t)want);
    p->extra += got;
    extra_in_use += got;
}

static void flush(struct tt_pipe *p)
{
    uv_buf_t bufs[PIPE_MAX_BUFS]; /* uv_write copies the array */
    size_t nbytes;
    unsigned n;
    int r;

    if (p->closing || p->connecting || p->inflight > 0)
        return;
    n = tt_chunkq_bufs(&p->wq, bufs, PIPE_MAX_BUFS, &nbytes);
    if (n == 0)
        return;
    /* What the socket takes at once needs no request, no callback and no extra loop turn. */
    r = tt_conn_try_write(p->sock, bufs, n);
    if (r > 0) {
        tt_chunkq_consume(&p->wq, (size_t)r);
        written(p, (size_t)r);
        if ((size_t)r == nbytes) {
            if (p->wq.bytes > 0)
                schedule(p); /* more than PIPE_MAX_BUFS chunks were queued */
            else
                grow_window(p);
            return;
        }
        n = tt_chunkq_bufs(&p->wq, bufs, PIPE_MAX_BUFS, &nbytes);
    } else if (r != UV_EAGAIN) {
        socket_failed(p, "write", r);
        return;
    }
    p->wreq.data = p;
    r = tt_conn_write(p->sock, &p->wreq, bufs, n, on_write);
    if (r < 0) {
        socket_failed(p, "write", r);
        return;
    }
    p->inflight = nbytes;
}

static void on_idle(uv_idle_t *h)
{
    struct tt_pipe *p = h->data;

    uv_idle_stop(h);
    if (p->closing)
        return;
    if (!p->started) {
        p->started = true;
        if (p->prelen > 0 && p->c != NULL) {
            p->up += p->prelen;
            if (filtered(p)) {
                run_filter(p, p->pre, p->prelen, false);
            } else if (tt_chunkq_append(&p->upq, p->pre, p->prelen) != 0) {
                end_with_reset(p, TT_RESET_CANCEL, false);
            }
        }
        free(p->pre);
        p->pre = NULL;
        p->prelen = 0;
        if (p->closing)
            return;
    }
    if (p->pending_abort >= 0) {
        uint16_t code = (uint16_t)p->pending_abort;
        p->pending_abort = -1;
        end_with_reset(p, code, true);
    }
    if (p->refeed) {
        p->refeed = false;
        refeed(p);
        if (p->closing)
            return;
    }
    pump_up(p);
    if (p->closing)
        return;
    flush(p);
    if (p->closing || p->connecting || p->inflight > 0 || p->wq.bytes > 0)
        return;
    /* Everything written. */
    if (p->ending) {
        close_socket(p);
    } else if (p->peer_fin && !p->shut) {
        p->shut = true;
        p->sreq.data = p;
        int r = tt_conn_shutdown(p->sock, &p->sreq, on_shutdown);
        if (r < 0)
            socket_failed(p, "shutdown", r);
    } else if (p->shut_done && p->fin_sent && p->c == NULL) {
        close_socket(p); /* both directions finished */
    }
}

/* Copies the held DATA into wq (its bytes stay uncredited until written). */
static void keep_held(struct tt_pipe *p)
{
    unsigned i;
    for (i = 0; i < p->nheld; i++) {
        if (tt_chunkq_append(&p->wq, (const uint8_t *)p->held[i].base, p->held[i].len) != 0) {
            size_t lost = 0;
            for (; i < p->nheld; i++)
                lost += p->held[i].len;
            /* A prefix may be in wq: the stream is broken anyway. */
            p->peer_pending -= lost < p->peer_pending ? lost : p->peer_pending;
            if (p->c != NULL)
                tt_session_consume(tt_wsconn_session(p->c), p->id, lost);
            p->pending_abort = TT_RESET_CANCEL;
            break;
        }
    }
    p->nheld = 0;
    schedule(p);
}

/* Queues the wsconn's read chunk itself in wq, held[] made contiguous in it, when this pipe
 * was its only reader and held[] is one or two pieces of at least half a chunk in all (so
 * that wq's memory stays within twice its bytes). The smaller piece moves over the frame
 * header between them. Returns false when it could not (held[] untouched). */
static bool queue_input_chunk(struct tt_pipe *p)
{
    struct tt_chunk *ch;
    uint8_t *start;
    size_t n = p->held[0].len;

    if (p->nheld == 2)
        n += p->held[1].len;
    if (p->nheld > 2 || n < TT_CHUNK_SIZE / 2 || n > tt_chunkq_room(&p->wq))
        return false;
    ch = tt_wsconn_take_input(p->c);
    if (ch == NULL)
        return false;
    start = (uint8_t *)p->held[0].base;
    if (start < ch->data || (uint8_t *)p->held[p->nheld - 1].base + p->held[p->nheld - 1].len >
                                ch->data + TT_CHUNK_SIZE) {
        keep_held(p); /* not in that chunk after all: copy, then let it go */
        tt_chunk_put(ch);
        return true;
    }
    if (p->nheld == 2) {
        uv_buf_t *a = &p->held[0], *b = &p->held[1];
        if (a->len <= b->len) {
            start = (uint8_t *)b->base - a->len;
            memmove(start, a->base, a->len);
        } else {
            memmove(a->base + a->len, b->base, b->len);
        }
    }
    ch->off = (size_t)(start - ch->data);
    ch->len = ch->off + n;
    (void)tt_chunkq_push(&p->wq, ch); /* cannot fail: the room was checked before */
    p->nheld = 0;
    schedule(p);
    return true;
}

/* The end of the read that delivered held[]: the socket gets wq and held[] in one writev when
 * nothing is in flight; what it does not take is copied. */
static void on_input_done(struct tt_wsconn_waiter *w)
{
    struct tt_pipe *p =
        (struct tt_pipe *)(void *)((char *)w - offsetof(struct tt_pipe, input_done));
    uv_buf_t bufs[PIPE_MAX_BUFS];
    unsigned n = 0, i;
    size_t nbytes = 0, r;
    int wr;

    if (p->nheld == 0)
        return;
    if (p->closing || p->ending || p->c == NULL) {
        keep_held(p);
        return;
    }
    /* A full read means more follows in this loop turn (bulk): then the bytes are queued and
     * written together at the idle turn, one writev for many reads, as fewer, larger writes
     * cost the kernel less than a copy costs us; the read chunk itself is queued when it can
     * be. */
    if (p->connecting || p->inflight > 0 || tt_wsconn_input_full(p->c)) {
        if (!queue_input_chunk(p))
            keep_held(p);
        return;
    }
    n = tt_chunkq_bufs(&p->wq, bufs, PIPE_MAX_BUFS - PIPE_MAX_HELD, &nbytes);
    if (nbytes < p->wq.bytes) {
        keep_held(p); /* wq is longer than one writev: keep the order */
        return;
    }
    for (i = 0; i < p->nheld; i++) {
        bufs[n++] = p->held[i];
        nbytes += p->held[i].len;
    }
    wr = tt_conn_try_write(p->sock, bufs, n);
    if (wr < 0 && wr != UV_EAGAIN) {
        p->nheld = 0;
        socket_failed(p, "write", wr);
        return;
    }
    r = wr > 0 ? (size_t)wr : 0;
    if (r > 0) {
        size_t fromq = r < p->wq.bytes ? r : p->wq.bytes;
        tt_chunkq_consume(&p->wq, fromq);
        r -= fromq;
        /* Drop the written part of held[]. */
        for (i = 0; i < p->nheld && r > 0; i++) {
            size_t k = r < p->held[i].len ? r : p->held[i].len;
            p->held[i].base += k;
            p->held[i].len -= k;
            r -= k;
        }
        written(p, (size_t)wr);
        if ((size_t)wr == nbytes) {
            p->nheld = 0;
            grow_window(p);
            if (p->peer_fin)
                schedule(p);
            return;
        }
    }
    keep_held(p); /* copies the rest (empty entries copy nothing) and schedules the flush */
}

/* ---- session callbacks ------------------------------------------------------------------ */

/* The callbacks of a stream whose user is not a pipe (pipe.h, struct tt_stream_owner), or
 * NULL. */
static const struct tt_session_callbacks *other_owner(const struct tt_stream *st)
{
    const struct tt_stream_owner *o = st->user;
    return o != NULL ? o->cb : NULL;
}

static int pipe_on_data(struct tt_session *s, struct tt_stream *st, const uint8_t *data, size_t len,
                        void *ud)
{
    struct tt_pipe *p = st->user;
    const struct tt_session_callbacks *o = other_owner(st);
    if (o != NULL)
        return o->on_data(s, st, data, len, ud);
    if (p == NULL || p->closing || p->ending || p->c == NULL) {
        tt_session_consume(s, st->id, len); /* nobody to give it to: drop and credit */
        return 0;
    }
    p->got_peer = true;
    if (p->hooks != NULL && p->hooks->downstream != NULL) {
        size_t pass = p->hooks->downstream(p, data, len, p->ud);
        if (pass < len) {
            tt_session_consume(s, st->id, len - pass); /* dropped: credited at once */
            len = pass;
        }
        if (len == 0)
            return 0;
    }
    p->peer_pending += len;
    if (p->nheld == PIPE_MAX_HELD)
        keep_held(p);
    if (p->nheld < PIPE_MAX_HELD) {
        /* Written (or copied) at the end of this read, from the wsconn's buffer. */
        p->held[p->nheld++] = uv_buf_init((char *)(uintptr_t)data, (unsigned)len);
        tt_wsconn_after_input(p->c, &p->input_done);
    }
    return 0;
}

static int pipe_on_fin(struct tt_session *s, struct tt_stream *st, void *ud)
{
    struct tt_pipe *p = st->user;
    const struct tt_session_callbacks *o = other_owner(st);
    if (o != NULL)
        return o->on_fin(s, st, ud);
    if (p != NULL) {
        p->got_peer = true;
        p->peer_fin = true;
        schedule(p);
    }
    return 0;
}

static int pipe_on_reset(struct tt_session *s, struct tt_stream *st, const struct tt_coded *m,
                         void *ud)
{
    struct tt_pipe *p = st->user;
    const struct tt_session_callbacks *o = other_owner(st);
    if (o != NULL)
        return o->on_reset(s, st, m, ud);
    if (p != NULL) {
        p->was_reset = true;
        p->reset_code = m->code;
    }
    return 0;
}

static int pipe_on_window(struct tt_session *s, struct tt_stream *st, void *ud)
{
    struct tt_pipe *p = st->user;
    const struct tt_session_callbacks *o = other_owner(st);
    if (o != NULL)
        return o->on_window(s, st, ud);
    /* Deferred: sending from here could end the stream inside the session's callback. */
    if (p != NULL)
        schedule(p);
    return 0;
}

static void pipe_on_stream_close(struct tt_session *s, struct tt_stream *st, void *ud)
{
    struct tt_pipe *p = st->user;
    const struct tt_session_callbacks *o = other_owner(st);
    if (o != NULL) {
        o->on_stream_close(s, st, ud);
        return;
    }
    if (p == NULL)
        return;
    st->user = NULL;
    if (p->c != NULL)
        stream_closed(p);
}

void tt_pipe_session_callbacks(struct tt_session_callbacks *cb)
{
    cb->on_data = pipe_on_data;
    cb->on_fin = pipe_on_fin;
    cb->on_reset = pipe_on_reset;
    cb->on_window = pipe_on_window;
    cb->on_stream_close = pipe_on_stream_close;
}

/* ---- public ----------------------------------------------------------------------------- */

int tt_pipe_new(struct tt_pipe **out, uv_loop_t *loop, struct tt_conn *sock, bool connecting,
                struct tt_wsconn *c, uint32_t id, const uint8_t *pre, size_t prelen,
                const struct tt_pipe_hooks *hooks, void *ud)
{
    struct tt_pipe *p;

    if (out == NULL || loop == NULL || sock == NULL || c == NULL || (prelen > 0 && pre == NULL))
        return TETHER_ERR_INVAL;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return TETHER_ERR_NOMEM;
    if (prelen > 0) {
        p->pre = malloc(prelen);
        if (p->pre == NULL) {
            free(p);
            return TETHER_ERR_NOMEM;
        }
        memcpy(p->pre, pre, prelen);
        p->prelen = prelen;
    }
    if (tt_session_set_user(tt_wsconn_session(c), id, p) != 0) {
        free(p->pre);
        free(p);
        return TETHER_ERR_NO_STREAM;
    }
    p->loop = loop;
    p->sock = sock;
    p->c = c;
    p->id = id;
    p->hooks = hooks;
    p->ud = ud;
    p->connecting = connecting;
    p->pending_abort = -1;
    p->last_io = uv_now(loop);
    p->waiter.cb = on_writable;
    p->input_done.cb = on_input_done;
    tt_chunkq_init(&p->upq, PIPE_UPQ_MAX);
    tt_chunkq_init(&p->fheld, PIPE_HELD_MAX);
    /* The peer's DATA in wq is never more than the stream's window (the session fails a peer
     * that sends more), grown by at most PIPE_EXTRA_MAX. */
    tt_chunkq_init(&p->wq, (size_t)tt_wsconn_window(c) + PIPE_EXTRA_MAX + PIPE_WQ_EXTRA);
    uv_idle_init(loop, &p->idle);
    p->idle.data = p;
    sock->tcp.data = p;
    if (!connecting)
        (void)uv_tcp_nodelay(&sock->tcp, 1);
    schedule(p); /* pre bytes and reading start from the idle handle */
    *out = p;
    return 0;
}

void tt_pipe_connected(struct tt_pipe *p, int status)
{
    if (p->closing || !p->connecting)
        return;
    p->connecting = false;
    if (status < 0) {
        TT_LOG(TT_LOG_DEBUG, "pipe: connect failed stream=%u err=%s", (unsigned)p->id,
               uv_err_name(status));
        if (p->c != NULL) {
            tt_wsconn_reset_stream(p->c, p->id, TT_RESET_REFUSED);
            detach(p);
        }
        p->failed = true;
        if (p->hooks != NULL && p->hooks->on_fail != NULL)
            (void)p->hooks->on_fail(p, TT_RESET_REFUSED, p->ud);
        close_socket(p);
        return;
    }
    (void)uv_tcp_nodelay(&p->sock->tcp, 1);
    schedule(p);
}

int tt_pipe_send(struct tt_pipe *p, const uint8_t *data, size_t len)
{
    int r;
    if (p->c == NULL || p->closing || p->fin_sent || len == 0)
        return 0;
    r = tt_chunkq_append(&p->upq, data, len);
    if (r != 0)
        return r;
    schedule(p);
    return 0;
}

void tt_pipe_refeed(struct tt_pipe *p)
{
    if (p->closing || !filtered(p))
        return;
    p->refeed = true;
    schedule(p);
}

int tt_pipe_write(struct tt_pipe *p, const uint8_t *data, size_t len)
{
    int r;
    if (p->closing || len == 0)
        return 0;
    if (p->nheld > 0)
        keep_held(p); /* after the DATA already received */
    r = tt_chunkq_append(&p->wq, data, len);
    if (r != 0)
        return r;
    schedule(p);
    return 0;
}

void tt_pipe_abort(struct tt_pipe *p, uint16_t code)
{
    if (p->closing)
        return;
    end_with_reset(p, code, true);
}

void tt_pipe_kill(struct tt_pipe *p, uint16_t code)
{
    if (p->closing)
        return;
    end_with_reset(p, code, false);
}

uint64_t tt_pipe_last_io(const struct tt_pipe *p)
{
    return p->last_io;
}

bool tt_pipe_reading(const struct tt_pipe *p)
{
    return p->reading;
}

bool tt_pipe_failed(const struct tt_pipe *p)
{
    return p->failed;
}

uint64_t tt_pipe_peer_bytes(const struct tt_pipe *p)
{
    return p->down + p->peer_pending;
}

void *tt_pipe_ud(const struct tt_pipe *p)
{
    return p->ud;
}

uint32_t tt_pipe_stream_id(const struct tt_pipe *p)
{
    return p->id;
}
