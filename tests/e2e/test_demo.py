"""test_demo.py - `make demo`'s script (scripts/demo.sh) on free ports with the binaries under
test: it prints the device URL, the URL serves the sample page, it prints the dashboard's URL,
which answers, and SIGINT (Ctrl-C) stops everything it started."""

import os
import re
import signal
import subprocess

from lib import ROOT, TETHERD, Proc, check, eq, free_port, port_open, wait_for


def test_demo_script_prints_a_working_url_and_stops_on_ctrl_c(t):
    port, admin = free_port(), free_port()
    env = {"BIN": os.path.dirname(TETHERD), "DEMO_PORT": str(port),
           "DEMO_ADMIN_PORT": str(admin)}
    demo = Proc(t, "demo.sh", [os.path.join(ROOT, "scripts", "demo.sh")], env_vars=env)
    _, line = demo.wait_line(lambda l: "Your device is reachable at" in l, 60, 0,
                             "the 'Your device is reachable at' line")
    m = re.search(r"(http://([a-z0-9]{8,})\.localhost:%d/)" % port, line)
    check(m, "no device URL on port %d in %r" % (port, line))
    url = m.group(1)
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "--max-time", "20", url],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    check(b"Hello from a Tether device" in r.stdout, "the demo URL answered %r %r" %
          (r.stdout[:200], r.stderr[:200]))
    page = [int(x) for x in re.findall(r"served on 127\.0\.0\.1:(\d+)", "\n".join(demo.lines))]
    check(page, "the demo did not say where the sample page is served: %r" % demo.lines)
    dash = re.findall(r"Dashboard: (http://127\.0\.0\.1:%d/)" % admin, "\n".join(demo.lines))
    check(dash, "the demo did not print the dashboard's URL: %r" % demo.lines)
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "--max-time", "20", "-o", "/dev/null",
                        "-w", "%{http_code} %{content_type}", dash[0]],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    check(r.stdout.startswith(b"200 text/html"), "the dashboard answered %r" % r.stdout)
    demo.send_signal(signal.SIGINT)
    eq(demo.stop(signal.SIGINT, timeout=20), 0, "demo.sh exit status after Ctrl-C")
    for p in (port, admin, page[0]):
        wait_for(lambda: not port_open(p), 10, "port %d to be closed after the demo" % p)
    wait_for(lambda: not _agents_of(port), 10, "the demo's agent to exit")


def _agents_of(port):
    """PIDs of processes whose command line names ws://127.0.0.1:port (the demo's agent)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if b"ws://127.0.0.1:%d" % port in cmd:
            found.append(int(pid))
    return found
