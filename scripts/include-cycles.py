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

Usage: scripts/include-cycles.py [SRC_DIR] (default: src, from the repository root).
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


def main():
    if len(sys.argv) > 2 or (len(sys.argv) == 2 and sys.argv[1].startswith("-")):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    src = sys.argv[1] if len(sys.argv) == 2 else "src"
    if not os.path.isdir(src):
        print("include-cycles: no directory %s" % src, file=sys.stderr)
        return 2
    edges = graph(src)
    cycles = components(edges)
    for comp in cycles:
        members = set(comp)
        print("include cycle: " + " ".join(comp))
        for a in comp:
            for b in sorted(edges[a]):
                if b in members:
                    print("    %s -> %s (%s)" % (a, b, edges[a][b]))
    if cycles:
        print("include-cycles: %d cycle(s) among %d modules" %
              (len(cycles), sum(len(c) for c in cycles)), file=sys.stderr)
        return 1
    print("include-cycles: no include cycle among %d modules" % len(edges))
    return 0


if __name__ == "__main__":
    sys.exit(main())
