"""The error type for a user's mistake; the bottom layer: every module may import it."""

from __future__ import annotations

__all__ = ["UserError", "first_line"]


class UserError(Exception):
    """A mistake in the user's input: printed as one line, without a traceback."""


def first_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type name if it has none.

    Examples:
        >>> first_line(ValueError("bad value\\n  detail"))
        'bad value'
        >>> first_line(KeyError())
        'KeyError'
    """
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
