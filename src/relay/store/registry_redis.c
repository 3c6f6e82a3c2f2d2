/* registry_redis.c - the registry (registry.h) in Redis, shared by the nodes of a cluster.
 * Keys (all under TT_REDIS_PREFIX, "tether:"):
 *   dev:NAME          hash: label, off (offline since, 0 online), seen, node (holder while
 *                     online, "" offline), p:SERVICE -> port for each TCP service
 *   labels, ports     hashes label -> name and port -> name: the cluster-wide claims
 *   devices           set of names;  offline: zset name -> offline since (for expiry)
 *   nodedevs:NODE     set of the names a node holds online
 *   hb:NODE           the node's last heartbeat (ms); cred:NAME the credential hashes
 *   keys              hash name -> SHA-256 of its device key (32 bytes): outlives dev:NAME (the
 *                     name stays its device's after expiry) until the operator deletes it
 *   keyports          the number of p: fields of the dev:NAME records of the names in keys (the
 *                     TCP ports the fleet credential holds), kept by every script that adds or
 *                     removes ports or keys (put, del, key del, and cluster.c's expiry)
 *   deleted:NAME      the node that held NAME when the operator deleted it (60 s)
 *   kick:NODE         list of the names a node held online and lost: taken over by another node
 *                     (put) or deleted by the operator (del), pushed in the same script; the
 *                     node drains it at its next beat and closes those sessions (cluster.c).
 *                     Expires 60 s after the last push (a dead node's list goes away)
 * dev:NAME also holds "live" and "svc", published by the holder's beat (cluster.h).
 * Writes that touch several keys are Lua scripts, so that Redis runs them atomically: two nodes
 * can never claim one label or one port, and a node's late "offline" write cannot undo another
 * node's takeover. The operations of registry.h are synchronous with a short timeout
 * (redisconn.h; start-up, the command-line tools, and the calls not yet asynchronous); the
 * asynchronous forms (a registration's lookup, put, del and key withdrawal) go over the
 * asynchronous connection (store/redisasync.h) once tt_registry_redis_async() gave one,
 * pipelined with every other command in flight. On both a failure is TETHER_ERR_IO and the
 * caller carries on with what it has. Both connections talk to the same master, but not in one
 * order: a write on one may overtake a write on the other, which is why the registration path
 * sends all of its writes over the asynchronous one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tether_err.h"
#include "common/log.h"
#include "relay/store/redisasync.h"
#include "relay/store/redisconn.h"
#include "relay/store/registry.h"

#define P TT_REDIS_PREFIX

struct registry_redis {
    struct tt_registry base;
    struct tt_redisconn *rc;
    struct tt_redisasync *ra; /* the asynchronous connection (owned), or NULL */
    char node[TT_NODE_ID_MAX + 1];
    /* the fleet's key counts as the last lookup read them (counts_nowait) */
    bool counts_known, refreshing;
    uint64_t names, ports;
    struct tt_reg_lookup refresh; /* the lookup counts_nowait sends (one at a time) */
};

static struct registry_redis *to_rr(struct tt_registry *r)
{
    return (struct registry_redis *)r;
}

/* ARGV: prefix, name, label, off, seen, node, nports, key hash ("" to leave it), then service,
 * port pairs. Returns "ok", "conflict" (label or a port held by another name) or "moved" (an
 * offline record for a device that another node holds now, or that the operator deleted on
 * another node while this one held it: ignored). */
