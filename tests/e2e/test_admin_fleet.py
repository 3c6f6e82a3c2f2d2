"""test_admin_fleet.py - the admin side at fleet scale (SPEC.md, "Admin API"): GET /api/devices
pages and filters (limit, after, online, q; total and next across pages; limit bounds; bad
queries 400), /metrics without per-device series above 1000 devices unless
--metrics-per-device on, the dashboard's sign-in with --admin-token (401 page with a post form
and a field named token, wrong token 401 and throttled, right token 303 with an HttpOnly cookie
accepted by the dashboard and the API, cross-site changes refused, sign-out), and the dashboard
in headless Chromium with 10,000 registered devices: first page, counts, search, next page.

Many devices come from bench/loadgen (real WebSocket registrations; `make MODE=sanitize
bench-bin` builds it next to tetherd), one process per group of names; a group whose loadgen is
stopped goes offline (within the grace period)."""

import base64
import http.client
import json
import os
import re
import subprocess
import urllib.parse

from lib import TETHERD, Proc, TestFailure, check, eq, run_cli, wait_for

ADMIN_TOKEN = "fleet-admin-token-0123456789"
FIELDS = ["name", "online", "label", "url", "services", "connected_since", "last_seen",
          "remote_addr", "bytes_in", "bytes_out", "streams"]
LOADGEN = os.path.join(os.path.dirname(TETHERD), "loadgen")
# the relay lets the load generators register names fast and from few addresses
FLEET_FLAGS = ["--new-names-per-second", "100000", "--max-pending-per-addr", "0"]

_srcs = iter(range(1, 200))


class Fleet:
    """n devices named PREFIX-0 .. PREFIX-(n-1), registered by one bench/loadgen process (at
    url, default the relay's)."""

    def __init__(self, t, relay, prefix, n, timeout=240, url=None):
        check(os.path.exists(LOADGEN), "%s is missing: make MODE=sanitize bench-bin" % LOADGEN)
        self.prefix, self.n = prefix, n
        self.proc = Proc(t, "loadgen", [
            LOADGEN, "--url", url or relay.url, "-n", str(n), "--token", relay.token, "--prefix", prefix,
            "--src", "127.4.%d.1" % next(_srcs), "--per-src", "100", "--max-pending", "256",
            "--duration-s", "900", "--status-ms", "1000"])
        t.on_cleanup(lambda: self.proc.stop())
        self.proc.wait_line(lambda l: '"all_registered"' in l, timeout=timeout,
                            what="all %d devices registered" % n)

    def names(self):
        return ["%s-%d" % (self.prefix, i) for i in range(self.n)]

    def stop(self):
        self.proc.stop()


def admin(relay, method, path, headers=None, body=None):
    c = http.client.HTTPConnection("127.0.0.1", relay.admin_port, timeout=60)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read(), r.msg
    finally:
        c.close()


def api(relay, path, status=200, headers=None):
    h = {"Authorization": "Bearer " + ADMIN_TOKEN} if headers is None else headers
    st, hdrs, body, _ = admin(relay, "GET", path, h)
    eq(st, status, "status of GET %s (body %r)" % (path, body[:300]))
    eq(hdrs.get("content-type"), "application/json", "content type of GET %s" % path)
    return json.loads(body)


def walk(relay, query, limit):
    """Every page of query at limit: (names in order, the totals seen, pages)."""
    names, totals, pages, after = [], set(), 0, None
    while True:
        q = dict(query, limit=str(limit))
        if after is not None:
            q["after"] = after
        j = api(relay, "/api/devices?" + urllib.parse.urlencode(q))
        pages += 1
        check(pages <= 10000, "paging does not end")
        check(len(j["devices"]) <= limit, "a page of %d devices at limit %d" %
              (len(j["devices"]), limit))
        names += [d["name"] for d in j["devices"]]
        totals.add(j["total"])
        if j["next"] is None:
            return names, totals, pages
        eq(j["next"], j["devices"][-1]["name"], "next is the page's last name")
        after = j["next"]


def relay_of(t, extra=(), grace="10m"):
    return t.relay(grace=grace, extra=["--admin-token", ADMIN_TOKEN] + FLEET_FLAGS + list(extra))


