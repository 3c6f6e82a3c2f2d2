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
 * node's takeover. Every call is synchronous with a short timeout (redisconn.h): a failure is
 * TETHER_ERR_IO and the caller carries on with what it has. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tether_err.h"
#include "common/log.h"
#include "relay/store/redisconn.h"
#include "relay/store/registry.h"

#define P TT_REDIS_PREFIX

struct registry_redis {
    struct tt_registry base;
    struct tt_redisconn *rc;
    char node[TT_NODE_ID_MAX + 1];
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

/* ARGV: prefix, name. Returns 1 (deleted) or 0 (unknown). */
static const char del_lua[] =
    "local P,name=ARGV[1],ARGV[2]\n"
    "local dk=P..'dev:'..name\n"
    "local old=redis.call('HGETALL',dk)\n"
    "if #old==0 then return 0 end\n"
    "local keyed=redis.call('HEXISTS',P..'keys',name)==1\n"
    "for i=1,#old,2 do\n"
    "  local f,v=old[i],old[i+1]\n"
    "  if f=='label' and redis.call('HGET',P..'labels',v)==name then\n"
    "    redis.call('HDEL',P..'labels',v) end\n"
    "  if string.sub(f,1,2)=='p:' and redis.call('HGET',P..'ports',v)==name then\n"
    "    redis.call('HDEL',P..'ports',v) end\n"
    "  if string.sub(f,1,2)=='p:' and keyed then redis.call('DECRBY',P..'keyports',1) end\n"
    "  if f=='node' and v~='' then\n"
    "    redis.call('SREM',P..'nodedevs:'..v,name)\n"
    "    redis.call('SET',P..'deleted:'..name,v,'PX',60000)\n"
    "    redis.call('RPUSH',P..'kick:'..v,name)\n"
    "    redis.call('PEXPIRE',P..'kick:'..v,60000)\n"
    "  end\n"
    "end\n"
    "redis.call('DEL',dk)\n"
    "redis.call('SREM',P..'devices',name)\n"
    "redis.call('ZREM',P..'offline',name)\n"
    "return 1\n";

/* ARGV: prefix, name. Forgets name's device key (and its ports leave keyports). Returns 1 or 0
 * (it had none). */
static const char key_del_lua[] = "local P,name=ARGV[1],ARGV[2]\n"
                                  "if redis.call('HDEL',P..'keys',name)==0 then return 0 end\n"
                                  "local n=0\n"
                                  "for _,f in ipairs(redis.call('HKEYS',P..'dev:'..name)) do\n"
                                  "  if string.sub(f,1,2)=='p:' then n=n+1 end\n"
                                  "end\n"
                                  "if n>0 then redis.call('DECRBY',P..'keyports',n) end\n"
                                  "return 1\n";

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

/* Runs a Lua script with argv[0..argc) as its ARGV (the script and "0" keys are added). */
static redisReply *eval(struct registry_redis *q, const char *script, int argc, const char **argv,
                        const size_t *lens)
{
    const char *a[12 + 2 * TT_MAX_SERVICES];
    size_t l[12 + 2 * TT_MAX_SERVICES];
    if (argc + 3 > (int)(sizeof(a) / sizeof(a[0])))
        return NULL;
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
    return tt_redisconn_argv(q->rc, argc + 3, a, l);
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

static int rr_put(struct tt_registry *r, const struct tt_reg_device *d)
{
    struct registry_redis *q = to_rr(r);
    const char *argv[8 + 2 * TT_MAX_SERVICES];
    size_t lens[8 + 2 * TT_MAX_SERVICES];
    char off[24], seen[24], n[8], ports[TT_MAX_SERVICES][8];
    for (uint8_t i = 0; i < d->nports; i++)
        for (uint8_t j = 0; j < i; j++)
            if (d->ports[i].port == d->ports[j].port)
                return TETHER_ERR_INVAL;
    snprintf(off, sizeof(off), "%lld", (long long)d->offline_since);
    snprintf(seen, sizeof(seen), "%lld", (long long)d->last_seen);
    snprintf(n, sizeof(n), "%u", (unsigned)d->nports);
    int argc = 0;
    argv[argc++] = P;
    argv[argc++] = d->name;
    argv[argc++] = d->label;
    argv[argc++] = off;
    argv[argc++] = seen;
    argv[argc++] = q->node;
    argv[argc++] = n;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    argv[argc] = (const char *)d->key_hash; /* binary: its length is given */
    lens[argc++] = d->set_key ? 32 : 0;
    for (uint8_t i = 0; i < d->nports && i < TT_MAX_SERVICES; i++) {
        snprintf(ports[i], sizeof(ports[i]), "%u", (unsigned)d->ports[i].port);
        argv[argc] = d->ports[i].service;
        lens[argc] = strlen(argv[argc]);
        argc++;
        argv[argc] = ports[i];
        lens[argc] = strlen(argv[argc]);
        argc++;
    }
    redisReply *rep = eval(q, put_lua, argc, argv, lens);
    int rc = bad(rep);
    if (!rc && (rep->type != REDIS_REPLY_STRING && rep->type != REDIS_REPLY_STATUS))
        rc = TETHER_ERR_IO;
    if (!rc && strcmp(rep->str, "conflict") == 0) {
        TT_LOG(TT_LOG_DEBUG, "registry conflict device=%s label=%s", TT_LOG_V(d->name), d->label);
        rc = TETHER_ERR_INVAL;
    } else if (!rc && strcmp(rep->str, "moved") == 0) {
        TT_LOG(TT_LOG_DEBUG,
               "registry: device held by another node now, offline record "
               "ignored device=%s",
               TT_LOG_V(d->name));
    }
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

static int rr_cred_get(struct tt_registry *r, const char *name, uint8_t hash[32])
{
    redisReply *rep = tt_redisconn_cmd(to_rr(r)->rc, "GET " P "cred:%s", name);
    int rc = bad(rep);
    if (!rc && (rep->type != REDIS_REPLY_STRING || rep->len != 32))
        rc = TETHER_ERR_NOT_FOUND;
    if (!rc)
        memcpy(hash, rep->str, 32);
    if (rep)
        freeReplyObject(rep);
    return rc;
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
    redisReply *rep = tt_redisconn_cmd(to_rr(r)->rc, "HGET " P "keys %s", name);
    int rc = bad(rep);
    if (!rc && (rep->type != REDIS_REPLY_STRING || rep->len != 32))
        rc = TETHER_ERR_NOT_FOUND;
    if (!rc)
        memcpy(hash, rep->str, 32);
    if (rep)
        freeReplyObject(rep);
    return rc;
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

static int rr_sync_fd(struct tt_registry *r, int *fd)
{
    (void)r;
    *fd = -1;
    return 0;
}

static void rr_free(struct tt_registry *r)
{
    free(r);
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
