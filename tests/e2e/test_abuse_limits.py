"""test_abuse_limits.py - attacks on the relay's connection and stream limits (issue 9, items 2
and 3), each performed against the real tetherd and tether with bounded loops:
- 2,000 idle connections that never finish their request head, or upgrade to WebSocket and never
  send HELLO, against a tetherd limited to 1,024 descriptors: from one address (held to
  --max-pending-per-addr), from forty (held to --max-pending, oldest shed), and past the
  descriptor reserve (no caps but the reserve): a browser GET and a device registration from
  another address still succeed, and the relay counts and logs what it shed;
- 1,100 idle TCP clients on a device's TCP port from one address: the device's URL and a TCP
  client from another address still get through; idle TCP clients are closed after
  --tcp-idle-timeout, and the device hears of it;
- 1,030 POSTs whose bodies never finish, from one address: the device's URL answers another
  address; bodies trickled below --body-min-rate are cut at their deadline with a 408, while an
  upload above the rate passes however long it takes;
- a device with HTTP and TCP services: its TCP clients cannot take the streams its web UI needs;
- the new flags are in --help and their bad values are usage errors.
Every socket is on loopback; every loop is bounded in count and time.
"""

import base64
import http.client
import os
import socket
import threading
import time

import rawdev
from lib import (TETHERD, TestFailure, check, eq, metrics_from, raise_own_nofile, relay_with_nofile,
                 run_cli, tcp_connect, wait_for)

OTHER = "127.0.0.2"  # the address that must still be served
FLOOD_HEAD = b"GET / HTTP/1.1\r\nHost: flood.localhost\r\nX-Slow: "


# ---------------------------------------------------------------- helpers

def ws_upgrade(port):
    key = base64.b64encode(os.urandom(16)).decode()
    return ("GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (port, key)).encode()


def open_flood(port, n, sources, ws_every=4, deadline=60):
    """Opens n connections to 127.0.0.1:port, round-robin over the source addresses: every
    ws_every-th sends a WebSocket upgrade and never a HELLO, the others a request head they never
    finish. Returns the sockets (the relay may have closed some)."""
    socks = []
    end = time.monotonic() + deadline
    for i in range(n):
        if time.monotonic() > end:
            break
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5,
                                         source_address=(sources[i % len(sources)], 0))
        except OSError:
            continue
        socks.append(s)
        try:
            s.sendall(ws_upgrade(port) if ws_every and i % ws_every == 0 else FLOOD_HEAD)
        except OSError:
            pass  # refused at once
    return socks


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def get_from(relay, label, path="/small?i=1", src=OTHER, timeout=20):
    """GET on a fresh connection from source address src; returns (status, body)."""
    c = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=timeout,
                                   source_address=(src, 0))
    try:
        c.request("GET", path, headers={"Host": relay.host(label)})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def settle(relay, pred, timeout=20):
    """Polls /metrics until pred(metrics) holds or timeout passes (no failure: the checks that
    follow say what went wrong; an old relay has none of these metrics)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred(metrics_from(relay)):
                return
        except (OSError, http.client.HTTPException, TestFailure):
            pass
        time.sleep(0.2)


def register_from(relay, name, src=OTHER, timeout=20):
    """Registers device name over a raw WebSocket from source address src (the relay's fleet
    token, one HTTP service). Returns the answer frame's type (rawdev.WELCOME or REFUSE)."""
    s = socket.create_connection(("127.0.0.1", relay.port), timeout=timeout,
                                 source_address=(src, 0))
    try:
        s.sendall(ws_upgrade(relay.port))
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = s.recv(4096)
            if not b:
                raise TestFailure("the relay closed a device handshake from %s: %r" % (src, buf))
            buf += b
        head, _, rest = buf.partition(b"\r\n\r\n")
        eq(head.split(b" ")[1], b"101", "status of a device handshake from %s" % src)
        w = rawdev.RawWs.__new__(rawdev.RawWs)  # the frame reader over our own socket
        w.sock, w.pending, w.tbuf = s, rest, b""
        typ, _ = w.register(name, relay.token)
        return typ
    finally:
        s.close()


def check_served(relay, label, what):
    """A browser GET and a device registration from OTHER both succeed."""
    try:
        status, body = get_from(relay, label)
    except (OSError, http.client.HTTPException) as e:
        raise TestFailure("%s: a browser GET from %s failed: %r" % (what, OTHER, e))
    eq((status, body), (200, b"small 1\n"), "%s: answer to a browser GET from %s" % (what, OTHER))
    try:
        typ = register_from(relay, "fresh-" + os.urandom(3).hex())
    except (OSError, EOFError) as e:
        raise TestFailure("%s: a device registration from %s failed: %r" % (what, OTHER, e))
    eq(typ, rawdev.WELCOME, "%s: answer to a device HELLO from %s" % (what, OTHER))


