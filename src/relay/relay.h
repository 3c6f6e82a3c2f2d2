/* relay.h - the state of one tetherd process, shared by its modules: configuration,
 * credentials, registry, the runtime device tables, the TCP port pool and the listeners.
 * One libuv loop on one thread; nothing here is locked. */
#ifndef TT_RELAY_H
#define TT_RELAY_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "relay/access/access.h"
#include "relay/access/audit.h"
#include "relay/config.h"
#include "relay/device/devauth.h"
#include "relay/cluster/drain.h"
#include "relay/http/headconn.h"
#include "relay/limits.h"
#include "relay/store/registry.h"
#include "relay/access/sessions.h"
#include "relay/lib/strmap.h"
#include "relay/device/tcpports.h"
#include "relay/device/tokens.h"

struct tt_devconn;
struct tt_cluster;
struct tt_visitor_set;
struct tt_webhooks;
struct tt_adminsession_set;

struct tt_relay {
    uv_loop_t *loop;
    struct tt_config cfg;
    struct tt_tokens tokens;
    struct tt_devauth auth; /* who may register a name: device keys, caps, throttle */
    struct tt_registry *reg;
    struct tt_cluster *cluster; /* cluster mode (--redis): cluster.h; NULL otherwise */
    struct tt_strmap by_name;   /* device name -> struct tt_device * (owned) */
    struct tt_strmap by_label;  /* label -> the same device */
    struct tt_devconn *conns;   /* every device connection (registered or not) */
    size_t unregistered;        /* of them, those not answered yet (HELLO deadline) */
    struct tt_tcpports ports;
    struct tt_headconn_set web;     /* connections on the --listen ports */
    struct tt_headconn_set web_tls; /* and on the --tls-listen ports (TLS first) */
    struct tt_headconn_set admin;
    /* unauthenticated connections (the three sets above, unregistered device connections),
     * device stream shares and their counters */
    struct tt_limits limits;
    struct tt_access access;         /* who may reach which service (access.h) */
    struct tt_audit audit;           /* --audit-log (audit.h) */
    uint64_t tcp_allow_refused;      /* TCP clients closed at once by --tcp-allow (forward.h) */
    struct tt_sessions sessions;     /* browser sign-in sessions (sessions.h) */
    struct tt_visitor_set *visitors; /* tether connect connections (visitor.h; made on demand) */
    struct tt_tls_ctx *tls;          /* the certificate new TLS connections get (NULL: no TLS) */
    struct tt_webhooks *webhooks;    /* device events to --webhook URLs (webhook.h; NULL: none) */
    bool webhooks_signed;            /* ... with a secret (the secret itself is the set's) */
    /* the --listen ports, the --tls-listen ports, then admin */
    uv_tcp_t *listeners[2 * TT_CONFIG_MAX_LISTEN + 1];
    size_t nlisteners;
    uv_timer_t sweep;           /* expires devices past their grace period */
    int64_t sweep_expiry_at;    /* no grace period ends before this (unix ms; device.c) */
    int64_t sweep_full_at;      /* the sweep's next walk over every device */
    int64_t heartbeat_at;       /* when the registry's heartbeat was last written (unix ms) */
    int lock_fd;                /* DATA_DIR/tetherd.lock, held while the relay runs */
    unsigned data_dir_mode;     /* its permission bits at start (a warning when & 077) */
    bool data_dir_chmod_failed; /* a registry file could not be made 0600 */
    bool token_pending;         /* the generated token is made once the listeners are bound */
    /* Registry syncs (fdatasync in libuv's thread pool, one at a time) and the registrations
     * waiting for one before their WELCOME (device.c). */
    uv_fs_t sync_req;
    uint64_t sync_gen; /* syncs started */
    bool sync_busy, sync_again;
    struct tt_devconn *sync_q;
    /* What the devices forgotten so far (expired or deleted) had counted, so that the admin
     * API's totals never go down. */
    uint64_t gone_bytes_in, gone_bytes_out, gone_streams, gone_connects;
    /* Admin requests refused: a Host not naming the listener (421), a state-changing request
     * from another site's Origin (403) (admin.c, adminhost.h). */
    uint64_t admin_refused_host, admin_refused_origin;
    struct tt_adminsession_set *admin_sessions; /* dashboard sign-ins (admin.h; on demand) */
    struct tt_drain drain; /* POST /api/drain, and admission of registrations (drain.h) */
    bool stopping;
};

/* Wall-clock time in milliseconds since the epoch. */
int64_t tt_relay_now_ms(void);

/* Prepares r from cfg (copied): the data dir (created if missing, and locked against a second
 * tetherd; its registry files made 0600), the registry in it (DATA_DIR/registry.db), credentials
 * (--token, --tokens-file, or the generated token kept hashed in the registry: one already there
 * is loaded; a new one is made by tt_relay_listen once the listeners are bound), the TLS
 * certificate and key (--tls-cert, --tls-key) and the TCP port pool. Logs nothing. Returns 0, or -1
 * with a one-line message in err (a runtime failure: exit 1).
 */
int tt_relay_init(struct tt_relay *r, uv_loop_t *loop, const struct tt_config *cfg,
                  char err[TT_ERRLEN]);

/* Binds the --listen ports, the --tls-listen ports and the admin port, checks --tcp-bind,
 * restores the devices the registry remembers (offline, their TCP ports held) and starts the
 * expiry sweep (tt_device_start), makes the generated token if there is none yet (printed once on
 * stdout: "tetherd: device token: HEX"), then logs one line per listener (and the certificate's),
 * and a warning when the data dir is open to other users. Returns 0, or -1 with err ("--listen
 * ADDR:PORT: address already in use") and nothing logged. */
int tt_relay_listen(struct tt_relay *r, char err[TT_ERRLEN]);

/* Re-reads --tokens-file (SIGHUP); with the generated token (and the registry in the data dir)
 * re-reads its hash, which `tetherd token rotate` may have replaced: the one used until then
 * joins the old fleet tokens (good only with a device key). On error the old tokens stay and
 * err says why. Returns 1 when the generated token changed, 0 (also when there is no tokens
 * file) or -1. */
int tt_relay_reload_tokens(struct tt_relay *r, char err[TT_ERRLEN]);

/* Re-reads --tls-cert and --tls-key (SIGHUP): connections accepted from now on get the new
 * certificate; those already open keep theirs (each TLS session holds its own reference to
 * the context it was made with). On error the old certificate stays and err says why.
 * Returns 1 (reloaded), 0 (no TLS listener) or -1. */
int tt_relay_reload_tls(struct tt_relay *r, char err[TT_ERRLEN]);

/* Graceful stop: devices get GOAWAY (shutdown), listeners, waiting connections and TCP ports
 * close. The loop ends once the device connections have closed. Safe to call twice. */
void tt_relay_stop(struct tt_relay *r);

/* Frees what tt_relay_init allocated; call after the loop has ended. */
void tt_relay_free(struct tt_relay *r);

#endif
