/* cluster_admin.c - the admin API's view of a cluster (cluster.h): one device of the shared
 * registry, or a page of them (a walk over the registry in short steps, then the page's
 * records), with the live fields and services each holder published on its beat, and which
 * nodes are alive. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "tether_err.h"
#include "relay/admin/adminbuf.h"
#include "relay/access/grants.h"
#include "relay/admin/adminquery.h"
#include "relay/cluster/cluster.h"
#include "relay/device/device.h"
#include "relay/core.h"
#include "relay/store/redisasync.h"
#include "relay/store/redisconn.h"

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

void tt_cluster_devs_free(struct tt_cluster_dev *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i].svc);
    free(v);
}

/* One step of a page's walk. ARGV: prefix, SSCAN cursor, COUNT, now_ms, grace_ms, limit, after,
 * state (a, 1, 0), q (lower case). Reads the devices of one SSCAN step (their label, holder and
 * offline time) and returns {cursor, total, online, offline, {node, count, ...}, fwd, back}:
 * the counts of that step, and of its matches the limit + 1 first names after "after" (fwd)
 * and the limit + 1 last ones up to it (back), each kept in a heap. */
static const char walk_lua[] =
    "local "
    "P,cur,count,now,grace,lim,after,st,q=ARGV[1],ARGV[2],ARGV[3],tonumber(ARGV[4]),tonumber(ARGV["
    "5]),tonumber(ARGV[6]),ARGV[7],ARGV[8],ARGV[9]\n"
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
    "local sc=redis.call('SSCAN',P..'devices',cur,'COUNT',count)\n"
    "for _,n in ipairs(sc[2]) do\n"
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
    "local nodes={}\n"
    "for k,v in pairs(pernode) do nodes[#nodes+1]=k nodes[#nodes+1]=v end\n"
    "return {sc[1],total,online,offline,nodes,fwd,back}\n";

/* ARGV: prefix, names... Returns {name, HGETALL, 1 if its holder's node record is alive else 0,
 * ...} for the names that still have a record. */
static const char recs_lua[] =
    "local P=ARGV[1]\n"
    "local out,alive={},{}\n"
    "for i=2,#ARGV do\n"
    "  local n=ARGV[i]\n"
    "  local h=redis.call('HGETALL',P..'dev:'..n)\n"
    "  if #h>0 then\n"
    "    local node=redis.call('HGET',P..'dev:'..n,'node') or ''\n"
    "    if node~='' and alive[node]==nil then alive[node]=redis.call('EXISTS',P..'node:'..node) "
    "end\n"
    "    out[#out+1]=n out[#out+1]=h out[#out+1]=(node~='' and alive[node]) or 0\n"
    "  end\n"
    "end\n"
    "return out\n";

/* Devices read per step of the walk: one step runs in Redis for a few milliseconds, so that
 * neither Redis nor this node's command timeout (TT_REDIS_TIMEOUT_MS) waits on a large fleet. */
#define WALK_COUNT "4000"
/* Steps of one walk at most (SSCAN ends well before: about devices / 4000; TT_CLUSTER_WALK_MS
 * ends it before too). */
#define WALK_STEPS_MAX 100000
/* Times a walk starts again because the connection moved to another server meanwhile; beyond,
 * it ends as with no answer (this node's devices). */
#define WALK_RESTARTS_MAX 2

static size_t int_of(const redisReply *e)
{
    return e->type == REDIS_REPLY_INTEGER && e->integer > 0 ? (size_t)e->integer : 0;
}

/* Names kept by the walk (fwd: the first ones after the cursor; back: the last ones up to it). */
struct names {
    char (*v)[TT_MAX_NAME + 1];
    size_t n, cap;
};

static int cmp_name(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Adds the names of reply arr to l; when l holds more than 4 * keep, sorts it, drops
 * duplicates (SSCAN may return a name twice) and keeps the keep first (first) or last ones.
 * Returns false when out of memory. */
static bool names_add(struct names *l, const redisReply *arr, size_t keep, bool first)
{
    for (size_t i = 0; arr->type == REDIS_REPLY_ARRAY && i < arr->elements; i++) {
        const redisReply *e = arr->element[i];
        if (e->type != REDIS_REPLY_STRING || e->len > TT_MAX_NAME || memchr(e->str, 0, e->len))
            continue;
        if (l->n == l->cap) {
            size_t cap = l->cap ? 2 * l->cap : 64;
            void *v = realloc(l->v, cap * sizeof(*l->v));
            if (!v)
                return false;
            l->v = v;
            l->cap = cap;
        }
        memcpy(l->v[l->n], e->str, e->len);
        l->v[l->n++][e->len] = '\0';
    }
    if (l->n <= 4 * keep)
        return true;
    qsort(l->v, l->n, sizeof(*l->v), cmp_name);
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++)
        if (k == 0 || strcmp(l->v[k - 1], l->v[i]) != 0)
            memmove(l->v[k++], l->v[i], sizeof(*l->v));
    l->n = k;
    if (l->n > keep) {
        if (!first)
            memmove(l->v, l->v + (l->n - keep), keep * sizeof(*l->v));
        l->n = keep;
    }
    return true;
}

