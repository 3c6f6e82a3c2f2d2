/* agentconf.c - the public tether_config_* functions: collects relay URLs, the device's name and
 * token and its services, and checks each value as it comes in so that a bad one is reported in
 * one line naming the problem. Pure data; no I/O, no libuv. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agentconf.h"
#include "agent/hostaddr.h"
#include "agent/proxy.h"
#include "common/compat.h"

static int fail(tether_config *cfg, int code, const char *fmt, ...) TT_PRINTF(3, 4);

static int fail(tether_config *cfg, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cfg->err, sizeof cfg->err, fmt, ap);
    va_end(ap);
    return code;
}

static void ok(tether_config *cfg)
{
    cfg->err[0] = '\0';
}

/* Frees a string that may hold a secret, overwriting it first. */
static void wipe_free(char *s)
{
    if (s == NULL)
        return;
    for (volatile char *p = s; *p; p++)
        *p = '\0';
    free(s);
}

/* Sets *slot to a copy of value (NULL: none), freeing the old one (wiped first when secret), and
 * clears cfg's message. Returns 0, or TETHER_ERR_NOMEM with the message and *slot unchanged. */
static int replace(tether_config *cfg, char **slot, const char *value, bool secret)
{
    char *copy = NULL;

    if (value != NULL && (copy = strdup(value)) == NULL)
        return fail(cfg, TETHER_ERR_NOMEM, "out of memory");
    if (secret)
        wipe_free(*slot);
    else
        free(*slot);
    *slot = copy;
    ok(cfg);
    return 0;
}

int tether_config_new(tether_config **out)
{
    if (out == NULL)
        return TETHER_ERR_INVAL;
    *out = calloc(1, sizeof **out);
    return *out ? 0 : TETHER_ERR_NOMEM;
}

void tether_config_free(tether_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->nservers; i++)
        free(cfg->servers[i]);
    free(cfg->name);
    wipe_free(cfg->token); /* a secret: not left in freed memory */
    wipe_free(cfg->proxy); /* it may hold the proxy's password */
    free(cfg->no_proxy);
    free(cfg->ca_file);
    free(cfg->dns);
    free(cfg->state_dir);
    wipe_free(cfg->device_key);
    wipe_free(cfg->visitor_user);
    wipe_free(cfg->visitor_secret);
    wipe_free(cfg->grant);
    free(cfg);
}

const char *tether_config_error(const tether_config *cfg)
{
    return cfg ? cfg->err : "";
}

int tt_agentconf_parse_server(const char *url, struct tt_url *u, char err[TT_ERRLEN])
{
    static const char *const schemes[] = {"ws", "wss", NULL};
    char perr[TT_ERRLEN];

    if (tt_parse_url(url, schemes, u, perr) != 0) {
        tt_errf(err, "bad server URL '%s': %s (expected ws://HOST[:PORT][/PATH])", url, perr);
        return TETHER_ERR_CONFIG;
    }
    if (u->user[0] != '\0') {
        tt_errf(err, "server URL '%s': credentials in the URL are not supported", url);
        return TETHER_ERR_CONFIG;
    }
    return 0;
}

int tether_config_add_server(tether_config *cfg, const char *url)
{
    struct tt_url u;
    char *copy;
    int rc;

    if (cfg == NULL || url == NULL)
        return TETHER_ERR_INVAL;
    rc = tt_agentconf_parse_server(url, &u, cfg->err);
    if (rc != 0)
        return rc;
    if (cfg->nservers == TETHER_MAX_SERVERS)
        return fail(cfg, TETHER_ERR_CONFIG, "too many servers (at most %d)", TETHER_MAX_SERVERS);
    copy = strdup(url);
    if (copy == NULL)
        return fail(cfg, TETHER_ERR_NOMEM, "out of memory");
    cfg->servers[cfg->nservers++] = copy;
    ok(cfg);
    return 0;
}

/* Names and tokens travel in HELLO and appear in logs: printable ASCII, no spaces. */
static bool printable_word(const char *s)
{
    for (; *s; s++)
        if (*s <= ' ' || *s > '~')
            return false;
    return true;
}

static int set_word(tether_config *cfg, char **slot, const char *value, const char *what,
                    size_t max, bool secret)
{
    size_t len;

    if (cfg == NULL || value == NULL)
        return TETHER_ERR_INVAL;
    len = strlen(value);
    if (len == 0)
        return fail(cfg, TETHER_ERR_CONFIG, "%s is empty", what);
    if (len > max)
        return fail(cfg, TETHER_ERR_CONFIG, "%s is too long (%zu bytes, at most %zu)", what, len,
                    max);
    if (!printable_word(value))
        return fail(cfg, TETHER_ERR_CONFIG, "%s contains a space or a non-printable character",
                    what);
    return replace(cfg, slot, value, secret);
}

int tether_config_set_name(tether_config *cfg, const char *name)
{
    return set_word(cfg, cfg ? &cfg->name : NULL, name, "device name", TETHER_MAX_DEVICE_NAME,
                    false);
}

