/* relay.c - tetherd's life cycle (relay.h): set-up from the configuration, listeners, token
 * reload and graceful stop. main.c drives it; the modules do the work. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tether_err.h"
#include "common/log.h"
#include "relay/admin/admin.h"
#include "relay/cluster/cluster.h"
#include "relay/cluster/drain.h"
#include "relay/device/device.h"
#include "relay/device/forward.h"
#include "relay/relay.h"
#include "relay/http/httpproxy.h"
#include "relay/http/respond.h"
#include "relay/looplag.h"
#include "relay/acceptcap.h"
#include "relay/device/admission.h"
#include "relay/http/server.h"
#include "relay/access/signin.h"
#include "relay/device/visitor.h"
#include "relay/admin/webhook.h"

/* The sign-in module's part in forward.c's HTTP filter (forward.h struct tt_forward_signin):
 * the composition root joins the two, which depend on each other's work but not on each
 * other's headers. */
static int forward_signin_check(struct tt_relay *r, const uint8_t *head,
                                const struct tt_httpproxy *x, const struct tt_access_conn *ac,
                                const void *self, char key[TT_SESSION_KEY_LEN + 1], char **answer,
                                size_t *answerlen)
{
    struct tt_signin_req q = {head, &x->hp, x->host, x->https, ac->device, ac->service};
    return tt_signin_check(r, &q, &ac->who, self, key, answer, answerlen);
}

static void forward_signin_repeat(void)
{
    tt_signin_stats.signin_repeats++;
}

static const struct tt_forward_signin forward_signin = {forward_signin_check,
                                                        forward_signin_repeat};

/* mkdir -p: creates dir and its missing parents (mode 0700). Returns 0 or -1 with err. */
static int make_dirs(const char *dir, char err[TT_ERRLEN])
{
    char path[TT_CONFIG_PATHLEN];
    snprintf(path, sizeof(path), "%s", dir);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            snprintf(err, TT_ERRLEN, "cannot create data dir %.200s: %s", dir, strerror(errno));
            return -1;
        }
        *p = c;
        if (c == '\0')
            break;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, TT_ERRLEN, "data dir %.200s is not a directory", dir);
        return -1;
    }
    return 0;
}

/* Takes DATA_DIR/tetherd.lock (flock, held until exit: the kernel drops it even after a
 * kill -9), so that two relays never share one registry. Returns 0 or -1 with err. */
static int lock_data_dir(struct tt_relay *r, char err[TT_ERRLEN])
{
    char path[TT_CONFIG_PATHLEN + 32];
    snprintf(path, sizeof(path), "%s/tetherd.lock", r->cfg.data_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, TT_ERRLEN, "cannot write in data dir %.200s: %s", r->cfg.data_dir,
                 strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, TT_ERRLEN, "data dir %.200s is in use by another tetherd", r->cfg.data_dir);
        close(fd);
        return -1;
    }
    r->lock_fd = fd;
    return 0;
}

/* The registry holds device credentials: its files are for tetherd's user alone. main.c sets
 * umask 077, so new files are 0600 and new dirs 0700; files an older tetherd (or a looser
 * umask) left 0644 are set to 0600 here, before SQLite opens the database (it gives a new -wal
 * and -shm file the database's own mode). The data dir's mode is kept for the warning that
 * tt_relay_listen logs when group or others may enter it. */
static void tighten_data_dir(struct tt_relay *r)
{
    static const char *const files[] = {TT_REGISTRY_FILE, TT_REGISTRY_FILE "-wal",
                                        TT_REGISTRY_FILE "-shm", "tetherd.lock", "token"};
    char path[TT_CONFIG_PATHLEN + 32];
    struct stat st;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", r->cfg.data_dir, files[i]);
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) &&
            chmod(path, st.st_mode & 0700) != 0)
            r->data_dir_chmod_failed = true;
    }
    if (stat(r->cfg.data_dir, &st) == 0)
        r->data_dir_mode = (unsigned)(st.st_mode & 07777);
}

/* Opens the registry in the data dir and makes the relay's devices from it. */
/* The TLS listener's gate (headconn.h): a handshake starts while the node may register one
 * more device (admission.h), the handshakes under way counted as registrations to come, so that
 * in a storm a device's handshake is not paid for only to refuse it busy. headconn.c's floor
 * keeps handshakes (browsers' too) starting while it is shut. */
