"""test_private_access.py - the relay decides who may reach a device (SPEC "Who may reach a
device"), with real processes: with --access private a TCP service gets no public port at all
(nothing listening in the whole --tcp-ports range, nothing in the registry), the agent prints
"ready tcp NAME private -> TARGET" (JSON "private":true without host or port), the admin API and
the dashboard say which services are private, a --public pattern keeps a service public, a relay
restarted from public to private releases the port; --tcp-allow refuses other networks (closed
at once, counted, audited); the audit log's connection lines for browsers and TCP clients, field
by field, reopened on SIGHUP after a rename; the fail2ban filter of the operator's guide against
a log made here; and a cluster in which a private TCP service gets no port on any node."""

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request

from lib import (Agent, RedisServer, Relay, check, eq, free_port, recv_all, resp_command,
                 wait_for, TestFailure)

HERE = os.path.dirname(os.path.abspath(__file__))
GUIDE = os.path.join(HERE, "..", "..", "docs", "operators-guide.md")
PRIVATE = ["--access", "private", "--public", "*/http"]
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# ---------------------------------------------------------------- helpers

def _audit_lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def _wait_audit(path, pred, what, timeout=20):
    """The first line of the audit log at path for which pred holds (waits for it)."""
    found = []

    def look():
        for v in _audit_lines(path):
            if pred(v):
                found.append(v)
                return True
        return False
    try:
        wait_for(look, timeout, what)
    except TestFailure:
        raise TestFailure("%s; the audit log holds: %r" % (what, _audit_lines(path)[-10:]))
    return found[0]


def _check_line(v, **want):
    """Checks an audit connection line: the exact set of fields SPEC lists, their types, and the
    values in want."""
    keys = ["time", "event", "device", "service", "kind", "user", "client", "bytes_in",
            "bytes_out", "duration_ms", "outcome"]
    eq(list(v.keys()), keys, "the fields of an audit connection line, in order")
    check(TIME_RE.match(v["time"]), "audit time %r is not ISO-8601 UTC" % v["time"])
    eq(v["event"], "connection", "audit event")
    for k in ("bytes_in", "bytes_out", "duration_ms"):
        check(isinstance(v[k], int) and v[k] >= 0, "audit %s is %r" % (k, v[k]))
    for k, w in want.items():
        eq(v[k], w, "audit field %s" % k)


def _ready_lines(agent, n, start=0):
    """The next n ready lines of an agent in text mode (any form)."""
    lines = []
    i = start
    for _ in range(n):
        i, line = agent.proc.wait_line(lambda l: l.startswith("ready "), 30, i, "a 'ready' line")
        lines.append(line)
        i += 1
    return lines, i


def _json_ready(agent, start=0):
    i, line = agent.proc.wait_line(lambda l: l.startswith('{"event":"ready"'), 30, start,
                                   "a ready event")
    return json.loads(line), i + 1


def _listening(ports, host="127.0.0.1"):
    """The ports of ports that accept a TCP connection on host."""
    out = []
    for p in ports:
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect((host, p))
            out.append(p)
        except OSError:
            pass
        finally:
            s.close()
    return out


def _registry_ports(data_dir):
    c = sqlite3.connect("file:%s?mode=ro" % os.path.join(data_dir, "registry.db"), uri=True)
    try:
        return list(c.execute("SELECT name, service, port FROM ports"))
    finally:
        c.close()


def _admin(relay_or_port, path):
    port = relay_or_port if isinstance(relay_or_port, int) else relay_or_port.admin_port
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=30) as r:
        return r.read()


def _device_json(admin_port, name):
    return json.loads(_admin(admin_port, "/api/devices/" + name))


def _metric(admin_port, name):
    text = _admin(admin_port, "/metrics").decode()
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    check(m, "no %s in /metrics" % name)
    return int(m.group(1))


