"""test_sessions_async.py - a cluster node does not wait on its loop for Redis when a browser's
session cookie is new to it, nor for a sign-in's or a sign-out's write: real tetherd nodes
(--access private, one public device) sharing a real redis-server, which is stopped (SIGSTOP, by
the PID this test started) for a few seconds.

- A session made on node A, used on node B (which never saw it) while Redis is stopped: the
  request is held, unanswered, while B keeps answering the requests for a public device it holds
  (each at once); after SIGCONT the held request is answered, signed in.
- The cap (256 requests held for Redis): the next one is answered 503 with Retry-After at once;
  the held ones get 503 when Redis does not answer within the wait (3 s), all counted in
  /metrics; clients that close while held, and held connections dropped by the head deadline,
  cancel their reads (the nodes stay ASan-clean).
- A sign-out on node A ends the session on node B (never seen there: refused at once; seen
  there: refused within the re-check), and a sign-in or a sign-out while Redis is stopped is
  answered 503 (no cookie handed out for a session Redis does not have).
"""

import os
import re
import signal
import socket
import threading
import time

from lib import RedisServer, check, eq, wait_for
from test_cluster import _free_range_all, _node
from test_private_signin import (Conn, _cookie_of, _request, _signed_in, _signin, _users_file)

PUBLIC = "pub-*/http"


def _metric(node, name, missing_ok=False):
    """The value of the metric name at node (missing_ok: None when there is none)."""
    c = socket.create_connection(("127.0.0.1", node.admin_port), timeout=10)
    try:
        c.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        c.close()
    m = re.search(r"^%s (\d+)" % re.escape(name), data.decode("latin-1"), re.M)
    if not m and missing_ok:
        return None
    check(m, "metric %s missing on %s" % (name, node.name))
    return int(m.group(1))


def _cluster(t, n=2, extra=()):
    redis = RedisServer(t)
    low, high = _free_range_all(t)
    users = _users_file(t)
    args = ["--access", "private", "--users-file", users, "--public", PUBLIC] + list(extra)
    nodes = [_node(t, redis, "node-%c" % (ord("a") + i), "127.0.0.%d" % (2 + i), (low, high),
                   extra=args) for i in range(n)]
    return redis, nodes


def _agent_on(t, node, port, name):
    return t.agent(node, http=port, name=name, server=node.url + "/?tether-redirected=1")


def _move(t, agent, node, port, old_label):
    """The device agent (stopped) again, at node: the same label."""
    agent.stop()
    again = _agent_on(t, node, port, agent.name)
    eq(again.label, old_label, "the label after the move")
    wait_for(lambda: _request(node, "GET", "/whoami", old_label)[0] == 401, 20,
             "the private device at %s" % node.name)
    return again


def _timed(fn):
    t0 = time.monotonic()
    r = fn()
    return time.monotonic() - t0, r


def _random_cookie():
    return "tether_session=" + os.urandom(32).hex()


def _raw_get(node, label, cookie, source="127.0.0.1"):
    """A socket (from address source) with a GET for label's /whoami sent (not read)."""
    s = socket.create_connection(("127.0.0.1", node.port), timeout=20, source_address=(source, 0))
    s.sendall(("GET /whoami HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\n\r\n" %
               (node.host(label), cookie)).encode())
    return s


def _read_status(s, timeout=10):
    """The status and head of the answer on s (None: closed with no answer)."""
    s.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    if not data.startswith(b"HTTP/1.1 "):
        return None, data
    return int(data[9:12]), data.split(b"\r\n\r\n")[0]


