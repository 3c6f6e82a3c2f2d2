/* signin.c - browser sign-in for private HTTP services (signin.h): which requests pass, the
 * sign-in attempt (body read at the listener, the socket held while the secret is checked in the
 * thread pool), sign-out, and the answers. Sign-in attempts waiting for their check are on a
 * list (at most TT_ACCESS_MAX_WAITING + TT_ACCESS_MAX_RUNNING of them: access.c refuses more),
 * and so are, in cluster mode, those waiting for Redis to acknowledge their session; requests
 * held at the listener for a session job (signin.h) are on another list (at most
 * TT_SESSIONS_WAIT_MAX: sessions.c refuses more); both are closed at shutdown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "tether_err.h"
#include "common/log.h"
#include "relay/lib/cookie.h"
#include "relay/device/device.h"
#include "relay/lib/form.h"
#include "relay/device/forward.h"
#include "relay/http/httpproxy.h"
#include "relay/http/pages.h"
#include "relay/core.h"
#include "relay/http/respond.h"
#include "relay/http/route.h"
#include "relay/access/signin.h"
#include "relay/access/signinpage.h"

struct tt_signin_stats tt_signin_stats;

/* At most this many values of the relay's cookie are looked up per request (each may cost a
 * Redis read): a browser sends one, or two when a sibling host planted one. */
#define MAX_COOKIE_TRIES 4

/* ---- reading the request ---------------------------------------------------------------- */

static bool hname_is(const uint8_t *head, const struct tt_head_hdr *h, const char *name)
{
    size_t n = strlen(name);
    return h->flen == n && strncasecmp((const char *)head + h->foff, name, n) == 0;
}

/* The single header called name (trailing blanks trimmed): 1 and *v, *n; 0 when absent; 2 when
 * there are several (callers refuse). */
static int one_header(const struct tt_signin_req *q, const char *name, const uint8_t **v, size_t *n)
{
    unsigned count = tt_headparse_find(q->hp, name, v, n);
    if (count == 0)
        return 0;
    while (*n > 0 && ((*v)[*n - 1] == ' ' || (*v)[*n - 1] == '\t'))
        (*n)--;
    return count == 1 ? 1 : 2;
}

static bool value_is(const uint8_t *v, size_t n, const char *s)
{
    size_t sl = strlen(s);
    return n == sl && strncasecmp((const char *)v, s, sl) == 0;
}

/* The request target's path and query: origin-form as it is, the path of an absolute-form
 * target, "/" for anything else. */
static void target_path(const struct tt_signin_req *q, const uint8_t **p, size_t *n)
{
    const uint8_t *t = q->head + q->hp->url_off;
    size_t tl = q->hp->url_len;
    *p = (const uint8_t *)"/";
    *n = 1;
    if (tl > 0 && t[0] == '/') {
        *p = t;
        *n = tl;
        return;
    }
    const uint8_t *sep = tl > 3 ? memmem(t, tl, "://", 3) : NULL;
    if (!sep)
        return;
    size_t off = (size_t)(sep - t) + 3;
    const uint8_t *slash = memchr(t + off, '/', tl - off);
    if (slash) {
        *p = slash;
        *n = tl - (size_t)(slash - t);
    }
}

static bool is_signout(const struct tt_signin_req *q)
{
    const uint8_t *p;
    size_t n;
    target_path(q, &p, &n);
    const uint8_t *qm = memchr(p, '?', n);
    size_t pl = qm ? (size_t)(qm - p) : n;
    return pl == sizeof(TT_SIGNIN_SIGNOUT_PATH) - 1 && memcmp(p, TT_SIGNIN_SIGNOUT_PATH, pl) == 0;
}

/* The port of a Host value or of an Origin's authority, def when it names none; -1 when bad. */
static long authority_port(const uint8_t *v, size_t n, long def)
{
    size_t i = n;
    if (n > 0 && v[0] == '[') {
        const uint8_t *rb = memchr(v, ']', n);
        if (!rb)
            return -1;
        i = (size_t)(rb - v) + 1;
        if (i == n)
            return def;
        if (v[i] != ':')
            return -1;
    } else {
        const uint8_t *c = memchr(v, ':', n);
        if (!c)
            return def;
        i = (size_t)(c - v);
    }
    long port = 0;
    if (i + 1 >= n)
        return -1;
    for (size_t j = i + 1; j < n; j++) {
        if (v[j] < '0' || v[j] > '9' || port > 65535)
            return -1;
        port = port * 10 + (v[j] - '0');
    }
    return port > 0 && port <= 65535 ? port : -1;
}

/* True when the Origin value o[0..n) is the request's own origin: its scheme (https or not), its
 * host (q->host) and its port (the Host header's, or the scheme's default). */
static bool own_origin(const struct tt_signin_req *q, const uint8_t *o, size_t n)
{
    const char *scheme = q->https ? "https://" : "http://";
    size_t sl = strlen(scheme);
    if (n <= sl || strncasecmp((const char *)o, scheme, sl) != 0)
        return false;
    const uint8_t *auth = o + sl;
    size_t al = n - sl;
    if (memchr(auth, '/', al) != NULL)
        return false; /* an origin has no path */
    char host[TT_HOSTLEN];
    if (tt_route_host_normalize(auth, al, host) != 0 || strcmp(host, q->host) != 0)
        return false;
    const uint8_t *hv;
    size_t hn;
    long def = q->https ? 443 : 80;
    if (one_header(q, "host", &hv, &hn) != 1)
        return false;
    long want = authority_port(hv, hn, def), got = authority_port(auth, al, def);
    return want > 0 && want == got;
}

/* True when the request was made by another site's page (see signin.h): Sec-Fetch-Site when
 * the browser sends it (a same-site or cross-site request passes only as a top-level GET or HEAD
 * navigation), else the Origin, when there is one, must be the host's own. */
static bool from_elsewhere(const struct tt_signin_req *q)
{
    const uint8_t *v;
    size_t n;
    int sfs = one_header(q, "sec-fetch-site", &v, &n);
    if (sfs == 2)
        return true;
    if (sfs == 1) {
        if (value_is(v, n, "same-origin") || value_is(v, n, "none"))
            return false;
        if (!value_is(v, n, "same-site") && !value_is(v, n, "cross-site"))
            return true;
        unsigned m = q->hp->p.method;
        const uint8_t *mv, *dv;
        size_t mn, dn;
        if ((m != HTTP_GET && m != HTTP_HEAD) || one_header(q, "sec-fetch-mode", &mv, &mn) != 1 ||
            !value_is(mv, mn, "navigate") || one_header(q, "sec-fetch-dest", &dv, &dn) != 1 ||
            !value_is(dv, dn, "document"))
            return true;
    }
    int org = one_header(q, "origin", &v, &n);
    if (org == 2)
        return true;
    return org == 1 && !own_origin(q, v, n);
}

