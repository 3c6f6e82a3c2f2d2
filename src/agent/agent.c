/* agent.c - libtether's agent (tether.h): owns the event loop, rotates through the relay URLs,
 * dials (dial.c), runs one WebSocket connection at a time (common/wsconn.h), registers with HELLO,
 * turns WELCOME / REFUSE / GOAWAY and connection loss into events, and reconnects forever with
 * back-off (backoff.c), each dial allowed longer after dials that stalled (up to 60 s, until a
 * registration: tt_dialtimeout_next). Streams opened by the relay go to services.c. Everything
 * here runs on the thread inside tether_agent_run(), except tether_agent_stop(), which only flags
 * and wakes. */
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <openssl/crypto.h>

#include "tether.h"
#include "agent/backoff.h"
#include "agent/agentconf.h"
#include "agent/dial.h"
#include "agent/proxy.h"
#include "agent/relaytext.h"
#include "agent/resolve.h"
#include "agent/services.h"
#include "agent/state.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/pipe.h"
#include "common/pool.h"
#include "common/tls.h"
#include "common/wsconn.h"

#define AGENT_WINDOW (256u * 1024u)
#define AGENT_MAX_STREAMS 1024u
/* The link is checked every second: a ping after 20 s without hearing anything (the relay
 * pings a quiet device every 15 s, so with a current relay ours are not needed), and a dead
 * link after 30 s of silence (SPEC: noticed within about 30 s). */
#define AGENT_PING_CHECK_MS 1000u
#define AGENT_PING_QUIET_MS 20000u
#define AGENT_PING_TIMEOUT_MS 30000u
/* A registration that lasted this long was a success: the back-off starts over after it. */
#define AGENT_STABLE_MS 10000u
/* After GOAWAY(SHUTDOWN) the relay is going away on purpose: come back (elsewhere) soon. */
#define AGENT_SHUTDOWN_RETRY_MS 1000u
#define URL_MAX 2048

struct tether_agent {
    uv_loop_t loop;
    uv_async_t async;   /* wakes the loop for tether_agent_stop() */
    uv_timer_t timer;   /* the next attempt; also defers closes out of session callbacks */
    tether_config *cfg; /* our own copy */
    struct tt_proxy_env proxy_env;   /* the proxy variables, read once in tether_agent_new */
    struct tt_proxy_conf proxy_conf; /* points into cfg and proxy_env */
    struct tt_dial_options dial_opt;
    struct tt_resolver resolver; /* --dns, for the relay's, the proxy's and services' names */
    struct tt_tls_ctx *tls;      /* for wss:// (NULL when no server needs it) */
    struct tether_callbacks cb;
    void *ud;
    /* The device key (state.h): where it is kept ("" nowhere), and the key itself once known
     * (from the config, the key file or a relay's WELCOME; "" none yet). Never logged. */
    char state_dir[TT_STATE_PATHLEN];
    char state_err[TT_ERRLEN]; /* why there is no state dir, when the default has none */
    char key[TETHER_DEVICE_KEY_LEN + 1];
    bool key_warned; /* a key file problem was reported once */
    /* A relay refused our version-2 HELLO with VERSION (a relay older than device keys): the
     * next attempt, and only that one, speaks version 1 (without the key). */
    bool try_v1;
    struct tt_session_callbacks scb;
    struct tt_backoff backoff;
    /* The next dial's timeout: TT_DIAL_TIMEOUT_MS, doubled after each dial that stalled (the
     * relay took the connection but did not finish in time), at most TT_DIAL_TIMEOUT_MAX_MS,
     * back to TT_DIAL_TIMEOUT_MS at each WELCOME (tt_dialtimeout_next). One for all the
     * servers: in a storm they are all loaded alike. */
    uint32_t dial_timeout_ms;
    size_t next_server;
    struct tt_dial *dial;   /* the attempt under way, or NULL */
    struct tt_wsconn *conn; /* the connection, or NULL */
    char url[URL_MAX];      /* the URL of the current or last connection */
    atomic_int stop_requested;
    bool stopping;
    bool ran;
    bool closed; /* async and timer closed */
    /* Per connection; reset by reset_conn_state(). */
    bool registered;
    uint64_t registered_at;
    bool refused;
    int refuse_err;                      /* AUTH (REFUSE) or PROTO (a WELCOME we cannot use) */
    char refuse_msg[TT_MAX_REASON + 96]; /* text + reason: never truncated */
    bool got_goaway;
    uint16_t goaway_code;
    char goaway_reason[TT_MAX_REASON + 1];
    char label[TT_MAX_LABEL + 1];
    char addr[TETHER_MAX_SERVICES][TT_MAX_ADDR + 1];
    struct tether_service_info info[TETHER_MAX_SERVICES];
};