/* Sorts l and drops duplicates. */
static void names_done(struct names *l)
{
    if (l->n > 1)
        qsort(l->v, l->n, sizeof(*l->v), cmp_name);
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++)
        if (k == 0 || strcmp(l->v[k - 1], l->v[i]) != 0)
            memmove(l->v[k++], l->v[i], sizeof(*l->v));
    l->n = k;
}

static void count_nodes(struct tt_cluster_page *out, const redisReply *nodes)
{
    for (size_t i = 0; nodes->type == REDIS_REPLY_ARRAY && i + 1 < nodes->elements; i += 2) {
        const redisReply *id = nodes->element[i];
        size_t n = int_of(nodes->element[i + 1]);
        if (id->type != REDIS_REPLY_STRING || id->len > TT_NODE_ID_MAX)
            continue;
        size_t k = 0;
        while (k < out->nnodes && strcmp(out->nodes[k].node, id->str) != 0)
            k++;
        if (k == out->nnodes) {
            if (k == TT_CLUSTER_PAGE_NODES) {
                out->other_nodes += n;
                continue;
            }
            snprintf(out->nodes[k].node, sizeof(out->nodes[0].node), "%s", id->str);
            out->nnodes++;
        }
        out->nodes[k].online += n;
    }
}

/* ---- the walk, on the asynchronous connection ---- */

/* A walk in flight (or the read of one device): its admin connection owns it through cb/ud
 * (tt_cluster_walk_cancel). Freed once nothing refers to it: no step due (sent), its timer
 * closed. */
struct tt_cluster_walk {
    struct tt_cluster *c;
    struct tt_cluster_walk *prev, *next; /* c->walk_list */
    bool one;                            /* the read of one device (name) */
    char name[TT_MAX_NAME + 1];
    struct tt_adminquery q;
    char cursor[32], snow[24], sgrace[24], slim[24];
    const char *st;
    struct names fwd, back;
    struct tt_cluster_page out;
    unsigned steps;
    uint64_t conn_epoch; /* the connection's reconnects and master changes when it started */
    unsigned restarts;   /* times started again because the connection moved meanwhile */
    bool sent;           /* a command's reply is due: its callback will come */
    bool timer_open;     /* the timer is not closed yet */
    uv_timer_t timer;
    tt_cluster_walk_cb cb; /* NULL: answered, cancelled or timed out */
    void *ud;
};

static void walk_free(struct tt_cluster_walk *w)
{
    struct tt_cluster *c = w->c;
    if (w->prev)
        w->prev->next = w->next;
    else
        c->walk_list = w->next;
    if (w->next)
        w->next->prev = w->prev;
    c->walks--;
    free(w->fwd.v);
    free(w->back.v);
    tt_cluster_page_free(&w->out);
    free(w);
}

static void walk_timer_closed(uv_handle_t *h)
{
    struct tt_cluster_walk *w = h->data;
    w->timer_open = false;
    if (!w->sent)
        walk_free(w);
}

/* The walk has answered (or will never): its timer goes, and the walk once no step is due. */
static void walk_release(struct tt_cluster_walk *w)
{
    w->cb = NULL;
    if (w->timer_open) {
        if (!uv_is_closing((uv_handle_t *)&w->timer))
            uv_close((uv_handle_t *)&w->timer, walk_timer_closed);
        return;
    }
    if (!w->sent)
        walk_free(w);
}

/* Answers the walk's owner with rc (0: w->out is handed over) and releases the walk. */
static void walk_finish(struct tt_cluster_walk *w, int rc)
{
    struct tt_cluster *c = w->c;
    tt_cluster_walk_cb cb = w->cb;
    void *ud = w->ud;
    struct tt_cluster_page pg;
    if (rc != 0)
        tt_cluster_page_free(&w->out);
    pg = w->out;
    memset(&w->out, 0, sizeof(w->out));
    *(rc == 0                    ? &c->walks_ok
      : rc == TETHER_ERR_TIMEOUT ? &c->walks_timeout
                                 : &c->walks_failed) += 1;
    walk_release(w);
    if (cb)
        cb(ud, rc, &pg);
    else
        tt_cluster_page_free(&pg);
}

