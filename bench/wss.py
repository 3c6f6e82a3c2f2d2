#!/usr/bin/env python3
"""wss.py - devices over wss (issue 12 item 6): relay memory per idle device over ws and over
wss, and TLS handshakes per second per core of the relay, full and resumed, for one or more
tetherd builds in the same run. Writes nothing; prints one JSON line per figure and a table.

  python3 bench/wss.py [--devices 3000[,10000]] [--parts mem,hs,tls,dp] [--hs-seconds 10]
                       [--rounds 3] [--rsa] [NAME=BINDIR ...]

Each NAME=BINDIR is a directory holding tetherd and tether (or the path of a tetherd, for mem
and hs); without any, build/release/bin is measured as "tether". --rsa: the relay's certificate
has an RSA 2048 key instead of ECDSA P-256 (the CA's stays ECDSA). The relay gets an ECDSA
P-256 certificate (made with the openssl command in a temp dir) and a --tls-listen port; the
devices are bench/loadgen (build/release/bin/loadgen, make bench-bin) with --url ws:// or
wss://. mem: relay VmRSS before and after N idle registered devices, per device. hs: loadgen
with --cycle-ms (every device reconnects about every 0.5 s) for --hs-seconds, with and without
--no-resume; the relay's CPU time (/proc/PID/schedstat) over that time against the handshakes
the loadgen counted: handshakes per CPU-second of the relay (per core: the relay is one
thread). tls: the TLS handshakes alone: Python clients (4 threads) open TLS connections to the
relay's TLS port, send a one-line request and read the answer (the relay's 404), with a new
session each time, or offering the session of their previous connection (TLS 1.3), for
--hs-seconds; the relay's CPU time against its own tether_tls_handshakes_total counts (builds
without that series: the clients' counts). dp: the data path over TLS, in interleaved rounds: nginx behind an agent connected over
wss (--ca-file), reached through the relay's TLS port with wrk over https (1 MiB downloads,
-c4 -t1: MiB/s; 1 KiB requests, -c32 -t2: requests/s), against wrk straight to nginx (plain
HTTP) in the same round: the ratio to direct, median over the rounds."""
import json
import os
import re
import socket
import ssl
import statistics
import subprocess
import threading
import urllib.request
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402
import lib  # noqa: E402


def pki(d, rsa=False):
    def run(*a):
        subprocess.run(["openssl"] + list(a), cwd=d, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    run("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=bench-ca", "-days", "2",
        "-out", "ca.crt")
    if rsa:
        run("genrsa", "-out", "srv.key", "2048")
    else:
        run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "srv.key")
    run("req", "-new", "-key", "srv.key", "-subj", "/CN=localhost", "-out", "srv.csr")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,DNS:*.localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext", "-out", "srv.crt")
    return [os.path.join(d, x) for x in ("srv.crt", "srv.key", "ca.crt")]


def relay(env, tetherd, crt, key):
    os.environ["TETHERD"] = tetherd
    lib.TETHERD = tetherd
    tls_port = lib.free_port()
    r = lib.Relay(env, grace="1h", extra=bench.load_flags(tetherd) + [
        "--tls-listen", "127.0.0.1:%d" % tls_port, "--tls-cert", crt, "--tls-key", key])
    r.tls_port = tls_port
    lib.wait_for(lambda: lib.port_open(tls_port), 10, "the TLS port")
    return r


def mem(name, tetherd, n, kind, crt, key, ca):
    env = lib.Env("wss-mem")
    try:
        r = relay(env, tetherd, crt, key)
        time.sleep(1)
        base = bench.rss_kib(r.proc.pid)
        url = ("wss://127.0.0.1:%d/" % r.tls_port) if kind == "wss" else r.url + "/"
        extra = ["--sni", "localhost", "--ca-file", ca] if kind == "wss" else []
        lg = bench.Loadgens(env, url, n, 30000, bench.AGENT_PING_MS, 300,
                            extra=extra + ["--max-pending", "256"])
        evs = lg.wait_all(0, 240)
        if evs is None:
            raise RuntimeError("not all registered: %r" % lg.last_status())
        time.sleep(5)
        rss = bench.rss_kib(r.proc.pid)
        st = lg.last_status()
        row = {"build": name, "kind": kind, "n": n, "base_rss_kib": base, "rss_kib": rss,
               "per_device_bytes": round((rss - base) * 1024 / n),
               "tls_full": st.get("tls_full"), "tls_resumed": st.get("tls_resumed")}
        lg.stop()
        return row
    finally:
        for p in env.cleanup():
            print("warning: " + p.split("\n")[0], file=sys.stderr)
        env.remove()


