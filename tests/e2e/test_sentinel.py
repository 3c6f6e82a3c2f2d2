"""test_sentinel.py - tetherd nodes finding Redis through Redis Sentinel (--redis
redis-sentinel://...): a real Sentinel set-up on loopback (one master, one replica started with
--replicaof, three sentinels with down-after-milliseconds 1000 and failover-timeout 3000), two
nodes and a few devices; the master killed with kill -9 by PID; the sentinels promote the replica,
the nodes follow it (log line, tether_redis_master_changes_total), every device keeps its label
(admin API), a new device registers, browsers reach every device through both nodes; a write the
new master lacks (as one lost in an asynchronous failover) is written again by the node holding
the device. Also: sentinels all down at start (exit 1, one line, like redis:// unreachable), a
sentinel naming a replica (refused: ROLE is checked), and bad URLs (exit 2, one line)."""

import os
import re
import socket
import sys
import threading
import time

from lib import (Proc, check, eq, free_port, port_open, resp_command, run_cli, wait_for, which,
                 TETHERD, TestFailure)
from test_cluster import _admin, _devices, _echo_ok, _free_range_all
from lib import Relay

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from tcprelay import TcpRelay  # noqa: E402

MASTER = "mymaster"


def _redis_exe():
    exe = which("redis-server")
    check(exe, "redis-server is not installed (scripts/deps.sh test installs it)")
    return exe


def _sentinel_argv(conf):
    """Debian's redis-sentinel when installed, else the same server in sentinel mode."""
    exe = which("redis-sentinel")
    return [exe, conf] if exe else [_redis_exe(), conf, "--sentinel"]


class _Redis:
    def __init__(self, t, name, replicaof=None, extra=()):
        self.port = free_port()
        d = t.mkdtemp(name)
        argv = [_redis_exe(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", d, "--daemonize", "no", "--protected-mode", "no",
                "--logfile", ""]
        if replicaof:
            argv += ["--replicaof", "127.0.0.1", str(replicaof)]
        argv += list(extra)
        self.proc = Proc(t, "redis-" + name, argv)
        wait_for(lambda: self.proc.alive() and port_open(self.port), 30, "%s to listen" % name)


class _Sentinel:
    def __init__(self, t, i, master_port, failover_timeout=3000, extra=""):
        self.port = free_port()
        d = t.mkdtemp("sentinel%d" % i)
        self.conf = os.path.join(d, "sentinel.conf")
        with open(self.conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\n"
                    "logfile \"\"\ndir %s\n"
                    "sentinel monitor %s 127.0.0.1 %d 2\n"
                    "sentinel down-after-milliseconds %s 1000\n"
                    "sentinel failover-timeout %s %d\n"
                    "sentinel parallel-syncs %s 1\n" %
                    (self.port, d, MASTER, master_port, MASTER, MASTER, failover_timeout,
                     MASTER) + extra)
        self.proc = Proc(t, "redis-sentinel", _sentinel_argv(self.conf))
        wait_for(lambda: self.proc.alive() and port_open(self.port), 30,
                 "sentinel %d to listen" % i)


def _cmd(port, *args):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        return resp_command(s, *args)


def _master_of(sentinel):
    try:
        rep = _cmd(sentinel.port, "SENTINEL", "get-master-addr-by-name", MASTER)
    except OSError:
        return None
    return int(rep[1]) if isinstance(rep, list) and len(rep) == 2 else None


class _ReplicationLink(TcpRelay):
    """A TCP proxy between the replica and the master whose master-to-replica direction can be
    held: what the master acknowledges meanwhile does not reach the replica (as an asynchronous
    replica lagging behind when its master dies)."""

    def __init__(self, t, master_port):
        self.held = threading.Event()
        super().__init__(master_port, backlog=8, connect_timeout=5, nodelay=False)
        t.on_cleanup(self.close)

    def before_recv(self, down):
        deadline = time.monotonic() + 120
        while down and self.held.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)

    def forward(self, data, down):
        # held while this recv waited: drop it, as a dying master would
        return not (down and self.held.is_set())


