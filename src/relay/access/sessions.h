/* sessions.h - browser sign-in sessions (SPEC "Who may reach a device": a private HTTP service
 * in a browser). A session is made when a user signs in on one device host: its id is 32 bytes
 * from OpenSSL's CSPRNG, given to the browser once as the cookie's value (64 hex digits) and
 * kept only as its SHA-256; it is bound to that exact host (normalized, route.h) and to the
 * principal who signed in, and ends --session-ttl after it was made (or when signed out, or
 * evicted at a cap). Whether the principal may still reach the device is not decided here
 * (access.h decides it at every request).
 *
 * Caps: at most TT_SESSIONS_PER_PRINCIPAL sessions per principal (a user, a grant) and
 * TT_SESSIONS_MAX in all; a session made past a cap evicts the oldest one of that principal, or
 * of all. Memory: about 300 bytes per session plus its host name.
 *
 * With --redis every node shares the sessions: they live in Redis (key tether:session:HASH,
 * expiring with the session; a sorted set per principal and one for all hold the caps cluster
 * wide), and the table here is a cache of them: a node reads a session from Redis again when it
 * has not for TT_SESSIONS_RECHECK_MS, so that a sign-out or an eviction on another node is seen
 * within about a second. While Redis cannot be reached, sessions in the cache stay valid until
 * they expire, and sessions made then live on this node only (for their whole life: other nodes
 * never learn of them).
 * Once the loop runs in cluster mode (tt_sessions_use_redis_async) no session call waits on the
 * loop: the re-read of a session the node knows is sent on the cluster's asynchronous connection
 * and the request goes on with what the node knows (the answer updates the session or ends it;
 * the forward sweep then closes its connections). The first read of a session this node never
 * saw (tt_sessions_fetch), creating one (tt_sessions_create_async) and deleting (sign-out,
 * tt_sessions_delete_async) are jobs on that connection whose caller holds its request until
 * the job's callback: at most TT_SESSIONS_WAIT_MAX jobs wait at once (beyond, refused at once:
 * the caller answers 503), each at most TT_SESSIONS_WAIT_MS (then its callback says
 * TETHER_ERR_TIMEOUT). In that mode a session is only ever in the table once Redis has it: a
 * session whose write Redis did not acknowledge is never handed out (no more "this node only").
 * Before the loop runs, after shutdown, and in unit tests without the asynchronous connection
 * the synchronous connection is used as before (redisconn.h: short timeouts).
 * Runs on the loop thread. */
#ifndef TT_SESSIONS_H
#define TT_SESSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "relay/access/access.h"
#include "relay/store/redisconn.h"
#include "relay/lib/strmap.h"

#define TT_SESSIONS_MAX 100000
#define TT_SESSIONS_PER_PRINCIPAL 256
#define TT_SESSIONS_RECHECK_MS 1000
/* Redis reads per second that tt_sessions_alive may make for open connections (beyond, a
 * session it has read before counts as alive until the next second): a node with many signed-in
 * connections does not spend its loop on Redis. Requests are not held to it. */
#define TT_SESSIONS_ALIVE_READS 200
/* Re-checks of known sessions sent on the asynchronous connection and not answered yet, at most
 * (beyond, a session's re-check waits for a later request or sweep: what the node knows stands). */
#define TT_SESSIONS_RECHECKS 1024
/* Jobs that hold a request while Redis answers (fetch, create, delete), at most; each waits at
 * most TT_SESSIONS_WAIT_MS (checked every TT_SESSIONS_WAIT_TICK_MS). */
#define TT_SESSIONS_WAIT_MAX 256
#define TT_SESSIONS_WAIT_MS 3000
#define TT_SESSIONS_WAIT_TICK_MS 100
/* Keys one job may fetch or delete (a request carries at most this many of the relay's
 * cookies that are looked up: signin.c's MAX_COOKIE_TRIES). */
#define TT_SESSIONS_JOB_KEYS 4
/* tt_sessions_find_or_unknown: a well-formed cookie this node does not have (cluster mode). */
#define TT_SESSIONS_UNKNOWN 1
#define TT_SESSION_ID_BYTES 32
#define TT_SESSION_COOKIE_LEN (2 * TT_SESSION_ID_BYTES) /* the cookie's value: hex digits */
#define TT_SESSION_KEY_LEN 64                           /* hex SHA-256 of the id */

struct tt_session;
struct tt_sessions_owner;
struct tt_sessions_job;