int tether_config_set_token(tether_config *cfg, const char *token)
{
    return set_word(cfg, cfg ? &cfg->token : NULL, token, "token", TETHER_MAX_TOKEN, true);
}

int tether_config_set_user(tether_config *cfg, const char *user, const char *secret)
{
    char *u = NULL, *sec = NULL;
    int rc;

    if (cfg == NULL || user == NULL || secret == NULL)
        return TETHER_ERR_INVAL;
    rc = set_word(cfg, &u, user, "user", TETHER_MAX_DEVICE_NAME, false);
    if (rc == 0 && strchr(user, ':') != NULL)
        rc = fail(cfg, TETHER_ERR_CONFIG, "user contains ':'");
    if (rc == 0)
        rc = set_word(cfg, &sec, secret, "secret", TT_VISITOR_SECRET_MAX, true);
    if (rc != 0) {
        wipe_free(u);
        wipe_free(sec);
        return rc;
    }
    wipe_free(cfg->visitor_user);
    wipe_free(cfg->visitor_secret);
    wipe_free(cfg->grant);
    cfg->visitor_user = u;
    cfg->visitor_secret = sec;
    cfg->grant = NULL;
    return 0;
}

int tether_config_set_grant(tether_config *cfg, const char *token)
{
    char *t = NULL;
    int rc;

    if (cfg == NULL || token == NULL)
        return TETHER_ERR_INVAL;
    rc = set_word(cfg, &t, token, "grant token", TT_VISITOR_SECRET_MAX, true);
    if (rc != 0)
        return rc;
    wipe_free(cfg->visitor_user);
    wipe_free(cfg->visitor_secret);
    wipe_free(cfg->grant);
    cfg->visitor_user = cfg->visitor_secret = NULL;
    cfg->grant = t;
    return 0;
}

bool tt_agentconf_valid_service_name(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return n >= 1 && n <= TETHER_MAX_SERVICE_NAME;
}

static bool name_taken(const tether_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nservices; i++)
        if (strcmp(cfg->services[i].name, name) == 0)
            return true;
    return false;
}

void tt_agentconf_auto_http_name(const tether_config *cfg, char out[TETHER_MAX_SERVICE_NAME + 1])
{
    snprintf(out, TETHER_MAX_SERVICE_NAME + 1, "http");
    for (int i = 2; name_taken(cfg, out); i++)
        snprintf(out, TETHER_MAX_SERVICE_NAME + 1, "http-%d", i);
}

static int add_service(tether_config *cfg, enum tether_service_kind kind, const char *name,
                       const char *target)
{
    struct tt_service *svc;
    char auto_name[TETHER_MAX_SERVICE_NAME + 1];
    char perr[TT_ERRLEN];
    const char *flag = kind == TETHER_SERVICE_HTTP ? "http" : "tcp";

    if (cfg == NULL || target == NULL || (name == NULL && kind == TETHER_SERVICE_TCP))
        return TETHER_ERR_INVAL;
    if (name == NULL) {
        tt_agentconf_auto_http_name(cfg, auto_name);
        name = auto_name;
    }
    if (!tt_agentconf_valid_service_name(name))
        return fail(cfg, TETHER_ERR_CONFIG,
                    "bad %s service name '%s' (use 1 to %d of a-z, 0-9 and '-')", flag, name,
                    TETHER_MAX_SERVICE_NAME);
    if (name_taken(cfg, name))
        return fail(cfg, TETHER_ERR_CONFIG, "duplicate service name '%s'", name);
    if (cfg->nservices == TETHER_MAX_SERVICES)
        return fail(cfg, TETHER_ERR_CONFIG, "too many services (at most %d)", TETHER_MAX_SERVICES);
    svc = &cfg->services[cfg->nservices];
    if (strlen(target) >= sizeof svc->target)
        return fail(cfg, TETHER_ERR_CONFIG, "%s service '%s': target is too long", flag, name);
    if (tt_parse_hostport(target, svc->host, &svc->port, false, perr) != 0)
        return fail(cfg, TETHER_ERR_CONFIG, "%s service '%s': bad target '%s': %s", flag, name,
                    target, perr);
    if (svc->host[0] == '\0')
        return fail(cfg, TETHER_ERR_CONFIG, "%s service '%s': bad target '%s': no host", flag, name,
                    target);
    snprintf(svc->name, sizeof svc->name, "%s", name);
    snprintf(svc->target, sizeof svc->target, "%s", target);
    svc->kind = kind;
    cfg->nservices++;
    ok(cfg);
    return 0;
}

int tether_config_add_http(tether_config *cfg, const char *name, const char *target)
{
    return add_service(cfg, TETHER_SERVICE_HTTP, name, target);
}

int tether_config_add_tcp(tether_config *cfg, const char *name, const char *target)
{
    return add_service(cfg, TETHER_SERVICE_TCP, name, target);
}

