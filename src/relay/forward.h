/* forward.h - joins public clients to device services: opens a stream on the device's session
 * and hands the client socket to a pipe (common/pipe.h). HTTP clients go through the request
 * filter (httpproxy.h) and get an HTML page when the device cannot serve them; raw TCP clients
 * are joined byte for byte. Each stream counts against its device's shares (limits.h: per
 * kind, per client address), as well as the session's --max-streams. HTTP clients are also
 * timed: one silent both ways for the idle timeout, slower than the head timeout over a later
 * request head of a keep-alive connection, or slower than the body deadline over a request
 * body, is closed; a raw TCP client silent both ways for the TCP idle timeout too. */
#ifndef TT_FORWARD_H
#define TT_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "common/conn.h"
#include "access.h"
#include "config.h"
#include "device.h"
#include "limits.h"

/* Proxies the browser connection client (reading stopped; taken over) to HTTP service svc of
 * the online device d. pre[0..prelen) holds what was read so far (the first request head and
 * maybe more); host is the normalized Host every request must keep; client_ip and client_port
 * name the browser (client_ip is also the address its stream counts under); a client over TLS
 * gets X-Forwarded-Proto: https. When no stream can be opened the client gets a 503 (device
 * busy: a share used up; or unreachable) or 502 page. */
void tt_forward_http(struct tt_device *d, int svc, struct tt_conn *client, const uint8_t *pre,
                     size_t prelen, const char *host, const char *client_ip, uint16_t client_port);

/* The same as tt_forward_http for a browser whose address and protocol another cluster node
 * vouched for: client_ip is the browser's, https says whether it came over TLS. who (copied) is
 * NULL for a public service; for a private one it is the principal whose session let the first
 * request pass: every request of the connection is then checked again (signin.h: a live
 * session of that principal for this host, or the relay answers it), and the connection is
 * tracked (access.h) so that it is closed at once when that principal's access goes, and by the
 * sweep when its session ends (expiry, sign-out, eviction, here or on another node). */
void tt_forward_http_as(struct tt_device *d, int svc, struct tt_conn *client, const uint8_t *pre,
                        size_t prelen, const char *host, const char *client_ip,
                        uint16_t client_port, bool https, const struct tt_principal *who);

/* Closes every browser connection made under session key (a sign-out), but except (the
 * connection's own state, as given to its filter check; NULL: none). */
void tt_forward_close_session(const char *key, const void *except);

/* Joins the TCP client (taken over) to TCP service svc of the online device d; the client is
 * closed when no stream can be opened. */
void tt_forward_tcp(struct tt_device *d, int svc, struct tt_conn *client);

/* The same, with pre[0..prelen) (copied) already read from the client, for a tunnel from
 * another cluster node: client_addr is the TCP client's "IP:PORT" that node vouches for (its
 * stream counts under it; NULL or "": the socket's peer). */
void tt_forward_tcp_pre(struct tt_device *d, int svc, struct tt_conn *client, const uint8_t *pre,
                        size_t prelen, const char *client_addr);

/* Starts the timer behind the clients' timeouts on loop, from cfg: --idle-timeout without a
 * byte either way closes an HTTP client (0: never), and so does a later request head still
 * incomplete --head-timeout after its first byte, or a request body not whole within
 * --body-timeout plus a second per --body-min-rate bytes received (time the relay held the
 * socket back not counted; a 408 page when nothing of the answer was sent yet); a raw TCP
 * client silent both ways for --tcp-idle-timeout is closed (RESET TIMEOUT to the device).
 * Counters go to lim (kept). The timer does not keep the loop alive. Returns 0 or a libuv
 * error. */
int tt_forward_start(uv_loop_t *loop, const struct tt_config *cfg, struct tt_limits *lim);

/* Stops and closes that timer (relay shutdown); the clients end with their device streams. */
void tt_forward_stop(void);

#endif
