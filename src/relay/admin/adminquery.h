/* adminquery.h - the query of GET /api/devices and of the dashboard (SPEC "Admin API"):
 * limit=N&after=NAME&online=true|false&q=TEXT, read as a browser's GET form writes it
 * (application/x-www-form-urlencoded: '+' is a space, %XX a byte; form.h decodes), and the
 * filter and page it asks for.
 *  - limit: decimal 1..TT_ADMINQUERY_LIMIT_MAX; more is taken as the maximum; 0, a sign or
 *    anything not a number is refused. Default TT_ADMINQUERY_LIMIT_MAX.
 *  - after: the page starts after this name (byte order, strcmp); at most TT_MAX_NAME bytes.
 *  - online: "true" or "false" (also "1"/"0"); anything else is refused.
 *  - q: at most TT_ADMINQUERY_Q_MAX bytes; matches a device whose name or label contains it,
 *    ASCII letters compared without regard to case (labels are lower case; names as given).
 * An empty value is the same as an absent one; other parameters are ignored; a parameter given
 * twice, a bad %-escape or a decoded control byte is refused. Pure: no allocation. */
#ifndef TT_ADMINQUERY_H
#define TT_ADMINQUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tether_err.h"
#include "common/util.h"
#include "core/frame.h"

#define TT_ADMINQUERY_LIMIT_MAX 1000u
#define TT_ADMINQUERY_Q_MAX 64u

enum tt_adminquery_state {
    TT_ADMINQUERY_ANY = 0,
    TT_ADMINQUERY_ONLINE,
    TT_ADMINQUERY_OFFLINE,
};

struct tt_adminquery {
    size_t limit;                    /* 1..TT_ADMINQUERY_LIMIT_MAX */
    bool limit_given;                /* false: limit is the default (the caller may lower it) */
    char after[TT_MAX_NAME + 1];     /* "": from the first name */
    uint8_t state;                   /* enum tt_adminquery_state */
    char q[TT_ADMINQUERY_Q_MAX + 1]; /* lower-cased; "": no text filter */
    size_t qlen;
};

/* Parses the query string s[0..len) (what follows '?', without it; len 0: none) into *out.
 * Returns 0, or TETHER_ERR_INVAL with a one-line reason in err (the API answers it 400). */
int tt_adminquery_parse(const char *s, size_t len, struct tt_adminquery *out, char err[TT_ERRLEN]);

/* True when a device called name (NUL-terminated) with label label ("" or NULL: none), online
 * or not, passes q's filters (state and text; not the page). */
bool tt_adminquery_match(const struct tt_adminquery *q, const char *name, const char *label,
                         bool online);

/* True when name comes after q's "after" (always when it has none): it may be on the page. */
bool tt_adminquery_after(const struct tt_adminquery *q, const char *name);

/* Writes q back as a query string into out[0..cap) (NUL-terminated): the parameters that
 * were given (limit when limit_given), percent-encoded, "after" replaced by after (NULL: left out),
 * with a leading '?' when anything is written. Returns the length, or -1 when it does not fit. For
 * the dashboard's links. */
int tt_adminquery_format(const struct tt_adminquery *q, const char *after, char *out, size_t cap);

#endif
