/* fuzz_visitor.c - libFuzzer target for what a tether connect upgrade asks of the relay
 * (src/relay/device/visitor.c, docs/PROTOCOL.md 14.1) and for what the visitor reads of the relay's
 * answer (src/common/wshs.c with the visitor's subprotocol required). The input is read as a
 * request head (headparse.c, as the listener reads it); on a complete head, tt_visitor_parse must
 * give names of 1 to 64 printable bytes, a Basic user without ':' and a secret within its limit,
 * or a Bearer token inside the head, and nothing else. The same input read as the relay's answer
 * must parse, ask for more or fail without reading past it, and be accepted only as a 101. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/wshs.h"
#include "relay/http/headparse.h"
#include "relay/device/visitor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > TT_MAX_NAME)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((uint8_t)s[i] <= 0x20 || (uint8_t)s[i] >= 0x7f)
            abort();
}

static void request(const uint8_t *data, size_t size)
{
    static uint8_t buf[TT_HEAD_MAX];
    static struct tt_headparse hp;
    struct tt_visitor_request rq;
    enum tt_headparse_event ev;

    if (size > TT_HEAD_MAX)
        size = TT_HEAD_MAX;
    memcpy(buf, data, size);
    tt_headparse_init(&hp);
    tt_headparse_begin(&hp, buf);
    size_t used = tt_headparse_execute(&hp, buf, size, &ev);
    if (ev != TT_HEADPARSE_HEAD)
        return;
    (void)tt_visitor_is_upgrade(&hp);
    int rc = tt_visitor_parse(&hp, &rq);
    if (rc != 0) {
        if (rc != TETHER_ERR_HTTP)
            abort();
        return;
    }
    check_name(rq.device);
    check_name(rq.service);
    switch (rq.auth) {
    case TT_VISITOR_AUTH_NONE:
    case TT_VISITOR_AUTH_BAD:
        break;
    case TT_VISITOR_AUTH_BASIC:
        if (strlen(rq.user) < 1 || strchr(rq.user, ':') || rq.secret_len < 1 ||
            rq.secret_len > TT_USERS_SECRET_MAX)
            abort();
        break;
    case TT_VISITOR_AUTH_BEARER:
        if (rq.token_len < 1 || rq.token_len > TT_VISITOR_AUTH_MAX || rq.token < buf ||
            rq.token + rq.token_len > buf + used)
            abort();
        break;
    default:
        abort();
    }
    tt_visitor_request_wipe(&rq);
}

static void answer(const uint8_t *data, size_t size)
{
    struct tt_wshs_response r;
    int rc = tt_wshs_parse_response_ex(data, size,
                                       "dGhlIHNhbXBsZSBub25jZQ==", TT_WS_SUBPROTOCOL_CONNECT, &r);
    if (rc == 1) {
        if (r.head_len == 0 || r.head_len > size || (r.accepted && r.status != 101))
            abort();
    } else if (rc != 0 && rc != -1) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    request(data, size);
    answer(data, size);
    return 0;
}
