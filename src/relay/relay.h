/* relay.h - tetherd's life cycle (relay.c, the composition root): set-up from the
 * configuration, listeners, reloads and graceful stop of one struct tt_relay (core.h). Only
 * main.c includes it; the parts include relay/core.h. */
#ifndef TT_RELAY_H
#define TT_RELAY_H

#include "relay/config.h"
#include "relay/core.h"

/* Prepares r from cfg (copied): the data dir (created if missing, and locked against a second
 * tetherd; its registry files made 0600), the registry in it (DATA_DIR/registry.db), credentials
 * (--token, --tokens-file, or the generated token kept hashed in the registry: one already there
 * is loaded; a new one is made by tt_relay_listen once the listeners are bound), the TLS
 * certificate and key (--tls-cert, --tls-key) and the TCP port pool. Logs nothing. Returns 0, or -1
 * with a one-line message in err (a runtime failure: exit 1).
 */
int tt_relay_init(struct tt_relay *r, uv_loop_t *loop, const struct tt_config *cfg,
                  char err[TT_ERRLEN]);

/* Binds the --listen ports, the --tls-listen ports and the admin port, checks --tcp-bind,
 * restores the devices the registry remembers (offline, their TCP ports held) and starts the
 * expiry sweep (tt_device_start), makes the generated token if there is none yet (printed once on
 * stdout: "tetherd: device token: HEX"), then logs one line per listener (and the certificate's),
 * and a warning when the data dir is open to other users. Returns 0, or -1 with err ("--listen
 * ADDR:PORT: address already in use") and nothing logged. */
int tt_relay_listen(struct tt_relay *r, char err[TT_ERRLEN]);

/* Re-reads --tokens-file (SIGHUP); with the generated token (and the registry in the data dir)
 * re-reads its hash, which `tetherd token rotate` may have replaced: the one used until then
 * joins the old fleet tokens (good only with a device key). On error the old tokens stay and
 * err says why. Returns 1 when the generated token changed, 0 (also when there is no tokens
 * file) or -1. */
int tt_relay_reload_tokens(struct tt_relay *r, char err[TT_ERRLEN]);

/* Re-reads --tls-cert and --tls-key (SIGHUP): connections accepted from now on get the new
 * certificate; those already open keep theirs (each TLS session holds its own reference to
 * the context it was made with). On error the old certificate stays and err says why.
 * Returns 1 (reloaded), 0 (no TLS listener) or -1. */
int tt_relay_reload_tls(struct tt_relay *r, char err[TT_ERRLEN]);

/* Graceful stop: devices get GOAWAY (shutdown), listeners, waiting connections and TCP ports
 * close. The loop ends once the device connections have closed. Safe to call twice. */
void tt_relay_stop(struct tt_relay *r);

/* Frees what tt_relay_init allocated; call after the loop has ended. */
void tt_relay_free(struct tt_relay *r);

#endif
