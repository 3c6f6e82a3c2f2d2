/* redisconn.c - the relay's synchronous Redis connection with timeouts and back-off
 * (redisconn.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "common/log.h"
#include "relay/store/redisconn.h"

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static struct timeval tv_ms(unsigned ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    return tv;
}

/* "HOST:PORT", IPv6 in brackets. */
static void fmt_addr(char *out, size_t len, const char *host, uint16_t port)
{
    bool v6 = strchr(host, ':') != NULL;
    snprintf(out, len, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "", (unsigned)port);
}

/* A master address as a sentinel may give it: an IP address or a host name, nothing else
 * (it goes into log lines and to the resolver). */
static bool host_ok(const redisReply *e)
{
    if (e->len == 0 || e->len >= TT_HOSTLEN || strlen(e->str) != e->len)
        return false;
    for (size_t i = 0; i < e->len; i++) {
        unsigned char ch = (unsigned char)e->str[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == ':' || ch == '_' ||
                  ch == '%';
        if (!ok)
            return false;
    }
    return true;
}

/* Asks the sentinels, in turn from the one that answered last, for the master's address, all
 * of them within TT_REDIS_TIMEOUT_MS. Returns 0 with host, port, or -1 with err. */
static int ask_sentinels(struct tt_redisconn *rc, char host[TT_HOSTLEN], uint16_t *port,
                         char err[TT_ERRLEN])
{
    const struct tt_redis_url *u = &rc->url;
    uint64_t deadline = now_ms() + TT_REDIS_TIMEOUT_MS;
    char last[160] = "no answer";
    for (size_t i = 0; i < u->nsentinels; i++) {
        uint64_t now = now_ms();
        if (now >= deadline)
            break;
        unsigned budget = (unsigned)(deadline - now);
        size_t k = (rc->sentinel_first + i) % u->nsentinels;
        const struct tt_config_addr *s = &u->sentinels[k];
        char at[TT_HOSTLEN + 16];
        fmt_addr(at, sizeof(at), s->host, s->port);
        redisContext *c = redisConnectWithTimeout(s->host, s->port, tv_ms(budget));
        if (!c || c->err) {
            snprintf(last, sizeof(last), "%.60s: %.80s", at, c ? c->errstr : "out of memory");
            if (c)
                redisFree(c);
            continue;
        }
        now = now_ms();
        redisSetTimeout(c, tv_ms(now < deadline ? (unsigned)(deadline - now) : 1));
        redisReply *rep = redisCommand(c, "SENTINEL get-master-addr-by-name %s", u->master);
        if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOAUTH", 6) == 0 &&
            u->password[0]) {
            /* a sentinel with a requirepass: the master's password is tried */
            freeReplyObject(rep);
            rep = redisCommand(c, "AUTH %s", u->password);
            if (rep && rep->type != REDIS_REPLY_ERROR) {
                freeReplyObject(rep);
                rep = redisCommand(c, "SENTINEL get-master-addr-by-name %s", u->master);
            }
        }
        bool ok = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
                  rep->element[0]->type == REDIS_REPLY_STRING &&
                  rep->element[1]->type == REDIS_REPLY_STRING && host_ok(rep->element[0]);
        char *end = NULL;
        long p = ok ? strtol(rep->element[1]->str, &end, 10) : 0;
        if (ok && p > 0 && p < 65536 && end && *end == '\0') {
            snprintf(host, TT_HOSTLEN, "%s", rep->element[0]->str);
            *port = (uint16_t)p;
            rc->sentinel_first = k;
            freeReplyObject(rep);
            redisFree(c);
            return 0;
        }
        snprintf(last, sizeof(last), "%.60s: %.80s", at,
                 !rep                             ? c->errstr
                 : rep->type == REDIS_REPLY_ERROR ? rep->str
                 : rep->type == REDIS_REPLY_NIL   ? "does not know this master"
                                                  : "unexpected answer");
        if (rep)
            freeReplyObject(rep);
        redisFree(c);
    }
    snprintf(err, TT_ERRLEN, "no sentinel named the Redis master %s (%s)", u->master, last);
    return -1;
}

