#!/usr/bin/env bash
# deps.sh - installs the Debian packages a make target needs, only those missing.
# Usage: scripts/deps.sh build|test|bench|fuzz|demo
# Runs apt-get update once before installing. Needs root (or sudo).
set -eu
build="gcc make pkg-config libuv1-dev libwslay-dev libssl-dev libhttp-parser-dev libjansson-dev libsqlite3-dev libhiredis-dev"
test="$build libcmocka-dev python3 curl openssl redis-server openssh-server openssh-client procps chromium tinyproxy"
bench="$test wrk iperf3 hyperfine nginx"
fuzz="$build clang libclang-rt-14-dev"
demo="$build curl python3"
case "${1:-build}" in
  build) want="$build" ;;
  test) want="$test" ;;
  bench) want="$bench" ;;
  fuzz) want="$fuzz" ;;
  demo) want="$demo" ;;
  *) echo "deps.sh: unknown set '$1' (build, test, bench, fuzz, demo)" >&2; exit 2 ;;
esac
missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps.sh: installing:$missing" >&2
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: need root to install:$missing" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null
# The tests start their own redis-server and sshd on free loopback ports; whatever the packages
# start by themselves is left alone.
$sudo apt-get install -y -q --no-install-recommends $missing >/dev/null
