#!/usr/bin/env python3
"""async_registry.py - what a slow or stopped Redis costs one tetherd node (cluster mode, one
redis-server behind bench/redis_slow.py), for one or more relay builds (`make bench-redis`):

  slowed    Redis answers every reply chunk DELAY ms late (default 5): p50/p99 of HTTP requests
            to a device the node holds, sequential on one connection, while 8 raw devices
            register and leave in a loop (their registrations per second are reported too);
  stopped   Redis stopped with SIGSTOP for 3 s: p50/p99/max of the same requests meanwhile,
            while 4 raw devices try to register;
  storm     Redis slowed: N raw devices (default 300), 100 at a time, register once each:
            registrations per second until the last is answered (WELCOME).

    python3 bench/async_registry.py [--delay-ms 5] [-n 300] [--json]
            [LABEL=TETHERD[:TETHER] ...]   (default: before=$TETHER_BASELINE/tetherd, if set, and
                                            this tree's build/release/bin/tetherd)
Prints a Markdown table. Everything on loopback; every process started here is stopped by its
PID. Python 3 standard library only."""

import argparse
import base64
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
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from redis_slow import SlowProxy  # noqa: E402
from benchnet import free_port, wait_port  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


# ---- a raw device: handshake, HELLO, the answer

def _frame(payload):
    key = os.urandom(4)
    n = len(payload)
    head = bytes([0x82]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) +
                            struct.pack(">H", n))
    k = (key * (n // 4 + 1))[:n]
    return head + key + bytes(a ^ b for a, b in zip(payload, k))


def _s8(b):
    b = b.encode()
    return bytes([len(b)]) + b


def register(port, name, timeout=30):
    """Registers name; returns 'welcome', 'refuse', 'busy' (503) or 'error'. Closes after."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return "error"
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n" % (port, key)).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = s.recv(4096)
            if not b:
                return "error"
            buf += b
        head, _, rest = buf.partition(b"\r\n\r\n")
        if b" 503 " in head.split(b"\r\n")[0]:
            return "busy"
        if b" 101 " not in head.split(b"\r\n")[0]:
            return "error"
        p = struct.pack(">BHI", 2, 1024, 262144) + _s8(name) + _s8(TOKEN) + _s8("")
        p += bytes([1]) + bytes([1]) + _s8("http")
        s.sendall(_frame(struct.pack(">HBBI", len(p), 1, 0, 0) + p))
        while len(rest) < 2 + 8:
            b = s.recv(4096)
            if not b:
                return "error"
            rest += b
        op = rest[0] & 0x0F
        if op == 0x8:
            return "refuse"
        typ = rest[2 + 2] if (rest[1] & 0x7F) < 126 else rest[4 + 2]
        return "welcome" if typ == 2 else "refuse"
    except OSError:
        return "error"
    finally:
        s.close()


# ---- the held device's service

class _Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # head and body in one write (no Nagle/delayed-ACK wait between them)

    def log_message(self, *a):
        pass

    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def http_service():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def requester(port, label, stop, out):
    """Sequential GETs to the held device on one keep-alive connection; latencies into out."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    host = "%s.localhost:%d" % (label, port)
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            c.request("GET", "/", headers={"Host": host})
            r = c.getresponse()
            r.read()
            out.append(time.monotonic() - t0)
        except (OSError, http.client.HTTPException):
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        time.sleep(0.002)
    c.close()


def churn(port, stop, prefix, counts):
    i = 0
    while not stop.is_set():
        r = register(port, "%s-%d" % (prefix, i), timeout=10)
        counts[r] = counts.get(r, 0) + 1
        i += 1


# ---- one build

def run_build(label, tetherd, tether, delay_ms, n, tmp):
    rport = free_port()
    redis = subprocess.Popen([shutil.which("redis-server"), "--port", str(rport), "--bind",
                              "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp,
                              "--logfile", ""], stdout=subprocess.DEVNULL)
    procs = [redis]
    proxy = None
    try:
        wait_port(rport)
        proxy = SlowProxy(rport, delay_ms=0)
        port, admin = free_port(), free_port()
        low = 20000 + (os.getpid() * 7 + hash(label)) % 20000
        data = tempfile.mkdtemp(dir=tmp)
        relay = subprocess.Popen(
            [tetherd, "--listen", "127.0.0.1:%d" % port, "--domain", "localhost",
             "--tcp-ports", "%d-%d" % (low, low + 7), "--tcp-bind", "127.0.0.1",
             "--data-dir", data, "--admin-listen", "127.0.0.1:%d" % admin, "--token", TOKEN,
             "--redis", "redis://127.0.0.1:%d" % proxy.port, "--node-id", "bench",
             "--advertise", "ws://127.0.0.1:%d" % port, "--log-level", "warn",
             "--new-names-per-second", "1000000", "--max-pending-per-addr", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(relay)
        wait_port(port)
        svc = http_service()
        agent = subprocess.Popen([tether, "--server", "ws://127.0.0.1:%d" % port, "--name",
                                  "held", "--token", TOKEN, "--http",
                                  "127.0.0.1:%d" % svc.server_address[1]],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(agent)
        lbl = None
        end = time.time() + 30
        while time.time() < end and not lbl:
            line = agent.stdout.readline()
            m = re.search(r"https?://([a-z0-9]+)\.localhost", line or "")
            if m:
                lbl = m.group(1)
        if not lbl:
            raise SystemExit("%s: the held device did not register" % label)
        res = {"build": label}
        # slowed, with registrations going on
        proxy.delay_ms = delay_ms
        lat, counts, stop = [], {}, threading.Event()
        ths = [threading.Thread(target=requester, args=(port, lbl, stop, lat))]
        ths += [threading.Thread(target=churn, args=(port, stop, "churn%d" % k, counts))
                for k in range(8)]
        for th in ths:
            th.start()
        time.sleep(6)
        stop.set()
        for th in ths:
            th.join(30)
        res["slowed_p50_ms"] = pct(lat, 50) * 1000
        res["slowed_p99_ms"] = pct(lat, 99) * 1000
        res["slowed_requests"] = len(lat)
        res["churn_per_s"] = counts.get("welcome", 0) / 6.0
        res["churn_answers"] = counts
        # stopped
        proxy.delay_ms = 0
        time.sleep(1)
        lat, counts, stop = [], {}, threading.Event()
        ths = [threading.Thread(target=requester, args=(port, lbl, stop, lat))]
        ths += [threading.Thread(target=churn, args=(port, stop, "stop%d" % k, counts))
                for k in range(4)]
        redis.send_signal(signal.SIGSTOP)
        for th in ths:
            th.start()
        time.sleep(3)
        stop.set()
        redis.send_signal(signal.SIGCONT)
        for th in ths:
            th.join(30)
        res["stopped_p50_ms"] = pct(lat, 50) * 1000
        res["stopped_p99_ms"] = pct(lat, 99) * 1000
        res["stopped_max_ms"] = max(lat) * 1000 if lat else float("nan")
        res["stopped_requests"] = len(lat)
        res["stopped_answers"] = counts
        time.sleep(6)  # back on Redis (the synchronous connection's back-off)
        # storm
        proxy.delay_ms = delay_ms
        names = ["storm-%d" % i for i in range(n)]
        out, lock = {}, threading.Lock()

        def worker():
            while True:
                with lock:
                    if not names:
                        return
                    nm = names.pop()
                r = register(port, nm, timeout=60)
                with lock:
                    out[r] = out.get(r, 0) + 1

        t0 = time.monotonic()
        ws = [threading.Thread(target=worker) for _ in range(100)]
        for w in ws:
            w.start()
        for w in ws:
            w.join(300)
        took = time.monotonic() - t0
        res["storm_welcomed"] = out.get("welcome", 0)
        res["storm_other"] = sum(v for k, v in out.items() if k != "welcome")
        res["storm_answers"] = out
        res["storm_per_s"] = out.get("welcome", 0) / took if took > 0 else float("nan")
        svc.shutdown()
        return res
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGCONT)
                except OSError:
                    pass
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if proxy:
            proxy.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--delay-ms", type=float, default=5.0)
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("builds", nargs="*")
    a = ap.parse_args()
    # Without arguments: this tree's release build, after a baseline's when TETHER_BASELINE
    # names a directory holding an older tetherd and tether (for a before-and-after table).
    this = "this=%s/build/release/bin/tetherd:%s/build/release/bin/tether" % (ROOT, ROOT)
    base = os.environ.get("TETHER_BASELINE", "")
    builds = a.builds or ([("before=%s/tetherd:%s/tether" % (base, base)), this]
                          if base and os.path.isfile(os.path.join(base, "tetherd")) else [this])
    rows = []
    tmp = tempfile.mkdtemp(prefix="bench-redis-")
    try:
        for b in builds:
            label, _, paths = b.partition("=")
            tetherd, _, tether = paths.partition(":")
            tether = tether or os.path.join(os.path.dirname(tetherd), "tether")
            rows.append(run_build(label, tetherd, tether, a.delay_ms, a.n, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        print(json.dumps(rows))
        return 0
    print("Redis %.0f ms per reply (slowed); SIGSTOP 3 s (stopped); %d devices, 100 at a time "
          "(storm)\n" % (a.delay_ms, a.n))
    print("| build | slowed p50 / p99 (ms) | registrations/s during it | stopped p50 / p99 / "
          "max (ms) | storm registrations/s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| %s | %.1f / %.1f | %.0f | %.1f / %.1f / %.0f | %.0f (%d of %d welcomed) |" %
              (r["build"], r["slowed_p50_ms"], r["slowed_p99_ms"], r["churn_per_s"],
               r["stopped_p50_ms"], r["stopped_p99_ms"], r["stopped_max_ms"], r["storm_per_s"],
               r["storm_welcomed"], a.n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
