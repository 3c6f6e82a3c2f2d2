"""test_relay_ops.py - the operator's day with tetherd (issue 14, items 1, 5 and 6): the
generated fleet token made only by a start that serves, `tetherd token status|rotate`, plain
HTTP and bad handshakes on a --tls-listen port (400 and a log line), a cluster node that died
(503 and a log line naming node, address and device; nodes joining and leaving logged), and log
lines an operator can act on (a wrong token apart from an unknown name, the flag behind a port
in use, the start-up summary)."""

import hashlib
import os
import re
import signal
import socket
import subprocess
import time

from lib import (TETHERD, Relay, RedisServer, check, eq, free_port, free_port_range, run_cli,
                 wait_for)

TOKEN_LINE = re.compile(r"^tetherd: device token: ([0-9a-f]{64})$")


def _token_cli(data_dir, *args):
    return run_cli([TETHERD, "token"] + list(args) + ["--data-dir", data_dir])


def _log_lines(relay, pred):
    return [l for l in relay.proc.stderr_text().splitlines() if pred(l)]


def _refused(t, relay, name, token):
    """Starts an agent under name with token and returns True once it is refused, False once it
    is ready."""
    a = t.agent(relay, name=name, token=token, json_mode=True, wait=False, http=free_port(),
                state_dir=t.mkdtemp("state-" + name))
    _, line = a.proc.wait_line(lambda l: '"ready"' in l or '"error"' in l, 30, 0,
                               "a ready or error event")
    a.stop()
    return '"error"' in line


def test_relay_ops_token_only_from_a_start_that_serves(t):
    data = t.mkdtemp("data")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        r = run_cli([TETHERD, "--data-dir", data, "--listen", "127.0.0.1:%d" % port,
                     "--admin-listen", "127.0.0.1:%d" % free_port()])
    finally:
        busy.close()
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    eq(r.returncode, 1, "exit status with --listen taken (stderr %r)" % r.stderr)
    eq(len(lines), 1, "stderr lines of the failed start (%r)" % r.stderr)
    eq(lines[0], "tetherd: --listen 127.0.0.1:%d: address already in use" % port, "the error")
    eq(r.stdout, "", "stdout of the failed start (no token line)")
    st = _token_cli(data, "status")
    eq(st.returncode, 1, "token status after the failed start (%r)" % st.stderr)
    check("no generated device token" in st.stderr, "status says none: %r" % st.stderr)
    # The next start serves: it makes the token and prints it once.
    relay = Relay(t, token=None, data_dir=data)
    _, line = relay.proc.wait_line(lambda l: l.startswith("tetherd: device token: "), 20,
                                   what="the generated token")
    m = TOKEN_LINE.match(line)
    check(m, "the token line: %r" % line)
    token = m.group(1)
    check(token not in relay.proc.stderr_text(), "the token is in the log")
    st = _token_cli(data, "status")
    eq(st.returncode, 0, "token status (%r)" % st.stderr)
    digest = hashlib.sha256(token.encode()).hexdigest()
    check(digest[:12] in st.stdout and token not in st.stdout,
          "status shows the hash prefix, not the token: %r" % st.stdout)
    relay.token = token
    check(not _refused(t, relay, "dev-first", token), "the generated token was refused")


