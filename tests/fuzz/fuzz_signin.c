/* fuzz_signin.c - libFuzzer target for the parsers of browser sign-in (issue 10): urlencoded
 * form fields (src/relay/lib/form.c), Cookie headers and the stripping of the relay's cookie, the
 * scan of a device's Set-Cookie (src/relay/lib/cookie.c), and the pages' escaping and redirects
 * (src/relay/access/signinpage.c). Input: a split byte, then the bytes (used as a form body, a
 * Cookie value, a Set-Cookie value, a name for a page, a Host and a path). Invariants: no read past
 * the input (exact-size copies for ASan); a decoded field fits, is NUL-terminated and holds no
 * control byte; a stripped Cookie value is never longer, holds no pair of the relay's cookie,
 * is the input itself when nothing was removed, and stripping it again changes nothing; the
 * Set-Cookie scan gives the same verdict whatever the cut; an escaped name holds no markup
 * character; a redirect's Location holds no CR, LF or space and stays on the host. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/lib/cookie.h"
#include "relay/lib/form.h"
#include "relay/access/signinpage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void form(const uint8_t *b, size_t n)
{
    static const char *const names[] = {"user", "secret", "", "a", "%"};
    char out[300];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t len = 1234;
        int rc = tt_form_get(b, n, names[i], out, sizeof(out), &len);
        if (rc == 0) {
            if (len >= sizeof(out) || out[len] != '\0' || strlen(out) != len)
                abort();
            for (size_t k = 0; k < len; k++)
                if ((unsigned char)out[k] < 0x20 || out[k] == 0x7f)
                    abort();
            if (tt_form_count(b, n, names[i]) != 1)
                abort();
        } else if (out[0] != '\0' || len != 0) {
            abort();
        }
    }
    (void)tt_form_content_type(b, n);
}

static void cookies(const uint8_t *v, size_t n)
{
    uint8_t *out = malloc(n ? n : 1), *again = malloc(n ? n : 1);
    if (!out || !again)
        abort();
    bool removed, removed2;
    size_t got = tt_cookie_strip(v, n, out, &removed);
    if (got > n || (!removed && (got != n || memcmp(out, v, n) != 0)))
        abort();
    size_t pos = 0;
    struct tt_cookie_pair p;
    while (tt_cookie_next(out, got, &pos, &p)) {
        if (p.name + p.namelen > out + got || p.value + p.valuelen > out + got)
            abort();
        if (tt_cookie_is_ours(p.name, p.namelen))
            abort(); /* the relay's cookie is gone */
    }
    size_t got2 = tt_cookie_strip(out, got, again, &removed2);
    if (removed2 || got2 != got || memcmp(again, out, got) != 0)
        abort();
    free(out);
    free(again);
}

static void set_cookie(const uint8_t *v, size_t n, size_t split)
{
    bool whole = tt_cookie_set_is_ours(v, n);
    struct tt_cookie_scan s;
    tt_cookie_scan_init(&s);
    for (size_t off = 0; off < n;) {
        size_t k = split ? split : 1;
        if (k > n - off)
            k = n - off;
        tt_cookie_scan_feed(&s, v + off, k);
        off += k;
    }
    if (tt_cookie_scan_end(&s) != whole)
        abort();
}

static void pages(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    static char out[TT_SIGNINPAGE_MAX + 20000];
    char *name = malloc(an + 1);
    if (!name)
        abort();
    memcpy(name, a, an);
    name[an] = '\0';
    char esc[6 * 64 + 1];
    size_t el = tt_signinpage_escape(name, 64, esc, sizeof(esc));
    if (el >= sizeof(esc) || strlen(esc) != el || strpbrk(esc, "<>\"'"))
        abort();
    struct tt_signinpage p = {(enum tt_signinpage_kind)(an % TT_SIGNINPAGE_COUNT), name, name, NULL,
                              bn & 1};
    if (tt_signinpage_render(out, sizeof(out), &p) <= 0)
        abort();
    free(name);
    int n = tt_signinpage_redirect(out, sizeof(out), 303, an & 1, a, an, b, bn, NULL);
    if (n > 0) {
        const char *loc = strstr(out, "\r\nLocation: ");
        if (!loc)
            abort();
        loc += 12;
        const char *end = strstr(loc, "\r\n");
        if (!end)
            abort();
        const char *after = strstr(loc, "://") + 3;
        const char *slash = memchr(after, '/', (size_t)(end - after));
        if (!slash || slash[1] == '/' || slash[1] == '\\')
            abort(); /* the path begins after the host and never names another one */
        for (const char *c = loc; c < end; c++)
            if ((unsigned char)*c <= 0x20 || *c == 0x7f)
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t split = data[0] % (size > 1 ? size - 1 : 1);
    data++;
    size--;
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        abort();
    memcpy(copy, data, size);
    form(copy, size);
    cookies(copy, size);
    set_cookie(copy, size, split);
    pages(copy, split, copy + split, size - split);
    free(copy);
    return 0;
}