def _http_get(port, host, path="/small?i=1"):
    """One request on a fresh connection (Connection: close), read to the end. Returns the
    client's own port, the request bytes and the response bytes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        cport = s.getsockname()[1]
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, host)).encode()
        s.sendall(req)
        resp = recv_all(s)
    finally:
        s.close()
    check(resp.startswith(b"HTTP/1.1 200"), "GET %s: %r" % (path, resp[:200]))
    return cport, req, resp


def _tcp_echo_from(src, host, port, data=b"hello tether\n"):
    """Connects from address src to host:port, sends data, half-closes and reads to EOF.
    Returns (client port, what came back); b"" when the relay closed it at once."""
    s = socket.socket()
    s.settimeout(30)
    try:
        s.bind((src, 0))
        s.connect((host, port))
        cport = s.getsockname()[1]
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            got = recv_all(s)
        except OSError:  # reset, broken pipe, or not connected any more: closed at once
            got = b""
        return cport, got
    finally:
        s.close()


def _service(ev, name):
    for s in ev["services"]:
        if s.get("name") == name:
            return s
    raise TestFailure("no service %r in %r" % (name, ev))


# ---------------------------------------------------------------- one relay

def test_private_tcp_has_no_port_http_public_admin_dashboard_audit(t):
    audit = t.path("audit.log")
    relay = Relay(t, extra=PRIVATE + ["--audit-log", audit])
    web = t.http_service()
    echo = t.tcp_echo()
    a = Agent(t, relay, http=web.port, tcp={"ssh": echo.port}, wait=False)
    lines, _ = _ready_lines(a, 2)
    check(re.match(r"^ready http http://[a-z0-9]+\.localhost:%d -> 127\.0\.0\.1:%d$" %
                   (relay.port, web.port), lines[0]), "the http line is unchanged: %r" % lines[0])
    eq(lines[1], "ready tcp ssh private -> 127.0.0.1:%d" % echo.port, "the private tcp line")
    label = re.match(r"^ready http http://([a-z0-9]+)\.", lines[0]).group(1)
    # lib's Agent reads the private line too (for the tests of tether connect)
    c = Agent(t, relay, tcp={"ssh": echo.port})
    eq(c.services["ssh"]["private"], True, "lib.parse_ready of the private line")

    b = Agent(t, relay, http=web.port, tcp={"ssh": echo.port}, json_mode=True, wait=False)
    ev, _ = _json_ready(b)
    eq(_service(ev, "ssh"), {"name": "ssh", "kind": "tcp", "target": "127.0.0.1:%d" % echo.port,
                             "private": True}, "the private tcp service in JSON")
    h = _service(ev, "http")
    eq(h.get("private", False), False, "a --public http service in JSON (no \"private\" key)")
    check(h["url"].startswith("http://") and "host" not in h, "http JSON: %r" % h)

    # nothing listens in the whole range, and the registry holds no port
    eq(_listening(range(relay.tcp_low, relay.tcp_high + 1)), [], "ports listening in the range")
    eq(_registry_ports(relay.data_dir), [], "ports in the registry")

    # the admin API and the dashboard
    for name in (a.name, b.name):
        d = _device_json(relay.admin_port, name)
        svcs = {s["name"]: s for s in d["services"]}
        eq(svcs["ssh"], {"name": "ssh", "kind": "tcp", "private": True}, "admin API: private ssh")
        eq(svcs["http"]["private"], False, "admin API: public http")
        check(svcs["http"]["url"].startswith("http://"), "admin API http url: %r" % svcs["http"])
    page = _admin(relay, "/").decode()
    check("access: private" in page and "<code>*/http</code>" in page,
          "the dashboard states the access rules: %r" % page[:600])
    check(re.search(r"ssh <span class=\"private\"[^>]*>private</span>", page),
          "the dashboard marks ssh private")
    check(not re.search(r"</a> <span class=\"private\"", page),
          "the dashboard marks no public URL private")

    # a browser connection: one audit line when it ends, field by field
    cport, req, resp = _http_get(relay.port, relay.host(label))
    v = _wait_audit(audit, lambda v: v.get("client") == "127.0.0.1:%d" % cport,
                    "an audit line for the browser connection from port %d" % cport)
    _check_line(v, device=a.name, service="http", kind="http", user=None,
                client="127.0.0.1:%d" % cport, bytes_in=len(req), bytes_out=len(resp),
                outcome="ok")
    check(v["duration_ms"] < 30000, "duration_ms %r" % v["duration_ms"])
    check(_metric(relay.admin_port, "tether_audit_lines_total") >= 1, "audit lines counted")


def test_private_relay_public_pattern_keeps_tcp_port(t):
    # the fleet token may hold one port: private services take none of it
    relay = Relay(t, extra=["--access", "private", "--public", "*/http", "--public", "*/ssh",
                            "--max-ports-per-token", "1"])
    echo = t.tcp_echo()
    a = Agent(t, relay, tcp={"ssh": echo.port, "db": echo.port}, json_mode=True, wait=False)
    ev, _ = _json_ready(a)
    ssh, db = _service(ev, "ssh"), _service(ev, "db")
    eq((ssh.get("private", False), ssh["host"]), (False, "localhost"), "ssh matched by --public")
    check(relay.tcp_low <= ssh["port"] <= relay.tcp_high, "ssh port %r" % ssh)
    eq(db, {"name": "db", "kind": "tcp", "target": "127.0.0.1:%d" % echo.port, "private": True},
       "db, which no pattern matches")
    eq(_listening(range(relay.tcp_low, relay.tcp_high + 1)), [ssh["port"]],
       "only the public service's port listens")
    eq(_registry_ports(relay.data_dir), [(a.name, "ssh", ssh["port"])], "the registry's ports")
    _, got = _tcp_echo_from("127.0.0.1", "127.0.0.1", ssh["port"])
    eq(got, b"hello tether\n", "the public port's echo")
    d = _device_json(relay.admin_port, a.name)
    svcs = {s["name"]: s for s in d["services"]}
    eq(svcs["ssh"], {"name": "ssh", "kind": "tcp", "host": "localhost", "port": ssh["port"],
                     "private": False}, "admin API: public ssh")
    eq(svcs["db"], {"name": "db", "kind": "tcp", "private": True}, "admin API: private db")
    # another device with only private TCP services, the fleet's one port being held already
    b = Agent(t, relay, tcp={"db": echo.port, "mqtt": echo.port}, json_mode=True, wait=False)
    ev, _ = _json_ready(b)
    eq([s["private"] for s in ev["services"]], [True, True], "the second device's services")
    eq(_listening(range(relay.tcp_low, relay.tcp_high + 1)), [ssh["port"]],
       "ports listening after the second device")


def test_private_relay_restarted_from_public_releases_the_port(t):
    relay = Relay(t)
    echo = t.tcp_echo()
    a = Agent(t, relay, tcp={"ssh": echo.port}, json_mode=True, wait=False)
    ev, seen = _json_ready(a)
    port = _service(ev, "ssh")["port"]
    eq("private" in _service(ev, "ssh"), False, "public relay: ssh is public (no \"private\" key)")
    eq(_listening([port]), [port], "the public port listens")
    relay.stop()
    eq(_registry_ports(relay.data_dir), [(a.name, "ssh", port)], "the port remembered")

    # the same data dir, private now: the port is released at start, before the device is back
    again = Relay(t, port=relay.port, admin_port=relay.admin_port,
                  tcp_ports=(relay.tcp_low, relay.tcp_high), data_dir=relay.data_dir,
                  extra=PRIVATE)
    eq(_listening([port]), [], "the port after a restart as a private relay")
    # (the relay listens before it has loaded its registry: the port check above may come
    # first, so the registry is waited for)
    wait_for(lambda: _registry_ports(relay.data_dir) == [], 10,
             "the registry's ports to be released after the restart")
    ev, _ = _json_ready(a, seen)
    eq(_service(ev, "ssh"), {"name": "ssh", "kind": "tcp", "target": "127.0.0.1:%d" % echo.port,
                             "private": True}, "ssh after the device reconnected")
    eq(_listening(range(again.tcp_low, again.tcp_high + 1)), [], "ports listening in the range")
    eq(_registry_ports(relay.data_dir), [], "the registry's ports after the registration")


def test_tcp_allow_refuses_other_networks_and_audits(t):
    audit = t.path("audit.log")
    relay = Relay(t, extra=["--tcp-allow", "127.0.0.2/32", "--audit-log", audit])
    echo = t.tcp_echo()
    a = Agent(t, relay, tcp={"echo": echo.port})
    port = a.tcp_port("echo")

    cport1, got = _tcp_echo_from("127.0.0.1", "127.0.0.1", port)
    eq(got, b"", "a client from 127.0.0.1 (outside --tcp-allow) gets nothing")
    cport2, got = _tcp_echo_from("127.0.0.2", "127.0.0.1", port)
    eq(got, b"hello tether\n", "a client from 127.0.0.2 gets the echo")
    eq(_metric(relay.admin_port, "tether_access_tcp_refused_total"), 1, "refusals counted")

    v = _wait_audit(audit, lambda v: v.get("client") == "127.0.0.1:%d" % cport1,
                    "the refused client's audit line")
    _check_line(v, device=a.name, service="echo", kind="tcp", user=None, bytes_in=0, bytes_out=0,
                duration_ms=0, outcome="refused")
    v = _wait_audit(audit, lambda v: v.get("client") == "127.0.0.2:%d" % cport2,
                    "the admitted client's audit line")
    _check_line(v, device=a.name, service="echo", kind="tcp", user=None, bytes_in=13,
                bytes_out=13, outcome="ok")

    # the device offline: the client is closed at once, and that is written down too
    a.stop()
    wait_for(lambda: not _device_json(relay.admin_port, a.name)["online"], 20, "device offline")
    cport3, got = _tcp_echo_from("127.0.0.2", "127.0.0.1", port)
    eq(got, b"", "a client of an offline device")
    v = _wait_audit(audit, lambda v: v.get("client") == "127.0.0.2:%d" % cport3,
                    "the offline client's audit line")
    _check_line(v, device=a.name, service="echo", kind="tcp", outcome="offline")


def test_audit_log_reopened_on_sighup_after_rename(t):
    audit = t.path("audit.log")
    relay = Relay(t, extra=["--audit-log", audit])
    web = t.http_service()
    echo = t.tcp_echo()
    a = Agent(t, relay, http=web.port, tcp={"echo": echo.port})
    cport, req, resp = _http_get(relay.port, relay.host(a.label))
    _wait_audit(audit, lambda v: v.get("client") == "127.0.0.1:%d" % cport, "the first line")
    eq(oct(os.stat(audit).st_mode & 0o777), "0o600", "the audit log's mode")

    os.rename(audit, audit + ".1")
    relay.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: os.path.exists(audit), 20, "the audit log reopened under its name")
    before = len(_audit_lines(audit + ".1"))
    cport2, got = _tcp_echo_from("127.0.0.1", "127.0.0.1", a.tcp_port("echo"))
    eq(got, b"hello tether\n", "the echo")
    v = _wait_audit(audit, lambda v: v.get("client") == "127.0.0.1:%d" % cport2,
                    "the TCP client's line in the new file")
    _check_line(v, device=a.name, service="echo", kind="tcp", bytes_in=13, bytes_out=13,
                outcome="ok")
    cport3, req, resp = _http_get(relay.port, relay.host(a.label))
    v = _wait_audit(audit, lambda v: v.get("client") == "127.0.0.1:%d" % cport3,
                    "the browser's line in the new file")
    _check_line(v, service="http", kind="http", bytes_in=len(req), bytes_out=len(resp),
                outcome="ok")
    eq(len(_audit_lines(audit + ".1")), before, "lines written to the renamed file")

    # a device offline: the browser gets the 503 page and the line says so
    a.stop()
    wait_for(lambda: not _device_json(relay.admin_port, a.name)["online"], 20, "device offline")
    s = socket.create_connection(("127.0.0.1", relay.port), timeout=30)
    cport4 = s.getsockname()[1]
    s.sendall(("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" %
               relay.host(a.label)).encode())
    resp = recv_all(s)
    s.close()
    check(resp.startswith(b"HTTP/1.1 503"), "offline: %r" % resp[:100])
    v = _wait_audit(audit, lambda v: v.get("client") == "127.0.0.1:%d" % cport4,
                    "the offline browser's line")
    _check_line(v, device=a.name, service="http", kind="http", bytes_in=0, bytes_out=0,
                outcome="offline")


# ---------------------------------------------------------------- fail2ban

def _guide_block(marker):
    """The fenced block of the operator's guide whose first line is marker."""
    text = open(GUIDE, encoding="utf-8").read()
    for m in re.finditer(r"```[a-z]*\n(.*?)```", text, re.S):
        if m.group(1).startswith(marker):
            return m.group(1)
    raise TestFailure("no block starting with %r in the operator's guide" % marker)


