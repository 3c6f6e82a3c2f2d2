# Tether - top-level Makefile.
#   make            build tetherd, tether, libtether (release, into build/release); in parallel
#                   (one job per CPU) unless -jN says otherwise
#   make test       install what tests need, build with ASan+UBSan, run every test; then the
#                   agent cross-built for arm64 runs the agent's e2e tests under qemu-user, and
#                   the microcontroller agent runs on lwIP in user space and as firmware on
#                   QEMU's mps2-an385 (mcu/mcu.mk: mcu-test, mcu-qemu)
#   make mcu / mcu-host / mcu-test / mcu-qemu
#                   the microcontroller agent (mcu/mcu.mk): the Cortex-M firmware with its size
#                   report, the user-space build, its tests, the firmware on QEMU's mps2-an385
#   make demo       build, start a relay and an agent exposing a sample page, print its URL
#                   and the dashboard's
#   make deb        Debian packages into build/deb/ (debian/; lintian); make deb-test installs
#                   them in a debootstrapped Debian 12 root and checks them (as root)
#   make install PREFIX=/usr/local [DESTDIR=...] [LIBDIR=...]
#                   the programs, libtether.a, libtether.so.1 (SONAME; .so for linking), tether.h,
#                   LIBDIR/pkgconfig/tether.pc, the man pages and the documents they name
#                   (DOCDIR, PREFIX/share/doc/tether); make uninstall removes them
#   make sanitize   build with -fsanitize=address,undefined into build/sanitize
#   make core-check build src/core alone with the strict flags and check it needs only libc,
#                   for this machine and for a Cortex-M0+ (arm-none-eabi-gcc, if installed)
#   make fuzz       build the libFuzzer targets with clang and run each for a bounded time
#                   (at most FUZZ_TIME seconds, default 120, and FUZZ_RUNS inputs; FUZZ_SEED=N
#                   repeats a run; FUZZ_ONLY=
#                   "fuzz_x ..." picks targets); crashes land in tests/fuzz/crashes/, which
#                   make test replays
#   make bench      run bench/ (never part of make test); BENCH_ARGS=--quick for a short run
#   make bench-bin  build bench/loadgen (many idle devices) into $(B)/bin
#   make bench-redis  a slowed and a stopped Redis: request latency and registrations per
#                   second of one cluster node, main's binary against this tree's
#   make bench-cluster  a cluster at fleet scale (bench/cluster.py: Redis with Sentinel, six
#                   nodes, 100,000 loadgen devices, a node killed, the Redis master killed, a
#                   reconnect storm; never part of make test or CI); BENCH_CLUSTER_ARGS=
#                   "--devices 10000 --wss" and the like
#   make format / format-check
#   make cross ARCH=arm64|armhf|mipsel|win64|android-arm64
#                   cross-build the agent (tether, libtether.a/.so; not the relay) with Debian's
#                   cross gcc against Debian's ARCH builds of its libraries (scripts/cross-sysroot.sh)
#                   into build/cross-ARCH, plus bin/tether-qemu, which runs it under qemu-user;
#                   win64: mingw-w64, the libraries built from Debian's sources
#                   (scripts/cross-sysroot-win.sh, a few minutes), tether.exe and bin/tether-wine;
#                   android-arm64: one static tether and libtether.a on Debian's musl, the
#                   libraries built from Debian's sources (scripts/cross-sysroot-android.sh)
#   make cross-test [CROSS_ARCHS="arm64 armhf mipsel win64 android-arm64"] [CROSS_E2E="http/ tcp/"]
#                   cross-build each and run the e2e suite (default all of it) with the
#                   cross-built tether under qemu-user against the native tetherd, and for
#                   android-arm64 also the android/ tests (a chroot laid out like Android);
#                   make test runs the agent's part of it for arm64 and the android/ tests for
#                   android-arm64 (TEST_CROSS_ARCHS)
# The build directory follows MODE (release or sanitize); binaries land in $(B)/bin.
# B=DIR overrides it (parallel work trees: make MODE=sanitize B=build/mine unit-bin).

