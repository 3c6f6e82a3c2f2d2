"""lib.py - the end-to-end tests' toolbox: starts the real tetherd and tether and real local
services (HTTP with upload/download/SSE/WebSocket endpoints, TCP echo, redis-server, sshd) on
loopback, each on a free port, in a per-test temp dir. Python 3 standard library only.

Every process and server is registered with the test's Env, which stops them all (by PID) in
cleanup(), even when the test failed, and reports any sanitizer output of tetherd or tether.
Nothing here checks timing: waits are generous upper bounds for things that must happen.
"""

import base64
import hashlib
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TETHERD = os.path.abspath(os.environ.get("TETHERD", os.path.join(ROOT, "build/sanitize/bin/tetherd")))
TETHER = os.path.abspath(os.environ.get("TETHER", os.path.join(ROOT, "build/sanitize/bin/tether")))
TOKEN = "e2e-token-0123456789abcdef"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Sanitizer and crash markers that fail a test when tetherd or tether prints them.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "AddressSanitizer:DEADLYSIGNAL", "UndefinedBehaviorSanitizer")


# Variables that make tether (or curl) use a proxy, compared in lowercase.
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ws_proxy", "wss_proxy")


class TestFailure(AssertionError):
    pass


def check(cond, msg):
    """Fails the test with msg unless cond holds."""
    if not cond:
        raise TestFailure(msg)


def eq(got, want, what):
    if got != want:
        raise TestFailure("%s: got %s, want %s" % (what, short(got), short(want)))


def short(v, n=300):
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."


def wait_for(pred, timeout, what, interval=0.05):
    """Polls pred() until it returns a true value (returned) or timeout seconds pass (fails)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except (OSError, http.client.HTTPException) as e:
            last_exc = e
        if time.monotonic() > deadline:
            extra = " (last error: %r)" % last_exc if last_exc else ""
            raise TestFailure("timed out after %gs waiting for %s%s" % (timeout, what, extra))
        time.sleep(interval)


# ---------------------------------------------------------------- ports

def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bindable(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port_range(n=8):
    """LOW, HIGH of n consecutive free ports, below Linux's ephemeral range."""
    rnd = int.from_bytes(os.urandom(4), "big")
    for i in range(200):
        low = 21000 + (rnd + i * 97) % 11000
        if all(_bindable(p) for p in range(low, low + n)):
            return low, low + n - 1
    raise TestFailure("no %d consecutive free ports found" % n)


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------- processes

