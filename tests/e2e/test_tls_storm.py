"""test_tls_storm.py - the relay's TLS listener in a reconnect storm (issue 12, items 3 and 6;
docs/operators-guide.md, "The loop's stall"): a handshake is paid for only when somebody waits
for it and the node can take what follows.

- connections whose client sent its ClientHello and closed while the relay was held (SIGSTOP:
  they wait in the kernel's accept queue, as an agent's abandoned attempts do in a storm) are
  dropped with no handshake once the relay runs again: tether_tls_handshakes_abandoned_total
  counts them, no handshake is counted as failed (the code before this answered each with its
  ServerHello, paying the handshake, then failed it);
- hundreds of live clients whose ClientHellos queued while the relay was held all get their
  handshake once it runs, over several loop turns (tether_tls_handshakes_deferred_total moves),
  and the admin listener answers meanwhile;
- with as many device registrations under way as --max-registering allows (silent WebSocket
  devices on the plain listener hold the slots), new TLS clients wait unread
  (tether_tls_handshakes_gated_total, _waiting move) but for a floor of 8 handshakes per 100 ms
  that still run, and all get their handshake (a silent device gives its slot back after 5 s);
- a flood of 1,200 live connections queued in the kernel while the relay was held: the relay
  stops accepting at 1,024 waiting for their handshake (tether_tls_accept_paused_total moves,
  tether_tls_handshakes_waiting never above 1,024), the rest wait in the kernel's queue, all are
  taken in the end, the admin listener answers throughout, and a client gets its handshake
  afterwards.

Tests assert behaviour, never speed: every wait is bounded but generous. Loopback only; every
process is stopped by its PID (lib.py)."""

import signal
import socket
import ssl
import threading
import time
import urllib.request

import rawdev
from lib import check, eq, raise_own_nofile, wait_for
from test_tls import Pki
from test_wss_scale import _metrics, _tls_relay

ABANDONED = "tether_tls_handshakes_abandoned_total"
DEFERRED = "tether_tls_handshakes_deferred_total"
WAITING = "tether_tls_handshakes_waiting"
GATED = "tether_tls_handshakes_gated_total"
FULL = 'tether_tls_handshakes_total{kind="full"}'
FAILED = 'tether_tls_refused_total{reason="handshake"}'
PAUSED = "tether_tls_accept_paused_total"
WAITING_MAX = 1024  # TT_HEADCONN_WAITING_MAX


