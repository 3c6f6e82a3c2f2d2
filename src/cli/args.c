/* args.c - parses tether's flags and its --config FILE (args.h) and turns them into a
 * tether_config through the public API only. No output, no exit; the only outside input is the
 * --config file (read by src/common/configfile.c) and the TETHER_TOKEN variable (main.c reads
 * --token-file). main.c prints the one-line message and exits 2 (1 for an unreadable file). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/args.h"
#include "cli/flags.h"
#include "common/configfile.h"

const char *tt_args_usage(void)
{
    return "usage: tether --server URL [--server URL]... --name NAME\n"
           "              (--token TOKEN | --token-file FILE)\n"
           "              [--http [NAME=]HOST:PORT|PORT]... [--tcp NAME=HOST:PORT]...\n"
           "              [--state-dir DIR] [--dns ADDR[:PORT]] [--config FILE]\n"
           "              [--proxy URL] [--noproxy LIST] [--ca-file FILE] [--insecure]\n"
           "              [--json] [--log-level LEVEL] [--log-format text|json]\n"
           "              [--help] [--version]\n"
           "       tether connect --server URL [--user USER --secret SECRET | --grant TOKEN]\n"
           "              DEVICE/SERVICE (--listen [ADDR:]PORT | --stdio) [...]\n"
           "              (reach a device's service: tether connect --help)\n"
           "\n"
           "Makes this device's local services reachable through a Tether relay. The agent\n"
           "dials out to the relay over WebSocket; nothing listens on the device.\n"
           "\n"
           "  --server URL        relay URL, ws://HOST[:PORT][/PATH] or wss://... (TLS);\n"
           "                      repeat to give several, tried in turn\n"
           "  --name NAME         the device's stable name (its serial number, say)\n"
           "  --token TOKEN       the device's token, as configured on the relay (visible in\n"
           "                      the process list: prefer --token-file or TETHER_TOKEN)\n"
           "  --token-file FILE   read the token from the first line of FILE; without\n"
           "                      either flag, the token comes from the TETHER_TOKEN variable\n"
           "  --http [NAME=]HOST:PORT|PORT\n"
           "                      expose a local HTTP service (a bare PORT means\n"
           "                      127.0.0.1:PORT); the first one (or the one named \"http\")\n"
           "                      gets http://LABEL.DOMAIN; unnamed ones are called http,\n"
           "                      http-2, ...\n"
           "  --tcp NAME=HOST:PORT expose a local TCP service on a public port of the relay\n"
           "                      (none on a relay that keeps it private: reached with\n"
           "                      tether connect)\n"
           "  --state-dir DIR     where the device key is kept (DIR/NAME.key): the relay gives\n"
           "                      it at the name's first registration and, from then on,\n"
           "                      refuses this name without it (default /var/lib/tether as\n"
           "                      root, else $XDG_STATE_HOME/tether or ~/.local/state/tether)\n"
           "  --dns ADDR[:PORT]   look names up (the relay's, the proxy's, services')\n"
           "                      with this DNS server only (an IP address; port 53 by\n"
           "                      default; IPv6 as [ADDR]:PORT); needed where there is no\n"
           "                      /etc/resolv.conf (Android), where only /etc/hosts is read\n"
           "  --proxy URL         reach the relay through an HTTP proxy (CONNECT):\n"
           "                      http://[USER:PASS@]HOST:PORT; overrides the proxy\n"
           "                      variables; --proxy '' connects directly\n"
           "  --noproxy LIST      relay hosts to reach directly: comma-separated names\n"
           "                      (subdomains match too), IP addresses, CIDR ranges, or\n"
           "                      '*'; overrides no_proxy and NO_PROXY\n"
           "  --ca-file FILE      PEM CA certificates trusted for wss://, besides the system's\n"
           "                      (without OpenSSL's CA file or directory: Android's store)\n"
           "  --insecure          do not verify the relay's certificate (testing only; a\n"
           "                      warning says so on stderr)\n"
           "  --config FILE       read settings from FILE first, one per line: a flag's\n"
           "                      name and its value (server ws://relay:8080, http 8000,\n"
           "                      json true); flags on the command line win (a --server,\n"
           "                      --http or --tcp replaces the file's list of its kind); a\n"
           "                      token line only in a file other users cannot read\n"
           "                      (prefer token-file)\n"
           "  --json              print one JSON object per event on stdout\n"
           "  --log-level LEVEL   error, warn, info (default) or debug; logs go to stderr\n"
           "  --log-format FORMAT text (default) or json: each log line on stderr as a JSON\n"
           "                      object (time, program, level, msg and the line's fields)\n"
           "  --help              print this help and exit\n"
           "  --version           print the version and exit\n"
           "\n"
           "Service names use a-z, 0-9 and '-' (1 to 32 characters). Each time the device is\n"
           "registered, a line per service is printed on stdout:\n"
           "  ready http http://k3j9x2mq.localhost:8080 -> 127.0.0.1:8000\n"
           "  ready tcp ssh localhost:20001 -> 127.0.0.1:22\n"
           "  ready tcp ssh private -> 127.0.0.1:22     (a private service: no port)\n"
           "The agent reconnects forever, with back-off, until SIGINT or SIGTERM.\n"
           "\n"
           "localhost and NAME.localhost always mean 127.0.0.1 (then ::1), without a lookup.\n"
           "\n"
           "Without --proxy, the proxy comes from the environment, as curl reads it: for\n"
           "ws:// servers http_proxy or HTTP_PROXY, for wss:// servers\n"
           "https_proxy or HTTPS_PROXY; then all_proxy or ALL_PROXY. Hosts in no_proxy or\n"
           "NO_PROXY (or --noproxy) are reached directly.\n";
}

enum opt_id {
    OPT_SERVER,
    OPT_NAME,
    OPT_TOKEN,
    OPT_TOKEN_FILE,
    OPT_HTTP,
    OPT_TCP,
    OPT_PROXY,
    OPT_NOPROXY,
    OPT_CA_FILE,
    OPT_STATE_DIR,
    OPT_DNS,
    OPT_INSECURE,
    OPT_JSON,
    OPT_LOG_LEVEL,
    OPT_HELP,
    OPT_VERSION,
    OPT_CONFIG,
    OPT_LOG_FORMAT,
};

static const struct tt_flags_opt opts[] = {
    {"server", OPT_SERVER, true},
    {"name", OPT_NAME, true},
    {"token", OPT_TOKEN, true},
    {"http", OPT_HTTP, true},
    {"tcp", OPT_TCP, true},
    {"proxy", OPT_PROXY, true},
    {"ca-file", OPT_CA_FILE, true},
    {"insecure", OPT_INSECURE, false},
    {"json", OPT_JSON, false},
    {"log-level", OPT_LOG_LEVEL, true},
    {"help", OPT_HELP, false},
    {"version", OPT_VERSION, false},
    {"noproxy", OPT_NOPROXY, true},
    {"token-file", OPT_TOKEN_FILE, true},
    {"state-dir", OPT_STATE_DIR, true},
    {"dns", OPT_DNS, true},
    {"config", OPT_CONFIG, true},
    {"log-format", OPT_LOG_FORMAT, true},
};

static bool valid_name(const char *s, size_t n)
{
    if (n < 1 || n > TETHER_MAX_SERVICE_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

static int add_service(struct tt_args *a, enum tether_service_kind kind, const char *value,
                       char err[TT_ERRLEN])
{
    const char *flag = kind == TETHER_SERVICE_HTTP ? "--http" : "--tcp";
    const char *eq = strchr(value, '=');
    const char *target;
    struct tt_args_service *s;

    if (a->nservices == TETHER_MAX_SERVICES)
        return tt_flags_errf(err, "too many services (at most %d)", TETHER_MAX_SERVICES);
    s = &a->services[a->nservices];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->value = value;
    if (eq) {
        size_t n = (size_t)(eq - value);
        if (!valid_name(value, n))
            return tt_flags_errf(
                err, "%s %s: bad service name '%.*s' (use 1 to %d of a-z, 0-9 and '-')", flag,
                value, (int)(n > 64 ? 64 : n), value, TETHER_MAX_SERVICE_NAME);
        memcpy(s->name, value, n);
        s->name[n] = '\0';
        s->named = true;
        target = eq + 1;
    } else if (kind == TETHER_SERVICE_TCP) {
        return tt_flags_errf(err, "--tcp %s: expected NAME=HOST:PORT", value);
    } else {
        target = value;
    }
    if (target[0] == '\0')
        return tt_flags_errf(err, "%s %s: expected %sHOST:PORT", flag, value,
                             kind == TETHER_SERVICE_HTTP ? "[NAME=]" : "NAME=");
    size_t digits = strspn(target, "0123456789");
    int n = digits > 0 && digits <= 5 && target[digits] == '\0' /* a bare PORT */
                ? snprintf(s->target, sizeof s->target, "127.0.0.1:%s", target)
                : snprintf(s->target, sizeof s->target, "%s", target);
    if (n < 0 || (size_t)n >= sizeof s->target)
        return tt_flags_errf(err, "%s %.64s...: target is too long", flag, value);
    a->nservices++;
    return 0;
}

