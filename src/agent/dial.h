/* dial.h - one attempt to reach a relay: resolve its host (or its HTTP proxy's), TCP-connect to
 * each address in turn, then run a stack of connection filters over the socket, bottom to top:
 * [HTTP proxy CONNECT (proxy.h), when one applies to the URL] -> [TLS] -> WebSocket opening
 * handshake. HTTP redirects (301/302/307/308) met in the handshake are followed, up to a limit,
 * each new hop choosing its proxy afresh (a new CONNECT). On success the connected socket and
 * any bytes read past the handshake are handed over, ready for tt_wsconn_new(). */
#ifndef TT_AGENT_DIAL_H
#define TT_AGENT_DIAL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "agent/proxy.h"
#include "agent/resolve.h"
#include "common/conn.h"
#include "common/tls.h"
#include "common/util.h"

#define TT_DIAL_TIMEOUT_MS 15000u /* per hop: resolve + connect + handshake */
/* The agent's dial timeout grows after dials that stalled (tt_dialtimeout_next), up to: */
#define TT_DIAL_TIMEOUT_MAX_MS 60000u
#define TT_DIAL_MAX_REDIRECTS 5u /* in a row, within one attempt */

struct tt_dial;

struct tt_dial_result {
    int err;             /* 0 or a tether_err (REFUSED, TIMEOUT, NOT_FOUND, HANDSHAKE, ...) */
    const char *message; /* failure: one line naming the URL and the cause; success: "" */
    const char *url;     /* the URL of the last hop (differs from the start after a redirect) */
    /* Success only. conn is connected (over TLS for wss://), not reading; the callback owns
     * it from now on (it must close it with tt_conn_close, or hand it to tt_wsconn_new).
     * pre[0..prelen) are bytes read past the handshake, valid during the callback only. */
    struct tt_conn *conn;
    const uint8_t *pre;
    size_t prelen;
    /* Failure during the WebSocket handshake (err TETHER_ERR_HANDSHAKE) with an HTTP answer:
     * its status (0 otherwise), and the first line of its body when that was text/plain (the
     * relay's reason for refusing tether connect), cleaned (tt_relaytext_clean); "" otherwise. */
    int status;
    const char *body;
    /* ... and its Retry-After in seconds (a 503 or 429 only: tt_wshs_retry_after); 0: none. */
    uint32_t retry_after;
    /* Failure only: true when the hop's timeout struck after its TCP connection (to the relay,
     * or to the proxy) was up, i.e. the far side took the connection but did not finish the
     * handshake in time (err TETHER_ERR_TIMEOUT); false for every other failure, a timeout
     * before any TCP connection included. */
    bool stalled;
    uint32_t timeout_ms; /* the per-hop timeout this dial had */
};

/* Called exactly once per tt_dial_start() that returned 0, unless tt_dial_cancel() came first.
 * d must not be used once this returns (it frees itself). Every string in r is valid during
 * the call only. */
typedef void (*tt_dial_cb)(struct tt_dial *d, const struct tt_dial_result *r, void *ud);

struct tt_dial_options {
    uint32_t timeout_ms;    /* 0: TT_DIAL_TIMEOUT_MS */
    unsigned max_redirects; /* 0: TT_DIAL_MAX_REDIRECTS */
    /* Proxy settings, consulted at each hop (tt_proxy_select). NULL: always direct. Not copied:
     * it must outlive the dial. A proxy that does not parse fails the hop (TETHER_ERR_CONFIG);
     * a proxy's refusal is TETHER_ERR_AUTH (407) or TETHER_ERR_REFUSED (any other non-2xx). */
    const struct tt_proxy_conf *proxy;
    /* The TLS client context for wss:// hops (tls.h: trusted CAs, or no verification). NULL:
     * a default one (the system's CAs) is made when a hop needs it. Not copied: it must
     * outlive the dial. A failed handshake, certificate verification included, fails the hop
     * with TETHER_ERR_TLS and a message naming the reason. */
    struct tt_tls_ctx *tls;
    /* The WebSocket subprotocol to offer, and to require in the 101 (tether connect's
     * TT_WS_SUBPROTOCOL_CONNECT); NULL: tether.v1, which the answer may leave out (devices). */
    const char *subprotocol;
    /* Extra request header lines ("Name: value\r\n" each, checked by the caller), sent in the
     * upgrade request of every hop, redirects included (never to a ws:// hop after a wss://
     * one: such a redirect is refused). NULL: none. Not copied: it must outlive the dial. It
     * may hold credentials: the request's buffer is wiped once written. */
    const char *headers;
    /* Where names are looked up (resolve.h: --dns); NULL: the system's way. The relay's host,
     * or the proxy's when one applies, is looked up at each hop; a failed lookup fails the hop
     * with the resolver's message (TETHER_ERR_NOT_FOUND, or _TIMEOUT when the DNS server never
     * answered). Not copied: it must outlive the dial. */
    const struct tt_resolver *resolver;
};

/* Starts dialing url (ws:// or wss://; checked again here) on loop. opt may be NULL. Returns 0 and
 * *out (cb follows, asynchronously), or TETHER_ERR_NOMEM / TETHER_ERR_CONFIG (bad URL; err says
 * why) and cb is never called. */
int tt_dial_start(struct tt_dial **out, uv_loop_t *loop, const char *url,
                  const struct tt_dial_options *opt, tt_dial_cb cb, void *ud, char err[TT_ERRLEN]);

/* Abandons d: the callback will not be called; handles close and d frees itself
 * asynchronously. Must not be called after the callback has run. */
void tt_dial_cancel(struct tt_dial *d);

/* Maps a redirect target to the URL to dial next: absolute ws:// and wss:// are kept, http://
 * becomes ws:// and https:// wss://; a Location starting with '/' keeps base's scheme, host
 * and port. Writes the result into out[outlen]. Returns 0, or -1 with err set (unsupported
 * scheme or malformed location, out too small, or a downgrade: from a wss:// or https:// base
 * to a ws:// URL, on any host, is refused). Pure. */
int tt_dial_redirect_url(const char *base, const char *location, char *out, size_t outlen,
                         char err[TT_ERRLEN]);

#endif
