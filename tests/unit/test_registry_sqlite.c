/* test_registry_sqlite.c - unit tests for src/relay/store/registry_sqlite.c:
 * put/get/find_label/del, label and port ownership (UNIQUE in the schema), updates that change the
 * label or the ports, foreach, mark_offline, the heartbeat and credentials, in memory and in a
 * file; persistence across a close and across a kill -9 of the writer; device key hashes (stored
 * with a put, outliving the record, counted with their ports); the upgrade of a version-1 file;
 * refusal of a newer schema and of a file that is not a database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "tether_err.h"
#include "relay/store/registry.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_registry_XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof(path), "%s/%s", dir, TT_REGISTRY_FILE);
    return 0;
}

static int teardown(void **state)
{
    char p[160];
    (void)state;
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
        unlink(p);
    }
    rmdir(dir);
    return 0;
}

static struct tt_reg_device rec(const char *name, const char *label)
{
    struct tt_reg_device d;
    memset(&d, 0, sizeof(d));
    snprintf(d.name, sizeof(d.name), "%s", name);
    snprintf(d.label, sizeof(d.label), "%s", label);
    return d;
}

static void add_port(struct tt_reg_device *d, const char *service, uint16_t port)
{
    snprintf(d->ports[d->nports].service, sizeof(d->ports[0].service), "%s", service);
    d->ports[d->nports++].port = port;
}

static int count_cb(const struct tt_reg_device *d, void *ud)
{
    (void)d;
    (*(int *)ud)++;
    return 0;
}

static struct tt_registry *open_or_fail(const char *p)
{
    char err[TT_ERRLEN];
    struct tt_registry *r = tt_registry_sqlite_open(p, err);
    if (!r)
        fail_msg("open %s: %s", p, err);
    return r;
}

/* The behaviour every backend must have. */
static void conformance(struct tt_registry *r)
{
    struct tt_reg_device d = rec("dev1", "label1"), out;
    add_port(&d, "ssh", 20001);
    d.last_seen = 1700000000123;
    assert_int_equal(tt_registry_put(r, &d), 0);
    assert_int_equal(tt_registry_get(r, "dev1", &out), 0);
    assert_string_equal(out.name, "dev1");
    assert_string_equal(out.label, "label1");
    assert_int_equal(out.offline_since, 0);
    assert_int_equal(out.last_seen, 1700000000123);
    assert_int_equal(out.nports, 1);
    assert_string_equal(out.ports[0].service, "ssh");
    assert_int_equal(out.ports[0].port, 20001);
    assert_int_equal(tt_registry_find_label(r, "label1", &out), 0);
    assert_string_equal(out.name, "dev1");
    assert_int_equal(tt_registry_get(r, "dev2", &out), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_registry_find_label(r, "nolabel", &out), TETHER_ERR_NOT_FOUND);

    /* another name can take neither label1 nor port 20001; the failed put changes nothing */
    struct tt_reg_device e = rec("dev2", "label1");
    assert_int_equal(tt_registry_put(r, &e), TETHER_ERR_INVAL);
    e = rec("dev2", "label2");
    add_port(&e, "mqtt", 20001);
    assert_int_equal(tt_registry_put(r, &e), TETHER_ERR_INVAL);
    assert_int_equal(tt_registry_get(r, "dev2", &out), TETHER_ERR_NOT_FOUND);
    e = rec("dev2", "label2");
    add_port(&e, "mqtt", 20002);
    add_port(&e, "db", 20002); /* one port twice */
    assert_int_equal(tt_registry_put(r, &e), TETHER_ERR_INVAL);
    e.nports = 1;
    assert_int_equal(tt_registry_put(r, &e), 0);

    /* dev1 moves to label3 with other ports: label1 and 20001 become free */
    d = rec("dev1", "label3");
    d.offline_since = 1700000012345;
    add_port(&d, "ssh", 20003);
    add_port(&d, "web", 20004);
    assert_int_equal(tt_registry_put(r, &d), 0);
    assert_int_equal(tt_registry_find_label(r, "label1", &out), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_registry_find_label(r, "label3", &out), 0);
    assert_int_equal(out.offline_since, 1700000012345);
    assert_int_equal(out.nports, 2);
    e = rec("dev3", "label1");
    add_port(&e, "x", 20001);
    assert_int_equal(tt_registry_put(r, &e), 0);

    int n = 0;
    assert_int_equal(tt_registry_foreach(r, count_cb, &n), 0);
    assert_int_equal(n, 3);

    /* mark_offline: online records become offline since the later of since and last_seen */
    assert_int_equal(tt_registry_get(r, "dev2", &out), 0);
    assert_int_equal(out.offline_since, 0);
    e = rec("dev2", "label2");
    e.last_seen = 5000;
    assert_int_equal(tt_registry_put(r, &e), 0);
    e = rec("dev3", "label1");
    e.last_seen = 9000;
    assert_int_equal(tt_registry_put(r, &e), 0);
    assert_int_equal(tt_registry_mark_offline(r, 7000), 0);
    assert_int_equal(tt_registry_get(r, "dev2", &out), 0);
    assert_int_equal(out.offline_since, 7000);
    assert_int_equal(tt_registry_get(r, "dev3", &out), 0);
    assert_int_equal(out.offline_since, 9000);
    assert_int_equal(out.nports, 0);
    assert_int_equal(tt_registry_get(r, "dev1", &out), 0);
    assert_int_equal(out.offline_since, 1700000012345); /* already offline: untouched */

    /* heartbeat */
    int64_t prev = -1;
    assert_int_equal(tt_registry_heartbeat(r, 111, &prev), 0);
    assert_int_equal(prev, 0);
    assert_int_equal(tt_registry_heartbeat(r, 222, &prev), 0);
    assert_int_equal(prev, 111);

    /* credentials */
    uint8_t h[32], h2[32];
    memset(h, 0xab, sizeof(h));
    assert_int_equal(tt_registry_cred_get(r, TT_REG_FLEET_CRED, h2), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_registry_cred_put(r, TT_REG_FLEET_CRED, h), 0);
    assert_int_equal(tt_registry_cred_get(r, TT_REG_FLEET_CRED, h2), 0);
    assert_memory_equal(h, h2, 32);
    h[0] = 1;
    assert_int_equal(tt_registry_cred_put(r, TT_REG_FLEET_CRED, h), 0);
    assert_int_equal(tt_registry_cred_get(r, TT_REG_FLEET_CRED, h2), 0);
    assert_int_equal(h2[0], 1);

    /* del */
    assert_int_equal(tt_registry_del(r, "dev1"), 0);
    assert_int_equal(tt_registry_del(r, "dev1"), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_registry_find_label(r, "label3", &out), TETHER_ERR_NOT_FOUND);
    e = rec("dev4", "label3");
    add_port(&e, "ssh", 20003); /* dev1's port is free again */
    assert_int_equal(tt_registry_put(r, &e), 0);
}

