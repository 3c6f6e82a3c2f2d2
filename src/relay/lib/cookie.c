/* cookie.c - the relay's session cookie in Cookie and Set-Cookie headers (cookie.h). */
#include <string.h>
#include <strings.h>
#include "relay/lib/cookie.h"

static bool blank(uint8_t c)
{
    return c == ' ' || c == '\t';
}

bool tt_cookie_next(const uint8_t *v, size_t len, size_t *pos, struct tt_cookie_pair *out)
{
    size_t s = *pos;
    if (s >= len)
        return false;
    const uint8_t *semi = memchr(v + s, ';', len - s);
    size_t e = semi ? (size_t)(semi - v) : len;
    *pos = semi ? e + 1 : len;
    while (s < e && blank(v[s]))
        s++;
    while (e > s && blank(v[e - 1]))
        e--;
    const uint8_t *eq = s < e ? memchr(v + s, '=', e - s) : NULL;
    if (!eq) {
        out->name = v + s;
        out->namelen = 0;
        out->value = v + s;
        out->valuelen = e - s;
        return true;
    }
    size_t ne = (size_t)(eq - v), vs = ne + 1;
    while (ne > s && blank(v[ne - 1]))
        ne--;
    while (vs < e && blank(v[vs]))
        vs++;
    out->name = v + s;
    out->namelen = ne - s;
    out->value = v + vs;
    out->valuelen = e - vs;
    return true;
}

/* s is a string literal */
#define IS(name, len, s)                                                                           \
    ((len) == sizeof(s) - 1 && strncasecmp((const char *)(name), s, sizeof(s) - 1) == 0)

bool tt_cookie_is_ours(const uint8_t *name, size_t len)
{
    return IS(name, len, "tether_session") || IS(name, len, "__host-tether_session") ||
           IS(name, len, "__secure-tether_session");
}

/* Cheap first look: can v hold the name at all ("tether_session" in any case)? */
static bool may_hold(const uint8_t *v, size_t len)
{
    static const char word[] = "tether_session";
    const size_t wl = sizeof(word) - 1;
    for (size_t i = 0; i + wl <= len; i++)
        if ((v[i] | 0x20) == 't' && strncasecmp((const char *)v + i, word, wl) == 0)
            return true;
    return false;
}

size_t tt_cookie_strip(const uint8_t *v, size_t len, uint8_t *out, bool *removed)
{
    *removed = false;
    if (!may_hold(v, len)) {
        memcpy(out, v, len);
        return len;
    }
    size_t n = 0, pos = 0;
    while (pos < len) {
        size_t start = pos;
        struct tt_cookie_pair p;
        tt_cookie_next(v, len, &pos, &p);
        if (tt_cookie_is_ours(p.name, p.namelen)) {
            *removed = true;
            continue;
        }
        /* the pair as it came, with the ';' after it */
        memcpy(out + n, v + start, pos - start);
        n += pos - start;
    }
    if (!*removed)
        return n;
    size_t b = 0;
    while (b < n && (blank(out[b]) || out[b] == ';'))
        b++;
    while (n > b && (blank(out[n - 1]) || out[n - 1] == ';'))
        n--;
    memmove(out, out + b, n - b);
    return n - b;
}

enum { SCAN_LEAD = 0, SCAN_NAME = 1, SCAN_DONE = 2 };
#define SCAN_OVERFLOW 0xff

void tt_cookie_scan_init(struct tt_cookie_scan *s)
{
    memset(s, 0, sizeof(*s));
}

static void scan_name_end(struct tt_cookie_scan *s)
{
    s->ours = s->len != SCAN_OVERFLOW && tt_cookie_is_ours((const uint8_t *)s->name, s->len);
    s->state = SCAN_DONE;
}

void tt_cookie_scan_feed(struct tt_cookie_scan *s, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n && s->state != SCAN_DONE; i++) {
        uint8_t c = p[i];
        if (s->state == SCAN_LEAD) {
            if (blank(c))
                continue;
            s->state = SCAN_NAME;
        }
        if (c == '=') {
            if (s->len == 0 && !s->restarted) {
                /* "=NAME=VALUE": a nameless cookie, which browsers send back as NAME=VALUE */
                s->restarted = true;
                s->state = SCAN_LEAD;
                continue;
            }
            scan_name_end(s);
        } else if (c == ';') {
            s->ours = false; /* no '=': a value without a name */
            s->state = SCAN_DONE;
        } else if (blank(c)) {
            if (s->blanks < 0xff)
                s->blanks++;
        } else if (s->len != SCAN_OVERFLOW) {
            size_t need = (size_t)s->len + s->blanks + 1;
            if (need > sizeof(s->name)) {
                s->len = SCAN_OVERFLOW;
                continue;
            }
            memset(s->name + s->len, ' ', s->blanks);
            s->len = (uint8_t)(s->len + s->blanks);
            s->blanks = 0;
            s->name[s->len++] = (char)c;
        }
    }
}

bool tt_cookie_scan_decided(const struct tt_cookie_scan *s)
{
    return s->state == SCAN_DONE;
}

bool tt_cookie_scan_end(struct tt_cookie_scan *s)
{
    if (s->state != SCAN_DONE) {
        s->ours = false; /* no '=' at all: a value without a name */
        s->state = SCAN_DONE;
    }
    return s->ours;
}

bool tt_cookie_set_is_ours(const uint8_t *v, size_t len)
{
    struct tt_cookie_scan s;
    tt_cookie_scan_init(&s);
    tt_cookie_scan_feed(&s, v, len);
    return tt_cookie_scan_end(&s);
}
