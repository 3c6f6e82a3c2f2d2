/* addrkey.c - per-address limit keys (addrkey.h): IPv4 as it is, IPv6 cut to its /64. */
#include <string.h>
#include <uv.h>
#include "tether_err.h"
#include "relay/lib/addrkey.h"

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* a[16] is an IPv6 address: write its key. */
static int key6(const uint8_t a[16], char out[TT_ADDRKEY_LEN])
{
    char text[UV_IF_NAMESIZE + 64];
    if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0)
        return uv_inet_ntop(AF_INET, a + 12, out, TT_ADDRKEY_LEN) == 0 ? 0 : TETHER_ERR_INVAL;
    uint8_t prefix[16] = {0};
    memcpy(prefix, a, 8);
    if (uv_inet_ntop(AF_INET6, prefix, text, sizeof(text)) != 0 ||
        strlen(text) + 4 >= TT_ADDRKEY_LEN)
        return TETHER_ERR_INVAL;
    memcpy(out, text, strlen(text));
    memcpy(out + strlen(text), "/64", 4);
    return 0;
}

int tt_addrkey_from_sockaddr(const struct sockaddr *sa, char out[TT_ADDRKEY_LEN])
{
    out[0] = '\0';
    int rc = TETHER_ERR_INVAL;
    if (sa != NULL && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        rc = uv_inet_ntop(AF_INET, &in->sin_addr, out, TT_ADDRKEY_LEN) == 0 ? 0 : TETHER_ERR_INVAL;
    } else if (sa != NULL && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        rc = key6((const uint8_t *)&in6->sin6_addr, out);
    }
    if (rc != 0)
        out[0] = '\0';
    return rc;
}

int tt_addrkey_from_ip(const char *ip, char out[TT_ADDRKEY_LEN])
{
    uint8_t a[16];
    int rc = TETHER_ERR_INVAL;
    out[0] = '\0';
    if (ip == NULL)
        return rc;
    if (uv_inet_pton(AF_INET, ip, a) == 0)
        rc = uv_inet_ntop(AF_INET, a, out, TT_ADDRKEY_LEN) == 0 ? 0 : TETHER_ERR_INVAL;
    else if (uv_inet_pton(AF_INET6, ip, a) == 0)
        rc = key6(a, out);
    if (rc != 0)
        out[0] = '\0';
    return rc;
}
