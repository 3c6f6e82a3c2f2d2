/* cluster.c - a node of a tetherd cluster (cluster.h): the beat (node record, live nodes, dead
 * nodes' devices marked offline, the secret), the devices taken over by other nodes, the TCP
 * port listeners of the whole cluster, grace expiry in Redis, redirects and forwarding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "tether_err.h"
#include "common/log.h"
#include "common/util.h"
#include "relay/cluster/cluster.h"
#include "relay/cluster/drain.h"
#include "relay/admin/webhook.h"
#include "relay/device/device.h"
#include "relay/admin/admin.h"
#include "relay/device/forward.h"
#include "relay/cluster/peerlink.h"
#include "relay/cluster/tickets.h"
#include "relay/relay.h"
#include "relay/http/respond.h"

#define P TT_REDIS_PREFIX
/* Devices expired per beat at most (the rest go at the next ones). */
#define EXPIRE_BATCH 200
/* Names checked per Redis call for takeovers. */
#define CHECK_BATCH 256
/* The device check's bounds per beat, whatever the number of devices: names drained from this
 * node's kick list, devices walked by the safety-net check (two Redis calls), devices looked at
 * in memory for changed live fields, and changed devices published at most (one call). */
#define KICK_MAX 1024
#define SCAN_SLICE (2 * CHECK_BATCH)
#define PUBLISH_WALK 8192
#define PUBLISH_MAX CHECK_BATCH
/* Labels whose holder is remembered for when Redis is away. */
#define LABEL_CACHE_MAX 100000

/* ARGV: prefix, me, advertise, addr, devices, now, ttl, secret, draining ("1" or "0")[, fleet
 * hash]. Publishes this node, marks the devices of nodes whose record expired offline since
 * their last heartbeat, and returns {secret, how many devices Redis says this node holds, then
 * id, advertise, addr, devices, draining of every other live node} (a node of an older version
 * publishes no draining field: "0"). */
static const char beat_lua[] =
    "local P,me=ARGV[1],ARGV[2]\n"
    "redis.call('HMSET',P..'node:'..me,'advertise',ARGV[3],'addr',ARGV[4],'devices',ARGV[5],"
    "'hb',ARGV[6],'drain',ARGV[9])\n"
    "redis.call('PEXPIRE',P..'node:'..me,tonumber(ARGV[7]))\n"
    "redis.call('SADD',P..'nodes',me)\n"
    "redis.call('SET',P..'hb:'..me,ARGV[6])\n"
    "redis.call('SET',P..'secret',ARGV[8],'NX')\n"
    "if ARGV[10] then redis.call('SET',P..'cred:',ARGV[10],'NX') end\n"
    "local out={redis.call('GET',P..'secret'),redis.call('SCARD',P..'nodedevs:'..me)}\n"
    "for _,id in ipairs(redis.call('SMEMBERS',P..'nodes')) do\n"
    "  local h=redis.call('HMGET',P..'node:'..id,'advertise','addr','devices','drain')\n"
    "  if h[1] then\n"
    "    if id~=me then\n"
    "      out[#out+1]=id out[#out+1]=h[1] out[#out+1]=h[2] or '' out[#out+1]=h[3] or '0'\n"
    "      out[#out+1]=h[4] or '0'\n"
    "    end\n"
    "  else\n"
    "    local hb=tonumber(redis.call('GET',P..'hb:'..id) or '0')\n"
    "    for _,name in ipairs(redis.call('SMEMBERS',P..'nodedevs:'..id)) do\n"
    "      local dk=P..'dev:'..name\n"
    "      local d=redis.call('HMGET',dk,'node','seen')\n"
    "      if d[1]==id then\n"
    "        local off=math.max(hb,tonumber(d[2] or '0'),1)\n"
    "        redis.call('HMSET',dk,'off',string.format('%d',off),'node','')\n"
    "        redis.call('ZADD',P..'offline',off,name)\n"
    "      end\n"
    "    end\n"
    "    redis.call('DEL',P..'nodedevs:'..id)\n"
    "    redis.call('SREM',P..'nodes',id)\n"
    "  end\n"
    "end\n"
    "return out\n";

/* ARGV: prefix, me, then name, live, svc for each device this node holds. Writes live and svc
 * (when not "") into the records still held by me, and returns the node field of each: "" when
 * offline or unknown, "!" when the record was deleted by the operator (on any node) while held
 * by me (the key deleted:NAME, written by the registry's delete, says so). */
static const char owners_lua[] =
    "local P,me=ARGV[1],ARGV[2]\n"
    "local out={}\n"
    "for i=3,#ARGV-2,3 do\n"
    "  local dk=P..'dev:'..ARGV[i]\n"
    "  local node=redis.call('HGET',dk,'node')\n"
    "  if node==me then\n"
    "    if ARGV[i+1]~='' then redis.call('HSET',dk,'live',ARGV[i+1]) end\n"
    "    if ARGV[i+2]~='' then redis.call('HSET',dk,'svc',ARGV[i+2]) end\n"
    "  elseif not node and redis.call('GET',P..'deleted:'..ARGV[i])==me then\n"
    "    node='!'\n"
    "  end\n"
    "  out[#out+1]=node or ''\n"
    "end\n"
    "return out\n";

/* ARGV: prefix, me, max. Takes up to max names from this node's kick list (the devices another
 * node took over, or the operator deleted, while this node held them: registry_redis.c pushes
 * them) and returns {name, node} for each: node as owners_lua returns it. */
static const char kicks_lua[] =
    "local P,me=ARGV[1],ARGV[2]\n"
    "local k=P..'kick:'..me\n"
    "local names=redis.call('LRANGE',k,0,tonumber(ARGV[3])-1)\n"
    "if #names==0 then return {} end\n"
    "redis.call('LTRIM',k,#names,-1)\n"
    "local out={}\n"
    "for _,name in ipairs(names) do\n"
    "  local node=redis.call('HGET',P..'dev:'..name,'node')\n"
    "  if not node and redis.call('GET',P..'deleted:'..name)==me then node='!' end\n"
    "  out[#out+1]=name out[#out+1]=node or ''\n"
    "end\n"
    "return out\n";

/* ARGV: prefix. Returns {port, name, node} for every assigned port. */
static const char ports_lua[] =
    "local P=ARGV[1]\n"
    "local out={}\n"
    "local all=redis.call('HGETALL',P..'ports')\n"
    "for i=1,#all,2 do\n"
    "  out[#out+1]=all[i] out[#out+1]=all[i+1]\n"
    "  out[#out+1]=redis.call('HGET',P..'dev:'..all[i+1],'node') or ''\n"
    "end\n"
    "return out\n";

/* ARGV: prefix, port. Returns {name, node} of the device holding port, or nil. */
static const char port_owner_lua[] =
    "local n=redis.call('HGET',ARGV[1]..'ports',ARGV[2])\n"
    "if not n then return false end\n"
    "local d=redis.call('HGETALL',ARGV[1]..'dev:'..n)\n"
    "local node,svc='',''\n"
    "for i=1,#d,2 do\n"
    "  if d[i]=='node' then node=d[i+1]\n"
    "  elseif string.sub(d[i],1,2)=='p:' and d[i+1]==ARGV[2] then svc=string.sub(d[i],3) end\n"
    "end\n"
    "return {n,node,svc}\n";