const char *tether_version(void)
{
    return TETHER_VERSION;
}

void tether_set_log_level(int level)
{
    if (level < TETHER_LOG_ERROR)
        level = TETHER_LOG_ERROR;
    if (level > TETHER_LOG_DEBUG)
        level = TETHER_LOG_DEBUG;
    tt_log_level = level;
}

static void connect_next(struct tether_agent *a);

/* snprintf through va_list: a long message is cut, not warned about. */
static void fmt(char *out, size_t outlen, const char *f, ...) TT_PRINTF(3, 4);

static void fmt(char *out, size_t outlen, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    vsnprintf(out, outlen, f, ap);
    va_end(ap);
}

/* Copies a string view into out[outlen], NUL-terminated, cut if need be. */
static void copy_view(char *out, size_t outlen, struct tt_str s)
{
    size_t n = s.len < outlen - 1 ? s.len : outlen - 1;
    if (n)
        memcpy(out, s.p, n);
    out[n] = '\0';
}

/* ---- events ------------------------------------------------------------------------------- */

static void emit(struct tether_agent *a, const struct tether_event *ev)
{
    if (a->cb.on_event) {
        a->cb.on_event(a, ev, a->ud);
        return;
    }
    /* No callback: the log is all the embedding application gets. */
    switch (ev->kind) {
    case TETHER_EVENT_READY:
        TT_LOG(TT_LOG_INFO, "ready server=%s label=%s", TT_LOG_V(ev->server), TT_LOG_V(ev->label));
        break;
    case TETHER_EVENT_DISCONNECTED:
        TT_LOG(TT_LOG_WARN, "disconnected server=%s reason=\"%s\" retry_in=%.1fs",
               TT_LOG_V(ev->server), TT_LOG_E(ev->reason), ev->retry_ms / 1000.0);
        break;
    case TETHER_EVENT_ERROR:
        TT_LOG(TT_LOG_WARN, "error server=%s retry_in=%.1fs: %s", TT_LOG_V(ev->server),
               ev->retry_ms / 1000.0, TT_LOG_E(ev->message));
        break;
    }
}

static void emit_error(struct tether_agent *a, const char *server, int err, const char *message,
                       uint32_t retry_ms)
{
    struct tether_event ev = {0};

    ev.kind = TETHER_EVENT_ERROR;
    ev.server = server;
    ev.message = message;
    ev.err = err;
    ev.retry_ms = retry_ms;
    TT_LOG(TT_LOG_DEBUG, "event=error server=%s err=%s retry_ms=%u: %s", TT_LOG_V(server),
           tether_err_name(err), (unsigned)retry_ms, TT_LOG_E(message));
    emit(a, &ev);
}

/* ---- retries ------------------------------------------------------------------------------ */

static void on_retry(uv_timer_t *t)
{
    connect_next(t->data);
}

static void schedule(struct tether_agent *a, uint32_t delay_ms)
{
    if (a->stopping)
        return;
    TT_LOG(TT_LOG_DEBUG, "reconnecting in=%.1fs server=%s", delay_ms / 1000.0,
           a->cfg->servers[a->next_server]);
    uv_timer_start(&a->timer, on_retry, delay_ms, 0);
}

/* ---- stopping ----------------------------------------------------------------------------- */

static void close_handles(struct tether_agent *a)
{
    if (a->closed)
        return;
    a->closed = true;
    uv_timer_stop(&a->timer);
    uv_close((uv_handle_t *)&a->timer, NULL);
    uv_close((uv_handle_t *)&a->async, NULL);
}

static void begin_stop(struct tether_agent *a)
{
    if (a->stopping)
        return;
    a->stopping = true;
    TT_LOG(TT_LOG_INFO, "stopping");
    uv_timer_stop(&a->timer);
    if (a->dial) {
        tt_dial_cancel(a->dial);
        a->dial = NULL;
    }
    if (a->conn) {
        /* on_conn_close closes our handles once the connection is gone. */
        tt_wsconn_close(a->conn, TT_GOAWAY_NORMAL, 1000, 0, "agent stopping");
        return;
    }
    close_handles(a);
}

static void on_async(uv_async_t *h)
{
    struct tether_agent *a = h->data;

    if (atomic_load(&a->stop_requested))
        begin_stop(a);
}

/* ---- the connection ----------------------------------------------------------------------- */

static void reset_conn_state(struct tether_agent *a)
{
    a->registered = false;
    a->registered_at = 0;
    a->refused = false;
    a->refuse_msg[0] = '\0';
    a->got_goaway = false;
    a->goaway_code = 0;
    a->goaway_reason[0] = '\0';
    a->label[0] = '\0';
}

