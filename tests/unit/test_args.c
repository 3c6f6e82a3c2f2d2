/* test_args.c - unit tests for src/cli/args.c: tether's flags, the names given to unnamed
 * --http services, and the one-line errors. src/cli is not part of the internal library (it is
 * a program, not a module), so its source is compiled in here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "cli/args.c"
#include "cli/flags.c"

#define ARGV(...) ((char *[]){"tether", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"tether", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(a, err, ...) tt_args_parse((a), ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (err))

#define REQ "--server", "ws://127.0.0.1:8080", "--name", "d1", "--token", "t"

static void test_full_command_line(void **state)
{
    struct tt_args a;
    char err[TT_ERRLEN];
    (void)state;

    assert_int_equal(PARSE(&a, err, "--server", "ws://a:1", "--server=ws://b:2", "--name", "d1",
                           "--token=secret", "--http", "127.0.0.1:8000", "--tcp",
                           "ssh=127.0.0.1:22", "--http", "api=[::1]:9000", "--json", "--log-level",
                           "debug", "--ca-file", "ca.pem", "--insecure", "--state-dir",
                           "/var/lib/tether-x", "--dns", "[::1]:5353"),
                     0);
    assert_string_equal(a.dns, "[::1]:5353");
    assert_string_equal(a.state_dir, "/var/lib/tether-x");
    assert_int_equal(a.nservers, 2);
    assert_string_equal(a.servers[1], "ws://b:2");
    assert_string_equal(a.name, "d1");
    assert_string_equal(a.token, "secret");
    assert_true(a.json);
    assert_true(a.insecure);
    assert_int_equal(a.log_level, 3);
    assert_string_equal(a.ca_file, "ca.pem");
    assert_int_equal(a.nservices, 3);
    assert_string_equal(a.services[0].name, "http");
    assert_string_equal(a.services[0].target, "127.0.0.1:8000");
    assert_int_equal(a.services[1].kind, TETHER_SERVICE_TCP);
    assert_string_equal(a.services[1].name, "ssh");
    assert_string_equal(a.services[1].target, "127.0.0.1:22");
    assert_string_equal(a.services[2].name, "api");
    assert_string_equal(a.services[2].target, "[::1]:9000");
}

static void test_unnamed_http_names(void **state)
{
    struct tt_args a;
    char err[TT_ERRLEN];
    (void)state;

    assert_int_equal(PARSE(&a, err, REQ, "--http", "127.0.0.1:1", "--http", "http=127.0.0.1:2",
                           "--http", "127.0.0.1:3", "--http", "http-3=127.0.0.1:4", "--http",
                           "127.0.0.1:5"),
                     0);
    assert_string_equal(a.services[0].name, "http-2");
    assert_string_equal(a.services[1].name, "http");
    assert_string_equal(a.services[2].name, "http-4");
    assert_string_equal(a.services[3].name, "http-3");
    assert_string_equal(a.services[4].name, "http-5");
}

static void test_help_and_version_need_nothing_else(void **state)
{
    struct tt_args a;
    char err[TT_ERRLEN];
    (void)state;

    assert_int_equal(PARSE(&a, err, "--help"), 0);
    assert_true(a.help);
    assert_int_equal(PARSE(&a, err, "--version"), 0);
    assert_true(a.version);
    assert_non_null(strstr(tt_args_usage(), "--server URL"));
}

struct bad_case {
    int argc;
    char **argv;
    const char *mention;
};

static void test_errors_name_the_problem(void **state)
{
    struct tt_args a;
    char err[TT_ERRLEN];
    const struct bad_case cases[] = {
        {ARGC(REQ, "--http", "127.0.0.1:80", "--no-such-flag"),
         ARGV(REQ, "--http", "127.0.0.1:80", "--no-such-flag"), "--no-such-flag"},
        {ARGC(REQ, "--http"), ARGV(REQ, "--http"), "--http needs a value"},
        {ARGC(REQ, "--json=yes", "--http", "h:1"), ARGV(REQ, "--json=yes", "--http", "h:1"),
         "--json takes no value"},
        {ARGC(REQ, "--tcp", "127.0.0.1:22"), ARGV(REQ, "--tcp", "127.0.0.1:22"), "NAME=HOST:PORT"},
        {ARGC(REQ, "--tcp", "SSH=127.0.0.1:22"), ARGV(REQ, "--tcp", "SSH=127.0.0.1:22"), "'SSH'"},
        {ARGC(REQ, "--tcp", "=127.0.0.1:22"), ARGV(REQ, "--tcp", "=127.0.0.1:22"), "name"},
        {ARGC(REQ, "--tcp", "ssh="), ARGV(REQ, "--tcp", "ssh="), "--tcp ssh="},
        {ARGC(REQ, "--http", "h:1", "--log-level", "loud"),
         ARGV(REQ, "--http", "h:1", "--log-level", "loud"), "loud"},
        {ARGC(REQ, "--http", "h:1", "stray"), ARGV(REQ, "--http", "h:1", "stray"), "stray"},
        {ARGC(REQ, "--http", "h:1", "--name", "d2"), ARGV(REQ, "--http", "h:1", "--name", "d2"),
         "--name"},
        {ARGC("--name", "d", "--token", "t", "--http", "h:1"),
         ARGV("--name", "d", "--token", "t", "--http", "h:1"), "--server"},
        {ARGC("--server", "ws://a:1", "--token", "t", "--http", "h:1"),
         ARGV("--server", "ws://a:1", "--token", "t", "--http", "h:1"), "--name"},
        {ARGC("--server", "ws://a:1", "--name", "d", "--http", "h:1"),
         ARGV("--server", "ws://a:1", "--name", "d", "--http", "h:1"), "--token"},
        {ARGC(REQ), ARGV(REQ), "--http"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        assert_int_equal(tt_args_parse(&a, cases[i].argc, cases[i].argv, err), -1);
        if (strstr(err, cases[i].mention) == NULL)
            fail_msg("case %zu: '%s' does not mention '%s'", i, err, cases[i].mention);
        assert_null(strchr(err, '\n'));
    }
}

static void test_too_many_services(void **state)
{
    struct tt_args a;
    char err[TT_ERRLEN];
    char *argv[64] = {"tether"};
    int argc = 1;
    (void)state;

    for (int i = 0; i <= TETHER_MAX_SERVICES; i++) {
        argv[argc++] = "--http";
        argv[argc++] = "127.0.0.1:80";
    }
    assert_int_equal(tt_args_parse(&a, argc, argv, err), -1);
    assert_non_null(strstr(err, "too many services"));
}

static void test_to_config(void **state)
{
    struct tt_args a;
    char err[TT_ERRLEN];
    tether_config *cfg = NULL;
    (void)state;

    assert_int_equal(PARSE(&a, err, REQ, "--http", "127.0.0.1:8000", "--tcp", "ssh=h:22"), 0);
    assert_int_equal(tt_args_to_config(&a, &cfg, err), 0);
    assert_int_equal(tether_config_check(cfg), 0);
    tether_config_free(cfg);

    /* Values that only libtether checks come back with the flag in front. */
    assert_int_equal(PARSE(&a, err, "--server", "ftp://127.0.0.1:1", "--name", "d", "--token", "t",
                           "--http", "127.0.0.1:80"),
                     0);
    assert_int_equal(tt_args_to_config(&a, &cfg, err), -1);
    assert_non_null(strstr(err, "--server"));
    assert_non_null(strstr(err, "ftp"));

    assert_int_equal(PARSE(&a, err, "--server", "wss://r:443", "--name", "d", "--token", "t",
                           "--http", "127.0.0.1:80", "--ca-file", "ca.pem", "--insecure",
                           "--state-dir", "/tmp/st"),
                     0);
    assert_int_equal(tt_args_to_config(&a, &cfg, err), 0);
    assert_int_equal(tether_config_check(cfg), 0);
    tether_config_free(cfg);
    cfg = NULL;
    assert_int_equal(PARSE(&a, err, REQ, "--http", "127.0.0.1:80", "--state-dir", ""), -1);
    assert_non_null(strstr(err, "--state-dir"));
    assert_int_equal(
        PARSE(&a, err, REQ, "--http", "127.0.0.1:80", "--state-dir", "a", "--state-dir", "b"), -1);
    assert_non_null(strstr(err, "--state-dir"));

    assert_int_equal(PARSE(&a, err, REQ, "--http", "127.0.0.1:notaport"), 0);
    assert_int_equal(tt_args_to_config(&a, &cfg, err), -1);
    assert_non_null(strstr(err, "--http"));
    assert_non_null(strstr(err, "notaport"));

    assert_int_equal(PARSE(&a, err, REQ, "--tcp", "x=h:1", "--tcp", "x=h:2"), 0);
    assert_int_equal(tt_args_to_config(&a, &cfg, err), -1);
    assert_non_null(strstr(err, "duplicate service name 'x'"));

    assert_int_equal(PARSE(&a, err, REQ, "--tcp", "x=h:1", "--proxy", "http://u:pw@p:3128",
                           "--noproxy", "localhost,.lan"),
                     0);
    assert_string_equal(a.proxy, "http://u:pw@p:3128");
    assert_string_equal(a.noproxy, "localhost,.lan");
    assert_int_equal(tt_args_to_config(&a, &cfg, err), 0);
    tether_config_free(cfg);
    assert_int_equal(PARSE(&a, err, REQ, "--tcp", "x=h:1", "--proxy", ""), 0);
    assert_int_equal(tt_args_to_config(&a, &cfg, err), 0);
    tether_config_free(cfg);
    assert_int_equal(PARSE(&a, err, REQ, "--proxy", "http://p:1", "--proxy", "http://p:2"), -1);
    assert_non_null(strstr(err, "--proxy given twice"));

    assert_int_equal(PARSE(&a, err, REQ, "--tcp", "x=h:1", "--proxy", "https://u:pw@p:3128"), 0);
    assert_int_equal(tt_args_to_config(&a, &cfg, err), -1);
    assert_non_null(strstr(err, "--proxy"));
    assert_non_null(strstr(err, "HTTPS proxies are not supported"));
    assert_null(strstr(err, "pw")); /* never the password */
    assert_null(strchr(err, '\n'));
    assert_int_equal(PARSE(&a, err, REQ, "--tcp", "x=h:1", "--proxy", "socks5://p:1080"), 0);
    assert_int_equal(tt_args_to_config(&a, &cfg, err), -1);
    assert_non_null(strstr(err, "SOCKS proxies are not supported"));
    assert_int_equal(PARSE(&a, err, REQ, "--tcp", "x=h:1", "--proxy", "http://u:pw@:3128"), 0);
    assert_int_equal(tt_args_to_config(&a, &cfg, err), -1);
    assert_non_null(strstr(err, "bad proxy URL"));
    assert_null(strstr(err, "pw"));

    /* --dns: once, checked by libtether, its message behind the flag's name */
    assert_int_equal(PARSE(&a, err, REQ, "--tcp", "x=h:1", "--dns", "192.0.2.53"), 0);
    assert_int_equal(tt_args_to_config(&a, &cfg, err), 0);
    tether_config_free(cfg);
    assert_int_equal(PARSE(&a, err, REQ, "--tcp", "x=h:1", "--dns=127.0.0.1:5353"), 0);
    assert_string_equal(a.dns, "127.0.0.1:5353");
    assert_int_equal(tt_args_to_config(&a, &cfg, err), 0);
    tether_config_free(cfg);
    assert_int_equal(PARSE(&a, err, REQ, "--tcp", "x=h:1", "--dns", "dns.example"), 0);
    assert_int_equal(tt_args_to_config(&a, &cfg, err), -1);
    assert_non_null(strstr(err, "--dns: DNS server 'dns.example': not an IP address"));
    assert_int_equal(PARSE(&a, err, REQ, "--tcp", "x=h:1", "--dns", "10.0.0.1:0"), 0);
    assert_int_equal(tt_args_to_config(&a, &cfg, err), -1);
    assert_non_null(strstr(err, "bad port"));
    assert_int_equal(PARSE(&a, err, REQ, "--tcp", "x=h:1", "--dns", ""), -1);
    assert_non_null(strstr(err, "--dns: empty"));
    assert_int_equal(PARSE(&a, err, REQ, "--tcp", "x=h:1", "--dns", "1.1.1.1", "--dns", "::1"), -1);
    assert_non_null(strstr(err, "--dns given twice"));
    assert_int_equal(PARSE(&a, err, REQ, "--tcp", "x=h:1", "--dns"), -1);
    assert_non_null(strstr(err, "--dns needs a value"));

    assert_int_equal(PARSE(&a, err, "--server", "ws://a:1", "--name", "has space", "--token", "t",
                           "--tcp", "x=h:1"),
                     0);
    assert_int_equal(tt_args_to_config(&a, &cfg, err), -1);
    assert_non_null(strstr(err, "--name"));
}

