/* port.h - what the example firmware (mcu/example) needs from its board, implemented once per
 * port: mcu/port/unix (lwIP in a Linux process, on a TAP device) and mcu/port/mps2 (the Arm
 * MPS2 AN385 board, Cortex-M3 with a LAN9118, as QEMU emulates it). */
#ifndef TT_PORT_H
#define TT_PORT_H

#include <stddef.h>
#include <stdint.h>

/* Writes s to the console (no newline added). */
void tt_port_print(const char *s);

/* Random bytes: the WebSocket key and masks, back-off jitter, lwIP's initial ports. A real board
 * uses its hardware RNG; see each port for what it does. */
void tt_port_random(uint8_t *out, size_t n);
unsigned int tt_port_rand32(void);

/* The device key's storage (flash on a board, a file in user space): load returns the key's
 * length (0 when none is stored), store returns 0 once the key is durable. */
size_t tt_port_key_load(char *out, size_t cap);
int tt_port_key_store(const char *key, size_t len);

/* Milliseconds since start (lwIP's sys_now() is this). */
uint32_t tt_port_now_ms(void);

#endif
