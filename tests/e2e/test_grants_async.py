"""test_grants_async.py - a node does not wait on its loop for the read of the cluster's grants
that an unknown grant token makes, nor for the re-read of a browser session it knows: two tetherd nodes (--access private) sharing a real
redis-server, which is stopped (SIGSTOP, by the PID this test started) for about two seconds.
Meanwhile a device's traffic through node A with a grant token A knows keeps being answered,
including while a request with a token A has never seen is held for the read of Redis (refused
401 once the bounded wait is over, as with Redis unreachable: fail closed, counted in /metrics),
and a grant is created on node A (its admin connection held and answered once Redis answers:
201, or the documented 503 when it does not in time). After SIGCONT a grant made on node B a moment before is accepted at once by node A (its
token held for the read, then let through)."""

import base64
import os
import re
import signal
import threading
import time

from lib import check, eq, wait_for
from test_private_grants import _nodes, call, create, metric
from test_private_signin import _cookie_of, _signin


def _get(node, label, cookie, timeout=15):
    return node.request("GET", "/whoami", label=label, timeout=timeout,
                        headers={"Cookie": cookie})


def _signin_token(node, label, user, token):
    """Signs in with a grant token as the secret: (status, the session cookie or None)."""
    st, hdrs, _ = _signin(node, label, user, token)
    return st, (_cookie_of(hdrs)[0] if st == 303 else None)


def _token_metric(node, name, label=None, key="reason"):
    st, _, data = call(node.admin_port, "GET", "/metrics")
    eq(st, 200, "GET /metrics")
    key = name if label is None else '%s{%s="%s"}' % (name, key, label)
    m = re.search(r"^%s (\d+)" % re.escape(key), data.decode(), re.M)
    check(m, "metric %s missing on %s" % (key, node.name))
    return int(m.group(1))


def test_grant_token_read_does_not_wait_on_the_loop(t):
    redis, (a, b) = _nodes(t)
    svc = t.http_service(big_size=1024, ident="held-by-a")
    dev = t.agent(a, http=svc.port)
    g, _, _ = create(b.admin_port, user="tech", grants=("*/*",), ttl="15m")
    # a token node A may not know yet: held for the read of the cluster's grants, then let in
    st, cookie = _signin_token(a, dev.label, "tech", g["token"])
    eq(st, 303, "sign-in on node A with a grant made on node B a moment before")
    eq(_get(a, dev.label, cookie)[::2], (200, b"held-by-a"), "the device with the grant's session")
    wait_for(lambda: metric(a.admin_port, "tether_access_grants") == 1, 10, "A holds the grant")
    waits = _token_metric(a, "tether_access_grant_token_waits_total")
    timeouts = _token_metric(a, "tether_access_grant_token_refused_total", "timeout")
    eq(_token_metric(a, "tether_access_grant_token_waiting"), 0, "no token waiting")
    rechecks = _token_metric(a, "tether_access_session_rechecks_total", "sent", key="result")

    unknown = "ttg_" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    served, slow, errors = [], [], []
    stop = threading.Event()

    def held_traffic():
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                st, _, body = _get(a, dev.label, cookie, timeout=10)
                if (st, body) != (200, b"held-by-a"):
                    errors.append((st, body[:100]))
            except OSError as e:
                errors.append(repr(e))
            d = time.monotonic() - t0
            served.append(d)
            if d > 0.25:
                slow.append(d)
            time.sleep(0.05)

    redis.proc.send_signal(signal.SIGSTOP)
    stopped = time.monotonic()
    th = threading.Thread(target=held_traffic, daemon=True)
    try:
        th.start()
        # a token node A never saw: held (unread), bounded, then refused as with Redis away
        t0 = time.monotonic()
        st, _ = _signin_token(a, dev.label, "tech", unknown)
        held = time.monotonic() - t0
        eq(st, 401, "an unknown token while Redis is stopped")
        check(held < 4, "the unknown token was held %.1f s" % held)
        n_during_wait = len(served)
        # a grant created on node A while Redis is stopped: the admin connection is held and
        # answered once Redis answers (201), or 503 when it does not in time; node A's loop
        # goes on meanwhile
        posted = []
        pt = threading.Thread(target=lambda: posted.append(call(
            a.admin_port, "POST", "/api/grants", {"user": "late", "grants": ["*/*"],
                                                  "ttl": "5m"})), daemon=True)
        pt.start()
        n_before_post = len(served)
        time.sleep(max(0.5, 2.0 - (time.monotonic() - stopped)))
        n_during_post = len(served) - n_before_post
        still = time.monotonic() - stopped
        check(still < 6, "the checks took %.1f s: Redis resumed too late to tell" % still)
    finally:
        redis.proc.send_signal(signal.SIGCONT)
        stop.set()
        th.join(15)
    pt.join(15)
    check(posted, "POST /api/grants made while Redis was stopped got no answer")
    st, _, data = posted[0]
    check(st in (201, 503), "POST /api/grants while Redis was stopped: %d %r" % (st, data[:200]))
    if st == 503:
        check(b"ttg_" not in data, "no token in a refused POST")
    check(n_during_post >= 3,
          "only %d requests answered while the POST was held" % n_during_post)
    eq(errors, [], "the held device's requests with a known token during the stop")
    check(n_during_wait >= 3,
          "only %d requests answered while the unknown token was held" % n_during_wait)
    check(_token_metric(a, "tether_access_grant_token_waits_total") > waits,
          "the held token was not counted")
    check(_token_metric(a, "tether_access_grant_token_refused_total", "timeout") > timeouts,
          "the wait that ran out was not counted")
    # the session's re-reads went on without waiting (sent on the asynchronous connection)
    check(_token_metric(a, "tether_access_session_rechecks_total", "sent", key="result") >
          rechecks, "no re-read of the session was sent during the stop")

    # Redis answers again: a grant made on B is accepted on A at once, the unknown one still not
    g2, _, _ = create(b.admin_port, user="after", grants=("*/*",), ttl="15m")
    st, cookie2 = _signin_token(a, dev.label, "after", g2["token"])
    eq(st, 303, "a new grant on node A")
    eq(_get(a, dev.label, cookie2)[::2], (200, b"held-by-a"), "the device with the new grant")
    eq(_signin_token(a, dev.label, "tech", unknown)[0], 401, "the unknown token after the stop")
    wait_for(lambda: _token_metric(a, "tether_access_grant_token_waiting") == 0, 10,
             "tokens still waiting on node A")
    check(a.proc.alive() and b.proc.alive(), "a node died")
