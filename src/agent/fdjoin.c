/* fdjoin.c - two file descriptors joined to one stream of a wsconn (fdjoin.h). Input is read
 * one buffer (a pooled chunk) at a time, sent within the window, and read again only once that
 * buffer went out; output is copied into a capped queue and credited once written. Pipes,
 * terminals and sockets go through libuv streams, files through libuv's file calls. Whatever
 * could end the stream inside a session callback waits for the idle turn. */
#include "agent/fdjoin.h"

#include <stdlib.h>
#include <string.h>
#if defined(_WIN32)
#include <io.h>
#define fd_close _close
#define fd_dup _dup
#else
#include <unistd.h>
#define fd_close close
#define fd_dup dup
#endif

#include "common/log.h"
#include "common/pipe.h"
#include "common/pool.h"

#define FDJOIN_MAX_BUFS 16

enum fdkind { FD_STREAM = 1, FD_FILE = 2 };

union fdstream {
    uv_handle_t h;
    uv_stream_t s;
    uv_pipe_t pipe;
    uv_tty_t tty;
    uv_tcp_t tcp;
};

struct tt_fdjoin {
    struct tt_stream_owner owner; /* first (pipe.h): the stream's events come here */
    uv_loop_t *loop;
    struct tt_wsconn *c; /* NULL once the stream has ended */
    uint32_t id;
    tt_fdjoin_done_cb done;
    void *ud;
    uv_idle_t kick; /* the deferred work (pump, ends) */
    int pending;    /* handles and requests libuv still owes a callback */

    /* input: in_fd -> the stream */
    int in_kind;
    union fdstream in;
    uv_fs_t in_req;
    int in_fd;
    bool in_busy;          /* a file read under way */
    bool reading;          /* a stream read started */
    struct tt_chunk *ibuf; /* the last read; [ioff, ilen) not sent yet */
    size_t ioff, ilen;
    bool in_eof, in_closed, fin_sent;
    struct tt_wsconn_waiter writable;

    /* output: the stream -> out_fd */
    int out_kind;
    union fdstream out;
    uv_fs_t out_req;
    uv_write_t wreq;
    int out_fd;
    struct tt_chunkq wq;
    size_t inflight;
    bool peer_fin, out_closing, out_closed;

    /* the end */
    bool stream_over; /* the stream has ended */
    bool broken;      /* ... by a RESET, the session's end or a descriptor's failure */
    int code;         /* the peer's RESET code, or -1 */
    bool finished;    /* done was called */
    uint64_t up, down;
};

static const struct tt_session_callbacks *join_callbacks(void);
static void run(struct tt_fdjoin *j);

static void on_kick(uv_idle_t *h)
{
    run(h->data);
}

static void kick(struct tt_fdjoin *j)
{
    if (!uv_is_closing((uv_handle_t *)&j->kick) && !uv_is_active((uv_handle_t *)&j->kick))
        uv_idle_start(&j->kick, on_kick);
}

static void maybe_free(struct tt_fdjoin *j)
{
    if (!j->finished || j->pending > 0)
        return;
    tt_chunk_put(j->ibuf);
    tt_chunkq_clear(&j->wq);
    free(j);
}

static void on_closed(uv_handle_t *h)
{
    struct tt_fdjoin *j = h->data;
    j->pending--;
    maybe_free(j);
}

/* libuv never closes descriptors 0 to 2 with their handles (on Windows it works on a duplicate
 * of their OS handle, which it closes): the reader of our standard output must see its end, so
 * that descriptor is closed here. */
static void on_out_closed(uv_handle_t *h)
{
    struct tt_fdjoin *j = h->data;
    if (j->out_fd >= 0 && j->out_fd <= 2)
        (void)fd_close(j->out_fd);
    on_closed(h);
}

static void on_fs_closed(uv_fs_t *req)
{
    struct tt_fdjoin *j = req->data;
#ifdef _WIN32
    /* libuv's uv_fs_close leaves descriptors 0 to 2 open on Windows: closed here, as a stream's */
    if (j->out_fd >= 0 && j->out_fd <= 2)
        (void)fd_close(j->out_fd);
#endif
    uv_fs_req_cleanup(req);
    j->pending--;
    maybe_free(j);
}

