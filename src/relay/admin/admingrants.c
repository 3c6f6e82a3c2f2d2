/* admingrants.c - the grants API of the admin listener (grants.h): GET, POST /api/grants, GET and
 * DELETE /api/grants/ID. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "tether_err.h"
#include "common/log.h"
#include "relay/admin/adminint.h"
#include "relay/core.h"

/* ---- grants (grants.h) ---- */

/* Largest POST /api/grants body: a user, 64 patterns and a ttl fit well within. */
#define TT_ADMIN_GRANT_BODY_MAX (16u * 1024)

/* One grant as the API shows it (never its token or hash), or NULL when out of memory. */
static json_t *grant_json(const struct tt_grant *gr)
{
    char created[32], expires[32];
    json_t *pats = json_array();
    for (size_t i = 0; pats && i < gr->npatterns; i++) {
        if (json_array_append_new(pats, json_string(gr->patterns[i])) != 0) {
            json_decref(pats);
            pats = NULL;
        }
    }
    if (!pats)
        return NULL;
    tt_admin_iso_time(gr->created, created);
    tt_admin_iso_time(gr->expires, expires);
    return json_pack("{s:s, s:s, s:o, s:s, s:s}", "id", gr->id, "user", gr->user, "grants", pats,
                     "created", created, "expires", expires);
}

/* An admin connection held while Redis answers a read, a create or a delete. */
struct held {
    struct tt_headconn *hc;
    struct tt_relay *r;
    struct tt_grants_job *job;
    char id[TT_GRANT_ID_LEN + 1]; /* GET /api/grants/ID: the grant asked for ("": the list) */
};

/* The admin connection went (the client, its deadline, the relay closing) before the answer. */
static void held_drop(struct tt_headconn *hc, void *ud)
{
    struct held *h = ud;
    (void)hc;
    tt_grants_job_cancel(h->job);
    free(h);
}

/* Holds hc for a job; NULL when out of memory (the caller answers without waiting). */
static struct held *hold(struct tt_headconn *hc, struct tt_relay *r)
{
    struct held *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->hc = hc;
    h->r = r;
    return h;
}

static void held_start(struct held *h, struct tt_grants_job *job)
{
    h->job = job;
    tt_admin_hold(h->hc, held_drop, h);
}

