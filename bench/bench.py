#!/usr/bin/env python3
"""bench.py - Tether's loopback benchmarks, in one run, bounded in time (`make bench`, about
8 minutes; `--quick`, about 3). Never part of `make test`; reports numbers, never passes or
fails on them. Everything runs on 127.0.0.0/8; every process it starts is stopped by PID.

Four ways of reaching the same local services (one nginx, one iperf3 server):

  direct    the client connects straight to the service
  tether    tetherd + tether (release build): HTTP through the device URL, TCP through a port
  ssh -R    a throw-away sshd and `ssh -N -R` remote forwards (the classic alternative)
  wstunnel  node-reverse-wstunnel (npm), the design Tether's users started from, installed at
            bench time into build/bench-wstunnel with the machine's node and npm

Measured for each ("paths"):
  - single-stream TCP throughput each way: iperf3 moves a fixed amount (1 GiB; 256 MiB quick),
    timed by the receiver;
  - HTTP with wrk against nginx: 1 KiB and 1 MiB files, keep-alive and `Connection: close`,
    requests/s and latency p50/p99 (2 threads, 32 connections);
  - latency per request at no load: one connection, sequential keep-alive requests (p50, p99);
    the difference to the direct path is the latency each relay adds.

Idle devices ("devices"): relay memory (VmRSS) and CPU (/proc/PID/schedstat over an interval)
with N idle registered devices, heartbeats running (bench/loadgen pings as the agent does,
after 20 s of silence, which the relay's pings every 15 s make never happen), for Tether at N = 1,000, 10,000, 100,000; for
wstunnel and ssh -R at smaller N (their cost per device is a listening socket, a WebSocket and
node's objects, or two sshd processes). N above what the machine's open-file limit allows is
skipped and the largest N that fits is measured instead. ssh -R memory is the sum of the
sshd processes' PSS.

Reconnect storm ("storm"): under N devices the relay gets SIGTERM and is started again on
the same port and data dir; the time until every device is registered again, and how many got
their old label back.

Results: one JSON line appended to bench/results.jsonl, docs/BENCHMARKS.md rewritten (the
hand-written part below its marker line is kept) and docs/bench-memory.png plotted with gnuplot
when it is installed.

Usage: bench.py [--quick] [--only paths,devices,storm] [--report-only]
Environment: BIN (default build/release/bin: tetherd, tether, loadgen), BENCH_DEVICES
(e.g. "1000,10000"), BENCH_STORM ("10000"), BENCH_SECONDS (wrk seconds per run),
BENCH_COMMIT (the label recorded for the binaries, when BIN is not this tree's build; a label
starting with "before-" marks a baseline run, drawn beside later runs in the memory plot).
"""

import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.path.abspath(os.environ.get("BIN", os.path.join(ROOT, "build/release/bin")))
os.environ["TETHERD"] = os.path.join(BIN, "tetherd")
os.environ["TETHER"] = os.path.join(BIN, "tether")
LOADGEN = os.path.join(BIN, "loadgen")
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import lib  # noqa: E402

SCHEMA = 2
PATHS = ("direct", "tether", "connect", "ssh", "wstunnel")
PATH_NAMES = {"direct": "direct", "tether": "Tether", "connect": "tether connect",
              "ssh": "ssh -R", "wstunnel": "node-reverse-wstunnel"}
WSTUNNEL_PKG = "node-reverse-wstunnel@1.0.0"
WSTUNNEL_DIR = os.path.join(ROOT, "build", "bench-wstunnel")
REPORT = os.path.join(ROOT, "docs", "BENCHMARKS.md")
PLOT = os.path.join(ROOT, "docs", "bench-memory.png")
RESULTS = os.path.join(ROOT, "bench", "results.jsonl")
KEEP_MARKER = "<!-- Everything below this line is written by hand and kept by bench.py. -->"
AGENT_PING_MS = 20000  # src/agent/agent.c AGENT_PING_QUIET_MS: a ping after 20 s of silence
RELAY_PING_MS = 15000  # src/relay/device/device.h TT_DEVICE_PING_MS: a quiet device is pinged every 15 s
PUBLIC_PORT_BASE = 22000  # wstunnel/ssh -R device ports: below the ephemeral range


def params(quick):
    p = {"quick": quick,
         "tcp_bytes": (256 if quick else 1024) << 20,
         "http_seconds": int(os.environ.get("BENCH_SECONDS", "2" if quick else "5")),
         "connections": 32,
         "idle_seconds": 10 if quick else 30,
         "devices": [1000, 10000] if quick else [1000, 10000, 100000],
         "storm": [10000] if quick else [10000, 100000],
         "wstunnel_devices": [1000] if quick else [1000, 9000],
         "ssh_devices": [20] if quick else [100],
         "ping_ms": AGENT_PING_MS}
    if os.environ.get("BENCH_DEVICES"):
        p["devices"] = [int(x) for x in os.environ["BENCH_DEVICES"].split(",") if x]
    if os.environ.get("BENCH_STORM") is not None:
        p["storm"] = [int(x) for x in os.environ["BENCH_STORM"].split(",") if x]
    return p


def log(msg):
    print("bench: " + msg, flush=True)


def now():
    return time.monotonic()


# ---------------------------------------------------------------- process figures

