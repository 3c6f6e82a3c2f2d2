/* test_flags.c - unit tests for src/cli/flags.c: the lookup of "--name" and "--name=VALUE" in a
 * flag table, the once-only and --server rules, and their one-line errors. src/cli is not part
 * of the internal library, so its source is compiled in here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cli/flags.c"

static const struct tt_flags_opt opts[] = {
    {"alpha", 1, true},
    {"beta", 2, false},
    {"alpha-file", 3, true},
};
#define NOPTS (sizeof opts / sizeof opts[0])

static void test_find(void **state)
{
    (void)state;
    assert_int_equal(tt_flags_find(opts, NOPTS, "alpha", 5), 0);
    assert_int_equal(tt_flags_find(opts, NOPTS, "alpha-file", 10), 2);
    assert_int_equal(tt_flags_find(opts, NOPTS, "alpha-file", 5), 0); /* a prefix, by length */
    assert_int_equal(tt_flags_find(opts, NOPTS, "alph", 4), NOPTS);
    assert_int_equal(tt_flags_find(opts, NOPTS, "gamma", 5), NOPTS);
}

static void test_next(void **state)
{
    char *argv[] = {"prog", "--alpha", "v1", "--alpha=v2", "--beta", "--alpha=", "--alpha", NULL};
    int argc = 7, i = 1;
    const char *v;
    char err[TT_ERRLEN];
    (void)state;

    assert_int_equal(tt_flags_next(opts, NOPTS, argc, argv, &i, &v, "--help", err), 0);
    assert_string_equal(v, "v1");
    assert_int_equal(i, 2); /* on the value */
    i = 3;
    assert_int_equal(tt_flags_next(opts, NOPTS, argc, argv, &i, &v, "--help", err), 0);
    assert_string_equal(v, "v2");
    assert_int_equal(i, 3);
    i = 4;
    assert_int_equal(tt_flags_next(opts, NOPTS, argc, argv, &i, &v, "--help", err), 1);
    assert_null(v);
    i = 5;
    assert_int_equal(tt_flags_next(opts, NOPTS, argc, argv, &i, &v, "--help", err), 0);
    assert_string_equal(v, "");
    i = 6;
    assert_int_equal(tt_flags_next(opts, NOPTS, argc, argv, &i, &v, "--help", err), -1);
    assert_string_equal(err, "--alpha needs a value");
}

static void test_next_errors(void **state)
{
    char *argv[] = {"prog", "--gamma=1", "--beta=yes", NULL};
    int i = 1;
    const char *v;
    char err[TT_ERRLEN];
    (void)state;

    assert_int_equal(tt_flags_next(opts, NOPTS, 3, argv, &i, &v, "prog sub --help", err), -1);
    assert_string_equal(err, "unknown option '--gamma' (see prog sub --help)");
    i = 2;
    assert_int_equal(tt_flags_next(opts, NOPTS, 3, argv, &i, &v, "--help", err), -1);
    assert_string_equal(err, "--beta takes no value");
}

static void test_once_server_level(void **state)
{
    const char *slot = NULL, *servers[TETHER_MAX_SERVERS];
    size_t n = 0;
    int level = -1;
    char err[TT_ERRLEN];
    (void)state;

    assert_int_equal(tt_flags_once(&slot, "", "--x", NULL, err), 0); /* empty allowed */
    assert_string_equal(slot, "");
    assert_int_equal(tt_flags_once(&slot, "a", "--x", NULL, err), -1);
    assert_string_equal(err, "--x given twice");
    slot = NULL;
    assert_int_equal(tt_flags_once(&slot, "", "--y", "empty file name", err), -1);
    assert_string_equal(err, "--y: empty file name");
    assert_null(slot);

    assert_int_equal(tt_flags_add_server(servers, &n, "", err), -1);
    assert_string_equal(err, "--server: empty URL");
    for (size_t k = 0; k < TETHER_MAX_SERVERS; k++)
        assert_int_equal(tt_flags_add_server(servers, &n, "ws://a", err), 0);
    assert_int_equal(n, TETHER_MAX_SERVERS);
    assert_int_equal(tt_flags_add_server(servers, &n, "ws://a", err), -1);
    assert_non_null(strstr(err, "too many --server"));

    assert_int_equal(tt_flags_log_level("debug", &level, err), 0);
    assert_int_equal(level, TT_LOG_DEBUG);
    assert_int_equal(tt_flags_log_level("loud", &level, err), -1);
    assert_string_equal(err, "bad --log-level 'loud' (error, warn, info or debug)");
}

static void test_config_dial(void **state)
{
    tether_config *cfg;
    char err[TT_ERRLEN] = "";
    (void)state;

    assert_int_equal(tether_config_new(&cfg), 0);
    assert_int_equal(tt_flags_config_dial(cfg, NULL, NULL, NULL, NULL, true, err), 0);
    assert_string_equal(err, "");
    assert_int_not_equal(tt_flags_config_dial(cfg, "ftp://x", NULL, NULL, NULL, false, err), 0);
    assert_true(strncmp(err, "--proxy: ", 9) == 0);
    tether_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),        cmocka_unit_test(test_next),
        cmocka_unit_test(test_next_errors), cmocka_unit_test(test_once_server_level),
        cmocka_unit_test(test_config_dial),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
