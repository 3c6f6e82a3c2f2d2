/* tokens.c - device credentials (tokens.h): tokens-file parsing, the generated fleet token
 * (kept hashed in the registry), and constant-time checks over SHA-256 hashes. No libuv. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/sha.h>
#include "tether_err.h"
#include "relay/device/tokens.h"

static void hash_token(const uint8_t *tok, size_t len, uint8_t out[32])
{
    SHA256(tok, len, out);
}

void tt_tokens_init(struct tt_tokens *t)
{
    memset(t, 0, sizeof(*t));
}

void tt_tokens_reset(struct tt_tokens *t)
{
    free(t->v);
    tt_tokens_init(t);
}

void tt_tokens_set_fleet(struct tt_tokens *t, const char *token, size_t len)
{
    hash_token((const uint8_t *)token, len, t->fleet);
    t->have_fleet = true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Splits one line into at most 3 fields; returns the count. */
static int split(const char *line, size_t len, const char *f[3], size_t flen[3])
{
    int n = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && is_space(line[i]))
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && !is_space(line[i]))
            i++;
        if (n == 3)
            return 4;
        f[n] = line + start;
        flen[n] = i - start;
        n++;
    }
    return n;
}

int tt_tokens_parse(struct tt_tokens *t, const char *text, size_t len, const char *what,
                    char err[TT_ERRLEN])
{
    struct tt_token_entry *v = NULL;
    size_t n = 0, cap = 0;
    unsigned lineno = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - line) : len - pos;
        pos += llen + (nl ? 1 : 0);
        lineno++;
        const char *f[3];
        size_t flen[3];
        int nf = split(line, llen, f, flen);
        if (nf == 0 || f[0][0] == '#')
            continue;
        const char *problem = NULL;
        if (nf != 2)
            problem = "expected 'NAME TOKEN'";
        else if (flen[0] > TT_MAX_NAME)
            problem = "device name too long";
        else if (flen[1] > TT_MAX_TOKEN)
            problem = "token too long";
        else if (memchr(line, '\0', llen))
            problem = "NUL byte";
        for (size_t i = 0; !problem && i < n; i++)
            if (strlen(v[i].name) == flen[0] && memcmp(v[i].name, f[0], flen[0]) == 0)
                problem = "device name given twice";
        if (problem) {
            snprintf(err, TT_ERRLEN, "%.150s:%u: %s", what, lineno, problem);
            free(v);
            return -1;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct tt_token_entry *nv = realloc(v, ncap * sizeof(*v));
            if (!nv) {
                snprintf(err, TT_ERRLEN, "%.150s: out of memory", what);
                free(v);
                return -1;
            }
            v = nv;
            cap = ncap;
        }
        memcpy(v[n].name, f[0], flen[0]);
        v[n].name[flen[0]] = '\0';
        hash_token((const uint8_t *)f[1], flen[1], v[n].hash);
        n++;
    }
    free(t->v);
    t->v = v;
    t->n = n;
    return 0;
}

int tt_tokens_load_file(struct tt_tokens *t, const char *path, char err[TT_ERRLEN])
{
    size_t len;
    char *text = tt_read_small_file(path, TT_TOKENS_MAX_FILE, &len, err);
    if (!text)
        return -1;
    int rc = tt_tokens_parse(t, text, len, path, err);
    free(text);
    return rc;
}

bool tt_tokens_check(const struct tt_tokens *t, const uint8_t *name, size_t namelen,
                     const uint8_t *token, size_t tokenlen)
{
    uint8_t h[32];
    hash_token(token, tokenlen, h);
    for (size_t i = 0; i < t->n; i++) {
        if (strlen(t->v[i].name) == namelen && memcmp(t->v[i].name, name, namelen) == 0)
            return tt_consttime_equal(h, sizeof(h), t->v[i].hash, sizeof(h));
    }
    if (!t->have_fleet)
        return false;
    return tt_consttime_equal(h, sizeof(h), t->fleet, sizeof(h));
}

