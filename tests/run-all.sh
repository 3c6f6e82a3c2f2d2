#!/usr/bin/env bash
# run-all.sh - runs Tether's whole test suite against one build: the cmocka unit tests, the fuzz
# corpus and crash replays, and the end-to-end suite (real tetherd, tether and local services).
# Usage: MODE=sanitize tests/run-all.sh [unit|e2e|cross|mcu]   (default: everything; MODE defaults
# to sanitize). Prints every test program's output, then one closing line "N passed, M failed",
# counting cmocka tests one by one, each fuzz replay as one test and each e2e test as one; `unit`
# (and the whole run) also checks the sources: no new include cycle (scripts/include-cycles.py),
# one test.
# CROSS_ARCHS="arm64 ..." adds, for each, the cross e2e tests: CROSS_E2E (a set of the e2e
# tests) with the agent cross-built for that CPU (build/cross-ARCH, `make cross`) run under
# qemu-user (win64: tether.exe under Wine) against this build's tetherd. `cross` runs only those.
# For android-arm64 (the static build), CROSS_E2E_ANDROID replaces CROSS_E2E when set (make test
# sets it to the android/ tests: a chroot laid out like Android).
# `mcu` runs the microcontroller agent's tests (make mcu-host builds them): its unit tests and
# its end-to-end tests on lwIP in user space in a network namespace (root; mcu/tests/run.py),
# then, when make mcu built the firmware and qemu-system-arm is there (and MCU_QEMU is not 0),
# the same e2e tests with the firmware on QEMU's mps2-an385.
# `deb` (and the end of the whole run when DEB_TESTS=1, as make test sets it for root) runs
# tests/deb/deb-test.sh on the packages make deb built, each of its checks counted as one test.
# Exits 1 if anything failed or nothing ran. Builds nothing: `make test` builds first.
set -u

cd "$(dirname "$0")/.."
MODE=${MODE:-sanitize}
B=${B:-build/$MODE}
WHAT=${1:-all}
case "$WHAT" in
all | unit | e2e | cross | mcu | deb) ;;
*)
    echo "run-all.sh: unknown argument '$WHAT' (unit, e2e, cross, mcu, deb, or nothing for all)" >&2
    exit 2
    ;;
esac

if [ "$MODE" = sanitize ]; then
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:disable_coredump=1:strict_string_checks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    export LSAN_OPTIONS=${LSAN_OPTIONS:-print_suppressions=0}
fi

passed=0
failed=0
failures=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT

fail() { # name reason
    failed=$((failed + 1))
    failures+=("$1: $2")
}

# One cmocka program. cmocka prints "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s),
# listed below:" once per group; a program that dies before its summary (a sanitizer abort)
# counts its "[       OK ]" lines as passed and one failure for the crash.
run_cmocka() {
    local bin=$1 name rc p f ok
    name=$(basename "$bin")
    echo "== unit: $name"
    "$bin" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    p=$(sed -n 's/^\[  PASSED  \] \([0-9][0-9]*\) test(s)\..*/\1/p' "$log" | awk '{s+=$1} END{print s+0}')
    f=$(sed -n 's/^\[  FAILED  \] \([0-9][0-9]*\) test(s).*/\1/p' "$log" | awk '{s+=$1} END{print s+0}')
    if ! grep -q '^\[  PASSED  \] [0-9]* test(s)\.' "$log" && ! grep -q '^\[  FAILED  \] [0-9]* test(s)' "$log"; then
        ok=$(grep -c '^\[       OK \]' "$log")
        passed=$((passed + ok))
        fail "$name" "exited with status $rc before its summary"
        return
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    [ "$f" -gt 0 ] && failures+=("$name: $f cmocka test(s) failed")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        fail "$name" "exited with status $rc after its tests passed (leak or sanitizer report?)"
    fi
}