def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def pss_kib(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            return int(re.search(r"^Pss:\s+(\d+)", f.read(), re.M).group(1))
    except (OSError, AttributeError):
        return 0


def cpu_ns(pid):
    """CPU time used so far by pid (ns): /proc/PID/schedstat, else utime+stime."""
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1e9 / os.sysconf("SC_CLK_TCK")


def descendants(pid):
    """pid and every process below it."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_percent(pids_fn, seconds):
    """Percent of one core used by the processes pids_fn() returns, over seconds."""
    def total():
        s = 0
        for p in pids_fn():
            try:
                s += cpu_ns(p)
            except OSError:
                pass
        return s
    a, t0 = total(), now()
    time.sleep(seconds)
    b, t1 = total(), now()
    return 100.0 * (b - a) / 1e9 / (t1 - t0)


# ---------------------------------------------------------------- services

def start_nginx(env):
    """nginx serving /1k and /1m on a free port; None if nginx is missing."""
    exe = lib.which("nginx") or (os.path.exists("/usr/sbin/nginx") and "/usr/sbin/nginx")
    if not exe:
        return None
    d = env.mkdtemp("nginx")
    os.makedirs(os.path.join(d, "www"))
    os.makedirs(os.path.join(d, "tmp"))
    for name, size in (("1k", 1024), ("1m", 1 << 20)):
        with open(os.path.join(d, "www", name), "wb") as f:
            f.write(lib.pattern(size))
    port = lib.free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""%(user)s
worker_processes 1;
daemon off;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    client_body_temp_path %(d)s/tmp/body;
    proxy_temp_path %(d)s/tmp/proxy;
    fastcgi_temp_path %(d)s/tmp/fastcgi;
    uwsgi_temp_path %(d)s/tmp/uwsgi;
    scgi_temp_path %(d)s/tmp/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    server {
        listen 127.0.0.1:%(port)d backlog=4096;
        root %(d)s/www;
        location / { }
    }
}
""" % {"d": d, "port": port, "user": "user root;" if os.geteuid() == 0 else ""})
    proc = lib.Proc(env, "nginx", [exe, "-p", d, "-c", conf])
    lib.wait_for(lambda: proc.alive() and lib.port_open(port), 20, "nginx to listen")
    return port


def start_iperf(env):
    port = lib.free_port()
    proc = lib.Proc(env, "iperf3", ["iperf3", "-s", "-p", str(port), "-B", "127.0.0.1"])
    lib.wait_for(lambda: proc.alive() and lib.port_open(port), 20, "iperf3 -s to listen")
    return port


def free_ports(n, start=PUBLIC_PORT_BASE):
    """First run of n consecutive bindable loopback ports from start (below 32768)."""
    base = start
    while base + n < 32768:
        ok = True
        for p in range(base, base + n):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
                base = p + 1
                break
            finally:
                s.close()
        if ok:
            return base
    raise RuntimeError("no %d consecutive free ports below 32768" % n)


# ---------------------------------------------------------------- node-reverse-wstunnel

def wstunnel_modules():
    """Installs node-reverse-wstunnel into build/bench-wstunnel (once). Returns its
    node_modules directory, or raises with the reason it cannot be used."""
    mods = os.path.join(WSTUNNEL_DIR, "node_modules")
    if os.path.exists(os.path.join(mods, "node-reverse-wstunnel", "lib", "wst_wrapper.js")):
        return mods
    if not lib.which("node") or not lib.which("npm"):
        raise RuntimeError("node or npm is not installed")
    os.makedirs(WSTUNNEL_DIR, exist_ok=True)
    with open(os.path.join(WSTUNNEL_DIR, "package.json"), "w") as f:
        f.write('{"name": "tether-bench-wstunnel", "private": true}\n')
    log("installing %s with npm into %s" % (WSTUNNEL_PKG, WSTUNNEL_DIR))
    r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error",
                        WSTUNNEL_PKG], cwd=WSTUNNEL_DIR, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=300)
    if r.returncode != 0 or not os.path.exists(os.path.join(mods, "node-reverse-wstunnel")):
        raise RuntimeError("npm install %s failed: %s" % (WSTUNNEL_PKG, r.stdout.strip()[-300:]))
    return mods


def wstunnel_argv(mods, *args):
    return ["node", os.path.join(ROOT, "bench", "wstunnel.js"), mods] + list(args)


class Quiet(lib.Proc):
    """A process whose stdout goes to /dev/null (node-reverse-wstunnel logs every chunk)."""

    def __init__(self, env, name, argv):
        import threading
        self.env, self.name, self.argv = env, name, argv
        self.stderr_path = env.path("%s.%d.stderr" % (name, len(env.procs)))
        self._err = open(self.stderr_path, "wb")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=self._err)
        self.pid = self.p.pid
        self.lines, self.cond, self.eof, self.stopped = [], threading.Condition(), True, False
        env.procs.append(self)


# ---------------------------------------------------------------- measurements

def iperf(port, reverse, nbytes):
    """Gbit/s measured by the receiver while iperf3 moves nbytes; reverse: the service sends."""
    argv = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-n", str(nbytes), "-J"]
    if reverse:
        argv.append("-R")
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=120)
    try:
        v = json.loads(r.stdout)
    except ValueError:
        raise RuntimeError("iperf3 printed no JSON: %s" % r.stderr.strip()[:200])
    if v.get("error"):
        raise RuntimeError("iperf3: %s" % v["error"])
    return v["end"]["sum_received"]["bits_per_second"] / 1e9


_UNITS = {"us": 1.0, "ms": 1000.0, "s": 1e6}


def _micros(text):
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    if not m:
        raise RuntimeError("cannot read wrk latency %r" % text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url, host, threads, connections, seconds, close=False):
    argv = ["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % seconds, "--latency",
            "--timeout", "10s"]
    if host:
        argv += ["-H", "Host: %s" % host]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append(url)
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=seconds + 60)
    out = r.stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if r.returncode != 0 or not m:
        raise RuntimeError("wrk failed: %s %s" % (out.strip()[-300:], r.stderr.strip()[-300:]))
    res = {"rps": float(m.group(1))}
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors:.*", out)
    res["non2xx"] = int(bad.group(1)) if bad else 0
    res["socket_errors"] = errs.group(0) if errs else ""
    dist = out.split("Latency Distribution", 1)[-1]
    for pct in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+(\S+)" % pct, dist, re.M)
        if m:
            res["p%s_us" % pct] = _micros(m.group(1))
    return res


def check_http(port, host, path, size):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        c.request("GET", path, headers={"Host": host} if host else {})
        r = c.getresponse()
        body = r.read()
    finally:
        c.close()
    if r.status != 200 or len(body) != size:
        raise RuntimeError("GET %s on port %d (Host %s): status %d, %d bytes" %
                           (path, port, host, r.status, len(body)))


HTTP_RUNS = (  # key, path, size, close
    ("http_1k_ka", "/1k", 1024, False),
    ("http_1k_close", "/1k", 1024, True),
    ("http_1m_ka", "/1m", 1 << 20, False),
    ("http_1m_close", "/1m", 1 << 20, True),
)


