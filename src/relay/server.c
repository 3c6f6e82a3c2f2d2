/* server.c - what the relay does with a request head on its main port (server.h):
 *   Host LABEL.DOMAIN or SERVICE--LABEL.DOMAIN of a known device -> proxied (or 503 offline);
 *   otherwise a WebSocket upgrade -> the device endpoint (any path);
 *   otherwise -> 404. Bad Host -> 400. */
#include <stdlib.h>
#include <string.h>
#include "tether_err.h"
#include "common/log.h"
#include "common/wshs.h"
#include "device.h"
#include "pages.h"
#include "forward.h"
#include "relay.h"
#include "respond.h"
#include "route.h"
#include "server.h"

struct hs_write {
    uv_write_t req;
    char data[512];
};

/* Answers with a rendered page; a HEAD request gets its head only. */
static void respond_raw(struct tt_headconn *hc, const char *out, int n)
{
    size_t len = n > 0 ? (size_t)n : 0;
    const char *end = n > 0 ? strstr(out, "\r\n\r\n") : NULL;
    if (end && hc->hp.p.method == HTTP_HEAD)
        len = (size_t)(end - out) + 4;
    tt_headconn_respond(hc, out, len);
}

static void respond_page(struct tt_headconn *hc, enum tt_page page)
{
    char out[TT_PAGE_MAX];
    int n = tt_pages_render(out, sizeof(out), page);
    TT_LOG(TT_LOG_DEBUG, "answered peer=%s:%u status=%d", hc->peer_ip, hc->peer_port,
           tt_pages_status(page));
    respond_raw(hc, out, n);
}

static void on_hs_written(uv_write_t *req, int status)
{
    (void)status; /* a failed write shows up on the wsconn as well */
    free(req->data);
}

/* A WebSocket upgrade that is not for a device address: the device endpoint. */
static void device_endpoint(struct tt_relay *r, struct tt_headconn *hc)
{
    const uint8_t *key, *ver, *proto;
    size_t keylen, verlen, protolen;
    if (hc->hp.p.method != HTTP_GET ||
        tt_headparse_find(&hc->hp, "sec-websocket-key", &key, &keylen) != 1 ||
        tt_headparse_find(&hc->hp, "sec-websocket-version", &ver, &verlen) != 1 || verlen != 2 ||
        memcmp(ver, "13", 2) != 0) {
        respond_page(hc, TT_PAGE_BAD_REQUEST);
        return;
    }
    bool sub = false;
    if (tt_headparse_find(&hc->hp, "sec-websocket-protocol", &proto, &protolen) > 0)
        sub = tt_headparse_has_token(proto, protolen, TT_WS_SUBPROTOCOL);
    struct hs_write *w = malloc(sizeof(*w));
    if (!w) {
        respond_page(hc, TT_PAGE_UNAVAILABLE);
        return;
    }
    int n = tt_wshs_server_response(w->data, sizeof(w->data), (const char *)key, keylen, sub);
    if (n <= 0) {
        free(w);
        respond_page(hc, TT_PAGE_BAD_REQUEST);
        return;
    }
    uv_tcp_t *tcp = tt_headconn_take(hc);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    w->req.data = w;
    if (uv_write(&w->req, (uv_stream_t *)tcp, &b, 1, on_hs_written) != 0) {
        free(w);
        tt_respond_drop(tcp);
        tt_headconn_free(hc);
        return;
    }
    tt_device_accept(r, tcp, hc->data + hc->headlen, hc->len - hc->headlen);
    tt_headconn_free(hc);
}

static bool is_websocket(struct tt_headconn *hc)
{
    const uint8_t *v;
    size_t vlen;
    return tt_headparse_find(&hc->hp, "upgrade", &v, &vlen) > 0 &&
           tt_headparse_has_token(v, vlen, "websocket");
}

/* Host names a device label: proxy, or say why not. */
static void to_device(struct tt_relay *r, struct tt_headconn *hc, struct tt_device *d,
                      const char *svc, const char *host)
{
    if (!d->conn) {
        char out[TT_PAGE_MAX];
        int n =
            tt_pages_offline(out, sizeof(out), d->offline_since / 1000, tt_relay_now_ms() / 1000);
        TT_LOG(TT_LOG_DEBUG, "answered peer=%s:%u status=503 device=%s offline", hc->peer_ip,
               hc->peer_port, d->name);
        respond_raw(hc, out, n);
        return;
    }
    if (!tt_device_online(d)) {
        respond_page(hc, TT_PAGE_UNAVAILABLE);
        return;
    }
    int idx = tt_device_http_service(d, svc);
    if (idx < 0) {
        respond_page(hc, svc[0] ? TT_PAGE_NOT_FOUND : TT_PAGE_NO_SERVICE);
        return;
    }
    uv_tcp_t *tcp = tt_headconn_take(hc);
    tt_forward_http(d, idx, tcp, hc->data, hc->len, host, hc->peer_ip, hc->peer_port);
    (void)r;
    tt_headconn_free(hc);
}

void tt_server_on_head(struct tt_headconn *hc, void *ud)
{
    struct tt_relay *r = ud;
    const uint8_t *hv;
    size_t hvlen;
    char host[TT_HOSTLEN];
    if (tt_headparse_find(&hc->hp, "host", &hv, &hvlen) != 1 ||
        tt_route_host_normalize(hv, hvlen, host) != 0) {
        respond_page(hc, TT_PAGE_BAD_REQUEST);
        return;
    }
    char label[TT_MAX_LABEL + 1], svc[TT_ROUTE_SVCLEN + 1];
    enum tt_route_kind kind = tt_route_classify(host, r->cfg.domain, label, svc);
    if (kind == TT_ROUTE_DEVICE) {
        struct tt_device *d = tt_device_by_label(r, label);
        if (d) {
            to_device(r, hc, d, svc, host);
            return;
        }
    }
    if (is_websocket(hc)) {
        device_endpoint(r, hc);
        return;
    }
    respond_page(hc, TT_PAGE_NOT_FOUND);
}
