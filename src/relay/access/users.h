/* users.h - the people who may reach private services (--users-file): one user per line,
 * "USER SECRET GRANT...", blank lines and '#' comments ignored. SECRET is the secret itself or
 * the one-line argon2id hash `tetherd --hash-secret` prints ($argon2id$v=19$m=...,t=...,p=...$
 * SALT$HASH); GRANT is a DEVICE/SERVICE pattern (pattern.h), as many as needed (none: the user
 * may sign in but reaches nothing). In memory a plain secret is kept only as its SHA-256, a
 * hashed one as its hash line; the file's text is wiped once parsed. Checking a secret against an
 * argon2id hash is slow on purpose (tens of milliseconds): access.c runs it off the loop. */
#ifndef TT_USERS_H
#define TT_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"
#include "core/frame.h"
#include "relay/lib/pattern.h"
#include "relay/lib/strmap.h"

#define TT_USERS_MAX_FILE (4u << 20) /* a users file over 4 MiB is refused */
#define TT_USERS_MAX 100000          /* users per file */
#define TT_USERS_MAX_GRANTS 64       /* patterns per user */
#define TT_USERS_HASH_MAX 256        /* longest argon2id hash line */
/* --hash-secret's cost: argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane),
 * a 16-byte random salt and a 32-byte hash. */
#define TT_USERS_ARGON2_T 2
#define TT_USERS_ARGON2_M_KIB 19456
#define TT_USERS_ARGON2_P 1
/* Secrets are 1 to this many bytes of printable ASCII without spaces. */
#define TT_USERS_SECRET_MAX 256

struct tt_user {
    char name[TT_MAX_NAME + 1];
    bool hashed;     /* the file gave an argon2id hash: phc; else sha is the secret's SHA-256 */
    char *phc;       /* the hash line (owned), hashed users only */
    uint8_t sha[32]; /* plain secrets */
    char (*grants)[TT_PATTERN_MAX + 1]; /* ngrants patterns (owned) */
    size_t ngrants;
};

struct tt_users {
    struct tt_user *v; /* n users (owned) */
    size_t n;
    struct tt_strmap by_name; /* name -> &v[i] */
};

/* Prepares an empty set (nobody). Cannot fail. */
void tt_users_init(struct tt_users *u);
/* Frees everything; u is empty afterwards. */
void tt_users_reset(struct tt_users *u);

/* Parses a users file's text into u (which must be empty: tt_users_init). On failure u stays
 * empty and -1 is returned with "WHAT:LINE: problem" in err (never a secret). Problems: a line
 * without a secret, a user name over TT_MAX_NAME bytes or with a control byte, a user twice, a
 * secret that starts like a hash ("$argon2") and is not a well-formed argon2id hash, a bad
 * pattern, more than TT_USERS_MAX_GRANTS patterns or TT_USERS_MAX users. */
int tt_users_parse(struct tt_users *u, const char *text, size_t len, const char *what,
                   char err[TT_ERRLEN]);
/* Reads path (at most TT_USERS_MAX_FILE bytes) and parses it as above into u (empty). */
int tt_users_load_file(struct tt_users *u, const char *path, char err[TT_ERRLEN]);

/* The user called name, or NULL. Valid until u changes. */
const struct tt_user *tt_users_find(const struct tt_users *u, const char *name);

/* True when one of user's grants covers device/service. */
bool tt_user_allows(const struct tt_user *user, const char *device, const char *service);

/* Checks secret[0..len) against a plain user's SHA-256, in constant time. False for a hashed
 * user (use tt_users_check_hash, off the loop). */
bool tt_users_check_plain(const struct tt_user *user, const uint8_t *secret, size_t len);

/* Checks secret[0..len) against an argon2id hash line. Slow on purpose: call it from a worker
 * thread. Thread-safe (touches nothing but its arguments). */
bool tt_users_check_hash(const char *phc, const uint8_t *secret, size_t len);

/* Hashes secret[0..len) with argon2id under a fresh random salt into out (a NUL-terminated hash
 * line for --users-file). Returns 0, or -1 (no randomness, argon2 failure). */
int tt_users_hash_secret(const uint8_t *secret, size_t len, char out[TT_USERS_HASH_MAX]);

#endif
