/* tokens.h - device credentials: the fleet token (--token, or the one kept in DATA_DIR/token)
 * and per-name tokens (--tokens-file). Only SHA-256 hashes are kept in memory; checks compare
 * hashes in constant time. Never log a token. */
#ifndef TT_TOKENS_H
#define TT_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"
#include "core/frame.h"

#define TT_TOKENS_MAX_FILE (1u << 20) /* tokens files over 1 MiB are refused */
#define TT_TOKEN_HEXLEN 64            /* generated tokens: 32 random bytes in hex */

struct tt_token_entry {
    char name[TT_MAX_NAME + 1];
    uint8_t hash[32];
};

struct tt_tokens {
    bool have_fleet;
    uint8_t fleet[32];
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

/* The fleet token kept in DIR/token: read when the file exists, else created (32 random bytes
 * in hex, mode 0600) with *created set. out gets the token and a NUL. Returns 0, or -1 with err
 * (unreadable, empty, cannot create). */
int tt_tokens_datadir(const char *dir, char out[TT_MAX_TOKEN + 1], bool *created,
                      char err[TT_ERRLEN]);

#endif
