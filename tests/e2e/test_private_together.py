"""test_private_together.py - issue 10's parts working together, with real processes (SPEC "Who
may reach a device" and "`tether connect`"): a grant token of the admin API used as the secret
of the browser sign-in form and with `tether connect --grant`; DELETE /api/grants/ID closing a
browser keep-alive connection and a `tether connect` stream made under that grant at once, on
the node holding the device and, in a two-node cluster, through the other node; an address
throttled for wrong secrets (given to the sign-in form or to `tether connect`) answered 429 by
both while another address signs in, also when the guesses come through another cluster node; a
users-file reload (SIGHUP) closing a removed user's browser connection and `tether connect`
stream together (in a cluster, the reload of the device's holder); a holder that cannot be
reached, audited offline by the node that could not pass the connections on; the audit log of
one relay run holding
every kind of line, field by field as SPEC writes them (and the operator's guide's fail2ban
filter run over it); and the operator's guide's technician scenario run as the guide writes it
(a grant of 15 minutes through `tetherd admin grant` and through curl, ssh through `tether
connect --stdio` as ProxyCommand to a real sshd, revocation)."""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time

from lib import (RedisServer, Sshd, TETHER, TETHERD, TestFailure, check, eq, free_port, short,
                 wait_for)
from test_private_connect import Listener
from test_private_grants import _closed, _echo_once, _upgrade, call, create, metric
from test_private_signin import FORM_CT, Conn, _cookie_of, _form

HERE = os.path.dirname(os.path.abspath(__file__))
GUIDE = os.path.join(HERE, "..", "..", "docs", "operators-guide.md")
ADMIN = "together-admin-token-0123456789"
DEVICE = "plant-7-gw"
USERS = ("# the users of the issue-10 integration tests\n"
         "alice alice-s3cret plant-7-*/*\n"
         "bob bob-s3cret plant-7-gw/*\n")
# SPEC's audit lines: their fields, in this order
CONN_KEYS = ["time", "event", "device", "service", "kind", "user", "client", "bytes_in",
             "bytes_out", "duration_ms", "outcome"]
SIGNIN_KEYS = ["time", "event", "user", "client", "outcome"]
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# ---------------------------------------------------------------- the world

def _relay_flags(t, users=USERS, name="relay"):
    """The flags of a private relay with a users file, an audit log and an admin token; returns
    (flags, users path, audit path)."""
    users_path = t.path("users-%s" % name)
    with open(users_path, "w") as f:
        f.write(users)
    audit = t.path("audit-%s.log" % name)
    return (["--access", "private", "--users-file", users_path, "--audit-log", audit,
             "--admin-token", ADMIN], users_path, audit)


def _private_relay(t, users=USERS, extra=()):
    flags, users_path, audit = _relay_flags(t, users)
    relay = t.relay(extra=flags + list(extra))
    relay.users_path, relay.audit_path = users_path, audit
    return relay


def _device(t, relay, ssh=False, tcp=None, server=None):
    """plant-7-gw on relay: a web service (http), a TCP echo (echo), a real sshd (ssh) if asked,
    and more TCP services ({name: port})."""
    web = t.http_service(big_size=1024, ident="plant-7-gw web")
    echo = t.tcp_echo()
    services = {"echo": echo.port}
    sshd = None
    if ssh:
        sshd = Sshd(t)
        services["ssh"] = sshd.port
    services.update(tcp or {})
    agent = t.agent(relay, name=DEVICE, http=web.port, tcp=services, server=server)
    check(agent.label, "the agent reported no http service: %r" % agent.services)
    return agent, sshd


