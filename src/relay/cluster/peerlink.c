/* peerlink.c - byte copying between a client and a peer node (peerlink.h). Read memory comes
 * from the chunk pool; a chunk goes to the other side's write and back to the pool in its
 * callback. What a side has queued is bounded by the byte and write marks below. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#include "common/pool.h"
#include "common/tls.h"
#include "relay/access/access.h"
#include "relay/device/forward.h"
#include "relay/http/pages.h"
#include "relay/cluster/peerlink.h"
#include "relay/core.h"
#include "relay/http/respond.h"

/* Stop reading a side while the other has this much queued; resume below the low mark. So a side
 * holds at most HIGH_WATER plus one read (a 64 KiB chunk) of the other's bytes. */
#define HIGH_WATER (1024u * 1024)
#define LOW_WATER (256u * 1024)
/* The same in writes under way (one per read): a TLS client takes at most TT_TLS_MAX_WRITES at
 * once (one more fails with UV_ENOBUFS, which cut the link), and small reads would pass that
 * long before HIGH_WATER. */
#define HIGH_WRITES TT_TLS_MAX_WRITES
#define LOW_WRITES (TT_TLS_MAX_WRITES / 2)

struct link;

struct side {
    struct tt_conn *c;
    struct link *l;
    size_t queued;   /* bytes written to this side and not yet confirmed */
    unsigned writes; /* writes to this side under way */
    bool reading;    /* reads started on this side */
    bool eof;        /* this side's input ended */
    bool shut;       /* our output to this side was shut down */
    bool closed;     /* its close callback ran */
    uv_shutdown_t sreq;
};

/* The audit line's fields, kept while the peer is dialled (tt_peerlink_audit, copied). */
struct link_audit {
    struct tt_relay *r;
    char device[TT_MAX_NAME + 1], service[TT_MAX_NAME + 1], kind[8], client[TT_MAX_ADDR];
    struct tt_principal who;
    bool has_who;
};

struct link {
    struct side s[2]; /* 0: the client, 1: the peer */
    /* for the log line and the answer when the peer cannot be reached */
    char node[TT_NODE_ID_MAX + 1], device[TT_MAX_NAME + 1], addr[TT_MAX_ADDR];
    bool text;
    uv_connect_t creq;
    uint8_t *first;
    size_t firstlen;
    struct link_audit *audit; /* NULL: no line (none asked, or the peer was reached) */
    bool http;
    bool dying;
    int open; /* sides not yet closed */
};

struct wreq {
    uv_write_t req;
    struct side *to;
    struct tt_chunk *chunk; /* NULL: the first bytes (link->first) */
    size_t len;
};

static size_t nlinks;

size_t tt_peerlink_count(void)
{
    return nlinks;
}

static void on_side_close(uv_handle_t *h)
{
    struct side *s = h->data;
    struct link *l = s->l;
    s->closed = true;
    if (--l->open == 0) {
        free(l->first);
        free(l->audit);
        free(l);
        nlinks--;
    }
}

static void kill_link(struct link *l)
{
    if (l->dying)
        return;
    l->dying = true;
    for (int i = 0; i < 2; i++)
        if (l->s[i].c && !tt_conn_is_closing(l->s[i].c))
            tt_conn_close(l->s[i].c, on_side_close);
}

static void start_reading(struct side *s);

/* Both directions ended and were passed on: the link is done. */
static void maybe_done(struct link *l)
{
    if (l->s[0].eof && l->s[1].eof && l->s[0].shut && l->s[1].shut && !l->s[0].queued &&
        !l->s[1].queued)
        kill_link(l);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct side *s = req->data;
    (void)status;
    if (!s->l->dying)
        maybe_done(s->l);
}

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = req->data;
    struct side *to = w->to;
    struct link *l = to->l;
    to->queued -= w->len;
    to->writes--;
    tt_chunk_put(w->chunk);
    free(w);
    if (l->dying)
        return;
    if (status < 0) {
        kill_link(l);
        return;
    }
    struct side *from = &l->s[to == &l->s[0] ? 1 : 0];
    if (!from->reading && !from->eof && to->queued < LOW_WATER && to->writes <= LOW_WRITES)
        start_reading(from);
    maybe_done(l);
}

/* Writes len bytes (chunk, or the first bytes when chunk is NULL) to side to. */
static int send_to(struct side *to, struct tt_chunk *chunk, const uint8_t *data, size_t len)
{
    struct wreq *w = malloc(sizeof(*w));
    if (!w) {
        tt_chunk_put(chunk);
        return -1;
    }
    w->req.data = w;
    w->to = to;
    w->chunk = chunk;
    w->len = len;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    if (tt_conn_write(to->c, &w->req, &b, 1, on_write) != 0) {
        tt_chunk_put(chunk);
        free(w);
        return -1;
    }
    to->queued += len;
    to->writes++;
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    (void)size;
    struct tt_chunk *c = tt_chunk_get();
    *buf = c ? uv_buf_init((char *)c->data, TT_CHUNK_SIZE) : uv_buf_init(NULL, 0);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct side *from = st->data;
    struct link *l = from->l;
    struct side *to = &l->s[from == &l->s[0] ? 1 : 0];
    struct tt_chunk *c =
        buf->base ? (struct tt_chunk *)(buf->base - offsetof(struct tt_chunk, data)) : NULL;
    if (nread == 0 || l->dying) {
        tt_chunk_put(c);
        return;
    }
    if (nread < 0) {
        tt_chunk_put(c);
        if (nread != UV_EOF) {
            kill_link(l);
            return;
        }
        from->eof = true;
        from->reading = false;
        tt_conn_read_stop(from->c);
        to->sreq.data = to;
        if (tt_conn_shutdown(to->c, &to->sreq, on_shutdown) != 0) {
            kill_link(l);
            return;
        }
        to->shut = true;
        return;
    }
    if (send_to(to, c, (uint8_t *)buf->base, (size_t)nread) != 0) {
        kill_link(l);
        return;
    }
    if (to->queued >= HIGH_WATER || to->writes >= HIGH_WRITES) {
        from->reading = false;
        tt_conn_read_stop(from->c);
    }
}

