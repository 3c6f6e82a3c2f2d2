/* pattern.h - DEVICE/SERVICE patterns, as --public, --users-file grants and the admin API's
 * grants write them: a glob over the device name, a '/', a glob over the service name. In each
 * glob '*' stands for any run of characters (none included) and '?' for one; every other byte
 * stands for itself. '*' never crosses the '/': "*" + "/" + "ssh" is every device's ssh service,
 * "plant-7-*" + "/" + "*" every service of the devices whose name starts with plant-7-. Pure; no
 * allocation. */
#ifndef TT_PATTERN_H
#define TT_PATTERN_H

#include <stdbool.h>
#include <stddef.h>
#include "common/util.h"
#include "core/frame.h"

/* Longest pattern: a device glob and a service glob of TT_MAX_NAME bytes each, and the '/'. */
#define TT_PATTERN_MAX (2 * TT_MAX_NAME + 1)

/* Checks that p is a pattern: exactly one '/', 1 to TT_MAX_NAME bytes on each side, printable
 * ASCII without spaces. Returns 0, or -1 with a one-line message in err saying what is wrong
 * (naming the pattern, cut to a readable length). */
int tt_pattern_check(const char *p, char err[TT_ERRLEN]);

/* True when pattern p (checked) matches device and service. Linear in the lengths times the
 * number of '*' at most: no backtracking blow-up whatever the names. */
bool tt_pattern_match(const char *p, const char *device, const char *service);

/* True when some of the n patterns p[0..n) matches. */
bool tt_pattern_match_any(const char (*p)[TT_PATTERN_MAX + 1], size_t n, const char *device,
                          const char *service);

#endif
