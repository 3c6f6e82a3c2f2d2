"""test_cli.py - the command lines of tetherd and tether: --help (usage on stdout, exit 0),
--version, and every flag with a bad value, a missing value or a value where none is taken: one
line on stderr naming the problem, nothing on stdout, exit status 2. Missing required flags of
tether: exit 2. Runtime failures of tetherd at start (a port in use, an address that is not
this machine's, an unreadable tokens file, a data dir that cannot be created or written, a
registry that is not a database): one line, exit 1."""

import os
import re
import shutil
import socket
import subprocess
import tempfile

from lib import TETHER, TETHERD, TestFailure, check, eq, free_port, run_cli, which

# Flags that take no value (everything else named in --help takes one).
NO_VALUE = {"--help", "--version", "--insecure", "--json"}

# tetherd: flag -> values that are wrong whatever else is on the command line. Values are
# chosen to be wrong both while a flag is "not supported yet" and once it is built.
TETHERD_BAD = {
    "--listen": ["nonsense", "127.0.0.1", "127.0.0.1:99999", "1.2.3.4.5:80", "127.0.0.1:0",
                 "example.com:80", ""],
    "--domain": ["bad domain", "-x.example", "a..b", ".example", ""],
    "--public-url": ["ftp://example.com", "http://", "not a url", ""],
    "--tcp-ports": ["30000-20000", "banana", "0-10", "100-70000", "20000-", ""],
    "--tcp-bind": ["example.com", "300.1.1.1", ""],
    "--grace": ["soon", "-5s", "5x", "1.5h", "99999999999999999999d", ""],
    "--data-dir": [""],
    "--token": ["", "two words", "x" * 300],
    "--tokens-file": [""],
    "--admin-listen": ["foo", "127.0.0.1:99999", "127.0.0.1", ""],
    "--log-level": ["loud", "INFO2", ""],
    "--max-streams": ["0", "abc", "70000", "-1", ""],
    "--head-timeout": ["soon", "5x", ""],
    "--idle-timeout": ["forever", "5x", ""],
    "--tls-listen": ["nonsense", "127.0.0.1:99999", ""],
    "--tls-cert": [""],
    "--tls-key": [""],
    "--tls-ticket-rotate": ["0", "500ms", "8d", "1.5s", "soon", ""],
    "--redis": ["", "nope"],
    "--node-id": [""],
    "--advertise": ["", "not a url"],
    "--admin-token": [""],
    "--config": [""],
}

# tether: flag -> bad values (the rest of the command line is valid).
TETHER_BAD = {
    "--server": ["", "ftp://127.0.0.1:1", "ws://", "nonsense", "ws://127.0.0.1:99999"],
    "--name": ["", "two words", "x" * 300],
    "--token": ["", "two words", "x" * 300],
    "--http": ["127.0.0.1:notaport", "BAD=127.0.0.1:80", "x=", "", "web=127.0.0.1:99999"],
    "--tcp": ["127.0.0.1:22", "ssh=127.0.0.1:99999", "ssh=", "SSH=127.0.0.1:22", ""],
    "--proxy": ["ftp://127.0.0.1:3128", "http://", "not a url"],
    "--log-level": ["loud", ""],
}

# Flags of the contract (SPEC.md) that the tables above must cover.
TETHERD_CONTRACT = ["--listen", "--domain", "--public-url", "--tcp-ports", "--tcp-bind",
                    "--grace", "--data-dir", "--token", "--tokens-file", "--tls-listen",
                    "--tls-cert", "--tls-key", "--redis", "--node-id", "--advertise",
                    "--admin-listen", "--admin-token", "--config", "--log-level"]
TETHER_CONTRACT = ["--server", "--name", "--token", "--http", "--tcp", "--proxy", "--ca-file",
                   "--insecure", "--json", "--log-level"]


