/* cluster.h - cluster mode (--redis): several tetherd nodes share one registry in Redis and act
 * as one relay. This module owns what a node does for the others: its node record (advertise
 * URL, cluster address, device count; refreshed every TT_CLUSTER_BEAT_MS with an expiry of
 * TT_CLUSTER_NODE_TTL_MS), the view of the other live nodes (for redirects and forwarding),
 * the shared secret that lets nodes trust each other's internal requests, the listeners of
 * every TCP port assigned in the cluster, the takeover of devices that reconnected elsewhere,
 * the offline marking of dead nodes' devices and the expiry of devices past their grace.
 * Everything runs on the loop thread with synchronous Redis calls (redisconn.h). */
#ifndef TT_CLUSTER_H
#define TT_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/conn.h"
#include "core/frame.h"
#include "relay/http/headconn.h"
#include "relay/cluster/peerlink.h"
#include "relay/store/redisconn.h"
#include "relay/lib/strmap.h"
#include "relay/device/tcpports.h"

#define TT_CLUSTER_BEAT_MS 1000
#define TT_CLUSTER_NODE_TTL_MS 3500
#define TT_CLUSTER_SECRET_LEN 64 /* hex characters */
/* Internal request headers (stripped from everything a device sees). */
#define TT_CLUSTER_HDR_SECRET "x-tether-cluster"
#define TT_CLUSTER_HDR_CLIENT "x-tether-client"
#define TT_CLUSTER_HDR_PROTO "x-tether-proto"
#define TT_CLUSTER_HDR_CLIENT_PORT "x-tether-peer-port" /* the browser's port (audit log) */
/* The query marker of a redirected device handshake: accepted wherever it lands. */
#define TT_CLUSTER_REDIRECTED "tether-redirected=1"

struct tt_relay;
struct tt_tcpport;

struct tt_cluster_node {
    char id[TT_NODE_ID_MAX + 1];
    char advertise[TT_ADVERTISE_MAX + 1];
    char host[TT_HOSTLEN];
    uint16_t port;
    int64_t devices; /* as published, plus the devices we redirected there since */
    bool draining;   /* it drains (POST /api/drain): no device is sent there */
};

/* The cluster's view of one TCP port of the range. */
struct tt_cluster_port {
    struct tt_tcpport *l;       /* our listener on it, or NULL */
    char name[TT_MAX_NAME + 1]; /* the device it is assigned to ("" unknown) */
    char node[TT_NODE_ID_MAX + 1];
    char service[TT_MAX_NAME + 1]; /* its service, when this node claimed it ("" unknown) */
};

struct tt_cluster {
    struct tt_relay *r;
    struct tt_redisconn rc;
    char secret[TT_CLUSTER_SECRET_LEN + 1];
    uv_timer_t timer;
    bool timer_on;
    struct tt_cluster_node *nodes; /* the other live nodes, from the last beat (owned) */
    size_t nnodes;
    struct tt_cluster_port *ports; /* one per port of --tcp-ports (owned) */
    struct tt_strmap labels;       /* label -> node id (malloc'd): last known holder */
    bool nodes_known;              /* nodes has been set once (joins and leaves logged) */
    bool fleet_generated;          /* the fleet token hash is ours to restore in Redis */
    uint8_t fleet_hash[32];
    int64_t online;       /* this node's online devices at the last beat */
    int64_t fleet_online; /* the online devices of every live node at the last beat */
    int64_t accepted;     /* device handshakes accepted here since */
    uint64_t redirects, forwarded_http, forwarded_tcp;
    /* sessions closed because another node took the device over or the operator deleted it
     * elsewhere, as told by this node's kick list, or found by the beat's safety-net check */
    uint64_t closed_pushed, closed_scan;
    uint64_t published;         /* live fields of devices written to Redis, in total */
    uint64_t beat_us, check_us; /* the last beat's duration, and its takeover check's */
    size_t scan_pos, pub_pos;   /* where the beat's walks of the device map resume */
    int64_t redis_held;         /* devices Redis says we hold, at the last beat (-1 unknown) */
    uint64_t full_checks;       /* beats that checked every device (redis_held too low) */
    /* after a change of Redis master (sentinel mode, redisconn.h): every device held here is
     * checked and written again, TT_CLUSTER_REPAIR_SLICE per beat (cluster.c) */
    uint64_t master_seen;     /* rc.master_changes already acted on */
    size_t repair_pos;        /* where the repair's walk of the device map resumes */
    size_t repair_left;       /* devices still to walk */
    uint64_t repair_conflict; /* devices whose label or port another name held on the master */
};
/* Devices walked per beat by the repair after a master change (two Redis calls per
 * CHECK_BATCH of them). */
