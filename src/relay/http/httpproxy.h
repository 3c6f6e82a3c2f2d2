/* httpproxy.h - the relay's HTTP filter for one browser connection proxied to a device, both
 * ways.
 *
 * Requests (browser -> device): it finds each request head on the keep-alive connection,
 * checks it (headparse.h's strict rules; a Host naming the same device address; an
 * absolute-form target naming that host too), and rewrites it: Host kept; the client's
 * X-Forwarded-Proto/-Host, Forwarded, X-Real-IP and the other client-identity headers, and the
 * cluster's internal X-Tether-Cluster/-Client/-Proto, dropped; the client IP appended to
 * X-Forwarded-For; X-Forwarded-Proto: http (https when the browser came over TLS),
 * X-Forwarded-Host, an RFC 7239 Forwarded (for, host, proto) and X-Real-IP added; the relay's
 * own session cookie taken out of every Cookie header (cookie.h: a device never sees it; a
 * header left empty is dropped), whatever the service's access. Bodies are
 * re-framed: the head carries exactly one framing header the relay wrote (Content-Length: N or
 * Transfer-Encoding: chunked, every other Content-Length/Transfer-Encoding dropped);
 * Content-Length bodies pass as they are; chunked bodies are decoded and sent again as clean
 * chunks of the sizes the client declared (extensions and trailers dropped), so the device
 * sees the relay's framing only.
 *
 * Responses (device -> browser) are parsed, never changed: a FIFO of the requests sent and not
 * yet answered (at most TT_HTTPPROXY_MAX_PENDING; at the cap the filter takes no more client
 * bytes until responses come back) says which response has no body (to HEAD; 1xx, 204, 304)
 * and which may switch protocols. After a request with Upgrade (or a CONNECT) the filter holds
 * the client's further bytes until that request's response head: 101 (2xx for CONNECT) turns
 * the connection into a byte pipe both ways; anything else keeps it HTTP, request by request.
 * A response the parser cannot read stops the tracking: the device's bytes pass as they come
 * and the connection takes no new request (fail closed). A response whose Set-Cookie names the
 * relay's cookie (or, untracked, any bytes holding its name) is cut before its head ends and
 * the connection closed: a device never sets the relay's cookie (x->cut).
 *
 * Access: the owner may check every request head (x->check: a private service's session, per
 * request) and answer it itself, as a refusal, or have a small form body held back until it is
 * known not to be the relay's sign-in form (enum tt_httpproxy_verdict).
 *
 * Refusals: a request the filter refuses is answered only after the responses owed to the
 * valid requests before it have passed (the page follows them, then the connection closes).
 *
 * No I/O: output to the device goes to an emit callback (the pipe's tt_pipe_send); the caller
 * feeds the device's bytes to tt_httpproxy_response and passes on what it says. */
#ifndef TT_HTTPPROXY_H
#define TT_HTTPPROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <http_parser.h>
#include "common/util.h"
#include "common/pool.h"
#include "core/frame.h"
#include "relay/lib/cookie.h"
#include "relay/http/headparse.h"

/* Requests sent to the device and not answered yet, on one connection. */
#define TT_HTTPPROXY_MAX_PENDING 32

/* Passes bytes on; returns 0 or a negative tether_err. */
typedef int (*tt_httpproxy_emit)(void *ud, const uint8_t *data, size_t len);

/* What the owner's check (x->check) says about a request head. */
enum tt_httpproxy_verdict {
    TT_HTTPPROXY_PASS = 0,   /* send it on */
    TT_HTTPPROXY_ANSWER = 1, /* the owner answers it itself: it is refused (x->local), after the
                                responses owed before it; then the connection closes */
    TT_HTTPPROXY_HOLD = 2,   /* send it on once its body is seen (a Content-Length body of 1 to
                                TT_HTTPPROXY_HOLD_MAX bytes; any other passes at once), unless
                                that body is a sign-in form (fields user and secret, form.h):
                                then as ANSWER, and neither head nor body reaches the device */
};

