/* addrkey.h - the key under which the relay counts a client for its per-address limits
 * (unauthenticated connections, streams per device, failed credentials): an IPv4 address, or
 * the /64 prefix of an IPv6 address (one subscriber usually holds a whole /64, so counting
 * single IPv6 addresses would let one attacker pass as millions). IPv4-mapped IPv6 addresses
 * (::ffff:1.2.3.4) count as their IPv4 address. Pure; no allocation. */
#ifndef TT_ADDRKEY_H
#define TT_ADDRKEY_H

#include <stddef.h>

struct sockaddr;

/* Longest key with its NUL: "xxxx:xxxx:xxxx:xxxx::/64" or a dotted quad. */
#define TT_ADDRKEY_LEN 48

/* Writes the key of sa (AF_INET or AF_INET6) into out: "192.0.2.7" or "2001:db8:1:2::/64".
 * Returns 0, or TETHER_ERR_INVAL for another family (out is then ""). */
int tt_addrkey_from_sockaddr(const struct sockaddr *sa, char out[TT_ADDRKEY_LEN]);

/* The same from an address in text form ("192.0.2.7", "::1", "::ffff:192.0.2.7"), as
 * uv_ip4_name/uv_ip6_name write it. Returns 0, or TETHER_ERR_INVAL when ip is not an IP
 * address (out is then ""). */
int tt_addrkey_from_ip(const char *ip, char out[TT_ADDRKEY_LEN]);

#endif
