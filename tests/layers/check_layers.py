#!/usr/bin/env python3
"""check_layers.py SRC - the layer rules of docs/architecture.md, checked.

1. Every #include "x.h" of a file in a layer names a header of that layer or of
   a layer it may use (the table below, the same as docs/architecture.md).
2. No cycles between the files of a layer of libemm (emm/*) or swapfs: a file
   calls only functions defined in files below it (found by name, from
   definitions `TYPE\\nname(` at column 0). services/ and client/ are the top:
   their files may call each other (emmd's namespace and front end do).
Prints each violation as FILE:LINE: what, and exits 1 if there is any.
"""
import collections
import os
import re
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# layer folder -> the layer folders it may include from (itself implied)
MAY_USE = {
    "emm/base": [],
    "emm/ipc": ["emm/base"],
    "emm/vm": ["emm/ipc", "emm/base"],
    "emm/backends": ["emm/base"],
    "emm/pager": ["emm/ipc", "emm/backends", "emm/base"],
    "emm/plugins/file": [],
    "emm/plugins/rados": [],
    "emm/libpager": ["emm/ipc", "emm/base"],
    "services/emm-pager": ["emm/pager", "emm/backends", "emm/ipc", "emm/base"],
    "services/emm-memserver": ["emm/backends", "emm/ipc", "emm/base", "services/emmd"],
    "swapfs": ["emm/vm", "emm/ipc", "emm/base"],
    "client": ["emm/base", "services/emmd"],
    "services/emmd": ["client", "swapfs", "emm/pager", "emm/vm", "emm/backends", "emm/ipc", "emm/base"],
}
# client may use services/emmd's config parser only; emm-memserver its catalog
# (the memory server keeps its namespace in the same format, ns.c)
ONLY = {("client", "services/emmd"): {"config.h"},
        ("services/emm-memserver", "services/emmd"): {"catalog.h"}}

def layer_files(layer):
    d = os.path.join(SRC, layer)
    return sorted(f for f in os.listdir(d) if f.endswith((".c", ".h")))

headers = {}  # header name -> layer
for layer in MAY_USE:
    for f in layer_files(layer):
        if f.endswith(".h"):
            headers.setdefault(f, layer)

bad = []
for layer, uses in MAY_USE.items():
    for f in layer_files(layer):
        path = os.path.join(layer, f)
        with open(os.path.join(SRC, path)) as fh:
            for n, line in enumerate(fh, 1):
                m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                if not m:
                    continue
                h = os.path.basename(m.group(1))
                home = headers.get(h)
                if home is None or home == layer:
                    continue
                if home not in uses or h not in ONLY.get((layer, home), {h}):
                    bad.append(f"{path}:{n}: includes {h} of {home}, which {layer} may not use")

# 2. call graph between the files of each layer of libemm (and swapfs): a
# file calls only functions defined in files below it, never in a cycle
CYCLE_FREE = ["emm/base", "emm/ipc", "emm/vm", "emm/pager", "emm/backends", "emm/libpager",
              "emm/plugins/file", "emm/plugins/rados", "swapfs"]

def find_cycle(text, edges):
    state = {}
    def visit(u, stack):
        state[u] = 1
        for v in sorted(edges[u]):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if v not in state:
                c = visit(v, stack + [v])
                if c:
                    return c
        state[u] = 2
        return None
    for u in sorted(text):
        if u not in state:
            c = visit(u, [u])
            if c:
                return c
    return None

nfiles = 0
for layer in CYCLE_FREE:
    d = os.path.join(SRC, layer)
    if not os.path.isdir(d):
        continue
    text, defs = {}, {}
    for f in layer_files(layer):
        if not f.endswith(".c"):
            continue
        t = open(os.path.join(d, f)).read()
        t = re.sub(r"/\*.*?\*/", "", t, flags=re.S)
        text[f] = t
        for m in re.finditer(r"^(?!static)[a-z][^\n;=()]*\n([a-z_0-9]+)\(", t, re.M):
            defs[m.group(1)] = f
    nfiles += len(text)
    edges = collections.defaultdict(set)
    for f, t in text.items():
        for name, home in defs.items():
            if home != f and re.search(r"\b" + name + r"\b", t):
                edges[f].add(home)
    cycle = find_cycle(text, edges)
    if cycle:
        bad.append(f"{layer}: files call each other in a cycle: " + " -> ".join(cycle))

for b in bad:
    print(b)
print(f"check_layers: {len(MAY_USE)} layers, {nfiles} files checked for call cycles, {len(bad)} violation(s)")
sys.exit(1 if bad else 0)
