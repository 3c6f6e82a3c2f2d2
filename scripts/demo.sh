#!/usr/bin/env bash
# demo.sh - `make demo`: starts a relay (tetherd on 127.0.0.1:8080, admin on 127.0.0.1:9090), a
# sample web page on a free loopback port (the "device's" web server) and an agent (tether)
# exposing it, then prints the device's URL and waits. Ctrl-C stops everything it started, by
# PID. Uses the release build (BIN=build/release/bin unless set); state goes to a temp dir.
# DEMO_PORT and DEMO_ADMIN_PORT move the two ports (the e2e test of this script uses them).
set -u
cd "$(dirname "$0")/.."

BIN=${BIN:-build/release/bin}
LISTEN_PORT=${DEMO_PORT:-8080}
ADMIN_PORT=${DEMO_ADMIN_PORT:-9090}

say() { printf '%s\n' "$*"; }
die() {
    say "demo: $*" >&2
    exit 1
}

[ -x "$BIN/tetherd" ] && [ -x "$BIN/tether" ] || die "$BIN/tetherd and $BIN/tether are missing: run 'make' first"
scripts/deps.sh demo || die "could not install the demo's packages"
if ! command -v python3 >/dev/null; then
    # The sample page is served by python3's http.server.
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    say "demo: installing python3 for the sample page server" >&2
    $sudo apt-get install -y -q --no-install-recommends python3 >/dev/null || die "could not install python3"
fi

port_free() { # PORT: true if nothing listens on 127.0.0.1:PORT (TIME_WAIT leftovers are fine)
    python3 -c 'import socket,sys
s=socket.socket()
s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
try: s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(1)
except OSError: sys.exit(1)' "$1"
}
port_free "$LISTEN_PORT" || die "port $LISTEN_PORT is already in use (another tetherd or web server?); stop it and run 'make demo' again"
port_free "$ADMIN_PORT" || die "port $ADMIN_PORT (the relay's admin port) is already in use; stop what holds it and run 'make demo' again"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tether-demo.XXXXXX")
pids=()
cleanup() {
    # A second Ctrl-C (or the SIGTERM after it) while stopping must not kill this shell before
    # its children are gone and it has exited 0: ignore both from here on.
    trap '' INT TERM
    trap - EXIT
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'say ""; say "demo: stopping"; exit 0' INT TERM

show_log() { # FILE
    say "--- last lines of $1:" >&2
    tail -n 15 "$1" >&2
}

# The device's web server: a generated page on a free port.
mkdir -p "$tmp/site" "$tmp/data"
cat >"$tmp/site/index.html" <<'EOF'
<!doctype html>
<html><head><meta charset="utf-8"><title>Tether demo device</title></head>
<body style="font-family: sans-serif; margin: 3em">
<h1>Hello from a Tether device</h1>
<p>This page is served by a web server on the device (here: <code>python3 -m http.server</code>
on a loopback port). You reached it through the relay, <code>tetherd</code>, and the agent,
<code>tether</code>, which dialled out to the relay over WebSocket.</p>
</body></html>
EOF
page_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$tmp/site" "$page_port" >"$tmp/page.log" 2>&1 &
pids+=($!)

# the token goes by the environment (TETHER_TOKEN), not the command line that ps shows
token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
TETHER_TOKEN="$token" "$BIN/tetherd" --listen "127.0.0.1:$LISTEN_PORT" --domain localhost --admin-listen "127.0.0.1:$ADMIN_PORT" \
    --data-dir "$tmp/data" --grace 5m >"$tmp/tetherd.out" 2>"$tmp/tetherd.log" &
relay_pid=$!
pids+=("$relay_pid")
for _ in $(seq 100); do
    kill -0 "$relay_pid" 2>/dev/null || { show_log "$tmp/tetherd.log"; die "tetherd exited at start"; }
    (exec 3<>"/dev/tcp/127.0.0.1/$LISTEN_PORT") 2>/dev/null && break
    sleep 0.1
done

TETHER_TOKEN="$token" "$BIN/tether" --server "ws://127.0.0.1:$LISTEN_PORT" --name demo-device \
    --http "127.0.0.1:$page_port" >"$tmp/tether.out" 2>"$tmp/tether.log" &
agent_pid=$!
pids+=("$agent_pid")

url=""
for _ in $(seq 300); do
    kill -0 "$agent_pid" 2>/dev/null || { show_log "$tmp/tether.log"; die "tether exited"; }
    url=$(sed -n 's/^ready http \(http:[^ ]*\) -> .*/\1/p' "$tmp/tether.out" | head -n 1)
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { show_log "$tmp/tether.log"; die "the agent did not report a URL within 30 s"; }
url="${url%/}/"

say ""
say "  Relay:   tetherd on 127.0.0.1:$LISTEN_PORT (health: http://127.0.0.1:$ADMIN_PORT/healthz)"
say "  Device:  tether exposing a sample page served on 127.0.0.1:$page_port"
say "  Agent:   $(head -n 1 "$tmp/tether.out")"
say "  Dashboard: http://127.0.0.1:$ADMIN_PORT/ (the relay's devices, their URLs and traffic)"
say ""
say "  Your device is reachable at $url — open it in a browser or curl it; Ctrl-C stops the demo."
if command -v curl >/dev/null; then
    for _ in 1 2 3 4 5; do
        if curl -s --noproxy '*' --max-time 10 "$url" | grep -q "Hello from a Tether device"; then
            say "  (checked: curl $url answers with the sample page)"
            break
        fi
        sleep 1
    done
fi
say ""

# Wait until Ctrl-C, or until something we started dies.
while kill -0 "$relay_pid" 2>/dev/null && kill -0 "$agent_pid" 2>/dev/null; do
    sleep 1
done
kill -0 "$relay_pid" 2>/dev/null || { show_log "$tmp/tetherd.log"; die "tetherd stopped"; }
show_log "$tmp/tether.log"
die "tether stopped"
