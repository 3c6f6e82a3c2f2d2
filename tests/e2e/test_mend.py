"""test_mend.py - small old gaps mended, with real processes.

`tether connect` and a relay's 503 with Retry-After (PROTOCOL.md 2.1: the relay takes nothing
now, come back then): a front of ours on loopback answers the first upgrades 503 with
Retry-After and relays the later ones to a real tetherd (bench/tcprelay.py). Measured: --stdio
waits it out, says so on stderr ("error: ... (retrying in N s)") and reaches the service (exit
0; before: the refusal was final, exit 1); --listen holds only the client the relay asked to
wait while another client is served at once, and says so in --json ({"event":"error",...,
"retry_ms":N}); a Retry-After beyond what one connection waits in all (60 s) is not waited
(refused at once, the line says why); at most 64 connections wait at once (the 65th is refused
at once); SIGTERM while connections wait ends tether connect at once (exit 0).

Webhooks at shutdown, with a real receiver (test_webhooks.py's): tetherd stopped by SIGTERM
sends an "offline" for each device online then (before: none), signed, after the events
already queued; a receiver that holds every request delays the exit by the flush deadline
(1.5 s) at most, and what was not delivered is dropped, counted and logged (count=N).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from lib import (Proc, Relay, TETHER, check, eq, free_port, recv_all, tcp_connect, wait_for)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from tcprelay import TcpRelay  # noqa: E402

BUSY_BODY = b"the relay is busy, retry later\n"


class BusyFront(TcpRelay):
    """In front of a relay: the first `busy` upgrades are answered 503 with Retry-After:
    retry_after (their head read first, then closed); later ones are relayed. .seen counts the
    connections accepted."""

    def __init__(self, t, relay_port, busy=1, retry_after="1"):
        self.busy = busy
        self.retry_after = retry_after
        self.seen = 0
        self.lock2 = threading.Lock()
        super().__init__(relay_port)
        t.on_cleanup(self.close)

    def admit(self, c):
        with self.lock2:
            self.seen += 1
            if self.seen > self.busy:
                return True
        threading.Thread(target=self._refuse, args=(c,), daemon=True).start()
        return False

    def _refuse(self, c):
        try:
            c.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                b = c.recv(4096)
                if not b:
                    break
                head += b
            c.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: %s\r\n"
                      b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
                      b"Connection: close\r\n\r\n%s" %
                      (self.retry_after.encode(), len(BUSY_BODY), BUSY_BODY))
            c.shutdown(socket.SHUT_WR)
            c.recv(4096)
        except OSError:
            pass
        c.close()


def _world(t, busy=1, retry_after="1"):
    echo = t.tcp_echo()
    name = "mend-" + os.urandom(3).hex()
    relay = Relay(t, extra=["--public", name + "/echo"])
    agent = t.agent(relay, name=name, tcp={"echo": echo.port})
    front = BusyFront(t, relay.port, busy=busy, retry_after=retry_after)
    return relay, agent, front


def _argv(front, target, mode, extra=()):
    return [TETHER, "connect", "--server", "ws://127.0.0.1:%d" % front.port, target] + \
        list(mode) + list(extra)


def _stdio(argv, data, timeout=60):
    e = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    return subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, env=e)


def _no_sanitizer_report(text, what):
    check("Sanitizer" not in text and "LeakSanitizer" not in text,
          "%s printed a sanitizer report:\n%s" % (what, text[-3000:]))


def test_connect_stdio_waits_out_retry_after(t):
    """--stdio: the relay's first answer is 503 Retry-After: 1; tether connect says it waits,
    waits at least that long, dials again and carries the bytes (exit 0)."""
    relay, agent, front = _world(t, busy=1, retry_after="1")
    start = time.monotonic()
    r = _stdio(_argv(front, agent.name + "/echo", ["--stdio"]), b"after the wait")
    took = time.monotonic() - start
    err = r.stderr.decode("utf-8", "replace")
    _no_sanitizer_report(err, "tether connect")
    eq((r.returncode, r.stdout), (0, b"after the wait"),
       "exit status and echo of tether connect --stdio after a 503 with Retry-After (stderr: %r)"
       % err)
    lines = [l for l in err.splitlines() if l.startswith("error: ")]
    eq(len(lines), 1, "error lines on stderr (%r)" % err)
    check(lines[0].startswith("error: %s/echo: refused by the relay (HTTP 503): the relay is "
                              "busy, retry later (retrying in " % agent.name) and
          lines[0].endswith(" s)"), "the waiting line: %r" % lines[0])
    check(took >= 1.0, "tether connect dialed again before the Retry-After (%.2f s)" % took)
    eq(front.seen, 2, "upgrades that reached the front (one refused, one relayed)")


def test_connect_retry_after_past_the_cap_is_final(t):
    """A Retry-After longer than one connection waits in all (60 s): refused at once, the line
    says why, exit 1; an HTTP-date Retry-After is not one to wait for either."""
    relay, agent, front = _world(t, busy=10, retry_after="120")
    r = _stdio(_argv(front, agent.name + "/echo", ["--stdio"]), b"x", timeout=30)
    err = r.stderr.decode("utf-8", "replace")
    _no_sanitizer_report(err, "tether connect")
    eq(r.returncode, 1, "exit status of tether connect after a 503 with Retry-After: 120")
    eq(err.strip().splitlines(),
       ["error: %s/echo: refused by the relay (HTTP 503): the relay is busy, retry later "
        "(asked to retry in 120 s; not waiting past 60 s in all)" % agent.name],
       "stderr of tether connect after a 503 with Retry-After: 120")
    eq(front.seen, 1, "upgrades that reached the front")
    front.retry_after = "Wed, 21 Oct 2099 07:28:00 GMT"
    r = _stdio(_argv(front, agent.name + "/echo", ["--stdio"]), b"x", timeout=30)
    err = r.stderr.decode("utf-8", "replace")
    eq((r.returncode, err.strip().splitlines()),
       (1, ["error: %s/echo: refused by the relay (HTTP 503): the relay is busy, retry later" %
            agent.name]), "tether connect after a 503 with an HTTP-date Retry-After")


def test_connect_listen_holds_only_the_client_asked_to_wait(t):
    """--listen --json: the first client's upgrade gets 503 Retry-After: 2; a second client,
    accepted while the first waits, is served at once; then the first is served. The wait is
    an error event with retry_ms."""
    relay, agent, front = _world(t, busy=1, retry_after="2")
    port = free_port()
    p = Proc(t, "tether", _argv(front, agent.name + "/echo", ["--listen", "127.0.0.1:%d" % port],
                                ["--json"]))
    p.wait_line(lambda l: l.startswith('{"event":"listening"'), 30, 0, "the listening line")
    first = tcp_connect(port)
    first.sendall(b"first client")
    first.shutdown(socket.SHUT_WR)
    _, line = p.wait_line(lambda l: '"event":"error"' in l, 30, 0, "the waiting event")
    ev = json.loads(line)
    eq(sorted(ev), ["event", "message", "retry_ms"], "the waiting event's keys")
    check(2000 <= ev["retry_ms"] <= 3000, "retry_ms %r for Retry-After: 2" % ev["retry_ms"])
    eq(ev["message"], "%s/echo: refused by the relay (HTTP 503): the relay is busy, retry later"
       % agent.name, "the waiting event's message")
    eq(front.seen, 1, "upgrades so far")
    second = tcp_connect(port)
    second.sendall(b"second client")
    second.shutdown(socket.SHUT_WR)
    eq(recv_all(second), b"second client", "the second client's echo")
    # the second went through while the first still waited: its upgrade was the front's second
    eq(front.seen, 2, "upgrades when the second client was served (the first still waits)")
    eq(recv_all(first), b"first client", "the first client's echo after its wait")
    eq(front.seen, 3, "upgrades after the first client's wait")
    errors = [l for l in p.lines if '"event":"error"' in l]
    eq(len(errors), 1, "error events (%r)" % errors)
    eq(p.stop(), 0, "exit status of tether connect --listen after SIGTERM")
    _no_sanitizer_report(p.stderr_text(), "tether connect")


def test_connect_listen_waiting_cap_and_stop(t):
    """At most 64 connections wait at once: with the relay asking every upgrade to wait 30 s,
    64 clients wait and the 65th is refused at once (closed, the line says why); SIGTERM then
    ends tether connect at once (exit 0, every waiting client closed, nothing leaked)."""
    relay, agent, front = _world(t, busy=1000, retry_after="30")
    port = free_port()
    p = Proc(t, "tether", _argv(front, agent.name + "/echo", ["--listen", "127.0.0.1:%d" % port],
                                ["--json"]))
    p.wait_line(lambda l: l.startswith('{"event":"listening"'), 30, 0, "the listening line")
    clients = []
    for i in range(64):
        clients.append(tcp_connect(port))
        wait_for(lambda: sum('"retry_ms"' in l for l in p.lines) >= i + 1, 30,
                 "client %d's waiting event" % (i + 1))
    extra = tcp_connect(port)
    eq(recv_all(extra), b"", "the 65th client (closed at once)")
    _, line = p.wait_line(lambda l: '"event":"error"' in l and '"retry_ms"' not in l, 30, 0,
                          "the 65th client's refusal")
    eq(json.loads(line)["message"],
       "%s/echo: refused by the relay (HTTP 503): the relay is busy, retry later (asked to "
       "retry in 30 s; 64 connections wait already)" % agent.name, "the 65th client's refusal")
    eq(front.seen, 65, "upgrades that reached the front")
    start = time.monotonic()
    eq(p.stop(timeout=10), 0, "exit status of tether connect --listen after SIGTERM")
    check(time.monotonic() - start < 10, "tether connect waited out the Retry-After at SIGTERM")
    for c in clients:
        c.settimeout(10)
        eq(recv_all(c), b"", "a waiting client after SIGTERM (closed)")
        c.close()
    _no_sanitizer_report(p.stderr_text(), "tether connect")


# ---------------------------------------------------------------- webhooks at shutdown
# (tetherd --webhook: the devices still online when tetherd stops get their "offline", within a
# bounded flush; a receiver that holds requests delays the exit by that bound at most)

from test_webhooks import SECRET, Receiver, _secret_file, verify, wait_events  # noqa: E402


def test_webhook_offline_for_online_devices_at_shutdown(t):
    """Three devices online, SIGTERM: the receiver gets an "offline" for each (signed, the
    label of its session), then tetherd exits 0."""
    rx = Receiver(t)
    relay = Relay(t, extra=["--webhook", rx.url, "--webhook-secret-file", _secret_file(t)])
    echo = t.tcp_echo()
    agents = [t.agent(relay, name="wh-stop-%d" % i, tcp={"echo": echo.port}) for i in range(3)]
    wait_events(rx, lambda n: n == ["online"] * 3, 30, "three online events")
    eq(relay.stop(), 0, "tetherd's exit status after SIGTERM")
    for a in agents:  # they reconnect to nothing now: stop them
        a.proc.stop()
    evs = verify(rx, SECRET)
    off = sorted((e["device"], e["label"]) for e in evs if e["event"] == "offline")
    on = sorted((e["device"], e["label"]) for e in evs if e["event"] == "online")
    eq([d for d, _ in on], sorted(a.name for a in agents), "the online events")
    eq(off, on, "the offline events at shutdown (device and label of each online one)")
    eq([e["event"] for e in evs], ["online"] * 3 + ["offline"] * 3, "the events in order")
    check("webhook events dropped at shutdown" not in relay.proc.stderr_text(),
          "tetherd dropped events at shutdown: %s" % relay.proc.stderr_tail(10))


def test_webhook_shutdown_flush_is_bounded(t):
    """A receiver that holds every request (60 s): at SIGTERM tetherd gives the queued events
    its flush deadline (1.5 s) and no more, then drops them, logs how many and exits 0, long
    before the receiver answers."""
    rx = Receiver(t, hold=True)
    relay = Relay(t, extra=["--webhook", rx.url, "--webhook-secret-file", _secret_file(t)])
    echo = t.tcp_echo()
    for i in range(3):
        t.agent(relay, name="wh-held-%d" % i, tcp={"echo": echo.port})
    wait_for(lambda: rx.arrived >= 1, 30, "the first request to reach the receiver")
    start = time.monotonic()
    eq(relay.stop(), 0, "tetherd's exit status after SIGTERM")
    took = time.monotonic() - start
    check(took < 10, "tetherd waited %.1f s for a receiver that holds its requests" % took)
    log = relay.proc.stderr_text()
    # 3 online (one in flight, held) and the 3 offline of the shutdown
    check("webhook events dropped at shutdown count=6" in log,
          "the shutdown's drop line: %s" % relay.proc.stderr_tail(10))
    rx.release()
    eq(rx.arrived, 1, "requests that reached the receiver (one at a time per URL)")