class Proc:
    """A process we started: stdout lines collected by a thread, stderr to a file."""

    def __init__(self, env, name, argv, env_vars=None, cwd=None):
        self.env = env
        self.name = name
        self.argv = argv
        self.stderr_path = env.path("%s.%d.stderr" % (name, len(env.procs)))
        self._err = open(self.stderr_path, "wb")
        # Proxy variables of the machine running the tests are not the tests': tether honours them
        # (as curl does). A test that wants them passes them in env_vars.
        e = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARS}
        if env_vars:
            e.update(env_vars)
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=self._err, env=e, cwd=cwd)
        self.pid = self.p.pid
        self.lines = []
        self.cond = threading.Condition()
        self.eof = False
        self.stopped = False  # stopped on purpose: an exit status is expected
        env.procs.append(self)
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        for raw in self.p.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait_line(self, pred, timeout=30, start=0, what="a line"):
        """Returns (index, line) of the first stdout line at or after start for which pred is
        true; fails if the process exits or timeout passes first."""
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.lines):
                    if pred(self.lines[i]):
                        return i, self.lines[i]
                    i += 1
                if self.eof:
                    self.p.wait()
                    raise TestFailure("%s exited (status %s) before printing %s; stderr: %s" %
                                      (self.name, self.p.returncode, what, self.stderr_tail(15)))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TestFailure("%s printed no %s within %gs; stdout so far: %r; stderr: %s"
                                      % (self.name, what, timeout, self.lines[-10:],
                                         self.stderr_tail(15)))
                self.cond.wait(left)

    def alive(self):
        return self.p.poll() is None

    def send_signal(self, sig):
        if self.p.poll() is None:
            os.kill(self.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends sig (by PID), waits up to timeout, then SIGKILL. Returns the exit status."""
        self.stopped = True
        if self.p.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait()
        self._err.flush()
        return self.p.returncode

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stderr_tail(self, n=30):
        lines = self.stderr_text().splitlines()
        return "\n".join(lines[-n:]) if lines else "(empty)"

    def sanitizer_report(self):
        text = self.stderr_text()
        for m in SANITIZER_MARKERS:
            i = text.find(m)
            if i >= 0:
                return text[max(0, text.rfind("\n", 0, max(0, i - 200)) + 1):][:4000]
        return None


# Flags every Relay gets before its own extra ones (the benchmarks relax the abuse limits that
# their load generators, many devices from one address, would otherwise hit).
RELAY_EXTRA = []


class Relay:
    """tetherd on free ports with --domain localhost, a TCP port range, a token and a data dir."""

    def __init__(self, env, grace="30s", token=TOKEN, tcp_ports=None, extra=(), port=None,
                 admin_port=None, data_dir=None):
        self.env = env
        self.port = port or free_port()
        self.admin_port = admin_port or free_port()
        self.tcp_low, self.tcp_high = tcp_ports or free_port_range(8)
        self.data_dir = data_dir or env.mkdtemp("data")
        self.token = token
        argv = [TETHERD, "--listen", "127.0.0.1:%d" % self.port, "--domain", "localhost",
                "--tcp-ports", "%d-%d" % (self.tcp_low, self.tcp_high),
                "--tcp-bind", "127.0.0.1", "--grace", grace, "--data-dir", self.data_dir,
                "--admin-listen", "127.0.0.1:%d" % self.admin_port]
        if token is not None:
            argv += ["--token", token]
        argv += list(RELAY_EXTRA) + list(extra)
        self.proc = Proc(env, "tetherd", argv)
        wait_for(lambda: self._up(), 30, "tetherd to listen on 127.0.0.1:%d" % self.port)

    def _up(self):
        if not self.proc.alive():
            raise TestFailure("tetherd exited with status %s at start; stderr: %s" %
                              (self.proc.p.returncode, self.proc.stderr_tail(15)))
        return port_open(self.port)

    @property
    def url(self):
        return "ws://127.0.0.1:%d" % self.port

    def host(self, label):
        return "%s.localhost:%d" % (label, self.port)

    def request(self, method, path, label=None, host=None, body=None, headers=None, timeout=30):
        """One request on a fresh connection to the relay with Host LABEL.localhost:PORT.
        Returns (status, headers dict with lowercase keys, body bytes)."""
        h = {"Host": host or self.host(label)}
        h.update(headers or {})
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def stop(self, sig=signal.SIGTERM):
        return self.proc.stop(sig)


SERVICE_RE = re.compile(r"^ready (http|tcp) ")


class Agent:
    """tether connected to relay, exposing http (a HOST:PORT or NAME=HOST:PORT) and tcp
    ({name: port}) services. With wait=True, waits for the first registration."""

    def __init__(self, env, relay, name=None, http=None, tcp=None, json_mode=False, token=None,
                 wait=True, extra=(), server=None, env_vars=None, state_dir=None):
        self.env = env
        self.relay = relay
        self.name = name or "dev-" + os.urandom(4).hex()
        self.http = http
        self.tcp = dict(tcp or {})
        self.json_mode = json_mode
        argv = [TETHER, "--server", server or relay.url, "--name", self.name,
                "--token", token if token is not None else relay.token]
        # The device key's directory: one per test (agent_state_dir), so that an agent started
        # again under the same name is the same device; a test passes its own for another one.
        self.state_dir = state_dir or agent_state_dir(env)
        if tether_has_state_dir():
            argv += ["--state-dir", self.state_dir]
        for h in (http if isinstance(http, (list, tuple)) else [http] if http else []):
            argv += ["--http", h if isinstance(h, str) else "127.0.0.1:%d" % h]
        for n, p in self.tcp.items():
            argv += ["--tcp", "%s=127.0.0.1:%d" % (n, p)]
        if json_mode:
            argv += ["--json"]
        argv += list(extra)
        self.proc = Proc(env, "tether", argv, env_vars=env_vars)
        self.seen = 0  # stdout lines already consumed by wait_ready
        self.label = None
        self.services = {}
        if wait:
            self.wait_ready()

    def nservices(self):
        h = self.http
        return (len(h) if isinstance(h, (list, tuple)) else 1 if h else 0) + len(self.tcp)

    def wait_ready(self, timeout=30):
        """Waits for the next registration's ready lines (or --json ready event) and returns
        {name: info}; info has kind, and url+label (http) or host+port (tcp), and target."""
        if self.json_mode:
            i, line = self.proc.wait_line(lambda l: _json_event(l) == "ready", timeout,
                                          self.seen, 'a {"event":"ready"} line')
            self.seen = i + 1
            ev = json.loads(line)
            services = {}
            for s in ev.get("services", []):
                services[s.get("name")] = dict(s)
                if s.get("kind") == "http" and isinstance(s.get("url"), str):
                    m = re.match(r"^https?://([^.]+)\.", s["url"])
                    if m:
                        services[s["name"]]["label"] = m.group(1)
        else:
            services = {}
            for _ in range(self.nservices()):
                i, line = self.proc.wait_line(lambda l: SERVICE_RE.match(l), timeout, self.seen,
                                              "a 'ready' line")
                self.seen = i + 1
                services.update(parse_ready(line))
        self.services = services
        for s in services.values():
            if s.get("kind") == "http" and s.get("label") and not s.get("sub"):
                self.label = s["label"]
        return services

    def tcp_port(self, name):
        s = self.services.get(name)
        check(s and s.get("kind") == "tcp", "no tcp service %r in %r" % (name, self.services))
        return int(s["port"])

    def stop(self, sig=signal.SIGTERM):
        return self.proc.stop(sig)


def _json_event(line):
    try:
        v = json.loads(line)
    except ValueError:
        return None
    return v.get("event") if isinstance(v, dict) else None


READY_HTTP_RE = re.compile(r"^ready http (https?://(?:([a-z0-9-]+)--)?([a-z0-9]+)\.([^:/\s]+)(?::(\d+))?)"
                           r" -> (\S+)$")
READY_TCP_RE = re.compile(r"^ready tcp (\S+) (\S+):(\d+) -> (\S+)$")


def parse_ready(line):
    m = READY_HTTP_RE.match(line)
    if m:
        # The main HTTP service is LABEL.DOMAIN; the others SERVICE--LABEL.DOMAIN (the relay's
        # naming, keyed here by SERVICE since the line does not carry the service name).
        return {m.group(2) or "http": {"kind": "http", "url": m.group(1), "label": m.group(3),
                                       "sub": m.group(2), "domain": m.group(4),
                                       "port": m.group(5), "target": m.group(6), "line": line}}
    m = READY_TCP_RE.match(line)
    if m:
        return {m.group(1): {"kind": "tcp", "host": m.group(2), "port": int(m.group(3)),
                             "target": m.group(4), "line": line}}
    raise TestFailure("ready line does not have the contract's form: %r" % line)


# ---------------------------------------------------------------- the test environment

class Env:
    """One test's world: a temp dir, the processes and servers it started, and their cleanup."""

    def __init__(self, name):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="tether-e2e-%s-" % name)
        self.procs = []
        self.closers = []

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def mkdtemp(self, prefix):
        return tempfile.mkdtemp(prefix=prefix + "-", dir=self.dir)

    def on_cleanup(self, fn):
        self.closers.append(fn)

    # shortcuts
    def relay(self, **kw):
        return Relay(self, **kw)

    def agent(self, relay, **kw):
        return Agent(self, relay, **kw)

    def http_service(self, **kw):
        return HttpService(self, **kw)

    def tcp_echo(self):
        return TcpEcho(self)

    def cleanup(self):
        """Stops everything; returns a list of problems found (sanitizer reports, exits)."""
        problems = []
        for p in reversed(self.procs):
            died = not p.alive() and not p.stopped
            p.stop(signal.SIGTERM, timeout=10)
            if died and p.name in ("tetherd", "tether"):
                problems.append("%s (pid %d) had died during the test with status %s; stderr:\n%s"
                                % (p.name, p.pid, p.p.returncode, p.stderr_tail(30)))
        for fn in reversed(self.closers):
            try:
                fn()
            except Exception:
                pass
        for p in self.procs:
            if p.name in ("tetherd", "tether"):
                rep = p.sanitizer_report()
                if rep:
                    problems.append("%s (pid %d) printed a sanitizer report:\n%s" %
                                    (p.name, p.pid, rep))
        return problems

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def diagnostics(self, n=25):
        out = []
        for p in self.procs:
            if p.name in ("tetherd", "tether"):
                out.append("--- %s pid %d: %s" % (p.name, p.pid, " ".join(p.argv)))
                if p.lines:
                    out.append("stdout (last %d):" % n)
                    out.extend(p.lines[-n:])
                out.append("stderr (last %d):" % n)
                out.append(p.stderr_tail(n))
        return "\n".join(out)


