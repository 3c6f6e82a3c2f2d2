/* redisasync.h - an asynchronous, pipelined Redis connection on the relay's libuv loop (hiredis'
 * async API and its libuv adapter). Nothing here blocks the loop: a command is queued and sent
 * at once, many may be in flight on the one connection (Redis answers them in order), and each
 * completes through its callback when its reply arrives.
 *
 * Lifetime rules (libuv's):
 *  - tt_redisasync_cmd()/_argv() that fail never call the callback. One that returns 0 calls it
 *    exactly once, later, never from within the call: with the reply, or with NULL when the
 *    command got no answer (connection lost, command timeout, Redis unreachable, or the
 *    connection freed). The reply belongs to the module and is valid during the callback only.
 *  - A callback may queue new commands. It must not free the connection.
 *  - tt_redisasync_free() calls every pending callback with NULL before it returns; the memory
 *    goes once the loop has run the close callbacks of its handles.
 *
 * States. The connection starts at once (tt_redisasync_new) and is DOWN, CONNECTING or UP:
 *  - CONNECTING: the TCP connection is being made, then AUTH (the URL's password), ROLE (sentinel
 *    mode: a replica is refused) and SELECT are sent, pipelined. Commands queued meanwhile are
 *    sent behind them. UP once SELECT is answered. A connection not UP within
 *    TT_REDISASYNC_CONNECT_MS fails.
 *  - UP: commands in flight. When the oldest has waited TT_REDISASYNC_TIMEOUT_MS with no reply
 *    (Redis stopped, or a network gone quiet) the connection is dropped: every pending command
 *    completes with NULL. A write refused with READONLY (sentinel mode: the master became a
 *    replica) drops it too, and the sentinels are asked again.
 *  - DOWN: after a failure, logged once ("redis unreachable ... (async)"), and again once when it
 *    is back. Commands fail at once (TETHER_ERR_IO, no callback) without touching the network
 *    until the back-off (TT_REDIS_BACKOFF_MIN_MS doubling to TT_REDIS_BACKOFF_MAX_MS; sentinel
 *    mode at most TT_REDIS_SENTINEL_BACKOFF_MAX_MS) allows the next attempt.
 * The master's address (redis-sentinel://: the sentinels' answer, redisconn.h's
 * tt_redisconn_ask_sentinels) and the host name are resolved in libuv's thread pool, so a slow
 * sentinel or DNS server does not stall the loop either; while connected in sentinel mode the
 * sentinels are asked every TT_REDIS_SENTINEL_CHECK_MS (also in the pool) and a new address
 * moves the connection there (counted in master_changes, logged "redis master is ... (was
 * ...)").
 *
 * The cap. At most max_pending commands are in flight (sent or queued, not answered). At the cap
 * a new command is refused at once with TETHER_ERR_CAPACITY (counted in full); callers answer
 * what they would answer with Redis unreachable, and the relay's admission control
 * (drain.c) refuses new device registrations with 503 and Retry-After while the connection is
 * past TT_REDISASYNC_ADMIT_PCT percent of it. The memory of a pending command is its record here
 * (48 bytes) plus hiredis' copy of the command in the output buffer.
 *
 * Metrics (tt_redisasync_metrics): tether_redis_pending, tether_redis_pending_max,
 * tether_redis_pending_full_total, tether_redis_commands_total, tether_redis_failed_total,
 * tether_redis_timeouts_total, tether_redis_async_up, tether_redis_async_reconnects_total and
 * the histogram tether_redis_reply_seconds. */
#ifndef TT_REDISASYNC_H
#define TT_REDISASYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <hiredis/hiredis.h>
#include "common/util.h"
#include "relay/config.h"

/* Connect (TCP, AUTH, ROLE, SELECT) timeout, and how long a command may wait for its reply.
 * Neither blocks anything: they bound how long callers wait. The command timeout is long
 * enough for a Redis that stalls a few seconds (a fork, a slow disk, a failover) to answer
 * late rather than have every registration under way refused. */
