#!/usr/bin/env bash
# sources.sh - unpacks Debian's sources of the libraries the microcontroller agent builds on
# (lwIP; mbedTLS for SHA-1 and base64; picohttpparser, from Debian's h2o source package, for
# HTTP heads) into DIR, with Debian's patches applied (lwIP, mbedTLS): the firmware and the
# user-space test compile them from there.
# Nothing of them is committed. Usage: mcu/tools/sources.sh DIR
#
# apt runs with a private state under DIR/apt (scripts/debsrc.sh, as the cross sysroots do):
# the machine's apt configuration is left alone. The
# sources come from the main suite (MIRROR, default http://deb.debian.org/debian, suite
# bookworm). Idempotent: does nothing when DIR/.done names the same set. Needs dpkg-dev
# (dpkg-source) and network access to the mirror, not root.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
suite=${SUITE:-bookworm}
srcs="lwip mbedtls"
stamp="mcu 2: $srcs h2o(picohttpparser) from $suite"
if [ -f "$dir/.done" ] && [ "$(cat "$dir/.done")" = "$stamp" ]; then
  exit 0
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
rm -rf "$dir/src"
mkdir -p "$dir/src"
# shellcheck source=scripts/debsrc.sh
. "$(dirname "$0")/../../scripts/debsrc.sh"
debsrc_init "mcu sources" "$dir/apt" "$dir/sources.log"
step() { debsrc_step "$@"; }
echo "mcu sources: fetching Debian's sources of $srcs ($suite)" >&2
debsrc_update
debsrc_source "$dir/src" $srcs
# picohttpparser is two files inside h2o's sources (11 MB): only those are unpacked.
debsrc_source "$dir/src" --download-only h2o
mkdir -p "$dir/picohttpparser"
tarball=$(find "$dir/src" -maxdepth 1 -name 'h2o_*.orig.tar.*' | head -n 1)
[ -n "$tarball" ] || { echo "mcu sources: no h2o source tarball" >&2; exit 1; }
step "unpack picohttpparser" tar -xf "$tarball" -C "$dir/picohttpparser" --strip-components=3 \
  --wildcards '*/deps/picohttpparser/picohttpparser.c' '*/deps/picohttpparser/picohttpparser.h'
rm -f "$dir"/src/h2o_*
# Stable names for the Makefile: DIR/lwip, DIR/mbedtls.
for s in $srcs; do
  d=$(debsrc_tree "$dir/src" "$s")
  [ -n "$d" ] || { echo "mcu sources: no $s source tree in $dir/src" >&2; exit 1; }
  ln -sfn "$d" "$dir/$s"
done
echo "$stamp" >"$dir/.done"