def test_relay_ops_token_rotate(t):
    data = t.mkdtemp("data")
    relay = Relay(t, token=None, data_dir=data)
    _, line = relay.proc.wait_line(lambda l: TOKEN_LINE.match(l), 20, what="the token")
    old = TOKEN_LINE.match(line).group(1)
    relay.token = old
    svc = t.http_service(big_size=1024)
    keyed = t.agent(relay, name="dev-keyed", http=svc.port)  # holds a device key now
    keyed.stop()
    r = _token_cli(data, "rotate")
    eq(r.returncode, 0, "token rotate (%r)" % r.stderr)
    out = [l for l in r.stdout.splitlines() if l.strip()]
    eq(len(out), 1, "rotate's stdout lines (%r)" % r.stdout)
    m = TOKEN_LINE.match(out[0])
    check(m, "rotate's line: %r" % out[0])
    new = m.group(1)
    check(new != old, "rotate printed the old token")
    st = _token_cli(data, "status")
    check("next start or SIGHUP" in st.stdout, "status tells the rotation waits: %r" % st.stdout)
    # Until SIGHUP the relay keeps the old one.
    check(not _refused(t, relay, "dev-before-hup", old), "old token refused before SIGHUP")
    relay.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: _log_lines(relay, lambda l: "device token rotated" in l), 20,
             "the rotation logged")
    check(_refused(t, relay, "dev-new-with-old", old), "the old token registered a new name")
    check(not _refused(t, relay, "dev-new-with-new", new), "the new token was refused")
    # A device that holds its key keeps working with the token it has.
    again = t.agent(relay, name="dev-keyed", http=svc.port, token=old, state_dir=keyed.state_dir)
    eq(relay.request("GET", "/whoami", label=again.label)[0], 200, "the keyed device's answer")
    again.stop()
    for s in (relay.proc.stderr_text(), r.stderr, st.stdout):
        check(new not in s and old not in s, "a token in a log or in status")
    # After a restart: the same (new one in force, old one for new names refused), nothing
    # printed.
    relay.stop()
    relay2 = Relay(t, token=None, data_dir=data)
    relay2.token = new
    check(not any("device token" in l for l in relay2.proc.lines), "a token printed again")
    check(_refused(t, relay2, "dev-new-with-old-2", old), "old token after the restart")
    check(not _refused(t, relay2, "dev-new-with-new-2", new), "new token after the restart")
    st = _token_cli(data, "status")
    check("earlier tokens still good with a device key: 1" in st.stdout, "status: %r" % st.stdout)
    # The data dir from the relay's config file (the command line's --data-dir wins).
    conf = t.path("tetherd.conf")
    with open(conf, "w") as f:
        f.write("# the relay's settings\ndata-dir %s\n" % data)
    st = run_cli([TETHERD, "token", "status", "--config", conf])
    eq(st.returncode, 0, "status --config (%r)" % st.stderr)
    check(data in st.stdout, "status names the config file's data dir: %r" % st.stdout)
    st = run_cli([TETHERD, "token", "status", "--config", conf, "--data-dir", t.mkdtemp("other")])
    eq(st.returncode, 1, "--data-dir wins over --config (%r)" % st.stdout)


def test_relay_ops_token_cli_usage(t):
    r = run_cli([TETHERD, "token"])
    eq(r.returncode, 2, "tetherd token without a command")
    eq(len(r.stderr.splitlines()), 1, "one line (%r)" % r.stderr)
    r = run_cli([TETHERD, "token", "frobnicate"])
    eq(r.returncode, 2, "tetherd token frobnicate")
    r = run_cli([TETHERD, "token", "--help"])
    eq(r.returncode, 0, "tetherd token --help")
    check("rotate" in r.stdout, "help: %r" % r.stdout)
    r = _token_cli(t.mkdtemp("empty"), "rotate")
    eq(r.returncode, 1, "rotate without a registry (%r)" % r.stderr)
    check(not os.path.exists(os.path.join(t.dir, "empty", "registry.db")), "a registry made")


# ---------------------------------------------------------------- the TLS port

def _tls_relay(t):
    from test_tls import Pki
    pki = Pki(t)
    crt, key, _ = pki.server("ops")
    tls_port = free_port()
    relay = t.relay(extra=["--tls-listen", "127.0.0.1:%d" % tls_port, "--tls-cert", crt,
                           "--tls-key", key])
    wait_for(lambda: _port_open(tls_port), 30, "the TLS listener")
    relay.tls_port = tls_port
    relay.ca = pki.ca
    return relay


def _port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _curl(*args):
    r = subprocess.run(["curl", "-s", "-S", "-o", "-", "-w", "\n%{http_code}", "--max-time", "20",
                        "--noproxy", "*"] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code or 0), body, r.stderr


def test_relay_ops_plain_http_on_the_tls_port(t):
    relay = _tls_relay(t)
    status, body, err = _curl("http://127.0.0.1:%d/" % relay.tls_port)
    eq(status, 400, "status of plain HTTP on the TLS port (curl: %r)" % err)
    check(b"https" in body and b"plain HTTP" in body, "the page: %r" % body)
    # HTTPS on the same port still works (an unknown host: 404 from the relay).
    status, _, err = _curl("--cacert", relay.ca, "https://localhost:%d/" % relay.tls_port)
    eq(status, 404, "status over HTTPS (curl: %r)" % err)
    wait_for(lambda: _log_lines(relay, lambda l: "plain http on the tls port peer=127.0.0.1:" in l
                                and "status=400" in l), 20, "the plain HTTP logged")


