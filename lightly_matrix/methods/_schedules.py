"""The learning-rate and teacher-momentum schedules of the authors' training scripts, as pure
functions of the step (or epoch) index.

All three authors' scripts warm up linearly, then follow a half-cycle cosine to a final value;
they differ only in where the warm-up reaches its peak:

- ``"linspace"``: ``start + (peak - start) * i / (W - 1)``, the peak at the LAST warm-up unit
  (Matrix-SSL's ``cosine_scheduler``, a ``np.linspace``; CorInfoMax's per-epoch
  ``LinearWarmupCosineAnnealingLR``);
- ``"fraction"``: ``start + (peak - start) * i / W``, the peak at the first unit after warm-up
  (M-MAE's ``adjust_learning_rate``, MAE's recipe).

After ``W`` warm-up units both follow
``final + (peak - final) * (1 + cos(pi * (i - W) / (T - W))) / 2``.
"""

from __future__ import annotations

import math

WARMUP_STYLES = ("linspace", "fraction")


def cosine(index: float, total: float, start: float, end: float) -> float:
    """Half-cycle cosine from ``start`` (index 0) to ``end`` (index ``total``)."""
    if total <= 0:
        return end
    progress = min(max(index / total, 0.0), 1.0)
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(
    index: int,
    total: int,
    warmup: int,
    peak: float,
    start: float = 0.0,
    final: float = 0.0,
    style: str = "linspace",
) -> float:
    """The value at ``index`` of ``total`` units: linear warm-up over ``warmup`` units, then cosine.

    Args:
        index: Step (or epoch) index, from 0.
        total: Number of steps (or epochs) of the run.
        warmup: Warm-up length in the same units (0: none).
        peak: Value at the end of the warm-up.
        start: Value at index 0 of the warm-up.
        final: Value at index ``total``.
        style: ``"linspace"`` or ``"fraction"`` (see the module docstring).

    Examples:
        >>> [round(warmup_cosine(i, 10, 3, 1.0), 3) for i in (0, 1, 2, 3, 10)]
        [0.0, 0.5, 1.0, 1.0, 0.0]
        >>> round(warmup_cosine(1, 10, 4, 1.0, style="fraction"), 3)
        0.25
    """
    if style not in WARMUP_STYLES:
        raise ValueError(f"warmup style must be one of {WARMUP_STYLES}, got {style!r}")
    warmup = min(warmup, total)
    if index < warmup:
        span = warmup - 1 if style == "linspace" else warmup
        return peak if span <= 0 else start + (peak - start) * index / span
    return cosine(index - warmup, total - warmup, peak, final)
