"""The package's layout is its architecture: a flat core a student reads, and beside it the
figures, the toy world and the lab.

- the core (the modules directly in ``sovr_tutorial/``) imports nothing outside itself;
- the toy world imports only the core; the figures only the core and the toy world;
- nothing in the package imports the lab but the lab;
- no two modules import each other, directly or round a circle, counting the imports inside
  functions (an import moved into a function still ties the two modules together).
"""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "sovr_tutorial"
PARTS = ("figures", "toy", "lab")
#: which parts each part may import (besides itself)
ALLOWED = {"core": {"core"}, "toy": {"core", "toy"}, "figures": {"core", "toy", "figures"},
           "lab": {"core", "toy", "figures", "lab"}}


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def part_of(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 2 or (len(pieces) == 2 and pieces[1] in PARTS) else "core"


def imports_of(module: str, source: str | None = None) -> set:
    """The package's modules that ``module`` imports anywhere in its file (or in ``source``)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source if source is not None else path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from pkg import mod` imports the module pkg.mod where there is one
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source
                       for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in MODULES and t != module}
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def test_the_layout_has_a_core_and_three_parts():
    assert {part_of(m) for m in MODULES} == {"core", *PARTS}
    for core in ("attacks", "losses", "margins", "models", "train", "evaluate", "autoattack",
                 "data", "sampling", "batches", "tiers", "runs", "checkpoint", "devices",
                 "checks", "files", "paths"):
        assert part_of(f"sovr_tutorial.{core}") == "core" and f"sovr_tutorial.{core}" in MODULES


def violations(graph: dict) -> list:
    """(module, imported) pairs that break a part's rule."""
    return [(m, t) for m in sorted(graph) for t in sorted(graph[m])
            if part_of(t) not in ALLOWED[part_of(m)]]


def find_circle(graph: dict) -> list | None:
    """One import circle of ``graph`` as [a, b, ..., a], or None (depth-first search)."""
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == "open":
                return stack[stack.index(t):] + [t]
            if t not in state:
                found = visit(t)
                if found:
                    return found
        stack.pop()
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_each_module_imports_only_what_its_part_may():
    assert violations(GRAPH) == []


def test_no_import_circles():
    assert find_circle(GRAPH) is None


def test_the_rules_see_what_they_are_for():
    """On a made-up graph: a core module importing the lab, a toy module importing a figure,
    and a circle through an import inside a function (movie <-> movie's figure, as it was)."""
    st = "sovr_tutorial."
    graph = {st + "train": {st + "lab.results"}, st + "toy.model": {st + "figures.plots"},
             st + "lab.movie": {st + "figures.movie"}, st + "figures.movie": {st + "lab.movie"},
             st + "figures.plots": set(), st + "lab.results": set()}
    assert violations(graph) == [(st + "figures.movie", st + "lab.movie"),
                                 (st + "toy.model", st + "figures.plots"),
                                 (st + "train", st + "lab.results")]
    assert find_circle(graph) == [st + "figures.movie", st + "lab.movie", st + "figures.movie"]
    hidden = "def f():\n    from ..lab import movie\n    from ..train import fit\n"
    assert imports_of(st + "figures.movie", hidden) == {st + "lab.movie", st + "train"}


def test_the_package_exports_the_core():
    import sovr_tutorial as st
    for name in ("pgd", "fgsm", "sovr_loss", "train", "fit", "load_cifar10", "build_model",
                 "collect_margins", "adversarial_margins", "autoattack_eval", "get_tier"):
        assert callable(getattr(st, name)), name
    assert all(part_of(t) == "core" for t in GRAPH["sovr_tutorial"])
