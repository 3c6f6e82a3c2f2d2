/* main.c - tetherd: parses the command line, starts the relay and runs its loop until
 * SIGTERM/SIGINT (graceful stop, exit 0 within a couple of seconds); SIGHUP reloads the tokens
 * file and the TLS certificate and key. Usage errors exit 2, runtime failures 1, each with one line
 * on stderr. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include "common/log.h"
#include "common/pool.h"
#include "relay/admin/admincli.h"
#include "relay/config.h"
#include "relay/relay.h"
#include "relay/sdnotify.h"
#include "relay/admin/tokencli.h"
#include "relay/access/users.h"

#define STOP_DEADLINE_MS 2000

static struct tt_relay relay;
static uv_signal_t sig_term, sig_int, sig_hup;
static uv_timer_t deadline;

static void on_deadline(uv_timer_t *t)
{
    (void)t;
    TT_LOG(TT_LOG_WARN, "shutdown deadline reached; exiting");
    fflush(stdout);
    _exit(0); /* handles are still open: skip atexit work (and leak reports) on purpose */
}

static void on_stop_signal(uv_signal_t *s, int signum)
{
    (void)s;
    if (relay.stopping)
        return;
    TT_LOG(TT_LOG_INFO, "shutting down signal=%s", signum == SIGTERM ? "TERM" : "INT");
    tt_sdnotify_stopping();
    tt_relay_stop(&relay);
    uv_unref((uv_handle_t *)&sig_term);
    uv_unref((uv_handle_t *)&sig_int);
    uv_unref((uv_handle_t *)&sig_hup);
    uv_timer_init(relay.loop, &deadline);
    uv_timer_start(&deadline, on_deadline, STOP_DEADLINE_MS, 0);
    uv_unref((uv_handle_t *)&deadline);
}

static void on_hup(uv_signal_t *s, int signum)
{
    char err[TT_ERRLEN];
    (void)s;
    (void)signum;
    tt_sdnotify_reloading();
    int trc = tt_relay_reload_tokens(&relay, err);
    if (trc < 0)
        TT_LOG(TT_LOG_ERROR, "tokens reload failed, keeping the old tokens: %s", err);
    else if (trc > 0)
        TT_LOG(TT_LOG_INFO, "device token rotated: the new one is in use, the old one is good "
                            "only with a device key");
    else if (relay.cfg.tokens_file[0])
        TT_LOG(TT_LOG_INFO, "tokens reloaded file=%s devices=%zu", relay.cfg.tokens_file,
               relay.tokens.n);
    if (tt_access_reload(&relay.access, tt_relay_now_ms(), err) != 0)
        TT_LOG(TT_LOG_ERROR, "users reload failed, keeping the old users: %s", err);
    else if (relay.cfg.users_file[0])
        TT_LOG(TT_LOG_INFO, "users reloaded file=%s users=%zu", TT_LOG_V(relay.cfg.users_file),
               relay.access.users.n);
    if (tt_audit_reopen(&relay.audit, err) != 0)
        TT_LOG(TT_LOG_ERROR, "audit log reopen failed, writing to the old file: %s", err);
    int rc = tt_relay_reload_tls(&relay, err);
    if (rc < 0) {
        TT_LOG(TT_LOG_ERROR, "tls reload failed, keeping the old certificate: %s", err);
    } else if (rc > 0) {
        char cert[TT_ERRLEN];
        tt_tls_ctx_describe(relay.tls, cert, sizeof(cert));
        TT_LOG(TT_LOG_INFO, "tls certificate reloaded file=%s %s", relay.cfg.tls_cert, cert);
    }
    tt_sdnotify_reloaded();
}

/* One descriptor per device connection, browser connection and TCP port: the soft open-file
 * limit (often 1024) goes up to the hard one. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        TT_LOG(TT_LOG_WARN, "cannot raise the open-file limit to %llu",
               (unsigned long long)rl.rlim_max);
}

/* tetherd --hash-secret: the secret is the first line of stdin (not echoed when stdin is a
 * terminal), its argon2id hash line goes to stdout. Exit 0, 2 for an empty or bad secret, 1 when
 * hashing fails. */
