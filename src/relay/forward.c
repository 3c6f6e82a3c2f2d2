/* forward.c - opening device streams for browser and TCP clients (forward.h). Each HTTP client
 * gets a small state (the request filter) that lives as long as its pipe, on a process-wide
 * list that one timer sweeps for the idle and head timeouts (the relay runs one loop on one
 * thread). */
#include <stdio.h>
#include <stdlib.h>
#include "tether_err.h"
#include "common/log.h"
#include "common/pipe.h"
#include "httpproxy.h"
#include "httpstats.h"
#include "pages.h"
#include "forward.h"
#include "respond.h"

struct http_client {
    struct tt_httpproxy hx;
    char origin[TT_MAX_ADDR];
    struct tt_pipe *pipe;
    struct http_client *prev, *next; /* the clients list, once the pipe exists */
    uint64_t head_since;             /* loop time a later request head began; 0: none pending */
    uint64_t head_req;               /* hx.requests when it began */
    bool timed_out;
};

/* Every HTTP client with a pipe, and the timer that enforces their timeouts. */
static struct {
    uv_loop_t *loop;
    uv_timer_t timer;
    bool started;
    uint64_t idle_ms, head_ms;
    struct http_client *list;
} clients;

static void unlink_client(struct http_client *hc)
{
    if (hc->prev)
        hc->prev->next = hc->next;
    else if (clients.list == hc)
        clients.list = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    hc->prev = hc->next = NULL;
}

/* The answer to a request on a proxied connection that the filter refused (counted): the
 * refusal's page, or 503 for the relay's own failure (out of memory, a full queue). */
static enum tt_page refusal_page(const struct http_client *hc)
{
    enum tt_page page = tt_httpstats_refuse((enum tt_http_refusal)hc->hx.reason);
    return hc->hx.reason == TT_REFUSAL_NONE ? TT_PAGE_UNAVAILABLE : page;
}

static int emit(void *ud, const uint8_t *data, size_t len)
{
    return tt_pipe_send(ud, data, len);
}

/* Counts and logs what the filter reported (x->events), and lets the pipe offer the client's
 * held bytes again when the filter can take them. */
static void take_events(struct http_client *hc, struct tt_pipe *p)
{
    unsigned ev = hc->hx.events;
    hc->hx.events = 0;
    if (ev & TT_HTTPPROXY_EV_FULL)
        tt_httpstats.pipeline_full++;
    if (ev & TT_HTTPPROXY_EV_DECLINED) {
        tt_httpstats.upgrades_declined++;
        TT_LOG(TT_LOG_DEBUG, "upgrade declined by the device peer=%s stream=%u", hc->origin,
               (unsigned)tt_pipe_stream_id(p));
    }
    if (ev & TT_HTTPPROXY_EV_LOST) {
        tt_httpstats.tracking_lost++;
        TT_LOG(TT_LOG_INFO,
               "unreadable response from the device: no more requests on this connection "
               "peer=%s stream=%u",
               hc->origin, (unsigned)tt_pipe_stream_id(p));
    }
    if (ev & TT_HTTPPROXY_EV_RESUME)
        tt_pipe_refeed(p);
}

static tt_ssize http_filter(struct tt_pipe *p, const uint8_t *in, size_t len, bool eof, void *ud)
{
    struct http_client *hc = ud;
    if (eof)
        return 0;
    tt_ssize rc = tt_httpproxy_feed(&hc->hx, in, len, emit, p);
    take_events(hc, p);
    if (rc < 0) {
        /* Answered as the listener answers a first request, after the responses to the
         * requests before it; the stream is reset and the connection closed after the page.
         * When the responses could not be followed, a page could land inside one: none. */
        enum tt_page which = refusal_page(hc);
        TT_LOG(TT_LOG_DEBUG, "request refused peer=%s stream=%u err=%s reason=%s status=%d",
               hc->origin, (unsigned)tt_pipe_stream_id(p), tether_err_name((int)rc),
               tt_headparse_refusal_name((enum tt_http_refusal)hc->hx.reason),
               tt_pages_status(which));
        if (hc->hx.track != TT_HTTPPROXY_LOST) {
            char page[TT_PAGE_MAX];
            int n = tt_pages_render(page, sizeof(page), which);
            if (n > 0)
                tt_pipe_write(p, (const uint8_t *)page, (size_t)n);
        }
        return rc;
    }
    /* A later head that is not whole yet starts the head clock (a total deadline, as on the
     * listener: trickling bytes does not extend it). */
    if (hc->hx.mode == TT_HTTPPROXY_HEAD && hc->hx.head != NULL && hc->hx.hlen > 0) {
        if (hc->head_since == 0 || hc->head_req != hc->hx.requests) {
            hc->head_since = uv_now(clients.loop);
            hc->head_req = hc->hx.requests;
        }
    } else {
        hc->head_since = 0;
    }
    return rc;
}

