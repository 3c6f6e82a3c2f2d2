/* grants.h - short-lived grants (SPEC "Who may reach a device"): the admin API's
 * POST /api/grants issues one for a user (any name: it need not be in --users-file), with
 * DEVICE/SERVICE patterns and a time to live, and answers with a token shown only then; the
 * relay keeps the token's SHA-256. A grant token authenticates `tether connect --grant TOKEN`
 * (and a browser sign-in with the token as the secret) as principal kind GRANT. Revoking a grant
 * (DELETE /api/grants/ID) or its expiry ends its access at once, open connections included
 * (access.h: tt_access_recheck, which tt_access_tick runs when grants went away).
 *
 * Without --redis the grants live in this process's memory (a restart revokes them all). With
 * --redis (tt_grants_use_redis) Redis holds them and every node keeps a copy: a create or a delete
 * is written to Redis first (refused with TETHER_ERR_IO when Redis cannot be reached), and each
 * node reads the changes at least every TT_GRANTS_SYNC_MS (tt_grants_tick), and at once when a
 * token or a grant id it is asked about is unknown (at most every TT_GRANTS_MISS_SYNC_MS). While
 * Redis is unreachable a node keeps the grants it knows, each until its expiry.
 *
 * Redis keys (under TT_REDIS_PREFIX):
 *   grants        hash id -> the grant as JSON {"user","grants":[...],"created","expires",
 *                 "hash"} (times in unix ms, hash the token's SHA-256 in hex)
 *   grants:exp    zset id -> expires (the expiry sweep, done by whichever node syncs first)
 *   grants:epoch  a random value set with the first grant: a Redis that lost its data has none
 *   grants:gen    the number of changes; grants:log the ids changed, newest first (the last
 *                 TT_GRANTS_LOG_MAX): a node that saw generation N reads the ids of the changes
 *                 since, or the whole set when it fell further behind or the epoch changed.
 * Runs on the loop thread; times are unix milliseconds given by the caller. */
#ifndef TT_GRANTS_H
#define TT_GRANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"
#include "core/frame.h"
#include "relay/lib/pattern.h"

/* A grant id: 16 random bytes in lowercase hex. */
#define TT_GRANT_ID_LEN 32
/* A grant token: this prefix and 32 random bytes in unpadded base64url (43 characters), so that
 * a token is told from a secret at a glance (and by secret scanners). */
#define TT_GRANT_TOKEN_PREFIX "ttg_"
#define TT_GRANT_TOKEN_LEN (4 + 43)
/* Live grants at most (one store, or the whole cluster): beyond, a create is refused
 * (TETHER_ERR_CAPACITY); expired grants do not count. */
#define TT_GRANTS_MAX 10000
/* DEVICE/SERVICE patterns per grant: 1 to this many. */
#define TT_GRANTS_MAX_PATTERNS 64
/* A grant's time to live: at least a second, at most 30 days; TT_GRANTS_TTL_DEFAULT_MS (an hour)
 * when the request gives none. */
#define TT_GRANTS_TTL_MIN_MS 1000ull
#define TT_GRANTS_TTL_MAX_MS (30ull * 24 * 3600 * 1000)
#define TT_GRANTS_TTL_DEFAULT_MS (3600ull * 1000)
/* Cluster mode: how often a node reads Redis's changes, and at most how often an unknown token or
 * grant id makes it read them at once; how many changes Redis lists for the nodes' delta reads. */
#define TT_GRANTS_SYNC_MS 1000
#define TT_GRANTS_MISS_SYNC_MS 50
#define TT_GRANTS_LOG_MAX 1024
/* Cluster mode with the asynchronous connection: at most this many clients with an unknown
 * token wait at once for the read that may bring its grant, each at most TT_GRANTS_WAIT_MS (the
 * store's tick checks it: an answer within TT_GRANTS_WAIT_MS plus one tick). Past either the
 * token is refused, as when Redis cannot be reached. */
#define TT_GRANTS_WAIT_MAX 1024
#define TT_GRANTS_WAIT_MS 1000
/* tt_grants_check_token_async's "the callback will answer". */
#define TT_GRANTS_PENDING 1

/* One grant, as the store holds it. Read-only for callers; valid until the store changes. */
struct tt_grant {
    char id[TT_GRANT_ID_LEN + 1];
    char user[TT_MAX_NAME + 1];
    int64_t created, expires; /* unix ms; expires is a whole second */
    uint8_t hash[32];         /* SHA-256 of the token */
    size_t npatterns;
    const char **patterns; /* npatterns checked patterns (pattern.h), in this allocation */
    bool mark;             /* the store's own (a full read from Redis) */
};

