"""test_small_things.py - issue 14's "small things users expect": a TCP-only device has no URL in
the admin API ("url": null, the key kept as SPEC's device object lists it) and the dashboard
links no offline device's URL (the relay's 503); /metrics with tether_build_info, the standard
process series read from /proc and the --tls-cert certificate's expiry (updated on SIGHUP);
the man pages' synopses with --config and a --json example as long as what the agent prints;
"usage:" the same way in every program and subcommand."""

import calendar
import http.client
import json
import os
import re
import signal
import subprocess
import time

from lib import ROOT, TETHER, TETHERD, check, eq, free_port, run_cli, wait_for

MAN_TETHER = os.path.join(ROOT, "docs", "man", "tether.1")
MAN_TETHERD = os.path.join(ROOT, "docs", "man", "tetherd.8")


def _admin(relay, path):
    c = http.client.HTTPConnection("127.0.0.1", relay.admin_port, timeout=30)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def _api(relay, path):
    st, body = _admin(relay, path)
    eq(st, 200, "status of GET %s (%r)" % (path, body[:200]))
    return json.loads(body)


def _metrics(relay):
    """{series with labels: value} of the relay's /metrics."""
    st, body = _admin(relay, "/metrics")
    eq(st, 200, "status of /metrics")
    out = {}
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        out[name] = float(value)
    return out


# ---------------------------------------------------------------- the API's url

def test_tcp_only_device_has_no_url_in_the_api(t):
    relay = t.relay()
    echo = t.tcp_echo()
    svc = t.http_service()
    tcp_only = t.agent(relay, tcp={"echo": echo.port})
    web = t.agent(relay, http=svc.port, tcp={"echo": echo.port})
    ds = {d["name"]: d for d in _api(relay, "/api/devices")["devices"]}
    d = ds[tcp_only.name]
    check("url" in d, "the url key is kept (SPEC's device object): %r" % d)
    check(d["url"] is None, "a TCP-only device's url is null, not a URL to nothing: %r" % d["url"])
    eq([s["kind"] for s in d["services"]], ["tcp"], "its services")
    one = _api(relay, "/api/devices/%s" % tcp_only.name)
    check("url" in one and one["url"] is None, "GET /api/devices/NAME: url %r" % one.get("url"))
    w = ds[web.name]
    eq(w["url"], "http://%s.localhost:%d" % (web.label, relay.port), "an HTTP device's url")
    # the relay answers its label with no service behind it: the null told the truth
    st, _, _ = relay.request("GET", "/", label=tcp_only.label)
    check(st != 200, "the TCP-only device's label serves nothing (%d)" % st)
    # offline, within the grace period: still null
    tcp_only.stop()
    wait_for(lambda: not _api(relay, "/api/devices/%s" % tcp_only.name)["online"], 30,
             "the device to be offline")
    eq(_api(relay, "/api/devices/%s" % tcp_only.name)["url"], None, "url once offline")


def test_cluster_tcp_only_device_has_no_url_on_another_node(t):
    """A node lists a device held by another node from what the holder published: a TCP-only
    device has no URL there either; an HTTP one has this node's URL."""
    from test_cluster import _cluster, _holds
    _, (a, b) = _cluster(t)
    echo = t.tcp_echo()
    svc = t.http_service()
    stay = a.url + "/?tether-redirected=1"  # no redirect to the least-loaded node
    tcp_only = t.agent(a, tcp={"echo": echo.port}, server=stay)
    web = t.agent(a, http=svc.port, server=stay)
    for ag in (tcp_only, web):
        wait_for(lambda: _holds(a, ag.name), 10, "node a to hold %s" % ag.name)

    def published():
        ds = {d["name"]: d for d in _api(b, "/api/devices")["devices"]}
        d, w = ds.get(tcp_only.name), ds.get(web.name)
        return (d and w and d["online"] and w["online"] and d["services"] and
                w["url"] is not None and d["url"] is None and d)
    d = wait_for(published, 15, "node b to list both devices with their services")
    check("url" in d and d["url"] is None, "node b: a TCP-only device's url %r" % d.get("url"))
    w = _api(b, "/api/devices/%s" % web.name)
    eq(w["url"], "http://%s.localhost:%d" % (web.label, b.port), "node b: an HTTP device's url")
    eq(_api(b, "/api/devices/%s" % tcp_only.name)["url"], None, "node b: one device's url")


