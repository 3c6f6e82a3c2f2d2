/* hostaddr.c - the pure rules under name resolution (hostaddr.h): --dns values, the localhost
 * rule, IP literals, the choice of resolver. Addresses are read with libuv's inet_pton and
 * sockaddr helpers (the same on Windows); nothing here touches the network or the files. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "agent/hostaddr.h"
#include "common/compat.h"

static int errf(char err[TT_ERRLEN], const char *fmt, ...) TT_PRINTF(2, 3);

static int errf(char err[TT_ERRLEN], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tt_verrf(err, fmt, ap);
    va_end(ap);
    return -1;
}

/* "1".."65535", digits only, no sign, no leading zero past the first digit's worth of value. */
static bool parse_port(const char *s, uint16_t *port)
{
    unsigned long v = 0;
    size_t n = strlen(s);

    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

int tt_hostaddr_parse_dns(const char *s, struct tt_dns_server *out, char err[TT_ERRLEN])
{
    char addr[TT_DNS_ARG_MAX];
    const char *port = NULL;
    size_t n;

    memset(out, 0, sizeof *out);
    n = strnlen(s, TT_DNS_ARG_MAX);
    if (n == 0)
        return errf(err, "empty DNS server (expected ADDR[:PORT], an IP address)");
    if (n == TT_DNS_ARG_MAX)
        return errf(err, "DNS server '%.20s...' is too long (expected ADDR[:PORT])", s);
    if (strchr(s, '%') != NULL) /* libuv's inet_pton would drop it silently */
        return errf(err, "DNS server '%s': an IPv6 zone index ('%%...') cannot be used", s);
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL)
            return errf(err, "DNS server '%s': missing ']' after the IPv6 address", s);
        n = (size_t)(close - s - 1);
        memcpy(addr, s + 1, n);
        addr[n] = '\0';
        if (close[1] == ':')
            port = close + 2;
        else if (close[1] != '\0')
            return errf(err, "DNS server '%s': unexpected text after ']'", s);
        if (uv_inet_pton(AF_INET6, addr, out->addr) != 0)
            return errf(err, "DNS server '%s': not an IPv6 address in the brackets", s);
        out->family = AF_INET6;
    } else {
        const char *colon = strchr(s, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            /* two colons or more: a bare IPv6 address, without a port */
            memcpy(addr, s, n + 1);
            if (uv_inet_pton(AF_INET6, addr, out->addr) != 0)
                return errf(err,
                            "DNS server '%s': not an IP address (write an IPv6 address "
                            "with a port as [ADDR]:PORT)",
                            s);
            out->family = AF_INET6;
        } else {
            n = colon ? (size_t)(colon - s) : n;
            memcpy(addr, s, n);
            addr[n] = '\0';
            if (colon)
                port = colon + 1;
            if (uv_inet_pton(AF_INET, addr, out->addr) != 0)
                return errf(err,
                            "DNS server '%s': not an IP address (a name cannot be used: "
                            "finding it would need DNS)",
                            s);
            out->family = AF_INET;
        }
    }
    out->port = TT_DNS_DEFAULT_PORT;
    if (port != NULL && !parse_port(port, &out->port))
        return errf(err, "DNS server '%s': bad port '%s' (1 to 65535)", s, port);
    /* The canonical spelling, for messages: inet_ntop's, not the user's. */
    {
        char text[48];
        if (uv_inet_ntop(out->family, out->addr, text, sizeof text) != 0)
            return errf(err, "DNS server '%s': not an IP address", s);
        if (out->family == AF_INET6)
            snprintf(out->display, sizeof out->display, "[%s]:%u", text, (unsigned)out->port);
        else
            snprintf(out->display, sizeof out->display, "%s:%u", text, (unsigned)out->port);
    }
    return 0;
}

bool tt_hostaddr_is_localhost(const char *host)
{
    static const char name[] = "localhost";
    const size_t nl = sizeof name - 1;
    size_t n = strlen(host);

    if (n > 0 && host[n - 1] == '.')
        n--; /* "localhost." is the same name, fully qualified */
    /* Host-name characters only: "::1%.localhost" is an IPv6 address with a zone, not a name */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!isalnum(c) && c != '-' && c != '_' && c != '.')
            return false;
    }
    if (n < nl || strncasecmp(host + n - nl, name, nl) != 0)
        return false;
    if (n == nl)
        return true;
    /* "x.localhost": a dot before, and a label before the dot */
    return n >= nl + 2 && host[n - nl - 1] == '.' && host[n - nl - 2] != '.';
}

size_t tt_hostaddr_fixed(const char *host, uint16_t port, union tt_sockaddr *out, size_t max)
{
    if (max == 0)
        return 0;
    memset(out, 0, sizeof *out);
    if (uv_ip4_addr(host, port, &out->in) == 0)
        return 1;
    memset(out, 0, sizeof *out);
    if (strchr(host, ':') != NULL && uv_ip6_addr(host, port, &out->in6) == 0)
        return 1;
    if (!tt_hostaddr_is_localhost(host))
        return 0;
    memset(out, 0, sizeof *out);
    uv_ip4_addr("127.0.0.1", port, &out[0].in);
    if (max == 1)
        return 1;
    memset(&out[1], 0, sizeof out[1]);
    uv_ip6_addr("::1", port, &out[1].in6);
    return 2;
}

enum tt_resolve_mode tt_hostaddr_pick_mode(bool have_dns, bool have_resolv_conf,
                                           bool system_resolver)
{
    if (have_dns)
        return TT_RESOLVE_DNS;
    if (!have_resolv_conf)
        return TT_RESOLVE_HOSTS;
    return system_resolver ? TT_RESOLVE_SYSTEM : TT_RESOLVE_FILES_DNS;
}

const char *tt_hostaddr_mode_name(enum tt_resolve_mode m)
{
    switch (m) {
    case TT_RESOLVE_SYSTEM:
        return "system";
    case TT_RESOLVE_DNS:
        return "dns";
    case TT_RESOLVE_FILES_DNS:
        return "files+dns";
    case TT_RESOLVE_HOSTS:
        return "hosts";
    }
    return "?";
}