static void on_close_now(uv_timer_t *t)
{
    struct tether_agent *a = t->data;
    /* A WELCOME we cannot use is the relay's protocol error (PROTOCOL.md 2.4, 4.2): GOAWAY
     * PROTOCOL and 1002. After a REFUSE or GOAWAY the session sends nothing more: 1000. */
    uint16_t code =
        a->refused && a->refuse_err == TETHER_ERR_PROTO ? TT_GOAWAY_PROTOCOL : TT_GOAWAY_NORMAL;

    if (a->conn)
        tt_wsconn_close(a->conn, code, tt_wsconn_close_code(code), a->refused ? a->refuse_err : 0,
                        code == TT_GOAWAY_PROTOCOL ? "unusable WELCOME"
                        : a->refused               ? "registration refused"
                                                   : "relay going away");
}

/* Closes the connection from outside the session callback we are in. */
static void close_soon(struct tether_agent *a)
{
    uv_timer_start(&a->timer, on_close_now, 0, 0);
}

/* The relay issued a device key at this registration: it is ours from now on (in memory at
 * once, for every later registration of this run), and saved in the state directory before
 * the READY event; a key that cannot be saved is an ERROR event (the agent goes on). Returns
 * true when the key was taken (a malformed one is not). */
static bool keep_key(struct tether_agent *a, struct tt_str key)
{
    char err[TT_ERRLEN], msg[TT_ERRLEN + 128];
    bool hex = key.len == TETHER_DEVICE_KEY_LEN;

    for (size_t i = 0; hex && i < key.len; i++)
        hex = (key.p[i] >= '0' && key.p[i] <= '9') || (key.p[i] >= 'a' && key.p[i] <= 'f');
    if (!hex) {
        TT_LOG(TT_LOG_WARN, "relay sent a malformed device key, ignored server=%s",
               TT_LOG_V(a->url));
        return false;
    }
    memcpy(a->key, key.p, key.len);
    a->key[key.len] = '\0';
    if (a->state_dir[0] == '\0') {
        if (a->cfg->state_dir != NULL && a->cfg->state_dir[0] == '\0')
            return true; /* no files on purpose: the application keeps it (READY's device_key) */
        snprintf(msg, sizeof msg,
                 "cannot keep the device key of %s: %s; after a restart the relay will refuse "
                 "this name until an operator deletes it",
                 a->cfg->name, a->state_err);
        emit_error(a, a->url, TETHER_ERR_IO, msg, 0);
        return true;
    }
    if (tt_state_write_key(&a->loop, a->state_dir, a->cfg->name, a->key, err) != 0) {
        snprintf(msg, sizeof msg,
                 "%s; the device keeps it until it stops, then the relay will refuse this name "
                 "until an operator deletes it",
                 err);
        emit_error(a, a->url, TETHER_ERR_IO, msg, 0);
        return true;
    }
    TT_LOG(TT_LOG_INFO, "device key saved device=%s dir=%s", a->cfg->name, a->state_dir);
    return true;
}

/* The key to present: ours, else the one in the state directory (read at each attempt until
 * there is one, so that a key file restored meanwhile is used). A key file that cannot be read
 * is reported once as an ERROR event; the registration goes on without a key. */
static void load_key(struct tether_agent *a)
{
    char err[TT_ERRLEN];
    int rc;

    if (a->key[0] != '\0' || a->state_dir[0] == '\0')
        return;
    rc = tt_state_read_key(&a->loop, a->state_dir, a->cfg->name, a->key, err);
    if (rc == 0) {
        TT_LOG(TT_LOG_DEBUG, "device key read device=%s dir=%s", a->cfg->name, a->state_dir);
        return;
    }
    a->key[0] = '\0';
    if (rc != TETHER_ERR_NOT_FOUND && !a->key_warned) {
        a->key_warned = true;
        emit_error(a, a->url, rc, err, 0);
    }
}

