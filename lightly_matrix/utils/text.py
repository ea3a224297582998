"""Text for people: Markdown tables."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from lightly_matrix.utils.checks import is_number


def plain_cell(value: Any) -> str:
    """A table cell: floats with 2 decimals, ``None`` empty, anything else ``str``."""
    return f"{value:.2f}" if isinstance(value, float) else "" if value is None else str(value)


def percent(value: Any) -> float | None:
    """An AP fraction in percent; ``None`` for -1 or nan (COCO had no such objects) or no number."""
    return 100.0 * value if is_number(value) and value >= 0 else None


def markdown_row(cells: Iterable[str]) -> str:
    """One Markdown table row of already formatted cells: ``| a | 1.00 |``."""
    return "| " + " | ".join(cells) + " |"


def markdown_table(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[tuple[str, str]],
    cell: Callable[[Any], str] = plain_cell,
) -> str:
    """A Markdown table of ``rows`` with ``(key, header)`` columns, cells formatted by ``cell``.

    Examples:
        >>> columns = [("name", "run"), ("top1", "top-1")]
        >>> print(markdown_table([{"name": "a", "top1": 91.234}], columns))
        | run | top-1 |
        |---|---|
        | a | 91.23 |
    """
    lines = [markdown_row(header for _, header in columns), "|" + "---|" * len(columns)]
    lines += [markdown_row(cell(row.get(key)) for key, _ in columns) for row in rows]
    return "\n".join(lines)
