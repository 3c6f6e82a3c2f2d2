/* wshs.c - the WebSocket opening handshake (RFC 6455 section 4): the client's request, the
 * server's 101 answer, key/accept computation (OpenSSL SHA-1 + base64) and the check of the
 * server's answer (http-parser). No I/O, no allocation. */
#include "common/wshs.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>
#include <openssl/evp.h>

#include "common/util.h"
#include "core/frame.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WSHS_MAX_HEAD (16 * 1024)

int tt_wshs_make_key(char key[TT_WS_KEYLEN + 1])
{
    uint8_t raw[16];
    if (tt_random_bytes(raw, sizeof(raw)) != 0)
        return -1;
    if (EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw)) != TT_WS_KEYLEN)
        return -1;
    key[TT_WS_KEYLEN] = '\0';
    return 0;
}

int tt_wshs_accept(const char *key, size_t keylen, char accept[TT_WS_ACCEPTLEN + 1])
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok;

    if (ctx == NULL)
        return -1;
    ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 && EVP_DigestUpdate(ctx, key, keylen) == 1 &&
         EVP_DigestUpdate(ctx, WS_GUID, sizeof(WS_GUID) - 1) == 1 &&
         EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 20;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return -1;
    if (EVP_EncodeBlock((unsigned char *)accept, md, 20) != TT_WS_ACCEPTLEN)
        return -1;
    accept[TT_WS_ACCEPTLEN] = '\0';
    return 0;
}

int tt_wshs_client_request(char *out, size_t outlen, const char *host, uint16_t port,
                           bool default_port, const char *path, const char *key)
{
    return tt_wshs_client_request_ex(out, outlen, host, port, default_port, path, key, NULL, NULL);
}

int tt_wshs_client_request_ex(char *out, size_t outlen, const char *host, uint16_t port,
                              bool default_port, const char *path, const char *key,
                              const char *subprotocol, const char *extra)
{
    char hostbuf[TT_HOSTLEN + 8];
    bool v6 = strchr(host, ':') != NULL;
    int n;

    if (default_port)
        n = snprintf(hostbuf, sizeof(hostbuf), v6 ? "[%s]" : "%s", host);
    else
        n = snprintf(hostbuf, sizeof(hostbuf), v6 ? "[%s]:%u" : "%s:%u", host, (unsigned)port);
    if (n < 0 || (size_t)n >= sizeof(hostbuf))
        return -1;
    if (path == NULL || path[0] == '\0')
        path = "/";
    n = snprintf(out, outlen,
                 "GET %s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "Sec-WebSocket-Protocol: %s\r\n"
                 "%s"
                 "User-Agent: tether/1\r\n"
                 "\r\n",
                 path, hostbuf, key, subprotocol ? subprotocol : TT_WS_SUBPROTOCOL,
                 extra ? extra : "");
    if (n < 0 || (size_t)n >= outlen)
        return -1;
    return n;
}

/* Which header the parser is in, and what we keep of the answer. */
enum hdr_id {
    H_OTHER,
    H_UPGRADE,
    H_CONNECTION,
    H_ACCEPT,
    H_LOCATION,
    H_PROTOCOL,
    H_CTYPE,
    H_RETRY
};

struct resp_state {
    struct tt_wshs_response *r;
    char field[64];
    size_t fieldlen;
    bool in_value;
    enum hdr_id cur;
    char upgrade[64], connection[256], accept[64], protocol[64], ctype[64], retry[32];
    size_t upgradelen, connectionlen, acceptlen, locationlen, protocollen, ctypelen, retrylen;
    bool retry_bad; /* Retry-After too long or repeated: ignored */
    bool overflow;
    bool complete;
};

static void append(char *dst, size_t cap, size_t *len, const char *src, size_t n, bool *ovf)
{
    if (*len + n >= cap) {
        *ovf = true;
        n = *len < cap - 1 ? cap - 1 - *len : 0;
    }
    memcpy(dst + *len, src, n);
    *len += n;
    dst[*len] = '\0';
}