/* A urlencoded body (Content-Type). */
static bool is_form(const struct tt_signin_req *q)
{
    const uint8_t *v;
    size_t n;
    return one_header(q, "content-type", &v, &n) == 1 && tt_form_content_type(v, n);
}

static const char *cookie_name(bool https)
{
    return https ? TT_COOKIE_NAME_HOST : TT_COOKIE_NAME;
}

/* Calls fn for each value of the relay's cookie (its name for this scheme, exactly) in the
 * request's Cookie headers, at most MAX_COOKIE_TRIES times; stops when fn returns true. */
static bool each_session_cookie(const struct tt_signin_req *q,
                                bool (*fn)(const uint8_t *v, size_t n, void *ud), void *ud)
{
    const char *want = cookie_name(q->https);
    size_t wl = strlen(want);
    unsigned tries = 0;
    for (uint32_t i = 0; i < q->hp->nhdr; i++) {
        const struct tt_head_hdr *h = &q->hp->hdr[i];
        if (!hname_is(q->head, h, "cookie"))
            continue;
        const uint8_t *v = q->head + h->voff;
        size_t pos = 0;
        struct tt_cookie_pair p;
        while (tt_cookie_next(v, h->vlen, &pos, &p)) {
            if (p.namelen != wl || memcmp(p.name, want, wl) != 0)
                continue;
            if (tries++ >= MAX_COOKIE_TRIES)
                return false;
            if (fn(p.value, p.valuelen, ud))
                return true;
        }
    }
    return false;
}

/* Keys of cookies this node has never seen (cluster mode), to read before deciding. */
struct unknown_keys {
    char k[TT_SESSIONS_JOB_KEYS][TT_SESSION_KEY_LEN + 1];
    size_t n;
};

struct find_ctx {
    struct tt_relay *r;
    const struct tt_signin_req *q;
    int64_t now;
    struct tt_principal *who;
    char *key;
    struct unknown_keys *unknown; /* NULL: an unknown cookie is no session (never wait) */
};

static bool find_one(const uint8_t *v, size_t n, void *ud)
{
    struct find_ctx *c = ud;
    int rc =
        c->unknown
            ? tt_sessions_find_or_unknown(&c->r->sessions, v, n, c->q->host, c->now, c->who, c->key)
            : tt_sessions_find(&c->r->sessions, v, n, c->q->host, c->now, c->who, c->key);
    if (rc == TT_SESSIONS_UNKNOWN) {
        if (c->unknown->n < TT_SESSIONS_JOB_KEYS)
            memcpy(c->unknown->k[c->unknown->n++], c->key, TT_SESSION_KEY_LEN + 1);
        c->key[0] = '\0';
        return false;
    }
    return rc == 0 && tt_access_allows(&c->r->access, c->who, c->q->device, c->q->service, c->now);
}

/* tt_signin_classify; with unknown, cookies this node never saw make TT_SIGNIN_HOLD (when no
 * other one passes), their keys in *unknown. */
static enum tt_signin_verdict classify(struct tt_relay *r, const struct tt_signin_req *q,
                                       int64_t now, struct tt_principal *who,
                                       char key[TT_SESSION_KEY_LEN + 1],
                                       struct unknown_keys *unknown)
{
    bool post = q->hp->p.method == HTTP_POST;
    memset(who, 0, sizeof(*who));
    key[0] = '\0';
    if (unknown)
        unknown->n = 0;
    if (is_signout(q)) {
        if (!post)
            return TT_SIGNIN_SIGNOUT_FORM;
        return from_elsewhere(q) ? TT_SIGNIN_CROSS_SITE : TT_SIGNIN_SIGNOUT;
    }
    struct find_ctx c = {r, q, now, who, key, unknown};
    if (each_session_cookie(q, find_one, &c)) {
        if (from_elsewhere(q))
            return TT_SIGNIN_CROSS_SITE;
        if (post && is_form(q))
            return TT_SIGNIN_PASS_FORM;
        return TT_SIGNIN_PASS;
    }
    memset(who, 0, sizeof(*who));
    key[0] = '\0';
    if (unknown && unknown->n > 0)
        return TT_SIGNIN_HOLD;
    if (post && is_form(q))
        return TT_SIGNIN_ATTEMPT;
    return TT_SIGNIN_NEEDED;
}

enum tt_signin_verdict tt_signin_classify(struct tt_relay *r, const struct tt_signin_req *q,
                                          int64_t now, struct tt_principal *who,
                                          char key[TT_SESSION_KEY_LEN + 1])
{
    return classify(r, q, now, who, key, NULL);
}

/* ---- answers ---------------------------------------------------------------------------- */

/* The session cookie (value "" and Max-Age 0: cleared). */
static void make_cookie(char *out, size_t cap, bool https, const char *value, uint64_t max_age)
{
    snprintf(out, cap, "%s=%s; Path=/; Max-Age=%llu; HttpOnly; SameSite=Lax%s", cookie_name(https),
             value, (unsigned long long)max_age, https ? "; Secure" : "");
}

/* A page for q into out (at most cap bytes). Returns its length or -1. */
static int page_for(const struct tt_signin_req *q, enum tt_signinpage_kind kind,
                    const char *set_cookie, char *out, size_t cap)
{
    struct tt_signinpage p = {kind, q->device, q->service, set_cookie,
                              q->hp->p.method == HTTP_HEAD};
    return tt_signinpage_render(out, cap, &p);
}

/* A redirect to q's own URL. */
static int redirect_for(const struct tt_signin_req *q, int status, const char *set_cookie,
                        char *out, size_t cap)
{
    const uint8_t *hv, *path;
    size_t hn, pn;
    if (one_header(q, "host", &hv, &hn) != 1)
        return -1;
    target_path(q, &path, &pn);
    return tt_signinpage_redirect(out, cap, status, q->https, hv, hn, path, pn, set_cookie);
}

struct signout_ctx {
    struct tt_relay *r;
    const struct tt_signin_req *q;
    int64_t now;
    const void *except;
    struct unknown_keys keys; /* the sessions to end */
};

