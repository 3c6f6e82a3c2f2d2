/* sessions.c - browser sign-in sessions (sessions.h): a table keyed by the hex SHA-256 of each
 * session id, a list by age (eviction at TT_SESSIONS_MAX, and the expiry sweep: without Redis
 * every session lives ttl_ms, so the oldest expires first), and per principal a record with its
 * own list (eviction at TT_SESSIONS_PER_PRINCIPAL). With Redis the same caps hold cluster wide
 * in two sorted sets scored by expiry, kept by the script that makes a session. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include <openssl/sha.h>
#include "tether_err.h"
#include "common/log.h"
#include "relay/access/sessions.h"
#include "relay/store/redisasync.h"

#define P TT_REDIS_PREFIX
#define OWNER_KEY_MAX (2 + TT_MAX_NAME + 1)
#define SWEEP_EVERY_MS 1000
#define SWEEP_SLICE 4096

struct tt_sessions_owner {
    struct tt_session *oldest, *newest;
    size_t n;
    char key[OWNER_KEY_MAX];
};

struct tt_session {
    struct tt_session *prev, *next;   /* the table's age list */
    struct tt_session *pprev, *pnext; /* the owner's */
    struct tt_sessions_owner *owner;
    struct tt_principal who;
    int64_t expires; /* unix ms */
    int64_t checked; /* with Redis: when it was last read there (unix ms) */
    bool local_only; /* made while Redis could not be reached: not looked for there */
    bool rechecking; /* a re-check is due on the asynchronous connection */
    char key[TT_SESSION_KEY_LEN + 1];
    char host[]; /* normalized */
};

static void owner_key(const struct tt_principal *who, char out[OWNER_KEY_MAX])
{
    if (who->kind == TT_PRINCIPAL_GRANT)
        snprintf(out, OWNER_KEY_MAX, "g:%s", who->grant);
    else
        snprintf(out, OWNER_KEY_MAX, "u:%s", who->user);
}

