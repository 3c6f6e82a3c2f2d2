#!/usr/bin/env bash
# sources.sh - unpacks Debian's sources of the libraries the microcontroller agent builds on
# (lwIP; mbedTLS for SHA-1 and base64; picohttpparser, from Debian's h2o source package, for
# HTTP heads) into DIR, with Debian's patches applied (lwIP, mbedTLS): the firmware and the
# user-space test compile them from there.
# Nothing of them is committed. Usage: mcu/tools/sources.sh DIR
#
# apt runs with a private state under DIR/apt (its own deb-src list, lists and cache): the
# machine's apt configuration is left alone (scripts/cross-sysroot-win.sh does the same). The
# sources come from the main suite (MIRROR, default http://deb.debian.org/debian, suite
# bookworm). Idempotent: does nothing when DIR/.done names the same set. Needs dpkg-dev
# (dpkg-source) and network access to the mirror, not root.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
mirror=${MIRROR:-http://deb.debian.org/debian}
suite=${SUITE:-bookworm}
srcs="lwip mbedtls"
stamp="mcu 2: $srcs h2o(picohttpparser) from $suite"
if [ -f "$dir/.done" ] && [ "$(cat "$dir/.done")" = "$stamp" ]; then
  exit 0
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
a="$dir/apt"
rm -rf "$a" "$dir/src"
mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/parts" "$dir/src"
: >"$a/status"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" >"$a/sources.list"
opts=(-q -o "Dir::Etc::SourceList=$a/sources.list" -o "Dir::Etc::SourceParts=$a/parts"
  -o "Dir::State::Lists=$a/lists" -o "Dir::State::status=$a/status" -o "Dir::Cache=$a/cache"
  -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
log="$dir/sources.log"
: >"$log"
step() { # what, command...
  local what=$1
  shift
  if ! "$@" >>"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "mcu sources: $what failed (whole log: $log)" >&2
    exit 1
  fi
}
echo "mcu sources: fetching Debian's sources of $srcs ($suite)" >&2
step "apt-get update (deb-src)" apt-get "${opts[@]}" update
(cd "$dir/src" && step "apt-get source" apt-get "${opts[@]}" source $srcs)
# picohttpparser is two files inside h2o's sources (11 MB): only those are unpacked.
(cd "$dir/src" && step "apt-get source h2o" apt-get "${opts[@]}" source --download-only h2o)
mkdir -p "$dir/picohttpparser"
tarball=$(find "$dir/src" -maxdepth 1 -name 'h2o_*.orig.tar.*' | head -n 1)
[ -n "$tarball" ] || { echo "mcu sources: no h2o source tarball" >&2; exit 1; }
step "unpack picohttpparser" tar -xf "$tarball" -C "$dir/picohttpparser" --strip-components=3 \
  --wildcards '*/deps/picohttpparser/picohttpparser.c' '*/deps/picohttpparser/picohttpparser.h'
rm -f "$dir"/src/h2o_*
# Stable names for the Makefile: DIR/lwip, DIR/mbedtls.
for s in $srcs; do
  d=$(find "$dir/src" -maxdepth 1 -mindepth 1 -type d -name "$s-*" | head -n 1)
  [ -n "$d" ] || { echo "mcu sources: no $s source tree in $dir/src" >&2; exit 1; }
  ln -sfn "$d" "$dir/$s"
done
echo "$stamp" >"$dir/.done"
