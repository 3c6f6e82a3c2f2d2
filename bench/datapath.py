#!/usr/bin/env python3
"""datapath.py - the data-path part of the bench only, Tether against direct, in interleaved
rounds, to iterate on the data path and to compare builds in one run (medians of ratios to
direct measured in the same round). Writes nothing; prints a table.

  python3 bench/datapath.py [--rounds N] [--mib M] [--seconds S] [--parts tcp,seq,http]
                            [--floor] [NAME=BINDIR ...]

Each NAME=BINDIR (a directory holding tetherd and tether) gets its own relay and agent in front
of the same nginx and iperf3; without any, build/release/bin is measured as "tether".
Parts: tcp (iperf3 both ways, M MiB), seq (wrk -c1 -t1, 1 KiB keep-alive: p50 and p99),
http (wrk -c32 -t2, 1 KiB keep-alive requests/s), dl (wrk -c4 -t1, 1 MiB keep-alive downloads:
MiB/s through the relay's HTTP filter and response tracking), connect (for each build, two
more rows in the same rounds: "/port", iperf3 and the sequential 1 KiB requests over the
device's public TCP port to the same nginx, and "/connect", the same through `tether connect
--listen`: a stream's throughput and added latency against a public TCP port). --floor adds "2fwd": two bare forwarder
processes (bench/fwd.c, built with cc into build/) chained in front of the same services, the
floor of any relay made of two more processes (HTTP parts only: iperf3 fails through it). Also prints relay + agent CPU per GiB and per
request (/proc/PID/schedstat)."""
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402
import lib  # noqa: E402  (bench put tests/e2e on the path)


def iperf(port, reverse, nbytes):
    """bench.iperf, retried while iperf3 -s still winds down the previous test (it may be a
    moment late through the forwarders)."""
    for attempt in range(5):
        try:
            return bench.iperf(port, reverse, nbytes)
        except RuntimeError as e:
            if ("busy" not in str(e) and "closed unexpectedly" not in str(e)) or attempt == 4:
                raise
            time.sleep(0.5)


