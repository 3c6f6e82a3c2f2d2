/* audit.h - the audit log (--audit-log FILE; SPEC "Who may reach a device"): one JSON object per
 * line, appended, for every connection to a device service when it ends (a browser connection,
 * a TCP client, a `tether connect` connection) and for every sign-in attempt:
 *   {"time":"2026-12-07T10:00:00Z","event":"connection","device":"NAME","service":"NAME",
 *    "kind":"http"|"tcp","user":"NAME"|null,"client":"IP:PORT","bytes_in":N,"bytes_out":N,
 *    "duration_ms":N,"outcome":"ok"|"refused"|"offline"|"error"}
 *   {"time":...,"event":"signin","user":"NAME","client":"IP:PORT","outcome":"ok"|"refused"}
 * bytes_in counts from the client to the device. Every string comes from jansson, so a peer's
 * text cannot break a line. Each line is one write(2) on a file opened O_APPEND (0600), so lines
 * from concurrent writers never interleave; the file is reopened on SIGHUP (log rotation). A
 * line that cannot be written is counted (tether_audit_errors_total) and dropped: the relay never
 * stops serving for its log. With no --audit-log every call does nothing. */
#ifndef TT_AUDIT_H
#define TT_AUDIT_H

#include <stdbool.h>
#include <stdint.h>
#include "common/util.h"

/* Longest line written (a longer one, which valid names cannot make, is dropped and counted). */
#define TT_AUDIT_LINE_MAX 2048

struct tt_audit {
    int fd; /* -1: no audit log */
    char path[1024];
    uint64_t lines, errors; /* counters (/metrics) */
};

/* What one connection was, for tt_audit_connection. Strings are NUL-terminated; user NULL for
 * a public service. */
struct tt_audit_conn {
    const char *device, *service;
    const char *kind; /* "http" or "tcp" */
    const char *user;
    const char *client; /* "IP:PORT" of the browser, TCP client or tether connect */
    uint64_t bytes_in, bytes_out;
    int64_t duration_ms;
    const char *outcome; /* "ok", "refused", "offline" or "error" */
};

/* Opens path for appending (created 0600), or sets a to do nothing when path is "". Returns 0,
 * or -1 with err (a runtime failure at start). */
int tt_audit_open(struct tt_audit *a, const char *path, char err[TT_ERRLEN]);
/* Reopens the file (SIGHUP, after a rotation). On failure the old descriptor stays and err
 * says why (-1). */
int tt_audit_reopen(struct tt_audit *a, char err[TT_ERRLEN]);
/* Closes the file. */
void tt_audit_close(struct tt_audit *a);

/* True when there is an audit log (callers may skip gathering what it would say). */
bool tt_audit_on(const struct tt_audit *a);

/* Writes a connection line, stamped at now (unix ms). */
void tt_audit_connection(struct tt_audit *a, const struct tt_audit_conn *c, int64_t now);
/* Writes a sign-in line: user as typed (cut to 64 bytes), ok or refused. */
void tt_audit_signin(struct tt_audit *a, const char *user, const char *client, bool ok,
                     int64_t now);

#endif
