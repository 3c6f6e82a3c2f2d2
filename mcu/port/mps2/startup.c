/* startup.c - reset and exception vectors of the example firmware on the MPS2 AN385 (Cortex-M3):
 * copies .data from flash, zeroes .bss, enters main(). Faults print a line on the console and
 * stop the CPU. The symbols come from mps2.ld. */
#include <stdint.h>
#include <string.h>

#include "board.h"

extern uint32_t tt_data_load[], tt_data_start[], tt_data_end[], tt_bss_start[], tt_bss_end[];
extern uint32_t tt_stack_top[], tt_stack_bottom[];

int main(void);
void tt_reset_handler(void);

void tt_reset_handler(void)
{
    memcpy(tt_data_start, tt_data_load, (size_t)((char *)tt_data_end - (char *)tt_data_start));
    memset(tt_bss_start, 0, (size_t)((char *)tt_bss_end - (char *)tt_bss_start));
    tt_board_stack_paint();
    main();
    tt_port_panic("main returned");
}

static void fault(void)
{
    tt_port_panic("CPU fault");
}

static void unexpected(void)
{
    tt_port_panic("unexpected interrupt");
}

/* The Cortex-M3's 16 system vectors, then the AN385's 32 external interrupts (none used). */
typedef void (*tt_vector)(void);
__attribute__((section(".isr_vector"), used)) static const tt_vector vectors[16 + 32] = {
    [0] = (tt_vector)(uintptr_t)tt_stack_top,
    [1] = tt_reset_handler,
    [2] = fault,  /* NMI */
    [3] = fault,  /* HardFault */
    [4] = fault,  /* MemManage */
    [5] = fault,  /* BusFault */
    [6] = fault,  /* UsageFault */
    [11] = fault, /* SVCall */
    [12] = fault, /* DebugMonitor */
    [14] = fault, /* PendSV */
    [15] = tt_board_systick,
    [16 ... 47] = unexpected,
};
