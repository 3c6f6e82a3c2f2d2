/* test_proxy.c - unit tests for src/agent/proxy.c (proxy URLs, the no-proxy list, the choice of
 * a proxy from the configuration and the environment as curl makes it, the CONNECT request's
 * exact bytes, the answer's parsing: whole, byte by byte and against a guard page) and for the
 * proxy filter of src/agent/dial.c: whole dials on a real loop through a small fake proxy
 * written here (tunnel, redirect through the proxy, 407 with and without credentials, 403,
 * silence, close, garbage, no proxy listening, NO_PROXY bypass). Every loop test closes its
 * handles and checks uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>
#include <uv.h>

#include "tether.h"
#include "agent/dial.h"
#include "agent/proxy.h"
#include "common/wshs.h"

#include "support_loop.h"
#include "support_guard.h"

/* ---- proxy URLs ---------------------------------------------------------------------------- */

static void test_parse(void **state)
{
    struct tt_proxy p;
    char err[TT_ERRLEN];
    (void)state;

    assert_int_equal(tt_proxy_parse("http://u%3Ax:p%40ss@proxy.lan:3128", &p, err), 0);
    assert_string_equal(p.url.host, "proxy.lan");
    assert_int_equal(p.url.port, 3128);
    assert_string_equal(p.url.user, "u:x");
    assert_string_equal(p.url.pass, "p@ss");
    assert_true(p.auth);
    assert_string_equal(p.display, "http://proxy.lan:3128");

    /* No scheme: http; no port: curl's 1080; a path is ignored. */
    assert_int_equal(tt_proxy_parse("proxy.lan", &p, err), 0);
    assert_int_equal(p.url.port, TT_PROXY_DEFAULT_PORT);
    assert_false(p.auth);
    assert_string_equal(p.display, "http://proxy.lan:1080");
    assert_int_equal(tt_proxy_parse("HTTP://[::1]:8080/some/path", &p, err), 0);
    assert_string_equal(p.url.host, "::1");
    assert_string_equal(p.display, "http://[::1]:8080");
    assert_int_equal(tt_proxy_parse("10.0.0.1:3128", &p, err), 0);
    assert_string_equal(p.display, "http://10.0.0.1:3128");

    /* "user@" sends an empty password; "@" alone sends nothing. */
    assert_int_equal(tt_proxy_parse("http://user@p:1", &p, err), 0);
    assert_true(p.auth);
    assert_string_equal(p.url.user, "user");
    assert_string_equal(p.url.pass, "");
    assert_int_equal(tt_proxy_parse("http://@p:1", &p, err), 0);
    assert_false(p.auth);

    /* Refusals name the problem in one line and never the password. */
    assert_int_equal(tt_proxy_parse("https://u:hunter2@p:443", &p, err), TETHER_ERR_CONFIG);
    assert_non_null(strstr(err, "HTTPS proxies are not supported"));
    assert_null(strstr(err, "hunter2"));
    assert_int_equal(tt_proxy_parse("socks5h://u:hunter2@p", &p, err), TETHER_ERR_CONFIG);
    assert_non_null(strstr(err, "SOCKS proxies are not supported"));
    assert_null(strstr(err, "hunter2"));
    assert_int_equal(tt_proxy_parse("ftp://p:21", &p, err), TETHER_ERR_CONFIG);
    assert_non_null(strstr(err, "only http://"));
    assert_int_equal(tt_proxy_parse("http://u:hunter2@:3128", &p, err), TETHER_ERR_CONFIG);
    assert_non_null(strstr(err, "bad proxy URL"));
    assert_non_null(strstr(err, "***@"));
    assert_null(strstr(err, "hunter2"));
    assert_int_equal(tt_proxy_parse("http://u:hunter2@p:99999", &p, err), TETHER_ERR_CONFIG);
    assert_null(strstr(err, "hunter2"));
    /* A password typed without percent-encoding is hidden all the same. */
    assert_int_equal(tt_proxy_parse("http://u:pa/ss?w#rd@p:3128", &p, err), TETHER_ERR_CONFIG);
    assert_null(strstr(err, "ss?w#rd"));
    assert_int_equal(tt_proxy_parse("", &p, err), TETHER_ERR_CONFIG);
    assert_null(strchr(err, '\n'));
}

