/* webhookbody.c - the pure parts of the relay's webhooks (webhookbody.h): URL check, JSON body
 * (jansson), HMAC-SHA256 signature (OpenSSL), request head, answer status (http-parser) and the
 * retry schedule. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "common/compat.h"
#include "relay/config.h"
#include "relay/admin/webhookbody.h"

int tt_webhook_parse_url(const char *s, struct tt_webhook_url *u, char err[TT_ERRLEN])
{
    static const char *const schemes[] = {"http", "https", NULL};
    struct tt_url pu;
    char e[TT_ERRLEN];
    memset(u, 0, sizeof(*u));
    if (strlen(s) > TT_WEBHOOK_URL_MAX) {
        snprintf(err, TT_ERRLEN, "--webhook: URL longer than %d bytes", TT_WEBHOOK_URL_MAX);
        return -1;
    }
    if (tt_parse_url(s, schemes, &pu, e) != 0) {
        snprintf(err, TT_ERRLEN, "--webhook: %s (want http://HOST[:PORT][/PATH])", e);
        return -1;
    }
    if (pu.user[0] || pu.pass[0] || strchr(s, '@')) {
        snprintf(err, TT_ERRLEN, "--webhook: user info in the URL is not supported");
        return -1;
    }
    for (const char *p = pu.path; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            snprintf(err, TT_ERRLEN, "--webhook: spaces and control characters not allowed");
            return -1;
        }
    }
    u->tls = strcmp(pu.scheme, "https") == 0;
    snprintf(u->host, sizeof(u->host), "%s", pu.host);
    u->port = pu.port;
    snprintf(u->path, sizeof(u->path), "%s", pu.path);
    bool v6 = strchr(u->host, ':') != NULL;
    if (pu.port_explicit)
        snprintf(u->hostport, sizeof(u->hostport), "%s%s%s:%u", v6 ? "[" : "", u->host,
                 v6 ? "]" : "", (unsigned)u->port);
    else
        snprintf(u->hostport, sizeof(u->hostport), "%s%s%s", v6 ? "[" : "", u->host, v6 ? "]" : "");
    return 0;
}

int tt_webhook_body(const char *event, const char *device, const char *label, const char *node,
                    int64_t time_ms, char out[TT_WEBHOOK_BODY_MAX])
{
    char t[32];
    time_t secs = (time_t)(time_ms / 1000);
    struct tm tm;
    if (!tt_gmtime(&secs, &tm) || strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return -1;
    /* jansson keeps the keys in the order they were added */
    json_t *o = json_object();
    if (!o)
        return -1;
    int bad = json_object_set_new(o, "event", json_string(event));
    bad |= json_object_set_new(o, "device", json_string(device));
    bad |= json_object_set_new(o, "label", json_string(label));
    bad |= json_object_set_new(o, "node", node && node[0] ? json_string(node) : json_null());
    bad |= json_object_set_new(o, "time", json_string(t));
    size_t n = bad ? 0 : json_dumpb(o, out, TT_WEBHOOK_BODY_MAX - 1, JSON_COMPACT);
    json_decref(o);
    if (n == 0 || n >= TT_WEBHOOK_BODY_MAX)
        return -1;
    out[n] = '\0';
    return (int)n;
}

int tt_webhook_sign(const void *key, size_t keylen, const char *body, size_t len,
                    char sig[TT_WEBHOOK_SIG_LEN + 1])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)body, len, mac, &maclen) ||
        maclen != 32)
        return -1;
    static const char hex[] = "0123456789abcdef";
    memcpy(sig, "sha256=", 7);
    for (unsigned i = 0; i < maclen; i++) {
        sig[7 + 2 * i] = hex[mac[i] >> 4];
        sig[8 + 2 * i] = hex[mac[i] & 15];
    }
    sig[TT_WEBHOOK_SIG_LEN] = '\0';
    return 0;
}

int tt_webhook_head(const struct tt_webhook_url *u, const char *event, size_t blen, const char *sig,
                    char *out, size_t outlen)
{
    int n = snprintf(out, outlen,
                     "POST %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "User-Agent: tetherd/" TT_RELAY_VERSION "\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n"
                     "X-Tether-Event: %s\r\n"
                     "%s%s%s"
                     "Connection: close\r\n"
                     "\r\n",
                     u->path, u->hostport, blen, event, sig ? "X-Tether-Signature: " : "",
                     sig ? sig : "", sig ? "\r\n" : "");
    return n < 0 || (size_t)n >= outlen ? -1 : n;
}

static int on_head_done(http_parser *p)
{
    struct tt_webhook_resp *r = p->data;
    /* an interim answer (100 Continue, 102, 103): the final one follows */
    if (p->status_code >= 100 && p->status_code <= 199 && p->status_code != 101)
        return 0;
    r->status = (int)p->status_code;
    r->done = true;
    http_parser_pause(p, 1); /* the head is all we read: stop here, whatever follows */
    return 0;
}

void tt_webhook_resp_init(struct tt_webhook_resp *r)
{
    memset(r, 0, sizeof(*r));
    http_parser_init(&r->p, HTTP_RESPONSE);
    r->p.data = r;
    http_parser_settings_init(&r->s);
    r->s.on_headers_complete = on_head_done;
}

int tt_webhook_resp_feed(struct tt_webhook_resp *r, const char *data, size_t n, bool eof)
{
    if (r->done)
        return r->status;
    if (n > 0) {
        size_t used = http_parser_execute(&r->p, &r->s, data, n);
        r->seen += used;
        if (r->done)
            return r->status >= 100 && r->status <= 999 ? r->status : -1;
        if (HTTP_PARSER_ERRNO(&r->p) != HPE_OK || used != n)
            return -1;
    }
    if (r->seen > TT_WEBHOOK_RESP_MAX || eof)
        return -1;
    return 0;
}

uint64_t tt_webhook_backoff(unsigned attempt, uint32_t rnd)
{
    uint64_t base = TT_WEBHOOK_BACKOFF_FIRST_MS;
    for (unsigned i = 1; i < attempt && base < TT_WEBHOOK_BACKOFF_MAX_MS; i++)
        base *= 2;
    if (base > TT_WEBHOOK_BACKOFF_MAX_MS)
        base = TT_WEBHOOK_BACKOFF_MAX_MS;
    return base / 2 + rnd % (base / 2 + 1);
}