static const char put_lua[] =
    "local P,name,label,off,seen,me=ARGV[1],ARGV[2],ARGV[3],tonumber(ARGV[4]),ARGV[5],ARGV[6]\n"
    "local n=tonumber(ARGV[7])\n"
    "local dk=P..'dev:'..name\n"
    "local cur=redis.call('HGET',dk,'node')\n"
    "if off~=0 and cur and cur~='' and cur~=me then return 'moved' end\n"
    "if off~=0 and not cur and redis.call('GET',P..'deleted:'..name)==me then\n"
    "  return 'moved' end\n"
    "local o=redis.call('HGET',P..'labels',label)\n"
    "if o and o~=name then return 'conflict' end\n"
    "for i=0,n-1 do\n"
    "  o=redis.call('HGET',P..'ports',ARGV[10+2*i])\n"
    "  if o and o~=name then return 'conflict' end\n"
    "end\n"
    "local keyed=redis.call('HEXISTS',P..'keys',name)==1\n"
    "local kp=0\n"
    "local old=redis.call('HGETALL',dk)\n"
    "for i=1,#old,2 do\n"
    "  local f,v=old[i],old[i+1]\n"
    "  if f=='label' and v~=label and redis.call('HGET',P..'labels',v)==name then\n"
    "    redis.call('HDEL',P..'labels',v) end\n"
    "  if string.sub(f,1,2)=='p:' then\n"
    "    if redis.call('HGET',P..'ports',v)==name then redis.call('HDEL',P..'ports',v) end\n"
    "    redis.call('HDEL',dk,f)\n"
    "    if keyed then kp=kp-1 end\n"
    "  end\n"
    "end\n"
    "if ARGV[8]~='' then\n"
    "  redis.call('HSET',P..'keys',name,ARGV[8])\n"
    "  keyed=true\n"
    "end\n"
    "if keyed then kp=kp+n end\n"
    "if kp~=0 then redis.call('INCRBY',P..'keyports',kp) end\n"
    "local node=''\n"
    "if off==0 then node=me end\n"
    "if off==0 and cur~=me then redis.call('HDEL',dk,'live','svc') end\n"
    "redis.call('HSET',P..'labels',label,name)\n"
    "redis.call('HMSET',dk,'label',label,'off',ARGV[4],'seen',seen,'node',node)\n"
    "for i=0,n-1 do\n"
    "  redis.call('HSET',P..'ports',ARGV[10+2*i],name)\n"
    "  redis.call('HSET',dk,'p:'..ARGV[9+2*i],ARGV[10+2*i])\n"
    "end\n"
    "redis.call('SADD',P..'devices',name)\n"
    "if cur and cur~='' and cur~=node then redis.call('SREM',P..'nodedevs:'..cur,name) end\n"
    "if off==0 and cur and cur~='' and cur~=me then\n"
    "  redis.call('RPUSH',P..'kick:'..cur,name)\n"
    "  redis.call('PEXPIRE',P..'kick:'..cur,60000)\n"
    "end\n"
    "if off==0 then\n"
    "  redis.call('SADD',P..'nodedevs:'..me,name)\n"
    "  redis.call('ZREM',P..'offline',name)\n"
    "else\n"
    "  redis.call('ZADD',P..'offline',off,name)\n"
    "end\n"
    "return 'ok'\n";

/* The part of del_lua and erase_lua that deletes the record dk of name, old its HGETALL (not
 * empty): frees its label and ports, tells its holder (kick list). */
#define DEL_RECORD_LUA                                                                             \
    "local keyed=redis.call('HEXISTS',P..'keys',name)==1\n"                                        \
    "for i=1,#old,2 do\n"                                                                          \
    "  local f,v=old[i],old[i+1]\n"                                                                \
    "  if f=='label' and redis.call('HGET',P..'labels',v)==name then\n"                            \
    "    redis.call('HDEL',P..'labels',v) end\n"                                                   \
    "  if string.sub(f,1,2)=='p:' and redis.call('HGET',P..'ports',v)==name then\n"                \
    "    redis.call('HDEL',P..'ports',v) end\n"                                                    \
    "  if string.sub(f,1,2)=='p:' and keyed then redis.call('DECRBY',P..'keyports',1) end\n"       \
    "  if f=='node' and v~='' then\n"                                                              \
    "    redis.call('SREM',P..'nodedevs:'..v,name)\n"                                              \
    "    redis.call('SET',P..'deleted:'..name,v,'PX',60000)\n"                                     \
    "    redis.call('RPUSH',P..'kick:'..v,name)\n"                                                 \
    "    redis.call('PEXPIRE',P..'kick:'..v,60000)\n"                                              \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "redis.call('DEL',dk)\n"                                                                       \
    "redis.call('SREM',P..'devices',name)\n"                                                       \
    "redis.call('ZREM',P..'offline',name)\n"

/* ARGV: prefix, name. Returns 1 (deleted) or 0 (unknown). */
static const char del_lua[] = "local P,name=ARGV[1],ARGV[2]\n"
                              "local dk=P..'dev:'..name\n"
                              "local old=redis.call('HGETALL',dk)\n"
                              "if #old==0 then return 0 end\n" DEL_RECORD_LUA "return 1\n";

/* ARGV: prefix, name. Forgets name's device key (and its ports leave keyports). Returns 1 or 0
 * (it had none). */
#define KEY_DEL_LUA                                                                                \
    "local P,name=ARGV[1],ARGV[2]\n"                                                               \
    "if redis.call('HDEL',P..'keys',name)==0 then return 0 end\n"                                  \
    "local n=0\n"                                                                                  \
    "for _,f in ipairs(redis.call('HKEYS',P..'dev:'..name)) do\n"                                  \
    "  if string.sub(f,1,2)=='p:' then n=n+1 end\n"                                                \
    "end\n"                                                                                        \
    "if n>0 then redis.call('DECRBY',P..'keyports',n) end\n"                                       \
    "return 1\n"
