#!/usr/bin/env python3
"""redis_slow.py - a TCP proxy in front of Redis that slows it down: every chunk of replies from
Redis is held DELAY milliseconds before it goes to the client, one after the other per
connection (so a connection gets at most one reply chunk per DELAY: a Redis a few milliseconds
away, or slow under a storm). Requests go to Redis at once. Python 3 standard library only; used
by bench/async_registry.py and tests/e2e/test_async_registry.py.

    python3 bench/redis_slow.py LISTEN_PORT REDIS_PORT [DELAY_MS]

As a module: SlowProxy(redis_port, delay_ms, port=0).port, .delay_ms (may be changed while it
runs), .close().
"""

import socket
import sys
import threading
import time


class SlowProxy:
    """Listens on 127.0.0.1:port (0: a free one) and proxies to 127.0.0.1:redis_port."""

    def __init__(self, redis_port, delay_ms=5.0, port=0):
        self.redis_port = redis_port
        self.delay_ms = float(delay_ms)
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.closed = False
        self.socks = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.redis_port), timeout=10)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            for s in (c, u):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.socks += [c, u]
            threading.Thread(target=self._pipe, args=(c, u, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c, True), daemon=True).start()

    def _pipe(self, src, dst, slow):
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                if slow and self.delay_ms > 0:
                    time.sleep(self.delay_ms / 1000.0)
                dst.sendall(b)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.closed = True
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            for s in self.socks:
                try:
                    s.close()
                except OSError:
                    pass
            self.socks = []


def main():
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    p = SlowProxy(int(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 5.0,
                  port=int(sys.argv[1]))
    print("redis_slow: 127.0.0.1:%d -> 127.0.0.1:%d, %.1f ms per reply" %
          (p.port, p.redis_port, p.delay_ms), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        p.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
