/* cidr.h - IP networks in CIDR notation (--tcp-allow 10.0.0.0/8, 2001:db8::/32, or a single
 * address), and whether a client address lies in one. IPv4-mapped IPv6 clients (::ffff:a.b.c.d)
 * match IPv4 networks. Pure; no allocation. */
#ifndef TT_CIDR_H
#define TT_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"

struct sockaddr;

struct tt_cidr {
    uint8_t family; /* 4 or 6 */
    uint8_t bits;   /* prefix length: 0..32 or 0..128 */
    uint8_t addr[16];
};

/* Parses "ADDR/BITS" or "ADDR" (a host: /32 or /128) into *out; host bits set in ADDR are
 * refused ("10.0.0.1/8": say 10.0.0.0/8), so that what is written is what is meant. Returns 0,
 * or -1 with a one-line message in err. */
int tt_cidr_parse(const char *s, struct tt_cidr *out, char err[TT_ERRLEN]);

/* True when sa (AF_INET or AF_INET6) lies in one of the n networks of c. */
bool tt_cidr_match_any(const struct tt_cidr *c, size_t n, const struct sockaddr *sa);

#endif