static bool signout_one(const uint8_t *v, size_t n, void *ud)
{
    struct signout_ctx *c = ud;
    struct tt_principal who;
    char key[TT_SESSION_KEY_LEN + 1];
    int rc = tt_sessions_find_or_unknown(&c->r->sessions, v, n, c->q->host, c->now, &who, key);
    if (rc == 0) {
        TT_LOG(TT_LOG_INFO, "signed out user=%s device=%s", TT_LOG_V(who.user),
               TT_LOG_V(c->q->device));
        tt_forward_close_session(key, c->except);
    } else if (rc == TT_SESSIONS_UNKNOWN) {
        /* made on another node and never seen here: whoever holds the cookie may end it */
        TT_LOG(TT_LOG_INFO, "signed out device=%s (a session of another node)",
               TT_LOG_V(c->q->device));
    } else {
        return false;
    }
    if (c->keys.n < TT_SESSIONS_JOB_KEYS)
        memcpy(c->keys.k[c->keys.n++], key, sizeof(key));
    return false;
}

/* Finds every session q carries for its host and closes the connections made under them (but
 * except, the connection q came on, which closes after its answer): their keys into *keys,
 * for tt_sessions_delete_async. */
static void sign_out_keys(struct tt_relay *r, const struct tt_signin_req *q, int64_t now,
                          const void *except, struct unknown_keys *keys)
{
    struct signout_ctx c = {r, q, now, except, {.n = 0}};
    each_session_cookie(q, signout_one, &c);
    *keys = c.keys;
    tt_signin_stats.signouts++;
}

/* Ends the sessions keys without waiting for Redis to say it did (the node's table at once;
 * Redis' answer is not waited for). */
static void forget_sessions(struct tt_relay *r, const struct unknown_keys *keys)
{
    struct tt_sessions_job *job = NULL;
    tt_sessions_delete_async(&r->sessions, keys->k, keys->n, NULL, NULL, &job);
    tt_sessions_job_cancel(job);
}

/* Ends every session q carries for its host, here and (not waiting) in Redis. */
static void sign_out(struct tt_relay *r, const struct tt_signin_req *q, int64_t now,
                     const void *except)
{
    struct unknown_keys keys;
    sign_out_keys(r, q, now, except, &keys);
    forget_sessions(r, &keys);
}

/* Renders the relay's answer to a request classified v (not PASS) into out[0..cap). */
static int answer(struct tt_relay *r, const struct tt_signin_req *q, enum tt_signin_verdict v,
                  int64_t now, const void *except, char *out, size_t cap)
{
    char cookie[128];
    switch (v) {
    case TT_SIGNIN_CROSS_SITE:
        tt_signin_stats.cross_site++;
        return page_for(q, TT_SIGNINPAGE_CROSS_SITE, NULL, out, cap);
    case TT_SIGNIN_SIGNOUT_FORM:
        return page_for(q, TT_SIGNINPAGE_SIGNOUT, NULL, out, cap);
    case TT_SIGNIN_SIGNOUT:
        sign_out(r, q, now, except);
        make_cookie(cookie, sizeof(cookie), q->https, "", 0);
        return page_for(q, TT_SIGNINPAGE_SIGNED_OUT, cookie, out, cap);
    default:
        tt_signin_stats.needed++;
        return page_for(q, TT_SIGNINPAGE_FORM, NULL, out, cap);
    }
}

/* ---- the sign-in attempt ---------------------------------------------------------------- */

struct attempt {
    struct attempt *prev, *next; /* the pending list, while the check runs */
    struct tt_relay *r;
    struct tt_conn *conn; /* once the body is read */
    struct tt_access_verify *verify;
    struct tt_sessions_job *job; /* cluster mode: the session's write, until Redis has it */
    struct tt_principal who;     /* signed in as (while job runs) */
    char cookie[TT_SESSION_COOKIE_LEN + 1], key[TT_SESSION_KEY_LEN + 1]; /* (wiped) */
    bool https, head_only;
    char host[TT_HOSTLEN];    /* normalized */
    char hostval[TT_HOSTLEN]; /* the Host header as sent (for Location) */
    char device[TT_MAX_NAME + 1], service[TT_MAX_NAME + 1];
    char client[TT_MAX_ADDR];   /* "IP:PORT" */
    char user[TT_MAX_NAME + 1]; /* as typed (for the audit line) */
    size_t pathlen;
    char path[]; /* where to go back to */
};

static struct attempt *pending_list;

static void pending_unlink(struct attempt *a)
{
    if (a->prev)
        a->prev->next = a->next;
    else if (pending_list == a)
        pending_list = a->next;
    if (a->next)
        a->next->prev = a->prev;
    a->prev = a->next = NULL;
    tt_signin_stats.pending--;
}

/* Renders a page for an attempt (its request is gone: names from a). */
static int attempt_page(const struct attempt *a, enum tt_signinpage_kind kind,
                        const char *set_cookie, char *out, size_t cap)
{
    struct tt_signinpage p = {kind, a->device, a->service, set_cookie, a->head_only};
    return tt_signinpage_render(out, cap, &p);
}

/* Answers a's browser with out[0..n) and frees a. */
static void attempt_respond(struct attempt *a, const char *out, int n)
{
    tt_respond_close(a->conn, out, n > 0 ? (size_t)n : 0);
    a->conn = NULL;
    tt_secret_wipe(a->cookie, sizeof(a->cookie));
    free(a);
}

/* a's session is made (who, a->cookie, a->key): the 303 with the cookie, and a goes. */
static void attempt_signed_in(struct attempt *a, const struct tt_principal *who)
{
    struct tt_relay *r = a->r;
    int64_t now = tt_relay_now_ms();
    char out[TT_SIGNINPAGE_MAX + TT_URI_MAX + TT_HOSTLEN];
    char sc[200];
    make_cookie(sc, sizeof(sc), a->https, a->cookie, r->cfg.session_ttl_ms / 1000);
    int n = tt_signinpage_redirect(out, sizeof(out), 303, a->https, (const uint8_t *)a->hostval,
                                   strlen(a->hostval), (const uint8_t *)a->path, a->pathlen, sc);
    tt_secret_wipe(a->cookie, sizeof(a->cookie));
    tt_secret_wipe(sc, sizeof(sc));
    bool ok = n > 0;
    if (ok) {
        tt_signin_stats.ok++;
        TT_LOG(TT_LOG_INFO, "signed in user=%s device=%s service=%s peer=%s", TT_LOG_V(who->user),
               TT_LOG_V(a->device), TT_LOG_V(a->service), a->client);
    } else {
        /* a Host the redirect cannot name (cannot happen: it was routed): no session */
        struct unknown_keys k = {.n = 1};
        memcpy(k.k[0], a->key, sizeof(a->key));
        forget_sessions(r, &k);
        n = attempt_page(a, TT_SIGNINPAGE_BAD_FORM, NULL, out, sizeof(out));
    }
    tt_audit_signin(&r->audit, who->user, a->client, ok, now);
    attempt_respond(a, out, n);
    if (ok)
        tt_secret_wipe(out, (size_t)n); /* the cookie's value: only the socket's copy remains */
}

