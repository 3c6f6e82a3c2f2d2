#!/usr/bin/env python3
"""idle.py - relay CPU and memory with N idle devices whose heartbeats are spread over the
interval, as on a long-running relay (never part of make test; docs/BENCHMARKS.md "Idle devices:
the heartbeat"). bench.py registers the devices as fast as the relay takes them, which bunches
their heartbeats; here they register over 15 s and the CPU is the median of REPS windows of
SECS seconds, starting 22 s after the last registration. With --storm, the relay is then
restarted under the largest N (bench.py's reconnect storm). One JSON line per measurement on
stdout. Loopback only; every process it starts is stopped by PID; bounded by loadgen's
--duration-s and a timeout per step.

Usage: bench/idle.py [--tetherd PATH] [--ping-ms 20000] [--reps 3] [--secs 20] [--storm]
                     N[,N...]
  --ping-ms: loadgen's agent rule, a ping after that much silence (10000 against a relay from
  before the heartbeat work, which never pinged such devices, gives the old 10 s agents).
"""
import json
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main(argv):
    opts = {"--tetherd": os.environ["TETHERD"], "--ping-ms": "20000", "--reps": "3",
            "--secs": "20"}
    storm, ns = False, None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--storm":
            storm = True
        elif a in opts and i + 1 < len(argv):
            opts[a] = argv[i + 1]
            i += 1
        else:
            ns = [int(x) for x in a.split(",") if x]
        i += 1
    if not ns:
        print(__doc__, file=sys.stderr)
        return 2
    bench.lib.TETHERD = os.path.abspath(opts["--tetherd"])
    ping_ms, reps, secs = int(opts["--ping-ms"]), int(opts["--reps"]), float(opts["--secs"])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for n in ns:
        env = bench.lib.Env("idle")
        row = {"n": n, "ping_ms": ping_ms}
        try:
            relay = bench.relay_for_devices(env)
            time.sleep(0.5)
            row["base_rss_kib"] = bench.rss_kib(relay.proc.pid)
            rate = max(100, n // 15)  # registrations over 15 s: heartbeats of uniform phase
            lg = bench.Loadgens(env, relay.url, n, hard - 300, ping_ms,
                                60 + n / 100 + reps * secs + 200, extra=["--rate", str(rate)])
            if lg.wait_all(0, 30 + n / 100) is None:
                raise RuntimeError("not all %d devices registered" % n)
            time.sleep(22)
            cpus = [round(bench.cpu_percent(lambda: [relay.proc.pid], secs), 3)
                    for _ in range(reps)]
            row["cpus"] = cpus
            row["cpu_pct"] = statistics.median(cpus)
            row["rss_kib"] = bench.rss_kib(relay.proc.pid)
            row["per_device_bytes"] = round((row["rss_kib"] - row["base_rss_kib"]) * 1024 / n)
            st = lg.last_status()
            row.update({k: st.get(k) for k in ("pings_in", "pongs_in", "ready")})
            print(json.dumps(row), flush=True)
            if storm and n == max(ns):
                print(json.dumps({"storm": bench.storm(env, relay, lg, n, {"quick": False})}),
                      flush=True)
            lg.stop()
        except Exception as e:  # reported, and the next N is measured
            row["error"] = str(e)
            print(json.dumps(row), flush=True)
        finally:
            env.cleanup()
            env.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
