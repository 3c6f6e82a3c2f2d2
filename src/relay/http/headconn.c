/* headconn.c - reading request heads on accepted connections (headconn.h). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tether_err.h"
#include "common/log.h"
#include "relay/http/headconn.h"
#include "relay/http/httpstats.h"
#include "relay/http/pages.h"
#include "relay/http/respond.h"
#include "relay/acceptcap.h"

/* hc leaves the set's queue of waiting heads or of waiting handshakes (nothing if it is on
 * neither). */
static void unqueue(struct tt_headconn *hc)
{
    struct tt_headconn_set *set = hc->set;
    struct tt_headconn **head, **tail;
    if (hc->queued) {
        head = &set->ready_head;
        tail = &set->ready_tail;
    } else if (hc->hs_queued) {
        head = &set->hs_head;
        tail = &set->hs_tail;
        set->handshakes_waiting--;
    } else {
        return;
    }
    if (hc->rprev)
        hc->rprev->rnext = hc->rnext;
    else
        *head = hc->rnext;
    if (hc->rnext)
        hc->rnext->rprev = hc->rprev;
    else
        *tail = hc->rprev;
    hc->rprev = hc->rnext = NULL;
    hc->queued = hc->hs_queued = false;
}

static void on_idle(uv_idle_t *h);
static void on_gate_timer(uv_timer_t *t);

/* hc joins the end of a queue (its links free); the idle handle runs the queues. */
static void enqueue(struct tt_headconn *hc, struct tt_headconn **head, struct tt_headconn **tail)
{
    hc->rnext = NULL;
    hc->rprev = *tail;
    if (*tail)
        (*tail)->rnext = hc;
    else
        *head = hc;
    *tail = hc;
    if (!uv_is_active((uv_handle_t *)&hc->set->idle))
        uv_idle_start(&hc->set->idle, on_idle);
}

/* Counts one against a per-turn cap (*turn: the turn last counted in, *used: how many in it);
 * false when cap is reached this turn (0: no cap; no turns counted yet: no cap either). */
static bool turn_budget(uint64_t *turn, unsigned *used, unsigned cap)
{
    if (cap == 0)
        return true;
    uint64_t now = tt_acceptcap_turn();
    if (now == 0)
        return true;
    if (now != *turn) {
        *turn = now;
        *used = 0;
    }
    if (*used >= cap)
        return false;
    (*used)++;
    return true;
}

static bool head_budget(struct tt_headconn_set *set)
{
    return turn_budget(&set->turn, &set->turn_heads, set->heads_per_turn);
}

static bool handshake_budget(struct tt_headconn_set *set)
{
    return turn_budget(&set->hs_turn, &set->turn_handshakes, set->handshakes_per_turn);
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* True when the client of conn closed or reset it already (its FIN or RST arrived: whatever it
 * sent before is still to be read, but nobody waits for the answer). One poll, no waiting. */
static bool peer_gone(struct tt_conn *conn)
{
#ifdef POLLRDHUP
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&conn->tcp, &fd) != 0)
        return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
#else
    (void)conn;
    return false;
#endif
}

/* hc's handshake is over (its head is complete, or it goes). */
static void handshake_over(struct tt_headconn *hc)
{
    if (hc->hs_active) {
        hc->hs_active = false;
        hc->set->handshakes_active--;
    }
}

/* Starts reading hc's first bytes (on a TLS set: its handshake follows), unless its client has
 * gone (then hc is dropped, counted). Returns false when hc was freed. */
static bool start_reading(struct tt_headconn *hc)
{
    if (hc->set->tls && peer_gone(hc->conn)) {
        hc->set->handshakes_abandoned++;
        tt_headconn_free(hc);
        return false;
    }
    if (tt_conn_read_start(hc->conn, on_alloc, on_read) != 0) {
        tt_headconn_free(hc);
        return false;
    }
    if (hc->set->tls) {
        hc->hs_active = true;
        hc->read_at = uv_now(hc->conn->tcp.loop);
        hc->set->handshakes_active++;
    }
    return true;
}