static void walk_on_timeout(uv_timer_t *t)
{
    struct tt_cluster_walk *w = t->data;
    if (w->cb)
        walk_finish(w, TETHER_ERR_TIMEOUT);
}

static int walk_send_step(struct tt_cluster_walk *w);

/* Fills w->out from a records reply (recs_lua's or devs_lua's). Returns 0 or an error. */
static int walk_records(struct tt_cluster_walk *w, const redisReply *rep, size_t n)
{
    struct tt_cluster_page *out = &w->out;
    if (!rep || rep->type != REDIS_REPLY_ARRAY)
        return TETHER_ERR_IO;
    if (n > rep->elements / 3)
        n = rep->elements / 3;
    out->v = n ? calloc(n, sizeof(*out->v)) : NULL;
    if (n && !out->v)
        return TETHER_ERR_NOMEM;
    for (size_t i = 0; i + 2 < rep->elements && out->n < n; i += 3) {
        const redisReply *nm = rep->element[i], *alive = rep->element[i + 2];
        if (nm->type != REDIS_REPLY_STRING || nm->len > TT_MAX_NAME)
            continue;
        if (!parse(&out->v[out->n], nm->str, rep->element[i + 1]))
            continue;
        out->v[out->n].node_alive = alive->type == REDIS_REPLY_INTEGER && alive->integer == 1;
        out->n++;
    }
    return 0;
}

/* The reply to the page's records (or to the read of one device). */
static void walk_on_records(redisReply *rep, void *ud)
{
    struct tt_cluster_walk *w = ud;
    w->sent = false;
    if (!w->cb) {
        walk_release(w);
        return;
    }
    size_t n = w->one ? 1 : (w->fwd.n < w->q.limit ? w->fwd.n : w->q.limit);
    walk_finish(w, walk_records(w, rep, n));
}

/* Sends the command argv[0..argc) for w, with on_reply. Returns 0 or an error (not sent). */
static int walk_send(struct tt_cluster_walk *w, int argc, const char **argv, const size_t *lens,
                     tt_redisasync_cb on_reply)
{
    if (!w->c->ra)
        return TETHER_ERR_IO; /* shutting down */
    int rc = tt_redisasync_argv(w->c->ra, argc, argv, lens, on_reply, w);
    if (rc == 0)
        w->sent = true;
    return rc == TETHER_ERR_NOMEM ? rc : rc ? TETHER_ERR_IO : 0;
}

/* The walk is over: the records of its page's names (the first limit of fwd). */
static int walk_send_records(struct tt_cluster_walk *w)
{
    names_done(&w->fwd);
    names_done(&w->back);
    size_t n = w->fwd.n < w->q.limit ? w->fwd.n : w->q.limit;
    w->out.more = w->fwd.n > w->q.limit;
    if (w->back.n > w->q.limit)
        snprintf(w->out.prev, sizeof(w->out.prev), "%s", w->back.v[w->back.n - w->q.limit - 1]);
    const char **argv = calloc(n + 4, sizeof(*argv));
    size_t *lens = calloc(n + 4, sizeof(*lens));
    if (!argv || !lens) {
        free(argv);
        free(lens);
        return TETHER_ERR_NOMEM;
    }
    argv[0] = "EVAL";
    argv[1] = recs_lua;
    argv[2] = "0";
    argv[3] = P;
    for (size_t i = 0; i < n; i++)
        argv[4 + i] = w->fwd.v[i];
    for (size_t i = 0; i < n + 4; i++)
        lens[i] = strlen(argv[i]);
    int rc = walk_send(w, (int)(n + 4), argv, lens, walk_on_records);
    free(argv);
    free(lens);
    return rc;
}

/* How many times the connection came up again or moved to a new master: an SSCAN cursor is a
 * position in one server's table, meaningless on another (a failover, a Redis restarted). */
static uint64_t conn_epoch(const struct tt_cluster *c)
{
    struct tt_redisasync_stats st;
    if (!c->ra)
        return 0;
    tt_redisasync_stats(c->ra, &st);
    return st.reconnects + st.master_changes;
}

