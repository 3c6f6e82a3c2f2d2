/* config.h - tetherd's command line: flags parsed into struct tt_config, with a one-line
 * message in err[TT_ERRLEN] for the first problem found (main prints it and exits 2).
 * No I/O beyond reading --config FILE and the token files, the TETHER_TOKEN and
 * TETHER_ADMIN_TOKEN variables, and printing the usage text when asked. */
#ifndef TT_CONFIG_H
#define TT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "common/util.h"
#include "core/frame.h"
#include "relay/lib/cidr.h"
#include "relay/lib/pattern.h"
#include "relay/admin/webhookbody.h"

#define TT_CONFIG_MAX_LISTEN 8
#define TT_CONFIG_PATHLEN 1024
/* Longest --domain (and --public-url host): device URLs must fit in TT_MAX_ADDR bytes. */
#define TT_CONFIG_MAX_DOMAIN 60
#define TT_RELAY_VERSION "0.1.0"
/* Defaults of the limits above. */
#define TT_CONFIG_MAX_STREAMS 1024
#define TT_CONFIG_HEAD_TIMEOUT_MS 30000
/* TLS session ticket key period (--tls-ticket-rotate): 12 h (tls.h TT_TLS_TICKET_DEFAULT_PERIOD_S).
 */
#define TT_CONFIG_TLS_TICKET_ROTATE_MS (12ull * 3600 * 1000)
#define TT_CONFIG_IDLE_TIMEOUT_MS 60000
/* Defaults of the abuse limits (limits.h; docs/operators-guide.md, "Limits and abuse"). */
#define TT_CONFIG_MAX_PENDING_PER_ADDR 128
#define TT_CONFIG_BODY_TIMEOUT_MS 30000
#define TT_CONFIG_BODY_MIN_RATE 500
#define TT_CONFIG_TCP_IDLE_TIMEOUT_MS 3600000
#define TT_CONFIG_MAX_NAMES_PER_TOKEN 100000
#define TT_CONFIG_NEW_NAMES_PER_SEC 100
/* Webhooks (webhook.h): receivers, the queue's cap and how long an event is retried. */
#define TT_CONFIG_MAX_WEBHOOKS 8
#define TT_CONFIG_WEBHOOK_QUEUE 10000
#define TT_CONFIG_MAX_REGISTERING 1024 /* --max-registering */
#define TT_CONFIG_DRAIN_RATE 50        /* --drain-rate, devices per second */
#define TT_CONFIG_WEBHOOK_MAX_AGE_MS 3600000

struct tt_config_addr {
    char host[TT_HOSTLEN]; /* an IP literal */
    uint16_t port;
};

/* --redis redis://[:PASSWORD@]HOST:PORT[/DB], or
 * redis-sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT]...[/MASTER][/DB] (redisconn.h). */
#define TT_REDIS_MAX_SENTINELS 16
#define TT_REDIS_MASTER_MAX 64
#define TT_REDIS_DEFAULT_MASTER "mymaster"
#define TT_REDIS_SENTINEL_PORT 26379
struct tt_redis_url {
    char host[TT_HOSTLEN]; /* redis://: the server; sentinel: the master found ("" none yet) */
    uint16_t port;         /* default 6379 */
    char password[128];    /* "" for none (sentinel: the master's; a sentinel's on NOAUTH) */
    unsigned db;           /* SELECT db (default 0) */
    bool sentinel;         /* redis-sentinel:// */
    char master[TT_REDIS_MASTER_MAX + 1]; /* the monitored master's name (default "mymaster") */
    size_t nsentinels;
    struct tt_config_addr sentinels[TT_REDIS_MAX_SENTINELS]; /* host may be a name */
};

/* Who may reach a device (SPEC "Who may reach a device"; access.h). */
enum tt_access_mode {
    TT_ACCESS_PUBLIC = 0,  /* every service reachable by anyone who reaches the relay */
    TT_ACCESS_PRIVATE = 1, /* only users whose grant covers it, unless a --public pattern does */
};
#define TT_CONFIG_MAX_PUBLIC 64    /* --public patterns */
#define TT_CONFIG_MAX_TCP_ALLOW 64 /* --tcp-allow networks */
#define TT_CONFIG_SESSION_TTL_MS (12ull * 3600000)

/* /metrics' per-device series (--metrics-per-device): auto has them while this node knows at
 * most TT_CONFIG_METRICS_PER_DEVICE_MAX devices, so that a scrape of a large relay stays small. */
