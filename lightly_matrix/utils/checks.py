"""Argument checks shared by constructors and command lines: one wording, one rule."""

from __future__ import annotations

import argparse
from typing import Any


def check_positive_int(name: str, value: Any, hint: str = "") -> int:
    """``value`` if it is an ``int`` >= 1 (``bool`` is not), else a ``ValueError`` naming it.

    Args:
        name: The argument's name as the caller spells it (``"num_iters"``, ``"--parallel"``).
        value: What was passed.
        hint: How to fix it, appended to the message (e.g. a usual value).

    Returns:
        ``value``, so that a constructor can check and assign in one line.

    Raises:
        ValueError: If ``value`` is not an ``int`` (or is a ``bool``) or is below 1.

    Examples:
        >>> check_positive_int("num_layers", 3)
        3
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


def positive_int(text: str) -> int:
    """An ``argparse`` ``type=`` for counts >= 1; argparse prints the flag and the value.

    Examples:
        >>> parser = argparse.ArgumentParser()
        >>> _ = parser.add_argument("--parallel", type=positive_int)
        >>> parser.parse_args(["--parallel", "2"]).parallel
        2
    """
    try:
        return check_positive_int("the value", int(text))
    except ValueError:
        # ArgumentTypeError's text is printed as is: "argument --parallel: must be ...".
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
