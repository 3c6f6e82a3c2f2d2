"""test_cluster_async.py - a cluster node's Redis calls do not block its loop: two tetherd nodes
sharing a real redis-server, which is stopped (SIGSTOP, by the PID this test started) for about
three seconds. Meanwhile each node keeps serving the devices it holds (HTTP requests answered
while Redis is still stopped), its beat is skipped rather than waited for (counted in
/metrics), a device the other node holds and this one saw before is still reached (the holder
it knew), and a request for a device it never saw waits a bounded time and gets the 503 page
(counted). After SIGCONT cross-node forwarding works again, a device new to a node is found
through Redis, and neither node took the other for dead because of the stall (no "node left",
every device still online on its node)."""

import re
import signal
import time

from lib import check, eq, wait_for
from test_cluster import _cluster, _get, _holds, _admin


def _metric(node, name):
    text = _admin(node, "/metrics")[1].decode()
    m = re.search(r"^%s (\d+)" % re.escape(name), text, re.M)
    check(m, "metric %s missing on %s" % (name, node.name))
    return int(m.group(1))


def test_cluster_async_redis_stopped(t):
    redis, (a, b) = _cluster(t)
    svc_a = t.http_service(big_size=1024, ident="held-by-a")
    svc_b = t.http_service(big_size=1024, ident="held-by-b")
    svc_c = t.http_service(big_size=1024, ident="new-to-a")
    dev_a = t.agent(a, http=svc_a.port)
    dev_b = t.agent(b, http=svc_b.port, server=b.url + "/?tether-redirected=1")
    dev_c = t.agent(b, http=svc_c.port, server=b.url + "/?tether-redirected=1")
    check(_holds(a, dev_a.name) and _holds(b, dev_b.name) and _holds(b, dev_c.name),
          "devices not on the nodes they connected to")
    # each node learns where the other's device is (a lookup through Redis); dev_c is asked
    # of node a only once Redis is stopped
    eq(_get(b, dev_a.label)[::2], (200, b"held-by-a"), "device a via node b")
    eq(_get(a, dev_b.label)[::2], (200, b"held-by-b"), "device b via node a")
    skipped_a = _metric(a, "tether_cluster_beats_skipped_total")
    skipped_b = _metric(b, "tether_cluster_beats_skipped_total")
    timeouts_a = _metric(a, "tether_cluster_lookups_timeout_total")
    eq(_metric(a, "tether_cluster_lookup_waiting_max"), 4096, "the cap on waiting clients")

    redis.proc.send_signal(signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        served = 0
        while time.monotonic() - stopped < 1.2:
            eq(_get(a, dev_a.label, timeout=10)[::2], (200, b"held-by-a"),
               "node a's own device while Redis is stopped")
            eq(_get(b, dev_b.label, timeout=10)[::2], (200, b"held-by-b"),
               "node b's own device while Redis is stopped")
            served += 2
            time.sleep(0.1)
        # the other node's device this node saw before: its holder as last known
        eq(_get(b, dev_a.label, timeout=10)[::2], (200, b"held-by-a"),
           "device a via node b while Redis is stopped")
        # a device node a never looked up: the request waits, bounded, then the 503 page
        st, _, body = _get(a, dev_c.label, timeout=10)
        eq(st, 503, "a device new to node a while Redis is stopped")
        # still within the stop: the held devices answer at once again
        eq(_get(a, dev_a.label, timeout=10)[0], 200, "node a's own device after the wait")
        still = time.monotonic() - stopped
        check(still < 6, "the checks took %.1f s: Redis was resumed too late to tell" % still)
        check(_metric(a, "tether_cluster_beats_skipped_total") > skipped_a,
              "node a's beat was not skipped while Redis was stopped")
        check(_metric(b, "tether_cluster_beats_skipped_total") > skipped_b,
              "node b's beat was not skipped while Redis was stopped")
        check(_metric(a, "tether_cluster_lookups_timeout_total") > timeouts_a,
              "the lookup that timed out was not counted")
        # everything above was answered while Redis was stopped: nothing waited for it
        check(served >= 4, "too few requests served during the stop")
        time.sleep(max(0.0, 3.0 - (time.monotonic() - stopped)))
    finally:
        redis.proc.send_signal(signal.SIGCONT)

    # Redis answers again: the node new to device c finds it, forwarding works both ways
    wait_for(lambda: _get(a, dev_c.label)[::2] == (200, b"new-to-a"), 20,
             "device c via node a after Redis resumed")
    eq(_get(b, dev_a.label)[::2], (200, b"held-by-a"), "device a via node b after the stop")
    eq(_get(a, dev_b.label)[::2], (200, b"held-by-b"), "device b via node a after the stop")
    # a few beats later: nobody was taken for dead, every device online where it was
    time.sleep(2.5)
    for node in (a, b):
        text = node.proc.stderr_text()
        check("node left" not in text, "%s logged a node leaving: %s" %
              (node.name, [ln for ln in text.splitlines() if "node left" in ln][:3]))
        check("taken over by another node" not in text, "%s lost a device" % node.name)
    check(_holds(a, dev_a.name), "device a no longer online on node a")
    check(_holds(b, dev_b.name) and _holds(b, dev_c.name), "node b's devices no longer online")
    eq(_metric(a, "tether_cluster_lookup_waiting"), 0, "clients still waiting on node a")
    check(a.proc.alive() and b.proc.alive(), "a node died")


def test_cluster_async_port_claimed_elsewhere_a_moment_before(t):
    """Every free port of the range but the last is claimed in Redis behind the nodes' backs
    (as other nodes' registrations would be, between two beats): a device registering on node
    a claims one its port map still shows free, the registry refuses it (another name's), the
    node reads the port map again without waiting for it (asynchronously) and claims the one
    left; the device registers with it and is reached through both nodes."""
    import socket
    from lib import resp_command
    from test_cluster import _echo_ok
    redis, (a, b) = _cluster(t)
    low, high = a.tcp_low, a.tcp_high
    with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as s:
        for p in range(low, high):
            eq(resp_command(s, "HSET", "tether:ports", str(p), "ghost-%d" % p), 1,
               "port %d claimed behind the nodes' backs" % p)
    echo = t.tcp_echo()
    dev = t.agent(a, tcp={"echo": echo.port})
    eq(dev.tcp_port("echo"), high, "the one port left")
    wait_for(lambda: _echo_ok(a.tcp_bind, high), 15, "echo via node a")
    wait_for(lambda: _echo_ok(b.tcp_bind, high), 15, "echo via node b")
    check(a.proc.alive() and b.proc.alive(), "a node died")
