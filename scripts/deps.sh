#!/usr/bin/env bash
# deps.sh - installs the Debian packages a make target needs, only those missing.
# Usage: scripts/deps.sh build|test|bench|fuzz|demo|deb|cortex-m|mcu|cross-arm64|cross-armhf|cross-mipsel|cross-win64|cross-android-arm64
# Runs apt-get update once before installing. Needs root (or sudo).
# The cross sets are Debian's cross gcc and C library for that CPU (no dpkg multiarch: the
# agent's other libraries come from scripts/cross-sysroot.sh) and qemu-user to run the result.
set -eu
build="gcc make pkg-config libsystemd-dev libuv1-dev libwslay-dev libssl-dev libhttp-parser-dev libjansson-dev libc-ares-dev libsqlite3-dev libhiredis-dev libargon2-dev"
cross() { echo "$build file python3 qemu-user gcc-$1 libc6-dev-$2-cross"; }
# Android arm64: the arm64 cross gcc, used with Debian's musl (scripts/cross-sysroot-android.sh
# fetches it and builds the libraries from Debian's sources with cmake, perl and dpkg-source).
android="$build file python3 qemu-user gcc-aarch64-linux-gnu cmake perl dpkg-dev xz-utils"
# make test also cross-builds the agent for arm64 and for Android and runs it under qemu-user.
test="$build $(cross aarch64-linux-gnu arm64) $android gcc-arm-none-eabi libnewlib-dev libcmocka-dev python3 curl openssl redis-server redis-sentinel openssh-server openssh-client procps chromium tinyproxy"
bench="$test wrk iperf3 hyperfine nginx"
fuzz="$build clang libclang-rt-14-dev"
demo="$build curl python3"
# make deb (debian/) and make deb-test (tests/deb/deb-test.sh: a debootstrapped Debian root).
deb="$build debhelper dpkg-dev lintian debootstrap systemd systemd-container procps util-linux python3 curl"
# make core-check's Cortex-M build: the bare-metal cross gcc and newlib's headers (not its library).
cortexm="gcc-arm-none-eabi libnewlib-dev"
# The microcontroller agent (mcu/mcu.mk): make mcu links the firmware with newlib-nano; lwIP and
# mbedTLS come as Debian sources (apt-get source: dpkg-dev, xz-utils); make mcu-test needs a TAP
# device in a namespace (iproute2), curl and cmocka; make mcu-qemu the emulated board.
mcu="gcc make python3 gcc-arm-none-eabi libnewlib-arm-none-eabi libnewlib-dev dpkg-dev xz-utils debian-archive-keyring libcmocka-dev iproute2 curl qemu-system-arm"
test="$test $mcu"
case "${1:-build}" in
  build) want="$build" ;;
  test) want="$test" ;;
  bench) want="$bench" ;;
  fuzz) want="$fuzz" ;;
  demo) want="$demo" ;;
  deb) want="$deb" ;;
  cortex-m) want="$cortexm" ;;
  mcu) want="$mcu" ;;
  cross-arm64) want="$(cross aarch64-linux-gnu arm64)" ;;
  cross-armhf) want="$(cross arm-linux-gnueabihf armhf)" ;;
  cross-mipsel) want="$(cross mipsel-linux-gnu mipsel)" ;;
  # mingw-w64, what scripts/cross-sysroot-win.sh needs to build the libraries from source, and
  # Wine to run tether.exe.
  cross-win64) want="$build file python3 gcc-mingw-w64-x86-64 cmake perl dpkg-dev wine wine64" ;;
  cross-android-arm64) want="$android" ;;
  *) echo "deps.sh: unknown set '$1' (build, test, bench, fuzz, demo, deb, cortex-m, mcu, cross-arm64, cross-armhf, cross-mipsel, cross-win64, cross-android-arm64)" >&2; exit 2 ;;
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
# A list that fails to download (a mirror mid-sync, a foreign architecture someone added) is not
# fatal here: the install below fails if a package really cannot be had.
$sudo apt-get update -q >/dev/null || echo "deps.sh: warning: apt-get update failed (above); installing from the lists there are" >&2
# The tests start their own redis-server and sshd on free loopback ports; whatever the packages
# start by themselves is left alone.
$sudo apt-get install -y -q --no-install-recommends $missing >/dev/null
