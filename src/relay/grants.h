/* grants.h - short-lived grants (SPEC "Who may reach a device"): the admin API's
 * POST /api/grants issues one for a user (any name: it need not be in --users-file), with
 * DEVICE/SERVICE patterns and a time to live, and answers with a token shown only then; the
 * relay keeps the token's SHA-256. A grant token authenticates `tether connect --grant TOKEN`
 * (and a browser sign-in with the token as the secret) as principal kind GRANT. Revoking a grant
 * (DELETE /api/grants/ID) or its expiry ends its access at once, open connections included
 * (access.h: tt_access_recheck). With --redis the grants live in Redis and every node sees them.
 * Runs on the loop thread. */
#ifndef TT_GRANTS_H
#define TT_GRANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/frame.h"

/* A grant id: 16 random bytes in lowercase hex. */
#define TT_GRANT_ID_LEN 32

struct tt_grants;

/* True when grant id exists, has not expired at now (unix ms) and one of its patterns covers
 * device/service. */
bool tt_grants_allows(const struct tt_grants *g, const char *id, const char *device,
                      const char *service, int64_t now);

/* Finds the live grant whose token is tok[0..len): its id into id and its user into user.
 * Returns 0, or TETHER_ERR_AUTH (no such grant, or expired). Constant time in the token's
 * bytes (its hash is looked up). */
int tt_grants_check_token(const struct tt_grants *g, const uint8_t *tok, size_t len, int64_t now,
                          char id[TT_GRANT_ID_LEN + 1], char user[TT_MAX_NAME + 1]);

#endif