static void test_memory(void **state)
{
    (void)state;
    struct tt_registry *r = open_or_fail(":memory:");
    conformance(r);
    int fd = 0;
    assert_int_equal(tt_registry_sync_fd(r, &fd), 0);
    assert_int_equal(fd, -1); /* nothing to sync */
    assert_int_equal(tt_registry_sync(r), 0);
    tt_registry_free(r);
}

static void test_file_and_reopen(void **state)
{
    (void)state;
    struct tt_registry *r = open_or_fail(path);
    conformance(r);
    /* the sync descriptor is the WAL file, the same one every time */
    int fd = -1, fd2 = -1;
    char wal[160], link[64], target[200];
    assert_int_equal(tt_registry_sync_fd(r, &fd), 0);
    assert_true(fd >= 0);
    assert_int_equal(tt_registry_sync_fd(r, &fd2), 0);
    assert_int_equal(fd, fd2);
    snprintf(wal, sizeof(wal), "%s-wal", path);
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    assert_true(n > 0);
    target[n] = '\0';
    assert_string_equal(target, wal);
    assert_int_equal(tt_registry_sync(r), 0);
    tt_registry_free(r);
    r = open_or_fail(path);
    struct tt_reg_device out;
    assert_int_equal(tt_registry_get(r, "dev4", &out), 0);
    assert_string_equal(out.label, "label3");
    assert_int_equal(out.ports[0].port, 20003);
    assert_int_equal(tt_registry_get(r, "dev1", &out), TETHER_ERR_NOT_FOUND);
    int64_t prev;
    assert_int_equal(tt_registry_heartbeat(r, 333, &prev), 0);
    assert_int_equal(prev, 222);
    tt_registry_free(r);
}