/* True when c's ROLE answer says master; else why not in err. */
static bool is_master(redisContext *c, const char *at, char err[TT_ERRLEN])
{
    redisReply *rep = redisCommand(c, "ROLE");
    bool ok = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
              rep->element[0]->type == REDIS_REPLY_STRING &&
              strcmp(rep->element[0]->str, "master") == 0;
    if (!ok)
        snprintf(err, TT_ERRLEN, "Redis at %s is not the master (%s)", at,
                 !rep                             ? c->errstr
                 : rep->type == REDIS_REPLY_ERROR ? rep->str
                 : rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
                         rep->element[0]->type == REDIS_REPLY_STRING
                     ? rep->element[0]->str
                     : "unexpected ROLE answer");
    if (rep)
        freeReplyObject(rep);
    return ok;
}

/* Connects (and authenticates, checks the role in sentinel mode, selects the db). Returns 0 or
 * -1 with err. */
static int connect_now(struct tt_redisconn *rc, char err[TT_ERRLEN])
{
    struct tt_redis_url *u = &rc->url;
    char host[TT_HOSTLEN];
    uint16_t port = u->port;
    snprintf(host, sizeof(host), "%s", u->host);
    if (u->sentinel && ask_sentinels(rc, host, &port, err) != 0)
        return -1;
    char at[TT_HOSTLEN + 16];
    fmt_addr(at, sizeof(at), host, port);
    redisContext *c = redisConnectWithTimeout(host, port, tv_ms(TT_REDIS_TIMEOUT_MS));
    if (!c || c->err) {
        snprintf(err, TT_ERRLEN, "cannot connect to Redis at %s: %s", at,
                 c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return -1;
    }
    redisSetTimeout(c, tv_ms(TT_REDIS_TIMEOUT_MS));
    redisReply *rep = NULL;
    if (u->password[0])
        rep = redisCommand(c, "AUTH %s", u->password);
    if (!u->password[0] || (rep && rep->type != REDIS_REPLY_ERROR)) {
        if (rep)
            freeReplyObject(rep);
        rep = NULL;
        if (u->sentinel && !is_master(c, at, err)) {
            redisFree(c);
            return -1;
        }
        rep = redisCommand(c, "SELECT %u", u->db);
    }
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        snprintf(err, TT_ERRLEN, "Redis at %s: %s", at, rep ? rep->str : c->errstr);
        if (rep)
            freeReplyObject(rep);
        redisFree(c);
        return -1;
    }
    freeReplyObject(rep);
    rc->c = c;
    if (u->sentinel) {
        rc->check_at = now_ms() + TT_REDIS_SENTINEL_CHECK_MS;
        if (!u->host[0]) {
            TT_LOG(TT_LOG_INFO, "redis master is %s master_name=%s", at, u->master);
        } else if (strcmp(host, u->host) != 0 || port != u->port) {
            char was[TT_HOSTLEN + 16];
            fmt_addr(was, sizeof(was), u->host, u->port);
            rc->master_changes++;
            TT_LOG(TT_LOG_WARN, "redis master is %s (was %s) master_name=%s changes=%llu", at, was,
                   u->master, (unsigned long long)rc->master_changes);
        }
        snprintf(u->host, sizeof(u->host), "%s", host);
        u->port = port;
    }
    return 0;
}

int tt_redisconn_open(struct tt_redisconn *rc, const struct tt_redis_url *u, char err[TT_ERRLEN])
{
    memset(rc, 0, sizeof(*rc));
    rc->url = *u;
    rc->backoff_ms = TT_REDIS_BACKOFF_MIN_MS;
    return connect_now(rc, err);
}

/* The connection failed: drop it, wait before the next attempt. */
static void went_down(struct tt_redisconn *rc, const char *reason)
{
    char why[128];
    snprintf(why, sizeof(why), "%s", reason); /* reason may point into rc->c */
    if (rc->c)
        redisFree(rc->c);
    rc->c = NULL;
    if (!rc->down)
        TT_LOG(TT_LOG_ERROR, "redis unreachable addr=%s:%u err=\"%s\"; retrying%s", rc->url.host,
               (unsigned)rc->url.port, why, rc->url.sentinel ? " through the sentinels" : "");
    else if (rc->backoff_ms < TT_REDIS_BACKOFF_MAX_MS)
        rc->backoff_ms *= 2;
    unsigned max = rc->url.sentinel ? TT_REDIS_SENTINEL_BACKOFF_MAX_MS : TT_REDIS_BACKOFF_MAX_MS;
    if (rc->backoff_ms > max)
        rc->backoff_ms = max;
    rc->down = true;
    rc->retry_at = now_ms() + rc->backoff_ms;
    rc->failures++;
}

