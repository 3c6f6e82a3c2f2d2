/* registry_sqlite.c - the registry (registry.h) in an SQLite file in the data dir: devices
 * (name, label, offline since, last seen), their TCP ports, device key hashes, generated
 * credentials (hashes only) and the relay's heartbeat. WAL journal with synchronous=NORMAL: a
 * committed write is in the WAL file (it survives a kill -9) and checkpoints are synced by SQLite;
 * to survive a power loss too, the caller fdatasync()s the WAL file (sync_fd) before it
 * acknowledges anything, off the loop thread and once for every write committed before it, instead
 * of SQLite doing it inside every COMMIT (synchronous=FULL) on the loop thread. Labels and ports
 * are UNIQUE in the schema, so two names can never share one even if the caller has a bug.
 * Statements are prepared once and reused. Single-threaded: the relay's loop thread is the only
 * user. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>
#include "tether_err.h"
#include "common/log.h"
#include "relay/store/registry.h"

/* The schema this program writes. Version 1: devices, ports, credentials, relay_state.
 * Version 2 adds device_keys (names registered before it get their key at their next
 * registration). A file with a newer version is refused rather than misread; older versions are
 * upgraded in migrate(). */
#define SCHEMA_VERSION 2

static const char schema_v1[] =
    "CREATE TABLE devices ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " label TEXT NOT NULL UNIQUE,"
    " offline_since_ms INTEGER NOT NULL DEFAULT 0," /* 0 while online */
    " last_seen_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE ports ("
    " name TEXT NOT NULL REFERENCES devices(name) ON DELETE CASCADE,"
    " service TEXT NOT NULL,"
    " port INTEGER NOT NULL UNIQUE CHECK (port BETWEEN 1 AND 65535),"
    " PRIMARY KEY (name, service));"
    "CREATE TABLE credentials ("
    " name TEXT PRIMARY KEY NOT NULL," /* '' is the generated fleet token */
    " hash BLOB NOT NULL CHECK (length(hash) = 32),"
    " created_ms INTEGER NOT NULL);"
    "CREATE TABLE relay_state (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);";

/* Not tied to devices: the key of a name outlives its record (expiry), until key_del. */
static const char schema_v2[] = "CREATE TABLE device_keys ("
                                " name TEXT PRIMARY KEY NOT NULL,"
                                " hash BLOB NOT NULL CHECK (length(hash) = 32),"
                                " created_ms INTEGER NOT NULL);";

enum stmt_id {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_GET,
    S_GET_PORTS,
    S_FIND_LABEL,
    S_UPSERT,
    S_DEL_PORTS,
    S_ADD_PORT,
    S_DEL,
    S_ALL,
    S_MARK_OFFLINE,
    S_HB_GET,
    S_HB_PUT,
    S_CRED_GET,
    S_CRED_PUT,
    S_KEY_GET,
    S_KEY_PUT,
    S_KEY_DEL,
    S_KEY_NAMES,
    S_KEY_PORTS,
    S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_GET] = "SELECT label, offline_since_ms, last_seen_ms FROM devices WHERE name = ?1",
    [S_GET_PORTS] = "SELECT service, port FROM ports WHERE name = ?1 ORDER BY service",
    [S_FIND_LABEL] = "SELECT name FROM devices WHERE label = ?1",
    [S_UPSERT] = "INSERT INTO devices (name, label, offline_since_ms, last_seen_ms)"
                 " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name) DO UPDATE SET"
                 " label = excluded.label, offline_since_ms = excluded.offline_since_ms,"
                 " last_seen_ms = excluded.last_seen_ms",
    [S_DEL_PORTS] = "DELETE FROM ports WHERE name = ?1",
    [S_ADD_PORT] = "INSERT INTO ports (name, service, port) VALUES (?1, ?2, ?3)",
    [S_DEL] = "DELETE FROM devices WHERE name = ?1",
    [S_ALL] = "SELECT d.name, d.label, d.offline_since_ms, d.last_seen_ms, p.service, p.port"
              " FROM devices d LEFT JOIN ports p ON p.name = d.name ORDER BY d.name, p.service",
    [S_MARK_OFFLINE] = "UPDATE devices SET offline_since_ms = MAX(?1, last_seen_ms, 1)"
                       " WHERE offline_since_ms = 0",
    [S_HB_GET] = "SELECT value FROM relay_state WHERE key = 'heartbeat'",
    [S_HB_PUT] = "INSERT INTO relay_state (key, value) VALUES ('heartbeat', ?1)"
                 " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    [S_CRED_GET] = "SELECT hash FROM credentials WHERE name = ?1",
    [S_CRED_PUT] = "INSERT INTO credentials (name, hash, created_ms) VALUES (?1, ?2,"
                   " CAST(strftime('%s','now') AS INTEGER) * 1000) ON CONFLICT (name) DO UPDATE"
                   " SET hash = excluded.hash, created_ms = excluded.created_ms",
    [S_KEY_GET] = "SELECT hash FROM device_keys WHERE name = ?1",
    [S_KEY_PUT] = "INSERT INTO device_keys (name, hash, created_ms) VALUES (?1, ?2,"
                  " CAST(strftime('%s','now') AS INTEGER) * 1000) ON CONFLICT (name) DO UPDATE"
                  " SET hash = excluded.hash, created_ms = excluded.created_ms",
    [S_KEY_DEL] = "DELETE FROM device_keys WHERE name = ?1",
    [S_KEY_NAMES] = "SELECT count(*) FROM device_keys",
    [S_KEY_PORTS] = "SELECT count(*) FROM ports WHERE name IN (SELECT name FROM device_keys)",
};

