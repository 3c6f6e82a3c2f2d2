/* adminpage.c - the dashboard and the admin sign-in page (adminpage.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "relay/admin/adminpage.h"

static const char style[] =
    "<style>"
    "body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#f6f7f9}"
    "header{background:#1f2937;color:#fff;padding:.8em 1.5em;display:flex;align-items:center;"
    "justify-content:space-between}"
    "header h1{font-size:1.2em;margin:0}main{padding:1em 1.5em}"
    ".counts{display:flex;gap:1em;flex-wrap:wrap;margin:0 0 1em}"
    ".count{background:#fff;border:1px solid #dde;border-radius:6px;padding:.5em 1em}"
    ".count b{display:block;font-size:1.4em}"
    "form.search{display:flex;gap:.5em;flex-wrap:wrap;align-items:center;margin:0 0 1em}"
    "input,select,button{font:inherit;padding:.3em .5em}"
    "table{border-collapse:collapse;background:#fff;width:100%}"
    "th,td{border-bottom:1px solid #e3e5ea;padding:.35em .5em;text-align:left;"
    "vertical-align:top;font-size:.88em;white-space:nowrap}"
    ".scroll{overflow-x:auto}td a{color:#1d4ed8}"
    "th{background:#eef0f4}.online{color:#067d2e;font-weight:600}"
    ".offline{color:#b42318;font-weight:600}"
    ".private{color:#555;font-size:.85em;border:1px solid #999;border-radius:3px;"
    "padding:0 .3em;margin-left:.3em}"
    ".pager{display:flex;gap:1em;margin:1em 0}.muted{color:#667}"
    ".signin{max-width:22em;margin:4em auto;background:#fff;border:1px solid #dde;"
    "border-radius:8px;padding:1.5em}.signin input{width:100%;box-sizing:border-box;"
    "margin:.5em 0 1em}.signin code{white-space:nowrap}.err{color:#b42318}"
    "header nav{display:flex;gap:1em;align-items:center}header a{color:#fff}"
    "header form{margin:0}"
    ".summary{display:grid;grid-template-columns:repeat(auto-fit,minmax(16em,1fr));gap:.6em 1.5em;"
    "background:#fff;border:1px solid #dde;border-radius:6px;padding:.7em 1em;margin:0 0 1em}"
    ".summary div{font-size:.92em}.summary dt{color:#667;font-size:.8em}.summary dd{margin:0}"
    ".drain{color:#b54708;font-weight:600}"
    "code.copy{user-select:all;-webkit-user-select:all;background:#eef0f4;border:1px solid #dde;"
    "border-radius:3px;padding:.1em .35em;white-space:pre-wrap;word-break:break-all;"
    "display:inline-block;max-width:100%}"
    ".card{background:#fff;border:1px solid #dde;border-radius:6px;padding:1em 1.2em;"
    "margin:0 0 1em;max-width:60em}.card h2{font-size:1.05em;margin:.2em 0 .6em}"
    "dl.fields{display:grid;grid-template-columns:max-content 1fr;gap:.3em 1em;margin:0}"
    "dl.fields dt{color:#667}dl.fields dd{margin:0;overflow-wrap:anywhere}"
    "ul.svcs{list-style:none;padding:0;margin:0}ul.svcs li{margin:0 0 .8em}"
    "button.danger{background:#b42318;color:#fff;border:1px solid #912018;border-radius:4px}"
    "form.grant{display:grid;grid-template-columns:max-content 1fr;gap:.5em 1em;"
    "align-items:center}form.grant .hint{grid-column:2;color:#667;font-size:.85em;margin:-.3em 0 0}"
    ".token{background:#ecfdf3;border:1px solid #abefc6}"
    "td code.copy{white-space:nowrap;word-break:normal}"
    "td.since{white-space:normal;min-width:11.5em}td.traffic{white-space:normal;min-width:8.5em}"
    ".summary .wide{grid-column:span 2}ul.svcs code.copy{margin-top:.3em}"
    "@media (max-width:640px){main{padding:.7em}header{padding:.6em .8em;flex-wrap:wrap;gap:.4em}"
    "form.grant{grid-template-columns:1fr}form.grant .hint{grid-column:1}"
    "dl.fields{grid-template-columns:1fr}dl.fields dd{margin:0 0 .4em}"
    "table.cards thead{display:none}table.cards tr{display:block;border-bottom:1px solid #dde;"
    "padding:.4em 0}table.cards td{display:block;position:relative;border:0;"
    "white-space:normal;padding:.15em .5em .15em 6.5em;overflow-wrap:anywhere;min-width:0}"
    "table.cards td::before{content:attr(data-l);position:absolute;left:.5em;color:#667;"
    "font-weight:normal}table.cards td.name{padding-left:.5em;font-weight:600}"
    "table.cards td:empty{display:none}.summary .wide{grid-column:auto}}"
    "</style>";

/* refresh: seconds between reloads (meta refresh), 0 for none. */
static void head_refresh(struct tt_adminbuf *b, const char *title, unsigned refresh)
{
    tt_adminbuf_str(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                       "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    if (refresh)
        tt_adminbuf_fmt(b, "<meta http-equiv=\"refresh\" content=\"%u\">", refresh);
    tt_adminbuf_str(b, "<title>");
    tt_adminbuf_html(b, title);
    tt_adminbuf_str(b, "</title>");
    tt_adminbuf_str(b, style);
    tt_adminbuf_str(b, "</head><body>\n");
}

static void head(struct tt_adminbuf *b, const char *title)
{
    head_refresh(b, title, 0);
}

/* The bar at the top of every signed-in page: the relay, its pages, the sign-out button. */
static void topbar(struct tt_adminbuf *b, const char *node_id, bool signout)
{
    tt_adminbuf_str(b, "<header><h1>tetherd");
    if (node_id) {
        tt_adminbuf_str(b, " &middot; node ");
        tt_adminbuf_html(b, node_id);
    }
    tt_adminbuf_str(b, "</h1><nav><a href=\"/\">devices</a><a href=\"/grants\">grants</a>");
    if (signout)
        tt_adminbuf_str(b, "<form method=\"post\" action=\"/signout\"><button type=\"submit\">"
                           "sign out</button></form>");
    tt_adminbuf_str(b, "</nav></header>\n<main>\n");
}

void tt_adminpage_ago(int64_t t, int64_t now, char out[32])
{
    int64_t d = now - t;
    bool future = d < 0;
    uint64_t s = (uint64_t)(future ? -d : d) / 1000;
    const char *pre = future ? "in " : "", *post = future ? "" : " ago";
    if (s < 5)
        snprintf(out, 32, "%s", future ? "in a moment" : "just now");
    else if (s < 60)
        snprintf(out, 32, "%s%llu s%s", pre, (unsigned long long)s, post);
    else if (s < 3600)
        snprintf(out, 32, "%s%llu min%s", pre, (unsigned long long)(s / 60), post);
    else if (s < 48 * 3600)
        snprintf(out, 32, "%s%llu h %llu min%s", pre, (unsigned long long)(s / 3600),
                 (unsigned long long)(s % 3600 / 60), post);
    else
        snprintf(out, 32, "%s%llu days%s", pre, (unsigned long long)(s / 86400), post);
}

/* Unix ms of an ISO-8601 UTC time ("2026-11-25T03:20:00Z"), or 0. */
static int64_t iso_ms(const char *iso)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (strlen(iso) != 20 || iso[19] != 'Z' ||
        sscanf(iso, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    return t < 0 ? 0 : (int64_t)t * 1000;
}

/* Unix ms as "2026-11-25 03:20:00 UTC" (out: at least 32 bytes); "" for 0. */
static void utc_words(int64_t ms, char out[32])
{
    out[0] = '\0';
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms > 0 && gmtime_r(&t, &tm))
        strftime(out, 32, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* A time as people read it: relative ("3 min ago") with the UTC time as its title (hover),
 * or the UTC time alone without c. */
static void time_el(struct tt_adminbuf *b, const struct tt_adminpage_ctx *c, int64_t ms)
{
    char utc[32], rel[32], iso[32];
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    utc_words(ms, utc);
    iso[0] = '\0';
    if (ms > 0 && gmtime_r(&t, &tm))
        strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!utc[0]) {
        tt_adminbuf_str(b, "-");
        return;
    }
    if (!c) {
        tt_adminbuf_str(b, utc);
        return;
    }
    tt_adminpage_ago(ms, c->now_ms, rel);
    tt_adminbuf_fmt(b, "<time datetime=\"%s\" title=\"%s\">%s</time>", iso, utc, rel);
}

void tt_adminpage_bytes(uint64_t n, char out[24])
{
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (n < 1024) {
        snprintf(out, 24, "%llu B", (unsigned long long)n);
        return;
    }
    double v = (double)n / 1024;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
        v /= 1024;
        u++;
    }
    snprintf(out, 24, "%.1f %s", v, unit[u]);
}

static void count(struct tt_adminbuf *b, const char *what, size_t n)
{
    tt_adminbuf_fmt(b, "<div class=\"count\"><b>%zu</b>", n);
    tt_adminbuf_html(b, what);
    tt_adminbuf_str(b, "</div>");
}

static void counts(struct tt_adminbuf *b, const struct tt_adminpage *p)
{
    tt_adminbuf_str(b, "<section class=\"counts\" id=\"counts\">");
    count(b, "online", p->online);
    count(b, "offline", p->offline);
    count(b, "known", p->online + p->offline);
    if (p->node_id)
        count(b, "live nodes", p->live_nodes);
    for (size_t i = 0; i < p->nnodes; i++) {
        char what[128];
        snprintf(what, sizeof(what), "online on %s%s", p->nodes[i].id,
                 p->node_id && strcmp(p->nodes[i].id, p->node_id) == 0 ? " (this node)" : "");
        count(b, what, p->nodes[i].online);
    }
    tt_adminbuf_str(b, "</section>\n");
}

static void search(struct tt_adminbuf *b, const struct tt_adminquery *q)
{
    tt_adminbuf_str(b, "<form class=\"search\" method=\"get\" action=\"/\" role=\"search\">"
                       "<input type=\"search\" name=\"q\" placeholder=\"name or label\" "
                       "aria-label=\"search devices by name or label\" value=\"");
    tt_adminbuf_html(b, q->q);
    tt_adminbuf_fmt(b,
                    "\"><select name=\"online\" aria-label=\"state\">"
                    "<option value=\"\"%s>all states</option>"
                    "<option value=\"true\"%s>online</option>"
                    "<option value=\"false\"%s>offline</option></select>",
                    q->state == TT_ADMINQUERY_ANY ? " selected" : "",
                    q->state == TT_ADMINQUERY_ONLINE ? " selected" : "",
                    q->state == TT_ADMINQUERY_OFFLINE ? " selected" : "");
    if (q->limit_given)
        tt_adminbuf_fmt(b, "<input type=\"hidden\" name=\"limit\" value=\"%zu\">", q->limit);
    tt_adminbuf_str(b, "<button type=\"submit\">search</button>");
    if (q->qlen || q->state != TT_ADMINQUERY_ANY)
        tt_adminbuf_str(b, "<a href=\"/\">clear</a>");
    tt_adminbuf_str(b, "</form>\n");
}

/* A link to the page that starts after after ("" or NULL: the first). */
static void link(struct tt_adminbuf *b, const struct tt_adminquery *q, const char *after,
                 const char *rel, const char *text)
{
    char qs[512];
    if (tt_adminquery_format(q, after, qs, sizeof(qs)) < 0)
        return;
    tt_adminbuf_fmt(b, "<a rel=\"%s\" id=\"%s\" href=\"/", rel, rel);
    tt_adminbuf_html(b, qs);
    tt_adminbuf_str(b, "\">");
    tt_adminbuf_str(b, text);
    tt_adminbuf_str(b, "</a>");
}

static void pager(struct tt_adminbuf *b, const struct tt_adminpage *p)
{
    tt_adminbuf_str(b, "<nav class=\"pager\">");
    if (p->q->after[0]) {
        link(b, p->q, NULL, "first", "&laquo; first");
        if (p->prev)
            link(b, p->q, p->prev, "prev", "&lsaquo; previous");
    }
    if (p->next)
        link(b, p->q, p->next, "next", "next &rsaquo;");
    tt_adminbuf_str(b, "</nav>\n");
}

/* The services of one device: http ones as their URLs (links while online: an offline
 * device's URL answers 503), tcp ones as NAME PORT. */
static void services(struct tt_adminbuf *b, const json_t *svcs, bool http, bool online)
{
    size_t k;
    const json_t *o;
    json_array_foreach(svcs, k, o)
    {
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *kind = json_string_value(json_object_get(o, "kind"));
        const char *url = json_string_value(json_object_get(o, "url"));
        const json_t *port = json_object_get(o, "port");
        if (!name || !kind || strcmp(kind, http ? "http" : "tcp") != 0)
            continue;
        if (http && url && online) {
            tt_adminbuf_str(b, "<a href=\"");
            tt_adminbuf_html(b, url);
            tt_adminbuf_str(b, "\">");
            tt_adminbuf_html(b, url);
            tt_adminbuf_str(b, "</a>");
        } else if (http && url) { /* no link to the relay's 503 page: the address, as text */
            tt_adminbuf_str(b, "<span class=\"offline-url\">");
            tt_adminbuf_html(b, url);
            tt_adminbuf_str(b, "</span> (offline)");
        } else if (!http) {
            const char *host = json_string_value(json_object_get(o, "host"));
            tt_adminbuf_html(b, name);
            if (json_is_integer(port)) {
                tt_adminbuf_str(b, " <code class=\"copy\">");
                tt_adminbuf_html(b, host && host[0] ? host : "HOST");
                tt_adminbuf_fmt(b, ":%lld</code>", (long long)json_integer_value(port));
            }
        }
        if (json_is_true(json_object_get(o, "private")))
            tt_adminbuf_str(b, " <span class=\"private\" title=\"reachable only by users with a "
                               "grant\">private</span>");
        tt_adminbuf_str(b, "<br>");
    }
}

/* When the device connected (online), or when it went offline and until when its label and
 * ports are kept (the grace period). */
static void since_cell(struct tt_adminbuf *b, const struct tt_adminpage_ctx *c,
                       const struct tt_adminpage_row *w)
{
    if (w->online) {
        tt_adminbuf_str(b, "online since ");
        time_el(b, c, iso_ms(w->since));
        return;
    }
    int64_t seen = iso_ms(w->seen);
    if (!seen) {
        tt_adminbuf_str(b, "not connected since the relay started");
        return;
    }
    tt_adminbuf_str(b, "offline since ");
    time_el(b, c, seen);
    if (c) {
        tt_adminbuf_str(b, "<br><span class=\"muted\">label kept until ");
        time_el(b, c, seen + (int64_t)c->grace_ms);
        tt_adminbuf_str(b, "</span>");
    }
}

static void traffic(struct tt_adminbuf *b, uint64_t inb, uint64_t outb)
{
    char in[24], out[24];
    tt_adminpage_bytes(inb, in);
    tt_adminpage_bytes(outb, out);
    char *sp = strchr(in, ' '), *sp2 = strchr(out, ' ');
    if (sp) /* "6.0 MiB" stays on one line: only the two halves wrap */
        *sp = '\0';
    if (sp2)
        *sp2 = '\0';
    tt_adminbuf_fmt(b,
                    "<span title=\"%llu bytes in, %llu bytes out\">%s&nbsp;%s&nbsp;in &middot; "
                    "<wbr>%s&nbsp;%s&nbsp;out</span>",
                    (unsigned long long)inb, (unsigned long long)outb, in, sp ? sp + 1 : "", out,
                    sp2 ? sp2 + 1 : "");
}

/* A link to the device's page: /device?name=NAME (the name percent-encoded). */
static void device_href(struct tt_adminbuf *b, const char *path, const char *name)
{
    tt_adminbuf_str(b, path);
    tt_adminbuf_str(b, "?name=");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.')
            tt_adminbuf_add(b, (const char *)p, 1);
        else
            tt_adminbuf_fmt(b, "%%%02X", *p);
    }
}

