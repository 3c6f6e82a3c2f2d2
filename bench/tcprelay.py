"""tcprelay.py - a TCP relay on loopback for benchmarks and tests: it listens on 127.0.0.1, dials
127.0.0.1:UPSTREAM for each client and copies bytes both ways, one thread per direction, until
either side ends (then both sockets are shut down). Subclasses shape the traffic through two
hooks; bench/redis_slow.py (a Redis that answers late) and tests/e2e/test_sentinel.py (a
replication link that can be held) are built on it. Python 3 standard library only.

    relay = TcpRelay(upstream_port)      # .port: where it listens; .close() ends everything
"""

import socket
import threading


class TcpRelay:
    """Listens on 127.0.0.1:port (0: a free one) and relays each connection to
    127.0.0.1:upstream_port. A client whose upstream cannot be dialled (within connect_timeout
    seconds) is closed. nodelay: TCP_NODELAY on both sockets."""

    def __init__(self, upstream_port, port=0, backlog=128, connect_timeout=10.0, nodelay=True):
        self.upstream_port = upstream_port
        self.connect_timeout = connect_timeout
        self.nodelay = nodelay
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port))
        self.lsock.listen(backlog)
        self.port = self.lsock.getsockname()[1]
        self.closed = False
        self.socks = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    # Hooks. down is True for the upstream-to-client direction.
    def admit(self, client):
        """Called with each accepted client before the upstream is dialled; False: not relayed
        (the hook has answered or closed it)."""
        return True

    def before_recv(self, down):
        """Called before each read of a direction (may wait)."""

    def forward(self, data, down):
        """Called with each chunk read; False drops it and ends the connection."""
        return True

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            if not self.admit(c):
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.upstream_port),
                                             timeout=self.connect_timeout)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            if self.nodelay:
                for s in (c, u):
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.socks += [c, u]
            threading.Thread(target=self._pipe, args=(c, u, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c, True), daemon=True).start()

    def _pipe(self, src, dst, down):
        try:
            while True:
                self.before_recv(down)
                b = src.recv(65536)
                if not b or not self.forward(b, down):
                    break
                dst.sendall(b)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        """Cuts every connection relayed (or held) so far, both sides; the listener stays."""
        with self.lock:
            socks, self.socks = self.socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

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