/* ---- the no-proxy list ----------------------------------------------------------------------- */

static void test_no_proxy(void **state)
{
    static const struct {
        const char *host, *list;
        bool match;
    } cases[] = {
        {"example.com", "example.com", true},
        {"www.example.com", "example.com", true},
        {"www.example.com", ".example.com", true},
        {"example.com", ".example.com", true},
        {"notexample.com", "example.com", false},
        {"example.com", "www.example.com", false},
        {"WWW.Example.COM", "example.com", true},
        {"example.com.", "example.com", true},
        {"example.com", "example.com.", true},
        {"relay", "*", true},
        {"127.0.0.1", "*", true},
        {"relay", "*,other", false}, /* "*" only counts alone, as in curl */
        {"relay", "other,relay", true},
        {"relay", " other ,  relay ", true},
        {"relay", ",,other,,relay,", true},
        {"relay", "other relay", false}, /* curl stops at a blank not followed by a comma */
        {"relay", "relay:8080", false},  /* entries carry no port */
        {"relay", "", false},
        {"127.0.0.1", "127.0.0.1", true},
        {"127.0.0.1", "localhost", false},
        {"localhost", "127.0.0.1", false},
        {"127.0.0.1", "127.0.0.0/8", true},
        {"10.1.2.3", "127.0.0.0/8", false},
        {"10.1.2.3", "10.0.0.0/8", true},
        {"10.1.2.3", "10.1.2.0/23", true},
        {"10.1.4.3", "10.1.2.0/23", false},
        {"127.0.0.1", "127.0.0.1/33", false},
        {"127.0.0.1", ".0.0.1", false}, /* an address is no domain name */
        {"::1", "::1", true},
        {"::1", "[::1]", true},
        {"::2", "::1", false},
        {"fd00::5", "fd00::/8", true},
        {"fe80::1", "fd00::/8", false},
        {"fe80::1", "fe80::/10", true},
        {"", "*", false},
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool got = tt_proxy_no_proxy_match(cases[i].host, cases[i].list);
        if (got != cases[i].match)
            fail_msg("no_proxy '%s' host '%s': got %d, want %d", cases[i].list, cases[i].host, got,
                     cases[i].match);
    }
    assert_false(tt_proxy_no_proxy_match("relay", NULL));
    assert_false(tt_proxy_no_proxy_match(NULL, "*"));
}

/* ---- the choice --------------------------------------------------------------------------------
 */

/* Sets the "NAME=value" pairs of kv (NULL-terminated) in a fresh env. */
static void env_of(struct tt_proxy_env *env, const char *const *kv)
{
    memset(env, 0, sizeof *env);
    for (; *kv != NULL; kv++) {
        const char *eq = strchr(*kv, '=');
        bool found = false;
        assert_non_null(eq);
        for (int i = 0; i < TT_PV_COUNT; i++) {
            if (strlen(tt_proxy_var_names[i]) == (size_t)(eq - *kv) &&
                strncmp(tt_proxy_var_names[i], *kv, (size_t)(eq - *kv)) == 0) {
                assert_int_equal(tt_proxy_env_set(env, (enum tt_proxy_var)i, eq + 1), 0);
                found = true;
            }
        }
        assert_true(found);
    }
}

/* The proxy chosen for scheme://host as "source host:port", or "direct". */
static const char *choose(const char *proxy, const char *no_proxy, const struct tt_proxy_env *env,
                          const char *scheme, const char *host)
{
    static char out[TT_ERRLEN + TT_HOSTLEN + 32];
    struct tt_proxy_conf c = {proxy, no_proxy, env};
    struct tt_proxy p;
    char err[TT_ERRLEN];
    int rc = tt_proxy_select(&c, scheme, host, &p, err);

    if (rc < 0)
        snprintf(out, sizeof out, "error: %s", err);
    else if (rc == 0)
        snprintf(out, sizeof out, "direct");
    else
        snprintf(out, sizeof out, "%s %s:%u", p.source, p.url.host, (unsigned)p.url.port);
    return out;
}

