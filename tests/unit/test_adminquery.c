/* test_adminquery.c - unit tests for the admin listener's pure parts: the device list's query
 * (src/relay/admin/adminquery.c: limit bounds, after, online, q decoded and lower-cased, bad values
 * refused, duplicates refused, empty values as absent), the filter (state, substring of name or
 * label, ASCII case ignored), the cursor, the query written back for links; the dashboard's
 * sign-in sessions (src/relay/admin/adminsession.c: made, found by cookie, hashed, expired, ended,
 * the cap); and the dashboard's HTML (src/relay/admin/adminpage.c: escaping, links, the sign-in
 * form); what of a cut /metrics part is kept (adminbuf.c). Query strings sit against a guard
 * page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "tether_err.h"
#include "relay/admin/adminpage.h"
#include "relay/admin/adminquery.h"
#include "relay/admin/adminsession.h"
#include "support_guard.h"

static int parse(const char *s, struct tt_adminquery *q)
{
    char err[TT_ERRLEN];
    int rc = tt_adminquery_parse((const char *)ut_guarded(s, strlen(s)), strlen(s), q, err);
    if (rc != 0)
        assert_true(err[0] != '\0');
    return rc;
}

/* Every query of bad[0..n) is refused with TETHER_ERR_INVAL (and a message). */
static void all_refused(const char *const *bad, size_t n)
{
    struct tt_adminquery q;
    for (size_t i = 0; i < n; i++)
        if (parse(bad[i], &q) != TETHER_ERR_INVAL)
            fail_msg("query not refused: %s", bad[i]);
}

/* A page is whole (b->ok), and holds (has) or does not hold (lacks) s; a failure names s. */
static void has(const struct tt_adminbuf *b, const char *s)
{
    assert_true(b->ok);
    if (strstr(b->p, s) == NULL)
        fail_msg("the page lacks: %s", s);
}

static void lacks(const struct tt_adminbuf *b, const char *s)
{
    assert_true(b->ok);
    if (strstr(b->p, s) != NULL)
        fail_msg("the page holds: %s", s);
}

static void test_defaults(void **state)
{
    (void)state;
    struct tt_adminquery q;
    assert_int_equal(parse("", &q), 0);
    assert_int_equal(q.limit, TT_ADMINQUERY_LIMIT_MAX);
    assert_false(q.limit_given);
    assert_string_equal(q.after, "");
    assert_int_equal(q.state, TT_ADMINQUERY_ANY);
    assert_int_equal(q.qlen, 0);
    /* empty values are absent; unknown parameters ignored */
    assert_int_equal(parse("limit=&after=&online=&q=&x=1&&y", &q), 0);
    assert_int_equal(q.limit, TT_ADMINQUERY_LIMIT_MAX);
    assert_int_equal(q.state, TT_ADMINQUERY_ANY);
}

static void test_limit(void **state)
{
    (void)state;
    struct tt_adminquery q;
    assert_int_equal(parse("limit=1", &q), 0);
    assert_int_equal(q.limit, 1);
    assert_true(q.limit_given);
    assert_int_equal(parse("limit=1000", &q), 0);
    assert_int_equal(q.limit, 1000);
    assert_int_equal(parse("limit=1001", &q), 0); /* more is the maximum */
    assert_int_equal(q.limit, 1000);
    assert_int_equal(parse("limit=99999999999999999999999999999", &q), 0);
    assert_int_equal(q.limit, 1000);
    assert_int_equal(parse("limit=007", &q), 0);
    assert_int_equal(q.limit, 7);
    static const char *const bad[] = {"limit=0",   "limit=-1",  "limit=+5",   "limit=1.5",
                                      "limit=abc", "limit=5x",  "limit=%201", "limit=1&limit=2",
                                      "limit=000", "limit=1e3", "limit=%00"};
    all_refused(bad, sizeof(bad) / sizeof(bad[0]));
}