static bool name_used(const struct tt_args *a, const char *name)
{
    for (size_t i = 0; i < a->nservices; i++)
        if (a->services[i].name[0] && strcmp(a->services[i].name, name) == 0)
            return true;
    return false;
}

/* Unnamed --http services: "http", "http-2", ... skipping every name already taken. */
static void name_unnamed(struct tt_args *a)
{
    for (size_t i = 0; i < a->nservices; i++) {
        struct tt_args_service *s = &a->services[i];
        char cand[TETHER_MAX_SERVICE_NAME + 1];

        if (s->named)
            continue;
        snprintf(cand, sizeof cand, "http");
        for (int k = 2; name_used(a, cand); k++)
            snprintf(cand, sizeof cand, "http-%d", k);
        memcpy(s->name, cand, sizeof cand);
    }
}

static int apply(struct tt_args *a, enum opt_id id, const char *flag, const char *v,
                 char err[TT_ERRLEN])
{
    switch (id) {
    case OPT_SERVER:
        return tt_flags_add_server(a->servers, &a->nservers, v, err);
    case OPT_NAME:
        return tt_flags_once(&a->name, v, "--name", NULL, err);
    case OPT_TOKEN:
        return tt_flags_once(&a->token, v, "--token", NULL, err);
    case OPT_TOKEN_FILE:
        return tt_flags_once(&a->token_file, v, "--token-file", "empty file name", err);
    case OPT_HTTP:
        return add_service(a, TETHER_SERVICE_HTTP, v, err);
    case OPT_TCP:
        return add_service(a, TETHER_SERVICE_TCP, v, err);
    case OPT_PROXY:
        return tt_flags_once(&a->proxy, v, "--proxy", NULL, err);
    case OPT_NOPROXY:
        return tt_flags_once(&a->noproxy, v, "--noproxy", NULL, err);
    case OPT_CA_FILE:
        a->ca_file = v;
        return 0;
    case OPT_STATE_DIR:
        return tt_flags_once(&a->state_dir, v, "--state-dir", "empty directory name", err);
    case OPT_DNS:
        return tt_flags_once(&a->dns, v, "--dns", "empty value (expected ADDR[:PORT])", err);
    case OPT_INSECURE:
        a->insecure = true;
        return 0;
    case OPT_JSON:
        a->json = true;
        return 0;
    case OPT_LOG_LEVEL:
        return tt_flags_log_level(v, &a->log_level, err);
    case OPT_HELP:
        a->help = true;
        return 0;
    case OPT_VERSION:
        a->version = true;
        return 0;
    case OPT_CONFIG:
        return 0; /* read first, by read_config */
    case OPT_LOG_FORMAT:
        if (strcmp(v, "text") == 0)
            a->log_json = false;
        else if (strcmp(v, "json") == 0)
            a->log_json = true;
        else
            return tt_flags_errf(err, "bad --log-format '%s' (text or json)", v);
        return 0;
    }
    return tt_flags_errf(err, "unknown option '%s'", flag);
}

