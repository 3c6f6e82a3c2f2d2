"""test_private_connect.py - `tether connect`, the visitor's side, with real processes: a relay with
--access private and a users file (a plain secret and an argon2id hash from tetherd
--hash-secret), a device exposing a TCP echo, an HTTP service and a real sshd. --listen and
--stdio both ways with half-close (16 MiB each way), ssh through ProxyCommand, every refusal (401
wrong secret, 403 no grant, 404 unknown device or service, 503 offline) with its words and exit
status, a public service reached without credentials, the relay reached through tinyproxy and
over TLS, a two-node cluster with the visitor on the node that does not hold the device, the
stream shares, revocation by a users-file reload (SIGHUP) closing an open connection at once,
the audit lines, and usage errors."""

import hashlib
import struct
import json
import os
import signal
import socket
import subprocess
import threading
import time

from lib import (Proc, Relay, RedisServer, Sshd, TETHER, TETHERD, TestFailure, check, eq,
                 free_port, recv_all, run_cli, tcp_connect, wait_for)

MiB = 1024 * 1024
ALICE_SECRET = "alice-s3cret-42"
CAROL_SECRET = "carol-battery-staple"


# ---------------------------------------------------------------- the world

def _hash_secret(secret):
    r = subprocess.run([TETHERD, "--hash-secret"], input=(secret + "\n").encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    eq(r.returncode, 0, "tetherd --hash-secret exit status (%s)" % r.stderr.decode()[-300:])
    line = r.stdout.decode().strip().splitlines()[-1]
    check(line.startswith("$argon2id$"), "--hash-secret printed %r" % line)
    return line


def _users(t, text, name="users"):
    path = t.path(name)
    with open(path, "w") as f:
        f.write(text)
    return path


def _standard_users(t, device):
    """alice (plain secret) and carol (argon2id) reach DEVICE's services; bob reaches nothing of
    it."""
    return _users(t, "# users of the e2e relay\n"
                     "alice %s %s/*\n"
                     "carol %s %s/echo other/*\n"
                     "bob bob-pw-1234 other-device/*\n" %
                  (ALICE_SECRET, device, _hash_secret(CAROL_SECRET), device))


def _private_relay(t, users, extra=(), **kw):
    audit = t.path("audit-%d.log" % len(t.procs))
    r = Relay(t, extra=["--access", "private", "--users-file", users, "--audit-log", audit] +
              list(extra), **kw)
    r.audit = audit
    r.users = users
    return r


def _world(t, tcp=None, http=None, extra=()):
    """A private relay, a TCP echo on the device (and whatever else), the users file."""
    echo = t.tcp_echo()
    services = {"echo": echo.port}
    services.update(tcp or {})
    name = "plant-" + os.urandom(3).hex()
    users = _standard_users(t, name)
    relay = _private_relay(t, users, extra=extra)
    agent = t.agent(relay, name=name, tcp=services, http=http)
    return relay, agent, echo


def _audit(relay):
    try:
        with open(relay.audit) as f:
            return [json.loads(l) for l in f if l.strip()]
    except OSError:
        return []


def _audit_lines(relay, n, what, **match):
    """Waits for at least n audit lines whose fields equal match; returns them."""
    def found():
        return [a for a in _audit(relay) if all(a.get(k) == v for k, v in match.items())]
    wait_for(lambda: len(found()) >= n, 20, "%s in the audit log (%r)" % (what, match))
    return found()


def _connect_argv(server, target, creds=(), mode=("--stdio",), extra=()):
    return [TETHER, "connect", "--server", server] + list(creds) + [target] + list(mode) + \
        list(extra)


def _alice():
    return ["--user", "alice", "--secret", ALICE_SECRET]


class Listener:
    """tether connect --listen on a free port; waits for its listening line."""

    def __init__(self, t, server, target, creds=(), json_mode=False, extra=(), env_vars=None,
                 bare_port=False):
        self.port = free_port()
        self.target = target
        where = str(self.port) if bare_port else "127.0.0.1:%d" % self.port
        argv = _connect_argv(server, target, creds, ("--listen", where),
                             (["--json"] if json_mode else []) + list(extra))
        self.proc = Proc(t, "tether", argv, env_vars=env_vars)
        want = ('{"event":"listening"' if json_mode else
                "listening 127.0.0.1:%d -> %s" % (self.port, target))
        _, self.line = self.proc.wait_line(lambda l: l.startswith(want), 30, 0,
                                           "the listening line")

    def stderr_errors(self):
        return [l for l in self.proc.stderr_text().splitlines() if l.startswith("error: ")]


def _stdio(argv, data=b"", timeout=60, env=None):
    e = dict(os.environ)
    for k in list(e):
        if k.lower().endswith("_proxy"):
            del e[k]
    e.update(env or {})
    return subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, env=e)


