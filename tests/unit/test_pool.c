/* test_pool.c - unit tests for src/common/pool.c: the capped free list and tt_chunkq. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/pool.h"
#include "tether_err.h"

static void test_chunk_reuse(void **state)
{
    (void)state;
    tt_chunk_pool_drain();
    struct tt_chunk *a = tt_chunk_get();
    assert_non_null(a);
    assert_int_equal(a->off, 0);
    assert_int_equal(a->len, 0);
    a->len = 10;
    a->off = 3;
    tt_chunk_put(a);
    assert_int_equal(tt_chunk_pool_free_count(), 1);
    struct tt_chunk *b = tt_chunk_get();
    assert_ptr_equal(a, b);
    assert_int_equal(b->off, 0);
    assert_int_equal(b->len, 0);
    assert_int_equal(tt_chunk_pool_free_count(), 0);
    tt_chunk_put(b);
    tt_chunk_put(NULL);
    tt_chunk_pool_drain();
    assert_int_equal(tt_chunk_pool_free_count(), 0);
}

static void test_chunk_cap(void **state)
{
    struct tt_chunk *cs[200];
    (void)state;
    for (int i = 0; i < 200; i++)
        assert_non_null(cs[i] = tt_chunk_get());
    for (int i = 0; i < 200; i++)
        tt_chunk_put(cs[i]);
    assert_true(tt_chunk_pool_free_count() < 200);
    assert_true(tt_chunk_pool_free_count() > 0);
    tt_chunk_pool_drain();
}

static void test_chunkq(void **state)
{
    struct tt_chunkq q;
    size_t total = 3 * TT_CHUNK_SIZE + 1234;
    uint8_t *src = malloc(total), *dst = malloc(total);
    uv_buf_t bufs[8];
    size_t nbytes, got = 0;
    (void)state;
    for (size_t i = 0; i < total; i++)
        src[i] = (uint8_t)(i * 7 + i / 251);
    tt_chunkq_init(&q, SIZE_MAX);
    assert_int_equal(tt_chunkq_bufs(&q, bufs, 8, &nbytes), 0);
    assert_int_equal(nbytes, 0);
    /* Append in odd pieces. */
    for (size_t off = 0; off < total;) {
        size_t n = 1 + (off * 13) % 40000;
        if (n > total - off)
            n = total - off;
        assert_int_equal(tt_chunkq_append(&q, src + off, n), 0);
        off += n;
    }
    assert_int_equal(q.bytes, total);
    /* A capped view, then drain piece by piece as a writer would. */
    assert_int_equal(tt_chunkq_bufs(&q, bufs, 2, &nbytes), 2);
    assert_int_equal(nbytes, 2 * TT_CHUNK_SIZE);
    while (q.bytes > 0) {
        unsigned n = tt_chunkq_bufs(&q, bufs, 8, &nbytes);
        assert_true(n > 0);
        size_t take = bufs[0].len > 5000 ? 5000 : bufs[0].len;
        memcpy(dst + got, bufs[0].base, take);
        got += take;
        tt_chunkq_consume(&q, take);
        /* Appending while a prefix is "in flight" never moves it. */
    }
    assert_int_equal(got, total);
    assert_memory_equal(src, dst, total);
    assert_null(q.head);
    assert_null(q.tail);

    assert_int_equal(tt_chunkq_append(&q, src, 100), 0);
    assert_int_equal(tt_chunkq_bufs(&q, bufs, 8, &nbytes), 1);
    char *base = bufs[0].base;
    assert_int_equal(tt_chunkq_append(&q, src + 100, 100), 0);
    assert_int_equal(tt_chunkq_bufs(&q, bufs, 8, &nbytes), 1);
    assert_ptr_equal(bufs[0].base, base);
    assert_int_equal(nbytes, 200);
    tt_chunkq_consume(&q, 50);
    assert_int_equal(q.bytes, 150);
    tt_chunkq_clear(&q);
    assert_int_equal(q.bytes, 0);
    assert_null(q.head);
    free(src);
    free(dst);
    tt_chunk_pool_drain();
}

