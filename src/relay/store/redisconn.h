/* redisconn.h - the relay's one connection to Redis (cluster mode): synchronous hiredis calls
 * with short timeouts, made on the loop thread. A call that fails (Redis down, slow or gone)
 * drops the connection and marks Redis unreachable: calls then fail at once, without touching
 * the network, until the back-off (0.5 s doubling to 5 s) allows one reconnection attempt.
 * So a Redis outage costs the loop at most one timeout per back-off period; the state change is
 * logged once each way. Keys all begin with TT_REDIS_PREFIX.
 *
 * With a redis-sentinel:// URL the address of the master is asked of the sentinels
 * (SENTINEL get-master-addr-by-name MASTER), in turn, starting with the one that answered last,
 * within TT_REDIS_TIMEOUT_MS for all of them together (the answer must be a host and a port);
 * the address they give is connected to, authenticated (the URL's password; a sentinel gets it
 * only when it answers NOAUTH) and checked with ROLE: a replica is refused (the sentinels are
 * asked again at the next attempt). The master is looked for again when a call fails, when a
 * write is refused with READONLY (the master became a replica) and every
 * TT_REDIS_SENTINEL_CHECK_MS while connected (one sentinel round trip; up to 16 times that
 * while no sentinel answers); a new address is a master change: logged ("redis master is
 * HOST:PORT (was ...)"), counted in master_changes, which the cluster watches to write the
 * devices it holds again (cluster.c). */
#ifndef TT_REDISCONN_H
#define TT_REDISCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <hiredis/hiredis.h>
#include "common/util.h"
#include "relay/config.h"

#define TT_REDIS_PREFIX "tether:"
/* Connect and command timeout. */
#define TT_REDIS_TIMEOUT_MS 300
#define TT_REDIS_BACKOFF_MIN_MS 500
#define TT_REDIS_BACKOFF_MAX_MS 5000
/* Sentinel mode: how often the sentinels are asked whether the master moved, and the longest
 * wait between two attempts while the master cannot be reached (a failover takes seconds). */
#define TT_REDIS_SENTINEL_CHECK_MS 2000
#define TT_REDIS_SENTINEL_BACKOFF_MAX_MS 2000

struct tt_redisconn {
    redisContext *c; /* NULL while disconnected */
    struct tt_redis_url url;
    uint64_t retry_at; /* uv_hrtime()/1e6 before which no reconnection is tried */
    unsigned backoff_ms;
    bool down;           /* the last attempt failed (logged) */
    uint64_t reconnects; /* successful reconnections after a failure */
    /* call statistics (commands that got an answer) */
    uint64_t calls, failures, total_us, max_us;
    /* sentinel mode (url.sentinel): url.host/url.port hold the master last connected to */
    size_t sentinel_first;   /* the sentinel asked first (the last one that answered) */
    uint64_t check_at;       /* when the sentinels are asked again while connected */
    unsigned check_fails;    /* checks in a row no sentinel answered (they back off) */
    uint64_t master_changes; /* a master at another address than the last one, since start */
    uint64_t readonly;       /* writes refused with READONLY (connection dropped) */
};

/* Connects to u (AUTH and SELECT as the URL asks; sentinel mode: to the master the sentinels
 * name). Returns 0, or -1 with a one-line message in err ("cannot connect to Redis at
 * HOST:PORT: Connection refused", "no sentinel named the Redis master mymaster (...)"); rc must
 * then still be closed. */
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