def _failregexes(filt):
    out, on = [], False
    for line in filt.splitlines():
        if line.startswith("failregex"):
            on = True
            line = line.split("=", 1)[1]
        elif on and not line.startswith((" ", "\t")):
            on = False
        if on and line.strip():
            out.append(line.strip())
    return out


def test_private_audit_fail2ban_filter_matches_refusals(t):
    audit = t.path("audit.log")
    relay = Relay(t, extra=["--tcp-allow", "127.0.0.2/32", "--audit-log", audit])
    echo = t.tcp_echo()
    web = t.http_service()
    a = Agent(t, relay, http=web.port, tcp={"echo": echo.port})
    refused = [_tcp_echo_from("127.0.0.1", "127.0.0.1", a.tcp_port("echo"))[0] for _ in range(3)]
    _tcp_echo_from("127.0.0.2", "127.0.0.1", a.tcp_port("echo"))
    _http_get(relay.port, relay.host(a.label))
    wait_for(lambda: len(_audit_lines(audit)) >= 5, 20, "five audit lines")
    log = t.path("fail2ban.log")
    shutil.copy(audit, log)
    # the sign-in lines come from the browser sign-in (another part of the relay): the same
    # writer's shape, refused and ok, with a hostile user name
    with open(log, "a", encoding="utf-8") as f:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for user, ip, outcome in (("alice", "192.0.2.7", "refused"), ("bob", "192.0.2.8", "ok"),
                                  ('x","client":"198.51.100.1:1","outcome":"refused', "192.0.2.9",
                                   "refused"),
                                  ("carol", "2001:db8::5", "refused")):
            client = "[%s]:4242" % ip if ":" in ip else "%s:4242" % ip
            f.write(json.dumps({"time": now, "event": "signin", "user": user, "client": client,
                                "outcome": outcome}, separators=(",", ":")) + "\n")
    lines = open(log, encoding="utf-8").read().splitlines()

    filt = _guide_block("# /etc/fail2ban/filter.d/tether-audit.conf")
    jail = _guide_block("# /etc/fail2ban/jail.d/tether.local")
    check(re.search(r"^filter\s*=\s*tether-audit$", jail, re.M) and "logpath" in jail,
          "the jail snippet: %r" % jail)
    regexes = _failregexes(filt)
    eq(len(regexes), 2, "failregex lines")
    # Python's reading of the filter: <ADDR> as an IPv4 or IPv6 address
    addr = r"(?P<addr>[0-9.]+|[0-9a-fA-F:]*:[0-9a-fA-F:.]+)"
    pyre = [re.compile(r.replace("<ADDR>", addr)) for r in regexes]
    hits = []
    for line in lines:
        m = [x for x in (p.search(line) for p in pyre) if x]
        if m:
            hits.append(m[0].group("addr"))
    want = ["127.0.0.1"] * 3 + ["192.0.2.7", "192.0.2.9", "2001:db8::5"]
    eq(sorted(hits), sorted(want), "addresses the filter finds (Python)")

    f2b = shutil.which("fail2ban-regex")
    if not f2b:
        print("fail2ban-regex is not installed: the filter was checked with Python only")
        return
    ffile = t.path("tether-audit.conf")
    with open(ffile, "w", encoding="utf-8") as f:
        f.write(filt)
    out = subprocess.run([f2b, "-v", log, ffile], capture_output=True, text=True, timeout=120)
    check(out.returncode == 0, "fail2ban-regex failed: %s %s" % (out.stdout[-2000:],
                                                                  out.stderr[-2000:]))
    m = re.search(r"Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed", out.stdout)
    check(m, "fail2ban-regex output: %s" % out.stdout[-2000:])
    eq(int(m.group(1)), len(lines), "lines fail2ban read")
    eq(int(m.group(3)), len(want), "lines fail2ban matched")
    for ip in set(want):
        check(ip in out.stdout, "fail2ban-regex found no %s: %s" % (ip, out.stdout[-3000:]))
    check("198.51.100.1" not in out.stdout, "a forged address in a user name was believed")
    check(refused, "refused clients")


