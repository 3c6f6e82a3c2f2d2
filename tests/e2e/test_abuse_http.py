"""test_abuse_http.py - request smuggling and header forgery through the relay's HTTP proxying
(issue 9, items 4, 5 and 9), performed with a raw socket client against a device web server
that records exactly the bytes it receives and reads them loosely, as small embedded servers
do (a bare LF ends a line, a chunk-size line is read up to its LF, whatever follows chunk data
up to the next LF is skipped):

- an Upgrade the device ignores must not turn the browser connection into a raw pipe: the
  request pipelined after it reaches the device rewritten (or is refused), never as written;
- chunked bodies that a loose reader splits into two requests reach it as one, re-framed;
  conflicting or unknown framing, obs-fold, a tab in the target and an absolute-form target
  naming another host are refused;
- client identity headers (Forwarded, X-Real-IP, ...) are replaced by the relay's own;
- a valid request pipelined before a refused one is answered first.
A real WebSocket upgrade still switches, and pipelining past the relay's cap still works."""

import socket
import threading
import time
import urllib.request

from lib import check, eq, TestFailure


# ---------------------------------------------------------------- the recording device


class LooseDevice:
    """A device web server on 127.0.0.1 that records every byte it receives (self.raw, one
    bytearray per connection) and every request it reads (self.requests: dicts with method,
    target, headers as (lowercase name, value) pairs, body), reading them loosely (see the
    module docstring). It answers each request 200 with the body "seen METHOD TARGET\\n" (no
    body for HEAD); with accept_upgrade, an Upgrade request gets 101 and every later byte of
    that connection is echoed."""

    def __init__(self, env, accept_upgrade=False):
        self.accept_upgrade = accept_upgrade
        self.raw = []
        self.requests = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()
        env.on_cleanup(self.close)

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        rec = bytearray()
        with self.lock:
            self.raw.append(rec)
        r = _Reader(c, rec)
        try:
            while True:
                line = r.line()
                if line.strip() == b"":
                    continue
                parts = line.split()
                method, target = parts[0], parts[1] if len(parts) > 1 else b""
                headers = []
                while True:
                    h = r.line()
                    if h.strip() == b"":
                        break
                    name, _, value = h.partition(b":")
                    headers.append((name.strip().lower().decode("latin-1"),
                                    value.strip().decode("latin-1")))
                hd = {}
                for k, v in headers:
                    hd.setdefault(k, v)
                body = b""
                if "chunked" in hd.get("transfer-encoding", "").lower():
                    while True:
                        size = int(r.line().split(b";")[0].strip() or b"x", 16)
                        if size == 0:
                            while r.line().strip() != b"":
                                pass
                            break
                        body += r.read(size)
                        r.line()  # loosely: skip up to the next LF
                elif "content-length" in hd:
                    body = r.read(int(hd["content-length"]))
                req = {"method": method.decode("latin-1"), "target": target.decode("latin-1"),
                       "headers": headers, "body": body}
                with self.lock:
                    self.requests.append(req)
                if self.accept_upgrade and "upgrade" in hd:
                    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: " +
                              hd["upgrade"].encode() + b"\r\nConnection: Upgrade\r\n\r\n")
                    if r.buf:
                        c.sendall(bytes(r.buf))
                    while True:
                        data = c.recv(65536)
                        if not data:
                            return
                        rec += data
                        c.sendall(data)
                text = ("seen %s %s\n" % (req["method"], req["target"])).encode("latin-1")
                head = ("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
                        % len(text)).encode()
                c.sendall(head if method == b"HEAD" else head + text)
        except (EOFError, ValueError, OSError, IndexError):
            pass
        finally:
            c.close()

    def seen(self):
        with self.lock:
            return list(self.requests)

    def all_bytes(self):
        with self.lock:
            return b"".join(bytes(x) for x in self.raw)


class _Reader:
    def __init__(self, c, rec):
        self.c = c
        self.rec = rec
        self.buf = bytearray()

    def _more(self):
        data = self.c.recv(65536)
        if not data:
            raise EOFError
        self.rec += data
        self.buf += data

    def line(self):
        while b"\n" not in self.buf:
            if len(self.buf) > 65536:
                raise ValueError("line too long")
            self._more()
        i = self.buf.index(b"\n") + 1
        out = bytes(self.buf[:i])
        del self.buf[:i]
        return out

    def read(self, n):
        while len(self.buf) < n:
            self._more()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


# ---------------------------------------------------------------- the raw client


def _world(t, accept_upgrade=False):
    relay = t.relay()
    dev = LooseDevice(t, accept_upgrade=accept_upgrade)
    agent = t.agent(relay, http=dev.port)
    check(agent.label, "no http service in %r" % agent.services)
    return relay, dev, agent.label, relay.host(agent.label)


