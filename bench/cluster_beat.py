#!/usr/bin/env python3
"""cluster_beat.py - what the cluster-wide admin API costs: a node's beat (node record, device
check: kick list, a slice of the devices, live fields of changed ones; ports, expiry) with N idle devices held by bench/loadgen,
read from the node's /metrics (tether_cluster_beat_seconds, tether_cluster_live_published_total)
once a second, and the time GET /api/devices takes on the other node, which reads all N records
from Redis. Two nodes and a real redis-server on loopback; prints numbers, never passes or fails.

Usage: TETHERD=build/release/bin/tetherd TETHER=build/release/bin/tether \\
       python3 bench/cluster_beat.py [N [SECONDS]]   (N 5000, SECONDS 40 by default)"""

import http.client
import json
import os
import re
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import lib  # noqa: E402
from test_cluster import _cluster  # noqa: E402

LOADGEN = os.path.join(os.path.dirname(lib.TETHERD), "loadgen")


def admin(node, path):
    c = http.client.HTTPConnection("127.0.0.1", node.admin_port, timeout=60)
    try:
        t0 = time.perf_counter()
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        return r.status, body, time.perf_counter() - t0
    finally:
        c.close()


def metric(text, name):
    m = re.search(r"^%s ([0-9.e+-]+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    env = lib.Env("cluster-beat")
    lib.RELAY_EXTRA = ["--max-pending-per-addr", "0", "--new-names-per-second", "1000000"]
    try:
        redis, (a, b) = _cluster(env)
        lg = lib.Proc(env, "loadgen", [LOADGEN, "--url", a.url + "/?tether-redirected=1",
                                       "-n", str(n), "--token", lib.TOKEN, "--prefix", "lg",
                                       "--src", "127.1.0.1", "--duration-s",
                                       str(seconds + 120), "--status-ms", "1000"])
        t0 = time.monotonic()
        lib.wait_for(lambda: any('"all_registered"' in l for l in list(lg.lines)), 120,
                     "loadgen to register %d devices" % n)
        print("%d devices registered in %.1f s" % (n, time.monotonic() - t0))
        time.sleep(3)
        beats, checks, pubs = [], [], []
        prev = None
        for _ in range(seconds):
            text = admin(a, "/metrics")[1].decode()
            beats.append(metric(text, 'tether_cluster_beat_seconds{part="all"}'))
            checks.append(metric(text, 'tether_cluster_beat_seconds{part="devices"}'))
            p = metric(text, "tether_cluster_live_published_total")
            if prev is not None:
                pubs.append(p - prev)
            prev = p
            time.sleep(1)
        q = lambda v: "median %.2f ms, max %.2f ms" % (statistics.median(v) * 1e3, max(v) * 1e3)
        print("node a beat (all):     %s" % q(beats))
        print("node a device check:   %s" % q(checks))
        print("live fields published: median %.0f devices/s, max %.0f" %
              (statistics.median(pubs), max(pubs)))
        print("beats that checked every device (redis listed fewer): %s" %
              metric(text, "tether_cluster_full_checks_total"))
        lists = []
        for _ in range(5):
            st, body, dt = admin(b, "/api/devices")
            assert st == 200, st
            lists.append(dt)
        devs = json.loads(body)["devices"]
        online = sum(1 for d in devs if d["online"] and d["node"] == "node-a")
        print("GET /api/devices on node b: %d devices (%d online at node-a), %s, %d bytes" %
              (len(devs), online, q(lists), len(body)))
        one = [admin(b, "/api/devices/" + devs[0]["name"])[2] for _ in range(20)]
        print("GET /api/devices/NAME on node b: %s" % q(one))
    finally:
        env.cleanup()


if __name__ == "__main__":
    main()