def _setup(t, link=False, failover_timeout=3000):
    """Master, replica and three sentinels that know the replica and each other. link: the
    replica replicates through a _ReplicationLink (writable, so that a test can plant a key in
    it)."""
    master = _Redis(t, "master")
    via = _ReplicationLink(t, master.port) if link else None
    replica = _Redis(t, "replica", replicaof=via.port if via else master.port,
                     extra=["--replica-read-only", "no"] if via else [])
    replica.link = via
    wait_for(lambda: b"master_link_status:up" in _cmd(replica.port, "INFO", "replication"), 30,
             "the replica to sync with the master")
    sentinels = [_Sentinel(t, i, master.port, failover_timeout) for i in range(3)]

    def ready():
        for s in sentinels:
            reps = _cmd(s.port, "SENTINEL", "replicas", MASTER)
            others = _cmd(s.port, "SENTINEL", "sentinels", MASTER)
            if not isinstance(reps, list) or len(reps) < 1:
                return False
            if not isinstance(others, list) or len(others) < 2:
                return False
        return True

    wait_for(ready, 40, "the sentinels to know the replica and each other", interval=0.2)
    return master, replica, sentinels


def _url(sentinels, extra=""):
    return "redis-sentinel://" + ",".join("127.0.0.1:%d" % s.port for s in sentinels) + \
        "/" + MASTER + extra


def _node(t, sentinels, name, tcp_bind, tcp_ports):
    port = free_port()
    n = Relay(t, port=port, tcp_ports=tcp_ports, grace="60s",
              extra=["--redis", _url(sentinels), "--node-id", name, "--advertise",
                     "ws://127.0.0.1:%d" % port, "--tcp-bind", tcp_bind])
    n.name = name
    return n


def _metric(node, name):
    text = _admin(node, "/metrics")[1].decode()
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


def _labels_everywhere(nodes, want):
    """True when every node's admin API lists every device of want ({name: label}) online
    with its label."""
    for n in nodes:
        try:
            devs = _devices(n)
        except (OSError, TestFailure):
            return False
        for name, label in want.items():
            d = devs.get(name)
            if not d or d.get("label") != label or d.get("online") is not True:
                return False
    return True


def _reach_all(nodes, agents):
    for n in nodes:
        for a in agents:
            st, _, body = n.request("GET", "/whoami", label=a.label, timeout=10)
            eq(st, 200, "GET /whoami of %s through %s" % (a.name, n.name))
            eq(body.decode(), a.ident, "the answer of %s through %s" % (a.name, n.name))


def _tcp_all(agents):
    """Every device's TCP echo through both nodes' --tcp-bind addresses, at the same port."""
    for a in agents:
        for host in ("127.0.0.2", "127.0.0.3"):
            check(_echo_ok(host, a.tcp_port("echo")),
                  "TCP echo of %s through %s:%d" % (a.name, host, a.tcp_port("echo")))


def test_sentinel_failover(t):
    master, replica, sentinels = _setup(t)
    low, high = _free_range_all(t)
    nodes = [_node(t, sentinels, "node-%c" % c, "127.0.0.%d" % (2 + i), (low, high))
             for i, c in enumerate("ab")]
    for n in nodes:
        wait_for(lambda: "redis master is 127.0.0.1:%d" % master.port in n.proc.stderr_text(),
                 10, "%s to log its master" % n.name)
        eq(_metric(n, "tether_redis_master_changes_total"), 0, "master changes at start")
    agents = []
    for i in range(4):
        ident = "sentinel-dev-%d" % i
        svc = t.http_service(big_size=1024, ident=ident)
        a = t.agent(nodes[i % 2], http=svc.port, tcp={"echo": t.tcp_echo().port})
        a.ident = ident
        agents.append(a)
    want = {a.name: a.label for a in agents}
    eq(len(set(want.values())), len(agents), "labels unique")
    wait_for(lambda: _labels_everywhere(nodes, want), 15, "every node to list every device")
    _reach_all(nodes, agents)
    wait_for(lambda: all(port_open(a.tcp_port("echo"), h) for a in agents
                         for h in ("127.0.0.2", "127.0.0.3")), 10,
             "both nodes to listen on every device's TCP port")
    _tcp_all(agents)
    ports = {a.name: a.tcp_port("echo") for a in agents}

    # The master dies.
    t0 = time.monotonic()
    master.proc.stop(9)
    wait_for(lambda: all(_master_of(s) == replica.port for s in sentinels), 40,
             "the sentinels to promote the replica", interval=0.1)
    t_promoted = time.monotonic() - t0
    for n in nodes:
        wait_for(lambda: (_metric(n, "tether_redis_master_changes_total") or 0) >= 1, 30,
                 "%s to follow the new master" % n.name, interval=0.1)
        check("redis master is 127.0.0.1:%d (was 127.0.0.1:%d)" % (replica.port, master.port)
              in n.proc.stderr_text(), "%s does not log its new master" % n.name)
    t_followed = time.monotonic() - t0
    wait_for(lambda: _labels_everywhere(nodes, want), 20,
             "every device listed online with its label after the failover", interval=0.2)
    t_labels = time.monotonic() - t0
    check(all(a.proc.alive() for a in agents), "an agent died")
    _reach_all(nodes, agents)
    eq({a.name: a.tcp_port("echo") for a in agents}, ports, "TCP ports after the failover")
    _tcp_all(agents)

    # A new device registers, on each node, against the new master.
    for i, n in enumerate(nodes):
        ident = "after-failover-%d" % i
        svc = t.http_service(big_size=1024, ident=ident)
        a = t.agent(n, http=svc.port, server=n.url + "/?tether-redirected=1")
        a.ident = ident
        check(a.label not in want.values(), "a new device got a label in use")
        agents.append(a)
        want[a.name] = a.label
    wait_for(lambda: _labels_everywhere(nodes, want), 15, "the new devices listed everywhere")
    _reach_all(nodes, agents)

    # A registration the new master lacks (as an acknowledged write lost in an asynchronous
    # failover): the node holding the device writes it again, same label.
    lost = agents[0]
    holder = _devices(nodes[0])[lost.name]["node"]
    for args in (("DEL", "tether:dev:" + lost.name), ("HDEL", "tether:labels", lost.label),
                 ("SREM", "tether:nodedevs:" + holder, lost.name),
                 ("SREM", "tether:devices", lost.name)):
        _cmd(replica.port, *args)
    wait_for(lambda: _cmd(replica.port, "HGET", "tether:labels", lost.label) ==
             lost.name.encode(), 15, "the holder to write the lost record again", interval=0.1)
    wait_for(lambda: _labels_everywhere(nodes, want), 15, "every label after the repair")
    _reach_all(nodes, agents)
    for n in nodes:
        check(n.proc.alive(), "%s died" % n.name)
    print("failover: promoted after %.1f s, both nodes on the new master after %.1f s, every "
          "label listed after %.1f s" % (t_promoted, t_followed, t_labels))


