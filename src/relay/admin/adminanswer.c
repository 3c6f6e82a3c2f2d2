/* adminanswer.c - answers of the admin listener shared by its pages and APIs (adminint.h): a status
 * with a body, JSON, an error, the out-of-memory answer, and a request body read with the answers
 * to a missing, oversized or bad one (411, 413, 400). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "tether_err.h"
#include "relay/admin/adminint.h"

static const char oom[] = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                          "Connection: close\r\n\r\n";

/* Sends status with body[0..len) (left out for HEAD) and closes. extra: more header lines,
 * each ending in CRLF, or NULL. */
void tt_admin_answer(struct tt_headconn *hc, const char *status, const char *ctype,
                     const char *extra, const char *body, size_t len)
{
    struct tt_adminbuf b = {.ok = true};
    tt_adminbuf_fmt(&b,
                    "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                    "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                    status, ctype, len, extra ? extra : "");
    if (hc->hp.p.method != HTTP_HEAD)
        tt_adminbuf_add(&b, body, len);
    if (b.ok)
        tt_headconn_respond(hc, b.p, b.len);
    else
        tt_headconn_respond(hc, oom, sizeof(oom) - 1);
    free(b.p);
}

/* tt_admin_answer() for a body holding a secret (a grant's token): every copy is wiped once sent.
 */
void tt_admin_answer_secret(struct tt_headconn *hc, const char *status, const char *ctype,
                            const char *extra, const char *body, size_t len)
{
    struct tt_adminbuf b = {.ok = true};
    tt_adminbuf_fmt(&b,
                    "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                    "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                    status, ctype, len, extra ? extra : "");
    if (hc->hp.p.method != HTTP_HEAD)
        tt_adminbuf_add(&b, body, len);
    if (b.ok)
        tt_headconn_respond(hc, b.p, b.len);
    else
        tt_headconn_respond(hc, oom, sizeof(oom) - 1);
    if (b.p)
        tt_secret_wipe(b.p, b.cap);
    free(b.p);
}

void tt_admin_answer_oom(struct tt_headconn *hc)
{
    tt_admin_answer(hc, "500 Internal Server Error", "text/plain; charset=utf-8", NULL,
                    "out of memory\n", 14);
}

/* Answers 200 with the page built in b (of type ctype), or 500 if building it ran out of
 * memory (ok false or b->ok false); frees b's bytes either way. */
void tt_admin_answer_built(struct tt_headconn *hc, bool ok, const char *ctype,
                           struct tt_adminbuf *b)
{
    if (ok && b->ok)
        tt_admin_answer(hc, "200 OK", ctype, NULL, b->p, b->len);
    else
        tt_admin_answer_oom(hc);
    free(b->p);
}

void tt_admin_answer_json(struct tt_headconn *hc, const char *status, const char *extra, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) {
        tt_admin_answer(hc, "500 Internal Server Error", "application/json", NULL,
                        "{\"error\":\"out of memory\"}\n", 26);
        return;
    }
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (t) {
        s = t;
        s[n++] = '\n';
        s[n] = '\0';
    }
    tt_admin_answer(hc, status, "application/json", extra, s, n);
    free(s);
}

bool tt_admin_read_body(struct tt_headconn *hc, struct tt_relay *r, size_t max,
                        tt_headconn_cb on_body, bool form, const char **status, char why[64])
{
    int rc = tt_headconn_read_body(hc, max, on_body);
    if (rc == 0)
        return true; /* on_body follows, from the headconn */
    if (rc == 1) {
        on_body(hc, r);
        return true;
    }
    if (rc == TETHER_ERR_HTTP) {
        *status = "411 Length Required";
        snprintf(why, 64, "%s",
                 form ? "A Content-Length is required." : "a Content-Length is required");
    } else if (rc == TETHER_ERR_TOO_LARGE) {
        *status = "413 Content Too Large";
        if (form)
            snprintf(why, 64, "The form is too large.");
        else
            snprintf(why, 64, "the body is larger than %zu KiB", max / 1024);
    } else {
        *status = "400 Bad Request";
        snprintf(why, 64, "%s", form ? "Bad request body." : "bad request body");
    }
    return false;
}

void tt_admin_answer_error(struct tt_headconn *hc, const char *status, const char *extra,
                           const char *msg)
{
    tt_admin_answer_json(hc, status, extra, json_pack("{s:s}", "error", msg));
}

/* ---- held requests ---- */

/* While held, what the client sends is read into the free end of hc's chunk (past its head and
 * body, which stay) and dropped: reading goes on only to see the client go. */
static void held_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct tt_headconn *hc = h->data;
    (void)size;
    *buf = uv_buf_init((char *)hc->buf->data + hc->len, (unsigned)(TT_CHUNK_SIZE - hc->len));
}

static void held_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread < 0)
        tt_headconn_free(s->data); /* the client went (or reset): on_drop cancels the job */
}

void tt_admin_hold(struct tt_headconn *hc, void (*on_drop)(struct tt_headconn *hc, void *ud),
                   void *ud)
{
    hc->on_drop = on_drop;
    hc->drop_ud = ud;
    tt_conn_read_stop(hc->conn);
    /* on failure reading stays stopped: a client that went is seen when it is answered */
    (void)tt_conn_read_start(hc->conn, held_alloc, held_read);
}

void tt_admin_unhold(struct tt_headconn *hc)
{
    hc->on_drop = NULL;
    hc->drop_ud = NULL;
    tt_conn_read_stop(hc->conn);
}

void tt_admin_answer_busy(struct tt_headconn *hc, struct tt_relay *r, bool json)
{
    char extra[48];
    snprintf(extra, sizeof(extra), "Retry-After: %d\r\n", TT_CLUSTER_WALK_RETRY_S);
    static const char why[] = "the registry is busy (too many requests waiting for it, or one "
                              "took too long): retry later";
    if (json) {
        tt_admin_answer_error(hc, "503 Service Unavailable", extra, why);
        return;
    }
    char headers[sizeof(TT_ADMINPAGE_HEADERS) + sizeof(extra)];
    snprintf(headers, sizeof(headers), "%s%s", TT_ADMINPAGE_HEADERS, extra);
    struct tt_adminbuf b = {.ok = true};
    struct tt_adminpage_ctx ctx;
    char server[TT_MAX_ADDR + 16];
    tt_admin_page_ctx(r, hc, &ctx, server);
    tt_adminpage_done(
        &b, &ctx, "tetherd: busy",
        "The registry is busy (too many requests waiting for it, or one took too long). "
        "Try again in a moment.",
        "/", true);
    if (b.ok)
        tt_admin_answer(hc, "503 Service Unavailable", "text/html; charset=utf-8", headers, b.p,
                        b.len);
    else
        tt_admin_answer_oom(hc);
    free(b.p);
}