# ---------------------------------------------------------------- HTTP service on the device

class HttpService:
    """A threaded HTTP/1.1 server on 127.0.0.1 (the device's local web server):

    GET  /big           the download file (self.big, size big_size), Content-Length
    GET  /blob?n=N      N bytes of a fixed pattern
    GET  /small?i=I     a short text body naming I (keep-alive tests)
    POST|PUT /upload    reads the body (Content-Length or chunked); answers JSON
                        {"sha256","length","chunked"}
    GET  /whoami        the service's ident (tells devices apart)
    GET  /headers       the request's method, path, headers (as [name, value] pairs), peer
    GET  /sse?n=N       text/event-stream, chunked: event k is sent only once the test has
                        called sse_ack(k-1) (or after 60 s), then the stream ends
    GET  /ws            WebSocket echo (text, binary, ping, close)
    """

    def __init__(self, env, big_size=6 * 1024 * 1024, ident="device"):
        self.env = env
        self.ident = ident
        self.big = os.urandom(big_size)
        self.big_sha = hashlib.sha256(self.big).hexdigest()
        self.sse_acks = {}
        self.sse_lock = threading.Condition()
        self.requests = 0
        svc = self

        class Handler(_Handler):
            service = svc

        self.server = _ThreadingServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        env.on_cleanup(self.close)

    def sse_ack(self, k):
        with self.sse_lock:
            self.sse_acks[k] = True
            self.sse_lock.notify_all()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# A page for the browser test: its script fetches /whoami and echoes a message over a WebSocket
