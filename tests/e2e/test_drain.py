"""test_drain.py - taking a node out of service and admission control of registrations:
POST /api/drain (202, idempotent; /healthz 503 "draining"; new devices refused 503 with
Retry-After on a single relay while the devices it holds stay; DELETE /api/drain ends it; the
admin listener's Origin rule applies), a drain on a two-node cluster with a real redis-server
(every device of node a ends up on node b with its label, at a bounded rate, reachable through
either node), a rolling restart of both nodes losing no label, and --max-registering (a device
handshake beyond it answered 503 with Retry-After before the 101; a connection silent since its
101 gives its slot up after 5 s; agents refused so wait and all register)."""

import http.client
import json
import re
import socket
import time

from test_cluster import _cluster, _node, _free_range_all, _holds, _get
from lib import RedisServer, check, eq, wait_for


def _call(relay, method, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", relay.admin_port, timeout=10)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def _metric(relay, name):
    text = _call(relay, "GET", "/metrics")[2].decode()
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    check(m, "no %s in /metrics" % name)
    return int(m.group(1))


def _handshake(port, path="/tether", keep=False):
    """A device's WebSocket handshake by hand: (status, headers, socket or None)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tether.v1\r\n\r\n" %
               (path, port)).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(4096)
        if not b:
            break
        data += b
    head = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    hdrs = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if keep:
        return status, hdrs, s
    s.close()
    return status, hdrs, None


def test_drain_single_relay(t):
    relay = t.relay()
    svc = t.http_service(big_size=1024)
    held = t.agent(relay, http=svc.port)
    eq(_call(relay, "GET", "/healthz")[0], 200, "healthz before the drain")
    eq(_metric(relay, "tether_drain_state"), 0, "tether_drain_state before")
    # the admin listener's rules: another site's Origin is refused, nothing drains
    st, _, _ = _call(relay, "POST", "/api/drain", {"Origin": "http://evil.example"})
    eq(st, 403, "POST /api/drain from another site's Origin")
    eq(_call(relay, "GET", "/healthz")[0], 200, "healthz after the refused drain")
    st, hdrs, body = _call(relay, "POST", "/api/drain")
    eq(st, 202, "POST /api/drain")
    check(hdrs.get("content-type", "").startswith("application/json"), "drain answer type")
    j = json.loads(body)
    eq(j.get("draining"), True, "draining in the answer")
    st, _, body = _call(relay, "POST", "/api/drain")
    eq(st, 202, "POST /api/drain again (idempotent)")
    st, _, body = _call(relay, "GET", "/healthz")
    eq((st, body), (503, b"draining\n"), "healthz while draining")
    eq(_metric(relay, "tether_drain_state"), 1, "tether_drain_state while draining")
    # a new device is refused before the 101, told when to come back
    st, hdrs, _ = _handshake(relay.port)
    eq(st, 503, "device handshake while draining")
    check(hdrs.get("retry-after", "").isdigit(), "Retry-After %r" % hdrs.get("retry-after"))
    check(_metric(relay, 'tether_registrations_refused_total{reason="draining"}') >= 1,
          "draining refusals counted")
    # a single relay has nowhere to send its devices: the one it holds stays and serves
    time.sleep(1.5)
    eq(relay.request("GET", "/whoami", label=held.label)[0], 200, "held device while draining")
    eq(_metric(relay, "tether_drain_moved_total"), 0, "devices moved by a single relay")
    check("no other node takes devices" in relay.proc.stderr_text(), "drain log line")
    # a new agent waits (Retry-After) instead of registering
    late = t.agent(relay, http=svc.port, wait=False)
    wait_for(lambda: "retry_after=" in late.proc.stderr_text(), 15,
             "the new agent told to retry later")
    # the drain ends: devices are taken again
    st, _, body = _call(relay, "DELETE", "/api/drain")
    eq(st, 200, "DELETE /api/drain")
    eq(json.loads(body).get("draining"), False, "draining after DELETE")
    eq(_call(relay, "GET", "/healthz")[:3:2], (200, b"ok\n"), "healthz after the drain")
    eq(_handshake(relay.port)[0], 101, "device handshake after the drain")
    late.wait_ready(timeout=30)


def _agents_on(t, node, svc, n, extra=()):
    return [t.agent(node, http=svc.port, wait=False, extra=list(extra)) for _ in range(n)]


def _all_ready(agents, timeout=60):
    for a in agents:
        a.wait_ready(timeout=timeout)


def test_drain_cluster_moves_devices(t):
    redis = RedisServer(t)
    low, high = _free_range_all(t)
    a = _node(t, redis, "node-a", "127.0.0.2", (low, high), extra=["--drain-rate", "5"])
    svc = t.http_service(big_size=1024)
    agents = _agents_on(t, a, svc, 20)
    _all_ready(agents)
    labels = {x.name: x.label for x in agents}
    b = _node(t, redis, "node-b", "127.0.0.3", (low, high))
    for x in agents:
        check(_holds(a, x.name), "%s not on node a before the drain" % x.name)
    wait_for(lambda: "node joined node=node-b" in a.proc.stderr_text(), 15, "a sees b")
    eq(_call(a, "POST", "/api/drain")[0], 202, "POST /api/drain on node a")
    eq(_call(a, "GET", "/healthz")[:3:2], (503, b"draining\n"), "node a's healthz")
    eq(_call(b, "GET", "/healthz")[0], 200, "node b's healthz")
    # the moves, sampled: bounded by the rate (5/s, plus one in hand), spread over seconds
    samples = []
    deadline = time.time() + 60
    while time.time() < deadline:
        samples.append((time.time(), _metric(a, "tether_drain_moved_total")))
        if samples[-1][1] >= 20:
            break
        time.sleep(0.25)
    eq(samples[-1][1], 20, "devices moved by node a")
    for i, (ti, mi) in enumerate(samples):
        for tj, mj in samples[i:]:
            if tj - ti <= 1.0:
                check(mj - mi <= 5 + 2, "%d devices moved within %.2f s (rate 5/s)" %
                      (mj - mi, tj - ti))
    first = next(ti for ti, mi in samples if mi > 0)
    check(samples[-1][0] - first >= 2.0, "20 devices moved in %.1f s at 5/s" %
          (samples[-1][0] - first))
    # every device on node b, same label; reachable through either node
    for x in agents:
        x.relay = b
        wait_for(lambda: _holds(b, x.name), 30, "%s on node b" % x.name)
    for x in agents:
        st, body = _admin_device(b, x.name)
        eq(st, 200, "GET /api/devices/%s on node b" % x.name)
        eq(body.get("label"), labels[x.name], "label of %s after the drain" % x.name)
        eq(_get(a, labels[x.name])[0], 200, "%s through node a" % x.name)
        eq(_get(b, labels[x.name])[0], 200, "%s through node b" % x.name)
    # node b skips the draining node a when it redirects: a new device stays on b
    c = t.agent(b, http=svc.port)
    time.sleep(2.5)
    check(_holds(b, c.name), "a new device was not kept off the draining node")
    check(not _holds(a, c.name), "a new device went to the draining node")
    eq(_handshake(b.port)[0], 101, "handshake on node b (a drains: no redirect)")


def _admin_device(node, name):
    st, _, body = _call(node, "GET", "/api/devices/" + name)
    return st, (json.loads(body) if st == 200 else {})


def test_drain_rolling_restart(t):
    redis = RedisServer(t)
    low, high = _free_range_all(t, n=20)  # the fleet token may hold half: 10 ports
    a = _node(t, redis, "node-a", "127.0.0.2", (low, high), extra=["--drain-rate", "20"])
    b = _node(t, redis, "node-b", "127.0.0.3", (low, high), extra=["--drain-rate", "20"])
    svc = t.http_service(big_size=1024)
    echo = t.tcp_echo()
    agents = [t.agent(a, http=svc.port, tcp={"echo": echo.port}, wait=False) for _ in range(8)]
    _all_ready(agents)
    want = {x.name: (x.label, x.tcp_port("echo")) for x in agents}

    def all_on(node):
        return all(_holds(node, x.name) for x in agents)

    def check_kept(what):
        for x in agents:
            st, d = _admin_device(a if a.proc.alive() else b, x.name)
            eq(st, 200, "device %s known (%s)" % (x.name, what))
            eq(d.get("label"), want[x.name][0], "label of %s (%s)" % (x.name, what))
            eq(d.get("online"), True, "%s online (%s)" % (x.name, what))

    nodes = {"a": a, "b": b}
    for name, other_name in (("a", "b"), ("b", "a")):
        old, other = nodes[name], nodes[other_name]
        eq(_call(old, "POST", "/api/drain")[0], 202, "drain %s" % old.name)
        wait_for(lambda: all_on(other), 60, "every device on %s" % other.name)
        check_kept("after draining %s" % old.name)
        old.stop()
        new = _node(t, redis, old.name, old.tcp_bind, (low, high), port=old.port,
                    extra=["--drain-rate", "20"])
        nodes[name] = new
        a, b = nodes["a"], nodes["b"]
        eq(_call(new, "GET", "/healthz")[0], 200, "%s restarted serves" % new.name)
        # (the next drain waits, holding its devices, until the other node sees this one)
        check_kept("after restarting %s" % new.name)
    # every label and port the same, every device reachable through both nodes
    for x in agents:
        label, port = want[x.name]
        eq(_get(a, label)[0], 200, "%s through node a" % x.name)
        eq(_get(b, label)[0], 200, "%s through node b" % x.name)
        st, d = _admin_device(a, x.name)
        ports = [s.get("port") for s in d.get("services", []) if s.get("name") == "echo"]
        eq(ports, [port], "tcp port of %s" % x.name)


def test_admission_max_registering(t):
    relay = t.relay(extra=["--max-registering", "1"])
    svc = t.http_service(big_size=1024)
    # a connection that took its 101 and sends no HELLO holds the one registration slot
    st, _, blocker = _handshake(relay.port, keep=True)
    eq(st, 101, "first handshake")
    st, hdrs, _ = _handshake(relay.port)
    eq(st, 503, "second handshake while one registers (--max-registering 1)")
    ra = hdrs.get("retry-after", "")
    check(ra.isdigit() and 1 <= int(ra) <= 60, "Retry-After %r" % ra)
    eq(_metric(relay, "tether_registering"), 1, "tether_registering")
    eq(_metric(relay, "tether_max_registering"), 1, "tether_max_registering")
    # a connection silent since its 101 gives its slot up after 5 s (not the 30 s HELLO deadline)
    time.sleep(6)
    eq(_metric(relay, "tether_registering"), 0, "tether_registering after 5 s of silence")
    st, _, blocker2 = _handshake(relay.port, keep=True)
    eq(st, 101, "handshake once the silent connection's slot is free")
    held = [blocker, blocker2]
    # a storm of 30 agents at once while we keep taking the one slot: refused, they wait
    agents = [t.agent(relay, http=svc.port, wait=False) for _ in range(30)]
    deadline = time.time() + 40
    while time.time() < deadline:
        if sum("retry_after=" in x.proc.stderr_text() for x in agents) >= 10:
            break
        st, _, extra = _handshake(relay.port, keep=True)
        if st == 101:
            held.append(extra)
        elif extra:
            extra.close()
        time.sleep(0.3)
    check(sum("retry_after=" in x.proc.stderr_text() for x in agents) >= 10,
          "agents told to retry later")
    for h in held:
        h.close()
    _all_ready(agents, timeout=80)
    refused = _metric(relay, 'tether_registrations_refused_total{reason="busy"}')
    check(refused >= 10, "busy refusals counted: %d" % refused)
    waited = [x for x in agents if re.search(r"relay asked to retry later .*status=503 "
                                             r"retry_after=\d+s waiting=",
                                             x.proc.stderr_text())]
    check(len(waited) >= 10, "agents whose log shows the wait: %d" % len(waited))
    for x in agents:
        eq(relay.request("GET", "/whoami", label=x.label)[0], 200, "device %s" % x.name)
