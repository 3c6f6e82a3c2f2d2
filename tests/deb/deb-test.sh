#!/usr/bin/env bash
# deb-test.sh - `make deb-test`: the Debian packages of build/deb/ (make deb) tested as a user
# installs them. A clean Debian 12 root is made with debootstrap (minbase, plus the compiler,
# pkg-config, curl and python3 the checks use; cached in build/deb-root/base, fetched from
# DEB_TEST_MIRROR, default http://deb.debian.org/debian, the first time only), copied to
# build/deb-root/run, and inside it (chroot):
#   - apt installs the four .debs (and their dependencies from the mirror);
#   - the files, the tether system user, the conffiles' owner and mode, the state directory,
#     which units are enabled, the library's SONAME and exported symbols are checked;
#   - systemd-analyze verify checks both units;
#   - tests/sdk/sdk_hello.c is built with `pkg-config --cflags --libs tether`, and registers a
#     device with the relay below through the installed libtether.so.1;
#   - tetherd and tether are started as the tether user with the units' command lines (ExecStart
#     of tetherd.service and tether.service, read from the installed units), configured only
#     through /etc/tether/tetherd.conf and agent.conf, and a device's page is fetched with curl
#     through them; SIGHUP (the units' ExecReload) keeps it serving;
#   - systemd-nspawn --boot is tried (DEB_TEST_NSPAWN=0 skips it): where it boots, the same is
#     done with the units started by systemd; where it cannot boot, the reason is printed;
#   - the packages are reinstalled (an upgrade's maintainer scripts run again: an edited
#     conffile is kept) and purged (conffiles, state and statoverrides go; the user stays).
# Needs root (debootstrap, chroot, mount). Every process it starts is stopped by PID; the mounts
# are undone on exit. DEB_TEST_KEEP=1 keeps build/deb-root/run for inspection.
# Exit 0 when every check passes, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/../.."

DEBS=build/deb
CACHE=build/deb-root
BASE=$CACHE/base
RUN=$CACHE/run
MIRROR=${DEB_TEST_MIRROR:-http://deb.debian.org/debian}
INCLUDE=pkg-config,gcc,libc6-dev,curl,python3,ca-certificates

say() { printf 'deb-test: %s\n' "$*"; }
die() {
    say "$*" >&2
    exit 1
}

fails=0
pass() { say "PASS $*"; }
fail() {
    say "FAIL $*"
    fails=$((fails + 1))
}
# check WHAT COMMAND...: runs COMMAND, PASS or FAIL named WHAT.
check() {
    local what=$1
    shift
    if "$@" >"$CACHE/check.out" 2>&1; then pass "$what"; else
        fail "$what"
        sed 's/^/    /' "$CACHE/check.out" | tail -n 20
    fi
}
# inroot CMD...: runs a command inside the root as root, with a plain environment.
inroot() { chroot "$RUN" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root \
    DEBIAN_FRONTEND=noninteractive "$@"; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mount)"
debs=("$DEBS"/tetherd_*.deb "$DEBS"/tether_*.deb "$DEBS"/libtether1_*.deb "$DEBS"/libtether-dev_*.deb)
for d in "${debs[@]}"; do [ -f "$d" ] || die "$d is missing: run 'make deb' first"; done
command -v debootstrap >/dev/null || die "debootstrap is missing (scripts/deps.sh deb)"

mkdir -p "$CACHE"
if [ ! -f "$BASE/.tether-base-complete" ]; then
    say "debootstrap bookworm into $BASE from $MIRROR (once; a few minutes)"
    rm -rf "$BASE"
    debootstrap --variant=minbase --include="$INCLUDE" bookworm "$BASE" "$MIRROR" \
        >"$CACHE/debootstrap.log" 2>&1 || die "debootstrap failed: see $CACHE/debootstrap.log"
    touch "$BASE/.tether-base-complete"
fi

pids=()
mounts=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    local i
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[$i]}" 2>/dev/null; done
    [ "${DEB_TEST_KEEP:-0}" = 1 ] || rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

say "a fresh copy of the root in $RUN"
rm -rf "$RUN"
cp -a "$BASE" "$RUN" || die "cannot copy $BASE"
mount -t proc proc "$RUN/proc" && mounts+=("$RUN/proc")
mount --bind /dev "$RUN/dev" && mounts+=("$RUN/dev")
mount -t tmpfs tmpfs "$RUN/run" && mounts+=("$RUN/run")
cp /etc/resolv.conf "$RUN/etc/resolv.conf" 2>/dev/null
printf 'deb %s bookworm main\n' "$MIRROR" >"$RUN/etc/apt/sources.list"
mkdir -p "$RUN/tmp/debs"
cp "${debs[@]}" "$RUN/tmp/debs/"

