/* fuzz_wshs.c - libFuzzer target for the WebSocket opening handshake (src/common/wshs.c), both
 * sides, on every input:
 *   - the client side: tt_wshs_read_response must parse, ask for more or fail without reading
 *     past its input; a complete head lies inside the input; an accepted answer is a 101; a
 *     Retry-After is kept for a 503 or 429 only, and bounded;
 *   - the server side: the input read as an upgrade request (headparse.c, as the relay's
 *     listener reads it) goes through the relay's checks (tt_wsrequest_fill,
 *     tt_wshs_check_request): 0, 400 or 426 and nothing else; when it passes, the 101 the relay
 *     writes for its key is accepted by the client side;
 *   - the head reader both use (common/httphead.c, tt_httphead_parse) as a request and as an
 *     answer: see head_side. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/wshs.h"
#include "common/httphead.h"
#include "relay/http/headparse.h"
#include "relay/http/wsrequest.h"
#include "tether_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void client_side(const uint8_t *data, size_t size)
{
    struct tt_wshs_response r;
    int rc = tt_wshs_read_response(data, size, "dGhlIHNhbXBsZSBub25jZQ==", &r);
    if (rc == 0) {
        if (r.head_len == 0 || r.head_len > size)
            abort();
        if (r.accepted && r.status != 101)
            abort();
        if (memchr(r.location, '\0', sizeof(r.location)) == NULL)
            abort();
        if (r.retry_after > TT_WSHS_RETRY_AFTER_MAX ||
            (r.retry_after && r.status != 503 && r.status != 429))
            abort();
    } else if (rc != TETHER_ERR_AGAIN && rc != TETHER_ERR_HTTP) {
        abort();
    }
}

static void server_side(const uint8_t *data, size_t size)
{
    static uint8_t buf[TT_HEAD_MAX];
    static struct tt_headparse hp;
    if (size > TT_HEAD_MAX)
        size = TT_HEAD_MAX;
    memcpy(buf, data, size);
    tt_headparse_init(&hp);
    tt_headparse_begin(&hp, buf);
    enum tt_headparse_event ev;
    (void)tt_headparse_execute(&hp, buf, size, &ev);
    if (ev != TT_HEADPARSE_HEAD)
        return;
    struct tt_wshs_request rq;
    tt_wsrequest_fill(&hp, &rq);
    if ((rq.nkeys > 0) != (rq.key != NULL) || (rq.nversions > 0) != (rq.version != NULL))
        abort();
    int verdict = -1;
    int vrc = tt_wshs_check_request(&rq, &verdict);
    if ((vrc == TETHER_ERR_HANDSHAKE && verdict == 400) ||
        (vrc == TETHER_ERR_VERSION && verdict == 426))
        return;
    if (vrc != 0 || verdict != 0 || rq.keylen != TT_WS_KEYLEN)
        abort();
    char key[TT_WS_KEYLEN + 1], out[512];
    memcpy(key, rq.key, TT_WS_KEYLEN);
    key[TT_WS_KEYLEN] = '\0';
    struct tt_wshs_response r;
    int n = tt_wshs_server_response(out, sizeof(out), key, TT_WS_KEYLEN, false);
    if (n <= 0 || tt_wshs_read_response((const uint8_t *)out, (size_t)n, key, &r) != 0 ||
        !r.accepted || r.head_len != (size_t)n)
        abort();
}

/* The head reader under both (common/httphead.c), as a request and as an answer, with a bound
 * taken from the input's length: a whole head lies within the bound and the input, every
 * recorded offset lies within the head, reading just the head gives the same answer, and
 * "more needed" is never said at the bound. */
static void head_side(const uint8_t *data, size_t size)
{
    static struct tt_httphead h, h2;
    for (int kind = 0; kind < 2; kind++) {
        size_t max = size > 64 ? size - size % 64 : size + 1;
        int rc = tt_httphead_parse((enum tt_httphead_kind)kind, data, size, max, &h);
        if (rc == TETHER_ERR_AGAIN) {
            if (size >= max)
                abort();
            continue;
        }
        if (rc == TETHER_ERR_HTTP || rc == TETHER_ERR_TOO_LARGE)
            continue;
        if (rc != 0 || h.head_len == 0 || h.head_len > size || h.head_len > max ||
            h.nhdr > TT_HTTPHEAD_MAX_HEADERS)
            abort();
        if ((uint64_t)h.url_off + h.url_len > h.head_len ||
            (uint64_t)h.reason_off + h.reason_len > h.head_len)
            abort();
        if (kind == TT_HTTPHEAD_RESPONSE && (h.status < 100 || h.status > 999))
            abort();
        for (unsigned i = 0; i < h.nhdr; i++)
            if ((uint64_t)h.hdr[i].foff + h.hdr[i].flen > h.head_len ||
                (uint64_t)h.hdr[i].voff + h.hdr[i].vlen > h.head_len)
                abort();
        if (tt_httphead_parse((enum tt_httphead_kind)kind, data, h.head_len, h.head_len, &h2) !=
                0 ||
            h2.head_len != h.head_len || h2.status != h.status || h2.nhdr != h.nhdr)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    client_side(data, size);
    server_side(data, size);
    head_side(data, size);
    return 0;
}
