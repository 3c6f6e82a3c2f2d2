/* app.h - the example firmware's application on the microcontroller agent: an HTTP service
 * ("http": a status page, generated bodies, an upload counter) and a TCP echo ("echo"), both
 * served through the relay by tether_mcu.h's callbacks. Board-independent: the port (mcu/port)
 * supplies the console, the random source and the key storage through port.h. */
#ifndef TT_APP_H
#define TT_APP_H

#include "tether_mcu.h"

/* The services the example registers, in HELLO order. */
#define TT_APP_SERVICE_HTTP 0
#define TT_APP_SERVICE_ECHO 1
extern const struct tether_mcu_service tt_app_services[2];

/* The callbacks the example gives tether_mcu_init (ud: unused, NULL). */
extern const struct tether_mcu_callbacks tt_app_callbacks;

#endif
