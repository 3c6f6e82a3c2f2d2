/* fuzz_frame.c - libFuzzer target for src/core/frame.c. The first byte picks a payload
 * decoder; the rest is its payload. A payload that decodes must encode back to exactly the
 * same bytes (the wire format is canonical); the header codec must round-trip too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(const uint8_t *frame, tt_ssize n, const uint8_t *payload, size_t len)
{
    if (n < 0 || (size_t)n != TT_FRAME_HEADER_LEN + len ||
        (len > 0 && memcmp(frame + TT_FRAME_HEADER_LEN, payload, len) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[TT_FRAME_HEADER_LEN + TT_FRAME_MAX_PAYLOAD];
    struct tt_frame_header h, h2;
    const uint8_t *p;
    size_t len;
    union {
        struct tt_hello hello;
        struct tt_welcome welcome;
        struct tt_coded coded;
        struct tt_open open;
        uint32_t inc;
    } m;

    if (size < 1)
        return 0;
    p = data + 1;
    len = size - 1;
    if (len > TT_FRAME_MAX_PAYLOAD)
        len = TT_FRAME_MAX_PAYLOAD;
    if (len >= TT_FRAME_HEADER_LEN) {
        tt_frame_header_decode(&h, p);
        tt_frame_header_encode(out, &h);
        tt_frame_header_decode(&h2, out);
        if (memcmp(&h, &h2, sizeof(h)) != 0 || (h.stream & 0x80000000u) != 0)
            abort();
    }
    switch (data[0] % 6) {
    case 0:
        if (tt_frame_decode_hello(&m.hello, p, len) == 0)
            same(out, tt_frame_encode_hello(out, sizeof(out), &m.hello), p, len);
        break;
    case 1:
        if (tt_frame_decode_welcome(&m.welcome, p, len) == 0)
            same(out, tt_frame_encode_welcome(out, sizeof(out), &m.welcome), p, len);
        break;
    case 2:
        if (tt_frame_decode_coded(&m.coded, p, len) == 0) {
            same(out, tt_frame_encode_refuse(out, sizeof(out), &m.coded), p, len);
            same(out, tt_frame_encode_goaway(out, sizeof(out), &m.coded), p, len);
            same(out, tt_frame_encode_reset(out, sizeof(out), 1, &m.coded), p, len);
        }
        break;
    case 3:
        if (tt_frame_decode_open(&m.open, p, len) == 0)
            same(out, tt_frame_encode_open(out, sizeof(out), 0x7fffffffu, &m.open), p, len);
        break;
    case 4:
        if (tt_frame_decode_window(&m.inc, p, len) == 0)
            same(out, tt_frame_encode_window(out, sizeof(out), 3, m.inc), p, len);
        break;
    default:
        /* every too-small output buffer is refused without writing past it */
        if (tt_frame_decode_hello(&m.hello, p, len) == 0) {
            size_t k;
            for (k = 0; k < TT_FRAME_HEADER_LEN + len; k++)
                if (tt_frame_encode_hello(out, k, &m.hello) != TETHER_ERR_AGAIN)
                    abort();
        }
        break;
    }
    return 0;
}
