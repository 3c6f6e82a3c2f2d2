"""bench/tickets_stall.py - the event-loop stall of one cluster node while its Redis is
SIGSTOPped across TLS ticket key refreshes (--tls-ticket-rotate 1s: a refresh every 250 ms, a
new key wanted every second). A client does TLS handshakes back to back to the node's TLS port
(full handshakes); the script prints the longest one during the stop, how many took over
250 ms, and how many completed. Figures only, nothing asserts (docs: REPORT of h28-tickets).

usage: python3 bench/tickets_stall.py PATH/TO/tetherd STOP_SECONDS   (release builds)"""
import os, shutil, signal, socket, ssl, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchnet import free_port, wait_port  # noqa: E402

tetherd, stop_s = sys.argv[1], float(sys.argv[2])
d = tempfile.mkdtemp(prefix="tickets-stall-")

subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", d + "/k.pem", "-out", d + "/c.pem", "-days", "2",
                "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
               check=True, capture_output=True)
rp = free_port()
redis = subprocess.Popen(["redis-server", "--port", str(rp), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", d], stdout=subprocess.DEVNULL)
wait_port(rp)
port, tls, admin = free_port(), free_port(), free_port()
low = 20000 + os.getpid() % 20000
relay = subprocess.Popen([tetherd, "--listen", "127.0.0.1:%d" % port, "--domain", "localhost",
                          "--tcp-ports", "%d-%d" % (low, low + 3), "--tcp-bind", "127.0.0.2",
                          "--data-dir", d, "--admin-listen", "127.0.0.1:%d" % admin,
                          "--token", "e2e-token-0123456789abcdef",
                          "--redis", "redis://127.0.0.1:%d" % rp, "--node-id", "node-a",
                          "--advertise", "ws://127.0.0.1:%d" % port,
                          "--tls-listen", "127.0.0.1:%d" % tls, "--tls-cert", d + "/c.pem",
                          "--tls-key", d + "/k.pem", "--tls-ticket-rotate", "1s"],
                         stdout=subprocess.DEVNULL, stderr=open(d + "/relay.err", "wb"))
try:
    wait_port(tls)
    ctx = ssl.create_default_context(cafile=d + "/c.pem")
    def handshake():
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.0.1", tls), timeout=30)
        with ctx.wrap_socket(s, server_hostname="localhost"):
            pass
        return time.monotonic() - t0
    for _ in range(20):
        handshake()
    base = sorted(handshake() for _ in range(50))
    redis.send_signal(signal.SIGSTOP)
    t_end = time.monotonic() + stop_s
    lat = []
    while time.monotonic() < t_end:
        lat.append(handshake())
    redis.send_signal(signal.SIGCONT)
    lat.sort()
    print("%s: before stop median %.1f ms max %.1f ms | during %.0f s stop: %d handshakes, "
          "median %.1f ms, p99 %.1f ms, max %.1f ms, over 250 ms: %d" % (
              tetherd, base[len(base) // 2] * 1e3, base[-1] * 1e3, stop_s, len(lat),
              lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3, lat[-1] * 1e3, sum(1 for x in lat if x > 0.25)))
finally:
    relay.terminate(); relay.wait(timeout=20)
    redis.send_signal(signal.SIGCONT); redis.kill(); redis.wait()
    shutil.rmtree(d, ignore_errors=True)
