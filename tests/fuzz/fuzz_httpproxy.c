/* fuzz_httpproxy.c - libFuzzer target for the relay's request filter (src/relay/http/httpproxy.c
 * over headparse.c): a keep-alive browser connection's bytes, fed to the filter once whole and
 * once cut into pieces chosen by the first input byte, as the pipe feeds it: what the filter
 * does not take is offered again after the device has answered (every request it has, or the
 * ones owed before a refusal: an empty 200 each, and to an Upgrade/CONNECT a 101/200 or a
 * refusal as the first byte's low bit says). Both runs must succeed or both fail (with one of
 * the listed errors), and when both succeed they must have sent the device the same bytes:
 * the filter, body re-framing included, does not depend on how the network cuts its input.
 * Every emitted piece is read (any over-read shows under ASan), and the filter's buffer is
 * given back (LSan). An owner's check is set (issue 10): a target "/A..." is answered by the
 * owner, "/H..." held until its body is known not to be the sign-in form; what the device gets
 * does not depend on the cuts either. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/http/httpproxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_MAX (1u << 20)
#define STALLED 1 /* the filter waits and no answer helps (tracking lost) */

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

/* The device answers what the filter waits for. Returns false when nothing was owed. */
static bool answer(struct tt_httpproxy *x, bool accept)
{
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    static const char no[] = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
    static const char sw[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
                             "Upgrade: websocket\r\n\r\n";
    unsigned n = x->refused ? x->owed : x->npending;
    if (n == 0 || x->track != TT_HTTPPROXY_TRACKING)
        return false;
    for (unsigned i = 0; i < n; i++) {
        const char *r = ok;
        if (i + 1 == n && x->mode == TT_HTTPPROXY_WAIT) {
            bool connect = x->hp.p.method == HTTP_CONNECT;
            r = !accept ? no : connect ? ok : sw;
        }
        size_t len = strlen(r);
        if (tt_httpproxy_response(x, (const uint8_t *)r, len) != len)
            abort(); /* every byte owed passes */
    }
    x->events = 0;
    return true;
}

/* The owner's check (a private service's, issue 10), from the request target: "/A..." is
 * answered by the owner, "/H..." held until its body is known not to be the sign-in form. */
static int check(void *ud, const struct tt_httpproxy *x, const uint8_t *head, size_t len)
{
    (void)ud;
    if (x->hp.url_off + 2 > len || x->hp.url_len < 2)
        return TT_HTTPPROXY_PASS;
    uint8_t c = head[x->hp.url_off + 1];
    return c == 'A' ? TT_HTTPPROXY_ANSWER : c == 'H' ? TT_HTTPPROXY_HOLD : TT_HTTPPROXY_PASS;
}

static int run(const uint8_t *data, size_t size, uint32_t seed, bool accept, struct sink *s)
{
    static struct tt_httpproxy x;
    tt_httpproxy_init(&x, "k3j9x2mq.localhost:8080", "198.51.100.7");
    x.check = check;
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
        tt_ssize r = tt_httpproxy_feed(&x, data + off, piece, collect, s);
        if (r < 0) {
            rc = (int)r;
            break;
        }
        if ((size_t)r > piece)
            abort();
        off += (size_t)r;
        if ((size_t)r < piece && !answer(&x, accept)) {
            /* the filter waits for nothing the device can give: it must stay that way */
            if (tt_httpproxy_feed(&x, data + off, size - off, collect, s) != 0)
                abort();
            rc = STALLED;
            break;
        }
    }
    if (rc == 0 && x.refused) {
        answer(&x, accept);
        rc = (int)tt_httpproxy_feed(&x, NULL, 0, collect, s);
    }
    if (rc != 0 && rc != STALLED && rc != TETHER_ERR_HTTP && rc != TETHER_ERR_TOO_LARGE &&
        rc != TETHER_ERR_NOT_FOUND && rc != TETHER_ERR_AUTH)
        abort();
    if ((rc == TETHER_ERR_AUTH) != (rc < 0 && x.local))
        abort(); /* the owner's answers, and only they, are local */
    if (rc < 0 && !x.local && (x.reason == TT_REFUSAL_NONE || x.reason >= TT_REFUSAL_COUNT))
        abort(); /* every refusal says why */
    if (x.npending > TT_HTTPPROXY_MAX_PENDING)
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
    bool accept = (data[0] & 1) != 0;
    data++;
    size--;
    whole.len = whole.calls = 0;
    split.len = split.calls = 0;
    int a = run(data, size, 0, accept, &whole);
    int b = run(data, size, seed, accept, &split);
    /* Both fail or neither does. Which error may differ: a request target over the limit is
     * seen piece by piece (414), while a whole read may meet a bad byte first (400). */
    if ((a < 0) != (b < 0) || (a == STALLED) != (b == STALLED))
        abort();
    if (a >= 0 && (whole.len != split.len ||
                   memcmp(whole.buf, split.buf, whole.len < OUT_MAX ? whole.len : OUT_MAX) != 0))
        abort();
    return 0;
}
