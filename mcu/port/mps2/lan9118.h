/* lan9118.h - an lwIP netif driver for the SMSC LAN9118 Ethernet controller, polled (no
 * interrupts), written from the controller's register map (SMSC LAN9118 datasheet: the TX/RX
 * data and status FIFOs, the MAC CSRs behind MAC_CSR_CMD/MAC_CSR_DATA). One frame at a time
 * through a static frame buffer; no heap: received frames go into lwIP's PBUF_POOL.
 * Used by the MPS2 AN385 port (QEMU emulates the controller at 0x40200000). Tested on QEMU only:
 * the PHY is left at its reset state (auto-negotiation on) and the link is assumed up, no
 * interrupt is used, and receive overruns are not handled beyond dropping frames. */
#ifndef TT_LAN9118_H
#define TT_LAN9118_H

#include <stdbool.h>
#include <stdint.h>

#include "lwip/err.h"
#include "lwip/netif.h"

/* netif_add()'s init function: resets the controller at nif->state (its base address, as a
 * uintptr_t cast to void *), takes its MAC address, enables TX and RX. ERR_IF when the byte-order
 * test register does not read 0x87654321 (no LAN9118 there). */
err_t tt_lan9118_init(struct netif *nif);

/* Hands every received frame to nif->input; frames lwIP has no pbuf for are dropped (counted). */
void tt_lan9118_poll(struct netif *nif);

/* Whether a received frame is waiting (the main loop sleeps only when none is). */
bool tt_lan9118_pending(const struct netif *nif);

/* Frames dropped since the start: bad status, too long, or no pbuf. */
uint32_t tt_lan9118_dropped(void);

#endif
