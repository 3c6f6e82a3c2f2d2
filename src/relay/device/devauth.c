/* devauth.c - the HELLO's credential rules, device keys, the fleet credential's caps and the
 * per-address throttle of failed credentials (devauth.h; the table is throttle.h's). Key hashes
 * are compared with CRYPTO_memcmp; keys come from RAND_bytes; nothing secret is logged. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include "tether_err.h"
#include "common/log.h"
#include "common/util.h"
#include "relay/access/access.h"
#include "relay/device/devauth.h"

/* ---- set-up and the address table ---- */

static int64_t new_burst(const struct tt_devauth *a)
{
    return (int64_t)a->new_per_sec * TT_DEVAUTH_NEW_BURST_SECS;
}

void tt_devauth_init(struct tt_devauth *a, uint64_t max_names, uint64_t max_ports,
                     uint64_t new_per_sec, int64_t now)
{
    memset(a, 0, sizeof(*a));
    a->max_names = max_names ? max_names : 1;
    a->max_ports = max_ports ? max_ports : 1;
    a->new_per_sec = new_per_sec ? new_per_sec : 1;
    tt_throttle_init(&a->thr, "device registrations");
    tt_throttle_bucket_fill(&a->new_names, new_burst(a), now);
}

void tt_devauth_reset(struct tt_devauth *a)
{
    tt_throttle_reset(&a->thr);
}

void tt_devauth_sweep(struct tt_devauth *a, int64_t now)
{
    tt_throttle_sweep(&a->thr, now);
}

size_t tt_devauth_addresses(const struct tt_devauth *a)
{
    return tt_throttle_addresses(&a->thr);
}

/* A refusal of name from e: logged when it opens a log interval (with the summary of the last
 * one), else counted for the next summary. */
static void note(struct tt_devauth *a, struct tt_throttle_addr *e, bool throttled, const char *name,
                 const char *peer, const char *why, const char *cause, int64_t now)
{
    if (!tt_throttle_note(&a->thr, e, throttled, now))
        return;
    if (cause)
        TT_LOG(TT_LOG_INFO, "device refused device=%s peer=%s reason=\"%s\" cause=%s",
               TT_LOG_V(name), peer, TT_LOG_E(why), cause);
    else
        TT_LOG(TT_LOG_INFO, "device refused device=%s peer=%s reason=\"%s\"", TT_LOG_V(name), peer,
               TT_LOG_E(why));
}

/* ---- the rules ---- */

void tt_devauth_key_hash(const uint8_t *key, size_t len, uint8_t hash[32])
{
    SHA256(key, len, hash);
}

