/* adminsession.c - the admin listener's sign-in sessions (adminsession.h). */
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include "tether_err.h"
#include "common/util.h"
#include "relay/admin/adminsession.h"
#include "relay/lib/cookie.h"

void tt_adminsession_init(struct tt_adminsession_set *s)
{
    memset(s, 0, sizeof(*s));
    tt_throttle_init(&s->throttle, "admin sign-ins");
}

void tt_adminsession_free(struct tt_adminsession_set *s)
{
    tt_throttle_reset(&s->throttle);
    OPENSSL_cleanse(s->v, sizeof(s->v));
}

int tt_adminsession_create(struct tt_adminsession_set *s, int64_t now, uint64_t ttl_ms,
                           char value[TT_ADMINSESSION_VALUE_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t id[TT_ADMINSESSION_VALUE_LEN / 2];
    if (tt_random_bytes(id, sizeof(id)) != 0)
        return TETHER_ERR_IO;
    /* a free or expired slot, else the oldest */
    size_t slot = 0;
    bool free_slot = false;
    for (size_t i = 0; i < TT_ADMINSESSION_MAX; i++) {
        if (!s->v[i].used || s->v[i].expires <= now) {
            slot = i;
            free_slot = true;
            break;
        }
        if (s->v[i].created < s->v[slot].created)
            slot = i;
    }
    if (!free_slot)
        s->evicted++;
    SHA256(id, sizeof(id), s->v[slot].hash);
    s->v[slot].created = now;
    s->v[slot].expires = now + (int64_t)ttl_ms;
    s->v[slot].used = true;
    for (size_t i = 0; i < sizeof(id); i++) {
        value[2 * i] = hex[id[i] >> 4];
        value[2 * i + 1] = hex[id[i] & 15];
    }
    value[TT_ADMINSESSION_VALUE_LEN] = '\0';
    OPENSSL_cleanse(id, sizeof(id));
    s->created++;
    return 0;
}

int tt_adminsession_find(struct tt_adminsession_set *s, const uint8_t *v, size_t len, int64_t now)
{
    uint8_t h[SHA256_DIGEST_LENGTH];
    if (len != TT_ADMINSESSION_VALUE_LEN)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f')))
            return -1;
    /* the hash of the value as given: ids are compared by their hashes */
    uint8_t id[TT_ADMINSESSION_VALUE_LEN / 2];
    for (size_t i = 0; i < sizeof(id); i++) {
        uint8_t hi = v[2 * i], lo = v[2 * i + 1];
        hi = hi <= '9' ? (uint8_t)(hi - '0') : (uint8_t)(hi - 'a' + 10);
        lo = lo <= '9' ? (uint8_t)(lo - '0') : (uint8_t)(lo - 'a' + 10);
        id[i] = (uint8_t)(hi << 4 | lo);
    }
    SHA256(id, sizeof(id), h);
    OPENSSL_cleanse(id, sizeof(id));
    int found = -1;
    for (size_t i = 0; i < TT_ADMINSESSION_MAX; i++) {
        bool same = CRYPTO_memcmp(s->v[i].hash, h, sizeof(h)) == 0;
        if (same && s->v[i].used && s->v[i].expires > now && found < 0)
            found = (int)i;
    }
    return found;
}

void tt_adminsession_end(struct tt_adminsession_set *s, const uint8_t *v, size_t len, int64_t now)
{
    int i = tt_adminsession_find(s, v, len, now);
    if (i < 0)
        return;
    memset(&s->v[i], 0, sizeof(s->v[i]));
    s->signouts++;
}

size_t tt_adminsession_count(const struct tt_adminsession_set *s, int64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < TT_ADMINSESSION_MAX; i++)
        n += s->v[i].used && s->v[i].expires > now;
    return n;
}

int tt_adminsession_from_cookies(struct tt_adminsession_set *s, const uint8_t *const *vals,
                                 const size_t *lens, size_t n, int64_t now, const uint8_t **value,
                                 size_t *vlen)
{
    static const char name[] = TT_ADMINSESSION_COOKIE;
    unsigned tries = 0;
    for (size_t k = 0; k < n; k++) {
        size_t pos = 0;
        struct tt_cookie_pair c;
        while (tt_cookie_next(vals[k], lens[k], &pos, &c)) {
            if (c.namelen != sizeof(name) - 1 || memcmp(c.name, name, c.namelen) != 0)
                continue;
            if (tries++ >= TT_ADMINSESSION_TRIES)
                return -1;
            int i = tt_adminsession_find(s, c.value, c.valuelen, now);
            if (i >= 0) {
                if (value) {
                    *value = c.value;
                    *vlen = c.valuelen;
                }
                return i;
            }
        }
    }
    return -1;
}
