/* users.c - the users file (users.h): parsing, lookups, secret checks (SHA-256 for plain
 * secrets, libargon2's argon2id for hashed ones). No libuv. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include "tether_err.h"
#include "relay/access/users.h"

/* Largest cost a hash line may ask for: a typo must not make every sign-in take seconds. */
#define MAX_M_KIB (256u * 1024)
#define MAX_T 16
#define MAX_P 8

void tt_users_init(struct tt_users *u)
{
    u->v = NULL;
    u->n = 0;
    tt_strmap_init(&u->by_name);
}

void tt_users_reset(struct tt_users *u)
{
    for (size_t i = 0; i < u->n; i++) {
        free(u->v[i].phc);
        free(u->v[i].grants);
        tt_secret_wipe(u->v[i].sha, sizeof(u->v[i].sha));
    }
    free(u->v);
    tt_strmap_reset(&u->by_name);
    tt_users_init(u);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Reads an unsigned decimal at *p up to a non-digit; false when there is none or it is huge. */
static bool number(const char **p, unsigned long max, unsigned long *out)
{
    const char *s = *p;
    unsigned long n = 0;
    if (*s < '0' || *s > '9')
        return false;
    while (*s >= '0' && *s <= '9') {
        n = n * 10 + (unsigned long)(*s - '0');
        if (n > max)
            return false;
        s++;
    }
    *p = s;
    *out = n;
    return true;
}

/* A base64 field (no padding) of at least min characters, up to the next '$' or the end. */
static bool b64_field(const char **p, size_t min)
{
    const char *s = *p;
    size_t n = 0;
    while (*s && *s != '$') {
        char c = *s;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return false;
        s++;
        n++;
    }
    *p = s;
    return n >= min;
}

/* True for "$argon2id$v=19$m=M,t=T,p=P$SALT$HASH" within the cost limits. */
static bool phc_ok(const char *s)
{
    unsigned long m, t, p;
    const char *c = s;
    if (strlen(s) >= TT_USERS_HASH_MAX || strncmp(c, "$argon2id$v=19$m=", 17) != 0)
        return false;
    c += 17;
    if (!number(&c, MAX_M_KIB, &m) || strncmp(c, ",t=", 3) != 0)
        return false;
    c += 3;
    if (!number(&c, MAX_T, &t) || strncmp(c, ",p=", 3) != 0)
        return false;
    c += 3;
    if (!number(&c, MAX_P, &p) || *c++ != '$' || m < 8 * p || t < 1 || p < 1)
        return false;
    if (!b64_field(&c, 11) || *c++ != '$')
        return false;
    return b64_field(&c, 22) && *c == '\0';
}

static bool printable_word(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* Parses one line's fields f[0..nf) into a user. Returns 0 or -1 with err (the line number is
 * added by the caller). */
static int parse_user(struct tt_user *out, const char **f, const size_t *flen, size_t nf,
                      char err[TT_ERRLEN])
{
    char e[TT_ERRLEN];
    memset(out, 0, sizeof(*out));
    if (nf < 2) {
        snprintf(err, TT_ERRLEN, "expected USER SECRET GRANT...");
        return -1;
    }
    if (flen[0] > TT_MAX_NAME || !printable_word(f[0], flen[0])) {
        snprintf(err, TT_ERRLEN, "user name too long or not printable ASCII");
        return -1;
    }
    memcpy(out->name, f[0], flen[0]);
    if (flen[1] > TT_USERS_SECRET_MAX || !printable_word(f[1], flen[1])) {
        snprintf(err, TT_ERRLEN, "secret of user %s: 1 to %d printable characters", out->name,
                 TT_USERS_SECRET_MAX);
        return -1;
    }
    if (flen[1] >= 7 && memcmp(f[1], "$argon2", 7) == 0) {
        out->phc = malloc(flen[1] + 1);
        if (!out->phc) {
            snprintf(err, TT_ERRLEN, "out of memory");
            return -1;
        }
        memcpy(out->phc, f[1], flen[1]);
        out->phc[flen[1]] = '\0';
        if (!phc_ok(out->phc)) {
            snprintf(err, TT_ERRLEN,
                     "secret of user %s looks like a hash but is not one tetherd "
                     "--hash-secret makes ($argon2id$v=19$m=...,t=...,p=...$SALT$HASH, "
                     "m <= %u)",
                     out->name, MAX_M_KIB);
            free(out->phc);
            out->phc = NULL;
            return -1;
        }
        out->hashed = true;
    } else {
        SHA256((const unsigned char *)f[1], flen[1], out->sha);
    }
    if (nf - 2 > TT_USERS_MAX_GRANTS) {
        snprintf(err, TT_ERRLEN, "user %s: more than %d grants", out->name, TT_USERS_MAX_GRANTS);
        goto fail;
    }
    if (nf > 2) {
        out->grants = calloc(nf - 2, sizeof(*out->grants));
        if (!out->grants) {
            snprintf(err, TT_ERRLEN, "out of memory");
            goto fail;
        }
    }
    for (size_t i = 2; i < nf; i++) {
        char pat[TT_PATTERN_MAX + 2];
        size_t n = flen[i] < sizeof(pat) - 1 ? flen[i] : sizeof(pat) - 1;
        memcpy(pat, f[i], n);
        pat[n] = '\0';
        if (flen[i] > TT_PATTERN_MAX || tt_pattern_check(pat, e) != 0) {
            snprintf(err, TT_ERRLEN, "user %s: grant %s", out->name,
                     flen[i] > TT_PATTERN_MAX ? "too long" : e);
            goto fail;
        }
        strcpy(out->grants[out->ngrants++], pat);
    }
    return 0;
fail:
    free(out->phc);
    free(out->grants);
    memset(out, 0, sizeof(*out));
    return -1;
}

int tt_users_parse(struct tt_users *u, const char *text, size_t len, const char *what,
                   char err[TT_ERRLEN])
{
    char e[TT_ERRLEN];
    size_t cap = 0;
    unsigned lineno = 0;
    const char *p = text, *end = text + len;
    tt_users_init(u);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        lineno++;
        const char *f[2 + TT_USERS_MAX_GRANTS + 1];
        size_t flen[2 + TT_USERS_MAX_GRANTS + 1], nf = 0;
        const char *c = p;
        while (c < le) {
            while (c < le && is_blank(*c))
                c++;
            if (c == le || (*c == '#' && nf == 0))
                break;
            const char *w = c;
            while (c < le && !is_blank(*c))
                c++;
            if (nf == sizeof(f) / sizeof(f[0])) {
                snprintf(err, TT_ERRLEN, "%.150s:%u: more than %d grants", what, lineno,
                         TT_USERS_MAX_GRANTS);
                goto fail;
            }
            f[nf] = w;
            flen[nf++] = (size_t)(c - w);
        }
        p = nl ? nl + 1 : end;
        if (nf == 0)
            continue;
        if (u->n == TT_USERS_MAX) {
            snprintf(err, TT_ERRLEN, "%.150s:%u: more than %d users", what, lineno, TT_USERS_MAX);
            goto fail;
        }
        if (u->n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct tt_user *v = realloc(u->v, ncap * sizeof(*v));
            if (!v) {
                snprintf(err, TT_ERRLEN, "%.150s: out of memory", what);
                goto fail;
            }
            u->v = v;
            cap = ncap;
        }
        if (parse_user(&u->v[u->n], f, flen, nf, e) != 0) {
            snprintf(err, TT_ERRLEN, "%.150s:%u: %s", what, lineno, e);
            goto fail;
        }
        u->n++;
    }
    for (size_t i = 0; i < u->n; i++) {
        if (tt_strmap_get(&u->by_name, u->v[i].name) != NULL) {
            snprintf(err, TT_ERRLEN, "%.150s: user %s given twice", what, u->v[i].name);
            goto fail;
        }
        if (tt_strmap_put(&u->by_name, u->v[i].name, &u->v[i]) != 0) {
            snprintf(err, TT_ERRLEN, "%.150s: out of memory", what);
            goto fail;
        }
    }
    return 0;
fail:
    tt_users_reset(u);
    return -1;
}