static void pending_link(struct attempt *a);

/* Cluster mode: Redis acknowledged a's session (rc 0), or did not answer: 503, no cookie. */
static void on_session_written(void *ud, int rc)
{
    struct attempt *a = ud;
    a->job = NULL;
    pending_unlink(a);
    if (rc == 0) {
        attempt_signed_in(a, &a->who);
        return;
    }
    char out[TT_SIGNINPAGE_MAX];
    tt_signin_stats.unavailable++;
    TT_LOG(TT_LOG_INFO, "sign-in not completed: the session store did not answer user=%s peer=%s",
           TT_LOG_V(a->who.user), a->client);
    int n = attempt_page(a, TT_SIGNINPAGE_UNAVAILABLE, NULL, out, sizeof(out));
    tt_audit_signin(&a->r->audit, a->who.user, a->client, false, tt_relay_now_ms());
    attempt_respond(a, out, n);
}

/* The check of a's secret answered rc (who on 0). */
static void attempt_done(struct attempt *a, int rc, const struct tt_principal *who)
{
    struct tt_relay *r = a->r;
    int64_t now = tt_relay_now_ms();
    char out[TT_SIGNINPAGE_MAX + TT_URI_MAX + TT_HOSTLEN];
    int n = -1;
    const char *audit_user = a->user;
    if (rc == 0 && !tt_access_allows(&r->access, who, a->device, a->service, now)) {
        tt_signin_stats.forbidden++;
        audit_user = who->user;
        n = attempt_page(a, TT_SIGNINPAGE_FORBIDDEN, NULL, out, sizeof(out));
        TT_LOG(TT_LOG_INFO, "sign-in without a grant user=%s device=%s service=%s peer=%s",
               TT_LOG_V(who->user), TT_LOG_V(a->device), TT_LOG_V(a->service), a->client);
    } else if (rc == 0) {
        audit_user = who->user;
        int crc = tt_sessions_create_async(&r->sessions, a->host, who, now, a->cookie, a->key,
                                           on_session_written, a, &a->job);
        if (crc == 0 && a->job) {
            /* cluster mode: the 303 and its cookie once Redis has the session */
            a->who = *who;
            pending_link(a);
            return;
        }
        if (crc == 0) {
            attempt_signed_in(a, who);
            return;
        }
        if (crc == TETHER_ERR_NOMEM) {
            tt_signin_stats.busy++;
            n = attempt_page(a, TT_SIGNINPAGE_BUSY, NULL, out, sizeof(out));
        } else { /* Redis unreachable, or too many requests wait for it */
            tt_signin_stats.unavailable++;
            n = attempt_page(a, TT_SIGNINPAGE_UNAVAILABLE, NULL, out, sizeof(out));
        }
    } else if (rc == TETHER_ERR_THROTTLED) {
        tt_signin_stats.throttled++;
        n = attempt_page(a, TT_SIGNINPAGE_THROTTLED, NULL, out, sizeof(out));
    } else {
        tt_signin_stats.wrong++;
        n = attempt_page(a, TT_SIGNINPAGE_WRONG, NULL, out, sizeof(out));
        TT_LOG(TT_LOG_INFO, "sign-in refused user=%s device=%s peer=%s", TT_LOG_V(a->user),
               TT_LOG_V(a->device), a->client);
    }
    tt_audit_signin(&r->audit, audit_user, a->client, false, now);
    attempt_respond(a, out, n);
}

static void on_verified(void *ud, int rc, const struct tt_principal *who)
{
    struct attempt *a = ud;
    a->verify = NULL;
    pending_unlink(a);
    attempt_done(a, rc, who);
}

/* The answer to a grant token that waited for a read of the cluster's grants. */
static void on_token_verified(void *ud, int rc, const struct tt_principal *who)
{
    struct attempt *a = ud;
    a->verify = NULL;
    pending_unlink(a);
    /* the name typed, if any, must be the grant's user's */
    if (rc == 0 && who && a->user[0] != '\0' && strcmp(a->user, who->user) != 0)
        rc = TETHER_ERR_AUTH;
    attempt_done(a, rc, rc == 0 ? who : NULL);
}

/* a waits for its check, in the pending list. */
static void pending_link(struct attempt *a)
{
    a->next = pending_list;
    if (pending_list)
        pending_list->prev = a;
    pending_list = a;
    if (++tt_signin_stats.pending > tt_signin_stats.pending_max)
        tt_signin_stats.pending_max = tt_signin_stats.pending;
}

static bool grant_token_form(const char *s, size_t n)
{
    return tt_grants_is_token((const uint8_t *)s, n);
}

