/* config.c - parses tetherd's flags into struct tt_config (config.h). Every check that can be
 * made without touching the system is made here, so that a bad command line exits 2 before
 * anything is bound or created. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>
#include "relay/config.h"
#include "common/configfile.h"
#include "common/log.h"

void tt_config_usage(FILE *f)
{
    fputs(
        "usage: tetherd [--listen ADDR:PORT]... [--domain DOMAIN] [--public-url URL]\n"
        "               [--tcp-ports LOW-HIGH] [--tcp-bind ADDR] [--grace DURATION]\n"
        "               [--data-dir DIR]\n"
        "               [--token TOKEN | --token-file FILE | --tokens-file FILE]\n"
        "               [--tls-listen ADDR:PORT --tls-cert FILE --tls-key FILE]\n"
        "               [--tls-ticket-rotate DURATION|off]\n"
        "               [--admin-listen ADDR:PORT [--admin-token TOKEN | --admin-token-file "
        "FILE]]\n"
        "               [--log-level LEVEL] [--log-format text|json]\n"
        "               [--max-streams N] [--head-timeout DURATION] [--idle-timeout DURATION]\n"
        "               [--max-pending N] [--max-pending-per-addr N]\n"
        "               [--max-streams-per-client N] [--body-timeout DURATION]\n"
        "               [--body-min-rate BYTES] [--tcp-idle-timeout DURATION]\n"
        "               [--max-names-per-token N] [--max-ports-per-token N]\n"
        "               [--new-names-per-second N]\n"
        "               [--max-registering N] [--drain-rate N]\n"
        "               [--access public|private] [--public DEVICE/SERVICE]...\n"
        "               [--users-file FILE] [--tcp-allow CIDR]... [--audit-log FILE]\n"
        "               [--session-ttl DURATION] [--metrics-per-device auto|on|off]\n"
        "               [--webhook URL]... [--webhook-secret SECRET |\n"
        "               --webhook-secret-file FILE] [--webhook-queue N]\n"
        "               [--webhook-max-age DURATION]\n"
        "               [--config FILE]\n"
        "               [--redis URL --node-id ID --advertise URL [--cluster-addr ADDR:PORT]]\n"
        "       tetherd --hash-secret\n"
        "       tetherd admin [--admin-url URL] COMMAND...   (tetherd admin --help)\n"
        "       tetherd token status|rotate [--data-dir DIR]   (tetherd token --help)\n"
        "\n"
        "The Tether relay: devices dial in over WebSocket; browsers and TCP clients reach them\n"
        "through it.\n"
        "\n"
        "  --listen ADDR:PORT     devices and browsers (repeatable; default 127.0.0.1:8080)\n"
        "  --domain DOMAIN        device URLs are http://LABEL.DOMAIN[:PORT] (default localhost)\n"
        "  --public-url URL       base of device URLs (default http://DOMAIN:PORT of the first\n"
        "                         --listen; the port is left out when it is 80); with\n"
        "                         https://HOST they are https://LABEL.HOST\n"
        "  --tls-listen ADDR:PORT devices (wss://) and browsers (https://) over TLS (repeatable;\n"
        "                         plain HTTP there is answered 400, use https)\n"
        "  --tls-cert FILE        PEM certificate for *.DOMAIN and its chain (SIGHUP re-reads)\n"
        "  --tls-key FILE         its PEM private key (SIGHUP re-reads it)\n"
        "  --tls-ticket-rotate DURATION  TLS session tickets (resumption): the ticket key\n"
        "                         changes this often, a ticket is accepted for two periods\n"
        "                         at most (1s to 7d, default 12h; off: no resumption)\n"
        "  --tcp-ports LOW-HIGH   public ports for raw TCP services (default 20000-20999)\n"
        "  --tcp-bind ADDR        address the TCP ports bind (default: the first --listen's)\n"
        "  --grace DURATION       how long an offline device keeps its label and ports\n"
        "                         (30s, 5m, 2h, 7d; default 1h)\n"
        "  --data-dir DIR         the registry (labels, ports, credentials): kept across\n"
        "                         restarts and kill -9 (default ./tether-data)\n"
        "  --token TOKEN          the token every device presents (visible in the process\n"
        "                         list: prefer --token-file or TETHER_TOKEN)\n"
        "  --token-file FILE      read that token from the first line of FILE\n"
        "  --tokens-file FILE     one 'NAME TOKEN' pair per line; reloaded on SIGHUP\n"
        "                         (none of the three: a token is made at the first start that\n"
        "                         serves and printed once; see tetherd token --help)\n"
        "  --admin-listen ADDR:PORT  admin API, dashboard and metrics (default 127.0.0.1:9090)\n"
        "  --admin-token TOKEN    Bearer token the admin listener asks for (but on /healthz);\n"
        "                         needed to listen on an address that is not loopback\n"
        "  --admin-token-file FILE  read the admin token from the first line of FILE\n"
        "  --log-level LEVEL      error, warn, info or debug (default info)\n"
        "  --log-format FORMAT    text (default) or json: each log line on stderr as one JSON\n"
        "                         object {\"time\",\"program\",\"level\",\"msg\",KEY:VALUE...}\n"
        "  --max-streams N        concurrent streams per device, 1-65535 (default 1024)\n"
        "  --head-timeout DURATION  a request head must arrive whole within this (default 30s)\n"
        "  --idle-timeout DURATION  close a browser connection silent both ways this long\n"
        "                         (default 60s; 0s: never)\n"
        "  --max-pending N        connections without a whole request head or device HELLO\n"
        "                         yet; beyond, the oldest is shed (default: half the open-file\n"
        "                         limit, at most 16384)\n"
        "  --max-pending-per-addr N  the same per client address (IPv6: per /64); beyond, a\n"
        "                         new one is closed (default 128; 0: no cap)\n"
        "  --max-streams-per-client N  a device's streams per client address (default\n"
        "                         max-streams/8, at least 16 or max-streams; 0: no cap)\n"
        "  --body-timeout DURATION  a request body must arrive whole within this (default\n"
        "                         30s; 0s: never)...\n"
        "  --body-min-rate BYTES  ...plus one second per BYTES received (default 500)\n"
        "  --tcp-idle-timeout DURATION  close a TCP client silent both ways this long\n"
        "                         (default 1h; 0s: never)\n"
        "  --max-names-per-token N  names the fleet token may hold (each gets a device key at\n"
        "                         its first registration; default 100000)\n"
        "  --max-ports-per-token N  TCP ports those names may hold (default: half of\n"
        "                         --tcp-ports)\n"
        "  --new-names-per-second N  names the fleet token may create a second, with ten\n"
        "                         seconds' worth at once (default 100)\n"
        "  --max-registering N    device registrations in progress (WebSocket accepted, not\n"
        "                         answered yet); beyond, a device's handshake is answered\n"
        "                         503 with Retry-After (default 1024; 0: no cap)\n"
        "  --drain-rate N         devices a draining node (POST /api/drain) sends to the\n"
        "                         other nodes per second (default 50)\n"
        "  --access public|private  public (default): every service is reachable by anyone;\n"
        "                         private: only by users whose grant covers it (a private\n"
        "                         TCP service gets no public port)\n"
        "  --public DEVICE/SERVICE  with --access private, services matching this pattern stay\n"
        "                         public ('*' and '?' globs; repeatable): '*/http'\n"
        "  --users-file FILE      one 'USER SECRET GRANT...' per line (SECRET as is, or the\n"
        "                         hash --hash-secret prints); reloaded on SIGHUP\n"
        "  --tcp-allow CIDR       public TCP ports take clients from these networks only\n"
        "                         (repeatable; default: any)\n"
        "  --audit-log FILE       one JSON line per connection to a device service and per\n"
        "                         sign-in (appended; reopened on SIGHUP)\n"
        "  --session-ttl DURATION  browser sign-in sessions last this long (default 12h;\n"
        "                         1s to 30d); sign out at /.tether/signout on the device\n"
        "  --webhook URL          POST one JSON object per device event (online, offline,\n"
        "                         expired, takeover, deleted) to this http:// or https://\n"
        "                         URL (repeatable, at most 8); retried with back-off\n"
        "  --webhook-secret SECRET  sign each body: X-Tether-Signature: sha256=HMAC-SHA256\n"
        "                         (visible in the process list: prefer the file or\n"
        "                         TETHER_WEBHOOK_SECRET)\n"
        "  --webhook-secret-file FILE  read that secret from the first line of FILE\n"
        "  --webhook-queue N      events waiting for delivery, all URLs together; beyond,\n"
        "                         new ones are dropped and counted (default 10000)\n"
        "  --webhook-max-age DURATION  retry an event this long, then drop it (default 1h)\n"
        "  --metrics-per-device auto|on|off  /metrics' series per device (bytes in and out):\n"
        "                         auto (default) has them while the node knows at most 1000\n"
        "                         devices\n"
        "  --hash-secret          read a secret on stdin, print its hash for --users-file\n"
        "  --config FILE          settings, one per line: a flag's name and its value\n"
        "                         ('listen 0.0.0.0:80', 'grace = 2h'); flags given on the\n"
        "                         command line win\n"
        "  --redis URL            cluster mode: the registry is kept in Redis and shared by\n"
        "                         every node (redis://[:PASSWORD@]HOST[:PORT][/DB]); the\n"
        "                         master through Redis Sentinel, following failovers:\n"
        "                         redis-sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT]...\n"
        "                         [/MASTER][/DB] (MASTER default mymaster)\n"
        "  --node-id ID           this node's name in the cluster (letters, digits, '.-_')\n"
        "  --advertise URL        ws:// or wss:// URL devices use to reach this node (where\n"
        "                         other nodes redirect devices to)\n"
        "  --cluster-addr ADDR:PORT  where the other nodes reach this node's --listen service\n"
        "                         (default: the first --listen; needed if that is 0.0.0.0/::)\n"
        "  --help, --version\n"
        "\n"
        "Without --token, --token-file or --tokens-file, the token comes from the environment\n"
        "variable TETHER_TOKEN; without that either, a token is created on first start, kept\n"
        "(hashed) in the registry (DATA_DIR, or Redis with --redis) and printed once. Without\n"
        "--admin-token or --admin-token-file, the admin token comes from TETHER_ADMIN_TOKEN.\n",
        f);
}

