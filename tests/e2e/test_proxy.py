"""test_proxy.py - devices behind an HTTP proxy: a real tinyproxy, started here on a free loopback
port with its own config in the test's temp dir, between tether and tetherd. Without and with
Basic authentication (credentials percent-decoded from --proxy), wrong or missing credentials
(an error event naming authentication, retried), a proxy that refuses the CONNECT (ConnectPort,
Deny: a clear error, retried with growing delays), the environment variables as curl reads them
(http_proxy and HTTP_PROXY for ws://, HTTPS_PROXY not, all_proxy as a fallback, NO_PROXY and
no_proxy bypassing, --proxy overriding them; for a wss:// relay, HTTPS_PROXY and https_proxy,
with TLS end to end through the tunnel), a redirect followed through the proxy with a new
CONNECT, and --proxy usage errors. That traffic went through the proxy is read in tinyproxy's log
(its CONNECT lines); that it did not, from the same log staying free of them."""

import json
import os
import re
import subprocess

from lib import (TETHER, Proc, RedirectServer, check, eq, free_port, port_open, run_cli, wait_for,
                 which)


class TinyProxy:
    """tinyproxy in the foreground (-d) on 127.0.0.1:port. connect_ports: the ports CONNECT may
    reach (tinyproxy allows every port when the list is empty); auth: (user, password) for
    BasicAuth; deny: refuse 127.0.0.1 (a Deny rule) instead of allowing it."""

    def __init__(self, env, connect_ports=(), auth=None, deny=False):
        exe = which("tinyproxy")
        check(exe, "tinyproxy is not installed (scripts/deps.sh test installs it)")
        self.port = free_port()
        d = env.mkdtemp("tinyproxy")
        self.log_path = os.path.join(d, "tinyproxy.log")
        conf = os.path.join(d, "tinyproxy.conf")
        lines = ["Port %d" % self.port, "Listen 127.0.0.1", "Timeout 120", "MaxClients 50",
                 'PidFile "%s"' % os.path.join(d, "tinyproxy.pid"),
                 'LogFile "%s"' % self.log_path, "LogLevel Info",
                 "Deny 127.0.0.1" if deny else "Allow 127.0.0.1"]
        lines += ["ConnectPort %d" % p for p in connect_ports]
        if auth:
            lines.append("BasicAuth %s %s" % auth)
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = Proc(env, "tinyproxy", [exe, "-d", "-c", conf])
        wait_for(self._up, 30, "tinyproxy to listen on 127.0.0.1:%d" % self.port)

    def _up(self):
        check(self.proc.alive(), "tinyproxy exited at start: %s" % self.proc.stderr_tail(10))
        return port_open(self.port)

    def url(self, userinfo=None):
        return "http://%s127.0.0.1:%d" % (userinfo + "@" if userinfo else "", self.port)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def connects(self):
        """The targets of the CONNECT requests tinyproxy logged, in order ("127.0.0.1:8080")."""
        return re.findall(r"Request \(file descriptor \d+\): CONNECT (\S+) HTTP/1\.[01]",
                          self.log())


def _events(agent, kind, n, mentions=None, timeout=30):
    """Waits for n --json events of kind (whose message contains mentions, if given) and returns
    their messages."""
    out, start = [], 0
    for _ in range(n):
        i, line = agent.proc.wait_line(
            lambda l: '"event":"%s"' % kind in l and (mentions is None or mentions in l), timeout,
            start, "an %s event%s" % (kind, " mentioning %r" % mentions if mentions else ""))
        out.append(json.loads(line)["message"])
        start = i + 1
    return out


def _page_through_relay(relay, agent):
    eq(relay.request("GET", "/whoami", label=agent.label)[:3:2], (200, b"device"),
       "the device's page through the relay")


def _no_secret_in(agent, secrets):
    text = agent.proc.stderr_text() + "\n".join(agent.proc.lines)
    for s in secrets:
        check(s not in text, "the agent printed the proxy password %r" % s)