static void row(struct tt_adminbuf *b, const struct tt_adminpage *p,
                const struct tt_adminpage_row *w)
{
    const char *state = w->online ? "online" : "offline";
    tt_adminbuf_str(b, "<tr><td class=\"name\"><a href=\"");
    device_href(b, "/device", w->name);
    tt_adminbuf_str(b, "\" title=\"details, connect lines and actions\">");
    tt_adminbuf_html(b, w->name);
    tt_adminbuf_str(b, "</a></td><td data-l=\"label\"><code>");
    tt_adminbuf_html(b, w->label);
    tt_adminbuf_fmt(b, "</code></td><td class=\"%s\" data-l=\"state\">%s</td>", state, state);
    if (p->node_id) {
        tt_adminbuf_str(b, "<td data-l=\"node\">");
        tt_adminbuf_html(b, w->node[0] ? w->node : "-");
        tt_adminbuf_str(b, "</td>");
    }
    tt_adminbuf_str(b, "<td data-l=\"URLs\">");
    services(b, w->svcs, true, w->online);
    tt_adminbuf_str(b, "</td><td data-l=\"TCP\">");
    services(b, w->svcs, false, w->online);
    tt_adminbuf_str(b, "</td><td class=\"traffic\" data-l=\"traffic\">");
    traffic(b, w->in, w->out);
    tt_adminbuf_fmt(b,
                    "</td><td class=\"streams\" data-l=\"streams\">%llu</td><td class=\"addr\" "
                    "data-l=\"address\">",
                    (unsigned long long)w->streams);
    tt_adminbuf_html(b, w->remote[0] ? w->remote : "-");
    tt_adminbuf_str(b, "</td><td class=\"since\" data-l=\"since\">");
    since_cell(b, p->ctx, w);
    tt_adminbuf_str(b, "</td></tr>\n");
}

