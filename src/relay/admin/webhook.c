/* webhook.c - delivery of device events to the --webhook receivers (webhook.h): one FIFO per
 * receiver, one request at a time each, retried with back-off; at shutdown, what is queued is
 * delivered for at most TT_WEBHOOK_FLUSH_MS, each event tried once, then dropped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tether_err.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/tls.h"
#include "relay/admin/webhook.h"

struct event {
    struct event *next;
    uint64_t at;    /* when it was queued (uv_now): it is given up max_age_ms later */
    size_t len;     /* of the request: head and body */
    char event[16]; /* for the log */
    char req[];     /* head and body */
};

struct call;

struct target {
    struct tt_webhooks *w;
    size_t index; /* 1-based, for logs and metrics: URLs may carry a secret, so never logged */
    struct tt_webhook_url url;
    struct event *head, *tail;
    size_t n;
    uv_timer_t timer;  /* the request's timeout while one is under way, else the next retry */
    bool waiting;      /* the timer counts down to a retry */
    unsigned attempt;  /* failed attempts of the head event */
    struct call *call; /* the request under way, or NULL */
};

struct tt_webhooks {
    uv_loop_t *loop;
    struct target t[TT_WEBHOOK_MAX_URLS];
    size_t nt;
    uint8_t secret[TT_WEBHOOK_SECRET_MAX];
    size_t secretlen;
    char node[TT_WEBHOOK_SECRET_MAX];
    size_t queued, queue_max;
    uint64_t max_age_ms;
    struct tt_tls_ctx *tls; /* for https:// receivers (made at start) */
    bool stopping;          /* tt_webhooks_stop: no new events; the queues are being flushed */
    bool closed;            /* the flush is over: no request, no timer */
    uv_timer_t flush;       /* the flush's deadline (TT_WEBHOOK_FLUSH_MS) */
    bool flush_init;
    uint64_t shutdown_dropped; /* events the flush did not deliver */
    struct tt_webhook_stats st;
};

/* One attempt to deliver the head event of a target. Owned by the target while t is set; an
 * abandoned call (t NULL) frees itself once its libuv request or connection has finished. */
struct call {
    struct target *t;
    struct event *ev; /* the target's head (still owned by the target's queue) */
    bool resolving;   /* uv_getaddrinfo under way: its callback frees an abandoned call */
    uv_getaddrinfo_t gai;
    struct tt_conn *conn; /* once connecting: closing it frees the call */
    uv_connect_t creq;
    uv_write_t wreq;
    struct tt_webhook_resp resp;
    char rbuf[2048];
};

static void kick(struct target *t);
static void flush_check(struct tt_webhooks *w);

static void call_free_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Ends c: the connection closes (then c is freed) or c is freed now. */
static void call_end(struct call *c)
{
    c->t = NULL;
    if (c->conn)
        tt_conn_close(c->conn, call_free_closed);
    else if (c->resolving)
        uv_cancel((uv_req_t *)&c->gai); /* on_resolved frees it */
    else
        free(c);
}

static void on_timer(uv_timer_t *h);

static void pop(struct target *t)
{
    struct event *e = t->head;
    t->head = e->next;
    if (!t->head)
        t->tail = NULL;
    t->n--;
    t->w->queued--;
    free(e);
    t->attempt = 0;
}

