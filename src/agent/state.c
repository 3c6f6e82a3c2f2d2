/* state.c - the agent's state directory and its device key files (state.h), through libuv's
 * synchronous file calls so that the same code runs on Windows. Keys are checked (64 lowercase
 * hex digits) on the way in and out, wiped from buffers after use and never logged. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/crypto.h>

#include "agent/state.h"
#include "common/compat.h"

#if defined(_WIN32)
#define SEP '\\'
#else
#define SEP '/'
#endif

/* The result of a synchronous request, which is cleaned up. */
static int done(uv_fs_t *req)
{
    int r = (int)req->result;
    uv_fs_req_cleanup(req);
    return r;
}

static bool is_sep(char c)
{
    return c == '/' || c == SEP;
}

static bool key_ok(const char *k, size_t n)
{
    if (n != TETHER_DEVICE_KEY_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((k[i] >= '0' && k[i] <= '9') || (k[i] >= 'a' && k[i] <= 'f')))
            return false;
    return true;
}

int tt_state_default_dir(char out[TT_STATE_PATHLEN], char err[TT_ERRLEN])
{
    char base[TT_STATE_PATHLEN];
    size_t len = sizeof(base);
    const char *tail;
    int n;

#if defined(_WIN32)
    if (uv_os_getenv("LOCALAPPDATA", base, &len) == 0 && base[0] != '\0') {
        tail = "\\tether";
    } else {
        len = sizeof(base);
        if (uv_os_homedir(base, &len) != 0) {
            tt_errf(err, "no state directory: LOCALAPPDATA and the home directory are unknown "
                         "(give --state-dir DIR)");
            return TETHER_ERR_CONFIG;
        }
        tail = "\\.tether";
    }
#else
    uv_passwd_t pw;
    bool root = false;
    if (uv_os_get_passwd(&pw) == 0) {
        root = pw.uid == 0;
        uv_os_free_passwd(&pw);
    }
    if (root) {
        snprintf(out, TT_STATE_PATHLEN, "/var/lib/tether");
        return 0;
    }
    if (uv_os_getenv("XDG_STATE_HOME", base, &len) == 0 && base[0] == '/') {
        tail = "/tether";
    } else {
        len = sizeof(base);
        if (uv_os_homedir(base, &len) != 0 || base[0] == '\0') {
            tt_errf(err,
                    "no state directory: the home directory is unknown (give --state-dir DIR)");
            return TETHER_ERR_CONFIG;
        }
        tail = "/.local/state/tether";
    }
#endif
    n = snprintf(out, TT_STATE_PATHLEN, "%s%s", base, tail);
    if (n < 0 || n >= TT_STATE_PATHLEN) {
        tt_errf(err, "no state directory: the path is too long (give --state-dir DIR)");
        return TETHER_ERR_CONFIG;
    }
    return 0;
}

