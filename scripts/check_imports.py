"""Check dovecote's import graph as installed: no cycles, and dependencies that
point one way only.

``lib/`` is the package ``dovecote`` and ``actors/`` is ``dovecote.actors``
(setuptools' ``package-dir``). Every import counts: module level, inside
functions, and under ``if TYPE_CHECKING``. An import of a package's own
``__init__`` by one of its modules is not an edge (``__init__`` re-exports them).

The layers, highest first; a module may import its own layer and the ones below:

    cli, testing, oslo  ->  rpc, notify  ->  actors  ->  _handling, _transport,
    _endpoints, _serializer  ->  drivers  ->  _wire, _url, observe  ->  _errors, _target

Run ``python scripts/check_imports.py`` (exit 1 with the offending imports), or
``--graph`` for the edges as JSON; ``--root DIR`` checks another checkout (the
tests give it small trees with a known cycle). A top-level module the layers do
not name is an error too: a new one must be given its place.
"""

from __future__ import annotations

import ast
import json
import pathlib
import sys
from collections.abc import Iterator

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = {"lib": "dovecote", "actors": "dovecote.actors"}

#: Layer of each top-level part of the package (higher may import lower).
LAYERS: dict[str, int] = {
    "cli": 7, "testing": 7, "oslo": 7,
    "rpc": 6, "notify": 6,
    "actors": 5,
    "_handling": 4, "_transport": 4, "_endpoints": 4, "_serializer": 4,
    "drivers": 3,
    "_wire": 2, "_url": 2, "observe": 2,
    "_errors": 1, "_target": 1,
    # the package itself and the public paths kept for what moved
    "": 8, "metrics": 8, "tracing": 8,
}


def modules(root: pathlib.Path = ROOT) -> dict[str, pathlib.Path]:
    """Every module of the package by its dotted name."""
    found: dict[str, pathlib.Path] = {}
    for folder, package in SOURCES.items():
        base = root / folder
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def _imports(name: str, path: pathlib.Path, known: dict[str, pathlib.Path]) -> Iterator[str]:
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
        for imported in targets:
            target = imported
            while target and target not in known:
                target = target.rpartition(".")[0]
            if not target or target == name:
                continue
            if known[target].name == "__init__.py" and name.startswith(target + "."):
                continue  # a package's __init__ re-exporting its modules
            yield target


def graph(root: pathlib.Path = ROOT) -> dict[str, set[str]]:
    known = modules(root)
    return {name: set(_imports(name, path, known)) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def layer(name: str) -> int | None:
    parts = name.split(".")
    return LAYERS.get(parts[1] if len(parts) > 1 else "")


def unplaced(edges: dict[str, set[str]]) -> list[str]:
    """Modules whose top-level part has no layer."""
    return sorted(name for name in edges if layer(name) is None)


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Imports that point to a higher layer."""
    return [f"{source} -> {target}" for source in sorted(edges)
            for target in sorted(edges[source])
            if (layer(target) or 0) > (layer(source) or 0)]


def main(argv: list[str]) -> int:
    root = pathlib.Path(argv[argv.index("--root") + 1]) if "--root" in argv else ROOT
    edges = graph(root)
    if not edges:
        print(f"no module found under {root}/lib or {root}/actors", file=sys.stderr)
        return 1
    if "--graph" in argv:
        print(json.dumps({name: sorted(targets) for name, targets in edges.items()}, indent=1))
        return 0
    found, wrong, lost = cycles(edges), upward(edges), unplaced(edges)
    for component in found:
        print("import cycle:", " -> ".join(component), file=sys.stderr)
    for line in wrong:
        print("import against the layers:", line, file=sys.stderr)
    for name in lost:
        print(f"no layer for {name}: give its top-level part a place in LAYERS "
              "(scripts/check_imports.py)", file=sys.stderr)
    if found or wrong or lost:
        return 1
    print(f"imports: {len(edges)} modules, no cycle, every import points down the layers")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
