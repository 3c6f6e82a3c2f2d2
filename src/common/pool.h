/* pool.h - fixed-size byte chunks from a free list, for socket reads and write queues, so that
 * the steady state allocates nothing. The free list is per thread and capped (extra chunks go
 * back to malloc's free). tt_chunkq is a FIFO byte queue made of such chunks, capped at init,
 * with the uv_buf_t view that one uv_write needs.
 * Return values: common/'s convention (util.h): 0 or a negative tether_err; tt_chunk_get
 * answers NULL when the pool and malloc are out, and tt_chunkq_reserve a pointer (a reserve). */
#ifndef TT_POOL_H
#define TT_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define TT_CHUNK_SIZE 65536u /* payload bytes per chunk */
/* Room a reader may leave at the start of a chunk for headers written in front of its bytes
 * later (wsconn's frame headers: tt_wsconn_send_chunk). */
#define TT_CHUNK_HEADROOM 32u

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
/* Chunks on this thread's free list now (for tests and stats). */
size_t tt_chunk_pool_free_count(void);

/* For a libuv alloc callback: *buf is a fresh chunk's data from byte headroom on (headroom <=
 * TT_CHUNK_HEADROOM), or uv_buf_init(NULL, 0) when out of memory (libuv then reads UV_ENOBUFS).
 * The read callback gets the chunk back with tt_chunk_of_read_buf and owns it. Inline: it runs
 * once per socket read on the data path. */
static inline void tt_chunk_read_buf(size_t headroom, uv_buf_t *buf)
{
    struct tt_chunk *ch = tt_chunk_get();
    *buf = ch ? uv_buf_init((char *)ch->data + headroom, (unsigned)(TT_CHUNK_SIZE - headroom))
              : uv_buf_init(NULL, 0);
}

/* The chunk of a buffer that tt_chunk_read_buf(headroom, ...) made (NULL for a NULL buf or
 * base: libuv's read callback after an alloc that failed, or with no buffer). */
static inline struct tt_chunk *tt_chunk_of_read_buf(const uv_buf_t *buf, size_t headroom)
{
    if (buf == NULL || buf->base == NULL)
        return NULL;
    return (struct tt_chunk *)(void *)(buf->base - headroom - offsetof(struct tt_chunk, data));
}

/* A FIFO of bytes in pooled chunks, with a cap on the bytes it holds, set at init (as curl's
 * Curl_bufq_init(q, chunk_size, max_chunks)): an append or push that would pass it takes
 * nothing and answers TETHER_ERR_AGAIN, which the caller must handle (stop reading its source,
 * or give up on the stream). The queue owns its chunks. Its memory is its bytes rounded up to
 * whole chunks, plus the room a pushed chunk leaves before its off (callers push only chunks at
 * least half full, so at most twice its bytes). Bytes handed to a uv_write (see
 * tt_chunkq_bufs) stay valid until tt_chunkq_consume() drops them: appends only ever write past
 * the end of the tail chunk. */
struct tt_chunkq {
    struct tt_chunk *head, *tail;
    size_t bytes; /* queued bytes, including any handed to a write not yet consumed */
    size_t max;   /* cap on bytes (tt_chunkq_init) */
};

/* Empties q and sets its cap: it holds at most max bytes (SIZE_MAX: no cap of its own, for a
 * queue that something else bounds, which its owner must say). No allocation; cannot fail. */
void tt_chunkq_init(struct tt_chunkq *q, size_t max);
/* Bytes that may still be queued before the cap: max - bytes. */
size_t tt_chunkq_room(const struct tt_chunkq *q);
/* Copies data[0..len) to the end of q. Returns 0; TETHER_ERR_AGAIN when len is more than
 * tt_chunkq_room() (nothing appended); or TETHER_ERR_NOMEM (then only a prefix may have been
 * appended: treat the queue's stream as broken). */
int tt_chunkq_append(struct tt_chunkq *q, const uint8_t *data, size_t len);
/* Zero-copy append: returns a pointer to free space at the end of q (in a new chunk if the tail
 * is full) and its size in *room (>= 1, never past the cap), or NULL when q is full
 * (tt_chunkq_room() == 0) or out of memory. Write there, then call tt_chunkq_commit with how
 * many bytes were written; the space stays q's. */
uint8_t *tt_chunkq_reserve(struct tt_chunkq *q, size_t *room);
/* Adds n (<= the room last reserved) written bytes to the end of q. */
void tt_chunkq_commit(struct tt_chunkq *q, size_t n);
/* Appends the whole chunk c (its bytes [off, len)) to the end of q, which takes it over. Later
 * appends may fill the chunk's room past len. Returns 0, or TETHER_ERR_AGAIN when its bytes are
 * more than tt_chunkq_room() (c is still the caller's, unchanged). */
int tt_chunkq_push(struct tt_chunkq *q, struct tt_chunk *c);
/* Points bufs[0..n) at the first bytes of q, one per chunk, n <= max. Returns n (0 if empty) and
 * the bytes covered in *nbytes. The memory stays q's; valid until consumed or cleared. */
unsigned tt_chunkq_bufs(const struct tt_chunkq *q, uv_buf_t *bufs, unsigned max, size_t *nbytes);
/* Drops the first n bytes (n <= q->bytes), giving emptied chunks back to the pool. */
void tt_chunkq_consume(struct tt_chunkq *q, size_t n);
/* Drops everything (the cap stays). */
void tt_chunkq_clear(struct tt_chunkq *q);

#endif