/* ARGV: prefix, cutoff, limit. Forgets devices offline since cutoff or earlier (labels, ports
 * and record; a device key stays, and the ports leave keyports: registry_redis.c). Returns the
 * names forgotten, each followed by its label. The script is atomic: each device is forgotten
 * by exactly one node, the one that sends its "expired" webhook. */
static const char expire_lua[] =
    "local P,cut=ARGV[1],tonumber(ARGV[2])\n"
    "local gone={}\n"
    "for _,name in ipairs(redis.call('ZRANGEBYSCORE',P..'offline','-inf',ARGV[2],'LIMIT',0,"
    "tonumber(ARGV[3]))) do\n"
    "  local dk=P..'dev:'..name\n"
    "  local h=redis.call('HMGET',dk,'node','off')\n"
    "  local off=tonumber(h[2] or '0')\n"
    "  if (not h[1] or h[1]=='') and off>0 and off<=cut then\n"
    "    local old=redis.call('HGETALL',dk)\n"
    "    local keyed=redis.call('HEXISTS',P..'keys',name)==1\n"
    "    for i=1,#old,2 do\n"
    "      local f,v=old[i],old[i+1]\n"
    "      if f=='label' and redis.call('HGET',P..'labels',v)==name then\n"
    "        redis.call('HDEL',P..'labels',v) end\n"
    "      if string.sub(f,1,2)=='p:' and redis.call('HGET',P..'ports',v)==name then\n"
    "        redis.call('HDEL',P..'ports',v) end\n"
    "      if string.sub(f,1,2)=='p:' and keyed then redis.call('DECRBY',P..'keyports',1) end\n"
    "    end\n"
    "    local lbl=redis.call('HGET',dk,'label') or ''\n"
    "    redis.call('DEL',dk)\n"
    "    redis.call('SREM',P..'devices',name)\n"
    "    gone[#gone+1]=name\n"
    "    gone[#gone+1]=lbl\n"
    "  end\n"
    "  redis.call('ZREM',P..'offline',name)\n"
    "end\n"
    "return gone\n";

static redisReply *eval(struct tt_cluster *c, const char *script, int argc, const char **argv)
{
    const char *a[3 + CHECK_BATCH + 1];
    size_t l[3 + CHECK_BATCH + 1];
    if (argc > CHECK_BATCH + 1)
        return NULL;
    a[0] = "EVAL";
    a[1] = script;
    a[2] = "0";
    for (int i = 0; i < argc; i++)
        a[3 + i] = argv[i];
    for (int i = 0; i < argc + 3; i++)
        l[i] = i == 3 + 9 && argc > 9 ? 32 : strlen(a[i]); /* the fleet hash is binary */
    return tt_redisconn_argv(&c->rc, argc + 3, a, l);
}

static bool is_array(const redisReply *rep)
{
    return rep && rep->type == REDIS_REPLY_ARRAY;
}

static const char *str_at(const redisReply *rep, size_t i)
{
    const redisReply *e = rep->element[i];
    return e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS ? e->str : "";
}

/* ---------------------------------------------------------------- the beat */

static void log_joined(const struct tt_cluster_node *nd)
{
    bool v6 = strchr(nd->host, ':') != NULL;
    TT_LOG(TT_LOG_INFO, "node joined node=%s addr=%s%s%s:%u advertise=%s", TT_LOG_V(nd->id),
           v6 ? "[" : "", nd->host, v6 ? "]" : "", (unsigned)nd->port, TT_LOG_V(nd->advertise));
}

static void set_nodes(struct tt_cluster *c, const redisReply *rep)
{
    size_t n = (rep->elements - 2) / 5;
    struct tt_cluster_node *v = calloc(n ? n : 1, sizeof(*v));
    if (!v)
        return;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        struct tt_cluster_node *nd = &v[k];
        char e[TT_ERRLEN];
        snprintf(nd->id, sizeof(nd->id), "%s", str_at(rep, 2 + 5 * i));
        snprintf(nd->advertise, sizeof(nd->advertise), "%s", str_at(rep, 3 + 5 * i));
        if (tt_parse_hostport(str_at(rep, 4 + 5 * i), nd->host, &nd->port, false, e) != 0)
            continue;
        nd->devices = strtoll(str_at(rep, 5 + 5 * i), NULL, 10);
        nd->draining = strcmp(str_at(rep, 6 + 5 * i), "1") == 0;
        k++;
    }
    /* nodes joining and leaving, as this node sees them (not at its first beat: the start-up
     * line counts the nodes then) */
    for (size_t i = 0; c->nodes_known && i < k; i++) {
        bool known = false;
        for (size_t j = 0; j < c->nnodes && !known; j++)
            known = strcmp(c->nodes[j].id, v[i].id) == 0;
        if (!known)
            log_joined(&v[i]);
    }
    for (size_t j = 0; c->nodes_known && j < c->nnodes; j++) {
        bool kept = false;
        for (size_t i = 0; i < k && !kept; i++)
            kept = strcmp(c->nodes[j].id, v[i].id) == 0;
        if (!kept)
            TT_LOG(TT_LOG_INFO, "node left node=%s addr=%s%s%s:%u", TT_LOG_V(c->nodes[j].id),
                   strchr(c->nodes[j].host, ':') ? "[" : "", c->nodes[j].host,
                   strchr(c->nodes[j].host, ':') ? "]" : "", (unsigned)c->nodes[j].port);
    }
    c->nodes_known = true;
    free(c->nodes);
    c->nodes = v;
    c->nnodes = k;
    c->fleet_online = c->online;
    for (size_t i = 0; i < k; i++)
        c->fleet_online += v[i].devices;
}

static const struct tt_cluster_node *find_node(struct tt_cluster *c, const char *id)
{
    for (size_t i = 0; i < c->nnodes; i++)
        if (strcmp(c->nodes[i].id, id) == 0)
            return &c->nodes[i];
    if (strcmp(id, c->r->cfg.node_id) == 0)
        return NULL;
    /* A node that joined since the last beat: read its record now. */
    redisReply *rep = tt_redisconn_cmd(&c->rc, "HMGET " P "node:%s advertise addr devices", id);
    struct tt_cluster_node nd;
    memset(&nd, 0, sizeof(nd));
    char e[TT_ERRLEN];
    bool ok = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
              rep->element[0]->type == REDIS_REPLY_STRING &&
              rep->element[1]->type == REDIS_REPLY_STRING &&
              tt_parse_hostport(rep->element[1]->str, nd.host, &nd.port, false, e) == 0;
    if (ok) {
        snprintf(nd.id, sizeof(nd.id), "%s", id);
        snprintf(nd.advertise, sizeof(nd.advertise), "%s", rep->element[0]->str);
        nd.devices = rep->element[2]->type == REDIS_REPLY_STRING
                         ? strtoll(rep->element[2]->str, NULL, 10)
                         : 0;
    }
    if (rep)
        freeReplyObject(rep);
    if (!ok)
        return NULL;
    struct tt_cluster_node *v = realloc(c->nodes, (c->nnodes + 1) * sizeof(*v));
    if (!v)
        return NULL;
    c->nodes = v;
    c->nodes[c->nnodes] = nd;
    if (c->nodes_known)
        log_joined(&nd);
    return &c->nodes[c->nnodes++];
}