static int stop_cb(const struct tt_reg_device *d, void *ud)
{
    (void)d;
    return ++*(int *)ud == 2 ? 42 : 0;
}

static void test_foreach_stops(void **state)
{
    (void)state;
    struct tt_registry *r = open_or_fail(":memory:");
    char name[16], label[16];
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "d%d", i);
        snprintf(label, sizeof(label), "l%d", i);
        struct tt_reg_device d = rec(name, label);
        add_port(&d, "a", (uint16_t)(30000 + 2 * i));
        add_port(&d, "b", (uint16_t)(30001 + 2 * i));
        assert_int_equal(tt_registry_put(r, &d), 0);
    }
    int n = 0;
    assert_int_equal(tt_registry_foreach(r, stop_cb, &n), 42);
    assert_int_equal(n, 2);
    tt_registry_free(r);
}

/* A writer killed with SIGKILL right after put() returned: the record is there afterwards
 * (the WAL was never checkpointed nor closed). */
static void test_survives_kill(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char err[TT_ERRLEN];
        struct tt_registry *r = tt_registry_sqlite_open(path, err);
        struct tt_reg_device d = rec("killed", "klabel");
        add_port(&d, "ssh", 20500);
        char ok = r && tt_registry_put(r, &d) == 0 ? 'y' : 'n';
        if (write(fds[1], &ok, 1) != 1)
            _exit(1);
        for (;;)
            pause(); /* the parent kills us with the database open */
    }
    char ok = 0;
    assert_int_equal(read(fds[0], &ok, 1), 1);
    assert_int_equal(ok, 'y');
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(fds[0]);
    close(fds[1]);
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    assert_int_equal(access(wal, F_OK), 0); /* the record is in the WAL only */
    struct tt_registry *r = open_or_fail(path);
    struct tt_reg_device out;
    assert_int_equal(tt_registry_get(r, "killed", &out), 0);
    assert_string_equal(out.label, "klabel");
    assert_int_equal(out.ports[0].port, 20500);
    tt_registry_free(r);
}

/* Device keys: stored in the put that sets them, left alone by puts that do not, kept when the
 * record is deleted (expiry), removed by key_del; counted with the ports of their records. */
static void test_device_keys(void **state)
{
    (void)state;
    struct tt_registry *r = open_or_fail(":memory:");
    uint8_t h[32], got[32];
    uint64_t names = 9, ports = 9;
    memset(h, 0x5a, sizeof(h));
    assert_int_equal(tt_registry_key_get(r, "cam", got), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_registry_key_counts(r, &names, &ports), 0);
    assert_true(names == 0 && ports == 0);
    /* a record without a key: not counted */
    struct tt_reg_device legacy = rec("legacy", "l0");
    add_port(&legacy, "ssh", 20100);
    assert_int_equal(tt_registry_put(r, &legacy), 0);
    struct tt_reg_device d = rec("cam", "l1");
    add_port(&d, "ssh", 20001);
    add_port(&d, "db", 20002);
    d.set_key = true;
    memcpy(d.key_hash, h, sizeof(h));
    assert_int_equal(tt_registry_put(r, &d), 0);
    assert_int_equal(tt_registry_key_get(r, "cam", got), 0);
    assert_memory_equal(got, h, 32);
    assert_int_equal(tt_registry_key_counts(r, &names, &ports), 0);
    assert_true(names == 1 && ports == 2);
    /* a put without set_key leaves the key; fewer ports are counted */
    struct tt_reg_device d2 = rec("cam", "l1");
    add_port(&d2, "ssh", 20001);
    assert_int_equal(tt_registry_put(r, &d2), 0);
    assert_int_equal(tt_registry_key_get(r, "cam", got), 0);
    assert_int_equal(tt_registry_key_counts(r, &names, &ports), 0);
    assert_true(names == 1 && ports == 1);
    /* a failed put (label of another name) stores no key */
    struct tt_reg_device bad = rec("thief", "l0");
    bad.set_key = true;
    assert_int_equal(tt_registry_put(r, &bad), TETHER_ERR_INVAL);
    assert_int_equal(tt_registry_key_get(r, "thief", got), TETHER_ERR_NOT_FOUND);
    /* the record expires: the key stays (the name is still its device's) */
    assert_int_equal(tt_registry_del(r, "cam"), 0);
    assert_int_equal(tt_registry_key_get(r, "cam", got), 0);
    assert_int_equal(tt_registry_key_counts(r, &names, &ports), 0);
    assert_true(names == 1 && ports == 0);
    /* the operator frees it */
    assert_int_equal(tt_registry_key_del(r, "cam"), 0);
    assert_int_equal(tt_registry_key_del(r, "cam"), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_registry_key_get(r, "cam", got), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_registry_key_counts(r, &names, &ports), 0);
    assert_true(names == 0 && ports == 0);
    tt_registry_free(r);
}

