/* resolve.h - the agent's name lookups (the relay's host, its proxy's, a service's target), on
 * the agent's libuv loop. A name that needs no lookup (an IP literal, localhost: hostaddr.h)
 * never reaches a resolver. Otherwise the lookup goes, by hostaddr.h's rule, to the system's
 * getaddrinfo (libuv's thread pool), or to c-ares, asynchronously on the loop itself: c-ares
 * tells which of its sockets to watch (one uv_poll_t each, at most TT_RESOLVE_MAX_SOCKS) and
 * when it next needs the time (one uv_timer_t). Each lookup has its own c-ares channel. */
#ifndef TT_AGENT_RESOLVE_H
#define TT_AGENT_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "agent/hostaddr.h"
#include "common/util.h"

/* Addresses a lookup keeps (the first ones, in the resolver's order). */
#define TT_RESOLVE_MAX_ADDRS 8
/* Sockets of one c-ares lookup that are watched at a time: a UDP and a TCP socket for each of
 * up to 3 name servers (resolv.conf's limit), and room to spare. A socket past the cap is not
 * watched: its server's answer is never read, and c-ares moves on to the next server, or the
 * lookup times out (logged at warn). */
#define TT_RESOLVE_MAX_SOCKS 8
/* Lookups under way at once in the process (fixed answers for literals and localhost are not
 * counted): one for the relay's dial, and one for each stream the relay opens to a service whose
 * target is a name, up to the agent's 1024 streams; each holds a c-ares channel with its
 * sockets (or a getaddrinfo in libuv's pool). Past the cap tt_resolve_start() refuses with
 * TETHER_ERR_CAPACITY: that stream fails at once (the relay gets a RESET), nothing else waits. */
#define TT_RESOLVE_MAX_INFLIGHT 64
/* c-ares's wait for one answer, and its tries per server (the wait doubles at each round):
 * about 2 + 4 seconds before a server that never answers fails the lookup, within the dial's
 * 15 s per hop. */
#define TT_RESOLVE_TIMEOUT_MS 2000
#define TT_RESOLVE_TRIES 2

/* Where lookups go: set once (by the agent, from its config), read-only afterwards; shared by
 * every lookup, which copies what it needs. */
struct tt_resolver {
    bool has_dns; /* --dns was given */
    struct tt_dns_server dns;
};

/* The system's resolver configuration, looked at for each lookup (a file that appears later is
 * used from then on). */
#define TT_RESOLV_CONF "/etc/resolv.conf"

struct tt_resolve;

struct tt_resolve_result {
    int err;             /* 0, TETHER_ERR_NOT_FOUND (no such name, no address, no DNS server
                            known), TETHER_ERR_TIMEOUT (no answer), TETHER_ERR_NOMEM,
                            TETHER_ERR_IO (any other resolver failure) */
    const char *message; /* failure: one line naming the host, the resolver and the cause ("no
                            /etc/resolv.conf: give a DNS server with --dns ADDR[:PORT]"); "" */
    const union tt_sockaddr *addrs; /* success: 1..TT_RESOLVE_MAX_ADDRS, port set */
    size_t naddrs;
};

/* Called exactly once per tt_resolve_start() that returned 0, never from inside it, unless
 * tt_resolve_cancel() came first. r must not be used once this returns (it frees itself); res
 * and everything it points to are valid during the call only. The callback may cancel other
 * lookups and start new ones. */
typedef void (*tt_resolve_cb)(struct tt_resolve *r, const struct tt_resolve_result *res, void *ud);

/* Looks up host (a name, an IP literal without brackets, or a localhost name) for port, as rs
 * says (NULL: no --dns). Returns 0 and *out (cb follows), or TETHER_ERR_NOMEM / TETHER_ERR_IO
 * (the resolver could not be set up) / TETHER_ERR_INVAL (host too long or empty) /
 * TETHER_ERR_CAPACITY (TT_RESOLVE_MAX_INFLIGHT lookups under way) with a one-line message in
 * err, and cb is never called. Thread-safe: the count of lookups under way is atomic. */
int tt_resolve_start(struct tt_resolve **out, uv_loop_t *loop, const struct tt_resolver *rs,
                     const char *host, uint16_t port, tt_resolve_cb cb, void *ud,
                     char err[TT_ERRLEN]);

/* Abandons r: cb will not be called; r closes its handles and frees itself asynchronously
 * (the loop must run until they are closed). Must not be called after cb has run. */
void tt_resolve_cancel(struct tt_resolve *r);

/* Lookups under way now (counted against TT_RESOLVE_MAX_INFLIGHT); for tests and logs. */
int tt_resolve_inflight(void);

/* Fills rs from a --dns value (NULL or "": none). Returns 0, or TETHER_ERR_CONFIG with a
 * one-line message in err (tt_hostaddr_parse_dns). */
int tt_resolve_setup(struct tt_resolver *rs, const char *dns, char err[TT_ERRLEN]);

/* The mode a lookup of a name would use now (hostaddr.h), from rs and whether TT_RESOLV_CONF
 * exists; for logs and the agent's start-up line. */
enum tt_resolve_mode tt_resolve_mode_now(const struct tt_resolver *rs);

#endif
