"""Argument checks shared by constructors and command lines: one wording, one rule."""

from __future__ import annotations

import argparse
import math
import numbers
import sys
from typing import Any


def is_number(value: object) -> bool:
    """Whether ``value`` is a finite real number that fits a float (not ``bool``, NaN, inf)."""
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    fits = not isinstance(value, int) or abs(value) <= sys.float_info.max  # 10**400: OverflowError
    return real and fits and math.isfinite(value)  # type: ignore[arg-type]


def check_positive_int(name: str, value: Any, hint: str = "") -> int:
    """``value`` if it is an ``int`` >= 1 (not ``bool``), else a ``ValueError`` with ``hint``.

    Examples:
        >>> check_positive_int("num_iters", 0, hint="Detectron2 uses 200")
        Traceback (most recent call last):
        ...
        ValueError: num_iters must be a positive int, got 0; Detectron2 uses 200
    """
    # bool is an int subclass, but True as a layer count is a mistake, not a 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        fix = f"; {hint}" if hint else ""
        raise ValueError(f"{name} must be a positive int, got {value!r}{fix}")
    return value


def check_number(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    hint: str = "",
) -> float:
    """``value`` as a float if it is a finite real number in the given range, else a ValueError.

    Examples:
        >>> check_number("gamma", 2, low=0.0)
        2.0
        >>> check_number("ridge", 0.0, low=0.0, low_open=True, hint="use 1.0.")
        Traceback (most recent call last):
        ...
        ValueError: ridge must be a finite number > 0, got 0.0; use 1.0.
    """
    bounds = [f"{'>' if low_open else '>='} {low:g}"] if low is not None else []
    bounds += [f"{'<' if high_open else '<='} {high:g}"] if high is not None else []
    v = float(value) if is_number(value) else math.nan  # type: ignore[arg-type]
    above = low is None or (v > low if low_open else v >= low)
    below = high is None or (v < high if high_open else v <= high)
    if not (math.isfinite(v) and above and below):
        valid = " ".join(["a finite number", " and ".join(bounds)]).strip()
        raise ValueError(f"{name} must be {valid}, got {value!r}" + (f"; {hint}" if hint else "."))
    return v


def positive_int(text: str) -> int:
    """An ``argparse`` ``type=`` for counts >= 1; argparse prints the flag and the value."""
    try:
        return check_positive_int("the value", int(text))
    except ValueError:
        # ArgumentTypeError's text is printed as is: "argument --parallel: must be ...".
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
