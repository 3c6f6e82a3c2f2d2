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
