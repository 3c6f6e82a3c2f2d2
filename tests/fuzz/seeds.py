#!/usr/bin/env python3
"""seeds.py - rebuilds the seed corpus of tests/fuzz/corpus/ from tests/vectors/*.txt.

Each seed file is named by the SHA-256 of its content. fuzz_frame seeds are a decoder selector
byte (0 HELLO, 1 WELCOME, 2 REFUSE/RESET/GOAWAY, 3 OPEN, 4 WINDOW) and a vector's payload;
fuzz_session seeds are a knob byte (see fuzz_session.c) and a vector's bytes, fed to a session
in the vector file's context, plus a few whole conversations. fuzz_headparse and fuzz_httpproxy
seeds are a split byte and what a browser sends (first heads, keep-alive sequences with bodies,
upgrades, bad and oversized heads); fuzz_wshs gets the upgrade requests too (its server side).
Run from the repository root:
    python3 tests/fuzz/seeds.py
"""
import hashlib
import os
import struct

VEC = "tests/vectors"
OUT = "tests/fuzz/corpus"
SELECT = {1: 0, 2: 1, 3: 2, 7: 2, 8: 2, 4: 3, 6: 4}
CONTEXT = {"hello.txt": 0x00, "hello-v2.txt": 0x00, "welcome.txt": 0x01, "welcome-v2.txt": 0x01,
           "refuse.txt": 0x01, "visitor.txt": 0x02}  # others: 0x03 (D1); 0x02: visitor (V)


def vectors():
    out = []
    for fname in sorted(os.listdir(VEC)):
        if not fname.endswith(".txt"):
            continue
        cur = None
        for line in open(os.path.join(VEC, fname), encoding="utf-8"):
            line = line.rstrip("\n")
            if line.startswith("name: "):
                cur = {"file": fname, "hex": ""}
                out.append(cur)
            elif line.startswith("hex: ") and cur is not None:
                cur["hex"] += line[5:].replace(" ", "")
    return out


def write(target, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha256(data).hexdigest()), "wb") as fp:
        fp.write(data)


def frame(typ, payload, flags=0, stream=0):
    return struct.pack(">HBBI", len(payload), typ, flags, stream) + payload


def s8(b):
    return bytes([len(b)]) + b


def main():
    for v in vectors():
        b = bytes.fromhex(v["hex"])
        typ = b[2]
        if typ in SELECT and len(b) >= 8:
            write("fuzz_frame", bytes([SELECT[typ]]) + b[8:])
        knob = CONTEXT.get(v["file"], 0x03)
        write("fuzz_session", bytes([knob]) + b)
        write("fuzz_session", bytes([knob | 0x10]) + b)  # one byte at a time
    hello = frame(1, struct.pack(">BHI", 1, 8, 64) + s8(b"sensor-1") + s8(b"tok") + b"\x03"
                  + b"\x01" + s8(b"http") + b"\x02" + s8(b"ssh") + b"\x02" + s8(b"db"))
    relay = (hello + frame(5, b"GET / HTTP/1.1\r\n\r\n", stream=1) + frame(6, b"\x00\x00\x01\x00", stream=2)
             + frame(5, b"F-bye", flags=1, stream=2) + frame(7, b"\x00\x06io", stream=3)
             + frame(5, b"R!reset", stream=1) + frame(0x33, b"ext") + frame(8, b"\x00\x00"))
    for knob in (0x00, 0x08, 0x18, 0x28, 0x80, 0x04):
        write("fuzz_session", bytes([knob]) + relay)
    welcome = frame(2, struct.pack(">BHI", 1, 100, 1000) + s8(b"k3j9x2mq") + b"\x02" + b"\x01"
                    + s8(b"http") + b"\x00\x00" + s8(b"http://k3j9x2mq.localhost:8080") + b"\x02"
                    + s8(b"ssh") + b"\x4e\x21" + s8(b"localhost"))
    device = (welcome + frame(4, b"\x00203.0.113.7:51234", stream=1) + frame(4, b"\x01", stream=3)
              + frame(5, b"hello", stream=1) + frame(5, b"F-0123456789", flags=1, stream=3)
              + frame(6, b"\x00\x00\x10\x00", stream=1) + frame(4, b"\x09", stream=5)
              + frame(5, b"0123456789abcdefX", stream=1) + frame(8, b"\x00\x01bye"))
    for knob in (0x01, 0x09, 0x19, 0x39, 0x81, 0x05):
        write("fuzz_session", bytes([knob]) + device)
    visitor = (frame(5, b"SSH-2.0-OpenSSH_9.6\r\n", stream=1) + frame(6, b"\x00\x01\x00\x00", stream=1)
               + frame(0x42, b"ext", stream=1) + frame(5, b"F-bye", flags=1, stream=1)
               + frame(5, b"late", stream=1) + frame(7, b"\x00\x00", stream=1)
               + frame(8, b"\x00\x05access revoked"))
    for knob in (0x02, 0x0a, 0x1a, 0x3a, 0x82):
        write("fuzz_session", bytes([knob]) + visitor)


