"""The package's import graph has no cycles, between files or between packages.

Every ``import`` and ``from ... import`` in ``src/beyond_backprop`` counts, including those under
``if TYPE_CHECKING:`` and inside functions: a deferred import hides a cycle, it does not remove
it. ``from pkg import name`` points at ``pkg.name`` when that is a module, else at ``pkg``. For
the package graph each first-level subpackage (``rules``, ``models``) and each top-level module
(``registry``, ``experiment``) is one node, and imports inside one node are dropped.

``python -m tests.unit.test_import_graph`` prints the cycles that remain.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

PACKAGE = "beyond_backprop"
SOURCE = Path(__file__).resolve().parents[2] / "src" / PACKAGE

Graph = Mapping[str, set[str]]


def module_names(root: Path = SOURCE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``root``."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = (PACKAGE, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> Iterable[str]:
    """The dotted names one import statement of ``module`` refers to (modules or attributes)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = module.split(".")
        # A package's own ``__init__`` is level 1's anchor; a plain module's is its parent.
        anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
        base = ".".join([*anchor, base] if base else anchor)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def file_graph(root: Path = SOURCE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (never itself)."""
    modules = module_names(root)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            names = list(_imported(node, module, is_package))
            if isinstance(node, ast.ImportFrom):
                # ``from pkg import sub`` imports the module ``pkg.sub`` when there is one.
                base, *members = names
                hits = [m for m in members if m in modules]
                targets.update(hits if len(hits) == len(members) else [*hits, base])
            else:
                targets.update(n for n in names if n in modules)
        graph[module] = {t for t in targets if t in modules and t != module}
    return graph


def node_of(module: str) -> str:
    """The package-graph node of a module: its first-level subpackage or top-level module."""
    return ".".join(module.split(".")[:2])


def package_graph(files: Graph) -> dict[str, set[str]]:
    """First-level subpackage / top-level module -> the others it imports."""
    graph: dict[str, set[str]] = {}
    for module, targets in files.items():
        here = node_of(module)
        graph.setdefault(here, set()).update(node_of(t) for t in targets if node_of(t) != here)
    return graph


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one node, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def shortest_cycle(graph: Graph, component: list[str]) -> list[str]:
    """One shortest cycle through the component's first node, for a readable message."""
    inside = set(component)
    start = component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph.get(node, set()) & inside):
                if nxt == start:
                    return [*paths[node], start]
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    following.append(nxt)
        frontier = following
    return component  # pragma: no cover - a strongly connected component always has a cycle


def describe_cycles(graph: Graph) -> list[str]:
    """One line per strongly connected component: its members and one cycle through them."""
    short = len(PACKAGE) + 1
    lines = []
    for component in strongly_connected(graph):
        cycle = " -> ".join(n[short:] for n in shortest_cycle(graph, component))
        lines.append(f"{{{', '.join(n[short:] for n in component)}}}: {cycle}")
    return lines


def test_cycle_finder_on_a_known_graph() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert shortest_cycle(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def test_imports_resolve_to_modules() -> None:
    files = file_graph()
    assert f"{PACKAGE}.rules.base" in files[f"{PACKAGE}.rules.dgl"]
    assert f"{PACKAGE}.registry" in files[f"{PACKAGE}.rules.registry"]


def test_no_file_cycles() -> None:
    assert describe_cycles(file_graph()) == []


def test_no_package_cycles() -> None:
    assert describe_cycles(package_graph(file_graph())) == []


LAYERS = [
    ["errors"],
    ["registry"],
    ["tracking", "losses"],
    ["data"],
    ["models"],
    ["autograd"],
    ["rules"],
    ["config"],
    ["experiment"],
    ["engines"],
    ["run", "eval"],
    ["compare"],
    ["cli"],
    ["__main__"],
]
"""The layers of ``docs/design.md``, lowest first: a package may import only from lower layers."""


def test_every_import_goes_to_a_lower_layer() -> None:
    layer = {f"{PACKAGE}.{name}": depth for depth, names in enumerate(LAYERS) for name in names}
    layer[PACKAGE] = len(LAYERS)  # the package's own __init__: the public API, on top
    graph = package_graph(file_graph())
    assert set(graph) <= set(layer), f"a package without a layer: {set(graph) - set(layer)}"
    upward = [(a, b) for a, targets in graph.items() for b in targets if layer[b] >= layer[a]]
    assert upward == []


if __name__ == "__main__":
    files = file_graph()
    for title, graph in (("files", files), ("packages", package_graph(files))):
        cycles = describe_cycles(graph)
        print(f"{title}: {len(cycles)} cycle(s)")
        for line in cycles:
            print(f"  {line}")
