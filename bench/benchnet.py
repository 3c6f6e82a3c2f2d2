"""benchnet.py - loopback port helpers shared by the benchmark scripts (admission.py,
async_registry.py, memory_churn.py, tickets_stall.py). Python 3 standard library only."""

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
