"""test_tcp.py - raw TCP through a device's public port: full-duplex volume, half-close both
ways, many connections at once, a real redis-server and sshd, and the port's behaviour while the
device is offline."""

import hashlib
import os
import socket
import threading

from lib import (RedisServer, Sshd, TcpBanner, check, device, eq, recv_all, resp_command,
                 tcp_connect, wait_for, TestFailure)

MiB = 1024 * 1024


def _echo_device(t, **kw):
    echo = t.tcp_echo()
    relay, svc, agent = device(t, tcp={"echo": echo.port}, http=False, **kw)
    port = agent.tcp_port("echo")
    check(relay.tcp_low <= port <= relay.tcp_high,
          "port %d is outside --tcp-ports %d-%d" % (port, relay.tcp_low, relay.tcp_high))
    return relay, agent, echo, port


def _duplex(port, data, chunk=65536):
    """Writes data from a thread while reading the echo here; returns what came back."""
    s = tcp_connect(port, timeout=60)
    err = []

    def writer():
        try:
            view = memoryview(data)
            for off in range(0, len(view), chunk):
                s.sendall(view[off:off + chunk])
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            err.append(e)

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    h = hashlib.sha256()
    n = 0
    try:
        while True:
            b = s.recv(262144)
            if not b:
                break
            h.update(b)
            n += len(b)
    except socket.timeout:
        raise TestFailure("the echo stalled after %d of %d bytes" % (n, len(data)))
    finally:
        th.join(30)
        s.close()
    check(not err, "writing failed: %r" % err)
    return n, h.hexdigest()


def test_tcp_echo_16mib_written_and_read_at_once(t):
    relay, agent, echo, port = _echo_device(t)
    data = os.urandom(16 * MiB)
    n, sha = _duplex(port, data)
    eq(n, len(data), "bytes echoed back")
    eq(sha, hashlib.sha256(data).hexdigest(), "SHA-256 of the echo")


def test_half_close_from_client(t):
    relay, agent, echo, port = _echo_device(t)
    s = tcp_connect(port)
    payload = b"line of text before the half-close\n" * 2000
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    # The echo service shuts its write side only after it has seen our FIN, so getting all the
    # bytes and then EOF means the half-close crossed the relay and the agent, and the
    # service's own FIN came back.
    got = recv_all(s)
    s.close()
    eq(len(got), len(payload), "bytes echoed after our half-close")
    eq(got, payload, "echo content")
    wait_for(lambda: echo.eofs >= 1, 10, "the echo service to see EOF")


def test_half_close_from_device_service(t):
    banner = TcpBanner(t)
    relay, svc, agent = device(t, tcp={"banner": banner.port}, http=False)
    s = tcp_connect(agent.tcp_port("banner"))
    got = recv_all(s)  # the service shut its write side right after the banner
    eq(got, banner.banner, "what the service sent before its half-close")
    # Our direction is still open: the service must still receive this.
    s.sendall(b"sent after the service's FIN")
    s.shutdown(socket.SHUT_WR)
    check(banner.done.wait(30), "the service never saw our data and EOF")
    s.close()
    eq(banner.received, [b"sent after the service's FIN"], "what the service received")


def test_32_concurrent_tcp_connections(t):
    relay, agent, echo, port = _echo_device(t)
    n = 32
    datas = [os.urandom(512 * 1024) for _ in range(n)]
    results = [None] * n

    def one(i):
        try:
            results[i] = _duplex(port, datas[i])
        except Exception as e:
            results[i] = ("error", repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(80)
    bad = [i for i in range(n)
           if results[i] != (len(datas[i]), hashlib.sha256(datas[i]).hexdigest())]
    check(not bad, "%d of %d connections failed, e.g. %r" % (len(bad), n,
                                                              [results[i] for i in bad[:3]]))


def test_redis_server_through_device_port(t):
    redis = RedisServer(t)
    relay, svc, agent = device(t, tcp={"redis": redis.port}, http=False)
    s = tcp_connect(agent.tcp_port("redis"))
    try:
        eq(resp_command(s, "PING"), "+PONG", "PING")
        eq(resp_command(s, "SET", "tether:key", "hello from the other side"), "+OK", "SET")
        eq(resp_command(s, "GET", "tether:key"), b"hello from the other side", "GET")
        big = os.urandom(2 * MiB)
        eq(resp_command(s, "SET", "tether:big", big), "+OK", "SET 2 MiB")
        eq(resp_command(s, "STRLEN", "tether:big"), len(big), "STRLEN")
        got = resp_command(s, "GET", "tether:big")
        check(got == big, "GET of the 2 MiB value came back different (%d bytes)" %
              len(got or b""))
    finally:
        s.close()
    # Straight to redis: the value really is there.
    d = tcp_connect(redis.port)
    eq(resp_command(d, "GET", "tether:key"), b"hello from the other side", "GET direct")
    d.close()


def test_sshd_through_device_port(t):
    sshd = Sshd(t)
    relay, svc, agent = device(t, tcp={"ssh": sshd.port}, http=False)
    port = agent.tcp_port("ssh")
    r = sshd.ssh(port, "echo tether-ssh-ok")
    eq(r.returncode, 0, "ssh exit status (stderr: %s)" % r.stderr.decode(errors="replace").strip())
    eq(r.stdout, b"tether-ssh-ok\n", "ssh command output")
    data = os.urandom(4 * MiB)
    r = sshd.ssh(port, "sha256sum", input_bytes=data)
    eq(r.returncode, 0, "ssh sha256sum exit status (stderr: %s)" %
       r.stderr.decode(errors="replace").strip())
    eq(r.stdout.split()[0].decode(), hashlib.sha256(data).hexdigest(),
       "SHA-256 of 4 MiB sent through ssh")


def test_tcp_port_closed_at_once_while_device_offline(t):
    relay, agent, echo, port = _echo_device(t)
    agent.stop()

    def closed_at_once():
        try:
            s = tcp_connect(port, timeout=10)
        except ConnectionRefusedError:
            return True
        try:
            s.sendall(b"anyone there?")
            return s.recv(100) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        finally:
            s.close()

    wait_for(closed_at_once, 30, "a connection to the offline device's port to be closed",
             interval=0.2)
