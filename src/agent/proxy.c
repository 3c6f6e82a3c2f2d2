/* proxy.c - HTTP proxies for the agent (proxy.h): the choice of a proxy for a relay URL, as curl
 * makes it from its options and the environment; the CONNECT request (Basic credentials
 * base64-encoded by OpenSSL); the proxy's answer, read by common/httphead.c (http-parser). Pure
 * apart from tt_proxy_env_load(). No I/O, no logging; no message ever holds a password. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <uv.h> /* uv_inet_pton: Windows too */

#include "tether.h"
#include "agent/proxy.h"
#include "common/compat.h"
#include "common/httphead.h"
#include "tether_err.h"

const char *const tt_proxy_var_names[TT_PV_COUNT] = {
    [TT_PV_WS_PROXY] = "ws_proxy",       [TT_PV_WS_PROXY_UC] = "WS_PROXY",
    [TT_PV_WSS_PROXY] = "wss_proxy",     [TT_PV_WSS_PROXY_UC] = "WSS_PROXY",
    [TT_PV_HTTP_PROXY] = "http_proxy",   [TT_PV_HTTP_PROXY_UC] = "HTTP_PROXY",
    [TT_PV_HTTPS_PROXY] = "https_proxy", [TT_PV_HTTPS_PROXY_UC] = "HTTPS_PROXY",
    [TT_PV_ALL_PROXY] = "all_proxy",     [TT_PV_ALL_PROXY_UC] = "ALL_PROXY",
    [TT_PV_NO_PROXY] = "no_proxy",       [TT_PV_NO_PROXY_UC] = "NO_PROXY",
};

/* snprintf through va_list: a long message is cut, not warned about. */
static void bfmt(char *out, size_t outlen, const char *fmt, ...) TT_PRINTF(3, 4);

static void bfmt(char *out, size_t outlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, outlen, fmt, ap);
    va_end(ap);
}

#define errf(err, ...) bfmt(err, TT_ERRLEN, __VA_ARGS__)

/* ---- the environment ------------------------------------------------------------------------ */

