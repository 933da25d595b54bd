#!/usr/bin/env python3
"""check-layers.py - the module graph of src/: no circles, and a domain that imports nothing else.

Usage: scripts/check-layers.py [--graph] [--src DIR] [--self-test]

Reads every `crate::...` path in src/ (in `use` lines, `{...}` groups included, and inline paths
such as `crate::db::pool(..)`), tests included, and resolves each to the deepest module that has
a file. Then it checks two rules of the house (docs/ARCHITECTURE.md, "Layers"):

1. no circle of imports: the graph of modules is acyclic, where a module that is a directory
   (`x/mod.rs`) counts as one node with its children, so `actors::supervisor` using
   `actors::ExitGuard` is a step inside `actors`, not a circle;
2. the domain is pure: nothing under src/domain/ names `crate::` outside `crate::domain`, nor
   actix, diesel or rdkafka (nor tokio, which would make a decision wait on I/O).

--self-test first runs the checks on a small made-up tree that breaks each rule and fails unless
each is caught (so the check itself can fail).
--graph prints the edges, one line per module: `module -> dep, dep, ...`.
3. no actor imports another actor (actors::x -> actors::y): each gets its downstream and its
   labels from its constructor.

Prints one `ok`/`FAIL` line per rule and ends with `N passed, M failed` (the line scripts/test.sh
counts). Exit 0 when both rules hold.
"""

import argparse
import pathlib
import re
import sys

CRATE_PATH = re.compile(r"\b(crate|(?:super::)+)(?=::|\w)")
INLINE_MOD = re.compile(r"\bmod\s+[A-Za-z_][A-Za-z0-9_]*\s*\{")
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
FOREIGN = re.compile(r"\b(?:use\s+|::)?(actix[a-z_]*|diesel[a-z_]*|rdkafka|tokio)::")
COMMENT = re.compile(r"//.*$")


def module_of(src: pathlib.Path, file: pathlib.Path) -> tuple:
    rel = file.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def expand(text: str, i: int, prefix: list, out: list) -> int:
    """Reads the path after `crate::` at text[i:], appending each full path to out."""
    path = list(prefix)
    while i < len(text):
        while i < len(text) and text[i].isspace():
            i += 1
        if i < len(text) and text[i] == "{":
            i += 1
            while True:
                while i < len(text) and (text[i].isspace() or text[i] == ","):
                    i += 1
                if i >= len(text) or text[i] == "}":
                    return i + 1
                i = expand(text, i, path, out)
        m = IDENT.match(text, i)
        if not m:
            out.append(path)
            return i
        path.append(m.group(0))
        i = m.end()
        if text.startswith("::", i):
            i += 2
            continue
        out.append(path)
        return i
    out.append(path)
    return i


def inline_modules(text: str) -> list:
    """The (start, end) spans of the inline `mod name { ... }` blocks of a file."""
    spans = []
    for m in INLINE_MOD.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        spans.append((m.end(), i))
    return spans


def deepest(modules: set, path: list) -> tuple:
    for n in range(len(path), 0, -1):
        if tuple(path[:n]) in modules:
            return tuple(path[:n])
    return ()


def sccs(edges: dict) -> list:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(set(edges) | {b for bs in edges.values() for b in bs}):
        if v not in index:
            visit(v)
    return found


