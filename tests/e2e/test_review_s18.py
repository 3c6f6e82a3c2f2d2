"""test_review_s18.py - attacks on what session 18 changed (browser sessions held while Redis is
read, tether connect's Retry-After, webhooks at shutdown), against real tetherd nodes and a real
redis-server (stopped with SIGSTOP by the PID this test started), loopback only.

- A sign-out on a node while a read of the same cookie is in flight on that node (Redis slow):
  the read, sent first, finds the session; it must not come back into the node's table once the
  sign-out answered "signed out" (before the fix it did, and the stolen cookie kept working
  there until its re-check). The one test here that fails on the code before this branch.
- SIGTERM while a node holds cookie reads, a sign-in's write and a sign-out for a stopped Redis:
  exit 0 within the deadline, no cookie handed out, sanitizers clean.
- Requests pipelined behind one held for a read (another user's cookie, none): never answered
  by the device as the first one's.
- Requests held on a cluster node's TLS listener (reading stopped and started again through
  the TLS filter; a form's body after the read; clients gone mid-record).
- Redis killed while reads are held, then a new empty one on the same port: every held request
  answered 503, none left held; afterwards sign-in works and the lost cookie is refused.
- tether connect behind a front answering 503 with hostile Retry-After values (negative, huge,
  repeated, junk): each refusal final at once, no wait.
- Webhooks at shutdown: a receiver that trickles its answer a byte at a time and never ends it,
  with several devices online: tetherd still exits 0 within its flush bound.
"""

import os
import signal
import socket
import threading
import time

from lib import Relay, check, eq, wait_for
from test_private_signin import _request, _signed_in
from test_sessions_async import (_agent_on, _cluster, _metric, _move, _raw_get, _read_status)


def _raw_signout(node, label, cookie):
    """A socket with a sign-out (POST, same origin) for label sent with cookie (not read)."""
    s = socket.create_connection(("127.0.0.1", node.port), timeout=20)
    host = node.host(label)
    s.sendall(("POST /.tether/signout HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nOrigin: http://%s\r\n"
               "Content-Length: 0\r\n\r\n" % (host, cookie, host)).encode())
    return s


def test_review_s18_signout_while_read_in_flight(t):
    redis, (a, b) = _cluster(t)
    svc = t.http_service(big_size=1024, ident="private-dev")
    priv = _agent_on(t, a, svc.port, "priv-" + os.urandom(3).hex())
    label = priv.label
    cookie = _signed_in(a, label)  # made on node a: node b never saw it
    priv = _move(t, priv, b, svc.port, label)

    redis.proc.send_signal(signal.SIGSTOP)
    try:
        # the read of the cookie goes out first (held), then the sign-out's delete (held)
        g = _raw_get(b, label, cookie)
        time.sleep(0.3)
        so = _raw_signout(b, label, cookie)
        time.sleep(0.3)
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    try:
        st_so, head_so = _read_status(so)
        st_g, _ = _read_status(g)
    finally:
        so.close()
        g.close()
    eq(st_so, 200, "the sign-out held while Redis was stopped, once Redis answered")
    check(b"Max-Age=0" in head_so, "the sign-out did not clear the cookie: %r" % head_so)
    print("the request sent before the sign-out was answered %s" % st_g)
    # at once after "signed out": the cookie must not work on this node any more
    answers = [_request(b, "GET", "/whoami", label, [("Cookie", cookie)])[0] for _ in range(3)]
    eq(answers, [401, 401, 401], "the signed-out cookie at the node that signed it out")
    check(_metric(b, "tether_access_session_reads_superseded_total") >= 1,
          "the read the sign-out superseded was not counted")
    eq(_metric(b, "tether_access_session_held"), 0, "requests still held")


def _raw_form(node, label, user, secret, cookie=None):
    """A socket with a sign-in form posted for label (not read)."""
    s = socket.create_connection(("127.0.0.1", node.port), timeout=20)
    body = ("user=%s&secret=%s" % (user, secret)).encode()
    extra = "Cookie: %s\r\n" % cookie if cookie else ""
    s.sendall(("POST /whoami HTTP/1.1\r\nHost: %s\r\n%sContent-Type: application/x-www-form-"
               "urlencoded\r\nContent-Length: %d\r\n\r\n" % (node.host(label), extra, len(body))
               ).encode() + body)
    return s


