/* test_config.c - unit tests for src/relay/config.c: defaults, every flag in both spellings,
 * derived values (device URLs, --tcp-bind), and one-line errors for bad command lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/log.h"
#include "relay/config.h"

static struct tt_config cfg;
static char err[TT_ERRLEN];

#define PARSE(...)                                                                                 \
    ({                                                                                             \
        char *argv_[] = {"tetherd", __VA_ARGS__};                                                  \
        tt_config_parse(&cfg, (int)(sizeof(argv_) / sizeof(argv_[0])), argv_, err);                \
    })

/* Writes text to a fresh temporary file and returns its path (static buffer). */
static const char *conf_file(const char *text)
{
    static char path[64];
    strcpy(path, "/tmp/tt-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_config_file(void **state)
{
    (void)state;
    const char *p = conf_file("# comment\n"
                              "  \n"
                              "listen 127.0.0.1:1111\n"
                              "listen=127.0.0.1:1112\n"
                              "--domain: relay.example.com\n"
                              "tcp_ports \"21000-21010\"   # trailing comment\n"
                              "grace\t2h\r\n"
                              "token 'abc def'\n");
    /* a token with a space is refused like the flag: the quotes keep it whole */
    assert_int_equal(PARSE("--config", (char *)p), -1);
    assert_non_null(strstr(err, ":8: --token"));
    unlink(p);

    p = conf_file("listen 127.0.0.1:1111\nlisten=127.0.0.1:1112\n--domain: relay.example.com\n"
                  "tcp_ports \"21000-21010\"\ngrace\t2h\r\ntls-listen 127.0.0.1:1443\n");
    assert_int_equal(PARSE("--config", (char *)p, "--tls-cert", "c", "--tls-key", "k"),
                     TT_CONFIG_RUN);
    assert_int_equal(cfg.nlisten, 2);
    assert_int_equal(cfg.listen[1].port, 1112);
    assert_string_equal(cfg.domain, "relay.example.com");
    assert_int_equal(cfg.tcp_low, 21000);
    assert_int_equal(cfg.tcp_high, 21010);
    assert_int_equal(cfg.grace_ms, 2 * 3600000);
    assert_int_equal(cfg.ntls_listen, 1);
    /* flags win; a --listen flag replaces the file's list; --config=FILE works too */
    char arg[80];
    snprintf(arg, sizeof arg, "--config=%s", p);
    assert_int_equal(PARSE("--grace", "5m", arg, "--listen", "127.0.0.1:2222", "--tls-cert", "c",
                           "--tls-key", "k"),
                     TT_CONFIG_RUN);
    assert_int_equal(cfg.grace_ms, 5 * 60000);
    assert_int_equal(cfg.nlisten, 1);
    assert_int_equal(cfg.listen[0].port, 2222);
    assert_string_equal(cfg.tcp_bind, "127.0.0.1");
    assert_int_equal(PARSE("--config", (char *)p, "--config", (char *)p), -1);
    assert_non_null(strstr(err, "twice"));
    unlink(p);

    assert_int_equal(PARSE("--config", "/nonexistent/tetherd.conf"), TT_CONFIG_ERR_RUNTIME);
    assert_non_null(strstr(err, "/nonexistent/tetherd.conf"));
    assert_int_equal(PARSE("--config", ""), -1);
    assert_int_equal(PARSE("--config"), -1);

    static const char *const bad[] = {"nosuch 1\n",       "domain 'x\n", "config x\n", "help x\n",
                                      "grace \"2h\" x\n", "=x\n",        "verbose\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = conf_file(bad[i]);
        assert_int_equal(PARSE("--config", (char *)p), -1);
        assert_non_null(strstr(err, ":1: "));
        unlink(p);
    }
}

static void test_defaults(void **state)
{
    char *argv[] = {"tetherd"};
    char url[256];
    (void)state;
    assert_int_equal(tt_config_parse(&cfg, 1, argv, err), TT_CONFIG_RUN);
    assert_int_equal(cfg.nlisten, 1);
    assert_string_equal(cfg.listen[0].host, "127.0.0.1");
    assert_int_equal(cfg.listen[0].port, 8080);
    assert_string_equal(cfg.domain, "localhost");
    assert_int_equal(cfg.tcp_low, 20000);
    assert_int_equal(cfg.tcp_high, 20999);
    assert_string_equal(cfg.tcp_bind, "127.0.0.1");
    assert_int_equal(cfg.grace_ms, 3600000);
    assert_string_equal(cfg.data_dir, "./tether-data");
    assert_string_equal(cfg.token, "");
    assert_string_equal(cfg.tokens_file, "");
    assert_string_equal(cfg.admin.host, "127.0.0.1");
    assert_int_equal(cfg.admin.port, 9090);
    assert_int_equal(cfg.log_level, TT_LOG_INFO);
    assert_true(tt_config_device_url(&cfg, "k3j9x2mq", url, sizeof(url)) > 0);
    assert_string_equal(url, "http://k3j9x2mq.localhost:8080");
}

static void test_all_flags(void **state)
{
    char url[256];
    (void)state;
    assert_int_equal(PARSE("--listen", "0.0.0.0:80", "--listen=[::1]:8081", "--domain",
                           "Relay.Example.COM", "--tcp-ports=30000-30010", "--grace", "5m",
                           "--data-dir", "/tmp/x", "--token=abc", "--admin-listen",
                           "127.0.0.1:9999", "--log-level", "debug"),
                     TT_CONFIG_RUN);
    assert_int_equal(cfg.nlisten, 2);
    assert_string_equal(cfg.listen[0].host, "0.0.0.0");
    assert_int_equal(cfg.listen[0].port, 80);
    assert_string_equal(cfg.listen[1].host, "::1");
    assert_int_equal(cfg.listen[1].port, 8081);
    assert_string_equal(cfg.domain, "relay.example.com");
    assert_int_equal(cfg.tcp_low, 30000);
    assert_int_equal(cfg.tcp_high, 30010);
    assert_string_equal(cfg.tcp_bind, "0.0.0.0");
    assert_int_equal(cfg.grace_ms, 300000);
    assert_string_equal(cfg.data_dir, "/tmp/x");
    assert_string_equal(cfg.token, "abc");
    assert_int_equal(cfg.admin.port, 9999);
    assert_int_equal(cfg.log_level, TT_LOG_DEBUG);
    assert_true(tt_config_device_url(&cfg, "lab", url, sizeof(url)) > 0);
    assert_string_equal(url, "http://lab.relay.example.com"); /* port 80 left out */
}

static void test_public_url_and_bind(void **state)
{
    char url[256];
    (void)state;
    assert_int_equal(PARSE("--public-url", "https://Tether.Example.org", "--tcp-bind", "localhost",
                           "--tokens-file", "/etc/t"),
                     TT_CONFIG_RUN);
    assert_true(tt_config_device_url(&cfg, "api--lab", url, sizeof(url)) > 0);
    assert_string_equal(url, "https://api--lab.tether.example.org");
    assert_string_equal(cfg.tcp_bind, "127.0.0.1");
    assert_string_equal(cfg.tokens_file, "/etc/t");
    assert_int_equal(PARSE("--public-url", "http://example.org:8000/"), TT_CONFIG_RUN);
    assert_true(tt_config_device_url(&cfg, "lab", url, sizeof(url)) > 0);
    assert_string_equal(url, "http://lab.example.org:8000");
    assert_int_equal(tt_config_device_url(&cfg, "lab", url, 10), -1);
}

static void test_help_version(void **state)
{
    (void)state;
    assert_int_equal(PARSE("--help"), TT_CONFIG_HELP);
    assert_int_equal(PARSE("--version"), TT_CONFIG_VERSION);
}

static void expect_error(int rc, const char *needle)
{
    assert_int_equal(rc, -1);
    if (!strstr(err, needle)) {
        fprintf(stderr, "error '%s' lacks '%s'\n", err, needle);
        fail();
    }
    assert_null(strchr(err, '\n'));
}

static void test_errors(void **state)
{
    (void)state;
    expect_error(PARSE("--bogus"), "--bogus");
    expect_error(PARSE("stray"), "stray");
    expect_error(PARSE("--listen"), "--listen needs a value");
    expect_error(PARSE("--listen", "nohost"), "--listen");
    expect_error(PARSE("--listen", "example.com:80"), "not an IP address");
    expect_error(PARSE("--listen", "127.0.0.1:99999"), "--listen");
    expect_error(PARSE("--domain", "bad_domain"), "--domain");
    expect_error(PARSE("--domain", "a..b"), "--domain");
    expect_error(PARSE("--tcp-ports", "20-10"), "--tcp-ports");
    expect_error(PARSE("--tcp-bind", "x"), "--tcp-bind");
    expect_error(PARSE("--grace", "soon"), "--grace");
    expect_error(PARSE("--public-url", "ftp://x"), "--public-url");
    expect_error(PARSE("--log-level", "loud"), "--log-level");
    expect_error(PARSE("--token", ""), "--token");
    expect_error(PARSE("--token", "a b"), "--token");
    expect_error(PARSE("--token", "a", "--tokens-file", "f"), "cannot be used together");
    expect_error(PARSE("--redis", "redis://x"), "--redis needs --node-id ID and --advertise URL");
    expect_error(PARSE("--redis", "redis://x", "--node-id", "a"), "--advertise");
    expect_error(PARSE("--node-id", "a"), "--node-id needs --redis");
    expect_error(PARSE("--advertise", "ws://x:1"), "--advertise needs --redis");
    expect_error(PARSE("--cluster-addr", "127.0.0.1:1"), "--cluster-addr needs --redis");
    expect_error(PARSE("--redis", "http://x"), "--redis");
    expect_error(PARSE("--redis", "redis://"), "no host");
    expect_error(PARSE("--redis", "redis://x:99999"), "--redis");
    expect_error(PARSE("--redis", "redis://x:1/16"), "database");
    expect_error(PARSE("--redis", "redis://x:1/a"), "database");
    expect_error(PARSE("--redis", "redis://user:pw@x:1"), "PASSWORD");
    expect_error(PARSE("--node-id", "a b"), "--node-id");
    expect_error(PARSE("--node-id", ""), "--node-id");
    expect_error(PARSE("--advertise", "http://x"), "--advertise");
    expect_error(PARSE("--advertise", "ws://x/?q"), "--advertise");
    expect_error(PARSE("--redis", "redis://x", "--node-id", "a", "--advertise", "ws://x",
                       "--listen", "0.0.0.0:80"),
                 "--cluster-addr");
    expect_error(PARSE("--admin-token", ""), "--admin-token");
    expect_error(PARSE("--admin-token", "a b"), "--admin-token");
    expect_error(PARSE("--admin-listen", "0.0.0.0:9090"), "needs --admin-token");
    expect_error(PARSE("--admin-listen", "[::]:9090"), "needs --admin-token");
    expect_error(PARSE("--config"), "--config needs a value");
    expect_error(PARSE("--help=x"), "--help");
}

static void test_redis_url(void **state)
{
    (void)state;
    struct tt_redis_url u;
    char err[TT_ERRLEN];
    assert_int_equal(tt_config_parse_redis_url("redis://127.0.0.1:6380", &u, err), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_string_equal(u.password, "");
    assert_int_equal(u.db, 0);
    assert_int_equal(tt_config_parse_redis_url("redis://:s3cr:et@redis.example:7000/3", &u, err),
                     0);
    assert_string_equal(u.host, "redis.example");
    assert_int_equal(u.port, 7000);
    assert_string_equal(u.password, "s3cr:et");
    assert_int_equal(u.db, 3);
    assert_int_equal(tt_config_parse_redis_url("REDIS://localhost", &u, err), 0);
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 6379);
    assert_int_equal(tt_config_parse_redis_url("redis://[::1]:6379/", &u, err), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(tt_config_parse_redis_url("redis://[::1]", &u, err), 0);
    assert_int_equal(u.port, 6379);
    assert_int_equal(tt_config_parse_redis_url("redis://::1:6379", &u, err), -1);
    assert_int_equal(tt_config_parse_redis_url("redis://x:0", &u, err), -1);
    assert_int_equal(tt_config_parse_redis_url("redis://:@x", &u, err), -1);
}

static void test_redis_sentinel_url(void **state)
{
    (void)state;
    struct tt_redis_url u;
    char err[TT_ERRLEN];
    assert_int_equal(tt_config_parse_redis_url("redis-sentinel://127.0.0.1:26379,127.0.0.1:26380,"
                                               "[::1]:26381/mymaster",
                                               &u, err),
                     0);
    assert_true(u.sentinel);
    assert_int_equal(u.nsentinels, 3);
    assert_string_equal(u.sentinels[0].host, "127.0.0.1");
    assert_int_equal(u.sentinels[0].port, 26379);
    assert_int_equal(u.sentinels[1].port, 26380);
    assert_string_equal(u.sentinels[2].host, "::1");
    assert_int_equal(u.sentinels[2].port, 26381);
    assert_string_equal(u.master, "mymaster");
    assert_string_equal(u.host, "");
    assert_string_equal(u.password, "");
    assert_int_equal(u.db, 0);
    /* password, master, db; the default port and master */
    assert_int_equal(tt_config_parse_redis_url("Redis-Sentinel://:p@ss,w/d@s1.example:1,s2/"
                                               "cache-1.a_b/7",
                                               &u, err),
                     0);
    assert_string_equal(u.password, "p@ss,w/d");
    assert_int_equal(u.nsentinels, 2);
    assert_string_equal(u.sentinels[0].host, "s1.example");
    assert_int_equal(u.sentinels[0].port, 1);
    assert_string_equal(u.sentinels[1].host, "s2");
    assert_int_equal(u.sentinels[1].port, 26379);
    assert_string_equal(u.master, "cache-1.a_b");
    assert_int_equal(u.db, 7);
    assert_int_equal(tt_config_parse_redis_url("redis-sentinel://h:5", &u, err), 0);
    assert_string_equal(u.master, "mymaster");
    assert_int_equal(u.nsentinels, 1);
    assert_int_equal(tt_config_parse_redis_url("redis-sentinel://h:5/", &u, err), 0);
    assert_string_equal(u.master, "mymaster");
    /* one segment is the master, even when it is a number; "//DB" keeps the default */
    assert_int_equal(tt_config_parse_redis_url("redis-sentinel://h:5/3", &u, err), 0);
    assert_string_equal(u.master, "3");
    assert_int_equal(u.db, 0);
    assert_int_equal(tt_config_parse_redis_url("redis-sentinel://h:5//3", &u, err), 0);
    assert_string_equal(u.master, "mymaster");
    assert_int_equal(u.db, 3);
    assert_int_equal(tt_config_parse_redis_url("redis-sentinel://h:5/m/", &u, err), 0);
    assert_int_equal(u.db, 0);
    /* errors */
    static const char *const bad[][2] = {
        {"redis-sentinel://", "no host"},
        {"redis-sentinel://h:1,", "no host"},
        {"redis-sentinel://,h:1", "no host"},
        {"redis-sentinel://h:1,,h:2", "no host"},
        {"redis-sentinel://h:0", "--redis"},
        {"redis-sentinel://h:70000", "--redis"},
        {"redis-sentinel://::1:5", "--redis"},
        {"redis-sentinel://h:1/m/16", "database"},
        {"redis-sentinel://h:1/m/x", "database"},
        {"redis-sentinel://h:1/m/1/2", "database"},
        {"redis-sentinel://h:1/m y", "master name"},
        {"redis-sentinel://h:1/m%41", "master name"},
        {"redis-sentinel://h:1/"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "master name longer"},
        {"redis-sentinel://user:pw@h:1", "PASSWORD"},
        {"redis-sentinel://:@h:1", "PASSWORD"},
        {"sentinel://h:1", "redis-sentinel://"},
        {"redis-sentinel:/h:1", "redis-sentinel://"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(tt_config_parse_redis_url(bad[i][0], &u, err), -1);
        if (!strstr(err, bad[i][1]) || strchr(err, '\n'))
            fail_msg("%s: '%s' lacks '%s'", bad[i][0], err, bad[i][1]);
    }
    /* the cap on sentinels */
    char many[512] = "redis-sentinel://";
    for (int i = 0; i < TT_REDIS_MAX_SENTINELS; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%sh:%d", i ? "," : "", i + 1);
    assert_int_equal(tt_config_parse_redis_url(many, &u, err), 0);
    assert_int_equal(u.nsentinels, TT_REDIS_MAX_SENTINELS);
    snprintf(many + strlen(many), sizeof(many) - strlen(many), ",h:99");
    assert_int_equal(tt_config_parse_redis_url(many, &u, err), -1);
    assert_non_null(strstr(err, "at most 16 sentinels"));
}

static void test_cluster_flags(void **state)
{
    (void)state;
    assert_int_equal(PARSE("--redis", "redis://127.0.0.1:6379/2", "--node-id", "n-1.a_b",
                           "--advertise", "wss://relay1.example.com", "--listen", "127.0.0.1:8081"),
                     TT_CONFIG_RUN);
    assert_true(cfg.cluster);
    assert_int_equal(cfg.redis.db, 2);
    assert_string_equal(cfg.node_id, "n-1.a_b");
    assert_string_equal(cfg.advertise, "wss://relay1.example.com");
    assert_string_equal(cfg.cluster_addr.host, "127.0.0.1");
    assert_int_equal(cfg.cluster_addr.port, 8081);
    assert_int_equal(PARSE("--redis", "redis://r", "--node-id", "a", "--advertise",
                           "ws://a.example/tether", "--listen", "0.0.0.0:80", "--cluster-addr",
                           "10.0.0.5:80", "--tcp-bind", "10.0.0.5"),
                     TT_CONFIG_RUN);
    assert_string_equal(cfg.cluster_addr.host, "10.0.0.5");
    assert_int_equal(PARSE(), TT_CONFIG_RUN);
    assert_false(cfg.cluster);
}

static void test_admin_token(void **state)
{
    (void)state;
    assert_int_equal(PARSE("--admin-listen", "0.0.0.0:9091", "--admin-token", "t0k"),
                     TT_CONFIG_RUN);
    assert_string_equal(cfg.admin_token, "t0k");
    assert_int_equal(PARSE("--admin-listen", "127.0.0.2:9091"), TT_CONFIG_RUN);
    assert_int_equal(PARSE("--admin-listen", "[::1]:9091"), TT_CONFIG_RUN);
    assert_string_equal(cfg.admin_token, "");
}

/* --token-file / --admin-token-file and TETHER_TOKEN / TETHER_ADMIN_TOKEN: the tokens stay out
 * of the process list; a flag wins over the environment. */
static void test_token_sources(void **state)
{
    (void)state;
    char path[64], apath[64];
    unsetenv("TETHER_TOKEN");
    unsetenv("TETHER_ADMIN_TOKEN");
    snprintf(path, sizeof(path), "%s", conf_file("fleet-secret\r\nignored\n"));
    snprintf(apath, sizeof(apath), "%s", conf_file("admin-secret\n"));
    assert_int_equal(PARSE("--token-file", path,
                           "--admin-token-file="
                           "x"),
                     TT_CONFIG_ERR_RUNTIME);
    assert_non_null(strstr(err, "--admin-token-file"));
    assert_int_equal(
        PARSE("--token-file", path, "--admin-token-file", apath, "--admin-listen", "0.0.0.0:9091"),
        TT_CONFIG_RUN);
    assert_string_equal(cfg.token, "fleet-secret");
    assert_string_equal(cfg.admin_token, "admin-secret");
    assert_string_equal(cfg.token_file, path);
    expect_error(PARSE("--token", "a", "--token-file", path), "cannot be used together");
    expect_error(PARSE("--admin-token", "a", "--admin-token-file", apath),
                 "cannot be used together");
    expect_error(PARSE("--token-file", path, "--tokens-file", "f"), "cannot be used together");
    assert_int_equal(PARSE("--token-file", "/nonexistent/tok"), TT_CONFIG_ERR_RUNTIME);
    assert_non_null(strstr(err, "/nonexistent/tok"));
    expect_error(PARSE("--token-file", (char *)conf_file("\n")), "--token-file");
    expect_error(PARSE("--token-file", (char *)conf_file("a b\n")), "--token-file");
    expect_error(PARSE("--token-file", ""), "--token-file");
    /* the environment, when no flag gives the token */
    setenv("TETHER_TOKEN", "env-fleet", 1);
    setenv("TETHER_ADMIN_TOKEN", "env-admin", 1);
    assert_int_equal(PARSE("--admin-listen", "0.0.0.0:9091"), TT_CONFIG_RUN);
    assert_string_equal(cfg.token, "env-fleet");
    assert_string_equal(cfg.admin_token, "env-admin");
    assert_int_equal(PARSE("--token", "flag", "--admin-token-file", apath), TT_CONFIG_RUN);
    assert_string_equal(cfg.token, "flag");
    assert_string_equal(cfg.admin_token, "admin-secret");
    assert_int_equal(PARSE("--token-file", path), TT_CONFIG_RUN);
    assert_string_equal(cfg.token, "fleet-secret");
    assert_int_equal(PARSE("--tokens-file", "f"), TT_CONFIG_RUN); /* per-device tokens: no env */
    assert_string_equal(cfg.token, "");
    setenv("TETHER_TOKEN", "bad token", 1);
    expect_error(PARSE(), "TETHER_TOKEN");
    setenv("TETHER_TOKEN", "", 1);
    assert_int_equal(PARSE(), TT_CONFIG_RUN);
    assert_string_equal(cfg.token, "");
    unsetenv("TETHER_TOKEN");
    unsetenv("TETHER_ADMIN_TOKEN");
    /* and from the config file */
    char text[160];
    snprintf(text, sizeof(text), "token-file %s\n", path);
    assert_int_equal(PARSE("--config", (char *)conf_file(text)), TT_CONFIG_RUN);
    assert_string_equal(cfg.token, "fleet-secret");
    unlink(path);
    unlink(apath);
}

static void test_limits(void **state)
{
    (void)state;
    assert_int_equal(PARSE("--log-level", "info"), TT_CONFIG_RUN);
    assert_int_equal(cfg.max_streams, 1024);
    assert_int_equal(cfg.head_timeout_ms, 30000);
    assert_int_equal(cfg.idle_timeout_ms, 60000);
    assert_int_equal(PARSE("--max-streams", "4", "--head-timeout=2s", "--idle-timeout", "0s"),
                     TT_CONFIG_RUN);
    assert_int_equal(cfg.max_streams, 4);
    assert_int_equal(cfg.head_timeout_ms, 2000);
    assert_int_equal(cfg.idle_timeout_ms, 0);
    assert_int_equal(PARSE("--max-streams=65535", "--idle-timeout", "2m"), TT_CONFIG_RUN);
    assert_int_equal(cfg.max_streams, 65535);
    assert_int_equal(cfg.idle_timeout_ms, 120000);
    expect_error(PARSE("--max-streams", "0"), "--max-streams");
    expect_error(PARSE("--max-streams", "65536"), "--max-streams");
    expect_error(PARSE("--max-streams", "-1"), "--max-streams");
    expect_error(PARSE("--max-streams", "12x"), "--max-streams");
    expect_error(PARSE("--head-timeout", "0s"), "--head-timeout");
    expect_error(PARSE("--head-timeout", "soon"), "--head-timeout");
    expect_error(PARSE("--idle-timeout", "8d"), "--idle-timeout");
    /* the fleet token's caps: names 100000, ports half of --tcp-ports (at least 1) */
    assert_int_equal(PARSE("--tcp-ports", "20000-20063"), TT_CONFIG_RUN);
    assert_int_equal(cfg.max_names_per_token, 100000);
    assert_int_equal(cfg.max_ports_per_token, 32);
    assert_int_equal(PARSE("--tcp-ports", "20000-20000"), TT_CONFIG_RUN);
    assert_int_equal(cfg.max_ports_per_token, 1);
    assert_int_equal(PARSE("--max-names-per-token", "7", "--max-ports-per-token=9"), TT_CONFIG_RUN);
    assert_int_equal(cfg.max_names_per_token, 7);
    assert_int_equal(cfg.max_ports_per_token, 9);
    expect_error(PARSE("--max-names-per-token", "0"), "--max-names-per-token");
    expect_error(PARSE("--max-names-per-token", "1000000001"), "--max-names-per-token");
    expect_error(PARSE("--max-ports-per-token", "65536"), "--max-ports-per-token");
    expect_error(PARSE("--max-ports-per-token", "x"), "--max-ports-per-token");
    assert_int_equal(PARSE("--log-level", "info"), TT_CONFIG_RUN);
    assert_int_equal(cfg.new_names_per_sec, 100);
    assert_int_equal(PARSE("--new-names-per-second", "5000"), TT_CONFIG_RUN);
    assert_int_equal(cfg.new_names_per_sec, 5000);
    expect_error(PARSE("--new-names-per-second", "0"), "--new-names-per-second");
    expect_error(PARSE("--new-names-per-second", "1000001"), "--new-names-per-second");
}

/* The abuse limits (limits.h): defaults, the per-client share derived from --max-streams
 * unless given, 0 meaning "no cap" where allowed, ranges, and the config file. */
static void test_abuse_limits(void **state)
{
    (void)state;
    assert_int_equal(PARSE("--log-level", "info"), TT_CONFIG_RUN);
    assert_int_equal(cfg.max_pending, 0); /* from the descriptor limit, at start */
    assert_int_equal(cfg.max_pending_per_addr, 128);
    assert_int_equal(cfg.max_streams_per_client, 128); /* 1024 / 8 */
    assert_int_equal(cfg.body_timeout_ms, 30000);
    assert_int_equal(cfg.body_min_rate, 500);
    assert_int_equal(cfg.tcp_idle_timeout_ms, 3600000);
    assert_int_equal(PARSE("--max-streams", "64"), TT_CONFIG_RUN);
    assert_int_equal(cfg.max_streams_per_client, 16); /* at least 16 */
    assert_int_equal(PARSE("--max-streams", "4"), TT_CONFIG_RUN);
    assert_int_equal(cfg.max_streams_per_client, 4); /* never more than --max-streams */
    assert_int_equal(PARSE("--max-pending", "5000", "--max-pending-per-addr=0",
                           "--max-streams-per-client", "0", "--body-timeout", "0s",
                           "--body-min-rate=0", "--tcp-idle-timeout", "0s"),
                     TT_CONFIG_RUN);
    assert_int_equal(cfg.max_pending, 5000);
    assert_int_equal(cfg.max_pending_per_addr, 0);
    assert_int_equal(cfg.max_streams_per_client, 0);
    assert_int_equal(cfg.body_timeout_ms, 0);
    assert_int_equal(cfg.body_min_rate, 0);
    assert_int_equal(cfg.tcp_idle_timeout_ms, 0);
    assert_int_equal(PARSE("--body-timeout", "1h", "--tcp-idle-timeout", "7d",
                           "--max-streams-per-client", "65535"),
                     TT_CONFIG_RUN);
    assert_int_equal(cfg.body_timeout_ms, 3600000);
    assert_int_equal(cfg.tcp_idle_timeout_ms, 7ull * 86400000);
    expect_error(PARSE("--max-pending", "0"), "--max-pending");
    expect_error(PARSE("--max-pending", "10000001"), "--max-pending");
    expect_error(PARSE("--max-pending-per-addr", "-1"), "--max-pending-per-addr");
    expect_error(PARSE("--max-streams-per-client", "65536"), "--max-streams-per-client");
    expect_error(PARSE("--max-streams-per-client", " 5"), "--max-streams-per-client");
    expect_error(PARSE("--body-timeout", "61m"), "--body-timeout");
    expect_error(PARSE("--body-min-rate", "fast"), "--body-min-rate");
    expect_error(PARSE("--body-min-rate", "18446744073709551616"), "--body-min-rate");
    expect_error(PARSE("--tcp-idle-timeout", "8d"), "--tcp-idle-timeout");
    expect_error(PARSE("--tcp-idle-timeout", ""), "--tcp-idle-timeout");
    const char *path = conf_file("max-pending-per-addr 32\nmax_streams_per_client = 7\n"
                                 "tcp-idle-timeout: 5m\n");
    assert_int_equal(PARSE("--config", (char *)path), TT_CONFIG_RUN);
    unlink(path);
    assert_int_equal(cfg.max_pending_per_addr, 32);
    assert_int_equal(cfg.max_streams_per_client, 7);
    assert_int_equal(cfg.tcp_idle_timeout_ms, 300000);
}

/* --tls-listen with its files; device URLs stay http unless --public-url says https. */
static void test_tls(void **state)
{
    char url[256];
    (void)state;
    assert_int_equal(PARSE("--tls-listen", "0.0.0.0:8443", "--tls-cert", "c.pem", "--tls-key=k.pem",
                           "--tls-listen", "[::1]:443"),
                     TT_CONFIG_RUN);
    assert_int_equal(cfg.ntls_listen, 2);
    assert_string_equal(cfg.tls_listen[0].host, "0.0.0.0");
    assert_int_equal(cfg.tls_listen[0].port, 8443);
    assert_string_equal(cfg.tls_listen[1].host, "::1");
    assert_string_equal(cfg.tls_cert, "c.pem");
    assert_string_equal(cfg.tls_key, "k.pem");
    assert_int_equal(cfg.nlisten, 1);
    assert_true(tt_config_device_url(&cfg, "abc", url, sizeof(url)) > 0);
    assert_string_equal(url, "http://abc.localhost:8080");
    assert_int_equal(PARSE("--tls-listen", "0.0.0.0:443", "--tls-cert", "c", "--tls-key", "k",
                           "--public-url", "https://relay.example.com"),
                     TT_CONFIG_RUN);
    assert_true(tt_config_device_url(&cfg, "abc", url, sizeof(url)) > 0);
    assert_string_equal(url, "https://abc.relay.example.com");
    expect_error(PARSE("--tls-listen", "0.0.0.0:443"), "--tls-listen needs --tls-cert");
    expect_error(PARSE("--tls-listen", "0.0.0.0:443", "--tls-cert", "c"), "--tls-key");
    expect_error(PARSE("--tls-cert", "c", "--tls-key", "k"), "without --tls-listen");
    expect_error(PARSE("--tls-listen", "example.com:443", "--tls-cert", "c", "--tls-key", "k"),
                 "not an IP address");
    expect_error(PARSE("--tls-cert", ""), "--tls-cert");
}

static void test_listen_limit(void **state)
{
    (void)state;
    expect_error(PARSE("--listen", "127.0.0.1:1", "--listen", "127.0.0.1:2", "--listen",
                       "127.0.0.1:3", "--listen", "127.0.0.1:4", "--listen", "127.0.0.1:5",
                       "--listen", "127.0.0.1:6", "--listen", "127.0.0.1:7", "--listen",
                       "127.0.0.1:8", "--listen", "127.0.0.1:9"),
                 "at most");
}

/* --webhook, its secret's three sources, --webhook-queue, --webhook-max-age, and the config
 * file's spelling. */
static void test_webhook_flags(void **state)
{
    (void)state;
    char path[64];
    unsetenv("TETHER_WEBHOOK_SECRET");
    assert_int_equal(PARSE("--data-dir", "/tmp/x"), TT_CONFIG_RUN);
    assert_int_equal(cfg.nwebhooks, 0);
    assert_int_equal(cfg.webhook_queue, TT_CONFIG_WEBHOOK_QUEUE);
    assert_int_equal(cfg.webhook_max_age_ms, TT_CONFIG_WEBHOOK_MAX_AGE_MS);
    assert_string_equal(cfg.webhook_secret, "");
    assert_int_equal(PARSE("--webhook", "http://127.0.0.1:8081/a", "--webhook=https://h.example/b",
                           "--webhook-secret", "s3cret", "--webhook-queue", "5",
                           "--webhook-max-age", "2m"),
                     TT_CONFIG_RUN);
    assert_int_equal(cfg.nwebhooks, 2);
    assert_string_equal(cfg.webhooks[1], "https://h.example/b");
    assert_string_equal(cfg.webhook_secret, "s3cret");
    assert_int_equal(cfg.webhook_queue, 5);
    assert_int_equal(cfg.webhook_max_age_ms, 120000);
    snprintf(path, sizeof(path), "%s", conf_file("from-file\n"));
    assert_int_equal(PARSE("--webhook-secret-file", path), TT_CONFIG_RUN);
    assert_string_equal(cfg.webhook_secret, "from-file");
    setenv("TETHER_WEBHOOK_SECRET", "from-env", 1);
    assert_int_equal(PARSE("--webhook", "http://h/"), TT_CONFIG_RUN);
    assert_string_equal(cfg.webhook_secret, "from-env");
    assert_int_equal(PARSE("--webhook-secret", "flag"), TT_CONFIG_RUN);
    assert_string_equal(cfg.webhook_secret, "flag");
    unsetenv("TETHER_WEBHOOK_SECRET");
    expect_error(PARSE("--webhook", "ftp://h/"), "--webhook: ");
    expect_error(PARSE("--webhook", "http://a:b@h/"), "--webhook: user info");
    expect_error(PARSE("--webhook-secret", "a b"), "--webhook-secret");
    expect_error(PARSE("--webhook-secret", "x", "--webhook-secret-file", path), "together");
    expect_error(PARSE("--webhook-queue", "0"), "--webhook-queue");
    expect_error(PARSE("--webhook-max-age", "0s"), "--webhook-max-age");
    expect_error(PARSE("--webhook", "http://h/1", "--webhook", "http://h/2", "--webhook",
                       "http://h/3", "--webhook", "http://h/4", "--webhook", "http://h/5",
                       "--webhook", "http://h/6", "--webhook", "http://h/7", "--webhook",
                       "http://h/8", "--webhook", "http://h/9"),
                 "at most 8");
    assert_int_equal(PARSE("--webhook-secret-file", "/nonexistent/secret"), TT_CONFIG_ERR_RUNTIME);
    snprintf(path, sizeof(path), "%s",
             conf_file("webhook http://127.0.0.1:9/x\nwebhook_queue = 7\n"));
    assert_int_equal(PARSE("--config", path), TT_CONFIG_RUN);
    assert_int_equal(cfg.nwebhooks, 1);
    assert_int_equal(cfg.webhook_queue, 7);
}

static void test_metrics_per_device(void **state)
{
    (void)state;
    assert_int_equal(PARSE("--data-dir", "d"), TT_CONFIG_RUN);
    assert_int_equal(cfg.metrics_per_device, TT_METRICS_PER_DEVICE_AUTO);
    assert_int_equal(PARSE("--metrics-per-device", "on"), TT_CONFIG_RUN);
    assert_int_equal(cfg.metrics_per_device, TT_METRICS_PER_DEVICE_ON);
    assert_int_equal(PARSE("--metrics-per-device=off"), TT_CONFIG_RUN);
    assert_int_equal(cfg.metrics_per_device, TT_METRICS_PER_DEVICE_OFF);
    assert_int_equal(PARSE("--metrics-per-device", "off", "--metrics-per-device", "auto"),
                     TT_CONFIG_RUN);
    assert_int_equal(cfg.metrics_per_device, TT_METRICS_PER_DEVICE_AUTO);
    expect_error(PARSE("--metrics-per-device", "yes"), "--metrics-per-device");
    expect_error(PARSE("--metrics-per-device"), "needs a value");
    const char *p = conf_file("metrics-per-device on\n");
    assert_int_equal(PARSE("--config", (char *)p), TT_CONFIG_RUN);
    assert_int_equal(cfg.metrics_per_device, TT_METRICS_PER_DEVICE_ON);
    unlink(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_all_flags),
        cmocka_unit_test(test_public_url_and_bind),
        cmocka_unit_test(test_help_version),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_listen_limit),
        cmocka_unit_test(test_metrics_per_device),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_abuse_limits),
        cmocka_unit_test(test_admin_token),
        cmocka_unit_test(test_token_sources),
        cmocka_unit_test(test_config_file),
        cmocka_unit_test(test_redis_url),
        cmocka_unit_test(test_redis_sentinel_url),
        cmocka_unit_test(test_cluster_flags),
        cmocka_unit_test(test_webhook_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