def measure_path(p, t, P, res, errs):
    port, host = t["http"]
    try:
        check_http(port, host, "/1k", 1024)
    except Exception as e:
        errs.append(str(e))
        return
    for key, rev in (("tcp_up_gbps", False), ("tcp_down_gbps", True)):
        log("%s: TCP %s, %d MiB" % (PATH_NAMES[p], "device -> client" if rev else
                                   "client -> device", P["tcp_bytes"] >> 20))
        try:
            res[key] = iperf(t["tcp"], rev, P["tcp_bytes"])
        except Exception as e:
            errs.append("%s: %s" % (key, e))
    for key, path, size, close in HTTP_RUNS:
        log("%s: HTTP %s %s, %d connections" % (PATH_NAMES[p], path,
                                                "close" if close else "keep-alive",
                                                P["connections"]))
        try:
            w = wrk("http://127.0.0.1:%d%s" % (port, path), host, 2, P["connections"],
                    P["http_seconds"], close)
            res[key + "_rps"] = w["rps"]
            res[key + "_p50_us"] = w.get("p50_us")
            res[key + "_p99_us"] = w.get("p99_us")
            if w["non2xx"] or w["socket_errors"]:
                errs.append("%s: %d non-2xx, %s" % (key, w["non2xx"], w["socket_errors"]))
        except Exception as e:
            errs.append("%s: %s" % (key, e))
    log("%s: latency, one connection, sequential requests" % PATH_NAMES[p])
    try:
        w = wrk("http://127.0.0.1:%d/1k" % port, host, 1, 1, P["http_seconds"])
        res["lat_p50_us"] = w.get("p50_us")
        res["lat_p99_us"] = w.get("p99_us")
        res["seq_rps"] = w["rps"]
    except Exception as e:
        errs.append("latency: %s" % e)


def run_paths(P, out, setup):
    env = lib.Env("bench-paths")
    results = {p: {} for p in PATHS}
    errors = {p: [] for p in PATHS}
    try:
        web = start_nginx(env)
        if not web:
            raise RuntimeError("nginx is not installed (bench/run.sh installs it)")
        setup["http_server"] = "nginx"
        iperf_port = start_iperf(env)
        targets = {"direct": {"tcp": iperf_port, "http": (web, None)}}
        try:
            relay = env.relay(grace="1m")
            agent = env.agent(relay, http=web, tcp={"iperf": iperf_port})
            targets["tether"] = {"tcp": agent.tcp_port("iperf"),
                                 "http": (relay.port, relay.host(agent.label))}
        except Exception as e:
            errors["tether"].append("setup: %s" % e)
        try:
            # the same device's services through `tether connect --listen` (a relay WebSocket per
            # connection, the relay's bridge between it and the device stream), in this run
            c_tcp, c_http = lib.free_port(), lib.free_port()
            for svc, port in (("iperf", c_tcp), ("http", c_http)):
                c = lib.Proc(env, "tether", [lib.TETHER, "connect", "--server", relay.url,
                                             "%s/%s" % (agent.name, svc), "--listen",
                                             "127.0.0.1:%d" % port])
                # not probed by connecting: iperf3 -s would take it for a test's
                c.wait_line(lambda l: l.startswith("listening "), 30, 0, "listening")
            targets["connect"] = {"tcp": c_tcp, "http": (c_http, None)}
        except Exception as e:
            errors["connect"].append("setup: %s" % e)
        try:
            sshd = lib.Sshd(env)
            r_tcp, r_http = lib.free_port(), lib.free_port()
            fwd = lib.Proc(env, "ssh", sshd.ssh_argv(
                sshd.port, "-N", "-o", "ExitOnForwardFailure=yes",
                "-R", "127.0.0.1:%d:127.0.0.1:%d" % (r_tcp, iperf_port),
                "-R", "127.0.0.1:%d:127.0.0.1:%d" % (r_http, web)))
            lib.wait_for(lambda: fwd.alive() and lib.port_open(r_tcp) and lib.port_open(r_http),
                         30, "ssh -R forwards")
            targets["ssh"] = {"tcp": r_tcp, "http": (r_http, None)}
        except Exception as e:
            errors["ssh"].append("setup: %s" % e)
        try:
            mods = wstunnel_modules()
            setup["wstunnel"] = WSTUNNEL_PKG
            ws_port, w_tcp, w_http = lib.free_port(), lib.free_port(), lib.free_port()
            srv = Quiet(env, "wstunnel-server", wstunnel_argv(mods, "server", str(ws_port)))
            lib.wait_for(lambda: srv.alive() and lib.port_open(ws_port), 30, "wstunnel server")
            cli = Quiet(env, "wstunnel-client", wstunnel_argv(
                mods, "client", "ws://127.0.0.1:%d" % ws_port,
                "%d:127.0.0.1:%d" % (w_tcp, iperf_port), "%d:127.0.0.1:%d" % (w_http, web)))
            lib.wait_for(lambda: cli.alive() and lib.port_open(w_tcp) and lib.port_open(w_http),
                         30, "wstunnel tunnels")
            targets["wstunnel"] = {"tcp": w_tcp, "http": (w_http, None)}
        except Exception as e:
            errors["wstunnel"].append("setup: %s" % e)
        for p in PATHS:
            if p in targets:
                measure_path(p, targets[p], P, results[p], errors[p])
    except Exception as e:
        errors["direct"].append("setup: %s" % e)
    finally:
        for prob in env.cleanup():
            log("warning: " + prob.split("\n")[0])
        env.remove()
    out["paths"] = results
    out["paths_errors"] = errors


# ---------------------------------------------------------------- idle devices: Tether

class Loadgens:
    """bench/loadgen processes holding n devices in all (several processes when one cannot
    hold them all under the open-file limit)."""

    def __init__(self, env, url, n, per_proc, ping_ms, seconds, extra=()):
        self.procs = []
        self.n = n
        k = 0
        left = n
        while left > 0:
            m = min(left, per_proc)
            argv = [LOADGEN, "--url", url, "-n", str(m), "--token", lib.TOKEN,
                    "--prefix", "lg%d" % k, "--src", "127.1.%d.1" % k,
                    "--ping-ms", str(ping_ms), "--duration-s", str(int(seconds)),
                    "--status-ms", "1000"] + list(extra)
            self.procs.append(lib.Proc(env, "loadgen", argv))
            left -= m
            k += 1

    def events(self, proc, name):
        out = []
        for line in list(proc.lines):
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if v.get("event") == name:
                out.append(v)
        return out

    def wait_all(self, round_no, timeout):
        """Waits until every loadgen reported all_registered for round_no. Returns the
        events, or None at the timeout."""
        deadline = now() + timeout
        while now() < deadline:
            evs = []
            for p in self.procs:
                e = [v for v in self.events(p, "all_registered") if v["round"] == round_no]
                if not e:
                    break
                evs.append(e[0])
            if len(evs) == len(self.procs):
                return evs
            if not all(p.alive() for p in self.procs):
                raise RuntimeError("loadgen exited: %s" % self.procs[0].stderr_tail(5))
            time.sleep(0.05)
        return None

    def last_status(self):
        out = {}
        for p in self.procs:
            st = self.events(p, "status")
            if st:
                for k, v in st[-1].items():
                    if isinstance(v, (int, float)) and k not in ("t", "round"):
                        out[k] = out.get(k, 0) + v
        return out

    def stop(self):
        for p in self.procs:
            p.stop()