def test_device_through_proxy(t):
    relay = t.relay()
    proxy = TinyProxy(t, connect_ports=[relay.port])
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port, extra=["--proxy", proxy.url()])
    _page_through_relay(relay, agent)
    eq(proxy.connects(), ["127.0.0.1:%d" % relay.port], "CONNECTs in tinyproxy's log")
    # A download through the tunnel.
    st, _, body = relay.request("GET", "/big", label=agent.label)
    eq((st, len(body)), (200, 1024), "download through the proxy")


def test_proxy_basic_auth(t):
    relay = t.relay()
    proxy = TinyProxy(t, connect_ports=[relay.port], auth=("alice", "s3cret42"))
    svc = t.http_service(big_size=1024)
    # "%65" is "e": the password is percent-decoded before it is sent.
    agent = t.agent(relay, http=svc.port,
                    extra=["--proxy", proxy.url("alice:s3cr%65t42"), "--log-level", "debug"])
    _page_through_relay(relay, agent)
    eq(proxy.connects(), ["127.0.0.1:%d" % relay.port], "CONNECTs in tinyproxy's log")
    _no_secret_in(agent, ["s3cret42", "s3cr%65t42", "czNjcmV0NDI"])


def test_proxy_wrong_or_missing_credentials(t):
    relay = t.relay()
    proxy = TinyProxy(t, connect_ports=[relay.port], auth=("alice", "s3cret42"))
    svc = t.http_service(big_size=1024)
    wrong = t.agent(relay, http=svc.port, json_mode=True, wait=False,
                    extra=["--proxy", proxy.url("alice:badpass77"), "--log-level", "debug"])
    for m in _events(wrong, "error", 2, "authentication"):
        check("proxy authentication failed" in m, "error for wrong credentials: %r" % m)
    check(wrong.proc.alive(), "the agent gave up after a proxy refused its credentials")
    check(not any('"ready"' in l for l in wrong.proc.lines), "registered with wrong credentials")
    _no_secret_in(wrong, ["badpass77"])
    wrong.stop()
    missing = t.agent(relay, http=svc.port, json_mode=True, wait=False,
                      extra=["--proxy", proxy.url()])
    for m in _events(missing, "error", 2, "authentication"):
        check("proxy requires authentication" in m, "error without credentials: %r" % m)
    check(missing.proc.alive(), "the agent gave up after a proxy asked for credentials")


def test_proxy_refusal_is_retried_with_back_off(t):
    relay = t.relay()
    proxy = TinyProxy(t, connect_ports=[443])  # not the relay's port
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port, wait=False, extra=["--proxy", proxy.url()])
    delays = []

    def refusals():
        # "<timestamp> tether error: ..." (the timestamp since the agent's event lines got one)
        lines = [l for l in agent.proc.stderr_text().splitlines()
                 if re.match(r"^\S+ tether error: ", l)]
        for l in lines:
            check("proxy refused CONNECT: 403" in l, "error line %r" % l)
        delays[:] = [float(m.group(1)) for m in
                     (re.search(r"\(retrying in ([0-9.]+) s\)$", l) for l in lines) if m]
        return len(delays) >= 2

    wait_for(refusals, 30, "two 'proxy refused CONNECT' errors on stderr")
    check(delays[1] > delays[0], "the retry delays do not grow: %r" % delays)
    check(agent.proc.alive(), "the agent gave up after a refused CONNECT")
    check(len(proxy.connects()) >= 2, "tinyproxy saw %r" % proxy.connects())
    eq(agent.proc.lines, [], "stdout of an agent that never registered")


def test_proxy_deny_rule(t):
    relay = t.relay()
    proxy = TinyProxy(t, deny=True)
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port, json_mode=True, wait=False,
                    extra=["--proxy", proxy.url()])
    for m in _events(agent, "error", 2):
        check(m.startswith("proxy refused CONNECT: 403"), "error for a Deny rule: %r" % m)
    check(agent.proc.alive(), "the agent gave up after a refused CONNECT")


