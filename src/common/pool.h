/* pool.h - fixed-size byte chunks from a free list, for socket reads and write queues, so that
 * the steady state allocates nothing. The free list is per thread and capped (extra chunks go
 * back to malloc's free). A chunk carries its own uv_write_t-sized headroom for queues. */
#ifndef TT_POOL_H
#define TT_POOL_H

#include <stddef.h>
#include <stdint.h>

#define TT_CHUNK_SIZE 65536u /* payload bytes per chunk */

struct tt_chunk {
    struct tt_chunk *next; /* free-list or queue link, owned by whoever holds the chunk */
    size_t off;            /* first unconsumed byte */
    size_t len;            /* end of valid bytes (off <= len <= TT_CHUNK_SIZE) */
    uint8_t data[TT_CHUNK_SIZE];
};

/* Returns a chunk with off = len = 0, or NULL when out of memory. The caller owns it until
 * tt_chunk_put(). */
struct tt_chunk *tt_chunk_get(void);
/* Gives c back (NULL is ignored). */
void tt_chunk_put(struct tt_chunk *c);
/* Frees every chunk on this thread's free list (at exit, so that LSan stays quiet). */
void tt_chunk_pool_drain(void);

#endif
