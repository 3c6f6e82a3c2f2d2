/* frame.h - Tether wire format (docs/PROTOCOL.md): frame header and typed payloads, encoded and
 * decoded by pure functions over caller buffers. No allocation, no I/O, no globals; libc only.
 * Decoded strings are views (struct tt_str) into the caller's input, valid as long as it is. */
#ifndef TT_FRAME_H
#define TT_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "tether_err.h"

/* Counts and lengths that may carry a negative tether_err. */
typedef ptrdiff_t tt_ssize;

/* Protocol versions spoken (docs/PROTOCOL.md, section 10): 1, and 2, which adds the device key
 * to HELLO (after the token) and to WELCOME (at the end). Every other frame is the same in both.
 * The agent sends TT_PROTO_VERSION; the relay accepts TT_PROTO_VERSION_MIN..TT_PROTO_VERSION and
 * answers in the version of the HELLO. */
#define TT_PROTO_VERSION_MIN 1
#define TT_PROTO_VERSION 2
/* WebSocket subprotocol name the agent offers and the relay echoes (the same for every version:
 * the version is negotiated by HELLO alone). */
#define TT_WS_SUBPROTOCOL "tether.v1"
/* The visitor's side (docs/PROTOCOL.md, "The visitor's side: tether connect"): the subprotocol a
 * visitor (tether connect) offers and the relay echoes; after the upgrade the connection carries
 * one stream, TT_VISITOR_STREAM, open both ways from the start, with a fixed initial window of
 * TT_VISITOR_WINDOW bytes each way (there is no HELLO/WELCOME to announce one). */
#define TT_WS_SUBPROTOCOL_CONNECT "tether-connect.v1"
#define TT_VISITOR_STREAM 1u
#define TT_VISITOR_WINDOW 262144u

/* Frame header: length u16 | type u8 | flags u8 | stream u32, big-endian. */
#define TT_FRAME_HEADER_LEN 8
#define TT_FRAME_MAX_PAYLOAD 65535u

/* Limits of the registration messages (they bound the decoder's control buffer). */
#define TT_MAX_SERVICES 8
#define TT_MAX_NAME 64   /* device name and service name, bytes */
#define TT_MAX_TOKEN 128 /* token, bytes */
#define TT_MAX_LABEL 63  /* DNS label */
#define TT_MAX_ADDR 128  /* service address in WELCOME (URL or host name), OPEN origin */
#define TT_MAX_REASON 200
#define TT_MAX_KEY 64 /* device key (version 2): 64 lowercase hex digits of 32 random bytes */
/* Largest payload of any frame but DATA and unknown types; larger ones are a protocol error. */
#define TT_CTRL_MAX 2048

enum tt_frame_type {
    TT_FRAME_HELLO = 0x01,   /* device -> relay, stream 0: registration */
    TT_FRAME_WELCOME = 0x02, /* relay -> device, stream 0: registration accepted */
    TT_FRAME_REFUSE = 0x03,  /* relay -> device, stream 0: registration refused */
    TT_FRAME_OPEN = 0x04,    /* relay -> device, stream != 0: open a stream to a service */
    TT_FRAME_DATA = 0x05,    /* both, stream != 0: bytes; flag FIN = no more data this way */
    TT_FRAME_WINDOW = 0x06,  /* both, stream != 0: flow-control credit */
    TT_FRAME_RESET = 0x07,   /* both, stream != 0: abort the stream both ways */
    TT_FRAME_GOAWAY = 0x08,  /* both, stream 0: the sender is closing the connection */
};

#define TT_FLAG_FIN 0x01 /* DATA only */

enum tt_service_kind {
    TT_SERVICE_HTTP = 1,
    TT_SERVICE_TCP = 2,
};

/* REFUSE codes. */
enum tt_refuse_code {
    TT_REFUSE_AUTH = 1,     /* unknown name or wrong token */
    TT_REFUSE_VERSION = 2,  /* protocol version not supported */
    TT_REFUSE_INVALID = 3,  /* malformed name, duplicate or bad service list */
    TT_REFUSE_CAPACITY = 4, /* no label or TCP port left */
    TT_REFUSE_INTERNAL = 5, /* relay-side failure; retry later */
};

/* RESET codes. */
enum tt_reset_code {
    TT_RESET_CANCEL = 0,     /* the sender no longer wants the stream */
    TT_RESET_REFUSED = 1,    /* device: the local service refused or failed to connect */
    TT_RESET_NO_SERVICE = 2, /* device: service index unknown */
    TT_RESET_PROTOCOL = 3,   /* a frame on this stream broke the rules */
    TT_RESET_FLOW = 4,       /* the peer sent more than its window */
    TT_RESET_LIMIT = 5,      /* too many concurrent streams */
    TT_RESET_IO = 6,         /* the local connection failed after it was made */
    TT_RESET_TIMEOUT = 7,    /* connect or idle timeout */
};

/* GOAWAY codes. */
enum tt_goaway_code {
    TT_GOAWAY_NORMAL = 0,   /* orderly close */
    TT_GOAWAY_SHUTDOWN = 1, /* relay shutting down: reconnect (elsewhere) */
    TT_GOAWAY_TAKEOVER = 2, /* another connection with the same name took over */
    TT_GOAWAY_PROTOCOL = 3, /* fatal protocol error */
    TT_GOAWAY_DELETED = 4,  /* operator removed the device */
    TT_GOAWAY_REVOKED = 5,  /* relay -> visitor: the visitor's access was withdrawn */
};

