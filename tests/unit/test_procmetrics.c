/* test_procmetrics.c - unit tests for src/relay/admin/procmetrics.c: /proc/PID/stat with a command
 * name holding spaces and parentheses and negative fields, the limits and btime lines, a fake
 * procfs directory read whole, this process's own /proc, and the Prometheus text (label escaping, a
 * series left out when its figure is missing, whole lines only when out is short). */
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

#include "tether_err.h"
#include "relay/admin/procmetrics.h"

/* utime 250, stime 150, starttime 1000 (ticks), rss 300 pages; priority and nice negative */
static const char stat_text[] = "4242 (tet) her (d)) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 "
                                "150 0 0 -20 -5 3 0 1000 123456789 300 18446744073709551615 1 1 "
                                "0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";

static void test_procmetrics_parse_stat(void **state)
{
    (void)state;
    struct tt_procmetrics m;
    memset(&m, 0, sizeof(m));
    assert_int_equal(tt_procmetrics_parse_stat(stat_text, 100, 4096, 1700000000, &m), 0);
    assert_true(m.has_stat);
    assert_true(m.cpu_seconds > 3.99 && m.cpu_seconds < 4.01);
    assert_true(m.start_time > 1700000009.99 && m.start_time < 1700000010.01);
    assert_int_equal(m.rss_bytes, 300u * 4096u);
}

static void test_procmetrics_parse_stat_bad(void **state)
{
    (void)state;
    struct tt_procmetrics m;
    memset(&m, 0, sizeof(m));
    assert_int_equal(tt_procmetrics_parse_stat("", 100, 4096, 0, &m), TETHER_ERR_INVAL);
    assert_int_equal(tt_procmetrics_parse_stat("1 (x) S 1 2 3", 100, 4096, 0, &m),
                     TETHER_ERR_INVAL);
    assert_int_equal(tt_procmetrics_parse_stat("1 (x) S 1 1 1 0 -1 1 1 1 1 1 x 1 0 0 20 0 1 0 "
                                               "5 6 7 8",
                                               100, 4096, 0, &m),
                     TETHER_ERR_INVAL);
    assert_int_equal(tt_procmetrics_parse_stat(stat_text, 0, 4096, 0, &m), TETHER_ERR_INVAL);
    assert_false(m.has_stat);
}

static void test_procmetrics_parse_limits(void **state)
{
    (void)state;
    const char limits[] =
        "Limit                     Soft Limit           Hard Limit           Units\n"
        "Max cpu time              unlimited            unlimited            "
        "seconds\n"
        "Max open files            1024                 524288               "
        "files\n";
    uint64_t v = 0;
    assert_int_equal(tt_procmetrics_parse_limits(limits, &v), 0);
    assert_int_equal(v, 1024);
    assert_int_equal(
        tt_procmetrics_parse_limits("Max open files  unlimited  unlimited files\n", &v),
        TETHER_ERR_INVAL);
    assert_int_equal(tt_procmetrics_parse_limits("", &v), TETHER_ERR_INVAL);
}

static void test_procmetrics_parse_btime(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_int_equal(tt_procmetrics_parse_btime("cpu 1 2 3\nbtime 1765000000\nprocesses 9\n", &v),
                     0);
    assert_int_equal(v, 1765000000u);
    assert_int_equal(tt_procmetrics_parse_btime("cpu 1 2 3\n", &v), TETHER_ERR_INVAL);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A fake procfs: every figure read from its files. */
static void test_procmetrics_read_fake(void **state)
{
    (void)state;
    char dir[] = "/tmp/tt_procmetrics_XXXXXX", p[256];
    assert_non_null(mkdtemp(dir));
    snprintf(p, sizeof(p), "%s/self", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/self/fd", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof(p), "%s/self/fd/%d", dir, i);
        write_text(p, "");
    }
    snprintf(p, sizeof(p), "%s/stat", dir);
    write_text(p, "cpu 1 2\nbtime 1700000000\n");
    snprintf(p, sizeof(p), "%s/self/stat", dir);
    write_text(p, stat_text);
    snprintf(p, sizeof(p), "%s/self/limits", dir);
    write_text(p, "Max open files            4096                 4096                 files\n");
    struct tt_procmetrics m;
    tt_procmetrics_read(dir, &m);
#ifdef __linux__
    assert_true(m.has_fds && m.has_max_fds && m.has_stat);
    assert_int_equal(m.open_fds, 5);
    assert_int_equal(m.max_fds, 4096);
    assert_int_equal(m.rss_bytes, 300u * (uint64_t)sysconf(_SC_PAGESIZE));
#endif
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof(p), "%s/self/fd/%d", dir, i);
        unlink(p);
    }
    const char *files[] = {"stat", "self/stat", "self/limits", "self/fd", "self"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
        remove(p);
    }
    rmdir(dir);
    /* nothing there: every series left out */
    tt_procmetrics_read("/nonexistent-proc", &m);
    assert_false(m.has_fds || m.has_max_fds || m.has_stat);
}

