/* args.h - tether's command line and its --config FILE: flags and settings into a struct
 * tt_args, then into a tether_config. No globals; the only I/O is reading the --config file
 * (src/common/configfile.c); each failure is one line in err[TT_ERRLEN] naming the flag, or the
 * file and line. */
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
    bool from_file;                         /* a line of the --config file */
    char target[TT_HOSTLEN + 16];           /* HOST:PORT (a bare PORT made 127.0.0.1:PORT) */
    const char *value;                      /* the whole flag value, for messages */
};

struct tt_configfile;

/* tt_args_parse's return for a --config file that cannot be read (a runtime failure, exit 1) */
#define TT_ARGS_IO (-2)

/* Every pointer points into argv, the environment or the --config file's text (owned by the
 * struct: file): the struct is valid as long as argv is and until tt_args_free. */
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
    bool log_json; /* --log-format json */
    struct tt_args_service services[TETHER_MAX_SERVICES];
    size_t nservices;
    const char *config;         /* --config FILE: NULL if not given */
    struct tt_configfile *file; /* its settings (malloc'd, owned; NULL without --config) */
    unsigned from_file;         /* bit (1u << opt) for each setting the file gave (args.c) */
};

/* Parses argv[1..argc). Accepts "--flag VALUE" and "--flag=VALUE". With --config FILE, the
 * file's settings are read first (one per line, a flag's name and its value: configfile.c), then
 * the command line, which wins: a flag given on the command line replaces the file's value, and
 * the first --server, --http or --tcp on the command line replaces the file's list of servers,
 * HTTP services or TCP services; --token or --token-file on the command line replaces both
 * token settings of the file. A `token` line is refused in a file that others may read (use
 * `token-file`). Unnamed --http services get "http", "http-2", "http-3"... skipping names given
 * explicitly. A bare PORT target means 127.0.0.1:PORT. Unless --help or --version is present,
 * --server, --name, a token and one service are required; the token is --token, or --token-file
 * (the caller reads the file into token), or else the TETHER_TOKEN variable. Returns 0 (free a
 * with tt_args_free), -1 with err naming the problem (unknown flag or setting, missing or bad
 * value, repeated --name/--token/--token-file/--dns, --token with --token-file, too many servers
 * or services, a required flag missing; a file's line as FILE:LINE: ...), or TT_ARGS_IO when the
 * --config file cannot be read; after an error nothing is left to free. */
int tt_args_parse(struct tt_args *a, int argc, char **argv, char err[TT_ERRLEN]);

/* Frees what tt_args_parse kept (the --config file's text); every pointer into it dies. */
void tt_args_free(struct tt_args *a);

/* Builds a config from a (every value is checked again by libtether). Returns 0 and *out (free
 * it with tether_config_free), or -1 with err (bad URL, a --proxy that
 * is not http:// or does not parse, bad or duplicate service name, bad target, out of memory). */
int tt_args_to_config(const struct tt_args *a, tether_config **out, char err[TT_ERRLEN]);

/* The --help text. Static. */
const char *tt_args_usage(void);

#endif
