"""test_private_signin.py - browser sign-in for private HTTP services (SPEC "Who may reach a
device"), against the real tetherd and tether: the 401 sign-in page and its form, a wrong secret
(401), a user without a grant (403), the right one (303 back to the URL with the session cookie,
its attributes exactly), requests that then pass without the relay's cookie reaching the device
(whatever the Cookie header's shape), each request of a keep-alive connection checked, sign-out,
expiry, sessions bound to one host, a users-file reload closing an open connection, the audit
lines, requests made by another site's page, a sign-in form posted again while signed in, a
device trying to set the relay's cookie, https (Secure, __Host-), a cluster (a session made on
one node used on another) and headless Chromium signing in through the form and out again.
"""

import http.client
import json
import os
import re
import signal
import socket
import ssl
import time
import urllib.parse

from lib import (RedisServer, Relay, check, eq, free_port, short, wait_for, TestFailure)

USERS = ("# users of the sign-in tests\n"
         "alice alice-secret-1 */http\n"
         "bob bob-secret-2 other-*/http\n"
         "carol carol-secret-3 */*\n")

COOKIE_RE = re.compile(r"^(tether_session|__Host-tether_session)=([0-9a-f]{64})$")


def _users_file(t, text=USERS):
    path = t.path("users.txt")
    with open(path, "w") as f:
        f.write(text)
    return path


def _private_relay(t, users=USERS, extra=(), **kw):
    users_path = _users_file(t, users)
    audit = t.path("audit.log")
    relay = t.relay(extra=["--access", "private", "--users-file", users_path,
                           "--audit-log", audit] + list(extra), **kw)
    relay.users_path = users_path
    relay.audit_path = audit
    return relay


def _world(t, users=USERS, extra=(), name=None):
    relay = _private_relay(t, users, extra)
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port, name=name)
    check(agent.label, "the agent reported no http service: %r" % agent.services)
    return relay, svc, agent


class _Shared:
    """The connection's reader as http.client sees it: closing a response does not close it."""

    def __init__(self, f):
        self._f = f

    def close(self):
        pass

    def __getattr__(self, name):
        return getattr(self._f, name)


