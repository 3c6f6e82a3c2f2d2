/* wsframe.h - RFC 6455 section 5 framing for wsconn: frame headers encoded and decoded over
 * caller buffers, and payload masking a machine word at a time. Pure functions: no allocation,
 * no state, no I/O. (wslay's frame layer masks byte by byte through its own 4 KiB buffer; on a
 * relay that was most of the CPU spent per uploaded byte.)
 * Return values: common/'s convention (util.h): lengths (>= 0) or a negative tether_err. */
#ifndef TT_WSFRAME_H
#define TT_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tether_err.h"

#define TT_WSFRAME_MAX_HEADER 14 /* 2 + 8 (64-bit length) + 4 (mask key) */

enum tt_ws_opcode {
    TT_WS_CONTINUATION = 0x0,
    TT_WS_TEXT = 0x1,
    TT_WS_BINARY = 0x2,
    TT_WS_CLOSE = 0x8,
    TT_WS_PING = 0x9,
    TT_WS_PONG = 0xa,
};

struct tt_wsframe_hdr {
    bool fin;
    uint8_t rsv;    /* RSV1..3 as bits 2..0 */
    uint8_t opcode; /* any 4-bit value: the caller rejects unknown ones */
    bool masked;
    uint8_t key[4]; /* valid when masked */
    uint64_t len;   /* payload length */
};

/* True for close, ping, pong and the reserved control opcodes 0xb-0xf. */
static inline bool tt_wsframe_is_control(uint8_t opcode)
{
    return (opcode & 0x8) != 0;
}

/* Decodes a frame header from in[0..len). Returns the header's length (2..14) and fills h, 0 if
 * in holds only part of a header, or TETHER_ERR_PROTO if the header is invalid: a length not in its
 * minimal encoding or with the top bit set, or a control frame longer than 125 bytes or without
 * FIN. Reads only the bytes the header needs. */
int tt_wsframe_decode(struct tt_wsframe_hdr *h, const uint8_t *in, size_t len);

/* Writes the header of a frame (RSV bits 0) into out and returns its length (2..14). key NULL:
 * unmasked. Cannot fail. */
size_t tt_wsframe_encode(uint8_t out[TT_WSFRAME_MAX_HEADER], bool fin, uint8_t opcode,
                         const uint8_t key[4], uint64_t len);

/* dst[i] = src[i] ^ key[(off + i) % 4] for i < len, where off is the payload offset of src[0].
 * dst may equal src (in place); otherwise they must not overlap. */
void tt_wsframe_mask(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                     uint64_t off);

#endif