bool tt_tokens_has_own(const struct tt_tokens *t, const uint8_t *name, size_t namelen)
{
    for (size_t i = 0; i < t->n; i++)
        if (strlen(t->v[i].name) == namelen && memcmp(t->v[i].name, name, namelen) == 0)
            return true;
    return false;
}

bool tt_tokens_check_fleet(const struct tt_tokens *t, const uint8_t *token, size_t tokenlen)
{
    uint8_t h[32];
    hash_token(token, tokenlen, h);
    return t->have_fleet && tt_consttime_equal(h, sizeof(h), t->fleet, sizeof(h));
}

bool tt_tokens_check_fleet_any(const struct tt_tokens *t, const uint8_t *token, size_t tokenlen)
{
    uint8_t h[32];
    bool ok = false;
    hash_token(token, tokenlen, h);
    if (t->have_fleet)
        ok = tt_consttime_equal(h, sizeof(h), t->fleet, sizeof(h));
    for (size_t i = 0; i < t->nold; i++)
        ok |= tt_consttime_equal(h, sizeof(h), t->old_fleet[i], sizeof(h));
    return ok;
}

int tt_tokens_fleet_history(struct tt_tokens *t, struct tt_registry *reg, char err[TT_ERRLEN])
{
    uint8_t now[32];
    char name[32];
    int rc;
    t->nold = 0;
    if (!t->have_fleet)
        return 0;
    for (int i = 0; i < TT_TOKENS_OLD_FLEET; i++) {
        snprintf(name, sizeof(name), "fleet-old-%d", i + 1);
        rc = tt_registry_cred_get(reg, name, t->old_fleet[t->nold]);
        if (rc == 0)
            t->nold++;
        else if (rc != TETHER_ERR_NOT_FOUND)
            goto fail;
    }
    rc = tt_registry_cred_get(reg, "fleet", now);
    if (rc != 0 && rc != TETHER_ERR_NOT_FOUND)
        goto fail;
    bool rotated = rc == 0 && memcmp(now, t->fleet, sizeof(now)) != 0;
    if (rc == 0 && !rotated)
        return 0;
    if (rotated) {
        /* the one in use until now joins the old ones; the current one is not an old one */
        uint8_t keep[TT_TOKENS_OLD_FLEET][32];
        size_t n = 0;
        memcpy(keep[n++], now, 32);
        for (size_t i = 0; i < t->nold && n < TT_TOKENS_OLD_FLEET; i++)
            if (memcmp(t->old_fleet[i], t->fleet, 32) != 0 && memcmp(t->old_fleet[i], now, 32))
                memcpy(keep[n++], t->old_fleet[i], 32);
        memcpy(t->old_fleet, keep, n * 32);
        t->nold = n;
        for (size_t i = 0; i < n; i++) {
            snprintf(name, sizeof(name), "fleet-old-%zu", i + 1);
            if ((rc = tt_registry_cred_put(reg, name, t->old_fleet[i])) != 0)
                goto fail;
        }
    }
    rc = tt_registry_cred_put(reg, "fleet", t->fleet);
    if (rc == 0)
        return 0;
fail:
    snprintf(err, TT_ERRLEN, "cannot keep the fleet token's history in the registry: %s",
             tether_strerror(rc));
    t->nold = 0;
    return -1;
}

void tt_tokens_set_fleet_hash(struct tt_tokens *t, const uint8_t hash[32])
{
    memcpy(t->fleet, hash, 32);
    t->have_fleet = true;
}

/* Reads a DIR/token file written by an earlier tetherd into out. Returns 1 if there is one, 0
 * if not, -1 with err. */