class Conn:
    """One keep-alive connection to the relay speaking raw HTTP/1.1 (responses read with
    http.client's parser), so that tests control every header byte."""

    def __init__(self, port, host, timeout=20, sock=None):
        self.host = host
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)
        # one buffered reader for the whole connection: pipelined responses stay in it
        self.f = self.sock.makefile("rb")

    def makefile(self, mode):
        return _Shared(self.f)

    def send(self, method, path, headers=(), body=b"", host=None):
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % (host or self.host)]
        for k, v in headers:
            lines.append("%s: %s" % (k, v))
        if body or method == "POST":
            lines.append("Content-Length: %d" % len(body))
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        self.sock.sendall(raw)

    def response(self, method="GET"):
        r = http.client.HTTPResponse(self, method=method)
        r.begin()
        body = r.read()
        hdrs = [(k.lower(), v) for k, v in r.getheaders()]
        return r.status, hdrs, body

    def request(self, method, path, headers=(), body=b"", host=None):
        self.send(method, path, headers, body, host)
        return self.response(method)

    def closed(self, timeout=10):
        """True once the relay has closed the connection (EOF)."""
        self.sock.settimeout(timeout)
        try:
            return self.f.read(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.f.close()
        self.sock.close()


def _h(hdrs, name):
    return [v for k, v in hdrs if k == name]


def _one(hdrs, name):
    v = _h(hdrs, name)
    check(len(v) == 1, "want one %s header, got %r" % (name, v))
    return v[0]


def _request(relay, method, path, label, headers=(), body=b"", host=None):
    c = Conn(relay.port, host or relay.host(label))
    try:
        return c.request(method, path, headers, body)
    finally:
        c.close()


def _form(user, secret, extra=()):
    return urllib.parse.urlencode([("user", user), ("secret", secret)] + list(extra)).encode()


FORM_CT = ("Content-Type", "application/x-www-form-urlencoded")


def _signin(relay, label, user, secret, path="/", headers=(), host=None):
    return _request(relay, "POST", path, label, [FORM_CT] + list(headers), _form(user, secret),
                    host=host)


def _cookie_of(hdrs):
    """The session cookie's name=value and its attributes (lowercase name -> value)."""
    sc = _one(hdrs, "set-cookie")
    parts = [p.strip() for p in sc.split(";")]
    attrs = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        attrs[k.lower()] = v
    return parts[0], attrs, parts


def _signed_in(relay, label, user="alice", secret="alice-secret-1", path="/"):
    st, hdrs, body = _signin(relay, label, user, secret, path)
    eq(st, 303, "sign-in of %s (body %s)" % (user, short(body)))
    pair, _, _ = _cookie_of(hdrs)
    return pair


def _device_headers(body):
    return [(k.lower(), v) for k, v in json.loads(body)["headers"]]


def _audit(relay):
    try:
        with open(relay.audit_path) as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []


def _signin_page_ok(body, device):
    text = body.decode("utf-8", "replace")
    check('<form method="post">' in text, "no form method=post (no action): %s" % short(text))
    check("action=" not in text, "the form has an action: %s" % short(text))
    check('name="user"' in text and 'name="secret"' in text,
          "fields user and secret missing: %s" % short(text))
    check(device in text, "the device's name is not shown: %s" % short(text))
    check("<script" not in text and "http://" not in text and "https://" not in text,
          "the page loads or runs something: %s" % short(text))
    return text


# ---------------------------------------------------------------- the flow

def test_private_signin_flow(t):
    relay, svc, agent = _world(t)
    label = agent.label
    # no session: 401 with the page
    st, hdrs, body = _request(relay, "GET", "/headers?x=1", label)
    eq(st, 401, "a private service without a session")
    check(_one(hdrs, "content-type").startswith("text/html"), "the 401 is not HTML")
    check("frame-ancestors 'none'" in _one(hdrs, "content-security-policy"), "page may be framed")
    _signin_page_ok(body, agent.name)
    eq(svc.requests, 0, "the device was reached without a session")
    # a HEAD gets the head only
    c = Conn(relay.port, relay.host(label))
    st, _, body = c.request("HEAD", "/")
    c.close()
    eq((st, body), (401, b""), "HEAD without a session")
    # wrong secret, unknown user: 401 again, the same words
    st, hdrs, wrong = _signin(relay, label, "alice", "not-her-secret", "/headers?x=1")
    eq(st, 401, "a wrong secret")
    check(not _h(hdrs, "set-cookie"), "a cookie for a wrong secret")
    _signin_page_ok(wrong, agent.name)
    check(b"not right" in wrong, "the page does not say the secret was wrong")
    st, _, unknown = _signin(relay, label, "mallory", "alice-secret-1", "/headers?x=1")
    eq(st, 401, "an unknown user")
    eq(unknown, wrong, "an unknown user's page differs from a wrong secret's")
    # the right secret, no grant for this service: 403
    st, hdrs, body = _signin(relay, label, "bob", "bob-secret-2", "/headers?x=1")
    eq(st, 403, "a user without a grant")
    check(not _h(hdrs, "set-cookie"), "a cookie for a user without a grant")
    check(b"<html" in body, "the 403 is not a page")
    # the right one: 303 back to the URL first asked for, with the cookie
    st, hdrs, body = _signin(relay, label, "alice", "alice-secret-1", "/headers?x=1")
    eq(st, 303, "alice signs in")
    eq(_one(hdrs, "location"), "http://%s/headers?x=1" % relay.host(label), "Location")
    pair, attrs, parts = _cookie_of(hdrs)
    m = COOKIE_RE.match(pair)
    check(m and m.group(1) == "tether_session", "the cookie: %r" % pair)
    eq(sorted(k for k in attrs), ["httponly", "max-age", "path", "samesite"],
       "cookie attributes over http (no Domain, no Secure)")
    eq((attrs["path"], attrs["samesite"], attrs["max-age"]), ("/", "Lax", str(12 * 3600)),
       "cookie attribute values")
    eq(svc.requests, 0, "the device saw a sign-in")
    # with it: the request passes, and the device sees neither the cookie nor a secret
    st, _, body = _request(relay, "GET", "/headers?x=1", label, [("Cookie", pair)])
    eq(st, 200, "a request with the session")
    dh = _device_headers(body)
    check(not any(k in ("cookie", "authorization") for k, _ in dh),
          "the device got a cookie or Authorization: %r" % dh)
    check("tether_session" not in body.decode().lower() and m.group(2) not in body.decode(),
          "the session reached the device: %r" % body)
    # the cookie header's shapes: several headers, spaces, ours first, last, only, twice
    value = m.group(2)
    shapes = [
        ([("Cookie", "a=1; %s; b=2" % pair)], ["a=1; b=2"]),
        ([("Cookie", "%s;a=1" % pair)], ["a=1"]),
        ([("Cookie", "a=1 ;  %s  " % pair)], ["a=1"]),
        ([("Cookie", "a=1"), ("Cookie", pair), ("Cookie", "b=2")], ["a=1", "b=2"]),
        ([("Cookie", "%s; TETHER_SESSION=x; __Host-tether_session=%s; c=3" % (pair, value))],
         ["c=3"]),
        ([("Cookie", "tether_session=junk; %s" % pair)], []),
    ]
    for cookies, want in shapes:
        st, _, body = _request(relay, "GET", "/headers", label, cookies)
        eq(st, 200, "request with cookies %r" % cookies)
        got = [v for k, v in _device_headers(body) if k == "cookie"]
        eq(got, want, "the device's Cookie headers for %r" % cookies)
    # the audit log: one line per attempt, nothing of the secrets
    lines = [l for l in _audit(relay) if l.get("event") == "signin"]
    eq([(l["user"], l["outcome"]) for l in lines],
       [("alice", "refused"), ("mallory", "refused"), ("bob", "refused"), ("alice", "ok")],
       "audit lines of the sign-ins")
    for l in lines:
        check(re.match(r"^127\.0\.0\.1:\d+$", l["client"]), "audit client: %r" % l)
        check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", l["time"]), "audit time: %r" % l)
    with open(relay.audit_path) as f:
        text = f.read()
    check("secret-1" not in text and value not in text, "a secret in the audit log")
    check("secret-1" not in relay.proc.stderr_text() and value not in relay.proc.stderr_text(),
          "a secret or a session in the relay's log")


def test_private_signin_each_request_checked(t):
    relay, svc, agent = _world(t)
    label = agent.label
    pair = _signed_in(relay, label)
    c = Conn(relay.port, relay.host(label))
    for i in range(3):
        st, _, body = c.request("GET", "/small?i=%d" % i, [("Cookie", pair)])
        eq((st, body), (200, b"small %d\n" % i), "keep-alive request %d with the session" % i)
    # a later request of the same connection without the cookie: the page, then closed
    st, hdrs, body = c.request("GET", "/small?i=9")
    eq(st, 401, "a later request without the session")
    _signin_page_ok(body, agent.name)
    check(c.closed(), "the connection stayed open after the 401")
    c.close()
    # another user's session on a connection made under alice's: 401 too
    pair_carol = _signed_in(relay, label, "carol", "carol-secret-3")
    c = Conn(relay.port, relay.host(label))
    eq(c.request("GET", "/small?i=1", [("Cookie", pair)])[0], 200, "alice's first request")
    eq(c.request("GET", "/small?i=2", [("Cookie", pair_carol)])[0], 401,
       "carol's session on alice's connection")
    c.close()
    # pipelined: a valid request then one without a session: the first answered, then the page
    c = Conn(relay.port, relay.host(label))
    c.send("GET", "/small?i=5", [("Cookie", pair)])
    c.send("GET", "/headers")
    eq(c.response()[:1], (200,), "the first of two pipelined requests")
    eq(c.response()[0], 401, "the second, without a session")
    c.close()
    eq(svc.requests, 3 + 1 + 1, "requests the device got")


def test_private_signin_per_host(t):
    relay = _private_relay(t)
    svc_a = t.http_service(big_size=1024, ident="device-a")
    svc_b = t.http_service(big_size=1024, ident="device-b")
    a = t.agent(relay, http=svc_a.port)
    b = t.agent(relay, http=svc_b.port)
    pair = _signed_in(relay, a.label)
    eq(_request(relay, "GET", "/whoami", a.label, [("Cookie", pair)])[::2], (200, b"device-a"),
       "device a with its cookie")
    st, _, body = _request(relay, "GET", "/whoami", b.label, [("Cookie", pair)])
    eq(st, 401, "device a's cookie on device b")
    eq(svc_b.requests, 0, "device b reached with device a's cookie")
    # a connection to a cannot be turned to b (Host is checked per request)
    c = Conn(relay.port, relay.host(a.label))
    eq(c.request("GET", "/whoami", [("Cookie", pair)])[0], 200, "a")
    eq(c.request("GET", "/whoami", [("Cookie", pair)], host=relay.host(b.label))[0], 400,
       "b's Host on a's connection")
    c.close()


def test_private_signin_signout(t):
    relay, svc, agent = _world(t)
    label = agent.label
    pair = _signed_in(relay, label)
    host = relay.host(label)
    # an open keep-alive connection made under the session
    c = Conn(relay.port, host)
    eq(c.request("GET", "/small?i=1", [("Cookie", pair)])[0], 200, "before signing out")
    # GET: a form to confirm (nothing happens)
    st, _, body = _request(relay, "GET", "/.tether/signout", label, [("Cookie", pair)])
    eq(st, 200, "GET sign-out")
    check(b'<form method="post">' in body, "no confirmation form: %s" % short(body))
    eq(_request(relay, "GET", "/small", label, [("Cookie", pair)])[0], 200,
       "a GET of the sign-out page signed out")
    # POST from another site: refused
    for h in ([("Origin", "http://evil.localhost:%d" % relay.port)],
              [("Sec-Fetch-Site", "same-site"), ("Origin", "http://x.localhost:%d" % relay.port)],
              [("Origin", "null")]):
        st, _, _ = _request(relay, "POST", "/.tether/signout", label, [("Cookie", pair)] + h)
        eq(st, 403, "sign-out posted with %r" % h)
    eq(_request(relay, "GET", "/small", label, [("Cookie", pair)])[0], 200,
       "a refused sign-out signed out")
    # POST from the host's own page
    st, hdrs, body = _request(relay, "POST", "/.tether/signout", label,
                              [("Cookie", pair), ("Origin", "http://" + host),
                               ("Sec-Fetch-Site", "same-origin")])
    eq(st, 200, "sign-out")
    _, attrs, _ = _cookie_of(hdrs)
    eq(attrs.get("max-age"), "0", "the cookie is cleared")
    check(c.closed(), "the connection made under the session is still open")
    c.close()
    st, _, _ = _request(relay, "GET", "/small", label, [("Cookie", pair)])
    eq(st, 401, "the session after signing out")
    eq(svc.requests, 3, "requests the device got")
    # signing out on a keep-alive connection made under the session (the filter answers it),
    # while another such connection is open: both close
    pair = _signed_in(relay, label)
    c1, c2 = Conn(relay.port, host), Conn(relay.port, host)
    for c in (c1, c2):
        eq(c.request("GET", "/small", [("Cookie", pair)])[0], 200, "before signing out")
    st, hdrs, _ = c1.request("POST", "/.tether/signout",
                             [("Cookie", pair), ("Sec-Fetch-Site", "same-origin")])
    eq(st, 200, "sign-out on a keep-alive connection")
    eq(_cookie_of(hdrs)[1].get("max-age"), "0", "the cookie cleared")
    check(c1.closed() and c2.closed(), "a connection made under the session stayed open")
    c1.close()
    c2.close()
    eq(_request(relay, "GET", "/small", label, [("Cookie", pair)])[0], 401,
       "the second session after signing out")
    eq(_metric(relay, "tether_access_signouts_total"), 2, "sign-outs counted")


def test_private_signin_session_expires(t):
    relay, svc, agent = _world(t, extra=["--session-ttl", "2s"])
    label = agent.label
    st, hdrs, _ = _signin(relay, label, "alice", "alice-secret-1")
    eq(st, 303, "sign-in")
    pair, attrs, _ = _cookie_of(hdrs)
    eq(attrs["max-age"], "2", "Max-Age is the session's time to live")
    c = Conn(relay.port, relay.host(label))
    eq(c.request("GET", "/small", [("Cookie", pair)])[0], 200, "a fresh session")
    # the open connection is closed once the session has expired, and it opens nothing
    check(c.closed(timeout=15), "the connection outlived its session")
    c.close()
    eq(_request(relay, "GET", "/small", label, [("Cookie", pair)])[0], 401, "an expired session")


def test_private_signin_users_reload_closes(t):
    relay, svc, agent = _world(t)
    label = agent.label
    pair = _signed_in(relay, label)
    c = Conn(relay.port, relay.host(label))
    eq(c.request("GET", "/small", [("Cookie", pair)])[0], 200, "before the reload")
    with open(relay.users_path, "w") as f:
        f.write(USERS.replace("alice alice-secret-1 */http\n", ""))
    relay.proc.send_signal(signal.SIGHUP)
    check(c.closed(timeout=15), "alice's open connection survived her removal")
    c.close()
    eq(_request(relay, "GET", "/small", label, [("Cookie", pair)])[0], 401,
       "alice's session after her removal")
    # removed, her secret signs in no more
    eq(_signin(relay, label, "alice", "alice-secret-1")[0], 401, "alice signs in after removal")


def test_private_signin_public_services_unchanged(t):
    # --public keeps a service public on a private relay: no sign-in, and the relay's cookie is
    # still taken out of the requests
    relay = _private_relay(t, extra=["--public", "*/http"])
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port)
    fake = "tether_session=" + "ab" * 32
    st, _, body = _request(relay, "GET", "/headers", agent.label,
                           [("Cookie", "x=1; %s; __Host-%s" % (fake, fake)),
                            ("Cookie", fake)])
    eq(st, 200, "a public service on a private relay")
    got = [v for k, v in _device_headers(body) if k == "cookie"]
    eq(got, ["x=1"], "the device's Cookie headers")
    # the sign-out path of a public service is the device's own
    eq(_request(relay, "GET", "/.tether/signout", agent.label)[0], 404,
       "the device's answer for /.tether/signout on a public service")


