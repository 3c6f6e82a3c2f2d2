"""rawdev.py - a raw WebSocket client and a hand-made Tether device for the e2e tests that send
the relay what no well-behaved agent sends: bad handshakes, bad WebSocket frames, bad or
oversized protocol messages. Python 3 standard library only; frames are built by hand from
RFC 6455 and docs/PROTOCOL.md, so the tests do not depend on the code under test.
"""

import base64
import os
import socket
import struct
import time

from lib import TestFailure, ws_accept

# Tether frame types (docs/PROTOCOL.md, section 4)
HELLO, WELCOME, REFUSE, OPEN, DATA, WINDOW, RESET, GOAWAY = range(1, 9)


def rss_kib(pid):
    """The resident set size of process pid in KiB (VmRSS in /proc/PID/status)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise TestFailure("no VmRSS for pid %d" % pid)


def ws_header(opcode, length, mask=True, fin=True, rsv=0):
    """The bytes of a WebSocket frame header (RFC 6455 5.2), mask key included if mask."""
    head = bytearray([(0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0x0F)])
    m = 0x80 if mask else 0
    if length < 126:
        head.append(m | length)
    elif length < 65536:
        head.append(m | 126)
        head += struct.pack(">H", length)
    else:
        head.append(m | 127)
        head += struct.pack(">Q", length)
    return bytes(head)


def masked(payload, key):
    if not payload:
        return b""
    k = (key * (len(payload) // 4 + 1))[:len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(len(payload), "big")


def ws_frame(opcode, payload, mask=True, fin=True, rsv=0):
    h = ws_header(opcode, len(payload), mask, fin, rsv)
    if not mask:
        return h + payload
    key = os.urandom(4)
    return h + key + masked(payload, key)


def tframe(typ, payload=b"", flags=0, stream=0):
    """One Tether frame: length u16, type u8, flags u8, stream u32, payload."""
    return struct.pack(">HBBI", len(payload), typ, flags, stream) + payload


def s8(b):
    b = b if isinstance(b, bytes) else b.encode()
    return bytes([len(b)]) + b


def hello(name, token, services=((1, "http"),), version=2, max_streams=1024, window=262144,
          key=b""):
    """A HELLO frame; services are (kind, name) with kind 1 = http, 2 = tcp. Version 2 (and
    later) carries the device key after the token; version 1 has no key field."""
    p = struct.pack(">BHI", version, max_streams, window) + s8(name) + s8(token)
    if version >= 2:
        p += s8(key)
    p += bytes([len(services)])
    for kind, n in services:
        p += bytes([kind]) + s8(n)
    return tframe(HELLO, p)


def parse_tframes(data):
    """[(type, flags, stream, payload)] of the whole frames in data, and the rest."""
    out = []
    while len(data) >= 8:
        n, typ, flags, stream = struct.unpack(">HBBI", data[:8])
        if len(data) < 8 + n:
            break
        out.append((typ, flags, stream & 0x7FFFFFFF, data[8:8 + n]))
        data = data[8 + n:]
    return out, data


class RawWs:
    """A WebSocket client over a plain socket to the relay's device endpoint (Host: the relay's
    own address), with full control of the handshake and of every frame sent."""

    def __init__(self, port, key=None, version="13", method="GET", proto="HTTP/1.1",
                 extra_headers="", connection="Upgrade", timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
        head = "%s / %s\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n" % (method, proto, port)
        if connection is not None:
            head += "Connection: %s\r\n" % connection
        if self.key != "":
            head += "Sec-WebSocket-Key: %s\r\n" % self.key
        if version is not None:
            head += "Sec-WebSocket-Version: %s\r\n" % version
        head += extra_headers + "\r\n"
        self.sock.sendall(head.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = self.sock.recv(4096)
            if not b:
                raise TestFailure("connection closed during the handshake: %r" % buf)
            buf += b
        head, _, self.pending = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        if self.status == 101:
            want = ws_accept(self.key)
            if self.headers.get("sec-websocket-accept") != want:
                raise TestFailure("wrong Sec-WebSocket-Accept %r (want %r)" %
                                  (self.headers.get("sec-websocket-accept"), want))
        self.tbuf = b""  # Tether bytes received, not parsed yet

    def send(self, data):
        """Sends raw bytes; ignores errors (the relay may have closed already)."""
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def send_message(self, payload):
        """One masked binary message."""
        self.send(ws_frame(0x2, payload))

    def _readn(self, n, deadline):
        while len(self.pending) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no frame within the deadline")
            self.sock.settimeout(left)
            b = self.sock.recv(65536)
            if not b:
                raise EOFError("EOF")
            self.pending += b
        out, self.pending = self.pending[:n], self.pending[n:]
        return out

    def read_frame(self, timeout=30):
        """(fin, opcode, payload) of the next frame from the relay (which never masks)."""
        deadline = time.monotonic() + timeout
        b0, b1 = self._readn(2, deadline)
        if b1 & 0x80:
            raise TestFailure("the relay sent a masked frame")
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._readn(2, deadline))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._readn(8, deadline))[0]
        return bool(b0 & 0x80), b0 & 0x0F, self._readn(n, deadline) if n else b""

    def read_tframes(self, timeout=30):
        """The Tether frames of the next binary message(s), skipping control frames; returns
        ([(type, flags, stream, payload)], close_code or None)."""
        deadline = time.monotonic() + timeout
        while True:
            fin, op, payload = self.read_frame(max(0.1, deadline - time.monotonic()))
            if op == 0x8:
                return [], struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
            if op in (0x0, 0x2):
                self.tbuf += payload
                frames, self.tbuf = parse_tframes(self.tbuf)
                if frames:
                    return frames, None

    def read_close(self, timeout=30):
        """Reads until the relay's close frame; returns (close code, [Tether frames seen before
        it]). Fails if the connection ends without one."""
        seen = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                fin, op, payload = self.read_frame(max(0.1, deadline - time.monotonic()))
                if op == 0x8:
                    code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
                    return code, seen
                if op in (0x0, 0x2):
                    self.tbuf += payload
                    frames, self.tbuf = parse_tframes(self.tbuf)
                    seen += frames
        except (EOFError, ConnectionResetError) as e:
            raise TestFailure("the relay closed the connection without a close frame (%s); "
                              "Tether frames seen: %r" % (e, seen))
        except socket.timeout:
            raise TestFailure("no close frame from the relay within %ds; Tether frames seen: %r"
                              % (timeout, seen))

    def register(self, name, token, services=((1, "http"),), **kw):
        """Sends HELLO and returns the answer frame (WELCOME or REFUSE) as (type, payload)."""
        self.send_message(hello(name, token, services, **kw))
        frames, code = self.read_tframes()
        if code is not None:
            raise TestFailure("the relay closed (%d) instead of answering HELLO" % code)
        return frames[0][0], frames[0][3]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- floods (test_abuse_queues.py)

def ping_block(count, payload_len=125, mask=True):
    """count WebSocket pings (opcode 9) of payload_len bytes each, concatenated: a client's
    (masked) or a server's (unmasked). One frame is built and repeated."""
    payload = bytes((i * 7) & 0xFF for i in range(payload_len))
    return ws_frame(0x9, payload, mask=mask) * count


