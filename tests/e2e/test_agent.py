"""test_agent.py - what tether prints (the `ready` lines and the --json events, exactly as
SPEC.md shows them), a refused credential, and reconnection: same label and ports within the
grace period, and the agent coming back by itself after the relay restarts."""

import json
import re
import signal

from lib import Relay, RedirectServer, check, device, eq, free_port, wait_for

LABEL_RE = r"[a-z0-9]{8,}"


def test_ready_lines_format(t):
    echo = t.tcp_echo()
    relay = t.relay()
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port, tcp={"echo": echo.port})
    lines = sorted(s["line"] for s in agent.services.values())
    eq(len(lines), 2, "ready lines for two services")
    http_re = (r"^ready http http://(%s)\.localhost:%d -> 127\.0\.0\.1:%d$" %
               (LABEL_RE, relay.port, svc.port))
    tcp_re = r"^ready tcp echo localhost:(\d+) -> 127\.0\.0\.1:%d$" % echo.port
    check(re.match(http_re, lines[0]), "http ready line %r does not match %r" % (lines[0], http_re))
    m = re.match(tcp_re, lines[1])
    check(m, "tcp ready line %r does not match %r" % (lines[1], tcp_re))
    port = int(m.group(1))
    check(relay.tcp_low <= port <= relay.tcp_high, "tcp port %d outside --tcp-ports" % port)
    check(not re.search(agent.name, lines[0]), "the label is derived from the device's name")
    # stdout holds the ready lines and nothing else.
    eq([l for l in agent.proc.lines if l.strip()], [l for l in agent.proc.lines
                                                    if l.startswith("ready ")], "stdout lines")


def test_json_events_format(t):
    echo = t.tcp_echo()
    relay = t.relay()
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port, tcp={"echo": echo.port}, json_mode=True)
    ready = json.loads(agent.proc.lines[agent.seen - 1])
    eq(ready.get("event"), "ready", "event")
    services = ready.get("services")
    check(isinstance(services, list) and len(services) == 2, "services: %r" % services)
    by_name = {s.get("name"): s for s in services}
    h, e = by_name.get("http"), by_name.get("echo")
    check(h and e, "services named http and echo expected: %r" % services)
    eq(h.get("kind"), "http", "http kind")
    check(isinstance(h.get("url"), str) and
          re.match(r"^http://%s\.localhost:%d$" % (LABEL_RE, relay.port), h["url"]),
          "http url %r" % h.get("url"))
    eq(h.get("target"), "127.0.0.1:%d" % svc.port, "http target")
    eq(e.get("kind"), "tcp", "tcp kind")
    eq(e.get("host"), "localhost", "tcp host")
    check(isinstance(e.get("port"), int) and relay.tcp_low <= e["port"] <= relay.tcp_high,
          "tcp port %r (must be a JSON number in --tcp-ports)" % e.get("port"))
    eq(e.get("target"), "127.0.0.1:%d" % echo.port, "tcp target")
    # The relay goes away: a "disconnected" event with a reason.
    relay.stop()
    i, line = agent.proc.wait_line(lambda l: '"disconnected"' in l, 30, agent.seen,
                                   'a {"event":"disconnected"} line')
    ev = json.loads(line)
    eq(ev.get("event"), "disconnected", "event")
    check(isinstance(ev.get("reason"), str) and ev["reason"], "reason %r" % ev.get("reason"))
    # Every stdout line is one JSON object with an "event".
    for l in agent.proc.lines:
        v = json.loads(l)
        check(isinstance(v, dict) and isinstance(v.get("event"), str), "not an event: %r" % l)


def test_wrong_token_is_reported_and_retried(t):
    relay = t.relay()
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port, json_mode=True, token="not-the-token", wait=False)
    i, line = agent.proc.wait_line(lambda l: '"error"' in l, 30, 0, 'an {"event":"error"} line')
    ev = json.loads(line)
    eq(ev.get("event"), "error", "event")
    check(isinstance(ev.get("message"), str) and ev["message"], "message %r" % ev.get("message"))
    check(agent.proc.alive(), "the agent gave up after a refused credential (it must retry)")
    check(not any('"ready"' in l for l in agent.proc.lines), "registered with a wrong token")


def test_reconnect_keeps_label_and_tcp_port(t):
    echo = t.tcp_echo()
    relay, svc, agent = device(t, tcp={"echo": echo.port})
    label, port = agent.label, agent.tcp_port("echo")
    agent.stop(signal.SIGKILL)
    again = t.agent(relay, name=agent.name, http=svc.port, tcp={"echo": echo.port})
    eq(again.label, label, "label after reconnecting")
    eq(again.tcp_port("echo"), port, "tcp port after reconnecting")
    wait_for(lambda: relay.request("GET", "/whoami", label=label)[:3:2] == (200, b"device"),
             30, "the device URL to answer again")


def test_agent_reconnects_after_relay_restart(t):
    relay, svc, agent = device(t, big_size=1024)
    eq(relay.stop(), 0, "tetherd exit status on SIGTERM")
    relay2 = Relay(t, port=relay.port, admin_port=relay.admin_port,
                   tcp_ports=(relay.tcp_low, relay.tcp_high), data_dir=relay.data_dir)
    agent.relay = relay2
    agent.wait_ready(timeout=75)  # back-off is at most about 60 s
    eq(relay2.request("GET", "/whoami", label=agent.label)[:3:2], (200, b"device"),
       "answer through the new relay")


def test_agent_follows_redirect_in_handshake(t):
    relay = t.relay()
    svc = t.http_service(big_size=1024)
    for status in (301, 302, 307, 308):
        redirect = RedirectServer(t, "ws://127.0.0.1:%d/" % relay.port, status)
        agent = t.agent(relay, name="redirected-%d" % status, http=svc.port,
                        server="ws://127.0.0.1:%d/" % redirect.port)
        check(redirect.hits >= 1, "the agent never asked the redirecting server")
        eq(relay.request("GET", "/whoami", label=agent.label)[:3:2], (200, b"device"),
           "answer after a %d redirect" % status)
        agent.stop()


def test_agent_tries_its_servers_in_turn(t):
    relay = t.relay()
    svc = t.http_service(big_size=1024)
    dead = "ws://127.0.0.1:%d" % free_port()  # nothing listens there
    agent = t.agent(relay, http=svc.port, extra=["--server", relay.url], server=dead)
    eq(relay.request("GET", "/whoami", label=agent.label)[:3:2], (200, b"device"),
       "answer through the second server")


def test_agent_moves_to_next_relay_when_one_shuts_down(t):
    first, second = t.relay(), t.relay()
    svc = t.http_service(big_size=1024)
    agent = t.agent(first, http=svc.port, extra=["--server", second.url])
    eq(first.request("GET", "/whoami", label=agent.label)[:3:2], (200, b"device"),
       "answer through the first relay")
    first.stop()
    agent.relay = second
    agent.wait_ready(timeout=75)
    eq(second.request("GET", "/whoami", label=agent.label)[:3:2], (200, b"device"),
       "answer through the second relay")


def test_agent_notices_a_dead_link(t):
    relay = t.relay()
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port, json_mode=True)
    # The relay freezes with the connection open: only pings can tell.
    relay.proc.send_signal(signal.SIGSTOP)
    try:
        agent.proc.wait_line(lambda l: '"disconnected"' in l, 75, agent.seen,
                             'a {"event":"disconnected"} line (the contract: about 30 s)')
    finally:
        relay.proc.send_signal(signal.SIGCONT)
