"""test_android.py - the agent where Android runs it, and the name lookups that takes.

Names through --dns (any tether build): a small DNS server of the test's own (lib.DnsServer, on
127.0.0.1) knows relay.tether.test and proxy.tether.test; the agent reaches the relay by name
through it, and a proxy by name (tinyproxy); tether connect does too. An unknown name, a DNS
server that never answers and bad --dns values fail with words that say so. localhost and
NAME.localhost never reach a resolver: the DNS server sees no query for them, for the relay's
URL, a service's target, and tether connect's --listen. 100 streams to a target by name with a
DNS server that never answers: at most 64 lookups at once, the rest fail at once (with the cap
raised to 100000 the server saw 100 lookups).

Laid out like Android (the static build of `make cross ARCH=android-arm64` only; any other
tether prints "skipped" and passes): a chroot with /system/bin/tether, the CPU emulator beside it
(qemu-aarch64-static, Debian's, standing in for the phone's CPU), /data/local/tmp for the device
key, and no /etc, /dev or /proc at all. There the agent reaches a real tetherd over ws:// by name
through --dns; without --dns it says clearly that no DNS server is known, while localhost still
works, and with /etc a link to /system/etc (as on a phone) a name in its hosts file is found;
over wss:// it verifies the relay against Android's CA store, /system/etc/security/cacerts,
which holds the test CA as Android keeps its CAs: a file named by OpenSSL's old subject hash
(openssl x509 -subject_hash_old), its text form and PEM. The same
relay is refused with an empty store, and /apex/com.android.conscrypt/cacerts (Android 14's
updatable store) is preferred when it exists. Needs root (chroot), as CI runs the tests.

What this does not prove: it is not a phone. No Android kernel, no Bionic, no SELinux policy, no
app sandbox or packaging; qemu-user runs the program on this machine's Linux kernel."""

import json
import os
import select
import shutil
import socket
import struct
import subprocess
import time

import lib
from lib import (TETHER, DnsServer, check, eq, free_port, port_open, recv_all, run_cli,
                 tcp_connect, wait_for, which)

RELAY_NAME = "relay.tether.test"
PROXY_NAME = "proxy.tether.test"


def _events(agent, kind, mentions=None, timeout=30):
    """Waits for a --json event of kind (whose message contains mentions, if given); returns
    its message."""
    _, line = agent.proc.wait_line(
        lambda l: '"event":"%s"' % kind in l and (mentions is None or mentions in l), timeout, 0,
        "an %s event%s" % (kind, " mentioning %r" % mentions if mentions else ""))
    return json.loads(line).get("message", "")


def _page(relay, agent):
    eq(relay.request("GET", "/whoami", label=agent.label)[:3:2], (200, b"device"),
       "the device's page through the relay")


def _dns(t):
    return DnsServer(t, names={RELAY_NAME: "127.0.0.1", PROXY_NAME: "127.0.0.1"})


# ---------------------------------------------------------------- --dns with any build

def test_dns_relay_by_name(t):
    dns = _dns(t)
    relay = t.relay()
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port, server="ws://%s:%d" % (RELAY_NAME, relay.port),
                    extra=["--dns", dns.addr])
    _page(relay, agent)
    check(RELAY_NAME in dns.names_asked(), "the agent asked the DNS server for %s (it asked %r)"
          % (RELAY_NAME, dns.names_asked()))
    # A target by name goes through the same server; the page is reached through it.
    agent2 = t.agent(relay, http="%s:%d" % (RELAY_NAME, svc.port),
                     server="ws://%s:%d" % (RELAY_NAME, relay.port), extra=["--dns", dns.addr])
    _page(relay, agent2)