/* Whether the owner's gate lets a handshake start now; when not, the idle handle stops and a
 * timer looks again shortly (a gate closed for long must not spin the loop). */
static bool gate_open(struct tt_headconn_set *set)
{
    if (!set->may_start || set->may_start(set, set->ud))
        return true;
    uint64_t window = uv_now(set->idle.loop) / TT_HEADCONN_GATE_WINDOW_MS;
    if (window != set->floor_window) {
        set->floor_window = window;
        set->floor_used = 0;
    }
    if (set->floor_used < TT_HEADCONN_GATE_FLOOR) {
        set->floor_used++;
        return true;
    }
    set->handshakes_gated++;
    if (!uv_is_active((uv_handle_t *)&set->gate_timer))
        uv_timer_start(&set->gate_timer, on_gate_timer, TT_HEADCONN_GATE_RETRY_MS, 0);
    return false;
}

/* The next connection to get its handshake: the oldest, unless it waited past
 * TT_HEADCONN_LIFO_AFTER_MS (then the newest). */
static struct tt_headconn *next_handshake(struct tt_headconn_set *set)
{
    struct tt_headconn *hc = set->hs_head;
    if (uv_now(set->idle.loop) - hc->started >= TT_HEADCONN_LIFO_AFTER_MS)
        hc = set->hs_tail;
    return hc;
}

/* Before the loop polls: the waiting heads, oldest first, as many as this turn's cap allows;
 * each is read again (as it was when its head completed) and handed to the owner. Then the
 * connections waiting for their handshake, oldest first, as many as that cap allows. */
static void on_idle(uv_idle_t *h)
{
    struct tt_headconn_set *set = h->data;
    while (set->ready_head && head_budget(set)) {
        struct tt_headconn *hc = set->ready_head;
        unqueue(hc);
        if (tt_conn_read_start(hc->conn, on_alloc, on_read) != 0) {
            tt_headconn_free(hc);
            continue;
        }
        set->on_head(hc, set->ud);
    }
    bool gated = false;
    while (set->hs_head && !(gated = !gate_open(set)) && handshake_budget(set)) {
        struct tt_headconn *hc = next_handshake(set);
        unqueue(hc);
        start_reading(hc);
    }
    /* nothing to run now: the gate's timer (or a new connection) starts the idle again */
    if (!set->ready_head && (!set->hs_head || gated))
        uv_idle_stop(h);
}

static void on_gate_timer(uv_timer_t *t)
{
    struct tt_headconn_set *set = t->data;
    if (set->hs_head && !uv_is_active((uv_handle_t *)&set->idle))
        uv_idle_start(&set->idle, on_idle);
}

static void unlink_hc(struct tt_headconn *hc)
{
    struct tt_headconn_set *set = hc->set;
    if (hc->prev)
        hc->prev->next = hc->next;
    else if (set->list == hc)
        set->list = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    hc->prev = hc->next = NULL;
}

void tt_headconn_free(struct tt_headconn *hc)
{
    if (hc->on_drop) {
        void (*cb)(struct tt_headconn *, void *) = hc->on_drop;
        hc->on_drop = NULL;
        cb(hc, hc->drop_ud);
    }
    unlink_hc(hc);
    unqueue(hc);
    handshake_over(hc);
    if (hc->set->limits)
        tt_limits_leave(hc->set->limits, &hc->lim);
    if (hc->conn)
        tt_respond_drop(hc->conn);
    tt_chunk_put(hc->buf);
    free(hc->owner_data);
    free(hc);
}

struct tt_conn *tt_headconn_take(struct tt_headconn *hc)
{
    struct tt_conn *conn = hc->conn;
    if (hc->set->limits)
        tt_limits_leave(hc->set->limits, &hc->lim);
    tt_conn_read_stop(conn);
    conn->tcp.data = NULL;
    hc->conn = NULL;
    return conn;
}