/* The device's bytes: the filter follows the responses (and says where the ones owed before a
 * refusal end); they pass unchanged. */
static size_t http_downstream(struct tt_pipe *p, const uint8_t *data, size_t len, void *ud)
{
    struct http_client *hc = ud;
    size_t pass = tt_httpproxy_response(&hc->hx, data, len);
    take_events(hc, p);
    return pass;
}

static bool http_on_fail(struct tt_pipe *p, int code, void *ud)
{
    struct http_client *hc = ud;
    char page[TT_PAGE_MAX];
    enum tt_page which = code == TT_RESET_LIMIT ? TT_PAGE_BUSY
                         : code < 0             ? TT_PAGE_UNAVAILABLE
                                                : TT_PAGE_BAD_GATEWAY;
    int n = tt_pages_render(page, sizeof(page), which);
    TT_LOG(TT_LOG_DEBUG, "device stream failed peer=%s stream=%u code=%d status=%d", hc->origin,
           (unsigned)tt_pipe_stream_id(p), code, tt_pages_status(which));
    if (n > 0)
        tt_pipe_write(p, (const uint8_t *)page, (size_t)n);
    return n > 0;
}

static void http_on_done(struct tt_pipe *p, uint64_t up, uint64_t down, void *ud)
{
    struct http_client *hc = ud;
    TT_LOG(TT_LOG_DEBUG, "http stream done peer=%s stream=%u requests=%llu up=%llu down=%llu",
           hc->origin, (unsigned)tt_pipe_stream_id(p), (unsigned long long)hc->hx.requests,
           (unsigned long long)up, (unsigned long long)down);
    unlink_client(hc);
    tt_httpproxy_reset(&hc->hx);
    free(hc);
}

static const struct tt_pipe_hooks http_hooks = {
    .filter = http_filter,
    .on_fail = http_on_fail,
    .on_done = http_on_done,
    .downstream = http_downstream,
};

static const struct tt_pipe_hooks tcp_hooks = {0};

static void respond_page(struct tt_conn *client, enum tt_page page)
{
    char out[TT_PAGE_MAX];
    int n = tt_pages_render(out, sizeof(out), page);
    tt_respond_close(client, out, n > 0 ? (size_t)n : 0);
}

/* Opens a stream to service svc of d; returns its id (> 0) or a negative tether_err. */
static int64_t open_stream(struct tt_device *d, int svc, const char *origin)
{
    struct tt_wsconn *ws = d->conn->ws;
    uint8_t buf[TT_FRAME_HEADER_LEN + 8 + TT_MAX_ADDR];
    uint32_t id;
    tt_ssize n =
        tt_session_open(tt_wsconn_session(ws), (uint8_t)svc, origin, NULL, &id, buf, sizeof(buf));
    if (n < 0)
        return n;
    int rc = tt_wsconn_send_frame(ws, buf, (size_t)n);
    if (rc < 0) {
        tt_wsconn_reset_stream(ws, id, TT_RESET_CANCEL);
        return rc;
    }
    d->streams++;
    d->last_seen = tt_relay_now_ms();
    return id;
}

void tt_forward_http(struct tt_device *d, int svc, struct tt_conn *client, const uint8_t *pre,
                     size_t prelen, const char *host, const char *client_ip, uint16_t client_port)
{
    tt_forward_http_as(d, svc, client, pre, prelen, host, client_ip, client_port,
                       client->tls != NULL);
}

