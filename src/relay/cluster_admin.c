/* cluster_admin.c - the admin API's view of a cluster (cluster.h): every device of the shared
 * registry read from Redis in one call, with the live fields and services its holder published
 * on its beat, and which nodes are alive. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tether_err.h"
#include "adminquery.h"
#include "cluster.h"
#include "relay.h"

#define P TT_REDIS_PREFIX

/* ARGV: prefix[, name]. Returns {name, HGETALL of its record, 1 if its holder's node record
 * is alive else 0, ...} for every device, or for name alone. */
static const char devs_lua[] =
    "local P=ARGV[1]\n"
    "local names\n"
    "if ARGV[2] then names={ARGV[2]} else names=redis.call('SMEMBERS',P..'devices') end\n"
    "local out,alive={},{}\n"
    "for _,n in ipairs(names) do\n"
    "  local h=redis.call('HGETALL',P..'dev:'..n)\n"
    "  if #h>0 then\n"
    "    local node=redis.call('HGET',P..'dev:'..n,'node') or ''\n"
    "    if node~='' and alive[node]==nil then\n"
    "      alive[node]=redis.call('EXISTS',P..'node:'..node)\n"
    "    end\n"
    "    out[#out+1]=n out[#out+1]=h out[#out+1]=alive[node] or 0\n"
    "  end\n"
    "end\n"
    "return out\n";

void tt_cluster_live_format(int64_t since, uint64_t in, uint64_t out, uint64_t streams,
                            const char *addr, char *buf, size_t len)
{
    snprintf(buf, len, "%" PRId64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %s", since, in, out,
             streams, addr && addr[0] ? addr : "-");
}

static void parse_live(struct tt_cluster_dev *d, const char *s)
{
    long long since;
    unsigned long long in, out, streams;
    char addr[64];
    if (sscanf(s, "%lld %llu %llu %llu %63s", &since, &in, &out, &streams, addr) != 5)
        return;
    d->has_live = true;
    d->connected_since = since;
    d->in = in;
    d->out = out;
    d->streams = streams;
    snprintf(d->remote, sizeof(d->remote), "%s", strcmp(addr, "-") ? addr : "");
}

/* Fills d from an HGETALL reply. Returns false when the record has no label (half written). */
static bool parse(struct tt_cluster_dev *d, const char *name, const redisReply *h)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->name, sizeof(d->name), "%s", name);
    for (size_t i = 0; h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2) {
        const redisReply *f = h->element[i], *v = h->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(f->str, "label") == 0)
            snprintf(d->label, sizeof(d->label), "%s", v->str);
        else if (strcmp(f->str, "off") == 0)
            d->offline_since = strtoll(v->str, NULL, 10);
        else if (strcmp(f->str, "seen") == 0)
            d->last_seen = strtoll(v->str, NULL, 10);
        else if (strcmp(f->str, "node") == 0)
            snprintf(d->node, sizeof(d->node), "%s", v->str);
        else if (strcmp(f->str, "live") == 0)
            parse_live(d, v->str);
        else if (strcmp(f->str, "svc") == 0 && !d->svc && v->len <= 64 * 1024)
            d->svc = strdup(v->str);
        else if (strncmp(f->str, "p:", 2) == 0 && d->nports < TT_MAX_SERVICES) {
            long port = strtol(v->str, NULL, 10);
            if (port < 1 || port > 65535)
                continue;
            snprintf(d->ports[d->nports].service, sizeof(d->ports[0].service), "%s", f->str + 2);
            d->ports[d->nports++].port = (uint16_t)port;
        }
    }
    if (!d->label[0]) {
        free(d->svc);
        d->svc = NULL;
        return false;
    }
    return true;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct tt_cluster_dev *)a)->name,
                  ((const struct tt_cluster_dev *)b)->name);
}