static int on_welcome(struct tt_session *s, const struct tt_welcome *m, void *ud)
{
    struct tether_agent *a = ud;
    const tether_config *cfg = a->cfg;
    struct tether_event ev = {0};
    char why[128];
    (void)s;

    /* its text goes to our stdout: a WELCOME we cannot print safely fails the attempt */
    if (tt_relaytext_check_welcome(m, why, sizeof why) != 0) {
        a->refused = true;
        a->refuse_err = TETHER_ERR_PROTO;
        snprintf(a->refuse_msg, sizeof a->refuse_msg, "relay sent an unusable WELCOME: %s", why);
        close_soon(a);
        return 0;
    }
    a->registered = true;
    a->registered_at = uv_now(&a->loop);
    a->dial_timeout_ms = tt_dialtimeout_next(a->dial_timeout_ms, TT_DIAL_END_REGISTERED,
                                             TT_DIAL_TIMEOUT_MS, TT_DIAL_TIMEOUT_MAX_MS);
    copy_view(a->label, sizeof a->label, m->label);
    if (m->nservices != cfg->nservices)
        TT_LOG(TT_LOG_WARN, "relay answered with services=%u, we offered %u",
               (unsigned)m->nservices, (unsigned)cfg->nservices);
    for (size_t i = 0; i < cfg->nservices; i++) {
        struct tether_service_info *si = &a->info[i];
        const struct tt_service *svc = &cfg->services[i];

        memset(si, 0, sizeof *si);
        si->name = svc->name;
        si->kind = svc->kind;
        si->target = svc->target;
        a->addr[i][0] = '\0';
        if (i < m->nservices) {
            copy_view(a->addr[i], sizeof a->addr[i], m->services[i].address);
            si->port = svc->kind == TETHER_SERVICE_TCP ? m->services[i].port : 0;
            /* TCP: no port (and no address, checked above); HTTP: the relay's flag */
            si->is_private = svc->kind == TETHER_SERVICE_TCP
                                 ? m->services[i].port == 0
                                 : (m->services[i].port & TT_WELCOME_HTTP_PRIVATE) != 0;
        }
        if (svc->kind == TETHER_SERVICE_HTTP)
            si->url = a->addr[i];
        else if (!si->is_private)
            si->host = a->addr[i];
    }
    TT_LOG(TT_LOG_INFO, "registered server=%s label=%s services=%u", TT_LOG_V(a->url),
           TT_LOG_V(a->label), (unsigned)cfg->nservices);
    if (m->key.len > 0 && keep_key(a, m->key))
        ev.device_key = a->key;
    ev.kind = TETHER_EVENT_READY;
    ev.server = a->url;
    ev.label = a->label;
    ev.services = a->info;
    ev.nservices = cfg->nservices;
    emit(a, &ev);
    return 0;
}

static const char *refuse_text(uint16_t code)
{
    switch (code) {
    case TT_REFUSE_AUTH:
        return "invalid token or device key";
    case TT_REFUSE_VERSION:
        return "unsupported protocol version";
    case TT_REFUSE_INVALID:
        return "invalid registration (name or services)";
    case TT_REFUSE_CAPACITY:
        return "the relay has no label or TCP port left";
    case TT_REFUSE_INTERNAL:
        return "relay-side failure";
    default:
        return "unknown reason";
    }
}

static int on_refuse(struct tt_session *s, const struct tt_coded *m, void *ud)
{
    struct tether_agent *a = ud;
    char reason[TT_MAX_REASON + 1];

    tt_relaytext_clean(reason, sizeof reason, m->reason.p, m->reason.len);
    a->refused = true;
    a->refuse_err = TETHER_ERR_AUTH;
    if (m->code == TT_REFUSE_VERSION && tt_session_version(s) == 2) {
        TT_LOG(TT_LOG_INFO,
               "relay does not speak protocol 2, next attempt with protocol 1 "
               "server=%s",
               TT_LOG_V(a->url));
        a->try_v1 = true;
    }
    if (reason[0])
        snprintf(a->refuse_msg, sizeof a->refuse_msg, "relay refused registration: %s (%s)",
                 refuse_text(m->code), reason);
    else
        snprintf(a->refuse_msg, sizeof a->refuse_msg, "relay refused registration: %s",
                 refuse_text(m->code));
    close_soon(a);
    return 0;
}

static int on_goaway(struct tt_session *s, const struct tt_coded *m, void *ud)
{
    struct tether_agent *a = ud;
    (void)s;

    a->got_goaway = true;
    a->goaway_code = m->code;
    tt_relaytext_clean(a->goaway_reason, sizeof a->goaway_reason, m->reason.p, m->reason.len);
    if (m->code == TT_GOAWAY_TAKEOVER)
        TT_LOG(TT_LOG_WARN,
               "another connection with the same name took over device=%s (is a second agent "
               "running with this --name?)",
               a->cfg->name);
    else
        TT_LOG(TT_LOG_INFO, "relay going away code=%u reason=\"%s\"", (unsigned)m->code,
               TT_LOG_E(a->goaway_reason));
    close_soon(a);
    return 0;
}

static int on_open(struct tt_session *s, struct tt_stream *st, const struct tt_open *m, void *ud)
{
    struct tether_agent *a = ud;
    (void)s;

    if (a->conn == NULL || a->stopping || m->service >= a->cfg->nservices)
        return TT_RESET_NO_SERVICE;
    return tt_services_open(&a->loop, &a->resolver, a->conn, st->id, &a->cfg->services[m->service],
                            m->origin.p, m->origin.len);
}

