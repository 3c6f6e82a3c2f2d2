/* board.h - the MPS2 AN385 board as the example firmware uses it (QEMU's mps2-an385): the
 * console on the CMSDK UART0, a 1 ms SysTick, and the two "flash" sectors of mps2.ld. */
#ifndef TT_BOARD_H
#define TT_BOARD_H

#include <stdint.h>

#define TT_BOARD_CPU_HZ 25000000u  /* the AN385's system clock */
#define TT_BOARD_UART0 0x40004000u /* CMSDK APB UART 0: QEMU's first serial port */
#define TT_BOARD_LAN9118 0x40200000u

/* Counts milliseconds (the SysTick exception). */
void tt_board_systick(void);

/* Fills the unused stack with a pattern (at reset) / the most of it used since: bytes. */
void tt_board_stack_paint(void);
uint32_t tt_board_stack_peak(void);

/* Prints what on the console and stops the CPU (never returns). */
void tt_port_panic(const char *what) __attribute__((noreturn));

#endif