static const char key_del_lua[] = KEY_DEL_LUA;
/* ARGV: prefix, name, hash. The same, only while name's key hash is hash. */
static const char key_del_if_lua[] =
    "if redis.call('HGET',ARGV[1]..'keys',ARGV[2])~=ARGV[3] then return 0 end\n" KEY_DEL_LUA;

/* ARGV: prefix, name, cutoff, force ("1" or "0"). The operator's delete (registry.h,
 * tt_registry_erase_async): name's device key, then its record unless force is "0" and the
 * record is not shown (no label; or no holder and offline since cutoff or earlier). Returns
 * {1 if the key was deleted else 0, 1 if the record was else 0, its label or ''}. */
static const char erase_lua[] =
    "local P,name,cutoff,force=ARGV[1],ARGV[2],tonumber(ARGV[3]),ARGV[4]=='1'\n"
    "local dk=P..'dev:'..name\n"
    "local freed=0\n"
    "if redis.call('HDEL',P..'keys',name)==1 then\n"
    "  freed=1\n"
    "  local n=0\n"
    "  for _,f in ipairs(redis.call('HKEYS',dk)) do\n"
    "    if string.sub(f,1,2)=='p:' then n=n+1 end\n"
    "  end\n"
    "  if n>0 then redis.call('DECRBY',P..'keyports',n) end\n"
    "end\n"
    "local old=redis.call('HGETALL',dk)\n"
    "if #old==0 then return {freed,0,''} end\n"
    "local label=redis.call('HGET',dk,'label') or ''\n"
    "if not force then\n"
    "  local node=redis.call('HGET',dk,'node') or ''\n"
    "  local off=tonumber(redis.call('HGET',dk,'off') or '0') or 0\n"
    "  if label=='' or (node=='' and off>0 and off<=cutoff) then return {freed,0,''} end\n"
    "end\n" DEL_RECORD_LUA "return {freed,1,label}\n";

/* ARGV: prefix, node, since. This node's online devices become offline since max(since, their
 * last seen, 1). Returns how many. */
static const char mark_offline_lua[] =
    "local P,me,since=ARGV[1],ARGV[2],tonumber(ARGV[3])\n"
    "local names=redis.call('SMEMBERS',P..'nodedevs:'..me)\n"
    "local n=0\n"
    "for _,name in ipairs(names) do\n"
    "  local dk=P..'dev:'..name\n"
    "  local h=redis.call('HMGET',dk,'node','seen')\n"
    "  if h[1]==me then\n"
    "    local off=math.max(since,tonumber(h[2] or '0'),1)\n"
    "    redis.call('HMSET',dk,'off',string.format('%d',off),'node','')\n"
    "    redis.call('ZADD',P..'offline',off,name)\n"
    "    n=n+1\n"
    "  end\n"
    "end\n"
    "redis.call('DEL',P..'nodedevs:'..me)\n"
    "return n\n";

static int64_t to_i64(const char *s)
{
    return s ? strtoll(s, NULL, 10) : 0;
}

#define EVAL_MAX_ARGS (12 + 2 * TT_MAX_SERVICES)

/* EVAL script 0 argv[0..argc) into a, l. Returns the count, or -1 when too many. */
static int eval_args(const char *script, int argc, const char **argv, const size_t *lens,
                     const char *a[EVAL_MAX_ARGS], size_t l[EVAL_MAX_ARGS])
{
    if (argc + 3 > EVAL_MAX_ARGS)
        return -1;
    a[0] = "EVAL";
    l[0] = 4;
    a[1] = script;
    l[1] = strlen(script);
    a[2] = "0";
    l[2] = 1;
    for (int i = 0; i < argc; i++) {
        a[3 + i] = argv[i];
        l[3 + i] = lens ? lens[i] : strlen(argv[i]);
    }
    return argc + 3;
}

/* Runs a Lua script with argv[0..argc) as its ARGV (the script and "0" keys are added). */
static redisReply *eval(struct registry_redis *q, const char *script, int argc, const char **argv,
                        const size_t *lens)
{
    const char *a[EVAL_MAX_ARGS];
    size_t l[EVAL_MAX_ARGS];
    int n = eval_args(script, argc, argv, lens, a, l);
    return n < 0 ? NULL : tt_redisconn_argv(q->rc, n, a, l);
}

