# mcu.mk - the microcontroller agent's targets, included by the top-level Makefile:
#   make mcu       the example firmware for the MPS2 AN385 board (Cortex-M3), with a size report:
#                  the agent itself (mcu/agent + src/core), the libraries it uses (mbedTLS SHA-1
#                  and base64, picohttpparser), lwIP, and the example with its board port
#   make mcu-host  the same agent and example on lwIP in a Linux process, on a TAP device, and
#                  the agent's unit tests (build/mcu/host)
#   make mcu-test  mcu-host, then the agent against a real tetherd in a network namespace
#                  (tests/run-all.sh mcu; root: it creates a namespace and a TAP device)
#   make mcu-fuzz  the WebSocket client's libFuzzer target (FUZZ_TIME, FUZZ_RUNS, FUZZ_SEED)
#   make mcu-qemu  mcu, then the same tests with the firmware itself on QEMU's mps2-an385 (its
#                  LAN9118 on a TAP device in a namespace) against a real tetherd
# make test builds mcu-host and mcu; tests/run-all.sh runs both (MCU_QEMU=0 leaves QEMU out).
# Packages: scripts/deps.sh mcu.
# lwIP, mbedTLS and picohttpparser are Debian's sources, unpacked into build/mcu/deps by
# mcu/tools/sources.sh (never committed).

MCU_DEPS := build/mcu/deps
MCU_LWIP := $(MCU_DEPS)/lwip/src
MCU_MBED := $(MCU_DEPS)/mbedtls
MCU_PICO := $(MCU_DEPS)/picohttpparser

MCU_AGENT_SRC := mcu/agent/tether_mcu.c mcu/agent/mcuws.c
MCU_CORE_SRC := src/core/frame.c src/core/session.c src/core/err.c src/core/dialtimeout.c
MCU_LIB_SRC := $(MCU_MBED)/library/sha1.c $(MCU_MBED)/library/base64.c \
	$(MCU_MBED)/library/platform_util.c $(MCU_MBED)/library/constant_time.c \
	$(MCU_PICO)/picohttpparser.c
MCU_LWIP_SRC := $(addprefix $(MCU_LWIP)/core/,init.c def.c dns.c inet_chksum.c ip.c mem.c memp.c \
	netif.c pbuf.c raw.c stats.c sys.c tcp.c tcp_in.c tcp_out.c timeouts.c udp.c) \
	$(addprefix $(MCU_LWIP)/core/ipv4/,etharp.c icmp.c ip4.c ip4_addr.c ip4_frag.c) \
	$(MCU_LWIP)/netif/ethernet.c
MCU_APP_SRC := mcu/example/app.c

MCU_INC = -Imcu/agent -Imcu/example -Imcu/port -Isrc -Iinclude -I$(MCU_LWIP)/include \
	-I$(MCU_MBED)/include -I$(MCU_PICO) -DMBEDTLS_CONFIG_FILE='"mbedtls_config.h"'
MCU_WARN := -std=c17 -Wall -Wextra -Werror
# Third-party sources: their own warnings are not ours to fix.
MCU_LIBWARN := -std=gnu17 -w

# ---- the firmware (Cortex-M3, MPS2 AN385) -------------------------------------------------------
MCU_FW := build/mcu/fw
MCU_CPU := -mcpu=cortex-m3 -mthumb
MCU_FW_CFLAGS := $(MCU_CPU) -Os -g -ffunction-sections -fdata-sections -ffreestanding \
	-isystem /usr/include/newlib -Imcu/port/mps2 $(MCU_INC) $(MCU_FW_DEFS)
MCU_FW_SRC := mcu/port/mps2/main.c mcu/port/mps2/startup.c mcu/port/mps2/lan9118.c
fwobj = $(patsubst %.c,$(MCU_FW)/obj/%.o,$(subst $(MCU_DEPS)/,deps/,$(1)))
MCU_FW_OWN := $(MCU_AGENT_SRC) $(MCU_CORE_SRC) $(MCU_APP_SRC) $(MCU_FW_SRC)

$(MCU_FW)/obj/deps/%.o: $(MCU_DEPS)/%.c | $(MCU_DEPS)/.done
	@mkdir -p $(dir $@)
	@arm-none-eabi-gcc $(MCU_LIBWARN) $(MCU_FW_CFLAGS) -c $< -o $@

$(MCU_FW)/obj/%.o: %.c | $(MCU_DEPS)/.done
	@mkdir -p $(dir $@)
	arm-none-eabi-gcc $(MCU_WARN) $(MCU_FW_CFLAGS) -fstack-usage -MMD -MP -c $< -o $@

MCU_FW_OBJ := $(call fwobj,$(MCU_FW_OWN) $(MCU_LIB_SRC) $(MCU_LWIP_SRC))

$(MCU_FW)/tether-mcu-mps2.elf: $(MCU_FW_OBJ) mcu/port/mps2/mps2.ld
	arm-none-eabi-gcc $(MCU_CPU) -nostartfiles --specs=nano.specs -Wl,--gc-sections \
		-Wl,-T,mcu/port/mps2/mps2.ld -Wl,-Map,$(MCU_FW)/tether-mcu-mps2.map -o $@ $(MCU_FW_OBJ)

$(MCU_DEPS)/.done:
	@mcu/tools/sources.sh $(MCU_DEPS)

mcu-deps:
	@scripts/deps.sh mcu

mcu: mcu-deps
	@$(MAKE) --no-print-directory $(MCU_DEPS)/.done
	@$(MAKE) --no-print-directory $(MCU_FW)/tether-mcu-mps2.elf
	@python3 mcu/tools/sizes.py $(MCU_FW)/tether-mcu-mps2.elf $(MCU_FW)/tether-mcu-mps2.map --su-dir $(MCU_FW)/obj

