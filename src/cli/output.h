/* output.h - what tether prints for each agent event: "ready" lines (one per service) and the
 * --json objects (one line each, keys in a fixed order). Pure formatting; main.c writes. */
#ifndef TT_CLI_OUTPUT_H
#define TT_CLI_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include "tether.h"

/* Writes the ready lines of a READY event into out[outlen], each ending in '\n':
 *   ready http URL -> TARGET
 *   ready tcp NAME HOST:PORT -> TARGET
 * (a space, control or non-ASCII byte in URL, NAME, HOST or TARGET written as '?')
 * Returns the length written (0 for another kind of event), or -1 if out is too small. */
int tt_output_ready_text(const struct tether_event *ev, char *out, size_t outlen);

/* Writes the stderr line of a DISCONNECTED or ERROR event into out[outlen], ending in '\n':
 *   disconnected: REASON (reconnecting in 1.0 s)
 *   error: MESSAGE (retrying in 1.0 s)
 * with every control or non-ASCII byte of REASON/MESSAGE as '?' (0 bytes for a READY event).
 * Returns the length, or -1 if out is too small. */
int tt_output_event_text(const struct tether_event *ev, char *out, size_t outlen);

/* s (NULL: "") as one field of a line: each byte that is not printable ASCII (or is a space,
 * when word) written as '?', into buf[len] (len > 0; cut to fit). Returns buf. */
const char *tt_output_field(const char *s, bool word, char *buf, size_t len);

/* Returns ev as one compact JSON object without a newline:
 *   {"event":"ready","services":[{"name","kind","url","target"} or
 *                                {"name","kind","host","port","target"}...]}
 *   {"event":"disconnected","reason":"..."}
 *   {"event":"error","message":"..."}
 * The string is malloc'd: the caller frees it with free(). NULL when out of memory. */
char *tt_output_json(const struct tether_event *ev);

#endif
