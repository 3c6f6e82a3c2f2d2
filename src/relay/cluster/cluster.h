/* cluster.h - cluster mode (--redis): several tetherd nodes share one registry in Redis and act
 * as one relay. This module owns what a node does for the others: its node record (advertise
 * URL, cluster address, device count; refreshed every TT_CLUSTER_BEAT_MS with an expiry of
 * TT_CLUSTER_NODE_TTL_MS), the view of the other live nodes (for redirects and forwarding),
 * the shared secret that lets nodes trust each other's internal requests, the listeners of
 * every TCP port assigned in the cluster, the takeover of devices that reconnected elsewhere,
 * the offline marking of dead nodes' devices and the expiry of devices past their grace.
 * Everything runs on the loop thread. Once the loop runs, every Redis call of this module is
 * asynchronous (store/redisasync.h: its own pipelined connection): the beat sends its commands
 * at once and acts on each reply as it comes, skipping a beat while the previous one's replies
 * are due; a client whose device must be looked up in Redis waits, bounded (TT_CLUSTER_WAIT_MS,
 * TT_CLUSTER_WAIT_MAX), for the answer; the grants' periodic read uses the same connection.
 * Synchronous calls (redisconn.h) remain at start-up (the secret, the node id check, the first
 * beat and port read) and at shutdown. The admin API's reads of the registry are walks on the
 * asynchronous connection (cluster_admin.c); its deletes one script on the registry's
 * (tt_registry_erase_async). */
#ifndef TT_CLUSTER_H
#define TT_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/conn.h"
#include "core/frame.h"
#include "relay/http/headconn.h"
#include "relay/store/redisconn.h"
#include "relay/lib/strmap.h"
#include "relay/device/tcpports.h"
#include "relay/mode.h"

#define TT_CLUSTER_BEAT_MS 1000
#define TT_CLUSTER_NODE_TTL_MS 3500
#define TT_CLUSTER_SECRET_LEN 64 /* hex characters */
/* Clients (browser requests, tether connect, TCP clients) waiting at once for Redis to say
 * where their device is, and how long each may wait: beyond either, the documented answer of
 * an unreachable holder (503 page; a TCP client closed). */
#define TT_CLUSTER_WAIT_MAX 4096
#define TT_CLUSTER_WAIT_MS 2000
/* Redis counts as late once a beat or a waiting client has waited this long: a client whose
 * device's holder this node knew is then served at once from that knowledge. */
#define TT_CLUSTER_STALL_MS 250
/* Shutdown: how long the node record's removal may take before the connection closes. */
#define TT_CLUSTER_CLOSE_MS 500
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
    uint64_t seq; /* tt_cluster.port_seq when this node last claimed it (0: never) */
};

struct tt_redisasync;
struct tt_peerlink_audit;
struct cl_wait;

