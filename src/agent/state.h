/* state.h - the agent's state directory (tether --state-dir): where it keeps the device key
 * each relay's first registration of a name gave it (one file per device name, NAME.key, mode
 * 0600, in a directory of mode 0700). Synchronous libuv file calls (a key is written once per
 * name, read once per connection); portable to Windows. Never logs a key. */
#ifndef TT_AGENT_STATE_H
#define TT_AGENT_STATE_H

#include <stddef.h>
#include <uv.h>
#include "tether.h"
#include "common/util.h"

/* Longest state directory path, and key file path. */
#define TT_STATE_PATHLEN 1024

/* The default state directory into out: /var/lib/tether when running as root, else
 * $XDG_STATE_HOME/tether when that is set (an absolute path), else HOME/.local/state/tether;
 * on Windows %LOCALAPPDATA%\tether. Returns 0, or TETHER_ERR_CONFIG with err (no home
 * directory, path too long). */
int tt_state_default_dir(char out[TT_STATE_PATHLEN], char err[TT_ERRLEN]);

/* The key file of device name in dir: DIR/NAME.key, with every byte of NAME other than
 * [A-Za-z0-9_-] and a '.' that is not the first written as %XX (so that a name can neither
 * leave the directory nor hide its file). Returns 0, or TETHER_ERR_CONFIG when it does not fit
 * in outlen. */
int tt_state_key_path(const char *dir, const char *name, char *out, size_t outlen);

/* Reads name's key from dir into key (TETHER_DEVICE_KEY_LEN lowercase hex digits and a NUL;
 * surrounding white space ignored). Returns 0; TETHER_ERR_NOT_FOUND when there is no file; or
 * TETHER_ERR_IO / TETHER_ERR_CONFIG (unreadable; not a key) with err naming the file. */
int tt_state_read_key(uv_loop_t *loop, const char *dir, const char *name,
                      char key[TETHER_DEVICE_KEY_LEN + 1], char err[TT_ERRLEN]);

/* Writes key as name's key file in dir, atomically: the directory (and its missing parents) is
 * created with mode 0700, the key goes to a temporary file of mode 0600 in it, which is synced
 * and renamed over the key file; then the directory is synced (POSIX). On failure nothing is
 * left behind but an unchanged key file. Returns 0, or TETHER_ERR_IO with err. */
int tt_state_write_key(uv_loop_t *loop, const char *dir, const char *name, const char *key,
                       char err[TT_ERRLEN]);

#endif
