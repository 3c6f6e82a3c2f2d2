/* cookie.h - the relay's own session cookie in the headers that browsers and devices send: its
 * values in a request's Cookie headers (a browser may send several, and a device page on a
 * sibling host may have planted one for the parent domain), the Cookie header rewritten without
 * it before a request goes to a device, and a device's Set-Cookie that names it (refused: a
 * device never sets the relay's cookie). Cookie headers are split as RFC 6265 5.4 has browsers
 * write them: pairs separated by ';', each trimmed of SP and HTAB, a name up to the first '='
 * (a pair without '=' has an empty name). Pure functions over the caller's buffers. */
#ifndef TT_COOKIE_H
#define TT_COOKIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The session cookie's name over plain http, and over https: the __Host- prefix has browsers
 * refuse it unless it is Secure, host-only (no Domain) and for Path=/, so that no other host of
 * the domain (a sibling device page) can set one that the relay would read. */
#define TT_COOKIE_NAME "tether_session"
#define TT_COOKIE_NAME_HOST "__Host-tether_session"

/* One pair of a Cookie header; pointers into the header's value. */
struct tt_cookie_pair {
    const uint8_t *name, *value;
    size_t namelen, valuelen;
};

/* The pair of the Cookie value v[0..len) that begins at *pos (0 for the first), into *out, and
 * *pos past it. Returns false once *pos is at the end (nothing written). Empty pairs are
 * returned too (empty name and value). */
bool tt_cookie_next(const uint8_t *v, size_t len, size_t *pos, struct tt_cookie_pair *out);

/* True when name[0..len) is the relay's cookie under any spelling a device might read as it:
 * "tether_session" in any letter case, with or without a "__Host-" or "__Secure-" prefix. */
bool tt_cookie_is_ours(const uint8_t *name, size_t len);

/* Writes the Cookie value v[0..len) without the relay's cookies (tt_cookie_is_ours) into
 * out[0..len): the other pairs byte for byte with the separators that followed them, leading
 * and trailing blanks and ';' trimmed when a pair was removed. Returns the length written (at
 * most len; 0: nothing is left, drop the header) and sets *removed when a pair was removed (out
 * then differs from v). out may not overlap v. */
size_t tt_cookie_strip(const uint8_t *v, size_t len, uint8_t *out, bool *removed);

/* Incremental check of a Set-Cookie header value from a device (it may come in pieces): does it
 * set a cookie that browsers would send back with a name tt_cookie_is_ours accepts? The name
 * is what precedes the first '=' (blanks trimmed); a value set without a name ("=NAME=...",
 * which browsers send back as "NAME=...") is read as a name too. */
struct tt_cookie_scan {
    uint8_t state;  /* internal */
    uint8_t len;    /* bytes of name[] */
    uint8_t blanks; /* blanks seen after the last name byte, not stored yet */
    bool restarted; /* a nameless value is read again as NAME=... */
    bool ours;      /* the verdict, once state is done */
    char name[32];  /* the name so far (longer names cannot be ours) */
};

void tt_cookie_scan_init(struct tt_cookie_scan *s);
void tt_cookie_scan_feed(struct tt_cookie_scan *s, const uint8_t *p, size_t n);
/* True once the verdict is known (the name has ended): s->ours says it. */
bool tt_cookie_scan_decided(const struct tt_cookie_scan *s);
/* The value ended: true when it names the relay's cookie. */
bool tt_cookie_scan_end(struct tt_cookie_scan *s);

/* The same for a whole value at once. */
bool tt_cookie_set_is_ours(const uint8_t *v, size_t len);

#endif
