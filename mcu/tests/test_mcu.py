#!/usr/bin/env python3
"""test_mcu.py - the microcontroller agent against a real tetherd, run by mcu/tests/run.py inside
the network namespace it made: the agent (mcu/agent, src/core, the example application of
mcu/example) runs on lwIP in user space (tether-mcu-host, attached to the TAP device), tetherd
listens on the namespace's loopback and on the TAP's address, and curl and TCP clients reach the
device's services through the relay. Uses tests/e2e/lib.py for processes, ports and cleanup.

Each test_* function runs with a fresh lib.Env and a hang guard; prints "PASS name" or
"FAIL name: reason" and a closing "mcu: N passed, M failed". Run by run.py, not by hand (it
needs the namespace)."""

import argparse
import hashlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

LINUX_ADDR = "10.213.0.1"
DEVICE_IP = "10.213.0.2/24"
TAP = "ttmcu0"
BIN = None
QEMU_FW = None  # --qemu FIRMWARE.elf: the device is the firmware itself on qemu-system-arm
QEMU_CONFIG_ADDR = "0x003FE000"  # the configuration sector (mcu/port/mps2/mps2.ld)
QEMU_KEY_ADDR = "0x003FF000"  # the device key's sector: "TTK1" and 64 hex digits
QEMU_KEY_SIZE = 68
STACK_PEAK = [0]
# Flags of tether-mcu-host and the configuration sector's keys for the same settings.
QEMU_KEYS = {"--ping-after": "ping_after", "--dead-after": "dead_after", "--backoff": "backoff",
             "--backoff-cap": "backoff_cap", "--connect-timeout": "connect_timeout"}
PATTERN = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

lib = None  # imported in main(), once TETHERD is set


def relay(env, **kw):
    """tetherd on the namespace's loopback (browsers, TCP clients) and on the TAP's address
    (the device)."""
    dev_port = lib.free_port()
    extra = list(kw.pop("extra", ())) + ["--listen", "%s:%d" % (LINUX_ADDR, dev_port)]
    r = lib.Relay(env, extra=extra, **kw)
    r.dev_port = dev_port
    return r


