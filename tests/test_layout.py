"""The package reads bottom-up: no module imports a higher layer, no two modules import each other.

Imports are read from the source (module level and inside functions alike), so a lazy import
cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lightly_matrix"

#: Each top-level part of the package and its layer: a module imports its own layer or lower.
LAYERS = {
    "errors": 0,
    "utils": 1,
    "user_files": 1,
    "functional": 2,
    "models": 2,
    "data": 2,
    "mmdet": 2,
    "evaluation": 3,
    "loss": 3,
    "registry": 3,
    "methods": 4,
    "presets": 5,
    "report": 5,
    "export": 5,
    "transfer": 6,
    "export_cli": 7,
    "pretrain": 7,
    "cli": 8,
}
#: Entry points run the command line, the top.
ENTRY_POINTS = {"lightly_matrix.__main__", "lightly_matrix.transfer.__main__"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            targets |= {n for n in names if n in modules and n != name}
        graph[name] = targets
    return graph


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {_part(m) for m in _imports()} - {"__init__", "__main__"}
    assert parts <= set(LAYERS), f"give these a layer in LAYERS: {sorted(parts - set(LAYERS))}"


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{a} -> {b}"
        for a, targets in _imports().items()
        if a not in ENTRY_POINTS and _part(a) in LAYERS
        for b in targets
        if _part(b) in LAYERS and LAYERS[_part(b)] > LAYERS[_part(a)]
    ]
    assert upward == []


def test_no_two_modules_import_each_other() -> None:
    graph = _imports()
    mutual = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if a in graph[b]})
    assert mutual == []
