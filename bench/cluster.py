#!/usr/bin/env python3
"""cluster.py - `make bench-cluster`: a Tether cluster at fleet scale on this one machine (never
part of make test or CI). A real Redis found through Redis Sentinel (one master, one replica,
three sentinels; Debian's redis-sentinel), NODES tetherd nodes (release build) sharing it, and
DEVICES idle devices held by bench/loadgen (one loadgen per node, each device given the node's
URL first and the others after it: a device whose node is gone dials the next one, each device
starting at a different one). Sentinel's down-after-milliseconds is 5000 (--down-after-ms; 1000,
as in the e2e tests, made a storm-loaded master flap between the two). Measured, in this order:

  register  time until every device is registered, and the rate
  idle      relay RSS per device and the nodes' CPU while idle (summed, % of one core); Redis
            used_memory per device
  kill      one node killed with kill -9: time until every device it held is online on another
            node with the label it had (read from the registry in Redis, all of them, polled), and
            until the admin API of a surviving node lists none offline; then every device's label
            checked through the admin API (paged)
  failover  the Redis master killed with kill -9: time until Sentinel names the replica and until
            every node has followed it (tether_redis_master_changes_total, and the nodes' log
            line); every device's label and state checked in the new master and through the admin
            API; devices dropped
  storm     (last: it may leave the cluster unusable) every device dropped at once and dialling
            again at once (loadgen SIGUSR1), with the nodes' admission control
            (--max-registering, 503 + Retry-After, which loadgen honours); a probe asks each
            node's admin /healthz every 10 ms (new connection; the admin listener runs on the
            node's one loop, so its latency bounds the loop's stall) and the worst and
            99th-percentile answers are reported, with the same probe on the idle cluster before
            the storm, and on a control tetherd outside the cluster, for comparison; a probe
            that fails (refused, reset) is counted apart from one that waited 10 s (timeout).
            Each node's own measure of its loop (/metrics, looplag.h) is read before and after:
            the largest timer lateness and loop turn (wall-clock and CPU), the lag samples over
            0.1, 1 and 5 s, the turns capped (tether_accept_paused_total,
            tether_ws_run_capped_total, tether_heads_deferred_total). --perf DIR records
            the first node with perf during the storm (BENCH_PERF_EVENTS=sched:sched_switch,
            BENCH_PERF_CALLGRAPH=dwarf)
  wss       (with --wss) the same fleet over wss:// (an ECDSA P-256 certificate made here with
            openssl): registration, memory per device, CPU while idle, storm

One JSON object per phase on stdout, a summary at the end. Loopback only (127.0.0.0/8); every
process started here is stopped by its PID; every wait is bounded.

Usage: python3 bench/cluster.py [--devices 100000] [--nodes 6] [--phases register,idle,kill,
       failover,storm] [--wss | --only-wss] [--max-registering 1024] [--storm-timeout 240]
Each run also appends its figures to bench/cluster_results.jsonl.
The hard open-file limit (20,000 here) caps the devices one process holds: the bench adds nodes
when the survivors of a kill would hold more than that (and says so)."""

