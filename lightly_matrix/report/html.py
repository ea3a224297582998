"""One self-contained HTML page (inline style, ``data:`` images, no scripts), well-formed XML."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lightly_matrix.utils.text import plain_cell

#: Marks pages written by the report, so that no other file called report.html is replaced.
GENERATOR = "lightly-matrix report"

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1180px; padding: 1.5em; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05em; margin-top: 1.4em; } figcaption { font-size: 0.85em; color: #555; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0; }
.gallery { display: flex; flex-wrap: wrap; gap: 0.6em; } table.kv td { text-align: left; }
.gallery figure { margin: 0; width: 48%; } .gallery img { width: 100%; }
.na { color: #8a5300; background: #fff6e5; padding: 0.3em 0.6em; border-left: 3px solid #e0a030; }
.meta { color: #555; font-size: 0.9em; } code { background: #f3f3f3; padding: 0 0.2em; }
"""


def esc(value: Any) -> str:
    """Text escaped for HTML (and XML)."""
    return html.escape(str(value), quote=True)


def image(data: bytes, alt: str, mime: str = "image/png") -> str:
    """An ``<img>`` with the image embedded."""
    return f'<img src="data:{mime};base64,{base64.b64encode(data).decode()}" alt="{esc(alt)}" />'


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], css: str | None = None) -> str:
    """A table; cells are escaped, floats printed with 2 decimals, ``None`` as an empty cell."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    cells = ("".join(f"<td>{esc(plain_cell(v))}</td>" for v in row) for row in rows)
    body = "".join(f"<tr>{row}</tr>" for row in cells)
    opening = f'<table class="{css}">' if css else "<table>"
    return f"{opening}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def paragraph(text: str, css: str | None = None) -> str:
    """A paragraph of escaped text."""
    return f'<p class="{css}">{esc(text)}</p>' if css else f"<p>{esc(text)}</p>"


def settings(values: dict[str, Any], keys: Iterable[str]) -> str:
    """A setting/value table of the ``keys`` of ``values`` that are set."""
    rows = [(k.replace("_", " "), str(values[k])) for k in keys if values.get(k) is not None]
    return table(("setting", "value"), rows, css="kv")


@dataclass
class Section:
    """A titled part of the page: HTML fragments, and what it could not show (for the summary)."""

    title: str
    parts: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def add(self, fragment: str) -> None:
        self.parts.append(fragment)

    def text(self, text: str, css: str | None = None) -> None:
        self.add(paragraph(text, css))

    def figure(self, heading: str, png: bytes | None, what: str, why: str) -> Section:
        """Adds a sub-heading and the figure, or a notice that the run did not save it (listed)."""
        self.add(f"<h3>{esc(heading)}</h3>")
        if png is None:
            self.add(f'<p class="na">Not available: {esc(what)} ({esc(why)}).</p>')
            self.missing.append(f"{what} ({why})")
        else:
            self.add(image(png, heading))
        return self


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole document; a list of what is not available comes first."""
    missing = [f"{s.title}: {m}" for s in sections for m in s.missing]
    summary = "<p>Everything below is drawn from the files the run saved.</p>"
    if missing:
        items = "".join(f"<li>{esc(m)}</li>" for m in missing)
        summary = f"<p>Drawn from the files the run saved. Not available:</p><ul>{items}</ul>"
    body = "".join(
        f'<section><h2 id="s{i}">{esc(s.title)}</h2>{"".join(s.parts)}</section>'
        for i, s in enumerate(sections)
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8" />'
        f'<meta name="generator" content="{GENERATOR}" />'
        '<meta name="viewport" content="width=device-width, initial-scale=1" />'
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head>"
        f'<body><h1>{esc(title)}</h1><p class="meta">{esc(subtitle)}</p>{summary}{body}'
        "</body></html>\n"
    )
