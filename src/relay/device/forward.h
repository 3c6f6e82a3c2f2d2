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
#include "relay/access/access.h"
#include "relay/access/sessions.h"
#include "relay/config.h"
#include "relay/device/device.h"
#include "relay/limits.h"

struct tt_principal;
struct tt_httpproxy;

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

/* The accept callback of a TCP listener that device ud owns (the single relay's ports: passed to
 * tcpports.h by mode_single.c): the client is checked against --tcp-allow, then joined to the
 * service's stream when the device is online; else (offline) audited and closed at once. */
void tt_forward_port_accept(struct tt_tcpport *p, struct tt_conn *client, void *ud);

/* The same, with pre[0..prelen) (copied) already read from the client, for a tunnel from
 * another cluster node: client_addr is the TCP client's "IP:PORT" that node vouches for (its
 * stream counts under it, and the audit line names it; NULL or "": the socket's peer). */
void tt_forward_tcp_pre(struct tt_device *d, int svc, struct tt_conn *client, const uint8_t *pre,
                        size_t prelen, const char *client_addr);

/* Audit (audit.h): every browser connection and TCP client joined above writes one connection
 * line when its pipe is over: bytes each way, duration, and an outcome: "ok" (it ended with a
 * FIN each way, or sat idle past its idle timeout), "refused" (the relay refused it or one of
 * its requests: a share of streams used up, the device's own stream limit, a malformed or
 * oversized request, a request head or body too slow), "offline" (the device's session went
 * away before the stream opened) or "error" (the device's service refused or failed, a stream
 * reset, a socket error). Nothing is gathered when there is no audit log. */

/* --tcp-allow: true when the TCP client just accepted on a public port (of service of device;
 * either may be NULL when this node does not know it) may go on: there is no --tcp-allow, or
 * its address lies in one of the networks. Otherwise the client is closed at once, counted
 * (r->tcp_allow_refused: tether_access_tcp_refused_total) and audited (outcome "refused"), and
 * false is returned. The check is made by the node that accepted the socket (in a cluster, the
 * node that forwards the client to the device's holder; the holder trusts it). */
bool tt_forward_tcp_admit(struct tt_relay *r, struct tt_conn *client, const char *device,
                          const char *service);

/* Writes the audit line of a client that got no stream (the relay answered it itself: the
 * device offline, a 503): kind "http" or "tcp", who NULL for public access, client "IP:PORT",
 * outcome "refused", "offline" or "error"; no bytes, no duration. Does nothing without an
 * audit log. */
void tt_forward_audit_refused(struct tt_relay *r, const char *device, const char *service,
                              const char *kind, const struct tt_principal *who, const char *client,
                              const char *outcome);

/* Writes "IP:PORT" ("[IP]:PORT" for IPv6) into out[len]. Returns out. */
char *tt_forward_client_addr(char *out, size_t len, const char *ip, uint16_t port);

/* What this module asks of the sign-in module (signin.h), which forwards through it
 * (tt_forward_http_as, tt_forward_close_session): relay.c gives it at start, so that forward.c
 * does not depend on signin.c. Until it is given, every later request of a private service's
 * connection is refused (the connection closes). */
struct tt_forward_signin {
    /* signin.h tt_signin_check of a later request head of a private service's connection: head
     * as the browser sent it, parsed in x (Host, https); ac the connection's principal, device
     * and service; self the connection (a sign-out closes the others made under the session).
     * Fills key, *answer (malloc'd) and *answerlen as tt_signin_check does. Returns an enum
     * tt_httpproxy_verdict. */
    int (*check)(struct tt_relay *r, const uint8_t *head, const struct tt_httpproxy *x,
                 const struct tt_access_conn *ac, const void *self,
                 char key[TT_SESSION_KEY_LEN + 1], char **answer, size_t *answerlen);
    /* Counts the sign-in page sent again to a connection whose request had passed (a held
     * body that was the sign-in form: tt_signin_stats.signin_repeats). */
    void (*repeat)(void);
};

/* Sets what the sign-in module does for this one (s is kept: a static table). */
void tt_forward_set_signin(const struct tt_forward_signin *s);

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
