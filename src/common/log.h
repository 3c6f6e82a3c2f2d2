/* log.h - one stderr line per event, "LEVEL key=value ..." style, for the relay and the agent.
 * TT_LOG() checks the level before evaluating its arguments. The core never logs through this.
 * Never log tokens. stdout is reserved for the agent's ready lines and --json events.
 * Return values: common/'s convention (util.h): 0 or a negative tether_err, results through
 * out-parameters; the writers return the length written. */
#ifndef TT_LOG_H
#define TT_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/compat.h"

enum tt_log_level {
    TT_LOG_ERROR = 0,
    TT_LOG_WARN = 1,
    TT_LOG_INFO = 2,
    TT_LOG_DEBUG = 3,
};

/* The current level (process-wide; default TT_LOG_INFO). */
extern int tt_log_level;

/* Parses "error", "warn", "info", "debug" (case-insensitive) into *level. Returns 0 or
 * TETHER_ERR_INVAL (*level untouched). */
int tt_log_parse_level(const char *s, int *level);
/* Sets the prefix printed before every line ("tetherd" or "tether"); s must be static. */
void tt_log_set_program(const char *s);

/* Writes one line: "<timestamp> <program> <LEVEL> <message>\n" to stderr. */
void tt_log_write(int level, const char *fmt, ...) TT_PRINTF(2, 3);

/* --log-format json: from now on each line is one JSON object, {"time":"...","program":"tether",
 * "level":"info","msg":"device registered",KEY:"VALUE",...}: the words of the message before and
 * between its key=value pairs make msg, each pair a string field (quotes and the backslashes
 * before '"' and '\\' removed; a key named like one of the first four gets "field_" before it).
 * Process-wide, like tt_log_level; set it before logging starts. */
void tt_log_set_json(bool on);
bool tt_log_is_json(void);

/* The line[0..end) that tt_log_write built (its message from start) as a JSON object and a
 * newline in out[outlen]. Returns its length, or 0 (out of room or memory: write the text).
 * For tt_log_write and the tests. */
size_t tt_log_json_line(char *out, size_t outlen, const char *line, size_t start, size_t end,
                        int level);

/* Writes "<timestamp> <program> " (the start of a tt_log_write line, without the level) into
 * out[outlen], for lines a program writes itself (the agent's "error:" and "disconnected:"
 * lines). Returns its length; 0 (and "") if it does not fit. */
size_t tt_log_stamp(char *out, size_t outlen);

/* Text a peer chose (a device's name or close reason, a relay's URL or label, a Host header...)
 * goes into a line only through these, so that it cannot add fields or lines of its own.
 * Bytes below 0x20, 0x7f and above are written \xHH (\n, \r and \t as such); '"' and '\\' get
 * a backslash. Longer text is cut and ends in "...". */
#define TT_LOG_VALUE_MAX 256 /* bytes a value takes at most in a line, quotes and NUL included */

/* Writes s (NULL reads as "") into out[outlen] escaped as above and, when the result is empty or
 * holds a space, '=', '"' or '\\', wrapped in double quotes, so that "key=%s" reads back as one
 * field. Returns out. Cannot fail; outlen below 8 yields "". */
const char *tt_log_value(char *out, size_t outlen, const char *s);
/* The same for the n bytes at s (a NUL byte among them is written \x00). */
const char *tt_log_valuen(char *out, size_t outlen, const char *s, size_t n);
/* Escapes s as above without ever adding quotes: for text inside quotes the format string
 * writes itself ("reason=\"%s\""). Returns out. */
const char *tt_log_escape(char *out, size_t outlen, const char *s);

/* TT_LOG_V(s), TT_LOG_VN(s, n) and TT_LOG_E(s): tt_log_value, _valuen and tt_log_escape into a
 * buffer that lives until the end of the statement, for use among TT_LOG's arguments (evaluated
 * only when the line is written): TT_LOG(TT_LOG_INFO, "device gone device=%s reason=\"%s\"",
 * TT_LOG_V(name), TT_LOG_E(why)). */
#define TT_LOG_V(s) tt_log_value((char[TT_LOG_VALUE_MAX]){0}, TT_LOG_VALUE_MAX, (s))
#define TT_LOG_E(s) tt_log_escape((char[TT_LOG_VALUE_MAX]){0}, TT_LOG_VALUE_MAX, (s))
#define TT_LOG_VN(s, n) tt_log_valuen((char[TT_LOG_VALUE_MAX]){0}, TT_LOG_VALUE_MAX, (s), (n))

#define TT_LOG(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) <= tt_log_level)                                                               \
            tt_log_write((level), __VA_ARGS__);                                                    \
    } while (0)

#endif
