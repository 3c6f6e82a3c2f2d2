/* form.c - urlencoded form bodies (form.h). */
#include <string.h>
#include <strings.h>
#include "tether_err.h"
#include "relay/lib/form.h"

#define NAME_MAX_LEN 64

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes in[0..len) into out[0..cap). Returns the decoded length, -1 when malformed (strict
 * only: a bad escape or a decoded control byte), or -2 when it does not fit. Lenient: a bad
 * escape is kept as it is, and so are control bytes. */
static long decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap, bool strict)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = in[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = i + 2 < len ? hexval(in[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(in[i + 2]) : -1;
            if (hi >= 0 && lo >= 0) {
                c = (uint8_t)(hi << 4 | lo);
                i += 2;
            } else if (strict) {
                return -1;
            }
        }
        if (strict && (c < 0x20 || c == 0x7f))
            return -1;
        if (n >= cap)
            return -2;
        out[n++] = c;
    }
    return (long)n;
}

/* The next pair of body from *pos: its name and value (undecoded). False at the end. Empty
 * pairs ("a=1&&b=2") are skipped, as the URL standard does. */
static bool next_pair(const uint8_t *body, size_t len, size_t *pos, const uint8_t **name,
                      size_t *namelen, const uint8_t **value, size_t *valuelen)
{
    while (*pos < len) {
        size_t s = *pos;
        const uint8_t *amp = memchr(body + s, '&', len - s);
        size_t e = amp ? (size_t)(amp - body) : len;
        *pos = amp ? e + 1 : len;
        if (e == s)
            continue;
        const uint8_t *eq = memchr(body + s, '=', e - s);
        size_t ne = eq ? (size_t)(eq - body) : e;
        *name = body + s;
        *namelen = ne - s;
        *value = eq ? eq + 1 : body + e;
        *valuelen = eq ? e - ne - 1 : 0;
        return true;
    }
    return false;
}

/* True when the undecoded name n[0..nl) decodes (leniently) to name. */
static bool name_is(const uint8_t *n, size_t nl, const char *name)
{
    uint8_t dec[NAME_MAX_LEN];
    long dl = decode(n, nl, dec, sizeof(dec), false);
    size_t want = strlen(name);
    return dl >= 0 && (size_t)dl == want && memcmp(dec, name, want) == 0;
}

int tt_form_get(const uint8_t *body, size_t len, const char *name, char *out, size_t outcap,
                size_t *outlen)
{
    const uint8_t *n, *v = NULL, *pv;
    size_t nl, vl = 0, pvl, pos = 0;
    unsigned seen = 0;
    if (outcap > 0)
        out[0] = '\0';
    *outlen = 0;
    while (next_pair(body, len, &pos, &n, &nl, &pv, &pvl)) {
        if (!name_is(n, nl, name))
            continue;
        if (++seen > 1)
            return TETHER_ERR_INVAL; /* which one? neither */
        v = pv;
        vl = pvl;
    }
    if (seen == 0)
        return TETHER_ERR_NOT_FOUND;
    if (outcap == 0)
        return TETHER_ERR_TOO_LARGE;
    long dl = decode(v, vl, (uint8_t *)out, outcap - 1, true);
    if (dl < 0) {
        out[0] = '\0';
        return dl == -1 ? TETHER_ERR_INVAL : TETHER_ERR_TOO_LARGE;
    }
    out[dl] = '\0';
    *outlen = (size_t)dl;
    return 0;
}

unsigned tt_form_count(const uint8_t *body, size_t len, const char *name)
{
    const uint8_t *n, *v;
    size_t nl, vl, pos = 0;
    unsigned count = 0;
    while (next_pair(body, len, &pos, &n, &nl, &v, &vl))
        if (name_is(n, nl, name))
            count++;
    return count;
}

bool tt_form_content_type(const uint8_t *v, size_t len)
{
    static const char want[] = "application/x-www-form-urlencoded";
    const size_t wl = sizeof(want) - 1;
    size_t s = 0;
    while (s < len && (v[s] == ' ' || v[s] == '\t'))
        s++;
    if (len - s < wl || strncasecmp((const char *)v + s, want, wl) != 0)
        return false;
    s += wl;
    while (s < len && (v[s] == ' ' || v[s] == '\t'))
        s++;
    return s == len || v[s] == ';';
}