/* "localhost" or an IPv4/IPv6 literal; host is rewritten to the literal. */
static int check_ip(char host[TT_HOSTLEN], const char *flag, char err[TT_ERRLEN])
{
    unsigned char buf[sizeof(struct in6_addr)];
    if (strcasecmp(host, "localhost") == 0) {
        strcpy(host, "127.0.0.1");
        return 0;
    }
    if (uv_inet_pton(AF_INET, host, buf) == 0 || uv_inet_pton(AF_INET6, host, buf) == 0)
        return 0;
    snprintf(err, TT_ERRLEN, "%s: '%s' is not an IP address", flag, host);
    return -1;
}

static int parse_addr(const char *v, struct tt_config_addr *a, const char *flag,
                      char err[TT_ERRLEN])
{
    char e[TT_ERRLEN];
    if (tt_parse_hostport(v, a->host, &a->port, false, e) != 0) {
        snprintf(err, TT_ERRLEN, "%s: %.200s", flag, e);
        return -1;
    }
    return check_ip(a->host, flag, err);
}

static int parse_domain(const char *v, char out[TT_HOSTLEN], char err[TT_ERRLEN])
{
    size_t n = strlen(v);
    if (n == 0 || n > TT_CONFIG_MAX_DOMAIN || v[0] == '.' || v[0] == '-' || v[n - 1] == '.') {
        snprintf(err, TT_ERRLEN, "--domain: '%.100s' is not a valid domain", v);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = (char)tolower((unsigned char)v[i]);
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.';
        if (!ok || (ch == '.' && v[i + 1] == '.')) {
            snprintf(err, TT_ERRLEN, "--domain: '%.100s' is not a valid domain", v);
            return -1;
        }
        out[i] = ch;
    }
    out[n] = '\0';
    return 0;
}