def hs(name, tetherd, n, resume, seconds, crt, key, ca):
    env = lib.Env("wss-hs")
    try:
        r = relay(env, tetherd, crt, key)
        url = "wss://127.0.0.1:%d/" % r.tls_port
        extra = ["--sni", "localhost", "--cycle-ms", "500", "--max-pending", "64"]
        if not resume:
            extra.append("--no-resume")
        lg = bench.Loadgens(env, url, n, 30000, bench.AGENT_PING_MS, seconds + 60, extra=extra)
        if lg.wait_all(0, 60) is None:
            raise RuntimeError("not all registered: %r" % lg.last_status())
        time.sleep(2)
        s0, c0, t0 = lg.last_status(), bench.cpu_ns(r.proc.pid), time.monotonic()
        time.sleep(seconds)
        s1, c1, t1 = lg.last_status(), bench.cpu_ns(r.proc.pid), time.monotonic()
        full = s1.get("tls_full", 0) - s0.get("tls_full", 0)
        res = s1.get("tls_resumed", 0) - s0.get("tls_resumed", 0)
        cpu_s = (c1 - c0) / 1e9
        lg.stop()
        return {"build": name, "resume": resume, "n": n, "seconds": round(t1 - t0, 2),
                "full": full, "resumed": res, "relay_cpu_s": round(cpu_s, 3),
                "handshakes_per_cpu_s": round((full + res) / cpu_s) if cpu_s > 0 else None,
                "relay_cpu_pct": round(100 * cpu_s / (t1 - t0), 1),
                "fails": s1.get("tls_fail", 0) - s0.get("tls_fail", 0)}
    finally:
        for p in env.cleanup():
            print("warning: " + p.split("\n")[0], file=sys.stderr)
        env.remove()


def dp_round(name, bindir, crt, key, ca, nginx, seconds):
    env = lib.Env("wss-dp")
    try:
        lib.TETHER = os.path.join(bindir, "tether")
        r = relay(env, os.path.join(bindir, "tetherd"), crt, key)
        agent = lib.Agent(env, r, http=nginx, server="wss://localhost:%d" % r.tls_port,
                          extra=["--ca-file", ca])
        host = "%s.localhost:%d" % (agent.label, r.tls_port)
        url = "https://127.0.0.1:%d" % r.tls_port
        dl = bench.wrk(url + "/1m", host, 1, 4, seconds)
        rq = bench.wrk(url + "/1k", host, 2, 32, seconds)
        return {"build": name, "dl_mib_s": dl["rps"], "rps_1k": rq["rps"],
                "errors": [dl["socket_errors"], rq["socket_errors"], dl["non2xx"], rq["non2xx"]]}
    finally:
        for p in env.cleanup():
            print("warning: " + p.split("\n")[0], file=sys.stderr)
        env.remove()


def dp(builds, crt, key, ca, rounds, seconds):
    env = lib.Env("wss-nginx")
    rows = []
    try:
        nginx = bench.start_nginx(env)
        if nginx is None:
            raise RuntimeError("nginx is missing")
        base = "http://127.0.0.1:%d" % nginx
        for i in range(rounds):
            d_dl = bench.wrk(base + "/1m", None, 1, 4, seconds)["rps"]
            d_rq = bench.wrk(base + "/1k", None, 2, 32, seconds)["rps"]
            for name, bindir in (builds if i % 2 == 0 else builds[::-1]):
                row = dp_round(name, bindir, crt, key, ca, nginx, seconds)
                row.update({"round": i, "direct_dl_mib_s": d_dl, "direct_rps_1k": d_rq,
                            "dl_ratio": round(row["dl_mib_s"] / d_dl, 3),
                            "rps_ratio": round(row["rps_1k"] / d_rq, 3)})
                print(json.dumps(row), flush=True)
                rows.append(row)
        for name, _ in builds:
            mine = [r for r in rows if r["build"] == name]
            print(json.dumps({"build": name, "median_dl_mib_s": statistics.median(
                r["dl_mib_s"] for r in mine), "median_dl_ratio": statistics.median(
                r["dl_ratio"] for r in mine), "median_rps_1k": statistics.median(
                r["rps_1k"] for r in mine), "median_rps_ratio": statistics.median(
                r["rps_ratio"] for r in mine)}), flush=True)
    finally:
        for p in env.cleanup():
            print("warning: " + p.split("\n")[0], file=sys.stderr)
        env.remove()
    return rows


