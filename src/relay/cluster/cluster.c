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
#include "relay/device/forward.h"
#include "relay/cluster/peerlink.h"
#include "relay/cluster/tickets.h"
#include "relay/core.h"
#include "relay/http/respond.h"
#include "relay/store/redisasync.h"
#include "relay/access/grants.h"
#include "relay/lib/addrkey.h"

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
 * their last heartbeat (when that heartbeat is a ttl older than now, the sender's time of the
 * beat: a record that expired while Redis itself stalled, its node beating all along, is not a
 * death; the node writes it again with its next beat; such a node is returned with its id
 * alone), and returns {secret, how many devices Redis
 * says this node holds, then id, advertise, addr, devices, draining of every other live node} (a
 * node of an older version publishes no draining field: "0"). */
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
    "    if tonumber(ARGV[6])-hb>=tonumber(ARGV[7]) then\n"
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
    "    elseif id~=me then\n"
    "      out[#out+1]=id out[#out+1]='' out[#out+1]='' out[#out+1]='' out[#out+1]=''\n"
    "    end\n"
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

/* ARGV: prefix, port. Returns {name, node, service, the node's cluster address ("" when its
 * record is gone)} of the device holding port, or nil. */
static const char port_owner_lua[] =
    "local n=redis.call('HGET',ARGV[1]..'ports',ARGV[2])\n"
    "if not n then return false end\n"
    "local d=redis.call('HGETALL',ARGV[1]..'dev:'..n)\n"
    "local node,svc='',''\n"
    "for i=1,#d,2 do\n"
    "  if d[i]=='node' then node=d[i+1]\n"
    "  elseif string.sub(d[i],1,2)=='p:' and d[i+1]==ARGV[2] then svc=string.sub(d[i],3) end\n"
    "end\n"
    "local addr=''\n"
    "if node~='' then addr=redis.call('HGET',ARGV[1]..'node:'..node,'addr') or '' end\n"
    "return {n,node,svc,addr}\n";

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

/* ---------------------------------------------------------------- asynchronous calls */

/* The reply to one command sent with cl_send (NULL: no answer; an error reply counts as
 * none). rep is valid during the call only. */
typedef void (*cl_cb)(redisReply *rep, void *ud);

struct cl_call {
    cl_cb cb;
    void *ud;
};

static void cl_reply(redisReply *rep, void *ud)
{
    struct cl_call call = *(struct cl_call *)ud;
    free(ud);
    call.cb(rep && rep->type != REDIS_REPLY_ERROR ? rep : NULL, call.ud);
}

/* Sends one command on the cluster's asynchronous connection (store/redisasync.h). Returns 0:
 * cb is called once, later (never from within this call); or an error (Redis down, the
 * connection's cap reached, out of memory): cb is not called. */
static int cl_send(struct tt_cluster *c, int argc, const char **argv, const size_t *lens, cl_cb cb,
                   void *ud)
{
    if (!c->ra)
        return TETHER_ERR_IO; /* shutting down */
    struct cl_call *call = malloc(sizeof(*call));
    if (!call)
        return TETHER_ERR_NOMEM;
    call->cb = cb;
    call->ud = ud;
    int rc = tt_redisasync_argv(c->ra, argc, argv, lens, cl_reply, call);
    if (rc)
        free(call);
    return rc;
}

/* Shutdown: the node record's DEL answered (or not in time): the connection goes. */
static void on_close_timer(uv_timer_t *t)
{
    struct tt_cluster *c = t->data;
    struct tt_redisasync *ra = c->ra;
    struct tt_redisasync_stats st;
    tt_redisasync_stats(ra, &st);
    c->ra_master_changes = st.master_changes;
    c->ra = NULL;
    tt_grants_use_redis_async(c->r->access.grants, NULL);
    tt_sessions_use_redis_async(&c->r->sessions, NULL);
    tt_redisasync_free(ra); /* replies still due get NULL */
    uv_close((uv_handle_t *)t, NULL);
}

static void on_node_deleted(redisReply *rep, void *ud)
{
    struct tt_cluster *c = ud;
    (void)rep;
    if (c->ra) /* the connection may not be freed from its own callback: next iteration */
        uv_timer_start(&c->close_timer, on_close_timer, 0, 0);
}

/* EVAL script with argv[0..argc) (the beat's fleet hash, binary, at index 9). */
static int eval_async(struct tt_cluster *c, const char *script, int argc, const char **argv,
                      cl_cb cb, void *ud)
{
    const char *a[3 + 16];
    size_t l[3 + 16];
    if (argc > 16)
        return TETHER_ERR_INVAL;
    a[0] = "EVAL";
    a[1] = script;
    a[2] = "0";
    for (int i = 0; i < argc; i++)
        a[3 + i] = argv[i];
    for (int i = 0; i < argc + 3; i++)
        l[i] = i == 3 + 9 && argc > 9 ? 32 : strlen(a[i]);
    return cl_send(c, argc + 3, a, l, cb, ud);
}

/* The beat's commands are counted while in flight: a beat does not start before the previous
 * one's replies are all in (Redis slow or stopped: beats are skipped, never queued up). */
static void beat_end(struct tt_cluster *c)
{
    if (c->beat_inflight > 0 && --c->beat_inflight == 0)
        c->beat_us = (uv_hrtime() - c->beat_started) / 1000;
}

