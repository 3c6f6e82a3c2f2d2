"""test_protocol_doc.py - an independent conformance check of docs/PROTOCOL.md against the real
tetherd: a device agent and a visitor written from the document alone (the WebSocket of section
2, the frames of sections 3 to 5, the session of 6 to 9, the visitor of 14), not from the code
and not with the e2e helpers that know the code (rawdev.py). Each test says which sections it
holds the relay to. The device registers with protocol 2 and keeps the device key it is given,
serves an HTTP request and a 2 MiB TCP echo through a 1000-byte window (Nagle's case, 2.5: it
must not take 46 s) and through a window of 0 opened by WINDOW (8), answers pings, is taken
over, deleted, told to shut down, refused, and broken on purpose, and checks every GOAWAY,
REFUSE and WebSocket close code against the table of 2.4, the name rules of 4.1 and 4.2, the
RESET code of a browser that goes away (5), and the largest DATA frame the relay sends (11).
The visitor reaches a private TCP echo with a Basic credential, is refused with the statuses of
14.2, is revoked (GOAWAY REVOKED, close 1008) and sees the relay stop (GOAWAY SHUTDOWN, 1001).
A relay written from the document (DocRelay) holds the reference agent to 2.4 and 6.3: GOAWAY
PROTOCOL and 1002 after a WELCOME it cannot use, nothing but close 1000 after a GOAWAY, a
back-off that grows through takeovers and starts over after SHUTDOWN."""

import base64
import hashlib
import os
import select
import signal
import socket
import struct
import threading
import time

from lib import TETHER, Proc, Relay, tether_has_state_dir, TestFailure, check, eq, tcp_connect, wait_for

# ---------------------------------------------------------------- the document's constants

HELLO, WELCOME, REFUSE, OPEN, DATA, WINDOW, RESET, GOAWAY = range(1, 9)  # 4
FIN = 0x01  # 3
HTTP, TCP = 1, 2  # 5
REFUSE_AUTH, REFUSE_VERSION, REFUSE_INVALID = 1, 2, 3  # 5
RESET_CANCEL = 0  # 5
GOAWAY_NORMAL, GOAWAY_SHUTDOWN, GOAWAY_TAKEOVER, GOAWAY_PROTOCOL, GOAWAY_DELETED, \
    GOAWAY_REVOKED = range(6)  # 5
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # 2.1
VISITOR_WINDOW = 262144  # 14.3
MiB = 1024 * 1024


def s8(b):
    b = b if isinstance(b, bytes) else b.encode()
    return bytes([len(b)]) + b


def frame(typ, payload=b"", stream=0, flags=0):
    """3: length u16, type u8, flags u8, stream u32 (big-endian), payload."""
    return struct.pack(">HBBI", len(payload), typ, flags, stream) + payload


def coded(code, reason=b""):
    """4.3: code u16, then the reason."""
    return struct.pack(">H", code) + reason


class Reader:
    """Reads the fields of a payload in order (3: every length checked)."""

    def __init__(self, p):
        self.p, self.i = p, 0

    def take(self, n):
        check(self.i + n <= len(self.p), "payload ends early: %r" % self.p)
        b = self.p[self.i:self.i + n]
        self.i += n
        return b

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def str8(self):
        return self.take(self.u8())

    def end(self):
        eq(self.i, len(self.p), "payload length (no trailing byte, 3)")


def parse_welcome(p):
    """4.2, version 2."""
    r = Reader(p)
    w = {"version": r.u8(), "max_streams": r.u16(), "window": r.u32(), "label": r.str8().decode()}
    w["services"] = []
    for _ in range(r.u8()):
        kind = r.u8()
        name = r.str8().decode()
        port = r.u16()
        w["services"].append((kind, name, port, r.str8().decode()))
    w["key"] = r.str8()
    r.end()
    return w


def parse_coded(p):
    r = Reader(p)
    code = r.u16()
    return code, p[2:]


# ---------------------------------------------------------------- section 2: the WebSocket

class Closed(Exception):
    pass


