#!/usr/bin/env python3
"""bench/admin_walk.py - what a page of GET /api/devices costs a cluster node's loop.

One tetherd node in cluster mode (--redis, a redis-server of its own on a free loopback port, no
persistence) with N devices registered by bench/loadgen, then, for each tetherd given:
- a probe asks the node's admin GET /healthz every 5 ms on a new connection (the admin listener
  runs on the node's one loop, so its answer's latency bounds the loop's stall) while GET
  /api/devices?limit=100 pages are read one after the other for a few seconds;
- prints the pages' time and the probe's latency (median, p99, max) during the pages and idle.

Usage: bench/admin_walk.py [-n 10000] NAME=DIR_WITH_TETHERD... (loadgen from build/release/bin)
(tetherd keeps 1,000 descriptors in reserve under its open-files limit: with a limit of 20,000,
-n beyond about 18,000 gets connections shed.) Kills only the processes it started.

Measured 2026-12-07 on the shared 2-core machine, 10,000 devices, release builds: before
(main 336e70d) a page 26 ms, /healthz during the pages median 20.7 ms, max 190 ms; after (the
walk on the asynchronous connection) a page 28 ms, /healthz median 0.4 ms, max 13.9 ms (idle:
median 0.3 ms, max 4.4 ms)."""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LOADGEN = os.path.join(HERE, "..", "build", "release", "bin", "loadgen")
TOKEN = "bench-token-0123456789abcdef"

sys.path.insert(0, HERE)
from benchnet import free_port, get, wait_port  # noqa: E402


def probe(port, stop, out):
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            get(port, "/healthz", timeout=10)
        except OSError:
            pass
        out.append(time.monotonic() - t0)
        time.sleep(0.005)


def summary(lat):
    lat = sorted(lat)
    return "median %.1f ms, p99 %.1f ms, max %.1f ms (%d probes)" % (
        statistics.median(lat) * 1e3, lat[int(len(lat) * 0.99) - 1] * 1e3, lat[-1] * 1e3,
        len(lat))


def run(name, tetherd, n, seconds):
    procs = []
    tmp = tempfile.mkdtemp(prefix="admin-walk-")
    try:
        rport, port, aport = free_port(), free_port(), free_port()
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp, "--logfile", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(rport)
        procs.append(subprocess.Popen(
            [tetherd, "--listen", "127.0.0.1:%d" % port, "--domain", "localhost",
             "--data-dir", os.path.join(tmp, "data"), "--admin-listen", "127.0.0.1:%d" % aport,
             "--token", TOKEN, "--redis", "redis://127.0.0.1:%d" % rport, "--node-id", "node-a",
             "--advertise", "ws://127.0.0.1:%d" % port, "--log-level", "info",
             "--new-names-per-second", "100000", "--max-pending-per-addr", "0"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "tetherd.log"), "w")))
        print("%s: tetherd log in %s" % (name, os.path.join(tmp, "tetherd.log")))
        wait_port(aport)
        lg = subprocess.Popen(
            [LOADGEN, "--url", "ws://127.0.0.1:%d/?tether-redirected=1" % port, "-n", str(n),
             "--token", TOKEN, "--prefix", "walk", "--src", "127.5.0.1", "--per-src", "1000",
             "--max-pending", "256", "--duration-s", "900", "--status-ms", "1000"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(lg)
        end = time.monotonic() + 300
        for line in lg.stdout:
            if '"all_registered"' in line or time.monotonic() > end:
                break
        threading.Thread(target=lambda: [None for _ in lg.stdout], daemon=True).start()
        time.sleep(3)
        idle, busy, pages = [], [], []
        stop = threading.Event()
        th = threading.Thread(target=probe, args=(aport, stop, idle), daemon=True)
        th.start()
        time.sleep(2)
        stop.set()
        th.join()
        stop = threading.Event()
        th = threading.Thread(target=probe, args=(aport, stop, busy), daemon=True)
        th.start()
        t_end = time.monotonic() + seconds
        total = None
        while time.monotonic() < t_end:
            t0 = time.monotonic()
            st, body = get(aport, "/api/devices?limit=100")
            pages.append(time.monotonic() - t0)
            if st == 200 and total is None:
                total = json.loads(body)["total"]
        stop.set()
        th.join()
        print("%s: %d devices (total %s): page of 100: median %.0f ms (%d pages); /healthz "
              "while pages were read: %s; idle: %s" %
              (name, n, total, statistics.median(pages) * 1e3, len(pages), summary(busy),
               summary(idle)))
        sys.stdout.flush()
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("builds", nargs="+", help="NAME=DIR holding tetherd")
    a = ap.parse_args()
    for b in a.builds:
        name, _, d = b.partition("=")
        run(name, os.path.join(d, "tetherd"), a.n, a.seconds)


if __name__ == "__main__":
    main()
