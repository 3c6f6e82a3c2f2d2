/* pages.c - HTML error pages of the relay (pages.h). Static text plus numbers: nothing from the
 * request is echoed, so nothing needs escaping. */
#include <stdio.h>
#include <time.h>
#include "relay/http/pages.h"

struct page_text {
    int status;
    const char *reason;
    const char *title;
    const char *sentence;
    const char *header; /* an extra header line with its CRLF, or NULL */
};

static const struct page_text texts[] = {
    [TT_PAGE_BAD_REQUEST] = {400, "Bad Request", "Bad request",
                             "The relay could not understand this request."},
    [TT_PAGE_NOT_FOUND] = {404, "Not Found", "Unknown device",
                           "No device is known at this address: the address is wrong or the "
                           "device has been offline for too long and lost it."},
    [TT_PAGE_TOO_LARGE] = {431, "Request Header Fields Too Large", "Request too large",
                           "The request head is larger than the 16 KiB the relay accepts."},
    [TT_PAGE_BAD_GATEWAY] = {502, "Bad Gateway", "Device service unavailable",
                             "The device is online, but its local web service refused the "
                             "connection or failed."},
    [TT_PAGE_NO_SERVICE] = {502, "Bad Gateway", "No web service",
                            "The device is online, but it offers no web service at this "
                            "address."},
    [TT_PAGE_BUSY] = {503, "Service Unavailable", "Device busy",
                      "The device is online, but it has as many open connections as it accepts; "
                      "try again shortly."},
    [TT_PAGE_UNAVAILABLE] = {503, "Service Unavailable", "Device unreachable",
                             "The relay could not reach the device just now; try again "
                             "shortly."},
    [TT_PAGE_URI_TOO_LONG] = {414, "URI Too Long", "Address too long",
                              "The requested address is longer than the 8 KiB the relay "
                              "accepts."},
    [TT_PAGE_UPGRADE_REQUIRED] = {426, "Upgrade Required", "Unsupported WebSocket version",
                                  "The relay speaks WebSocket version 13 only.",
                                  "Sec-WebSocket-Version: 13\r\n"},
    [TT_PAGE_REQUEST_TIMEOUT] = {408, "Request Timeout", "Request too slow",
                                 "The request did not arrive in time: it was sent too slowly."},
    [TT_PAGE_NOT_IMPLEMENTED] = {501, "Not Implemented", "Transfer coding not supported",
                                 "The relay accepts request bodies sent as they are or in chunked "
                                 "transfer coding only."},
    [TT_PAGE_HTTP_ON_TLS] = {400, "Bad Request",
                             "The plain HTTP request was sent to the HTTPS port",
                             "This port speaks HTTPS only: use an https:// address."},
};

static int render(char *out, size_t outlen, int status, const char *reason, const char *title,
                  const char *sentence, const char *header)
{
    char body[1536];
    int blen = snprintf(body, sizeof(body),
                        "<!DOCTYPE html>\n"
                        "<html><head><meta charset=\"utf-8\"><title>%s</title></head>\n"
                        "<body><h1>%s</h1>\n<p>%s</p>\n"
                        "<hr><p><small>Tether relay</small></p></body></html>\n",
                        title, title, sentence);
    if (blen < 0 || (size_t)blen >= sizeof(body))
        return -1;
    int n = snprintf(out, outlen,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: text/html; charset=utf-8\r\n"
                     "Content-Length: %d\r\n"
                     "Cache-Control: no-store\r\n"
                     "Connection: close\r\n"
                     "%s"
                     "\r\n%s",
                     status, reason, blen, header ? header : "", body);
    return n < 0 || (size_t)n >= outlen ? -1 : n;
}

int tt_pages_render(char *out, size_t outlen, enum tt_page page)
{
    if ((size_t)page >= sizeof(texts) / sizeof(texts[0]))
        page = TT_PAGE_BAD_REQUEST;
    const struct page_text *t = &texts[page];
    return render(out, outlen, t->status, t->reason, t->title, t->sentence, t->header);
}

int tt_pages_offline(char *out, size_t outlen, int64_t since, int64_t now)
{
    char iso[32];
    struct tm tm;
    time_t ts = (time_t)since;
    if (!gmtime_r(&ts, &tm) || strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(iso, sizeof(iso), "an unknown time");
    int64_t mins = now > since ? (now - since) / 60 : 0;
    char sentence[256];
    snprintf(sentence, sizeof(sentence),
             "This device is offline: it has been offline since %s (%lld minute%s ago).", iso,
             (long long)mins, mins == 1 ? "" : "s");
    return render(out, outlen, 503, "Service Unavailable", "Device offline", sentence, NULL);
}

int tt_pages_status(enum tt_page page)
{
    if ((size_t)page >= sizeof(texts) / sizeof(texts[0]))
        return 400;
    return texts[page].status;
}
