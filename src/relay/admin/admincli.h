/* admincli.h - `tetherd admin [--admin-url URL] COMMAND...` (SPEC "tetherd"): the admin API from
 * the command line. One blocking HTTP/1.1 request (plain, or TLS for an https:// URL through a
 * reverse proxy, the certificate checked against the system's CAs) per command, the token from
 * TETHER_ADMIN_TOKEN or --admin-token-file (never from the command line), the answer parsed with
 * http-parser and jansson. Commands: devices [--json], device NAME [--json], delete NAME,
 * grant USER PATTERN... --ttl DURATION [--json] (prints the token), grants [--json],
 * revoke ID. Exit 0 on success, 1 when the API refuses or cannot be reached, 2 for usage
 * errors; errors are one line on stderr. Runs in its own process: no loop, no relay. */
#ifndef TT_ADMINCLI_H
#define TT_ADMINCLI_H

#include <stdio.h>

/* The default --admin-url. */
#define TT_ADMINCLI_URL "http://127.0.0.1:9090"
/* Connect, send and receive timeout, and the largest answer read. */
#define TT_ADMINCLI_TIMEOUT_S 30
#define TT_ADMINCLI_MAX_ANSWER (256u << 20)

/* Runs `tetherd admin` with argv[0] = "admin" and its arguments. Returns the exit status. */
int tt_admincli_main(int argc, char **argv);

/* The usage of `tetherd admin`. */
void tt_admincli_usage(FILE *f);

/* The table `devices` prints for the API's answer body[0..len) ({"devices":[...]}) into f.
 * Returns 0, or -1 when the body is not such an answer. */
int tt_admincli_print_devices(FILE *f, const char *body, size_t len);

/* The lines `device NAME` prints for one device object body[0..len) into f. Returns 0 or -1. */
int tt_admincli_print_device(FILE *f, const char *body, size_t len);

#endif
