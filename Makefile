# Tether - top-level Makefile.
#   make            build tetherd, tether, libtether (release, into build/release)
#   make test       install what tests need, build with ASan+UBSan, run every test
#   make demo       build, start a relay and an agent exposing a sample page, print its URL
#   make install PREFIX=/usr/local [DESTDIR=...]
#   make sanitize   build with -fsanitize=address,undefined into build/sanitize
#   make core-check build src/core alone with the strict flags and check it needs only libc
#   make fuzz       build the libFuzzer targets with clang and run each for a bounded time
#                   (at most FUZZ_TIME seconds, default 120, and FUZZ_RUNS inputs; FUZZ_SEED=N
#                   repeats a run; FUZZ_ONLY=
#                   "fuzz_x ..." picks targets); crashes land in tests/fuzz/crashes/, which
#                   make test replays
#   make bench      run bench/ (never part of make test); BENCH_ARGS=--quick for a short run
#   make bench-bin  build bench/loadgen (many idle devices) into $(B)/bin
#   make format / format-check
# The build directory follows MODE (release or sanitize); binaries land in $(B)/bin.
# B=DIR overrides it (parallel work trees: make MODE=sanitize B=build/mine unit-bin).

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
CPPFLAGS_ALL := -Iinclude -Isrc -D_GNU_SOURCE
OPT_release := -O2 -g
OPT_sanitize := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT := $(OPT_$(MODE))
LDSAN_sanitize := -fsanitize=address,undefined
LDSAN := $(LDSAN_$(MODE))
CFLAGS_ALL := $(CSTD) $(APP_WARN) $(OPT) -fPIC $(CFLAGS)
LIBS := -luv -lssl -lcrypto -lhttp_parser -ljansson -lsqlite3 -lhiredis -lm -lpthread

CORE_SRC := $(wildcard src/core/*.c)
COMMON_SRC := $(wildcard src/common/*.c)
RELAY_SRC := $(wildcard src/relay/*.c)
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
TETHER := $(B)/bin/tether
LIBTETHER_A := $(B)/lib/libtether.a
LIBTETHER_SO := $(B)/lib/libtether.so
INTERNAL_A := $(B)/lib/libtt_internal.a

.PHONY: all build deps test unit unit-bin e2e sanitize demo install clean core-check fuzz fuzz-deps fuzz-replay-bin \
	bench bench-bin format format-check

all: deps
	@$(MAKE) --no-print-directory build

build: $(TETHERD) $(TETHER) $(LIBTETHER_A) $(LIBTETHER_SO)

deps:
	@scripts/deps.sh build

$(B)/obj/src/core/%.o: src/core/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(CORE_WARN) $(OPT) -fPIC $(CFLAGS) -Iinclude -MMD -MP -c $< -o $@

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(CPPFLAGS_ALL) -MMD -MP -c $< -o $@

# Everything but main() files, for unit tests.
$(INTERNAL_A): $(CORE_OBJ) $(COMMON_OBJ) $(filter-out %/main.o,$(RELAY_OBJ) $(AGENT_OBJ))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBTETHER_A): $(CORE_OBJ) $(COMMON_OBJ) $(AGENT_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBTETHER_SO): $(CORE_OBJ) $(COMMON_OBJ) $(AGENT_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDSAN) -o $@ $^ $(LIBS)

$(TETHERD): $(RELAY_OBJ) $(COMMON_OBJ) $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $^ $(LIBS)

$(TETHER): $(CLI_OBJ) $(LIBTETHER_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $(CLI_OBJ) $(LIBTETHER_A) $(LIBS)

$(B)/tests/%: tests/unit/%.c $(UNIT_SUPPORT_OBJ) $(INTERNAL_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(CPPFLAGS_ALL) -Wno-unused-parameter -o $@ $< $(UNIT_SUPPORT_OBJ) \
		$(INTERNAL_A) $(LDSAN) $(LIBS) -lwslay -lcmocka

unit-bin: $(UNIT_BIN)

sanitize: deps
	@$(MAKE) --no-print-directory MODE=sanitize build unit-bin

# The whole suite runs on the sanitizer build.
test:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory MODE=release build
	@$(MAKE) --no-print-directory MODE=sanitize build unit-bin fuzz-replay-bin
	@$(MAKE) --no-print-directory core-check
	@MODE=sanitize tests/run-all.sh

unit:
	@$(MAKE) --no-print-directory MODE=sanitize build unit-bin
	@MODE=sanitize tests/run-all.sh unit

e2e:
	@$(MAKE) --no-print-directory MODE=sanitize build
	@MODE=sanitize tests/run-all.sh e2e

demo: all
	@scripts/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
		$(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 755 build/release/bin/tetherd build/release/bin/tether $(DESTDIR)$(PREFIX)/bin/
	install -m 644 build/release/lib/libtether.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 build/release/lib/libtether.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/tether.h include/tether_err.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 docs/man/tether.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 docs/man/tetherd.8 $(DESTDIR)$(PREFIX)/share/man/man8/

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
FUZZ_LIB_SRC := $(CORE_SRC) $(COMMON_SRC) $(filter-out %/main.c,$(RELAY_SRC)) src/agent/proxy.c
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

FORMAT_FILES = $(shell git ls-files '*.c' '*.h' | grep -v '^third_party/')
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
