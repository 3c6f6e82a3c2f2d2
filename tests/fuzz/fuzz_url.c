/* fuzz_url.c - libFuzzer target for the parsers of src/common/util.c that read user and
 * environment input: URLs (the proxy URL from HTTPS_PROXY among them), HOST:PORT, port ranges
 * and durations, and the relay's --redis URLs (redis:// and redis-sentinel://, config.c). The
 * input is one NUL-free string; every result must be NUL-terminated and within its field. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "relay/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void terminated(const char *s, size_t cap)
{
    if (memchr(s, '\0', cap) == NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const schemes[] = {"ws", "wss", "http", "https", NULL};
    char s[2048], err[TT_ERRLEN], host[TT_HOSTLEN];
    struct tt_url u;
    uint16_t port, lo, hi;
    uint64_t ms;

    if (size >= sizeof(s))
        size = sizeof(s) - 1;
    memcpy(s, data, size);
    s[size] = '\0';
    if (tt_parse_url(s, schemes, &u, err) == 0) {
        terminated(u.scheme, sizeof(u.scheme));
        terminated(u.user, sizeof(u.user));
        terminated(u.pass, sizeof(u.pass));
        terminated(u.host, sizeof(u.host));
        terminated(u.path, sizeof(u.path));
        if (u.host[0] == '\0' || u.path[0] != '/' || u.port == 0)
            abort();
    } else {
        terminated(err, sizeof(err));
    }
    if (tt_parse_hostport(s, host, &port, true, err) == 0)
        terminated(host, sizeof(host));
    if (tt_parse_port_range(s, &lo, &hi, err) == 0 && (lo == 0 || lo > hi))
        abort();
    (void)tt_parse_duration(s, &ms, err);
    struct tt_redis_url ru;
    if (tt_config_parse_redis_url(s, &ru, err) == 0) {
        terminated(ru.host, sizeof(ru.host));
        terminated(ru.password, sizeof(ru.password));
        terminated(ru.master, sizeof(ru.master));
        if (ru.db > 15 || ru.nsentinels > TT_REDIS_MAX_SENTINELS)
            abort();
        if (ru.sentinel && (ru.nsentinels == 0 || ru.master[0] == '\0'))
            abort();
        if (!ru.sentinel && (ru.host[0] == '\0' || ru.port == 0 || ru.nsentinels != 0))
            abort();
        for (size_t i = 0; i < ru.nsentinels; i++) {
            terminated(ru.sentinels[i].host, sizeof(ru.sentinels[i].host));
            if (ru.sentinels[i].host[0] == '\0' || ru.sentinels[i].port == 0)
                abort();
        }
    } else {
        terminated(err, sizeof(err));
    }
    return 0;
}
