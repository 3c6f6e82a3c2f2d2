"""test_http.py - HTTP through the device URL http://LABEL.localhost:PORT/: downloads, uploads
(Content-Length and chunked), concurrency, keep-alive, WebSocket upgrade, server-sent events,
the X-Forwarded-* headers, and the 502 page when the device's web server is down."""

import hashlib
import http.client
import json
import os
import socket
import subprocess
import threading

from lib import WsClient, check, device, eq, free_port, TestFailure

MiB = 1024 * 1024


def test_download_several_mib_with_curl(t):
    relay, svc, agent = device(t, big_size=6 * MiB)
    url = "http://%s.localhost:%d/big" % (agent.label, relay.port)
    out = t.path("big.out")
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "--max-time", "60", "-o", out,
                        "-w", "%{http_code}", url], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=70)
    eq(r.returncode, 0, "curl exit status (stderr: %s)" % r.stderr.strip())
    eq(r.stdout, "200", "HTTP status")
    with open(out, "rb") as f:
        data = f.read()
    eq(len(data), len(svc.big), "downloaded length")
    eq(hashlib.sha256(data).hexdigest(), svc.big_sha, "SHA-256 of the download")


def test_device_url_from_ready_line_works_with_curl(t):
    relay, svc, agent = device(t, big_size=1024)
    url = agent.services["http"]["url"] + "/"
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "--max-time", "30", url],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=40)
    eq(r.returncode, 0, "curl %s exit status (stderr: %s)" % (url, r.stderr.strip()))
    check(b"Hello from a Tether device" in r.stdout, "unexpected page: %r" % r.stdout[:200])


def _upload(relay, label, body, chunked):
    c = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=60)
    try:
        headers = {"Host": relay.host(label), "Content-Type": "application/octet-stream"}
        if chunked:
            def pieces():
                off, step = 0, 1000
                while off < len(body):
                    yield body[off:off + step]
                    off += step
                    step = step * 3 % 300007 + 1  # uneven chunk sizes, up to ~300 KB
            c.request("POST", "/upload", body=pieces(), headers=headers, encode_chunked=True)
        else:
            c.request("POST", "/upload", body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        eq(r.status, 200, "upload status (body %r)" % data[:200])
        return json.loads(data)
    finally:
        c.close()


def test_upload_20mib_content_length(t):
    relay, svc, agent = device(t, big_size=1024)
    body = os.urandom(20 * MiB)
    got = _upload(relay, agent.label, body, chunked=False)
    eq(got["length"], len(body), "bytes the device received")
    eq(got["sha256"], hashlib.sha256(body).hexdigest(), "SHA-256 the device received")
    eq(got["chunked"], False, "the device saw a chunked body")


def test_upload_20mib_chunked(t):
    relay, svc, agent = device(t, big_size=1024)
    body = os.urandom(20 * MiB)
    got = _upload(relay, agent.label, body, chunked=True)
    eq(got["length"], len(body), "bytes the device received")
    eq(got["sha256"], hashlib.sha256(body).hexdigest(), "SHA-256 the device received")


def test_64_concurrent_downloads(t):
    relay, svc, agent = device(t, big_size=1 * MiB)
    n = 64
    results = [None] * n
    barrier = threading.Barrier(n)

    def fetch(i):
        try:
            barrier.wait(30)
            c = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=60)
            c.request("GET", "/big", headers={"Host": relay.host(agent.label)})
            r = c.getresponse()
            data = r.read()
            c.close()
            results[i] = (r.status, len(data), hashlib.sha256(data).hexdigest())
        except Exception as e:  # reported below
            results[i] = ("error", repr(e))

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(80)
    bad = [(i, r) for i, r in enumerate(results) if r != (200, len(svc.big), svc.big_sha)]
    check(not bad, "%d of %d downloads failed or were corrupt, e.g. %r" % (len(bad), n, bad[:3]))


def test_300_requests_on_one_keepalive_connection(t):
    relay, svc, agent = device(t, big_size=1024)
    c = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=30)
    local = None
    for i in range(300):
        c.request("GET", "/small?i=%d" % i, headers={"Host": relay.host(agent.label)})
        r = c.getresponse()
        body = r.read()
        eq(r.status, 200, "status of request %d" % i)
        eq(body, b"small %d\n" % i, "body of request %d" % i)
        check(not r.will_close, "the relay closed the connection after request %d "
              "(Connection: %s)" % (i, r.getheader("Connection")))
        name = c.sock.getsockname()
        if local is None:
            local = name
        eq(name, local, "client socket after request %d (a new connection was opened)" % i)
    c.close()


def test_websocket_echo_through_device_url(t):
    relay, svc, agent = device(t, big_size=1024)
    ws = WsClient(relay.port, relay.host(agent.label), "/ws")
    try:
        eq(ws.status, 101, "handshake status (%s)" % ws.status_line)
        eq(ws.headers.get("sec-websocket-accept"), ws.expected_accept, "Sec-WebSocket-Accept")
        ws.send(0x1, "hello through tether ✓".encode())
        eq(ws.recv(), (0x1, "hello through tether ✓".encode()), "text echo")
        blob = os.urandom(300 * 1024)
        ws.send(0x2, blob)
        op, got = ws.recv()
        eq(op, 0x2, "binary echo opcode")
        eq(hashlib.sha256(got).hexdigest(), hashlib.sha256(blob).hexdigest(), "binary echo")
        for i in range(50):
            msg = b"message %d" % i
            ws.send(0x2, msg)
            eq(ws.recv(), (0x2, msg), "echo %d" % i)
        ws.send(0x9, b"ping!")
        eq(ws.recv(), (0xA, b"ping!"), "pong")
        ws.send(0x8, b"\x03\xe8")
        eq(ws.recv()[0], 0x8, "close frame echoed")
    finally:
        ws.close()


