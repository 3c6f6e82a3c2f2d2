#!/usr/bin/env python3
"""admission.py - a registration storm against one tetherd node (cluster mode, one redis-server,
release build), with and without --max-registering: N devices (bench/loadgen) connect at once;
a probe asks the node's admin /healthz every 20 ms on a new connection (the admin listener runs
on the same loop as the devices, so its latency is the loop's stall); reports the time until
every device is registered, the probe's worst and 99th-percentile latency, and the 503s.

    python3 bench/admission.py [-n 10000] [--max-registering 0,64]
Everything on loopback; every process started here is stopped by its PID."""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchnet import free_port, wait_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "release", "bin")


def probe(port, stop, out):
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            while s.recv(4096):
                pass
            s.close()
            out.append(time.monotonic() - t0)
        except OSError:
            out.append(10.0)
        time.sleep(0.02)


def run(n, maxreg, tmp):
    rport = free_port()
    redis = subprocess.Popen([shutil.which("redis-server"), "--port", str(rport), "--bind",
                              "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp,
                              "--logfile", ""], stdout=subprocess.DEVNULL)
    wait_port(rport)
    port, admin = free_port(), free_port()
    relay = subprocess.Popen([os.path.join(BIN, "tetherd"), "--listen", "127.0.0.1:%d" % port,
                              "--admin-listen", "127.0.0.1:%d" % admin, "--token", "bench-token",
                              "--redis", "redis://127.0.0.1:%d" % rport, "--node-id", "n1",
                              "--advertise", "ws://127.0.0.1:%d" % port, "--data-dir",
                              os.path.join(tmp, "data-%d" % maxreg), "--log-level", "warn",
                              "--max-registering", str(maxreg), "--max-pending-per-addr", "0",
                              "--max-names-per-token", str(4 * n),
                              "--new-names-per-second", str(4 * n)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(admin)
    lat, stop = [], threading.Event()
    th = threading.Thread(target=probe, args=(admin, stop, lat), daemon=True)
    th.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    lg = subprocess.Popen([os.path.join(BIN, "loadgen"), "--url", "ws://127.0.0.1:%d/" % port,
                           "-n", str(n), "--token", "bench-token", "--max-pending", str(n),
                           "--per-src", "1000", "--duration-s", "120", "--prefix",
                           "s%d" % maxreg], stdout=subprocess.PIPE, text=True)
    done, last = None, {}
    for line in lg.stdout:
        ev = json.loads(line)
        if ev.get("event") == "status":
            last = ev
        if ev.get("event") == "all_registered":
            done = ev
            break
    elapsed = time.monotonic() - t0
    lg.terminate()
    lg.wait()
    stop.set()
    th.join()
    relay.terminate()
    relay.wait()
    redis.terminate()
    redis.wait()
    lat.sort()
    return {"devices": n, "max_registering": maxreg, "all_registered_s": round(elapsed, 2)
            if done else None, "probe_max_ms": round(lat[-1] * 1000, 1) if lat else None,
            "probe_p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 1) if lat else None,
            "probes": len(lat), "busy_503": last.get("busy"), "conn_fail": last.get("conn_fail")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--max-registering", default="0,64")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tether-admission-")
    try:
        for m in a.max_registering.split(","):
            print(json.dumps(run(a.n, int(m), tmp)), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