/* The body of attempt a (hc's) is there: read the form and start the check. */
static void attempt_body(struct tt_headconn *hc, struct attempt *a)
{
    struct tt_relay *r = a->r;
    const uint8_t *body = hc->data + hc->headlen;
    size_t blen = tt_headconn_body_len(hc);
    char out[TT_SIGNINPAGE_MAX];
    char secret[TT_USERS_SECRET_MAX + 1];
    size_t ulen = 0, slen = 0;
    int ur = tt_form_get(body, blen, "user", a->user, sizeof(a->user), &ulen);
    int sr = tt_form_get(body, blen, "secret", secret, sizeof(secret), &slen);
    if (ur == TETHER_ERR_NOT_FOUND || sr == TETHER_ERR_NOT_FOUND) {
        /* a form, but not the sign-in form (the device's, its session gone): sign in first */
        struct tt_signinpage p = {TT_SIGNINPAGE_FORM, a->device, a->service, NULL, false};
        int n = tt_signinpage_render(out, sizeof(out), &p);
        tt_signin_stats.needed++;
        tt_secret_wipe(secret, sizeof(secret));
        free(a);
        tt_headconn_respond(hc, out, n > 0 ? (size_t)n : 0);
        return;
    }
    a->conn = tt_headconn_take(hc);
    tt_headconn_free(hc);
    int64_t now = tt_relay_now_ms();
    if (ur != 0 || sr != 0 || slen == 0) {
        /* unreadable: a wrong attempt (a user name over 64 bytes, control bytes, bad escapes) */
        if (ur != 0)
            a->user[0] = '\0';
        tt_secret_wipe(secret, sizeof(secret));
        attempt_done(a, TETHER_ERR_AUTH, NULL);
        return;
    }
    if (grant_token_form(secret, slen)) {
        struct tt_principal who;
        int rc = tt_access_verify_token_async(&r->access, (const uint8_t *)secret, slen, a->client,
                                              now, &who, on_token_verified, a, &a->verify);
        tt_secret_wipe(secret, sizeof(secret));
        if (rc == TT_GRANTS_PENDING) {
            /* a token new to this node: held (unread) until the cluster's grants are read */
            pending_link(a);
            return;
        }
        /* the name typed, if any, must be the grant's user's */
        if (rc == 0 && ulen > 0 && strcmp(a->user, who.user) != 0)
            rc = TETHER_ERR_AUTH;
        attempt_done(a, rc, rc == 0 ? &who : NULL);
        return;
    }
    int rc = tt_access_verify(&r->access, a->user, (const uint8_t *)secret, slen, a->client,
                              on_verified, a, &a->verify);
    tt_secret_wipe(secret, sizeof(secret));
    if (rc != 0) {
        tt_signin_stats.busy++;
        int n = attempt_page(a, TT_SIGNINPAGE_BUSY, NULL, out, sizeof(out));
        tt_audit_signin(&r->audit, a->user, a->client, false, now);
        attempt_respond(a, out, n);
        return;
    }
    pending_link(a);
}

static void on_body(struct tt_headconn *hc, void *ud)
{
    struct attempt *a = hc->owner_data;
    (void)ud;
    hc->owner_data = NULL;
    attempt_body(hc, a);
}

/* A sign-in attempt at the listener: q's body is read (hc consumed). */
static void attempt_start(struct tt_relay *r, struct tt_headconn *hc, const struct tt_signin_req *q,
                          const char *client_ip, uint16_t client_port, bool read_again)
{
    char out[TT_SIGNINPAGE_MAX];
    int n;
    const struct tt_headparse *hp = q->hp;
    if (from_elsewhere(q)) {
        /* another site's page posting a sign-in (login CSRF): not even read */
        tt_signin_stats.refused_origin++;
        n = page_for(q, TT_SIGNINPAGE_CROSS_SITE, NULL, out, sizeof(out));
        tt_headconn_respond(hc, out, n > 0 ? (size_t)n : 0);
        return;
    }
    bool small = (hp->p.flags & F_CONTENTLENGTH) && !(hp->p.flags & F_CHUNKED) &&
                 hp->p.content_length > 0 && hp->p.content_length <= TT_SIGNIN_BODY_MAX;
    const uint8_t *hv, *path;
    size_t hn, pn;
    target_path(q, &path, &pn);
    struct attempt *a = small && one_header(q, "host", &hv, &hn) == 1 && hn < TT_HOSTLEN
                            ? calloc(1, sizeof(*a) + pn + 1)
                            : NULL;
    if (!a) {
        /* not a sign-in form (too large, chunked) */
        tt_signin_stats.needed++;
        n = page_for(q, TT_SIGNINPAGE_FORM, NULL, out, sizeof(out));
        tt_headconn_respond(hc, out, n > 0 ? (size_t)n : 0);
        return;
    }
    a->r = r;
    a->https = q->https;
    a->head_only = false;
    snprintf(a->host, sizeof(a->host), "%s", q->host);
    memcpy(a->hostval, hv, hn);
    a->hostval[hn] = '\0';
    snprintf(a->device, sizeof(a->device), "%s", q->device);
    snprintf(a->service, sizeof(a->service), "%s", q->service);
    tt_forward_client_addr(a->client, sizeof(a->client), client_ip, client_port);
    memcpy(a->path, path, pn);
    a->path[pn] = '\0';
    a->pathlen = pn;
    int rc = tt_headconn_read_body(hc, TT_SIGNIN_BODY_MAX, on_body);
    if (rc == 1) {
        attempt_body(hc, a);
    } else if (rc == 0) {
        hc->owner_data = a; /* freed with hc if it never comes */
        /* held for Redis first (reading stopped): the body is read now; on_body may come from
         * inside the call */
        if (read_again && tt_headconn_read_again(hc) != 0)
            tt_headconn_free(hc);
    } else {
        free(a);
        tt_signin_stats.needed++;
        n = page_for(q, TT_SIGNINPAGE_FORM, NULL, out, sizeof(out));
        tt_headconn_respond(hc, out, n > 0 ? (size_t)n : 0);
    }
}

/* ---- requests held while Redis answers (cluster mode) ----------------------------------- */

/* A first request held at the listener (its headconn unread) while the cluster's sessions are
 * read (an unknown cookie) or a sign-out is written. hc's owner_data: freed with hc should hc
 * go first (on_held_drop cancels the job then). */
struct held {
    struct held *prev, *next; /* held_list */
    struct tt_relay *r;
    struct tt_headconn *hc;
    struct tt_sessions_job *job;
    bool signout; /* else a read */
    bool https;
    uint16_t client_port;
    char host[TT_HOSTLEN];
    char device[TT_MAX_NAME + 1], service[TT_MAX_NAME + 1];
    char client_ip[64];
};

static struct held *held_list;

static void held_unlink(struct held *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else if (held_list == h)
        held_list = h->next;
    if (h->next)
        h->next->prev = h->prev;
    h->prev = h->next = NULL;
    tt_signin_stats.held--;
}

/* The headconn went while its job ran (its head deadline, a shed, the listener closing). */
static void on_held_drop(struct tt_headconn *hc, void *ud)
{
    struct held *h = ud;
    (void)hc;
    tt_sessions_job_cancel(h->job);
    h->job = NULL;
    held_unlink(h); /* h itself is hc's owner_data: freed with it */
}

static void gate_run(struct tt_relay *r, struct tt_headconn *hc, struct tt_device *d, int svc,
                     const char *host, const char *client_ip, uint16_t client_port, bool https,
                     bool may_hold);

