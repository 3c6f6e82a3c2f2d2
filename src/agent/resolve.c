/* resolve.c - one name lookup on the agent's loop (resolve.h): a fixed answer for literals and
 * localhost, the system's getaddrinfo through libuv, or c-ares driven by the loop. The c-ares
 * glue is the usual one: c-ares reports each socket it wants watched (sock_state_cb), each gets
 * a uv_poll_t, readiness goes back through ares_process_fd(), and a uv_timer_t set from
 * ares_timeout() lets c-ares retry and give up. c-ares's own callbacks only record the answer;
 * the agent's callback runs afterwards, from our handlers, never inside a c-ares call, so that
 * the channel can be destroyed at once. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if !defined(_WIN32)
#include <unistd.h>
#endif

#include <ares.h>

#include "agent/resolve.h"
#include "common/compat.h"
#include "common/log.h"
#include "tether_err.h"

/* The build has no system resolver it trusts (the static Android build: a static program's
 * getaddrinfo cannot use the phone's resolver): c-ares reads the system's files itself. */
#if defined(TT_RESOLVE_NO_SYSTEM)
#define HAVE_SYSTEM_RESOLVER false
#else
#define HAVE_SYSTEM_RESOLVER true
#endif

struct watch {
    uv_poll_t poll;
    ares_socket_t fd;
    bool used;    /* poll is initialised (and maybe closing) */
    bool closing; /* uv_close called; the slot is free again in its close callback */
    struct tt_resolve *r;
};

struct tt_resolve {
    uv_loop_t *loop;
    tt_resolve_cb cb;
    void *ud;
    enum tt_resolve_mode mode;
    bool fixed; /* an answer without a lookup */
    char host[TT_HOSTLEN];
    uint16_t port;
    struct tt_dns_server dns; /* TT_RESOLVE_DNS */
    bool done;                /* the callback ran, or the lookup was cancelled */
    bool cancelled;
    bool counted; /* holds one of TT_RESOLVE_MAX_INFLIGHT until cleanup() */
    int pending;  /* libuv callbacks still to come; r is freed when done and 0 */
    uv_timer_t timer;
    uv_getaddrinfo_t gai;
    bool gai_busy;
    ares_channel channel;
    bool channel_up;
    bool answered; /* c-ares's callback came: the outcome below is set */
    bool cap_warned;
    struct watch watches[TT_RESOLVE_MAX_SOCKS];
    int err;
    char msg[TT_ERRLEN];
    union tt_sockaddr addrs[TT_RESOLVE_MAX_ADDRS];
    size_t naddrs;
};

static uv_once_t ares_once = UV_ONCE_INIT;
static atomic_int inflight;
static int ares_init_status = ARES_ENOTINITIALIZED;

static void init_ares(void)
{
    /* Process-wide and never undone: c-ares needs it on Windows (Winsock, iphlpapi). */
    ares_init_status = ares_library_init(ARES_LIB_INIT_ALL);
}

static bool have_resolv_conf(void)
{
#if defined(_WIN32)
    return true; /* Windows keeps its name servers elsewhere: the system's resolver knows them */
#else
    return access(TT_RESOLV_CONF, F_OK) == 0;
#endif
}

enum tt_resolve_mode tt_resolve_mode_now(const struct tt_resolver *rs)
{
    return tt_hostaddr_pick_mode(rs != NULL && rs->has_dns, have_resolv_conf(),
                                 HAVE_SYSTEM_RESOLVER);
}

int tt_resolve_setup(struct tt_resolver *rs, const char *dns, char err[TT_ERRLEN])
{
    memset(rs, 0, sizeof *rs);
    if (dns == NULL || dns[0] == '\0')
        return 0;
    if (tt_hostaddr_parse_dns(dns, &rs->dns, err) != 0)
        return TETHER_ERR_CONFIG;
    rs->has_dns = true;
    return 0;
}

static void maybe_free(struct tt_resolve *r)
{
    if (r->done && r->pending == 0)
        free(r);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct tt_resolve *r = h->data;
    r->pending--;
    maybe_free(r);
}

