"""UserError lives in lightly_matrix.errors; library code never imports the CLI to raise it, and
the export package never imports transfer (which imports export)."""

from __future__ import annotations

import ast
from pathlib import Path

import lightly_matrix
from lightly_matrix import cli, errors

PACKAGE = Path(lightly_matrix.__file__).parent
#: Command-line entry points: the top layer, allowed to import everything.
ENTRY_POINTS = {"cli.py", "__main__.py", "transfer/__main__.py", "export_cli.py"}


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_cli_user_error_is_the_errors_module_one() -> None:
    assert cli.UserError is errors.UserError
    assert errors.first_line(RuntimeError("\n  first\nsecond")) == "first"
    assert errors.first_line(RuntimeError()) == "RuntimeError"


def test_library_code_does_not_import_the_cli() -> None:
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if str(p.relative_to(PACKAGE)) not in ENTRY_POINTS
        and "lightly_matrix.cli" in _imported_modules(p)
    ]
    assert offenders == []


def test_export_does_not_import_transfer() -> None:
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in (PACKAGE / "export").rglob("*.py")
        if any(m.startswith("lightly_matrix.transfer") for m in _imported_modules(p))
    ]
    assert offenders == []
