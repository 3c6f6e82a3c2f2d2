/* services.c - connects a stream the relay opened to the service's local target (services.h).
 * The pipe is created with its socket not yet connected; the connect itself runs on a separate
 * "probe" socket per address, so that a refused first address (::1 for "localhost") can fall
 * back to the next one, and the winning socket's descriptor moves into the pipe's handle. This
 * file never reads or writes stream data: the pipe does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if !defined(_WIN32)
#include <unistd.h>
#endif

#include "agent/resolve.h"
#include "agent/services.h"
#include "common/log.h"
#include "common/pipe.h"

struct probe {
    uv_tcp_t tcp;
    uv_connect_t req;
    struct local *l;
};

/* One local connection, from the stream's OPEN to the pipe's on_done. */
struct local {
    uv_loop_t *loop;
    const struct tt_service *svc;
    uint32_t id;
    struct tt_pipe *pipe; /* NULL once the pipe is done */
    struct tt_conn *sock; /* the pipe's socket (the pipe owns it); NULL once the pipe is done */
    bool finished;        /* the connect's outcome went to the pipe */
    bool torn_down;       /* the pipe is done: closing what is left */
    int pending;          /* callbacks to come before l may be freed */
    int last_err;
    uv_timer_t timer;
    const struct tt_resolver *resolver;
    struct tt_resolve *lookup; /* the target's name lookup under way, or NULL */
    union tt_sockaddr addrs[TT_RESOLVE_MAX_ADDRS];
    size_t naddrs, next_addr; /* the target's addresses, and the next one to try */
    struct probe *probe;      /* the attempt under way, NULL if none */
};

static void try_next(struct local *l);

static void maybe_free(struct local *l)
{
    if (l->torn_down && l->pending == 0)
        free(l);
}

static void on_probe_closed(uv_handle_t *h)
{
    struct probe *pr = (struct probe *)h;
    struct local *l = pr->l;

    free(pr);
    l->pending--;
    maybe_free(l);
}

static void close_probe(struct local *l)
{
    if (l->probe == NULL)
        return;
    l->pending++;
    uv_close((uv_handle_t *)&l->probe->tcp, on_probe_closed);
    l->probe = NULL;
}

static void stop_lookup(struct local *l)
{
    if (l->lookup != NULL)
        tt_resolve_cancel(l->lookup); /* it frees itself */
    l->lookup = NULL;
}

/* Hands the outcome to the pipe. Must be the caller's last use of l: the pipe may end (and l
 * start tearing down) inside tt_pipe_connected(). */
static void finish(struct local *l, int status)
{
    struct tt_pipe *p = l->pipe;

    l->finished = true;
    uv_timer_stop(&l->timer);
    stop_lookup(l);
    if (status < 0)
        TT_LOG(TT_LOG_INFO, "local connect failed stream=%u service=%s target=%s err=%s",
               (unsigned)l->id, l->svc->name, l->svc->target, uv_err_name(status));
    tt_pipe_connected(p, status);
}

#if defined(_WIN32)
/* A SOCKET cannot be dup()ed: WSADuplicateSocketW and WSASocketW give this process a second
 * descriptor of the same socket. The first is tied to the loop's completion port already;
 * uv_tcp_open() imports such a socket with emulated completion (UV_HANDLE_EMULATE_IOCP). */
static int dup_socket(uv_os_fd_t fd, uv_os_sock_t *out)
{
    WSAPROTOCOL_INFOW info;
    SOCKET s;

    if (WSADuplicateSocketW((SOCKET)fd, GetCurrentProcessId(), &info) != 0)
        return UV_EMFILE;
    s = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &info, 0,
                   WSA_FLAG_OVERLAPPED);
    if (s == INVALID_SOCKET)
        return UV_EMFILE;
    *out = s;
    return 0;
}

static void close_socket(uv_os_sock_t s)
{
    closesocket(s);
}
#else
static int dup_socket(uv_os_fd_t fd, uv_os_sock_t *out)
{
    int nfd = dup(fd);

    if (nfd < 0)
        return UV_EMFILE;
    *out = nfd;
    return 0;
}

static void close_socket(uv_os_sock_t s)
{
    close(s);
}
#endif

/* The probe connected: move its descriptor into the pipe's socket. */
static int adopt(struct local *l)
{
    uv_os_fd_t fd;
    uv_os_sock_t nfd;
    int rc;

    rc = uv_fileno((uv_handle_t *)&l->probe->tcp, &fd);
    if (rc < 0)
        return rc;
    rc = dup_socket(fd, &nfd);
    if (rc < 0)
        return rc;
    close_probe(l);
    rc = uv_tcp_open(&l->sock->tcp, nfd);
    if (rc < 0) {
        close_socket(nfd);
        return rc;
    }
    uv_tcp_nodelay(&l->sock->tcp, 1);
    return 0;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct probe *pr = (struct probe *)((char *)req - offsetof(struct probe, req));
    struct local *l = pr->l;

    l->pending--;
    if (l->torn_down || l->finished || l->probe != pr) {
        maybe_free(l);
        return;
    }
    if (status < 0) {
        l->last_err = status;
        close_probe(l);
        l->next_addr++;
        try_next(l);
        return;
    }
    if (tt_conn_is_closing(l->sock)) {
        /* The stream ended while we connected: the pipe is closing its socket; on_done
         * follows. */
        close_probe(l);
        return;
    }
    status = adopt(l);
    if (status < 0)
        close_probe(l);
    finish(l, status);
}