def test_fleet_api_pages_filters_and_bad_queries(t):
    relay = relay_of(t)
    pumps = Fleet(t, relay, "Pump", 30)
    doors = Fleet(t, relay, "door", 20)
    doors.stop()
    everyone = sorted(pumps.names() + doors.names(), key=lambda s: s.encode())
    wait_for(lambda: api(relay, "/api/devices?online=false")["total"] == 20, 30,
             "the door devices offline")
    # the old shape and its fields, now with total and next
    j = api(relay, "/api/devices")
    eq(sorted(j.keys()), ["devices", "next", "total"], "keys of the answer")
    eq([d["name"] for d in j["devices"]], everyone, "every device, by name (byte order)")
    eq(j["total"], 50, "total")
    eq(j["next"], None, "next of the only page")
    for d in j["devices"]:
        for f in FIELDS:
            check(f in d, "field %r missing from %r" % (f, d))
        eq(d["online"], d["name"].startswith("Pump"), "online of %s" % d["name"])
    eq(api(relay, "/api/devices/")["total"], 50, "the same with a trailing slash")
    # pages of 7: the same names once each, total the same on each page
    names, totals, pages = walk(relay, {}, 7)
    eq(names, everyone, "names through pages of 7")
    eq(totals, {50}, "total on every page")
    eq(pages, 8, "pages of 7 for 50 devices")
    names, _, pages = walk(relay, {}, 50)
    eq((names, pages), (everyone, 1), "one page of 50: no next")
    names, _, pages = walk(relay, {}, 49)
    eq((len(names), pages), (50, 2), "pages of 49")
    # filters, alone and together, through pages
    names, totals, _ = walk(relay, {"online": "true"}, 8)
    eq((names, totals), (sorted(pumps.names()), {30}), "online=true")
    names, totals, _ = walk(relay, {"online": "false"}, 8)
    eq((names, totals), (sorted(doors.names()), {20}), "online=false")
    names, totals, _ = walk(relay, {"q": "pUMP-1"}, 4)
    want = [n for n in everyone if n.lower().startswith("pump-1")]
    eq((names, totals), (want, {len(want)}), "q=pUMP-1 (case ignored)")
    label = j["devices"][0]["label"]
    got = api(relay, "/api/devices?q=" + label[2:7])
    check(j["devices"][0]["name"] in [d["name"] for d in got["devices"]],
          "q= a piece of a label finds its device: %r" % got)
    got = api(relay, "/api/devices?q=door&online=true")
    eq((got["devices"], got["total"], got["next"]), ([], 0, None), "door & online")
    got = api(relay, "/api/devices?q=door+&online=false")
    eq(got["total"], 0, "q with a space (+) matches no name")
    got = api(relay, "/api/devices?q=door-1&online=0&limit=3")
    eq([d["name"] for d in got["devices"]], ["door-1", "door-10", "door-11"], "online=0")
    eq((got["total"], got["next"]), (11, "door-11"), "total and next of door-1*")
    got = api(relay, "/api/devices?after=zzz")
    eq((got["devices"], got["total"], got["next"]), ([], 50, None), "after the last name")
    got = api(relay, "/api/devices?after=Pump-9&limit=2")
    eq([d["name"] for d in got["devices"]], ["door-0", "door-1"], "after a name that is on")
    got = api(relay, "/api/devices?after=Pump-99&limit=1")
    eq([d["name"] for d in got["devices"]], ["door-0"], "after a name that is not a device")
    # limit bounds: 1..1000, more taken as 1000; anything else 400 with a JSON error
    eq(len(api(relay, "/api/devices?limit=1")["devices"]), 1, "limit=1")
    eq(len(api(relay, "/api/devices?limit=1000")["devices"]), 50, "limit=1000")
    eq(len(api(relay, "/api/devices?limit=5000")["devices"]), 50, "limit=5000 (the maximum)")
    for bad in ("limit=0", "limit=-1", "limit=abc", "limit=1.5", "limit=%2B5", "limit=1&limit=2",
                "online=yes", "online=TRUE", "q=%zz", "q=a%00", "q=%0a", "after=" + "x" * 65,
                "q=" + "y" * 65, "online=true&online=false"):
        e = api(relay, "/api/devices?" + bad, status=400)
        check(isinstance(e.get("error"), str) and e["error"], "the error of %s: %r" % (bad, e))
    # unknown parameters are ignored, empty ones are absent
    eq(api(relay, "/api/devices?foo=bar&q=&online=&limit=&after=")["total"], 50, "empty values")
    # the dashboard answers a bad query 400 too, and a good one with at most 100 devices
    st, _, body, _ = admin(relay, "GET", "/?limit=0", {"Authorization": "Bearer " + ADMIN_TOKEN})
    eq(st, 400, "dashboard with limit=0")
    st, _, body, _ = admin(relay, "GET", "/?limit=5&q=pump",
                           {"Authorization": "Bearer " + ADMIN_TOKEN})
    eq(st, 200, "dashboard with a query")
    eq(body.count(b'<td class="name">'), 5, "rows of the dashboard at limit=5")
    check(b'href="/?limit=5&amp;q=pump&amp;after=Pump-12"' in body,
          "the next link keeps the query: %r" % body[-2000:])