def test_sessions_async_held_while_redis_stopped(t):
    redis, (a, b) = _cluster(t)
    priv_svc = t.http_service(big_size=1024, ident="private-dev")
    pub_svc = t.http_service(big_size=1024, ident="public-dev")
    pub = _agent_on(t, b, pub_svc.port, "pub-" + os.urandom(3).hex())
    priv = _agent_on(t, a, priv_svc.port, "priv-" + os.urandom(3).hex())
    label = priv.label
    # sessions made on node A (the device's holder then), never used on node B
    cookie = _signed_in(a, label)
    cookie2 = _signed_in(a, label, "carol", "carol-secret-3")
    priv = _move(t, priv, b, priv_svc.port, label)

    def public():
        return _request(b, "GET", "/whoami", pub.label)

    before = []
    for _ in range(10):
        d, r = _timed(public)
        eq(r[::2], (200, b"public-dev"), "the public device at node b")
        before.append(d)
    reads = _metric(b, 'tether_access_session_waits_total{op="read"}', True)

    held = []
    redis.proc.send_signal(signal.SIGSTOP)
    stopped = time.monotonic()
    th = threading.Thread(target=lambda: held.append(_timed(lambda: _request(
        b, "GET", "/whoami", label, [("Cookie", cookie)]))), daemon=True)
    try:
        th.start()
        during = []
        while time.monotonic() - stopped < 1.5:
            d, r = _timed(public)
            eq(r[::2], (200, b"public-dev"), "the public device while Redis is stopped")
            during.append(d)
            time.sleep(0.05)
        pending = th.is_alive()
        still = time.monotonic() - stopped
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    th.join(15)
    print("public device at node b: before the stop max %.1f ms (median %.1f ms); while a "
          "request waited for Redis: max %.1f ms over %d requests" %
          (1000 * max(before), 1000 * sorted(before)[len(before) // 2], 1000 * max(during),
           len(during)))
    check(pending, "the request with a cookie node b never saw was answered while Redis was "
          "stopped: %r" % ([(round(d, 2), r[0]) for d, r in held],))
    check(still < 2.8, "the checks took %.1f s: Redis resumed too late to tell" % still)
    check(held, "the held request got no answer after SIGCONT")
    waited, (st, _, body) = held[0]
    print("the held request was answered %.2f s after it was sent" % waited)
    eq((st, body), (200, b"private-dev"), "the held request, once Redis answered")
    check(len(during) >= 5, "only %d requests to the public device answered while one was held"
          % len(during))
    check(_metric(b, 'tether_access_session_waits_total{op="read"}') > (reads or 0),
          "the held read was not counted")
    eq(_metric(b, "tether_access_session_held"), 0, "requests still held")

    # a sign-in form posted with a cookie node b never saw (its head first, the body later): held
    # for the read, then the form is read and the sign-in made
    s = socket.create_connection(("127.0.0.1", b.port), timeout=20)
    try:
        body = b"user=alice&secret=alice-secret-1"
        s.sendall(("POST /whoami HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nContent-Type: "
                   "application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n" %
                   (b.host(label), _random_cookie(), len(body))).encode())
        time.sleep(0.3)
        s.sendall(body)
        st, head = _read_status(s)
    finally:
        s.close()
    eq(st, 303, "a sign-in posted with an unknown cookie, its body after the read")
    check(b"Set-Cookie: tether_session=" in head, "no cookie with the 303: %r" % head)

    # a sign-out on node A ends the sessions on node B: the device back to A, out, then to B
    priv = _move(t, priv, a, priv_svc.port, label)
    for c in (cookie, cookie2):
        st, hdrs, _ = _request(a, "POST", "/.tether/signout", label,
                               [("Cookie", c), ("Origin", "http://" + a.host(label))])
        eq(st, 200, "sign-out at node a")
        check(any(k == "set-cookie" and "Max-Age=0" in v for k, v in hdrs), "cookie cleared")
    check(_metric(a, 'tether_access_session_waits_total{op="delete"}') >= 2,
          "the sign-outs did not wait for Redis")
    priv = _move(t, priv, b, priv_svc.port, label)
    # cookie2: never seen on B, read from Redis: gone at once
    eq(_request(b, "GET", "/whoami", label, [("Cookie", cookie2)])[0], 401,
       "a cookie signed out on node a, at node b")
    # cookie: node b had it in its table: its re-check ends it within about a second
    wait_for(lambda: _request(b, "GET", "/whoami", label, [("Cookie", cookie)])[0] == 401, 5,
             "the session node b knew, signed out on node a, to end at node b")

    # Redis stopped: a sign-in is not answered with a cookie Redis does not have, a sign-out is
    # not answered "signed out" before Redis ended the session (503, then done once it answers)
    cookie3 = _signed_in(b, label, "carol", "carol-secret-3")
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        d_in, (st_in, h_in, _) = _timed(lambda: _signin(b, label, "alice", "alice-secret-1"))
        d_out, (st_out, h_out, _) = _timed(lambda: _request(
            b, "POST", "/.tether/signout", label,
            [("Cookie", cookie3), ("Origin", "http://" + b.host(label))]))
        eq(_request(b, "GET", "/whoami", pub.label)[::2], (200, b"public-dev"),
           "the public device after the waits")
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    eq(st_in, 503, "a sign-in while Redis is stopped")
    check(not any(k == "set-cookie" for k, _ in h_in), "a cookie handed out with the 503")
    check(any(k == "retry-after" for k, _ in h_in), "no Retry-After with the 503")
    eq(st_out, 503, "a sign-out while Redis is stopped")
    print("sign-in answered 503 after %.2f s, sign-out after %.2f s" % (d_in, d_out))
    # (the asynchronous connection, dropped after 5 s without an answer, comes back first)
    wait_for(lambda: _request(b, "POST", "/.tether/signout", label,
                              [("Cookie", cookie3), ("Origin", "http://" + b.host(label))])[0] ==
             200, 15, "the sign-out again, Redis back")
    eq(_request(b, "GET", "/whoami", label, [("Cookie", cookie3)])[0], 401, "signed out")
    # a sign-out on a keep-alive connection (the HTTP filter, which cannot wait): ended on the
    # node at once, sent again on a new connection (307), where it waits for Redis
    cookie4 = _signed_in(b, label, "carol", "carol-secret-3")
    c = Conn(b.port, b.host(label))
    try:
        eq(c.request("GET", "/whoami", [("Cookie", cookie4)])[::2], (200, b"private-dev"),
           "keep-alive at node b")
        st, hdrs, _ = c.request("POST", "/.tether/signout",
                                [("Cookie", cookie4), ("Origin", "http://" + b.host(label))])
        eq(st, 307, "a sign-out on a keep-alive connection")
        check(any(k == "location" and v.endswith("/.tether/signout") for k, v in hdrs),
              "the 307's Location: %r" % hdrs)
        check(c.closed(), "the connection stayed open after the 307")
    finally:
        c.close()
    eq(_request(b, "GET", "/whoami", label, [("Cookie", cookie4)])[0], 401,
       "signed out on the node at once")
    st, _, _ = _request(b, "POST", "/.tether/signout", label,
                        [("Cookie", cookie4), ("Origin", "http://" + b.host(label))])
    eq(st, 200, "the sign-out sent again on a new connection")
    eq(_request(a, "GET", "/whoami", pub.label)[0], 200, "the public device through node a")
    check(a.proc.alive() and b.proc.alive(), "a node died")
    # the cookies' values are in no log (Redis and the tables keep their SHA-256 only)
    for n in (a, b):
        for c in (cookie, cookie2, cookie3, cookie4):
            check(c.split("=", 1)[1] not in n.proc.stderr_text(), "a cookie in %s's log" % n.name)


def test_sessions_async_cap_close_and_timeout(t):
    # node a: the cap and the wait's end; node b (a 1 s head deadline): held connections dropped
    redis = RedisServer(t)
    low, high = _free_range_all(t)
    users = _users_file(t)
    args = ["--access", "private", "--users-file", users, "--public", PUBLIC]
    a = _node(t, redis, "node-a", "127.0.0.2", (low, high), extra=args)
    b = _node(t, redis, "node-b", "127.0.0.3", (low, high), extra=args + ["--head-timeout", "1s"])
    svc = t.http_service(big_size=1024, ident="private-dev")
    pub_svc = t.http_service(big_size=1024, ident="public-dev")
    dev_a = _agent_on(t, a, svc.port, "priv-a-" + os.urandom(3).hex())
    dev_b = _agent_on(t, b, svc.port, "priv-b-" + os.urandom(3).hex())
    pub = _agent_on(t, a, pub_svc.port, "pub-" + os.urandom(3).hex())
    eq(_request(a, "GET", "/whoami", dev_a.label, [("Cookie", _random_cookie())])[0], 401,
       "an unknown cookie with Redis up")
    full = _metric(a, 'tether_access_session_wait_refused_total{reason="full"}', True) or 0
    timeouts = _metric(a, 'tether_access_session_wait_refused_total{reason="timeout"}', True) or 0

    socks, dropped = [], []
    redis.proc.send_signal(signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        # (a node takes at most 128 connections with no answer yet from one address: three)
        for i in range(256):
            socks.append(_raw_get(a, dev_a.label, _random_cookie(), "127.0.1.%d" % (1 + i % 3)))
        for _ in range(5):
            dropped.append(_raw_get(b, dev_b.label, _random_cookie()))
        # every one of the 256 is held (none answered): the next one is refused at once
        time.sleep(0.5)
        over = _raw_get(a, dev_a.label, _random_cookie(), "127.0.1.4")
        st_over, head_over = _read_status(over, timeout=2)
        over.close()
        # clients that go while held
        for s in socks[:20]:
            s.close()
        eq(_request(a, "GET", "/whoami", pub.label)[::2], (200, b"public-dev"),
           "the public device with 256 requests held")
        # node b's held connections: dropped by the head deadline, unanswered
        drop_st = [_read_status(s, timeout=3)[0] for s in dropped]
        # the held ones end at the wait's end (3 s): 503
        answers = [_read_status(s, timeout=6)[0] for s in socks[20:]]
        ended = time.monotonic() - stopped
    finally:
        redis.proc.send_signal(signal.SIGCONT)
        for s in socks + dropped:
            s.close()
    eq(st_over, 503, "the request past the cap")
    check(b"Retry-After: 1" in head_over, "no Retry-After at the cap: %r" % head_over)
    eq(drop_st, [None] * 5, "held connections past the head deadline")
    eq(answers, [503] * len(answers), "held requests Redis did not answer in time")
    check(ended < 4.9, "the wait's end took %.1f s" % ended)
    check(_metric(a, 'tether_access_session_wait_refused_total{reason="full"}') > full,
          "the cap was not counted")
    check(_metric(a, 'tether_access_session_wait_refused_total{reason="timeout"}') >=
          timeouts + len(answers), "the timeouts were not counted")
    wait_for(lambda: _metric(a, "tether_access_session_waiting") == 0, 10, "jobs still waiting")
    eq(_metric(a, "tether_access_session_held"), 0, "requests still held at node a")
    eq(_metric(b, "tether_access_session_held"), 0, "requests still held at node b")
    # Redis back: an unknown cookie is refused again (401), a sign-in works on both
    eq(_request(a, "GET", "/whoami", dev_a.label, [("Cookie", _random_cookie())])[0], 401,
       "an unknown cookie after the stop")
    for n, d in ((a, dev_a), (b, dev_b)):
        pair = _signed_in(n, d.label)
        eq(_request(n, "GET", "/whoami", d.label, [("Cookie", pair)])[::2], (200, b"private-dev"),
           "signed in at %s after the stop" % n.name)
    check(a.proc.alive() and b.proc.alive(), "a node died")