def test_server_sent_events_are_not_buffered(t):
    relay, svc, agent = device(t, big_size=1024)
    n = 5
    c = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=30)
    c.request("GET", "/sse?n=%d" % n, headers={"Host": relay.host(agent.label),
                                               "Accept": "text/event-stream"})
    r = c.getresponse()
    eq(r.status, 200, "status")
    check((r.getheader("Content-Type") or "").startswith("text/event-stream"),
          "Content-Type %r" % r.getheader("Content-Type"))
    buf = b""
    for k in range(n):
        # The service sends event k only after event k-1 reached us, so a relay that holds the
        # stream back until it ends (or until some buffer fills) never delivers event 0.
        while b"\n\n" not in buf:
            try:
                more = r.read1(65536)
            except socket.timeout:
                raise TestFailure("event %d did not arrive within 30 s while the stream stayed "
                                  "open: the relay buffers server-sent events" % k)
            check(more, "the stream ended before event %d (got %r)" % (k, buf))
            buf += more
        ev, _, buf = buf.partition(b"\n\n")
        check(b"data: event %d" % k in ev, "event %d is %r" % (k, ev))
        svc.sse_ack(k)
    rest = r.read()
    eq(buf + rest, b"", "bytes after the last event")
    c.close()


def test_forwarded_headers_and_host_kept(t):
    relay, svc, agent = device(t, big_size=1024)
    host = relay.host(agent.label)
    status, hdrs, body = relay.request("GET", "/headers?x=1", host=host,
                                       headers={"X-Custom": "kept as is"})
    eq(status, 200, "status")
    got = json.loads(body)
    h = {}
    for k, v in got["headers"]:
        h.setdefault(k.lower(), []).append(v)
    eq(got["path"], "/headers?x=1", "request path at the device")
    eq(h.get("host"), [host], "Host header at the device")
    eq(h.get("x-forwarded-for"), ["127.0.0.1"], "X-Forwarded-For")
    eq(h.get("x-forwarded-proto"), ["http"], "X-Forwarded-Proto")
    eq(h.get("x-forwarded-host"), [host], "X-Forwarded-Host")
    eq(h.get("x-custom"), ["kept as is"], "a client header")


def test_502_when_device_web_server_is_down(t):
    relay = t.relay()
    dead = free_port()  # nothing listens here
    agent = t.agent(relay, http=dead)
    status, hdrs, body = relay.request("GET", "/", label=agent.label)
    eq(status, 502, "status when the device's web server refuses")
    check(hdrs.get("content-type", "").startswith("text/html"),
          "502 Content-Type %r" % hdrs.get("content-type"))
    check(b"<" in body, "502 body is not an HTML page: %r" % body[:200])
    check(agent.proc.alive(), "the agent exited")


def test_two_devices_get_distinct_labels_and_their_own_traffic(t):
    relay = t.relay()
    a_svc = t.http_service(big_size=1024, ident="device-a")
    b_svc = t.http_service(big_size=1024, ident="device-b")
    a = t.agent(relay, name="device-a", http=a_svc.port)
    b = t.agent(relay, name="device-b", http=b_svc.port)
    check(a.label != b.label, "both devices got label %r" % a.label)
    for ag, want in ((a, b"device-a"), (b, b"device-b"), (a, b"device-a")):
        status, _, body = relay.request("GET", "/whoami", label=ag.label)
        eq((status, body), (200, want), "answer for %s" % ag.label)


def test_upload_with_curl_expect_100_continue(t):
    relay, svc, agent = device(t, big_size=1024)
    body = os.urandom(8 * MiB)
    src = t.path("upload.bin")
    with open(src, "wb") as f:
        f.write(body)
    url = "http://%s.localhost:%d/upload" % (agent.label, relay.port)
    # curl sends "Expect: 100-continue" for a body this large and waits for the interim
    # "100 Continue" that the device's server sends back through the relay.
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "--max-time", "60",
                        "-H", "Expect: 100-continue", "--data-binary", "@" + src, url],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=70)
    eq(r.returncode, 0, "curl exit status (stderr: %s)" % r.stderr.decode(errors="replace"))
    got = json.loads(r.stdout)
    eq(got["length"], len(body), "bytes the device received")
    eq(got["sha256"], hashlib.sha256(body).hexdigest(), "SHA-256 the device received")


def test_several_http_services_on_one_device(t):
    relay = t.relay()
    main = t.http_service(big_size=1024, ident="main-site")
    api = t.http_service(big_size=1024, ident="api-site")
    agent = t.agent(relay, http=[main.port, "api=127.0.0.1:%d" % api.port])
    eq(sorted(agent.services), ["api", "http"], "services in the ready lines")
    eq(agent.services["http"]["target"], "127.0.0.1:%d" % main.port, "main service target")
    eq(agent.services["api"]["label"], agent.label, "the api URL is under the device's label")
    status, _, body = relay.request("GET", "/whoami", label=agent.label)
    eq((status, body), (200, b"main-site"), "answer on LABEL.localhost")
    api_host = agent.services["api"]["url"][len("http://"):]
    status, _, body = relay.request("GET", "/whoami", host=api_host)
    eq((status, body), (200, b"api-site"), "answer on %s" % api_host)