def test_private_signin_public_relay_strips_cookie(t):
    # --access public (the default): every request passes, and still without the relay's cookie
    relay = t.relay()
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port)
    value = "cd" * 32
    st, _, body = _request(relay, "GET", "/headers", agent.label,
                           [("Cookie", "tether_session=%s; keep=me" % value)])
    eq(st, 200, "a public relay")
    eq([v for k, v in _device_headers(body) if k == "cookie"], ["keep=me"],
       "the device's Cookie headers")


class _CookieDevice:
    """A device web server whose answers try to set cookies: GET /set?c=HEADER-VALUE answers
    200 with Set-Cookie: HEADER-VALUE (urldecoded), /raw?h=NAME&c=VALUE with any header name."""

    def __init__(self, t):
        import http.server
        import threading

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                body = b"device body\n"
                self.send_response(200)
                self.send_header(q.get("h", ["Set-Cookie"])[0], q.get("c", ["a=b"])[0])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        t.on_cleanup(lambda: (self.server.shutdown(), self.server.server_close()))


def _raw_get(relay, label, path, headers=()):
    """Sends one GET and returns every byte the relay sends until it closes."""
    s = socket.create_connection(("127.0.0.1", relay.port), timeout=20)
    extra = "".join("%s: %s\r\n" % kv for kv in headers)
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n" %
               (path, relay.host(label), extra)).encode())
    data = b""
    while True:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        data += b
    s.close()
    return data


