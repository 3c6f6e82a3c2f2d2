"""test_admin.py - the admin listener (SPEC.md, "Admin API"): the device list and one device,
DELETE, Prometheus metrics, --admin-token, and the dashboard."""

import http.client
import json
import re

from lib import TETHERD, check, eq, free_port, port_open, run_cli, wait_for

ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
FIELDS = ["name", "online", "label", "url", "services", "connected_since", "last_seen",
          "remote_addr", "bytes_in", "bytes_out", "streams"]


def admin(relay, method, path, headers=None):
    """One request to relay's admin listener: (status, headers with lowercase keys, body)."""
    c = http.client.HTTPConnection("127.0.0.1", relay.admin_port, timeout=30)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def admin_json(relay, method, path, status=200, headers=None):
    st, h, body = admin(relay, method, path, headers)
    eq(st, status, "status of %s %s (body %r)" % (method, path, body[:200]))
    eq(h.get("content-type"), "application/json", "content type of %s %s" % (method, path))
    return json.loads(body)


def devices(relay):
    return {d["name"]: d for d in admin_json(relay, "GET", "/api/devices")["devices"]}


def check_device(d, online):
    for f in FIELDS:
        check(f in d, "field %r missing from %r" % (f, d))
    eq(d["online"], online, "online of %s" % d["name"])
    check(isinstance(d["label"], str) and d["label"], "label %r" % d["label"])
    check(isinstance(d["url"], str) and d["label"] in d["url"], "url %r" % d["url"])
    for f in ("bytes_in", "bytes_out", "streams"):
        check(isinstance(d[f], int) and not isinstance(d[f], bool), "%s %r" % (f, d[f]))
    check(ISO_RE.match(d["last_seen"] or ""), "last_seen %r" % d["last_seen"])
    if online:
        check(ISO_RE.match(d["connected_since"] or ""),
              "connected_since %r" % d["connected_since"])
        check(isinstance(d["remote_addr"], str) and d["remote_addr"].startswith("127.0.0.1"),
              "remote_addr %r" % d["remote_addr"])
    check(isinstance(d["services"], list), "services %r" % d["services"])


def test_devices_online_offline_one_and_unknown(t):
    relay = t.relay()
    svc = t.http_service()
    echo = t.tcp_echo()
    a = t.agent(relay, http=svc.port, tcp={"echo": echo.port})
    b = t.agent(relay, http=svc.port)
    eq(relay.request("GET", "/", label=a.label)[0], 200, "status through the relay")
    b.stop()
    wait_for(lambda: devices(relay).get(b.name, {}).get("online") is False, 10,
             "the stopped device to be offline")
    ds = devices(relay)
    check_device(ds[a.name], True)
    check_device(ds[b.name], False)
    kinds = {s["name"]: s for s in ds[a.name]["services"]}
    tcp = [s for s in kinds.values() if s["kind"] == "tcp"]
    eq(len(tcp), 1, "tcp services of %r" % kinds)
    eq(tcp[0]["port"], a.tcp_port("echo"), "tcp port")
    check(isinstance(tcp[0]["host"], str), "tcp host %r" % tcp[0])
    http_svcs = [s for s in kinds.values() if s["kind"] == "http"]
    eq(len(http_svcs), 1, "http services of %r" % kinds)
    check(a.label in http_svcs[0]["url"], "http url %r" % http_svcs[0])
    check(ds[a.name]["bytes_in"] > 0 and ds[a.name]["bytes_out"] > 0, "bytes %r" % ds[a.name])
    check(ds[a.name]["streams"] >= 1, "streams %r" % ds[a.name])
    one = admin_json(relay, "GET", "/api/devices/" + a.name)
    eq(one["name"], a.name, "name of one device")
    check_device(one, True)
    err = admin_json(relay, "GET", "/api/devices/no-such-device", status=404)
    check(isinstance(err.get("error"), str), "error field: %r" % err)


def test_delete_releases_label_and_port(t):
    relay = t.relay()
    svc = t.http_service()
    echo = t.tcp_echo()
    a = t.agent(relay, http=svc.port, tcp={"echo": echo.port})
    port = a.tcp_port("echo")
    eq(relay.request("GET", "/", label=a.label)[0], 200, "status before the delete")
    check(port_open(port), "the device's TCP port is closed before the delete")
    eq(admin_json(relay, "DELETE", "/api/devices/" + a.name), {"deleted": a.name},
       "DELETE answer")
    check(a.name not in devices(relay), "the deleted device is still listed")
    eq(relay.request("GET", "/", label=a.label)[0], 404, "status of the deleted label")
    wait_for(lambda: not port_open(port), 10, "the deleted device's TCP port to close")
    wait_for(lambda: "device deleted on the relay" in a.proc.stderr_text(), 10,
             "the agent to report the deletion")
    admin_json(relay, "GET", "/api/devices/" + a.name, status=404)
    admin_json(relay, "DELETE", "/api/devices/" + a.name, status=404)


