/* proxy.h - HTTP proxies on the agent's dial path: which proxy (if any) a relay URL goes through
 * (tether_config_set_proxy / _set_no_proxy and the environment, read as curl reads it), the
 * CONNECT request with Basic credentials, and the proxy's answer. Pure functions over caller
 * buffers, apart from tt_proxy_env_load() (getenv) and its _free; dial.c runs the exchange as
 * the bottom connection filter. Never logs and never puts a password in a message.
 *
 * The rules, for a relay URL ws://HOST... or wss://HOST... (ws is curl's http, wss its https):
 * 1. The no-proxy list is the configured one (--noproxy, even ""), else no_proxy, else NO_PROXY.
 *    If HOST matches it, the connection is direct, whatever proxy is configured (curl applies
 *    NO_PROXY to -x too).
 * 2. Else a configured proxy (--proxy) is used; "" means direct, and the environment is ignored.
 * 3. Else the first non-empty variable of, for ws://: ws_proxy, WS_PROXY, http_proxy,
 *    HTTP_PROXY (SPEC.md names it; curl skips it only because CGI puts a request's "Proxy:"
 *    header there, which cannot happen to the agent), all_proxy, ALL_PROXY; for wss://: wss_proxy,
 * WSS_PROXY, https_proxy, HTTPS_PROXY, all_proxy, ALL_PROXY. None: direct. A proxy is
 * "[http://][USER[:PASS]@]HOST[:PORT][/...]": no scheme means http, the default port is 1080
 * (curl's), USER and PASS are percent-decoded, a path is ignored. https:// and socks proxies are
 * not supported (TETHER_ERR_CONFIG). No-proxy list (curl's Curl_check_noproxy): "*" alone matches
 * every host; otherwise entries are separated by commas (blanks around them are skipped). A host
 * name matches an entry equal to it or to one of its parent domains (case-insensitive; a leading
 * dot of the entry and a trailing dot of either are ignored: "example.com" and ".example.com" both
 * match "www.example.com", not "notexample.com"). An IP literal matches an equal address, or a CIDR
 * entry ("10.0.0.0/8", "fd00::/8"). Entries carry no port. */
#ifndef TT_AGENT_PROXY_H
#define TT_AGENT_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"

#define TT_PROXY_DEFAULT_PORT 1080 /* curl's, when a proxy URL gives none */
#define TT_PROXY_MAX_HEAD 16384    /* a longer answer head to CONNECT is an error */
#define TT_PROXY_REQUEST_MAX 2048  /* enough for any CONNECT we build */
#define TT_PROXY_REASON_MAX 64     /* the reason phrase kept for messages */

/* The variables curl reads, in one table (tt_proxy_var_names[] has their names). */
enum tt_proxy_var {
    TT_PV_WS_PROXY,    /* ws_proxy */
    TT_PV_WS_PROXY_UC, /* WS_PROXY */
    TT_PV_WSS_PROXY,
    TT_PV_WSS_PROXY_UC,
    TT_PV_HTTP_PROXY,
    TT_PV_HTTP_PROXY_UC, /* HTTP_PROXY: read after http_proxy (SPEC; curl skips it for CGI's sake)
                          */
    TT_PV_HTTPS_PROXY,
    TT_PV_HTTPS_PROXY_UC,
    TT_PV_ALL_PROXY,
    TT_PV_ALL_PROXY_UC,
    TT_PV_NO_PROXY,
    TT_PV_NO_PROXY_UC,
    TT_PV_COUNT
};

extern const char *const tt_proxy_var_names[TT_PV_COUNT];

/* A snapshot of the variables. value[i] is NULL when the variable is unset or empty (curl treats
 * both alike), else a malloc'd copy owned by the struct. */
struct tt_proxy_env {
    char *value[TT_PV_COUNT];
};

/* Fills env from getenv(). Returns 0, or TETHER_ERR_NOMEM (env is then empty). Free it with
 * tt_proxy_env_free(). Not thread-safe against setenv() elsewhere, like getenv itself. */
int tt_proxy_env_load(struct tt_proxy_env *env);

/* Sets one variable of env to a copy of value (NULL or "" unsets it). Returns 0 or
 * TETHER_ERR_NOMEM. For tests and embedders. */
int tt_proxy_env_set(struct tt_proxy_env *env, enum tt_proxy_var var, const char *value);

/* Frees every value and leaves env empty (overwriting them first: they may hold passwords). */
void tt_proxy_env_free(struct tt_proxy_env *env);

/* What a dial consults: a configured proxy and no-proxy list, and the environment. */
struct tt_proxy_conf {
    const char *proxy;              /* NULL: from env; "": never a proxy */
    const char *no_proxy;           /* NULL: from env (no_proxy, NO_PROXY) */
    const struct tt_proxy_env *env; /* may be NULL: no variables */
};

/* A proxy to go through. */
struct tt_proxy {
    struct tt_url url; /* scheme "http", host (no brackets), port, user and pass decoded */
    bool auth;         /* credentials were given ("user@" alone counts: empty password) */
    char source[16];   /* "--proxy" or the variable's name, for messages */
    char display[TT_HOSTLEN + 16]; /* "http://HOST:PORT", without credentials: safe to log */
};

/* Parses a proxy URL (the syntax above) into p (source left as is). Returns 0, or
 * TETHER_ERR_CONFIG with a one-line message in err that never repeats the password: "HTTPS
 * proxies are not supported", "SOCKS proxies are not supported", unknown scheme, bad URL. */
int tt_proxy_parse(const char *s, struct tt_proxy *p, char err[TT_ERRLEN]);

/* True when host (a name, or an IP literal without brackets) matches the no-proxy list. */
bool tt_proxy_no_proxy_match(const char *host, const char *list);

/* Chooses for a relay URL of scheme ("ws" or "wss") and host. Returns 1 and *p (a proxy to use),
 * 0 (connect directly; *p untouched), or TETHER_ERR_CONFIG when the proxy that applies does not
 * parse (err names its source, never its password). c may be NULL (direct). */
int tt_proxy_select(const struct tt_proxy_conf *c, const char *scheme, const char *host,
                    struct tt_proxy *p, char err[TT_ERRLEN]);

/* Writes into out[outlen] the CONNECT request for host:port (host without brackets; an IPv6
 * literal gets them): request line, Host, Proxy-Authorization: Basic base64(user:pass) when
 * p->auth, User-Agent: tether/VERSION, blank line. Returns its length, or -1 if out is too small.
 * out then holds credentials: the caller wipes it. */
int tt_proxy_connect_request(char *out, size_t outlen, const struct tt_proxy *p, const char *host,
                             uint16_t port);

/* The head of a proxy's answer to CONNECT. */
struct tt_proxy_response {
    int status;                           /* 100..999 */
    char reason[TT_PROXY_REASON_MAX + 1]; /* printable ASCII only, cut if long; may be "" */
    size_t head_len;                      /* bytes through the blank line; the tunnel follows */
};

/* Parses in[0..len) with tt_httphead_parse (response mode, the head only). Returns 1 (r filled), 0
 * (an incomplete head: need more bytes), or -1 (malformed, or no end of head within
 * TT_PROXY_MAX_HEAD bytes). Interim 1xx answers are not skipped: a proxy sends none to
 * CONNECT, and one is an error for the caller. */
int tt_proxy_parse_response(const uint8_t *in, size_t len, struct tt_proxy_response *r);

#endif
