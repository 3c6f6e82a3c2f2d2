/* pattern.c - DEVICE/SERVICE glob patterns (pattern.h). */
#include <stdio.h>
#include <string.h>
#include "relay/lib/pattern.h"

int tt_pattern_check(const char *p, char err[TT_ERRLEN])
{
    const char *slash = strchr(p, '/');
    size_t len = strlen(p);
    if (len > TT_PATTERN_MAX || slash == NULL || strchr(slash + 1, '/') != NULL || slash == p ||
        slash[1] == '\0' || (size_t)(slash - p) > TT_MAX_NAME || strlen(slash + 1) > TT_MAX_NAME) {
        snprintf(err, TT_ERRLEN, "'%.80s' is not a DEVICE/SERVICE pattern", p);
        return -1;
    }
    for (const char *c = p; *c; c++) {
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f) {
            snprintf(err, TT_ERRLEN, "'%.80s': spaces and control characters not allowed", p);
            return -1;
        }
    }
    return 0;
}

/* Glob g[0..glen) against s[0..slen): the classic one-star backtrack (the last '*' seen is the
 * only one retried), which is exact for '*' and '?' and takes at most glen * slen steps. */
static bool glob(const char *g, size_t glen, const char *s, size_t slen)
{
    size_t gi = 0, si = 0, star = (size_t)-1, mark = 0;
    while (si < slen) {
        if (gi < glen && (g[gi] == '?' || (g[gi] != '*' && g[gi] == s[si]))) {
            gi++;
            si++;
        } else if (gi < glen && g[gi] == '*') {
            star = gi++;
            mark = si;
        } else if (star != (size_t)-1) {
            gi = star + 1;
            si = ++mark;
        } else {
            return false;
        }
    }
    while (gi < glen && g[gi] == '*')
        gi++;
    return gi == glen;
}

bool tt_pattern_match(const char *p, const char *device, const char *service)
{
    const char *slash = strchr(p, '/');
    if (slash == NULL || device == NULL || service == NULL)
        return false;
    return glob(p, (size_t)(slash - p), device, strlen(device)) &&
           glob(slash + 1, strlen(slash + 1), service, strlen(service));
}

bool tt_pattern_match_any(const char (*p)[TT_PATTERN_MAX + 1], size_t n, const char *device,
                          const char *service)
{
    for (size_t i = 0; i < n; i++)
        if (tt_pattern_match(p[i], device, service))
            return true;
    return false;
}
