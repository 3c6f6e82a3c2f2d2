/* limits.c - unauthenticated-connection accounting and shedding, per-device stream shares, and
 * their counters (limits.h). Counts live in two string maps whose values are the counts
 * themselves (a uintptr_t in the pointer); an entry goes when its count drops to zero, so the
 * maps hold at most one entry per connection or stream. */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include "tether_err.h"
#include "common/log.h"
#include "relay/limits.h"

/* ---- counts in a string map -------------------------------------------------------------- */

static size_t count_get(const struct tt_strmap *m, const char *key)
{
    return (size_t)(uintptr_t)tt_strmap_get(m, key);
}

/* Adds one to key's count. Returns 0 or TETHER_ERR_NOMEM. */
static int count_up(struct tt_strmap *m, const char *key)
{
    size_t n = count_get(m, key);
    return tt_strmap_put(m, key, (void *)(uintptr_t)(n + 1));
}

static void count_down(struct tt_strmap *m, const char *key)
{
    size_t n = count_get(m, key);
    if (n <= 1)
        tt_strmap_del(m, key);
    else
        (void)tt_strmap_put(m, key, (void *)(uintptr_t)(n - 1)); /* replaces: no allocation */
}

/* ---- set-up ------------------------------------------------------------------------------ */

uint64_t tt_limits_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur == RLIM_INFINITY)
        return 1u << 20;
    return (uint64_t)rl.rlim_cur;
}

void tt_limits_init(struct tt_limits *l, uv_loop_t *loop, uint64_t fd_limit, size_t max_pending,
                    size_t max_per_addr, unsigned max_streams, unsigned per_client)
{
    memset(l, 0, sizeof(*l));
    l->loop = loop;
    l->fd_limit = fd_limit;
    l->fd_reserve =
        fd_limit / 20 > TT_LIMITS_FD_RESERVE_MIN ? fd_limit / 20 : TT_LIMITS_FD_RESERVE_MIN;
    if (max_pending == 0) {
        max_pending = fd_limit ? (size_t)(fd_limit / 2) : TT_LIMITS_PENDING_MAX_DEFAULT;
        if (max_pending > TT_LIMITS_PENDING_MAX_DEFAULT)
            max_pending = TT_LIMITS_PENDING_MAX_DEFAULT;
        if (max_pending < 1)
            max_pending = 1;
    }
    l->max_pending = max_pending;
    l->max_per_addr = max_per_addr;
    l->max_streams = max_streams;
    l->per_client = per_client;
    tt_strmap_init(&l->per_addr);
    tt_strmap_init(&l->streams);
}

void tt_limits_reset(struct tt_limits *l)
{
    while (l->head)
        tt_limits_leave(l, l->head);
    tt_strmap_reset(&l->per_addr);
    tt_strmap_reset(&l->streams);
}

/* ---- unauthenticated connections --------------------------------------------------------- */

static void unlink_conn(struct tt_limits *l, struct tt_limits_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
    c->linked = false;
    l->npending--;
    count_down(&l->per_addr, c->key);
}

void tt_limits_leave(struct tt_limits *l, struct tt_limits_conn *c)
{
    if (c->linked)
        unlink_conn(l, c);
}

/* One warning line per TT_LIMITS_LOG_EVERY_MS while connections are being shed. */
static void log_shedding(struct tt_limits *l)
{
    uint64_t now = uv_now(l->loop);
    if (l->logged_at != 0 && now - l->logged_at < TT_LIMITS_LOG_EVERY_MS)
        return;
    l->logged_at = now ? now : 1;
    TT_LOG(TT_LOG_WARN,
           "shedding unauthenticated connections pending=%zu max_pending=%zu "
           "shed_total=%llu shed_per_addr=%llu shed_fds=%llu fd_limit=%llu",
           l->npending, l->max_pending, (unsigned long long)l->shed[TT_LIMITS_SHED_TOTAL],
           (unsigned long long)l->shed[TT_LIMITS_SHED_PER_ADDR],
           (unsigned long long)l->shed[TT_LIMITS_SHED_FDS], (unsigned long long)l->fd_limit);
}