def _audit(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [l.rstrip("\n") for l in f if l.strip()]
    except FileNotFoundError:
        return []


def _audit_where(path, n, what, **match):
    """Waits for n audit lines whose fields equal match; returns them (parsed)."""
    def found():
        out = [json.loads(l) for l in _audit(path)]
        return [a for a in out if all(a.get(k) == v for k, v in match.items())]
    wait_for(lambda: len(found()) >= n, 20, "%s in the audit log (%r)" % (what, match))
    return found()


# ---------------------------------------------------------------- a browser

def _sock(port, source=None):
    s = socket.socket()
    s.settimeout(20)
    if source:
        s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def _signin(node, label, user, secret, path="/whoami", source=None):
    """Posts the sign-in form (user, secret) to path on a fresh connection (from source);
    returns (status, headers, body, the local address used)."""
    s = _sock(node.port, source)
    local = "%s:%d" % s.getsockname()[:2]
    c = Conn(node.port, node.host(label), sock=s)
    try:
        st, hdrs, body = c.request("POST", path, [FORM_CT], _form(user, secret))
        return st, hdrs, body, local
    finally:
        c.close()


def _session(node, label, user, secret, path="/whoami"):
    """Signs in; returns the session cookie's name=value pair."""
    st, hdrs, body, _ = _signin(node, label, user, secret, path)
    eq(st, 303, "the sign-in of %r (body %s)" % (user, short(body)))
    eq(dict(hdrs).get("location"), "http://%s%s" % (node.host(label), path),
       "the 303's Location: the URL first asked for")
    pair, attrs, _ = _cookie_of(hdrs)
    check("domain" not in attrs and "httponly" in attrs and attrs.get("samesite") == "Lax",
          "the session cookie's attributes: %r" % attrs)
    return pair


def _browser(node, label, pair):
    """A keep-alive browser connection that made one request under the session pair."""
    c = Conn(node.port, node.host(label))
    st, _, body = c.request("GET", "/whoami", [("Cookie", pair)])
    eq((st, body), (200, b"plant-7-gw web"), "the device's page under the session")
    return c


def _get(node, label, pair, path="/whoami"):
    c = Conn(node.port, node.host(label))
    try:
        return c.request("GET", path, [("Cookie", pair)] if pair else [])[0]
    finally:
        c.close()


# ---------------------------------------------------------------- tether connect

def _stream(t, server, target, creds):
    """tether connect --listen with creds and one connection through it that echoed once."""
    lst = Listener(t, server, target, creds)
    s = socket.create_connection(("127.0.0.1", lst.port), timeout=20)
    eq(_echo_once(s, b"through tether connect"), b"through tether connect",
       "an echo through tether connect to %s" % target)
    return lst, s


def _connect_once(server, target, creds, data=b"", timeout=60):
    """tether connect --stdio; returns (exit status, stdout, stderr text)."""
    e = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    r = subprocess.run([TETHER, "connect", "--server", server] + list(creds) +
                       [target, "--stdio"], input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, env=e)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


# ---------------------------------------------------------------- a grant as a secret

def test_grant_token_signs_in_a_browser_and_tether_connect(t):
    """The token the admin API answers is the secret of the sign-in form (with the grant's
    user's name or none) and of tether connect --grant; it reaches what its patterns cover and
    nothing else, and the audit log names the grant's user."""
    relay = _private_relay(t)
    agent, _ = _device(t, relay)
    label = agent.label
    g, _, _ = create(relay.admin_port, user="acme-tech-jane", grants=(DEVICE + "/*",), token=ADMIN)
    narrow, _, _ = create(relay.admin_port, user="acme-tech-joe", grants=(DEVICE + "/echo",),
                          token=ADMIN)
    # the form: no name and the token, or the grant's user's name and the token
    pair = _session(relay, label, "", g["token"])
    c = _browser(relay, label, pair)
    st, _, body = c.request("GET", "/headers", [("Cookie", pair)])
    eq(st, 200, "the device's /headers under the grant's session")
    text = body.decode()
    check(pair.split("=", 1)[1] not in text and g["token"] not in text and "tether_session"
          not in text, "the device saw the session or the token: %s" % short(text))
    c.close()
    _session(relay, label, "acme-tech-jane", g["token"])
    # another user's name with the token, a token nobody issued: 401, the form again
    eq(_signin(relay, label, "alice", g["token"])[0], 401, "the token under another user's name")
    eq(_signin(relay, label, "", "ttg_" + "A" * 43)[0], 401, "a token nobody issued")
    # a grant that does not cover the web service: 403
    eq(_signin(relay, label, "", narrow["token"])[0], 403, "a grant for echo only, at http")
    # tether connect --grant with both tokens reaches echo
    for tok in (g["token"], narrow["token"]):
        rc, out, err = _connect_once(relay.url, DEVICE + "/echo", ["--grant", tok], b"granted")
        eq((rc, out), (0, b"granted"), "tether connect --grant (stderr %r)" % err)
    rc, out, err = _connect_once(relay.url, DEVICE + "/http", ["--grant", narrow["token"]])
    check(rc == 1 and "HTTP 403" in err, "the narrow grant at http: %r" % err)
    # the audit log: the sign-ins and connections under the grant's user
    oks = _audit_where(relay.audit_path, 2, "the grant's sign-ins", event="signin",
                       outcome="ok")
    eq([a["user"] for a in oks], ["acme-tech-jane"] * 2, "the users of the sign-ins")
    refused = _audit_where(relay.audit_path, 3, "the refused sign-ins", event="signin",
                           outcome="refused")
    eq(sorted(a["user"] for a in refused), sorted(["alice", "", "acme-tech-joe"]),
       "the refused sign-ins' users (as typed, or the grant's user without a grant for it)")
    _audit_where(relay.audit_path, 1, "a connection under the grant", event="connection",
                 kind="tcp", service="echo", user="acme-tech-jane", outcome="ok")
    _audit_where(relay.audit_path, 1, "a connection under the narrow grant", event="connection",
                 kind="tcp", service="echo", user="acme-tech-joe", outcome="ok")
    _audit_where(relay.audit_path, 1, "the browser connection", event="connection",
                 kind="http", service="http", user="acme-tech-jane", outcome="ok")
    log = relay.proc.stderr_text()
    check(g["token"] not in log and pair.split("=", 1)[1] not in log,
          "the relay's log holds the token or the session")


def test_grant_over_https_and_wss(t):
    """The same grant over TLS: the sign-in form over https sets the __Host- cookie (Secure),
    tether connect --grant reaches the service over wss:// (--ca-file), and a DELETE closes the
    https keep-alive connection and the wss:// stream together."""
    from test_private_signin import _tls_up
    from test_tls import DOMAIN, Pki, _client_ctx
    pki = Pki(t)
    crt, key, _ = pki.server()
    tls_port = free_port()
    relay = _private_relay(t, extra=["--domain", DOMAIN, "--tls-listen",
                                     "127.0.0.1:%d" % tls_port, "--tls-cert", crt,
                                     "--tls-key", key])
    wait_for(lambda: _tls_up(tls_port), 30, "the TLS listener")
    agent, _ = _device(t, relay)
    name = "%s.%s" % (agent.label, DOMAIN)
    host = "%s:%d" % (name, tls_port)

    def tls_conn():
        raw = socket.create_connection(("127.0.0.1", tls_port), timeout=20)
        return Conn(tls_port, host, sock=_client_ctx(pki).wrap_socket(raw, server_hostname=name))

    g, _, _ = create(relay.admin_port, user="acme-tech-jane", grants=(DEVICE + "/*",), token=ADMIN)
    c = tls_conn()
    st, hdrs, body = c.request("POST", "/whoami", [FORM_CT], _form("", g["token"]))
    c.close()
    eq(st, 303, "the grant's sign-in over https (body %s)" % short(body))
    eq(dict(hdrs).get("location"), "https://%s/whoami" % host, "the 303's Location")
    pair, attrs, _ = _cookie_of(hdrs)
    check(pair.startswith("__Host-tether_session=") and "secure" in attrs and
          "domain" not in attrs, "the cookie over https: %r %r" % (pair, attrs))
    browser = tls_conn()
    st, _, body = browser.request("GET", "/whoami", [("Cookie", pair)])
    eq((st, body), (200, b"plant-7-gw web"), "the device's page over https")
    wss = "wss://localhost:%d" % tls_port
    _, stream = _stream(t, wss, DEVICE + "/echo", ["--grant", g["token"], "--ca-file", pki.ca])
    eq(call(relay.admin_port, "DELETE", "/api/grants/" + g["id"], token=ADMIN)[0], 200,
       "DELETE /api/grants/ID")
    check(browser.closed(timeout=10), "the https connection under the grant stays open")
    check(_closed(stream, 10), "the wss:// stream under the grant stays open")
    browser.close()
    stream.close()
    lines = _audit_where(relay.audit_path, 2, "the revoked connections", event="connection",
                         user="acme-tech-jane")
    eq(sorted((a["kind"], a["outcome"]) for a in lines), [("http", "refused"), ("tcp", "refused")],
       "the revoked connections' lines")


# ---------------------------------------------------------------- revocation

def test_grant_deleted_closes_browser_and_connect_at_once(t):
    """DELETE /api/grants/ID closes, together, the browser keep-alive connection and the tether
    connect stream made under the grant; another user's stay."""
    relay = _private_relay(t)
    agent, _ = _device(t, relay)
    label = agent.label
    g, _, _ = create(relay.admin_port, user="acme-tech-jane", grants=(DEVICE + "/*",), token=ADMIN)
    pair = _session(relay, label, "acme-tech-jane", g["token"])
    browser = _browser(relay, label, pair)
    _, stream = _stream(t, relay.url, DEVICE + "/echo", ["--grant", g["token"]])
    bob_pair = _session(relay, label, "bob", "bob-s3cret")
    bob_browser = _browser(relay, label, bob_pair)
    _, bob_stream = _stream(t, relay.url, DEVICE + "/echo", ["--user", "bob", "--secret",
                                                              "bob-s3cret"])
    t0 = time.monotonic()
    eq(call(relay.admin_port, "DELETE", "/api/grants/" + g["id"], token=ADMIN)[0], 200,
       "DELETE /api/grants/ID")
    check(browser.closed(timeout=10), "the browser connection under the grant stays open")
    check(_closed(stream, 10), "the tether connect stream under the grant stays open")
    print("both closed %.2fs after the DELETE was sent" % (time.monotonic() - t0))
    eq(metric(relay.admin_port, "tether_access_revoked_total", token=ADMIN), 2,
       "tether_access_revoked_total")
    # bob's go on
    eq(bob_browser.request("GET", "/whoami", [("Cookie", bob_pair)])[0], 200,
       "bob's keep-alive connection")
    eq(_echo_once(bob_stream, b"bob still"), b"bob still", "bob's tether connect stream")
    # the grant's session and token open nothing any more
    eq(_get(relay, label, pair), 401, "the revoked grant's session")
    rc, _, err = _connect_once(relay.url, DEVICE + "/echo", ["--grant", g["token"]], b"x")
    check(rc == 1 and "HTTP 401" in err, "the revoked token at tether connect: %r" % err)
    eq(_signin(relay, label, "", g["token"])[0], 401, "the revoked token at the sign-in form")
    for c in (browser, bob_browser):
        c.close()
    for s in (stream, bob_stream):
        s.close()
    # both revoked connections are audited under the grant's user, refused (the relay ended
    # them), bob's as ok
    lines = _audit_where(relay.audit_path, 2, "the revoked connections", event="connection",
                         user="acme-tech-jane")
    eq(sorted((a["kind"], a["outcome"]) for a in lines), [("http", "refused"), ("tcp", "refused")],
       "the revoked connections' lines")
    lines = _audit_where(relay.audit_path, 2, "bob's connections", event="connection", user="bob")
    eq(sorted((a["kind"], a["outcome"]) for a in lines), [("http", "ok"), ("tcp", "ok")],
       "bob's lines")


def test_grant_expiry_closes_browser_and_connect(t):
    """A grant of 5 seconds: its browser keep-alive connection and its tether connect stream
    work until it expires, then both are closed (without a request: the relay's own beat), the
    audit lines say refused, and the token opens nothing any more."""
    relay = _private_relay(t)
    agent, _ = _device(t, relay)
    label = agent.label
    g, _, _ = create(relay.admin_port, user="acme-tech-jane", grants=(DEVICE + "/*",), ttl="5s",
                     token=ADMIN)
    pair = _session(relay, label, "", g["token"])
    browser = _browser(relay, label, pair)
    _, stream = _stream(t, relay.url, DEVICE + "/echo", ["--grant", g["token"]])
    check(browser.closed(timeout=15), "the browser connection outlived its grant")
    check(_closed(stream, 15), "the tether connect stream outlived its grant")
    eq(metric(relay.admin_port, "tether_access_revoked_total", token=ADMIN), 2,
       "tether_access_revoked_total")
    eq(_get(relay, label, pair), 401, "the expired grant's session")
    rc, _, err = _connect_once(relay.url, DEVICE + "/echo", ["--grant", g["token"]], b"x")
    check(rc == 1 and "HTTP 401" in err, "the expired token at tether connect: %r" % err)
    browser.close()
    stream.close()
    lines = _audit_where(relay.audit_path, 2, "the expired grant's connections",
                         event="connection", user="acme-tech-jane")
    eq(sorted((a["kind"], a["outcome"]) for a in lines), [("http", "refused"), ("tcp", "refused")],
       "the expired grant's connections' lines")


def test_cluster_grant_deleted_through_the_other_node_closes_browser_and_connect(t):
    """Two nodes sharing Redis, the device on node A: a grant made on A signs in a browser and
    opens tether connect streams through both nodes; DELETE through node B closes all of them
    (the holder's checks read the deletion from Redis within a beat)."""
    from test_cluster import _free_range_all, _node
    redis = RedisServer(t)
    low, high = _free_range_all(t)
    nodes = []
    for name, bind in (("node-a", "127.0.0.2"), ("node-b", "127.0.0.3")):
        flags, users_path, audit = _relay_flags(t, name=name)
        n = _node(t, redis, name, bind, (low, high), extra=flags)
        n.audit_path = audit
        nodes.append(n)
    a, b = nodes
    agent, _ = _device(t, a, server=a.url + "/?tether-redirected=1")
    label = agent.label
    # made on B, signed in through B (the holder, A, reads it from Redis when shown it)
    g, _, _ = create(b.admin_port, user="acme-tech-jane", grants=(DEVICE + "/*",), token=ADMIN)
    st, hdrs, _, signin_from = _signin(b, label, "", g["token"])
    eq(st, 303, "the grant's sign-in through node B")
    pair, _, _ = _cookie_of(hdrs)
    browsers = [_browser(n, label, pair) for n in (a, b)]
    streams = [_stream(t, n.url, DEVICE + "/echo", ["--grant", g["token"]])[1] for n in (a, b)]
    eq(call(b.admin_port, "DELETE", "/api/grants/" + g["id"], token=ADMIN)[0], 200,
       "DELETE through node B")
    for c, n in zip(browsers, (a, b)):
        check(c.closed(timeout=10), "the browser connection through %s stays open" % n.name)
    for s, n in zip(streams, (a, b)):
        check(_closed(s, 10), "the tether connect stream through %s stays open" % n.name)
    revoked = sum(metric(n.admin_port, "tether_access_revoked_total", token=ADMIN) for n in nodes)
    eq(revoked, 4, "tether_access_revoked_total over both nodes")
    for n in nodes:
        eq(_get(n, label, pair), 401, "the revoked session through %s" % n.name)
        rc, _, err = _connect_once(n.url, DEVICE + "/echo", ["--grant", g["token"]], b"x")
        check(rc == 1 and "HTTP 401" in err, "the revoked token through %s: %r" % (n.name, err))
    for c in browsers:
        c.close()
    for s in streams:
        s.close()
    # the holder wrote every line, with the visitor's own address
    lines = _audit_where(a.audit_path, 4, "the revoked connections at the holder",
                         event="connection", user="acme-tech-jane")
    check(all(x["client"].startswith("127.0.0.1:") and x["outcome"] == "refused"
              for x in lines), "the holder's lines: %r" % lines)
    _audit_where(a.audit_path, 1, "the sign-in through node B at the holder", event="signin",
                 user="acme-tech-jane", client=signin_from, outcome="ok")
    check(not [l for l in _audit(b.audit_path) if '"event":"connection"' in l],
          "node B wrote connection lines for what it passed on: %r" % _audit(b.audit_path))


def test_cluster_holder_unreachable_audited_offline_by_the_forwarder(t):
    """Node A holds the device but the other nodes cannot reach it (its --cluster-addr is a
    closed port): a browser request, a tether connect and a TCP client that come to node B get
    a 503 "device unreachable" page, a refusal (HTTP 503, "cannot be reached") and a closed
    connection, and node B, which alone saw them,
    writes their audit lines, outcome "offline" as for any device whose node is gone (the TCP
    client's with its service's name, which B reads from Redis)."""
    from test_cluster import _free_range_all, _node
    redis = RedisServer(t)
    low, high = _free_range_all(t)
    nodes = []
    for name, bind in (("node-a", "127.0.0.2"), ("node-b", "127.0.0.3")):
        flags, users_path, audit = _relay_flags(t, name=name)
        extra = flags + ["--public", "*/pub"]
        if name == "node-a":
            extra += ["--cluster-addr", "127.0.0.1:%d" % free_port()]  # nothing listens there
        n = _node(t, redis, name, bind, (low, high), extra=extra)
        n.audit_path = audit
        nodes.append(n)
    a, b = nodes
    pub = t.tcp_echo()
    agent, _ = _device(t, a, server=a.url + "/?tether-redirected=1", tcp={"pub": pub.port})
    label, port = agent.label, agent.tcp_port("pub")
    # a browser, signed in through B (the sign-in itself is forwarded: a 503 too)
    c = Conn(b.port, b.host(label))
    browser_from = "%s:%d" % c.sock.getsockname()[:2]
    st, _, _ = c.request("GET", "/whoami", [])
    c.close()
    eq(st, 503, "a browser request through B for a device on unreachable node A")
    rc, _, err = _connect_once(b.url, DEVICE + "/echo", ["--user", "alice", "--secret",
                                                         "alice-s3cret"], b"x")
    check(rc == 1 and "HTTP 503" in err and "cannot be reached" in err,
          "tether connect through B: %r" % err)
    held = []

    def bound():  # node B binds the device's port at its next beat
        try:
            held.append(socket.create_connection((b.tcp_bind, port), timeout=20))
            return True
        except ConnectionRefusedError:
            return False
    wait_for(bound, 20, "node B's listener on the device's port")
    q = held[0]
    tcp_from = "%s:%d" % q.getsockname()[:2]
    check(_closed(q, 10), "a TCP client of B for a device on unreachable node A is served")
    q.close()
    lines = _audit_where(b.audit_path, 3, "B's lines", event="connection", outcome="offline")
    by = {l["service"]: l for l in lines}
    eq(sorted(by), ["echo", "http", "pub"], "the services of B's offline lines: %r" % lines)
    eq({k: by["http"][k] for k in ("device", "kind", "user", "client", "bytes_in")},
       {"device": DEVICE, "kind": "http", "user": None, "client": browser_from, "bytes_in": 0},
       "the browser request's line")
    # the forwarding node checks no credentials (the holder does): no user it could vouch for
    eq({k: by["echo"][k] for k in ("device", "user")}, {"device": DEVICE, "user": None},
       "tether connect's line")
    check(by["echo"]["client"].startswith("127.0.0.1:"), "tether connect's client %r" % by["echo"])
    eq({k: by["pub"][k] for k in ("device", "kind", "user", "client")},
       {"device": DEVICE, "kind": "tcp", "user": None, "client": tcp_from}, "the TCP client's line")
    check(not [l for l in _audit(a.audit_path) if '"event":"connection"' in l],
          "node A wrote lines for what never reached it: %r" % _audit(a.audit_path))


def test_users_reload_closes_browser_and_connect(t):
    """A users file reloaded (SIGHUP) without alice closes her browser keep-alive connection and
    her tether connect stream together; bob's go on."""
    relay = _private_relay(t)
    agent, _ = _device(t, relay)
    label = agent.label
    held = {}
    for user in ("alice", "bob"):
        pair = _session(relay, label, user, user + "-s3cret")
        held[user] = (pair, _browser(relay, label, pair),
                      _stream(t, relay.url, DEVICE + "/echo",
                              ["--user", user, "--secret", user + "-s3cret"])[1])
    with open(relay.users_path, "w") as f:
        f.write(USERS.replace("alice alice-s3cret plant-7-*/*\n", "# alice left\n"))
    relay.proc.send_signal(signal.SIGHUP)
    pair, browser, stream = held["alice"]
    check(browser.closed(timeout=10), "alice's browser connection survived her removal")
    check(_closed(stream, 10), "alice's tether connect stream survived her removal")
    pair, browser, stream = held["bob"]
    eq(browser.request("GET", "/whoami", [("Cookie", pair)])[0], 200, "bob's browser connection")
    eq(_echo_once(stream, b"bob stays"), b"bob stays", "bob's tether connect stream")
    eq(metric(relay.admin_port, "tether_access_revoked_total", token=ADMIN), 2,
       "tether_access_revoked_total")
    eq(_get(relay, label, held["alice"][0]), 401, "alice's session after the reload")
    rc, _, err = _connect_once(relay.url, DEVICE + "/echo", ["--user", "alice", "--secret",
                                                              "alice-s3cret"], b"x")
    check(rc == 1 and "HTTP 401" in err, "alice's tether connect after the reload: %r" % err)
    for user in held:
        held[user][1].close()
        held[user][2].close()
    lines = _audit_where(relay.audit_path, 3, "alice's connections", event="connection",
                         user="alice")
    eq(sorted((a["kind"], a["outcome"], a["bytes_in"] > 0) for a in lines),
       [("http", "refused", True), ("tcp", "refused", False), ("tcp", "refused", True)],
       "alice's revoked connections' lines (and her refused attempt's)")


def test_cluster_users_reload_is_the_holders(t):
    """Two nodes, the device on node A, alice's browser connection and tether connect stream
    through node B: a reload of node B's users file without alice changes nothing (B passes
    them on, A checks); the same reload on node A, the holder, closes both at once. So a user
    is removed from a cluster by changing the file and signalling every node (the guide)."""
    from test_cluster import _free_range_all, _node
    redis = RedisServer(t)
    low, high = _free_range_all(t)
    nodes = []
    for name, bind in (("node-a", "127.0.0.2"), ("node-b", "127.0.0.3")):
        flags, users_path, audit = _relay_flags(t, name=name)
        n = _node(t, redis, name, bind, (low, high), extra=flags)
        n.users_path, n.audit_path = users_path, audit
        nodes.append(n)
    a, b = nodes
    agent, _ = _device(t, a, server=a.url + "/?tether-redirected=1")
    label = agent.label
    pair = _session(b, label, "alice", "alice-s3cret")
    browser = _browser(b, label, pair)
    _, stream = _stream(t, b.url, DEVICE + "/echo", ["--user", "alice", "--secret",
                                                     "alice-s3cret"])
    without = USERS.replace("alice alice-s3cret plant-7-*/*\n", "# alice left\n")
    with open(b.users_path, "w") as f:
        f.write(without)
    b.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "users reloaded" in b.proc.stderr_text(), 20, "node B's reload")
    time.sleep(1.5)  # a beat and more
    eq(browser.request("GET", "/whoami", [("Cookie", pair)])[0], 200,
       "alice's browser connection through B after B's reload")
    eq(_echo_once(stream, b"still here"), b"still here",
       "alice's tether connect stream through B after B's reload")
    with open(a.users_path, "w") as f:
        f.write(without)
    a.proc.send_signal(signal.SIGHUP)
    check(browser.closed(timeout=10), "alice's browser connection survived the holder's reload")
    check(_closed(stream, 10), "alice's tether connect stream survived the holder's reload")
    eq(_get(b, label, pair), 401, "alice's session through B after the holder's reload")
    browser.close()
    stream.close()


