/* route.c - Host header normalization and device-address matching (route.h). */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <http_parser.h>
#include "relay/http/route.h"

static bool host_char(int c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_';
}

int tt_route_host_normalize(const uint8_t *v, size_t len, char out[TT_HOSTLEN])
{
    size_t end = len; /* end of the host part */
    if (len == 0)
        return -1;
    if (v[0] == '[') {
        const uint8_t *rb = memchr(v, ']', len);
        if (!rb)
            return -1;
        end = (size_t)(rb - v) + 1;
        for (size_t i = 1; i + 1 < end; i++)
            if (!isxdigit(v[i]) && v[i] != ':' && v[i] != '.')
                return -1;
    } else {
        const uint8_t *colon = memchr(v, ':', len);
        if (colon)
            end = (size_t)(colon - v);
        for (size_t i = 0; i < end; i++)
            if (!host_char(v[i]))
                return -1;
    }
    if (end < len) {
        /* ":PORT" */
        if (v[end] != ':' || end + 1 == len || len - end - 1 > 5)
            return -1;
        for (size_t i = end + 1; i < len; i++)
            if (!isdigit(v[i]))
                return -1;
    }
    if (end > 0 && v[end - 1] == '.' && v[0] != '[')
        end--;
    if (end == 0 || end >= TT_HOSTLEN)
        return -1;
    for (size_t i = 0; i < end; i++)
        out[i] = (char)tolower(v[i]);
    out[end] = '\0';
    return 0;
}

int tt_route_target_matches(const uint8_t *target, size_t len, const char *host)
{
    /* origin-form and asterisk-form; an authority-form target (CONNECT) has no scheme */
    if (len == 0 || target[0] == '/' || (len == 1 && target[0] == '*'))
        return 1;
    const uint8_t *colon = memchr(target, ':', len);
    if (colon == NULL || (size_t)(target + len - colon) < 3 || colon[1] != '/' || colon[2] != '/')
        return 1;
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url((const char *)target, len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_HOST)) || (u.field_set & (1 << UF_USERINFO)))
        return 0;
    /* the host as a Host value would carry it: an IPv6 literal in brackets */
    uint8_t authority[TT_HOSTLEN + 2];
    const uint8_t *h = target + u.field_data[UF_HOST].off;
    size_t hlen = u.field_data[UF_HOST].len, n = 0;
    if (hlen == 0 || hlen + 2 > sizeof(authority))
        return 0;
    bool v6 = memchr(h, ':', hlen) != NULL;
    if (v6)
        authority[n++] = '[';
    memcpy(authority + n, h, hlen);
    n += hlen;
    if (v6)
        authority[n++] = ']';
    char norm[TT_HOSTLEN];
    if (tt_route_host_normalize(authority, n, norm) != 0)
        return 0;
    return strcmp(norm, host) == 0;
}

static bool label_ok(const char *s, size_t n)
{
    if (n == 0 || n > TT_MAX_LABEL)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]))
            return false;
    return true;
}

enum tt_route_kind tt_route_classify(const char *host, const char *domain,
                                     char label[TT_MAX_LABEL + 1], char svc[TT_ROUTE_SVCLEN + 1])
{
    size_t hl = strlen(host), dl = strlen(domain);
    label[0] = svc[0] = '\0';
    if (hl == 0)
        return TT_ROUTE_BAD;
    if (hl <= dl + 1 || host[hl - dl - 1] != '.' || strcmp(host + hl - dl, domain) != 0)
        return TT_ROUTE_OTHER;
    size_t pl = hl - dl - 1; /* the prefix: host[0..pl) */
    if (memchr(host, '.', pl))
        return TT_ROUTE_OTHER;
    /* SERVICE--LABEL: labels have no '-', so the last "--" splits them */
    const char *sep = NULL;
    for (size_t i = 0; i + 1 < pl; i++)
        if (host[i] == '-' && host[i + 1] == '-')
            sep = host + i;
    const char *lab = sep ? sep + 2 : host;
    size_t labn = pl - (size_t)(lab - host);
    if (!label_ok(lab, labn))
        return TT_ROUTE_OTHER;
    if (sep) {
        size_t sn = (size_t)(sep - host);
        if (sn == 0 || sn > TT_ROUTE_SVCLEN)
            return TT_ROUTE_OTHER;
        memcpy(svc, host, sn);
        svc[sn] = '\0';
    }
    memcpy(label, lab, labn);
    label[labn] = '\0';
    return TT_ROUTE_DEVICE;
}

void tt_route_service_dnsname(const uint8_t *name, size_t len, char out[TT_ROUTE_SVCLEN + 1])
{
    size_t n = 0;
    for (size_t i = 0; i < len && n < TT_ROUTE_SVCLEN; i++) {
        int c = tolower(name[i]);
        if (!isalnum(c) || c > 127)
            c = '-';
        if (c == '-' && (n == 0 || out[n - 1] == '-'))
            continue;
        out[n++] = (char)c;
    }
    while (n > 0 && out[n - 1] == '-')
        n--;
    if (n == 0) {
        strcpy(out, "svc");
        return;
    }
    out[n] = '\0';
}
