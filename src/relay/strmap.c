/* strmap.c - chained hash table from strings to pointers (FNV-1a, power-of-two buckets that
 * double at load 1). Owns its entries and key copies, never the values. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "tether_err.h"
#include "strmap.h"

struct tt_strmap_ent {
    struct tt_strmap_ent *next;
    void *val;
    char key[];
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211ull;
    }
    return h;
}

void tt_strmap_init(struct tt_strmap *m)
{
    m->b = NULL;
    m->nb = 0;
    m->n = 0;
}

void tt_strmap_reset(struct tt_strmap *m)
{
    for (size_t i = 0; i < m->nb; i++) {
        struct tt_strmap_ent *e = m->b[i];
        while (e) {
            struct tt_strmap_ent *next = e->next;
            free(e);
            e = next;
        }
    }
    free(m->b);
    tt_strmap_init(m);
}

static int grow(struct tt_strmap *m)
{
    size_t nb = m->nb ? m->nb * 2 : 16;
    struct tt_strmap_ent **b = calloc(nb, sizeof(*b));
    if (!b)
        return TETHER_ERR_NOMEM;
    for (size_t i = 0; i < m->nb; i++) {
        struct tt_strmap_ent *e = m->b[i];
        while (e) {
            struct tt_strmap_ent *next = e->next;
            size_t j = hash(e->key) & (nb - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
    return 0;
}

static struct tt_strmap_ent **find(const struct tt_strmap *m, const char *key)
{
    if (!m->nb)
        return NULL;
    struct tt_strmap_ent **pe = &m->b[hash(key) & (m->nb - 1)];
    while (*pe && strcmp((*pe)->key, key) != 0)
        pe = &(*pe)->next;
    return pe;
}

int tt_strmap_put(struct tt_strmap *m, const char *key, void *val)
{
    struct tt_strmap_ent **pe = find(m, key);
    if (pe && *pe) {
        (*pe)->val = val;
        return 0;
    }
    if (m->n >= m->nb && grow(m) != 0)
        return TETHER_ERR_NOMEM;
    size_t klen = strlen(key);
    struct tt_strmap_ent *e = malloc(sizeof(*e) + klen + 1);
    if (!e)
        return TETHER_ERR_NOMEM;
    memcpy(e->key, key, klen + 1);
    e->val = val;
    size_t j = hash(key) & (m->nb - 1);
    e->next = m->b[j];
    m->b[j] = e;
    m->n++;
    return 0;
}

void *tt_strmap_get(const struct tt_strmap *m, const char *key)
{
    struct tt_strmap_ent **pe = find(m, key);
    return pe && *pe ? (*pe)->val : NULL;
}

void *tt_strmap_del(struct tt_strmap *m, const char *key)
{
    struct tt_strmap_ent **pe = find(m, key);
    if (!pe || !*pe)
        return NULL;
    struct tt_strmap_ent *e = *pe;
    void *val = e->val;
    *pe = e->next;
    free(e);
    m->n--;
    return val;
}

int tt_strmap_foreach(struct tt_strmap *m, int (*cb)(const char *key, void *val, void *ud),
                      void *ud)
{
    for (size_t i = 0; i < m->nb; i++) {
        struct tt_strmap_ent *e = m->b[i];
        while (e) {
            struct tt_strmap_ent *next = e->next;
            int rc = cb(e->key, e->val, ud);
            if (rc)
                return rc;
            e = next;
        }
    }
    return 0;
}

size_t tt_strmap_walk(struct tt_strmap *m, size_t *pos, size_t max,
                      int (*cb)(const char *key, void *val, void *ud), void *ud)
{
    size_t seen = 0, i = m->nb ? *pos & (m->nb - 1) : 0;
    int stop = 0;
    for (size_t k = 0; k < m->nb && seen < max && !stop; k++) {
        struct tt_strmap_ent *e = m->b[i];
        while (e) {
            struct tt_strmap_ent *next = e->next;
            stop |= cb(e->key, e->val, ud);
            seen++;
            e = next;
        }
        i = (i + 1) & (m->nb - 1);
    }
    *pos = i;
    return seen;
}

size_t tt_strmap_count(const struct tt_strmap *m)
{
    return m->n;
}
