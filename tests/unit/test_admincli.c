/* test_admincli.c - unit tests for src/relay/admin/admincli.c's printing: the devices table
 * (columns sized to their content, the node column in cluster mode only, TCP services, a device
 * name with control characters made harmless), one device's lines, answers that are not the API's,
 * and the usage and exit statuses of arguments refused before any request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "relay/admin/admincli.h"

static char *out;
static size_t outlen;

static FILE *open_out(void)
{
    free(out);
    out = NULL;
    outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    assert_non_null(f);
    return f;
}

static void test_devices_table(void **state)
{
    (void)state;
    const char *body =
        "{\"devices\":[{\"name\":\"pi-kitchen\",\"online\":true,\"label\":\"k3j9x2mq\","
        "\"url\":\"http://k3j9x2mq.localhost:8080\",\"services\":[{\"name\":\"http\",\"kind\":"
        "\"http\",\"url\":\"http://k3j9x2mq.localhost:8080\"},{\"name\":\"ssh\",\"kind\":\"tcp\","
        "\"host\":\"localhost\",\"port\":20001},{\"name\":\"db\",\"kind\":\"tcp\",\"private\":"
        "true}],\"connected_since\":\"2026-12-07T10:00:00Z\",\"last_seen\":"
        "\"2026-12-07T10:05:00Z\",\"remote_addr\":\"192.0.2.7:4000\",\"bytes_in\":12,"
        "\"bytes_out\":34,\"streams\":5},{\"name\":\"evil\\u001b[2Jname\",\"online\":false,"
        "\"label\":\"abcdefgh\",\"url\":\"http://abcdefgh.localhost:8080\",\"services\":[],"
        "\"connected_since\":null,\"last_seen\":null,\"remote_addr\":null,\"bytes_in\":0,"
        "\"bytes_out\":0,\"streams\":0}]}";
    FILE *f = open_out();
    assert_int_equal(tt_admincli_print_devices(f, body, strlen(body)), 0);
    fclose(f);
    assert_non_null(strstr(out, "NAME          STATE    URL"));
    assert_null(strstr(out, "NODE"));
    assert_non_null(strstr(out, "pi-kitchen    online   http://k3j9x2mq.localhost:8080  "
                                "ssh:20001,db:private  12        2026-12-07T10:05:00Z\n"));
    assert_non_null(strstr(out, "evil?[2Jname  offline"));
    assert_null(strchr(out, 0x1b));

    const char *cluster = "{\"devices\":[{\"name\":\"a\",\"online\":true,\"node\":\"node-b\"}]}";
    f = open_out();
    assert_int_equal(tt_admincli_print_devices(f, cluster, strlen(cluster)), 0);
    fclose(f);
    assert_non_null(strstr(out, "NODE"));
    assert_non_null(strstr(out, "node-b"));

    f = open_out();
    assert_int_equal(tt_admincli_print_devices(f, "{}", 2), -1);
    assert_int_equal(tt_admincli_print_devices(f, "nope", 4), -1);
    assert_int_equal(tt_admincli_print_devices(f, "{\"devices\":[]}", 14), 0);
    fclose(f);
}

static void test_device_lines(void **state)
{
    (void)state;
    const char *body =
        "{\"name\":\"pi-kitchen\",\"online\":true,\"label\":\"k3j9x2mq\",\"url\":\"http://x\","
        "\"services\":[{\"name\":\"ssh\",\"kind\":\"tcp\",\"host\":\"localhost\",\"port\":20001}],"
        "\"connected_since\":null,\"last_seen\":\"2026-12-07T10:05:00Z\",\"remote_addr\":null,"
        "\"bytes_in\":1,\"bytes_out\":2,\"streams\":3}";
    FILE *f = open_out();
    assert_int_equal(tt_admincli_print_device(f, body, strlen(body)), 0);
    fclose(f);
    assert_non_null(strstr(out, "name:            pi-kitchen\nstate:           online\n"));
    assert_non_null(strstr(out, "service:         tcp ssh localhost:20001\n"));
    assert_non_null(strstr(out, "connected since: -\n"));
    assert_non_null(strstr(out, "streams:         3\n"));
    f = open_out();
    assert_int_equal(tt_admincli_print_device(f, "[]", 2), -1);
    assert_int_equal(tt_admincli_print_device(f, "{\"x\":1}", 7), -1);
    fclose(f);
}

static int run(const char *a1, const char *a2, const char *a3)
{
    char *argv[] = {"admin", (char *)a1, (char *)a2, (char *)a3, NULL};
    int argc = 1 + (a1 != NULL) + (a2 != NULL) + (a3 != NULL);
    return tt_admincli_main(argc, argv);
}

static void test_usage_errors(void **state)
{
    (void)state;
    assert_int_equal(run(NULL, NULL, NULL), 2);
    assert_int_equal(run("frob", NULL, NULL), 2);
    assert_int_equal(run("devices", "x", NULL), 2);
    assert_int_equal(run("device", NULL, NULL), 2);
    assert_int_equal(run("grant", "u", "a/b"), 2); /* no --ttl */
    assert_int_equal(run("revoke", "--json", "x"), 2);
    assert_int_equal(run("devices", "--admin-url", NULL), 2);
    assert_int_equal(run("--admin-url", "ftp://x", "devices"), 2);
    assert_int_equal(run("--help", NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_devices_table),
        cmocka_unit_test(test_device_lines),
        cmocka_unit_test(test_usage_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(out);
    return rc;
}
