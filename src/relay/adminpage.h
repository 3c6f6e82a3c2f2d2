/* adminpage.h - the admin listener's HTML (SPEC "Admin API"): the dashboard, one page of the
 * fleet at a time (a search box, an online/offline filter, counts for the whole fleet and per
 * node, previous/next links that carry the query), and the sign-in page for --admin-token.
 * Self-contained pages: no script, no external resource. Everything the devices chose (names,
 * labels, services, addresses) is escaped. Pure: writes into the caller's buffer. */
#ifndef TT_ADMINPAGE_H
#define TT_ADMINPAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "adminbuf.h"
#include "adminquery.h"

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
};

/* Appends the dashboard's HTML for p to b. */
void tt_adminpage_dashboard(struct tt_adminbuf *b, const struct tt_adminpage *p);

/* Appends the sign-in page's HTML (a post form with a field named token); wrong: say the
 * token given was not right; throttled: say to wait. */
void tt_adminpage_signin(struct tt_adminbuf *b, bool wrong, bool throttled);

/* n bytes in words: "512 B", "1.5 KiB", "3.2 MiB", ... into out. */
void tt_adminpage_bytes(uint64_t n, char out[24]);

#endif
