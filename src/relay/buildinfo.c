/* buildinfo.c - the commit tetherd was built from, for /metrics' tether_build_info (admin.c). The
 * Makefile compiles this file alone with -DTT_BUILD_COMMIT (git rev-parse; "" outside a git
 * tree) and keeps it out of the unit tests' archive, so that a new commit rebuilds one object
 * and relinks tetherd only; admin.c refers to it weakly (NULL where it is not linked). */
#include "relay/admin/procmetrics.h"

#ifndef TT_BUILD_COMMIT
#define TT_BUILD_COMMIT ""
#endif

const char *const tt_buildinfo_commit = TT_BUILD_COMMIT;