/* A view of bytes owned by someone else. */
struct tt_str {
    const uint8_t *p;
    size_t len;
};

struct tt_frame_header {
    uint16_t length; /* payload length */
    uint8_t type;
    uint8_t flags;
    uint32_t stream; /* top bit reserved, sent as 0 and ignored */
};

struct tt_hello {
    uint8_t version;
    uint16_t max_streams; /* most concurrent streams the device accepts */
    uint32_t window;      /* initial credit for relay->device DATA on each stream */
    struct tt_str name;
    struct tt_str token;
    struct tt_str key; /* version 2: the device key (0..TT_MAX_KEY bytes; empty: none); version
                          1 has no key field (it must be empty to encode) */
    uint8_t nservices;
    struct {
        uint8_t kind; /* enum tt_service_kind */
        struct tt_str name;
    } services[TT_MAX_SERVICES];
};

/* WELCOME's port field of an HTTP service holds flags (docs/PROTOCOL.md 4.2): this one says
 * that the relay keeps the service private (a visitor must sign in); the other bits are sent as
 * 0 and ignored. A TCP service with port 0 and an empty address is private: it has no public
 * port (it is reached with `tether connect`). */
#define TT_WELCOME_HTTP_PRIVATE 0x0001u

struct tt_welcome {
    uint8_t version;
    uint16_t max_streams; /* most concurrent streams the relay will open */
    uint32_t window;      /* initial credit for device->relay DATA on each stream */
    struct tt_str label;
    uint8_t nservices; /* same order as HELLO */
    struct {
        uint8_t kind;
        struct tt_str name;
        uint16_t port;         /* public TCP port (tcp; 0: private, no port), flags (http) */
        struct tt_str address; /* URL (http) or host name clients use (tcp; "" when private) */
    } services[TT_MAX_SERVICES];
    struct tt_str key; /* version 2: the device key issued at this registration (0..TT_MAX_KEY
                          bytes; empty: none issued); version 1 has no key field */
};

/* REFUSE, RESET and GOAWAY share this shape: a code and an optional UTF-8 reason. */
struct tt_coded {
    uint16_t code;
    struct tt_str reason;
};

struct tt_open {
    uint8_t service;      /* index into the HELLO service list */
    struct tt_str origin; /* optional "IP:PORT" of the public client, for logs */
};

/* Writes h into out[0..7]. Cannot fail. */
void tt_frame_header_encode(uint8_t out[TT_FRAME_HEADER_LEN], const struct tt_frame_header *h);
/* Reads out[0..7] into h. Cannot fail (the top bit of stream is cleared). */
void tt_frame_header_decode(struct tt_frame_header *h, const uint8_t in[TT_FRAME_HEADER_LEN]);

/* Encoders: each writes one whole frame (header + payload) into out[0..outlen) and returns its
 * length, TETHER_ERR_AGAIN if outlen is too small (nothing useful written), or
 * TETHER_ERR_INVAL if a field is out of range (string too long, too many services, stream 0 where
 * a stream is needed or the reverse, zero window increment). HELLO and WELCOME are laid out by
 * their version field: 1 or 2 (TETHER_ERR_INVAL for another, or for a key in version 1). */
tt_ssize tt_frame_encode_hello(uint8_t *out, size_t outlen, const struct tt_hello *m);
tt_ssize tt_frame_encode_welcome(uint8_t *out, size_t outlen, const struct tt_welcome *m);
tt_ssize tt_frame_encode_refuse(uint8_t *out, size_t outlen, const struct tt_coded *m);
tt_ssize tt_frame_encode_open(uint8_t *out, size_t outlen, uint32_t stream,
                              const struct tt_open *m);
tt_ssize tt_frame_encode_window(uint8_t *out, size_t outlen, uint32_t stream, uint32_t increment);
tt_ssize tt_frame_encode_reset(uint8_t *out, size_t outlen, uint32_t stream,
                               const struct tt_coded *m);
tt_ssize tt_frame_encode_goaway(uint8_t *out, size_t outlen, const struct tt_coded *m);
/* Writes only the 8-byte header of a DATA frame of len payload bytes (len <= 65535); the caller
 * puts the payload right after it. Returns 8 or TETHER_ERR_INVAL. */
tt_ssize tt_frame_encode_data_header(uint8_t out[TT_FRAME_HEADER_LEN], uint32_t stream, size_t len,
                                     bool fin);

/* Decoders: parse a payload of the given type (the header already read). Strings in m point
 * into payload. Return 0, or TETHER_ERR_PROTO for a malformed payload (short, trailing bytes
 * where none are allowed, a string over its limit, zero services count over TT_MAX_SERVICES,
 * unknown service kind, zero window increment). HELLO and WELCOME are read in the layout of
 * their first byte, the version: 1 or 2; any other version is TETHER_ERR_PROTO here (a session
 * reads the version byte first and reports TETHER_ERR_VERSION instead). */
int tt_frame_decode_hello(struct tt_hello *m, const uint8_t *payload, size_t len);
int tt_frame_decode_welcome(struct tt_welcome *m, const uint8_t *payload, size_t len);
int tt_frame_decode_coded(struct tt_coded *m, const uint8_t *payload, size_t len);
int tt_frame_decode_open(struct tt_open *m, const uint8_t *payload, size_t len);
int tt_frame_decode_window(uint32_t *increment, const uint8_t *payload, size_t len);

#endif