static void beat(struct tt_cluster *c, int64_t now)
{
    struct tt_relay *r = c->r;
    char addr[TT_HOSTLEN + 16], devices[24], nowb[24], ttl[24];
    bool v6 = strchr(r->cfg.cluster_addr.host, ':') != NULL;
    snprintf(addr, sizeof(addr), "%s%s%s:%u", v6 ? "[" : "", r->cfg.cluster_addr.host,
             v6 ? "]" : "", (unsigned)r->cfg.cluster_addr.port);
    c->online = (int64_t)tt_device_online_count(r);
    c->accepted = 0;
    snprintf(devices, sizeof(devices), "%lld", (long long)c->online);
    snprintf(nowb, sizeof(nowb), "%lld", (long long)now);
    snprintf(ttl, sizeof(ttl), "%d", TT_CLUSTER_NODE_TTL_MS);
    const char *argv[10] = {P,
                            r->cfg.node_id,
                            r->cfg.advertise,
                            addr,
                            devices,
                            nowb,
                            ttl,
                            c->secret,
                            tt_drain_on(r) ? "1" : "0",
                            (const char *)c->fleet_hash};
    redisReply *rep = eval(c, beat_lua, c->fleet_generated ? 10 : 9, argv);
    c->redis_held = -1;
    if (is_array(rep) && rep->elements >= 2) {
        const char *s = str_at(rep, 0);
        if (rep->element[1]->type == REDIS_REPLY_INTEGER)
            c->redis_held = rep->element[1]->integer;
        if (strlen(s) == TT_CLUSTER_SECRET_LEN && strcmp(s, c->secret) != 0) {
            TT_LOG(TT_LOG_INFO, "cluster secret changed in redis; using it");
            snprintf(c->secret, sizeof(c->secret), "%s", s);
        }
        set_nodes(c, rep);
    }
    if (rep)
        freeReplyObject(rep);
}

/* ---------------------------------------------------------------- takeovers */

/* Longest live field (cluster.h): four 20-digit numbers, an address and the spaces. */
#define LIVE_MAX (4 * 21 + 64)

/* One batch of the takeover check: the names, and what is published for each. */
struct batch {
    const char *argv[5 + 3 * CHECK_BATCH]; /* EVAL script 0 prefix me, then 3 per name */
    size_t lens[5 + 3 * CHECK_BATCH];
    char names[CHECK_BATCH][TT_MAX_NAME + 1];
    char live[CHECK_BATCH][LIVE_MAX];
    char *svc[CHECK_BATCH]; /* malloc'd or NULL */
    int64_t since[CHECK_BATCH];
    uint64_t in[CHECK_BATCH], out[CHECK_BATCH], streams[CHECK_BATCH];
    int n;
};

/* d's byte and stream counters now. */
static void counters(const struct tt_device *d, uint64_t *in, uint64_t *out, uint64_t *streams)
{
    *in = d->bytes_in;
    *out = d->bytes_out;
    if (d->conn && d->conn->ws) {
        *in += tt_wsconn_bytes_in(d->conn->ws);
        *out += tt_wsconn_bytes_out(d->conn->ws);
    }
    *streams = d->streams;
}

/* True when d's live fields differ from what this node last published for it. */
static bool live_changed(const struct tt_device *d)
{
    uint64_t in, out, streams;
    counters(d, &in, &out, &streams);
    return d->pub_since != d->connected_since || in != d->pub_in || out != d->pub_out ||
           streams != d->pub_streams;
}

/* Adds d to the batch with its live field when it changed since the last publication, and its
 * services when its session did. */
static void batch_add(struct batch *b, struct tt_device *d)
{
    int i = b->n++;
    snprintf(b->names[i], TT_MAX_NAME + 1, "%s", d->name);
    b->since[i] = d->connected_since;
    counters(d, &b->in[i], &b->out[i], &b->streams[i]);
    b->live[i][0] = '\0';
    b->svc[i] = NULL;
    bool fresh = d->pub_since != d->connected_since;
    if (fresh || b->in[i] != d->pub_in || b->out[i] != d->pub_out ||
        b->streams[i] != d->pub_streams)
        tt_cluster_live_format(b->since[i], b->in[i], b->out[i], b->streams[i], d->remote_addr,
                               b->live[i], LIVE_MAX);
    if (fresh)
        b->svc[i] = tt_admin_services_dump(d);
}

/* Acts on what Redis says of name, which this node holds online: owner is its record's node
 * field ("!" deleted by the operator while held here). Closes the session when another node
 * holds it or it was deleted (counted in *closed); returns true when the record names this
 * node. */
static bool apply_owner(struct tt_cluster *c, const char *name, const char *owner, uint64_t *closed)
{
    if (strcmp(owner, c->r->cfg.node_id) == 0)
        return true;
    if (strcmp(owner, "!") == 0) {
        TT_LOG(TT_LOG_INFO, "device deleted on another node device=%s", TT_LOG_V(name));
        (*closed)++;
        tt_device_delete(c->r, name);
    } else if (owner[0]) {
        TT_LOG(TT_LOG_INFO, "device taken over by another node device=%s node=%s", TT_LOG_V(name),
               TT_LOG_V(owner));
        (*closed)++;
        tt_device_evict(c->r, name);
    }
    return false;
}