def _signin(relay, token, headers=None):
    h = {"Content-Type": "application/x-www-form-urlencoded"}
    h.update(headers or {})
    return admin(relay, "POST", "/", h, urllib.parse.urlencode({"token": token}))


def _cookie(msg):
    for v in msg.get_all("Set-Cookie") or []:
        m = re.match(r"tether_admin=([0-9a-f]{64});", v)
        if m:
            return m.group(1), v
    raise TestFailure("no tether_admin cookie in %r" % msg.get_all("Set-Cookie"))


def test_fleet_admin_signin_session_cookie(t):
    relay = relay_of(t)
    Fleet(t, relay, "dev", 3)
    base = "http://127.0.0.1:%d" % relay.admin_port
    # a browser without Bearer or session: 401 and the sign-in page
    st, h, body, _ = admin(relay, "GET", "/", {"Accept": "text/html"})
    eq(st, 401, "GET / without a token")
    check(h.get("content-type", "").startswith("text/html"), "the sign-in page is HTML: %r" % h)
    check(re.search(rb'<form[^>]*method="post"', body) and b'name="token"' in body,
          "a post form with a field named token: %r" % body)
    st, h, body, _ = admin(relay, "GET", "/api/devices")
    eq(st, 401, "the API without a token")
    eq(h.get("content-type"), "application/json", "the API's 401 is JSON")
    # a wrong token: 401 and the page again
    st, h, body, msg = _signin(relay, "not-the-token", {"Origin": base})
    eq(st, 401, "a wrong token")
    check(b'name="token"' in body and b"not right" in body, "the page again: %r" % body)
    check(not msg.get_all("Set-Cookie"), "no cookie for a wrong token")
    # the right token: 303 to the dashboard with the session cookie
    st, h, body, msg = _signin(relay, ADMIN_TOKEN, {"Origin": base})
    eq(st, 303, "the right token")
    eq(h.get("location"), "/", "303 to the dashboard")
    value, line = _cookie(msg)
    attrs = [a.strip().lower() for a in line.split(";")[1:]]
    for want in ("httponly", "samesite=strict", "path=/"):
        check(want in attrs, "%s in the cookie: %r" % (want, line))
    check("secure" not in attrs, "no Secure on the plain-HTTP admin listener: %r" % line)
    check(any(a.startswith("max-age=") for a in attrs), "the cookie expires: %r" % line)
    check(ADMIN_TOKEN not in line, "the token is not the cookie")
    ck = {"Cookie": "other=1; tether_admin=" + value}
    st, h, body, _ = admin(relay, "GET", "/", ck)
    eq(st, 200, "the dashboard with the cookie")
    check(b"dev-0" in body and b"sign out" in body, "the dashboard's devices: %r" % body[:500])
    eq(api(relay, "/api/devices", headers=ck)["total"], 3, "the API with the cookie")
    st, _, body, _ = admin(relay, "GET", "/metrics", ck)
    eq(st, 200, "metrics with the cookie")
    check(b"tether_admin_sessions 1" in body, "the session counted")
    # a session cookie that is not one: 401; the Bearer token still works
    bogus = {"Cookie": "tether_admin=" + "0" * 64}
    eq(admin(relay, "GET", "/api/devices", bogus)[0], 401, "a made-up session")
    eq(admin(relay, "GET", "/", bogus)[0], 401, "a made-up session on the dashboard")
    eq(api(relay, "/api/devices")["total"], 3, "Bearer")
    # changes with the cookie need this listener's Origin (CSRF); with it they go through
    st, _, body, _ = admin(relay, "DELETE", "/api/devices/dev-2", ck)
    eq(st, 403, "DELETE with the cookie and no Origin (body %r)" % body)
    st, _, _, _ = admin(relay, "DELETE", "/api/devices/dev-2",
                        dict(ck, Origin="http://evil.example"))
    eq(st, 403, "DELETE with the cookie from another site")
    st, _, body, _ = admin(relay, "DELETE", "/api/devices/dev-2", dict(ck, Origin=base))
    eq(st, 200, "DELETE with the cookie from the dashboard (body %r)" % body)
    # a sign-in from another site's page is refused
    eq(_signin(relay, ADMIN_TOKEN, {"Origin": "http://evil.example"})[0], 403,
       "sign-in posted by another site")
    # sign out: the cookie is cleared and the session ends
    st, h, _, msg = admin(relay, "POST", "/signout", dict(ck, Origin=base))
    eq(st, 303, "sign-out")
    check(any("max-age=0" in v.lower() for v in msg.get_all("Set-Cookie") or []),
          "the cookie cleared: %r" % msg.get_all("Set-Cookie"))
    eq(admin(relay, "GET", "/api/devices", ck)[0], 401, "the session after signing out")
    # wrong tokens are throttled: after a burst, even the right one is refused unchecked
    # (the burst is 10 failures, refilled one a second; one wrong token was given above)
    codes = [_signin(relay, "wrong-%d" % i)[0] for i in range(12)]
    eq(codes[:9], [401] * 9, "the first wrong tokens")
    eq(codes[9:], [429, 429, 429], "wrong tokens past the burst")
    st, h, body, msg = _signin(relay, ADMIN_TOKEN)
    eq(st, 429, "the right token while throttled")
    check(h.get("retry-after"), "Retry-After while throttled")
    check(not msg.get_all("Set-Cookie"), "no session while throttled")
    st, _, body, _ = admin(relay, "GET", "/metrics", {"Authorization": "Bearer " + ADMIN_TOKEN})
    check(re.search(rb'tether_admin_signins_total\{result="wrong"\} 1[01]\b', body) and
          re.search(rb'tether_admin_signins_total\{result="throttled"\} [1-9]', body),
          "sign-in metrics: %r" % re.findall(rb"tether_admin_signins.*", body))
    # /healthz needs nothing
    eq(admin(relay, "GET", "/healthz")[0], 200, "/healthz")