static void test_select_env(void **state)
{
    /* With the variables env set and nothing configured, scheme://host goes to want (a NULL
     * scheme ends an env's choices). */
    static const struct {
        const char *env[5];
        struct {
            const char *scheme, *host, *want;
        } choice[2];
    } cases[] = {
        /* ws:// reads http_proxy, then HTTP_PROXY; wss:// reads https_proxy, then HTTPS_PROXY. */
        {{"http_proxy=h:1", "HTTPS_PROXY=S:2"},
         {{"ws", "relay", "http_proxy h:1"}, {"wss", "relay", "HTTPS_PROXY S:2"}}},
        {{"HTTP_PROXY=H:1", "https_proxy=s:2", "HTTPS_PROXY=S:2"},
         {{"ws", "relay", "HTTP_PROXY H:1"}, {"wss", "relay", "https_proxy s:2"}}},
        {{"https_proxy=s:2"}, {{"ws", "relay", "direct"}}},
        {{"http_proxy=h:1", "HTTP_PROXY=H:1"}, {{"ws", "relay", "http_proxy h:1"}}},
        /* ws_proxy/WS_PROXY and wss_proxy/WSS_PROXY come first (curl's WebSocket schemes). */
        {{"WS_PROXY=W:3", "http_proxy=h:1", "wss_proxy=x:4", "https_proxy=s:2"},
         {{"ws", "relay", "WS_PROXY W:3"}, {"wss", "relay", "wss_proxy x:4"}}},
        /* all_proxy, then ALL_PROXY, when the scheme has none. */
        {{"ALL_PROXY=A:5", "all_proxy=a:5", "https_proxy=s:2"},
         {{"ws", "relay", "all_proxy a:5"}, {"wss", "relay", "https_proxy s:2"}}},
        {{"ALL_PROXY=A:5"}, {{"wss", "relay", "ALL_PROXY A:5"}}},
        /* no_proxy, else NO_PROXY. */
        {{"http_proxy=h:1", "NO_PROXY=relay"},
         {{"ws", "relay", "direct"}, {"ws", "other", "http_proxy h:1"}}},
        {{"http_proxy=h:1", "no_proxy=other", "NO_PROXY=relay"},
         {{"ws", "relay", "http_proxy h:1"}, {"ws", "other", "direct"}}},
    };
    struct tt_proxy_env e;
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        env_of(&e, cases[i].env);
        for (size_t j = 0; j < 2 && cases[i].choice[j].scheme != NULL; j++)
            assert_string_equal(
                choose(NULL, NULL, &e, cases[i].choice[j].scheme, cases[i].choice[j].host),
                cases[i].choice[j].want);
        tt_proxy_env_free(&e);
    }

    /* Empty variables count as unset (curl's curl_getenv). */
    env_of(&e, (const char *const[]){"http_proxy=", "all_proxy=a:5", NULL});
    assert_null(e.value[TT_PV_HTTP_PROXY]);
    assert_string_equal(choose(NULL, NULL, &e, "ws", "relay"), "all_proxy a:5");
    tt_proxy_env_free(&e);

    /* A bad variable is an error naming it, never showing its password. */
    env_of(&e,
           (const char *const[]){"https_proxy=https://u:hunter2@p", "http_proxy=socks5://p", NULL});
    assert_non_null(strstr(choose(NULL, NULL, &e, "wss", "relay"), "error: https_proxy: HTTPS"));
    assert_null(strstr(choose(NULL, NULL, &e, "wss", "relay"), "hunter2"));
    assert_non_null(strstr(choose(NULL, NULL, &e, "ws", "relay"), "error: http_proxy: SOCKS"));
    tt_proxy_env_free(&e);

    assert_string_equal(choose(NULL, NULL, NULL, "ws", "relay"), "direct");
    {
        char err[TT_ERRLEN];
        struct tt_proxy p;
        assert_int_equal(tt_proxy_select(NULL, "ws", "relay", &p, err), 0);
    }
}

