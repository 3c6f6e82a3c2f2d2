"""test_async_registry.py - the registry's Redis calls do not hold the relay's loop
(docs/DESIGN.md "The registry is asynchronous"), against a real redis-server started here:

- Redis stopped with SIGSTOP (the PID of the redis-server this test started) for about 3 s:
  requests to a device the node already holds keep being answered while it sleeps, and a device
  that registers meanwhile is not refused: its registration waits for Redis and gets its WELCOME
  once Redis runs again (SIGCONT).
- Redis behind a slowing proxy of ours (bench/redis_slow.py: a few ms per reply): many devices
  register at once over raw connections and every one gets a label of its own.
- Devices that close while their registration waits for Redis (the cancellation rule): the
  relay goes on, the devices that stayed get their WELCOME, the ones that left are not online,
  and the sanitizer build reports nothing at exit.
- The cap on commands in flight (--redis-max-pending) during a storm while Redis is stopped:
  new handshakes get 503 with Retry-After past 75 % of it, counted; the ones under way are
  welcomed after SIGCONT.

Behaviour only, never speed: every wait is bounded, and nothing asserts a duration."""

import http.client
import json
import os
import signal
import socket
import sys
import threading
import time

from lib import RedisServer, Relay, check, eq, free_port, wait_for
from rawdev import WELCOME, RawWs, hello

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from redis_slow import SlowProxy  # noqa: E402


def _node(t, redis_port, name="node-a", extra=()):
    port = free_port()
    url = "ws://127.0.0.1:%d" % port
    return Relay(t, port=port, grace="60s",
                 extra=["--redis", "redis://127.0.0.1:%d" % redis_port, "--node-id", name,
                        "--advertise", url, "--log-level", "debug",
                        "--new-names-per-second", "100000"] + list(extra))


def _devices(node):
    c = http.client.HTTPConnection("127.0.0.1", node.admin_port, timeout=10)
    try:
        c.request("GET", "/api/devices?limit=1000")
        r = c.getresponse()
        body = r.read()
    finally:
        c.close()
    eq(r.status, 200, "GET /api/devices")
    return {d["name"]: d for d in json.loads(body)["devices"]}


def _metrics(node):
    c = http.client.HTTPConnection("127.0.0.1", node.admin_port, timeout=10)
    try:
        c.request("GET", "/metrics")
        return c.getresponse().read().decode()
    finally:
        c.close()


def _raw_register(node, name, timeout=30):
    """A raw device: handshake and HELLO. Returns the RawWs (its HELLO sent)."""
    w = RawWs(node.port, timeout=timeout)
    eq(w.status, 101, "handshake of %s" % name)
    w.send_message(hello(name, node.token))
    return w


def _answer(w, timeout=30):
    """The first Tether frame the relay sends (WELCOME or REFUSE) and its payload."""
    frames, close = w.read_tframes(timeout)
    check(frames, "no answer to the HELLO (close %r)" % (close,))
    return frames[0][0], frames[0][3]


def _welcome_label(payload):
    """The label of a WELCOME payload: version u8, max_streams u16, window u32, label s8."""
    n = payload[7]
    return payload[8:8 + n].decode()


def test_async_registry_redis_stopped(t):
    redis = RedisServer(t)
    node = _node(t, redis.port)
    svc = t.http_service(big_size=1024)
    held = t.agent(node, http=svc.port)
    label = held.label
    eq(node.request("GET", "/whoami", label=label, timeout=10)[0], 200, "before the stop")
    # Redis sleeps; a device registers meanwhile
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        w = _raw_register(node, "dev-during-stop")
        answered = []
        for i in range(6):  # about 3 s
            st = node.request("GET", "/whoami", label=label, timeout=10)[0]
            eq(st, 200, "request to the held device while Redis is stopped (%d)" % i)
            answered.append(st)
            time.sleep(0.5)
        # no answer to the HELLO yet: the registration waits for Redis, it is not refused
        w.sock.settimeout(0.2)
        try:
            early = w.sock.recv(1)
        except socket.timeout:
            early = None
        check(early is None, "the relay answered the HELLO while Redis was stopped: %r" % early)
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    typ, payload = _answer(w, timeout=20)
    eq(typ, WELCOME, "the registration made during the stop, answered after SIGCONT")
    check(_welcome_label(payload), "a label in the WELCOME")
    check("device refused device=dev-during-stop" not in node.proc.stderr_text(),
          "the registration during the stop was refused")
    wait_for(lambda: (_devices(node).get("dev-during-stop") or {}).get("online"), 10,
             "the device registered during the stop online")
    m = _metrics(node)
    check("tether_redis_pending " in m and "tether_redis_reply_seconds_count" in m,
          "the asynchronous connection's metrics in /metrics")
    w.sock.close()


