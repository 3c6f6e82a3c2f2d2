/* version.h - the relay's version, alone, so that a module that only names it (a User-Agent,
 * /metrics, --version) needs nothing else of config.h. */
#ifndef TT_RELAY_VERSION_H
#define TT_RELAY_VERSION_H

#define TT_RELAY_VERSION "0.1.0"

#endif
