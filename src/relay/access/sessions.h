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
 * Runs on the loop thread; Redis calls are synchronous (redisconn.h: short timeouts). */
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
#define TT_SESSION_ID_BYTES 32
#define TT_SESSION_COOKIE_LEN (2 * TT_SESSION_ID_BYTES) /* the cookie's value: hex digits */
#define TT_SESSION_KEY_LEN 64                           /* hex SHA-256 of the id */

struct tt_session;
struct tt_sessions_owner;

struct tt_sessions {
    struct tt_strmap by_key;            /* hex SHA-256 of the id -> struct tt_session * (owned) */
    struct tt_strmap owners;            /* principal key -> struct tt_sessions_owner * (owned) */
    struct tt_session *oldest, *newest; /* by the time they entered the table */
    size_t n;
    uint64_t ttl_ms;
    size_t max, per_principal;  /* TT_SESSIONS_MAX, TT_SESSIONS_PER_PRINCIPAL (tests lower them) */
    struct tt_redisconn *redis; /* NULL: sessions are this node's alone */
    uv_timer_t timer;           /* drops expired sessions */
    bool timer_on;
    size_t walk_pos;
    int64_t alive_second; /* the second (unix) alive_reads counts in */
    unsigned alive_reads;
    /* counters (/metrics) */
    uint64_t created, expired, signed_out, redis_errors;
    uint64_t evicted_total, evicted_principal; /* sessions pushed out by the caps */
};

/* Prepares s for sessions of ttl_ms, shared through redis (NULL: none). With a loop, a timer
 * (not keeping the loop alive) drops expired sessions; without one (unit tests) they are
 * dropped when met. Cannot fail. */
void tt_sessions_init(struct tt_sessions *s, uv_loop_t *loop, uint64_t ttl_ms,
                      struct tt_redisconn *redis);

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

/* Sessions in the table now (with Redis: those this node has made or read lately). */
size_t tt_sessions_count(const struct tt_sessions *s);

/* The key (hex SHA-256) of a cookie value, if it has the form of one (64 hex digits): 0, or
 * TETHER_ERR_INVAL. */
int tt_sessions_key_of(const uint8_t *v, size_t len, char key[TT_SESSION_KEY_LEN + 1]);

#endif
