/* test_agentconf.c - unit tests for src/agent/agentconf.c: the public tether_config_* functions
 * (servers, name, token, services and their targets), the one-line messages, and the deep copy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "agent/agentconf.h"

static tether_config *new_cfg(void)
{
    tether_config *cfg = NULL;
    assert_int_equal(tether_config_new(&cfg), 0);
    assert_non_null(cfg);
    assert_string_equal(tether_config_error(cfg), "");
    return cfg;
}

static void test_servers(void **state)
{
    tether_config *cfg = new_cfg();
    (void)state;

    assert_int_equal(tether_config_add_server(cfg, "ws://127.0.0.1:8080"), 0);
    assert_int_equal(tether_config_add_server(cfg, "ws://relay.example.com/tether"), 0);
    assert_int_equal(tether_config_add_server(cfg, "ws://[::1]:9000"), 0);
    assert_int_equal(cfg->nservers, 3);
    assert_string_equal(cfg->servers[1], "ws://relay.example.com/tether");

    assert_int_equal(tether_config_add_server(cfg, "wss://relay.example.com"), 0);
    assert_string_equal(cfg->servers[3], "wss://relay.example.com");
    assert_int_equal(tether_config_add_server(cfg, "ftp://x:1"), TETHER_ERR_CONFIG);
    assert_non_null(strstr(tether_config_error(cfg), "ftp://x:1"));
    assert_int_equal(tether_config_add_server(cfg, "nonsense"), TETHER_ERR_CONFIG);
    assert_int_equal(tether_config_add_server(cfg, "ws://u:p@h:1"), TETHER_ERR_CONFIG);
    assert_int_equal(cfg->nservers, 4);
    assert_int_equal(tether_config_add_server(cfg, NULL), TETHER_ERR_INVAL);
    assert_int_equal(tether_config_add_server(NULL, "ws://a:1"), TETHER_ERR_INVAL);

    for (int i = 4; i < TETHER_MAX_SERVERS; i++)
        assert_int_equal(tether_config_add_server(cfg, "ws://127.0.0.1:1"), 0);
    assert_int_equal(tether_config_add_server(cfg, "ws://127.0.0.1:1"), TETHER_ERR_CONFIG);
    assert_non_null(strstr(tether_config_error(cfg), "too many"));
    tether_config_free(cfg);
}

static void test_name_and_token(void **state)
{
    tether_config *cfg = new_cfg();
    char big[TETHER_MAX_TOKEN + 2];
    (void)state;

    assert_int_equal(tether_config_set_name(cfg, "SN-0042_a.b"), 0);
    assert_int_equal(tether_config_set_name(cfg, "dev2"), 0); /* replaces */
    assert_string_equal(cfg->name, "dev2");
    assert_int_equal(tether_config_set_name(cfg, ""), TETHER_ERR_CONFIG);
    assert_non_null(strstr(tether_config_error(cfg), "device name"));
    assert_int_equal(tether_config_set_name(cfg, "a b"), TETHER_ERR_CONFIG);
    assert_int_equal(tether_config_set_name(cfg, "a\nb"), TETHER_ERR_CONFIG);
    assert_string_equal(cfg->name, "dev2");

    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(tether_config_set_token(cfg, big), TETHER_ERR_CONFIG);
    assert_non_null(strstr(tether_config_error(cfg), "too long"));
    big[TETHER_MAX_TOKEN] = '\0';
    assert_int_equal(tether_config_set_token(cfg, big), 0);
    assert_int_equal(tether_config_set_token(cfg, NULL), TETHER_ERR_INVAL);
    tether_config_free(cfg);
}

static void test_service_names(void **state)
{
    (void)state;
    assert_true(tt_agentconf_valid_service_name("http"));
    assert_true(tt_agentconf_valid_service_name("a"));
    assert_true(tt_agentconf_valid_service_name("my-ssh-2"));
    assert_true(tt_agentconf_valid_service_name("abcdefghijklmnopqrstuvwxyz012345"));
    assert_false(tt_agentconf_valid_service_name("abcdefghijklmnopqrstuvwxyz0123456"));
    assert_false(tt_agentconf_valid_service_name(""));
    assert_false(tt_agentconf_valid_service_name("SSH"));
    assert_false(tt_agentconf_valid_service_name("a_b"));
    assert_false(tt_agentconf_valid_service_name("a.b"));
    assert_false(tt_agentconf_valid_service_name("a b"));
}