static void test_after_online_q(void **state)
{
    (void)state;
    struct tt_adminquery q;
    assert_int_equal(parse("after=dev%2D7&online=true&q=Kitchen+Pi", &q), 0);
    assert_string_equal(q.after, "dev-7");
    assert_int_equal(q.state, TT_ADMINQUERY_ONLINE);
    assert_string_equal(q.q, "kitchen pi");
    assert_int_equal(q.qlen, 10);
    assert_int_equal(parse("online=false", &q), 0);
    assert_int_equal(q.state, TT_ADMINQUERY_OFFLINE);
    assert_int_equal(parse("online=1", &q), 0);
    assert_int_equal(q.state, TT_ADMINQUERY_ONLINE);
    assert_int_equal(parse("online=0", &q), 0);
    assert_int_equal(q.state, TT_ADMINQUERY_OFFLINE);
    static const char *const bad[] = {"online=yes", "online=TRUE", "online=true&online=false",
                                      "q=%zz",      "q=a%0ab",     "q=%",
                                      "after=a%00", "q=a&q=b"};
    all_refused(bad, sizeof(bad) / sizeof(bad[0]));
    /* lengths: a name's 64 bytes fit, 65 do not */
    char s[200];
    snprintf(s, sizeof(s), "after=%064d", 0);
    assert_int_equal(parse(s, &q), 0);
    snprintf(s, sizeof(s), "after=%065d", 0);
    assert_int_equal(parse(s, &q), TETHER_ERR_INVAL);
    snprintf(s, sizeof(s), "q=%064d", 0);
    assert_int_equal(parse(s, &q), 0);
    snprintf(s, sizeof(s), "q=%065d", 0);
    assert_int_equal(parse(s, &q), TETHER_ERR_INVAL);
}

static void test_match(void **state)
{
    (void)state;
    struct tt_adminquery q;
    assert_int_equal(parse("", &q), 0);
    assert_true(tt_adminquery_match(&q, "a", "x", true));
    assert_true(tt_adminquery_match(&q, "a", NULL, false));
    assert_int_equal(parse("online=true", &q), 0);
    assert_true(tt_adminquery_match(&q, "a", "x", true));
    assert_false(tt_adminquery_match(&q, "a", "x", false));
    assert_int_equal(parse("online=false", &q), 0);
    assert_false(tt_adminquery_match(&q, "a", "x", true));
    assert_true(tt_adminquery_match(&q, "a", "x", false));
    assert_int_equal(parse("q=PUMP", &q), 0);
    assert_true(tt_adminquery_match(&q, "Water-Pump-3", "abc", true));
    assert_true(tt_adminquery_match(&q, "x", "xxpumpyy", true));
    assert_false(tt_adminquery_match(&q, "pum", "ump", true));
    assert_false(tt_adminquery_match(&q, "x", NULL, true));
    assert_int_equal(parse("q=pump&online=false", &q), 0);
    assert_false(tt_adminquery_match(&q, "pump", "", true));
    assert_true(tt_adminquery_match(&q, "pump", "", false));
    /* whole name and label, edges */
    assert_int_equal(parse("q=ab", &q), 0);
    assert_true(tt_adminquery_match(&q, "ab", "", true));
    assert_true(tt_adminquery_match(&q, "xab", "", true));
    assert_true(tt_adminquery_match(&q, "abx", "", true));
    assert_false(tt_adminquery_match(&q, "a", "b", true));
}