/* The walk from its first step again, its counts and names dropped: the connection moved to
 * another server during it (a step queued while it reconnected went there with the old
 * cursor). Returns 0 or an error (WALK_RESTARTS_MAX reached, or the step not sent). */
static int walk_restart(struct tt_cluster_walk *w)
{
    struct tt_cluster_page *out = &w->out;
    if (++w->restarts > WALK_RESTARTS_MAX)
        return TETHER_ERR_IO;
    w->c->walk_restarts++;
    out->total = out->online = out->offline = out->nnodes = out->other_nodes = 0;
    w->fwd.n = w->back.n = 0;
    w->steps = 0;
    w->conn_epoch = conn_epoch(w->c);
    snprintf(w->cursor, sizeof(w->cursor), "0");
    return walk_send_step(w);
}

/* One step's reply: its counts and names kept, then the next step (or the records). */
static void walk_on_step(redisReply *rep, void *ud)
{
    struct tt_cluster_walk *w = ud;
    w->sent = false;
    if (!w->cb) {
        walk_release(w);
        return;
    }
    if (rep && conn_epoch(w->c) != w->conn_epoch) {
        int rc = walk_restart(w);
        if (rc)
            walk_finish(w, rc);
        return;
    }
    w->c->walk_steps++;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 7 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[0]->len >= sizeof(w->cursor)) {
        walk_finish(w, TETHER_ERR_IO);
        return;
    }
    struct tt_cluster_page *out = &w->out;
    out->total += int_of(rep->element[1]);
    out->online += int_of(rep->element[2]);
    out->offline += int_of(rep->element[3]);
    count_nodes(out, rep->element[4]);
    bool ok = names_add(&w->fwd, rep->element[5], w->q.limit + 1, true) &&
              names_add(&w->back, rep->element[6], w->q.limit + 1, false);
    snprintf(w->cursor, sizeof(w->cursor), "%s", rep->element[0]->str);
    int rc = !ok                            ? TETHER_ERR_NOMEM
             : strcmp(w->cursor, "0") == 0  ? walk_send_records(w)
             : ++w->steps >= WALK_STEPS_MAX ? TETHER_ERR_IO
                                            : walk_send_step(w);
    if (rc)
        walk_finish(w, rc);
}

/* Sends the walk's next step (from w->cursor). */
static int walk_send_step(struct tt_cluster_walk *w)
{
    const char *argv[12] = {"EVAL",  walk_lua,  "0",     P,          w->cursor, WALK_COUNT,
                            w->snow, w->sgrace, w->slim, w->q.after, w->st,     w->q.q};
    size_t lens[12];
    for (int i = 0; i < 12; i++)
        lens[i] = strlen(argv[i]);
    return walk_send(w, 12, argv, lens, walk_on_step);
}

/* A new walk of c for cb/ud (its timer started), or NULL with *rc (the cap, out of memory). */
static struct tt_cluster_walk *walk_new(struct tt_cluster *c, tt_cluster_walk_cb cb, void *ud,
                                        int *rc)
{
    if (!c->ra) {
        *rc = TETHER_ERR_IO;
        return NULL;
    }
    if (c->walks >= TT_CLUSTER_WALKS_MAX) {
        c->walks_refused++;
        *rc = TETHER_ERR_CAPACITY;
        return NULL;
    }
    struct tt_cluster_walk *w = calloc(1, sizeof(*w));
    if (!w || uv_timer_init(c->r->loop, &w->timer) != 0) {
        free(w);
        *rc = TETHER_ERR_NOMEM;
        return NULL;
    }
    w->c = c;
    w->cb = cb;
    w->ud = ud;
    w->timer.data = w;
    w->timer_open = true;
    w->next = c->walk_list;
    if (w->next)
        w->next->prev = w;
    c->walk_list = w;
    if (++c->walks > c->walks_peak)
        c->walks_peak = c->walks;
    uv_timer_start(&w->timer, walk_on_timeout, TT_CLUSTER_WALK_MS, 0);
    return w;
}

/* The first command of w could not be sent (rc): w goes, its owner is answered now. */
static int walk_refused(struct tt_cluster_walk *w, int rc)
{
    w->c->walks_failed++;
    walk_release(w);
    return rc;
}