int tt_cluster_devs(struct tt_cluster *c, const char *name, struct tt_cluster_dev **out, size_t *n)
{
    const char *argv[5] = {"EVAL", devs_lua, "0", P, name};
    size_t lens[5];
    int argc = name ? 5 : 4;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    *out = NULL;
    *n = 0;
    redisReply *rep = tt_redisconn_argv(&c->rc, argc, argv, lens);
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        if (rep)
            freeReplyObject(rep);
        return TETHER_ERR_IO;
    }
    size_t cap = rep->elements / 3;
    struct tt_cluster_dev *v = cap ? calloc(cap, sizeof(*v)) : NULL;
    if (cap && !v) {
        freeReplyObject(rep);
        return TETHER_ERR_NOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i + 2 < rep->elements; i += 3) {
        const redisReply *nm = rep->element[i], *alive = rep->element[i + 2];
        if (nm->type != REDIS_REPLY_STRING || nm->len > TT_MAX_NAME)
            continue;
        if (!parse(&v[k], nm->str, rep->element[i + 1]))
            continue;
        v[k].node_alive = alive->type == REDIS_REPLY_INTEGER && alive->integer == 1;
        k++;
    }
    freeReplyObject(rep);
    if (k > 1)
        qsort(v, k, sizeof(*v), by_name);
    *out = v;
    *n = k;
    return 0;
}

void tt_cluster_devs_free(struct tt_cluster_dev *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i].svc);
    free(v);
}

/* ARGV: prefix, now_ms, grace_ms, limit, after, state (a, 1, 0), q (lower case). Returns
 * {total, online, offline, more, {node, count, ...}, name, HGETALL, alive, ...} (the page). */
/* ARGV: prefix, now_ms, grace_ms, limit, after, state (a, 1, 0), q (lower case). Returns
 * {total, online, offline, more, {node, count, ...}, prev, name, HGETALL, alive, ...} (the
 * page). Two heaps of limit + 1 names: the first names after "after" (the page, and whether
 * more follow), the last ones up to it (where the page before begins: prev, "" for the first). */
static const char page_lua[] =
    "local "
    "P,now,grace,lim,after,st,q=ARGV[1],tonumber(ARGV[2]),tonumber(ARGV[3]),tonumber(ARGV[4]),ARGV["
    "5],ARGV[6],ARGV[7]\n"
    "local L=lim+1\n"
    "local function gt(a,b) return a>b end\n"
    "local function lt(a,b) return a<b end\n"
    "local function push(h,x,worse)\n"
    "  local hn=#h\n"
    "  if hn<L then\n"
    "    h[hn+1]=x local i=hn+1\n"
    "    while i>1 do local p=math.floor(i/2)\n"
    "      if worse(h[i],h[p]) then h[p],h[i]=h[i],h[p] i=p else break end end\n"
    "  elseif worse(h[1],x) then\n"
    "    h[1]=x local i=1\n"
    "    while true do local l,r,m=2*i,2*i+1,i\n"
    "      if l<=hn and worse(h[l],h[m]) then m=l end\n"
    "      if r<=hn and worse(h[r],h[m]) then m=r end\n"
    "      if m==i then break end\n"
    "      h[m],h[i]=h[i],h[m] i=m end\n"
    "  end\n"
    "end\n"
    "local fwd,back,alive,pernode={},{},{},{}\n"
    "local total,online,offline=0,0,0\n"
    "for _,n in ipairs(redis.call('SMEMBERS',P..'devices')) do\n"
    "  local f=redis.call('HMGET',P..'dev:'..n,'label','node','off')\n"
    "  local label,node,off=f[1],f[2] or '',tonumber(f[3] or '0') or 0\n"
    "  if label and (node~='' or off<=0 or now-off<grace) then\n"
    "    local on=false\n"
    "    if node~='' then\n"
    "      if alive[node]==nil then alive[node]=redis.call('EXISTS',P..'node:'..node) end\n"
    "      on=alive[node]==1\n"
    "    end\n"
    "    if on then online=online+1 pernode[node]=(pernode[node] or 0)+1 else offline=offline+1 "
    "end\n"
    "    if (st=='a' or (st=='1')==on) and (q=='' or string.find(string.lower(n),q,1,true) or "
    "string.find(string.lower(label),q,1,true)) then\n"
    "      total=total+1\n"
    "      if after=='' or n>after then push(fwd,n,gt) else push(back,n,lt) end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "table.sort(fwd)\n"
    "local prev=''\n"
    "if #back>lim then table.sort(back) prev=back[1] end\n"
    "local nodes={}\n"
    "for k,v in pairs(pernode) do nodes[#nodes+1]=k nodes[#nodes+1]=v end\n"
    "local out={total,online,offline,#fwd>lim and 1 or 0,nodes,prev}\n"
    "for i=1,math.min(#fwd,lim) do\n"
    "  local n=fwd[i]\n"
    "  local h=redis.call('HGETALL',P..'dev:'..n)\n"
    "  local node=redis.call('HGET',P..'dev:'..n,'node') or ''\n"
    "  out[#out+1]=n out[#out+1]=h out[#out+1]=(node~='' and alive[node]) or 0\n"
    "end\n"
    "return out\n";

