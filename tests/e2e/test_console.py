"""test_console.py - the dashboard as an operator's console (issue 14, item 4): the relay summary
(version, uptime, listeners, totals, drain), readable values (KiB/MiB, "3 min ago" with the UTC
time as a title, "offline since" and "label kept until" for an offline device), a device's page
with a copyable `tether connect` line per TCP service, the actions the admin API has as forms
(delete with a confirmation page, make a grant whose token is shown once, revoke a grant) under
the admin listener's cross-site rules, and headless Chromium screenshots of the list, a device's
page, the delete confirmation and the grants page at 1280 px and at phone width (written under
the test's temp dir, and to $TETHER_SCREENSHOT_DIR when set)."""

import http.client
import json
import os
import re
import socket
import urllib.parse

from lib import Agent, Relay, check, eq, short, wait_for

ADMIN_TOKEN = "console-admin-token-0123456789"
PRIVATE = ["--access", "private", "--public", "*/http"]


def _relay(t, extra=()):
    return Relay(t, grace="10m", extra=["--admin-token", ADMIN_TOKEN] + PRIVATE + list(extra))


def _call(relay, method, path, headers=None, body=None):
    c = http.client.HTTPConnection("127.0.0.1", relay.admin_port, timeout=60)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def _bearer(relay, path):
    st, h, body = _call(relay, "GET", path, {"Authorization": "Bearer " + ADMIN_TOKEN})
    return st, h, body.decode()


def _api(relay, path):
    st, _, body = _bearer(relay, path)
    eq(st, 200, "GET %s" % path)
    return json.loads(body)


def _signin(relay):
    """A dashboard session's cookie (as a browser signs in: the form with the token)."""
    st, h, _ = _call(relay, "POST", "/", {"Content-Type": "application/x-www-form-urlencoded"},
                     urllib.parse.urlencode({"token": ADMIN_TOKEN}))
    eq(st, 303, "sign-in status")
    return h["set-cookie"].split(";")[0]


def _form(relay, cookie, path, fields, origin=True):
    headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
    if origin is True:
        headers["Origin"] = "http://127.0.0.1:%d" % relay.admin_port
    elif origin:
        headers["Origin"] = origin
    st, h, body = _call(relay, "POST", path, headers, urllib.parse.urlencode(fields))
    return st, h, body.decode()


def _world(t, extra=()):
    relay = _relay(t, extra)
    web = t.http_service()
    echo = t.tcp_echo()
    a = Agent(t, relay, http=web.port, tcp={"ssh": echo.port})
    off = Agent(t, relay, http=web.port)
    off.stop()
    wait_for(lambda: not _api(relay, "/api/devices/%s" % off.name)["online"], 30,
             "the device to be offline")
    return relay, web, echo, a, off


def _row(page, name):
    rows = [r for r in page.split("<tr") if ">%s</a></td>" % name in r]
    eq(len(rows), 1, "rows of %s" % name)
    return rows[0]


