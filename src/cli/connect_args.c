/* connect_args.c - parses `tether connect`'s flags (connect_args.h). Pure: no output, no exit,
 * no file read (main reads --secret-file and --grant-file). */
#include <stdlib.h>
#include <string.h>

#include "cli/connect_args.h"
#include "cli/flags.h"

const char *tt_connect_args_usage(void)
{
    return "usage: tether connect --server URL [--server URL]...\n"
           "                      [--user USER (--secret SECRET | --secret-file FILE)\n"
           "                       | --grant TOKEN | --grant-file FILE]\n"
           "                      DEVICE/SERVICE (--listen [ADDR:]PORT | --stdio)\n"
           "                      [--proxy URL] [--noproxy LIST] [--dns ADDR[:PORT]]\n"
           "                      [--ca-file FILE] [--insecure] [--json] [--log-level LEVEL]\n"
           "                      [--help]\n"
           "\n"
           "Reaches service SERVICE of device DEVICE (by their names) through a Tether relay,\n"
           "over the same WebSocket dial as the agent (TLS, HTTP proxies, redirects between\n"
           "the relay's nodes). A private service needs a user's secret or a grant token; a\n"
           "public one needs nothing. The relay checks everything before the connection is made.\n"
           "A relay's 503 with Retry-After is waited out by that connection (at most 60 s in\n"
           "all, 64 connections at once) and said on an error line \"(retrying in N s)\".\n"
           "\n"
           "  --server URL        relay URL, ws://HOST[:PORT][/PATH] or wss://... (TLS); repeat\n"
           "                      to give several, tried in turn until one answers\n"
           "  --user USER         a user of the relay's users file, with its secret:\n"
           "  --secret SECRET     (visible in the process list: prefer --secret-file or\n"
           "                      TETHER_SECRET)\n"
           "  --secret-file FILE  read the secret from the first line of FILE; without either\n"
           "                      flag it comes from the TETHER_SECRET variable\n"
           "  --grant TOKEN       a grant token from the relay's admin API (or TETHER_GRANT)\n"
           "  --grant-file FILE   read the grant token from the first line of FILE\n"
           "  --listen [ADDR:]PORT\n"
           "                      accept local TCP connections there (ADDR defaults to\n"
           "                      127.0.0.1); each becomes one connection to the service\n"
           "  --stdio             one connection on standard input and output (ssh's\n"
           "                      ProxyCommand); exits when both directions have ended\n"
           "  --proxy URL         reach the relay through an HTTP proxy (CONNECT):\n"
           "                      http://[USER:PASS@]HOST:PORT; --proxy '' connects directly\n"
           "  --noproxy LIST      relay hosts to reach directly (as no_proxy)\n"
           "  --dns ADDR[:PORT]   look the relay's and the proxy's names up with this DNS\n"
           "                      server only (an IP address; port 53 by default)\n"
           "  --ca-file FILE      PEM CA certificates trusted for wss://, besides the system's\n"
           "  --insecure          do not verify the relay's certificate (testing only)\n"
           "  --json              print one JSON object per event (on stderr with --stdio)\n"
           "  --log-level LEVEL   error, warn (default; error with --stdio), info or debug\n"
           "  --help              print this help and exit\n"
           "\n"
           "With --listen, a line says when connections are accepted:\n"
           "  listening 127.0.0.1:2222 -> plant-7-gw/ssh\n"
           "and a connection the relay refuses is closed with a line on stderr saying why:\n"
           "  error: plant-7-gw/ssh: refused by the relay (HTTP 403): access denied: ...\n"
           "It goes on listening until SIGINT or SIGTERM.\n"
           "\n"
           "With ssh:\n"
           "  ssh -o ProxyCommand='tether connect --server wss://relay.example.com \\\n"
           "      --user alice --secret-file ~/.tether-secret plant-7-gw/ssh --stdio' \\\n"
           "      admin@plant-7-gw\n"
           "\n"
           "Exit status: 0 (--stdio: both directions ended; --listen: stopped by a signal),\n"
           "1 when the relay refused or the connection failed, 2 for a usage error.\n";
}

enum opt_id {
    OPT_SERVER,
    OPT_USER,
    OPT_SECRET,
    OPT_SECRET_FILE,
    OPT_GRANT,
    OPT_GRANT_FILE,
    OPT_LISTEN,
    OPT_STDIO,
    OPT_PROXY,
    OPT_NOPROXY,
    OPT_CA_FILE,
    OPT_DNS,
    OPT_INSECURE,
    OPT_JSON,
    OPT_LOG_LEVEL,
    OPT_HELP,
};

static const struct tt_flags_opt opts[] = {
    {"server", OPT_SERVER, true},   {"user", OPT_USER, true},
    {"secret", OPT_SECRET, true},   {"secret-file", OPT_SECRET_FILE, true},
    {"grant", OPT_GRANT, true},     {"grant-file", OPT_GRANT_FILE, true},
    {"listen", OPT_LISTEN, true},   {"stdio", OPT_STDIO, false},
    {"proxy", OPT_PROXY, true},     {"noproxy", OPT_NOPROXY, true},
    {"ca-file", OPT_CA_FILE, true}, {"insecure", OPT_INSECURE, false},
    {"json", OPT_JSON, false},      {"log-level", OPT_LOG_LEVEL, true},
    {"help", OPT_HELP, false},      {"dns", OPT_DNS, true},
};

