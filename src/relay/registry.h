/* registry.h - what the relay remembers about each device name between connections: its label,
 * the TCP port of each TCP service, and since when it is offline. One interface, several
 * backends: in memory now (registry_mem.c); SQLite in the data dir and Redis come later.
 * Records are copied in and out: no pointer into a backend outlives a call. The runtime state
 * (sessions, listeners, counters) is not here; it lives in device.c. */
#ifndef TT_REGISTRY_H
#define TT_REGISTRY_H

#include <stdint.h>
#include "core/frame.h"

/* One remembered device. */
struct tt_reg_device {
    char name[TT_MAX_NAME + 1];
    char label[TT_MAX_LABEL + 1];
    int64_t offline_since; /* unix seconds; 0 while online */
    uint8_t nports;
    struct {
        char service[TT_MAX_NAME + 1];
        uint16_t port;
    } ports[TT_MAX_SERVICES];
};

struct tt_registry;

/* A backend. Every function returns 0 or a negative tether_err; none keeps the pointers it is
 * given. */
struct tt_registry_ops {
    /* Copies the record of name into *out. TETHER_ERR_NOT_FOUND if there is none. */
    int (*get)(struct tt_registry *r, const char *name, struct tt_reg_device *out);
    /* Copies the record holding label into *out. TETHER_ERR_NOT_FOUND if there is none. */
    int (*find_label)(struct tt_registry *r, const char *label, struct tt_reg_device *out);
    /* Inserts or replaces the record of d->name. TETHER_ERR_INVAL if d->label belongs to
     * another name; TETHER_ERR_NOMEM; TETHER_ERR_IO (persistent backends). */
    int (*put)(struct tt_registry *r, const struct tt_reg_device *d);
    /* Forgets name (its label becomes free). TETHER_ERR_NOT_FOUND if there is none. */
    int (*del)(struct tt_registry *r, const char *name);
    /* Calls cb with a copy of every record (order unspecified); stops at cb's first non-zero
     * return and returns it. cb must not change the registry. */
    int (*foreach)(struct tt_registry *r, int (*cb)(const struct tt_reg_device *d, void *ud),
                   void *ud);
    /* Frees the backend and r. */
    void (*free)(struct tt_registry *r);
};

/* Every backend's struct begins with this. */
struct tt_registry {
    const struct tt_registry_ops *ops;
};

/* Creates the in-memory backend (registry_mem.c). Returns NULL when out of memory. The caller
 * frees it with tt_registry_free(). */
struct tt_registry *tt_registry_mem_new(void);

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

static inline void tt_registry_free(struct tt_registry *r)
{
    if (r)
        r->ops->free(r);
}

#endif
