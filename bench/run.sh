#!/usr/bin/env bash
# run.sh - `make bench`: loopback benchmarks of Tether against a direct connection, ssh -R and
# node-reverse-wstunnel, idle devices and a reconnect storm (bench/bench.py does the work; about
# 8 minutes, `make bench BENCH_ARGS=--quick` about 3). Writes docs/BENCHMARKS.md and
# docs/bench-memory.png and appends to bench/results.jsonl. Never part of `make test`. Needs
# iperf3, wrk, sshd/ssh (scripts/deps.sh bench), nginx (installed here when missing and we may:
# root or sudo), node and npm for node-reverse-wstunnel (installed into build/bench-wstunnel) and
# gnuplot for the plot (skipped without it). To iterate on the data path: bench/datapath.py
# (direct against one or more Tether builds, and two bare forwarders, in interleaved rounds).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    if [ -z "$sudo" ] || command -v sudo >/dev/null; then
        echo "bench: installing nginx" >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends nginx >/dev/null ||
            echo "bench: could not install nginx; the data-path part will be skipped" >&2
    fi
fi
exec python3 bench/bench.py "$@"
