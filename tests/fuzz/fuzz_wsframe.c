/* fuzz_wsframe.c - libFuzzer target for src/common/wsframe.c. Decodes a WebSocket frame header
 * from the input; a header that decodes must encode back to exactly its bytes (lengths are
 * minimal, RSV bits aside), and masking twice must give the payload back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/wsframe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[4096];
    struct tt_wsframe_hdr h;
    uint8_t out[TT_WSFRAME_MAX_HEADER];

    int n = tt_wsframe_decode(&h, data, size);
    if (n < 0)
        return 0;
    if (n == 0) {
        if (size >= TT_WSFRAME_MAX_HEADER)
            abort(); /* a full header's worth of bytes always decides */
        return 0;
    }
    if ((size_t)n > size || n > TT_WSFRAME_MAX_HEADER)
        abort();
    size_t m = tt_wsframe_encode(out, h.fin, h.opcode, h.masked ? h.key : NULL, h.len);
    if (m != (size_t)n || (out[0] & 0x8f) != (data[0] & 0x8f) || memcmp(out + 1, data + 1, m - 1))
        abort();
    size_t plen = size - (size_t)n;
    if (plen > sizeof(buf))
        plen = sizeof(buf);
    uint64_t off = h.len & 7;
    tt_wsframe_mask(buf, data + n, plen, h.key, off);
    tt_wsframe_mask(buf, buf, plen, h.key, off);
    if (plen > 0 && memcmp(buf, data + n, plen) != 0)
        abort();
    return 0;
}