def _metric_lines(relay, name):
    st, _, body, _ = admin(relay, "GET", "/metrics", {"Authorization": "Bearer " + ADMIN_TOKEN})
    eq(st, 200, "/metrics")
    text = body.decode()
    return [l for l in text.splitlines() if l.startswith(name)], text


def test_fleet_metrics_per_device_threshold(t):
    for bad in ("yes", "", "ON"):
        r = run_cli([TETHERD, "--metrics-per-device", bad, "--data-dir", t.mkdtemp("d")])
        eq(r.returncode, 2, "--metrics-per-device %r" % bad)
        check("--metrics-per-device" in r.stderr, "the error names the flag: %r" % r.stderr)
    r = run_cli([TETHERD, "--help"])
    check("--metrics-per-device auto|on|off" in r.stdout, "--help: %r" % r.stdout[-800:])
    # a small relay: per-device series as SPEC says
    small = relay_of(t)
    Fleet(t, small, "s", 3)
    lines, text = _metric_lines(small, "tether_device_bytes_total{")
    eq(len(lines), 6, "per-device series of 3 devices")
    check("tether_metrics_per_device 1" in text, "the gauge says so")
    # above 1000 known devices: none by default, the totals still there
    big = relay_of(t)
    Fleet(t, big, "b", 1001)
    lines, text = _metric_lines(big, "tether_device_bytes_total{")
    eq(lines, [], "per-device series above 1000 devices")
    check("tether_metrics_per_device 0" in text, "the gauge says they are off")
    check('tether_relay_bytes_total{direction="in"}' in text, "the total is there")
    check("tether_devices_online 1001" in text, "devices online")
    on = relay_of(t, extra=["--metrics-per-device", "on"])
    Fleet(t, on, "o", 1001)
    lines, _ = _metric_lines(on, "tether_device_bytes_total{")
    eq(len(lines), 2002, "per-device series with --metrics-per-device on")
    # and off means off even for a small relay
    off = relay_of(t, extra=["--metrics-per-device", "off"])
    Fleet(t, off, "f", 2)
    eq(_metric_lines(off, "tether_device_bytes_total{")[0], [], "--metrics-per-device off")


