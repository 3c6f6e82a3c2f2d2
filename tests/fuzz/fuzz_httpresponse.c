/* fuzz_httpresponse.c - libFuzzer target for the relay's response tracker
 * (tt_httpproxy_response in src/relay/http/httpproxy.c). Input: a split byte, a count byte and one
 * kind byte per request (GET, HEAD, Upgrade, CONNECT, POST with a body; a last kind may make a
 * refused request follow them); the rest is what the device sends back, any bytes. The
 * requests are fed to a fresh filter twice; the device's bytes are then fed once whole and
 * once cut into pieces chosen by the split byte. Both runs must agree on every outcome: the
 * bytes passed to the browser, the events, the tracking state, the requests still unanswered,
 * the filter's mode and the refusal's countdown: the tracker does not depend on how the
 * network cuts the device's bytes, and never crashes or over-reads on any of them; a response
 * that sets the relay's cookie (httpproxy.h: cut) is cut in both. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/http/httpproxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct outcome {
    size_t passed;
    unsigned events;
    uint8_t track, mode, npending;
    unsigned owed;
    int refused;
    bool cut;
};

static int drop(void *ud, const uint8_t *p, size_t len)
{
    (void)ud;
    (void)p;
    (void)len;
    return 0;
}

/* The browser's side: n requests of the given kinds. */
static size_t requests(const uint8_t *kinds, size_t n, char *out, size_t cap)
{
    static const char *const forms[] = {
        "GET /g HTTP/1.1\r\nHost: k3j9x2mq.localhost\r\n\r\n",
        "HEAD /h HTTP/1.1\r\nHost: k3j9x2mq.localhost\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: k3j9x2mq.localhost\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\n\r\n",
        "CONNECT k3j9x2mq.localhost:80 HTTP/1.1\r\nHost: k3j9x2mq.localhost\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: k3j9x2mq.localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n0\r\n\r\n",
        "GET /bad\tx HTTP/1.1\r\nHost: k3j9x2mq.localhost\r\n\r\n",
    };
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        const char *f = forms[kinds[i] % (sizeof(forms) / sizeof(forms[0]))];
        size_t fl = strlen(f);
        if (fl > cap - len)
            break;
        memcpy(out + len, f, fl);
        len += fl;
    }
    return len;
}

static void run(const char *req, size_t reqlen, const uint8_t *rsp, size_t rsplen, uint32_t seed,
                struct outcome *o)
{
    static struct tt_httpproxy x;
    tt_httpproxy_init(&x, "k3j9x2mq.localhost", "198.51.100.7");
    (void)tt_httpproxy_feed(&x, (const uint8_t *)req, reqlen, drop, NULL);
    x.events = 0;
    memset(o, 0, sizeof(*o));
    size_t off = 0;
    while (off < rsplen) {
        size_t piece = rsplen - off;
        if (seed != 0) {
            seed = seed * 1103515245u + 12345u;
            size_t k = 1 + (seed >> 16) % 97;
            if (k < piece)
                piece = k;
        }
        size_t p = tt_httpproxy_response(&x, rsp + off, piece);
        if (p > piece)
            abort();
        if (p < piece && x.refused == 0 && !x.cut)
            abort(); /* only a refusal, or the relay's cookie set, cuts the device's bytes */
        o->passed += p;
        o->events |= x.events;
        x.events = 0;
        off += piece;
    }
    if (x.npending > TT_HTTPPROXY_MAX_PENDING || x.track > TT_HTTPPROXY_LOST ||
        x.mode > TT_HTTPPROXY_WAIT)
        abort();
    o->track = x.track;
    o->mode = x.mode;
    o->npending = x.npending;
    o->owed = x.owed;
    o->refused = x.refused;
    o->cut = x.cut;
    tt_httpproxy_reset(&x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char req[16384];
    if (size < 2)
        return 0;
    uint32_t seed = 1 + data[0];
    size_t n = 1 + data[1] % 40;
    data += 2;
    size -= 2;
    if (n > size)
        n = size;
    size_t reqlen = requests(data, n, req, sizeof(req));
    data += n;
    size -= n;
    struct outcome whole, split;
    run(req, reqlen, data, size, 0, &whole);
    run(req, reqlen, data, size, seed, &split);
    /* A response setting the relay's cookie is cut in both runs; the cut falls at the start of
     * the piece where its name ends, so a split run may pass a few bytes more of the name
     * (never its value: the unit tests check where). */
    if (whole.cut != split.cut || (whole.cut && split.passed < whole.passed))
        abort();
    if (whole.cut)
        split.passed = whole.passed;
    if (whole.passed != split.passed || whole.events != split.events ||
        whole.track != split.track || whole.mode != split.mode ||
        whole.npending != split.npending || whole.owed != split.owed ||
        whole.refused != split.refused)
        abort();
    return 0;
}
