/* redisconn.c - the relay's synchronous Redis connection with timeouts and back-off
 * (redisconn.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>
#include "common/log.h"
#include "redisconn.h"

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static struct timeval tv_ms(unsigned ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    return tv;
}

/* Connects (and authenticates, selects the db). Returns 0 or -1 with err. */
static int connect_now(struct tt_redisconn *rc, char err[TT_ERRLEN])
{
    const struct tt_redis_url *u = &rc->url;
    redisContext *c = redisConnectWithTimeout(u->host, u->port, tv_ms(TT_REDIS_TIMEOUT_MS));
    if (!c || c->err) {
        snprintf(err, TT_ERRLEN, "cannot connect to Redis at %s:%u: %s", u->host, (unsigned)u->port,
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
        rep = redisCommand(c, "SELECT %u", u->db);
    }
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        snprintf(err, TT_ERRLEN, "Redis at %s:%u: %s", u->host, (unsigned)u->port,
                 rep ? rep->str : c->errstr);
        if (rep)
            freeReplyObject(rep);
        redisFree(c);
        return -1;
    }
    freeReplyObject(rep);
    rc->c = c;
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
        TT_LOG(TT_LOG_ERROR, "redis unreachable addr=%s:%u err=\"%s\"; retrying", rc->url.host,
               (unsigned)rc->url.port, why);
    else if (rc->backoff_ms < TT_REDIS_BACKOFF_MAX_MS)
        rc->backoff_ms *= 2;
    if (rc->backoff_ms > TT_REDIS_BACKOFF_MAX_MS)
        rc->backoff_ms = TT_REDIS_BACKOFF_MAX_MS;
    rc->down = true;
    rc->retry_at = now_ms() + rc->backoff_ms;
    rc->failures++;
}

/* A usable connection, reconnecting when the back-off allows. */
static bool ready(struct tt_redisconn *rc)
{
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