def _chromium(t):
    from test_private_signin import _Chromium
    return _Chromium(t)


def _rows(b):
    return json.loads(b.js("JSON.stringify([...document.querySelectorAll('#devices tbody tr')]"
                           ".map(r => [r.cells[0].innerText, r.cells[2].innerText]))"))


def _counts(b):
    return json.loads(b.js("JSON.stringify(Object.fromEntries([...document.querySelectorAll("
                           "'#counts .count')].map(c => [c.innerText.split('\\n').slice(1)"
                           ".join(' ').trim(), +c.querySelector('b').innerText])))"))


def _screenshot(t, b, name):
    shot = b.call("Page.captureScreenshot", format="png")
    path = t.path(name)
    with open(path, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    if os.environ.get("TETHER_SCREENSHOT_DIR"):
        with open(os.path.join(os.environ["TETHER_SCREENSHOT_DIR"], name), "wb") as f:
            f.write(base64.b64decode(shot["data"]))
    return path


def test_fleet_dashboard_chromium_10000_devices(t):
    relay = relay_of(t)
    online = Fleet(t, relay, "sensor", 8000, timeout=600)
    offline = Fleet(t, relay, "gate", 2000, timeout=600)
    offline.stop()
    wait_for(lambda: api(relay, "/api/devices?online=false&limit=1")["total"] == 2000, 60,
             "2000 devices offline")
    everyone = sorted(online.names() + offline.names(), key=lambda s: s.encode())
    # the API at 10,000 devices: pages of at most 1000, every name once
    j = api(relay, "/api/devices")
    eq((len(j["devices"]), j["total"], j["next"]), (1000, 10000, everyone[999]),
       "the first page of the API")
    names, totals, pages = walk(relay, {}, 1000)
    eq((names == everyone, totals, pages), (True, {10000}, 10), "every page of the API")
    # tetherd admin follows next through the ten pages
    env = dict(os.environ, TETHER_ADMIN_TOKEN=ADMIN_TOKEN)
    r = subprocess.run([TETHERD, "admin", "--admin-url", "http://127.0.0.1:%d" % relay.admin_port,
                        "devices", "--json"], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=120, env=env)
    eq(r.returncode, 0, "tetherd admin devices --json (stderr %r)" % r.stderr[-300:])
    eq([d["name"] for d in json.loads(r.stdout)["devices"]], everyone,
       "tetherd admin devices --json: every device once, by name")
    # the dashboard in Chromium: sign in, counts, first page, search, next page
    b = _chromium(t)
    b.call("Page.enable")
    b.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1,
           mobile=False)
    url = "http://127.0.0.1:%d/" % relay.admin_port
    b.call("Page.navigate", url=url)
    b.wait(lambda s: "sign in" in s["title"], "the sign-in page")
    _screenshot(t, b, "dashboard-signin.png")
    b.type_into("#token", ADMIN_TOKEN)
    b.js("document.querySelector('button[type=submit]').click()")
    s = b.wait(lambda s: s["title"] == "tetherd: devices", "the dashboard after signing in",
               timeout=60)
    eq(s["url"], url, "the dashboard's URL")
    eq(s["cookie"], "", "document.cookie (the session is HttpOnly)")
    c = _counts(b)
    eq((c.get("online"), c.get("offline"), c.get("known")), (8000, 2000, 10000),
       "counts at the top: %r" % c)
    rows = _rows(b)
    eq([r[0] for r in rows], everyone[:100], "the first page: 100 devices by name")
    eq({r[1] for r in rows}, {"offline"}, "state in words (gate-* are offline)")
    check("10000 matching devices" in s["text"], "the summary: %r" % s["text"][:400])
    _screenshot(t, b, "dashboard-first.png")
    # next page
    b.js("document.querySelector('#next').click()")
    b.wait(lambda s: "after=" in s["url"], "the next page")
    rows = _rows(b)
    eq([r[0] for r in rows], everyone[100:200], "the second page")
    b.js("document.querySelector('#prev').click()")
    b.wait(lambda s: "after=" not in s["url"], "back to the first page")
    eq([r[0] for r in _rows(b)], everyone[:100], "the previous page is the first one")
    # search narrows it; the state filter too
    b.type_into("input[name=q]", "SENSOR-777")
    b.js("document.querySelector('form.search').submit()")
    s = b.wait(lambda s: "q=" in s["url"], "the search's page")
    want = [n for n in everyone if n.startswith("sensor-777")]
    eq([r[0] for r in _rows(b)], want, "search SENSOR-777")
    eq({r[1] for r in _rows(b)}, {"online"}, "their state")
    check("%d matching devices" % len(want) in s["text"], "summary: %r" % s["text"][:400])
    _screenshot(t, b, "dashboard-search.png")
    b.call("Page.navigate", url=url + "?online=false&q=gate-19")
    b.wait(lambda s: "online=false" in s["url"], "the offline filter")
    rows = _rows(b)
    want = [n for n in sorted(offline.names(), key=lambda s: s.encode()) if "gate-19" in n]
    eq([r[0] for r in rows], want[:100], "offline gate-19*")
    eq(b.js("document.querySelector('select[name=online]').value"), "false", "the filter shown")
    # never the whole fleet: the page's size stays small
    st, _, body, _ = admin(relay, "GET", "/", {"Authorization": "Bearer " + ADMIN_TOKEN})
    eq(st, 200, "the dashboard with Bearer")
    eq(body.count(b'<td class="name">'), 100, "rows on the first page")
    check(len(body) < 200 * 1024, "the first page is %d bytes" % len(body))


