/* test_tokens.c - unit tests for src/relay/device/tokens.c: tokens-file parsing (comments, blanks,
 * errors with line numbers), per-name and fleet checks, and the generated fleet token (kept
 * hashed in the registry; a legacy DATA_DIR/token imported). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "relay/device/tokens.h"

static bool check(const struct tt_tokens *t, const char *name, const char *tok)
{
    return tt_tokens_check(t, (const uint8_t *)name, strlen(name), (const uint8_t *)tok,
                           strlen(tok));
}

static void test_parse_and_check(void **state)
{
    struct tt_tokens t;
    char err[TT_ERRLEN];
    static const char text[] = "# devices\n\n  dev1   tok-one  \r\n"
                               "dev2\ttok-two\n   # indented comment\n"
                               "dev3 tok-three"; /* no final newline */
    (void)state;
    tt_tokens_init(&t);
    assert_false(check(&t, "dev1", "tok-one"));
    assert_int_equal(tt_tokens_parse(&t, text, sizeof(text) - 1, "f", err), 0);
    assert_int_equal(t.n, 3);
    assert_true(check(&t, "dev1", "tok-one"));
    assert_true(check(&t, "dev2", "tok-two"));
    assert_true(check(&t, "dev3", "tok-three"));
    assert_false(check(&t, "dev1", "tok-two"));
    assert_false(check(&t, "dev1", "tok-on"));
    assert_false(check(&t, "dev4", "tok-one"));
    /* a fleet token serves names without their own */
    tt_tokens_set_fleet(&t, "fleet", 5);
    assert_true(check(&t, "dev4", "fleet"));
    assert_false(check(&t, "dev1", "fleet"));
    tt_tokens_reset(&t);
}

static void expect_bad(const char *text, const char *needle)
{
    struct tt_tokens t;
    char err[TT_ERRLEN];
    tt_tokens_init(&t);
    static const char good[] = "keep me\n";
    assert_int_equal(tt_tokens_parse(&t, good, sizeof(good) - 1, "f", err), 0);
    assert_int_equal(tt_tokens_parse(&t, text, strlen(text), "tokens.txt", err), -1);
    if (!strstr(err, needle)) {
        fprintf(stderr, "error '%s' lacks '%s'\n", err, needle);
        fail();
    }
    assert_true(check(&t, "keep", "me")); /* unchanged on failure */
    tt_tokens_reset(&t);
}

static void test_parse_errors(void **state)
{
    (void)state;
    expect_bad("dev1\n", "tokens.txt:1: expected 'NAME TOKEN'");
    expect_bad("a b\n\nc d e\n", "tokens.txt:3:");
    expect_bad("a b\na c\n", "given twice");
    char longname[200];
    memset(longname, 'n', 100);
    strcpy(longname + 100, " tok\n");
    expect_bad(longname, "name too long");
}

static void test_load_file(void **state)
{
    char dir[] = "/tmp/test_tokens_XXXXXX";
    char path[256], err[TT_ERRLEN];
    struct tt_tokens t;
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/tokens", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("dev1 secret\n", f);
    fclose(f);
    tt_tokens_init(&t);
    assert_int_equal(tt_tokens_load_file(&t, path, err), 0);
    assert_true(check(&t, "dev1", "secret"));
    unlink(path);
    assert_int_equal(tt_tokens_load_file(&t, path, err), -1);
    assert_non_null(strstr(err, "cannot read"));
    assert_true(check(&t, "dev1", "secret"));
    tt_tokens_reset(&t);
    rmdir(dir);
}

static void test_generated_token(void **state)
{
    char dir[] = "/tmp/test_tokens_XXXXXX";
    char path[256], err[TT_ERRLEN];
    char a[TT_MAX_TOKEN + 1], b[TT_MAX_TOKEN + 1];
    bool created;
    struct tt_tokens t;
    (void)state;
    assert_non_null(mkdtemp(dir));
    struct tt_registry *reg = tt_registry_sqlite_open(":memory:", err);
    assert_non_null(reg);
    /* first start: created, hash stored, nothing written in the data dir */
    tt_tokens_init(&t);
    assert_int_equal(tt_tokens_generated(&t, reg, dir, a, &created, err), 0);
    assert_true(created);
    assert_int_equal(strlen(a), TT_TOKEN_HEXLEN);
    assert_true(check(&t, "any-device", a));
    assert_false(check(&t, "any-device", "not-it"));
    snprintf(path, sizeof(path), "%s/token", dir);
    assert_int_not_equal(access(path, F_OK), 0);
    /* next start: the same token is accepted, not created again, not known in plain */
    tt_tokens_init(&t);
    assert_int_equal(tt_tokens_generated(&t, reg, dir, b, &created, err), 0);
    assert_false(created);
    assert_string_equal(b, "");
    assert_true(check(&t, "any-device", a));
    tt_registry_free(reg);

    /* a DIR/token from an earlier tetherd is imported, then removed */
    reg = tt_registry_sqlite_open(":memory:", err);
    assert_non_null(reg);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("legacy-token-123\n", f);
    fclose(f);
    tt_tokens_init(&t);
    assert_int_equal(tt_tokens_generated(&t, reg, dir, b, &created, err), 0);
    assert_false(created);
    assert_true(check(&t, "dev", "legacy-token-123"));
    assert_int_not_equal(access(path, F_OK), 0);
    tt_tokens_init(&t);
    assert_int_equal(tt_tokens_generated(&t, reg, dir, b, &created, err), 0);
    assert_true(check(&t, "dev", "legacy-token-123"));
    tt_registry_free(reg);
    rmdir(dir);
}

static void test_rotate(void **state)
{
    char err[TT_ERRLEN], a[TT_MAX_TOKEN + 1], b[TT_MAX_TOKEN + 1], c[TT_MAX_TOKEN + 1];
    bool created;
    struct tt_tokens t;
    (void)state;
    struct tt_registry *reg = tt_registry_sqlite_open(":memory:", err);
    assert_non_null(reg);
    /* nothing to rotate before the first token */
    assert_int_equal(tt_tokens_rotate(reg, b, err), -1);
    tt_tokens_init(&t);
    assert_int_equal(tt_tokens_generated(&t, reg, "/nonexistent", a, &created, err), 0);
    assert_int_equal(tt_tokens_fleet_history(&t, reg, err), 0);
    assert_int_equal(tt_tokens_rotate(reg, b, err), 0);
    assert_int_equal(strlen(b), TT_TOKEN_HEXLEN);
    assert_string_not_equal(a, b);
    /* the next start: the new one is the fleet token, the old one good only with a key */
    tt_tokens_init(&t);
    assert_int_equal(tt_tokens_generated(&t, reg, "/nonexistent", c, &created, err), 0);
    assert_false(created);
    assert_int_equal(tt_tokens_fleet_history(&t, reg, err), 0);
    assert_true(tt_tokens_check_fleet(&t, (const uint8_t *)b, strlen(b)));
    assert_false(tt_tokens_check_fleet(&t, (const uint8_t *)a, strlen(a)));
    assert_true(tt_tokens_check_fleet_any(&t, (const uint8_t *)a, strlen(a)));
    assert_int_equal(t.nold, 1);
    tt_registry_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_check), cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_load_file),       cmocka_unit_test(test_generated_token),
        cmocka_unit_test(test_rotate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
