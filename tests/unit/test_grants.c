/* test_grants.c - unit tests for src/relay/access/grants.c (in memory): a grant made and its token
 * (form, shown once, only its hash kept), what it allows and until when, every refusal of a
 * create, revocation, expiry by the tick, the listing (sorted, expired left out), the cap on live
 * grants and the counters. The Redis side is covered end to end (tests/e2e/test_private_grants.py,
 * a real redis-server). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/sha.h>

#include "tether_err.h"
#include "relay/access/grants.h"

#define T0 1700000000000LL /* unix ms, a whole second */

static struct tt_grants *g;

static int setup(void **state)
{
    (void)state;
    g = tt_grants_new();
    return g ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tt_grants_free(g);
    g = NULL;
    return 0;
}

static int make(const char *user, const char *const *p, size_t n, uint64_t ttl_ms, int64_t now,
                char id[TT_GRANT_ID_LEN + 1], char tok[TT_GRANT_TOKEN_LEN + 1], int64_t *exp)
{
    char err[TT_ERRLEN];
    return tt_grants_create(g, user, p, n, ttl_ms, now, id, tok, exp, err);
}

static int check(const char *tok, int64_t now, char id[TT_GRANT_ID_LEN + 1],
                 char user[TT_MAX_NAME + 1])
{
    return tt_grants_check_token(g, (const uint8_t *)tok, strlen(tok), now, id, user);
}

static void test_create_and_use(void **state)
{
    (void)state;
    const char *p[] = {"plant-7-*/ssh", "cam-?/http"};
    char id[TT_GRANT_ID_LEN + 1], tok[TT_GRANT_TOKEN_LEN + 1], id2[TT_GRANT_ID_LEN + 1];
    char user[TT_MAX_NAME + 1];
    int64_t exp;
    assert_int_equal(make("tech-jane", p, 2, 15 * 60 * 1000, T0 + 250, id, tok, &exp), 0);
    /* the forms: 32 hex digits; the prefix and 43 base64url characters */
    assert_int_equal(strlen(id), TT_GRANT_ID_LEN);
    assert_int_equal(strspn(id, "0123456789abcdef"), TT_GRANT_ID_LEN);
    assert_int_equal(strlen(tok), TT_GRANT_TOKEN_LEN);
    assert_memory_equal(tok, "ttg_", 4);
    assert_true(tt_grants_is_token((const uint8_t *)tok, strlen(tok)));
    assert_false(tt_grants_is_token((const uint8_t *)tok, strlen(tok) - 1));
    assert_false(tt_grants_is_token((const uint8_t *)"ttg_!", 5));
    /* the expiry is a whole second, never earlier than asked */
    assert_int_equal(exp, T0 + 15 * 60 * 1000 + 1000);
    assert_int_equal(tt_grants_count(g), 1);

    /* the store keeps the token's SHA-256, not the token */
    const struct tt_grant *gr = tt_grants_find(g, id, T0);
    assert_non_null(gr);
    uint8_t h[32];
    SHA256((const uint8_t *)tok, strlen(tok), h);
    assert_memory_equal(gr->hash, h, 32);
    assert_string_equal(gr->user, "tech-jane");
    assert_int_equal(gr->npatterns, 2);
    assert_string_equal(gr->patterns[1], "cam-?/http");
    assert_int_equal(gr->created, T0 + 250);

    assert_int_equal(check(tok, T0 + 1000, id2, user), 0);
    assert_string_equal(id2, id);
    assert_string_equal(user, "tech-jane");
    assert_true(tt_grants_allows(g, id, "plant-7-gw", "ssh", T0 + 1000));
    assert_true(tt_grants_allows(g, id, "cam-3", "http", T0 + 1000));
    assert_false(tt_grants_allows(g, id, "plant-8-gw", "ssh", T0 + 1000));
    assert_false(tt_grants_allows(g, id, "plant-7-gw", "http", T0 + 1000));
    assert_false(tt_grants_allows(g, "0123456789abcdef0123456789abcdef", "cam-3", "http", T0));
    assert_false(tt_grants_allows(g, NULL, "cam-3", "http", T0));

    /* wrong tokens: a changed character, a cut one, nothing; id and user come back empty */
    char bad[TT_GRANT_TOKEN_LEN + 1];
    memcpy(bad, tok, sizeof(bad));
    bad[10] = bad[10] == 'A' ? 'B' : 'A';
    strcpy(id2, "x");
    strcpy(user, "x");
    assert_int_equal(check(bad, T0, id2, user), TETHER_ERR_AUTH);
    assert_string_equal(id2, "");
    assert_string_equal(user, "");
    bad[10] = tok[10];
    bad[TT_GRANT_TOKEN_LEN - 1] = '\0';
    assert_int_equal(check(bad, T0, id2, user), TETHER_ERR_AUTH);
    assert_int_equal(check("", T0, id2, user), TETHER_ERR_AUTH);
    assert_int_equal(tt_grants_check_token(g, NULL, 0, T0, id2, user), TETHER_ERR_AUTH);

    /* at its expiry it is gone: no token, no access, not found */
    assert_int_equal(check(tok, exp, id2, user), TETHER_ERR_AUTH);
    assert_false(tt_grants_allows(g, id, "plant-7-gw", "ssh", exp));
    assert_null(tt_grants_find(g, id, exp));
    assert_int_equal(check(tok, exp - 1, id2, user), 0);
}

