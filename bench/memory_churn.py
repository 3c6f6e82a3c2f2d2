#!/usr/bin/env python3
"""memory_churn.py - does the relay return to its starting memory after a lot of traffic?

Starts tetherd (release build by default) on loopback with a short grace period, a local HTTP
service and one device (tether) exposing it, warms up, then churns:

  - REQUESTS HTTP requests through the device URL (default 10,000): half on fresh connections,
    half on keep-alive connections of 50 requests, 8 clients at once, bodies of 1 KiB to
    256 KiB checked byte for byte, and one in 20 a request the relay answers by itself (404 for
    an unknown label, 400 for a malformed one);
  - CONNECTS device connects and disconnects (default 1,000): real tether processes, a few at a
    time, each waiting for its `ready` line, then stopped (SIGTERM, every fourth SIGKILL); names
    cycle over 100, so some reconnect within the grace period and some come back after it.

It reports the relay's VmRSS (and VmHWM, open file descriptors) at start, after the warm-up,
right after the churn, and after a pause long enough for every disconnected device to expire
(--pause, default 15 s; grace 2 s). With --rounds N the churn runs N times, so that a plateau
(allocator caches, the chunk pool's free list, SQLite's page cache, all bounded) can be told
from growth (each round adding more). Numbers are printed and one JSON line is appended to
bench/memory_churn.jsonl; nothing passes or fails on them. Loopback only; every process it
starts is stopped by PID; bounded in count and time (--deadline, default 15 min).

Usage: bench/memory_churn.py [--requests N] [--connects N] [--rounds N] [--pause S]
                             [--concurrency N] [--deadline S]
Environment: BIN (default build/release/bin: tetherd, tether).
"""

import argparse
import datetime
import http.client
import http.server
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchnet import free_port  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.path.abspath(os.environ.get("BIN", os.path.join(ROOT, "build/release/bin")))
TOKEN = "churn-token-0123456789abcdef"
UNIT = bytes(range(251))


