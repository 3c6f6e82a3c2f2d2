#!/usr/bin/env bash
# cross-sysroot-win.sh - builds the libraries the agent links (libuv, OpenSSL, jansson,
# http-parser, c-ares) for Windows x86_64 with mingw-w64, from Debian's own sources (with Debian's
# patches), as static libraries into DIR (DIR/include, DIR/lib): the sysroot of
# `make cross ARCH=win64`. Debian packages none of them for mingw-w64.
# Usage: scripts/cross-sysroot-win.sh DIR
#
# The sources come through apt with a private state under DIR/apt (scripts/debsrc.sh): the
# machine's apt configuration is left alone. They are taken from the main suite (MIRROR, default
# http://deb.debian.org/debian, suite bookworm), whose source packages are complete. Idempotent: does nothing when DIR/.done names the same versions of the script.
# Takes a few minutes, most of it OpenSSL. Needs mingw-w64, cmake, perl and dpkg-dev
# (scripts/deps.sh cross-win64), network access to the mirror, not root.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
suite=${SUITE:-bookworm}
host=x86_64-w64-mingw32
srcs="libuv1 jansson http-parser c-ares openssl"
stamp="win64 5: $srcs from $suite"
if [ -f "$dir/.done" ] && [ "$(cat "$dir/.done")" = "$stamp" ]; then
  exit 0
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
rm -rf "$dir/include" "$dir/lib" "$dir/src"
mkdir -p "$dir/src" "$dir/include" "$dir/lib"
# shellcheck source=scripts/debsrc.sh
. "$(dirname "$0")/debsrc.sh"
debsrc_init cross-sysroot-win "$dir/apt" "$dir/build.log"
a=$debsrc_apt
step() { debsrc_step "$@"; }
echo "cross-sysroot-win: fetching Debian's sources of $srcs ($suite)" >&2
debsrc_update
# apt-get source unpacks each with dpkg-source, Debian's patches applied.
debsrc_source "$dir/src" $srcs
src() { debsrc_tree "$dir/src" "$1"; }
cc=$host-gcc
jobs=${JOBS:-1}

echo "cross-sysroot-win: building libuv, jansson, http-parser, c-ares and OpenSSL with $cc" >&2
s=$(src libuv1)
step "libuv cmake" cmake -S "$s" -B "$s/build-win" -DCMAKE_SYSTEM_NAME=Windows -DCMAKE_C_COMPILER=$cc \
  -DCMAKE_BUILD_TYPE=Release -DLIBUV_BUILD_TESTS=OFF -DLIBUV_BUILD_BENCH=OFF
step "libuv build" cmake --build "$s/build-win" --target uv_a -j "$jobs"
cp "$s/build-win/libuv_a.a" "$dir/lib/libuv.a"
cp -r "$s/include/uv.h" "$s/include/uv" "$dir/include/"

s=$(src jansson)
step "jansson cmake" cmake -S "$s" -B "$s/build-win" -DCMAKE_SYSTEM_NAME=Windows -DCMAKE_C_COMPILER=$cc \
  -DCMAKE_BUILD_TYPE=Release -DJANSSON_BUILD_DOCS=OFF -DJANSSON_WITHOUT_TESTS=ON -DJANSSON_EXAMPLES=OFF \
  -DJANSSON_BUILD_SHARED_LIBS=OFF -DCMAKE_INSTALL_PREFIX="$s/inst"
step "jansson build" cmake --build "$s/build-win" --target install -j "$jobs"
cp "$s/inst/lib/libjansson.a" "$dir/lib/"
cp "$s/inst/include/jansson.h" "$s/inst/include/jansson_config.h" "$dir/include/"

s=$(src http-parser)
step "http-parser build" $cc -O2 -c "$s/http_parser.c" -o "$s/http_parser.o"
step "http-parser archive" $host-ar rcs "$dir/lib/libhttp_parser.a" "$s/http_parser.o"
cp "$s/http_parser.h" "$dir/include/"

s=$(src c-ares)
step "c-ares cmake" cmake -S "$s" -B "$s/build-win" -DCMAKE_SYSTEM_NAME=Windows -DCMAKE_C_COMPILER=$cc \
  -DCMAKE_BUILD_TYPE=Release -DCARES_STATIC=ON -DCARES_SHARED=OFF -DCARES_BUILD_TOOLS=OFF \
  -DCARES_BUILD_TESTS=OFF -DCMAKE_INSTALL_PREFIX="$s/inst"
step "c-ares build" cmake --build "$s/build-win" --target install -j "$jobs"
cp "$s/inst/lib/libcares.a" "$dir/lib/"
cp "$s"/inst/include/ares*.h "$dir/include/"

s=$(src openssl)
(cd "$s" && step "OpenSSL Configure" ./Configure mingw64 no-shared no-tests no-engine \
  --cross-compile-prefix=$host- --prefix="$s/inst" --libdir=lib)
(cd "$s" && step "OpenSSL build" make -j "$jobs" build_libs && step "OpenSSL install" make install_dev)
cp "$s/inst/lib/libssl.a" "$s/inst/lib/libcrypto.a" "$dir/lib/"
cp -r "$s/inst/include/openssl" "$dir/include/"

# What was built, for the record (docs and the report quote these versions).
for d in "$dir"/src/*.dsc; do sed -n 's/^Source: //p; s/^Version: //p' "$d" | paste -sd' '; done >"$dir/versions.txt"
rm -rf "$a/lists" "$a/cache" "$dir/src"
echo "$stamp" >"$dir/.done"