/* Largest body TT_HTTPPROXY_HOLD holds back (the relay's sign-in form is far smaller). */
#define TT_HTTPPROXY_HOLD_MAX 4096u

struct tt_httpproxy;

/* The owner's check of each request head before it is sent: head[0..headlen) as the client
 * sent it, parsed in x->hp (Host already checked). Returns an enum tt_httpproxy_verdict; the
 * owner keeps the answer it would give. */
typedef int (*tt_httpproxy_check)(void *ud, const struct tt_httpproxy *x, const uint8_t *head,
                                  size_t headlen);

enum tt_httpproxy_mode {
    TT_HTTPPROXY_HEAD = 0, /* reading a request head (or between requests) */
    TT_HTTPPROXY_BODY = 1, /* passing a request body */
    TT_HTTPPROXY_RAW = 2,  /* after an accepted upgrade: everything passes */
    TT_HTTPPROXY_WAIT = 3, /* an Upgrade or CONNECT request was sent: the client's bytes wait
                              for the device's answer */
};

enum tt_httpproxy_track {
    TT_HTTPPROXY_TRACKING = 0, /* responses are parsed */
    TT_HTTPPROXY_SWITCHED = 1, /* the device switched protocols: nothing is parsed any more */
    TT_HTTPPROXY_LOST = 2,     /* a response could not be read: bytes pass, no new request */
};

/* Events, in x->events (set by tt_httpproxy_feed and tt_httpproxy_response; the caller reads
 * and clears them after each call). */
#define TT_HTTPPROXY_EV_RESUME 1u   /* feed the client bytes the filter left again */
#define TT_HTTPPROXY_EV_DECLINED 2u /* an Upgrade/CONNECT answered with something else */
#define TT_HTTPPROXY_EV_LOST 4u     /* tracking lost (see above) */
#define TT_HTTPPROXY_EV_FULL 8u     /* the filter stopped at TT_HTTPPROXY_MAX_PENDING */
#define TT_HTTPPROXY_EV_SWITCHED 16u

struct tt_httpproxy {
    struct tt_headparse hp;
    uint8_t mode;          /* enum tt_httpproxy_mode */
    uint8_t track;         /* enum tt_httpproxy_track */
    uint8_t reason;        /* enum tt_http_refusal of the refusal, once refused */
    char host[TT_HOSTLEN]; /* normalized Host every request must carry */
    char client_ip[64];    /* appended to X-Forwarded-For */
    bool https;            /* the browser came over TLS: X-Forwarded-Proto: https */
    struct tt_chunk *head; /* the head being read (pool chunk), only while it holds bytes */
    size_t hlen;
    uint64_t requests; /* heads rewritten so far */
    unsigned events;   /* TT_HTTPPROXY_EV_* */

    /* while feeding: where output goes (the body callback needs it) */
    tt_httpproxy_emit emit;
    void *ud;

    /* responses */
    http_parser rp;
    uint8_t pending[TT_HTTPPROXY_MAX_PENDING]; /* what each unanswered request was, oldest
                                                  first from pfirst (a ring) */
    uint8_t pfirst, npending;
    bool switching;      /* the response being read switches protocols once its head ends */
    bool declined_early; /* the Upgrade/CONNECT request being sent was declined already */
    int refused;         /* a refusal (tether_err) waiting for the responses owed before it */
    unsigned owed;       /* responses still owed before the refusal page */

    /* The owner's check of every request head (NULL: all pass) and its user data. */
    tt_httpproxy_check check;
    void *check_ud;
    bool local; /* the refusal is the owner's own answer (TT_HTTPPROXY_ANSWER): no page of ours */
    /* A request held by TT_HTTPPROXY_HOLD: its rewritten head (held_head bytes) then its body
     * so far, in a pool chunk; held_left body bytes still to come. */
    struct tt_chunk *held;
    size_t held_head, held_len, held_left;