def test_sentinel_lost_write(t):
    """Writes the old master acknowledged and never replicated: a device registered then keeps
    its label (its node writes it again to the new master); a device whose label the new
    master gave to another name meanwhile is closed and registers again with a new label. The
    sentinels' failover-timeout is 60 s here: with less they would point the replica at the
    master itself, around our proxy."""
    master, replica, sentinels = _setup(t, link=True, failover_timeout=60000)
    low, high = _free_range_all(t)
    nodes = [_node(t, sentinels, "node-%c" % c, "127.0.0.%d" % (2 + i), (low, high))
             for i, c in enumerate("ab")]
    for n in nodes:
        wait_for(lambda: "redis master is 127.0.0.1:%d" % master.port in n.proc.stderr_text(),
                 10, "%s to log its master" % n.name)

    def dev(node, ident):
        svc = t.http_service(big_size=1024, ident=ident)
        a = t.agent(node, http=svc.port, server=node.url + "/?tether-redirected=1")
        a.ident = ident
        return a

    before = dev(nodes[1], "before")
    wait_for(lambda: _cmd(replica.port, "HGET", "tether:labels", before.label) ==
             before.name.encode(), 10, "the replica to have the first device")
    # From here on the replica gets nothing from the master.
    replica.link.held.set()
    lost = dev(nodes[0], "lost")
    clash = dev(nodes[1], "clash")
    for a in (lost, clash):
        eq(_cmd(master.port, "HGET", "tether:labels", a.label), a.name.encode(),
           "the master's claim of %s's label" % a.name)
        eq(_cmd(replica.port, "HGET", "tether:labels", a.label), None,
           "the replica's claim of %s's label (replication held)" % a.name)
    # The clash's label goes to another name on the replica (as if the new master had given it
    # to a device that registered right after the promotion).
    _cmd(replica.port, "HSET", "tether:labels", clash.label, "someone-else")
    master.proc.stop(9)
    wait_for(lambda: all(_master_of(s) == replica.port for s in sentinels), 40,
             "the sentinels to promote the replica", interval=0.1)
    for n in nodes:
        wait_for(lambda: (_metric(n, "tether_redis_master_changes_total") or 0) >= 1, 30,
                 "%s to follow the new master" % n.name, interval=0.1)
    # The lost registration is back, same label, through its holder's repair.
    want = {before.name: before.label, lost.name: lost.label}
    wait_for(lambda: _labels_everywhere(nodes, want), 20,
             "the lost registration back with its label", interval=0.2)
    eq(_cmd(replica.port, "HGET", "tether:labels", lost.label), lost.name.encode(),
       "the new master's claim of the lost device's label")
    _reach_all(nodes, [before, lost])
    # The clash: closed, counted, registered again with another label.
    old_label = clash.label
    clash.wait_ready(timeout=30)
    check(clash.label != old_label, "the clashing device kept a label another name holds")
    eq(_cmd(replica.port, "HGET", "tether:labels", old_label), b"someone-else",
       "the new master's record of the disputed label")
    conflicts = sum(_metric(n, "tether_redis_repair_conflicts_total") or 0 for n in nodes)
    eq(conflicts, 1, "repair conflicts counted")
    check("label or port held by another device in redis" in nodes[1].proc.stderr_text(),
          "the clash's node does not log it")
    want[clash.name] = clash.label
    wait_for(lambda: _labels_everywhere(nodes, want), 20, "every device listed after the repair")
    _reach_all(nodes, [before, lost, clash])


