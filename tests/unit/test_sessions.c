/* test_sessions.c - unit tests for src/relay/access/sessions.c (one node, no Redis): a session's
 * cookie value (64 hex digits, random) and its key (the SHA-256 of the id, never the id), bound to
 * its host and principal, expiry (when met and by the sweep), sign-out, the caps per principal and
 * in all (the oldest evicted), and cookie values of every wrong shape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/sha.h>

#include "tether_err.h"
#include "relay/access/sessions.h"

#define T0 1700000000000LL

static struct tt_principal user(const char *name)
{
    struct tt_principal p;
    memset(&p, 0, sizeof(p));
    p.kind = TT_PRINCIPAL_USER;
    snprintf(p.user, sizeof(p.user), "%s", name);
    return p;
}

static int find(struct tt_sessions *s, const char *cookie, const char *host, int64_t now,
                struct tt_principal *who)
{
    char key[TT_SESSION_KEY_LEN + 1];
    return tt_sessions_find(s, (const uint8_t *)cookie, strlen(cookie), host, now, who, key);
}

static void test_create_find(void **state)
{
    (void)state;
    struct tt_sessions s;
    tt_sessions_init(&s, NULL, 60000, NULL);
    struct tt_principal alice = user("alice"), who;
    char c1[TT_SESSION_COOKIE_LEN + 1], k1[TT_SESSION_KEY_LEN + 1];
    char c2[TT_SESSION_COOKIE_LEN + 1], k2[TT_SESSION_KEY_LEN + 1];
    assert_int_equal(tt_sessions_create(&s, "abc.localhost", &alice, T0, c1, k1), 0);
    assert_int_equal(tt_sessions_create(&s, "abc.localhost", &alice, T0, c2, k2), 0);
    assert_int_equal(strlen(c1), 64);
    assert_int_equal(strspn(c1, "0123456789abcdef"), 64);
    assert_string_not_equal(c1, c2);
    /* the key is the SHA-256 of the id, not the id */
    uint8_t id[32], h[32];
    for (int i = 0; i < 32; i++)
        sscanf(c1 + 2 * i, "%2hhx", &id[i]);
    SHA256(id, 32, h);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    assert_string_equal(k1, hex);
    assert_string_not_equal(k1, c1);
    assert_int_equal(tt_sessions_count(&s), 2);
    assert_int_equal(find(&s, c1, "abc.localhost", T0 + 1, &who), 0);
    assert_string_equal(who.user, "alice");
    assert_int_equal(who.kind, TT_PRINCIPAL_USER);
    /* another host: not this session's */
    assert_int_equal(find(&s, c1, "abd.localhost", T0 + 1, &who), TETHER_ERR_NOT_FOUND);
    assert_int_equal(find(&s, c1, "abc.localhost.", T0 + 1, &who), TETHER_ERR_NOT_FOUND);
    /* wrong shapes */
    char upper[65];
    snprintf(upper, sizeof(upper), "%s", c1);
    for (int i = 0; i < 64; i++)
        if (upper[i] >= 'a')
            upper[i] = (char)(upper[i] - 32);
    static const char *const bad[] = {"", "0", "zz", "tether"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(find(&s, bad[i], "abc.localhost", T0, &who), TETHER_ERR_NOT_FOUND);
    if (strcmp(upper, c1) != 0)
        assert_int_equal(find(&s, upper, "abc.localhost", T0, &who), TETHER_ERR_NOT_FOUND);
    char longer[70];
    snprintf(longer, sizeof(longer), "%s0", c1);
    assert_int_equal(find(&s, longer, "abc.localhost", T0, &who), TETHER_ERR_NOT_FOUND);
    char scratch[TT_SESSION_KEY_LEN + 1];
    assert_int_equal(tt_sessions_key_of((const uint8_t *)longer, 64, scratch), 0);
    assert_string_equal(scratch, k1);
    assert_int_equal(tt_sessions_key_of((const uint8_t *)longer, 63, scratch), TETHER_ERR_INVAL);
    assert_int_equal(tt_sessions_key_of((const uint8_t *)"x", 1, scratch), TETHER_ERR_INVAL);
    /* a key (the hash) given as a cookie is not a session */
    assert_int_equal(find(&s, k1, "abc.localhost", T0, &who), TETHER_ERR_NOT_FOUND);
    /* sign-out */
    tt_sessions_delete(&s, k1);
    tt_sessions_delete(&s, k1);
    assert_int_equal(find(&s, c1, "abc.localhost", T0 + 2, &who), TETHER_ERR_NOT_FOUND);
    assert_int_equal(s.signed_out, 1);
    assert_true(tt_sessions_alive(&s, k2, T0 + 2));
    assert_false(tt_sessions_alive(&s, k1, T0 + 2));
    tt_sessions_free(&s);
    assert_int_equal(tt_sessions_count(&s), 0);
}