static void sum_item(struct tt_adminbuf *b, const char *what)
{
    tt_adminbuf_str(b, strcmp(what, "listeners") == 0 ? "<div class=\"wide\"><dt>" : "<div><dt>");
    tt_adminbuf_str(b, what);
    tt_adminbuf_str(b, "</dt><dd>");
}

/* The relay at a glance: version, uptime, listeners, totals, nodes, drain. */
static void summary(struct tt_adminbuf *b, const struct tt_adminpage *p)
{
    const struct tt_adminpage_summary *s = p->sum;
    tt_adminbuf_str(b, "<dl class=\"summary\" id=\"relay\">");
    sum_item(b, "version");
    tt_adminbuf_str(b, "<span id=\"version\">tetherd ");
    tt_adminbuf_html(b, s->version);
    tt_adminbuf_str(b, "</span></dd></div>");
    sum_item(b, "uptime");
    if (s->uptime_s >= 0) {
        long long u = (long long)s->uptime_s;
        if (u >= 86400)
            tt_adminbuf_fmt(b, "%lld days %lld h", u / 86400, u % 86400 / 3600);
        else if (u >= 3600)
            tt_adminbuf_fmt(b, "%lld h %lld min", u / 3600, u % 3600 / 60);
        else
            tt_adminbuf_fmt(b, "%lld min %lld s", u / 60, u % 60);
    } else {
        tt_adminbuf_str(b, "unknown");
    }
    tt_adminbuf_str(b, "</dd></div>");
    sum_item(b, "listeners");
    tt_adminbuf_str(b, s->listeners ? s->listeners : "-");
    tt_adminbuf_str(b, "</dd></div>");
    sum_item(b, "devices");
    tt_adminbuf_fmt(b, "<span id=\"totals\">%zu online &middot; %zu offline</span>", p->online,
                    p->offline);
    tt_adminbuf_str(b, "</dd></div>");
    sum_item(b, "relayed by this node");
    traffic(b, s->bytes_in, s->bytes_out);
    tt_adminbuf_fmt(b, " &middot; %llu stream%s", (unsigned long long)s->streams,
                    s->streams == 1 ? "" : "s");
    tt_adminbuf_str(b, "</dd></div>");
    sum_item(b, "drain");
    if (s->draining) {
        tt_adminbuf_str(b, "<span class=\"drain\">draining</span> since ");
        time_el(b, p->ctx, s->draining_since_ms);
    } else {
        tt_adminbuf_str(b, "not draining (takes devices)");
    }
    tt_adminbuf_str(b, "</dd></div>");
    if (p->node_id) {
        sum_item(b, "cluster nodes");
        tt_adminbuf_fmt(b, "%zu live", p->live_nodes);
        for (size_t i = 0; i < s->nnodes; i++) {
            tt_adminbuf_str(b, "<br>");
            tt_adminbuf_html(b, s->nodes[i].id);
            tt_adminbuf_fmt(b, ": %zu online", s->nodes[i].online);
            if (s->nodes[i].self)
                tt_adminbuf_str(b, " (this node)");
            if (s->nodes[i].draining)
                tt_adminbuf_str(b, " <span class=\"drain\">draining</span>");
        }
        tt_adminbuf_str(b, "</dd></div>");
    }
    tt_adminbuf_str(b, "</dl>\n");
}