static bool handshake_room(struct tt_headconn_set *set, void *ud)
{
    struct tt_relay *r = ud;
    return r->drain.on ||
           tt_admission_room(&r->drain, r->cfg.max_registering, set->handshakes_active);
}

static int setup_registry(struct tt_relay *r, char err[TT_ERRLEN])
{
    /* the one place that knows which mode runs (mode.h) */
    r->mode = r->cfg.cluster ? &tt_mode_cluster : &tt_mode_single;
    return r->mode->init(r, err);
}

static int setup_tokens(struct tt_relay *r, char err[TT_ERRLEN])
{
    tt_tokens_init(&r->tokens);
    if (r->cfg.token[0]) {
        tt_tokens_set_fleet(&r->tokens, r->cfg.token, strlen(r->cfg.token));
        return tt_tokens_fleet_history(&r->tokens, r->reg, err);
    }
    if (r->cfg.tokens_file[0])
        return tt_tokens_load_file(&r->tokens, r->cfg.tokens_file, err);
    /* The generated token: one the registry holds already is loaded now; a new one is made
     * only once every listener is bound (make_token), so that a start that fails makes none. */
    uint8_t hash[32];
    int rc = tt_registry_cred_get(r->reg, TT_REG_FLEET_CRED, hash);
    if (rc == TETHER_ERR_NOT_FOUND) {
        r->token_pending = true;
        return 0;
    }
    if (rc != 0) {
        snprintf(err, TT_ERRLEN, "cannot read the fleet token from the registry: %s",
                 tether_strerror(rc));
        return -1;
    }
    tt_tokens_set_fleet_hash(&r->tokens, hash);
    return tt_tokens_fleet_history(&r->tokens, r->reg, err);
}

/* The relay serves (its listeners are bound): the generated token is made if the registry had
 * none (or imported from a legacy DIR/token file), stored durably, then printed once on
 * stdout. */
static int make_token(struct tt_relay *r, char err[TT_ERRLEN])
{
    char token[TT_MAX_TOKEN + 1];
    bool created;
    if (!r->token_pending)
        return 0;
    if (tt_tokens_generated(&r->tokens, r->reg, r->cfg.data_dir, token, &created, err) != 0 ||
        tt_tokens_fleet_history(&r->tokens, r->reg, err) != 0)
        return -1;
    r->token_pending = false;
    /* cluster: the beat restores it in Redis should Redis lose it */
    r->mode->set_fleet_hash(r, r->tokens.fleet);
    if (created) {
        printf("tetherd: device token: %s\n", token);
        fflush(stdout);
    }
    tt_secret_wipe(token, sizeof(token));
    return 0;
}

/* Cluster nodes forward browsers' requests and TCP clients from their own address: they are
 * not held to the per-address cap on unauthenticated connections (their connections carry a
 * whole head at once, and the browsers behind them are counted where they arrived). */
static bool cluster_peer(const char *key, void *ud)
{
    struct tt_relay *r = ud;
    return r->mode->is_peer(r, key);
}