int tt_state_key_path(const char *dir, const char *name, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(dir), i;

    if (n + 2 > outlen)
        return TETHER_ERR_CONFIG;
    memcpy(out, dir, n);
    if (n > 0 && !is_sep(dir[n - 1]))
        out[n++] = SEP;
    for (i = 0; name[i] != '\0'; i++) {
        unsigned char c = (unsigned char)name[i];
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '_' || (c == '.' && i > 0);
        if (n + (plain ? 1 : 3) + 5 > outlen) /* room for it, ".key" and the NUL */
            return TETHER_ERR_CONFIG;
        if (plain) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    if (n + 5 > outlen)
        return TETHER_ERR_CONFIG;
    memcpy(out + n, ".key", 5);
    return 0;
}

int tt_state_read_key(uv_loop_t *loop, const char *dir, const char *name,
                      char key[TETHER_DEVICE_KEY_LEN + 1], char err[TT_ERRLEN])
{
    char path[TT_STATE_PATHLEN + 256], buf[256];
    uv_fs_t req;
    uv_buf_t b;
    int fd, r;
    size_t n = 0, start = 0;

    key[0] = '\0';
    if (tt_state_key_path(dir, name, path, sizeof(path)) != 0) {
        tt_errf(err, "the key file name for device %s in %s is too long", name, dir);
        return TETHER_ERR_CONFIG;
    }
    fd = uv_fs_open(loop, &req, path, UV_FS_O_RDONLY, 0, NULL);
    uv_fs_req_cleanup(&req);
    if (fd == UV_ENOENT)
        return TETHER_ERR_NOT_FOUND;
    if (fd < 0) {
        tt_errf(err, "cannot read the device key in %s: %s", path, uv_strerror(fd));
        return TETHER_ERR_IO;
    }
    for (;;) {
        b = uv_buf_init(buf + n, (unsigned)(sizeof(buf) - 1 - n));
        if (b.len == 0)
            break;
        uv_fs_read(loop, &req, fd, &b, 1, -1, NULL);
        r = done(&req);
        if (r <= 0) {
            if (r < 0)
                n = sizeof(buf); /* an error: reported below as unreadable */
            break;
        }
        n += (size_t)r;
    }
    uv_fs_close(loop, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    if (n >= sizeof(buf) - 1) { /* a key file is about 65 bytes: this one is something else */
        OPENSSL_cleanse(buf, sizeof(buf));
        tt_errf(err, "cannot read the device key in %s: too large or unreadable", path);
        return TETHER_ERR_IO;
    }
    while (n > 0 &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    while (start < n && (buf[start] == ' ' || buf[start] == '\t'))
        start++;
    if (!key_ok(buf + start, n - start)) {
        OPENSSL_cleanse(buf, sizeof(buf));
        tt_errf(err, "%s does not hold a device key (%d lowercase hex digits)", path,
                TETHER_DEVICE_KEY_LEN);
        return TETHER_ERR_CONFIG;
    }
    memcpy(key, buf + start, TETHER_DEVICE_KEY_LEN);
    key[TETHER_DEVICE_KEY_LEN] = '\0';
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}

/* Creates dir and its missing parents with mode 0700 (existing ones are left as they are).
 * Returns 0 or a libuv error. */
static int make_dirs(uv_loop_t *loop, const char *dir)
{
    char p[TT_STATE_PATHLEN];
    uv_fs_t req;
    size_t n = strlen(dir);
    int r = 0, mk = 0;

    if (n == 0 || n >= sizeof(p))
        return UV_ENAMETOOLONG;
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (i < n && !is_sep(p[i]))
            continue;
        if (i < n && is_sep(p[i - 1]))
            continue; /* "//" */
        char c = p[i];
        p[i] = '\0';
        uv_fs_mkdir(loop, &req, p, 0700, NULL);
        r = done(&req);
        p[i] = c;
        /* an existing parent may answer EACCES or EPERM (no right to create in its parent) */
        if (r != 0 && r != UV_EEXIST && r != UV_EACCES && r != UV_EPERM)
            return r;
        mk = r == UV_EEXIST ? 0 : r;
    }
    uv_fs_stat(loop, &req, dir, NULL);
    r = (int)req.result;
    if (r == 0 && !(req.statbuf.st_mode & S_IFDIR))
        r = UV_ENOTDIR;
    uv_fs_req_cleanup(&req);
    return r != 0 && mk != 0 ? mk : r;
}

int tt_state_write_key(uv_loop_t *loop, const char *dir, const char *name, const char *key,
                       char err[TT_ERRLEN])
{
    char path[TT_STATE_PATHLEN + 256], tmpl[TT_STATE_PATHLEN + 256 + 16], tmp[sizeof(tmpl)];
    char line[TETHER_DEVICE_KEY_LEN + 1];
    uv_fs_t req;
    uv_buf_t b;
    int fd, r;

    if (!key_ok(key, strlen(key))) {
        tt_errf(err, "the relay's device key is not %d lowercase hex digits: not saved",
                TETHER_DEVICE_KEY_LEN);
        return TETHER_ERR_IO;
    }
    if (tt_state_key_path(dir, name, path, sizeof(path)) != 0) {
        tt_errf(err, "the key file name for device %s in %s is too long", name, dir);
        return TETHER_ERR_IO;
    }
    r = make_dirs(loop, dir);
    if (r != 0) {
        tt_errf(err, "cannot create the state directory %s: %s", dir, uv_strerror(r));
        return TETHER_ERR_IO;
    }
    snprintf(tmpl, sizeof(tmpl), "%s.tmp-XXXXXX", path);
    fd = uv_fs_mkstemp(loop, &req, tmpl, NULL); /* mode 0600 */
    if (fd >= 0)
        snprintf(tmp, sizeof(tmp), "%s", req.path);
    uv_fs_req_cleanup(&req);
    if (fd < 0) {
        tt_errf(err, "cannot write the device key in %s: %s", dir, uv_strerror(fd));
        return TETHER_ERR_IO;
    }
    memcpy(line, key, TETHER_DEVICE_KEY_LEN);
    line[TETHER_DEVICE_KEY_LEN] = '\n';
    b = uv_buf_init(line, sizeof(line));
    uv_fs_write(loop, &req, fd, &b, 1, -1, NULL);
    r = done(&req);
    OPENSSL_cleanse(line, sizeof(line));
    if (r == (int)sizeof(line)) {
        uv_fs_fsync(loop, &req, fd, NULL);
        r = done(&req);
    } else if (r >= 0) {
        r = UV_EIO; /* a short write */
    }
    uv_fs_close(loop, &req, fd, NULL);
    if (r >= 0)
        r = done(&req);
    else
        uv_fs_req_cleanup(&req);
    if (r >= 0) {
        uv_fs_rename(loop, &req, tmp, path, NULL);
        r = done(&req);
    }
    if (r < 0) {
        uv_fs_unlink(loop, &req, tmp, NULL);
        uv_fs_req_cleanup(&req);
        tt_errf(err, "cannot write the device key in %s: %s", path, uv_strerror(r));
        return TETHER_ERR_IO;
    }
#if !defined(_WIN32)
    /* the rename itself must survive a power loss too */
    fd = uv_fs_open(loop, &req, dir, UV_FS_O_RDONLY, 0, NULL);
    uv_fs_req_cleanup(&req);
    if (fd >= 0) {
        uv_fs_fsync(loop, &req, fd, NULL);
        uv_fs_req_cleanup(&req);
        uv_fs_close(loop, &req, fd, NULL);
        uv_fs_req_cleanup(&req);
    }
#endif
    return 0;
}