/* The reply's error: NULL -> IO; an error reply -> IO; else 0 (caller checks the type). */
static int bad(redisReply *rep)
{
    return !rep || rep->type == REDIS_REPLY_ERROR ? TETHER_ERR_IO : 0;
}

/* Fills out from an HGETALL reply of dev:NAME. Returns 0 or TETHER_ERR_NOT_FOUND. */
static int parse_dev(const char *name, const redisReply *rep, struct tt_reg_device *out)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements == 0)
        return TETHER_ERR_NOT_FOUND;
    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", name);
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const redisReply *f = rep->element[i], *v = rep->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(f->str, "label") == 0)
            snprintf(out->label, sizeof(out->label), "%s", v->str);
        else if (strcmp(f->str, "off") == 0)
            out->offline_since = to_i64(v->str);
        else if (strcmp(f->str, "seen") == 0)
            out->last_seen = to_i64(v->str);
        else if (strcmp(f->str, "node") == 0)
            snprintf(out->node, sizeof(out->node), "%s", v->str);
        else if (strncmp(f->str, "p:", 2) == 0 && out->nports < TT_MAX_SERVICES) {
            long port = strtol(v->str, NULL, 10);
            if (port < 1 || port > 65535)
                continue;
            snprintf(out->ports[out->nports].service, sizeof(out->ports[0].service), "%s",
                     f->str + 2);
            out->ports[out->nports++].port = (uint16_t)port;
        }
    }
    return out->label[0] ? 0 : TETHER_ERR_NOT_FOUND;
}

static int rr_get(struct tt_registry *r, const char *name, struct tt_reg_device *out)
{
    redisReply *rep = tt_redisconn_cmd(to_rr(r)->rc, "HGETALL " P "dev:%s", name);
    int rc = bad(rep);
    if (!rc)
        rc = parse_dev(name, rep, out);
    if (rep)
        freeReplyObject(rep);
    return rc;
}

/* ARGV: prefix, label. Returns {name, HGETALL of its record} or nil: one round trip for the
 * lookup every forwarded request makes. */
static const char find_label_lua[] = "local n=redis.call('HGET',ARGV[1]..'labels',ARGV[2])\n"
                                     "if not n then return false end\n"
                                     "return {n,redis.call('HGETALL',ARGV[1]..'dev:'..n)}\n";

static int rr_find_label(struct tt_registry *r, const char *label, struct tt_reg_device *out)
{
    const char *argv[2] = {P, label};
    redisReply *rep = eval(to_rr(r), find_label_lua, 2, argv, NULL);
    int rc = bad(rep);
    if (!rc && (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
                rep->element[0]->type != REDIS_REPLY_STRING || rep->element[0]->len > TT_MAX_NAME))
        rc = TETHER_ERR_NOT_FOUND;
    if (!rc)
        rc = parse_dev(rep->element[0]->str, rep->element[1], out);
    if (rep)
        freeReplyObject(rep);
    return rc;
}

/* put_lua's ARGV for d (pointing into a and d). */
struct put_args {
    const char *argv[8 + 2 * TT_MAX_SERVICES];
    size_t lens[8 + 2 * TT_MAX_SERVICES];
    char off[24], seen[24], n[8], ports[TT_MAX_SERVICES][8];
    int argc;
};

/* Fills a for d. Returns 0 or TETHER_ERR_INVAL (d names a port twice). */
static int put_args(struct put_args *a, const struct tt_reg_device *d, const char *node)
{
    for (uint8_t i = 0; i < d->nports; i++)
        for (uint8_t j = 0; j < i; j++)
            if (d->ports[i].port == d->ports[j].port)
                return TETHER_ERR_INVAL;
    snprintf(a->off, sizeof(a->off), "%lld", (long long)d->offline_since);
    snprintf(a->seen, sizeof(a->seen), "%lld", (long long)d->last_seen);
    snprintf(a->n, sizeof(a->n), "%u", (unsigned)d->nports);
    int argc = 0;
    a->argv[argc++] = P;
    a->argv[argc++] = d->name;
    a->argv[argc++] = d->label;
    a->argv[argc++] = a->off;
    a->argv[argc++] = a->seen;
    a->argv[argc++] = node;
    a->argv[argc++] = a->n;
    for (int i = 0; i < argc; i++)
        a->lens[i] = strlen(a->argv[i]);
    a->argv[argc] = (const char *)d->key_hash; /* binary: its length is given */
    a->lens[argc++] = d->set_key ? 32 : 0;
    for (uint8_t i = 0; i < d->nports && i < TT_MAX_SERVICES; i++) {
        snprintf(a->ports[i], sizeof(a->ports[i]), "%u", (unsigned)d->ports[i].port);
        a->argv[argc] = d->ports[i].service;
        a->lens[argc] = strlen(a->argv[argc]);
        argc++;
        a->argv[argc] = a->ports[i];
        a->lens[argc] = strlen(a->argv[argc]);
        argc++;
    }
    a->argc = argc;
    return 0;
}