def test_dns_proxy_by_name(t):
    exe = which("tinyproxy")
    check(exe, "tinyproxy is not installed (scripts/deps.sh test installs it)")
    from test_proxy import TinyProxy
    dns = _dns(t)
    relay = t.relay()
    proxy = TinyProxy(t, connect_ports=[relay.port])
    svc = t.http_service(big_size=1024)
    # The proxy's name is the agent's to look up; the relay's goes to the proxy as it is.
    agent = t.agent(relay, http=svc.port, extra=[
        "--dns", dns.addr, "--proxy", "http://%s:%d" % (PROXY_NAME, proxy.port)])
    _page(relay, agent)
    eq(proxy.connects(), ["127.0.0.1:%d" % relay.port], "CONNECTs in tinyproxy's log")
    check(PROXY_NAME in dns.names_asked(), "the proxy's name was asked (%r)" % dns.names_asked())


def test_dns_failures_are_clear(t):
    dns = _dns(t)
    relay = t.relay()
    # A name the server does not know: an error naming the name, the server and the answer.
    a = t.agent(relay, http=free_port(), json_mode=True, wait=False,
                server="ws://nosuch.tether.test:%d" % relay.port, extra=["--dns", dns.addr])
    msg = _events(a, "error", "nosuch.tether.test")
    eq(msg, "cannot resolve nosuch.tether.test with DNS server %s (--dns): no such name" % dns.addr,
       "the error for an unknown name")
    # A server that never answers: c-ares gives up after its tries, and says so.
    silent = DnsServer(t, silent=True)
    b = t.agent(relay, http=free_port(), json_mode=True, wait=False,
                server="ws://%s:%d" % (RELAY_NAME, relay.port), extra=["--dns", silent.addr])
    msg = _events(b, "error", "cannot resolve", timeout=40)
    eq(msg, "cannot resolve %s with DNS server %s (--dns): no answer" % (RELAY_NAME, silent.addr),
       "the error for a DNS server that never answers")
    check(silent.names_asked(), "the silent server got the queries")
    # Bad values: exit status 2 and a line naming the flag.
    base = [TETHER, "--server", relay.url, "--name", "d", "--token", "t", "--http", "127.0.0.1:1"]
    for value, words in (("dns.example.com", "not an IP address"), ("127.0.0.1:0", "bad port"),
                         ("[::1", "missing ']'"), ("", "empty")):
        r = run_cli(base + ["--dns", value])
        eq(r.returncode, 2, "exit status for --dns %r (stderr %r)" % (value, r.stderr))
        check("--dns" in r.stderr and words in r.stderr,
              "--dns %r: %r should name the flag and say %r" % (value, r.stderr, words))
    r = run_cli(base + ["--dns", "127.0.0.1", "--dns", "127.0.0.2"])
    eq(r.returncode, 2, "--dns twice")
    check("--dns given twice" in r.stderr, r.stderr)
    r = run_cli([TETHER, "--help"])
    check("--dns ADDR[:PORT]" in r.stdout, "--help shows --dns")


def test_localhost_never_looked_up(t):
    dns = _dns(t)
    relay = t.relay()
    echo = t.tcp_echo()
    svc = t.http_service(big_size=1024)
    name = "dev-" + os.urandom(3).hex()
    agent = t.agent(relay, name=name, http="web.localhost:%d" % svc.port, tcp={"echo": echo.port},
                    server="ws://LocalHost:%d" % relay.port, extra=["--dns", dns.addr])
    _page(relay, agent)
    agent2 = t.agent(relay, http="localhost.:%d" % svc.port,
                     server="ws://relay.localhost:%d" % relay.port, extra=["--dns", dns.addr])
    _page(relay, agent2)
    # tether connect: the relay by name through --dns, a localhost listening address.
    r = run_cli([TETHER, "connect", "--help"])
    if r.returncode == 0 and "--dns" in r.stdout:
        lst = lib.Proc(t, "tether", [TETHER, "connect", "--server",
                                     "ws://%s:%d" % (RELAY_NAME, relay.port), "--dns", dns.addr,
                                     "%s/echo" % name, "--listen", "localhost:0"])
        _, line = lst.wait_line(lambda l: l.startswith("listening "), 30, 0, "the listening line")
        check(line.startswith("listening 127.0.0.1:") and line.endswith(" -> %s/echo" % name),
              "listening line %r" % line)
        port = int(line.split()[1].rsplit(":", 1)[1])
        with tcp_connect(port) as s:
            s.sendall(b"through the relay, by name")
            s.shutdown(socket.SHUT_WR)
            eq(recv_all(s), b"through the relay, by name", "echo through tether connect")
        check(RELAY_NAME in dns.names_asked(), "tether connect asked for the relay's name")
    asked = [n for n in dns.names_asked() if "localhost" in n]
    eq(asked, [], "queries the DNS server got for localhost names")


