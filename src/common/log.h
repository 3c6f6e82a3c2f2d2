/* log.h - one stderr line per event, "LEVEL key=value ..." style, for the relay and the agent.
 * TT_LOG() checks the level before evaluating its arguments. The core never logs through this.
 * Never log tokens. stdout is reserved for the agent's ready lines and --json events. */
#ifndef TT_LOG_H
#define TT_LOG_H

#include <stdarg.h>

#include "common/compat.h"

enum tt_log_level {
    TT_LOG_ERROR = 0,
    TT_LOG_WARN = 1,
    TT_LOG_INFO = 2,
    TT_LOG_DEBUG = 3,
};

/* The current level (process-wide; default TT_LOG_INFO). */
extern int tt_log_level;

/* Parses "error", "warn", "info", "debug" (case-insensitive). Returns the level or -1. */
int tt_log_parse_level(const char *s);
/* Sets the prefix printed before every line ("tetherd" or "tether"); s must be static. */
void tt_log_set_program(const char *s);

/* Writes one line: "<timestamp> <program> <LEVEL> <message>\n" to stderr. */
void tt_log_write(int level, const char *fmt, ...) TT_PRINTF(2, 3);

#define TT_LOG(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) <= tt_log_level)                                                               \
            tt_log_write((level), __VA_ARGS__);                                                    \
    } while (0)

#endif
