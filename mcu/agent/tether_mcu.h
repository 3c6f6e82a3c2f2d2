/* tether_mcu.h - the Tether device agent for microcontrollers: one relay connection over lwIP's
 * raw TCP API (NO_SYS=1), the WebSocket client (mcuws.c) and the sans-I/O session of src/core.
 * No heap: the agent is one struct the application places (statically), every buffer in it is
 * sized at build time by the TETHER_MCU_* macros below. It registers, serves the relay's streams
 * to the application's callbacks with the protocol's flow control, answers and sends pings,
 * drops a dead link and reconnects with back-off and jitter (docs/mcu.md).
 *
 * Threading: everything runs in lwIP's one thread of control (the firmware's main loop that
 * polls the netif and calls sys_check_timeouts()). Callbacks are called from lwIP's callbacks
 * and timers; the application's calls (tether_mcu_write and the rest) are made from callbacks
 * or from that same loop, never from an interrupt.
 *
 * Stream lifetime: every stream the application accepts in callbacks.open ends with exactly one
 * callbacks.close (FIN both ways and every byte delivered, a RESET from the relay, or the
 * connection lost), except when the application aborts it itself with tether_mcu_reset: then it
 * is over when that call returns and close is not called. A stream id is not valid after it
 * ended; the relay may reuse ids.
 *
 * Re-entrancy: callbacks are never called from inside the protocol core. The application's calls
 * run the agent's deferred work before they return, so a call made outside any callback (from
 * the main loop) may call callbacks back before it returns: delivery of buffered bytes, fin,
 * writable, close. Calls made inside a callback never do: their work runs once it returns. */
#ifndef TETHER_MCU_H
#define TETHER_MCU_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/session.h"
#include "mcuws.h"

/* Build-time sizes (define them on the compiler's command line to change them). */
#ifndef TETHER_MCU_MAX_STREAMS
#define TETHER_MCU_MAX_STREAMS 2 /* concurrent streams (HELLO max_streams) */
#endif
#ifndef TETHER_MCU_WINDOW
#define TETHER_MCU_WINDOW 1024 /* receive window per stream (HELLO window), bytes */
#endif
#ifndef TETHER_MCU_TXBUF
#define TETHER_MCU_TXBUF 256 /* masking buffer: outgoing bytes pass through it to tcp_write */
#endif
#ifndef TETHER_MCU_HEADBUF
#define TETHER_MCU_HEADBUF 512 /* the upgrade request, the relay's answer head, the HELLO */
#endif
#ifndef TETHER_MCU_MAX_SERVICES
#define TETHER_MCU_MAX_SERVICES 4
#endif
/* The device key: 64 lowercase hex digits (docs/PROTOCOL.md 6.4). */
#define TETHER_MCU_KEY_LEN 64

#if TETHER_MCU_WINDOW < 1 || TETHER_MCU_WINDOW > 65535
#error "TETHER_MCU_WINDOW must be 1..65535"
#endif
#if TETHER_MCU_TXBUF < 64
#error "TETHER_MCU_TXBUF must be at least 64"
#endif

/* The session's stream table: a power of two holding at least twice TETHER_MCU_MAX_STREAMS
 * (src/core keeps its open-addressing table at most half full and cannot grow this one). */
#define TETHER_MCU_TABLE_CAP                                                                       \
    (TETHER_MCU_MAX_STREAMS <= 2   ? 4u                                                            \
     : TETHER_MCU_MAX_STREAMS <= 4 ? 8u                                                            \
     : TETHER_MCU_MAX_STREAMS <= 8 ? 16u                                                           \
                                   : 32u)
#if TETHER_MCU_MAX_STREAMS < 1 || TETHER_MCU_MAX_STREAMS > 16
#error "TETHER_MCU_MAX_STREAMS must be 1..16"
#endif

struct tcp_pcb;
struct tether_mcu;

struct tether_mcu_service {
    uint8_t kind;     /* TT_SERVICE_HTTP or TT_SERVICE_TCP */
    const char *name; /* 1..64 bytes */
};

/* What the application sets; pointed to (not copied) by the agent: it must outlive it. */
struct tether_mcu_config {
    const char *host; /* the relay: a dotted IPv4 address, or a name when built with TT_MCU_DNS */
    uint16_t port;    /* 0: 80 */
    const char *path; /* NULL: "/" */
    const char *name; /* the device's name, 1..64 bytes */
    const char *token;
    const struct tether_mcu_service *services;
    uint8_t nservices; /* 0..TETHER_MCU_MAX_SERVICES */
    /* Timers, milliseconds; 0 takes the default of docs/PROTOCOL.md 2.3 and SPEC.md. */
    uint32_t ping_after_ms;      /* ping after this much silence (20000) */
    uint32_t dead_after_ms;      /* drop the link after this much silence (30000) */
    uint32_t backoff_base_ms;    /* first reconnect delay (1000) */
    uint32_t backoff_cap_ms;     /* longest reconnect delay (60000) */
    uint32_t connect_timeout_ms; /* TCP connect + upgrade + WELCOME (15000); grows after stalls */
};

