"""test_tls.py - TLS end to end: tetherd --tls-listen with a wildcard certificate from a throw-away
CA made with the openssl command at test time; devices over wss:// (verified with --ca-file, failing
verification without it, --insecure with its warning); device pages over https:// through the TLS
listener (curl --cacert); a certificate replaced on SIGHUP while a device link, an HTTPS
keep-alive connection and a raw TCP stream stay up; TLS 1.1 refused; bad certificate files.

The certificate is for *.tls.localhost (the relay runs with --domain tls.localhost): OpenSSL,
curl and browsers refuse a wildcard right under a top-level name such as *.localhost, so device
URLs need one more label. It also names localhost and 127.0.0.1, which the agent dials."""

import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import http.client

from lib import (TETHER, TETHERD, check, eq, free_port, recv_all, run_cli, tcp_connect, wait_for,
                 ws_frame, ws_read_frame, TestFailure)

DOMAIN = "tls.localhost"


# ---------------------------------------------------------------- certificates

def _openssl(*args):
    r = subprocess.run(["openssl"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    check(r.returncode == 0, "openssl %s failed: %s" % (" ".join(args[:2]), r.stderr[-500:]))


class Pki:
    """A throw-away CA and server certificates it signs, in the test's temp dir."""

    def __init__(self, t):
        self.dir = t.mkdtemp("pki")
        self.ca_key = self.path("ca.key")
        self.ca = self.path("ca.crt")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", self.ca_key, "-out", self.ca, "-days", "2",
                 "-subj", "/CN=Tether e2e CA", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.n = 0

    def path(self, name):
        return os.path.join(self.dir, name)

    def server(self, org="first", serial=None):
        """A server certificate for *.DOMAIN, DOMAIN, *.localhost, localhost and 127.0.0.1
        with subject O=org; returns (cert path, key path, serial as an int)."""
        self.n += 1
        key, csr, crt, ext = (self.path("server%d.%s" % (self.n, e))
                              for e in ("key", "csr", "crt", "ext"))
        serial = serial or int.from_bytes(os.urandom(8), "big") | 1
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:*.%s,DNS:%s,DNS:*.localhost,DNS:localhost,IP:127.0.0.1\n"
                    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\n" % (DOMAIN, DOMAIN))
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", key, "-out", csr, "-subj", "/CN=*.%s/O=%s" % (DOMAIN, org))
        _openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                 "-set_serial", str(serial), "-days", "2", "-out", crt, "-extfile", ext)
        return crt, key, serial


def _install(src_crt, src_key, crt, key):
    """Copies a certificate and key over the files the relay reads (in place, as an operator
    replacing them before SIGHUP would)."""
    for s, d in ((src_crt, crt), (src_key, key)):
        with open(s, "rb") as f:
            data = f.read()
        with open(d, "wb") as f:
            f.write(data)


# ---------------------------------------------------------------- the world

def _tls_relay(t, pki, org="first"):
    """A relay with a plain listener and a TLS one whose certificate files live at fixed
    paths (so that a test can replace them); device URLs https://LABEL.DOMAIN:TLSPORT."""
    crt, key, serial = pki.server(org)
    live_crt, live_key = pki.path("live.crt"), pki.path("live.key")
    _install(crt, key, live_crt, live_key)
    tls_port = free_port()
    relay = t.relay(extra=["--domain", DOMAIN, "--tls-listen", "127.0.0.1:%d" % tls_port,
                           "--tls-cert", live_crt, "--tls-key", live_key,
                           "--public-url", "https://%s:%d" % (DOMAIN, tls_port)])
    wait_for(lambda: _port_open(tls_port), 30, "the TLS listener on %d" % tls_port)
    relay.tls_port = tls_port
    relay.live_crt, relay.live_key, relay.serial = live_crt, live_key, serial
    relay.wss = "wss://localhost:%d" % tls_port
    return relay


def _port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _client_ctx(pki):
    ctx = ssl.create_default_context(cafile=pki.ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _peer_cert(port, pki, name="localhost"):
    """The certificate the TLS listener presents to a new connection (verified against the
    test CA): {'serial': int, 'org': str}."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with _client_ctx(pki).wrap_socket(s, server_hostname=name) as ts:
            c = ts.getpeercert()
    org = [v for rdn in c["subject"] for k, v in rdn if k == "organizationName"]
    return {"serial": int(c["serialNumber"], 16), "org": org[0] if org else ""}


class _LoopbackHTTPS(http.client.HTTPSConnection):
    """HTTPS to name:port that connects to 127.0.0.1 and verifies the certificate for name."""

    def __init__(self, name, port, ctx):
        super().__init__(name, port, timeout=30, context=ctx)

    def connect(self):
        raw = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def _https(relay, pki, label, path, conn=None):
    """GET path on https://LABEL.DOMAIN:TLSPORT through the TLS listener (a new connection, or
    conn kept alive). Returns (status, headers, body, conn)."""
    host = "%s.%s" % (label, DOMAIN)
    if conn is None:
        conn = _LoopbackHTTPS(host, relay.tls_port, _client_ctx(pki))
    conn.request("GET", path, headers={"Host": "%s:%d" % (host, relay.tls_port)})
    r = conn.getresponse()
    body = r.read()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body, conn


def _curl(relay, pki, label, path, out=None):
    """curl --cacert CA https://LABEL.DOMAIN:PORT/path (resolved to loopback)."""
    host = "%s.%s" % (label, DOMAIN)
    argv = ["curl", "-sS", "--noproxy", "*", "--max-time", "60", "--cacert", pki.ca,
            "--resolve", "%s:%d:127.0.0.1" % (host, relay.tls_port),
            "-w", "\n%{http_code} %{ssl_verify_result}",
            "https://%s:%d%s" % (host, relay.tls_port, path)]
    if out:
        argv[1:1] = ["-o", out]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=90)
    check(r.returncode == 0, "curl %s failed (%d): %s" % (path, r.returncode, r.stderr[-400:]))
    body, _, tail = r.stdout.rpartition(b"\n")
    code, verify = tail.decode().split()
    return int(code), int(verify), body