def _duplex(port, data, chunk=65536):
    """Writes data (then half-closes) from a thread while reading the echo; returns (n, sha)."""
    s = tcp_connect(port, timeout=60)
    err = []

    def writer():
        try:
            view = memoryview(data)
            for off in range(0, len(view), chunk):
                s.sendall(view[off:off + chunk])
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            err.append(e)

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    h = hashlib.sha256()
    n = 0
    try:
        while True:
            b = s.recv(262144)
            if not b:
                break
            h.update(b)
            n += len(b)
    except socket.timeout:
        raise TestFailure("the echo stalled after %d of %d bytes" % (n, len(data)))
    finally:
        th.join(30)
        s.close()
    check(not err, "writing failed: %r" % err)
    return n, h.hexdigest()


# ---------------------------------------------------------------- --listen and --stdio

def test_listen_private_tcp_plain_and_argon2id_secrets(t):
    relay, agent, echo = _world(t)
    target = agent.name + "/echo"
    for who, creds in (("alice", _alice()), ("carol", ["--user", "carol"])):
        env = {"TETHER_SECRET": CAROL_SECRET} if who == "carol" else None
        lst = Listener(t, relay.url, target, creds, env_vars=env)
        s = tcp_connect(lst.port)
        s.sendall(b"hello from " + who.encode())
        s.shutdown(socket.SHUT_WR)
        eq(recv_all(s), b"hello from " + who.encode(), "%s's echo through tether connect" % who)
        s.close()
        # the second connection on the same listener is a connection of its own
        n, sha = _duplex(lst.port, b"x" * 100000)
        eq(n, 100000, "second connection's echo")
        lines = _audit_lines(relay, 2, "%s's connections" % who, user=who, outcome="ok")
        a = lines[0]
        eq((a["event"], a["device"], a["service"], a["kind"]),
           ("connection", agent.name, "echo", "tcp"), "audit line fields")
        check(a["client"].startswith("127.0.0.1:") and a["client"] != "127.0.0.1:0",
              "audit client is the visitor's IP:PORT: %r" % a["client"])
        eq((a["bytes_in"], a["bytes_out"]), (len(b"hello from " + who.encode()),) * 2,
           "audit bytes")
        check(lst.stderr_errors() == [], "no error lines: %r" % lst.stderr_errors())
        eq(lst.proc.stop(), 0, "exit status of tether connect --listen after SIGTERM")
    m = _metrics(relay)
    eq((m.get("tether_connect_accepted_total"), m.get("tether_connect_open")), (4.0, 0.0),
       "connections counted in /metrics")
    check(m.get('tether_connect_bytes_total{direction="in"}', 0) >= 200000, "bytes in /metrics")


def test_listen_json_event(t):
    relay, agent, echo = _world(t)
    lst = Listener(t, relay.url, agent.name + "/echo", _alice(), json_mode=True, bare_port=True)
    ev = json.loads(lst.line)
    eq(ev, {"event": "listening", "address": "127.0.0.1:%d" % lst.port, "device": agent.name,
            "service": "echo"}, "the --json listening event")


def test_listen_16mib_both_ways_with_half_close(t):
    relay, agent, echo = _world(t)
    lst = Listener(t, relay.url, agent.name + "/echo", _alice())
    data = os.urandom(16 * MiB)
    n, sha = _duplex(lst.port, data)
    eq(n, len(data), "bytes echoed back through tether connect --listen")
    eq(sha, hashlib.sha256(data).hexdigest(), "SHA-256 of the echo")
    wait_for(lambda: echo.eofs >= 1, 10, "the echo service to see the half-close")
    a = _audit_lines(relay, 1, "the 16 MiB connection", user="alice")[0]
    eq((a["bytes_in"], a["bytes_out"], a["outcome"]), (len(data), len(data), "ok"),
       "audit of the 16 MiB connection")


def test_stdio_16mib_both_ways_exits_0(t):
    relay, agent, echo = _world(t)
    data = os.urandom(16 * MiB)
    r = _stdio(_connect_argv(relay.url, agent.name + "/echo", _alice()), data, timeout=120)
    eq(r.returncode, 0, "exit status of --stdio (stderr: %r)" % r.stderr[-500:])
    eq(len(r.stdout), len(data), "bytes echoed to stdout")
    eq(hashlib.sha256(r.stdout).hexdigest(), hashlib.sha256(data).hexdigest(), "SHA-256")
    eq(r.stderr, b"", "nothing on stderr")