def _metric(relay, name):
    c = http.client.HTTPConnection("127.0.0.1", relay.admin_port, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


def test_private_signin_device_cannot_set_relay_cookie(t):
    # a device's page (public or private) must never set the relay's cookie, for its own host
    # or for the whole domain (cookie tossing): such a response is cut before its head ends
    for access in ("public", "private"):
        relay = (_private_relay(t, extra=["--public", "*/http"]) if access == "private"
                 else t.relay())
        dev = _CookieDevice(t)
        agent = t.agent(relay, http=dev.port)
        attacks = [
            "tether_session=%s; Domain=localhost; Path=/" % ("ee" * 32),
            "__Host-tether_session=x; Secure; Path=/",
            "TETHER_SESSION=x; Domain=.localhost",
            "  tether_session =x",
            "=tether_session=x; Domain=localhost",
            "__Secure-tether_session=x; Secure",
        ]
        for a in attacks:
            data = _raw_get(relay, agent.label, "/set?" + urllib.parse.urlencode({"c": a}))
            check(b"\r\n\r\n" not in data, "%s relay: a response setting %r reached the "
                  "browser whole: %r" % (access, a, data[:300]))
            check(b"tether_session=" not in data.lower(),
                  "%s relay: the cookie's value passed: %r" % (access, data[:300]))
        data = _raw_get(relay, agent.label, "/set?" + urllib.parse.urlencode(
            {"h": "set-cookie", "c": "tether_session=y"}))
        check(b"\r\n\r\n" not in data, "lowercase set-cookie passed: %r" % data[:300])
        # the device's own cookies pass, also one whose value names ours
        for ok in ("theme=dark; Path=/", "prefs=tether_session; Path=/",
                   "tether_session_old=1"):
            data = _raw_get(relay, agent.label, "/set?" + urllib.parse.urlencode({"c": ok}))
            check(data.startswith(b"HTTP/1.1 200") and
                  ("Set-Cookie: " + ok).encode() in data and data.endswith(b"device body\n"),
                  "%s relay: the device's own cookie %r: %r" % (access, ok, data[:300]))
        eq(_metric(relay, "tether_http_device_cookie_refused_total"), len(attacks) + 1,
           "responses cut (metric)")


def test_private_signin_cross_site_requests(t):
    relay, svc, agent = _world(t)
    label = agent.label
    host = relay.host(label)
    pair = _signed_in(relay, label)
    other = "http://evil.localhost:%d" % relay.port
    refused = [
        ("GET", [("Sec-Fetch-Site", "same-site"), ("Sec-Fetch-Mode", "cors"),
                 ("Sec-Fetch-Dest", "empty")]),
        ("GET", [("Sec-Fetch-Site", "same-site"), ("Sec-Fetch-Mode", "navigate"),
                 ("Sec-Fetch-Dest", "iframe")]),
        ("GET", [("Sec-Fetch-Site", "cross-site"), ("Sec-Fetch-Mode", "no-cors"),
                 ("Sec-Fetch-Dest", "image")]),
        ("POST", [("Sec-Fetch-Site", "same-site"), ("Sec-Fetch-Mode", "navigate"),
                  ("Sec-Fetch-Dest", "document"), ("Origin", other)]),
        ("POST", [("Origin", other)]),
        ("POST", [("Origin", "null")]),
        ("GET", [("Origin", other)]),
        ("GET", [("Sec-Fetch-Site", "same-origin"), ("Sec-Fetch-Site", "same-site")]),
        ("GET", [("Sec-Fetch-Site", "who-knows")]),
        ("POST", [("Origin", "https://" + host)]),  # another scheme
        ("POST", [("Origin", "http://%s.localhost:%d" % (label, relay.port + 1))]),  # port
    ]
    for method, h in refused:
        st, _, body = _request(relay, method, "/upload", label, [("Cookie", pair)] + h,
                               b"x=1" if method == "POST" else b"")
        eq(st, 403, "%s with %r" % (method, h))
        check(b"another site" in body, "the 403 page: %s" % short(body))
    eq(svc.requests, 0, "the device got a request made by another site")
    passed = [
        ("GET", "/small", [("Sec-Fetch-Site", "same-site"), ("Sec-Fetch-Mode", "navigate"),
                           ("Sec-Fetch-Dest", "document")]),
        ("GET", "/small", [("Sec-Fetch-Site", "cross-site"), ("Sec-Fetch-Mode", "navigate"),
                           ("Sec-Fetch-Dest", "document"), ("Sec-Fetch-User", "?1")]),
        ("GET", "/small", [("Sec-Fetch-Site", "none")]),
        ("POST", "/upload", [("Origin", "http://" + host)]),
        ("POST", "/upload", [("Sec-Fetch-Site", "same-origin"), ("Origin", "null")]),
        ("POST", "/upload", [("Sec-Fetch-Site", "same-origin"), ("Origin", "http://" + host)]),
    ]
    for method, path, h in passed:
        st, _, _ = _request(relay, method, path, label, [("Cookie", pair)] + h,
                            b"x=1" if method == "POST" else b"")
        eq(st, 200, "%s %s with %r" % (method, path, h))
    # a WebSocket opened by another site's page
    for origin, want in ((other, 403), ("http://" + host, 101)):
        c = Conn(relay.port, host)
        c.send("GET", "/ws", [("Cookie", pair), ("Upgrade", "websocket"),
                              ("Connection", "Upgrade"), ("Origin", origin),
                              ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                              ("Sec-WebSocket-Version", "13")])
        line = c.f.readline()
        c.close()
        check(line.startswith(b"HTTP/1.1 %d" % want), "WebSocket from %s: %r" % (origin, line))
    # a sign-in posted by another site's page (login CSRF): refused unread, not audited
    st, hdrs, _ = _signin(relay, label, "alice", "alice-secret-1",
                          headers=[("Origin", other)])
    eq(st, 403, "a sign-in from another site")
    check(not _h(hdrs, "set-cookie"), "a cookie for a sign-in from another site")
    eq(len([l for l in _audit(relay) if l.get("event") == "signin"]), 1,
       "audit lines (alice's own sign-in only)")


def test_private_signin_form_again_while_signed_in(t):
    # A sign-in form posted by a browser that has a session already (a second tab): the relay
    # answers it (303 back to the URL); the user's secret never reaches the device.
    relay, svc, agent = _world(t)
    label = agent.label
    pair = _signed_in(relay, label)
    form = _form("alice", "alice-secret-1")
    # first request of a new connection
    st, hdrs, _ = _request(relay, "POST", "/upload?z=1", label, [("Cookie", pair), FORM_CT],
                           form)
    eq(st, 303, "a sign-in form with a session")
    eq(_one(hdrs, "location"), "http://%s/upload?z=1" % relay.host(label), "Location")
    # a later request of a keep-alive connection
    c = Conn(relay.port, relay.host(label))
    eq(c.request("GET", "/small", [("Cookie", pair)])[0], 200, "first request")
    st, _, _ = c.request("POST", "/upload", [("Cookie", pair), FORM_CT],
                         _form("x", "y", [("more", "1")]))
    eq(st, 303, "a sign-in form on a keep-alive connection")
    check(c.closed(), "the connection stayed open")
    c.close()
    eq(svc.requests, 1, "the device got a sign-in form")
    # the device's own forms pass: other fields, or a body too large to be the sign-in form
    c = Conn(relay.port, relay.host(label))
    body = urllib.parse.urlencode({"name": "x", "value": "y"}).encode()
    st, _, got = c.request("POST", "/upload", [("Cookie", pair), FORM_CT], body)
    eq((st, json.loads(got)["length"]), (200, len(body)), "the device's own small form")
    big = urllib.parse.urlencode({"user": "u", "secret": "s", "pad": "p" * 5000}).encode()
    st, _, got = c.request("POST", "/upload", [("Cookie", pair), FORM_CT], big)
    eq((st, json.loads(got)["length"]), (200, len(big)), "a large form")
    c.close()
    # a form without a session on a keep-alive connection: 307, sent again on a new connection
    c = Conn(relay.port, relay.host(label))
    eq(c.request("GET", "/small", [("Cookie", pair)])[0], 200, "first request")
    st, hdrs, _ = c.request("POST", "/upload", [FORM_CT], form)
    eq(st, 307, "a sign-in form without a session on a connection made with one")
    eq(_one(hdrs, "location"), "http://%s/upload" % relay.host(label), "Location of the 307")
    c.close()


def test_private_signin_bad_forms(t):
    relay, svc, agent = _world(t)
    label = agent.label

    def post(body, ct="application/x-www-form-urlencoded", extra=()):
        return _request(relay, "POST", "/", label, [("Content-Type", ct)] + list(extra), body)

    # not a sign-in at all: the page, nothing audited
    for body, ct in ((b"a=1&b=2", "application/x-www-form-urlencoded"),
                     (b"user=alice&secret=alice-secret-1", "text/plain"),
                     (b"user=alice&secret=alice-secret-1", "application/json"),
                     (b"user=alice&secret=alice-secret-1&" + b"p" * 5000,
                      "application/x-www-form-urlencoded")):
        st, hdrs, page = post(body, ct)
        eq(st, 401, "POST %r (%s)" % (body[:40], ct))
        check(not _h(hdrs, "set-cookie"), "a cookie")
        _signin_page_ok(page, agent.name)
    eq(len(_audit(relay)), 0, "audit lines for posts that are no sign-in")
    # chunked: not read
    c = Conn(relay.port, relay.host(label))
    c.sock.sendall(("POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/"
                    "x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nuser=\r\n0\r\n\r\n" % relay.host(label)).encode())
    eq(c.response("POST")[0], 401, "a chunked form")
    c.close()
    # sign-ins that cannot be read: wrong, audited with what could be read
    for body in (b"user=%zz&secret=alice-secret-1", b"user=alice&secret=alice%00secret",
                 b"user=alice&user=alice&secret=alice-secret-1",
                 b"user=" + b"a" * 65 + b"&secret=alice-secret-1",
                 b"user=alice&secret=" + b"s" * 300, b"user=alice&secret=",
                 b"user=alice&secret=alice-secret-1%"):
        st, hdrs, page = post(body)
        eq(st, 401, "sign-in %r" % body[:60])
        check(b"not right" in page and not _h(hdrs, "set-cookie"), "page for %r" % body[:60])
    outcomes = [l["outcome"] for l in _audit(relay)]
    eq(outcomes, ["refused"] * 7, "audit of unreadable sign-ins")
    # and an odd but valid encoding signs in
    st, _, _ = post(b"secret=alice%2Dsecret%2d1&user=%61lice&x=%")
    eq(st, 303, "an encoded sign-in")
    eq(svc.requests, 0, "the device got a sign-in")


def test_private_signin_https(t):
    from test_tls import DOMAIN, Pki, _client_ctx
    pki = Pki(t)
    crt, key, _ = pki.server()
    tls_port = free_port()
    relay = _private_relay(t, extra=["--domain", DOMAIN, "--tls-listen", "127.0.0.1:%d" % tls_port,
                                     "--tls-cert", crt, "--tls-key", key])
    wait_for(lambda: _tls_up(tls_port), 30, "the TLS listener")
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port)
    name = "%s.%s" % (agent.label, DOMAIN)
    host = "%s:%d" % (name, tls_port)

    def tls_conn():
        raw = socket.create_connection(("127.0.0.1", tls_port), timeout=20)
        return Conn(tls_port, host, sock=_client_ctx(pki).wrap_socket(raw, server_hostname=name))

    c = tls_conn()
    st, _, body = c.request("GET", "/headers")
    c.close()
    eq(st, 401, "https without a session")
    c = tls_conn()
    st, hdrs, _ = c.request("POST", "/headers?q=2", [FORM_CT], _form("alice", "alice-secret-1"))
    c.close()
    eq(st, 303, "sign-in over https")
    eq(_one(hdrs, "location"), "https://%s/headers?q=2" % host, "Location over https")
    pair, attrs, parts = _cookie_of(hdrs)
    m = COOKIE_RE.match(pair)
    check(m and m.group(1) == "__Host-tether_session", "the cookie over https: %r" % pair)
    eq(sorted(attrs), ["httponly", "max-age", "path", "samesite", "secure"],
       "cookie attributes over https (Secure, no Domain)")
    eq((attrs["path"], attrs["samesite"]), ("/", "Lax"), "Path and SameSite")
    c = tls_conn()
    st, _, body = c.request("GET", "/headers", [("Cookie", "a=1; " + pair)])
    c.close()
    eq(st, 200, "https with the session")
    dh = _device_headers(body)
    eq([v for k, v in dh if k == "cookie"], ["a=1"], "the device's Cookie over https")
    eq([v for k, v in dh if k == "x-forwarded-proto"], ["https"], "X-Forwarded-Proto")
    # the session under the plain-http name is not read over https (a sibling page could plant
    # one); the https cookie is not read over plain http either
    c = tls_conn()
    eq(c.request("GET", "/headers", [("Cookie", "tether_session=" + m.group(2))])[0], 401,
       "the session under the http name, over https")
    c.close()
    st, _, _ = _request(relay, "GET", "/headers", None, [("Cookie", pair)],
                        host="%s:%d" % (name, relay.port))
    eq(st, 401, "the https cookie over plain http")