/* Counters (/metrics). */
struct tt_grants_stats {
    uint64_t created;             /* grants made through this process */
    uint64_t deleted;             /* grants revoked through this process */
    uint64_t expired;             /* grants this process's store let go at their expiry */
    uint64_t syncs;               /* reads of Redis's changes (cluster mode) */
    uint64_t full;                /* of them, reads of the whole set */
    uint64_t failures;            /* Redis calls that failed (Redis unreachable, or a bad reply) */
    uint64_t token_waits;         /* unknown tokens held for a read of Redis */
    size_t token_waiting;         /* of them, waiting now (at most TT_GRANTS_WAIT_MAX) */
    uint64_t token_wait_full;     /* refused unread: TT_GRANTS_WAIT_MAX were waiting */
    uint64_t token_wait_timeouts; /* refused: the read was not answered in TT_GRANTS_WAIT_MS */
    uint64_t reads;               /* reads for the admin API sent (tt_grants_refresh_async) */
    size_t reads_waiting;         /* of them, not answered yet (at most TT_GRANTS_READ_WAIT_MAX) */
    uint64_t reads_full;          /* not sent: TT_GRANTS_READ_WAIT_MAX were waiting */
    bool cluster;                 /* the store is Redis's (tt_grants_use_redis) */
};

struct tt_grants;
struct tt_redisconn;

/* A new, empty store, or NULL when out of memory. */
struct tt_grants *tt_grants_new(void);
/* Frees g and its grants (not the Redis connection). NULL is fine. */
void tt_grants_free(struct tt_grants *g);

/* Cluster mode: from now on g keeps its grants in Redis through rc (which must outlive g) and
 * reads the cluster's grants at the next tick. */
void tt_grants_use_redis(struct tt_grants *g, struct tt_redisconn *rc);

/* Cluster mode, once the loop runs: the tick's reads of the cluster's grants, the reads made for
 * an unknown token (tt_grants_check_token_async) and for an unknown grant id (tt_grants_allows:
 * sent, not waited for; the id is refused until the read brings it) go on ra (an asynchronous
 * connection, store/redisasync.h; applied when answered) instead of waiting on rc; NULL goes back
 * to rc (ra is being freed: tokens still waiting are refused). tt_grants_create and
 * tt_grants_delete still wait on rc; tt_grants_create_async and tt_grants_delete_async use ra. */
struct tt_redisasync;
void tt_grants_use_redis_async(struct tt_grants *g, struct tt_redisasync *ra);

/* Checks a grant's user name: 1 to TT_MAX_NAME bytes of printable ASCII without spaces (as
 * --users-file names). Returns 0 or -1 with err. */
int tt_grants_check_user(const char *user, char err[TT_ERRLEN]);

/* Checks a time to live (TT_GRANTS_TTL_MIN_MS to TT_GRANTS_TTL_MAX_MS). Returns 0 or -1 with
 * err. */
int tt_grants_check_ttl(uint64_t ttl_ms, char err[TT_ERRLEN]);

/* Makes a grant for user with the n patterns p[0..n) (each checked, 1 <= n <=
 * TT_GRANTS_MAX_PATTERNS) living ttl_ms from now (its expiry cut to a whole second): its id into
 * id, its token into token (the only copy: the store keeps its hash; the caller shows it once
 * and wipes it), its expiry into *expires. Returns 0, TETHER_ERR_INVAL (a bad user, pattern or
 * ttl: err says which), TETHER_ERR_CAPACITY (TT_GRANTS_MAX live grants already), TETHER_ERR_IO
 * (cluster mode: Redis cannot be reached; nothing was made) or TETHER_ERR_NOMEM. err is filled
 * for every error. */
int tt_grants_create(struct tt_grants *g, const char *user, const char *const *p, size_t n,
                     uint64_t ttl_ms, int64_t now, char id[TT_GRANT_ID_LEN + 1],
                     char token[TT_GRANT_TOKEN_LEN + 1], int64_t *expires, char err[TT_ERRLEN]);

/* Revokes grant id at now. Returns 0, TETHER_ERR_NOT_FOUND (no such live grant) or
 * TETHER_ERR_IO (cluster mode: Redis cannot be reached; nothing changed). The caller then runs
 * tt_access_recheck. */
