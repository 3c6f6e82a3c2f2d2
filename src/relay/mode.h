/* mode.h - what differs between a relay on its own and a node of a cluster, behind one small
 * interface that relay.c picks at start (tt_relay_init): where a label lives, how a TCP port is
 * claimed and released, what happens to a device whose session ends here (disconnect,
 * takeover, refusal), which node holds a device a request asks for, and how the nodes trust
 * and reach each other. The call sites (device.c, server.c, visitor.c, drain.c, peerlink.c,
 * relay.c) call r->mode and never test which mode runs.
 *
 * Two implementations:
 * - tt_mode_single (mode_single.c): the registry is SQLite in the data dir, the tables of
 *   relay.h hold every device the registry remembers (offline ones too), each device's TCP
 *   ports are its own listeners, nothing is forwarded, nobody else is trusted.
 * - tt_mode_cluster (cluster.c): the registry is Redis, shared by the nodes; the tables hold
 *   only the devices online here; the cluster's listeners serve every port of the range; a
 *   request for a device held elsewhere is forwarded to its node.
 *
 * The label and the ports a device holds are claimed durably by the registry write
 * (registry.h: both backends refuse a label or port another name holds); the interface decides
 * what happens around it. Every function runs on the loop thread. */
#ifndef TT_MODE_H
#define TT_MODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"
#include "core/frame.h"

struct tt_relay;
struct tt_device;
struct tt_device_svc;
struct tt_headconn;
struct tt_headparse;
struct tt_peerlink_audit;
struct tt_redisconn;

/* Where a device is, for a request this node cannot serve from its own tables. */
enum tt_where_kind {
    TT_WHERE_UNKNOWN = 0, /* no such device (or the shared registry unreachable, never seen) */
    TT_WHERE_OFFLINE = 1, /* remembered, offline within its grace: since set */
    TT_WHERE_BUSY = 2,    /* online, but its node cannot be reached now */
    TT_WHERE_REMOTE = 3,  /* online at another node: host, port set */
};

struct tt_where {
    enum tt_where_kind kind;
    int64_t since;              /* OFFLINE: unix ms */
    char host[TT_HOSTLEN];      /* REMOTE: the holder's cluster address */
    uint16_t port;              /* REMOTE */
    char name[TT_MAX_NAME + 1]; /* the device's name when known ("" otherwise) */
};

/* The answer of a lookup (tt_mode.locate): a is valid during the call only. With a shared
 * registry the answer may come later (the loop runs meanwhile) or at once; ud is the caller's.
 * A lookup the relay cannot answer in time (the registry slow or away, or too many waiting)
 * gets kind TT_WHERE_BUSY and timed_out true. */
typedef void (*tt_where_cb)(const struct tt_where *a, bool timed_out, void *ud);

struct tt_mode {
    const char *name; /* "single", "cluster" */
    /* The registry is shared with other nodes: the device tables hold only the devices online
     * here (a device whose session ends leaves them; its record stays in the registry), and
     * the registry's expiry is the shared one's (the node whose script forgets a device sends
     * its "expired" webhook). False: the tables hold every device the registry remembers. */
    bool shared;

    /* ---- life cycle (relay.c, device.c) */
    /* Opens the registry (r->reg) and whatever the mode needs. Returns 0 or -1 with err. */
    int (*init)(struct tt_relay *r, char err[TT_ERRLEN]);
    /* Start of service (tt_device_start): the devices the registry remembers are restored
     * (single) or this node joins the cluster (cluster). Returns 0 or -1 with err. */
    int (*start)(struct tt_relay *r, char err[TT_ERRLEN]);
    /* Stop of service (tt_device_shutdown), then the frees (after the loop ended). */
    void (*stop)(struct tt_relay *r);
    void (*free)(struct tt_relay *r);
    /* The relay's heartbeat is due (every TT_DEVICE_HEARTBEAT_MS): the single relay writes it
     * to the registry; a cluster node's beat writes it every second already. */
    void (*heartbeat)(struct tt_relay *r, int64_t now);
    /* The generated fleet token's hash, made once the node serves (relay.c). */
    void (*set_fleet_hash)(struct tt_relay *r, const uint8_t hash[32]);
    /* The Redis connection grants and sessions share between nodes, or NULL (local tables). */
    struct tt_redisconn *(*shared_store)(struct tt_relay *r);
    /* True when the registry cannot be reached now (a refusal then says so). */
    bool (*store_down)(struct tt_relay *r);