def pattern(n):
    return (UNIT * (n // len(UNIT) + 1))[:n]


def proc_status(pid):
    """(VmRSS KiB, VmHWM KiB, open fds) of pid."""
    rss = hwm = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm, len(os.listdir("/proc/%d/fd" % pid))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        n = 0
        if "?n=" in self.path:
            n = int(self.path.split("?n=", 1)[1])
        body = pattern(n)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


class World:
    """The relay, the device's web server and the processes started, stopped by PID."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []
        self.port = free_port()
        self.admin = free_port()
        self.web = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.web.serve_forever, daemon=True).start()
        low = 30000 + int.from_bytes(os.urandom(2), "big") % 20000
        self.relay = subprocess.Popen(
            [os.path.join(BIN, "tetherd"), "--listen", "127.0.0.1:%d" % self.port,
             "--admin-listen", "127.0.0.1:%d" % self.admin, "--domain", "localhost",
             "--tcp-ports", "%d-%d" % (low, low + 99), "--grace", "2s", "--token", TOKEN,
             "--data-dir", os.path.join(tmp, "data"), "--log-level", "warn"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(tmp, "tetherd.stderr"), "wb"))
        self.procs.append(self.relay)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit("tetherd did not start")

    def agent(self, name):
        """Starts tether exposing the web server; returns (process, label) once ready."""
        p = subprocess.Popen(
            [os.path.join(BIN, "tether"), "--server", "ws://127.0.0.1:%d" % self.port,
             "--name", name, "--token", TOKEN, "--http", "127.0.0.1:%d" % self.web.server_address[1],
             "--log-level", "error"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        line = p.stdout.readline().decode()
        if not line.startswith("ready http http://"):
            raise RuntimeError("agent %s: no ready line (%r)" % (name, line))
        return p, line.split("http://", 1)[1].split(".", 1)[0]

    def stop(self, p, sig=signal.SIGTERM):
        if p.poll() is None:
            try:
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
        if p.stdout:
            p.stdout.close()
        if p in self.procs:
            self.procs.remove(p)

    def close(self):
        for p in list(reversed(self.procs)):
            self.stop(p)
        self.web.shutdown()
        self.web.server_close()


def requests_churn(w, label, total, concurrency, deadline):
    """total requests through the device URL; returns (ok, errors, relay answers)."""
    host = "%s.localhost:%d" % (label, w.port)
    lock = threading.Lock()
    counts = {"ok": 0, "bad": 0, "relay": 0, "next": 0}
    errors = []

    def take(k):
        with lock:
            start = counts["next"]
            n = min(k, total - start)
            counts["next"] += max(n, 0)
            return start, n

    def check(c, i):
        """One request; c is the worker's connection to the device URL."""
        if i % 20 == 19:  # the relay answers these itself, on a connection of their own
            c = http.client.HTTPConnection("127.0.0.1", w.port, timeout=60)
            if i % 40 == 39:
                c.request("GET", "/", headers={"Host": "nosuchlabel.localhost:%d" % w.port})
                want = 404
            else:
                c.request("GET", "/", headers={"Host": "bad host!"})
                want = 400
            r = c.getresponse()
            r.read()
            c.close()
            with lock:
                counts["relay" if r.status == want else "bad"] += 1
                if r.status != want:
                    errors.append("request %d: status %d, want %d" % (i, r.status, want))
            return True
        n = 1024 + (i * 7919) % (255 * 1024)
        c.request("GET", "/blob?n=%d" % n, headers={"Host": host})
        r = c.getresponse()
        body = r.read()
        with lock:
            counts["ok" if r.status == 200 and body == pattern(n) else "bad"] += 1
        return True

    def worker(wid):
        while time.monotonic() < deadline:
            keep = wid % 2 == 0
            start, n = take(50 if keep else 1)
            if n <= 0:
                return
            c = http.client.HTTPConnection("127.0.0.1", w.port, timeout=60)
            try:
                for i in range(start, start + n):
                    check(c, i)
            except Exception as e:
                with lock:
                    errors.append(repr(e))
                    counts["bad"] += 1
            finally:
                c.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts["ok"], counts["bad"], counts["relay"], errors[:3]


def connects_churn(w, total, parallel, deadline):
    """total agent connects and disconnects; returns how many registered."""
    done = 0
    i = 0
    while i < total and time.monotonic() < deadline:
        batch = []
        for k in range(min(parallel, total - i)):
            name = "churn-%d" % ((i + k) % 100)
            try:
                batch.append((w.agent(name)[0], i + k))
            except RuntimeError as e:
                print("  %s" % e, file=sys.stderr)
        for p, n in batch:
            w.stop(p, signal.SIGKILL if n % 4 == 3 else signal.SIGTERM)
            done += 1
        i += parallel
        # A name reused at once takes over; give the relay a moment to see the others go.
        time.sleep(0.05)
    return done


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--connects", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--pause", type=float, default=15.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--deadline", type=float, default=900.0)
    args = ap.parse_args()
    for exe in ("tetherd", "tether"):
        if not os.access(os.path.join(BIN, exe), os.X_OK):
            raise SystemExit("%s/%s missing: run make (or set BIN)" % (BIN, exe))
    deadline = time.monotonic() + args.deadline
    tmp = tempfile.mkdtemp(prefix="tether-churn-")
    w = World(tmp)
    samples = []
    t0 = time.monotonic()

    def sample(what, **extra):
        rss, hwm, fds = proc_status(w.relay.pid)
        s = {"at": what, "rss_kib": rss, "hwm_kib": hwm, "fds": fds,
             "t_s": round(time.monotonic() - t0, 1)}
        s.update(extra)
        samples.append(s)
        print("%-26s VmRSS %7d KiB  VmHWM %7d KiB  fds %4d  %s" %
              (what, rss, hwm, fds, " ".join("%s=%s" % kv for kv in extra.items())))
        sys.stdout.flush()

    try:
        time.sleep(0.5)
        sample("start")
        dev, label = w.agent("churn-main")
        ok, bad, relay, errs = requests_churn(w, label, 400, args.concurrency, deadline)
        connects_churn(w, 20, 5, deadline)
        time.sleep(args.pause)
        sample("after warm-up", ok=ok, bad=bad)
        for r in range(1, args.rounds + 1):
            ok, bad, relay, errs = requests_churn(w, label, args.requests, args.concurrency,
                                                  deadline)
            sample("round %d: %d requests" % (r, args.requests), ok=ok, relay=relay, bad=bad)
            if errs:
                print("  errors: %s" % errs)
            n = connects_churn(w, args.connects, 5, deadline)
            sample("round %d: %d connects" % (r, n))
            time.sleep(args.pause)
            sample("round %d: after %gs pause" % (r, args.pause))
        w.stop(dev)
    finally:
        w.close()
        err = open(os.path.join(tmp, "tetherd.stderr"), "rb").read().decode("utf-8", "replace")
        shutil.rmtree(tmp, ignore_errors=True)
    if "ERROR" in err or "runtime error" in err:
        print("tetherd stderr:\n" + err[-3000:])
    warm = next(s for s in samples if s["at"] == "after warm-up")
    last = samples[-1]
    print("growth after the churn and the pause: %+d KiB over the warm relay (%+d KiB over the "
          "cold start)" % (last["rss_kib"] - warm["rss_kib"], last["rss_kib"] - samples[0]["rss_kib"]))
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                stdout=subprocess.PIPE, text=True).stdout.strip()
    except OSError:
        commit = "unknown"
    line = {"bench": "memory_churn", "date": datetime.datetime.utcnow().isoformat() + "Z",
            "commit": commit, "bin": os.path.relpath(BIN, ROOT),
            "machine": {"cores": os.cpu_count(), "kernel": platform.release()},
            "params": vars(args), "samples": samples,
            "growth_kib": last["rss_kib"] - warm["rss_kib"]}
    with open(os.path.join(ROOT, "bench", "memory_churn.jsonl"), "a") as f:
        f.write(json.dumps(line, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
