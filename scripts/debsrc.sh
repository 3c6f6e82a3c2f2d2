#!/usr/bin/env bash
# debsrc.sh - Debian's source packages (and a few binary packages, for cross sysroots) through apt
# with a private state: its own sources list, lists, cache and an empty dpkg status under one
# directory, so that the machine's apt configuration and dpkg are left alone. The packages come
# from the main suite (MIRROR, default http://deb.debian.org/debian; SUITE, default bookworm),
# whose source packages are complete. Needs apt, dpkg-dev (dpkg-source) and network access to the
# mirror, not root. Used by scripts/cross-sysroot-win.sh, scripts/cross-sysroot-android.sh and
# mcu/tools/sources.sh.
#
# As a library (`. scripts/debsrc.sh`), in a `set -eu` bash script:
#   debsrc_init NAME APTDIR LOG [ARCH...]  a fresh state in APTDIR (removed first), a deb-src
#                                 line, and with ARCH... (e.g. arm64) a deb line too and those
#                                 foreign architectures; NAME prefixes messages; LOG (emptied)
#                                 gets every command's output. Sets the array debsrc_opts.
#   debsrc_step WHAT COMMAND...   runs COMMAND into LOG; on failure prints LOG's tail and
#                                 "NAME: WHAT failed (whole log: LOG)" and exits 1.
#   debsrc_update                 apt-get update.
#   debsrc_source DIR [OPTION...] PKG...  apt-get source into DIR: each is unpacked with
#                                 dpkg-source, Debian's patches applied (--download-only: not).
#   debsrc_download DIR PKG...    apt-get download (binary packages) into DIR.
#   debsrc_tree DIR NAME          prints the unpacked source tree DIR/NAME-* ("" if none).
# As a command: scripts/debsrc.sh DIR PKG... fetches and unpacks the sources of PKG... into
# DIR/src (state in DIR/apt, log in DIR/debsrc.log) and prints each tree's path.

debsrc_init() { # NAME APTDIR LOG [ARCH...]
  debsrc_name=$1
  debsrc_apt=$2
  debsrc_log=$3
  shift 3
  local mirror=${MIRROR:-http://deb.debian.org/debian} suite=${SUITE:-bookworm}
  local key=/usr/share/keyrings/debian-archive-keyring.gpg a=$debsrc_apt
  rm -rf "$a"
  mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/parts"
  : >"$a/status"
  : >"$debsrc_log"
  : >"$a/sources.list"
  debsrc_opts=(-q)
  if [ $# -gt 0 ]; then
    echo "deb [signed-by=$key] $mirror $suite main" >>"$a/sources.list"
    local host
    host=$(dpkg --print-architecture)
    debsrc_opts+=(-o "APT::Architecture=$host" -o "APT::Architectures::=$host")
    for arch in "$@"; do
      debsrc_opts+=(-o "APT::Architectures::=$arch")
    done
  fi
  echo "deb-src [signed-by=$key] $mirror $suite main" >>"$a/sources.list"
  debsrc_opts+=(-o "Dir::Etc::SourceList=$a/sources.list" -o "Dir::Etc::SourceParts=$a/parts"
    -o "Dir::State::Lists=$a/lists" -o "Dir::State::status=$a/status" -o "Dir::Cache=$a/cache"
    -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
}

debsrc_step() { # WHAT COMMAND...
  local what=$1
  shift
  if ! "$@" >>"$debsrc_log" 2>&1; then
    tail -n 30 "$debsrc_log" >&2
    echo "$debsrc_name: $what failed (whole log: $debsrc_log)" >&2
    exit 1
  fi
}

debsrc_update() {
  debsrc_step "apt-get update" apt-get "${debsrc_opts[@]}" update
}

debsrc_source() { # DIR [OPTION...] PKG...
  local d=$1
  shift
  (cd "$d" && debsrc_step "apt-get source $*" apt-get "${debsrc_opts[@]}" source "$@")
}

debsrc_download() { # DIR PKG...
  local d=$1
  shift
  (cd "$d" && debsrc_step "apt-get download $*" apt-get "${debsrc_opts[@]}" download "$@")
}

debsrc_tree() { # DIR NAME
  find "$1" -maxdepth 1 -mindepth 1 -type d -name "$2-*" | head -n 1
}

# Run as a command (not sourced): fetch and unpack the named sources.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -eu
  [ $# -ge 2 ] || { echo "usage: $0 DIR PKG..." >&2; exit 2; }
  dir=$1
  shift
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  rm -rf "$dir/src"
  mkdir -p "$dir/src"
  debsrc_init debsrc "$dir/apt" "$dir/debsrc.log"
  echo "debsrc: fetching Debian's sources of $* (${SUITE:-bookworm})" >&2
  debsrc_update
  debsrc_source "$dir/src" "$@"
  for p in "$@"; do
    t=$(debsrc_tree "$dir/src" "$p")
    [ -n "$t" ] || { echo "debsrc: no $p source tree in $dir/src" >&2; exit 1; }
    echo "$t"
  done
fi