class Device:
    """tether-mcu-host: the example firmware on lwIP in this process's namespace; with --qemu,
    the firmware itself on QEMU's mps2-an385, its LAN9118 on the same TAP device, its settings
    in a configuration sector loaded into the board's flash (mcu/port/mps2/main.c). The board
    keeps its device key in a flash sector (RAM under QEMU): stop() saves that sector to key_file
    through QEMU's monitor, and a board started with an existing key_file gets it loaded back,
    as a real flash would keep it across a power cycle."""

    def __init__(self, env, r, name="mcu-1", key_file=None, token=None, extra=()):
        self.env = env
        self.key_file = key_file or env.path("%s.key" % name)
        if QEMU_FW:
            self._qemu(env, r, name, token, extra)
            return
        argv = [BIN, "--tap", TAP, "--ip", DEVICE_IP, "--gw", LINUX_ADDR, "--host", LINUX_ADDR,
                "--port", str(r.dev_port), "--name", name,
                "--token", token or r.token, "--key-file", self.key_file,
                "--backoff", "300", "--backoff-cap", "2000"] + list(extra)
        # "tether": lib's cleanup then reports an unexpected exit or a sanitizer report.
        self.proc = lib.Proc(env, "tether", argv)

    def _qemu(self, env, r, name, token, extra):
        conf = ["tether-mcu-config 1", "ip=" + DEVICE_IP, "gw=" + LINUX_ADDR,
                "relay=" + LINUX_ADDR, "port=%d" % r.dev_port, "name=" + name,
                "token=" + (token or r.token), "seed=" + os.urandom(16).hex(), "backoff=300",
                "backoff_cap=2000"]
        extra = list(extra)
        for i in range(0, len(extra), 2):
            conf.append("%s=%s" % (QEMU_KEYS[extra[i]], extra[i + 1]))
        path = env.path("%s.config" % name)
        with open(path, "wb") as f:
            f.write(("\n".join(conf) + "\n").encode() + b"\0")
        self.monitor = env.path("%s.monitor" % name)
        argv = ["qemu-system-arm", "-M", "mps2-an385", "-nographic",
                "-monitor", "unix:%s,server=on,wait=off" % self.monitor,
                "-serial", "stdio", "-kernel", QEMU_FW,
                "-nic", "tap,ifname=%s,script=no,downscript=no" % TAP,
                "-device", "loader,file=%s,addr=%s" % (path, QEMU_CONFIG_ADDR)]
        if os.path.exists(self.key_file):
            argv += ["-device", "loader,file=%s,addr=%s" % (self.key_file, QEMU_KEY_ADDR)]
        self.proc = lib.Proc(env, "qemu", argv)

    def _monitor(self, *commands, timeout=10):
        """Runs QEMU monitor commands, each after the prompt."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        lib.wait_for(lambda: os.path.exists(self.monitor), timeout, "QEMU's monitor socket")
        s.connect(self.monitor)
        buf = b""
        try:
            for c in commands:
                while not buf.endswith(b"(qemu) "):
                    b = s.recv(4096)
                    lib.check(b, "QEMU's monitor closed before %r" % c)
                    buf += b
                buf = b""
                s.sendall(c.encode() + b"\n")
            if commands[-1] != "quit":
                while not buf.endswith(b"(qemu) "):
                    b = s.recv(4096)
                    lib.check(b, "QEMU's monitor closed")
                    buf += b
        finally:
            s.close()

    def wait_ready(self, start=0, timeout=30):
        """Waits for a registration (both ready lines) from stdout line start on; returns
        (next line index, http URL, tcp port)."""
        i, line = self.proc.wait_line(lambda l: l.startswith("ready http "), timeout, start,
                                      "a ready http line")
        url = line.split()[2]
        j, tline = self.proc.wait_line(lambda l: l.startswith("ready tcp echo "), timeout, i,
                                       "a ready tcp line")
        port = int(tline.rsplit(":", 1)[1])
        return j + 1, url, port

    def stop(self):
        if not QEMU_FW:
            return self.proc.stop(signal.SIGTERM)
        # The board's power goes off: its flash (the key sector) is what stays.
        self._monitor('pmemsave %s %d "%s"' % (QEMU_KEY_ADDR, QEMU_KEY_SIZE, self.key_file),
                      "quit")
        return self.proc.stop(signal.SIGTERM)


def label_of(url):
    m = re.match(r"http://([a-z0-9]+)\.localhost:(\d+)(/.*)?$", url)
    lib.check(m is not None, "unexpected URL %r" % url)
    return m.group(1), int(m.group(2))


def curl(url, *extra, timeout=60):
    """curl through the relay (the label resolves to the namespace's loopback). Returns
    (status, body bytes)."""
    label, port = label_of(url)
    host = "%s.localhost" % label
    argv = ["curl", "-sS", "--max-time", str(timeout), "--resolve", "%s:%d:127.0.0.1" % (host, port),
            "-o", "-", "-w", "\n%{http_code}"] + list(extra) + [url]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout + 10)
    lib.check(r.returncode == 0, "curl %s failed (%d): %s" % (url, r.returncode,
                                                               r.stderr.decode(errors="replace")))
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code), body


def echo_round(port, data, timeout=60):
    """Sends data to the echo service through the relay, half-closes, reads everything back
    until EOF."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    got = bytearray()
    err = []

    def reader():
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    return
                got.extend(b)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    t.join(timeout)
    s.close()
    lib.check(not t.is_alive(), "the echo did not end within %ds (%d of %d bytes back)" %
              (timeout, len(got), len(data)))
    lib.check(not err, "reading the echo failed: %r" % err)
    return bytes(got)


# ---------------------------------------------------------------- tests

def test_registers_and_serves_page(env):
    """The agent registers (HELLO v2, WELCOME with a key it stores) and serves its page to curl."""
    r = relay(env)
    d = Device(env, r)
    _, url, _ = d.wait_ready()
    status, body = curl(url + "/")
    lib.eq(status, 200, "status of /")
    lib.check(b"Hello from a microcontroller" in body, "page body: %r" % body[:200])
    status, _ = curl(url + "/nothing-here")
    lib.eq(status, 404, "status of an unknown path")
    if QEMU_FW:  # the key sector of the board's flash, saved when the board stops
        lib.eq(d.stop(), 0, "QEMU's exit status")
        with open(d.key_file, "rb") as f:
            sector = f.read()
        lib.check(sector[:4] == b"TTK1", "key sector %r" % sector[:8])
        key = sector[4:]
    else:
        with open(d.key_file, "rb") as f:
            key = f.read()
    lib.check(re.fullmatch(rb"[0-9a-f]{64}", key) is not None, "stored key %r" % key)


def test_download_through_window(env):
    """A 300 kB body from the device: its writes follow the relay's window and lwIP's buffer."""
    r = relay(env)
    d = Device(env, r)
    _, url, _ = d.wait_ready()
    n = 300000
    status, body = curl(url + "/data/%d" % n)
    lib.eq(status, 200, "status of /data")
    want = (PATTERN * (n // len(PATTERN) + 1))[:n]
    lib.check(body == want, "body differs: %d bytes, sha256 %s, want %s" % (
        len(body), hashlib.sha256(body).hexdigest()[:16], hashlib.sha256(want).hexdigest()[:16]))


def test_upload_with_1k_window(env):
    """A 200 kB upload to a device that announces a 1 KiB window: the relay must wait for the
    device's WINDOW credit, 1 KiB at a time."""
    r = relay(env)
    d = Device(env, r)
    _, url, _ = d.wait_ready()
    data = bytes(random.Random(7).getrandbits(8) for _ in range(200000))
    path = env.path("upload.bin")
    with open(path, "wb") as f:
        f.write(data)
    status, body = curl(url + "/sum", "--data-binary", "@" + path,
                        "-H", "Content-Type: application/octet-stream")
    lib.eq(status, 200, "status of /sum")
    lib.eq(body.decode(), "received %d bytes, sum %d\n" % (len(data), sum(data) & 0xffffffff),
           "the device's count")


def test_tcp_echo_half_close(env):
    """256 KiB through the TCP echo service, both ways at once, through the device's 1 KiB
    window (the relay may send only what the device credited back, the device only what the
    relay credited); the client's half-close reaches the device, whose FIN comes back as EOF."""
    r = relay(env)
    d = Device(env, r)
    _, _, port = d.wait_ready()
    data = random.Random(11).randbytes(256 * 1024)
    back = echo_round(port, data)
    lib.check(back == data, "echo differs: %d of %d bytes back" % (len(back), len(data)))


def test_two_streams_at_once(env):
    """Two echo connections and a page at the same time: the device's two stream slots, each
    with its own window; every stream completes."""
    r = relay(env)
    d = Device(env, r)
    _, url, port = d.wait_ready()
    results = {}

    def one(k):
        data = bytes(random.Random(k).getrandbits(8) for _ in range(40000))
        try:
            results[k] = echo_round(port, data) == data
        except Exception as e:  # reported below
            results[k] = repr(e)

    ts = [threading.Thread(target=one, args=(k,)) for k in (1, 2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(90)
    lib.eq(results, {1: True, 2: True}, "both echoes")
    status, body = curl(url + "/")
    lib.eq(status, 200, "status of / after the echoes")


def test_many_streams_in_turn(env):
    """40 page requests and 10 echo connections one after the other through two stream slots:
    every stream's slot is freed when it ends (a leak would turn into 503 "device busy")."""
    r = relay(env)
    d = Device(env, r)
    _, url, port = d.wait_ready()
    for i in range(40):
        status, body = curl(url + "/")
        lib.eq(status, 200, "status of request %d" % i)
    for i in range(10):
        data = b"%d" % i * 500
        lib.check(echo_round(port, data) == data, "echo %d" % i)


def test_key_kept_and_required(env):
    """The key from the first WELCOME is stored; a restarted agent presents it and gets its name
    (and label) back; an agent without it is refused (AUTH) and the name stays the device's."""
    r = relay(env)
    d = Device(env, r)
    _, url1, _ = d.wait_ready()
    lib.eq(d.stop(), 0, "exit status after SIGTERM")
    d2 = Device(env, r, key_file=d.key_file)
    _, url2, _ = d2.wait_ready()
    lib.eq(url2, url1, "URL after a restart with the stored key")
    lib.eq(d2.stop(), 0, "exit status after SIGTERM")
    intruder = Device(env, r, key_file=env.path("other.key"))
    _, line = intruder.proc.wait_line(lambda l: l.startswith("refused "), 30, 0, "a refused line")
    lib.check(line.startswith("refused AUTH"), "refusal: %r" % line)
    lib.check(not os.path.exists(env.path("other.key")), "the refused agent stored a key")


def test_reconnects_after_relay_restart(env):
    """The relay goes away (GOAWAY SHUTDOWN on SIGTERM) and comes back on the same ports and data
    dir: the agent reconnects by itself, with its key, and keeps its label."""
    r = relay(env, grace="5m")
    d = Device(env, r)
    nxt, url1, _ = d.wait_ready()
    r.stop()
    d.proc.wait_line(lambda l: l.startswith("disconnected:"), 30, nxt, "a disconnected line")
    r2 = lib.Relay(env, port=r.port, admin_port=r.admin_port, tcp_ports=(r.tcp_low, r.tcp_high),
                   data_dir=r.data_dir, grace="5m",
                   extra=["--listen", "%s:%d" % (LINUX_ADDR, r.dev_port)])
    r2.dev_port = r.dev_port
    _, url2, port = d.wait_ready(start=nxt, timeout=60)
    lib.eq(url2, url1, "URL after the relay restarted")
    status, _ = curl(url2 + "/")
    lib.eq(status, 200, "status of / after reconnecting")
    data = b"after the restart\n" * 100
    lib.check(echo_round(port, data) == data, "echo after reconnecting")


def test_heartbeat_and_dead_link(env):
    """With short timers (ping after 1 s of silence, dead after 3 s): the relay's pongs keep a
    quiet link up; a relay that stops answering (SIGSTOP) is dropped and, once it answers again,
    the agent registers again."""
    r = relay(env)
    d = Device(env, r, extra=["--ping-after", "1000", "--dead-after", "3000"])
    nxt, url, _ = d.wait_ready()
    time.sleep(7)  # quiet: only pings and pongs
    lib.check(not any(l.startswith("disconnected") for l in d.proc.lines[nxt:]),
              "the link dropped while the relay answered pings: %r" % d.proc.lines[nxt:])
    os.kill(r.proc.pid, signal.SIGSTOP)
    try:
        _, line = d.proc.wait_line(lambda l: l.startswith("disconnected:"), 20, nxt,
                                   "a disconnected line")
        lib.check("ping timeout" in line, "disconnected for another reason: %r" % line)
    finally:
        os.kill(r.proc.pid, signal.SIGCONT)
    _, url2, _ = d.wait_ready(start=nxt, timeout=60)
    lib.eq(url2, url, "URL after the dead link")
    status, _ = curl(url2 + "/")
    lib.eq(status, 200, "status of / after the dead link")


def test_hostile_relay(env):
    """Something else answers on the relay's address, a different wrong answer on each
    connection: not HTTP, a 101 with a wrong accept value, a 503 with Retry-After, a head larger
    than the agent's buffer, and after a valid 101: a frame length with the top bit set, a text
    message, a masked frame, a fragmented ping, DATA before WELCOME, and a close.
    The agent (under ASan/UBSan in user space) reports each and tries again with back-off, and
    registers with the real relay when it comes back on the same port."""
    port = lib.free_port()
    valid = object()
    answers = [
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n" + b"X-Pad: " + b"a" * 2000 + b"\r\n",
        (valid, b"\x82\x7f" + b"\xff" * 8 + b"\x00" * 64),
        (valid, lib.ws_frame(1, b"text", mask=False)),
        (valid, lib.ws_frame(2, b"\x00" * 12, mask=True)),
        (valid, lib.ws_frame(9, b"ping", mask=False, fin=False)),
        (valid, lib.ws_frame(2, bytes([0, 3, 5, 0, 0, 0, 0, 9]) + b"abc", mask=False)),
        (valid, lib.ws_frame(8, b"\x03\xe8", mask=False)),
    ]
    seen = []
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((LINUX_ADDR, port))
    srv.listen(4)
    srv.settimeout(1)

    def serve():
        for ans in answers:
            deadline = time.monotonic() + 30
            c = None
            while c is None and time.monotonic() < deadline:
                try:
                    c, _ = srv.accept()
                except socket.timeout:
                    pass
            if c is None:
                return
            with c:
                c.settimeout(10)
                head = b""
                try:
                    while b"\r\n\r\n" not in head and len(head) < 4096:
                        b = c.recv(4096)
                        if not b:
                            break
                        head += b
                    if isinstance(ans, tuple):
                        m = re.search(rb"Sec-WebSocket-Key: ([^\r]+)\r\n", head)
                        key = m.group(1).decode() if m else ""
                        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                  b"Connection: Upgrade\r\nSec-WebSocket-Protocol: tether.v1\r\n"
                                  b"Sec-WebSocket-Accept: " + lib.ws_accept(key).encode() +
                                  b"\r\n\r\n" + ans[1])
                    else:
                        c.sendall(ans)
                    seen.append(head)
                    # What the agent does next: close (after its own close frame, or at once).
                    while c.recv(4096):
                        pass
                except OSError:
                    pass

    class FakeRelay:
        dev_port = port
        token = lib.TOKEN

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    d = Device(env, FakeRelay(), extra=["--backoff", "100", "--backoff-cap", "300"])
    t.join(120)
    srv.close()
    lib.eq(len(seen), len(answers), "connections the agent made to the hostile relay")
    lib.check(all(h.startswith(b"GET / HTTP/1.1\r\n") for h in seen), "requests: %r" % seen[:2])
    # One error line per connection, saying what was wrong, in order.
    want = ["answer is not HTTP", "Sec-WebSocket-Accept is wrong", "HTTP error (status 503)",
            "answer head is too large", "WebSocket protocol error", "sent a text message",
            "WebSocket protocol error", "WebSocket protocol error",
            "protocol error from the relay", "relay closed the WebSocket"]
    i = 0
    for w in want:
        i, line = d.proc.wait_line(lambda l: l.startswith("error: "), 30, i, "an error line")
        lib.check(w in line, "wanted %r, got %r" % (w, line))
        i += 1
    lib.check(d.proc.alive(), "the agent exited: %r" % d.proc.lines[-5:])
    # The real relay on that port: the agent registers.
    r2 = lib.Relay(env, extra=["--listen", "%s:%d" % (LINUX_ADDR, port)])
    r2.dev_port = port
    _, url, _ = d.wait_ready(timeout=60)
    status, _ = curl(url + "/")
    lib.eq(status, 200, "status of / after the hostile relay")


class SilentFront:
    """A "relay" that takes TCP connections on LINUX_ADDR:port and never answers (a relay too
    loaded to finish a handshake): records, per connection, how long the agent held it before
    it gave up (its RST or FIN)."""

    def __init__(self, port):
        self.holds = []
        self.lock = threading.Lock()
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind((LINUX_ADDR, port))
        self.srv.listen(8)
        self.srv.settimeout(0.5)
        self.done = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.done:
            try:
                c, _ = self.srv.accept()
            except OSError:
                continue
            threading.Thread(target=self._hold, args=(c, time.monotonic()), daemon=True).start()

    def _hold(self, c, t0):
        c.settimeout(120)
        try:
            while c.recv(4096):
                pass
        except OSError:
            pass
        c.close()
        with self.lock:
            self.holds.append(time.monotonic() - t0)

    def wait(self, n, timeout):
        lib.wait_for(lambda: len(self.holds) >= n, timeout, "%d connections given up" % n)
        with self.lock:
            return list(self.holds[:n])

    def close(self):
        self.done = True
        self.thread.join(5)
        self.srv.close()


def test_connect_timeout_grows_after_stalls(env):
    """A relay that takes the connection and never answers (a loaded relay in a reconnect
    storm): with --connect-timeout 1000 the agent gives the first attempt 1 s, then 2 s, then
    4 s (the cap, 4 times the base), and again 4 s; once it registered, the first stalled attempt
    is given 1 s again. (With a fixed timeout every attempt got 1 s, and the relay paid for each
    abandoned handshake again.)"""
    port = lib.free_port()
    front = SilentFront(port)

    class FrontAddr:
        dev_port = port
        token = lib.TOKEN

    try:
        d = Device(env, FrontAddr(), extra=["--backoff", "100", "--backoff-cap", "200",
                                            "--connect-timeout", "1000"])
        holds = front.wait(4, 60)
    finally:
        front.close()
    # the attempt's timer runs from its start: its TCP connect (lwIP, ARP on the namespace's
    # link) counts in it, so the first connection may be held for less than the 1 s
    lib.check(holds[0] < 1.9, "first attempt held %.2fs, more than about 1 s: %r"
              % (holds[0], holds))
    lib.check(holds[1] >= 1.8, "second attempt held %.2fs, not doubled: %r" % (holds[1], holds))
    lib.check(holds[2] >= 3.6, "third attempt held %.2fs, not doubled: %r" % (holds[2], holds))
    lib.check(holds[3] >= 3.6 and holds[3] < 7.5,
              "fourth attempt held %.2fs, not capped at 4 s: %r" % (holds[3], holds))
    lib.check(d.proc.alive(), "the agent exited: %r" % d.proc.lines[-5:])
    # A registration brings the timeout back to its base.
    r = lib.Relay(env, extra=["--listen", "%s:%d" % (LINUX_ADDR, port)])
    r.dev_port = port
    nxt, _, _ = d.wait_ready(timeout=60)
    r.stop(sig=signal.SIGKILL)
    front = SilentFront(port)
    try:
        d.proc.wait_line(lambda l: l.startswith("disconnected:"), 30, nxt, "a disconnected line")
        holds = front.wait(1, 30)
    finally:
        front.close()
    lib.check(holds[0] < 1.9,
              "first stalled attempt after WELCOME held %.2fs, more than about 1 s" % holds[0])


TESTS = [(n[5:], f) for n, f in list(globals().items()) if n.startswith("test_") and callable(f)]


def run_one(name, func, timeout):
    env = lib.Env(name)
    ok, reason, details = True, "", ""

    def on_alarm(signum, frame):
        raise lib.TestFailure("hang guard: still running after %ds" % timeout)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(timeout)
    try:
        func(env)
    except BaseException as e:
        ok = False
        reason = str(e).split("\n")[0] or type(e).__name__
        details = traceback.format_exc() + "\n" + env.diagnostics()
    signal.alarm(0)
    for proc in env.procs:  # the firmware's stack high-water mark (mcu/port/mps2/main.c)
        for line in list(proc.lines) if proc.name == "qemu" else ():
            m = re.match(r"stack: peak (\d+) bytes$", line)
            if m:
                STACK_PEAK[0] = max(STACK_PEAK[0], int(m.group(1)))
    problems = env.cleanup()
    if problems and ok:
        ok, reason, details = False, problems[0].split("\n")[0], "\n".join(problems)
    env.remove()
    return ok, reason, details


def main():
    global BIN, lib, TAP, QEMU_FW
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--tetherd", required=True)
    ap.add_argument("--tap", default=TAP)
    ap.add_argument("-k", action="append", default=[])
    ap.add_argument("--timeout", type=int, default=120)
    ap.add_argument("--qemu", default=None, help="the firmware ELF: run it on qemu-system-arm")
    args = ap.parse_args()
    BIN, TAP, QEMU_FW = args.bin, args.tap, args.qemu
    os.environ["TETHERD"] = args.tetherd
    import lib as _lib
    lib = _lib
    tests = [(n, f) for n, f in TESTS if not args.k or any(k in n for k in args.k)]
    prefix = "mcu"
    if QEMU_FW:
        prefix = "mcu-qemu"
    print("%s: %d tests, agent=%s tetherd=%s" % (prefix, len(tests), QEMU_FW or BIN,
                                                 args.tetherd))
    sys.stdout.flush()
    passed = failed = 0
    for name, func in tests:
        t0 = time.monotonic()
        ok, reason, details = run_one(name, func, args.timeout)
        if ok:
            passed += 1
            print("PASS %s/%s (%.1fs)" % (prefix, name, time.monotonic() - t0))
        else:
            failed += 1
            print("FAIL %s/%s: %s" % (prefix, name, reason))
            for line in details.splitlines():
                print("    " + line)
        sys.stdout.flush()
    if QEMU_FW and STACK_PEAK[0]:
        print("%s: the firmware's stack peaked at %d bytes" % (prefix, STACK_PEAK[0]))
    print("%s: %d passed, %d failed" % (prefix, passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