/* The attempt of t's call ended: status is the receiver's answer, or -1 when there was none. */
static void finish(struct target *t, int status, const char *why)
{
    struct tt_webhooks *w = t->w;
    struct call *c = t->call;
    t->call = NULL;
    uv_timer_stop(&t->timer);
    if (c)
        call_end(c);
    if (status >= 200 && status <= 299) {
        w->st.ok++;
        w->st.delivered++;
        TT_LOG(TT_LOG_DEBUG, "webhook delivered url=%zu event=%s status=%d", t->index,
               t->head->event, status);
        pop(t);
        kick(t);
        flush_check(w);
        return;
    }
    w->st.failed++;
    if (w->stopping) {
        /* shutting down: no retry (the flush has a deadline), the event is dropped */
        TT_LOG(TT_LOG_DEBUG, "webhook failed at shutdown url=%zu event=%s status=%d err=\"%s\"",
               t->index, t->head->event, status, why);
        w->st.dropped++;
        w->shutdown_dropped++;
        pop(t);
        /* the next event on the next loop turn, not from here: a call that fails at once (a
         * host that does not resolve) would otherwise recurse once per queued event */
        if (t->head) {
            t->waiting = true;
            uv_timer_start(&t->timer, on_timer, 0, 0);
        }
        flush_check(w);
        return;
    }
    t->attempt++;
    uint32_t rnd = 0;
    tt_random_bytes(&rnd, sizeof(rnd));
    uint64_t delay = tt_webhook_backoff(t->attempt, rnd);
    if (status > 0)
        TT_LOG(TT_LOG_WARN, "webhook failed url=%zu event=%s status=%d attempt=%u retry_ms=%llu",
               t->index, t->head->event, status, t->attempt, (unsigned long long)delay);
    else
        TT_LOG(TT_LOG_WARN, "webhook failed url=%zu event=%s err=\"%s\" attempt=%u retry_ms=%llu",
               t->index, t->head->event, why, t->attempt, (unsigned long long)delay);
    t->waiting = true;
    uv_timer_start(&t->timer, on_timer, delay, 0);
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct call *c = h->data;
    (void)size;
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct call *c = s->data;
    if (!c->t || nread == 0)
        return;
    int st = tt_webhook_resp_feed(&c->resp, buf->base, nread > 0 ? (size_t)nread : 0, nread < 0);
    if (st != 0)
        finish(c->t, st, st < 0 ? "no HTTP answer" : "");
}

static void on_write(uv_write_t *req, int status)
{
    struct call *c = req->data;
    if (c->t && status < 0)
        finish(c->t, -1, uv_strerror(status));
}

static void send_request(struct call *c)
{
    c->conn->tcp.data = c;
    c->wreq.data = c;
    uv_buf_t b = uv_buf_init(c->ev->req, (unsigned)c->ev->len);
    int rc = tt_conn_write(c->conn, &c->wreq, &b, 1, on_write);
    if (rc == 0)
        rc = tt_conn_read_start(c->conn, on_alloc, on_read);
    if (rc != 0)
        finish(c->t, -1, uv_strerror(rc));
}

static void on_tls(struct tt_conn *conn, int err, const char *msg, void *ud)
{
    struct call *c = ud;
    (void)conn;
    if (!c->t)
        return;
    if (err) {
        char why[TT_ERRLEN];
        snprintf(why, sizeof(why), "tls: %s", msg ? msg : "handshake failed");
        finish(c->t, -1, why);
        return;
    }
    send_request(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct call *c = req->data;
    if (!c->t)
        return;
    if (status < 0) {
        finish(c->t, -1, uv_strerror(status));
        return;
    }
    if (c->t->url.tls) {
        int rc = tt_tls_connect(c->conn, c->t->w->tls, c->t->url.host, NULL, 0, on_tls, c);
        if (rc != 0)
            finish(c->t, -1, tether_strerror(rc));
        return;
    }
    send_request(c);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct call *c = req->data;
    c->resolving = false;
    if (!c->t) {
        if (res)
            uv_freeaddrinfo(res);
        free(c);
        return;
    }
    if (status < 0 || !res) {
        if (res)
            uv_freeaddrinfo(res);
        finish(c->t, -1, status < 0 ? uv_strerror(status) : "no address");
        return;
    }
    if (tt_conn_new(&c->conn, c->t->w->loop) != 0) {
        uv_freeaddrinfo(res);
        finish(c->t, -1, "out of memory");
        return;
    }
    c->conn->tcp.data = c;
    c->creq.data = c;
    int rc = uv_tcp_connect(&c->creq, &c->conn->tcp, res->ai_addr, on_connect);
    uv_freeaddrinfo(res);
    if (rc != 0)
        finish(c->t, -1, uv_strerror(rc));
}

/* Starts delivering t's head event unless a request or a retry is pending; events past their
 * age go first. */
static void kick(struct target *t)
{
    struct tt_webhooks *w = t->w;
    if (w->closed || t->call || t->waiting)
        return;
    uint64_t now = uv_now(w->loop);
    while (t->head && now - t->head->at >= w->max_age_ms) {
        TT_LOG(TT_LOG_WARN, "webhook event given up url=%zu event=%s attempts=%u", t->index,
               t->head->event, t->attempt);
        w->st.expired++;
        pop(t);
    }
    if (!t->head)
        return;
    struct call *c = calloc(1, sizeof(*c));
    if (!c) {
        t->waiting = true;
        uv_timer_start(&t->timer, on_timer, TT_WEBHOOK_BACKOFF_FIRST_MS, 0);
        return;
    }
    c->t = t;
    c->ev = t->head;
    tt_webhook_resp_init(&c->resp);
    c->gai.data = c;
    t->call = c;
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)t->url.port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    uv_timer_start(&t->timer, on_timer, TT_WEBHOOK_TIMEOUT_MS, 0);
    c->resolving = true;
    int rc = uv_getaddrinfo(w->loop, &c->gai, on_resolved, t->url.host, port, &hints);
    if (rc != 0) {
        c->resolving = false;
        finish(t, -1, uv_strerror(rc));
    }
}