/* A whole chunk joins a queue without a copy, between appended bytes, in order. */
static void test_chunkq_push(void **state)
{
    struct tt_chunkq q;
    struct tt_chunk *c = tt_chunk_get();
    uv_buf_t bufs[8];
    size_t nbytes;
    (void)state;
    assert_non_null(c);
    tt_chunkq_init(&q, SIZE_MAX);
    assert_int_equal(tt_chunkq_append(&q, (const uint8_t *)"ab", 2), 0);
    memcpy(c->data + TT_CHUNK_HEADROOM, "cdef", 4);
    c->off = TT_CHUNK_HEADROOM;
    c->len = TT_CHUNK_HEADROOM + 4;
    tt_chunkq_push(&q, c);
    assert_int_equal(q.bytes, 6);
    assert_ptr_equal(q.tail, c);
    /* Later appends go on in the pushed chunk's room. */
    assert_int_equal(tt_chunkq_append(&q, (const uint8_t *)"gh", 2), 0);
    assert_ptr_equal(q.tail, c);
    assert_int_equal(tt_chunkq_bufs(&q, bufs, 8, &nbytes), 2);
    assert_int_equal(nbytes, 8);
    assert_memory_equal(bufs[0].base, "ab", 2);
    assert_ptr_equal(bufs[1].base, (char *)c->data + TT_CHUNK_HEADROOM);
    assert_memory_equal(bufs[1].base, "cdefgh", 6);
    tt_chunkq_consume(&q, 7);
    assert_int_equal(q.bytes, 1);
    assert_ptr_equal(q.head, c);
    tt_chunkq_consume(&q, 1);
    assert_null(q.head);
    assert_null(q.tail);
}

/* The cap: appends and pushes past it take nothing and answer TETHER_ERR_AGAIN; reserve never
 * offers room past it; room comes back as the queue drains. */
static void test_chunkq_cap(void **state)
{
    struct tt_chunkq q;
    uint8_t src[1000];
    size_t room;
    uint8_t *p;
    struct tt_chunk *c = tt_chunk_get();
    (void)state;
    assert_non_null(c);
    memset(src, 'x', sizeof(src));
    tt_chunkq_init(&q, 2500);
    assert_int_equal(tt_chunkq_room(&q), 2500);
    assert_int_equal(tt_chunkq_append(&q, src, 1000), 0);
    assert_int_equal(tt_chunkq_append(&q, src, 1000), 0);
    assert_int_equal(tt_chunkq_room(&q), 500);
    /* All or nothing. */
    assert_int_equal(tt_chunkq_append(&q, src, 501), TETHER_ERR_AGAIN);
    assert_int_equal(q.bytes, 2000);
    /* Reserve offers the room left, not the chunk's. */
    p = tt_chunkq_reserve(&q, &room);
    assert_non_null(p);
    assert_int_equal(room, 500);
    memset(p, 'y', room);
    tt_chunkq_commit(&q, room);
    assert_int_equal(tt_chunkq_room(&q), 0);
    room = 99;
    assert_null(tt_chunkq_reserve(&q, &room));
    assert_int_equal(room, 0);
    assert_int_equal(tt_chunkq_append(&q, src, 1), TETHER_ERR_AGAIN);
    assert_int_equal(tt_chunkq_append(&q, src, 0), 0);
    /* A push that does not fit leaves the chunk with its owner, unchanged. */
    c->off = TT_CHUNK_HEADROOM;
    c->len = TT_CHUNK_HEADROOM + 10;
    assert_int_equal(tt_chunkq_push(&q, c), TETHER_ERR_AGAIN);
    assert_int_equal(c->off, TT_CHUNK_HEADROOM);
    assert_int_equal(c->len, TT_CHUNK_HEADROOM + 10);
    assert_int_equal(q.bytes, 2500);
    /* Draining gives the room back. */
    tt_chunkq_consume(&q, 10);
    assert_int_equal(tt_chunkq_room(&q), 10);
    assert_int_equal(tt_chunkq_push(&q, c), 0);
    assert_ptr_equal(q.tail, c);
    assert_int_equal(q.bytes, 2500);
    /* Never over the cap, whatever the pieces. */
    tt_chunkq_clear(&q);
    assert_int_equal(q.max, 2500);
    for (int i = 0; i < 100; i++) {
        int r = tt_chunkq_append(&q, src, (size_t)(37 * i % 300));
        assert_true(r == 0 || r == TETHER_ERR_AGAIN);
        assert_true(q.bytes <= 2500);
    }
    tt_chunkq_clear(&q);
    tt_chunk_pool_drain();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunk_reuse), cmocka_unit_test(test_chunk_cap),
        cmocka_unit_test(test_chunkq),      cmocka_unit_test(test_chunkq_push),
        cmocka_unit_test(test_chunkq_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