/* A registry written by the version-1 schema (before device keys) is upgraded in place: its
 * records stay, and keys can be stored. */
static void test_upgrade_from_v1(void **state)
{
    (void)state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                     "INSERT INTO schema_version (version) VALUES (1);"
                     "CREATE TABLE devices (name TEXT PRIMARY KEY NOT NULL, label TEXT NOT NULL "
                     "UNIQUE, offline_since_ms INTEGER NOT NULL DEFAULT 0, last_seen_ms INTEGER "
                     "NOT NULL DEFAULT 0);"
                     "CREATE TABLE ports (name TEXT NOT NULL REFERENCES devices(name) ON DELETE "
                     "CASCADE, service TEXT NOT NULL, port INTEGER NOT NULL UNIQUE CHECK (port "
                     "BETWEEN 1 AND 65535), PRIMARY KEY (name, service));"
                     "CREATE TABLE credentials (name TEXT PRIMARY KEY NOT NULL, hash BLOB NOT "
                     "NULL CHECK (length(hash) = 32), created_ms INTEGER NOT NULL);"
                     "CREATE TABLE relay_state (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT "
                     "NULL);"
                     "INSERT INTO devices VALUES ('old', 'oldlabel', 5, 6);"
                     "INSERT INTO ports VALUES ('old', 'ssh', 20400);",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    struct tt_registry *r = open_or_fail(path);
    struct tt_reg_device out;
    assert_int_equal(tt_registry_get(r, "old", &out), 0);
    assert_string_equal(out.label, "oldlabel");
    assert_int_equal(out.ports[0].port, 20400);
    uint8_t h[32];
    assert_int_equal(tt_registry_key_get(r, "old", h), TETHER_ERR_NOT_FOUND);
    out.set_key = true;
    memset(out.key_hash, 7, sizeof(out.key_hash));
    assert_int_equal(tt_registry_put(r, &out), 0);
    tt_registry_free(r);
    r = open_or_fail(path);
    assert_int_equal(tt_registry_key_get(r, "old", h), 0);
    assert_int_equal(h[31], 7);
    tt_registry_free(r);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_version", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_newer_schema_refused(void **state)
{
    (void)state;
    char err[TT_ERRLEN];
    struct tt_registry *r = open_or_fail(path);
    tt_registry_free(r);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE schema_version SET version = 99", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_null(tt_registry_sqlite_open(path, err));
    assert_non_null(strstr(err, "schema version 99"));
}

static void test_not_a_database(void **state)
{
    (void)state;
    char err[TT_ERRLEN];
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 200; i++)
        fputs("this is not an SQLite database\n", f);
    fclose(f);
    assert_null(tt_registry_sqlite_open(path, err));
    assert_non_null(strstr(err, path));
    assert_null(tt_registry_sqlite_open("/nonexistent-dir/x/registry.db", err));
    assert_non_null(strstr(err, "cannot open"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory),
        cmocka_unit_test_setup_teardown(test_file_and_reopen, setup, teardown),
        cmocka_unit_test(test_foreach_stops),
        cmocka_unit_test(test_device_keys),
        cmocka_unit_test_setup_teardown(test_upgrade_from_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_survives_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