/* What libuv takes fd for (the debug log's words). */
static const char *kind_name(int fd)
{
    switch (uv_guess_handle(fd)) {
    case UV_TTY:
        return "a terminal";
    case UV_NAMED_PIPE:
        return "a pipe";
    case UV_TCP:
        return "a TCP socket";
    case UV_UDP:
        return "a UDP socket";
    case UV_FILE:
        return "a file";
    default:
        return "unknown";
    }
}

/* Opens fd for libuv: a stream (pipe, terminal, socket) or a file. *kind is FD_STREAM once a
 * handle was initialized (the caller closes it, also when 0 is not returned), FD_FILE for a
 * file, else 0. A pipe libuv cannot open as a stream is taken as a file: Wine gives a Windows
 * program's standard descriptors, when they are Unix pipes, handles that are no named pipes
 * (libuv's pipes need one); blocking file calls in the thread pool read and write them (the
 * handle tried is closed, j->pending counting it). Returns 0 or a libuv error. */
static int open_fd(struct tt_fdjoin *j, uv_loop_t *loop, int fd, bool readable, union fdstream *u,
                   int *kind)
{
    int rc;
    *kind = 0;
    switch (uv_guess_handle(fd)) {
    case UV_TTY:
        rc = uv_tty_init(loop, &u->tty, fd, readable ? 1 : 0);
        if (rc == 0)
            *kind = FD_STREAM;
        return rc;
    case UV_NAMED_PIPE:
        rc = uv_pipe_init(loop, &u->pipe, 0);
        if (rc != 0)
            return rc;
        rc = uv_pipe_open(&u->pipe, fd);
        if (rc == 0) {
            *kind = FD_STREAM;
            return 0;
        }
        TT_LOG(TT_LOG_DEBUG,
               "stdio: descriptor %d is a pipe libuv cannot stream (%s): taken as a file", fd,
               uv_err_name(rc));
        u->h.data = j;
        j->pending++;
        uv_close(&u->h, on_closed);
        *kind = FD_FILE;
        return 0;
    case UV_TCP:
        rc = uv_tcp_init(loop, &u->tcp);
        if (rc != 0)
            return rc;
        *kind = FD_STREAM;
        rc = uv_tcp_open(&u->tcp, (uv_os_sock_t)fd);
        if (rc == 0) /* docs/PROTOCOL.md 2.5: small writes go at once */
            (void)uv_tcp_nodelay(&u->tcp, 1);
        return rc;
    case UV_FILE:
        *kind = FD_FILE;
        return 0;
    default:
        return UV_EINVAL;
    }
}

/* ---- ending ----------------------------------------------------------------------------- */

static void close_input(struct tt_fdjoin *j)
{
    if (j->in_closed)
        return;
    if (j->in_kind == FD_STREAM) {
        if (j->reading)
            uv_read_stop(&j->in.s);
        j->reading = false;
        j->pending++;
        uv_close(&j->in.h, on_closed);
        j->in_closed = true;
    } else if (!j->in_busy) {
        j->in_closed = true; /* a file read under way closes it when it comes back */
    }
}

/* Closes out_fd: a stream at once (a write under way gets UV_ECANCELED), a file once its write
 * under way is back. */
static void close_output(struct tt_fdjoin *j)
{
    if (j->out_closing || (j->out_kind == FD_FILE && j->inflight > 0))
        return;
    j->out_closing = true;
    TT_LOG(TT_LOG_DEBUG, "stdio: output closed written=%llu", (unsigned long long)j->down);
    j->pending++;
    j->out_req.data = j;
    if (j->out_kind == FD_STREAM) {
        uv_close(&j->out.h, on_out_closed);
    } else if (uv_fs_close(j->loop, &j->out_req, j->out_fd, on_fs_closed) != 0) {
        j->pending--;
    }
    j->out_closed = true;
}

/* Forgets the stream (it ended, or we reset it). */
static void detach(struct tt_fdjoin *j)
{
    if (j->c == NULL)
        return;
    tt_wsconn_cancel_wait(j->c, &j->writable);
    (void)tt_session_set_user(tt_wsconn_session(j->c), j->id, NULL);
    j->c = NULL;
}

