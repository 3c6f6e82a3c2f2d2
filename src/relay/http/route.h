/* route.h - Host-based routing rules of the relay: normalizing a Host header, telling a device
 * address (LABEL.DOMAIN or SERVICE--LABEL.DOMAIN) from the relay's own names, and the DNS-safe
 * form of a service name. Pure string functions. */
#ifndef TT_ROUTE_H
#define TT_ROUTE_H

#include <stddef.h>
#include <stdint.h>
#include "common/util.h"
#include "core/frame.h"

/* Longest service part of a SERVICE--LABEL host prefix. */
#define TT_ROUTE_SVCLEN 40

enum tt_route_kind {
    TT_ROUTE_BAD = -1,   /* Host malformed */
    TT_ROUTE_DEVICE = 0, /* one DNS label under DOMAIN: maybe a device (prefix filled) */
    TT_ROUTE_OTHER = 1,  /* DOMAIN itself, an IP address, or any other name */
};

/* Normalizes a Host header value into out: lowercase, ":PORT" and a trailing dot removed,
 * brackets of an IPv6 literal kept. Returns 0, or -1 when it is empty, too long or holds a
 * character a host name cannot have. */
int tt_route_host_normalize(const uint8_t *v, size_t len, char out[TT_HOSTLEN]);

/* Checks a request target against the request's normalized Host (RFC 9112 3.2.2: a server
 * takes the host of an absolute-form target over Host; the relay routes by Host, so the two
 * must agree). Returns 1 when target is not in absolute form (origin-form "/...", "*", or a
 * CONNECT's authority), or when it is and its host, normalized, is host (the ports may
 * differ); 0 when it names another host, carries user information, or cannot be read. */
int tt_route_target_matches(const uint8_t *target, size_t len, const char *host);

/* Classifies the normalized host under domain. For TT_ROUTE_DEVICE, label gets the device
 * label and svc the service part ("" for the plain LABEL.DOMAIN). */
enum tt_route_kind tt_route_classify(const char *host, const char *domain,
                                     char label[TT_MAX_LABEL + 1], char svc[TT_ROUTE_SVCLEN + 1]);

/* The DNS-safe form of a service name for SERVICE--LABEL hosts: lowercase letters, digits and
 * single '-', at most TT_ROUTE_SVCLEN characters, never empty ("svc" if nothing is left). */
void tt_route_service_dnsname(const uint8_t *name, size_t len, char out[TT_ROUTE_SVCLEN + 1]);

#endif
