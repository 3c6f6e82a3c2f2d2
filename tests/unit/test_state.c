/* test_state.c - unit tests for src/agent/state.c: key file names (escaped so that a device
 * name cannot leave the directory), writing (directory 0700 and its parents created, file 0600,
 * replaced atomically, no temporary file left) and reading back (white space, bad content,
 * missing file), and the default directory from XDG_STATE_HOME and HOME. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "tether_err.h"
#include "agent/state.h"

static const char KEY[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char KEY2[] = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

static char top[64];
static uv_loop_t loop;

static int setup(void **state)
{
    (void)state;
    snprintf(top, sizeof(top), "/tmp/test_state_XXXXXX");
    if (!mkdtemp(top))
        return -1;
    return uv_loop_init(&loop);
}

static void rm_rf(const char *path)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
}

static int teardown(void **state)
{
    (void)state;
    rm_rf(top);
    return uv_loop_close(&loop);
}

static void test_key_path(void **state)
{
    char out[TT_STATE_PATHLEN];
    (void)state;
    assert_int_equal(tt_state_key_path("/d", "camera-1", out, sizeof(out)), 0);
    assert_string_equal(out, "/d/camera-1.key");
    assert_int_equal(tt_state_key_path("/d/", "SN_0042.x", out, sizeof(out)), 0);
    assert_string_equal(out, "/d/SN_0042.x.key");
    /* nothing that leaves the directory or hides the file */
    assert_int_equal(tt_state_key_path("/d", "../etc/passwd", out, sizeof(out)), 0);
    assert_string_equal(out, "/d/%2E.%2Fetc%2Fpasswd.key");
    assert_int_equal(tt_state_key_path("/d", ".hidden", out, sizeof(out)), 0);
    assert_string_equal(out, "/d/%2Ehidden.key");
    assert_int_equal(tt_state_key_path("/d", "a%b:c\\d", out, sizeof(out)), 0);
    assert_string_equal(out, "/d/a%25b%3Ac%5Cd.key");
    /* too long for the buffer */
    assert_int_equal(tt_state_key_path("/d", "camera-1", out, 14), TETHER_ERR_CONFIG);
    assert_int_equal(tt_state_key_path("/d", "camera-1", out, 16), 0);
}

static void test_write_and_read(void **state)
{
    char dir[128], path[TT_STATE_PATHLEN], key[TETHER_DEVICE_KEY_LEN + 1], err[TT_ERRLEN];
    struct stat st;
    (void)state;
    snprintf(dir, sizeof(dir), "%s/a/b/tether", top);
    assert_int_equal(tt_state_read_key(&loop, dir, "cam", key, err), TETHER_ERR_NOT_FOUND);
    assert_int_equal(tt_state_write_key(&loop, dir, "cam", KEY, err), 0);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/a", top);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(tt_state_key_path(dir, "cam", path, sizeof(path)), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, TETHER_DEVICE_KEY_LEN + 1);
    assert_int_equal(tt_state_read_key(&loop, dir, "cam", key, err), 0);
    assert_string_equal(key, KEY);
    /* replaced atomically; no temporary file is left */
    assert_int_equal(tt_state_write_key(&loop, dir, "cam", KEY2, err), 0);
    assert_int_equal(tt_state_read_key(&loop, dir, "cam", key, err), 0);
    assert_string_equal(key, KEY2);
    DIR *d = opendir(dir);
    struct dirent *de;
    int files = 0;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            files++;
    closedir(d);
    assert_int_equal(files, 1);
    /* another name, another file */
    assert_int_equal(tt_state_read_key(&loop, dir, "cam2", key, err), TETHER_ERR_NOT_FOUND);
    /* a malformed key is not written */
    assert_int_equal(tt_state_write_key(&loop, dir, "cam", "not-a-key", err), TETHER_ERR_IO);
    assert_int_equal(tt_state_write_key(&loop, dir, "cam",
                                        "0123456789ABCDEF0123456789abcdef"
                                        "0123456789abcdef0123456789abcdef",
                                        err),
                     TETHER_ERR_IO);
    assert_int_equal(tt_state_read_key(&loop, dir, "cam", key, err), 0);
    assert_string_equal(key, KEY2);
}

static void put_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_read_bad_files(void **state)
{
    char path[TT_STATE_PATHLEN], key[TETHER_DEVICE_KEY_LEN + 1], err[TT_ERRLEN], text[300];
    (void)state;
    assert_int_equal(tt_state_key_path(top, "k", path, sizeof(path)), 0);
    snprintf(text, sizeof(text), "  %s \r\n\n", KEY);
    put_file(path, text);
    assert_int_equal(tt_state_read_key(&loop, top, "k", key, err), 0);
    assert_string_equal(key, KEY);
    put_file(path, "short\n");
    assert_int_equal(tt_state_read_key(&loop, top, "k", key, err), TETHER_ERR_CONFIG);
    assert_non_null(strstr(err, path));
    assert_null(strstr(err, "short")); /* the content is never shown */
    assert_string_equal(key, "");
    snprintf(text, sizeof(text), "%sX\n", KEY);
    put_file(path, text);
    assert_int_equal(tt_state_read_key(&loop, top, "k", key, err), TETHER_ERR_CONFIG);
    memset(text, 'a', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    put_file(path, text);
    assert_int_equal(tt_state_read_key(&loop, top, "k", key, err), TETHER_ERR_IO);
    /* a directory where the key file should be */
    unlink(path);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_true(tt_state_read_key(&loop, top, "k", key, err) < 0);
    assert_int_equal(tt_state_write_key(&loop, top, "k", KEY, err), TETHER_ERR_IO);
    /* a file where the state directory should be */
    snprintf(path, sizeof(path), "%s/file", top);
    put_file(path, "x");
    assert_int_equal(tt_state_write_key(&loop, path, "k", KEY, err), TETHER_ERR_IO);
    assert_non_null(strstr(err, path));
}

static void test_default_dir(void **state)
{
    char out[TT_STATE_PATHLEN], err[TT_ERRLEN];
    char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    char *xdg = getenv("XDG_STATE_HOME") ? strdup(getenv("XDG_STATE_HOME")) : NULL;
    (void)state;
    if (geteuid() == 0) {
        assert_int_equal(tt_state_default_dir(out, err), 0);
        assert_string_equal(out, "/var/lib/tether");
    } else {
        setenv("XDG_STATE_HOME", "/x/state", 1);
        assert_int_equal(tt_state_default_dir(out, err), 0);
        assert_string_equal(out, "/x/state/tether");
        setenv("XDG_STATE_HOME", "relative", 1); /* not absolute: ignored */
        setenv("HOME", "/home/dev", 1);
        assert_int_equal(tt_state_default_dir(out, err), 0);
        assert_string_equal(out, "/home/dev/.local/state/tether");
    }
    if (home)
        setenv("HOME", home, 1);
    if (xdg)
        setenv("XDG_STATE_HOME", xdg, 1);
    else
        unsetenv("XDG_STATE_HOME");
    free(home);
    free(xdg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_path),
        cmocka_unit_test(test_write_and_read),
        cmocka_unit_test(test_read_bad_files),
        cmocka_unit_test(test_default_dir),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
