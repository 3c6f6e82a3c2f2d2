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

/* Devices as shown, by name: a page (tt_admin_page_get) or one device (tt_admin_rows_get). In
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

void tt_admin_answer(struct tt_headconn *hc, const char *status, const char *ctype,
                     const char *extra, const char *body, size_t len);
void tt_admin_answer_secret(struct tt_headconn *hc, const char *status, const char *ctype,
                            const char *extra, const char *body, size_t len);
void tt_admin_answer_oom(struct tt_headconn *hc);
void tt_admin_answer_built(struct tt_headconn *hc, bool ok, const char *ctype,
                           struct tt_adminbuf *b);
void tt_admin_answer_json(struct tt_headconn *hc, const char *status, const char *extra, json_t *j);
void tt_admin_answer_error(struct tt_headconn *hc, const char *status, const char *extra,
                           const char *msg);
/* Reads hc's request body of at most max bytes, then calls on_body(hc, r): at once when it is
 * all here, else from the headconn once it is (tt_headconn_read_body). Returns true then; false
 * when the body cannot be read, with the answer to give in *status ("411 Length Required": no
 * Content-Length; "413 Content Too Large": over max; "400 Bad Request": anything else) and why
 * (a sentence for a form's page when form is true, else the API's lower-case reason). */
bool tt_admin_read_body(struct tt_headconn *hc, struct tt_relay *r, size_t max,
                        tt_headconn_cb on_body, bool form, const char **status, char why[64]);

/* ---- the devices as shown (admindevview.c) ---- */

bool tt_admin_gone(const struct tt_device *d, int64_t now);
int tt_admin_by_name(const void *a, const void *b);
bool tt_admin_collect(struct tt_relay *r, struct devlist *l);
void tt_admin_iso_time(int64_t ms, char out[32]);
void tt_admin_view_of(const struct tt_device *d, int64_t now, struct view *v);
json_t *tt_admin_row_json(const struct tt_relay *r, struct row *w);
void tt_admin_rows_free(struct rows *rs);
bool tt_admin_rows_get(struct tt_relay *r, const char *name, struct rows *rs);
void tt_admin_page_free(struct page *pg);
bool tt_admin_page_get(struct tt_relay *r, const struct tt_adminquery *q, struct page *pg);
bool tt_admin_record_known(const struct tt_relay *r, const struct tt_cluster_dev *cd, int64_t now);
bool tt_admin_query_of(struct tt_headconn *hc, struct tt_adminquery *q, bool json);

/* ---- the device API (admindevapi.c) ---- */

void tt_admin_api_devices(struct tt_headconn *hc, struct tt_relay *r);
void tt_admin_api_device(struct tt_headconn *hc, struct tt_relay *r, const char *name);
int tt_admin_delete_device(struct tt_relay *r, const char *name);
void tt_admin_api_delete(struct tt_headconn *hc, struct tt_relay *r, const char *name);

/* ---- the grants API (admingrants.c) ---- */

int tt_admin_grant_revoke(struct tt_relay *r, const char *id);
bool tt_admin_route_grants(struct tt_headconn *hc, struct tt_relay *r, const char *path,
                           size_t plen);

/* ---- /metrics (adminmetrics.c) ---- */

void tt_admin_metrics(struct tt_headconn *hc, struct tt_relay *r);

/* ---- /api/drain (admindrain.c) ---- */

void tt_admin_api_drain(struct tt_headconn *hc, struct tt_relay *r);

/* ---- the dashboard (admindash.c) ---- */

bool tt_admin_query_param(struct tt_headconn *hc, const char *name, char *out, size_t cap,
                          size_t *len);
void tt_admin_page_ctx(struct tt_relay *r, struct tt_headconn *hc, struct tt_adminpage_ctx *c,
                       char *server);
void tt_admin_dashboard(struct tt_headconn *hc, struct tt_relay *r, bool signout);

/* ---- the console's pages and forms (adminconsole.c) ---- */

bool tt_admin_route_console(struct tt_headconn *hc, struct tt_relay *r, const char *path,
                            size_t plen);

/* ---- sign-in (adminsignin.c) ---- */

void tt_admin_signin_page(struct tt_headconn *hc, bool wrong, bool throttled);
int tt_admin_session_of(struct tt_headconn *hc, struct tt_relay *r, const uint8_t **v,
                        size_t *vlen);
void tt_admin_signin_post(struct tt_headconn *hc, struct tt_relay *r);
void tt_admin_signout(struct tt_headconn *hc, struct tt_relay *r, const uint8_t *v, size_t vlen);
void tt_admin_session_metrics(struct tt_adminbuf *b, const struct tt_relay *r);

#endif