def test_relay_ops_bad_handshakes_are_logged_at_a_bounded_rate(t):
    relay = _tls_relay(t)
    # Garbage that is not a TLS record, and a ClientHello-looking start that is no handshake.
    for data in (b"\x00\x01\x02 garbage\r\n\r\n", b"\x16\x03\x01\x00\x05hello" + b"\x00" * 64):
        s = socket.create_connection(("127.0.0.1", relay.tls_port), timeout=10)
        with s:
            s.sendall(data)
            s.settimeout(10)
            try:
                got = s.recv(4096)
                check(not got.startswith(b"HTTP/"), "an HTTP answer to a bad handshake: %r" % got)
            except (ConnectionResetError, socket.timeout):
                pass
    wait_for(lambda: _log_lines(relay, lambda l: "tls handshake failed peer=127.0.0.1:" in l and
                                "not a TLS record (first byte 0x00)" in l), 20,
             "the garbage logged")
    wait_for(lambda: len(_log_lines(relay, lambda l: "tls handshake failed" in l)) >= 2, 20,
             "the bad ClientHello logged")
    # Many more: the log stays bounded (TT_HEADCONN_LOG_BURST lines per 10 s window).
    start = time.monotonic()
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", relay.tls_port), timeout=10)
        with s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(10)
            try:
                s.recv(4096)
            except OSError:
                pass
    windows = 2 + int((time.monotonic() - start) / 10)
    n = len(_log_lines(relay, lambda l: "plain http on the tls port" in l or
                       "tls handshake failed" in l))
    check(n <= 10 * windows, "%d log lines for 42 bad connections" % n)
    check(relay.proc.alive(), "the relay died")
    # ... and every one is counted
    import urllib.request
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % relay.admin_port,
                                  timeout=20).read().decode()
    m = dict(re.findall(r'^tether_tls_refused_total\{reason="(\w+)"\} (\d+)$', text, re.M))
    eq(int(m.get("plain_http", -1)), 40, "tether_tls_refused_total{reason=plain_http}")
    check(int(m.get("handshake", -1)) >= 2, "tether_tls_refused_total{reason=handshake}: %r" % m)


# ---------------------------------------------------------------- the cluster

def _cluster_nodes(t, a_extra=()):
    from test_cluster import _free_range_all, _node
    redis = RedisServer(t)
    low, high = _free_range_all(t)
    a = _node(t, redis, "node-a", "127.0.0.2", (low, high), extra=list(a_extra))
    b = _node(t, redis, "node-b", "127.0.0.3", (low, high))
    return redis, a, b


def test_relay_ops_cluster_holder_died_is_503_and_logged(t):
    redis, a, b = _cluster_nodes(t)
    # node a sees node b join (b started after a's first beat)
    wait_for(lambda: _log_lines(a, lambda l: "node joined node=node-b addr=" in l), 20,
             "node a to log node b joining")
    svc = t.http_service(big_size=1024)
    agent = t.agent(a, http=svc.port, server=a.url + "/?tether-redirected=1")
    eq(b.request("GET", "/whoami", label=agent.label)[0], 200, "via node b while a lives")
    a.proc.stop(signal.SIGKILL)
    # The device cannot move (it knows node a only): through node b it is unreachable, 503,
    # whether b still believes a alive (its connection refused) or has seen it leave.
    for i in range(3):
        status, _, body = b.request("GET", "/whoami", label=agent.label)
        eq(status, 503, "status via node b after node a died (%d)" % i)
        check(b"cannot reach the device" in body or b"unreachable" in body.lower(),
              "the page: %r" % body)
        check(b"local web service" not in body, "the 502 page's words: %r" % body)
    wait_for(lambda: _log_lines(b, lambda l: "node left node=node-a" in l), 30,
             "node b to log node a leaving")
    status, _, _ = b.request("GET", "/whoami", label=agent.label)
    eq(status, 503, "status via node b once node a left")
    agent.stop()


def test_relay_ops_cluster_peer_unreachable_names_node_and_device(t):
    # node a's cluster address is a closed port: node b cannot reach it while it lives.
    closed = free_port()
    redis, a, b = _cluster_nodes(t, a_extra=["--cluster-addr", "127.0.0.1:%d" % closed])
    svc = t.http_service(big_size=1024)
    agent = t.agent(a, http=svc.port, server=a.url + "/?tether-redirected=1")
    status, _, body = b.request("GET", "/whoami", label=agent.label)
    eq(status, 503, "status via node b for a device on unreachable node a")
    check(b"local web service" not in body, "the 502 page's words: %r" % body)
    want = "cluster peer unreachable node=node-a addr=127.0.0.1:%d device=%s err=" % (
        closed, agent.name)
    wait_for(lambda: _log_lines(b, lambda l: want in l), 20, "the line %r" % want)


