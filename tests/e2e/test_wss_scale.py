"""test_wss_scale.py - devices over wss at fleet scale (issue 12 item 6): TLS session
resumption with session tickets.

- an agent over wss whose link is cut reconnects, and its second handshake is a resumption
  (tether_tls_handshakes_total{kind="resumed"} moves, {kind="full"} does not);
- a lone relay restarted (its ticket keys live in memory only) meets the agent's ticket with a
  full handshake, counted as an unknown ticket, and the device registers again (not a failure);
- a ticket whose key was rotated out (--tls-ticket-rotate 4s) gives a full handshake, and the
  device registers again;
- two nodes of a cluster sharing a real redis-server: a device whose session was made at node
  a resumes it at node b once a is gone (the ticket keys are shared through Redis), and the
  keys in Redis are 80-byte values under tether:tls:ticket:PERIOD:EPOCH with an expiry;
- the same cluster with Redis stopped (SIGSTOP) across ticket key refreshes and an epoch turn:
  the device's reconnections are still TLS handshakes (full or resumed), the unanswered
  refreshes are counted, and after SIGCONT both nodes take new keys from Redis again (a session
  made at node a then resumes at node b).

The agent dials wss://localhost:PORT of a small forwarder (Cutter, on bench/tcprelay.py), so
that the test can cut the link without touching either program. Tests assert behaviour, never speed."""

import os
import re
import signal
import ssl
import socket
import sys
import time
import urllib.request

from lib import (RedisServer, check, eq, free_port, resp_command, wait_for, TestFailure)
from test_tls import Pki
from test_cluster import _free_range_all, _node

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from tcprelay import TcpRelay  # noqa: E402


class Cutter(TcpRelay):
    """A TCP forwarder on 127.0.0.1:port to 127.0.0.1:target (bench/tcprelay.py); cut() closes
    every link it carries (both sides)."""

    def __init__(self, t, target):
        super().__init__(target, backlog=16, nodelay=False)
        t.on_cleanup(self.close)


def _tls_relay(t, pki, extra=(), data_dir=None, port=None, admin_port=None, tls_port=None):
    crt, key, _ = pki.server()
    tls_port = tls_port or free_port()
    relay = t.relay(data_dir=data_dir, port=port, admin_port=admin_port,
                    extra=["--tls-listen", "127.0.0.1:%d" % tls_port, "--tls-cert", crt,
                           "--tls-key", key] + list(extra))
    wait_for(lambda: _open(tls_port), 30, "the TLS listener on %d" % tls_port)
    relay.tls_port = tls_port
    return relay


def _open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def _metrics(relay):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % relay.admin_port,
                                timeout=10) as r:
        text = r.read().decode()
    out = {}
    for name, labels, value in re.findall(r'^(tether_tls_[a-z_]+)(\{[^}]*\})? (\d+)$', text,
                                          re.M):
        out[name + labels] = int(value)
    return out


FULL = 'tether_tls_handshakes_total{kind="full"}'
RESUMED = 'tether_tls_handshakes_total{kind="resumed"}'
UNKNOWN = "tether_tls_ticket_unknown_total"


def _wss_agent(t, relay, pki, port, svc, servers=()):
    extra = ["--ca-file", pki.ca]
    for s in servers:
        extra += ["--server", s]
    return t.agent(relay, http=svc.port, server="wss://localhost:%d" % port, extra=extra)


def test_wss_agent_reconnect_is_a_resumption(t):
    pki = Pki(t)
    relay = _tls_relay(t, pki)
    cut = Cutter(t, relay.tls_port)
    svc = t.http_service(big_size=1024)
    agent = _wss_agent(t, relay, pki, cut.port, svc)
    label = agent.label
    m = _metrics(relay)
    eq((m.get(FULL), m.get(RESUMED)), (1, 0), "handshakes after the first registration")
    for i in range(2):
        cut.cut()
        agent.wait_ready(timeout=60)
        eq(agent.label, label, "label after reconnection %d" % (i + 1))
        m = _metrics(relay)
        eq((m.get(FULL), m.get(RESUMED)), (1, i + 1),
           "handshakes after reconnection %d (full, resumed)" % (i + 1))
    eq(m.get(UNKNOWN), 0, "unknown tickets")
    st, _, body = relay.request("GET", "/whoami", label=label)
    eq(st, 200, "a request to the device after its resumed reconnection")


