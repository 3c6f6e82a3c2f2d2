/* hostaddr.h - the pure rules under the agent's name resolution (resolve.h): the --dns value
 * (ADDR[:PORT]), the names that never reach a resolver (IP literals, and "localhost" and
 * "*.localhost", which mean the loopback address, RFC 6761 section 6.3), and which resolver a
 * lookup goes to. No I/O, no allocation, no libuv loop. */
#ifndef TT_AGENT_HOSTADDR_H
#define TT_AGENT_HOSTADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/util.h"

#define TT_DNS_DEFAULT_PORT 53

/* An IPv4 or IPv6 socket address, 28 bytes (a sockaddr_storage is 128): what lookups hand out.
 * sa.sa_family says which. */
union tt_sockaddr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};
/* Longest --dns value: "[" 45 characters of IPv6 "]:65535". */
#define TT_DNS_ARG_MAX 64

/* A DNS server given with --dns: an IP address (a name would need DNS to be found) and a UDP
 * and TCP port. */
struct tt_dns_server {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network order: 4 bytes for AF_INET, 16 for AF_INET6 */
    uint16_t port;
    char display[TT_DNS_ARG_MAX]; /* "192.0.2.1:53", "[2001:db8::1]:53", for messages */
};

/* Parses a --dns value: "IPV4", "IPV4:PORT", "IPV6" (bare, no port), "[IPV6]" or
 * "[IPV6]:PORT"; PORT is 1..65535 in decimal (53 when left out). A host name, a zone index
 * ("%eth0"), spaces, or anything else is refused. Returns 0 and *out, or -1 with a one-line
 * message in err naming the problem (never more than TT_DNS_ARG_MAX bytes of the input). */
int tt_hostaddr_parse_dns(const char *s, struct tt_dns_server *out, char err[TT_ERRLEN]);

/* True when host is "localhost" or ends in ".localhost" (with something before the dot),
 * ignoring case and one final dot ("localhost."), and made of letters, digits, '-', '_' and '.'
 * only (so never an IP literal): names that mean the loopback address, never looked up (RFC
 * 6761 6.3; a minimal system has no /etc/hosts to say so). */
bool tt_hostaddr_is_localhost(const char *host);

/* The addresses of a host that needs no lookup, with port set: an IPv4 or IPv6 literal
 * (without brackets; an IPv6 zone index is accepted as the system does) gives itself; a
 * localhost name gives 127.0.0.1 then ::1 (services listen on 127.0.0.1 more often; a refused
 * first address falls back to the next). Writes at most max addresses into out and returns how
 * many (0 when host needs a lookup, or max is 0). */
size_t tt_hostaddr_fixed(const char *host, uint16_t port, union tt_sockaddr *out, size_t max);

/* Which resolver a lookup goes to. */
enum tt_resolve_mode {
    /* The system's, getaddrinfo (libuv's thread pool): /etc/hosts, NSS, /etc/resolv.conf. */
    TT_RESOLVE_SYSTEM,
    /* c-ares, asking the --dns server only: no hosts file, no search domains. */
    TT_RESOLVE_DNS,
    /* c-ares with the system's files, /etc/hosts then the servers of /etc/resolv.conf: the
     * static Android build, which has no getaddrinfo of its own to trust. */
    TT_RESOLVE_FILES_DNS,
    /* c-ares with /etc/hosts only: there is no /etc/resolv.conf (Android) and no --dns, so no
     * DNS server is known; a name not in /etc/hosts fails with a message saying to give --dns. */
    TT_RESOLVE_HOSTS,
};

/* The resolver for a lookup: --dns given (have_dns) wins; else, without /etc/resolv.conf
 * (have_resolv_conf false), the hosts file only; else the system's getaddrinfo when the build
 * has one it trusts (system_resolver), c-ares with the system's files otherwise. Pure. */
enum tt_resolve_mode tt_hostaddr_pick_mode(bool have_dns, bool have_resolv_conf,
                                           bool system_resolver);

/* "system", "dns", "files+dns", "hosts": the mode's name for logs. Static. */
const char *tt_hostaddr_mode_name(enum tt_resolve_mode m);

#endif