int tether_config_set_proxy(tether_config *cfg, const char *url)
{
    struct tt_proxy p;
    int rc;

    if (cfg == NULL || url == NULL)
        return TETHER_ERR_INVAL;
    if (url[0] != '\0') {
        rc = tt_proxy_parse(url, &p, cfg->err); /* its message never shows the password */
        memset(&p, 0, sizeof p);
        if (rc != 0)
            return rc;
    }
    return replace(cfg, &cfg->proxy, url, true);
}

int tether_config_set_no_proxy(tether_config *cfg, const char *list)
{
    if (cfg == NULL || list == NULL)
        return TETHER_ERR_INVAL;
    return replace(cfg, &cfg->no_proxy, list, false);
}

int tether_config_set_dns(tether_config *cfg, const char *server)
{
    struct tt_dns_server dns;

    if (cfg == NULL)
        return TETHER_ERR_INVAL;
    if (server != NULL && tt_hostaddr_parse_dns(server, &dns, cfg->err) != 0)
        return TETHER_ERR_CONFIG;
    return replace(cfg, &cfg->dns, server, false);
}

int tether_config_set_ca_file(tether_config *cfg, const char *path)
{
    if (cfg == NULL || path == NULL)
        return TETHER_ERR_INVAL;
    if (path[0] == '\0')
        return fail(cfg, TETHER_ERR_CONFIG, "CA file name is empty");
    return replace(cfg, &cfg->ca_file, path, false);
}

int tether_config_set_state_dir(tether_config *cfg, const char *dir)
{
    if (cfg == NULL)
        return TETHER_ERR_INVAL;
    return replace(cfg, &cfg->state_dir, dir, false);
}

int tether_config_set_device_key(tether_config *cfg, const char *key)
{
    if (cfg == NULL)
        return TETHER_ERR_INVAL;
    if (key != NULL) {
        size_t n = strlen(key);
        bool hex = n == TETHER_DEVICE_KEY_LEN;
        for (size_t i = 0; hex && i < n; i++)
            hex = (key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f');
        if (!hex) /* the message never shows the key */
            return fail(cfg, TETHER_ERR_CONFIG, "device key is not %d lowercase hex digits",
                        TETHER_DEVICE_KEY_LEN);
    }
    return replace(cfg, &cfg->device_key, key, true);
}

int tether_config_set_insecure(tether_config *cfg, bool insecure)
{
    if (cfg == NULL)
        return TETHER_ERR_INVAL;
    cfg->insecure = insecure;
    ok(cfg);
    return 0;
}

int tether_config_check(tether_config *cfg)
{
    if (cfg == NULL)
        return TETHER_ERR_INVAL;
    if (cfg->nservers == 0)
        return fail(cfg, TETHER_ERR_CONFIG, "no server given (--server ws://HOST:PORT)");
    if (cfg->name == NULL)
        return fail(cfg, TETHER_ERR_CONFIG, "no device name given (--name NAME)");
    if (cfg->token == NULL)
        return fail(cfg, TETHER_ERR_CONFIG,
                    "no token given (--token TOKEN, --token-file FILE or TETHER_TOKEN)");
    if (cfg->nservices == 0)
        return fail(cfg, TETHER_ERR_CONFIG,
                    "no service given (--http [NAME=]HOST:PORT or --tcp NAME=HOST:PORT)");
    ok(cfg);
    return 0;
}

static int dup_str(char **dst, const char *src)
{
    if (src == NULL) {
        *dst = NULL;
        return 0;
    }
    *dst = strdup(src);
    return *dst ? 0 : TETHER_ERR_NOMEM;
}

int tt_agentconf_dup(const tether_config *src, tether_config **out)
{
    tether_config *c = calloc(1, sizeof *c);
    int rc = 0;

    if (c == NULL)
        return TETHER_ERR_NOMEM;
    for (size_t i = 0; i < src->nservers && rc == 0; i++) {
        rc = dup_str(&c->servers[i], src->servers[i]);
        if (rc == 0)
            c->nservers++;
    }
    if (rc == 0)
        rc = dup_str(&c->name, src->name);
    if (rc == 0)
        rc = dup_str(&c->token, src->token);
    if (rc == 0)
        rc = dup_str(&c->proxy, src->proxy);
    if (rc == 0)
        rc = dup_str(&c->no_proxy, src->no_proxy);
    if (rc == 0)
        rc = dup_str(&c->ca_file, src->ca_file);
    if (rc == 0)
        rc = dup_str(&c->dns, src->dns);
    if (rc == 0)
        rc = dup_str(&c->state_dir, src->state_dir);
    if (rc == 0)
        rc = dup_str(&c->device_key, src->device_key);
    if (rc == 0)
        rc = dup_str(&c->visitor_user, src->visitor_user);
    if (rc == 0)
        rc = dup_str(&c->visitor_secret, src->visitor_secret);
    if (rc == 0)
        rc = dup_str(&c->grant, src->grant);
    if (rc != 0) {
        tether_config_free(c);
        return rc;
    }
    c->insecure = src->insecure;
    memcpy(c->services, src->services, sizeof c->services);
    c->nservices = src->nservices;
    *out = c;
    return 0;
}