/* This process: sane figures from the real /proc. */
static void test_procmetrics_read_self(void **state)
{
    (void)state;
#ifdef __linux__
    struct tt_procmetrics m;
    tt_procmetrics_read("/proc", &m);
    assert_true(m.has_fds && m.has_max_fds && m.has_stat);
    assert_true(m.open_fds >= 3 && m.open_fds <= m.max_fds);
    assert_true(m.rss_bytes > 1024 * 1024);
    assert_true(m.start_time > 1.6e9);
#endif
}

static void test_procmetrics_format(void **state)
{
    (void)state;
    struct tt_procmetrics m = {.has_fds = true,
                               .has_max_fds = true,
                               .has_stat = true,
                               .open_fds = 12,
                               .max_fds = 1024,
                               .rss_bytes = 4096,
                               .start_time = 1700000010.5,
                               .cpu_seconds = 1.25};
    char out[4096];
    size_t n = tt_procmetrics_format(&m, "0.1.0", "abc123", "/etc/t\"x\\.pem", 1800000000, out,
                                     sizeof(out));
    assert_int_equal(n, strlen(out));
    assert_non_null(strstr(out, "\ntether_build_info{version=\"0.1.0\",commit=\"abc123\"} 1\n"));
    assert_non_null(strstr(out, "\nprocess_open_fds 12\n"));
    assert_non_null(strstr(out, "\nprocess_max_fds 1024\n"));
    assert_non_null(strstr(out, "\nprocess_resident_memory_bytes 4096\n"));
    assert_non_null(strstr(out, "\nprocess_start_time_seconds 1700000010.50\n"));
    assert_non_null(strstr(out, "\n# TYPE process_cpu_seconds_total counter\n"
                                "process_cpu_seconds_total 1.25\n"));
    assert_non_null(strstr(out, "\ntether_tls_cert_expiry_timestamp_seconds{file=\"/etc/t\\\"x\\\\"
                                ".pem\"} 1800000000\n"));
    /* figures missing: their series left out; no certificate: no expiry */
    struct tt_procmetrics none = {0};
    n = tt_procmetrics_format(&none, "0.1.0", "", NULL, 1800000000, out, sizeof(out));
    assert_int_equal(n, strlen(out));
    assert_null(strstr(out, "process_"));
    assert_non_null(strstr(out, "\ntether_build_info{version=\"0.1.0\"} 1\n"));
    assert_null(strstr(out, "tls_cert"));
    n = tt_procmetrics_format(&none, "0.1.0", NULL, "/c.pem", 0, out, sizeof(out));
    assert_null(strstr(out, "tls_cert"));
    /* too small: whole lines only, outlen returned */
    char small[100];
    n = tt_procmetrics_format(&m, "0.1.0", NULL, NULL, 0, small, sizeof(small));
    assert_int_equal(n, sizeof(small));
    size_t len = strlen(small);
    assert_true(len < sizeof(small));
    assert_true(len == 0 || small[len - 1] == '\n');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_procmetrics_parse_stat),
        cmocka_unit_test(test_procmetrics_parse_stat_bad),
        cmocka_unit_test(test_procmetrics_parse_limits),
        cmocka_unit_test(test_procmetrics_parse_btime),
        cmocka_unit_test(test_procmetrics_read_fake),
        cmocka_unit_test(test_procmetrics_read_self),
        cmocka_unit_test(test_procmetrics_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
