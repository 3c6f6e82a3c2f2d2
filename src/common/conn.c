/* conn.c - the transport of one connection (conn.h): plain TCP goes straight to libuv's calls;
 * a conn with a filter on it (a TLS session: tls.c fills c->filter) goes to the filter's calls.
 * Nothing here copies or buffers bytes. */
#include "common/conn.h"

#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "tether_err.h"

int tt_conn_new(struct tt_conn **out, uv_loop_t *loop)
{
    struct tt_conn *c = malloc(sizeof(*c));
    *out = NULL;
    if (c == NULL)
        return TETHER_ERR_NOMEM;
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = NULL;
    c->tls = NULL;
    c->filter = NULL;
    c->close_cb = NULL;
    *out = c;
    return 0;
}

int tt_conn_err(int uverr)
{
    switch (uverr) {
    case 0:
        return 0;
    case UV_EAGAIN:
        return TETHER_ERR_AGAIN;
    case UV_ECONNREFUSED:
        return TETHER_ERR_REFUSED;
    case UV_ETIMEDOUT:
        return TETHER_ERR_TIMEOUT;
    case UV_ENOMEM:
    case UV_ENOBUFS:
        return TETHER_ERR_NOMEM;
    case UV_EOF:
    case UV_ECONNRESET:
    case UV_EPIPE:
        return TETHER_ERR_CLOSED;
    case UV_EADDRINUSE:
        return TETHER_ERR_ADDRINUSE;
    default:
        return TETHER_ERR_IO;
    }
}

struct tt_conn *tt_conn_of(uv_handle_t *h)
{
    return (struct tt_conn *)(void *)((char *)h - offsetof(struct tt_conn, tcp));
}

int tt_conn_read_start(struct tt_conn *c, uv_alloc_cb alloc_cb, uv_read_cb read_cb)
{
    if (c->filter != NULL)
        return c->filter->read_start(c, alloc_cb, read_cb);
    return uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

int tt_conn_read_stop(struct tt_conn *c)
{
    if (c->filter != NULL)
        return c->filter->read_stop(c);
    return uv_read_stop((uv_stream_t *)&c->tcp);
}

int tt_conn_write(struct tt_conn *c, uv_write_t *req, const uv_buf_t bufs[], unsigned nbufs,
                  uv_write_cb cb)
{
    if (c->filter != NULL)
        return c->filter->write(c, req, bufs, nbufs, cb);
    return uv_write(req, (uv_stream_t *)&c->tcp, bufs, nbufs, cb);
}

int tt_conn_try_write(struct tt_conn *c, const uv_buf_t bufs[], unsigned nbufs)
{
    int r;
    if (c->filter != NULL)
        return UV_EAGAIN;
    r = uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
    return r == 0 ? UV_EAGAIN : r;
}

int tt_conn_shutdown(struct tt_conn *c, uv_shutdown_t *req, uv_shutdown_cb cb)
{
    if (c->filter != NULL)
        return c->filter->shutdown(c, req, cb);
    return uv_shutdown(req, (uv_stream_t *)&c->tcp, cb);
}

void tt_conn_closed(struct tt_conn *c)
{
    if (c->close_cb != NULL)
        c->close_cb((uv_handle_t *)&c->tcp);
    free(c);
}

static void on_closed(uv_handle_t *h)
{
    tt_conn_closed(tt_conn_of(h));
}

void tt_conn_close(struct tt_conn *c, uv_close_cb cb)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    c->close_cb = cb;
    if (c->filter != NULL) {
        c->filter->close(c); /* calls tt_conn_closed once its handles are closed */
        return;
    }
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

bool tt_conn_is_closing(const struct tt_conn *c)
{
    return uv_is_closing((const uv_handle_t *)&c->tcp) != 0;
}

void tt_conn_peer(const struct tt_conn *c, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN];

    if (outlen == 0)
        return;
    out[0] = '\0';
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        if (uv_ip4_name(a, ip, sizeof(ip)) == 0)
            snprintf(out, outlen, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        if (uv_ip6_name(a, ip, sizeof(ip)) == 0)
            snprintf(out, outlen, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
    }
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void tt_conn_loop_close(uv_loop_t *loop)
{
    if (uv_loop_close(loop) == 0)
        return;
    TT_LOG(TT_LOG_WARN, "event loop still had handles at free");
    uv_walk(loop, walk_close, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
}