/* GET /api/grants: the grants the store holds now. */
static void grants_answer(struct tt_headconn *hc, struct tt_relay *r)
{
    int64_t now = tt_relay_now_ms();
    const struct tt_grant **v;
    size_t n;
    if (tt_grants_list(r->access.grants, now, &v, &n) != 0) {
        tt_admin_answer_error(hc, "500 Internal Server Error", NULL, "out of memory");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        if (json_array_append_new(arr, grant_json(v[i])) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    free(v);
    tt_admin_answer_json(hc, "200 OK", NULL, arr ? json_pack("{s:o}", "grants", arr) : NULL);
}

/* GET /api/grants/ID: the grant id, or 404. */
static void grant_answer(struct tt_headconn *hc, struct tt_relay *r, const char *id)
{
    const struct tt_grant *gr = tt_grants_find(r->access.grants, id, tt_relay_now_ms());
    if (!gr)
        tt_admin_answer_error(hc, "404 Not Found", NULL, "no such grant");
    else
        tt_admin_answer_json(hc, "200 OK", NULL, grant_json(gr));
}

/* The read of the cluster's grants is answered (applied, or not: the grants known stay). */
static void on_read(void *ud, int rc, const char *id, const char *token, int64_t expires,
                    const char *err)
{
    struct held *h = ud;
    (void)rc;
    (void)id;
    (void)token;
    (void)expires;
    (void)err;
    tt_admin_unhold(h->hc);
    if (h->id[0])
        grant_answer(h->hc, h->r, h->id);
    else
        grants_answer(h->hc, h->r);
    free(h);
}

/* Cluster mode: reads the cluster's grants from Redis, then answers (on_read); without Redis,
 * or when it cannot be asked now, answers at once from the grants known. id: GET /api/grants/ID,
 * NULL for the list. */
static void grants_read(struct tt_headconn *hc, struct tt_relay *r, const char *id)
{
    struct held *h = hold(hc, r);
    struct tt_grants_job *job = NULL;
    if (h) {
        snprintf(h->id, sizeof(h->id), "%s", id ? id : "");
        if (tt_grants_refresh_async(r->access.grants, tt_relay_now_ms(), on_read, h, &job) ==
            TT_GRANTS_PENDING) {
            held_start(h, job); /* answered by on_read */
            return;
        }
        free(h);
    }
    if (id)
        grant_answer(hc, r, id);
    else
        grants_answer(hc, r);
}

static void api_grants(struct tt_headconn *hc, struct tt_relay *r)
{
    /* cluster mode: the cluster's grants as Redis has them now (else the last ones read) */
    grants_read(hc, r, NULL);
}

static void api_grant(struct tt_headconn *hc, struct tt_relay *r, const char *id)
{
    if (tt_grants_find(r->access.grants, id, tt_relay_now_ms()))
        grant_answer(hc, r, id);
    else
        grants_read(hc, r, id); /* made on another node a moment ago? */
}

/* The answer to DELETE /api/grants/ID for rc (tt_grants_delete's). */
static void delete_answer(struct tt_headconn *hc, int rc, const char *id)
{
    if (rc == TETHER_ERR_IO) {
        tt_admin_answer_error(
            hc, "503 Service Unavailable", NULL,
            "the grant store (redis) cannot be reached: the grant is not revoked");
        return;
    }
    if (rc != 0) {
        tt_admin_answer_error(hc, "404 Not Found", NULL, "no such grant");
        return;
    }
    tt_admin_answer_json(hc, "200 OK", NULL, json_pack("{s:s}", "deleted", id));
}

/* This node's connections under the revoked grant id close now; the other nodes' at their next
 * read. */
void tt_admin_grant_revoked(struct tt_relay *r, const char *id)
{
    size_t closed = tt_access_recheck(&r->access, tt_relay_now_ms());
    if (closed)
        TT_LOG(TT_LOG_INFO, "grant revoked id=%s connections_closed=%zu", id, closed);
}

static void on_deleted(void *ud, int rc, const char *id, const char *token, int64_t expires,
                       const char *err)
{
    struct held *h = ud;
    (void)token;
    (void)expires;
    (void)err;
    tt_admin_unhold(h->hc);
    if (rc == 0)
        tt_admin_grant_revoked(h->r, id);
    delete_answer(h->hc, rc, id);
    free(h);
}

static void api_grant_delete(struct tt_headconn *hc, struct tt_relay *r, const char *id)
{
    struct held *h = hold(hc, r);
    struct tt_grants_job *job = NULL;
    if (!h && r->cluster) { /* never the synchronous call on the loop */
        tt_admin_answer_error(hc, "500 Internal Server Error", NULL, "out of memory");
        return;
    }
    int rc =
        h ? tt_grants_delete_async(r->access.grants, id, tt_relay_now_ms(), on_deleted, h, &job)
          : tt_grants_delete(r->access.grants, id, tt_relay_now_ms());
    if (rc == TT_GRANTS_PENDING) {
        held_start(h, job); /* answered by on_deleted */
        return;
    }
    free(h);
    if (rc == 0)
        tt_admin_grant_revoked(r, id);
    delete_answer(hc, rc, id);
}

/* The answer to POST /api/grants: the grant and its token, shown once, or the error. */
static void create_answer(struct tt_headconn *hc, int rc, const char *id, const char *token,
                          int64_t expires, const char *err)
{
    if (rc != 0) {
        tt_admin_answer_error(hc,
                              rc == TETHER_ERR_INVAL   ? "400 Bad Request"
                              : rc == TETHER_ERR_NOMEM ? "500 Internal Server Error"
                                                       : "503 Service Unavailable",
                              NULL, err);
        return;
    }
    /* The token's only appearance: written straight into the answer, which is then wiped. */
    char body[256], out[1024], exp[32];
    tt_admin_iso_time(expires, exp);
    int blen = snprintf(body, sizeof(body), "{\"id\":\"%s\",\"token\":\"%s\",\"expires\":\"%s\"}\n",
                        id, token, exp);
    int len = snprintf(out, sizeof(out),
                       "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                       "Content-Length: %d\r\nLocation: /api/grants/%s\r\n"
                       "Cache-Control: no-store\r\nConnection: close\r\n\r\n%s",
                       blen, id, body);
    tt_secret_wipe(body, sizeof(body));
    tt_headconn_respond(hc, out, len > 0 && (size_t)len < sizeof(out) ? (size_t)len : 0);
    tt_secret_wipe(out, sizeof(out));
}

static void on_created(void *ud, int rc, const char *id, const char *token, int64_t expires,
                       const char *err)
{
    struct held *h = ud;
    tt_admin_unhold(h->hc);
    create_answer(h->hc, rc, id, token, expires, err);
    free(h);
}

/* The body of POST /api/grants is here: make the grant and show its token, once (answered when
 * Redis has it, in cluster mode). */
static void grants_post_body(struct tt_headconn *hc, void *ud)
{
    struct tt_relay *r = ud;
    char err[TT_ERRLEN], id[TT_GRANT_ID_LEN + 1], token[TT_GRANT_TOKEN_LEN + 1];
    int64_t expires;
    struct tt_grants_request *rq = malloc(sizeof(*rq));
    if (!rq) {
        tt_admin_answer_error(hc, "500 Internal Server Error", NULL, "out of memory");
        return;
    }
    if (tt_grants_parse_request((const char *)hc->data + hc->headlen, tt_headconn_body_len(hc), rq,
                                err) != 0) {
        free(rq);
        tt_admin_answer_error(hc, "400 Bad Request", NULL, err);
        return;
    }
    struct held *h = hold(hc, r);
    struct tt_grants_job *job = NULL;
    /* no h: answered now, or refused in cluster mode (tt_grants_create_async) */
    int rc = tt_grants_create_async(r->access.grants, rq->user, rq->p, rq->n, rq->ttl_ms,
                                    tt_relay_now_ms(), id, token, &expires, err,
                                    h ? on_created : NULL, h, &job);
    free(rq);
    if (rc == TT_GRANTS_PENDING) {
        held_start(h, job); /* answered by on_created */
        return;
    }
    free(h);
    create_answer(hc, rc, id, token, expires, err);
    tt_secret_wipe(token, sizeof(token));
}

static void api_grants_post(struct tt_headconn *hc, struct tt_relay *r)
{
    const char *status;
    char why[64];
    if (!tt_admin_read_body(hc, r, TT_ADMIN_GRANT_BODY_MAX, grants_post_body, false, &status, why))
        tt_admin_answer_error(hc, status, NULL, why);
}

/* Routes /api/grants and /api/grants/ID (path[0..plen) starts with "/api/grants"). Returns false
 * when the path is another one. */
bool tt_admin_route_grants(struct tt_headconn *hc, struct tt_relay *r, const char *path,
                           size_t plen)
{
    static const char base[] = "/api/grants";
    size_t blen = sizeof(base) - 1;
    enum http_method m = hc->hp.p.method;
    bool get = m == HTTP_GET || m == HTTP_HEAD;
    if (plen < blen || memcmp(path, base, blen) != 0 || (plen > blen && path[blen] != '/'))
        return false;
    if (plen <= blen + 1) {
        if (get)
            api_grants(hc, r);
        else if (m == HTTP_POST)
            api_grants_post(hc, r);
        else
            tt_admin_answer_error(hc, "405 Method Not Allowed", "Allow: GET, HEAD, POST\r\n",
                                  "method not allowed");
        return true;
    }
    char id[TT_GRANT_ID_LEN + 1];
    size_t ilen = plen - blen - 1;
    if (ilen != TT_GRANT_ID_LEN) {
        tt_admin_answer_error(hc, "404 Not Found", NULL, "no such grant");
        return true;
    }
    memcpy(id, path + blen + 1, ilen);
    id[ilen] = '\0';
    if (get)
        api_grant(hc, r, id);
    else if (m == HTTP_DELETE)
        api_grant_delete(hc, r, id);
    else
        tt_admin_answer_error(hc, "405 Method Not Allowed", "Allow: GET, HEAD, DELETE\r\n",
                              "method not allowed");
    return true;
}