static void test_services(void **state)
{
    tether_config *cfg = new_cfg();
    (void)state;

    assert_int_equal(tether_config_add_http(cfg, NULL, "127.0.0.1:8000"), 0);
    assert_string_equal(cfg->services[0].name, "http");
    assert_int_equal(cfg->services[0].kind, TETHER_SERVICE_HTTP);
    assert_string_equal(cfg->services[0].host, "127.0.0.1");
    assert_int_equal(cfg->services[0].port, 8000);
    assert_string_equal(cfg->services[0].target, "127.0.0.1:8000");

    assert_int_equal(tether_config_add_http(cfg, NULL, "localhost:8001"), 0);
    assert_string_equal(cfg->services[1].name, "http-2");
    assert_int_equal(tether_config_add_tcp(cfg, "ssh", "[::1]:22"), 0);
    assert_string_equal(cfg->services[2].host, "::1");
    assert_string_equal(cfg->services[2].target, "[::1]:22");
    assert_int_equal(cfg->services[2].port, 22);

    assert_int_equal(tether_config_add_tcp(cfg, "ssh", "127.0.0.1:2222"), TETHER_ERR_CONFIG);
    assert_string_equal(tether_config_error(cfg), "duplicate service name 'ssh'");
    assert_int_equal(tether_config_add_http(cfg, "http", "127.0.0.1:1"), TETHER_ERR_CONFIG);
    assert_int_equal(tether_config_add_tcp(cfg, "Bad", "127.0.0.1:1"), TETHER_ERR_CONFIG);
    assert_non_null(strstr(tether_config_error(cfg), "'Bad'"));
    assert_int_equal(tether_config_add_tcp(cfg, NULL, "127.0.0.1:1"), TETHER_ERR_INVAL);
    assert_int_equal(tether_config_add_tcp(cfg, "x", "127.0.0.1:notaport"), TETHER_ERR_CONFIG);
    assert_non_null(strstr(tether_config_error(cfg), "notaport"));
    assert_int_equal(tether_config_add_tcp(cfg, "x", "127.0.0.1:0"), TETHER_ERR_CONFIG);
    assert_int_equal(tether_config_add_tcp(cfg, "x", "127.0.0.1"), TETHER_ERR_CONFIG);
    assert_int_equal(tether_config_add_tcp(cfg, "x", ":80"), TETHER_ERR_CONFIG);
    assert_int_equal(tether_config_add_tcp(cfg, "x", "127.0.0.1:65536"), TETHER_ERR_CONFIG);
    assert_int_equal(cfg->nservices, 3);

    for (int i = 3; i < TETHER_MAX_SERVICES; i++)
        assert_int_equal(tether_config_add_http(cfg, NULL, "127.0.0.1:80"), 0);
    assert_string_equal(cfg->services[TETHER_MAX_SERVICES - 1].name, "http-7");
    assert_int_equal(tether_config_add_tcp(cfg, "more", "127.0.0.1:80"), TETHER_ERR_CONFIG);
    assert_non_null(strstr(tether_config_error(cfg), "too many services"));
    tether_config_free(cfg);
}

static void test_auto_name_skips_taken(void **state)
{
    tether_config *cfg = new_cfg();
    char name[TETHER_MAX_SERVICE_NAME + 1];
    (void)state;

    assert_int_equal(tether_config_add_tcp(cfg, "http", "127.0.0.1:1"), 0);
    assert_int_equal(tether_config_add_tcp(cfg, "http-2", "127.0.0.1:2"), 0);
    tt_agentconf_auto_http_name(cfg, name);
    assert_string_equal(name, "http-3");
    tether_config_free(cfg);
}

