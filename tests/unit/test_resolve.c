/* test_resolve.c - unit tests for src/agent/resolve.c on a real loop: names that need no lookup
 * (answered on the next loop turn, never inside the call), and c-ares driven by the loop against
 * a small DNS server written here on 127.0.0.1 (uv_udp): an answer, a name it does not know, a
 * server that is not there, a lookup cancelled before its answer, and several lookups at once.
 * Every test closes its handles and checks uv_loop_close() == 0 (support_loop.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>

#include "agent/resolve.h"
#include "tether_err.h"

#include "support_loop.h"

/* ---- a DNS server on 127.0.0.1 that knows one name ------------------------------------------ */

/* "relay.test" in DNS wire form; its A record is 127.0.0.42, it has no AAAA. */
static const uint8_t known_name[] = "\x05relay\x04test";

struct dns_srv {
    uv_udp_t udp;
    int port;
    int queries;
    int known_queries; /* of known_name */
    uint8_t in[512];
};

static void srv_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct dns_srv *s = h->data;
    (void)suggested;
    *b = uv_buf_init((char *)s->in, sizeof s->in);
}

struct srv_send {
    uv_udp_send_t req;
    uint8_t out[512];
};

static void srv_sent(uv_udp_send_t *req, int status)
{
    (void)status;
    free(req);
}

static void srv_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *b, const struct sockaddr *from,
                     unsigned flags)
{
    struct dns_srv *s = u->data;
    const uint8_t *q = (const uint8_t *)b->base;
    struct srv_send *r;
    size_t qend = 12, len;
    uint16_t qtype;
    bool known;
    (void)flags;

    if (n < 17 || from == NULL)
        return;
    while (qend < (size_t)n && q[qend] != 0)
        qend += (size_t)q[qend] + 1;
    if (qend + 5 > (size_t)n)
        return;
    s->queries++;
    known = qend - 12 == sizeof known_name - 1 && memcmp(q + 12, known_name, qend - 12) == 0;
    s->known_queries += known;
    qtype = (uint16_t)(q[qend + 1] << 8 | q[qend + 2]);
    r = calloc(1, sizeof *r);
    assert_non_null(r);
    len = qend + 5;
    memcpy(r->out, q, len);          /* id and question; then the header is rewritten */
    r->out[2] = 0x81;                /* QR, RD */
    r->out[3] = known ? 0x80 : 0x83; /* RA; NOERROR or NXDOMAIN */
    r->out[4] = 0, r->out[5] = 1;    /* QDCOUNT */
    r->out[6] = 0, r->out[7] = known && qtype == 1; /* ANCOUNT */
    memset(r->out + 8, 0, 4);                       /* NSCOUNT, ARCOUNT */
    if (known && qtype == 1) {
        static const uint8_t a[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 42};
        memcpy(r->out + len, a, sizeof a);
        len += sizeof a;
    }
    uv_buf_t ob = uv_buf_init((char *)r->out, (unsigned)len);
    assert_int_equal(uv_udp_send(&r->req, u, &ob, 1, from, srv_sent), 0);
}

static void srv_start(uv_loop_t *loop, struct dns_srv *s)
{
    struct sockaddr_in a;
    struct sockaddr_storage ss;
    int len = sizeof ss;

    memset(s, 0, sizeof *s);
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_udp_init(loop, &s->udp), 0);
    s->udp.data = s;
    assert_int_equal(uv_udp_bind(&s->udp, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_udp_getsockname(&s->udp, (struct sockaddr *)&ss, &len), 0);
    s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    assert_int_equal(uv_udp_recv_start(&s->udp, srv_alloc, srv_recv), 0);
}

static void resolver_for(struct tt_resolver *rs, int port)
{
    char arg[32], err[TT_ERRLEN];
    snprintf(arg, sizeof arg, "127.0.0.1:%d", port);
    assert_int_equal(tt_resolve_setup(rs, arg, err), 0);
    assert_true(rs->has_dns);
}

/* The setup most tests share: a loop with its guard timer, the DNS server above and a resolver
 * pointed at it; fix_finish closes the server and the loop. */
struct fixture {
    uv_loop_t loop;
    uv_timer_t guard;
    struct dns_srv srv;
    struct tt_resolver rs;
};

static void fix_start(struct fixture *f)
{
    uv_loop_init(&f->loop);
    ut_start_guard(&f->loop, &f->guard);
    srv_start(&f->loop, &f->srv);
    resolver_for(&f->rs, f->srv.port);
}

static void fix_finish(struct fixture *f)
{
    if (!uv_is_closing((uv_handle_t *)&f->srv.udp))
        uv_close((uv_handle_t *)&f->srv.udp, ut_close_nothing);
    ut_finish_loop(&f->loop, &f->guard);
}