void tt_adminpage_dashboard(struct tt_adminbuf *b, const struct tt_adminpage *p)
{
    head_refresh(b, "tetherd: devices", p->refresh);
    topbar(b, p->node_id, p->signout);
    if (p->sum)
        summary(b, p);
    counts(b, p);
    if (p->partial)
        tt_adminbuf_str(b, "<p class=\"err\">Redis cannot be reached: this node's devices "
                           "only.</p>\n");
    if (p->access_html)
        tt_adminbuf_str(b, p->access_html);
    search(b, p->q);
    tt_adminbuf_fmt(b, "<p class=\"muted\" id=\"summary\">%zu matching device%s; showing %zu",
                    p->total, p->total == 1 ? "" : "s", p->nrows);
    if (p->nrows) {
        tt_adminbuf_str(b, " (");
        tt_adminbuf_html(b, p->rows[0].name);
        tt_adminbuf_str(b, " &hellip; ");
        tt_adminbuf_html(b, p->rows[p->nrows - 1].name);
        tt_adminbuf_str(b, ")");
    }
    if (p->refresh)
        tt_adminbuf_fmt(b, ". Refreshes every %u s (<a href=\"/?live=0\">stop</a>)", p->refresh);
    else
        tt_adminbuf_str(b, ". Not refreshing (<a href=\"/\">live</a>)");
    tt_adminbuf_str(b, "</p>\n");
    pager(b, p);
    tt_adminbuf_fmt(b,
                    "<div class=\"scroll\"><table class=\"cards\" "
                    "id=\"devices\">\n<thead><tr><th>name</th><th>label</th><th>state</th>"
                    "%s<th>URLs</th><th>TCP services</th><th>traffic</th><th>streams</th>"
                    "<th>address</th><th>since</th></tr></thead>\n<tbody>\n",
                    p->node_id ? "<th>node</th>" : "");
    for (size_t i = 0; i < p->nrows; i++)
        row(b, p, &p->rows[i]);
    tt_adminbuf_str(b, "</tbody></table></div>\n");
    if (!p->nrows)
        tt_adminbuf_str(b, "<p class=\"muted\">No device matches.</p>\n");
    pager(b, p);
    tt_adminbuf_str(b, "</main></body></html>\n");
}