# ---------------------------------------------------------------- the throttle

def _until_checked(guess, what, tries=200, limit=30):
    """Makes wrong attempts (guess() returns the status) until the address is throttled (429)
    and then one more is checked again (401: the token that refilled is used up at that
    moment). Returns when that 401 came; the address then has no failure left for a second."""
    seen = []
    deadline = time.monotonic() + limit
    for _ in range(tries):
        st = guess()
        seen.append(st)
        check(st in (401, 429), "a wrong %s answered %s" % (what, st))
        if st == 401 and 429 in seen:
            return time.monotonic()
        check(time.monotonic() < deadline, "wrong %ss: %r" % (what, seen))
        if 429 in seen:
            time.sleep(0.02)
    raise TestFailure("wrong %ss never throttled then checked again: %r" % (what, seen))


def _throttled(attempt, guess, what):
    """The right credential, tried right after a wrong one was checked, is refused 429. A try
    that came a second or more after that check (a slow machine) may have found a refilled
    token, and is made again (three times at most)."""
    for _ in range(3):
        at = _until_checked(guess, what)
        st = attempt()
        if st == 429:
            return
        check(time.monotonic() - at >= 1.0,
              "the right %s from the throttled address was answered %s" % (what, st))
    raise TestFailure("the right %s was never tried within a second of a wrong one" % what)