def metric(text, name):
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    check(m, "no %s in %r" % (name, text[:2000]))
    return int(m.group(1))


def test_metrics(t):
    relay = t.relay()
    svc = t.http_service()
    a = t.agent(relay, http=svc.port)
    st, h, body = admin(relay, "GET", "/metrics")
    eq(st, 200, "status of /metrics")
    eq(h.get("content-type"), "text/plain; version=0.0.4", "content type of /metrics")
    text = body.decode()
    for m, kind in (("tether_devices_online", "gauge"), ("tether_relay_bytes_total", "counter"),
                    ("tether_device_bytes_total", "counter"), ("tether_streams_total", "counter"),
                    ("tether_device_connects_total", "counter")):
        check("# TYPE %s %s" % (m, kind) in text, "no TYPE line for %s" % m)
        check("# HELP %s " % m in text, "no HELP line for %s" % m)
    eq(metric(text, "tether_devices_online"), 1, "devices online")
    eq(metric(text, "tether_device_connects_total"), 1, "connects")
    before_in = metric(text, 'tether_relay_bytes_total{direction="in"}')
    dev_out = metric(text, 'tether_device_bytes_total{device="%s",direction="out"}' % a.name)
    streams = metric(text, "tether_streams_total")
    eq(relay.request("GET", "/", label=a.label)[0], 200, "status through the relay")
    text = admin(relay, "GET", "/metrics")[2].decode()
    check(metric(text, 'tether_relay_bytes_total{direction="in"}') > before_in, "bytes in grew")
    check(metric(text, 'tether_device_bytes_total{device="%s",direction="out"}' % a.name) >
          dev_out, "device bytes out grew")
    check(metric(text, "tether_streams_total") > streams, "streams grew")


def test_admin_token(t):
    relay = t.relay(extra=("--admin-token", "s3cret-admin"))
    good = {"Authorization": "Bearer s3cret-admin"}
    for path in ("/", "/api/devices", "/metrics", "/api/devices/x"):
        st, h, _ = admin(relay, "GET", path)
        eq(st, 401, "status of %s without a token" % path)
        check(h.get("www-authenticate", "").startswith("Bearer"), "WWW-Authenticate %r" % h)
        eq(admin(relay, "GET", path, {"Authorization": "Bearer wrong"})[0], 401,
           "status of %s with a wrong token" % path)
    eq(admin(relay, "GET", "/api/devices", good)[0], 200, "status with the token")
    eq(admin(relay, "GET", "/metrics", good)[0], 200, "status of /metrics with the token")
    eq(admin(relay, "GET", "/healthz")[0], 200, "status of /healthz without a token")


def test_non_loopback_admin_needs_token(t):
    argv = [TETHERD, "--listen", "127.0.0.1:%d" % free_port(), "--domain", "localhost",
            "--data-dir", t.mkdtemp("data"), "--token", "tok",
            "--admin-listen", "0.0.0.0:%d" % free_port()]
    r = run_cli(argv)
    eq(r.returncode, 2, "exit status (stderr %r)" % r.stderr)
    eq(len(r.stderr.strip().splitlines()), 1, "stderr lines: %r" % r.stderr)
    check("admin-token" in r.stderr, "stderr %r" % r.stderr)


def test_dashboard_and_methods(t):
    relay = t.relay()
    svc = t.http_service()
    a = t.agent(relay, http=svc.port)
    st, h, body = admin(relay, "GET", "/")
    eq(st, 200, "status of the dashboard")
    eq(h.get("content-type"), "text/html; charset=utf-8", "content type of the dashboard")
    page = body.decode()
    check(a.name in page and "online" in page and a.label in page, "page %r" % page[:2000])
    eq(admin(relay, "GET", "/nope")[0], 404, "status of an unknown path")
    eq(admin(relay, "POST", "/api/devices")[0], 405, "status of POST /api/devices")
    eq(admin(relay, "PUT", "/")[0], 405, "status of PUT /")