/* The TCP services of a device, each with what to copy: HOST:PORT (public) and a tether
 * connect line (the only way in for a private one). */
static void connect_lines(struct tt_adminbuf *b, const struct tt_adminpage_ctx *c,
                          const struct tt_adminpage_row *w)
{
    size_t k, n = 0;
    const json_t *o;
    tt_adminbuf_str(b, "<ul class=\"svcs\" id=\"tcp\">");
    json_array_foreach(w->svcs, k, o)
    {
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *kind = json_string_value(json_object_get(o, "kind"));
        const char *host = json_string_value(json_object_get(o, "host"));
        const json_t *port = json_object_get(o, "port");
        bool priv = json_is_true(json_object_get(o, "private"));
        if (!name || !kind || strcmp(kind, "tcp") != 0)
            continue;
        n++;
        long long pn = json_is_integer(port) ? (long long)json_integer_value(port) : 0;
        tt_adminbuf_str(b, "<li><b>");
        tt_adminbuf_html(b, name);
        tt_adminbuf_str(b, "</b>");
        if (priv)
            tt_adminbuf_str(b, " <span class=\"private\" title=\"reachable only by users with a "
                               "grant\">private</span>: only through the relay with "
                               "<code>tether connect</code>");
        if (!priv && pn) {
            tt_adminbuf_str(b, "<br>public port: <code class=\"copy\">");
            tt_adminbuf_html(b, host && host[0] ? host : "HOST");
            tt_adminbuf_fmt(b, ":%lld</code><br>or through the relay:", pn);
        }
        tt_adminbuf_str(b, "<br><code class=\"copy connect\">tether connect --server ");
        tt_adminbuf_html(b, c && c->server && c->server[0] ? c->server : "ws://RELAY");
        if (priv && c && c->private_mode)
            tt_adminbuf_str(b, " --grant GRANT_TOKEN");
        tt_adminbuf_str(b, " ");
        tt_adminbuf_html(b, w->name);
        tt_adminbuf_str(b, "/");
        tt_adminbuf_html(b, name);
        tt_adminbuf_fmt(b, " --listen 127.0.0.1:%lld</code></li>", pn ? pn : 10022);
    }
    if (!n)
        tt_adminbuf_str(b, "<li class=\"muted\">no TCP service</li>");
    tt_adminbuf_str(b, "</ul>");
}