static void batch_run(struct tt_cluster *c, struct batch *b)
{
    if (b->n == 0)
        return;
    const char **argv = b->argv;
    size_t *lens = b->lens;
    int argc = 0;
    argv[argc++] = "EVAL";
    argv[argc++] = owners_lua;
    argv[argc++] = "0";
    argv[argc++] = P;
    argv[argc++] = c->r->cfg.node_id;
    for (int i = 0; i < b->n; i++) {
        argv[argc++] = b->names[i];
        argv[argc++] = b->live[i];
        argv[argc++] = b->svc[i] ? b->svc[i] : "";
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    redisReply *rep = tt_redisconn_argv(&c->rc, argc, argv, lens);
    for (int i = 0; is_array(rep) && (int)rep->elements == b->n && i < b->n; i++) {
        const char *owner = str_at(rep, (size_t)i);
        const char *name = b->names[i];
        struct tt_device *d = tt_strmap_get(&c->r->by_name, name);
        if (!owner[0]) {
            if (d && d->conn && d->offline_since == 0) {
                /* Redis lost it (restarted, or a failover lost the write) or took us for dead:
                 * it is ours, say so again */
                if (tt_device_save(d) == TETHER_ERR_INVAL) {
                    /* its label or a port went to another name meanwhile (DESIGN.md): the
                     * record Redis has wins; the device registers again, as if new */
                    TT_LOG(TT_LOG_WARN,
                           "device's label or port held by another device in redis; closing its "
                           "session device=%s label=%s",
                           TT_LOG_V(name), d->label);
                    c->repair_conflict++;
                    tt_device_evict(c->r, name);
                    continue;
                }
                d->pub_since = 0; /* and publish its live fields again */
            }
        } else if (apply_owner(c, name, owner, &c->closed_scan) && d) {
            if (b->live[i][0])
                c->published++;
            d->pub_since = b->since[i];
            d->pub_in = b->in[i];
            d->pub_out = b->out[i];
            d->pub_streams = b->streams[i];
        }
    }
    if (rep)
        freeReplyObject(rep);
    for (int i = 0; i < b->n; i++)
        free(b->svc[i]);
    b->n = 0;
}

/* Names collected from a walk of the device map (a device may go away while they are acted
 * on, so that they are looked up again one by one). */
struct online_names {
    char (*v)[TT_MAX_NAME + 1];
    size_t n, cap;
    size_t want;       /* the walk stops (at the end of a bucket) once it has this many */
    bool changed_only; /* only those whose live fields changed */
};

static bool held_online(const struct tt_device *d)
{
    return d->conn && d->offline_since == 0 && d->conn->registered;
}

static int collect_one(const char *key, void *val, void *ud)
{
    struct tt_device *d = val;
    struct online_names *on = ud;
    (void)key;
    if (held_online(d) && on->n < on->cap && (!on->changed_only || live_changed(d)))
        snprintf(on->v[on->n++], TT_MAX_NAME + 1, "%s", d->name);
    return on->n >= on->want;
}

/* Checks (and publishes, when changed) the devices named in on, CHECK_BATCH per Redis call. */
static void check_names(struct tt_cluster *c, const struct online_names *on)
{
    struct batch *b = on->n ? calloc(1, sizeof(*b)) : NULL;
    for (size_t i = 0; b && i < on->n; i++) {
        /* a device evicted or deleted by an earlier batch is gone from the map */
        struct tt_device *d = tt_strmap_get(&c->r->by_name, on->v[i]);
        if (d && held_online(d))
            batch_add(b, d);
        if (b->n == CHECK_BATCH || i + 1 == on->n)
            batch_run(c, b);
    }
    free(b);
}

/* Closes the sessions of the devices named in this node's kick list: each was taken over by
 * another node or deleted by the operator while held here (the script that changed its record
 * pushed the name), after checking that its record still says so (it may have come back). */
static void drain_kicks(struct tt_cluster *c)
{
    char max[16];
    snprintf(max, sizeof(max), "%d", KICK_MAX);
    const char *argv[3] = {P, c->r->cfg.node_id, max};
    redisReply *rep = eval(c, kicks_lua, 3, argv);
    for (size_t i = 0; is_array(rep) && i + 1 < rep->elements; i += 2) {
        char name[TT_MAX_NAME + 1];
        const char *s = str_at(rep, i);
        if (strlen(s) > TT_MAX_NAME)
            continue;
        snprintf(name, sizeof(name), "%s", s);
        struct tt_device *d = tt_strmap_get(&c->r->by_name, name);
        if (d && held_online(d))
            apply_owner(c, name, str_at(rep, i + 1), &c->closed_pushed);
    }
    if (rep)
        freeReplyObject(rep);
}

/* Walks up to walk devices of the map from *pos on, collecting up to max of them (online;
 * changed_only: whose live fields changed), then checks those. */
static void check_slice(struct tt_cluster *c, size_t *pos, size_t walk, size_t max,
                        bool changed_only)
{
    /* whole buckets are walked: room for a few more than asked for */
    struct online_names on = {NULL, 0, max + 64, max, changed_only};
    if (tt_strmap_count(&c->r->by_name) == 0 || !(on.v = calloc(on.cap, TT_MAX_NAME + 1)))
        return;
    tt_strmap_walk(&c->r->by_name, pos, walk, collect_one, &on);
    check_names(c, &on);
    free(on.v);
}

/* After a change of Redis master (sentinel failover): the new master may lack writes the old
 * one acknowledged (replication is asynchronous). Every device held here is checked against it,
 * TT_CLUSTER_REPAIR_SLICE per beat: a record missing or offline is written again (label, ports,
 * holder: the registry's put, which refuses a label or port another name holds), one that
 * another node holds closes the session here (DESIGN.md "Redis failover"). */
static void repair(struct tt_cluster *c)
{
    if (c->rc.master_changes != c->master_seen) {
        c->master_seen = c->rc.master_changes;
        c->repair_left = tt_strmap_count(&c->r->by_name);
        TT_LOG(TT_LOG_INFO, "redis master changed; writing this node's devices again devices=%zu",
               c->repair_left);
    }
    if (c->repair_left == 0)
        return;
    size_t n = c->repair_left < TT_CLUSTER_REPAIR_SLICE ? c->repair_left : TT_CLUSTER_REPAIR_SLICE;
    check_slice(c, &c->repair_pos, n, n, false);
    c->repair_left -= n;
    if (c->repair_left == 0)
        TT_LOG(TT_LOG_INFO, "devices written again to the new redis master conflicts=%llu",
               (unsigned long long)c->repair_conflict);
}

/* The device check of a beat, bounded whatever the number of devices: closes the local
 * sessions of devices that another node now holds (the device reconnected there: ours is a
 * half-open leftover) or that the operator deleted on another node, as told by this node's kick
 * list; then, as a safety net for anything the list missed, checks the next SCAN_SLICE devices
 * of the map (a full round takes devices / SCAN_SLICE beats), recording again the ones Redis
 * forgot; then publishes the live fields of up to PUBLISH_MAX devices that changed, among the
 * next PUBLISH_WALK devices (looked at in memory). When Redis lists fewer devices held by this
 * node than it holds (Redis restarted empty, or took this node for dead after a stall: the beat
 * compares the counts), the check walks every device at once instead of a slice. */
static void check_takeovers(struct tt_cluster *c)
{
    uint64_t closed = c->closed_pushed;
    drain_kicks(c);
    size_t all = tt_strmap_count(&c->r->by_name);
    if (c->redis_held >= 0 && c->redis_held < c->online - (int64_t)(c->closed_pushed - closed)) {
        /* Redis holds fewer of our devices than we do (it restarted, or took us for dead):
         * check them all now, so that their records are back within a second, as before */
        TT_LOG(TT_LOG_DEBUG, "cluster: redis lists %lld of our %lld devices, checking all",
               (long long)c->redis_held, (long long)c->online);
        c->full_checks++;
        check_slice(c, &c->scan_pos, all, all, false);
    } else {
        check_slice(c, &c->scan_pos, SCAN_SLICE, SCAN_SLICE, false);
    }
    check_slice(c, &c->pub_pos, PUBLISH_WALK, PUBLISH_MAX, true);
    repair(c);
}

/* ---------------------------------------------------------------- TCP ports */

static struct tt_cluster_port *port_entry(struct tt_cluster *c, uint16_t port)
{
    struct tt_relay *r = c->r;
    if (port < r->cfg.tcp_low || port > r->cfg.tcp_high)
        return NULL;
    return &c->ports[port - r->cfg.tcp_low];
}

static void on_port_accept(struct tt_tcpport *p, struct tt_conn *client, void *ud);

/* Opens our listener on port (shared with nodes on the same address: SO_REUSEPORT). */
static int open_port(struct tt_cluster *c, struct tt_cluster_port *e, uint16_t port)
{
    if (e->l)
        return 0;
    return tt_tcpports_open_exact(&c->r->ports, port, on_port_accept, c, &e->l);
}

static void sync_ports(struct tt_cluster *c)
{
    struct tt_relay *r = c->r;
    const char *argv[1] = {P};
    redisReply *rep = eval(c, ports_lua, 1, argv);
    if (!is_array(rep) || rep->elements % 3 != 0) {
        if (rep)
            freeReplyObject(rep);
        return; /* keep what we have */
    }
    size_t n = (size_t)(r->cfg.tcp_high - r->cfg.tcp_low) + 1;
    uint8_t *want = calloc(n, 1);
    for (size_t i = 0; want && i < rep->elements; i += 3) {
        long port = strtol(str_at(rep, i), NULL, 10);
        struct tt_cluster_port *e = port_entry(c, (uint16_t)(port > 0 && port < 65536 ? port : 0));
        if (!e)
            continue;
        want[e - c->ports] = 1;
        if (strcmp(e->name, str_at(rep, i + 1)) != 0)
            e->service[0] = '\0';
        snprintf(e->name, sizeof(e->name), "%s", str_at(rep, i + 1));
        snprintf(e->node, sizeof(e->node), "%s", str_at(rep, i + 2));
        if (!e->l && open_port(c, e, (uint16_t)port) != 0)
            TT_LOG(TT_LOG_DEBUG, "cluster tcp port unavailable here port=%ld", port);
    }
    for (size_t i = 0; want && i < n; i++) {
        struct tt_cluster_port *e = &c->ports[i];
        if (!want[i] && e->l) {
            tt_tcpport_close(e->l);
            e->l = NULL;
            e->name[0] = e->node[0] = e->service[0] = '\0';
        }
    }
    free(want);
    freeReplyObject(rep);
}

void tt_cluster_refresh_ports(struct tt_cluster *c)
{
    sync_ports(c);
}

/* The local device holding port, online, and its service index; NULL if none. */
static struct tt_device *local_port(struct tt_cluster *c, const char *name, uint16_t port, int *svc)
{
    struct tt_device *d = name[0] ? tt_strmap_get(&c->r->by_name, name) : NULL;
    if (!d || !tt_device_online(d))
        return NULL;
    for (uint8_t i = 0; i < d->nsvc; i++) {
        if (d->svc[i].kind == TT_SERVICE_TCP && d->svc[i].portno == port) {
            *svc = i;
            return d;
        }
    }
    return NULL;
}

static void on_port_accept(struct tt_tcpport *p, struct tt_conn *client, void *ud)
{
    struct tt_cluster *c = ud;
    uint16_t port = tt_tcpport_port(p);
    struct tt_cluster_port *e = port_entry(c, port);
    int svc;
    struct tt_device *d = e ? local_port(c, e->name, port, &svc) : NULL;
    /* --tcp-allow is checked here, by the node that accepted the socket, before anything else
     * (no Redis call, no forwarding); the holder trusts the node that forwards it. */
    const char *sname = d ? d->svc[svc].name : e && e->service[0] ? e->service : NULL;
    if (!tt_forward_tcp_admit(c->r, client, e && e->name[0] ? e->name : NULL, sname))
        return;
    if (d) {
        tt_forward_tcp(d, svc, client);
        return;
    }
    if (!e) {
        tt_respond_drop(client);
        return;
    }
    /* Not ours: ask Redis who holds it now (the last snapshot if Redis is away). */
    char name[TT_MAX_NAME + 1], node[TT_NODE_ID_MAX + 1];
    snprintf(name, sizeof(name), "%s", e->name);
    snprintf(node, sizeof(node), "%s", e->node);
    char portb[8];
    snprintf(portb, sizeof(portb), "%u", (unsigned)port);
    const char *argv[2] = {P, portb};
    redisReply *rep = eval(c, port_owner_lua, 2, argv);
    char svcname[TT_MAX_NAME + 1] = ""; /* the port's service, for the audit line */
    if (is_array(rep) && rep->elements == 3) {
        snprintf(name, sizeof(name), "%s", str_at(rep, 0));
        snprintf(node, sizeof(node), "%s", str_at(rep, 1));
        snprintf(svcname, sizeof(svcname), "%s", str_at(rep, 2));
    } else if (rep && rep->type == REDIS_REPLY_NIL) {
        name[0] = node[0] = '\0';
    }
    if (rep)
        freeReplyObject(rep);
    d = local_port(c, name, port, &svc);
    if (d) {
        tt_forward_tcp(d, svc, client);
        return;
    }
    const char *audit_svc = svcname[0] ? svcname : strcmp(name, e->name) == 0 ? sname : NULL;
    const struct tt_cluster_node *nd = node[0] ? find_node(c, node) : NULL;
    if (!nd) {
        if (name[0] && tt_audit_on(&c->r->audit)) {
            char peer[TT_MAX_ADDR];
            tt_conn_peer(client, peer, sizeof(peer));
            tt_forward_audit_refused(c->r, name, audit_svc, "tcp", NULL, peer, "offline");
        }
        tt_respond_drop(client); /* offline, unknown, or its node is gone */
        return;
    }
    char peer[TT_MAX_ADDR], head[512];
    tt_conn_peer(client, peer, sizeof(peer));
    int n = snprintf(head, sizeof(head),
                     "CONNECT tether-port:%u HTTP/1.1\r\nHost: tether-port:%u\r\n%s: %s\r\n"
                     "%s: %s\r\n\r\n",
                     (unsigned)port, (unsigned)port, TT_CLUSTER_HDR_SECRET, c->secret,
                     TT_CLUSTER_HDR_CLIENT, peer);
    uint8_t *first = n > 0 && (size_t)n < sizeof(head) ? malloc((size_t)n) : NULL;
    if (!first) {
        tt_respond_drop(client);
        return;
    }
    memcpy(first, head, (size_t)n);
    c->forwarded_tcp++;
    TT_LOG(TT_LOG_DEBUG, "tcp client forwarded port=%u device=%s node=%s", (unsigned)port,
           TT_LOG_V(name), TT_LOG_V(node));
    struct tt_peerlink_audit audit = {
        .r = c->r,
        .device = name,
        .service = audit_svc,
        .kind = "tcp",
        .client = peer,
    };
    tt_peerlink_start(c->r->loop, client, nd->host, nd->port, first, (size_t)n, false, &audit);
}

int tt_cluster_port_claim(struct tt_cluster *c, const char *name, const char *service,
                          uint16_t want, uint16_t *got)
{
    struct tt_cluster_port *e = port_entry(c, want);
    if (e && (!e->name[0] || strcmp(e->name, name) == 0) && open_port(c, e, want) == 0) {
        snprintf(e->name, sizeof(e->name), "%s", name);
        snprintf(e->node, sizeof(e->node), "%s", c->r->cfg.node_id);
        snprintf(e->service, sizeof(e->service), "%s", service);
        *got = want;
        return 0;
    }
    /* A fresh port: the pool skips every port we listen on (all the cluster's we know of). */
    for (int tries = 0; tries < 64; tries++) {
        struct tt_tcpport *p;
        int rc = tt_tcpports_open(&c->r->ports, 0, on_port_accept, c, &p);
        if (rc)
            return rc;
        e = port_entry(c, tt_tcpport_port(p));
        if (!e || e->l) { /* cannot happen: the pool knows our listeners */
            tt_tcpport_close(p);
            continue;
        }
        e->l = p;
        snprintf(e->name, sizeof(e->name), "%s", name);
        snprintf(e->node, sizeof(e->node), "%s", c->r->cfg.node_id);
        snprintf(e->service, sizeof(e->service), "%s", service);
        *got = tt_tcpport_port(p);
        return 0;
    }
    return TETHER_ERR_CAPACITY;
}

void tt_cluster_port_release(struct tt_cluster *c, const char *name, uint16_t port)
{
    struct tt_cluster_port *e = port_entry(c, port);
    if (!e || !e->l || strcmp(e->name, name) != 0)
        return;
    tt_tcpport_close(e->l);
    e->l = NULL;
    e->name[0] = e->node[0] = e->service[0] = '\0';
}

/* ---------------------------------------------------------------- expiry */

static void expire(struct tt_cluster *c, int64_t now)
{
    char cut[24], lim[16];
    snprintf(cut, sizeof(cut), "%lld", (long long)(now - (int64_t)c->r->cfg.grace_ms));
    snprintf(lim, sizeof(lim), "%d", EXPIRE_BATCH);
    const char *argv[3] = {P, cut, lim};
    redisReply *rep = eval(c, expire_lua, 3, argv);
    for (size_t i = 0; is_array(rep) && i + 1 < rep->elements; i += 2) {
        TT_LOG(TT_LOG_INFO, "device expired device=%s", TT_LOG_V(str_at(rep, i)));
        tt_webhook_emit(c->r->webhooks, "expired", str_at(rep, i), str_at(rep, i + 1), now);
    }
    if (rep)
        freeReplyObject(rep);
}

static void on_timer(uv_timer_t *t)
{
    struct tt_cluster *c = t->data;
    int64_t now = tt_relay_now_ms();
    uint64_t t0 = uv_hrtime();
    beat(c, now);
    uint64_t t1 = uv_hrtime();
    check_takeovers(c);
    uint64_t t2 = uv_hrtime();
    sync_ports(c);
    expire(c, now);
    c->beat_us = (uv_hrtime() - t0) / 1000;
    c->check_us = (t2 - t1) / 1000;
}

/* ---------------------------------------------------------------- set-up */

static int load_secret(struct tt_cluster *c, char err[TT_ERRLEN])
{
    uint8_t raw[TT_CLUSTER_SECRET_LEN / 2];
    char mine[TT_CLUSTER_SECRET_LEN + 1];
    if (tt_random_bytes(raw, sizeof(raw)) != 0) {
        snprintf(err, TT_ERRLEN, "cannot create the cluster secret: no random bytes");
        return -1;
    }
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(mine + 2 * i, 3, "%02x", raw[i]);
    redisReply *rep = tt_redisconn_cmd(&c->rc, "SET " P "secret %s NX", mine);
    if (rep)
        freeReplyObject(rep);
    rep = tt_redisconn_cmd(&c->rc, "GET " P "secret");
    if (!rep || rep->type != REDIS_REPLY_STRING || rep->len != TT_CLUSTER_SECRET_LEN) {
        snprintf(err, TT_ERRLEN, "cannot read the cluster secret from Redis at %s:%u",
                 c->rc.url.host, (unsigned)c->rc.url.port);
        if (rep)
            freeReplyObject(rep);
        return -1;
    }
    snprintf(c->secret, sizeof(c->secret), "%s", rep->str);
    freeReplyObject(rep);
    return 0;
}

int tt_cluster_init(struct tt_relay *r, char err[TT_ERRLEN])
{
    struct tt_cluster *c = calloc(1, sizeof(*c));
    size_t n = (size_t)(r->cfg.tcp_high - r->cfg.tcp_low) + 1;
    if (!c || !(c->ports = calloc(n, sizeof(*c->ports)))) {
        free(c);
        snprintf(err, TT_ERRLEN, "out of memory");
        return -1;
    }
    r->cluster = c;
    c->r = r;
    tt_strmap_init(&c->labels);
    if (tt_redisconn_open(&c->rc, &r->cfg.redis, err) != 0 || load_secret(c, err) != 0)
        return -1;
    r->reg = tt_registry_redis_new(&c->rc, r->cfg.node_id);
    if (!r->reg) {
        snprintf(err, TT_ERRLEN, "out of memory");
        return -1;
    }
    return 0;
}

/* True (with err) when a live node with another cluster address has our --node-id: two nodes
 * with one id would take each other's devices for their own. A record with our own address is
 * this node's previous run (restarted within the record's expiry). */
static bool node_id_taken(struct tt_cluster *c, char err[TT_ERRLEN])
{
    const struct tt_config *cfg = &c->r->cfg;
    redisReply *rep = tt_redisconn_cmd(&c->rc, "HGET " P "node:%s addr", cfg->node_id);
    char addr[TT_HOSTLEN + 16];
    bool v6 = strchr(cfg->cluster_addr.host, ':') != NULL;
    snprintf(addr, sizeof(addr), "%s%s%s:%u", v6 ? "[" : "", cfg->cluster_addr.host, v6 ? "]" : "",
             (unsigned)cfg->cluster_addr.port);
    bool taken = rep && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, addr) != 0;
    if (taken)
        snprintf(err, TT_ERRLEN, "--node-id %s is in use by a live node at %.100s", cfg->node_id,
                 rep->str);
    if (rep)
        freeReplyObject(rep);
    return taken;
}