/* put_lua's answer for name (label: for the log). */
static int put_result(const redisReply *rep, const char *name, const char *label)
{
    int rc = bad((redisReply *)rep);
    if (!rc && (rep->type != REDIS_REPLY_STRING && rep->type != REDIS_REPLY_STATUS))
        rc = TETHER_ERR_IO;
    if (!rc && strcmp(rep->str, "conflict") == 0) {
        TT_LOG(TT_LOG_DEBUG, "registry conflict device=%s label=%s", TT_LOG_V(name), label);
        rc = TETHER_ERR_INVAL;
    } else if (!rc && strcmp(rep->str, "moved") == 0) {
        TT_LOG(TT_LOG_DEBUG,
               "registry: device held by another node now, offline record "
               "ignored device=%s",
               TT_LOG_V(name));
    }
    return rc;
}

static int rr_put(struct tt_registry *r, const struct tt_reg_device *d)
{
    struct registry_redis *q = to_rr(r);
    struct put_args a;
    if (put_args(&a, d, q->node) != 0)
        return TETHER_ERR_INVAL;
    redisReply *rep = eval(q, put_lua, a.argc, a.argv, a.lens);
    int rc = put_result(rep, d->name, d->label);
    if (rep)
        freeReplyObject(rep);
    return rc;
}

static int rr_del(struct tt_registry *r, const char *name)
{
    const char *argv[2] = {P, name};
    redisReply *rep = eval(to_rr(r), del_lua, 2, argv, NULL);
    int rc = bad(rep);
    if (!rc && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0)
        rc = TETHER_ERR_NOT_FOUND;
    if (rep)
        freeReplyObject(rep);
    return rc;
}

static int rr_foreach(struct tt_registry *r, int (*cb)(const struct tt_reg_device *d, void *ud),
                      void *ud)
{
    redisReply *names = tt_redisconn_cmd(to_rr(r)->rc, "SMEMBERS " P "devices");
    int rc = bad(names);
    for (size_t i = 0; !rc && i < names->elements; i++) {
        struct tt_reg_device d;
        const redisReply *e = names->element[i];
        if (e->type != REDIS_REPLY_STRING || e->len > TT_MAX_NAME)
            continue;
        int g = rr_get(r, e->str, &d);
        if (g == TETHER_ERR_NOT_FOUND)
            continue; /* deleted meanwhile */
        rc = g ? g : cb(&d, ud);
    }
    if (names)
        freeReplyObject(names);
    return rc;
}

static int rr_mark_offline(struct tt_registry *r, int64_t since_ms)
{
    struct registry_redis *q = to_rr(r);
    char since[24];
    snprintf(since, sizeof(since), "%lld", (long long)since_ms);
    const char *argv[3] = {P, q->node, since};
    redisReply *rep = eval(q, mark_offline_lua, 3, argv, NULL);
    int rc = bad(rep);
    if (rep)
        freeReplyObject(rep);
    return rc;
}

static int rr_heartbeat(struct tt_registry *r, int64_t now_ms, int64_t *prev_ms)
{
    struct registry_redis *q = to_rr(r);
    redisReply *rep = tt_redisconn_cmd(q->rc, "GETSET " P "hb:%s %lld", q->node, (long long)now_ms);
    int rc = bad(rep);
    if (!rc)
        *prev_ms = rep->type == REDIS_REPLY_STRING ? to_i64(rep->str) : 0;
    if (rep)
        freeReplyObject(rep);
    return rc;
}

/* The 32-byte hash that one command read (a credential's GET, a device key's HGET) into hash:
 * 0, TETHER_ERR_NOT_FOUND when there is none (or it is not 32 bytes), or bad()'s error. Frees
 * rep. */
static int hash_reply(redisReply *rep, uint8_t hash[32])
{
    int rc = bad(rep);
    if (!rc && (rep->type != REDIS_REPLY_STRING || rep->len != 32))
        rc = TETHER_ERR_NOT_FOUND;
    if (!rc)
        memcpy(hash, rep->str, 32);
    if (rep)
        freeReplyObject(rep);
    return rc;
}

static int rr_cred_get(struct tt_registry *r, const char *name, uint8_t hash[32])
{
    return hash_reply(tt_redisconn_cmd(to_rr(r)->rc, "GET " P "cred:%s", name), hash);
}