static void on_timer(uv_timer_t *h)
{
    struct target *t = h->data;
    if (t->call) {
        finish(t, -1, "timed out");
        return;
    }
    t->waiting = false;
    kick(t);
}

int tt_webhooks_new(struct tt_webhooks **out, uv_loop_t *loop,
                    const char (*urls)[TT_WEBHOOK_URL_MAX + 1], size_t n, const char *secret,
                    const char *node, size_t queue_max, uint64_t max_age_ms, char err[TT_ERRLEN])
{
    *out = NULL;
    if (n == 0)
        return 0;
    if (n > TT_WEBHOOK_MAX_URLS) {
        snprintf(err, TT_ERRLEN, "--webhook: at most %d URLs", TT_WEBHOOK_MAX_URLS);
        return -1;
    }
    struct tt_webhooks *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(err, TT_ERRLEN, "out of memory");
        return -1;
    }
    w->loop = loop;
    w->queue_max = queue_max;
    w->max_age_ms = max_age_ms;
    if (secret && secret[0]) {
        w->secretlen = strlen(secret);
        if (w->secretlen > sizeof(w->secret))
            w->secretlen = sizeof(w->secret);
        memcpy(w->secret, secret, w->secretlen);
    }
    if (node)
        snprintf(w->node, sizeof(w->node), "%s", node);
    /* everything that can fail first: no handle exists yet when it does */
    bool tls = false;
    for (size_t i = 0; i < n; i++) {
        if (tt_webhook_parse_url(urls[i], &w->t[i].url, err) != 0) {
            tt_webhooks_free(w);
            return -1;
        }
        tls |= w->t[i].url.tls;
    }
    if (tls && tt_tls_ctx_client(&w->tls, NULL, false, err) != 0) {
        tt_webhooks_free(w);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        struct target *t = &w->t[i];
        t->w = w;
        t->index = i + 1;
        uv_timer_init(loop, &t->timer);
        t->timer.data = t;
        uv_unref((uv_handle_t *)&t->timer);
        w->nt++;
    }
    *out = w;
    return 0;
}

/* An event that finds the queues full is dropped for receiver t: counted, and logged at the first
 * drop and every 1000th (a dead receiver floods no log). */
static void drop_full(struct tt_webhooks *w, const struct target *t, const char *event,
                      const char *name)
{
    if (w->st.dropped++ % 1000 == 0)
        TT_LOG(TT_LOG_WARN,
               "webhook queue full, events dropped url=%zu event=%s device=%s dropped_total=%llu",
               t->index, event, TT_LOG_V(name), (unsigned long long)w->st.dropped);
}

