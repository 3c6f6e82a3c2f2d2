/* pool.c - a per-thread, capped free list of 64 KiB chunks, and tt_chunkq, a byte FIFO built on
 * them for socket write queues, each with a cap on its bytes. Only chunks beyond the cap go back to
 * free() (and, with glibc, the heap is trimmed after a burst of those); nothing here touches a
 * socket. */
#include "common/pool.h"

#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "tether_err.h"

/* Chunks kept for reuse per thread: 64 x 64 KiB = 4 MiB at most. */
#define POOL_MAX_FREE 64
/* A burst (thousands of device connections reading their request heads at once after a relay
 * restart) leaves chunks freed in the middle of the heap with their first pages still resident:
 * once this many went back to free(), the heap is trimmed, at most once a second. */
#define POOL_TRIM_AFTER 64
#define POOL_TRIM_EVERY_NS 1000000000u

static _Thread_local struct tt_chunk *free_list;
static _Thread_local size_t free_count;
static _Thread_local size_t freed_since_trim;
#if defined(__GLIBC__)
static _Thread_local uint64_t last_trim; /* uv_hrtime() of the last trim */
#endif

/* Gives the pages of free heap memory back to the system after a burst (glibc's free() keeps
 * them unless they are at the top of the heap). */
static void maybe_trim(void)
{
#if defined(__GLIBC__)
    uint64_t now;
    if (freed_since_trim < POOL_TRIM_AFTER)
        return;
    now = uv_hrtime();
    if (now - last_trim < POOL_TRIM_EVERY_NS)
        return;
    last_trim = now;
    freed_since_trim = 0;
    malloc_trim(0);
#endif
}

struct tt_chunk *tt_chunk_get(void)
{
    struct tt_chunk *c = free_list;
    if (c != NULL) {
        free_list = c->next;
        free_count--;
    } else {
        c = malloc(sizeof(*c));
        if (c == NULL)
            return NULL;
    }
    c->next = NULL;
    c->off = 0;
    c->len = 0;
    return c;
}

void tt_chunk_put(struct tt_chunk *c)
{
    if (c == NULL)
        return;
    if (free_count >= POOL_MAX_FREE) {
        free(c);
        freed_since_trim++;
        maybe_trim();
        return;
    }
    c->next = free_list;
    free_list = c;
    free_count++;
    maybe_trim();
}

void tt_chunk_pool_drain(void)
{
    while (free_list != NULL) {
        struct tt_chunk *c = free_list;
        free_list = c->next;
        free(c);
    }
    free_count = 0;
}

size_t tt_chunk_pool_free_count(void)
{
    return free_count;
}

void tt_chunkq_init(struct tt_chunkq *q, size_t max)
{
    q->head = q->tail = NULL;
    q->bytes = 0;
    q->max = max;
}

size_t tt_chunkq_room(const struct tt_chunkq *q)
{
    return q->bytes < q->max ? q->max - q->bytes : 0;
}

uint8_t *tt_chunkq_reserve(struct tt_chunkq *q, size_t *room)
{
    struct tt_chunk *t = q->tail;
    size_t left = tt_chunkq_room(q);
    if (left == 0) {
        *room = 0;
        return NULL;
    }
    if (t == NULL || t->len == TT_CHUNK_SIZE) {
        t = tt_chunk_get();
        if (t == NULL)
            return NULL;
        if (q->tail != NULL)
            q->tail->next = t;
        else
            q->head = t;
        q->tail = t;
    }
    *room = TT_CHUNK_SIZE - t->len;
    if (*room > left)
        *room = left;
    return t->data + t->len;
}

void tt_chunkq_commit(struct tt_chunkq *q, size_t n)
{
    q->tail->len += n;
    q->bytes += n;
}

int tt_chunkq_append(struct tt_chunkq *q, const uint8_t *data, size_t len)
{
    if (len > tt_chunkq_room(q))
        return TETHER_ERR_AGAIN;
    while (len > 0) {
        size_t n;
        uint8_t *dst = tt_chunkq_reserve(q, &n);
        if (dst == NULL)
            return TETHER_ERR_NOMEM;
        if (n > len)
            n = len;
        memcpy(dst, data, n);
        tt_chunkq_commit(q, n);
        data += n;
        len -= n;
    }
    return 0;
}

int tt_chunkq_push(struct tt_chunkq *q, struct tt_chunk *c)
{
    if (c->len - c->off > tt_chunkq_room(q))
        return TETHER_ERR_AGAIN;
    c->next = NULL;
    if (q->tail != NULL)
        q->tail->next = c;
    else
        q->head = c;
    q->tail = c;
    q->bytes += c->len - c->off;
    return 0;
}

unsigned tt_chunkq_bufs(const struct tt_chunkq *q, uv_buf_t *bufs, unsigned max, size_t *nbytes)
{
    unsigned n = 0;
    size_t total = 0;
    for (struct tt_chunk *c = q->head; c != NULL && n < max; c = c->next) {
        if (c->len == c->off)
            continue;
        bufs[n] = uv_buf_init((char *)c->data + c->off, (unsigned)(c->len - c->off));
        total += c->len - c->off;
        n++;
    }
    if (nbytes != NULL)
        *nbytes = total;
    return n;
}

void tt_chunkq_consume(struct tt_chunkq *q, size_t n)
{
    while (n > 0 && q->head != NULL) {
        struct tt_chunk *c = q->head;
        size_t avail = c->len - c->off;
        size_t k = n < avail ? n : avail;
        c->off += k;
        q->bytes -= k;
        n -= k;
        if (c->off == c->len) {
            /* A drained tail is dropped too: nothing past it can be in flight. */
            q->head = c->next;
            if (q->head == NULL)
                q->tail = NULL;
            tt_chunk_put(c);
        }
    }
}

void tt_chunkq_clear(struct tt_chunkq *q)
{
    while (q->head != NULL) {
        struct tt_chunk *c = q->head;
        q->head = c->next;
        tt_chunk_put(c);
    }
    q->tail = NULL;
    q->bytes = 0;
}
