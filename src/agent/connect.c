/* connect.c - libtether's tether connect (tether.h): the visitor's side of docs/PROTOCOL.md ("The
 * visitor's side: tether connect"). Owns an event loop; in listen mode a TCP listener whose
 * every connection is dialed on its own (dial.c, with the visitor's subprotocol and headers,
 * each server in turn until one answers), then joined to stream 1 of a visitor-role wsconn by a
 * pipe (common/pipe.h); in descriptor mode one such connection joined to two descriptors
 * (fdjoin.h). Refusals, failures and broken connections become ERROR events. A 503 with
 * Retry-After (the relay is busy, come back later) is waited out, bounded, by that one
 * connection alone (its own timer; the others and the listener go on): see wait_and_retry.
 * Everything runs on the thread inside tether_connect_run(), but tether_connect_stop(), which
 * flags and wakes. */
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#ifndef _WIN32
#include <sys/socket.h>
#endif
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "tether.h"
#include "agent/agentconf.h"
#include "agent/backoff.h"
#include "agent/dial.h"
#include "agent/fdjoin.h"
#include "agent/proxy.h"
#include "agent/relaytext.h"
#include "agent/resolve.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/pipe.h"
#include "common/pool.h"
#include "common/tls.h"
#include "common/wsconn.h"

/* The link is checked as the agent checks its own (agent.c). */
#define CONNECT_PING_CHECK_MS 1000u
#define CONNECT_PING_QUIET_MS 20000u
#define CONNECT_PING_TIMEOUT_MS 30000u
#define CONNECT_URL_MAX 2048
#define CONNECT_BACKLOG 128
/* A relay's 503 with Retry-After: one connection waits at most this long in all (its waits
 * added up, each Retry-After plus the agent's 0-50 % jitter); a wait that would go past it is
 * not made, and the refusal is final. */
#define CONNECT_RETRY_WAIT_MAX_MS 60000u
/* At most this many connections wait for a Retry-After at once (listen mode); another one the
 * relay asks to wait is refused at once. */
#define CONNECT_MAX_WAITING 64u

enum { MODE_NONE = 0, MODE_LISTEN = 1, MODE_FDS = 2 };

struct tether_connect;

/* One local connection and its connection to the relay. */
struct lconn {
    struct tether_connect *tc;
    struct lconn *prev, *next;
    struct tt_conn *sock; /* listen mode: the accepted socket, until a pipe takes it */
    struct tt_dial *dial;
    uv_timer_t *wait;   /* waiting out a Retry-After (its own allocation, freed when closed) */
    uint32_t waited_ms; /* the waits so far, in all (at most CONNECT_RETRY_WAIT_MAX_MS) */
    size_t server;      /* the server being dialed (index into cfg->servers) */
    size_t tried;
    struct tt_wsconn *ws;
    struct tt_pipe *pipe;   /* listen mode */
    struct tt_fdjoin *join; /* descriptor mode */
    bool joined;            /* the local side is joined (OPEN emitted) */
    bool local_done;        /* the pipe or the join is over */
    bool stream_broken;     /* the relay ended the stream otherwise than by FIN both ways */
    int reset_code;         /* the relay's RESET code, -1 */
    bool got_goaway;
    uint16_t goaway_code;
    char goaway_reason[TT_MAX_REASON + 1];
    int close_err; /* the wsconn's on_close err */
    uint64_t up, down;
    char url[CONNECT_URL_MAX];
    char wait_note[96]; /* why a Retry-After was not waited out (appended to the refusal) */
};

struct tether_connect {
    uv_loop_t loop;
    uv_async_t async;
    bool ran, handles_closed;
    tether_config *cfg; /* our own copy */
    char device[TETHER_MAX_DEVICE_NAME + 1];
    char service[TETHER_MAX_DEVICE_NAME + 1];
    char *headers; /* the upgrade's extra headers: the target and the credentials (wiped) */
    size_t headers_len;
    struct tt_proxy_env proxy_env;
    struct tt_proxy_conf proxy_conf;
    struct tt_dial_options dial_opt;
    struct tt_resolver resolver; /* --dns, for the relay's and the proxy's names */
    struct tt_tls_ctx *tls;
    struct tether_connect_callbacks cb;
    void *ud;
    struct tt_session_callbacks scb;
    int mode;
    char listen_host[TT_HOSTLEN];
    uint16_t listen_port;
    uv_tcp_t listener;
    bool listener_init;
    int in_fd, out_fd;
    struct lconn *conns;
    struct tt_backoff backoff; /* the jitter of Retry-After waits (tt_backoff_after) */
    unsigned nwaiting;         /* connections waiting out a Retry-After (<= CONNECT_MAX_WAITING) */
    atomic_int stop_requested;
    bool stopping;
    int result;
};