static void core_log(void *ud, const char *msg)
{
    (void)ud;
    TT_LOG(TT_LOG_DEBUG, "core: %s", msg);
}

/* Why a registered connection ended, in words, from what we know. */
static void describe_loss(struct tether_agent *a, int err, const char *why, char *out,
                          size_t outlen)
{
    const char *r = a->goaway_reason;

    if (a->got_goaway) {
        switch (a->goaway_code) {
        case TT_GOAWAY_SHUTDOWN:
            /* The relay's own words usually say the same thing again: keep them only if not. */
            if (r[0] && strstr(r, "shutting down") == NULL)
                snprintf(out, outlen, "relay is shutting down (%s)", r);
            else
                snprintf(out, outlen, "relay is shutting down");
            return;
        case TT_GOAWAY_TAKEOVER:
            snprintf(out, outlen, "another connection with the same name took over");
            return;
        case TT_GOAWAY_DELETED:
            snprintf(out, outlen, "device deleted on the relay");
            return;
        case TT_GOAWAY_PROTOCOL:
            snprintf(out, outlen, "protocol error reported by the relay%s%s%s", r[0] ? " (" : "", r,
                     r[0] ? ")" : "");
            return;
        default:
            snprintf(out, outlen, "relay closed the connection%s%s%s", r[0] ? " (" : "", r,
                     r[0] ? ")" : "");
            return;
        }
    }
    if (err == TETHER_ERR_TIMEOUT)
        snprintf(out, outlen, "no answer from the relay (ping timeout)");
    else if (err == 0 || err == TETHER_ERR_CLOSED)
        snprintf(out, outlen, "connection closed by the relay");
    else
        snprintf(out, outlen, "connection lost: %s", why && why[0] ? why : tether_strerror(err));
}

static void on_conn_close(struct tt_wsconn *c, int err, const char *reason, void *ud)
{
    struct tether_agent *a = ud;
    char why[TT_ERRLEN], clean[TT_ERRLEN];
    uint32_t delay;
    bool takeover;
    (void)c;

    a->conn = NULL;
    uv_timer_stop(&a->timer); /* a pending close_soon() */
    TT_LOG(TT_LOG_DEBUG, "connection closed server=%s err=%s reason=\"%s\"", TT_LOG_V(a->url),
           tether_err_name(err), TT_LOG_E(reason));
    if (a->stopping) {
        close_handles(a);
        return;
    }
    if (a->refused) {
        delay = tt_backoff_next(&a->backoff);
        emit_error(a, a->url, a->refuse_err, a->refuse_msg, delay);
        schedule(a, delay);
        return;
    }
    /* reason may quote the relay's close frame */
    tt_relaytext_clean(clean, sizeof clean, reason, reason ? strlen(reason) : 0);
    describe_loss(a, err, clean, why, sizeof why);
    takeover = a->got_goaway && a->goaway_code == TT_GOAWAY_TAKEOVER;
    if (a->got_goaway && a->goaway_code == TT_GOAWAY_SHUTDOWN) {
        tt_backoff_reset(&a->backoff);
        delay = tt_backoff_soon(&a->backoff, AGENT_SHUTDOWN_RETRY_MS);
    } else {
        if (a->registered && !takeover && uv_now(&a->loop) - a->registered_at >= AGENT_STABLE_MS)
            tt_backoff_reset(&a->backoff);
        delay = tt_backoff_next(&a->backoff);
    }
    if (a->registered) {
        struct tether_event ev = {0};
        ev.kind = TETHER_EVENT_DISCONNECTED;
        ev.server = a->url;
        ev.reason = why;
        ev.err = err ? err : TETHER_ERR_CLOSED;
        ev.retry_ms = delay;
        TT_LOG(TT_LOG_DEBUG, "event=disconnected server=%s reason=\"%s\"", TT_LOG_V(a->url),
               TT_LOG_E(why));
        emit(a, &ev);
    } else {
        char msg[TT_ERRLEN + 64];
        fmt(msg, sizeof msg, "connection to %s ended before registration: %s", a->url, why);
        emit_error(a, a->url, err ? err : TETHER_ERR_CLOSED, msg, delay);
    }
    schedule(a, delay);
}

static const struct tt_wsconn_callbacks conn_cb = {
    .on_close = on_conn_close,
};

