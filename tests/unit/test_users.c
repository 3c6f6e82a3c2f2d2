/* test_users.c - unit tests for src/relay/access/users.c: the users file (secrets plain or
 * argon2id, grants, comments, every refusal with its line), lookups, plain and hashed secret
 * checks, and that --hash-secret's hashes verify. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "relay/access/users.h"

static int parse(struct tt_users *u, const char *text, char err[TT_ERRLEN])
{
    return tt_users_parse(u, text, strlen(text), "users", err);
}

static void test_users_parse_and_check(void **state)
{
    (void)state;
    char err[TT_ERRLEN], phc[TT_USERS_HASH_MAX];
    assert_int_equal(tt_users_hash_secret((const uint8_t *)"s3cret", 6, phc), 0);
    char text[1024];
    snprintf(text, sizeof(text),
             "# technicians\n\nalice pa55 plant-7-*/ssh */http\r\n  bob %s cam-?/http\n"
             "carol nogrants\n",
             phc);
    struct tt_users u;
    assert_int_equal(parse(&u, text, err), 0);
    assert_int_equal(u.n, 3);
    const struct tt_user *a = tt_users_find(&u, "alice"), *b = tt_users_find(&u, "bob");
    assert_non_null(a);
    assert_non_null(b);
    assert_null(tt_users_find(&u, "mallory"));
    assert_false(a->hashed);
    assert_true(b->hashed);
    assert_true(tt_users_check_plain(a, (const uint8_t *)"pa55", 4));
    assert_false(tt_users_check_plain(a, (const uint8_t *)"pa5", 3));
    assert_false(tt_users_check_plain(b, (const uint8_t *)"s3cret", 6));
    assert_true(tt_users_check_hash(b->phc, (const uint8_t *)"s3cret", 6));
    assert_false(tt_users_check_hash(b->phc, (const uint8_t *)"s3creT", 6));
    assert_true(tt_user_allows(a, "plant-7-gw", "ssh"));
    assert_true(tt_user_allows(a, "anything", "http"));
    assert_false(tt_user_allows(a, "plant-8-gw", "ssh"));
    assert_true(tt_user_allows(b, "cam-1", "http"));
    assert_false(tt_user_allows(tt_users_find(&u, "carol"), "cam-1", "http"));
    assert_false(tt_user_allows(NULL, "cam-1", "http"));
    tt_users_reset(&u);
    assert_int_equal(u.n, 0);
}

static void test_users_refusals(void **state)
{
    (void)state;
    char err[TT_ERRLEN];
    struct tt_users u;
    const struct {
        const char *text, *want;
    } bad[] = {
        {"alice\n", "users:1:"},
        {"ok x a/b\nalice x a/b\nalice y c/d\n", "given twice"},
        {"alice x nopattern\n", "users:1:"},
        {"\n\nalice $argon2id$v=19$m=1,t=1,p=1$bad a/b\n", "users:3:"},
        {"alice $argon2id$v=19$m=999999999,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$"
         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA a/b\n",
         "looks like a hash"},
        {NULL, NULL},
    };
    for (int i = 0; bad[i].text; i++) {
        assert_int_equal(parse(&u, bad[i].text, err), -1);
        assert_non_null(strstr(err, bad[i].want));
        assert_int_equal(u.n, 0);
        /* no secret in the message */
        assert_null(strstr(err, " x "));
    }
    char many[8192] = "alice s";
    for (int i = 0; i < TT_USERS_MAX_GRANTS + 1; i++)
        strcat(many, " a/b");
    strcat(many, "\n");
    assert_int_equal(parse(&u, many, err), -1);
    assert_non_null(strstr(err, "grants"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_users_parse_and_check),
        cmocka_unit_test(test_users_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