void tt_adminpage_device(struct tt_adminbuf *b, const struct tt_adminpage_ctx *c,
                         const struct tt_adminpage_row *w)
{
    const char *state = w->online ? "online" : "offline";
    const char *node_id = c ? c->node_id : NULL;
    head(b, "tetherd: device");
    topbar(b, node_id, c && c->signout);
    tt_adminbuf_str(b, "<section class=\"card\"><h2 id=\"device\">");
    tt_adminbuf_html(b, w->name);
    tt_adminbuf_fmt(b, " <span class=\"%s\">%s</span></h2><dl class=\"fields\">", state, state);
    tt_adminbuf_str(b, "<dt>label</dt><dd><code>");
    tt_adminbuf_html(b, w->label);
    tt_adminbuf_str(b, "</code></dd><dt>state</dt><dd class=\"since\">");
    since_cell(b, c, w);
    tt_adminbuf_str(b, "</dd>");
    if (node_id && w->node[0]) {
        tt_adminbuf_str(b, "<dt>node</dt><dd>");
        tt_adminbuf_html(b, w->node);
        tt_adminbuf_str(b, "</dd>");
    }
    tt_adminbuf_str(b, "<dt>address</dt><dd>");
    tt_adminbuf_html(b, w->remote[0] ? w->remote : "-");
    tt_adminbuf_fmt(b, "</dd><dt>streams</dt><dd>%llu</dd><dt>traffic</dt><dd>",
                    (unsigned long long)w->streams);
    traffic(b, w->in, w->out);
    tt_adminbuf_str(b, "</dd><dt>URLs</dt><dd>");
    services(b, w->svcs, true, w->online);
    tt_adminbuf_str(b, "</dd></dl></section>\n<section class=\"card\"><h2>TCP services</h2>");
    connect_lines(b, c, w);
    tt_adminbuf_str(b, "</section>\n<section class=\"card\"><h2>actions</h2>"
                       "<form method=\"get\" action=\"/device/delete\">"
                       "<input type=\"hidden\" name=\"name\" value=\"");
    tt_adminbuf_html(b, w->name);
    tt_adminbuf_str(b, "\"><button class=\"danger\" type=\"submit\" id=\"delete\">delete this "
                       "device&hellip;</button> <span class=\"muted\">disconnects it and "
                       "releases its label and ports (asks first)</span></form>"
                       "<p><a href=\"/grants\">grant a user access&hellip;</a></p></section>\n"
                       "</main></body></html>\n");
}