static void test_select_configured(void **state)
{
    struct tt_proxy_env e;
    (void)state;

    env_of(&e, (const char *const[]){"http_proxy=h:1", "https_proxy=s:2", "all_proxy=a:5", NULL});
    /* --proxy wins over the variables, for both schemes. */
    assert_string_equal(choose("http://c:9", NULL, &e, "ws", "relay"), "--proxy c:9");
    assert_string_equal(choose("c:9", NULL, &e, "wss", "relay"), "--proxy c:9");
    /* --proxy "": direct, whatever the environment says. */
    assert_string_equal(choose("", NULL, &e, "ws", "relay"), "direct");
    assert_string_equal(choose("", NULL, &e, "wss", "relay"), "direct");
    /* --noproxy applies to both kinds. */
    assert_string_equal(choose("c:9", "relay", &e, "ws", "relay"), "direct");
    assert_string_equal(choose(NULL, ".lan", &e, "ws", "relay.lan"), "direct");
    assert_string_equal(choose(NULL, ".lan", &e, "ws", "relay"), "http_proxy h:1");
    tt_proxy_env_free(&e);

    /* NO_PROXY applies to --proxy too, as curl applies it to -x; --noproxy "" lifts it. */
    env_of(&e, (const char *const[]){"NO_PROXY=relay,127.0.0.1", NULL});
    assert_string_equal(choose("c:9", NULL, &e, "ws", "relay"), "direct");
    assert_string_equal(choose("c:9", NULL, &e, "ws", "127.0.0.1"), "direct");
    assert_string_equal(choose("c:9", NULL, &e, "ws", "elsewhere"), "--proxy c:9");
    assert_string_equal(choose("c:9", "", &e, "ws", "relay"), "--proxy c:9");
    tt_proxy_env_free(&e);
}

/* ---- CONNECT -----------------------------------------------------------------------------------
 */

static void test_connect_request(void **state)
{
    struct tt_proxy p;
    char err[TT_ERRLEN], out[TT_PROXY_REQUEST_MAX], want[512];
    int n;
    (void)state;

    assert_int_equal(tt_proxy_parse("http://p:3128", &p, err), 0);
    n = tt_proxy_connect_request(out, sizeof out, &p, "relay.example.com", 443);
    snprintf(want, sizeof want,
             "CONNECT relay.example.com:443 HTTP/1.1\r\nHost: relay.example.com:443\r\n"
             "User-Agent: tether/%s\r\n\r\n",
             TETHER_VERSION);
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(out, want);

    /* RFC 7617's example credentials, percent-decoded from the URL first. */
    assert_int_equal(tt_proxy_parse("http://Aladdin:open%20sesame@p:3128", &p, err), 0);
    n = tt_proxy_connect_request(out, sizeof out, &p, "::1", 8080);
    snprintf(want, sizeof want,
             "CONNECT [::1]:8080 HTTP/1.1\r\nHost: [::1]:8080\r\n"
             "Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"
             "User-Agent: tether/%s\r\n\r\n",
             TETHER_VERSION);
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(out, want);

    /* Too small, by any amount: -1 and no credentials left behind. */
    for (size_t len = 0; len <= strlen(want); len++) {
        memset(out, 'x', sizeof out);
        assert_int_equal(tt_proxy_connect_request(out, len, &p, "::1", 8080), -1);
        assert_null(memmem(out, sizeof out, "QWxh", 4));
    }

    /* Longest credentials and host still fit the request buffer. */
    memset(&p, 0, sizeof p);
    memset(p.url.user, 'u', sizeof p.url.user - 1);
    memset(p.url.pass, 'p', sizeof p.url.pass - 1);
    p.auth = true;
    {
        char host[TT_HOSTLEN];
        memset(host, 'h', sizeof host - 1);
        host[sizeof host - 1] = '\0';
        assert_true(tt_proxy_connect_request(out, sizeof out, &p, host, 65535) > 0);
    }
}