def test_review_s18_shutdown_with_requests_held(t):
    """SIGTERM while a node holds requests for a stopped Redis (cookie reads, a sign-in's
    write, a sign-out's delete, clients gone meanwhile): the node exits 0 within its deadline,
    no held client gets a cookie, and the sanitizers stay clean (the harness's checks)."""
    redis, (a, b) = _cluster(t)
    svc = t.http_service(big_size=1024, ident="private-dev")
    priv = _agent_on(t, b, svc.port, "priv-" + os.urandom(3).hex())
    label = priv.label
    cookie = _signed_in(b, label)
    socks = []
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        for i in range(40):
            socks.append(_raw_get(b, label, "tether_session=" + os.urandom(32).hex()))
        socks.append(_raw_form(b, label, "alice", "alice-secret-1"))
        socks.append(_raw_form(b, label, "alice", "alice-secret-1",
                               "tether_session=" + os.urandom(32).hex()))
        socks.append(_raw_signout(b, label, cookie))
        for s in socks[:10]:  # gone while held
            s.close()
        time.sleep(0.8)
        held = _metric(b, "tether_access_session_held")
        start = time.monotonic()
        st = b.stop()
        took = time.monotonic() - start
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    priv.proc.stop()
    print("requests held at SIGTERM: %d" % held)
    check(held >= 30, "only %d requests held at SIGTERM" % held)
    eq(st, 0, "node b's exit status after SIGTERM with requests held")
    check(took < 5, "node b took %.1f s to stop" % took)
    for s in socks[10:]:
        _, head = _read_status(s, 5)
        check(b"Set-Cookie: tether_session=" not in head or b"Max-Age=0" in head,
              "a cookie handed out while Redis was stopped: %r" % head)
        s.close()
    log = b.proc.stderr_text()
    check("shutdown deadline reached" not in log, "node b hit its shutdown deadline:\n%s"
          % b.proc.stderr_tail(20))


def _read_all(s, timeout=10):
    """Everything s sends until it closes (or timeout)."""
    s.settimeout(timeout)
    data = b""
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    return data


def test_review_s18_pipelined_behind_a_held_request(t):
    """A request held for the read of alice's cookie (new to node b) with two more pipelined
    behind it, one with carol's cookie (also new to b) and one with none: alice's is answered
    by the device; the others never reach it as alice's (carol's is sent again on a new
    connection, 307; the one with no cookie gets nothing from the device), and nothing stays
    held."""
    redis, (a, b) = _cluster(t)
    svc = t.http_service(big_size=1024, ident="private-dev")
    priv = _agent_on(t, a, svc.port, "priv-" + os.urandom(3).hex())
    label = priv.label
    alice = _signed_in(a, label)
    carol = _signed_in(a, label, "carol", "carol-secret-3")
    priv = _move(t, priv, b, svc.port, label)
    host = b.host(label)
    req = "GET /whoami HTTP/1.1\r\nHost: %s\r\n%s\r\n"
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        s = socket.create_connection(("127.0.0.1", b.port), timeout=20)
        s.sendall((req % (host, "Cookie: %s\r\n" % alice) + req % (host, "Cookie: %s\r\n" % carol)
                   + req % (host, "")).encode())
        time.sleep(0.5)
        held = _metric(b, "tether_access_session_held")
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    data = _read_all(s)
    s.close()
    statuses = [int(m) for m in __import__("re").findall(rb"HTTP/1\.1 (\d{3}) ", data)]
    print("held: %d; answers on the connection: %r" % (held, statuses))
    eq(held, 1, "requests held while Redis was stopped")
    check(statuses and statuses[0] == 200, "alice's request: %r" % data[:300])
    eq(data.count(b"private-dev"), 1, "answers from the device on the connection (alice's only)")
    check(len(statuses) == 2 and statuses[1] in (307, 401),
          "the request with carol's cookie behind alice's: %r" % statuses)
    eq(_metric(b, "tether_access_session_held"), 0, "requests still held")