def tls_counts(r):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % r.admin_port, timeout=10) as f:
            text = f.read().decode()
    except OSError:
        return None
    m = dict(re.findall(r'^tether_tls_handshakes_total\{kind="(\w+)"\} (\d+)$', text, re.M))
    return {k: int(v) for k, v in m.items()} if m else None


def tls_only(name, tetherd, resume, seconds, crt, key, ca):
    env = lib.Env("wss-tls")
    try:
        r = relay(env, tetherd, crt, key)
        ctx = ssl.create_default_context(cafile=ca)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        stop = time.monotonic() + seconds + 1
        counts = {"full": 0, "resumed": 0, "errors": 0}
        lock = threading.Lock()

        def client():
            sess = None
            while time.monotonic() < stop:
                try:
                    raw = socket.create_connection(("127.0.0.1", r.tls_port), timeout=10)
                    s = ctx.wrap_socket(raw, server_hostname="localhost",
                                        session=sess if resume else None)
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x.localhost\r\nConnection: close\r\n\r\n")
                    while s.recv(65536):
                        pass
                    reused = s.session_reused
                    sess = s.session
                    s.close()
                    with lock:
                        counts["resumed" if reused else "full"] += 1
                except (OSError, ssl.SSLError):
                    with lock:
                        counts["errors"] += 1
        threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
        for th in threads:
            th.start()
        time.sleep(1)
        m0, c0, t0 = tls_counts(r), bench.cpu_ns(r.proc.pid), time.monotonic()
        k0 = dict(counts)
        time.sleep(seconds - 0.2)
        m1, c1, t1 = tls_counts(r), bench.cpu_ns(r.proc.pid), time.monotonic()
        k1 = dict(counts)
        for th in threads:
            th.join(30)
        if m0 and m1:
            full, res = m1["full"] - m0["full"], m1["resumed"] - m0["resumed"]
        else:
            full, res = k1["full"] - k0["full"], k1["resumed"] - k0["resumed"]
        cpu_s = (c1 - c0) / 1e9
        return {"build": name, "part": "tls", "resume": resume, "seconds": round(t1 - t0, 2),
                "full": full, "resumed": res, "relay_cpu_s": round(cpu_s, 3),
                "handshakes_per_cpu_s": round((full + res) / cpu_s) if cpu_s > 0 else None,
                "relay_cpu_pct": round(100 * cpu_s / (t1 - t0), 1), "errors": counts["errors"]}
    finally:
        for p in env.cleanup():
            print("warning: " + p.split("\n")[0], file=sys.stderr)
        env.remove()


def tetherd_of(path):
    return os.path.join(path, "tetherd") if os.path.isdir(path) else path


def main(argv):
    devices, parts, hs_seconds, builds, rounds, rsa = [3000], ["mem", "hs"], 10, [], 3, False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--devices":
            devices = [int(x) for x in argv[i + 1].split(",")]; i += 2
        elif a == "--parts":
            parts = argv[i + 1].split(","); i += 2
        elif a == "--hs-seconds":
            hs_seconds = int(argv[i + 1]); i += 2
        elif a == "--rsa":
            rsa = True; i += 1
        elif a == "--rounds":
            rounds = int(argv[i + 1]); i += 2
        elif "=" in a:
            builds.append(tuple(a.split("=", 1))); i += 1
        else:
            sys.exit(__doc__)
    if not builds:
        builds = [("tether", bench.BIN)]
    env = lib.Env("wss-pki")
    crt, key, ca = pki(env.dir, rsa)
    rows = []
    try:
        for n in devices:
            if "mem" in parts:
                for kind in ("ws", "wss"):
                    for name, tetherd in builds:
                        row = mem(name, tetherd_of(tetherd), n, kind, crt, key, ca)
                        print(json.dumps(row), flush=True)
                        rows.append(row)
        if "hs" in parts:
            for resume in (False, True):
                for name, tetherd in builds:
                    row = hs(name, tetherd_of(tetherd), 200, resume, hs_seconds, crt, key, ca)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
        if "tls" in parts:
            for resume in (False, True):
                for name, tetherd in builds:
                    row = tls_only(name, tetherd_of(tetherd), resume, hs_seconds, crt, key, ca)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
        if "dp" in parts:
            rows += dp(builds, crt, key, ca, rounds, 3)
    finally:
        env.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