#define TT_CLUSTER_REPAIR_SLICE 2048

/* Result of tt_cluster_locate_label(). */
enum tt_cluster_where {
    TT_CLUSTER_UNKNOWN = 0, /* no such label (or Redis unreachable and never seen) */
    TT_CLUSTER_OFFLINE = 1, /* remembered, offline within its grace: *since set */
    TT_CLUSTER_BUSY = 2,    /* online, but its node cannot be reached now */
    TT_CLUSTER_REMOTE = 3,  /* online at another node: host, port set */
};

/* Connects to Redis (cfg->redis), makes r->reg the Redis registry and reads (or creates) the
 * cluster secret. Returns 0 or -1 with err ("cannot connect to Redis at ...": exit 1). */
int tt_cluster_init(struct tt_relay *r, char err[TT_ERRLEN]);

/* Start of service: this node's devices left online by an earlier run become offline since
 * its last heartbeat, the node record is published and the beat timer starts. Returns 0 or -1
 * with err. */
int tt_cluster_start(struct tt_relay *r, char err[TT_ERRLEN]);

/* Shutdown: stops the timer, closes the port listeners and removes the node record (its
 * devices are marked offline by tt_device_shutdown). */
void tt_cluster_stop(struct tt_relay *r);

/* Frees what init allocated (after the loop ended). */
void tt_cluster_free(struct tt_relay *r);

/* The generated fleet token's hash (made once the node serves, relay.c): the beat restores it
 * in Redis should Redis lose it. */
void tt_cluster_set_fleet_hash(struct tt_cluster *c, const uint8_t hash[32]);

/* True when hc carries the cluster secret: the request comes from another node. */
bool tt_cluster_trusted(const struct tt_cluster *c, const struct tt_headparse *hp);

/* Where the device holding label is, for a request this node cannot serve itself; name (may be
 * NULL) gets the device's name when the registry told it ("" otherwise). */
enum tt_cluster_where tt_cluster_locate_label(struct tt_cluster *c, const char *label,
                                              int64_t *since, char host[TT_HOSTLEN], uint16_t *port,
                                              char *name);

/* The id of the live node (as of the last beat) whose cluster address is host:port, or NULL. */
const char *tt_cluster_node_at(const struct tt_cluster *c, const char *host, uint16_t port);

/* Forwards the request read by hc (its head and what followed) to the node at host:port, with
 * the internal headers (secret, client address, protocol); hc is consumed. audit (may be NULL):
 * the audit line written if that node cannot be reached (peerlink.h). */
void tt_cluster_forward_http(struct tt_cluster *c, struct tt_headconn *hc, const char *host,
                             uint16_t port, const struct tt_peerlink_audit *audit);

/* For a device handshake (not a redirected one, see TT_CLUSTER_REDIRECTED): when another live
 * node that is not draining holds strictly fewer devices than this one (away: any such node,
 * this one drains), writes that node's Location (its advertise URL, with the request's path
 * when the URL has none, and the marker) into loc and returns 1; else 0 (accept here; with
 * away: refuse, no node to send it to, or the handshake was redirected here already). Counts
 * are those of the last beat plus the handshakes accepted here and redirected to each node
 * since, so that a burst of arrivals spreads over the nodes. */
int tt_cluster_redirect(struct tt_cluster *c, const char *target, size_t targetlen, bool away,
                        char *loc, size_t loclen);

/* True when another live node (as of the last beat) takes devices (it is not draining) and
 * Redis is reachable: a draining node moves its devices only then (drain.h). */
bool tt_cluster_can_take(struct tt_cluster *c);

/* An internal CONNECT (from another node, already trusted) for a TCP port of a device of
 * ours: joins it to the device or drops it. hc is consumed. */
void tt_cluster_on_tunnel(struct tt_cluster *c, struct tt_headconn *hc);

/* Reads the cluster's port assignments from Redis now (they are otherwise read every beat),
 * opening listeners for new ones and closing those of ports no longer assigned. */
void tt_cluster_refresh_ports(struct tt_cluster *c);

/* A TCP port for service of device name: want when it is free or already the device's (a
 * listener is opened when needed), else the next free one. Returns 0 and *got, or
 * TETHER_ERR_CAPACITY. */
