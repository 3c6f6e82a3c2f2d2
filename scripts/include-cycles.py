#!/usr/bin/env python3
"""include-cycles.py - lists the include cycles between the modules of src/ and exits 1 if there
is any (0 if none, 2 for a usage error).

A module is a .c file and its .h (src/relay/device/device.c and .h are "relay/device/device").
Module A depends on module B when a file of A includes B's header with #include "..." (the path
from src/ or include/, or next to the including file). A cycle is a set of modules each of which
reaches every other one through such includes (a strongly connected component of more than one
module): then none of them can be read, tested or replaced without the others. Each cycle is
printed on one line, with one include that closes it per edge, so that it can be broken
(a forward declaration, a narrower header, or a type moved to the module that owns it).

Headers alone must never form a cycle (a.h includes b.h, which includes a.h): that one fails
always. Module cycles that the code still has are listed in scripts/include-cycles.allow (one per
line, its modules separated by spaces; # starts a comment), so that the check passes with them
and fails as soon as a new cycle appears or a known one takes in another module: cycles can only
shrink. When one is broken, its line is cut down or removed (the script says which). --strict
ignores the list.

--self-test checks the script itself on small trees made in a temporary directory (a cycle of
two modules, one of three through a header, a header cycle, a known cycle that grows) and exits
0 when it finds what it should.

Usage: scripts/include-cycles.py [--strict | --self-test] [SRC_DIR] (default: src).
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def modules(src):
    files = {}
    for root, _, names in os.walk(src):
        for n in names:
            if n.endswith((".c", ".h")):
                p = os.path.join(root, n)
                files[p] = os.path.relpath(p, src)[:-2]
    return files


def resolve(src, including, name):
    for base in (src, os.path.dirname(including)):
        p = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(p) and p.endswith(".h"):
            return os.path.relpath(p, src)[:-2]
    return None  # include/, third_party/ or a system header: not a module of src/


def graph(src):
    edges = {}
    for path, mod in modules(src).items():
        edges.setdefault(mod, {})
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        for name in INCLUDE.findall(text):
            dep = resolve(src, path, name)
            if dep is not None and dep != mod:
                edges[mod].setdefault(dep, "%s includes \"%s\"" % (os.path.relpath(path, src), name))
    return edges


def components(edges):
    """Tarjan's strongly connected components, iteratively."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in edges:
                    continue
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def header_graph(src):
    """The includes between headers alone (a.h -> b.h)."""
    edges = {}
    for path, mod in modules(src).items():
        if not path.endswith(".h"):
            continue
        edges.setdefault(mod, {})
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        for name in INCLUDE.findall(text):
            dep = resolve(src, path, name)
            if dep is not None and dep != mod:
                edges[mod].setdefault(dep, "%s includes \"%s\"" % (os.path.relpath(path, src), name))
    return edges


def allowed(path):
    out = []
    if not os.path.isfile(path):
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if line:
                out.append(set(line))
    return out


def show(kind, comp, edges):
    members = set(comp)
    print("%s: %s" % (kind, " ".join(comp)))
    for a in comp:
        for b in sorted(edges[a]):
            if b in members:
                print("    %s -> %s (%s)" % (a, b, edges[a][b]))


def self_test():
    import shutil
    import tempfile

    made = []

    def tree(files):
        d = tempfile.mkdtemp(prefix="include-cycles-")
        made.append(d)
        for name, includes in files.items():
            path = os.path.join(d, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write("".join('#include "%s"\n' % i for i in includes))
        return d

    def sccs(d):
        return sorted(sorted(c) for c in components(graph(d)))

    ok = True

    def expect(what, got, want):
        nonlocal ok
        if got != want:
            print("include-cycles self-test: %s: got %r, want %r" % (what, got, want))
            ok = False

    # a.c -> b.h, b.c -> a.h: a cycle of two modules; c only depends on them
    d = tree({"x/a.c": ["x/b.h"], "x/a.h": [], "x/b.c": ["x/a.h"], "x/b.h": [],
              "x/c.c": ["x/a.h", "x/b.h"], "x/c.h": []})
    expect("two modules", sccs(d), [["x/a", "x/b"]])
    # three modules through a header; a .c without its own header is in no cycle
    d = tree({"p.h": ["q.h"], "p.c": [], "q.c": ["r.h"], "q.h": [], "r.c": ["p.h"], "r.h": [],
              "main.c": ["p.h", "q.h", "r.h"]})
    expect("three modules", sccs(d), [["p", "q", "r"]])
    expect("no header cycle", sorted(sorted(c) for c in components(header_graph(d))), [])
    # headers including each other (include guards hide it from the compiler)
    d = tree({"h1.h": ["h2.h"], "h2.h": ["h1.h"]})
    expect("header cycle", sorted(sorted(c) for c in components(header_graph(d))),
           [["h1", "h2"]])
    # "next to the including file" resolves too; system headers are not modules
    d = tree({"s/u.c": ["v.h", "stdio.h"], "s/u.h": [], "s/v.c": ["u.h"], "s/v.h": []})
    expect("relative includes", sccs(d), [["s/u", "s/v"]])
    # a known cycle that grows is not known any more
    known = [{"s/u", "s/v"}]
    grown = [set(c) for c in sccs(tree({"s/u.c": ["s/v.h"], "s/u.h": [], "s/v.c": ["s/w.h"],
                                        "s/v.h": [], "s/w.c": ["s/u.h"], "s/w.h": []}))]
    expect("grown cycle", [any(c <= a for a in known) for c in grown], [False])
    for d in made:
        shutil.rmtree(d, ignore_errors=True)
    print("include-cycles self-test: %s" % ("ok" if ok else "FAILED"))
    return 0 if ok else 1


def main():
    args = sys.argv[1:]
    if args == ["--self-test"]:
        return self_test()
    strict = "--strict" in args
    args = [a for a in args if a != "--strict"]
    if len(args) > 1 or (args and args[0].startswith("-")):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    src = args[0] if args else "src"
    if not os.path.isdir(src):
        print("include-cycles: no directory %s" % src, file=sys.stderr)
        return 2
    allow = [] if strict else allowed(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "include-cycles.allow"))
    bad = 0
    hedges = header_graph(src)
    for comp in components(hedges):
        show("header cycle", comp, hedges)
        bad += 1
    edges = graph(src)
    cycles = components(edges)
    for comp in cycles:
        known = any(set(comp) <= a for a in allow)
        show("include cycle" + (" (known: include-cycles.allow)" if known else ""), comp, edges)
        if not known:
            bad += 1
    for a in allow:
        now = [set(c) for c in cycles if set(c) <= a]
        if any(set(c) & a and not set(c) <= a for c in cycles):
            continue  # it grew: reported above
        if not now:
            print("include-cycles: a cycle of include-cycles.allow is gone: remove its line (%s)"
                  % " ".join(sorted(a)))
        elif sum(len(c) for c in now) < len(a):
            print("include-cycles: a cycle of include-cycles.allow shrank: cut its line down to "
                  "%s" % " | ".join(" ".join(sorted(c)) for c in now))
    if bad:
        print("include-cycles: %d new or grown cycle(s)" % bad, file=sys.stderr)
        return 1
    print("include-cycles: no new include cycle among %d modules (%d known, listed above)"
          % (len(edges), len(cycles)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
