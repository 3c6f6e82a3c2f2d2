/* cidr.c - CIDR networks and membership (cidr.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "relay/lib/cidr.h"

int tt_cidr_parse(const char *s, struct tt_cidr *out, char err[TT_ERRLEN])
{
    char host[64];
    const char *slash = strchr(s, '/');
    size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
    memset(out, 0, sizeof(*out));
    if (hlen == 0 || hlen >= sizeof(host))
        goto bad;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    if (uv_inet_pton(AF_INET, host, out->addr) == 0)
        out->family = 4;
    else if (uv_inet_pton(AF_INET6, host, out->addr) == 0)
        out->family = 6;
    else
        goto bad;
    unsigned max = out->family == 4 ? 32 : 128;
    out->bits = (uint8_t)max;
    if (slash) {
        char *end;
        unsigned long b = strtoul(slash + 1, &end, 10);
        if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || b > max || end - slash > 4)
            goto bad;
        out->bits = (uint8_t)b;
    }
    for (unsigned i = out->bits; i < max; i++) {
        if (out->addr[i / 8] & (0x80 >> (i % 8))) {
            snprintf(err, TT_ERRLEN, "'%.60s': address bits set past the /%u prefix", s,
                     (unsigned)out->bits);
            return -1;
        }
    }
    return 0;
bad:
    snprintf(err, TT_ERRLEN, "'%.60s' is not an IP network (ADDR/BITS or ADDR)", s);
    return -1;
}

static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

bool tt_cidr_match_any(const struct tt_cidr *c, size_t n, const struct sockaddr *sa)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const uint8_t *a;
    uint8_t family;
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        a = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
        family = 4;
    } else if (sa->sa_family == AF_INET6) {
        a = (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        family = 6;
        if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0) {
            a += 12;
            family = 4;
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (c[i].family == family && prefix_eq(a, c[i].addr, c[i].bits))
            return true;
    return false;
}