static void test_expiry(void **state)
{
    (void)state;
    struct tt_sessions s;
    tt_sessions_init(&s, NULL, 1000, NULL);
    struct tt_principal alice = user("alice"), who;
    char c[5][TT_SESSION_COOKIE_LEN + 1], k[5][TT_SESSION_KEY_LEN + 1];
    for (int i = 0; i < 5; i++)
        assert_int_equal(tt_sessions_create(&s, "h.localhost", &alice, T0 + i * 100, c[i], k[i]),
                         0);
    assert_int_equal(find(&s, c[0], "h.localhost", T0 + 999, &who), 0);
    assert_int_equal(find(&s, c[0], "h.localhost", T0 + 1000, &who), TETHER_ERR_NOT_FOUND);
    assert_false(tt_sessions_alive(&s, k[1], T0 + 1100));
    assert_true(tt_sessions_alive(&s, k[2], T0 + 1100));
    /* the sweep drops the rest as they expire, the oldest first */
    assert_int_equal(tt_sessions_sweep(&s, T0 + 1250, false), 1);
    assert_int_equal(tt_sessions_count(&s), 2);
    assert_int_equal(tt_sessions_sweep(&s, T0 + 5000, true), 2);
    assert_int_equal(tt_sessions_count(&s), 0);
    assert_int_equal(s.expired, 5);
    tt_sessions_free(&s);
}