/* ---- the answer ---------------------------------------------------------------------------------
 */

/* Parses in[0..len) placed right before a PROT_NONE page, so that any over-read crashes. */
static int parse_guarded(const char *in, size_t len, struct tt_proxy_response *r)
{
    return tt_proxy_parse_response(ut_guarded(in, len), len, r);
}

static void test_parse_response(void **state)
{
    static const char ok[] = "HTTP/1.1 200 Connection established\r\nProxy-Agent: t\r\n\r\nTLS";
    static const char bare[] = "HTTP/1.0 200 OK\n\n";
    static const char denied[] = "HTTP/1.1 407 Proxy Authentication Required\r\n"
                                 "Proxy-Authenticate: Basic realm=\"x\"\r\n"
                                 "Content-Length: 5\r\n\r\nhello";
    struct tt_proxy_response r;
    size_t head = strlen(ok) - 3;
    (void)state;

    assert_int_equal(parse_guarded(ok, strlen(ok), &r), 1);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.reason, "Connection established");
    assert_int_equal(r.head_len, head);
    /* Every cut before the blank line asks for more; from there on, the same answer. */
    for (size_t i = 0; i < strlen(ok); i++) {
        int rc = parse_guarded(ok, i, &r);
        assert_int_equal(rc, i < head ? 0 : 1);
        if (rc == 1)
            assert_int_equal(r.head_len, head);
    }
    assert_int_equal(parse_guarded(bare, strlen(bare), &r), 1);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.head_len, strlen(bare));
    assert_int_equal(parse_guarded(denied, strlen(denied), &r), 1);
    assert_int_equal(r.status, 407);
    assert_string_equal(r.reason, "Proxy Authentication Required");
    assert_int_equal(r.head_len, strlen(denied) - 5);

    /* Not HTTP, or a bad status line. */
    assert_int_equal(parse_guarded("SSH-2.0-OpenSSH\r\n\r\n", 19, &r), -1);
    assert_int_equal(parse_guarded("HTTP/1.1 2000 OK\r\n\r\n", 20, &r), -1);
    assert_int_equal(parse_guarded("HTTP/1.1 2 OK\r\n\r\n", 17, &r), -1); /* found by fuzzing */
    assert_int_equal(parse_guarded("HTTP/1.1 099 OK\r\n\r\n", 19, &r), -1);
    assert_int_equal(parse_guarded("HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", 31, &r), -1);

    /* Reason phrases are cut and kept printable. */
    {
        char in[256];
        int n = snprintf(in, sizeof in, "HTTP/1.1 403 %0100d\r\n\r\n", 0);
        assert_int_equal(parse_guarded(in, (size_t)n, &r), 1);
        assert_int_equal(strlen(r.reason), TT_PROXY_REASON_MAX);
        n = snprintf(in, sizeof in, "HTTP/1.1 403 Go\x7f away\r\n\r\n");
        if (parse_guarded(in, (size_t)n, &r) == 1)
            assert_string_equal(r.reason, "Go? away");
    }

    /* A head that never ends is refused once it reaches the limit, not before. */
    {
        size_t len = TT_PROXY_MAX_HEAD + 100;
        char *big = malloc(len);
        size_t pre = strlen("HTTP/1.1 200 OK\r\nX: ");
        assert_non_null(big);
        memcpy(big, "HTTP/1.1 200 OK\r\nX: ", pre);
        memset(big + pre, 'a', len - pre);
        assert_int_equal(parse_guarded(big, TT_PROXY_MAX_HEAD - 1, &r), 0);
        assert_int_equal(parse_guarded(big, TT_PROXY_MAX_HEAD, &r), -1);
        assert_int_equal(parse_guarded(big, len, &r), -1);
        free(big);
    }
}

/* ---- whole dials through a fake proxy ------------------------------------------------------ */