void tt_adminpage_confirm_delete(struct tt_adminbuf *b, const struct tt_adminpage_ctx *c,
                                 const char *name)
{
    head(b, "tetherd: delete device");
    topbar(b, c ? c->node_id : NULL, c && c->signout);
    tt_adminbuf_str(b, "<section class=\"card\"><h2>Delete device <code>");
    tt_adminbuf_html(b, name);
    tt_adminbuf_str(b, "</code>?</h2><p>The device is disconnected and its label and ports are "
                       "released. It can register again with its token, and gets a new label "
                       "if another device took the old one.</p>"
                       "<form method=\"post\" action=\"/device/delete\">"
                       "<input type=\"hidden\" name=\"name\" value=\"");
    tt_adminbuf_html(b, name);
    tt_adminbuf_str(b, "\"><button class=\"danger\" type=\"submit\" id=\"confirm\">delete</button> "
                       "<a href=\"");
    device_href(b, "/device", name);
    tt_adminbuf_str(b, "\">cancel</a></form></section>\n</main></body></html>\n");
}

void tt_adminpage_done(struct tt_adminbuf *b, const struct tt_adminpage_ctx *c, const char *title,
                       const char *text, const char *back_href, bool err)
{
    head(b, title);
    topbar(b, c ? c->node_id : NULL, c && c->signout);
    tt_adminbuf_fmt(b, "<section class=\"card\"><p class=\"%s\" id=\"result\">",
                    err ? "err" : "done");
    tt_adminbuf_html(b, text);
    tt_adminbuf_fmt(b, "</p><p><a href=\"%s\">back</a></p></section>\n</main></body></html>\n",
                    back_href);
}

