/* main.c - the tether program: flags (args.c) into a tether_config, one agent run until SIGINT or
 * SIGTERM, and each event printed (output.c): ready lines or --json objects on stdout, flushed
 * line by line; errors and logs on stderr. Built on tether.h and src/common only, never on
 * libtether's internals. Exit status: 0 after a signal, 2 for a usage error, 1 at runtime.
 * `tether connect ...` is the visitor's command (connect.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tether.h"
#include "cli/args.h"
#include "cli/connect.h"
#include "cli/output.h"
#include "cli/signals.h"
#include "common/log.h"
#include "common/util.h"

static tether_agent *volatile g_agent; /* for the signal handler */

static void on_signal(int sig)
{
    (void)sig;
    /* tether_agent_stop() is async-signal-safe. */
    if (g_agent)
        tether_agent_stop(g_agent);
}

struct cli {
    bool json;
};

static void on_event(tether_agent *a, const struct tether_event *ev, void *ud)
{
    struct cli *cli = ud;
    (void)a;

    if (cli->json) {
        char *line = tt_output_json(ev);
        if (line) {
            fputs(line, stdout);
            fputc('\n', stdout);
            fflush(stdout);
            free(line);
        }
        return;
    }
    switch (ev->kind) {
    case TETHER_EVENT_READY: {
        char buf[TETHER_MAX_SERVICES * 1024];
        if (tt_output_ready_text(ev, buf, sizeof buf) > 0) {
            fputs(buf, stdout);
            fflush(stdout);
        }
        break;
    }
    case TETHER_EVENT_DISCONNECTED:
    case TETHER_EVENT_ERROR: {
        if (tt_log_is_json()) { /* a log record like the others: {"msg":"error","message":...} */
            if (ev->kind == TETHER_EVENT_ERROR)
                tt_log_write(TT_LOG_ERROR, "error message=%s retry_ms=%u", TT_LOG_V(ev->message),
                             (unsigned)ev->retry_ms);
            else
                tt_log_write(TT_LOG_WARN, "disconnected reason=%s retry_ms=%u",
                             TT_LOG_V(ev->reason), (unsigned)ev->retry_ms);
            break;
        }
        /* "<timestamp> tether error: ...", like the log lines around it, in one write */
        char buf[1300];
        size_t n = tt_log_stamp(buf, sizeof buf);
        if (tt_output_event_text(ev, buf + n, sizeof buf - n) > 0)
            fputs(buf, stderr);
        break;
    }
    }
}

int main(int argc, char **argv)
{
    struct tt_args args;
    struct tether_callbacks cb = {on_event};
    struct cli cli = {false};
    tether_config *cfg = NULL;
    tether_agent *agent = NULL;
    char err[TT_ERRLEN];
    char token[TETHER_MAX_TOKEN + 1]; /* --token-file's */
    int rc;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "connect") == 0)
        return tt_connect_main(argc - 1, argv + 1); /* the visitor's side */
    tt_log_set_program("tether");
    rc = tt_args_parse(&args, argc, argv, err);
    if (rc != 0) {
        fprintf(stderr, "tether: %s\n", err);
        return rc == TT_ARGS_IO ? 1 : 2;
    }
    if (args.help || args.version) {
        if (args.help)
            fputs(tt_args_usage(), stdout);
        else
            printf("tether %s\n", tether_version());
        tt_args_free(&args);
        return 0;
    }
    if (args.log_level >= 0)
        tt_log_level = args.log_level;
    tt_log_set_json(args.log_json);
    if (args.token_file) {
        rc = tt_read_secret_file(args.token_file, token, sizeof token, err);
        if (rc != 0) {
            fprintf(stderr, "tether: --token-file: %s\n", err);
            tt_args_free(&args);
            return rc == TT_SECRET_IO ? 1 : 2;
        }
        args.token = token;
    }
    rc = tt_args_to_config(&args, &cfg, err);
    tt_secret_wipe(token, sizeof token); /* cfg has its own copy */
    tt_args_free(&args);                 /* and of every other value */
    if (rc != 0) {
        fprintf(stderr, "tether: %s\n", err);
        return 2;
    }
    cli.json = args.json;
    rc = tether_agent_new(cfg, &cb, &cli, &agent);
    if (rc != 0) {
        fprintf(stderr, "tether: cannot start the agent: %s\n",
                rc == TETHER_ERR_CONFIG ? tether_config_error(cfg) : tether_strerror(rc));
        tether_config_free(cfg);
        return rc == TETHER_ERR_CONFIG ? 2 : 1;
    }
    tether_config_free(cfg);
    g_agent = agent;
    tt_signals_install(on_signal, false);
    rc = tether_agent_run(agent);
    g_agent = NULL;
    tether_agent_free(agent);
    if (rc != 0) {
        fprintf(stderr, "tether: %s\n", tether_strerror(rc));
        return 1;
    }
    return 0;
}
