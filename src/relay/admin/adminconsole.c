/* adminconsole.c - the console's pages and forms on the admin listener (adminpage.h): a device's
 * page, its deletion with a confirmation, the grants page and its forms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "tether_err.h"
#include "common/log.h"
#include "relay/admin/adminint.h"
#include "relay/core.h"
#include "relay/lib/form.h"

/* ---- the console's pages and forms (adminpage.h): a device, its deletion, grants ---- */

/* Form bodies of the console's actions: a name or id; a grant's fields. */
#define TT_ADMIN_FORM_BODY_MAX 4096u

static void answer_page(struct tt_headconn *hc, const char *status, struct tt_adminbuf *b)
{
    if (b->ok)
        tt_admin_answer(hc, status, "text/html; charset=utf-8", TT_ADMINPAGE_HEADERS, b->p, b->len);
    else
        tt_admin_answer_oom(hc);
    free(b->p);
}

static void done_page(struct tt_headconn *hc, const char *status, const char *title,
                      const char *text, const char *back, bool err)
{
    struct tt_adminbuf b = {.ok = true};
    struct tt_adminpage_ctx ctx;
    char server[TT_MAX_ADDR + 16];
    tt_admin_page_ctx(hc->set->ud, hc, &ctx, server);
    tt_adminpage_done(&b, &ctx, title, text, back, err);
    answer_page(hc, status, &b);
}

static void device_page_answer(struct tt_headconn *hc, struct tt_relay *r, struct rows *rs,
                               enum tt_admin_got got)
{
    if (got == TT_ADMIN_GOT_BUSY) {
        tt_admin_answer_busy(hc, r, false);
        return;
    }
    if (got != TT_ADMIN_GOT_OK) {
        tt_admin_answer_oom(hc);
        return;
    }
    if (rs->n == 0 || !rs->v[0].svcs) {
        done_page(hc, "404 Not Found", "tetherd: no such device", "No such device.", "/", true);
        return;
    }
    const struct row *w = &rs->v[0];
    struct tt_adminpage_row pr = {w->name,   w->label, w->node,  w->v.online, w->v.since, w->v.seen,
                                  w->remote, w->v.in,  w->v.out, w->streams,  w->svcs};
    struct tt_adminpage_ctx ctx;
    char server[TT_MAX_ADDR + 16];
    tt_admin_page_ctx(r, hc, &ctx, server);
    struct tt_adminbuf b = {.ok = true};
    tt_adminpage_device(&b, &ctx, &pr);
    answer_page(hc, "200 OK", &b);
}

/* GET /device?name=NAME */
static void device_page(struct tt_headconn *hc, struct tt_relay *r)
{
    char name[TT_MAX_NAME + 1];
    size_t nlen;
    if (!tt_admin_query_param(hc, "name", name, sizeof(name), &nlen)) {
        done_page(hc, "404 Not Found", "tetherd: no such device", "No such device.", "/", true);
        return;
    }
    tt_admin_rows_start(hc, r, name, device_page_answer);
}

/* GET /device/delete?name=NAME: the confirmation page. */
static void delete_confirm(struct tt_headconn *hc, struct tt_relay *r)
{
    char name[TT_MAX_NAME + 1];
    size_t nlen;
    if (!tt_admin_query_param(hc, "name", name, sizeof(name), &nlen)) {
        done_page(hc, "404 Not Found", "tetherd: no such device", "No such device.", "/", true);
        return;
    }
    struct tt_adminbuf b = {.ok = true};
    struct tt_adminpage_ctx ctx;
    char server[TT_MAX_ADDR + 16];
    tt_admin_page_ctx(r, hc, &ctx, server);
    tt_adminpage_confirm_delete(&b, &ctx, name);
    answer_page(hc, "200 OK", &b);
}

/* The answer to the delete form (tt_admin_delete_start). */
static void form_deleted(struct tt_headconn *hc, struct tt_relay *r, const char *name, int rc)
{
    char text[TT_MAX_NAME + 64];
    if (rc == 0) {
        TT_LOG(TT_LOG_INFO, "device deleted from the dashboard device=%s peer=%s", TT_LOG_V(name),
               hc->peer_ip);
        snprintf(text, sizeof(text), "Device %s deleted.", name);
        done_page(hc, "200 OK", "tetherd: device deleted", text, "/", false);
    } else if (rc == TETHER_ERR_CAPACITY) {
        tt_admin_answer_busy(hc, r, false);
    } else if (rc == TETHER_ERR_IO) {
        done_page(hc, "503 Service Unavailable", "tetherd: delete",
                  "The registry cannot be reached: nothing was deleted.", "/", true);
    } else if (rc == TETHER_ERR_NOMEM) {
        tt_admin_answer_oom(hc);
    } else {
        snprintf(text, sizeof(text), "No device %s (deleted already?).", name);
        done_page(hc, "404 Not Found", "tetherd: delete", text, "/", true);
    }
}

