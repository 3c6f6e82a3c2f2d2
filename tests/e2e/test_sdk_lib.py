"""test_sdk_lib.py - libtether.so as a user links it: it exports only the SDK's tether_* functions
(every object is built with -fvisibility=hidden; include/tether.h marks the API with TETHER_API),
its SONAME is libtether.so.1 (the file libtether.so.1.0.0, with the links libtether.so.1 and
libtether.so beside it), a program built on tether.h alone (tests/sdk/sdk_hello.c) links with
-ltether and registers with a real relay through the shared library, and a program that reaches
for an internal function does not link. The library is the one beside the tether under test
(build/MODE/lib); with a cross-built tether (run under qemu or Wine) there is nothing to link
here and the tests pass without checking."""

import os
import shutil
import subprocess

from lib import ROOT, TETHER, Proc, agent_state_dir, check, eq, run_cli

LIBDIR = os.path.normpath(os.path.join(os.path.dirname(TETHER), "..", "lib"))
SO = os.path.join(LIBDIR, "libtether.so")


def _native():
    return os.path.basename(TETHER) == "tether" and os.path.exists(SO)


def _tool(name):
    path = shutil.which(name)
    check(path, "%s is not installed" % name)
    return path


def _run(argv):
    return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=120)


def _needs_sanitizer():
    """The sanitizer build's library needs ASan's runtime first in the program."""
    r = _run([_tool("readelf"), "-d", SO])
    return "libasan" in r.stdout


def _cc(t, src, out):
    argv = [os.environ.get("CC", "cc"), "-std=c17", "-Wall", "-Werror",
            "-I" + os.path.join(ROOT, "include"), src, "-o", out, "-L" + LIBDIR, "-ltether",
            "-Wl,-rpath," + LIBDIR]
    if _needs_sanitizer():
        argv.insert(1, "-fsanitize=address,undefined")
    return _run(argv)


def test_libtether_exports_only_tether_functions_and_has_a_soname(t):
    if not _native():
        print("no native libtether.so beside %s: nothing to check" % TETHER)
        return
    r = _run([_tool("nm"), "-D", "--defined-only", SO])
    eq(r.returncode, 0, "nm's exit status (%s)" % r.stderr.strip())
    names = [l.split()[-1] for l in r.stdout.splitlines() if l.strip()]
    # the sanitizer build adds ASan's one-definition-rule markers of the library's globals
    others = [n for n in names if not n.startswith("tether_") and not n.startswith("__odr_asan")]
    check(names, "libtether.so exports nothing")
    eq(others, [], "symbols libtether.so exports besides tether_*")
    for fn in ("tether_config_new", "tether_agent_new", "tether_agent_run", "tether_strerror",
               "tether_connect_new", "tether_version"):
        check(fn in names, "%s is not exported: %r" % (fn, names))
    r = _run([_tool("readelf"), "-d", SO])
    check("Library soname: [libtether.so.1]" in r.stdout, "no SONAME libtether.so.1:\n%s" % r.stdout)
    eq(os.readlink(SO), "libtether.so.1", "libtether.so's link")
    eq(os.readlink(SO + ".1"), "libtether.so.1.0.0", "libtether.so.1's link")
    check(os.path.isfile(SO + ".1.0.0") and not os.path.islink(SO + ".1.0.0"),
          "libtether.so.1.0.0 is not a file")


def test_sdk_program_links_and_runs_against_the_shared_library(t):
    if not _native():
        print("no native libtether.so beside %s: nothing to run" % TETHER)
        return
    prog = t.path("sdk_hello")
    r = _cc(t, os.path.join(ROOT, "tests", "sdk", "sdk_hello.c"), prog)
    eq(r.returncode, 0, "building sdk_hello against libtether.so:\n%s" % r.stderr)
    r = _run([_tool("readelf"), "-d", prog])
    check("Shared library: [libtether.so.1]" in r.stdout,
          "sdk_hello does not need libtether.so.1:\n%s" % r.stdout)
    relay = t.relay()
    svc = t.http_service(big_size=1024)
    p = Proc(t, "sdk_hello", [prog, relay.url, "sdk-dev", relay.token,
                              "127.0.0.1:%d" % svc.port, agent_state_dir(t)])
    _, line = p.wait_line(lambda l: l.startswith("ready "), 60, 0, "the SDK program's ready line")
    check(line.startswith("ready http://") and line.endswith(" -> 127.0.0.1:%d" % svc.port),
          "ready line %r" % line)
    check(p.lines[0].startswith("libtether "), "version line %r" % p.lines[0])
    p.p.wait(60)
    eq(p.p.returncode, 0, "sdk_hello's exit status (stderr: %s)" % p.stderr_tail(10))


def test_internal_functions_are_not_reachable_through_the_shared_library(t):
    if not _native():
        print("no native libtether.so beside %s: nothing to link" % TETHER)
        return
    src = t.path("internal.c")
    with open(src, "w") as f:
        f.write("#include \"tether.h\"\n"
                "void tt_log_write(int level, const char *fmt, ...);\n"
                "int main(void) { tt_log_write(0, \"%s\", tether_version()); return 0; }\n")
    r = _cc(t, src, t.path("internal"))
    check(r.returncode != 0, "a program linked tt_log_write from libtether.so")
    check("tt_log_write" in r.stderr, "the linker's complaint: %r" % r.stderr)
