/* fuzz_proxy.c - libFuzzer target for src/agent/proxy.c, whose input comes from the network (a
 * proxy's answer to CONNECT) and from the environment (proxy URLs, no-proxy lists). The first
 * byte picks: 0 the answer parser (the rest as bytes: a complete head lies inside the input and
 * has a 3-digit status and a printable, terminated reason); 1 a proxy URL (parsed fields
 * terminated, port non-zero, the message never holding the password); 2 "HOST\nLIST" for the
 * no-proxy match and a whole choice through the environment. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void terminated(const char *s, size_t cap)
{
    if (memchr(s, '\0', cap) == NULL)
        abort();
}

static bool alnum(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

/* Occurrences of needle (not empty) in hay[0..n), overlapping ones included. */
static size_t count(const char *hay, size_t n, const char *needle)
{
    size_t k = 0, m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            k++;
    return k;
}

static void answer(const uint8_t *in, size_t len)
{
    struct tt_proxy_response r;
    int rc = tt_proxy_parse_response(in, len, &r);

    if (rc == 1) {
        if (r.head_len == 0 || r.head_len > len || r.head_len > TT_PROXY_MAX_HEAD)
            abort();
        if (r.status < 100 || r.status > 999)
            abort();
        terminated(r.reason, sizeof r.reason);
        for (const char *c = r.reason; *c; c++)
            if (*c < ' ' || *c > '~')
                abort();
    } else if (rc != 0 && rc != -1) {
        abort();
    } else if (rc == 0 && len >= TT_PROXY_MAX_HEAD) {
        abort(); /* the bound must hold */
    }
}

static void url(const char *s)
{
    struct tt_proxy p;
    char err[TT_ERRLEN];
    char out[TT_PROXY_REQUEST_MAX];

    if (tt_proxy_parse(s, &p, err) == 0) {
        terminated(p.url.host, sizeof p.url.host);
        terminated(p.url.user, sizeof p.url.user);
        terminated(p.url.pass, sizeof p.url.pass);
        terminated(p.display, sizeof p.display);
        if (p.url.port == 0 || p.url.host[0] == '\0')
            abort();
        if (tt_proxy_connect_request(out, sizeof out, &p, p.url.host, p.url.port) < 0)
            abort(); /* any parsed proxy and host fit */
    } else {
        terminated(err, sizeof err);
        /* A password (from the authority's first ":" to the last "@") must never be echoed:
         * err may hold it only as often as the parts of s that are shown (a leading SCHEME://
         * and what follows the last "@") do. Checked for passwords of 13+ letters and digits:
         * shorter or other ones may occur in the message's own words. */
        size_t scheme =
            strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
        const char *auth = scheme > 0 && strncmp(s + scheme, "://", 3) == 0 ? s + scheme + 3 : s;
        const char *at = strrchr(s, '@');
        const char *colon = strchr(auth, ':');
        if (at && at > auth && colon && colon < at && at - colon > 12) {
            char pass[64];
            size_t n = (size_t)(at - colon - 1) < sizeof pass - 1 ? (size_t)(at - colon - 1)
                                                                  : sizeof pass - 1;
            memcpy(pass, colon + 1, n);
            pass[n] = '\0';
            if (alnum(pass) && count(err, strlen(err), pass) >
                                   count(s, (size_t)(auth - s), pass) + count(at, strlen(at), pass))
                abort();
        }
    }
}

static void choice(char *s)
{
    char *nl = strchr(s, '\n');
    const char *host = s, *list = "";
    struct tt_proxy_env env;
    struct tt_proxy_conf c;
    struct tt_proxy p;
    char err[TT_ERRLEN];

    if (nl) {
        *nl = '\0';
        list = nl + 1;
    }
    (void)tt_proxy_no_proxy_match(host, list);
    memset(&env, 0, sizeof env);
    if (tt_proxy_env_set(&env, TT_PV_NO_PROXY, list) != 0 ||
        tt_proxy_env_set(&env, TT_PV_HTTP_PROXY, host) != 0 ||
        tt_proxy_env_set(&env, TT_PV_ALL_PROXY_UC, list) != 0) {
        tt_proxy_env_free(&env);
        return;
    }
    c.proxy = NULL;
    c.no_proxy = NULL;
    c.env = &env;
    if (tt_proxy_select(&c, "ws", host, &p, err) == 1 && p.url.port == 0)
        abort();
    (void)tt_proxy_select(&c, "wss", host, &p, err);
    tt_proxy_env_free(&env);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[2048];

    if (size == 0)
        return 0;
    if (data[0] % 3 == 0) {
        answer(data + 1, size - 1);
        return 0;
    }
    size--;
    if (size >= sizeof s)
        size = sizeof s - 1;
    memcpy(s, data + 1, size);
    s[size] = '\0';
    if (data[0] % 3 == 1)
        url(s);
    else
        choice(s);
    return 0;
}