static enum hdr_id classify(const char *name)
{
    if (strcasecmp(name, "upgrade") == 0)
        return H_UPGRADE;
    if (strcasecmp(name, "connection") == 0)
        return H_CONNECTION;
    if (strcasecmp(name, "sec-websocket-accept") == 0)
        return H_ACCEPT;
    if (strcasecmp(name, "location") == 0)
        return H_LOCATION;
    if (strcasecmp(name, "sec-websocket-protocol") == 0)
        return H_PROTOCOL;
    if (strcasecmp(name, "content-type") == 0)
        return H_CTYPE;
    if (strcasecmp(name, "retry-after") == 0)
        return H_RETRY;
    return H_OTHER;
}

static int on_field(http_parser *p, const char *at, size_t len)
{
    struct resp_state *st = p->data;
    bool dummy = false;
    if (st->in_value) {
        st->in_value = false;
        st->fieldlen = 0;
        st->field[0] = '\0';
    }
    append(st->field, sizeof(st->field), &st->fieldlen, at, len, &dummy);
    return 0;
}

static int on_value(http_parser *p, const char *at, size_t len)
{
    struct resp_state *st = p->data;
    struct tt_wshs_response *r = st->r;
    if (!st->in_value) {
        /* A new header: a repeated one is joined with ", " as RFC 9110 allows. */
        st->in_value = true;
        st->cur = classify(st->field);
        if (st->cur == H_CONNECTION && st->connectionlen > 0)
            append(st->connection, sizeof(st->connection), &st->connectionlen, ", ", 2,
                   &st->overflow);
        else if (st->cur == H_UPGRADE && st->upgradelen > 0)
            append(st->upgrade, sizeof(st->upgrade), &st->upgradelen, ", ", 2, &st->overflow);
        else if (st->cur == H_ACCEPT && st->acceptlen > 0)
            st->overflow = true; /* two Accept headers: never valid */
        else if (st->cur == H_RETRY && st->retrylen > 0)
            st->retry_bad = true; /* two Retry-After headers: which one? neither */
    }
    switch (st->cur) {
    case H_UPGRADE:
        append(st->upgrade, sizeof(st->upgrade), &st->upgradelen, at, len, &st->overflow);
        break;
    case H_CONNECTION:
        append(st->connection, sizeof(st->connection), &st->connectionlen, at, len, &st->overflow);
        break;
    case H_ACCEPT:
        append(st->accept, sizeof(st->accept), &st->acceptlen, at, len, &st->overflow);
        break;
    case H_LOCATION:
        append(r->location, sizeof(r->location), &st->locationlen, at, len, &st->overflow);
        break;
    case H_PROTOCOL:
        append(st->protocol, sizeof(st->protocol), &st->protocollen, at, len, &st->overflow);
        break;
    case H_RETRY:
        append(st->retry, sizeof(st->retry), &st->retrylen, at, len, &st->retry_bad);
        break;
    case H_CTYPE: {
        bool ignored = false; /* a long type is cut, not an error */
        append(st->ctype, sizeof(st->ctype), &st->ctypelen, at, len, &ignored);
        break;
    }
    default:
        break;
    }
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct resp_state *st = p->data;
    st->complete = true;
    /* Stop here: what follows is WebSocket data, or a body we do not read. */
    http_parser_pause(p, 1);
    return 0;
}

/* True if the comma-separated list s holds token (case-insensitive, spaces trimmed). */
static bool has_token(const char *s, const char *token)
{
    size_t tlen = strlen(token);
    while (*s != '\0') {
        while (*s == ' ' || *s == '\t' || *s == ',')
            s++;
        const char *start = s;
        while (*s != '\0' && *s != ',')
            s++;
        const char *end = s;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if ((size_t)(end - start) == tlen && strncasecmp(start, token, tlen) == 0)
            return true;
    }
    return false;
}

