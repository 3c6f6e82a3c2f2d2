/* core.h - struct tt_relay: the state of one tetherd process that its parts share
 * (configuration, credentials, registry, the runtime device tables, the TCP port pool, the
 * listeners' connection sets, counters), and the relay's wall clock (core.c). It has no other code:
 * relay.c (relay.h, the composition root) fills it and starts the parts; every part includes
 * this header, never relay.h. It includes only leaf headers (modules that do not include it);
 * what a part owns and keeps to itself is forward-declared and reached through a pointer.
 * One libuv loop on one thread; nothing here is locked. */
#ifndef TT_RELAY_CORE_H
#define TT_RELAY_CORE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "relay/access/access.h"
#include "relay/access/audit.h"
#include "relay/config.h"
#include "relay/device/devauth.h"
#include "relay/cluster/drainstate.h"
#include "relay/http/headconn.h"
#include "relay/limits.h"
#include "relay/store/registry.h"
#include "relay/access/sessions.h"
#include "relay/lib/strmap.h"
#include "relay/device/tcpports.h"
#include "relay/device/tokens.h"
#include "relay/mode.h"

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
    /* single relay or cluster node (mode.h): picked by tt_relay_init, never NULL after it */
    const struct tt_mode *mode;
    struct tt_cluster *cluster; /* the cluster mode's own state (cluster.h); NULL otherwise */
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

/* Wall-clock time in milliseconds since the epoch (core.c). */
int64_t tt_relay_now_ms(void);

#endif
