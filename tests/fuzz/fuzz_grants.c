/* fuzz_grants.c - libFuzzer target for what the grant store parses (src/relay/access/grants.c): the
 * admin API's POST /api/grants body (tt_grants_parse_request) and the grant records the nodes of
 * a cluster read from Redis (tt_grants_record_parse). Input: a selector byte (even: a request,
 * odd: a record under a fixed id), then the bytes. A request that parses has a user and patterns
 * that pass the checks and a ttl within the bounds, and makes a grant; a record that parses
 * writes back to a record that parses to the same grant. Nothing may read past the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "relay/access/grants.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct tt_grants *store;

static void same(const struct tt_grant *a, const struct tt_grant *b)
{
    if (strcmp(a->id, b->id) != 0 || strcmp(a->user, b->user) != 0 || a->created != b->created ||
        a->expires != b->expires || memcmp(a->hash, b->hash, 32) != 0 ||
        a->npatterns != b->npatterns)
        abort();
    for (size_t i = 0; i < a->npatterns; i++)
        if (strcmp(a->patterns[i], b->patterns[i]) != 0)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[TT_ERRLEN];
    if (size == 0)
        return 0;
    if (!store) {
        tt_log_level = TT_LOG_ERROR; /* a line per grant made would be all the fuzzer does */
        if (!(store = tt_grants_new()))
            abort();
    }
    /* an exact-size copy so that ASan sees any read past the end */
    size_t n = size - 1;
    char *in = malloc(n ? n : 1);
    if (!in)
        abort();
    memcpy(in, data + 1, n);
    if (data[0] % 2 == 0) {
        static struct tt_grants_request rq;
        if (tt_grants_parse_request(in, n, &rq, err) == 0) {
            char pe[TT_ERRLEN], id[TT_GRANT_ID_LEN + 1], tok[TT_GRANT_TOKEN_LEN + 1];
            int64_t exp;
            if (tt_grants_check_user(rq.user, pe) != 0 || rq.n == 0 ||
                rq.n > TT_GRANTS_MAX_PATTERNS || tt_grants_check_ttl(rq.ttl_ms, pe) != 0)
                abort();
            for (size_t i = 0; i < rq.n; i++)
                if (rq.p[i] != rq.patterns[i] || tt_pattern_check(rq.p[i], pe) != 0)
                    abort();
            if (tt_grants_create(store, rq.user, rq.p, rq.n, rq.ttl_ms, 1700000000000LL, id, tok,
                                 &exp, pe) != 0 ||
                tt_grants_delete(store, id, 1700000000000LL) != 0)
                abort();
        } else if (memchr(err, '\0', TT_ERRLEN) == NULL) {
            abort();
        }
    } else {
        const char *id = "0123456789abcdef0123456789abcdef";
        struct tt_grant *gr = tt_grants_record_parse(id, in, n);
        if (gr) {
            char *rec = tt_grants_record(gr);
            struct tt_grant *back = rec ? tt_grants_record_parse(id, rec, strlen(rec)) : NULL;
            if (!back)
                abort();
            same(gr, back);
            free(back);
            free(rec);
            free(gr);
        }
    }
    free(in);
    return 0;
}