void tt_webhook_emit(struct tt_webhooks *w, const char *event, const char *name, const char *label,
                     int64_t now_ms)
{
    if (!w || w->stopping)
        return;
    if (w->queued >= w->queue_max) {
        /* full (e.g. the "offline" of every device at shutdown behind a dead receiver): dropped
         * for every receiver, counted as below, before any body is built or signed */
        for (size_t i = 0; i < w->nt; i++)
            drop_full(w, &w->t[i], event, name);
        return;
    }
    char body[TT_WEBHOOK_BODY_MAX], sig[TT_WEBHOOK_SIG_LEN + 1];
    int blen = tt_webhook_body(event, name, label, w->node[0] ? w->node : NULL, now_ms, body);
    if (blen < 0 ||
        (w->secretlen && tt_webhook_sign(w->secret, w->secretlen, body, (size_t)blen, sig) != 0)) {
        w->st.dropped += w->nt;
        return;
    }
    for (size_t i = 0; i < w->nt; i++) {
        struct target *t = &w->t[i];
        if (w->queued >= w->queue_max) { /* filled by this event's earlier receivers */
            drop_full(w, t, event, name);
            continue;
        }
        char head[TT_WEBHOOK_HEAD_MAX];
        int hlen = tt_webhook_head(&t->url, event, (size_t)blen, w->secretlen ? sig : NULL, head,
                                   sizeof(head));
        struct event *e = hlen < 0 ? NULL : malloc(sizeof(*e) + (size_t)hlen + (size_t)blen);
        if (!e) {
            w->st.dropped++;
            continue;
        }
        e->next = NULL;
        e->at = uv_now(w->loop);
        e->len = (size_t)hlen + (size_t)blen;
        snprintf(e->event, sizeof(e->event), "%s", event);
        memcpy(e->req, head, (size_t)hlen);
        memcpy(e->req + hlen, body, (size_t)blen);
        if (t->tail)
            t->tail->next = e;
        else
            t->head = e;
        t->tail = e;
        t->n++;
        w->queued++;
        kick(t);
    }
}

void tt_webhook_stats(const struct tt_webhooks *w, struct tt_webhook_stats *s)
{
    memset(s, 0, sizeof(*s));
    if (!w)
        return;
    *s = w->st;
    s->queued = w->queued;
    s->queue_max = w->queue_max;
}

/* The flush is over (every queue empty, or the deadline): calls end, what is left is dropped
 * and counted, the timers close. Safe twice. */
static void flush_end(struct tt_webhooks *w)
{
    if (w->closed)
        return;
    w->closed = true;
    for (size_t i = 0; i < w->nt; i++) {
        struct target *t = &w->t[i];
        if (t->call) {
            call_end(t->call);
            t->call = NULL;
        }
        while (t->head) {
            w->st.dropped++;
            w->shutdown_dropped++;
            pop(t);
        }
        uv_close((uv_handle_t *)&t->timer, NULL);
    }
    if (w->flush_init)
        uv_close((uv_handle_t *)&w->flush, NULL);
    if (w->shutdown_dropped)
        TT_LOG(TT_LOG_WARN, "webhook events dropped at shutdown count=%llu",
               (unsigned long long)w->shutdown_dropped);
}

/* During the flush: ends it once every queue is empty. */
static void flush_check(struct tt_webhooks *w)
{
    if (w->stopping && !w->closed && w->queued == 0)
        flush_end(w);
}

static void on_flush_deadline(uv_timer_t *h)
{
    flush_end(h->data);
}

void tt_webhooks_stop(struct tt_webhooks *w)
{
    if (!w || w->stopping)
        return;
    w->stopping = true;
    if (w->queued == 0) {
        flush_end(w);
        return;
    }
    TT_LOG(TT_LOG_INFO, "webhook events to deliver before exit queued=%zu deadline_ms=%d",
           w->queued, TT_WEBHOOK_FLUSH_MS);
    /* referenced: the loop runs until the flush is over (flush_end closes it) */
    uv_timer_init(w->loop, &w->flush);
    w->flush.data = w;
    w->flush_init = true;
    uv_timer_start(&w->flush, on_flush_deadline, TT_WEBHOOK_FLUSH_MS, 0);
    for (size_t i = 0; i < w->nt; i++) {
        struct target *t = &w->t[i];
        if (t->waiting) { /* a retry's back-off: tried now, once */
            uv_timer_stop(&t->timer);
            t->waiting = false;
        }
        kick(t);
    }
    flush_check(w); /* (kick may have given up the last events as too old) */
}

void tt_webhooks_free(struct tt_webhooks *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->nt; i++) {
        struct target *t = &w->t[i];
        while (t->head)
            pop(t);
    }
    tt_tls_ctx_free(w->tls);
    tt_secret_wipe(w->secret, sizeof(w->secret));
    free(w);
}