static void on_watch_closed(uv_handle_t *h)
{
    struct watch *w = h->data;
    struct tt_resolve *r = w->r;

    w->used = false;
    w->closing = false;
    r->pending--;
    maybe_free(r);
}

/* Everything after the outcome (or the cancel): the channel (whose sockets close through
 * on_sock_state), the timer, a getaddrinfo still in the pool; r frees itself once all their
 * callbacks are in. */
static void cleanup(struct tt_resolve *r)
{
    r->done = true;
    if (r->counted) {
        r->counted = false;
        atomic_fetch_sub(&inflight, 1);
    }
    if (r->channel_up) {
        r->channel_up = false;
        ares_destroy(r->channel); /* calls on_addrinfo (ignored now) and on_sock_state(fd, 0, 0) */
    }
    uv_timer_stop(&r->timer);
    r->pending++;
    uv_close((uv_handle_t *)&r->timer, on_handle_closed);
    if (r->gai_busy)
        uv_cancel((uv_req_t *)&r->gai); /* on_gai still runs, and frees its result */
    maybe_free(r);
}

/* Hands the outcome over, then cleans up. Never called from inside a c-ares call. */
static void finish(struct tt_resolve *r)
{
    struct tt_resolve_result res = {0};

    if (r->done)
        return;
    r->done = true;
    res.err = r->err;
    res.message = r->err ? r->msg : "";
    res.addrs = r->naddrs ? r->addrs : NULL;
    res.naddrs = r->naddrs;
    if (r->err == 0)
        TT_LOG(TT_LOG_DEBUG, "resolved host=%s via=%s addresses=%zu", TT_LOG_V(r->host),
               r->fixed ? "fixed" : tt_hostaddr_mode_name(r->mode), r->naddrs);
    else
        TT_LOG(TT_LOG_DEBUG, "resolve failed host=%s via=%s err=%s: %s", TT_LOG_V(r->host),
               tt_hostaddr_mode_name(r->mode), tether_err_name(r->err), TT_LOG_E(r->msg));
    if (!r->cancelled)
        r->cb(r, &res, r->ud);
    cleanup(r);
}

/* Keeps an address of family AF_INET or AF_INET6 (others are skipped), with our port. */
static void keep_addr(struct tt_resolve *r, const struct sockaddr *sa, size_t salen)
{
    union tt_sockaddr *a;

    if (r->naddrs == TT_RESOLVE_MAX_ADDRS)
        return;
    a = &r->addrs[r->naddrs];
    memset(a, 0, sizeof *a);
    if (sa->sa_family == AF_INET && salen >= sizeof a->in) {
        memcpy(&a->in, sa, sizeof a->in);
        a->in.sin_port = htons(r->port);
    } else if (sa->sa_family == AF_INET6 && salen >= sizeof a->in6) {
        memcpy(&a->in6, sa, sizeof a->in6);
        a->in6.sin6_port = htons(r->port);
    } else {
        return;
    }
    r->naddrs++;
}

/* ---- the system's resolver ---------------------------------------------------------------- */

#if !defined(TT_RESOLVE_NO_SYSTEM)
static void on_gai(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct tt_resolve *r = req->data;

    r->gai_busy = false;
    r->pending--;
    if (!r->done) {
        if (status < 0) {
            r->err = status == UV_EAI_MEMORY ? TETHER_ERR_NOMEM : TETHER_ERR_NOT_FOUND;
            tt_errf(r->msg, "cannot resolve %s: %s", r->host, uv_strerror(status));
        } else {
            for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
                keep_addr(r, ai->ai_addr, (size_t)ai->ai_addrlen);
            if (r->naddrs == 0) {
                r->err = TETHER_ERR_NOT_FOUND;
                tt_errf(r->msg, "cannot resolve %s: no IPv4 or IPv6 address", r->host);
            }
        }
    }
    if (res)
        uv_freeaddrinfo(res);
    if (r->done)
        maybe_free(r);
    else
        finish(r);
}