def _connect(relay):
    return socket.create_connection(("127.0.0.1", relay.port), timeout=15)


def _read_until_close(s, limit=1 << 20):
    out = bytearray()
    try:
        while len(out) < limit:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except socket.timeout:
        raise TestFailure("the relay neither answered nor closed within 15 s; got %r"
                          % bytes(out[:400]))
    return bytes(out)


def _exchange(relay, data):
    """Sends data on a fresh connection, half-closes nothing, reads until the relay closes."""
    s = _connect(relay)
    try:
        s.sendall(data)
        return _read_until_close(s)
    finally:
        s.close()


def _responses(data):
    """Splits what the relay sent into (status, headers dict, body) tuples (Content-Length
    framing only: the device and the relay's pages use nothing else)."""
    out = []
    rest = data
    while rest:
        head, sep, rest = rest.partition(b"\r\n\r\n")
        if not sep:
            raise TestFailure("an incomplete response in %r" % data[:600])
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(b":")
            hdrs[k.strip().lower().decode()] = v.strip().decode("latin-1")
        n = int(hdrs.get("content-length", "0"))
        out.append((status, hdrs, rest[:n]))
        rest = rest[n:]
    return out


def _read_responses(s, n, head_only=()):
    """Reads exactly n responses from s (indexes in head_only answer HEAD: no body)."""
    buf = b""
    out = []
    deadline = time.monotonic() + 15
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            if time.monotonic() > deadline:
                raise TestFailure("got %d of %d responses: %r" % (len(out), n, buf[:300]))
            b = s.recv(65536)
            if not b:
                raise TestFailure("the relay closed after %d of %d responses" % (len(out), n))
            buf += b
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(b":")
            hdrs[k.strip().lower().decode()] = v.strip().decode("latin-1")
        blen = 0 if len(out) in head_only else int(hdrs.get("content-length", "0"))
        while len(buf) < blen:
            b = s.recv(65536)
            if not b:
                raise TestFailure("the relay closed inside response %d" % len(out))
            buf += b
        out.append((int(lines[0].split()[1]), hdrs, buf[:blen]))
        buf = buf[blen:]
    return out, buf


def _hdrs(req):
    """A request's headers as {lowercase name: [values]}."""
    h = {}
    for k, v in req["headers"]:
        h.setdefault(k, []).append(v)
    return h


def _metrics(relay):
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            "http://127.0.0.1:%d/metrics" % relay.admin_port, timeout=10) as r:
        return r.read().decode()


def _metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise TestFailure("no %s in /metrics" % name)


def _wait_requests(dev, n, what):
    deadline = time.monotonic() + 10
    while len(dev.seen()) < n:
        if time.monotonic() > deadline:
            raise TestFailure("the device got %d requests, want %d (%s): %r"
                              % (len(dev.seen()), n, what, dev.seen()))
        time.sleep(0.02)


# ---------------------------------------------------------------- item 4: Upgrade


