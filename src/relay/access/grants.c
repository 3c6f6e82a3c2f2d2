/* grants.c - the grant store (grants.h): grants in two strmaps (by id, and by the hex of their
 * token's hash), each grant one allocation with its patterns; expiry by a walk when the earliest
 * expiry is due; in cluster mode the Redis scripts that create, delete, expire and list changes
 * (every write that touches several keys is one script, so Redis applies it atomically). Tokens
 * come from OpenSSL's CSPRNG and are never kept or logged: only their SHA-256. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include "tether_err.h"
#include "common/log.h"
#include "relay/access/grants.h"
#include "relay/lib/pattern.h"
#include "relay/store/redisasync.h"
#include "relay/store/redisconn.h"
#include "relay/lib/strmap.h"

#define P TT_REDIS_PREFIX
#define HASH_HEX 64
#define EPOCH_HEX 32

struct tt_grants {
    struct tt_strmap by_id;   /* id -> struct tt_grant * (owned) */
    struct tt_strmap by_hash; /* hex of the token's hash -> the same grant */
    int64_t next_expiry;      /* no grant expires before this (INT64_MAX: none) */
    size_t removed;           /* grants gone since the last tick (expired, or deleted elsewhere) */
    struct tt_grants_stats st;
    /* cluster mode */
    struct tt_redisconn *rc;           /* NULL: in memory only */
    char cand[EPOCH_HEX + 1];          /* this node's candidate for grants:epoch */
    char epoch[EPOCH_HEX + 1];         /* the epoch and generation last read */
    long long gen;                     /* (0 with epoch "": nothing read yet, or no grants) */
    int64_t last_sync, last_miss_sync; /* unix ms of the last read, and of the last for a miss */
    bool logged_down;                  /* the failure to read was logged */
    struct tt_redisasync *ra;          /* the tick's reads go here when set (never waited for) */
    bool tick_inflight;                /* one of them is due */
    /* unknown tokens waiting for a read on ra (tt_grants_check_token_async), oldest first */
    struct tt_grants_wait *wait_head, *wait_tail;
    uint64_t miss_sent, miss_done;  /* reads made for them: sent, answered (sequence numbers) */
    bool miss_inflight, miss_again; /* one is due; another is wanted once it is answered */
};

/* A client's unknown token, waiting for the read that may bring its grant. */
struct tt_grants_wait {
    struct tt_grants_wait *prev, *next;
    uint8_t hash[32];
    int64_t start;         /* unix ms */
    uint64_t need;         /* answered once the read with this sequence number is */
    tt_grants_token_cb cb; /* NULL: cancelled */
    void *ud;
};

static void hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static bool is_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
    if (!is_hex(s, 2 * n))
        return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = s[2 * i] <= '9' ? s[2 * i] - '0' : s[2 * i] - 'a' + 10;
        int lo = s[2 * i + 1] <= '9' ? s[2 * i + 1] - '0' : s[2 * i + 1] - 'a' + 10;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

/* ---- checks ---- */

int tt_grants_check_user(const char *user, char err[TT_ERRLEN])
{
    size_t n = user ? strlen(user) : 0;
    if (n == 0 || n > TT_MAX_NAME) {
        snprintf(err, TT_ERRLEN, "user: 1 to %d characters", TT_MAX_NAME);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)user[i];
        if (c <= ' ' || c >= 0x7f) {
            snprintf(err, TT_ERRLEN, "user: printable ASCII characters without spaces only");
            return -1;
        }
    }
    return 0;
}

int tt_grants_check_ttl(uint64_t ttl_ms, char err[TT_ERRLEN])
{
    if (ttl_ms < TT_GRANTS_TTL_MIN_MS || ttl_ms > TT_GRANTS_TTL_MAX_MS) {
        snprintf(err, TT_ERRLEN, "ttl: from 1s to 30d");
        return -1;
    }
    return 0;
}