static void start_reading(struct side *s)
{
    s->c->tcp.data = s;
    if (tt_conn_read_start(s->c, on_alloc, on_read) != 0) {
        kill_link(s->l);
        return;
    }
    s->reading = true;
}

/* The text/plain refusal tether connect reads (visitor.c's form). */
static void refuse_text(struct tt_conn *client, const char *device)
{
    char body[TT_MAX_NAME + 64], out[TT_MAX_NAME + 320];
    int bn = snprintf(body, sizeof(body), "device unavailable: %s cannot be reached now\n", device);
    int n = snprintf(out, sizeof(out),
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; "
                     "charset=utf-8\r\nContent-Length: %d\r\nCache-Control: no-store\r\n"
                     "Connection: close\r\n\r\n%s",
                     bn, body);
    tt_respond_close(client, out, n > 0 && (size_t)n < sizeof(out) ? (size_t)n : 0);
}

static void fail_client(struct link *l, const char *why)
{
    TT_LOG(TT_LOG_INFO, "cluster peer unreachable node=%s addr=%s device=%s err=%s",
           TT_LOG_V(l->node), l->addr, TT_LOG_V(l->device), why);
    struct link_audit *a = l->audit;
    if (a)
        tt_forward_audit_refused(a->r, a->device, a->service[0] ? a->service : NULL, a->kind,
                                 a->has_who ? &a->who : NULL, a->client, "offline");
    struct tt_conn *client = l->s[0].c;
    l->s[0].c = NULL;
    if (l->http && l->text) {
        refuse_text(client, l->device);
    } else if (l->http) {
        /* the device cannot be reached (its node is gone): not a failure of its service */
        char page[TT_PAGE_MAX];
        int n = tt_pages_render(page, sizeof(page), TT_PAGE_UNAVAILABLE);
        tt_respond_close(client, page, n > 0 ? (size_t)n : 0);
    } else {
        tt_respond_drop(client);
    }
    l->open--; /* the client side is gone */
    kill_link(l);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct link *l = req->data;
    if (l->dying)
        return;
    if (status < 0) {
        fail_client(l, uv_err_name(status));
        return;
    }
    uv_tcp_nodelay(&l->s[1].c->tcp, 1);
    free(l->audit); /* the peer was reached: it writes the line */
    l->audit = NULL;
    if (l->firstlen && send_to(&l->s[1], NULL, l->first, l->firstlen) != 0) {
        kill_link(l);
        return;
    }
    start_reading(&l->s[0]);
    if (!l->dying)
        start_reading(&l->s[1]);
}

/* A copy of audit, or NULL (none asked, no audit log, or out of memory: the line is lost). */
static struct link_audit *audit_copy(const struct tt_peerlink_audit *audit)
{
    if (!audit || !audit->r || !audit->device || !audit->device[0] ||
        !tt_audit_on(&audit->r->audit))
        return NULL;
    struct link_audit *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->r = audit->r;
    snprintf(a->device, sizeof(a->device), "%s", audit->device);
    snprintf(a->service, sizeof(a->service), "%s", audit->service ? audit->service : "");
    snprintf(a->kind, sizeof(a->kind), "%s", audit->kind ? audit->kind : "tcp");
    snprintf(a->client, sizeof(a->client), "%s", audit->client ? audit->client : "");
    if (audit->who) {
        a->who = *audit->who;
        a->has_who = true;
    }
    return a;
}

void tt_peerlink_start(uv_loop_t *loop, struct tt_conn *client, const char *host, uint16_t port,
                       uint8_t *first, size_t firstlen, bool http,
                       const struct tt_peerlink_audit *audit)
{
    struct sockaddr_storage ss;
    struct link *l = calloc(1, sizeof(*l));
    struct tt_conn *peer = NULL;
    if (l != NULL)
        (void)tt_conn_new(&peer, loop); /* NULL when out of memory */
    if (!peer || (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
                  uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)) {
        if (peer)
            tt_conn_close(peer, NULL);
        free(l);
        free(first);
        tt_respond_drop(client);
        return;
    }
    nlinks++;
    l->first = first;
    l->firstlen = firstlen;
    l->http = http;
    l->audit = audit_copy(audit);
    l->text = audit && audit->text;
    snprintf(l->device, sizeof(l->device), "%s", audit && audit->device ? audit->device : "");
    const char *node = audit && audit->r ? audit->r->mode->node_at(audit->r, host, port) : NULL;
    snprintf(l->node, sizeof(l->node), "%s", node ? node : "");
    bool v6 = strchr(host, ':') != NULL;
    snprintf(l->addr, sizeof(l->addr), "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "",
             (unsigned)port);
    l->open = 2;
    for (int i = 0; i < 2; i++)
        l->s[i].l = l;
    l->s[0].c = client;
    l->s[1].c = peer;
    client->tcp.data = &l->s[0];
    peer->tcp.data = &l->s[1];
    l->creq.data = l;
    int rc = uv_tcp_connect(&l->creq, &peer->tcp, (struct sockaddr *)&ss, on_connect);
    if (rc != 0)
        fail_client(l, uv_err_name(rc));
}
