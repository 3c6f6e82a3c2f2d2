/* adminpage.h - the admin listener's HTML (SPEC "Admin API"): the dashboard, one page of the
 * fleet at a time (the relay summary, a search box, an online/offline filter, counts for the
 * whole fleet and per node, previous/next links that carry the query, a meta refresh), a
 * device's page (copyable HOST:PORT and tether connect lines, the delete button), the delete
 * confirmation, the grants page (make, list, revoke), and the sign-in page for --admin-token.
 * Self-contained pages: no script, no external resource. Everything the devices chose (names,
 * labels, services, addresses) is escaped. Pure: writes into the caller's buffer. */
#ifndef TT_ADMINPAGE_H
#define TT_ADMINPAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "relay/admin/adminbuf.h"
#include "relay/admin/adminquery.h"

/* The dashboard's page size when the query gives no limit. */
#define TT_ADMINPAGE_LIMIT 100u

/* Header lines every admin HTML page is sent with (CSP: no script, nothing framed). */
#define TT_ADMINPAGE_HEADERS                                                                       \
    "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; form-action "         \
    "'self'; frame-ancestors 'none'; base-uri 'none'\r\nX-Frame-Options: DENY\r\n"                 \
    "Referrer-Policy: same-origin\r\n"

/* One device of the page as the API shows it (admin.c's row). Borrowed for the call. */
struct tt_adminpage_row {
    const char *name, *label;
    const char *node; /* cluster: its holder while online, else "" */
    bool online;
    const char *since, *seen; /* ISO-8601 or "" */
    const char *remote;       /* "" if never connected */
    uint64_t in, out, streams;
    const json_t *svcs; /* the API's "services" array (may be NULL) */
};

struct tt_adminpage_node {
    const char *id;
    size_t online;
    bool draining; /* the node drains (cluster.h) */
    bool self;     /* this node */
};

/* The relay summary at the top of the dashboard (strings borrowed for the call). */
struct tt_adminpage_summary {
    const char *version;
    int64_t uptime_s;      /* -1: unknown */
    const char *listeners; /* HTML, trusted (built by admin.c): device/browser URL, TLS, admin */
    uint64_t bytes_in, bytes_out, streams; /* this node's totals since start */
    bool draining;                         /* this node drains (POST /api/drain) */
    int64_t draining_since_ms;
    const struct tt_adminpage_node *nodes; /* cluster: every live node, this one first */
    size_t nnodes;
};

/* What the pages need to write a device's TCP "tether connect" line. */
struct tt_adminpage_ctx {
    int64_t now_ms;      /* unix ms: "3 min ago" */
    uint64_t grace_ms;   /* an offline device's label is kept this long after it was last seen */
    const char *server;  /* the relay's URL for tether connect --server (ws://HOST:PORT) */
    bool private_mode;   /* --access private: the connect line has --grant */
    const char *node_id; /* cluster: this node (shown in the top bar); NULL: not a cluster */
    bool signout;        /* signed in with a session: the top bar has the sign-out button */
};

struct tt_adminpage {
    const struct tt_adminquery *q; /* as parsed (its limit already the page's) */
    const char *node_id;           /* cluster: this node; NULL: not a cluster */
    size_t live_nodes;
    const struct tt_adminpage_node *nodes; /* online devices per node */
    size_t nnodes;
    size_t total, online, offline; /* matching; online and offline in all */
    bool partial;                  /* cluster, Redis unreachable: this node's devices only */
    const struct tt_adminpage_row *rows;
    size_t nrows;
    const char *next;        /* the next page starts after this; NULL: no next page */
    const char *prev;        /* the page before starts after this ("": the first); NULL: none */
    const char *access_html; /* a paragraph on the access rules (HTML, trusted), or NULL */
    bool signout;            /* signed in with a session: show the sign-out button */
    const struct tt_adminpage_summary *sum; /* or NULL */
    const struct tt_adminpage_ctx *ctx;     /* or NULL: times as UTC only */
    unsigned refresh;                       /* seconds between reloads (meta refresh); 0: none */
};

/* A device's own page (GET /device?name=NAME): its fields in words, a copyable HOST:PORT and
 * "tether connect" line per TCP service, and a button to its delete confirmation. */
void tt_adminpage_device(struct tt_adminbuf *b, const struct tt_adminpage_ctx *c,
                         const struct tt_adminpage_row *w);

/* The delete confirmation page of device name (a post form to /device/delete). */
void tt_adminpage_confirm_delete(struct tt_adminbuf *b, const struct tt_adminpage_ctx *c,
                                 const char *name);

/* A short page saying what an action did (text, escaped here), with a link back to back_href
 * (trusted). err: shown as an error. */
void tt_adminpage_done(struct tt_adminbuf *b, const struct tt_adminpage_ctx *c, const char *title,
                       const char *text, const char *back_href, bool err);

/* One grant as the grants page lists it (borrowed for the call). */
struct tt_adminpage_grant {
    const char *id, *user;
    const char *const *patterns;
    size_t npatterns;
    int64_t created_ms, expires_ms;
};

/* The grants page: the list (each with a revoke button), the form making one (user,
 * patterns, ttl). token/token_id/token_expires_ms: a grant just made, its token shown this once
 * (NULL: none); err: the form's error (NULL: none). */
void tt_adminpage_grants(struct tt_adminbuf *b, const struct tt_adminpage_ctx *c,
                         const struct tt_adminpage_grant *g, size_t n, const char *token,
                         const char *token_id, int64_t token_expires_ms, const char *err);

/* "3 min ago" / "in 2 h" of unix ms t at now (out: at least 32 bytes). */
void tt_adminpage_ago(int64_t t, int64_t now, char out[32]);

/* Appends the dashboard's HTML for p to b. */
void tt_adminpage_dashboard(struct tt_adminbuf *b, const struct tt_adminpage *p);

/* Appends the sign-in page's HTML (a post form with a field named token); wrong: say the
 * token given was not right; throttled: say to wait. */
void tt_adminpage_signin(struct tt_adminbuf *b, bool wrong, bool throttled);

/* n bytes in words: "512 B", "1.5 KiB", "3.2 MiB", ... into out. */
void tt_adminpage_bytes(uint64_t n, char out[24]);

#endif