void tt_forward_http_as(struct tt_device *d, int svc, struct tt_conn *client, const uint8_t *pre,
                        size_t prelen, const char *host, const char *client_ip,
                        uint16_t client_port, bool https)
{
    struct http_client *hc = calloc(1, sizeof(*hc));
    if (!hc) {
        respond_page(client, TT_PAGE_UNAVAILABLE);
        return;
    }
    snprintf(hc->origin, sizeof(hc->origin), "%s:%u", client_ip, (unsigned)client_port);
    int64_t id = open_stream(d, svc, hc->origin);
    if (id < 0) {
        TT_LOG(TT_LOG_DEBUG, "cannot open stream device=%s peer=%s err=%s", d->name, hc->origin,
               tether_err_name((int)id));
        free(hc);
        respond_page(client, id == TETHER_ERR_STREAM_LIMIT ? TT_PAGE_BUSY : TT_PAGE_UNAVAILABLE);
        return;
    }
    tt_httpproxy_init(&hc->hx, host, client_ip);
    hc->hx.https = https;
    struct tt_pipe *p;
    int rc = tt_pipe_new(&p, d->relay->loop, client, false, d->conn->ws, (uint32_t)id, pre, prelen,
                         &http_hooks, hc);
    if (rc) {
        tt_wsconn_reset_stream(d->conn->ws, (uint32_t)id, TT_RESET_CANCEL);
        tt_httpproxy_reset(&hc->hx);
        free(hc);
        respond_page(client, TT_PAGE_UNAVAILABLE);
        return;
    }
    hc->pipe = p;
    hc->next = clients.list;
    if (clients.list)
        clients.list->prev = hc;
    clients.list = hc;
}

void tt_forward_tcp(struct tt_device *d, int svc, struct tt_conn *client)
{
    tt_forward_tcp_pre(d, svc, client, NULL, 0);
}

void tt_forward_tcp_pre(struct tt_device *d, int svc, struct tt_conn *client, const uint8_t *pre,
                        size_t prelen)
{
    char origin[TT_MAX_ADDR];
    tt_conn_peer(client, origin, sizeof(origin));
    int64_t id = open_stream(d, svc, origin);
    if (id < 0) {
        TT_LOG(TT_LOG_DEBUG, "cannot open stream device=%s peer=%s err=%s", d->name, origin,
               tether_err_name((int)id));
        tt_respond_drop(client);
        return;
    }
    struct tt_pipe *p;
    if (tt_pipe_new(&p, d->relay->loop, client, false, d->conn->ws, (uint32_t)id, pre, prelen,
                    &tcp_hooks, NULL) != 0) {
        tt_wsconn_reset_stream(d->conn->ws, (uint32_t)id, TT_RESET_CANCEL);
        tt_respond_drop(client);
    }
}

static void on_sweep(uv_timer_t *t)
{
    uint64_t now = uv_now(t->loop);
    for (struct http_client *hc = clients.list; hc; hc = hc->next) {
        if (hc->timed_out)
            continue;
        const char *why = NULL;
        if (clients.idle_ms && now - tt_pipe_last_io(hc->pipe) >= clients.idle_ms)
            why = "idle";
        else if (hc->head_since && now - hc->head_since >= clients.head_ms)
            why = "request head";
        if (!why)
            continue;
        hc->timed_out = true;
        TT_LOG(TT_LOG_DEBUG, "http client timed out peer=%s stream=%u what=\"%s\"", hc->origin,
               (unsigned)tt_pipe_stream_id(hc->pipe), why);
        /* Nothing is flushed (the client may have stopped reading). The pipe is freed from its
         * close callbacks, later: the list stays intact here. */
        tt_pipe_kill(hc->pipe, TT_RESET_CANCEL);
    }
}

int tt_forward_start(uv_loop_t *loop, uint64_t idle_ms, uint64_t head_ms)
{
    uint64_t every = head_ms;
    if (idle_ms && idle_ms < every)
        every = idle_ms;
    every /= 4;
    if (every < 50)
        every = 50;
    if (every > 1000)
        every = 1000;
    int rc = uv_timer_init(loop, &clients.timer);
    if (rc)
        return rc;
    clients.loop = loop;
    clients.idle_ms = idle_ms;
    clients.head_ms = head_ms;
    clients.started = true;
    uv_timer_start(&clients.timer, on_sweep, every, every);
    uv_unref((uv_handle_t *)&clients.timer);
    return 0;
}

void tt_forward_stop(void)
{
    if (!clients.started)
        return;
    clients.started = false;
    uv_close((uv_handle_t *)&clients.timer, NULL);
}
