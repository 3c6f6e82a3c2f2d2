/* redisconn.h - the relay's one connection to Redis (cluster mode): synchronous hiredis calls
 * with short timeouts, made on the loop thread. A call that fails (Redis down, slow or gone)
 * drops the connection and marks Redis unreachable: calls then fail at once, without touching
 * the network, until the back-off (0.5 s doubling to 5 s) allows one reconnection attempt.
 * So a Redis outage costs the loop at most one timeout per back-off period; the state change is
 * logged once each way. Keys all begin with TT_REDIS_PREFIX. */
#ifndef TT_REDISCONN_H
#define TT_REDISCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <hiredis/hiredis.h>
#include "common/util.h"
#include "config.h"

#define TT_REDIS_PREFIX "tether:"
/* Connect and command timeout. */
#define TT_REDIS_TIMEOUT_MS 300
#define TT_REDIS_BACKOFF_MIN_MS 500
#define TT_REDIS_BACKOFF_MAX_MS 5000

struct tt_redisconn {
    redisContext *c; /* NULL while disconnected */
    struct tt_redis_url url;
    uint64_t retry_at; /* uv_hrtime()/1e6 before which no reconnection is tried */
    unsigned backoff_ms;
    bool down;           /* the last attempt failed (logged) */
    uint64_t reconnects; /* successful reconnections after a failure */
    /* call statistics (commands that got an answer) */
    uint64_t calls, failures, total_us, max_us;
};

/* Connects to u (AUTH and SELECT as the URL asks). Returns 0, or -1 with a one-line message in
 * err ("cannot connect to Redis at HOST:PORT: Connection refused"); rc must then still be
 * closed. */
int tt_redisconn_open(struct tt_redisconn *rc, const struct tt_redis_url *u, char err[TT_ERRLEN]);

/* Runs one command (argv[0..argc), binary safe). Returns the reply (free it with
 * freeReplyObject; it may be a REDIS_REPLY_ERROR, logged here) or NULL when Redis cannot be
 * reached now (the connection is dropped and retried later). */
redisReply *tt_redisconn_argv(struct tt_redisconn *rc, int argc, const char **argv,
                              const size_t *lens);

/* The same with a printf-like hiredis format (%s, %b, %lld...). */
redisReply *tt_redisconn_cmd(struct tt_redisconn *rc, const char *fmt, ...);

/* True when the last call reached Redis (or none was made yet since it connected). */
bool tt_redisconn_up(const struct tt_redisconn *rc);

/* Closes the connection. */
void tt_redisconn_close(struct tt_redisconn *rc);

#endif
