/* forward.h - joins public clients to device services: opens a stream on the device's session
 * and hands the client socket to a pipe (common/pipe.h). HTTP clients go through the request
 * filter (httpproxy.h) and get an HTML page when the device cannot serve them; raw TCP clients
 * are joined byte for byte. */
#ifndef TT_FORWARD_H
#define TT_FORWARD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "device.h"

/* Proxies the browser connection client (malloc'd, reading stopped; taken over) to HTTP
 * service svc of the online device d. pre[0..prelen) holds what was read so far (the first
 * request head and maybe more); host is the normalized Host every request must keep;
 * client_ip and client_port name the browser. When no stream can be opened the client gets
 * a 503 (device busy or unreachable) or 502 page. */
void tt_forward_http(struct tt_device *d, int svc, uv_tcp_t *client, const uint8_t *pre,
                     size_t prelen, const char *host, const char *client_ip, uint16_t client_port);

/* Joins the TCP client (malloc'd, taken over) to TCP service svc of the online device d; the
 * client is closed when no stream can be opened. */
void tt_forward_tcp(struct tt_device *d, int svc, uv_tcp_t *client);

#endif
