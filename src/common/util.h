/* util.h - small parsers shared by relay, agent and CLI: durations ("30s", "5m", "2h", "7d"),
 * "HOST:PORT" addresses (IPv6 in brackets), port ranges "LOW-HIGH", ws/wss/http URLs, and
 * secrets read from a file (--token-file).
 * Pure functions over caller buffers; each fills a one-line message in err[TT_ERRLEN] on failure.
 *
 * Return convention of common/ (docs/DESIGN.md, "Return values"): a call that can fail returns
 * 0 or a negative tether_err (include/tether_err.h) and hands its results through
 * out-parameters, last; one that produces a length or a count returns it (>= 0) or a negative
 * tether_err. A question that cannot fail answers bool, an accessor its value. Config and
 * command-line parsers also fill err[TT_ERRLEN]. No -1, no NULL and no errno for failure. */
#ifndef TT_UTIL_H
#define TT_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/compat.h"
#include "tether_err.h"

#define TT_ERRLEN 256
#define TT_HOSTLEN 256

/* Writes a one-line message into err[TT_ERRLEN], cut to fit (through a va_list: a long message
 * is cut, not warned about at compile time). tt_verrf
 * takes the arguments as a va_list, for a function that formats and then returns a code. */
void tt_errf(char err[TT_ERRLEN], const char *fmt, ...) TT_PRINTF(2, 3);
void tt_verrf(char err[TT_ERRLEN], const char *fmt, va_list ap) TT_PRINTF(2, 0);

/* "30s", "5m", "2h", "7d", "1500ms", or a bare number of seconds. Returns 0 and *ms, or
 * TETHER_ERR_INVAL. */
int tt_parse_duration(const char *s, uint64_t *ms, char err[TT_ERRLEN]);

/* "HOST:PORT", "[V6]:PORT". host gets the host without brackets. Port 0..65535 (0 only if
 * allow_zero). Returns 0 or TETHER_ERR_INVAL. */
int tt_parse_hostport(const char *s, char host[TT_HOSTLEN], uint16_t *port, bool allow_zero,
                      char err[TT_ERRLEN]);

/* "LOW-HIGH", 1 <= LOW <= HIGH <= 65535. Returns 0 or TETHER_ERR_INVAL. */
int tt_parse_port_range(const char *s, uint16_t *low, uint16_t *high, char err[TT_ERRLEN]);

struct tt_url {
    char scheme[8]; /* "ws", "wss", "http", "https" (lowercased) */
    char user[128]; /* userinfo, percent-decoded; empty if none */
    char pass[128];
    char host[TT_HOSTLEN]; /* without brackets */
    uint16_t port;         /* explicit or the scheme's default (80/443) */
    bool port_explicit;
    char path[1024]; /* path and query, "/" if empty */
};

/* Parses an absolute URL with one of the schemes in allowed (a NULL-terminated list). Uses
 * http-parser's URL parser underneath. Returns 0 or TETHER_ERR_INVAL. */
int tt_parse_url(const char *s, const char *const *allowed, struct tt_url *u, char err[TT_ERRLEN]);

/* tt_read_secret_file's answer when the file cannot be opened or read (a runtime failure). */
#define TT_SECRET_IO TETHER_ERR_IO

/* Reads a secret (a token) from the first line of the file at path into out[outlen]: the line
 * without its LF or CRLF; anything after the first line is ignored. The secret must be 1 to
 * outlen - 1 bytes of printable ASCII without spaces. Returns 0; TETHER_ERR_INVAL (a usage
 * error) for an
 * empty first line, a longer one, a space or a control character in it; TT_SECRET_IO when the
 * file cannot be opened or read. err names what and the path, never the content; out is wiped
 * unless 0 is returned, and no copy of the secret is left behind. */
int tt_read_secret_file(const char *path, char *out, size_t outlen, char err[TT_ERRLEN]);

/* Reads the whole file at path (at most max bytes) into a malloc'd, NUL-terminated buffer *out
 * that the caller frees, and its length into *len. Returns 0, or with err naming the path and
 * the problem (*out NULL): TETHER_ERR_IO (unreadable, a read error), TETHER_ERR_TOO_LARGE (over
 * max bytes), TETHER_ERR_NOMEM. */
int tt_read_small_file(const char *path, size_t max, char **out, size_t *len, char err[TT_ERRLEN]);

/* Overwrites p[0..n) with zeros in a way the compiler keeps (OPENSSL_cleanse). */
void tt_secret_wipe(void *p, size_t n);

/* Checks a secret taken from elsewhere (a flag, an environment variable): 1 to maxlen bytes of
 * printable ASCII without spaces. Returns 0, or TETHER_ERR_INVAL with err naming what
 * ("TETHER_TOKEN"). */
int tt_check_secret(const char *s, size_t maxlen, const char *what, char err[TT_ERRLEN]);

/* Fills buf with n random bytes from OpenSSL's CSPRNG. Returns 0 or TETHER_ERR_IO. */
int tt_random_bytes(void *buf, size_t n);

/* Writes a random DNS label of len characters (lowercase letters and digits, first a letter)
 * and a NUL into out[len+1]. Returns 0 or TETHER_ERR_IO. */
int tt_random_label(char *out, size_t len);

/* Constant-time comparison of two byte strings (lengths compared too, without early exit on
 * content). */
bool tt_consttime_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Percent-decodes in[0..len) into out[outsize] (NUL-terminated). Returns 0, or TETHER_ERR_INVAL
 * for a bad or cut escape, an escaped NUL, or a result that does not fit. */
int tt_pct_decode(const char *in, size_t len, char *out, size_t outsize);

#endif
