/* access.c - access decisions, secret checks, the per-address throttle of failures and
 * revocation (access.h). A check is a small heap object: it waits in a FIFO (capped) for one of
 * TT_ACCESS_MAX_RUNNING slots in libuv's thread pool, where the argon2id work runs on copies of
 * the hash line and the secret; its after-work callback answers on the loop. Plain secrets
 * (SHA-256) take the same path so that every answer comes from a later loop turn; a throttled
 * client's check skips the pool and is answered by a zero timer. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tether_err.h"
#include "common/log.h"
#include "relay/access/access.h"

struct tt_access_verify {
    uv_work_t work;
    struct tt_access *a;           /* NULL once a is freed: the check is then only let finish */
    struct tt_access_verify *next; /* the waiting FIFO */
    struct tt_access_verify *rprev, *rnext; /* the running list */
    tt_access_verify_cb cb;                 /* NULL once cancelled */
    void *ud;
    bool known;  /* the user exists (else the dummy hash is checked, and the answer is no) */
    bool hashed; /* phc is a hash line to check in the pool */
    char user[TT_MAX_NAME + 1];
    char phc[TT_USERS_HASH_MAX];
    uint8_t secret[TT_USERS_SECRET_MAX];
    size_t len;
    bool ok;
    char akey[TT_ADDRKEY_LEN]; /* the client's throttle key ("" not counted) */
    char client[64];           /* for the log */
};