# make builds in parallel by default: one job per CPU, unless -j (or -jN) was given (it wins),
# clean is among the goals (make clean all stays in order), or this is a sub-make (it shares its
# parent's job server; make 4.3 shows no -j in MAKEFLAGS while it reads the makefile).
ifeq ($(MAKELEVEL)$(filter -j%,$(MAKEFLAGS))$(filter clean,$(MAKECMDGOALS)),0)
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 2)
endif

MODE ?= release
PREFIX ?= /usr/local
DESTDIR ?=
CC ?= cc
ifeq ($(CC),cc)
CC := gcc
endif

B ?= build/$(MODE)

CSTD := -std=c17
WARN := -Wall -Wextra -Werror
# Messages are built with snprintf into fixed buffers on purpose: a long URL or reason is cut,
# never overflowed. gcc -O2's guesses about such cuts (-Wformat-truncation) are therefore noise,
# and they differ between -O1 and -O2 builds.
APP_WARN := $(WARN) -Wno-format-truncation
CORE_WARN := $(WARN) -Wconversion -Wsign-conversion -pedantic
CPPFLAGS_ALL = -Iinclude -Isrc -D_GNU_SOURCE $(XCPPFLAGS)
OPT_release := -O2 -g
OPT_sanitize := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT := $(OPT_$(MODE))
LDSAN_sanitize := -fsanitize=address,undefined
LDSAN := $(LDSAN_$(MODE))
# Every object is built with hidden symbols: libtether.so exports only what include/tether.h marks
# TETHER_API (tether_*); the programs, unit tests and fuzz targets link the static archives.
VISIBILITY := -fvisibility=hidden
CFLAGS_ALL := $(CSTD) $(APP_WARN) $(OPT) -fPIC $(VISIBILITY) $(CFLAGS)
# The agent (tether, libtether) needs no SQLite or hiredis: those are the relay's. c-ares is the
# agent's alone (its name lookups with --dns, or without /etc/resolv.conf: src/agent/resolve.c).
COMMON_LIBS := -luv -lssl -lcrypto -lhttp_parser -ljansson -lm -lpthread
AGENT_LIBS := -lcares $(COMMON_LIBS)
RELAY_LIBS := $(COMMON_LIBS) -lsqlite3 -lhiredis -largon2
# systemd readiness, reload and watchdog messages (src/relay/sdnotify.c) through libsystemd's
# sd_notify, on Linux where pkg-config finds libsystemd (scripts/deps.sh installs it on Debian);
# elsewhere, or with SYSTEMD=0, those calls do nothing.
SYSTEMD ?= $(shell [ "$$(uname -s)" = Linux ] && pkg-config --exists libsystemd 2>/dev/null && echo 1)
ifeq ($(SYSTEMD),1)
RELAY_LIBS += -lsystemd
$(B)/obj/src/relay/sdnotify.o: CPPFLAGS_ALL += -DTT_HAVE_SYSTEMD
endif
# Unit tests, fuzz targets and bench/ link both sides.
LIBS := -lcares $(RELAY_LIBS)
# Set by `make cross`: the target's headers and libraries (a sysroot of Debian packages).
XCPPFLAGS ?=
XLDFLAGS ?=

