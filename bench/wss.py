#!/usr/bin/env python3
"""wss.py - devices over wss (issue 12 item 6): relay memory per idle device over ws and over
wss, and TLS handshakes per second per core of the relay, full and resumed, for one or more
tetherd builds in the same run. Writes nothing; prints one JSON line per figure and a table.

  python3 bench/wss.py [--devices 3000[,10000]] [--parts mem,hs] [--hs-seconds 10]
                       [NAME=TETHERD ...]

Without NAME=TETHERD, build/release/bin/tetherd is measured as "tether". The relay gets an ECDSA
P-256 certificate (made with the openssl command in a temp dir) and a --tls-listen port; the
devices are bench/loadgen (build/release/bin/loadgen, make bench-bin) with --url ws:// or
wss://. mem: relay VmRSS before and after N idle registered devices, per device. hs: loadgen
with --cycle-ms (every device reconnects about every 0.5 s) for --hs-seconds, with and without
--no-resume; the relay's CPU time (/proc/PID/schedstat) over that time against the handshakes
the loadgen counted: handshakes per CPU-second of the relay (per core: the relay is one
thread)."""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402
import lib  # noqa: E402


def pki(d):
    def run(*a):
        subprocess.run(["openssl"] + list(a), cwd=d, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    run("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=bench-ca", "-days", "2",
        "-out", "ca.crt")
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


def main(argv):
    devices, parts, hs_seconds, builds = [3000], ["mem", "hs"], 10, []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--devices":
            devices = [int(x) for x in argv[i + 1].split(",")]; i += 2
        elif a == "--parts":
            parts = argv[i + 1].split(","); i += 2
        elif a == "--hs-seconds":
            hs_seconds = int(argv[i + 1]); i += 2
        elif "=" in a:
            builds.append(tuple(a.split("=", 1))); i += 1
        else:
            sys.exit(__doc__)
    if not builds:
        builds = [("tether", os.path.join(bench.BIN, "tetherd"))]
    env = lib.Env("wss-pki")
    crt, key, ca = pki(env.dir)
    rows = []
    try:
        for n in devices:
            if "mem" in parts:
                for kind in ("ws", "wss"):
                    for name, tetherd in builds:
                        row = mem(name, tetherd, n, kind, crt, key, ca)
                        print(json.dumps(row), flush=True)
                        rows.append(row)
        if "hs" in parts:
            for resume in (False, True):
                for name, tetherd in builds:
                    row = hs(name, tetherd, 200, resume, hs_seconds, crt, key, ca)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    finally:
        env.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
