/* pages.h - the relay's own HTTP answers to browsers: small HTML pages (a <title> and one
 * sentence) wrapped in a complete HTTP/1.1 response with Content-Type text/html; charset=utf-8,
 * Content-Length and Connection: close. Pure: writes into the caller's buffer. */
#ifndef TT_PAGES_H
#define TT_PAGES_H

#include <stddef.h>
#include <stdint.h>

/* A buffer this large holds any page. */
#define TT_PAGE_MAX 2048

enum tt_page {
    TT_PAGE_BAD_REQUEST = 0,  /* 400: malformed request or Host */
    TT_PAGE_NOT_FOUND,        /* 404: no device has this address (unknown or expired label) */
    TT_PAGE_TOO_LARGE,        /* 431: request head over 16 KiB */
    TT_PAGE_BAD_GATEWAY,      /* 502: the device's local service refused or failed */
    TT_PAGE_NO_SERVICE,       /* 502: the device offers no web service under this name */
    TT_PAGE_BUSY,             /* 503: the device has as many open streams as it accepts */
    TT_PAGE_UNAVAILABLE,      /* 503: the relay could not reach the device (shutting down...) */
    TT_PAGE_URI_TOO_LONG,     /* 414: request target over 8 KiB */
    TT_PAGE_UPGRADE_REQUIRED, /* 426: a WebSocket version other than 13 (with
                                 Sec-WebSocket-Version: 13) */
    TT_PAGE_REQUEST_TIMEOUT,  /* 408: a request body not whole by its deadline */
    TT_PAGE_NOT_IMPLEMENTED,  /* 501: a request body in a transfer coding other than chunked */
    TT_PAGE_HTTP_ON_TLS,      /* 400: a plain HTTP request on a --tls-listen port */
};

/* Writes the whole response for page into out. Returns its length, or -1 if outlen is too
 * small (TT_PAGE_MAX is always enough). */
int tt_pages_render(char *out, size_t outlen, enum tt_page page);

/* Writes the 503 "Device offline" response: the device is offline since the unix time since
 * (as ISO-8601 UTC and "N minutes ago", counted from now). Returns its length or -1. */
int tt_pages_offline(char *out, size_t outlen, int64_t since, int64_t now);

/* The status code of page (400, 404...). */
int tt_pages_status(enum tt_page page);

#endif
