/* fuzz_url.c - libFuzzer target for the parsers of src/common/util.c that read user and
 * environment input: URLs (the proxy URL from HTTPS_PROXY among them), HOST:PORT, port ranges
 * and durations. The input is one NUL-free string; every result must be NUL-terminated and
 * within its field. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

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
    return 0;
}