/* The pipe's session callbacks (they hand the join's stream to it: struct tt_stream_owner). */
static struct tt_session_callbacks pipe_cb;

/* ---- events ----------------------------------------------------------------------------- */

static void emit(struct tether_connect *tc, struct tether_connect_event *ev)
{
    ev->device = tc->device;
    ev->service = tc->service;
    if (ev->server == NULL)
        ev->server = "";
    if (tc->cb.on_event) {
        tc->cb.on_event(tc, ev, tc->ud);
        return;
    }
    if (ev->kind == TETHER_CONNECT_ERROR)
        TT_LOG(TT_LOG_WARN, "error: %s", TT_LOG_E(ev->message));
    else if (ev->kind == TETHER_CONNECT_LISTENING)
        TT_LOG(TT_LOG_INFO, "listening %s -> %s/%s", ev->address, tc->device, tc->service);
}

static void emit_error(struct tether_connect *tc, const char *server, int err, int status,
                       const char *fmt, ...) TT_PRINTF(5, 6);

static void emit_error(struct tether_connect *tc, const char *server, int err, int status,
                       const char *fmt, ...)
{
    struct tether_connect_event ev = {0};
    char msg[TT_ERRLEN + TT_MAX_REASON + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ev.kind = TETHER_CONNECT_ERROR;
    ev.server = server;
    ev.message = msg;
    ev.err = err;
    ev.status = status;
    if (tc->result == 0)
        tc->result = err ? err : TETHER_ERR_IO;
    TT_LOG(TT_LOG_DEBUG, "event=error server=%s err=%s status=%d: %s", TT_LOG_V(server),
           tether_err_name(err), status, TT_LOG_E(msg));
    emit(tc, &ev);
}

/* ---- the end of a connection ------------------------------------------------------------ */

/* Closes a local connection that never reached the service (refused, or the relay could not be
 * reached): what it sent is read and dropped first, and our side shut down, so that it sees an
 * end rather than a reset (the kernel resets a connection closed with unread bytes). */
static void close_local(struct lconn *l)
{
    if (l->sock == NULL)
        return;
    uv_os_fd_t fd;
    if (uv_fileno((const uv_handle_t *)&l->sock->tcp, &fd) == 0) {
        char buf[4096];
#ifdef _WIN32
        /* Windows resets a socket closed with unread bytes too; libuv's sockets are already
         * non-blocking there (FIONBIO), which this makes sure of */
        SOCKET so = (SOCKET)fd;
        u_long nonblocking = 1;
        (void)ioctlsocket(so, FIONBIO, &nonblocking);
        for (int i = 0; i < 256 && recv(so, buf, (int)sizeof buf, 0) > 0; i++)
            ;
        (void)shutdown(so, SD_SEND);
#else
        for (int i = 0; i < 256 && recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0; i++)
            ;
        (void)shutdown(fd, SHUT_WR);
#endif
    }
    tt_conn_close(l->sock, NULL);
    l->sock = NULL;
}

static void close_handles(struct tether_connect *tc)
{
    if (tc->handles_closed)
        return;
    tc->handles_closed = true;
    uv_close((uv_handle_t *)&tc->async, NULL);
    if (tc->listener_init && !uv_is_closing((uv_handle_t *)&tc->listener))
        uv_close((uv_handle_t *)&tc->listener, NULL);
}

/* Descriptor mode is over with its one connection; listen mode once stopping and empty. */
static void maybe_done(struct tether_connect *tc)
{
    if (tc->conns != NULL)
        return;
    if (tc->mode == MODE_FDS || tc->stopping)
        close_handles(tc);
}

static const char *reset_text(int code)
{
    switch (code) {
    case TT_RESET_REFUSED:
        return "the device's service refused the connection";
    case TT_RESET_NO_SERVICE:
        return "the device has no such service";
    case TT_RESET_LIMIT:
        return "the device has too many connections";
    case TT_RESET_IO:
        return "the device's connection to its service failed";
    case TT_RESET_TIMEOUT:
        return "timed out";
    case TT_RESET_FLOW:
    case TT_RESET_PROTOCOL:
        return "protocol error";
    default:
        return "reset";
    }
}

/* Both the local side and the relay's connection are over: say how, and free l. */
static void lconn_end(struct lconn *l)
{
    struct tether_connect *tc = l->tc;
    if (!l->local_done || l->ws != NULL || l->dial != NULL || l->wait != NULL)
        return;
    if (l->joined) {
        if (l->stream_broken && !tc->stopping) {
            if (l->got_goaway && l->goaway_reason[0])
                emit_error(tc, l->url,
                           l->goaway_code == TT_GOAWAY_REVOKED ? TETHER_ERR_AUTH
                                                               : TETHER_ERR_CLOSED,
                           0, "%s/%s: connection closed by the relay: %s", tc->device, tc->service,
                           l->goaway_reason);
            else if (l->reset_code >= 0)
                emit_error(tc, l->url, TETHER_ERR_CLOSED, 0, "%s/%s: connection reset: %s",
                           tc->device, tc->service, reset_text(l->reset_code));
            else
                emit_error(tc, l->url, l->close_err ? l->close_err : TETHER_ERR_CLOSED, 0,
                           "%s/%s: connection to the relay lost (%s)", tc->device, tc->service,
                           tether_strerror(l->close_err ? l->close_err : TETHER_ERR_CLOSED));
        }
        struct tether_connect_event ev = {0};
        ev.kind = TETHER_CONNECT_CLOSED;
        ev.server = l->url;
        ev.bytes_in = l->up;
        ev.bytes_out = l->down;
        TT_LOG(TT_LOG_DEBUG, "connection closed server=%s up=%llu down=%llu", TT_LOG_V(l->url),
               (unsigned long long)l->up, (unsigned long long)l->down);
        emit(tc, &ev);
    }
    if (l->prev)
        l->prev->next = l->next;
    else
        tc->conns = l->next;
    if (l->next)
        l->next->prev = l->prev;
    free(l);
    maybe_done(tc);
}

static void pipe_done(struct tt_pipe *p, uint64_t up, uint64_t down, void *ud)
{
    struct lconn *l = ud;
    (void)p;
    l->pipe = NULL;
    l->local_done = true;
    l->up = up;
    l->down = down;
    if (l->ws)
        tt_wsconn_close(l->ws, TT_GOAWAY_NORMAL, 1000, 0, "connection over");
    lconn_end(l);
}

static const struct tt_pipe_hooks pipe_hooks = {.on_done = pipe_done};

static void join_done(struct tt_fdjoin *j, bool clean, int code, uint64_t up, uint64_t down,
                      void *ud)
{
    struct lconn *l = ud;
    (void)j;
    (void)code;
    l->join = NULL;
    l->local_done = true;
    l->up = up;
    l->down = down;
    if (!clean)
        l->stream_broken = true;
    if (l->ws)
        tt_wsconn_close(l->ws, TT_GOAWAY_NORMAL, 1000, 0, "connection over");
    lconn_end(l);
}

static void on_ws_close(struct tt_wsconn *c, int err, const char *reason, void *ud)
{
    struct lconn *l = ud;
    (void)c;
    TT_LOG(TT_LOG_DEBUG, "relay connection closed server=%s err=%s reason=\"%s\"", TT_LOG_V(l->url),
           tether_err_name(err), TT_LOG_E(reason));
    l->ws = NULL;
    l->close_err = err;
    lconn_end(l);
}

static const struct tt_wsconn_callbacks ws_cb = {.on_close = on_ws_close};

/* ---- the session's callbacks: the pipe's, and what the messages need ---------------------- */

static int c_on_reset(struct tt_session *s, struct tt_stream *st, const struct tt_coded *m,
                      void *ud)
{
    struct lconn *l = ud;
    l->reset_code = m->code;
    return pipe_cb.on_reset(s, st, m, ud);
}

static void c_on_stream_close(struct tt_session *s, struct tt_stream *st, void *ud)
{
    struct lconn *l = ud;
    /* the relay ended the stream: by its FIN after ours, or not */
    if ((st->flags & (TT_STREAM_LOCAL_FIN | TT_STREAM_REMOTE_FIN)) !=
        (TT_STREAM_LOCAL_FIN | TT_STREAM_REMOTE_FIN))
        l->stream_broken = true;
    pipe_cb.on_stream_close(s, st, ud);
}

static int c_on_goaway(struct tt_session *s, const struct tt_coded *m, void *ud)
{
    struct lconn *l = ud;
    (void)s;
    l->got_goaway = true;
    l->goaway_code = m->code;
    tt_relaytext_clean(l->goaway_reason, sizeof l->goaway_reason, m->reason.p, m->reason.len);
    if (l->ws)
        tt_wsconn_close(l->ws, TT_GOAWAY_NORMAL, 1000, 0, "relay going away");
    return 0;
}

static void core_log(void *ud, const char *msg)
{
    (void)ud;
    TT_LOG(TT_LOG_DEBUG, "core: %s", msg);
}

/* ---- dialing ---------------------------------------------------------------------------- */

static void dial_next(struct lconn *l);

/* The message of a refused upgrade, from its status and the relay's one-line reason. */
static void refused(struct lconn *l, const struct tt_dial_result *r, const char *note)
{
    struct tether_connect *tc = l->tc;
    if (note != NULL)
        emit_error(tc, r->url, TETHER_ERR_HANDSHAKE, r->status,
                   "%s/%s: refused by the relay (HTTP %d)%s%s%s", tc->device, tc->service,
                   r->status, r->body && r->body[0] ? ": " : "", r->body ? r->body : "", note);
    else if (r->status == 101)
        emit_error(tc, r->url, TETHER_ERR_PROTO, 0,
                   "%s/%s: %s does not support tether connect (its answer lacks the %s "
                   "subprotocol)",
                   tc->device, tc->service, r->url, TT_WS_SUBPROTOCOL_CONNECT);
    else if (r->body && r->body[0])
        emit_error(tc, r->url, TETHER_ERR_HANDSHAKE, r->status,
                   "%s/%s: refused by the relay (HTTP %d): %s", tc->device, tc->service, r->status,
                   r->body);
    else
        emit_error(tc, r->url, TETHER_ERR_HANDSHAKE, r->status,
                   "%s/%s: refused by the relay (HTTP %d%s)", tc->device, tc->service, r->status,
                   r->status == 502 ? ": the node holding the device cannot be reached" : "");
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

/* Ends l's wait for a Retry-After, if it waits (the timer is closed and freed). */
static void end_wait(struct lconn *l)
{
    if (l->wait == NULL)
        return;
    uv_timer_stop(l->wait);
    uv_close((uv_handle_t *)l->wait, free_handle);
    l->wait = NULL;
    l->tc->nwaiting--;
}

static void on_wait_over(uv_timer_t *t)
{
    struct lconn *l = t->data;
    end_wait(l);
    l->tried = 0;
    TT_LOG(TT_LOG_DEBUG, "dialing again after the relay's Retry-After server=%s", TT_LOG_V(l->url));
    dial_next(l); /* the same server: the one that asked to wait */
}

/* The relay answered 503 with Retry-After (busy, or draining: PROTOCOL.md 2.1): l waits that
 * long, plus the agent's jitter (tt_backoff_after), on its own timer, then dials the same
 * server again; the local side is held meanwhile (not read: a --listen client's bytes stay in
 * the kernel's buffer, --stdio's standard input is not read), and the other connections and
 * the listener go on. Says so with an ERROR event whose retry_ms is the wait (not a failure of
 * the run). Returns false, with l->wait_note saying why, when l does not wait: its waits would
 * pass CONNECT_RETRY_WAIT_MAX_MS in all, CONNECT_MAX_WAITING connections wait already, or no
 * timer could be made; the refusal is then final. */
static bool wait_and_retry(struct lconn *l, const struct tt_dial_result *r)
{
    struct tether_connect *tc = l->tc;
    uint32_t delay = tt_backoff_after(&tc->backoff, r->retry_after);
    if (l->waited_ms + (uint64_t)delay > CONNECT_RETRY_WAIT_MAX_MS) {
        snprintf(l->wait_note, sizeof l->wait_note,
                 " (asked to retry in %u s; not waiting past %u s in all)",
                 (unsigned)r->retry_after, CONNECT_RETRY_WAIT_MAX_MS / 1000u);
        return false;
    }
    if (tc->nwaiting >= CONNECT_MAX_WAITING) {
        snprintf(l->wait_note, sizeof l->wait_note,
                 " (asked to retry in %u s; %u connections wait already)", (unsigned)r->retry_after,
                 CONNECT_MAX_WAITING);
        return false;
    }
    l->wait = malloc(sizeof *l->wait);
    if (l->wait == NULL || uv_timer_init(&tc->loop, l->wait) != 0) {
        free(l->wait);
        l->wait = NULL;
        snprintf(l->wait_note, sizeof l->wait_note, " (asked to retry in %u s; out of memory)",
                 (unsigned)r->retry_after);
        return false;
    }
    l->wait->data = l;
    uv_timer_start(l->wait, on_wait_over, delay, 0);
    tc->nwaiting++;
    l->waited_ms += delay;
    TT_LOG(TT_LOG_INFO,
           "relay asked to retry later server=%s status=%d retry_after=%us waiting=%.1fs",
           TT_LOG_V(r->url), r->status, (unsigned)r->retry_after, delay / 1000.0);

    char msg[TT_ERRLEN + TT_MAX_REASON + 256];
    struct tether_connect_event ev = {0};
    snprintf(msg, sizeof msg, "%s/%s: refused by the relay (HTTP %d)%s%s", tc->device, tc->service,
             r->status, r->body && r->body[0] ? ": " : "", r->body ? r->body : "");
    ev.kind = TETHER_CONNECT_ERROR;
    ev.server = r->url;
    ev.message = msg;
    ev.err = TETHER_ERR_HANDSHAKE;
    ev.status = r->status;
    ev.retry_ms = delay;
    emit(tc, &ev);
    return true;
}

static void on_dialed(struct tt_dial *d, const struct tt_dial_result *r, void *ud)
{
    struct lconn *l = ud;
    struct tether_connect *tc = l->tc;
    struct tt_wsconn_config wc;
    int rc;
    (void)d;

    l->dial = NULL;
    snprintf(l->url, sizeof l->url, "%s", r->url);
    if (tc->stopping) {
        if (r->conn)
            tt_conn_close(r->conn, NULL);
        l->local_done = true;
        close_local(l);
        lconn_end(l);
        return;
    }
    if (r->err != 0) {
        /* an answer from a relay is final (but a 503 with Retry-After: waited out, bounded); a
         * relay that could not be reached, the next one */
        if (r->status == 0 && ++l->tried < tc->cfg->nservers) {
            TT_LOG(TT_LOG_INFO, "%s; trying the next server", TT_LOG_E(r->message));
            l->server = (l->server + 1) % tc->cfg->nservers;
            dial_next(l);
            return;
        }
        if (r->status == 503 && r->retry_after > 0) {
            if (wait_and_retry(l, r))
                return;
            refused(l, r, l->wait_note);
        } else if (r->status != 0) {
            refused(l, r, NULL);
        } else {
            emit_error(tc, r->url, r->err, 0, "%s/%s: %s", tc->device, tc->service, r->message);
        }
        l->local_done = true;
        close_local(l);
        lconn_end(l);
        return;
    }
    memset(&wc, 0, sizeof wc);
    wc.client = true;
    wc.session.role = TT_ROLE_VISITOR;
    wc.session.window = TT_VISITOR_WINDOW; /* fixed by the protocol */
    wc.session.max_streams = 1;
    wc.session_cb = &tc->scb;
    wc.ping_interval_ms = CONNECT_PING_CHECK_MS;
    wc.ping_quiet_ms = CONNECT_PING_QUIET_MS;
    wc.ping_timeout_ms = CONNECT_PING_TIMEOUT_MS;
    rc = tt_wsconn_new(&l->ws, &tc->loop, r->conn, r->pre, r->prelen, &wc, &ws_cb, l);
    if (rc == 0) {
        if (tc->mode == MODE_LISTEN)
            rc = tt_pipe_new(&l->pipe, &tc->loop, l->sock, false, l->ws, TT_VISITOR_STREAM, NULL, 0,
                             &pipe_hooks, l);
        else
            rc = tt_fdjoin_new(&l->join, &tc->loop, tc->in_fd, tc->out_fd, l->ws, TT_VISITOR_STREAM,
                               join_done, l);
        if (rc != 0) {
            tt_wsconn_close(l->ws, TT_GOAWAY_NORMAL, 1000, rc, "cannot join the local side");
            emit_error(tc, r->url, rc, 0, "%s/%s: cannot join the local side: %s", tc->device,
                       tc->service, tether_strerror(rc));
            l->local_done = true;
            close_local(l);
            return; /* on_ws_close ends l */
        }
        l->sock = NULL; /* the pipe's */
    } else {
        l->ws = NULL;
        tt_conn_close(r->conn, NULL);
        emit_error(tc, r->url, rc, 0, "%s/%s: cannot set up the connection: %s", tc->device,
                   tc->service, tether_strerror(rc));
        l->local_done = true;
        close_local(l);
        lconn_end(l);
        return;
    }
    l->joined = true;
    TT_LOG(TT_LOG_DEBUG, "connected server=%s device=%s service=%s", TT_LOG_V(l->url), tc->device,
           tc->service);
    struct tether_connect_event ev = {0};
    ev.kind = TETHER_CONNECT_OPEN;
    ev.server = l->url;
    emit(tc, &ev);
}

static void dial_next(struct lconn *l)
{
    struct tether_connect *tc = l->tc;
    const char *url = tc->cfg->servers[l->server];
    char err[TT_ERRLEN];
    int rc = tt_dial_start(&l->dial, &tc->loop, url, &tc->dial_opt, on_dialed, l, err);
    if (rc != 0) {
        l->dial = NULL;
        emit_error(tc, url, rc, 0, "%s/%s: %s", tc->device, tc->service, err);
        l->local_done = true;
        close_local(l);
        lconn_end(l);
    }
}

static struct lconn *lconn_new(struct tether_connect *tc)
{
    struct lconn *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    l->tc = tc;
    l->reset_code = -1;
    l->next = tc->conns;
    if (tc->conns)
        tc->conns->prev = l;
    tc->conns = l;
    l->server = 0;
    snprintf(l->url, sizeof l->url, "%s", tc->cfg->servers[0]);
    return l;
}

/* ---- listen mode ------------------------------------------------------------------------ */

static void on_accept(uv_stream_t *server, int status)
{
    struct tether_connect *tc = server->data;
    struct tt_conn *sock;
    struct lconn *l;

    if (status < 0) {
        TT_LOG(TT_LOG_WARN, "accept failed: %s", uv_strerror(status));
        return;
    }
    if (tt_conn_new(&sock, &tc->loop) != 0)
        return;
    if (uv_accept(server, (uv_stream_t *)&sock->tcp) != 0 || tc->stopping ||
        (l = lconn_new(tc)) == NULL) {
        tt_conn_close(sock, NULL);
        return;
    }
    l->sock = sock;
    dial_next(l);
}

static int start_listening(struct tether_connect *tc)
{
    struct sockaddr_storage ss;
    union tt_sockaddr sa;
    int len = sizeof ss, rc;
    char ip[INET6_ADDRSTRLEN], addr[INET6_ADDRSTRLEN + 16];

    /* an IP address, or localhost (RFC 6761: 127.0.0.1, without a lookup) */
    if (tt_hostaddr_fixed(tc->listen_host, tc->listen_port, &sa, 1) != 1) {
        emit_error(tc, "", TETHER_ERR_CONFIG, 0, "--listen: '%s' is not an IP address",
                   tc->listen_host);
        return TETHER_ERR_CONFIG;
    }
    uv_tcp_init(&tc->loop, &tc->listener);
    tc->listener_init = true;
    tc->listener.data = tc;
    rc = uv_tcp_bind(&tc->listener, &sa.sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&tc->listener, CONNECT_BACKLOG, on_accept);
    if (rc != 0) {
        emit_error(tc, "", TETHER_ERR_IO, 0, "cannot listen on %s%s%s:%u: %s",
                   strchr(tc->listen_host, ':') ? "[" : "", tc->listen_host,
                   strchr(tc->listen_host, ':') ? "]" : "", (unsigned)tc->listen_port,
                   uv_strerror(rc));
        return TETHER_ERR_IO;
    }
    uv_tcp_getsockname(&tc->listener, (struct sockaddr *)&ss, &len);
    if (ss.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
        snprintf(addr, sizeof addr, "[%s]:%u", ip,
                 (unsigned)ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    } else {
        uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
        snprintf(addr, sizeof addr, "%s:%u", ip,
                 (unsigned)ntohs(((struct sockaddr_in *)&ss)->sin_port));
    }
    struct tether_connect_event ev = {0};
    ev.kind = TETHER_CONNECT_LISTENING;
    ev.address = addr;
    emit(tc, &ev);
    return 0;
}

/* ---- stopping --------------------------------------------------------------------------- */

static void begin_stop(struct tether_connect *tc)
{
    if (tc->stopping)
        return;
    tc->stopping = true;
    TT_LOG(TT_LOG_DEBUG, "stopping");
    if (tc->listener_init && !uv_is_closing((uv_handle_t *)&tc->listener))
        uv_close((uv_handle_t *)&tc->listener, NULL);
    for (struct lconn *l = tc->conns, *next; l; l = next) {
        next = l->next;
        if (l->dial) {
            tt_dial_cancel(l->dial);
            l->dial = NULL;
            l->local_done = true;
            close_local(l);
        }
        if (l->wait) {
            end_wait(l);
            l->local_done = true;
            close_local(l);
        }
        if (l->join)
            tt_fdjoin_abort(l->join);
        if (l->ws)
            tt_wsconn_close(l->ws, TT_GOAWAY_NORMAL, 1000, 0, "tether connect stopping");
        lconn_end(l);
    }
    maybe_done(tc);
}

static void on_async(uv_async_t *h)
{
    struct tether_connect *tc = h->data;
    if (atomic_load(&tc->stop_requested))
        begin_stop(tc);
}

/* ---- public API ------------------------------------------------------------------------- */

static bool target_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > TETHER_MAX_DEVICE_NAME)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return false;
    return true;
}

/* The upgrade's extra headers: the target and the credentials, if any. */
static int make_headers(struct tether_connect *tc)
{
    const tether_config *cfg = tc->cfg;
    size_t cap = 256 + 2 * TETHER_MAX_DEVICE_NAME +
                 4 * (TETHER_MAX_DEVICE_NAME + 1 + TT_VISITOR_SECRET_MAX + 3) / 3;
    char *h = malloc(cap);
    int n;
    if (h == NULL)
        return TETHER_ERR_NOMEM;
    n = snprintf(h, cap, "Tether-Device: %s\r\nTether-Service: %s\r\n", tc->device, tc->service);
    if (cfg->visitor_user && cfg->visitor_secret) {
        char plain[TETHER_MAX_DEVICE_NAME + 1 + TT_VISITOR_SECRET_MAX + 1];
        unsigned char b64[4 * (sizeof plain + 2) / 3 + 4];
        int pn = snprintf(plain, sizeof plain, "%s:%s", cfg->visitor_user, cfg->visitor_secret);
        int bn = EVP_EncodeBlock(b64, (const unsigned char *)plain, pn);
        n += snprintf(h + n, cap - (size_t)n, "Authorization: Basic %.*s\r\n", bn, (char *)b64);
        OPENSSL_cleanse(plain, sizeof plain);
        OPENSSL_cleanse(b64, sizeof b64);
    } else if (cfg->grant) {
        n += snprintf(h + n, cap - (size_t)n, "Authorization: Bearer %s\r\n", cfg->grant);
    }
    tc->headers = h;
    tc->headers_len = cap;
    return 0;
}

/* The TLS context for wss:// (as the agent makes it, agent.c). */
static int setup_tls(struct tether_connect *tc, tether_config *cfg)
{
    bool wss = tc->cfg->ca_file != NULL || tc->cfg->insecure;
    for (size_t i = 0; i < tc->cfg->nservers; i++)
        wss = wss || strncmp(tc->cfg->servers[i], "wss:", 4) == 0;
    if (!wss)
        return 0;
    int rc = tt_tls_ctx_client(&tc->tls, tc->cfg->ca_file, tc->cfg->insecure, cfg->err);
    if (rc != 0)
        return rc;
    tc->dial_opt.tls = tc->tls;
    if (tc->cfg->insecure)
        TT_LOG(TT_LOG_WARN, "TLS certificate verification is off (--insecure): the relay is not "
                            "authenticated, and it is given the credentials");
    return 0;
}

static void free_parts(struct tether_connect *tc)
{
    if (tc->headers) {
        OPENSSL_cleanse(tc->headers, tc->headers_len);
        free(tc->headers);
    }
    tt_tls_ctx_free(tc->tls);
    tt_proxy_env_free(&tc->proxy_env);
    tether_config_free(tc->cfg);
    free(tc);
}

int tether_connect_new(tether_config *cfg, const char *device, const char *service,
                       const struct tether_connect_callbacks *cb, void *user_data,
                       tether_connect **out)
{
    struct tether_connect *tc;
    int rc;

    if (cfg == NULL || out == NULL || device == NULL || service == NULL)
        return TETHER_ERR_INVAL;
    if (cfg->nservers == 0) {
        snprintf(cfg->err, sizeof cfg->err, "no server given (--server ws://HOST:PORT)");
        return TETHER_ERR_CONFIG;
    }
    if (!target_name_ok(device) || !target_name_ok(service)) {
        snprintf(cfg->err, sizeof cfg->err,
                 "bad target '%s/%s': device and service names are 1 to %d printable "
                 "characters without spaces",
                 device, service, TETHER_MAX_DEVICE_NAME);
        return TETHER_ERR_CONFIG;
    }
    tc = calloc(1, sizeof *tc);
    if (tc == NULL)
        return TETHER_ERR_NOMEM;
    rc = tt_agentconf_dup(cfg, &tc->cfg);
    if (rc != 0) {
        free(tc);
        return rc;
    }
    snprintf(tc->device, sizeof tc->device, "%s", device);
    snprintf(tc->service, sizeof tc->service, "%s", service);
    if ((rc = tt_proxy_env_load(&tc->proxy_env)) != 0 || (rc = make_headers(tc)) != 0 ||
        (rc = tt_resolve_setup(&tc->resolver, tc->cfg->dns, cfg->err)) != 0 ||
        (rc = setup_tls(tc, cfg)) != 0) {
        free_parts(tc);
        return rc < 0 ? rc : TETHER_ERR_NOMEM;
    }
    if (uv_loop_init(&tc->loop) != 0) {
        free_parts(tc);
        return TETHER_ERR_IO;
    }
    tc->proxy_conf.proxy = tc->cfg->proxy;
    tc->proxy_conf.no_proxy = tc->cfg->no_proxy;
    tc->proxy_conf.env = &tc->proxy_env;
    tc->dial_opt.proxy = &tc->proxy_conf;
    tc->dial_opt.subprotocol = TT_WS_SUBPROTOCOL_CONNECT;
    tc->dial_opt.headers = tc->headers;
    tc->dial_opt.resolver = &tc->resolver;
    uv_async_init(&tc->loop, &tc->async, on_async);
    tc->async.data = tc;
    if (cb)
        tc->cb = *cb;
    tc->ud = user_data;
    atomic_init(&tc->stop_requested, 0);
    tt_backoff_init(&tc->backoff, TT_BACKOFF_BASE_MS, TT_BACKOFF_CAP_MS, NULL, NULL);
    tt_pipe_session_callbacks(&pipe_cb);
    tc->scb = pipe_cb;
    tc->scb.on_reset = c_on_reset;
    tc->scb.on_stream_close = c_on_stream_close;
    tc->scb.on_goaway = c_on_goaway;
    tc->scb.log = core_log;
    tc->in_fd = tc->out_fd = -1;
    *out = tc;
    return 0;
}

int tether_connect_listen(tether_connect *tc, const char *addr)
{
    char err[TT_ERRLEN], buf[TT_HOSTLEN + 16];
    if (tc == NULL || addr == NULL)
        return TETHER_ERR_INVAL;
    if (tc->mode != MODE_NONE)
        return TETHER_ERR_STATE;
    /* a bare port means the loopback address */
    const char *p = addr;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p == '\0' && p != addr) {
        snprintf(buf, sizeof buf, "127.0.0.1:%s", addr);
        addr = buf;
    }
    if (tt_parse_hostport(addr, tc->listen_host, &tc->listen_port, true, err) != 0)
        return TETHER_ERR_CONFIG;
    tc->mode = MODE_LISTEN;
    return 0;
}

