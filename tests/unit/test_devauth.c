/* test_devauth.c - unit tests for src/relay/device/devauth.c over an in-memory SQLite registry: the
 * rules at HELLO (own token, device key, fleet token and protocol 2, key issue and adoption),
 * the fleet token's caps (names, ports, new names per second, names from before device keys),
 * the per-address throttle (burst, refill, other addresses, idle expiry, the table's cap) and
 * the metrics text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "tether_err.h"
#include "relay/device/devauth.h"

#define FLEET "fleet-token"
#define PEER "192.0.2.7:40000"

static struct tt_registry *reg;
static struct tt_tokens tok;
static struct tt_devauth auth;

static int setup(void **state)
{
    char err[TT_ERRLEN];
    (void)state;
    reg = tt_registry_sqlite_open(":memory:", err);
    if (!reg)
        return -1;
    tt_tokens_init(&tok);
    tt_tokens_set_fleet(&tok, FLEET, strlen(FLEET));
    tt_devauth_init(&auth, 100000, 32, TT_DEVAUTH_NEW_PER_SEC, 1000);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tt_devauth_reset(&auth);
    tt_tokens_reset(&tok);
    tt_registry_free(reg);
    return 0;
}

static struct tt_str S(const char *s) {
    struct tt_str t = {(const uint8_t *)s, strlen(s)};
    return t;
}

/* A HELLO for name with token and key (NULL: none) and ntcp TCP services. */
static struct tt_hello
hello(const char *name, const char *token, const char *key, int ntcp)
{
    static const char *const svc[] = {"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"};
    struct tt_hello m;
    memset(&m, 0, sizeof(m));
    m.version = 2;
    m.name = S(name);
    m.token = S(token);
    m.key = S(key ? key : "");
    m.nservices = (uint8_t)(ntcp + 1);
    m.services[0].kind = TT_SERVICE_HTTP;
    m.services[0].name = S("http");
    for (int i = 0; i < ntcp; i++) {
        m.services[i + 1].kind = TT_SERVICE_TCP;
        m.services[i + 1].name = S(svc[i]);
    }
    return m;
}

static int64_t now = 1000;

static struct tt_devauth_verdict check_v(const char *name, const char *token, const char *key,
                                         int ntcp, uint8_t version, const char *peer)
{
    struct tt_devauth_verdict v;
    struct tt_hello m = hello(name, token, key, ntcp);
    m.version = version;
    assert_int_equal(tt_devauth_hello(&auth, reg, &tok, name, &m, version, peer, now, &v), 0);
    return v;
}

static struct tt_devauth_verdict check(const char *name, const char *token, const char *key,
                                       int ntcp)
{
    return check_v(name, token, key, ntcp, 2, PEER);
}

/* What device.c does once the registration is through: the record, with the key when set,
 * holding ntcp ports from *next_port on. */
static void store(const char *name, const struct tt_devauth_verdict *v, int ntcp)
{
    static uint16_t next_port = 20000;
    static int nlabel;
    struct tt_reg_device d;
    memset(&d, 0, sizeof(d));
    snprintf(d.name, sizeof(d.name), "%s", name);
    if (tt_registry_get(reg, name, &d) != 0)
        snprintf(d.label, sizeof(d.label), "label%d", nlabel++);
    d.nports = 0;
    for (int i = 0; i < ntcp; i++) {
        snprintf(d.ports[i].service, sizeof(d.ports[i].service), "s%d", i);
        d.ports[i].port = next_port++;
        d.nports++;
    }
    d.set_key = v->set_key;
    memcpy(d.key_hash, v->key_hash, 32);
    assert_int_equal(tt_registry_put(reg, &d), 0);
}