/* hc answered with a sign-in page of kind for its request (device and service named). */
static void held_page(struct tt_headconn *hc, const struct held *h, enum tt_signinpage_kind kind,
                      const char *set_cookie)
{
    char out[TT_SIGNINPAGE_MAX];
    struct tt_signinpage p = {kind, h->device, h->service, set_cookie,
                              hc->hp.p.method == HTTP_HEAD};
    int n = tt_signinpage_render(out, sizeof(out), &p);
    tt_headconn_respond(hc, out, n > 0 ? (size_t)n : 0);
}

/* The job of held request ud answered rc. */
static void on_held(void *ud, int rc)
{
    struct held *h = ud;
    struct tt_headconn *hc = h->hc;
    struct tt_relay *r = h->r;
    h->job = NULL;
    held_unlink(h);
    hc->on_drop = NULL;
    hc->owner_data = NULL; /* h is ours again */
    if (r->stopping) {
        free(h);
        tt_headconn_free(hc);
        return;
    }
    if (rc != 0) {
        tt_signin_stats.unavailable++;
        TT_LOG(TT_LOG_DEBUG, "answered peer=%s:%u status=503 device=%s session store %s",
               h->client_ip, (unsigned)h->client_port, TT_LOG_V(h->device),
               rc == TETHER_ERR_TIMEOUT ? "timed out" : "unreachable");
        held_page(hc, h, TT_SIGNINPAGE_UNAVAILABLE, NULL);
        free(h);
        return;
    }
    if (h->signout) {
        char cookie[128];
        make_cookie(cookie, sizeof(cookie), h->https, "", 0);
        held_page(hc, h, TT_SIGNINPAGE_SIGNED_OUT, cookie);
        free(h);
        return;
    }
    /* the sessions Redis has are in the table now: decide again, never holding twice */
    struct tt_device *d = tt_strmap_get(&r->by_name, h->device);
    int svc = -1;
    for (uint8_t i = 0; d && i < d->nsvc; i++)
        if (d->svc[i].kind == TT_SERVICE_HTTP && strcmp(d->svc[i].name, h->service) == 0)
            svc = i;
    if (!d || !d->conn || !tt_device_online(d) || svc < 0) {
        /* the device went meanwhile */
        char out[TT_PAGE_MAX];
        int n = tt_pages_render(out, sizeof(out), TT_PAGE_UNAVAILABLE);
        tt_headconn_respond(hc, out, n > 0 ? (size_t)n : 0);
        free(h);
        return;
    }
    char host[TT_HOSTLEN], ip[64];
    memcpy(host, h->host, sizeof(host));
    memcpy(ip, h->client_ip, sizeof(ip));
    uint16_t port = h->client_port;
    bool https = h->https;
    free(h);
    gate_run(r, hc, d, svc, host, ip, port, https, false);
}

/* Holds hc (the request q) while keys are read (signout false) or deleted (true) in Redis;
 * answers 503 at once when that cannot start. */
static void hold(struct tt_relay *r, struct tt_headconn *hc, const struct tt_signin_req *q,
                 const char *client_ip, uint16_t client_port, bool signout,
                 const struct unknown_keys *keys)
{
    struct held *h = calloc(1, sizeof(*h));
    struct held tmp = {0};
    struct held *names = h ? h : &tmp;
    snprintf(names->device, sizeof(names->device), "%s", q->device);
    snprintf(names->service, sizeof(names->service), "%s", q->service);
    int rc = TETHER_ERR_NOMEM;
    if (h) {
        h->r = r;
        h->hc = hc;
        h->signout = signout;
        h->https = q->https;
        h->client_port = client_port;
        snprintf(h->host, sizeof(h->host), "%s", q->host);
        snprintf(h->client_ip, sizeof(h->client_ip), "%s", client_ip);
        rc = signout ? tt_sessions_delete_async(&r->sessions, keys->k, keys->n, on_held, h, &h->job)
                     : tt_sessions_fetch(&r->sessions, keys->k, keys->n, on_held, h, &h->job);
    }
    if (rc != 0) {
        /* too many requests held, Redis unreachable, out of memory */
        tt_signin_stats.unavailable++;
        held_page(hc, names, TT_SIGNINPAGE_UNAVAILABLE, NULL);
        free(h);
        return;
    }
    if (!h->job) { /* nothing to wait for (a sign-out without a session) */
        char cookie[128];
        make_cookie(cookie, sizeof(cookie), q->https, "", 0);
        held_page(hc, h, TT_SIGNINPAGE_SIGNED_OUT, cookie);
        free(h);
        return;
    }
    h->next = held_list;
    if (held_list)
        held_list->prev = h;
    held_list = h;
    tt_signin_stats.held++;
    tt_signin_stats.held_total++;
    hc->owner_data = h;
    hc->on_drop = on_held_drop;
    hc->drop_ud = h;
    /* the connection waits unread (its head deadline running) for the answer */
    tt_conn_read_stop(hc->conn);
}

/* ---- the two entry points ---------------------------------------------------------------- */

void tt_signin_gate(struct tt_relay *r, struct tt_headconn *hc, struct tt_device *d, int svc,
                    const char *host, const char *client_ip, uint16_t client_port, bool https)
{
    gate_run(r, hc, d, svc, host, client_ip, client_port, https, true);
}

static void gate_run(struct tt_relay *r, struct tt_headconn *hc, struct tt_device *d, int svc,
                     const char *host, const char *client_ip, uint16_t client_port, bool https,
                     bool may_hold)
{
    struct tt_signin_req q = {hc->data, &hc->hp, host, https, d->name, d->svc[svc].name};
    int64_t now = tt_relay_now_ms();
    struct tt_principal who;
    char key[TT_SESSION_KEY_LEN + 1];
    struct unknown_keys unknown;
    enum tt_signin_verdict v = classify(r, &q, now, &who, key, may_hold ? &unknown : NULL);
    if (v == TT_SIGNIN_HOLD) {
        hold(r, hc, &q, client_ip, client_port, false, &unknown);
        return;
    }
    if (v == TT_SIGNIN_SIGNOUT && tt_sessions_async(&r->sessions)) {
        /* ended here at once; answered once Redis has ended them too */
        struct unknown_keys keys;
        sign_out_keys(r, &q, now, NULL, &keys);
        hold(r, hc, &q, client_ip, client_port, true, &keys);
        return;
    }
    if (v == TT_SIGNIN_PASS || v == TT_SIGNIN_PASS_FORM) {
        struct tt_conn *conn = tt_headconn_take(hc);
        tt_forward_http_as(d, svc, conn, hc->data, hc->len, host, client_ip, client_port, https,
                           &who);
        tt_headconn_free(hc);
        return;
    }
    if (v == TT_SIGNIN_ATTEMPT) {
        attempt_start(r, hc, &q, client_ip, client_port, !may_hold);
        return;
    }
    char out[TT_SIGNINPAGE_MAX];
    int n = answer(r, &q, v, now, NULL, out, sizeof(out));
    TT_LOG(TT_LOG_DEBUG, "answered peer=%s:%u device=%s verdict=%d", client_ip,
           (unsigned)client_port, TT_LOG_V(d->name), (int)v);
    tt_headconn_respond(hc, out, n > 0 ? (size_t)n : 0);
}

