/* admindash.c - the admin listener's dashboard (GET /): the relay's summary and a page of the
 * device list (adminpage.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/admin/adminint.h"
#include "relay/cluster/drain.h"
#include "relay/core.h"
#include "relay/device/device.h"
#include "relay/lib/form.h"
#include "relay/admin/procmetrics.h"

/* ---- dashboard ---- */

/* The dashboard's list reloads itself this often (meta refresh; ?live=0 stops it). */
#define TT_ADMIN_REFRESH_S 15u

/* The value of field name in the request's query string into out (form.h's decoding): true
 * when it is there and well formed. */
bool tt_admin_query_param(struct tt_headconn *hc, const char *name, char *out, size_t cap,
                          size_t *len)
{
    const char *url = (const char *)hc->data + hc->hp.url_off;
    size_t ulen = hc->hp.url_len;
    const char *qm = memchr(url, '?', ulen);
    if (!qm)
        return false;
    size_t off = (size_t)(qm - url) + 1;
    const char *hash = memchr(url + off, '#', ulen - off);
    size_t qlen = (hash ? (size_t)(hash - url) : ulen) - off;
    return tt_form_get((const uint8_t *)url + off, qlen, name, out, cap, len) == 0;
}

/* What the pages need for times and tether connect lines; server: at least TT_MAX_ADDR + 16
 * bytes (ws://HOST[:PORT], wss:// when the public URL is https). */
void tt_admin_page_ctx(struct tt_relay *r, struct tt_headconn *hc, struct tt_adminpage_ctx *c,
                       char *server)
{
    const uint8_t *v;
    size_t vlen;
    bool tls = strcmp(r->cfg.url_scheme, "https") == 0;
    if (r->cfg.url_port)
        snprintf(server, TT_MAX_ADDR + 16, "%s://%s:%u", tls ? "wss" : "ws", r->cfg.url_host,
                 (unsigned)r->cfg.url_port);
    else
        snprintf(server, TT_MAX_ADDR + 16, "%s://%s", tls ? "wss" : "ws", r->cfg.url_host);
    *c = (struct tt_adminpage_ctx){
        .now_ms = tt_relay_now_ms(),
        .grace_ms = r->cfg.grace_ms,
        .server = server,
        .private_mode = r->cfg.access == TT_ACCESS_PRIVATE,
        .node_id = r->cluster ? r->cfg.node_id : NULL,
        .signout = hc && tt_admin_session_of(hc, r, &v, &vlen) >= 0,
    };
}

static void addr_html(struct tt_adminbuf *b, const struct tt_config_addr *a)
{
    bool v6 = strchr(a->host, ':') != NULL;
    tt_adminbuf_fmt(b, "<code>%s", v6 ? "[" : "");
    tt_adminbuf_html(b, a->host);
    tt_adminbuf_fmt(b, "%s:%u</code>", v6 ? "]" : "", (unsigned)a->port);
}

struct totals {
    uint64_t in, out, streams;
    int64_t now;
};

static int total_one(const char *key, void *val, void *ud)
{
    (void)key;
    struct totals *t = ud;
    struct view v;
    tt_admin_view_of(val, t->now, &v);
    t->in += v.in;
    t->out += v.out;
    t->streams += ((struct tt_device *)val)->streams;
    return 0;
}

