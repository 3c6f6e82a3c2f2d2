/* adminhost.c - the admin listener's Host and Origin checks (adminhost.h): a Host must name the
 * listener (DNS rebinding), a state-changing request's Origin must be the listener's own. */
#include <string.h>
#include <strings.h>
#include <uv.h>
#include "relay/admin/adminhost.h"

#define NAME_MAX_LEN 255

/* A host as parsed: localhost, or an address (IPv4 as 4 bytes; IPv4-mapped IPv6 as IPv4). */
struct host {
    bool localhost;
    int family; /* AF_INET or AF_INET6 when an address */
    unsigned char addr[16];
    unsigned port; /* 0 when none given */
};

/* Parses an IP literal s (no brackets) into h; false when it is not one. */
static bool parse_ip(const char *s, struct host *h)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (uv_inet_pton(AF_INET, s, h->addr) == 0) {
        h->family = AF_INET;
        return true;
    }
    if (uv_inet_pton(AF_INET6, s, h->addr) != 0)
        return false;
    if (memcmp(h->addr, mapped, sizeof(mapped)) == 0) {
        memmove(h->addr, h->addr + 12, 4);
        h->family = AF_INET;
    } else {
        h->family = AF_INET6;
    }
    return true;
}

/* ":PORT" or "" at p[0..n): sets *port (0 for ""). */
static bool parse_port(const char *p, size_t n, unsigned *port)
{
    *port = 0;
    if (n == 0)
        return true;
    if (p[0] != ':' || n < 2 || n > 6)
        return false;
    for (size_t i = 1; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        *port = *port * 10 + (unsigned)(p[i] - '0');
    }
    return *port >= 1 && *port <= 65535;
}

/* Parses a Host value v[0..n): NAME[:PORT] (NAME localhost or an IPv4 literal) or
 * [V6][:PORT]. */
static bool parse_host(const char *v, size_t n, struct host *h)
{
    char name[NAME_MAX_LEN + 1];
    size_t nlen, rest;
    memset(h, 0, sizeof(*h));
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n == 0 || memchr(v, '\0', n))
        return false;
    if (v[0] == '[') {
        const char *close = memchr(v, ']', n);
        if (!close)
            return false;
        nlen = (size_t)(close - v - 1);
        rest = (size_t)(close - v + 1);
        if (nlen == 0 || nlen > NAME_MAX_LEN)
            return false;
        memcpy(name, v + 1, nlen);
        name[nlen] = '\0';
        struct in6_addr a6;
        if (uv_inet_pton(AF_INET6, name, &a6) != 0) /* brackets hold IPv6 only */
            return false;
    } else {
        const char *colon = memchr(v, ':', n);
        nlen = colon ? (size_t)(colon - v) : n;
        rest = nlen;
        if (nlen == 0 || nlen > NAME_MAX_LEN)
            return false;
        memcpy(name, v, nlen);
        name[nlen] = '\0';
        if (strchr(name, ':'))
            return false;
    }
    if (!parse_port(v + rest, n - rest, &h->port))
        return false;
    if (v[0] != '[' && strcasecmp(name, "localhost") == 0) {
        h->localhost = true;
        return true;
    }
    struct in6_addr a6;
    if (v[0] != '[' && uv_inet_pton(AF_INET6, name, &a6) == 0)
        return false; /* IPv6 without brackets */
    return parse_ip(name, h);
}

static bool same(const struct host *x, const struct host *y)
{
    return x->family == y->family && memcmp(x->addr, y->addr, x->family == AF_INET ? 4 : 16) == 0;
}

static bool is_loopback(const struct host *h)
{
    static const unsigned char v6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (h->family == AF_INET)
        return h->addr[0] == 127;
    return h->family == AF_INET6 && memcmp(h->addr, v6, 16) == 0;
}

/* Whether h names the listener a describes. */
static bool ours(const struct tt_adminhost *a, const struct host *h)
{
    struct host l;
    if (h->localhost)
        return true;
    if (a->listen_ip && parse_ip(a->listen_ip, &l)) {
        if (same(h, &l))
            return true;
        if (is_loopback(&l)) {
            static const unsigned char v4[4] = {127, 0, 0, 1};
            if (h->family == AF_INET ? memcmp(h->addr, v4, 4) == 0 : is_loopback(h))
                return true;
        }
    }
    return a->local_ip && a->local_ip[0] && parse_ip(a->local_ip, &l) && same(h, &l);
}

bool tt_adminhost_host_ok(const struct tt_adminhost *a, const char *v, size_t n)
{
    struct host h;
    return parse_host(v, n, &h) && ours(a, &h);
}

bool tt_adminhost_origin_ok(const struct tt_adminhost *a, const char *origin, size_t olen,
                            const char *host, size_t hlen)
{
    static const char scheme[] = "http://";
    const size_t slen = sizeof(scheme) - 1;
    struct host o, h;
    while (olen && (origin[olen - 1] == ' ' || origin[olen - 1] == '\t'))
        olen--;
    while (olen && (*origin == ' ' || *origin == '\t')) {
        origin++;
        olen--;
    }
    if (olen <= slen || strncasecmp(origin, scheme, slen) != 0)
        return false;
    origin += slen;
    olen -= slen;
    if (memchr(origin, '/', olen) || memchr(origin, '@', olen) || memchr(origin, ' ', olen))
        return false;
    if (!parse_host(origin, olen, &o) || !ours(a, &o) || !parse_host(host, hlen, &h) ||
        !ours(a, &h))
        return false;
    return (o.port ? o.port : 80) == (h.port ? h.port : 80);
}