int tt_relay_init(struct tt_relay *r, uv_loop_t *loop, const struct tt_config *cfg,
                  char err[TT_ERRLEN])
{
    memset(r, 0, sizeof(*r));
    err[0] = '\0';
    r->loop = loop;
    r->cfg = *cfg;
    tt_strmap_init(&r->by_name);
    tt_strmap_init(&r->by_label);
    tt_devauth_init(&r->auth, cfg->max_names_per_token, cfg->max_ports_per_token,
                    cfg->new_names_per_sec, (int64_t)uv_now(loop));
    r->lock_fd = -1;
    tt_limits_init(&r->limits, loop, tt_limits_nofile(), (size_t)cfg->max_pending,
                   (size_t)cfg->max_pending_per_addr, cfg->max_streams,
                   (unsigned)cfg->max_streams_per_client);
    r->limits.exempt = cluster_peer;
    r->limits.exempt_ud = r;
    if (make_dirs(cfg->data_dir, err) != 0 || lock_data_dir(r, err) != 0)
        return -1;
    tighten_data_dir(r);
    if (setup_registry(r, err) != 0 || setup_tokens(r, err) != 0)
        return -1;
    /* r->cfg, not cfg: the access rules read the --public patterns from it for good */
    if (tt_access_init(&r->access, loop, &r->cfg, err) != 0 ||
        tt_audit_open(&r->audit, cfg->audit_log, err) != 0)
        return -1;
    r->auth.access = &r->access; /* private TCP services take no port of the fleet's cap */
    struct tt_redisconn *shared = r->mode->shared_store(r);
    if (shared) /* the grants live in Redis, shared by every node (grants.h) */
        tt_grants_use_redis(r->access.grants, shared);
    tt_sessions_init(&r->sessions, loop, cfg->session_ttl_ms, shared);
    if (tt_tcpports_init(&r->ports, loop, cfg->tcp_bind, cfg->tcp_low, cfg->tcp_high) != 0) {
        snprintf(err, TT_ERRLEN, "out of memory");
        return -1;
    }
    /* cluster nodes on one address all listen on every port of the cluster */
    r->ports.reuseport = cfg->cluster;
    r->ports.limits = &r->limits;
    /* ticket keys: made here, or (cluster) shared through Redis by cluster/tickets.c */
    tt_tls_tickets_configure(cfg->tls_ticket_rotate_ms / 1000, cfg->cluster);
    if (cfg->ntls_listen > 0 && tt_tls_ctx_server(&r->tls, cfg->tls_cert, cfg->tls_key, err) != 0)
        return -1;
    if (tt_headconn_set_init(&r->web, loop, tt_server_on_head, r) != 0 ||
        tt_headconn_set_init(&r->web_tls, loop, tt_server_on_head, r) != 0 ||
        tt_headconn_set_init(&r->admin, loop, tt_admin_on_head, r) != 0) {
        snprintf(err, TT_ERRLEN, "cannot start timers");
        return -1;
    }
    r->web.timeout_ms = r->admin.timeout_ms = cfg->head_timeout_ms;
    r->web_tls.timeout_ms = cfg->head_timeout_ms;
    /* a storm's heads are run over several loop turns; the admin listener's at once */
    r->web.heads_per_turn = r->web_tls.heads_per_turn = TT_HEADCONN_PER_TURN;
    r->web_tls.handshakes_per_turn = TT_HEADCONN_HANDSHAKES_PER_TURN;
    r->web_tls.may_start = handshake_room;
    r->web_tls.tls = r->tls;
    r->web.limits = r->web_tls.limits = r->admin.limits = &r->limits;
    tt_forward_set_signin(&forward_signin);
    if (tt_forward_start(loop, cfg, &r->limits) != 0) {
        snprintf(err, TT_ERRLEN, "cannot start timers");
        return -1;
    }
    /* each event is sent by the node where it happens; "node" is null on a single relay */
    int wrc = tt_webhooks_new(&r->webhooks, loop, cfg->webhooks, cfg->nwebhooks,
                              cfg->webhook_secret, cfg->cluster ? cfg->node_id : NULL,
                              (size_t)cfg->webhook_queue, cfg->webhook_max_age_ms, err);
    r->webhooks_signed = cfg->webhook_secret[0] != '\0';
    tt_secret_wipe(r->cfg.webhook_secret, sizeof(r->cfg.webhook_secret));
    return wrc;
}

/* A TLS listener's set has as many connections waiting for their handshake as it takes
 * (headconn.h): the listener stops accepting (acceptcap.h). */
static bool waiting_full(void *ud)
{
    const struct tt_headconn_set *set = ud;
    return set->tls != NULL && set->handshakes_waiting >= TT_HEADCONN_WAITING_MAX;
}

/* The connection a listener held at its cap this turn (acceptcap.h), after the poll. */
static void accept_held(struct tt_acceptcap_listener *l)
{
    tt_headconn_accept(l->ud, (uv_stream_t *)&l->tcp);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct tt_headconn_set *set = server->data;
    if (status < 0) {
        /* Counted, and logged at most every TT_LIMITS_LOG_EVERY_MS. For want of descriptors
         * (EMFILE that libuv's reserved-descriptor trick could not absorb, ENFILE) a batch of
         * the oldest unauthenticated connections is shed so that the next accepts succeed. */
        if (set->limits)
            tt_limits_accept_failed(set->limits, status);
        return;
    }
    /* at the per-turn cap the connection stays in the kernel's queue (acceptcap.h) */
    if (!tt_acceptcap_take((struct tt_acceptcap_listener *)(void *)server))
        return;
    tt_headconn_accept(set, server);
}