void tt_headconn_respond(struct tt_headconn *hc, const void *data, size_t len)
{
    tt_respond_close(tt_headconn_take(hc), data, len);
    tt_headconn_free(hc);
}

static void respond_page(struct tt_headconn *hc, enum tt_page page)
{
    char out[TT_PAGE_MAX];
    int n = tt_pages_render(out, sizeof(out), page);
    TT_LOG(TT_LOG_DEBUG, "bad request peer=%s:%u status=%d", hc->peer_ip, hc->peer_port,
           tt_pages_status(page));
    tt_headconn_respond(hc, out, n > 0 ? (size_t)n : 0);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct tt_headconn *hc = h->data;
    (void)size;
    if (!hc->buf) {
        hc->buf = tt_chunk_get();
        if (!hc->buf) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        hc->data = hc->buf->data;
        tt_headparse_begin(&hc->hp, hc->buf->data);
    }
    size_t end = hc->on_body ? hc->want : TT_HEAD_MAX;
    *buf = uv_buf_init((char *)hc->buf->data + hc->len, (unsigned)(end - hc->len));
}

/* The rate limit of a set's TLS log lines: true when one may be written now; *skipped gets how
 * many were not written since the last one. */
static bool may_log(struct tt_headconn_set *set, uint64_t now, uint64_t *skipped)
{
    if (set->log_window_at == 0 || now - set->log_window_at >= TT_LIMITS_LOG_EVERY_MS) {
        set->log_window_at = now ? now : 1;
        set->log_in_window = 0;
    }
    if (set->log_in_window >= TT_HEADCONN_LOG_BURST) {
        set->log_skipped++;
        return false;
    }
    set->log_in_window++;
    *skipped = set->log_skipped;
    set->log_skipped = 0;
    return true;
}

/* A failed handshake (why: OpenSSL's words, or what the first bytes were), logged. */
static void tls_failed(struct tt_headconn *hc, const char *why)
{
    uint64_t skipped;
    hc->set->tls_failed++;
    if (tt_log_level >= TT_LOG_INFO && may_log(hc->set, uv_now(hc->conn->tcp.loop), &skipped))
        TT_LOG(TT_LOG_INFO, "tls handshake failed peer=%s:%u reason=\"%s\" not_logged=%llu",
               hc->peer_ip, hc->peer_port, TT_LOG_E(why), (unsigned long long)skipped);
}

/* The first bytes on a TLS listener (data[0..n)): a TLS record goes to OpenSSL, plain HTTP gets
 * the 400 page, anything else is dropped. Returns true when hc is still reading its head. */