/* The body of POST /device/delete (name=NAME) is here. */
static void delete_form_body(struct tt_headconn *hc, void *ud)
{
    struct tt_relay *r = ud;
    char name[TT_MAX_NAME + 1];
    size_t nlen;
    if (tt_form_get(hc->data + hc->headlen, tt_headconn_body_len(hc), "name", name, sizeof(name),
                    &nlen) != 0) {
        done_page(hc, "400 Bad Request", "tetherd: delete", "The form has no device name.", "/",
                  true);
        return;
    }
    tt_admin_delete_start(hc, r, name, form_deleted);
}

typedef void (*form_cb)(struct tt_headconn *hc, void *ud);

/* Reads a form's body (at most max bytes), then calls cb. */
static void read_form(struct tt_headconn *hc, struct tt_relay *r, size_t max, form_cb cb)
{
    const char *status;
    char why[64];
    if (!tt_admin_read_body(hc, r, max, cb, true, &status, why))
        done_page(hc, status, "tetherd", why, "/", true);
}

/* The grants page with the grants the store holds now; token..: a grant just made (its token
 * shown once), err: the form's error. */
static void grants_render(struct tt_headconn *hc, struct tt_relay *r, const char *status,
                          const char *token, const char *id, int64_t expires, const char *err)
{
    int64_t now = tt_relay_now_ms();
    const struct tt_grant **v;
    size_t n;
    if (tt_grants_list(r->access.grants, now, &v, &n) != 0) {
        tt_admin_answer_oom(hc);
        return;
    }
    struct tt_adminpage_grant *g = n ? calloc(n, sizeof(*g)) : NULL;
    if (n && !g) {
        free(v);
        tt_admin_answer_oom(hc);
        return;
    }
    for (size_t i = 0; i < n; i++)
        g[i] = (struct tt_adminpage_grant){
            v[i]->id,        v[i]->user,    (const char *const *)v[i]->patterns,
            v[i]->npatterns, v[i]->created, v[i]->expires};
    struct tt_adminpage_ctx ctx;
    char server[TT_MAX_ADDR + 16];
    tt_admin_page_ctx(r, hc, &ctx, server);
    struct tt_adminbuf b = {.ok = true};
    tt_adminpage_grants(&b, &ctx, g, n, token, id, expires, err);
    free(g);
    free(v);
    if (b.ok)
        tt_admin_answer_secret(hc, status, "text/html; charset=utf-8", TT_ADMINPAGE_HEADERS, b.p,
                               b.len);
    else
        tt_admin_answer_oom(hc);
    if (b.p)
        tt_secret_wipe(b.p, b.cap); /* it may hold a token */
    free(b.p);
}

/* A console form held while Redis answers: the read of the grants for the grants page, a
 * create or a revoke. The connection's (freed by form_drop when it goes first); the token of a
 * grant just made is wiped when it goes. */
struct formjob {
    struct tt_headconn *hc;
    struct tt_relay *r;
    struct tt_grants_job *job;
    const char *status; /* the page's status line (a literal) */
    bool has_token, has_err;
    char token[TT_GRANT_TOKEN_LEN + 1];
    char id[TT_GRANT_ID_LEN + 1];
    int64_t expires;
    char err[TT_ERRLEN];
};

static void formjob_free(struct formjob *f)
{
    tt_secret_wipe(f->token, sizeof(f->token));
    free(f);
}

static void form_drop(struct tt_headconn *hc, void *ud)
{
    struct formjob *f = ud;
    (void)hc;
    tt_grants_job_cancel(f->job);
    formjob_free(f);
}

static void form_hold(struct formjob *f, struct tt_grants_job *job)
{
    f->job = job;
    tt_admin_hold(f->hc, form_drop, f);
}

/* The grants were read (or Redis did not answer: the grants known are shown). */
static void on_grants_read(void *ud, int rc, const char *id, const char *token, int64_t expires,
                           const char *err)
{
    struct formjob *f = ud;
    (void)rc;
    (void)id;
    (void)token;
    (void)expires;
    (void)err;
    tt_admin_unhold(f->hc);
    grants_render(f->hc, f->r, f->status, f->has_token ? f->token : NULL,
                  f->has_token ? f->id : NULL, f->expires, f->has_err ? f->err : NULL);
    formjob_free(f);
}

/* The grants page (as grants_render), after a read of the cluster's grants on the asynchronous
 * connection (cluster mode; at once otherwise, or when Redis cannot be asked now). */
