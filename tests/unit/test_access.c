/* test_access.c - unit tests for src/relay/access/access.c: decisions (public, users, grants),
 * revocation of tracked connections (a grant deleted, a grant expired through the tick, a user
 * removed or a grant withdrawn by a users-file reload, a revoke callback that closes another
 * connection), secret checks on a real loop (answers from a later turn), the per-address
 * throttle of failed secrets and grant tokens (burst, then refused unchecked; other addresses
 * unaffected; a success gives its count back) and the metrics text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "tether_err.h"
#include "relay/access/access.h"

#define T0 1700000000000LL

static uv_loop_t loop;
static struct tt_config cfg;
static struct tt_access acc;
static char dir[64], users[128];

static void write_users(const char *text)
{
    FILE *f = fopen(users, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    char err[TT_ERRLEN];
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/tt-test-access-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(users, sizeof(users), "%s/users", dir);
    write_users("alice pa55 plant-7-*/ssh\nbob s3cret cam-*/http plant-7-*/ssh\n");
    memset(&cfg, 0, sizeof(cfg));
    cfg.access = TT_ACCESS_PRIVATE;
    snprintf(cfg.public_patterns[0], sizeof(cfg.public_patterns[0]), "*/public");
    cfg.npublic = 1;
    snprintf(cfg.users_file, sizeof(cfg.users_file), "%s", users);
    if (uv_loop_init(&loop) != 0)
        return -1;
    if (tt_access_init(&acc, &loop, &cfg, err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tt_access_free(&acc);
    uv_run(&loop, UV_RUN_DEFAULT); /* the timer's close, checks still in the pool */
    assert_int_equal(uv_loop_close(&loop), 0);
    unlink(users);
    rmdir(dir);
    return 0;
}

/* A fake connection: counts its revocations. */
struct fake {
    struct tt_access_conn c;
    int revoked;
    struct fake *also; /* closed (untracked) by this one's revoke, or NULL */
};

static void on_revoke(struct tt_access_conn *c, void *ud)
{
    struct fake *f = ud;
    assert_false(c->tracked);
    f->revoked++;
    if (f->also)
        tt_access_untrack(&acc, &f->also->c);
}

static void track(struct fake *f, uint8_t kind, const char *user, const char *grant,
                  const char *device, const char *service)
{
    memset(f, 0, sizeof(*f));
    f->c.who.kind = kind;
    snprintf(f->c.who.user, sizeof(f->c.who.user), "%s", user);
    snprintf(f->c.who.grant, sizeof(f->c.who.grant), "%s", grant);
    snprintf(f->c.device, sizeof(f->c.device), "%s", device);
    snprintf(f->c.service, sizeof(f->c.service), "%s", service);
    f->c.revoke = on_revoke;
    f->c.ud = f;
    tt_access_track(&acc, &f->c);
}

static void grant(const char *user, const char *pattern, uint64_t ttl_ms, int64_t now,
                  char id[TT_GRANT_ID_LEN + 1], char tok[TT_GRANT_TOKEN_LEN + 1])
{
    char err[TT_ERRLEN];
    int64_t exp;
    const char *p[] = {pattern};
    assert_int_equal(tt_grants_create(acc.grants, user, p, 1, ttl_ms, now, id, tok, &exp, err), 0);
}

static void test_decisions(void **state)
{
    (void)state;
    struct tt_principal alice = {.kind = TT_PRINCIPAL_USER, .user = "alice"};
    struct tt_principal carol = {.kind = TT_PRINCIPAL_USER, .user = "carol"};
    char id[TT_GRANT_ID_LEN + 1], tok[TT_GRANT_TOKEN_LEN + 1];
    assert_true(tt_access_public(&acc, "anything", "public"));
    assert_false(tt_access_public(&acc, "anything", "http"));
    assert_true(tt_access_allows(&acc, NULL, "x", "public", T0));
    assert_false(tt_access_allows(&acc, NULL, "plant-7-gw", "ssh", T0));
    assert_true(tt_access_allows(&acc, &alice, "plant-7-gw", "ssh", T0));
    assert_false(tt_access_allows(&acc, &alice, "cam-1", "http", T0));
    assert_false(tt_access_allows(&acc, &carol, "plant-7-gw", "ssh", T0));
    grant("tech-jane", "cam-1/http", 60000, T0, id, tok);
    struct tt_principal who;
    assert_int_equal(tt_access_verify_token(&acc, (const uint8_t *)tok, strlen(tok), "192.0.2.7:1",
                                            T0 + 1, &who),
                     0);
    assert_int_equal(who.kind, TT_PRINCIPAL_GRANT);
    assert_string_equal(who.user, "tech-jane");
    assert_string_equal(who.grant, id);
    assert_true(tt_access_allows(&acc, &who, "cam-1", "http", T0 + 1));
    assert_false(tt_access_allows(&acc, &who, "cam-2", "http", T0 + 1));
    /* a grant's user is a label: a users-file user of that name gets nothing from it */
    struct tt_principal jane = {.kind = TT_PRINCIPAL_USER, .user = "tech-jane"};
    assert_false(tt_access_allows(&acc, &jane, "cam-1", "http", T0 + 1));
    assert_int_equal(acc.checks_ok, 1);
}

static void test_revoke_grant_deleted_and_expired(void **state)
{
    (void)state;
    char a[TT_GRANT_ID_LEN + 1], b[TT_GRANT_ID_LEN + 1], tok[TT_GRANT_TOKEN_LEN + 1];
    grant("tech-a", "plant-7-*/ssh", 600000, T0, a, tok);
    grant("tech-b", "cam-*/http", 2000, T0, b, tok);
    struct fake f1, f2, f3, f4, f5;
    track(&f1, TT_PRINCIPAL_GRANT, "tech-a", a, "plant-7-gw", "ssh");
    track(&f2, TT_PRINCIPAL_GRANT, "tech-a", a, "plant-7-hmi", "ssh");
    track(&f3, TT_PRINCIPAL_GRANT, "tech-b", b, "cam-1", "http");
    track(&f4, TT_PRINCIPAL_USER, "alice", "", "plant-7-gw", "ssh");
    track(&f5, TT_PRINCIPAL_NONE, "", "", "cam-1", "public");
    assert_int_equal(acc.nconns, 5);
    /* nothing changed: nobody goes */
    assert_int_equal(tt_access_recheck(&acc, T0 + 1), 0);
    assert_int_equal(tt_access_tick(&acc, T0 + 1), 0);
    /* grant a deleted: its two connections close at once, the others stay */
    assert_int_equal(tt_grants_delete(acc.grants, a, T0 + 2), 0);
    assert_int_equal(tt_access_recheck(&acc, T0 + 2), 2);
    assert_int_equal(f1.revoked + f2.revoked, 2);
    assert_int_equal(f3.revoked + f4.revoked + f5.revoked, 0);
    assert_int_equal(acc.nconns, 3);
    /* grant b expires: the tick after its expiry closes its connection */
    assert_int_equal(tt_access_tick(&acc, T0 + 1999), 0);
    assert_int_equal(f3.revoked, 0);
    assert_int_equal(tt_access_tick(&acc, T0 + 2000), 1);
    assert_int_equal(f3.revoked, 1);
    assert_int_equal(tt_grants_count(acc.grants), 0);
    assert_int_equal(acc.revoked, 3);
    assert_int_equal(f4.revoked + f5.revoked, 0);
    /* untracking twice, or an untracked connection, is harmless */
    tt_access_untrack(&acc, &f1.c);
    tt_access_untrack(&acc, &f4.c);
    tt_access_untrack(&acc, &f4.c);
    tt_access_untrack(&acc, &f5.c);
    assert_int_equal(acc.nconns, 0);
}

static void test_revoke_on_reload(void **state)
{
    (void)state;
    char err[TT_ERRLEN];
    struct fake fa, fb1, fb2, fc;
    track(&fa, TT_PRINCIPAL_USER, "alice", "", "plant-7-gw", "ssh");
    track(&fb1, TT_PRINCIPAL_USER, "bob", "", "cam-3", "http");
    track(&fb2, TT_PRINCIPAL_USER, "bob", "", "plant-7-gw", "ssh");
    track(&fc, TT_PRINCIPAL_USER, "bob", "", "cam-4", "public");
    /* alice removed, bob's ssh grant withdrawn */
    write_users("# alice left\nbob n3w-secret cam-*/http\n");
    assert_int_equal(tt_access_reload(&acc, T0, err), 0);
    assert_int_equal(fa.revoked, 1);
    assert_int_equal(fb2.revoked, 1);
    assert_int_equal(fb1.revoked + fc.revoked, 0);
    assert_int_equal(acc.nconns, 2);
    /* a bad file keeps the old users, and nobody is closed */
    write_users("bob\n");
    assert_int_equal(tt_access_reload(&acc, T0, err), -1);
    assert_non_null(strstr(err, ":1:"));
    assert_int_equal(fb1.revoked, 0);
    assert_int_equal(acc.nconns, 2);
    /* bob removed too */
    write_users("\n");
    assert_int_equal(tt_access_reload(&acc, T0, err), 0);
    assert_int_equal(fb1.revoked, 1);
    assert_int_equal(fc.revoked, 0); /* a public service stays reachable by anyone */
    tt_access_untrack(&acc, &fc.c);
}

/* A revoke callback may close (untrack) another tracked connection, also one the walk has not
 * reached yet. */
static void test_revoke_closes_another(void **state)
{
    (void)state;
    char a[TT_GRANT_ID_LEN + 1], tok[TT_GRANT_TOKEN_LEN + 1];
    grant("tech", "*/ssh", 600000, T0, a, tok);
    struct fake f[6];
    for (int i = 0; i < 6; i++)
        track(&f[i], TT_PRINCIPAL_GRANT, "tech", a, "gw", "ssh");
    /* the list is newest first: f[5] is walked first and takes f[4] (next) and f[0] with it */
    f[5].also = &f[4];
    f[3].also = &f[0];
    assert_int_equal(tt_grants_delete(acc.grants, a, T0), 0);
    assert_int_equal(tt_access_recheck(&acc, T0), 4);
    assert_int_equal(f[5].revoked + f[3].revoked + f[2].revoked + f[1].revoked, 4);
    assert_int_equal(f[4].revoked + f[0].revoked, 0);
    assert_int_equal(acc.nconns, 0);
}

static void test_token_throttle(void **state)
{
    (void)state;
    char id[TT_GRANT_ID_LEN + 1], tok[TT_GRANT_TOKEN_LEN + 1], bad[TT_GRANT_TOKEN_LEN + 1];
    struct tt_principal who;
    grant("tech", "*/ssh", 600000, T0, id, tok);
    memcpy(bad, tok, sizeof(bad));
    bad[20] = bad[20] == 'x' ? 'y' : 'x';
    for (int i = 0; i < TT_THROTTLE_BURST; i++)
        assert_int_equal(tt_access_verify_token(&acc, (const uint8_t *)bad, strlen(bad),
                                                "192.0.2.7:4000", T0, &who),
                         TETHER_ERR_AUTH);
    /* now refused unchecked, the right token too, from any port of that address */
    for (int i = 0; i < 5; i++)
        assert_int_equal(tt_access_verify_token(&acc, (const uint8_t *)tok, strlen(tok),
                                                "192.0.2.7:4001", T0, &who),
                         TETHER_ERR_THROTTLED);
    assert_int_equal(who.kind, TT_PRINCIPAL_NONE);
    /* another address is not affected; nor is a client without an address */
    assert_int_equal(
        tt_access_verify_token(&acc, (const uint8_t *)tok, strlen(tok), "192.0.2.8:1", T0, &who),
        0);
    assert_int_equal(tt_access_verify_token(&acc, (const uint8_t *)bad, strlen(bad), "", T0, &who),
                     TETHER_ERR_AUTH);
    assert_int_equal(acc.checks_failed, TT_THROTTLE_BURST + 1);
    assert_int_equal(acc.checks_throttled, 5);
    assert_int_equal(acc.checks_ok, 1);
    assert_int_equal(tt_throttle_addresses(&acc.thr), 1);

    char text[8192];
    size_t len = 0;
    assert_int_equal(tt_access_metrics(&acc, text, sizeof(text), &len), 0);
    assert_int_equal(len, strlen(text));
    assert_non_null(strstr(text, "tether_access_checks_total{result=\"ok\"} 1\n"));
    assert_non_null(strstr(text, "tether_access_checks_total{result=\"failed\"} 11\n"));
    assert_non_null(strstr(text, "tether_access_checks_total{result=\"throttled\"} 5\n"));
    assert_non_null(strstr(text, "tether_access_checks_total{result=\"busy\"} 0\n"));
    assert_non_null(strstr(text, "tether_access_grants 1\n"));
    assert_non_null(strstr(text, "tether_access_grants_max 10000\n"));
    assert_non_null(strstr(text, "tether_access_grants_total{event=\"created\"} 1\n"));
    assert_non_null(strstr(text, "tether_access_revoked_total 0\n"));
    assert_non_null(strstr(text, "tether_access_throttle_addresses 1\n"));
    assert_null(strstr(text, "tether_access_grants_reads_total")); /* no Redis */
    len = 0;
    assert_int_equal(tt_access_metrics(&acc, text, 100, &len), -1);
    assert_true(len < 100 && strlen(text) == len);
}

/* Answers of secret checks, in order. */
struct answers {
    int rc[64];
    char user[64][TT_MAX_NAME + 1];
    int n;
    bool in_call; /* set around tt_access_verify: an answer must never come from inside it */
};

static void on_answer(void *ud, int rc, const struct tt_principal *who)
{
    struct answers *a = ud;
    assert_false(a->in_call);
    assert_true(a->n < 64);
    a->rc[a->n] = rc;
    snprintf(a->user[a->n], sizeof(a->user[0]), "%s", who ? who->user : "");
    if (rc == 0)
        assert_int_equal(who->kind, TT_PRINCIPAL_USER);
    else
        assert_null(who);
    a->n++;
}

static int verify(struct answers *ans, const char *user, const char *secret, const char *client)
{
    ans->in_call = true;
    int rc = tt_access_verify(&acc, user, (const uint8_t *)secret, strlen(secret), client,
                              on_answer, ans, NULL);
    ans->in_call = false;
    return rc;
}

static void run_until(struct answers *ans, int n)
{
    for (int i = 0; i < 2000 && ans->n < n; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(ans->n, n);
}

static void test_secret_checks_and_throttle(void **state)
{
    (void)state;
    struct answers ans;
    memset(&ans, 0, sizeof(ans));
    /* right, wrong twice, and an unknown user from elsewhere (as slow as a hashed one) */
    assert_int_equal(verify(&ans, "alice", "pa55", "192.0.2.7:1"), 0);
    assert_int_equal(verify(&ans, "alice", "pa56", "192.0.2.7:1"), 0);
    assert_int_equal(verify(&ans, "alice", "nope", "192.0.2.7:1"), 0);
    assert_int_equal(verify(&ans, "mallory", "pa55", "192.0.2.20:1"), 0);
    assert_int_equal(ans.n, 0);
    run_until(&ans, 4);
    /* the pool's threads may finish the four checks in any order */
    int oks = 0, auths = 0;
    for (int i = 0; i < 4; i++) {
        if (ans.rc[i] == 0) {
            oks++;
            assert_string_equal(ans.user[i], "alice");
        }
        auths += ans.rc[i] == TETHER_ERR_AUTH;
    }
    assert_int_equal(oks, 1);
    assert_int_equal(auths, 3);
    /* 2 failures from 192.0.2.7 so far (the success gave its count back): 8 more checks may
     * run at once, whether or not they will fail; the 9th is refused unchecked, at a later loop
     * turn */
    memset(&ans, 0, sizeof(ans));
    for (int i = 0; i < TT_THROTTLE_BURST - 2; i++)
        assert_int_equal(verify(&ans, "alice", i == 0 ? "pa55" : "guess", "192.0.2.7:2"), 0);
    assert_int_equal(verify(&ans, "alice", "pa55", "192.0.2.7:3"), 0);
    assert_int_equal(verify(&ans, "bob", "s3cret", "192.0.2.9:3"), 0); /* another address */
    assert_int_equal(ans.n, 0);
    run_until(&ans, TT_THROTTLE_BURST);
    int throttled = 0, ok = 0, failed = 0;
    for (int i = 0; i < ans.n; i++) {
        throttled += ans.rc[i] == TETHER_ERR_THROTTLED;
        ok += ans.rc[i] == 0;
        failed += ans.rc[i] == TETHER_ERR_AUTH;
    }
    assert_int_equal(throttled, 1);
    assert_int_equal(ok, 2); /* alice's first one, and bob */
    assert_int_equal(failed, TT_THROTTLE_BURST - 3);
    assert_int_equal(ans.rc[0], TETHER_ERR_THROTTLED); /* answered first: it skipped the pool */
    /* one attempt left (the success's): a wrong one uses it, then even the right secret is
     * refused unchecked */
    memset(&ans, 0, sizeof(ans));
    assert_int_equal(verify(&ans, "alice", "guess", "192.0.2.7:4"), 0);
    assert_int_equal(verify(&ans, "alice", "pa55", "192.0.2.7:4"), 0);
    run_until(&ans, 2);
    assert_int_equal(ans.rc[0], TETHER_ERR_THROTTLED);
    assert_int_equal(ans.rc[1], TETHER_ERR_AUTH);
    assert_int_equal(acc.checks_throttled, 2);
    assert_int_equal(acc.checks_ok, 3);
    assert_int_equal(acc.checks_failed, 3 + TT_THROTTLE_BURST - 3 + 1);
}

/* Freed with checks waiting, running and throttled: no callback, nothing leaks. */
static void test_free_with_checks_under_way(void **state)
{
    (void)state;
    struct answers ans;
    memset(&ans, 0, sizeof(ans));
    for (int i = 0; i < 6; i++)
        assert_int_equal(verify(&ans, "mallory", "guess", "192.0.2.50:1"), 0);
    for (int i = 0; i < 6; i++)
        assert_int_equal(verify(&ans, "mallory", "guess", "192.0.2.50:1"), 0);
    struct tt_access_verify *h;
    ans.in_call = true;
    assert_int_equal(tt_access_verify(&acc, "alice", (const uint8_t *)"pa55", 4, "192.0.2.51:1",
                                      on_answer, &ans, &h),
                     0);
    ans.in_call = false;
    tt_access_verify_cancel(h);
    tt_access_verify_cancel(NULL);
    /* teardown frees a and runs the loop: on_answer would fail the test if called */
    ans.in_call = true;
    tt_access_free(&acc);
    uv_run(&loop, UV_RUN_DEFAULT);
    ans.in_call = false;
    assert_int_equal(ans.n, 0);
    char err[TT_ERRLEN];
    assert_int_equal(tt_access_init(&acc, &loop, &cfg, err), 0); /* for teardown */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_decisions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke_grant_deleted_and_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke_on_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke_closes_another, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_throttle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_checks_and_throttle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_checks_under_way, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
