"""The report's figures as PNG bytes, from a matplotlib ``Figure`` without pyplot (no backend)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lightly_matrix.errors import UserError
from lightly_matrix.report.data import Curve


def require_matplotlib() -> None:
    """Raises a one-line ``UserError`` with the install command when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        hint = "pip install 'lightly-matrix[report]' (or pip install matplotlib)"
        raise UserError(f"the report draws its figures with matplotlib: {hint}") from None


@dataclass
class Series:
    """One line of a panel; ``yerr``: symmetric error bars, ``label=""``: no legend entry."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    yerr: Sequence[float] | None = None
    fmt: str = "-o"
    color: Any = None
    alpha: float = 1.0
    linewidth: float = 1.5


@dataclass
class Panel:
    """One set of axes; ``vlines``: ``(x, label, color)`` markers, ``legend``: legend kwargs."""

    title: str
    xlabel: str
    ylabel: str
    series: list[Series]
    logy: bool = False
    vlines: list[tuple[float, str, Any]] = field(default_factory=list)
    integer_x: bool = False
    legend: dict[str, Any] = field(default_factory=lambda: {"loc": "best"})


#: Legends right of the axes and below them.
BESIDE: dict[str, Any] = dict(loc="upper left", bbox_to_anchor=(1.01, 1.0))
BELOW: dict[str, Any] = dict(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)


#: A panel of logged curves: title, y label, ``[(curve, legend, fmt)]``, x in epochs?, y scale.
CurvePanel = tuple[str, str, list[tuple[str, str, str]], bool, float]


def _xy(curve: Curve, by_epoch: bool, scale: float) -> tuple[list[float], list[float]]:
    if by_epoch:  # logged at an epoch's end: the epoch column is 0-based, x is epochs done
        points = [(epoch + 1, value) for _, epoch, value in curve if epoch is not None]
    else:
        points = [(step, value) for step, _, value in curve]
    return [p[0] for p in points], [scale * p[1] for p in points]


def draw_curves(
    curves: Mapping[str, Curve], specs: Sequence[CurvePanel], steps: str = "training step"
) -> tuple[bytes | None, list[str]]:
    """The PNG of the ``specs`` panels with a logged curve (``None``: none); the others' titles."""
    panels, missing = [], []
    for title, ylabel, columns, by_epoch, scale in specs:
        series = [
            Series(label, *_xy(curves[column], by_epoch, scale), fmt=fmt, linewidth=1.2)
            for column, label, fmt in columns
            if column in curves
        ]
        if series:
            xlabel = "epoch" if by_epoch else steps
            panels.append(Panel(title, xlabel, ylabel, series, integer_x=by_epoch))
        else:
            missing.append(title)
    return (draw_panels(panels) if panels else None), missing


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def draw_panels(panels: Sequence[Panel], size: tuple[float, float] = (5.4, 3.5)) -> bytes:
    """Draws ``panels`` in a grid of two columns; returns the PNG bytes."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    columns = max(1, min(2, len(panels)))
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(size[0] * columns, size[1] * rows), layout="constrained")
    axes_grid = figure.subplots(rows, columns, squeeze=False).flat
    for axes in axes_grid[len(panels) :]:
        axes.set_axis_off()
    for panel, axes in zip(panels, axes_grid, strict=False):
        for s in panel.series:
            style = dict(color=s.color, alpha=s.alpha, label=s.label or None, linewidth=s.linewidth)
            if s.yerr is not None:
                axes.errorbar(s.x, s.y, yerr=s.yerr, fmt=s.fmt, capsize=4, **style)
            else:
                axes.plot(s.x, s.y, s.fmt, markersize=4, **style)
        for x, label, color in panel.vlines:
            axes.axvline(x, linestyle="--", color=color, linewidth=1.0, label=label or None)
        if panel.integer_x:
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set(xlabel=panel.xlabel, ylabel=panel.ylabel, yscale="log" if panel.logy else "linear")
        axes.set_title(panel.title, fontsize=11)
        axes.grid(True, alpha=0.3, which="major")
        if any(s.label for s in panel.series) or any(label for _, label, _ in panel.vlines):
            axes.legend(fontsize=8, **panel.legend)
    return _png(figure)


def draw_bars(
    title: str, categories: Sequence[str], values: Mapping[str, Sequence[float | None]], xlabel: str
) -> bytes:
    """Horizontal grouped bars, one group per category; ``None`` values are labelled ``n/a``."""
    import numpy as np
    from matplotlib.figure import Figure

    height = 1.2 + 0.32 * len(categories) * max(1, len(values))
    figure = Figure(figsize=(7.5, min(height, 40.0)), layout="constrained")
    axes = figure.subplots()
    positions = np.arange(len(categories))
    bar = 0.8 / max(1, len(values))
    for index, (label, numbers) in enumerate(values.items()):
        offset = positions - 0.4 + bar * (index + 0.5)
        drawn = [0.0 if v is None else v for v in numbers]
        bars = axes.barh(offset, drawn, height=bar, label=label)
        labels = ["n/a" if v is None else f"{v:.1f}" for v in numbers]
        axes.bar_label(bars, labels=labels, fontsize=8, padding=2)
    axes.set_yticks(positions, list(categories))
    axes.invert_yaxis()
    axes.set_xlabel(xlabel)
    axes.set_title(title, fontsize=11)
    axes.set_xlim(0, max([1.0] + [v for n in values.values() for v in n if v is not None]) * 1.15)
    axes.grid(True, axis="x", alpha=0.3)
    axes.legend(fontsize=8, **BESIDE)
    return _png(figure)
