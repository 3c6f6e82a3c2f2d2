/* test_connect_args.c - unit tests for src/cli/connect_args.c: `tether connect`'s flags, the
 * target split, the credentials' rules and their environment variables, and every usage error
 * (one line naming the flag). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cli/connect_args.c"
#include "cli/flags.c"

#define MAXARGS 32

/* Parses a NULL-terminated list of arguments after "connect". */
static int parse(struct tt_connect_args *a, char err[TT_ERRLEN], ...)
{
    char *argv[MAXARGS];
    int argc = 0;
    va_list ap;
    argv[argc++] = "connect";
    va_start(ap, err);
    for (char *s; (s = va_arg(ap, char *)) != NULL && argc < MAXARGS;)
        argv[argc++] = s;
    va_end(ap);
    return tt_connect_args_parse(a, argc, argv, err);
}

static void test_listen_with_user(void **state)
{
    struct tt_connect_args a;
    char err[TT_ERRLEN];
    (void)state;
    unsetenv("TETHER_SECRET");
    unsetenv("TETHER_GRANT");
    assert_int_equal(parse(&a, err, "--server", "ws://r:8080", "--server=wss://r2", "--user",
                           "alice", "--secret", "s3cret", "plant-7-gw/ssh", "--listen", "2222",
                           "--json", "--dns", "127.0.0.1:5353", NULL),
                     0);
    assert_string_equal(a.dns, "127.0.0.1:5353");
    assert_int_equal(a.nservers, 2);
    assert_string_equal(a.servers[1], "wss://r2");
    assert_string_equal(a.device, "plant-7-gw");
    assert_string_equal(a.service, "ssh");
    assert_string_equal(a.user, "alice");
    assert_string_equal(a.secret, "s3cret");
    assert_string_equal(a.listen, "2222");
    assert_false(a.stdio);
    assert_true(a.json);
    assert_null(a.grant);
}

static void test_target_split_at_last_slash(void **state)
{
    struct tt_connect_args a;
    char err[TT_ERRLEN];
    (void)state;
    assert_int_equal(parse(&a, err, "--server", "ws://r", "site/a/gw/ssh", "--stdio", NULL), 0);
    assert_string_equal(a.device, "site/a/gw");
    assert_string_equal(a.service, "ssh");
    assert_true(a.stdio);
}

static void test_environment(void **state)
{
    struct tt_connect_args a;
    char err[TT_ERRLEN];
    (void)state;
    setenv("TETHER_SECRET", "from-env", 1);
    assert_int_equal(parse(&a, err, "--server", "ws://r", "--user", "u", "d/s", "--stdio", NULL),
                     0);
    assert_string_equal(a.secret, "from-env");
    assert_true(a.secret_from_env);
    /* a secret flag wins over the variable */
    assert_int_equal(parse(&a, err, "--server", "ws://r", "--user", "u", "--secret-file", "/f",
                           "d/s", "--stdio", NULL),
                     0);
    assert_null(a.secret);
    assert_string_equal(a.secret_file, "/f");
    unsetenv("TETHER_SECRET");
    setenv("TETHER_GRANT", "grant-env", 1);
    assert_int_equal(parse(&a, err, "--server", "ws://r", "d/s", "--stdio", NULL), 0);
    assert_string_equal(a.grant, "grant-env");
    assert_true(a.grant_from_env);
    /* not with a user */
    assert_int_equal(parse(&a, err, "--server", "ws://r", "--user", "u", "--secret", "x", "d/s",
                           "--stdio", NULL),
                     0);
    assert_null(a.grant);
    unsetenv("TETHER_GRANT");
    assert_int_equal(parse(&a, err, "--server", "ws://r", "d/s", "--stdio", NULL), 0);
    assert_null(a.grant);
    assert_null(a.user);
}

static void test_usage_errors(void **state)
{
    static const struct {
        const char *args[12];
        const char *word;
    } cases[] = {
        {{"d/s", "--stdio"}, "--server"},
        {{"--server", "ws://r", "--stdio"}, "DEVICE/SERVICE"},
        {{"--server", "ws://r", "ds", "--stdio"}, "DEVICE/SERVICE"},
        {{"--server", "ws://r", "/s", "--stdio"}, "DEVICE/SERVICE"},
        {{"--server", "ws://r", "d/", "--stdio"}, "DEVICE/SERVICE"},
        {{"--server", "ws://r", "d/s", "e/t", "--stdio"}, "one DEVICE/SERVICE"},
        {{"--server", "ws://r", "d/s"}, "--listen"},
        {{"--server", "ws://r", "d/s", "--stdio", "--listen", "1"}, "together"},
        {{"--server", "ws://r", "d/s", "--stdio", "--secret", "x"}, "--user"},
        {{"--server", "ws://r", "d/s", "--stdio", "--user", "u"}, "TETHER_SECRET"},
        {{"--server", "ws://r", "d/s", "--stdio", "--user", "u", "--secret", "x", "--grant"},
         "needs a value"},
        {{"--server", "ws://r", "d/s", "--stdio", "--user", "u", "--secret", "x", "--grant", "g"},
         "--grant"},
        {{"--server", "ws://r", "d/s", "--stdio", "--grant", "g", "--grant-file", "f"}, "together"},
        {{"--server", "ws://r", "d/s", "--stdio", "--stdio=1"}, "takes no value"},
        {{"--server", "ws://r", "d/s", "--stdio", "--nope"}, "--nope"},
        {{"--server", "ws://r", "d/s", "--stdio", "-x"}, "-x"},
        {{"--server", "ws://r", "d/s", "--stdio", "--log-level", "loud"}, "--log-level"},
        {{"--server", "", "d/s", "--stdio"}, "--server"},
        {{"--server", "ws://r", "d d/s", "--stdio"}, "space"},
        {{"--server", "ws://r", "d/s", "--stdio", "--dns", "1.1.1.1", "--dns", "::1"},
         "--dns given twice"},
        {{"--server", "ws://r", "d/s", "--stdio", "--dns", ""}, "--dns"},
    };
    (void)state;
    unsetenv("TETHER_SECRET");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[MAXARGS];
        int argc = 0;
        struct tt_connect_args a;
        char err[TT_ERRLEN];
        argv[argc++] = "connect";
        for (size_t k = 0; k < 12 && cases[i].args[k]; k++)
            argv[argc++] = (char *)cases[i].args[k];
        assert_int_equal(tt_connect_args_parse(&a, argc, argv, err), -1);
        if (strstr(err, cases[i].word) == NULL)
            fail_msg("case %zu: '%s' does not name %s", i, err, cases[i].word);
        assert_null(strchr(err, '\n'));
    }
}

static void test_help(void **state)
{
    struct tt_connect_args a;
    char err[TT_ERRLEN];
    (void)state;
    assert_int_equal(parse(&a, err, "--help", NULL), 0);
    assert_true(a.help);
    assert_non_null(strstr(tt_connect_args_usage(), "--stdio"));
    assert_non_null(strstr(tt_connect_args_usage(), "ProxyCommand"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_with_user),
        cmocka_unit_test(test_target_split_at_last_slash),
        cmocka_unit_test(test_environment),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
