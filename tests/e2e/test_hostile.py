"""test_hostile.py - bad input never hurts the relay: malformed requests and a missing Host get
400 (on a fresh connection and later on a keep-alive one); garbage after a valid WebSocket
upgrade, unmasked frames, invalid opcodes and reserved bits are closed with 1002; unknown,
truncated or misplaced protocol messages are refused; bad opening handshakes get 400 or 426
(with Sec-WebSocket-Version: 13); a device service that refuses gives 502 (HTTP) or an
immediate close (TCP). After each, another device's HTTP and TCP traffic is checked byte for
byte, and nothing crashes or leaks (the suite runs tetherd under ASan/LSan; Env.cleanup fails
the test on any sanitizer report)."""

import hashlib
import os
import socket
import struct
import threading

from lib import TOKEN, check, eq, free_port, recv_all, tcp_connect, TestFailure
from rawdev import (DATA, GOAWAY, OPEN, REFUSE, WELCOME, RawWs, hello, parse_tframes,
                    tframe, ws_frame, ws_header)
from test_relay import _raw_exchange, _status_of

MiB = 1024 * 1024


class Victim:
    """A well-behaved device on the same relay (HTTP service with a 2 MiB file, TCP echo),
    whose traffic must come through intact whatever the others send."""

    def __init__(self, t, relay):
        self.relay = relay
        self.svc = t.http_service(big_size=2 * MiB)
        self.echo = t.tcp_echo()
        self.agent = t.agent(relay, http=self.svc.port, tcp={"echo": self.echo.port})
        self.errors = []
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = None

    def check_intact(self):
        check(self.relay.proc.alive(), "tetherd died: %s" % self.relay.proc.stderr_tail(20))
        status, hdrs, body = self.relay.request("GET", "/big", label=self.agent.label)
        eq(status, 200, "the other device's download status")
        eq(hashlib.sha256(body).hexdigest(), self.svc.big_sha, "the other device's download")
        data = os.urandom(300000)
        s = tcp_connect(self.agent.tcp_port("echo"))
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            got = recv_all(s)
        finally:
            s.close()
        eq(hashlib.sha256(got).hexdigest(), hashlib.sha256(data).hexdigest(),
           "the other device's TCP echo")

    def start_background(self):
        """Keeps downloading and echoing while the test attacks the relay."""
        def loop():
            while not self._stop.is_set():
                try:
                    self.check_intact()
                    self.rounds += 1
                except Exception as e:
                    self.errors.append(repr(e))
                    return
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop_background(self):
        self._stop.set()
        self._thread.join(60)
        check(not self.errors, "the other device's traffic broke during the attack: %s" %
              self.errors[:2])
        check(self.rounds > 0, "no background round of the other device's traffic completed")


def _answer(port, data):
    return _status_of(_raw_exchange(port, data))


