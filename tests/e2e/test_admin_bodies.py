"""test_admin_bodies.py - the admin listener's request bodies, read in one place
(tt_admin_read_body, src/relay/admin/adminanswer.c) for the grants API, the dashboard's sign-in
form and the console's forms: a chunked body (no Content-Length) is 411, one over the route's cap
413, with the route's own way of saying so (the APIs' JSON error, the console's page), and no
grant, session or deletion is made. The same answers as before admin.c was split."""

import json
import socket

from lib import check, eq, recv_all

ADMIN_TOKEN = "bodies-admin-token-0123456789"


def raw(relay, method, path, headers, body=b""):
    """One request written as is to relay's admin listener; (status, head text, body bytes)."""
    s = socket.create_connection(("127.0.0.1", relay.admin_port), timeout=30)
    try:
        head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n" % (
            method, path, relay.admin_port)
        head += "".join("%s: %s\r\n" % kv for kv in headers.items()) + "\r\n"
        s.sendall(head.encode() + body)
        data = recv_all(s)
    finally:
        s.close()
    top, _, rest = data.partition(b"\r\n\r\n")
    status = int(top.split(b" ", 2)[1])
    return status, top.decode("latin-1"), rest


def test_admin_bodies_refused_alike(t):
    relay = t.relay(extra=["--admin-token", ADMIN_TOKEN])
    bearer = {"Authorization": "Bearer " + ADMIN_TOKEN}
    chunked = dict(bearer, **{"Transfer-Encoding": "chunked"})

    def too_big(n):
        return dict(bearer, **{"Content-Length": str(n), "Content-Type": "application/json"})

    # the grants API and the sign-in form: the API's JSON error
    for path, cap_kib, big in (("/api/grants", 16, 20000), ("/", 4, 5000)):
        st, head, body = raw(relay, "POST", path, chunked, b"0\r\n\r\n")
        eq(st, 411, "POST %s with a chunked body" % path)
        eq(json.loads(body), {"error": "a Content-Length is required"}, "411's error")
        st, head, body = raw(relay, "POST", path, too_big(big))
        eq(st, 413, "POST %s with a %d-byte body" % (path, big))
        eq(json.loads(body), {"error": "the body is larger than %d KiB" % cap_kib}, "413's error")
        check("application/json" in head.lower(), "413's Content-Type: %r" % head)

    # the console's forms: a page saying so
    for path in ("/device/delete", "/grants"):
        st, head, body = raw(relay, "POST", path, chunked, b"0\r\n\r\n")
        eq(st, 411, "POST %s with a chunked body" % path)
        check(b"A Content-Length is required." in body, "411 page: %r" % body[:300])
        st, head, body = raw(relay, "POST", path, too_big(5000))
        eq(st, 413, "POST %s with a 5000-byte form" % path)
        check(b"The form is too large." in body, "413 page: %r" % body[:300])
        check("text/html" in head.lower(), "413 page's Content-Type: %r" % head)

    # nothing was made: no grant, and the listener still answers
    st, _, body = raw(relay, "GET", "/api/grants", bearer)
    eq(st, 200, "GET /api/grants")
    eq(json.loads(body).get("grants"), [], "grants after the refused bodies")