static void test_refusals(void **state)
{
    (void)state;
    char id[TT_GRANT_ID_LEN + 1], tok[TT_GRANT_TOKEN_LEN + 1], err[TT_ERRLEN];
    int64_t exp;
    const char *ok[] = {"a/b"};
    const char *bad_pat[] = {"a/b", "no-slash"};
    const char *many[TT_GRANTS_MAX_PATTERNS + 1];
    for (size_t i = 0; i <= TT_GRANTS_MAX_PATTERNS; i++)
        many[i] = "dev-*/svc";
    const struct {
        const char *user;
        const char *const *p;
        size_t n;
        uint64_t ttl;
        const char *want;
    } cases[] = {
        {"", ok, 1, 60000, "user"},
        {"with space", ok, 1, 60000, "user"},
        {"tab\there", ok, 1, 60000, "user"},
        {"\xc3\xa9t\xc3\xa9", ok, 1, 60000, "user"},
        {"x12345678901234567890123456789012345678901234567890123456789012345", ok, 1, 60000,
         "user"},
        {"u", ok, 0, 60000, "grants"},
        {"u", many, TT_GRANTS_MAX_PATTERNS + 1, 60000, "grants"},
        {"u", bad_pat, 2, 60000, "no-slash"},
        {"u", ok, 1, 999, "ttl"},
        {"u", ok, 1, TT_GRANTS_TTL_MAX_MS + 1, "ttl"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        assert_int_equal(tt_grants_create(g, cases[i].user, cases[i].p, cases[i].n, cases[i].ttl,
                                          T0, id, tok, &exp, err),
                         TETHER_ERR_INVAL);
        assert_non_null(strstr(err, cases[i].want));
        assert_string_equal(tok, "");
        assert_string_equal(id, "");
    }
    assert_int_equal(tt_grants_count(g), 0);
    /* the bounds themselves are fine, and so are 64 patterns and a 64-byte user */
    assert_int_equal(make("u", ok, 1, TT_GRANTS_TTL_MIN_MS, T0, id, tok, &exp), 0);
    assert_int_equal(make("u", ok, 1, TT_GRANTS_TTL_MAX_MS, T0, id, tok, &exp), 0);
    assert_int_equal(make("x123456789012345678901234567890123456789012345678901234567890123", many,
                          TT_GRANTS_MAX_PATTERNS, 60000, T0, id, tok, &exp),
                     0);
    assert_int_equal(tt_grants_count(g), 3);
}

static void test_delete_and_tick(void **state)
{
    (void)state;
    const char *p[] = {"*/ssh"};
    char a[TT_GRANT_ID_LEN + 1], b[TT_GRANT_ID_LEN + 1], c[TT_GRANT_ID_LEN + 1];
    char ta[TT_GRANT_TOKEN_LEN + 1], tb[TT_GRANT_TOKEN_LEN + 1], tc[TT_GRANT_TOKEN_LEN + 1];
    char id[TT_GRANT_ID_LEN + 1], user[TT_MAX_NAME + 1];
    int64_t ea, eb, ec;
    assert_int_equal(make("a", p, 1, 60000, T0, a, ta, &ea), 0);
    assert_int_equal(make("b", p, 1, 120000, T0, b, tb, &eb), 0);
    assert_int_equal(make("c", p, 1, 3600000, T0, c, tc, &ec), 0);
    assert_string_not_equal(a, b);
    assert_string_not_equal(ta, tb);

    /* a deleted grant is gone at once; deleting it again, or an unknown id, is NOT_FOUND */
    assert_int_equal(tt_grants_delete(g, b, T0 + 1), 0);
    assert_int_equal(check(tb, T0 + 1, id, user), TETHER_ERR_AUTH);
    assert_false(tt_grants_allows(g, b, "x", "ssh", T0 + 1));
    assert_int_equal(tt_grants_delete(g, b, T0 + 1), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_grants_delete(g, "nope", T0 + 1), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_grants_delete(g, NULL, T0 + 1), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_grants_delete(g, "0123456789ABCDEF0123456789ABCDEF", T0 + 1),
                     TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_grants_count(g), 2);

    /* the tick forgets expired grants and says how many went (deletes are the caller's) */
    assert_int_equal(tt_grants_tick(g, T0 + 2), 0);
    assert_int_equal(tt_grants_tick(g, ea - 1), 0);
    assert_int_equal(tt_grants_count(g), 2);
    assert_int_equal(tt_grants_tick(g, ea), 1);
    assert_int_equal(tt_grants_count(g), 1);
    assert_int_equal(tt_grants_tick(g, ea + 1), 0);
    /* an expired grant cannot be deleted (it is no more) */
    assert_int_equal(tt_grants_delete(g, a, ea + 1), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_grants_delete(g, c, ec), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_grants_count(g), 0);
    /* c expired inside the delete: the next tick reports it (its connections must go) */
    assert_int_equal(tt_grants_tick(g, ec + 1), 1);
    assert_int_equal(tt_grants_tick(g, ec + 2), 0);

    struct tt_grants_stats st;
    tt_grants_get_stats(g, &st);
    assert_int_equal(st.created, 3);
    assert_int_equal(st.deleted, 1);
    assert_int_equal(st.expired, 2);
    assert_int_equal(st.syncs + st.full + st.failures, 0);
    /* without Redis a refresh does nothing */
    assert_int_equal(tt_grants_refresh(g, T0), 0);
}

static void test_list(void **state)
{
    (void)state;
    const char *p[] = {"*/http"};
    char ids[3][TT_GRANT_ID_LEN + 1], tok[TT_GRANT_TOKEN_LEN + 1];
    int64_t exp[3];
    assert_int_equal(make("late", p, 1, 60000, T0 + 20, ids[0], tok, &exp[0]), 0);
    assert_int_equal(make("early", p, 1, 5000, T0 + 10, ids[1], tok, &exp[1]), 0);
    assert_int_equal(make("mid", p, 1, 60000, T0 + 15, ids[2], tok, &exp[2]), 0);
    const struct tt_grant **v;
    size_t n;
    assert_int_equal(tt_grants_list(g, T0 + 30, &v, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(v[0]->user, "early");
    assert_string_equal(v[1]->user, "mid");
    assert_string_equal(v[2]->user, "late");
    free(v);
    /* expired ones are left out even before the tick forgets them */
    assert_int_equal(tt_grants_list(g, exp[1], &v, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0]->user, "mid");
    free(v);
    tt_grants_free(g);
    g = tt_grants_new();
    assert_int_equal(tt_grants_list(g, T0, &v, &n), 0);
    assert_int_equal(n, 0);
    free(v);
}

/* TT_GRANTS_MAX live grants: the next is refused (CAPACITY) until one expires or goes. */
static void test_cap(void **state)
{
    (void)state;
    const char *p[] = {"*/*"};
    char id[TT_GRANT_ID_LEN + 1], tok[TT_GRANT_TOKEN_LEN + 1], err[TT_ERRLEN];
    char first[TT_GRANT_ID_LEN + 1];
    int64_t exp, first_exp = 0;
    for (int i = 0; i < TT_GRANTS_MAX; i++) {
        assert_int_equal(make("u", p, 1, i == 0 ? 1000 : 60000, T0, id, tok, &exp), 0);
        if (i == 0) {
            strcpy(first, id);
            first_exp = exp;
        }
    }
    assert_int_equal(tt_grants_count(g), TT_GRANTS_MAX);
    assert_int_equal(tt_grants_create(g, "u", p, 1, 60000, T0, id, tok, &exp, err),
                     TETHER_ERR_CAPACITY);
    assert_non_null(strstr(err, "10000 grants live already"));
    assert_string_equal(tok, "");
    /* the first one expires: room for one more, without a tick */
    char last[TT_GRANT_ID_LEN + 1];
    assert_int_equal(make("u", p, 1, 60000, first_exp, last, tok, &exp), 0);
    assert_null(tt_grants_find(g, first, first_exp));
    assert_int_equal(tt_grants_create(g, "u", p, 1, 60000, first_exp, id, tok, &exp, err),
                     TETHER_ERR_CAPACITY);
    assert_int_equal(tt_grants_delete(g, last, first_exp), 0);
    assert_int_equal(make("u", p, 1, 60000, first_exp, id, tok, &exp), 0);
    assert_int_equal(tt_grants_count(g), TT_GRANTS_MAX);
}

/* tt_grants_create_async with no callback (its caller could not keep its request): without
 * Redis the grant is made now; in cluster mode it is refused (out of memory), nothing made and
 * Redis never asked (the stand-in connection below is never used). */
static void test_create_async_without_callback(void **state)
{
    (void)state;
    const char *p[] = {"cam-?/http"};
    char id[TT_GRANT_ID_LEN + 1], tok[TT_GRANT_TOKEN_LEN + 1], err[TT_ERRLEN];
    int64_t exp = -1;
    struct tt_grants_job *job = (struct tt_grants_job *)&exp;
    assert_int_equal(tt_grants_create_async(g, "tech-jane", p, 1, 60000, T0, id, tok, &exp, err,
                                            NULL, NULL, &job),
                     0);
    assert_null(job);
    assert_int_equal(strlen(id), TT_GRANT_ID_LEN);
    assert_int_equal(strlen(tok), TT_GRANT_TOKEN_LEN);
    assert_int_equal(exp, T0 + 60000);
    assert_int_equal(tt_grants_count(g), 1);

    char standin; /* cluster mode's connection: refused before it would be used */
    tt_grants_use_redis(g, (struct tt_redisconn *)(void *)&standin);
    exp = -1;
    job = (struct tt_grants_job *)&exp;
    assert_int_equal(tt_grants_create_async(g, "tech-jane", p, 1, 60000, T0, id, tok, &exp, err,
                                            NULL, NULL, &job),
                     TETHER_ERR_NOMEM);
    assert_null(job);
    assert_string_equal(err, "out of memory");
    assert_string_equal(id, "");
    assert_string_equal(tok, "");
    assert_int_equal(exp, 0);
    tt_grants_use_redis(g, NULL);
    assert_int_equal(tt_grants_count(g), 1);
}

static void test_checks(void **state)
{
    (void)state;
    char err[TT_ERRLEN];
    assert_int_equal(tt_grants_check_user("tech-jane@example.com", err), 0);
    assert_int_equal(tt_grants_check_user(NULL, err), -1);
    assert_int_equal(tt_grants_check_user("a\x7f", err), -1);
    assert_int_equal(tt_grants_check_ttl(1000, err), 0);
    assert_int_equal(tt_grants_check_ttl(0, err), -1);
    assert_int_equal(tt_grants_check_ttl(TT_GRANTS_TTL_DEFAULT_MS, err), 0);
    tt_grants_free(NULL);
}

static void test_parse_request(void **state)
{
    (void)state;
    char err[TT_ERRLEN];
    struct tt_grants_request rq;
    const char *ok = "{\"user\":\"tech-jane\",\"grants\":[\"plant-7-*/ssh\",\"cam-?/http\"],"
                     "\"ttl\":\"15m\"}";
    assert_int_equal(tt_grants_parse_request(ok, strlen(ok), &rq, err), 0);
    assert_string_equal(rq.user, "tech-jane");
    assert_int_equal(rq.n, 2);
    assert_string_equal(rq.p[0], "plant-7-*/ssh");
    assert_ptr_equal(rq.p[1], rq.patterns[1]);
    assert_int_equal(rq.ttl_ms, 15 * 60 * 1000);
    const char *dflt = "{\"grants\":[\"a/b\"],\"user\":\"u\"}";
    assert_int_equal(tt_grants_parse_request(dflt, strlen(dflt), &rq, err), 0);
    assert_int_equal(rq.ttl_ms, TT_GRANTS_TTL_DEFAULT_MS);
    const char *secs = "{\"user\":\"u\",\"grants\":[\"a/b\"],\"ttl\":90}";
    assert_int_equal(tt_grants_parse_request(secs, strlen(secs), &rq, err), 0);
    assert_int_equal(rq.ttl_ms, 90000);
    const struct {
        const char *body, *want;
    } bad[] = {
        {"", "not JSON"},
        {"{", "not JSON"},
        {"[]", "JSON object"},
        {"\"x\"", "not JSON"},
        {"{\"user\":\"u\",\"user\":\"v\",\"grants\":[\"a/b\"]}", "not JSON"},
        {"{\"grants\":[\"a/b\"]}", "user: a string"},
        {"{\"user\":null,\"grants\":[\"a/b\"]}", "user: a string"},
        {"{\"user\":\"a b\",\"grants\":[\"a/b\"]}", "user:"},
        {"{\"user\":\"u\"}", "grants:"},
        {"{\"user\":\"u\",\"grants\":{}}", "grants:"},
        {"{\"user\":\"u\",\"grants\":[]}", "grants:"},
        {"{\"user\":\"u\",\"grants\":[null]}", "each pattern is a string"},
        {"{\"user\":\"u\",\"grants\":[\"ab\"]}", "ab"},
        {"{\"user\":\"u\",\"grants\":[\"a/b\"],\"ttl\":\"\"}", "ttl:"},
        {"{\"user\":\"u\",\"grants\":[\"a/b\"],\"ttl\":\"10x\"}", "ttl:"},
        {"{\"user\":\"u\",\"grants\":[\"a/b\"],\"ttl\":0}", "ttl:"},
        {"{\"user\":\"u\",\"grants\":[\"a/b\"],\"ttl\":2592001}", "ttl:"},
        {"{\"user\":\"u\",\"grants\":[\"a/b\"],\"ttl\":1.5}", "ttl:"},
        {"{\"user\":\"u\",\"grants\":[\"a/b\"],\"ttl\":\"500ms\"}", "ttl: from 1s"},
        {"{\"user\":\"u\",\"grants\":[\"a/b\"],\"ttl\":\"31d\"}", "ttl: from 1s"},
        {"{\"user\":\"u\",\"grants\":[\"a/b\"],\"extra\\n\":1}", "unknown field \"extra\\n\""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(tt_grants_parse_request(bad[i].body, strlen(bad[i].body), &rq, err), -1);
        if (!strstr(err, bad[i].want))
            fail_msg("%s: error %s, want %s", bad[i].body, err, bad[i].want);
    }
    /* a body with a NUL in it is not JSON */
    assert_int_equal(tt_grants_parse_request("{}\0{}", 5, &rq, err), -1);
}

static void test_record_round_trip(void **state)
{
    (void)state;
    const char *p[] = {"plant-7-*/ssh", "cam-?/http"};
    char id[TT_GRANT_ID_LEN + 1], tok[TT_GRANT_TOKEN_LEN + 1];
    int64_t exp;
    assert_int_equal(make("tech-jane", p, 2, 60000, T0, id, tok, &exp), 0);
    const struct tt_grant *gr = tt_grants_find(g, id, T0);
    char *rec = tt_grants_record(gr);
    assert_non_null(rec);
    assert_null(strstr(rec, tok));
    assert_null(strstr(rec, tok + 4));
    struct tt_grant *back = tt_grants_record_parse(id, rec, strlen(rec));
    assert_non_null(back);
    assert_string_equal(back->id, id);
    assert_string_equal(back->user, "tech-jane");
    assert_int_equal(back->created, T0);
    assert_int_equal(back->expires, exp);
    assert_memory_equal(back->hash, gr->hash, 32);
    assert_int_equal(back->npatterns, 2);
    assert_string_equal(back->patterns[1], "cam-?/http");
    free(back);
    /* a bad id, or a record cut short, is refused */
    assert_null(tt_grants_record_parse("nope", rec, strlen(rec)));
    assert_null(tt_grants_record_parse(id, rec, strlen(rec) - 1));
    free(rec);
    const char *bad[] = {
        "{\"user\":\"u\",\"grants\":[\"a/b\"],\"created\":1,\"expires\":2,\"hash\":\"00\"}",
        "{\"user\":\"u v\",\"grants\":[\"a/b\"],\"created\":1,\"expires\":2,\"hash\":"
        "\"0000000000000000000000000000000000000000000000000000000000000000\"}",
        "{\"user\":\"u\",\"grants\":[],\"created\":1,\"expires\":2,\"hash\":"
        "\"0000000000000000000000000000000000000000000000000000000000000000\"}",
        "{\"user\":\"u\",\"grants\":[\"a/b\"],\"created\":\"1\",\"expires\":2,\"hash\":"
        "\"0000000000000000000000000000000000000000000000000000000000000000\"}",
        "{\"user\":\"u\",\"grants\":[\"ab\"],\"created\":1,\"expires\":2,\"hash\":"
        "\"0000000000000000000000000000000000000000000000000000000000000000\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(tt_grants_record_parse(id, bad[i], strlen(bad[i])));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_and_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_and_tick, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_async_without_callback, setup, teardown),
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_parse_request),
        cmocka_unit_test_setup_teardown(test_record_round_trip, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
