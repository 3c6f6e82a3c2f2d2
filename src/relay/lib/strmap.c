/* strmap.c - chained hash table from strings to pointers (power-of-two buckets that double at
 * load 1). Keys are hashed with SipHash-2-4 (OpenSSL 3's EVP_MAC "SIPHASH", 64-bit output) under
 * a random 16-byte key per table, so that peers who choose the keys (device names, labels)
 * cannot aim them at one bucket; each entry keeps its hash, so growth does not rehash. Owns its
 * entries, key copies and hasher, never the values. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include "tether_err.h"
#include "relay/lib/strmap.h"

#define SIPHASH_KEYLEN 16
#define SIPHASH_OUTLEN 8

struct tt_strmap_hasher {
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx; /* keyed once; re-initialised (same key) for each hash */
};

struct tt_strmap_ent {
    struct tt_strmap_ent *next;
    void *val;
    uint64_t hash;
    char key[];
};

static void hasher_free(struct tt_strmap_hasher *h)
{
    if (!h)
        return;
    EVP_MAC_CTX_free(h->ctx);
    EVP_MAC_free(h->mac);
    free(h);
}

/* A hasher with a fresh random key, or NULL (out of memory, no randomness, no SipHash). */
static struct tt_strmap_hasher *hasher_new(void)
{
    unsigned char key[SIPHASH_KEYLEN];
    size_t outlen = SIPHASH_OUTLEN;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &outlen),
        OSSL_PARAM_construct_end(),
    };
    struct tt_strmap_hasher *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    bool ok = RAND_bytes(key, sizeof(key)) == 1 &&
              (h->mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL)) != NULL &&
              (h->ctx = EVP_MAC_CTX_new(h->mac)) != NULL &&
              EVP_MAC_init(h->ctx, key, sizeof(key), params) == 1;
    OPENSSL_cleanse(key, sizeof(key));
    if (!ok) {
        hasher_free(h);
        return NULL;
    }
    return h;
}

/* SipHash-2-4 of s under m's key. m has a hasher (it has buckets). A failure of OpenSSL (none
 * is expected once keyed) yields 0: every key in one bucket, still correct. */
static uint64_t hash(const struct tt_strmap *m, const char *s)
{
    unsigned char out[SIPHASH_OUTLEN];
    size_t outlen = 0;
    uint64_t h = 0;
    EVP_MAC_CTX *ctx = m->h->ctx;
    /* NULL key: start again from the key set at creation */
    if (EVP_MAC_init(ctx, NULL, 0, NULL) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)s, strlen(s)) != 1 ||
        EVP_MAC_final(ctx, out, &outlen, sizeof(out)) != 1 || outlen != sizeof(out))
        return 0;
    for (size_t i = 0; i < sizeof(out); i++)
        h |= (uint64_t)out[i] << (8 * i);
    return h;
}

void tt_strmap_init(struct tt_strmap *m)
{
    m->b = NULL;
    m->nb = 0;
    m->n = 0;
    m->h = NULL;
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
    hasher_free(m->h);
    tt_strmap_init(m);
}

static int grow(struct tt_strmap *m)
{
    if (!m->h && !(m->h = hasher_new()))
        return TETHER_ERR_NOMEM;
    size_t nb = m->nb ? m->nb * 2 : 16;
    struct tt_strmap_ent **b = calloc(nb, sizeof(*b));
    if (!b)
        return TETHER_ERR_NOMEM;
    for (size_t i = 0; i < m->nb; i++) {
        struct tt_strmap_ent *e = m->b[i];
        while (e) {
            struct tt_strmap_ent *next = e->next;
            size_t j = e->hash & (nb - 1);
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

/* The link that points at key's entry (or at the NULL ending its bucket), NULL when the map has
 * no buckets; *h gets key's hash (0 without buckets). */
static struct tt_strmap_ent **find(const struct tt_strmap *m, const char *key, uint64_t *h)
{
    *h = 0;
    if (!m->nb)
        return NULL;
    *h = hash(m, key);
    struct tt_strmap_ent **pe = &m->b[*h & (m->nb - 1)];
    while (*pe && ((*pe)->hash != *h || strcmp((*pe)->key, key) != 0))
        pe = &(*pe)->next;
    return pe;
}

int tt_strmap_put(struct tt_strmap *m, const char *key, void *val)
{
    uint64_t h;
    struct tt_strmap_ent **pe = find(m, key, &h);
    if (pe && *pe) {
        (*pe)->val = val;
        return 0;
    }
    if (m->n >= m->nb) {
        if (grow(m) != 0)
            return TETHER_ERR_NOMEM;
        h = hash(m, key);
    }
    size_t klen = strlen(key);
    struct tt_strmap_ent *e = malloc(sizeof(*e) + klen + 1);
    if (!e)
        return TETHER_ERR_NOMEM;
    memcpy(e->key, key, klen + 1);
    e->val = val;
    e->hash = h;
    size_t j = h & (m->nb - 1);
    e->next = m->b[j];
    m->b[j] = e;
    m->n++;
    return 0;
}

void *tt_strmap_get(const struct tt_strmap *m, const char *key)
{
    uint64_t h;
    struct tt_strmap_ent **pe = find(m, key, &h);
    return pe && *pe ? (*pe)->val : NULL;
}

void *tt_strmap_del(struct tt_strmap *m, const char *key)
{
    uint64_t h;
    struct tt_strmap_ent **pe = find(m, key, &h);
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