def test_dashboard_does_not_link_an_offline_devices_url(t):
    relay = t.relay()
    svc = t.http_service()
    on = t.agent(relay, http=svc.port)
    off = t.agent(relay, http=svc.port)
    url_on = "http://%s.localhost:%d" % (on.label, relay.port)
    url_off = "http://%s.localhost:%d" % (off.label, relay.port)
    off.stop()
    wait_for(lambda: not _api(relay, "/api/devices/%s" % off.name)["online"], 30,
             "the device to be offline")
    st, page = _admin(relay, "/")
    eq(st, 200, "dashboard status")
    page = page.decode()
    check('href="%s"' % url_on in page, "the online device's URL is a link")
    check('href="%s"' % url_off not in page, "no link to the offline device's 503")
    # the device's row (its name also appears in the page's "showing A ... B" line)
    rows = [r for r in page.split("<tr") if off.name in r and "<td" in r]
    eq(len(rows), 1, "rows naming the offline device")
    row = rows[0]
    check(url_off in row and "(offline)" in row, "the offline URL as text, marked: %r" % row)
    eq(relay.request("GET", "/", label=off.label)[0], 503, "what the link would have led to")


# ---------------------------------------------------------------- /metrics

def _proc_limits_soft(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return None


def test_metrics_build_info_and_process_series(t):
    before = time.time()
    relay = t.relay()
    svc = t.http_service()
    t.agent(relay, http=svc.port)
    m = _metrics(relay)
    version = run_cli([TETHERD, "--version"]).stdout.split()[-1]
    info = [(k, v) for k, v in m.items() if k.startswith("tether_build_info{")]
    eq(len(info), 1, "one tether_build_info series: %r" % info)
    k, v = info[0]
    eq(v, 1.0, "tether_build_info's value")
    lab = re.match(r'^tether_build_info\{version="([^"]+)"(?:,commit="([0-9a-f]{7,40})")?\}$', k)
    check(lab, "tether_build_info's labels: %r" % k)
    eq(lab.group(1), version, "the version label (tetherd --version says %s)" % version)
    pid = relay.proc.p.pid
    for name in ("process_open_fds", "process_max_fds", "process_resident_memory_bytes",
                 "process_start_time_seconds", "process_cpu_seconds_total"):
        check(name in m, "%s in /metrics" % name)
    nfds = len(os.listdir("/proc/%d/fd" % pid))
    check(1 <= m["process_open_fds"] <= m["process_max_fds"], "open fds %r" % m["process_open_fds"])
    check(abs(m["process_open_fds"] - nfds) <= 16,
          "process_open_fds %d near /proc's count %d" % (m["process_open_fds"], nfds))
    eq(m["process_max_fds"], float(_proc_limits_soft(pid)), "process_max_fds (soft limit)")
    check(m["process_resident_memory_bytes"] > 1024 * 1024, "rss %r" % m)
    check(before - 5 <= m["process_start_time_seconds"] <= time.time() + 1,
          "start time %r, the test started at %r" % (m["process_start_time_seconds"], before))
    check(m["process_cpu_seconds_total"] >= 0, "cpu seconds")
    # counters and gauges move as they should
    m2 = _metrics(relay)
    check(m2["process_cpu_seconds_total"] >= m["process_cpu_seconds_total"], "cpu is a counter")
    eq(m2["process_start_time_seconds"], m["process_start_time_seconds"], "start time is fixed")
    check(not any(k.startswith("tether_tls_cert_expiry") for k in m), "no TLS, no expiry series")
    st, body = _admin(relay, "/metrics")
    text = body.decode()
    check("# TYPE process_cpu_seconds_total counter" in text, "cpu's TYPE")
    check("# TYPE tether_build_info gauge" in text, "build info's TYPE")


def _openssl(*args):
    r = subprocess.run(["openssl"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60, text=True)
    check(r.returncode == 0, "openssl %s: %s" % (" ".join(args[:2]), r.stderr[-400:]))
    return r.stdout


def _self_signed(t, name, days):
    d = t.mkdtemp("cert")
    crt, key = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", crt, "-days", str(days), "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,DNS:*.localhost,IP:127.0.0.1")
    out = _openssl("x509", "-in", crt, "-noout", "-enddate").strip()
    not_after = calendar.timegm(time.strptime(out.split("=", 1)[1], "%b %d %H:%M:%S %Y %Z"))
    return crt, key, not_after


def _copy(src, dst):
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data)


def test_metrics_tls_certificate_expiry_and_its_reload(t):
    crt1, key1, after1 = _self_signed(t, "first", 3)
    crt2, key2, after2 = _self_signed(t, "second", 40)
    live = t.mkdtemp("live")
    crt, key = os.path.join(live, "tls.crt"), os.path.join(live, "tls.key")
    _copy(crt1, crt)
    _copy(key1, key)
    relay = t.relay(extra=["--tls-listen", "127.0.0.1:%d" % free_port(), "--tls-cert", crt,
                           "--tls-key", key])
    series = 'tether_tls_cert_expiry_timestamp_seconds{file="%s"}' % crt
    m = _metrics(relay)
    eq(m.get(series), float(after1), "expiry = the certificate's notAfter (%s)" % series)
    _copy(crt2, crt)
    _copy(key2, key)
    relay.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: _metrics(relay).get(series) == float(after2), 30,
             "the expiry of the certificate reloaded on SIGHUP (%d)" % after2)
    check(after2 - after1 > 30 * 86400, "the two certificates differ")