def test_dns_lookups_capped(t):
    """Streams to a service whose target is a name, with a DNS server that never answers: at
    most 64 lookups are under way at once (TT_RESOLVE_MAX_INFLIGHT); the streams past the cap
    fail at once (the relay closes their connections), nothing queues."""
    n, cap = 100, 64
    silent = DnsServer(t, silent=True)
    relay = t.relay(extra=["--max-streams-per-client", "1000"])
    agent = t.agent(relay, json_mode=True,
                    extra=["--dns", silent.addr, "--tcp", "slow=slow.tether.test:9"])
    port = agent.tcp_port("slow")
    socks = []
    try:
        for _ in range(n):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        # c-ares waits 2 s, then 4 s, for the lookups it holds; the refused ones end first.
        closed, deadline = set(), time.monotonic() + 20
        while len(closed) < n - cap and time.monotonic() < deadline:
            ready, _, _ = select.select([s for s in socks if s not in closed], [], [], 0.2)
            for s in ready:
                try:
                    if s.recv(1) == b"":
                        closed.add(s)
                except OSError:
                    closed.add(s)
        check(len(closed) >= n - cap,
              "connections closed past the cap: %d of %d" % (len(closed), n))
        lookups = len(set(silent.peers))
        check(0 < lookups <= cap,
              "lookups that reached the DNS server: %d (cap %d)" % (lookups, cap))
        wait_for(lambda: "too many name lookups at once (64)" in agent.proc.stderr_text(), 10,
                 "the agent's warning at the cap")
    finally:
        for s in socks:
            s.close()


# ---------------------------------------------------------------- laid out like Android

EM_AARCH64 = 183
PT_INTERP = 3


def _static_aarch64(path):
    """True when path is an ELF program for arm64 without a dynamic loader (statically linked)."""
    try:
        with open(path, "rb") as f:
            h = f.read(64)
            if len(h) < 64 or h[:4] != b"\x7fELF" or h[4] != 2 or h[5] != 1:
                return False
            machine, = struct.unpack_from("<H", h, 18)
            phoff, = struct.unpack_from("<Q", h, 32)
            phentsize, phnum = struct.unpack_from("<HH", h, 54)
            if machine != EM_AARCH64:
                return False
            f.seek(phoff)
            ph = f.read(phentsize * phnum)
    except OSError:
        return False
    return all(struct.unpack_from("<I", ph, i * phentsize)[0] != PT_INTERP for i in range(phnum))


def _android_build():
    """(the static tether, qemu-aarch64-static) when TETHER is `make cross ARCH=android-arm64`'s
    (its bin/tether-qemu, or the program itself), else None after saying why on stdout."""
    exe = TETHER if os.path.basename(TETHER) == "tether" else \
        os.path.join(os.path.dirname(TETHER), "tether")
    qemu = os.environ.get("ANDROID_QEMU") or os.path.join(
        os.path.dirname(os.path.dirname(exe)), "sysroot", "qemu", "qemu-aarch64-static")
    if not _static_aarch64(exe):
        print("skipped: %s is not the static Android build (make cross ARCH=android-arm64; "
              "make cross-test runs this with it)" % TETHER)
        return None
    check(os.access(qemu, os.X_OK), "no %s (scripts/cross-sysroot-android.sh extracts it)" % qemu)
    if os.geteuid() != 0:
        print("skipped: the Android layout needs root (chroot)")
        return None
    return exe, qemu