def _one_line_error(argv, status, mentions):
    """Runs argv and checks: exit status, exactly one non-empty stderr line mentioning one of
    mentions, nothing on stdout. Returns the line."""
    where = " ".join(repr(a) if (not a or " " in a) else a for a in argv[1:])
    if len(where) > 300:
        where = where[:300] + "..."
    try:
        r = run_cli(argv, timeout=15)
    except subprocess.TimeoutExpired:
        raise TestFailure("`%s` was accepted (still running after 15 s)" % where)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    eq(r.returncode, status, "exit status of `%s` (stderr: %r)" % (where, r.stderr[:500]))
    eq(len(lines), 1, "stderr lines of `%s` (%r)" % (where, r.stderr[:500]))
    check(any(m in lines[0] for m in mentions),
          "the error for `%s` names none of %r: %r" % (where, mentions, lines[0]))
    eq(r.stdout, "", "stdout of `%s`" % where)
    return lines[0]


def _names(flag, value):
    """What an error about flag=value must mention: the flag, or the value itself."""
    return [flag] + ([value] if value and len(value) < 60 else [])


def _help_flags(exe):
    r = run_cli([exe, "--help"])
    eq(r.returncode, 0, "exit status of %s --help" % os.path.basename(exe))
    eq(r.stderr, "", "stderr of %s --help" % os.path.basename(exe))
    check("usage" in r.stdout.lower(), "no usage text on stdout: %r" % r.stdout[:200])
    return r.stdout, sorted(set(re.findall(r"(--[a-z][a-z-]*)", r.stdout)))


def _tetherd_base(t):
    return [TETHERD, "--data-dir", t.mkdtemp("data"), "--listen", "127.0.0.1:%d" % free_port(),
            "--admin-listen", "127.0.0.1:%d" % free_port()]


def test_help_and_version(t):
    for exe, name in ((TETHERD, "tetherd"), (TETHER, "tether")):
        text, flags = _help_flags(exe)
        check(len(text.splitlines()) >= 10, "%s --help is too short: %r" % (name, text))
        for f in (TETHERD_CONTRACT if exe == TETHERD else TETHER_CONTRACT):
            check(f in flags, "%s --help does not mention %s" % (name, f))
        # --help wins over the other flags, even required ones missing
        r = run_cli([exe, "--log-level", "debug", "--help"])
        eq((r.returncode, r.stdout), (0, text), "%s --log-level debug --help" % name)
        r = run_cli([exe, "--version"])
        eq(r.returncode, 0, "exit status of %s --version" % name)
        check(re.match(r"^%s \d+\.\d+" % name, r.stdout), "%s --version: %r" % (name, r.stdout))


def test_tetherd_every_flag_with_bad_values_exits_2(t):
    _, flags = _help_flags(TETHERD)
    for f in TETHERD_CONTRACT:
        check(f in TETHERD_BAD, "test table lacks bad values for %s" % f)
    base = _tetherd_base(t)
    for flag, values in TETHERD_BAD.items():
        for v in values:
            _one_line_error(base + ["--token", "x" * 20, flag, v] if flag not in
                            ("--token", "--tokens-file") else base + [flag, v], 2,
                            _names(flag, v))
            # the --flag=VALUE form too
            _one_line_error(base + [flag + "=" + v], 2, _names(flag, v))
    # every flag that takes a value, given without one (last on the line)
    for flag in flags:
        if flag in NO_VALUE:
            continue
        _one_line_error(base + [flag], 2, [flag])
    for flag in ("--help", "--version"):
        _one_line_error(base + [flag + "=yes"], 2, [flag])


def test_tetherd_other_usage_errors_exit_2(t):
    base = _tetherd_base(t)
    cases = [
        (["--no-such-flag"], ["--no-such-flag"]),
        (["--no-such-flag=1"], ["--no-such-flag"]),
        (["stray"], ["stray"]),
        (["-x"], ["-x"]),
        (["--token", "x" * 20, "--tokens-file", t.path("tokens")], ["--token", "--tokens-file"]),
        (["--tls-listen", "127.0.0.1:%d" % free_port()], ["--tls"]),  # needs cert and key
        (sum([["--listen", "127.0.0.1:%d" % (1 + i)] for i in range(20)], []), ["--listen"]),
    ]
    for extra, mentions in cases:
        _one_line_error(base + extra, 2, mentions)