def _client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _client_hello():
    """The bytes of a real TLS ClientHello (Python's ssl over memory BIOs)."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = _client_ctx().wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    check(hello[:1] == b"\x16", "a ClientHello was made: %r" % hello[:8])
    return hello


def _held(relay):
    """A context manager: the relay stopped (SIGSTOP) inside, running again (SIGCONT) after."""
    class Held:
        def __enter__(self):
            relay.proc.send_signal(signal.SIGSTOP)

        def __exit__(self, *exc):
            relay.proc.send_signal(signal.SIGCONT)
    return Held()


def _healthz(relay):
    with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % relay.admin_port,
                                timeout=20) as r:
        return r.status


class _Handshakers:
    """n TLS clients, each on its own thread: connect, handshake (blocking), then hold the
    connection until close(). done counts the finished handshakes, errors the failed ones."""

    def __init__(self, t, port, n):
        self.port, self.lock = port, threading.Lock()
        self.done, self.errors, self.socks = 0, [], []
        self.threads = [threading.Thread(target=self._one, daemon=True) for _ in range(n)]
        for th in self.threads:
            th.start()
        t.on_cleanup(self.close)

    def _one(self):
        try:
            raw = socket.create_connection(("127.0.0.1", self.port), timeout=90)
            s = _client_ctx().wrap_socket(raw, server_hostname="localhost")
            with self.lock:
                self.done += 1
                self.socks.append(s)
        except (OSError, ssl.SSLError) as e:
            with self.lock:
                self.errors.append(repr(e))

    def finished(self):
        with self.lock:
            return self.done + len(self.errors)

    def close(self):
        with self.lock:
            socks, self.socks = self.socks, []
        for s in socks:
            try:
                s.close()
            except OSError:
                pass


def test_abandoned_clienthellos_get_no_handshake(t):
    pki = Pki(t)
    relay = _tls_relay(t, pki)
    n = 100
    hello = _client_hello()
    before = _metrics(relay)
    with _held(relay):
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", relay.tls_port), timeout=10)
            s.sendall(hello)
            s.close()  # the agent's dial timeout: it gave up while the relay was busy
    wait_for(lambda: _metrics(relay).get(ABANDONED, 0) >= n, 30,
             "%d abandoned connections counted (%s)" % (n, ABANDONED))
    after = _metrics(relay)
    eq(after[ABANDONED] - before.get(ABANDONED, 0), n, "connections dropped unpaid")
    eq(after.get(FAILED, 0) - before.get(FAILED, 0), 0,
       "handshakes started then failed (each one paid for)")
    eq(after.get(FULL, 0) - before.get(FULL, 0), 0, "full handshakes")
    # the listener is as it was: a client that stays gets its handshake
    hs = _Handshakers(t, relay.tls_port, 1)
    wait_for(lambda: hs.finished() == 1, 30, "a handshake after the abandoned ones")
    eq((hs.done, hs.errors), (1, []), "handshakes done, errors")


def test_queued_handshakes_run_over_several_turns(t):
    pki = Pki(t)
    relay = _tls_relay(t, pki, extra=["--max-pending-per-addr", "1000"])
    n = 200
    before = _metrics(relay)
    with _held(relay):
        hs = _Handshakers(t, relay.tls_port, n)
        # every client has connected and sent its ClientHello (the kernel queues them)
        time.sleep(1.5)
    statuses = []
    while hs.finished() < n and len(statuses) < 200:
        statuses.append(_healthz(relay))
        time.sleep(0.05)
    wait_for(lambda: hs.finished() == n, 120, "%d handshakes to end" % n)
    eq((hs.done, hs.errors[:3]), (n, []), "handshakes done, first errors")
    check(all(s == 200 for s in statuses), "the admin listener answered throughout: %r" %
          statuses[:20])
    after = _metrics(relay)
    check(after[DEFERRED] - before.get(DEFERRED, 0) > 0,
          "some handshakes waited for a later turn (%s %r)" % (DEFERRED, after.get(DEFERRED)))
    eq(after[WAITING], 0, "connections still waiting for their handshake")
    eq(after[FULL] - before.get(FULL, 0), n, "full handshakes")


def test_handshakes_wait_while_registrations_are_full(t):
    pki = Pki(t)
    slots = 20
    relay = _tls_relay(t, pki, extra=["--max-registering", str(slots),
                                      "--max-pending-per-addr", "1000"])
    # the slots are taken by silent devices: WebSocket accepted, no HELLO (held for 5 s)
    silent = [rawdev.ws_upgrade(relay.port) for _ in range(slots)]
    t.on_cleanup(lambda: [s.close() for s in silent])
    before = _metrics(relay)
    n = 200
    with _held(relay):
        # their ClientHellos queue in the kernel: the relay meets them all at once (a storm),
        # well within the 5 s the silent devices hold their slots
        hs = _Handshakers(t, relay.tls_port, n)
        time.sleep(1)
    wait_for(lambda: _metrics(relay).get(WAITING, 0) > 0, 3,
             "TLS clients waiting at the gate (%s)" % WAITING)
    mid = _metrics(relay)
    check(mid[GATED] > before.get(GATED, 0), "the gate held handshakes back (%s)" % GATED)
    check(hs.done > 0, "handshakes still start while the gate is shut (the floor)")
    # the silent devices' slots come back after 5 s: the waiting clients get their handshakes
    wait_for(lambda: hs.finished() == n, 60, "every waiting handshake to run")
    eq((hs.done, hs.errors[:3]), (n, []), "handshakes done, first errors")
    eq(_metrics(relay)[WAITING], 0, "connections still waiting")


def test_a_connection_flood_waits_in_the_kernel_not_in_the_relay(t):
    raise_own_nofile(4000)
    pki = Pki(t)
    # --max-registering 1: the gate stays shut (these clients never finish their handshake),
    # so handshakes start at the floor's pace and the queue fills
    relay = _tls_relay(t, pki, extra=["--max-pending-per-addr", "5000", "--max-registering", "1"])
    hello = _client_hello()
    n = 1200
    socks = []
    t.on_cleanup(lambda: [s.close() for s in socks])
    before = _metrics(relay)
    with _held(relay):
        # live clients (they stay), all queued in the kernel while the relay is held
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", relay.tls_port), timeout=10)
            s.sendall(hello)
            socks.append(s)
    peak, statuses = 0, []
    deadline = time.time() + 60
    while time.time() < deadline:
        m = _metrics(relay)
        peak = max(peak, m[WAITING])
        statuses.append(_healthz(relay))
        if m[PAUSED] > before.get(PAUSED, 0) and m[WAITING] == 0:
            break
        time.sleep(0.05)
    m = _metrics(relay)
    check(m[PAUSED] > before.get(PAUSED, 0),
          "the listener stopped accepting at %d waiting (%s)" % (WAITING_MAX, PAUSED))
    check(peak <= WAITING_MAX, "connections waiting for their handshake: at most %d, seen %d" %
          (WAITING_MAX, peak))
    eq(m[WAITING], 0, "connections still waiting in the end")
    check(all(s == 200 for s in statuses), "the admin listener answered throughout")
    for s in socks:
        s.close()
    socks.clear()
    hs = _Handshakers(t, relay.tls_port, 1)
    wait_for(lambda: hs.finished() == 1, 60, "a handshake after the flood")
    eq((hs.done, hs.errors), (1, []), "handshakes done, errors")