/* Runs loop until *calls reaches want (or nothing is left to run; the guard bounds the time). */
static void run_until(uv_loop_t *loop, const int *calls, int want)
{
    while (*calls < want && uv_run(loop, UV_RUN_ONCE) != 0) {
    }
}

/* ---- the lookups ---------------------------------------------------------------------------- */

struct outcome {
    int calls;
    int err;
    char msg[TT_ERRLEN];
    size_t naddrs;
    union tt_sockaddr first;
};

static void on_done(struct tt_resolve *r, const struct tt_resolve_result *res, void *ud)
{
    struct outcome *o = ud;
    (void)r;
    o->calls++;
    o->err = res->err;
    snprintf(o->msg, sizeof o->msg, "%s", res->message);
    o->naddrs = res->naddrs;
    if (res->naddrs > 0)
        o->first = res->addrs[0];
}

static void test_fixed_names(void **state)
{
    uv_loop_t loop;
    uv_timer_t guard;
    struct tt_resolve *r;
    struct outcome o1 = {0}, o2 = {0};
    char err[TT_ERRLEN], ip[64];
    struct tt_resolver rs;
    (void)state;

    uv_loop_init(&loop);
    ut_start_guard(&loop, &guard);
    /* with a --dns server that is not there: a localhost name never reaches it */
    resolver_for(&rs, 9);
    assert_int_equal(tt_resolve_start(&r, &loop, &rs, "relay.localhost", 7000, on_done, &o1, err),
                     0);
    assert_int_equal(tt_resolve_start(&r, &loop, NULL, "192.0.2.5", 7001, on_done, &o2, err), 0);
    assert_int_equal(o1.calls + o2.calls, 0); /* never inside the call */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(o1.calls, 1);
    assert_int_equal(o1.err, 0);
    assert_int_equal(o1.naddrs, 2);
    uv_ip4_name(&o1.first.in, ip, sizeof ip);
    assert_string_equal(ip, "127.0.0.1");
    assert_int_equal(ntohs(o1.first.in.sin_port), 7000);
    assert_int_equal(o2.calls, 1);
    assert_int_equal(o2.naddrs, 1);
    assert_int_equal(ntohs(o2.first.in.sin_port), 7001);

    assert_int_equal(tt_resolve_start(&r, &loop, NULL, "", 1, on_done, &o1, err), TETHER_ERR_INVAL);
    ut_finish_loop(&loop, &guard);
}

static void test_dns_answer(void **state)
{
    struct fixture f;
    struct tt_resolve *r;
    struct outcome o = {0};
    char err[TT_ERRLEN], ip[64];
    (void)state;

    fix_start(&f);
    assert_int_equal(tt_resolve_mode_now(&f.rs), TT_RESOLVE_DNS);
    assert_int_equal(tt_resolve_start(&r, &f.loop, &f.rs, "relay.test", 8443, on_done, &o, err), 0);
    run_until(&f.loop, &o.calls, 1);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.err, 0);
    assert_int_equal(o.naddrs, 1);
    assert_int_equal(o.first.sa.sa_family, AF_INET);
    uv_ip4_name(&o.first.in, ip, sizeof ip);
    assert_string_equal(ip, "127.0.0.42");
    assert_int_equal(ntohs(o.first.in.sin_port), 8443);
    assert_true(f.srv.known_queries >= 1);
    fix_finish(&f);
}

static void test_dns_unknown_name(void **state)
{
    struct fixture f;
    struct tt_resolve *r;
    struct outcome o = {0};
    char err[TT_ERRLEN], want[64];
    (void)state;

    fix_start(&f);
    assert_int_equal(tt_resolve_start(&r, &f.loop, &f.rs, "nosuch.test", 80, on_done, &o, err), 0);
    run_until(&f.loop, &o.calls, 1);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.err, TETHER_ERR_NOT_FOUND);
    snprintf(want, sizeof want, "127.0.0.1:%d (--dns): no such name", f.srv.port);
    if (strstr(o.msg, want) == NULL || strstr(o.msg, "cannot resolve nosuch.test") == NULL)
        fail_msg("message: %s", o.msg);
    assert_int_equal(f.srv.known_queries, 0);
    fix_finish(&f);
}

/* A server port with nobody behind it: the lookup fails (refused, or no answer), never hangs. */
static void test_dns_no_server(void **state)
{
    struct fixture f;
    struct tt_resolve *r;
    struct outcome o = {0};
    char err[TT_ERRLEN];
    (void)state;

    fix_start(&f);
    uv_close((uv_handle_t *)&f.srv.udp, ut_close_nothing); /* the port is free again */
    assert_int_equal(tt_resolve_start(&r, &f.loop, &f.rs, "relay.test", 80, on_done, &o, err), 0);
    run_until(&f.loop, &o.calls, 1);
    assert_int_equal(o.calls, 1);
    assert_true(o.err == TETHER_ERR_NOT_FOUND || o.err == TETHER_ERR_TIMEOUT);
    if (strstr(o.msg, "with DNS server 127.0.0.1:") == NULL)
        fail_msg("message: %s", o.msg);
    fix_finish(&f);
}