/* Sheds the oldest connection. Returns false when there is none. */
static bool shed_oldest(struct tt_limits *l, enum tt_limits_shed_reason why)
{
    struct tt_limits_conn *c = l->head;
    if (!c)
        return false;
    unlink_conn(l, c);
    l->shed[why]++;
    log_shedding(l);
    TT_LOG(TT_LOG_DEBUG, "unauthenticated connection shed client=%s reason=%s", c->key,
           why == TT_LIMITS_SHED_TOTAL ? "total" : "fds");
    c->shed(c);
    return true;
}

/* How many connections to shed for the socket tcp just accepted: none while its descriptor lies
 * below the reserve. Linux hands out the lowest free descriptor, so when it is fd, every one
 * below is in use too: shedding one per accept would not do (the next accept takes the hole
 * and the count grows), so this sheds enough to bring the count back to half the reserve below
 * the line. */
static size_t fds_excess(const struct tt_limits *l, uv_tcp_t *tcp)
{
    uv_os_fd_t fd;
    if (l->fd_limit == 0 || uv_fileno((uv_handle_t *)tcp, &fd) != 0 || fd < 0 ||
        (uint64_t)fd + l->fd_reserve < l->fd_limit)
        return 0;
    uint64_t below = l->fd_reserve + l->fd_reserve / 2;
    uint64_t target = l->fd_limit > below ? l->fd_limit - below : 0;
    return (size_t)((uint64_t)fd + 1 - (target < (uint64_t)fd ? target : (uint64_t)fd));
}

/* Sheds up to n of the oldest for want of descriptors. Returns false when none was left. */
static bool shed_for_fds(struct tt_limits *l, size_t n)
{
    size_t done = 0;
    while (done < n && shed_oldest(l, TT_LIMITS_SHED_FDS))
        done++;
    return done > 0;
}

int tt_limits_admit(struct tt_limits *l, struct tt_limits_conn *c, uv_tcp_t *tcp, bool check_fd)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    c->key[0] = '\0';
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) == 0)
        (void)tt_addrkey_from_sockaddr((struct sockaddr *)&ss, c->key);
    if (l->max_per_addr && count_get(&l->per_addr, c->key) >= l->max_per_addr &&
        !(l->exempt && l->exempt(c->key, l->exempt_ud))) {
        l->shed[TT_LIMITS_SHED_PER_ADDR]++;
        log_shedding(l);
        TT_LOG(TT_LOG_DEBUG, "unauthenticated connection refused client=%s reason=per_addr",
               c->key);
        return TETHER_ERR_CAPACITY;
    }
    while (l->max_pending && l->npending >= l->max_pending)
        shed_oldest(l, TT_LIMITS_SHED_TOTAL);
    size_t excess = check_fd ? fds_excess(l, tcp) : 0;
    if (excess > 0 && !shed_for_fds(l, excess)) {
        l->shed[TT_LIMITS_SHED_FDS]++; /* nothing older to shed: this one goes */
        log_shedding(l);
        return TETHER_ERR_CAPACITY;
    }
    if (count_up(&l->per_addr, c->key) != 0)
        return TETHER_ERR_CAPACITY; /* out of memory: refusing is the safe answer */
    c->linked = true;
    c->next = NULL;
    c->prev = l->tail;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
    l->npending++;
    return 0;
}

bool tt_limits_fd_room(struct tt_limits *l, uv_tcp_t *tcp)
{
    size_t excess = fds_excess(l, tcp);
    if (excess == 0 || shed_for_fds(l, excess))
        return true;
    l->shed[TT_LIMITS_SHED_FDS]++;
    log_shedding(l);
    return false;
}

