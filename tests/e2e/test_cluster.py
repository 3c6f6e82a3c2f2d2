"""test_cluster.py - several tetherd nodes sharing a registry in a real redis-server (started here
on a free loopback port, no persistence): labels and ports unique across the nodes, a device on
one node reached over HTTP and TCP through another, the admin API of any node showing and
deleting every device of the cluster, the 307 redirect of a device handshake to
the least-loaded node (raw handshake and a real agent), a node killed with kill -9 (its device
comes back on another node with the same label and port), Redis stopped and started again
(online devices keep serving), and the cluster flags' usage errors."""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time

from lib import (RedisServer, Relay, WsClient, check, eq, free_port, resp_command, run_cli,
                 wait_for, TETHERD, TestFailure)


def _node(t, redis, name, tcp_bind, tcp_ports, grace="60s", port=None, extra=()):
    port = port or free_port()
    url = "ws://127.0.0.1:%d" % port
    n = Relay(t, port=port, tcp_ports=tcp_ports, grace=grace,
              extra=["--redis", "redis://127.0.0.1:%d" % redis.port, "--node-id", name,
                     "--advertise", url, "--tcp-bind", tcp_bind, "--log-level", "debug"] +
              list(extra))
    n.name = name
    n.tcp_bind = tcp_bind
    return n


def _cluster(t, n=2, grace="60s"):
    redis = RedisServer(t)
    low, high = _free_range_all(t)
    nodes = [_node(t, redis, "node-%c" % (ord("a") + i), "127.0.0.%d" % (2 + i), (low, high),
                   grace=grace) for i in range(n)]
    return redis, nodes


def _free_range_all(t, n=8):
    """n consecutive ports free on 127.0.0.2-127.0.0.4 (the nodes' --tcp-bind addresses)."""
    rnd = int.from_bytes(os.urandom(4), "big")
    for i in range(200):
        low = 21000 + (rnd + i * 97) % 11000
        ok = True
        for p in range(low, low + n):
            for a in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.1"):
                with socket.socket() as s:
                    try:
                        s.bind((a, p))
                    except OSError:
                        ok = False
                        break
            if not ok:
                break
        if ok:
            return low, low + n - 1
    raise TestFailure("no free port range")


def _get(node, label, path="/whoami", timeout=10):
    return node.request("GET", path, label=label, timeout=timeout)


def _echo_ok(host, port, payload=b"ping through the cluster\n"):
    s = socket.create_connection((host, port), timeout=20)
    with s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
    return got == payload