def _connect_status(err):
    m = re.search(r"\(HTTP (\d+)\)", err)
    return int(m.group(1)) if m else 0


def test_signin_guesses_throttle_tether_connect_too(t):
    """An address guessing secrets at the sign-in form is throttled there (429) and at tether
    connect (429, exit 1), even with the right secret; another address signs in and connects."""
    relay = _private_relay(t)
    agent, _ = _device(t, relay)
    label = agent.label
    guesses = iter(range(1000))

    def wrong_form():
        return _signin(relay, label, "alice", "guess-%d" % next(guesses))[0]

    def right_connect():
        rc, out, err = _connect_once(relay.url, DEVICE + "/echo",
                                     ["--user", "alice", "--secret", "alice-s3cret"], b"x")
        check(rc == 1 or out == b"x", "tether connect: %r" % err)
        st = _connect_status(err) if rc == 1 else 101
        if st == 429:
            check("too many failed attempts" in err, "the 429's words: %r" % err)
        return st

    _throttled(right_connect, wrong_form, "secret at the form, then tether connect,")
    _throttled(lambda: _signin(relay, label, "alice", "alice-s3cret")[0], wrong_form,
               "secret at the form")
    # another address: the form and the visitor's upgrade take alice's secret
    st, hdrs, _, _ = _signin(relay, label, "alice", "alice-s3cret", source="127.0.0.2")
    eq(st, 303, "the right secret from 127.0.0.2")
    pair, _, _ = _cookie_of(hdrs)
    eq(_get(relay, label, pair), 200, "the session made from 127.0.0.2")
    import base64
    basic = "Basic " + base64.b64encode(b"alice:alice-s3cret").decode()
    eq(_upgrade(relay.port, DEVICE, "echo", basic, "127.0.0.2"), 101,
       "tether connect's upgrade from 127.0.0.2")
    check(metric(relay.admin_port, 'tether_access_signins_total{outcome="throttled"}',
                 token=ADMIN) >= 1, "throttled sign-ins counted")
    check(metric(relay.admin_port, 'tether_connect_refused_total{status="429"}',
                 token=ADMIN) >= 1, "throttled tether connects counted")
    lines = [json.loads(l) for l in _audit(relay.audit_path)]
    check(any(a["event"] == "signin" and a["outcome"] == "ok" and
              a["client"].startswith("127.0.0.2:") for a in lines), "127.0.0.2's sign-in line")


