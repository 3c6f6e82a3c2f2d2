/* access.h - who may reach a device service (SPEC "Who may reach a device"). The relay decides,
 * never the device: with --access public every service is public; with --access private only
 * the services a --public pattern matches are, and the others need a principal (a user of
 * --users-file, or a grant of the admin API, grants.h) whose grants cover DEVICE/SERVICE.
 * Secrets are checked here, off the loop when they are argon2id hashes; the connections made
 * under a principal are tracked here so that revoking access (a users file reloaded without the
 * user or the grant, a grant deleted or expired) closes them at once (tt_access_recheck).
 * Everything runs on the loop thread but the hash checks, which run in libuv's thread pool. */
#ifndef TT_ACCESS_H
#define TT_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "common/util.h"
#include "core/frame.h"
#include "relay/config.h"
#include "relay/access/grants.h"
#include "relay/lib/throttle.h"
#include "relay/access/users.h"

/* Secret checks running in the thread pool at once (libuv's pool also syncs the registry: keep
 * threads for it), and waiting for a turn; beyond, a check is refused with TETHER_ERR_AGAIN
 * (the caller answers 503), counted in tether_access_checks_total{result="busy"}. Answers to
 * throttled clients wait for the next loop turn in a list of the same cap. */
#define TT_ACCESS_MAX_RUNNING 2
#define TT_ACCESS_MAX_WAITING 256

/* Failed secrets and grant tokens count per client address in the shared throttle (throttle.h):
 * TT_THROTTLE_BURST failures at once, then TT_THROTTLE_PER_SEC; a throttled client's checks are
 * answered TETHER_ERR_THROTTLED without being run. A secret check under way counts as a failure
 * until it succeeds, so that one address never has more than TT_THROTTLE_BURST checks running or
 * waiting. */

enum tt_principal_kind {
    TT_PRINCIPAL_NONE = 0,  /* nobody: public access */
    TT_PRINCIPAL_USER = 1,  /* a --users-file user */
    TT_PRINCIPAL_GRANT = 2, /* a grant of the admin API (grants.h) */
};

/* Who a visitor is, once their credentials were checked. Copied by value. */
struct tt_principal {
    uint8_t kind;                    /* enum tt_principal_kind */
    char user[TT_MAX_NAME + 1];      /* the user's name (a grant's user for a grant) */
    char grant[TT_GRANT_ID_LEN + 1]; /* the grant's id (GRANT only) */
};

/* A connection made under a principal (a tether connect stream, a browser connection with a
 * session): tracked while it lasts, so that it can be closed when its access goes. The owner
 * embeds it and fills who, device, service, revoke and ud before tt_access_track. */
struct tt_access_conn {
    struct tt_access_conn *prev, *next;
    struct tt_principal who;
    char device[TT_MAX_NAME + 1];
    char service[TT_MAX_NAME + 1];
    /* Called by tt_access_recheck when who may no longer reach device/service: c is untracked
     * already; the owner closes the connection (it may untrack nothing more, and must not free
     * other tracked connections from inside the call). */
    void (*revoke)(struct tt_access_conn *c, void *ud);
    void *ud;
    bool tracked;
};

struct tt_access_verify;

struct tt_access {
    uv_loop_t *loop;
    uint8_t mode; /* enum tt_access_mode */
    const char (*public_patterns)[TT_PATTERN_MAX + 1];
    size_t npublic;
    char users_file[TT_CONFIG_PATHLEN]; /* "" when none */
    struct tt_users users;
    char *dummy_phc;          /* checked for unknown users, so that they take as long */
    struct tt_grants *grants; /* the grant store (owned; grants.h) */
    struct tt_throttle thr;   /* failed checks per client address */
    struct tt_access_conn *conns;
    size_t nconns;
    struct tt_access_verify *wait_head, *wait_tail; /* checks waiting for a thread */
    struct tt_access_verify *running_list;          /* checks in the thread pool */
    size_t nwaiting;
    unsigned running;
    struct tt_access_verify *later; /* throttled checks answered at the next loop turn */
    size_t nlater;
    uv_timer_t later_timer; /* answers them (unreferenced) */
    bool later_timer_on;
    /* counters (/metrics) */
    uint64_t checks_ok, checks_failed, checks_busy, checks_throttled, revoked;
};

/* Prepares a from cfg (which must outlive a: the --public patterns are read from it), makes its
 * (empty) grant store and reads --users-file if given. Returns 0, or -1 with err (an unreadable
 * or bad users file, out of memory: a runtime failure, exit 1). */