struct registry_sqlite {
    struct tt_registry base;
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
    char path[1100]; /* "" in memory */
    int sync_fd;     /* the WAL file (or the database file), opened on first use; -1 */
};

static struct registry_sqlite *to_sq(struct tt_registry *r)
{
    return (struct registry_sqlite *)r;
}

/* Maps an SQLite result code to ours (and logs the unexpected ones once, here). */
static int fail(struct registry_sqlite *q, int rc, const char *what)
{
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        TT_LOG(TT_LOG_DEBUG, "registry constraint op=%s err=\"%s\"", what, sqlite3_errmsg(q->db));
        return TETHER_ERR_INVAL;
    case SQLITE_NOMEM:
        return TETHER_ERR_NOMEM;
    default:
        TT_LOG(TT_LOG_ERROR, "registry failure op=%s err=\"%s\"", what, sqlite3_errmsg(q->db));
        return TETHER_ERR_IO;
    }
}

/* Resets s for its next use (bindings cleared). Returns s. */
static sqlite3_stmt *use(struct registry_sqlite *q, enum stmt_id id)
{
    sqlite3_stmt *s = q->st[id];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/* Runs a statement that returns no rows. Returns 0 or an error (fail()). */
static int run(struct registry_sqlite *q, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : fail(q, rc, what);
}

/* Ends the open transaction, if any, without its changes. */
static void rollback(struct registry_sqlite *q)
{
    if (!sqlite3_get_autocommit(q->db)) {
        sqlite3_step(use(q, S_ROLLBACK));
        sqlite3_reset(q->st[S_ROLLBACK]);
    }
}

static int begin(struct registry_sqlite *q)
{
    return run(q, use(q, S_BEGIN), "begin");
}

/* Commits; on failure rolls back. The commit is durable when this returns 0. */
static int commit(struct registry_sqlite *q)
{
    int rc = run(q, use(q, S_COMMIT), "commit");
    if (rc)
        rollback(q);
    return rc;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

static void copy_col(char *dst, size_t dstlen, sqlite3_stmt *s, int col)
{
    const unsigned char *v = sqlite3_column_text(s, col);
    snprintf(dst, dstlen, "%s", v ? (const char *)v : "");
}

/* Fills out's ports from the ports table. */
static int load_ports(struct registry_sqlite *q, const char *name, struct tt_reg_device *out)
{
    sqlite3_stmt *s = use(q, S_GET_PORTS);
    int rc;
    bind_text(s, 1, name);
    out->nports = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (out->nports == TT_MAX_SERVICES)
            continue;
        copy_col(out->ports[out->nports].service, sizeof(out->ports[0].service), s, 0);
        out->ports[out->nports++].port = (uint16_t)sqlite3_column_int(s, 1);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : fail(q, rc, "get ports");
}

static int sq_get(struct tt_registry *r, const char *name, struct tt_reg_device *out)
{
    struct registry_sqlite *q = to_sq(r);
    sqlite3_stmt *s = use(q, S_GET);
    bind_text(s, 1, name);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        return rc == SQLITE_DONE ? TETHER_ERR_NOT_FOUND : fail(q, rc, "get");
    }
    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", name);
    copy_col(out->label, sizeof(out->label), s, 0);
    out->offline_since = sqlite3_column_int64(s, 1);
    out->last_seen = sqlite3_column_int64(s, 2);
    sqlite3_reset(s);
    return load_ports(q, name, out);
}

static int sq_find_label(struct tt_registry *r, const char *label, struct tt_reg_device *out)
{
    struct registry_sqlite *q = to_sq(r);
    sqlite3_stmt *s = use(q, S_FIND_LABEL);
    char name[TT_MAX_NAME + 1];
    bind_text(s, 1, label);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        return rc == SQLITE_DONE ? TETHER_ERR_NOT_FOUND : fail(q, rc, "find label");
    }
    copy_col(name, sizeof(name), s, 0);
    sqlite3_reset(s);
    return sq_get(r, name, out);
}