    /* A response that sets the relay's cookie (cookie.h) is cut inside its head: the bytes
     * before the cut pass, none after; the connection then ends (the next feed fails). */
    bool cut;
    const uint8_t *rsp_base; /* the input of the tt_httpproxy_response call under way */
    size_t cut_at;           /* offset of the cut in it */
    uint8_t rsp_hstate;      /* 0 none, 1 in a header name, 2 in a header value */
    uint8_t field_pos;       /* bytes of the header name matched against "set-cookie" */
    bool field_ok;           /* ...and so far they match */
    bool value_sc;           /* the value being read is a Set-Cookie's */
    uint8_t lost_match;      /* untracked bytes (TT_HTTPPROXY_LOST): how much of the cookie's
                                name the last ones matched */
    struct tt_cookie_scan scan;
};

/* x->cut: the device tried to set the relay's cookie. tt_httpproxy_feed then fails with
 * TETHER_ERR_PROTO (no page: the browser has part of a response head). */

/* Prepares x for a connection whose requests must carry Host host (normalized form, see
 * route.h) from client_ip, over plain HTTP (set x->https afterwards for TLS). x must not move
 * afterwards. Cannot fail. */
void tt_httpproxy_init(struct tt_httpproxy *x, const char *host, const char *client_ip);

/* Gives back x's buffer. x is unusable afterwards until tt_httpproxy_init. */
void tt_httpproxy_reset(struct tt_httpproxy *x);

/* Feeds in[0..len) read from the browser (len may be 0: after TT_HTTPPROXY_EV_RESUME with
 * nothing left over); what goes to the device is passed to emit. Returns the bytes taken
 * (0..len): the filter stops early while it waits for the device (an Upgrade/CONNECT request
 * unanswered, TT_HTTPPROXY_MAX_PENDING requests unanswered, a refusal waiting for the
 * responses owed before it, tracking lost); the caller offers the rest again, and stops
 * reading the browser meanwhile, once an event says TT_HTTPPROXY_EV_RESUME. What it sends
 * does not depend on how the input is cut.
 * Returns a negative error when a request is refused and nothing more is owed to the browser
 * (answer with tt_httpstats_page(x->reason), or 503 when x->reason is TT_REFUSAL_NONE: the
 * relay's own failure; no page when tracking was lost; then close):
 * TETHER_ERR_HTTP (malformed, a Host missing, or a request naming another host),
 * _TOO_LARGE (head over TT_HEAD_MAX, too many headers, a target over TT_URI_MAX), _NOMEM, or
 * emit's error. After an error x only accepts tt_httpproxy_reset. */
tt_ssize tt_httpproxy_feed(struct tt_httpproxy *x, const uint8_t *in, size_t len,
                           tt_httpproxy_emit emit, void *ud);

/* Feeds in[0..len) from the device (any split), which passes to the browser unchanged.
 * Returns how many of those bytes go to the browser: len, except once a refusal waits and the
 * last response owed before it has ended inside in (the bytes up to its end; 0 for every
 * later call). Sets events in x->events. Cannot fail: what it cannot read loses the tracking
 * (TT_HTTPPROXY_EV_LOST). */
size_t tt_httpproxy_response(struct tt_httpproxy *x, const uint8_t *in, size_t len);

/* Writes the rewritten form of one head (head[0..headlen), parsed into hp) into out, with
 * X-Forwarded-Proto https if https, else http, and the body framing hp found.
 * Returns its length, or TETHER_ERR_AGAIN when outlen is too small (headlen + 2 * TT_HOSTLEN
 * + 1024 is always enough), TETHER_ERR_INVAL when hp holds no request line. */
tt_ssize tt_httpproxy_rewrite(const uint8_t *head, size_t headlen, const struct tt_headparse *hp,
                              const char *client_ip, bool https, uint8_t *out, size_t outlen);

#endif