/* The relay summary: version, uptime, listeners (HTML into lis), this node's totals, drain. */
static void relay_summary(struct tt_relay *r, struct tt_adminpage_summary *s,
                          struct tt_adminbuf *lis)
{
    struct tt_procmetrics pm;
    tt_procmetrics_read("/proc", &pm);
    struct totals t = {r->gone_bytes_in, r->gone_bytes_out, r->gone_streams, tt_relay_now_ms()};
    tt_strmap_foreach(&r->by_name, total_one, &t);
    char base[TT_MAX_ADDR + 1];
    if (tt_config_device_url(&r->cfg, "LABEL", base, sizeof(base)) < 0)
        base[0] = '\0';
    tt_adminbuf_str(lis, "devices and browsers: ");
    for (size_t i = 0; i < r->cfg.nlisten; i++) {
        tt_adminbuf_str(lis, i ? ", " : "");
        addr_html(lis, &r->cfg.listen[i]);
    }
    for (size_t i = 0; i < r->cfg.ntls_listen; i++) {
        tt_adminbuf_str(lis, ", TLS ");
        addr_html(lis, &r->cfg.tls_listen[i]);
    }
    if (base[0]) {
        tt_adminbuf_str(lis, "<br>device URLs: <code>");
        tt_adminbuf_html(lis, base);
        tt_adminbuf_str(lis, "</code>");
    }
    if (r->cfg.tcp_low)
        tt_adminbuf_fmt(lis, "<br>TCP ports: %u-%u", (unsigned)r->cfg.tcp_low,
                        (unsigned)r->cfg.tcp_high);
    tt_adminbuf_str(lis, "<br>admin: ");
    addr_html(lis, &r->cfg.admin);
    tt_adminbuf_str(lis, r->cfg.admin_token[0] ? " (admin token set)" : " (no admin token)");
    *s = (struct tt_adminpage_summary){
        .version = TT_RELAY_VERSION,
        .uptime_s =
            pm.has_stat && pm.start_time > 0 ? (int64_t)((double)t.now / 1000 - pm.start_time) : -1,
        .listeners = lis->ok ? lis->p : NULL,
        .bytes_in = t.in,
        .bytes_out = t.out,
        .streams = t.streams,
        .draining = tt_drain_on(r),
        .draining_since_ms = r->drain.since,
    };
}

/* How the dashboard marks a private service (access.h) is adminpage.c's; this is the line on
 * the relay's access rules (--access, --public). */
static void access_summary(struct tt_adminbuf *b, const struct tt_relay *r)
{
    if (r->cfg.access != TT_ACCESS_PRIVATE) {
        tt_adminbuf_str(b, "<p>access: public (every service is reachable by anyone)</p>\n");
        return;
    }
    tt_adminbuf_str(b, "<p>access: private (services reachable only with a grant)");
    for (size_t i = 0; i < r->cfg.npublic; i++) {
        tt_adminbuf_str(b, i == 0 ? "; public: " : ", ");
        tt_adminbuf_str(b, "<code>");
        tt_adminbuf_html(b, r->cfg.public_patterns[i]);
        tt_adminbuf_str(b, "</code>");
    }
    tt_adminbuf_str(b, "</p>\n");
}

