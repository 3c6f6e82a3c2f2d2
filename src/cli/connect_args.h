/* connect_args.h - the command line of `tether connect` (SPEC "tether connect"): flags into a
 * struct tt_connect_args. Pure: no I/O, no globals but the environment (TETHER_SECRET,
 * TETHER_GRANT); each failure is one line in err[TT_ERRLEN] naming the flag (main exits 2). */
#ifndef TT_CLI_CONNECT_ARGS_H
#define TT_CLI_CONNECT_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include "tether.h"
#include "common/util.h"

/* Every pointer points into argv or the environment: valid as long as they are. */
struct tt_connect_args {
    const char *servers[TETHER_MAX_SERVERS];
    size_t nservers;
    char device[TETHER_MAX_DEVICE_NAME + 1]; /* DEVICE of DEVICE/SERVICE */
    char service[TETHER_MAX_DEVICE_NAME + 1];
    const char *target; /* DEVICE/SERVICE as given */
    const char *user;
    const char *secret;      /* --secret or TETHER_SECRET (or, main.c, --secret-file's) */
    const char *secret_file; /* main.c reads it */
    bool secret_from_env;
    const char *grant;      /* --grant or TETHER_GRANT (or, main.c, --grant-file's) */
    const char *grant_file; /* main.c reads it */
    bool grant_from_env;
    const char *listen; /* --listen [ADDR:]PORT, or NULL */
    bool stdio;
    const char *proxy;   /* NULL: not given ("": no proxy) */
    const char *noproxy; /* NULL: not given */
    const char *ca_file;
    const char *dns; /* --dns ADDR[:PORT], or NULL (libtether checks it) */
    bool insecure;
    bool json;
    bool help;
    int log_level; /* -1: not given */
};

/* Parses argv[1..argc) (argv[0] is "connect"). Accepts "--flag VALUE" and "--flag=VALUE" and
 * one DEVICE/SERVICE argument (split at its last '/'). Unless --help is given, it needs
 * --server, the target, and exactly one of --listen and --stdio; --user needs a secret
 * (--secret, --secret-file, or TETHER_SECRET) and excludes --grant; without --user, a grant
 * comes from --grant, --grant-file or TETHER_GRANT, if any. Returns 0, or -1 with err. */
int tt_connect_args_parse(struct tt_connect_args *a, int argc, char **argv, char err[TT_ERRLEN]);

/* The `tether connect --help` text. Static. */
const char *tt_connect_args_usage(void);

#endif