/* Sentinel mode, connected: when the check is due, asks the sentinels whether the master
 * moved, and moves with it (a failed move waits for the back-off like any failure). */
static void check_master(struct tt_redisconn *rc)
{
    uint64_t now = now_ms();
    if (!rc->url.sentinel || now < rc->check_at)
        return;
    char host[TT_HOSTLEN], err[TT_ERRLEN];
    uint16_t port;
    if (ask_sentinels(rc, host, &port, err) != 0) {
        /* keep the master we have; ask less often while no sentinel answers (each attempt may
         * cost up to TT_REDIS_TIMEOUT_MS): 2, 4, 8, 16 then 32 s */
        if (rc->check_fails < 4)
            rc->check_fails++;
        rc->check_at = now + ((uint64_t)TT_REDIS_SENTINEL_CHECK_MS << rc->check_fails);
        TT_LOG(TT_LOG_DEBUG, "redis sentinel check: %s", err);
        return;
    }
    rc->check_fails = 0;
    rc->check_at = now + TT_REDIS_SENTINEL_CHECK_MS;
    if (strcmp(host, rc->url.host) == 0 && port == rc->url.port)
        return;
    TT_LOG(TT_LOG_INFO, "redis sentinels name another master addr=%s:%u", host, (unsigned)port);
    redisFree(rc->c);
    rc->c = NULL;
    if (connect_now(rc, err) != 0)
        went_down(rc, err);
}

/* A usable connection, reconnecting when the back-off allows. */
static bool ready(struct tt_redisconn *rc)
{
    if (rc->c)
        check_master(rc);
    if (rc->c)
        return true;
    if (now_ms() < rc->retry_at)
        return false;
    char err[TT_ERRLEN];
    if (connect_now(rc, err) != 0) {
        went_down(rc, err);
        return false;
    }
    return true;
}

/* Bookkeeping after a command: statistics, failure handling, the "back" log line. */
static redisReply *finish(struct tt_redisconn *rc, redisReply *rep, uint64_t t0)
{
    if (!rep) {
        went_down(rc, rc->c && rc->c->errstr[0] ? rc->c->errstr : "no reply");
        return NULL;
    }
    uint64_t us = (uv_hrtime() - t0) / 1000;
    rc->calls++;
    rc->total_us += us;
    if (us > rc->max_us)
        rc->max_us = us;
    if (rc->down) {
        rc->down = false;
        rc->backoff_ms = TT_REDIS_BACKOFF_MIN_MS;
        rc->reconnects++;
        TT_LOG(TT_LOG_INFO, "redis reachable again addr=%s:%u", rc->url.host,
               (unsigned)rc->url.port);
    }
    if (rep->type == REDIS_REPLY_ERROR)
        TT_LOG(TT_LOG_WARN, "redis error err=\"%.200s\"", rep->str);
    if (rep->type == REDIS_REPLY_ERROR && rc->url.sentinel && strstr(rep->str, "READONLY")) {
        /* the master we know became a replica: ask the sentinels at the next call */
        rc->readonly++;
        redisFree(rc->c);
        rc->c = NULL;
        rc->retry_at = 0;
        TT_LOG(TT_LOG_WARN, "redis at %s:%u refused a write (READONLY); asking the sentinels",
               rc->url.host, (unsigned)rc->url.port);
    }
    return rep;
}

redisReply *tt_redisconn_argv(struct tt_redisconn *rc, int argc, const char **argv,
                              const size_t *lens)
{
    if (!ready(rc))
        return NULL;
    uint64_t t0 = uv_hrtime();
    return finish(rc, redisCommandArgv(rc->c, argc, argv, lens), t0);
}

redisReply *tt_redisconn_cmd(struct tt_redisconn *rc, const char *fmt, ...)
{
    if (!ready(rc))
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    uint64_t t0 = uv_hrtime();
    redisReply *rep = redisvCommand(rc->c, fmt, ap);
    va_end(ap);
    return finish(rc, rep, t0);
}

bool tt_redisconn_up(const struct tt_redisconn *rc)
{
    return rc->c != NULL && !rc->down;
}

void tt_redisconn_close(struct tt_redisconn *rc)
{
    if (rc->c)
        redisFree(rc->c);
    rc->c = NULL;
}
