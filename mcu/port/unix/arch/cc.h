/* arch/cc.h - lwIP's platform header for the user-space test build (mcu/port/unix): Linux's C
 * library provides the integer types and errno; lwIP's diagnostics go to stderr. */
#ifndef TT_UNIX_ARCH_CC_H
#define TT_UNIX_ARCH_CC_H

#include <stdio.h>
#include <stdlib.h>

void tt_unix_diag(const char *fmt, ...);
#define LWIP_PLATFORM_DIAG(x) tt_unix_diag x
#define LWIP_PLATFORM_ASSERT(x)                                                                    \
    do {                                                                                           \
        fprintf(stderr, "lwip assertion \"%s\" failed at %s:%d\n", x, __FILE__, __LINE__);         \
        abort();                                                                                   \
    } while (0)
#define LWIP_ERRNO_STDINCLUDE 1

#endif
