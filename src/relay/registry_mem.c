/* registry_mem.c - the in-memory registry backend: two hash tables (by name, by label) over
 * malloc'd records. Nothing survives a restart; the SQLite backend will. */
#include <stdlib.h>
#include <string.h>
#include "tether_err.h"
#include "registry.h"
#include "strmap.h"

struct registry_mem {
    struct tt_registry base;
    struct tt_strmap by_name;  /* name -> struct tt_reg_device * (owned) */
    struct tt_strmap by_label; /* label -> the same record */
};

static int mem_get(struct tt_registry *r, const char *name, struct tt_reg_device *out)
{
    struct registry_mem *m = (struct registry_mem *)r;
    struct tt_reg_device *d = tt_strmap_get(&m->by_name, name);
    if (!d)
        return TETHER_ERR_NOT_FOUND;
    *out = *d;
    return 0;
}

static int mem_find_label(struct tt_registry *r, const char *label, struct tt_reg_device *out)
{
    struct registry_mem *m = (struct registry_mem *)r;
    struct tt_reg_device *d = tt_strmap_get(&m->by_label, label);
    if (!d)
        return TETHER_ERR_NOT_FOUND;
    *out = *d;
    return 0;
}

static int mem_put(struct tt_registry *r, const struct tt_reg_device *in)
{
    struct registry_mem *m = (struct registry_mem *)r;
    struct tt_reg_device *owner = tt_strmap_get(&m->by_label, in->label);
    if (owner && strcmp(owner->name, in->name) != 0)
        return TETHER_ERR_INVAL;
    struct tt_reg_device *d = tt_strmap_get(&m->by_name, in->name);
    if (d) {
        if (strcmp(d->label, in->label) != 0) {
            if (tt_strmap_put(&m->by_label, in->label, d) != 0)
                return TETHER_ERR_NOMEM;
            tt_strmap_del(&m->by_label, d->label);
        }
        *d = *in;
        return 0;
    }
    d = malloc(sizeof(*d));
    if (!d)
        return TETHER_ERR_NOMEM;
    *d = *in;
    if (tt_strmap_put(&m->by_name, d->name, d) != 0) {
        free(d);
        return TETHER_ERR_NOMEM;
    }
    if (tt_strmap_put(&m->by_label, d->label, d) != 0) {
        tt_strmap_del(&m->by_name, d->name);
        free(d);
        return TETHER_ERR_NOMEM;
    }
    return 0;
}

static int mem_del(struct tt_registry *r, const char *name)
{
    struct registry_mem *m = (struct registry_mem *)r;
    struct tt_reg_device *d = tt_strmap_del(&m->by_name, name);
    if (!d)
        return TETHER_ERR_NOT_FOUND;
    tt_strmap_del(&m->by_label, d->label);
    free(d);
    return 0;
}

struct foreach_ctx {
    int (*cb)(const struct tt_reg_device *d, void *ud);
    void *ud;
};

static int foreach_one(const char *key, void *val, void *ud)
{
    struct foreach_ctx *fc = ud;
    struct tt_reg_device copy = *(struct tt_reg_device *)val;
    (void)key;
    return fc->cb(&copy, fc->ud);
}

static int mem_foreach(struct tt_registry *r, int (*cb)(const struct tt_reg_device *d, void *ud),
                       void *ud)
{
    struct registry_mem *m = (struct registry_mem *)r;
    struct foreach_ctx fc = {cb, ud};
    return tt_strmap_foreach(&m->by_name, foreach_one, &fc);
}

static int free_one(const char *key, void *val, void *ud)
{
    (void)key;
    (void)ud;
    free(val);
    return 0;
}

static void mem_free(struct tt_registry *r)
{
    struct registry_mem *m = (struct registry_mem *)r;
    tt_strmap_foreach(&m->by_name, free_one, NULL);
    tt_strmap_reset(&m->by_name);
    tt_strmap_reset(&m->by_label);
    free(m);
}

static const struct tt_registry_ops mem_ops = {
    .get = mem_get,
    .find_label = mem_find_label,
    .put = mem_put,
    .del = mem_del,
    .foreach = mem_foreach,
    .free = mem_free,
};

struct tt_registry *tt_registry_mem_new(void)
{
    struct registry_mem *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->base.ops = &mem_ops;
    tt_strmap_init(&m->by_name);
    tt_strmap_init(&m->by_label);
    return &m->base;
}
