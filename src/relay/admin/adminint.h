/* adminint.h - what the files of the admin listener share (admin.c dispatches; each of the
 * others answers one part: adminanswer.c, admindevview.c, admindevapi.c, admingrants.c,
 * adminmetrics.c, admindrain.c, admindash.c, adminconsole.c, adminsignin.c). Internal to
 * src/relay/admin/: nothing else includes it. Every answer closes the connection.
 * Return values: as the relay's code around it (0 or a negative tether_err; bool for "done"). */
#ifndef TT_ADMININT_H
#define TT_ADMININT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "relay/admin/adminbuf.h"
#include "relay/admin/adminpage.h"
#include "relay/admin/adminquery.h"
#include "relay/cluster/cluster.h"
#include "relay/http/headconn.h"

struct tt_cluster_dev;
struct tt_device;
struct tt_relay;

/* The commit built (buildinfo.c; not linked into unit tests: NULL there). */
extern const char *const tt_buildinfo_commit __attribute__((weak));

struct devlist {
    struct tt_device **v;
    size_t n, cap;
    int64_t now;
    bool ok;
};

/* What the admin API shows of d, at now. */
struct view {
    bool online;
    char url[TT_MAX_ADDR + 1];
    char since[32], seen[32];
    const char *remote; /* "" if never connected */
    uint64_t in, out;
};

/* One device as the API and the dashboard show it: a device of this node, or (cluster mode) a
 * record of the shared registry. */
struct row {
    char name[TT_MAX_NAME + 1];
    char label[TT_MAX_LABEL + 1];
    char node[TT_NODE_ID_MAX + 1]; /* cluster mode: the holder while online, else "" */
    struct view v;
    char remote[64];
    uint64_t streams;
    json_t *svcs; /* owned; NULL when out of memory */
};

/* Devices as shown, by name: a page (tt_admin_page_start) or one device (tt_admin_rows_start). In
 * cluster mode a device of this node is shown from memory, the others' as their holders published
 * them (this node's alone when Redis cannot be reached). Free with tt_admin_rows_free. */
struct rows {
    struct row *v;
    size_t n;
    int64_t now;
};

/* One page of the devices a query asks for, with the counts the dashboard shows. */
struct page {
    struct rows rs; /* the page, by name */
    size_t total;   /* devices that match, on every page */
    char next[TT_MAX_NAME + 1];
    bool has_next;
    char prev[TT_MAX_NAME + 1]; /* the page before starts after this ("": the first) */
    size_t online, offline;     /* every known device */
    /* cluster mode: online devices per live node (cp.nodes) */
    struct tt_cluster_page cp;
    bool cluster; /* cp was read */
};

/* ---- answers (adminanswer.c) ---- */

/* Sends status with body[0..len) (left out for HEAD) and closes. extra: more header lines,
 * each ending in CRLF, or NULL. */
void tt_admin_answer(struct tt_headconn *hc, const char *status, const char *ctype,
                     const char *extra, const char *body, size_t len);
/* tt_admin_answer() for a body holding a secret (a grant's token): every copy is wiped once sent.
 */
void tt_admin_answer_secret(struct tt_headconn *hc, const char *status, const char *ctype,
                            const char *extra, const char *body, size_t len);
/* 500 with no body (out of memory), and closes. */
void tt_admin_answer_oom(struct tt_headconn *hc);
/* Answers 200 with the page built in b (of type ctype), or 500 if building it ran out of
 * memory (ok false or b->ok false); frees b's bytes either way. */
void tt_admin_answer_built(struct tt_headconn *hc, bool ok, const char *ctype,
                           struct tt_adminbuf *b);
/* Sends status with the JSON j (taken; NULL: out of memory, then 500) as the body. */
void tt_admin_answer_json(struct tt_headconn *hc, const char *status, const char *extra, json_t *j);
/* Sends status with {"error": msg}. */
void tt_admin_answer_error(struct tt_headconn *hc, const char *status, const char *extra,
                           const char *msg);
/* Holds hc after on_head while a job on the asynchronous Redis connection answers it later (a
 * walk over the registry, a read or write of the grants): the job is the connection's. Reading
 * goes on (what comes is dropped) so that the client going frees hc at once; hc going first
 * (the client, its deadline, the relay stopping) calls on_drop(hc, ud) (headconn.h), which
 * cancels the job and frees its state. */
void tt_admin_hold(struct tt_headconn *hc, void (*on_drop)(struct tt_headconn *hc, void *ud),
                   void *ud);
