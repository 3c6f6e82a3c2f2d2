/* args.h - tether's command line: flags into a struct tt_args, then into a tether_config.
 * Pure: no I/O, no globals; each failure is one line in err[TT_ERRLEN] naming the flag. */
#ifndef TT_CLI_ARGS_H
#define TT_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include "tether.h"
#include "common/util.h"

struct tt_args_service {
    enum tether_service_kind kind;
    char name[TETHER_MAX_SERVICE_NAME + 1]; /* given, or chosen for an unnamed --http */
    bool named;                             /* NAME= was given */
    const char *target;                     /* points into argv */
    const char *value;                      /* the whole flag value, for messages */
};

/* Every pointer points into argv (or the environment): the struct is valid as long as argv is. */
struct tt_args {
    const char *servers[TETHER_MAX_SERVERS];
    size_t nservers;
    const char *name;
    const char *token;      /* --token, TETHER_TOKEN, or (main.c) what --token-file holds */
    const char *token_file; /* --token-file: NULL if not given; main.c reads it */
    bool token_from_env;    /* token is TETHER_TOKEN's value */
    const char *proxy;      /* --proxy: NULL if not given ("" is given: no proxy) */
    const char *noproxy;    /* --noproxy: NULL if not given */
    const char *ca_file;
    const char *dns;       /* --dns ADDR[:PORT]: NULL if not given (libtether checks it) */
    const char *state_dir; /* --state-dir: NULL if not given (libtether's default) */
    bool insecure;
    bool json;
    bool help;
    bool version;
    int log_level; /* -1: not given */
    struct tt_args_service services[TETHER_MAX_SERVICES];
    size_t nservices;
};

/* Parses argv[1..argc). Accepts "--flag VALUE" and "--flag=VALUE". Unnamed --http services get
 * "http", "http-2", "http-3"... skipping names given explicitly. Unless --help or --version is
 * present, --server, --name, a token and one service are required; the token is --token, or
 * --token-file (the caller reads the file into token), or else the TETHER_TOKEN variable.
 * Returns 0, or -1 with err naming the problem (unknown flag, missing or bad value, repeated
 * --name/--token/--token-file/--dns, --token with --token-file, too many servers or services, a
 * required flag missing). */
int tt_args_parse(struct tt_args *a, int argc, char **argv, char err[TT_ERRLEN]);

/* Builds a config from a (every value is checked again by libtether). Returns 0 and *out (free
 * it with tether_config_free), or -1 with err (bad URL, a --proxy that
 * is not http:// or does not parse, bad or duplicate service name, bad target, out of memory). */
int tt_args_to_config(const struct tt_args *a, tether_config **out, char err[TT_ERRLEN]);

/* The --help text. Static. */
const char *tt_args_usage(void);

#endif
