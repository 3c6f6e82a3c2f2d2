/* test_limits.c - unit tests for src/relay/limits.c: the per-address cap (and its exemption),
 * the total cap shedding the oldest first, shedding for descriptors (enough to get back below
 * the reserve; the new one refused when nothing is left), EMFILE, the device stream shares per
 * kind and per client address, and client address keys. Sockets are a real loopback pair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>

#include "tether_err.h"
#include "relay/limits.h"
#include "support_loop.h"

#define NCONN 64

static struct tt_limits_conn conns[NCONN];
static int shed_order[NCONN], nshed;

static void on_shed(struct tt_limits_conn *c)
{
    assert_false(c->linked); /* taken off the list first */
    shed_order[nshed++] = (int)(c - conns);
}

static bool exempt_all(const char *key, void *ud)
{
    (void)ud;
    return strcmp(key, "127.0.0.1") == 0;
}

struct world {
    uv_loop_t loop;
    uv_timer_t guard;
    struct tt_conn *a, *b;
    uv_os_fd_t fd; /* b's descriptor */
};

static void world_start(struct world *w)
{
    assert_int_equal(uv_loop_init(&w->loop), 0);
    ut_start_guard(&w->loop, &w->guard);
    ut_make_pair(&w->loop, &w->a, &w->b);
    assert_int_equal(uv_fileno((uv_handle_t *)&w->b->tcp, &w->fd), 0);
    memset(conns, 0, sizeof(conns));
    for (int i = 0; i < NCONN; i++)
        conns[i].shed = on_shed;
    nshed = 0;
}

static void world_end(struct world *w, struct tt_limits *l)
{
    tt_limits_reset(l);
    tt_conn_close(w->a, NULL);
    tt_conn_close(w->b, NULL);
    ut_finish_loop(&w->loop, &w->guard);
}

static void test_per_address_cap(void **state)
{
    struct world w;
    struct tt_limits l;
    (void)state;
    world_start(&w);
    tt_limits_init(&l, &w.loop, 0, 100, 3, 1024, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tt_limits_admit(&l, &conns[i], &w.b->tcp, true), 0);
    assert_string_equal(conns[0].key, "127.0.0.1");
    assert_int_equal(tt_limits_admit(&l, &conns[3], &w.b->tcp, true), TETHER_ERR_CAPACITY);
    assert_false(conns[3].linked);
    assert_int_equal(l.shed[TT_LIMITS_SHED_PER_ADDR], 1);
    assert_int_equal(l.npending, 3);
    assert_int_equal(nshed, 0); /* the new one is refused; nobody is shed */
    /* one leaves: room again */
    tt_limits_leave(&l, &conns[1]);
    tt_limits_leave(&l, &conns[1]); /* twice is harmless */
    assert_int_equal(tt_limits_admit(&l, &conns[3], &w.b->tcp, true), 0);
    /* an exempt address (a cluster node) is not held to it */
    l.exempt = exempt_all;
    assert_int_equal(tt_limits_admit(&l, &conns[4], &w.b->tcp, true), 0);
    assert_int_equal(l.npending, 4);
    tt_limits_leave(&l, &conns[0]);
    tt_limits_leave(&l, &conns[2]);
    tt_limits_leave(&l, &conns[3]);
    tt_limits_leave(&l, &conns[4]);
    assert_int_equal(l.npending, 0);
    assert_null(l.head);
    assert_null(l.tail);
    assert_int_equal(tt_strmap_count(&l.per_addr), 0);
    world_end(&w, &l);
}