def test_console_summary_readable_values_connect_line(t):
    relay, web, echo, a, off = _world(t)
    # a download of 6 MiB through the relay: the traffic shows in MiB
    st, _, body = relay.request("GET", "/big", label=a.label)
    eq((st, len(body)), (200, len(web.big)), "the download")
    wait_for(lambda: _api(relay, "/api/devices/%s" % a.name)["bytes_out"] >= len(web.big) or
             _api(relay, "/api/devices/%s" % a.name)["bytes_in"] >= len(web.big), 10,
             "the bytes counted")
    st, h, page = _bearer(relay, "/")
    eq(st, 200, "the dashboard")
    check("default-src 'none'" in h.get("content-security-policy", ""), "the CSP is kept")
    # the summary: version, uptime, listeners, totals, drain
    check('<span id="version">tetherd 0.1.0</span>' in page, "the version: %s" % short(page, 2000))
    check(re.search(r'<span id="totals">1 online &middot; 1 offline</span>', page),
          "the totals: %s" % short(page, 2000))
    check("<code>127.0.0.1:%d</code>" % relay.port in page, "the device listener")
    check("admin: <code>127.0.0.1:%d</code> (admin token set)" % relay.admin_port in page,
          "the admin listener")
    check("uptime</dt><dd>0 min" in page, "the uptime: %s" % short(page, 2000))
    check("not draining" in page, "the drain state")
    check('<meta http-equiv="refresh" content="15">' in page, "the list refreshes itself")
    check('content="15"' not in _bearer(relay, "/?live=0")[2], "?live=0: no refresh")
    # readable values in the online device's row: MiB, label, address, streams, "ago"
    row = _row(page, a.name)
    check(re.search(r"\d+\.\d&nbsp;MiB&nbsp;(in|out)", row), "the traffic in MiB: %s" % row)
    check(a.label in row and 'data-l="address">127.0.0.1:' in row, "label and address: %s" % row)
    check('data-l="streams">1</td>' in row, "the stream count: %s" % row)
    check(re.search(r'online since <time datetime="[0-9T:Z-]+" title="\d{4}-\d\d-\d\d '
                    r'\d\d:\d\d:\d\d UTC">(just now|\d+ s ago)</time>', row),
          "online since, UTC in the title: %s" % row)
    check(re.search(r'ssh <span class="private"[^>]*>private</span>', row), "private ssh")
    # the offline device: offline since, label kept until (10 min grace)
    row = _row(page, off.name)
    check(re.search(r"offline since <time [^>]*>(just now|\d+ s ago)</time>", row),
          "offline since: %s" % row)
    check(re.search(r'label kept until <time [^>]*title="[^"]+ UTC">in (9|10) min</time>', row),
          "label kept until: %s" % row)
    check('href="http://%s.' % off.label not in row and "(offline)" in row, "no offline link")
    # a device's page: the tether connect line of its private ssh, copyable
    st, _, dev = _bearer(relay, "/device?name=%s" % urllib.parse.quote(a.name))
    eq(st, 200, "the device's page")
    line = ("tether connect --server ws://localhost:%d --grant GRANT_TOKEN %s/ssh "
            "--listen 127.0.0.1:10022" % (relay.port, a.name))
    check('<code class="copy connect">%s</code>' % line in dev, "the connect line: %s" %
          short(dev, 4000))
    check("code.copy{user-select:all" in dev, "the line selects as a whole")
    check('action="/device/delete"' in dev, "the delete button")
    eq(_bearer(relay, "/device?name=nosuch")[0], 404, "an unknown device's page")
    # a drain shows in the summary
    st, _, _ = _call(relay, "POST", "/api/drain", {"Authorization": "Bearer " + ADMIN_TOKEN})
    eq(st, 202, "POST /api/drain")
    page = _bearer(relay, "/")[2]
    check(re.search(r'<span class="drain">draining</span> since <time [^>]*>(just now|\d+ s ago)',
                    page), "the drain in the summary: %s" % short(page, 2000))
    # no session, no Bearer: the sign-in page, nothing else
    eq(_call(relay, "GET", "/device?name=%s" % a.name)[0], 401, "the device page unsigned")
    eq(_call(relay, "GET", "/grants")[0], 401, "the grants page unsigned")


