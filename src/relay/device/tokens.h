/* tokens.h - device credentials: the fleet token (--token, or the one generated on first start
 * and kept hashed in the registry) and per-name tokens (--tokens-file). Only SHA-256 hashes are
 * kept in memory; checks compare hashes in constant time. Never log a token. */
#ifndef TT_TOKENS_H
#define TT_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"
#include "core/frame.h"
#include "relay/store/registry.h"

#define TT_TOKENS_MAX_FILE (1u << 20) /* tokens files over 1 MiB are refused */
#define TT_TOKEN_HEXLEN 64            /* generated tokens: 32 random bytes in hex */
/* Fleet tokens used before the current one that still go with a device key (after a rotation,
 * devices that hold their key keep working with the token they have): at most this many. */
#define TT_TOKENS_OLD_FLEET 4

struct tt_token_entry {
    char name[TT_MAX_NAME + 1];
    uint8_t hash[32];
};

struct tt_tokens {
    bool have_fleet;
    uint8_t fleet[32];
    uint8_t old_fleet[TT_TOKENS_OLD_FLEET][32]; /* earlier fleet tokens' hashes, newest first */
    size_t nold;
    struct tt_token_entry *v; /* per-name tokens, owned */
    size_t n;
};

/* Prepares an empty set (no token accepted). Cannot fail. */
void tt_tokens_init(struct tt_tokens *t);
/* Frees the per-name list; t is empty afterwards. */
void tt_tokens_reset(struct tt_tokens *t);
/* Sets the fleet token, accepted for every name that has no token of its own. */
void tt_tokens_set_fleet(struct tt_tokens *t, const char *token, size_t len);

/* Parses a tokens file's text: "NAME TOKEN" per line, blanks and '#' comments ignored. On
 * success replaces t's per-name list and returns 0; on failure leaves t as it was and returns
 * -1 with "FILE:LINE: problem" in err (what names the file). */
int tt_tokens_parse(struct tt_tokens *t, const char *text, size_t len, const char *what,
                    char err[TT_ERRLEN]);
/* Reads path and parses it as above. Returns 0, or -1 with err (unreadable, too big, bad). */
int tt_tokens_load_file(struct tt_tokens *t, const char *path, char err[TT_ERRLEN]);

/* True when token is valid for name: the name's own token if it has one, else the fleet
 * token. */
bool tt_tokens_check(const struct tt_tokens *t, const uint8_t *name, size_t namelen,
                     const uint8_t *token, size_t tokenlen);

/* True when name has a token of its own (a --tokens-file line): it is held by that token. */
bool tt_tokens_has_own(const struct tt_tokens *t, const uint8_t *name, size_t namelen);

/* True when token is the fleet token (false when there is none). Constant time. */
bool tt_tokens_check_fleet(const struct tt_tokens *t, const uint8_t *token, size_t tokenlen);

/* True when token is the fleet token or one of the fleet tokens used before it (the old ones are
 * good only together with a device key: devauth.c). Constant time per hash. */
bool tt_tokens_check_fleet_any(const struct tt_tokens *t, const uint8_t *token, size_t tokenlen);

/* Keeps the fleet token's history in the registry (credentials "fleet", the hash of the one in
 * use at the last start, and "fleet-old-1".."fleet-old-4", the ones before it, newest first):
 * when t's fleet token is not the one recorded, the recorded one joins the old ones (the oldest
 * beyond TT_TOKENS_OLD_FLEET is forgotten) and t's is recorded. Loads the old ones into t. Does
 * nothing without a fleet token. Returns 0, or -1 with err (registry failure). */
int tt_tokens_fleet_history(struct tt_tokens *t, struct tt_registry *reg, char err[TT_ERRLEN]);

/* Sets t's fleet token from its SHA-256 hash. */
void tt_tokens_set_fleet_hash(struct tt_tokens *t, const uint8_t hash[32]);

/* The generated fleet token, kept in the registry as a hash only (credential
 * TT_REG_FLEET_CRED). When the registry holds one, t's fleet token is set from it. Else a
 * token is created (32 random bytes in hex), its hash stored durably and set in t, the token
 * itself copied into out (for the caller to print once) and *created set. A DIR/token file
 * left by an earlier tetherd is imported (its hash stored) and removed. Returns 0, or -1 with
 * err (registry failure, unreadable or bad legacy file, no random bytes). */
int tt_tokens_generated(struct tt_tokens *t, struct tt_registry *reg, const char *dir,
                        char out[TT_MAX_TOKEN + 1], bool *created, char err[TT_ERRLEN]);

/* `tetherd token rotate`: replaces the generated fleet token's hash in reg (credential
 * TT_REG_FLEET_CRED) by a new token's, synced, and copies the new token into out (printed once
 * by the caller). The relay takes it at its next start or SIGHUP (tt_tokens_fleet_history then
 * makes the one replaced an old one, good only with a device key). Returns 0, or -1 with err
 * (no generated token in reg, registry failure, no random bytes). */
int tt_tokens_rotate(struct tt_registry *reg, char out[TT_MAX_TOKEN + 1], char err[TT_ERRLEN]);

#endif