/* Sets a flag that may be given once, not empty. */
static int once(const char **slot, const char *v, const char *flag, char err[TT_ERRLEN])
{
    return tt_flags_once(slot, v, flag, "empty value", err);
}

static int apply(struct tt_connect_args *a, enum opt_id id, const char *v, char err[TT_ERRLEN])
{
    switch (id) {
    case OPT_SERVER:
        return tt_flags_add_server(a->servers, &a->nservers, v, err);
    case OPT_USER:
        return once(&a->user, v, "--user", err);
    case OPT_SECRET:
        return once(&a->secret, v, "--secret", err);
    case OPT_SECRET_FILE:
        return once(&a->secret_file, v, "--secret-file", err);
    case OPT_GRANT:
        return once(&a->grant, v, "--grant", err);
    case OPT_GRANT_FILE:
        return once(&a->grant_file, v, "--grant-file", err);
    case OPT_LISTEN:
        return once(&a->listen, v, "--listen", err);
    case OPT_STDIO:
        a->stdio = true;
        return 0;
    case OPT_PROXY:
        return tt_flags_once(&a->proxy, v, "--proxy", NULL, err);
    case OPT_NOPROXY:
        return tt_flags_once(&a->noproxy, v, "--noproxy", NULL, err);
    case OPT_CA_FILE:
        return once(&a->ca_file, v, "--ca-file", err);
    case OPT_DNS:
        return once(&a->dns, v, "--dns", err);
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
    }
    return tt_flags_errf(err, "unknown option");
}

/* DEVICE/SERVICE, split at the last '/' (service names have none). */
static int set_target(struct tt_connect_args *a, const char *t, char err[TT_ERRLEN])
{
    const char *slash = strrchr(t, '/');
    size_t dn = slash ? (size_t)(slash - t) : 0, sn = slash ? strlen(slash + 1) : 0;
    if (a->target)
        return tt_flags_errf(err, "unexpected argument '%s' (one DEVICE/SERVICE only)", t);
    if (!slash || dn == 0 || sn == 0)
        return tt_flags_errf(err, "bad target '%s': expected DEVICE/SERVICE", t);
    if (dn > TETHER_MAX_DEVICE_NAME || sn > TETHER_MAX_DEVICE_NAME)
        return tt_flags_errf(err, "bad target '%s': names are at most %d characters", t,
                             TETHER_MAX_DEVICE_NAME);
    for (const char *p = t; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p > '~')
            return tt_flags_errf(err, "bad target '%s': a space or a non-printable character", t);
    memcpy(a->device, t, dn);
    a->device[dn] = '\0';
    memcpy(a->service, slash + 1, sn);
    a->service[sn] = '\0';
    a->target = t;
    return 0;
}

int tt_connect_args_parse(struct tt_connect_args *a, int argc, char **argv, char err[TT_ERRLEN])
{
    memset(a, 0, sizeof *a);
    a->log_level = -1;
    err[0] = '\0';
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value;

        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            if (arg[0] == '-' && arg[1] != '\0')
                return tt_flags_errf(err, "unknown option '%s' (see tether connect --help)", arg);
            if (set_target(a, arg, err) != 0)
                return -1;
            continue;
        }
        int k = tt_flags_next(opts, sizeof opts / sizeof opts[0], argc, argv, &i, &value,
                              "tether connect --help", err);
        if (k < 0)
            return -1;
        if (apply(a, (enum opt_id)opts[k].id, value, err) != 0)
            return -1;
    }
    if (a->help)
        return 0;
    if (a->nservers == 0)
        return tt_flags_errf(err, "missing --server URL (the relay, ws://HOST:PORT)");
    if (a->target == NULL)
        return tt_flags_errf(err,
                             "missing DEVICE/SERVICE (the device's name and the service's name)");
    if ((a->listen != NULL) == a->stdio)
        return tt_flags_errf(err, a->stdio ? "--listen and --stdio cannot be used together"
                                           : "missing --listen [ADDR:]PORT or --stdio");
    if (a->secret && a->secret_file)
        return tt_flags_errf(err, "--secret and --secret-file cannot be used together");
    if (a->grant && a->grant_file)
        return tt_flags_errf(err, "--grant and --grant-file cannot be used together");
    if (a->user == NULL && (a->secret || a->secret_file))
        return tt_flags_errf(err, "--secret needs --user USER");
    if (a->user && (a->grant || a->grant_file))
        return tt_flags_errf(err, "--user and --grant cannot be used together");
    if (a->user && !a->secret && !a->secret_file) {
        const char *env = getenv("TETHER_SECRET");
        if (env == NULL || env[0] == '\0')
            return tt_flags_errf(err,
                                 "--user needs a secret: --secret SECRET, --secret-file FILE or "
                                 "TETHER_SECRET in the environment");
        a->secret = env;
        a->secret_from_env = true;
    }
    if (!a->user && !a->grant && !a->grant_file) {
        const char *env = getenv("TETHER_GRANT");
        if (env != NULL && env[0] != '\0') {
            a->grant = env;
            a->grant_from_env = true;
        }
    }
    return 0;
}