/* The token from --token-file (read by main.c) or TETHER_TOKEN, never two sources at once. */
static void test_token_sources(void **state)
{
    struct tt_args a;
    char err[TT_ERRLEN];
    (void)state;

    unsetenv("TETHER_TOKEN");
    assert_int_equal(PARSE(&a, err, "--server", "ws://a:1", "--name", "d", "--token-file",
                           "/etc/tether/token", "--http", "h:1"),
                     0);
    assert_string_equal(a.token_file, "/etc/tether/token");
    assert_null(a.token);
    assert_int_equal(PARSE(&a, err, REQ, "--token-file", "f", "--http", "h:1"), -1);
    assert_non_null(strstr(err, "cannot be used together"));
    assert_int_equal(PARSE(&a, err, "--server", "ws://a:1", "--name", "d", "--token-file", "f",
                           "--token-file", "g", "--http", "h:1"),
                     -1);
    assert_non_null(strstr(err, "--token-file"));
    assert_int_equal(
        PARSE(&a, err, "--server", "ws://a:1", "--name", "d", "--token-file=", "--http", "h:1"),
        -1);
    setenv("TETHER_TOKEN", "from-env", 1);
    assert_int_equal(PARSE(&a, err, "--server", "ws://a:1", "--name", "d", "--http", "h:1"), 0);
    assert_string_equal(a.token, "from-env");
    assert_true(a.token_from_env);
    /* a flag wins over the environment */
    assert_int_equal(PARSE(&a, err, REQ, "--http", "h:1"), 0);
    assert_string_equal(a.token, "t");
    assert_false(a.token_from_env);
    assert_int_equal(
        PARSE(&a, err, "--server", "ws://a:1", "--name", "d", "--token-file", "f", "--http", "h:1"),
        0);
    assert_null(a.token);
    /* a bad one is reported under the variable's name */
    setenv("TETHER_TOKEN", "two words", 1);
    tether_config *cfg = NULL;
    assert_int_equal(PARSE(&a, err, "--server", "ws://a:1", "--name", "d", "--http", "h:1"), 0);
    assert_int_equal(tt_args_to_config(&a, &cfg, err), -1);
    assert_non_null(strstr(err, "TETHER_TOKEN"));
    setenv("TETHER_TOKEN", "", 1);
    assert_int_equal(PARSE(&a, err, "--server", "ws://a:1", "--name", "d", "--http", "h:1"), -1);
    assert_non_null(strstr(err, "--token"));
    unsetenv("TETHER_TOKEN");
}

