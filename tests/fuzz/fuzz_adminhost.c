/* fuzz_adminhost.c - libFuzzer target for the admin listener's Host and Origin checks
 * (src/relay/admin/adminhost.c) and for the escaping of peer-chosen text in log lines
 * (src/common/log.c). Input: a split byte, then the bytes of a Host value and of an Origin value
 * (cut at the split), as a browser or an attacker would send them. The checks must not read past
 * the input; the escaped text must be NUL-terminated, within its buffer and printable ASCII. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "relay/admin/adminhost.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void printable(const char *s, size_t cap)
{
    const char *end = memchr(s, '\0', cap);
    if (end == NULL)
        abort();
    for (; s < end; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const listeners[][2] = {
        {"127.0.0.1", "127.0.0.1"}, {"::1", "::1"}, {"0.0.0.0", "192.0.2.7"}, {"::", NULL}};
    char out[TT_LOG_VALUE_MAX];
    if (size == 0)
        return 0;
    size_t split = data[0] % size;
    const char *host = (const char *)data + 1;
    size_t hlen = split, olen = size - 1 - split;
    const char *origin = host + hlen;
    /* exact-size copies so that ASan sees any read past the end */
    char *h = malloc(hlen ? hlen : 1), *o = malloc(olen ? olen : 1);
    if (!h || !o)
        abort();
    memcpy(h, host, hlen);
    memcpy(o, origin, olen);
    for (size_t i = 0; i < sizeof(listeners) / sizeof(listeners[0]); i++) {
        struct tt_adminhost a = {.listen_ip = listeners[i][0], .local_ip = listeners[i][1]};
        bool ok = tt_adminhost_host_ok(&a, h, hlen);
        /* an origin is never accepted for a Host that is not */
        if (tt_adminhost_origin_ok(&a, o, olen, h, hlen) && !ok)
            abort();
    }
    printable(tt_log_valuen(out, sizeof(out), h, hlen), sizeof(out));
    printable(tt_log_valuen(out, 16, o, olen), 16);
    free(h);
    free(o);
    return 0;
}