static int hash_secret(void)
{
    char line[TT_USERS_SECRET_MAX + 3], out[TT_USERS_HASH_MAX], err[TT_ERRLEN];
    bool tty = isatty(STDIN_FILENO);
    struct termios saved, quiet;
    if (tty) {
        fprintf(stderr, "secret: ");
        fflush(stderr);
        if (tcgetattr(STDIN_FILENO, &saved) == 0) {
            quiet = saved;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        } else {
            tty = false;
        }
    }
    char *got = fgets(line, sizeof(line), stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
        fputc('\n', stderr);
    }
    size_t n = got ? strcspn(line, "\r\n") : 0;
    if (got && line[n] == '\0' && n == sizeof(line) - 1)
        n = sizeof(line); /* no end of line within the limit: too long */
    line[n < sizeof(line) ? n : sizeof(line) - 1] = '\0';
    if (n > TT_USERS_SECRET_MAX ||
        tt_check_secret(line, TT_USERS_SECRET_MAX, "the secret", err) != 0) {
        tt_secret_wipe(line, sizeof(line));
        fprintf(stderr, "tetherd: --hash-secret: %s\n",
                n > TT_USERS_SECRET_MAX ? "the secret is longer than 256 bytes"
                : n == 0                ? "no secret on standard input"
                                        : err);
        return 2;
    }
    int rc = tt_users_hash_secret((const uint8_t *)line, strlen(line), out);
    tt_secret_wipe(line, sizeof(line));
    if (rc != 0) {
        fprintf(stderr, "tetherd: --hash-secret: hashing failed\n");
        return 1;
    }
    printf("%s\n", out);
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int main(int argc, char **argv)
{
    struct tt_config cfg;
    char err[TT_ERRLEN];
    tt_log_set_program("tetherd");
    if (argc > 1 && strcmp(argv[1], "admin") == 0)
        return tt_admincli_main(argc - 1, argv + 1); /* the admin API's client (admincli.h) */
    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return tt_tokencli_main(argc - 1, argv + 1); /* the generated token (tokencli.h) */
    int action = tt_config_parse(&cfg, argc, argv, err);
    if (action < 0) {
        fprintf(stderr, "tetherd: %s\n", err);
        return action == TT_CONFIG_ERR_RUNTIME ? 1 : 2;
    }
    if (action == TT_CONFIG_HELP) {
        tt_config_usage(stdout);
        return 0;
    }
    if (action == TT_CONFIG_VERSION) {
        printf("tetherd %s\n", TT_RELAY_VERSION);
        return 0;
    }
    if (action == TT_CONFIG_HASH_SECRET)
        return hash_secret();
    tt_log_level = cfg.log_level;
    tt_log_set_json(cfg.log_json);
    /* the registry holds device credentials: every file and dir tetherd makes is its own */
    umask(077);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    uv_loop_t *loop = uv_default_loop();
    if (tt_relay_init(&relay, loop, &cfg, err) != 0 || tt_relay_listen(&relay, err) != 0) {
        fprintf(stderr, "tetherd: %s\n", err);
        return 1;
    }
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    uv_signal_init(loop, &sig_hup);
    uv_signal_start(&sig_term, on_stop_signal, SIGTERM);
    uv_signal_start(&sig_int, on_stop_signal, SIGINT);
    uv_signal_start(&sig_hup, on_hup, SIGHUP);
    tt_sdnotify_ready(loop, "serving"); /* systemd (Type=notify): the listeners are bound */
    uv_run(loop, UV_RUN_DEFAULT);
    /* only unreferenced handles are left (signals, the deadline) */
    uv_walk(loop, close_walk, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    tt_relay_free(&relay);
    tt_chunk_pool_drain();
    uv_loop_close(loop);
    TT_LOG(TT_LOG_INFO, "stopped");
    return 0;
}
