#!/usr/bin/env bash
# cross-sysroot.sh - fetches Debian's own builds of the libraries the agent links (libuv, OpenSSL,
# jansson, http-parser, c-ares) for another CPU and unpacks them into DIR, a sysroot for `make cross`.
# Usage: scripts/cross-sysroot.sh ARCH DIR   (ARCH: a Debian architecture, e.g. arm64 armhf mipsel)
#
# The machine's apt configuration, its dpkg and its package lists are left alone: apt runs with a
# private state under DIR/apt (its own lists, cache and an empty dpkg status), reading the
# machine's sources, and only downloads the .deb files, which dpkg-deb unpacks into DIR. This is
# on purpose, not `dpkg --add-architecture`: Debian's -dev packages are Multi-Arch: same, so each
# must have exactly the host's version, which a mirror whose ARCH indexes lag behind amd64's
# cannot offer, and a foreign architecture whose index fails to download makes every later
# `apt-get update` on the machine exit non-zero. Idempotent: does nothing when DIR/.done names
# the same packages. Needs network access to the Debian mirror, not root.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 ARCH DIR" >&2; exit 2; }
arch=$1
dir=$2
# Runtime libraries and their -dev packages (headers, the .so link and the .a archive).
pkgs="libuv1 libuv1-dev libssl3 libssl-dev libjansson4 libjansson-dev libhttp-parser2.9 libhttp-parser-dev libc-ares2 libc-ares-dev"
stamp="$arch: $pkgs"
if [ -f "$dir/.done" ] && [ "$(cat "$dir/.done")" = "$stamp" ]; then
  exit 0
fi
echo "cross-sysroot: fetching Debian's $arch builds of libuv, OpenSSL, jansson, http-parser, c-ares" >&2
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
a="$dir/apt"
rm -rf "$a" "$dir/usr"
mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/debs"
: >"$a/status"
opts=(-q -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch"
  -o "Dir::State::Lists=$a/lists" -o "Dir::State::status=$a/status" -o "Dir::Cache=$a/cache"
  -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
# A list that fails to download (a mirror in the middle of a sync) is skipped: the packages
# then come from the other suites. apt-get download below fails if one cannot be had at all.
if ! apt-get "${opts[@]}" update >"$a/update.log" 2>&1; then
  echo "cross-sysroot: warning: some $arch package lists failed to download:" >&2
  grep -E '^(E|Err):' "$a/update.log" | sed 's/^/  /' >&2 || true
fi
(cd "$a/debs" && apt-get "${opts[@]}" download $pkgs >"$a/download.log" 2>&1) || {
  cat "$a/download.log" >&2
  echo "cross-sysroot: could not download the $arch packages" >&2
  exit 1
}
for f in "$a"/debs/*.deb; do
  dpkg-deb -x "$f" "$dir"
done
# What was unpacked, for the record (docs and the report quote these versions).
for f in "$a"/debs/*.deb; do dpkg-deb -f "$f" Package Version | sed 's/^[A-Za-z]*: //' | paste -sd' '; done \
  >"$dir/versions.txt"
rm -rf "$a/lists" "$a/cache"
echo "$stamp" >"$dir/.done"