int tt_cluster_start(struct tt_relay *r, char err[TT_ERRLEN])
{
    struct tt_cluster *c = r->cluster;
    int64_t now = tt_relay_now_ms(), prev = 0;
    if (node_id_taken(c, err))
        return -1;
    /* This node's devices left online by a run that died count as offline since its last
     * heartbeat. */
    int rc = tt_registry_heartbeat(r->reg, now, &prev);
    if (!rc)
        rc = tt_registry_mark_offline(r->reg, prev ? prev : now);
    if (rc) {
        snprintf(err, TT_ERRLEN, "cannot update the registry in Redis: %s", tether_strerror(rc));
        return -1;
    }
    uint8_t hash[32];
    if (!r->cfg.token[0] && !r->cfg.tokens_file[0] &&
        tt_registry_cred_get(r->reg, TT_REG_FLEET_CRED, hash) == 0) {
        memcpy(c->fleet_hash, hash, 32);
        c->fleet_generated = true;
    }
    beat(c, now);
    sync_ports(c);
    if ((rc = uv_timer_init(r->loop, &c->timer)) != 0) {
        snprintf(err, TT_ERRLEN, "cannot start timers: %s", uv_strerror(rc));
        return -1;
    }
    c->timer.data = c;
    c->timer_on = true;
    uv_timer_start(&c->timer, on_timer, TT_CLUSTER_BEAT_MS, TT_CLUSTER_BEAT_MS);
    uv_unref((uv_handle_t *)&c->timer);
    if (r->cfg.ntls_listen > 0 && (rc = tt_cluster_tickets_start(r->loop, &c->rc)) != 0) {
        snprintf(err, TT_ERRLEN, "cannot start timers: %s", uv_strerror(rc));
        return -1;
    }
    TT_LOG(TT_LOG_INFO, "cluster node=%s advertise=%s redis=%s:%u nodes=%zu", r->cfg.node_id,
           r->cfg.advertise, c->rc.url.host, (unsigned)c->rc.url.port, c->nnodes + 1);
    return 0;
}

