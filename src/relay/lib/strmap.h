/* strmap.h - a small chained hash table from NUL-terminated string keys to pointers, used by the
 * relay's device tables and the in-memory registry. Keys are copied; values are the caller's.
 * Keys are chosen by peers (device names, labels), so they are hashed with SipHash-2-4 under a
 * random key of each table's own: nobody can pick names that share a bucket.
 * Not thread-safe; no iteration order. */
#ifndef TT_STRMAP_H
#define TT_STRMAP_H

#include <stddef.h>

struct tt_strmap_ent;
struct tt_strmap_hasher; /* the keyed hash (strmap.c) */

struct tt_strmap {
    struct tt_strmap_ent **b; /* buckets, nb of them (a power of two) */
    size_t nb;
    size_t n;
    struct tt_strmap_hasher *h; /* made with the buckets, at the first put */
};

/* Prepares an empty map. Cannot fail (the buckets and the hash key, 16 bytes from OpenSSL's
 * CSPRNG, are made on the first put). */
void tt_strmap_init(struct tt_strmap *m);
/* Frees the map's entries, buckets and hash key (not the values). The map is empty afterwards;
 * a later put draws a new key. */
void tt_strmap_reset(struct tt_strmap *m);
/* Maps key to val, replacing any earlier value. Returns 0 or TETHER_ERR_NOMEM (also when the
 * keyed hash cannot be set up at the first put: no randomness, no SipHash in OpenSSL). */
int tt_strmap_put(struct tt_strmap *m, const char *key, void *val);
/* Returns key's value or NULL. */
void *tt_strmap_get(const struct tt_strmap *m, const char *key);
/* Removes key; returns its value or NULL when absent. */
void *tt_strmap_del(struct tt_strmap *m, const char *key);
/* Calls cb for every entry; cb may delete the entry it is given (and no other). Stops early
 * and returns cb's value when cb returns non-zero; else 0. */
int tt_strmap_foreach(struct tt_strmap *m, int (*cb)(const char *key, void *val, void *ud),
                      void *ud);
/* Calls cb for the entries of whole buckets from bucket *pos on, until at least max entries
 * were visited, cb returned non-zero (the bucket is finished) or every bucket was visited once,
 * and sets *pos where the next call resumes (it wraps), so
 * that repeated calls walk the map a slice at a time. cb may delete the entry it is given (and
 * no other). An entry put or removed between calls, or a growth of the table, may make one
 * round visit an entry twice or miss it; the next round sees it. Returns the entries visited. */
size_t tt_strmap_walk(struct tt_strmap *m, size_t *pos, size_t max,
                      int (*cb)(const char *key, void *val, void *ud), void *ud);
/* Number of entries. */
size_t tt_strmap_count(const struct tt_strmap *m);

#endif