void tt_adminpage_grants(struct tt_adminbuf *b, const struct tt_adminpage_ctx *c,
                         const struct tt_adminpage_grant *g, size_t n, const char *token,
                         const char *token_id, int64_t token_expires_ms, const char *err)
{
    head(b, "tetherd: grants");
    topbar(b, c ? c->node_id : NULL, c && c->signout);
    if (token) {
        tt_adminbuf_str(b, "<section class=\"card token\"><h2>Grant made</h2><p>Its token, shown "
                           "this once (the relay keeps only its hash): give it to the user.</p>"
                           "<p><code class=\"copy\" id=\"token\">");
        tt_adminbuf_html(b, token);
        tt_adminbuf_str(b, "</code></p><p class=\"muted\">grant <code>");
        tt_adminbuf_html(b, token_id ? token_id : "");
        tt_adminbuf_str(b, "</code>, expires ");
        time_el(b, c, token_expires_ms);
        tt_adminbuf_str(b, ". Use: <code class=\"copy\">tether connect --server ");
        tt_adminbuf_html(b, c && c->server ? c->server : "ws://RELAY");
        tt_adminbuf_str(b, " --grant ");
        tt_adminbuf_html(b, token);
        tt_adminbuf_str(b, " DEVICE/SERVICE --listen 127.0.0.1:10022</code></p></section>\n");
    }
    if (err) {
        tt_adminbuf_str(b, "<p class=\"err\" id=\"error\">");
        tt_adminbuf_html(b, err);
        tt_adminbuf_str(b, "</p>\n");
    }
    tt_adminbuf_str(
        b, "<section class=\"card\"><h2>New grant</h2>"
           "<form class=\"grant\" method=\"post\" action=\"/grants\">"
           "<label for=\"user\">user</label><input id=\"user\" name=\"user\" required "
           "maxlength=\"64\" placeholder=\"alice\">"
           "<label for=\"patterns\">devices/services</label><input id=\"patterns\" "
           "name=\"patterns\" required placeholder=\"plant-7-gw/ssh plant-*/http\">"
           "<p class=\"hint\">DEVICE/SERVICE patterns (* matches), separated by spaces or "
           "commas</p>"
           "<label for=\"ttl\">lasts</label><input id=\"ttl\" name=\"ttl\" value=\"15m\" "
           "placeholder=\"15m\"><p class=\"hint\">a duration: 30s, 15m, 8h, 7d</p>"
           "<span></span><div><button type=\"submit\" id=\"create\">make grant</button></div>"
           "</form></section>\n");
    tt_adminbuf_fmt(b,
                    "<section class=\"card\"><h2>Live grants (%zu)</h2><div class=\"scroll\">"
                    "<table class=\"cards\" "
                    "id=\"grants\"><thead><tr><th>user</th><th>grants</th><th>expires</th>"
                    "<th>made</th><th></th></tr></thead><tbody>\n",
                    n);
    for (size_t i = 0; i < n; i++) {
        tt_adminbuf_str(b, "<tr><td class=\"user\" data-l=\"user\">");
        tt_adminbuf_html(b, g[i].user);
        tt_adminbuf_str(b, "</td><td data-l=\"grants\">");
        for (size_t k = 0; k < g[i].npatterns; k++) {
            tt_adminbuf_str(b, k ? " <code>" : "<code>");
            tt_adminbuf_html(b, g[i].patterns[k]);
            tt_adminbuf_str(b, "</code>");
        }
        tt_adminbuf_str(b, "</td><td data-l=\"expires\">");
        time_el(b, c, g[i].expires_ms);
        tt_adminbuf_str(b, "</td><td data-l=\"made\">");
        time_el(b, c, g[i].created_ms);
        tt_adminbuf_str(b, "</td><td data-l=\"\"><form method=\"post\" action=\"/grants/revoke\">"
                           "<input type=\"hidden\" name=\"id\" value=\"");
        tt_adminbuf_html(b, g[i].id);
        tt_adminbuf_str(b, "\"><button class=\"danger\" type=\"submit\">revoke</button></form>"
                           "</td></tr>\n");
    }
    tt_adminbuf_str(b, "</tbody></table></div>");
    if (!n)
        tt_adminbuf_str(b, "<p class=\"muted\">No live grant.</p>");
    tt_adminbuf_str(b, "</section>\n</main></body></html>\n");
}

void tt_adminpage_signin(struct tt_adminbuf *b, bool wrong, bool throttled)
{
    head(b, "tetherd: sign in");
    tt_adminbuf_str(b, "<div class=\"signin\"><h1>tetherd</h1>"
                       "<p>Sign in with the relay's admin token (<code>--admin-token</code>).</p>");
    if (throttled)
        tt_adminbuf_str(b, "<p class=\"err\">Too many wrong tokens from this address: wait a "
                           "few seconds and try again.</p>");
    else if (wrong)
        tt_adminbuf_str(b, "<p class=\"err\">That token is not right.</p>");
    tt_adminbuf_str(b, "<form method=\"post\" action=\"/\"><label for=\"token\">admin "
                       "token</label><input type=\"password\" id=\"token\" name=\"token\" "
                       "autocomplete=\"current-password\" required autofocus>"
                       "<button type=\"submit\">sign in</button></form></div>\n"
                       "</body></html>\n");
}