static void test_key_issued_then_required(void **state)
{
    char key[TT_DEVAUTH_KEY_HEXLEN + 1];
    uint8_t h[32], stored[32];
    (void)state;
    struct tt_devauth_verdict v = check("camera-1", FLEET, NULL, 0);
    assert_int_equal(v.refuse, 0);
    assert_true(v.issued && v.set_key);
    assert_int_equal(strlen(v.key), TT_DEVAUTH_KEY_HEXLEN);
    assert_int_equal(strspn(v.key, "0123456789abcdef"), TT_DEVAUTH_KEY_HEXLEN);
    tt_devauth_key_hash((const uint8_t *)v.key, strlen(v.key), h);
    assert_memory_equal(h, v.key_hash, 32);
    memcpy(key, v.key, sizeof(key));
    store("camera-1", &v, 0);
    assert_int_equal(tt_registry_key_get(reg, "camera-1", stored), 0);
    assert_memory_equal(stored, h, 32);

    /* the fleet token alone no longer gets the name */
    v = check("camera-1", FLEET, NULL, 0);
    assert_int_equal(v.refuse, TT_REFUSE_AUTH);
    assert_string_equal(v.reason, "device key required: the name camera-1 belongs to another "
                                  "device");
    assert_false(v.set_key || v.issued);
    v = check("camera-1", FLEET, "0000000000000000000000000000000000000000000000000000000000000000",
              0);
    assert_int_equal(v.refuse, TT_REFUSE_AUTH);
    assert_non_null(strstr(v.reason, "wrong device key"));
    /* without the fleet token either: the reason does not tell that the name exists */
    v = check("camera-1", "guess", NULL, 0);
    assert_int_equal(v.refuse, TT_REFUSE_AUTH);
    assert_string_equal(v.reason, "invalid token for device camera-1");
    /* the key with the fleet token: the device itself, nothing issued */
    v = check("camera-1", FLEET, key, 0);
    assert_int_equal(v.refuse, 0);
    assert_false(v.set_key || v.issued);
    assert_string_equal(v.key, "");
    /* the key with a wrong token: refused (SPEC: a wrong token is refused) */
    v = check("camera-1", "never-a-fleet-token", key, 0);
    assert_int_equal(v.refuse, TT_REFUSE_AUTH);
    assert_string_equal(v.reason, "invalid token for device camera-1");
    /* a version-1 HELLO cannot carry the key */
    v = check_v("camera-1", FLEET, NULL, 0, 1, PEER);
    assert_int_equal(v.refuse, TT_REFUSE_AUTH);
    assert_int_equal(auth.failures, 5);

    /* The fleet token is rotated: devices with their key keep working with the old token; a
     * new name needs the new one. */
    char err[TT_ERRLEN];
    assert_int_equal(tt_tokens_fleet_history(&tok, reg, err), 0); /* first start: recorded */
    assert_int_equal(tok.nold, 0);
    tt_tokens_set_fleet(&tok, "new-fleet", 9);
    assert_int_equal(tt_tokens_fleet_history(&tok, reg, err), 0);
    assert_int_equal(tok.nold, 1);
    assert_int_equal(tt_tokens_fleet_history(&tok, reg, err), 0); /* a restart: no change */
    assert_int_equal(tok.nold, 1);
    assert_int_equal(check("camera-1", FLEET, key, 0).refuse, 0);
    assert_int_equal(check("camera-1", "new-fleet", key, 0).refuse, 0);
    assert_int_equal(check("camera-1", FLEET, NULL, 0).refuse, TT_REFUSE_AUTH);
    assert_int_equal(check("camera-9", FLEET, NULL, 0).refuse, TT_REFUSE_AUTH);
    assert_int_equal(check("camera-9", "new-fleet", NULL, 0).refuse, 0);
    /* more rotations: at most TT_TOKENS_OLD_FLEET old ones, newest first; back to an old one */
    for (int i = 0; i < TT_TOKENS_OLD_FLEET + 2; i++) {
        char t[16];
        snprintf(t, sizeof(t), "fleet-%d", i);
        tt_tokens_set_fleet(&tok, t, strlen(t));
        assert_int_equal(tt_tokens_fleet_history(&tok, reg, err), 0);
    }
    assert_int_equal(tok.nold, TT_TOKENS_OLD_FLEET);
    assert_true(tt_tokens_check_fleet_any(&tok, (const uint8_t *)"fleet-4", 7));
    assert_false(tt_tokens_check_fleet_any(&tok, (const uint8_t *)FLEET, strlen(FLEET)));
    tt_tokens_set_fleet(&tok, "fleet-4", 7);
    assert_int_equal(tt_tokens_fleet_history(&tok, reg, err), 0);
    assert_int_equal(tok.nold, TT_TOKENS_OLD_FLEET);
    assert_true(tt_tokens_check_fleet_any(&tok, (const uint8_t *)"fleet-5", 7));
}