static void test_after_and_format(void **state)
{
    (void)state;
    struct tt_adminquery q;
    char out[256];
    assert_int_equal(parse("", &q), 0);
    assert_true(tt_adminquery_after(&q, ""));
    assert_true(tt_adminquery_after(&q, "a"));
    assert_int_equal(tt_adminquery_format(&q, NULL, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(parse("after=dev-5", &q), 0);
    assert_false(tt_adminquery_after(&q, "dev-5"));
    assert_false(tt_adminquery_after(&q, "dev-10")); /* byte order */
    assert_true(tt_adminquery_after(&q, "dev-6"));
    assert_true(tt_adminquery_after(&q, "dev-50"));
    assert_int_equal(parse("limit=20&online=false&q=a+b%26c&after=zzz", &q), 0);
    int n = tt_adminquery_format(&q, "dev 9/x", out, sizeof(out));
    assert_string_equal(out, "?limit=20&online=false&q=a%20b%26c&after=dev%209%2Fx");
    assert_int_equal(n, (int)strlen(out));
    /* what format writes parses back to the same query */
    struct tt_adminquery back;
    assert_int_equal(parse(out + 1, &back), 0);
    assert_int_equal(back.limit, 20);
    assert_int_equal(back.state, TT_ADMINQUERY_OFFLINE);
    assert_string_equal(back.q, "a b&c");
    assert_string_equal(back.after, "dev 9/x");
    assert_int_equal(tt_adminquery_format(&q, NULL, out, 10), -1);
    assert_string_equal(out, "");
}

static void test_sessions(void **state)
{
    (void)state;
    struct tt_adminsession_set *s = malloc(sizeof(*s));
    assert_non_null(s);
    tt_adminsession_init(s);
    char v[TT_ADMINSESSION_VALUE_LEN + 1], first[TT_ADMINSESSION_VALUE_LEN + 1];
    assert_int_equal(tt_adminsession_create(s, 1000, 5000, v), 0);
    assert_int_equal(strlen(v), TT_ADMINSESSION_VALUE_LEN);
    memcpy(first, v, sizeof(v));
    assert_true(tt_adminsession_find(s, (const uint8_t *)v, 64, 1000) >= 0);
    assert_true(tt_adminsession_find(s, (const uint8_t *)v, 64, 5999) >= 0);
    assert_int_equal(tt_adminsession_find(s, (const uint8_t *)v, 64, 6000), -1); /* expired */
    assert_int_equal(tt_adminsession_find(s, (const uint8_t *)v, 63, 1000), -1);
    /* stored hashed: the value is nowhere in the set */
    for (size_t i = 0; i + 32 <= sizeof(*s); i++)
        assert_true(memcmp((const uint8_t *)s + i, v, 32) != 0);
    char w[TT_ADMINSESSION_VALUE_LEN + 1];
    memcpy(w, v, sizeof(v));
    w[0] = w[0] == 'a' ? 'b' : 'a';
    assert_int_equal(tt_adminsession_find(s, (const uint8_t *)w, 64, 1000), -1);
    w[0] = 'A'; /* upper case is not a value we give */
    assert_int_equal(tt_adminsession_find(s, (const uint8_t *)w, 64, 1000), -1);
    /* from Cookie headers */
    char hdr[200];
    snprintf(hdr, sizeof(hdr), "a=1; tether_admin=zz; tether_admin=%s; b=2", v);
    const uint8_t *vals[2] = {(const uint8_t *)"x=y", (const uint8_t *)hdr};
    size_t lens[2] = {3, strlen(hdr)}, vlen = 0;
    const uint8_t *got = NULL;
    assert_true(tt_adminsession_from_cookies(s, vals, lens, 2, 1000, &got, &vlen) >= 0);
    assert_int_equal(vlen, 64);
    assert_memory_equal(got, v, 64);
    assert_int_equal(tt_adminsession_from_cookies(s, vals, lens, 1, 1000, &got, &vlen), -1);
    /* past TT_ADMINSESSION_TRIES values of the cookie, the rest are not looked up */
    char many[1200] = "";
    for (int i = 0; i < TT_ADMINSESSION_TRIES; i++)
        strcat(many, "tether_admin=x; ");
    size_t cut = strlen(many);
    snprintf(many + cut, sizeof(many) - cut, "tether_admin=%s", v);
    const uint8_t *mv[1] = {(const uint8_t *)many};
    size_t ml[1] = {strlen(many)};
    assert_int_equal(tt_adminsession_from_cookies(s, mv, ml, 1, 1000, NULL, NULL), -1);
    many[0] = 'X'; /* one fewer value of the cookie: the session is found */
    assert_true(tt_adminsession_from_cookies(s, mv, ml, 1, 1000, NULL, NULL) >= 0);
    /* the cap: the oldest is replaced */
    assert_int_equal(tt_adminsession_count(s, 1000), 1);
    for (int i = 1; i < TT_ADMINSESSION_MAX; i++)
        assert_int_equal(tt_adminsession_create(s, 1000 + i, 100000, v), 0);
    assert_int_equal(s->evicted, 0);
    assert_int_equal(tt_adminsession_count(s, 2000), TT_ADMINSESSION_MAX);
    assert_int_equal(tt_adminsession_create(s, 3000, 100000, v), 0);
    assert_int_equal(s->evicted, 1);
    assert_int_equal(tt_adminsession_find(s, (const uint8_t *)first, 64, 3000), -1);
    assert_true(tt_adminsession_find(s, (const uint8_t *)v, 64, 3000) >= 0);
    /* sign-out */
    tt_adminsession_end(s, (const uint8_t *)v, 64, 3000);
    assert_int_equal(tt_adminsession_find(s, (const uint8_t *)v, 64, 3000), -1);
    assert_int_equal(s->signouts, 1);
    tt_adminsession_free(s);
    free(s);
}

static void test_page(void **state)
{
    (void)state;
    struct tt_adminquery q;
    assert_int_equal(parse("q=%3Cb%3E&after=a", &q), 0);
    json_t *svcs = json_pack("[{s:s, s:s, s:s, s:b}, {s:s, s:s, s:i, s:b}]", "name", "http", "kind",
                             "http", "url", "http://x\".localhost", "private", 0, "name", "ssh",
                             "kind", "tcp", "port", 20001, "private", 1);
    struct tt_adminpage_row rows[1] = {
        {"<script>", "lbl", "", false, "", "2026-01-01T00:00:00Z", "", 2048, 5, 0, svcs}};
    struct tt_adminpage p = {.q = &q,
                             .total = 3,
                             .online = 1,
                             .offline = 2,
                             .rows = rows,
                             .nrows = 1,
                             .next = "z z",
                             .prev = ""};
    struct tt_adminbuf b = {.ok = true};
    tt_adminpage_dashboard(&b, &p);
    assert_true(b.ok);
    lacks(&b, "<script>");
    has(&b, "&lt;script&gt;");
    has(&b, "http://x&quot;.localhost");
    has(&b, "value=\"&lt;b&gt;\"");
    has(&b, "href=\"/?q=%3Cb%3E&amp;after=z%20z\"");
    has(&b, "rel=\"prev\" id=\"prev\" href=\"/?q=%3Cb%3E\"");
    has(&b, "offline");
    has(&b, "ssh <code class=\"copy\">HOST:20001</code>");
    has(&b, "2.0&nbsp;KiB&nbsp;in");
    has(&b, "offline since 2026-01-01 00:00:00 UTC");
    lacks(&b, "<a href=\"http://x"); /* offline: no link to a 503 */
    free(b.p);
    json_decref(svcs);
    struct tt_adminbuf s = {.ok = true};
    tt_adminpage_signin(&s, true, false);
    assert_true(s.ok);
    has(&s, "<form method=\"post\"");
    has(&s, "name=\"token\"");
    has(&s, "not right");
    free(s.p);
    char out[24];
    tt_adminpage_bytes(0, out);
    assert_string_equal(out, "0 B");
    tt_adminpage_bytes(1536, out);
    assert_string_equal(out, "1.5 KiB");
    tt_adminpage_bytes(UINT64_MAX, out);
    assert_string_equal(out, "16.0 EiB");
}

/* The console's pages: relative times, a device's page and the confirmation (escaping, the
 * tether connect line), the grants page (the token shown, escaping), the summary. */
/* What of a cut text is kept (/metrics' parts, adminmetrics.c): its whole lines only. */
static void test_whole_lines(void **state)
{
    (void)state;
    const char *t = "a 1\nbb 2\ncc";
    assert_int_equal(tt_adminbuf_whole_lines(t, strlen(t)), 9);
    assert_int_equal(tt_adminbuf_whole_lines(t, 9), 9);
    assert_int_equal(tt_adminbuf_whole_lines(t, 8), 4);
    assert_int_equal(tt_adminbuf_whole_lines(t, 4), 4);
    assert_int_equal(tt_adminbuf_whole_lines(t, 3), 0);
    assert_int_equal(tt_adminbuf_whole_lines(t, 0), 0);
    assert_int_equal(tt_adminbuf_whole_lines("\n", 1), 1);
}

static void test_console(void **state)
{
    (void)state;
    char out[32];
    tt_adminpage_ago(1000, 2000, out);
    assert_string_equal(out, "just now");
    tt_adminpage_ago(0, 45000, out);
    assert_string_equal(out, "45 s ago");
    tt_adminpage_ago(0, 3 * 60000 + 5000, out);
    assert_string_equal(out, "3 min ago");
    tt_adminpage_ago(600000, 0, out);
    assert_string_equal(out, "in 10 min");
    tt_adminpage_ago(0, 3 * 3600000 + 120000, out);
    assert_string_equal(out, "3 h 2 min ago");
    tt_adminpage_ago(0, 5 * 86400000ll, out);
    assert_string_equal(out, "5 days ago");
    tt_adminpage_ago(INT64_MIN / 2, INT64_MAX / 2, out); /* no overflow */
    json_t *svcs = json_pack("[{s:s, s:s, s:b}, {s:s, s:s, s:s, s:i, s:b}]", "name", "s<h", "kind",
                             "tcp", "private", 1, "name", "db", "kind", "tcp", "host",
                             "relay.example", "port", 20002, "private", 0);
    struct tt_adminpage_row w = {"d\"<x>", "lbl",    "",         false, "",  "2026-01-01T00:00:00Z",
                                 "",       3u << 20, 5ull << 30, 7,     svcs};
    struct tt_adminpage_ctx c = {.now_ms = 1767225600000ll + 60000, /* 2026-01-01 00:01 */
                                 .grace_ms = 600000,
                                 .server = "ws://relay.example:8080",
                                 .private_mode = true,
                                 .signout = true};
    struct tt_adminbuf b = {.ok = true};
    tt_adminpage_device(&b, &c, &w);
    assert_true(b.ok);
    lacks(&b, "<x>");
    lacks(&b, "s<h");
    has(&b, "tether connect --server ws://relay.example:8080 --grant "
            "GRANT_TOKEN d&quot;&lt;x&gt;/s&lt;h --listen 127.0.0.1:10022");
    has(&b, "relay.example:20002</code>");
    has(&b, "tether connect --server ws://relay.example:8080 "
            "d&quot;&lt;x&gt;/db --listen 127.0.0.1:20002");
    has(&b, "offline since <time datetime=\"2026-01-01T00:00:00Z\" "
            "title=\"2026-01-01 00:00:00 UTC\">1 min ago</time>");
    has(&b, "label kept until <time datetime=\"2026-01-01T00:10:00Z\" "
            "title=\"2026-01-01 00:10:00 UTC\">in 9 min</time>");
    has(&b, "3.0&nbsp;MiB&nbsp;in");
    has(&b, "5.0&nbsp;GiB&nbsp;out");
    has(&b, "action=\"/signout\"");
    has(&b, "action=\"/device/delete\"");
    free(b.p);
    json_decref(svcs);
    struct tt_adminbuf d = {.ok = true};
    tt_adminpage_confirm_delete(&d, &c, "a b&<c>");
    assert_true(d.ok);
    lacks(&d, "<c>");
    has(&d, "<form method=\"post\" action=\"/device/delete\">");
    has(&d, "value=\"a b&amp;&lt;c&gt;\"");
    has(&d, "href=\"/device?name=a%20b%26%3Cc%3E\"");
    free(d.p);
    const char *pats[] = {"dev/<ssh>", "x/*"};
    struct tt_adminpage_grant g[1] = {
        {"0123", "al<ice", pats, 2, 1767225600000ll, 1767225600000ll + 900000}};
    struct tt_adminbuf gb = {.ok = true};
    tt_adminpage_grants(&gb, &c, g, 1, "ttg_TOKEN", "0123", 1767225600000ll + 900000, NULL);
    assert_true(gb.ok);
    lacks(&gb, "<ssh>");
    lacks(&gb, "al<ice");
    has(&gb, "<code class=\"copy\" id=\"token\">ttg_TOKEN</code>");
    has(&gb, "name=\"id\" value=\"0123\"");
    has(&gb, "Live grants (1)");
    free(gb.p);
    struct tt_adminbuf ge = {.ok = true};
    tt_adminpage_grants(&ge, &c, NULL, 0, NULL, NULL, 0, "ttl: <bad>");
    assert_true(ge.ok);
    lacks(&ge, "ttg_");
    has(&ge, "ttl: &lt;bad&gt;");
    has(&ge, "No live grant.");
    free(ge.p);
    /* the summary, with a cluster's nodes */
    struct tt_adminquery q;
    assert_int_equal(parse("", &q), 0);
    struct tt_adminpage_node nodes[2] = {{"n<1", 3, false, true}, {"n2", 4, true, false}};
    struct tt_adminpage_summary sum = {.version = "9.9.9",
                                       .uptime_s = 90061,
                                       .listeners = "<code>L</code>",
                                       .bytes_in = 1 << 20,
                                       .draining = true,
                                       .draining_since_ms = c.now_ms - 120000,
                                       .nodes = nodes,
                                       .nnodes = 2};
    struct tt_adminpage p = {
        .q = &q, .node_id = "n<1", .live_nodes = 2, .sum = &sum, .ctx = &c, .refresh = 15};
    struct tt_adminbuf sb = {.ok = true};
    tt_adminpage_dashboard(&sb, &p);
    assert_true(sb.ok);
    has(&sb, "<meta http-equiv=\"refresh\" content=\"15\">");
    has(&sb, "tetherd 9.9.9");
    has(&sb, "1 days 1 h");
    has(&sb, "n&lt;1: 3 online (this node)");
    has(&sb, "n2: 4 online <span class=\"drain\">draining</span>");
    has(&sb, "draining</span> since <time");
    free(sb.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_after_online_q),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_after_and_format),
        cmocka_unit_test(test_sessions),
        cmocka_unit_test(test_page),
        cmocka_unit_test(test_console),
        cmocka_unit_test(test_whole_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
