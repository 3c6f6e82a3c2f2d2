/* fuzz_httpproxy.c - libFuzzer target for the relay's request filter (src/relay/httpproxy.c
 * over headparse.c): a keep-alive browser connection's bytes, fed to the filter once whole and
 * once cut into pieces chosen by the first input byte. Both runs must succeed or both fail (with
 * one of the listed errors), and when both succeed they must have sent the device the same
 * bytes: the filter does not depend on how the network cuts its input. Every emitted piece
 * is read (any over-read shows under ASan), and the filter's buffer is given back (LSan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/httpproxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_MAX (1u << 20)

struct sink {
    uint8_t *buf;
    size_t len;
    size_t calls;
};

static int collect(void *ud, const uint8_t *p, size_t len)
{
    struct sink *s = ud;
    if (len == 0)
        abort(); /* nothing to send is never emitted */
    s->calls++;
    if (s->len + len <= OUT_MAX)
        memcpy(s->buf + s->len, p, len);
    s->len += len;
    return 0;
}

static int run(const uint8_t *data, size_t size, uint32_t seed, struct sink *s)
{
    static struct tt_httpproxy x;
    tt_httpproxy_init(&x, "k3j9x2mq.localhost:8080", "198.51.100.7");
    int rc = 0;
    size_t off = 0;
    while (off < size) {
        size_t piece = size - off;
        if (seed != 0) {
            seed = seed * 1103515245u + 12345u;
            size_t k = 1 + (seed >> 16) % 301;
            if (k < piece)
                piece = k;
        }
        rc = tt_httpproxy_feed(&x, data + off, piece, collect, s);
        if (rc != 0)
            break;
        off += piece;
    }
    if (rc != 0 && rc != TETHER_ERR_HTTP && rc != TETHER_ERR_TOO_LARGE &&
        rc != TETHER_ERR_NOT_FOUND)
        abort();
    tt_httpproxy_reset(&x);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sink whole, split;
    if (whole.buf == NULL) {
        whole.buf = malloc(OUT_MAX);
        split.buf = malloc(OUT_MAX);
        if (whole.buf == NULL || split.buf == NULL)
            abort();
    }
    if (size < 1)
        return 0;
    uint32_t seed = 1 + data[0];
    data++;
    size--;
    whole.len = whole.calls = 0;
    split.len = split.calls = 0;
    int a = run(data, size, 0, &whole);
    int b = run(data, size, seed, &split);
    /* Both fail or neither does. Which error may differ: a request target over the limit is
     * seen piece by piece (414), while a whole read may meet a bad byte first (400). */
    if ((a == 0) != (b == 0))
        abort();
    if (a == 0 && (whole.len != split.len ||
                   memcmp(whole.buf, split.buf, whole.len < OUT_MAX ? whole.len : OUT_MAX) != 0))
        abort();
    return 0;
}