def test_connect_guesses_throttle_the_signin_form_too(t):
    """The other way round: wrong secrets given to tether connect throttle the sign-in form of
    the same address (429) while another address signs in."""
    relay = _private_relay(t)
    agent, _ = _device(t, relay)
    label = agent.label
    guesses = iter(range(1000))

    def wrong_connect():
        rc, _, err = _connect_once(relay.url, DEVICE + "/echo",
                                   ["--user", "alice", "--secret", "guess-%d" % next(guesses)])
        eq(rc, 1, "exit status of a wrong secret (%r)" % err)
        return _connect_status(err)

    def right_form():
        st, _, body, _ = _signin(relay, label, "alice", "alice-s3cret")
        if st == 429:
            check(b"<form" in body or b"too many" in body.lower(), "the 429 page: %s" % short(body))
        return st

    _throttled(right_form, wrong_connect, "secret at tether connect, then the form,")
    eq(_signin(relay, label, "alice", "alice-s3cret", source="127.0.0.2")[0], 303,
       "the right secret from 127.0.0.2")


def test_cluster_guesses_through_one_node_throttle_the_other(t):
    """Two nodes, the device on node A: wrong secrets at the sign-in form that come through node
    B are counted by A, the holder, under the visitor's own address (B vouches for it), so that
    address's tether connect straight to A is throttled too (429); and the other way round,
    wrong secrets given to tether connect through B throttle the form at A."""
    from test_cluster import _free_range_all, _node
    redis = RedisServer(t)
    low, high = _free_range_all(t)
    nodes = []
    for name, bind in (("node-a", "127.0.0.2"), ("node-b", "127.0.0.3")):
        flags, _, _ = _relay_flags(t, name=name)
        nodes.append(_node(t, redis, name, bind, (low, high), extra=flags))
    a, b = nodes
    agent, _ = _device(t, a, server=a.url + "/?tether-redirected=1")
    label = agent.label
    guesses = iter(range(1000))

    def wrong_form_via_b():
        return _signin(b, label, "alice", "guess-%d" % next(guesses))[0]

    def right_connect_at_a():
        rc, out, err = _connect_once(a.url, DEVICE + "/echo",
                                     ["--user", "alice", "--secret", "alice-s3cret"], b"x")
        check(rc == 1 or out == b"x", "tether connect: %r" % err)
        return _connect_status(err) if rc == 1 else 101

    _throttled(right_connect_at_a, wrong_form_via_b,
               "secret at the form through B, then tether connect at A,")

    def wrong_connect_via_b():
        rc, _, err = _connect_once(b.url, DEVICE + "/echo",
                                   ["--user", "alice", "--secret", "guess-%d" % next(guesses)])
        eq(rc, 1, "exit status of a wrong secret (%r)" % err)
        return _connect_status(err)

    _throttled(lambda: _signin(a, label, "alice", "alice-s3cret")[0], wrong_connect_via_b,
               "secret at tether connect through B, then the form at A,")
    # another address is not concerned, through either node
    eq(_signin(b, label, "alice", "alice-s3cret", source="127.0.0.2")[0], 303,
       "the right secret from 127.0.0.2 through B")
    check(metric(b.admin_port, 'tether_access_checks_total{result="throttled"}', token=ADMIN)
          in (0, None), "node B checked secrets of a device it does not hold")