/* Windows' permission bits say nothing of who may read a file (its ACL does): there a token line
 * is not refused for them. */
#if defined(_WIN32)
#define TT_ARGS_WINDOWS 1
#else
#define TT_ARGS_WINDOWS 0
#endif

#define NOPTS (sizeof opts / sizeof opts[0])

/* A boolean setting's value in the file: 1 (empty, true, yes, on, 1), 0 (false, no, off, 0), or
 * -1. */
static int file_bool(const char *v)
{
    static const char *const yes[] = {"", "true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (strcasecmp(v, yes[i]) == 0)
            return 1;
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (strcasecmp(v, no[i]) == 0)
            return 0;
    return -1;
}

/* Finds --config FILE in argv: 0 with a->config NULL (none) or set, -1 with a message. */
static int find_config(struct tt_args *a, int argc, char **argv, char err[TT_ERRLEN])
{
    for (int i = 1; i < argc; i++) {
        const char *v;
        char e[TT_ERRLEN];
        if (strncmp(argv[i], "--", 2) != 0 || argv[i][2] == '\0')
            continue; /* tt_args_parse reports it */
        int k = tt_flags_next(opts, NOPTS, argc, argv, &i, &v, "--help", e);
        if (k < 0 || opts[k].id != OPT_CONFIG)
            continue; /* another flag (its value skipped), or an error tt_args_parse reports */
        if (a->config)
            return tt_flags_errf(err, "--config given twice");
        if (v[0] == '\0')
            return tt_flags_errf(err, "--config: empty file name");
        a->config = v;
    }
    return 0;
}

/* Reads a->config and applies its settings, each remembered in a->from_file. */
static int read_config(struct tt_args *a, char err[TT_ERRLEN])
{
    const char *path = a->config;
    char e[TT_ERRLEN];

    a->file = calloc(1, sizeof *a->file);
    if (a->file == NULL)
        return tt_flags_errf(err, "--config %.200s: out of memory", path);
    int rc = tt_configfile_read(path, a->file, err);
    if (rc != 0) {
        free(a->file);
        a->file = NULL;
        return rc == TT_CONFIGFILE_IO ? TT_ARGS_IO : -1;
    }
    for (size_t i = 0; i < a->file->n; i++) {
        const struct tt_configfile_item *it = &a->file->items[i];
        size_t k = tt_flags_find(opts, NOPTS, it->flag + 2, strlen(it->flag + 2));
        if (k == NOPTS || opts[k].id == OPT_CONFIG || opts[k].id == OPT_HELP ||
            opts[k].id == OPT_VERSION)
            return tt_flags_errf(err, "%.200s:%u: unknown setting '%.40s'", path, it->line,
                                 it->flag + 2);
        if (opts[k].id == OPT_TOKEN && !TT_ARGS_WINDOWS && (a->file->mode & 0004u))
            return tt_flags_errf(
                err,
                "%.200s:%u: a token in a file that every user can read: use token-file "
                "FILE, or chmod o-r the file",
                path, it->line);
        if (!opts[k].has_value) {
            int on = file_bool(it->value);
            if (on < 0)
                return tt_flags_errf(err, "%.200s:%u: %s: expected true or false, not '%.40s'",
                                     path, it->line, it->flag, it->value);
            if (!on)
                continue;
        }
        if (apply(a, opts[k].id, it->flag, it->value, e) != 0)
            return tt_flags_errf(err, "%.200s:%u: %s", path, it->line, e);
        a->from_file |= 1u << opts[k].id;
        if (opts[k].id == OPT_HTTP || opts[k].id == OPT_TCP)
            a->services[a->nservices - 1].from_file = true;
    }
    return 0;
}

/* Before the command line's flag id: what the file set for it goes (the command line wins). */
static void forget_file_value(struct tt_args *a, enum opt_id id)
{
    unsigned bits = 1u << id;
    if (id == OPT_TOKEN || id == OPT_TOKEN_FILE) /* one setting, two spellings */
        bits = (1u << OPT_TOKEN) | (1u << OPT_TOKEN_FILE);
    if (!(a->from_file & bits))
        return;
    a->from_file &= ~(1u << id);
    switch (id) {
    case OPT_SERVER:
        a->nservers = 0;
        break;
    case OPT_NAME:
        a->name = NULL;
        break;
    case OPT_TOKEN:
    case OPT_TOKEN_FILE:
        a->token = a->token_file = NULL;
        a->from_file &= ~((1u << OPT_TOKEN) | (1u << OPT_TOKEN_FILE));
        break;
    case OPT_HTTP:
    case OPT_TCP: {
        enum tether_service_kind kind = id == OPT_HTTP ? TETHER_SERVICE_HTTP : TETHER_SERVICE_TCP;
        size_t n = 0;
        for (size_t i = 0; i < a->nservices; i++)
            if (!(a->services[i].from_file && a->services[i].kind == kind))
                a->services[n++] = a->services[i];
        a->nservices = n;
        break;
    }
    case OPT_PROXY:
        a->proxy = NULL;
        break;
    case OPT_NOPROXY:
        a->noproxy = NULL;
        break;
    case OPT_STATE_DIR:
        a->state_dir = NULL;
        break;
    case OPT_DNS:
        a->dns = NULL;
        break;
    default: /* the others may be given again: the last one counts */
        break;
    }
}

static int parse(struct tt_args *a, int argc, char **argv, char err[TT_ERRLEN])
{
    int rc = find_config(a, argc, argv, err);
    if (rc == 0 && a->config)
        rc = read_config(a, err);
    if (rc != 0)
        return rc;
    /* the token from the other source must not look like a clash: one of them is dropped */
    if ((a->from_file & (1u << OPT_TOKEN)) && (a->from_file & (1u << OPT_TOKEN_FILE)))
        return tt_flags_errf(err, "%.200s: token and token-file cannot be used together",
                             a->config);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value;

        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
            return tt_flags_errf(err, "unexpected argument '%s' (see --help)", arg);
        int k = tt_flags_next(opts, NOPTS, argc, argv, &i, &value, "--help", err);
        if (k < 0)
            return -1;
        forget_file_value(a, (enum opt_id)opts[k].id);
        if (apply(a, (enum opt_id)opts[k].id, arg, value, err) != 0)
            return -1;
    }
    if (a->help || a->version)
        return 0;
    if (a->nservers == 0)
        return tt_flags_errf(err, "missing --server URL (the relay, ws://HOST:PORT)");
    if (a->name == NULL)
        return tt_flags_errf(err, "missing --name NAME");
    if (a->token && a->token_file)
        return tt_flags_errf(err, "--token and --token-file cannot be used together");
    if (a->token == NULL && a->token_file == NULL) {
        const char *env = getenv("TETHER_TOKEN");
        if (env == NULL || env[0] == '\0')
            return tt_flags_errf(
                err, "missing --token TOKEN (or --token-file FILE, or TETHER_TOKEN in the "
                     "environment)");
        a->token = env;
        a->token_from_env = true;
    }
    if (a->nservices == 0)
        return tt_flags_errf(err, "no service to expose: give --http [NAME=]HOST:PORT or --tcp "
                                  "NAME=HOST:PORT");
    name_unnamed(a);
    return 0;
}

