/* fuzz_wshs.c - libFuzzer target for the WebSocket opening handshake (src/common/wshs.c), both
 * sides, on every input:
 *   - the client side: tt_wshs_parse_response must parse, ask for more or fail without reading
 *     past its input; a complete head lies inside the input; an accepted answer is a 101; a
 *     Retry-After is kept for a 503 or 429 only, and bounded;
 *   - the server side: the input read as an upgrade request (headparse.c, as the relay's
 *     listener reads it) goes through the relay's checks (tt_server_ws_request,
 *     tt_wshs_check_request): 0, 400 or 426 and nothing else; when it passes, the 101 the relay
 *     writes for its key is accepted by the client side. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/wshs.h"
#include "relay/http/headparse.h"
#include "relay/http/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void client_side(const uint8_t *data, size_t size)
{
    struct tt_wshs_response r;
    int rc = tt_wshs_parse_response(data, size, "dGhlIHNhbXBsZSBub25jZQ==", &r);
    if (rc == 1) {
        if (r.head_len == 0 || r.head_len > size)
            abort();
        if (r.accepted && r.status != 101)
            abort();
        if (memchr(r.location, '\0', sizeof(r.location)) == NULL)
            abort();
        if (r.retry_after > TT_WSHS_RETRY_AFTER_MAX ||
            (r.retry_after && r.status != 503 && r.status != 429))
            abort();
    } else if (rc != 0 && rc != -1) {
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
    tt_server_ws_request(&hp, &rq);
    if ((rq.nkeys > 0) != (rq.key != NULL) || (rq.nversions > 0) != (rq.version != NULL))
        abort();
    int verdict = tt_wshs_check_request(&rq);
    if (verdict == 400 || verdict == 426)
        return;
    if (verdict != 0 || rq.keylen != TT_WS_KEYLEN)
        abort();
    char key[TT_WS_KEYLEN + 1], out[512];
    memcpy(key, rq.key, TT_WS_KEYLEN);
    key[TT_WS_KEYLEN] = '\0';
    struct tt_wshs_response r;
    int n = tt_wshs_server_response(out, sizeof(out), key, TT_WS_KEYLEN, false);
    if (n <= 0 || tt_wshs_parse_response((const uint8_t *)out, (size_t)n, key, &r) != 1 ||
        !r.accepted || r.head_len != (size_t)n)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    client_side(data, size);
    server_side(data, size);
    return 0;
}