# ---------------------------------------------------------------- the audit log

def _exact(line, keys):
    """The line is the compact JSON of its fields in SPEC's order; returns them."""
    v = json.loads(line)
    eq(list(v), keys, "the fields of %s" % line)
    eq(json.dumps(v, separators=(",", ":")), line, "the line's bytes")
    check(TIME_RE.match(v["time"]), "time %r" % v["time"])
    return v


def test_audit_log_of_one_run_has_every_kind_of_line(t):
    """One relay run: a refused and a good sign-in, a browser connection under the session, a
    tether connect stream, a public TCP client and one refused by --tcp-allow each write one
    line, with exactly SPEC's fields; the guide's fail2ban filter finds the refused ones."""
    pub_echo = t.tcp_echo()
    relay = _private_relay(t, extra=["--public", "*/pub", "--tcp-allow", "127.0.0.1/32"])
    agent, _ = _device(t, relay, tcp={"pub": pub_echo.port})
    label = agent.label
    start = time.time()
    hostile = 'x","client":"198.51.100.1:1'
    # 1. sign-ins: refused (a hostile name), then ok
    st, _, _, refused_from = _signin(relay, label, hostile, "wrong", source="127.0.0.3")
    eq(st, 401, "a wrong secret")
    st, hdrs, _, ok_from = _signin(relay, label, "alice", "alice-s3cret")
    eq(st, 303, "alice's sign-in")
    pair, _, _ = _cookie_of(hdrs)
    # 2. a browser connection under the session: two requests, then it closes
    c = Conn(relay.port, relay.host(label))
    browser_from = "%s:%d" % c.sock.getsockname()[:2]
    sent = received = 0
    for path in ("/whoami", "/small?i=2"):
        raw = ("GET %s HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\n\r\n" %
               (path, relay.host(label), pair)).encode()
        c.sock.sendall(raw)
        sent += len(raw)
        st, hdrs, body = c.response()
        eq(st, 200, "GET %s under the session" % path)
    c.close()
    # 3. tether connect to the private echo
    lst, s = _stream(t, relay.url, DEVICE + "/echo", ["--user", "alice", "--secret",
                                                      "alice-s3cret"])
    s.close()
    # 4. a public TCP client, and 5. one from a network --tcp-allow does not list
    port = agent.tcp_port("pub")
    p = _sock(port)
    public_from = "%s:%d" % p.getsockname()[:2]
    eq(_echo_once(p, b"public bytes\n"), b"public bytes\n", "the public port's echo")
    p.close()
    q = _sock(port, "127.0.0.2")
    denied_from = "%s:%d" % q.getsockname()[:2]
    check(_closed(q, 10), "a client --tcp-allow does not list is served")
    q.close()
    wait_for(lambda: len(_audit(relay.audit_path)) >= 6, 20, "six audit lines")
    time.sleep(0.5)  # nothing more comes
    lines = _audit(relay.audit_path)
    eq(len(lines), 6, "audit lines:\n%s" % "\n".join(lines))
    by = {}
    for line in lines:
        v = json.loads(line)
        key = (v["event"], v.get("service"), v.get("outcome"))
        check(key not in by, "two lines of one kind: %r" % (key,))
        by[key] = line
    # the sign-ins
    v = _exact(by[("signin", None, "refused")], SIGNIN_KEYS)
    eq((v["user"], v["client"]), (hostile, refused_from), "the refused sign-in")
    v = _exact(by[("signin", None, "ok")], SIGNIN_KEYS)
    eq((v["user"], v["client"]), ("alice", ok_from), "the good sign-in")
    # the browser's connection
    v = _exact(by[("connection", "http", "ok")], CONN_KEYS)
    eq({k: v[k] for k in ("device", "kind", "user", "client")},
       {"device": DEVICE, "kind": "http", "user": "alice", "client": browser_from},
       "the browser connection's line")
    eq(v["bytes_in"], sent, "bytes_in of the browser connection (the requests as sent)")
    check(v["bytes_out"] > 0, "bytes_out of the browser connection")
    # tether connect's stream
    v = _exact(by[("connection", "echo", "ok")], CONN_KEYS)
    eq({k: v[k] for k in ("device", "kind", "user", "bytes_in", "bytes_out")},
       {"device": DEVICE, "kind": "tcp", "user": "alice", "bytes_in": 22, "bytes_out": 22},
       "tether connect's line")
    check(re.match(r"^127\.0\.0\.1:\d+$", v["client"]), "tether connect's client %r" % v["client"])
    # the public TCP client, and the one --tcp-allow refused
    v = _exact(by[("connection", "pub", "ok")], CONN_KEYS)
    eq({k: v[k] for k in ("device", "kind", "user", "client", "bytes_in", "bytes_out")},
       {"device": DEVICE, "kind": "tcp", "user": None, "client": public_from, "bytes_in": 13,
        "bytes_out": 13}, "the public TCP client's line")
    v = _exact(by[("connection", "pub", "refused")], CONN_KEYS)
    eq({k: v[k] for k in CONN_KEYS[2:]},
       {"device": DEVICE, "service": "pub", "kind": "tcp", "user": None, "client": denied_from,
        "bytes_in": 0, "bytes_out": 0, "duration_ms": 0, "outcome": "refused"},
       "the refused TCP client's line")
    for line in lines:
        stamp = time.mktime(time.strptime(json.loads(line)["time"], "%Y-%m-%dT%H:%M:%SZ")) - \
            time.timezone
        check(start - 2 <= stamp <= time.time() + 2, "a time outside the test: %s" % line)
    # the operator's guide's fail2ban filter, over this log
    f2b = shutil.which("fail2ban-regex")
    if not f2b:
        print("fail2ban-regex is not installed: the filter was not run")
        return
    from test_private_access import _guide_block
    filt = t.path("tether-audit.conf")
    with open(filt, "w") as f:
        f.write(_guide_block("# /etc/fail2ban/filter.d/tether-audit.conf"))
    out = subprocess.run([f2b, "-v", relay.audit_path, filt], capture_output=True, text=True,
                         timeout=120)
    eq(out.returncode, 0, "fail2ban-regex: %s" % out.stderr[-1000:])
    m = re.search(r"Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed", out.stdout)
    check(m and (m.group(1), m.group(3)) == ("6", "2"), "fail2ban-regex: %s" % out.stdout[-2000:])
    check("127.0.0.3" in out.stdout and "127.0.0.2" in out.stdout and
          "198.51.100.1" not in out.stdout, "the addresses fail2ban found: %s" % out.stdout[-2000:])


