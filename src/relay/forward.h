/* forward.h - joins public clients to device services: opens a stream on the device's session
 * and hands the client socket to a pipe (common/pipe.h). HTTP clients go through the request
 * filter (httpproxy.h) and get an HTML page when the device cannot serve them; raw TCP clients
 * are joined byte for byte. HTTP clients are also timed: one silent both ways for the idle
 * timeout, or slower than the head timeout over a later request head of a keep-alive
 * connection, is closed (raw TCP clients never are: SSH and the like stay idle for hours). */
#ifndef TT_FORWARD_H
#define TT_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "common/conn.h"
#include "device.h"

/* Proxies the browser connection client (reading stopped; taken over) to HTTP service svc of
 * the online device d. pre[0..prelen) holds what was read so far (the first request head and
 * maybe more); host is the normalized Host every request must keep; client_ip and client_port
 * name the browser; a client over TLS gets X-Forwarded-Proto: https. When no stream can be
 * opened the client gets a 503 (device busy or unreachable) or 502 page. */
void tt_forward_http(struct tt_device *d, int svc, struct tt_conn *client, const uint8_t *pre,
                     size_t prelen, const char *host, const char *client_ip, uint16_t client_port);

/* The same as tt_forward_http for a browser whose address and protocol another cluster node
 * vouched for: client_ip is the browser's, https says whether it came over TLS. */
void tt_forward_http_as(struct tt_device *d, int svc, struct tt_conn *client, const uint8_t *pre,
                        size_t prelen, const char *host, const char *client_ip,
                        uint16_t client_port, bool https);

/* Joins the TCP client (taken over) to TCP service svc of the online device d; the client is
 * closed when no stream can be opened. */
void tt_forward_tcp(struct tt_device *d, int svc, struct tt_conn *client);

/* The same, with pre[0..prelen) (copied) already read from the client (a tunnel from another
 * cluster node). */
void tt_forward_tcp_pre(struct tt_device *d, int svc, struct tt_conn *client, const uint8_t *pre,
                        size_t prelen);

/* Starts the timer behind the HTTP clients' timeouts on loop: idle_ms without a byte either
 * way closes a client (0: never), and so does a request head still incomplete head_ms after
 * its first byte. The timer does not keep the loop alive. Returns 0 or a libuv error. */
int tt_forward_start(uv_loop_t *loop, uint64_t idle_ms, uint64_t head_ms);

/* Stops and closes that timer (relay shutdown); the clients end with their device streams. */
void tt_forward_stop(void);

#endif