def test_sentinel_all_down_at_start(t):
    """Mirrors redis:// unreachable at start: a runtime failure, exit 1, one line naming the
    sentinels' answer."""
    dead = [free_port() for _ in range(3)]
    url = "redis-sentinel://" + ",".join("127.0.0.1:%d" % p for p in dead) + "/mymaster"
    r = run_cli([TETHERD, "--listen", "127.0.0.1:%d" % free_port(), "--admin-listen",
                 "127.0.0.1:%d" % free_port(), "--data-dir", t.mkdtemp("d"), "--token", "x",
                 "--redis", url, "--node-id", "a", "--advertise", "ws://127.0.0.1:1"],
                timeout=15)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    eq(r.returncode, 1, "exit status with every sentinel down (stderr %r)" % r.stderr)
    eq(len(lines), 1, "stderr lines with every sentinel down (%r)" % r.stderr)
    check("sentinel" in lines[0] and "mymaster" in lines[0],
          "the error does not name the sentinels and the master: %r" % lines[0])


class _FakeSentinel:
    """Answers every SENTINEL get-master-addr-by-name with a fixed address (a replica's)."""

    def __init__(self, t, port):
        self.answer = port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        t.on_cleanup(self.close)
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.settimeout(2)
                try:
                    c.recv(4096)
                    p = str(self.answer).encode()
                    c.sendall(b"*2\r\n$9\r\n127.0.0.1\r\n$%d\r\n%s\r\n" % (len(p), p))
                    c.recv(4096)
                except OSError:
                    pass

    def close(self):
        self.stop = True
        self.sock.close()


def test_sentinel_names_a_replica(t):
    """A sentinel naming a replica (stale or wrong): ROLE says slave, the node refuses it."""
    master = _Redis(t, "master")
    replica = _Redis(t, "replica", replicaof=master.port)
    fake = _FakeSentinel(t, replica.port)
    r = run_cli([TETHERD, "--listen", "127.0.0.1:%d" % free_port(), "--admin-listen",
                 "127.0.0.1:%d" % free_port(), "--data-dir", t.mkdtemp("d"), "--token", "x",
                 "--redis", "redis-sentinel://127.0.0.1:%d" % fake.port, "--node-id", "a",
                 "--advertise", "ws://127.0.0.1:1"], timeout=15)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    eq(r.returncode, 1, "exit status with a replica named (stderr %r)" % r.stderr)
    eq(len(lines), 1, "stderr lines with a replica named (%r)" % r.stderr)
    check("not the master" in lines[0], "the error does not say it: %r" % lines[0])


