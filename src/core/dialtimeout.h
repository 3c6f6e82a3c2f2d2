/* dialtimeout.h - how long an agent's next attempt to reach its relay may take (connect, TLS,
 * WebSocket handshake, then registration), after how the last one ended: the rule both agents
 * follow (the reference agent, src/agent/agent.c, and the microcontroller agent,
 * mcu/agent/tether_mcu.c; bench/loadgen.c uses it too). Pure arithmetic: no state, no clock,
 * no allocation. */
#ifndef TT_CORE_DIALTIMEOUT_H
#define TT_CORE_DIALTIMEOUT_H

#include <stdint.h>

/* How a dial (connect, TLS, WebSocket handshake, then registration) ended, as far as the next
 * dial's timeout is concerned (tt_dialtimeout_next). */
enum tt_dial_end {
    /* It timed out after the TCP connection (to the relay, or to the proxy) was up: the far side
     * was there and working on it (a TLS handshake, a registration) but did not finish in time. */
    TT_DIAL_END_STALLED,
    /* Any other failure: refused, reset, a TLS error, an HTTP answer (a 503 with Retry-After
     * included), a failed lookup, a timeout before any TCP connection (no SYN-ACK: a host that
     * is down or a packet filter; the relay spent nothing on it), a connection lost before
     * WELCOME. */
    TT_DIAL_END_FAILED,
    /* The relay registered the device (WELCOME). */
    TT_DIAL_END_REGISTERED,
};

/* The timeout of the next dial, given the timeout the last one had (cur_ms; 0: there was none
 * yet) and how it ended. The rule: base_ms at first and after a registration; twice cur_ms after
 * a stalled dial, at most max_ms; cur_ms again after any other failure (a quick failure says
 * nothing about how long a handshake takes now, and a longer timeout costs nothing when the
 * relay answers sooner). The result is always within [base_ms, max_ms] (max_ms < base_ms is
 * taken as base_ms; base_ms 0 as 1). Why: in a reconnect storm a loaded relay may need longer
 * than base_ms for a handshake; a device that gives up then dials again and pays the whole
 * handshake again, while the relay's work on the abandoned one is lost, and the herd never
 * converges. Waiting longer each time lets each device finish once. Cannot fail. */
uint32_t tt_dialtimeout_next(uint32_t cur_ms, enum tt_dial_end end, uint32_t base_ms,
                                 uint32_t max_ms);

#endif