def test_malformed_requests_and_missing_host_get_400(t):
    relay = t.relay()
    victim = Victim(t, relay)
    host = relay.host(victim.agent.label).encode()
    cases = [
        b"THIS IS NOT HTTP\r\n\r\n",
        b"\x00\x01\x02\x03 binary garbage \xff\xfe\r\n\r\n",
        b"G\xffT / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
        b"GET / HTTP/1.0\r\n\r\n",  # no Host either
        b"GET / HTTP/1.1\r\nAccept: */*\r\nUser-Agent: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nHost: other.localhost\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: \r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: bad host!\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nBad\x00Name: v\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: banana\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ]
    for req in cases:
        eq(_answer(relay.port, req), 400, "status for %r" % req[:70])
    victim.check_intact()
    # The same on a keep-alive connection, after a good request.
    for bad in (b"GET /small HTTP/1.1\r\nAccept: */*\r\n\r\n",
                b"GET /small HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: x\r\n\r\n",
                b"NOT HTTP AT ALL\r\n\r\n"):
        s = socket.create_connection(("127.0.0.1", relay.port), timeout=30)
        s.sendall(b"GET /small?i=1 HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        first = _read_until_body(s, b"small 1\n")
        check(first.startswith(b"HTTP/1.1 200"), "first answer: %r" % first[:100])
        s.sendall(bad)
        rest = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                rest += b
        except ConnectionResetError:
            pass
        s.close()
        eq(_status_of(rest), 400, "status of %r after a good request" % bad[:50])
    victim.check_intact()


def _read_until_body(s, body):
    buf = b""
    while not buf.endswith(body):
        b = s.recv(65536)
        if not b:
            raise TestFailure("connection closed early: %r" % buf[:200])
        buf += b
    return buf


def _close_code_after(relay, data, what):
    ws = RawWs(relay.port)
    eq(ws.status, 101, "handshake status before %s" % what)
    ws.send(data)
    code, frames = ws.read_close()
    ws.close()
    return code, frames


def test_garbage_after_websocket_upgrade_closes_1002(t):
    relay = t.relay()
    victim = Victim(t, relay)
    victim.start_background()
    key = b"\x01\x02\x03\x04"
    cases = [
        ("random bytes", b"\xff" + os.urandom(300)),
        ("a masked binary message of random bytes", ws_frame(0x2, os.urandom(70000))),
        ("an unmasked binary frame", ws_frame(0x2, hello("dev", TOKEN), mask=False)),
        ("continuation without a message", ws_frame(0x0, b"abc")),
        ("a control frame over 125 bytes", ws_frame(0x9, b"p" * 126)),
        ("a fragmented ping", ws_frame(0x9, b"p", fin=False)),
        ("a close frame with a 1-byte payload", ws_frame(0x8, b"\x03")),
        ("a new message inside a fragmented one",
         ws_frame(0x2, b"abc", fin=False) + ws_frame(0x2, b"def")),
    ]
    for op in (0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF):
        cases.append(("opcode 0x%x" % op, ws_frame(op, b"xyz")))
    for rsv in (1, 2, 4, 7):
        cases.append(("reserved bits %d" % rsv, ws_frame(0x2, hello("dev", TOKEN), rsv=rsv)))
    # The header alone decides: a frame claiming 2^63 bytes is refused at once.
    cases.append(("a 64-bit length with the top bit set",
                  bytes([0x82, 0xFF]) + struct.pack(">Q", 1 << 63) + key))
    for what, data in cases:
        code, _ = _close_code_after(relay, data, what)
        if what.startswith("a 64-bit"):
            check(code in (1002, 1009), "close code after %s: %d" % (what, code))
        else:
            eq(code, 1002, "close code after %s" % what)
    code, _ = _close_code_after(relay, ws_frame(0x1, b"text"), "a text frame")
    eq(code, 1003, "close code after a text frame (docs/PROTOCOL.md 2.2)")
    victim.stop_background()
    victim.check_intact()


def _welcome_label(payload):
    # version u8, max_streams u16, window u32, label str8, ...
    n = payload[7]
    return payload[8:8 + n].decode()


def test_bad_protocol_messages_are_refused(t):
    relay = t.relay()
    victim = Victim(t, relay)
    victim.start_background()
    # Before registration: anything but a valid HELLO fails the session (1002).
    long_name = struct.pack(">BHI", 1, 16, 65536) + bytes([200]) + b"short"
    before = [
        ("DATA before HELLO", tframe(DATA, b"GET / HTTP/1.1\r\n\r\n", stream=1)),
        ("an unknown type before HELLO", tframe(0x42, b"hello?")),
        ("GOAWAY on stream 5", tframe(GOAWAY, b"\x00\x00\x00", stream=5)),
        ("a HELLO whose name runs past its payload", tframe(1, long_name)),
        ("a HELLO with a trailing byte", tframe(1, hello("dev-x", TOKEN)[8:] + b"\x00")),
        ("a HELLO with an unknown service kind", hello("dev-y", TOKEN, services=((9, "x"),))),
        ("a HELLO over the control payload limit", tframe(1, b"\x01" * 3000)),
        ("a HELLO of version 3", hello("dev-z", TOKEN, version=3)),
    ]
    for what, data in before:
        ws = RawWs(relay.port)
        eq(ws.status, 101, "handshake status before %s" % what)
        ws.send_message(data)
        code, frames = ws.read_close()
        ws.close()
        eq(code, 1002, "close code after %s" % what)
        check(frames and frames[0][0] in (REFUSE, GOAWAY),
              "no REFUSE or GOAWAY before the close after %s: %r" % (what, frames))
    # Truncated: half a HELLO, then the connection goes away.
    ws = RawWs(relay.port)
    ws.send(ws_frame(0x2, hello("dev-half", TOKEN)[:11], fin=False))
    ws.close()
    # A wrong token is refused cleanly (REFUSE AUTH, close 1008).
    ws = RawWs(relay.port)
    typ, payload = ws.register("dev-auth", "wrong-token")
    eq(typ, REFUSE, "answer to a wrong token")
    eq(struct.unpack(">H", payload[:2])[0], 1, "REFUSE code for a wrong token (AUTH)")
    ws.close()

    # After registration: unknown types are skipped, the device goes on serving.
    ws = RawWs(relay.port)
    typ, payload = ws.register("raw-device", TOKEN)
    eq(typ, WELCOME, "answer to a valid HELLO")
    label = _welcome_label(payload)
    ws.send_message(tframe(0x42, os.urandom(5000)) + tframe(0x77, b""))
    result = {}

    def browse():
        try:
            result["r"] = relay.request("GET", "/raw", label=label, timeout=30)
        except Exception as e:
            result["e"] = e
    th = threading.Thread(target=browse)
    th.start()
    _serve_one_request(ws, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\n"
                       b"raw hello")
    th.join(40)
    check("r" in result, "the request to the raw device failed: %r" % result.get("e"))
    eq(result["r"][0], 200, "status from the raw device after unknown frame types")
    eq(result["r"][2], b"raw hello", "body from the raw device")
    # Then a malformed frame: GOAWAY PROTOCOL and 1002; the device is offline (503).
    ws.send_message(tframe(6, b"\x00\x01\x00", stream=1))  # WINDOW with 3 bytes
    code, frames = ws.read_close()
    ws.close()
    eq(code, 1002, "close code after a malformed WINDOW")
    check(any(f[0] == GOAWAY and struct.unpack(">H", f[3][:2])[0] == 3 for f in frames),
          "no GOAWAY PROTOCOL before the close: %r" % frames)
    eq(relay.request("GET", "/", label=label)[0], 503, "status of the device after its failure")
    # A registered device whose connection ends in the middle of a frame.
    ws = RawWs(relay.port)
    eq(ws.register("raw-device-2", TOKEN)[0], WELCOME, "answer to a valid HELLO")
    ws.send(ws_header(0x2, 100) + b"\0\0\0\0" + tframe(DATA, b"x" * 50, stream=1)[:20])
    ws.close()
    victim.stop_background()
    victim.check_intact()


def _serve_one_request(ws, response):
    """As a device: waits for an OPEN, reads the request head, answers and ends the stream."""
    stream = None
    head = b""
    while b"\r\n\r\n" not in head:
        frames, code = ws.read_tframes(30)
        check(code is None, "the relay closed (%s) while the raw device waited" % code)
        for typ, flags, sid, payload in frames:
            if typ == OPEN:
                stream = sid
            elif typ == DATA and sid == stream:
                head += payload
    ws.send_message(tframe(DATA, response, flags=1, stream=stream))
    # The relay's FIN (the browser closes once it has the answer) ends the stream.


def test_bad_websocket_handshakes_get_400_or_426(t):
    relay = t.relay()
    victim = Victim(t, relay)
    bad = [
        ("no key", dict(key="")),
        ("a key that is not base64 of 16 bytes", dict(key="abc")),
        ("a key of the wrong length", dict(key="dGhlIHNhbXBsZSBub25jZQ==dGhl")),
        ("no version", dict(version=None)),
        ("two versions", dict(extra_headers="Sec-WebSocket-Version: 13\r\n")),
        ("two keys", dict(extra_headers="Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")),
        ("POST", dict(method="POST")),
        ("HTTP/1.0", dict(proto="HTTP/1.0")),
        ("no Connection: upgrade", dict(connection=None)),
        ("Connection: close", dict(connection="close")),
    ]
    for what, kw in bad:
        ws = RawWs(relay.port, **kw)
        eq(ws.status, 400, "status for a handshake with %s" % what)
        ws.close()
    for version in ("8", "12", "14", "abc"):
        ws = RawWs(relay.port, version=version)
        eq(ws.status, 426, "status for Sec-WebSocket-Version: %s" % version)
        eq(ws.headers.get("sec-websocket-version"), "13",
           "Sec-WebSocket-Version in the 426 answer")
        ws.close()
    # A good one still works, with Connection listing more than one token.
    ws = RawWs(relay.port, connection="keep-alive, Upgrade")
    eq(ws.status, 101, "status for a valid handshake")
    eq(ws.register("hs-device", TOKEN)[0], WELCOME, "answer to HELLO")
    ws.close()
    victim.check_intact()


def test_refusing_device_service_gets_502_or_immediate_close(t):
    relay = t.relay()
    victim = Victim(t, relay)
    dead_http, dead_tcp = free_port(), free_port()
    agent = t.agent(relay, http=dead_http, tcp={"dead": dead_tcp})
    status, hdrs, body = relay.request("GET", "/", label=agent.label)
    eq(status, 502, "status when the device's web server refuses")
    check(hdrs.get("content-type", "").startswith("text/html"), "the 502 answer is not a page")
    s = tcp_connect(agent.tcp_port("dead"))
    s.settimeout(20)
    try:
        eq(s.recv(100), b"", "a TCP client of a refusing service is closed at once")
    except ConnectionResetError:
        pass
    s.close()
    victim.check_intact()
    # The refusing device itself stays registered and keeps answering 502.
    eq(relay.request("GET", "/", label=agent.label)[0], 502, "status on a second try")
