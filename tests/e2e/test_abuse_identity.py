"""test_abuse_identity.py - one fleet token must not let a device become another (issue 9, item
6): with the fleet token, an agent under camera-1's name (its own, empty state dir) is refused
and camera-1 keeps its label and its users' cookies and Authorization headers; camera-1 itself,
restarted with its state dir, takes over its half-open session; a device offline past --grace
keeps its name; DELETE frees the name for a new device; the fleet token holds at most
--max-ports-per-token ports; 4,000 wrong-token guesses from one address are throttled while a
device from another address registers; in a cluster the keys and counts are Redis's.

Each attack runs against the real programs. The baseline binaries (TETHERD/TETHER of the code
before device keys) fail the attack tests: they give the name to the attacker, hand the fleet
token every port, and check (and log) every guess."""

import json
import os
import re
import signal
import socket
import struct
import threading
import time
import http.client

from lib import (TETHER, RedisServer, Relay, TestFailure, check, eq, free_port,
                 free_port_range, port_open, wait_for, ws_accept)
from rawdev import REFUSE, WELCOME, hello, parse_tframes, ws_frame

SECRET_HEADERS = {"Cookie": "session=users-secret-session", "Authorization": "Bearer users-token"}


def _headers_seen(relay, label):
    """GET /headers on label with the users' secrets; returns (status, {lowercase header: value}
    as the device's service saw them)."""
    st, _, body = relay.request("GET", "/headers", label=label, headers=SECRET_HEADERS,
                                timeout=10)
    if st != 200:
        return st, {}
    seen = json.loads(body)
    return st, {k.lower(): v for k, v in seen.get("headers", [])}


def _error_lines(agent):
    return [l for l in agent.proc.lines if '"error"' in l]


def _admin(relay, method, path):
    c = http.client.HTTPConnection("127.0.0.1", relay.admin_port, timeout=10)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def test_fleet_token_cannot_take_another_devices_name(t):
    relay = t.relay()
    camera_svc = t.http_service(big_size=1024, ident="camera")
    camera = t.agent(relay, name="camera-1", http=camera_svc.port)
    label = camera.label
    attacker_svc = t.http_service(big_size=1024, ident="attacker")
    # The attack: the fleet token, camera-1's name, an agent that never had camera-1's key.
    attacker = t.agent(relay, name="camera-1", http=attacker_svc.port, json_mode=True,
                       wait=False, state_dir=t.mkdtemp("attacker-state"))
    # While the attacker tries (and retries with back-off), the camera's users keep browsing.
    deadline = time.monotonic() + 8
    answers, delivered = [], 0
    while time.monotonic() < deadline and len(answers) < 40:
        st, seen = _headers_seen(relay, label)
        answers.append(st)
        if (st == 200 and seen.get("cookie") == SECRET_HEADERS["Cookie"] and
                seen.get("authorization") == SECRET_HEADERS["Authorization"]):
            delivered += 1
        time.sleep(0.1)
    eq(attacker_svc.requests, 0,
       "users' requests (with their Cookie and Authorization) that reached the attacker's service"
       " (of %d sent)" % len(answers))
    eq(delivered, len(answers), "requests that reached camera-1 with their secrets (answers %r)"
       % answers)
    check(any(l for l in camera.proc.lines if l.startswith("ready ")), "camera-1 never ready")
    eq(len([l for l in camera.proc.lines if l.startswith("ready ")]), 1,
       "ready lines of camera-1 (a takeover makes it register again): %r" % camera.proc.lines)
    check(not any('"ready"' in l for l in attacker.proc.lines),
          "the attacker registered as camera-1: %r" % attacker.proc.lines)
    errors = _error_lines(attacker)
    check(errors, "the attacker's agent reported no error event")
    msg = json.loads(errors[0])["message"]
    check("device key" in msg and "camera-1" in msg,
          "the refusal does not name the reason (the device key): %r" % msg)


def test_restarted_agent_takes_over_its_half_open_session(t):
    relay = t.relay()
    svc_old = t.http_service(big_size=1024, ident="before-restart")
    svc_new = t.http_service(big_size=1024, ident="after-restart")
    state = t.mkdtemp("camera-state")
    a = t.agent(relay, name="camera-2", http=svc_old.port, state_dir=state)
    check(os.path.exists(os.path.join(state, "camera-2.key")), "no key file in the state dir")
    if not TETHER.endswith("tether-wine"):
        # POSIX modes (under Wine a Windows program's files get Wine's own modes; on Windows the
        # state dir under %LOCALAPPDATA% is the user's own)
        eq(os.stat(os.path.join(state, "camera-2.key")).st_mode & 0o777, 0o600, "key file mode")
        eq(os.stat(state).st_mode & 0o777, 0o700, "state dir mode")
    # The old agent freezes with its connection open: a half-open leftover.
    a.proc.send_signal(signal.SIGSTOP)
    try:
        b = t.agent(relay, name="camera-2", http=svc_new.port, state_dir=state)
        eq(b.label, a.label, "label after the restart")
        wait_for(lambda: relay.request("GET", "/whoami", label=b.label, timeout=10)[2] ==
                 b"after-restart", 30, "requests to reach the restarted agent")
    finally:
        a.proc.send_signal(signal.SIGKILL)
        a.proc.stopped = True