def main(argv):
    rounds, mib, seconds, parts, variants, floor = 5, 1024, 3, ["tcp", "seq"], [], False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--rounds":
            rounds = int(argv[i + 1]); i += 2
        elif a == "--mib":
            mib = int(argv[i + 1]); i += 2
        elif a == "--seconds":
            seconds = int(argv[i + 1]); i += 2
        elif a == "--parts":
            parts = argv[i + 1].split(","); i += 2
        elif a == "--floor":
            floor = True; i += 1
        elif "=" in a:
            name, d = a.split("=", 1)
            variants.append((name, os.path.abspath(d))); i += 1
        else:
            print(__doc__)
            return 2
    if not variants:
        variants = [("tether", bench.BIN)]
    env = lib.Env("bench-datapath")
    targets = {}
    try:
        web = bench.start_nginx(env)
        iperf_port = bench.start_iperf(env)
        targets["direct"] = (iperf_port, web, None)
        pids = {"direct": []}
        for name, d in variants:
            lib.TETHERD = os.path.join(d, "tetherd")
            lib.TETHER = os.path.join(d, "tether")
            relay = env.relay(grace="1m")
            agent = env.agent(relay, http=web, tcp={"iperf": iperf_port})
            targets[name] = (agent.tcp_port("iperf"), relay.port, relay.host(agent.label))
            pids[name] = [relay.proc.p.pid, agent.proc.p.pid]
            if "connect" in parts:
                # the same services by raw TCP: the device's public ports, and tether connect
                agent2 = env.agent(relay, tcp={"iperf": iperf_port, "web": web})
                ports = []
                for svc in ("iperf", "web"):
                    port = lib.free_port()
                    c = lib.Proc(env, "tether", [lib.TETHER, "connect", "--server", relay.url,
                                                 "%s/%s" % (agent2.name, svc), "--listen",
                                                 "127.0.0.1:%d" % port])
                    # not probed by connecting: iperf3 -s would take it for a test's
                    c.wait_line(lambda l: l.startswith("listening "), 30, 0, "listening")
                    ports.append(port)
                targets[name + "/port"] = (agent2.tcp_port("iperf"), agent2.tcp_port("web"),
                                           "localhost")
                targets[name + "/connect"] = (ports[0], ports[1], "localhost")
                cpids = [q.p.pid for q in env.procs[-2:]]
                pids[name + "/port"] = [relay.proc.p.pid, agent2.proc.p.pid]
                pids[name + "/connect"] = [relay.proc.p.pid, agent2.proc.p.pid] + cpids
        names = ["direct"] + [n for n, _ in variants]
        if "connect" in parts:
            names += [n + s for n, _ in variants for s in ("/port", "/connect")]
        if floor:
            exe = os.path.join(bench.ROOT, "build", "bench-fwd")
            subprocess.run(["cc", "-O2", "-o", exe, os.path.join(HERE, "fwd.c")], check=True)
            ports, fpids = [], []
            for target in (iperf_port, web):
                outer, inner = lib.free_port(), lib.free_port()
                procs = [lib.Proc(env, "fwd", [exe, str(inner), str(target)]),
                         lib.Proc(env, "fwd", [exe, str(outer), str(inner)])]
                ports.append(outer)
                fpids.append([q.p.pid for q in procs])
            # Not probed by connecting: iperf3 -s takes any connection for a test's.
            time.sleep(0.5)
            if not all(p.alive() for p in procs):
                raise RuntimeError("bench/fwd did not start")
            targets["2fwd"] = (ports[0], ports[1], None)
            pids["2fwd"] = fpids[1]  # the HTTP chain: its CPU per request
            names.append("2fwd")
        res = {n: {} for n in names}

        def add(n, k, v):
            res[n].setdefault(k, []).append(v)

        def cpu(n):
            return sum(bench.cpu_ns(pid) for pid in pids[n])

        def timed(n, k, per, fn):
            """fn's result; relay + agent CPU (ns) per `per(result)` unit goes to k."""
            c0 = cpu(n)
            try:
                v = fn()
            except Exception as e:
                raise RuntimeError("%s, %s: %s" % (n, k, e))
            if pids[n]:
                add(n, k, (cpu(n) - c0) / per(v))
            return v

        for r in range(rounds):
            order = names if r % 2 == 0 else list(reversed(names))
            for n in order:
                tcp, port, host = targets[n]
                gib = lambda v: mib / 1024.0 * 1e9  # ns per GiB -> s per GiB
                if "tcp" in parts and n != "2fwd":  # iperf3 fails through bench/fwd here
                    add(n, "up", timed(n, "cpu_up", gib, lambda: iperf(tcp, False, mib << 20)))
                    add(n, "down", timed(n, "cpu_down", gib,
                                         lambda: iperf(tcp, True, mib << 20)))
                url = "http://127.0.0.1:%d/1k" % port
                reqs = lambda w: w["rps"] * seconds * 1e3  # ns -> us per request
                if "seq" in parts:
                    w = timed(n, "cpu_seq", reqs, lambda: bench.wrk(url, host, 1, 1, seconds))
                    add(n, "p50", w["p50_us"])
                    add(n, "p99", w["p99_us"])
                if "http" in parts:
                    w = timed(n, "cpu_rps", reqs, lambda: bench.wrk(url, host, 2, 32, seconds))
                    add(n, "rps", w["rps"])
                if "dl" in parts:
                    big = "http://127.0.0.1:%d/1m" % port
                    mibs = lambda w: w["rps"] * seconds / 1024.0 * 1e9  # ns -> s per GiB
                    w = timed(n, "cpu_dl", mibs, lambda: bench.wrk(big, host, 1, 4, seconds))
                    add(n, "dl", w["rps"])  # 1 MiB responses/s = MiB/s
            print("round %d: %s" % (r + 1, "  ".join(
                "%s %s" % (n, " ".join("%s=%.4g" % (k, v[-1]) for k, v in res[n].items()))
                for n in names)), flush=True)
        print("\nmedians over %d rounds (ratios: median of the per-round ratio to direct)" % rounds)
        for k, higher in (("up", True), ("down", True), ("rps", True), ("dl", True),
                          ("p50", False), ("p99", False)):
            if k not in res["direct"]:
                continue
            row = ["%-5s direct %.4g" % (k, statistics.median(res["direct"][k]))]
            for n in names[1:]:
                if k not in res[n]:
                    continue
                v = res[n][k]
                d = res["direct"][k]
                if higher:
                    rat = statistics.median(a / b for a, b in zip(v, d))
                    row.append("%s %.4g (%.0f%%)" % (n, statistics.median(v), 100 * rat))
                else:
                    add_us = statistics.median(a - b for a, b in zip(v, d))
                    row.append("%s %.4g (+%.0f us)" % (n, statistics.median(v), add_us))
            print("  ".join(row))
        print("relay + agent CPU (median): s per GiB up / down, us per request sequential / "
              "32 connections, s per GiB of HTTP download")
        for n in names[1:]:
            print("  %s: %s" % (n, "  ".join("%s %.3g" % (k, statistics.median(res[n][k]))
                                             for k in ("cpu_up", "cpu_down", "cpu_seq", "cpu_rps",
                                                       "cpu_dl")
                                             if k in res[n])))
    finally:
        for prob in env.cleanup():
            print("warning: " + prob.split("\n")[0])
        env.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
