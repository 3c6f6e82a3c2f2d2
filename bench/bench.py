#!/usr/bin/env python3
"""bench.py - measures, in one run on loopback, three ways of reaching a service:

  direct   the client connects straight to the service
  tether   through tetherd and tether (release build): HTTP via the device URL, TCP via a
           device port
  ssh -R   through a throw-away sshd and `ssh -N -R` remote forwards (the classic alternative)

For each: single-stream TCP throughput each way (iperf3, timed by the receiver), HTTP requests
per second for a 1 KiB file over keep-alive (wrk against nginx), and latency per request
(wrk, one connection, sequential requests: p50 and p99). Writes docs/BENCHMARKS.md and appends
one JSON line to bench/results.jsonl. Bounded in time (about 2 minutes); reports numbers, never
passes or fails on them. Reuses the e2e toolbox (tests/e2e/lib.py) for processes and sshd.

Environment: BIN (default build/release/bin), BENCH_SECONDS (per measurement, default 5),
BENCH_CONNECTIONS (wrk connections for the requests/s run, default 32). `bench.py --report-only`
rewrites docs/BENCHMARKS.md from the last line of bench/results.jsonl.
"""

import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.path.abspath(os.environ.get("BIN", os.path.join(ROOT, "build/release/bin")))
os.environ["TETHERD"] = os.path.join(BIN, "tetherd")
os.environ["TETHER"] = os.path.join(BIN, "tether")
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import lib  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
PATHS = ("direct", "tether", "ssh")
PATH_NAMES = {"direct": "direct", "tether": "Tether", "ssh": "ssh -R"}


def log(msg):
    print("bench: " + msg, flush=True)


# ---------------------------------------------------------------- services

def start_nginx(env):
    """nginx serving /1k (1024 bytes) on a free port; None if nginx is missing."""
    exe = lib.which("nginx")
    if not exe:
        return None
    d = env.mkdtemp("nginx")
    os.makedirs(os.path.join(d, "www"))
    os.makedirs(os.path.join(d, "tmp"))
    with open(os.path.join(d, "www", "1k"), "wb") as f:
        f.write(lib.pattern(1024))
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
    client_body_temp_path %(d)s/tmp/body;
    proxy_temp_path %(d)s/tmp/proxy;
    fastcgi_temp_path %(d)s/tmp/fastcgi;
    uwsgi_temp_path %(d)s/tmp/uwsgi;
    scgi_temp_path %(d)s/tmp/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    server {
        listen 127.0.0.1:%(port)d;
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


# ---------------------------------------------------------------- measurements

def iperf(port, reverse):
    """Gbit/s received in a single-stream iperf3 run; reverse: the service sends."""
    argv = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(SECONDS), "-O", "1", "-J"]
    if reverse:
        argv.append("-R")
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=SECONDS + 60)
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


def wrk(url, host, threads, connections, latency=False):
    argv = ["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % SECONDS]
    if latency:
        argv.append("--latency")
    if host:
        argv += ["-H", "Host: %s" % host]
    argv.append(url)
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=SECONDS + 60)
    out = r.stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if r.returncode != 0 or not m:
        raise RuntimeError("wrk failed: %s %s" % (out.strip()[-300:], r.stderr.strip()[-300:]))
    res = {"rps": float(m.group(1))}
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors:.*", out)
    res["non2xx"] = int(bad.group(1)) if bad else 0
    res["socket_errors"] = errs.group(0) if errs else ""
    if latency:
        dist = out.split("Latency Distribution", 1)[-1]
        for pct in ("50", "99"):
            m = re.search(r"^\s+%s%%\s+(\S+)" % pct, dist, re.M)
            if m:
                res["p%s_us" % pct] = _micros(m.group(1))
    return res


def check_http(port, host, path):
    status, _, body = _get(port, host, path)
    if status != 200 or len(body) != 1024:
        raise RuntimeError("GET %s on port %d (Host %s): status %d, %d bytes" %
                           (path, port, host, status, len(body)))


def _get(port, host, path):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        c.request("GET", path, headers={"Host": host} if host else {})
        r = c.getresponse()
        return r.status, None, r.read()
    finally:
        c.close()


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
    return info