static int rr_cred_put(struct tt_registry *r, const char *name, const uint8_t hash[32])
{
    redisReply *rep =
        tt_redisconn_cmd(to_rr(r)->rc, "SET " P "cred:%s %b", name, (const char *)hash, 32);
    int rc = bad(rep);
    if (rep)
        freeReplyObject(rep);
    return rc;
}

static int rr_key_get(struct tt_registry *r, const char *name, uint8_t hash[32])
{
    return hash_reply(tt_redisconn_cmd(to_rr(r)->rc, "HGET " P "keys %s", name), hash);
}

static int rr_key_del(struct tt_registry *r, const char *name)
{
    const char *argv[2] = {P, name};
    redisReply *rep = eval(to_rr(r), key_del_lua, 2, argv, NULL);
    int rc = bad(rep);
    if (!rc && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0)
        rc = TETHER_ERR_NOT_FOUND;
    if (rep)
        freeReplyObject(rep);
    return rc;
}

/* ARGV: prefix. Returns {names with a key, keyports}. */
static const char key_counts_lua[] = "return {redis.call('HLEN',ARGV[1]..'keys'),"
                                     "tonumber(redis.call('GET',ARGV[1]..'keyports') or '0')}\n";

static int rr_key_counts(struct tt_registry *r, uint64_t *names, uint64_t *ports)
{
    const char *argv[1] = {P};
    redisReply *rep = eval(to_rr(r), key_counts_lua, 1, argv, NULL);
    int rc = bad(rep);
    if (!rc && (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
                rep->element[0]->type != REDIS_REPLY_INTEGER ||
                rep->element[1]->type != REDIS_REPLY_INTEGER))
        rc = TETHER_ERR_IO;
    if (!rc) {
        *names = rep->element[0]->integer > 0 ? (uint64_t)rep->element[0]->integer : 0;
        *ports = rep->element[1]->integer > 0 ? (uint64_t)rep->element[1]->integer : 0;
    }
    if (rep)
        freeReplyObject(rep);
    return rc;
}

static void ra_stop(struct tt_registry *r);
static void rr_free(struct tt_registry *r);

static int rr_sync_fd(struct tt_registry *r, int *fd)
{
    (void)r;
    *fd = -1;
    return 0;
}

static void rr_free(struct tt_registry *r)
{
    ra_stop(r);
    free(r);
}

/* ---- the asynchronous forms (registry.h), over the asynchronous connection */

/* One asynchronous operation: what its reply goes to. */
struct rr_op {
    struct registry_redis *rr;
    tt_registry_done_cb done;
    tt_registry_lookup_cb looked;
    tt_registry_erased_cb erased;
    struct tt_reg_lookup *q;
    void *ud;
    int kind; /* OP_* */
    char name[TT_MAX_NAME + 1], label[TT_MAX_LABEL + 1];
};
enum { OP_PUT, OP_DEL, OP_KEY_DEL, OP_HEARTBEAT };

/* ARGV: prefix, name, label. Returns {HGETALL dev:NAME, key hash or '', names with a key,
 * keyports, 1 when label is held}: what a registration reads, in one round trip. */
static const char lookup_lua[] =
    "local P,name,label=ARGV[1],ARGV[2],ARGV[3]\n"
    "local l=0\n"
    "if label~='' and redis.call('HEXISTS',P..'labels',label)==1 then l=1 end\n"
    "return {redis.call('HGETALL',P..'dev:'..name),redis.call('HGET',P..'keys',name) or '',\n"
    "  redis.call('HLEN',P..'keys'),tonumber(redis.call('GET',P..'keyports') or '0'),l}\n";

static void on_lookup(redisReply *rep, void *ud)
{
    struct rr_op *op = ud;
    struct tt_reg_lookup *q = op->q;
    bool ok = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 5 &&
              rep->element[1]->type == REDIS_REPLY_STRING &&
              rep->element[2]->type == REDIS_REPLY_INTEGER &&
              rep->element[3]->type == REDIS_REPLY_INTEGER &&
              rep->element[4]->type == REDIS_REPLY_INTEGER;
    if (!ok) {
        q->get_rc = q->key_rc = q->counts_rc = q->label_rc = TETHER_ERR_IO;
    } else {
        q->get_rc = parse_dev(q->name, rep->element[0], &q->dev);
        const redisReply *k = rep->element[1];
        q->key_rc = k->len == 32 ? 0 : TETHER_ERR_NOT_FOUND;
        if (k->len == 32)
            memcpy(q->key_hash, k->str, 32);
        q->counts_rc = 0;
        q->names = rep->element[2]->integer > 0 ? (uint64_t)rep->element[2]->integer : 0;
        q->ports = rep->element[3]->integer > 0 ? (uint64_t)rep->element[3]->integer : 0;
        q->label_rc = rep->element[4]->integer == 1 ? 0 : TETHER_ERR_NOT_FOUND;
        op->rr->counts_known = true;
        op->rr->names = q->names;
        op->rr->ports = q->ports;
    }
    tt_registry_lookup_cb cb = op->looked;
    void *cud = op->ud;
    free(op);
    cb(q, cud);
}