def test_wss_lone_relay_restarted_full_handshake_not_failure(t):
    pki = Pki(t)
    relay = _tls_relay(t, pki)
    cut = Cutter(t, relay.tls_port)
    svc = t.http_service(big_size=1024)
    agent = _wss_agent(t, relay, pki, cut.port, svc)
    label = agent.label
    relay.stop()
    relay2 = _tls_relay(t, pki, data_dir=relay.data_dir, port=relay.port,
                        admin_port=relay.admin_port, tls_port=relay.tls_port)
    cut.cut()
    agent.relay = relay2
    agent.wait_ready(timeout=60)
    eq(agent.label, label, "label after the restart")
    m = _metrics(relay2)
    eq((m.get(FULL), m.get(RESUMED), m.get(UNKNOWN)), (1, 0, 1),
       "a restarted relay (new keys): full handshakes, resumed, tickets with an unknown key")


def test_wss_ticket_of_rotated_out_key_gives_full_handshake(t):
    period = 4
    pki = Pki(t)
    relay = _tls_relay(t, pki, extra=["--tls-ticket-rotate", "%ds" % period])
    cut = Cutter(t, relay.tls_port)
    svc = t.http_service(big_size=1024)
    agent = _wss_agent(t, relay, pki, cut.port, svc)
    issued = time.time()  # the ticket came with the handshake, just before the ready lines
    label = agent.label
    # its key (epoch E0) opens tickets until epoch E0+2 begins; the client keeps offering the
    # ticket for 3 periods (the lifetime hint): cut the link once E0+2 began. The ticket came
    # at or a little before `issued`: E0 <= floor(issued / period), so waiting for the epoch
    # after that one's next is enough (between 2 and 3 periods of age, under the hint's 3)
    e0 = int(issued) // period
    rotated_out = (e0 + 2) * period
    time.sleep(max(0.0, rotated_out - time.time()) + 0.2)
    check(time.time() - issued < 3 * period - 2, "too slow to test within the ticket's life")
    cut.cut()
    agent.wait_ready(timeout=60)
    eq(agent.label, label, "label after reconnecting with a rotated-out ticket")
    m = _metrics(relay)
    eq((m.get(FULL), m.get(RESUMED)), (2, 0), "handshakes (full, resumed)")
    eq(m.get(UNKNOWN), 1, "tickets under a rotated-out key")
    check(m.get('tether_tls_ticket_keys_total{source="made"}', 0) >= 3,
          "keys made as the epochs turned: %r" % m)


def test_wss_cluster_session_from_node_a_resumes_at_node_b(t):
    pki = Pki(t)
    crt, key, _ = pki.server()
    redis = RedisServer(t)
    low, high = _free_range_all(t)
    tls = {}
    nodes = []
    for name, bind in (("node-a", "127.0.0.2"), ("node-b", "127.0.0.3")):
        tls[name] = free_port()
        n = _node(t, redis, name, bind, (low, high),
                  extra=["--tls-listen", "127.0.0.1:%d" % tls[name], "--tls-cert", crt,
                         "--tls-key", key])
        wait_for(lambda: _open(tls[name]), 30, "the TLS listener of " + name)
        nodes.append(n)
    a, b = nodes
    svc = t.http_service(big_size=1024)
    agent = _wss_agent(t, a, pki, tls["node-a"], svc,
                       servers=["wss://localhost:%d" % tls["node-b"]])
    label = agent.label
    ma = _metrics(a)
    eq((ma.get(FULL), ma.get(RESUMED)), (1, 0), "node a: handshakes of the first registration")
    a.stop()
    agent.relay = b
    agent.wait_ready(timeout=60)
    eq(agent.label, label, "label at node b")
    mb = _metrics(b)
    eq((mb.get(FULL), mb.get(RESUMED)), (0, 1),
       "node b: the session made at node a resumed (full, resumed)")
    check(mb.get('tether_tls_ticket_keys_total{source="shared"}', 0) >= 2,
          "node b took the keys from Redis: %r" % mb)
    # the keys in Redis: 80 bytes each, expiring
    s = socket.create_connection(("127.0.0.1", redis.port), timeout=10)
    with s:
        keys = resp_command(s, "KEYS", "tether:tls:ticket:*")
        check(isinstance(keys, list) and len(keys) >= 2, "ticket keys in Redis: %r" % (keys,))
        for k in keys:
            k = k.decode() if isinstance(k, bytes) else k
            check(re.match(r"^tether:tls:ticket:43200:\d+$", k), "key name %r" % k)
            eq(resp_command(s, "STRLEN", k), 80, "length of %s" % k)
            ttl = resp_command(s, "TTL", k)
            check(isinstance(ttl, int) and 0 < ttl <= 3 * 43200 + 60, "TTL of %s: %r" % (k, ttl))


