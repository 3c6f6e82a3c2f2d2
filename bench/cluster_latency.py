#!/usr/bin/env python3
"""cluster_latency.py - what a cluster hop costs: request latency to a device through the node
it is connected to and through another node (forwarded), on fresh connections and on one
keep-alive connection, plus the Redis call statistics the nodes log when they stop. Loopback
only; prints numbers, never passes or fails.

Usage: TETHERD=build/release/bin/tetherd TETHER=build/release/bin/tether \
       python3 bench/cluster_latency.py [N]"""

import http.client
import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import lib  # noqa: E402
from test_cluster import _cluster  # noqa: E402


def fresh(node, label, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        st = node.request("GET", "/small?i=1", label=label)[0]
        out.append(time.perf_counter() - t0)
        assert st == 200, st
    return out


def keepalive(node, label, n):
    c = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        c.request("GET", "/small?i=1", headers={"Host": node.host(label)})
        r = c.getresponse()
        r.read()
        out.append(time.perf_counter() - t0)
    c.close()
    return out


def ms(v):
    return "median %.3f ms, p90 %.3f ms" % (statistics.median(v) * 1e3,
                                           sorted(v)[int(len(v) * 0.9)] * 1e3)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    env = lib.Env("cluster-bench")
    try:
        redis, (a, b) = _cluster(env)
        svc = env.http_service(big_size=1024)
        agent = env.agent(a, http=svc.port)
        for node in (a, b):
            fresh(node, agent.label, 50)
        for what, fn in (("fresh connection", fresh), ("keep-alive", keepalive)):
            local = fn(a, agent.label, n)
            remote = fn(b, agent.label, n)
            print("%-17s via holder: %s | via other node: %s | added %.3f ms (median)" %
                  (what, ms(local), ms(remote),
                   (statistics.median(remote) - statistics.median(local)) * 1e3))
        for node in (a, b):
            node.stop()
            m = re.search(r"cluster redis calls=\d+ avg_us=\d+ max_us=\d+ failures=\d+",
                          node.proc.stderr_text())
            print("%s: %s" % (node.name, m.group(0) if m else "no stats"))
    finally:
        env.cleanup()
        env.remove()


if __name__ == "__main__":
    main()