static void test_total_cap_sheds_oldest(void **state)
{
    struct world w;
    struct tt_limits l;
    (void)state;
    world_start(&w);
    tt_limits_init(&l, &w.loop, 0, 4, 0, 1024, 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(tt_limits_admit(&l, &conns[i], &w.b->tcp, true), 0);
    assert_int_equal(l.npending, 4);
    assert_int_equal(nshed, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(shed_order[i], i);
    assert_int_equal(l.shed[TT_LIMITS_SHED_TOTAL], 6);
    /* one from the middle leaves; the order of the others stays */
    tt_limits_leave(&l, &conns[7]);
    assert_int_equal(tt_limits_admit(&l, &conns[10], &w.b->tcp, true), 0);
    assert_int_equal(tt_limits_admit(&l, &conns[11], &w.b->tcp, true), 0);
    assert_int_equal(shed_order[6], 6);
    assert_int_equal(nshed, 7);
    assert_ptr_equal(l.head, &conns[8]);
    assert_ptr_equal(l.tail, &conns[11]);
    assert_int_equal((int)(uintptr_t)tt_strmap_get(&l.per_addr, "127.0.0.1"), 4);
    world_end(&w, &l);
}

static void test_descriptor_reserve(void **state)
{
    struct world w;
    struct tt_limits l;
    (void)state;
    world_start(&w);
    /* b's descriptor well below the reserve: nothing happens */
    tt_limits_init(&l, &w.loop, (uint64_t)w.fd + 1000, 0, 0, 1024, 0);
    assert_int_equal(l.fd_reserve, TT_LIMITS_FD_RESERVE_MIN);
    assert_int_equal(l.max_pending, (w.fd + 1000) / 2);
    for (int i = 0; i < 40; i++)
        assert_int_equal(tt_limits_admit(&l, &conns[i], &w.b->tcp, true), 0);
    assert_int_equal(nshed, 0);
    assert_true(tt_limits_fd_room(&l, &w.b->tcp));
    tt_limits_reset(&l);
    /* now within the reserve (its first descriptor): every descriptor up to it is in use, and
     * enough go to get back to half the reserve below the line (all of them when the
     * descriptor is smaller than that) */
    tt_limits_init(&l, &w.loop, (uint64_t)w.fd + TT_LIMITS_FD_RESERVE_MIN, 1000, 0, 1024, 0);
    int want = w.fd >= TT_LIMITS_FD_RESERVE_MIN / 2 ? TT_LIMITS_FD_RESERVE_MIN / 2 + 1 : w.fd + 1;
    for (int i = 0; i < 50; i++)
        assert_int_equal(tt_limits_admit(&l, &conns[i], &w.b->tcp, false), 0);
    assert_int_equal(nshed, 0); /* no descriptor check asked for */
    assert_int_equal(tt_limits_admit(&l, &conns[50], &w.b->tcp, true), 0);
    assert_int_equal(nshed, want);
    assert_int_equal(l.shed[TT_LIMITS_SHED_FDS], want);
    for (int i = 0; i < nshed; i++)
        assert_int_equal(shed_order[i], i);
    /* other sockets of the relay (TCP clients) shed the rest; then nothing is left */
    for (int i = 0; i < NCONN && l.npending > 0; i++)
        assert_true(tt_limits_fd_room(&l, &w.b->tcp));
    assert_int_equal(l.npending, 0);
    assert_false(tt_limits_fd_room(&l, &w.b->tcp));
    assert_int_equal(tt_limits_admit(&l, &conns[41], &w.b->tcp, true), TETHER_ERR_CAPACITY);
    assert_false(conns[41].linked);
    tt_limits_reset(&l);
    /* EMFILE on accept: a batch of the oldest goes */
    nshed = 0;
    memset(conns, 0, sizeof(conns));
    for (int i = 0; i < NCONN; i++)
        conns[i].shed = on_shed;
    tt_limits_init(&l, &w.loop, 0, 0, 0, 1024, 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(tt_limits_admit(&l, &conns[i], &w.b->tcp, true), 0);
    tt_limits_accept_failed(&l, UV_EMFILE);
    assert_int_equal(nshed, TT_LIMITS_SHED_ON_EMFILE);
    tt_limits_accept_failed(&l, UV_ECONNABORTED); /* counted, nothing shed */
    assert_int_equal(nshed, TT_LIMITS_SHED_ON_EMFILE);
    assert_int_equal(l.accept_errors, 2);
    world_end(&w, &l);
}

static void test_stream_shares(void **state)
{
    struct tt_limits l;
    struct tt_limits_stream s[16];
    (void)state;
    memset(s, 0, sizeof(s));
    tt_limits_init(&l, NULL, 0, 0, 0, 8, 3);
    assert_int_equal(tt_limits_kind_cap(&l, true), 6);
    assert_int_equal(tt_limits_kind_cap(&l, false), 8);
    /* per client: 3 from 192.0.2.1 (any port), the 4th refused */
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            tt_limits_stream_take(&l, &s[i], "dev", TT_SERVICE_TCP, true, "192.0.2.1:4000"), 0);
    assert_int_equal(tt_limits_stream_take(&l, &s[3], "dev", TT_SERVICE_HTTP, true, "192.0.2.1"),
                     TT_LIMITS_REFUSED_CLIENT);
    assert_false(s[3].counted);
    /* another device is counted apart */
    assert_int_equal(tt_limits_stream_take(&l, &s[3], "dev2", TT_SERVICE_HTTP, true, "192.0.2.1"),
                     0);
    /* TCP gets 3/4 of 8 when the device also has HTTP */
    assert_int_equal(
        tt_limits_stream_take(&l, &s[4], "dev", TT_SERVICE_TCP, true, "[2001:db8::1]:22"), 0);
    assert_int_equal(
        tt_limits_stream_take(&l, &s[5], "dev", TT_SERVICE_TCP, true, "[2001:db8::2]:22"), 0);
    assert_int_equal(
        tt_limits_stream_take(&l, &s[6], "dev", TT_SERVICE_TCP, true, "[2001:db8::3]:22"), 0);
    assert_string_equal(s[6].key, "2001:db8::/64");
    assert_int_equal(tt_limits_stream_take(&l, &s[7], "dev", TT_SERVICE_TCP, true, "198.51.100.1"),
                     TT_LIMITS_REFUSED_KIND);
    /* ... and HTTP still has its own */
    assert_int_equal(tt_limits_stream_take(&l, &s[7], "dev", TT_SERVICE_HTTP, true, "198.51.100.1"),
                     0);
    assert_int_equal(l.refused[TT_LIMITS_REFUSED_CLIENT], 1);
    assert_int_equal(l.refused[TT_LIMITS_REFUSED_KIND], 1);
    /* given back: room again; giving twice is harmless */
    tt_limits_stream_give(&l, &s[0]);
    tt_limits_stream_give(&l, &s[0]);
    assert_int_equal(tt_limits_stream_take(&l, &s[0], "dev", TT_SERVICE_HTTP, true, "192.0.2.1"),
                     0);
    for (int i = 0; i < 8; i++)
        tt_limits_stream_give(&l, &s[i]);
    assert_int_equal(tt_strmap_count(&l.streams), 0);
    /* no per-client cap */
    l.per_client = 0;
    for (int i = 0; i < 8; i++)
        assert_int_equal(
            tt_limits_stream_take(&l, &s[i], "solo", TT_SERVICE_HTTP, false, "192.0.2.9:1"), 0);
    assert_int_equal(tt_limits_stream_take(&l, &s[8], "solo", TT_SERVICE_HTTP, false, "192.0.2.9"),
                     TT_LIMITS_REFUSED_KIND);
    tt_limits_reset(&l);
}

static void test_client_keys(void **state)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"192.0.2.7", "192.0.2.7"},
        {"192.0.2.7:443", "192.0.2.7"},
        {"[2001:db8:1:2::9]:443", "2001:db8:1:2::/64"},
        {"2001:db8:1:2::9", "2001:db8:1:2::/64"},
        {"::ffff:192.0.2.7", "192.0.2.7"},
        {"[::ffff:192.0.2.7]:1", "192.0.2.7"},
        {"", ""},
        {"[]:1", ""},
        {"[2001:db8::1", ""},
        {"example.com:80", ""},
        {"1.2.3.4:5:6", ""},
        {":80", ""},
        {"0123456789012345678901234567890123456789012345678901234567890123456789", ""},
    };
    char key[TT_ADDRKEY_LEN];
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tt_limits_key_of(cases[i].in, key);
        assert_string_equal(key, cases[i].want);
    }
    tt_limits_key_of(NULL, key);
    assert_string_equal(key, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_address_cap),    cmocka_unit_test(test_total_cap_sheds_oldest),
        cmocka_unit_test(test_descriptor_reserve), cmocka_unit_test(test_stream_shares),
        cmocka_unit_test(test_client_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