UPGRADE = ("GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def test_ignored_upgrade_keeps_the_connection_http(t):
    relay, dev, label, host = _world(t)
    # The device answers the Upgrade with a plain 200; the request pipelined behind it names
    # another Host and forges X-Forwarded-*. It must never reach the device as written.
    smuggled = ("GET /admin HTTP/1.1\r\nHost: victim.localhost:%d\r\nX-Forwarded-For: 6.6.6.6\r\n"
                "X-Forwarded-Host: victim.localhost\r\nX-Forwarded-Proto: https\r\n\r\n"
                % relay.port)
    got = _exchange(relay, (UPGRADE % host + smuggled).encode())
    rs = _responses(got)
    eq([r[0] for r in rs], [200, 400], "statuses the browser got (the device's answer to the "
       "Upgrade, then the relay's page for the other Host): %r" % got[:400])
    eq(rs[0][2], b"seen GET /ws\n", "the device's answer")
    reqs = dev.seen()
    eq([r["target"] for r in reqs], ["/ws"], "requests the device read")
    check(b"victim" not in dev.all_bytes() and b"6.6.6.6" not in dev.all_bytes(),
          "the smuggled request reached the device: %r" % dev.all_bytes())

    # The same Host this time: the second request arrives, rewritten by the relay.
    forged = ("GET /second HTTP/1.1\r\nHost: %s\r\nX-Forwarded-Host: evil.example\r\n"
              "X-Forwarded-Proto: https\r\nX-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n\r\n"
              % host)
    s = _connect(relay)
    try:
        s.sendall((UPGRADE % host + forged).encode())
        rs, _ = _read_responses(s, 2)
    finally:
        s.close()
    eq([(r[0], r[2]) for r in rs], [(200, b"seen GET /ws\n"), (200, b"seen GET /second\n")],
       "answers on the connection")
    second = _hdrs(dev.seen()[-1])
    eq(dev.seen()[-1]["target"], "/second", "the device's last request")
    eq(second.get("x-forwarded-host"), [host], "X-Forwarded-Host of the second request")
    eq(second.get("x-forwarded-proto"), ["http"], "X-Forwarded-Proto of the second request")
    eq(second.get("x-real-ip"), ["127.0.0.1"], "X-Real-IP of the second request")
    check(b"evil.example" not in dev.all_bytes() and b"6.6.6.6" not in dev.all_bytes(),
          "forged headers reached the device: %r" % dev.all_bytes()[-600:])
    check(_metric(_metrics(relay), "tether_http_upgrades_declined_total") >= 2,
          "tether_http_upgrades_declined_total did not count the declined upgrades")


def test_accepted_upgrade_switches_to_raw_bytes(t):
    relay, dev, label, host = _world(t, accept_upgrade=True)
    s = _connect(relay)
    try:
        # Bytes sent right behind the Upgrade request wait for the 101, then pass as they are.
        s.sendall((UPGRADE % host).encode() + b"early bytes GET / HTTP/1.1\r\n\r\n")
        buf = b""
        want = b"early bytes GET / HTTP/1.1\r\n\r\n"
        while not (b"\r\n\r\n" in buf and buf.partition(b"\r\n\r\n")[2].startswith(want)):
            b = s.recv(65536)
            check(b, "the relay closed; got %r" % buf)
            buf += b
        check(buf.startswith(b"HTTP/1.1 101 "), "not a 101: %r" % buf[:200])
        s.sendall(b"\x00\x01raw after the switch\xff")
        echo = b""
        while len(echo) < 23:
            b = s.recv(65536)
            check(b, "the relay closed during the echo")
            echo += b
        eq(echo, b"\x00\x01raw after the switch\xff", "echo through the raw pipe")
    finally:
        s.close()
    eq([r["target"] for r in dev.seen()], ["/ws"], "requests the device read")


# ---------------------------------------------------------------- item 5: framing


def _post(host, body, framing="Transfer-Encoding: chunked\r\n"):
    return ("POST /upload HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (host, framing)).encode() + body


def _smuggle_bare_lf():
    # A loose reader takes "N;x" as the size line and N bytes of A as the chunk, then the last
    # chunk, then "GET /smuggled": a second request. http-parser's lenient build reads
    # "N;x\nAAA...A" as the size line and the N bytes after it as data.
    inner = b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"
    n = len(inner)
    return b"%x;x\n" % n + b"A" * n + b"\r\n" + inner + b"\r\n0\r\n\r\n"


def _smuggle_no_crlf():
    # http-parser skips any two bytes after chunk data; a loose reader skips to the next LF,
    # and so takes the relay's chunk data for the last chunk and a second request.
    inner = b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    return b"1\r\nZYY" + b"%x\r\n" % len(inner) + inner + b"\r\n0\r\n\r\n"


def test_chunked_smuggling_reaches_the_device_as_one_request(t):
    relay, dev, label, host = _world(t)
    for name, body in (("bare LF in a chunk-size line", _smuggle_bare_lf()),
                       ("no CRLF after chunk data", _smuggle_no_crlf())):
        before = len(dev.seen())
        s = _connect(relay)
        try:
            s.sendall(_post(host, body))
            rs, _ = _read_responses(s, 1)
            time.sleep(0.2)  # a second request, if the device saw one, is read by now
        finally:
            s.close()
        eq(rs[0][0], 200, "%s: status" % name)
        got = dev.seen()[before:]
        eq([r["target"] for r in got], ["/upload"], "%s: requests the device read" % name)


def test_bad_framing_and_heads_are_refused(t):
    relay, dev, label, host = _world(t)
    cases = [
        ("Transfer-Encoding with Content-Length",
         _post(host, b"5\r\nhello\r\n0\r\n\r\n",
               "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"), 400),
        ("Transfer-Encoding: xchunked",
         _post(host, b"5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: xchunked\r\n"), 400),
        ("a coding before chunked",
         _post(host, b"5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: gzip, chunked\r\n"), 501),
        ("obs-fold",
         ("GET / HTTP/1.1\r\nHost: %s\r\nX-A: a\r\n Transfer-Encoding: chunked\r\n\r\n"
          % host).encode(), 400),
        ("a tab in the target",
         ("GET /a\tHTTP/1.1 HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode(), 400),
        ("an absolute-form target naming another host",
         ("GET http://victim.localhost/admin HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode(),
         400),
    ]
    for name, req, status in cases:
        got = _exchange(relay, req)
        rs = _responses(got)
        eq([r[0] for r in rs], [status], "%s: statuses (%r)" % (name, got[:300]))
        eq(dev.seen(), [], "%s: the device read a request" % name)
        check(dev.all_bytes() == b"", "%s: bytes reached the device: %r"
              % (name, dev.all_bytes()[:300]))
    # The same, later on a keep-alive connection (the filter, not the listener).
    for name, req, status in cases:
        before = len(dev.seen())
        s = _connect(relay)
        try:
            s.sendall(("GET /first HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode())
            rs, _ = _read_responses(s, 1)
            s.sendall(req)
            rest = _read_until_close(s)
        finally:
            s.close()
        eq([r[0] for r in _responses(rest)], [status], "%s on a keep-alive connection" % name)
        eq([r["target"] for r in dev.seen()[before:]], ["/first"],
           "%s on a keep-alive connection: requests the device read" % name)
    text = _metrics(relay)
    for reason in ("framing", "transfer_coding", "header", "target", "other_host"):
        check(_metric(text, 'tether_http_refused_total{reason="%s"}' % reason) >= 2,
              "tether_http_refused_total{reason=%s} did not count" % reason)


# ---------------------------------------------------------------- item 9


def test_client_identity_headers_are_replaced(t):
    relay, dev, label, host = _world(t)
    s = _connect(relay)
    try:
        s.sendall(("GET /who HTTP/1.1\r\nHost: %s\r\nForwarded: for=6.6.6.6;proto=https\r\n"
                   "X-Real-IP: 6.6.6.6\r\nX-Forwarded-Port: 443\r\nX-Client-IP: 6.6.6.6\r\n"
                   "True-Client-IP: 6.6.6.6\r\nX-Forwarded-Scheme: https\r\n"
                   "X-Forwarded-For: 10.9.8.7\r\n\r\n" % host).encode())
        rs, _ = _read_responses(s, 1)
    finally:
        s.close()
    eq(rs[0][0], 200, "status")
    h = _hdrs(dev.seen()[0])
    for name in ("x-forwarded-port", "x-client-ip", "true-client-ip", "x-forwarded-scheme"):
        check(name not in h, "%s reached the device: %r" % (name, h.get(name)))
    eq(h.get("forwarded"), ['for=127.0.0.1;host="%s";proto=http' % host], "Forwarded")
    eq(h.get("x-real-ip"), ["127.0.0.1"], "X-Real-IP")
    eq(h.get("x-forwarded-for"), ["10.9.8.7, 127.0.0.1"], "X-Forwarded-For (appended to)")
    eq(h.get("x-forwarded-proto"), ["http"], "X-Forwarded-Proto")
    eq(h.get("x-forwarded-host"), [host], "X-Forwarded-Host")
    check(b"6.6.6.6" not in dev.all_bytes(), "a forged address reached the device: %r"
          % dev.all_bytes())


def test_valid_request_is_answered_before_a_refused_one(t):
    relay, dev, label, host = _world(t)
    good = ("GET /first HTTP/1.1\r\nHost: %s\r\n\r\nHEAD /second HTTP/1.1\r\nHost: %s\r\n\r\n"
            % (host, host))
    for bad in ("GET /bad HTTP/1.1\r\nHost: %s\r\nX Y: blank in a name\r\n\r\n" % host,
                "GET /bad HTTP/1.1\r\nHost: other.localhost:%d\r\n\r\n" % relay.port,
                "GET /bad\tx HTTP/1.1\r\nHost: %s\r\n\r\n" % host):
        before = len(dev.seen())
        got = _exchange(relay, (good + bad).encode())
        # The HEAD's answer has a Content-Length but no body.
        first, found, rest = got.partition(b"seen GET /first\n")
        check(found and first.startswith(b"HTTP/1.1 200 OK\r\n"),
              "the answer to the valid request is missing (%r): %r" % (bad, got[:600]))
        check(rest.startswith(b"HTTP/1.1 200 OK\r\n"), "the HEAD's answer: %r" % rest[:300])
        page = rest.partition(b"\r\n\r\n")[2]
        check(page.startswith(b"HTTP/1.1 400 "), "the refusal after them: %r" % rest[:400])
        eq([r["target"] for r in dev.seen()[before:]], ["/first", "/second"],
           "requests the device read")


def test_pipelining_past_the_cap(t):
    relay, dev, label, host = _world(t)
    n = 80
    s = _connect(relay)
    try:
        s.sendall(b"".join(("GET /p%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (i, host)).encode()
                           for i in range(n)))
        rs, _ = _read_responses(s, n)
    finally:
        s.close()
    eq([r[2] for r in rs], [b"seen GET /p%d\n" % i for i in range(n)], "answers in order")
    check(_metric(_metrics(relay), "tether_http_pipeline_full_total") >= 1,
          "tether_http_pipeline_full_total did not count the wait at the cap")