class _Trickler:
    """A webhook receiver on 127.0.0.1 that reads each request, then sends an answer's head one
    byte every 0.2 s and never ends it (at most 60 s per connection)."""

    def __init__(self, t):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        self.url = "http://127.0.0.1:%d/hook" % self.port
        self.arrived = 0
        self.done = threading.Event()
        t.on_cleanup(self.close)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.done.is_set():
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.arrived += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            c.settimeout(5)
            c.recv(65536)
            head = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: 1\r\n" * 1000
            for i in range(min(len(head), 300)):
                if self.done.wait(0.2):
                    break
                c.sendall(head[i:i + 1])
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.done.set()
        self.srv.close()


def test_review_s18_webhook_trickling_receiver_at_shutdown(t):
    rx = _Trickler(t)
    relay = Relay(t, extra=["--webhook", rx.url])
    svc = t.http_service(big_size=1024, ident="dev")
    agents = [t.agent(relay, name="wh-slow-%d" % i, http=svc.port) for i in range(6)]
    wait_for(lambda: rx.arrived >= 1, 30, "the first request at the receiver")
    time.sleep(0.5)
    start = time.monotonic()
    st = relay.stop()
    took = time.monotonic() - start
    for a in agents:
        a.proc.stop()
    print("tetherd stopped in %.2f s" % took)
    eq(st, 0, "tetherd's exit status after SIGTERM")
    check(took < 5, "tetherd took %.1f s to stop with a trickling receiver" % took)
    log = relay.proc.stderr_text()
    check("shutdown deadline reached" not in log, "the shutdown deadline was reached:\n%s"
          % relay.proc.stderr_tail(20))
    check("webhook events dropped at shutdown count=" in log,
          "no drop line at shutdown:\n%s" % relay.proc.stderr_tail(20))


def test_review_s18_held_over_tls(t):
    """Held requests on the TLS listener of a cluster node (reading stopped and started again
    through the TLS filter): a sign-in form with a cookie the node never saw, its body sent only
    after the read, gets its 303 and cookie; GETs held while Redis is stopped whose clients
    close (half of them after a partial TLS record) cancel cleanly; the others get the sign-in
    page once Redis answers."""
    from lib import free_port
    from test_private_signin import _tls_up
    from test_tls import DOMAIN, Pki, _client_ctx
    pki = Pki(t)
    crt, key, _ = pki.server()
    tls_port = free_port()
    redis, (n,) = _cluster(t, 1, extra=["--domain", DOMAIN, "--tls-listen",
                                        "127.0.0.1:%d" % tls_port, "--tls-cert", crt,
                                        "--tls-key", key])
    wait_for(lambda: _tls_up(tls_port), 30, "the TLS listener")
    svc = t.http_service(big_size=1024, ident="private-dev")
    agent = _agent_on(t, n, svc.port, "priv-" + os.urandom(3).hex())
    name = "%s.%s" % (agent.label, DOMAIN)
    host = "%s:%d" % (name, tls_port)

    def tls_sock():
        raw = socket.create_connection(("127.0.0.1", tls_port), timeout=20)
        return _client_ctx(pki).wrap_socket(raw, server_hostname=name)

    def rnd():
        return "__Host-tether_session=" + os.urandom(32).hex()

    body = b"user=alice&secret=alice-secret-1"
    s = tls_sock()
    gets = []
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        s.sendall(("POST /whoami HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nContent-Type: "
                   "application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n" %
                   (host, rnd(), len(body))).encode())
        for i in range(12):
            g = tls_sock()
            g.sendall(("GET /whoami HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\n\r\n" %
                       (host, rnd())).encode())
            gets.append(g)
        time.sleep(0.5)
        held = _metric(n, "tether_access_session_held")
        for i, g in enumerate(gets[:6]):  # gone while held
            if i % 2:
                g.close()
            else:  # a partial TLS record, then gone
                fd = g.detach()
                os.write(fd, b"\x17\x03\x03\x00\x40partial")
                os.close(fd)
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    time.sleep(0.3)
    s.sendall(body)
    st, head = _read_status(s)
    s.close()
    eq(held, 13, "requests held on the TLS listener while Redis was stopped")
    eq(st, 303, "the sign-in form over TLS, its body after the read")
    check(b"Set-Cookie: __Host-tether_session=" in head, "no cookie with the 303: %r" % head)
    for g in gets[6:]:
        eq(_read_status(g)[0], 401, "a random cookie over TLS, once Redis answered")
        g.close()
    eq(_metric(n, "tether_access_session_held"), 0, "requests still held")


