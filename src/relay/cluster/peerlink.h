/* peerlink.h - cluster mode: joins a client connection that reached this node to the node that
 * holds its device. A plain TCP connection is opened to the peer's cluster address, the given
 * first bytes (an internal request head and whatever the client had sent after its own head)
 * are written, then bytes are copied both ways as they come, with back-pressure (a side whose
 * writes queue up to 1 MiB, or to the 16 writes a TLS conn takes at once, stops the other
 * side's reads until they are under 256 KiB and 8 writes; so each side holds at most 1 MiB plus
 * one 64 KiB read of the other's bytes) and half-closes passed on. The
 * peer does all HTTP work (filtering, timeouts, pages); this side never parses. */
#ifndef TT_PEERLINK_H
#define TT_PEERLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "common/conn.h"

struct tt_relay;
struct tt_principal;

/* Whom a link carries, for the log line and the audit line written when the peer cannot be
 * reached (the holder writes every other line). The strings are copied by tt_peerlink_start;
 * who NULL: none. text: the client is a tether connect, answered text/plain (one line) rather
 * than with the HTML page. */
struct tt_peerlink_audit {
    struct tt_relay *r;
    const char *device, *service, *kind, *client;
    const struct tt_principal *who;
    bool text;
};

/* Connects to host:port (an IP literal) and joins client (taken over, reading stopped) to it
 * after sending first[0..firstlen) (malloc'd; taken over and freed here). When the peer
 * cannot be reached the client gets a 503 "device unreachable" page (http; a text/plain line
 * for tether connect) or is closed, as for a device whose node is gone; the log says
 * "cluster peer unreachable node=ID addr=HOST:PORT device=NAME err=...", and with audit (NULL:
 * none) an audit line with outcome "offline" is written (tt_forward_audit_refused). Returns
 * nothing: every failure is handled here. */
void tt_peerlink_start(uv_loop_t *loop, struct tt_conn *client, const char *host, uint16_t port,
                       uint8_t *first, size_t firstlen, bool http,
                       const struct tt_peerlink_audit *audit);

/* Links open now (metrics, tests). */
size_t tt_peerlink_count(void);

#endif
