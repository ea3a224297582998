"""The error type for a user's mistake, shared by the library and the CLI (imports only utils)."""

from __future__ import annotations

from lightly_matrix.utils.text import first_line

__all__ = ["UserError", "first_line"]


class UserError(Exception):
    """A mistake in the user's input: printed as one line, without a traceback."""
