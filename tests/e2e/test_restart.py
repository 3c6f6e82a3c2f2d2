"""test_restart.py - the registry in --data-dir across relay restarts: running agents come back
by themselves with the same label and TCP port after a SIGTERM restart and after a kill -9;
an offline device is remembered (503 page, its port held and closing clients at once); the grace
period counts from when the device went offline, across restarts, also for a device that was
online when the relay was killed; a second relay on the same data dir is refused; the
generated token is not kept in plain text. Also the relay's lifecycle around it: SIGTERM with
idle browser connections open, SIGHUP with streams open, and an agent moving to its second
relay when the first is killed."""

import http.client
import os
import signal
import socket
import time

from lib import Relay, check, eq, free_port, run_cli, tcp_connect, wait_for, TETHERD, TestFailure


def _restart(t, relay, grace=None, **kw):
    """A new tetherd on the same ports and data dir as relay (which must be stopped)."""
    grace = grace or relay.grace
    r = Relay(t, port=relay.port, admin_port=relay.admin_port,
              tcp_ports=(relay.tcp_low, relay.tcp_high), data_dir=relay.data_dir, grace=grace,
              **kw)
    r.grace = grace
    return r


def _relay(t, grace="60s", **kw):
    r = t.relay(grace=grace, **kw)
    r.grace = grace
    return r


def _echo_ok(port, payload=b"ping through the relay\n"):
    with tcp_connect(port, timeout=20) as s:
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            b = s.recv(65536)
            if not b:
                break
            got += b
    return got == payload