/* The job answers hc now: on_drop is no longer called. */
void tt_admin_unhold(struct tt_headconn *hc);
/* 503 with Retry-After (TT_CLUSTER_WALK_RETRY_S): the walks over the registry are at their cap
 * (TT_CLUSTER_WALKS_MAX) or one took longer than TT_CLUSTER_WALK_MS. json: the API's error,
 * else an HTML page. */
void tt_admin_answer_busy(struct tt_headconn *hc, struct tt_relay *r, bool json);
/* Reads hc's request body of at most max bytes, then calls on_body(hc, r): at once when it is
 * all here, else from the headconn once it is (tt_headconn_read_body). Returns true then; false
 * when the body cannot be read, with the answer to give in *status ("411 Length Required": no
 * Content-Length; "413 Content Too Large": over max; "400 Bad Request": anything else) and why
 * (a sentence for a form's page when form is true, else the API's lower-case reason). */
bool tt_admin_read_body(struct tt_headconn *hc, struct tt_relay *r, size_t max,
                        tt_headconn_cb on_body, bool form, const char **status, char why[64]);

/* ---- the devices as shown (admindevview.c) ---- */

/* True when d is offline past the grace period (shown nowhere any more). */
bool tt_admin_gone(const struct tt_device *d, int64_t now);
/* qsort comparator of struct tt_device pointers by name (byte order). */
int tt_admin_by_name(const void *a, const void *b);
/* The devices the registry knows (online, or offline within the grace period), by name.
 * Returns false when out of memory. Free l->v. */
bool tt_admin_collect(struct tt_relay *r, struct devlist *l);
/* ISO-8601 UTC ("2026-11-25T03:20:00Z") of unix milliseconds ms, "" for 0. */
void tt_admin_iso_time(int64_t ms, char out[32]);
/* What the admin API shows of d at now, into v. */
void tt_admin_view_of(const struct tt_device *d, int64_t now, struct view *v);
/* The API's JSON object of row w (a new reference; takes w->svcs), or NULL when out of memory. */
json_t *tt_admin_row_json(const struct tt_relay *r, struct row *w);
/* Frees what a page or a device read put in rs. */
void tt_admin_rows_free(struct rows *rs);
/* What a read of the devices came to. BUSY: the walks' cap or time limit (answer 503 with
 * tt_admin_answer_busy). */
enum tt_admin_got {
    TT_ADMIN_GOT_OK,
    TT_ADMIN_GOT_NOMEM,
    TT_ADMIN_GOT_BUSY,
};
/* The answer to tt_admin_rows_start: must answer hc. rs (the device called name, if known: rs->n
 * 0 or 1; empty unless OK) is freed by the caller after the call. */
typedef void (*tt_admin_rows_cb)(struct tt_headconn *hc, struct tt_relay *r, struct rows *rs,
                                 enum tt_admin_got got);
/* Reads the device called name and calls cb: now, or (cluster mode) once Redis answered, hc held
 * meanwhile (tt_admin_hold; cb is not called if hc goes first). */
void tt_admin_rows_start(struct tt_headconn *hc, struct tt_relay *r, const char *name,
                         tt_admin_rows_cb cb);
/* Frees what a page read put in pg. */
void tt_admin_page_free(struct page *pg);
/* The answer to tt_admin_page_start: must answer hc. pg (empty unless OK) is freed by the caller
 * after the call; q is the query read, flag the caller's. */
typedef void (*tt_admin_page_cb)(struct tt_headconn *hc, struct tt_relay *r,
                                 const struct tt_adminquery *q, struct page *pg,
                                 enum tt_admin_got got, bool flag);
/* Reads the page q asks for and calls cb: now, or (cluster mode) once the walk over the registry
 * ended (tt_cluster_page_async), hc held meanwhile (cb is not called if hc goes first). Without
 * Redis (it cannot be reached, or did not answer a step in time) the page shows this node's
 * devices only, as before. */
void tt_admin_page_start(struct tt_headconn *hc, struct tt_relay *r, const struct tt_adminquery *q,
                         bool flag, tt_admin_page_cb cb);
/* Cluster mode: whether cd is shown (known: online, or offline within the grace period). */
bool tt_admin_record_known(const struct tt_relay *r, const struct tt_cluster_dev *cd, int64_t now);
/* The query of the request hc (what follows '?' in its target), parsed into q; false after
 * answering 400 (json: the API's JSON error, else a line of text). */
bool tt_admin_query_of(struct tt_headconn *hc, struct tt_adminquery *q, bool json);

/* ---- the device API (admindevapi.c) ---- */