static void test_fleet_needs_protocol_2(void **state)
{
    (void)state;
    struct tt_devauth_verdict v = check_v("new-1", FLEET, NULL, 0, 1, PEER);
    assert_int_equal(v.refuse, TT_REFUSE_VERSION);
    assert_non_null(strstr(v.reason, "upgrade the agent to protocol 2"));
    assert_false(v.issued);
    v = check_v("new-1", "wrong", NULL, 0, 1, PEER);
    assert_int_equal(v.refuse, TT_REFUSE_AUTH);
    assert_int_equal(auth.failures, 1);
}

static void test_own_token(void **state)
{
    char err[TT_ERRLEN];
    static const char file[] = "gw-7 own-secret\n";
    (void)state;
    assert_int_equal(tt_tokens_parse(&tok, file, strlen(file), "tokens", err), 0);
    assert_true(tt_tokens_has_own(&tok, (const uint8_t *)"gw-7", 4));
    assert_false(tt_tokens_has_own(&tok, (const uint8_t *)"gw-8", 4));
    /* held by its own token, on either version, no key involved */
    struct tt_devauth_verdict v = check_v("gw-7", "own-secret", NULL, 0, 1, PEER);
    assert_int_equal(v.refuse, 0);
    assert_false(v.set_key || v.issued);
    v = check("gw-7", "own-secret",
              "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 0);
    assert_int_equal(v.refuse, 0);
    assert_false(v.set_key);
    v = check("gw-7", FLEET, NULL, 0);
    assert_int_equal(v.refuse, TT_REFUSE_AUTH);
    assert_true(tt_tokens_check_fleet(&tok, (const uint8_t *)FLEET, strlen(FLEET)));
    assert_false(tt_tokens_check_fleet(&tok, (const uint8_t *)"x", 1));
}

static void test_key_adopted(void **state)
{
    static const char key[] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    uint8_t h[32];
    (void)state;
    struct tt_devauth_verdict v = check("roamer", FLEET, key, 0);
    assert_int_equal(v.refuse, 0);
    assert_true(v.set_key);
    assert_false(v.issued);
    tt_devauth_key_hash((const uint8_t *)key, strlen(key), h);
    assert_memory_equal(h, v.key_hash, 32);
    v = check("roamer", FLEET, "ABCDEF", 0);
    assert_int_equal(v.refuse, TT_REFUSE_INVALID);
    v = check("roamer", FLEET, "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",
              0);
    assert_int_equal(v.refuse, TT_REFUSE_INVALID);
}

static void test_names_cap_and_rate(void **state)
{
    (void)state;
    tt_devauth_reset(&auth);
    tt_devauth_init(&auth, 3, 32, TT_DEVAUTH_NEW_PER_SEC, now);
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof(name), "n%d", i);
        struct tt_devauth_verdict v = check(name, FLEET, NULL, 0);
        assert_int_equal(v.refuse, 0);
        store(name, &v, 0);
    }
    struct tt_devauth_verdict v = check("n3", FLEET, NULL, 0);
    assert_int_equal(v.refuse, TT_REFUSE_CAPACITY);
    assert_non_null(strstr(v.reason, "--max-names-per-token"));
    assert_false(v.issued);
    assert_int_equal(auth.cap_refused[TT_DEVAUTH_CAP_NAMES], 1);
    /* a name registered before device keys is not new: it gets its key past the cap */
    struct tt_reg_device legacy;
    memset(&legacy, 0, sizeof(legacy));
    snprintf(legacy.name, sizeof(legacy.name), "legacy");
    snprintf(legacy.label, sizeof(legacy.label), "legacylabel");
    assert_int_equal(tt_registry_put(reg, &legacy), 0);
    v = check("legacy", FLEET, NULL, 0);
    assert_int_equal(v.refuse, 0);
    assert_true(v.issued);
    /* freeing a name makes room */
    assert_int_equal(tt_registry_key_del(reg, "n0"), 0);
    v = check("n3", FLEET, NULL, 0);
    assert_int_equal(v.refuse, 0);

    /* the rate (10 a second here): ten seconds' worth at once, then 10 a second */
    tt_devauth_reset(&auth);
    tt_devauth_init(&auth, 100000, 32, 10, now);
    int ok = 0;
    for (int i = 0; i < 10 * TT_DEVAUTH_NEW_BURST_SECS + 20; i++) {
        char name[16];
        snprintf(name, sizeof(name), "r%d", i);
        v = check(name, FLEET, NULL, 0);
        if (v.refuse == 0)
            ok++;
        else
            assert_int_equal(v.refuse, TT_REFUSE_CAPACITY);
    }
    assert_int_equal(ok, 10 * TT_DEVAUTH_NEW_BURST_SECS);
    assert_int_equal(auth.cap_refused[TT_DEVAUTH_CAP_RATE], 20);
    now += 1000 / 10;
    assert_int_equal(check("later", FLEET, NULL, 0).refuse, 0);
    assert_int_equal(check("later-2", FLEET, NULL, 0).refuse, TT_REFUSE_CAPACITY);
}