int tt_grants_delete(struct tt_grants *g, const char *id, int64_t now);

/* The answer to a create or a delete sent on the asynchronous connection: rc as
 * tt_grants_create's (id, token and expires then filled; the token is wiped after the call) or
 * tt_grants_delete's, err a one-line message for an error. TETHER_ERR_IO also when Redis did not
 * answer within the connection's command timeout (TT_REDISASYNC_TIMEOUT_MS). */
typedef void (*tt_grants_job_cb)(void *ud, int rc, const char *id, const char *token,
                                 int64_t expires, const char *err);
struct tt_grants_job;

/* tt_grants_create and tt_grants_delete without waiting on the loop: with no asynchronous
 * connection (not clustered, or before the loop runs), or for a request refused before Redis is
 * asked, the answer is returned now (cb is not called); else TT_GRANTS_PENDING with *handle, and
 * cb is called exactly once, later, never from inside the call. A cancelled job (the caller went
 * away) still completes in the store. tt_grants_create_async with cb NULL (the caller could not
 * keep what its callback needs, e.g. out of memory): answered now by tt_grants_create without
 * Redis, refused with TETHER_ERR_NOMEM ("out of memory", nothing made) in cluster mode, where the
 * loop never waits on Redis for it. */
int tt_grants_create_async(struct tt_grants *g, const char *user, const char *const *p, size_t n,
                           uint64_t ttl_ms, int64_t now, char id[TT_GRANT_ID_LEN + 1],
                           char token[TT_GRANT_TOKEN_LEN + 1], int64_t *expires,
                           char err[TT_ERRLEN], tt_grants_job_cb cb, void *ud,
                           struct tt_grants_job **handle);
int tt_grants_delete_async(struct tt_grants *g, const char *id, int64_t now, tt_grants_job_cb cb,
                           void *ud, struct tt_grants_job **handle);
/* The job's callback will not be called. NULL is fine. */
void tt_grants_job_cancel(struct tt_grants_job *j);

/* Once a second or so: forgets the grants expired at now and (cluster mode, at most every
 * TT_GRANTS_SYNC_MS) reads Redis's changes. Returns how many grants went away since the last
 * tick (here, or in reads made meanwhile): when not 0, the caller runs tt_access_recheck. */
size_t tt_grants_tick(struct tt_grants *g, int64_t now);

/* Cluster mode: reads Redis's changes now, waiting for them on the synchronous connection (the
 * admin API uses tt_grants_refresh_async below). Returns 0, or TETHER_ERR_IO (the grants known so
 * far stay). 0 without Redis. */
int tt_grants_refresh(struct tt_grants *g, int64_t now);

/* Cluster mode, without waiting on the loop: GET /api/grants[/ID] and the dashboard's grants page
 * read Redis's changes on the asynchronous connection and answer once they are applied.
 * Returns TT_GRANTS_PENDING with *handle (cb is called exactly once, later, with rc 0 or
 * TETHER_ERR_IO: Redis did not answer within the connection's command timeout,
 * TT_REDISASYNC_TIMEOUT_MS; id, token are "" then), unless cancelled; or at once, cb never
 * called: 0 (not clustered: nothing to read; or before the loop runs: read now, waiting),
 * TETHER_ERR_IO (Redis cannot be asked now), TETHER_ERR_CAPACITY (TT_GRANTS_READ_WAIT_MAX reads
 * waiting already) or TETHER_ERR_NOMEM. Whatever the answer, the caller shows the grants the
 * store holds then (the last ones read when Redis did not answer). */
#define TT_GRANTS_READ_WAIT_MAX 64
int tt_grants_refresh_async(struct tt_grants *g, int64_t now, tt_grants_job_cb cb, void *ud,
                            struct tt_grants_job **handle);

/* Live grants held (expired ones not yet swept included). */
size_t tt_grants_count(const struct tt_grants *g);

/* The grants live at now, sorted by creation time then id, into *out (a malloc'd array of
 * pointers into the store, valid until it changes; the caller frees the array) and *n. Returns 0
 * or TETHER_ERR_NOMEM. */
int tt_grants_list(const struct tt_grants *g, int64_t now, const struct tt_grant ***out, size_t *n);

/* The grant called id when it lives at now, else NULL. */
const struct tt_grant *tt_grants_find(const struct tt_grants *g, const char *id, int64_t now);