struct tt_sessions {
    struct tt_strmap by_key;            /* hex SHA-256 of the id -> struct tt_session * (owned) */
    struct tt_strmap owners;            /* principal key -> struct tt_sessions_owner * (owned) */
    struct tt_session *oldest, *newest; /* by the time they entered the table */
    size_t n;
    uint64_t ttl_ms;
    size_t max, per_principal;  /* TT_SESSIONS_MAX, TT_SESSIONS_PER_PRINCIPAL (tests lower them) */
    struct tt_redisconn *redis; /* NULL: sessions are this node's alone */
    struct tt_redisasync *ra;   /* re-checks of known sessions go here when set (not waited for) */
    size_t rechecks_due;        /* of them, sent and not answered (at most TT_SESSIONS_RECHECKS) */
    uv_timer_t timer;           /* drops expired sessions */
    bool timer_on;
    size_t walk_pos;
    int64_t alive_second; /* the second (unix) alive_reads counts in */
    unsigned alive_reads;
    /* counters (/metrics) */
    uint64_t created, expired, signed_out, redis_errors;
    uint64_t rechecks, rechecks_full; /* re-checks sent; not sent (TT_SESSIONS_RECHECKS due) */
    uint64_t evicted_total, evicted_principal; /* sessions pushed out by the caps */
    /* jobs holding a request (tt_sessions_fetch/_create_async/_delete_async): the waiting ones,
     * oldest first (at most TT_SESSIONS_WAIT_MAX), and the timer that times them out */
    uv_loop_t *loop;
    struct tt_sessions_job *wait_head, *wait_tail;
    size_t waiting;
    uv_timer_t wait_timer;
    bool wait_timer_init, wait_timer_on;
    uint64_t waits[3];                                   /* jobs started: read, create, delete */
    uint64_t wait_full, wait_timeouts, wait_unreachable; /* refused: cap, timeout, no answer */
    /* the keys of deletes sent and not answered yet (waited for or not), each with the number
     * of such deletes: a read Redis answered before such a delete ran does not put its keys
     * back into the table (at most 4 per command in flight: --redis-max-pending) */
    struct tt_strmap deleting;
    uint64_t reads_superseded; /* sessions a read found that a sign-out here was deleting */
};

/* Prepares s for sessions of ttl_ms, shared through redis (NULL: none). With a loop, a timer
 * (not keeping the loop alive) drops expired sessions; without one (unit tests) they are
 * dropped when met. Cannot fail. */
void tt_sessions_init(struct tt_sessions *s, uv_loop_t *loop, uint64_t ttl_ms,
                      struct tt_redisconn *redis);

/* Cluster mode, once the loop runs: re-checks of known sessions go on ra (store/redisasync.h);
 * NULL (ra is being freed) goes back to waiting on the synchronous connection. */
struct tt_redisasync;
void tt_sessions_use_redis_async(struct tt_sessions *s, struct tt_redisasync *ra);

/* Stops the timer (relay shutdown); s must stay allocated until the loop has run once more. */
void tt_sessions_close(struct tt_sessions *s);

/* Frees every session (in Redis they stay). */
void tt_sessions_free(struct tt_sessions *s);

/* Makes a session for who on host at now (unix ms): the cookie's value into cookie
 * (NUL-terminated), its key (hex SHA-256 of the id) into key. Evicts at the caps. Returns 0,
 * TETHER_ERR_NOMEM, or TETHER_ERR_IO when there is no randomness. (A Redis failure is not one:
 * the session then lives on this node only, counted in redis_errors.) */
int tt_sessions_create(struct tt_sessions *s, const char *host, const struct tt_principal *who,
                       int64_t now, char cookie[TT_SESSION_COOKIE_LEN + 1],
                       char key[TT_SESSION_KEY_LEN + 1]);

/* The session whose cookie value is v[0..len) (anything: checked here), if it is alive at now
 * and was made for host: its principal into *who and its key into key, and 0; else
 * TETHER_ERR_NOT_FOUND (never made, expired, signed out, or made for another host). */
int tt_sessions_find(struct tt_sessions *s, const uint8_t *v, size_t len, const char *host,
                     int64_t now, struct tt_principal *who, char key[TT_SESSION_KEY_LEN + 1]);

/* True while the session key is alive at now (for connections made under it: the forward
 * sweep closes them once it is not). With Redis, at most TT_SESSIONS_ALIVE_READS reads a
 * second. */
bool tt_sessions_alive(struct tt_sessions *s, const char *key, int64_t now);