/* How a stream ended (callbacks.close). */
enum tether_mcu_end {
    TETHER_MCU_END_DONE = 0,  /* FIN both ways, and every byte delivered */
    TETHER_MCU_END_RESET = 1, /* the relay reset it (code: its TT_RESET_*), or broke its rules */
    TETHER_MCU_END_LOST = 2,  /* the connection to the relay is gone */
};

enum tether_mcu_event_kind {
    TETHER_MCU_EV_READY = 1,        /* registered: welcome holds the label and services */
    TETHER_MCU_EV_DISCONNECTED = 2, /* a registered connection ended; retry_ms until the next try */
    TETHER_MCU_EV_FAILED = 3,       /* an attempt failed before registration (what, retry_ms) */
    TETHER_MCU_EV_REFUSED = 4,      /* the relay refused the HELLO (code, reason, retry_ms) */
    TETHER_MCU_EV_KEY_LOST = 5,     /* key_store failed: the new key lives in RAM only */
};

struct tether_mcu_event {
    enum tether_mcu_event_kind kind;
    const char *what;     /* why, in words (a constant string); "" for READY */
    uint16_t code;        /* REFUSE code, GOAWAY code (DISCONNECTED after GOAWAY), HTTP status */
    struct tt_str reason; /* the relay's own words (REFUSE, GOAWAY), not NUL-terminated */
    uint32_t retry_ms;    /* until the next attempt */
    const struct tt_welcome *welcome; /* READY: valid during the call */
};

/* The application's side. Every callback gets the ud given to tether_mcu_init. open, data and
 * random are required; the others may be NULL. */
struct tether_mcu_callbacks {
    /* The relay opened stream to service (an index into config.services). Return 0 to accept,
     * or a TT_RESET_* code (> 0) to refuse it (no close follows). */
    int (*open)(struct tether_mcu *a, uint32_t stream, uint8_t service, void *ud);
    /* Bytes for stream. Return how many were taken (0..len); the rest stays in the agent's
     * buffer for this stream and is offered again after tether_mcu_resume() (or on the agent's
     * next tick). Taken bytes are credited back to the relay (WINDOW): the relay never has more
     * than TETHER_MCU_WINDOW bytes outstanding per stream. */
    size_t (*data)(struct tether_mcu *a, uint32_t stream, const uint8_t *p, size_t len, void *ud);
    /* The relay will send nothing more on stream (after every byte was taken). */
    void (*fin)(struct tether_mcu *a, uint32_t stream, void *ud);
    /* tether_mcu_write returned less than asked (or 0): it may take more now. */
    void (*writable)(struct tether_mcu *a, uint32_t stream, void *ud);
    /* The stream is over (see "Stream lifetime"); code is the relay's RESET code for END_RESET.
     * Free the application's state for it here. */
    void (*close)(struct tether_mcu *a, uint32_t stream, enum tether_mcu_end how, uint16_t code,
                  void *ud);
    /* Registration, disconnection, refusal: for logs and "ready" lines. */
    void (*event)(struct tether_mcu *a, const struct tether_mcu_event *ev, void *ud);
    /* The device key: load the stored one into out (return its length: 0 when there is none, else
     * TETHER_MCU_KEY_LEN), and store a new one durably before returning 0 (non-zero: failed).
     * Flash in a firmware; without them the key lives in RAM until the next reset. */
    size_t (*key_load)(void *ud, char out[TETHER_MCU_KEY_LEN]);
    int (*key_store)(void *ud, const char *key, size_t len);
    /* Fills out with random bytes (WebSocket key and masks, back-off jitter): a hardware RNG. */
    void (*random)(void *ud, uint8_t *out, size_t len);
};

enum tether_mcu_state {
    TETHER_MCU_IDLE = 0,    /* not started, or stopped */
    TETHER_MCU_WAITING = 1, /* backing off before the next attempt */
    TETHER_MCU_RESOLVING = 2,
    TETHER_MCU_CONNECTING = 3,
    TETHER_MCU_UPGRADING = 4, /* upgrade request sent, reading the answer */
    TETHER_MCU_HELLO = 5,     /* HELLO sent, waiting for WELCOME */
    TETHER_MCU_ONLINE = 6,    /* registered */
};