def test_async_registry_slow_redis_many_devices(t):
    redis = RedisServer(t)
    proxy = SlowProxy(redis.port, delay_ms=5)
    t.on_cleanup(proxy.close)
    node = _node(t, proxy.port)
    n = 40
    results = {}

    def one(i):
        name = "slow-%02d" % i
        try:
            w = _raw_register(node, name, timeout=60)
            typ, payload = _answer(w, timeout=60)
            results[name] = (typ, _welcome_label(payload) if typ == WELCOME else payload)
            w.sock.close()
        except Exception as e:  # noqa: BLE001 - reported below
            results[name] = ("error", repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(90)
    eq(len(results), n, "answers")
    bad = {k: v for k, v in results.items() if v[0] != WELCOME}
    check(not bad, "registrations not welcomed through the slow Redis: %r" % bad)
    labels = [v[1] for v in results.values()]
    eq(len(set(labels)), n, "distinct labels")
    check(node.proc.alive(), "the relay died")


def test_async_registry_device_closes_mid_registration(t):
    redis = RedisServer(t)
    # each reply chunk 40 ms late (one at a time per connection): the devices below leave
    # during their lookup, their write, or after it
    proxy = SlowProxy(redis.port, delay_ms=40)
    t.on_cleanup(proxy.close)
    node = _node(t, proxy.port)
    # wait for the relay's connections through the proxy to be up
    wait_for(lambda: "tether_redis_async_up 1" in _metrics(node), 20, "async connection up")
    stay = []
    for i in range(4):
        stay.append(_raw_register(node, "stays-%d" % i))
    # devices that leave at different moments of their registration (lookup, write, sync)
    for i, after in enumerate((0.0, 0.03, 0.06, 0.1, 0.15, 0.3)):
        w = _raw_register(node, "leaves-%d" % i)
        time.sleep(after)
        w.sock.close()
    # and some while Redis sleeps altogether
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        for i in range(4):
            w = _raw_register(node, "leaves-stopped-%d" % i)
            w.sock.close()
        time.sleep(0.5)
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    for i, w in enumerate(stay):
        typ, _ = _answer(w, timeout=30)
        eq(typ, WELCOME, "device stays-%d welcomed" % i)
    # the ones that left are not online (their record, if written, is offline again)
    def settled():
        d = _devices(node)
        return all(not (d.get(k) or {}).get("online") for k in d if k.startswith("leaves"))
    wait_for(settled, 20, "the devices that left offline")
    for w in stay:
        w.sock.close()
    check(node.proc.alive(), "the relay died")
    node.stop()
    rep = node.proc.sanitizer_report()
    check(not rep, "sanitizer report at exit: %s" % rep)


def test_async_registry_pending_cap_admission(t):
    """A storm while Redis stalls: at most --redis-max-pending commands wait; past 75 % of it
    new device handshakes get the busy answer (503 with Retry-After), counted; the ones under
    way are welcomed once Redis answers."""
    redis = RedisServer(t)
    node = _node(t, redis.port, extra=["--redis-max-pending", "16"])
    wait_for(lambda: "tether_redis_async_up 1" in _metrics(node), 20, "async connection up")
    redis.proc.send_signal(signal.SIGSTOP)
    under_way, busy = [], []
    try:
        for i in range(30):
            w = RawWs(node.port, timeout=10)
            if w.status == 503:
                busy.append(w.headers.get("retry-after"))
                w.sock.close()
                continue
            eq(w.status, 101, "handshake %d" % i)
            w.send_message(hello("storm-%02d" % i, node.token))
            under_way.append(w)
            time.sleep(0.05)  # its lookup is queued before the next handshake
        m = _metrics(node)
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    check(busy, "no handshake answered 503 while %d registrations waited" % len(under_way))
    check(all(b and b.isdigit() for b in busy), "Retry-After on every 503: %r" % busy)
    pend = [int(x.split()[1]) for x in m.splitlines() if x.startswith("tether_redis_pending ")]
    check(pend and pend[0] <= 16, "commands in flight within the cap: %r" % pend)
    check(len(under_way) <= 16, "registrations under way within the cap: %d" % len(under_way))
    check('tether_registrations_refused_total{reason="busy"}' in m, "busy refusals counted")
    for i, w in enumerate(under_way):
        typ, _ = _answer(w, timeout=20)
        eq(typ, WELCOME, "registration %d under way at the cap, after SIGCONT" % i)
        w.sock.close()


def test_async_registry_redis_max_pending_flag(t):
    # the flag's bounds: refused outside them, like every limit flag
    import subprocess
    from lib import TETHERD
    for bad in ("0", "15", "1000001", "x"):
        p = subprocess.run([TETHERD, "--redis-max-pending", bad], capture_output=True, timeout=20)
        eq(p.returncode, 2, "exit status for --redis-max-pending %s" % bad)
        check(b"--redis-max-pending" in p.stderr, "the flag named in the error")
    p = subprocess.run([TETHERD, "--help"], capture_output=True, timeout=20)
    check(b"--redis-max-pending N" in p.stdout + p.stderr, "--help lists --redis-max-pending")