enum tt_metrics_per_device {
    TT_METRICS_PER_DEVICE_AUTO = 0,
    TT_METRICS_PER_DEVICE_ON = 1,
    TT_METRICS_PER_DEVICE_OFF = 2,
};
#define TT_CONFIG_METRICS_PER_DEVICE_MAX 1000

/* Longest --node-id. */
#define TT_NODE_ID_MAX 64
/* Longest --advertise URL. */
#define TT_ADVERTISE_MAX 200

struct tt_config {
    struct tt_config_addr listen[TT_CONFIG_MAX_LISTEN];
    size_t nlisten;
    /* --tls-listen: the same service as --listen, over TLS, with the certificate and key read
     * from these PEM files (at start and on SIGHUP). ntls_listen > 0 implies both files. */
    struct tt_config_addr tls_listen[TT_CONFIG_MAX_LISTEN];
    size_t ntls_listen;
    char tls_cert[TT_CONFIG_PATHLEN];
    char tls_key[TT_CONFIG_PATHLEN];
    uint64_t tls_ticket_rotate_ms; /* ticket key period (tls.h); 0: no tickets */
    char domain[TT_HOSTLEN];       /* lowercase */
    /* Device URLs are URL_SCHEME://LABEL.URL_HOST[:URL_PORT] (port omitted when 0). Built from
     * --public-url, else from --domain and the first --listen port (http, even when there is a
     * TLS listener: an https base needs --public-url https://...). */
    char url_scheme[8];
    char url_host[TT_HOSTLEN];
    uint16_t url_port;
    uint16_t tcp_low, tcp_high;
    char tcp_bind[TT_HOSTLEN];
    uint64_t grace_ms;
    char data_dir[TT_CONFIG_PATHLEN];
    char token[TT_MAX_TOKEN + 1]; /* --token, "" if not given */
    char tokens_file[TT_CONFIG_PATHLEN];
    struct tt_config_addr admin;
    char admin_token[TT_MAX_TOKEN + 1]; /* --admin-token, "" if not given */
    /* --token-file, --admin-token-file: read into token / admin_token by tt_config_parse, as
     * are TETHER_TOKEN / TETHER_ADMIN_TOKEN when no flag gives that token (out of the process
     * list); kept for messages */
    char token_file[TT_CONFIG_PATHLEN];
    char admin_token_file[TT_CONFIG_PATHLEN];
    int log_level;
    bool log_json; /* --log-format json */
    /* Limits (docs/operators-guide.md, "Limits"). */
    uint16_t max_streams;     /* concurrent streams per device (--max-streams) */
    uint64_t head_timeout_ms; /* a request head must be complete this long after it began */
    uint64_t idle_timeout_ms; /* a proxied HTTP connection silent both ways this long closes
                                 (0: never) */
    /* Abuse limits (limits.h; docs/operators-guide.md, "Limits and abuse"). */
    uint64_t max_pending;            /* unauthenticated connections in all (0: from the
                                        descriptor limit, at start) */
    uint64_t max_pending_per_addr;   /* ... per client address (0: no cap) */
    uint64_t max_streams_per_client; /* a device's streams per client address (0: no cap;
                                        default max(max_streams / 8, min(max_streams, 16))) */
    uint64_t body_timeout_ms;        /* a request body must be whole within this (0: never)... */
    uint64_t body_min_rate;          /* ... plus 1 s per this many bytes received (0: none) */
    uint64_t tcp_idle_timeout_ms;    /* a raw TCP client silent both ways this long (0: never) */
    /* Admission and drain (drain.h): registrations in progress at most (0: no cap), and the
     * devices a draining node moves per second. */
    uint64_t max_registering;
    uint64_t drain_rate;
    /* The fleet token's caps (devauth.h): names it holds through device keys, and the TCP ports
     * those names hold (default: half of the --tcp-ports range, at least 1). */
    uint64_t max_names_per_token;
    uint64_t max_ports_per_token;
    uint64_t new_names_per_sec; /* --new-names-per-second: the rate of new names */
    /* Who may reach a device (access.h): --access, --public, --users-file, --tcp-allow,
     * --audit-log, --session-ttl. */
    uint8_t access; /* enum tt_access_mode */
    char public_patterns[TT_CONFIG_MAX_PUBLIC][TT_PATTERN_MAX + 1];
    size_t npublic;
    char users_file[TT_CONFIG_PATHLEN];
    struct tt_cidr tcp_allow[TT_CONFIG_MAX_TCP_ALLOW]; /* none: public TCP ports take anyone */
    size_t ntcp_allow;
    char audit_log[TT_CONFIG_PATHLEN];
    uint64_t session_ttl_ms;    /* browser sign-in sessions last this long */
    uint8_t metrics_per_device; /* --metrics-per-device: enum tt_metrics_per_device */
    /* Cluster mode (--redis; the three flags go together): the registry is in Redis and shared
     * by the nodes; cluster.h. */
    bool cluster;
    struct tt_redis_url redis;
    char node_id[TT_NODE_ID_MAX + 1];
    char advertise[TT_ADVERTISE_MAX + 1]; /* ws:// or wss:// URL devices use to reach this node */
    struct tt_config_addr cluster_addr;   /* where other nodes reach this node's --listen
                                             service (--cluster-addr; default the first
                                             --listen) */
    /* Webhooks (webhook.h): --webhook URLs (checked here), the secret that signs the bodies
     * (--webhook-secret, else the first line of --webhook-secret-file, else
     * TETHER_WEBHOOK_SECRET; "" none), --webhook-queue, --webhook-max-age. */
    char webhooks[TT_CONFIG_MAX_WEBHOOKS][TT_WEBHOOK_URL_MAX + 1];
    size_t nwebhooks;
    char webhook_secret[TT_WEBHOOK_SECRET_MAX + 1];
    char webhook_secret_file[TT_CONFIG_PATHLEN];
    uint64_t webhook_queue;
    uint64_t webhook_max_age_ms;
};