def test_sentinel_readonly_master_demoted(t):
    """The master the node uses is demoted behind its back (REPLICAOF, its clients kept, the
    sentinel still naming it): the next write gets READONLY, the node asks the sentinel again,
    refuses the demoted server (ROLE) while the sentinel names it, and moves to the new master
    once the sentinel names that; the device keeps its label."""
    a = _Redis(t, "a")
    b = _Redis(t, "b", replicaof=a.port)
    wait_for(lambda: b"master_link_status:up" in _cmd(b.port, "INFO", "replication"), 30,
             "b to sync with a")
    fake = _FakeSentinel(t, a.port)
    low, high = _free_range_all(t)
    port = free_port()
    node = Relay(t, port=port, tcp_ports=(low, high), grace="60s",
                 extra=["--redis", "redis-sentinel://127.0.0.1:%d" % fake.port, "--node-id", "n",
                        "--advertise", "ws://127.0.0.1:%d" % port, "--tcp-bind", "127.0.0.2"])
    node.name = "n"
    svc = t.http_service(big_size=1024, ident="demoted")
    dev = t.agent(node, http=svc.port)
    dev.ident = "demoted"
    want = {dev.name: dev.label}
    wait_for(lambda: _cmd(b.port, "HGET", "tether:labels", dev.label) == dev.name.encode(), 10,
             "b to have the device")
    eq(_cmd(b.port, "REPLICAOF", "NO", "ONE"), "+OK", "b promoted")
    eq(_cmd(a.port, "REPLICAOF", "127.0.0.1", str(b.port)), "+OK", "a demoted")
    wait_for(lambda: "refused a write (READONLY)" in node.proc.stderr_text(), 10,
             "the node to get READONLY from the demoted master")
    # The node asks the sentinel again and refuses the demoted server it still names (ROLE):
    # the synchronous connection logs "is not the master"; the asynchronous one (the beat's,
    # which logs its state changes once) stays down however often it tries (every 0.5-2 s).
    time.sleep(2.5)
    check("is not the master" in node.proc.stderr_text() or
          _metric(node, "tether_cluster_redis_async_up") == 0,
          "the node did not refuse the demoted server the sentinel still names")
    eq(_metric(node, "tether_redis_master_changes_total"), 0, "master changes before")
    fake.answer = b.port
    wait_for(lambda: (_metric(node, "tether_redis_master_changes_total") or 0) == 1, 15,
             "the node to move to the new master", interval=0.1)
    check("redis master is 127.0.0.1:%d (was 127.0.0.1:%d)" % (b.port, a.port)
          in node.proc.stderr_text(), "the node does not log its new master")
    wait_for(lambda: _labels_everywhere([node], want), 10, "the device listed with its label")
    _reach_all([node], [dev])
    # and a new device registers on the new master
    svc2 = t.http_service(big_size=1024, ident="after")
    dev2 = t.agent(node, http=svc2.port)
    dev2.ident = "after"
    eq(_cmd(b.port, "HGET", "tether:labels", dev2.label), dev2.name.encode(),
       "the new master's claim of the new device's label")
    _reach_all([node], [dev, dev2])


def test_sentinel_password(t):
    """The URL's password is the master's; a sentinel with the same requirepass gets it when it
    answers NOAUTH. A wrong password: exit 1, one line."""
    master = _Redis(t, "master", extra=["--requirepass", "s3cret"])
    sentinel = _Sentinel(t, 0, master.port,
                         extra="sentinel auth-pass %s s3cret\nrequirepass s3cret\n" % MASTER)
    low, high = _free_range_all(t)
    port = free_port()
    node = Relay(t, port=port, tcp_ports=(low, high), grace="60s",
                 extra=["--redis", "redis-sentinel://:s3cret@127.0.0.1:%d" % sentinel.port,
                        "--node-id", "n", "--advertise", "ws://127.0.0.1:%d" % port,
                        "--tcp-bind", "127.0.0.2"])
    node.name = "n"
    wait_for(lambda: "redis master is 127.0.0.1:%d" % master.port in node.proc.stderr_text(),
             10, "the node to log its master")
    check("s3cret" not in node.proc.stderr_text(), "the password is in the log")
    svc = t.http_service(big_size=1024, ident="pw")
    dev = t.agent(node, http=svc.port)
    dev.ident = "pw"
    _reach_all([node], [dev])
    r = run_cli([TETHERD, "--listen", "127.0.0.1:%d" % free_port(), "--admin-listen",
                 "127.0.0.1:%d" % free_port(), "--data-dir", t.mkdtemp("d"), "--token", "x",
                 "--redis", "redis-sentinel://:wrong@127.0.0.1:%d" % sentinel.port,
                 "--node-id", "m", "--advertise", "ws://127.0.0.1:1"], timeout=15)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    eq(r.returncode, 1, "exit status with a wrong password (stderr %r)" % r.stderr)
    eq(len(lines), 1, "stderr lines with a wrong password (%r)" % r.stderr)
    check("wrong" not in lines[0], "the password is in the error line: %r" % lines[0])


def test_sentinel_url_errors(t):
    for url, want in (("redis-sentinel://", "no host"),
                      ("redis-sentinel://127.0.0.1:1,,127.0.0.1:2", "no host"),
                      ("redis-sentinel://127.0.0.1:1/my master", "master name"),
                      ("redis-sentinel://127.0.0.1:1/mymaster/16", "database"),
                      ("redis-sentinel://127.0.0.1:0", "--redis"),
                      ("redis-sentinel://u:p@127.0.0.1:1", "PASSWORD")):
        r = run_cli([TETHERD, "--redis", url, "--node-id", "a", "--advertise",
                     "ws://127.0.0.1:1"], timeout=15)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        eq(r.returncode, 2, "exit status for %r (stderr %r)" % (url, r.stderr))
        eq(len(lines), 1, "stderr lines for %r" % url)
        check(want in lines[0], "%r does not name %s" % (lines[0], want))