def test_review_s18_connect_hostile_retry_after(t):
    """tether connect --stdio behind a front that answers every upgrade 503 with a hostile
    Retry-After (negative, zero, huge, 20 digits, two headers, a fraction, junk): each refusal is
    final at once (one upgrade, exit 1, one error line, no wait), with no sanitizer report."""
    from test_mend import _argv, _no_sanitizer_report, _stdio, _world
    relay, agent, front = _world(t, busy=1000, retry_after="-1")
    for value in ("-1", "0", "999999999", "99999999999999999999", "1\r\nRetry-After: 1",
                  "1.5", "1 2", "+1", "0x10", " " * 200 + "1x"):
        front.retry_after = value
        seen = front.seen
        start = time.monotonic()
        r = _stdio(_argv(front, agent.name + "/echo", ["--stdio"]), b"x", timeout=30)
        took = time.monotonic() - start
        err = r.stderr.decode("utf-8", "replace")
        _no_sanitizer_report(err, "tether connect")
        eq(r.returncode, 1, "exit status with Retry-After %r (stderr %r)" % (value, err))
        eq(front.seen - seen, 1, "upgrades sent with Retry-After %r" % value)
        eq(len(err.strip().splitlines()), 1, "error lines with Retry-After %r: %r" % (value, err))
        check("retrying in" not in err, "waited for Retry-After %r: %r" % (value, err))
        check(took < 20, "tether connect took %.1f s with Retry-After %r" % (took, value))


def test_review_s18_redis_gone_mid_read(t):
    """Requests held for reads when the Redis connection dies (redis-server killed while
    stopped, then a new, empty one on the same port): every held request is answered 503 (none
    passes, none stays held), the node lives on, and once Redis is back a sign-in works and the
    cookie Redis lost is refused."""
    from lib import RedisServer
    from test_private_signin import _signin
    redis, (a, b) = _cluster(t)
    svc = t.http_service(big_size=1024, ident="private-dev")
    priv = _agent_on(t, a, svc.port, "priv-" + os.urandom(3).hex())
    label = priv.label
    cookie = _signed_in(a, label)
    priv = _move(t, priv, b, svc.port, label)
    port = redis.port
    redis.proc.send_signal(signal.SIGSTOP)
    socks = [_raw_get(b, label, cookie)]
    socks += [_raw_get(b, label, "tether_session=" + os.urandom(32).hex()) for _ in range(15)]
    time.sleep(0.5)
    held = _metric(b, "tether_access_session_held")
    redis.proc.stop(signal.SIGKILL)
    answers = [_read_status(s, 10)[0] for s in socks]
    for s in socks:
        s.close()
    print("held %d; answers once Redis was gone: %r" % (held, answers))
    eq(held, 16, "requests held while Redis was stopped")
    eq(answers, [503] * 16, "the held requests once Redis' connection died")
    eq(_metric(b, "tether_access_session_held"), 0, "requests still held")
    RedisServer(t, port=port)
    wait_for(lambda: _signin(b, label, "alice", "alice-secret-1")[0] == 303, 30,
             "a sign-in at node b once Redis is back")
    eq(_request(b, "GET", "/whoami", label, [("Cookie", cookie)])[0], 401,
       "the cookie Redis lost, at node b")