class DocWs:
    """A WebSocket client (RFC 6455, PROTOCOL.md 2) whose binary messages carry the Tether frame
    stream. TCP_NODELAY is set as 2.5 says. Answers pings (2.3) and the peer's close frame."""

    def __init__(self, port, protocol="tether.v1", headers=(), nodelay=True, timeout=20):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        head = ("GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                % (port, key))
        if protocol:
            head += "Sec-WebSocket-Protocol: %s\r\n" % protocol
        for h in headers:
            head += h + "\r\n"
        self.sock.sendall((head + "\r\n").encode())
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in buf:
            check(time.monotonic() < deadline, "no answer to the upgrade")
            b = self.sock.recv(65536)
            if not b:
                break
            buf += b
        head, _, self.raw = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines[0] else 0
        self.headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers.setdefault(k.strip().lower(), []).append(v.strip())
        self.body = self.raw  # a refusal's body (14.2); after a 101, WebSocket frames
        self.tbuf = b""       # Tether frame stream bytes not parsed yet
        self.close_code = None
        self.closed_sent = False
        self.pings_seen = 0
        self.pongs = []
        self.eof = False
        if self.status == 101:
            want = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
            eq(self.header("sec-websocket-accept"), want, "Sec-WebSocket-Accept (2.1)")

    def header(self, name):
        v = self.headers.get(name)
        return v[0] if v else None

    def read_body(self, timeout=10):
        """A refusal's whole body (it has a Content-Length, 14.2)."""
        n = int(self.header("content-length") or 0)
        deadline = time.monotonic() + timeout
        while len(self.body) < n and time.monotonic() < deadline:
            b = self.sock.recv(65536)
            if not b:
                break
            self.body += b
        return self.body

    # -- writing: every frame masked (2.2), one Tether frame or more per binary message
    def send_ws(self, opcode, payload, fin=True):
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        if n:
            k = (mask * (n // 4 + 1))[:n]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")
        try:
            self.sock.sendall(head + mask + payload)
        except OSError:
            pass

    def send(self, *frames):
        self.send_ws(0x2, b"".join(frames))

    def send_close(self, code):
        if not self.closed_sent:
            self.closed_sent = True
            self.send_ws(0x8, struct.pack(">H", code))

    # -- reading
    def _parse_ws(self):
        """Takes the complete WebSocket frames out of self.raw (the relay never masks)."""
        while True:
            if len(self.raw) < 2:
                return
            b0, b1 = self.raw[0], self.raw[1]
            check(not b1 & 0x80, "the relay masked a frame (2.2)")
            n, i = b1 & 0x7F, 2
            if n == 126:
                if len(self.raw) < 4:
                    return
                n, i = struct.unpack(">H", self.raw[2:4])[0], 4
            elif n == 127:
                if len(self.raw) < 10:
                    return
                n, i = struct.unpack(">Q", self.raw[2:10])[0], 10
            if len(self.raw) < i + n:
                return
            op, payload = b0 & 0x0F, self.raw[i:i + n]
            self.raw = self.raw[i + n:]
            if op == 0x9:
                self.pings_seen += 1
                self.send_ws(0xA, payload)  # 2.3: a pong with the same payload
            elif op == 0xA:
                self.pongs.append(payload)
            elif op == 0x8:
                self.close_code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 \
                    else 1005
                self.send_close(self.close_code)  # echoed (RFC 6455 5.5.1, PROTOCOL.md 2.4)
            elif op in (0x0, 0x2):
                self.tbuf += payload
            else:
                raise TestFailure("the relay sent WebSocket opcode %#x" % op)

    def poll(self, timeout):
        """Reads what arrives within timeout (less when something does); returns the complete
        Tether frames [(type, flags, stream, payload)]."""
        if not self.eof:
            r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
            if r:
                try:
                    b = self.sock.recv(262144)
                except OSError:
                    b = b""
                if not b:
                    self.eof = True
                self.raw += b
        self._parse_ws()
        out = []
        while len(self.tbuf) >= 8:
            n, typ, flags, stream = struct.unpack(">HBBI", self.tbuf[:8])
            if len(self.tbuf) < 8 + n:
                break
            out.append((typ, flags, stream & 0x7FFFFFFF, self.tbuf[8:8 + n]))  # 3: top bit
            self.tbuf = self.tbuf[8 + n:]
        return out

    def frames_until_close(self, timeout=15):
        """Every Tether frame until the relay's close frame and its EOF; returns (close code,
        frames)."""
        seen = []
        deadline = time.monotonic() + timeout
        while not (self.eof and self.close_code is not None):
            check(time.monotonic() < deadline,
                  "no close frame and EOF within %ds (frames %r, close %r)" %
                  (timeout, seen, self.close_code))
            seen += self.poll(0.2)
            if self.eof and self.close_code is None:
                raise TestFailure("the relay closed without a close frame (2.4); frames %r" % seen)
        return self.close_code, seen

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- sections 4 to 8: a device

class Stream:
    def __init__(self, sid, service, send_window, recv_window):
        self.id, self.service = sid, service
        self.send_window = send_window  # 8: what we may still send
        self.recv_window = recv_window  # 8: what the relay may still send us
        self.inbuf = b""                # received, not yet disposed of
        self.outbuf = b""               # to send
        self.consumed = 0               # disposed of, not yet credited
        self.fin_in = self.fin_out = False
        self.want_fin = False
        self.reset = None
        self.received = 0
        self.handled = False
        self.head = b""                 # the start of an HTTP request


class DocDevice:
    """A device agent from PROTOCOL.md: HELLO version 2 with its device key (6.4), in-process
    services (an HTTP answer and a TCP echo), flow control as section 8 says, credit sent as the
    bytes are disposed of. window=0 announces no initial credit and opens each stream with a
    WINDOW of open_credit (4.1, 8)."""

    def __init__(self, port, name, token, key=b"", services=((HTTP, "http"), (TCP, "echo")),
                 window=1000, max_streams=4, version=2, open_credit=4096, nodelay=True,
                 batch=True, protocol="tether.v1"):
        self.port, self.name, self.token, self.key = port, name, token, key
        self.services = list(services)
        self.window, self.max_streams, self.version = window, max_streams, version
        self.open_credit = open_credit
        self.batch = batch  # False: each frame in a message (a write) of its own
        self.ws = DocWs(port, nodelay=nodelay, protocol=protocol)
        eq(self.ws.status, 101, "the device's upgrade (2.1)")
        offered = [x.strip() for x in (protocol or "").split(",")]
        eq(self.ws.header("sec-websocket-protocol"),
           "tether.v1" if "tether.v1" in offered else None,
           "the subprotocol echoed when offered, else none (2.1)")
        self.streams = {}
        self.ended = {}       # id -> how it ended ("fin", or ("reset", code))
        self.goaway = None
        self.welcome = None
        self.refuse = None
        self.max_data = 0     # largest DATA payload received (11)
        self.opens = []       # (id, service) in order
        self.http_answer = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello, doc!"

    def hello(self):
        p = struct.pack(">BHI", self.version, self.max_streams, self.window) + s8(self.name) + \
            s8(self.token)
        if self.version >= 2:
            p += s8(self.key)
        p += bytes([len(self.services)])
        for kind, name in self.services:
            p += bytes([kind]) + s8(name)
        return frame(HELLO, p)

    def register(self, timeout=15):
        """6.2: HELLO first, then WELCOME or REFUSE. Returns the WELCOME (dict) or None."""
        self.ws.send(self.hello())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for typ, flags, stream, p in self.ws.poll(0.2):
                eq(stream, 0, "stream of a connection frame (3)")
                if typ == WELCOME:
                    self.welcome = parse_welcome(p)
                    eq(self.welcome["version"], self.version, "WELCOME's version (4.2)")
                    eq(len(self.welcome["services"]), len(self.services), "WELCOME's services")
                    if self.welcome["key"]:
                        k = self.welcome["key"]
                        check(len(k) == 64 and all(c in b"0123456789abcdef" for c in k),
                              "a device key is 64 lowercase hex digits (6.4): %r" % k)
                        self.key = k  # kept before anything else (6.4)
                    return self.welcome
                if typ == REFUSE:
                    self.refuse = parse_coded(p)
                    return None
                if typ == GOAWAY:
                    self.goaway = parse_coded(p)
                    return None
                raise TestFailure("frame type %d before WELCOME (6.1)" % typ)
            if self.ws.eof:
                break
        raise TestFailure("no WELCOME or REFUSE (close %r)" % self.ws.close_code)

    def svc_url(self, name):
        for kind, n, port, addr in self.welcome["services"]:
            if n == name:
                return addr
        raise TestFailure("no service %r in %r" % (name, self.welcome))

    # -- the streams
    def _on_frame(self, typ, flags, sid, p):
        if typ == OPEN:
            r = Reader(p)
            svc = r.u8()
            self.opens.append((sid, svc))
            check(sid not in self.streams, "OPEN for an open id (7)")
            if svc >= len(self.services):
                self.out.append(frame(RESET, coded(2), sid))  # NO_SERVICE
                return
            st = Stream(sid, svc, self.welcome["window"], self.window)
            self.streams[sid] = st
            if self.window == 0:
                # 8: a window of 0 grants nothing; the relay waits for this WINDOW
                st.recv_window += self.open_credit
                self.out.append(frame(WINDOW, struct.pack(">I", self.open_credit), sid))
        elif typ == DATA:
            st = self.streams.get(sid)
            if st is None:
                return  # 7: in flight after the stream ended
            self.max_data = max(self.max_data, len(p))
            check(len(p) <= st.recv_window, "the relay sent %d bytes over a window of %d (8)" %
                  (len(p), st.recv_window))
            check(not st.fin_in, "DATA after FIN (7)")
            st.recv_window -= len(p)
            st.inbuf += p
            st.received += len(p)
            if flags & FIN:
                st.fin_in = True
        elif typ == WINDOW:
            st = self.streams.get(sid)
            eq(len(p), 4, "WINDOW payload (4.6)")
            if st is not None:
                st.send_window += struct.unpack(">I", p)[0]
        elif typ == RESET:
            st = self.streams.pop(sid, None)
            if st is not None:
                st.reset = parse_coded(p)[0]
                self.ended[sid] = ("reset", st.reset)
        elif typ == GOAWAY:
            self.goaway = parse_coded(p)
        elif typ in (HELLO, WELCOME, REFUSE):
            raise TestFailure("frame type %d once OPEN (6.1)" % typ)
        # unknown types: skipped (10)

    def _service(self, st):
        kind, name = self.services[st.service]
        if kind == HTTP:
            # an in-firmware HTTP handler: the request head, then one answer and FIN
            st.head += st.inbuf[:4096 - len(st.head)] if len(st.head) < 4096 else b""
            if not st.handled and b"\r\n\r\n" in st.head and self.http_answer is not None:
                st.handled = True
                st.outbuf += self.http_answer
                st.want_fin = True
            st.consumed += len(st.inbuf)
            st.inbuf = b""
        else:
            # an echo: a byte is disposed of once it is echoed, so at most one window is held
            st.outbuf += st.inbuf
            st.inbuf = b""
            if st.fin_in:
                st.want_fin = True

    def _flush(self, st):
        kind = self.services[st.service][0]
        while st.outbuf and st.send_window > 0 and not st.fin_out:
            n = min(len(st.outbuf), st.send_window, 65535)
            self.out.append(frame(DATA, st.outbuf[:n], st.id))
            st.outbuf = st.outbuf[n:]
            st.send_window -= n
            if kind == TCP:
                st.consumed += n
        if st.want_fin and not st.outbuf and not st.fin_out:
            st.fin_out = True
            self.out.append(frame(DATA, b"", st.id, FIN))
        if st.consumed and not st.fin_in:
            # 8: the simplest policy, credit every byte once disposed of
            self.out.append(frame(WINDOW, struct.pack(">I", st.consumed), st.id))
            st.recv_window += st.consumed
            st.consumed = 0
        if st.fin_in and st.fin_out:
            self.streams.pop(st.id, None)
            self.ended[st.id] = "fin"

    def step(self, timeout=0.05):
        """One turn: read, act, write (all of our frames of this turn in one message)."""
        self.out = []
        for f in self.ws.poll(timeout):
            self._on_frame(*f)
        for st in list(self.streams.values()):
            self._service(st)
            self._flush(st)
        if self.out and self.batch:
            self.ws.send(*self.out)
        else:
            for f in self.out:
                self.ws.send(f)

    def serve_until(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise TestFailure("%s: not within %ds (streams %r, goaway %r, close %r)" %
                                  (what, timeout, list(self.streams), self.goaway,
                                   self.ws.close_code))
            if self.ws.eof and self.ws.close_code is not None:
                raise TestFailure("%s: the connection closed (%r, goaway %r)" %
                                  (what, self.ws.close_code, self.goaway))
            self.step()

    def serve_in_thread(self):
        self.stop = False

        def run():
            while not self.stop and not self.ws.eof:
                self.step()
        th = threading.Thread(target=run, daemon=True)
        th.start()
        return th

    def close(self):
        self.ws.close()


def _name():
    return "doc-" + os.urandom(3).hex()


def _token_relay(t, **kw):
    return Relay(t, **kw)


def _registered_any(t, relay, **kw):
    d = DocDevice(relay.port, kw.pop("name", None) or _name(), relay.token, **kw)
    t.on_cleanup(d.close)
    w = d.register()
    check(w is not None, "registration refused: %r" % (d.refuse,))
    return d


_registered = _registered_any


def _in_thread(fn):
    box = {}

    def run():
        try:
            box["r"] = fn()
        except Exception as e:  # noqa: BLE001 - reported by the caller
            box["e"] = e
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, box


# ---------------------------------------------------------------- the tests

def test_doc_device_registers_and_serves_http_and_a_2mib_echo_through_1000_bytes(t):
    """2.1, 4.1, 4.2, 6.2, 6.4, 7, 8, 2.5, 11: a version-2 registration with the fleet token gets
    a key; an HTTP request is answered; a TCP client's 2 MiB is echoed through a window of 1000
    bytes each way in well under the 46 s that Nagle's algorithm costs, and the relay never sends
    a DATA frame larger than the window (nor than 65535)."""
    relay = _token_relay(t)
    d = _registered(t, relay, batch=False)
    eq(d.welcome["key"] != b"", True, "a first registration with the fleet token gets a key")
    kinds = [s[0] for s in d.welcome["services"]]
    eq(kinds, [HTTP, TCP], "service kinds in the WELCOME")
    eq(d.svc_url("http"), "http://%s.localhost:%d" % (d.welcome["label"], relay.port),
       "the main HTTP service's URL (4.2)")
    tcp = d.welcome["services"][1]
    check(tcp[2] > 0 and tcp[3] == "localhost", "the TCP service's port and host: %r" % (tcp,))

    th, box = _in_thread(lambda: relay.request("GET", "/doc", label=d.welcome["label"]))
    d.serve_until(lambda: not th.is_alive(), 20, "the HTTP request")
    check("r" in box, "the HTTP request failed: %r" % box.get("e"))
    eq(box["r"][0], 200, "status through the doc device")
    eq(box["r"][2], b"hello, doc!", "body through the doc device")

    payload = os.urandom(2 * MiB)
    c = tcp_connect(tcp[2], timeout=20)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    got = bytearray()

    def client():
        sender = threading.Thread(target=lambda: (c.sendall(payload), c.shutdown(socket.SHUT_WR)),
                                  daemon=True)
        sender.start()
        while True:
            b = c.recv(65536)
            if not b:
                break
            got.extend(b)
        sender.join(5)
    th, box = _in_thread(client)
    t0 = time.monotonic()
    d.serve_until(lambda: not th.is_alive(), 20, "the 2 MiB echo through a 1000-byte window")
    took = time.monotonic() - t0
    c.close()
    eq(len(got), len(payload), "bytes echoed")
    check(bytes(got) == payload, "the echo is the bytes sent")
    check(0 < d.max_data <= 1000, "largest DATA from the relay %d, over the window" % d.max_data)
    print("2 MiB echo through a 1000-byte window: %.2f s, largest DATA %d" % (took, d.max_data))
    # the stream ended with FIN both ways (7); the key is what the next HELLO presents (6.4)
    wait_for(lambda: (d.step(), any(v == "fin" for v in d.ended.values()))[1], 10,
             "the echo stream to end with FIN both ways")
    d2 = DocDevice(relay.port, d.name, relay.token, key=d.key)
    t.on_cleanup(d2.close)
    check(d2.register() is not None, "registration with the key: %r" % (d2.refuse,))
    eq(d2.welcome["key"], b"", "no key issued to a device that presents its own (4.2)")
    eq(d2.welcome["label"], d.welcome["label"], "the same label within the grace period")
    code, frames = d.ws.frames_until_close()
    eq([(f[0], parse_coded(f[3])[0]) for f in frames if f[0] == GOAWAY],
       [(GOAWAY, GOAWAY_TAKEOVER)], "the first connection's GOAWAY (6.2)")
    eq(code, 1000, "close code after GOAWAY TAKEOVER (2.4)")


def test_doc_device_window_zero_opened_by_window(t):
    """4.1, 8: a HELLO window of 0 grants nothing; the device opens each stream with WINDOW and
    the relay waits for it before it sends DATA."""
    relay = _token_relay(t)
    d = _registered(t, relay, window=0, open_credit=3000)
    th, box = _in_thread(lambda: relay.request("POST", "/zero", label=d.welcome["label"],
                                               body=b"z" * 20000))
    d.serve_until(lambda: not th.is_alive(), 20, "the request through a window of 0")
    check("r" in box, "the request failed: %r" % box.get("e"))
    eq(box["r"][0], 200, "status through a window of 0 opened by WINDOW")
    check(0 < d.max_data <= 3000, "largest DATA %d over the credit granted" % d.max_data)


def test_doc_largest_data_frame(t):
    """2.2, 11: with a large window the relay's DATA frames are still at most 65535 bytes, one
    frame per message: a 1 MiB request body and a 1 MiB TCP stream."""
    relay = _token_relay(t)
    d = _registered(t, relay, window=4 * MiB)
    body = os.urandom(MiB)
    th, box = _in_thread(lambda: relay.request("POST", "/big", label=d.welcome["label"],
                                               body=body))
    d.serve_until(lambda: not th.is_alive(), 30, "a 1 MiB request")
    eq(box.get("r", (0,))[0], 200, "status of the 1 MiB request")
    http_max = d.max_data
    c = tcp_connect(d.welcome["services"][1][2], timeout=20)
    th, box = _in_thread(lambda: (c.sendall(body), c.shutdown(socket.SHUT_WR),
                                  len(__import__("lib").recv_all(c))))
    d.serve_until(lambda: not th.is_alive(), 30, "a 1 MiB TCP stream")
    c.close()
    eq(box.get("r", (0, 0, 0))[2], MiB, "bytes echoed")
    print("largest DATA from the relay: HTTP %d, TCP %d" % (http_max, d.max_data))
    check(d.max_data <= 65535, "a DATA payload is at most 65535 bytes")


def test_doc_device_heartbeat_pings_and_pongs(t):
    """2.3: the relay answers a ping with a pong of the same payload, and pings a quiet device
    within about 15 s; the device's pong keeps it online."""
    relay = _token_relay(t)
    d = _registered(t, relay)
    d.ws.send_ws(0x9, b"doc-ping")
    wait_for(lambda: (d.step(), d.ws.pongs)[1], 10, "the pong to our ping")
    eq(d.ws.pongs[0], b"doc-ping", "the pong's payload (2.3)")
    t0 = time.monotonic()
    wait_for(lambda: (d.step(0.2), d.ws.pings_seen)[1], 25, "a ping from the relay (2.3)")
    check(time.monotonic() - t0 < 20, "the relay pings a quiet device within about 15 s")
    th, box = _in_thread(lambda: relay.request("GET", "/alive", label=d.welcome["label"]))
    d.serve_until(lambda: not th.is_alive(), 20, "a request after the ping")
    eq(box.get("r", (0,))[0], 200, "the device still serves after the ping")


def test_doc_close_codes_and_goaway(t):
    """2.4 (the table), 6.2, 6.3, 6.4, 9: every way the relay ends a device connection, with
    its Tether frame and its WebSocket close code."""
    relay = _token_relay(t)
    web = [(HTTP, "http")]  # no TCP port: the fleet token's port cap is not the subject here

    def _registered(t, relay, **kw):
        kw.setdefault("services", web)
        return _registered_any(t, relay, **kw)

    def refused(hello_kw=None, raw_hello=None, name=None, token=None):
        hello_kw = dict(hello_kw or {})
        hello_kw.setdefault("services", web)
        d = DocDevice(relay.port, name or _name(), token or relay.token, **hello_kw)
        t.on_cleanup(d.close)
        if raw_hello is not None:
            d.ws.send(raw_hello)
        else:
            d.ws.send(d.hello())
        code, frames = d.ws.frames_until_close()
        return code, frames

    def only(frames, typ):
        eq([f[0] for f in frames], [typ], "the frames before the close")
        return parse_coded(frames[0][3])

    # REFUSE AUTH: 1008
    code, frames = refused(token="not-the-token")
    eq(only(frames, REFUSE)[0], REFUSE_AUTH, "REFUSE code for a wrong token")
    eq(code, 1008, "close code after REFUSE AUTH")
    # REFUSE INVALID for a name with a space (4.1): 1000
    code, frames = refused(name="doc device")
    c, reason = only(frames, REFUSE)
    eq((c, reason), (REFUSE_INVALID, b"invalid device name"), "REFUSE for a name with a space")
    eq(code, 1000, "close code after a REFUSE of a well-formed HELLO")
    # REFUSE VERSION for a version the relay does not speak: the session failed, 1002
    bad = frame(HELLO, bytes([3]) + b"\x00" * 10)
    code, frames = refused(raw_hello=bad)
    eq(only(frames, REFUSE)[0], REFUSE_VERSION, "REFUSE code for version 3")
    eq(code, 1002, "close code after a HELLO that failed the session")
    # REFUSE VERSION for a version-1 HELLO with the fleet token (6.4): 1000
    code, frames = refused(hello_kw={"version": 1})
    eq(only(frames, REFUSE)[0], REFUSE_VERSION, "REFUSE code for a version-1 fleet HELLO")
    eq(code, 1000, "close code after a REFUSE of a well-formed HELLO")

    # a device that says GOAWAY: the relay answers with nothing but its close, 1000
    d = _registered(t, relay)
    d.ws.send(frame(GOAWAY, coded(GOAWAY_NORMAL, b"bye")))
    code, frames = d.ws.frames_until_close()
    eq(frames, [], "no frame after the device's GOAWAY (6.3)")
    eq(code, 1000, "close code after receiving GOAWAY")

    # a malformed WINDOW on a stream that is not open: fatal (7, 9), GOAWAY PROTOCOL and 1002
    d = _registered(t, relay)
    d.ws.send(frame(WINDOW, b"\x00\x00\x01", 77))
    code, frames = d.ws.frames_until_close()
    eq(only(frames, GOAWAY)[0], GOAWAY_PROTOCOL, "GOAWAY after a malformed WINDOW")
    eq(code, 1002, "close code after a protocol error")
    # a zero increment on an unknown stream: the same (4.6)
    d = _registered(t, relay)
    d.ws.send(frame(WINDOW, b"\x00\x00\x00\x00", 78))
    code, frames = d.ws.frames_until_close()
    eq((only(frames, GOAWAY)[0], code), (GOAWAY_PROTOCOL, 1002), "after WINDOW 0 on stream 78")
    # a well-formed WINDOW or RESET on an unknown stream: ignored (7)
    d = _registered(t, relay)
    d.ws.send(frame(WINDOW, struct.pack(">I", 5), 79), frame(RESET, coded(0), 80),
              frame(DATA, b"late", 81), frame(0x42, b"unknown type"))
    th, box = _in_thread(lambda: relay.request("GET", "/late", label=d.welcome["label"]))
    d.serve_until(lambda: not th.is_alive(), 20, "a request after frames for unknown ids")
    eq(box.get("r", (0,))[0], 200, "the device still serves after frames for unknown ids")
    # a text message: GOAWAY PROTOCOL and 1003 (2.2). The request's stream may still be ending
    # (the relay's FIN or RESET after the browser closed): only the connection frames count.
    d.ws.send_ws(0x1, b"text")
    code, frames = d.ws.frames_until_close()
    frames = [f for f in frames if f[0] not in (DATA, WINDOW, RESET)]
    eq((only(frames, GOAWAY)[0], code), (GOAWAY_PROTOCOL, 1003), "after a text message")

    # takeover by the key's holder, and a stranger refused without touching it (6.2, 6.4)
    d = _registered(t, relay)
    intruder = DocDevice(relay.port, d.name, relay.token, services=web)
    t.on_cleanup(intruder.close)
    check(intruder.register() is None, "a HELLO without the name's key is refused")
    eq(intruder.refuse, (REFUSE_AUTH, b"device key required: the name %s belongs to another "
                         b"device" % d.name.encode()), "the REFUSE (6.4)")
    eq(d.ws.poll(0.5), [], "the online session is untouched")
    d2 = DocDevice(relay.port, d.name, relay.token, key=d.key, services=web)
    t.on_cleanup(d2.close)
    check(d2.register() is not None, "the key's holder registers")
    code, frames = d.ws.frames_until_close()
    eq((only(frames, GOAWAY)[0], code), (GOAWAY_TAKEOVER, 1000), "the old connection")

    # deleted by the operator: GOAWAY DELETED, 1000
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", relay.admin_port, timeout=10)
    c.request("DELETE", "/api/devices/" + d2.name)
    eq(c.getresponse().status, 200, "DELETE /api/devices/NAME")
    c.close()
    code, frames = d2.ws.frames_until_close()
    eq((only(frames, GOAWAY)[0], code), (GOAWAY_DELETED, 1000), "after DELETE")

    # the relay shutting down: GOAWAY SHUTDOWN, 1001
    d = _registered(t, relay)
    relay.proc.send_signal(signal.SIGTERM)
    code, frames = d.ws.frames_until_close()
    eq((only(frames, GOAWAY)[0], code), (GOAWAY_SHUTDOWN, 1001), "when the relay stops")


def test_doc_names_and_http_addresses(t):
    """4.1, 4.2: name bytes (0x21 to 0x7e, compared byte for byte), the HTTP service that gets
    the bare label (the one named http, wherever it is), the DNS names of the others (web.1 ->
    web-1, cut at 40, a clash -> sI, then sI-1), and each reached at its address."""
    relay = _token_relay(t)
    long_name = "Long_Service_" + "x" * 51  # 64 bytes
    services = [(HTTP, "web.1"), (HTTP, "Shop_Front"), (HTTP, "http"), (HTTP, long_name),
                (HTTP, "s6"), (HTTP, "a.b"), (HTTP, "a_b"), (TCP, "ssh")]
    name = "Plant/7_gw.A-1~" + os.urandom(2).hex()
    d = _registered(t, relay, name=name, services=services)
    label = d.welcome["label"]
    base = ".localhost:%d" % relay.port
    want = ["http://web-1--%s%s" % (label, base), "http://shop-front--%s%s" % (label, base),
            "http://%s%s" % (label, base),
            "http://long-service-%s--%s%s" % ("x" * 27, label, base),
            "http://s6--%s%s" % (label, base), "http://a-b--%s%s" % (label, base),
            "http://s6-1--%s%s" % (label, base)]
    eq([s[3] for s in d.welcome["services"][:7]], want, "the HTTP services' URLs (4.2)")
    for i, url in enumerate(want):
        host = url[len("http://"):]
        th, box = _in_thread(lambda h=host: relay.request("GET", "/", host=h))
        d.serve_until(lambda: not th.is_alive(), 20, "a request to %s" % host)
        eq(box.get("r", (0,))[0], 200, "status at %s" % host)
        eq(d.opens[-1][1], i, "the service OPEN names for %s" % host)
    # a name differing only in case is another device (4.1: compared byte for byte)
    other = _registered(t, relay, name=name.lower(), services=[(HTTP, "http")])
    check(other.welcome["label"] != label, "another label for another name")
    for bad in (b"doc\x7fname", b"doc\xc3\xa9", b"doc\x00", b"", b"a" * 65):
        dd = DocDevice(relay.port, bad, relay.token)
        t.on_cleanup(dd.close)
        dd.ws.send(dd.hello())
        code, frames = dd.ws.frames_until_close()
        eq(frames[0][0], REFUSE, "a REFUSE for the name %r" % bad)
        check(parse_coded(frames[0][3])[0] == REFUSE_INVALID, "REFUSE INVALID for %r" % bad)
    for svcs, why in (([(HTTP, "a b")], b"invalid service name"),
                      ([(HTTP, "web"), (TCP, "web")], b"service name given twice")):
        dd = DocDevice(relay.port, _name(), relay.token, services=svcs)
        t.on_cleanup(dd.close)
        check(dd.register() is None, "services %r refused" % svcs)
        eq(dd.refuse, (REFUSE_INVALID, why), "the REFUSE for services %r" % svcs)


def test_doc_browser_going_away_is_reset_cancel(t):
    """5, 13: a browser that goes away before the answer makes the relay reset the stream
    with CANCEL: at once when it resets its connection; when it only closes it (which may be a
    half-close), once the answer cannot be delivered."""
    relay = _token_relay(t)
    d = _registered(t, relay, services=[(HTTP, "http")])
    d.http_answer = None  # this device never answers
    for how in ("reset", "close"):
        s = tcp_connect(relay.port, timeout=10)
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: %s.localhost:%d\r\n\r\n" %
                  (d.welcome["label"].encode(), relay.port))
        before = set(d.ended)
        d.serve_until(lambda: d.streams and max(d.streams.values(), key=lambda x: x.id).received,
                      10, "the request's bytes")
        if how == "reset":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        if how == "close":
            time.sleep(0.3)
            d.http_answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + \
                b"a" * 1000000
        d.serve_until(lambda: set(d.ended) - before, 15, "the stream to end (%s)" % how)
        sid = (set(d.ended) - before).pop()
        eq(d.ended[sid], ("reset", RESET_CANCEL), "how the stream ended when the browser %s" %
           ("reset its connection" if how == "reset" else "closed its connection"))


# ---------------------------------------------------------------- section 14: a visitor

class DocVisitor:
    """A visitor from section 14: the upgrade of 14.1, the answer of 14.2, stream 1 with the
    fixed window of 14.3."""

    def __init__(self, port, device, service, user=None, secret=None, extra=()):
        h = ["Tether-Device: %s" % device, "Tether-Service: %s" % service] + list(extra)
        if user is not None:
            h.append("Authorization: Basic " +
                     base64.b64encode(("%s:%s" % (user, secret)).encode()).decode())
        self.ws = DocWs(port, protocol="tether-connect.v1", headers=h)
        self.send_window = VISITOR_WINDOW
        self.recv_window = VISITOR_WINDOW
        self.got = bytearray()
        self.fin_in = False
        self.goaway = None
        self.reset = None

    def step(self, timeout=0.05):
        for typ, flags, sid, p in self.ws.poll(timeout):
            if typ in (DATA, WINDOW, RESET):
                eq(sid, 1, "a visitor connection carries stream 1 only (14.3)")
            if typ == DATA:
                check(len(p) <= self.recv_window, "DATA over the visitor window (14.3, 8)")
                self.recv_window -= len(p)
                self.got += p
                if flags & FIN:
                    self.fin_in = True
                elif p:
                    # written out at once: credit it (8)
                    self.ws.send(frame(WINDOW, struct.pack(">I", len(p)), 1))
                    self.recv_window += len(p)
            elif typ == WINDOW:
                self.send_window += struct.unpack(">I", p)[0]
            elif typ == RESET:
                self.reset = parse_coded(p)[0]
            elif typ == GOAWAY:
                self.goaway = parse_coded(p)
            elif typ in (HELLO, WELCOME, REFUSE, OPEN):
                raise TestFailure("frame type %d on a visitor connection (14.3)" % typ)


def _private_world(t):
    from lib import TcpEcho
    echo = TcpEcho(t)
    name = "doc-plant-" + os.urandom(2).hex()
    users = t.path("users")
    with open(users, "w") as f:
        f.write("alice alice-doc-secret %s/*\n" % name)
    relay = Relay(t, extra=["--access", "private", "--users-file", users])
    relay.users = users
    agent = t.agent(relay, name=name, tcp={"echo": echo.port})
    return relay, agent, name


def test_doc_visitor_reaches_a_private_echo(t):
    """14.1 to 14.3, 2.4: a raw visitor with a Basic credential reaches the device's private TCP
    echo on stream 1 from the first byte, sends 1 MiB within the fixed window and the credit it
    gets, half-closes, gets FIN, then GOAWAY NORMAL "stream over" and close 1000."""
    relay, agent, name = _private_world(t)
    v = DocVisitor(relay.port, name, "echo", "alice", "alice-doc-secret")
    t.on_cleanup(v.ws.close)
    eq(v.ws.status, 101, "the visitor's upgrade (14.2): %r" % v.ws.body[:200])
    eq(v.ws.header("sec-websocket-protocol"), "tether-connect.v1", "the subprotocol echoed")
    data = os.urandom(MiB)
    sent = 0
    deadline = time.monotonic() + 30
    while len(v.got) < len(data):
        check(time.monotonic() < deadline, "1 MiB echoed within 30 s (got %d)" % len(v.got))
        if sent < len(data) and v.send_window > 0:
            n = min(len(data) - sent, v.send_window, 16384)
            v.ws.send(frame(DATA, data[sent:sent + n], 1))
            v.send_window -= n
            sent += n
            if sent == len(data):
                v.ws.send(frame(DATA, b"", 1, FIN))
        v.step(0.01 if sent < len(data) else 0.2)
        check(v.reset is None and (v.goaway is None or len(v.got) == len(data)),
              "the stream ended early: %r %r" % (v.reset, v.goaway))
    check(bytes(v.got) == data, "the echo is the bytes sent")
    wait_for(lambda: (v.step(0.2), v.fin_in)[1], 15, "the device side's FIN")
    code, frames = v.ws.frames_until_close()
    gone = ([v.goaway] if v.goaway else []) + [parse_coded(f[3]) for f in frames
                                                if f[0] == GOAWAY]
    eq(gone, [(GOAWAY_NORMAL, b"stream over")], "the relay's GOAWAY once stream 1 ended (14.3)")
    eq(code, 1000, "close code after GOAWAY NORMAL (2.4)")


def test_doc_visitor_refusals_and_revocation(t):
    """14.2: the refusals, each an HTTP answer with a one-line text body; 14.3, 2.4: a revoked
    visitor gets GOAWAY REVOKED and close 1008, and one connected when the relay stops GOAWAY
    SHUTDOWN and close 1001."""
    relay, agent, name = _private_world(t)
    cases = [
        (dict(user="alice", secret="wrong"), 401, b"authentication failed"),
        (dict(), 401, b"authentication required"),
        (dict(user="alice", secret="alice-doc-secret", service="nosuch"), 404, b"not found"),
        (dict(user="alice", secret="alice-doc-secret", device="doc-unknown"), 403,
         b"access denied"),
        (dict(user="alice", secret="alice-doc-secret", service="a b"), 400, b"bad request"),
    ]
    for kw, status, words in cases:
        dev = kw.pop("device", name)
        svc = kw.pop("service", "echo")
        v = DocVisitor(relay.port, dev, svc, **kw)
        t.on_cleanup(v.ws.close)
        eq(v.ws.status, status, "status for %s/%s %r" % (dev, svc, kw))
        body = v.ws.read_body()
        check(body.startswith(words) and body.endswith(b"\n") and body.count(b"\n") == 1,
              "a one-line body for %d: %r" % (status, body))
        check((v.ws.header("content-type") or "").startswith("text/plain"),
              "text/plain for %d" % status)
        if status == 401:
            eq(sorted(v.ws.headers.get("www-authenticate", [])),
               ['Basic realm="tether", charset="UTF-8"', 'Bearer realm="tether"'],
               "WWW-Authenticate of a 401")
    v = DocVisitor(relay.port, name, "echo", "alice", "alice-doc-secret")
    t.on_cleanup(v.ws.close)
    eq(v.ws.status, 101, "the visitor before the revocation")
    v.ws.send(frame(DATA, b"ping", 1))
    wait_for(lambda: (v.step(0.2), len(v.got) >= 4)[1], 15, "the echo before the revocation")
    with open(relay.users, "w") as f:
        f.write("bob bob-doc-secret %s/*\n" % name)
    relay.proc.send_signal(signal.SIGHUP)
    code, frames = v.ws.frames_until_close()
    eq([parse_coded(f[3])[0] for f in frames if f[0] == GOAWAY], [GOAWAY_REVOKED],
       "the GOAWAY of a revoked visitor (14.3)")
    eq(code, 1008, "close code after GOAWAY REVOKED (2.4)")
    # the relay stopping: GOAWAY SHUTDOWN and 1001 (14.3, 2.4)
    v = DocVisitor(relay.port, name, "echo", "bob", "bob-doc-secret")
    t.on_cleanup(v.ws.close)
    eq(v.ws.status, 101, "the visitor before the shutdown")
    v.ws.send(frame(DATA, b"ping", 1))
    wait_for(lambda: (v.step(0.2), len(v.got) >= 4)[1], 15, "the echo before the shutdown")
    relay.proc.send_signal(signal.SIGTERM)
    code, frames = v.ws.frames_until_close()
    eq([parse_coded(f[3])[0] for f in frames if f[0] == GOAWAY], [GOAWAY_SHUTDOWN],
       "the GOAWAY to a visitor when the relay stops (14.3)")
    eq(code, 1001, "close code after GOAWAY SHUTDOWN (2.4)")


# ---------------------------------------------------------------- 2.1, 2.2, 2.4: the WebSocket

def test_doc_subprotocol_is_optional(t):
    """2.1: the relay does not require tether.v1: an upgrade that offers no subprotocol, or a
    list without it, is a device connection answered without Sec-WebSocket-Protocol; one that
    offers it among others gets it echoed."""
    relay = _token_relay(t)
    for protocol in (None, "chat, superchat", "x.v9, tether.v1"):
        d = _registered(t, relay, protocol=protocol, services=[(HTTP, "http")])
        th, box = _in_thread(lambda: relay.request("GET", "/", label=d.welcome["label"]))
        d.serve_until(lambda: not th.is_alive(), 20, "a request (offered %r)" % protocol)
        eq(box.get("r", (0,))[0], 200, "status through a device that offered %r" % protocol)


def test_doc_websocket_errors_goaway_protocol_then_close(t):
    """2.2, 2.4: WebSocket-level errors end a registered session with GOAWAY PROTOCOL, then
    1002 (an unknown opcode, an unmasked frame from the device), 1003 (a text message) or 1009
    (a message over 1 MiB)."""
    relay = _token_relay(t)
    cases = [
        ("an unknown opcode", lambda ws: ws.send_ws(0x3, b"x"), 1002),
        ("an unmasked frame", lambda ws: ws.sock.sendall(b"\x82\x00"), 1002),
        ("a text message", lambda ws: ws.send_ws(0x1, b"hi"), 1003),
        ("a message over 1 MiB", lambda ws: ws.send_ws(0x2, b"\x00" * (MiB + 1)), 1009),
    ]
    for what, act, want in cases:
        d = _registered(t, relay, services=[(HTTP, "http")])
        act(d.ws)
        code, frames = d.ws.frames_until_close()
        eq([(f[0], parse_coded(f[3])[0]) for f in frames], [(GOAWAY, GOAWAY_PROTOCOL)],
           "the frames after %s" % what)
        eq(code, want, "the close code after %s" % what)


# ---------------------------------------------------------------- 2.4, 4.2, 6.3: a relay

class DocRelay:
    """A relay written from the document, for the reference agent: it answers each upgrade
    (2.1), reads the HELLO (4.1) and plays script[i] on the i-th connection (the last one for
    the rest): "bad-welcome" (a WELCOME whose label is not letters, digits and '-': 4.2),
    "takeover" / "shutdown" (a WELCOME, then GOAWAY TAKEOVER / SHUTDOWN and no close frame),
    "hold" (a WELCOME, then nothing). Records, per connection, when it came, the Tether frames
    the agent sent after its HELLO, and the close code it sent."""

    def __init__(self, t, script):
        self.script = script
        self.conns = []   # dicts: at, frames, close
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.done = False
        threading.Thread(target=self._accept, daemon=True).start()
        t.on_cleanup(self.close)

    def close(self):
        self.done = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self):
        while not self.done:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            rec = {"at": time.monotonic(), "frames": [], "close": None}
            with self.lock:
                i = len(self.conns)
                self.conns.append(rec)
            step = self.script[min(i, len(self.script) - 1)]
            threading.Thread(target=self._serve, args=(c, rec, step), daemon=True).start()

    @staticmethod
    def _read(c, n):
        b = b""
        while len(b) < n:
            x = c.recv(n - len(b))
            if not x:
                raise ConnectionError("EOF")
            b += x
        return b

    def _ws_read(self, c):
        """One frame from the agent (masked, 2.2): (opcode, payload)."""
        b0, b1 = self._read(c, 2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._read(c, 2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._read(c, 8))[0]
        check(b1 & 0x80, "the agent masks its frames (2.2)")
        key = self._read(c, 4)
        p = bytes(x ^ key[i % 4] for i, x in enumerate(self._read(c, n)))
        return b0 & 0x0F, p

    @staticmethod
    def _ws_send(c, payload, opcode=0x2):
        n = len(payload)
        head = bytes([0x80 | opcode]) + (bytes([n]) if n < 126 else
                                          bytes([126]) + struct.pack(">H", n))
        c.sendall(head + payload)

    def _serve(self, c, rec, step):
        c.settimeout(30)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # 2.5
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                x = c.recv(4096)
                if not x:
                    return
                head += x
            key = ""
            for line in head.decode("latin-1").split("\r\n"):
                if line.lower().startswith("sec-websocket-key:"):
                    key = line.split(":", 1)[1].strip()
            acc = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
            c.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                       "Sec-WebSocket-Protocol: tether.v1\r\n\r\n" % acc).encode())
            tb = b""
            while len(tb) < 8 or len(tb) < 8 + struct.unpack(">H", tb[:2])[0]:
                op, p = self._ws_read(c)
                tb += p
            eq(tb[2], HELLO, "the agent's first frame (6.2)")
            r = Reader(tb[8:])
            version, _, _ = r.u8(), r.u16(), r.u32()
            r.str8(), r.str8()
            if version >= 2:
                r.str8()
            label = b"bad label" if step == "bad-welcome" else b"k3j9x2mq"
            w = struct.pack(">BHI", version, 16, 262144) + s8(label)
            nsvc = r.u8()
            w += bytes([nsvc])
            for _ in range(nsvc):
                kind, name = r.u8(), r.str8()
                w += bytes([kind]) + s8(name)
                w += struct.pack(">H", 0) + s8(b"http://k3j9x2mq.localhost:1") if kind == HTTP \
                    else struct.pack(">H", 20001) + s8(b"localhost")
            if version >= 2:
                w += s8(b"")
            self._ws_send(c, frame(WELCOME, w))
            if step in ("takeover", "shutdown"):
                code = GOAWAY_TAKEOVER if step == "takeover" else GOAWAY_SHUTDOWN
                self._ws_send(c, frame(GOAWAY, coded(code, b"doc relay")))
            tb = b""
            while True:
                op, p = self._ws_read(c)
                if op == 0x8:
                    rec["close"] = struct.unpack(">H", p[:2])[0] if len(p) >= 2 else 1005
                    self._ws_send(c, p[:2], 0x8)
                    return
                if op in (0x0, 0x2):
                    tb += p
                    while len(tb) >= 8 and len(tb) >= 8 + struct.unpack(">H", tb[:2])[0]:
                        n = struct.unpack(">H", tb[:2])[0]
                        rec["frames"].append((tb[2], tb[8:8 + n]))
                        tb = tb[8 + n:]
                elif op == 0x9:
                    self._ws_send(c, p, 0xA)
        except (OSError, ConnectionError, TestFailure):
            pass
        finally:
            c.close()


def test_doc_reference_agent_goaway_and_backoff(t):
    """2.4, 4.2, 6.3 against the reference agent: it answers a WELCOME it cannot use with
    GOAWAY PROTOCOL and 1002; on GOAWAY it sends no Tether frame and closes with 1000; after
    TAKEOVER it warns and its back-off keeps growing (about 1, 2, 4 s: no tight loop); after
    SHUTDOWN it starts over (about 1 s)."""
    relay = DocRelay(t, ["bad-welcome", "takeover", "takeover", "shutdown", "hold"])
    state = t.mkdtemp("doc-agent-state")
    argv = [TETHER, "--server", "ws://127.0.0.1:%d/" % relay.port, "--name", "doc-agent",
            "--token", "doc-token", "--http", "127.0.0.1:9"]
    if tether_has_state_dir():
        argv += ["--state-dir", state]
    agent = Proc(t, "tether", argv)
    wait_for(lambda: len(relay.conns) >= 5 and relay.conns[3]["close"] is not None, 60,
             "five connections from the agent")
    c = relay.conns
    eq([(typ, parse_coded(p)[0]) for typ, p in c[0]["frames"]], [(GOAWAY, GOAWAY_PROTOCOL)],
       "the agent's frames after an unusable WELCOME")
    eq(c[0]["close"], 1002, "the agent's close code after an unusable WELCOME")
    for i in (1, 2, 3):
        eq(c[i]["frames"], [], "the agent's frames after GOAWAY (connection %d)" % i)
        eq(c[i]["close"], 1000, "the agent's close code after GOAWAY (connection %d)" % i)
    gaps = [c[i + 1]["at"] - c[i]["at"] for i in range(4)]
    print("gaps between connections: %s" % ", ".join("%.2f s" % g for g in gaps))
    check(gaps[1] > gaps[0] and gaps[2] > gaps[1],
          "the back-off grows through the takeovers: %r" % gaps)
    check(gaps[3] < gaps[2], "the back-off starts over after SHUTDOWN: %r" % gaps)
    wait_for(lambda: agent.stderr_text().count("took over device=doc-agent") >= 2, 10,
             "the takeover warning")