static void on_done(redisReply *rep, void *ud)
{
    struct rr_op *op = ud;
    int rc;
    if (op->kind == OP_PUT) {
        rc = put_result(rep, op->name, op->label);
    } else if (op->kind == OP_HEARTBEAT) {
        rc = bad(rep);
    } else {
        rc = bad(rep);
        if (!rc && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0)
            rc = TETHER_ERR_NOT_FOUND;
    }
    tt_registry_done_cb cb = op->done;
    void *cud = op->ud;
    free(op);
    if (cb)
        cb(rc, cud);
}

/* Sends EVAL script with argv for op (freed on error). */
static int aeval(struct registry_redis *q, struct rr_op *op, const char *script, int argc,
                 const char **argv, const size_t *lens, tt_redisasync_cb on)
{
    const char *a[EVAL_MAX_ARGS];
    size_t l[EVAL_MAX_ARGS];
    int n = eval_args(script, argc, argv, lens, a, l);
    int rc = n < 0 ? TETHER_ERR_INVAL : tt_redisasync_argv(q->ra, n, a, l, on, op);
    if (rc)
        free(op);
    return rc;
}

static struct rr_op *op_new(int kind, const char *name, tt_registry_done_cb cb, void *ud)
{
    struct rr_op *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->kind = kind;
    op->done = cb;
    op->ud = ud;
    snprintf(op->name, sizeof(op->name), "%s", name);
    return op;
}

static int ra_lookup(struct tt_registry *r, struct tt_reg_lookup *q, tt_registry_lookup_cb cb,
                     void *ud)
{
    struct rr_op *op = calloc(1, sizeof(*op));
    if (!op)
        return TETHER_ERR_NOMEM;
    op->rr = to_rr(r);
    op->looked = cb;
    op->q = q;
    op->ud = ud;
    const char *argv[3] = {P, q->name, q->label};
    return aeval(to_rr(r), op, lookup_lua, 3, argv, NULL, on_lookup);
}

static int ra_put(struct tt_registry *r, const struct tt_reg_device *d, tt_registry_done_cb cb,
                  void *ud)
{
    struct registry_redis *q = to_rr(r);
    struct put_args a;
    if (put_args(&a, d, q->node) != 0)
        return TETHER_ERR_INVAL;
    struct rr_op *op = op_new(OP_PUT, d->name, cb, ud);
    if (!op)
        return TETHER_ERR_NOMEM;
    snprintf(op->label, sizeof(op->label), "%s", d->label);
    return aeval(q, op, put_lua, a.argc, a.argv, a.lens, on_done);
}

static int ra_del(struct tt_registry *r, const char *name, tt_registry_done_cb cb, void *ud)
{
    struct rr_op *op = op_new(OP_DEL, name, cb, ud);
    if (!op)
        return TETHER_ERR_NOMEM;
    const char *argv[2] = {P, name};
    return aeval(to_rr(r), op, del_lua, 2, argv, NULL, on_done);
}

static int ra_key_del_if(struct tt_registry *r, const char *name, const uint8_t hash[32],
                         tt_registry_done_cb cb, void *ud)
{
    struct rr_op *op = op_new(OP_KEY_DEL, name, cb, ud);
    if (!op)
        return TETHER_ERR_NOMEM;
    const char *argv[3] = {P, name, (const char *)hash};
    const size_t lens[3] = {strlen(P), strlen(name), 32};
    return aeval(to_rr(r), op, key_del_if_lua, 3, argv, lens, on_done);
}

static int ra_heartbeat(struct tt_registry *r, int64_t now_ms, tt_registry_done_cb cb, void *ud)
{
    struct registry_redis *q = to_rr(r);
    struct rr_op *op = op_new(OP_HEARTBEAT, "", cb, ud);
    if (!op)
        return TETHER_ERR_NOMEM;
    int rc =
        tt_redisasync_cmd(q->ra, on_done, op, "SET " P "hb:%s %lld", q->node, (long long)now_ms);
    if (rc)
        free(op);
    return rc;
}