/* Returns the length of the head (through its blank line) in in[0..len), or 0 if incomplete. */
static size_t head_length(const uint8_t *in, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (in[i] != '\n')
            continue;
        if (i + 1 < len && in[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && in[i + 1] == '\r' && in[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

uint32_t tt_wshs_retry_after(const char *v, size_t n)
{
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n == 0 || n > 9) /* an HTTP-date, nothing, or more than 999,999,999 s */
        return 0;
    uint32_t s = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 0;
        s = s * 10 + (uint32_t)(v[i] - '0');
    }
    return s > TT_WSHS_RETRY_AFTER_MAX ? TT_WSHS_RETRY_AFTER_MAX : s;
}

int tt_wshs_parse_response(const uint8_t *in, size_t len, const char *key,
                           struct tt_wshs_response *r)
{
    return tt_wshs_parse_response_ex(in, len, key, NULL, r);
}

int tt_wshs_parse_response_ex(const uint8_t *in, size_t len, const char *key,
                              const char *subprotocol, struct tt_wshs_response *r)
{
    static const http_parser_settings settings = {
        .on_header_field = on_field,
        .on_header_value = on_value,
        .on_headers_complete = on_headers_complete,
    };
    struct resp_state st;
    http_parser parser;
    size_t head;

    memset(r, 0, sizeof(*r));
    head = head_length(in, len > WSHS_MAX_HEAD ? WSHS_MAX_HEAD : len);
    if (head == 0)
        return len >= WSHS_MAX_HEAD ? -1 : 0;

    memset(&st, 0, sizeof(st));
    st.r = r;
    http_parser_init(&parser, HTTP_RESPONSE);
    parser.data = &st;
    (void)http_parser_execute(&parser, &settings, (const char *)in, head);
    if (!st.complete ||
        (HTTP_PARSER_ERRNO(&parser) != HPE_OK && HTTP_PARSER_ERRNO(&parser) != HPE_PAUSED))
        return -1;
    r->status = (int)parser.status_code;
    r->head_len = head;
    r->content_length = (parser.flags & F_CONTENTLENGTH) ? parser.content_length : UINT64_MAX;
    r->text_plain = strncasecmp(st.ctype, "text/plain", 10) == 0;
    if ((r->status == 503 || r->status == 429) && !st.retry_bad)
        r->retry_after = tt_wshs_retry_after(st.retry, st.retrylen);
    if (r->status < 300 || r->status >= 400 || st.overflow)
        r->location[0] = '\0';
    if (r->status == 101 && !st.overflow && key != NULL) {
        char want[TT_WS_ACCEPTLEN + 1];
        bool proto_ok = subprotocol != NULL
                            ? strcmp(st.protocol, subprotocol) == 0
                            : st.protocollen == 0 || strcmp(st.protocol, TT_WS_SUBPROTOCOL) == 0;
        r->accepted = strcasecmp(st.upgrade, "websocket") == 0 &&
                      has_token(st.connection, "upgrade") && proto_ok &&
                      tt_wshs_accept(key, strlen(key), want) == 0 &&
                      st.acceptlen == TT_WS_ACCEPTLEN && strcmp(st.accept, want) == 0;
    }
    return 1;
}

/* True if in[0..len) is the base64 of 16 bytes: 22 base64 characters, then "==". */
static bool key_ok(const uint8_t *in, size_t len)
{
    if (len != TT_WS_KEYLEN || in[22] != '=' || in[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++) {
        uint8_t c = in[i];
        bool b64 = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '+' || c == '/';
        if (!b64)
            return false;
    }
    return true;
}

int tt_wshs_check_request(const struct tt_wshs_request *rq)
{
    if (!rq->get || !rq->http11 || !rq->connection_upgrade || rq->nkeys != 1 ||
        !key_ok(rq->key, rq->keylen) || rq->nversions != 1)
        return 400;
    const uint8_t *v = rq->version;
    size_t n = rq->versionlen;
    while (n > 0 && (v[0] == ' ' || v[0] == '\t'))
        v++, n--;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n != 2 || memcmp(v, "13", 2) != 0)
        return 426;
    return 0;
}

int tt_wshs_server_response(char *out, size_t outlen, const char *key, size_t keylen,
                            bool subprotocol)
{
    return tt_wshs_server_response_ex(out, outlen, key, keylen,
                                      subprotocol ? TT_WS_SUBPROTOCOL : NULL);
}

int tt_wshs_server_response_ex(char *out, size_t outlen, const char *key, size_t keylen,
                               const char *subprotocol)
{
    char accept[TT_WS_ACCEPTLEN + 1];
    int n;

    if (tt_wshs_accept(key, keylen, accept) != 0)
        return -1;
    n = snprintf(out, outlen,
                 "HTTP/1.1 101 Switching Protocols\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\n"
                 "%s%s%s"
                 "\r\n",
                 accept, subprotocol ? "Sec-WebSocket-Protocol: " : "",
                 subprotocol ? subprotocol : "", subprotocol ? "\r\n" : "");
    if (n < 0 || (size_t)n >= outlen)
        return -1;
    return n;
}