/* A bare PORT means 127.0.0.1:PORT, for --http and --tcp alike. */
static void test_bare_port(void **state)
{
    struct tt_args a;
    char err[TT_ERRLEN];
    (void)state;

    assert_int_equal(PARSE(&a, err, REQ, "--http", "8000", "--http", "api=9000", "--tcp", "ssh=22",
                           "--http", "localhost:7000"),
                     0);
    assert_string_equal(a.services[0].target, "127.0.0.1:8000");
    assert_string_equal(a.services[1].target, "127.0.0.1:9000");
    assert_string_equal(a.services[2].target, "127.0.0.1:22");
    assert_string_equal(a.services[3].target, "localhost:7000");
    tether_config *cfg = NULL;
    assert_int_equal(tt_args_to_config(&a, &cfg, err), 0);
    tether_config_free(cfg);
    /* a port out of range is still refused, naming the flag */
    assert_int_equal(PARSE(&a, err, REQ, "--http", "99999"), 0);
    assert_int_equal(tt_args_to_config(&a, &cfg, err), -1);
    assert_non_null(strstr(err, "--http 99999"));
}

/* Writes text into a new temporary file with the given mode; returns its path (static). */
static char *conf(const char *text, unsigned mode)
{
    static char path[64];
    static int k;
    snprintf(path, sizeof path, "/tmp/test_args_%d_%d.conf", (int)getpid(), k++);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    chmod(path, mode);
    return path;
}