CORE_SRC := $(wildcard src/core/*.c)
COMMON_SRC := $(wildcard src/common/*.c)
RELAY_SRC := $(wildcard src/relay/*.c src/relay/*/*.c)
AGENT_SRC := $(wildcard src/agent/*.c)
CLI_SRC := $(wildcard src/cli/*.c)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_SUPPORT := $(filter-out $(UNIT_SRC),$(wildcard tests/unit/*.c))

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))

CORE_OBJ := $(call obj,$(CORE_SRC))
COMMON_OBJ := $(call obj,$(COMMON_SRC))
RELAY_OBJ := $(call obj,$(RELAY_SRC))
AGENT_OBJ := $(call obj,$(AGENT_SRC))
CLI_OBJ := $(call obj,$(CLI_SRC))
UNIT_BIN := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
UNIT_SUPPORT_OBJ := $(call obj,$(UNIT_SUPPORT))

TETHERD := $(B)/bin/tetherd
# .exe for Windows (make cross ARCH=win64)
EXE ?=
TETHER := $(B)/bin/tether$(EXE)
LIBTETHER_A := $(B)/lib/libtether.a
# libtether.so is a link to libtether.so.1 (the SONAME), a link to libtether.so.1.0.0 (the file)
LIBTETHER_SO := $(B)/lib/libtether.so
SO_MAJOR := 1
SO_VERSION := $(SO_MAJOR).0.0
INTERNAL_A := $(B)/lib/libtt_internal.a

.PHONY: FORCE core-check-cortex-m all build agent cross cross-test cross-deps deps test unit unit-bin e2e sanitize demo install install-files uninstall deb deb-test clean core-check fuzz fuzz-deps fuzz-replay-bin \
	bench bench-bin bench-redis bench-cluster format format-check

all: deps
	@$(MAKE) --no-print-directory build

build: $(TETHERD) $(TETHER) $(LIBTETHER_A) $(LIBTETHER_SO)

# The agent alone; no libtether.so for Windows (EXE=.exe) or a static build (NO_SHARED=1):
# libtether.a only.
NO_SHARED ?=
agent: $(TETHER) $(LIBTETHER_A) $(if $(EXE)$(NO_SHARED),,$(LIBTETHER_SO))

deps:
	@scripts/deps.sh build

# The compile flags as a file that changes only when they do: objects depend on it, so that a
# build directory made with other flags (before -fvisibility=hidden, say) is rebuilt.
CFLAGS_STAMP := $(B)/obj/cflags.txt
CFLAGS_NOW := $(CC) $(CFLAGS_ALL) $(CPPFLAGS_ALL) $(CORE_WARN)
$(CFLAGS_STAMP): FORCE
	@mkdir -p $(dir $@)
	@if [ "$$(cat $@ 2>/dev/null)" != '$(CFLAGS_NOW)' ]; then echo '$(CFLAGS_NOW)' > $@; fi
FORCE:

# The commit built (git rev-parse; none outside a git tree) for /metrics' tether_build_info, in a
# file that changes only when it does: buildinfo.o alone depends on it (kept out of the unit
# tests' archive, so that a new commit rebuilds one object and relinks tetherd).
BUILD_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null | tr -cd '0-9a-f')
COMMIT_STAMP := $(B)/obj/commit.txt
$(COMMIT_STAMP): FORCE
	@mkdir -p $(dir $@)
	@if [ "$$(cat $@ 2>/dev/null)" != '$(BUILD_COMMIT)' ]; then echo '$(BUILD_COMMIT)' > $@; fi
$(B)/obj/src/relay/buildinfo.o: $(COMMIT_STAMP)
$(B)/obj/src/relay/buildinfo.o: CPPFLAGS_ALL += -DTT_BUILD_COMMIT='"$(BUILD_COMMIT)"'

$(B)/obj/src/core/%.o: src/core/%.c $(CFLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(CORE_WARN) $(OPT) -fPIC $(VISIBILITY) $(CFLAGS) -Iinclude -MMD -MP -c $< -o $@

$(B)/obj/%.o: %.c $(CFLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(CPPFLAGS_ALL) -MMD -MP -c $< -o $@

# Everything but main() files, for unit tests.
$(INTERNAL_A): $(CORE_OBJ) $(COMMON_OBJ) $(filter-out %/main.o %/buildinfo.o,$(RELAY_OBJ) $(AGENT_OBJ))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBTETHER_A): $(CORE_OBJ) $(COMMON_OBJ) $(AGENT_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBTETHER_SO): $(CORE_OBJ) $(COMMON_OBJ) $(AGENT_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libtether.so.$(SO_MAJOR) $(LDSAN) $(XLDFLAGS) $(LDFLAGS) \
		-o $@.$(SO_VERSION) $^ $(AGENT_LIBS)
	ln -sf libtether.so.$(SO_VERSION) $@.$(SO_MAJOR)
	ln -sf libtether.so.$(SO_MAJOR) $@

$(TETHERD): $(RELAY_OBJ) $(COMMON_OBJ) $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) $(LDFLAGS) -o $@ $^ $(RELAY_LIBS)

$(TETHER): $(CLI_OBJ) $(LIBTETHER_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) $(XLDFLAGS) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIBTETHER_A) $(AGENT_LIBS)

$(B)/tests/%: tests/unit/%.c $(UNIT_SUPPORT_OBJ) $(INTERNAL_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(CPPFLAGS_ALL) -Wno-unused-parameter -o $@ $< $(UNIT_SUPPORT_OBJ) \
		$(INTERNAL_A) $(LDSAN) $(LIBS) -lwslay -lcmocka

unit-bin: $(UNIT_BIN)

sanitize: deps
	@$(MAKE) --no-print-directory MODE=sanitize build unit-bin

# The whole suite runs on the sanitizer build; then the agent cross-built for each of
# TEST_CROSS_ARCHS runs the cross e2e set under qemu-user (tests/run-all.sh, CROSS_E2E; for
# android-arm64 the android/ tests, CROSS_E2E_ANDROID).
TEST_CROSS_ARCHS ?= arm64 android-arm64
# Then, as root, the Debian packages are built (make deb) and run-all.sh ends with their test
# (tests/deb/deb-test.sh: a debootstrapped root; a few minutes, the Debian mirror on the first
# run), counted in its closing line: TEST_DEB=0 leaves it out.
TEST_DEB ?= 1
test:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory MODE=release build
	@$(MAKE) --no-print-directory MODE=sanitize build unit-bin fuzz-replay-bin bench-bin
	@set -e; for a in $(TEST_CROSS_ARCHS); do $(MAKE) --no-print-directory cross ARCH=$$a; done
	@$(MAKE) --no-print-directory core-check CORTEX_M=require
	@$(MAKE) --no-print-directory mcu-host
	@$(MAKE) --no-print-directory mcu
	@if [ "$(TEST_DEB)" = 1 ] && [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory deb; fi
	@deb=0; if [ "$(TEST_DEB)" = 1 ] && [ "$$(id -u)" = 0 ]; then deb=1; fi; \
	MODE=sanitize CROSS_ARCHS="$(TEST_CROSS_ARCHS)" CROSS_E2E_ANDROID="android/" DEB_TESTS=$$deb \
	tests/run-all.sh

unit:
	@$(MAKE) --no-print-directory MODE=sanitize build unit-bin
	@MODE=sanitize tests/run-all.sh unit

e2e:
	@$(MAKE) --no-print-directory MODE=sanitize build
	@MODE=sanitize tests/run-all.sh e2e

demo: all
	@scripts/demo.sh

LIBDIR ?= $(PREFIX)/lib
# The documents the man pages' SEE ALSO names
DOCDIR ?= $(PREFIX)/share/doc/tether
DOCS := docs/operators-guide.md docs/PROTOCOL.md docs/DESIGN.md
# pkg-config tether: the flags to build against libtether (Libs.private: for --static)
define TETHER_PC
prefix=$(PREFIX)
libdir=$(LIBDIR)
includedir=$(PREFIX)/include

Name: tether
Description: Tether device SDK: makes a device's local services reachable through a Tether relay
Version: $(shell sed -n 's/^\#define TETHER_VERSION "\(.*\)"/\1/p' include/tether.h)
Libs: -L$${libdir} -ltether
Libs.private: $(AGENT_LIBS)
Cflags: -I$${includedir}
endef
export TETHER_PC

install: all
	@$(MAKE) --no-print-directory install-files

# What install copies, without building first (debian/rules builds, then runs this).
install-files:
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/include \
		$(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 755 $(TETHERD) $(TETHER) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(LIBTETHER_A) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(LIBTETHER_SO).$(SO_VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libtether.so.$(SO_VERSION) $(DESTDIR)$(LIBDIR)/libtether.so.$(SO_MAJOR)
	ln -sf libtether.so.$(SO_MAJOR) $(DESTDIR)$(LIBDIR)/libtether.so
	printf '%s\n' "$$TETHER_PC" > $(DESTDIR)$(LIBDIR)/pkgconfig/tether.pc
	chmod 644 $(DESTDIR)$(LIBDIR)/pkgconfig/tether.pc
	install -m 644 include/tether.h include/tether_err.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 docs/man/tether.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 docs/man/tetherd.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -d $(DESTDIR)$(DOCDIR)
	install -m 644 $(DOCS) $(DESTDIR)$(DOCDIR)/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/tetherd $(DESTDIR)$(PREFIX)/bin/tether \
		$(DESTDIR)$(LIBDIR)/libtether.a $(DESTDIR)$(LIBDIR)/libtether.so \
		$(DESTDIR)$(LIBDIR)/libtether.so.$(SO_MAJOR) $(DESTDIR)$(LIBDIR)/libtether.so.$(SO_VERSION) \
		$(DESTDIR)$(LIBDIR)/pkgconfig/tether.pc \
		$(DESTDIR)$(PREFIX)/include/tether.h $(DESTDIR)$(PREFIX)/include/tether_err.h \
		$(DESTDIR)$(PREFIX)/share/man/man1/tether.1 $(DESTDIR)$(PREFIX)/share/man/man8/tetherd.8 \
		$(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(DOCS)))
	rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true

# Debian packages (debian/): a copy of the tree's files in build/deb/src, built there by
# dpkg-buildpackage without the test suite (debian/rules), so that the four .debs land in
# build/deb/ (debug symbols in build/deb/dbgsym/); then lintian on them. deb-test installs them
# with apt in a debootstrapped Debian 12 root and checks them (tests/deb/deb-test.sh, as root;
# the Debian mirror on the first run, the root cached in build/deb-root/).
deb:
	@scripts/deps.sh deb
	rm -rf build/deb && mkdir -p build/deb/src/tether
	@# the tree's files: git's list (tracked and untracked, not ignored), or all but build/ and .git
	(git ls-files -z -co --exclude-standard 2>/dev/null || find . -path ./build -prune -o \
		-path ./.git -prune -o -type f -print0) | xargs -0 cp --parents -t build/deb/src/tether
	@# the outer make's flags and variables (MODE=..., its jobserver) are not the package build's
	cd build/deb/src/tether && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL dpkg-buildpackage -us -uc -b -j2
	mkdir -p build/deb/dbgsym && mv build/deb/src/*-dbgsym_*.deb build/deb/dbgsym/
	mv build/deb/src/*.deb build/deb/src/*.buildinfo build/deb/src/*.changes build/deb/
	lintian --fail-on error build/deb/*.deb

deb-test: deb
	tests/deb/deb-test.sh

# src/core alone, strict flags, and nothing but libc underneath.
core-check:
	@mkdir -p build/core-check
	@for f in $(CORE_SRC); do \
		$(CC) $(CSTD) $(CORE_WARN) -O2 -ffreestanding -fno-builtin -Iinclude -c $$f \
			-o build/core-check/$$(basename $$f .c).o || exit 1; done
	@rm -f build/core-check/all.ro && ld -r -o build/core-check/all.ro build/core-check/*.o
	@undef=$$(nm -u build/core-check/all.ro | awk 'NF==2{print $$2}' | sort -u | \
		grep -v -x -E 'memcpy|memmove|memset|memcmp|strlen|__stack_chk_fail' || true); \
	if [ -n "$$undef" ]; then echo "core-check: src/core needs more than libc: $$undef"; exit 1; fi; \
	echo "core-check: src/core builds alone and needs only libc memory/string functions"
	@$(MAKE) --no-print-directory core-check-cortex-m

# The same for a Cortex-M0+ microcontroller (Thumb-1, no FPU, no OS, no heap): Debian's
# arm-none-eabi-gcc with newlib's headers only; the object may need memcpy/memmove/memset/memcmp/
# strlen and libgcc's helpers, nothing else (no malloc). Skipped with a note when the compiler is
# missing, unless CORTEX_M=require (make test installs it: scripts/deps.sh test).
CORTEX_M ?= optional
CORTEX_M_FLAGS := -mcpu=cortex-m0plus -mthumb -Os -ffreestanding -fno-builtin -isystem /usr/include/newlib
core-check-cortex-m:
	@if ! command -v arm-none-eabi-gcc >/dev/null 2>&1 || [ ! -f /usr/include/newlib/string.h ]; then \
		echo "core-check: no arm-none-eabi-gcc or newlib headers (scripts/deps.sh cortex-m): Cortex-M build skipped"; \
		[ "$(CORTEX_M)" != require ] || exit 1; exit 0; fi; \
	mkdir -p build/core-check/cortex-m; \
	for f in $(CORE_SRC); do \
		arm-none-eabi-gcc $(CSTD) $(CORE_WARN) $(CORTEX_M_FLAGS) -Iinclude -c $$f \
			-o build/core-check/cortex-m/$$(basename $$f .c).o || exit 1; done; \
	rm -f build/core-check/cortex-m/all.ro; \
	arm-none-eabi-ld -r -o build/core-check/cortex-m/all.ro build/core-check/cortex-m/*.o || exit 1; \
	undef=$$(arm-none-eabi-nm -u build/core-check/cortex-m/all.ro | awk 'NF==2{print $$2}' | sort -u | \
		grep -v -x -E 'memcpy|memmove|memset|memcmp|strlen|__aeabi_[a-z0-9_]*|__gnu_thumb1_case_[a-z0-9]*' || true); \
	if [ -n "$$undef" ]; then echo "core-check: src/core for Cortex-M needs more than libc: $$undef"; exit 1; fi; \
	arm-none-eabi-size build/core-check/cortex-m/all.ro | awk 'NR==2{printf "core-check: src/core builds for Cortex-M0+ (Thumb): %d bytes of code, %d of data, %d of bss; no heap\n", $$1, $$2, $$3}'

# Cross-building the agent for another Linux CPU: Debian's cross gcc (a Debian package, with its
# C library in /usr/TRIPLET) and Debian's own builds of libuv, OpenSSL, jansson, http-parser and
# c-ares for ARCH, unpacked into build/cross-ARCH/sysroot (no dpkg multiarch; see the script).
ARCH ?= arm64
CROSS_ARCHS ?= arm64 armhf mipsel win64 android-arm64
TRIPLET_arm64 := aarch64-linux-gnu
TRIPLET_armhf := arm-linux-gnueabihf
TRIPLET_mipsel := mipsel-linux-gnu
TRIPLET_win64 := x86_64-w64-mingw32
TRIPLET_android-arm64 := aarch64-linux-musl
QEMU_arm64 := qemu-aarch64
QEMU_armhf := qemu-arm
QEMU_mipsel := qemu-mipsel
XTRIPLET = $(TRIPLET_$(ARCH))
XB := build/cross-$(ARCH)
XSYSROOT = $(CURDIR)/$(XB)/sysroot

cross-deps:
	@test -n "$(XTRIPLET)" || { echo "make cross: ARCH must be one of: arm64 armhf mipsel win64 android-arm64"; exit 2; }
	@scripts/deps.sh cross-$(ARCH)
	@if [ "$(ARCH)" = win64 ]; then scripts/cross-sysroot-win.sh $(XB)/sysroot; \
	elif [ "$(ARCH)" = android-arm64 ]; then JOBS=$(CROSS_JOBS) scripts/cross-sysroot-android.sh $(XB)/sysroot; \
	else scripts/cross-sysroot.sh $(ARCH) $(XB)/sysroot; fi

# Windows x86_64 (mingw-w64): static libraries built from Debian's sources
# (scripts/cross-sysroot-win.sh), one static tether.exe, libtether.a; bin/tether-wine runs it.
WIN_LIBS := -lcares -luv -lssl -lcrypto -lhttp_parser -ljansson -lws2_32 -liphlpapi -luserenv \
	-ldbghelp -lole32 -lshell32 -luser32 -ladvapi32 -lcrypt32 -lbcrypt -lgdi32

# Android arm64: Debian has no Android NDK, so the agent is one static program on Debian's musl
# (scripts/cross-sysroot-android.sh builds musl's compiler wrapper and the libraries): it needs
# nothing from the system, not even a dynamic loader. TT_RESOLVE_NO_SYSTEM: names are looked up
# with c-ares only (src/agent/resolve.c), never with the C library's getaddrinfo.
ANDROID_LIBS := -lcares -luv -lssl -lcrypto -lhttp_parser -ljansson -lm -lpthread
# Parallel jobs for the libraries built from source (the sysroot is built once per build dir).
CROSS_JOBS ?= $(shell nproc 2>/dev/null || echo 1)

cross: cross-deps
ifeq ($(ARCH),android-arm64)
	@$(MAKE) --no-print-directory MODE=release B=$(XB) CC=$(XSYSROOT)/bin/aarch64-linux-musl-gcc \
		XCPPFLAGS="-I$(XSYSROOT)/include -DTT_RESOLVE_NO_SYSTEM" \
		XLDFLAGS="-L$(XSYSROOT)/lib -static" AGENT_LIBS="$(ANDROID_LIBS)" NO_SHARED=1 agent
	@printf '%s\n' '#!/bin/sh' '# Runs the static Android tether here under qemu-user.' \
		'exec $(QEMU_arm64) "$$(dirname "$$0")/tether" "$$@"' \
		> $(XB)/bin/tether-qemu && chmod 755 $(XB)/bin/tether-qemu
	@echo "cross: $(ARCH): $$(file -b $(XB)/bin/tether | cut -d, -f1-2,4)"
else ifeq ($(ARCH),win64)
	@$(MAKE) --no-print-directory MODE=release B=$(XB) CC=$(XTRIPLET)-gcc EXE=.exe \
		XCPPFLAGS="-I$(XSYSROOT)/include -D__USE_MINGW_ANSI_STDIO=1 -D_WIN32_WINNT=0x0602 -DCARES_STATICLIB" \
		XLDFLAGS="-L$(XSYSROOT)/lib -static" AGENT_LIBS="$(WIN_LIBS)" agent
	@printf '%s\n' '#!/bin/sh' '# Runs the Windows tether.exe here under Wine.' \
		'exec wine "$$(dirname "$$0")/tether.exe" "$$@"' \
		> $(XB)/bin/tether-wine && chmod 755 $(XB)/bin/tether-wine
	@echo "cross: $(ARCH): $$(file -b $(XB)/bin/tether.exe | cut -d, -f1)"
else
	@$(MAKE) --no-print-directory MODE=release B=$(XB) CC=$(XTRIPLET)-gcc \
		XCPPFLAGS="-I$(XSYSROOT)/usr/include -I$(XSYSROOT)/usr/include/$(XTRIPLET)" \
		XLDFLAGS="-L$(XSYSROOT)/usr/lib/$(XTRIPLET) -Wl,-rpath-link,$(XSYSROOT)/usr/lib/$(XTRIPLET)" \
		agent
	@printf '%s\n' '#!/bin/sh' \
		'# Runs the $(ARCH) tether under qemu-user: its C library from Debian'"'"'s cross package,' \
		'# its other libraries from the sysroot that make cross unpacked.' \
		'exec $(QEMU_$(ARCH)) -L /usr/$(XTRIPLET) -E LD_LIBRARY_PATH=$(XSYSROOT)/usr/lib/$(XTRIPLET) "$$(dirname "$$0")/tether" "$$@"' \
		> $(XB)/bin/tether-qemu && chmod 755 $(XB)/bin/tether-qemu
	@echo "cross: $(ARCH): $$(file -b $(XB)/bin/tether | cut -d, -f1-2)"
endif

# The native relay (release build) and each cross-built agent under qemu-user.
cross-test:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory MODE=release build
	@set -e; for a in $(CROSS_ARCHS); do $(MAKE) --no-print-directory cross ARCH=$$a; done
	@MODE=release CROSS_ARCHS="$(CROSS_ARCHS)" CROSS_E2E="$(or $(CROSS_E2E),all)" \
		CROSS_E2E_ANDROID="$(if $(CROSS_E2E),$(CROSS_E2E) android/,all)" tests/run-all.sh cross

FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(patsubst tests/fuzz/%.c,$(B)/fuzz/%-replay,$(FUZZ_SRC))

$(B)/fuzz/%-replay: tests/fuzz/%.c tests/fuzz/replay_main.c $(INTERNAL_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(CPPFLAGS_ALL) -o $@ $< tests/fuzz/replay_main.c $(INTERNAL_A) \
		$(LDSAN) $(LIBS)

fuzz-replay-bin: $(FUZZ_REPLAY)

FUZZ_RUNS ?= 200000
FUZZ_TIME ?= 120
# 0: a new random seed each run; CI passes a fixed one so that its run is repeatable
FUZZ_SEED ?= 0
FUZZ_ONLY ?=
FUZZ_RUN_SRC := $(if $(FUZZ_ONLY),$(patsubst %,tests/fuzz/%.c,$(FUZZ_ONLY)),$(FUZZ_SRC))
# The code under test is compiled once with clang's coverage instrumentation
# (-fsanitize=fuzzer-no-link) into one archive; each target links against it.
FUZZ_LIB_SRC := $(CORE_SRC) $(COMMON_SRC) $(filter-out %/main.c,$(RELAY_SRC)) src/agent/proxy.c \
	src/agent/relaytext.c src/agent/hostaddr.c
FUZZ_LIB_OBJ := $(patsubst %.c,build/fuzz/obj/%.o,$(FUZZ_LIB_SRC))
FUZZ_CFLAGS := -std=c17 -g -O1 -fsanitize=address,undefined $(CPPFLAGS_ALL)

build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

build/fuzz/libfuzzed.a: $(FUZZ_LIB_OBJ)
	@rm -f $@ && ar rcs $@ $^

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c build/fuzz/libfuzzed.a
	@clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< build/fuzz/libfuzzed.a $(LIBS)

fuzz-deps:
	@scripts/deps.sh fuzz

# Runs each target for at most FUZZ_RUNS runs or FUZZ_TIME seconds over its corpus (new inputs
# go to build/fuzz/NAME-new, crashes to tests/fuzz/crashes/); one summary line per target.
fuzz: fuzz-deps
	@$(MAKE) --no-print-directory $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_RUN_SRC))
	@set -e; for f in $(FUZZ_RUN_SRC); do n=$$(basename $$f .c); \
		mkdir -p build/fuzz/$$n-new; \
		if build/fuzz/$$n -runs=$(FUZZ_RUNS) -max_total_time=$(FUZZ_TIME) -seed=$(FUZZ_SEED) \
			-artifact_prefix=tests/fuzz/crashes/$$n- build/fuzz/$$n-new tests/fuzz/corpus/$$n \
			> build/fuzz/$$n.log 2>&1; then \
			echo "fuzz: $$n: $$(grep -o 'Done [0-9]* runs in [0-9]* second(s)' build/fuzz/$$n.log), no crash"; \
		else tail -n 40 build/fuzz/$$n.log; echo "fuzz: $$n: FAILED (see build/fuzz/$$n.log)"; exit 1; fi; \
	done

LOADGEN := $(B)/bin/loadgen

$(LOADGEN): bench/loadgen.c $(INTERNAL_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(CPPFLAGS_ALL) -o $@ $< $(INTERNAL_A) $(LDSAN) $(LIBS)

bench-bin: $(LOADGEN)

bench: all
	@$(MAKE) --no-print-directory MODE=release bench-bin
	@scripts/deps.sh bench
	@bench/run.sh $(BENCH_ARGS)

# A slowed (bench/redis_slow.py) and a stopped Redis against one cluster node: main's release
# binary (TETHER_BASELINE=DIR holding an older tetherd and tether, or BENCH_ARGS="LABEL=TETHERD
# ...") and this tree's.
bench-redis:
	@$(MAKE) --no-print-directory MODE=release build
	@python3 bench/async_registry.py $(BENCH_ARGS)

bench-cluster: all
	@$(MAKE) --no-print-directory MODE=release bench-bin
	@nice python3 bench/cluster.py $(BENCH_CLUSTER_ARGS)

FORMAT_FILES = $(shell git ls-files '*.c' '*.h' | grep -v '^third_party/')
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf build

# The microcontroller agent: make mcu, mcu-host, mcu-test, mcu-qemu (mcu/mcu.mk).
include mcu/mcu.mk

# Dependency files of our own objects (not directories of unpacked sources that end in .d).
-include $(shell find build -name '*.d' -type f -not -path 'build/mcu/deps/*' -not -path 'build/deb*' 2>/dev/null)
