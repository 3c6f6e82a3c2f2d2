/* adminsignin.c - the dashboard's sign-in on the admin listener (adminsession.h): the form, the
 * session cookie, sign-out and the sessions' metrics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include "common/log.h"
#include "relay/admin/adminint.h"
#include "relay/core.h"
#include "relay/admin/adminsession.h"
#include "relay/lib/form.h"
#include "relay/access/signin.h"

/* ---- sign-in (adminsession.h) ---- */

void tt_admin_free(struct tt_relay *r)
{
    if (!r->admin_sessions)
        return;
    tt_adminsession_free(r->admin_sessions);
    free(r->admin_sessions);
    r->admin_sessions = NULL;
}

static struct tt_adminsession_set *sessions_of(struct tt_relay *r)
{
    if (!r->admin_sessions && (r->admin_sessions = malloc(sizeof(*r->admin_sessions))))
        tt_adminsession_init(r->admin_sessions);
    return r->admin_sessions;
}

/* The sign-in page (401; 429 when throttled). */
void tt_admin_signin_page(struct tt_headconn *hc, bool wrong, bool throttled)
{
    struct tt_adminbuf b = {.ok = true};
    tt_adminpage_signin(&b, wrong, throttled);
    if (b.ok)
        tt_admin_answer(hc, throttled ? "429 Too Many Requests" : "401 Unauthorized",
                        "text/html; charset=utf-8",
                        throttled ? TT_ADMINPAGE_HEADERS "Retry-After: 5\r\n"
                                  : TT_ADMINPAGE_HEADERS
                            "WWW-Authenticate: Bearer realm=\"tetherd\"\r\n",
                        b.p, b.len);
    else
        tt_admin_answer_oom(hc);
    free(b.p);
}

/* At most this many Cookie pairs named like the session's are checked per request. */
#define ADMIN_COOKIE_TRIES 8

/* The live session the request's Cookie headers carry: its slot, or -1; *v, *vlen its value. */
int tt_admin_session_of(struct tt_headconn *hc, struct tt_relay *r, const uint8_t **v, size_t *vlen)
{
    const uint8_t *vals[ADMIN_COOKIE_TRIES];
    size_t lens[ADMIN_COOKIE_TRIES], n = 0;
    if (!r->admin_sessions)
        return -1;
    for (uint32_t i = 0; i < hc->hp.nhdr && n < ADMIN_COOKIE_TRIES; i++) {
        const struct tt_head_hdr *h = &hc->hp.hdr[i];
        if (h->flen == 6 && strncasecmp((const char *)hc->data + h->foff, "cookie", 6) == 0) {
            vals[n] = hc->data + h->voff;
            lens[n++] = h->vlen;
        }
    }
    return tt_adminsession_from_cookies(r->admin_sessions, vals, lens, n, tt_relay_now_ms(), v,
                                        vlen);
}

