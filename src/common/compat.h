/* compat.h - the few things the agent's code (src/common, src/agent, src/cli) spells
 * differently on Windows (mingw-w64) than on POSIX systems, in one place: the printf format
 * attribute and gmtime_r. Everything else the agent needs is libuv's, OpenSSL's or C17's. */
#ifndef TT_COMPAT_H
#define TT_COMPAT_H

#include <time.h>

#if defined(_WIN32)
/* `make cross ARCH=win64` builds with __USE_MINGW_ANSI_STDIO=1: mingw-w64's own printf family,
 * which formats as C99 says (%zu, %lld); gcc's "printf" would check against Microsoft's. */
#define TT_PRINTF(fmt, first) __attribute__((format(gnu_printf, fmt, first)))
#else
#define TT_PRINTF(fmt, first) __attribute__((format(printf, fmt, first)))
#endif

/* gmtime_r: the broken-down UTC time of *t into *out; returns out, or NULL on failure. */
static inline struct tm *tt_gmtime(const time_t *t, struct tm *out)
{
#if defined(_WIN32)
    return gmtime_s(out, t) == 0 ? out : NULL;
#else
    return gmtime_r(t, out);
#endif
}

#endif