# to /ws, both through the same origin (the device URL), and writes what it got into the DOM.
APP_PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>Tether browser check</title></head>
<body><p id="fetch">fetch: pending</p><p id="ws">ws: pending</p>
<script>
fetch("/whoami").then(r => r.text()).then(t => {
  document.getElementById("fetch").textContent = "fetch: " + t;
}).catch(e => { document.getElementById("fetch").textContent = "fetch failed: " + e; });
const ws = new WebSocket("ws://" + location.host + "/ws");
ws.onopen = () => ws.send("ping-from-browser");
ws.onmessage = ev => { document.getElementById("ws").textContent = "ws: " + ev.data; ws.close(); };
ws.onerror = () => { document.getElementById("ws").textContent = "ws failed"; };
</script></body></html>
"""


class _ThreadingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body are separate writes
    service = None

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, body, ctype="application/octet-stream", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _query(self):
        q = {}
        if "?" in self.path:
            for part in self.path.split("?", 1)[1].split("&"):
                k, _, v = part.partition("=")
                q[k] = v
        return q

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        svc = self.service
        svc.requests += 1
        path = self.path.split("?", 1)[0]
        if path == "/big":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(svc.big)))
            self.end_headers()
            view = memoryview(svc.big)
            for off in range(0, len(view), 256 * 1024):
                self.wfile.write(view[off:off + 256 * 1024])
        elif path == "/blob":
            n = int(self._query().get("n", "0"))
            self._send(200, pattern(n))
        elif path == "/small":
            self._send(200, ("small %s\n" % self._query().get("i", "")).encode(), "text/plain")
        elif path == "/headers":
            body = json.dumps({"method": self.command, "path": self.path,
                               "headers": [[k, v] for k, v in self.headers.items()],
                               "peer": "%s:%d" % self.client_address[:2]}).encode()
            self._send(200, body, "application/json")
        elif path == "/sse":
            self._sse(int(self._query().get("n", "5")))
        elif path == "/ws" and "websocket" in self.headers.get("Upgrade", "").lower():
            self._websocket()
        elif path == "/whoami":
            self._send(200, svc.ident.encode(), "text/plain")
        elif path == "/app":
            self._send(200, APP_PAGE, "text/html; charset=utf-8")
        elif path == "/":
            self._send(200, b"<html><body>Hello from a Tether device</body></html>\n",
                       "text/html")
        else:
            self._send(404, b"not found\n", "text/plain")

    def do_POST(self):
        self.service.requests += 1
        if self.path.split("?", 1)[0] != "/upload":
            self._send(404, b"not found\n", "text/plain")
            return
        h = hashlib.sha256()
        n = 0
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        if chunked:
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                left = size
                while left:
                    b = self.rfile.read(min(left, 65536))
                    if not b:
                        raise ConnectionError("EOF in chunk")
                    h.update(b)
                    n += len(b)
                    left -= len(b)
                self.rfile.readline(16)
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                b = self.rfile.read(min(left, 65536))
                if not b:
                    raise ConnectionError("EOF in body")
                h.update(b)
                n += len(b)
                left -= len(b)
        self._send(200, json.dumps({"sha256": h.hexdigest(), "length": n,
                                    "chunked": chunked}).encode(), "application/json")

    do_PUT = do_POST

    def _sse(self, n):
        svc = self.service
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        for k in range(n):
            if k > 0:
                deadline = time.monotonic() + 60
                with svc.sse_lock:
                    while not svc.sse_acks.get(k - 1) and time.monotonic() < deadline:
                        svc.sse_lock.wait(1)
            ev = ("id: %d\nevent: tick\ndata: event %d\n\n" % (k, k)).encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(ev), ev))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _websocket(self):
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = ws_accept(key)
        self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" %
                          accept).encode())
        self.wfile.flush()
        self.close_connection = True
        read = _exact_reader(self.rfile.read)
        try:
            while True:
                fin, op, payload = ws_read_frame(read)
                if op == 0x8:
                    self.wfile.write(ws_frame(0x8, payload[:2], mask=False))
                    self.wfile.flush()
                    return
                if op == 0x9:
                    self.wfile.write(ws_frame(0xA, payload, mask=False))
                elif op in (0x0, 0x1, 0x2):
                    self.wfile.write(ws_frame(op, payload, mask=False, fin=fin))
                self.wfile.flush()
        except (ConnectionError, OSError):
            return


def pattern(n):
    """n bytes of a fixed, position-dependent pattern."""
    unit = bytes(range(251))
    return (unit * (n // len(unit) + 1))[:n]


# ---------------------------------------------------------------- WebSocket (RFC 6455) pieces

def ws_accept(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def ws_frame(opcode, payload, mask=True, fin=True):
    head = bytearray([(0x80 if fin else 0) | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head.append(mbit | n)
    elif n < 65536:
        head.append(mbit | 126)
        head += struct.pack(">H", n)
    else:
        head.append(mbit | 127)
        head += struct.pack(">Q", n)
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    return bytes(head) + key + _xor(payload, key)


def _xor(data, key):
    if not data:
        return b""
    k = (key * (len(data) // 4 + 1))[:len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(len(data), "big")


def _exact_reader(read):
    def readn(n):
        buf = b""
        while len(buf) < n:
            b = read(n - len(buf))
            if not b:
                raise ConnectionError("EOF inside a WebSocket frame")
            buf += b
        return buf
    return readn


def ws_read_frame(readn):
    """Reads one frame with readn(n) -> exactly n bytes. Returns (fin, opcode, payload)."""
    b0, b1 = readn(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", readn(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", readn(8))[0]
    key = readn(4) if b1 & 0x80 else None
    payload = readn(n) if n else b""
    if key:
        payload = _xor(payload, key)
    return bool(b0 & 0x80), b0 & 0x0F, payload


class WsClient:
    """A minimal WebSocket client over a plain socket to 127.0.0.1:port with a chosen Host."""

    def __init__(self, port, host, path="/ws", timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n" % (path, host, key)).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = self.sock.recv(4096)
            if not b:
                raise TestFailure("connection closed during the WebSocket handshake: %r" % buf)
            buf += b
        head, _, self.pending = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.status = int(lines[0].split()[1])
        self.expected_accept = ws_accept(key)

    def _readn(self, n):
        while len(self.pending) < n:
            b = self.sock.recv(65536)
            if not b:
                raise ConnectionError("EOF inside a WebSocket frame")
            self.pending += b
        out, self.pending = self.pending[:n], self.pending[n:]
        return out

    def send(self, opcode, payload):
        self.sock.sendall(ws_frame(opcode, payload, mask=True))

    def recv(self):
        """Returns (opcode, payload) of the next whole message (continuations joined)."""
        fin, op, payload = ws_read_frame(self._readn)
        while not fin:
            fin, _, more = ws_read_frame(self._readn)
            payload += more
        return op, payload

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------- TCP services

class _TcpServer:
    """Accept loop on 127.0.0.1:0; handler(conn) runs in a thread per connection."""

    def __init__(self, env, handler):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.connections = 0
        self.closed = False
        threading.Thread(target=self._loop, daemon=True).start()
        env.on_cleanup(self.close)

    def _loop(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._run, args=(c,), daemon=True).start()

    def _run(self, c):
        try:
            self.handler(c)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class TcpEcho(_TcpServer):
    """Echoes every byte until EOF, then shuts down its write side (half-close) and closes."""

    def __init__(self, env):
        self.eofs = 0
        super().__init__(env, self._echo)

    def _echo(self, c):
        while True:
            b = c.recv(65536)
            if not b:
                break
            c.sendall(b)
        self.eofs += 1
        c.shutdown(socket.SHUT_WR)


class TcpBanner(_TcpServer):
    """Sends a banner, shuts down its write side at once, then reads until EOF and keeps what it
    read in self.received (a list of bytes, one per connection)."""

    def __init__(self, env, banner=b"banner from the device\n"):
        self.banner = banner
        self.received = []
        self.done = threading.Event()
        super().__init__(env, self._serve)

    def _serve(self, c):
        c.sendall(self.banner)
        c.shutdown(socket.SHUT_WR)
        self.received.append(recv_all(c))
        self.done.set()


def tcp_connect(port, timeout=30):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def recv_all(sock):
    out = bytearray()
    while True:
        b = sock.recv(65536)
        if not b:
            return bytes(out)
        out += b


# ---------------------------------------------------------------- redis-server and sshd

def which(name, extra_dirs=("/usr/sbin", "/sbin")):
    p = shutil.which(name)
    if p:
        return p
    for d in extra_dirs:
        c = os.path.join(d, name)
        if os.access(c, os.X_OK):
            return c
    return None


class RedisServer:
    """redis-server on a free loopback port (or port: a restart on the same one), no
    persistence."""

    def __init__(self, env, port=None):
        exe = which("redis-server")
        check(exe, "redis-server is not installed (scripts/deps.sh test installs it)")
        self.port = port or free_port()
        d = env.mkdtemp("redis")
        self.proc = Proc(env, "redis-server",
                         [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", d, "--daemonize", "no",
                          "--protected-mode", "no", "--logfile", ""])
        wait_for(lambda: self.proc.alive() and port_open(self.port), 30, "redis-server to listen")


def resp_command(sock, *args):
    """Sends one RESP command and returns the decoded reply."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    sock.sendall(out)
    f = sock.makefile("rb")
    try:
        return _resp_read(f)
    finally:
        f.close()