static void test_config_file(void **state)
{
    struct tt_args a;
    char err[TT_ERRLEN];
    (void)state;

    unsetenv("TETHER_TOKEN");
    char *p = conf("# /etc/tether/agent.conf\n"
                   "server ws://a:1\n"
                   "server = ws://b:2\n"
                   "name: plant-7-gw\n"
                   "--token-file /etc/tether/token\n"
                   "http 8000\n"
                   "http \"api=127.0.0.1:9000\"\n"
                   "tcp ssh=127.0.0.1:22\n"
                   "state_dir /var/lib/tether\n"
                   "log-level debug\n"
                   "json\n"
                   "insecure false\n",
                   0644);
    assert_int_equal(PARSE(&a, err, "--config", p), 0);
    assert_int_equal(a.nservers, 2);
    assert_string_equal(a.servers[1], "ws://b:2");
    assert_string_equal(a.name, "plant-7-gw");
    assert_string_equal(a.token_file, "/etc/tether/token");
    assert_int_equal(a.nservices, 3);
    assert_string_equal(a.services[0].name, "http");
    assert_string_equal(a.services[0].target, "127.0.0.1:8000");
    assert_string_equal(a.services[1].name, "api");
    assert_string_equal(a.services[2].name, "ssh");
    assert_string_equal(a.state_dir, "/var/lib/tether");
    assert_int_equal(a.log_level, 3);
    assert_true(a.json);
    assert_false(a.insecure);
    assert_false(a.log_json);
    tt_args_free(&a);
    assert_int_equal(PARSE(&a, err, "--config", p, "--log-format", "json"), 0);
    assert_true(a.log_json);
    tt_args_free(&a);
    assert_int_equal(PARSE(&a, err, "--config", p, "--log-format=yaml"), -1);
    assert_string_equal(err, "bad --log-format 'yaml' (text or json)");

    /* the command line wins: a scalar replaces the file's, a list replaces the file's list of
     * that kind, --token replaces the file's token-file */
    assert_int_equal(PARSE(&a, err, "--name", "other", "--config=", "x"), -1);
    assert_int_equal(PARSE(&a, err, "--name", "other", "--config", p, "--server", "ws://c:3",
                           "--http", "web=8080", "--token", "tok", "--log-level", "warn"),
                     0);
    assert_string_equal(a.name, "other");
    assert_int_equal(a.nservers, 1);
    assert_string_equal(a.servers[0], "ws://c:3");
    assert_string_equal(a.token, "tok");
    assert_null(a.token_file);
    assert_int_equal(a.nservices, 2); /* the file's tcp ssh stays, its two http are replaced */
    assert_string_equal(a.services[0].name, "ssh");
    assert_string_equal(a.services[1].name, "web");
    assert_int_equal(a.log_level, 1);
    tt_args_free(&a);
    unlink(p);
}