static bool sniff(struct tt_headconn *hc, const uint8_t *data, size_t n)
{
    hc->sniff = false;
    if (data[0] == 0x16) {
        tt_conn_read_stop(hc->conn);
        if (tt_tls_accept_pre(hc->conn, hc->set->tls, data, n) != 0 ||
            tt_conn_read_start(hc->conn, on_alloc, on_read) != 0) {
            tt_headconn_free(hc);
            return false;
        }
        return true;
    }
    if (data[0] >= 'A' && data[0] <= 'Z') {
        uint64_t skipped;
        hc->set->plain_http++;
        if (tt_log_level >= TT_LOG_INFO && may_log(hc->set, uv_now(hc->conn->tcp.loop), &skipped))
            TT_LOG(TT_LOG_INFO, "plain http on the tls port peer=%s:%u status=400 not_logged=%llu",
                   hc->peer_ip, hc->peer_port, (unsigned long long)skipped);
        char out[TT_PAGE_MAX];
        int len = tt_pages_render(out, sizeof(out), TT_PAGE_HTTP_ON_TLS);
        tt_headconn_respond(hc, out, len > 0 ? (size_t)len : 0);
        return false;
    }
    char why[64];
    snprintf(why, sizeof(why), "not a TLS record (first byte 0x%02x)", data[0]);
    tls_failed(hc, why);
    tt_headconn_free(hc);
    return false;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tt_headconn *hc = s->data;
    (void)buf;
    if (nread == UV_ENOBUFS || nread < 0) {
        if (nread == UV_EPROTO && hc->conn->tls)
            tls_failed(hc, tt_tls_error(hc->conn));
        tt_headconn_free(hc);
        return;
    }
    if (nread == 0)
        return;
    if (hc->sniff) {
        sniff(hc, hc->buf->data + hc->len, (size_t)nread); /* reads again through TLS */
        return;
    }
    if (hc->on_body) {
        hc->len += (size_t)nread;
        if (hc->len >= hc->want) {
            tt_conn_read_stop(hc->conn);
            hc->on_body(hc, hc->set->ud);
        }
        return;
    }
    enum tt_headparse_event ev;
    size_t r = tt_headparse_execute(&hc->hp, hc->buf->data + hc->len, (size_t)nread, &ev);
    if (ev == TT_HEADPARSE_HEAD) {
        struct tt_headconn_set *set = hc->set;
        handshake_over(hc);
        hc->headlen = hc->len + r;
        hc->len += (size_t)nread;
        if (!set->ready_head && head_budget(set)) {
            set->on_head(hc, set->ud);
            return;
        }
        /* the cap is reached this turn (or heads wait already): this one waits its turn */
        tt_conn_read_stop(hc->conn);
        hc->queued = true;
        enqueue(hc, &set->ready_head, &set->ready_tail);
        set->heads_deferred++;
        return;
    }
    hc->len += (size_t)nread;
    if (ev == TT_HEADPARSE_ERROR) {
        enum tt_http_refusal why = (enum tt_http_refusal)hc->hp.reason;
        if (why == TT_REFUSAL_NONE)
            why = hc->hp.err == TETHER_ERR_TOO_LARGE ? TT_REFUSAL_TOO_LARGE : TT_REFUSAL_SYNTAX;
        respond_page(hc, tt_httpstats_refuse(why));
    } else if (hc->len >= TT_HEAD_MAX) {
        respond_page(hc, tt_httpstats_refuse(TT_REFUSAL_TOO_LARGE));
    }
}

static void on_timer(uv_timer_t *t)
{
    struct tt_headconn_set *set = t->data;
    uint64_t now = uv_now(t->loop);
    struct tt_headconn *hc = set->list;
    while (hc) {
        struct tt_headconn *next = hc->next;
        if (hc->hs_active && now - hc->read_at >= TT_HEADCONN_ACTIVE_MAX_MS)
            handshake_over(hc);
        if (now - hc->started >= set->timeout_ms) {
            TT_LOG(TT_LOG_DEBUG, "request head timeout peer=%s:%u", hc->peer_ip, hc->peer_port);
            if (set->limits)
                set->limits->timeouts[TT_LIMITS_TIMEOUT_HEAD]++;
            tt_headconn_free(hc);
        }
        hc = next;
    }
}

int tt_headconn_set_init(struct tt_headconn_set *set, uv_loop_t *loop, tt_headconn_cb on_head,
                         void *ud)
{
    memset(set, 0, sizeof(*set));
    set->on_head = on_head;
    set->ud = ud;
    set->timeout_ms = TT_HEADCONN_TIMEOUT_MS;
    uv_idle_init(loop, &set->idle);
    set->idle.data = set;
    uv_timer_init(loop, &set->gate_timer);
    set->gate_timer.data = set;
    int rc = uv_timer_init(loop, &set->timer);
    if (rc)
        return rc;
    set->timer.data = set;
    uv_timer_start(&set->timer, on_timer, 1000, 1000);
    uv_unref((uv_handle_t *)&set->timer);
    return 0;
}

