"""The manual builds offline with warnings as errors and nitpicky references, every internal link
and anchor of the built HTML resolves, and every public name is in the API reference."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from collections import deque
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
API_PACKAGES = [
    "lightly_matrix.loss",
    "lightly_matrix.functional",
    "lightly_matrix.models.modules",
    "lightly_matrix.methods",
    "lightly_matrix.export",
    "lightly_matrix.mmdet",
    "lightly_matrix.evaluation",
    "lightly_matrix.errors",
]

pytestmark = pytest.mark.slow


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for key in ("id", "name"):
            if values.get(key):
                self.ids.add(values[key] or "")
        if tag == "a" and values.get("href"):
            self.links.append(values["href"] or "")


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("html")
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-n", "-q", "-b", "html",
         str(DOCS), str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert build.returncode == 0, f"sphinx-build failed:\n{build.stdout}\n{build.stderr}"
    return out


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _internal(href: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", href)  # no scheme: http:, mailto:, ...


def test_every_internal_link_and_anchor_resolves(html):
    pages = {p: _parse(p) for p in html.rglob("*.html")}
    broken = []
    for path, page in pages.items():
        for href in page.links:
            if not _internal(href):
                continue
            target, anchor = urldefrag(href)
            file = (path.parent / unquote(target)).resolve() if target else path
            if not file.exists():
                broken.append(f"{path.relative_to(html)}: {href} (no file)")
            elif anchor and file.suffix == ".html":
                ids = pages[file].ids if file in pages else _parse(file).ids
                if unquote(anchor) not in ids:
                    broken.append(f"{path.relative_to(html)}: {href} (no anchor)")
    assert not broken, "broken internal links:\n" + "\n".join(sorted(set(broken)))


def test_the_build_uses_no_network_resource(html):
    remote = re.compile(r"""<(?:script|link|img)[^>]+(?:src|href)=["'](?:https?:)?//""")
    offenders = [p.name for p in html.rglob("*.html") if remote.search(p.read_text())]
    assert not offenders, f"pages that load a remote script, style or image: {offenders}"
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_every_page_is_within_two_clicks_of_the_index(html):
    seen, queue = {html / "index.html": 0}, deque([html / "index.html"])
    while queue:
        page = queue.popleft()
        if seen[page] == 2:
            continue
        for href in _parse(page).links:
            target = urldefrag(href)[0]
            if not _internal(href) or not target.endswith(".html"):
                continue
            file = (page.parent / unquote(target)).resolve()
            if file.exists() and file not in seen:
                seen[file] = seen[page] + 1
                queue.append(file)
    pages = {
        p.resolve() for p in html.rglob("*.html") if not {"_modules", "_sources"} & set(p.parts)
    }
    missing = sorted(str(p.relative_to(html)) for p in pages - set(seen) if p.name != "search.html")
    assert not missing, f"pages more than two clicks from the index: {missing}"


def test_every_public_name_is_in_the_api_reference(html):
    ids = set().union(*(_parse(p).ids for p in (html / "api").glob("*.html")))
    missing = []
    for package in API_PACKAGES:
        module = importlib.import_module(package)
        for name in getattr(module, "__all__", []):
            if f"{package}.{name}" not in ids:
                missing.append(f"{package}.{name}")
    assert not missing, f"public names without an entry in the API reference: {missing}"
    # Every module of a package without __all__ has its own section.
    assert "module-lightly_matrix.data.digits" in ids


def test_generated_pages_hold_the_repository_s_numbers(html):
    presets = (html / "presets.html").read_text()
    assert "MSSL main_pretrain.py:61" in presets  # the authors' line presets.py records
    results = (html / "results.html").read_text()
    assert "97.04 ± 0.19" in results  # CorInfoMax kNN, pretrain_digits-30ep/results.json
    cli = (html / "cli.html").read_text()
    assert "--dry-run" in cli  # a flag of pretrain, from its parser
    from lightly_matrix.cli import SUBCOMMANDS

    for command in SUBCOMMANDS:  # a new sub-command needs its section in docs/cli.md
        assert f'id="lightly-matrix-{command}"' in cli, command