enum px_mode {
    PX_TUNNEL,   /* 200, then a WebSocket server inside the tunnel */
    PX_REDIRECT, /* 200, then 307 to another relay; the next CONNECT gets PX_TUNNEL's answer */
    PX_407,
    PX_403,
    PX_SILENT,
    PX_CLOSE,
    PX_GARBAGE,
    PX_DIRECT, /* not a proxy: a WebSocket server (the relay, reached directly) */
};

struct px {
    uv_tcp_t listener;
    enum px_mode mode;
    int port;
    int conns;
    char connect_line[4][128]; /* each CONNECT's request line */
    char auth[4][128];         /* each CONNECT's Proxy-Authorization value, "" if none */
    int nconnect;
};

struct px_conn {
    uv_tcp_t tcp;
    struct px *px;
    int index;
    bool tunnel; /* past the CONNECT: the next head is the WebSocket request */
    char buf[8192];
    size_t len;
};

struct px_write {
    uv_write_t req;
    struct px_conn *c;
    bool close_after;
    char data[1024];
};

static void px_closed(uv_handle_t *h)
{
    free(h->data);
}

static void px_close(struct px_conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, px_closed);
}

static void px_written(uv_write_t *req, int status)
{
    struct px_write *w = (struct px_write *)req;
    (void)status;
    if (w->close_after)
        px_close(w->c);
    free(w);
}

static void px_send(struct px_conn *c, bool close_after, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void px_send(struct px_conn *c, bool close_after, const char *fmt, ...)
{
    struct px_write *w = calloc(1, sizeof *w);
    va_list ap;
    uv_buf_t b;
    int n;

    assert_non_null(w);
    va_start(ap, fmt);
    n = vsnprintf(w->data, sizeof w->data, fmt, ap);
    va_end(ap);
    w->c = c;
    w->close_after = close_after;
    b = uv_buf_init(w->data, (unsigned)n);
    assert_int_equal(uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, px_written), 0);
}

/* Copies the value of header name (with ": ") out of head into out, "" if absent. */
static void header(const char *head, const char *name, char *out, size_t outlen)
{
    const char *h = strstr(head, name);
    size_t n;

    out[0] = '\0';
    if (h == NULL)
        return;
    h += strlen(name);
    n = strcspn(h, "\r\n");
    snprintf(out, outlen, "%.*s", (int)n, h);
}

static void px_answer_ws(struct px_conn *c, const char *head)
{
    char key[64], accept[TT_WS_ACCEPTLEN + 1];

    if (c->px->mode == PX_REDIRECT && c->index == 0) {
        px_send(c, true,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: ws://127.0.0.1:9/moved\r\n"
                "Content-Length: 0\r\n\r\n");
        return;
    }
    header(head, "Sec-WebSocket-Key: ", key, sizeof key);
    assert_int_equal(tt_wshs_accept(key, strlen(key), accept), 0);
    px_send(c, false,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: %s\r\n\r\nafter",
            accept);
}

static void px_answer_connect(struct px_conn *c, const char *head)
{
    struct px *px = c->px;
    int i = px->nconnect < 4 ? px->nconnect++ : 3;

    snprintf(px->connect_line[i], sizeof px->connect_line[i], "%.*s", (int)strcspn(head, "\r\n"),
             head);
    header(head, "Proxy-Authorization: ", px->auth[i], sizeof px->auth[i]);
    switch (px->mode) {
    case PX_TUNNEL:
    case PX_REDIRECT:
        c->tunnel = true;
        px_send(c, false, "HTTP/1.1 200 Connection established\r\n\r\n");
        break;
    case PX_407:
        px_send(c, true,
                "HTTP/1.1 407 Proxy Authentication Required\r\n"
                "Proxy-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\n\r\n");
        break;
    case PX_403:
        px_send(c, true, "HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope");
        break;
    case PX_SILENT:
        break;
    case PX_CLOSE:
        px_close(c);
        break;
    case PX_GARBAGE:
        px_send(c, true, "220 smtp.example.com ESMTP\r\n\r\n");
        break;
    case PX_DIRECT:
        break;
    }
}