/* Sends one command of the beat: 0, or -1 when it could not be sent (cb not called). */
static int beat_eval(struct tt_cluster *c, const char *script, int argc, const char **argv,
                     cl_cb cb, void *ud)
{
    c->beat_inflight++;
    if (eval_async(c, script, argc, argv, cb, ud) == 0)
        return 0;
    c->beat_inflight--;
    return -1;
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
        if (!str_at(rep, 3 + 5 * i)[0]) {
            /* its record expired while Redis stalled, its heartbeat is recent: still alive, as
             * this node knew it */
            const struct tt_cluster_node *old = NULL;
            for (size_t j = 0; j < c->nnodes && !old; j++)
                if (strcmp(c->nodes[j].id, nd->id) == 0)
                    old = &c->nodes[j];
            if (old) {
                *nd = *old;
                k++;
            }
            continue;
        }
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

/* The live node id, from the last beat, or NULL (this node, a dead one, or one that joined
 * since: the next beat knows it). */
static const struct tt_cluster_node *find_node(struct tt_cluster *c, const char *id)
{
    for (size_t i = 0; i < c->nnodes; i++)
        if (strcmp(c->nodes[i].id, id) == 0)
            return &c->nodes[i];
    return NULL;
}

static void on_beat(redisReply *rep, void *ud)
{
    struct tt_cluster *c = ud;
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
    c->held_online = c->beat_online;
    c->held_closed = c->beat_closed;
    /* Redis answers again: the synchronous connection (registry, grants made and revoked) may
     * try at once instead of waiting out its back-off, which nothing else shortens now that the
     * beat does not use it */
    if (rep && !c->rc.c)
        c->rc.retry_at = 0;
    beat_end(c);
}

/* The beat script's arguments. */
struct beat_args {
    char addr[TT_HOSTLEN + 16], devices[24], nowb[24], ttl[24];
    const char *argv[10];
    int argc;
};

static void beat_args(struct tt_cluster *c, int64_t now, struct beat_args *a)
{
    struct tt_relay *r = c->r;
    bool v6 = strchr(r->cfg.cluster_addr.host, ':') != NULL;
    snprintf(a->addr, sizeof(a->addr), "%s%s%s:%u", v6 ? "[" : "", r->cfg.cluster_addr.host,
             v6 ? "]" : "", (unsigned)r->cfg.cluster_addr.port);
    c->online = (int64_t)tt_device_online_count(r);
    c->accepted = 0;
    snprintf(a->devices, sizeof(a->devices), "%lld", (long long)c->online);
    snprintf(a->nowb, sizeof(a->nowb), "%lld", (long long)now);
    snprintf(a->ttl, sizeof(a->ttl), "%d", TT_CLUSTER_NODE_TTL_MS);
    const char *v[10] = {P,
                         r->cfg.node_id,
                         r->cfg.advertise,
                         a->addr,
                         a->devices,
                         a->nowb,
                         a->ttl,
                         c->secret,
                         tt_drain_on(r) ? "1" : "0",
                         (const char *)c->fleet_hash};
    memcpy(a->argv, v, sizeof(v));
    a->argc = c->fleet_generated ? 10 : 9;
    /* what Redis counts of our devices is compared with what we held when it counted */
    c->beat_online = c->online;
    c->beat_closed = c->closed_pushed;
}

static void beat(struct tt_cluster *c, int64_t now)
{
    struct beat_args a;
    beat_args(c, now, &a);
    if (beat_eval(c, beat_lua, a.argc, a.argv, on_beat, c) != 0)
        c->redis_held = -1;
}

/* Start-up only (before the loop runs): the beat, waited for. */
static void beat_now(struct tt_cluster *c, int64_t now)
{
    struct beat_args a;
    beat_args(c, now, &a);
    redisReply *rep = eval(c, beat_lua, a.argc, a.argv);
    c->beat_inflight++;
    on_beat(rep && rep->type != REDIS_REPLY_ERROR ? rep : NULL, c);
    if (rep)
        freeReplyObject(rep);
}

/* ---------------------------------------------------------------- takeovers */

/* Longest live field (cluster.h): four 20-digit numbers, an address and the spaces. */
#define LIVE_MAX (4 * 21 + 64)

/* One batch of the takeover check on its way to Redis: the names, and what was published for
 * each (the reply tells which records still name this node). */
struct batch {
    struct tt_cluster *c;
    int n;
    char names[CHECK_BATCH][TT_MAX_NAME + 1];
    bool live[CHECK_BATCH]; /* its live field was sent */
    int64_t since[CHECK_BATCH];
    uint64_t in[CHECK_BATCH], out[CHECK_BATCH], streams[CHECK_BATCH];
};

/* The command of a batch being built (copied by hiredis when sent). */
struct batch_cmd {
    const char *argv[5 + 3 * CHECK_BATCH]; /* EVAL script 0 prefix me, then 3 per name */
    size_t lens[5 + 3 * CHECK_BATCH];
    char live[CHECK_BATCH][LIVE_MAX];
    char *svc[CHECK_BATCH]; /* malloc'd or NULL */
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
static void batch_add(struct batch *b, struct batch_cmd *cmd, struct tt_device *d)
{
    int i = b->n++;
    snprintf(b->names[i], TT_MAX_NAME + 1, "%s", d->name);
    b->since[i] = d->connected_since;
    counters(d, &b->in[i], &b->out[i], &b->streams[i]);
    cmd->live[i][0] = '\0';
    cmd->svc[i] = NULL;
    bool fresh = d->pub_since != d->connected_since;
    if (fresh || b->in[i] != d->pub_in || b->out[i] != d->pub_out ||
        b->streams[i] != d->pub_streams)
        tt_cluster_live_format(b->since[i], b->in[i], b->out[i], b->streams[i], d->remote_addr,
                               cmd->live[i], LIVE_MAX);
    b->live[i] = cmd->live[i][0] != '\0';
    if (fresh)
        cmd->svc[i] = tt_cluster_services_dump(d);
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

static bool held_online(const struct tt_device *d)
{
    return d->conn && d->offline_since == 0 && d->conn->registered;
}

/* A device written again by the check, Redis having lost it. */
struct resave {
    struct tt_cluster *c;
    int64_t since; /* its session then */
    char name[TT_MAX_NAME + 1];
};

static void resaved(int rc, void *ud)
{
    struct resave *rs = ud;
    struct tt_cluster *c = rs->c;
    struct tt_device *d = tt_strmap_get(&c->r->by_name, rs->name);
    if (rc == TETHER_ERR_INVAL && d && held_online(d) && d->connected_since == rs->since) {
        /* its label or a port went to another name meanwhile (DESIGN.md): the record Redis has
         * wins; the device registers again, as if new */
        TT_LOG(TT_LOG_WARN,
               "device's label or port held by another device in redis; closing its session "
               "device=%s label=%s",
               TT_LOG_V(rs->name), d->label);
        c->repair_conflict++;
        tt_device_evict(c->r, rs->name);
    } else if (rc && rc != TETHER_ERR_INVAL) {
        TT_LOG(TT_LOG_ERROR, "registry update failed device=%s err=%s", TT_LOG_V(rs->name),
               tether_err_name(rc));
    }
    free(rs);
}

/* The reply to a batch: each device still in the session it was in when the batch went is
 * acted on (one that reconnected meanwhile is the next check's). */
static void on_batch(redisReply *rep, void *ud)
{
    struct batch *b = ud;
    struct tt_cluster *c = b->c;
    for (int i = 0; is_array(rep) && (int)rep->elements == b->n && i < b->n; i++) {
        const char *owner = str_at(rep, (size_t)i);
        const char *name = b->names[i];
        struct tt_device *d = tt_strmap_get(&c->r->by_name, name);
        if (!d || !held_online(d) || d->connected_since != b->since[i])
            continue;
        if (!owner[0]) {
            /* Redis lost it (restarted, or a failover lost the write) or took us for dead:
             * it is ours, say so again (in the background: resaved() acts on the answer) */
            struct resave *rs = malloc(sizeof(*rs));
            if (!rs)
                continue;
            rs->c = c;
            rs->since = d->connected_since;
            snprintf(rs->name, sizeof(rs->name), "%s", name);
            if (tt_device_save_async(d, resaved, rs) != 0)
                free(rs);
            d->pub_since = 0; /* and publish its live fields again */
        } else if (apply_owner(c, name, owner, &c->closed_scan)) {
            if (b->live[i])
                c->published++;
            d->pub_since = b->since[i];
            d->pub_in = b->in[i];
            d->pub_out = b->out[i];
            d->pub_streams = b->streams[i];
        }
    }
    free(b);
    beat_end(c);
}

/* Sends the batch (b is then the reply's, or freed). */
static void batch_send(struct tt_cluster *c, struct batch *b, struct batch_cmd *cmd)
{
    const char **argv = cmd->argv;
    size_t *lens = cmd->lens;
    int argc = 0;
    argv[argc++] = "EVAL";
    argv[argc++] = owners_lua;
    argv[argc++] = "0";
    argv[argc++] = P;
    argv[argc++] = c->r->cfg.node_id;
    for (int i = 0; i < b->n; i++) {
        argv[argc++] = b->names[i];
        argv[argc++] = cmd->live[i];
        argv[argc++] = cmd->svc[i] ? cmd->svc[i] : "";
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    int n = b->n;
    c->beat_inflight++;
    if (cl_send(c, argc, argv, lens, on_batch, b) != 0) {
        c->beat_inflight--;
        free(b);
    }
    for (int i = 0; i < n; i++) {
        free(cmd->svc[i]);
        cmd->svc[i] = NULL;
    }
}

/* Names collected from a walk of the device map (a device may go away while they are acted
 * on, so that they are looked up again one by one). */
struct online_names {
    char (*v)[TT_MAX_NAME + 1];
    size_t n, cap;
    size_t want;       /* the walk stops (at the end of a bucket) once it has this many */
    bool changed_only; /* only those whose live fields changed */
};

static int collect_one(const char *key, void *val, void *ud)
{
    struct tt_device *d = val;
    struct online_names *on = ud;
    (void)key;
    if (held_online(d) && on->n < on->cap && (!on->changed_only || live_changed(d)))
        snprintf(on->v[on->n++], TT_MAX_NAME + 1, "%s", d->name);
    return on->n >= on->want;
}

/* Checks (and publishes, when changed) the devices named in on, CHECK_BATCH per Redis call,
 * the calls pipelined. */
static void check_names(struct tt_cluster *c, const struct online_names *on)
{
    struct batch_cmd *cmd = on->n ? calloc(1, sizeof(*cmd)) : NULL;
    struct batch *b = NULL;
    for (size_t i = 0; cmd && i < on->n; i++) {
        if (!b && !(b = calloc(1, sizeof(*b))))
            break;
        b->c = c;
        struct tt_device *d = tt_strmap_get(&c->r->by_name, on->v[i]);
        if (d && held_online(d))
            batch_add(b, cmd, d);
        if (b->n == CHECK_BATCH || (i + 1 == on->n && b->n > 0)) {
            batch_send(c, b, cmd);
            b = NULL;
        }
    }
    free(b);
    free(cmd);
}

static void on_kicks(redisReply *rep, void *ud)
{
    struct tt_cluster *c = ud;
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
    beat_end(c);
}

/* Closes the sessions of the devices named in this node's kick list: each was taken over by
 * another node or deleted by the operator while held here (the script that changed its record
 * pushed the name), after checking that its record still says so (it may have come back). */
static void drain_kicks(struct tt_cluster *c)
{
    char max[16];
    snprintf(max, sizeof(max), "%d", KICK_MAX);
    const char *argv[3] = {P, c->r->cfg.node_id, max};
    beat_eval(c, kicks_lua, 3, argv, on_kicks, c);
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

static void repair(struct tt_cluster *c)
{
    uint64_t changes = tt_cluster_master_changes(c);
    if (changes != c->master_seen) {
        c->master_seen = changes;
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

/* The device check of a beat, bounded whatever the number of devices: closes the local
 * sessions of devices that another node now holds (the device reconnected there: ours is a
 * half-open leftover) or that the operator deleted on another node, as told by this node's kick
 * list; then, as a safety net for anything the list missed, checks the next SCAN_SLICE devices
 * of the map (a full round takes devices / SCAN_SLICE beats), recording again the ones Redis
 * forgot; then publishes the live fields of up to PUBLISH_MAX devices that changed, among the
 * next PUBLISH_WALK devices (looked at in memory). When Redis listed, at the previous beat,
 * fewer devices held by this node than it held then (Redis restarted empty, or took this node
 * for dead after a stall), the check walks every device at once instead of a slice. Every call
 * is sent at once (pipelined); the replies are acted on as they come. */
static void check_takeovers(struct tt_cluster *c)
{
    drain_kicks(c);
    size_t all = tt_strmap_count(&c->r->by_name);
    if (c->redis_held >= 0 &&
        c->redis_held < c->held_online - (int64_t)(c->closed_pushed - c->held_closed)) {
        /* Redis holds fewer of our devices than we do (it restarted, or took us for dead):
         * check them all now, so that their records are back within a second, as before */
        TT_LOG(TT_LOG_DEBUG, "cluster: redis lists %lld of our %lld devices, checking all",
               (long long)c->redis_held, (long long)c->held_online);
        c->full_checks++;
        check_slice(c, &c->scan_pos, all, all, false);
    } else {
        check_slice(c, &c->scan_pos, SCAN_SLICE, SCAN_SLICE, false);
    }
    check_slice(c, &c->pub_pos, PUBLISH_WALK, PUBLISH_MAX, true);
    repair(c);
}

/* ---------------------------------------------------------------- requests waiting on Redis */

/* A client held while Redis is asked where its device is: a browser's request or a tether
 * connect (a label or name lookup, tt_mode.locate) or a TCP client of a port this node does not
 * serve. At most TT_CLUSTER_WAIT_MAX wait at once (more: answered as Redis unreachable, or
 * 503); one not answered within TT_CLUSTER_WAIT_MS gets the timed-out answer (503, or a TCP
 * client closed). The record stays until its reply comes (or the connection drops it). */
struct cl_wait {
    struct tt_cluster *c;
    struct cl_wait *prev, *next;
    uint64_t started; /* uv_now */
    bool done;        /* answered, timed out or cancelled: the reply is only freed */
    void (*answer)(struct cl_wait *w, const redisReply *rep, bool timed_out);
    /* a lookup */
    tt_where_cb cb;
    void *ud;
    bool by_name;
    char key[TT_MAX_NAME + TT_MAX_LABEL + 2];
    /* a TCP client */
    struct tt_conn *client;
    uint16_t port;
    char name[TT_MAX_NAME + 1], node[TT_NODE_ID_MAX + 1], sname[TT_MAX_NAME + 1];
};

static struct cl_wait *wait_new(struct tt_cluster *c,
                                void (*answer)(struct cl_wait *, const redisReply *, bool))
{
    if (c->waiting >= TT_CLUSTER_WAIT_MAX) {
        c->wait_full++;
        return NULL;
    }
    struct cl_wait *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->c = c;
    w->answer = answer;
    w->started = uv_now(c->r->loop);
    w->prev = c->waits_tail;
    if (c->waits_tail)
        c->waits_tail->next = w;
    else
        c->waits = w;
    c->waits_tail = w;
    c->waiting++;
    c->waits_total++;
    if (c->waiting > c->waiting_peak)
        c->waiting_peak = c->waiting;
    return w;
}

static void wait_unlink(struct tt_cluster *c, struct cl_wait *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        c->waits = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        c->waits_tail = w->prev;
}

/* w's client gets its answer now (once). */
static void wait_answer(struct cl_wait *w, const redisReply *rep, bool timed_out)
{
    if (w->done)
        return;
    w->done = true;
    w->c->waiting--;
    w->answer(w, rep, timed_out);
}

static void on_wait_reply(redisReply *rep, void *ud)
{
    struct cl_wait *w = ud;
    struct tt_cluster *c = w->c;
    wait_answer(w, rep, false);
    wait_unlink(c, w);
    free(w);
}

/* Sends script for w: 0, or -1 (w freed, not answered: the caller answers). */
static int wait_send(struct cl_wait *w, const char *script, int argc, const char **argv)
{
    struct tt_cluster *c = w->c;
    if (eval_async(c, script, argc, argv, on_wait_reply, w) == 0)
        return 0;
    w->done = true;
    c->waiting--;
    wait_unlink(c, w);
    free(w);
    return -1;
}

/* Every TT_CLUSTER_WAIT_MS / 10: the clients waiting past TT_CLUSTER_WAIT_MS get their
 * timed-out answer (the oldest are first in the list). */
static void on_wait_timer(uv_timer_t *t)
{
    struct tt_cluster *c = t->data;
    uint64_t now = uv_now(c->r->loop);
    for (struct cl_wait *w = c->waits; w && w->started + TT_CLUSTER_WAIT_MS <= now; w = w->next) {
        if (w->done)
            continue;
        c->wait_timeouts++;
        wait_answer(w, NULL, true);
    }
}

/* Remembers (or forgets, node NULL) the node holding label, for when Redis is away. */
static void cache_label(struct tt_cluster *c, const char *label, const char *node);

/* ARGV: prefix, key, by_name ("1": key is a name, else a label). Returns {name, label, node,
 * off, the holder's cluster address ("" when its node record is gone)} or nil. */
static const char locate_lua[] =
    "local P,name=ARGV[1],ARGV[2]\n"
    "if ARGV[3]~='1' then\n"
    "  name=redis.call('HGET',P..'labels',ARGV[2])\n"
    "  if not name then return false end\n"
    "end\n"
    "local d=redis.call('HMGET',P..'dev:'..name,'label','node','off')\n"
    "if not d[1] or d[1]=='' then return false end\n"
    "local addr=''\n"
    "if d[2] and d[2]~='' then addr=redis.call('HGET',P..'node:'..d[2],'addr') or '' end\n"
    "return {name,d[1],d[2] or '',d[3] or '0',addr}\n";

/* Where the node holding the device is, from what Redis said (rep: locate_lua's reply) or,
 * with no reply (rep NULL), from the label cache and the last beat's nodes. */
static void locate_answer(struct cl_wait *w, const redisReply *rep, bool timed_out)
{
    struct tt_cluster *c = w->c;
    struct tt_where a;
    memset(&a, 0, sizeof(a));
    char node[TT_NODE_ID_MAX + 1] = "", e[TT_ERRLEN];
    if (!rep) {
        /* Redis away or late: the last holder this node knew of, if it is still alive; else
         * late: the timed-out answer */
        const char *cached = w->by_name ? NULL : tt_strmap_get(&c->labels, w->key);
        const struct tt_cluster_node *nd = cached ? find_node(c, cached) : NULL;
        a.kind = w->by_name ? TT_WHERE_BUSY : cached ? TT_WHERE_BUSY : TT_WHERE_UNKNOWN;
        if (nd) {
            a.kind = TT_WHERE_REMOTE;
            snprintf(a.host, sizeof(a.host), "%s", nd->host);
            a.port = nd->port;
        } else if (timed_out) {
            a.kind = TT_WHERE_BUSY;
        }
        w->cb(&a, timed_out && !nd, w->ud);
        return;
    }
    if (!is_array(rep) || rep->elements != 5 || strlen(str_at(rep, 0)) > TT_MAX_NAME ||
        strlen(str_at(rep, 1)) > TT_MAX_LABEL) {
        if (!w->by_name)
            cache_label(c, w->key, NULL);
        w->cb(&a, false, w->ud); /* unknown */
        return;
    }
    const char *label = str_at(rep, 1);
    snprintf(a.name, sizeof(a.name), "%s", str_at(rep, 0));
    snprintf(node, sizeof(node), "%s", str_at(rep, 2));
    if (!node[0]) {
        cache_label(c, label, NULL);
        a.since = strtoll(str_at(rep, 3), NULL, 10);
        a.kind = tt_relay_now_ms() - a.since >= (int64_t)c->r->cfg.grace_ms ? TT_WHERE_UNKNOWN
                                                                            : TT_WHERE_OFFLINE;
        if (a.kind == TT_WHERE_UNKNOWN)
            a.since = 0;
        w->cb(&a, false, w->ud);
        return;
    }
    cache_label(c, label, node);
    /* this node (a session just ending), or a dead node's record gone */
    a.kind = TT_WHERE_BUSY;
    if (strcmp(node, c->r->cfg.node_id) != 0 && str_at(rep, 4)[0] &&
        tt_parse_hostport(str_at(rep, 4), a.host, &a.port, false, e) == 0)
        a.kind = TT_WHERE_REMOTE;
    w->cb(&a, false, w->ud);
}

/* True while Redis is late: a beat or a waiting client has waited TT_CLUSTER_STALL_MS for it. */
static bool redis_late(struct tt_cluster *c)
{
    uint64_t now = uv_now(c->r->loop);
    if (c->beat_inflight && (uv_hrtime() - c->beat_started) / 1000000 > TT_CLUSTER_STALL_MS)
        return true;
    for (struct cl_wait *w = c->waits; w; w = w->next)
        if (!w->done)
            return w->started + TT_CLUSTER_STALL_MS < now;
    return false;
}

int tt_cluster_locate(struct tt_cluster *c, const char *key, bool by_name, tt_where_cb cb, void *ud)
{
    if (!by_name && redis_late(c) && tt_strmap_get(&c->labels, key)) {
        /* Redis is late: the holder this node knew serves at once (as with Redis away) */
        struct cl_wait now;
        memset(&now, 0, sizeof(now));
        now.c = c;
        now.cb = cb;
        now.ud = ud;
        snprintf(now.key, sizeof(now.key), "%s", key);
        c->late_answers++;
        locate_answer(&now, NULL, false);
        return 0;
    }
    struct cl_wait *w = wait_new(c, locate_answer);
    if (!w)
        return TETHER_ERR_CAPACITY;
    w->cb = cb;
    w->ud = ud;
    w->by_name = by_name;
    snprintf(w->key, sizeof(w->key), "%s", key);
    const char *argv[3] = {P, key, by_name ? "1" : "0"};
    /* w is copied first: wait_send frees it when Redis cannot be asked now */
    struct cl_wait copy = *w;
    if (wait_send(w, locate_lua, 3, argv) != 0)
        locate_answer(&copy, NULL, false); /* Redis away: from what this node knows */
    return 0;
}

void tt_cluster_cancel(struct tt_cluster *c, void *ud)
{
    for (struct cl_wait *w = c->waits; w; w = w->next)
        if (!w->done && w->cb && w->ud == ud) {
            w->done = true;
            c->waiting--;
        }
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

/* Acts on the cluster's port assignments (ports_lua's reply): listeners open for new ones and
 * close for ports no longer assigned. An entry this node claimed after the request went
 * (claim sequence past seq) is left alone: the reply predates the claim's registry write. */
static void apply_ports(struct tt_cluster *c, const redisReply *rep, uint64_t seq)
{
    struct tt_relay *r = c->r;
    if (c->closing || r->stopping)
        return; /* a reply that comes after tt_cluster_stop: the listeners are gone */
    if (!is_array(rep) || rep->elements % 3 != 0)
        return; /* keep what we have */
    size_t n = (size_t)(r->cfg.tcp_high - r->cfg.tcp_low) + 1;
    uint8_t *want = calloc(n, 1);
    for (size_t i = 0; want && i < rep->elements; i += 3) {
        long port = strtol(str_at(rep, i), NULL, 10);
        struct tt_cluster_port *e = port_entry(c, (uint16_t)(port > 0 && port < 65536 ? port : 0));
        if (!e)
            continue;
        want[e - c->ports] = 1;
        if (e->seq > seq)
            continue;
        if (strcmp(e->name, str_at(rep, i + 1)) != 0)
            e->service[0] = '\0';
        snprintf(e->name, sizeof(e->name), "%s", str_at(rep, i + 1));
        snprintf(e->node, sizeof(e->node), "%s", str_at(rep, i + 2));
        if (!e->l && open_port(c, e, (uint16_t)port) != 0)
            TT_LOG(TT_LOG_DEBUG, "cluster tcp port unavailable here port=%ld", port);
    }
    for (size_t i = 0; want && i < n; i++) {
        struct tt_cluster_port *e = &c->ports[i];
        if (!want[i] && e->l && e->seq <= seq) {
            tt_tcpport_close(e->l);
            e->l = NULL;
            e->name[0] = e->node[0] = e->service[0] = '\0';
        }
    }
    free(want);
}

static void on_ports(redisReply *rep, void *ud)
{
    struct tt_cluster *c = ud;
    apply_ports(c, rep, c->ports_sent_seq);
    beat_end(c);
}

/* The beat's read of the port assignments. */
static void sync_ports(struct tt_cluster *c)
{
    const char *argv[1] = {P};
    c->ports_sent_seq = c->port_seq;
    beat_eval(c, ports_lua, 1, argv, on_ports, c);
}

/* The same, waited for: start-up only (before the loop runs). */
static void sync_ports_now(struct tt_cluster *c)
{
    const char *argv[1] = {P};
    redisReply *rep = eval(c, ports_lua, 1, argv);
    apply_ports(c, rep && rep->type != REDIS_REPLY_ERROR ? rep : NULL, c->port_seq);
    if (rep)
        freeReplyObject(rep);
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

/* Passes TCP client of port to the node at host:port with an internal CONNECT. */
static void tcp_to_node(struct tt_cluster *c, struct tt_conn *client, uint16_t port,
                        const char *name, const char *node, const char *audit_svc, const char *host,
                        uint16_t hport)
{
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
    tt_peerlink_start(c->r->loop, client, host, hport, first, (size_t)n, false, &audit);
}

/* What Redis said of the port a TCP client came to (port_owner_lua's reply; NULL: no answer,
 * then the last snapshot): serve it here, pass it on, or close it. */
static void tcp_answer(struct cl_wait *w, const redisReply *rep, bool timed_out)
{
    struct tt_cluster *c = w->c;
    struct tt_conn *client = w->client;
    w->client = NULL;
    if (c->r->stopping) {
        tt_respond_drop(client);
        return;
    }
    if (timed_out)
        rep = NULL; /* late: the last snapshot decides (as with Redis away) */
    char name[TT_MAX_NAME + 1], node[TT_NODE_ID_MAX + 1], host[TT_HOSTLEN], e[TT_ERRLEN];
    char svcname[TT_MAX_NAME + 1] = ""; /* the port's service, for the audit line */
    uint16_t hport = 0;
    bool have_addr = false;
    snprintf(name, sizeof(name), "%s", w->name);
    snprintf(node, sizeof(node), "%s", w->node);
    if (is_array(rep) && rep->elements == 4) {
        snprintf(name, sizeof(name), "%s", str_at(rep, 0));
        snprintf(node, sizeof(node), "%s", str_at(rep, 1));
        snprintf(svcname, sizeof(svcname), "%s", str_at(rep, 2));
        have_addr = str_at(rep, 3)[0] && strcmp(node, c->r->cfg.node_id) != 0 &&
                    tt_parse_hostport(str_at(rep, 3), host, &hport, false, e) == 0;
    } else if (rep) {
        name[0] = node[0] = '\0'; /* nil: no device holds it */
    } else {
        const struct tt_cluster_node *nd = node[0] ? find_node(c, node) : NULL;
        if (nd) {
            snprintf(host, sizeof(host), "%s", nd->host);
            hport = nd->port;
            have_addr = true;
        }
    }
    int svc;
    struct tt_device *d = local_port(c, name, w->port, &svc);
    if (d) {
        tt_forward_tcp(d, svc, client);
        return;
    }
    const char *audit_svc = svcname[0]                                  ? svcname
                            : strcmp(name, w->name) == 0 && w->sname[0] ? w->sname
                                                                        : NULL;
    if (!node[0] || !have_addr) {
        if (name[0] && tt_audit_on(&c->r->audit)) {
            char peer[TT_MAX_ADDR];
            tt_conn_peer(client, peer, sizeof(peer));
            tt_forward_audit_refused(c->r, name, audit_svc, "tcp", NULL, peer, "offline");
        }
        tt_respond_drop(client); /* offline, unknown, or its node is gone */
        return;
    }
    tcp_to_node(c, client, w->port, name, node, audit_svc, host, hport);
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
    /* Not ours: ask Redis who holds it now (the last snapshot if Redis is away); the client
     * waits, unread, within the bounds of the waiting clients (TT_CLUSTER_WAIT_*). */
    struct cl_wait *w = redis_late(c) ? NULL : wait_new(c, tcp_answer);
    if (!w) {
        /* Redis late (or too many waiting): the last snapshot decides at once */
        struct cl_wait now;
        memset(&now, 0, sizeof(now));
        now.c = c;
        now.client = client;
        now.port = port;
        snprintf(now.name, sizeof(now.name), "%s", e->name);
        snprintf(now.node, sizeof(now.node), "%s", e->node);
        snprintf(now.sname, sizeof(now.sname), "%s", sname ? sname : "");
        c->late_answers++;
        tcp_answer(&now, NULL, false);
        return;
    }
    w->client = client;
    w->port = port;
    snprintf(w->name, sizeof(w->name), "%s", e->name);
    snprintf(w->node, sizeof(w->node), "%s", e->node);
    snprintf(w->sname, sizeof(w->sname), "%s", sname ? sname : "");
    char portb[8];
    snprintf(portb, sizeof(portb), "%u", (unsigned)port);
    const char *argv[2] = {P, portb};
    struct cl_wait copy = *w;
    if (wait_send(w, port_owner_lua, 2, argv) != 0) {
        copy.done = false;
        tcp_answer(&copy, NULL, false); /* Redis away: from the last snapshot */
    }
}

int tt_cluster_port_claim(struct tt_cluster *c, const char *name, const char *service,
                          uint16_t want, uint16_t *got)
{
    struct tt_cluster_port *e = port_entry(c, want);
    if (e && (!e->name[0] || strcmp(e->name, name) == 0) && open_port(c, e, want) == 0) {
        snprintf(e->name, sizeof(e->name), "%s", name);
        snprintf(e->node, sizeof(e->node), "%s", c->r->cfg.node_id);
        snprintf(e->service, sizeof(e->service), "%s", service);
        e->seq = ++c->port_seq;
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
        e->seq = ++c->port_seq;
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

static void on_expire(redisReply *rep, void *ud)
{
    struct tt_cluster *c = ud;
    int64_t now = tt_relay_now_ms();
    for (size_t i = 0; is_array(rep) && i + 1 < rep->elements; i += 2) {
        TT_LOG(TT_LOG_INFO, "device expired device=%s", TT_LOG_V(str_at(rep, i)));
        tt_webhook_emit(c->r->webhooks, "expired", str_at(rep, i), str_at(rep, i + 1), now);
    }
    beat_end(c);
}

static void expire(struct tt_cluster *c, int64_t now)
{
    char cut[24], lim[16];
    snprintf(cut, sizeof(cut), "%lld", (long long)(now - (int64_t)c->r->cfg.grace_ms));
    snprintf(lim, sizeof(lim), "%d", EXPIRE_BATCH);
    const char *argv[3] = {P, cut, lim};
    beat_eval(c, expire_lua, 3, argv, on_expire, c);
}

/* The beat: every command is sent at once (pipelined) and acted on as its reply comes; the
 * loop never waits. A beat whose previous one still has replies due (Redis slow or stopped) is
 * skipped (counted): the node record's expiry (TT_CLUSTER_NODE_TTL_MS) covers a few. */
static void on_timer(uv_timer_t *t)
{
    struct tt_cluster *c = t->data;
    if (c->beat_inflight > 0) {
        c->beats_skipped++;
        return;
    }
    int64_t now = tt_relay_now_ms();
    uint64_t t0 = uv_hrtime();
    c->beat_started = t0;
    c->beats++;
    beat(c, now);
    uint64_t t1 = uv_hrtime();
    check_takeovers(c);
    uint64_t t2 = uv_hrtime();
    sync_ports(c);
    expire(c, now);
    c->check_us = (t2 - t1) / 1000; /* the device check's time on the loop (sending) */
    c->loop_us = (uv_hrtime() - t0) / 1000;
    if (c->beat_inflight == 0) /* nothing could be sent */
        c->beat_us = c->loop_us;
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
    beat_now(c, now);
    sync_ports_now(c);
    /* the asynchronous connection, for everything from now on; the loop's clock is brought up
     * to date first (start-up may have taken a while): its connect deadline counts from now */
    uv_update_time(r->loop);
    /* the registrations' reads and writes: asynchronous too (the registry's own connection) */
    if (tt_registry_redis_async(r->reg, r->loop, &r->cfg.redis, (size_t)r->cfg.redis_max_pending,
                                err) != 0)
        return -1;
    if (tt_redisasync_new(&c->ra, r->loop, &r->cfg.redis, (size_t)r->cfg.redis_max_pending, err) !=
        0)
        return -1;
    tt_grants_use_redis_async(r->access.grants, c->ra); /* the grants' periodic read too */
    tt_sessions_use_redis_async(&r->sessions, c->ra);   /* and sessions' re-checks */
    if ((rc = uv_timer_init(r->loop, &c->timer)) != 0 ||
        (rc = uv_timer_init(r->loop, &c->wait_timer)) != 0) {
        snprintf(err, TT_ERRLEN, "cannot start timers: %s", uv_strerror(rc));
        return -1;
    }
    c->timer.data = c;
    c->timer_on = true;
    uv_timer_start(&c->timer, on_timer, TT_CLUSTER_BEAT_MS, TT_CLUSTER_BEAT_MS);
    uv_unref((uv_handle_t *)&c->timer);
    c->wait_timer.data = c;
    uv_timer_start(&c->wait_timer, on_wait_timer, TT_CLUSTER_WAIT_MS / 10, TT_CLUSTER_WAIT_MS / 10);
    uv_unref((uv_handle_t *)&c->wait_timer);
    if (r->cfg.ntls_listen > 0 && (rc = tt_cluster_tickets_start(r->loop, &c->rc, c->ra)) != 0) {
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
    if (c->timer_on) {
        uv_close((uv_handle_t *)&c->timer, NULL);
        uv_close((uv_handle_t *)&c->wait_timer, NULL);
    }
    c->timer_on = false;
    tt_cluster_tickets_stop();
    /* the clients still waiting on Redis are answered (closed) now */
    for (struct cl_wait *w = c->waits; w; w = w->next)
        wait_answer(w, NULL, true);
    size_t n = (size_t)(r->cfg.tcp_high - r->cfg.tcp_low) + 1;
    for (size_t i = 0; i < n; i++)
        c->ports[i].l = NULL; /* closed with the pool (tt_tcpports_reset) */
    /* the node record goes; the asynchronous connection closes once that is answered (or
     * after TT_CLUSTER_CLOSE_MS), letting the loop end */
    char key[sizeof(P) + TT_NODE_ID_MAX + 8];
    snprintf(key, sizeof(key), P "node:%s", r->cfg.node_id);
    const char *argv[2] = {"DEL", key};
    size_t lens[2] = {3, strlen(key)};
    if (!c->closing && uv_timer_init(r->loop, &c->close_timer) == 0) {
        c->closing = true;
        c->close_timer.data = c;
        uv_timer_start(&c->close_timer, on_close_timer, TT_CLUSTER_CLOSE_MS, 0);
        cl_send(c, 2, argv, lens, on_node_deleted, c);
    }
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
    tt_grants_use_redis_async(r->access.grants, NULL);
    tt_sessions_use_redis_async(&r->sessions, NULL);
    tt_redisasync_free(c->ra); /* every reply due is called with NULL first */
    c->ra = NULL;
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
    return least_loaded(c) != NULL && tt_cluster_redis_up(c);
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

/* ---------------------------------------------------------------- the mode (mode.h) */

static struct tt_redisconn *cl_shared_store(struct tt_relay *r)
{
    return &r->cluster->rc;
}

static bool cl_store_down(struct tt_relay *r)
{
    return !tt_cluster_redis_up(r->cluster);
}

/* The beat writes tether:hb:NODE every second (beat_lua). */
static void cl_heartbeat(struct tt_relay *r, int64_t now)
{
    r->heartbeat_at = now;
}

static void cl_set_fleet_hash(struct tt_relay *r, const uint8_t hash[32])
{
    tt_cluster_set_fleet_hash(r->cluster, hash);
}

/* The cluster's listeners serve every port: each public TCP service claims one (again, when
 * it carried one over: the claim checks it is still the device's). */
static int cl_claim_ports(struct tt_device *d, struct tt_device_svc *ns, int n, const int *carried)
{
    (void)carried;
    for (int i = 0; i < n; i++) {
        if (ns[i].kind != TT_SERVICE_TCP || ns[i].is_private)
            continue;
        int rc = tt_cluster_port_claim(d->relay->cluster, d->name, ns[i].name, ns[i].portno,
                                       &ns[i].portno);
        if (rc)
            return rc;
    }
    return 0;
}

static void cl_release_port(struct tt_relay *r, const char *name, uint16_t port)
{
    tt_cluster_port_release(r->cluster, name, port);
}

/* A port read made for a registration whose claim another node beat (ports_conflict). */
struct port_refresh {
    struct tt_cluster *c;
    uint64_t seq;
    void (*done)(void *ud);
    void *ud;
};

static void on_port_refresh(redisReply *rep, void *ud)
{
    struct port_refresh *pr = ud;
    if (rep)
        apply_ports(pr->c, rep, pr->seq);
    void (*done)(void *) = pr->done;
    void *dud = pr->ud;
    free(pr);
    done(dud);
}

static int cl_ports_conflict(struct tt_relay *r, void (*done)(void *ud), void *ud)
{
    struct tt_cluster *c = r->cluster;
    struct port_refresh *pr = malloc(sizeof(*pr));
    if (!pr)
        return -1;
    *pr = (struct port_refresh){c, c->port_seq, done, ud};
    const char *argv[1] = {P};
    if (eval_async(c, ports_lua, 1, argv, on_port_refresh, pr) != 0) {
        free(pr);
        return -1;
    }
    return 0;
}

/* The shared registry remembers it; any node answers for it. */
static void cl_session_ended(struct tt_device *d)
{
    tt_device_drop_local(d);
}

/* The node whose expiry script forgets the device sends the webhook (expire() above). */
static void cl_expired(struct tt_device *d)
{
    (void)d;
}

static bool cl_trusted(struct tt_relay *r, const struct tt_headparse *hp)
{
    return tt_cluster_trusted(r->cluster, hp);
}

static int cl_redirect(struct tt_relay *r, const char *target, size_t targetlen, bool away,
                       char *loc, size_t loclen)
{
    return tt_cluster_redirect(r->cluster, target, targetlen, away, loc, loclen);
}

static int cl_locate(struct tt_relay *r, const char *key, bool by_name, tt_where_cb cb, void *ud)
{
    return tt_cluster_locate(r->cluster, key, by_name, cb, ud);
}

static void cl_cancel(struct tt_relay *r, void *ud)
{
    tt_cluster_cancel(r->cluster, ud);
}

static void cl_forward_http(struct tt_relay *r, struct tt_headconn *hc, const char *host,
                            uint16_t port, const struct tt_peerlink_audit *audit)
{
    tt_cluster_forward_http(r->cluster, hc, host, port, audit);
}

static void cl_on_tunnel(struct tt_relay *r, struct tt_headconn *hc)
{
    tt_cluster_on_tunnel(r->cluster, hc);
}

static bool cl_can_take(struct tt_relay *r)
{
    return tt_cluster_can_take(r->cluster);
}

static const char *cl_node_at(struct tt_relay *r, const char *host, uint16_t port)
{
    return tt_cluster_node_at(r->cluster, host, port);
}

static bool cl_is_peer(struct tt_relay *r, const char *key)
{
    char k[TT_ADDRKEY_LEN];
    struct tt_cluster *c = r->cluster;
    for (size_t i = 0; c && i < c->nnodes; i++)
        if (tt_addrkey_from_ip(c->nodes[i].host, k) == 0 && strcmp(k, key) == 0)
            return true;
    return false;
}

const struct tt_mode tt_mode_cluster = {
    .name = "cluster",
    .shared = true,
    .init = tt_cluster_init,
    .start = tt_cluster_start,
    .stop = tt_cluster_stop,
    .free = tt_cluster_free,
    .heartbeat = cl_heartbeat,
    .set_fleet_hash = cl_set_fleet_hash,
    .shared_store = cl_shared_store,
    .store_down = cl_store_down,
    .claim_ports = cl_claim_ports,
    .release_port = cl_release_port,
    .ports_conflict = cl_ports_conflict,
    .session_ended = cl_session_ended,
    .expired = cl_expired,
    .trusted = cl_trusted,
    .redirect = cl_redirect,
    .locate = cl_locate,
    .cancel = cl_cancel,
    .forward_http = cl_forward_http,
    .on_tunnel = cl_on_tunnel,
    .can_take = cl_can_take,
    .node_at = cl_node_at,
    .is_peer = cl_is_peer,
};

uint64_t tt_cluster_master_changes(const struct tt_cluster *c)
{
    struct tt_redisasync_stats st;
    memset(&st, 0, sizeof(st));
    if (c->ra)
        tt_redisasync_stats(c->ra, &st);
    else
        st.master_changes = c->ra_master_changes;
    return st.master_changes > c->rc.master_changes ? st.master_changes : c->rc.master_changes;
}

bool tt_cluster_redis_up(const struct tt_cluster *c)
{
    /* the asynchronous connection is the one in constant use once the loop runs (the
     * synchronous one retries at its next call, at once when the beat was answered) */
    return c->ra ? tt_redisasync_up(c->ra) : tt_redisconn_up(&c->rc);
}
