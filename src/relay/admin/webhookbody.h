/* webhookbody.h - the pure parts of the relay's webhooks (webhook.h; SPEC "tetherd",
 * --webhook): the --webhook URL check, the JSON body of one device event, its signature, the
 * HTTP request that carries it, the reading of the receiver's status line, and the retry
 * schedule. No I/O, no clock, no globals: the caller passes the time and the randomness. */
#ifndef TT_WEBHOOKBODY_H
#define TT_WEBHOOKBODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <http_parser.h>
#include "common/util.h"

/* Longest body: the five fields at their longest (a name and a label of at most 64 bytes,
 * each byte escaped to \u00XX at worst, a node id of 64) fit with room to spare. */
#define TT_WEBHOOK_BODY_MAX 1024
/* Longest request head (the path of the URL is at most 1023 bytes). */
#define TT_WEBHOOK_HEAD_MAX 2048
/* Longest secret (--webhook-secret, --webhook-secret-file, TETHER_WEBHOOK_SECRET). */
#define TT_WEBHOOK_SECRET_MAX 256
/* Longest --webhook URL. */
#define TT_WEBHOOK_URL_MAX 1024
/* "sha256=" and 64 hex digits. */
#define TT_WEBHOOK_SIG_LEN (7 + 64)
/* The retry schedule: the first retry after about 1 s, doubling up to 60 s (tt_webhook_backoff). */
#define TT_WEBHOOK_BACKOFF_FIRST_MS 1000
#define TT_WEBHOOK_BACKOFF_MAX_MS 60000
/* The receiver's answer head is read up to this many bytes (a longer one fails the attempt). */
#define TT_WEBHOOK_RESP_MAX (16 * 1024)

/* A checked --webhook URL. */
struct tt_webhook_url {
    bool tls;                      /* https */
    char host[TT_HOSTLEN];         /* a name or an IP literal, without brackets */
    uint16_t port;                 /* explicit, or 80 / 443 */
    char hostport[TT_HOSTLEN + 8]; /* the Host header: "host", "host:port", "[v6]:port" */
    char path[1024];               /* path and query, "/" when the URL has none */
};

/* Checks s as a --webhook URL: http://HOST[:PORT][/PATH][?QUERY] or https://..., HOST a name
 * or an IP literal; no user info (a password would be in the process list), no fragment
 * taken. Returns 0, or -1 with a one-line message in err ("--webhook: ..."). */
int tt_webhook_parse_url(const char *s, struct tt_webhook_url *u, char err[TT_ERRLEN]);

/* Writes the body of one event into out[TT_WEBHOOK_BODY_MAX] (NUL-terminated), with jansson,
 * the keys in the order SPEC gives them:
 *   {"event":"online","device":"NAME","label":"LABEL","node":"ID"|null,"time":"ISO-8601"}
 * event is one of online, offline, expired, takeover, deleted; node NULL (or "") on a single
 * relay; time_ms the event's time (unix ms), written "2026-12-07T10:00:00Z" (UTC, as the admin
 * API and the audit log write times).
 * Returns the length, or -1 (out of memory, or longer than the buffer: names this long do not
 * exist). */
int tt_webhook_body(const char *event, const char *device, const char *label, const char *node,
                    int64_t time_ms, char out[TT_WEBHOOK_BODY_MAX]);

/* The X-Tether-Signature value of body[0..len): "sha256=" and the HMAC-SHA256 of the body with
 * key[0..keylen) in lowercase hex, into sig[TT_WEBHOOK_SIG_LEN + 1]. Returns 0 or -1 (OpenSSL
 * failed). */
int tt_webhook_sign(const void *key, size_t keylen, const char *body, size_t len,
                    char sig[TT_WEBHOOK_SIG_LEN + 1]);

/* Writes the request head for body of blen bytes into out[outlen]: POST PATH HTTP/1.1, Host,
 * User-Agent: tetherd/VERSION, Content-Type: application/json, Content-Length, X-Tether-Event,
 * X-Tether-Signature (when sig is not NULL), Connection: close. Returns its length or -1 (too
 * long). */
int tt_webhook_head(const struct tt_webhook_url *u, const char *event, size_t blen, const char *sig,
                    char *out, size_t outlen);

/* The receiver's answer, read with http-parser (never by hand) up to the end of its head. */
struct tt_webhook_resp {
    http_parser p;
    http_parser_settings s;
    size_t seen; /* bytes fed so far */
    int status;  /* set once the head is whole */
    bool done;
};

void tt_webhook_resp_init(struct tt_webhook_resp *r);
/* Feeds data[0..n) of the answer. Returns the status code (101-999) once the head of the final
 * answer is whole (interim 1xx answers are skipped; what follows the head is not read),
 * 0 when more is needed, -1 for an answer that is not HTTP/1.x, or a head over
 * TT_WEBHOOK_RESP_MAX. eof true: the connection ended (data may be empty). */
int tt_webhook_resp_feed(struct tt_webhook_resp *r, const char *data, size_t n, bool eof);

/* The wait before retry number attempt (1 for the first retry): base = 1 s doubled at each
 * attempt, at most 60 s, then a random point of [base/2, base] ("equal jitter", so that
 * relays that lost the same receiver do not come back all at once). rnd: a random number. */
uint64_t tt_webhook_backoff(unsigned attempt, uint32_t rnd);

#endif