static int sq_put(struct tt_registry *r, const struct tt_reg_device *d)
{
    struct registry_sqlite *q = to_sq(r);
    int rc = begin(q);
    if (rc)
        return rc;
    sqlite3_stmt *s = use(q, S_UPSERT);
    bind_text(s, 1, d->name);
    bind_text(s, 2, d->label);
    sqlite3_bind_int64(s, 3, d->offline_since);
    sqlite3_bind_int64(s, 4, d->last_seen);
    rc = run(q, s, "put");
    if (!rc) {
        s = use(q, S_DEL_PORTS);
        bind_text(s, 1, d->name);
        rc = run(q, s, "put ports");
    }
    for (uint8_t i = 0; !rc && i < d->nports && i < TT_MAX_SERVICES; i++) {
        s = use(q, S_ADD_PORT);
        bind_text(s, 1, d->name);
        bind_text(s, 2, d->ports[i].service);
        sqlite3_bind_int(s, 3, d->ports[i].port);
        rc = run(q, s, "put port");
    }
    if (!rc && d->set_key) {
        s = use(q, S_KEY_PUT);
        bind_text(s, 1, d->name);
        sqlite3_bind_blob(s, 2, d->key_hash, 32, SQLITE_STATIC);
        rc = run(q, s, "put key");
    }
    if (rc) {
        rollback(q);
        return rc;
    }
    return commit(q);
}

static int sq_del(struct tt_registry *r, const char *name)
{
    struct registry_sqlite *q = to_sq(r);
    int rc = begin(q);
    if (rc)
        return rc;
    sqlite3_stmt *s = use(q, S_DEL_PORTS);
    bind_text(s, 1, name);
    rc = run(q, s, "del ports");
    if (!rc) {
        s = use(q, S_DEL);
        bind_text(s, 1, name);
        rc = run(q, s, "del");
    }
    if (!rc && sqlite3_changes(q->db) == 0)
        rc = TETHER_ERR_NOT_FOUND;
    if (rc) {
        rollback(q);
        return rc;
    }
    return commit(q);
}

static int sq_foreach(struct tt_registry *r, int (*cb)(const struct tt_reg_device *d, void *ud),
                      void *ud)
{
    struct registry_sqlite *q = to_sq(r);
    sqlite3_stmt *s = use(q, S_ALL);
    struct tt_reg_device cur;
    bool have = false;
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const unsigned char *name = sqlite3_column_text(s, 0);
        if (!name)
            continue;
        if (!have || strcmp(cur.name, (const char *)name) != 0) {
            if (have && (ret = cb(&cur, ud)) != 0)
                break;
            memset(&cur, 0, sizeof(cur));
            snprintf(cur.name, sizeof(cur.name), "%s", name);
            copy_col(cur.label, sizeof(cur.label), s, 1);
            cur.offline_since = sqlite3_column_int64(s, 2);
            cur.last_seen = sqlite3_column_int64(s, 3);
            have = true;
        }
        if (sqlite3_column_type(s, 4) != SQLITE_NULL && cur.nports < TT_MAX_SERVICES) {
            copy_col(cur.ports[cur.nports].service, sizeof(cur.ports[0].service), s, 4);
            cur.ports[cur.nports++].port = (uint16_t)sqlite3_column_int(s, 5);
        }
    }
    if (ret == 0 && rc != SQLITE_DONE) {
        ret = fail(q, rc, "foreach");
        have = false;
    }
    sqlite3_reset(s);
    if (ret == 0 && have)
        ret = cb(&cur, ud);
    return ret;
}

static int sq_mark_offline(struct tt_registry *r, int64_t since_ms)
{
    struct registry_sqlite *q = to_sq(r);
    sqlite3_stmt *s = use(q, S_MARK_OFFLINE);
    sqlite3_bind_int64(s, 1, since_ms);
    return run(q, s, "mark offline");
}

