/* redisasync.c - the relay's asynchronous, pipelined Redis connection (redisasync.h): hiredis'
 * async context on libuv's loop through hiredis' libuv adapter, a FIFO of pending commands for
 * the cap and the command timeout, and address resolution in libuv's thread pool. */
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libuv.h>
#include "tether_err.h"
#include "common/log.h"
#include "relay/store/redisconn.h"
#include "relay/store/redisasync.h"

enum state { ST_DOWN = 0, ST_CONNECTING = 1, ST_UP = 2 };

/* One command in flight: hiredis' privdata, on the FIFO (Redis answers in order, so the head is
 * the oldest). */
struct pend {
    struct tt_redisasync *ra;
    struct pend *prev, *next;
    tt_redisasync_cb cb;
    void *ud;
    uint64_t t0; /* uv_hrtime() when queued */
};

/* A resolution in the thread pool (the master's address, the host's). ra is NULL once the
 * connection is freed: the result is then dropped. */
struct resolve {
    uv_work_t req;
    struct tt_redisasync *ra;
    struct tt_redis_url url;
    size_t first;
    bool check; /* the periodic sentinel check while UP, not a connection attempt */
    int rc;
    char name[TT_HOSTLEN]; /* the master's host as named */
    char ip[INET6_ADDRSTRLEN + 1];
    uint16_t port;
    char err[TT_ERRLEN];
};

struct tt_redisasync {
    uv_loop_t *loop;
    uv_timer_t tick;
    redisAsyncContext *ac; /* NULL while DOWN */
    enum state st;
    struct tt_redis_url url;       /* sentinel mode: host/port are the master last connected to */
    char ip[INET6_ADDRSTRLEN + 1]; /* the address the next connection goes to */
    uint16_t ip_port;
    bool have_addr;            /* ip is resolved and may be used once */
    struct resolve *resolving; /* in the pool, or NULL */
    bool down_logged;
    bool ever_up;
    unsigned backoff_ms;
    uint64_t retry_at;   /* ms (uv_now) */
    uint64_t connect_at; /* ms when the current attempt started */
    uint64_t check_at;   /* sentinel mode: next check */
    size_t sentinel_first;
    struct pend *head, *tail;
    struct tt_redisasync_stats st_;
};

static const double bucket_s[TT_REDISASYNC_NBUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                        0.025,  0.05,  0.1,    0.5,   1.0};

static uint64_t now_ms(const struct tt_redisasync *ra)
{
    return uv_now(ra->loop);
}

static void fmt_addr(char *out, size_t len, const char *host, uint16_t port)
{
    bool v6 = strchr(host, ':') != NULL;
    snprintf(out, len, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "", (unsigned)port);
}

/* ---- the pending FIFO */

static void pend_unlink(struct tt_redisasync *ra, struct pend *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        ra->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        ra->tail = p->prev;
    p->prev = p->next = NULL;
    ra->st_.pending--;
}

static void pend_link(struct tt_redisasync *ra, struct pend *p)
{
    p->prev = ra->tail;
    p->next = NULL;
    if (ra->tail)
        ra->tail->next = p;
    else
        ra->head = p;
    ra->tail = p;
    ra->st_.pending++;
}

/* ---- failure and connection */

static void start_resolve(struct tt_redisasync *ra, bool check);

/* The connection failed (why): dropped, every pending command completes with NULL, and the next
 * attempt waits for the back-off. */
static void went_down(struct tt_redisasync *ra, const char *why)
{
    redisAsyncContext *ac = ra->ac;
    ra->ac = NULL;
    ra->st = ST_DOWN;
    if (!ra->down_logged) {
        TT_LOG(TT_LOG_ERROR, "redis unreachable addr=%s:%u err=\"%s\" (async); retrying%s",
               ra->url.host, (unsigned)ra->url.port, why,
               ra->url.sentinel ? " through the sentinels" : "");
        ra->down_logged = true;
        ra->backoff_ms = TT_REDIS_BACKOFF_MIN_MS;
    } else if (ra->backoff_ms < TT_REDIS_BACKOFF_MAX_MS) {
        ra->backoff_ms *= 2;
    }
    unsigned max = ra->url.sentinel ? TT_REDIS_SENTINEL_BACKOFF_MAX_MS : TT_REDIS_BACKOFF_MAX_MS;
    if (ra->backoff_ms > max)
        ra->backoff_ms = max;
    ra->retry_at = now_ms(ra) + ra->backoff_ms;
    ra->have_addr = false; /* resolved again (sentinel mode: the sentinels asked again) */
    if (ac)
        redisAsyncFree(ac); /* pending callbacks get NULL (deferred when inside one) */
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct tt_redisasync *ra = ac->data;
    if (ra->ac != ac || status == REDIS_OK)
        return;
    ra->ac = NULL; /* hiredis frees it after this callback */
    went_down(ra, ac->errstr[0] ? ac->errstr : "cannot connect");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct tt_redisasync *ra = ac->data;
    (void)status;
    if (ra->ac != ac)
        return;    /* ours dropped it (went_down) */
    ra->ac = NULL; /* hiredis frees it after this callback */
    went_down(ra, ac->errstr[0] ? ac->errstr : "connection closed");
}