def test_device_offline_past_grace_keeps_its_name(t):
    relay = t.relay(grace="2s")
    svc = t.http_service(big_size=1024, ident="camera")
    state = t.mkdtemp("camera-state")
    camera = t.agent(relay, name="camera-3", http=svc.port, state_dir=state)
    old = camera.label
    camera.stop()
    wait_for(lambda: relay.request("GET", "/", label=old, timeout=10)[0] == 404, 30,
             "camera-3's label to expire", interval=0.25)
    attacker_svc = t.http_service(big_size=1024, ident="attacker")
    attacker = t.agent(relay, name="camera-3", http=attacker_svc.port, json_mode=True,
                       wait=False, state_dir=t.mkdtemp("attacker-state"))
    attacker.proc.wait_line(lambda l: '"error"' in l or '"ready"' in l, 30, 0,
                            "the attacker's first answer")
    check(not any('"ready"' in l for l in attacker.proc.lines),
          "the attacker got camera-3's name after its grace period: %r" % attacker.proc.lines)
    attacker.stop()
    back = t.agent(relay, name="camera-3", http=svc.port, state_dir=state)
    check(back.label and back.label != old, "camera-3 back with label %r" % back.label)
    eq(relay.request("GET", "/whoami", label=back.label)[2], b"camera", "camera-3's answer")
    eq(attacker_svc.requests, 0, "requests that reached the attacker's service")


def test_delete_frees_the_name_for_a_new_device(t):
    relay = t.relay()
    svc = t.http_service(big_size=1024, ident="old-device")
    old_state = t.mkdtemp("old-state")
    old = t.agent(relay, name="camera-4", http=svc.port, state_dir=old_state)
    old.stop()
    new_svc = t.http_service(big_size=1024, ident="new-device")
    new_state = t.mkdtemp("new-state")
    refused = t.agent(relay, name="camera-4", http=new_svc.port, json_mode=True, wait=False,
                      state_dir=new_state)
    refused.proc.wait_line(lambda l: '"error"' in l, 30, 0, "the new device refused")
    refused.stop()
    st, body = _admin(relay, "DELETE", "/api/devices/camera-4")
    eq(st, 200, "DELETE /api/devices/camera-4 (%r)" % body)
    new = t.agent(relay, name="camera-4", http=new_svc.port, state_dir=new_state)
    eq(relay.request("GET", "/whoami", label=new.label)[2], b"new-device", "the new device")
    # The name is the new device's now: the old one (with its old key) is refused.
    again = t.agent(relay, name="camera-4", http=svc.port, json_mode=True, wait=False,
                    state_dir=old_state)
    again.proc.wait_line(lambda l: '"error"' in l, 30, 0, "the old device refused")
    check("device key" in json.loads(_error_lines(again)[0])["message"],
          "the old device's refusal does not name the key: %r" % again.proc.lines)
    # A name known only by its key (its record expired) is freed by DELETE too; an unknown
    # name is still 404.
    eq(_admin(relay, "DELETE", "/api/devices/no-such-device")[0], 404, "DELETE of an unknown name")


def test_fleet_token_rotation_keeps_keyed_devices(t):
    data = t.mkdtemp("data")
    port, admin = free_port(), free_port()
    relay = Relay(t, token="fleet-token-one", data_dir=data, port=port, admin_port=admin)
    svc = t.http_service(big_size=1024, ident="camera")
    state = t.mkdtemp("camera-state")
    camera = t.agent(relay, name="camera-6", http=svc.port, state_dir=state)
    label = camera.label
    camera.stop()
    relay.stop()
    # A new fleet token: the camera, with its key and the old token, is still itself...
    relay = Relay(t, token="fleet-token-two", data_dir=data, port=port, admin_port=admin)
    back = t.agent(relay, name="camera-6", http=svc.port, state_dir=state,
                   token="fleet-token-one")
    eq(back.label, label, "camera-6's label after the rotation")
    # ... a new name needs the new token, and a wrong token is refused even with the key.
    old = t.agent(relay, name="camera-7", http=svc.port, token="fleet-token-one",
                  json_mode=True, wait=False)
    old.proc.wait_line(lambda l: '"error"' in l, 30, 0, "a new name with the old token refused")
    old.stop()
    t.agent(relay, name="camera-7", http=svc.port, token="fleet-token-two")
    back.stop()
    wrong = t.agent(relay, name="camera-6", http=svc.port, state_dir=state, token="guess",
                    json_mode=True, wait=False)
    wrong.proc.wait_line(lambda l: '"error"' in l, 30, 0, "the key with a wrong token refused")
    check(not any('"ready"' in l for l in wrong.proc.lines), "registered with a wrong token")