    /* ---- devices (device.c) */
    /* Gives the public TCP services of ns[0..n) their ports for device d: ns[i].portno is the
     * one wanted (0: any); carried[i] >= 0 when ns[i] keeps the listener of d->svc[carried[i]]
     * (single: it is reused as is). Sets ns[i].portno (and ns[i].port where the device owns
     * its listener). Returns 0, or TETHER_ERR_CAPACITY / a libuv error with nothing claimed. */
    int (*claim_ports)(struct tt_device *d, struct tt_device_svc *ns, int n, const int *carried);
    /* Device name no longer holds port (a service gone, or now private). */
    void (*release_port)(struct tt_relay *r, const char *name, uint16_t port);
    /* The registry refused a port as another name's: learns the ports again and calls done
     * (once, later) when a new claim may succeed; returns 0 then, or -1 when no new claim can
     * help (single; a cluster node that cannot ask Redis now): done is not called. */
    int (*ports_conflict)(struct tt_relay *r, void (*done)(void *ud), void *ud);
    /* d's session ended here (disconnected, taken over, refused, failed): d leaves the tables
     * when the registry is shared; else it stays, offline. d may be freed. */
    void (*session_ended)(struct tt_device *d);
    /* d's grace is over (found by this node's sweep): the "expired" webhook when this node is
     * the one that forgets it (single; a cluster's is sent by the script's node). */
    void (*expired)(struct tt_device *d);

    /* ---- requests (server.c, visitor.c, peerlink.c, drain.c, relay.c) */
    /* True when the request carries the cluster secret: it comes from another node. */
    bool (*trusted)(struct tt_relay *r, const struct tt_headparse *hp);
    /* A device handshake that should go to another node: writes Location into loc and returns
     * 1; else 0 (single: always 0). cluster.h tt_cluster_redirect says how it is chosen. */
    int (*redirect)(struct tt_relay *r, const char *target, size_t targetlen, bool away, char *loc,
                    size_t loclen);
    /* Where the device with label (by_name: the device named so) is, when it is not online
     * here. cb is called once, now or later (see tt_where_cb); single: at once, from the
     * tables. Returns 0, or TETHER_ERR_CAPACITY (too many lookups waiting: cb not called). */
    int (*locate)(struct tt_relay *r, const char *key, bool by_name, tt_where_cb cb, void *ud);
    /* Forgets the lookups waiting with ud (their caller went away): cb is not called. */
    void (*cancel)(struct tt_relay *r, void *ud);
    /* Forwards the request read by hc to the node at host:port (hc consumed). */
    void (*forward_http)(struct tt_relay *r, struct tt_headconn *hc, const char *host,
                         uint16_t port, const struct tt_peerlink_audit *audit);
    /* An internal CONNECT for a TCP port of a device of ours (hc consumed). */
    void (*on_tunnel)(struct tt_relay *r, struct tt_headconn *hc);
    /* True when another node takes devices (a draining node moves its devices then). */
    bool (*can_take)(struct tt_relay *r);
    /* The id of the live node at host:port (audit lines), or NULL. */
    const char *(*node_at)(struct tt_relay *r, const char *host, uint16_t port);
    /* True when the address key (addrkey.h) is another node's (not held to the per-address cap
     * on unauthenticated connections). */
    bool (*is_peer)(struct tt_relay *r, const char *addrkey);
};

extern const struct tt_mode tt_mode_single;
extern const struct tt_mode tt_mode_cluster;

#endif
