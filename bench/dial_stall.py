#!/usr/bin/env python3
"""dial_stall.py - the devices' dial timeout in a reconnect storm against a relay too slow to
finish handshakes in time (issue 12): N loadgen devices over wss register, the relay is stopped
(SIGSTOP) while every device redials at once (loadgen's SIGUSR1 storm), held HOLD s, then runs
DUTY of every second (SIGSTOP/SIGCONT: a loaded relay, as at 100,000 devices on a small machine)
until every device is back or LIMIT s pass. One line of JSON per rule: loadgen's dial timeouts
(by the timeout used), the handshakes it made, the relay's CPU time and how long until every
device was back. Each argument is a --dial-timeout-max-ms: 15000 is the old fixed timeout,
60000 the growing one (the agent's rule, src/core/dialtimeout.c tt_dialtimeout_next).

  N=1000 HOLD=5 DUTY=0.05 LIMIT=180 EXTRA=--no-resume python3 bench/dial_stall.py 15000 60000

Environment: N (1000; keep it at 2,000 or less on a shared machine), HOLD (5), DUTY (1: not
throttled), LIMIT (180), EXTRA (more loadgen flags), LOADGEN (build/release/bin/loadgen, else
build/sanitize/bin/loadgen), RELAY (a tetherd; build/release/bin/tetherd by default). Every
process is started here and stopped by PID; traffic stays on loopback."""
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench  # noqa: E402
import lib  # noqa: E402
import wss  # noqa: E402

N = int(os.environ.get("N", "1000"))
HOLD = float(os.environ.get("HOLD", "5"))
DUTY = float(os.environ.get("DUTY", "1"))
LIMIT = float(os.environ.get("LIMIT", "180"))
EXTRA = os.environ.get("EXTRA", "").split()


def first_existing(*paths):
    return next((p for p in paths if os.path.exists(p)), paths[0])


LOADGEN = os.environ.get("LOADGEN") or first_existing(
    os.path.join(ROOT, "build/release/bin/loadgen"), os.path.join(ROOT, "build/sanitize/bin/loadgen"))
TETHERD = os.environ.get("RELAY") or os.path.join(ROOT, "build/release/bin/tetherd")


def last(proc, ev="status"):
    for line in reversed(proc.lines):
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if isinstance(o, dict) and o.get("event") == ev:
            return o
    return {}


def run(max_ms):
    env = lib.Env("dial-stall")
    try:
        crt, key, _ = wss.pki(env.mkdtemp("pki"))
        r = wss.relay(env, TETHERD, crt, key)
        url = "wss://127.0.0.1:%d/" % r.tls_port
        lg = lib.Proc(env, "loadgen", [LOADGEN, "--url", url, "-n", str(N), "--token", lib.TOKEN,
                                       "--sni", "localhost", "--max-pending", str(N),
                                       "--duration-s", str(int(HOLD + LIMIT + 180)),
                                       "--status-ms", "500", "--dial-timeout-max-ms",
                                       str(max_ms)] + EXTRA)
        lib.wait_for(lambda: last(lg).get("ready") == N, 120, "every device registered")
        time.sleep(2)
        r.proc.send_signal(signal.SIGSTOP)
        lg.send_signal(signal.SIGUSR1)
        time.sleep(HOLD)
        c0, t0 = bench.cpu_ns(r.proc.pid), time.monotonic()
        r.proc.send_signal(signal.SIGCONT)
        took = None
        while time.monotonic() - t0 < LIMIT:
            if last(lg).get("ready") == N:
                took = time.monotonic() - t0
                break
            if DUTY < 1.0:
                time.sleep(DUTY)
                r.proc.send_signal(signal.SIGSTOP)
                time.sleep(1.0 - DUTY)
                r.proc.send_signal(signal.SIGCONT)
            else:
                time.sleep(0.1)
        r.proc.send_signal(signal.SIGCONT)
        c1 = bench.cpu_ns(r.proc.pid)
        time.sleep(1)
        s = last(lg)
        print(json.dumps({
            "dial_timeout_max_ms": max_ms, "n": N, "hold_s": HOLD, "duty": DUTY,
            "back_after_release_s": round(took, 1) if took else None,
            "ready_at_end": s.get("ready"),
            "relay_cpu_s_after_release": round((c1 - c0) / 1e9, 2),
            "dial_timeouts": s.get("dial_timeouts"),
            "dial_timeouts_by_ms": s.get("dial_timeouts_by_ms"),
            "dial_timeouts_unconnected": s.get("dial_timeouts_unconnected"),
            "tls_full": s.get("tls_full"), "tls_resumed": s.get("tls_resumed"),
            "same_label": s.get("same"), "changed_label": s.get("changed")}), flush=True)
        lg.stop()
    finally:
        for p in env.cleanup():
            print("warning: " + p.split("\n")[0], file=sys.stderr)
        env.remove()


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["15000", "60000"]:
        run(int(arg))