static void wipe_free(char *s)
{
    if (s == NULL)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

int tt_proxy_env_set(struct tt_proxy_env *env, enum tt_proxy_var var, const char *value)
{
    char *copy = NULL;

    if (value != NULL && value[0] != '\0') {
        copy = strdup(value);
        if (copy == NULL)
            return TETHER_ERR_NOMEM;
    }
    wipe_free(env->value[var]);
    env->value[var] = copy;
    return 0;
}

int tt_proxy_env_load(struct tt_proxy_env *env)
{
    memset(env, 0, sizeof *env);
    for (int i = 0; i < TT_PV_COUNT; i++) {
        if (tt_proxy_env_set(env, (enum tt_proxy_var)i, getenv(tt_proxy_var_names[i])) != 0) {
            tt_proxy_env_free(env);
            return TETHER_ERR_NOMEM;
        }
    }
    return 0;
}

void tt_proxy_env_free(struct tt_proxy_env *env)
{
    for (int i = 0; i < TT_PV_COUNT; i++) {
        wipe_free(env->value[i]);
        env->value[i] = NULL;
    }
}

/* ---- proxy URLs ----------------------------------------------------------------------------- */

/* Copies s into out[outlen] with any userinfo replaced by "***", so that a URL we could not
 * parse can still be named in a message. Everything before the last "@" goes but a leading
 * "SCHEME://" (only at the very start: a "://" further on may sit inside a password), even past
 * a "/", "?" or "#": a password typed without percent-encoding may hold those. */
static void redact(const char *s, char *out, size_t outlen)
{
    size_t scheme = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
    const char *sep = scheme > 0 && strncmp(s + scheme, "://", 3) == 0 ? s + scheme : NULL;
    const char *at = strrchr(s, '@');

    if (at == NULL)
        bfmt(out, outlen, "%s", s);
    else if (sep != NULL && sep < at)
        bfmt(out, outlen, "%.*s***%s", (int)(sep + 3 - s), s, at);
    else
        bfmt(out, outlen, "***%s", at);
}

static bool scheme_is(const char *s, size_t len, const char *name)
{
    return strlen(name) == len && strncasecmp(s, name, len) == 0;
}

int tt_proxy_parse(const char *s, struct tt_proxy *p, char err[TT_ERRLEN])
{
    static const char *const http_only[] = {"http", NULL};
    char shown[TT_ERRLEN / 2];
    char buf[2048];
    char perr[TT_ERRLEN];
    const char *sep = strstr(s, "://");

    redact(s, shown, sizeof shown);
    if (s[0] == '\0') {
        errf(err, "empty proxy URL");
        return TETHER_ERR_CONFIG;
    }
    if (sep != NULL) {
        size_t n = (size_t)(sep - s);
        if (scheme_is(s, n, "https")) {
            errf(err, "HTTPS proxies are not supported (%s): use an http:// proxy", shown);
            return TETHER_ERR_CONFIG;
        }
        if (scheme_is(s, n, "socks4") || scheme_is(s, n, "socks4a") || scheme_is(s, n, "socks5") ||
            scheme_is(s, n, "socks5h")) {
            errf(err, "SOCKS proxies are not supported (%s): use an http:// proxy", shown);
            return TETHER_ERR_CONFIG;
        }
        if (!scheme_is(s, n, "http")) {
            errf(err, "unsupported proxy URL %s: only http:// proxies are supported", shown);
            return TETHER_ERR_CONFIG;
        }
    }
    /* curl takes "HOST:PORT" for "http://HOST:PORT". */
    if (snprintf(buf, sizeof buf, "%s%s", sep ? "" : "http://", s) >= (int)sizeof buf) {
        errf(err, "proxy URL is too long");
        return TETHER_ERR_CONFIG;
    }
    memset(p->display, 0, sizeof p->display);
    p->auth = false;
    if (tt_parse_url(buf, http_only, &p->url, perr) != 0) {
        OPENSSL_cleanse(buf, sizeof buf);
        OPENSSL_cleanse(perr, sizeof perr); /* it may quote the URL */
        errf(err, "bad proxy URL %s (expected http://[USER:PASS@]HOST:PORT)", shown);
        return TETHER_ERR_CONFIG;
    }
    OPENSSL_cleanse(buf, sizeof buf);
    if (!p->url.port_explicit)
        p->url.port = TT_PROXY_DEFAULT_PORT;
    /* "user@" sends "user:" as curl does; "@" alone sends nothing. */
    p->auth = p->url.user[0] != '\0' || p->url.pass[0] != '\0';
    snprintf(p->url.path, sizeof p->url.path, "/");
    if (strchr(p->url.host, ':'))
        snprintf(p->display, sizeof p->display, "http://[%s]:%u", p->url.host,
                 (unsigned)p->url.port);
    else
        snprintf(p->display, sizeof p->display, "http://%s:%u", p->url.host, (unsigned)p->url.port);
    return 0;
}

/* ---- NO_PROXY ---------------------------------------------------------------------------------
 */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* True when ip (a literal of family af) lies in net/bits; bits 0 means the whole address. */
static bool cidr_match(int af, const char *ip, const char *net, unsigned bits)
{
    unsigned char a[16], b[16];
    size_t total = af == AF_INET ? 32 : 128;

    if (bits == 0)
        bits = (unsigned)total;
    if (bits > total)
        return false;
    if (uv_inet_pton(af, ip, a) != 0 || uv_inet_pton(af, net, b) != 0)
        return false;
    if (bits / 8 && memcmp(a, b, bits / 8) != 0)
        return false;
    if (bits % 8) {
        unsigned char mask = (unsigned char)(0xffu << (8 - bits % 8));
        if ((a[bits / 8] ^ b[bits / 8]) & mask)
            return false;
    }
    return true;
}

static bool ip_entry_match(int af, const char *ip, const char *tok, size_t toklen)
{
    char check[128];
    char *slash;
    unsigned bits = 0;

    if (toklen >= sizeof check)
        return false;
    memcpy(check, tok, toklen);
    check[toklen] = '\0';
    slash = strchr(check, '/');
    if (slash) {
        char *end;
        unsigned long v = strtoul(slash + 1, &end, 10);
        if (end == slash + 1 || *end != '\0' || v > 128)
            return false;
        bits = (unsigned)v;
        *slash = '\0';
    }
    /* "[::1]" in a list means ::1 (curl's own list syntax has no brackets; be lenient). */
    if (af == AF_INET6 && check[0] == '[') {
        size_t n = strlen(check);
        if (n < 2 || check[n - 1] != ']')
            return false;
        check[n - 1] = '\0';
        return cidr_match(af, ip, check + 1, bits);
    }
    return cidr_match(af, ip, check, bits);
}

bool tt_proxy_no_proxy_match(const char *host, const char *list)
{
    unsigned char addr[16];
    int af = 0;
    size_t namelen;
    const char *p = list;

    if (host == NULL || host[0] == '\0' || list == NULL || list[0] == '\0')
        return false;
    if (strcmp(list, "*") == 0)
        return true;
    namelen = strlen(host);
    if (uv_inet_pton(AF_INET, host, addr) == 0)
        af = AF_INET;
    else if (uv_inet_pton(AF_INET6, host, addr) == 0)
        af = AF_INET6;
    else if (host[namelen - 1] == '.')
        namelen--;
    while (*p) {
        const char *tok;
        size_t toklen = 0;

        while (*p && is_blank(*p))
            p++;
        tok = p;
        while (*p && !is_blank(*p) && *p != ',') {
            p++;
            toklen++;
        }
        if (toklen && af != 0) {
            if (ip_entry_match(af, host, tok, toklen))
                return true;
        } else if (toklen) {
            if (tok[toklen - 1] == '.')
                toklen--;
            if (toklen && tok[0] == '.') {
                tok++;
                toklen--;
            }
            if (toklen == namelen && strncasecmp(tok, host, namelen) == 0)
                return true;
            if (toklen && toklen < namelen && host[namelen - toklen - 1] == '.' &&
                strncasecmp(tok, host + namelen - toklen, toklen) == 0)
                return true;
        }
        while (is_blank(*p))
            p++;
        if (*p != ',')
            break; /* curl stops at anything but a comma */
        while (*p == ',')
            p++;
    }
    return false;
}

/* ---- the choice ------------------------------------------------------------------------------ */

static const char *env_value(const struct tt_proxy_env *env, enum tt_proxy_var v)
{
    return env ? env->value[v] : NULL;
}

int tt_proxy_select(const struct tt_proxy_conf *c, const char *scheme, const char *host,
                    struct tt_proxy *p, char err[TT_ERRLEN])
{
    static const enum tt_proxy_var ws_order[] = {TT_PV_WS_PROXY,   TT_PV_WS_PROXY_UC,
                                                 TT_PV_HTTP_PROXY, TT_PV_HTTP_PROXY_UC,
                                                 TT_PV_ALL_PROXY,  TT_PV_ALL_PROXY_UC};
    static const enum tt_proxy_var wss_order[] = {TT_PV_WSS_PROXY,   TT_PV_WSS_PROXY_UC,
                                                  TT_PV_HTTPS_PROXY, TT_PV_HTTPS_PROXY_UC,
                                                  TT_PV_ALL_PROXY,   TT_PV_ALL_PROXY_UC};
    const enum tt_proxy_var *order;
    size_t norder;
    const char *no_proxy, *value = NULL, *source = NULL;
    char perr[TT_ERRLEN];
    int rc;

    if (c == NULL)
        return 0;
    no_proxy = c->no_proxy;
    if (no_proxy == NULL)
        no_proxy = env_value(c->env, TT_PV_NO_PROXY);
    if (no_proxy == NULL)
        no_proxy = env_value(c->env, TT_PV_NO_PROXY_UC);
    if (tt_proxy_no_proxy_match(host, no_proxy))
        return 0;
    if (c->proxy != NULL) {
        if (c->proxy[0] == '\0')
            return 0;
        value = c->proxy;
        source = "--proxy";
    } else {
        bool secure = strcmp(scheme, "wss") == 0;
        order = secure ? wss_order : ws_order;
        norder =
            secure ? sizeof wss_order / sizeof wss_order[0] : sizeof ws_order / sizeof ws_order[0];
        for (size_t i = 0; i < norder && value == NULL; i++) {
            value = env_value(c->env, order[i]);
            source = tt_proxy_var_names[order[i]];
        }
        if (value == NULL)
            return 0;
    }
    rc = tt_proxy_parse(value, p, perr);
    if (rc != 0) {
        errf(err, "%s: %s", source, perr);
        return rc;
    }
    snprintf(p->source, sizeof p->source, "%s", source);
    return 1;
}

/* ---- CONNECT ----------------------------------------------------------------------------------
 */

int tt_proxy_connect_request(char *out, size_t outlen, const struct tt_proxy *p, const char *host,
                             uint16_t port)
{
    char authority[TT_HOSTLEN + 8];
    unsigned char cred[sizeof p->url.user + sizeof p->url.pass + 1];
    unsigned char b64[((sizeof cred + 2) / 3) * 4 + 1];
    int n, credlen;

    if (strchr(host, ':'))
        snprintf(authority, sizeof authority, "[%s]:%u", host, (unsigned)port);
    else
        snprintf(authority, sizeof authority, "%s:%u", host, (unsigned)port);
    if (!p->auth) {
        n = snprintf(out, outlen,
                     "CONNECT %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tether/%s\r\n\r\n", authority,
                     authority, TETHER_VERSION);
        return n < 0 || (size_t)n >= outlen ? -1 : n;
    }
    credlen = snprintf((char *)cred, sizeof cred, "%s:%s", p->url.user, p->url.pass);
    if (credlen < 0 || (size_t)credlen >= sizeof cred)
        return -1;
    EVP_EncodeBlock(b64, cred, credlen);
    OPENSSL_cleanse(cred, sizeof cred);
    n = snprintf(out, outlen,
                 "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n"
                 "User-Agent: tether/%s\r\n\r\n",
                 authority, authority, (const char *)b64, TETHER_VERSION);
    OPENSSL_cleanse(b64, sizeof b64);
    if (n < 0 || (size_t)n >= outlen) {
        OPENSSL_cleanse(out, outlen);
        return -1;
    }
    return n;
}

/* ---- the answer -------------------------------------------------------------------------------
 */

int tt_proxy_parse_response(const uint8_t *in, size_t len, struct tt_proxy_response *r)
{
    struct tt_httphead h;

    memset(r, 0, sizeof *r);
    int rc = tt_httphead_parse(TT_HTTPHEAD_RESPONSE, in, len, TT_PROXY_MAX_HEAD, &h);
    if (rc == TETHER_ERR_AGAIN)
        return 0;
    if (rc != 0)
        return -1;
    /* the reason, printable only and cut to TT_PROXY_REASON_MAX: it goes into a log line */
    for (size_t i = 0; i < h.reason_len && i < TT_PROXY_REASON_MAX; i++) {
        unsigned char c = in[h.reason_off + i];
        r->reason[i] = c >= ' ' && c <= '~' ? (char)c : '?';
    }
    r->status = h.status;
    r->head_len = h.head_len;
    return 1;
}