static bool same_principal(const struct tt_principal *a, const struct tt_principal *b)
{
    return a->kind == b->kind && strcmp(a->user, b->user) == 0 && strcmp(a->grant, b->grant) == 0;
}

int tt_signin_check(struct tt_relay *r, const struct tt_signin_req *q,
                    const struct tt_principal *conn_who, const void *self,
                    char key[TT_SESSION_KEY_LEN + 1], char **answer_out, size_t *answerlen)
{
    int64_t now = tt_relay_now_ms();
    struct tt_principal who;
    struct unknown_keys unknown;
    *answer_out = NULL;
    *answerlen = 0;
    enum tt_signin_verdict v = classify(r, q, now, &who, key, &unknown);
    if ((v == TT_SIGNIN_PASS || v == TT_SIGNIN_PASS_FORM) && !same_principal(&who, conn_who))
        v = TT_SIGNIN_NEEDED; /* this connection is another principal's: start afresh */
    if (v == TT_SIGNIN_PASS)
        return TT_HTTPPROXY_PASS;
    size_t cap = TT_SIGNINPAGE_MAX + q->hp->url_len + TT_HOSTLEN;
    /* (out of memory, or no answer: the request is refused without one and the connection
     * closes; a form that may hold a secret never passes unchecked) */
    char *out = malloc(cap);
    if (!out)
        return TT_HTTPPROXY_ANSWER;
    int n;
    if (v == TT_SIGNIN_PASS_FORM) /* signed in already: back to the URL, where it is */
        n = redirect_for(q, 303, NULL, out, cap);
    else if (v == TT_SIGNIN_ATTEMPT) /* a new connection reads the form: send it again there */
        n = redirect_for(q, 307, NULL, out, cap);
    else if (v == TT_SIGNIN_HOLD || (v == TT_SIGNIN_SIGNOUT && tt_sessions_async(&r->sessions))) {
        /* cluster mode, something to wait for: the listener holds it on a new connection (a
         * sign-out ends the sessions here first) */
        if (v == TT_SIGNIN_SIGNOUT) {
            sign_out(r, q, now, self);
            tt_signin_stats.signouts--; /* counted once, where it is answered */
        }
        tt_signin_stats.redirected++;
        n = redirect_for(q, 307, NULL, out, cap);
    } else
        n = answer(r, q, v, now, self, out, cap);
    if (n <= 0) {
        free(out);
        return TT_HTTPPROXY_ANSWER;
    }
    *answer_out = out;
    *answerlen = (size_t)n;
    return v == TT_SIGNIN_PASS_FORM ? TT_HTTPPROXY_HOLD : TT_HTTPPROXY_ANSWER;
}

void tt_signin_stop(struct tt_relay *r)
{
    (void)r;
    while (pending_list) {
        struct attempt *a = pending_list;
        pending_unlink(a);
        tt_access_verify_cancel(a->verify);
        tt_sessions_job_cancel(a->job);
        tt_respond_drop(a->conn);
        tt_secret_wipe(a->cookie, sizeof(a->cookie));
        free(a);
    }
    while (held_list) {
        struct held *h = held_list;
        struct tt_headconn *hc = h->hc;
        on_held_drop(hc, h);
        hc->on_drop = NULL;
        tt_headconn_free(hc); /* h with it */
    }
}

