/* httpproxy.h - the relay's request filter for one browser connection proxied to a device:
 * it finds each request head on the keep-alive connection, checks that its Host still names
 * the same device address, and rewrites it (Host kept; client X-Forwarded-Proto/-Host and the
 * cluster's internal X-Tether-Cluster/-Client/-Proto dropped; the client IP appended to
 * X-Forwarded-For; X-Forwarded-Proto: http (https when the browser came over TLS) and
 * X-Forwarded-Host added). Bodies (Content-Length or chunked, framing included) pass as they are,
 * and after an Upgrade request everything does. Responses are never parsed. No I/O: output goes to
 * an emit callback (the pipe's tt_pipe_send). */
#ifndef TT_HTTPPROXY_H
#define TT_HTTPPROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"
#include "common/pool.h"
#include "core/frame.h"
#include "headparse.h"

/* Passes bytes on; returns 0 or a negative tether_err. */
typedef int (*tt_httpproxy_emit)(void *ud, const uint8_t *data, size_t len);

enum tt_httpproxy_mode {
    TT_HTTPPROXY_HEAD = 0, /* reading a request head */
    TT_HTTPPROXY_BODY = 1, /* passing a request body */
    TT_HTTPPROXY_RAW = 2,  /* after an upgrade: everything passes */
};

struct tt_httpproxy {
    struct tt_headparse hp;
    uint8_t mode;          /* enum tt_httpproxy_mode */
    char host[TT_HOSTLEN]; /* normalized Host every request must carry */
    char client_ip[64];    /* appended to X-Forwarded-For */
    bool https;            /* the browser came over TLS: X-Forwarded-Proto: https */
    struct tt_chunk *head; /* the head being read (pool chunk), only while it holds bytes */
    size_t hlen;
    uint64_t requests; /* heads rewritten so far */
};

/* Prepares x for a connection whose requests must carry Host host (normalized form, see
 * route.h) from client_ip, over plain HTTP (set x->https afterwards for TLS). x must not move
 * afterwards. Cannot fail. */
void tt_httpproxy_init(struct tt_httpproxy *x, const char *host, const char *client_ip);

/* Gives back x's buffer. x is unusable afterwards until tt_httpproxy_init. */
void tt_httpproxy_reset(struct tt_httpproxy *x);

/* Feeds in[0..len) read from the browser; what goes to the device is passed to emit (any
 * split). Returns 0, or TETHER_ERR_HTTP (malformed request, or a Host missing), _TOO_LARGE
 * (head over TT_HEAD_MAX or too many headers), _NOT_FOUND (a later request names another
 * Host), _NOMEM, or emit's error. After an error x only accepts tt_httpproxy_reset. */
int tt_httpproxy_feed(struct tt_httpproxy *x, const uint8_t *in, size_t len, tt_httpproxy_emit emit,
                      void *ud);

/* Writes the rewritten form of one head (head[0..headlen), parsed into hp) into out, with
 * X-Forwarded-Proto https if https, else http.
 * Returns its length, or TETHER_ERR_AGAIN when outlen is too small (headlen + the Host
 * value's length + 256 is always enough). */
tt_ssize tt_httpproxy_rewrite(const uint8_t *head, size_t headlen, const struct tt_headparse *hp,
                              const char *client_ip, bool https, uint8_t *out, size_t outlen);

#endif