# ---------------------------------------------------------------- raw registrations

def _raw_register(port, name, token, services, source="127.0.0.1", version=2, timeout=20,
                  path="/"):
    """One device connection from source: handshake, HELLO, the answer. Returns (type, code,
    reason, sock) with the socket left open after a WELCOME (the device stays online), closed
    after a REFUSE. A relay that does not speak version 2 (the baseline) gets version 1. In a
    cluster, path "/?tether-redirected=1" keeps the node from redirecting the handshake."""
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: tether.v1\r\n\r\n" % (path, port, key)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(4096)
        if not b:
            s.close()
            raise TestFailure("the relay closed during the handshake")
        buf += b
    head, _, rest = buf.partition(b"\r\n\r\n")
    if b" 101 " not in head.split(b"\r\n")[0] or ws_accept(key).encode() not in head:
        s.close()
        raise TestFailure("no 101 for the device handshake: %r" % head[:200])
    s.sendall(ws_frame(0x2, hello(name, token, services, version=version)))
    tbuf = b""
    data = rest
    while True:
        while len(data) >= 2:
            n = data[1] & 0x7F
            off = 2
            if n == 126:
                if len(data) < 4:
                    break
                n, off = struct.unpack(">H", data[2:4])[0], 4
            elif n == 127:
                if len(data) < 10:
                    break
                n, off = struct.unpack(">Q", data[2:10])[0], 10
            if len(data) < off + n:
                break
            op, payload, data = data[0] & 0x0F, data[off:off + n], data[off + n:]
            if op == 0x8:
                s.close()
                raise TestFailure("the relay closed before answering HELLO")
            if op in (0x0, 0x2):
                tbuf += payload
                frames, tbuf = parse_tframes(tbuf)
                if frames:
                    typ, _, _, p = frames[0]
                    if typ == REFUSE:
                        s.close()
                        code = struct.unpack(">H", p[:2])[0]
                        if code == 2 and version == 2:  # a relay of protocol 1 only
                            return _raw_register(port, name, token, services, source, 1,
                                                 timeout, path)
                        return REFUSE, code, p[2:].decode("utf-8", "replace"), None
                    return typ, 0, "", s
        b = s.recv(65536)
        if not b:
            s.close()
            raise TestFailure("EOF before the answer to HELLO")
        data += b


def test_fleet_token_holds_at_most_its_ports(t):
    low, high = free_port_range(64)
    relay = Relay(t, tcp_ports=(low, high))
    held, socks, refusal = 0, [], None
    try:
        # As fast as it can: names with two TCP services each, until the relay says no.
        for i in range(40):
            typ, code, reason, s = _raw_register(relay.port, "squatter-%d" % i, relay.token,
                                                 ((2, "a"), (2, "b")))
            if typ != WELCOME:
                refusal = (code, reason)
                break
            socks.append(s)
            held += 2
        check(held <= 32, "the fleet token got %d of the 64 ports (cap: half of the range)"
              % held)
        check(refusal is not None, "no refusal after %d ports" % held)
        eq(refusal[0], 4, "REFUSE code at the cap (CAPACITY): %r" % (refusal,))
        check("--max-ports-per-token" in refusal[1], "the reason names the cap: %r" % (refusal,))
        # The other half of the range is still free: nothing listens there.
        bound = [p for p in range(low, high + 1) if port_open(p)]
        check(len(bound) <= 32, "%d ports of the range are bound" % len(bound))
        text = _admin(relay, "GET", "/metrics")[1].decode()
        check(re.search(r'^tether_token_refused_total\{cap="ports"\} [1-9]', text, re.M),
              "no ports refusal in /metrics")
        check(re.search(r'^tether_token_ports\{of="held"\} %d$' % held, text, re.M),
              "tether_token_ports held is not %d" % held)
    finally:
        for s in socks:
            s.close()