static int sq_heartbeat(struct tt_registry *r, int64_t now_ms, int64_t *prev_ms)
{
    struct registry_sqlite *q = to_sq(r);
    int rc = begin(q);
    if (rc)
        return rc;
    sqlite3_stmt *s = use(q, S_HB_GET);
    rc = sqlite3_step(s);
    *prev_ms = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(q, rc, "heartbeat");
    if (!rc) {
        s = use(q, S_HB_PUT);
        sqlite3_bind_int64(s, 1, now_ms);
        rc = run(q, s, "heartbeat");
    }
    if (rc) {
        rollback(q);
        return rc;
    }
    return commit(q);
}

/* The 32-byte hash that statement which (S_CRED_GET, S_KEY_GET) reads for name into hash: 0,
 * TETHER_ERR_NOT_FOUND when there is none (or it is not 32 bytes), or fail()'s error naming
 * what. */
static int hash_get(struct registry_sqlite *q, enum stmt_id which, const char *name,
                    uint8_t hash[32], const char *what)
{
    sqlite3_stmt *s = use(q, which);
    bind_text(s, 1, name);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_bytes(s, 0) == 32) {
        memcpy(hash, sqlite3_column_blob(s, 0), 32);
        sqlite3_reset(s);
        return 0;
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? TETHER_ERR_NOT_FOUND : fail(q, rc, what);
}

static int sq_cred_get(struct tt_registry *r, const char *name, uint8_t hash[32])
{
    return hash_get(to_sq(r), S_CRED_GET, name, hash, "cred get");
}

static int sq_cred_put(struct tt_registry *r, const char *name, const uint8_t hash[32])
{
    struct registry_sqlite *q = to_sq(r);
    sqlite3_stmt *s = use(q, S_CRED_PUT);
    bind_text(s, 1, name);
    sqlite3_bind_blob(s, 2, hash, 32, SQLITE_STATIC);
    return run(q, s, "cred put");
}

static int sq_key_get(struct tt_registry *r, const char *name, uint8_t hash[32])
{
    return hash_get(to_sq(r), S_KEY_GET, name, hash, "key get");
}

static int sq_key_del(struct tt_registry *r, const char *name)
{
    struct registry_sqlite *q = to_sq(r);
    sqlite3_stmt *s = use(q, S_KEY_DEL);
    bind_text(s, 1, name);
    int rc = run(q, s, "key del");
    if (!rc && sqlite3_changes(q->db) == 0)
        rc = TETHER_ERR_NOT_FOUND;
    return rc;
}

/* One count(*) into *out. */
static int count1(struct registry_sqlite *q, enum stmt_id id, uint64_t *out)
{
    sqlite3_stmt *s = use(q, id);
    int rc = sqlite3_step(s);
    *out = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : fail(q, rc, "key counts");
}

static int sq_key_counts(struct tt_registry *r, uint64_t *names, uint64_t *ports)
{
    struct registry_sqlite *q = to_sq(r);
    int rc = count1(q, S_KEY_NAMES, names);
    return rc ? rc : count1(q, S_KEY_PORTS, ports);
}

/* The WAL file holds every commit not yet checkpointed (checkpointed ones are in the database
 * file, which SQLite syncs after each checkpoint even with synchronous=NORMAL): fdatasync on
 * it is what synchronous=FULL does at each COMMIT. SQLite keeps the WAL file (the same inode)
 * while its connection is open. */
static int sq_sync_fd(struct tt_registry *r, int *fd)
{
    struct registry_sqlite *q = to_sq(r);
    *fd = q->sync_fd;
    if (q->sync_fd >= 0 || !q->path[0])
        return 0;
    char wal[sizeof(q->path) + 8];
    snprintf(wal, sizeof(wal), "%s-wal", q->path);
    q->sync_fd = open(wal, O_RDWR | O_CLOEXEC);
    if (q->sync_fd < 0)
        q->sync_fd = open(q->path, O_RDWR | O_CLOEXEC);
    if (q->sync_fd < 0) {
        TT_LOG(TT_LOG_ERROR, "registry: cannot open the WAL file to sync it err=\"%s\"",
               strerror(errno));
        return TETHER_ERR_IO;
    }
    *fd = q->sync_fd;
    return 0;
}

static void sq_free(struct tt_registry *r)
{
    struct registry_sqlite *q = to_sq(r);
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(q->st[i]);
    sqlite3_close(q->db);
    if (q->sync_fd >= 0)
        close(q->sync_fd);
    free(q);
}

static const struct tt_registry_ops sqlite_ops = {
    .get = sq_get,
    .find_label = sq_find_label,
    .put = sq_put,
    .del = sq_del,
    .foreach = sq_foreach,
    .mark_offline = sq_mark_offline,
    .heartbeat = sq_heartbeat,
    .cred_get = sq_cred_get,
    .cred_put = sq_cred_put,
    .key_get = sq_key_get,
    .key_del = sq_key_del,
    .key_counts = sq_key_counts,
    .sync_fd = sq_sync_fd,
    .free = sq_free,
};