def test_proxy_from_environment(t):
    relay = t.relay()
    proxy = TinyProxy(t, connect_ports=[relay.port])
    svc = t.http_service(big_size=1024)
    # ws:// is curl's http://: http_proxy is read, HTTPS_PROXY is for wss:// only.
    agent = t.agent(relay, http=svc.port, env_vars={"http_proxy": proxy.url(),
                                                    "HTTPS_PROXY": "http://127.0.0.1:1"})
    _page_through_relay(relay, agent)
    eq(len(proxy.connects()), 1, "CONNECTs after http_proxy")
    agent.stop()
    # all_proxy is the fallback.
    agent = t.agent(relay, http=svc.port, env_vars={"ALL_PROXY": proxy.url()})
    _page_through_relay(relay, agent)
    eq(len(proxy.connects()), 2, "CONNECTs after ALL_PROXY")
    agent.stop()
    # HTTPS_PROXY is for wss:// only: a ws:// relay is reached directly.
    agent = t.agent(relay, http=svc.port, env_vars={"HTTPS_PROXY": proxy.url()})
    _page_through_relay(relay, agent)
    eq(len(proxy.connects()), 2, "CONNECTs after HTTPS_PROXY alone for ws://")
    agent.stop()
    # HTTP_PROXY (upper case) is honoured for ws:// (SPEC), after http_proxy.
    agent = t.agent(relay, http=svc.port, env_vars={"HTTP_PROXY": proxy.url()})
    _page_through_relay(relay, agent)
    eq(len(proxy.connects()), 3, "CONNECTs after HTTP_PROXY for ws://")


def test_no_proxy_bypasses_the_proxy(t):
    relay = t.relay()
    svc = t.http_service(big_size=1024)
    dead = "http://127.0.0.1:%d" % free_port()  # a proxy that is not there
    for no_proxy in ({"NO_PROXY": "localhost,127.0.0.1"}, {"no_proxy": "example.com, 127.0.0.0/8"},
                     {"NO_PROXY": "*"}):
        env_vars = {"http_proxy": dead}
        env_vars.update(no_proxy)
        agent = t.agent(relay, http=svc.port, env_vars=env_vars)
        _page_through_relay(relay, agent)
        agent.stop()
    # A list that does not match leaves the proxy in use.
    proxy = TinyProxy(t, connect_ports=[relay.port])
    agent = t.agent(relay, http=svc.port, env_vars={"http_proxy": proxy.url(),
                                                    "NO_PROXY": "localhost,.example.com"})
    _page_through_relay(relay, agent)
    eq(len(proxy.connects()), 1, "CONNECTs when NO_PROXY does not match")


def test_proxy_flag_overrides_environment(t):
    relay = t.relay()
    proxy = TinyProxy(t, connect_ports=[relay.port])
    svc = t.http_service(big_size=1024)
    dead = "http://127.0.0.1:%d" % free_port()
    agent = t.agent(relay, http=svc.port, extra=["--proxy", proxy.url()],
                    env_vars={"http_proxy": dead, "all_proxy": dead})
    _page_through_relay(relay, agent)
    eq(len(proxy.connects()), 1, "CONNECTs with --proxy over http_proxy")
    agent.stop()
    # --proxy '' connects directly whatever the environment says.
    agent = t.agent(relay, http=svc.port, extra=["--proxy", ""], env_vars={"http_proxy": dead})
    _page_through_relay(relay, agent)
    # --noproxy overrides NO_PROXY, which would otherwise bypass --proxy too (as in curl).
    agent.stop()
    agent = t.agent(relay, http=svc.port, extra=["--proxy", proxy.url(), "--noproxy", ""],
                    env_vars={"NO_PROXY": "127.0.0.1"})
    _page_through_relay(relay, agent)
    eq(len(proxy.connects()), 2, "CONNECTs with --noproxy ''")


def test_redirect_followed_through_proxy(t):
    relay = t.relay()
    redirect = RedirectServer(t, "ws://127.0.0.1:%d/" % relay.port, 307)
    proxy = TinyProxy(t, connect_ports=[relay.port, redirect.port])
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port, server="ws://127.0.0.1:%d/" % redirect.port,
                    extra=["--proxy", proxy.url()])
    _page_through_relay(relay, agent)
    check(redirect.hits >= 1, "the agent never asked the redirecting server")
    eq(proxy.connects()[:2], ["127.0.0.1:%d" % redirect.port, "127.0.0.1:%d" % relay.port],
       "a CONNECT for the first server, then a new one for the redirect's target")


