/* tcpports.h - the relay's pool of public TCP ports (--tcp-ports LOW-HIGH on --tcp-bind): one
 * listener per device TCP service. Ports are handed out round-robin, skipping those that fail
 * to bind (another program holds them). Accepted sockets go to the owner's callback. */
#ifndef TT_TCPPORTS_H
#define TT_TCPPORTS_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "common/conn.h"
#include "common/util.h"
#include "relay/limits.h"

struct tt_tcpport;

/* A client connected to p: client is a connected (plain) conn now owned by the callee (who
 * closes it with tt_conn_close). */
typedef void (*tt_tcpport_accept_cb)(struct tt_tcpport *p, struct tt_conn *client, void *ud);

struct tt_tcpports {
    uv_loop_t *loop;
    char bind[TT_HOSTLEN];
    uint16_t low, high;
    uint32_t next;            /* offset from low of the next port to try */
    uint8_t *used;            /* one byte per port of the range: held by a listener of ours */
    bool reuseport;           /* listeners set SO_REUSEPORT (cluster nodes sharing an address) */
    struct tt_limits *limits; /* NULL, or where accepted clients are checked against the
                                 descriptor reserve and failed accepts told (tt_limits_fd_room,
                                 tt_limits_accept_failed): a client refused there is closed */
    struct tt_tcpport *list;
};

/* Prepares the pool. Returns 0 or TETHER_ERR_NOMEM / _INVAL (bind is not an IP address). */
int tt_tcpports_init(struct tt_tcpports *pp, uv_loop_t *loop, const char *bind, uint16_t low,
                     uint16_t high);
/* Closes every open port and frees the pool's memory (the ports' memory goes after their
 * close callbacks). */
void tt_tcpports_reset(struct tt_tcpports *pp);

/* Opens a listener on port want (0: the next free port of the range; a want outside the range
 * or taken falls back to that too) with cb/ud. Returns 0 and *out, TETHER_ERR_CAPACITY (no
 * port of the range could be bound) or _NOMEM. */
int tt_tcpports_open(struct tt_tcpports *pp, uint16_t want, tt_tcpport_accept_cb cb, void *ud,
                     struct tt_tcpport **out);

/* Like tt_tcpports_open() but for exactly port (a device remembered by the registry after a
 * restart): TETHER_ERR_CAPACITY when it is outside the range, already ours, or cannot be bound
 * (another program holds it). */
int tt_tcpports_open_exact(struct tt_tcpports *pp, uint16_t port, tt_tcpport_accept_cb cb, void *ud,
                           struct tt_tcpport **out);

/* Closes p's listener and gives the port back; p is freed after the close callback. */
void tt_tcpport_close(struct tt_tcpport *p);

/* p's port number. */
uint16_t tt_tcpport_port(const struct tt_tcpport *p);

#endif