/* Registers: the HELLO with our name, token and services. */
static int send_hello(struct tether_agent *a)
{
    uint8_t buf[TT_FRAME_HEADER_LEN + TT_CTRL_MAX];
    struct tt_hello h;
    const tether_config *cfg = a->cfg;
    tt_ssize n;

    memset(&h, 0, sizeof h);
    h.name.p = (const uint8_t *)cfg->name;
    h.name.len = strlen(cfg->name);
    h.token.p = (const uint8_t *)cfg->token;
    h.token.len = strlen(cfg->token);
    load_key(a);
    if (tt_session_version(tt_wsconn_session(a->conn)) >= 2) { /* version 1 has no key */
        h.key.p = (const uint8_t *)a->key;
        h.key.len = strlen(a->key);
    }
    h.nservices = (uint8_t)cfg->nservices;
    for (size_t i = 0; i < cfg->nservices; i++) {
        h.services[i].kind =
            cfg->services[i].kind == TETHER_SERVICE_HTTP ? TT_SERVICE_HTTP : TT_SERVICE_TCP;
        h.services[i].name.p = (const uint8_t *)cfg->services[i].name;
        h.services[i].name.len = strlen(cfg->services[i].name);
    }
    n = tt_session_hello(tt_wsconn_session(a->conn), &h, buf, sizeof buf);
    if (n < 0)
        return (int)n;
    return tt_wsconn_send_frame(a->conn, buf, (size_t)n);
}

/* A failed dial: the next one's timeout (longer after a stall, else the same), logged when it
 * changes. */
static void note_dial_end(struct tether_agent *a, const struct tt_dial_result *r)
{
    uint32_t prev = a->dial_timeout_ms;

    a->dial_timeout_ms =
        tt_dialtimeout_next(prev, r->stalled ? TT_DIAL_END_STALLED : TT_DIAL_END_FAILED,
                            TT_DIAL_TIMEOUT_MS, TT_DIAL_TIMEOUT_MAX_MS);
    if (a->dial_timeout_ms != prev)
        TT_LOG(TT_LOG_INFO, "dial stalled server=%s timeout=%us next_timeout=%us", TT_LOG_V(r->url),
               (unsigned)(r->timeout_ms / 1000), (unsigned)(a->dial_timeout_ms / 1000));
}

static void on_dialed(struct tt_dial *d, const struct tt_dial_result *r, void *ud)
{
    struct tether_agent *a = ud;
    struct tt_wsconn_config wc;
    uint32_t delay;
    int rc;
    (void)d;

    a->dial = NULL;
    if (a->stopping) {
        if (r->conn)
            tt_conn_close(r->conn, NULL);
        return;
    }
    snprintf(a->url, sizeof a->url, "%s", r->url);
    if (r->err != 0)
        note_dial_end(a, r);
    if (r->err != 0 && r->retry_after > 0) {
        /* the relay is busy (or draining) and said when to come back: that, jittered, instead
         * of the back-off (PROTOCOL.md 2.1) */
        delay = tt_backoff_after(&a->backoff, r->retry_after);
        TT_LOG(TT_LOG_INFO,
               "relay asked to retry later server=%s status=%d retry_after=%us "
               "waiting=%.1fs",
               TT_LOG_V(r->url), r->status, (unsigned)r->retry_after, delay / 1000.0);
        emit_error(a, r->url, r->err, r->message, delay);
        schedule(a, delay);
        return;
    }
    if (r->err != 0) {
        char msg[TT_ERRLEN + 64];
        const char *m = r->message;
        delay = tt_backoff_next(&a->backoff);
        if (r->stalled && a->dial_timeout_ms > r->timeout_ms) { /* the free text says so */
            fmt(msg, sizeof msg, "%s; the next attempt will wait up to %u s", r->message,
                (unsigned)(a->dial_timeout_ms / 1000));
            m = msg;
        }
        emit_error(a, r->url, r->err, m, delay);
        schedule(a, delay);
        return;
    }
    memset(&wc, 0, sizeof wc);
    wc.client = true;
    wc.session.role = TT_ROLE_DEVICE;
    wc.session.window = AGENT_WINDOW;
    wc.session.max_streams = AGENT_MAX_STREAMS;
    wc.session.version = a->try_v1 ? 1 : TT_PROTO_VERSION;
    a->try_v1 = false;
    wc.session_cb = &a->scb;
    wc.ping_interval_ms = AGENT_PING_CHECK_MS;
    wc.ping_quiet_ms = AGENT_PING_QUIET_MS;
    wc.ping_timeout_ms = AGENT_PING_TIMEOUT_MS;
    reset_conn_state(a);
    rc = tt_wsconn_new(&a->conn, &a->loop, r->conn, r->pre, r->prelen, &wc, &conn_cb, a);
    if (rc != 0) {
        a->conn = NULL;
        tt_conn_close(r->conn, NULL);
        delay = tt_backoff_next(&a->backoff);
        emit_error(a, r->url, rc, "cannot set up the connection (out of memory)", delay);
        schedule(a, delay);
        return;
    }
    TT_LOG(TT_LOG_DEBUG, "connected server=%s, registering device=%s", TT_LOG_V(a->url),
           a->cfg->name);
    rc = send_hello(a);
    if (rc != 0) {
        TT_LOG(TT_LOG_ERROR, "cannot send HELLO err=%s", tether_err_name(rc));
        tt_wsconn_close(a->conn, TT_GOAWAY_PROTOCOL, 1011, rc, "cannot send HELLO");
    }
}