def flood(sock, block, total, seconds):
    """Sends block over and over until total bytes went out, seconds passed, or the socket
    failed (the peer closed, or stopped reading for 5 s). Never reads. Returns the bytes sent."""
    sent = 0
    deadline = time.monotonic() + seconds
    sock.settimeout(5)
    try:
        while sent < total and time.monotonic() < deadline:
            sock.sendall(block)
            sent += len(block)
    except OSError:
        pass
    return sent


def ws_upgrade(port, rcvbuf=None, host="127.0.0.1", timeout=30):
    """A socket to the relay's device endpoint after a successful WebSocket upgrade (nothing
    else sent). rcvbuf: SO_RCVBUF set before connecting, so that the kernel buffers little of
    what the relay sends to a client that never reads."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
               % (host, port, key)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(1)  # byte by byte: nothing past the head is taken off the socket
        if not b:
            raise TestFailure("connection closed during the handshake: %r" % buf)
        buf += b
    if not buf.startswith(b"HTTP/1.1 101"):
        raise TestFailure("the upgrade was not accepted: %r" % buf[:200])
    return s


def ws_accept_client(sock, timeout=30):
    """Server side of the opening handshake on an accepted socket: reads the request head byte
    by byte (nothing past it), answers 101 with the right Sec-WebSocket-Accept. Returns the
    request head."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = sock.recv(1)
        if not b:
            raise TestFailure("the client closed during the handshake: %r" % buf)
        buf += b
        if len(buf) > 16384:
            raise TestFailure("request head too long: %r" % buf[:200])
    key = None
    for line in buf.decode("latin-1").split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "sec-websocket-key":
            key = v.strip()
    if key is None:
        raise TestFailure("no Sec-WebSocket-Key in %r" % buf)
    sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                  % ws_accept(key)).encode())
    return buf


class RssPeak:
    """Samples the VmRSS of pid every interval seconds in a thread until stop(); peak is the
    largest figure seen (KiB)."""

    def __init__(self, pid, interval=0.02):
        import threading
        self.pid = pid
        self.peak = rss_kib(pid)
        self._stop = threading.Event()
        self._interval = interval
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
            except (OSError, TestFailure):
                return
            self._stop.wait(self._interval)

    def stop(self):
        self._stop.set()
        self._t.join(10)
        try:
            self.peak = max(self.peak, rss_kib(self.pid))
        except (OSError, TestFailure):
            pass
        return self.peak
