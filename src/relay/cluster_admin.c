/* cluster_admin.c - the admin API's view of a cluster (cluster.h): every device of the shared
 * registry read from Redis in one call, with the live fields and services its holder published
 * on its beat, and which nodes are alive. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tether_err.h"
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