/* The body of POST / (the sign-in form) is here: the token checked, a session made. */
static void signin_body(struct tt_headconn *hc, void *ud)
{
    struct tt_relay *r = ud;
    struct tt_adminsession_set *s = sessions_of(r);
    if (!s) {
        tt_admin_answer_oom(hc);
        return;
    }
    char key[TT_ADDRKEY_LEN], token[TT_MAX_TOKEN + 2];
    int64_t mono = (int64_t)uv_now(r->loop);
    tt_throttle_key(hc->peer_ip, key);
    struct tt_throttle_addr *e = tt_throttle_get(&s->throttle, key, true, mono);
    if (tt_throttle_blocked(e, mono)) {
        s->signin_throttled++;
        if (tt_throttle_note(&s->throttle, e, true, mono))
            TT_LOG(TT_LOG_WARN, "admin sign-in refused peer=%s reason=throttled", hc->peer_ip);
        tt_admin_signin_page(hc, false, true);
        return;
    }
    size_t tlen = 0;
    const uint8_t *body = hc->data + hc->headlen;
    int rc = tt_form_get(body, tt_headconn_body_len(hc), "token", token, sizeof(token), &tlen);
    size_t want = strlen(r->cfg.admin_token);
    bool same_len = rc == 0 && tlen == want;
    int diff = CRYPTO_memcmp(same_len ? token : r->cfg.admin_token, r->cfg.admin_token, want);
    tt_secret_wipe(token, sizeof(token));
    if (!same_len || diff != 0) {
        tt_throttle_fail(e, mono);
        tt_throttle_touch(&s->throttle, e, mono);
        s->signin_wrong++;
        if (tt_throttle_note(&s->throttle, e, false, mono))
            TT_LOG(TT_LOG_INFO, "admin sign-in refused peer=%s reason=token", hc->peer_ip);
        tt_admin_signin_page(hc, true, false);
        return;
    }
    char value[TT_ADMINSESSION_VALUE_LEN + 1], extra[256];
    uint64_t ttl = r->cfg.session_ttl_ms;
    if (tt_adminsession_create(s, tt_relay_now_ms(), ttl, value) != 0) {
        tt_admin_answer_oom(hc);
        return;
    }
    /* the admin listener speaks plain HTTP only: no Secure attribute (it would be dropped) */
    snprintf(extra, sizeof(extra),
             "Location: /\r\nSet-Cookie: " TT_ADMINSESSION_COOKIE
             "=%s; Path=/; Max-Age=%llu; HttpOnly; SameSite=Strict\r\n",
             value, (unsigned long long)(ttl / 1000));
    tt_secret_wipe(value, sizeof(value));
    TT_LOG(TT_LOG_INFO, "admin signed in peer=%s sessions=%zu", hc->peer_ip,
           tt_adminsession_count(s, tt_relay_now_ms()));
    tt_admin_answer(hc, "303 See Other", "text/plain; charset=utf-8", extra, "", 0);
    tt_secret_wipe(extra, sizeof(extra));
}

void tt_admin_signin_post(struct tt_headconn *hc, struct tt_relay *r)
{
    if (!r->cfg.admin_token[0]) {
        tt_admin_answer(hc, "303 See Other", "text/plain; charset=utf-8", "Location: /\r\n", "", 0);
        return;
    }
    const char *status;
    char why[64];
    if (!tt_admin_read_body(hc, r, TT_SIGNIN_BODY_MAX, signin_body, false, &status, why))
        tt_admin_answer_error(hc, status, NULL, why);
}

/* POST /signout: the session ends, the cookie is cleared. */
void tt_admin_signout(struct tt_headconn *hc, struct tt_relay *r, const uint8_t *v, size_t vlen)
{
    if (r->admin_sessions && v)
        tt_adminsession_end(r->admin_sessions, v, vlen, tt_relay_now_ms());
    tt_admin_answer(hc, "303 See Other", "text/plain; charset=utf-8",
                    "Location: /\r\nSet-Cookie: " TT_ADMINSESSION_COOKIE
                    "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict\r\n",
                    "", 0);
}

void tt_admin_session_metrics(struct tt_adminbuf *b, const struct tt_relay *r)
{
    const struct tt_adminsession_set *s = r->admin_sessions;
    tt_adminbuf_fmt(b,
                    "# HELP tether_admin_sessions Dashboard sign-in sessions alive (at most %d; "
                    "a new one past the cap replaces the oldest).\n"
                    "# TYPE tether_admin_sessions gauge\n"
                    "tether_admin_sessions %zu\n"
                    "# HELP tether_admin_sessions_evicted_total Dashboard sessions replaced at "
                    "the cap.\n"
                    "# TYPE tether_admin_sessions_evicted_total counter\n"
                    "tether_admin_sessions_evicted_total %llu\n",
                    TT_ADMINSESSION_MAX, s ? tt_adminsession_count(s, tt_relay_now_ms()) : 0,
                    (unsigned long long)(s ? s->evicted : 0));
    tt_adminbuf_fmt(b,
                    "# HELP tether_admin_signins_total Dashboard sign-ins with the admin token: "
                    "accepted (ok), wrong token (wrong), refused unchecked because the address "
                    "failed too often (throttled).\n"
                    "# TYPE tether_admin_signins_total counter\n"
                    "tether_admin_signins_total{result=\"ok\"} %llu\n"
                    "tether_admin_signins_total{result=\"wrong\"} %llu\n"
                    "tether_admin_signins_total{result=\"throttled\"} %llu\n",
                    (unsigned long long)(s ? s->created : 0),
                    (unsigned long long)(s ? s->signin_wrong : 0),
                    (unsigned long long)(s ? s->signin_throttled : 0));
}
