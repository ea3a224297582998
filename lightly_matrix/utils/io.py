"""Atomic file writes: a reader (or a kill at any moment) sees the old file or the new one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def current_umask() -> int:
    """The process's umask, from ``/proc`` where possible (``os.umask`` briefly sets it to 0)."""
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any], replace: bool = True) -> Path:
    """Write ``path`` through ``write(binary_file)`` (into a fsynced temporary file renamed over
    it); on any error ``path`` keeps its content. ``replace=False``: never replace an existing
    ``path`` (``FileExistsError``), even in a race.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> target = Path(tempfile.mkdtemp()) / "hello.txt"
        >>> _ = atomic_write(target, lambda f: f.write(b"hello"))
        >>> target.read_text()
        'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The name's start only: name + random part + suffix could exceed the 255-byte name limit.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:32]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the permissions any new file would get.
        os.chmod(tmp, 0o666 & ~current_umask())
        if replace:
            os.replace(tmp, path)
        else:  # a hard link, unlike a rename, fails on an existing target
            os.link(tmp, path)
            os.unlink(tmp)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename durable (POSIX)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def atomic_write_text(path: str | Path, text: str, replace: bool = True) -> Path:
    """:func:`atomic_write` of a UTF-8 text."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")), replace)


def write_json_atomic(path: str | Path, payload: Any) -> Path:
    """:func:`atomic_write` of ``payload`` as indented JSON with a final newline."""
    return atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """:func:`atomic_write` of ``torch.save(obj)``."""
    import torch  # here: the text and JSON writers stay usable without torch

    return atomic_write(path, lambda f: torch.save(obj, f))