static void test_ports_cap(void **state)
{
    (void)state;
    tt_devauth_reset(&auth);
    tt_devauth_init(&auth, 100000, 5, TT_DEVAUTH_NEW_PER_SEC, now);
    struct tt_devauth_verdict v = check("p1", FLEET, NULL, 3);
    assert_int_equal(v.refuse, 0);
    char key1[TT_DEVAUTH_KEY_HEXLEN + 1];
    memcpy(key1, v.key, sizeof(key1));
    store("p1", &v, 3);
    v = check("p2", FLEET, NULL, 3); /* 3 + 3 > 5 */
    assert_int_equal(v.refuse, TT_REFUSE_CAPACITY);
    assert_non_null(strstr(v.reason, "--max-ports-per-token"));
    assert_false(v.issued || v.set_key);
    assert_string_equal(v.key, "");
    assert_int_equal(auth.cap_refused[TT_DEVAUTH_CAP_PORTS], 1);
    v = check("p2", FLEET, NULL, 2); /* 3 + 2 */
    assert_int_equal(v.refuse, 0);
    store("p2", &v, 2);
    /* p1 again with the ports it holds: never refused; with one more: refused */
    assert_int_equal(check("p1", FLEET, key1, 3).refuse, 0);
    assert_int_equal(check("p1", FLEET, key1, 2).refuse, 0);
    assert_int_equal(check("p1", FLEET, key1, 4).refuse, TT_REFUSE_CAPACITY);
    /* HTTP only is always fine */
    assert_int_equal(check("p3", FLEET, NULL, 0).refuse, 0);
    /* names with their own token are not counted */
    uint64_t names, ports;
    assert_int_equal(tt_registry_key_counts(reg, &names, &ports), 0);
    assert_true(names == 2 && ports == 5);
}

