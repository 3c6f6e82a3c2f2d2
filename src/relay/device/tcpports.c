/* tcpports.c - listeners for device TCP services (tcpports.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "tether_err.h"
#include "common/log.h"
#include "relay/device/tcpports.h"

struct tt_tcpport {
    uv_tcp_t h; /* first: the handle's close callback frees the whole struct */
    struct tt_tcpports *pool;
    struct tt_tcpport *prev, *next;
    uint16_t port;
    tt_tcpport_accept_cb cb;
    void *ud;
};

int tt_tcpports_init(struct tt_tcpports *pp, uv_loop_t *loop, const char *bind, uint16_t low,
                     uint16_t high)
{
    struct sockaddr_storage ss;
    memset(pp, 0, sizeof(*pp));
    if (uv_ip4_addr(bind, low, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(bind, low, (struct sockaddr_in6 *)&ss) != 0)
        return TETHER_ERR_INVAL;
    pp->loop = loop;
    snprintf(pp->bind, sizeof(pp->bind), "%s", bind);
    pp->low = low;
    pp->high = high;
    pp->used = calloc((size_t)(high - low) + 1, 1);
    return pp->used ? 0 : TETHER_ERR_NOMEM;
}

static void on_close(uv_handle_t *h)
{
    free(h);
}

void tt_tcpport_close(struct tt_tcpport *p)
{
    struct tt_tcpports *pp = p->pool;
    if (pp) {
        if (p->prev)
            p->prev->next = p->next;
        else
            pp->list = p->next;
        if (p->next)
            p->next->prev = p->prev;
        pp->used[p->port - pp->low] = 0;
        p->pool = NULL;
    }
    if (!uv_is_closing((uv_handle_t *)&p->h))
        uv_close((uv_handle_t *)&p->h, on_close);
}

void tt_tcpports_reset(struct tt_tcpports *pp)
{
    while (pp->list)
        tt_tcpport_close(pp->list);
    free(pp->used);
    pp->used = NULL;
}

uint16_t tt_tcpport_port(const struct tt_tcpport *p)
{
    return p->port;
}

static void on_connection(uv_stream_t *server, int status)
{
    struct tt_tcpport *p = server->data;
    if (status < 0) {
        if (p->pool && p->pool->limits)
            tt_limits_accept_failed(p->pool->limits, status);
        return;
    }
    struct tt_conn *c;
    if (tt_conn_new(&c, server->loop) != 0)
        return;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        tt_conn_close(c, NULL);
        return;
    }
    /* A new descriptor: it must leave the reserve alone (limits.h). */
    if (p->pool && p->pool->limits && !tt_limits_fd_room(p->pool->limits, &c->tcp)) {
        tt_conn_close(c, NULL);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    p->cb(p, c, p->ud);
}

/* Tries to listen on port; returns the listener or NULL. */
static struct tt_tcpport *try_port(struct tt_tcpports *pp, uint16_t port)
{
    struct sockaddr_storage ss;
    if (uv_ip4_addr(pp->bind, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(pp->bind, port, (struct sockaddr_in6 *)&ss) != 0)
        return NULL;
    struct tt_tcpport *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    int rc = uv_tcp_init_ex(pp->loop, &p->h, ss.ss_family);
    if (rc != 0) {
        free(p);
        return NULL;
    }
    p->h.data = p;
    uv_os_fd_t fd;
    int one = 1;
    if (pp->reuseport && uv_fileno((uv_handle_t *)&p->h, &fd) == 0 &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        TT_LOG(TT_LOG_DEBUG, "SO_REUSEPORT failed port=%u", (unsigned)port);
    rc = uv_tcp_bind(&p->h, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&p->h, 128, on_connection);
    if (rc != 0) {
        TT_LOG(TT_LOG_DEBUG, "tcp port unavailable port=%u err=%s", (unsigned)port,
               uv_err_name(rc));
        uv_close((uv_handle_t *)&p->h, on_close);
        return NULL;
    }
    p->port = port;
    return p;
}

/* Hands the new listener p to its owner and marks its port used. */
static int adopt(struct tt_tcpports *pp, struct tt_tcpport *p, tt_tcpport_accept_cb cb, void *ud,
                 struct tt_tcpport **out)
{
    p->pool = pp;
    p->cb = cb;
    p->ud = ud;
    pp->used[p->port - pp->low] = 1;
    p->next = pp->list;
    if (pp->list)
        pp->list->prev = p;
    pp->list = p;
    *out = p;
    return 0;
}

int tt_tcpports_open(struct tt_tcpports *pp, uint16_t want, tt_tcpport_accept_cb cb, void *ud,
                     struct tt_tcpport **out)
{
    if (!pp->used)
        return TETHER_ERR_CAPACITY; /* the set is reset (the relay is stopping) */
    uint32_t n = (uint32_t)(pp->high - pp->low) + 1;
    struct tt_tcpport *p = NULL;
    if (want >= pp->low && want <= pp->high && !pp->used[want - pp->low])
        p = try_port(pp, want);
    for (uint32_t i = 0; !p && i < n; i++) {
        uint32_t off = (pp->next + i) % n;
        if (pp->used[off])
            continue;
        p = try_port(pp, (uint16_t)(pp->low + off));
        if (p)
            pp->next = (off + 1) % n;
    }
    if (!p)
        return TETHER_ERR_CAPACITY;
    return adopt(pp, p, cb, ud, out);
}

int tt_tcpports_open_exact(struct tt_tcpports *pp, uint16_t port, tt_tcpport_accept_cb cb, void *ud,
                           struct tt_tcpport **out)
{
    struct tt_tcpport *p = NULL;
    if (pp->used && port >= pp->low && port <= pp->high && !pp->used[port - pp->low])
        p = try_port(pp, port);
    if (!p)
        return TETHER_ERR_CAPACITY;
    return adopt(pp, p, cb, ud, out);
}