def fd_budget():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return hard


def load_flags(tetherd):
    """The flags that lift the abuse limits a load generator hits by design (thousands of
    devices registering at once from one source address, with the fleet token), for the tetherd
    builds that have them (older ones, measured for comparison, do not)."""
    try:
        text = subprocess.run([tetherd, "--help"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=20, text=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    flags = []
    if "--max-pending-per-addr" in text:
        flags += ["--max-pending-per-addr", "0"]
    if "--new-names-per-second" in text:
        flags += ["--new-names-per-second", "1000000"]
    return flags


def relay_for_devices(env, port=None, admin_port=None, data_dir=None, tcp=None):
    return lib.Relay(env, grace="1h", port=port, admin_port=admin_port, data_dir=data_dir,
                     tcp_ports=tcp, extra=load_flags(lib.TETHERD))


def run_tether_devices(P, out, notes):
    counts = list(P["devices"])
    limit = fd_budget()
    fits = max(1000, (limit - 300) // 1000 * 1000)
    skipped = [n for n in counts if n > fits]
    if skipped:
        counts = [n for n in counts if n <= fits]
        if fits not in counts:
            counts.append(fits)
        notes.append("N = %s skipped: the open-file limit here is %d per process (hard "
                     "RLIMIT_NOFILE, and no CAP_SYS_RESOURCE to raise it), and the relay "
                     "needs one descriptor per device; N = %d measured instead."
                     % (", ".join("{:,}".format(n) for n in skipped), limit, fits))
    storms = set(P["storm"])
    for s in list(storms):
        if s > fits:
            storms.discard(s)
            storms.add(fits)
    rows, storm_rows = [], []
    # When 100,000 connections do not fit, the figures at 100,000 are extrapolated from the
    # slope over the N measured (fit_100k). The heartbeat rate is the relay's (one ping per quiet
    # device every RELAY_PING_MS), so it cannot be raised from here to that of 100,000 devices.
    plan = [(n, P["ping_ms"]) for n in counts]
    for n, ping_ms in plan:
        env = lib.Env("bench-devices")
        row = {"n": n, "ping_ms": ping_ms, "heartbeats_per_s": round(n * 1000.0 / RELAY_PING_MS)}
        try:
            relay = relay_for_devices(env)
            time.sleep(0.5)
            row["base_rss_kib"] = rss_kib(relay.proc.pid)
            reg_timeout = 30 + n / 1000.0
            life = reg_timeout + P["idle_seconds"] + 200
            log("Tether: %d idle devices, pinged every %d ms" % (n, RELAY_PING_MS))
            lg = Loadgens(env, relay.url, n, fits, ping_ms, life)
            t0 = now()
            evs = lg.wait_all(0, reg_timeout)
            if evs is None:
                st = lg.last_status()
                raise RuntimeError("only %d of %d devices registered within %.0f s" %
                                   (st.get("ready", 0), n, reg_timeout))
            row["register_s"] = round(now() - t0, 2)
            row["register_rate"] = round(n / max(e["elapsed"] for e in evs), 0)
            time.sleep(3)
            row["cpu_pct"] = round(cpu_percent(lambda: [relay.proc.pid], P["idle_seconds"]), 3)
            row["rss_kib"] = rss_kib(relay.proc.pid)
            row["per_device_bytes"] = round((row["rss_kib"] - row["base_rss_kib"]) * 1024 / n)
            st = lg.last_status()
            row["ready_after"] = st.get("ready")
            row["pongs_in"] = st.get("pongs_in")
            row["pings_in"] = st.get("pings_in")
            log("Tether: %d devices: relay RSS %d KiB (%d bytes per device), CPU %.2f%% of a core"
                % (n, row["rss_kib"], row["per_device_bytes"], row["cpu_pct"]))
            if n in storms and ping_ms == P["ping_ms"]:
                storm_rows.append(storm(env, relay, lg, n, P))
            lg.stop()
        except Exception as e:
            row["error"] = str(e)
            log("Tether: %d devices: %s" % (n, e))
        finally:
            for prob in env.cleanup():
                log("warning: " + prob.split("\n")[0])
            env.remove()
        if ping_ms == P["ping_ms"]:
            rows.append(row)
        else:
            out.setdefault("devices", {})["tether_rate100k"] = row
    out.setdefault("devices", {})["tether"] = rows
    out["storm"] = storm_rows


def storm(env, relay, lg, n, P):
    """SIGTERM the relay under n devices, start it again on the same port and data dir, and
    time the re-registration."""
    row = {"n": n}
    before = lg.last_status()
    log("storm: %d devices, relay restarted" % n)
    t_term = now()
    relay.proc.stop(signal.SIGTERM, timeout=30)
    row["stop_s"] = round(now() - t_term, 2)
    relay2 = relay_for_devices(env, port=relay.port, admin_port=relay.admin_port,
                               data_dir=relay.data_dir, tcp=(relay.tcp_low, relay.tcp_high))
    t_up = now()
    row["restart_s"] = round(t_up - t_term, 2)
    timeout = 60 if P["quick"] else 120
    evs = lg.wait_all(1, timeout)
    t_all = now()
    after = lg.last_status()
    if evs is None:
        row["error"] = "not all registered again within %d s: %d of %d" % (
            timeout, after.get("ready", 0), n)
        row["ready"] = after.get("ready", 0)
    else:
        row["all_s"] = round(t_all - t_term, 2)
        row["all_after_up_s"] = round(t_all - t_up, 2)
        row["same"] = sum(e["same"] for e in evs) - before.get("same", 0)
        row["changed"] = sum(e["changed"] for e in evs) - before.get("changed", 0)
        row["rss_kib_after"] = rss_kib(relay2.proc.pid)
    log("storm: %s" % json.dumps(row))
    return row


# ---------------------------------------------------------------- idle devices: the others

def run_wstunnel_devices(P, out, notes):
    rows = []
    try:
        mods = wstunnel_modules()
    except Exception as e:
        notes.append("node-reverse-wstunnel idle devices not measured: %s" % e)
        out.setdefault("devices", {})["wstunnel"] = rows
        return
    limit = fd_budget()
    for n in P["wstunnel_devices"]:
        row = {"n": n}
        if 2 * n + 300 > limit:
            row["error"] = ("needs 2 descriptors per device (WebSocket + public port): over "
                            "the open-file limit of %d" % limit)
            rows.append(row)
            continue
        env = lib.Env("bench-wst-devices")
        try:
            base = free_ports(n)
            port = lib.free_port()
            srv = Quiet(env, "wstunnel-server", wstunnel_argv(mods, "server", str(port)))
            lib.wait_for(lambda: srv.alive() and lib.port_open(port), 30, "wstunnel server")
            time.sleep(0.5)
            row["base_rss_kib"] = rss_kib(srv.pid)
            log("node-reverse-wstunnel: %d idle devices" % n)
            reg_timeout = 30 + n / 200.0
            lg = Loadgens(env, "ws://127.0.0.1:%d" % port, n, n, 0,
                          reg_timeout + P["idle_seconds"] + 60,
                          ["--mode", "wstunnel", "--wst-port-base", str(base),
                           "--max-pending", "128"])
            t0 = now()
            evs = lg.wait_all(0, reg_timeout)
            if evs is None:
                st = lg.last_status()
                raise RuntimeError("held only %d of %d devices after %.0f s" %
                                   (st.get("ready", 0), n, reg_timeout))
            row["register_s"] = round(now() - t0, 2)
            row["register_rate"] = round(n / max(e["elapsed"] for e in evs), 0)
            time.sleep(3)
            row["cpu_pct"] = round(cpu_percent(lambda: [srv.pid], P["idle_seconds"]), 3)
            row["rss_kib"] = rss_kib(srv.pid)
            row["per_device_bytes"] = round((row["rss_kib"] - row["base_rss_kib"]) * 1024 / n)
            log("node-reverse-wstunnel: %d devices: RSS %d KiB (%d bytes per device), CPU %.2f%%"
                % (n, row["rss_kib"], row["per_device_bytes"], row["cpu_pct"]))
            lg.stop()
        except Exception as e:
            row["error"] = str(e)
            log("node-reverse-wstunnel: %d devices: %s" % (n, e))
        finally:
            env.cleanup()
            env.remove()
        rows.append(row)
    out.setdefault("devices", {})["wstunnel"] = rows


def run_ssh_devices(P, out, notes):
    rows = []
    for n in P["ssh_devices"]:
        env = lib.Env("bench-ssh-devices")
        row = {"n": n}
        try:
            web = start_nginx(env) or lib.free_port()
            sshd = lib.Sshd(env)
            time.sleep(0.5)
            row["base_pss_kib"] = sum(pss_kib(p) for p in descendants(sshd.proc.pid))
            base = free_ports(n)
            log("ssh -R: %d idle devices (one ssh client each)" % n)
            t0 = now()
            # a few at a time: sshd drops unauthenticated connections beyond MaxStartups (10)
            for first in range(0, n, 5):
                batch = range(first, min(n, first + 5))
                for i in batch:
                    lib.Proc(env, "ssh", sshd.ssh_argv(
                        sshd.port, "-N", "-o", "ExitOnForwardFailure=yes",
                        "-o", "ServerAliveInterval=%d" % (RELAY_PING_MS // 1000),
                        "-R", "127.0.0.1:%d:127.0.0.1:%d" % (base + i, web)))
                lib.wait_for(lambda: all(lib.port_open(base + i) for i in batch), 30,
                             "ssh -R forwards %d-%d" % (batch[0], batch[-1]), interval=0.05)
            row["register_s"] = round(now() - t0, 2)
            time.sleep(3)
            row["cpu_pct"] = round(cpu_percent(lambda: descendants(sshd.proc.pid),
                                               P["idle_seconds"]), 3)
            pids = descendants(sshd.proc.pid)
            row["processes"] = len(pids)
            row["pss_kib"] = sum(pss_kib(p) for p in pids)
            row["rss_kib"] = row["pss_kib"]
            row["per_device_bytes"] = round((row["pss_kib"] - row["base_pss_kib"]) * 1024 / n)
            log("ssh -R: %d devices: sshd PSS %d KiB in %d processes (%d bytes per device)"
                % (n, row["pss_kib"], len(pids), row["per_device_bytes"]))
        except Exception as e:
            row["error"] = str(e)
            log("ssh -R: %d devices: %s" % (n, e))
        finally:
            env.cleanup()
            env.remove()
        rows.append(row)
    out.setdefault("devices", {})["ssh"] = rows


# ---------------------------------------------------------------- machine

def machine():
    info = {"kernel": platform.release(), "cores": os.cpu_count(), "cpu": platform.processor()}
    try:
        out = subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True).stdout
        m = re.search(r"^Model name:\s+(.*)$", out, re.M)
        if m:
            info["cpu"] = m.group(1).strip()
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            kb = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
        info["memory_gib"] = round(kb / 1048576, 1)
    except (OSError, AttributeError):
        pass
    info["nofile"] = fd_budget()
    return info


def commit():
    if os.environ.get("BENCH_COMMIT"):
        return os.environ["BENCH_COMMIT"]

    def git(*a):
        return subprocess.run(["git", "-C", ROOT] + list(a), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True).stdout.strip()
    c = git("rev-parse", "--short=12", "HEAD") or "unknown"
    if BIN.startswith(ROOT + os.sep + "build" + os.sep + "release") and \
            git("status", "--porcelain", "--untracked-files=no", "--", "src", "include"):
        c += "-dirty"
    return c


# ---------------------------------------------------------------- report

def fmt(v, digits=2):
    if v is None:
        return "—"
    if digits == 0:
        return "{:,.0f}".format(v)
    return "%.*f" % (digits, v)


PATH_ROWS = [
    # title, key, digits, higher is better
    ("TCP, client → device, Gbit/s", "tcp_up_gbps", 2, True),
    ("TCP, device → client, Gbit/s", "tcp_down_gbps", 2, True),
    ("HTTP 1 KiB keep-alive, requests/s", "http_1k_ka_rps", 0, True),
    ("HTTP 1 KiB keep-alive, p50 / p99 µs", ("http_1k_ka_p50_us", "http_1k_ka_p99_us"), 0, False),
    ("HTTP 1 KiB `Connection: close`, requests/s", "http_1k_close_rps", 0, True),
    ("HTTP 1 KiB close, p50 / p99 µs", ("http_1k_close_p50_us", "http_1k_close_p99_us"), 0,
     False),
    ("HTTP 1 MiB keep-alive, requests/s", "http_1m_ka_rps", 0, True),
    ("HTTP 1 MiB keep-alive, p50 / p99 µs", ("http_1m_ka_p50_us", "http_1m_ka_p99_us"), 0, False),
    ("HTTP 1 MiB close, requests/s", "http_1m_close_rps", 0, True),
    ("HTTP 1 MiB close, p50 / p99 µs", ("http_1m_close_p50_us", "http_1m_close_p99_us"), 0,
     False),
    ("one connection, sequential: p50 µs", "lat_p50_us", 0, False),
    ("one connection, sequential: p99 µs", "lat_p99_us", 0, False),
]


def cell(res, key, digits):
    if isinstance(key, tuple):
        a, b = res.get(key[0]), res.get(key[1])
        return "—" if a is None else "%s / %s" % (fmt(a, digits), fmt(b, digits))
    return fmt(res.get(key), digits)


def ratio_cell(res, d, key, higher):
    if isinstance(key, tuple):
        key = key[0]
    a, b = res.get(key), d.get(key)
    if a is None or not b:
        return "—"
    r = a / b
    if higher:
        return "%.0f%%" % (100 * r)
    return "%.2f× (%+.0f µs)" % (r, a - b)


def fit_100k(rows):
    """Least-squares line through (n, value) of the Tether rows for relay CPU (%) and RSS (KiB):
    {"cpu_per_1k": % of a core per 1,000 devices, "cpu_100k": %, "bytes_per_device": slope,
    "rss_100k_mib": MiB}, or None with fewer than two rows."""
    rows = [r for r in rows if "cpu_pct" in r and "rss_kib" in r]
    if len(rows) < 2:
        return None

    def line(ys):
        xs = [r["n"] for r in rows]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        return my - b * mx, b
    a, b = line([r["cpu_pct"] for r in rows])
    am, bm = line([r["rss_kib"] for r in rows])
    return {"cpu_per_1k": round(b * 1000, 4), "cpu_100k": round(a + b * 100000, 2),
            "bytes_per_device": round(bm * 1024), "rss_100k_mib": round((am + bm * 100000) / 1024, 1)}


def targets(rec):
    """(target, measured, verdict) rows for issue 6."""
    R = rec["results"]
    paths = R.get("paths", {})
    d, t = paths.get("direct", {}), paths.get("tether", {})
    out = []

    def ratio_row(title, key, goal):
        if t.get(key) is None or not d.get(key):
            out.append((title, "not measured", "—"))
            return
        r = t[key] / d[key]
        out.append((title, "%.0f%% of direct" % (100 * r),
                    "met" if r >= goal else "missed by %.0f points" % (100 * (goal - r))))
    ratio_row("TCP client → device ≥ 50% of direct", "tcp_up_gbps", 0.5)
    ratio_row("TCP device → client ≥ 50% of direct", "tcp_down_gbps", 0.5)
    ratio_row("HTTP 1 KiB keep-alive requests/s ≥ 40% of direct", "http_1k_ka_rps", 0.4)
    if t.get("lat_p50_us") is not None and d.get("lat_p50_us") is not None:
        added = t["lat_p50_us"] - d["lat_p50_us"]
        out.append(("added latency p50 < 50 µs", "%+.0f µs" % added,
                    "met" if added < 50 else "missed by %.0f µs" % (added - 50)))
    devs = [r for r in R.get("devices", {}).get("tether", []) if "per_device_bytes" in r]
    if devs:
        big = max(devs, key=lambda r: r["n"])
        note = "" if big["n"] >= 100000 else " (at {:,}; 100,000 not possible here)".format(
            big["n"])
        out.append(("100,000 idle devices: ≤ 4 KiB relay RSS each",
                    "{:,} bytes per device{}".format(big["per_device_bytes"], note),
                    "met" if big["per_device_bytes"] <= 4096 else
                    "missed by {:,} bytes".format(big["per_device_bytes"] - 4096)))
        r100 = R.get("devices", {}).get("tether_rate100k") or {}
        if big["n"] >= 100000:
            cpu100k, how = big["cpu_pct"], "{:.2f}% at 100,000".format(big["cpu_pct"])
        elif fit_100k(devs):
            f = fit_100k(devs)
            cpu100k = f["cpu_100k"]
            how = ("{:.2f}% at {:,}; {:.2f}% extrapolated to 100,000 ({:.3f}% per 1,000 devices, "
                   "fitted over {:,} to {:,})".format(big["cpu_pct"], big["n"], cpu100k,
                                                      f["cpu_per_1k"], devs[0]["n"], big["n"]))
        elif "cpu_pct" in r100:
            cpu100k = r100["cpu_pct"]
            how = "{:.2f}% at {:,}; {:.2f}% with the heartbeat rate of 100,000 ({:,}/s)".format(
                big["cpu_pct"], big["n"], cpu100k, r100["heartbeats_per_s"])
        else:
            cpu100k = big["cpu_pct"] * 100000 / big["n"]
            how = "{:.2f}% at {:,}; {:.1f}% scaled to 100,000".format(big["cpu_pct"], big["n"],
                                                                      cpu100k)
        out.append(("100,000 idle devices: < 5% of a core", how,
                    "met" if cpu100k < 5 else "missed by %.1f points" % (cpu100k - 5)))
    storms = [s for s in R.get("storm", []) if "all_s" in s]
    if storms:
        big = max(storms, key=lambda s: s["n"])
        ok = big["all_s"] <= 60 and big.get("same", 0) == big["n"]
        out.append(("re-registered within 60 s of a restart, same labels",
                    "{:,} devices in {:.1f} s, {:,} same labels".format(big["n"], big["all_s"],
                                                                        big.get("same", 0)),
                    "met" if ok else ("missed: labels not kept" if big["all_s"] <= 60
                                      else "missed by %.1f s" % (big["all_s"] - 60))))
    return out


def baseline_record():
    """The latest run labelled BENCH_COMMIT=before-..., which the plot compares against."""
    try:
        with open(RESULTS) as f:
            recs = [json.loads(l) for l in f if l.strip()]
    except OSError:
        return None
    recs = [r for r in recs if r.get("schema") == SCHEMA and str(r.get("commit")).startswith(
        "before")]
    return recs[-1] if recs else None


def plot(rec):
    """docs/bench-memory.png: relay memory against the number of idle devices, with the 4 KiB
    per device target and, when there is one, the baseline run (BENCH_COMMIT=before-...)."""
    if not lib.which("gnuplot"):
        return False
    dev = rec["results"].get("devices", {})
    series = []
    tmp = os.path.join(ROOT, "build", "bench-plot")
    os.makedirs(tmp, exist_ok=True)
    base = baseline_record() if not str(rec.get("commit")).startswith("before") else None
    sets = [(dev, "tether", "Tether (tetherd RSS)"),
            (dev, "wstunnel", "node-reverse-wstunnel (node RSS)"),
            (dev, "ssh", "ssh -R (sum of sshd PSS)")]
    if base:
        sets.insert(1, (base["results"].get("devices", {}), "tether",
                        "Tether before, %s (tetherd RSS)" % base["commit"][len("before-"):]))
    for i, (d, key, title) in enumerate(sets):
        pts = [(r["n"], r["rss_kib"] / 1024.0) for r in d.get(key, []) if "rss_kib" in r]
        if not pts:
            continue
        f = os.path.join(tmp, "%d-%s.dat" % (i, key))
        with open(f, "w") as fh:
            for n, mib in sorted(pts):
                fh.write("%d %.2f\n" % (n, mib))
        series.append("'%s' using 1:2 with linespoints lw 2 pt 7 title '%s'" % (f, title))
    if not series:
        return False
    base_kib = max([r.get("base_rss_kib", 0) for r in dev.get("tether", [])] or [0])
    series.append("%.2f + x * 4 / 1024.0 with lines dt 2 lc rgb 'gray40' title 'target: "
                  "tetherd at start + 4 KiB per device'" % (base_kib / 1024.0))
    script = """set terminal pngcairo size 900,560 font 'sans,11'
set output '%s'
set title 'Relay memory with idle devices (%s)'
set xlabel 'idle devices connected'
set ylabel 'relay memory (MiB)'
set logscale xy
set xrange [100:100000]
set grid
set key top left
plot %s
""" % (PLOT, rec["time"], ", \\\n     ".join(series))
    r = subprocess.run(["gnuplot"], input=script, text=True, stderr=subprocess.PIPE)
    if r.returncode != 0:
        log("gnuplot failed: %s" % r.stderr.strip()[:200])
        return False
    return True


def write_report(rec):
    R = rec["results"]
    m = rec["machine"]
    P = rec["params"]
    paths = R.get("paths", {})
    d = paths.get("direct", {})
    out = ["# Tether benchmarks", "",
           "Written by `make bench` (`bench/run.sh`, `bench/bench.py`); every run also appends a "
           "JSON line to `bench/results.jsonl`. Numbers are only comparable on the same machine. "
           "They are reported, never asserted by tests.", "",
           "- Run: %s, commit `%s`%s, %.0f s" % (rec["time"], rec["commit"],
                                                 " (quick mode)" if P.get("quick") else "",
                                                 rec.get("duration_s", 0)),
           "- Machine: %s, %s cores, %s GiB, Linux %s, open-file limit %s" % (
               m.get("cpu"), m.get("cores"), m.get("memory_gib", "?"), m.get("kernel"),
               "{:,}".format(m["nofile"]) if m.get("nofile") else "?"),
           "- Everything on loopback on this one machine: client, relay, agent and services "
           "share its cores. Release build (`-O2`).", ""]
    if paths:
        out += ["## Data path", "",
                "TCP: iperf3 moves %d MiB each way (one stream), timed by the receiver. HTTP: wrk, "
                "%d s per run, 2 threads and %d connections, against nginx (1 KiB and 1 MiB "
                "files). Sequential: one connection, one request at a time (1 KiB, keep-alive)."
                % (P["tcp_bytes"] >> 20, P["http_seconds"], P["connections"]), "",
                "| measurement | %s |" % " | ".join(PATH_NAMES[p] for p in PATHS),
                "|---|" + "---:|" * len(PATHS)]
        for title, key, digits, _ in PATH_ROWS:
            out.append("| %s | %s |" % (title, " | ".join(cell(paths.get(p, {}), key, digits)
                                                          for p in PATHS)))
        out += ["", "Relative to direct (throughput and requests/s: the share of the direct "
                "figure kept; latency: times the direct figure and the time added):", "",
                "| measurement | %s |" % " | ".join(PATH_NAMES[p] for p in PATHS[1:]),
                "|---|" + "---:|" * (len(PATHS) - 1)]
        for title, key, digits, higher in PATH_ROWS:
            if isinstance(key, tuple):
                title = title.replace("p50 / p99", "p50")
            out.append("| %s | %s |" % (title, " | ".join(ratio_cell(paths.get(p, {}), d, key,
                                                                     higher)
                                                          for p in PATHS[1:])))
        errs = [(p, e) for p in PATHS for e in R.get("paths_errors", {}).get(p, [])]
        if errs:
            out += ["", "Problems during this part of the run:", ""]
            out += ["- %s: %s" % (PATH_NAMES[p], e.replace("\n", " ")[:300]) for p, e in errs]
        out.append("")
    dev = R.get("devices", {})
    if dev:
        out += ["## Idle devices", "",
                "Relay memory and CPU with N idle, registered devices: `bench/loadgen` holds "
                "them from many loopback source addresses and keeps the agent's heartbeat "
                "(it answers pings and pings after %d s without hearing anything; tetherd pings "
                "a quiet device every %d s, the node server every 20 s, ssh -R clients every "
                "%d s). CPU is measured over %d s. Memory per device = (RSS with N devices − RSS "
                "before any) / N; for ssh -R it is the sum of the sshd processes' PSS." %
                (P["ping_ms"] // 1000, RELAY_PING_MS // 1000, RELAY_PING_MS // 1000,
                 P["idle_seconds"]), "",
                "| relay | devices | memory | per device | CPU (% of a core) | registered in |",
                "|---|---:|---:|---:|---:|---:|"]
        for key in ("tether", "wstunnel", "ssh"):
            for r in dev.get(key, []):
                if "error" in r:
                    out.append("| %s | {:,} | — | — | — | %s |".format(r["n"]) % (
                        PATH_NAMES[key], r["error"].replace("|", "/")[:160]))
                    continue
                reg = "%.1f s" % r["register_s"]
                if r.get("register_rate"):
                    reg += " ({:,.0f}/s)".format(r["register_rate"])
                out.append("| %s | {:,} | {:,.1f} MiB | {:,} B | %.2f | %s |".format(
                    r["n"], r["rss_kib"] / 1024.0, r["per_device_bytes"]) % (
                    PATH_NAMES[key], r["cpu_pct"], reg))
        f = fit_100k(dev.get("tether", []))
        if f and max(r["n"] for r in dev.get("tether", [])) < 100000:
            out += ["", "Extrapolated to 100,000 devices (least squares over the Tether rows; "
                    "100,000 connections do not fit in one process here): {:.3f}% of a core per "
                    "1,000 devices, {:.2f}% at 100,000; {:,} bytes of RSS per device, {:,.0f} MiB "
                    "at 100,000.".format(f["cpu_per_1k"], f["cpu_100k"], f["bytes_per_device"],
                                         f["rss_100k_mib"])]
        r100 = dev.get("tether_rate100k")
        if r100 and "cpu_pct" in r100:
            out += ["", "Heartbeats of 100,000 devices on the devices that fit: {:,} devices pinging "
                    "every {:.1f} s ({:,} pings/s, as many as 100,000 devices every {:d} s): relay "
                    "CPU {:.2f}% of a core.".format(r100["n"], r100["ping_ms"] / 1000.0,
                                                    r100["heartbeats_per_s"], P["ping_ms"] // 1000,
                                                    r100["cpu_pct"])]
        if rec.get("plot"):
            out += ["", "![relay memory against idle devices](bench-memory.png)"]
        out.append("")
    if R.get("storm"):
        out += ["## Reconnect storm", "",
                "Under N idle devices the relay gets SIGTERM (devices are told GOAWAY shutdown and "
                "come back after about 1 s, then back off 1 s, 2 s, 4 s... as the agent does) "
                "and is started again on the same port and data dir.", "",
                "| devices | stop | restart (SIGTERM → listening) | all registered again | "
                "same label | new label |", "|---:|---:|---:|---:|---:|---:|"]
        for s in R["storm"]:
            if "all_s" in s:
                out.append("| {:,} | {:.1f} s | {:.1f} s | {:.1f} s after SIGTERM ({:.1f} s after "
                           "listening) | {:,} | {:,} |".format(
                               s["n"], s["stop_s"], s["restart_s"], s["all_s"],
                               s["all_after_up_s"], s["same"], s["changed"]))
            else:
                out.append("| {:,} | — | — | {} | — | — |".format(s["n"], s.get("error", "?")))
        out.append("")
    tg = targets(rec)
    if tg:
        out += ["## Targets (issue 6)", "", "| target | measured | verdict |", "|---|---|---|"]
        out += ["| %s | %s | %s |" % row for row in tg]
        out.append("")
    if rec.get("notes"):
        out += ["## Notes on this run", ""] + ["- " + n for n in rec["notes"]] + [""]
    kept = ""
    if os.path.exists(REPORT):
        with open(REPORT) as f:
            text = f.read()
        if KEEP_MARKER in text:
            kept = text.split(KEEP_MARKER, 1)[1]
    out.append(KEEP_MARKER)
    with open(REPORT, "w") as f:
        f.write("\n".join(out) + (kept if kept else "\n"))


# ---------------------------------------------------------------- main

def main(argv):
    quick = "--quick" in argv
    only = None
    if "--only" in argv:
        only = set(argv[argv.index("--only") + 1].split(","))
    if "--report-only" in argv:  # rewrite docs/BENCHMARKS.md from the last full record
        with open(RESULTS) as f:
            recs = [json.loads(l) for l in f if l.strip()]
        recs = [r for r in recs if r.get("schema") == SCHEMA]
        if not recs:
            log("no schema-%d record in bench/results.jsonl" % SCHEMA)
            return 1
        recs[-1]["plot"] = plot(recs[-1])
        write_report(recs[-1])
        return 0
    for exe in (os.environ["TETHERD"], os.environ["TETHER"], LOADGEN):
        if not os.access(exe, os.X_OK):
            log("%s is missing: run `make` and `make bench-bin` first" % exe)
            return 1
    for tool in ("iperf3", "wrk"):
        if not lib.which(tool):
            log("%s is missing (scripts/deps.sh bench installs it)" % tool)
            return 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the children inherit it
    P = params(quick)
    t0 = now()
    results, setup, notes = {}, {}, []
    if only is None or "paths" in only:
        run_paths(P, results, setup)
    if only is None or "devices" in only or "storm" in only:
        if "devices" not in (only or {"devices"}):
            P["devices"] = list(P["storm"])
        run_tether_devices(P, results, notes)
    if only is None or "devices" in only:
        run_wstunnel_devices(P, results, notes)
        run_ssh_devices(P, results, notes)
    rec = {"schema": SCHEMA,
           "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "commit": commit(), "bin": os.path.relpath(BIN, ROOT), "machine": machine(),
           "params": P, "setup": setup, "results": results, "notes": notes,
           "duration_s": round(now() - t0, 1)}
    with open(RESULTS, "a") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")
    rec["plot"] = plot(rec)
    write_report(rec)
    with open(REPORT) as f:
        print(f.read().split(KEEP_MARKER)[0])
    log("wrote docs/BENCHMARKS.md and appended to bench/results.jsonl (%.0f s)" %
        rec["duration_s"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
