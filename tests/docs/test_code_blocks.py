"""Every ```python block of the manual's pages and the README runs as written (a block meant only
as an illustration is a ```{code-block} python directive instead, which is not run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
PAGES = [p for p in PAGES if "_build" not in p.parts]


def _blocks() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for i, code in enumerate(
            re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)
        ):
            found.append((f"{page.relative_to(ROOT)}#{i}", code))
    return found


BLOCKS = _blocks()


def test_the_pages_have_python_blocks():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize(("where", "code"), BLOCKS, ids=[w for w, _ in BLOCKS])
def test_block_runs(where, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, where, "exec"), {"__name__": "__docs__"})  # our own pages, not user input