static void grants_page(struct tt_headconn *hc, struct tt_relay *r, const char *status,
                        const char *token, const char *id, int64_t expires, const char *err)
{
    struct formjob *f = calloc(1, sizeof(*f));
    struct tt_grants_job *job = NULL;
    if (f) {
        *f = (struct formjob){.hc = hc, .r = r, .status = status, .expires = expires};
        if (token && id) {
            f->has_token = true;
            snprintf(f->token, sizeof(f->token), "%s", token);
            snprintf(f->id, sizeof(f->id), "%s", id);
        }
        if (err) {
            f->has_err = true;
            snprintf(f->err, sizeof(f->err), "%s", err);
        }
        if (tt_grants_refresh_async(r->access.grants, tt_relay_now_ms(), on_grants_read, f, &job) ==
            TT_GRANTS_PENDING) {
            form_hold(f, job); /* answered by on_grants_read */
            return;
        }
        formjob_free(f);
    }
    grants_render(hc, r, status, token, id, expires, err);
}

/* The answer to the grant form for rc (tt_grants_create's). */
static void grant_form_answer(struct tt_headconn *hc, struct tt_relay *r, int rc, const char *id,
                              const char *token, int64_t expires, const char *err)
{
    if (rc != 0) {
        grants_page(hc, r,
                    rc == TETHER_ERR_INVAL   ? "400 Bad Request"
                    : rc == TETHER_ERR_NOMEM ? "500 Internal Server Error"
                                             : "503 Service Unavailable",
                    NULL, NULL, 0, err);
        return;
    }
    TT_LOG(TT_LOG_INFO, "grant made from the dashboard id=%s peer=%s", id, hc->peer_ip);
    grants_page(hc, r, "201 Created", token, id, expires, NULL);
}

static void on_form_created(void *ud, int rc, const char *id, const char *token, int64_t expires,
                            const char *err)
{
    struct formjob *f = ud;
    struct tt_headconn *hc = f->hc;
    struct tt_relay *r = f->r;
    tt_admin_unhold(hc);
    formjob_free(f);
    grant_form_answer(hc, r, rc, id, token, expires, err);
}

/* The body of POST /grants (user, patterns separated by blanks or commas, ttl) is here: the
 * grant is made as POST /api/grants makes it (the same checks; in cluster mode answered once
 * Redis has it), its token shown once. */