def test_console_delete_and_grants_through_forms(t):
    from test_private_grants import _Listener, _connect_available, _echo_once
    relay, web, echo, a, off = _world(t)
    cookie = _signin(relay)
    # delete: the confirmation page is a post form (no script)
    st, _, body = _call(relay, "GET", "/device/delete?name=%s" % off.name, {"Cookie": cookie})
    body = body.decode()
    eq(st, 200, "the confirmation page")
    check('<form method="post" action="/device/delete">' in body and
          'name="name" value="%s"' % off.name in body, "the confirmation form: %s" % body)
    # another site's page posting the form: refused, the device stays
    st, _, body = _form(relay, cookie, "/device/delete", {"name": off.name},
                        origin="http://evil.example")
    eq(st, 403, "a cross-site delete")
    st, _, body = _form(relay, cookie, "/device/delete", {"name": off.name}, origin=None)
    eq(st, 403, "a delete with the session and no Origin")
    eq(_bearer(relay, "/api/devices/%s" % off.name)[0], 200, "the device is still there")
    st, _, body = _form(relay, cookie, "/device/delete", {"name": off.name})
    eq(st, 200, "the delete through the form: %s" % body)
    check("Device %s deleted." % off.name in body, "the answer page: %s" % body)
    eq(_bearer(relay, "/api/devices/%s" % off.name)[0], 404, "the device after the delete")
    st, _, body = _form(relay, cookie, "/device/delete", {"name": off.name})
    eq(st, 404, "deleting it again")
    # a grant through the form: its token shown once, no-store
    st, h, body = _form(relay, cookie, "/grants",
                        {"user": "alice", "patterns": "%s/ssh, other/*" % a.name, "ttl": "20m"})
    eq(st, 201, "the grant form: %s" % short(body, 2000))
    eq(h.get("cache-control"), "no-store", "Cache-Control of the token's page")
    tokens = re.findall(r'<code class="copy" id="token">(ttg_[A-Za-z0-9_-]{43})</code>', body)
    eq(len(tokens), 1, "the token on the answer page")
    token = tokens[0]
    grants = _api(relay, "/api/grants")["grants"]
    eq([(g["user"], g["grants"]) for g in grants], [("alice", ["%s/ssh" % a.name, "other/*"])],
       "GET /api/grants")
    st, _, page = _call(relay, "GET", "/grants", {"Cookie": cookie})
    page = page.decode()
    eq(st, 200, "the grants page")
    check(token not in page and "alice" in page, "the token is not shown again")
    # a bad form: the page says why, nothing made
    st, _, body = _form(relay, cookie, "/grants", {"user": "bob", "patterns": "x/y", "ttl": "99d"})
    eq(st, 400, "a grant of 99 days")
    check("ttl" in body, "the error: %s" % short(body, 2000))
    eq(len(_api(relay, "/api/grants")["grants"]), 1, "grants after the bad form")
    eq(_form(relay, cookie, "/grants", {"user": "eve", "patterns": "*/*"},
             origin="http://evil.example")[0], 403, "a cross-site grant")
    # the token works with tether connect
    if _connect_available():
        lis = _Listener(t, relay.url, "%s/ssh" % a.name, token)
        s = socket.create_connection(("127.0.0.1", lis.port), timeout=10)
        eq(_echo_once(s, b"through the grant\n"), b"through the grant\n", "echo via the grant")
        s.close()
    # revoke through the form
    gid = grants[0]["id"]
    check('name="id" value="%s"' % gid in page, "the revoke button")
    eq(_form(relay, cookie, "/grants/revoke", {"id": gid}, origin="http://evil.example")[0], 403,
       "a cross-site revoke")
    st, h, _ = _form(relay, cookie, "/grants/revoke", {"id": gid})
    eq((st, h.get("location")), (303, "/grants"), "the revoke through the form")
    eq(_api(relay, "/api/grants")["grants"], [], "grants after the revoke")
    eq(_form(relay, cookie, "/grants/revoke", {"id": gid})[0], 404, "revoking it again")


# ---------------------------------------------------------------- headless Chromium


def _shot(t, b, name, width, height=900):
    import base64
    b.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
           mobile=width < 600)
    shot = b.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    data = base64.b64decode(shot["data"])
    with open(t.path(name), "wb") as f:
        f.write(data)
    if os.environ.get("TETHER_SCREENSHOT_DIR"):
        with open(os.path.join(os.environ["TETHER_SCREENSHOT_DIR"], name), "wb") as f:
            f.write(data)