# ---------------------------------------------------------------- cluster

def _cluster_range(n=8):
    """n consecutive ports free on 127.0.0.1-127.0.0.3."""
    rnd = int.from_bytes(os.urandom(4), "big")
    for i in range(200):
        low = 21000 + (rnd + i * 97) % 11000
        ok = True
        for p in range(low, low + n):
            for a in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
                with socket.socket() as s:
                    try:
                        s.bind((a, p))
                    except OSError:
                        ok = False
            if not ok:
                break
        if ok:
            return low, low + n - 1
    raise TestFailure("no free port range")


def test_private_cluster_no_port_on_any_node_vouched_clients_audited(t):
    redis = RedisServer(t)
    low, high = _cluster_range()
    nodes = []
    for i, bind in enumerate(("127.0.0.2", "127.0.0.3")):
        name = "node-%c" % (ord("a") + i)
        port = free_port()
        n = Relay(t, port=port, tcp_ports=(low, high),
                  extra=["--redis", "redis://127.0.0.1:%d" % redis.port, "--node-id", name,
                         "--advertise", "ws://127.0.0.1:%d" % port, "--tcp-bind", bind,
                         "--audit-log", t.path("audit-%s.log" % name), "--tcp-allow",
                         "127.0.0.5/32"] + PRIVATE + ["--public", "*/echo"])
        n.name, n.bind, n.audit = name, bind, t.path("audit-%s.log" % name)
        nodes.append(n)
    a_node, b_node = nodes
    web = t.http_service()
    echo = t.tcp_echo()
    dev = Agent(t, a_node, http=web.port, tcp={"ssh": echo.port, "echo": echo.port},
                json_mode=True, wait=False)
    ev, _ = _json_ready(dev)
    eq(_service(ev, "ssh"), {"name": "ssh", "kind": "tcp", "target": "127.0.0.1:%d" % echo.port,
                             "private": True}, "the private service in a cluster")
    pub = _service(ev, "echo")["port"]
    holder = _device_json(a_node.admin_port, dev.name).get("node")
    eq(holder, a_node.name, "the node holding the device")

    # Redis holds only the public port, and no node listens on any other
    r = socket.create_connection(("127.0.0.1", redis.port), timeout=10)
    try:
        ports = resp_command(r, "HGETALL", "tether:ports")
    finally:
        r.close()
    eq([x.decode() for x in ports], [str(pub), dev.name], "the cluster's port claims")
    for n in nodes:
        wait_for(lambda: _listening([pub], n.bind) == [pub], 20,
                 "%s to listen on the public port" % n.name)
        eq(_listening(range(low, high + 1), n.bind), [pub], "ports listening on " + n.name)

    # node b shows the device held by node a the same way
    wait_for(lambda: len(_device_json(b_node.admin_port, dev.name)["services"]) == 3, 20,
             "node b to see the device's services")
    svcs = {s["name"]: s for s in _device_json(b_node.admin_port, dev.name)["services"]}
    eq(svcs["ssh"], {"name": "ssh", "kind": "tcp", "private": True}, "node b: private ssh")
    eq(svcs["echo"]["private"], False, "node b: public echo")
    eq(svcs["echo"]["port"], pub, "node b: echo's port")

    # a TCP client at node b: refused there by --tcp-allow (before any forwarding), or forwarded
    # to node a, which writes the client's address as node b vouched for it
    refused = _metric(b_node.admin_port, "tether_access_tcp_refused_total")  # the scans above
    cport, got = _tcp_echo_from("127.0.0.1", b_node.bind, pub)
    eq(got, b"", "a client outside --tcp-allow at node b")
    v = _wait_audit(b_node.audit, lambda v: v.get("client") == "127.0.0.1:%d" % cport,
                    "node b's line for the refused client")
    _check_line(v, device=dev.name, kind="tcp", outcome="refused")
    eq(_metric(b_node.admin_port, "tether_access_tcp_refused_total"), refused + 1,
       "node b's refusals")
    cport, got = _tcp_echo_from("127.0.0.5", b_node.bind, pub)
    eq(got, b"hello tether\n", "the echo through node b")
    v = _wait_audit(a_node.audit, lambda v: v.get("client") == "127.0.0.5:%d" % cport,
                    "node a's line for the client forwarded by node b")
    _check_line(v, device=dev.name, service="echo", kind="tcp", bytes_in=13, bytes_out=13,
                outcome="ok")

    # a browser at node b: forwarded, and audited by node a with the browser's address and port
    label = re.match(r"^https?://([a-z0-9]+)\.", _service(ev, "http")["url"]).group(1)
    cport, req, resp = _http_get(b_node.port, "%s.localhost:%d" % (label, b_node.port))
    v = _wait_audit(a_node.audit, lambda v: v.get("client") == "127.0.0.1:%d" % cport,
                    "node a's line for the browser forwarded by node b")
    _check_line(v, device=dev.name, service="http", kind="http", outcome="ok",
                bytes_out=len(resp))
    eq([x for x in _audit_lines(b_node.audit) if x.get("kind") == "http"], [],
       "node b writes no line for what it forwarded")
    # the nodes' internal headers (the browser's port among them) never reach the device, and
    # a browser cannot forge them
    _, _, resp = _http_get(b_node.port, "%s.localhost:%d" % (label, b_node.port),
                           "/headers")
    body = json.loads(resp.split(b"\r\n\r\n", 1)[1])
    names = [k.lower() for k, _ in body["headers"]]
    check(not [n for n in names if n.startswith("x-tether")], "headers the device saw: %r" % names)
