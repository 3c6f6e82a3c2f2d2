/* device.h - devices at run time: the WebSocket connection of each device (registration,
 * token check, takeover), its services and their public addresses, its TCP port listeners,
 * its counters, and its expiry once offline past the grace period. The registry keeps the
 * label and ports of each name; this module keeps everything that lives only in this
 * process. */
#ifndef TT_DEVICE_H
#define TT_DEVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "common/wsconn.h"
#include "core/frame.h"
#include "relay/limits.h"
#include "relay/core.h"
#include "relay/http/route.h"
#include "relay/device/tcpports.h"

/* WebSocket/session settings of device connections. */
#define TT_DEVICE_WINDOW (256u * 1024)
/* The relay keeps the heartbeat: it checks each device connection every TT_DEVICE_PING_MS and
 * pings it when it has heard nothing for half of that, so a quiet device hears from it every
 * 15 s (the agent's own pings, after 20 s of silence, are then never needed; see
 * docs/PROTOCOL.md 2.3). Pinging from the relay lets its timer send the pings of many devices
 * in one wakeup, and their pongs come back together. */
#define TT_DEVICE_PING_MS 15000
#define TT_DEVICE_TIMEOUT_MS 90000
#define TT_DEVICE_LABEL_LEN 10
/* A connection that has not registered (HELLO answered) by then is closed. */
#define TT_DEVICE_HELLO_MS 30000
/* How often the relay's heartbeat is written to the registry: after a crash, the devices that
 * were online count as offline since the last one (so at most this much of their grace period
 * is lost). */
#define TT_DEVICE_HEARTBEAT_MS 30000
/* The sweep walks every device at least this often (else only when a grace period may be
 * over). */
#define TT_DEVICE_FULL_SWEEP_MS 60000

struct tt_device_svc {
    uint8_t kind; /* enum tt_service_kind */
    char name[TT_MAX_NAME + 1];
    char dnsname[TT_ROUTE_SVCLEN + 1]; /* http: "" for the main service, else SERVICE part */
    struct tt_tcpport *port;           /* tcp: the listener (owned) */
    uint16_t portno;                   /* tcp: its number (or the one remembered); 0: none */
    /* The relay keeps the service private (access.h, decided at registration): a TCP one then
     * has no public port at all (port NULL, portno 0), an HTTP one asks visitors to sign in. */
    bool is_private;
};

/* One device connection (before and after registration). */
struct tt_devconn {
    struct tt_relay *relay;
    struct tt_wsconn *ws;
    struct tt_device *dev; /* set once registered; NULL again after a takeover */
    struct tt_devconn *prev, *next;
    int64_t started;              /* unix ms */
    bool registered;              /* WELCOME sent or on its way (or refused: closing anyway) */
    bool welcomed;                /* WELCOME sent (the "online" webhook went out) */
    bool admitting;               /* counted in relay->drain.registering (admission.h) */
    bool drained;                 /* sent away by a drain (drain.h) */
    struct tt_limits_conn lim;    /* on relay->limits until registered (unauthenticated) */
    bool sync_waiting;            /* on relay->sync_q: WELCOME once the registry synced */
    uint64_t sync_need;           /* ... the sync of that generation */
    struct tt_devconn *sync_next; /* relay->sync_q */
    /* The device key of the registration under way (devauth.h): stored with it (set_key), and
     * when the relay issued it, the key itself until the WELCOME carries it (then wiped). */
    bool set_key, key_issued;
    uint8_t key_hash[32];
    char key[TT_MAX_KEY + 1];
    char key_name[TT_MAX_NAME + 1]; /* the name it was issued for */
    /* The registration under way (device.c's pipeline), owned; NULL when none. Cleared when
     * the connection closes: the job then ends at its next step. */
    struct tt_regjob *job;
};

struct tt_device {
    struct tt_relay *relay;
    char name[TT_MAX_NAME + 1];
    char label[TT_MAX_LABEL + 1];
    uint8_t nsvc;
    struct tt_device_svc *svc; /* nsvc of them (malloc'd, owned; most devices have one or two) */
    struct tt_devconn *conn;   /* NULL while offline */
    /* counters (for the admin API); times are unix milliseconds */
    int64_t connected_since, last_seen, offline_since;
    char remote_addr[64];
    uint64_t bytes_in, bytes_out; /* of the sessions that ended; add the current one's */
    uint64_t streams;             /* streams opened to the device, in total */
    uint64_t connects;
    /* cluster mode: the session start and counters the beat last published to Redis (so that
     * only changed devices are written; cluster.c) */
    int64_t pub_since;
    uint64_t pub_in, pub_out, pub_streams;
};