def test_console_chromium_screenshots(t):
    from test_private_signin import _Chromium
    from lib import TestFailure
    relay, web, echo, a, off = _world(t, ["--public", "*/db"])
    pub = Agent(t, relay, http=web.port, tcp={"db": echo.port})
    relay.request("GET", "/big", label=a.label)
    b = _Chromium(t)
    state = b.state

    def steady_state():  # a page being replaced answers nothing: asked again
        try:
            return state()
        except TestFailure:
            return None
    b.state = steady_state
    b.call("Page.enable")
    base = "http://127.0.0.1:%d" % relay.admin_port
    b.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1,
           mobile=False)
    b.call("Page.navigate", url=base + "/?live=0")
    b.wait(lambda s: "sign in" in s["title"], "the sign-in page")
    b.type_into("#token", ADMIN_TOKEN)
    b.js("document.querySelector('button[type=submit]').click()")
    s = b.wait(lambda s: s["title"] == "tetherd: devices", "the dashboard", timeout=60)
    check("tetherd 0.1.0" in s["text"] and "offline since" in s["text"] and
          "label kept until" in s["text"], "the list's text: %r" % s["text"][:1500])
    _shot(t, b, "console-list-1280.png", 1280)
    _shot(t, b, "console-list-phone.png", 390, 844)
    # a device's page, through its link
    b.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1,
           mobile=False)
    b.js("document.querySelector('a[href=\"/device?name=%s\"]').click()" % a.name)
    s = b.wait(lambda s: s["title"] == "tetherd: device", "the device's page")
    check("tether connect --server" in s["text"], "the connect line: %r" % s["text"][:1500])
    # the line selects as a whole (user-select: all)
    eq(b.js("getComputedStyle(document.querySelector('code.connect')).userSelect"), "all",
       "user-select of the connect line")
    _shot(t, b, "console-device-1280.png", 1280)
    _shot(t, b, "console-device-phone.png", 390, 844)
    # the public TCP service's page: HOST:PORT and the alternative line
    b.call("Page.navigate", url=base + "/device?name=" + pub.name)
    s = b.wait(lambda s: "public port" in s["text"], "the public service's page")
    check("localhost:%d" % pub.tcp_port("db") in s["text"], "HOST:PORT: %r" % s["text"][:1500])
    _shot(t, b, "console-device-public-1280.png", 1280)
    # delete: the confirmation page, then the device is gone
    b.call("Page.navigate", url=base + "/device?name=" + off.name)
    b.wait(lambda s: s["title"] == "tetherd: device", "the offline device's page")
    b.js("document.querySelector('#delete').click()")
    b.wait(lambda s: s["title"] == "tetherd: delete device", "the confirmation page")
    _shot(t, b, "console-delete-confirm-1280.png", 1280)
    _shot(t, b, "console-delete-confirm-phone.png", 390, 844)
    b.js("document.querySelector('#confirm').click()")
    s = b.wait(lambda s: s["title"] == "tetherd: device deleted", "the deleted page")
    eq(_bearer(relay, "/api/devices/%s" % off.name)[0], 404, "the device after the browser's delete")
    # the grants page: make one, the token shown once
    b.call("Page.navigate", url=base + "/grants")
    b.wait(lambda s: s["title"] == "tetherd: grants", "the grants page")
    b.type_into("#user", "alice")
    b.type_into("#patterns", "%s/ssh" % a.name)
    b.js("document.querySelector('#create').click()")
    s = b.wait(lambda s: "Grant made" in s["text"], "the grant's token")
    token = b.js("document.querySelector('#token').innerText")
    check(re.match(r"^ttg_[A-Za-z0-9_-]{43}$", token or ""), "the token: %r" % token)
    _shot(t, b, "console-grant-made-1280.png", 1280)
    _shot(t, b, "console-grant-made-phone.png", 390, 844)
    b.call("Page.navigate", url=base + "/grants")
    s = b.wait(lambda s: "Live grants (1)" in s["text"], "the grants list")
    check(token not in s["text"], "the token is shown once")
    _shot(t, b, "console-grants-1280.png", 1280)
    b.js("document.querySelector('#grants button').click()")
    b.wait(lambda s: "Live grants (0)" in s["text"], "the grant revoked")
    eq(_api(relay, "/api/grants")["grants"], [], "grants after the browser's revoke")


def test_console_cluster_nodes_and_drain_in_the_summary(t):
    from lib import RedisServer
    from test_cluster import _free_range_all, _node
    redis = RedisServer(t)
    low, high = _free_range_all(t)
    extra = ["--admin-token", ADMIN_TOKEN]
    a = _node(t, redis, "node-a", "127.0.0.2", (low, high), grace="10m", extra=extra)
    b = _node(t, redis, "node-b", "127.0.0.3", (low, high), grace="10m", extra=extra)
    web = t.http_service()
    Agent(t, a, http=web.port)

    def summary(node):
        page = _bearer(node, "/")[2]
        m = re.search(r'<dl class="summary" id="relay">(.*?)</dl>', page, re.S)
        check(m, "the summary of %s: %s" % (node.name, short(page, 2000)))
        return m.group(1)
    wait_for(lambda: "node-a: 1 online" in summary(b) and "node-b: 0 online (this node)" in
             summary(b), 30, "node b's summary to list both nodes")
    check("2 live" in summary(b), "live nodes: %s" % summary(b))
    eq(_call(a, "POST", "/api/drain", {"Authorization": "Bearer " + ADMIN_TOKEN})[0], 202,
       "node a drains")
    wait_for(lambda: re.search(r'node-a: \d+ online <span class="drain">draining</span>',
                               summary(b)), 30, "node b's summary to show node a draining")
    check('<span class="drain">draining</span> since' in summary(a), "node a's own drain")