const char *tt_cluster_node_at(const struct tt_cluster *c, const char *host, uint16_t port)
{
    for (size_t i = 0; i < c->nnodes; i++)
        if (c->nodes[i].port == port && strcmp(c->nodes[i].host, host) == 0)
            return c->nodes[i].id;
    return NULL;
}

void tt_cluster_set_fleet_hash(struct tt_cluster *c, const uint8_t hash[32])
{
    memcpy(c->fleet_hash, hash, 32);
    c->fleet_generated = true;
}

void tt_cluster_stop(struct tt_relay *r)
{
    struct tt_cluster *c = r->cluster;
    if (!c)
        return;
    if (c->timer_on)
        uv_close((uv_handle_t *)&c->timer, NULL);
    c->timer_on = false;
    tt_cluster_tickets_stop();
    size_t n = (size_t)(r->cfg.tcp_high - r->cfg.tcp_low) + 1;
    for (size_t i = 0; i < n; i++)
        c->ports[i].l = NULL; /* closed with the pool (tt_tcpports_reset) */
    redisReply *rep = tt_redisconn_cmd(&c->rc, "DEL " P "node:%s", r->cfg.node_id);
    if (rep)
        freeReplyObject(rep);
    TT_LOG(TT_LOG_INFO,
           "cluster redis calls=%llu avg_us=%llu max_us=%llu failures=%llu "
           "redirects=%llu forwarded_http=%llu forwarded_tcp=%llu",
           (unsigned long long)c->rc.calls,
           (unsigned long long)(c->rc.calls ? c->rc.total_us / c->rc.calls : 0),
           (unsigned long long)c->rc.max_us, (unsigned long long)c->rc.failures,
           (unsigned long long)c->redirects, (unsigned long long)c->forwarded_http,
           (unsigned long long)c->forwarded_tcp);
}