int tt_cluster_page_async(struct tt_cluster *c, const struct tt_adminquery *q, int64_t now,
                          uint64_t grace_ms, tt_cluster_walk_cb cb, void *ud,
                          struct tt_cluster_walk **handle)
{
    int rc;
    *handle = NULL;
    struct tt_cluster_walk *w = walk_new(c, cb, ud, &rc);
    if (!w)
        return rc;
    w->q = *q;
    snprintf(w->cursor, sizeof(w->cursor), "0");
    snprintf(w->snow, sizeof(w->snow), "%lld", (long long)now);
    snprintf(w->sgrace, sizeof(w->sgrace), "%llu", (unsigned long long)grace_ms);
    snprintf(w->slim, sizeof(w->slim), "%zu", q->limit);
    w->conn_epoch = conn_epoch(c);
    w->st = q->state == TT_ADMINQUERY_ONLINE ? "1" : q->state == TT_ADMINQUERY_OFFLINE ? "0" : "a";
    if ((rc = walk_send_step(w)) != 0)
        return walk_refused(w, rc);
    *handle = w;
    return TT_CLUSTER_PENDING;
}

int tt_cluster_dev_async(struct tt_cluster *c, const char *name, tt_cluster_walk_cb cb, void *ud,
                         struct tt_cluster_walk **handle)
{
    int rc;
    *handle = NULL;
    if (strlen(name) > TT_MAX_NAME)
        return TETHER_ERR_INVAL;
    struct tt_cluster_walk *w = walk_new(c, cb, ud, &rc);
    if (!w)
        return rc;
    w->one = true;
    snprintf(w->name, sizeof(w->name), "%s", name);
    const char *argv[5] = {"EVAL", devs_lua, "0", P, w->name};
    size_t lens[5];
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    if ((rc = walk_send(w, 5, argv, lens, walk_on_records)) != 0)
        return walk_refused(w, rc);
    *handle = w;
    return TT_CLUSTER_PENDING;
}

void tt_cluster_walk_cancel(struct tt_cluster_walk *w)
{
    if (!w || !w->cb)
        return;
    w->c->walks_cancelled++;
    walk_release(w);
}

void tt_cluster_page_free(struct tt_cluster_page *pg)
{
    tt_cluster_devs_free(pg->v, pg->n);
    pg->v = NULL;
    pg->n = 0;
}

