/* relaytext.h - text the relay chose, checked or cleaned before the agent shows it. WELCOME's
 * label, service names and addresses end up in the agent's "ready" lines, --json events and
 * logs: they must be printable ASCII without spaces (a URL for an HTTP service), or the
 * registration fails. Free text (a REFUSE or GOAWAY reason, a close reason, a redirect's
 * Location) is copied with every byte outside printable ASCII replaced. Either way nothing from
 * the relay can add a line to the agent's output, forge a field or move a terminal's cursor.
 * Pure: no allocation, no I/O. */
#ifndef TT_AGENT_RELAYTEXT_H
#define TT_AGENT_RELAYTEXT_H

#include <stddef.h>
#include <stdint.h>
#include "core/frame.h"

/* Checks the text of a WELCOME: the label is 1 to TT_MAX_LABEL letters, digits and '-'; each
 * service name and address is printable ASCII (0x21-0x7e), an HTTP service's address, when
 * not empty, starts with http:// or https://, and a TCP service has both a port and an address
 * (public) or neither (port 0 and an empty address: private, reached with `tether connect`).
 * Returns 0, or TETHER_ERR_PROTO with why[whylen] naming the field at fault (its bytes are not
 * repeated). */
int tt_relaytext_check_welcome(const struct tt_welcome *m, char *why, size_t whylen);

/* Copies s[0..n) into out[outlen] (outlen > 0; cut to fit, NUL-terminated) with each byte
 * below 0x20 or above 0x7e written as '?'. s may be NULL when n is 0. Returns out. */
char *tt_relaytext_clean(char *out, size_t outlen, const void *s, size_t n);

#endif