static int parse_public_url(struct tt_config *c, const char *v, char err[TT_ERRLEN])
{
    static const char *const schemes[] = {"http", "https", NULL};
    struct tt_url u;
    char e[TT_ERRLEN];
    if (tt_parse_url(v, schemes, &u, e) != 0) {
        snprintf(err, TT_ERRLEN, "--public-url: %.200s", e);
        return -1;
    }
    if (u.user[0] || u.pass[0] || strlen(u.host) > TT_CONFIG_MAX_DOMAIN) {
        snprintf(err, TT_ERRLEN, "--public-url: '%.100s' is not a valid base URL", v);
        return -1;
    }
    snprintf(c->url_scheme, sizeof(c->url_scheme), "%s", u.scheme);
    snprintf(c->url_host, sizeof(c->url_host), "%s", u.host);
    for (char *p = c->url_host; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    bool dflt = (strcmp(u.scheme, "http") == 0 && u.port == 80) ||
                (strcmp(u.scheme, "https") == 0 && u.port == 443);
    c->url_port = dflt ? 0 : u.port;
    return 0;
}

/* One HOST[:PORT] of len bytes at s into host, port (dflt when absent). Returns 0 or -1. */
static int redis_hostport(const char *s, size_t len, uint16_t dflt, char host[TT_HOSTLEN],
                          uint16_t *port, const char *url, char err[TT_ERRLEN])
{
    char hp[TT_HOSTLEN + 8];
    char e[TT_ERRLEN];
    if (len == 0 || len >= sizeof(hp) - 8) {
        snprintf(err, TT_ERRLEN, "--redis: '%.100s' has no host", url);
        return -1;
    }
    memcpy(hp, s, len);
    hp[len] = '\0';
    /* HOST alone: the default port */
    bool has_port = hp[0] == '[' ? strstr(hp, "]:") != NULL : strchr(hp, ':') != NULL;
    if (!has_port)
        snprintf(hp + len, sizeof(hp) - len, ":%u", (unsigned)dflt);
    if (tt_parse_hostport(hp, host, port, false, e) != 0) {
        snprintf(err, TT_ERRLEN, "--redis: %.200s", e);
        return -1;
    }
    return 0;
}

/* "/DB" at s (NUL-terminated, after the slash): 0 to 15. */
static int redis_db(const char *s, unsigned *db, char err[TT_ERRLEN])
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || v > 15) {
        snprintf(err, TT_ERRLEN, "--redis: database '%.20s' is not a number from 0 to 15", s);
        return -1;
    }
    *db = (unsigned)v;
    return 0;
}

/* The sentinel list, "/MASTER" and "/DB" of a redis-sentinel:// URL (rest: after the
 * password). */
static int redis_sentinel_rest(const char *rest, const char *url, struct tt_redis_url *out,
                               char err[TT_ERRLEN])
{
    out->sentinel = true;
    out->port = 0;
    snprintf(out->master, sizeof(out->master), "%s", TT_REDIS_DEFAULT_MASTER);
    const char *slash = strchr(rest, '/');
    const char *hend = slash ? slash : rest + strlen(rest);
    const char *p = rest;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(hend - p));
        const char *e = comma ? comma : hend;
        if (out->nsentinels == TT_REDIS_MAX_SENTINELS) {
            snprintf(err, TT_ERRLEN, "--redis: at most %d sentinels", TT_REDIS_MAX_SENTINELS);
            return -1;
        }
        struct tt_config_addr *a = &out->sentinels[out->nsentinels];
        if (redis_hostport(p, (size_t)(e - p), TT_REDIS_SENTINEL_PORT, a->host, &a->port, url,
                           err) != 0)
            return -1;
        out->nsentinels++;
        if (!comma)
            break;
        p = comma + 1;
    }
    if (!slash || slash[1] == '\0')
        return 0;
    const char *m = slash + 1;
    const char *slash2 = strchr(m, '/');
    size_t mlen = slash2 ? (size_t)(slash2 - m) : strlen(m);
    if (mlen > TT_REDIS_MASTER_MAX) {
        snprintf(err, TT_ERRLEN, "--redis: master name longer than %d characters",
                 TT_REDIS_MASTER_MAX);
        return -1;
    }
    for (size_t i = 0; i < mlen; i++) {
        unsigned char ch = (unsigned char)m[i];
        if (!isalnum(ch) && ch != '-' && ch != '_' && ch != '.') {
            snprintf(err, TT_ERRLEN,
                     "--redis: master name '%.*s' may hold only letters, digits, '-', '_' and '.'",
                     (int)(mlen < 64 ? mlen : 64), m);
            return -1;
        }
    }
    if (mlen > 0) {
        memcpy(out->master, m, mlen);
        out->master[mlen] = '\0';
    }
    if (slash2 && slash2[1] != '\0')
        return redis_db(slash2 + 1, &out->db, err);
    return 0;
}

int tt_config_parse_redis_url(const char *s, struct tt_redis_url *out, char err[TT_ERRLEN])
{
    static const char scheme[] = "redis://";
    static const char sscheme[] = "redis-sentinel://";
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    bool sentinel = strncasecmp(s, sscheme, sizeof(sscheme) - 1) == 0;
    if (!sentinel && strncasecmp(s, scheme, sizeof(scheme) - 1) != 0) {
        snprintf(err, TT_ERRLEN,
                 "--redis: '%.100s' is not a redis://[:PASSWORD@]HOST:PORT[/DB] or "
                 "redis-sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT]...[/MASTER][/DB] URL",
                 s);
        return -1;
    }
    const char *rest = s + (sentinel ? sizeof(sscheme) : sizeof(scheme)) - 1;
    const char *at = strrchr(rest, '@');
    if (at) {
        if (rest[0] != ':' || at == rest + 1) {
            snprintf(err, TT_ERRLEN, "--redis: give the password as %s:PASSWORD@HOST:PORT",
                     sentinel ? "redis-sentinel://" : "redis://");
            return -1;
        }
        size_t n = (size_t)(at - rest - 1);
        if (n >= sizeof(out->password)) {
            snprintf(err, TT_ERRLEN, "--redis: password too long");
            return -1;
        }
        memcpy(out->password, rest + 1, n);
        out->password[n] = '\0';
        rest = at + 1;
    }
    if (sentinel)
        return redis_sentinel_rest(rest, s, out, err);
    const char *slash = strchr(rest, '/');
    size_t hlen = slash ? (size_t)(slash - rest) : strlen(rest);
    if (redis_hostport(rest, hlen, 6379, out->host, &out->port, s, err) != 0)
        return -1;
    if (slash && slash[1] != '\0')
        return redis_db(slash + 1, &out->db, err);
    return 0;
}

