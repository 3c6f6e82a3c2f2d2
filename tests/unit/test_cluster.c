/* test_cluster.c - the redirect decision of cluster mode (src/relay/cluster/cluster.c): who is
 * least loaded, when a node keeps a device, the Location it gives and the marker that stops a
 * second redirect. Pure: no Redis, no loop. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "relay/cluster/cluster.h"

static struct tt_cluster_node nodes[3];
static struct tt_cluster c;

static void setup_nodes(int64_t a, int64_t b, const char *adv_b)
{
    memset(&c, 0, sizeof(c));
    memset(nodes, 0, sizeof(nodes));
    strcpy(nodes[0].id, "node-a");
    strcpy(nodes[0].advertise, "ws://10.0.0.1:8080");
    nodes[0].devices = a;
    strcpy(nodes[1].id, "node-b");
    strcpy(nodes[1].advertise, adv_b);
    nodes[1].devices = b;
    c.nodes = nodes;
    c.nnodes = 2;
}

static int redirect(const char *target, char *loc, size_t loclen)
{
    return tt_cluster_redirect(&c, target, strlen(target), false, loc, loclen);
}

static void test_least_loaded(void **state)
{
    (void)state;
    char loc[512];
    setup_nodes(5, 2, "wss://relay2.example.com");
    c.online = 4;
    assert_int_equal(redirect("/tether", loc, sizeof(loc)), 1);
    assert_string_equal(loc, "wss://relay2.example.com/tether?tether-redirected=1");
    /* each redirect counts against b until the next beat: 3, then 4 = ours */
    assert_int_equal(redirect("/", loc, sizeof(loc)), 1);
    assert_string_equal(loc, "wss://relay2.example.com/?tether-redirected=1");
    assert_int_equal(nodes[1].devices, 4);
    assert_int_equal(redirect("/", loc, sizeof(loc)), 0); /* not strictly fewer: kept */
    assert_int_equal(c.accepted, 1);
    /* and what we keep counts for us: b has fewer again */
    assert_int_equal(redirect("/", loc, sizeof(loc)), 1);
}

static void test_equal_counts_stay(void **state)
{
    (void)state;
    char loc[512];
    setup_nodes(3, 3, "ws://10.0.0.2:8080");
    c.online = 3;
    assert_int_equal(redirect("/", loc, sizeof(loc)), 0);
    c.nnodes = 0; /* alone */
    c.online = 100;
    assert_int_equal(redirect("/", loc, sizeof(loc)), 0);
}

static void test_marker_and_paths(void **state)
{
    (void)state;
    char loc[512];
    setup_nodes(9, 0, "ws://10.0.0.2:8080/relay");
    c.online = 9;
    /* a redirected handshake is accepted wherever it lands */
    assert_int_equal(redirect("/x?tether-redirected=1", loc, sizeof(loc)), 0);
    /* the advertise URL's own path wins over the request's */
    assert_int_equal(redirect("/x?a=b", loc, sizeof(loc)), 1);
    assert_string_equal(loc, "ws://10.0.0.2:8080/relay?tether-redirected=1");
    setup_nodes(9, 0, "ws://10.0.0.2:8080");
    c.online = 9;
    assert_int_equal(redirect("/x?a=b", loc, sizeof(loc)), 1);
    assert_string_equal(loc, "ws://10.0.0.2:8080/x?a=b&tether-redirected=1");
    /* a target that is not a path (absolute form) gets "/" */
    assert_int_equal(redirect("http://evil/", loc, sizeof(loc)), 1);
    assert_string_equal(loc, "ws://10.0.0.2:8080/?tether-redirected=1");
    /* too small a buffer: no redirect rather than a cut Location */
    assert_int_equal(redirect("/x", loc, 10), 0);
}

static void test_tie_breaks_by_id(void **state)
{
    (void)state;
    char loc[512];
    setup_nodes(1, 1, "ws://b:1");
    strcpy(nodes[0].id, "node-z");
    c.online = 5;
    assert_int_equal(redirect("/", loc, sizeof(loc)), 1);
    assert_string_equal(loc, "ws://b:1/?tether-redirected=1");
}

/* Draining nodes are skipped by the pick; a draining node (away) sends every new device to
 * the least-loaded node that is not draining, whatever the counts, but never a handshake that
 * was redirected already. */
static void test_draining_nodes(void **state)
{
    (void)state;
    char loc[512];
    setup_nodes(1, 3, "ws://10.0.0.2:8080");
    c.online = 10;
    nodes[0].draining = true;
    assert_int_equal(redirect("/t", loc, sizeof(loc)), 1);
    assert_non_null(strstr(loc, "10.0.0.2"));
    nodes[1].draining = true;
    assert_int_equal(redirect("/t", loc, sizeof(loc)), 0); /* nobody else takes devices */
    setup_nodes(50, 70, "ws://10.0.0.2:8080");
    c.online = 1;
    assert_int_equal(tt_cluster_redirect(&c, "/t", 2, true, loc, sizeof(loc)), 1);
    assert_non_null(strstr(loc, "10.0.0.1"));
    int64_t accepted = c.accepted;
    const char *marked = "/t?" TT_CLUSTER_REDIRECTED;
    assert_int_equal(tt_cluster_redirect(&c, marked, strlen(marked), true, loc, sizeof(loc)), 0);
    assert_int_equal(c.accepted, accepted); /* refused, not accepted here */
    nodes[0].draining = nodes[1].draining = true;
    assert_int_equal(tt_cluster_redirect(&c, "/t", 2, true, loc, sizeof(loc)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_least_loaded),     cmocka_unit_test(test_equal_counts_stay),
        cmocka_unit_test(test_marker_and_paths), cmocka_unit_test(test_tie_breaks_by_id),
        cmocka_unit_test(test_draining_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
