#!/usr/bin/env bash
# cross-sysroot-android.sh - the sysroot of `make cross ARCH=android-arm64`: a musl C library
# for arm64 and the libraries the agent links (libuv, OpenSSL, jansson, http-parser, c-ares),
# built from Debian's own sources (with Debian's patches) as static libraries against it, into
# DIR (DIR/include, DIR/lib), plus DIR/bin/aarch64-linux-musl-gcc, the compiler to use.
# Usage: scripts/cross-sysroot-android.sh DIR
#
# Why musl and not Debian's arm64 builds (scripts/cross-sysroot.sh): Debian has no Android NDK,
# and a program Android runs without it must be static and need nothing from the system. A
# static glibc program still loads shared libraries at run time for user and host look-ups
# (NSS: getpwuid_r, which libuv's core object calls, and getaddrinfo, gethostbyname in
# OpenSSL's BIO code), and Debian's .a files are built against glibc's headers (its structure
# sizes, its _chk functions), so they cannot be linked with musl: every library is built again.
# musl is Debian's (musl-dev for arm64: headers, libc.a, crt files), used through Debian's
# aarch64-linux-gnu-gcc with musl's specs file, as Debian's own aarch64-linux-musl-gcc wrapper
# does; the kernel headers are Debian's linux-libc-dev for arm64.
#
# It also takes qemu-aarch64-static out of Debian's qemu-user-static (not installed: the one file
# is extracted into DIR/qemu): tests/e2e/test_android.py runs the program with it inside a chroot
# laid out like Android, where the dynamically linked qemu-aarch64 could not start.
#
# Packages and sources come through apt with a private state under DIR/apt (scripts/debsrc.sh:
# its own lists and cache, an empty dpkg status): the machine's apt configuration and dpkg are left alone (see
# cross-sysroot.sh for why not multiarch). The sources come from the main suite (MIRROR,
# default http://deb.debian.org/debian, SUITE bookworm), whose source packages are complete.
# Idempotent: does nothing when DIR/.done names the same version of the script. Takes a few
# minutes, most of it OpenSSL (JOBS=N compiles in parallel). Needs gcc-aarch64-linux-gnu, perl,
# cmake and dpkg-dev (scripts/deps.sh cross-android-arm64), network access, not root.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
suite=${SUITE:-bookworm}
srcs="libuv1 jansson http-parser c-ares openssl"
bins="musl:arm64 musl-dev:arm64 linux-libc-dev:arm64"
stamp="android-arm64 2: $bins qemu-user-static; $srcs from $suite"
if [ -f "$dir/.done" ] && [ "$(cat "$dir/.done")" = "$stamp" ]; then
  exit 0
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
rm -rf "$dir/include" "$dir/lib" "$dir/src" "$dir/musl" "$dir/bin" "$dir/qemu" "$dir/kernel"
# shellcheck source=scripts/debsrc.sh
. "$(dirname "$0")/debsrc.sh"
debsrc_init cross-sysroot-android "$dir/apt" "$dir/build.log" arm64
a=$debsrc_apt
host=$(dpkg --print-architecture)
mkdir -p "$a/debs" "$a/qemu" "$dir/src" "$dir/include" "$dir/lib" "$dir/musl" "$dir/bin" "$dir/qemu"
step() { debsrc_step "$@"; }
echo "cross-sysroot-android: fetching Debian's arm64 musl and the sources of $srcs ($suite)" >&2
debsrc_update
debsrc_download "$a/debs" $bins
for f in "$a"/debs/*.deb; do
  dpkg-deb -x "$f" "$dir/musl"
done
rm -rf "$dir/musl/etc" "$dir/musl/lib" # musl's dynamic loader and its configuration: not used
debsrc_download "$a/qemu" "qemu-user-static:$host"
dpkg-deb --fsys-tarfile "$a"/qemu/qemu-user-static_*.deb | tar -x -C "$dir/qemu" --strip-components=3 \
  ./usr/bin/qemu-aarch64-static
test -x "$dir/qemu/qemu-aarch64-static"
# apt-get source unpacks each with dpkg-source, Debian's patches applied.
debsrc_source "$dir/src" $srcs
src() { debsrc_tree "$dir/src" "$1"; }

# The compiler: Debian's cross gcc with musl's specs, its paths moved into DIR. The kernel's
# headers (linux/, asm/, asm-generic/) come after musl's, as a musl toolchain has them.
m="$dir/musl/usr"
mkdir -p "$dir/kernel"
cp -r "$m/include/linux" "$m/include/asm-generic" "$dir/kernel/"
cp -r "$m/include/aarch64-linux-gnu/asm" "$dir/kernel/"
sed -e "s#/usr/lib/aarch64-linux-musl#$m/lib/aarch64-linux-musl#g" \
  -e "s#-isystem /usr/include/aarch64-linux-musl#-isystem $m/include/aarch64-linux-musl -isystem $dir/kernel#g" \
  "$m/lib/aarch64-linux-musl/musl-gcc.specs" >"$dir/musl-gcc.specs"
printf '%s\n' '#!/bin/sh' '# aarch64-linux-gnu-gcc with musl (scripts/cross-sysroot-android.sh)' \
  "exec aarch64-linux-gnu-gcc \"\$@\" -specs \"$dir/musl-gcc.specs\"" >"$dir/bin/aarch64-linux-musl-gcc"
chmod 755 "$dir/bin/aarch64-linux-musl-gcc"
cc="$dir/bin/aarch64-linux-musl-gcc"
ar=aarch64-linux-gnu-ar
jobs=${JOBS:-1}
cmake_common=(-DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 -DCMAKE_C_COMPILER="$cc"
  -DCMAKE_AR="$(command -v $ar)" -DCMAKE_RANLIB="$(command -v aarch64-linux-gnu-ranlib)"
  -DCMAKE_BUILD_TYPE=Release)

echo "cross-sysroot-android: building libuv, jansson, http-parser, c-ares and OpenSSL with musl" >&2
s=$(src libuv1)
step "libuv cmake" cmake -S "$s" -B "$s/build-android" "${cmake_common[@]}" -DLIBUV_BUILD_TESTS=OFF \
  -DLIBUV_BUILD_BENCH=OFF
step "libuv build" cmake --build "$s/build-android" --target uv_a -j "$jobs"
cp "$s/build-android/libuv_a.a" "$dir/lib/libuv.a"
cp -r "$s/include/uv.h" "$s/include/uv" "$dir/include/"

s=$(src jansson)
step "jansson cmake" cmake -S "$s" -B "$s/build-android" "${cmake_common[@]}" -DJANSSON_BUILD_DOCS=OFF \
  -DJANSSON_WITHOUT_TESTS=ON -DJANSSON_EXAMPLES=OFF -DJANSSON_BUILD_SHARED_LIBS=OFF \
  -DCMAKE_INSTALL_PREFIX="$s/inst"
step "jansson build" cmake --build "$s/build-android" --target install -j "$jobs"
cp "$s/inst/lib/libjansson.a" "$dir/lib/"
cp "$s/inst/include/jansson.h" "$s/inst/include/jansson_config.h" "$dir/include/"

s=$(src http-parser)
step "http-parser build" "$cc" -O2 -c "$s/http_parser.c" -o "$s/http_parser.o"
step "http-parser archive" $ar rcs "$dir/lib/libhttp_parser.a" "$s/http_parser.o"
cp "$s/http_parser.h" "$dir/include/"

s=$(src c-ares)
step "c-ares cmake" cmake -S "$s" -B "$s/build-android" "${cmake_common[@]}" -DCARES_STATIC=ON \
  -DCARES_SHARED=OFF -DCARES_BUILD_TOOLS=OFF -DCARES_BUILD_TESTS=OFF -DCMAKE_INSTALL_PREFIX="$s/inst"
step "c-ares build" cmake --build "$s/build-android" --target install -j "$jobs"
cp "$s/inst/lib/libcares.a" "$dir/lib/"
cp "$s"/inst/include/ares*.h "$dir/include/"

# OpenSSL: the library only, static, without the parts the agent never uses (engines and
# loadable modules, which need dlopen; old and national ciphers; DTLS, SRP, compression). Its
# default CA paths (OPENSSLDIR) are /etc/ssl's: cert.pem and certs/; tls.c falls back to
# Android's store when neither exists.
s=$(src openssl)
(cd "$s" && step "OpenSSL Configure" env CC="$cc" AR=$ar RANLIB=aarch64-linux-gnu-ranlib \
  ./Configure linux-aarch64 no-shared no-tests no-engine no-dso no-module no-legacy no-comp \
  no-ssl3 no-dtls no-srp no-idea no-camellia no-seed no-bf no-cast no-rc2 no-rc4 no-rc5 no-md4 \
  no-mdc2 no-whirlpool no-rmd160 no-sm2 no-sm3 no-sm4 no-aria no-gost no-ui-console no-cms no-ts \
  no-srtp no-sctp no-afalgeng no-padlockeng no-ec2m no-scrypt no-siphash no-blake2 \
  --prefix="$s/inst" --libdir=lib --openssldir=/etc/ssl)
(cd "$s" && step "OpenSSL build" make -j "$jobs" build_libs && step "OpenSSL install" make install_dev)
cp "$s/inst/lib/libssl.a" "$s/inst/lib/libcrypto.a" "$dir/lib/"
cp -r "$s/inst/include/openssl" "$dir/include/"

# What was used, for the record (docs and the report quote these versions).
{
  for f in "$a"/debs/*.deb "$a"/qemu/*.deb; do dpkg-deb -f "$f" Package Version | sed 's/^[A-Za-z]*: //' | paste -sd' '; done
  for d in "$dir"/src/*.dsc; do sed -n 's/^Source: //p; s/^Version: //p' "$d" | paste -sd' '; done
} >"$dir/versions.txt"
rm -rf "$a/lists" "$a/cache" "$a/qemu" "$dir/src"
echo "$stamp" >"$dir/.done"