def test_fleet_cluster_pages_counts_per_node(t):
    from test_cluster import _free_range_all, _node
    from lib import RedisServer
    redis = RedisServer(t)
    low, high = _free_range_all(t)
    extra = ["--admin-token", ADMIN_TOKEN, "--log-level", "info"] + FLEET_FLAGS
    a = _node(t, redis, "node-a", "127.0.0.2", (low, high), grace="10m", extra=extra)
    b = _node(t, redis, "node-b", "127.0.0.3", (low, high), grace="10m", extra=extra)
    # the handshakes say they were redirected already: each group stays on its node
    on_a = Fleet(t, a, "alpha", 30, url=a.url + "/?tether-redirected=1")
    on_b = Fleet(t, b, "beta", 25, url=b.url + "/?tether-redirected=1")
    gone = Fleet(t, b, "gamma", 5, url=b.url + "/?tether-redirected=1")
    gone.stop()
    everyone = sorted(on_a.names() + on_b.names() + gone.names(), key=lambda s: s.encode())
    wait_for(lambda: api(a, "/api/devices?online=false")["total"] == 5, 30,
             "the gamma devices offline in node a's view")
    for node in (a, b):
        names, totals, pages = walk(node, {}, 7)
        eq((names, totals, pages), (everyone, {60}, 9), "pages of the cluster on %s" % node.name)
        names, totals, _ = walk(node, {"online": "true", "q": "ALPHA-2"}, 3)
        want = [n for n in on_a.names() if n.startswith("alpha-2")]
        eq((names, totals), (sorted(want), {len(want)}), "q and online on %s" % node.name)
        j = api(node, "/api/devices?online=false")
        eq(([d["name"] for d in j["devices"]], j["total"]), (sorted(gone.names()), 5),
           "offline on %s" % node.name)
        j = api(node, "/api/devices?after=beta-9&limit=2")
        eq([(d["name"], d["node"]) for d in j["devices"]],
           [("gamma-0", None), ("gamma-1", None)], "after a name, on %s" % node.name)
        for d in api(node, "/api/devices?q=alpha-1&limit=3")["devices"]:
            eq(d["node"], "node-a", "the holder of %s" % d["name"])
        api(node, "/api/devices?limit=0", status=400)
    # the dashboard of node b: counts for the fleet and per node, a page of the whole cluster
    st, _, body, _ = admin(b, "GET", "/?limit=10", {"Authorization": "Bearer " + ADMIN_TOKEN})
    eq(st, 200, "node b's dashboard")
    page = body.decode()
    counts = dict((k, int(v)) for v, k in re.findall(r'<div class="count"><b>(\d+)</b>([^<]+)',
                                                      page))
    eq((counts.get("online"), counts.get("offline"), counts.get("known")), (55, 5, 60),
       "fleet counts: %r" % counts)
    eq((counts.get("online on node-a"), counts.get("online on node-b (this node)")), (30, 25),
       "counts per node: %r" % counts)
    eq(page.count('<td class="name">'), 10, "rows of the page")
    check('href="/?limit=10&amp;after=alpha-17"' in page, "next link: %r" % page[-1500:])
