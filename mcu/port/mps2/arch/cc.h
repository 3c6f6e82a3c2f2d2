/* arch/cc.h - lwIP's platform header for the bare-metal firmware (mcu/port/mps2): newlib's
 * headers for the integer types, no stdio (no diagnostics), assertions stop the CPU. */
#ifndef TT_MPS2_ARCH_CC_H
#define TT_MPS2_ARCH_CC_H

void tt_port_panic(const char *what);

#define LWIP_PLATFORM_DIAG(x)                                                                      \
    do {                                                                                           \
    } while (0)
#define LWIP_PLATFORM_ASSERT(x) tt_port_panic(x)
#define LWIP_NO_STDIO_H 1
#define LWIP_PROVIDE_ERRNO 1

#endif