class AndroidRoot:
    """A directory laid out like Android's root: /system/bin/tether, /system/etc/security/cacerts
    (empty unless CAs are added), /data/local/tmp; no /etc, /dev or /proc. The CPU emulator sits
    in /qemu. run_argv(args) runs tether there; agent() starts it as a lib.Agent."""

    def __init__(self, t, exe, qemu, name="android"):
        self.t = t
        self.dir = t.mkdtemp(name)
        for d in ("system/bin", "system/etc/security/cacerts", "data/local/tmp", "qemu"):
            os.makedirs(os.path.join(self.dir, d))
        shutil.copy2(exe, os.path.join(self.dir, "system/bin/tether"))
        shutil.copy2(qemu, os.path.join(self.dir, "qemu/qemu-aarch64-static"))
        self.wrapper = os.path.join(self.dir + ".sh")
        with open(self.wrapper, "w") as f:
            f.write('#!/bin/sh\n# tether in the Android layout %s\nexec chroot "%s" '
                    '/qemu/qemu-aarch64-static /system/bin/tether "$@"\n' % (self.dir, self.dir))
        os.chmod(self.wrapper, 0o755)
        check(not os.path.exists(os.path.join(self.dir, "etc")), "no /etc")

    def add_ca(self, ca_pem, store="system/etc/security/cacerts"):
        """Puts a CA in a store as Android keeps it: OLDHASH.0, text form then PEM."""
        d = os.path.join(self.dir, store)
        os.makedirs(d, exist_ok=True)
        old = _openssl_out("x509", "-in", ca_pem, "-noout", "-subject_hash_old").strip()
        new = _openssl_out("x509", "-in", ca_pem, "-noout", "-subject_hash").strip()
        check(old != new, "the old and new subject hashes differ (%s)" % old)
        with open(os.path.join(d, old + ".0"), "w") as f:
            f.write(_openssl_out("x509", "-in", ca_pem, "-text"))
        return old + ".0"

    def agent(self, relay, **kw):
        """lib.Agent running in this root (its state in /data/local/tmp)."""
        real = lib.TETHER
        lib.TETHER = self.wrapper
        try:
            return lib.Agent(self.t, relay, state_dir="/data/local/tmp/tether", **kw)
        finally:
            lib.TETHER = real


