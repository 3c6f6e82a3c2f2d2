/* registry.h - what the relay remembers about each device name between connections and across
 * restarts: its label, the TCP port of each TCP service, when it was last seen and since when
 * it is offline; the SHA-256 of the device key of each name a fleet credential created (it
 * outlives the record: the name stays its device's until an operator deletes it); plus the
 * credentials the relay made itself (the generated fleet token, kept only as a SHA-256 hash) and
 * the relay's own heartbeat. One interface, several backends:
 * SQLite in the data dir (registry_sqlite.c; also in memory for unit tests) and Redis, shared by
 * the nodes of a cluster (registry_redis.c).
 * Records are copied in and out: no pointer into a backend outlives a call. The runtime state
 * (sessions, listeners, counters) is not here; it lives in device.c.
 *
 * Durability: a write is atomic, and once it returns it survives a kill -9 of the relay (it is
 * in the operating system's hands). To survive an OS crash or a power loss too, it must then be
 * synced: fdatasync() on the file descriptor sync_fd() gives makes every write that returned
 * before the call durable. The relay does that (in libuv's thread pool, one sync for every
 * registration waiting) before it acknowledges a registration (WELCOME), so that an
 * acknowledged registration is never lost. */
#ifndef TT_REGISTRY_H
#define TT_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>
#include "tether_err.h"
#include "common/util.h"
#include "core/frame.h"

/* One remembered device. Times are unix milliseconds. */
struct tt_reg_device {
    char name[TT_MAX_NAME + 1];
    char label[TT_MAX_LABEL + 1];
    int64_t offline_since; /* 0 while online */
    int64_t last_seen;     /* last registration, disconnection or traffic recorded */
    char node[64 + 1];     /* Redis: the node holding the device while online; else "" */
    uint8_t nports;
    struct {
        char service[TT_MAX_NAME + 1];
        uint16_t port;
    } ports[TT_MAX_SERVICES];
    /* put() only: when set_key is true, key_hash (the SHA-256 of the name's device key) is
     * stored in the same atomic write as the record, replacing any. When false the stored key
     * hash is left alone. get() and foreach() leave both zero (key_get reads the hash). */
    bool set_key;
    uint8_t key_hash[32];
};

/* The credential name under which the generated fleet token's hash is kept (device names are
 * never empty, so it cannot clash with one). */
#define TT_REG_FLEET_CRED ""

struct tt_registry;

/* A backend. Every function returns 0 or a negative tether_err; none keeps the pointers it is
 * given. TETHER_ERR_IO means the backend's storage failed (the operation did not happen). */
struct tt_registry_ops {
    /* Copies the record of name into *out. TETHER_ERR_NOT_FOUND if there is none. */
    int (*get)(struct tt_registry *r, const char *name, struct tt_reg_device *out);
    /* Copies the record holding label into *out. TETHER_ERR_NOT_FOUND if there is none. */
    int (*find_label)(struct tt_registry *r, const char *label, struct tt_reg_device *out);
    /* Inserts or replaces the record of d->name. TETHER_ERR_INVAL if d->label or one
     * of d's ports belongs to another name (or d names a port twice); TETHER_ERR_NOMEM;
     * TETHER_ERR_IO. On error the stored record is unchanged. */
    int (*put)(struct tt_registry *r, const struct tt_reg_device *d);
    /* Forgets name's record (its label and ports become free); its device key hash stays.
     * TETHER_ERR_NOT_FOUND if there is no record. */
    int (*del)(struct tt_registry *r, const char *name);
    /* Calls cb with a copy of every record (order unspecified); stops at cb's first non-zero
     * return and returns it. cb must not change the registry. */
    int (*foreach)(struct tt_registry *r, int (*cb)(const struct tt_reg_device *d, void *ud),
                   void *ud);
    /* Every record still marked online (offline_since 0) becomes offline since since_ms, or
     * since its own last_seen when that is later. Used at start-up (since the last heartbeat
     * of a relay that died) and at shutdown (since now). */
    int (*mark_offline)(struct tt_registry *r, int64_t since_ms);
    /* Records now_ms as the relay's last sign of life and puts the one recorded before into
     * *prev_ms (0 if none). */
    int (*heartbeat)(struct tt_registry *r, int64_t now_ms, int64_t *prev_ms);
    /* Copies the hash stored under credential name into hash. TETHER_ERR_NOT_FOUND if none. */
    int (*cred_get)(struct tt_registry *r, const char *name, uint8_t hash[32]);
    /* Stores hash under credential name (replacing any). */
    int (*cred_put)(struct tt_registry *r, const char *name, const uint8_t hash[32]);
    /* Copies the SHA-256 of name's device key into hash. TETHER_ERR_NOT_FOUND when the name
     * has none (a new name, one registered before device keys existed, one held through its
     * own --tokens-file token, or one an operator freed). */
    int (*key_get)(struct tt_registry *r, const char *name, uint8_t hash[32]);
    /* Forgets name's device key hash: the name is free for a new device (the operator's
     * DELETE). TETHER_ERR_NOT_FOUND if it had none. */
    int (*key_del)(struct tt_registry *r, const char *name);
    /* Counts the names holding a device key (*names) and the TCP ports that the records of
     * those names hold (*ports): what the fleet credential holds, for its caps. */
    int (*key_counts)(struct tt_registry *r, uint64_t *names, uint64_t *ports);
    /* Sets *fd to a file descriptor whose fdatasync() makes every earlier write durable
     * (owned by the backend: do not close it), or to -1 when writes are durable when they
     * return (in memory). TETHER_ERR_IO if the file cannot be opened (logged). */
    int (*sync_fd)(struct tt_registry *r, int *fd);
    /* Frees the backend and r. */
    void (*free)(struct tt_registry *r);
};