static bool key_format_ok(const struct tt_str *k)
{
    if (k->len != TT_DEVAUTH_KEY_HEXLEN)
        return false;
    for (size_t i = 0; i < k->len; i++) {
        uint8_t c = k->p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

/* A new key into v (key and its hash). Returns 0 or -1 (no random bytes). */
static int issue_key(struct tt_devauth_verdict *v)
{
    uint8_t raw[TT_DEVAUTH_KEY_HEXLEN / 2];
    if (tt_random_bytes(raw, sizeof(raw)) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(v->key + 2 * i, 3, "%02x", raw[i]);
    OPENSSL_cleanse(raw, sizeof(raw));
    tt_devauth_key_hash((const uint8_t *)v->key, TT_DEVAUTH_KEY_HEXLEN, v->key_hash);
    v->set_key = true;
    v->issued = true;
    return 0;
}

/* A refusal: v gets code and the reason (fmt with the name), the address's entry (created if
 * need be) records it, the log gets it per the address's policy (note), with cause (NULL:
 * none) for the operator alone: the device's answer is the same whatever the cause, so that it
 * does not tell which names exist. A failed credential (auth) also takes a token from the
 * address's bucket. Returns 0. */
static int refuse(struct tt_devauth *a, const char *akey, bool auth, const char *name,
                  const char *peer, int64_t now, struct tt_devauth_verdict *v, uint16_t code,
                  const char *fmt, const char *cause)
{
    struct tt_throttle_addr *e = tt_throttle_get(&a->thr, akey, true, now);
    OPENSSL_cleanse(v->key, sizeof(v->key));
    v->set_key = v->issued = false;
    v->refuse = code;
    snprintf(v->reason, sizeof(v->reason), fmt, name);
    if (auth) {
        a->failures++;
        tt_throttle_fail(e, now);
    }
    tt_throttle_touch(&a->thr, e, now);
    note(a, e, false, name, peer, v->reason, cause, now);
    return 0;
}

/* The ports cap: a name held through a key that asks for more TCP ports than its record holds
 * (own, counted in the fleet's total when keyed) may not take the fleet credential past
 * max_ports. Returns 1 (over the cap), 0, or a registry error. */
static int ports_over(struct tt_devauth *a, struct tt_registry *reg, const char *name,
                      const struct tt_hello *m, bool keyed)
{
    uint64_t want = 0, own = 0, names, held;
    for (int i = 0; i < m->nservices; i++) {
        if (m->services[i].kind != TT_SERVICE_TCP)
            continue;
        char svc[TT_MAX_NAME + 1];
        size_t n = m->services[i].name.len < TT_MAX_NAME ? m->services[i].name.len : TT_MAX_NAME;
        memcpy(svc, m->services[i].name.p, n);
        svc[n] = '\0';
        want += a->access == NULL || tt_access_public(a->access, name, svc); /* private: none */
    }
    if (want == 0)
        return 0;
    struct tt_reg_device rd;
    int rc = tt_registry_get(reg, name, &rd);
    if (rc == 0)
        own = rd.nports;
    else if (rc != TETHER_ERR_NOT_FOUND)
        return rc;
    if (want <= own)
        return 0; /* no more than it holds: a device is never refused what it had */
    rc = tt_registry_key_counts(reg, &names, &held);
    if (rc)
        return rc;
    uint64_t others = keyed && held >= own ? held - own : held;
    return others + want > a->max_ports ? 1 : 0;
}

/* A failed credential's cause, for the log: "unknown-name" when nothing could have admitted the
 * name (no fleet token, and no --tokens-file line of its own), else "token" (a wrong token, or
 * a device key with a token that is not a fleet token), "device-key" (the key is missing or
 * wrong). */
#define R_AUTH(fmt)                                                                                \
    refuse(a, akey, true, name, peer, now, v, TT_REFUSE_AUTH, fmt,                                 \
           !tok->have_fleet && !tt_tokens_has_own(tok, m->name.p, m->name.len) ? "unknown-name"    \
                                                                               : "token")
#define R_KEY(fmt) refuse(a, akey, true, name, peer, now, v, TT_REFUSE_AUTH, fmt, "device-key")
#define R_OTHER(code, fmt) refuse(a, akey, false, name, peer, now, v, code, fmt, NULL)

int tt_devauth_hello(struct tt_devauth *a, struct tt_registry *reg, const struct tt_tokens *tok,
                     const char *name, const struct tt_hello *m, uint8_t version, const char *peer,
                     int64_t now, struct tt_devauth_verdict *v)
{
    char akey[TT_ADDRKEY_LEN];
    uint8_t stored[32], got[32];
    const struct tt_str *key = &m->key;

    memset(v, 0, sizeof(*v));
    tt_throttle_key(peer, akey);
    struct tt_throttle_addr *e = tt_throttle_get(&a->thr, akey, false, now);
    if (tt_throttle_blocked(e, now)) {
        /* not checked at all: a guess costs nothing more than this */
        a->throttled++;
        tt_throttle_touch(&a->thr, e, now);
        v->refuse = TT_REFUSE_AUTH;
        snprintf(v->reason, sizeof(v->reason), "too many failed attempts, retry later");
        note(a, e, true, name, peer, v->reason, NULL, now);
        return 0;
    }
    if (tt_tokens_has_own(tok, m->name.p, m->name.len)) {
        if (!tt_tokens_check(tok, m->name.p, m->name.len, m->token.p, m->token.len))
            return R_AUTH("invalid token for device %s");
        return 0; /* held by its own token: no device key involved */
    }
    int rc = tt_registry_key_get(reg, name, stored);
    if (rc != 0 && rc != TETHER_ERR_NOT_FOUND)
        return R_OTHER(TT_REFUSE_INTERNAL, "relay registry failure");
    bool fleet = tt_tokens_check_fleet(tok, m->token.p, m->token.len);
    bool keyed = rc == 0, fresh = false;
    if (keyed) {
        /* The name belongs to the holder of its key; the fleet token alone is not enough (and
         * not needed: fleet tokens may be rotated without locking devices out). */
        bool match = false;
        if (key->len > 0) {
            tt_devauth_key_hash(key->p, key->len, got);
            match = CRYPTO_memcmp(got, stored, sizeof(got)) == 0;
        }
        if (!match && !fleet)
            return R_AUTH("invalid token for device %s");
        if (!match)
            return R_KEY(key->len > 0
                             ? "wrong device key: the name %s belongs to another device"
                             : "device key required: the name %s belongs to another device");
        /* With its key, the fleet token or one used before it: a rotation of the fleet token
         * does not lock keyed devices out, and a wrong token is refused all the same. */
        if (!tt_tokens_check_fleet_any(tok, m->token.p, m->token.len))
            return R_AUTH("invalid token for device %s");
    } else {
        if (!fleet)
            return R_AUTH("invalid token for device %s");
        if (version < 2)
            return R_OTHER(TT_REFUSE_VERSION,
                           "protocol 1 cannot hold a device key: upgrade the agent to protocol "
                           "2 to register with the fleet token");
        struct tt_reg_device rd;
        int g = tt_registry_get(reg, name, &rd);
        if (g != 0 && g != TETHER_ERR_NOT_FOUND)
            return R_OTHER(TT_REFUSE_INTERNAL, "relay registry failure");
        fresh = g == TETHER_ERR_NOT_FOUND;
        if (fresh) {
            /* A new name (not one registered before device keys): the caps on names. */
            uint64_t names = 0, held = 0;
            tt_throttle_bucket_refill(&a->new_names, new_burst(a), (int64_t)a->new_per_sec, now);
            if (!tt_throttle_bucket_has(&a->new_names)) {
                a->cap_refused[TT_DEVAUTH_CAP_RATE]++;
                return R_OTHER(TT_REFUSE_CAPACITY,
                               "too many new device names for the fleet token: retry later");
            }
            if (tt_registry_key_counts(reg, &names, &held) != 0)
                return R_OTHER(TT_REFUSE_INTERNAL, "relay registry failure");
            if (names >= a->max_names) {
                a->cap_refused[TT_DEVAUTH_CAP_NAMES]++;
                return R_OTHER(TT_REFUSE_CAPACITY, "the fleet token holds as many names as "
                                                   "allowed (--max-names-per-token)");
            }
        }
        if (key->len > 0) {
            /* an agent that got its key elsewhere (another relay): adopted */
            if (!key_format_ok(key))
                return R_OTHER(TT_REFUSE_INVALID, "a device key is 64 lowercase hex digits");
            tt_devauth_key_hash(key->p, key->len, v->key_hash);
            v->set_key = true;
        } else if (issue_key(v) != 0) {
            return R_OTHER(TT_REFUSE_INTERNAL, "relay failure (no random bytes)");
        }
    }
    rc = ports_over(a, reg, name, m, keyed);
    if (rc < 0)
        return R_OTHER(TT_REFUSE_INTERNAL, "relay registry failure");
    if (rc > 0) {
        a->cap_refused[TT_DEVAUTH_CAP_PORTS]++;
        return R_OTHER(TT_REFUSE_CAPACITY, "the fleet token holds as many TCP ports as allowed "
                                           "(--max-ports-per-token)");
    }
    if (fresh)
        tt_throttle_bucket_take(
            &a->new_names); /* only new names that get in count against the rate */
    return 0;
}

#undef R_AUTH
#undef R_KEY
#undef R_OTHER

/* ---- metrics ---- */

static int add(char *out, size_t outlen, size_t *len, const char *fmt, ...) TT_PRINTF(4, 5);

static int add(char *out, size_t outlen, size_t *len, const char *fmt, ...)
{
    va_list ap;
    if (*len >= outlen)
        return -1;
    va_start(ap, fmt);
    int n = vsnprintf(out + *len, outlen - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= outlen - *len) {
        *len = outlen - 1;
        return -1;
    }
    *len += (size_t)n;
    return 0;
}

int tt_devauth_metrics(const struct tt_devauth *a, struct tt_registry *reg, char *out,
                       size_t outlen, size_t *len)
{
    uint64_t names = 0, ports = 0;
    int rc =
        add(out, outlen, len,
            "# HELP tether_auth_failures_total Device registrations refused for a wrong token or a "
            "wrong or missing device key.\n"
            "# TYPE tether_auth_failures_total counter\n"
            "tether_auth_failures_total %llu\n"
            "# HELP tether_auth_throttled_total Device registrations refused unchecked: too many "
            "failed attempts from their address.\n"
            "# TYPE tether_auth_throttled_total counter\n"
            "tether_auth_throttled_total %llu\n"
            "# HELP tether_auth_throttle_addresses Client addresses whose failed attempts are "
            "counted now (at most %d).\n"
            "# TYPE tether_auth_throttle_addresses gauge\n"
            "tether_auth_throttle_addresses %zu\n"
            "# HELP tether_auth_throttle_evicted_total Addresses forgotten early to make room.\n"
            "# TYPE tether_auth_throttle_evicted_total counter\n"
            "tether_auth_throttle_evicted_total %llu\n"
            "# HELP tether_device_keys_total Device keys stored with a registration: issued by "
            "the relay, or adopted from the agent (a key it got from another relay).\n"
            "# TYPE tether_device_keys_total counter\n"
            "tether_device_keys_total{how=\"issued\"} %llu\n"
            "tether_device_keys_total{how=\"adopted\"} %llu\n"
            "# HELP tether_token_refused_total Registrations with the fleet token refused by one "
            "of its caps.\n"
            "# TYPE tether_token_refused_total counter\n"
            "tether_token_refused_total{cap=\"names\"} %llu\n"
            "tether_token_refused_total{cap=\"ports\"} %llu\n"
            "tether_token_refused_total{cap=\"rate\"} %llu\n",
            (unsigned long long)a->failures, (unsigned long long)a->throttled, TT_DEVAUTH_MAX_ADDRS,
            tt_devauth_addresses(a), (unsigned long long)a->thr.evicted,
            (unsigned long long)a->keys_issued, (unsigned long long)a->keys_adopted,
            (unsigned long long)a->cap_refused[TT_DEVAUTH_CAP_NAMES],
            (unsigned long long)a->cap_refused[TT_DEVAUTH_CAP_PORTS],
            (unsigned long long)a->cap_refused[TT_DEVAUTH_CAP_RATE]);
    if (rc == 0 && reg && tt_registry_key_counts(reg, &names, &ports) == 0)
        rc = add(out, outlen, len,
                 "# HELP tether_token_names Device names held through a device key (created "
                 "with the fleet token), and the cap (--max-names-per-token).\n"
                 "# TYPE tether_token_names gauge\n"
                 "tether_token_names{of=\"held\"} %llu\n"
                 "tether_token_names{of=\"max\"} %llu\n"
                 "# HELP tether_token_ports TCP ports held by those names, and the cap "
                 "(--max-ports-per-token).\n"
                 "# TYPE tether_token_ports gauge\n"
                 "tether_token_ports{of=\"held\"} %llu\n"
                 "tether_token_ports{of=\"max\"} %llu\n",
                 (unsigned long long)names, (unsigned long long)a->max_names,
                 (unsigned long long)ports, (unsigned long long)a->max_ports);
    return rc;
}
