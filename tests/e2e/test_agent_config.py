"""test_agent_config.py - tether --config FILE: an agent started with nothing but its config file
registers and serves (a bare --http PORT among its settings); a bad file (an unknown setting, a
token in a file every user can read, a file that cannot be read) stops it with one line naming
the file and line and exit status 2 (1 for the unreadable file); flags on the command line win
over the file; the error and disconnected lines on stderr carry a timestamp."""

import json
import os
import re
import socket

from lib import TETHER, Proc, agent_state_dir, check, eq, parse_ready, run_cli, wait_for


def _write(t, name, text, mode=0o644):
    path = t.path(name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def _token_file(t, token):
    return _write(t, "token", token + "\n", 0o600)


def _ready(proc, n, start=0):
    services, i = {}, start
    for _ in range(n):
        i, line = proc.wait_line(lambda l: l.startswith("ready "), 30, i, "a 'ready' line")
        services.update(parse_ready(line))
        i += 1
    return services


def _echo_through(port, data=b"hello through the config file"):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    return got


def test_agent_started_with_only_config_file(t):
    relay = t.relay()
    svc = t.http_service(big_size=1024)
    echo = t.tcp_echo()
    conf = _write(t, "agent.conf", "\n".join([
        "# the agent of one device, as /etc/tether/agent.conf",
        "server %s" % relay.url,
        "name = conf-dev-1",
        "token-file: %s" % _token_file(t, relay.token),
        "http %d" % svc.port,  # a bare port: 127.0.0.1:PORT
        "tcp \"echo=127.0.0.1:%d\"" % echo.port,
        "state_dir %s" % agent_state_dir(t),
        "log-level info",
        ""]))
    proc = Proc(t, "tether", [TETHER, "--config", conf])
    services = _ready(proc, 2)
    h = services.get("http")
    check(h and h["label"], "no http ready line: %r" % services)
    eq(h["target"], "127.0.0.1:%d" % svc.port, "the bare port's target")
    status, _, body = relay.request("GET", "/whoami", label=h["label"])
    eq(status, 200, "GET /whoami through the device configured by file")
    eq(body, b"device", "the device's answer")
    eq(_echo_through(services["echo"]["port"]), b"hello through the config file",
       "the tcp service configured by file")
    check(relay.token not in " ".join(proc.argv), "the token is on the command line")


def test_agent_bad_config_file_exits_2_with_one_line(t):
    # an unknown setting: exit 2, one line naming the file and the line
    conf = _write(t, "bad.conf", "server ws://127.0.0.1:1\nname d\nfrobnicate yes\n")
    r = run_cli([TETHER, "--config", conf])
    eq(r.returncode, 2, "exit status for an unknown setting")
    eq(r.stdout, "", "stdout")
    eq(r.stderr, "tether: %s:3: unknown setting 'frobnicate'\n" % conf, "stderr")
    # a bad value names the file, the line and the flag
    conf = _write(t, "bad2.conf", "server ws://127.0.0.1:1\n\nlog-level loud\n")
    r = run_cli([TETHER, "--config", conf])
    eq(r.returncode, 2, "exit status for a bad value")
    check(re.match(r"^tether: %s:3: bad --log-level 'loud'.*\n$" % re.escape(conf), r.stderr),
          "stderr for a bad value: %r" % r.stderr)
    # a token in a file every user can read
    conf = _write(t, "token.conf", "server ws://127.0.0.1:1\nname d\ntoken s3cret\nhttp 80\n",
                  0o644)
    r = run_cli([TETHER, "--config", conf])
    eq(r.returncode, 2, "exit status for a token in a world-readable file")
    eq(len(r.stderr.splitlines()), 1, "one line: %r" % r.stderr)
    check(r.stderr.startswith("tether: %s:3: " % conf) and "token-file" in r.stderr,
          "stderr: %r" % r.stderr)
    check("s3cret" not in r.stderr, "the token is in the message")
    # a file that cannot be read is a runtime failure
    missing = t.path("missing.conf")
    r = run_cli([TETHER, "--config", missing])
    eq(r.returncode, 1, "exit status for a missing file")
    eq(len(r.stderr.splitlines()), 1, "one line: %r" % r.stderr)
    check(r.stderr.startswith("tether: --config %s: " % missing), "stderr: %r" % r.stderr)
    # --config without a value, twice
    r = run_cli([TETHER, "--config"])
    eq((r.returncode, r.stderr), (2, "tether: --config needs a value\n"), "--config alone")
    r = run_cli([TETHER, "--config", conf, "--config", conf])
    eq((r.returncode, r.stderr), (2, "tether: --config given twice\n"), "--config twice")


def test_agent_command_line_wins_over_config_file(t):
    relay = t.relay()
    svc = t.http_service(big_size=1024, ident="from-command-line")
    # the file's token is wrong, its service is nothing, its name is another; the command line
    # gives the right ones
    conf = _write(t, "agent.conf", "\n".join([
        "server %s" % relay.url,
        "name file-name",
        "token-file %s" % _write(t, "wrong-token", "wrong-token\n", 0o600),
        "http 127.0.0.1:1",
        "json true",
        "state-dir %s" % agent_state_dir(t),
        ""]))
    good = _token_file(t, relay.token)
    proc = Proc(t, "tether", [TETHER, "--config", conf, "--name", "cli-name", "--token-file", good,
                              "--http", "web=127.0.0.1:%d" % svc.port])
    _, line = proc.wait_line(lambda l: l.startswith("{"), 30, 0, "a JSON event (json from file)")
    ev = json.loads(line)
    eq(ev.get("event"), "ready", "the first event: %r" % line)
    eq([s.get("name") for s in ev["services"]], ["web"], "the command line's --http replaces "
       "the file's")
    label = re.match(r"^http://([a-z0-9]+)\.", ev["services"][0]["url"]).group(1)
    status, _, body = relay.request("GET", "/whoami", label=label)
    eq((status, body), (200, b"from-command-line"), "the command line's service")
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/api/devices" % relay.admin_port,
                                timeout=30) as r:
        names = [d.get("name") for d in json.loads(r.read()).get("devices", [])]
    check("cli-name" in names and "file-name" not in names, "the relay's devices: %r" % names)


STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z tether "


def test_agent_error_and_disconnected_lines_have_a_timestamp(t):
    relay = t.relay()
    svc = t.http_service(big_size=1024)
    conf = _write(t, "agent.conf", "server %s\nname ts-dev\nhttp %d\nstate-dir %s\n" %
                  (relay.url, svc.port, agent_state_dir(t)))
    proc = Proc(t, "tether", [TETHER, "--config", conf, "--token", "wrong-token"])

    def error_line():
        for l in proc.stderr_text().splitlines():
            if " error: " in l:
                return l
        return None

    line = wait_for(error_line, 30, "an error line on stderr")
    check(re.match(r"^%serror: .* \(retrying in [0-9.]+ s\)$" % STAMP, line),
          "error line without the timestamp of the other log lines: %r" % line)
    proc.stop()
    good = Proc(t, "tether", [TETHER, "--config", conf, "--token", relay.token])
    _ready(good, 1)
    relay.stop()

    def disc_line():
        for l in good.stderr_text().splitlines():
            if " disconnected: " in l:
                return l
        return None

    line = wait_for(disc_line, 30, "a disconnected line on stderr")
    check(re.match(r"^%sdisconnected: .* \(reconnecting in [0-9.]+ s\)$" % STAMP, line),
          "disconnected line without the timestamp: %r" % line)
    check(all(l.startswith("ready ") for l in good.lines if l.strip()),
          "stdout holds only ready lines: %r" % good.lines)


def test_agent_log_format_json(t):
    relay = t.relay()
    svc = t.http_service(big_size=1024)
    conf = _write(t, "agent.conf", "server %s\nname json-log-dev\nhttp %d\nstate-dir %s\n"
                  "log-format json\nlog-level debug\n" % (relay.url, svc.port, agent_state_dir(t)))
    bad = Proc(t, "tether", [TETHER, "--config", conf, "--token", "wrong-token"])

    def records():
        lines = [l for l in bad.stderr_text().splitlines() if l.strip()]
        recs = [json.loads(l) for l in lines]  # every line is one JSON object
        return recs if any(r.get("msg") == "error" for r in recs) else None

    recs = wait_for(records, 30, "an error record on stderr")
    for r in recs:
        check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", r.get("time", "")) and
              r.get("program") == "tether" and r.get("level") in ("error", "warn", "info", "debug")
              and isinstance(r.get("msg"), str), "log record %r" % r)
    err = [r for r in recs if r.get("msg") == "error"][0]
    eq(err.get("level"), "error", "the error event's level")
    check("invalid token" in err.get("message", "") and err.get("retry_ms", "").isdigit(),
          "the error record %r" % err)
    bad.stop()
    good = Proc(t, "tether", [TETHER, "--config", conf, "--token", relay.token])
    services = _ready(good, 1)  # stdout keeps the ready lines exactly
    check(services.get("http", {}).get("label"), "ready line: %r" % good.lines)