def _resp_read(f):
    line = f.readline()
    if not line:
        raise TestFailure("connection closed while waiting for a Redis reply")
    t, rest = line[:1], line[1:-2]
    if t in (b"+", b"-"):
        return (t + rest).decode()
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if t == b"*":
        return [_resp_read(f) for _ in range(int(rest))]
    raise TestFailure("bad Redis reply %r" % line)


class Sshd:
    """A throw-away sshd on a free loopback port: temp host key, temp client key authorized for
    the current user, no PAM, no passwords."""

    def __init__(self, env):
        exe = which("sshd")
        check(exe and which("ssh") and which("ssh-keygen"),
              "sshd/ssh/ssh-keygen not installed (scripts/deps.sh test installs them)")
        self.env = env
        d = self.dir = env.mkdtemp("sshd")
        os.chmod(d, 0o700)
        for k in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            os.path.join(d, k)], check=True, stdout=subprocess.DEVNULL)
        shutil.copy(os.path.join(d, "client_key.pub"), os.path.join(d, "authorized_keys"))
        os.chmod(os.path.join(d, "authorized_keys"), 0o600)
        if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
            os.makedirs("/run/sshd", 0o755, exist_ok=True)  # sshd's privilege-separation dir
        self.port = free_port()
        self.user = _current_user()
        cfg = os.path.join(d, "sshd_config")
        with open(cfg, "w") as f:
            f.write("Port %d\nListenAddress 127.0.0.1\nHostKey %s\nPidFile %s\n"
                    "AuthorizedKeysFile %s\nStrictModes no\nUsePAM no\n"
                    "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                    "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
                    "AllowUsers %s\nSubsystem sftp internal-sftp\nLogLevel ERROR\n" %
                    (self.port, os.path.join(d, "host_key"), os.path.join(d, "sshd.pid"),
                     os.path.join(d, "authorized_keys"), self.user))
        self.proc = Proc(env, "sshd", [exe, "-D", "-e", "-f", cfg])
        wait_for(lambda: self._up(), 30, "sshd to listen")

    def _up(self):
        if not self.proc.alive():
            raise TestFailure("sshd exited at start: %s" % self.proc.stderr_tail(10))
        return port_open(self.port)

    def ssh_argv(self, port, *args):
        """The ssh command line to 127.0.0.1:port with the throw-away key, then args."""
        return ["ssh", "-F", "/dev/null", "-i", os.path.join(self.dir, "client_key"),
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20",
                "-p", str(port)] + list(args) + ["%s@127.0.0.1" % self.user]

    def ssh(self, port, command, input_bytes=None, timeout=60):
        """Runs command over ssh to 127.0.0.1:port with the throw-away key."""
        return subprocess.run(self.ssh_argv(port) + [command], input=input_bytes,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def _current_user():
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name


def run_cli(argv, timeout=20):
    """Runs tetherd/tether for a usage check; returns CompletedProcess (text)."""
    return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, text=True)