static void on_erased(redisReply *rep, void *ud)
{
    struct rr_op *op = ud;
    struct tt_reg_erased e;
    memset(&e, 0, sizeof(e));
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_INTEGER ||
        rep->element[2]->type != REDIS_REPLY_STRING) {
        e.rc = TETHER_ERR_IO;
    } else {
        e.key = rep->element[0]->integer == 1;
        e.record = rep->element[1]->integer == 1;
        if (rep->element[2]->len <= TT_MAX_LABEL)
            snprintf(e.label, sizeof(e.label), "%s", rep->element[2]->str);
    }
    tt_registry_erased_cb cb = op->erased;
    void *cud = op->ud;
    free(op);
    cb(&e, cud);
}

static int ra_erase(struct tt_registry *r, const char *name, int64_t cutoff, bool force,
                    tt_registry_erased_cb cb, void *ud)
{
    struct rr_op *op = op_new(OP_DEL, name, NULL, ud);
    if (!op)
        return TETHER_ERR_NOMEM;
    op->erased = cb;
    char cut[24];
    snprintf(cut, sizeof(cut), "%lld", (long long)cutoff);
    const char *argv[4] = {P, name, cut, force ? "1" : "0"};
    return aeval(to_rr(r), op, erase_lua, 4, argv, NULL, on_erased);
}

static void refreshed(struct tt_reg_lookup *q, void *ud)
{
    (void)q;
    ((struct registry_redis *)ud)->refreshing = false;
}

/* The counts the last lookup read, and a lookup to read them again for next time. */
static int ra_counts_nowait(struct tt_registry *r, uint64_t *names, uint64_t *ports)
{
    struct registry_redis *q = to_rr(r);
    if (!q->refreshing) {
        memset(&q->refresh, 0, sizeof(q->refresh));
        snprintf(q->refresh.name, sizeof(q->refresh.name), "%s", "");
        q->refreshing = ra_lookup(r, &q->refresh, refreshed, q) == 0;
    }
    if (!q->counts_known)
        return TETHER_ERR_AGAIN;
    *names = q->names;
    *ports = q->ports;
    return 0;
}

static bool ra_busy(struct tt_registry *r, size_t n)
{
    return tt_redisasync_busy(to_rr(r)->ra, n);
}

static int ra_metrics(struct tt_registry *r, char *out, size_t outlen, size_t *len)
{
    return tt_redisasync_metrics(to_rr(r)->ra, out, outlen, len);
}

static void ra_stop(struct tt_registry *r)
{
    struct registry_redis *q = to_rr(r);
    q->base.aops = NULL; /* the synchronous operations from now on */
    tt_redisasync_free(q->ra);
    q->ra = NULL;
}

static const struct tt_registry_async_ops redis_async_ops = {
    .lookup = ra_lookup,
    .put = ra_put,
    .del = ra_del,
    .key_del_if = ra_key_del_if,
    .erase = ra_erase,
    .heartbeat = ra_heartbeat,
    .counts_nowait = ra_counts_nowait,
    .busy = ra_busy,
    .metrics = ra_metrics,
    .stop = ra_stop,
};

int tt_registry_redis_async(struct tt_registry *r, uv_loop_t *loop, const struct tt_redis_url *u,
                            size_t max_pending, char err[TT_ERRLEN])
{
    struct registry_redis *q = to_rr(r);
    if (tt_redisasync_new(&q->ra, loop, u, max_pending, err) != 0)
        return -1;
    q->base.aops = &redis_async_ops;
    return 0;
}

struct tt_redisasync *tt_registry_redis_conn(struct tt_registry *r)
{
    return r && r->ops->free == rr_free ? to_rr(r)->ra : NULL;
}

static const struct tt_registry_ops redis_ops = {
    .get = rr_get,
    .find_label = rr_find_label,
    .put = rr_put,
    .del = rr_del,
    .foreach = rr_foreach,
    .mark_offline = rr_mark_offline,
    .heartbeat = rr_heartbeat,
    .cred_get = rr_cred_get,
    .cred_put = rr_cred_put,
    .key_get = rr_key_get,
    .key_del = rr_key_del,
    .key_counts = rr_key_counts,
    .sync_fd = rr_sync_fd,
    .free = rr_free,
};

struct tt_registry *tt_registry_redis_new(struct tt_redisconn *rc, const char *node_id)
{
    struct registry_redis *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->base.ops = &redis_ops;
    q->rc = rc;
    snprintf(q->node, sizeof(q->node), "%s", node_id);
    return &q->base;
}