def test_stdio_half_close_from_the_device(t):
    """The device's service speaks first and half-closes; what the visitor sends after that
    still reaches it, and tether connect exits once both directions ended."""
    from lib import TcpBanner
    banner = TcpBanner(t, banner=b"welcome, visitor\n")
    relay, agent, echo = _world(t, tcp={"banner": banner.port})
    argv = _connect_argv(relay.url, agent.name + "/banner", _alice())
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        got = p.stdout.read()  # EOF: the device's side ended, our stdout was closed
        eq(got, b"welcome, visitor\n", "the banner, then EOF on stdout")
        check(p.poll() is None, "tether connect exited before its input ended")
        p.stdin.write(b"reply after the banner\n")
        p.stdin.close()
        eq(p.wait(30), 0, "exit status once both directions ended")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    wait_for(lambda: banner.done.is_set(), 10, "the device's service to read to EOF")
    eq(banner.received, [b"reply after the banner\n"], "what the service received")


def test_ssh_through_proxycommand(t):
    sshd = Sshd(t)
    relay, agent, echo = _world(t, tcp={"ssh": sshd.port})
    proxy = "%s connect --server %s --user alice --secret-file %s %s/ssh --stdio" % (
        TETHER, relay.url, _users(t, ALICE_SECRET + "\n", "alice.secret"), agent.name)
    argv = sshd.ssh_argv(22, "-o", "ProxyCommand=" + proxy)
    r = subprocess.run(argv + ["echo tether-connect-ssh-ok"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=90)
    eq(r.returncode, 0, "ssh exit status (stderr: %s)" % r.stderr.decode(errors="replace"))
    eq(r.stdout, b"tether-connect-ssh-ok\n", "ssh command output")
    data = os.urandom(4 * MiB)
    r = subprocess.run(argv + ["sha256sum"], input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    eq(r.returncode, 0, "ssh sha256sum exit status (stderr: %s)" % r.stderr.decode(errors="replace"))
    eq(r.stdout.split()[0].decode(), hashlib.sha256(data).hexdigest(), "SHA-256 of 4 MiB via ssh")
    _audit_lines(relay, 2, "the ssh connections", service="ssh", user="alice", outcome="ok")


def test_http_service_by_name(t):
    svc = t.http_service(big_size=1024)
    relay, agent, echo = _world(t, http=svc.port)
    req = b"GET /whoami HTTP/1.1\r\nHost: device\r\nConnection: close\r\n\r\n"
    r = _stdio(_connect_argv(relay.url, agent.name + "/http", _alice()), req)
    eq(r.returncode, 0, "exit status (stderr %r)" % r.stderr)
    check(r.stdout.startswith(b"HTTP/1.") and r.stdout.endswith(b"device"),
          "the device's answer: %r" % r.stdout[:200])
    _audit_lines(relay, 1, "the http connection", service="http", kind="http", outcome="ok")


# ---------------------------------------------------------------- refusals

def _refused(relay, target, creds, status, words, outcome=None):
    r = _stdio(_connect_argv(relay.url, target, creds), b"never sent\n")
    err = r.stderr.decode(errors="replace")
    eq(r.returncode, 1, "exit status when refused (%s)" % err.strip())
    eq(r.stdout, b"", "nothing on stdout")
    lines = err.strip().splitlines()
    eq(len(lines), 1, "one line on stderr: %r" % lines)
    check(str(status) in lines[0] and all(w in lines[0] for w in words),
          "the line names %s and %r: %r" % (status, words, lines[0]))
    return lines[0]


def test_refusals_with_status_words_and_exit_1(t):
    relay, agent, echo = _world(t)
    dev = agent.name
    _refused(relay, dev + "/echo", ["--user", "alice", "--secret", "wrong-secret"], 401,
             ["wrong user or secret"])
    _refused(relay, dev + "/echo", ["--user", "nobody", "--secret", "whatever"], 401,
             ["wrong user or secret"])
    _refused(relay, dev + "/echo", [], 401, ["authentication required"])
    _refused(relay, dev + "/echo", ["--user", "bob", "--secret", "bob-pw-1234"], 403,
             ["access denied", dev + "/echo"])
    _refused(relay, dev + "/echo", ["--grant", "no-such-grant-token"], 401, ["grant"])
    _refused(relay, "no-such-device/echo", _users_all(t, relay), 404, ["no device named"])
    _refused(relay, dev + "/nosuch", _alice(), 404, ["no service named nosuch"])
    # offline within the grace period
    agent.stop()
    wait_for(lambda: b"offline" in _stdio(_connect_argv(relay.url, dev + "/echo", _alice()))
             .stderr, 20, "the relay to see the device offline")
    _refused(relay, dev + "/echo", _alice(), 503, ["device offline", dev])
    audit = _audit(relay)
    outcomes = [(a["user"], a["outcome"]) for a in audit if a["device"] == dev]
    check(("alice", "offline") in outcomes, "an offline audit line: %r" % outcomes)
    check((None, "refused") in outcomes and ("alice", "refused") in outcomes and
          ("bob", "refused") in outcomes, "refused audit lines: %r" % outcomes)
    check(all(a["client"].startswith("127.0.0.1:") for a in audit), "clients: %r" % audit)
    m = _metrics(relay)
    check(m.get('tether_connect_refused_total{status="401"}', 0) >= 4 and
          m.get('tether_connect_refused_total{status="403"}', 0) >= 1 and
          m.get('tether_connect_refused_total{status="404"}', 0) >= 2 and
          m.get('tether_connect_refused_total{status="503"}', 0) >= 1,
          "refusals counted in /metrics: %r" % {k: v for k, v in m.items() if "connect" in k})


def _metrics(relay):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", relay.admin_port, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


def _users_all(t, relay):
    """Credentials of a user whose grants cover every device (to reach the 404 for an unknown
    device: names are not told to visitors without a grant for them), added by a reload."""
    creds = ["--user", "root", "--secret", "root-pw-1234"]
    with open(relay.users, "a") as f:
        f.write("root root-pw-1234 */*\n")
    relay.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: b"401" not in _stdio(_connect_argv(relay.url, "no-such-device/echo",
                                                        creds)).stderr, 20,
             "the reload to add the user root")
    return creds


def test_listen_refused_connection_closed_and_listener_goes_on(t):
    relay, agent, echo = _world(t)
    bad = Listener(t, relay.url, agent.name + "/echo", ["--user", "bob", "--secret", "bob-pw-1234"])
    s = tcp_connect(bad.port)
    s.sendall(b"hello?")
    eq(recv_all(s), b"", "a refused connection is closed")
    s.close()
    wait_for(lambda: bad.stderr_errors(), 20, "an error line")
    line = bad.stderr_errors()[0]
    check("403" in line and "access denied" in line, "the error line says why: %r" % line)
    # it goes on listening: a second refusal, a second line
    s = tcp_connect(bad.port)
    eq(recv_all(s), b"", "the second connection is closed too")
    s.close()
    wait_for(lambda: len(bad.stderr_errors()) >= 2, 20, "a second error line")
    check(bad.proc.alive(), "the listener is still running")
    # --json: the error as an event on stdout
    js = Listener(t, relay.url, "missing-dev/echo", _alice(), json_mode=True)
    s = tcp_connect(js.port)
    eq(recv_all(s), b"", "refused")
    s.close()
    _, line = js.proc.wait_line(lambda l: '"event":"error"' in l, 20, 0, "an error event")
    ev = json.loads(line)
    check("404" in ev["message"] or "403" in ev["message"], "error event: %r" % ev)


def test_public_service_without_credentials(t):
    echo = t.tcp_echo()
    name = "pub-" + os.urandom(3).hex()
    users = _standard_users(t, name)
    relay = _private_relay(t, users, extra=["--public", name + "/echo"])
    agent = t.agent(relay, name=name, tcp={"echo": echo.port, "secret": echo.port})
    r = _stdio(_connect_argv(relay.url, name + "/echo"), b"public bytes")
    eq((r.returncode, r.stdout), (0, b"public bytes"), "a public service without credentials "
       "(stderr %r)" % r.stderr)
    a = _audit_lines(relay, 1, "the public connection", service="echo", outcome="ok")[0]
    eq(a["user"], None, "a public connection's audit user")
    # its private neighbour still wants credentials
    _refused(relay, name + "/secret", [], 401, ["authentication required"])


def test_stream_share_per_client(t):
    relay, agent, echo = _world(t, extra=["--max-streams-per-client", "1"])
    lst = Listener(t, relay.url, agent.name + "/echo", _alice())
    first = tcp_connect(lst.port)
    first.sendall(b"one")
    eq(first.recv(10), b"one", "the first connection works")
    r = _stdio(_connect_argv(relay.url, agent.name + "/echo", _alice()), b"two")
    check(r.returncode == 1 and b"503" in r.stderr and b"busy" in r.stderr,
          "a second stream from the same address is refused: %r" % r.stderr)
    first.close()


# ---------------------------------------------------------------- revocation

def test_users_file_reload_revokes_open_connection(t):
    relay, agent, echo = _world(t)
    lst = Listener(t, relay.url, agent.name + "/echo", _alice())
    s = tcp_connect(lst.port, timeout=20)
    s.sendall(b"before")
    eq(s.recv(100), b"before", "echo before the reload")
    with open(relay.users) as f:
        text = f.read()
    with open(relay.users, "w") as f:
        f.write("\n".join(l for l in text.splitlines() if not l.startswith("alice ")) + "\n")
    t0 = time.monotonic()
    relay.proc.send_signal(signal.SIGHUP)
    try:
        got = s.recv(100)
    except socket.timeout:
        raise TestFailure("the connection stayed open after the reload")
    eq(got, b"", "the open connection is closed by the reload")
    check(time.monotonic() - t0 < 10, "closed at once")
    s.close()
    wait_for(lambda: lst.stderr_errors(), 10, "an error line")
    check("revoked" in lst.stderr_errors()[0], "it says why: %r" % lst.stderr_errors())
    a = _audit_lines(relay, 1, "the revoked connection", user="alice", outcome="refused")[0]
    eq(a["bytes_in"], 6, "bytes before the revocation")
    # and a new one is refused
    _refused(relay, agent.name + "/echo", _alice(), 401, ["wrong user or secret"])


def test_grant_token(t):
    """A grant from the admin API (POST /api/grants) reaches the service with --grant, and
    deleting it closes the connection. Runs once the grant store is built; until then the relay
    answers 404 there and only the token's refusal is checked."""
    import http.client
    relay, agent, echo = _world(t)
    c = http.client.HTTPConnection("127.0.0.1", relay.admin_port, timeout=10)
    c.request("POST", "/api/grants", body=json.dumps(
        {"user": "tech", "grants": [agent.name + "/echo"], "ttl": "15m"}),
        headers={"Content-Type": "application/json"})
    resp = c.getresponse()
    body = resp.read()
    c.close()
    if resp.status != 201:
        _refused(relay, agent.name + "/echo", ["--grant", "a-token-nobody-issued"], 401,
                 ["grant"])
        return
    grant = json.loads(body)
    r = _stdio(_connect_argv(relay.url, agent.name + "/echo", ["--grant", grant["token"]]),
               b"with a grant")
    eq((r.returncode, r.stdout), (0, b"with a grant"), "echo with a grant (%r)" % r.stderr)
    r = _stdio(_connect_argv(relay.url, agent.name + "/echo", []), b"x",
               env={"TETHER_GRANT": grant["token"]})
    eq((r.returncode, r.stdout), (0, b"x"), "TETHER_GRANT (%r)" % r.stderr)
    a = _audit_lines(relay, 1, "the grant's connection", user="tech", outcome="ok")[0]
    eq(a["service"], "echo", "audit service")


# ---------------------------------------------------------------- proxy, TLS, cluster

def test_through_tinyproxy(t):
    from test_proxy import TinyProxy
    relay, agent, echo = _world(t)
    proxy = TinyProxy(t, connect_ports=[relay.port])
    r = _stdio(_connect_argv(relay.url, agent.name + "/echo", _alice(),
                             extra=["--proxy", proxy.url()]), b"via the proxy")
    eq((r.returncode, r.stdout), (0, b"via the proxy"), "echo through tinyproxy (%r)" % r.stderr)
    eq(proxy.connects(), ["127.0.0.1:%d" % relay.port], "CONNECTs in tinyproxy's log")
    # the environment, as curl reads it
    r = _stdio(_connect_argv(relay.url, agent.name + "/echo", _alice()), b"env proxy",
               env={"http_proxy": proxy.url()})
    eq((r.returncode, r.stdout), (0, b"env proxy"), "echo through http_proxy (%r)" % r.stderr)
    eq(len(proxy.connects()), 2, "CONNECTs in tinyproxy's log")
    text = open(proxy.log_path, errors="replace").read()
    check(ALICE_SECRET not in text, "the secret never reaches the proxy in clear")


def test_over_tls_with_ca_file(t):
    from test_tls import DOMAIN, Pki
    pki = Pki(t)
    crt, key, _ = pki.server()
    tls_port = free_port()
    echo = t.tcp_echo()
    name = "tls-" + os.urandom(3).hex()
    users = _standard_users(t, name)
    relay = _private_relay(t, users, extra=["--domain", DOMAIN, "--tls-listen",
                                            "127.0.0.1:%d" % tls_port, "--tls-cert", crt,
                                            "--tls-key", key])
    wait_for(lambda: _port_up(tls_port), 30, "the TLS listener")
    agent = t.agent(relay, name=name, tcp={"echo": echo.port})
    wss = "wss://localhost:%d" % tls_port
    data = os.urandom(2 * MiB)
    r = _stdio(_connect_argv(wss, name + "/echo", _alice(), extra=["--ca-file", pki.ca]), data)
    eq(r.returncode, 0, "exit status over wss:// (stderr %r)" % r.stderr)
    eq(hashlib.sha256(r.stdout).hexdigest(), hashlib.sha256(data).hexdigest(), "2 MiB over TLS")
    # without the CA: the certificate is not trusted
    r = _stdio(_connect_argv(wss, name + "/echo", _alice()), b"x")
    check(r.returncode == 1 and b"certificate verify failed" in r.stderr,
          "an untrusted certificate fails: %r" % r.stderr)
    # a redirect from TLS to cleartext is refused (the secret would go in clear)
    from lib import RedirectServer
    red = RedirectServer(t, "ws://127.0.0.1:%d/" % relay.port)
    r = _stdio(_connect_argv("ws://127.0.0.1:%d" % red.port, name + "/echo", _alice()), b"ok")
    eq((r.returncode, r.stdout), (0, b"ok"), "a ws:// redirect is followed (%r)" % r.stderr)


def _port_up(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_cluster_visitor_on_the_other_node(t):
    from test_cluster import _free_range_all, _holds
    redis = RedisServer(t)
    low, high = _free_range_all(t)
    echo = t.tcp_echo()
    name = "clu-" + os.urandom(3).hex()
    users = _standard_users(t, name)
    nodes = []
    for i, n in enumerate(("node-a", "node-b")):
        port = free_port()
        audit = t.path("audit-%s.log" % n)
        r = Relay(t, port=port, tcp_ports=(low, high), grace="60s",
                  extra=["--redis", "redis://127.0.0.1:%d" % redis.port, "--node-id", n,
                         "--advertise", "ws://127.0.0.1:%d" % port, "--tcp-bind",
                         "127.0.0.%d" % (2 + i), "--access", "private", "--users-file", users,
                         "--audit-log", audit])
        r.name, r.audit, r.users = n, audit, users
        nodes.append(r)
    agent = t.agent(nodes[0], name=name, tcp={"echo": echo.port})
    wait_for(lambda: any(_holds(n, name) for n in nodes), 30, "a node to hold the device")
    holder = [n for n in nodes if _holds(n, name)][0]
    other = [n for n in nodes if n is not holder][0]
    data = os.urandom(4 * MiB)
    r = _stdio(_connect_argv(other.url, name + "/echo", _alice()), data, timeout=120)
    eq(r.returncode, 0, "exit status through the other node (stderr %r)" % r.stderr)
    eq(hashlib.sha256(r.stdout).hexdigest(), hashlib.sha256(data).hexdigest(),
       "4 MiB through the cluster hop")
    a = _audit_lines(holder, 1, "the holder's audit line", user="alice", outcome="ok")[0]
    check(a["client"].startswith("127.0.0.1:") and a["client"] != "127.0.0.1:0",
          "the visitor's own address, vouched for by the other node: %r" % a["client"])
    eq(a["bytes_in"], len(data), "audit bytes")
    eq([x for x in _audit(other) if x.get("user") == "alice"], [],
       "the forwarding node writes no line for it")
    # refusals come back through the hop with their words
    _refused(other, name + "/echo", ["--user", "alice", "--secret", "nope"], 401,
             ["wrong user or secret"])
    _refused(other, name + "/echo", ["--user", "bob", "--secret", "bob-pw-1234"], 403,
             ["access denied"])
    # --listen on the other node, the listener's connections each go through the hop
    lst = Listener(t, other.url, name + "/echo", _alice())
    n, sha = _duplex(lst.port, b"y" * 300000)
    eq(n, 300000, "echo through a listener on the other node")


# ---------------------------------------------------------------- usage

def test_usage_errors_exit_2(t):
    base = [TETHER, "connect"]
    cases = [
        (["dev/ssh", "--stdio"], "--server"),
        (["--server", "ws://127.0.0.1:1", "--stdio"], "DEVICE/SERVICE"),
        (["--server", "ws://127.0.0.1:1", "devssh", "--stdio"], "DEVICE/SERVICE"),
        (["--server", "ws://127.0.0.1:1", "dev/ssh"], "--listen"),
        (["--server", "ws://127.0.0.1:1", "dev/ssh", "--stdio", "--listen", "2222"], "--listen"),
        (["--server", "ws://127.0.0.1:1", "dev/ssh", "--stdio", "--secret", "x"], "--user"),
        (["--server", "ws://127.0.0.1:1", "dev/ssh", "--stdio", "--bogus"], "--bogus"),
        (["--server", "http://x", "dev/ssh", "--stdio"], "--server"),
        (["--server", "ws://127.0.0.1:1", "dev/ssh", "--listen", "nope:x"], "--listen"),
    ]
    for args, word in cases:
        r = run_cli(base + args)
        eq(r.returncode, 2, "exit status of tether connect %s (%s)" % (" ".join(args), r.stderr))
        lines = r.stderr.strip().splitlines()
        eq(len(lines), 1, "one line for %r: %r" % (args, lines))
        check(word in lines[0], "the line for %r names %s: %r" % (args, word, lines[0]))
    # --user without a secret anywhere
    e = dict(os.environ)
    e.pop("TETHER_SECRET", None)
    r = subprocess.run(base + ["--server", "ws://127.0.0.1:1", "--user", "a", "d/s", "--stdio"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e, timeout=20, text=True)
    check(r.returncode == 2 and "TETHER_SECRET" in r.stderr, "--user alone: %r" % r.stderr)
    r = run_cli(base + ["--help"])
    check(r.returncode == 0 and "--listen" in r.stdout and "ProxyCommand" in r.stdout,
          "tether connect --help")
    r = run_cli([TETHER, "--help"])
    check("tether connect" in r.stdout, "tether --help mentions tether connect")


def test_relay_unreachable_tries_every_server(t):
    relay, agent, echo = _world(t)
    dead = "ws://127.0.0.1:%d" % free_port()
    argv = [TETHER, "connect", "--server", dead, "--server", relay.url] + _alice() + \
        [agent.name + "/echo", "--stdio"]
    r = _stdio(argv, b"second server")
    eq((r.returncode, r.stdout), (0, b"second server"), "the second server answers (%r)" %
       r.stderr)
    r = _stdio([TETHER, "connect", "--server", dead] + _alice() + [agent.name + "/echo",
                                                                    "--stdio"], b"x")
    check(r.returncode == 1 and b"cannot connect" in r.stderr, "unreachable: %r" % r.stderr)


# ---------------------------------------------------------------- a raw visitor: the bounds

class RawVisitor:
    """The visitor's side written from docs/PROTOCOL.md section 14 alone: the upgrade, then Tether
    frames in masked binary WebSocket messages."""

    def __init__(self, port, device, service, auth=None):
        import base64
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: "
                           "tether-connect.v1\r\nTether-Device: %s\r\nTether-Service: %s\r\n"
                           "%s\r\n" % (port, key, device, service,
                                       "Authorization: %s\r\n" % auth if auth else "")).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = self.sock.recv(4096)
            if not b:
                raise TestFailure("closed during the handshake: %r" % buf)
            buf += b
        head, _, self.pending = buf.partition(b"\r\n\r\n")
        self.head = head.decode("latin-1")
        self.status = int(self.head.split()[1])
        if self.status == 101:
            from lib import ws_accept
            check("Sec-WebSocket-Accept: %s" % ws_accept(key) in self.head and
                  "Sec-WebSocket-Protocol: tether-connect.v1" in self.head,
                  "the 101 as section 14.2 says: %r" % self.head)

    def send_frames(self, frames):
        from lib import ws_frame
        self.sock.sendall(ws_frame(2, frames))

    def _readn(self, n):
        while len(self.pending) < n:
            b = self.sock.recv(262144)
            if not b:
                raise ConnectionError("EOF")
            self.pending += b
        out, self.pending = self.pending[:n], self.pending[n:]
        return out

    def frames(self):
        """Yields the Tether frames (type, flags, stream, payload) of the relay's messages."""
        from lib import ws_read_frame
        data = b""
        while True:
            fin, op, payload = ws_read_frame(self._readn)
            if op == 8:
                return
            if op != 2:
                continue
            data += payload
            while len(data) >= 8:
                length, typ, flags, stream = struct.unpack(">HBBI", data[:8])
                if len(data) < 8 + length:
                    break
                yield typ, flags, stream & 0x7fffffff, data[8:8 + length]
                data = data[8 + length:]


def _frame(typ, stream, payload=b"", flags=0):
    return struct.pack(">HBBI", len(payload), typ, flags, stream) + payload


def _rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Firehose:
    """A device service that writes as fast as its socket takes, counting what it wrote."""

    def __init__(self, t):
        self.sent = 0
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.port = self.srv.getsockname()[1]
        self.stop = False
        t.on_cleanup(self.close)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        try:
            c, _ = self.srv.accept()
        except OSError:
            return
        c.settimeout(0.5)
        chunk = b"f" * 65536
        while not self.stop:
            try:
                self.sent += c.send(chunk)
            except socket.timeout:
                continue
            except OSError:
                break
        c.close()

    def close(self):
        self.stop = True
        self.srv.close()


def test_visitor_that_does_not_read_holds_the_service_back(t):
    """The attack: a visitor opens a stream to a service that talks without end and reads
    nothing. The relay must not buffer for it: credit flows back to the device only for what
    the visitor's connection took, so the service is held back after a few windows and socket
    buffers, and the relay's memory stays flat."""
    fire = Firehose(t)
    relay, agent, echo = _world(t, tcp={"fire": fire.port})
    import base64
    auth = "Basic " + base64.b64encode(("alice:" + ALICE_SECRET).encode()).decode()
    rss0 = _rss_kib(relay.proc.pid)
    v = RawVisitor(relay.port, agent.name, "fire", auth)
    eq(v.status, 101, "upgrade status")
    v.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    time.sleep(4)  # not reading
    held = fire.sent
    time.sleep(2)
    grew = fire.sent - held
    rss = _rss_kib(relay.proc.pid) - rss0
    print("service wrote %d bytes while the visitor read nothing; then %d more in 2 s; relay "
          "RSS +%d KiB" % (held, grew, rss))
    check(held < 48 * MiB, "the service wrote %d bytes for a visitor that reads nothing" % held)
    eq(grew, 0, "bytes the service could still write 4 s later")
    check(rss < 32 * 1024, "the relay grew by %d KiB" % rss)
    # once the visitor reads (and credits what it read: WINDOW), everything comes, in order
    got = 0
    for typ, flags, stream, payload in v.frames():
        if typ == 5:
            eq(stream, 1, "DATA on stream 1")
            check(set(payload) <= {ord("f")}, "the service's bytes")
            got += len(payload)
            if payload:
                v.send_frames(_frame(6, 1, struct.pack(">I", len(payload))))
            if got >= held:
                break
    check(got >= held, "read %d of the %d held bytes" % (got, held))
    v.sock.close()


class Sink:
    """A device service that accepts and never reads."""

    def __init__(self, t):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.port = self.srv.getsockname()[1]
        self.conns = []
        t.on_cleanup(self.close)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self):
        self.srv.close()
        for c in self.conns:
            c.close()


def test_visitor_breaking_the_window_is_reset(t):
    """A visitor that sends more than the credit it was given (262144 bytes, and what the relay
    credited or granted since) gets its stream reset (FLOW), then GOAWAY; the relay held no more
    than the window for it, and goes on. The device's service reads nothing, so the device's
    side soon takes no more."""
    sink = Sink(t)
    relay, agent, echo = _world(t, tcp={"sink": sink.port})
    import base64
    auth = "Basic " + base64.b64encode(("alice:" + ALICE_SECRET).encode()).decode()
    rss0 = _rss_kib(relay.proc.pid)
    v = RawVisitor(relay.port, agent.name, "sink", auth)
    eq(v.status, 101, "upgrade status")
    frame = _frame(5, 1, b"w" * 65535)
    sent = [0]

    def flood():
        try:
            for _ in range(24 * 16):  # 24 MiB in 64 KiB frames, without waiting for WINDOW
                v.send_frames(frame)
                sent[0] += 65535
        except OSError:
            pass

    th = threading.Thread(target=flood, daemon=True)
    th.start()
    seen = []
    try:
        for typ, flags, stream, payload in v.frames():
            if typ in (7, 8):
                seen.append((typ, stream, struct.unpack(">H", payload[:2])[0]))
            if typ == 8:
                break
    except (ConnectionError, OSError):
        pass
    th.join(30)
    rss = _rss_kib(relay.proc.pid) - rss0
    print("visitor sent %d bytes before the relay stopped it; frames %r; relay RSS +%d KiB" %
          (sent[0], seen, rss))
    check((7, 1, 4) in seen, "RESET FLOW on stream 1 (frames %r)" % seen)
    check(any(x[0] == 8 for x in seen), "then GOAWAY (frames %r)" % seen)
    check(rss < 32 * 1024, "the relay grew by %d KiB" % rss)
    v.sock.close()
    a = _audit_lines(relay, 1, "the reset connection", service="sink", user="alice")[0]
    check(a["bytes_in"] < 16 * MiB, "bytes passed on for the visitor: %d" % a["bytes_in"])
    # the relay and the device carry on
    r = _stdio(_connect_argv(relay.url, agent.name + "/echo", _alice()), b"after")
    eq((r.returncode, r.stdout), (0, b"after"), "a new connection afterwards (%r)" % r.stderr)