static int start_system(struct tt_resolve *r, char err[TT_ERRLEN])
{
    struct addrinfo hints;
    int rc;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    r->gai.data = r;
    rc = uv_getaddrinfo(r->loop, &r->gai, on_gai, r->host, NULL, &hints);
    if (rc < 0) {
        tt_errf(err, "cannot resolve %s: %s", r->host, uv_strerror(rc));
        return rc == UV_ENOMEM ? TETHER_ERR_NOMEM : TETHER_ERR_IO;
    }
    r->gai_busy = true;
    r->pending++;
    return 0;
}
#else
/* Never called: tt_hostaddr_pick_mode() never picks the system's resolver in this build, whose
 * program holds no getaddrinfo of ours. */
static int start_system(struct tt_resolve *r, char err[TT_ERRLEN])
{
    tt_errf(err, "cannot resolve %s: no system resolver in this build", r->host);
    return TETHER_ERR_IO;
}
#endif

/* ---- c-ares on the loop ------------------------------------------------------------------- */

static void on_ares_timer(uv_timer_t *t);

/* After every c-ares call: the outcome if it came, else the next time c-ares needs. */
static void settle(struct tt_resolve *r)
{
    struct timeval tv, *tvp;

    if (r->done)
        return;
    if (r->answered) {
        finish(r);
        return;
    }
    tvp = ares_timeout(r->channel, NULL, &tv);
    if (tvp == NULL) {
        uv_timer_stop(&r->timer);
        return;
    }
    /* rounded up: a timer that fires a little early would find nothing to do and spin */
    uv_timer_start(&r->timer, on_ares_timer,
                   (uint64_t)tvp->tv_sec * 1000u + ((uint64_t)tvp->tv_usec + 999u) / 1000u, 0);
}

static void on_ares_timer(uv_timer_t *t)
{
    struct tt_resolve *r = t->data;

    if (r->done)
        return;
    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    settle(r);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct watch *w = p->data;
    struct tt_resolve *r = w->r;
    ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

    if (r->done || w->closing)
        return;
    /* An error on the socket: let c-ares read and write it, and find out. */
    if (status < 0 || (events & UV_READABLE))
        rfd = w->fd;
    if (status < 0 || (events & UV_WRITABLE))
        wfd = w->fd;
    ares_process_fd(r->channel, rfd, wfd);
    settle(r);
}

static struct watch *find_watch(struct tt_resolve *r, ares_socket_t fd)
{
    for (size_t i = 0; i < TT_RESOLVE_MAX_SOCKS; i++)
        if (r->watches[i].used && !r->watches[i].closing && r->watches[i].fd == fd)
            return &r->watches[i];
    return NULL;
}

/* c-ares: watch fd for reading and/or writing, or (both 0) stop: it is about to close it. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct tt_resolve *r = data;
    struct watch *w = find_watch(r, fd);
    int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);

    if (events == 0) {
        if (w != NULL) {
            /* uv_close stops the poll at once, before c-ares closes the descriptor */
            w->closing = true;
            r->pending++;
            uv_close((uv_handle_t *)&w->poll, on_watch_closed);
        }
        return;
    }
    if (w == NULL) {
        for (size_t i = 0; i < TT_RESOLVE_MAX_SOCKS && w == NULL; i++)
            if (!r->watches[i].used)
                w = &r->watches[i];
        if (w == NULL || uv_poll_init_socket(r->loop, &w->poll, fd) != 0) {
            if (!r->cap_warned)
                TT_LOG(TT_LOG_WARN, "resolve host=%s: %s; its answer is not read", r->host,
                       w == NULL ? "too many resolver sockets at once" : "cannot watch a socket");
            r->cap_warned = true;
            return;
        }
        w->fd = fd;
        w->used = true;
        w->closing = false;
        w->r = r;
        w->poll.data = w;
    }
    uv_poll_start(&w->poll, events, on_poll);
}