# ---------------------------------------------------------------- tests

def test_device_over_wss_with_ca_file_serves_its_https_url(t):
    pki = Pki(t)
    relay = _tls_relay(t, pki)
    svc = t.http_service(big_size=3 * 1024 * 1024)
    agent = t.agent(relay, http=svc.port, server=relay.wss, extra=["--ca-file", pki.ca])
    url = agent.services["http"]["url"]
    eq(url, "https://%s.%s:%d" % (agent.label, DOMAIN, relay.tls_port), "the device URL")
    # The page through the TLS listener, verified by curl against the test CA.
    code, verify, body = _curl(relay, pki, agent.label, "/headers")
    eq((code, verify), (200, 0), "curl status and verify result")
    got = json.loads(body)
    hdrs = {k.lower(): v for k, v in got["headers"]}
    eq(hdrs.get("x-forwarded-proto"), "https", "X-Forwarded-Proto through the TLS listener")
    eq(hdrs.get("host"), "%s.%s:%d" % (agent.label, DOMAIN, relay.tls_port), "Host kept")
    # A download of a few MiB comes through whole.
    out = t.path("big.bin")
    code, _, _ = _curl(relay, pki, agent.label, "/big", out=out)
    eq(code, 200, "status of /big")
    with open(out, "rb") as f:
        eq(hashlib.sha256(f.read()).hexdigest(), svc.big_sha, "sha256 of /big over https")
    # The plain listener serves the same device, saying http.
    status, _, body = relay.request("GET", "/headers", host="%s.%s:%d" % (agent.label, DOMAIN,
                                                                          relay.port))
    eq(status, 200, "status over the plain listener")
    hdrs = {k.lower(): v for k, v in json.loads(body)["headers"]}
    eq(hdrs.get("x-forwarded-proto"), "http", "X-Forwarded-Proto on the plain listener")
    # A browser's WebSocket through https reaches the device's /ws and echoes.
    _wss_echo(relay, pki, agent.label)


