/* wshs.c - the WebSocket opening handshake (RFC 6455 section 4): the client's request, the
 * server's 101 answer, key/accept computation (OpenSSL SHA-1 + base64) and the check of the
 * server's answer (common/httphead.c, over http-parser). No I/O, no allocation. */
#include "common/wshs.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "common/httphead.h"
#include "common/util.h"
#include "core/frame.h"
#include "tether_err.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WSHS_MAX_HEAD (16 * 1024)

int tt_wshs_make_key(char key[TT_WS_KEYLEN + 1])
{
    uint8_t raw[16];
    if (tt_random_bytes(raw, sizeof(raw)) != 0)
        return TETHER_ERR_IO;
    if (EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw)) != TT_WS_KEYLEN)
        return TETHER_ERR_IO;
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
        return TETHER_ERR_NOMEM;
    ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 && EVP_DigestUpdate(ctx, key, keylen) == 1 &&
         EVP_DigestUpdate(ctx, WS_GUID, sizeof(WS_GUID) - 1) == 1 &&
         EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 20;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return TETHER_ERR_IO;
    if (EVP_EncodeBlock((unsigned char *)accept, md, 20) != TT_WS_ACCEPTLEN)
        return TETHER_ERR_IO;
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
        return TETHER_ERR_TOO_LARGE;
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
        return TETHER_ERR_TOO_LARGE;
    return n;
}

/* The value of the one header named name of h: false when it is missing or repeated (a second
 * Sec-WebSocket-Accept, Upgrade or Retry-After is never valid: which one would count?). */
static bool one(const struct tt_httphead *h, const uint8_t *in, const char *name, const uint8_t **v,
                size_t *n)
{
    return tt_httphead_find(h, in, name, v, n) == 1;
}

static bool equals(const uint8_t *v, size_t n, const char *s)
{
    return n == strlen(s) && strncasecmp((const char *)v, s, n) == 0;
}

/* True when some Connection header of h holds the token "upgrade" (repeated headers are one
 * comma-separated list, RFC 9110 5.3). */
static bool connection_upgrade(const struct tt_httphead *h, const uint8_t *in)
{
    for (unsigned i = 0; i < h->nhdr; i++) {
        const struct tt_head_hdr *x = &h->hdr[i];
        if (x->flen == 10 && strncasecmp((const char *)in + x->foff, "connection", 10) == 0 &&
            tt_httphead_has_token(in + x->voff, x->vlen, "upgrade"))
            return true;
    }
    return false;
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

int tt_wshs_read_response(const uint8_t *in, size_t len, const char *key,
                          struct tt_wshs_response *r)
{
    return tt_wshs_read_response_ex(in, len, key, NULL, r);
}

int tt_wshs_read_response_ex(const uint8_t *in, size_t len, const char *key,
                             const char *subprotocol, struct tt_wshs_response *r)
{
    struct tt_httphead h;
    const uint8_t *v;
    size_t n;

    memset(r, 0, sizeof(*r));
    int rc = tt_httphead_parse(TT_HTTPHEAD_RESPONSE, in, len, WSHS_MAX_HEAD, &h);
    if (rc == TETHER_ERR_TOO_LARGE)
        rc = TETHER_ERR_HTTP;
    if (rc != 0)
        return rc;
    r->status = h.status;
    r->head_len = h.head_len;
    r->content_length = h.content_length;
    if (tt_httphead_find(&h, in, "content-type", &v, &n) > 0)
        r->text_plain = n >= 10 && strncasecmp((const char *)v, "text/plain", 10) == 0;
    if ((r->status == 503 || r->status == 429) && one(&h, in, "retry-after", &v, &n))
        r->retry_after = tt_wshs_retry_after((const char *)v, n);
    if (r->status >= 300 && r->status < 400 && one(&h, in, "location", &v, &n) &&
        n < sizeof(r->location)) {
        memcpy(r->location, v, n);
        r->location[n] = '\0';
    }
    if (r->status == 101 && key != NULL) {
        char want[TT_WS_ACCEPTLEN + 1];
        const uint8_t *up, *acc, *proto = NULL;
        size_t uplen, acclen, protolen = 0;
        unsigned nproto = tt_httphead_find(&h, in, "sec-websocket-protocol", &proto, &protolen);
        bool proto_ok = nproto > 1            ? false
                        : subprotocol != NULL ? nproto == 1 && equals(proto, protolen, subprotocol)
                                              : nproto == 0 || protolen == 0 ||
                                                    equals(proto, protolen, TT_WS_SUBPROTOCOL);
        r->accepted = one(&h, in, "upgrade", &up, &uplen) && equals(up, uplen, "websocket") &&
                      connection_upgrade(&h, in) && proto_ok &&
                      tt_wshs_accept(key, strlen(key), want) == 0 &&
                      one(&h, in, "sec-websocket-accept", &acc, &acclen) &&
                      acclen == TT_WS_ACCEPTLEN && memcmp(acc, want, TT_WS_ACCEPTLEN) == 0;
    }
    return 0;
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

int tt_wshs_check_request(const struct tt_wshs_request *rq, int *status)
{
    *status = 400;
    if (!rq->get || !rq->http11 || !rq->connection_upgrade || rq->nkeys != 1 ||
        !key_ok(rq->key, rq->keylen) || rq->nversions != 1)
        return TETHER_ERR_HANDSHAKE;
    const uint8_t *v = rq->version;
    size_t n = rq->versionlen;
    while (n > 0 && (v[0] == ' ' || v[0] == '\t'))
        v++, n--;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n != 2 || memcmp(v, "13", 2) != 0) {
        *status = 426;
        return TETHER_ERR_VERSION;
    }
    *status = 0;
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

    int rc = tt_wshs_accept(key, keylen, accept);
    if (rc != 0)
        return rc;
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
        return TETHER_ERR_TOO_LARGE;
    return n;
}