static void grant_form_body(struct tt_headconn *hc, void *ud)
{
    struct tt_relay *r = ud;
    const uint8_t *body = hc->data + hc->headlen;
    size_t blen = tt_headconn_body_len(hc), n;
    char user[TT_MAX_NAME + 2], pats[2048], ttl[32], err[TT_ERRLEN];
    if (tt_form_get(body, blen, "user", user, sizeof(user), &n) != 0 ||
        tt_form_get(body, blen, "patterns", pats, sizeof(pats), &n) != 0) {
        grants_page(hc, r, "400 Bad Request", NULL, NULL, 0,
                    "user and devices/services are needed");
        return;
    }
    if (tt_form_get(body, blen, "ttl", ttl, sizeof(ttl), &n) != 0 || !ttl[0])
        snprintf(ttl, sizeof(ttl), "15m");
    json_t *arr = json_array();
    for (char *save = NULL, *p = strtok_r(pats, " ,\t\r\n", &save); arr && p;
         p = strtok_r(NULL, " ,\t\r\n", &save))
        if (json_array_append_new(arr, json_string(p)) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    json_t *j = arr ? json_pack("{s:s, s:o, s:s}", "user", user, "grants", arr, "ttl", ttl) : NULL;
    char *js = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    struct tt_grants_request *rq = js ? malloc(sizeof(*rq)) : NULL;
    if (!rq) {
        free(js);
        tt_admin_answer_oom(hc);
        return;
    }
    int prc = tt_grants_parse_request(js, strlen(js), rq, err);
    free(js);
    if (prc != 0) {
        free(rq);
        grants_page(hc, r, "400 Bad Request", NULL, NULL, 0, err);
        return;
    }
    char id[TT_GRANT_ID_LEN + 1], token[TT_GRANT_TOKEN_LEN + 1];
    int64_t expires;
    struct formjob *f = calloc(1, sizeof(*f));
    struct tt_grants_job *job = NULL;
    /* no f: answered now, or refused in cluster mode (tt_grants_create_async) */
    int rc = tt_grants_create_async(r->access.grants, rq->user, rq->p, rq->n, rq->ttl_ms,
                                    tt_relay_now_ms(), id, token, &expires, err,
                                    f ? on_form_created : NULL, f, &job);
    free(rq);
    if (rc == TT_GRANTS_PENDING) {
        f->hc = hc;
        f->r = r;
        form_hold(f, job); /* answered by on_form_created */
        return;
    }
    free(f);
    grant_form_answer(hc, r, rc, id, token, expires, err);
    tt_secret_wipe(token, sizeof(token));
}

/* The answer to the revoke form for rc (tt_grants_delete's). */
static void revoke_form_answer(struct tt_headconn *hc, struct tt_relay *r, int rc)
{
    if (rc == 0)
        tt_admin_answer(hc, "303 See Other", "text/plain; charset=utf-8", "Location: /grants\r\n",
                        "", 0);
    else
        grants_page(hc, r, rc == TETHER_ERR_IO ? "503 Service Unavailable" : "404 Not Found", NULL,
                    NULL, 0,
                    rc == TETHER_ERR_IO ? "the grant store (redis) cannot be reached: the grant "
                                          "is not revoked"
                                        : "no such grant (revoked or expired already?)");
}

static void on_form_revoked(void *ud, int rc, const char *id, const char *token, int64_t expires,
                            const char *err)
{
    struct formjob *f = ud;
    struct tt_headconn *hc = f->hc;
    struct tt_relay *r = f->r;
    (void)token;
    (void)expires;
    (void)err;
    tt_admin_unhold(hc);
    formjob_free(f);
    if (rc == 0)
        tt_admin_grant_revoked(r, id);
    revoke_form_answer(hc, r, rc);
}

/* The body of POST /grants/revoke (id=ID) is here. */
static void revoke_form_body(struct tt_headconn *hc, void *ud)
{
    struct tt_relay *r = ud;
    char id[TT_GRANT_ID_LEN + 2];
    size_t n;
    if (tt_form_get(hc->data + hc->headlen, tt_headconn_body_len(hc), "id", id, sizeof(id), &n) !=
            0 ||
        n != TT_GRANT_ID_LEN) {
        grants_page(hc, r, "400 Bad Request", NULL, NULL, 0, "the form has no grant id");
        return;
    }
    struct formjob *f = calloc(1, sizeof(*f));
    struct tt_grants_job *job = NULL;
    if (!f && r->cluster) { /* never the synchronous call on the loop */
        tt_admin_answer_oom(hc);
        return;
    }
    int rc = f ? tt_grants_delete_async(r->access.grants, id, tt_relay_now_ms(), on_form_revoked, f,
                                        &job)
               : tt_grants_delete(r->access.grants, id, tt_relay_now_ms());
    if (rc == TT_GRANTS_PENDING) {
        f->hc = hc;
        f->r = r;
        form_hold(f, job); /* answered by on_form_revoked */
        return;
    }
    free(f);
    if (rc == 0)
        tt_admin_grant_revoked(r, id);
    revoke_form_answer(hc, r, rc);
}

/* Routes the console's pages: /device, /device/delete, /grants, /grants/revoke. Returns false
 * when the path is another one. */
bool tt_admin_route_console(struct tt_headconn *hc, struct tt_relay *r, const char *path,
                            size_t plen)
{
    enum http_method m = hc->hp.p.method;
    bool get = m == HTTP_GET || m == HTTP_HEAD;
#define IS(lit) (plen == sizeof(lit) - 1 && memcmp(path, lit, plen) == 0)
    if (IS("/device")) {
        if (get)
            device_page(hc, r);
        else
            tt_admin_answer(hc, "405 Method Not Allowed", "text/plain; charset=utf-8",
                            "Allow: GET, HEAD\r\n", "method not allowed\n", 19);
    } else if (IS("/device/delete")) {
        if (get)
            delete_confirm(hc, r);
        else if (m == HTTP_POST)
            read_form(hc, r, TT_ADMIN_FORM_BODY_MAX, delete_form_body);
        else
            tt_admin_answer(hc, "405 Method Not Allowed", "text/plain; charset=utf-8",
                            "Allow: GET, HEAD, POST\r\n", "method not allowed\n", 19);
    } else if (IS("/grants")) {
        if (get)
            grants_page(hc, r, "200 OK", NULL, NULL, 0, NULL);
        else if (m == HTTP_POST)
            read_form(hc, r, TT_ADMIN_FORM_BODY_MAX, grant_form_body);
        else
            tt_admin_answer(hc, "405 Method Not Allowed", "text/plain; charset=utf-8",
                            "Allow: GET, HEAD, POST\r\n", "method not allowed\n", 19);
    } else if (IS("/grants/revoke")) {
        if (m == HTTP_POST)
            read_form(hc, r, TT_ADMIN_FORM_BODY_MAX, revoke_form_body);
        else
            tt_admin_answer(hc, "405 Method Not Allowed", "text/plain; charset=utf-8",
                            "Allow: POST\r\n", "method not allowed\n", 19);
    } else {
        return false;
    }
#undef IS
    return true;
}