def _openssl_out(*args):
    r = subprocess.run(["openssl"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60, text=True)
    check(r.returncode == 0, "openssl %s failed: %s" % (" ".join(args[:2]), r.stderr[-500:]))
    return r.stdout


def _pki(t):
    """A throw-away CA and a certificate it signs for relay.tether.test; returns (ca, crt, key)."""
    d = t.mkdtemp("pki")
    ca, ca_key = os.path.join(d, "ca.crt"), os.path.join(d, "ca.key")
    crt, key, csr, ext = (os.path.join(d, "relay." + e) for e in ("crt", "key", "csr", "ext"))
    _openssl_out("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2", "-subj",
                 "/O=Tether e2e/CN=Tether e2e Android CA", "-addext",
                 "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n" % RELAY_NAME)
    _openssl_out("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", key, "-out", csr, "-subj", "/CN=%s" % RELAY_NAME)
    _openssl_out("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-set_serial", "7",
                 "-days", "2", "-out", crt, "-extfile", ext)
    return ca, crt, key


def test_android_layout_ws_by_name(t):
    build = _android_build()
    if build is None:
        return
    root = AndroidRoot(t, *build)
    dns = _dns(t)
    relay = t.relay()
    svc = t.http_service(big_size=1024)
    # No /etc at all: localhost needs no resolver and no /etc/hosts.
    a = root.agent(relay, http=svc.port, server="ws://localhost:%d" % relay.port)
    _page(relay, a)
    # A name without --dns: no DNS server is known, and the agent says what to do.
    b = root.agent(relay, http=svc.port, json_mode=True, wait=False,
                   server="ws://%s:%d" % (RELAY_NAME, relay.port))
    eq(_events(b, "error", RELAY_NAME),
       "cannot resolve %s: not in /etc/hosts, and no DNS server is known (there is no "
       "/etc/resolv.conf): give one with --dns ADDR[:PORT]" % RELAY_NAME,
       "the error without --dns")
    b.stop()
    # By name through --dns, end to end.
    c = root.agent(relay, http=svc.port, server="ws://%s:%d" % (RELAY_NAME, relay.port),
                   extra=["--dns", dns.addr])
    _page(relay, c)
    st, _, body = relay.request("GET", "/big", label=c.label)
    eq((st, len(body)), (200, 1024), "a download from the device in the Android layout")
    check(RELAY_NAME in dns.names_asked(), "the DNS server was asked (%r)" % dns.names_asked())
    # the device key was written where Android lets a shell program write
    keys = os.listdir(os.path.join(root.dir, "data/local/tmp/tether"))
    check(any(k.endswith(".key") for k in keys), "a device key in /data/local/tmp (%r)" % keys)
    # As a phone has it: /etc a link to /system/etc, whose hosts file names a host; still no
    # /etc/resolv.conf. A name in the hosts file is found without --dns.
    hosts = AndroidRoot(t, *build, name="android-hosts")
    with open(os.path.join(hosts.dir, "system/etc/hosts"), "w") as f:
        f.write("127.0.0.1       localhost\n::1             ip6-localhost\n"
                "127.0.0.1       hosts-only.tether.test\n")
    os.symlink("/system/etc", os.path.join(hosts.dir, "etc"))
    d = hosts.agent(relay, http=svc.port, server="ws://hosts-only.tether.test:%d" % relay.port)
    _page(relay, d)
    check("hosts-only.tether.test" not in dns.names_asked(), "the hosts file's name was not asked")


def test_android_layout_wss_android_store(t):
    build = _android_build()
    if build is None:
        return
    ca, crt, key = _pki(t)
    dns = _dns(t)
    tls_port = free_port()
    relay = t.relay(extra=["--tls-listen", "127.0.0.1:%d" % tls_port, "--tls-cert", crt,
                           "--tls-key", key])
    wait_for(lambda: port_open(tls_port), 30, "the TLS listener on %d" % tls_port)
    svc = t.http_service(big_size=1024)
    url = "wss://%s:%d" % (RELAY_NAME, tls_port)

    # The CA in /system/etc/security/cacerts, named as Android names it: verified, registered.
    good = AndroidRoot(t, *build, name="android-store")
    good.add_ca(ca)
    a = good.agent(relay, http=svc.port, server=url, extra=["--dns", dns.addr])
    _page(relay, a)

    # An empty store: the same relay is refused, with the reason.
    empty = AndroidRoot(t, *build, name="android-empty")
    b = empty.agent(relay, http=svc.port, server=url, json_mode=True, wait=False,
                    extra=["--dns", dns.addr])
    msg = _events(b, "error", "TLS handshake")
    check("certificate verify failed" in msg, "the refusal says why: %r" % msg)
    b.stop()

    # Android 14's updatable store comes first: the CA only in the old one is not trusted
    # while /apex/com.android.conscrypt/cacerts exists, and is once it is there.
    apex = AndroidRoot(t, *build, name="android-apex")
    apex.add_ca(ca)
    os.makedirs(os.path.join(apex.dir, "apex/com.android.conscrypt/cacerts"))
    c = apex.agent(relay, http=svc.port, server=url, json_mode=True, wait=False,
                   extra=["--dns", dns.addr])
    msg = _events(c, "error", "TLS handshake")
    check("certificate verify failed" in msg, "only the apex store is read: %r" % msg)
    c.stop()
    apex.add_ca(ca, "apex/com.android.conscrypt/cacerts")
    d = apex.agent(relay, http=svc.port, server=url, json_mode=True, extra=["--dns", dns.addr])
    _page(relay, d)
