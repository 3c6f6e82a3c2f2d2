/* tokencli.h - `tetherd token status|rotate [--data-dir DIR | --config FILE]` (the data dir
 * from the relay's config file): the generated fleet token seen
 * and rotated from the command line, on the SQLite registry in the data dir (also while the
 * relay runs: SQLite's WAL lets both write; the relay takes a rotated token at its next start
 * or SIGHUP). status prints whether a generated token exists (never the token: only a prefix of
 * its SHA-256); rotate prints the new token once on stdout ("tetherd: device token: HEX") and
 * keeps only its hash. Exit 0 done, 1 no generated token or a registry failure, 2 usage error;
 * errors are one line on stderr. Runs in its own process: no loop, no relay. */
#ifndef TT_TOKENCLI_H
#define TT_TOKENCLI_H

#include <stdio.h>

/* Runs `tetherd token` with argv[0] = "token" and its arguments. Returns the exit status. */
int tt_tokencli_main(int argc, char **argv);

/* The usage of `tetherd token`. */
void tt_tokencli_usage(FILE *f);

#endif
