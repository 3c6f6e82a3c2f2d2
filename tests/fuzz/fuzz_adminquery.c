/* fuzz_adminquery.c - libFuzzer target for the admin listener's query string
 * (src/relay/admin/adminquery.c: GET /api/devices?limit=&after=&online=&q= and the dashboard's) and
 * for the dashboard's session cookie lookup (src/relay/admin/adminsession.c). Input: the bytes of a
 * query string, as an attacker sends them after '?', also read as a Cookie header value. A
 * query that parses must keep its bounds (limit 1..1000, q lower case and short), match without
 * reading past its strings, and survive the round trip through tt_adminquery_format: what the
 * dashboard writes into its links parses back to the same query. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/admin/adminquery.h"
#include "relay/admin/adminsession.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct tt_adminsession_set *s;
    char err[TT_ERRLEN], out[1024];
    struct tt_adminquery q, back;
    /* exact-size copy so that ASan sees any read past the end */
    char *in = malloc(size ? size : 1);
    if (!in)
        abort();
    memcpy(in, data, size);
    if (tt_adminquery_parse(in, size, &q, err) == 0) {
        if (q.limit < 1 || q.limit > TT_ADMINQUERY_LIMIT_MAX || q.qlen != strlen(q.q) ||
            q.qlen > TT_ADMINQUERY_Q_MAX || strlen(q.after) > TT_MAX_NAME)
            abort();
        for (size_t i = 0; i < q.qlen; i++)
            if (q.q[i] >= 'A' && q.q[i] <= 'Z')
                abort();
        (void)tt_adminquery_match(&q, q.after, q.q, true);
        (void)tt_adminquery_match(&q, "", NULL, false);
        (void)tt_adminquery_after(&q, q.q);
        int n = tt_adminquery_format(&q, q.after, out, sizeof(out));
        if (n < 0 || (size_t)n != strlen(out))
            abort();
        if (n > 0) {
            if (out[0] != '?' || tt_adminquery_parse(out + 1, (size_t)n - 1, &back, err) != 0)
                abort();
            if (back.limit != q.limit || back.state != q.state || strcmp(back.q, q.q) != 0 ||
                strcmp(back.after, q.after) != 0)
                abort();
        }
    } else if (!err[0]) {
        abort();
    }
    if (!s) {
        s = malloc(sizeof(*s));
        if (!s)
            abort();
        tt_adminsession_init(s);
        char v[TT_ADMINSESSION_VALUE_LEN + 1];
        if (tt_adminsession_create(s, 0, 1000, v) != 0)
            abort();
    }
    const uint8_t *vals[1] = {(const uint8_t *)in}, *got = NULL;
    size_t lens[1] = {size}, vlen = 0;
    /* the session's value is random: an input cannot name it */
    if (tt_adminsession_from_cookies(s, vals, lens, 1, 0, &got, &vlen) >= 0)
        abort();
    free(in);
    return 0;
}