static const char *ares_reason(int status)
{
    switch (status) {
    case ARES_ENOTFOUND:
    case ARES_ENONAME:
        return "no such name";
    case ARES_ENODATA:
        return "the name has no IPv4 or IPv6 address";
    case ARES_ETIMEOUT:
        return "no answer";
    case ARES_ECONNREFUSED:
        return "connection refused";
    case ARES_ESERVFAIL:
        return "server failure";
    case ARES_EREFUSED:
        return "query refused";
    default:
        return ares_strerror(status);
    }
}

/* c-ares's answer: recorded only; settle() hands it over once c-ares has returned. */
static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct tt_resolve *r = arg;
    (void)timeouts;

    if (r->done || r->answered) { /* ARES_EDESTRUCTION, ARES_ECANCELLED */
        ares_freeaddrinfo(res);
        return;
    }
    r->answered = true;
    if (status == ARES_SUCCESS && res != NULL) {
        for (struct ares_addrinfo_node *n = res->nodes; n != NULL; n = n->ai_next)
            keep_addr(r, n->ai_addr, (size_t)n->ai_addrlen);
    }
    ares_freeaddrinfo(res);
    if (status == ARES_SUCCESS && r->naddrs > 0)
        return;
    if (status == ARES_SUCCESS)
        status = ARES_ENODATA;
    switch (r->mode) {
    case TT_RESOLVE_DNS:
        r->err = status == ARES_ETIMEOUT ? TETHER_ERR_TIMEOUT : TETHER_ERR_NOT_FOUND;
        tt_errf(r->msg, "cannot resolve %s with DNS server %s (--dns): %s", r->host, r->dns.display,
                ares_reason(status));
        break;
    case TT_RESOLVE_HOSTS:
        r->err = TETHER_ERR_NOT_FOUND;
        tt_errf(r->msg,
                "cannot resolve %s: not in /etc/hosts, and no DNS server is known (there is no "
                "%s): give one with --dns ADDR[:PORT]",
                r->host, TT_RESOLV_CONF);
        break;
    default:
        r->err = status == ARES_ETIMEOUT ? TETHER_ERR_TIMEOUT : TETHER_ERR_NOT_FOUND;
        tt_errf(r->msg, "cannot resolve %s (hosts file and %s's servers): %s", r->host,
                TT_RESOLV_CONF, ares_reason(status));
        break;
    }
    if (status == ARES_ENOMEM)
        r->err = TETHER_ERR_NOMEM;
}