/* Cancelled before the answer, and several at once: no callback for the cancelled one, every
 * socket and timer closed. */
static void test_dns_cancel_and_many(void **state)
{
    struct fixture f;
    struct tt_resolve *r[6];
    struct outcome o[6];
    char err[TT_ERRLEN];
    int done;
    (void)state;

    memset(o, 0, sizeof o);
    fix_start(&f);
    for (int i = 0; i < 6; i++)
        assert_int_equal(tt_resolve_start(&r[i], &f.loop, &f.rs, i % 2 ? "relay.test" : "x.test",
                                          80, on_done, &o[i], err),
                         0);
    tt_resolve_cancel(r[0]); /* before it ran at all */
    uv_run(&f.loop, UV_RUN_NOWAIT);
    tt_resolve_cancel(r[1]); /* its query is out */
    do {
        done = 0;
        for (int i = 2; i < 6; i++)
            done += o[i].calls;
    } while (done < 4 && uv_run(&f.loop, UV_RUN_ONCE) != 0);
    assert_int_equal(o[0].calls, 0);
    assert_int_equal(o[1].calls, 0);
    for (int i = 2; i < 6; i++) {
        assert_int_equal(o[i].calls, 1);
        assert_int_equal(o[i].err, i % 2 ? 0 : TETHER_ERR_NOT_FOUND);
    }
    fix_finish(&f);
}

/* The cap on lookups under way: TT_RESOLVE_MAX_INFLIGHT to a server that never answers are
 * taken, the next is refused at once (no callback), a cancelled one frees its place at once, and
 * answers for literals and localhost are never counted. */
static void test_inflight_cap(void **state)
{
    uv_loop_t loop;
    uv_timer_t guard;
    uv_udp_t mute; /* bound, never read: queries to it are never answered */
    struct sockaddr_in a;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    struct tt_resolver rs;
    struct tt_resolve *r[TT_RESOLVE_MAX_INFLIGHT + 1], *extra, *fixed;
    struct outcome o[TT_RESOLVE_MAX_INFLIGHT + 1], of;
    char err[TT_ERRLEN];
    (void)state;

    memset(o, 0, sizeof o);
    memset(&of, 0, sizeof of);
    uv_loop_init(&loop);
    ut_start_guard(&loop, &guard);
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_udp_init(&loop, &mute), 0);
    assert_int_equal(uv_udp_bind(&mute, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_udp_getsockname(&mute, (struct sockaddr *)&ss, &len), 0);
    resolver_for(&rs, ntohs(((struct sockaddr_in *)&ss)->sin_port));
    assert_int_equal(tt_resolve_inflight(), 0);
    for (int i = 0; i < TT_RESOLVE_MAX_INFLIGHT; i++)
        assert_int_equal(tt_resolve_start(&r[i], &loop, &rs, "relay.test", 80, on_done, &o[i], err),
                         0);
    assert_int_equal(tt_resolve_inflight(), TT_RESOLVE_MAX_INFLIGHT);
    err[0] = '\0';
    assert_int_equal(tt_resolve_start(&extra, &loop, &rs, "relay.test", 80, on_done,
                                      &o[TT_RESOLVE_MAX_INFLIGHT], err),
                     TETHER_ERR_CAPACITY);
    if (strstr(err, "cannot resolve relay.test: too many name lookups at once") == NULL)
        fail_msg("message: %s", err);
    /* localhost needs no lookup: not counted, not refused */
    assert_int_equal(tt_resolve_start(&fixed, &loop, &rs, "localhost", 80, on_done, &of, err), 0);
    tt_resolve_cancel(r[0]);
    assert_int_equal(tt_resolve_inflight(), TT_RESOLVE_MAX_INFLIGHT - 1);
    assert_int_equal(tt_resolve_start(&r[0], &loop, &rs, "relay.test", 80, on_done, &o[0], err), 0);
    run_until(&loop, &of.calls, 1);
    assert_int_equal(of.calls, 1);
    assert_int_equal(of.err, 0);
    for (int i = 0; i < TT_RESOLVE_MAX_INFLIGHT; i++)
        tt_resolve_cancel(r[i]);
    assert_int_equal(tt_resolve_inflight(), 0);
    for (int i = 0; i <= TT_RESOLVE_MAX_INFLIGHT; i++)
        assert_int_equal(o[i].calls, 0);
    uv_close((uv_handle_t *)&mute, ut_close_nothing);
    ut_finish_loop(&loop, &guard);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_names),         cmocka_unit_test(test_dns_answer),
        cmocka_unit_test(test_dns_unknown_name),    cmocka_unit_test(test_dns_no_server),
        cmocka_unit_test(test_dns_cancel_and_many), cmocka_unit_test(test_inflight_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
