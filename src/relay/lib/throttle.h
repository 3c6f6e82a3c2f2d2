/* throttle.h - failed attempts counted per client address (addrkey.h), for the relay's
 * credential checks: device credentials at HELLO (devauth.h) and visitors' secrets and grant
 * tokens (access.h) each keep one table. Each address has a token bucket of TT_THROTTLE_BURST
 * failures refilled at TT_THROTTLE_PER_SEC; an address whose bucket is empty is throttled (its
 * attempts are refused without a check) until it refills. At most TT_THROTTLE_MAX_ADDRS addresses
 * are tracked (at the cap the one idle longest is dropped, counted in evicted); one idle for
 * TT_THROTTLE_IDLE_MS is forgotten by the sweep. The table also carries a log policy: at most one
 * line per address per TT_THROTTLE_LOG_MS, and a summary of what was not shown when the interval
 * ends or the address is forgotten. Also the plain token bucket for other rates. Runs on the loop
 * thread; times are monotonic milliseconds given by the caller. */
#ifndef TT_THROTTLE_H
#define TT_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "relay/lib/addrkey.h"
#include "relay/lib/strmap.h"

#define TT_THROTTLE_BURST 10
#define TT_THROTTLE_PER_SEC 1
#define TT_THROTTLE_MAX_ADDRS 65536
#define TT_THROTTLE_IDLE_MS 60000
#define TT_THROTTLE_LOG_MS 60000

/* A token bucket: thousandths of a token, and when it was last refilled. */
struct tt_throttle_bucket {
    int64_t milli;
    int64_t at;
};

/* Fills b with burst tokens at now. */
void tt_throttle_bucket_fill(struct tt_throttle_bucket *b, int64_t burst, int64_t now);
/* Adds what accrued at per_sec tokens a second since the last refill, up to burst (a clock that
 * went back adds nothing). */
void tt_throttle_bucket_refill(struct tt_throttle_bucket *b, int64_t burst, int64_t per_sec,
                               int64_t now);
/* True when b holds a whole token. */
bool tt_throttle_bucket_has(const struct tt_throttle_bucket *b);
/* Takes a token (none left: stays empty). */
void tt_throttle_bucket_take(struct tt_throttle_bucket *b);
/* Gives a token back, up to burst. */
void tt_throttle_bucket_give(struct tt_throttle_bucket *b, int64_t burst);

/* One address of the table (owned by it). Valid until the next call that may drop entries
 * (tt_throttle_get with create, tt_throttle_sweep, tt_throttle_reset). */
struct tt_throttle_addr {
    char key[TT_ADDRKEY_LEN];
    struct tt_throttle_bucket b;
    int64_t last;     /* last activity (LRU order) */
    int64_t log_at;   /* start of the current log interval (0: none yet) */
    uint64_t refused; /* refusals not logged since log_at */
    uint64_t throttled;
    struct tt_throttle_addr *newer, *older;
};

struct tt_throttle {
    const char *what;       /* subject of the summary lines ("device registrations") */
    struct tt_strmap addrs; /* key -> struct tt_throttle_addr (owned) */
    struct tt_throttle_addr *newest, *oldest;
    uint64_t evicted; /* addresses dropped at the cap (/metrics) */
};

/* Prepares an empty table; what (a static string) names the attempts in log lines. Cannot
 * fail. */
void tt_throttle_init(struct tt_throttle *t, const char *what);
/* Frees every entry (without summaries); t is empty afterwards. */
void tt_throttle_reset(struct tt_throttle *t);

/* The address key of a client given as "IP", "IP:PORT" or "[IPv6]:PORT" into out ("" when it is
 * not an IP address: such a client is not counted). */
void tt_throttle_key(const char *client, char out[TT_ADDRKEY_LEN]);

/* The entry of key ("" gives NULL), created with a full bucket when create is set (at the cap the
 * entry idle longest makes room); NULL when absent or out of memory. */
struct tt_throttle_addr *tt_throttle_get(struct tt_throttle *t, const char *key, bool create,
                                         int64_t now);

/* True when e (NULL: false) has no failure left now: its bucket is refilled first. */
bool tt_throttle_blocked(struct tt_throttle_addr *e, int64_t now);
/* A failure of e (NULL: nothing): takes a token from its bucket. */
void tt_throttle_fail(struct tt_throttle_addr *e, int64_t now);
/* e (NULL: nothing) was active at now: it becomes the newest in the LRU order. */
void tt_throttle_touch(struct tt_throttle *t, struct tt_throttle_addr *e, int64_t now);

/* The log policy for a refusal of e (throttled: refused unchecked): returns true when the caller
 * should log its line now (e NULL, or the first refusal of a new interval: the summary of the last
 * interval is logged first), false when it is counted for the next summary instead. */
bool tt_throttle_note(struct tt_throttle *t, struct tt_throttle_addr *e, bool throttled,
                      int64_t now);

/* Forgets addresses idle for TT_THROTTLE_IDLE_MS (at most 512 per call, logging their last
 * summary). Call it every second or so. */
void tt_throttle_sweep(struct tt_throttle *t, int64_t now);

/* Number of addresses tracked. */
size_t tt_throttle_addresses(const struct tt_throttle *t);

#endif