# ---------------------------------------------------------------- docs and usage lines

def _synopsis(path):
    with open(path) as f:
        text = f.read()
    m = re.search(r"^\.SH SYNOPSIS\n(.*?)^\.SH ", text, re.S | re.M)
    check(m, "%s has a SYNOPSIS" % path)
    return m.group(1)


def test_man_page_synopses_name_config(t):
    check("--config" in _synopsis(MAN_TETHER).replace("\\-", "-"), "tether.1 synopsis --config")
    check("--config" in _synopsis(MAN_TETHERD).replace("\\-", "-"), "tetherd.8 synopsis --config")


def test_man_page_json_example_matches_the_agent(t):
    """The man page's --json ready example has the keys the agent prints, service by service."""
    relay = t.relay()
    svc = t.http_service()
    echo = t.tcp_echo()
    a = t.agent(relay, http=svc.port, tcp={"ssh": echo.port}, json_mode=True)
    _, line = a.proc.wait_line(lambda s: s.startswith('{"event":"ready"'), what="a ready event")
    got = json.loads(line)
    with open(MAN_TETHER) as f:
        text = f.read().replace("\\(dq", '"').replace("\\\\", "\\").replace("\\-", "-")
    m = re.search(r'(\{"event":"ready".*?\]\})', text.replace("\n", ""))
    check(m, "tether.1 has a ready event example")
    example = json.loads(m.group(1))
    eq(sorted(example), sorted(got), "the event's keys")
    want = {s["kind"]: sorted(s) for s in got["services"]}
    have = {s["kind"]: sorted(s) for s in example["services"]}
    eq(have, want, "each service's keys in the man page's example")


def test_usage_lines_are_alike(t):
    for argv in ([TETHERD, "--help"], [TETHER, "--help"], [TETHER, "connect", "--help"],
                 [TETHERD, "admin", "--help"], [TETHERD, "token", "--help"]):
        r = run_cli(argv)
        eq(r.returncode, 0, "%s exit status" % " ".join(argv[1:]))
        prog = " ".join([os.path.basename(argv[0])] + argv[1:-1])
        first = r.stdout.splitlines()[0]
        check(first.startswith("usage: %s " % prog), "%r begins 'usage: %s'" % (first, prog))
        check("Usage:" not in r.stdout + r.stderr, "no 'Usage:' in %s --help" % prog)
    for argv in ([TETHERD, "--no-such-flag"], [TETHER, "--no-such-flag"],
                 [TETHER, "connect", "--no-such-flag"], [TETHERD, "admin", "--no-such-flag"],
                 [TETHERD, "token", "--no-such-flag"]):
        r = run_cli(argv)
        eq(r.returncode, 2, "%s exit status" % " ".join(argv[1:]))
        prog = " ".join([os.path.basename(argv[0])] + argv[1:-1])
        # one line, alike for every program: PROG: unknown option '--x' (see [PROG ]--help)
        eq(r.stderr.strip().splitlines(), [r.stderr.strip()], "one line")
        check(re.match(r"^%s: unknown option '--no-such-flag' \(see (%s )?--help\)$" %
                       (re.escape(prog), re.escape(prog)), r.stderr.strip()),
              "the usage error of %s: %r" % (prog, r.stderr))


