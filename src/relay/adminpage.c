/* adminpage.c - the dashboard and the admin sign-in page (adminpage.h). */
#include <stdio.h>
#include <string.h>
#include "adminpage.h"

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
    "vertical-align:top;font-size:.92em;white-space:nowrap}"
    ".scroll{overflow-x:auto}td a{color:#1d4ed8}"
    "th{background:#eef0f4}.online{color:#067d2e;font-weight:600}"
    ".offline{color:#b42318;font-weight:600}"
    ".private{color:#555;font-size:.85em;border:1px solid #999;border-radius:3px;"
    "padding:0 .3em;margin-left:.3em}"
    ".pager{display:flex;gap:1em;margin:1em 0}.muted{color:#667}"
    ".signin{max-width:22em;margin:4em auto;background:#fff;border:1px solid #dde;"
    "border-radius:8px;padding:1.5em}.signin input{width:100%;box-sizing:border-box;"
    "margin:.5em 0 1em}.signin code{white-space:nowrap}.err{color:#b42318}"
    "</style>";

static void head(struct tt_adminbuf *b, const char *title)
{
    tt_adminbuf_str(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                       "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
                       "<title>");
    tt_adminbuf_html(b, title);
    tt_adminbuf_str(b, "</title>");
    tt_adminbuf_str(b, style);
    tt_adminbuf_str(b, "</head><body>\n");
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
            tt_adminbuf_html(b, name);
            if (json_is_integer(port))
                tt_adminbuf_fmt(b, " %lld", (long long)json_integer_value(port));
        }
        if (json_is_true(json_object_get(o, "private")))
            tt_adminbuf_str(b, " <span class=\"private\" title=\"reachable only by users with a "
                               "grant\">private</span>");
        tt_adminbuf_str(b, "<br>");
    }
}

/* An ISO-8601 UTC time ("2026-11-25T03:20:00Z") as people read it ("2026-11-25 03:20:00",
 * under a column saying UTC); anything else as it is, "" as "-". */
static void when(struct tt_adminbuf *b, const char *iso)
{
    size_t n = strlen(iso);
    if (!n) {
        tt_adminbuf_str(b, "-");
        return;
    }
    if (n == 20 && iso[10] == 'T' && iso[19] == 'Z') {
        tt_adminbuf_add(b, iso, 10);
        tt_adminbuf_str(b, " ");
        tt_adminbuf_add(b, iso + 11, 8);
        return;
    }
    tt_adminbuf_html(b, iso);
}

static void row(struct tt_adminbuf *b, const struct tt_adminpage *p,
                const struct tt_adminpage_row *w)
{
    char in[24], out[24];
    const char *state = w->online ? "online" : "offline";
    tt_adminbuf_str(b, "<tr><td class=\"name\">");
    tt_adminbuf_html(b, w->name);
    tt_adminbuf_str(b, "</td><td><code>");
    tt_adminbuf_html(b, w->label);
    tt_adminbuf_fmt(b, "</code></td><td class=\"%s\">%s</td>", state, state);
    if (p->node_id) {
        tt_adminbuf_str(b, "<td>");
        tt_adminbuf_html(b, w->node[0] ? w->node : "-");
        tt_adminbuf_str(b, "</td>");
    }
    tt_adminbuf_str(b, "<td>");
    services(b, w->svcs, true, w->online);
    tt_adminbuf_str(b, "</td><td>");
    services(b, w->svcs, false, w->online);
    tt_adminpage_bytes(w->in, in);
    tt_adminpage_bytes(w->out, out);
    tt_adminbuf_fmt(b,
                    "</td><td title=\"%llu bytes in, %llu bytes out\">%s in &middot; %s out</td>"
                    "<td>%llu</td><td>",
                    (unsigned long long)w->in, (unsigned long long)w->out, in, out,
                    (unsigned long long)w->streams);
    tt_adminbuf_html(b, w->remote[0] ? w->remote : "-");
    tt_adminbuf_str(b, "</td><td>");
    when(b, w->online ? w->since : w->seen);
    tt_adminbuf_str(b, "</td></tr>\n");
}

void tt_adminpage_dashboard(struct tt_adminbuf *b, const struct tt_adminpage *p)
{
    head(b, "tetherd: devices");
    tt_adminbuf_str(b, "<header><h1>tetherd");
    if (p->node_id) {
        tt_adminbuf_str(b, " &middot; node ");
        tt_adminbuf_html(b, p->node_id);
    }
    tt_adminbuf_str(b, "</h1>");
    if (p->signout)
        tt_adminbuf_str(b, "<form method=\"post\" action=\"/signout\"><button type=\"submit\">"
                           "sign out</button></form>");
    tt_adminbuf_str(b, "</header>\n<main>\n");
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
    tt_adminbuf_str(b, "</p>\n");
    pager(b, p);
    tt_adminbuf_fmt(b,
                    "<div class=\"scroll\"><table "
                    "id=\"devices\">\n<thead><tr><th>name</th><th>label</th><th>state</th>"
                    "%s<th>URLs</th><th>TCP ports</th><th>traffic</th><th>streams</th>"
                    "<th>address</th><th title=\"online: connected since; offline: last "
                    "seen\">since / last seen (UTC)</th></tr></thead>\n<tbody>\n",
                    p->node_id ? "<th>node</th>" : "");
    for (size_t i = 0; i < p->nrows; i++)
        row(b, p, &p->rows[i]);
    tt_adminbuf_str(b, "</tbody></table></div>\n");
    if (!p->nrows)
        tt_adminbuf_str(b, "<p class=\"muted\">No device matches.</p>\n");
    pager(b, p);
    tt_adminbuf_str(b, "</main></body></html>\n");
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