void tt_limits_accept_failed(struct tt_limits *l, int status)
{
    l->accept_errors++;
    if (status == UV_EMFILE || status == UV_ENFILE)
        (void)shed_for_fds(l, TT_LIMITS_SHED_ON_EMFILE);
    uint64_t now = uv_now(l->loop);
    if (l->accept_logged_at == 0 || now - l->accept_logged_at >= TT_LIMITS_LOG_EVERY_MS) {
        l->accept_logged_at = now ? now : 1;
        TT_LOG(TT_LOG_WARN, "accept failed err=%s accept_errors=%llu pending=%zu fd_limit=%llu",
               uv_err_name(status), (unsigned long long)l->accept_errors, l->npending,
               (unsigned long long)l->fd_limit);
    }
}

/* ---- device streams ---------------------------------------------------------------------- */

void tt_limits_key_of(const char *client, char key[TT_ADDRKEY_LEN])
{
    char ip[64];
    size_t n = client ? strlen(client) : 0;
    key[0] = '\0';
    if (n == 0 || n >= sizeof(ip))
        return;
    if (tt_addrkey_from_ip(client, key) == 0)
        return;
    if (client[0] == '[') {
        const char *end = strchr(client, ']');
        if (!end || end == client + 1)
            return;
        memcpy(ip, client + 1, (size_t)(end - client - 1));
        ip[end - client - 1] = '\0';
    } else {
        const char *colon = strrchr(client, ':');
        if (!colon || colon == client || memchr(client, ':', (size_t)(colon - client)))
            return;
        memcpy(ip, client, (size_t)(colon - client));
        ip[colon - client] = '\0';
    }
    (void)tt_addrkey_from_ip(ip, key);
}

unsigned tt_limits_kind_cap(const struct tt_limits *l, bool both)
{
    unsigned cap = l->max_streams;
    if (both)
        cap -= cap / 4;
    return cap ? cap : 1;
}

/* The map keys of a stream: its kind's and its client's. */
static void stream_keys(const struct tt_limits_stream *s, char kind[TT_MAX_NAME + 4],
                        char addr[TT_MAX_NAME + TT_ADDRKEY_LEN + 4])
{
    snprintf(kind, TT_MAX_NAME + 4, "%c\x1f%s", s->kind == TT_SERVICE_TCP ? 't' : 'h', s->dev);
    snprintf(addr, TT_MAX_NAME + TT_ADDRKEY_LEN + 4, "a\x1f%s\x1f%s", s->key, s->dev);
}

int tt_limits_stream_take(struct tt_limits *l, struct tt_limits_stream *s, const char *dev,
                          uint8_t kind, bool both, const char *client)
{
    struct tt_limits_stream t;
    char kkey[TT_MAX_NAME + 4], akey[TT_MAX_NAME + TT_ADDRKEY_LEN + 4];
    memset(&t, 0, sizeof(t));
    snprintf(t.dev, sizeof(t.dev), "%s", dev);
    t.kind = kind;
    tt_limits_key_of(client, t.key);
    stream_keys(&t, kkey, akey);
    int why = TT_LIMITS_OK;
    if (count_get(&l->streams, kkey) >= tt_limits_kind_cap(l, both))
        why = TT_LIMITS_REFUSED_KIND;
    else if (l->per_client && count_get(&l->streams, akey) >= l->per_client)
        why = TT_LIMITS_REFUSED_CLIENT;
    if (why != TT_LIMITS_OK) {
        l->refused[why]++;
        return why;
    }
    if (count_up(&l->streams, kkey) != 0)
        goto nomem;
    if (count_up(&l->streams, akey) != 0) {
        count_down(&l->streams, kkey);
        goto nomem;
    }
    t.counted = true;
    *s = t;
    return TT_LIMITS_OK;
nomem:
    l->refused[TT_LIMITS_REFUSED_DEVICE]++;
    return TT_LIMITS_REFUSED_DEVICE;
}

void tt_limits_stream_give(struct tt_limits *l, struct tt_limits_stream *s)
{
    char kkey[TT_MAX_NAME + 4], akey[TT_MAX_NAME + TT_ADDRKEY_LEN + 4];
    if (!s->counted)
        return;
    s->counted = false;
    stream_keys(s, kkey, akey);
    count_down(&l->streams, kkey);
    count_down(&l->streams, akey);
}
