/* fuzz_webhook.c - libFuzzer target for the parsers of src/relay/admin/webhookbody.c: a receiver's
 * answer (tt_webhook_resp_feed, over http-parser) and a --webhook URL (tt_webhook_parse_url).
 * Input: a split byte, then the receiver's bytes. They are fed once whole and once cut at the
 * split (and byte by byte after it); both runs must agree on the status, which is 0, -1 or
 * 100-999; the same bytes as a NUL-free string are checked as a URL, whose fields must be
 * NUL-terminated and whose Host header must hold no CR, LF or space. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/admin/webhookbody.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int feed(const char *p, size_t n, size_t split, bool bytewise)
{
    struct tt_webhook_resp r;
    tt_webhook_resp_init(&r);
    int st = tt_webhook_resp_feed(&r, p, split, false);
    for (size_t i = split; st == 0 && i < n;) {
        size_t k = bytewise ? 1 : n - i;
        st = tt_webhook_resp_feed(&r, p + i, k, false);
        i += k;
    }
    if (st == 0)
        st = tt_webhook_resp_feed(&r, NULL, 0, true);
    if (st != -1 && (st < 100 || st > 999))
        abort();
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n = size - 1;
    char *p = malloc(n ? n : 1);
    if (!p)
        return 0;
    memcpy(p, data + 1, n);
    size_t split = n ? data[0] % (n + 1) : 0;
    int whole = feed(p, n, 0, false);
    int cut = feed(p, n, split, n < 4096);
    if (whole != cut)
        abort();
    char s[TT_WEBHOOK_URL_MAX + 64], err[TT_ERRLEN];
    size_t sl = n < sizeof(s) - 1 ? n : sizeof(s) - 1;
    memcpy(s, p, sl);
    s[sl] = '\0';
    struct tt_webhook_url u;
    if (tt_webhook_parse_url(s, &u, err) == 0) {
        if (!memchr(u.host, 0, sizeof(u.host)) || !memchr(u.path, 0, sizeof(u.path)) ||
            !memchr(u.hostport, 0, sizeof(u.hostport)) || u.path[0] != '/' || u.port == 0 ||
            strpbrk(u.hostport, "\r\n ") || strpbrk(u.path, "\r\n "))
            abort();
    } else if (!memchr(err, 0, sizeof(err))) {
        abort();
    }
    free(p);
    return 0;
}