void tt_cluster_metrics(struct tt_adminbuf *bp, const struct tt_cluster *c)
{
    tt_adminbuf_fmt(
        bp,
        "# HELP tether_cluster_nodes Live nodes of the cluster, this one included.\n"
        "# TYPE tether_cluster_nodes gauge\n"
        "tether_cluster_nodes %zu\n"
        "# HELP tether_cluster_redis_up 1 while this node reaches Redis.\n"
        "# TYPE tether_cluster_redis_up gauge\n"
        "tether_cluster_redis_up %d\n"
        "# HELP tether_cluster_redirects_total Device handshakes sent to another node.\n"
        "# TYPE tether_cluster_redirects_total counter\n"
        "tether_cluster_redirects_total %llu\n"
        "# HELP tether_cluster_devices_online Devices online on every live node, as "
        "the nodes published them at this node's last beat.\n"
        "# TYPE tether_cluster_devices_online gauge\n"
        "tether_cluster_devices_online %lld\n",
        c->nnodes + 1, tt_cluster_redis_up(c) ? 1 : 0, (unsigned long long)c->redirects,
        (long long)c->fleet_online);
    char abuf[8192]; /* the asynchronous side */
    size_t alen = 0;
    tt_cluster_metrics_async(c, abuf, sizeof(abuf), &alen);
    tt_adminbuf_add(bp, abuf, alen < sizeof(abuf) ? alen : 0);
    if (c->rc.url.sentinel)
        tt_adminbuf_fmt(bp,
                        "# HELP tether_redis_master_changes_total Redis masters at a new address "
                        "found through the sentinels since start (failovers followed).\n"
                        "# TYPE tether_redis_master_changes_total counter\n"
                        "tether_redis_master_changes_total %llu\n"
                        "# HELP tether_redis_repair_conflicts_total Devices closed after a master "
                        "change because another device held their label or port there.\n"
                        "# TYPE tether_redis_repair_conflicts_total counter\n"
                        "tether_redis_repair_conflicts_total %llu\n",
                        (unsigned long long)tt_cluster_master_changes(c),
                        (unsigned long long)c->repair_conflict);
    tt_adminbuf_fmt(bp,
                    "# HELP tether_cluster_forwarded_total Clients passed to the node holding "
                    "their device.\n"
                    "# TYPE tether_cluster_forwarded_total counter\n"
                    "tether_cluster_forwarded_total{kind=\"http\"} %llu\n"
                    "tether_cluster_forwarded_total{kind=\"tcp\"} %llu\n",
                    (unsigned long long)c->forwarded_http, (unsigned long long)c->forwarded_tcp);
    tt_adminbuf_fmt(
        bp,
        "# HELP tether_cluster_beat_seconds Duration of this node's last beat (Redis "
        "calls included), and of its device check (takeovers, deletions, live fields).\n"
        "# TYPE tether_cluster_beat_seconds gauge\n"
        "tether_cluster_beat_seconds{part=\"all\"} %.6f\n"
        "tether_cluster_beat_seconds{part=\"devices\"} %.6f\n"
        "# HELP tether_cluster_live_published_total Devices whose live fields (bytes, "
        "streams) this node wrote to Redis because they changed.\n"
        "# TYPE tether_cluster_live_published_total counter\n"
        "tether_cluster_live_published_total %llu\n",
        (double)c->beat_us / 1e6, (double)c->check_us / 1e6, (unsigned long long)c->published);
    tt_adminbuf_fmt(
        bp,
        "# HELP tether_cluster_sessions_closed_total Sessions this node closed because "
        "another node took their device over or the operator deleted it on another "
        "node: told by the other node (pushed) or found by the beat's check (scan).\n"
        "# TYPE tether_cluster_sessions_closed_total counter\n"
        "tether_cluster_sessions_closed_total{how=\"pushed\"} %llu\n"
        "tether_cluster_sessions_closed_total{how=\"scan\"} %llu\n"
        "# HELP tether_cluster_full_checks_total Beats that checked every device of this "
        "node because Redis listed fewer of them than it holds (Redis restarted, or took "
        "the node for dead).\n"
        "# TYPE tether_cluster_full_checks_total counter\n"
        "tether_cluster_full_checks_total %llu\n",
        (unsigned long long)c->closed_pushed, (unsigned long long)c->closed_scan,
        (unsigned long long)c->full_checks);
    /* the admin API's walks (tt_adminbuf_fmt writes at most 1 KiB a call) */
    tt_adminbuf_fmt(bp,
                    "# HELP tether_admin_walks Walks over the registry (a page of GET "
                    "/api/devices or of the dashboard; the read of one device) in flight on this "
                    "node, cancelled ones whose step is still due included.\n"
                    "# TYPE tether_admin_walks gauge\n"
                    "tether_admin_walks %zu\n"
                    "# HELP tether_admin_walks_max The cap on them (beyond: 503 with "
                    "Retry-After).\n"
                    "# TYPE tether_admin_walks_max gauge\n"
                    "tether_admin_walks_max %d\n"
                    "# HELP tether_admin_walks_peak The most in flight at once since start.\n"
                    "# TYPE tether_admin_walks_peak gauge\n"
                    "tether_admin_walks_peak %zu\n",
                    c->walks, TT_CLUSTER_WALKS_MAX, c->walks_peak);
    tt_adminbuf_fmt(bp,
                    "# HELP tether_admin_walks_total Walks by how they ended: answered (ok), "
                    "Redis did not answer (failed: this node's devices shown), past the time "
                    "limit (timeout: 503), the admin client gone (cancelled), refused at the cap "
                    "(refused: 503).\n"
                    "# TYPE tether_admin_walks_total counter\n"
                    "tether_admin_walks_total{result=\"ok\"} %llu\n"
                    "tether_admin_walks_total{result=\"failed\"} %llu\n"
                    "tether_admin_walks_total{result=\"timeout\"} %llu\n"
                    "tether_admin_walks_total{result=\"cancelled\"} %llu\n"
                    "tether_admin_walks_total{result=\"refused\"} %llu\n",
                    (unsigned long long)c->walks_ok, (unsigned long long)c->walks_failed,
                    (unsigned long long)c->walks_timeout, (unsigned long long)c->walks_cancelled,
                    (unsigned long long)c->walks_refused);
    tt_adminbuf_fmt(bp,
                    "# HELP tether_admin_walk_steps_total Steps of the walks answered by Redis "
                    "(4,000 devices each).\n"
                    "# TYPE tether_admin_walk_steps_total counter\n"
                    "tether_admin_walk_steps_total %llu\n"
                    "# HELP tether_admin_walk_restarts_total Walks started again because the "
                    "Redis connection moved to another server during them (a failover).\n"
                    "# TYPE tether_admin_walk_restarts_total counter\n"
                    "tether_admin_walk_restarts_total %llu\n",
                    (unsigned long long)c->walk_steps, (unsigned long long)c->walk_restarts);
    /* the operator's deletes waiting for Redis (admindevapi.c) */
    tt_adminbuf_fmt(bp,
                    "# HELP tether_admin_deletes Deletes of a device (the admin API's or the "
                    "dashboard's) waiting for Redis on this node, those whose client went "
                    "included.\n"
                    "# TYPE tether_admin_deletes gauge\n"
                    "tether_admin_deletes %zu\n"
                    "# HELP tether_admin_deletes_max The cap on them (beyond: 503 with "
                    "Retry-After).\n"
                    "# TYPE tether_admin_deletes_max gauge\n"
                    "tether_admin_deletes_max %d\n"
                    "# HELP tether_admin_deletes_peak The most waiting at once since start.\n"
                    "# TYPE tether_admin_deletes_peak gauge\n"
                    "tether_admin_deletes_peak %zu\n",
                    c->deletes, TT_ADMIN_DELETES_MAX, c->deletes_peak);
    tt_adminbuf_fmt(bp,
                    "# HELP tether_admin_deletes_total Deletes of a device sent to Redis by how "
                    "they ended: answered (done), no answer (failed: 503), refused at the cap "
                    "(refused: 503); cancelled counts those whose client went (they still "
                    "complete).\n"
                    "# TYPE tether_admin_deletes_total counter\n"
                    "tether_admin_deletes_total{result=\"done\"} %llu\n"
                    "tether_admin_deletes_total{result=\"failed\"} %llu\n"
                    "tether_admin_deletes_total{result=\"refused\"} %llu\n"
                    "tether_admin_deletes_total{result=\"cancelled\"} %llu\n",
                    (unsigned long long)c->deletes_done, (unsigned long long)c->deletes_failed,
                    (unsigned long long)c->deletes_refused,
                    (unsigned long long)c->deletes_cancelled);
    /* the admin API's reads of the cluster's grants (grants.h, tt_grants_refresh_async) */
    struct tt_grants_stats gs;
    memset(&gs, 0, sizeof(gs));
    if (c->r->access.grants)
        tt_grants_get_stats(c->r->access.grants, &gs);
    tt_adminbuf_fmt(bp,
                    "# HELP tether_admin_grant_reads Reads of the cluster's grants for GET "
                    "/api/grants[/ID] or the dashboard's grants page waiting for Redis.\n"
                    "# TYPE tether_admin_grant_reads gauge\n"
                    "tether_admin_grant_reads %zu\n"
                    "# HELP tether_admin_grant_reads_max The cap on them (beyond: answered at "
                    "once with the grants this node knows).\n"
                    "# TYPE tether_admin_grant_reads_max gauge\n"
                    "tether_admin_grant_reads_max %d\n"
                    "# HELP tether_admin_grant_reads_total Reads of the cluster's grants for the "
                    "admin API: sent, and not sent because of the cap (full).\n"
                    "# TYPE tether_admin_grant_reads_total counter\n"
                    "tether_admin_grant_reads_total{result=\"sent\"} %llu\n"
                    "tether_admin_grant_reads_total{result=\"full\"} %llu\n",
                    gs.reads_waiting, TT_GRANTS_READ_WAIT_MAX, (unsigned long long)gs.reads,
                    (unsigned long long)gs.reads_full);
}