int tether_connect_fds(tether_connect *tc, int in_fd, int out_fd)
{
    if (tc == NULL || in_fd < 0 || out_fd < 0)
        return TETHER_ERR_INVAL;
    if (tc->mode != MODE_NONE)
        return TETHER_ERR_STATE;
    tc->in_fd = in_fd;
    tc->out_fd = out_fd;
    tc->mode = MODE_FDS;
    return 0;
}

int tether_connect_run(tether_connect *tc)
{
    if (tc == NULL || tc->ran || tc->mode == MODE_NONE)
        return TETHER_ERR_INVAL;
    tc->ran = true;
#ifndef _WIN32
    {
        struct sigaction old;
        if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
            signal(SIGPIPE, SIG_IGN);
    }
#endif
    if (atomic_load(&tc->stop_requested)) {
        begin_stop(tc);
    } else if (tc->mode == MODE_LISTEN) {
        if (start_listening(tc) != 0) {
            begin_stop(tc);
            uv_run(&tc->loop, UV_RUN_DEFAULT);
            return TETHER_ERR_IO;
        }
        tc->result = 0; /* refusals of single connections do not fail a listener */
    } else {
        struct lconn *l = lconn_new(tc);
        if (l == NULL)
            return TETHER_ERR_NOMEM;
        dial_next(l);
    }
    int rc = uv_run(&tc->loop, UV_RUN_DEFAULT);
    tt_chunk_pool_drain();
    if (rc != 0 && !tc->handles_closed)
        return TETHER_ERR_IO;
    return tc->mode == MODE_LISTEN || tc->stopping ? 0 : tc->result;
}

void tether_connect_stop(tether_connect *tc)
{
    if (tc == NULL)
        return;
    atomic_store(&tc->stop_requested, 1);
    uv_async_send(&tc->async);
}

void tether_connect_free(tether_connect *tc)
{
    if (tc == NULL)
        return;
    if (!tc->handles_closed) {
        close_handles(tc);
        uv_run(&tc->loop, UV_RUN_DEFAULT);
    }
    tt_conn_loop_close(&tc->loop);
    free_parts(tc);
}
