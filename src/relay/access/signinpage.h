/* signinpage.h - the relay's own pages for browser sign-in (SPEC "Who may reach a device"):
 * the sign-in form (401), the pages that refuse (403, 429, 503), the sign-out confirmation and
 * the signed-out page (200), and the redirects (303 after signing in, 307 to send a sign-in
 * form again on a new connection). Each is a complete HTTP/1.1 response (Connection: close)
 * with a small self-contained HTML page: no script, no external resource, one inline style
 * allowed by its hash in a Content-Security-Policy that also forbids framing. Usable on a
 * phone (viewport, large controls). The device's and the service's names, which the device
 * chose, are escaped; nothing else from the request is shown. Pure: writes into the caller's
 * buffer. */
#ifndef TT_SIGNINPAGE_H
#define TT_SIGNINPAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A buffer this large holds any page (the redirects also need room for their Location: see
 * tt_signinpage_redirect). */
#define TT_SIGNINPAGE_MAX 8192

enum tt_signinpage_kind {
    TT_SIGNINPAGE_FORM = 0,    /* 401: the sign-in form */
    TT_SIGNINPAGE_WRONG,       /* 401: the form again: "the user or the secret is not right" */
    TT_SIGNINPAGE_FORBIDDEN,   /* 403: signed in, but no grant covers this service */
    TT_SIGNINPAGE_CROSS_SITE,  /* 403: a request made by another site's page, refused */
    TT_SIGNINPAGE_THROTTLED,   /* 429: too many failed attempts from this address */
    TT_SIGNINPAGE_BUSY,        /* 503: too many sign-ins being checked */
    TT_SIGNINPAGE_SIGNOUT,     /* 200: a form to confirm signing out */
    TT_SIGNINPAGE_SIGNED_OUT,  /* 200: signed out */
    TT_SIGNINPAGE_BAD_FORM,    /* 400: a sign-in form the relay cannot read */
    TT_SIGNINPAGE_UNAVAILABLE, /* 503 with Retry-After: the cluster's session store did not
                                  answer (or too many requests wait for it) */
    TT_SIGNINPAGE_COUNT
};

struct tt_signinpage {
    enum tt_signinpage_kind kind;
    const char *device, *service; /* shown on the page (escaped); NULL: not shown */
    const char *set_cookie;       /* a whole Set-Cookie value to send, or NULL */
    bool head_only;               /* answer to a HEAD request: no body */
};

/* Writes the response for p into out. Returns its length, or -1 when outlen is too small
 * (TT_SIGNINPAGE_MAX is always enough). */
int tt_signinpage_render(char *out, size_t outlen, const struct tt_signinpage *p);

/* Writes a redirect (status 303 or 307) to the absolute URL scheme://host + path, where
 * host[0..hostlen) is the request's Host value (checked: a host name or address with an
 * optional port) and path[0..pathlen) the request target's path and query (checked: starts
 * with '/' but not "//", no control byte, space or backslash; anything else gives "/"), with
 * set_cookie (or NULL) and an empty body. Returns its length, or -1 when outlen is too small or
 * host is not a host (TT_SIGNINPAGE_MAX + pathlen is always enough). */
int tt_signinpage_redirect(char *out, size_t outlen, int status, bool https, const uint8_t *host,
                           size_t hostlen, const uint8_t *path, size_t pathlen,
                           const char *set_cookie);

/* The status code of kind. */
int tt_signinpage_status(enum tt_signinpage_kind kind);

/* HTML-escapes s (at most inlen bytes, stops at a NUL) into out[0..outlen) (NUL-terminated):
 * & < > " ' as entities, bytes outside printable ASCII as '?'. Returns the length written. */
size_t tt_signinpage_escape(const char *s, size_t inlen, char *out, size_t outlen);

#endif
