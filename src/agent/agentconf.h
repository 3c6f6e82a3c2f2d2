/* agentconf.h - libtether's configuration object (struct tether_config, behind the opaque type of
 * tether.h) and its checks: relay URLs, device name and token, services and their targets.
 * Pure data and validation; no I/O. The agent keeps its own deep copy (tt_agentconf_dup). */
#ifndef TT_AGENT_AGENTCONF_H
#define TT_AGENT_AGENTCONF_H

#include <stdbool.h>
#include <stdint.h>
#include "tether.h"
#include "common/util.h"

/* A target "HOST:PORT" as given, and parsed. */
struct tt_service {
    char name[TETHER_MAX_SERVICE_NAME + 1];
    enum tether_service_kind kind;
    char target[TT_HOSTLEN + 16]; /* verbatim, for events */
    char host[TT_HOSTLEN];        /* without brackets */
    uint16_t port;
};

struct tether_config {
    char *servers[TETHER_MAX_SERVERS]; /* malloc'd, owned */
    size_t nservers;
    char *name;     /* malloc'd, owned; NULL until set */
    char *token;    /* malloc'd, owned; NULL until set; never logged */
    char *proxy;    /* malloc'd, owned; NULL: from the environment; "": never (proxy.h) */
    char *no_proxy; /* malloc'd, owned; NULL: from the environment */
    char *ca_file;
    char *dns;        /* malloc'd, owned; NULL: no --dns (checked: tt_hostaddr_parse_dns) */
    char *state_dir;  /* malloc'd, owned; NULL: the default; "": no key files */
    char *device_key; /* malloc'd, owned; NULL: from the state dir; never logged */
    bool insecure;
    /* tether connect's credentials (at most one kind set); malloc'd, owned, never logged */
    char *visitor_user;
    char *visitor_secret;
    char *grant;
    struct tt_service services[TETHER_MAX_SERVICES];
    size_t nservices;
    char err[TT_ERRLEN]; /* last failure, "" if none */
};

/* Most bytes of a visitor's secret or grant token (tether_config_set_user, _set_grant). */
#define TT_VISITOR_SECRET_MAX 256

/* True when s is a valid service name: [a-z0-9-], 1..TETHER_MAX_SERVICE_NAME characters. */
bool tt_agentconf_valid_service_name(const char *s);

/* Writes into out the first of "http", "http-2", "http-3"... that no service of cfg uses.
 * Cannot fail (there are at most TETHER_MAX_SERVICES services). */
void tt_agentconf_auto_http_name(const tether_config *cfg, char out[TETHER_MAX_SERVICE_NAME + 1]);

/* Parses a relay URL, ws:// or wss://, into u.
 * Returns 0 or TETHER_ERR_CONFIG with a one-line message in err. */
int tt_agentconf_parse_server(const char *url, struct tt_url *u, char err[TT_ERRLEN]);

/* Deep copy of src into a new config (*out, freed with tether_config_free). Returns 0 or
 * TETHER_ERR_NOMEM. */
int tt_agentconf_dup(const tether_config *src, tether_config **out);

#endif