/* Every backend's struct begins with this. */
struct tt_registry {
    const struct tt_registry_ops *ops;
};

/* The file of the SQLite registry inside the data dir. */
#define TT_REGISTRY_FILE "registry.db"

struct tt_redisconn;

/* The registry in Redis, over rc (the caller's; it must outlive the registry), for node
 * node_id: put() records an online device as held by this node (taking it from another) and
 * ignores an offline record for a device another node holds now; mark_offline() and heartbeat()
 * concern this node's devices only. Labels and ports are claimed atomically (Lua scripts).
 * Writes are durable when Redis says so (sync_fd gives -1). Returns NULL when out of memory. */
struct tt_registry *tt_registry_redis_new(struct tt_redisconn *rc, const char *node_id);

/* Opens (creating it if needed) the SQLite registry at path, or an in-memory one when path is
 * ":memory:" (unit tests). Sets WAL mode and synchronous=NORMAL (durability comes from
 * sync_fd), creates or checks the schema (a newer schema version than this program knows is
 * refused), prepares its statements and syncs the file and its directory.
 * Returns the registry (free it with tt_registry_free) or NULL with a one-line message in err
 * (cannot open or create, not a database, locked, unknown schema version). */
struct tt_registry *tt_registry_sqlite_open(const char *path, char err[TT_ERRLEN]);

static inline int tt_registry_get(struct tt_registry *r, const char *name,
                                  struct tt_reg_device *out)
{
    return r->ops->get(r, name, out);
}

static inline int tt_registry_find_label(struct tt_registry *r, const char *label,
                                         struct tt_reg_device *out)
{
    return r->ops->find_label(r, label, out);
}

static inline int tt_registry_put(struct tt_registry *r, const struct tt_reg_device *d)
{
    return r->ops->put(r, d);
}

static inline int tt_registry_del(struct tt_registry *r, const char *name)
{
    return r->ops->del(r, name);
}

static inline int tt_registry_foreach(struct tt_registry *r,
                                      int (*cb)(const struct tt_reg_device *d, void *ud), void *ud)
{
    return r->ops->foreach (r, cb, ud);
}

static inline int tt_registry_mark_offline(struct tt_registry *r, int64_t since_ms)
{
    return r->ops->mark_offline(r, since_ms);
}

static inline int tt_registry_heartbeat(struct tt_registry *r, int64_t now_ms, int64_t *prev_ms)
{
    return r->ops->heartbeat(r, now_ms, prev_ms);
}

static inline int tt_registry_cred_get(struct tt_registry *r, const char *name, uint8_t hash[32])
{
    return r->ops->cred_get(r, name, hash);
}

static inline int tt_registry_cred_put(struct tt_registry *r, const char *name,
                                       const uint8_t hash[32])
{
    return r->ops->cred_put(r, name, hash);
}

static inline int tt_registry_key_get(struct tt_registry *r, const char *name, uint8_t hash[32])
{
    return r->ops->key_get(r, name, hash);
}

static inline int tt_registry_key_del(struct tt_registry *r, const char *name)
{
    return r->ops->key_del(r, name);
}

static inline int tt_registry_key_counts(struct tt_registry *r, uint64_t *names, uint64_t *ports)
{
    return r->ops->key_counts(r, names, ports);
}

static inline int tt_registry_sync_fd(struct tt_registry *r, int *fd)
{
    return r->ops->sync_fd(r, fd);
}

/* Makes every earlier write durable now, blocking (start-up and tests; the relay's loop syncs
 * sync_fd in the thread pool instead). Returns 0 or TETHER_ERR_IO. */
static inline int tt_registry_sync(struct tt_registry *r)
{
    int fd, rc = tt_registry_sync_fd(r, &fd);
    if (rc == 0 && fd >= 0 && fdatasync(fd) != 0)
        rc = TETHER_ERR_IO;
    return rc;
}

static inline void tt_registry_free(struct tt_registry *r)
{
    if (r)
        r->ops->free(r);
}

#endif
