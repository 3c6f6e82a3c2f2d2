/* mbedtls_config.h - mbedTLS as the microcontroller agent uses it: SHA-1 and base64 only, for
 * the WebSocket handshake's Sec-WebSocket-Accept (RFC 6455 4.1). A wss:// build would enable
 * TLS here (docs/mcu.md, "wss:// on a microcontroller"). */
#ifndef TT_MCU_MBEDTLS_CONFIG_H
#define TT_MCU_MBEDTLS_CONFIG_H

#define MBEDTLS_SHA1_C
#define MBEDTLS_BASE64_C

#endif
