#!/usr/bin/env bash
# run.sh - `make bench`: loopback benchmarks of Tether against a direct connection and ssh -R
# (bench/bench.py does the work). Writes docs/BENCHMARKS.md and appends to bench/results.jsonl.
# Never part of `make test`. Needs iperf3, wrk, sshd/ssh (scripts/deps.sh bench) and nginx,
# installed here when missing and we may (root or sudo); without nginx a Python server is used.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    if [ -z "$sudo" ] || command -v sudo >/dev/null; then
        echo "bench: installing nginx" >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends nginx >/dev/null ||
            echo "bench: could not install nginx; falling back to a Python server" >&2
    fi
fi
exec python3 bench/bench.py "$@"
