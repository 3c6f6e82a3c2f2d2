/* mode_single.c - the single relay's side of mode.h: one tetherd on its own, its registry in
 * SQLite (DATA_DIR/registry.db), every device it remembers in its own tables, each device's
 * TCP ports its own listeners. Nothing is shared, forwarded or trusted. */
#include <stdio.h>
#include <string.h>
#include "tether_err.h"
#include "relay/device/device.h"
#include "relay/device/forward.h"
#include "relay/mode.h"
#include "relay/store/registry.h"
#include "relay/core.h"
#include "relay/admin/webhook.h"

static int single_init(struct tt_relay *r, char err[TT_ERRLEN])
{
    char path[TT_CONFIG_PATHLEN + 32];
    snprintf(path, sizeof(path), "%s/%s", r->cfg.data_dir, TT_REGISTRY_FILE);
    r->reg = tt_registry_sqlite_open(path, err);
    return r->reg ? 0 : -1;
}

static int single_start(struct tt_relay *r, char err[TT_ERRLEN])
{
    return tt_device_load_registry(r, tt_forward_port_accept, err);
}

static void single_nothing(struct tt_relay *r)
{
    (void)r;
}

static void single_set_fleet_hash(struct tt_relay *r, const uint8_t hash[32])
{
    (void)r;
    (void)hash;
}

static struct tt_redisconn *single_shared_store(struct tt_relay *r)
{
    (void)r;
    return NULL;
}

static bool single_false(struct tt_relay *r)
{
    (void)r;
    return false;
}

/* Each public TCP service gets a listener of its own (the one it carried over is kept). */
static int single_claim_ports(struct tt_device *d, struct tt_device_svc *ns, int n,
                              const int *carried)
{
    struct tt_relay *r = d->relay;
    for (int i = 0; i < n; i++) {
        if (ns[i].kind != TT_SERVICE_TCP || ns[i].is_private || carried[i] >= 0)
            continue;
        int rc = tt_tcpports_open(&r->ports, ns[i].portno, tt_forward_port_accept, d, &ns[i].port);
        if (rc) {
            for (int j = 0; j < i; j++)
                if (ns[j].port && carried[j] < 0) {
                    tt_tcpport_close(ns[j].port);
                    ns[j].port = NULL;
                }
            return rc;
        }
        ns[i].portno = tt_tcpport_port(ns[i].port);
    }
    return 0;
}

/* The device's own listener closes with its old services (device.c close_ports). */
static void single_release_port(struct tt_relay *r, const char *name, uint16_t port)
{
    (void)r;
    (void)name;
    (void)port;
}

/* A port of the relay's own pool is never another name's after the claim. */
static int single_ports_conflict(struct tt_relay *r, void (*done)(void *ud), void *ud)
{
    (void)r;
    (void)done;
    (void)ud;
    return -1;
}

/* The device stays in the tables, offline, for its grace period. */
static void single_session_ended(struct tt_device *d)
{
    (void)d;
}

static void single_expired(struct tt_device *d)
{
    tt_webhook_emit(d->relay->webhooks, "expired", d->name, d->label, tt_relay_now_ms());
}

static bool single_trusted(struct tt_relay *r, const struct tt_headparse *hp)
{
    (void)r;
    (void)hp;
    return false;
}

static int single_redirect(struct tt_relay *r, const char *target, size_t targetlen, bool away,
                           char *loc, size_t loclen)
{
    (void)r;
    (void)target;
    (void)targetlen;
    (void)away;
    (void)loc;
    (void)loclen;
    return 0;
}

/* Everything the relay knows is in its tables: a device not online here is offline (it stays
 * in the tables for its grace), registering (busy) or unknown. */
static int single_locate(struct tt_relay *r, const char *key, bool by_name, tt_where_cb cb,
                         void *ud)
{
    struct tt_where a;
    memset(&a, 0, sizeof(a));
    struct tt_device *d = by_name ? tt_strmap_get(&r->by_name, key) : tt_device_by_label(r, key);
    if (d) {
        snprintf(a.name, sizeof(a.name), "%s", d->name);
        a.kind = d->conn ? TT_WHERE_BUSY : TT_WHERE_OFFLINE;
        a.since = d->offline_since;
    }
    cb(&a, false, ud);
    return 0;
}

static void single_cancel(struct tt_relay *r, void *ud)
{
    (void)r;
    (void)ud;
}

static void single_forward_http(struct tt_relay *r, struct tt_headconn *hc, const char *host,
                                uint16_t port, const struct tt_peerlink_audit *audit)
{
    (void)r;
    (void)host;
    (void)port;
    (void)audit;
    tt_headconn_free(hc); /* never called: nothing is remote */
}

static void single_on_tunnel(struct tt_relay *r, struct tt_headconn *hc)
{
    (void)r;
    tt_headconn_free(hc); /* never called: nothing is trusted */
}

static const char *single_node_at(struct tt_relay *r, const char *host, uint16_t port)
{
    (void)r;
    (void)host;
    (void)port;
    return NULL;
}

static bool single_is_peer(struct tt_relay *r, const char *addrkey)
{
    (void)r;
    (void)addrkey;
    return false;
}

const struct tt_mode tt_mode_single = {
    .name = "single",
    .shared = false,
    .init = single_init,
    .start = single_start,
    .stop = single_nothing,
    .free = single_nothing,
    .heartbeat = tt_device_heartbeat,
    .set_fleet_hash = single_set_fleet_hash,
    .shared_store = single_shared_store,
    .store_down = single_false,
    .claim_ports = single_claim_ports,
    .release_port = single_release_port,
    .ports_conflict = single_ports_conflict,
    .session_ended = single_session_ended,
    .expired = single_expired,
    .trusted = single_trusted,
    .redirect = single_redirect,
    .locate = single_locate,
    .cancel = single_cancel,
    .forward_http = single_forward_http,
    .on_tunnel = single_on_tunnel,
    .can_take = single_false,
    .node_at = single_node_at,
    .is_peer = single_is_peer,
};
