"""test_metrics_parts.py - /metrics is whole: the parts other modules write into fixed buffers
(adminmetrics.c: TLS, process, the registry's Redis connection, device auth, access, sign-in,
tether connect) each end with their last series, every line is a comment or a series, and
tether_metrics_truncated_total is there and 0 (a part that did not fit would be cut at its last
whole line, counted there and logged once); single relay and cluster node.

Loopback only; every process is stopped by its PID (lib.py)."""

import re

from lib import RedisServer, Relay, check, eq, free_port, free_port_range, metrics_text, wait_for

SERIES = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}\n]*\})? [0-9.e+-]+$")

# the last series of each part (a cut part loses its last lines first)
LAST_OF_PARTS = ["tether_tls_ticket_key_failures_total ",
                 'tether_token_refused_total{cap="rate"} ',
                 'tether_access_grants_total{event="expired"} ',
                 "tether_access_session_reads_superseded_total ",
                 "tether_connect_window_extra_bytes "]
LAST_OF_CLUSTER_PARTS = ["tether_redis_reply_seconds_count ",
                         'tether_access_grant_token_refused_total{reason="timeout"} ']


def _check_whole(relay, last):
    text = metrics_text(relay, "127.0.0.1")
    lines = text.splitlines()
    check(text.endswith("\n"), "/metrics ends with a whole line")
    bad = [ln for ln in lines
           if not (ln.startswith("# HELP ") or ln.startswith("# TYPE ") or SERIES.match(ln))]
    check(not bad, "lines of /metrics neither a comment nor a series: %r" % bad[:5])
    check(any(ln.startswith("tether_build_info{") for ln in lines), "tether_build_info present")
    missing = [p for p in last if not any(ln.startswith(p) for ln in lines)]
    check(not missing, "last series of parts missing from /metrics: %s" % missing)
    eq([ln for ln in lines if ln.startswith("tether_metrics_truncated_total ")],
       ["tether_metrics_truncated_total 0"], "tether_metrics_truncated_total")
    check("# TYPE tether_metrics_truncated_total counter" in lines, "its TYPE line")
    check("metrics part cut" not in relay.proc.stderr_text(), "no cut part logged")
    return lines


def test_metrics_parts_whole_single(t):
    relay = t.relay()
    _check_whole(relay, LAST_OF_PARTS)


def test_metrics_parts_whole_cluster(t):
    redis = RedisServer(t)
    port = free_port()
    low, high = free_port_range(4)
    node = Relay(t, port=port, tcp_ports=(low, high),
                 extra=["--redis", "redis://127.0.0.1:%d" % redis.port, "--node-id", "node-a",
                        "--advertise", "ws://127.0.0.1:%d" % port, "--tcp-bind", "127.0.0.1"])
    wait_for(lambda: "tether_redis_reply_seconds_count " in metrics_text(node, "127.0.0.1"), 30,
             "the registry's Redis connection's metrics")
    _check_whole(node, LAST_OF_PARTS + LAST_OF_CLUSTER_PARTS)