int tt_args_parse(struct tt_args *a, int argc, char **argv, char err[TT_ERRLEN])
{
    memset(a, 0, sizeof *a);
    a->log_level = -1;
    err[0] = '\0';
    int rc = parse(a, argc, argv, err);
    if (rc != 0)
        tt_args_free(a);
    return rc;
}

void tt_args_free(struct tt_args *a)
{
    if (a->file) {
        for (size_t i = 0; i < a->file->n; i++) /* a token line's value */
            if (strcmp(a->file->items[i].flag, "--token") == 0)
                tt_secret_wipe((char *)a->file->items[i].value, strlen(a->file->items[i].value));
        tt_configfile_free(a->file);
        free(a->file);
        a->file = NULL;
    }
}

int tt_args_to_config(const struct tt_args *a, tether_config **out, char err[TT_ERRLEN])
{
    tether_config *cfg;
    int rc = 0;

    if (tether_config_new(&cfg) != 0)
        return tt_flags_errf(err, "out of memory");
    for (size_t i = 0; i < a->nservers && rc == 0; i++) {
        rc = tether_config_add_server(cfg, a->servers[i]);
        if (rc != 0)
            tt_flags_errf(err, "--server: %s", tether_config_error(cfg));
    }
    if (rc == 0 && (rc = tether_config_set_name(cfg, a->name)) != 0)
        tt_flags_errf(err, "--name: %s", tether_config_error(cfg));
    if (rc == 0 && (rc = tether_config_set_token(cfg, a->token)) != 0)
        tt_flags_errf(err, "%s: %s",
                      a->token_file       ? "--token-file"
                      : a->token_from_env ? "TETHER_TOKEN"
                                          : "--token",
                      tether_config_error(cfg));
    for (size_t i = 0; i < a->nservices && rc == 0; i++) {
        const struct tt_args_service *s = &a->services[i];
        bool http = s->kind == TETHER_SERVICE_HTTP;

        rc = http ? tether_config_add_http(cfg, s->name, s->target)
                  : tether_config_add_tcp(cfg, s->name, s->target);
        if (rc != 0)
            tt_flags_errf(err, "%s %s: %s", http ? "--http" : "--tcp", s->value,
                          tether_config_error(cfg));
    }
    if (rc == 0)
        rc = tt_flags_config_dial(cfg, a->proxy, a->noproxy, a->ca_file, a->dns, a->insecure, err);
    if (rc == 0 && a->state_dir && (rc = tether_config_set_state_dir(cfg, a->state_dir)) != 0)
        tt_flags_errf(err, "--state-dir: %s", tether_config_error(cfg));
    if (rc == 0 && (rc = tether_config_check(cfg)) != 0)
        tt_flags_errf(err, "%s", tether_config_error(cfg));
    if (rc != 0) {
        tether_config_free(cfg);
        return -1;
    }
    *out = cfg;
    return 0;
}
