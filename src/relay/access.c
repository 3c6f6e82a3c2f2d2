/* access.c - access decisions, secret checks and revocation (access.h). A check is a small
 * heap object: it waits in a FIFO (capped) for one of TT_ACCESS_MAX_RUNNING slots in libuv's
 * thread pool, where the argon2id work runs on copies of the hash line and the secret; its
 * after-work callback answers on the loop. Plain secrets (SHA-256) take the same path so that
 * every answer comes from a later loop turn. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tether_err.h"
#include "common/log.h"
#include "access.h"

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
    uint8_t sha[32];
    uint8_t secret[TT_USERS_SECRET_MAX];
    size_t len;
    bool ok;
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
    while (a->conns)
        tt_access_untrack(a, a->conns);
    tt_users_reset(&a->users);
    free(a->dummy_phc);
    a->dummy_phc = NULL;
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

/* ---- secret checks ------------------------------------------------------------------- */

static void start_next(struct tt_access *a);

static void work(uv_work_t *w)
{
    struct tt_access_verify *v = w->data;
    if (v->hashed)
        v->ok = tt_users_check_hash(v->phc, v->secret, v->len) && v->known;
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
        if (v->cb != NULL) {
            struct tt_principal who;
            memset(&who, 0, sizeof(who));
            if (rc == 0) {
                who.kind = TT_PRINCIPAL_USER;
                memcpy(who.user, v->user, sizeof(who.user));
                a->checks_ok++;
            } else {
                a->checks_failed++;
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
        if (v->cb == NULL) { /* cancelled while waiting */
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

int tt_access_verify(struct tt_access *a, const char *user, const uint8_t *secret, size_t len,
                     const char *client, tt_access_verify_cb cb, void *ud,
                     struct tt_access_verify **handle)
{
    (void)client; /* the per-address throttle of failures is not built yet */
    if (handle)
        *handle = NULL;
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
    (void)client; /* the per-address throttle of failures is not built yet */
    memset(who, 0, sizeof(*who));
    if (a->grants == NULL ||
        tt_grants_check_token(a->grants, tok, len, now, who->grant, who->user) != 0) {
        memset(who, 0, sizeof(*who));
        return TETHER_ERR_AUTH;
    }
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
            TT_LOG(TT_LOG_INFO, "access revoked user=%s device=%s service=%s",
                   TT_LOG_V(c->who.user), TT_LOG_V(c->device), TT_LOG_V(c->service));
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