def _closed_at_once(port):
    """True when a client connecting to port is accepted and then closed by the relay (the
    device is offline) rather than refused (nobody holds the port)."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
    except ConnectionRefusedError:
        raise TestFailure("port %d is not held by the relay (connection refused)" % port)
    with s:
        try:
            return s.recv(1) == b""
        except ConnectionResetError:
            return True


def _status(relay, label):
    return relay.request("GET", "/", label=label, timeout=10)[0]


def _come_back_after_restart(t, sig):
    echo = t.tcp_echo()
    relay = _relay(t)
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port, tcp={"echo": echo.port})
    label, port = agent.label, agent.tcp_port("echo")
    check(_echo_ok(port), "echo through the first relay")
    relay.stop(sig)
    relay2 = _restart(t, relay)
    agent.relay = relay2
    agent.wait_ready(timeout=75)  # back-off: about 1 s first, at most about 60 s
    eq(agent.label, label, "label after the relay's restart")
    eq(agent.tcp_port("echo"), port, "tcp port after the relay's restart")
    eq(relay2.request("GET", "/whoami", label=label)[:3:2], (200, b"device"),
       "answer through the restarted relay")
    check(_echo_ok(port), "echo through the restarted relay")
    return relay2, agent


def test_agent_keeps_label_and_port_across_sigterm_restart(t):
    _come_back_after_restart(t, signal.SIGTERM)


def test_agent_keeps_label_and_port_across_kill9_restart(t):
    relay2, agent = _come_back_after_restart(t, signal.SIGKILL)
    # And once more: the registration made after the crash is durable too.
    label, port = agent.label, agent.tcp_port("echo")
    relay2.stop(signal.SIGKILL)
    relay3 = _restart(t, relay2)
    agent.relay = relay3
    agent.wait_ready(timeout=75)
    eq((agent.label, agent.tcp_port("echo")), (label, port), "label and port after a 2nd kill -9")


def test_offline_device_remembered_across_restart(t):
    echo = t.tcp_echo()
    relay = _relay(t)
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port, tcp={"echo": echo.port})
    label, port = agent.label, agent.tcp_port("echo")
    agent.stop()
    wait_for(lambda: _status(relay, label) == 503, 30, "the 503 page before the restart")
    relay.stop(signal.SIGKILL)
    relay2 = _restart(t, relay)
    status, hdrs, body = relay2.request("GET", "/", label=label)
    eq(status, 503, "status of the offline device's label after the restart")
    text = body.decode("utf-8", "replace").lower()
    check("offline" in text and "since" in text,
          "the 503 page after the restart does not say since when: %r" % text[:300])
    check(_closed_at_once(port), "a client of the offline device's port was not closed")
    # The port is not handed to another device while the first is within its grace period.
    other_echo = t.tcp_echo()
    other = t.agent(relay2, http=svc.port, tcp={"echo": other_echo.port})
    check(other.tcp_port("echo") != port, "another device got the remembered port %d" % port)
    check(other.label != label, "another device got the remembered label")
    again = t.agent(relay2, name=agent.name, http=svc.port, tcp={"echo": echo.port})
    eq((again.label, again.tcp_port("echo")), (label, port), "label and port when it is back")
    check(_echo_ok(port), "echo once the device is back")


def test_grace_counts_from_going_offline_across_restart(t):
    grace = 8.0
    relay = _relay(t, grace="8s")
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port)
    label = agent.label
    agent.stop()
    wait_for(lambda: _status(relay, label) == 503, 30, "the 503 page")
    offline_at = time.monotonic()
    relay.stop()
    time.sleep(3)
    relay2 = _restart(t, relay)
    check(time.monotonic() - offline_at < grace - 1.5, "the restart took too long for this test")
    eq(_status(relay2, label), 503, "status within the grace period, after the restart")
    # Expiry at (offline + grace), not (restart + grace): the latter is at least 3 s later.
    deadline = offline_at + grace + 1.5
    while time.monotonic() < deadline and _status(relay2, label) != 404:
        time.sleep(0.2)
    eq(_status(relay2, label), 404, "status %.1f s after the device went offline (grace %gs)" %
       (time.monotonic() - offline_at, grace))
    again = t.agent(relay2, name=agent.name, http=svc.port)
    check(again.label != label, "the device got its expired label back")


def test_expired_while_relay_down(t):
    echo = t.tcp_echo()
    relay = _relay(t, grace="2s")
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port, tcp={"echo": echo.port})
    label = agent.label
    agent.stop()
    relay.stop()
    time.sleep(3)
    relay2 = _restart(t, relay)
    eq(_status(relay2, label), 404, "status of a label whose grace period ran out while the "
       "relay was down")
    again = t.agent(relay2, name=agent.name, http=svc.port, tcp={"echo": echo.port})
    check(again.label != label, "the device got its expired label back")
    check(_echo_ok(again.tcp_port("echo")), "echo on the new port")


def test_online_at_kill9_counts_as_offline_since_then(t):
    # The relay dies with the device online; the device does not come back. After the grace
    # period (counted from the crash, not from the restart) the label is gone.
    relay = _relay(t, grace="3s")
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port)
    label = agent.label
    relay.stop(signal.SIGKILL)
    agent.stop(signal.SIGKILL)
    time.sleep(4)
    relay2 = _restart(t, relay)
    eq(_status(relay2, label), 404, "status of a label whose device was online when the relay "
       "was killed, after the grace period")


def test_online_at_kill9_within_grace_is_remembered(t):
    echo = t.tcp_echo()
    relay = _relay(t, grace="60s")
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port, tcp={"echo": echo.port})
    label, port = agent.label, agent.tcp_port("echo")
    relay.stop(signal.SIGKILL)
    agent.stop(signal.SIGKILL)
    relay2 = _restart(t, relay)
    eq(_status(relay2, label), 503, "status of the device's label after the crash")
    check(_closed_at_once(port), "a client of the device's port was not closed")


def test_second_relay_on_same_data_dir_is_refused(t):
    relay = _relay(t)
    r = run_cli([TETHERD, "--listen", "127.0.0.1:%d" % free_port(),
                 "--admin-listen", "127.0.0.1:%d" % free_port(),
                 "--data-dir", relay.data_dir, "--token", "x" * 20])
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    eq(r.returncode, 1, "exit status of a second tetherd on the same data dir (%r)" % r.stderr)
    eq(len(lines), 1, "stderr lines (%r)" % r.stderr)
    check("in use" in lines[0] and relay.data_dir in lines[0], "the message: %r" % lines[0])
    check(relay.proc.alive(), "the first relay died")


def test_generated_token_is_not_kept_in_plain_text(t):
    data = t.mkdtemp("data")
    relay = Relay(t, token=None, data_dir=data)
    _, line = relay.proc.wait_line(lambda l: "token" in l.lower(), 20, 0, "the generated token")
    token = line.split()[-1]
    relay.token = token
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port)
    eq(relay.request("GET", "/whoami", label=agent.label)[:3:2], (200, b"device"), "answer")
    relay.stop(signal.SIGKILL)
    check(os.path.exists(os.path.join(data, "registry.db")), "no registry.db in the data dir")
    for root, _, files in os.walk(data):
        for fn in files:
            with open(os.path.join(root, fn), "rb") as f:
                check(token.encode() not in f.read(), "the token is in plain text in %s" % fn)
    relay2 = Relay(t, token=None, data_dir=data, port=relay.port, admin_port=relay.admin_port,
                   tcp_ports=(relay.tcp_low, relay.tcp_high))
    relay2.token = token
    agent.relay = relay2
    agent.wait_ready(timeout=75)
    eq(relay2.request("GET", "/whoami", label=agent.label)[:3:2], (200, b"device"),
       "answer after the restart with the generated token")
    check(not any(token in l for l in relay2.proc.lines), "the token was printed again")


def test_sigterm_with_idle_connections_exits_promptly(t):
    echo = t.tcp_echo()
    relay = _relay(t)
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port, tcp={"echo": echo.port})
    # An idle keep-alive browser connection (one request answered, then silence)...
    browser = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=20)
    browser.request("GET", "/whoami", headers={"Host": relay.host(agent.label)})
    r = browser.getresponse()
    eq((r.status, r.read()), (200, b"device"), "answer on the keep-alive connection")
    # ...one that never sent a byte, and an idle TCP stream to the device.
    silent = socket.create_connection(("127.0.0.1", relay.port), timeout=20)
    stream = tcp_connect(agent.tcp_port("echo"))
    stream.sendall(b"x")
    eq(stream.recv(1), b"x", "echo on the TCP stream")
    start = time.monotonic()
    rc = relay.stop(signal.SIGTERM)
    took = time.monotonic() - start
    eq(rc, 0, "tetherd exit status after SIGTERM (stderr: %s)" % relay.proc.stderr_tail(10))
    check(took < 5, "tetherd took %.1f s to exit with idle connections open" % took)
    for s in (browser.sock, silent, stream):
        if s:
            s.settimeout(5)
            try:
                eq(s.recv(1), b"", "a connection left open by the relay after it exited")
            except ConnectionResetError:
                pass
    browser.close()
    silent.close()
    stream.close()


def test_sighup_keeps_open_streams_working(t):
    path = t.path("tokens")
    with open(path, "w") as f:
        f.write("dev-a token-a\n")
    relay = Relay(t, token=None, extra=["--tokens-file", path])
    echo = t.tcp_echo()
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, name="dev-a", token="token-a", http=svc.port, tcp={"echo": echo.port})
    stream = tcp_connect(agent.tcp_port("echo"))
    browser = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=20)

    def exchange(tag):
        stream.sendall(tag)
        got = b""
        while len(got) < len(tag):
            b = stream.recv(65536)
            check(b, "the TCP stream was closed (%r)" % tag)
            got += b
        eq(got, tag, "echo on the TCP stream")
        browser.request("GET", "/whoami", headers={"Host": relay.host(agent.label)})
        r = browser.getresponse()
        eq((r.status, r.read()), (200, b"device"), "answer on the keep-alive connection")

    exchange(b"before the reload\n")
    local_port = browser.sock.getsockname()[1]
    with open(path, "w") as f:
        f.write("dev-a token-a\ndev-b token-b\n")
    relay.proc.send_signal(signal.SIGHUP)
    b = t.agent(relay, name="dev-b", token="token-b", http=svc.port, wait=False)
    b.wait_ready(timeout=75)  # the new token is accepted
    exchange(b"after the reload\n")
    eq(browser.sock.getsockname()[1], local_port, "the browser connection was reopened")
    eq(len([l for l in agent.proc.lines if l.startswith("ready ")]), 2,
       "dev-a's ready lines (it must not have reconnected)")
    stream.close()
    browser.close()


def test_agent_moves_to_second_relay_when_first_is_killed(t):
    first, second = _relay(t), _relay(t)
    svc = t.http_service(big_size=1024)
    agent = t.agent(first, http=svc.port, extra=["--server", second.url])
    eq(first.request("GET", "/whoami", label=agent.label)[:3:2], (200, b"device"),
       "answer through the first relay")
    first.stop(signal.SIGKILL)
    agent.relay = second
    agent.wait_ready(timeout=75)
    eq(second.request("GET", "/whoami", label=agent.label)[:3:2], (200, b"device"),
       "answer through the second relay")