# ---------------------------------------------------------------- unauthenticated connections

def _flood_world(t, extra=()):
    """A relay with 1,024 descriptors (request heads allowed 10 minutes, so the flood stays),
    and an online device with an HTTP service."""
    raise_own_nofile(4096)
    relay = relay_with_nofile(t, 1024, extra=("--head-timeout", "10m") + tuple(extra))
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port)
    return relay, agent


def test_idle_flood_from_one_address_does_not_lock_others_out(t):
    relay, agent = _flood_world(t)
    # 2,000 idle connections from 127.0.0.1 (one in four a WebSocket upgrade without HELLO):
    # twice the relay's descriptors.
    socks = open_flood(relay.port, 2000, ["127.0.0.1"])
    try:
        settle(relay, lambda m: m.get('tether_connections_shed_total{reason="per_addr"}', 0) +
               m.get("tether_pending_connections", 0) >= len(socks))
        check_served(relay, agent.label, "under 2,000 idle connections from 127.0.0.1")
        m = metrics_from(relay)
        pending = m.get("tether_pending_connections", -1)
        # (the /metrics request itself is one of them)
        check(0 < pending <= 128 + 1, "unauthenticated connections held: %d (want at most 128, "
              "the default --max-pending-per-addr, from 127.0.0.1)" % pending)
        shed = m.get('tether_connections_shed_total{reason="per_addr"}', 0)
        check(shed >= len(socks) - 128, "connections refused over the per-address cap: %d of %d"
              % (shed, len(socks)))
        check("shedding unauthenticated connections" in relay.proc.stderr_text(),
              "the relay did not log the shedding")
    finally:
        close_all(socks)
    # Once the flood is gone, 127.0.0.1 is served again.
    wait_for(lambda: relay.request("GET", "/small?i=2", label=agent.label)[:1] == (200,), 30,
             "a GET from 127.0.0.1 after the flood")


def test_idle_flood_from_forty_addresses_sheds_the_oldest(t):
    relay, agent = _flood_world(t)
    sources = ["127.0.1.%d" % i for i in range(1, 41)]  # 50 each: under the per-address cap
    socks = open_flood(relay.port, 2000, sources)
    try:
        settle(relay, lambda m: m.get('tether_connections_shed_total{reason="total"}', 0) +
               m.get("tether_pending_connections", 0) >= len(socks))
        check_served(relay, agent.label, "under 2,000 idle connections from 40 addresses")
        m = metrics_from(relay)
        pending = m.get("tether_pending_connections", -1)
        limit = m.get("tether_pending_connections_max", -1)
        eq(limit, 512, "default --max-pending with 1,024 descriptors")
        check(0 < pending <= limit, "unauthenticated connections held: %d (cap %d)" %
              (pending, limit))
        shed = m.get('tether_connections_shed_total{reason="total"}', 0)
        check(shed >= len(socks) - limit, "oldest connections shed over --max-pending: %d of %d"
              % (shed, len(socks)))
        # Oldest first: the first connections of the flood are closed, the last ones are not.
        first, last = socks[1], socks[-1]  # both plain heads
        first.settimeout(10)
        try:
            eq(first.recv(100), b"", "the flood's first connection (shed)")
        except ConnectionResetError:
            pass
        last.setblocking(False)
        try:
            got = last.recv(100)
            raise TestFailure("the flood's last connection was answered or closed: %r" % got)
        except BlockingIOError:
            pass
    finally:
        close_all(socks)


def test_idle_flood_past_the_descriptor_reserve_sheds_the_oldest(t):
    # No cap but the descriptors: the reserve is what keeps the relay answering.
    relay, agent = _flood_world(t, ("--max-pending", "100000", "--max-pending-per-addr", "0"))
    socks = open_flood(relay.port, 2000, ["127.0.0.1"])
    try:
        settle(relay, lambda m: m.get('tether_connections_shed_total{reason="fds"}', 0) +
               m.get("tether_pending_connections", 0) >= len(socks))
        check_served(relay, agent.label, "under 2,000 idle connections and 1,024 descriptors")
        m = metrics_from(relay)
        shed = m.get('tether_connections_shed_total{reason="fds"}', 0)
        check(shed >= 900, "connections shed for descriptors: %d (want most of the %d beyond "
              "1,024 - 64 reserved)" % (shed, len(socks)))
        pending = m.get("tether_pending_connections", -1)
        check(0 < pending < 1024 - 64, "unauthenticated connections held: %d" % pending)
    finally:
        close_all(socks)


# ---------------------------------------------------------------- device streams