def _make(*args):
    # as a user types it: not as a sub-make of the `make test` that may be running this suite
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "MAKE_TERMOUT",
                        "MAKE_TERMERR", "MODE")}
    return subprocess.run(["make", "-C", ROOT] + list(args), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120,
                          env=env)


def test_see_also_names_files_make_install_installs(t):
    r = _make("-n", "install", "PREFIX=/usr/local", "DESTDIR=/nonexistent-destdir")
    eq(r.returncode, 0, "make -n install (stderr %r)" % r.stderr[-300:])
    installed = set()
    for line in r.stdout.splitlines():
        words = line.split()
        if words[:1] == ["install"] and "-d" not in words:
            dest = words[-1].rstrip("/")
            for src in words[1:-1]:
                if not src.startswith("-") and src not in ("644", "755"):
                    installed.add(dest + "/" + os.path.basename(src))
    for page in (MAN_TETHER, MAN_TETHERD):
        with open(page) as f:
            text = f.read()
        see = text[text.index(".SH SEE ALSO"):].replace("\\-", "-")
        files = re.findall(r"([\w.-]+\.md)\b", see)
        check(files, "%s's SEE ALSO names the operator's guide" % page)
        for name in files:
            check("/nonexistent-destdir/usr/local/share/doc/tether/" + name in installed,
                  "%s (named in %s) is installed: %r" % (name, os.path.basename(page),
                                                         sorted(installed)))
        check("share/doc/tether" in see, "%s says where" % page)


def _makeflags(*args):
    r = _make("-n", "-p", *args)
    flags = [line for line in r.stdout.splitlines() if line.startswith("MAKEFLAGS")]
    check(flags, "make -p shows MAKEFLAGS")
    return flags[0]


def test_make_builds_in_parallel_unless_told(t):
    jobs = len(os.sched_getaffinity(0))  # what nproc says
    check(re.search(r"(^| )-j%d( |$)" % jobs, _makeflags("build").split("=", 1)[1]),
          "make build runs one job per CPU: %r" % _makeflags("build"))
    check(" -j1" in _makeflags("-j1", "build"), "-j1 is kept")
    check("-j" not in _makeflags("clean").split("=", 1)[1], "make clean is not parallel")


def _cmdlines_naming(port):
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if any(b"127.0.0.1:%d" % port in a for a in cmd):
            out.append(cmd)
    return out


def test_demo_keeps_the_token_out_of_ps(t):
    from lib import Proc
    port, admin = free_port(), free_port()
    env = {"BIN": os.path.dirname(TETHERD), "DEMO_PORT": str(port),
           "DEMO_ADMIN_PORT": str(admin)}
    demo = Proc(t, "demo.sh", [os.path.join(ROOT, "scripts", "demo.sh")], env_vars=env)
    demo.wait_line(lambda l: "Your device is reachable at" in l, 60, 0, "the demo's URL line")
    cmds = _cmdlines_naming(port)
    progs = sorted(os.path.basename(c[0]).decode() for c in cmds)
    check("tetherd" in progs and "tether" in progs, "the demo's relay and agent: %r" % progs)
    for c in cmds:
        check(b"--token" not in c, "a token on a command line: %r" % c)
    demo.send_signal(signal.SIGINT)
    eq(demo.stop(signal.SIGINT, timeout=20), 0, "demo.sh exit status after Ctrl-C")