def test_wrong_token_guesses_are_throttled(t):
    relay = t.relay()
    attempts, lock = {"checked": 0, "throttled": 0, "other": 0, "errors": 0}, threading.Lock()
    stop = time.monotonic() + 60
    budget = [4000]

    def guesser(k):
        while time.monotonic() < stop:
            with lock:
                if budget[0] == 0:
                    return
                budget[0] -= 1
            try:
                typ, code, reason, s = _raw_register(relay.port, "victim", "guess-%d" % k,
                                                     ((1, "http"),), source="127.0.0.2",
                                                     timeout=10)
            except (OSError, TestFailure):
                with lock:
                    attempts["errors"] += 1
                continue
            with lock:
                if typ == REFUSE and "too many failed attempts" in reason:
                    attempts["throttled"] += 1
                elif typ == REFUSE and code == 1:
                    attempts["checked"] += 1
                else:
                    attempts["other"] += 1
            if s:
                s.close()

    started = time.monotonic()
    threads = [threading.Thread(target=guesser, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    # Meanwhile a device from another address (127.0.0.1) registers and serves.
    svc = t.http_service(big_size=1024, ident="legit")
    legit = t.agent(relay, name="legit-device", http=svc.port)
    eq(relay.request("GET", "/whoami", label=legit.label)[2], b"legit", "the legit device")
    for th in threads:
        th.join(90)
    elapsed = time.monotonic() - started
    total = attempts["checked"] + attempts["throttled"] + attempts["other"]
    check(total >= 1000, "only %d guesses were answered (%r)" % (total, attempts))
    eq(attempts["other"], 0, "guesses that were not refused AUTH")
    # 10 at once, then one a second (the bucket), with a little slack for the clock.
    allowed = 10 + int(elapsed) + 2
    check(attempts["checked"] <= allowed,
          "%d of %d guesses were checked in %.1fs (at most %d may be): %r" %
          (attempts["checked"], total, elapsed, allowed, attempts))
    # The log: a line or two for this address, not one per guess.
    time.sleep(0.5)
    lines = [l for l in relay.proc.stderr_text().splitlines()
             if "victim" in l or "127.0.0.2" in l]
    check(len(lines) <= 5, "%d log lines about %d guesses from 127.0.0.2:\n%s" %
          (len(lines), total, "\n".join(lines[:10])))
    text = _admin(relay, "GET", "/metrics")[1].decode()
    m = re.search(r"^tether_auth_throttled_total (\d+)$", text, re.M)
    check(m and int(m.group(1)) == attempts["throttled"],
          "tether_auth_throttled_total %s, the guessers counted %d" %
          (m.group(1) if m else None, attempts["throttled"]))


# ---------------------------------------------------------------- cluster mode

def test_cluster_shares_device_keys_and_caps(t):
    from test_cluster import _free_range_all, _node
    redis = RedisServer(t)
    low, high = _free_range_all(t)  # 8 ports: the fleet token may hold 4 (half)
    a = _node(t, redis, "node-a", "127.0.0.2", (low, high))
    b = _node(t, redis, "node-b", "127.0.0.3", (low, high))
    svc = t.http_service(big_size=1024, ident="camera")
    state = t.mkdtemp("camera-state")
    camera = t.agent(a, name="camera-5", http=svc.port, tcp={"ssh": svc.port}, state_dir=state,
                     server=a.url)
    # The attacker tries the other node: the key is in Redis.
    attacker_svc = t.http_service(big_size=1024, ident="attacker")
    attacker = t.agent(b, name="camera-5", http=attacker_svc.port, json_mode=True, wait=False,
                       state_dir=t.mkdtemp("attacker-state"), server=b.url)
    attacker.proc.wait_line(lambda l: '"error"' in l or '"ready"' in l, 30, 0,
                            "the attacker's first answer")
    check(not any('"ready"' in l for l in attacker.proc.lines),
          "the attacker got camera-5 through the other node: %r" % attacker.proc.lines)
    attacker.stop()
    eq(attacker_svc.requests, 0, "requests that reached the attacker's service")
    # The fleet token's ports are counted across the nodes: camera-5 holds 1 of 4.
    here = "/?tether-redirected=1"
    typ, _, reason, s = _raw_register(b.port, "squatter-1", b.token,
                                      ((2, "x"), (2, "y"), (2, "z")), path=here)
    eq(typ, WELCOME, "3 more ports with the fleet token through node-b, 4 in all (%s)" % reason)
    s.close()
    typ, code, reason, s = _raw_register(a.port, "squatter-2", a.token, ((2, "x"),), path=here)
    eq((typ, code), (REFUSE, 4), "a 5th port with the fleet token through node-a (%s)" % reason)
    check("--max-ports-per-token" in reason, "reason: %r" % reason)
    # camera-5 restarted on the other node with its state dir: the same device.
    camera.stop()
    back = t.agent(b, name="camera-5", http=svc.port, tcp={"ssh": svc.port}, state_dir=state,
                   server=b.url)
    eq(back.label, camera.label, "camera-5's label on the other node")
    # DELETE on either node frees the name for the whole cluster.
    back.stop()
    eq(_admin(a, "DELETE", "/api/devices/camera-5")[0], 200, "DELETE on node-a")
    fresh = t.agent(b, name="camera-5", http=svc.port, state_dir=t.mkdtemp("fresh-state"),
                    server=b.url)
    check(fresh.label, "a new device got the freed name")
