"""test_abuse_misc.py - smaller attacks on tetherd and tether (issue 9, items 7, 8 and part of
9), each performed against the real programs:

- DNS rebinding on the admin API: a request with a foreign Host (421), and a DELETE from a web
  page of another site (Origin: 403), while the listener's own address keeps working;
- a wss:// relay that redirects the agent to cleartext ws:// on another host (the agent must not
  go: nothing, token least of all, reaches the ws:// listener);
- a relay whose WELCOME carries a newline and a forged "ready" line in a URL or a host (the agent
  prints no forged line);
- a device whose WebSocket close reason tries to add a device= field to the relay's log line;
- registry files in an existing data dir (0600, not 0644) and a warning for an open data dir;
- tokens given in a file or the environment, never in /proc/PID/cmdline.
"""

import base64
import http.client
import http.server
import json
import os
import socket
import ssl
import stat
import struct
import threading
import time

from lib import (TETHER, TETHERD, TOKEN, Proc, SERVICE_RE, _ThreadingServer, _exact_reader, check,
                 eq, free_port, free_port_range, port_open, wait_for, ws_accept, ws_frame,
                 ws_read_frame)
from rawdev import GOAWAY, RawWs, WELCOME, hello, s8, tframe
from test_tls import Pki


# ---------------------------------------------------------------- helpers