/* Per stream: the bytes received and not yet taken by the application, in a ring. */
struct tether_mcu_stream {
    uint32_t id; /* 0: free */
    void *user;
    uint16_t head, len;
    uint8_t flags; /* private (tether_mcu.c) */
    uint16_t reset_code;
    uint8_t buf[TETHER_MCU_WINDOW];
};

/* The agent. Fields are private. */
struct tether_mcu {
    const struct tether_mcu_config *cfg;
    const struct tether_mcu_callbacks *cb;
    void *ud;
    uint8_t state; /* enum tether_mcu_state */
    uint8_t depth; /* nesting of entry points: deferred work runs at depth 0 */
    uint8_t drop;  /* a drop is pending (DROP_* in tether_mcu.c) */
    uint8_t got_goaway, refused, registered, ping_out, pong_due, ticking;
    uint8_t stopping, tearing, reported, retry_planned, dirty, tx_failed;
    uint16_t goaway_code, fail_status;
    const char *drop_what;
    struct tcp_pcb *pcb;
    struct tcp_pcb *aborted; /* compared only: the pcb tcp_abort freed in this entry point */
    uint32_t attempt_at, retry_at, registered_at, last_rx, last_ping;
    uint32_t backoff_attempt, retry_after_s, retry_delay;
    /* The timeout of the attempts: connect_timeout_ms, doubled after each one that stalled, at
     * most 4 times connect_timeout_ms; back to it at each WELCOME (0: none yet). */
    uint32_t dial_timeout_ms;
    uint8_t key[TETHER_MCU_KEY_LEN];
    uint8_t keylen;
    char accept[TT_MCUWS_ACCEPT_LEN + 1];
    uint16_t headlen;
    uint8_t pong[TT_MCUWS_CTRL_MAX];
    uint8_t ponglen;
    struct tt_mcuws_reader ws;
    struct tt_session session;
    struct tt_session_callbacks scb;
    struct tt_stream table[TETHER_MCU_TABLE_CAP];
    struct tether_mcu_stream streams[TETHER_MCU_MAX_STREAMS];
    /* Output: a message's bytes are masked here, then copied by tcp_write. */
    uint8_t tx[TETHER_MCU_TXBUF];
    uint8_t mask[4];
    uint32_t txfill;
    uint64_t txoff;
    /* The upgrade request, then the answer head, then the HELLO. */
    char head[TETHER_MCU_HEADBUF];
};

/* Prepares a with cfg and cb (both must outlive a) and loads the device key (key_load). Returns
 * 0, or TETHER_ERR_INVAL: a required callback is missing, the name, token or services are out
 * of the protocol's limits, or the HELLO they make does not fit TETHER_MCU_HEADBUF. */
int tether_mcu_init(struct tether_mcu *a, const struct tether_mcu_config *cfg,
                    const struct tether_mcu_callbacks *cb, void *ud);

/* Starts connecting (lwIP must be up, with a netif). From then on the agent lives in lwIP's
 * callbacks and its own timer (sys_timeout) and never gives up until tether_mcu_stop. */
void tether_mcu_start(struct tether_mcu *a);

/* Says GOAWAY NORMAL when registered, closes the connection and stops reconnecting. Every open
 * stream gets close(END_LOST). */
void tether_mcu_stop(struct tether_mcu *a);

/* Sends up to len bytes on stream, as far as the relay's window and lwIP's send buffer allow.
 * Returns the bytes taken (0: none now; callbacks.writable says when to try again), or
 * TETHER_ERR_NO_STREAM (unknown or ended stream), TETHER_ERR_STATE (FIN already sent, not
 * registered). p is copied before the call returns. */
long tether_mcu_write(struct tether_mcu *a, uint32_t stream, const void *p, size_t len);

/* Ends our direction of stream (DATA with FIN). Returns 0, TETHER_ERR_AGAIN (no room in lwIP's
 * send buffer: retry on writable), TETHER_ERR_NO_STREAM or TETHER_ERR_STATE. */
int tether_mcu_fin(struct tether_mcu *a, uint32_t stream);

/* Aborts stream both ways with a TT_RESET_* code; its buffered bytes are dropped. Returns 0 or
 * TETHER_ERR_NO_STREAM. (When lwIP has no room even for the RESET, the connection is dropped.) */
int tether_mcu_reset(struct tether_mcu *a, uint32_t stream, uint16_t code);

/* The application can take more of stream's bytes: offers the buffered ones again, now. */
void tether_mcu_resume(struct tether_mcu *a, uint32_t stream);

/* The stream's user pointer (NULL for an unknown stream) / sets it (0 or TETHER_ERR_NO_STREAM). */
void *tether_mcu_user(const struct tether_mcu *a, uint32_t stream);
int tether_mcu_set_user(struct tether_mcu *a, uint32_t stream, void *user);

enum tether_mcu_state tether_mcu_state(const struct tether_mcu *a);

#endif
