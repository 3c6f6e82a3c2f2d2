"""test_admin_async.py - in a cluster the admin side waits for Redis' reply, never on the loop:
two tetherd nodes sharing a real redis-server, which is stopped (SIGSTOP, by the PID this test
started) for a few seconds.

- While it is stopped, GET /api/devices (the walk over the registry), GET /api/devices/NAME,
  GET /api/grants, the dashboard (GET /), its device page, its grants page and its grant form
  (POST /grants) on node A are held, and node A keeps answering
  requests to the device it holds meanwhile; after SIGCONT the held requests complete from
  Redis' replies (the other node's device listed). The code as it was answered them during the
  stop from what the node knew after a synchronous call that stalled its loop (the device listed
  by node B missing).
- The walks' cap (TT_CLUSTER_WALKS_MAX, 8): beyond it GET /api/devices and the dashboard get 503
  with Retry-After at once; a walk past its time limit (TT_CLUSTER_WALK_MS, 4 s) gets 503 with
  Retry-After; admin clients that go mid-walk and mid-read cancel their jobs (the node stays
  ASan-clean, checked when the test's processes stop); all of it counted in /metrics."""

import http.client
import json
import os
import re
import signal
import socket
import threading
import time

from lib import check, eq, wait_for
from test_cluster import _admin, _cluster, _get, _holds

WALKS_MAX = 8
WALK_S = 4.0


def _metric(node, name, missing=None):
    """The value of the series name (with its labels, as printed) on node's /metrics (missing:
    what a series that is not there counts as; None: a failure)."""
    text = _admin(node, "/metrics")[1].decode()
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    if not m and missing is not None:
        return missing
    check(m, "metric %s missing on %s" % (name, node.name))
    return int(m.group(1))


def _walks(node, result):
    return _metric(node, 'tether_admin_walks_total{result="%s"}' % result)


class _Held:
    """One admin request on its own thread: status, headers, body, and when it was answered."""

    def __init__(self, node, path, form=None):
        self.path, self.node, self.form = path, node, form
        self.status = self.headers = self.body = self.error = None
        self.done_at = None
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        c = http.client.HTTPConnection("127.0.0.1", self.node.admin_port, timeout=30)
        try:
            if self.form is None:
                c.request("GET", self.path)
            else:
                c.request("POST", self.path, body=self.form.encode(),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
            r = c.getresponse()
            self.status, self.headers, self.body = r.status, dict(r.getheaders()), r.read()
        except OSError as e:
            self.error = repr(e)
        finally:
            self.done_at = time.monotonic()
            c.close()

    def join(self):
        self.th.join(30)
        check(self.done_at is not None, "%s got no answer" % self.path)
        check(self.error is None, "%s: %s" % (self.path, self.error))


def _raw(node, path):
    """A GET to node's admin listener on a socket of our own, left open (not read)."""
    s = socket.create_connection(("127.0.0.1", node.admin_port), timeout=30)
    s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" %
               (path, node.admin_port)).encode())
    return s


def _raw_answer(s):
    """Reads s to its end: (status, headers with lowercase keys, body)."""
    data = b""
    with s:
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    check(lines and lines[0].startswith("HTTP/1.1 "), "no HTTP answer: %r" % data[:200])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), hdrs, body


def _two_devices(t):
    redis, (a, b) = _cluster(t)
    svc_a = t.http_service(big_size=1024, ident="held-by-a")
    svc_b = t.http_service(big_size=1024, ident="held-by-b")
    dev_a = t.agent(a, http=svc_a.port)
    dev_b = t.agent(b, http=svc_b.port, server=b.url + "/?tether-redirected=1")
    check(_holds(a, dev_a.name) and _holds(b, dev_b.name), "devices not on their nodes")
    eq(_get(a, dev_a.label)[::2], (200, b"held-by-a"), "device a via node a")
    return redis, a, b, dev_a, dev_b