static size_t int_of(const redisReply *e)
{
    return e->type == REDIS_REPLY_INTEGER && e->integer > 0 ? (size_t)e->integer : 0;
}

int tt_cluster_devs_page(struct tt_cluster *c, const struct tt_adminquery *q, int64_t now,
                         uint64_t grace_ms, struct tt_cluster_page *out)
{
    char snow[24], sgrace[24], slim[24];
    snprintf(snow, sizeof(snow), "%lld", (long long)now);
    snprintf(sgrace, sizeof(sgrace), "%llu", (unsigned long long)grace_ms);
    snprintf(slim, sizeof(slim), "%zu", q->limit);
    const char *st = q->state == TT_ADMINQUERY_ONLINE    ? "1"
                     : q->state == TT_ADMINQUERY_OFFLINE ? "0"
                                                         : "a";
    const char *argv[10] = {"EVAL", page_lua, "0", P, snow, sgrace, slim, q->after, st, q->q};
    size_t lens[10];
    for (int i = 0; i < 10; i++)
        lens[i] = strlen(argv[i]);
    memset(out, 0, sizeof(*out));
    redisReply *rep = tt_redisconn_argv(&c->rc, 10, argv, lens);
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 6) {
        if (rep)
            freeReplyObject(rep);
        return TETHER_ERR_IO;
    }
    out->total = int_of(rep->element[0]);
    out->online = int_of(rep->element[1]);
    out->offline = int_of(rep->element[2]);
    out->more = int_of(rep->element[3]) == 1;
    const redisReply *nodes = rep->element[4];
    for (size_t i = 0; nodes->type == REDIS_REPLY_ARRAY && i + 1 < nodes->elements; i += 2) {
        const redisReply *id = nodes->element[i];
        if (id->type != REDIS_REPLY_STRING || id->len > TT_NODE_ID_MAX)
            continue;
        if (out->nnodes == TT_CLUSTER_PAGE_NODES) {
            out->other_nodes += int_of(nodes->element[i + 1]);
            continue;
        }
        snprintf(out->nodes[out->nnodes].node, sizeof(out->nodes[0].node), "%s", id->str);
        out->nodes[out->nnodes++].online = int_of(nodes->element[i + 1]);
    }
    const redisReply *prev = rep->element[5];
    if (prev->type == REDIS_REPLY_STRING && prev->len <= TT_MAX_NAME)
        snprintf(out->prev, sizeof(out->prev), "%s", prev->str);
    size_t cap = (rep->elements - 6) / 3;
    if (cap > q->limit)
        cap = q->limit;
    out->v = cap ? calloc(cap, sizeof(*out->v)) : NULL;
    if (cap && !out->v) {
        freeReplyObject(rep);
        return TETHER_ERR_NOMEM;
    }
    for (size_t i = 6; i + 2 < rep->elements && out->n < cap; i += 3) {
        const redisReply *nm = rep->element[i], *alive = rep->element[i + 2];
        if (nm->type != REDIS_REPLY_STRING || nm->len > TT_MAX_NAME)
            continue;
        if (!parse(&out->v[out->n], nm->str, rep->element[i + 1]))
            continue;
        out->v[out->n].node_alive = alive->type == REDIS_REPLY_INTEGER && alive->integer == 1;
        out->n++;
    }
    freeReplyObject(rep);
    /* byte order whatever Redis' locale did */
    if (out->n > 1)
        qsort(out->v, out->n, sizeof(*out->v), by_name);
    return 0;
}

void tt_cluster_page_free(struct tt_cluster_page *pg)
{
    tt_cluster_devs_free(pg->v, pg->n);
    pg->v = NULL;
    pg->n = 0;
}