def test_tether_every_flag_with_bad_values_exits_2(t):
    _, flags = _help_flags(TETHER)
    for f in TETHER_CONTRACT:
        check(f in TETHER_BAD or f in NO_VALUE or f == "--ca-file",
              "test table lacks bad values for %s" % f)
    ok = {"--server": "ws://127.0.0.1:1", "--name": "dev1", "--token": "tok",
          "--http": "127.0.0.1:80"}

    def argv(flag, v):
        a = [TETHER]
        for k, val in ok.items():
            if k != flag:
                a += [k, val]
        return a + [flag, v]

    for flag, values in TETHER_BAD.items():
        for v in values:
            _one_line_error(argv(flag, v), 2, _names(flag, v))
    base = argv("--json", "")[:-2]
    for flag in flags:
        if flag in NO_VALUE:
            _one_line_error(base + [flag + "=yes"], 2, [flag])
        else:
            _one_line_error(base + [flag], 2, [flag])


def test_tether_missing_or_repeated_flags_exit_2(t):
    s, n, k, h = (["--server", "ws://127.0.0.1:1"], ["--name", "dev1"], ["--token", "tok"],
                  ["--http", "127.0.0.1:80"])
    cases = [
        ([], ["--server"]),
        (n + k + h, ["--server"]),
        (s + k + h, ["--name"]),
        (s + n + h, ["--token"]),
        (s + n + k, ["--http", "--tcp", "service"]),
        (s + n + k + h + ["--no-such-flag"], ["--no-such-flag"]),
        (s + n + k + h + ["stray"], ["stray"]),
        (s + n + k + h + n, ["--name"]),
        (s + n + k + h + k, ["--token"]),
        (s + n + k + h + ["--tcp", "a=127.0.0.1:1", "--tcp", "a=127.0.0.1:2"], ["a"]),
        (s + n + k + sum([["--http", "127.0.0.1:%d" % (80 + i)] for i in range(9)], []),
         ["service", "--http"]),
        (n + k + h + sum([["--server", "ws://127.0.0.1:%d" % (i + 1)] for i in range(40)], []),
         ["--server"]),
    ]
    for extra, mentions in cases:
        _one_line_error([TETHER] + extra, 2, mentions)


def test_tetherd_port_in_use_exits_1(t):
    for which_flag in ("--listen", "--admin-listen"):
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        try:
            argv = [TETHERD, "--data-dir", t.mkdtemp("data"), "--token", "x" * 20,
                    "--listen", "127.0.0.1:%d" % free_port(),
                    "--admin-listen", "127.0.0.1:%d" % free_port()]
            argv += [which_flag, "127.0.0.1:%d" % port]
            _one_line_error(argv, 1, [str(port)])
        finally:
            busy.close()


def _tetherd_runtime(t, extra, mentions, data_dir=None, prefix=()):
    argv = list(prefix) + [TETHERD, "--listen", "127.0.0.1:%d" % free_port(),
                           "--admin-listen", "127.0.0.1:%d" % free_port()]
    if data_dir is not False:
        argv += ["--data-dir", data_dir or t.mkdtemp("data")]
    return _one_line_error(argv + extra, 1, mentions)


def test_tetherd_runtime_failures_at_start_exit_1(t):
    tok = ["--token", "x" * 20]
    # addresses that are not this machine's (192.0.2.0/24 is TEST-NET-1)
    _tetherd_runtime(t, tok + ["--listen", "192.0.2.1:%d" % free_port()], ["192.0.2.1"])
    _tetherd_runtime(t, tok + ["--tcp-bind", "192.0.2.1"], ["192.0.2.1"])
    # tokens file: missing, a directory, a line that does not parse
    missing = t.path("no-such-tokens")
    _tetherd_runtime(t, ["--tokens-file", missing], [missing])
    _tetherd_runtime(t, ["--tokens-file", t.mkdtemp("tokdir")], ["tokdir"])
    bad = t.path("bad-tokens")
    with open(bad, "w") as f:
        f.write("dev-a token-a\nthis line has three fields\n")
    _tetherd_runtime(t, ["--tokens-file", bad], [bad])
    # data dir: a file in the way, under a file, not a database inside
    afile = t.path("a-file")
    with open(afile, "w") as f:
        f.write("x")
    _tetherd_runtime(t, tok, [afile], data_dir=afile)
    _tetherd_runtime(t, tok, [afile], data_dir=os.path.join(afile, "sub"))
    garbage = t.mkdtemp("garbage")
    with open(os.path.join(garbage, "registry.db"), "wb") as f:
        f.write(b"this is not an SQLite database\n" * 200)
    _tetherd_runtime(t, tok, ["registry"], data_dir=garbage)


