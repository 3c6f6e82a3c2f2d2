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
  keys in Redis are 80-byte values under tether:tls:ticket:PERIOD:EPOCH with an expiry.

The agent dials wss://localhost:PORT of a small forwarder of this file (Cutter), so that the
test can cut the link without touching either program. Tests assert behaviour, never speed."""

import re
import socket
import threading
import time
import urllib.request

from lib import (RedisServer, check, eq, free_port, resp_command, wait_for, TestFailure)
from test_tls import Pki
from test_cluster import _free_range_all, _node


class Cutter:
    """A TCP forwarder on 127.0.0.1:port to 127.0.0.1:target; cut() closes every link it
    carries (both sides), retarget() changes where new links go."""

    def __init__(self, t, target):
        self.target = target
        self.lock = threading.Lock()
        self.socks = []
        self.links = 0
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()
        t.on_cleanup(self.close)

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.socks += [c, u]
                self.links += 1
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        with self.lock:
            socks, self.socks = self.socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.closed = True
        self.srv.close()
        self.cut()


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