/* Connects a probe to the next address, or reports the last failure when none is left. */
static void try_next(struct local *l)
{
    for (;;) {
        const struct sockaddr *sa;
        struct probe *pr;
        int rc;

        sa = l->next_addr < l->naddrs ? &l->addrs[l->next_addr].sa : NULL;
        if (sa == NULL) {
            finish(l, l->last_err ? l->last_err : UV_ECONNREFUSED);
            return;
        }
        pr = malloc(sizeof *pr);
        if (pr == NULL) {
            finish(l, UV_ENOMEM);
            return;
        }
        pr->l = l;
        uv_tcp_init(l->loop, &pr->tcp);
        l->probe = pr;
        rc = uv_tcp_connect(&pr->req, &pr->tcp, sa, on_connect);
        if (rc == 0) {
            l->pending++;
            return;
        }
        l->last_err = rc;
        close_probe(l);
        l->next_addr++;
    }
}

static void on_resolved(struct tt_resolve *r, const struct tt_resolve_result *res, void *ud)
{
    struct local *l = ud;
    (void)r;

    l->lookup = NULL;
    if (res->err != 0) {
        TT_LOG(TT_LOG_WARN, "cannot resolve target service=%s target=%s: %s", l->svc->name,
               l->svc->target, TT_LOG_E(res->message));
        finish(l, res->err == TETHER_ERR_TIMEOUT ? UV_ETIMEDOUT : UV_EAI_NONAME);
        return;
    }
    memcpy(l->addrs, res->addrs, res->naddrs * sizeof l->addrs[0]);
    l->naddrs = res->naddrs;
    l->next_addr = 0;
    try_next(l);
}

static void on_timeout(uv_timer_t *t)
{
    struct local *l = t->data;

    if (l->finished || l->torn_down)
        return;
    close_probe(l);
    finish(l, UV_ETIMEDOUT);
}

/* Resolves the target (unless it is an IP literal or a localhost name) and connects to its
 * first address. */
static void on_begin(uv_timer_t *t)
{
    struct local *l = t->data;
    const struct tt_service *svc = l->svc;
    char err[TT_ERRLEN];
    int rc;

    if (l->finished || l->torn_down)
        return;
    uv_timer_start(&l->timer, on_timeout, TT_SERVICES_CONNECT_TIMEOUT_MS, 0);
    l->naddrs = tt_hostaddr_fixed(svc->host, svc->port, l->addrs, TT_RESOLVE_MAX_ADDRS);
    if (l->naddrs > 0) {
        try_next(l);
        return;
    }
    rc = tt_resolve_start(&l->lookup, l->loop, l->resolver, svc->host, svc->port, on_resolved, l,
                          err);
    if (rc != 0) {
        l->lookup = NULL;
        TT_LOG(TT_LOG_WARN, "cannot resolve target service=%s target=%s: %s", svc->name,
               svc->target, TT_LOG_E(err));
        finish(l, rc == TETHER_ERR_NOMEM ? UV_ENOMEM : UV_EAI_NONAME);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    struct local *l = h->data;
    l->pending--;
    maybe_free(l);
}

static void on_pipe_done(struct tt_pipe *p, uint64_t up, uint64_t down, void *ud)
{
    struct local *l = ud;
    (void)p;

    TT_LOG(TT_LOG_DEBUG, "stream done stream=%u service=%s up=%llu down=%llu", (unsigned)l->id,
           l->svc->name, (unsigned long long)up, (unsigned long long)down);
    l->pipe = NULL;
    l->sock = NULL;
    l->torn_down = true;
    uv_timer_stop(&l->timer);
    close_probe(l);
    stop_lookup(l);
    l->pending++;
    uv_close((uv_handle_t *)&l->timer, on_timer_closed);
}

static const struct tt_pipe_hooks hooks = {
    .filter = NULL,
    .on_fail = NULL,
    .on_done = on_pipe_done,
};

int tt_services_open(uv_loop_t *loop, const struct tt_resolver *resolver, struct tt_wsconn *c,
                     uint32_t id, const struct tt_service *svc, const uint8_t *origin,
                     size_t originlen)
{
    struct local *l;
    struct tt_conn *sock;
    int rc;

    TT_LOG(TT_LOG_DEBUG, "stream open stream=%u service=%s target=%s origin=%s", (unsigned)id,
           svc->name, svc->target, TT_LOG_VN((const char *)origin, origin ? originlen : 0));
    l = calloc(1, sizeof *l);
    sock = NULL;
    if (l == NULL || tt_conn_new(&sock, loop) != 0) {
        free(l);
        return TT_RESET_LIMIT;
    }
    l->loop = loop;
    l->resolver = resolver;
    l->svc = svc;
    l->id = id;
    l->sock = sock;
    rc = tt_pipe_new(&l->pipe, loop, sock, true, c, id, NULL, 0, &hooks, l);
    if (rc != 0) {
        tt_conn_close(sock, NULL);
        free(l);
        return TT_RESET_LIMIT;
    }
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    /* Start on the next loop iteration, not inside the session's on_open: a connect that
     * fails at once must not reset the stream before the session has finished opening it. */
    uv_timer_start(&l->timer, on_begin, 0, 0);
    return 0;
}