# ---------------------------------------------------------------- logs an operator can act on

def _refusal_of(t, relay, name, token):
    """The agent's error event and the relay's log line for a refused registration."""
    a = t.agent(relay, name=name, token=token, json_mode=True, wait=False, http=free_port(),
                state_dir=t.mkdtemp("state-" + name))
    _, line = a.proc.wait_line(lambda l: '"error"' in l, 30, 0, "an error event")
    a.stop()
    logged = wait_for(lambda: _log_lines(relay, lambda l: "device refused device=%s " % name in l),
                      20, "the refusal of %s logged" % name)
    return line, logged[0]


def test_relay_ops_wrong_token_and_unknown_name_logged_apart(t):
    tokens = t.path("tokens")
    with open(tokens, "w") as f:
        f.write("dev-known token-of-dev-known-0123\n")
    # Two relays: the log has one refusal line per address per minute.
    r1 = Relay(t, token=None, extra=["--tokens-file", tokens])
    r2 = Relay(t, token=None, extra=["--tokens-file", tokens])
    ev_unknown, log_unknown = _refusal_of(t, r1, "dev-stranger", "token-of-dev-known-0123")
    ev_token, log_token = _refusal_of(t, r2, "dev-known", "a-wrong-token-0123456789")
    check(log_unknown.endswith("cause=unknown-name"), "unknown name: %r" % log_unknown)
    check(log_token.endswith("cause=token"), "wrong token: %r" % log_token)
    # The devices are told the same thing: the answer does not say which names exist.
    strip = lambda ev, name: re.sub(r'"time":"[^"]*",?', "", ev).replace(name, "NAME")
    eq(strip(ev_unknown, "dev-stranger"), strip(ev_token, "dev-known"), "the error events")
    for l in (log_unknown, log_token):
        check("token-of-dev-known" not in l and "a-wrong-token" not in l, "a token logged: %r" % l)


def test_relay_ops_startup_summary(t):
    data = t.mkdtemp("data")
    relay = Relay(t, token=None, data_dir=data)
    _, line = relay.proc.wait_line(lambda l: TOKEN_LINE.match(l), 20, what="the token")
    token = TOKEN_LINE.match(line).group(1)
    lines = wait_for(lambda: _log_lines(relay, lambda l: " relay started " in l), 20,
                     "the start-up summary")
    l = lines[0]
    for want in ("version=", "public_url=http://LABEL.localhost:%d" % relay.port,
                 "tcp_ports=%d-%d" % (relay.tcp_low, relay.tcp_high), "tcp_bind=127.0.0.1",
                 "tokens=generated", "registry=%s/registry.db" % data):
        check(want in l, "%r not in the summary %r" % (want, l))
    check(token not in relay.proc.stderr_text(), "the token is in the log")
    log = relay.proc.stderr_text()
    check("listening addr=127.0.0.1:%d for=devices,browsers" % relay.port in log, "listener line")
    check("listening addr=127.0.0.1:%d for=admin" % relay.admin_port in log, "admin line")


def test_relay_ops_log_format_json(t):
    """--log-format json: every stderr line of the relay is one JSON object with time, program,
    level and msg first; a device's registration is logged with its name as a field; a bad value
    is a usage error."""
    import json
    relay = Relay(t, extra=["--log-format", "json"])
    t.agent(relay, name="dev-jsonlog", http=free_port())
    lines = wait_for(lambda: [l for l in relay.proc.stderr_text().splitlines()
                              if "dev-jsonlog" in l], 20, "a log line naming the device")
    for l in relay.proc.stderr_text().splitlines():
        if not l.strip():
            continue
        obj = json.loads(l)
        eq(list(obj)[:4], ["time", "program", "level", "msg"], "first keys of %r" % l)
        eq(obj["program"], "tetherd", "program of %r" % l)
    check(any(json.loads(l).get("name") == "dev-jsonlog" or
              "dev-jsonlog" in json.loads(l).values() for l in lines),
          "the device's name as a field: %r" % lines)
    r = run_cli([TETHERD, "--log-format", "xml"])
    eq(r.returncode, 2, "exit status of a bad --log-format")
    eq(r.stderr.strip(), "tetherd: --log-format: 'xml' is not one of text, json", "its message")
