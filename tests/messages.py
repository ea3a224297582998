"""Assert what an error message must carry (the offending value, the flag, the fix) without
pinning its wording, so that a message can be reworded without breaking more than its one test."""

from __future__ import annotations

import pytest


def assert_names(
    err: BaseException | pytest.ExceptionInfo | str, *tokens: str, one_line: bool = True
) -> str:
    """Fails unless the message holds every token (and, by default, fits on one line).

    Args:
        err: The exception, ``pytest.raises``'s ``ExceptionInfo``, or printed text.
        tokens: Substrings the message must contain: names, values, flags, the fix's key word.
        one_line: Whether the message must be a single line (what the CLI prints).

    Returns:
        The message, for further checks.
    """
    if isinstance(err, pytest.ExceptionInfo):
        err = err.value
    text = str(err).strip()
    if one_line:
        assert len(text.splitlines()) == 1, f"not one line: {text!r}"
    missing = [t for t in tokens if t not in text]
    assert not missing, f"{missing} not in {text!r}"
    return text


def cli_error(
    capsys: pytest.CaptureFixture[str],
    status: int,
    *tokens: str,
    command: str = "pretrain",
    only_line: bool = False,
) -> str:
    """The CLI refused with exit status 2 and a last stderr line ``lightly-matrix CMD: error:``
    holding every token, without a traceback; returns that line. ``only_line``: stderr holds
    nothing else (no warnings before it)."""
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    assert "Traceback" not in err, err
    assert not only_line or len(err.splitlines()) == 1, err
    last = err.splitlines()[-1]
    assert last.startswith(f"lightly-matrix {command}: error:"), err
    return assert_names(last, *tokens)
