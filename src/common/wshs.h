/* wshs.h - the WebSocket opening handshake (RFC 6455 section 4) for both sides: the client's
 * request, the server's 101 answer, and the checks. Sec-WebSocket-Accept is SHA-1 + base64
 * from OpenSSL. Answers are read with common/httphead.c (http-parser). No I/O.
 * Return values: common/'s convention (util.h): 0 or a negative tether_err; writers return a
 * length or a negative tether_err. */
#ifndef TT_WSHS_H
#define TT_WSHS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tether_err.h"

/* Sec-WebSocket-Key / -Accept are 24 and 28 characters of base64. */
#define TT_WS_KEYLEN 24
#define TT_WS_ACCEPTLEN 28

/* Makes a random key (base64 of 16 random bytes) into key[TT_WS_KEYLEN+1]. Returns 0 or
 * TETHER_ERR_IO (no randomness). */
int tt_wshs_make_key(char key[TT_WS_KEYLEN + 1]);

/* accept[TT_WS_ACCEPTLEN+1] = base64(SHA-1(key + GUID)). Returns 0, or TETHER_ERR_NOMEM or
 * TETHER_ERR_IO (OpenSSL failed). */
int tt_wshs_accept(const char *key, size_t keylen, char accept[TT_WS_ACCEPTLEN + 1]);

/* Writes the client's request into out: "GET path HTTP/1.1", Host (host, with ":port" unless
 * default_port), Upgrade, Connection, Sec-WebSocket-Key, Sec-WebSocket-Version: 13,
 * Sec-WebSocket-Protocol: tether.v1, User-Agent. Returns its length, or TETHER_ERR_TOO_LARGE if
 * out is too small. */
int tt_wshs_client_request(char *out, size_t outlen, const char *host, uint16_t port,
                           bool default_port, const char *path, const char *key);

/* The same with the subprotocol offered (NULL: tether.v1) and extra header lines after it
 * (extra: "Name: value\r\n" lines, NULL or "" for none; the caller checked them), for tether
 * connect's upgrade (docs/PROTOCOL.md, "The visitor's side"). Returns the length or
 * TETHER_ERR_TOO_LARGE. */
int tt_wshs_client_request_ex(char *out, size_t outlen, const char *host, uint16_t port,
                              bool default_port, const char *path, const char *key,
                              const char *subprotocol, const char *extra);

/* The result of parsing a server's answer to our request. */
struct tt_wshs_response {
    int status;          /* HTTP status */
    bool accepted;       /* 101 with the right Upgrade, Connection and Accept */
    char location[1024]; /* Location header of a 3xx, "" otherwise */
    size_t head_len;     /* bytes of the head; what follows is WebSocket data */
    /* Content-Length of the answer's body (UINT64_MAX: none given), and whether it is
     * text/plain (the relay's one-line reasons for refusing tether connect) */
    uint64_t content_length;
    bool text_plain;
    /* Retry-After of a 503 or 429, in seconds (tt_wshs_retry_after); 0: none, an HTTP-date
     * (not read), or not one of those statuses */
    uint32_t retry_after;
};

/* The largest Retry-After kept (seconds): a larger one is cut to this. */
#define TT_WSHS_RETRY_AFTER_MAX 86400u

/* A Retry-After value v[0..n) in delta-seconds (RFC 9110 10.2.3: digits, blanks around them
 * allowed), at most TT_WSHS_RETRY_AFTER_MAX; 0 for anything else (an HTTP-date, a sign, a
 * fraction, nothing). Pure. */
uint32_t tt_wshs_retry_after(const char *v, size_t n);

/* Reads the head of the server's answer in in[0..len) (common/httphead.c). Returns 0 when the
 * head is complete (r filled), TETHER_ERR_AGAIN if more bytes are needed, TETHER_ERR_HTTP if it
 * is malformed or longer than 16 KiB. key is the Sec-WebSocket-Key we sent. A 101 is accepted
 * without a subprotocol or with tether.v1. */
int tt_wshs_read_response(const uint8_t *in, size_t len, const char *key,
                          struct tt_wshs_response *r);

/* The same, with subprotocol (NULL: as tt_wshs_read_response) required in a 101: an answer
 * without it, or with another one, is not accepted (a relay that does not know tether connect
 * would take the upgrade for a device's). */
int tt_wshs_read_response_ex(const uint8_t *in, size_t len, const char *key,
                             const char *subprotocol, struct tt_wshs_response *r);

/* What a server saw of a client's upgrade request (the fields of RFC 6455 section 4.2.1). */
struct tt_wshs_request {
    bool get;                /* the method is GET */
    bool http11;             /* HTTP/1.1 or later */
    bool connection_upgrade; /* Connection holds the token "upgrade" */
    const uint8_t *key;      /* the first Sec-WebSocket-Key value */
    size_t keylen;
    unsigned nkeys;         /* how many Sec-WebSocket-Key headers */
    const uint8_t *version; /* the first Sec-WebSocket-Version value */
    size_t versionlen;
    unsigned nversions; /* how many Sec-WebSocket-Version headers */
};

/* Checks an upgrade request that asked for "Upgrade: websocket". Returns 0 (*status 0) when it
 * is a valid opening handshake for version 13; TETHER_ERR_HANDSHAKE (*status 400, the answer
 * to give) when it is malformed (not GET, older than HTTP/1.1, no "Connection: upgrade", a key
 * missing, repeated or not the base64 of 16 bytes, the version missing or repeated);
 * TETHER_ERR_VERSION (*status 426: answer with "Sec-WebSocket-Version: 13") when it asks for
 * another version. Pure; never reads outside the given values. */
int tt_wshs_check_request(const struct tt_wshs_request *rq, int *status);

/* Writes the server's "101 Switching Protocols" answer for key (echoing the tether.v1
 * subprotocol when subprotocol is true). Returns its length, or TETHER_ERR_TOO_LARGE if out is
 * too small (or tt_wshs_accept's error). */
int tt_wshs_server_response(char *out, size_t outlen, const char *key, size_t keylen,
                            bool subprotocol);

/* The same, echoing subprotocol (NULL: none). */
int tt_wshs_server_response_ex(char *out, size_t outlen, const char *key, size_t keylen,
                               const char *subprotocol);

#endif