def device(env, tcp=None, http=True, json_mode=False, grace="30s", big_size=6 * 1024 * 1024):
    """The usual world: a relay, the device's HTTP service (if http) and an agent exposing it
    plus the given tcp services ({name: port}). Returns (relay, service or None, agent)."""
    relay = env.relay(grace=grace)
    svc = env.http_service(big_size=big_size) if http else None
    agent = env.agent(relay, http=svc.port if svc else None, tcp=tcp, json_mode=json_mode)
    if svc:
        check(agent.label, "the agent reported no http service: %r" % agent.services)
    return relay, svc, agent


class RedirectServer:
    """An HTTP server that answers every request with status and Location: location (a relay
    moved elsewhere); counts the requests it got."""

    def __init__(self, env, location, status=307):
        outer = self
        self.hits = 0

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.hits += 1
                self.send_response(status)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True

        self.server = _ThreadingServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        env.on_cleanup(self.close)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- descriptor limits

def relay_with_nofile(env, nofile, **kw):
    """env.relay(**kw) whose tetherd runs with RLIMIT_NOFILE (soft and hard) set to nofile: a
    small sh wrapper sets the limit and execs tetherd, so the PID is tetherd's own."""
    global TETHERD
    real = TETHERD
    wrapper = env.path("tetherd-nofile-%d.sh" % nofile)
    with open(wrapper, "w") as f:
        f.write('#!/bin/sh\nulimit -n %d || exit 1\nexec "%s" "$@"\n' % (nofile, real))
    os.chmod(wrapper, 0o755)
    TETHERD = wrapper
    try:
        return env.relay(**kw)
    finally:
        TETHERD = real