# One fuzz replay binary over a list of inputs: one test.
run_replay() {
    local bin=$1 label=$2 rc
    shift 2
    [ $# -gt 0 ] || return 0
    echo "== fuzz replay: $label ($# inputs)"
    "$bin" "$@" >"$log" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "PASS $label"
    else
        tail -n 40 "$log"
        fail "$label" "replay exited with status $rc"
        echo "FAIL $label: exited with status $rc"
    fi
}

run_unit() {
    local found=0 bin name files
    if [ -d "$B/tests" ]; then
        for bin in "$B"/tests/*; do
            [ -f "$bin" ] && [ -x "$bin" ] || continue
            found=1
            run_cmocka "$bin"
        done
    fi
    [ "$found" = 1 ] || fail "unit" "no unit test binaries in $B/tests (run make MODE=$MODE unit-bin)"
    if [ -d "$B/fuzz" ]; then
        for bin in "$B"/fuzz/*-replay; do
            [ -f "$bin" ] && [ -x "$bin" ] || continue
            name=$(basename "$bin" -replay)
            files=()
            if [ -d "tests/fuzz/corpus/$name" ]; then
                while IFS= read -r -d '' f; do files+=("$f"); done \
                    < <(find "tests/fuzz/corpus/$name" -type f -print0 | sort -z)
            fi
            run_replay "$bin" "$name corpus" "${files[@]}"
            files=()
            if [ -d tests/fuzz/crashes ]; then
                while IFS= read -r -d '' f; do files+=("$f"); done \
                    < <(find tests/fuzz/crashes -type f -name "$name-*" ! -name '*.tmp' -print0 | sort -z)
            fi
            run_replay "$bin" "$name crashes" "${files[@]}"
        done
    fi
}

# Checks of the sources themselves: one test each.
run_source_checks() {
    echo "== source: include cycles (scripts/include-cycles.py)"
    python3 scripts/include-cycles.py --self-test >"$log" 2>&1 &&
        python3 scripts/include-cycles.py src >>"$log" 2>&1
    local rc=$?
    cat "$log"
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "PASS include-cycles"
    else
        fail "include-cycles" "a new include cycle in src/ (or a known one grew): see above"
        echo "FAIL include-cycles"
    fi
}

run_e2e() {
    local rc p f
    echo "== e2e"
    TETHERD=${TETHERD:-$B/bin/tetherd} TETHER=${TETHER:-$B/bin/tether} \
        python3 tests/e2e/run.py 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    p=$(grep -c '^PASS ' "$log")
    f=$(grep -c '^FAIL ' "$log")
    passed=$((passed + p))
    failed=$((failed + f))
    while IFS= read -r l; do failures+=("e2e ${l#FAIL }"); done < <(grep '^FAIL ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        fail "e2e" "run.py exited with status $rc"
    elif [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        fail "e2e" "no e2e test ran"
    fi
}

# The cross e2e set (name prefixes for run.py -k, or "all"): by default the tests of what the
# agent does itself, registration and its ready lines, HTTP (bodies both ways, streaming,
# WebSocket), TCP forwarding, wss:// with certificate checks, proxies, reconnecting and failing
# over, and its command line; each test exactly as in the native run.
CROSS_E2E=${CROSS_E2E:-agent/ http/ tcp/ tls/ proxy/ cli/}

run_cross() { # ARCH
    local arch=$1 xb=build/cross-$1 rc p f k run exe sel=$CROSS_E2E args=()
    [ "$arch" != android-arm64 ] || sel=${CROSS_E2E_ANDROID:-$CROSS_E2E}
    if [ "$arch" = win64 ]; then
        # tether.exe under Wine, with a Wine prefix of its own. Windows' environment is
        # case-insensitive, so the test that sets https_proxy and HTTPS_PROXY to different
        # proxies cannot pass there (curl on Windows reads them the same way).
        run=$xb/bin/tether-wine exe=$xb/bin/tether.exe
        export WINEPREFIX=${WINEPREFIX:-$PWD/$xb/wineprefix} WINEDEBUG=${WINEDEBUG:--all}
        args+=(-x proxy/wss_relay_through_https_proxy)
        # Wine ends a Windows program on SIGTERM (no exit status of its own), and keeps its
        # standard output's Unix descriptor open until it exits (no half-close seen before)
        args+=(-x private_connect/listen_private_tcp_plain -x private_connect/stdio_half_close)
    else
        run=$xb/bin/tether-qemu exe=$xb/bin/tether
    fi
    echo "== cross e2e: $arch (tether from $xb under ${run##*-}, tetherd from $B)"
    if [ ! -x "$run" ]; then
        fail "cross $arch" "no $run (run make cross ARCH=$arch)"
        return
    fi
    echo "$arch tether: $(file -b "$exe" | cut -d, -f1-2); $("$run" --version 2>/dev/null | tr -d '\r')"
    [ "$arch" != win64 ] ||
        echo "win64: skipping proxy/wss_relay_through_https_proxy (Windows environment names are case-insensitive), private_connect/listen_private_tcp_plain and stdio_half_close (Wine: SIGTERM, stdout's descriptor)"
    [ "$sel" = all ] || for k in $sel; do args+=(-k "$k"); done
    TETHERD=${TETHERD:-$B/bin/tetherd} TETHER=$run \
        python3 tests/e2e/run.py "${args[@]}" 2>&1 | sed -u "s/^\(PASS\|FAIL\) /\1 $arch:/" | tee "$log"
    rc=${PIPESTATUS[0]}
    p=$(grep -c '^PASS ' "$log")
    f=$(grep -c '^FAIL ' "$log")
    passed=$((passed + p))
    failed=$((failed + f))
    while IFS= read -r l; do failures+=("cross ${l#FAIL }"); done < <(grep '^FAIL ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        fail "cross $arch" "run.py exited with status $rc"
    elif [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        fail "cross $arch" "no cross e2e test ran"
    fi
}

# The microcontroller agent (mcu/): its cmocka tests, then its e2e tests against this build's
# tetherd, each counted as one test.
run_mcu() {
    local bin fw=build/mcu/fw/tether-mcu-mps2.elf
    for bin in build/mcu/host/tests/*; do
        [ -f "$bin" ] && [ -x "$bin" ] && run_cmocka "$bin"
    done
    bin=build/mcu/host/fuzz/fuzz_mcuws-replay
    [ -x "$bin" ] && run_replay "$bin" "fuzz_mcuws corpus" mcu/tests/corpus/fuzz_mcuws/*
    echo "== mcu e2e (the agent on lwIP in user space, in a network namespace)"
    run_mcu_e2e mcu
    if [ "${MCU_QEMU:-1}" != 0 ] && [ -f "$fw" ] && command -v qemu-system-arm >/dev/null; then
        echo "== mcu-qemu e2e (the firmware on QEMU's mps2-an385, in a network namespace)"
        run_mcu_e2e mcu-qemu --qemu "$fw"
    fi
}

run_mcu_e2e() { # NAME [run.py arguments]
    local rc p f what=$1
    shift
    python3 mcu/tests/run.py --tetherd "${TETHERD:-$B/bin/tetherd}" "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    p=$(grep -c '^PASS ' "$log")
    f=$(grep -c '^FAIL ' "$log")
    passed=$((passed + p))
    failed=$((failed + f))
    while IFS= read -r l; do failures+=("${l#FAIL }"); done < <(grep '^FAIL ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        fail "$what" "mcu/tests/run.py exited with status $rc"
    elif [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        fail "$what" "no $what test ran"
    fi
}

# The Debian packages (make deb built them): installed and run in a debootstrapped Debian root.
run_deb() {
    local rc p f
    echo "== deb-test (the packages in build/deb, installed in a debootstrapped Debian 12 root)"
    tests/deb/deb-test.sh 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    p=$(grep -c '^deb-test: PASS ' "$log")
    f=$(grep -c '^deb-test: FAIL ' "$log")
    passed=$((passed + p))
    failed=$((failed + f))
    while IFS= read -r l; do failures+=("deb-test: ${l#deb-test: FAIL }"); done < <(grep '^deb-test: FAIL ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        fail "deb-test" "tests/deb/deb-test.sh exited with status $rc"
    elif [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        fail "deb-test" "no check ran"
    fi
}

case "$WHAT" in
all)
    run_unit
    run_source_checks
    run_e2e
    for a in ${CROSS_ARCHS:-}; do run_cross "$a"; done
    [ "${MCU_TESTS:-1}" = 0 ] || run_mcu
    if [ "${DEB_TESTS:-0}" = 1 ]; then run_deb; else
        echo "== deb-test skipped (DEB_TESTS is not 1: make test sets it as root unless TEST_DEB=0)"
    fi
    ;;
mcu) run_mcu ;;
deb) run_deb ;;
unit)
    run_unit
    run_source_checks
    ;;
e2e) run_e2e ;;
cross)
    [ -n "${CROSS_ARCHS:-}" ] || fail "cross" "CROSS_ARCHS is empty"
    for a in ${CROSS_ARCHS:-}; do run_cross "$a"; done
    ;;
esac

if [ "${#failures[@]}" -gt 0 ]; then
    echo
    echo "Failures:"
    for l in "${failures[@]}"; do echo "  $l"; done
fi
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