int tt_access_init(struct tt_access *a, uv_loop_t *loop, const struct tt_config *cfg,
                   char err[TT_ERRLEN]);

/* Frees a. Checks still running in the thread pool are detached: their callbacks are never
 * called (their memory goes when they finish), nor are those of throttled checks not answered
 * yet. Tracked connections are forgotten, not revoked. a's timer is closed unless it is closing
 * already (uv_walk at the end of main): the loop must run once more before it ends. */
void tt_access_free(struct tt_access *a);

/* Re-reads --users-file (SIGHUP) at now (unix ms). On failure the old users stay and err says why
 * (-1); on success (0) the new users replace them and tt_access_recheck runs: a user removed, or a
 * grant withdrawn, loses access at once, open connections included. 0 with nothing done when there
 * is no users file. */
int tt_access_reload(struct tt_access *a, int64_t now, char err[TT_ERRLEN]);

/* True when device/service is public: --access public, or a --public pattern matches it. */
bool tt_access_public(const struct tt_access *a, const char *device, const char *service);

/* True when who may reach device/service now: a public service always; a user through one of
 * their --users-file grants (a user no longer in the file reaches nothing); a grant through its
 * own patterns while it lives (its user's name is a label: it need not be in the users file;
 * cluster mode: a grant id unknown here makes the store read Redis's changes first, grants.h). */
bool tt_access_allows(const struct tt_access *a, const struct tt_principal *who, const char *device,
                      const char *service, int64_t now);

/* The result of a check: rc is 0 (who is filled), TETHER_ERR_AUTH (no such user, or a wrong
 * secret: callers must not tell which), TETHER_ERR_THROTTLED (the client's address failed too
 * often: refused unchecked) or TETHER_ERR_AGAIN (too many checks under way). */
typedef void (*tt_access_verify_cb)(void *ud, int rc, const struct tt_principal *who);

/* Checks user and secret[0..len) (copied) against --users-file for the client at client (its
 * "IP" or "IP:PORT": failures count against its address), and cb is called with the answer from
 * a later loop turn, never from inside this call. A hashed secret is checked in the thread pool;
 * an unknown user costs the same as a known one. *handle (may be NULL) lets the caller cancel.
 * Returns 0, or TETHER_ERR_AGAIN (too many checks waiting: cb is not called) or
 * TETHER_ERR_NOMEM. */
int tt_access_verify(struct tt_access *a, const char *user, const uint8_t *secret, size_t len,
                     const char *client, tt_access_verify_cb cb, void *ud,
                     struct tt_access_verify **handle);

/* The check will not call its callback (it may still run to its end in a thread). */
void tt_access_verify_cancel(struct tt_access_verify *v);

/* Checks a grant token tok[0..len) from client at now (fast: its hash is looked up). Returns 0
 * with *who (kind GRANT), TETHER_ERR_AUTH (a failure, counted against client's address) or
 * TETHER_ERR_THROTTLED (client's address failed too often: nothing was checked). */
int tt_access_verify_token(struct tt_access *a, const uint8_t *tok, size_t len, const char *client,
                           int64_t now, struct tt_principal *who);

/* Tracks c (filled by the caller) until tt_access_untrack. */
void tt_access_track(struct tt_access *a, struct tt_access_conn *c);
/* Stops tracking c; safe when c is not tracked. */
void tt_access_untrack(struct tt_access *a, struct tt_access_conn *c);

/* Closes every tracked connection whose principal may no longer reach its device/service at
 * now: each is untracked, then its revoke callback runs. Call after anything that can take
 * access away (a reload, a grant deleted, a grant's expiry, a notice from another node). Returns
 * how many were revoked. */
size_t tt_access_recheck(struct tt_access *a, int64_t now);

/* Every second or so (the relay's sweep): forgets idle addresses of the throttle, lets the grant
 * store expire its grants and (cluster mode) read the other nodes' changes, and rechecks the
 * tracked connections when grants went away. Returns how many connections were revoked. */
size_t tt_access_tick(struct tt_access *a, int64_t now);

/* Appends the Prometheus text of a's counters and gauges (checks, revocations, grants, the
 * throttle) to out[0..outlen) after its first *len bytes, NUL-terminated; *len grows by what was
 * written. Returns 0, or -1 when out is too small (out then holds what fitted). */
int tt_access_metrics(const struct tt_access *a, char *out, size_t outlen, size_t *len);

#endif