def _wss_echo(relay, pki, label):
    host = "%s.%s:%d" % (label, DOMAIN, relay.tls_port)
    raw = socket.create_connection(("127.0.0.1", relay.tls_port), timeout=30)
    s = _client_ctx(pki).wrap_socket(raw, server_hostname="%s.%s" % (label, DOMAIN))
    try:
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        s.sendall(("GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (host, key))
                  .encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = s.recv(4096)
            check(b, "connection closed during the WebSocket handshake over https: %r" % buf)
            buf += b
        head, _, pending = buf.partition(b"\r\n\r\n")
        check(head.startswith(b"HTTP/1.1 101"), "WebSocket upgrade over https: %r" % head[:80])
        state = {"pending": pending}

        def readn(n):
            while len(state["pending"]) < n:
                b = s.recv(65536)
                if not b:
                    raise TestFailure("EOF inside a WebSocket frame over https")
                state["pending"] += b
            out, state["pending"] = state["pending"][:n], state["pending"][n:]
            return out

        msg = os.urandom(100000)
        s.sendall(ws_frame(2, msg))
        fin, op, payload = ws_read_frame(readn)
        while not fin:
            fin, _, more = ws_read_frame(readn)
            payload += more
        eq((op, payload == msg), (2, True), "WebSocket echo over https")
    finally:
        s.close()


def test_wss_without_ca_file_fails_verification_with_a_clear_error(t):
    pki = Pki(t)
    relay = _tls_relay(t, pki)
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port, server=relay.wss, json_mode=True, wait=False)
    errors = []
    start = 0
    for _ in range(2):  # the failure is retried (with back-off)
        i, line = agent.proc.wait_line(lambda l: '"event":"error"' in l.replace(" ", ""), 30,
                                       start, 'a {"event":"error"} line')
        start = i + 1
        errors.append(json.loads(line))
    for ev in errors:
        eq(ev.get("event"), "error", "event kind")
        msg = ev.get("message", "")
        check("certificate verify failed" in msg and
              "unable to get local issuer certificate" in msg and relay.wss in msg,
              "the error does not name the verification failure: %r" % msg)
    check(not any('"ready"' in l for l in agent.proc.lines), "the device registered anyway")


def test_insecure_connects_and_says_so(t):
    pki = Pki(t)
    relay = _tls_relay(t, pki)
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port, server=relay.wss, extra=["--insecure"])
    check(agent.label, "no label over wss:// with --insecure")
    err = agent.proc.stderr_text()
    check(any("WARN" in l and "--insecure" in l and "verification is off" in l
              for l in err.splitlines()),
          "no warning about --insecure on stderr: %r" % err[-600:])
    code, _, body = _curl(relay, pki, agent.label, "/whoami")
    eq(code, 200, "status of /whoami")


def test_sighup_new_certificate_for_new_connections_open_streams_keep_working(t):
    pki = Pki(t)
    relay = _tls_relay(t, pki, org="first")
    svc = t.http_service(big_size=1024)
    echo = t.tcp_echo()
    agent = t.agent(relay, http=svc.port, tcp={"echo": echo.port}, server=relay.wss,
                    extra=["--ca-file", pki.ca])
    before = _peer_cert(relay.tls_port, pki)
    eq(before, {"serial": relay.serial, "org": "first"}, "certificate before the reload")
    # Streams open across the reload: an HTTPS keep-alive connection through the TLS listener
    # and a raw TCP connection through the device (whose link to the relay is wss).
    status, _, _, conn = _https(relay, pki, agent.label, "/small?i=1")
    eq(status, 200, "first request on the keep-alive https connection")
    tcp = tcp_connect(agent.tcp_port("echo"))
    tcp.sendall(b"before reload\n")
    eq(tcp.recv(100), b"before reload\n", "echo before the reload")

    crt, key, serial2 = pki.server(org="second")
    _install(crt, key, relay.live_crt, relay.live_key)
    relay.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "tls certificate reloaded" in relay.proc.stderr_text(), 20,
             "the relay to log the certificate reload")
    after = _peer_cert(relay.tls_port, pki)
    eq(after, {"serial": serial2, "org": "second"}, "certificate of a new connection")

    status, _, body, _ = _https(relay, pki, agent.label, "/small?i=2", conn=conn)
    eq(status, 200, "request on the https connection opened before the reload")
    check(b"2" in body, "body of /small?i=2: %r" % body)
    tcp.sendall(b"after reload\n")
    eq(tcp.recv(100), b"after reload\n", "echo after the reload")
    tcp.shutdown(socket.SHUT_WR)
    eq(recv_all(tcp), b"", "end of the echo stream")
    tcp.close()
    conn.close()
    # The device link was never dropped: still one registration.
    eq(sum(1 for l in agent.proc.lines if l.startswith("ready http")), 1, "registrations")
    # A file that does not parse: the relay keeps the certificate it has.
    with open(relay.live_key, "w") as f:
        f.write("not a key\n")
    relay.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "tls reload failed" in relay.proc.stderr_text(), 20,
             "the relay to log the failed reload")
    eq(_peer_cert(relay.tls_port, pki)["serial"], serial2, "certificate after a failed reload")
    check(relay.proc.alive(), "the relay died on a bad certificate file")