# ---- the user-space build (lwIP on a TAP device) ---------------------------------------------------
MCU_HOST := build/mcu/host
MCU_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
MCU_HOST_CFLAGS := -O1 -g $(MCU_SAN) -D_GNU_SOURCE -Imcu/port/unix $(MCU_INC)
hostobj = $(patsubst %.c,$(MCU_HOST)/obj/%.o,$(subst $(MCU_DEPS)/,deps/,$(1)))
MCU_HOST_OWN := $(MCU_AGENT_SRC) $(MCU_CORE_SRC) $(MCU_APP_SRC) mcu/port/unix/main.c

$(MCU_HOST)/obj/deps/%.o: $(MCU_DEPS)/%.c | $(MCU_DEPS)/.done
	@mkdir -p $(dir $@)
	@$(CC) $(MCU_LIBWARN) $(MCU_HOST_CFLAGS) -c $< -o $@

$(MCU_HOST)/obj/%.o: %.c | $(MCU_DEPS)/.done
	@mkdir -p $(dir $@)
	$(CC) $(MCU_WARN) $(MCU_HOST_CFLAGS) -MMD -MP -c $< -o $@

MCU_HOST_OBJ := $(call hostobj,$(MCU_HOST_OWN) $(MCU_LIB_SRC) $(MCU_LWIP_SRC))

$(MCU_HOST)/tether-mcu-host: $(MCU_HOST_OBJ)
	$(CC) $(MCU_SAN) -o $@ $^

$(MCU_HOST)/tests/test_mcuws: mcu/tests/test_mcuws.c $(call hostobj,mcu/agent/mcuws.c $(MCU_LIB_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(MCU_WARN) $(MCU_HOST_CFLAGS) -Wno-unused-parameter -o $@ $^ -lcmocka

# The back-off test includes tether_mcu.c (its static functions) and links lwIP, whose sys_now
# and random source it fakes.
MCU_TEST_LINK := $(call hostobj,mcu/agent/mcuws.c $(MCU_CORE_SRC) $(MCU_LIB_SRC) $(MCU_LWIP_SRC))
$(MCU_HOST)/tests/test_backoff: mcu/tests/test_backoff.c mcu/agent/tether_mcu.c $(MCU_TEST_LINK)
	@mkdir -p $(dir $@)
	$(CC) $(MCU_WARN) $(MCU_HOST_CFLAGS) -o $@ $< $(MCU_TEST_LINK) -lcmocka

# The WebSocket client's fuzz target: a gcc replay of its seeds for make test, and libFuzzer runs
# (make mcu-fuzz, clang: at most FUZZ_TIME seconds, new inputs kept in build/mcu/fuzz/corpus).
MCU_FUZZ_LINK_SRC := mcu/agent/mcuws.c $(MCU_LIB_SRC)
$(MCU_HOST)/fuzz/fuzz_mcuws-replay: mcu/tests/fuzz_mcuws.c tests/fuzz/replay_main.c \
		$(call hostobj,$(MCU_FUZZ_LINK_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(MCU_WARN) $(MCU_HOST_CFLAGS) -o $@ $^

MCU_FUZZ := build/mcu/fuzz
$(MCU_FUZZ)/obj/%.o: %.c | $(MCU_DEPS)/.done
	@mkdir -p $(dir $@)
	@clang -std=gnu17 -w -g -O1 -fsanitize=address,undefined,fuzzer-no-link -D_GNU_SOURCE \
		$(MCU_INC) -c $< -o $@

$(MCU_FUZZ)/fuzz_mcuws: mcu/tests/fuzz_mcuws.c $(patsubst %.c,$(MCU_FUZZ)/obj/%.o,$(MCU_FUZZ_LINK_SRC))
	clang -std=c17 -Wall -Wextra -Werror -g -O1 -fsanitize=address,undefined,fuzzer $(MCU_INC) \
		-o $@ $^

mcu-fuzz: mcu-deps
	@scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory $(MCU_DEPS)/.done
	@$(MAKE) --no-print-directory $(MCU_FUZZ)/fuzz_mcuws
	@mkdir -p $(MCU_FUZZ)/corpus
	$(MCU_FUZZ)/fuzz_mcuws -max_total_time=$(FUZZ_TIME) -runs=$(FUZZ_RUNS) -seed=$(FUZZ_SEED) \
		-max_len=4096 $(MCU_FUZZ)/corpus mcu/tests/corpus/fuzz_mcuws

mcu-host: mcu-deps
	@$(MAKE) --no-print-directory $(MCU_DEPS)/.done
	@$(MAKE) --no-print-directory $(MCU_HOST)/tether-mcu-host $(MCU_HOST)/tests/test_mcuws \
		$(MCU_HOST)/tests/test_backoff $(MCU_HOST)/fuzz/fuzz_mcuws-replay

mcu-test:
	@$(MAKE) --no-print-directory MODE=sanitize build
	@$(MAKE) --no-print-directory mcu-host
	@MODE=sanitize MCU_QEMU=0 tests/run-all.sh mcu

mcu-qemu: mcu-deps
	@$(MAKE) --no-print-directory MODE=sanitize build
	@$(MAKE) --no-print-directory mcu
	@python3 mcu/tests/run.py --tetherd build/sanitize/bin/tetherd \
		--qemu $(MCU_FW)/tether-mcu-mps2.elf

.PHONY: mcu mcu-deps mcu-host mcu-test mcu-qemu mcu-fuzz