/* Runs one pragma or statement that may return a row; copies the first column of the first
 * row into out (if given). Returns 0 or an SQLite code. */
static int exec1(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(s);
    if (out && outlen) {
        const unsigned char *v = rc == SQLITE_ROW ? sqlite3_column_text(s, 0) : NULL;
        snprintf(out, outlen, "%s", v ? (const char *)v : "");
    }
    sqlite3_finalize(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Creates the schema or checks its version, in one transaction. Returns 0 or -1 with err. */
static int migrate(sqlite3 *db, const char *path, char err[TT_ERRLEN])
{
    char v[32];
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc =
            sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
                         NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = exec1(db, "SELECT max(version) FROM schema_version", v, sizeof(v));
    if (rc != SQLITE_OK) {
        snprintf(err, TT_ERRLEN, "registry %.150s: %s", path, sqlite3_errmsg(db));
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    long version = v[0] ? strtol(v, NULL, 10) : 0;
    if (version > SCHEMA_VERSION) {
        snprintf(err, TT_ERRLEN,
                 "registry %.150s: schema version %ld is newer than this tetherd knows (%d)", path,
                 version, SCHEMA_VERSION);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    if (version < 1) {
        rc = sqlite3_exec(db, schema_v1, NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, "INSERT INTO schema_version (version) VALUES (1)", NULL, NULL,
                              NULL);
    }
    if (rc == SQLITE_OK && version < 2) {
        rc = sqlite3_exec(db, schema_v2, NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, "INSERT INTO schema_version (version) VALUES (2)", NULL, NULL,
                              NULL);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, TT_ERRLEN, "registry %.150s: cannot create the schema: %s", path,
                 sqlite3_errmsg(db));
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return 0;
}

/* fsyncs the directory holding path, so that a newly created database file's name is durable
 * too. Best effort. */
static void sync_parent_dir(const char *path)
{
    char dir[1100];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof(dir), ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

struct tt_registry *tt_registry_sqlite_open(const char *path, char err[TT_ERRLEN])
{
    bool mem = strcmp(path, ":memory:") == 0;
    struct registry_sqlite *q = calloc(1, sizeof(*q));
    if (!q) {
        snprintf(err, TT_ERRLEN, "registry: out of memory");
        return NULL;
    }
    q->base.ops = &sqlite_ops;
    q->sync_fd = -1;
    if (!mem)
        snprintf(q->path, sizeof(q->path), "%s", path);
    int rc = sqlite3_open_v2(
        path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, TT_ERRLEN, "cannot open registry %.150s: %s", path,
                 q->db ? sqlite3_errmsg(q->db) : "out of memory");
        goto fail;
    }
    sqlite3_extended_result_codes(q->db, 1);
    sqlite3_busy_timeout(q->db, 1000);
    char mode[16];
    rc = exec1(q->db, "PRAGMA journal_mode=WAL", mode, sizeof(mode));
    if (rc != SQLITE_OK) {
        snprintf(err, TT_ERRLEN, "cannot open registry %.150s: %s", path, sqlite3_errmsg(q->db));
        goto fail;
    }
    if (!mem && strcmp(mode, "wal") != 0) {
        snprintf(err, TT_ERRLEN, "registry %.150s: cannot use WAL mode (journal mode %s)", path,
                 mode);
        goto fail;
    }
    if (exec1(q->db, "PRAGMA synchronous=NORMAL", NULL, 0) != SQLITE_OK ||
        exec1(q->db, "PRAGMA foreign_keys=ON", NULL, 0) != SQLITE_OK) {
        snprintf(err, TT_ERRLEN, "registry %.150s: %s", path, sqlite3_errmsg(q->db));
        goto fail;
    }
    if (migrate(q->db, path, err) != 0)
        goto fail;
    for (int i = 0; i < S_COUNT; i++) {
        rc = sqlite3_prepare_v3(q->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &q->st[i], NULL);
        if (rc != SQLITE_OK) {
            snprintf(err, TT_ERRLEN, "registry %.150s: %s", path, sqlite3_errmsg(q->db));
            goto fail;
        }
    }
    if (!mem) {
        sync_parent_dir(path);
        if (tt_registry_sync(&q->base) != 0) {
            snprintf(err, TT_ERRLEN, "registry %.150s: cannot sync: %s", path, strerror(errno));
            goto fail;
        }
    }
    return &q->base;
fail:
    sq_free(&q->base);
    return NULL;
}
