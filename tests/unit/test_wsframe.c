/* test_wsframe.c - unit tests for src/common/wsframe.c: RFC 6455 example frames, every length
 * encoding boundary, the decoder fed each prefix against a guard page, invalid headers, and the
 * word-wise masking against a byte-wise reference at every offset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/wsframe.h"
#include "tether_err.h"
#include "support_guard.h"

/* Decodes in[0..len) placed right before a PROT_NONE page. */
static int decode_guarded(struct tt_wsframe_hdr *h, const uint8_t *in, size_t len)
{
    return tt_wsframe_decode(h, ut_guarded(in, len), len);
}

static void test_rfc_examples(void **state)
{
    /* RFC 6455 section 5.7: unmasked "Hello", masked "Hello", 256-byte and 64 KiB binary. */
    static const uint8_t unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                     0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t b256[] = {0x82, 0x7e, 0x01, 0x00};
    static const uint8_t b64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
    struct tt_wsframe_hdr h;
    uint8_t out[TT_WSFRAME_MAX_HEADER], pl[5];
    (void)state;

    assert_int_equal(decode_guarded(&h, unmasked, sizeof(unmasked)), 2);
    assert_true(h.fin);
    assert_int_equal(h.opcode, TT_WS_TEXT);
    assert_false(h.masked);
    assert_int_equal(h.len, 5);
    assert_int_equal(tt_wsframe_encode(out, true, TT_WS_TEXT, NULL, 5), 2);
    assert_memory_equal(out, unmasked, 2);

    assert_int_equal(decode_guarded(&h, masked, sizeof(masked)), 6);
    assert_true(h.masked);
    assert_memory_equal(h.key, masked + 2, 4);
    tt_wsframe_mask(pl, masked + 6, 5, h.key, 0);
    assert_memory_equal(pl, "Hello", 5);
    assert_int_equal(tt_wsframe_encode(out, true, TT_WS_TEXT, masked + 2, 5), 6);
    assert_memory_equal(out, masked, 6);

    assert_int_equal(decode_guarded(&h, b256, sizeof(b256)), 4);
    assert_int_equal(h.len, 256);
    assert_int_equal(tt_wsframe_encode(out, true, TT_WS_BINARY, NULL, 256), 4);
    assert_memory_equal(out, b256, 4);

    assert_int_equal(decode_guarded(&h, b64k, sizeof(b64k)), 10);
    assert_int_equal(h.len, 65536);
    assert_int_equal(tt_wsframe_encode(out, true, TT_WS_BINARY, NULL, 65536), 10);
    assert_memory_equal(out, b64k, 10);
}

static void test_roundtrip_every_prefix(void **state)
{
    static const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 1u << 20, (1ull << 63) - 1};
    static const uint8_t key[4] = {1, 2, 3, 4};
    (void)state;
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (int m = 0; m < 2; m++) {
            uint8_t out[TT_WSFRAME_MAX_HEADER];
            struct tt_wsframe_hdr h;
            size_t n = tt_wsframe_encode(out, m == 0, TT_WS_BINARY, m ? key : NULL, lens[i]);
            for (size_t k = 0; k < n; k++)
                assert_int_equal(decode_guarded(&h, out, k), 0);
            assert_int_equal(decode_guarded(&h, out, n), (int)n);
            assert_int_equal(h.len, lens[i]);
            assert_int_equal(h.masked, m == 1);
            assert_int_equal(h.fin, m == 0);
            assert_int_equal(h.rsv, 0);
            if (m)
                assert_memory_equal(h.key, key, 4);
        }
    }
}

static void test_invalid(void **state)
{
    struct tt_wsframe_hdr h;
    static const uint8_t nonmin16[] = {0x82, 0x7e, 0x00, 0x7d};
    static const uint8_t nonmin64[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t topbit[] = {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t bigping[] = {0x89, 0x7e, 0x00, 0x80};
    static const uint8_t fragping[] = {0x09, 0x00};
    static const uint8_t rsv[] = {0xf2, 0x00};
    (void)state;
    assert_int_equal(decode_guarded(&h, nonmin16, sizeof(nonmin16)), TETHER_ERR_PROTO);
    assert_int_equal(decode_guarded(&h, nonmin64, sizeof(nonmin64)), TETHER_ERR_PROTO);
    assert_int_equal(decode_guarded(&h, topbit, sizeof(topbit)), TETHER_ERR_PROTO);
    assert_int_equal(decode_guarded(&h, bigping, sizeof(bigping)), TETHER_ERR_PROTO);
    assert_int_equal(decode_guarded(&h, fragping, sizeof(fragping)), TETHER_ERR_PROTO);
    /* RSV bits are reported, not rejected: the caller decides. */
    assert_int_equal(decode_guarded(&h, rsv, sizeof(rsv)), 2);
    assert_int_equal(h.rsv, 7);
    assert_true(tt_wsframe_is_control(0xb));
    assert_false(tt_wsframe_is_control(TT_WS_BINARY));
}

static void test_mask(void **state)
{
    static const uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
    uint8_t src[200], ref[200], got[200];
    (void)state;
    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(i * 7 + 3);
    for (uint64_t off = 0; off < 8; off++) {
        for (size_t start = 0; start < 9; start++) {
            for (size_t len = 0; start + len <= sizeof(src); len += 1 + len / 3) {
                for (size_t i = 0; i < len; i++)
                    ref[i] = src[start + i] ^ key[(off + i) % 4];
                tt_wsframe_mask(got, src + start, len, key, off);
                assert_memory_equal(got, ref, len);
                /* In place, and masking twice gives the input back. */
                tt_wsframe_mask(got, got, len, key, off);
                assert_memory_equal(got, src + start, len);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_examples),
        cmocka_unit_test(test_roundtrip_every_prefix),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_mask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
