"""test_limits.py - bounded resources: a client that stops reading a 64 MiB download neither
delays other requests to the same device nor grows the relay by more than a few windows; 300
concurrent streams through one device all arrive intact; --max-streams caps a device's
concurrent streams (503 page, TCP closed at once); request targets over 8 KiB get 414; a
request head that trickles in is cut off by its total deadline (the default 30 s on the
listener, --head-timeout on a keep-alive connection's later head); a silent browser connection
is closed after --idle-timeout; a WebSocket message over 1 MiB from a registered device closes
it with 1009. Memory is measured (VmRSS), never time: bounds are generous."""

import hashlib
import os
import socket
import threading
import time

from lib import TOKEN, check, eq, pattern, recv_all, tcp_connect, wait_for, TestFailure
from rawdev import WELCOME, RawWs, rss_kib, ws_header, masked
from test_relay import _raw_exchange, _status_of

MiB = 1024 * 1024


def _get(relay, label, path, timeout=60):
    status, hdrs, body = relay.request("GET", path, label=label, timeout=timeout)
    return status, body


def _read_head(sock):
    """Reads a response head (and whatever body bytes came with it) from sock."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = sock.recv(65536)
        if not b:
            raise TestFailure("connection closed before a response head: %r" % buf[:200])
        buf += b
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def _read_response(sock):
    """(status, body) of one Content-Length response on sock."""
    head, body = _read_head(sock)
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(body) < length:
        b = sock.recv(min(65536, length - len(body)))
        if not b:
            raise TestFailure("EOF after %d of %d body bytes" % (len(body), length))
        body += b
    return status, body


def _twenty_requests(relay, label):
    """20 concurrent downloads of 300-320 KB; returns a list of True or an error per request."""
    results = [None] * 20

    def one(i):
        try:
            n = 300000 + 1000 * i
            status, body = _get(relay, label, "/blob?n=%d" % n, timeout=60)
            results[i] = status == 200 and body == pattern(n) or "status %d" % status
        except Exception as e:  # reported by the caller
            results[i] = repr(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(90)
    return results


def test_stalled_64mib_download_holds_back_only_itself(t):
    relay = t.relay()
    svc = t.http_service(big_size=64 * MiB)
    agent = t.agent(relay, http=svc.port)
    label = agent.label
    # Warm up with the same load (pools, first allocations), then measure.
    check(all(_twenty_requests(relay, label)), "warm-up requests failed")
    before = rss_kib(relay.proc.pid)

    stalled = socket.create_connection(("127.0.0.1", relay.port), timeout=30)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    stalled.sendall(b"GET /big HTTP/1.1\r\nHost: %s\r\n\r\n" % relay.host(label).encode())
    head, got = _read_head(stalled)
    check(b" 200 " in head.split(b"\r\n")[0], "stalled download status: %r" % head[:100])
    while len(got) < MiB:  # read a little, then stop reading for good
        got += stalled.recv(65536)
    time.sleep(2)  # let every buffer on the path fill up

    results = _twenty_requests(relay, label)
    check(all(r is True for r in results),
          "some of the 20 requests beside the stalled download failed: %r" % results)
    after = rss_kib(relay.proc.pid)
    growth = after - before
    check(growth < 32 * 1024, "the relay grew by %d KiB while a client stalled a 64 MiB download "
          "(%d -> %d KiB)" % (growth, before, after))
    # The stalled stream still works: read the rest and check it.
    stalled.settimeout(60)
    data = got + recv_exact(stalled, len(svc.big) - len(got))
    eq(hashlib.sha256(data).hexdigest(), svc.big_sha, "SHA-256 of the stalled download")
    stalled.close()


def recv_exact(sock, n):
    out = bytearray()
    while len(out) < n:
        b = sock.recv(min(1 << 20, n - len(out)))
        if not b:
            raise TestFailure("EOF after %d of %d bytes" % (len(out), n))
        out += b
    return bytes(out)


def test_300_concurrent_http_streams_through_one_device(t):
    relay = t.relay()
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port)
    host = relay.host(agent.label).encode()
    n = 300
    barrier = threading.Barrier(n, timeout=120)
    ok = [False] * n
    errors = []

    def one(i):
        try:
            # three client addresses: one address holds at most --max-streams-per-client
            # (128 by default) of a device's streams
            s = socket.create_connection(("127.0.0.1", relay.port), timeout=120,
                                         source_address=("127.0.0.%d" % (1 + i % 3), 0))
            try:
                size = 20000 + 37 * i
                s.sendall(b"GET /blob?n=%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (size, host))
                barrier.wait()  # every request is in: 300 streams are open at once
                status, body = _read_response(s)
                ok[i] = status == 200 and body == pattern(size)
                barrier.wait()  # and stay open until every answer is in
            finally:
                s.close()
        except Exception as e:
            errors.append("stream %d: %r" % (i, e))
            barrier.abort()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(150)
    check(not errors, "%d of %d streams failed: %s" % (len(errors), n, errors[:3]))
    check(all(ok), "%d of %d answers were wrong" % (ok.count(False), n))


def test_300_concurrent_tcp_streams_through_one_device(t):
    relay = t.relay()
    echo = t.tcp_echo()
    agent = t.agent(relay, tcp={"echo": echo.port})
    port = agent.tcp_port("echo")
    n = 300
    barrier = threading.Barrier(n, timeout=120)
    ok = [False] * n
    errors = []

    def one(i):
        try:
            # three client addresses: one address holds at most --max-streams-per-client
            # (128 by default) of a device's streams
            s = socket.create_connection(("127.0.0.1", port), timeout=120,
                                         source_address=("127.0.0.%d" % (1 + i % 3), 0))
            try:
                data = hashlib.sha256(b"%d" % i).digest() * (1000 + i)  # 32-41 KB, unique
                barrier.wait()  # 300 connections open at once
                s.sendall(data)
                got = recv_exact(s, len(data))
                ok[i] = got == data
                barrier.wait()
                s.shutdown(socket.SHUT_WR)
                eq(recv_all(s), b"", "bytes after the echo")
            finally:
                s.close()
        except Exception as e:
            errors.append("stream %d: %r" % (i, e))
            barrier.abort()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(150)
    check(not errors, "%d of %d streams failed: %s" % (len(errors), n, errors[:3]))
    check(all(ok), "%d of %d echoes were wrong" % (ok.count(False), n))
    check(echo.connections >= n, "the device's echo service saw %d connections, want %d" %
          (echo.connections, n))


def test_max_streams_caps_concurrent_streams_per_device(t):
    relay = t.relay(extra=("--max-streams", "4"))
    svc = t.http_service(big_size=1024)
    echo = t.tcp_echo()
    agent = t.agent(relay, http=svc.port, tcp={"echo": echo.port})
    port = agent.tcp_port("echo")
    held = []
    # A device with both kinds of service gives each kind at most 3/4 of its streams (so that
    # TCP clients cannot take the web UI's): 3 TCP clients and one browser connection fill 4.
    for i in range(3):
        s = tcp_connect(port)
        s.sendall(b"hold %d" % i)
        eq(recv_exact(s, len(b"hold %d" % i)), b"hold %d" % i, "echo on held stream %d" % i)
        held.append(s)
    s = socket.create_connection(("127.0.0.1", relay.port), timeout=30)
    s.sendall(b"GET /small?i=4 HTTP/1.1\r\nHost: %s\r\n\r\n" % relay.host(agent.label).encode())
    eq(_read_response(s), (200, b"small 4\n"), "answer on the held browser connection")
    held.append(s)
    status, hdrs, body = relay.request("GET", "/", label=agent.label)
    eq(status, 503, "status of an HTTP request over the device's stream limit")
    check(b"busy" in body.lower(), "the 503 page does not say the device is busy: %r" % body[:300])
    s = tcp_connect(port)
    s.settimeout(20)
    try:
        eq(s.recv(100), b"", "a TCP connection over the stream limit is closed at once")
    except ConnectionResetError:
        pass
    s.close()
    for s in held:
        s.close()
    wait_for(lambda: relay.request("GET", "/", label=agent.label)[0] == 200, 30,
             "HTTP 200 once the held streams are closed")


def test_request_target_over_8kib_gets_414(t):
    relay = t.relay()
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port)
    host = relay.host(agent.label).encode()
    raw = _raw_exchange(relay.port, b"GET /" + b"a" * (9 * 1024) + b" HTTP/1.1\r\nHost: " + host +
                        b"\r\n\r\n")
    eq(_status_of(raw), 414, "status for a 9 KiB request target")
    # Just under the limit is proxied (the device's server answers 404 for the unknown path).
    status = relay.request("GET", "/" + "a" * 8000, label=agent.label)[0]
    eq(status, 404, "status for an 8000-byte request target (the device's own 404)")
    # A later request on a keep-alive connection gets its 414 too.
    s = socket.create_connection(("127.0.0.1", relay.port), timeout=30)
    s.sendall(b"GET /small?i=1 HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    eq(_read_response(s), (200, b"small 1\n"), "first answer on the keep-alive connection")
    s.sendall(b"GET /" + b"b" * (9 * 1024) + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    eq(_read_response(s)[0], 414, "status for a 9 KiB target on a keep-alive connection")
    s.close()


def _trickle_until_closed(port, head, interval, limit):
    """Sends head one byte every interval seconds until the relay closes the connection;
    returns how many bytes went out. Fails if it is still open after limit seconds."""
    s = socket.create_connection(("127.0.0.1", port), timeout=limit)
    s.setblocking(True)
    deadline = time.monotonic() + limit
    sent = 0
    try:
        while time.monotonic() < deadline:
            if sent < len(head):
                try:
                    s.send(head[sent:sent + 1])
                    sent += 1
                except OSError:
                    return sent  # reset: closed
            s.settimeout(interval)
            try:
                b = s.recv(4096)
                if not b:
                    return sent
                raise TestFailure("the relay answered an incomplete head: %r" % b[:200])
            except socket.timeout:
                pass
            except ConnectionResetError:
                return sent
    finally:
        s.close()
    raise TestFailure("a head trickled one byte at a time was still open after %ds (%d bytes "
                      "sent)" % (limit, sent))


def test_trickled_request_head_is_cut_off_by_the_default_deadline(t):
    relay = t.relay()
    # One byte per second: each byte would reset an idle timer; the deadline is total (30 s).
    head = b"GET / HTTP/1.1\r\nHost: x.localhost\r\nX-Slow: " + b"a" * 100
    sent = _trickle_until_closed(relay.port, head, 1.0, 60)
    check(sent < len(head), "the whole trickled head went out before the relay closed")
    eq(relay.request("GET", "/", label="nosuchlabel")[0], 404, "status afterwards")


def test_trickled_head_on_keepalive_connection_is_cut_off(t):
    relay = t.relay(extra=("--head-timeout", "2s"))
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port)
    host = relay.host(agent.label).encode()
    s = socket.create_connection(("127.0.0.1", relay.port), timeout=30)
    s.sendall(b"GET /small?i=7 HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    eq(_read_response(s), (200, b"small 7\n"), "first answer on the keep-alive connection")
    head = b"GET /small?i=8 HTTP/1.1\r\nHost: " + host + b"\r\nX-Slow: " + b"a" * 200
    deadline = time.monotonic() + 30
    closed = False
    for i in range(len(head)):
        try:
            s.send(head[i:i + 1])
        except OSError:
            closed = True
            break
        s.settimeout(0.25)
        try:
            if s.recv(4096) == b"":
                closed = True
                break
        except socket.timeout:
            pass
        except ConnectionResetError:
            closed = True
            break
        if time.monotonic() > deadline:
            break
    s.close()
    check(closed, "a later head trickled on a keep-alive connection was not cut off")
    eq(relay.request("GET", "/small?i=9", label=agent.label)[:1], (200,), "status afterwards")


def test_idle_browser_connection_is_closed(t):
    relay = t.relay(extra=("--idle-timeout", "2s"))
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port)
    host = relay.host(agent.label).encode()
    s = socket.create_connection(("127.0.0.1", relay.port), timeout=30)
    s.sendall(b"GET /small?i=1 HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    eq(_read_response(s), (200, b"small 1\n"), "answer before going idle")
    s.settimeout(30)
    try:
        eq(s.recv(100), b"", "an idle keep-alive connection is closed by the relay")
    except ConnectionResetError:
        pass
    s.close()
    # A connection that keeps talking is not idle.
    s = socket.create_connection(("127.0.0.1", relay.port), timeout=30)
    for i in range(6):
        s.sendall(b"GET /small?i=%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (i, host))
        eq(_read_response(s), (200, b"small %d\n" % i), "answer %d on a busy connection" % i)
        time.sleep(0.5)
    s.close()


def test_websocket_message_over_1mib_closes_1009(t):
    relay = t.relay()
    svc = t.http_service(big_size=2 * MiB)
    other = t.agent(relay, http=svc.port)
    for fragmented in (False, True):
        ws = RawWs(relay.port)
        eq(ws.status, 101, "handshake status")
        typ, _ = ws.register("big-msg-%d" % fragmented, TOKEN)
        eq(typ, WELCOME, "answer to a valid HELLO")
        key = os.urandom(4)
        if fragmented:
            # 3 fragments of 512 KiB: the third takes the message over 1 MiB.
            piece = masked(b"\0" * (512 * 1024), key)
            ws.send(ws_header(0x2, 512 * 1024, fin=False) + key + piece)
            ws.send(ws_header(0x0, 512 * 1024, fin=False) + key + piece)
            ws.send(ws_header(0x0, 512 * 1024, fin=True) + key + piece[:1000])
        else:
            # Announced 2 MiB: refused from its header, nothing of it is buffered.
            ws.send(ws_header(0x2, 2 * MiB) + key + masked(b"\0" * 4096, key))
        code, _ = ws.read_close()
        eq(code, 1009, "close code for a message over 1 MiB (fragmented=%s)" % fragmented)
        ws.close()
    status, hdrs, body = relay.request("GET", "/big", label=other.label)
    eq(status, 200, "status of another device's download afterwards")
    eq(hashlib.sha256(body).hexdigest(), svc.big_sha, "the other device's download is intact")
