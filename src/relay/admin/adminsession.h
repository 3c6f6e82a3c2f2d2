/* adminsession.h - the dashboard's sign-in sessions on the admin listener (SPEC "Admin API":
 * with --admin-token, a browser signs in with the token once and then carries a session
 * cookie). A session id is 32 bytes from OpenSSL's CSPRNG, given to the browser once as the
 * cookie's value (64 hex digits) and kept only as its SHA-256, compared in constant time. A
 * session ends TTL after it was made (--session-ttl), when signed out, or when evicted: at most
 * TT_ADMINSESSION_MAX live at once, a new one past the cap replaces the oldest (counted in
 * evicted). Sessions are this node's alone (a cluster's other nodes do not know them) and do
 * not survive a restart. Wrong tokens count in a throttle per client address (throttle.h).
 * Runs on the loop thread; times are unix milliseconds given by the caller. */
#ifndef TT_ADMINSESSION_H
#define TT_ADMINSESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "relay/lib/throttle.h"

#define TT_ADMINSESSION_MAX 64
#define TT_ADMINSESSION_COOKIE "tether_admin"
#define TT_ADMINSESSION_VALUE_LEN 64 /* hex digits of the id */
#define TT_ADMINSESSION_TRIES 8      /* cookie values looked up per request at most */

struct tt_adminsession_set {
    struct {
        uint8_t hash[32]; /* SHA-256 of the id */
        int64_t created, expires;
        bool used;
    } v[TT_ADMINSESSION_MAX];
    struct tt_throttle throttle; /* wrong tokens per client address */
    /* counters (/metrics) */
    uint64_t created, evicted, signin_wrong, signin_throttled, signouts;
};

/* Prepares an empty set. Cannot fail. */
void tt_adminsession_init(struct tt_adminsession_set *s);
/* Frees the throttle's entries. */
void tt_adminsession_free(struct tt_adminsession_set *s);

/* Makes a session at now lasting ttl_ms: its cookie value into value. Returns 0, or
 * TETHER_ERR_IO when there is no randomness. */
int tt_adminsession_create(struct tt_adminsession_set *s, int64_t now, uint64_t ttl_ms,
                           char value[TT_ADMINSESSION_VALUE_LEN + 1]);

/* The slot of the live session whose cookie value is v[0..len) (anything: checked here), or
 * -1. */
int tt_adminsession_find(struct tt_adminsession_set *s, const uint8_t *v, size_t len, int64_t now);

/* Ends the session of cookie value v[0..len), if any. */
void tt_adminsession_end(struct tt_adminsession_set *s, const uint8_t *v, size_t len, int64_t now);

/* Live sessions at now. */
size_t tt_adminsession_count(const struct tt_adminsession_set *s, int64_t now);

/* The value of the admin session cookie in a request's Cookie header values: each of the
 * n values vals[i][0..lens[i]) is searched (cookie.h); the first pair named
 * TT_ADMINSESSION_COOKIE that is a live session wins (at most TT_ADMINSESSION_TRIES such pairs
 * are looked up: each costs a SHA-256). Returns its slot, or -1. */
int tt_adminsession_from_cookies(struct tt_adminsession_set *s, const uint8_t *const *vals,
                                 const size_t *lens, size_t n, int64_t now, const uint8_t **value,
                                 size_t *vlen);

#endif
