"""test_identity.py - who a device is: labels after the grace period, a second connection with
the same name (takeover with a valid token, refusal with a wrong one), per-device tokens from
--tokens-file reloaded on SIGHUP, and the token tetherd makes when it is given none."""

import re
import signal

from lib import Relay, check, eq, wait_for


def _whoami(relay, label):
    status, _, body = relay.request("GET", "/whoami", label=label, timeout=10)
    return status, body


def test_new_label_after_grace_period_and_old_one_404(t):
    relay = t.relay(grace="2s")
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port)
    old = agent.label
    agent.stop()
    # Within the grace period: 503; after it: 404.
    wait_for(lambda: relay.request("GET", "/", label=old, timeout=10)[0] == 404, 30,
             "the expired label to answer 404", interval=0.25)
    again = t.agent(relay, name=agent.name, http=svc.port)
    check(again.label != old, "the device got its expired label %r back" % old)
    eq(_whoami(relay, again.label), (200, b"device"), "answer on the new label")
    eq(relay.request("GET", "/", label=old)[0], 404, "status of the old label")


def test_second_connection_with_valid_token_takes_over(t):
    relay = t.relay()
    svc_a = t.http_service(big_size=1024, ident="first")
    svc_b = t.http_service(big_size=1024, ident="second")
    a = t.agent(relay, name="same-name", http=svc_a.port)
    # The first agent freezes with its connection open: a half-open leftover.
    a.proc.send_signal(signal.SIGSTOP)
    try:
        b = t.agent(relay, name="same-name", http=svc_b.port)
        eq(b.label, a.label, "label of the device after the takeover")
        wait_for(lambda: _whoami(relay, b.label) == (200, b"second"), 30,
                 "requests to reach the new connection")
    finally:
        a.proc.send_signal(signal.SIGKILL)
        a.proc.stopped = True


def test_second_connection_with_wrong_token_is_refused(t):
    relay = t.relay()
    svc = t.http_service(big_size=1024, ident="online")
    a = t.agent(relay, name="same-name", http=svc.port)
    intruder_svc = t.http_service(big_size=1024, ident="intruder")
    b = t.agent(relay, name="same-name", http=intruder_svc.port, token="wrong-token",
                json_mode=True, wait=False)
    b.proc.wait_line(lambda l: '"error"' in l, 30, 0, 'an {"event":"error"} line')
    eq(_whoami(relay, a.label), (200, b"online"), "the online device's answer")
    check(a.proc.alive(), "the online agent exited")
    check(len([l for l in a.proc.lines if l.startswith("ready ")]) == 1,
          "the online agent was disconnected: %r" % a.proc.lines)


def test_tokens_file_per_device_and_sighup_reload(t):
    path = t.path("tokens")
    with open(path, "w") as f:
        f.write("# per-device tokens\n\ndev-a token-for-a\n")
    relay = Relay(t, token=None, extra=["--tokens-file", path])
    relay.token = None
    svc = t.http_service(big_size=1024)
    a = t.agent(relay, name="dev-a", token="token-for-a", http=svc.port)
    bad = t.agent(relay, name="dev-a", token="token-for-b", json_mode=True, wait=False,
                  http=svc.port)
    bad.proc.wait_line(lambda l: '"error"' in l, 30, 0, "an error for dev-a's wrong token")
    bad.stop()
    b = t.agent(relay, name="dev-b", token="token-for-b", json_mode=True, wait=False,
                http=svc.port)
    b.proc.wait_line(lambda l: '"error"' in l, 30, 0, "an error for dev-b (not in the file)")
    with open(path, "w") as f:
        f.write("dev-a token-for-a\ndev-b token-for-b\n")
    relay.proc.send_signal(signal.SIGHUP)
    b.wait_ready(timeout=75)  # dev-b retries with back-off and now gets in
    check(b.label and b.label != a.label, "dev-b's label %r" % b.label)
    # dev-a kept its connection through the reload.
    eq(len([l for l in a.proc.lines if l.startswith("ready ")]), 1, "dev-a's ready lines")
    eq(_whoami(relay, a.label), (200, b"device"), "dev-a's answer after the reload")


def test_token_generated_in_data_dir_and_printed_once(t):
    data = t.mkdtemp("data")
    relay = Relay(t, token=None, data_dir=data)
    _, line = relay.proc.wait_line(lambda l: "token" in l.lower(), 20, 0, "the generated token")
    token = line.split()[-1]
    check(re.match(r"^[!-~]{16,}$", token), "the printed token looks wrong: %r" % line)
    relay.token = token
    svc = t.http_service(big_size=1024)
    agent = t.agent(relay, http=svc.port)
    eq(_whoami(relay, agent.label), (200, b"device"), "answer with the generated token")
    agent.stop()
    relay.stop()
    # Restarted on the same data dir: the same token, not printed again.
    relay2 = Relay(t, token=None, data_dir=data)
    relay2.token = token
    agent2 = t.agent(relay2, http=svc.port)
    eq(_whoami(relay2, agent2.label), (200, b"device"), "answer after the restart")
    check(not any(token in l for l in relay2.proc.lines), "the token was printed again")
    check(token not in relay2.proc.stderr_text() and token not in relay.proc.stderr_text(),
          "the token appears in tetherd's log")