struct tt_cluster {
    struct tt_relay *r;
    struct tt_redisconn rc;   /* synchronous: start-up and the registry */
    struct tt_redisasync *ra; /* asynchronous: everything this module asks once the loop runs */
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
    uint64_t published; /* live fields of devices written to Redis, in total */
    /* the last beat's duration from its start to its last reply, and the time its takeover
     * check took on the loop (walking the devices, building and sending its batches) */
    uint64_t beat_us, check_us;
    size_t scan_pos, pub_pos; /* where the beat's walks of the device map resume */
    int64_t redis_held;       /* devices Redis says we hold, at the last beat (-1 unknown) */
    uint64_t full_checks;     /* beats that checked every device (redis_held too low) */
    /* after a change of Redis master (sentinel mode, redisconn.h): every device held here is
     * checked and written again, TT_CLUSTER_REPAIR_SLICE per beat (cluster.c) */
    uint64_t master_seen;     /* rc.master_changes already acted on */
    size_t repair_pos;        /* where the repair's walk of the device map resumes */
    size_t repair_left;       /* devices still to walk */
    uint64_t repair_conflict; /* devices whose label or port another name held on the master */
    /* the asynchronous beat */
    unsigned beat_inflight;        /* commands of the current beat whose reply is due */
    uint64_t beat_started;         /* its start (uv_hrtime) */
    uint64_t beats, beats_skipped; /* beats started, and skipped (the previous one's replies due) */
    uint64_t loop_us;              /* the last beat's time on the loop (building and sending) */
    int64_t beat_online, beat_closed;  /* online and closed_pushed when the last beat was sent */
    int64_t held_online, held_closed;  /* the same, of the beat whose reply set redis_held */
    uint64_t port_seq, ports_sent_seq; /* port claims made here; the last at the port read */
    /* clients waiting for Redis (cluster.c struct cl_wait), oldest first */
    struct cl_wait *waits, *waits_tail;
    size_t waiting, waiting_peak; /* not answered yet; the most at once */
    uint64_t waits_total, wait_full, wait_timeouts;
    uint64_t late_answers; /* clients served from what this node knew, Redis being late */
    uv_timer_t wait_timer;
    uv_timer_t close_timer; /* shutdown: closes ra (cluster.c) */
    bool closing;
    uint64_t ra_master_changes; /* ra's master changes, kept once ra is closed */
    /* the admin API's walks over the registry (cluster_admin.c), oldest first */
    struct tt_cluster_walk *walk_list;
    size_t walks, walks_peak; /* in flight (cancelled ones until their step's reply); the most */
    uint64_t walks_ok, walks_failed, walks_timeout, walks_cancelled, walks_refused, walk_steps;
    uint64_t walk_restarts; /* walks started again: the connection moved to another server */
    /* the operator's deletes waiting for Redis (admindevapi.c, tt_admin_delete_start): held
     * ones, and ones whose client went, until their reply */
    size_t deletes, deletes_peak;
    uint64_t deletes_done, deletes_failed, deletes_cancelled, deletes_refused;
};
/* Deletes (DELETE /api/devices/NAME, the dashboard's delete form) waiting for Redis at once per
 * node; beyond, 503 with Retry-After (TT_CLUSTER_WALK_RETRY_S). Each waits at most the
 * asynchronous connection's command timeout (TT_REDISASYNC_TIMEOUT_MS, then 503). */
#define TT_ADMIN_DELETES_MAX 16
/* Devices walked per beat by the repair after a master change (two Redis calls per
 * CHECK_BATCH of them). */
#define TT_CLUSTER_REPAIR_SLICE 2048

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

/* Where the device with label (by_name: named key) is, for a client this node cannot serve
 * itself (mode.h tt_mode.locate): asked of Redis in one call, the client waiting (bounded:
 * TT_CLUSTER_WAIT_MS, then cb with timed_out); with Redis down, answered at once from the last
 * holder this node knew (a label cache) and the last beat's nodes. Returns 0 (cb called once,
 * now or later) or TETHER_ERR_CAPACITY (TT_CLUSTER_WAIT_MAX clients wait already: counted). */
int tt_cluster_locate(struct tt_cluster *c, const char *key, bool by_name, tt_where_cb cb,
                      void *ud);

/* Forgets the lookups waiting with ud: their cb is not called. */
void tt_cluster_cancel(struct tt_cluster *c, void *ud);

/* Changes of Redis master (sentinel mode) this node followed: the larger count of its two
 * connections (each follows the master on its own). */
uint64_t tt_cluster_master_changes(const struct tt_cluster *c);

/* True while this node reaches Redis: its asynchronous connection is up (before start: the
 * synchronous one). */
bool tt_cluster_redis_up(const struct tt_cluster *c);

/* The metrics of the asynchronous side (beats skipped, clients waiting, the connection's own:
 * store/redisasync.h) appended to out[*len..cap) as Prometheus text. */
void tt_cluster_metrics_async(const struct tt_cluster *c, char *out, size_t cap, size_t *len);

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

/* Frees n records read from the registry (their services, then v). */
void tt_cluster_devs_free(struct tt_cluster_dev *v, size_t n);

/* A page of the shared registry's devices (GET /api/devices, the dashboard): what
 * tt_cluster_page_async found. */
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

