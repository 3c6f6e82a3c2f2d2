"""benchnet.py - loopback port and HTTP helpers shared by the benchmark scripts (admin_walk.py,
admission.py, async_registry.py, cluster.py, memory_churn.py, tickets_stall.py). Python 3
standard library only."""

import http.client
import socket
import time


def free_port():
    """A TCP port free on 127.0.0.1 now (bound to port 0, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    """Returns once 127.0.0.1:port accepts a connection; exits the script after timeout s."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("port %d never opened" % port)


def get(port, path, timeout=30):
    """GET path from 127.0.0.1:port on a connection of its own: (status, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()