static bool is_err(const redisReply *rep)
{
    return !rep || rep->type == REDIS_REPLY_ERROR;
}

/* Handshake replies: AUTH and ROLE are checked; SELECT's makes the connection UP. */
static void on_auth(redisAsyncContext *ac, void *r, void *pd)
{
    struct tt_redisasync *ra = pd;
    redisReply *rep = r;
    if (ra->ac == ac && rep && is_err(rep))
        went_down(ra, rep->str);
}

static void on_role(redisAsyncContext *ac, void *r, void *pd)
{
    struct tt_redisasync *ra = pd;
    redisReply *rep = r;
    if (ra->ac != ac || !rep)
        return;
    bool ok = rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
              rep->element[0]->type == REDIS_REPLY_STRING &&
              strcmp(rep->element[0]->str, "master") == 0;
    if (!ok)
        went_down(ra, "not the master (ROLE)");
}

static void on_select(redisAsyncContext *ac, void *r, void *pd)
{
    struct tt_redisasync *ra = pd;
    redisReply *rep = r;
    if (ra->ac != ac || !rep)
        return;
    if (is_err(rep)) {
        went_down(ra, rep->str);
        return;
    }
    ra->st = ST_UP;
    ra->backoff_ms = TT_REDIS_BACKOFF_MIN_MS;
    if (ra->url.sentinel)
        ra->check_at = now_ms(ra) + TT_REDIS_SENTINEL_CHECK_MS;
    if (ra->down_logged) {
        ra->down_logged = false;
        ra->st_.reconnects++;
        TT_LOG(TT_LOG_INFO, "redis reachable again addr=%s:%u (async)", ra->url.host,
               (unsigned)ra->url.port);
    } else if (!ra->ever_up) {
        TT_LOG(TT_LOG_DEBUG, "redis async connection up addr=%s:%u", ra->url.host,
               (unsigned)ra->url.port);
    }
    ra->ever_up = true;
}