def test_tls_1_1_client_is_refused_1_2_accepted(t):
    pki = Pki(t)
    relay = _tls_relay(t, pki)
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(pki.ca)
    old.check_hostname = False
    # The client must really offer TLS 1.1: lift OpenSSL's own floor on this side.
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    old.minimum_version = ssl.TLSVersion.TLSv1_1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection(("127.0.0.1", relay.tls_port), timeout=10) as s:
        try:
            with old.wrap_socket(s, server_hostname="localhost") as ts:
                raise TestFailure("a TLS 1.1 handshake succeeded (%s)" % ts.version())
        except ssl.SSLError as e:
            check("PROTOCOL_VERSION" in str(e).upper().replace(" ", "_"),
                  "TLS 1.1 was not refused with a protocol_version alert: %r" % e)
    ctx = _client_ctx(pki)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", relay.tls_port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as ts:
            eq(ts.version(), "TLSv1.2", "negotiated version with a TLS 1.2 client")
    check(relay.proc.alive(), "the relay died")


def test_bad_certificate_files_and_missing_ones(t):
    pki = Pki(t)
    crt, key, _ = pki.server()
    crt2, key2, _ = pki.server(org="other")
    junk = pki.path("junk.pem")
    with open(junk, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    base = [TETHERD, "--listen", "127.0.0.1:%d" % free_port(), "--data-dir", t.mkdtemp("data"),
            "--token", "x" * 20, "--admin-listen", "127.0.0.1:%d" % free_port(),
            "--tls-listen", "127.0.0.1:%d" % free_port()]
    cases = [
        (["--tls-cert", junk, "--tls-key", key], 1, junk),
        (["--tls-cert", crt, "--tls-key", junk], 1, junk),
        (["--tls-cert", pki.path("missing.crt"), "--tls-key", key], 1, "missing.crt"),
        (["--tls-cert", crt, "--tls-key", key2], 1, "does not match"),
        ([], 2, "--tls-cert"),
        (["--tls-cert", crt], 2, "--tls-key"),
    ]
    for extra, status, needle in cases:
        r = run_cli(base + extra)
        lines = r.stderr.strip().splitlines()
        eq(r.returncode, status, "exit status of tetherd %s" % " ".join(extra))
        eq(len(lines), 1, "stderr lines of tetherd %s (%r)" % (" ".join(extra), r.stderr))
        check(needle in lines[0], "%r does not name %r" % (lines[0], needle))


def test_agent_with_unusable_ca_file_exits_2(t):
    pki = Pki(t)
    junk = pki.path("junk.pem")
    with open(junk, "w") as f:
        f.write("no certificate here\n")
    base = [TETHER, "--server", "wss://localhost:%d" % free_port(), "--name", "d1", "--token",
            "t" * 20, "--http", "127.0.0.1:%d" % free_port()]
    for ca, needle in ((pki.path("missing.pem"), "missing.pem"), (junk, "junk.pem")):
        r = run_cli(base + ["--ca-file", ca])
        lines = r.stderr.strip().splitlines()
        eq(r.returncode, 2, "exit status of tether --ca-file %s" % ca)
        eq(len(lines), 1, "stderr lines (%r)" % r.stderr)
        check(needle in lines[0] and "CA file" in lines[0],
              "%r does not name the CA file" % lines[0])