def _admin(node, path):
    c = http.client.HTTPConnection("127.0.0.1", node.admin_port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def _holds(node, name):
    """True when node holds device name online (every node lists every device: the node field
    names the holder)."""
    st, body = _admin(node, "/api/devices/" + name)
    if st != 200:
        return False
    d = json.loads(body)
    return d.get("online") is True and d.get("node") == node.name


def _devices(node):
    st, body = _admin(node, "/api/devices")
    eq(st, 200, "GET /api/devices on %s" % node.name)
    return {d["name"]: d for d in json.loads(body)["devices"]}


def _admin_call(node, method, path):
    c = http.client.HTTPConnection("127.0.0.1", node.admin_port, timeout=10)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def _closed(node):
    """Node's sessions closed for a takeover or a delete elsewhere: {"pushed": n, "scan": n}."""
    text = _admin(node, "/metrics")[1].decode()
    return {m.group(1): int(m.group(2)) for m in
            re.finditer(r'tether_cluster_sessions_closed_total\{how="(\w+)"\} (\d+)', text)}


def _raw_handshake(port, path="/tether"):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    with s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n" % (path, port)).encode())
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
    return status, hdrs


def test_cluster_usage_errors(t):
    for argv, want in (
            (["--redis", "nope", "--node-id", "a", "--advertise", "ws://127.0.0.1:1"], "--redis"),
            (["--redis", "redis://127.0.0.1:99999", "--node-id", "a", "--advertise",
              "ws://127.0.0.1:1"], "--redis"),
            (["--redis", "redis://127.0.0.1:6379/99", "--node-id", "a", "--advertise",
              "ws://127.0.0.1:1"], "--redis"),
            (["--redis", "redis://127.0.0.1:6379"], "--node-id"),
            (["--node-id", "a"], "--redis"),
            (["--redis", "redis://127.0.0.1:6379", "--node-id", "a b", "--advertise",
              "ws://127.0.0.1:1"], "--node-id"),
            (["--redis", "redis://127.0.0.1:6379", "--node-id", "a", "--advertise",
              "ftp://x"], "--advertise")):
        r = run_cli([TETHERD] + argv, timeout=15)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        eq(r.returncode, 2, "exit status for %r (stderr %r)" % (argv, r.stderr))
        eq(len(lines), 1, "stderr lines for %r" % (argv,))
        check(want in lines[0], "%r does not name %s" % (lines[0], want))
    # Redis unreachable at start: a runtime failure, exit 1, one line.
    dead = free_port()
    r = run_cli([TETHERD, "--listen", "127.0.0.1:%d" % free_port(), "--admin-listen",
                 "127.0.0.1:%d" % free_port(), "--data-dir", t.mkdtemp("d"), "--token", "x",
                 "--redis", "redis://127.0.0.1:%d" % dead, "--node-id", "a", "--advertise",
                 "ws://127.0.0.1:1"], timeout=15)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    eq(r.returncode, 1, "exit status with Redis unreachable (stderr %r)" % r.stderr)
    eq(len(lines), 1, "stderr lines with Redis unreachable (%r)" % r.stderr)
    check("redis" in lines[0].lower(), "the error does not name Redis: %r" % lines[0])


def test_cluster_node_id_in_use(t):
    redis, (a,) = _cluster(t, n=1)
    r = run_cli([TETHERD, "--listen", "127.0.0.1:%d" % free_port(), "--admin-listen",
                 "127.0.0.1:%d" % free_port(), "--data-dir", t.mkdtemp("d"), "--token", "x",
                 "--tcp-ports", "%d-%d" % (a.tcp_low, a.tcp_high),
                 "--redis", "redis://127.0.0.1:%d" % redis.port, "--node-id", a.name,
                 "--advertise", "ws://127.0.0.1:1"], timeout=15)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    eq(r.returncode, 1, "exit status of a second node-a (stderr %r)" % r.stderr)
    eq(len(lines), 1, "stderr lines of a second node-a")
    check("in use" in lines[0], "the error does not say the id is in use: %r" % lines[0])


def test_cluster_cross_node_http_and_tcp(t):
    redis, (a, b) = _cluster(t)
    echo = t.tcp_echo()
    svc = t.http_service(big_size=4 * 1024 * 1024, ident="dev-on-a")
    agent = t.agent(a, http=svc.port, tcp={"echo": echo.port})
    port = agent.tcp_port("echo")
    # a second device on node b: label and port unique across the cluster
    svc2 = t.http_service(big_size=1024, ident="dev-on-b")
    echo2 = t.tcp_echo()
    agent2 = t.agent(b, http=svc2.port, tcp={"echo": echo2.port},
                     server=b.url + "/?tether-redirected=1")
    check(agent2.label != agent.label, "two devices got one label")
    check(agent2.tcp_port("echo") != port, "two devices got one TCP port")
    check(_holds(a, agent.name) and _holds(b, agent2.name), "devices not where they connected")
    # HTTP: each device through both nodes
    for node in (a, b):
        eq(_get(node, agent.label)[::2], (200, b"dev-on-a"), "device a via %s" % node.name)
        eq(_get(node, agent2.label)[::2], (200, b"dev-on-b"), "device b via %s" % node.name)
    # big download and an upload through the other node
    st, _, body = _get(b, agent.label, "/big")
    eq((st, len(body)), (200, len(svc.big)), "download through node b")
    check(body == svc.big, "download through node b differs")
    payload = os.urandom(300 * 1024)
    st, _, body = b.request("POST", "/upload", label=agent.label, body=payload)
    eq(st, 200, "upload through node b")
    eq(json.loads(body)["length"], len(payload), "upload length through node b")
    # the device sees the browser's address, never the cluster's internal headers
    st, _, body = b.request("GET", "/headers", label=agent.label,
                            headers={"X-Tether-Cluster": "guess", "X-Tether-Client": "6.6.6.6"})
    eq(st, 200, "headers through node b")
    hdrs = {k.lower(): v for k, v in json.loads(body)["headers"]}
    check(not any(k.startswith("x-tether-") for k in hdrs), "internal headers leaked: %r" % hdrs)
    eq(hdrs.get("x-forwarded-for"), "127.0.0.1", "X-Forwarded-For through node b")
    eq(hdrs.get("x-forwarded-proto"), "http", "X-Forwarded-Proto through node b")
    # a WebSocket through node b
    ws = WsClient(b.port, b.host(agent.label), "/ws")
    eq(ws.status, 101, "WebSocket upgrade through node b")
    ws.send(0x1, b"hello through the cluster")
    eq(ws.recv(), (0x1, b"hello through the cluster"), "WebSocket echo through node b")
    ws.close()
    # keep-alive: several requests on one connection through node b
    c = http.client.HTTPConnection("127.0.0.1", b.port, timeout=10)
    for i in range(3):
        c.request("GET", "/small?i=%d" % i, headers={"Host": b.host(agent.label)})
        r = c.getresponse()
        eq((r.status, r.read()), (200, b"small %d\n" % i), "keep-alive request %d via b" % i)
    c.close()
    # TCP: each node listens on every port of the cluster and reaches the device
    wait_for(lambda: _echo_ok(b.tcp_bind, port), 15, "echo via node b's port")
    check(_echo_ok(a.tcp_bind, port), "echo via node a's port")
    wait_for(lambda: _echo_ok(a.tcp_bind, agent2.tcp_port("echo")), 15,
             "echo of device b via node a")
    # the nodes' metrics count what they forwarded
    st, body = _admin(b, "/metrics")
    text = body.decode()
    check('tether_cluster_nodes 2' in text and 'tether_cluster_redis_up 1' in text,
          "cluster metrics of node b: %r" % text[-800:])
    m = re.search(r'tether_cluster_forwarded_total\{kind="http"\} (\d+)', text)
    check(m and int(m.group(1)) > 0, "no forwarded HTTP counted on node b")
    # unknown label: 404 on every node
    eq(_get(b, "nosuchlabel9")[0], 404, "unknown label via node b")
    # offline device: 503 on the other node too
    agent.stop()
    wait_for(lambda: _get(b, agent.label)[0] == 503, 15, "503 via node b once device a is gone")


def test_cluster_redirect_to_least_loaded(t):
    redis, (a, b) = _cluster(t)
    svc = t.http_service(big_size=1024)
    first = t.agent(a, http=svc.port)
    check(_holds(a, first.name), "the first device is not on node a")
    # node a (1 device) sends a new device to node b (0 devices) once it knows b's count
    def redirected():
        st, hdrs = _raw_handshake(a.port, "/tether")
        return (st, hdrs) if st == 307 else None
    st, hdrs = wait_for(redirected, 15, "a 307 from node a")
    loc = hdrs.get("location", "")
    check(loc.startswith(b.url + "/tether"), "Location %r is not node b's advertise URL + path" %
          loc)
    # node b does not send it back (b has fewer devices)
    eq(_raw_handshake(b.port)[0], 101, "handshake on node b")
    # a redirected handshake is accepted wherever it lands
    eq(_raw_handshake(a.port, "/tether?tether-redirected=1")[0], 101, "redirected handshake")
    time.sleep(2.5)  # node a counts each redirect against b until b's next count arrives
    second = t.agent(a, http=svc.port)
    wait_for(lambda: _holds(b, second.name), 15, "the second device on node b")
    check(not _holds(a, second.name), "the second device is on node a too")
    eq(_get(a, second.label)[0], 200, "second device via node a")


def test_cluster_node_killed(t):
    _node_goes_away(t, signal.SIGKILL)


def test_cluster_node_stopped(t):
    _node_goes_away(t, signal.SIGTERM)


def _node_goes_away(t, sig):
    redis, (a, b) = _cluster(t, grace="60s")
    echo = t.tcp_echo()
    svc = t.http_service(big_size=1024)
    agent = t.agent(a, http=svc.port, tcp={"echo": echo.port},
                    extra=["--server", b.url])
    label, port = agent.label, agent.tcp_port("echo")
    check(_holds(a, agent.name), "device not on node a")
    a.proc.stop(sig)
    agent.relay = b
    agent.wait_ready(timeout=60)
    eq(agent.label, label, "label after node a died")
    eq(agent.tcp_port("echo"), port, "tcp port after node a died")
    wait_for(lambda: _holds(b, agent.name), 15, "device on node b")
    eq(_get(b, label)[0], 200, "device via node b")
    wait_for(lambda: _echo_ok(b.tcp_bind, port), 15, "echo via node b after node a died")


def test_cluster_redis_outage(t):
    redis, (a, b) = _cluster(t)
    echo = t.tcp_echo()
    svc = t.http_service(big_size=1024)
    agent = t.agent(a, http=svc.port, tcp={"echo": echo.port})
    label, port = agent.label, agent.tcp_port("echo")
    eq(_get(b, label)[0], 200, "via node b before the outage")
    wait_for(lambda: _echo_ok(b.tcp_bind, port), 15, "echo via node b before the outage")
    # Redis hangs (stopped): calls time out, devices keep serving
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        for i in range(4):
            eq(_get(a, label)[0], 200, "via node a while Redis hangs (%d)" % i)
            eq(_get(b, label)[0], 200, "via node b while Redis hangs (%d)" % i)
            check(_echo_ok(b.tcp_bind, port), "echo via node b while Redis hangs")
            time.sleep(0.5)
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    # Redis gone
    redis.proc.stop(signal.SIGKILL)
    for i in range(5):
        eq(_get(a, label)[0], 200, "via node a while Redis is down (%d)" % i)
        check(_echo_ok(a.tcp_bind, port), "echo via node a while Redis is down")
        eq(_get(b, label)[0], 200, "via node b while Redis is down (%d)" % i)
        time.sleep(0.5)
    # the admin API without Redis: a node lists its own devices; a delete elsewhere cannot happen
    d = _devices(a).get(agent.name)
    check(d and d["online"] and d["node"] == "node-a", "node a's own device while Redis is down")
    eq(_admin_call(b, "DELETE", "/api/devices/" + agent.name)[0], 503,
       "DELETE on node b while Redis is down")
    # Redis back, empty (no persistence): the nodes record their devices again
    redis2 = RedisServer(t, port=redis.port)
    wait_for(lambda: _get(b, label)[0] == 200, 30, "via node b after Redis came back")
    wait_for(lambda: _echo_ok(b.tcp_bind, port), 30, "echo via node b after Redis came back")
    # the registry is whole again: a new device on node b gets a label of its own
    svc2 = t.http_service(big_size=1024, ident="second")
    agent2 = t.agent(b, http=svc2.port, server=b.url + "/?tether-redirected=1")
    check(agent2.label != label, "label reused after Redis came back")
    # node a reconnects to Redis within its back-off (at most 5 s) and learns of it
    wait_for(lambda: _get(a, agent2.label)[::2] == (200, b"second"), 20,
             "new device on b via node a")
    # Back on Redis, node a writes its device's record again: by the beat's full check when Redis
    # lists fewer of its devices than it holds, or earlier when the device's own traffic saves
    # the record first (then the counts agree and no full check is needed). Which one wins is a
    # race, so only the outcome is checked: node b lists node a's device again, with the
    # counters a published after writing it back.
    wait_for(lambda: (_devices(b).get(agent.name) or {}).get("remote_addr"), 20,
             "node a's device, with its live fields, on node b's list")
    check(a.proc.alive() and b.proc.alive(), "a node died")
    del redis2


def test_cluster_takeover_across_nodes(t):
    redis, (a, b) = _cluster(t)
    svc1 = t.http_service(big_size=1024, ident="first")
    svc2 = t.http_service(big_size=1024, ident="second")
    first = t.agent(a, http=svc1.port)
    label = first.label
    # the first agent hangs (a half-open leftover); the device comes back through node b
    first.proc.send_signal(signal.SIGSTOP)
    try:
        second = t.agent(b, name=first.name, http=svc2.port,
                         server=b.url + "/?tether-redirected=1")
        eq(second.label, label, "label after the takeover on another node")
        eq(_get(b, label)[::2], (200, b"second"), "via node b after the takeover")
        # node a notices within its beat (about a second) and drops its old session
        wait_for(lambda: not _holds(a, first.name), 10, "node a to drop the old session")
        eq(_get(a, label)[::2], (200, b"second"), "via node a after the takeover")
        check(_holds(b, first.name), "node b lost the device")
        # closed once, told by node b's takeover (kick list) or, rarely, when the takeover
        # landed within node a's beat, by its check of the devices
        closed = _closed(a)
        eq(closed.get("pushed", 0) + closed.get("scan", 0), 1, "sessions closed on node a: %r"
           % closed)
    finally:
        first.proc.send_signal(signal.SIGCONT)
        first.proc.stop(signal.SIGKILL)


def test_cluster_grace_expiry(t):
    redis, (a, b) = _cluster(t, grace="3s")
    echo = t.tcp_echo()
    svc = t.http_service(big_size=1024)
    agent = t.agent(a, http=svc.port, tcp={"echo": echo.port})
    label, port = agent.label, agent.tcp_port("echo")
    wait_for(lambda: _echo_ok(b.tcp_bind, port), 15, "echo via node b")
    agent.stop()
    eq(_get(b, label)[0], 503, "via node b right after the device left")
    wait_for(lambda: _get(b, label)[0] == 404 and _get(a, label)[0] == 404, 20,
             "404 on both nodes once the grace period is over")
    # the port is released everywhere: nobody listens on it any more
    def closed(host):
        try:
            socket.create_connection((host, port), timeout=2).close()
            return False
        except ConnectionRefusedError:
            return True
    wait_for(lambda: closed(a.tcp_bind) and closed(b.tcp_bind), 10, "the port released")


def test_cluster_generated_token_shared(t):
    redis = RedisServer(t)
    low, high = _free_range_all(t)
    a = Relay(t, tcp_ports=(low, high), token=None,
              extra=["--redis", "redis://127.0.0.1:%d/3" % redis.port, "--node-id", "a",
                     "--advertise", "ws://127.0.0.1:1"])
    _, line = a.proc.wait_line(lambda l: l.startswith("tetherd: device token: "), 15,
                               what="the generated token")
    token = line.split(": ")[-1].strip()
    b = Relay(t, tcp_ports=(low, high), token=None,
              extra=["--tcp-bind", "127.0.0.3", "--redis", "redis://127.0.0.1:%d/3" % redis.port, "--node-id", "b",
                     "--advertise", "ws://127.0.0.1:2"])
    time.sleep(0.5)
    check(not any("device token" in l for l in b.proc.lines), "node b printed a token too")
    a.token = b.token = token
    svc = t.http_service(big_size=1024)
    agent = t.agent(b, http=svc.port, server=b.url + "/?tether-redirected=1")
    eq(_get(a, agent.label)[0], 200, "device on b (generated token) via a")
    # only a hash is in Redis, in the database the URL names
    s = socket.create_connection(("127.0.0.1", redis.port), timeout=10)
    with s:
        eq(resp_command(s, "SELECT", "3"), "+OK", "SELECT")
        stored = resp_command(s, "GET", "tether:cred:")
    check(stored and len(stored) == 32 and token.encode() not in stored, "fleet token stored as %r"
          % stored)


def test_cluster_https_browser_through_other_node(t):
    from test_tls import DOMAIN, Pki, _LoopbackHTTPS, _client_ctx
    pki = Pki(t)
    crt, key, _ = pki.server()
    redis = RedisServer(t)
    low, high = _free_range_all(t)
    a = _node(t, redis, "node-a", "127.0.0.2", (low, high), extra=["--domain", DOMAIN])
    tls_port = free_port()
    b = _node(t, redis, "node-b", "127.0.0.3", (low, high),
              extra=["--domain", DOMAIN, "--tls-listen", "127.0.0.1:%d" % tls_port,
                     "--tls-cert", crt, "--tls-key", key])
    svc = t.http_service(big_size=1024)
    agent = t.agent(a, http=svc.port)
    host = "%s.%s" % (agent.label, DOMAIN)
    conn = _LoopbackHTTPS(host, tls_port, _client_ctx(pki))
    conn.request("GET", "/headers", headers={"Host": "%s:%d" % (host, tls_port),
                                             "X-Forwarded-Proto": "http"})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    eq(r.status, 200, "HTTPS request at node b for a device on node a")
    hdrs = {k.lower(): v for k, v in json.loads(body)["headers"]}
    eq(hdrs.get("x-forwarded-proto"), "https", "X-Forwarded-Proto of a browser over TLS at b")
    eq(hdrs.get("x-forwarded-for"), "127.0.0.1", "X-Forwarded-For")
    check(not any(k.startswith("x-tether-") for k in hdrs), "internal headers leaked: %r" % hdrs)


def test_cluster_three_nodes_least_loaded(t):
    redis, (a, b, c) = _cluster(t, n=3)
    svc = t.http_service(big_size=1024)
    marker = "/?tether-redirected=1"
    # a holds 2 devices, b 1, c none
    for node in (a, a, b):
        t.agent(node, http=svc.port, server=node.url + marker)

    def redirected_to_c():
        st, hdrs = _raw_handshake(a.port, "/")
        return st == 307 and hdrs.get("location", "").startswith(c.url + "/")
    wait_for(redirected_to_c, 15, "node a to send a device to node c (the least loaded)")
    time.sleep(2.5)  # let the counts settle (each redirect counts against c until its beat)
    # a real device arriving at b (1 device) goes to c (0), and every node serves it
    d = t.agent(b, http=svc.port)
    wait_for(lambda: _holds(c, d.name), 15, "the new device on node c")
    for node in (a, b, c):
        eq(_get(node, d.label)[0], 200, "device on c via %s" % node.name)


def test_cluster_nodes_sharing_one_address(t):
    """Two nodes with the same --tcp-bind: both listen on every device port (SO_REUSEPORT), the
    kernel spreads clients over them, and every client reaches the device."""
    redis = RedisServer(t)
    low, high = _free_range_all(t)
    a = _node(t, redis, "node-a", "127.0.0.1", (low, high))
    b = _node(t, redis, "node-b", "127.0.0.1", (low, high))
    echo = t.tcp_echo()
    echo2 = t.tcp_echo()
    d1 = t.agent(a, tcp={"echo": echo.port}, http=None)
    d2 = t.agent(b, tcp={"echo": echo2.port}, http=None, server=b.url + "/?tether-redirected=1")
    p1, p2 = d1.tcp_port("echo"), d2.tcp_port("echo")
    check(p1 != p2, "two devices on one address got one port")
    time.sleep(2.5)  # both nodes listen on both ports once they have read the port map
    for i in range(20):
        for p in (p1, p2):
            check(_echo_ok("127.0.0.1", p, b"client %d\n" % i), "echo %d on port %d" % (i, p))
    st_a, st_b = _admin(a, "/metrics")[1].decode(), _admin(b, "/metrics")[1].decode()
    fwd = [int(re.search(r'tether_cluster_forwarded_total\{kind="tcp"\} (\d+)', x).group(1))
           for x in (st_a, st_b)]
    check(sum(fwd) > 0, "no TCP client went through the other node (SO_REUSEPORT unused?)")


def test_cluster_admin_lists_the_whole_fleet(t):
    redis, (a, b) = _cluster(t)
    echo = t.tcp_echo()
    svc = t.http_service(big_size=256 * 1024, ident="dev-on-a")
    agent = t.agent(a, http=svc.port, tcp={"echo": echo.port})
    svc2 = t.http_service(big_size=1024, ident="dev-on-b")
    agent2 = t.agent(b, http=svc2.port, server=b.url + "/?tether-redirected=1")
    # every node lists both devices, online, with the node holding each
    for node in (a, b):
        devs = _devices(node)
        for ag, holder in ((agent, a), (agent2, b)):
            check(ag.name in devs, "%s not listed by %s: %r" % (ag.name, node.name, devs))
            d = devs[ag.name]
            eq((d["online"], d["node"], d["label"]), (True, holder.name, ag.label),
               "%s as %s lists it" % (ag.name, node.name))
    # node b shows device a's live fields as node a does, once a's beat published them
    def same_view():
        da, db = json.loads(_admin(a, "/api/devices/" + agent.name)[1]), \
            json.loads(_admin(b, "/api/devices/" + agent.name)[1])
        keys = ("label", "connected_since", "remote_addr", "node", "online")
        # URLs name the node answering (the test's nodes listen on different ports)
        svcs = [[(s["name"], s["kind"], s.get("port"), "url" in s) for s in d["services"]]
                for d in (da, db)]
        return (all(da[k] == db[k] for k in keys) and svcs[0] == svcs[1] and
                db["connected_since"] and db["remote_addr"] and
                db["url"].startswith("http://%s.localhost:" % agent.label))
    wait_for(same_view, 10, "node b to show device a's fields as node a does")
    d = json.loads(_admin(b, "/api/devices/" + agent.name)[1])
    kinds = sorted(s["kind"] for s in d["services"])
    eq(kinds, ["http", "tcp"], "services of device a as node b lists them")
    # traffic through node a shows up in node b's counters within a few seconds
    before = d["bytes_in"]
    st, _, body = _get(a, agent.label, "/big")
    eq((st, len(body)), (200, len(svc.big)), "download through node a")
    wait_for(lambda: _devices(b)[agent.name]["bytes_in"] >= before + len(svc.big), 10,
             "node b to count the download's bytes of device a")
    # the dashboard of node b shows both devices and their node; metrics count the fleet
    st, body = _admin(b, "/")
    eq(st, 200, "dashboard of node b")
    page = body.decode()
    for needle in (agent.name, agent2.name, "node-a", "node-b", agent.label):
        check(needle in page, "%r not on node b's dashboard" % needle)
    wait_for(lambda: "tether_cluster_devices_online 2\n" in _admin(a, "/metrics")[1].decode(),
             10, "node a's metrics to count both devices")
    # unknown devices: 404 on every node, for GET and DELETE
    for node in (a, b):
        eq(_admin_call(node, "GET", "/api/devices/nosuchdevice")[0], 404, "GET unknown")
        eq(_admin_call(node, "DELETE", "/api/devices/nosuchdevice")[0], 404, "DELETE unknown")


def test_cluster_admin_delete_on_another_node(t):
    redis, (a, b) = _cluster(t)
    echo = t.tcp_echo()
    svc = t.http_service(big_size=1024, ident="dev-on-a")
    agent = t.agent(a, http=svc.port, tcp={"echo": echo.port})
    label = agent.label
    check(_holds(a, agent.name), "device not on node a")
    eq(_get(b, label)[::2], (200, b"dev-on-a"), "via node b before the delete")
    # deleted through node b while node a's loop stands still (well within its record's
    # expiry): the delete pushes the name onto node a's kick list in Redis, and node a closes
    # the session when it drains the list at its next beat, before its check of the devices
    a.proc.send_signal(signal.SIGSTOP)
    try:
        st, body = _admin_call(b, "DELETE", "/api/devices/" + agent.name)
        s = socket.create_connection(("127.0.0.1", redis.port), timeout=10)
        with s:
            kicks = resp_command(s, "LRANGE", "tether:kick:node-a", "0", "-1")
    finally:
        a.proc.send_signal(signal.SIGCONT)
    eq((st, json.loads(body)), (200, {"deleted": agent.name}), "DELETE through node b")
    eq(kicks, [agent.name.encode()], "node a's kick list after the delete")
    wait_for(lambda: "device deleted on the relay" in agent.proc.stderr_text(), 10,
             "the agent to report the deletion")
    eq(_closed(a), {"pushed": 1, "scan": 0}, "sessions closed on node a")
    # the agent comes back as a new registration: a new label, since the old one was released
    agent.wait_ready(timeout=30)
    check(agent.label != label, "the device got its deleted label %s back" % label)
    for node in (a, b):
        eq(_get(node, label)[0], 404, "the deleted label via %s" % node.name)
        eq(_get(node, agent.label)[::2], (200, b"dev-on-a"), "new label via %s" % node.name)
        d = _devices(node).get(agent.name)
        check(d and d["online"] and d["label"] == agent.label,
              "%s lists the device again with its new label: %r" % (node.name, d))
    wait_for(lambda: _echo_ok(b.tcp_bind, agent.tcp_port("echo")), 15, "echo via node b")


def test_cluster_check_catches_a_lost_kick(t):
    # a delete's entry on the holder's kick list is lost (here: removed from Redis while node a
    # stands still): node a's beat still finds the deleted record in its check of the devices
    redis, (a, b) = _cluster(t)
    svc = t.http_service(big_size=1024, ident="dev-on-a")
    agent = t.agent(a, http=svc.port)
    check(_holds(a, agent.name), "device not on node a")
    a.proc.send_signal(signal.SIGSTOP)
    try:
        st, body = _admin_call(b, "DELETE", "/api/devices/" + agent.name)
        s = socket.create_connection(("127.0.0.1", redis.port), timeout=10)
        with s:
            eq(resp_command(s, "DEL", "tether:kick:node-a"), 1, "node a's kick list removed")
    finally:
        a.proc.send_signal(signal.SIGCONT)
    eq((st, json.loads(body)), (200, {"deleted": agent.name}), "DELETE through node b")
    wait_for(lambda: "device deleted on the relay" in agent.proc.stderr_text(), 10,
             "the agent to report the deletion")
    eq(_closed(a), {"pushed": 0, "scan": 1}, "sessions closed on node a")
