#!/usr/bin/env python3
"""run.py - runs the end-to-end tests: every test_* function of every tests/e2e/test_*.py, each
in its own process group with a hang guard, so that a stuck test is killed together with every
process it started. Prints "PASS name" or "FAIL name: reason" per test (details indented below
a failure) and a closing "e2e: N passed, M failed". Exits 1 if any test failed.

Usage: tests/e2e/run.py [-k SUBSTRING]... [-x SUBSTRING]... [--list] [--timeout SECONDS] [--keep]
Environment: TETHERD, TETHER (default build/sanitize/bin/...), E2E_TIMEOUT (default 90 s).
"""

import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def discover():
    """[(test name, module name, function name)] in file order, then definition order."""
    tests = []
    for fn in sorted(os.listdir(HERE)):
        if not (fn.startswith("test_") and fn.endswith(".py")):
            continue
        modname = fn[:-3]
        mod = importlib.import_module(modname)
        for name, obj in vars(mod).items():
            if name.startswith("test_") and callable(obj) and getattr(obj, "__module__", "") == modname:
                tests.append(("%s/%s" % (modname[5:], name[5:]), modname, name))
    return tests


def child(modname, funcname, result_path, timeout, keep):
    """Runs one test in this process and writes {"ok", "reason", "details"} to result_path."""
    import lib

    env = lib.Env(funcname[5:])
    result = {"ok": True, "reason": "", "details": ""}

    def on_alarm(signum, frame):
        raise lib.TestFailure("hang guard: the test was still running after %ds" % timeout)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(timeout)
    try:
        func = getattr(importlib.import_module(modname), funcname)
        func(env)
    except lib.TestFailure as e:
        msg = str(e).split("\n")
        where = traceback.extract_tb(e.__traceback__)
        where = [f for f in where if os.path.basename(f.filename).startswith("test_")] or where
        result = {"ok": False, "reason": msg[0],
                  "details": "\n".join(msg[1:] + ["at %s:%d" % (os.path.basename(where[-1].filename),
                                                                 where[-1].lineno)])}
    except BaseException as e:  # an unexpected error is a failure too, with its traceback
        result = {"ok": False, "reason": "%s: %s" % (type(e).__name__, e),
                  "details": traceback.format_exc()}
    if not result["ok"]:
        result["details"] = "\n".join(x for x in (result["details"], env.diagnostics()) if x)
    signal.alarm(0)
    try:
        signal.alarm(30)
        problems = env.cleanup()
        signal.alarm(0)
    except BaseException as e:
        problems = ["cleanup failed: %r" % e]
    if problems:
        if result["ok"]:
            result = {"ok": False, "reason": problems[0].split("\n")[0],
                      "details": "\n".join(problems)}
        else:
            result["details"] += "\n" + "\n".join(problems)
    if keep:
        result["details"] += "\nkept: %s" % env.dir
    else:
        env.remove()
    with open(result_path, "w") as f:
        json.dump(result, f)


def run_one(name, modname, funcname, timeout, keep):
    """Runs one test in a child process group; returns (ok, reason, details)."""
    fd, res = tempfile.mkstemp(prefix="tether-e2e-result-")
    os.close(fd)
    out = tempfile.TemporaryFile()
    argv = [sys.executable, os.path.abspath(__file__), "--child", modname, funcname, res,
            str(timeout)] + (["--keep"] if keep else [])
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                         start_new_session=True)
    try:
        p.wait(timeout + 45)
        hung = False
    except subprocess.TimeoutExpired:
        hung = True
    except KeyboardInterrupt:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        raise
    if hung:
        # The child leads its own process group, which holds every process the test started.
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    else:
        try:  # anything the test started and left behind
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    out.seek(0)
    output = out.read().decode("utf-8", "replace").strip()
    out.close()
    try:
        with open(res) as f:
            r = json.load(f)
    except (OSError, ValueError):
        r = None
    os.unlink(res)
    if hung:
        return False, "hang guard: killed after %ds with everything it started" % (timeout + 45), output
    if r is None:
        return False, "the test process died (status %s) without a result" % p.returncode, output
    details = r["details"]
    if output and not r["ok"]:
        details = output + "\n" + details
    return r["ok"], r["reason"], details


def main():
    ap = argparse.ArgumentParser(description="Tether end-to-end tests")
    ap.add_argument("-k", action="append", default=[], help="run tests whose name contains this")
    ap.add_argument("-x", action="append", default=[], help="skip tests whose name contains this")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--timeout", type=int, default=int(os.environ.get("E2E_TIMEOUT", "90")))
    ap.add_argument("--keep", action="store_true", help="keep each test's temp dir")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        modname, funcname, res, timeout = args.child
        child(modname, funcname, res, int(timeout), args.keep)
        return 0

    tests = discover()
    if args.k:
        tests = [t for t in tests if any(k in t[0] for k in args.k)]
    if args.x:
        tests = [t for t in tests if not any(x in t[0] for x in args.x)]
    if args.list:
        for t in tests:
            print(t[0])
        return 0

    import lib
    for exe in (lib.TETHERD, lib.TETHER):
        if not os.access(exe, os.X_OK):
            print("FAIL binaries: %s not found or not executable (make MODE=sanitize build)" % exe)
            print("e2e: 0 passed, 1 failed")
            return 1

    print("e2e: %d tests, tetherd=%s tether=%s" % (len(tests), lib.TETHERD, lib.TETHER))
    sys.stdout.flush()
    passed = failed = 0
    t0 = time.monotonic()
    for name, modname, funcname in tests:
        start = time.monotonic()
        ok, reason, details = run_one(name, modname, funcname, args.timeout, args.keep)
        took = time.monotonic() - start
        if ok:
            passed += 1
            print("PASS %s (%.1fs)" % (name, took))
        else:
            failed += 1
            print("FAIL %s: %s" % (name, reason))
            for line in details.splitlines():
                print("    " + line)
        sys.stdout.flush()
    print("e2e: %d passed, %d failed (%.0fs)" % (passed, failed, time.monotonic() - t0))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