static int start_ares(struct tt_resolve *r, char err[TT_ERRLEN])
{
    struct ares_options o;
    struct ares_addrinfo_hints hints;
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
    char dns_only[] = "b", hosts_only[] = "f";
    int rc;

    uv_once(&ares_once, init_ares);
    if (ares_init_status != ARES_SUCCESS) {
        tt_errf(err, "cannot resolve %s: c-ares: %s", r->host, ares_strerror(ares_init_status));
        return TETHER_ERR_IO;
    }
    memset(&o, 0, sizeof o);
    o.sock_state_cb = on_sock_state;
    o.sock_state_cb_data = r;
    o.timeout = TT_RESOLVE_TIMEOUT_MS;
    o.tries = TT_RESOLVE_TRIES;
    if (r->mode == TT_RESOLVE_DNS) {
        /* That server only: no hosts file, no search domains (c-ares then takes nothing from
         * /etc/resolv.conf but its options line). */
        mask |= ARES_OPT_LOOKUPS | ARES_OPT_DOMAINS | ARES_OPT_FLAGS;
        o.lookups = dns_only;
        o.domains = NULL;
        o.ndomains = 0;
        o.flags = ARES_FLAG_NOSEARCH;
    } else if (r->mode == TT_RESOLVE_HOSTS) {
        mask |= ARES_OPT_LOOKUPS;
        o.lookups = hosts_only;
    }
    rc = ares_init_options(&r->channel, &o, mask);
    if (rc != ARES_SUCCESS) {
        tt_errf(err, "cannot resolve %s: c-ares: %s", r->host, ares_strerror(rc));
        return rc == ARES_ENOMEM ? TETHER_ERR_NOMEM : TETHER_ERR_IO;
    }
    r->channel_up = true;
    if (r->mode == TT_RESOLVE_DNS) {
        struct ares_addr_port_node node;

        memset(&node, 0, sizeof node);
        node.family = r->dns.family;
        if (r->dns.family == AF_INET)
            memcpy(&node.addr.addr4, r->dns.addr, 4);
        else
            memcpy(&node.addr.addr6, r->dns.addr, 16);
        node.udp_port = r->dns.port;
        node.tcp_port = r->dns.port;
        rc = ares_set_servers_ports(r->channel, &node);
        if (rc != ARES_SUCCESS) {
            tt_errf(err, "cannot use DNS server %s: c-ares: %s", r->dns.display, ares_strerror(rc));
            ares_destroy(r->channel);
            r->channel_up = false;
            return rc == ARES_ENOMEM ? TETHER_ERR_NOMEM : TETHER_ERR_IO;
        }
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    /* The answer may come inside this call (the hosts file): settle() defers it. */
    ares_getaddrinfo(r->channel, r->host, NULL, &hints, on_addrinfo, r);
    return 0;
}

/* ---- the lookup --------------------------------------------------------------------------- */

static void on_deferred(uv_timer_t *t)
{
    struct tt_resolve *r = t->data;

    if (r->done)
        return;
    if (r->fixed)
        finish(r);
    else
        settle(r);
}

int tt_resolve_start(struct tt_resolve **out, uv_loop_t *loop, const struct tt_resolver *rs,
                     const char *host, uint16_t port, tt_resolve_cb cb, void *ud,
                     char err[TT_ERRLEN])
{
    struct tt_resolve *r;
    size_t hlen = strlen(host);
    int rc;

    if (hlen == 0 || hlen >= TT_HOSTLEN) {
        tt_errf(err, "cannot resolve '%.64s': %s", host, hlen ? "name too long" : "empty name");
        return TETHER_ERR_INVAL;
    }
    r = calloc(1, sizeof *r);
    if (r == NULL) {
        tt_errf(err, "out of memory");
        return TETHER_ERR_NOMEM;
    }
    r->loop = loop;
    r->cb = cb;
    r->ud = ud;
    memcpy(r->host, host, hlen + 1);
    r->port = port;
    if (rs != NULL && rs->has_dns)
        r->dns = rs->dns;
    r->mode = tt_resolve_mode_now(rs);
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    r->naddrs = tt_hostaddr_fixed(host, port, r->addrs, TT_RESOLVE_MAX_ADDRS);
    r->fixed = r->naddrs > 0;
    if (!r->fixed) {
        if (atomic_fetch_add(&inflight, 1) >= TT_RESOLVE_MAX_INFLIGHT) {
            atomic_fetch_sub(&inflight, 1);
            tt_errf(err, "cannot resolve %s: too many name lookups at once (%d)", host,
                    TT_RESOLVE_MAX_INFLIGHT);
            r->cancelled = true;
            cleanup(r);
            return TETHER_ERR_CAPACITY;
        }
        r->counted = true;
    }
    if (r->fixed)
        rc = 0;
    else if (r->mode == TT_RESOLVE_SYSTEM)
        rc = start_system(r, err);
    else
        rc = start_ares(r, err);
    if (rc != 0) {
        r->cancelled = true;
        cleanup(r);
        return rc;
    }
    if (r->fixed || r->mode != TT_RESOLVE_SYSTEM)
        uv_timer_start(&r->timer, on_deferred, 0, 0); /* cb never runs inside this call */
    *out = r;
    return 0;
}

void tt_resolve_cancel(struct tt_resolve *r)
{
    if (r == NULL || r->done)
        return;
    r->cancelled = true;
    cleanup(r);
}

int tt_resolve_inflight(void)
{
    return atomic_load(&inflight);
}