static int parse_node_id(const char *v, char out[TT_NODE_ID_MAX + 1], char err[TT_ERRLEN])
{
    size_t n = strlen(v);
    if (n == 0 || n > TT_NODE_ID_MAX) {
        snprintf(err, TT_ERRLEN, "--node-id: must be 1 to %d characters", TT_NODE_ID_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (!isalnum(ch) && ch != '-' && ch != '_' && ch != '.') {
            snprintf(err, TT_ERRLEN,
                     "--node-id: '%.64s' may hold only letters, digits, '-', '_' and '.'", v);
            return -1;
        }
    }
    memcpy(out, v, n + 1);
    return 0;
}

static int parse_advertise(const char *v, char out[TT_ADVERTISE_MAX + 1], char err[TT_ERRLEN])
{
    static const char *const schemes[] = {"ws", "wss", NULL};
    struct tt_url u;
    char e[TT_ERRLEN];
    if (strlen(v) > TT_ADVERTISE_MAX) {
        snprintf(err, TT_ERRLEN, "--advertise: URL too long (at most %d bytes)", TT_ADVERTISE_MAX);
        return -1;
    }
    if (tt_parse_url(v, schemes, &u, e) != 0 || u.user[0] || u.pass[0] || strchr(v, '?') ||
        strchr(v, '#')) {
        snprintf(err, TT_ERRLEN,
                 "--advertise: '%.100s' is not a ws://HOST[:PORT][/PATH] or "
                 "wss://... URL",
                 v);
        return -1;
    }
    strcpy(out, v);
    return 0;
}

static int copy_value(char *dst, size_t dstlen, const char *v, const char *flag,
                      char err[TT_ERRLEN])
{
    if (v[0] == '\0') {
        snprintf(err, TT_ERRLEN, "%s: empty value", flag);
        return -1;
    }
    if (strlen(v) >= dstlen) {
        snprintf(err, TT_ERRLEN, "%s: value too long", flag);
        return -1;
    }
    strcpy(dst, v);
    return 0;
}

/* Applies one flag and its value. Returns 0 or -1 with err. */
/* What was given so far: url and bind across the file and the command line; listen_given is
 * per source, so that --listen on the command line replaces the file's listeners. */
struct given {
    bool listen, tls_listen, url, bind, per_client;
};

/* The abuse limits' flags (limits.h): a number or a duration, and its range. */
static const struct {
    const char *flag;
    bool duration;
    uint64_t min, max;
    size_t off;
} limit_flags[] = {
    {"--max-pending", false, 1, 10000000, offsetof(struct tt_config, max_pending)},
    {"--max-pending-per-addr", false, 0, 10000000,
     offsetof(struct tt_config, max_pending_per_addr)},
    {"--max-streams-per-client", false, 0, 65535,
     offsetof(struct tt_config, max_streams_per_client)},
    {"--body-timeout", true, 0, 3600000, offsetof(struct tt_config, body_timeout_ms)},
    {"--body-min-rate", false, 0, 1000000000, offsetof(struct tt_config, body_min_rate)},
    {"--tcp-idle-timeout", true, 0, 7ull * 86400000,
     offsetof(struct tt_config, tcp_idle_timeout_ms)},
    {"--webhook-queue", false, 1, 1000000, offsetof(struct tt_config, webhook_queue)},
    {"--max-registering", false, 0, 1000000, offsetof(struct tt_config, max_registering)},
    {"--drain-rate", false, 1, 100000, offsetof(struct tt_config, drain_rate)},
    {"--webhook-max-age", true, 1000, 7ull * 86400000,
     offsetof(struct tt_config, webhook_max_age_ms)},
};

/* One of limit_flags into c. Returns 1 (set), 0 (not one of them) or -1 with err. */
static int apply_limit(struct tt_config *c, const char *flag, const char *v, char err[TT_ERRLEN])
{
    for (size_t i = 0; i < sizeof(limit_flags) / sizeof(limit_flags[0]); i++) {
        if (strcmp(flag, limit_flags[i].flag) != 0)
            continue;
        char e[TT_ERRLEN], *end;
        uint64_t n = 0;
        bool ok = limit_flags[i].duration
                      ? tt_parse_duration(v, &n, e) == 0
                      : v[0] >= '0' && v[0] <= '9' && (n = strtoull(v, &end, 10), *end == '\0');
        if (!ok || n < limit_flags[i].min || n > limit_flags[i].max) {
            if (limit_flags[i].duration)
                snprintf(err, TT_ERRLEN, "%s: '%.100s' is not a duration up to %llus", flag, v,
                         (unsigned long long)(limit_flags[i].max / 1000));
            else
                snprintf(err, TT_ERRLEN, "%s: '%.100s' is not a number from %llu to %llu", flag, v,
                         (unsigned long long)limit_flags[i].min,
                         (unsigned long long)limit_flags[i].max);
            return -1;
        }
        memcpy((char *)c + limit_flags[i].off, &n, sizeof(n));
        return 1;
    }
    return 0;
}

/* The access flags (access.h). Returns 1 (set), 0 (not one of them) or -1 with err. */
static int apply_access(struct tt_config *c, const char *flag, const char *v, char err[TT_ERRLEN])
{
    char e[TT_ERRLEN];
    if (strcmp(flag, "--access") == 0) {
        if (strcmp(v, "public") != 0 && strcmp(v, "private") != 0) {
            snprintf(err, TT_ERRLEN, "--access: '%.60s' is not public or private", v);
            return -1;
        }
        c->access = v[1] == 'r' ? TT_ACCESS_PRIVATE : TT_ACCESS_PUBLIC;
        return 1;
    }
    if (strcmp(flag, "--metrics-per-device") == 0) {
        if (strcmp(v, "auto") == 0)
            c->metrics_per_device = TT_METRICS_PER_DEVICE_AUTO;
        else if (strcmp(v, "on") == 0)
            c->metrics_per_device = TT_METRICS_PER_DEVICE_ON;
        else if (strcmp(v, "off") == 0)
            c->metrics_per_device = TT_METRICS_PER_DEVICE_OFF;
        else {
            snprintf(err, TT_ERRLEN, "--metrics-per-device: '%.60s' is not auto, on or off", v);
            return -1;
        }
        return 1;
    }
    if (strcmp(flag, "--public") == 0) {
        if (c->npublic == TT_CONFIG_MAX_PUBLIC) {
            snprintf(err, TT_ERRLEN, "--public: at most %d patterns", TT_CONFIG_MAX_PUBLIC);
            return -1;
        }
        if (tt_pattern_check(v, e) != 0) {
            snprintf(err, TT_ERRLEN, "--public: %s", e);
            return -1;
        }
        strcpy(c->public_patterns[c->npublic++], v);
        return 1;
    }
    if (strcmp(flag, "--tcp-allow") == 0) {
        if (c->ntcp_allow == TT_CONFIG_MAX_TCP_ALLOW) {
            snprintf(err, TT_ERRLEN, "--tcp-allow: at most %d networks", TT_CONFIG_MAX_TCP_ALLOW);
            return -1;
        }
        if (tt_cidr_parse(v, &c->tcp_allow[c->ntcp_allow], e) != 0) {
            snprintf(err, TT_ERRLEN, "--tcp-allow: %s", e);
            return -1;
        }
        c->ntcp_allow++;
        return 1;
    }
    if (strcmp(flag, "--users-file") == 0 || strcmp(flag, "--audit-log") == 0)
        return copy_value(flag[2] == 'u' ? c->users_file : c->audit_log, TT_CONFIG_PATHLEN, v, flag,
                          err) == 0
                   ? 1
                   : -1;
    if (strcmp(flag, "--session-ttl") == 0) {
        uint64_t ms;
        if (tt_parse_duration(v, &ms, e) != 0 || ms < 1000 || ms > 30ull * 86400000) {
            snprintf(err, TT_ERRLEN, "--session-ttl: '%.60s' is not a duration from 1s to 30d", v);
            return -1;
        }
        c->session_ttl_ms = ms;
        return 1;
    }
    return 0;
}

/* --webhook (checked now: a bad URL exits 2), --webhook-secret, --webhook-secret-file.
 * Returns 1 (set), 0 (not one of them) or -1 with err. */
static int apply_webhook(struct tt_config *c, const char *flag, const char *v, char err[TT_ERRLEN])
{
    if (strcmp(flag, "--webhook") == 0) {
        struct tt_webhook_url u;
        if (c->nwebhooks == TT_CONFIG_MAX_WEBHOOKS) {
            snprintf(err, TT_ERRLEN, "--webhook: at most %d URLs", TT_CONFIG_MAX_WEBHOOKS);
            return -1;
        }
        if (tt_webhook_parse_url(v, &u, err) != 0)
            return -1;
        snprintf(c->webhooks[c->nwebhooks++], TT_WEBHOOK_URL_MAX + 1, "%s", v);
        return 1;
    }
    if (strcmp(flag, "--webhook-secret") == 0) {
        if (strlen(v) > TT_WEBHOOK_SECRET_MAX) {
            snprintf(err, TT_ERRLEN, "--webhook-secret: longer than %d bytes",
                     TT_WEBHOOK_SECRET_MAX);
            return -1;
        }
        if (tt_check_secret(v, TT_WEBHOOK_SECRET_MAX, "--webhook-secret", err) != 0)
            return -1;
        strcpy(c->webhook_secret, v);
        return 1;
    }
    if (strcmp(flag, "--webhook-secret-file") == 0)
        return copy_value(c->webhook_secret_file, TT_CONFIG_PATHLEN, v, flag, err) == 0 ? 1 : -1;
    return 0;
}

static int apply(struct tt_config *c, const char *flag, const char *v, struct given *g,
                 char err[TT_ERRLEN])
{
    char e[TT_ERRLEN];
    if (strcmp(flag, "--listen") == 0) {
        if (!g->listen)
            c->nlisten = 0;
        g->listen = true;
        if (c->nlisten == TT_CONFIG_MAX_LISTEN) {
            snprintf(err, TT_ERRLEN, "--listen: at most %d listeners", TT_CONFIG_MAX_LISTEN);
            return -1;
        }
        return parse_addr(v, &c->listen[c->nlisten++], flag, err);
    }
    if (strcmp(flag, "--tls-listen") == 0) {
        if (!g->tls_listen)
            c->ntls_listen = 0;
        g->tls_listen = true;
        if (c->ntls_listen == TT_CONFIG_MAX_LISTEN) {
            snprintf(err, TT_ERRLEN, "--tls-listen: at most %d listeners", TT_CONFIG_MAX_LISTEN);
            return -1;
        }
        return parse_addr(v, &c->tls_listen[c->ntls_listen++], flag, err);
    }
    if (strcmp(flag, "--tls-cert") == 0)
        return copy_value(c->tls_cert, sizeof(c->tls_cert), v, flag, err);
    if (strcmp(flag, "--tls-key") == 0)
        return copy_value(c->tls_key, sizeof(c->tls_key), v, flag, err);
    if (strcmp(flag, "--domain") == 0)
        return parse_domain(v, c->domain, err);
    if (strcmp(flag, "--public-url") == 0) {
        g->url = true;
        return parse_public_url(c, v, err);
    }
    if (strcmp(flag, "--tcp-ports") == 0) {
        if (tt_parse_port_range(v, &c->tcp_low, &c->tcp_high, e) != 0) {
            snprintf(err, TT_ERRLEN, "--tcp-ports: %.200s", e);
            return -1;
        }
        return 0;
    }
    if (strcmp(flag, "--tcp-bind") == 0) {
        g->bind = true;
        if (copy_value(c->tcp_bind, sizeof(c->tcp_bind), v, flag, err) != 0)
            return -1;
        return check_ip(c->tcp_bind, flag, err);
    }
    if (strcmp(flag, "--grace") == 0) {
        if (tt_parse_duration(v, &c->grace_ms, e) != 0) {
            snprintf(err, TT_ERRLEN, "--grace: %.200s", e);
            return -1;
        }
        return 0;
    }
    if (strcmp(flag, "--data-dir") == 0)
        return copy_value(c->data_dir, sizeof(c->data_dir), v, flag, err);
    if (strcmp(flag, "--token") == 0 || strcmp(flag, "--admin-token") == 0) {
        char *dst = flag[2] == 't' ? c->token : c->admin_token;
        if (copy_value(dst, TT_MAX_TOKEN + 1, v, flag, err) != 0)
            return -1;
        for (const char *p = v; *p; p++) {
            if ((unsigned char)*p <= ' ' || *p == 0x7f) {
                snprintf(err, TT_ERRLEN, "%s: spaces and control characters not allowed", flag);
                return -1;
            }
        }
        return 0;
    }
    if (strcmp(flag, "--tokens-file") == 0)
        return copy_value(c->tokens_file, sizeof(c->tokens_file), v, flag, err);
    if (strcmp(flag, "--token-file") == 0 || strcmp(flag, "--admin-token-file") == 0)
        return copy_value(flag[2] == 't' ? c->token_file : c->admin_token_file, TT_CONFIG_PATHLEN,
                          v, flag, err);
    if (strcmp(flag, "--admin-listen") == 0)
        return parse_addr(v, &c->admin, flag, err);
    if (strcmp(flag, "--max-streams") == 0) {
        char *end;
        unsigned long n = strtoul(v, &end, 10);
        if (v[0] < '0' || v[0] > '9' || *end != '\0' || n < 1 || n > 65535) {
            snprintf(err, TT_ERRLEN, "--max-streams: '%.100s' is not a number from 1 to 65535", v);
            return -1;
        }
        c->max_streams = (uint16_t)n;
        return 0;
    }
    if (strcmp(flag, "--max-names-per-token") == 0 || strcmp(flag, "--max-ports-per-token") == 0 ||
        strcmp(flag, "--new-names-per-second") == 0) {
        uint64_t *dst = flag[2] == 'n'   ? &c->new_names_per_sec
                        : flag[6] == 'n' ? &c->max_names_per_token
                                         : &c->max_ports_per_token;
        unsigned long long max = dst == &c->max_ports_per_token ? 65535ull
                                 : dst == &c->new_names_per_sec ? 1000000ull
                                                                : 1000000000ull;
        char *end;
        unsigned long long n = strtoull(v, &end, 10);
        if (v[0] < '0' || v[0] > '9' || *end != '\0' || n < 1 || n > max) {
            snprintf(err, TT_ERRLEN, "%s: '%.60s' is not a number from 1 to %llu", flag, v, max);
            return -1;
        }
        *dst = n;
        return 0;
    }
    if (strcmp(flag, "--tls-ticket-rotate") == 0) {
        uint64_t ms = 0;
        if (strcmp(v, "off") != 0 && tt_parse_duration(v, &ms, e) != 0) {
            snprintf(err, TT_ERRLEN, "%s: %.180s", flag, e);
            return -1;
        }
        if (strcmp(v, "off") != 0 && (ms < 1000 || ms > 7ull * 86400000 || ms % 1000 != 0)) {
            snprintf(err, TT_ERRLEN, "--tls-ticket-rotate: must be whole seconds from 1s to 7d");
            return -1;
        }
        c->tls_ticket_rotate_ms = ms;
        return 0;
    }
    if (strcmp(flag, "--head-timeout") == 0 || strcmp(flag, "--idle-timeout") == 0) {
        bool head = flag[2] == 'h';
        uint64_t ms;
        if (tt_parse_duration(v, &ms, e) != 0) {
            snprintf(err, TT_ERRLEN, "%s: %.180s", flag, e);
            return -1;
        }
        if (head && (ms < 100 || ms > 3600000)) {
            snprintf(err, TT_ERRLEN, "--head-timeout: must be from 100ms to 1h");
            return -1;
        }
        if (!head && ms > 7ull * 86400000) {
            snprintf(err, TT_ERRLEN, "--idle-timeout: must be at most 7d");
            return -1;
        }
        *(head ? &c->head_timeout_ms : &c->idle_timeout_ms) = ms;
        return 0;
    }
    int lim = apply_limit(c, flag, v, err);
    if (lim != 0) {
        g->per_client |= lim > 0 && strcmp(flag, "--max-streams-per-client") == 0;
        return lim > 0 ? 0 : -1;
    }
    if (strcmp(flag, "--redis") == 0) {
        c->cluster = true;
        return tt_config_parse_redis_url(v, &c->redis, err);
    }
    if (strcmp(flag, "--node-id") == 0)
        return parse_node_id(v, c->node_id, err);
    if (strcmp(flag, "--advertise") == 0)
        return parse_advertise(v, c->advertise, err);
    if (strcmp(flag, "--cluster-addr") == 0) {
        if (parse_addr(v, &c->cluster_addr, flag, err) != 0)
            return -1;
        if (c->cluster_addr.port == 0) {
            snprintf(err, TT_ERRLEN, "--cluster-addr: port 0 not allowed");
            return -1;
        }
        return 0;
    }
    if (strcmp(flag, "--log-level") == 0) {
        int lvl = tt_log_parse_level(v);
        if (lvl < 0) {
            snprintf(err, TT_ERRLEN, "--log-level: '%.100s' is not one of error, warn, info, debug",
                     v);
            return -1;
        }
        c->log_level = lvl;
        return 0;
    }
    if (strcmp(flag, "--log-format") == 0) {
        if (strcmp(v, "text") != 0 && strcmp(v, "json") != 0) {
            snprintf(err, TT_ERRLEN, "--log-format: '%.100s' is not one of text, json", v);
            return -1;
        }
        c->log_json = strcmp(v, "json") == 0;
        return 0;
    }
    int acc = apply_access(c, flag, v, err);
    if (acc == 0)
        acc = apply_webhook(c, flag, v, err);
    if (acc != 0)
        return acc > 0 ? 0 : -1;
    snprintf(err, TT_ERRLEN, "unknown option '%.100s' (see --help)", flag);
    return -1;
}

/* A token (dst: --token's or --admin-token's, flag names it) from the flag, else from the first
 * line of file (FLAG-file), else from the environment variable env (NULL: none). Returns 0, -1
 * (usage) or TT_CONFIG_ERR_RUNTIME (the file cannot be read). */
static int load_token(char dst[TT_MAX_TOKEN + 1], const char *file, const char *flag,
                      const char *env, char err[TT_ERRLEN])
{
    char e[TT_ERRLEN];
    const char *v = env ? getenv(env) : NULL;
    if (dst[0] && file[0]) {
        snprintf(err, TT_ERRLEN, "%s and %s-file cannot be used together", flag, flag);
        return -1;
    }
    if (file[0]) {
        int rc = tt_read_secret_file(file, dst, TT_MAX_TOKEN + 1, e);
        if (rc != 0)
            snprintf(err, TT_ERRLEN, "%s-file: %.200s", flag, e);
        return rc == TT_SECRET_IO ? TT_CONFIG_ERR_RUNTIME : rc;
    }
    if (dst[0] || !v || !v[0])
        return 0;
    if (tt_check_secret(v, TT_MAX_TOKEN, env, err) != 0)
        return -1;
    strcpy(dst, v);
    return 0;
}

/* The webhook secret: --webhook-secret, else the first line of --webhook-secret-file, else
 * TETHER_WEBHOOK_SECRET (kept out of the process list either way). Returns 0, -1 or
 * TT_CONFIG_ERR_RUNTIME. */
static int load_webhook_secret(struct tt_config *c, char err[TT_ERRLEN])
{
    char e[TT_ERRLEN];
    const char *v = getenv("TETHER_WEBHOOK_SECRET");
    if (c->webhook_secret[0] && c->webhook_secret_file[0]) {
        snprintf(err, TT_ERRLEN,
                 "--webhook-secret and --webhook-secret-file cannot be used together");
        return -1;
    }
    if (c->webhook_secret_file[0]) {
        int rc = tt_read_secret_file(c->webhook_secret_file, c->webhook_secret,
                                     sizeof(c->webhook_secret), e);
        if (rc != 0)
            snprintf(err, TT_ERRLEN, "--webhook-secret-file: %.200s", e);
        return rc == TT_SECRET_IO ? TT_CONFIG_ERR_RUNTIME : rc;
    }
    if (c->webhook_secret[0] || !v || !v[0])
        return 0;
    if (tt_check_secret(v, TT_WEBHOOK_SECRET_MAX, "TETHER_WEBHOOK_SECRET", err) != 0)
        return -1;
    strcpy(c->webhook_secret, v);
    return 0;
}

/* True for an IP literal of the loopback interface (127.0.0.0/8, ::1). */
static bool loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (uv_inet_pton(AF_INET, host, &a4) == 0)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return uv_inet_pton(AF_INET6, host, &a6) == 0 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* --redis, --node-id and --advertise go together; --cluster-addr defaults to the first
 * --listen, which must then be an address other nodes can reach. */
static int check_cluster(struct tt_config *c, char err[TT_ERRLEN])
{
    if (!c->cluster) {
        const char *stray = c->node_id[0]          ? "--node-id"
                            : c->advertise[0]      ? "--advertise"
                            : c->cluster_addr.port ? "--cluster-addr"
                                                   : NULL;
        if (stray) {
            snprintf(err, TT_ERRLEN, "%s needs --redis URL (cluster mode)", stray);
            return -1;
        }
        return 0;
    }
    if (!c->node_id[0] || !c->advertise[0]) {
        snprintf(err, TT_ERRLEN, "--redis needs --node-id ID and --advertise URL");
        return -1;
    }
    if (!c->cluster_addr.port) {
        unsigned char any[sizeof(struct in6_addr)];
        memset(any, 0, sizeof(any));
        unsigned char a[sizeof(struct in6_addr)];
        memset(a, 0xff, sizeof(a));
        bool v4 = uv_inet_pton(AF_INET, c->listen[0].host, a) == 0;
        bool v6 = !v4 && uv_inet_pton(AF_INET6, c->listen[0].host, a) == 0;
        if ((v4 && memcmp(a, any, 4) == 0) || (v6 && memcmp(a, any, 16) == 0)) {
            snprintf(err, TT_ERRLEN,
                     "--listen %.64s is a wildcard address: give --cluster-addr ADDR:PORT",
                     c->listen[0].host);
            return -1;
        }
        c->cluster_addr = c->listen[0];
    }
    return 0;
}

static bool takes_value(const char *flag)
{
    static const char *const with_value[] = {
        "--listen",
        "--domain",
        "--public-url",
        "--tcp-ports",
        "--tcp-bind",
        "--grace",
        "--data-dir",
        "--token",
        "--tokens-file",
        "--admin-listen",
        "--log-level",
        "--log-format",
        "--tls-listen",
        "--tls-cert",
        "--tls-key",
        "--redis",
        "--tls-ticket-rotate",
        "--node-id",
        "--advertise",
        "--admin-token",
        "--config",
        "--max-streams",
        "--head-timeout",
        "--idle-timeout",
        "--cluster-addr",
        "--token-file",
        "--admin-token-file",
    };
    /* the fleet token's caps (devauth.h) */
    static const char *const caps[] = {"--max-names-per-token",
                                       "--max-ports-per-token",
                                       "--new-names-per-second",
                                       "--access",
                                       "--public",
                                       "--users-file",
                                       "--tcp-allow",
                                       "--audit-log",
                                       "--session-ttl",
                                       "--webhook",
                                       "--webhook-secret",
                                       "--webhook-secret-file",
                                       "--metrics-per-device"};
    for (size_t i = 0; i < sizeof(with_value) / sizeof(with_value[0]); i++)
        if (strcmp(flag, with_value[i]) == 0)
            return true;
    for (size_t i = 0; i < sizeof(limit_flags) / sizeof(limit_flags[0]); i++)
        if (strcmp(flag, limit_flags[i].flag) == 0)
            return true;
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
        if (strcmp(flag, caps[i]) == 0)
            return true;
    return false;
}

static void set_defaults(struct tt_config *c)
{
    memset(c, 0, sizeof(*c));
    strcpy(c->listen[0].host, "127.0.0.1");
    c->listen[0].port = 8080;
    c->nlisten = 1;
    strcpy(c->domain, "localhost");
    c->tcp_low = 20000;
    c->tcp_high = 20999;
    c->grace_ms = 3600ull * 1000;
    strcpy(c->data_dir, "./tether-data");
    strcpy(c->admin.host, "127.0.0.1");
    c->admin.port = 9090;
    c->log_level = TT_LOG_INFO;
    c->max_streams = TT_CONFIG_MAX_STREAMS;
    c->head_timeout_ms = TT_CONFIG_HEAD_TIMEOUT_MS;
    c->tls_ticket_rotate_ms = TT_CONFIG_TLS_TICKET_ROTATE_MS;
    c->idle_timeout_ms = TT_CONFIG_IDLE_TIMEOUT_MS;
    c->max_pending_per_addr = TT_CONFIG_MAX_PENDING_PER_ADDR;
    c->body_timeout_ms = TT_CONFIG_BODY_TIMEOUT_MS;
    c->body_min_rate = TT_CONFIG_BODY_MIN_RATE;
    c->tcp_idle_timeout_ms = TT_CONFIG_TCP_IDLE_TIMEOUT_MS;
    c->max_names_per_token = TT_CONFIG_MAX_NAMES_PER_TOKEN;
    c->session_ttl_ms = TT_CONFIG_SESSION_TTL_MS;
    c->new_names_per_sec = TT_CONFIG_NEW_NAMES_PER_SEC;
    c->webhook_queue = TT_CONFIG_WEBHOOK_QUEUE;
    c->webhook_max_age_ms = TT_CONFIG_WEBHOOK_MAX_AGE_MS;
    c->max_registering = TT_CONFIG_MAX_REGISTERING;
    c->drain_rate = TT_CONFIG_DRAIN_RATE;
}

/* Applies the settings of --config FILE (path) to c. Returns 0, -1 (usage) or -2 (runtime). */
static int apply_file(struct tt_config *c, const char *path, struct given *g, char err[TT_ERRLEN])
{
    struct tt_configfile f;
    char e[TT_ERRLEN];
    int rc = tt_configfile_read(path, &f, err);
    if (rc != 0)
        return rc == TT_CONFIGFILE_IO ? TT_CONFIG_ERR_RUNTIME : -1;
    for (size_t i = 0; i < f.n && rc == 0; i++) {
        const struct tt_configfile_item *it = &f.items[i];
        if (strcmp(it->flag, "--config") == 0 || !takes_value(it->flag)) {
            snprintf(err, TT_ERRLEN, "%.200s:%u: unknown setting '%s'", path, it->line,
                     it->flag + 2);
            rc = -1;
        } else if (apply(c, it->flag, it->value, g, e) != 0) {
            snprintf(err, TT_ERRLEN, "%.120s:%u: %s", path, it->line, e);
            rc = -1;
        }
    }
    tt_configfile_free(&f);
    return rc;
}

/* Finds --config in argv: 0 with *path NULL (none) or set, -1 with a message. */
static int find_config(int argc, char **argv, const char **path, char err[TT_ERRLEN])
{
    *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                snprintf(err, TT_ERRLEN, "--config needs a value");
                return -1;
            }
            v = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            v = argv[i] + 9;
        } else {
            if (strncmp(argv[i], "--", 2) == 0 && !strchr(argv[i], '=') && takes_value(argv[i]))
                i++; /* skip the value of another flag */
            continue;
        }
        if (*path != NULL) {
            snprintf(err, TT_ERRLEN, "--config: given twice");
            return -1;
        }
        if (v[0] == '\0') {
            snprintf(err, TT_ERRLEN, "--config: empty file name");
            return -1;
        }
        *path = v;
    }
    return 0;
}