static void test_proxy_tls_and_check(void **state)
{
    tether_config *cfg = new_cfg();
    tether_config *copy = NULL;
    (void)state;

    assert_int_equal(tether_config_set_proxy(cfg, "https://proxy:3128"), TETHER_ERR_CONFIG);
    assert_non_null(strstr(tether_config_error(cfg), "HTTPS proxies are not supported"));
    assert_null(cfg->proxy);
    assert_int_equal(tether_config_set_proxy(cfg, "http://u:secret@proxy:3128"), 0);
    assert_string_equal(cfg->proxy, "http://u:secret@proxy:3128");
    assert_int_equal(tether_config_set_proxy(cfg, "ftp://u:secret@proxy"), TETHER_ERR_CONFIG);
    assert_null(strstr(tether_config_error(cfg), "secret"));
    assert_string_equal(cfg->proxy, "http://u:secret@proxy:3128"); /* unchanged on failure */
    assert_int_equal(tether_config_set_proxy(cfg, ""), 0);
    assert_string_equal(cfg->proxy, "");
    assert_int_equal(tether_config_set_proxy(cfg, "proxy:3128"), 0);
    assert_int_equal(tether_config_set_no_proxy(cfg, "localhost,.lan"), 0);
    assert_int_equal(tether_config_set_no_proxy(NULL, "x"), TETHER_ERR_INVAL);
    assert_int_equal(tether_config_set_proxy(cfg, NULL), TETHER_ERR_INVAL);
    assert_int_equal(tether_config_set_ca_file(cfg, "/etc/ssl/ca.pem"), 0);
    assert_int_equal(tether_config_set_insecure(cfg, true), 0);
    /* the DNS server: checked, kept as given, unchanged by a refusal, NULL for none */
    assert_int_equal(tether_config_set_dns(cfg, "10.0.0.53"), 0);
    assert_string_equal(cfg->dns, "10.0.0.53");
    assert_int_equal(tether_config_set_dns(cfg, NULL), 0);
    assert_null(cfg->dns);
    assert_int_equal(tether_config_set_dns(cfg, "[2001:db8::53]:5353"), 0);
    assert_int_equal(tether_config_set_dns(cfg, "ns.example"), TETHER_ERR_CONFIG);
    assert_non_null(strstr(tether_config_error(cfg), "not an IP address"));
    assert_string_equal(cfg->dns, "[2001:db8::53]:5353");
    assert_int_equal(tether_config_set_dns(NULL, "1.1.1.1"), TETHER_ERR_INVAL);
    /* the state dir and the device key */
    assert_int_equal(tether_config_set_state_dir(cfg, "/var/lib/x"), 0);
    assert_string_equal(cfg->state_dir, "/var/lib/x");
    assert_int_equal(tether_config_set_state_dir(cfg, NULL), 0);
    assert_null(cfg->state_dir);
    assert_int_equal(tether_config_set_state_dir(cfg, ""), 0);
    assert_string_equal(cfg->state_dir, "");
    assert_int_equal(tether_config_set_state_dir(NULL, "x"), TETHER_ERR_INVAL);
    assert_int_equal(tether_config_set_device_key(cfg, "SECRETKEY"), TETHER_ERR_CONFIG);
    assert_null(strstr(tether_config_error(cfg), "SECRETKEY"));
    assert_int_equal(tether_config_set_device_key(
                         cfg, "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"),
                     TETHER_ERR_CONFIG);
    assert_int_equal(tether_config_set_device_key(
                         cfg, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
                     0);
    assert_int_equal(tether_config_set_device_key(cfg, NULL), 0);
    assert_null(cfg->device_key);
    assert_int_equal(tether_config_set_device_key(
                         cfg, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
                     0);

    assert_int_equal(tether_config_check(cfg), TETHER_ERR_CONFIG);
    assert_non_null(strstr(tether_config_error(cfg), "server"));
    assert_int_equal(tether_config_add_server(cfg, "ws://127.0.0.1:8080"), 0);
    assert_int_equal(tether_config_check(cfg), TETHER_ERR_CONFIG);
    assert_non_null(strstr(tether_config_error(cfg), "name"));
    assert_int_equal(tether_config_set_name(cfg, "d1"), 0);
    assert_int_equal(tether_config_check(cfg), TETHER_ERR_CONFIG);
    assert_non_null(strstr(tether_config_error(cfg), "token"));
    assert_int_equal(tether_config_set_token(cfg, "t"), 0);
    assert_int_equal(tether_config_check(cfg), TETHER_ERR_CONFIG);
    assert_non_null(strstr(tether_config_error(cfg), "service"));
    assert_int_equal(tether_config_add_http(cfg, NULL, "127.0.0.1:8000"), 0);
    assert_int_equal(tether_config_check(cfg), 0);
    assert_string_equal(tether_config_error(cfg), "");

    assert_int_equal(tt_agentconf_dup(cfg, &copy), 0);
    tether_config_free(cfg);
    assert_string_equal(copy->servers[0], "ws://127.0.0.1:8080");
    assert_string_equal(copy->name, "d1");
    assert_string_equal(copy->token, "t");
    assert_string_equal(copy->state_dir, "");
    assert_string_equal(copy->device_key,
                        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    assert_string_equal(copy->ca_file, "/etc/ssl/ca.pem");
    assert_string_equal(copy->dns, "[2001:db8::53]:5353");
    assert_string_equal(copy->proxy, "proxy:3128");
    assert_string_equal(copy->no_proxy, "localhost,.lan");
    assert_true(copy->insecure);
    assert_string_equal(copy->services[0].name, "http");
    assert_int_equal(tether_config_check(copy), 0);
    tether_config_free(copy);

    assert_int_equal(tether_config_check(NULL), TETHER_ERR_INVAL);
    assert_string_equal(tether_config_error(NULL), "");
    tether_config_free(NULL);
    assert_int_equal(tether_config_new(NULL), TETHER_ERR_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_servers),
        cmocka_unit_test(test_name_and_token),
        cmocka_unit_test(test_service_names),
        cmocka_unit_test(test_services),
        cmocka_unit_test(test_auto_name_skips_taken),
        cmocka_unit_test(test_proxy_tls_and_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