def test_proxy_usage_errors(t):
    base = [TETHER, "--server", "ws://127.0.0.1:1", "--name", "d", "--token", "t",
            "--http", "127.0.0.1:80"]
    for proxy, mention in (("https://u:hunter2@proxy:443", "HTTPS proxies are not supported"),
                           ("socks5://proxy:1080", "SOCKS proxies are not supported"),
                           ("ftp://proxy:21", "only http://"),
                           ("http://u:hunter2@:3128", "bad proxy URL")):
        r = run_cli(base + ["--proxy", proxy])
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        eq(r.returncode, 2, "exit status for --proxy %s (stderr %r)" % (proxy, r.stderr))
        eq(len(lines), 1, "stderr lines for --proxy %s (%r)" % (proxy, r.stderr))
        check("--proxy" in lines[0] and mention in lines[0],
              "error for --proxy %s: %r (want %r)" % (proxy, lines[0], mention))
        check("hunter2" not in r.stderr, "the password was printed: %r" % r.stderr)


def _throwaway_tls(env):
    """A CA and a certificate for 127.0.0.1 and *.localhost signed by it, made with the openssl
    command in the test's temp dir. Returns (ca, cert, key) paths."""
    d = env.mkdtemp("tls")
    p = lambda n: os.path.join(d, n)

    def run(*argv):
        subprocess.run(["openssl"] + list(argv), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=e2e CA",
        "-keyout", p("ca.key"), "-out", p("ca.pem"))
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", p("srv.key"),
        "-out", p("srv.csr"))
    with open(p("ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:*.localhost\n")
    run("x509", "-req", "-days", "2", "-in", p("srv.csr"), "-CA", p("ca.pem"), "-CAkey",
        p("ca.key"), "-CAcreateserial", "-extfile", p("ext"), "-out", p("srv.pem"))
    return p("ca.pem"), p("srv.pem"), p("srv.key")


def test_wss_relay_through_https_proxy(t):
    ca, cert, key = _throwaway_tls(t)
    tls_port = free_port()
    relay = t.relay(extra=["--tls-listen", "127.0.0.1:%d" % tls_port, "--tls-cert", cert,
                           "--tls-key", key])
    wait_for(lambda: port_open(tls_port), 30, "tetherd to listen on its TLS port")
    proxy = TinyProxy(t, connect_ports=[tls_port])
    svc = t.http_service(big_size=1024)
    server = "wss://127.0.0.1:%d" % tls_port
    dead = "http://127.0.0.1:%d" % free_port()
    # wss:// is curl's https://: HTTPS_PROXY is read (http_proxy is not, for wss://).
    agent = t.agent(relay, http=svc.port, server=server, extra=["--ca-file", ca],
                    env_vars={"HTTPS_PROXY": proxy.url(), "http_proxy": dead})
    _page_through_relay(relay, agent)
    eq(proxy.connects(), ["127.0.0.1:%d" % tls_port], "CONNECTs after HTTPS_PROXY")
    agent.stop()
    # https_proxy comes before HTTPS_PROXY; TLS runs end to end inside the tunnel.
    agent = t.agent(relay, http=svc.port, server=server, extra=["--ca-file", ca],
                    env_vars={"https_proxy": proxy.url(), "HTTPS_PROXY": dead})
    _page_through_relay(relay, agent)
    eq(len(proxy.connects()), 2, "CONNECTs after https_proxy")
    agent.stop()
    # NO_PROXY applies to wss:// relays too.
    agent = t.agent(relay, http=svc.port, server=server, extra=["--ca-file", ca],
                    env_vars={"HTTPS_PROXY": dead, "NO_PROXY": "127.0.0.1"})
    _page_through_relay(relay, agent)
    eq(len(proxy.connects()), 2, "CONNECTs with the relay in NO_PROXY")
