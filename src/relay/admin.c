/* admin.c - answers on the admin listener (admin.h). Every answer closes the connection. */
#include <string.h>
#include "admin.h"
#include "relay.h"

static const char healthz[] = "HTTP/1.1 200 OK\r\n"
                              "Content-Type: text/plain; charset=utf-8\r\n"
                              "Content-Length: 3\r\n"
                              "Cache-Control: no-store\r\n"
                              "Connection: close\r\n"
                              "\r\n"
                              "ok\n";

static const char not_found[] = "HTTP/1.1 404 Not Found\r\n"
                                "Content-Type: text/plain; charset=utf-8\r\n"
                                "Content-Length: 10\r\n"
                                "Connection: close\r\n"
                                "\r\n"
                                "not found\n";

static const char not_allowed[] = "HTTP/1.1 405 Method Not Allowed\r\n"
                                  "Allow: GET, HEAD\r\n"
                                  "Content-Type: text/plain; charset=utf-8\r\n"
                                  "Content-Length: 19\r\n"
                                  "Connection: close\r\n"
                                  "\r\n"
                                  "method not allowed\n";

void tt_admin_on_head(struct tt_headconn *hc, void *ud)
{
    struct tt_relay *r = ud;
    const char *path = (const char *)hc->data + hc->hp.url_off;
    size_t plen = hc->hp.url_len;
    const char *q = memchr(path, '?', plen);
    if (q)
        plen = (size_t)(q - path);
    bool get = hc->hp.p.method == HTTP_GET, head = hc->hp.p.method == HTTP_HEAD;
    if (plen == 8 && memcmp(path, "/healthz", 8) == 0 && !r->stopping) {
        if (!get && !head)
            tt_headconn_respond(hc, not_allowed, sizeof(not_allowed) - 1);
        else
            tt_headconn_respond(hc, healthz, sizeof(healthz) - 1 - (head ? 3 : 0));
        return;
    }
    tt_headconn_respond(hc, not_found, sizeof(not_found) - 1);
}
