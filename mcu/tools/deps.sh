#!/usr/bin/env bash
# deps.sh - installs the Debian packages the microcontroller targets need, only those missing.
# Usage: mcu/tools/deps.sh build|test|qemu
#   build: make mcu (the Cortex-M cross compiler, newlib, dpkg-dev for apt-get source)
#   test:  make mcu-test (a host compiler, cmocka, iproute2 for the namespace, curl)
#   qemu:  make mcu-qemu (both, and qemu-system-arm)
# Runs apt-get update once before installing. Needs root (or sudo).
set -eu
build="gcc-arm-none-eabi libnewlib-arm-none-eabi libnewlib-dev dpkg-dev xz-utils"
test="gcc make libcmocka-dev iproute2 curl python3 dpkg-dev xz-utils"
case "${1:-build}" in
  build) want="$build" ;;
  test) want="$test" ;;
  qemu) want="$build $test qemu-system-arm" ;;
  *) echo "mcu deps.sh: unknown set '$1' (build, test, qemu)" >&2; exit 2 ;;
esac
missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "mcu deps.sh: installing:$missing" >&2
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "mcu deps.sh: need root to install:$missing" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null || echo "mcu deps.sh: warning: apt-get update failed" >&2
$sudo apt-get install -y -q --no-install-recommends $missing >/dev/null