bool tt_grants_is_token(const uint8_t *tok, size_t len)
{
    size_t pl = sizeof(TT_GRANT_TOKEN_PREFIX) - 1;
    if (len != TT_GRANT_TOKEN_LEN || memcmp(tok, TT_GRANT_TOKEN_PREFIX, pl) != 0)
        return false;
    for (size_t i = pl; i < len; i++) {
        uint8_t c = tok[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* ---- grants and the maps ---- */

/* A grant in one allocation (the struct, the pattern pointers, the patterns), or NULL. */
static struct tt_grant *grant_new(const char *id, const char *user, const char *const *p, size_t n,
                                  int64_t created, int64_t expires, const uint8_t hash[32])
{
    size_t text = 0;
    for (size_t i = 0; i < n; i++)
        text += strlen(p[i]) + 1;
    struct tt_grant *gr = calloc(1, sizeof(*gr) + n * sizeof(char *) + text);
    if (!gr)
        return NULL;
    snprintf(gr->id, sizeof(gr->id), "%s", id);
    snprintf(gr->user, sizeof(gr->user), "%s", user);
    gr->created = created;
    gr->expires = expires;
    memcpy(gr->hash, hash, 32);
    gr->npatterns = n;
    gr->patterns = (const char **)(gr + 1);
    char *s = (char *)(gr->patterns + n);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(p[i]) + 1;
        memcpy(s, p[i], l);
        gr->patterns[i] = s;
        s += l;
    }
    return gr;
}

struct tt_grants *tt_grants_new(void)
{
    struct tt_grants *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    tt_strmap_init(&g->by_id);
    tt_strmap_init(&g->by_hash);
    g->next_expiry = INT64_MAX;
    return g;
}

static int free_one(const char *key, void *val, void *ud)
{
    (void)key;
    (void)ud;
    free(val);
    return 0;
}

void tt_grants_free(struct tt_grants *g)
{
    if (!g)
        return;
    struct tt_grants_wait *w;
    while ((w = g->wait_head)) {
        g->wait_head = w->next;
        if (w->cb)
            w->cb(w->ud, TETHER_ERR_IO, "", "");
        OPENSSL_cleanse(w->hash, sizeof(w->hash));
        free(w);
    }
    tt_strmap_foreach(&g->by_id, free_one, NULL);
    tt_strmap_reset(&g->by_id);
    tt_strmap_reset(&g->by_hash);
    free(g);
}

void tt_grants_use_redis(struct tt_grants *g, struct tt_redisconn *rc)
{
    uint8_t r[EPOCH_HEX / 2];
    g->rc = rc;
    if (tt_random_bytes(r, sizeof(r)) != 0)
        memset(r, 0x5a, sizeof(r)); /* only tells Redis's lifetimes apart: never a secret */
    hex(r, sizeof(r), g->cand);
    g->last_sync = g->last_miss_sync = INT64_MIN / 2; /* the first tick reads */
}

size_t tt_grants_count(const struct tt_grants *g)
{
    return tt_strmap_count(&g->by_id);
}

/* Adds gr (owned from now on: freed when it cannot be added). Returns 0 or TETHER_ERR_NOMEM. */
static int insert(struct tt_grants *g, struct tt_grant *gr)
{
    char h[HASH_HEX + 1];
    hex(gr->hash, 32, h);
    if (tt_strmap_put(&g->by_id, gr->id, gr) != 0) {
        free(gr);
        return TETHER_ERR_NOMEM;
    }
    if (tt_strmap_put(&g->by_hash, h, gr) != 0) {
        tt_strmap_del(&g->by_id, gr->id);
        free(gr);
        return TETHER_ERR_NOMEM;
    }
    if (gr->expires < g->next_expiry)
        g->next_expiry = gr->expires;
    return 0;
}

/* Removes gr from the maps and frees it. */
static void drop(struct tt_grants *g, struct tt_grant *gr)
{
    char h[HASH_HEX + 1];
    hex(gr->hash, 32, h);
    if (tt_strmap_get(&g->by_hash, h) == gr)
        tt_strmap_del(&g->by_hash, h);
    tt_strmap_del(&g->by_id, gr->id);
    free(gr);
}

struct expire_ctx {
    struct tt_grants *g;
    int64_t now, next;
    size_t n;
};

static int expire_one(const char *key, void *val, void *ud)
{
    (void)key;
    struct expire_ctx *x = ud;
    struct tt_grant *gr = val;
    if (gr->expires <= x->now) {
        TT_LOG(TT_LOG_INFO, "grant expired id=%s user=%s", gr->id, TT_LOG_V(gr->user));
        drop(x->g, gr);
        x->n++;
    } else if (gr->expires < x->next) {
        x->next = gr->expires;
    }
    return 0;
}

/* Forgets the grants expired at now; returns how many. */
static size_t expire_local(struct tt_grants *g, int64_t now)
{
    if (now < g->next_expiry)
        return 0;
    struct expire_ctx x = {g, now, INT64_MAX, 0};
    tt_strmap_foreach(&g->by_id, expire_one, &x);
    g->next_expiry = x.next;
    g->st.expired += x.n;
    g->removed += x.n;
    return x.n;
}

const struct tt_grant *tt_grants_find(const struct tt_grants *g, const char *id, int64_t now)
{
    const struct tt_grant *gr = id ? tt_strmap_get(&g->by_id, id) : NULL;
    return gr && gr->expires > now ? gr : NULL;
}

/* ---- the JSON form kept in Redis ---- */

char *tt_grants_record(const struct tt_grant *gr)
{
    char h[HASH_HEX + 1];
    hex(gr->hash, 32, h);
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < gr->npatterns; i++) {
        if (json_array_append_new(arr, json_string(gr->patterns[i])) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    if (!arr)
        return NULL;
    json_t *o = json_pack("{s:s, s:o, s:I, s:I, s:s}", "user", gr->user, "grants", arr, "created",
                          (json_int_t)gr->created, "expires", (json_int_t)gr->expires, "hash", h);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

struct tt_grant *tt_grants_record_parse(const char *id, const char *text, size_t len)
{
    char err[TT_ERRLEN];
    const char *p[TT_GRANTS_MAX_PATTERNS];
    uint8_t hash[32];
    struct tt_grant *gr = NULL;
    if (!is_hex(id, TT_GRANT_ID_LEN))
        return NULL;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    const char *user = json_string_value(json_object_get(o, "user"));
    const char *h = json_string_value(json_object_get(o, "hash"));
    json_t *arr = json_object_get(o, "grants");
    json_t *created = json_object_get(o, "created"), *expires = json_object_get(o, "expires");
    size_t n = json_array_size(arr);
    if (!user || tt_grants_check_user(user, err) != 0 || !h || unhex(h, hash, 32) != 0 ||
        !json_is_integer(created) || !json_is_integer(expires) || n == 0 ||
        n > TT_GRANTS_MAX_PATTERNS)
        goto out;
    for (size_t i = 0; i < n; i++) {
        p[i] = json_string_value(json_array_get(arr, i));
        if (!p[i] || tt_pattern_check(p[i], err) != 0)
            goto out;
    }
    gr = grant_new(id, user, p, n, (int64_t)json_integer_value(created),
                   (int64_t)json_integer_value(expires), hash);
out:
    json_decref(o);
    return gr;
}

/* ---- the API's request ---- */

int tt_grants_parse_request(const char *body, size_t len, struct tt_grants_request *rq,
                            char err[TT_ERRLEN])
{
    json_error_t je;
    const char *key;
    json_t *val;
    memset(rq, 0, sizeof(*rq));
    rq->ttl_ms = TT_GRANTS_TTL_DEFAULT_MS;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    int rc = -1;
    if (!j) {
        snprintf(err, TT_ERRLEN, "the body is not JSON: %.150s", je.text);
        return -1;
    }
    if (!json_is_object(j)) {
        snprintf(err, TT_ERRLEN, "the body must be a JSON object {\"user\",\"grants\",\"ttl\"}");
        goto out;
    }
    json_object_foreach(j, key, val)
    {
        if (strcmp(key, "user") != 0 && strcmp(key, "grants") != 0 && strcmp(key, "ttl") != 0) {
            char k[TT_LOG_VALUE_MAX];
            snprintf(err, TT_ERRLEN, "unknown field %s (the fields: user, grants, ttl)",
                     tt_log_value(k, 72, key));
            goto out;
        }
    }
    const char *user = json_string_value(json_object_get(j, "user"));
    if (!user) {
        snprintf(err, TT_ERRLEN, "user: a string is required");
        goto out;
    }
    if (tt_grants_check_user(user, err) != 0)
        goto out;
    snprintf(rq->user, sizeof(rq->user), "%s", user);
    json_t *arr = json_object_get(j, "grants");
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || n == 0 || n > TT_GRANTS_MAX_PATTERNS) {
        snprintf(err, TT_ERRLEN, "grants: an array of 1 to %d DEVICE/SERVICE patterns",
                 TT_GRANTS_MAX_PATTERNS);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *p = json_string_value(json_array_get(arr, i));
        if (!p) {
            snprintf(err, TT_ERRLEN, "grants: each pattern is a string (DEVICE/SERVICE)");
            goto out;
        }
        if (tt_pattern_check(p, err) != 0)
            goto out;
        snprintf(rq->patterns[i], sizeof(rq->patterns[i]), "%s", p);
        rq->p[i] = rq->patterns[i];
    }
    rq->n = n;
    json_t *ttl = json_object_get(j, "ttl");
    if (json_is_string(ttl)) {
        char e[TT_ERRLEN];
        if (tt_parse_duration(json_string_value(ttl), &rq->ttl_ms, e) != 0) {
            snprintf(err, TT_ERRLEN, "ttl: %s", e);
            goto out;
        }
    } else if (json_is_integer(ttl) && json_integer_value(ttl) > 0 &&
               json_integer_value(ttl) <= (json_int_t)(TT_GRANTS_TTL_MAX_MS / 1000)) {
        rq->ttl_ms = (uint64_t)json_integer_value(ttl) * 1000; /* seconds */
    } else if (ttl) {
        snprintf(err, TT_ERRLEN,
                 "ttl: a duration (\"15m\", \"2h\", \"7d\") or a number of seconds "
                 "(1s to 30d)");
        goto out;
    }
    if (tt_grants_check_ttl(rq->ttl_ms, err) != 0)
        goto out;
    rc = 0;
out:
    json_decref(j);
    return rc;
}

/* ---- Redis scripts ---- */

/* Every script: ARGV prefix, now, epoch candidate, log max, then its own. sweep() forgets the
 * grants expired at now; every change bumps the generation and logs the id. */
#define LUA_PRELUDE                                                                                \
    "local P,now,cand,logmax=ARGV[1],ARGV[2],ARGV[3],tonumber(ARGV[4])\n"                          \
    "local G=P..'grants'\n"                                                                        \
    "local function bump(id)\n"                                                                    \
    "  redis.call('SET',P..'grants:epoch',cand,'NX')\n"                                            \
    "  redis.call('INCR',P..'grants:gen')\n"                                                       \
    "  redis.call('LPUSH',P..'grants:log',id)\n"                                                   \
    "end\n"                                                                                        \
    "local function sweep()\n"                                                                     \
    "  for _,id in ipairs(redis.call('ZRANGEBYSCORE',P..'grants:exp','-inf',now,'LIMIT',0,256)) "  \
    "do\n"                                                                                         \
    "    redis.call('HDEL',G,id)\n"                                                                \
    "    redis.call('ZREM',P..'grants:exp',id)\n"                                                  \
    "    bump(id)\n"                                                                               \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "local function trim() redis.call('LTRIM',P..'grants:log',0,logmax-1) end\n"

/* ARGV[5..8]: max, id, record, expires. Returns "ok", "full" or "taken". */
static const char create_lua[] =
    LUA_PRELUDE "sweep()\n"
                "if redis.call('HLEN',G)>=tonumber(ARGV[5]) then trim() return 'full' end\n"
                "if redis.call('HSETNX',G,ARGV[6],ARGV[7])==0 then trim() return 'taken' end\n"
                "redis.call('ZADD',P..'grants:exp',ARGV[8],ARGV[6])\n"
                "bump(ARGV[6])\n"
                "trim()\n"
                "return 'ok'\n";

/* ARGV[5]: id. Returns 1 (deleted) or 0 (no such live grant). */
static const char delete_lua[] =
    LUA_PRELUDE "sweep()\n"
                "if redis.call('HDEL',G,ARGV[5])==0 then trim() return 0 end\n"
                "redis.call('ZREM',P..'grants:exp',ARGV[5])\n"
                "bump(ARGV[5])\n"
                "trim()\n"
                "return 1\n";

/* ARGV[5..6]: the epoch and generation the node read last. Returns {"same"}, or {"delta", epoch,
 * gen, then id, record ("" when gone) for each grant changed since}, or {"full", epoch, gen, then
 * id, record of every grant}. */
static const char sync_lua[] =
    LUA_PRELUDE "sweep()\n"
                "trim()\n"
                "local epoch=redis.call('GET',P..'grants:epoch') or ''\n"
                "local gen=tonumber(redis.call('GET',P..'grants:gen') or '0')\n"
                "local mine=tonumber(ARGV[6])\n"
                "if epoch==ARGV[5] and gen==mine then return {'same'} end\n"
                "local out={'full',epoch,string.format('%d',gen)}\n"
                "if epoch==ARGV[5] and gen>mine and gen-mine<=logmax then\n"
                "  out[1]='delta'\n"
                "  local seen={}\n"
                "  for _,id in ipairs(redis.call('LRANGE',P..'grants:log',0,gen-mine-1)) do\n"
                "    if not seen[id] then\n"
                "      seen[id]=true\n"
                "      out[#out+1]=id\n"
                "      out[#out+1]=redis.call('HGET',G,id) or ''\n"
                "    end\n"
                "  end\n"
                "  return out\n"
                "end\n"
                "local all=redis.call('HGETALL',G)\n"
                "for i=1,#all do out[#out+1]=all[i] end\n"
                "return out\n";

/* Runs script with the common arguments and nextra more. Returns the reply (NULL when Redis
 * cannot be reached or answered an error: counted). */
/* The command of script with the common arguments and nextra more. */
struct grants_cmd {
    char nowb[24], logmax[16];
    const char *argv[16];
    size_t lens[16];
    int argc;
};

static void build(struct tt_grants *g, const char *script, int64_t now, int nextra,
                  const char **extra, struct grants_cmd *c)
{
    snprintf(c->nowb, sizeof(c->nowb), "%lld", (long long)now);
    snprintf(c->logmax, sizeof(c->logmax), "%d", TT_GRANTS_LOG_MAX);
    int argc = 0;
    c->argv[argc++] = "EVAL";
    c->argv[argc++] = script;
    c->argv[argc++] = "0";
    c->argv[argc++] = P;
    c->argv[argc++] = c->nowb;
    c->argv[argc++] = g->cand;
    c->argv[argc++] = c->logmax;
    for (int i = 0; i < nextra && argc < 16; i++)
        c->argv[argc++] = extra[i];
    for (int i = 0; i < argc; i++)
        c->lens[i] = strlen(c->argv[i]);
    c->argc = argc;
}

static redisReply *run(struct tt_grants *g, const char *script, int64_t now, int nextra,
                       const char **extra)
{
    struct grants_cmd c;
    build(g, script, now, nextra, extra, &c);
    redisReply *rep = tt_redisconn_argv(g->rc, c.argc, c.argv, c.lens);
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        freeReplyObject(rep);
        rep = NULL;
    }
    if (!rep)
        g->st.failures++;
    return rep;
}

/* run's asynchronous form: the script sent on the asynchronous connection, cb(reply, ud)
 * later. Returns 0, or TETHER_ERR_IO when it could not be sent (Redis down, at the cap). */
static int run_async(struct tt_grants *g, const char *script, int64_t now, int nextra,
                     const char **extra, tt_redisasync_cb cb, void *ud)
{
    struct grants_cmd c;
    build(g, script, now, nextra, extra, &c);
    return tt_redisasync_argv(g->ra, c.argc, c.argv, c.lens, cb, ud) == 0 ? 0 : TETHER_ERR_IO;
}

/* The read of Redis's changes since the node's generation, sent asynchronously (run_async). */
static int sync_async(struct tt_grants *g, int64_t now, tt_redisasync_cb cb, void *ud)
{
    char gen[24];
    snprintf(gen, sizeof(gen), "%lld", g->gen);
    const char *extra[2] = {g->epoch, gen};
    return run_async(g, sync_lua, now, 2, extra, cb, ud);
}

static bool reply_str(const redisReply *e)
{
    return e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS;
}

/* Applies one changed grant of a read: rec "" (gone) or its record. */
static void apply(struct tt_grants *g, const char *id, const redisReply *rec, bool full,
                  int64_t now)
{
    struct tt_grant *have = tt_strmap_get(&g->by_id, id);
    if (rec->len == 0) {
        if (have) {
            TT_LOG(TT_LOG_INFO, "grant revoked on another node id=%s user=%s", id,
                   TT_LOG_V(have->user));
            drop(g, have);
            g->removed++;
        }
        return;
    }
    if (have) {
        have->mark = true;
        return; /* grants never change: only their presence does */
    }
    struct tt_grant *gr = tt_grants_record_parse(id, rec->str, rec->len);
    if (!gr) {
        TT_LOG(TT_LOG_WARN, "grant in redis malformed, ignored id=%s", TT_LOG_V(id));
        return;
    }
    if (gr->expires <= now || tt_grants_count(g) >= TT_GRANTS_MAX) {
        free(gr);
        return;
    }
    gr->mark = full;
    if (insert(g, gr) == 0)
        TT_LOG(TT_LOG_DEBUG, "grant learned from redis id=%s user=%s", id, TT_LOG_V(gr->user));
}

static int clear_mark(const char *key, void *val, void *ud)
{
    (void)key;
    (void)ud;
    ((struct tt_grant *)val)->mark = false;
    return 0;
}

static int drop_unmarked(const char *key, void *val, void *ud)
{
    (void)key;
    struct tt_grants *g = ud;
    struct tt_grant *gr = val;
    if (!gr->mark) {
        TT_LOG(TT_LOG_INFO, "grant gone from redis id=%s user=%s", gr->id, TT_LOG_V(gr->user));
        drop(g, gr);
        g->removed++;
    }
    return 0;
}

/* Applies sync_lua's reply (NULL: none; freed here). Returns 0 or TETHER_ERR_IO. */
static int sync_apply(struct tt_grants *g, const redisReply *rep, int64_t now)
{
    bool ok =
        rep && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 && reply_str(rep->element[0]);
    for (size_t i = 0; ok && i < rep->elements; i++)
        ok = reply_str(rep->element[i]);
    if (!ok ||
        (strcmp(rep->element[0]->str, "same") != 0 &&
         (rep->elements < 3 || rep->elements % 2 != 1 || rep->element[1]->len > EPOCH_HEX))) {
        if (rep)
            g->st.failures++; /* a reply of the wrong shape (run counted failed calls) */
        if (!g->logged_down)
            TT_LOG(TT_LOG_WARN,
                   "grants: cannot read the cluster's grants from redis; keeping "
                   "the %zu known until they expire",
                   tt_grants_count(g));
        g->logged_down = true;
        return TETHER_ERR_IO;
    }
    g->logged_down = false;
    g->st.syncs++;
    const char *kind = rep->element[0]->str;
    if (strcmp(kind, "same") != 0) {
        bool full = strcmp(kind, "full") == 0;
        if (full) {
            g->st.full++;
            tt_strmap_foreach(&g->by_id, clear_mark, NULL);
        }
        for (size_t i = 3; i + 1 < rep->elements; i += 2)
            apply(g, rep->element[i]->str, rep->element[i + 1], full, now);
        if (full)
            tt_strmap_foreach(&g->by_id, drop_unmarked, g);
        snprintf(g->epoch, sizeof(g->epoch), "%s", rep->element[1]->str);
        g->gen = strtoll(rep->element[2]->str, NULL, 10);
    }
    return 0;
}

/* Reads Redis's changes now (waiting for them). Returns 0 or TETHER_ERR_IO. */
static int sync_now(struct tt_grants *g, int64_t now)
{
    char gen[24];
    g->last_sync = now;
    snprintf(gen, sizeof(gen), "%lld", g->gen);
    const char *extra[2] = {g->epoch, gen};
    redisReply *rep = run(g, sync_lua, now, 2, extra);
    int rc = sync_apply(g, rep, now);
    if (rep)
        freeReplyObject(rep);
    return rc;
}

/* The tick's read, answered (rep NULL: no answer). */
static void on_tick_sync(redisReply *rep, void *ud)
{
    struct tt_grants *g = ud;
    g->tick_inflight = false;
    if (rep && rep->type == REDIS_REPLY_ERROR)
        rep = NULL;
    if (!rep)
        g->st.failures++;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    sync_apply(g, rep, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* The tick's read of Redis's changes: on the asynchronous connection when there is one (one
 * read at a time, never waited for), else now. */
static void sync_tick(struct tt_grants *g, int64_t now)
{
    if (!g->ra) {
        sync_now(g, now);
        return;
    }
    if (g->tick_inflight)
        return;
    g->last_sync = now;
    if (sync_async(g, now, on_tick_sync, g) == 0)
        g->tick_inflight = true;
    else
        on_tick_sync(NULL, g); /* Redis down or busy: counted, logged once */
}

static void wait_answer(struct tt_grants *g, int64_t now, bool fail_all);

static int64_t unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tt_grants_use_redis_async(struct tt_grants *g, struct tt_redisasync *ra)
{
    if (g)
        g->ra = ra;
    if (g && !ra) {
        g->tick_inflight = false; /* its reply came (NULL) as the connection went */
        g->miss_inflight = g->miss_again = false;
        g->miss_done = g->miss_sent;
        wait_answer(g, unix_now(), true);
    }
}

/* An unknown token or id in cluster mode: read Redis's changes, at most every
 * TT_GRANTS_MISS_SYNC_MS. Returns true when a read was made. */
static void miss_send(struct tt_grants *g, int64_t now);

static bool miss_sync(struct tt_grants *g, int64_t now)
{
    if (!g->rc || (now - g->last_miss_sync < TT_GRANTS_MISS_SYNC_MS && now >= g->last_miss_sync))
        return false;
    g->last_miss_sync = now;
    if (g->ra) {
        /* sent, not waited for: the answer is for the next request */
        if (!g->miss_inflight)
            miss_send(g, now);
        return false;
    }
    return sync_now(g, now) == 0;
}

int tt_grants_refresh(struct tt_grants *g, int64_t now)
{
    return g->rc ? sync_now(g, now) : 0;
}

size_t tt_grants_tick(struct tt_grants *g, int64_t now)
{
    if (g->wait_head)
        wait_answer(g, now, false); /* the tokens that waited too long */
    expire_local(g, now);
    /* a tenth early: a timer that fires a little before the second still reads */
    if (g->rc && (now - g->last_sync >= TT_GRANTS_SYNC_MS * 9 / 10 || now < g->last_sync))
        sync_tick(g, now);
    size_t n = g->removed;
    g->removed = 0;
    return n;
}

/* ---- create, delete, check ---- */

/* A new token into token (prefix and base64url of 32 random bytes). Returns 0 or -1. */
static int make_token(char token[TT_GRANT_TOKEN_LEN + 1])
{
    uint8_t raw[32];
    unsigned char b64[48];
    size_t pl = sizeof(TT_GRANT_TOKEN_PREFIX) - 1;
    if (tt_random_bytes(raw, sizeof(raw)) != 0)
        return -1;
    int n = EVP_EncodeBlock(b64, raw, sizeof(raw)); /* 44 characters, the last one '=' */
    OPENSSL_cleanse(raw, sizeof(raw));
    if (n != 44)
        return -1;
    memcpy(token, TT_GRANT_TOKEN_PREFIX, pl);
    for (int i = 0; i < 43; i++)
        token[pl + (size_t)i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
    token[TT_GRANT_TOKEN_LEN] = '\0';
    OPENSSL_cleanse(b64, sizeof(b64));
    return 0;
}

/* The checks and the new grant of a create (its id, token and expiry): 0 with *out, or an error
 * with err (nothing made). */
static int create_prepare(struct tt_grants *g, const char *user, const char *const *p, size_t n,
                          uint64_t ttl_ms, int64_t now, char id[TT_GRANT_ID_LEN + 1],
                          char token[TT_GRANT_TOKEN_LEN + 1], struct tt_grant **out,
                          char err[TT_ERRLEN])
{
    uint8_t raw[TT_GRANT_ID_LEN / 2], hash[32];
    id[0] = token[0] = '\0';
    *out = NULL;
    if (tt_grants_check_user(user, err) != 0 || tt_grants_check_ttl(ttl_ms, err) != 0)
        return TETHER_ERR_INVAL;
    if (n == 0 || n > TT_GRANTS_MAX_PATTERNS) {
        snprintf(err, TT_ERRLEN, "grants: 1 to %d DEVICE/SERVICE patterns", TT_GRANTS_MAX_PATTERNS);
        return TETHER_ERR_INVAL;
    }
    for (size_t i = 0; i < n; i++)
        if (tt_pattern_check(p[i], err) != 0)
            return TETHER_ERR_INVAL;
    expire_local(g, now);
    if (!g->rc && tt_grants_count(g) >= TT_GRANTS_MAX) {
        snprintf(err, TT_ERRLEN, "%d grants live already: delete some or wait for them to expire",
                 TT_GRANTS_MAX);
        return TETHER_ERR_CAPACITY;
    }
    if (tt_random_bytes(raw, sizeof(raw)) != 0 || make_token(token) != 0) {
        token[0] = '\0';
        snprintf(err, TT_ERRLEN, "no random bytes");
        return TETHER_ERR_NOMEM;
    }
    hex(raw, sizeof(raw), id);
    SHA256((const uint8_t *)token, TT_GRANT_TOKEN_LEN, hash);
    /* a whole second, never earlier than asked */
    int64_t exp = (now + (int64_t)ttl_ms + 999) / 1000 * 1000;
    *out = grant_new(id, user, p, n, now, exp, hash);
    if (!*out) {
        tt_secret_wipe(token, TT_GRANT_TOKEN_LEN + 1);
        id[0] = '\0';
        snprintf(err, TT_ERRLEN, "out of memory");
        return TETHER_ERR_NOMEM;
    }
    return 0;
}

/* create_lua's arguments for gr into c (rec: the record, freed by the caller). */
static char *create_cmd(struct tt_grants *g, const struct tt_grant *gr, int64_t now,
                        struct grants_cmd *c, char max[16], char expb[24])
{
    char *rec = tt_grants_record(gr);
    if (!rec)
        return NULL;
    snprintf(max, 16, "%d", TT_GRANTS_MAX);
    snprintf(expb, 24, "%lld", (long long)gr->expires);
    const char *extra[4] = {max, gr->id, rec, expb};
    build(g, create_lua, now, 4, extra, c);
    return rec;
}

/* create_lua's answer: 0, TETHER_ERR_CAPACITY or TETHER_ERR_IO. */
static int create_result(const redisReply *rep)
{
    return !rep || rep->type != REDIS_REPLY_STRING ? TETHER_ERR_IO
           : strcmp(rep->str, "ok") == 0           ? 0
           : strcmp(rep->str, "full") == 0         ? TETHER_ERR_CAPACITY
                                                   : TETHER_ERR_IO;
}

/* A create that failed with rc (gr freed, the token wiped, err filled). */
static int create_failed(struct tt_grant *gr, int rc, char id[TT_GRANT_ID_LEN + 1],
                         char token[TT_GRANT_TOKEN_LEN + 1], char err[TT_ERRLEN])
{
    free(gr);
    tt_secret_wipe(token, TT_GRANT_TOKEN_LEN + 1);
    id[0] = '\0';
    if (rc == TETHER_ERR_CAPACITY)
        snprintf(err, TT_ERRLEN, "%d grants live already: delete some or wait for them to expire",
                 TT_GRANTS_MAX);
    else
        snprintf(err, TT_ERRLEN,
                 rc == TETHER_ERR_IO ? "the grant store (redis) cannot be reached"
                                     : "out of memory");
    return rc;
}

/* The grant is made (in Redis when clustered): kept here, counted, logged. */
static int create_done(struct tt_grants *g, struct tt_grant *gr, uint64_t ttl_ms,
                       char id[TT_GRANT_ID_LEN + 1], char token[TT_GRANT_TOKEN_LEN + 1],
                       char err[TT_ERRLEN])
{
    char user[TT_MAX_NAME + 1];
    size_t n = gr->npatterns;
    snprintf(user, sizeof(user), "%s", gr->user);
    if (insert(g, gr) != 0) {
        /* cluster mode: Redis has it, the next read brings it here */
        if (!g->rc) {
            tt_secret_wipe(token, TT_GRANT_TOKEN_LEN + 1);
            id[0] = '\0';
            snprintf(err, TT_ERRLEN, "out of memory");
            return TETHER_ERR_NOMEM;
        }
    }
    g->st.created++;
    TT_LOG(TT_LOG_INFO, "grant created id=%s user=%s patterns=%zu ttl_s=%llu", id, TT_LOG_V(user),
           n, (unsigned long long)(ttl_ms / 1000));
    return 0;
}

int tt_grants_create(struct tt_grants *g, const char *user, const char *const *p, size_t n,
                     uint64_t ttl_ms, int64_t now, char id[TT_GRANT_ID_LEN + 1],
                     char token[TT_GRANT_TOKEN_LEN + 1], int64_t *expires, char err[TT_ERRLEN])
{
    struct tt_grant *gr;
    *expires = 0;
    int rc = create_prepare(g, user, p, n, ttl_ms, now, id, token, &gr, err);
    if (rc != 0)
        return rc;
    int64_t exp = gr->expires;
    if (g->rc) {
        char max[16], expb[24];
        struct grants_cmd c;
        char *rec = create_cmd(g, gr, now, &c, max, expb);
        redisReply *rep = rec ? tt_redisconn_argv(g->rc, c.argc, c.argv, c.lens) : NULL;
        if (rec && (!rep || rep->type == REDIS_REPLY_ERROR))
            g->st.failures++;
        free(rec);
        rc = !rec ? TETHER_ERR_NOMEM : create_result(rep);
        if (rep)
            freeReplyObject(rep);
        if (rc != 0)
            return create_failed(gr, rc, id, token, err);
    }
    rc = create_done(g, gr, ttl_ms, id, token, err);
    if (rc == 0)
        *expires = exp;
    return rc;
}

/* A create or a delete sent on the asynchronous connection. */
struct tt_grants_job {
    struct tt_grants *g;
    struct tt_grant *gr; /* create: the new grant, kept once Redis has it */
    uint64_t ttl_ms;
    char id[TT_GRANT_ID_LEN + 1];
    char token[TT_GRANT_TOKEN_LEN + 1]; /* create: shown once, then wiped */
    tt_grants_job_cb cb;                /* NULL: cancelled */
    void *ud;
    bool read; /* a read for the admin API (tt_grants_refresh_async), counted in reads_waiting */
};

static void job_end(struct tt_grants_job *j, int rc, int64_t expires, const char *err)
{
    if (j->read)
        j->g->st.reads_waiting--;
    if (j->cb)
        j->cb(j->ud, rc, j->id, j->token, expires, err);
    tt_secret_wipe(j->token, sizeof(j->token));
    free(j);
}

static void on_created(redisReply *rep, void *ud)
{
    struct tt_grants_job *j = ud;
    char err[TT_ERRLEN] = "";
    if (!rep || rep->type == REDIS_REPLY_ERROR)
        j->g->st.failures++;
    int rc = create_result(rep);
    int64_t exp = j->gr->expires;
    if (rc != 0) {
        create_failed(j->gr, rc, j->id, j->token, err);
        exp = 0;
    } else {
        rc = create_done(j->g, j->gr, j->ttl_ms, j->id, j->token, err);
    }
    j->gr = NULL;
    job_end(j, rc, rc == 0 ? exp : 0, err);
}

int tt_grants_create_async(struct tt_grants *g, const char *user, const char *const *p, size_t n,
                           uint64_t ttl_ms, int64_t now, char id[TT_GRANT_ID_LEN + 1],
                           char token[TT_GRANT_TOKEN_LEN + 1], int64_t *expires,
                           char err[TT_ERRLEN], tt_grants_job_cb cb, void *ud,
                           struct tt_grants_job **handle)
{
    *handle = NULL;
    if (!cb && g->rc) { /* the caller cannot wait: in cluster mode never the synchronous call */
        *expires = 0;
        id[0] = token[0] = '\0';
        snprintf(err, TT_ERRLEN, "out of memory");
        return TETHER_ERR_NOMEM;
    }
    if (!cb || !g->ra || !g->rc)
        return tt_grants_create(g, user, p, n, ttl_ms, now, id, token, expires, err);
    *expires = 0;
    struct tt_grants_job *j = calloc(1, sizeof(*j));
    if (!j) {
        snprintf(err, TT_ERRLEN, "out of memory");
        return TETHER_ERR_NOMEM;
    }
    int rc = create_prepare(g, user, p, n, ttl_ms, now, j->id, j->token, &j->gr, err);
    if (rc != 0) {
        free(j);
        id[0] = token[0] = '\0';
        return rc;
    }
    char max[16], expb[24];
    struct grants_cmd c;
    char *rec = create_cmd(g, j->gr, now, &c, max, expb);
    rc = !rec                                                                    ? TETHER_ERR_NOMEM
         : tt_redisasync_argv(g->ra, c.argc, c.argv, c.lens, on_created, j) == 0 ? 0
                                                                                 : TETHER_ERR_IO;
    free(rec);
    if (rc != 0) {
        if (rc == TETHER_ERR_IO)
            g->st.failures++;
        create_failed(j->gr, rc, j->id, j->token, err);
        free(j);
        id[0] = token[0] = '\0';
        return rc;
    }
    j->g = g;
    j->ttl_ms = ttl_ms;
    j->cb = cb;
    j->ud = ud;
    *handle = j;
    return TT_GRANTS_PENDING;
}

/* The admin API's read of Redis's changes, answered. */
static void on_refreshed(redisReply *rep, void *ud)
{
    struct tt_grants_job *j = ud;
    if (rep && rep->type == REDIS_REPLY_ERROR)
        rep = NULL;
    if (!rep)
        j->g->st.failures++;
    int64_t now = unix_now();
    j->g->last_sync = now;
    job_end(j, sync_apply(j->g, rep, now), 0, "");
}

int tt_grants_refresh_async(struct tt_grants *g, int64_t now, tt_grants_job_cb cb, void *ud,
                            struct tt_grants_job **handle)
{
    *handle = NULL;
    if (!g->rc)
        return 0;
    if (!g->ra)
        return sync_now(g, now);
    if (g->st.reads_waiting >= TT_GRANTS_READ_WAIT_MAX) {
        g->st.reads_full++;
        return TETHER_ERR_CAPACITY;
    }
    struct tt_grants_job *j = calloc(1, sizeof(*j));
    if (!j)
        return TETHER_ERR_NOMEM;
    if (sync_async(g, now, on_refreshed, j) != 0) {
        g->st.failures++;
        free(j);
        return TETHER_ERR_IO;
    }
    j->g = g;
    j->cb = cb;
    j->ud = ud;
    j->read = true;
    g->st.reads++;
    g->st.reads_waiting++;
    *handle = j;
    return TT_GRANTS_PENDING;
}

void tt_grants_job_cancel(struct tt_grants_job *j)
{
    if (j)
        j->cb = NULL;
}

/* delete_lua's answer applied: 0, TETHER_ERR_NOT_FOUND or TETHER_ERR_IO. */
static int delete_done(struct tt_grants *g, const char *id, const redisReply *rep, bool redis)
{
    struct tt_grant *gr = tt_strmap_get(&g->by_id, id);
    bool found = gr != NULL;
    if (redis) {
        if (!rep || rep->type != REDIS_REPLY_INTEGER)
            return TETHER_ERR_IO;
        found = found || rep->integer == 1;
    }
    if (!found)
        return TETHER_ERR_NOT_FOUND;
    TT_LOG(TT_LOG_INFO, "grant deleted id=%s user=%s", id, TT_LOG_V(gr ? gr->user : ""));
    if (gr)
        drop(g, gr);
    g->st.deleted++;
    return 0;
}

int tt_grants_delete(struct tt_grants *g, const char *id, int64_t now)
{
    if (!id || !is_hex(id, TT_GRANT_ID_LEN))
        return TETHER_ERR_NOT_FOUND;
    expire_local(g, now);
    redisReply *rep = NULL;
    if (g->rc) {
        const char *extra[1] = {id};
        rep = run(g, delete_lua, now, 1, extra);
    }
    int rc = delete_done(g, id, rep, g->rc != NULL);
    if (rep)
        freeReplyObject(rep);
    return rc;
}

static void on_deleted(redisReply *rep, void *ud)
{
    struct tt_grants_job *j = ud;
    if (!rep || rep->type == REDIS_REPLY_ERROR)
        j->g->st.failures++;
    int64_t now = unix_now();
    expire_local(j->g, now);
    int rc = delete_done(j->g, j->id, rep, true);
    job_end(j, rc, 0, "");
}

int tt_grants_delete_async(struct tt_grants *g, const char *id, int64_t now, tt_grants_job_cb cb,
                           void *ud, struct tt_grants_job **handle)
{
    *handle = NULL;
    if (!g->ra || !g->rc || !id || !is_hex(id, TT_GRANT_ID_LEN))
        return tt_grants_delete(g, id, now);
    struct tt_grants_job *j = calloc(1, sizeof(*j));
    if (!j)
        return tt_grants_delete(g, id, now);
    memcpy(j->id, id, TT_GRANT_ID_LEN + 1);
    const char *extra[1] = {j->id};
    if (run_async(g, delete_lua, now, 1, extra, on_deleted, j) != 0) {
        g->st.failures++;
        free(j);
        return TETHER_ERR_IO;
    }
    j->g = g;
    j->cb = cb;
    j->ud = ud;
    *handle = j;
    return TT_GRANTS_PENDING;
}

bool tt_grants_allows(struct tt_grants *g, const char *id, const char *device, const char *service,
                      int64_t now)
{
    const struct tt_grant *gr = tt_grants_find(g, id, now);
    if (!gr && id && is_hex(id, TT_GRANT_ID_LEN) && miss_sync(g, now))
        gr = tt_grants_find(g, id, now);
    if (!gr)
        return false;
    for (size_t i = 0; i < gr->npatterns; i++)
        if (tt_pattern_match(gr->patterns[i], device, service))
            return true;
    return false;
}

/* The live grant whose token hashes to hash, or NULL. */
static const struct tt_grant *by_hash(const struct tt_grants *g, const uint8_t hash[32],
                                      int64_t now)
{
    char h[HASH_HEX + 1];
    hex(hash, 32, h);
    const struct tt_grant *gr = tt_strmap_get(&g->by_hash, h);
    if (!gr || gr->expires <= now || CRYPTO_memcmp(gr->hash, hash, 32) != 0)
        return NULL;
    return gr;
}

int tt_grants_check_token(struct tt_grants *g, const uint8_t *tok, size_t len, int64_t now,
                          char id[TT_GRANT_ID_LEN + 1], char user[TT_MAX_NAME + 1])
{
    uint8_t hash[32];
    id[0] = user[0] = '\0';
    if (!tok || len == 0 || len > 1024)
        return TETHER_ERR_AUTH;
    SHA256(tok, len, hash);
    const struct tt_grant *gr = by_hash(g, hash, now);
    /* only a well-formed token is worth a read of Redis */
    if (!gr && tt_grants_is_token(tok, len) && miss_sync(g, now))
        gr = by_hash(g, hash, now);
    OPENSSL_cleanse(hash, sizeof(hash));
    if (!gr)
        return TETHER_ERR_AUTH;
    memcpy(id, gr->id, TT_GRANT_ID_LEN + 1);
    snprintf(user, TT_MAX_NAME + 1, "%s", gr->user);
    return 0;
}

/* ---- unknown tokens, held while a read of Redis is due ---- */

static void wait_unlink(struct tt_grants *g, struct tt_grants_wait *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        g->wait_head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        g->wait_tail = w->prev;
    g->st.token_waiting--;
}

/* Answers the waiting tokens that can be: a grant found (0); no grant and their read answered,
 * past TT_GRANTS_WAIT_MS, or fail_all (TETHER_ERR_AUTH). A callback may check new tokens (they
 * go to the tail) or cancel others. */
static void wait_answer(struct tt_grants *g, int64_t now, bool fail_all)
{
    struct tt_grants_wait *w, *next;
    for (w = g->wait_head; w; w = next) {
        next = w->next;
        const struct tt_grant *gr = by_hash(g, w->hash, now);
        bool late = now - w->start >= TT_GRANTS_WAIT_MS || now < w->start;
        bool read = w->need <= g->miss_done;
        if (!gr && !read && !late && !fail_all)
            continue;
        if (!gr && !read && late)
            g->st.token_wait_timeouts++;
        char id[TT_GRANT_ID_LEN + 1] = "", user[TT_MAX_NAME + 1] = "";
        if (gr) {
            memcpy(id, gr->id, sizeof(id));
            snprintf(user, sizeof(user), "%s", gr->user);
        }
        wait_unlink(g, w);
        if (w->cb)
            w->cb(w->ud, gr ? 0 : TETHER_ERR_AUTH, id, user);
        OPENSSL_cleanse(w->hash, sizeof(w->hash));
        free(w);
        next = g->wait_head; /* the callback may have changed the list: start over */
    }
}

/* A read made for the waiting tokens, answered (rep NULL: no answer). */
static void on_miss_sync(redisReply *rep, void *ud)
{
    struct tt_grants *g = ud;
    int64_t now = unix_now();
    g->miss_inflight = false;
    g->miss_done = g->miss_sent;
    if (rep && rep->type == REDIS_REPLY_ERROR)
        rep = NULL;
    if (!rep)
        g->st.failures++;
    sync_apply(g, rep, now);
    if (g->miss_again && g->ra)
        miss_send(g, now); /* for the tokens that came while this one was due */
    g->miss_again = false;
    wait_answer(g, now, false);
}

/* Sends a read of Redis's changes for the waiting tokens; refused at once (down, at the cap):
 * counted as answered (nothing), so that they are refused. */
static void miss_send(struct tt_grants *g, int64_t now)
{
    g->miss_sent++;
    g->miss_again = false;
    if (sync_async(g, now, on_miss_sync, g) == 0) {
        g->miss_inflight = true;
    } else {
        g->st.failures++;
        g->miss_done = g->miss_sent;
    }
}

int tt_grants_check_token_async(struct tt_grants *g, const uint8_t *tok, size_t len, int64_t now,
                                char id[TT_GRANT_ID_LEN + 1], char user[TT_MAX_NAME + 1],
                                tt_grants_token_cb cb, void *ud, struct tt_grants_wait **handle)
{
    *handle = NULL;
    if (!g->ra || !g->rc || !tt_grants_is_token(tok, len))
        return tt_grants_check_token(g, tok, len, now, id, user);
    uint8_t hash[32];
    id[0] = user[0] = '\0';
    SHA256(tok, len, hash);
    const struct tt_grant *gr = by_hash(g, hash, now);
    if (gr) {
        OPENSSL_cleanse(hash, sizeof(hash));
        memcpy(id, gr->id, TT_GRANT_ID_LEN + 1);
        snprintf(user, TT_MAX_NAME + 1, "%s", gr->user);
        return 0;
    }
    struct tt_grants_wait *w = NULL;
    if (g->st.token_waiting >= TT_GRANTS_WAIT_MAX)
        g->st.token_wait_full++;
    else
        w = calloc(1, sizeof(*w));
    if (w && !g->miss_inflight) {
        miss_send(g, now);
        w->need = g->miss_sent;
        if (g->miss_done == g->miss_sent) { /* refused at once: Redis cannot be reached */
            free(w);
            w = NULL;
        }
    } else if (w) {
        g->miss_again = true;
        w->need = g->miss_sent + 1;
    }
    if (!w) {
        OPENSSL_cleanse(hash, sizeof(hash));
        return TETHER_ERR_AUTH;
    }
    memcpy(w->hash, hash, sizeof(hash));
    OPENSSL_cleanse(hash, sizeof(hash));
    w->start = now;
    w->cb = cb;
    w->ud = ud;
    w->prev = g->wait_tail;
    if (g->wait_tail)
        g->wait_tail->next = w;
    else
        g->wait_head = w;
    g->wait_tail = w;
    g->st.token_waiting++;
    g->st.token_waits++;
    *handle = w;
    return TT_GRANTS_PENDING;
}

void tt_grants_check_cancel(struct tt_grants_wait *w)
{
    if (w)
        w->cb = NULL;
}

/* ---- listing ---- */

struct list_ctx {
    const struct tt_grant **v;
    size_t n;
    int64_t now;
};

static int list_one(const char *key, void *val, void *ud)
{
    (void)key;
    struct list_ctx *l = ud;
    const struct tt_grant *gr = val;
    if (gr->expires > l->now)
        l->v[l->n++] = gr;
    return 0;
}

static int by_created(const void *a, const void *b)
{
    const struct tt_grant *x = *(const struct tt_grant *const *)a;
    const struct tt_grant *y = *(const struct tt_grant *const *)b;
    if (x->created != y->created)
        return x->created < y->created ? -1 : 1;
    return strcmp(x->id, y->id);
}

int tt_grants_list(const struct tt_grants *g, int64_t now, const struct tt_grant ***out, size_t *n)
{
    size_t cnt = tt_grants_count(g);
    struct list_ctx l = {calloc(cnt ? cnt : 1, sizeof(*l.v)), 0, now};
    *out = NULL;
    *n = 0;
    if (!l.v)
        return TETHER_ERR_NOMEM;
    tt_strmap_foreach((struct tt_strmap *)&g->by_id, list_one, &l);
    qsort(l.v, l.n, sizeof(*l.v), by_created);
    *out = l.v;
    *n = l.n;
    return 0;
}

void tt_grants_get_stats(const struct tt_grants *g, struct tt_grants_stats *s)
{
    *s = g->st;
    s->cluster = g->rc != NULL;
}