#define TT_REDISASYNC_CONNECT_MS 1000
#define TT_REDISASYNC_TIMEOUT_MS 5000
/* The timer that checks both, and drives reconnection and the sentinel check. */
#define TT_REDISASYNC_TICK_MS 100
/* Default and bounds of the cap on commands in flight (--redis-max-pending):
 * TT_REDISASYNC_MAX_PENDING(_MIN/_MAX) in relay/config.h, whose flag table needs them. */
/* Admission control refuses new registrations above this share of the cap. */
#define TT_REDISASYNC_ADMIT_PCT 75
/* Buckets (seconds) of tether_redis_reply_seconds. */
#define TT_REDISASYNC_NBUCKETS 10

/* The reply to one command (NULL: no answer, see above); ud is the caller's. */
typedef void (*tt_redisasync_cb)(redisReply *rep, void *ud);

struct tt_redisasync;

struct tt_redisasync_stats {
    size_t pending;          /* commands in flight now */
    size_t max_pending;      /* the cap */
    uint64_t full;           /* commands refused at the cap */
    uint64_t commands;       /* commands answered (a reply, error replies included) */
    uint64_t failed;         /* commands completed with NULL */
    uint64_t refused;        /* commands refused at once while DOWN */
    uint64_t timeouts;       /* connections dropped because a command or the connect timed out */
    uint64_t reconnects;     /* connections UP again after a failure */
    uint64_t master_changes; /* sentinel mode: a master at a new address */
    uint64_t readonly;       /* writes refused with READONLY */
    uint64_t buckets[TT_REDISASYNC_NBUCKETS + 1]; /* reply times, per bucket (+Inf last) */
    double reply_sum;                             /* seconds, over commands */
    bool up;
};

/* Makes a connection to the Redis u names, on loop, with at most max_pending commands in flight
 * (0: TT_REDISASYNC_MAX_PENDING). The first address is resolved here, blocking (start-up; in
 * sentinel mode the sentinels are asked); the connection itself completes on the loop.
 * Returns 0 with *out, or -1 with a one-line message in err (out of memory, no sentinel named
 * the master, the host does not resolve). tt_redisasync_up() is false until it is UP. */
int tt_redisasync_new(struct tt_redisasync **out, uv_loop_t *loop, const struct tt_redis_url *u,
                      size_t max_pending, char err[TT_ERRLEN]);

/* Queues one command (argv[0..argc), binary safe; copied). Returns 0 (cb will be called),
 * TETHER_ERR_CAPACITY (at the cap), TETHER_ERR_IO (DOWN, or hiredis refused it) or
 * TETHER_ERR_NOMEM; on error cb is never called. */
int tt_redisasync_argv(struct tt_redisasync *ra, int argc, const char **argv, const size_t *lens,
                       tt_redisasync_cb cb, void *ud);

/* The same with a printf-like hiredis format (%s, %b, %lld...). */
int tt_redisasync_cmd(struct tt_redisasync *ra, tt_redisasync_cb cb, void *ud, const char *fmt,
                      ...);

/* True while the connection is UP. */
bool tt_redisasync_up(const struct tt_redisasync *ra);

/* True when n more commands would not fit under TT_REDISASYNC_ADMIT_PCT percent of the cap
 * (admission control: a registration takes a few). */
bool tt_redisasync_busy(const struct tt_redisasync *ra, size_t n);

/* Copies the counters into *st. */
void tt_redisasync_stats(const struct tt_redisasync *ra, struct tt_redisasync_stats *st);

/* Appends the metrics above (Prometheus text) to out[*len..outlen); returns -1 when they do not
 * fit (*len then outlen - 1), else 0. */
int tt_redisasync_metrics(const struct tt_redisasync *ra, char *out, size_t outlen, size_t *len);

/* Closes the connection: every pending callback is called with NULL first. NULL is fine. */
void tt_redisasync_free(struct tt_redisasync *ra);

#endif