static void connect_next(struct tether_agent *a)
{
    const char *url;
    char err[TT_ERRLEN];
    uint32_t delay;
    int rc;

    if (a->stopping || a->dial || a->conn)
        return;
    url = a->cfg->servers[a->next_server];
    a->next_server = (a->next_server + 1) % a->cfg->nservers;
    a->dial_opt.timeout_ms = a->dial_timeout_ms;
    TT_LOG(TT_LOG_DEBUG, "connecting server=%s timeout=%ums", url, (unsigned)a->dial_timeout_ms);
    rc = tt_dial_start(&a->dial, &a->loop, url, &a->dial_opt, on_dialed, a, err);
    if (rc != 0) {
        a->dial = NULL;
        delay = tt_backoff_next(&a->backoff);
        emit_error(a, url, rc, err, delay);
        schedule(a, delay);
    }
}

/* Says once, at start, which proxy each server will go through (the same choice as each dial
 * makes), so that an operator sees the effect of --proxy and the environment. Never shows a
 * password. */
static void log_proxies(struct tether_agent *a)
{
    const struct tt_proxy_env *env = &a->proxy_env;
    bool any = a->cfg->proxy != NULL;

    for (int i = 0; i < TT_PV_COUNT; i++)
        any = any || (env->value[i] != NULL && i != TT_PV_NO_PROXY && i != TT_PV_NO_PROXY_UC);
    if (!any)
        return;
    for (size_t i = 0; i < a->cfg->nservers; i++) {
        struct tt_proxy p;
        struct tt_url u;
        char err[TT_ERRLEN];
        int rc;

        if (tt_agentconf_parse_server(a->cfg->servers[i], &u, err) != 0)
            continue;
        rc = tt_proxy_select(&a->proxy_conf, u.scheme, u.host, &p, err);
        if (rc == 1)
            TT_LOG(TT_LOG_INFO, "server=%s proxy=%s from=%s%s", a->cfg->servers[i], p.display,
                   p.source, p.auth ? " auth=basic" : "");
        else if (rc == 0)
            TT_LOG(TT_LOG_INFO, "server=%s proxy=none", a->cfg->servers[i]);
        else
            TT_LOG(TT_LOG_WARN, "server=%s bad proxy setting: %s", a->cfg->servers[i], err);
        memset(&p, 0, sizeof p);
    }
}

/* Says once, at start, where names will be looked up when that is not the system's usual
 * way: a --dns server, or no DNS at all (no /etc/resolv.conf, as on Android). */
static void log_resolver(const struct tt_resolver *rs)
{
    switch (tt_resolve_mode_now(rs)) {
    case TT_RESOLVE_DNS:
        TT_LOG(TT_LOG_INFO, "names are looked up with DNS server %s (--dns)", rs->dns.display);
        break;
    case TT_RESOLVE_HOSTS:
        TT_LOG(TT_LOG_WARN,
               "there is no %s: names other than localhost, IP addresses and those "
               "in /etc/hosts cannot be looked up; give a DNS server with --dns "
               "ADDR[:PORT]",
               TT_RESOLV_CONF);
        break;
    default:
        break;
    }
}

/* The TLS context for wss://, when a server needs it or TLS options were given: the system's
 * CAs plus --ca-file, or no verification at all. A CA file that cannot be used fails here, at
 * start, rather than at each connection. Returns 0 or a tether_err with cfg's message set. */
static int setup_tls(struct tether_agent *a, tether_config *cfg)
{
    bool wss = a->cfg->ca_file != NULL || a->cfg->insecure;
    int rc;

    for (size_t i = 0; i < a->cfg->nservers; i++)
        wss = wss || strncmp(a->cfg->servers[i], "wss:", 4) == 0;
    if (!wss)
        return 0; /* a redirect to wss:// gets a default context in dial.c */
    rc = tt_tls_ctx_client(&a->tls, a->cfg->ca_file, a->cfg->insecure, cfg->err);
    if (rc != 0)
        return rc;
    a->dial_opt.tls = a->tls;
    if (a->cfg->insecure)
        TT_LOG(TT_LOG_WARN, "TLS certificate verification is off (--insecure): any certificate "
                            "is accepted for wss:// relays; the link is encrypted but the relay "
                            "is not authenticated");
    return 0;
}

/* ---- public API --------------------------------------------------------------------------- */