/* True when grant id exists, has not expired at now and one of its patterns covers
 * device/service. Cluster mode: an unknown id makes the store read Redis's changes first (at most
 * every TT_GRANTS_MISS_SYNC_MS), so that a grant made on another node a moment ago is known. */
bool tt_grants_allows(struct tt_grants *g, const char *id, const char *device, const char *service,
                      int64_t now);

/* Finds the live grant whose token is tok[0..len): its id into id and its user into user.
 * Returns 0, or TETHER_ERR_AUTH (no such grant, or expired; id and user are then ""). The token
 * is hashed and its hash looked up, so the time taken does not depend on how much of a guess is
 * right. Cluster mode: an unknown token makes the store read Redis's changes first, as above. */
int tt_grants_check_token(struct tt_grants *g, const uint8_t *tok, size_t len, int64_t now,
                          char id[TT_GRANT_ID_LEN + 1], char user[TT_MAX_NAME + 1]);

/* The answer to a token that waited: rc 0 with the grant's id and user, TETHER_ERR_AUTH (no such
 * grant after the read, Redis did not answer in time or could not be reached: fail closed), or
 * TETHER_ERR_IO (the store is being freed: the caller only frees its own state). */
typedef void (*tt_grants_token_cb)(void *ud, int rc, const char *id, const char *user);
struct tt_grants_wait;

/* tt_grants_check_token without waiting on the loop. A known token, a token of the wrong form,
 * or a store with no asynchronous connection: answered now as tt_grants_check_token does (0 or
 * TETHER_ERR_AUTH; cb is not called). An unknown well-formed token in cluster mode: a read of
 * Redis's changes goes on the asynchronous connection (one at a time: a token that comes while one
 * is due waits for the next), the token's hash waits (at most TT_GRANTS_WAIT_MAX of them, each
 * TT_GRANTS_WAIT_MS), and TT_GRANTS_PENDING is returned with *handle: cb is called exactly once,
 * later, never from inside this call. At the cap, or with the connection down: TETHER_ERR_AUTH
 * now. */
int tt_grants_check_token_async(struct tt_grants *g, const uint8_t *tok, size_t len, int64_t now,
                                char id[TT_GRANT_ID_LEN + 1], char user[TT_MAX_NAME + 1],
                                tt_grants_token_cb cb, void *ud, struct tt_grants_wait **handle);

/* The waiting token's callback will not be called (its record goes when the read is answered or
 * times out). NULL is fine. */
void tt_grants_check_cancel(struct tt_grants_wait *w);

/* True when tok[0..len) has a grant token's form (TT_GRANT_TOKEN_PREFIX and 43 base64url
 * characters): a caller given a secret may tell a token from a password with it. */
bool tt_grants_is_token(const uint8_t *tok, size_t len);

/* A POST /api/grants body, parsed and checked. */
struct tt_grants_request {
    char user[TT_MAX_NAME + 1];
    char patterns[TT_GRANTS_MAX_PATTERNS][TT_PATTERN_MAX + 1];
    const char *p[TT_GRANTS_MAX_PATTERNS]; /* p[i] = patterns[i], for tt_grants_create */
    size_t n;
    uint64_t ttl_ms;
};

/* Parses body[0..len) as {"user":"NAME","grants":["DEVICE/SERVICE",...],"ttl":"15m"} into rq:
 * a JSON object (duplicate keys refused) with exactly these fields (ttl may be left out:
 * TT_GRANTS_TTL_DEFAULT_MS; it is a duration string, or a number of seconds), a user and
 * patterns that pass the checks above. Returns 0, or -1 with a one-line message in err naming
 * the field that is wrong. */
int tt_grants_parse_request(const char *body, size_t len, struct tt_grants_request *rq,
                            char err[TT_ERRLEN]);

/* The grant as Redis keeps it ({"user","grants","created","expires","hash"}, compact JSON;
 * malloc'd), or NULL when out of memory. */
char *tt_grants_record(const struct tt_grant *gr);

/* The grant id with the record text[0..len) (as tt_grants_record writes it), checked as a
 * request is (a bad id, user, pattern, time or hash: NULL); malloc'd, freed with free(). NULL
 * also when out of memory. */
struct tt_grant *tt_grants_record_parse(const char *id, const char *text, size_t len);

/* g's counters. */
void tt_grants_get_stats(const struct tt_grants *g, struct tt_grants_stats *s);

#endif
