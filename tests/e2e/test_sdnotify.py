"""test_sdnotify.py - tetherd under systemd's notification protocol (Type=notify, the packaged
tetherd.service): NOTIFY_SOCKET names a unix datagram socket this test listens on, as systemd
does. READY=1 comes once the listener answers; with WATCHDOG_USEC set, WATCHDOG=1 comes
repeatedly (every half of it); SIGHUP (systemctl reload) brings RELOADING=1 then READY=1;
SIGTERM brings STOPPING=1 and a clean exit. Without WATCHDOG_USEC no WATCHDOG=1 is sent. With
stderr named by JOURNAL_STREAM, each log line starts with its syslog priority for journald."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from lib import (TETHERD, TOKEN, Proc, check, eq, free_port, free_port_range, port_open,
                 wait_for)


class NotifySocket:
    """A unix datagram socket in a short temp dir (sun_path holds 108 bytes): what systemd
    listens on for a service's sd_notify messages."""

    def __init__(self, t):
        self.dir = tempfile.mkdtemp(prefix="tt-notify-")
        t.on_cleanup(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        t.on_cleanup(self.sock.close)
        self.got = []  # every assignment received, in order ("READY=1", ...)

    def wait(self, want, timeout):
        """Receives until the assignment want arrives (True) or timeout seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                break
            lines = data.decode("utf-8", "replace").split("\n")
            self.got += [x for x in lines if x]
            if want in lines:
                return True
        return False


def _tetherd(t, notify, watchdog_usec=None):
    port = free_port()
    low, high = free_port_range(4)
    env = {"NOTIFY_SOCKET": notify.path}
    if watchdog_usec:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
    argv = [TETHERD, "--listen", "127.0.0.1:%d" % port, "--tcp-ports", "%d-%d" % (low, high),
            "--tcp-bind", "127.0.0.1", "--data-dir", t.mkdtemp("data"), "--token", TOKEN,
            "--admin-listen", "127.0.0.1:%d" % free_port()]
    return Proc(t, "tetherd", argv, env_vars=env), port


def test_sdnotify_ready_watchdog_reload_stop(t):
    notify = NotifySocket(t)
    relay, port = _tetherd(t, notify, watchdog_usec=400000)
    check(notify.wait("READY=1", 30), "no READY=1 from tetherd; got %r; stderr: %s" %
          (notify.got, relay.stderr_tail(10)))
    check(port_open(port), "READY=1 came before the listener answers on port %d" % port)
    check(any(x.startswith("STATUS=") for x in notify.got), "no STATUS= with READY=1: %r" %
          notify.got)
    for i in range(3):
        check(notify.wait("WATCHDOG=1", 10), "WATCHDOG=1 number %d did not come within 10 s "
              "(WATCHDOG_USEC=400000); got %r" % (i + 1, notify.got))
    notify.got = []
    relay.send_signal(signal.SIGHUP)
    check(notify.wait("RELOADING=1", 10), "no RELOADING=1 after SIGHUP: %r" % notify.got)
    check(notify.wait("READY=1", 10), "no READY=1 after the reload: %r" % notify.got)
    check(relay.alive() and port_open(port), "tetherd stopped serving after SIGHUP")
    relay.send_signal(signal.SIGTERM)
    check(notify.wait("STOPPING=1", 10), "no STOPPING=1 after SIGTERM: %r" % notify.got)
    eq(relay.stop(signal.SIGTERM, timeout=20), 0, "tetherd exit status after SIGTERM")


def test_sdnotify_no_watchdog_unless_asked(t):
    notify = NotifySocket(t)
    relay, _ = _tetherd(t, notify)
    check(notify.wait("READY=1", 30), "no READY=1 from tetherd; got %r; stderr: %s" %
          (notify.got, relay.stderr_tail(10)))
    notify.wait("WATCHDOG=1", 1.5)
    check("WATCHDOG=1" not in notify.got, "WATCHDOG=1 without WATCHDOG_USEC: %r" % notify.got)
    eq(relay.stop(signal.SIGTERM, timeout=20), 0, "tetherd exit status after SIGTERM")


def test_sdnotify_journal_priority_prefix(t):
    """stderr named by JOURNAL_STREAM (as systemd sets it for a unit's output to the journal):
    each line starts with its syslog priority, "<6>" for INFO, which journald strips."""
    path = t.path("journal-stderr")
    with open(path, "wb") as err:
        st = os.fstat(err.fileno())
        env = {k: v for k, v in os.environ.items()}
        env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        port = free_port()
        low, high = free_port_range(4)
        p = subprocess.Popen([TETHERD, "--listen", "127.0.0.1:%d" % port, "--tcp-ports",
                              "%d-%d" % (low, high), "--tcp-bind", "127.0.0.1", "--data-dir",
                              t.mkdtemp("data"), "--token", TOKEN, "--admin-listen",
                              "127.0.0.1:%d" % free_port()],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                             env=env)
        t.on_cleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        wait_for(lambda: port_open(port) or p.poll() is not None, 30, "tetherd to listen")
        check(p.poll() is None, "tetherd exited at start")
        p.send_signal(signal.SIGTERM)
        eq(p.wait(20), 0, "tetherd exit status after SIGTERM")
    with open(path, "rb") as f:
        lines = f.read().decode("utf-8", "replace").splitlines()
    check(lines, "tetherd wrote nothing on stderr")
    for line in lines:
        check(re.match(r"^<[3467]>\d{4}-\d\d-\d\dT", line), "a line without its syslog "
              "priority prefix under JOURNAL_STREAM: %r" % line)
    check(any(x.startswith("<6>") and " INFO " in x for x in lines), "no <6> INFO line: %r" %
          lines[:5])
