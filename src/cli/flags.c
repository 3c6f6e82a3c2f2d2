/* flags.c - the pieces of flag parsing that args.c and connect_args.c share (flags.h). Pure: no
 * output, no exit, no file read. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/flags.h"
#include "common/log.h"

int tt_flags_errf(char err[TT_ERRLEN], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tt_verrf(err, fmt, ap);
    va_end(ap);
    return -1;
}

size_t tt_flags_find(const struct tt_flags_opt *opts, size_t nopts, const char *name,
                     size_t namelen)
{
    size_t k;
    for (k = 0; k < nopts; k++)
        if (strlen(opts[k].name) == namelen && strncmp(opts[k].name, name, namelen) == 0)
            break;
    return k;
}

int tt_flags_next(const struct tt_flags_opt *opts, size_t nopts, int argc, char **argv, int *i,
                  const char **value, const char *help, char err[TT_ERRLEN])
{
    const char *arg = argv[*i];
    const char *eq = strchr(arg, '=');
    size_t namelen = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
    size_t k = tt_flags_find(opts, nopts, arg + 2, namelen);

    *value = NULL;
    if (k == nopts)
        return tt_flags_errf(err, "unknown option '%.*s' (see %s)", (int)(namelen + 2), arg, help);
    if (opts[k].has_value) {
        if (eq)
            *value = eq + 1;
        else if (*i + 1 < argc)
            *value = argv[++*i];
        else
            return tt_flags_errf(err, "--%s needs a value", opts[k].name);
    } else if (eq) {
        return tt_flags_errf(err, "--%s takes no value", opts[k].name);
    }
    return (int)k;
}

int tt_flags_add_server(const char *servers[TETHER_MAX_SERVERS], size_t *n, const char *v,
                        char err[TT_ERRLEN])
{
    if (*n == TETHER_MAX_SERVERS)
        return tt_flags_errf(err, "too many --server (at most %d)", TETHER_MAX_SERVERS);
    if (v[0] == '\0')
        return tt_flags_errf(err, "--server: empty URL");
    servers[(*n)++] = v;
    return 0;
}

int tt_flags_once(const char **slot, const char *v, const char *flag, const char *empty,
                  char err[TT_ERRLEN])
{
    if (*slot)
        return tt_flags_errf(err, "%s given twice", flag);
    if (empty && v[0] == '\0')
        return tt_flags_errf(err, "%s: %s", flag, empty);
    *slot = v;
    return 0;
}

int tt_flags_log_level(const char *v, int *level, char err[TT_ERRLEN])
{
    if (tt_log_parse_level(v, level) != 0)
        return tt_flags_errf(err, "bad --log-level '%s' (error, warn, info or debug)", v);
    return 0;
}

int tt_flags_config_dial(tether_config *cfg, const char *proxy, const char *noproxy,
                         const char *ca_file, const char *dns, bool insecure, char err[TT_ERRLEN])
{
    int rc = 0;

    if (proxy && (rc = tether_config_set_proxy(cfg, proxy)) != 0)
        tt_flags_errf(err, "--proxy: %s", tether_config_error(cfg));
    if (rc == 0 && noproxy && (rc = tether_config_set_no_proxy(cfg, noproxy)) != 0)
        tt_flags_errf(err, "--noproxy: %s", tether_config_error(cfg));
    if (rc == 0 && ca_file && (rc = tether_config_set_ca_file(cfg, ca_file)) != 0)
        tt_flags_errf(err, "--ca-file: %s", tether_config_error(cfg));
    if (rc == 0 && dns && (rc = tether_config_set_dns(cfg, dns)) != 0)
        tt_flags_errf(err, "--dns: %s", tether_config_error(cfg));
    if (rc == 0 && insecure)
        rc = tether_config_set_insecure(cfg, true);
    return rc;
}