def test_idle_tcp_flood_from_one_address_leaves_the_device_reachable(t):
    raise_own_nofile(4096)
    relay = t.relay()
    svc = t.http_service(big_size=1024)
    echo = t.tcp_echo()
    agent = t.agent(relay, http=svc.port, tcp={"echo": echo.port})
    port = agent.tcp_port("echo")
    socks = []
    try:
        # 1,100 TCP clients from 127.0.0.1 that connect and say nothing.
        for i in range(1100):
            try:
                socks.append(tcp_connect(port, timeout=5))
            except OSError:
                pass
        settle(relay, lambda m: m.get('tether_streams_refused_total{reason="client"}', 0) >=
               len(socks) - 128)
        status, body = get_from(relay, agent.label)
        eq((status, body[:60]), (200, b"small 1\n"),
           "the device's URL from %s under 1,100 idle TCP clients from 127.0.0.1" % OTHER)
        s = socket.create_connection(("127.0.0.1", port), timeout=20, source_address=(OTHER, 0))
        try:
            s.sendall(b"ping from another address")
            got = b""
            while len(got) < 25:
                b = s.recv(100)
                if not b:
                    break
                got += b
            eq(got, b"ping from another address", "echo for a TCP client from %s" % OTHER)
        finally:
            s.close()
        m = metrics_from(relay)
        refused = m.get('tether_streams_refused_total{reason="client"}', 0)
        check(refused >= len(socks) - 128, "TCP clients refused over the per-client share: %d of "
              "%d" % (refused, len(socks)))
    finally:
        close_all(socks)


def test_idle_tcp_clients_are_closed_after_the_tcp_idle_timeout(t):
    relay = t.relay(extra=("--tcp-idle-timeout", "2s"))
    echo = t.tcp_echo()
    agent = t.agent(relay, tcp={"echo": echo.port})
    port = agent.tcp_port("echo")
    idle = []
    for i in range(5):
        s = tcp_connect(port)
        s.sendall(b"hello %d" % i)
        eq(s.recv(100), b"hello %d" % i, "echo on TCP client %d" % i)
        idle.append(s)
    busy = tcp_connect(port)
    closed = [False] * len(idle)
    end = time.monotonic() + 20
    n = 0
    # The busy client talks every 0.5 s for 5 s (2.5 idle timeouts): it stays open.
    while time.monotonic() < end and (n < 10 or not all(closed)):
        if n < 10:
            busy.sendall(b"tick %d" % n)
            eq(busy.recv(100), b"tick %d" % n, "echo %d on the busy TCP client" % n)
            n += 1
        for i, s in enumerate(idle):
            if closed[i]:
                continue
            s.setblocking(False)
            try:
                closed[i] = s.recv(100) == b""
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed[i] = True
        time.sleep(0.5)
    check(all(closed), "idle TCP clients closed after --tcp-idle-timeout 2s: %d of %d" %
          (closed.count(True), len(closed)))
    eq(n, 10, "echoes on the busy TCP client")
    busy.close()
    for s in idle:
        s.close()
    # The device heard of it: its local connections were closed too.
    wait_for(lambda: echo.eofs >= len(idle), 20, "the device to close its local connections")
    m = metrics_from(relay, "127.0.0.1")
    check(m.get('tether_timeouts_total{kind="tcp_idle"}', 0) >= len(idle),
          "tcp_idle timeouts counted: %r" % m.get('tether_timeouts_total{kind="tcp_idle"}'))


def test_tcp_clients_cannot_take_the_web_ui_streams(t):
    relay = t.relay(extra=("--max-streams", "8"))
    svc = t.http_service(big_size=1024)
    echo = t.tcp_echo()
    agent = t.agent(relay, http=svc.port, tcp={"echo": echo.port})
    port = agent.tcp_port("echo")
    held, refused = [], 0
    for i in range(8):
        s = tcp_connect(port, timeout=10)
        s.sendall(b"hold %d" % i)
        try:
            got = s.recv(100)
        except ConnectionResetError:
            got = b""
        if got == b"hold %d" % i:
            held.append(s)
        else:
            refused += 1
            s.close()
    eq(len(held), 6, "TCP clients served with --max-streams 8 (3/4 of it for TCP)")
    eq(relay.request("GET", "/small?i=3", label=agent.label)[:1], (200,),
       "the web UI's status while TCP clients hold their whole share")
    for s in held:
        s.close()