void tt_signin_metrics(const struct tt_relay *r, char *out, size_t cap, size_t *len)
{
    const struct tt_signin_stats *s = &tt_signin_stats;
    const struct tt_sessions *ss = &r->sessions;
    int n = snprintf(
        out + *len, cap - *len,
        "# HELP tether_access_sessions_live Browser sign-in sessions in this node's table "
        "(with --redis: made or read here lately).\n"
        "# TYPE tether_access_sessions_live gauge\n"
        "tether_access_sessions_live %zu\n"
        "# HELP tether_access_sessions_max Cap on sessions (the oldest is evicted), in all and "
        "per user or grant.\n"
        "# TYPE tether_access_sessions_max gauge\n"
        "tether_access_sessions_max{per=\"all\"} %zu\n"
        "tether_access_sessions_max{per=\"principal\"} %zu\n"
        "# HELP tether_access_sessions_total Sessions made (signed in), expired, signed out, and "
        "evicted at a cap (all, principal).\n"
        "# TYPE tether_access_sessions_total counter\n"
        "tether_access_sessions_total{event=\"created\"} %llu\n"
        "tether_access_sessions_total{event=\"expired\"} %llu\n"
        "tether_access_sessions_total{event=\"signed_out\"} %llu\n"
        "tether_access_sessions_total{event=\"evicted_all\"} %llu\n"
        "tether_access_sessions_total{event=\"evicted_principal\"} %llu\n"
        "# HELP tether_access_signins_total Browser sign-in attempts by outcome: ok, wrong user "
        "or secret, no grant for the service (forbidden), throttled address, checks busy, "
        "refused for another site's Origin (csrf).\n"
        "# TYPE tether_access_signins_total counter\n"
        "tether_access_signins_total{outcome=\"ok\"} %llu\n"
        "tether_access_signins_total{outcome=\"wrong\"} %llu\n"
        "tether_access_signins_total{outcome=\"forbidden\"} %llu\n"
        "tether_access_signins_total{outcome=\"throttled\"} %llu\n"
        "tether_access_signins_total{outcome=\"busy\"} %llu\n"
        "tether_access_signins_total{outcome=\"csrf\"} %llu\n"
        "# HELP tether_access_signins_pending Sign-in attempts waiting for their check.\n"
        "# TYPE tether_access_signins_pending gauge\n"
        "tether_access_signins_pending %llu\n"
        "# HELP tether_access_signins_pending_max The most sign-in attempts that waited at once.\n"
        "# TYPE tether_access_signins_pending_max gauge\n"
        "tether_access_signins_pending_max %llu\n"
        "# HELP tether_access_browser_refused_total Requests for private HTTP services the relay "
        "answered itself: no live session (401, the sign-in page), made by another site's page "
        "(403).\n"
        "# TYPE tether_access_browser_refused_total counter\n"
        "tether_access_browser_refused_total{reason=\"no_session\"} %llu\n"
        "tether_access_browser_refused_total{reason=\"cross_site\"} %llu\n"
        "# HELP tether_access_signouts_total Sign-outs (/.tether/signout).\n"
        "# TYPE tether_access_signouts_total counter\n"
        "tether_access_signouts_total %llu\n"
        "# HELP tether_access_signin_repeats_total Sign-in forms posted on a connection that "
        "had a session already (answered 303, never passed to the device).\n"
        "# TYPE tether_access_signin_repeats_total counter\n"
        "tether_access_signin_repeats_total %llu\n"
        "# HELP tether_access_session_redis_errors_total Session reads and writes Redis did not "
        "answer (sessions then kept on this node).\n"
        "# TYPE tether_access_session_redis_errors_total counter\n"
        "tether_access_session_redis_errors_total %llu\n",
        tt_sessions_count(ss), ss->max, ss->per_principal, (unsigned long long)ss->created,
        (unsigned long long)ss->expired, (unsigned long long)ss->signed_out,
        (unsigned long long)ss->evicted_total, (unsigned long long)ss->evicted_principal,
        (unsigned long long)s->ok, (unsigned long long)s->wrong, (unsigned long long)s->forbidden,
        (unsigned long long)s->throttled, (unsigned long long)s->busy,
        (unsigned long long)s->refused_origin, (unsigned long long)s->pending,
        (unsigned long long)s->pending_max, (unsigned long long)s->needed,
        (unsigned long long)s->cross_site, (unsigned long long)s->signouts,
        (unsigned long long)s->signin_repeats, (unsigned long long)ss->redis_errors);
    if (n > 0)
        *len = (size_t)n < cap - *len ? *len + (size_t)n : cap - 1;
    if (*len >= cap - 1)
        return;
    n = snprintf(
        out + *len, cap - *len,
        "# HELP tether_access_session_rechecks_total Cluster mode: re-reads of known sessions "
        "sent without waiting (sent), or not sent because %d were due (full).\n"
        "# TYPE tether_access_session_rechecks_total counter\n"
        "tether_access_session_rechecks_total{result=\"sent\"} %llu\n"
        "tether_access_session_rechecks_total{result=\"full\"} %llu\n"
        "# HELP tether_access_session_rechecks_due Re-reads of sessions sent and not answered.\n"
        "# TYPE tether_access_session_rechecks_due gauge\n"
        "tether_access_session_rechecks_due %zu\n",
        TT_SESSIONS_RECHECKS, (unsigned long long)ss->rechecks,
        (unsigned long long)ss->rechecks_full, ss->rechecks_due);
    if (n > 0)
        *len = (size_t)n < cap - *len ? *len + (size_t)n : cap - 1;
    if (*len >= cap - 1)
        return;
    n = snprintf(
        out + *len, cap - *len,
        "# HELP tether_access_session_waits_total Cluster mode: requests held while Redis "
        "answered a session job: the read of a cookie this node never saw (read), a sign-in's "
        "write (create), a sign-out (delete).\n"
        "# TYPE tether_access_session_waits_total counter\n"
        "tether_access_session_waits_total{op=\"read\"} %llu\n"
        "tether_access_session_waits_total{op=\"create\"} %llu\n"
        "tether_access_session_waits_total{op=\"delete\"} %llu\n"
        "# HELP tether_access_session_waiting Session jobs holding a request now (at most %d).\n"
        "# TYPE tether_access_session_waiting gauge\n"
        "tether_access_session_waiting %zu\n"
        "# HELP tether_access_session_wait_refused_total Session jobs that ended without Redis' "
        "answer, the request answered 503 with Retry-After: %d were waiting (full), none in "
        "%d ms (timeout), Redis unreachable or an error (unreachable).\n"
        "# TYPE tether_access_session_wait_refused_total counter\n"
        "tether_access_session_wait_refused_total{reason=\"full\"} %llu\n"
        "tether_access_session_wait_refused_total{reason=\"timeout\"} %llu\n"
        "tether_access_session_wait_refused_total{reason=\"unreachable\"} %llu\n"
        "# HELP tether_access_session_held Browser requests held at the listener for a session "
        "job now.\n"
        "# TYPE tether_access_session_held gauge\n"
        "tether_access_session_held %llu\n"
        "# HELP tether_access_session_unavailable_total Browser requests answered 503 because "
        "the cluster's sessions did not answer.\n"
        "# TYPE tether_access_session_unavailable_total counter\n"
        "tether_access_session_unavailable_total %llu\n"
        "# HELP tether_access_session_redirected_total Requests of a keep-alive connection sent "
        "again on a new one (307) to wait there for the cluster's sessions.\n"
        "# TYPE tether_access_session_redirected_total counter\n"
        "tether_access_session_redirected_total %llu\n",
        (unsigned long long)ss->waits[0], (unsigned long long)ss->waits[1],
        (unsigned long long)ss->waits[2], TT_SESSIONS_WAIT_MAX, ss->waiting, TT_SESSIONS_WAIT_MAX,
        TT_SESSIONS_WAIT_MS, (unsigned long long)ss->wait_full,
        (unsigned long long)ss->wait_timeouts, (unsigned long long)ss->wait_unreachable,
        (unsigned long long)s->held, (unsigned long long)s->unavailable,
        (unsigned long long)s->redirected);
    if (n > 0)
        *len = (size_t)n < cap - *len ? *len + (size_t)n : cap - 1;
    if (*len >= cap - 1)
        return;
    n = snprintf(out + *len, cap - *len,
                 "# HELP tether_access_session_reads_superseded_total Sessions a read from Redis "
                 "found while a sign-out on this node was deleting them: refused, not put back.\n"
                 "# TYPE tether_access_session_reads_superseded_total counter\n"
                 "tether_access_session_reads_superseded_total %llu\n",
                 (unsigned long long)ss->reads_superseded);
    if (n > 0)
        *len = (size_t)n < cap - *len ? *len + (size_t)n : cap - 1;
}
