/* mcuws.h - the WebSocket client side of the microcontroller agent (RFC 6455, docs/PROTOCOL.md
 * 2.1-2.4): the opening request, the check of the relay's answer, the frame reader and the
 * masked frame header. Sans-I/O: bytes in, results and callbacks out, over caller buffers; no
 * heap, no clock, no sockets. SHA-1 and base64 come from mbedTLS, the answer's head is read
 * by picohttpparser (docs/mcu.md says why these two). */
#ifndef TT_MCUWS_H
#define TT_MCUWS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Sec-WebSocket-Key: 24 base64 characters; Sec-WebSocket-Accept: 28. */
#define TT_MCUWS_KEY_LEN 24
#define TT_MCUWS_ACCEPT_LEN 28
/* Longest client frame header: 2 bytes, 8 of extended length, 4 of mask. */
#define TT_MCUWS_HDR_MAX 14
/* Largest control frame payload (RFC 6455 5.5). */
#define TT_MCUWS_CTRL_MAX 125

enum tt_mcuws_opcode {
    TT_MCUWS_CONT = 0x0,
    TT_MCUWS_TEXT = 0x1,
    TT_MCUWS_BINARY = 0x2,
    TT_MCUWS_CLOSE = 0x8,
    TT_MCUWS_PING = 0x9,
    TT_MCUWS_PONG = 0xA,
};

/* Close codes the agent sends or reports. */
#define TT_MCUWS_CLOSE_NORMAL 1000
#define TT_MCUWS_CLOSE_PROTOCOL 1002
#define TT_MCUWS_CLOSE_UNSUPPORTED 1003

/* Makes a key from 16 random bytes (nonce) and the accept value the relay must answer with.
 * key gets TT_MCUWS_KEY_LEN characters and a NUL, accept TT_MCUWS_ACCEPT_LEN and a NUL. Returns 0,
 * or -1 if mbedTLS fails (it cannot with these sizes). */
int tt_mcuws_key(const uint8_t nonce[16], char key[TT_MCUWS_KEY_LEN + 1],
                 char accept[TT_MCUWS_ACCEPT_LEN + 1]);

/* Writes the opening request for host (as it goes in the Host header), port (written only when
 * it is not 80), path ("/" when NULL or empty) and key into out[0..outlen). Returns its length,
 * or 0 when it does not fit (nothing useful written). */
size_t tt_mcuws_request(char *out, size_t outlen, const char *host, uint16_t port, const char *path,
                        const char *key);

/* The relay's answer to the opening request. */
struct tt_mcuws_answer {
    int status;           /* HTTP status */
    uint32_t retry_after; /* seconds from Retry-After (503), 0 when absent or not a number */
};

/* Results of tt_mcuws_answer_check, besides a positive head length. */
#define TT_MCUWS_PARTIAL 0         /* the head is not complete yet: feed more bytes */
#define TT_MCUWS_BAD (-1)          /* not HTTP, or a malformed head */
#define TT_MCUWS_NOT_101 (-2)      /* a well-formed answer that is not 101: see ans->status */
#define TT_MCUWS_BAD_UPGRADE (-3)  /* 101 without Upgrade: websocket or Connection: upgrade */
#define TT_MCUWS_BAD_ACCEPT (-4)   /* 101 with a missing or wrong Sec-WebSocket-Accept */
#define TT_MCUWS_BAD_PROTOCOL (-5) /* 101 naming a subprotocol other than tether.v1 */

/* Reads the answer head held in buf[0..len) (everything received so far). Returns the head's
 * length (the bytes after it are already WebSocket frames) when it is a valid 101 for accept,
 * TT_MCUWS_PARTIAL, or one of the negative results above; ans is filled as far as it was read.
 * At most 16 header lines are read: an answer with more is TT_MCUWS_BAD. */
int tt_mcuws_answer_check(const char *buf, size_t len, const char *accept,
                          struct tt_mcuws_answer *ans);

/* Writes the header of one masked client frame (FIN set) of opcode and len payload bytes, with
 * mask, into out. Returns its length (6, 8 or 14). */
size_t tt_mcuws_header(uint8_t out[TT_MCUWS_HDR_MAX], uint8_t opcode, uint64_t len,
                       const uint8_t mask[4]);

/* Masks (or unmasks) p[0..n) in place; off is the payload offset of p[0] in its frame. */
void tt_mcuws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t off);

/* What the reader hands out. Each callback returns 0 to go on, or a negative value that stops
 * tt_mcuws_read (which then returns it). */
struct tt_mcuws_reader_callbacks {
    /* Payload bytes of a binary message (and its continuation frames), in order, in pieces as
     * they arrive: a view into the input, valid during the call. */
    int (*data)(void *ud, const uint8_t *p, size_t n);
    /* A whole ping, pong or close frame: opcode and its payload (0..125 bytes). */
    int (*control)(void *ud, uint8_t opcode, const uint8_t *p, size_t n);
};

/* Why the reader failed (kept until tt_mcuws_reader_init). */
enum tt_mcuws_reader_err {
    TT_MCUWS_ERR_NONE = 0,
    TT_MCUWS_ERR_PROTOCOL = 1, /* reserved bits, a masked server frame, a bad opcode or length,
                                  a continuation without a message, a fragmented control frame */
    TT_MCUWS_ERR_TEXT = 2,     /* a text message: this protocol carries binary only */
};

/* The frame reader: fixed size, no buffers beyond a control frame's payload. */
struct tt_mcuws_reader {
    uint8_t hdr[TT_MCUWS_HDR_MAX];
    uint8_t hdrlen; /* bytes of the current header held */
    uint8_t need;   /* bytes the current header has (known once 2 are in) */
    uint8_t opcode; /* of the current frame */
    uint8_t in_msg; /* a binary message has begun and not ended */
    uint8_t fin;    /* FIN bit of the current frame */
    uint8_t err;    /* enum tt_mcuws_reader_err */
    uint64_t left;  /* payload bytes of the current frame not yet read */
    uint8_t ctrl[TT_MCUWS_CTRL_MAX];
    uint8_t ctrllen;
};

void tt_mcuws_reader_init(struct tt_mcuws_reader *r);

/* Feeds n received bytes (any split). Calls cb as frames complete or data arrives. Returns n,
 * a callback's negative value, or -1 when the input breaks RFC 6455 for a client (r->err says
 * how; the reader then stays failed and returns -1 for any input). */
long tt_mcuws_read(struct tt_mcuws_reader *r, const uint8_t *in, size_t n,
                   const struct tt_mcuws_reader_callbacks *cb, void *ud);

#endif