def commit():
    def git(*a):
        return subprocess.run(["git", "-C", ROOT] + list(a), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True).stdout.strip()
    c = git("rev-parse", "--short=12", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no", "--", "src", "include"):
        c += "-dirty"
    return c


# ---------------------------------------------------------------- the run

def run():
    env = lib.Env("bench")
    results = {p: {} for p in PATHS}
    errors = {p: [] for p in PATHS}
    setup = {}
    try:
        nginx = start_nginx(env)
        if nginx:
            web_port, web_path, setup["http_server"] = nginx, "/1k", "nginx"
        else:
            svc = env.http_service(big_size=1024)
            web_port, web_path = svc.port, "/blob?n=1024"
            setup["http_server"] = "python http.server (nginx not installed)"
            log("nginx not found: using the (much slower) Python server")
        iperf_port = start_iperf(env)

        targets = {"direct": {"tcp": iperf_port, "http": (web_port, None)}}
        log("starting tetherd and tether from %s" % BIN)
        try:
            relay = env.relay(grace="1m")
            agent = env.agent(relay, http=web_port, tcp={"iperf": iperf_port})
            targets["tether"] = {"tcp": agent.tcp_port("iperf"),
                                 "http": (relay.port, relay.host(agent.label))}
        except Exception as e:
            errors["tether"].append("setup: %s" % e)
        log("starting sshd and ssh -N -R")
        try:
            sshd = lib.Sshd(env)
            r_tcp, r_http = lib.free_port(), lib.free_port()
            fwd = lib.Proc(env, "ssh", sshd.ssh_argv(
                sshd.port, "-N", "-o", "ExitOnForwardFailure=yes",
                "-R", "127.0.0.1:%d:127.0.0.1:%d" % (r_tcp, iperf_port),
                "-R", "127.0.0.1:%d:127.0.0.1:%d" % (r_http, web_port)))
            lib.wait_for(lambda: fwd.alive() and lib.port_open(r_tcp) and lib.port_open(r_http),
                         30, "ssh -R forwards")
            targets["ssh"] = {"tcp": r_tcp, "http": (r_http, None)}
        except Exception as e:
            errors["ssh"].append("setup: %s" % e)

        for p in PATHS:
            t = targets.get(p)
            if not t:
                continue
            port, host = t["http"]
            try:
                check_http(port, host, web_path)
            except Exception as e:
                errors[p].append(str(e))
                continue
            log("%s: TCP throughput, client to service" % PATH_NAMES[p])
            for key, rev in (("tcp_up_gbps", False), ("tcp_down_gbps", True)):
                try:
                    results[p][key] = iperf(t["tcp"], rev)
                except Exception as e:
                    errors[p].append("%s: %s" % (key, e))
            url = "http://127.0.0.1:%d%s" % (port, web_path)
            log("%s: HTTP requests/s (%d connections)" % (PATH_NAMES[p], CONNECTIONS))
            try:
                w = wrk(url, host, 2, CONNECTIONS)
                results[p]["http_rps"] = w["rps"]
                if w["non2xx"] or w["socket_errors"]:
                    errors[p].append("wrk: %d non-2xx, %s" % (w["non2xx"], w["socket_errors"]))
            except Exception as e:
                errors[p].append("http_rps: %s" % e)
            log("%s: latency, one connection" % PATH_NAMES[p])
            try:
                w = wrk(url, host, 1, 1, latency=True)
                results[p]["lat_p50_us"] = w.get("p50_us")
                results[p]["lat_p99_us"] = w.get("p99_us")
                results[p]["seq_rps"] = w["rps"]
            except Exception as e:
                errors[p].append("latency: %s" % e)
    finally:
        problems = env.cleanup()
        env.remove()
    for p in problems:
        log("warning: " + p.split("\n")[0])
    return results, errors, setup


def fmt(v, digits=2):
    return "—" if v is None else ("%.*f" % (digits, v))


def ratio(a, b):
    return None if a is None or not b else a / b


def write_report(rec):
    res = rec["results"]
    d = res["direct"]
    rows = [("TCP throughput, client → device (Gbit/s)", "tcp_up_gbps", 2, True),
            ("TCP throughput, device → client (Gbit/s)", "tcp_down_gbps", 2, True),
            ("HTTP requests/s, 1 KiB, %d keep-alive connections" % rec["params"]["connections"],
             "http_rps", 0, True),
            ("Latency per request p50 (µs), one connection", "lat_p50_us", 0, False),
            ("Latency per request p99 (µs), one connection", "lat_p99_us", 0, False)]
    m = rec["machine"]
    out = ["# Tether benchmarks", "",
           "Written by `make bench` (`bench/run.sh`); every run also appends a JSON line to",
           "`bench/results.jsonl`. Numbers are only comparable on the same machine. They are",
           "reported, never asserted by tests.", "",
           "- Run: %s, commit `%s`" % (rec["time"], rec["commit"]),
           "- Machine: %s, %s cores, %s GiB, Linux %s" % (m.get("cpu"), m.get("cores"),
                                                           m.get("memory_gib", "?"),
                                                           m.get("kernel")),
           "- Everything on loopback, on the same machine: client, relay (`tetherd`), agent",
           "  (`tether`), service. Release build (`-O2`).",
           "- TCP: one iperf3 stream for %d s per direction (first second omitted), measured by"
           % rec["params"]["seconds"],
           "  the receiver. HTTP: wrk, %d s per run, against %s serving a 1 KiB file; requests/s"
           % (rec["params"]["seconds"], rec["setup"].get("http_server")),
           "  with 2 threads and %d connections; latency with one connection and sequential"
           % rec["params"]["connections"],
           "  requests (keep-alive), so it includes the client and server time of the direct path.",
           "- ssh -R: a throw-away `sshd` on a loopback port and `ssh -N -R` forwarding a port on",
           "  the sshd side back to the service (default ciphers), the usual way to reach a",
           "  device behind NAT without Tether.", "",
           "## Absolute figures", "",
           "| measurement | direct | Tether | ssh -R |", "|---|---:|---:|---:|"]
    for title, key, digits, _ in rows:
        out.append("| %s | %s |" % (title, " | ".join(fmt(res[p].get(key), digits)
                                                      for p in PATHS)))
    out += ["", "## Relative to the direct connection", "",
            "Throughput and requests/s: the fraction of the direct figure kept (higher is",
            "better). Latency: how many times the direct latency, and the time added per request.",
            "", "| measurement | Tether / direct | ssh -R / direct |", "|---|---:|---:|"]
    for title, key, digits, higher in rows:
        cells = []
        for p in ("tether", "ssh"):
            r = ratio(res[p].get(key), d.get(key))
            if r is None:
                cells.append("—")
            elif higher:
                cells.append("%.2f× (%.0f%%)" % (r, 100 * r))
            else:
                cells.append("%.2f× (%+.0f µs)" % (r, res[p][key] - d[key]))
        out.append("| %s | %s |" % (title, " | ".join(cells)))
    out += ["", "Notes: each figure comes from one run of a few seconds, so the p99 latencies in",
            "particular move from run to run; compare runs on the same machine (every run is in",
            "`bench/results.jsonl`). The client, relay, agent and service share the machine's",
            "cores, so on a 2-core machine the Tether and ssh -R figures include the CPU that",
            "the relay and the agent (or sshd and ssh) take from the client and the service."]
    errs = [(p, e) for p in PATHS for e in rec["errors"].get(p, [])]
    if errs:
        out += ["", "## Problems during this run", ""]
        out += ["- %s: %s" % (PATH_NAMES[p], e.replace("\n", " ")[:300]) for p, e in errs]
    out.append("")
    with open(os.path.join(ROOT, "docs", "BENCHMARKS.md"), "w") as f:
        f.write("\n".join(out))


def main():
    if sys.argv[1:] == ["--report-only"]:  # rewrite docs/BENCHMARKS.md from the last run
        with open(os.path.join(ROOT, "bench", "results.jsonl")) as f:
            write_report(json.loads(f.read().splitlines()[-1]))
        return 0
    for exe in (os.environ["TETHERD"], os.environ["TETHER"]):
        if not os.access(exe, os.X_OK):
            log("%s is missing: run `make` first" % exe)
            return 1
    for tool in ("iperf3", "wrk"):
        if not lib.which(tool):
            log("%s is missing (scripts/deps.sh bench installs it)" % tool)
            return 1
    t0 = time.monotonic()
    results, errors, setup = run()
    rec = {"time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "commit": commit(), "machine": machine(),
           "params": {"seconds": SECONDS, "connections": CONNECTIONS, "file_bytes": 1024},
           "setup": setup, "results": results, "errors": errors,
           "duration_s": round(time.monotonic() - t0, 1)}
    with open(os.path.join(ROOT, "bench", "results.jsonl"), "a") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")
    write_report(rec)
    with open(os.path.join(ROOT, "docs", "BENCHMARKS.md")) as f:
        print(f.read())
    log("wrote docs/BENCHMARKS.md and appended to bench/results.jsonl (%.0f s)" %
        rec["duration_s"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
