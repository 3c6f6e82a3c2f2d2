"""test_webhooks.py - tetherd --webhook (SPEC "tetherd"): device events POSTed to a real receiver
(a Python http.server on loopback, started here) as one JSON object each, keys in SPEC's order,
signed X-Tether-Signature: sha256=HMAC-SHA256 (checked here with hmac): online, takeover,
offline, expired (--grace 2s) and deleted; a receiver that is down at first and comes up (the
retries deliver); a receiver that holds every request (the relay's traffic goes on, the queue's
cap drops and counts); two URLs; a two-node cluster with redis-server sending each event once;
and the flags' usage errors (one line, exit 2), the secret kept out of the logs."""

import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import signal
import ssl
import subprocess
import threading
import time

from lib import (RedisServer, Relay, TETHERD, check, eq, free_port, free_port_range, wait_for)

SECRET = "wh-secret-0123456789"
KEYS = ["event", "device", "label", "node", "time"]
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class Receiver:
    """A webhook receiver on 127.0.0.1:port: records every POST (path, headers with lowercase
    names, body bytes) and answers status. hold: requests wait (at most 60 s) until release();
    start=False: nothing listens until start()."""

    def __init__(self, t, port=None, status=200, hold=False, start=True, tls=None):
        self.port = port or free_port()
        self.tls = tls  # (cert, key): https
        self.status = status
        self.got = []
        self.arrived = 0
        self.lock = threading.Lock()
        self.gate = threading.Event()
        if not hold:
            self.gate.set()
        self.srv = None
        t.on_cleanup(self.close)
        if start:
            self.start()

    @property
    def url(self):
        if self.tls:
            return "https://localhost:%d/hook?k=v" % self.port
        return "http://127.0.0.1:%d/hook?k=v" % self.port

    def start(self):
        rx = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with rx.lock:
                    rx.arrived += 1
                rx.gate.wait(60)
                with rx.lock:
                    rx.got.append((self.path, {k.lower(): v for k, v in self.headers.items()},
                                   body))
                self.send_response(rx.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.srv.daemon_threads = True
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def release(self):
        self.gate.set()

    def close(self):
        self.gate.set()
        if self.srv:
            self.srv.shutdown()
            self.srv.server_close()
            self.srv = None

    def events(self):
        with self.lock:
            return [json.loads(b) for _, _, b in self.got]

    def names(self):
        return [e["event"] for e in self.events()]


def wait_events(rx, pred, timeout, what):
    wait_for(lambda: pred(rx.names()), timeout, "%s (got %r)" % (what, rx.names()), interval=0.1)


def verify(rx, secret=SECRET):
    """Every request so far: path, headers, body shape and signature as SPEC writes them."""
    with rx.lock:
        got = list(rx.got)
    for path, h, body in got:
        eq(path, "/hook?k=v", "request path")
        eq(h.get("content-type"), "application/json", "Content-Type")
        check(h.get("user-agent", "").startswith("tetherd/"), "User-Agent %r" % h.get("user-agent"))
        pairs = json.loads(body, object_pairs_hook=lambda p: p)
        eq([k for k, _ in pairs], KEYS, "keys of %r" % body)
        ev = dict(pairs)
        check(ev["event"] in ("online", "offline", "expired", "takeover", "deleted"),
              "event %r" % ev["event"])
        check(ISO_RE.match(ev["time"]), "time %r" % ev["time"])
        sig = h.get("x-tether-signature")
        if secret is None:
            check(sig is None, "a signature without a secret: %r" % sig)
            continue
        want = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        eq(sig, want, "X-Tether-Signature of %r" % body)
    return [json.loads(b) for _, _, b in got]


def metrics(relay):
    c = http.client.HTTPConnection("127.0.0.1", relay.admin_port, timeout=10)
    try:
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
    finally:
        c.close()
    out = {}
    for line in text.splitlines():
        if line.startswith("tether_webhook"):
            k, v = line.rsplit(" ", 1)
            out[k] = int(v)
    return out


def delete(relay, name):
    c = http.client.HTTPConnection("127.0.0.1", relay.admin_port, timeout=10)
    try:
        c.request("DELETE", "/api/devices/" + name)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def _secret_file(t):
    p = t.path("webhook-secret")
    with open(p, "w") as f:
        f.write(SECRET + "\n")
    return p


def test_every_event_is_posted_and_signed(t):
    rx = Receiver(t)
    relay = t.relay(grace="2s", extra=["--webhook", rx.url, "--webhook-secret-file",
                                       _secret_file(t)])
    svc = t.http_service(big_size=1024)
    a = t.agent(relay, name="wh-dev", http=svc.port)
    wait_events(rx, lambda n: n == ["online"], 30, "the online event")
    ev = rx.events()[0]
    eq(ev, {"event": "online", "device": "wh-dev", "label": a.label, "node": None,
            "time": ev["time"]}, "online event")
    # a second connection of the same device takes over the (frozen) first one
    a.proc.send_signal(signal.SIGSTOP)
    try:
        b = t.agent(relay, name="wh-dev", http=svc.port)
        wait_events(rx, lambda n: n[:3] == ["online", "takeover", "online"], 30,
                    "takeover, then online")
    finally:
        a.proc.send_signal(signal.SIGKILL)
        a.proc.stopped = True
    b.stop()
    wait_events(rx, lambda n: n[:4] == ["online", "takeover", "online", "offline"], 30,
                "the offline event")
    wait_events(rx, lambda n: n[:5] == ["online", "takeover", "online", "offline", "expired"],
                30, "the expired event (grace 2s)")
    c = t.agent(relay, name="wh-dev", http=svc.port)
    check(c.label != a.label, "a new label after the expiry")
    wait_events(rx, lambda n: n[5:6] == ["online"], 30, "online again")
    eq(delete(relay, "wh-dev")[0], 200, "status of DELETE")
    wait_events(rx, lambda n: n[6:7] == ["deleted"], 30, "the deleted event")
    evs = verify(rx)
    for e in evs[:7]:
        eq(e["device"], "wh-dev", "device of %r" % e)
        check(e["node"] is None, "node of a single relay: %r" % e)
    eq([e["label"] for e in evs[:7]], [a.label] * 5 + [c.label] * 2, "labels")
    m = metrics(relay)
    check(m.get('tether_webhook_events_total{result="delivered"}', 0) >= 7, "metrics %r" % m)
    eq(m.get('tether_webhook_events_total{result="dropped"}'), 0, "dropped events")
    check(SECRET not in relay.proc.stderr_text(), "the secret is in the relay's log")


def test_receiver_down_at_first_gets_the_event_when_it_comes_up(t):
    rx = Receiver(t, start=False)
    # the secret from the environment (tetherd gets this process's environment)
    os.environ["TETHER_WEBHOOK_SECRET"] = SECRET
    try:
        relay = Relay(t, extra=["--webhook", rx.url])
    finally:
        del os.environ["TETHER_WEBHOOK_SECRET"]
    svc = t.http_service(big_size=1024)
    a = t.agent(relay, http=svc.port)
    wait_for(lambda: metrics(relay).get('tether_webhook_requests_total{result="failed"}', 0) >= 2,
             30, "two failed attempts while the receiver is down")
    eq(rx.names(), [], "events before the receiver is up")
    rx.start()
    wait_events(rx, lambda n: n == ["online"], 30, "the online event, retried")
    evs = verify(rx)
    eq(evs[0]["device"], a.name, "device")
    m = metrics(relay)
    eq(m.get('tether_webhook_events_total{result="delivered"}'), 1, "delivered")
    eq(m.get("tether_webhook_queue"), 0, "queue after delivery")


def test_event_given_up_after_max_age(t):
    rx = Receiver(t, start=False)  # never comes up
    relay = t.relay(extra=["--webhook", rx.url, "--webhook-max-age", "2s"])
    svc = t.http_service(big_size=1024)
    t.agent(relay, http=svc.port)
    wait_for(lambda: metrics(relay).get('tether_webhook_events_total{result="expired"}') == 1,
             30, "the event given up after --webhook-max-age")
    m = metrics(relay)
    eq(m.get("tether_webhook_queue"), 0, "queue after giving up")
    check(m.get('tether_webhook_requests_total{result="failed"}', 0) >= 2, "retries: %r" % m)
    eq(m.get('tether_webhook_events_total{result="delivered"}'), 0, "delivered")
    check("webhook event given up" in relay.proc.stderr_text(), "the log line")


def test_slow_receiver_holds_nothing_and_the_cap_drops(t):
    rx = Receiver(t, hold=True)
    relay = t.relay(extra=["--webhook", rx.url, "--webhook-queue", "3"])
    svc = t.http_service(big_size=1024)
    agents = [t.agent(relay, name="slow-%d" % i, http=svc.port) for i in range(5)]
    wait_for(lambda: rx.arrived >= 1, 30, "the first request to reach the receiver")
    # the receiver holds it: the relay serves its devices all the same
    for a in agents:
        st, _, body = relay.request("GET", "/whoami", label=a.label, timeout=10)
        eq(st, 200, "status through the relay while the receiver holds a request")
    m = metrics(relay)
    eq(m.get("tether_webhook_queue"), 3, "queued events at the cap")
    eq(m.get("tether_webhook_queue_max"), 3, "the cap")
    eq(m.get('tether_webhook_events_total{result="dropped"}'), 2, "dropped events")
    rx.release()
    wait_events(rx, lambda n: len(n) >= 3, 30, "the queued events")
    eq(rx.names()[:3], ["online"] * 3, "events delivered")
    eq([e["device"] for e in rx.events()[:3]], ["slow-0", "slow-1", "slow-2"],
       "delivered in order")
    wait_for(lambda: metrics(relay).get("tether_webhook_queue") == 0, 30, "an empty queue")
    verify(rx, secret=None)


def test_two_urls_both_get_every_event(t):
    rx1, rx2 = Receiver(t), Receiver(t)
    relay = t.relay(extra=["--webhook", rx1.url, "--webhook", rx2.url,
                           "--webhook-secret", SECRET])
    svc = t.http_service(big_size=1024)
    a = t.agent(relay, http=svc.port)
    a.stop()
    for rx in (rx1, rx2):
        wait_events(rx, lambda n: n == ["online", "offline"], 30, "online and offline")
        verify(rx)
    eq([g[2] for g in rx1.got], [g[2] for g in rx2.got], "the same bodies at both URLs")


def test_https_receiver_is_verified(t):
    from test_tls import Pki
    pki = Pki(t)
    crt, key, _ = pki.server()
    rx = Receiver(t, tls=(crt, key))
    # the relay trusts the test's CA (as the system's store, through SSL_CERT_FILE)
    os.environ["SSL_CERT_FILE"] = pki.ca
    try:
        relay = Relay(t, extra=["--webhook", rx.url, "--webhook-secret", SECRET])
    finally:
        del os.environ["SSL_CERT_FILE"]
    # and another that does not: its attempts fail verification, nothing is sent
    other = Relay(t, extra=["--webhook", rx.url, "--webhook-secret", SECRET])
    svc = t.http_service(big_size=1024)
    a = t.agent(relay, http=svc.port)
    wait_events(rx, lambda n: n == ["online"], 30, "the online event over https")
    verify(rx)
    eq(rx.events()[0]["device"], a.name, "device")
    t.agent(other, http=svc.port)
    wait_for(lambda: metrics(other).get('tether_webhook_requests_total{result="failed"}', 0) >= 1,
             30, "a failed attempt against an untrusted certificate")
    eq(len(rx.got), 1, "events from the relay that does not trust the receiver")
    check("certificate verify failed" in other.proc.stderr_text(),
          "the reason in the log: %s" % other.proc.stderr_tail(5))


def _node(t, redis, name, tcp_bind, ports, rx):
    port = free_port()
    return Relay(t, port=port, tcp_ports=ports, grace="3s",
                 extra=["--redis", "redis://127.0.0.1:%d" % redis.port, "--node-id", name,
                        "--advertise", "ws://127.0.0.1:%d" % port, "--tcp-bind", tcp_bind,
                        "--webhook", rx.url, "--webhook-secret", SECRET])


def test_cluster_sends_each_event_once(t):
    rx = Receiver(t)
    redis = RedisServer(t)
    low, high = free_port_range(8)
    na = _node(t, redis, "node-a", "127.0.0.1", (low, high), rx)
    nb = _node(t, redis, "node-b", "127.0.0.1", (low, high), rx)
    svc = t.http_service(big_size=1024)
    a = t.agent(na, name="cl-dev", http=svc.port, server=na.url)
    wait_events(rx, lambda n: n == ["online"], 30, "online")
    eq(rx.events()[0]["node"], "node-a", "node of the online event")
    # the device comes back on node-b while its session on node-a hangs
    a.proc.send_signal(signal.SIGSTOP)
    try:
        b = t.agent(na, name="cl-dev", http=svc.port, server=nb.url)
        wait_events(rx, lambda n: n[:3] == ["online", "takeover", "online"], 30,
                    "takeover and online from node-b")
        time.sleep(3)  # node-a's beat closes its session meanwhile: no event from there
    finally:
        a.proc.send_signal(signal.SIGKILL)
        a.proc.stopped = True
    b.stop()
    wait_events(rx, lambda n: "expired" in n, 30, "the expired event")
    time.sleep(3)  # both nodes run the expiry at every beat: still one
    evs = verify(rx)
    eq([(e["event"], e["node"]) for e in evs],
       [("online", "node-a"), ("takeover", "node-b"), ("online", "node-b"),
        ("offline", "node-b"), ("expired", evs[-1]["node"])], "events of the cluster")
    check(evs[-1]["node"] in ("node-a", "node-b"), "node of the expiry %r" % evs[-1])
    c = t.agent(na, name="cl-dev", http=svc.port, server=na.url)
    wait_events(rx, lambda n: n[5:6] == ["online"], 30, "online again")
    eq(delete(nb, "cl-dev")[0], 200, "DELETE on the other node")
    wait_events(rx, lambda n: "deleted" in n, 30, "the deleted event")
    time.sleep(3)  # node-a closes the session at its next beat: no second event
    names = rx.names()
    eq(names.count("deleted"), 1, "deleted events in %r" % names)
    eq(rx.events()[names.index("deleted")]["node"], "node-b", "node of the deleted event")
    eq(names.count("expired"), 1, "expired events in %r" % names)
    del c


def _start_fails(args, env=None):
    p = subprocess.run([TETHERD] + args, capture_output=True, text=True, timeout=20,
                       env=dict(os.environ, **(env or {})))
    return p.returncode, p.stderr


def test_webhook_flag_errors(t):
    base = ["--data-dir", t.mkdtemp("data"), "--listen", "127.0.0.1:%d" % free_port(),
            "--admin-listen", "127.0.0.1:%d" % free_port()]
    for bad in (["--webhook", "ftp://127.0.0.1/x"], ["--webhook", "http://u:p@127.0.0.1/"],
                ["--webhook", "127.0.0.1:80"], ["--webhook", "http://127.0.0.1:0/"],
                ["--webhook-queue", "0"], ["--webhook-max-age", "soon"],
                ["--webhook", "http://127.0.0.1:9/", "--webhook-secret", SECRET,
                 "--webhook-secret-file", _secret_file(t)]):
        code, err = _start_fails(base + bad)
        eq(code, 2, "exit status for %r (stderr %r)" % (bad, err))
        eq(len(err.strip().splitlines()), 1, "one line for %r: %r" % (bad, err))
        check(err.startswith("tetherd: --webhook"), "message for %r: %r" % (bad, err))
        check(SECRET not in err, "the secret in the message %r" % err)
    code, err = _start_fails(base + ["--webhook", "http://127.0.0.1:9/",
                                     "--webhook-secret-file", t.path("missing")])
    eq(code, 1, "exit status for an unreadable secret file (stderr %r)" % err)
    out = subprocess.run([TETHERD, "--help"], capture_output=True, text=True, timeout=20).stdout
    for flag in ("--webhook URL", "--webhook-secret", "--webhook-secret-file", "--webhook-queue",
                 "--webhook-max-age"):
        check(flag in out, "%s in --help" % flag)
