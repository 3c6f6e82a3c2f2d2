/* flags.h - what tether's two command lines share (args.c for the agent, connect_args.c for
 * `tether connect`): the one-line error, the lookup of "--name" or "--name=VALUE" in a program's
 * flag table, and the flags both programs take with the same rules and messages. Pure: no I/O,
 * no globals; every failure is one line in err[TT_ERRLEN] naming the flag. */
#ifndef TT_CLI_FLAGS_H
#define TT_CLI_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include "tether.h"
#include "common/compat.h"
#include "common/util.h"

/* One row of a program's flag table: the name without "--", the program's own id for it, and
 * whether it takes a value. */
struct tt_flags_opt {
    const char *name;
    int id;
    bool has_value;
};

/* Writes the message into err and returns -1 (for `return tt_flags_errf(err, ...)`). */
int tt_flags_errf(char err[TT_ERRLEN], const char *fmt, ...) TT_PRINTF(2, 3);

/* The index in opts[0..nopts) of the flag named by name[0..namelen) (no "--"), or nopts. */
size_t tt_flags_find(const struct tt_flags_opt *opts, size_t nopts, const char *name,
                     size_t namelen);

/* Reads the flag at argv[*i], which starts with "--" and has more after it: "--name VALUE" (then
 * *i moves on to the value) or "--name=VALUE". Returns its index in opts with *value set (NULL
 * for a flag that takes none), or -1 with err: "unknown option '--name' (see HELP)", "--name
 * needs a value" or "--name takes no value". *value points into argv. */
int tt_flags_next(const struct tt_flags_opt *opts, size_t nopts, int argc, char **argv, int *i,
                  const char **value, const char *help, char err[TT_ERRLEN]);

/* --server URL, repeatable up to TETHER_MAX_SERVERS: appends v to servers[*n]. Returns 0, or -1
 * with err (too many, or an empty URL). */
int tt_flags_add_server(const char *servers[TETHER_MAX_SERVERS], size_t *n, const char *v,
                        char err[TT_ERRLEN]);

/* A flag that may be given once: sets *slot to v. Returns 0, or -1 with err "FLAG given twice",
 * or, when empty is not NULL and v is "", "FLAG: EMPTY" (empty says why: "empty file name"). */
int tt_flags_once(const char **slot, const char *v, const char *flag, const char *empty,
                  char err[TT_ERRLEN]);

/* --log-level LEVEL into *level. Returns 0, or -1 with err naming the levels. */
int tt_flags_log_level(const char *v, int *level, char err[TT_ERRLEN]);

/* The flags of the dial to the relay that both programs pass on alike: --proxy, --noproxy,
 * --ca-file, --dns (each when not NULL) and --insecure, set in cfg in that order. Returns 0, or
 * the failing setter's code with err "--FLAG: libtether's message" (left as it was when
 * tether_config_set_insecure fails: it says nothing). */
int tt_flags_config_dial(tether_config *cfg, const char *proxy, const char *noproxy,
                         const char *ca_file, const char *dns, bool insecure, char err[TT_ERRLEN]);

#endif