# ---- install with apt ----
say "apt-get install the packages"
inroot apt-get update -q >"$CACHE/apt.log" 2>&1 || die "apt-get update failed in the root: see $CACHE/apt.log"
if inroot sh -c 'apt-get install -y -q --no-install-recommends /tmp/debs/*.deb' >>"$CACHE/apt.log" 2>&1; then
    pass "apt-get install ./tetherd ./tether ./libtether1 ./libtether-dev"
else
    fail "apt-get install"
    tail -n 30 "$CACHE/apt.log"
    exit 1
fi

# ---- files, user, conffiles, units ----
for f in /usr/bin/tetherd /usr/bin/tether /usr/include/tether.h /usr/include/tether_err.h \
    /lib/systemd/system/tetherd.service /lib/systemd/system/tether.service \
    /etc/tether/tetherd.conf /etc/tether/agent.conf /usr/share/man/man8/tetherd.8.gz \
    /usr/share/man/man1/tether.1.gz /usr/lib/sysusers.d/tetherd.conf; do
    check "installed $f" test -e "$RUN$f"
done
for f in libtether.so.1 libtether.so libtether.a pkgconfig/tether.pc; do
    check "installed /usr/lib/<multiarch>/$f" sh -c "ls $RUN/usr/lib/*/$f"
done
check "the tether user is a system user with no login shell" \
    sh -c "in_uid=\$(chroot $RUN getent passwd tether | cut -d: -f3,7); echo \$in_uid; \
        [ \"\${in_uid%%:*}\" -lt 1000 ] && case \$in_uid in *nologin) true ;; *) false ;; esac"
check "the tether group exists" inroot getent group tether
for f in /etc/tether/tetherd.conf /etc/tether/agent.conf; do
    check "$f is root:tether 0640" sh -c "s=\$(chroot $RUN stat -c '%U:%G %a' $f); echo \$s; [ \"\$s\" = 'root:tether 640' ]"
    check "$f is a conffile" sh -c "grep -rqx '$f' $RUN/var/lib/dpkg/info/*.conffiles"
done
check "/var/lib/tether is the tether user's" sh -c "s=\$(chroot $RUN stat -c '%U:%G' /var/lib/tether); echo \$s; [ \"\$s\" = tether:tether ]"
check "tetherd.service is enabled" test -L "$RUN/etc/systemd/system/multi-user.target.wants/tetherd.service"
check "tether.service is not enabled until agent.conf is filled in" \
    test ! -e "$RUN/etc/systemd/system/multi-user.target.wants/tether.service"
check "systemd-analyze verify tetherd.service tether.service" \
    inroot systemd-analyze verify --man=no /lib/systemd/system/tetherd.service /lib/systemd/system/tether.service
check "libtether.so.1 has SONAME libtether.so.1" sh -c "chroot $RUN readelf -d /usr/lib/$(inroot gcc -print-multiarch)/libtether.so.1 | grep -q 'SONAME.*\\[libtether.so.1\\]'"
check "libtether.so.1 exports only tether_* functions" sh -c "
    out=\$(chroot $RUN nm -D --defined-only /usr/lib/$(inroot gcc -print-multiarch)/libtether.so.1 | awk '\$2 ~ /^[TDBR]\$/ {print \$3}');
    echo \"\$out\" | head -n 3; [ -n \"\$out\" ] && ! echo \"\$out\" | grep -v '^tether_'"

# ---- build against the installed library with pkg-config ----
cp tests/sdk/sdk_hello.c "$RUN/tmp/sdk_hello.c"
check "cc sdk_hello.c \$(pkg-config --cflags --libs tether)" \
    inroot sh -c 'cc -o /tmp/sdk_hello /tmp/sdk_hello.c $(pkg-config --cflags --libs tether)'
check "sdk_hello runs against the installed libtether.so.1 (its usage line)" \
    sh -c "chroot $RUN /tmp/sdk_hello 2>&1; [ \$? = 2 ]"
check "sdk_hello links libtether.so.1 from /usr/lib" \
    sh -c "chroot $RUN ldd /tmp/sdk_hello | grep -E 'libtether.so.1 => (/usr)?/lib/'"

# ---- the programs, started as the units start them ----
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
APORT=$(free_port)
WEB=$(free_port)
TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
# The operator's edits: the relay's settings and the agent's, both reading one token file.
sed -i "s/^listen 127.0.0.1:8080\$/listen 127.0.0.1:$PORT/" "$RUN/etc/tether/tetherd.conf"
printf 'admin-listen 127.0.0.1:%s\ntoken-file /etc/tether/token\n' "$APORT" >>"$RUN/etc/tether/tetherd.conf"
printf '%s\n' "$TOKEN" >"$RUN/etc/tether/token"
inroot chown root:tether /etc/tether/token
chmod 0640 "$RUN/etc/tether/token"
printf 'server ws://127.0.0.1:%s\nname deb-test-device\ntoken-file /etc/tether/token\nhttp 127.0.0.1:%s\n' \
    "$PORT" "$WEB" >>"$RUN/etc/tether/agent.conf"
