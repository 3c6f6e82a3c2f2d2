"""test_dial_timeout.py - the agent's dial timeout grows after dials that stalled (issue 12, the
reconnect storm): a real tether against a "relay" on loopback that takes the TCP connection and
never answers (as a relay too loaded to finish handshakes in time looks from the device). The
first dial gives up after 15 s (TT_DIAL_TIMEOUT_MS), the next one waits 30 s; a registration
brings it back to 15 s; a quick failure (connection refused) does not grow it. The agent has no
knob to shorten the timeout (and gets none for a test), so the two long tests take about 47 s
and 35 s.

The "relay" is a front of ours on a free port: silent (accepts, holds, reads nothing), or
forwarding every new connection to a real tetherd; switching it to silent also cuts the
connections it forwards, so the registered agent loses its relay and dials the silent front
again."""

import json
import os
import sys
import time

from lib import (TETHER, TOKEN, Proc, Relay, agent_state_dir, check, eq, free_port,
                 tether_has_state_dir)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from tcprelay import TcpRelay  # noqa: E402

FIRST_MS = 15000  # src/agent/dial.h TT_DIAL_TIMEOUT_MS


class Front(TcpRelay):
    """A TCP listener on 127.0.0.1 (bench/tcprelay.py) that holds each new connection silent
    (accepted, never read nor answered), or once forward(port) was called relays it to
    127.0.0.1:port. accepted counts the connections taken."""

    def __init__(self, env):
        super().__init__(0, backlog=16, nodelay=False)
        self.target = None  # None: silent
        self.accepted = 0
        env.on_cleanup(self.close)

    def admit(self, client):
        with self.lock:
            self.accepted += 1
            if self.target is None:
                self.socks.append(client)  # held, never read, never answered
                return False
            self.upstream_port = self.target
        return True

    def silent(self):
        """From now on new connections are held unanswered; the ones relayed so far are cut."""
        with self.lock:
            self.target = None
        self.cut()

    def forward_to(self, port):
        with self.lock:
            self.target = port


def start_tether(t, url, name):
    # one service (never reached here: the relay opens no stream)
    argv = [TETHER, "--server", url, "--name", name, "--token", TOKEN, "--json",
            "--tcp", "echo=127.0.0.1:9"]
    if tether_has_state_dir():
        argv += ["--state-dir", agent_state_dir(t)]
    return Proc(t, "tether", argv)


def next_event(proc, start, timeout, what, pred=lambda ev: True):
    """(index after it, event dict, monotonic time seen) of the next --json event at or after
    start for which pred is true."""
    def match(line):
        try:
            ev = json.loads(line)
        except ValueError:
            return False
        return isinstance(ev, dict) and pred(ev)
    i, line = proc.wait_line(match, timeout, start, what)
    return i + 1, json.loads(line), time.monotonic()


def is_dial_timeout(ev):
    return ev.get("event") == "error" and "timed out connecting to" in ev.get("message", "")


def first_timeout(agent, t0):
    """The silent relay: the first dial gives up after 15 s. Returns (seen, event, time)."""
    seen, ev, t1 = next_event(agent, 0, FIRST_MS / 1000 + 10, "the first dial timeout",
                              is_dial_timeout)
    check(t1 - t0 >= FIRST_MS / 1000 - 1, "the first dial gave up after %.1f s, before 15 s"
          % (t1 - t0))
    return seen, ev, t1


def check_first_message(ev):
    """The error says that the dial waited 15 s with the connection up, and that the next
    attempt waits longer. The JSON event keeps SPEC's two keys."""
    eq(sorted(ev.keys()), ["event", "message"], "the error event's keys (SPEC.md)")
    check("(connected, but no answer in 15 s)" in ev["message"] and
          "the next attempt will wait up to 30 s" in ev["message"],
          "the first timeout's message names 15 s and the next 30 s: %r" % ev["message"])


def test_dial_timeout_grows(t):
    """Two dials against the silent relay: 15 s, then 30 s (about 47 s in all)."""
    front = Front(t)
    t0 = time.monotonic()
    agent = start_tether(t, "ws://127.0.0.1:%d" % front.port, "dial-grow")
    seen, ev1, t1 = first_timeout(agent, t0)
    # The second dial waits 30 s (after a back-off of about 1 s), not 15 s again.
    seen, ev2, t2 = next_event(agent, seen, 30 + 12, "the second dial timeout", is_dial_timeout)
    check(t2 - t1 >= 29.5, "the second dial gave up %.1f s after the first: it should have "
          "waited 30 s (a fixed 15 s timeout abandons the relay's work again)" % (t2 - t1))
    check(front.accepted >= 2, "the silent relay was dialed twice (%d)" % front.accepted)
    check_first_message(ev1)
    check("(connected, but no answer in 30 s)" in ev2["message"] and
          "the next attempt will wait up to 60 s" in ev2["message"],
          "the second timeout's message names 30 s and the next 60 s: %r" % ev2["message"])


def test_dial_timeout_resets_after_registration(t):
    """A stalled dial (15 s; the next would wait 30 s), then the relay answers and the device
    registers, then the relay goes silent and cuts the connection: the next stalled dial gives
    up after 15 s again (about 35 s in all)."""
    relay = Relay(t)
    front = Front(t)
    t0 = time.monotonic()
    agent = start_tether(t, "ws://127.0.0.1:%d" % front.port, "dial-reset")
    seen, ev, _ = first_timeout(agent, t0)
    check_first_message(ev)
    front.forward_to(relay.port)
    seen, _, _ = next_event(agent, seen, 30, "a ready event after the relay answers",
                            lambda ev: ev.get("event") == "ready")
    front.silent()
    seen, _, _ = next_event(agent, seen, 40, "a disconnected event",
                            lambda ev: ev.get("event") == "disconnected")
    seen, ev, _ = next_event(agent, seen, 10 + FIRST_MS / 1000 + 10,
                             "a dial timeout after the registration", is_dial_timeout)
    check("(connected, but no answer in 15 s)" in ev["message"] and
          "the next attempt will wait up to 30 s" in ev["message"],
          "after a registration the timeout is 15 s again: %r" % ev["message"])


def test_quick_failure_does_not_grow(t):
    """Connection refused: an error at once, no growth mentioned, the same 15 s later (the
    message of a quick failure never speaks of a next timeout)."""
    port = free_port()  # nothing listens there
    agent = start_tether(t, "ws://127.0.0.1:%d" % port, "dial-refused")
    seen = 0
    for n in range(2):
        seen, ev, _ = next_event(agent, seen, 20, "error event %d (refused)" % (n + 1),
                                 lambda ev: ev.get("event") == "error")
        check("refused" in ev.get("message", "") and "will wait up to" not in ev["message"],
              "a refused dial is a quick failure, not a stall: %r" % ev.get("message"))