/* Something failed: reset the stream if it is open, close everything. */
static void fail_all(struct tt_fdjoin *j, const char *what, int err)
{
    TT_LOG(TT_LOG_DEBUG, "stdio: %s failed err=%s", what, uv_err_name(err));
    if (j->c != NULL) {
        tt_wsconn_reset_stream(j->c, j->id, TT_RESET_IO);
        detach(j);
    }
    j->stream_over = true;
    j->broken = true;
    kick(j);
}

static void finish_if_over(struct tt_fdjoin *j)
{
    if (j->finished || !j->stream_over)
        return;
    if (j->broken) {
        close_input(j);
        close_output(j);
    } else if (j->wq.bytes > 0 || j->inflight > 0) {
        return; /* the last bytes are on their way out */
    } else {
        close_input(j);
        close_output(j);
    }
    if (!j->in_closed || !j->out_closed || j->in_busy || j->inflight > 0)
        return;
    j->finished = true;
    uv_close((uv_handle_t *)&j->kick, on_closed); /* pending counts it */
    if (j->done)
        j->done(j, !j->broken, j->code, j->up, j->down, j->ud);
}

/* ---- input ------------------------------------------------------------------------------ */

static void on_writable(struct tt_wsconn_waiter *w)
{
    struct tt_fdjoin *j =
        (struct tt_fdjoin *)(void *)((char *)w - offsetof(struct tt_fdjoin, writable));
    kick(j);
}

static void read_more(struct tt_fdjoin *j);

/* Sends what the last read brought, within the window; the input's end becomes FIN. */
static void pump_up(struct tt_fdjoin *j)
{
    while (j->c != NULL && j->ilen > j->ioff) {
        if (!tt_wsconn_writable(j->c)) {
            tt_wsconn_wait_writable(j->c, &j->writable);
            return;
        }
        tt_ssize r =
            tt_wsconn_send_data(j->c, j->id, j->ibuf->data + j->ioff, j->ilen - j->ioff, false);
        if (r <= 0)
            return; /* window shut (on_window kicks), or closing (on_stream_close follows) */
        j->ioff += (size_t)r;
        j->up += (uint64_t)r;
    }
    if (j->ilen == j->ioff)
        j->ioff = j->ilen = 0;
    if (j->c != NULL && j->in_eof && j->ilen == 0 && !j->fin_sent) {
        if (tt_wsconn_send_data(j->c, j->id, NULL, 0, true) >= 0) {
            j->fin_sent = true;
            if (j->peer_fin) { /* our FIN completed the stream: no on_stream_close */
                detach(j);
                j->stream_over = true;
                kick(j);
            }
        }
    }
    read_more(j);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct tt_fdjoin *j = h->data;
    (void)suggested;
    if (j->ibuf == NULL)
        j->ibuf = tt_chunk_get();
    if (j->ibuf == NULL || j->ilen > 0) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)j->ibuf->data, TT_CHUNK_SIZE);
}

static void got_input(struct tt_fdjoin *j, ssize_t n)
{
    if (n > 0) {
        j->ioff = 0;
        j->ilen = (size_t)n;
        pump_up(j);
    } else if (n == 0 || n == UV_EOF) {
        j->in_eof = true;
        close_input(j);
        pump_up(j);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tt_fdjoin *j = s->data;
    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0 && nread != UV_EOF) {
        fail_all(j, "read", (int)nread);
        return;
    }
    if (j->reading) {
        uv_read_stop(s); /* one read at a time: the next once this one went out */
        j->reading = false;
    }
    got_input(j, nread);
}

static void on_fs_read(uv_fs_t *req)
{
    struct tt_fdjoin *j = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    j->in_busy = false;
    j->pending--;
    if (j->finished) {
        maybe_free(j);
        return;
    }
    if (j->stream_over && j->broken) {
        j->in_closed = true;
        kick(j);
        return;
    }
    if (n < 0) {
        j->in_closed = true;
        fail_all(j, "read", (int)n);
        return;
    }
    got_input(j, n);
}