int tether_agent_new(tether_config *cfg, const struct tether_callbacks *cb, void *user_data,
                     tether_agent **out)
{
    struct tether_agent *a;
    int rc;

    if (cfg == NULL || out == NULL)
        return TETHER_ERR_INVAL;
    rc = tether_config_check(cfg);
    if (rc != 0)
        return rc;
    a = calloc(1, sizeof *a);
    if (a == NULL)
        return TETHER_ERR_NOMEM;
    rc = tt_agentconf_dup(cfg, &a->cfg);
    if (rc != 0) {
        free(a);
        return rc;
    }
    rc = tt_resolve_setup(&a->resolver, a->cfg->dns, cfg->err);
    if (rc == 0)
        rc = setup_tls(a, cfg);
    if (rc != 0) {
        tether_config_free(a->cfg);
        free(a);
        return rc;
    }
    if (tt_proxy_env_load(&a->proxy_env) != 0) {
        tt_tls_ctx_free(a->tls);
        tether_config_free(a->cfg);
        free(a);
        return TETHER_ERR_NOMEM;
    }
    if (uv_loop_init(&a->loop) != 0) {
        tt_tls_ctx_free(a->tls);
        tt_proxy_env_free(&a->proxy_env);
        tether_config_free(a->cfg);
        free(a);
        return TETHER_ERR_IO;
    }
    if (a->cfg->device_key != NULL)
        snprintf(a->key, sizeof a->key, "%s", a->cfg->device_key);
    if (a->cfg->state_dir != NULL)
        snprintf(a->state_dir, sizeof a->state_dir, "%s", a->cfg->state_dir);
    else if (tt_state_default_dir(a->state_dir, a->state_err) != 0)
        a->state_dir[0] = '\0';
    if (a->state_dir[0] == '\0' && a->state_err[0] != '\0')
        TT_LOG(TT_LOG_WARN, "%s: a device key the relay issues is kept in memory only",
               a->state_err);
    a->proxy_conf.proxy = a->cfg->proxy;
    a->proxy_conf.no_proxy = a->cfg->no_proxy;
    a->proxy_conf.env = &a->proxy_env;
    a->dial_opt.proxy = &a->proxy_conf;
    a->dial_opt.resolver = &a->resolver;
    log_proxies(a);
    log_resolver(&a->resolver);
    uv_async_init(&a->loop, &a->async, on_async);
    a->async.data = a;
    uv_timer_init(&a->loop, &a->timer);
    a->timer.data = a;
    if (cb)
        a->cb = *cb;
    a->ud = user_data;
    atomic_init(&a->stop_requested, 0);
    tt_pipe_session_callbacks(&a->scb);
    a->scb.on_welcome = on_welcome;
    a->scb.on_refuse = on_refuse;
    a->scb.on_open = on_open;
    a->scb.on_goaway = on_goaway;
    a->scb.log = core_log;
    tt_backoff_init(&a->backoff, TT_BACKOFF_BASE_MS, TT_BACKOFF_CAP_MS, NULL, NULL);
    a->dial_timeout_ms = TT_DIAL_TIMEOUT_MS;
    snprintf(a->url, sizeof a->url, "%s", a->cfg->servers[0]);
    *out = a;
    return 0;
}

int tether_agent_run(tether_agent *a)
{
    int rc;

    if (a == NULL || a->ran)
        return TETHER_ERR_INVAL;
    a->ran = true;
#ifndef _WIN32
    {
        /* A peer closing a socket we write to must not kill the process. */
        struct sigaction old;
        if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
            signal(SIGPIPE, SIG_IGN);
    }
#endif
    if (atomic_load(&a->stop_requested))
        begin_stop(a);
    else
        connect_next(a);
    rc = uv_run(&a->loop, UV_RUN_DEFAULT);
    tt_chunk_pool_drain();
    if (rc != 0 && !a->closed)
        return TETHER_ERR_IO;
    return 0;
}

void tether_agent_stop(tether_agent *a)
{
    if (a == NULL)
        return;
    atomic_store(&a->stop_requested, 1);
    uv_async_send(&a->async);
}

void tether_agent_free(tether_agent *a)
{
    if (a == NULL)
        return;
    if (!a->closed) {
        /* Never ran (or ran and was not stopped): close our own handles. */
        a->closed = true;
        uv_close((uv_handle_t *)&a->timer, NULL);
        uv_close((uv_handle_t *)&a->async, NULL);
        uv_run(&a->loop, UV_RUN_DEFAULT);
    }
    tt_conn_loop_close(&a->loop);
    tt_proxy_env_free(&a->proxy_env);
    tt_tls_ctx_free(a->tls);
    tether_config_free(a->cfg);
    OPENSSL_cleanse(a->key, sizeof a->key);
    free(a);
}
