"""The code's shape, kept: no module imports one that imports it back (directly or round a circle)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.replicas import ROOT

SRC = ROOT / "src"


def _import_graph() -> dict[str, set[str]]:
    modules: dict[str, Path] = {}
    for path in SRC.rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        # Every import counts, TYPE_CHECKING and function-local ones too: a circle is a circle.
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def test_no_module_under_src_imports_one_that_imports_it_back() -> None:
    graph = _import_graph()
    circles: list[list[str]] = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for target in sorted(graph[node]):
            if target == start:
                circles.append([*path, start])
            elif target not in path and target > start:  # each circle once, from its smallest module
                walk(start, target, [*path, target])

    for module in sorted(graph):
        walk(module, module, [module])
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)