def _held_through_redis_stop(redis, node, dev, send, what, status, limit, during=None):
    """Stops redis (SIGSTOP) for 2.2 s: send() sends the admin requests to hold (a list of
    _Held), node's own device dev (its service answers "held-by-a") is asked every 50 ms
    meanwhile and must answer, during() (if given) runs last; then SIGCONT. No held request may
    be answered before it, each must get status(h) after it. Returns the held requests; the
    figures go to the file TT_E2E_STATS names, when set (reports)."""
    redis.proc.send_signal(signal.SIGSTOP)
    stopped = time.monotonic()
    lat = []
    try:
        held = send()
        while time.monotonic() - stopped < 2.2:
            t0 = time.monotonic()
            st, _, body = _get(node, dev.label, timeout=10)
            lat.append(time.monotonic() - t0)
            eq((st, body), (200, b"held-by-a"), "the node's own device while Redis is stopped")
            time.sleep(0.05)
        answered = ["%s (%d after %.2f s)" % (h.path, h.status or 0, h.done_at - stopped)
                    for h in held if h.done_at is not None]
        still = time.monotonic() - stopped
        check(still < limit, "the checks took %.1f s: Redis resumed too late to tell" % still)
        if during:
            during()
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    resumed = time.monotonic()
    try:
        eq(answered, [], "%s answered while Redis was stopped (without its reply; "
           "%d device requests, slowest %.3f s)" % (what, len(lat), max(lat)))
        check(len(lat) >= 10, "only %d requests to the device answered during the stop" % len(lat))
        for h in held:
            h.join()
            eq(h.status, status(h), "%s after SIGCONT (%r)" % (h.path, (h.body or b"")[:200]))
            check(h.done_at >= resumed - 0.05, "%s answered before Redis resumed" % h.path)
    finally:
        stats = os.environ.get("TT_E2E_STATS")
        if stats:
            with open(stats, "a") as f:
                f.write("%s: device requests during the stop: %d, slowest %.3f s, mean %.4f s; "
                        "%s answered at %s s after SIGSTOP (SIGCONT at %.2f s)\n" %
                        (os.environ.get("TETHERD", "this tree"), len(lat), max(lat),
                         sum(lat) / len(lat), what,
                         ["%.2f" % (h.done_at - stopped) if h.done_at else "-" for h in held],
                         resumed - stopped))
    return held


def _names(body):
    return sorted(d["name"] for d in json.loads(body)["devices"])


def test_admin_reads_wait_for_redis_not_the_loop(t):
    redis, a, b, dev_a, dev_b = _two_devices(t)
    wait_for(lambda: _names(_admin(a, "/api/devices")[1]) == sorted([dev_a.name, dev_b.name]),
             10, "node a to list both devices")
    ok_before = _metric(a, 'tether_admin_walks_total{result="ok"}', missing=0)

    def send():
        held = [_Held(a, p) for p in ("/api/devices", "/api/devices/" + dev_b.name,
                                      "/api/grants", "/?live=0", "/device?name=" + dev_b.name,
                                      "/grants")]
        held.append(_Held(a, "/grants", form="user=late&patterns=dev-*/http&ttl=5m"))
        return held

    held = _held_through_redis_stop(redis, a, dev_a, send, "admin requests",
                                    lambda h: 201 if h.form else 200, WALK_S - 0.5)
    devices, one, grants, page, devpage, grantspage, made = held
    eq(_names(devices.body), sorted([dev_a.name, dev_b.name]), "GET /api/devices on node a")
    d = json.loads(one.body)
    eq((d["name"], d["online"], d["node"]), (dev_b.name, True, "node-b"),
       "GET /api/devices/NAME of node b's device on node a")
    # the grant made through the form at the same time may be listed already, or not yet
    check({g["user"] for g in json.loads(grants.body)["grants"]} <= {"late"},
          "GET /api/grants: %r" % grants.body[:300])
    check(dev_b.name.encode() in page.body and b"node-b" in page.body,
          "node b's device not on node a's dashboard")
    check(dev_b.name.encode() in devpage.body and b"node-b" in devpage.body,
          "node b's device not on node a's device page")
    check(b"<form" in grantspage.body, "the grants page has no form")
    check(b"ttg_" in made.body and b"late" in made.body,
          "the grant made through the form while Redis was stopped: its token, once")
    check(_walks(a, "ok") >= ok_before + 4, "the walks were not counted")
    eq(_metric(a, "tether_admin_walks"), 0, "walks in flight after the answers")
    check(_metric(a, 'tether_admin_grant_reads_total{result="sent"}') >= 1,
          "the grants read was not counted")
    eq(_metric(a, "tether_admin_grant_reads"), 0, "grant reads waiting after the answers")
    check(a.proc.alive() and b.proc.alive(), "a node died")