def raise_own_nofile(want):
    """Raises this process's soft RLIMIT_NOFILE to its hard limit; fails the test when that is
    below want (the attack needs that many sockets)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    check(hard == resource.RLIM_INFINITY or hard >= want,
          "this test needs %d open files; the hard limit is %d" % (want, hard))


# ---------------------------------------------------------------- device keys (--state-dir)

_STATE_DIR_FLAG = []


def tether_has_state_dir():
    """True when TETHER knows --state-dir (the baseline binaries of older tests do not)."""
    if not _STATE_DIR_FLAG:
        try:
            r = subprocess.run([TETHER, "--help"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, timeout=20, text=True)
            _STATE_DIR_FLAG.append("--state-dir" in r.stdout)
        except (OSError, subprocess.SubprocessError):
            _STATE_DIR_FLAG.append(False)
    return _STATE_DIR_FLAG[0]


def agent_state_dir(env):
    """The test's shared agent state directory (device keys, one file per device name)."""
    return env.path("agent-state")


# ---------------------------------------------------------------- private services (--access)

READY_TCP_PRIVATE_RE = re.compile(r"^ready tcp (\S+) private -> (\S+)$")
_parse_ready_public = parse_ready


def parse_ready(line):  # noqa: F811 - extends the one above (Agent.wait_ready calls this one)
    """parse_ready, and the line of a TCP service the relay keeps private (no public port):
    "ready tcp NAME private -> TARGET" gives {NAME: {kind: tcp, private: True, target}}."""
    m = READY_TCP_PRIVATE_RE.match(line)
    if m:
        return {m.group(1): {"kind": "tcp", "private": True, "target": m.group(2),
                             "line": line}}
    return _parse_ready_public(line)