/* Reads again when the last read went out and the stream may take more. */
static void read_more(struct tt_fdjoin *j)
{
    bool want = j->c != NULL && !j->in_eof && !j->in_closed && !j->fin_sent && j->ilen == 0 &&
                tt_wsconn_writable(j->c) &&
                tt_session_send_window(tt_wsconn_session(j->c), j->id) > 0;
    if (j->in_kind == FD_STREAM) {
        if (want && !j->reading) {
            if (uv_read_start(&j->in.s, on_alloc, on_read) == 0)
                j->reading = true;
        } else if (!want && j->reading) {
            uv_read_stop(&j->in.s);
            j->reading = false;
        }
        return;
    }
    if (!want || j->in_busy)
        return;
    if (j->ibuf == NULL && (j->ibuf = tt_chunk_get()) == NULL) {
        fail_all(j, "read", UV_ENOMEM);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)j->ibuf->data, TT_CHUNK_SIZE);
    j->in_req.data = j;
    if (uv_fs_read(j->loop, &j->in_req, j->in_fd, &b, 1, -1, on_fs_read) == 0) {
        j->in_busy = true;
        j->pending++;
    } else {
        fail_all(j, "read", UV_EIO);
    }
}

/* ---- output ----------------------------------------------------------------------------- */

static void flush(struct tt_fdjoin *j);

static void written(struct tt_fdjoin *j, int status)
{
    size_t n = j->inflight;
    j->inflight = 0;
    tt_chunkq_consume(&j->wq, n);
    if (j->finished)
        return;
    if (status < 0) {
        fail_all(j, "write", status);
        return;
    }
    j->down += n;
    if (j->c != NULL)
        tt_wsconn_consume(j->c, j->id, n);
    flush(j);
    kick(j);
}

static void on_write(uv_write_t *req, int status)
{
    struct tt_fdjoin *j = req->data;
    j->pending--;
    written(j, status);
    maybe_free(j);
}

static void on_fs_write(uv_fs_t *req)
{
    struct tt_fdjoin *j = req->data;
    int status = req->result < 0 ? (int)req->result : 0;
    uv_fs_req_cleanup(req);
    j->pending--;
    written(j, status);
    maybe_free(j);
}

static void flush(struct tt_fdjoin *j)
{
    uv_buf_t bufs[FDJOIN_MAX_BUFS];
    size_t nbytes;
    unsigned n;
    int rc;

    if (j->inflight > 0 || j->out_closing || j->wq.bytes == 0)
        return;
    n = tt_chunkq_bufs(&j->wq, bufs, FDJOIN_MAX_BUFS, &nbytes);
    if (j->out_kind == FD_STREAM) {
        j->wreq.data = j;
        rc = uv_write(&j->wreq, &j->out.s, bufs, n, on_write);
    } else {
        /* a file write may be partial: take what it wrote, the rest goes again */
        j->out_req.data = j;
        rc = uv_fs_write(j->loop, &j->out_req, j->out_fd, bufs, 1, -1, on_fs_write);
        nbytes = bufs[0].len;
    }
    if (rc != 0) {
        fail_all(j, "write", rc);
        return;
    }
    j->pending++;
    j->inflight = nbytes;
}

/* ---- the deferred work ------------------------------------------------------------------ */

static void run(struct tt_fdjoin *j)
{
    uv_idle_stop(&j->kick);
    if (j->finished)
        return;
    if (!j->stream_over)
        pump_up(j);
    flush(j);
    /* the peer's side is over and all of it written: the reader sees its end */
    if (j->peer_fin && j->wq.bytes == 0 && j->inflight == 0)
        close_output(j);
    finish_if_over(j);
}

/* ---- the stream's events ---------------------------------------------------------------- */

static int j_on_data(struct tt_session *s, struct tt_stream *st, const uint8_t *data, size_t len,
                     void *ud)
{
    struct tt_fdjoin *j = st->user;
    (void)ud;
    if (j->out_closing || tt_chunkq_append(&j->wq, data, len) != 0) {
        tt_session_consume(s, st->id, len); /* nobody to give it to: drop and credit */
        return 0;
    }
    flush(j);
    return 0;
}

static int j_on_fin(struct tt_session *s, struct tt_stream *st, void *ud)
{
    struct tt_fdjoin *j = st->user;
    (void)s;
    (void)ud;
    j->peer_fin = true;
    TT_LOG(TT_LOG_DEBUG, "stdio: the service's side ended queued=%zu", j->wq.bytes);
    kick(j);
    return 0;
}

