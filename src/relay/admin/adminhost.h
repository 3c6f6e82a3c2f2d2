/* adminhost.h - who may talk to the admin listener. Its Host header must name the listener
 * itself: its address, the address the connection arrived at, or localhost (and 127.0.0.1 or
 * [::1] when it listens on loopback), so that a web page cannot reach it through a DNS name it
 * rebinds to the listener's address (admin.c answers 421). A request that changes something
 * (any method but GET, HEAD and OPTIONS) whose Origin names another site is refused (403):
 * the Origin must be http://HOST[:PORT] with such a HOST and the port of the Host header.
 * Pure: strings in, verdicts out; no allocation. */
#ifndef TT_ADMINHOST_H
#define TT_ADMINHOST_H

#include <stdbool.h>
#include <stddef.h>

/* The listener a request came to. Both strings are IP literals without brackets ("127.0.0.1",
 * "::1", "0.0.0.0"); local_ip may be NULL or "" when unknown. Borrowed for the call. */
struct tt_adminhost {
    const char *listen_ip; /* --admin-listen's address */
    const char *local_ip;  /* where this connection arrived (getsockname) */
};

/* True when v[0..n) (a Host value: NAME, NAME:PORT, [V6], [V6]:PORT; blanks around it
 * ignored) names the listener: "localhost" (any case), or an IP literal equal to listen_ip or
 * local_ip (an IPv4-mapped IPv6 address counts as the IPv4 one), or 127.0.0.1 / ::1 when
 * listen_ip is a loopback address. Any port (1-65535) is accepted: the port is what the client
 * dialled, and it plays no part in DNS rebinding. Anything malformed: false. */
bool tt_adminhost_host_ok(const struct tt_adminhost *a, const char *v, size_t n);

/* True when origin[0..olen) is http://HOST[:PORT] (scheme in any case, nothing after the
 * port) with a HOST that tt_adminhost_host_ok accepts and a PORT (default 80) equal to the port
 * of host[0..hlen), the request's Host value (default 80), which must be accepted too. "null",
 * https://, a path, anything malformed: false. */
bool tt_adminhost_origin_ok(const struct tt_adminhost *a, const char *origin, size_t olen,
                            const char *host, size_t hlen);

#endif