static int free_label(const char *key, void *val, void *ud)
{
    (void)key;
    (void)ud;
    free(val);
    return 0;
}

void tt_cluster_free(struct tt_relay *r)
{
    struct tt_cluster *c = r->cluster;
    if (!c)
        return;
    tt_redisconn_close(&c->rc);
    tt_strmap_foreach(&c->labels, free_label, NULL);
    tt_strmap_reset(&c->labels);
    free(c->nodes);
    free(c->ports);
    free(c);
    r->cluster = NULL;
}

/* ---------------------------------------------------------------- requests */

bool tt_cluster_trusted(const struct tt_cluster *c, const struct tt_headparse *hp)
{
    const uint8_t *v;
    size_t n;
    if (tt_headparse_find(hp, TT_CLUSTER_HDR_SECRET, &v, &n) != 1)
        return false;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return tt_consttime_equal(v, n, c->secret, strlen(c->secret));
}

/* Remembers (or forgets, node NULL) the node holding label, for when Redis is away. */
static void cache_label(struct tt_cluster *c, const char *label, const char *node)
{
    char *old = tt_strmap_get(&c->labels, label);
    if (old && node && strcmp(old, node) == 0)
        return;
    if (old) {
        tt_strmap_del(&c->labels, label);
        free(old);
    }
    if (!node)
        return;
    if (tt_strmap_count(&c->labels) >= LABEL_CACHE_MAX) {
        /* churn (expired labels are only forgotten when asked for): start over */
        tt_strmap_foreach(&c->labels, free_label, NULL);
        tt_strmap_reset(&c->labels);
        tt_strmap_init(&c->labels);
    }
    char *v = strdup(node);
    if (v && tt_strmap_put(&c->labels, label, v) != 0)
        free(v);
}

enum tt_cluster_where tt_cluster_locate_label(struct tt_cluster *c, const char *label,
                                              int64_t *since, char host[TT_HOSTLEN], uint16_t *port,
                                              char *name)
{
    struct tt_reg_device rd;
    char node[TT_NODE_ID_MAX + 1];
    int rc = tt_registry_find_label(c->r->reg, label, &rd);
    if (name)
        snprintf(name, TT_MAX_NAME + 1, "%s", rc == 0 ? rd.name : "");
    if (rc == TETHER_ERR_NOT_FOUND) {
        cache_label(c, label, NULL);
        return TT_CLUSTER_UNKNOWN;
    }
    if (rc) {
        const char *cached = tt_strmap_get(&c->labels, label);
        if (!cached)
            return TT_CLUSTER_UNKNOWN;
        snprintf(node, sizeof(node), "%s", cached);
    } else {
        if (!rd.node[0]) {
            cache_label(c, label, NULL);
            if (tt_relay_now_ms() - rd.offline_since >= (int64_t)c->r->cfg.grace_ms)
                return TT_CLUSTER_UNKNOWN;
            *since = rd.offline_since;
            return TT_CLUSTER_OFFLINE;
        }
        snprintf(node, sizeof(node), "%s", rd.node);
        cache_label(c, label, node);
    }
    const struct tt_cluster_node *nd = find_node(c, node);
    if (!nd)
        return TT_CLUSTER_BUSY; /* this node (a session just ending) or a dead one */
    snprintf(host, TT_HOSTLEN, "%s", nd->host);
    *port = nd->port;
    return TT_CLUSTER_REMOTE;
}

static bool internal_header(const uint8_t *base, const struct tt_head_hdr *h)
{
    static const char *const names[] = {TT_CLUSTER_HDR_SECRET, TT_CLUSTER_HDR_CLIENT,
                                        TT_CLUSTER_HDR_PROTO, TT_CLUSTER_HDR_CLIENT_PORT};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (h->flen == strlen(names[i]) &&
            strncasecmp((const char *)base + h->foff, names[i], h->flen) == 0)
            return true;
    return false;
}

/* A bounded output buffer: puts past cap are dropped and remembered. */
struct obuf {
    uint8_t *p;
    size_t n, cap;
    bool full;
};