static void test_caps(void **state)
{
    (void)state;
    struct tt_sessions s;
    tt_sessions_init(&s, NULL, 60000, NULL);
    s.per_principal = 3;
    s.max = 5;
    struct tt_principal alice = user("alice"), bob = user("bob"), who;
    struct tt_principal grant;
    memset(&grant, 0, sizeof(grant));
    grant.kind = TT_PRINCIPAL_GRANT;
    snprintf(grant.user, sizeof(grant.user), "alice"); /* a grant of alice's: its own count */
    snprintf(grant.grant, sizeof(grant.grant), "00112233445566778899aabbccddeeff");
    char ca[5][65], ka[5][65], cb[3][65], kb[3][65], cg[65], kg[65];
    for (int i = 0; i < 4; i++)
        assert_int_equal(tt_sessions_create(&s, "h.localhost", &alice, T0 + i, ca[i], ka[i]), 0);
    /* alice's fourth pushed her first out */
    assert_int_equal(tt_sessions_count(&s), 3);
    assert_int_equal(s.evicted_principal, 1);
    assert_int_equal(find(&s, ca[0], "h.localhost", T0 + 10, &who), TETHER_ERR_NOT_FOUND);
    assert_int_equal(find(&s, ca[1], "h.localhost", T0 + 10, &who), 0);
    assert_int_equal(tt_sessions_create(&s, "h.localhost", &grant, T0 + 5, cg, kg), 0);
    assert_int_equal(find(&s, cg, "h.localhost", T0 + 10, &who), 0);
    assert_int_equal(who.kind, TT_PRINCIPAL_GRANT);
    assert_string_equal(who.grant, grant.grant);
    /* five in all: bob's push out the oldest of everyone's */
    for (int i = 0; i < 3; i++)
        assert_int_equal(tt_sessions_create(&s, "h.localhost", &bob, T0 + 6 + i, cb[i], kb[i]), 0);
    assert_int_equal(tt_sessions_count(&s), 5);
    assert_int_equal(s.evicted_total, 2);
    assert_int_equal(find(&s, ca[1], "h.localhost", T0 + 10, &who), TETHER_ERR_NOT_FOUND);
    assert_int_equal(find(&s, ca[2], "h.localhost", T0 + 10, &who), TETHER_ERR_NOT_FOUND);
    assert_int_equal(find(&s, ca[3], "h.localhost", T0 + 10, &who), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(find(&s, cb[i], "h.localhost", T0 + 10, &who), 0);
    /* a cap of one per principal: each new one replaces the last */
    s.per_principal = 1;
    assert_int_equal(tt_sessions_create(&s, "h.localhost", &alice, T0 + 20, ca[4], ka[4]), 0);
    assert_int_equal(find(&s, ca[3], "h.localhost", T0 + 21, &who), TETHER_ERR_NOT_FOUND);
    assert_int_equal(find(&s, ca[4], "h.localhost", T0 + 21, &who), 0);
    tt_sessions_free(&s);
}

/* Without the asynchronous connection (one node; a cluster before its loop runs) the jobs'
 * calls complete at once: no job, no callback, the same result as the synchronous calls. */
static void never_called(void *ud, int rc)
{
    (void)ud;
    (void)rc;
    fail_msg("a job's callback was called without a job");
}

static void test_jobs_without_redis(void **state)
{
    (void)state;
    struct tt_sessions s;
    tt_sessions_init(&s, NULL, 60000, NULL);
    assert_false(tt_sessions_async(&s));
    struct tt_principal alice = user("alice"), who;
    char c1[TT_SESSION_COOKIE_LEN + 1], k1[TT_SESSION_KEY_LEN + 1], key[TT_SESSION_KEY_LEN + 1];
    struct tt_sessions_job *job = (struct tt_sessions_job *)&s; /* set to NULL by every call */
    assert_int_equal(
        tt_sessions_create_async(&s, "abc.localhost", &alice, T0, c1, k1, never_called, NULL, &job),
        0);
    assert_null(job);
    assert_int_equal(strlen(c1), 64);
    /* an unknown cookie is no session here (nothing to read) */
    assert_int_equal(tt_sessions_find_or_unknown(&s, (const uint8_t *)c1, 64, "abc.localhost",
                                                 T0 + 1, &who, key),
                     0);
    assert_string_equal(key, k1);
    char other[65];
    memset(other, 'a', 64);
    other[64] = '\0';
    assert_int_equal(tt_sessions_find_or_unknown(&s, (const uint8_t *)other, 64, "abc.localhost",
                                                 T0 + 1, &who, key),
                     TETHER_ERR_NOT_FOUND);
    char keys[1][TT_SESSION_KEY_LEN + 1];
    memcpy(keys[0], k1, sizeof(keys[0]));
    assert_int_equal(tt_sessions_fetch(&s, (const char(*)[TT_SESSION_KEY_LEN + 1]) keys, 1,
                                       never_called, NULL, &job),
                     TETHER_ERR_IO);
    assert_null(job);
    assert_int_equal(tt_sessions_delete_async(&s, (const char(*)[TT_SESSION_KEY_LEN + 1]) keys, 1,
                                              never_called, NULL, &job),
                     0);
    assert_null(job);
    assert_int_equal(find(&s, c1, "abc.localhost", T0 + 2, &who), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_sessions_count(&s), 0);
    tt_sessions_job_cancel(NULL);
    tt_sessions_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_find),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_jobs_without_redis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