# ---------------------------------------------------------------- a DNS server (tether --dns)

class DnsServer:
    """A small DNS server on 127.0.0.1 (UDP, a free port): answers A queries for the names in
    names ({name: IPv4 address}, case-insensitive) and AAAA queries for names in names6 ({name:
    IPv6 address}); a known name without an address of the asked type gets an empty NOERROR
    answer, an unknown name NXDOMAIN. silent=True: it reads queries and never answers. Every
    query is recorded in .queries as (name in lowercase, type number), and the address it came
    from in .peers (c-ares uses one socket per lookup). Standard library only."""

    def __init__(self, env, names=None, names6=None, silent=False):
        self.names = {k.lower().rstrip("."): v for k, v in (names or {}).items()}
        self.names6 = {k.lower().rstrip("."): v for k, v in (names6 or {}).items()}
        self.silent = silent
        self.queries = []
        self.peers = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        env.on_cleanup(self.close)

    def names_asked(self):
        return [n for n, _ in self.queries]

    def _loop(self):
        while not self.stopping:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.peers.append(peer)
            reply = self._answer(data)
            if reply is not None and not self.silent:
                try:
                    self.sock.sendto(reply, peer)
                except OSError:
                    pass

    def _answer(self, q):
        if len(q) < 17:
            return None
        qid, flags, qdcount = struct.unpack("!HHH", q[:6])
        if flags & 0x8000 or qdcount != 1:
            return None
        i, labels = 12, []
        while i < len(q) and q[i] != 0:
            n = q[i]
            if n > 63 or i + 1 + n > len(q):
                return None
            labels.append(q[i + 1:i + 1 + n].decode("ascii", "replace"))
            i += 1 + n
        if i + 5 > len(q):
            return None
        qtype, qclass = struct.unpack("!HH", q[i + 1:i + 5])
        question = q[12:i + 5]
        name = ".".join(labels).lower()
        self.queries.append((name, qtype))
        known = name in self.names or name in self.names6
        answers = b""
        if qtype == 1 and name in self.names:
            answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + \
                socket.inet_pton(socket.AF_INET, self.names[name])
        elif qtype == 28 and name in self.names6:
            answers = struct.pack("!HHHIH", 0xC00C, 28, 1, 60, 16) + \
                socket.inet_pton(socket.AF_INET6, self.names6[name])
        rcode = 0 if known else 3
        head = struct.pack("!HHHHHH", qid, 0x8180 | (flags & 0x0100) | rcode, 1,
                           1 if answers else 0, 0, 0)
        return head + question + answers

    def close(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()


def metrics_text(relay, src="127.0.0.2", timeout=30):
    """The relay's /metrics (admin listener) as text, asked from src (by default another
    loopback address than the one a test floods from); fails unless 200."""
    c = http.client.HTTPConnection("127.0.0.1", relay.admin_port, timeout=timeout,
                                   source_address=(src, 0))
    try:
        c.request("GET", "/metrics", headers={"Host": "127.0.0.1:%d" % relay.admin_port})
        r = c.getresponse()
        text = r.read().decode()
    finally:
        c.close()
    eq(r.status, 200, "status of /metrics")
    return text


def metrics_from(relay, src="127.0.0.2", timeout=30):
    """The relay's /metrics as {'name{labels}': value} (metrics_text)."""
    out = {}
    for line in metrics_text(relay, src, timeout).splitlines():
        m = re.match(r"^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out