def test_trickled_post_flood_from_one_address_leaves_the_device_reachable(t):
    raise_own_nofile(4096)
    relay = t.relay()
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port)
    host = relay.host(agent.label).encode()
    socks = []
    try:
        # 1,030 uploads from 127.0.0.1, each stopped after its first body byte.
        for i in range(1030):
            try:
                s = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
            except OSError:
                continue
            socks.append(s)
            try:
                s.sendall(b"POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: 1000000\r\n\r\nx"
                          % host)
            except OSError:
                pass
        # (those that arrive faster than the relay reads their heads are refused before that,
        # over the per-address cap on unauthenticated connections)
        settle(relay, lambda m: m.get('tether_streams_refused_total{reason="client"}', 0) +
               m.get('tether_connections_shed_total{reason="per_addr"}', 0) >= len(socks) - 128)
        status, body = get_from(relay, agent.label)
        eq((status, body[:60]), (200, b"small 1\n"),
           "the device's URL from %s under 1,030 stalled uploads from 127.0.0.1" % OTHER)
        m = metrics_from(relay)
        eq(m.get("tether_streams_total"), 128 + 1, "streams opened to the device (the uploads "
           "up to --max-streams-per-client, and the GET)")
    finally:
        close_all(socks)


def _read_status(s, timeout):
    """The status of the answer on s, or None when it closes or timeout passes without one."""
    s.settimeout(timeout)
    buf = b""
    try:
        while b"\r\n" not in buf:
            b = s.recv(4096)
            if not b:
                return None
            buf += b
    except (socket.timeout, ConnectionResetError):
        return None
    return int(buf.split(b" ")[1])


def test_trickled_bodies_are_cut_at_the_body_deadline(t):
    relay = t.relay(extra=("--body-timeout", "2s", "--body-min-rate", "1000"))
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port)
    host = relay.host(agent.label).encode()
    slow = []
    for i in range(20):
        s = socket.create_connection(("127.0.0.1", relay.port), timeout=30)
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: 100000\r\n\r\n" % host)
        slow.append(s)
    # An honest upload of 40 KiB at about 10 KiB/s: longer than --body-timeout, faster than
    # --body-min-rate; it must pass.
    honest = {}

    def upload():
        c = socket.create_connection(("127.0.0.1", relay.port), timeout=30)
        try:
            c.sendall(b"POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: 40960\r\n\r\n" % host)
            for _ in range(10):
                c.sendall(os.urandom(4096))
                time.sleep(0.4)
            honest["status"] = _read_status(c, 20)
        finally:
            c.close()

    th = threading.Thread(target=upload)
    th.start()
    # The slow ones trickle a byte every 0.5 s (2 B/s) until the relay answers, at most 20 s.
    status = [None] * len(slow)
    done = [False] * len(slow)
    end = time.monotonic() + 20
    while time.monotonic() < end and not all(done):
        for i, s in enumerate(slow):
            if done[i]:
                continue
            try:
                s.send(b"x")
            except OSError:
                done[i] = True
                continue
            s.setblocking(False)
            try:
                b = s.recv(4096)
                done[i] = True
                status[i] = int(b.split(b" ")[1]) if b.startswith(b"HTTP/1.1 ") else None
            except BlockingIOError:
                pass
            except ConnectionResetError:
                done[i] = True
            s.setblocking(True)
        # The device answers another address meanwhile.
        if not any(done):
            eq(get_from(relay, agent.label)[0], 200, "the device's URL during the trickle")
        time.sleep(0.5)
    th.join(40)
    for s in slow:
        s.close()
    check(all(done), "trickled uploads cut off within 20 s: %d of %d" % (done.count(True),
                                                                      len(done)))
    eq(status, [408] * len(slow), "answers to the trickled uploads")
    eq(honest.get("status"), 200, "status of an upload slower than --body-timeout but faster "
       "than --body-min-rate")
    m = metrics_from(relay, "127.0.0.1")
    check(m.get('tether_timeouts_total{kind="body"}', 0) >= len(slow),
          "body timeouts counted: %r" % m.get('tether_timeouts_total{kind="body"}'))


def test_limit_flags_in_help_and_checked(t):
    r = run_cli([TETHERD, "--help"])
    eq(r.returncode, 0, "exit status of tetherd --help")
    for flag in ("--max-pending", "--max-pending-per-addr", "--max-streams-per-client",
                 "--body-timeout", "--body-min-rate", "--tcp-idle-timeout"):
        check(flag + " " in r.stdout, "tetherd --help does not describe %s" % flag)
    for flag, bad in (("--max-pending", "0"), ("--max-pending-per-addr", "-1"),
                      ("--max-streams-per-client", "65536"), ("--body-timeout", "2h"),
                      ("--body-min-rate", "fast"), ("--tcp-idle-timeout", "8d")):
        r = run_cli([TETHERD, flag, bad])
        eq(r.returncode, 2, "exit status of tetherd %s %s" % (flag, bad))
        lines = r.stderr.strip().splitlines()
        check(len(lines) == 1 and flag in lines[0] and "unknown option" not in lines[0],
              "tetherd %s %s: want one line naming the flag, got %r" % (flag, bad, r.stderr))
