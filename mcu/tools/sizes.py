#!/usr/bin/env python3
"""sizes.py - the size report of make mcu: flash (text + rodata + data) and RAM (data + bss) of
the linked example firmware, split by who owns the bytes (the agent itself, src/core, the two
small libraries the agent uses, lwIP, the example application, the board port, the C library),
read from the linker's map file (input sections as placed, after --gc-sections). The agent's one
struct (tt_fw_agent, defined by the board's main.c) is counted as the agent's RAM. Also checks
that nothing of the C library's heap is linked in (malloc, free, calloc, realloc, sbrk): exits 1
if it is. Also prints the deepest stack frame of the agent's and the core's functions
(-fstack-usage).

Usage: sizes.py FIRMWARE.elf FIRMWARE.map [--su-dir DIR] [--markdown]"""

import argparse
import glob
import os
import re
import subprocess
import sys

GROUPS = [
    ("agent", "the agent (mcu/agent)"),
    ("core", "protocol core (src/core)"),
    ("libs", "SHA-1, base64 (mbedTLS), picohttpparser"),
    ("lwip", "lwIP (IPv4, TCP, ARP, Ethernet)"),
    ("app", "example application (mcu/example)"),
    ("board", "board port (mcu/port/mps2, LAN9118)"),
    ("libc", "C library, libgcc (newlib-nano)"),
]
HEAP = {"malloc", "free", "calloc", "realloc", "_malloc_r", "_free_r", "_calloc_r",
        "_realloc_r", "_sbrk", "_sbrk_r", "sbrk"}


def group_of(obj):
    o = obj.replace("\\", "/")
    if "/obj/mcu/agent/" in o:
        return "agent"
    if "/obj/src/core/" in o:
        return "core"
    if "/obj/deps/mbedtls/" in o or "/obj/deps/picohttpparser/" in o:
        return "libs"
    if "/obj/deps/lwip/" in o:
        return "lwip"
    if "/obj/mcu/example/" in o:
        return "app"
    if "/obj/mcu/port/" in o:
        return "board"
    return "libc"


def kind_of(outsec):
    if outsec in (".text", ".ARM.exidx"):
        return "text"
    if outsec in (".rodata", ".isr_vector"):
        return "rodata"
    if outsec == ".data":
        return "data"
    if outsec == ".bss":
        return "bss"
    return None


def parse_map(path):
    sizes = {g: {"text": 0, "rodata": 0, "data": 0, "bss": 0} for g, _ in GROUPS}
    in_map = False
    outsec = None
    pending = None  # an input section name on a line of its own
    line_re = re.compile(r"^\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(\S.*)$")
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("Linker script and memory map"):
                in_map = True
                continue
            if not in_map:
                continue
            m = re.match(r"^(\.[A-Za-z0-9_.]+)\s*(0x[0-9a-f]+)?", line)
            if m and not line.startswith(" "):
                outsec = m.group(1)
                pending = None
                continue
            if line.startswith(" *fill*"):
                continue
            m = re.match(r"^ (\S+)\s*$", line)
            if m and not line.startswith(" *"):
                pending = m.group(1)
                continue
            m = re.match(r"^ (\S+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(\S.*)$", line)
            if m:
                name, size, obj = m.group(1), int(m.group(3), 16), m.group(4)
            else:
                m = line_re.match(line)
                if not m or pending is None:
                    pending = None
                    continue
                name, size, obj = pending, int(m.group(2), 16), m.group(3)
            pending = None
            if name.startswith("*") or size == 0 or not obj.endswith((".o", ".o)")):
                continue
            k = kind_of(outsec)
            if k:
                sizes[group_of(obj)][k] += size
    return sizes


def nm(elf):
    out = subprocess.run(["arm-none-eabi-nm", "-S", "--defined-only", elf], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    syms = {}
    for line in out.splitlines():
        p = line.split()
        if len(p) == 4:
            syms[p[3]] = (p[2], int(p[1], 16))
        elif len(p) == 3:
            syms[p[2]] = (p[1], 0)
    return syms


def stack_max(su_dir, sub):
    best = (0, "")
    for path in glob.glob(os.path.join(su_dir, sub, "**", "*.su"), recursive=True):
        with open(path) as f:
            for line in f:
                p = line.rstrip("\n").split("\t")
                if len(p) >= 2 and p[1].isdigit() and int(p[1]) > best[0]:
                    best = (int(p[1]), p[0].rsplit(":", 1)[-1])
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("elf")
    ap.add_argument("map")
    ap.add_argument("--su-dir", default=None)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()

    sizes = parse_map(a.map)
    syms = nm(a.elf)
    heap = sorted(HEAP & set(syms))
    agent_struct = syms.get("tt_fw_agent", ("", 0))[1]
    sizes["board"]["bss"] -= agent_struct
    sizes["agent"]["bss"] += agent_struct
    stack = syms.get("tt_stack_top")

    rows = []
    tot_f = tot_r = 0
    for g, label in GROUPS:
        s = sizes[g]
        flash = s["text"] + s["rodata"] + s["data"]
        ram = s["data"] + s["bss"]
        tot_f += flash
        tot_r += ram
        rows.append((label, s["text"], s["rodata"], s["data"], s["bss"], flash, ram))
    head = ("", "text", "rodata", "data", "bss", "flash", "RAM")
    if a.markdown:
        print("| part | text | rodata | data | bss | flash | RAM |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in rows:
            print("| %s | %d | %d | %d | %d | **%d** | **%d** |" % r)
        print("| total | | | | | **%d** | **%d** |" % (tot_f, tot_r))
    else:
        print("make mcu: %s (Cortex-M3, -Os), bytes" % os.path.basename(a.elf))
        print("%-42s %7s %7s %6s %7s %8s %7s" % head)
        for r in rows:
            print("%-42s %7d %7d %6d %7d %8d %7d" % r)
        print("%-42s %7s %7s %6s %7s %8d %7d" % ("total", "", "", "", "", tot_f, tot_r))
    ag = sizes["agent"]
    co = sizes["core"]
    af = ag["text"] + ag["rodata"] + ag["data"]
    ar = ag["data"] + ag["bss"]
    print("agent: flash %d B (%.1f KiB), RAM %d B (%.1f KiB), of which its struct %d B "
          "(TETHER_MCU_MAX_STREAMS streams of TETHER_MCU_WINDOW-byte windows)" %
          (af, af / 1024, ar, ar / 1024, agent_struct))
    print("agent + src/core: flash %d B (%.1f KiB), RAM %d B (%.1f KiB)" %
          (af + co["text"] + co["rodata"] + co["data"],
           (af + co["text"] + co["rodata"] + co["data"]) / 1024, ar + co["data"] + co["bss"],
           (ar + co["data"] + co["bss"]) / 1024))
    if stack:
        print("stack: 8192 B reserved (mps2.ld), not counted above")
    if a.su_dir:
        for sub, label in (("mcu/agent", "agent"), ("src/core", "src/core")):
            n, fn = stack_max(a.su_dir, sub)
            print("deepest stack frame in %s: %d B (%s)" % (label, n, fn))
    if heap:
        print("make mcu: FAIL: the C library's heap is linked in: %s" % ", ".join(heap))
        return 1
    print("no heap: none of malloc, free, calloc, realloc, sbrk is linked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