/* The hash checked for unknown users: of random bytes, so that nothing matches it. */
static char *make_dummy(void)
{
    uint8_t r[32];
    char *out = malloc(TT_USERS_HASH_MAX);
    if (!out || tt_random_bytes(r, sizeof(r)) != 0 ||
        tt_users_hash_secret(r, sizeof(r), out) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

int tt_access_init(struct tt_access *a, uv_loop_t *loop, const struct tt_config *cfg,
                   char err[TT_ERRLEN])
{
    memset(a, 0, sizeof(*a));
    a->loop = loop;
    a->mode = cfg->access;
    a->public_patterns = cfg->public_patterns;
    a->npublic = cfg->npublic;
    tt_users_init(&a->users);
    tt_throttle_init(&a->thr, "access checks");
    if (!(a->grants = tt_grants_new())) {
        snprintf(err, TT_ERRLEN, "out of memory");
        return -1;
    }
    if (uv_timer_init(loop, &a->later_timer) != 0) {
        snprintf(err, TT_ERRLEN, "cannot start timers");
        return -1;
    }
    a->later_timer.data = a;
    a->later_timer_on = true;
    uv_unref((uv_handle_t *)&a->later_timer);
    snprintf(a->users_file, sizeof(a->users_file), "%s", cfg->users_file);
    if (!a->users_file[0])
        return 0;
    if (tt_users_load_file(&a->users, a->users_file, err) != 0)
        return -1;
    a->dummy_phc = make_dummy();
    if (!a->dummy_phc) {
        tt_users_reset(&a->users);
        snprintf(err, TT_ERRLEN, "--users-file: cannot prepare secret checks (argon2id)");
        return -1;
    }
    return 0;
}

void tt_access_free(struct tt_access *a)
{
    /* Waiting checks never reached the pool: free them. Running ones are detached. */
    struct tt_access_verify *v = a->wait_head;
    while (v) {
        struct tt_access_verify *next = v->next;
        tt_secret_wipe(v->secret, sizeof(v->secret));
        free(v);
        v = next;
    }
    a->wait_head = a->wait_tail = NULL;
    a->nwaiting = 0;
    for (v = a->running_list; v; v = v->rnext)
        v->a = NULL;
    a->running_list = NULL;
    while ((v = a->later)) {
        a->later = v->next;
        free(v);
    }
    a->nlater = 0;
    if (a->later_timer_on && !uv_is_closing((uv_handle_t *)&a->later_timer))
        uv_close((uv_handle_t *)&a->later_timer, NULL);
    a->later_timer_on = false;
    while (a->conns)
        tt_access_untrack(a, a->conns);
    tt_users_reset(&a->users);
    free(a->dummy_phc);
    a->dummy_phc = NULL;
    tt_grants_free(a->grants);
    a->grants = NULL;
    tt_throttle_reset(&a->thr);
}

int tt_access_reload(struct tt_access *a, int64_t now, char err[TT_ERRLEN])
{
    struct tt_users fresh;
    if (!a->users_file[0])
        return 0;
    if (tt_users_load_file(&fresh, a->users_file, err) != 0)
        return -1;
    tt_users_reset(&a->users);
    a->users = fresh;
    /* the map points into fresh.v, which moved into a->users by value: still valid */
    tt_access_recheck(a, now);
    return 0;
}

bool tt_access_public(const struct tt_access *a, const char *device, const char *service)
{
    return a->mode == TT_ACCESS_PUBLIC ||
           tt_pattern_match_any(a->public_patterns, a->npublic, device, service);
}

bool tt_access_allows(const struct tt_access *a, const struct tt_principal *who, const char *device,
                      const char *service, int64_t now)
{
    if (tt_access_public(a, device, service))
        return true;
    switch (who ? who->kind : TT_PRINCIPAL_NONE) {
    case TT_PRINCIPAL_USER:
        return tt_user_allows(tt_users_find(&a->users, who->user), device, service);
    case TT_PRINCIPAL_GRANT:
        return a->grants != NULL && tt_grants_allows(a->grants, who->grant, device, service, now);
    default:
        return false;
    }
}

/* ---- the throttle ---------------------------------------------------------------------- */

static int64_t mono(const struct tt_access *a)
{
    return (int64_t)uv_now(a->loop);
}

/* A refusal of client (a failure, or throttled): logged per the throttle's policy (one line per
 * address per TT_THROTTLE_LOG_MS, then a summary). */
static void note_refusal(struct tt_access *a, struct tt_throttle_addr *e, bool throttled,
                         const char *what, const char *user, const char *client)
{
    if (!tt_throttle_note(&a->thr, e, throttled, mono(a)))
        return;
    TT_LOG(TT_LOG_INFO, "access refused kind=%s user=%s client=%s reason=%s", what, TT_LOG_V(user),
           TT_LOG_V(client), throttled ? "\"too many failed attempts\"" : "\"wrong credentials\"");
}

/* The entry of key when it is throttled now (touched, counted), else NULL with *e the entry
 * (NULL if none). */
static bool throttled(struct tt_access *a, const char *key, struct tt_throttle_addr **e)
{
    *e = tt_throttle_get(&a->thr, key, false, mono(a));
    if (!tt_throttle_blocked(*e, mono(a)))
        return false;
    tt_throttle_touch(&a->thr, *e, mono(a));
    a->checks_throttled++;
    return true;
}

/* ---- secret checks ------------------------------------------------------------------- */

static void start_next(struct tt_access *a);

static void work(uv_work_t *w)
{
    struct tt_access_verify *v = w->data;
    if (v->hashed)
        v->ok = tt_users_check_hash(v->phc, v->secret, v->len) && v->known;
}

/* The end of a check that ran (rc 0 or AUTH): a success gives back the failure it was counted
 * as; a failure stays counted and is logged per the throttle's policy. */
static void settle(struct tt_access *a, struct tt_access_verify *v, int rc)
{
    struct tt_throttle_addr *e = tt_throttle_get(&a->thr, v->akey, false, mono(a));
    if (rc == 0) {
        a->checks_ok++;
        if (e)
            tt_throttle_bucket_give(&e->b, TT_THROTTLE_BURST);
    } else {
        a->checks_failed++;
        note_refusal(a, e, false, "secret", v->user, v->client);
    }
}

static void after_work(uv_work_t *w, int status)
{
    struct tt_access_verify *v = w->data;
    struct tt_access *a = v->a;
    if (a != NULL) {
        a->running--;
        if (v->rprev)
            v->rprev->rnext = v->rnext;
        else
            a->running_list = v->rnext;
        if (v->rnext)
            v->rnext->rprev = v->rprev;
        int rc = status == 0 && v->ok ? 0 : TETHER_ERR_AUTH;
        settle(a, v, rc);
        if (v->cb != NULL) {
            struct tt_principal who;
            memset(&who, 0, sizeof(who));
            if (rc == 0) {
                who.kind = TT_PRINCIPAL_USER;
                memcpy(who.user, v->user, sizeof(who.user));
            }
            v->cb(v->ud, rc, rc == 0 ? &who : NULL);
        }
        start_next(a);
    }
    tt_secret_wipe(v->secret, sizeof(v->secret));
    free(v);
}

static void start_next(struct tt_access *a)
{
    while (a->running < TT_ACCESS_MAX_RUNNING && a->wait_head) {
        struct tt_access_verify *v = a->wait_head;
        a->wait_head = v->next;
        if (!a->wait_head)
            a->wait_tail = NULL;
        a->nwaiting--;
        v->next = NULL;
        if (v->cb == NULL) { /* cancelled while waiting: never checked, not a failure */
            struct tt_throttle_addr *e = tt_throttle_get(&a->thr, v->akey, false, mono(a));
            if (e)
                tt_throttle_bucket_give(&e->b, TT_THROTTLE_BURST);
            tt_secret_wipe(v->secret, sizeof(v->secret));
            free(v);
            continue;
        }
        if (!v->hashed) {
            /* plain: the answer is known; the thread pool gives the later loop turn */
            const struct tt_user *u = tt_users_find(&a->users, v->user);
            v->ok = v->known && tt_users_check_plain(u, v->secret, v->len);
        }
        v->work.data = v;
        v->rprev = NULL;
        v->rnext = a->running_list;
        if (a->running_list)
            a->running_list->rprev = v;
        a->running_list = v;
        a->running++;
        if (uv_queue_work(a->loop, &v->work, work, after_work) != 0) {
            /* cannot happen with valid arguments; answer no rather than never */
            v->ok = false;
            v->hashed = false;
            after_work(&v->work, UV_ECANCELED);
        }
    }
}

/* Answers the throttled checks (TETHER_ERR_THROTTLED), oldest first. */
static void on_later(uv_timer_t *t)
{
    struct tt_access *a = t->data;
    struct tt_access_verify *list = a->later, *v;
    a->later = NULL;
    a->nlater = 0;
    /* the list was built newest first */
    struct tt_access_verify *rev = NULL;
    while ((v = list)) {
        list = v->next;
        v->next = rev;
        rev = v;
    }
    while ((v = rev)) {
        rev = v->next;
        if (v->cb)
            v->cb(v->ud, TETHER_ERR_THROTTLED, NULL);
        free(v);
    }
}

int tt_access_verify(struct tt_access *a, const char *user, const uint8_t *secret, size_t len,
                     const char *client, tt_access_verify_cb cb, void *ud,
                     struct tt_access_verify **handle)
{
    char akey[TT_ADDRKEY_LEN];
    struct tt_throttle_addr *e;
    if (handle)
        *handle = NULL;
    tt_throttle_key(client, akey);
    if (throttled(a, akey, &e)) {
        /* not checked at all: answered at the next loop turn, the pool untouched */
        if (a->nlater >= TT_ACCESS_MAX_WAITING || !a->later_timer_on) {
            a->checks_busy++;
            return TETHER_ERR_AGAIN;
        }
        struct tt_access_verify *v = calloc(1, sizeof(*v));
        if (!v)
            return TETHER_ERR_NOMEM;
        note_refusal(a, e, true, "secret", user, client);
        v->cb = cb;
        v->ud = ud;
        v->next = a->later;
        a->later = v;
        a->nlater++;
        uv_timer_start(&a->later_timer, on_later, 0, 0);
        if (handle)
            *handle = v;
        return 0;
    }
    if (a->nwaiting >= TT_ACCESS_MAX_WAITING) {
        a->checks_busy++;
        return TETHER_ERR_AGAIN;
    }
    struct tt_access_verify *v = calloc(1, sizeof(*v));
    if (!v)
        return TETHER_ERR_NOMEM;
    v->a = a;
    v->cb = cb;
    v->ud = ud;
    snprintf(v->user, sizeof(v->user), "%s", user ? user : "");
    snprintf(v->akey, sizeof(v->akey), "%s", akey);
    snprintf(v->client, sizeof(v->client), "%s", client ? client : "");
    v->len = len < sizeof(v->secret) ? len : sizeof(v->secret);
    memcpy(v->secret, secret, v->len);
    const struct tt_user *u = len <= TT_USERS_SECRET_MAX && user && strlen(user) <= TT_MAX_NAME
                                  ? tt_users_find(&a->users, user)
                                  : NULL;
    v->known = u != NULL;
    if (u && u->hashed) {
        v->hashed = true;
        snprintf(v->phc, sizeof(v->phc), "%s", u->phc);
    } else if (!u && a->dummy_phc) {
        v->hashed = true; /* an unknown user costs what a hashed one does */
        snprintf(v->phc, sizeof(v->phc), "%s", a->dummy_phc);
    }
    /* counted as a failure until it succeeds: an address never has more than the burst of
     * checks under way */
    e = tt_throttle_get(&a->thr, akey, true, mono(a));
    tt_throttle_fail(e, mono(a));
    tt_throttle_touch(&a->thr, e, mono(a));
    if (a->wait_tail)
        a->wait_tail->next = v;
    else
        a->wait_head = v;
    a->wait_tail = v;
    a->nwaiting++;
    if (handle)
        *handle = v;
    start_next(a);
    return 0;
}

void tt_access_verify_cancel(struct tt_access_verify *v)
{
    if (v)
        v->cb = NULL;
}

int tt_access_verify_token(struct tt_access *a, const uint8_t *tok, size_t len, const char *client,
                           int64_t now, struct tt_principal *who)
{
    char akey[TT_ADDRKEY_LEN];
    struct tt_throttle_addr *e;
    memset(who, 0, sizeof(*who));
    tt_throttle_key(client, akey);
    if (throttled(a, akey, &e)) {
        note_refusal(a, e, true, "token", "", client);
        return TETHER_ERR_THROTTLED;
    }
    if (a->grants == NULL ||
        tt_grants_check_token(a->grants, tok, len, now, who->grant, who->user) != 0) {
        memset(who, 0, sizeof(*who));
        a->checks_failed++;
        e = tt_throttle_get(&a->thr, akey, true, mono(a));
        tt_throttle_fail(e, mono(a));
        tt_throttle_touch(&a->thr, e, mono(a));
        note_refusal(a, e, false, "token", "", client);
        return TETHER_ERR_AUTH;
    }
    a->checks_ok++;
    who->kind = TT_PRINCIPAL_GRANT;
    return 0;
}

/* ---- tracked connections ------------------------------------------------------------- */

void tt_access_track(struct tt_access *a, struct tt_access_conn *c)
{
    if (c->tracked)
        return;
    c->prev = NULL;
    c->next = a->conns;
    if (a->conns)
        a->conns->prev = c;
    a->conns = c;
    c->tracked = true;
    a->nconns++;
}

void tt_access_untrack(struct tt_access *a, struct tt_access_conn *c)
{
    if (!c->tracked)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->tracked = false;
    a->nconns--;
}

size_t tt_access_recheck(struct tt_access *a, int64_t now)
{
    size_t n = 0;
    struct tt_access_conn *c = a->conns;
    while (c) {
        struct tt_access_conn *next = c->next;
        if (!tt_access_allows(a, &c->who, c->device, c->service, now)) {
            tt_access_untrack(a, c);
            n++;
            TT_LOG(TT_LOG_INFO, "access revoked user=%s grant=%s device=%s service=%s",
                   TT_LOG_V(c->who.user), c->who.kind == TT_PRINCIPAL_GRANT ? c->who.grant : "-",
                   TT_LOG_V(c->device), TT_LOG_V(c->service));
            if (c->revoke)
                c->revoke(c, c->ud);
            /* the callback may have untracked others (never freed them): start over from the
             * head when next went away */
            if (next && !next->tracked)
                next = a->conns;
        }
        c = next;
    }
    a->revoked += n;
    return n;
}

size_t tt_access_tick(struct tt_access *a, int64_t now)
{
    tt_throttle_sweep(&a->thr, mono(a));
    if (a->grants && tt_grants_tick(a->grants, now) > 0)
        return tt_access_recheck(a, now);
    return 0;
}

/* ---- metrics ------------------------------------------------------------------------- */

static int add(char *out, size_t outlen, size_t *len, const char *fmt, ...) TT_PRINTF(4, 5);

static int add(char *out, size_t outlen, size_t *len, const char *fmt, ...)
{
    va_list ap;
    if (*len >= outlen)
        return -1;
    va_start(ap, fmt);
    int n = vsnprintf(out + *len, outlen - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= outlen - *len) {
        *len = outlen - 1;
        return -1;
    }
    *len += (size_t)n;
    return 0;
}

int tt_access_metrics(const struct tt_access *a, char *out, size_t outlen, size_t *len)
{
    struct tt_grants_stats gs;
    memset(&gs, 0, sizeof(gs));
    if (a->grants)
        tt_grants_get_stats(a->grants, &gs);
    int rc = add(
        out, outlen, len,
        "# HELP tether_access_checks_total Visitor credential checks (secrets and grant tokens): "
        "ok, failed (wrong user, secret or token), throttled (refused unchecked: too many "
        "failures from the address), busy (refused: too many checks waiting).\n"
        "# TYPE tether_access_checks_total counter\n"
        "tether_access_checks_total{result=\"ok\"} %llu\n"
        "tether_access_checks_total{result=\"failed\"} %llu\n"
        "tether_access_checks_total{result=\"throttled\"} %llu\n"
        "tether_access_checks_total{result=\"busy\"} %llu\n"
        "# HELP tether_access_throttle_addresses Client addresses whose failed checks are counted "
        "now (at most %d).\n"
        "# TYPE tether_access_throttle_addresses gauge\n"
        "tether_access_throttle_addresses %zu\n"
        "# HELP tether_access_throttle_evicted_total Addresses forgotten early to make room.\n"
        "# TYPE tether_access_throttle_evicted_total counter\n"
        "tether_access_throttle_evicted_total %llu\n"
        "# HELP tether_access_connections Connections made under a user or a grant, tracked "
        "for revocation.\n"
        "# TYPE tether_access_connections gauge\n"
        "tether_access_connections %zu\n"
        "# HELP tether_access_revoked_total Connections closed because their access went "
        "away (a user or grant removed, a grant deleted or expired).\n"
        "# TYPE tether_access_revoked_total counter\n"
        "tether_access_revoked_total %llu\n",
        (unsigned long long)a->checks_ok, (unsigned long long)a->checks_failed,
        (unsigned long long)a->checks_throttled, (unsigned long long)a->checks_busy,
        TT_THROTTLE_MAX_ADDRS, tt_throttle_addresses(&a->thr), (unsigned long long)a->thr.evicted,
        a->nconns, (unsigned long long)a->revoked);
    if (rc == 0)
        rc = add(out, outlen, len,
                 "# HELP tether_access_grants Grants of the admin API live now (cluster mode: "
                 "the cluster's, as this node last read them).\n"
                 "# TYPE tether_access_grants gauge\n"
                 "tether_access_grants %zu\n"
                 "# HELP tether_access_grants_max Cap on live grants (beyond: 503 to a create).\n"
                 "# TYPE tether_access_grants_max gauge\n"
                 "tether_access_grants_max %d\n"
                 "# HELP tether_access_grants_total Grants created and deleted through this "
                 "node's admin API, and expired in its store.\n"
                 "# TYPE tether_access_grants_total counter\n"
                 "tether_access_grants_total{event=\"created\"} %llu\n"
                 "tether_access_grants_total{event=\"deleted\"} %llu\n"
                 "tether_access_grants_total{event=\"expired\"} %llu\n",
                 a->grants ? tt_grants_count(a->grants) : 0, TT_GRANTS_MAX,
                 (unsigned long long)gs.created, (unsigned long long)gs.deleted,
                 (unsigned long long)gs.expired);
    if (rc == 0 && gs.cluster)
        rc = add(out, outlen, len,
                 "# HELP tether_access_grants_reads_total Cluster mode: reads of the grants' "
                 "changes from Redis (delta: the changes only; full: every grant).\n"
                 "# TYPE tether_access_grants_reads_total counter\n"
                 "tether_access_grants_reads_total{how=\"delta\"} %llu\n"
                 "tether_access_grants_reads_total{how=\"full\"} %llu\n"
                 "# HELP tether_access_grants_redis_failures_total Cluster mode: grant calls to "
                 "Redis that failed (the grants known stay until they expire).\n"
                 "# TYPE tether_access_grants_redis_failures_total counter\n"
                 "tether_access_grants_redis_failures_total %llu\n",
                 (unsigned long long)(gs.syncs - gs.full), (unsigned long long)gs.full,
                 (unsigned long long)gs.failures);
    return rc;
}