static void test_throttle(void **state)
{
    (void)state;
    tt_devauth_reset(&auth);
    tt_devauth_init(&auth, 100000, 32, 10, now);
    for (int i = 0; i < TT_DEVAUTH_FAIL_BURST; i++)
        assert_int_equal(check("t", "guess", NULL, 0).refuse, TT_REFUSE_AUTH);
    assert_int_equal(auth.failures, TT_DEVAUTH_FAIL_BURST);
    /* throttled: refused unchecked, even with the right credential */
    for (int i = 0; i < 100; i++) {
        struct tt_devauth_verdict v = check("t", FLEET, NULL, 0);
        assert_int_equal(v.refuse, TT_REFUSE_AUTH);
        assert_string_equal(v.reason, "too many failed attempts, retry later");
        assert_false(v.issued);
    }
    assert_int_equal(auth.throttled, 100);
    assert_int_equal(auth.failures, TT_DEVAUTH_FAIL_BURST);
    /* the same /64 of IPv6 counts as one address; another address is not affected */
    assert_int_equal(check_v("t", FLEET, NULL, 0, 2, "192.0.2.8:1").refuse, 0);
    for (int i = 0; i < TT_DEVAUTH_FAIL_BURST; i++)
        check_v("t6", "guess", NULL, 0, 2, "[2001:db8:1:2::1]:5");
    assert_string_equal(check_v("t6", FLEET, NULL, 0, 2, "[2001:db8:1:2:ffff::9]:6").reason,
                        "too many failed attempts, retry later");
    assert_int_equal(check_v("t6", FLEET, NULL, 0, 2, "[2001:db8:1:3::1]:6").refuse, 0);
    assert_int_equal(tt_devauth_addresses(&auth), 2);
    /* one attempt a second after that */
    now += 1000 / TT_DEVAUTH_FAIL_PER_SEC;
    assert_string_equal(check("t", "guess", NULL, 0).reason, "invalid token for device t");
    assert_string_equal(check("t", "guess", NULL, 0).reason,
                        "too many failed attempts, retry later");
    now += 1000 / TT_DEVAUTH_FAIL_PER_SEC;
    assert_int_equal(check("t", FLEET, NULL, 0).refuse, 0);
    /* idle addresses are forgotten */
    now += TT_DEVAUTH_IDLE_MS;
    tt_devauth_sweep(&auth, now);
    assert_int_equal(tt_devauth_addresses(&auth), 0);

    char text[8192];
    size_t len = 0;
    assert_int_equal(tt_devauth_metrics(&auth, reg, text, sizeof(text), &len), 0);
    assert_int_equal(len, strlen(text));
    assert_non_null(strstr(text, "tether_auth_failures_total 21\n"));
    assert_non_null(strstr(text, "tether_auth_throttled_total 102\n"));
    assert_non_null(strstr(text, "tether_auth_throttle_addresses 0\n"));
    assert_non_null(strstr(text, "tether_token_names{of=\"max\"} 100000\n"));
    assert_non_null(strstr(text, "tether_token_ports{of=\"max\"} 32\n"));
    len = 0;
    assert_int_equal(tt_devauth_metrics(&auth, reg, text, 100, &len), -1);
    assert_true(len < 100 && strlen(text) == len);
}

/* At TT_DEVAUTH_MAX_ADDRS addresses, a new one makes room by dropping the one idle longest. */
static void test_throttle_table_cap(void **state)
{
    (void)state;
    tt_devauth_reset(&auth);
    tt_devauth_init(&auth, 100000, 32, 10, now);
    for (int i = 0; i <= TT_DEVAUTH_MAX_ADDRS; i++) {
        char peer[32];
        snprintf(peer, sizeof(peer), "10.%d.%d.%d:1", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        check_v("cap", "guess", NULL, 0, 2, peer);
    }
    assert_int_equal(tt_devauth_addresses(&auth), TT_DEVAUTH_MAX_ADDRS);
    assert_int_equal(auth.thr.evicted, 1);
    tt_devauth_reset(&auth);
    assert_int_equal(tt_devauth_addresses(&auth), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_key_issued_then_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fleet_needs_protocol_2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_adopted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_cap_and_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ports_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttle_table_cap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