def test_admin_walks_cap_timeout_and_clients_gone(t):
    redis, a, b, dev_a, dev_b = _two_devices(t)
    eq(_metric(a, "tether_admin_walks_max"), WALKS_MAX, "the cap on walks")
    eq(_metric(a, "tether_admin_walk_restarts_total"), 0, "walks started again")
    eq(_metric(a, "tether_admin_grant_reads_max"), 64, "the cap on the admin's grant reads")
    cancelled = _walks(a, "cancelled")
    redis.proc.send_signal(signal.SIGSTOP)
    stopped = time.monotonic()
    socks = []
    try:
        # clients that go mid-walk and mid-read: their jobs are cancelled (the walk still counts
        # until its step's reply)
        gone = _raw(a, "/api/devices?limit=5")
        gone_grants = _raw(a, "/api/grants")
        time.sleep(0.3)
        gone.close()
        gone_grants.close()
        wait_for(lambda: _walks(a, "cancelled") == cancelled + 1, 3, "the cancelled walk counted")
        eq(_metric(a, "tether_admin_walks"), 1, "the cancelled walk, its step still due")
        # up to the cap: walks held
        socks = [_raw(a, "/api/devices?q=dev") for _ in range(WALKS_MAX - 1)]
        wait_for(lambda: _metric(a, "tether_admin_walks") == WALKS_MAX, 3, "walks at the cap")
        refused = _walks(a, "refused")
        # beyond the cap: 503 with Retry-After at once, JSON for the API, a page for the dashboard
        c = http.client.HTTPConnection("127.0.0.1", a.admin_port, timeout=10)
        c.request("GET", "/api/devices")
        r = c.getresponse()
        st, retry, body = r.status, r.getheader("Retry-After"), r.read()
        c.close()
        eq((st, retry), (503, "2"), "GET /api/devices beyond the cap")
        check("error" in json.loads(body), "the API's 503 is its JSON error")
        st, body = _admin(a, "/")
        eq(st, 503, "the dashboard beyond the cap")
        check(b"<html" in body.lower() or b"<!doctype" in body.lower(), "the dashboard's 503 page")
        eq(_walks(a, "refused"), refused + 2, "walks refused at the cap")
        # node a's own device is served meanwhile
        eq(_get(a, dev_a.label, timeout=10)[::2], (200, b"held-by-a"), "node a's device")
        # the held walks reach their time limit: 503 with Retry-After
        timeouts = _walks(a, "timeout")
        answers = [_raw_answer(s) for s in socks]
        socks = []
        waited = time.monotonic() - stopped
        for st, hdrs, body in answers:
            eq((st, hdrs.get("retry-after")), (503, "2"), "a walk past its time limit")
        check(waited >= WALK_S - 0.5, "the walks answered after %.1f s only" % waited)
        eq(_walks(a, "timeout"), timeouts + WALKS_MAX - 1, "walks past their time limit")
    finally:
        redis.proc.send_signal(signal.SIGCONT)
        for s in socks:
            s.close()
    # Redis answers again: the walks' steps come back and free their slots; lists work
    wait_for(lambda: _metric(a, "tether_admin_walks") == 0, 10, "walks in flight after SIGCONT")
    wait_for(lambda: _admin(a, "/api/devices")[0] == 200, 10, "GET /api/devices after SIGCONT")
    eq(_names(_admin(a, "/api/devices")[1]), sorted([dev_a.name, dev_b.name]),
       "GET /api/devices on node a after SIGCONT")
    eq(_admin(a, "/api/grants")[0], 200, "GET /api/grants after SIGCONT")
    eq(_metric(a, "tether_admin_grant_reads"), 0, "grant reads waiting after SIGCONT")
    check(a.proc.alive() and b.proc.alive(), "a node died")


def test_admin_paging_walk_across_a_redis_stall(t):
    """A client paging through GET /api/devices (limit=1, following next) while Redis stalls for
    a second in the middle lists every device: the page asked during the stall waits for Redis.
    The code as it was answered that page from the node's own devices after its 300 ms timeout,
    with a next of its own: the walk listed fewer devices than the registry held (what
    docs/BENCHMARKS.md saw after failovers at 100,000 devices, in small)."""
    redis, (a, b) = _cluster(t)
    devs = []
    for i, node in enumerate((a, a, b, b)):
        svc = t.http_service(big_size=1024, ident="dev-%d" % i)
        server = node.url + ("/?tether-redirected=1" if node is b else "")
        devs.append(t.agent(node, http=svc.port, server=server))
    want = sorted(d.name for d in devs)
    wait_for(lambda: _names(_admin(a, "/api/devices")[1]) == want, 10,
             "node a to list the four devices")
    got, after, pages = [], None, 0
    stalled = None
    while pages < 10:
        path = "/api/devices?limit=1" + ("&after=" + after if after else "")
        st, body = _admin(a, path)
        eq(st, 200, "GET %s" % path)
        page = json.loads(body)
        got += [d["name"] for d in page["devices"]]
        pages += 1
        if pages == 1:
            # Redis stalls for a second while the next page is asked for
            redis.proc.send_signal(signal.SIGSTOP)
            stalled = threading.Timer(1.0, lambda: redis.proc.send_signal(signal.SIGCONT))
            stalled.start()
        after = page["next"]
        if not after:
            break
    stalled.join()
    redis.proc.send_signal(signal.SIGCONT)
    eq(got, want, "the devices a paging walk over node a listed across a Redis stall")
    check(a.proc.alive() and b.proc.alive(), "a node died")