/* The dashboard with its page pg read (tt_admin_page_start). */
static void dashboard_answer(struct tt_headconn *hc, struct tt_relay *r,
                             const struct tt_adminquery *qp, struct page *pgp,
                             enum tt_admin_got got, bool signout)
{
    if (got == TT_ADMIN_GOT_BUSY) {
        tt_admin_answer_busy(hc, r, false);
        return;
    }
    struct tt_adminquery q = *qp;
    struct page pg = *pgp;
    struct tt_adminbuf b = {.ok = true}, acc = {.ok = true};
    bool ok = got == TT_ADMIN_GOT_OK;
    struct tt_adminpage_row *rows = pg.rs.n ? calloc(pg.rs.n, sizeof(*rows)) : NULL;
    struct tt_adminpage_node nodes[TT_CLUSTER_PAGE_NODES];
    ok = ok && (rows || !pg.rs.n);
    for (size_t i = 0; ok && i < pg.rs.n; i++) {
        const struct row *w = &pg.rs.v[i];
        rows[i] = (struct tt_adminpage_row){w->name,    w->label,   w->node,   w->v.online,
                                            w->v.since, w->v.seen,  w->remote, w->v.in,
                                            w->v.out,   w->streams, w->svcs};
    }
    size_t nnodes = pg.cluster ? pg.cp.nnodes : 0;
    for (size_t i = 0; i < nnodes; i++) {
        const char *id = pg.cp.nodes[i].node;
        bool self = strcmp(id, r->cfg.node_id) == 0, draining = self && tt_drain_on(r);
        for (size_t k = 0; !self && r->cluster && k < r->cluster->nnodes; k++)
            if (strcmp(r->cluster->nodes[k].id, id) == 0)
                draining = r->cluster->nodes[k].draining;
        nodes[i] = (struct tt_adminpage_node){id, pg.cp.nodes[i].online, draining, self};
    }
    access_summary(&acc, r);
    struct tt_adminpage_ctx ctx;
    char server[TT_MAX_ADDR + 16];
    tt_admin_page_ctx(r, hc, &ctx, server);
    struct tt_adminbuf lis = {.ok = true};
    struct tt_adminpage_summary sum;
    relay_summary(r, &sum, &lis);
    /* the summary's nodes: this one, then every other live node (online devices as the page
     * counted them, else as the node published them at its last beat) */
    size_t nsn = r->cluster ? r->cluster->nnodes + 1 : 0;
    struct tt_adminpage_node *snodes = nsn ? calloc(nsn, sizeof(*snodes)) : NULL;
    for (size_t i = 0; snodes && i < nsn; i++) {
        const struct tt_cluster_node *cn = i ? &r->cluster->nodes[i - 1] : NULL;
        const char *id = cn ? cn->id : r->cfg.node_id;
        size_t online = cn ? (size_t)(cn->devices > 0 ? cn->devices : 0)
                           : (size_t)(r->cluster->online > 0 ? r->cluster->online : 0);
        for (size_t k = 0; k < nnodes; k++)
            if (strcmp(nodes[k].id, id) == 0)
                online = nodes[k].online;
        snodes[i] = (struct tt_adminpage_node){id, online, cn ? cn->draining : tt_drain_on(r), !cn};
    }
    sum.nodes = snodes;
    sum.nnodes = snodes ? nsn : 0;
    char live[8];
    size_t livelen = 0;
    bool paused =
        tt_admin_query_param(hc, "live", live, sizeof(live), &livelen) && strcmp(live, "0") == 0;
    struct tt_adminpage p = {
        .q = &q,
        .node_id = r->cluster ? r->cfg.node_id : NULL,
        .live_nodes = r->cluster ? r->cluster->nnodes + 1 : 1,
        .nodes = nodes,
        .nnodes = nnodes,
        .total = pg.total,
        .online = pg.online,
        .offline = pg.offline,
        .partial = r->cluster && !pg.cluster,
        .rows = rows,
        .nrows = ok ? pg.rs.n : 0,
        .next = pg.has_next ? pg.next : NULL,
        .prev = q.after[0] ? pg.prev : NULL,
        .access_html = acc.ok ? acc.p : NULL,
        .signout = signout,
        .sum = lis.ok ? &sum : NULL,
        .ctx = &ctx,
        .refresh = paused ? 0 : TT_ADMIN_REFRESH_S,
    };
    if (ok)
        tt_adminpage_dashboard(&b, &p);
    free(rows);
    free(snodes);
    free(acc.p);
    free(lis.p);
    if (ok && b.ok)
        tt_admin_answer(hc, "200 OK", "text/html; charset=utf-8", TT_ADMINPAGE_HEADERS, b.p, b.len);
    else
        tt_admin_answer_oom(hc);
    free(b.p);
}

/* GET /: one page of the fleet (TT_ADMINPAGE_LIMIT devices unless the query says), never the
 * whole of it. signout: the request came with a session (a sign-out button is shown). */
void tt_admin_dashboard(struct tt_headconn *hc, struct tt_relay *r, bool signout)
{
    struct tt_adminquery q;
    if (!tt_admin_query_of(hc, &q, false))
        return;
    if (!q.limit_given)
        q.limit = TT_ADMINPAGE_LIMIT;
    tt_admin_page_start(hc, r, &q, signout, dashboard_answer);
}