/* What tt_config_parse() found to do. */
enum tt_config_action {
    TT_CONFIG_RUN = 0,
    TT_CONFIG_HELP = 1,        /* --help: print tt_config_usage() and exit 0 */
    TT_CONFIG_VERSION = 2,     /* --version: print the version and exit 0 */
    TT_CONFIG_HASH_SECRET = 3, /* --hash-secret: hash a secret read on stdin for --users-file */
};

/* tt_config_parse's answer when --config FILE, --token-file FILE or --admin-token-file FILE
 * cannot be opened or read (exit status 1). */
#define TT_CONFIG_ERR_RUNTIME (-2)

/* Fills c from argv[1..argc) (defaults first, then the settings of --config FILE, then the
 * other flags, so that the command line wins; a --listen or --tls-listen on the command line
 * replaces the file's list). Flags take their value as the next argument or after '='.
 * Returns an enum tt_config_action, -1 with a one-line message in err for an unknown flag, a
 * missing or bad value, a stray argument, a flag not supported yet, a bad line in the
 * config file or an empty or bad token file, or TT_CONFIG_ERR_RUNTIME when the config file or a
 * token file cannot be read. Tokens come from --token/--admin-token, else from the first line of
 * --token-file/--admin-token-file, else from the environment (TETHER_TOKEN, unless
 * --tokens-file is given; TETHER_ADMIN_TOKEN); a flag and its file flag together is an error. */
int tt_config_parse(struct tt_config *c, int argc, char **argv, char err[TT_ERRLEN]);

/* Parses a --redis value "redis://[:PASSWORD@]HOST[:PORT][/DB]" (HOST a name, an IPv4 or a
 * bracketed IPv6 address; PORT default 6379; DB 0-15 default 0; "user:password@" is refused:
 * Redis 5 has no users), or "redis-sentinel://[:PASSWORD@]HOST[:PORT][,HOST[:PORT]]...
 * [/MASTER][/DB]" (1 to TT_REDIS_MAX_SENTINELS sentinels, PORT default 26379; MASTER letters,
 * digits, '-', '_', '.', at most TT_REDIS_MASTER_MAX, default "mymaster" (also when empty, as in
 * "//3"); one path segment is always the master's name). Returns 0, or -1 with a one-line
 * message in err. */
int tt_config_parse_redis_url(const char *s, struct tt_redis_url *out, char err[TT_ERRLEN]);

/* Writes the usage text to f. */
void tt_config_usage(FILE *f);

/* Writes the URL of the device host prefix ("k3j9x2mq" or "api--k3j9x2mq") into out, e.g.
 * "http://k3j9x2mq.localhost:8080". Returns its length, or -1 if out is too small. */
int tt_config_device_url(const struct tt_config *c, const char *prefix, char *out, size_t outlen);

#endif