static void px_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    struct px_conn *c = h->data;
    (void)sz;
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - 1 - c->len));
}

static void px_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct px_conn *c = s->data;
    char *end;
    (void)b;

    if (n < 0) {
        px_close(c);
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    while (!uv_is_closing((uv_handle_t *)&c->tcp) && (end = strstr(c->buf, "\r\n\r\n")) != NULL) {
        size_t used = (size_t)(end + 4 - c->buf);
        char head[sizeof c->buf];

        memcpy(head, c->buf, used);
        head[used] = '\0';
        memmove(c->buf, c->buf + used, c->len - used + 1);
        c->len -= used;
        if (c->tunnel || c->px->mode == PX_DIRECT)
            px_answer_ws(c, head);
        else
            px_answer_connect(c, head);
    }
}

static void px_accept(uv_stream_t *l, int status)
{
    struct px *px = l->data;
    struct px_conn *c = calloc(1, sizeof *c);

    assert_int_equal(status, 0);
    assert_non_null(c);
    c->px = px;
    c->index = px->conns++;
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = c;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
    uv_read_start((uv_stream_t *)&c->tcp, px_alloc, px_read);
}

static void px_start(uv_loop_t *loop, struct px *px, enum px_mode mode)
{
    memset(px, 0, sizeof *px);
    px->mode = mode;
    px->port = ut_listen(loop, &px->listener, px, px_accept);
}

struct outcome {
    bool called;
    int err;
    char message[TT_ERRLEN];
    char url[256];
    char pre[64];
    struct px *px;
};

static void on_dialed(struct tt_dial *d, const struct tt_dial_result *r, void *ud)
{
    struct outcome *o = ud;
    (void)d;

    o->called = true;
    o->err = r->err;
    snprintf(o->message, sizeof o->message, "%s", r->message);
    snprintf(o->url, sizeof o->url, "%s", r->url);
    if (r->err == 0) {
        snprintf(o->pre, sizeof o->pre, "%.*s", (int)r->prelen, (const char *)r->pre);
        tt_conn_close(r->conn, NULL);
    }
    uv_close((uv_handle_t *)&o->px->listener, NULL);
}

/* Dials url with proxy settings conf (timeout_ms 0: the default) against a fake proxy in mode;
 * the fake's port replaces "PORT" in url and in conf's proxy. */
static void dial_through(enum px_mode mode, const char *url_fmt, const char *proxy_fmt,
                         const char *no_proxy, uint32_t timeout_ms, struct px *px,
                         struct outcome *o)
{
    uv_loop_t loop;
    struct tt_dial *d;
    struct tt_dial_options opt;
    struct tt_proxy_conf conf;
    char url[256], proxy[256], err[TT_ERRLEN];

