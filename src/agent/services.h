/* services.h - the device's side of a stream: when the relay opens a stream to service N, the
 * agent connects to that service's configured target (and only there: the relay names a
 * service by index, never an address) and joins socket and stream with a pipe (common/pipe.h).
 * A target with several addresses (a host name) is tried address by address. */
#ifndef TT_AGENT_SERVICES_H
#define TT_AGENT_SERVICES_H

#include <stdint.h>
#include <uv.h>
#include "agent/agentconf.h"
#include "agent/resolve.h"
#include "common/wsconn.h"

#define TT_SERVICES_CONNECT_TIMEOUT_MS 10000u

/* Starts a local connection to svc->host:svc->port for stream id of c, and creates the pipe at
 * once so that data arriving meanwhile is kept (the window bounds it). A host name is looked up
 * as resolver says (resolve.h; NULL: the system's way; localhost names and IP literals never
 * are); resolver must outlive the stream. svc must outlive the
 * stream (it lives in the agent's config). origin (may be NULL or not terminated: a view of
 * originlen bytes) is the public client's address, for the log. Returns 0, or a positive
 * TT_RESET_* code to refuse the stream (out of memory). A connect failure later resets the
 * stream with TT_RESET_REFUSED (through tt_pipe_connected). */
int tt_services_open(uv_loop_t *loop, const struct tt_resolver *resolver, struct tt_wsconn *c,
                     uint32_t id, const struct tt_service *svc, const uint8_t *origin,
                     size_t originlen);

#endif