int tt_users_load_file(struct tt_users *u, const char *path, char err[TT_ERRLEN])
{
    size_t len;
    tt_users_init(u);
    char *text = tt_read_small_file(path, TT_USERS_MAX_FILE, &len, err);
    if (!text)
        return -1;
    int rc = tt_users_parse(u, text, len, path, err);
    tt_secret_wipe(text, len);
    free(text);
    return rc;
}

const struct tt_user *tt_users_find(const struct tt_users *u, const char *name)
{
    return tt_strmap_get(&u->by_name, name);
}

bool tt_user_allows(const struct tt_user *user, const char *device, const char *service)
{
    return user != NULL && tt_pattern_match_any((const char(*)[TT_PATTERN_MAX + 1]) user->grants,
                                                user->ngrants, device, service);
}

bool tt_users_check_plain(const struct tt_user *user, const uint8_t *secret, size_t len)
{
    uint8_t h[32];
    if (user == NULL || user->hashed)
        return false;
    SHA256(secret, len, h);
    bool ok = CRYPTO_memcmp(h, user->sha, sizeof(h)) == 0;
    tt_secret_wipe(h, sizeof(h));
    return ok;
}

bool tt_users_check_hash(const char *phc, const uint8_t *secret, size_t len)
{
    return phc != NULL && argon2id_verify(phc, secret, len) == ARGON2_OK;
}

int tt_users_hash_secret(const uint8_t *secret, size_t len, char out[TT_USERS_HASH_MAX])
{
    uint8_t salt[16];
    if (tt_random_bytes(salt, sizeof(salt)) != 0)
        return -1;
    int rc = argon2id_hash_encoded(TT_USERS_ARGON2_T, TT_USERS_ARGON2_M_KIB, TT_USERS_ARGON2_P,
                                   secret, len, salt, sizeof(salt), 32, out, TT_USERS_HASH_MAX);
    return rc == ARGON2_OK ? 0 : -1;
}