void tt_headconn_set_close(struct tt_headconn_set *set)
{
    if (set->closed)
        return;
    set->closed = true;
    while (set->list)
        tt_headconn_free(set->list);
    uv_close((uv_handle_t *)&set->timer, NULL);
    uv_close((uv_handle_t *)&set->idle, NULL);
    uv_close((uv_handle_t *)&set->gate_timer, NULL);
}

static void peer_name(uv_tcp_t *tcp, char ip[64], uint16_t *port)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    ip[0] = '\0';
    *port = 0;
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        uv_ip4_name(in, ip, 64);
        *port = ntohs(in->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(in6, ip, 64);
        *port = ntohs(in6->sin6_port);
    }
}

/* Shed to make room for newer connections (limits.h): closed without a word. */
static void shed(struct tt_limits_conn *c)
{
    struct tt_headconn *hc =
        (struct tt_headconn *)(void *)((char *)c - offsetof(struct tt_headconn, lim));
    tt_headconn_free(hc);
}

int tt_headconn_accept(struct tt_headconn_set *set, uv_stream_t *server)
{
    struct tt_conn *conn;
    if (tt_conn_new(&conn, server->loop) != 0)
        return TETHER_ERR_NOMEM;
    if (uv_accept(server, (uv_stream_t *)&conn->tcp) != 0) {
        tt_respond_drop(conn);
        return TETHER_ERR_IO;
    }
    struct tt_headconn *hc = calloc(1, sizeof(*hc));
    if (!hc || set->closed) {
        free(hc);
        tt_respond_drop(conn);
        return TETHER_ERR_NOMEM;
    }
    hc->set = set;
    hc->lim.shed = shed;
    /* Counted before anything else is spent on it: a refused one costs an accept and a close. */
    if (set->limits && tt_limits_admit(set->limits, &hc->lim, &conn->tcp, true) != 0) {
        free(hc);
        tt_respond_drop(conn);
        return TETHER_ERR_CAPACITY;
    }
    hc->sniff = set->tls != NULL; /* the TLS session comes with the first bytes (sniff) */
    uv_tcp_nodelay(&conn->tcp, 1);
    hc->conn = conn;
    conn->tcp.data = hc;
    hc->started = uv_now(server->loop);
    peer_name(&conn->tcp, hc->peer_ip, &hc->peer_port);
    tt_headparse_init(&hc->hp);
    hc->next = set->list;
    if (set->list)
        set->list->prev = hc;
    set->list = hc;
    /* a TLS connection past this turn's handshakes (or behind others that wait) waits, unread */
    if (hc->sniff && (set->hs_head || !gate_open(set) || !handshake_budget(set))) {
        hc->hs_queued = true;
        set->handshakes_waiting++;
        set->handshakes_deferred++;
        enqueue(hc, &set->hs_head, &set->hs_tail);
        return 0;
    }
    return start_reading(hc) ? 0 : TETHER_ERR_IO;
}

int tt_headconn_read_again(struct tt_headconn *hc)
{
    return tt_conn_read_start(hc->conn, on_alloc, on_read) == 0 ? 0 : TETHER_ERR_IO;
}

size_t tt_headconn_body_len(const struct tt_headconn *hc)
{
    return (hc->hp.p.flags & F_CONTENTLENGTH) ? (size_t)hc->hp.p.content_length : 0;
}

int tt_headconn_read_body(struct tt_headconn *hc, size_t max, tt_headconn_cb on_body)
{
    if (hc->hp.p.flags & F_CHUNKED)
        return TETHER_ERR_HTTP;
    if ((hc->hp.p.flags & F_CONTENTLENGTH) &&
        (hc->hp.p.content_length > max || hc->hp.p.content_length > TT_HEADCONN_BODY_MAX))
        return TETHER_ERR_TOO_LARGE;
    hc->want = hc->headlen + tt_headconn_body_len(hc);
    if (hc->len >= hc->want)
        return 1;
    hc->on_body = on_body;
    return 0;
}
