/* relaytext.c - checks WELCOME's text and cleans the relay's free text (relaytext.h) before the
 * agent prints or logs it. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tether_err.h"
#include "agent/relaytext.h"

/* Printable ASCII without the space: what a ready line may carry as one field. */
static bool word(const struct tt_str *s)
{
    for (size_t i = 0; i < s->len; i++)
        if (s->p[i] <= 0x20 || s->p[i] >= 0x7f)
            return false;
    return true;
}

static bool starts_ci(const struct tt_str *s, const char *prefix)
{
    size_t n = strlen(prefix);
    return s->len >= n && strncasecmp((const char *)s->p, prefix, n) == 0;
}

int tt_relaytext_check_welcome(const struct tt_welcome *m, char *why, size_t whylen)
{
    if (m->label.len == 0 || m->label.len > TT_MAX_LABEL) {
        snprintf(why, whylen, "label of %zu bytes", m->label.len);
        return TETHER_ERR_PROTO;
    }
    for (size_t i = 0; i < m->label.len; i++) {
        uint8_t c = m->label.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-')) {
            snprintf(why, whylen, "label holds a byte that is not a letter, a digit or '-'");
            return TETHER_ERR_PROTO;
        }
    }
    for (size_t i = 0; i < m->nservices && i < TT_MAX_SERVICES; i++) {
        const struct tt_str *name = &m->services[i].name, *addr = &m->services[i].address;
        if (!word(name)) {
            snprintf(why, whylen, "name of service %zu holds a space or a control character", i);
            return TETHER_ERR_PROTO;
        }
        if (!word(addr)) {
            snprintf(why, whylen,
                     "address of service %zu holds a space, a control character or a non-ASCII "
                     "byte",
                     i);
            return TETHER_ERR_PROTO;
        }
        /* a TCP service has a public port and the host to reach it at, or neither: port 0
         * and an empty address say that the relay keeps it private (docs/PROTOCOL.md 4.2) */
        if (m->services[i].kind == TT_SERVICE_TCP &&
            (m->services[i].port == 0) != (addr->len == 0)) {
            snprintf(why, whylen,
                     "TCP service %zu has %s: a port and an address, or neither (private)", i,
                     addr->len == 0 ? "a port but no address" : "an address but no port");
            return TETHER_ERR_PROTO;
        }
        if (m->services[i].kind == TT_SERVICE_HTTP && addr->len > 0 &&
            !starts_ci(addr, "http://") && !starts_ci(addr, "https://")) {
            snprintf(why, whylen, "address of HTTP service %zu is not an http:// or https:// URL",
                     i);
            return TETHER_ERR_PROTO;
        }
    }
    return 0;
}

char *tt_relaytext_clean(char *out, size_t outlen, const void *s, size_t n)
{
    const uint8_t *p = s;
    size_t k = n < outlen - 1 ? n : outlen - 1;
    for (size_t i = 0; i < k; i++)
        out[i] = (p[i] < 0x20 || p[i] > 0x7e) ? '?' : (char)p[i];
    out[k] = '\0';
    return out;
}