/* h is the tcp of a struct tt_acceptcap_listener (its first member): the whole goes. */
static void on_listener_close(uv_handle_t *h)
{
    free(h);
}

/* Binds and listens on a (given by flag, named in err: "--listen 127.0.0.1:8080: address
 * already in use"). Returns 0 or -1 with err. */
static int listen_on(struct tt_relay *r, const struct tt_config_addr *a,
                     struct tt_headconn_set *set, const char *flag, char err[TT_ERRLEN])
{
    struct sockaddr_storage ss;
    bool v6 = strchr(a->host, ':') != NULL;
    if (uv_ip4_addr(a->host, a->port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(a->host, a->port, (struct sockaddr_in6 *)&ss) != 0) {
        snprintf(err, TT_ERRLEN, "%s %.100s:%u: not an IP address", flag, a->host,
                 (unsigned)a->port);
        return -1;
    }
    struct tt_acceptcap_listener *l = calloc(1, sizeof(*l));
    if (!l) {
        snprintf(err, TT_ERRLEN, "out of memory");
        return -1;
    }
    uv_tcp_t *h = &l->tcp;
    uv_tcp_init(r->loop, h);
    h->data = set;
    l->ud = set;
    l->accept = accept_held;
    /* the admin listener takes every connection at once: it must answer during a storm */
    l->capped = set != &r->admin;
    l->full = set == &r->web_tls ? waiting_full : NULL;
    r->listeners[r->nlisteners++] = h;
    int rc = uv_tcp_bind(h, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        /* A deep accept queue (the kernel caps it at net.core.somaxconn): after a restart every
         * device reconnects within a second or two. */
        rc = uv_listen((uv_stream_t *)h, 4096, on_connection);
    if (rc != 0) {
        snprintf(err, TT_ERRLEN, "%s %s%.100s%s:%u: %s", flag, v6 ? "[" : "", a->host,
                 v6 ? "]" : "", (unsigned)a->port, uv_strerror(rc));
        return -1;
    }
    return 0;
}

/* Checks that --tcp-bind is an address of this machine (binding port 0 on it), so that a typo
 * fails at start rather than at each device's first TCP service. */
static int check_tcp_bind(struct tt_relay *r, char err[TT_ERRLEN])
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (uv_ip4_addr(r->cfg.tcp_bind, 0, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(r->cfg.tcp_bind, 0, (struct sockaddr_in6 *)&ss) != 0) {
        snprintf(err, TT_ERRLEN, "--tcp-bind %.100s: not an IP address", r->cfg.tcp_bind);
        return -1;
    }
    socklen_t len =
        ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = fd < 0 || bind(fd, (struct sockaddr *)&ss, len) != 0 ? errno : 0;
    if (fd >= 0)
        close(fd);
    if (rc != 0) {
        snprintf(err, TT_ERRLEN, "cannot bind TCP ports on %.100s (--tcp-bind): %s",
                 r->cfg.tcp_bind, strerror(rc));
        return -1;
    }
    return 0;
}

/* The start-up summary: version, device URLs, TCP ports, which credentials (never a token),
 * where the registry is. The listeners follow, one line each. */
static void log_started(struct tt_relay *r)
{
    const struct tt_config *c = &r->cfg;
    char port[8] = "", tokens[64], where[TT_CONFIG_PATHLEN + 64];
    if (c->url_port)
        snprintf(port, sizeof(port), ":%u", (unsigned)c->url_port);
    if (c->tokens_file[0])
        snprintf(tokens, sizeof(tokens), "file names=%zu", r->tokens.n);
    else
        snprintf(tokens, sizeof(tokens), "%s old_fleet_tokens=%zu",
                 c->token[0] ? "fleet" : "generated", r->tokens.nold);
    if (c->cluster && c->redis.sentinel)
        snprintf(where, sizeof(where), "redis-sentinel://%s%s%s:%u%s/%s",
                 strchr(c->redis.sentinels[0].host, ':') ? "[" : "", c->redis.sentinels[0].host,
                 strchr(c->redis.sentinels[0].host, ':') ? "]" : "",
                 (unsigned)c->redis.sentinels[0].port, c->redis.nsentinels > 1 ? ",..." : "",
                 c->redis.master);
    else if (c->cluster)
        snprintf(where, sizeof(where), "redis://%s:%u", c->redis.host, (unsigned)c->redis.port);
    else
        snprintf(where, sizeof(where), "%s/%s", c->data_dir, TT_REGISTRY_FILE);
    TT_LOG(TT_LOG_INFO,
           "relay started version=%s public_url=%s://LABEL.%s%s tcp_ports=%u-%u tcp_bind=%s "
           "tokens=%s registry=%s",
           TT_RELAY_VERSION, c->url_scheme, c->url_host, port, (unsigned)c->tcp_low,
           (unsigned)c->tcp_high, c->tcp_bind, tokens, TT_LOG_V(where));
}

int tt_relay_listen(struct tt_relay *r, char err[TT_ERRLEN])
{
    /* Everything that can fail comes before the first log line: a failed start prints one
     * line (main's) and nothing else. */
    for (size_t i = 0; i < r->cfg.nlisten; i++)
        if (listen_on(r, &r->cfg.listen[i], &r->web, "--listen", err) != 0)
            return -1;
    for (size_t i = 0; i < r->cfg.ntls_listen; i++)
        if (listen_on(r, &r->cfg.tls_listen[i], &r->web_tls, "--tls-listen", err) != 0)
            return -1;
    if (listen_on(r, &r->cfg.admin, &r->admin, "--admin-listen", err) != 0 ||
        check_tcp_bind(r, err) != 0 || tt_device_start(r, err) != 0 || make_token(r, err) != 0)
        return -1;
    log_started(r);
    for (size_t i = 0; i < r->cfg.nlisten; i++) {
        const struct tt_config_addr *a = &r->cfg.listen[i];
        TT_LOG(TT_LOG_INFO, "listening addr=%s:%u for=devices,browsers domain=%s", a->host,
               (unsigned)a->port, r->cfg.domain);
    }
    if (r->cfg.ntls_listen > 0) {
        char cert[TT_ERRLEN];
        tt_tls_ctx_describe(r->tls, cert, sizeof(cert));
        for (size_t i = 0; i < r->cfg.ntls_listen; i++) {
            const struct tt_config_addr *a = &r->cfg.tls_listen[i];
            bool v6 = strchr(a->host, ':') != NULL;
            TT_LOG(TT_LOG_INFO, "listening addr=%s%s%s:%u for=devices,browsers tls=on domain=%s",
                   v6 ? "[" : "", a->host, v6 ? "]" : "", (unsigned)a->port, r->cfg.domain);
        }
        TT_LOG(TT_LOG_INFO, "tls certificate file=%s %s", r->cfg.tls_cert, cert);
    }
    TT_LOG(TT_LOG_INFO, "listening addr=%s:%u for=admin", r->cfg.admin.host,
           (unsigned)r->cfg.admin.port);
    if (r->data_dir_mode & 077)
        TT_LOG(TT_LOG_WARN,
               "data dir open to %s dir=%s mode=%04o (it holds the device credentials: chmod "
               "700 it)",
               (r->data_dir_mode & 007) ? "every user" : "its group", TT_LOG_V(r->cfg.data_dir),
               r->data_dir_mode);
    if (r->data_dir_chmod_failed)
        TT_LOG(TT_LOG_WARN, "cannot make every registry file private (chmod 600) dir=%s",
               TT_LOG_V(r->cfg.data_dir));
    if (r->cfg.nwebhooks > 0) {
        TT_LOG(TT_LOG_INFO, "webhooks urls=%zu signed=%s queue=%llu max_age_s=%llu",
               r->cfg.nwebhooks, r->webhooks_signed ? "yes" : "no",
               (unsigned long long)r->cfg.webhook_queue,
               (unsigned long long)(r->cfg.webhook_max_age_ms / 1000));
        if (!r->webhooks_signed)
            TT_LOG(TT_LOG_WARN, "webhooks are not signed: anyone who reaches the receiver can "
                                "forge events (set --webhook-secret-file or "
                                "TETHER_WEBHOOK_SECRET)");
    }
    int arc = tt_acceptcap_start(r->loop);
    if (arc != 0)
        TT_LOG(TT_LOG_WARN, "accepts per loop turn not capped err=%s", uv_err_name(arc));
    /* the loop's own stall measure (/metrics): nothing is lost without it but the figure */
    int lrc = tt_looplag_start(r->loop);
    if (lrc != 0)
        TT_LOG(TT_LOG_WARN, "loop lag not measured err=%s", uv_err_name(lrc));
    const struct tt_limits *l = &r->limits;
    TT_LOG(TT_LOG_INFO,
           "limits open_files=%llu fd_reserve=%llu max_pending=%zu max_pending_per_addr=%zu "
           "max_streams=%u per_kind=%u max_streams_per_client=%u",
           (unsigned long long)l->fd_limit, (unsigned long long)l->fd_reserve, l->max_pending,
           l->max_per_addr, l->max_streams, tt_limits_kind_cap(l, true), l->per_client);
    return 0;
}

int tt_relay_reload_tls(struct tt_relay *r, char err[TT_ERRLEN])
{
    struct tt_tls_ctx *ctx;
    if (r->cfg.ntls_listen == 0)
        return 0;
    if (tt_tls_ctx_server(&ctx, r->cfg.tls_cert, r->cfg.tls_key, err) != 0)
        return -1;
    /* Sessions made with the old context hold their own reference to it. */
    tt_tls_ctx_free(r->tls);
    r->tls = ctx;
    r->web_tls.tls = ctx;
    return 1;
}

int tt_relay_reload_tokens(struct tt_relay *r, char err[TT_ERRLEN])
{
    if (r->cfg.tokens_file[0])
        return tt_tokens_load_file(&r->tokens, r->cfg.tokens_file, err);
    /* the generated token (SQLite only: a node never waits for Redis on its loop) */
    uint8_t hash[32];
    if (r->cfg.token[0] || r->mode->shared || !r->tokens.have_fleet ||
        tt_registry_cred_get(r->reg, TT_REG_FLEET_CRED, hash) != 0 ||
        memcmp(hash, r->tokens.fleet, sizeof(hash)) == 0)
        return 0;
    struct tt_tokens t = r->tokens; /* no per-name list with the generated token */
    tt_tokens_set_fleet_hash(&t, hash);
    if (tt_tokens_fleet_history(&t, r->reg, err) != 0)
        return -1;
    r->tokens = t;
    return 1;
}

void tt_relay_stop(struct tt_relay *r)
{
    if (r->stopping)
        return;
    r->stopping = true;
    tt_looplag_stop();
    tt_acceptcap_stop(); /* before the listeners close: none is held any more */
    for (size_t i = 0; i < r->nlisteners; i++)
        uv_close((uv_handle_t *)r->listeners[i], on_listener_close);
    r->nlisteners = 0;
    tt_headconn_set_close(&r->web);
    tt_headconn_set_close(&r->web_tls);
    tt_headconn_set_close(&r->admin);
    tt_respond_close_all();
    tt_signin_stop(r);
    tt_sessions_close(&r->sessions);
    tt_forward_stop();
    tt_visitor_shutdown(r);
    tt_device_shutdown(r);
    tt_drain_shutdown(r);
    tt_tcpports_reset(&r->ports);
    tt_webhooks_stop(r->webhooks);
}

void tt_relay_free(struct tt_relay *r)
{
    tt_registry_free(r->reg);
    r->reg = NULL;
    if (r->mode)
        r->mode->free(r);
    if (r->lock_fd >= 0)
        close(r->lock_fd);
    r->lock_fd = -1;
    tt_tokens_reset(&r->tokens);
    tt_devauth_reset(&r->auth);
    tt_tls_ctx_free(r->tls);
    r->tls = NULL;
    tt_strmap_reset(&r->by_name);
    tt_strmap_reset(&r->by_label);
    tt_limits_reset(&r->limits);
    tt_sessions_free(&r->sessions);
    tt_access_free(&r->access);
    tt_audit_close(&r->audit);
    tt_visitor_free(r);
    tt_webhooks_free(r->webhooks);
    r->webhooks = NULL;
    tt_admin_free(r);
}
