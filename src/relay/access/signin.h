/* signin.h - browser sign-in for private HTTP services (SPEC "Who may reach a device"; the
 * design and what a device's page can do in docs/DESIGN.md "Browser sign-in").
 *
 * Every request for an HTTP service that is not public (access.h) is classified here, the first
 * one of a connection at the listener (tt_signin_gate, from server.c) and each later one of a
 * keep-alive connection in the HTTP filter (tt_signin_check, from forward.c):
 *  - a live session (sessions.h) for this very host whose principal the service admits passes
 *    (the relay's cookie is taken out of it by the filter); made by another site's page
 *    (Sec-Fetch-Site same-site/cross-site other than a top-level GET navigation, or an Origin
 *    that is not the host's own) it is refused, 403;
 *  - without one: 401 and the sign-in page; a urlencoded POST with the fields user and secret
 *    is the sign-in attempt: checked off the loop (tt_access_verify; a grant token, "ttg_...",
 *    as the secret signs in as that grant, given with its user's name or none), answered 303
 *    back to the same URL with the session cookie (no Domain, HttpOnly, SameSite=Lax, Path=/,
 *    Max-Age the session's; over https Secure and the __Host- name), 401 with the page again
 *    when the user or the secret is wrong, 403 when no grant covers the service, 429 when the
 *    client's address is throttled, 503 when too many checks wait; every attempt writes an
 *    audit line; a POST naming another origin is refused, 403;
 *  - /.tether/signout on the device's host: GET shows a form to confirm, POST (from the host's
 *    own pages only) ends every session the request carries for the host, clears the cookie
 *    and closes the connections made under those sessions.
 * Cluster mode (sessions.h's async mode), where nothing here waits on the loop for Redis:
 *  - a first request (tt_signin_gate) whose cookies this node has never seen is held, unread,
 *    while Redis is read (tt_sessions_fetch), then classified again from the table; Redis not
 *    answering within TT_SESSIONS_WAIT_MS, unreachable, or TT_SESSIONS_WAIT_MAX requests held
 *    already: 503 with Retry-After (TT_SIGNINPAGE_UNAVAILABLE); a session Redis does not have:
 *    the sign-in page as without one. The held connection owns its job: it going (its head
 *    deadline, a shed, shutdown) cancels it;
 *  - a sign-in answers its 303 and cookie only once Redis acknowledged the session, else 503;
 *  - a sign-out ends the sessions on this node at once, then (at the listener) answers once
 *    Redis deleted them, or 503 (the cookie is then kept: signing out again finishes it);
 *  - a later request of a keep-alive connection (tt_signin_check) that would need to wait, for
 *    an unknown cookie or a sign-out, is answered 307 to its own URL (the connection closes):
 *    the browser sends it again on a new connection, held at the listener.
 * Runs on the loop thread. */
#ifndef TT_SIGNIN_H
#define TT_SIGNIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "relay/access/access.h"
#include "relay/http/headconn.h"
#include "relay/http/headparse.h"
#include "relay/access/sessions.h"

struct tt_relay;
struct tt_device;

/* The path of the sign-out page on every private host. */
#define TT_SIGNIN_SIGNOUT_PATH "/.tether/signout"
/* Largest sign-in form body read (a longer POST is not a sign-in: 401). */
#define TT_SIGNIN_BODY_MAX 4096u

/* What a request for a private service is (tt_signin_classify). */
enum tt_signin_verdict {
    TT_SIGNIN_PASS = 0,     /* a live session, admitted: pass */
    TT_SIGNIN_PASS_FORM,    /* the same, for a small urlencoded POST: its body must not be the
                               sign-in form (the filter holds it back to see) */
    TT_SIGNIN_NEEDED,       /* no live session: 401 and the sign-in page */
    TT_SIGNIN_ATTEMPT,      /* no live session, a urlencoded POST: a sign-in attempt */
    TT_SIGNIN_CROSS_SITE,   /* another site's request: 403 */
    TT_SIGNIN_SIGNOUT_FORM, /* GET (or other) /.tether/signout: 200, a form to confirm */
    TT_SIGNIN_SIGNOUT,      /* POST /.tether/signout from the host's own page: sign out */
    TT_SIGNIN_HOLD,         /* cluster mode: no live session this node knows, but a cookie it
                               has never seen: the request is held while Redis is read (never
                               returned by tt_signin_classify, which does not wait) */
};

/* One request head for a private service. */
struct tt_signin_req {
    const uint8_t *head; /* the head as the client sent it, parsed in hp */
    const struct tt_headparse *hp;
    const char *host; /* normalized Host (route.h) */
    bool https;       /* the browser came over TLS (at this node or the one that forwarded) */
    const char *device, *service;
};

/* Classifies q at now (unix ms). For PASS and PASS_FORM, *who and key get the session's
 * principal and key. */
enum tt_signin_verdict tt_signin_classify(struct tt_relay *r, const struct tt_signin_req *q,
                                          int64_t now, struct tt_principal *who,
                                          char key[TT_SESSION_KEY_LEN + 1]);

/* The listener's first request for private HTTP service svc of the online device d (hc is
 * consumed): passes it to the device with its principal (tt_forward_http_as), answers it, or
 * starts a sign-in attempt (the body is read, the socket kept until the check answers).
 * client_ip/client_port/https name the browser (as a forwarding cluster node vouches). */
void tt_signin_gate(struct tt_relay *r, struct tt_headconn *hc, struct tt_device *d, int svc,
                    const char *host, const char *client_ip, uint16_t client_port, bool https);

/* A later request of a proxied keep-alive connection (the filter's check, httpproxy.h): q
 * classified and, when the relay answers it itself, the whole answer rendered into *answer
 * (malloc'd, *answerlen bytes; the caller frees it) and a sign-out done. conn_who is the
 * connection's principal: a request passing under another one is answered 401. For PASS and
 * PASS_FORM, key gets the session's key. self is the connection's forward.c state: a sign-out
 * closes every other connection made under the session (tt_forward_close_session). Returns an
 * enum tt_httpproxy_verdict. */
int tt_signin_check(struct tt_relay *r, const struct tt_signin_req *q,
                    const struct tt_principal *conn_who, const void *self,
                    char key[TT_SESSION_KEY_LEN + 1], char **answer, size_t *answerlen);

/* Relay shutdown: sign-in attempts waiting for their check are dropped (sockets closed). */
void tt_signin_stop(struct tt_relay *r);

/* Appends the sign-in metrics (Prometheus text) to out[0..cap) at *len. */
void tt_signin_metrics(const struct tt_relay *r, char *out, size_t cap, size_t *len);

/* Counters (one set per process: the relay runs one loop). */
struct tt_signin_stats {
    uint64_t ok, wrong, forbidden, throttled, busy, refused_origin; /* sign-in attempts */
    uint64_t needed, cross_site;       /* requests answered 401 / refused 403 */
    uint64_t signouts, signin_repeats; /* sign-outs; sign-in forms sent while signed in */
    uint64_t pending, pending_max;     /* attempts waiting for their check now, and most */
    uint64_t held, held_total;         /* requests held for Redis (cluster mode) now, in all */
    uint64_t unavailable;              /* answered 503: the cluster's sessions did not answer */
    uint64_t redirected;               /* keep-alive requests sent to a new connection (307) */
};
extern struct tt_signin_stats tt_signin_stats;

#endif
