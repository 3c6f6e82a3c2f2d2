#!/usr/bin/env python3
"""redis_slow.py - a TCP proxy in front of Redis that slows it down: every chunk of replies from
Redis is held DELAY milliseconds before it goes to the client, one after the other per
connection (so a connection gets at most one reply chunk per DELAY: a Redis a few milliseconds
away, or slow under a storm). Requests go to Redis at once. Python 3 standard library only (on
bench/tcprelay.py); used by bench/async_registry.py and tests/e2e/test_async_registry.py.

    python3 bench/redis_slow.py LISTEN_PORT REDIS_PORT [DELAY_MS]

As a module: SlowProxy(redis_port, delay_ms, port=0).port, .delay_ms (may be changed while it
runs), .close().
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tcprelay import TcpRelay  # noqa: E402


class SlowProxy(TcpRelay):
    """Listens on 127.0.0.1:port (0: a free one) and proxies to 127.0.0.1:redis_port."""

    def __init__(self, redis_port, delay_ms=5.0, port=0):
        self.redis_port = redis_port
        self.delay_ms = float(delay_ms)
        super().__init__(redis_port, port=port)

    def forward(self, data, down):
        if down and self.delay_ms > 0:
            time.sleep(self.delay_ms / 1000.0)
        return True


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