    assert_int_equal(uv_loop_init(&loop), 0);
    px_start(&loop, px, mode);
    snprintf(url, sizeof url, url_fmt, px->port);
    snprintf(proxy, sizeof proxy, proxy_fmt, px->port);
    memset(&opt, 0, sizeof opt);
    memset(&conf, 0, sizeof conf);
    memset(o, 0, sizeof *o);
    o->px = px;
    conf.proxy = proxy;
    conf.no_proxy = no_proxy;
    opt.proxy = &conf;
    opt.timeout_ms = timeout_ms;
    assert_int_equal(tt_dial_start(&d, &loop, url, &opt, on_dialed, o, err), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(o->called);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_dial_tunnel(void **state)
{
    struct px px;
    struct outcome o;
    (void)state;

    dial_through(PX_TUNNEL, "ws://relay.invalid:8080/t", "http://127.0.0.1:%d", NULL, 0, &px, &o);
    assert_int_equal(o.err, 0);
    assert_string_equal(o.pre, "after"); /* bytes past the 101 are handed over */
    assert_int_equal(px.nconnect, 1);
    /* The relay's name goes to the proxy unresolved. */
    assert_string_equal(px.connect_line[0], "CONNECT relay.invalid:8080 HTTP/1.1");
    assert_string_equal(px.auth[0], "");

    dial_through(PX_TUNNEL, "ws://127.0.0.1:81", "http://al%%69ce:s3cret@127.0.0.1:%d", NULL, 0,
                 &px, &o);
    assert_int_equal(o.err, 0);
    assert_string_equal(px.connect_line[0], "CONNECT 127.0.0.1:81 HTTP/1.1");
    assert_string_equal(px.auth[0], "Basic YWxpY2U6czNjcmV0"); /* alice:s3cret */
}

static void test_dial_redirect_reconnects(void **state)
{
    struct px px;
    struct outcome o;
    (void)state;

    dial_through(PX_REDIRECT, "ws://first.invalid:8080/", "127.0.0.1:%d", NULL, 0, &px, &o);
    assert_int_equal(o.err, 0);
    assert_string_equal(o.url, "ws://127.0.0.1:9/moved");
    assert_int_equal(px.nconnect, 2); /* a new CONNECT for the new target */
    assert_string_equal(px.connect_line[0], "CONNECT first.invalid:8080 HTTP/1.1");
    assert_string_equal(px.connect_line[1], "CONNECT 127.0.0.1:9 HTTP/1.1");
}

static void test_dial_refusals(void **state)
{
    /* Each refusal: the proxy's mode and URL (its port for %d), the timeout (0: the default),
     * then the error and a piece of its message, which never shows the password. */
    static const struct {
        enum px_mode mode;
        const char *proxy;
        uint32_t timeout_ms;
        int err;
        const char *message;
    } cases[] = {
        {PX_407, "http://127.0.0.1:%d", 0, TETHER_ERR_AUTH, "proxy requires authentication"},
        {PX_407, "http://u:hunter2@127.0.0.1:%d", 0, TETHER_ERR_AUTH,
         "proxy authentication failed"},
        {PX_403, "http://u:hunter2@127.0.0.1:%d", 0, TETHER_ERR_REFUSED,
         "proxy refused CONNECT: 403 Forbidden"},
        {PX_GARBAGE, "http://127.0.0.1:%d", 0, TETHER_ERR_HTTP, "bad answer from proxy"},
        {PX_CLOSE, "http://127.0.0.1:%d", 0, TETHER_ERR_CLOSED, "before answering CONNECT"},
        {PX_SILENT, "http://127.0.0.1:%d", 300, TETHER_ERR_TIMEOUT, "timed out waiting for proxy"},
        /* Nothing listens on port 1: the message names the proxy and where it came from. */
        {PX_TUNNEL, "http://127.0.0.1:1", 0, TETHER_ERR_REFUSED,
         "cannot connect to proxy http://127.0.0.1:1 (from --proxy)"},
    };
    struct px px;
    struct outcome o;
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dial_through(cases[i].mode, "ws://relay.invalid:80/", cases[i].proxy, NULL,
                     cases[i].timeout_ms, &px, &o);
        assert_int_equal(o.err, cases[i].err);
        assert_non_null(strstr(o.message, cases[i].message));
        assert_null(strstr(o.message, "hunter2"));
    }
}

static void test_dial_no_proxy_bypass(void **state)
{
    struct px px;
    struct outcome o;
    (void)state;

    /* The proxy (port 1) is dead, but the relay is in the no-proxy list: direct. */
    dial_through(PX_DIRECT, "ws://127.0.0.1:%d/", "http://127.0.0.1:1", "localhost,127.0.0.0/8", 0,
                 &px, &o);
    assert_int_equal(o.err, 0);
    assert_int_equal(px.nconnect, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),           cmocka_unit_test(test_no_proxy),
        cmocka_unit_test(test_select_env),      cmocka_unit_test(test_select_configured),
        cmocka_unit_test(test_connect_request), cmocka_unit_test(test_parse_response),
        cmocka_unit_test(test_dial_tunnel),     cmocka_unit_test(test_dial_redirect_reconnects),
        cmocka_unit_test(test_dial_refusals),   cmocka_unit_test(test_dial_no_proxy_bypass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