HOST = b"k3j9x2mq.localhost:8080"
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def requests():
    """What browsers and devices send the relay, good and bad (fuzz_headparse, _httpproxy)."""
    h = b"Host: " + HOST + b"\r\n"
    up = (b"GET /ws HTTP/1.1\r\n" + h + b"Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
          b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    out = [
        b"GET / HTTP/1.1\r\n" + h + b"\r\n",
        b"GET /index.html?q=1&r=2 HTTP/1.1\r\n" + h + b"User-Agent: curl/7.88\r\nAccept: */*\r\n\r\n",
        b"HEAD / HTTP/1.0\r\n" + h + b"\r\n",
        b"POST /upload HTTP/1.1\r\n" + h + b"Content-Length: 11\r\n\r\nhello world"
        + b"GET /next HTTP/1.1\r\n" + h + b"\r\n",
        b"PUT /c HTTP/1.1\r\n" + h + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        b"6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n" + b"DELETE /d HTTP/1.1\r\n" + h + b"\r\n",
        b"POST /e HTTP/1.1\r\n" + h + b"Expect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
        b"GET / HTTP/1.1\r\n" + h + b"X-Forwarded-For: 10.1.1.1\r\nX-Forwarded-Proto: https\r\n"
        b"X-Forwarded-Host: evil\r\nX-Forwarded-For: 10.2.2.2\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + h + b"X-Folded: a\r\n  b\r\n\r\n",
        b"GET / HTTP/1.1\n" + h.replace(b"\r\n", b"\n") + b"\n",
        up,
        up + b"\x82\x85abcd" + b"hello",
        up.replace(b"13\r\n", b"8\r\n"),
        up.replace(b"Sec-WebSocket-Key: " + KEY + b"\r\n", b""),
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + KEY + b" \r\nSec-WebSocket-Version: 13\t\r\n"
        b"Sec-WebSocket-Protocol: tether.v1\r\n\r\n",
        b"CONNECT k3j9x2mq.localhost:443 HTTP/1.1\r\n" + h + b"\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: api--k3j9x2mq.localhost\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + h + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + h + b"Content-Length: banana\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + h + b"\r\n" + b"GET / HTTP/1.1\r\nHost: other.localhost\r\n\r\n",
        b"THIS IS NOT HTTP\r\n\r\n",
        b"GET /" + b"u" * 8200 + b" HTTP/1.1\r\n" + h + b"\r\n",
        b"GET / HTTP/1.1\r\n" + h + b"".join(b"X-%d: v\r\n" % i for i in range(130)) + b"\r\n",
        b"GET / HTTP/1.1\r\n" + h + b"X-Big: " + b"b" * 16400 + b"\r\n\r\n",
    ]
    return out + smuggling(h, up)


def smuggling(h, up):
    """Issue 9's attacks on the HTTP filter: chunked framing read loosely, conflicting or
    unknown framing, obs-fold, control bytes, absolute-form targets, identity headers, an
    Upgrade followed by pipelined requests, a valid request before a bad one."""
    inner = b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    post = b"POST /p HTTP/1.1\r\n" + h
    te = post + b"Transfer-Encoding: chunked\r\n\r\n"
    return [
        te + b"%x;x\n" % len(inner) + b"A" * len(inner) + b"\r\n" + inner + b"\r\n0\r\n\r\n",
        te + b"1\r\nZYY%x\r\n" % len(inner) + inner + b"\r\n0\r\n\r\n",
        te + b"5\nhello\n0\n\n" + b"GET / HTTP/1.1\r\n" + h + b"\r\n",
        post + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
        post + b"Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        post + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        post + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
        b"POST /p HTTP/1.0\r\n" + h + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + h + b"X-A: a\r\n Transfer-Encoding: chunked\r\n\r\n",
        b"GET /a\tb HTTP/1.1\r\n" + h + b"\r\n",
        b"GET / HTTP/1.1\r\n" + h + b"X-A: a\rb\r\nX-B: \x01\r\n\r\n",
        b"GET http://k3j9x2mq.localhost:8080/x HTTP/1.1\r\n" + h + b"\r\n",
        b"GET http://other.localhost/x HTTP/1.1\r\n" + h + b"\r\n",
        b"GET / HTTP/1.1\r\n" + h + b"Forwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n"
        b"X-Forwarded-Port: 1\r\nX-Client-IP: 6.6.6.6\r\nTrue-Client-IP: 6.6.6.6\r\n"
        b"X-Forwarded-Scheme: https\r\n\r\n",
        up + b"GET /admin HTTP/1.1\r\nHost: other.localhost\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
        up + b"GET /2 HTTP/1.1\r\n" + h + b"\r\n",
        b"CONNECT k3j9x2mq.localhost:80 HTTP/1.1\r\n" + h + b"\r\nGET / HTTP/1.1\r\n" + h + b"\r\n",
        b"GET /a HTTP/1.1\r\n" + h + b"\r\nHEAD /b HTTP/1.1\r\n" + h + b"\r\n"
        b"GET /bad\tx HTTP/1.1\r\n" + h + b"\r\n",
        b"".join(b"GET /%d HTTP/1.1\r\n" % i + h + b"\r\n" for i in range(40)),
    ]


def response_seeds():
    """fuzz_httpresponse: a split byte, a count byte, request kinds (0 GET, 1 HEAD, 2 Upgrade,
    3 CONNECT, 4 chunked POST, 5 refused), then the device's answer."""
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    cases = [
        (b"\x00\x01\x02\x03\x04", ok + ok + b"HTTP/1.1 101 Switching Protocols\r\n"
         b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi"),
        (b"\x02\x00", b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" + ok),
        (b"\x03", b"HTTP/1.1 200 Connection established\r\n\r\nraw bytes"),
        (b"\x01\x00\x05", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + chunked
         + b"HTTP/1.1 500 not owed\r\n\r\n"),
        (b"\x04\x00", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: x\r\n\r\n"
         + b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"
         + b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"),
        (b"\x00", b"HTTP/1.0 200 OK\r\n\r\nuntil the end"),
        (b"\x00", b"garbage\r\n\r\n"),
        (b"\x00", ok + ok),
        (b"\x00" * 40, ok * 40),
    ]
    for kinds, rsp in cases:
        for split in (0, 1, 77):
            write("fuzz_httpresponse", bytes([split, len(kinds) - 1]) + kinds + rsp)


def http_seeds():
    for req in requests():
        for split in (0, 1, 77):
            write("fuzz_headparse", bytes([split]) + req)
            write("fuzz_httpproxy", bytes([split]) + req)
        if b"Upgrade: websocket" in req or req.startswith(b"HTTP/"):
            write("fuzz_wshs", req)


def visitor_seeds():
    """fuzz_visitor: tether connect upgrades (good, without and with Basic or Bearer credentials,
    malformed targets and credentials) and the relay's answers to them (docs/PROTOCOL.md 14)."""
    up = (b"GET / HTTP/1.1\r\nHost: relay.example.com\r\nUpgrade: websocket\r\n"
          b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
          b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tether-connect.v1\r\n")
    target = b"Tether-Device: plant-7-gw\r\nTether-Service: ssh\r\n"
    for extra in (target, target + b"Authorization: Basic YWxpY2U6czNjcmV0\r\n",
                  target + b"Authorization: bearer  tok-123\r\n",
                  target + b"Authorization: Basic YWxpY2U=\r\n",
                  target + b"Authorization: Basic !!!!\r\n",
                  target + b"Authorization: Digest x\r\n",
                  target + b"Authorization: Basic YQ==\r\nAuthorization: Basic YQ==\r\n",
                  b"Tether-Device: a b\r\nTether-Service: ssh\r\n",
                  b"Tether-Device: d\r\nTether-Device: e\r\nTether-Service: s\r\n",
                  b"Tether-Device: " + b"d" * 65 + b"\r\nTether-Service: s\r\n",
                  b"Tether-Service: ssh\r\n"):
        write("fuzz_visitor", up + extra + b"\r\n")
    for rsp in (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade"
                b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                b"Sec-WebSocket-Protocol: tether-connect.v1\r\n\r\n\x82\x02\x00\x00",
                b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Length: 53\r\nConnection: close\r\n\r\n"
                b"access denied: no grant of bob covers plant-7-gw/ssh\n",
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"tether\"\r\n"
                b"Content-Type: text/plain\r\nContent-Length: 99999999999999999999\r\n\r\n"):
        write("fuzz_visitor", rsp)


def adminhost_seeds():
    """fuzz_adminhost: a split byte, a Host value, an Origin value."""
    pairs = [
        (b"127.0.0.1:9090", b"http://127.0.0.1:9090"),
        (b"localhost:9090", b"http://localhost:9090"),
        (b"[::1]:9090", b"http://[::1]:9090"),
        (b"evil.example:9090", b"http://evil.example:9090"),
        (b"127.0.0.1:9090", b"null"),
        (b"192.0.2.7", b"https://192.0.2.7"),
        (b" localhost ", b"http://localhost:80/"),
        (b"[::ffff:127.0.0.1]:1", b'x" device=forged\n\x1b[31m'),
    ]
    for h, o in pairs:
        write("fuzz_adminhost", bytes([len(h)]) + h + o)


def relaytext_seeds():
    """fuzz_relaytext: WELCOME payloads, good and forged (a newline in the label or a URL)."""
    def welcome(label, svcs):
        p = struct.pack(">BHI", 1, 100, 1000) + s8(label) + bytes([len(svcs)])
        for kind, name, port, addr in svcs:
            p += bytes([kind]) + s8(name) + struct.pack(">H", port) + s8(addr)
        return p
    good = [(1, b"http", 0, b"http://k3j9x2mq.localhost:8080"), (2, b"ssh", 20001, b"localhost")]
    for label, svcs in [(b"k3j9x2mq", good),
                        (b"k3j9\nready http http://evil -> x", good),
                        (b"k3j9x2mq", [(1, b"http", 0, b"http://x\nready http http://evil -> x")]),
                        (b"k3j9x2mq", [(2, b"ssh", 1, b"evil\r\x1b[2K")]),
                        (b"k3j9x2mq", [(1, b"http", 0, b"javascript:x")]),
                        # private services (--access private): HTTP flag, TCP without a port;
                        # and the malformed mixes (a port without an address, the reverse)
                        (b"k3j9x2mq", [(1, b"http", 1, b"http://k3j9x2mq.localhost:8080"),
                                       (2, b"ssh", 0, b"")]),
                        (b"k3j9x2mq", [(2, b"ssh", 0, b"localhost"), (2, b"db", 5432, b"")])]:
        write("fuzz_relaytext", welcome(label, svcs))


def signin_seeds():
    """Issue 10. fuzz_signin: a split byte, then bytes read as a form body, a Cookie value, a
    Set-Cookie value and (cut at the split) a name and Host, a path. fuzz_httpresponse: responses
    setting the relay's cookie (cut) and not. fuzz_httpproxy: requests the owner answers ("/A")
    or holds ("/H"), with the sign-in form and with other bodies."""
    bodies = [
        b"user=alice&secret=alice-secret-1",
        b"secret=a+b%20c%2B%25&user=%61lice&x=%",
        b"user=%zz&secret=%00&user=again",
        b"tether_session=0123; a=1;  __Host-tether_session=x ;b",
        b"=tether_session=1; Domain=localhost",
        b"  TETHER_SESSION  =1",
        b";;tether_session;=;a",
        b"<script>\"'&</script>",
        b"abc.localhost:8080/x?y=1",
        b"abc.localhost//evil.example/\\x",
        b"[::1]:443/a b\r\nSet-Cookie: x",
    ]
    for b in bodies:
        for split in (0, 5, 13, 200):
            write("fuzz_signin", bytes([split]) + b)
    hdr = b"HTTP/1.1 200 OK\r\n"
    cases = [
        hdr + b"Set-Cookie: tether_session=abc; Domain=localhost\r\nContent-Length: 0\r\n\r\n",
        hdr + b"X-Empty:\r\nset-cookie: __Host-tether_session=1\r\n\r\n",
        hdr + b"Set-Cookie:   =TETHER_session=1\r\nContent-Length: 0\r\n\r\n",
        hdr + b"Set-Cookie: a=tether_session\r\nSet-Cookie: tether_sessions=1\r\n"
        b"Content-Length: 0\r\n\r\n",
        b"garbage\r\n\r\nxx tettether_session=1",
        hdr + b"Transfer-Encoding: chunked\r\n\r\n0\r\nSet-Cookie: tether_session=3\r\n\r\n",
    ]
    for rsp in cases:
        for split in (0, 1, 77):
            write("fuzz_httpresponse", bytes([split, 0, 0]) + rsp)
    h = b"Host: k3j9x2mq.localhost:8080\r\n"
    reqs = [
        b"GET /x HTTP/1.1\r\n" + h + b"\r\nGET /A HTTP/1.1\r\n" + h + b"\r\n",
        b"POST /H HTTP/1.1\r\n" + h + b"Content-Length: 32\r\n\r\n"
        b"user=alice&secret=alice-secret-1GET / HTTP/1.1\r\n" + h + b"\r\n",
        b"POST /H HTTP/1.1\r\n" + h + b"Content-Length: 7\r\n\r\nname=xy"
        b"GET / HTTP/1.1\r\n" + h + b"\r\n",
        b"POST /H HTTP/1.1\r\n" + h + b"Transfer-Encoding: chunked\r\n\r\n"
        b"5\r\nuser=\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + h + b"Cookie: a=1; tether_session=x; b=2\r\n"
        b"Cookie: tether_session=y\r\n\r\n",
    ]
    for req in reqs:
        for split in (0, 1, 77):
            write("fuzz_httpproxy", bytes([split]) + req)


def hostaddr_seeds():
    """Issue 11. fuzz_hostaddr: one string, read as a --dns value, a host name (the localhost
    rule, IP literals) and an SSL_CERT_DIR-style list of directories. Our own parsing only: DNS
    messages are c-ares's."""
    for s in [b"127.0.0.1:5353", b"192.0.2.1", b"::1", b"[::1]", b"[2001:db8::1]:5300", b"[::1",
              b"[::1]53", b"1.2.3.4:0", b"1.2.3.4:65536", b"1:2", b"dns.example", b"fe80::1%eth0",
              b"localhost", b"relay.LOCALHOST.", b".localhost", b"a..localhost", b"notlocalhost",
              b"/etc/ssl/certs:/system/etc/security/cacerts", b"::/opt/certs:"]:
        write("fuzz_hostaddr", s)


def webhook_seeds():
    """Issue 13. fuzz_webhook: a split byte, then a receiver's answer (also read as a --webhook
    URL)."""
    for s in [b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
              b"HTTP/1.0 503 Busy\r\nContent-Length: 3\r\n\r\nabc",
              b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 500 X\r\n\r\n",
              b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
              b"HTTP/1.1 200 OK\r\n", b"SSH-2.0-OpenSSH_9.2\r\n", b"HTTP/1.1 2000 X\r\n\r\n",
              b"http://127.0.0.1:8081/hook?k=v", b"https://[::1]/x", b"http://u:p@h/",
              b"http://hooks.example/a b"]:
        for split in (0, 5, 200):
            write("fuzz_webhook", bytes([split]) + s)


def httphead_seeds():
    """Issue 12. fuzz_wshs also reads its input with the one head reader (common/httphead.c)
    as a request and as an answer: a proxy's answers to CONNECT, a webhook receiver's, folded
    and repeated headers, a bare LF, a head with many lines."""
    many = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(130)) + b"\r\n"
    for s in [b"HTTP/1.1 200 Connection established\r\n\r\nSSH-2.0-x",
              b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n"
              b"Content-Length: 0\r\n\r\n",
              b"HTTP/1.0 502 \x01bad\x7f reason\r\n\r\n",
              b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nRetry-After: 9\r\n\r\n",
              b"HTTP/1.1 200 OK\r\nX-A: a\r\n  folded\r\n\r\n",
              b"HTTP/1.1 204 No Content\nServer: x\n\n",
              b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nUpgrade: h2c\r\n"
              b"Connection: Upgrade\r\n\r\n",
              b"POST /hook HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
              b"CONNECT relay:443 HTTP/1.1\r\nHost: relay:443\r\n\r\n",
              many, many[:-2]]:
        write("fuzz_wshs", s)


def redis_url_seeds():
    """Issue 12. fuzz_url also reads its string as a --redis URL (redis:// and
    redis-sentinel://)."""
    for s in [b"redis://127.0.0.1:6379/2", b"redis://:pw@[::1]:6380", b"redis://h",
              b"redis-sentinel://127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/mymaster",
              b"redis-sentinel://:p@ss@[::1]:1,s2/cache-1/15", b"redis-sentinel://h:1//3",
              b"redis-sentinel://h:1,,h:2", b"redis-sentinel://h:1/m/16",
              b"redis-sentinel://" + b",".join(b"h:%d" % i for i in range(1, 18))]:
        write("fuzz_url", s)


if __name__ == "__main__":
    main()
    http_seeds()
    adminhost_seeds()
    visitor_seeds()
    relaytext_seeds()
    response_seeds()
    signin_seeds()
    hostaddr_seeds()
    webhook_seeds()
    httphead_seeds()
    redis_url_seeds()
