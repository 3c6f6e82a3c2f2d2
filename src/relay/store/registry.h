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
 * acknowledged registration is never lost.
 *
 * Asynchronous forms (the relay's loop; store/registry_async.c): tt_registry_lookup(),
 * tt_registry_put_async(), tt_registry_del_async() and tt_registry_key_del_if_async() complete
 * through a callback. A backend that has them (Redis with its asynchronous connection,
 * store/redisasync.h) sends the command and returns; the others (SQLite, whose writes are local
 * and fast) complete at once through the synchronous operation, the callback being called
 * before the function returns. So a caller must treat the callback as "maybe already called":
 * the call is the last thing a step of its own does. Cancellation is the caller's: the
 * callback is always called (with TETHER_ERR_IO when the backend is freed or Redis does not
 * answer), and the caller's state it is given must outlive it; the relay's device
 * registrations keep that state in a job the connection lets go of when it closes
 * (device.c, docs/DESIGN.md). */
#ifndef TT_REGISTRY_H
#define TT_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>
#include <uv.h>
#include "tether_err.h"
#include "common/util.h"
#include "core/frame.h"
#include "relay/config.h"

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

/* What a registration reads from the registry, all fetched at once (one Redis round trip). */
struct tt_reg_lookup {
    /* in */
    char name[TT_MAX_NAME + 1];
    char label[TT_MAX_LABEL + 1]; /* a fresh label to check ("": none) */
    /* out: each part's result, 0, TETHER_ERR_NOT_FOUND or an error */
    int get_rc; /* name's record */
    struct tt_reg_device dev;
    int key_rc; /* name's device key hash */
    uint8_t key_hash[32];
    int counts_rc; /* key_counts(); TETHER_ERR_AGAIN: not read (the view asks the registry) */
    uint64_t names, ports;
    int label_rc; /* label: 0 held by a record (anyone's), TETHER_ERR_NOT_FOUND free */
};

typedef void (*tt_registry_lookup_cb)(struct tt_reg_lookup *q, void *ud);
typedef void (*tt_registry_done_cb)(int rc, void *ud);

/* What the operator's delete of a name did (tt_registry_erase_async). */
struct tt_reg_erased {
    int rc;                       /* 0, or an error: then nothing below is known */
    bool key;                     /* the name's device key was deleted (the name is free) */
    bool record;                  /* its record was deleted (label and ports free) */
    char label[TT_MAX_LABEL + 1]; /* the deleted record's label ("" if none) */
};
typedef void (*tt_registry_erased_cb)(const struct tt_reg_erased *e, void *ud);

/* The asynchronous operations of a backend that has them (NULL: the synchronous ones are used,
 * completing at once). Each returns 0 (cb will be called once, from the loop, with what the
 * synchronous operation would return) or an error (cb is not called): TETHER_ERR_CAPACITY when
 * too many commands are in flight, TETHER_ERR_IO when the store cannot be reached now. */
struct tt_registry_async_ops {
    int (*lookup)(struct tt_registry *r, struct tt_reg_lookup *q, tt_registry_lookup_cb cb,
                  void *ud);
    int (*put)(struct tt_registry *r, const struct tt_reg_device *d, tt_registry_done_cb cb,
               void *ud);
    int (*del)(struct tt_registry *r, const char *name, tt_registry_done_cb cb, void *ud);
    /* records now_ms as the relay's last sign of life (heartbeat(), without the previous) */
    int (*heartbeat)(struct tt_registry *r, int64_t now_ms, tt_registry_done_cb cb, void *ud);
    /* key_counts() without waiting: the counts as the last lookup read them (and a lookup to
     * read them again), TETHER_ERR_AGAIN when none did yet */
    int (*counts_nowait)(struct tt_registry *r, uint64_t *names, uint64_t *ports);
    /* forgets name's device key hash only while it is hash (atomically) */
    int (*key_del_if)(struct tt_registry *r, const char *name, const uint8_t hash[32],
                      tt_registry_done_cb cb, void *ud);
    /* the operator's delete of name (tt_registry_erase_async) */
    int (*erase)(struct tt_registry *r, const char *name, int64_t cutoff, bool force,
                 tt_registry_erased_cb cb, void *ud);
    /* true when n more commands would pass the admission share of the cap (redisasync.h) */
    bool (*busy)(struct tt_registry *r, size_t n);
    /* appends the connection's metrics (Prometheus text); -1 when they do not fit */
    int (*metrics)(struct tt_registry *r, char *out, size_t outlen, size_t *len);
    /* closes the asynchronous connection (relay shutdown): pending callbacks get
     * TETHER_ERR_IO, the synchronous operations are used from then on */
    void (*stop)(struct tt_registry *r);
};

/* Every backend's struct begins with this. */
struct tt_registry {
    const struct tt_registry_ops *ops;
    const struct tt_registry_async_ops *aops; /* NULL: none (SQLite) */
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

struct tt_redisasync;
/* Gives the Redis registry r its asynchronous connection (store/redisasync.h) to the Redis u
 * names, on loop, with at most max_pending commands in flight; owned by r from then on (closed
 * by the stop operation or tt_registry_free). Returns 0 or -1 with err. */
int tt_registry_redis_async(struct tt_registry *r, uv_loop_t *loop, const struct tt_redis_url *u,
                            size_t max_pending, char err[TT_ERRLEN]);

/* The Redis registry's asynchronous connection (NULL: none, or stopped), for the cluster's own
 * asynchronous commands; it stays r's. */
struct tt_redisasync *tt_registry_redis_conn(struct tt_registry *r);

/* The asynchronous forms (store/registry_async.c; see above). Each returns 0 (cb called once,
 * maybe already) or an error, cb then not called. */
int tt_registry_lookup(struct tt_registry *r, struct tt_reg_lookup *q, tt_registry_lookup_cb cb,
                       void *ud);
int tt_registry_put_async(struct tt_registry *r, const struct tt_reg_device *d,
                          tt_registry_done_cb cb, void *ud);
int tt_registry_del_async(struct tt_registry *r, const char *name, tt_registry_done_cb cb,
                          void *ud);
int tt_registry_key_del_if_async(struct tt_registry *r, const char *name, const uint8_t hash[32],
                                 tt_registry_done_cb cb, void *ud);
int tt_registry_heartbeat_async(struct tt_registry *r, int64_t now_ms, tt_registry_done_cb cb,
                                void *ud);
/* The operator's delete of name (DELETE /api/devices/NAME in a cluster), in one atomic step
 * (one Lua script with Redis): forgets name's device key (key_del), then its record (del: its
 * label and ports become free, its holder is told), unless force is false and the record is
 * not shown to the operator: no label (half written), or offline since cutoff or earlier with no
 * holder (past its grace period, the expiry's to forget). cb gets what was deleted; e->rc is
 * TETHER_ERR_IO when the store failed or did not answer (with Redis a command with no answer
 * within its timeout may still have run: the operator's retry then finds nothing). */
int tt_registry_erase_async(struct tt_registry *r, const char *name, int64_t cutoff, bool force,
                            tt_registry_erased_cb cb, void *ud);
/* key_counts() for /metrics, never waiting: a synchronous backend counts now; an asynchronous
 * one gives the counts its last lookup read (a registration's, or the one this call sends for
 * the next call) or TETHER_ERR_AGAIN when it has none yet. */
int tt_registry_key_counts_nowait(struct tt_registry *r, uint64_t *names, uint64_t *ports);
/* True when the backend's connection is too busy to take n more commands (admission control;
 * false without one). */
bool tt_registry_busy(struct tt_registry *r, size_t n);
/* Appends the asynchronous connection's metrics; 0 without one. */
int tt_registry_async_metrics(struct tt_registry *r, char *out, size_t outlen, size_t *len);
/* Closes the asynchronous connection, if any (relay shutdown). */
void tt_registry_stop_async(struct tt_registry *r);

/* A registry that answers get(), key_get(), key_counts() and find_label() from the lookup q
 * (other names: NOT_FOUND; other labels: NOT_FOUND) and fails everything else with
 * TETHER_ERR_IO: the code that decides a registration (devauth.c) reads it as it reads a
 * registry. With a fallback (a synchronous backend's registry, SQLite: NULL for Redis),
 * key_counts() goes there when the lookup did not read them (SQLite counts by a scan, so only
 * the registrations that need the counts pay it, as before) and so does find_label() for a
 * label the lookup did not check; without one such a label reads as free (the write decides).
 * v is the caller's (no allocation); q must outlive its use. */
struct tt_reg_view {
    struct tt_registry base;
    const struct tt_reg_lookup *q;
    struct tt_registry *fallback;
};
struct tt_registry *tt_registry_view(struct tt_reg_view *v, const struct tt_reg_lookup *q,
                                     struct tt_registry *fallback);

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
