"""test_relay.py - how tetherd answers on its own: 404 for an unknown label, 503 while a device
is offline within its grace period, 400 for a malformed request, 431 for a huge request head,
/healthz on --admin-listen, and a clean exit on SIGTERM."""

import http.client
import signal
import socket
import threading
import time

from lib import check, device, eq, wait_for, TestFailure


def _is_html(hdrs, body):
    return hdrs.get("content-type", "").startswith("text/html") and b"<" in body


def test_404_for_unknown_label(t):
    relay, svc, agent = device(t, big_size=1024)
    for label in ("nosuchlabel0", "zz" + agent.label):
        status, hdrs, body = relay.request("GET", "/", label=label)
        eq(status, 404, "status for unknown label %r" % label)
        check(_is_html(hdrs, body), "404 is not an HTML page: %r %r" %
              (hdrs.get("content-type"), body[:200]))


def _wait_status(relay, label, want, timeout=30):
    seen = []

    def probe():
        status, hdrs, body = relay.request("GET", "/", label=label, timeout=10)
        seen.append(status)
        return (status, hdrs, body) if status == want else None
    try:
        return wait_for(probe, timeout, "HTTP %d for %s" % (want, label), interval=0.2)
    except TestFailure:
        raise TestFailure("no %d for %s within %ds; statuses seen: %r" %
                          (want, label, timeout, sorted(set(seen))))


def _offline_page_then_back(t, sig):
    relay, svc, agent = device(t, big_size=1024)
    label = agent.label
    eq(relay.request("GET", "/", label=label)[0], 200, "status while online")
    agent.stop(sig)
    status, hdrs, body = _wait_status(relay, label, 503)
    check(_is_html(hdrs, body), "503 is not an HTML page: %r %r" %
          (hdrs.get("content-type"), body[:200]))
    text = body.decode("utf-8", "replace").lower()
    check("offline" in text, "the 503 page does not say the device is offline: %r" % text[:400])
    check("since" in text, "the 503 page does not say since when: %r" % text[:400])
    # Back within the grace period: same name, same label, served again.
    again = t.agent(relay, name=agent.name, http=svc.port)
    eq(again.label, label, "label after reconnecting within the grace period")
    _wait_status(relay, label, 200)


def test_503_while_agent_stopped(t):
    _offline_page_then_back(t, signal.SIGTERM)


def test_503_after_agent_killed(t):
    _offline_page_then_back(t, signal.SIGKILL)


def _raw_exchange(port, data, timeout=30):
    """Sends data (from a thread, ignoring send errors: the relay may stop reading) and returns
    what the relay answered until it closed or sent a whole head."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send():
        try:
            s.sendall(data)
        except OSError:
            pass

    th = threading.Thread(target=send, daemon=True)
    th.start()
    got = b""
    try:
        while b"\r\n\r\n" not in got:
            b = s.recv(65536)
            if not b:
                break
            got += b
    except ConnectionResetError:
        pass
    finally:
        s.close()
    return got


def _status_of(raw):
    line = raw.split(b"\r\n", 1)[0]
    parts = line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise TestFailure("no HTTP status line in the answer: %r" % raw[:200])
    return int(parts[1])


def test_400_for_malformed_requests(t):
    relay, svc, agent = device(t, big_size=1024)
    host = relay.host(agent.label).encode()
    cases = [
        b"THIS IS NOT HTTP\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nthis header has no colon\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: banana\r\n\r\n",
    ]
    for req in cases:
        raw = _raw_exchange(relay.port, req)
        eq(_status_of(raw), 400, "status for %r" % req[:60])
    # The relay still serves afterwards.
    eq(relay.request("GET", "/", label=agent.label)[0], 200, "status after the bad requests")


def test_431_for_huge_request_head(t):
    relay, svc, agent = device(t, big_size=1024)
    host = relay.host(agent.label).encode()
    req = b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n"
    for i in range(64):
        req += b"X-Filler-%d: %s\r\n" % (i, b"a" * 4000)  # 256 KB of head
    req += b"\r\n"
    raw = _raw_exchange(relay.port, req)
    eq(_status_of(raw), 431, "status for a 256 KB request head")
    eq(relay.request("GET", "/", label=agent.label)[0], 200, "status afterwards")


def test_healthz_on_admin_listen(t):
    relay = t.relay()
    c = http.client.HTTPConnection("127.0.0.1", relay.admin_port, timeout=20)
    try:
        c.request("GET", "/healthz")
        r = c.getresponse()
        body = r.read()
    finally:
        c.close()
    eq(r.status, 200, "/healthz status")
    eq(body.strip(), b"ok", "/healthz body")


def test_relay_exits_cleanly_on_sigterm(t):
    relay, svc, agent = device(t, big_size=1024)
    rc = relay.stop(signal.SIGTERM)
    eq(rc, 0, "tetherd exit status after SIGTERM (stderr: %s)" % relay.proc.stderr_tail(10))
    check(agent.proc.alive(), "the agent exited when the relay went away (it must reconnect)")
    time.sleep(0.5)
    check(agent.proc.alive(), "the agent exited when the relay went away (it must reconnect)")
