/* fuzz_limits.c - libFuzzer target for what the relay's abuse limits parse (src/relay/limits.c,
 * addrkey.c, config.c): a client address as a cluster node vouches for it ("IP", "IP:PORT",
 * "[IPv6]:PORT") turned into its per-address key, and the values of the limit flags
 * (--max-pending, --max-pending-per-addr, --max-streams-per-client, --body-timeout,
 * --body-min-rate, --tcp-idle-timeout). The first byte picks the flag; the rest is one NUL-free
 * string. A key is "" or a NUL-terminated address key; a flag value is accepted within its
 * range or refused with a NUL-terminated message naming the flag. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/lib/addrkey.h"
#include "relay/config.h"
#include "relay/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const flags[] = {
    "--max-pending",  "--max-pending-per-addr", "--max-streams-per-client",
    "--body-timeout", "--body-min-rate",        "--tcp-idle-timeout"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[512], key[TT_ADDRKEY_LEN], key2[TT_ADDRKEY_LEN], err[TT_ERRLEN];
    static struct tt_config cfg;

    if (size == 0)
        return 0;
    const char *flag = flags[data[0] % (sizeof(flags) / sizeof(flags[0]))];
    data++;
    size--;
    if (size >= sizeof(s))
        size = sizeof(s) - 1;
    memcpy(s, data, size);
    s[size] = '\0';
    if (strlen(s) != size)
        return 0; /* NUL-free strings only */

    tt_limits_key_of(s, key);
    if (memchr(key, '\0', sizeof(key)) == NULL)
        abort();
    /* a key is itself an address, or the /64 of one: never longer than the input allows */
    if (key[0] != '\0' && tt_addrkey_from_ip(s, key2) == 0 && strcmp(key, key2) != 0)
        abort();

    char *argv[] = {"tetherd", (char *)flag, s, NULL};
    int rc = tt_config_parse(&cfg, 3, argv, err);
    if (rc == 0) {
        if (cfg.max_pending > 10000000 || cfg.max_pending_per_addr > 10000000 ||
            cfg.max_streams_per_client > 65535 || cfg.body_timeout_ms > 3600000 ||
            cfg.body_min_rate > 1000000000 || cfg.tcp_idle_timeout_ms > 7ull * 86400000)
            abort();
    } else if (rc != -1 || memchr(err, '\0', sizeof(err)) == NULL || strstr(err, flag) == NULL) {
        abort();
    }
    return 0;
}