char *tt_cluster_services_dump(const struct tt_device *d)
{
    json_t *j = json_array();
    for (uint8_t i = 0; j && i < d->nsvc; i++) {
        const struct tt_device_svc *s = &d->svc[i];
        json_t *o = s->kind == TT_SERVICE_HTTP
                        ? json_pack("{s:s, s:s, s:s, s:b}", "name", s->name, "kind", "http", "sub",
                                    s->dnsname, "private", s->is_private)
                        : json_pack("{s:s, s:s, s:i, s:b}", "name", s->name, "kind", "tcp", "port",
                                    (json_int_t)s->portno, "private", s->is_private);
        if (json_array_append_new(j, o) != 0) {
            json_decref(j);
            j = NULL;
        }
    }
    char *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return out;
}

void tt_cluster_metrics_async(const struct tt_cluster *c, char *out, size_t cap, size_t *len)
{
    if (*len >= cap)
        return;
    int n = snprintf(
        out + *len, cap - *len,
        "# HELP tether_cluster_beats_total Beats this node started.\n"
        "# TYPE tether_cluster_beats_total counter\n"
        "tether_cluster_beats_total %llu\n"
        "# HELP tether_cluster_beats_skipped_total Beats not started because replies of the "
        "previous one were still due (Redis slow or stopped).\n"
        "# TYPE tether_cluster_beats_skipped_total counter\n"
        "tether_cluster_beats_skipped_total %llu\n"
        "# HELP tether_cluster_beat_loop_seconds Time the last beat took on the loop (its "
        "commands built and sent; the replies are acted on as they come).\n"
        "# TYPE tether_cluster_beat_loop_seconds gauge\n"
        "tether_cluster_beat_loop_seconds %.6f\n"
        "# HELP tether_cluster_lookup_waiting Clients waiting for Redis to say where their "
        "device is.\n"
        "# TYPE tether_cluster_lookup_waiting gauge\n"
        "tether_cluster_lookup_waiting %zu\n"
        "# HELP tether_cluster_lookup_waiting_max The cap on them (beyond: 503, or a TCP client "
        "closed).\n"
        "# TYPE tether_cluster_lookup_waiting_max gauge\n"
        "tether_cluster_lookup_waiting_max %d\n"
        "# HELP tether_cluster_lookup_waiting_peak The most that waited at once since start.\n"
        "# TYPE tether_cluster_lookup_waiting_peak gauge\n"
        "tether_cluster_lookup_waiting_peak %zu\n"
        "# HELP tether_cluster_lookups_total Clients that waited for a lookup in Redis.\n"
        "# TYPE tether_cluster_lookups_total counter\n"
        "tether_cluster_lookups_total %llu\n"
        "# HELP tether_cluster_lookups_refused_total Clients refused at once: the cap of "
        "waiting ones reached.\n"
        "# TYPE tether_cluster_lookups_refused_total counter\n"
        "tether_cluster_lookups_refused_total %llu\n"
        "# HELP tether_cluster_lookups_timeout_total Clients answered 503 (or closed) because "
        "Redis did not answer within the wait.\n"
        "# TYPE tether_cluster_lookups_timeout_total counter\n"
        "tether_cluster_lookups_timeout_total %llu\n"
        "# HELP tether_cluster_lookups_late_total Clients served at once from the holder this "
        "node last knew, Redis being late or the waiting clients at their cap.\n"
        "# TYPE tether_cluster_lookups_late_total counter\n"
        "tether_cluster_lookups_late_total %llu\n",
        (unsigned long long)c->beats, (unsigned long long)c->beats_skipped,
        (double)c->loop_us / 1e6, c->waiting, TT_CLUSTER_WAIT_MAX, c->waiting_peak,
        (unsigned long long)c->waits_total, (unsigned long long)c->wait_full,
        (unsigned long long)c->wait_timeouts, (unsigned long long)c->late_answers);
    if (n < 0 || (size_t)n >= cap - *len) {
        *len = cap;
        return;
    }
    *len += (size_t)n;
    /* the cluster's own connection (store/redisasync.h; named apart from the registry's) */
    struct tt_redisasync_stats st;
    memset(&st, 0, sizeof(st));
    if (c->ra)
        tt_redisasync_stats(c->ra, &st);
    n = snprintf(out + *len, cap - *len,
                 "# HELP tether_cluster_redis_pending Commands of the cluster's asynchronous "
                 "Redis connection in flight.\n"
                 "# TYPE tether_cluster_redis_pending gauge\n"
                 "tether_cluster_redis_pending %zu\n"
                 "# HELP tether_cluster_redis_pending_max The cap on them (--redis-max-pending).\n"
                 "# TYPE tether_cluster_redis_pending_max gauge\n"
                 "tether_cluster_redis_pending_max %zu\n"
                 "# HELP tether_cluster_redis_pending_full_total Commands refused at the cap.\n"
                 "# TYPE tether_cluster_redis_pending_full_total counter\n"
                 "tether_cluster_redis_pending_full_total %llu\n"
                 "# HELP tether_cluster_redis_failed_total Commands of the cluster that got no "
                 "answer (connection lost, timed out, Redis down).\n"
                 "# TYPE tether_cluster_redis_failed_total counter\n"
                 "tether_cluster_redis_failed_total %llu\n"
                 "# HELP tether_cluster_redis_async_up 1 while the cluster's asynchronous Redis "
                 "connection is up.\n"
                 "# TYPE tether_cluster_redis_async_up gauge\n"
                 "tether_cluster_redis_async_up %d\n",
                 st.pending, st.max_pending, (unsigned long long)st.full,
                 (unsigned long long)(st.failed + st.refused), st.up ? 1 : 0);
    if (n < 0 || (size_t)n >= cap - *len) {
        *len = cap;
        return;
    }
    *len += (size_t)n;
}