static int read_legacy_token(const char *path, char out[TT_MAX_TOKEN + 1], char err[TT_ERRLEN])
{
    if (access(path, F_OK) != 0)
        return 0;
    size_t len;
    char *text = tt_read_small_file(path, 4096, &len, err);
    if (!text)
        return -1;
    while (len > 0 && (text[len - 1] == '\n' || is_space(text[len - 1])))
        len--;
    if (len == 0 || len > TT_MAX_TOKEN || strlen(text) < len) {
        snprintf(err, TT_ERRLEN, "%.150s: not a valid token", path);
        free(text);
        return -1;
    }
    memcpy(out, text, len);
    out[len] = '\0';
    memset(text, 0, len);
    free(text);
    return 1;
}

/* A new token (32 random bytes in hex) into out. Returns 0, or -1 with err. */
static int new_token(char out[TT_MAX_TOKEN + 1], char err[TT_ERRLEN])
{
    uint8_t raw[TT_TOKEN_HEXLEN / 2];
    if (tt_random_bytes(raw, sizeof(raw)) != 0) {
        snprintf(err, TT_ERRLEN, "cannot create a token: no random bytes");
        return -1;
    }
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    tt_secret_wipe(raw, sizeof(raw));
    return 0;
}

int tt_tokens_rotate(struct tt_registry *reg, char out[TT_MAX_TOKEN + 1], char err[TT_ERRLEN])
{
    uint8_t hash[32];
    out[0] = '\0';
    int rc = tt_registry_cred_get(reg, TT_REG_FLEET_CRED, hash);
    if (rc == TETHER_ERR_NOT_FOUND) {
        snprintf(err, TT_ERRLEN, "no generated device token to rotate");
        return -1;
    }
    if (rc == 0 && new_token(out, err) != 0)
        return -1;
    if (rc == 0) {
        hash_token((const uint8_t *)out, strlen(out), hash);
        rc = tt_registry_cred_put(reg, TT_REG_FLEET_CRED, hash);
    }
    if (!rc)
        rc = tt_registry_sync(reg); /* on disk before it is printed */
    if (rc) {
        snprintf(err, TT_ERRLEN, "cannot store the new token in the registry: %s",
                 tether_strerror(rc));
        tt_secret_wipe(out, TT_MAX_TOKEN + 1);
        return -1;
    }
    return 0;
}

int tt_tokens_generated(struct tt_tokens *t, struct tt_registry *reg, const char *dir,
                        char out[TT_MAX_TOKEN + 1], bool *created, char err[TT_ERRLEN])
{
    uint8_t hash[32];
    char legacy[1100];
    *created = false;
    out[0] = '\0';
    int rc = tt_registry_cred_get(reg, TT_REG_FLEET_CRED, hash);
    if (rc == 0) {
        tt_tokens_set_fleet_hash(t, hash);
        return 0;
    }
    if (rc != TETHER_ERR_NOT_FOUND) {
        snprintf(err, TT_ERRLEN, "cannot read the fleet token from the registry: %s",
                 tether_strerror(rc));
        return -1;
    }
    snprintf(legacy, sizeof(legacy), "%s/token", dir);
    int found = read_legacy_token(legacy, out, err);
    if (found < 0)
        return -1;
    if (!found && new_token(out, err) != 0)
        return -1;
    hash_token((const uint8_t *)out, strlen(out), hash);
    rc = tt_registry_cred_put(reg, TT_REG_FLEET_CRED, hash);
    if (!rc)
        rc = tt_registry_sync(reg); /* on disk before it is printed */
    if (rc) {
        snprintf(err, TT_ERRLEN, "cannot store the fleet token in the registry: %s",
                 tether_strerror(rc));
        memset(out, 0, TT_MAX_TOKEN + 1);
        return -1;
    }
    tt_tokens_set_fleet_hash(t, hash);
    if (found) {
        unlink(legacy); /* its hash is in the registry now: no plain copy stays on disk */
        memset(out, 0, TT_MAX_TOKEN + 1);
        return 0;
    }
    *created = true;
    return 0;
}