def admin(port, method, path, headers=None):
    """One request to the admin listener on 127.0.0.1:port, Host as given in headers (default
    127.0.0.1:port). Returns (status, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        h = dict(headers or {})
        c.putrequest(method, path, skip_host="Host" in h, skip_accept_encoding=True)
        for k, v in h.items():
            c.putheader(k, v)
        c.endheaders()
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def device_names(port, headers=None):
    st, body = admin(port, "GET", "/api/devices", headers)
    eq(st, 200, "GET /api/devices (body %r)" % body[:200])
    return [d["name"] for d in json.loads(body)["devices"]]


def metric(port, name):
    st, body = admin(port, "GET", "/metrics")
    eq(st, 200, "GET /metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def logfmt(line):
    """The key=value fields of a log line as a list of (key, value): values are bare or
    double-quoted with backslash escapes, as tetherd writes them."""
    out, i, n = [], 0, len(line)
    while i < n:
        while i < n and line[i] == " ":
            i += 1
        j = i
        while j < n and line[j] not in " =":
            j += 1
        if j >= n or line[j] != "=":
            i = j
            continue
        key, i = line[i:j], j + 1
        if i < n and line[i] == '"':
            i += 1
            val = []
            while i < n and line[i] != '"':
                if line[i] == "\\" and i + 1 < n:
                    i += 1
                val.append(line[i])
                i += 1
            i += 1
            out.append((key, "".join(val)))
        else:
            j = i
            while j < n and line[j] != " ":
                j += 1
            out.append((key, line[i:j]))
            i = j
    return out


def tetherd(t, extra, env_vars=None, token_argv=None):
    """tetherd on free ports, its token given by token_argv (flags) and/or env_vars. Returns the
    Proc with .port, .admin_port, .data_dir."""
    port, admin_port = free_port(), free_port()
    low, high = free_port_range(4)
    data_dir = t.mkdtemp("data")
    argv = [TETHERD, "--listen", "127.0.0.1:%d" % port, "--domain", "localhost",
            "--tcp-ports", "%d-%d" % (low, high), "--tcp-bind", "127.0.0.1",
            "--data-dir", data_dir, "--admin-listen", "127.0.0.1:%d" % admin_port]
    p = Proc(t, "tetherd", argv + list(token_argv or []) + list(extra), env_vars=env_vars)

    def up():
        check(p.alive(), "tetherd exited with status %s at start; stderr: %s"
              % (p.p.returncode, p.stderr_tail(15)))
        return port_open(port)

    wait_for(up, 30, "tetherd to listen on %d" % port)
    p.port, p.admin_port, p.data_dir = port, admin_port, data_dir
    return p


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read()


def secret_file(t, name, token):
    path = t.path(name)
    with open(path, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return path


# ---------------------------------------------------------------- a hand-made relay

class FakeRelay:
    """A relay written here, for the agent: on 127.0.0.1 (or host), it answers each WebSocket
    handshake (or, with tls, a TLS one first), reads the HELLO and answers with welcomes[i] for
    the i-th connection (the last one for the rest; None: no answer), then closes after
    hold seconds. Records every byte received, WebSocket payloads unmasked, in .received."""

    def __init__(self, t, welcomes=(None,), host="127.0.0.1", hold=1.0):
        self.welcomes = list(welcomes)
        self.hold = hold
        self.conns = 0
        self.received = b""
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()
        t.on_cleanup(self.close)

    def _record(self, b):
        with self.lock:
            self.received += b

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                i = self.conns
                self.conns += 1
            threading.Thread(target=self._serve, args=(c, i), daemon=True).start()

    def _serve(self, c, i):
        c.settimeout(10)
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                b = c.recv(4096)
                if not b:
                    return
                head += b
                self._record(b)
            key = ""
            for line in head.decode("latin-1").split("\r\n"):
                if line.lower().startswith("sec-websocket-key:"):
                    key = line.split(":", 1)[1].strip()
            c.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                       % ws_accept(key)).encode())
            readn = _exact_reader(c.recv)
            _, op, payload = ws_read_frame(readn)  # the HELLO
            self._record(payload)
            w = self.welcomes[min(i, len(self.welcomes) - 1)]
            if w is not None:
                # answered in the HELLO's protocol version (2 carries a trailing key, empty here)
                if len(payload) > 8 and payload[8] == 2:
                    w = b"\x02" + w[1:] + b"\x00"
                c.sendall(ws_frame(0x2, tframe(WELCOME, w), mask=False))
            deadline = time.monotonic() + self.hold
            while time.monotonic() < deadline:
                c.settimeout(max(0.05, deadline - time.monotonic()))
                try:
                    _, op, payload = ws_read_frame(readn)
                    self._record(payload)
                except socket.timeout:
                    break
        except (OSError, ConnectionError):
            pass
        finally:
            c.close()

    def close(self):
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass


def welcome(label, services):
    """A version 1 WELCOME payload (docs/PROTOCOL.md): services are (kind, name, port, address).
    FakeRelay turns it into version 2 (an empty key at the end) for a version 2 HELLO."""
    p = struct.pack(">BHI", 1, 64, 262144) + s8(label) + bytes([len(services)])
    for kind, name, port, addr in services:
        p += bytes([kind]) + s8(name) + struct.pack(">H", port) + s8(addr)
    return p


def tether(t, server, name, http_port, token=TOKEN, extra=(), env_vars=None):
    argv = [TETHER, "--server", server, "--name", name, "--http", "127.0.0.1:%d" % http_port]
    if token is not None:
        argv += ["--token", token]
    return Proc(t, "tether", argv + list(extra), env_vars=env_vars)


def stderr_count(p, text):
    return p.stderr_text().count(text)


# ---------------------------------------------------------------- item 7: the admin API

def test_admin_refuses_foreign_host_421(t):
    relay = t.relay()
    svc = t.http_service()
    a = t.agent(relay, name="panel-1", http=svc.port)
    port = relay.admin_port
    for host in ("evil.example", "evil.example:%d" % port, "127.0.0.1.evil.example:%d" % port,
                 "localhost.evil.example", "10.1.2.3:%d" % port):
        for path in ("/api/devices", "/api/devices/panel-1", "/", "/metrics", "/healthz"):
            st, body = admin(port, "GET", path, {"Host": host})
            eq(st, 421, "GET %s with Host %s (body %r)" % (path, host, body[:100]))
            check(b"panel-1" not in body, "a refused request leaks the device list")
    st, body = admin(port, "DELETE", "/api/devices/panel-1", {"Host": "evil.example"})
    eq(st, 421, "DELETE with Host evil.example")
    # the listener's own names still work, /healthz too (probes use the address)
    for host in ("127.0.0.1:%d" % port, "localhost:%d" % port, "localhost", "127.0.0.1"):
        check("panel-1" in device_names(port, {"Host": host}), "device listed for Host %s" % host)
        eq(admin(port, "GET", "/healthz", {"Host": host})[0], 200, "/healthz for Host %s" % host)
    # HTTP/1.1 without Host: 400
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"GET /api/devices HTTP/1.1\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    check(data.startswith(b"HTTP/1.1 400 "), "HTTP/1.1 without Host: %r" % data[:60])
    eq(metric(port, 'tether_admin_refused_total{reason="host"}'), 5 * 5 + 1,
       "tether_admin_refused_total{reason=\"host\"}")
    eq(relay.request("GET", "/", label=a.label)[0], 200, "the device still serves")


def test_admin_refuses_cross_site_delete_403(t):
    relay = t.relay()
    svc = t.http_service()
    a = t.agent(relay, name="panel-2", http=svc.port)
    port = relay.admin_port
    own = "127.0.0.1:%d" % port
    for origin in ("http://evil.example", "http://evil.example:%d" % port, "null",
                   "https://127.0.0.1:%d" % port, "http://127.0.0.1:1"):
        st, body = admin(port, "DELETE", "/api/devices/panel-2", {"Host": own, "Origin": origin})
        eq(st, 403, "DELETE with Origin %s (body %r)" % (origin, body[:100]))
    check("panel-2" in device_names(port), "the device was deleted by a cross-site request")
    eq(relay.request("GET", "/", label=a.label)[0], 200, "the device still serves")
    eq(metric(port, 'tether_admin_refused_total{reason="origin"}'), 5,
       "tether_admin_refused_total{reason=\"origin\"}")
    # reading is not changing: a GET with a foreign Origin is answered (a browser keeps the
    # answer from the page without CORS headers)
    check("panel-2" in device_names(port, {"Origin": "http://evil.example"}), "GET with Origin")
    # the dashboard's own origin, or no Origin at all (curl): the delete goes through
    st, body = admin(port, "DELETE", "/api/devices/panel-2",
                     {"Host": own, "Origin": "http://%s" % own})
    eq(st, 200, "DELETE from the listener's own origin (body %r)" % body[:100])
    check("panel-2" not in device_names(port), "the device is gone")


# ---------------------------------------------------------------- item 8: redirect downgrade

class TlsRedirect:
    """A wss:// relay (TLS with a certificate for localhost from pki) that redirects every
    WebSocket handshake to location."""

    def __init__(self, t, pki, location, status=307):
        crt, key, _ = pki.server()
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
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        t.on_cleanup(self.close)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _error_events(p):
    out = []
    for line in list(p.lines):
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict) and ev.get("event") == "error":
            out.append(ev.get("message", ""))
    return out


def test_agent_refuses_wss_to_ws_redirect(t):
    pki = Pki(t)
    svc = t.http_service()
    secret = "downgrade-secret-" + os.urandom(6).hex()
    for scheme in ("ws", "http"):
        # the cleartext listener is on another host (127.0.0.2): a relay that would take the
        # device's credentials in clear
        plain = FakeRelay(t, host="127.0.0.2")
        redirect = TlsRedirect(t, pki, "%s://127.0.0.2:%d/" % (scheme, plain.port))
        agent = tether(t, "wss://localhost:%d/" % redirect.port, "victim-" + scheme, svc.port,
                       token=secret, extra=["--ca-file", pki.ca, "--json"])
        # two failed attempts: the refusal is an error event, and the agent backs off and
        # tries again (it does not give up, nor spin)
        wait_for(lambda: len(_error_events(agent)) >= 2, 30, "two error events")
        check(secret.encode() not in plain.received,
              "the token reached the cleartext listener (%d connections): %r"
              % (plain.conns, plain.received[:300]))
        eq(plain.conns, 0, "connections to the cleartext ws:// listener")
        eq(plain.received, b"", "bytes that reached the cleartext listener")
        msgs = _error_events(agent)
        check(all("cleartext ws://" in m and "127.0.0.2:%d" % plain.port in m for m in msgs),
              "error events name the refused downgrade: %r" % msgs)
        check(redirect.hits >= 2, "the agent asked the wss:// relay again (%d)" % redirect.hits)
        check(not any(SERVICE_RE.match(l) or '"ready"' in l for l in agent.lines),
              "the agent registered somewhere: %r" % agent.lines[-5:])
        agent.stop()


# ---------------------------------------------------------------- item 8: forged ready lines

HTTP, TCP = 1, 2


def test_agent_prints_no_ready_line_forged_in_welcome(t):
    svc = t.http_service()
    good = welcome(b"k3j9x2mq", [(HTTP, b"http", 0, b"http://k3j9x2mq.localhost:8080")])
    forged = [
        welcome(b"k3j9x2mq", [(HTTP, b"http", 0,
                               b"http://k3j9x2mq.localhost:8080\nready http http://evil -> x")]),
        welcome(b"k3j9x2mq\nready http http://evil", [(HTTP, b"http", 0, b"http://k.localhost")]),
        welcome(b"k3j9x2mq", [(HTTP, b"http", 0, b"http://k.localhost\r\x1b[2Kready http evil")]),
    ]
    for i, bad in enumerate(forged):
        # first a sound WELCOME (the fake relay works: one ready line), then, after it closes,
        # the forged one for every reconnection
        relay = FakeRelay(t, welcomes=[good, bad], hold=0.5)
        agent = tether(t, "ws://127.0.0.1:%d/" % relay.port, "victim-%d" % i, svc.port)
        agent.wait_line(lambda l: SERVICE_RE.match(l), 30, 0, "the sound ready line")
        # two more connections: the first forged WELCOME was answered, in one way or another
        wait_for(lambda: relay.conns >= 3, 30, "two reconnections")
        time.sleep(0.3)
        ready = [l for l in agent.lines if l.startswith("ready")]
        eq(ready, ["ready http http://k3j9x2mq.localhost:8080 -> 127.0.0.1:%d" % svc.port],
           "ready lines of forged WELCOME %d" % i)
        check(not any("evil" in l for l in agent.lines), "stdout: %r" % agent.lines)
        wait_for(lambda: stderr_count(agent, "unusable WELCOME") >= 1, 60,
                 "a refused WELCOME in the agent's stderr")
        for line in agent.stderr_text().splitlines():
            check("\x1b" not in line and "\r" not in line and not line.startswith("ready"),
                  "stderr line %r" % line)
        agent.stop()
    # --json: the same WELCOME is refused, no ready event carries it
    relay = FakeRelay(t, welcomes=[forged[0]], hold=0.5)
    agent = tether(t, "ws://127.0.0.1:%d/" % relay.port, "victim-json", svc.port,
                   extra=["--json"])
    wait_for(lambda: len(_error_events(agent)) >= 2, 30, "two error events")
    check(all("unusable WELCOME" in m for m in _error_events(agent)), "%r" % agent.lines)
    check(not any('"ready"' in l for l in agent.lines), "ready event: %r" % agent.lines)


# ---------------------------------------------------------------- item 9: log fields

def test_device_close_reason_cannot_forge_log_fields(t):
    relay = t.relay()
    name = "cam-7"
    ws = RawWs(relay.port)
    eq(ws.status, 101, "handshake")
    typ, _ = ws.register(name, TOKEN)
    eq(typ, WELCOME, "answer to HELLO")
    reason = b'x" device=forged label=forged peer=6.6.6.6 reason="'
    ws.send(ws_frame(0x8, struct.pack(">H", 1000) + reason))
    time.sleep(0.2)
    ws.close()

    def line():
        for l in relay.proc.stderr_text().splitlines():
            if "device disconnected" in l:
                return l
        return None

    l = wait_for(line, 30, "the relay's 'device disconnected' line")
    fields = logfmt(l)
    eq([v for k, v in fields if k == "device"], [name], "device= fields of %r" % l)
    eq([k for k, v in fields if k == "label"], ["label"], "label= fields of %r" % l)
    eq([k for k, v in fields if k == "peer"], ["peer"], "peer= fields of %r" % l)
    why = [v for k, v in fields if k == "reason"]
    eq(len(why), 1, "reason= fields of %r" % l)
    check(reason.decode() in why[0], "the reason is kept whole, escaped: %r" % l)


# ---------------------------------------------------------------- item 9: data dir modes

def _modes(d):
    return {f: stat.S_IMODE(os.stat(os.path.join(d, f)).st_mode) for f in os.listdir(d)}


def test_registry_files_private_in_existing_data_dir(t):
    data = t.mkdtemp("open-data")
    os.chmod(data, 0o755)  # an existing, world-readable dir (as mkdir under umask 022 makes)
    old = os.umask(0o022)
    try:
        relay = t.relay(data_dir=data)
        svc = t.http_service()
        t.agent(relay, http=svc.port)
        modes = _modes(data)
        check("registry.db" in modes, "files: %r" % modes)
        bad = {f: oct(m) for f, m in modes.items() if m & 0o077}
        eq(bad, {}, "registry files open to group or others")
        check("data dir open to every user" in relay.proc.stderr_text(),
              "a warning names the open data dir: %s" % relay.proc.stderr_tail(8))
        relay.stop()
        # files an older tetherd left 0644 are made private at the next start
        for f in os.listdir(data):
            os.chmod(os.path.join(data, f), 0o644)
        os.chmod(data, 0o700)
        relay = t.relay(data_dir=data)
        t.agent(relay, http=svc.port)
        bad = {f: oct(m) for f, m in _modes(data).items() if m & 0o077}
        eq(bad, {}, "registry files after a restart")
        check("data dir open" not in relay.proc.stderr_text(), "no warning for a 0700 data dir")
        # a data dir tetherd creates is 0700
        fresh = os.path.join(t.mkdtemp("parent"), "a", "b")
        relay2 = t.relay(data_dir=fresh)
        eq(oct(stat.S_IMODE(os.stat(fresh).st_mode)), oct(0o700), "mode of a new data dir")
        relay2.stop()
    finally:
        os.umask(old)


# ---------------------------------------------------------------- item 9: tokens

def test_tokens_from_file_or_env_stay_out_of_cmdline(t):
    svc = t.http_service()
    fleet, admin_tok = "fleet-" + os.urandom(8).hex(), "admin-" + os.urandom(8).hex()
    for how in ("file", "env"):
        if how == "file":
            relay = tetherd(t, [], token_argv=[
                "--token-file", secret_file(t, "fleet.tok", fleet),
                "--admin-token-file", secret_file(t, "admin.tok", admin_tok)])
            agent = tether(t, "ws://127.0.0.1:%d" % relay.port, "dev-file", svc.port, token=None,
                           extra=["--token-file", secret_file(t, "dev.tok", fleet)])
        else:
            relay = tetherd(t, [], env_vars={"TETHER_TOKEN": fleet,
                                             "TETHER_ADMIN_TOKEN": admin_tok})
            agent = tether(t, "ws://127.0.0.1:%d" % relay.port, "dev-env", svc.port, token=None,
                           env_vars={"TETHER_TOKEN": fleet})
        _, line = agent.wait_line(lambda l: SERVICE_RE.match(l), 30, 0, "a ready line")
        for p in (relay, agent):
            cl = cmdline(p.pid)
            check(fleet.encode() not in cl and admin_tok.encode() not in cl,
                  "%s's command line holds a token: %r" % (p.name, cl))
        check(b"--token\0" not in cmdline(agent.pid), "no --token flag")
        # the tokens work: the device registered with the fleet token, the admin API wants its
        eq(admin(relay.admin_port, "GET", "/api/devices")[0], 401, "admin API without a token")
        st, body = admin(relay.admin_port, "GET", "/api/devices",
                         {"Authorization": "Bearer " + admin_tok})
        eq(st, 200, "admin API with the token from the %s" % how)
        check(("dev-" + how).encode() in body, "device listed: %r" % body[:200])
        host = line.split()[2].split("//")[1]
        c = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=30)
        c.request("GET", "/whoami", headers={"Host": host})
        eq(c.getresponse().status, 200, "the device's URL answers")
        c.close()
        # a wrong token from the environment is refused
        bad = tether(t, "ws://127.0.0.1:%d" % relay.port, "dev-bad-" + how, svc.port, token=None,
                     env_vars={"TETHER_TOKEN": "not-the-token"})
        wait_for(lambda: "invalid token" in bad.stderr_text(), 30, "the refusal of a bad token")
        bad.stop()
        agent.stop()
        relay.stop()
