"""test_delete_async.py - in a cluster the operator's delete waits for Redis' reply, never on the
loop: two tetherd nodes sharing a real redis-server, which is stopped (SIGSTOP, by the PID this
test started) for a few seconds.

- While it is stopped, DELETE /api/devices/NAME of a device node B holds and the dashboard's
  delete form (POST /device/delete) for a device node A holds, both sent to node A, are held,
  and node A keeps answering requests to its own third device meanwhile; after SIGCONT both
  complete from the reply of one script: 200 with {"deleted": NAME} and the dashboard's
  "deleted" page, the records, device keys and labels gone from Redis, node A's device closed
  at once and node B's at its next beat (each agent reports the deletion). The code as it was
  made three synchronous calls on the loop instead (each stalling it up to 300 ms) and answered
  503 during the stop.
- The cap on deletes waiting (TT_ADMIN_DELETES_MAX, 16): beyond it 503 with Retry-After at once;
  an admin client that goes mid-delete leaves a delete that still completes (the record gone
  after SIGCONT), counted as cancelled; the node stays ASan-clean (checked when the test's
  processes stop)."""

import http.client
import json
import signal
import socket
import time

from lib import check, eq, resp_command, wait_for
from test_admin_async import (_Held, _held_through_redis_stop, _metric, _raw_answer,
                              _two_devices)
from test_cluster import _get, _holds

DELETES_MAX = 16


def _redis(redis, *args):
    s = socket.create_connection(("127.0.0.1", redis.port), timeout=10)
    with s:
        return resp_command(s, *args)


def _raw_delete(node, name):
    """A DELETE to node's admin listener on a socket of our own, left open (not read)."""
    s = socket.create_connection(("127.0.0.1", node.admin_port), timeout=30)
    s.sendall(("DELETE /api/devices/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close"
               "\r\n\r\n" % (name, node.admin_port)).encode())
    return s


class _HeldDelete(_Held):
    """DELETE /api/devices/NAME on its own thread."""

    def _run(self):
        c = http.client.HTTPConnection("127.0.0.1", self.node.admin_port, timeout=30)
        try:
            c.request("DELETE", self.path)
            r = c.getresponse()
            self.status, self.headers, self.body = r.status, dict(r.getheaders()), r.read()
        except OSError as e:
            self.error = repr(e)
        finally:
            self.done_at = time.monotonic()
            c.close()


def _deletes(node, result):
    return _metric(node, 'tether_admin_deletes_total{result="%s"}' % result)


def test_delete_waits_for_redis_not_the_loop(t):
    redis, a, b, dev_a, dev_b = _two_devices(t)
    svc_c = t.http_service(big_size=1024, ident="also-on-a")
    dev_c = t.agent(a, http=svc_c.port)
    check(_holds(a, dev_c.name), "device c not on node a")
    label_b, label_c = dev_b.label, dev_c.label
    for d in (dev_b, dev_c):
        eq(_redis(redis, "EXISTS", "tether:dev:" + d.name), 1, "%s's record" % d.name)
        check(_redis(redis, "HGET", "tether:keys", d.name), "%s's device key" % d.name)

    def send():
        return [_HeldDelete(a, "/api/devices/" + dev_b.name),
                _Held(a, "/device/delete", form="name=" + dev_c.name)]

    def during():  # the device node a holds is still served while its delete waits
        eq(_get(a, label_c)[::2], (200, b"also-on-a"), "device c while its delete waits")

    held = _held_through_redis_stop(redis, a, dev_a, send, "deletes", lambda h: 200, 4.5,
                                    during)
    api, form = held
    eq(json.loads(api.body), {"deleted": dev_b.name}, "DELETE /api/devices/NAME's answer")
    check(b"deleted" in form.body and dev_c.name.encode() in form.body,
          "the dashboard's answer to its delete form: %r" % form.body[:300])
    # both devices are told, node a's at once, node b's at its next beat (its kick list)
    for d in (dev_b, dev_c):
        wait_for(lambda d=d: "device deleted on the relay" in d.proc.stderr_text(), 10,
                 "%s's agent to report the deletion" % d.name)
    # the labels were freed (the agents come back as new registrations with new labels)
    for label in (label_b, label_c):
        eq(_redis(redis, "HGET", "tether:labels", label), None, "deleted label %s" % label)
        for node in (a, b):
            eq(_get(node, label)[0], 404, "the deleted label %s via %s" % (label, node.name))
    eq(_deletes(a, "done"), 2, "deletes answered by Redis")
    eq(_metric(a, "tether_admin_deletes"), 0, "deletes waiting after the answers")
    eq(_get(a, dev_a.label)[::2], (200, b"held-by-a"), "node a's own device after the deletes")
    check(a.proc.alive() and b.proc.alive(), "a node died")


def test_delete_cap_and_client_gone(t):
    redis, a, b, dev_a, dev_b = _two_devices(t)
    eq(_metric(a, "tether_admin_deletes_max"), DELETES_MAX, "the cap on deletes waiting")
    redis.proc.send_signal(signal.SIGSTOP)
    socks = []
    try:
        # a client that goes at once: its delete (of node b's device) still completes
        gone = _raw_delete(a, dev_b.name)
        time.sleep(0.2)
        gone.close()
        socks = [_raw_delete(a, "nosuchdevice%d" % i) for i in range(DELETES_MAX - 1)]
        wait_for(lambda: _metric(a, "tether_admin_deletes") == DELETES_MAX, 5,
                 "the deletes to wait")
        c = http.client.HTTPConnection("127.0.0.1", a.admin_port, timeout=5)
        try:
            c.request("DELETE", "/api/devices/" + dev_a.name)
            r = c.getresponse()
            full = (r.status, r.getheader("Retry-After"), json.loads(r.read()))
        finally:
            c.close()
        eq(full[:2], (503, "2"), "a delete beyond the cap (%r)" % (full[2],))
        check("retry later" in full[2]["error"], "the answer at the cap: %r" % (full[2],))
        eq(_deletes(a, "cancelled"), 1, "the delete whose client went")
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    try:
        for s in socks:
            st, _, body = _raw_answer(s)
            eq((st, json.loads(body)), (404, {"error": "no such device"}),
               "a held delete of an unknown name")
        socks = []
    finally:
        for s in socks:
            s.close()
    wait_for(lambda: _redis(redis, "EXISTS", "tether:dev:" + dev_b.name) == 0, 10,
             "the record of the delete whose client went to go")
    wait_for(lambda: "device deleted on the relay" in dev_b.proc.stderr_text(), 10,
             "node b's device to be told")
    eq(_metric(a, "tether_admin_deletes"), 0, "deletes waiting after the answers")
    eq(_deletes(a, "refused"), 1, "deletes refused at the cap")
    eq(_deletes(a, "done"), DELETES_MAX, "deletes answered by Redis")
    # node a's own device was not deleted (the delete beyond the cap did nothing)
    eq(_get(a, dev_a.label)[::2], (200, b"held-by-a"), "node a's device after the refused delete")
    check(a.proc.alive() and b.proc.alive(), "a node died")
