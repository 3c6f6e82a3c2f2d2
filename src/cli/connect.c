/* connect.c - `tether connect`: flags (connect_args.c) into a tether_config and a tether_connect,
 * run until a signal (--listen) or the connection's end (--stdio), each event printed: the
 * "listening" line or --json objects on stdout (on stderr with --stdio, whose stdout is the
 * connection), errors on stderr. Built on tether.h and src/common only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "tether.h"
#include "cli/connect.h"
#include "cli/connect_args.h"
#include "cli/flags.h"
#include "cli/output.h"
#include "cli/signals.h"
#include "common/log.h"
#include "common/util.h"

#define SECRET_MAX 256

static tether_connect *volatile g_connect; /* for the signal handler */

static void on_signal(int sig)
{
    (void)sig;
    if (g_connect) /* async-signal-safe */
        tether_connect_stop(g_connect);
}

struct cli {
    bool json;
    FILE *events; /* stdout, or stderr with --stdio */
};

/* s as one line: each control or non-ASCII byte as '?' (as the agent's lines have it). */
static const char *clean(const char *s, char *buf, size_t len)
{
    return tt_output_field(s, false, buf, len);
}

static void print_json(struct cli *cli, json_t *o)
{
    char *line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (line) {
        fputs(line, cli->events);
        fputc('\n', cli->events);
        fflush(cli->events);
        free(line);
    }
    json_decref(o);
}

static void on_event(tether_connect *c, const struct tether_connect_event *ev, void *ud)
{
    struct cli *cli = ud;
    char a[1024], b[1024], d[256];
    (void)c;

    switch (ev->kind) {
    case TETHER_CONNECT_LISTENING:
        if (cli->json) {
            json_t *o = json_object();
            json_object_set_new(o, "event", json_string("listening"));
            json_object_set_new(o, "address", json_string(clean(ev->address, a, sizeof a)));
            json_object_set_new(o, "device", json_string(clean(ev->device, b, sizeof b)));
            json_object_set_new(o, "service", json_string(clean(ev->service, d, sizeof d)));
            print_json(cli, o);
        } else {
            fprintf(cli->events, "listening %s -> %s/%s\n", clean(ev->address, a, sizeof a),
                    clean(ev->device, b, sizeof b), clean(ev->service, d, sizeof d));
            fflush(cli->events);
        }
        break;
    case TETHER_CONNECT_ERROR:
        if (cli->json) {
            json_t *o = json_object();
            json_object_set_new(o, "event", json_string("error"));
            json_object_set_new(o, "message", json_string(clean(ev->message, a, sizeof a)));
            if (ev->retry_ms > 0) /* (only then: a final refusal's object stays as SPEC has it) */
                json_object_set_new(o, "retry_ms", json_integer(ev->retry_ms));
            print_json(cli, o);
        } else if (ev->retry_ms > 0) { /* as the agent says it (output.c) */
            fprintf(stderr, "error: %s (retrying in %.1f s)\n", clean(ev->message, a, sizeof a),
                    ev->retry_ms / 1000.0);
            fflush(stderr);
        } else {
            fprintf(stderr, "error: %s\n", clean(ev->message, a, sizeof a));
            fflush(stderr);
        }
        break;
    case TETHER_CONNECT_OPEN:
        TT_LOG(TT_LOG_INFO, "connected to %s/%s server=%s", ev->device, ev->service,
               TT_LOG_V(ev->server));
        break;
    case TETHER_CONNECT_CLOSED:
        TT_LOG(TT_LOG_INFO, "connection to %s/%s closed bytes_in=%llu bytes_out=%llu", ev->device,
               ev->service, (unsigned long long)ev->bytes_in, (unsigned long long)ev->bytes_out);
        break;
    }
}

/* Reads a secret file into buf; returns 0, or the exit status (2 bad content, 1 unreadable). */
static int read_secret(const char *flag, const char *path, char *buf, size_t len)
{
    char err[TT_ERRLEN];
    int rc = tt_read_secret_file(path, buf, len, err);
    if (rc == 0)
        return 0;
    fprintf(stderr, "tether connect: %s: %s\n", flag, err);
    return rc == TT_SECRET_IO ? 1 : 2;
}