/* Starts a connection to the resolved address: TCP, then AUTH, ROLE, SELECT pipelined. */
static void connect_now(struct tt_redisasync *ra)
{
    ra->have_addr = false;
    ra->connect_at = now_ms(ra);
    redisAsyncContext *ac = redisAsyncConnect(ra->ip, ra->ip_port);
    if (!ac) {
        went_down(ra, "out of memory");
        return;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof(why), "%s", ac->errstr);
        redisAsyncFree(ac);
        went_down(ra, why);
        return;
    }
    ac->data = ra;
    if (redisLibuvAttach(ac, ra->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        went_down(ra, "cannot watch the socket");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    ra->ac = ac;
    ra->st = ST_CONNECTING;
    const struct tt_redis_url *u = &ra->url;
    if (u->password[0])
        redisAsyncCommand(ac, on_auth, ra, "AUTH %s", u->password);
    if (u->sentinel)
        redisAsyncCommand(ac, on_role, ra, "ROLE");
    redisAsyncCommand(ac, on_select, ra, "SELECT %u", u->db);
}

/* In the pool: the master's address (sentinel mode), then the host's IP address. */
static void resolve_work(uv_work_t *req)
{
    struct resolve *w = req->data;
    w->rc = 0;
    if (w->url.sentinel) {
        if (tt_redisconn_ask_sentinels(&w->url, &w->first, w->name, &w->port, w->err) != 0) {
            w->rc = -1;
            return;
        }
    } else {
        snprintf(w->name, sizeof(w->name), "%s", w->url.host);
        w->port = w->url.port;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(w->name, NULL, &hints, &res);
    if (g != 0 || !res) {
        snprintf(w->err, sizeof(w->err), "cannot resolve %.100s: %s", w->name, gai_strerror(g));
        w->rc = -1;
    } else if (getnameinfo(res->ai_addr, res->ai_addrlen, w->ip, sizeof(w->ip), NULL, 0,
                           NI_NUMERICHOST) != 0) {
        snprintf(w->err, sizeof(w->err), "cannot resolve %.100s", w->name);
        w->rc = -1;
    }
    if (res)
        freeaddrinfo(res);
}

/* Takes a resolution's answer: sentinel mode notes a new master (and moves to it when UP). */
static void use_answer(struct tt_redisasync *ra, struct resolve *w)
{
    ra->sentinel_first = w->first;
    snprintf(ra->ip, sizeof(ra->ip), "%s", w->ip);
    ra->ip_port = w->port;
    ra->have_addr = true;
    if (!ra->url.sentinel)
        return;
    bool moved = ra->url.host[0] && (strcmp(ra->url.host, w->name) != 0 || ra->url.port != w->port);
    if (moved) {
        char at[TT_HOSTLEN + 16], was[TT_HOSTLEN + 16];
        fmt_addr(at, sizeof(at), w->name, w->port);
        fmt_addr(was, sizeof(was), ra->url.host, ra->url.port);
        ra->st_.master_changes++;
        TT_LOG(TT_LOG_WARN, "redis master is %s (was %s) master_name=%s (async)", at, was,
               ra->url.master);
    }
    snprintf(ra->url.host, sizeof(ra->url.host), "%s", w->name);
    ra->url.port = w->port;
    if (moved && ra->ac) {
        /* the connection goes to the new master; what was in flight on the old gets NULL */
        redisAsyncContext *ac = ra->ac;
        ra->ac = NULL;
        ra->st = ST_DOWN;
        redisAsyncFree(ac);
    }
}

static void resolve_done(uv_work_t *req, int status)
{
    struct resolve *w = req->data;
    struct tt_redisasync *ra = w->ra;
    if (!ra) { /* freed meanwhile */
        free(w);
        return;
    }
    ra->resolving = NULL;
    if (status != 0) {
        w->rc = -1;
        snprintf(w->err, sizeof(w->err), "%s", uv_strerror(status));
    }
    if (w->check) {
        if (w->rc == 0)
            use_answer(ra, w);
        else
            TT_LOG(TT_LOG_DEBUG, "redis sentinel check: %s (async)", w->err);
        ra->check_at = now_ms(ra) + TT_REDIS_SENTINEL_CHECK_MS;
        if (ra->st == ST_DOWN && ra->have_addr)
            connect_now(ra);
        free(w);
        return;
    }
    if (w->rc != 0)
        went_down(ra, w->err);
    else {
        use_answer(ra, w);
        connect_now(ra);
    }
    free(w);
}

/* Resolves the address in the pool (check: the sentinel check while UP). */
static void start_resolve(struct tt_redisasync *ra, bool check)
{
    struct resolve *w = calloc(1, sizeof(*w));
    if (!w) {
        if (!check)
            went_down(ra, "out of memory");
        return;
    }
    w->ra = ra;
    w->url = ra->url;
    w->first = ra->sentinel_first;
    w->check = check;
    w->req.data = w;
    if (uv_queue_work(ra->loop, &w->req, resolve_work, resolve_done) != 0) {
        free(w);
        if (!check)
            went_down(ra, "cannot queue the resolution");
        return;
    }
    ra->resolving = w;
}

/* The timer: connect timeout, command timeout, reconnection, the sentinel check. */
static void on_tick(uv_timer_t *t)
{
    struct tt_redisasync *ra = t->data;
    uint64_t now = now_ms(ra);
    if (ra->st == ST_CONNECTING && now - ra->connect_at >= TT_REDISASYNC_CONNECT_MS) {
        ra->st_.timeouts++;
        went_down(ra, "connect timeout");
    } else if (ra->ac && ra->head &&
               (uv_hrtime() - ra->head->t0) / 1000000 >= TT_REDISASYNC_TIMEOUT_MS) {
        ra->st_.timeouts++;
        went_down(ra, "command timeout");
    }
    if (ra->st == ST_DOWN && !ra->ac && !ra->resolving && now >= ra->retry_at) {
        if (ra->have_addr)
            connect_now(ra);
        else
            start_resolve(ra, false);
    } else if (ra->st == ST_UP && ra->url.sentinel && !ra->resolving && now >= ra->check_at) {
        ra->check_at = now + TT_REDIS_SENTINEL_CHECK_MS; /* again when this one is answered */
        start_resolve(ra, true);
    }
}

/* ---- commands */

static void observe(struct tt_redisasync *ra, uint64_t t0)
{
    double s = (double)(uv_hrtime() - t0) / 1e9;
    size_t i = 0;
    while (i < TT_REDISASYNC_NBUCKETS && s > bucket_s[i])
        i++;
    ra->st_.buckets[i]++;
    ra->st_.reply_sum += s;
}

static void on_reply(redisAsyncContext *ac, void *r, void *pd)
{
    struct pend *p = pd;
    struct tt_redisasync *ra = p->ra;
    redisReply *rep = r;
    pend_unlink(ra, p);
    if (rep) {
        ra->st_.commands++;
        observe(ra, p->t0);
        if (rep->type == REDIS_REPLY_ERROR)
            TT_LOG(TT_LOG_WARN, "redis error err=\"%.200s\" (async)", rep->str);
    } else {
        ra->st_.failed++;
    }
    tt_redisasync_cb cb = p->cb;
    void *ud = p->ud;
    free(p);
    cb(rep, ud);
    if (rep && rep->type == REDIS_REPLY_ERROR && ra->url.sentinel && ra->ac == ac &&
        strstr(rep->str, "READONLY")) {
        ra->st_.readonly++;
        TT_LOG(TT_LOG_WARN, "redis at %s:%u refused a write (READONLY); asking the sentinels",
               ra->url.host, (unsigned)ra->url.port);
        went_down(ra, "READONLY");
        ra->retry_at = 0;
    }
}

/* A pending record for cb, or an error (the cap, DOWN). */
static int admit(struct tt_redisasync *ra, tt_redisasync_cb cb, void *ud, struct pend **out)
{
    if (!ra->ac) {
        ra->st_.refused++;
        return TETHER_ERR_IO;
    }
    if (ra->st_.pending >= ra->st_.max_pending) {
        ra->st_.full++;
        return TETHER_ERR_CAPACITY;
    }
    struct pend *p = calloc(1, sizeof(*p));
    if (!p)
        return TETHER_ERR_NOMEM;
    p->ra = ra;
    p->cb = cb;
    p->ud = ud;
    p->t0 = uv_hrtime();
    *out = p;
    return 0;
}

int tt_redisasync_argv(struct tt_redisasync *ra, int argc, const char **argv, const size_t *lens,
                       tt_redisasync_cb cb, void *ud)
{
    struct pend *p;
    int rc = admit(ra, cb, ud, &p);
    if (rc)
        return rc;
    if (redisAsyncCommandArgv(ra->ac, on_reply, p, argc, argv, lens) != REDIS_OK) {
        free(p);
        ra->st_.refused++;
        return TETHER_ERR_IO;
    }
    pend_link(ra, p);
    return 0;
}

int tt_redisasync_cmd(struct tt_redisasync *ra, tt_redisasync_cb cb, void *ud, const char *fmt, ...)
{
    struct pend *p;
    int rc = admit(ra, cb, ud, &p);
    if (rc)
        return rc;
    va_list ap;
    va_start(ap, fmt);
    int ok = redisvAsyncCommand(ra->ac, on_reply, p, fmt, ap);
    va_end(ap);
    if (ok != REDIS_OK) {
        free(p);
        ra->st_.refused++;
        return TETHER_ERR_IO;
    }
    pend_link(ra, p);
    return 0;
}

/* ---- the rest */

int tt_redisasync_new(struct tt_redisasync **out, uv_loop_t *loop, const struct tt_redis_url *u,
                      size_t max_pending, char err[TT_ERRLEN])
{
    struct tt_redisasync *ra = calloc(1, sizeof(*ra));
    *out = NULL;
    if (!ra) {
        snprintf(err, TT_ERRLEN, "out of memory");
        return -1;
    }
    ra->loop = loop;
    ra->url = *u;
    ra->st_.max_pending = max_pending ? max_pending : TT_REDISASYNC_MAX_PENDING;
    ra->backoff_ms = TT_REDIS_BACKOFF_MIN_MS;
    /* the first address, blocking (start-up) */
    struct resolve w;
    memset(&w, 0, sizeof(w));
    w.url = *u;
    w.req.data = &w;
    resolve_work(&w.req);
    if (w.rc != 0) {
        snprintf(err, TT_ERRLEN, "%s", w.err);
        free(ra);
        return -1;
    }
    if (uv_timer_init(loop, &ra->tick) != 0) {
        snprintf(err, TT_ERRLEN, "cannot start a timer");
        free(ra);
        return -1;
    }
    ra->tick.data = ra;
    uv_timer_start(&ra->tick, on_tick, TT_REDISASYNC_TICK_MS, TT_REDISASYNC_TICK_MS);
    uv_unref((uv_handle_t *)&ra->tick);
    ra->url.host[0] = u->sentinel ? '\0' : ra->url.host[0]; /* sentinel: no master yet */
    use_answer(ra, &w);
    connect_now(ra);
    *out = ra;
    return 0;
}

bool tt_redisasync_up(const struct tt_redisasync *ra)
{
    return ra && ra->st == ST_UP;
}

bool tt_redisasync_busy(const struct tt_redisasync *ra, size_t n)
{
    return ra && (ra->st_.pending + n) * 100 > ra->st_.max_pending * TT_REDISASYNC_ADMIT_PCT;
}

void tt_redisasync_stats(const struct tt_redisasync *ra, struct tt_redisasync_stats *st)
{
    *st = ra->st_;
    st->up = ra->st == ST_UP;
}

static int add(char *out, size_t outlen, size_t *len, const char *fmt, ...) TT_PRINTF(4, 5);

static int add(char *out, size_t outlen, size_t *len, const char *fmt, ...)
{
    va_list ap;
    if (*len >= outlen)
        return -1;
    va_start(ap, fmt);
    int n = vsnprintf(out + *len, outlen - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= outlen - *len) {
        *len = outlen - 1;
        return -1;
    }
    *len += (size_t)n;
    return 0;
}

int tt_redisasync_metrics(const struct tt_redisasync *ra, char *out, size_t outlen, size_t *len)
{
    struct tt_redisasync_stats s;
    tt_redisasync_stats(ra, &s);
    int rc = add(out, outlen, len,
                 "# HELP tether_redis_async_up 1 while the asynchronous Redis connection is up.\n"
                 "# TYPE tether_redis_async_up gauge\ntether_redis_async_up %d\n"
                 "# HELP tether_redis_pending Redis commands in flight (sent, not answered).\n"
                 "# TYPE tether_redis_pending gauge\ntether_redis_pending %zu\n"
                 "# HELP tether_redis_pending_max The cap on Redis commands in flight "
                 "(--redis-max-pending).\n"
                 "# TYPE tether_redis_pending_max gauge\ntether_redis_pending_max %zu\n"
                 "# HELP tether_redis_pending_full_total Redis commands refused at the cap.\n"
                 "# TYPE tether_redis_pending_full_total counter\n"
                 "tether_redis_pending_full_total %llu\n"
                 "# HELP tether_redis_commands_total Redis commands answered (async).\n"
                 "# TYPE tether_redis_commands_total counter\ntether_redis_commands_total %llu\n"
                 "# HELP tether_redis_failed_total Redis commands that got no answer (async).\n"
                 "# TYPE tether_redis_failed_total counter\ntether_redis_failed_total %llu\n"
                 "# HELP tether_redis_timeouts_total Async Redis connections dropped on a "
                 "command or connect timeout.\n"
                 "# TYPE tether_redis_timeouts_total counter\ntether_redis_timeouts_total %llu\n"
                 "# HELP tether_redis_async_reconnects_total Async Redis connections up again "
                 "after a failure.\n"
                 "# TYPE tether_redis_async_reconnects_total counter\n"
                 "tether_redis_async_reconnects_total %llu\n"
                 "# HELP tether_redis_reply_seconds Time from queueing a Redis command to its "
                 "reply.\n# TYPE tether_redis_reply_seconds histogram\n",
                 s.up ? 1 : 0, s.pending, s.max_pending, (unsigned long long)s.full,
                 (unsigned long long)s.commands, (unsigned long long)s.failed,
                 (unsigned long long)s.timeouts, (unsigned long long)s.reconnects);
    uint64_t cum = 0;
    for (size_t i = 0; i < TT_REDISASYNC_NBUCKETS && rc == 0; i++) {
        cum += s.buckets[i];
        rc = add(out, outlen, len, "tether_redis_reply_seconds_bucket{le=\"%g\"} %llu\n",
                 bucket_s[i], (unsigned long long)cum);
    }
    cum += s.buckets[TT_REDISASYNC_NBUCKETS];
    if (rc == 0)
        rc = add(out, outlen, len,
                 "tether_redis_reply_seconds_bucket{le=\"+Inf\"} %llu\n"
                 "tether_redis_reply_seconds_sum %.6f\ntether_redis_reply_seconds_count %llu\n",
                 (unsigned long long)cum, s.reply_sum, (unsigned long long)cum);
    return rc;
}

static void on_tick_closed(uv_handle_t *h)
{
    free(h->data);
}

void tt_redisasync_free(struct tt_redisasync *ra)
{
    if (!ra)
        return;
    if (ra->resolving)
        ra->resolving->ra = NULL; /* freed by its completion */
    ra->resolving = NULL;
    redisAsyncContext *ac = ra->ac;
    ra->ac = NULL;
    ra->st = ST_DOWN;
    if (ac)
        redisAsyncFree(ac); /* every pending callback gets NULL now */
    uv_close((uv_handle_t *)&ra->tick, on_tick_closed);
}