def self_test() -> bool:
    """Runs the checks over a made-up tree that breaks every rule; true when all three fail."""
    import subprocess
    import tempfile

    tree = {
        "lib.rs": "pub mod a; pub mod b; pub mod actors; pub mod domain;",
        "a.rs": "use crate::b::thing;",
        "b.rs": "pub fn thing() { crate::a::other() }",
        "actors/mod.rs": "pub mod x; pub mod y;",
        "actors/x.rs": "use super::y::NAME;",
        "actors/y.rs": "pub const NAME: &str = \"y\";",
        "domain/mod.rs": "pub mod rule;",
        "domain/rule.rs": "use crate::a::Settings;\nuse rdkafka::Message;\n"
                          "mod tests { use super::*; }",
    }
    with tempfile.TemporaryDirectory() as d:
        for name, text in tree.items():
            f = pathlib.Path(d, name)
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(text + "\n")
        out = subprocess.run([sys.executable, __file__, "--src", d], capture_output=True, text=True)
    lines = out.stdout.splitlines()
    return out.returncode == 1 and lines[-1] == "0 passed, 3 failed" and any(
        "a, b" in line for line in lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--graph", action="store_true")
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--src", default=str(pathlib.Path(__file__).resolve().parent.parent / "src"))
    args = ap.parse_args()
    if args.self_test and not self_test():
        print("FAIL  check-layers.py catches a circle, an actor importing an actor and an impure domain")
        print("0 passed, 1 failed")
        return 1
    src = pathlib.Path(args.src)
    files = [f for f in sorted(src.rglob("*.rs")) if "bin" not in f.relative_to(src).parts]
    modules = {module_of(src, f) for f in files}

    # Every edge between two modules, tests included (a module's own children are part of it).
    fine: dict = {}
    domain_problems = []
    for f in files:
        me = module_of(src, f)
        if not me:
            continue  # lib.rs only declares modules
        text = "\n".join(COMMENT.sub("", line) for line in f.read_text().splitlines())
        targets = []
        inline = inline_modules(text)
        for m in CRATE_PATH.finditer(text):
            if m.group(1) == "crate":
                expand(text, m.end() + 2, [], targets)
                continue
            # `super::` from inside an inline module (`mod tests { use super::*; }`) is this file.
            ups = m.group(1).count("super") - sum(1 for a, b in inline if a < m.start() < b)
            if ups <= 0:
                continue
            expand(text, m.end(), list(me)[: len(me) - ups], targets)
        for t in targets:
            dep = deepest(modules, t)
            if dep and dep != me:
                fine.setdefault(me, set()).add(dep)
        if me[0] == "domain":
            for t in targets:
                if t[:1] != ["domain"]:
                    domain_problems.append(f"{f.relative_to(src.parent)}: crate::{'::'.join(t)}")
            for n, line in enumerate(text.splitlines(), 1):
                for m in FOREIGN.finditer(line):
                    domain_problems.append(f"{f.relative_to(src.parent)}:{n}: {m.group(1)}")

    if args.graph:
        for a in sorted(fine):
            print(f"{'::'.join(a)} -> {', '.join(sorted('::'.join(b) for b in fine[a]))}")
        print()

    # Circles, level by level: the top-level modules (a directory counts as one node with all its
    # children), then inside each directory its children, where a child may use its parent's own
    # items (`super::`, the parent's mod.rs) without that counting as a circle.
    circles = []
    for parent in sorted({m[:n] for m in modules for n in range(len(m))}):
        d = len(parent)
        edges = {}
        for a, bs in fine.items():
            if a[:d] != parent or len(a) <= d:
                continue
            for b in bs:
                if b[:d] == parent and len(b) > d and a[d] != b[d]:
                    edges.setdefault(a[d], set()).add(b[d])
        for comp in sccs(edges):
            circles.append((parent, comp))

    # Actors never import each other: each gets its downstream and labels from its constructor.
    actor_edges = sorted(
        (a, b) for a, bs in fine.items() for b in bs
        if a[:1] == ("actors",) and b[:1] == ("actors",) and len(a) > 1 and len(b) > 1
        and a[1] != b[1]
    )

    passed = failed = 0
    if circles:
        failed += 1
        print("FAIL  no circle of imports among the modules of src/")
        for parent, comp in circles:
            where = "::".join(parent) or "crate"
            print(f"      circle in {where}: {', '.join(comp)}")
            d = len(parent)
            for a in sorted(fine):
                for b in sorted(fine[a]):
                    if (a[:d] == parent == b[:d] and len(a) > d and len(b) > d
                            and a[d] in comp and b[d] in comp and a[d] != b[d]):
                        print(f"        {'::'.join(a)} -> {'::'.join(b)}")
    else:
        passed += 1
        print("ok    no circle of imports among the modules of src/")
    if actor_edges:
        failed += 1
        print("FAIL  no actor imports another actor")
        for a, b in actor_edges:
            print(f"      {'::'.join(a)} -> {'::'.join(b)}")
    else:
        passed += 1
        print("ok    no actor imports another actor")
    if domain_problems:
        failed += 1
        print("FAIL  src/domain/ imports nothing outside the domain")
        for p in domain_problems:
            print(f"      {p}")
    else:
        passed += 1
        print("ok    src/domain/ imports nothing outside the domain")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.setrecursionlimit(10000)
    sys.exit(main())
