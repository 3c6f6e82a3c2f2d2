/* devauth.h - who may register a device name, decided at each HELLO (docs/operators-guide.md,
 * "Identity and device keys" and "Limits and abuse"): a name with its own --tokens-file line
 * is held by that token; a name with a device key (the SHA-256 of it kept in the registry) is
 * held by whoever presents that key (and a fleet token); any other name may be created with the
 * fleet credential
 * (--token or the generated token), which gives it a key. Also the fleet credential's caps (names
 * and TCP ports it holds, new names per second), and the throttle of failed credentials per
 * client address (addrkey.h) with its log summaries. Keys and tokens are never logged; a key
 * issued here lives only in the verdict until the WELCOME carries it. Runs on the loop thread;
 * times are monotonic milliseconds given by the caller. */
#ifndef TT_DEVAUTH_H
#define TT_DEVAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/frame.h"
#include "relay/lib/addrkey.h"
#include "relay/store/registry.h"
#include "relay/lib/strmap.h"
#include "relay/lib/throttle.h"
#include "relay/device/tokens.h"

/* A device key: 32 random bytes as 64 lowercase hex digits (TT_MAX_KEY). */
#define TT_DEVAUTH_KEY_HEXLEN 64

/* Failed credentials per client address: the shared throttle (throttle.h: TT_THROTTLE_BURST
 * failures at once, refilled at TT_THROTTLE_PER_SEC, TT_THROTTLE_MAX_ADDRS addresses, idle ones
 * forgotten after TT_THROTTLE_IDLE_MS, one log line per address per TT_THROTTLE_LOG_MS and a
 * summary). An address with an empty bucket is throttled: its HELLOs are refused (REFUSE AUTH)
 * without a check until the bucket refills. */
#define TT_DEVAUTH_FAIL_BURST TT_THROTTLE_BURST
#define TT_DEVAUTH_FAIL_PER_SEC TT_THROTTLE_PER_SEC
#define TT_DEVAUTH_MAX_ADDRS TT_THROTTLE_MAX_ADDRS
#define TT_DEVAUTH_IDLE_MS TT_THROTTLE_IDLE_MS
#define TT_DEVAUTH_LOG_MS TT_THROTTLE_LOG_MS
/* New names created with the fleet credential: a token bucket refilled at --new-names-per-second
 * (default TT_DEVAUTH_NEW_PER_SEC) that holds ten seconds' worth (per relay node). */
#define TT_DEVAUTH_NEW_PER_SEC 100
#define TT_DEVAUTH_NEW_BURST_SECS 10
/* Defaults of --max-names-per-token; --max-ports-per-token defaults to half the --tcp-ports
 * range (at least 1), so that per-device tokens always have ports left. */
#define TT_DEVAUTH_MAX_NAMES 100000

/* Why a registration was refused by a fleet-credential cap (metrics label). */
enum tt_devauth_cap {
    TT_DEVAUTH_CAP_NAMES = 0,
    TT_DEVAUTH_CAP_PORTS = 1,
    TT_DEVAUTH_CAP_RATE = 2,
    TT_DEVAUTH_CAP_COUNT = 3,
};

struct tt_access;

struct tt_devauth {
    uint64_t max_names; /* --max-names-per-token */
    uint64_t max_ports; /* --max-ports-per-token: counts the TCP services that get a port */
    /* who decides which services are private (access.h; NULL: every TCP service is public):
     * a private TCP service gets no port, so it counts nothing against max_ports */
    const struct tt_access *access;
    uint64_t new_per_sec; /* --new-names-per-second */
    struct tt_throttle_bucket new_names;
    struct tt_throttle thr; /* failed credentials per address (its evicted: /metrics) */
    /* counters (/metrics) */
    uint64_t failures;                          /* failed credential checks */
    uint64_t throttled;                         /* HELLOs refused unchecked */
    uint64_t keys_issued, keys_adopted;         /* device keys stored with a registration */
    uint64_t cap_refused[TT_DEVAUTH_CAP_COUNT]; /* registrations refused by a cap */
};

/* What tt_devauth_hello() decided. */
struct tt_devauth_verdict {
    uint16_t refuse;                /* 0: go on with the registration; else a TT_REFUSE_ code */
    char reason[TT_MAX_REASON + 1]; /* the REFUSE reason (no secret in it) */
    bool set_key;                   /* store key_hash with the registration (put's set_key) */
    uint8_t key_hash[32];           /* SHA-256 of the key's 64 characters */
    bool issued;                    /* a new key: send it in the WELCOME */
    char
        key[TT_DEVAUTH_KEY_HEXLEN + 1]; /* the issued key ("" if none); secret: wipe it after use */
};

/* Prepares a with the caps (max_names, max_ports, new_per_sec: at least 1). Cannot fail. */
void tt_devauth_init(struct tt_devauth *a, uint64_t max_names, uint64_t max_ports,
                     uint64_t new_per_sec, int64_t now);

/* Frees the address table. */
void tt_devauth_reset(struct tt_devauth *a);

/* Decides the HELLO m (protocol version version) for name (its checked, NUL-terminated copy)
 * from the client at peer ("IP:PORT", for the address key and the log), at now. Rules, in order:
 * a throttled address is refused (AUTH) unchecked; a name in tok's per-name list needs its own
 * token; a name with a key in reg needs that key, with the fleet token or one of the fleet
 * tokens used before it (tokens.h: a rotation does not lock keyed devices out); any other
 * name needs the fleet token and protocol 2 (a version-1 HELLO is refused with VERSION), may be
 * refused by the fleet caps (CAPACITY: --new-names-per-second and --max-names-per-token, not
 * applied to a name that still has a record from before device keys), and gets the HELLO's key
 * (which must then be 64 lowercase hex digits: INVALID) or a new one (v->issued). A name held
 * through a key (old or new) may also be refused when its HELLO asks for more TCP ports than it
 * holds and the fleet credential would then hold more than --max-ports-per-token. A registry
 * failure is INTERNAL. Every AUTH refusal counts against the address. Refusals are logged at
 * most once per address per TT_DEVAUTH_LOG_MS (with a summary of the others). Fills v; returns
 * 0 (v->refuse says whether to go on). */
int tt_devauth_hello(struct tt_devauth *a, struct tt_registry *reg, const struct tt_tokens *tok,
                     const char *name, const struct tt_hello *m, uint8_t version, const char *peer,
                     int64_t now, struct tt_devauth_verdict *v);

/* Forgets addresses idle for TT_DEVAUTH_IDLE_MS (at most a few hundred per call, logging their
 * last summary). Call it every second or so. */
void tt_devauth_sweep(struct tt_devauth *a, int64_t now);

/* Number of addresses tracked. */
size_t tt_devauth_addresses(const struct tt_devauth *a);

/* Appends the Prometheus text of a's counters and gauges (the names and ports the fleet
 * credential holds, read from reg; left out when reg fails) to out[0..outlen) after its first
 * *len bytes, NUL-terminated; *len grows by what was written. Returns 0, or -1 when out is too
 * small (out then holds what fitted). */
int tt_devauth_metrics(const struct tt_devauth *a, struct tt_registry *reg, char *out,
                       size_t outlen, size_t *len);

/* The SHA-256 of a device key as presented (its bytes, no terminator) into hash. */
void tt_devauth_key_hash(const uint8_t *key, size_t len, uint8_t hash[32]);

#endif