def _redis_cmd(redis, *args):
    s = socket.create_connection(("127.0.0.1", redis.port), timeout=10)
    with s:
        return resp_command(s, *args)


def test_wss_cluster_redis_stopped_across_ticket_refresh(t):
    """Redis stopped (SIGSTOP, the redis-server this test started) across ticket refreshes and
    an epoch turn (--tls-ticket-rotate 4s: a refresh every second): the nodes keep the keys
    they hold, count the refreshes Redis did not answer, and the device's reconnections are
    still TLS handshakes (full or resumed) with the relay's loop answering; after SIGCONT the
    nodes take new keys from Redis again, the same at both (a session made at node a resumes
    at node b)."""
    period = 4
    pki = Pki(t)
    crt, key, _ = pki.server()
    redis = RedisServer(t)
    low, high = _free_range_all(t)
    tls = {}
    nodes = []
    for name, bind in (("node-a", "127.0.0.2"), ("node-b", "127.0.0.3")):
        tls[name] = free_port()
        n = _node(t, redis, name, bind, (low, high),
                  extra=["--tls-listen", "127.0.0.1:%d" % tls[name], "--tls-cert", crt,
                         "--tls-key", key, "--tls-ticket-rotate", "%ds" % period])
        wait_for(lambda: _open(tls[name]), 30, "the TLS listener of " + name)
        nodes.append(n)
    a, b = nodes
    cut = Cutter(t, tls["node-a"])
    svc = t.http_service(big_size=1024)
    agent = _wss_agent(t, a, pki, cut.port, svc)
    label = agent.label
    shared = 'tether_tls_ticket_keys_total{source="shared"}'
    fails = "tether_tls_ticket_key_failures_total"

    def handshakes(m):
        return m.get(FULL, 0) + m.get(RESUMED, 0)

    m0 = _metrics(a)
    check(m0.get(shared, 0) >= 2, "node a took its keys from Redis at start: %r" % m0)
    # stop Redis just after an epoch began; resume it once the next one began and the nodes'
    # refreshes of its key went unanswered for a while
    now = time.time()
    time.sleep((int(now) // period + 1) * period - now + 0.1)
    turn = (int(time.time()) // period + 1) * period
    redis.proc.send_signal(signal.SIGSTOP)
    reconnections = 0
    try:
        while reconnections < 3 or time.time() < turn + 2.5:
            check(reconnections < 8, "too slow to test within the stop")
            before = handshakes(_metrics(a))
            cut.cut()
            wait_for(lambda: handshakes(_metrics(a)) > before, 20,
                     "a TLS handshake of the device at node a while Redis is stopped")
            reconnections += 1
        for n in (a, b):
            m = _metrics(n)
            check(m.get(fails, 0) >= 1,
                  "%s counted its unanswered key refreshes while Redis is stopped: %r"
                  % (n.name, m))
        stopped = {n.name: _metrics(n) for n in (a, b)}
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    for n in (a, b):
        wait_for(lambda: _metrics(n).get(shared, 0) > stopped[n.name].get(shared, 0), 30,
                 "%s takes new ticket keys from Redis after SIGCONT" % n.name)
    agent.wait_ready(timeout=60)
    eq(agent.label, label, "label after the stop")
    # the key of the current epoch is in Redis, 80 bytes
    epoch = int(time.time()) // period
    eq(_redis_cmd(redis, "STRLEN", "tether:tls:ticket:%d:%d" % (period, epoch)), 80,
       "the current epoch's key in Redis")
    # a session made at node a now resumes at node b: their keys are the same again
    ctx = ssl.create_default_context(cafile=pki.ca)
    sess = _tls_request(ctx, tls["node-a"])
    check(sess is not None, "a session ticket from node a")
    mb = _metrics(b)
    eq(_tls_request(ctx, tls["node-b"], sess, want_reused=True) is not None, True,
       "a handshake at node b with node a's session")
    mb2 = _metrics(b)
    eq((mb2.get(FULL, 0) - mb.get(FULL, 0), mb2.get(RESUMED, 0) - mb.get(RESUMED, 0)), (0, 1),
       "node b: the session node a made after SIGCONT resumed (full, resumed)")


def _tls_request(ctx, port, session=None, want_reused=False):
    """One TLS connection to 127.0.0.1:port (name localhost), one request read to its end (the
    TLS 1.3 ticket comes after the handshake); returns the session (resumable) or None."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if not s.recv(65536):
                    break
            except (OSError, ssl.SSLError):
                break
        if want_reused:
            check(s.session_reused, "the session was resumed (TLS client side)")
        return s.session