def test_tetherd_unwritable_data_dir_exits_1(t):
    # A data dir the relay's user cannot write: as root, run tetherd as nobody.
    top = tempfile.mkdtemp(prefix="tether-e2e-ro-")
    t.on_cleanup(lambda: shutil.rmtree(top, ignore_errors=True))
    os.chmod(top, 0o755)
    ro = os.path.join(top, "data")
    os.mkdir(ro)
    prefix = ()
    if os.geteuid() == 0:
        setpriv = which("setpriv")
        check(setpriv, "setpriv is needed to run this test as root")
        check(os.access(TETHERD, os.X_OK), "tetherd")
        prefix = (setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--")
        os.chmod(ro, 0o755)  # root's, not writable by nobody
    else:
        os.chmod(ro, 0o500)
    _tetherd_runtime(t, ["--token", "x" * 20], [ro], data_dir=ro, prefix=prefix)
    # a data dir that would have to be created inside it
    _tetherd_runtime(t, ["--token", "x" * 20], [ro], data_dir=os.path.join(ro, "sub"),
                     prefix=prefix)


def _write(t, name, text):
    p = t.path(name)
    with open(p, "w") as f:
        f.write(text)
    return p


def test_tetherd_config_file_bad_lines_and_missing_file(t):
    base = [TETHERD, "--listen", "127.0.0.1:%d" % free_port(),
            "--admin-listen", "127.0.0.1:%d" % free_port(), "--data-dir", t.mkdtemp("data")]
    for text, mention in [("bogus-setting 1\n", "bogus-setting"),
                          ("grace = forever\n", "grace"),
                          ("domain 'unterminated\n", "quote"),
                          ("listen\n", "listen"),
                          ("config other.conf\n", "config")]:
        p = _write(t, "bad.conf", "# a comment\n\n" + text)
        line = _one_line_error(base + ["--config", p], 2, [mention])
        check(p in line and ":3:" in line, "the error names the file and line 3: %r" % line)
    missing = t.path("no-such.conf")
    _one_line_error(base + ["--config", missing], 1, [missing])
    _one_line_error(base + ["--config", t.mkdtemp("confdir")], 1, ["confdir"])


def test_tetherd_runs_from_config_file_and_flags_win(t):
    from lib import Agent, Proc, port_open, recv_all, wait_for

    svc = t.http_service()
    file_port, flag_port, admin = free_port(), free_port(), free_port()
    low = free_port()
    conf = _write(t, "tetherd.conf", "\n".join([
        "# written by the e2e test",
        "listen 127.0.0.1:%d" % file_port,
        "domain = localhost",
        "--grace 2h",
        'token: "%s"' % ("c" * 24),
        "data_dir %s" % t.mkdtemp("data"),
        "admin-listen 127.0.0.1:%d" % admin,
        "tcp-bind 127.0.0.1",
        "", ]))
    # --listen on the command line replaces the file's listener; the rest comes from the file.
    proc = Proc(t, "tetherd", [TETHERD, "--config", conf, "--listen", "127.0.0.1:%d" % flag_port])
    wait_for(lambda: port_open(flag_port) or not proc.alive(), 30, "tetherd to listen")
    check(proc.alive(), "tetherd exited: %s" % proc.stderr_tail(10))
    check(not port_open(file_port), "the config file's --listen is replaced by the flag's")
    check(port_open(admin), "admin-listen from the config file")

    class R:
        url = "ws://127.0.0.1:%d" % flag_port
        token = "c" * 24
    a = Agent(t, R, http=svc.port)
    url = a.services["http"]["url"]
    eq(url, "http://%s.localhost:%d" % (a.label, flag_port), "device URL")
    c = socket.create_connection(("127.0.0.1", flag_port), timeout=10)
    c.sendall(b"GET /whoami HTTP/1.1\r\nHost: %s.localhost:%d\r\nConnection: close\r\n\r\n"
              % (a.label.encode(), flag_port))
    data = recv_all(c)
    c.close()
    check(data.startswith(b"HTTP/1.1 200"), "a page through the relay: %r" % data[:100])