/* GET /api/devices: a page of the device list (adminquery.h). */
void tt_admin_api_devices(struct tt_headconn *hc, struct tt_relay *r);
/* GET /api/devices/NAME: one device, or 404. */
void tt_admin_api_device(struct tt_headconn *hc, struct tt_relay *r, const char *name);
/* A single relay's delete (synchronous, SQLite): name's device key first (the name is then free
 * for a new device, even when its record expired long ago), then the device this node has.
 * Returns 0 when either was there, TETHER_ERR_NOT_FOUND when neither, or the registry's error
 * (nothing deleted when the key's deletion failed). In a cluster: TETHER_ERR_IO (its deletes go
 * through tt_admin_delete_start; this is reached only once the asynchronous connection closed). */
int tt_admin_delete_device(struct tt_relay *r, const char *name);
/* The answer to a delete started by tt_admin_delete_start: rc as tt_admin_delete_device's, or
 * TETHER_ERR_CAPACITY (TT_ADMIN_DELETES_MAX deletes waiting: nothing done). name is the job's
 * (valid during the call). */
typedef void (*tt_admin_deleted_cb)(struct tt_headconn *hc, struct tt_relay *r, const char *name,
                                    int rc);
/* Deletes name as tt_admin_delete_device does, then calls cb: at once without a cluster
 * (synchronous, SQLite), else from the reply of one script on the asynchronous Redis connection
 * (tt_registry_erase_async), hc held meanwhile (tt_admin_hold: cb is not called if hc goes
 * first; the delete still completes). A device this node holds is closed at the reply. */
void tt_admin_delete_start(struct tt_headconn *hc, struct tt_relay *r, const char *name,
                           tt_admin_deleted_cb cb);
/* DELETE /api/devices/NAME: 200 {"deleted"}, or 404. */
void tt_admin_api_delete(struct tt_headconn *hc, struct tt_relay *r, const char *name);

/* ---- the grants API (admingrants.c) ---- */

/* Grant id was revoked: this node's connections under it close now (the other nodes' at their
 * next read of the grants). */
void tt_admin_grant_revoked(struct tt_relay *r, const char *id);
/* Routes /api/grants and /api/grants/ID (path[0..plen) starts with "/api/grants"). Returns false
 * when the path is another one. */
bool tt_admin_route_grants(struct tt_headconn *hc, struct tt_relay *r, const char *path,
                           size_t plen);

/* ---- /metrics (adminmetrics.c) ---- */

/* GET /metrics: Prometheus text (tether_*). */
void tt_admin_metrics(struct tt_headconn *hc, struct tt_relay *r);

/* ---- /api/drain (admindrain.c) ---- */

/* POST /api/drain (202, idempotent), DELETE /api/drain (200: devices are taken again), GET
 * /api/drain (the state). */
void tt_admin_api_drain(struct tt_headconn *hc, struct tt_relay *r);

/* ---- the dashboard (admindash.c) ---- */

/* The value of field name in the request's query string into out (form.h's decoding): true
 * when it is there and well formed. */
bool tt_admin_query_param(struct tt_headconn *hc, const char *name, char *out, size_t cap,
                          size_t *len);
/* What every console page needs (now, grace, the relay's URL into server, modes), into c. */
void tt_admin_page_ctx(struct tt_relay *r, struct tt_headconn *hc, struct tt_adminpage_ctx *c,
                       char *server);
/* GET /: one page of the fleet (TT_ADMINPAGE_LIMIT devices unless the query says), never the
 * whole of it. signout: the request came with a session (a sign-out button is shown). */
void tt_admin_dashboard(struct tt_headconn *hc, struct tt_relay *r, bool signout);

/* ---- the console's pages and forms (adminconsole.c) ---- */

/* Routes the console's pages: /device, /device/delete, /grants, /grants/revoke. Returns false
 * when the path is another one. */
bool tt_admin_route_console(struct tt_headconn *hc, struct tt_relay *r, const char *path,
                            size_t plen);

/* ---- sign-in (adminsignin.c) ---- */

/* The sign-in page (401; 429 when throttled). */
void tt_admin_signin_page(struct tt_headconn *hc, bool wrong, bool throttled);
/* The live session the request's Cookie headers carry: its slot, or -1; *v, *vlen its value. */
int tt_admin_session_of(struct tt_headconn *hc, struct tt_relay *r, const uint8_t **v,
                        size_t *vlen);
/* POST /: the sign-in form's body checked, a session and its cookie made. */
void tt_admin_signin_post(struct tt_headconn *hc, struct tt_relay *r);
/* POST /signout: the session ends, the cookie is cleared. */
void tt_admin_signout(struct tt_headconn *hc, struct tt_relay *r, const uint8_t *v, size_t vlen);
/* The sign-in sessions' lines of /metrics, appended to b. */
void tt_admin_session_metrics(struct tt_adminbuf *b, const struct tt_relay *r);

#endif