/* Ends the session key (sign-out), here and in Redis. Safe for an unknown key. */
void tt_sessions_delete(struct tt_sessions *s, const char *key);

/* Drops the sessions expired at now: every one, or (timer) a slice of the table. Returns how
 * many. */
size_t tt_sessions_sweep(struct tt_sessions *s, int64_t now, bool all);

/* The answer of a job: 0 (Redis answered: a fetch's sessions found are in the table now, a
 * created session is stored cluster wide and in the table, a delete is done), TETHER_ERR_IO
 * (Redis gave no answer: unreachable, an error, the connection dropped or freed),
 * TETHER_ERR_TIMEOUT (no answer within TT_SESSIONS_WAIT_MS) or TETHER_ERR_NOMEM. Called once,
 * never from inside the call that started the job, unless the job was cancelled first. */
typedef void (*tt_sessions_cb)(void *ud, int rc);

/* True when the session calls below go on the asynchronous connection (cluster mode, the loop
 * running): tt_sessions_find_or_unknown may say TT_SESSIONS_UNKNOWN and the jobs are jobs. */
bool tt_sessions_async(const struct tt_sessions *s);

/* tt_sessions_find for a caller that can hold its request: in async mode a well-formed cookie
 * this node does not have gives TT_SESSIONS_UNKNOWN and its key in key (read it with
 * tt_sessions_fetch, then find again: tt_sessions_find then answers from the table, never
 * reading). Otherwise as tt_sessions_find. */
int tt_sessions_find_or_unknown(struct tt_sessions *s, const uint8_t *v, size_t len,
                                const char *host, int64_t now, struct tt_principal *who,
                                char key[TT_SESSION_KEY_LEN + 1]);

/* Reads the sessions keys[0..n) (n <= TT_SESSIONS_JOB_KEYS) from Redis into the table (async
 * mode only). Returns 0 with *job (cb will be called), TETHER_ERR_CAPACITY (TT_SESSIONS_WAIT_MAX
 * jobs wait), TETHER_ERR_IO (Redis unreachable, or not async mode) or TETHER_ERR_NOMEM; on error
 * cb is never called. */
int tt_sessions_fetch(struct tt_sessions *s, const char (*keys)[TT_SESSION_KEY_LEN + 1], size_t n,
                      tt_sessions_cb cb, void *ud, struct tt_sessions_job **job);

/* tt_sessions_create without waiting on the loop. Not async mode: tt_sessions_create (done now:
 * returns its answer with *job NULL; cb is not called). Async mode: cookie and key are made now
 * (the caller keeps the cookie's value and wipes it), the session is written to Redis, and
 * 0 is returned with *job: cb says whether Redis acknowledged it (only then is it in the table
 * and may the cookie be given out). Errors now (cb never called): TETHER_ERR_IO (no randomness,
 * Redis unreachable), TETHER_ERR_CAPACITY, TETHER_ERR_NOMEM. */
int tt_sessions_create_async(struct tt_sessions *s, const char *host,
                             const struct tt_principal *who, int64_t now,
                             char cookie[TT_SESSION_COOKIE_LEN + 1],
                             char key[TT_SESSION_KEY_LEN + 1], tt_sessions_cb cb, void *ud,
                             struct tt_sessions_job **job);

/* Ends the sessions keys[0..n) (n <= TT_SESSIONS_JOB_KEYS): at once in the table (the cookies
 * stop working on this node now), and in Redis. Not async mode: tt_sessions_delete for each
 * (done: 0 with *job NULL). Async mode: 0 with *job, cb saying whether Redis did it, or an error
 * now as tt_sessions_fetch. */
int tt_sessions_delete_async(struct tt_sessions *s, const char (*keys)[TT_SESSION_KEY_LEN + 1],
                             size_t n, tt_sessions_cb cb, void *ud, struct tt_sessions_job **job);

/* The job's callback will not be called (its record goes when Redis answers). NULL is fine. */
void tt_sessions_job_cancel(struct tt_sessions_job *job);

/* Sessions in the table now (with Redis: those this node has made or read lately). */
size_t tt_sessions_count(const struct tt_sessions *s);

/* The key (hex SHA-256) of a cookie value, if it has the form of one (64 hex digits): 0, or
 * TETHER_ERR_INVAL. */
int tt_sessions_key_of(const uint8_t *v, size_t len, char key[TT_SESSION_KEY_LEN + 1]);

#endif