static int j_on_reset(struct tt_session *s, struct tt_stream *st, const struct tt_coded *m,
                      void *ud)
{
    struct tt_fdjoin *j = st->user;
    (void)s;
    (void)ud;
    j->code = m->code;
    return 0;
}

static int j_on_window(struct tt_session *s, struct tt_stream *st, void *ud)
{
    (void)s;
    (void)ud;
    kick(st->user); /* sending FIN from here could end the stream inside the callback */
    return 0;
}

static void j_on_stream_close(struct tt_session *s, struct tt_stream *st, void *ud)
{
    struct tt_fdjoin *j = st->user;
    (void)s;
    (void)ud;
    st->user = NULL;
    if (j->c == NULL)
        return;
    j->stream_over = true;
    j->broken = !(j->fin_sent && j->peer_fin);
    detach(j);
    kick(j);
}

static const struct tt_session_callbacks *join_callbacks(void)
{
    static const struct tt_session_callbacks cb = {
        .on_data = j_on_data,
        .on_fin = j_on_fin,
        .on_reset = j_on_reset,
        .on_window = j_on_window,
        .on_stream_close = j_on_stream_close,
    };
    return &cb;
}

/* ---- public ----------------------------------------------------------------------------- */

int tt_fdjoin_new(struct tt_fdjoin **out, uv_loop_t *loop, int in_fd, int out_fd,
                  struct tt_wsconn *c, uint32_t id, tt_fdjoin_done_cb done, void *ud)
{
    struct tt_fdjoin *j;

    if (out == NULL || loop == NULL || c == NULL || in_fd < 0 || out_fd < 0)
        return TETHER_ERR_INVAL;
    if (out_fd == in_fd && (out_fd = fd_dup(in_fd)) < 0) /* one handle per descriptor */
        return TETHER_ERR_IO;
    j = calloc(1, sizeof(*j));
    if (j == NULL)
        return TETHER_ERR_NOMEM;
    j->in_fd = in_fd;
    j->out_fd = out_fd;
    int rc = open_fd(j, loop, in_fd, true, &j->in, &j->in_kind);
    if (rc != 0)
        TT_LOG(TT_LOG_DEBUG, "stdio: cannot take descriptor %d (%s): %s", in_fd, kind_name(in_fd),
               uv_err_name(rc));
    if (rc == 0 && (rc = open_fd(j, loop, out_fd, false, &j->out, &j->out_kind)) != 0)
        TT_LOG(TT_LOG_DEBUG, "stdio: cannot take descriptor %d (%s): %s", out_fd, kind_name(out_fd),
               uv_err_name(rc));
    if (rc == 0 && tt_session_set_user(tt_wsconn_session(c), id, &j->owner) != 0)
        rc = TETHER_ERR_NO_STREAM;
    if (rc != 0) {
        /* handles opened go in their close callbacks, and j with the last */
        j->finished = true;
        j->in.h.data = j->out.h.data = j;
        if (j->in_kind == FD_STREAM) {
            j->pending++;
            uv_close(&j->in.h, on_closed);
        }
        if (j->out_kind == FD_STREAM) {
            j->pending++;
            uv_close(&j->out.h, on_closed);
        }
        maybe_free(j);
        return rc == TETHER_ERR_NO_STREAM ? rc : TETHER_ERR_IO;
    }
    j->owner.cb = join_callbacks();
    j->loop = loop;
    j->c = c;
    j->id = id;
    j->done = done;
    j->ud = ud;
    j->code = -1;
    j->in.h.data = j;
    j->out.h.data = j;
    j->writable.cb = on_writable;
    /* the peer's DATA not yet written: at most the stream's window (no growth is granted) */
    tt_chunkq_init(&j->wq, tt_wsconn_window(c));
    uv_idle_init(loop, &j->kick);
    j->kick.data = j;
    j->pending++; /* the idle handle, closed when finished */
    kick(j);
    *out = j;
    return 0;
}

void tt_fdjoin_abort(struct tt_fdjoin *j)
{
    if (j == NULL || j->finished)
        return;
    if (j->c != NULL) {
        tt_wsconn_reset_stream(j->c, j->id, TT_RESET_CANCEL);
        detach(j);
    }
    j->stream_over = true;
    j->broken = true;
    kick(j);
}