/* The config from the flags; returns 0 or the exit status (with the line printed). */
static int build_config(const struct tt_connect_args *a, tether_config **out)
{
    tether_config *cfg;
    char secret[SECRET_MAX + 1], grant[SECRET_MAX + 1];
    int rc = 0, status = 0;

    secret[0] = grant[0] = '\0';
    if (tether_config_new(&cfg) != 0) {
        fprintf(stderr, "tether connect: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < a->nservers && rc == 0; i++)
        if ((rc = tether_config_add_server(cfg, a->servers[i])) != 0)
            fprintf(stderr, "tether connect: --server: %s\n", tether_config_error(cfg));
    if (rc == 0 && a->user) {
        const char *s = a->secret;
        if (a->secret_file &&
            (status = read_secret("--secret-file", a->secret_file, secret, sizeof secret)) != 0)
            rc = -1;
        else if (a->secret_file)
            s = secret;
        if (rc == 0 && (rc = tether_config_set_user(cfg, a->user, s)) != 0)
            fprintf(stderr, "tether connect: %s: %s\n",
                    a->secret_file       ? "--secret-file"
                    : a->secret_from_env ? "TETHER_SECRET"
                                         : "--user/--secret",
                    tether_config_error(cfg));
    } else if (rc == 0 && (a->grant || a->grant_file)) {
        const char *g = a->grant;
        if (a->grant_file &&
            (status = read_secret("--grant-file", a->grant_file, grant, sizeof grant)) != 0)
            rc = -1;
        else if (a->grant_file)
            g = grant;
        if (rc == 0 && (rc = tether_config_set_grant(cfg, g)) != 0)
            fprintf(stderr, "tether connect: %s: %s\n",
                    a->grant_file       ? "--grant-file"
                    : a->grant_from_env ? "TETHER_GRANT"
                                        : "--grant",
                    tether_config_error(cfg));
    }
    tt_secret_wipe(secret, sizeof secret); /* cfg has its own copy */
    tt_secret_wipe(grant, sizeof grant);
    if (rc == 0) {
        char err[TT_ERRLEN] = "";
        rc = tt_flags_config_dial(cfg, a->proxy, a->noproxy, a->ca_file, a->dns, a->insecure, err);
        if (rc != 0 && err[0] != '\0')
            fprintf(stderr, "tether connect: %s\n", err);
    }
    if (rc != 0) {
        tether_config_free(cfg);
        return status ? status : 2;
    }
    *out = cfg;
    return 0;
}

int tt_connect_main(int argc, char **argv)
{
    struct tt_connect_args args;
    struct tether_connect_callbacks cb = {on_event};
    struct cli cli = {false, stdout};
    tether_config *cfg = NULL;
    tether_connect *c = NULL;
    char err[TT_ERRLEN];
    int rc;

    tt_log_set_program("tether connect");
    if (tt_connect_args_parse(&args, argc, argv, err) != 0) {
        fprintf(stderr, "tether connect: %s\n", err);
        return 2;
    }
    if (args.help) {
        fputs(tt_connect_args_usage(), stdout);
        return 0;
    }
    /* Only what matters on stderr: with --stdio, ssh shows it to its user. */
    tt_log_level = args.log_level >= 0 ? args.log_level : args.stdio ? TT_LOG_ERROR : TT_LOG_WARN;
    cli.json = args.json;
    cli.events = args.stdio ? stderr : stdout;
    rc = build_config(&args, &cfg);
    if (rc != 0)
        return rc;
    rc = tether_connect_new(cfg, args.device, args.service, &cb, &cli, &c);
    if (rc != 0) {
        fprintf(stderr, "tether connect: %s\n",
                rc == TETHER_ERR_CONFIG ? tether_config_error(cfg) : tether_strerror(rc));
        tether_config_free(cfg);
        return rc == TETHER_ERR_CONFIG ? 2 : 1;
    }
    tether_config_free(cfg);
    rc = args.stdio ? tether_connect_fds(c, 0, 1) : tether_connect_listen(c, args.listen);
    if (rc != 0) {
        fprintf(stderr, "tether connect: --listen: bad address '%s' (expected [ADDR:]PORT)\n",
                args.listen ? args.listen : "");
        tether_connect_free(c);
        return 2;
    }
    g_connect = c;
    tt_signals_install(on_signal, true); /* ssh hangs up its ProxyCommand when it is done */
    rc = tether_connect_run(c);
    g_connect = NULL;
    tether_connect_free(c);
    return rc == 0 ? 0 : 1;
}