import argparse
import calendar
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchnet  # noqa: E402
from benchnet import free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BENCH_BIN", os.path.join(ROOT, "build", "release", "bin"))
TOKEN = "bench-cluster-token"
MASTER = "benchmaster"
PATH = "/?tether-redirected=1"  # the nodes do not redirect these devices: loadgen spreads them


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_for(cond, timeout, what, interval=0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise RuntimeError("timed out (%d s) waiting for %s" % (timeout, what))


def uptime():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ------------------------------------------------------------------ processes, by PID only

class Procs:
    def __init__(self):
        self.procs = []

    def start(self, name, argv, logpath, stdout=None):
        lf = open(logpath, "wb")
        p = subprocess.Popen(argv, stdout=stdout if stdout else lf, stderr=lf,
                             stdin=subprocess.DEVNULL)
        p.name = name
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except OSError:
                    pass
        end = time.monotonic() + 15
        for p in self.procs:
            try:
                p.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def proc_cpu_s(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return 0.0


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ------------------------------------------------------------------ Redis (RESP, pipelined)

def resp_encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def resp_read(f):
    line = f.readline()
    if not line:
        raise OSError("redis closed the connection")
    t, rest = line[:1], line[1:-2]
    if t in (b"+", b"-"):
        return rest.decode() if t == b"+" else RuntimeError(rest.decode())
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [resp_read(f) for _ in range(n)]
    raise OSError("bad RESP reply %r" % line[:40])


def redis_cmds(port, cmds, chunk=2000):
    """Runs cmds (tuples) pipelined on one connection; returns their replies."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        f = s.makefile("rb")
        for i in range(0, len(cmds), chunk):
            part = cmds[i:i + chunk]
            s.sendall(b"".join(resp_encode(*c) for c in part))
            out.extend(resp_read(f) for _ in part)
    return out


def redis_cmd(port, *args):
    return redis_cmds(port, [args])[0]


def redis_info(port, key):
    text = redis_cmd(port, "INFO").decode()
    for line in text.split("\r\n"):
        if line.startswith(key + ":"):
            return line.split(":", 1)[1]
    return None


def registry(port, names):
    """{name: (label, node, off)} from the dev:NAME records."""
    reps = redis_cmds(port, [("HMGET", "tether:dev:" + n, "label", "node", "off") for n in names])
    out = {}
    for n, r in zip(names, reps):
        if isinstance(r, list) and r[0] is not None:
            out[n] = (r[0].decode(), (r[1] or b"").decode(), (r[2] or b"").decode())
    return out


class Sentinel:
    """Master, replica and three sentinels on loopback."""

    def __init__(self, procs, tmp, down_after):
        self.procs, self.tmp = procs, tmp
        self.master = self.redis("master")
        self.replica = self.redis("replica", ["--replicaof", "127.0.0.1", str(self.master[1])])
        wait_for(lambda: "up" == redis_info(self.replica[1], "master_link_status"), 60,
                 "the replica to sync")
        self.sentinels = []
        for i in range(3):
            port = free_port()
            d = os.path.join(tmp, "sentinel%d" % i)
            os.makedirs(d)
            conf = os.path.join(d, "sentinel.conf")
            with open(conf, "w") as f:
                f.write("port %d\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\nlogfile \"\"\n"
                        "dir %s\nsentinel monitor %s 127.0.0.1 %d 2\n"
                        "sentinel down-after-milliseconds %s %d\n"
                        "sentinel failover-timeout %s 10000\nsentinel parallel-syncs %s 1\n" %
                        (port, d, MASTER, self.master[1], MASTER, down_after, MASTER, MASTER))
            exe = shutil.which("redis-sentinel")
            argv = [exe, conf] if exe else [shutil.which("redis-server"), conf, "--sentinel"]
            p = procs.start("sentinel%d" % i, argv, os.path.join(tmp, "sentinel%d.log" % i))
            wait_for(lambda: port_open(port), 30, "sentinel %d" % i)
            self.sentinels.append((p, port))

        def ready():
            for _, sp in self.sentinels:
                reps = redis_cmd(sp, "SENTINEL", "replicas", MASTER)
                others = redis_cmd(sp, "SENTINEL", "sentinels", MASTER)
                if not isinstance(reps, list) or len(reps) < 1 or \
                        not isinstance(others, list) or len(others) < 2:
                    return False
            return True

        wait_for(ready, 60, "the sentinels to know the replica and each other", 0.3)

    def redis(self, name, extra=()):
        port = free_port()
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        argv = [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", d, "--daemonize", "no",
                "--protected-mode", "no", "--logfile", ""] + list(extra)
        p = self.procs.start("redis-" + name, argv, os.path.join(self.tmp, name + ".log"))
        wait_for(lambda: port_open(port), 30, "redis " + name)
        return (p, port)

    def url(self):
        return "redis-sentinel://" + ",".join("127.0.0.1:%d" % p for _, p in self.sentinels) + \
            "/" + MASTER

    def master_port(self):
        for _, sp in self.sentinels:
            try:
                r = redis_cmd(sp, "SENTINEL", "get-master-addr-by-name", MASTER)
                return int(r[1])
            except (OSError, TypeError, IndexError):
                continue
        return None


# ------------------------------------------------------------------ nodes and loadgens

class Node:
    def __init__(self, procs, tmp, k, redis_url, args, tls=None):
        self.k = k
        self.name = "n%d" % k
        self.port, self.admin = free_port(), free_port()
        argv = [os.path.join(BIN, "tetherd"), "--listen", "127.0.0.1:%d" % self.port,
                "--admin-listen", "127.0.0.1:%d" % self.admin, "--token", TOKEN,
                "--redis", redis_url, "--node-id", self.name,
                "--data-dir", os.path.join(tmp, "data-" + self.name), "--log-level", os.environ.get("BENCH_LOG_LEVEL", "warn"),
                "--max-pending-per-addr", "0", "--max-names-per-token", str(4 * args.devices),
                "--new-names-per-second", "1000000", "--tcp-bind", "127.0.3.%d" % (k + 1),
                "--tcp-ports", "31000-31009", "--max-registering", str(args.max_registering)]
        self.scheme = "ws"
        if tls:
            self.tls_port = free_port()
            argv += ["--tls-listen", "127.0.0.1:%d" % self.tls_port, "--tls-cert", tls[0],
                     "--tls-key", tls[1]]
            self.scheme = "wss"
        dport = self.tls_port if tls else self.port
        argv += ["--advertise", "%s://127.0.0.1:%d" % (self.scheme, dport)]
        self.dport = dport
        self.proc = procs.start(self.name, argv, os.path.join(tmp, self.name + ".log"))
        wait_for(lambda: port_open(self.admin), 30, "node %s" % self.name)

    def get(self, path, timeout=120):
        return benchnet.get(self.admin, path, timeout)

    def metric(self, name):
        try:
            text = self.get("/metrics", 20)[1].decode()
        except OSError:
            return None
        for line in text.split("\n"):
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def alive(self):
        return self.proc.poll() is None


class Control:
    """A tetherd outside the cluster with no device: the probe's answers from it are what the
    machine's load alone (scheduling, the probe itself) adds, the floor under the nodes'."""

    def __init__(self, procs, tmp):
        self.name = "control"
        self.port, self.admin = free_port(), free_port()
        argv = [os.path.join(BIN, "tetherd"), "--listen", "127.0.0.1:%d" % self.port,
                "--admin-listen", "127.0.0.1:%d" % self.admin, "--token", TOKEN,
                "--data-dir", os.path.join(tmp, "data-control"), "--log-level", "warn"]
        self.proc = procs.start("control", argv, os.path.join(tmp, "control.log"))
        wait_for(lambda: port_open(self.admin), 30, "the control relay")


class Loadgen:
    def __init__(self, procs, tmp, k, nodes, n, args, prefix):
        self.k, self.n, self.prefix = k, n, "%s%d" % (prefix, k)
        prefix = self.prefix
        me = nodes[k]
        others = [nodes[(k + j) % len(nodes)] for j in range(1, len(nodes))]
        argv = [os.path.join(BIN, "loadgen"), "--url",
                "%s://127.0.0.1:%d%s" % (me.scheme, me.dport, PATH), "-n", str(n),
                "--token", TOKEN, "--prefix", prefix, "--src", "127.%d.0.1" % (10 + k),
                "--per-src", "1000", "--max-pending", str(args.max_pending),
                "--duration-s", "7200", "--status-ms", "1000"]
        for o in others:
            argv += ["--alt-url", "%s://127.0.0.1:%d" % (o.scheme, o.dport)]
        self.events = []  # (monotonic, event dict)
        self.last = {}
        self.lock = threading.Lock()
        self.proc = procs.start("loadgen%d" % k, argv,
                                os.path.join(tmp, "loadgen%d-%s.log" % (k, prefix)),
                                stdout=subprocess.PIPE)
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            now = time.monotonic()
            with self.lock:
                if ev.get("event") in ("status", "final"):
                    self.last = ev
                else:
                    self.events.append((now, ev))

    def names(self):
        return ["%s-%d" % (self.prefix, i) for i in range(self.n)]

    def all_registered_after(self, t0):
        with self.lock:
            for t, ev in self.events:
                if t >= t0 and ev.get("event") == "all_registered":
                    return t, ev
        return None

    def status(self):
        with self.lock:
            return dict(self.last)


def dial_timeouts_by_ms(lgs):
    """How many dials timed out at each timeout, summed over the load generators (the timeout
    grows after dials that stalled: loadgen's --dial-timeout-ms, --dial-timeout-max-ms)."""
    out = {}
    for lg in lgs:
        for ms, n in (lg.status().get("dial_timeouts_by_ms") or {}).items():
            out[ms] = out.get(ms, 0) + n
    return dict(sorted(out.items(), key=lambda kv: int(kv[0])))


def wait_all_registered(lgs, t0, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = [lg.all_registered_after(t0) for lg in lgs]
        if all(got):
            return got
        time.sleep(0.05)
    st = [lg.status().get("ready") for lg in lgs]
    refused = [ev for lg in lgs for _, ev in lg.events if ev.get("event") == "refused"][:3]
    raise RuntimeError("timed out (%d s) waiting for %s; ready per loadgen %s; refusals %s" %
                       (timeout, what, st, refused))


# ------------------------------------------------------------------ the probe

class Probe:
    """GET /healthz on each node's admin port every 10 ms, each on a new connection."""

    def __init__(self, nodes, period=0.01):
        self.nodes, self.period = nodes, period
        self.stop = threading.Event()
        self.lat = {n.name: [] for n in nodes}
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True) for n in nodes]
        for t in self.threads:
            t.start()

    def run(self, node):
        out = self.lat[node.name]
        nxt = time.monotonic()
        req = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        while not self.stop.is_set():
            t0 = time.monotonic()
            # what went wrong, if anything: a probe that fails is not necessarily a slow loop
            # (a refused or reset connection comes back at once; only "timeout" waited 10 s)
            kind, got = "ok", b""
            try:
                s = socket.create_connection(("127.0.0.1", node.admin), timeout=10)
                try:
                    s.sendall(req)
                    while True:
                        b = s.recv(4096)
                        if not b:
                            break
                        got += b
                finally:
                    s.close()
                if not got.startswith(b"HTTP/1.1 "):
                    kind = "empty"
            except socket.timeout:
                kind = "timeout"
            except ConnectionRefusedError:
                kind = "refused"
            except ConnectionResetError:
                kind = "reset"
            except OSError as e:
                kind = "error:%s" % (e.strerror or type(e).__name__)
            out.append((t0, time.monotonic() - t0, kind))
            nxt += self.period
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)
            else:
                nxt = time.monotonic()

    def finish(self, t0=None):
        """Per node: probes, worst, percentiles of the answers that came (ok), and the probes
        that failed by kind (timeout: no answer within 10 s; refused, reset, empty: the
        connection failed at once, which says nothing of the loop's stall); with t0, when the
        worst came (s after t0)."""
        self.stop.set()
        for t in self.threads:
            t.join(15)
        res = {}
        for name, v in self.lat.items():
            if not v:
                continue
            okv = [x for x in v if x[2] == "ok"]
            ls = sorted(x[1] for x in okv) or [0.0]
            fails = {}
            for x in v:
                if x[2] != "ok":
                    fails[x[2]] = fails.get(x[2], 0) + 1
            # a probe that timed out waited 10 s at least: it counts as a 10 s answer
            worst_all = max(v, key=lambda x: x[1] if x[2] in ("ok", "timeout") else 0)
            res[name] = {"probes": len(v), "answered": len(okv),
                         "max_ms": round(max(ls[-1], 10.0 if "timeout" in fails else 0) * 1e3,
                                         1),
                         "max_answered_ms": round(ls[-1] * 1e3, 1),
                         "p99_ms": round(ls[int(len(ls) * 0.99)] * 1e3, 1),
                         "p50_ms": round(ls[len(ls) // 2] * 1e3, 2),
                         "over_100ms": sum(1 for x in ls if x > 0.1),
                         "failed": fails}
            if t0 is not None:
                res[name]["worst_sent_at_s"] = round(worst_all[0] - t0, 2)
                if fails:
                    res[name]["first_fail_at_s"] = round(
                        min(x[0] for x in v if x[2] != "ok") - t0, 2)
        return res


# ------------------------------------------------------------------ the phases

def nodes_cpu(nodes, secs):
    pids = [n.proc.pid for n in nodes if n.alive()]
    c0, t0 = sum(proc_cpu_s(p) for p in pids), time.monotonic()
    time.sleep(secs)
    c1, t1 = sum(proc_cpu_s(p) for p in pids), time.monotonic()
    return 100.0 * (c1 - c0) / (t1 - t0)


def check_registry(port, want, dead=None, kinds=None):
    """(ok, bad): every device of want ({name: label}) online in Redis with its label, held by
    a node that is not dead. kinds (a dict), when given, counts the mismatches by kind."""
    got = registry(port, list(want))
    bad = 0
    for name, label in want.items():
        r = got.get(name)
        kind = "missing" if r is None else "label" if r[0] != label else \
            "offline" if r[2] not in ("0", "") else "no_holder" if not r[1] else \
            "dead_holder" if r[1] == dead else None
        if kind:
            bad += 1
            if kinds is not None:
                kinds[kind] = kinds.get(kind, 0) + 1
    return bad == 0, bad


def check_admin(node, want, dead=None, tries=3):
    """check_admin_once until a walk lists every device (a page read while Redis is slow may
    come from the node's own devices only), at most tries walks. Returns (seconds of the last
    walk, devices listed, mismatches, walks)."""
    for i in range(tries):
        r = check_admin_once(node, want, dead)
        if r[1] == len(want):
            break
        log("admin walk %d listed %d of %d devices" % (i + 1, r[1], len(want)))
    return r + (i + 1,)


def check_admin_once(node, want, dead=None):
    """Pages through GET /api/devices on node: every device of want online, its label, not on
    dead. Returns (seconds, devices listed, mismatches)."""
    t0 = time.monotonic()
    after, seen, bad = "", 0, 0
    for _ in range(100000 // 1000 + len(want) // 1000 + 10):
        st, body = node.get("/api/devices?limit=1000" + ("&after=" + after if after else ""),
                            300)
        if st != 200:
            raise RuntimeError("GET /api/devices: %d" % st)
        j = json.loads(body)
        for d in j["devices"]:
            if d["name"] in want:
                seen += 1
                if d.get("label") != want[d["name"]] or d.get("online") is not True or \
                        (dead and d.get("node") == dead):
                    bad += 1
        if not j.get("next"):
            break
        after = j["next"]
    return round(time.monotonic() - t0, 1), seen, bad + (len(want) - seen)


def admin_offline(node):
    st, body = node.get("/api/devices?limit=1&online=false", 120)
    return json.loads(body)["total"] if st == 200 else None


def phase_register(ctx, prefix, tls=None):
    a, nodes = ctx["args"], ctx["nodes"]
    base = {n.name: rss_kib(n.proc.pid) for n in nodes}
    redis_base = int(redis_info(ctx["sentinel"].master_port(), "used_memory"))
    per = [a.devices // len(nodes) + (1 if k < a.devices % len(nodes) else 0)
           for k in range(len(nodes))]
    t0 = time.monotonic()
    lgs = [Loadgen(ctx["procs"], ctx["tmp"], k, nodes, per[k], a, prefix)
           for k in range(len(nodes))]
    got = wait_all_registered(lgs, t0, a.reg_timeout + a.devices / 200,
                              "every device to register")
    took = max(t for t, _ in got) - t0
    ctx["lgs"] = lgs
    res = {"phase": "register", "scheme": nodes[0].scheme, "devices": a.devices,
           "nodes": len(nodes), "seconds": round(took, 2), "per_second": round(a.devices / took),
           "busy_503": sum(lg.status().get("busy", 0) for lg in lgs),
           "tls": tls_counts(lgs),
           "refused_metric": sum(n.metric("tether_registrations_refused_total") or 0
                                 for n in nodes),
           "load": uptime()}
    ctx["base_rss"], ctx["redis_base"] = base, redis_base
    return res


def phase_idle(ctx):
    a, nodes, lgs = ctx["args"], ctx["nodes"], ctx["lgs"]
    log("idle: settling %d s" % a.settle)
    time.sleep(a.settle)
    load0 = uptime()
    cpus = [round(nodes_cpu(nodes, a.cpu_secs), 2) for _ in range(a.cpu_reps)]
    rss = {n.name: rss_kib(n.proc.pid) for n in nodes}
    held = {n.name: n.metric("tether_devices_online") for n in nodes}
    mport = ctx["sentinel"].master_port()
    used = int(redis_info(mport, "used_memory"))
    redis_rss = rss_kib(ctx["sentinel"].master[0].pid) \
        if ctx["sentinel"].master[1] == mport else None
    grow = sum(rss[k] - ctx["base_rss"][k] for k in rss)
    cpus_sorted = sorted(cpus)
    return {"phase": "idle", "scheme": nodes[0].scheme, "devices": a.devices,
            "nodes_cpu_pct_of_one_core": cpus_sorted[len(cpus) // 2], "cpu_runs": cpus,
            "relay_rss_mib_total": round(sum(rss.values()) / 1024, 1),
            "relay_bytes_per_device": round(grow * 1024 / a.devices),
            "devices_per_node": held, "rss_kib_per_node": rss,
            "redis_used_memory_mib": round(used / 2**20, 1),
            "redis_bytes_per_device": round((used - ctx["redis_base"]) / a.devices),
            "redis_rss_mib": round(redis_rss / 1024, 1) if redis_rss else None,
            "ready": sum(lg.status().get("ready", 0) for lg in lgs),
            "load": load0 + " -> " + uptime()}


def snapshot_labels(ctx):
    want = {}
    port = ctx["sentinel"].master_port()
    for lg in ctx["lgs"]:
        reg = registry(port, lg.names())
        for n, (label, _, _) in reg.items():
            want[n] = label
    return want


LOOP = ["tether_loop_lag_max_seconds", "tether_loop_turn_max_seconds",
        "tether_loop_turn_cpu_max_seconds",
        "tether_loop_long_turns_total", "tether_loop_busy_seconds_total",
        "tether_loop_lag_seconds_count", "tether_accept_paused_total",
        "tether_ws_run_capped_total", "tether_heads_deferred_total",
        "tether_tls_handshakes_deferred_total", "tether_tls_handshakes_abandoned_total",
        "tether_tls_handshakes_gated_total"]


def loop_figures(node):
    """The node's own loop-stall figures (/metrics, looplag.h): {metric: value}, and the lag
    histogram's buckets as "lag_le_BOUND". {} when the node does not have them (an older
    build) or does not answer."""
    try:
        text = node.get("/metrics", 30)[1].decode()
    except OSError:
        return {}
    out = {}
    for line in text.split("\n"):
        name = line.split(" ")[0]
        if name in LOOP:
            out[name] = float(line.split()[1])
        elif name.startswith('tether_loop_lag_seconds_bucket{le="'):
            out["lag_le_" + name.split('"')[1]] = float(line.split()[1])
    return out


def loop_during(before, after):
    """What the node's loop measured between two loop_figures: the largest lag and turn since
    start (the storm's own when they grew during it; else at most what they were before), the
    long turns, the busy seconds, and the lag samples over 0.1, 1 and 5 s."""
    if not after:
        return None
    res = {}
    for key, m in (("lag_max_s", LOOP[0]), ("turn_max_s", LOOP[1]),
                   ("turn_cpu_max_s", LOOP[2])):
        a, b = after.get(m), before.get(m, 0)
        res[key] = round(a, 3) if a is not None else None
        res[key + "_grew"] = a is not None and a > b
    for key, m in (("long_turns", LOOP[3]), ("busy_s", LOOP[4]), ("lag_samples", LOOP[5]),
                   ("accept_paused", LOOP[6]), ("ws_run_capped", LOOP[7]),
                   ("heads_deferred", LOOP[8]), ("handshakes_deferred", LOOP[9]),
                   ("handshakes_abandoned", LOOP[10]), ("handshakes_gated", LOOP[11])):
        if m in after:
            res[key] = round(after[m] - before.get(m, 0), 3)
    for bound in ("0.1", "1", "5"):
        k = "lag_le_" + bound
        if k in after and "lag_le_+Inf" in after:
            tot = after["lag_le_+Inf"] - before.get("lag_le_+Inf", 0)
            res["lag_over_" + bound + "s"] = int(tot - (after[k] - before.get(k, 0)))
    return res


def perf_start(ctx, node):
    """perf record -g on node for the storm (--perf DIR): DIR/perf-NODE.data."""
    d = ctx["args"].perf
    if not d or not shutil.which("perf"):
        return None
    os.makedirs(d, exist_ok=True)
    out = os.path.join(os.path.abspath(d), "perf-%s.data" % node.name)
    # BENCH_PERF_EVENTS=sched:sched_switch: where the loop left the CPU, and in which state
    # (R: preempted, waiting for a core; S/D: it blocked)
    ev = os.environ.get("BENCH_PERF_EVENTS")
    cg = os.environ.get("BENCH_PERF_CALLGRAPH", "fp")  # dwarf: stacks without frame pointers
    argv = ["perf", "record", "--call-graph", cg, "-p", str(node.proc.pid), "-o", out] + \
        (["-e", ev] if ev else ["-F", "499"])
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def perf_stop(p):
    if p is None:
        return
    p.send_signal(signal.SIGINT)
    try:
        p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


SHED = ["tether_accept_errors_total", 'tether_connections_shed_total{reason="fds"}',
        'tether_connections_shed_total{reason="total"}']


def shed_counts(nodes):
    return {m: sum(n.metric(m) or 0 for n in nodes) for m in SHED}


def tls_counts(lgs):
    return {k: sum(lg.status().get(k, 0) or 0 for lg in lgs) for k in ("tls_full", "tls_resumed",
                                                                      "tls_fail")}


def phase_storm(ctx):
    a, nodes, lgs = ctx["args"], ctx["nodes"], ctx["lgs"]
    want = snapshot_labels(ctx)
    probe = Probe(nodes + [ctx["control"]])
    time.sleep(a.idle_probe_secs)
    idle = probe.finish()
    refused0 = sum(n.metric("tether_registrations_refused_total") or 0 for n in nodes)
    busy0 = sum(lg.status().get("busy", 0) for lg in lgs)
    shed0 = shed_counts(nodes)
    tls0 = tls_counts(lgs)
    same0 = sum(lg.status().get("same", 0) for lg in lgs)
    load0 = uptime()
    loop0 = {n.name: loop_figures(n) for n in nodes}
    perfs = [perf_start(ctx, n) for n in nodes[:1]]
    probe = Probe(nodes + [ctx["control"]])
    time.sleep(1.0)
    t0 = time.monotonic()
    for lg in lgs:
        lg.proc.send_signal(signal.SIGUSR1)
    try:
        got = wait_all_registered(lgs, t0, a.storm_timeout, "every device back after the storm")
        took = max(t for t, _ in got) - t0
    except RuntimeError as e:  # still reported: the probe's figures and how many came back
        log(str(e))
        took = None
    time.sleep(2.0)
    during = probe.finish(t0)
    for p in perfs:
        perf_stop(p)
    loops = {n.name: loop_during(loop0[n.name], loop_figures(n)) for n in nodes}
    time.sleep(1.5)  # the last status lines
    ok, bad = check_registry(ctx["sentinel"].master_port(), want)
    worst = max((v for k, v in during.items() if k != "control"), key=lambda v: v["max_ms"])
    return {"phase": "storm", "scheme": nodes[0].scheme, "devices": a.devices,
            "max_registering": a.max_registering,
            "all_back_s": round(took, 2) if took else None,
            "per_second": round(a.devices / took) if took else None,
            "ready_at_end": sum(lg.status().get("ready", 0) for lg in lgs),
            "conn_fail": sum(lg.status().get("conn_fail", 0) for lg in lgs),
            "dial_timeouts": sum(lg.status().get("dial_timeouts", 0) for lg in lgs),
            "dial_timeouts_by_ms": dial_timeouts_by_ms(lgs),
            "dial_timeout_max_used_ms": max((lg.status().get("dial_timeout_max_used_ms", 0)
                                             for lg in lgs), default=0),
            "busy_503_seen_by_loadgen": sum(lg.status().get("busy", 0) for lg in lgs) - busy0,
            "refused_metric": sum(n.metric("tether_registrations_refused_total") or 0
                                  for n in nodes) - refused0,
            "same_label": sum(lg.status().get("same", 0) for lg in lgs) - same0,
            "changed_label_total": sum(lg.status().get("changed", 0) for lg in lgs),
            "nodes_exited": {n.name: n.proc.poll() for n in nodes if n.proc.poll() is not None},
            "shed": {k: v - shed0[k] for k, v in shed_counts(nodes).items()},
            "tls": {k: v - tls0[k] for k, v in tls_counts(lgs).items()},
            "devices_per_node": {n.name: n.metric("tether_devices_online") for n in nodes},
            "registry_all_online_same_label": ok, "registry_mismatches": bad,
            "worst_stall_ms": worst["max_ms"],
            "loop": loops,
            "worst_loop_lag_s": max((v["lag_max_s"] for v in loops.values()
                                     if v and v.get("lag_max_s") is not None), default=None),
            "worst_loop_turn_s": max((v["turn_max_s"] for v in loops.values()
                                      if v and v.get("turn_max_s") is not None), default=None),
            "control_max_ms": during.get("control", {}).get("max_ms"), "probe_storm": during, "probe_idle": idle,
            "load": load0 + " -> " + uptime()}


def phase_kill(ctx):
    a, nodes, lgs = ctx["args"], ctx["nodes"], ctx["lgs"]
    want = snapshot_labels(ctx)
    victim = nodes[-1]
    port = ctx["sentinel"].master_port()
    held = [n for n, (_, node, _) in registry(port, list(want)).items() if node == victim.name]
    mine = {n: want[n] for n in held}
    log("kill: node %s holds %d devices" % (victim.name, len(mine)))
    others = [n for n in nodes if n is not victim]
    load0 = uptime()
    t0 = time.monotonic()
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    t_reg = wait_for(lambda: check_registry(port, mine, victim.name)[0] and time.monotonic(),
                     300, "the dead node's devices online elsewhere in the registry", 0.2)
    t_admin = wait_for(lambda: admin_offline(others[0]) == 0 and time.monotonic(), 300,
                       "the admin API to list no device offline", 0.2)
    lgk = lgs[victim.k]
    ev = lgk.all_registered_after(t0)
    adm = check_admin(others[0], want, victim.name)
    nodes.remove(victim)
    return {"phase": "kill", "scheme": victim.scheme, "devices": a.devices,
            "victim_devices": len(mine),
            "registry_all_back_s": round(t_reg - t0, 2),
            "admin_none_offline_s": round(t_admin - t0, 2),
            "loadgen_all_registered_s": round(ev[0] - t0, 2) if ev else None,
            "admin_check": {"seconds": adm[0], "listed": adm[1], "mismatches": adm[2],
                            "walks": adm[3]},
            "devices_per_node": {n.name: n.metric("tether_devices_online") for n in nodes},
            "load": load0 + " -> " + uptime()}


def phase_failover(ctx):
    a, nodes, lgs = ctx["args"], ctx["nodes"], ctx["lgs"]
    s = ctx["sentinel"]
    want = snapshot_labels(ctx)
    old = s.master_port()
    changes0 = {n.name: n.metric("tether_redis_master_changes_total") or 0 for n in nodes}
    lost0 = sum(lg.status().get("lost", 0) for lg in lgs)
    mproc = s.master[0] if s.master[1] == old else s.replica[0]
    load0 = uptime()
    t0, t0_wall = time.monotonic(), time.time()
    mproc.send_signal(signal.SIGKILL)
    mproc.wait()
    t_sent = wait_for(lambda: (s.master_port() not in (None, old)) and time.monotonic(), 120,
                      "Sentinel to promote the replica", 0.05)
    follow = {}

    def watch(n):  # one thread per node: a node whose loop waits does not delay the others
        end = time.monotonic() + 120
        while time.monotonic() < end:
            if (n.metric("tether_redis_master_changes_total") or 0) > changes0[n.name]:
                follow[n.name] = round(time.monotonic() - t0, 2)
                return
            time.sleep(0.05)

    ths = [threading.Thread(target=watch, args=(n,), daemon=True) for n in nodes]
    for th in ths:
        th.start()
    for th in ths:
        th.join(125)
    follow_log = {}  # the nodes' own log line "redis master is ..." (their clock)
    for n in nodes:
        try:
            with open(os.path.join(ctx["tmp"], n.name + ".log")) as f:
                for line in f:
                    if "redis master is" in line:
                        ts = line.split()[0]
                        t = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) + \
                            float("0" + ts[19:-1])
                        if t >= t0_wall:
                            follow_log[n.name] = round(t - t0_wall, 2)
                            break
        except (OSError, ValueError):
            pass
    new = s.master_port()
    time.sleep(3)  # a few beats on the new master
    kinds = {}
    ok, bad = check_registry(new, want, kinds=kinds)
    t_ok = None
    if not ok:  # the nodes repair what the new master lacks: how long that takes
        t_ok = wait_for(lambda: check_registry(new, want)[0] and time.monotonic(), 120,
                        "the registry to hold every device again", 0.5)
    adm = check_admin(nodes[0], want)
    return {"phase": "failover", "scheme": nodes[0].scheme, "devices": a.devices,
            "sentinel_promoted_s": round(t_sent - t0, 2), "nodes_followed_s": follow,
            "all_nodes_followed_s": max(follow.values()) if len(follow) == len(nodes) else None,
            "nodes_logged_new_master_s": follow_log,
            "registry_ok_3s_after": ok, "registry_mismatches_3s_after": bad,
            "registry_mismatch_kinds_3s_after": kinds,
            "registry_ok_s": round(t_ok - t0, 2) if t_ok else None,
            "devices_dropped": sum(lg.status().get("lost", 0) for lg in lgs) - lost0,
            "admin_check": {"seconds": adm[0], "listed": adm[1], "mismatches": adm[2],
                            "walks": adm[3]},
            "load": load0 + " -> " + uptime()}


def make_cert(tmp):
    crt, key = os.path.join(tmp, "relay.crt"), os.path.join(tmp, "relay.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,DNS:*.localhost,IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return crt, key


def run(args, scheme):
    tmp = tempfile.mkdtemp(prefix="tether-bench-cluster-")
    procs = Procs()
    out = []
    try:
        ctx = {"args": args, "procs": procs, "tmp": tmp}
        log("%s: Redis master, replica and three sentinels" % scheme)
        ctx["sentinel"] = Sentinel(procs, tmp, args.down_after_ms)
        tls = make_cert(tmp) if scheme == "wss" else None
        ctx["nodes"] = [Node(procs, tmp, k, ctx["sentinel"].url(), args, tls)
                        for k in range(args.nodes)]
        ctx["control"] = Control(procs, tmp)
        time.sleep(3)  # the nodes see each other
        phases = args.phases.split(",")
        log("%s: %d nodes up; %d devices registering" % (scheme, args.nodes, args.devices))
        r = phase_register(ctx, "c" if scheme == "ws" else "s", tls)
        out.append(r)
        print(json.dumps(r), flush=True)
        for ph in phases:
            if ph == "register":
                continue
            log("%s: phase %s" % (scheme, ph))
            fn = {"idle": phase_idle, "storm": phase_storm, "kill": phase_kill,
                  "failover": phase_failover}[ph]
            try:
                r = fn(ctx)
            except Exception as e:  # reported; the next phase still runs
                r = {"phase": ph, "scheme": scheme, "error": str(e), "load": uptime()}
            out.append(r)
            print(json.dumps(r), flush=True)
    finally:
        procs.stop_all()
        if os.environ.get("BENCH_KEEP"):
            log("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=100000)
    ap.add_argument("--nodes", type=int, default=6)
    ap.add_argument("--phases", default="register,idle,kill,failover,storm")
    ap.add_argument("--down-after-ms", type=int, default=5000,
                    help="Sentinel's down-after-milliseconds (its default is 30000)")
    ap.add_argument("--wss", action="store_true", help="also the run over wss://")
    ap.add_argument("--only-wss", action="store_true")
    ap.add_argument("--max-registering", type=int, default=1024)
    ap.add_argument("--max-pending", type=int, default=512, help="loadgen's connects at once")
    ap.add_argument("--settle", type=float, default=25)
    ap.add_argument("--reg-timeout", type=float, default=120)
    ap.add_argument("--storm-timeout", type=float, default=240)
    ap.add_argument("--cpu-secs", type=float, default=15)
    ap.add_argument("--cpu-reps", type=int, default=3)
    ap.add_argument("--idle-probe-secs", type=float, default=5)
    ap.add_argument("--perf", metavar="DIR",
                    help="perf record -g the first node during the storm into DIR")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    cap = hard - 500  # what one node or loadgen may hold (listeners, Redis, logs)
    need = a.nodes
    while -(-a.devices // need) > cap or ("kill" in a.phases and -(-a.devices // (need - 1)) > cap):
        need += 1
    if need != a.nodes:
        log("open-file limit %d: %d nodes cannot hold %d devices%s; using %d nodes" %
            (hard, a.nodes, a.devices, " after one is killed" if "kill" in a.phases else "",
             need))
        a.nodes = need
    info = {"machine": {"cores": os.cpu_count(), "nofile": hard, "load": uptime()},
            "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"],
                                     capture_output=True, text=True).stdout.strip(),
            "devices": a.devices, "nodes": a.nodes, "max_registering": a.max_registering,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(json.dumps(info), flush=True)
    results = []
    for scheme in (["wss"] if a.only_wss else ["ws"] + (["wss"] if a.wss else [])):
        results += run(a, scheme)
    with open(os.path.join(ROOT, "bench", "cluster_results.jsonl"), "a") as f:
        f.write(json.dumps({"info": info, "results": results}) + "\n")


if __name__ == "__main__":
    main()