int tt_config_parse(struct tt_config *c, int argc, char **argv, char err[TT_ERRLEN])
{
    struct given g = {0};
    const char *path;
    set_defaults(c);
    err[0] = '\0';
    if (find_config(argc, argv, &path, err) != 0)
        return -1;
    if (path != NULL) {
        int rc = apply_file(c, path, &g, err);
        if (rc != 0)
            return rc;
        g.listen = g.tls_listen = false; /* the command line's replace the file's */
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return TT_CONFIG_HELP;
        if (strcmp(arg, "--version") == 0)
            return TT_CONFIG_VERSION;
        if (strcmp(arg, "--hash-secret") == 0) {
            if (argc == 2)
                return TT_CONFIG_HASH_SECRET;
            snprintf(err, TT_ERRLEN, "--hash-secret takes no other flag");
            return -1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, TT_ERRLEN, "unexpected argument '%.100s' (see --help)", arg);
            return -1;
        }
        char flag[64];
        const char *eq = strchr(arg, '=');
        const char *value = NULL;
        size_t flen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (flen >= sizeof(flag)) {
            snprintf(err, TT_ERRLEN, "unknown option '%.60s' (see --help)", arg);
            return -1;
        }
        memcpy(flag, arg, flen);
        flag[flen] = '\0';
        if (!takes_value(flag)) {
            if (strcmp(flag, "--help") == 0 || strcmp(flag, "--version") == 0)
                snprintf(err, TT_ERRLEN, "%s takes no value", flag);
            else
                snprintf(err, TT_ERRLEN, "unknown option '%.60s' (see --help)", flag);
            return -1;
        }
        if (eq) {
            value = eq + 1;
        } else {
            if (i + 1 >= argc) {
                snprintf(err, TT_ERRLEN, "%s needs a value", flag);
                return -1;
            }
            value = argv[++i];
        }
        if (strcmp(flag, "--config") == 0)
            continue; /* read first, by find_config */
        if (apply(c, flag, value, &g, err) != 0)
            return -1;
    }
    int rc = load_token(c->token, c->token_file, "--token",
                        !c->tokens_file[0] ? "TETHER_TOKEN" : NULL, err);
    if (rc == 0)
        rc = load_token(c->admin_token, c->admin_token_file, "--admin-token", "TETHER_ADMIN_TOKEN",
                        err);
    if (rc == 0)
        rc = load_webhook_secret(c, err);
    if (rc != 0)
        return rc;
    if ((c->token[0] || c->token_file[0]) && c->tokens_file[0]) {
        snprintf(err, TT_ERRLEN, "%s and --tokens-file cannot be used together",
                 c->token_file[0] ? "--token-file" : "--token");
        return -1;
    }
    if (c->ntls_listen > 0 && (!c->tls_cert[0] || !c->tls_key[0])) {
        snprintf(err, TT_ERRLEN, "--tls-listen needs --tls-cert FILE and --tls-key FILE");
        return -1;
    }
    if (c->ntls_listen == 0 && (c->tls_cert[0] || c->tls_key[0])) {
        snprintf(err, TT_ERRLEN, "%s without --tls-listen ADDR:PORT",
                 c->tls_cert[0] ? "--tls-cert" : "--tls-key");
        return -1;
    }
    if (!c->admin_token[0] && !loopback(c->admin.host)) {
        snprintf(err, TT_ERRLEN,
                 "--admin-listen %.64s is not a loopback address: it needs --admin-token TOKEN",
                 c->admin.host);
        return -1;
    }
    if (check_cluster(c, err) != 0)
        return -1;
    if (!g.per_client) {
        uint64_t floor = c->max_streams < 16 ? c->max_streams : 16;
        c->max_streams_per_client = c->max_streams / 8 > floor ? c->max_streams / 8 : floor;
    }
    if (!c->max_ports_per_token) {
        c->max_ports_per_token = ((uint64_t)c->tcp_high - c->tcp_low + 1) / 2;
        if (c->max_ports_per_token < 1)
            c->max_ports_per_token = 1;
    }
    if (!g.bind)
        strcpy(c->tcp_bind, c->listen[0].host);
    if (!g.url) {
        strcpy(c->url_scheme, "http");
        strcpy(c->url_host, c->domain);
        c->url_port = c->listen[0].port == 80 ? 0 : c->listen[0].port;
    }
    return TT_CONFIG_RUN;
}

int tt_config_device_url(const struct tt_config *c, const char *prefix, char *out, size_t outlen)
{
    int n;
    if (c->url_port)
        n = snprintf(out, outlen, "%s://%s.%s:%u", c->url_scheme, prefix, c->url_host,
                     (unsigned)c->url_port);
    else
        n = snprintf(out, outlen, "%s://%s.%s", c->url_scheme, prefix, c->url_host);
    return n < 0 || (size_t)n >= outlen ? -1 : n;
}