mkdir -p "$RUN/tmp/site"
echo "hello from the packaged tether" >"$RUN/tmp/site/index.html"

execstart() { # UNIT: its ExecStart= command line
    sed -n 's/^ExecStart=//p' "$RUN/lib/systemd/system/$1"
}
RELAY_CMD=$(execstart tetherd.service)
AGENT_CMD=$(execstart tether.service)
say "tetherd.service: $RELAY_CMD"
say "tether.service:  $AGENT_CMD"

run_and_reach() { # MODE: chroot or nspawn; the relay and agent are up; fetch the page through them
    local mode=$1 url="" i
    for i in $(seq 300); do
        url=$(sed -n 's/^ready http \(http:[^ ]*\) -> .*/\1/p' "$RUN/tmp/tether.out" 2>/dev/null | head -n 1)
        [ -n "$url" ] && break
        sleep 0.1
    done
    if [ -z "$url" ]; then
        fail "$mode: the agent reported no URL within 30 s"
        tail -n 5 "$RUN/tmp/tetherd.err" "$RUN/tmp/tether.err" 2>/dev/null
        return 1
    fi
    pass "$mode: the agent registered: $url"
    local hostport=${url#http://}
    hostport=${hostport%/}
    check "$mode: curl $url through tetherd and tether gets the device's page" sh -c \
        "curl -sS --noproxy '*' --max-time 20 -H 'Host: $hostport' http://127.0.0.1:$PORT/ | grep -q 'hello from the packaged tether'"
}

inroot python3 -m http.server --bind 127.0.0.1 --directory /tmp/site "$WEB" >/dev/null 2>&1 &
pids+=($!)
# tetherd as the tether user, with tetherd.service's ExecStart (LimitNOFILE and the sandbox are
# systemd's; StateDirectory's /var/lib/tetherd was made by postinst).
chroot --userspec=tether:tether "$RUN" /usr/bin/env -i PATH=/usr/bin:/bin $RELAY_CMD \
    >"$RUN/tmp/tetherd.out" 2>"$RUN/tmp/tetherd.err" &
relay_pid=$!
pids+=("$relay_pid")
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done
check "chroot: tetherd (tetherd.service's command line, user tether) listens on 127.0.0.1:$PORT" \
    kill -0 "$relay_pid"
chroot --userspec=tether:tether "$RUN" /usr/bin/env -i PATH=/usr/bin:/bin $AGENT_CMD \
    >"$RUN/tmp/tether.out" 2>"$RUN/tmp/tether.err" &
agent_pid=$!
pids+=("$agent_pid")
run_and_reach chroot
check "chroot: sdk_hello (built with pkg-config above) registers with the relay through libtether.so.1" \
    sh -c "timeout 60 chroot $RUN /tmp/sdk_hello ws://127.0.0.1:$PORT sdk-hello-device $TOKEN 127.0.0.1:$WEB /tmp/sdk-state | tee /dev/stderr | grep -q '^ready http://'"
check "chroot: the agent kept its device key in /var/lib/tether" \
    sh -c "ls -A $RUN/var/lib/tether | grep -q ."
kill -HUP "$relay_pid"
sleep 1
check "chroot: tetherd serves on after SIGHUP (the units' ExecReload)" sh -c \
    "kill -0 $relay_pid && curl -s --noproxy '*' --max-time 10 -o /dev/null -w '%{http_code}' http://127.0.0.1:$APORT/healthz | grep -q 200"
kill "$agent_pid" "$relay_pid"
wait "$agent_pid" 2>/dev/null
wait "$relay_pid"
check "chroot: tetherd exits 0 on SIGTERM" test $? = 0

# ---- systemd-nspawn --boot: the units run by systemd ----
if [ "${DEB_TEST_NSPAWN:-1}" = 1 ] && command -v systemd-nspawn >/dev/null; then
    inroot systemctl enable tether.service >/dev/null 2>&1
    : >"$RUN/tmp/tether.out"
    # journald holds the units' output; the agent's ready line is read from the journal below.
    umount -l "$RUN/run" "$RUN/dev" "$RUN/proc" 2>/dev/null
    mounts=()
    systemd-nspawn --boot --register=no --keep-unit --quiet -D "$RUN" >"$CACHE/nspawn.log" 2>&1 &
    ns_pid=$!
    pids+=("$ns_pid")
    booted=0
    for _ in $(seq 300); do
        kill -0 "$ns_pid" 2>/dev/null || break
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then booted=1 && break; fi
        sleep 0.1
    done
    if [ "$booted" = 1 ]; then
        pass "nspawn: systemd booted the root and started tetherd.service"
        # the agent's ready line is in the container's journal: the relay's admin API says it too
        for _ in $(seq 300); do
            url=$(curl -s --noproxy '*' --max-time 5 "http://127.0.0.1:$APORT/api/devices/deb-test-device" |
                python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["url"] if d.get("online") else "")' 2>/dev/null)
            [ -n "$url" ] && break
            sleep 0.1
        done
        [ -n "$url" ] && echo "ready http $url -> 127.0.0.1:$WEB" >"$RUN/tmp/tether.out"
        run_and_reach nspawn
        # systemctl in the container (its PID 1, a child of systemd-nspawn, entered with nsenter)
        cpid=$(ps --ppid "$ns_pid" -o pid= | head -n 1 | tr -d ' ')
        insys() { nsenter --target "$cpid" --all /usr/bin/env -i PATH=/usr/sbin:/usr/bin "$@"; }
        if [ -n "$cpid" ] && insys true 2>/dev/null; then
            check "nspawn: systemctl is-active tetherd tether" insys systemctl is-active tetherd tether
            check "nspawn: systemctl reload tetherd (RELOADING=1, READY=1)" insys systemctl reload tetherd
            check "nspawn: tetherd is active after the reload, the same process" sh -c \
                "[ \"\$(nsenter --target $cpid --all systemctl show -p MainPID --value tetherd)\" = '$(insys systemctl show -p MainPID --value tetherd)' ] && nsenter --target $cpid --all systemctl is-active tetherd"
            check "nspawn: systemd has the watchdog armed for tetherd (WatchdogUSec)" sh -c \
                "nsenter --target $cpid --all systemctl show -p WatchdogUSec --value tetherd | grep -qx 30s"
            check "nspawn: journalctl -u tetherd holds the relay's log" sh -c \
                "nsenter --target $cpid --all journalctl -q --no-pager -u tetherd | tee /dev/stderr | grep -q listen"
            check "nspawn: the journal has tetherd's INFO lines at priority 6, the prefix stripped" sh -c \
                "nsenter --target $cpid --all journalctl -q --no-pager -u tetherd -o json | grep '\"PRIORITY\":\"6\"' | grep -v '\"MESSAGE\":\"<' | grep -q INFO"
            for u in tetherd.service tether.service; do
                say "nspawn: systemd-analyze security $u: $(insys systemd-analyze security --no-pager "$u" 2>&1 | tail -n 1)"
            done
        else
            say "nspawn: cannot enter the container (no child of systemd-nspawn): systemctl checks skipped"
        fi
        kill "$ns_pid" 2>/dev/null # systemd-nspawn: SIGTERM powers the container off
    else
        say "nspawn: systemd-nspawn --boot did not bring tetherd.service up within 30 s on this machine" \
            "(units tested with their command lines above instead); its last lines:"
        tail -n 8 "$CACHE/nspawn.log" | sed 's/^/    /'
        kill "$ns_pid" 2>/dev/null
    fi
    wait "$ns_pid" 2>/dev/null
    mount -t proc proc "$RUN/proc" && mounts+=("$RUN/proc")
    mount --bind /dev "$RUN/dev" && mounts+=("$RUN/dev")
fi

# ---- upgrade (reinstall: the maintainer scripts run again) and purge ----
if inroot sh -c 'apt-get install -y -q --reinstall -o Dpkg::Options::=--force-confold /tmp/debs/*.deb' >>"$CACHE/apt.log" 2>&1; then
    pass "apt-get install --reinstall (upgrade path)"
else
    fail "apt-get install --reinstall"
    tail -n 20 "$CACHE/apt.log"
fi
check "upgrade: the edited tetherd.conf is kept" grep -q "^listen 127.0.0.1:$PORT\$" "$RUN/etc/tether/tetherd.conf"
check "upgrade: tetherd.conf still root:tether 0640" sh -c "[ \"\$(chroot $RUN stat -c '%U:%G %a' /etc/tether/tetherd.conf)\" = 'root:tether 640' ]"
check "apt-get purge tetherd tether libtether-dev libtether1" \
    inroot apt-get purge -y -q tetherd tether libtether-dev libtether1
check "purge: /etc/tether/tetherd.conf and agent.conf are gone" \
    sh -c "[ ! -e $RUN/etc/tether/tetherd.conf ] && [ ! -e $RUN/etc/tether/agent.conf ]"
check "purge: /var/lib/tetherd is gone" test ! -e "$RUN/var/lib/tetherd"
check "purge: no statoverride left" sh -c "! chroot $RUN dpkg-statoverride --list | grep /etc/tether"

if [ "$fails" = 0 ]; then
    say "all checks passed"
    exit 0
fi
say "$fails check(s) failed"
exit 1