static void test_config_file_errors(void **state)
{
    struct tt_args a;
    char err[TT_ERRLEN];
    char want[128];
    (void)state;

    char *p = conf("server ws://a:1\nname d\ntoken-file /t\nfrobnicate yes\nhttp 1\n", 0600);
    assert_int_equal(PARSE(&a, err, "--config", p), -1);
    snprintf(want, sizeof want, "%s:4: unknown setting 'frobnicate'", p);
    assert_string_equal(err, want);
    assert_null(a.file);
    unlink(p);
    p = conf("server ws://a:1\nconfig /etc/x\n", 0600);
    assert_int_equal(PARSE(&a, err, "--config", p), -1);
    assert_non_null(strstr(err, ":2: unknown setting 'config'"));
    unlink(p);
    p = conf("log-level loud\n", 0600);
    assert_int_equal(PARSE(&a, err, "--config", p), -1);
    snprintf(want, sizeof want, "%s:1: bad --log-level 'loud'", p);
    assert_memory_equal(err, want, strlen(want));
    unlink(p);
    p = conf("json maybe\n", 0600);
    assert_int_equal(PARSE(&a, err, "--config", p), -1);
    assert_non_null(strstr(err, ":1: --json: expected true or false"));
    unlink(p);
    p = conf("name \"unterminated\n", 0600);
    assert_int_equal(PARSE(&a, err, "--config", p), -1);
    assert_non_null(strstr(err, ":1: unterminated quote"));
    unlink(p);
    /* a token only in a file others cannot read */
    p = conf("server ws://a:1\nname d\nhttp 1\ntoken secret\n", 0644);
    assert_int_equal(PARSE(&a, err, "--config", p), -1);
    assert_non_null(strstr(err, ":4: a token in a file that every user can read"));
    chmod(p, 0640);
    assert_int_equal(PARSE(&a, err, "--config", p), 0);
    assert_string_equal(a.token, "secret");
    tt_args_free(&a);
    unlink(p);
    p = conf("token secret\ntoken-file /t\n", 0600);
    assert_int_equal(PARSE(&a, err, "--config", p), -1);
    assert_non_null(strstr(err, "token and token-file cannot be used together"));
    unlink(p);
    /* a missing file is a runtime failure; --config twice a usage error */
    assert_int_equal(PARSE(&a, err, "--config", "/nonexistent/agent.conf"), TT_ARGS_IO);
    assert_non_null(strstr(err, "/nonexistent/agent.conf"));
    assert_int_equal(PARSE(&a, err, "--config", "a", "--config", "b"), -1);
    assert_string_equal(err, "--config given twice");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_command_line),
        cmocka_unit_test(test_unnamed_http_names),
        cmocka_unit_test(test_help_and_version_need_nothing_else),
        cmocka_unit_test(test_errors_name_the_problem),
        cmocka_unit_test(test_too_many_services),
        cmocka_unit_test(test_to_config),
        cmocka_unit_test(test_token_sources),
        cmocka_unit_test(test_bare_port),
        cmocka_unit_test(test_config_file),
        cmocka_unit_test(test_config_file_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