/* Reads, without waiting on the loop, one page of the devices of the shared registry that q
 * (adminquery.h) asks for, with the counts: a walk over every device in steps on the cluster's
 * asynchronous connection (store/redisasync.h), one at a time, each step's reply sending the
 * next (SSCAN, 4,000 devices a step: one short Lua script each, reading their name, label,
 * holder and offline time), each step returning its counts and of its matches the q->limit + 1
 * first names after q->after and the q->limit + 1 last ones up to it (for prev); then one call
 * for the page's records. Every reply is bounded by the step or the page; the walk's time grows
 * with the fleet, the loop's time with the page. A device is known as record_known has it
 * (admin.c): held, or offline within grace_ms at now; online when its holder's node record is
 * alive. Names are ordered in byte order; a name SSCAN returns twice (the set resized during the
 * walk) is shown once but may count twice in the totals.
 * Returns TT_CLUSTER_PENDING with *handle: cb is called exactly once, later, never from inside
 * this call, unless the walk is cancelled first; or at once, cb never called:
 * TETHER_ERR_CAPACITY (TT_CLUSTER_WALKS_MAX walks in flight: the admin API answers 503 with
 * Retry-After), TETHER_ERR_IO (Redis cannot be reached now) or TETHER_ERR_NOMEM.
 * cb's rc: 0 (*pg is the page, the callee's: free it with tt_cluster_page_free), TETHER_ERR_IO
 * (a step got no answer or a bad one: Redis unreachable, the connection's command timeout),
 * TETHER_ERR_TIMEOUT (the walk took more than TT_CLUSTER_WALK_MS) or TETHER_ERR_NOMEM; *pg is
 * empty then. */
#define TT_CLUSTER_PENDING 1
/* Walks (and reads of one device) in flight at once per node; how long one may take (a walk is
 * 0.32 s at 100,000 devices on the test machine; the limit is below the connection's command
 * timeout, TT_REDISASYNC_TIMEOUT_MS, so that a Redis that stalls gets the admin client a 503
 * rather than a list of this node's devices only). A walk cancelled or timed out while its step
 * is due still counts until the step's reply (or that command timeout) ends it. */
#define TT_CLUSTER_WALKS_MAX 8
#define TT_CLUSTER_WALK_MS 4000
/* The answer's Retry-After (seconds) at the cap or after a timeout. */
#define TT_CLUSTER_WALK_RETRY_S 2
struct tt_adminquery;
struct tt_cluster_walk;
typedef void (*tt_cluster_walk_cb)(void *ud, int rc, struct tt_cluster_page *pg);
int tt_cluster_page_async(struct tt_cluster *c, const struct tt_adminquery *q, int64_t now,
                          uint64_t grace_ms, tt_cluster_walk_cb cb, void *ud,
                          struct tt_cluster_walk **handle);

/* The device named name of the shared registry (pg->n 0 or 1), read in one call on the
 * asynchronous connection; counted and capped with the walks. Returns and answers as
 * tt_cluster_page_async. */
int tt_cluster_dev_async(struct tt_cluster *c, const char *name, tt_cluster_walk_cb cb, void *ud,
                         struct tt_cluster_walk **handle);

/* The walk's callback will not be called (the admin connection went); it ends at its step's
 * reply. NULL is fine. */
void tt_cluster_walk_cancel(struct tt_cluster_walk *w);

void tt_cluster_page_free(struct tt_cluster_page *pg);

struct tt_adminbuf;
struct tt_device;

/* The services of d as compact JSON (malloc'd; NULL when out of memory), in a form any node
 * turns into what GET /api/devices shows: [{"name","kind":"http","sub"} or {"name",
 * "kind":"tcp","port"}], each with "private". The beat publishes it for the other nodes' admin
 * APIs (admindevview.c reads it back). cluster_admin.c. */
char *tt_cluster_services_dump(const struct tt_device *d);

/* The cluster's lines of the admin listener's /metrics (Prometheus text, tether_cluster_* and
 * tether_redis_*), appended to out (adminbuf.h). cluster_admin.c. */
void tt_cluster_metrics(struct tt_adminbuf *out, const struct tt_cluster *c);

/* The live field of a device ("SINCE IN OUT STREAMS ADDR") into out. */
void tt_cluster_live_format(int64_t since, uint64_t in, uint64_t out, uint64_t streams,
                            const char *addr, char *buf, size_t len);

#endif
