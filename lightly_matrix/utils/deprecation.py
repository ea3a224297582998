"""Renamed keyword arguments: the old name keeps working, with a ``DeprecationWarning``."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any


def warn_renamed(owner: str, old: str, new: str, stacklevel: int = 2) -> None:
    """The one ``DeprecationWarning`` of a renamed argument (``stacklevel`` as for ``warn``
    called where this is called)."""
    warnings.warn(
        f"{owner}: {old!r} is deprecated, use {new!r} (same meaning and value)",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )


def rename_kwargs(
    owner: str, renames: Mapping[str, str], kwargs: Mapping[str, Any], stacklevel: int = 2
) -> dict[str, Any]:
    """``kwargs`` with every old name of ``renames`` (old -> new) replaced by its new name.

    Warns once per old name given. An old name given with its new name is ambiguous: a
    ``TypeError``, as Python raises for an argument given twice.

    Examples:
        >>> rename_kwargs("Loss", {"lamda": "target_scale"}, {"gamma": 1.0})
        {'gamma': 1.0}
    """
    out = dict(kwargs)
    for old, new in renames.items():
        if old in out:
            if new in out:
                raise TypeError(f"{owner}() got {old!r} and its new name {new!r}; pass {new!r}")
            warn_renamed(owner, old, new, stacklevel + 1)
            out[new] = out.pop(old)
    return out


def resolve_renamed(
    owner: str,
    renames: Mapping[str, str],
    deprecated: Mapping[str, Any],
    given: Mapping[str, Any],
    defaults: Mapping[str, Any],
    stacklevel: int = 2,
) -> dict[str, Any]:
    """The new arguments' values, taking a value given under an old name from ``deprecated``.

    For constructors that declare the new names and catch old ones in ``**deprecated``.

    Args:
        owner: Class name for the messages.
        renames: Old name -> new name.
        deprecated: Old names and their values; any other name is a ``TypeError``, as for any
            unexpected keyword argument.
        given: The new arguments' values as received.
        defaults: The new arguments' defaults: an old name next to a new one that is not at its
            default is ambiguous (``TypeError``).
        stacklevel: As for ``warnings.warn`` called where this is called.

    Returns:
        ``given`` with the old names' values filled in.
    """
    unknown = sorted(set(deprecated) - set(renames))
    if unknown:
        raise TypeError(f"{owner}() got an unexpected keyword argument {unknown[0]!r}")
    out = dict(given)
    for old, value in deprecated.items():
        new = renames[old]
        if out[new] != defaults[new]:
            raise TypeError(f"{owner}() got {old!r} and its new name {new!r}; pass {new!r}")
        warn_renamed(owner, old, new, stacklevel + 1)
        out[new] = value
    return out