int tt_cluster_port_claim(struct tt_cluster *c, const char *name, const char *service,
                          uint16_t want, uint16_t *got);

/* Device name no longer holds port (a service gone, or kept private now): this node's listener
 * on it closes now, when it is name's (the registry write releases the port; the other nodes
 * close theirs at their next beat). */
void tt_cluster_port_release(struct tt_cluster *c, const char *name, uint16_t port);

/* ---- the admin API's view of the cluster (cluster_admin.c) ----
 * Every node publishes, on its beat, the live fields of its online devices that changed since
 * it last did (field "live" of dev:NAME: "SINCE_MS BYTES_IN BYTES_OUT STREAMS REMOTE_ADDR") and,
 * once per session, their services as the admin API shows them (field "svc", a JSON array):
 * up to 256 changed devices per beat (the rest at the next ones), in the script that checks who
 * holds them. */

/* One device of the shared registry, as Redis has it. */
struct tt_cluster_dev {
    char name[TT_MAX_NAME + 1];
    char label[TT_MAX_LABEL + 1];
    char node[TT_NODE_ID_MAX + 1]; /* the holder while online, "" offline */
    bool node_alive;               /* the holder's node record is alive */
    int64_t offline_since, last_seen;
    bool has_live;           /* the holder published the fields below */
    int64_t connected_since; /* of the holder's session */
    char remote[64];
    uint64_t in, out, streams;
    char *svc; /* the holder's services (JSON array, malloc'd) or NULL */
    uint8_t nports;
    struct {
        char service[TT_MAX_NAME + 1];
        uint16_t port;
    } ports[TT_MAX_SERVICES];
};

/* Reads the device named name of the shared registry in one Redis call (name NULL reads every
 * device in that one call, unbounded: the admin API's lists use tt_cluster_devs_page). Sets
 * *out (sorted by name; free with tt_cluster_devs_free) and *n. Returns 0, TETHER_ERR_IO (Redis
 * unreachable) or TETHER_ERR_NOMEM. */
int tt_cluster_devs(struct tt_cluster *c, const char *name, struct tt_cluster_dev **out, size_t *n);

void tt_cluster_devs_free(struct tt_cluster_dev *v, size_t n);

/* A page of the shared registry's devices (GET /api/devices, the dashboard): what
 * tt_cluster_devs_page found. */
#define TT_CLUSTER_PAGE_NODES 64 /* nodes counted one by one; beyond, in other_nodes */
struct tt_cluster_page {
    struct tt_cluster_dev *v; /* the page, sorted by name (free with tt_cluster_page_free) */
    size_t n;
    size_t total;               /* devices that match, on every page */
    bool more;                  /* more match after the page */
    char prev[TT_MAX_NAME + 1]; /* the page before this one starts after this ("": the first) */
    size_t online, offline;     /* every known device, whatever the filter */
    struct {
        char node[TT_NODE_ID_MAX + 1];
        size_t online;
    } nodes[TT_CLUSTER_PAGE_NODES]; /* online devices per live node */
    size_t nnodes, other_nodes;
};

/* Reads one page of the devices of the shared registry that q (adminquery.h) asks for, with
 * the counts. A walk over every device in steps (SSCAN, 4,000 devices a step: one short Lua
 * script each, reading their name, label, holder and offline time), each step returning its
 * counts and of its matches the q->limit + 1 first names after q->after and the q->limit + 1
 * last ones up to it (for prev); then one call for the page's records. Every reply is bounded
 * by the step or the page; the walk's time grows with the fleet. A device is known as
 * record_known has it (admin.c): held, or offline within grace_ms at now; online when its
 * holder's node record is alive. Names are ordered in byte order; a name SSCAN returns twice
 * (the set resized during the walk) is shown once but may count twice in the totals. Returns
 * 0, TETHER_ERR_IO (Redis unreachable) or TETHER_ERR_NOMEM. */
struct tt_adminquery;
int tt_cluster_devs_page(struct tt_cluster *c, const struct tt_adminquery *q, int64_t now,
                         uint64_t grace_ms, struct tt_cluster_page *out);

void tt_cluster_page_free(struct tt_cluster_page *pg);

/* The live field of a device ("SINCE IN OUT STREAMS ADDR") into out. */
void tt_cluster_live_format(int64_t since, uint64_t in, uint64_t out, uint64_t streams,
                            const char *addr, char *buf, size_t len);

#endif
