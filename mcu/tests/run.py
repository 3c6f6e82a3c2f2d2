#!/usr/bin/env python3
"""run.py - runs the microcontroller agent's end-to-end tests (make mcu-test): creates a network
namespace of its own with a TAP device in it (10.213.0.1/24 on the Linux side; the agent's lwIP
takes 10.213.0.2), runs mcu/tests/test_mcu.py inside that namespace (a real tetherd, the agent
on lwIP in user space, curl and TCP clients, all within the namespace: no traffic leaves it),
then removes the namespace, which takes the TAP device with it. Needs root.

Prints the inner run's "PASS name" / "FAIL name: reason" lines and its closing
"mcu: N passed, M failed". Exits 1 if a test failed or the namespace could not be made.
Usage: mcu/tests/run.py [--bin build/mcu/host/tether-mcu-host] [--tetherd PATH] [-k SUBSTRING]...
                       [--qemu FIRMWARE.elf]
--qemu runs the same tests with the device being the firmware itself on qemu-system-arm's
mps2-an385, attached to the same TAP device (make mcu-qemu); the board's key sector is saved
through QEMU's monitor when a test stops the board, and loaded into the next board that names it.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TAP = "ttmcu0"
LINUX_IP = "10.213.0.1/24"
RUN_TIMEOUT = 900


def ip(*args, check=True):
    return subprocess.run(["ip"] + list(args), check=check, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)


def netns_pids(ns):
    r = ip("netns", "pids", ns, check=False)
    return [int(x) for x in r.stdout.split() if x.strip().isdigit()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/mcu/host/tether-mcu-host"))
    ap.add_argument("--tetherd", default=os.environ.get("TETHERD",
                                                        os.path.join(ROOT, "build/sanitize/bin/tetherd")))
    ap.add_argument("-k", action="append", default=[])
    ap.add_argument("--qemu", default=None)
    args = ap.parse_args()

    if os.geteuid() != 0:
        print("FAIL mcu/setup: needs root (a network namespace and a TAP device)")
        print("mcu: 0 passed, 1 failed")
        return 1
    for exe in (args.tetherd,) if args.qemu else (args.bin, args.tetherd):
        if not os.access(exe, os.X_OK):
            print("FAIL mcu/setup: %s not found (make mcu-host; make MODE=sanitize build)" % exe)
            print("mcu: 0 passed, 1 failed")
            return 1
    ns = "ttmcu-%d" % os.getpid()
    made = False
    rc = 1
    try:
        ip("netns", "add", ns)
        made = True
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "tuntap", "add", "dev", TAP, "mode", "tap")
        ip("-n", ns, "addr", "add", LINUX_IP, "dev", TAP)
        ip("-n", ns, "link", "set", TAP, "up")
        argv = ["ip", "netns", "exec", ns, sys.executable, os.path.join(HERE, "test_mcu.py"),
                "--bin", os.path.abspath(args.bin), "--tetherd", os.path.abspath(args.tetherd),
                "--tap", TAP]
        for k in args.k:
            argv += ["-k", k]
        if args.qemu:
            argv += ["--qemu", os.path.abspath(args.qemu)]
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            rc = p.wait(RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            print("FAIL mcu/hang-guard: the run was still going after %d s" % RUN_TIMEOUT)
            print("mcu: 0 passed, 1 failed")
            rc = 1
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        err = getattr(e, "stderr", b"") or b""
        print("FAIL mcu/setup: %s: %s" % (" ".join(e.cmd), err.decode("utf-8", "replace").strip()))
        print("mcu: 0 passed, 1 failed")
        rc = 1
    finally:
        if made:
            # Whatever the tests started in the namespace and left running (ours, by PID).
            for pid in netns_pids(ns):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 10
            while netns_pids(ns) and time.monotonic() < deadline:
                time.sleep(0.1)
            ip("netns", "del", ns, check=False)
    return rc


if __name__ == "__main__":
    sys.exit(main())