static void put(struct obuf *o, const void *data, size_t len)
{
    if (o->full || len > o->cap - o->n) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->n, data, len);
    o->n += len;
}

void tt_cluster_forward_http(struct tt_cluster *c, struct tt_headconn *hc, const char *host,
                             uint16_t port, const struct tt_peerlink_audit *audit)
{
    const struct tt_headparse *hp = &hc->hp;
    size_t rest = hc->len - hc->headlen;
    /* each header line may grow by its ": " and CRLF (a bare "name:value\n" in the original),
     * the request line by its CRLF; then our three headers */
    struct obuf o = {NULL, 0, hc->len + 4 * ((size_t)hp->nhdr + 1) + TT_CLUSTER_SECRET_LEN + 256,
                     false};
    o.p = hp->line_len ? malloc(o.cap) : NULL;
    if (!o.p) {
        tt_headconn_free(hc);
        return;
    }
    put(&o, hc->data + hp->line_off, hp->line_len);
    put(&o, "\r\n", 2);
    for (uint32_t i = 0; i < hp->nhdr; i++) {
        const struct tt_head_hdr *h = &hp->hdr[i];
        if (internal_header(hc->data, h))
            continue;
        put(&o, hc->data + h->foff, h->flen);
        put(&o, ": ", 2);
        put(&o, hc->data + h->voff, h->vlen);
        put(&o, "\r\n", 2);
    }
    char extra[TT_CLUSTER_SECRET_LEN + 250];
    int en = snprintf(extra, sizeof(extra), "%s: %s\r\n%s: %s\r\n%s: %u\r\n%s: %s\r\n\r\n",
                      TT_CLUSTER_HDR_SECRET, c->secret, TT_CLUSTER_HDR_CLIENT, hc->peer_ip,
                      TT_CLUSTER_HDR_CLIENT_PORT, (unsigned)hc->peer_port, TT_CLUSTER_HDR_PROTO,
                      hc->conn->tls ? "https" : "http");
    put(&o, extra, en > 0 && (size_t)en < sizeof(extra) ? (size_t)en : sizeof(extra));
    put(&o, hc->data + hc->headlen, rest);
    if (o.full) { /* cannot happen: cap covers the worst case */
        free(o.p);
        tt_headconn_free(hc);
        return;
    }
    c->forwarded_http++;
    TT_LOG(TT_LOG_DEBUG, "http request forwarded peer=%s:%u to=%s:%u", hc->peer_ip,
           (unsigned)hc->peer_port, host, (unsigned)port);
    struct tt_conn *conn = tt_headconn_take(hc);
    tt_headconn_free(hc);
    tt_peerlink_start(c->r->loop, conn, host, port, o.p, o.n, true, audit);
}

/* The least-loaded live node that takes devices (not draining), or NULL. */
static struct tt_cluster_node *least_loaded(struct tt_cluster *c)
{
    struct tt_cluster_node *best = NULL;
    for (size_t i = 0; i < c->nnodes; i++) {
        struct tt_cluster_node *nd = &c->nodes[i];
        if (nd->draining)
            continue;
        if (!best || nd->devices < best->devices ||
            (nd->devices == best->devices && strcmp(nd->id, best->id) < 0))
            best = nd;
    }
    return best;
}

bool tt_cluster_can_take(struct tt_cluster *c)
{
    return least_loaded(c) != NULL && tt_redisconn_up(&c->rc);
}

int tt_cluster_redirect(struct tt_cluster *c, const char *target, size_t targetlen, bool away,
                        char *loc, size_t loclen)
{
    if (memmem(target, targetlen, TT_CLUSTER_REDIRECTED, strlen(TT_CLUSTER_REDIRECTED))) {
        if (away)
            return 0;
        c->accepted++;
        return 0;
    }
    int64_t mine = c->online + c->accepted; /* as of the last beat, plus arrivals since */
    struct tt_cluster_node *best = least_loaded(c);
    if (!best || (!away && best->devices >= mine)) {
        if (!away)
            c->accepted++;
        return 0;
    }
    /* the advertise URL's path if it has one, else the request's */
    static const char *const schemes[] = {"ws", "wss", NULL};
    struct tt_url u;
    char e[TT_ERRLEN];
    if (tt_parse_url(best->advertise, schemes, &u, e) != 0)
        return 0;
    const char *adv = best->advertise;
    const char *after_scheme = strstr(adv, "://");
    bool has_path = after_scheme && strchr(after_scheme + 3, '/') != NULL;
    int n;
    if (has_path) {
        n = snprintf(loc, loclen, "%s?%s", adv, TT_CLUSTER_REDIRECTED);
    } else {
        char path[1024];
        size_t tl = targetlen < sizeof(path) - 1 ? targetlen : sizeof(path) - 1;
        memcpy(path, target, tl);
        path[tl] = '\0';
        if (path[0] != '/')
            snprintf(path, sizeof(path), "/");
        n = snprintf(loc, loclen, "%s%s%s%s", adv, path, strchr(path, '?') ? "&" : "?",
                     TT_CLUSTER_REDIRECTED);
    }
    if (n < 0 || (size_t)n >= loclen)
        return 0;
    best->devices++; /* until the next beat tells: spreads a burst of arrivals */
    c->redirects++;
    TT_LOG(TT_LOG_DEBUG, "device redirected to node=%s devices=%lld mine=%lld", TT_LOG_V(best->id),
           (long long)best->devices, (long long)mine);
    return 1;
}

void tt_cluster_on_tunnel(struct tt_cluster *c, struct tt_headconn *hc)
{
    const struct tt_headparse *hp = &hc->hp;
    char target[64];
    size_t tl = hp->url_len < sizeof(target) - 1 ? hp->url_len : sizeof(target) - 1;
    memcpy(target, hc->data + hp->url_off, tl);
    target[tl] = '\0';
    unsigned port = 0;
    int svc;
    struct tt_device *d = NULL;
    if (sscanf(target, "tether-port:%5u", &port) == 1 && port > 0 && port < 65536) {
        struct tt_cluster_port *e = port_entry(c, (uint16_t)port);
        if (e)
            d = local_port(c, e->name, (uint16_t)port, &svc);
    }
    if (!d) {
        TT_LOG(TT_LOG_DEBUG, "cluster tunnel refused port=%u: no such device here", port);
        tt_headconn_free(hc);
        return;
    }
    /* the TCP client's address, as the forwarding node saw it: its stream counts under it */
    char client[TT_MAX_ADDR];
    const uint8_t *v;
    size_t n;
    client[0] = '\0';
    if (tt_headparse_find(hp, TT_CLUSTER_HDR_CLIENT, &v, &n) == 1 && n < sizeof(client)) {
        memcpy(client, v, n);
        client[n] = '\0';
    }
    struct tt_conn *conn = tt_headconn_take(hc);
    tt_forward_tcp_pre(d, svc, conn, hc->data + hc->headlen, hc->len - hc->headlen, client);
    tt_headconn_free(hc);
}
