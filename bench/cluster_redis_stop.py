#!/usr/bin/env python3
"""cluster_redis_stop.py - what a stopped Redis costs a cluster node's loop: two nodes sharing a
redis-server, which is SIGSTOPped for 3 s (by the PID started here); meanwhile requests to a
device node a holds are timed one after the other (the largest is the longest the loop stood
still), then one request for a device node a never looked up (held by node b: answered from
Redis, or after the bounded wait). Prints numbers, never passes or fails. Loopback only.

  TETHERD=build/release/bin/tetherd TETHER=build/release/bin/tether python3 bench/cluster_redis_stop.py
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import lib  # noqa: E402
from test_cluster import _cluster, _get  # noqa: E402


def run(t, seconds=3.0):
    redis, (a, b) = _cluster(t)
    s1 = t.http_service(big_size=1024, ident="a")
    s2 = t.http_service(big_size=1024, ident="b")
    s3 = t.http_service(big_size=1024, ident="c")
    da = t.agent(a, http=s1.port)
    db = t.agent(b, http=s2.port, server=b.url + "/?tether-redirected=1")
    dc = t.agent(b, http=s3.port, server=b.url + "/?tether-redirected=1")
    _get(b, da.label)
    _get(a, db.label)
    redis.proc.send_signal(signal.SIGSTOP)
    t0 = time.monotonic()
    lat = []
    try:
        while time.monotonic() - t0 < seconds:
            s = time.monotonic()
            st = _get(a, da.label, timeout=10)[0]
            lat.append((time.monotonic() - s, st))
            time.sleep(0.05)
        s = time.monotonic()
        stc = _get(a, dc.label, timeout=10)[0]
        tc = time.monotonic() - s
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    time.sleep(3)
    left = sum(n.proc.stderr_text().count("node left") for n in (a, b))
    ms = sorted(x[0] * 1000 for x in lat)
    print("held device during a %.0f s Redis stop: requests=%d ok=%d median=%.1f ms max=%.1f ms; "
          "device new to the node: %d after %.2f s; 'node left' lines: %d"
          % (seconds, len(lat), sum(1 for x in lat if x[1] == 200), ms[len(ms) // 2], ms[-1],
             stc, tc, left))


if __name__ == "__main__":
    env = lib.Env("cluster_redis_stop")
    try:
        run(env)
    finally:
        env.cleanup()