# ---------------------------------------------------------------- the operator's guide

def _guide_section(title):
    """The text of the operator's guide's section (any level) called title, up to the next
    heading (code blocks' comment lines are not headings)."""
    out, on, fenced = [], False, False
    for line in open(GUIDE, encoding="utf-8").read().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"^#+ ", line):
            if on:
                break
            on = line.split(" ", 1)[1] == title
            continue
        if on:
            out.append(line)
    check(out, "no section %r in the operator's guide" % title)
    return "\n".join(out) + "\n"


def _blocks(section):
    return [m.group(1) for m in re.finditer(r"```[a-z]*\n(.*?)```", section, re.S)]


def _commands(block):
    """The shell commands of a block: continuation lines joined, comments and output left out."""
    out, cur = [], ""
    for line in block.splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        cur += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            out.append(" ".join(cur.split()))
            cur = ""
    return out


def test_technician_given_15_minutes_as_the_guide_says(t):
    """The operator's guide's "A technician given 15 minutes" and "Revocation", run as written
    (the relay's addresses, the token and ssh's throw-away key put in): a grant of 15 minutes
    made with curl and with tetherd admin grant, ssh through tether connect --stdio as
    ProxyCommand and through --listen to the device's real sshd, then the grant deleted with the
    guide's curl: the open ssh session ends and the token is refused."""
    relay = _private_relay(t)
    agent, sshd = _device(t, relay, ssh=True)
    tech = _guide_section("A technician given 15 minutes")
    blocks = _blocks(tech)
    check(len(blocks) == 2, "the technician's section has its two blocks: %r" % blocks)
    admin_url = "http://127.0.0.1:%d" % relay.admin_port
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update({"ADMIN_TOKEN": ADMIN, "PATH": os.path.dirname(TETHER) + ":" +
                os.path.dirname(TETHERD) + ":" + env.get("PATH", "")})

    def sh(cmd, timeout=60, stdin=None):
        return subprocess.run(["sh", "-c", cmd], input=stdin, capture_output=True,
                              timeout=timeout, env=env)

    # the grant, with curl
    (curl,) = _commands(blocks[0])
    check(curl.startswith("curl ") and "http://127.0.0.1:9090/api/grants" in curl, curl)
    before = time.time()
    r = sh(curl.replace("http://127.0.0.1:9090", admin_url))
    eq(r.returncode, 0, "the guide's curl (stderr %r)" % r.stderr)
    g = json.loads(r.stdout)
    eq(sorted(g), ["expires", "id", "token"], "the answer's fields")
    from test_private_grants import iso_to_unix
    left = iso_to_unix(g["expires"]) - before
    check(899 <= left <= 902, "a grant of 15 minutes expires in %.0fs" % left)
    # the same with tetherd admin grant (the sentence after the blocks)
    m = re.search(r"`(tetherd admin grant [^`]+)`", tech)
    check(m, "no tetherd admin grant command in the section")
    env_tok = dict(env, TETHER_ADMIN_TOKEN=ADMIN)
    r = subprocess.run(["sh", "-c", m.group(1).replace(
        "tetherd admin ", "tetherd admin --admin-url %s " % admin_url)], capture_output=True,
        timeout=60, env=env_tok)
    eq(r.returncode, 0, "%s (stderr %r)" % (m.group(1), r.stderr))
    token2 = r.stdout.decode().strip()
    check(re.match(r"^ttg_[A-Za-z0-9_-]{43}$", token2), "tetherd admin grant printed %r" % token2)
    st, _, body = call(relay.admin_port, "GET", "/api/grants", token=ADMIN)
    listed = json.loads(body)["grants"]
    eq([(x["user"], x["grants"]) for x in listed], [("acme-tech-jane", ["plant-7-*/ssh"])] * 2,
       "the two grants")
    # the technician's commands
    cmds = _commands(blocks[1])
    eq(len(cmds), 3, "tether connect --listen, ssh -p, ssh with ProxyCommand: %r" % cmds)
    listen, ssh_port, ssh_proxy = cmds
    # ssh's throw-away key and options (ssh_argv's, without its port and destination)
    keyopts = " ".join(shlex.quote(a) for a in sshd.ssh_argv(0)[1:-3])

    def fill(cmd, token, port=None):
        cmd = cmd.replace("wss://tether.example.com", relay.url).replace("ttg_Gq0y...", token)
        if port:
            cmd = cmd.replace("2222", str(port))
        cmd = cmd.replace("admin@", "%s@" % sshd.user)
        return "ssh %s %s" % (keyopts, cmd[4:]) if cmd.startswith("ssh ") else cmd

    # ProxyCommand (stdio): a command, and 1 MiB through sha256sum
    proxy_cmd = fill(ssh_proxy, g["token"])
    check("--stdio" in proxy_cmd and "ProxyCommand=" in proxy_cmd, proxy_cmd)
    r = sh(proxy_cmd + " echo technician-was-here", timeout=90)
    eq((r.returncode, r.stdout), (0, b"technician-was-here\n"),
       "ssh through ProxyCommand (stderr %r)" % r.stderr)
    data = os.urandom(1 << 20)
    r = sh(proxy_cmd + " sha256sum", timeout=90, stdin=data)
    import hashlib
    eq(r.stdout.split()[:1], [hashlib.sha256(data).hexdigest().encode()],
       "1 MiB through ssh (stderr %r)" % r.stderr)
    # --listen, then ssh -p, with the token tetherd admin printed
    lport = free_port()
    from lib import Proc
    lst = Proc(t, "tether", ["sh", "-c", "exec " + fill(listen, token2, lport)],
               env_vars={"PATH": env["PATH"]})
    lst.wait_line(lambda l: l == "listening 127.0.0.1:%d -> plant-7-gw/ssh" % lport, 30, 0,
                  "the listening line")
    r = sh(fill(ssh_port, token2, lport) + " echo through-the-listener", timeout=90)
    eq((r.returncode, r.stdout), (0, b"through-the-listener\n"),
       "ssh -p through --listen (stderr %r)" % r.stderr)
    # an ssh session that stays open, then the guide's revocation
    session = subprocess.Popen(["sh", "-c", proxy_cmd + " 'echo open; cat'"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env)
    try:
        eq(session.stdout.readline(), b"open\n", "the ssh session opened")
        rev = _guide_section("Revocation")
        m = re.search(r"`(curl [^`]*-X DELETE[^`]*/api/grants/ID)`", rev)
        check(m, "no DELETE command in the Revocation section: %s" % short(rev))
        r = sh(m.group(1).replace("http://127.0.0.1:9090", admin_url).replace("/ID", "/" + g["id"]))
        eq(r.returncode, 0, "the guide's DELETE (stderr %r)" % r.stderr)
        eq(json.loads(r.stdout), {"deleted": g["id"]}, "the DELETE's answer")
        try:
            rc = session.wait(20)
        except subprocess.TimeoutExpired:
            raise TestFailure("the ssh session under the deleted grant stays open")
        check(rc != 0, "ssh's exit status after the revocation: %d" % rc)
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()
        session.stdin.close()
        session.stdout.close()
        session.stderr.close()
    r = sh(proxy_cmd + " echo again", timeout=90)
    check(r.returncode != 0 and b"refused by the relay (HTTP 401)" in r.stderr,
          "ssh with the revoked token: %r" % r.stderr)
    # the other grant still works
    r = sh(fill(ssh_port, token2, lport) + " echo still", timeout=90)
    eq((r.returncode, r.stdout), (0, b"still\n"), "the other grant (stderr %r)" % r.stderr)
    lines = _audit_where(relay.audit_path, 5, "the technician's ssh connections",
                         event="connection", service="ssh", user="acme-tech-jane")
    eq(sorted(set(a["outcome"] for a in lines)), ["ok", "refused"],
       "the outcomes (the revoked session is refused)")
