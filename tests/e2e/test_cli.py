"""test_cli.py - command-line errors: a bad flag or value gives one line on stderr naming the
problem and exit status 2; a port in use is a runtime failure (exit 1)."""

import socket

from lib import TETHER, TETHERD, check, eq, free_port, run_cli


def _one_line_error(argv, status, mentions):
    r = run_cli(argv)
    where = " ".join(argv[1:])
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    eq(r.returncode, status, "exit status of `%s` (stderr: %r)" % (where, r.stderr[:500]))
    eq(len(lines), 1, "stderr lines of `%s` (%r)" % (where, r.stderr[:500]))
    check(any(m in lines[0] for m in mentions),
          "the error for `%s` names none of %r: %r" % (where, mentions, lines[0]))
    eq(r.stdout, "", "stdout of `%s`" % where)


def test_tetherd_usage_errors_exit_2_with_one_line(t):
    d = t.mkdtemp("data")
    base = [TETHERD, "--data-dir", d, "--token", "x" * 20, "--listen",
            "127.0.0.1:%d" % free_port(), "--admin-listen", "127.0.0.1:%d" % free_port()]
    cases = [
        (["--no-such-flag"], ["--no-such-flag"]),
        (["--grace", "soon"], ["soon", "--grace", "grace"]),
        (["--tcp-ports", "30000-20000"], ["30000-20000", "--tcp-ports", "tcp-ports"]),
        (["--tcp-ports", "banana"], ["banana", "--tcp-ports", "tcp-ports"]),
        (["--listen", "nonsense"], ["nonsense", "--listen", "listen"]),
        (["--admin-listen", "127.0.0.1:99999"], ["99999", "--admin-listen", "admin-listen"]),
        (["--grace"], ["--grace", "grace"]),
    ]
    for extra, mentions in cases:
        _one_line_error(base + extra, 2, mentions)


def test_tether_usage_errors_exit_2_with_one_line(t):
    ok = ["--name", "dev1", "--token", "tok"]
    cases = [
        ([TETHER, "--no-such-flag"] + ok, ["--no-such-flag"]),
        ([TETHER, "--server", "ftp://127.0.0.1:1"] + ok + ["--http", "127.0.0.1:80"],
         ["ftp", "--server", "server"]),
        ([TETHER, "--server", "ws://127.0.0.1:1"] + ok + ["--http", "127.0.0.1:notaport"],
         ["notaport", "--http", "http"]),
        ([TETHER, "--server", "ws://127.0.0.1:1"] + ok + ["--tcp", "127.0.0.1:22"],
         ["--tcp", "tcp", "NAME", "name"]),
        ([TETHER, "--name", "dev1", "--token", "tok", "--http", "127.0.0.1:80"],
         ["--server", "server"]),
    ]
    for argv, mentions in cases:
        _one_line_error(argv, 2, mentions)


def test_tetherd_port_in_use_exits_1(t):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        _one_line_error([TETHERD, "--listen", "127.0.0.1:%d" % port, "--data-dir",
                         t.mkdtemp("data"), "--token", "x" * 20, "--admin-listen",
                         "127.0.0.1:%d" % free_port()], 1,
                        [str(port), "in use", "address"])
    finally:
        busy.close()