static void to_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int lowhex(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int tt_sessions_key_of(const uint8_t *v, size_t len, char key[TT_SESSION_KEY_LEN + 1])
{
    uint8_t id[TT_SESSION_ID_BYTES], h[SHA256_DIGEST_LENGTH];
    key[0] = '\0';
    if (len != TT_SESSION_COOKIE_LEN)
        return TETHER_ERR_INVAL;
    for (size_t i = 0; i < TT_SESSION_ID_BYTES; i++) {
        int hi = lowhex(v[2 * i]), lo = lowhex(v[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return TETHER_ERR_INVAL;
        id[i] = (uint8_t)(hi << 4 | lo);
    }
    SHA256(id, sizeof(id), h);
    to_hex(h, sizeof(h), key);
    tt_secret_wipe(id, sizeof(id));
    return 0;
}

static void on_timer(uv_timer_t *t);

void tt_sessions_init(struct tt_sessions *s, uv_loop_t *loop, uint64_t ttl_ms,
                      struct tt_redisconn *redis)
{
    memset(s, 0, sizeof(*s));
    tt_strmap_init(&s->by_key);
    tt_strmap_init(&s->owners);
    tt_strmap_init(&s->deleting);
    s->ttl_ms = ttl_ms;
    s->max = TT_SESSIONS_MAX;
    s->per_principal = TT_SESSIONS_PER_PRINCIPAL;
    s->redis = redis;
    s->loop = loop;
    if (loop && uv_timer_init(loop, &s->wait_timer) == 0) {
        s->wait_timer.data = s;
        s->wait_timer_init = true;
    }
    if (loop && uv_timer_init(loop, &s->timer) == 0) {
        s->timer.data = s;
        uv_timer_start(&s->timer, on_timer, SWEEP_EVERY_MS, SWEEP_EVERY_MS);
        uv_unref((uv_handle_t *)&s->timer);
        s->timer_on = true;
    }
}

static void wait_fail_all(struct tt_sessions *s, int rc);

void tt_sessions_close(struct tt_sessions *s)
{
    wait_fail_all(s, TETHER_ERR_IO); /* the holders are told before the timer goes */
    if (s->wait_timer_init) {
        s->wait_timer_init = false;
        s->wait_timer_on = false;
        uv_close((uv_handle_t *)&s->wait_timer, NULL);
    }
    if (!s->timer_on)
        return;
    s->timer_on = false;
    uv_close((uv_handle_t *)&s->timer, NULL);
}

/* Takes e out of every list and the table, and frees it. */
static void drop(struct tt_sessions *s, struct tt_session *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        s->oldest = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        s->newest = e->prev;
    struct tt_sessions_owner *o = e->owner;
    if (e->pprev)
        e->pprev->pnext = e->pnext;
    else
        o->oldest = e->pnext;
    if (e->pnext)
        e->pnext->pprev = e->pprev;
    else
        o->newest = e->pprev;
    if (--o->n == 0) {
        tt_strmap_del(&s->owners, o->key);
        free(o);
    }
    tt_strmap_del(&s->by_key, e->key);
    s->n--;
    free(e);
}

void tt_sessions_free(struct tt_sessions *s)
{
    while (s->oldest)
        drop(s, s->oldest);
    tt_strmap_reset(&s->by_key);
    tt_strmap_reset(&s->owners);
    tt_strmap_reset(&s->deleting);
}

/* Puts a session into the table (evicting at the caps). Returns it, or NULL (out of memory). */
static struct tt_session *insert(struct tt_sessions *s, const char *key, const char *host,
                                 const struct tt_principal *who, int64_t expires, int64_t now)
{
    char ok[OWNER_KEY_MAX];
    owner_key(who, ok);
    struct tt_sessions_owner *o = tt_strmap_get(&s->owners, ok);
    if (o && o->n >= s->per_principal) {
        s->evicted_principal++;
        TT_LOG(TT_LOG_DEBUG, "session evicted user=%s reason=principal", TT_LOG_V(who->user));
        bool last = o->n == 1;
        drop(s, o->oldest);
        if (last)
            o = NULL; /* freed with its last session */
    }
    if (s->n >= s->max && s->oldest) {
        s->evicted_total++;
        struct tt_session *old = s->oldest;
        if (old->owner == o && o->n == 1)
            o = NULL;
        drop(s, old);
    }
    size_t hl = strlen(host);
    struct tt_session *e = calloc(1, sizeof(*e) + hl + 1);
    if (!e)
        return NULL;
    if (!o) {
        o = calloc(1, sizeof(*o));
        if (!o || tt_strmap_put(&s->owners, ok, o) != 0) {
            free(o);
            free(e);
            return NULL;
        }
        memcpy(o->key, ok, sizeof(o->key));
    }
    memcpy(e->key, key, TT_SESSION_KEY_LEN);
    e->key[TT_SESSION_KEY_LEN] = '\0';
    memcpy(e->host, host, hl + 1);
    e->who = *who;
    e->expires = expires;
    e->checked = now;
    e->owner = o;
    if (tt_strmap_put(&s->by_key, e->key, e) != 0) {
        if (o->n == 0) {
            tt_strmap_del(&s->owners, o->key);
            free(o);
        }
        free(e);
        return NULL;
    }
    e->prev = s->newest;
    if (s->newest)
        s->newest->next = e;
    else
        s->oldest = e;
    s->newest = e;
    e->pprev = o->newest;
    if (o->newest)
        o->newest->pnext = e;
    else
        o->oldest = e;
    o->newest = e;
    o->n++;
    s->n++;
    return e;
}

/* ---- Redis ------------------------------------------------------------------------------ */

/* Makes a session in Redis and keeps both caps: ARGV prefix, key, value, expires, now, owner
 * key, per-principal cap, total cap. Returns the keys of the sessions it evicted, each after a
 * letter saying which cap did it ('p' the principal's, 't' the total). */
static const char create_lua[] =
    "local p, key, val = ARGV[1], ARGV[2], ARGV[3]\n"
    "local exp, now = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "redis.call('SET', p .. 'session:' .. key, val, 'PX', math.max(exp - now, 1))\n"
    "local gone = {}\n"
    "local function cap(z, n, expire, tag)\n"
    "  redis.call('ZREMRANGEBYSCORE', z, '-inf', now)\n"
    "  redis.call('ZADD', z, exp, key)\n"
    "  local c = redis.call('ZCARD', z)\n"
    "  if c > n then\n"
    "    local old = redis.call('ZPOPMIN', z, c - n)\n"
    "    for i = 1, #old, 2 do\n"
    "      redis.call('DEL', p .. 'session:' .. old[i])\n"
    "      gone[#gone + 1] = tag .. old[i]\n"
    "    end\n"
    "  end\n"
    "  if expire then\n"
    "    local top = redis.call('ZRANGE', z, -1, -1, 'WITHSCORES')\n"
    "    if #top == 2 then redis.call('PEXPIREAT', z, math.floor(tonumber(top[2]))) end\n"
    "  end\n"
    "end\n"
    "cap(p .. 'sessions-of:' .. ARGV[6], tonumber(ARGV[7]), true, 'p')\n"
    "cap(p .. 'sessions', tonumber(ARGV[8]), false, 't')\n"
    "return gone\n";

/* Ends a session in Redis: ARGV prefix, key, owner key ("" unknown). */
static const char delete_lua[] = "local p, key = ARGV[1], ARGV[2]\n"
                                 "redis.call('DEL', p .. 'session:' .. key)\n"
                                 "redis.call('ZREM', p .. 'sessions', key)\n"
                                 "if ARGV[3] ~= '' then\n"
                                 "  redis.call('ZREM', p .. 'sessions-of:' .. ARGV[3], key)\n"
                                 "end\n"
                                 "return 1\n";

static redisReply *eval(struct tt_sessions *s, const char *script, int nargs, const char **args)
{
    const char *argv[12];
    size_t lens[12];
    int argc = 0;
    argv[argc++] = "EVAL";
    argv[argc++] = script;
    argv[argc++] = "0";
    argv[argc++] = P;
    for (int i = 0; i < nargs && argc < 12; i++)
        argv[argc++] = args[i];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    redisReply *rep = tt_redisconn_argv(s->redis, argc, argv, lens);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        s->redis_errors++;
        if (rep)
            freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

/* The JSON kept in Redis for a session. Returns a malloc'd string or NULL. */
static char *encode(const char *host, const struct tt_principal *who, int64_t expires)
{
    json_t *o = json_pack("{s:s,s:i,s:s,s:s,s:I}", "h", host, "k", (int)who->kind, "u", who->user,
                          "g", who->grant, "e", (json_int_t)expires);
    if (!o)
        return NULL;
    char *out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return out;
}

/* Reads what encode wrote (from Redis: checked as any input). Returns 0 or -1. */
static int decode(const char *text, size_t len, char host[TT_HOSTLEN], struct tt_principal *who,
                  int64_t *expires)
{
    json_error_t jerr;
    json_t *o = json_loadb(text, len, 0, &jerr);
    const char *h = NULL, *u = NULL, *g = NULL;
    int kind = 0;
    json_int_t e = 0;
    int rc = -1;
    memset(who, 0, sizeof(*who));
    if (o &&
        json_unpack(o, "{s:s,s:i,s:s,s:s,s:I}", "h", &h, "k", &kind, "u", &u, "g", &g, "e", &e) ==
            0 &&
        (kind == TT_PRINCIPAL_USER || kind == TT_PRINCIPAL_GRANT) && strlen(h) < TT_HOSTLEN &&
        strlen(u) <= TT_MAX_NAME && strlen(g) <= TT_GRANT_ID_LEN) {
        snprintf(host, TT_HOSTLEN, "%s", h);
        who->kind = (uint8_t)kind;
        snprintf(who->user, sizeof(who->user), "%s", u);
        snprintf(who->grant, sizeof(who->grant), "%s", g);
        *expires = (int64_t)e;
        rc = 0;
    }
    json_decref(o);
    return rc;
}

enum { REDIS_GONE = 0, REDIS_FOUND = 1, REDIS_DOWN = 2 };

/* Reads session key from Redis into *host, *who, *expires. */
static int redis_read(struct tt_sessions *s, const char *key, char host[TT_HOSTLEN],
                      struct tt_principal *who, int64_t *expires)
{
    redisReply *rep = tt_redisconn_cmd(s->redis, "GET " P "session:%s", key);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        s->redis_errors++;
        if (rep)
            freeReplyObject(rep);
        return REDIS_DOWN;
    }
    int rc = REDIS_GONE;
    if (rep->type == REDIS_REPLY_STRING && decode(rep->str, rep->len, host, who, expires) == 0)
        rc = REDIS_FOUND;
    freeReplyObject(rep);
    return rc;
}

/* The sessions create_lua evicted (its reply): dropped here too, and counted. */
static void apply_evictions(struct tt_sessions *s, const redisReply *rep)
{
    if (rep->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *g = rep->element[i];
        if (g->type != REDIS_REPLY_STRING || g->len != TT_SESSION_KEY_LEN + 1)
            continue;
        struct tt_session *e = tt_strmap_get(&s->by_key, g->str + 1);
        if (e)
            drop(s, e);
        if (g->str[0] == 'p')
            s->evicted_principal++;
        else
            s->evicted_total++;
    }
}

/* ---- the interface ---------------------------------------------------------------------- */

int tt_sessions_create(struct tt_sessions *s, const char *host, const struct tt_principal *who,
                       int64_t now, char cookie[TT_SESSION_COOKIE_LEN + 1],
                       char key[TT_SESSION_KEY_LEN + 1])
{
    uint8_t id[TT_SESSION_ID_BYTES];
    cookie[0] = key[0] = '\0';
    if (tt_random_bytes(id, sizeof(id)) != 0)
        return TETHER_ERR_IO;
    to_hex(id, sizeof(id), cookie);
    tt_secret_wipe(id, sizeof(id));
    tt_sessions_key_of((const uint8_t *)cookie, TT_SESSION_COOKIE_LEN, key);
    int64_t expires = now + (int64_t)s->ttl_ms;
    if (!insert(s, key, host, who, expires, now)) {
        tt_secret_wipe(cookie, TT_SESSION_COOKIE_LEN);
        cookie[0] = key[0] = '\0';
        return TETHER_ERR_NOMEM;
    }
    s->created++;
    if (!s->redis)
        return 0;
    char *val = encode(host, who, expires);
    char ok[OWNER_KEY_MAX], exp_s[24], now_s[24], cap_s[24], all_s[24];
    owner_key(who, ok);
    snprintf(exp_s, sizeof(exp_s), "%lld", (long long)expires);
    snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
    snprintf(cap_s, sizeof(cap_s), "%zu", s->per_principal);
    snprintf(all_s, sizeof(all_s), "%zu", s->max);
    const char *args[] = {key, val ? val : "", exp_s, now_s, ok, cap_s, all_s};
    redisReply *rep = val ? eval(s, create_lua, 7, args) : NULL;
    free(val);
    if (!rep) {
        TT_LOG(TT_LOG_INFO, "session kept on this node only: Redis unreachable");
        struct tt_session *e = tt_strmap_get(&s->by_key, key);
        if (e)
            e->local_only = true;
        return 0;
    }
    apply_evictions(s, rep);
    freeReplyObject(rep);
    return 0;
}

void tt_sessions_use_redis_async(struct tt_sessions *s, struct tt_redisasync *ra)
{
    s->ra = ra;
}

/* A re-check sent on the asynchronous connection: the session is found again by its key when
 * the answer comes (it may have gone meanwhile). */
struct recheck {
    struct tt_sessions *s;
    char key[TT_SESSION_KEY_LEN + 1];
};

static void on_recheck(redisReply *rep, void *ud)
{
    struct recheck *q = ud;
    struct tt_sessions *s = q->s;
    struct tt_session *e = tt_strmap_get(&s->by_key, q->key);
    s->rechecks_due--;
    if (e)
        e->rechecking = false;
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        s->redis_errors++; /* what this node knows stands until Redis answers again */
    } else if (e) {
        char host[TT_HOSTLEN];
        struct tt_principal who;
        int64_t expires = 0;
        if (rep->type == REDIS_REPLY_STRING &&
            decode(rep->str, rep->len, host, &who, &expires) == 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            e->checked = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
            e->expires = expires;
        } else {
            TT_LOG(TT_LOG_DEBUG, "session ended on another node user=%s", TT_LOG_V(e->who.user));
            drop(s, e);
        }
    }
    free(q);
}

/* Sends the re-read of e (one at a time per session, TT_SESSIONS_RECHECKS in all). */
static void recheck_async(struct tt_sessions *s, struct tt_session *e)
{
    if (e->rechecking)
        return;
    if (s->rechecks_due >= TT_SESSIONS_RECHECKS) {
        s->rechecks_full++;
        return;
    }
    struct recheck *q = malloc(sizeof(*q));
    if (!q)
        return;
    q->s = s;
    memcpy(q->key, e->key, sizeof(q->key));
    if (tt_redisasync_cmd(s->ra, on_recheck, q, "GET " P "session:%s", e->key) != 0) {
        s->redis_errors++; /* down or at its cap: read again at a later request */
        free(q);
        return;
    }
    e->rechecking = true;
    s->rechecks_due++;
    s->rechecks++;
}

/* The live session called key at now, refreshed from Redis when it has not been read for
 * TT_SESSIONS_RECHECK_MS (and read when this node does not have it). NULL when there is none. */
static struct tt_session *lookup(struct tt_sessions *s, const char *key, int64_t now, bool budget)
{
    struct tt_session *e = tt_strmap_get(&s->by_key, key);
    bool stale = s->redis && (!e || (!e->local_only && now - e->checked >= TT_SESSIONS_RECHECK_MS));
    if (stale && budget && e) {
        if (now / 1000 != s->alive_second) {
            s->alive_second = now / 1000;
            s->alive_reads = 0;
        }
        if (s->alive_reads >= TT_SESSIONS_ALIVE_READS)
            stale = false; /* read again in a later second */
        else
            s->alive_reads++;
    }
    if (stale && e && s->ra) {
        /* known here: re-read without waiting; what the node knows stands until the answer */
        recheck_async(s, e);
        stale = false;
    }
    if (stale && !e && s->ra)
        return NULL; /* unknown here: only a caller that holds its request reads it (fetch) */
    if (stale) {
        char host[TT_HOSTLEN];
        struct tt_principal who;
        int64_t expires = 0;
        int rc = redis_read(s, key, host, &who, &expires);
        if (rc == REDIS_GONE) {
            if (e) {
                TT_LOG(TT_LOG_DEBUG, "session ended on another node user=%s",
                       TT_LOG_V(e->who.user));
                drop(s, e);
            }
            return NULL;
        }
        if (rc == REDIS_FOUND) {
            if (e) {
                e->checked = now;
                e->expires = expires;
            } else {
                e = insert(s, key, host, &who, expires, now);
            }
        }
        /* REDIS_DOWN: what this node knows stands until Redis answers again */
    }
    if (e && e->expires <= now) {
        s->expired++;
        drop(s, e);
        return NULL;
    }
    return e;
}

int tt_sessions_find_or_unknown(struct tt_sessions *s, const uint8_t *v, size_t len,
                                const char *host, int64_t now, struct tt_principal *who,
                                char key[TT_SESSION_KEY_LEN + 1])
{
    char k[TT_SESSION_KEY_LEN + 1];
    if (tt_sessions_key_of(v, len, k) != 0)
        return TETHER_ERR_NOT_FOUND;
    if (tt_sessions_async(s) && !tt_strmap_get(&s->by_key, k)) {
        memcpy(key, k, sizeof(k));
        return TT_SESSIONS_UNKNOWN;
    }
    return tt_sessions_find(s, v, len, host, now, who, key);
}

int tt_sessions_find(struct tt_sessions *s, const uint8_t *v, size_t len, const char *host,
                     int64_t now, struct tt_principal *who, char key[TT_SESSION_KEY_LEN + 1])
{
    char k[TT_SESSION_KEY_LEN + 1];
    if (tt_sessions_key_of(v, len, k) != 0)
        return TETHER_ERR_NOT_FOUND;
    struct tt_session *e = lookup(s, k, now, false);
    if (!e || strcmp(e->host, host) != 0)
        return TETHER_ERR_NOT_FOUND;
    *who = e->who;
    memcpy(key, k, sizeof(k));
    return 0;
}

bool tt_sessions_alive(struct tt_sessions *s, const char *key, int64_t now)
{
    return lookup(s, key, now, true) != NULL;
}

void tt_sessions_delete(struct tt_sessions *s, const char *key)
{
    struct tt_session *e = tt_strmap_get(&s->by_key, key);
    char ok[OWNER_KEY_MAX] = "";
    if (e) {
        owner_key(&e->who, ok);
        drop(s, e);
        s->signed_out++;
    }
    if (!s->redis)
        return;
    const char *args[] = {key, ok};
    redisReply *rep = eval(s, delete_lua, 2, args);
    if (rep)
        freeReplyObject(rep);
    else
        TT_LOG(TT_LOG_INFO, "session ended on this node only: Redis unreachable");
}

/* ---- jobs that hold a request (async mode) ---------------------------------------------- */

/* Ends sessions in Redis, whatever node made them: ARGV prefix, the principal kind of a grant,
 * then the keys. Each session's owner (for its per-principal set) is read from its record. */
static const char delete_many_lua[] =
    "local p, grant = ARGV[1], ARGV[2]\n"
    "for i = 3, #ARGV do\n"
    "  local key = ARGV[i]\n"
    "  local sk = p .. 'session:' .. key\n"
    "  local v = redis.call('GET', sk)\n"
    "  if v then\n"
    "    local ok, o = pcall(cjson.decode, v)\n"
    "    if ok and type(o) == 'table' then\n"
    "      local owner = 'u:' .. tostring(o.u)\n"
    "      if tostring(o.k) == grant then owner = 'g:' .. tostring(o.g) end\n"
    "      redis.call('ZREM', p .. 'sessions-of:' .. owner, key)\n"
    "    end\n"
    "    redis.call('DEL', sk)\n"
    "  end\n"
    "  redis.call('ZREM', p .. 'sessions', key)\n"
    "end\n"
    "return 1\n";

enum job_kind { JOB_READ = 0, JOB_CREATE = 1, JOB_DELETE = 2 };

/* One job. It lives until Redis answers (redisasync.h calls back exactly once, with NULL at the
 * latest when the connection is freed); its holder hears of it through cb while it waits on the
 * list (a timeout or a cancel takes it off and clears cb first). */
struct tt_sessions_job {
    struct tt_sessions_job *prev, *next; /* the waiting list, while linked */
    struct tt_sessions *s;
    enum job_kind kind;
    bool linked, deleting;
    uint64_t start; /* uv_now */
    tt_sessions_cb cb;
    void *ud;
    size_t nkeys;
    char keys[TT_SESSIONS_JOB_KEYS][TT_SESSION_KEY_LEN + 1];
    /* JOB_CREATE: what goes into the table once Redis has it */
    int64_t expires;
    struct tt_principal who;
    char host[TT_HOSTLEN];
};

bool tt_sessions_async(const struct tt_sessions *s)
{
    return s->redis && s->ra;
}

static void job_unlink(struct tt_sessions *s, struct tt_sessions_job *j)
{
    if (!j->linked)
        return;
    if (j->prev)
        j->prev->next = j->next;
    else
        s->wait_head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        s->wait_tail = j->prev;
    j->prev = j->next = NULL;
    j->linked = false;
    s->waiting--;
    if (!s->wait_head && s->wait_timer_on) {
        s->wait_timer_on = false;
        uv_timer_stop(&s->wait_timer);
    }
}

/* Tells j's holder rc (once) and takes j off the list; j itself stays for Redis' answer. */
static void job_finish(struct tt_sessions *s, struct tt_sessions_job *j, int rc)
{
    tt_sessions_cb cb = j->cb;
    void *ud = j->ud;
    job_unlink(s, j);
    j->cb = NULL;
    if (cb)
        cb(ud, rc);
}

static void on_wait_timer(uv_timer_t *t)
{
    struct tt_sessions *s = t->data;
    uint64_t now = uv_now(t->loop);
    /* oldest first: every job waits as long, so the first one not late ends the walk */
    while (s->wait_head && now - s->wait_head->start >= TT_SESSIONS_WAIT_MS) {
        s->wait_timeouts++;
        job_finish(s, s->wait_head, TETHER_ERR_TIMEOUT);
    }
}

static void wait_fail_all(struct tt_sessions *s, int rc)
{
    while (s->wait_head)
        job_finish(s, s->wait_head, rc);
}

/* A new job of kind, on the list (not sent yet), or NULL: at the cap (counted) or out of
 * memory. */
static struct tt_sessions_job *job_new(struct tt_sessions *s, enum job_kind kind, tt_sessions_cb cb,
                                       void *ud, int *err)
{
    if (s->waiting >= TT_SESSIONS_WAIT_MAX) {
        s->wait_full++;
        *err = TETHER_ERR_CAPACITY;
        return NULL;
    }
    struct tt_sessions_job *j = calloc(1, sizeof(*j));
    if (!j) {
        *err = TETHER_ERR_NOMEM;
        return NULL;
    }
    j->s = s;
    j->kind = kind;
    j->cb = cb;
    j->ud = ud;
    j->start = s->loop ? uv_now(s->loop) : 0;
    j->prev = s->wait_tail;
    if (s->wait_tail)
        s->wait_tail->next = j;
    else
        s->wait_head = j;
    s->wait_tail = j;
    j->linked = true;
    s->waiting++;
    if (s->wait_timer_init && !s->wait_timer_on) {
        s->wait_timer_on = true;
        uv_timer_start(&s->wait_timer, on_wait_timer, TT_SESSIONS_WAIT_TICK_MS,
                       TT_SESSIONS_WAIT_TICK_MS);
    }
    return j;
}

/* j could not be sent (Redis unreachable, its connection at its cap): gone, never called. */
static int job_refused(struct tt_sessions *s, struct tt_sessions_job *j, int rc)
{
    s->redis_errors++;
    s->wait_unreachable++;
    job_unlink(s, j);
    free(j);
    return rc == TETHER_ERR_NOMEM ? rc : TETHER_ERR_IO;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_forgotten(redisReply *rep, void *ud)
{
    (void)rep;
    (void)ud;
}

/* A session Redis made after its holder stopped waiting (no cookie was handed out): deleted
 * again, not waited for, so that it does not hold a place under the caps until it expires. */
static void forget_late(struct tt_sessions *s, const char *key)
{
    char grant[8];
    snprintf(grant, sizeof(grant), "%d", (int)TT_PRINCIPAL_GRANT);
    const char *argv[] = {"EVAL", delete_many_lua, "0", P, grant, key};
    size_t lens[sizeof(argv) / sizeof(argv[0])];
    for (size_t i = 0; i < sizeof(argv) / sizeof(argv[0]); i++)
        lens[i] = strlen(argv[i]);
    if (tt_redisasync_argv(s->ra, (int)(sizeof(argv) / sizeof(argv[0])), argv, lens, on_forgotten,
                           NULL) != 0)
        s->redis_errors++; /* it expires with its lifetime */
}

/* j's keys out of s->deleting (once). */
static void deleting_end(struct tt_sessions *s, struct tt_sessions_job *j)
{
    if (!j->deleting)
        return;
    j->deleting = false;
    for (size_t i = 0; i < j->nkeys; i++) {
        uintptr_t n = (uintptr_t)tt_strmap_get(&s->deleting, j->keys[i]);
        if (n > 1)
            tt_strmap_put(&s->deleting, j->keys[i], (void *)(n - 1)); /* (replaces: no alloc) */
        else if (n == 1)
            tt_strmap_del(&s->deleting, j->keys[i]);
    }
}

/* j's keys (a delete about to be sent) into s->deleting. Returns 0 or TETHER_ERR_NOMEM (then
 * none is). */
static int deleting_add(struct tt_sessions *s, struct tt_sessions_job *j)
{
    for (size_t i = 0; i < j->nkeys; i++) {
        uintptr_t n = (uintptr_t)tt_strmap_get(&s->deleting, j->keys[i]);
        if (tt_strmap_put(&s->deleting, j->keys[i], (void *)(n + 1)) != 0) {
            j->nkeys = i;
            j->deleting = true;
            deleting_end(s, j);
            return TETHER_ERR_NOMEM;
        }
    }
    j->deleting = true;
    return 0;
}

/* Whether key is being deleted in Redis by a sign-out of this node not answered yet. A read
 * sent before that delete (the connection keeps the order) may still find the session: it must
 * not come back into the table, where it would pass until its re-check. */
static bool being_deleted(const struct tt_sessions *s, const char *key)
{
    return tt_strmap_get(&s->deleting, key) != NULL;
}

/* Redis answered job ud (rep NULL: no answer). What the answer says is applied to the table
 * whether or not anyone still waits; then the holder, if any, hears of it. */
static void on_job_reply(redisReply *rep, void *ud)
{
    struct tt_sessions_job *j = ud;
    struct tt_sessions *s = j->s;
    int rc = 0;
    deleting_end(s, j);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        s->redis_errors++;
        if (j->cb)
            s->wait_unreachable++;
        rc = TETHER_ERR_IO;
    } else if (j->kind == JOB_READ && rep->type == REDIS_REPLY_ARRAY) {
        int64_t now = wall_ms();
        for (size_t i = 0; i < j->nkeys && i < rep->elements; i++) {
            const redisReply *v = rep->element[i];
            char host[TT_HOSTLEN];
            struct tt_principal who;
            int64_t expires = 0;
            if (v->type != REDIS_REPLY_STRING ||
                decode(v->str, v->len, host, &who, &expires) != 0 || expires <= now)
                continue; /* gone (or never made): not in the table, refused */
            if (being_deleted(s, j->keys[i])) {
                s->reads_superseded++; /* signed out here meanwhile: refused */
                continue;
            }
            struct tt_session *e = tt_strmap_get(&s->by_key, j->keys[i]);
            if (e) {
                e->checked = now;
                e->expires = expires;
            } else if (!insert(s, j->keys[i], host, &who, expires, now) && j->cb) {
                rc = TETHER_ERR_NOMEM;
            }
        }
    } else if (j->kind == JOB_CREATE) {
        apply_evictions(s, rep);
        if (j->cb) { /* the holder still waits: the session may be given out now */
            if (insert(s, j->keys[0], j->host, &j->who, j->expires, wall_ms()))
                s->created++;
            else
                rc = TETHER_ERR_NOMEM;
        }
        if ((!j->cb || rc != 0) && s->ra) {
            forget_late(s, j->keys[0]);
        }
    }
    job_finish(s, j, rc);
    tt_secret_wipe(j->keys, sizeof(j->keys));
    free(j);
}

int tt_sessions_fetch(struct tt_sessions *s, const char (*keys)[TT_SESSION_KEY_LEN + 1], size_t n,
                      tt_sessions_cb cb, void *ud, struct tt_sessions_job **job)
{
    *job = NULL;
    if (!tt_sessions_async(s) || n == 0 || n > TT_SESSIONS_JOB_KEYS)
        return TETHER_ERR_IO;
    int err = 0;
    struct tt_sessions_job *j = job_new(s, JOB_READ, cb, ud, &err);
    if (!j)
        return err;
    char names[TT_SESSIONS_JOB_KEYS][sizeof(P) + 8 + TT_SESSION_KEY_LEN];
    const char *argv[1 + TT_SESSIONS_JOB_KEYS];
    size_t lens[1 + TT_SESSIONS_JOB_KEYS];
    argv[0] = "MGET";
    lens[0] = 4;
    for (size_t i = 0; i < n; i++) {
        memcpy(j->keys[i], keys[i], TT_SESSION_KEY_LEN + 1);
        int l = snprintf(names[i], sizeof(names[i]), "%ssession:%s", P, keys[i]);
        argv[1 + i] = names[i];
        lens[1 + i] = (size_t)l;
    }
    j->nkeys = n;
    int rc = tt_redisasync_argv(s->ra, (int)(1 + n), argv, lens, on_job_reply, j);
    if (rc != 0)
        return job_refused(s, j, rc);
    s->waits[JOB_READ]++;
    *job = j;
    return 0;
}

int tt_sessions_create_async(struct tt_sessions *s, const char *host,
                             const struct tt_principal *who, int64_t now,
                             char cookie[TT_SESSION_COOKIE_LEN + 1],
                             char key[TT_SESSION_KEY_LEN + 1], tt_sessions_cb cb, void *ud,
                             struct tt_sessions_job **job)
{
    *job = NULL;
    if (!tt_sessions_async(s))
        return tt_sessions_create(s, host, who, now, cookie, key);
    uint8_t id[TT_SESSION_ID_BYTES];
    cookie[0] = key[0] = '\0';
    if (strlen(host) >= TT_HOSTLEN)
        return TETHER_ERR_INVAL;
    if (tt_random_bytes(id, sizeof(id)) != 0)
        return TETHER_ERR_IO;
    int err = 0;
    struct tt_sessions_job *j = job_new(s, JOB_CREATE, cb, ud, &err);
    if (!j) {
        tt_secret_wipe(id, sizeof(id));
        return err;
    }
    to_hex(id, sizeof(id), cookie);
    tt_secret_wipe(id, sizeof(id));
    tt_sessions_key_of((const uint8_t *)cookie, TT_SESSION_COOKIE_LEN, key);
    memcpy(j->keys[0], key, TT_SESSION_KEY_LEN + 1);
    j->nkeys = 1;
    j->expires = now + (int64_t)s->ttl_ms;
    j->who = *who;
    snprintf(j->host, sizeof(j->host), "%s", host);
    char *val = encode(host, who, j->expires);
    char ok[OWNER_KEY_MAX], exp_s[24], now_s[24], cap_s[24], all_s[24];
    owner_key(who, ok);
    snprintf(exp_s, sizeof(exp_s), "%lld", (long long)j->expires);
    snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
    snprintf(cap_s, sizeof(cap_s), "%zu", s->per_principal);
    snprintf(all_s, sizeof(all_s), "%zu", s->max);
    const char *argv[] = {"EVAL", create_lua, "0", P,     key,  val ? val : "",
                          exp_s,  now_s,      ok,  cap_s, all_s};
    size_t lens[sizeof(argv) / sizeof(argv[0])];
    for (size_t i = 0; i < sizeof(argv) / sizeof(argv[0]); i++)
        lens[i] = strlen(argv[i]);
    int rc = val ? tt_redisasync_argv(s->ra, (int)(sizeof(argv) / sizeof(argv[0])), argv, lens,
                                      on_job_reply, j)
                 : TETHER_ERR_NOMEM;
    free(val);
    if (rc != 0) {
        tt_secret_wipe(cookie, TT_SESSION_COOKIE_LEN);
        cookie[0] = key[0] = '\0';
        return job_refused(s, j, rc);
    }
    s->waits[JOB_CREATE]++;
    *job = j;
    return 0;
}

int tt_sessions_delete_async(struct tt_sessions *s, const char (*keys)[TT_SESSION_KEY_LEN + 1],
                             size_t n, tt_sessions_cb cb, void *ud, struct tt_sessions_job **job)
{
    *job = NULL;
    if (n > TT_SESSIONS_JOB_KEYS)
        n = TT_SESSIONS_JOB_KEYS;
    if (!tt_sessions_async(s)) {
        for (size_t i = 0; i < n; i++)
            tt_sessions_delete(s, keys[i]);
        return 0;
    }
    /* here at once: the cookies stop working on this node whatever Redis does */
    for (size_t i = 0; i < n; i++) {
        struct tt_session *e = tt_strmap_get(&s->by_key, keys[i]);
        if (e) {
            drop(s, e);
            s->signed_out++;
        }
    }
    if (n == 0)
        return 0;
    int err = 0;
    struct tt_sessions_job *j = job_new(s, JOB_DELETE, cb, ud, &err);
    if (!j)
        return err;
    char grant[8];
    snprintf(grant, sizeof(grant), "%d", (int)TT_PRINCIPAL_GRANT);
    const char *argv[5 + TT_SESSIONS_JOB_KEYS] = {"EVAL", delete_many_lua, "0", P, grant};
    size_t lens[5 + TT_SESSIONS_JOB_KEYS];
    for (size_t i = 0; i < n; i++) {
        memcpy(j->keys[i], keys[i], TT_SESSION_KEY_LEN + 1);
        argv[5 + i] = j->keys[i];
    }
    j->nkeys = n;
    for (size_t i = 0; i < 5 + n; i++)
        lens[i] = strlen(argv[i]);
    int rc = deleting_add(s, j);
    if (rc == 0)
        rc = tt_redisasync_argv(s->ra, (int)(5 + n), argv, lens, on_job_reply, j);
    if (rc != 0) {
        deleting_end(s, j);
        return job_refused(s, j, rc);
    }
    s->waits[JOB_DELETE]++;
    *job = j;
    return 0;
}

void tt_sessions_job_cancel(struct tt_sessions_job *job)
{
    if (!job)
        return;
    job_unlink(job->s, job);
    job->cb = NULL;
}

struct slice {
    struct tt_sessions *s;
    int64_t now;
    size_t dropped;
};

static int expire_one(const char *key, void *val, void *ud)
{
    struct slice *sl = ud;
    struct tt_session *e = val;
    (void)key;
    if (e->expires <= sl->now) {
        sl->s->expired++;
        drop(sl->s, e); /* deletes the entry the walk gave: allowed */
        sl->dropped++;
    }
    return 0;
}

size_t tt_sessions_sweep(struct tt_sessions *s, int64_t now, bool all)
{
    size_t n = 0;
    /* the oldest first: without Redis they expire in this order */
    while (s->oldest && s->oldest->expires <= now) {
        s->expired++;
        drop(s, s->oldest);
        n++;
    }
    if (!s->redis && !all)
        return n;
    /* sessions read from Redis came with their own expiry: a slice of the table at a time */
    struct slice sl = {s, now, 0};
    size_t total = tt_strmap_count(&s->by_key);
    tt_strmap_walk(&s->by_key, &s->walk_pos, all ? total + 1 : SWEEP_SLICE, expire_one, &sl);
    return n + sl.dropped;
}

size_t tt_sessions_count(const struct tt_sessions *s)
{
    return s->n;
}

static void on_timer(uv_timer_t *t)
{
    struct tt_sessions *s = t->data;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    tt_sessions_sweep(s, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, false);
}