def _tls_up(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_private_signin_cluster(t):
    # two nodes sharing Redis: a session made on one node works on the other, and a sign-out on
    # one ends it on the other
    from test_cluster import _free_range_all, _node
    redis = RedisServer(t)
    low, high = _free_range_all(t)
    users = _users_file(t)
    extra = ["--access", "private", "--users-file", users]
    a = _node(t, redis, "node-a", "127.0.0.2", (low, high), extra=extra)
    b = _node(t, redis, "node-b", "127.0.0.3", (low, high), extra=extra)
    svc = t.http_service(big_size=1024, ident="the-device")
    agent = t.agent(a, http=svc.port, server=a.url + "/?tether-redirected=1")
    label = agent.label
    # sign in through node b (forwarded to a, which holds the device), then use it on both
    st, hdrs, _ = _signin(b, label, "alice", "alice-secret-1", "/whoami",
                          host=b.host(label))
    eq(st, 303, "sign-in through node b")
    pair, _, _ = _cookie_of(hdrs)
    for node in (a, b):
        eq(_request(node, "GET", "/whoami", label, [("Cookie", pair)])[::2], (200, b"the-device"),
           "the session through %s" % node.name)
    # the device moves to node b: node b reads the session node a made from Redis
    agent.stop()
    agent2 = t.agent(b, http=svc.port, name=agent.name, server=b.url + "/?tether-redirected=1")
    eq(agent2.label, label, "the label after the move")
    wait_for(lambda: _request(b, "GET", "/whoami", label, [("Cookie", pair)])[0] == 200, 20,
             "the session on node b, which holds the device now")
    # an open connection at node b made under it, then a sign-out at node b
    c = Conn(b.port, b.host(label))
    eq(c.request("GET", "/whoami", [("Cookie", pair)])[0], 200, "keep-alive at b")
    st, _, _ = _request(b, "POST", "/.tether/signout", label,
                        [("Cookie", pair), ("Origin", "http://" + b.host(label))])
    eq(st, 200, "sign-out at node b")
    check(c.closed(), "the connection made under the session stayed open")
    c.close()
    # back to node a, whose table still had the session: it asks Redis again, which says gone
    agent2.stop()
    agent3 = t.agent(a, http=svc.port, name=agent.name, server=a.url + "/?tether-redirected=1")
    eq(agent3.label, label, "the label after moving back")
    wait_for(lambda: _request(a, "GET", "/whoami", label)[0] == 401, 20, "the device at node a")
    # (a node trusts what it read from Redis for at most a second)
    wait_for(lambda: _request(a, "GET", "/whoami", label, [("Cookie", pair)])[0] == 401, 5,
             "the session signed out on node b to end at node a")
    eq(_metric(a, "tether_access_session_redis_errors_total"), 0, "Redis errors at node a")
    eq(_metric(b, "tether_access_session_redis_errors_total"), 0, "Redis errors at node b")


# ---------------------------------------------------------------- headless Chromium

class _Chromium:
    """Headless Chromium driven over the DevTools protocol (a WebSocket on a loopback port, the
    page's target), like a user: it loads pages, types into fields and clicks."""

    def __init__(self, t):
        from lib import Proc, WsClient
        from test_browser import CHROMIUM_FLAGS, _chromium
        exe = _chromium()
        check(exe, "chromium is not installed (scripts/deps.sh test installs it)")
        profile = t.mkdtemp("chromium")
        self.port = free_port()
        self.proc = Proc(t, "chromium", [exe] + CHROMIUM_FLAGS + [
            "--user-data-dir=" + profile, "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=%d" % self.port, "about:blank"],
            env_vars={"HOME": profile})
        t.on_cleanup(lambda: self.proc.stop())
        targets = wait_for(self._page_targets, 60, "chromium's DevTools endpoint")
        path = urllib.parse.urlsplit(targets[0]["webSocketDebuggerUrl"]).path
        self.ws = WsClient(self.port, "127.0.0.1:%d" % self.port, path, timeout=60)
        check(self.ws.status == 101, "DevTools WebSocket: %s" % self.ws.status_line)
        self.n = 0

    def _page_targets(self):
        if not self.proc.alive():
            raise TestFailure("chromium exited: %s" % self.proc.stderr_tail(10))
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            c.request("GET", "/json/list")
            pages = [x for x in json.loads(c.getresponse().read()) if x.get("type") == "page"]
            return pages or None
        finally:
            c.close()

    def call(self, method, **params):
        self.n += 1
        self.ws.send(0x1, json.dumps({"id": self.n, "method": method,
                                      "params": params}).encode())
        while True:
            op, payload = self.ws.recv()
            msg = json.loads(payload)
            if msg.get("id") == self.n:
                check("error" not in msg, "DevTools %s: %r" % (method, msg.get("error")))
                return msg.get("result", {})

    def js(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        return r.get("result", {}).get("value")

    def state(self):
        return self.js("JSON.stringify({url: location.href, title: document.title, "
                       "ready: document.readyState, cookie: document.cookie, "
                       "text: document.body ? document.body.innerText : ''})")

    def wait(self, pred, what, timeout=30):
        last = {}

        def ok():
            nonlocal last
            s = self.state()
            last = json.loads(s) if s else {}
            return last if last.get("ready") == "complete" and pred(last) else None
        try:
            return wait_for(ok, timeout, what, interval=0.2)
        except TestFailure as e:
            raise TestFailure("%s; the page: %r" % (e, last))

    def type_into(self, selector, text):
        self.js("document.querySelector(%s).focus()" % json.dumps(selector))
        self.call("Input.insertText", text=text)


def test_private_signin_chromium(t):
    relay, svc, agent = _world(t)
    url = "http://%s.localhost:%d/app" % (agent.label, relay.port)
    b = _Chromium(t)
    b.call("Page.enable")
    b.call("Page.navigate", url=url)
    s = b.wait(lambda s: s["title"].startswith("Sign in"), "the sign-in page")
    check(agent.name in s["text"], "the device's name on the page: %r" % s["text"])
    # a wrong secret first
    b.type_into("#user", "alice")
    b.type_into("#secret", "wrong-secret")
    b.js("document.querySelector('button[type=submit]').click()")
    b.wait(lambda s: "not right" in s["text"], "the page saying the secret is wrong")
    b.type_into("#user", "alice")
    b.type_into("#secret", "alice-secret-1")
    b.js("document.querySelector('button[type=submit]').click()")
    # back at the URL first asked for: the device's page, whose fetch() and WebSocket go
    # through the relay with the session
    s = b.wait(lambda s: s["title"] == "Tether browser check" and "pending" not in s["text"],
               "the device's page after signing in", timeout=45)
    eq(s["url"], url, "the URL after signing in")
    check("fetch: device" in s["text"], "the page's fetch(): %r" % s["text"])
    check("ws: ping-from-browser" in s["text"], "the page's WebSocket: %r" % s["text"])
    eq(s["cookie"], "", "document.cookie on the device's page (the session is HttpOnly)")
    # sign out through the relay's page
    b.call("Page.navigate", url=url.replace("/app", "/.tether/signout"))
    b.wait(lambda s: s["title"].startswith("Sign out"), "the sign-out page")
    b.js("document.querySelector('button[type=submit]').click()")
    b.wait(lambda s: s["title"].startswith("Signed out"), "the signed-out page")
    b.call("Page.navigate", url=url)
    b.wait(lambda s: s["title"].startswith("Sign in"), "the sign-in page after signing out")
    lines = [(l["user"], l["outcome"]) for l in _audit(relay) if l.get("event") == "signin"]
    eq(lines, [("alice", "refused"), ("alice", "ok")], "audit lines of the browser's sign-ins")


def test_private_signin_session_ttl_flag_and_metrics(t):
    from lib import TETHERD, run_cli
    for bad in ("0s", "500ms", "31d", "soon"):
        r = run_cli([TETHERD, "--session-ttl", bad, "--data-dir", t.mkdtemp("d")])
        eq(r.returncode, 2, "--session-ttl %s" % bad)
        check("--session-ttl" in r.stderr and len(r.stderr.strip().splitlines()) == 1,
              "the error line: %r" % r.stderr)
    r = run_cli([TETHERD, "--help"])
    check("--session-ttl DURATION" in r.stdout and "/.tether/signout" in r.stdout,
          "--help: %r" % r.stdout[-600:])
    relay, svc, agent = _world(t)
    _signed_in(relay, agent.label)
    eq(_signin(relay, agent.label, "alice", "nope")[0], 401, "a wrong secret")
    eq(_request(relay, "GET", "/", agent.label)[0], 401, "no session")
    c = http.client.HTTPConnection("127.0.0.1", relay.admin_port, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    for line in ("tether_access_sessions_live 1",
                 'tether_access_sessions_max{per="all"} 100000',
                 'tether_access_sessions_max{per="principal"} 256',
                 'tether_access_sessions_total{event="created"} 1',
                 'tether_access_signins_total{outcome="ok"} 1',
                 'tether_access_signins_total{outcome="wrong"} 1',
                 'tether_access_browser_refused_total{reason="no_session"} 1',
                 "tether_access_signouts_total 0",
                 "tether_http_device_cookie_refused_total 0"):
        check(re.search("^" + re.escape(line) + "$", text, re.M),
              "metric %r missing: %s" % (line, short(text[-2500:], 3000)))


def test_private_signin_redis_outage(t):
    # Redis gone: a signed-in user goes on (the node keeps the sessions it knows); a new sign-in
    # is answered 503 with Retry-After and no cookie (a session Redis does not have would work on
    # this node only: never handed out); Redis back (empty): a sign-in works again
    from test_cluster import _free_range_all, _node
    redis = RedisServer(t)
    low, high = _free_range_all(t)
    users = _users_file(t)
    a = _node(t, redis, "node-a", "127.0.0.2", (low, high),
              extra=["--access", "private", "--users-file", users])
    svc = t.http_service(big_size=1024, ident="the-device")
    agent = t.agent(a, http=svc.port, server=a.url + "/?tether-redirected=1")
    label = agent.label
    pair = _signed_in(a, label)
    redis.proc.stop(signal.SIGKILL)
    for i in range(3):
        eq(_request(a, "GET", "/whoami", label, [("Cookie", pair)])[0], 200,
           "the session while Redis is down (%d)" % i)
        time.sleep(0.6)
    st, hdrs, _ = _signin(a, label, "carol", "carol-secret-3")
    eq(st, 503, "a sign-in while Redis is down")
    eq(_h(hdrs, "set-cookie"), [], "a cookie with the 503")
    eq(_h(hdrs, "retry-after"), ["1"], "the 503's Retry-After")
    check(_metric(a, "tether_access_session_redis_errors_total") > 0, "no Redis error counted")
    redis2 = RedisServer(t, port=redis.port)
    wait_for(lambda: _signin(a, label, "carol", "carol-secret-3")[0] == 303, 15,
             "a sign-in once Redis is back")
    pair2 = _signed_in(a, label, "carol", "carol-secret-3")
    eq(_request(a, "GET", "/whoami", label, [("Cookie", pair2)])[0], 200,
       "a session made after Redis came back")
    eq(_request(a, "GET", "/whoami", label)[0], 401, "no session, after Redis came back")
    check(a.proc.alive(), "the node died")
    del redis2