/* Takes over tcp (handshake answered, reading stopped; plain or TLS) as a device connection;
 * pre[0..prelen) are bytes read after the handshake (copied). Until its HELLO is answered it
 * counts as unauthenticated (relay->limits): refused there, or shed later, it is closed at
 * once. On failure tcp is closed. */
void tt_device_accept(struct tt_relay *r, struct tt_conn *tcp, const uint8_t *pre, size_t prelen);

/* The device holding label, or NULL (unknown, or its grace period just ran out). */
struct tt_device *tt_device_by_label(struct tt_relay *r, const char *label);

/* Index of the HTTP service addressed by svc ("" for the main one), or -1. */
int tt_device_http_service(const struct tt_device *d, const char *svc);

/* True while the device has a registered session that can carry streams. */
bool tt_device_online(const struct tt_device *d);

/* Forgets device name at the operator's request (admin API): its connection, if any, gets
 * GOAWAY (deleted) and is closed; its label and TCP ports are released and its registry record
 * deleted; the device is freed. Returns 0 or TETHER_ERR_NOT_FOUND. */
int tt_device_delete(struct tt_relay *r, const char *name);

/* Cluster mode: another node holds device name now. Its local session, if any, is closed
 * (GOAWAY takeover) without a registry write and the device is dropped from this node.
 * Returns 0 or TETHER_ERR_NOT_FOUND. */
int tt_device_evict(struct tt_relay *r, const char *name);

/* Writes d's record to the registry again (label, ports, online state) in the background
 * (behind the device's earlier writes): cb gets the registry's
 * answer (TETHER_ERR_INVAL: its label or a port is another name's). Returns 0 (cb called once)
 * or an error (cb not called; TETHER_ERR_NOT_FOUND: nothing to write). */
int tt_device_save_async(struct tt_device *d, tt_registry_done_cb cb, void *ud);

/* Devices with a registered session on this node. */
size_t tt_device_online_count(struct tt_relay *r);

/* Restores the devices the registry remembers and starts the sweep timer. The registry's
 * devices still marked online (the relay died without a shutdown) become offline since the
 * relay's last heartbeat (or their own last_seen, if later); every device is then loaded
 * offline: its label answers the 503 page and its TCP ports are held (a port that cannot be
 * bound again is given up and the record re-saved). Devices past their grace period are
 * forgotten at once. The sweep then expires devices, closes connections that do not register
 * in time and writes the heartbeat every TT_DEVICE_HEARTBEAT_MS. Returns 0, or -1 with err
 * (registry failure, out of memory, timer). */
int tt_device_start(struct tt_relay *r, char err[TT_ERRLEN]);
/* (The start is the mode's (mode.h): in cluster mode nothing is loaded, tt_cluster_start runs
 * instead, and devices that
 * disconnect leave this node's tables; the shared registry keeps them for the grace period.) */

/* For the modes (mode.h) --------------------------------------------------------------- */

/* The single relay's start (mode_single.c): restores the registry's devices as described for
 * tt_device_start; their TCP listeners get accept (forward.h tt_forward_port_accept, given by
 * the mode so that this module does not depend on forward.c). Returns 0 or -1 with err. */
int tt_device_load_registry(struct tt_relay *r, tt_tcpport_accept_cb accept, char err[TT_ERRLEN]);

/* d leaves this node's tables (its listeners closed, its counters added to the relay's, d
 * freed); its registry record is left alone (the cluster's session_ended). */
void tt_device_drop_local(struct tt_device *d);

/* Writes the relay's heartbeat to the registry (every TT_DEVICE_HEARTBEAT_MS on a single
 * relay: its mode's heartbeat) and asks for a sync. */
void tt_device_heartbeat(struct tt_relay *r, int64_t now);

/* Relay shutdown: records every online device as offline since now (one registry write) and
 * the heartbeat, tells every device to go away (GOAWAY shutdown), closes every device
 * connection and TCP port, frees every device and stops the sweep. */
void tt_device_shutdown(struct tt_relay *r);

#endif
