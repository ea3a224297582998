"""One writer per output folder: an exclusive OS lock held for as long as a command writes there
(the kernel drops it when the process dies). Not ``filelock``: it truncates the file when it
*tries* to lock, erasing the holder's pid that the refusal names."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lightly_matrix.errors import UserError

LOCK_NAME = ".lightly-matrix.lock"


@contextmanager
def folder_lock(folder: Path, option: str = "--out") -> Iterator[None]:
    """Holds the exclusive lock of ``folder`` (which must exist) while the block runs, its file
    removed after; a ``UserError`` naming ``option`` if another process holds it."""
    path = Path(folder) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_nlink == 0:  # removed by a holder that was just done
                raise BlockingIOError
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise UserError(
                f"{option} {folder} is in use by another lightly-matrix process (pid {holder});"
                f" wait for it to finish or choose another {option}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:  # removed while held, so no one else locks it: a next writer makes a new one
            with contextlib.suppress(OSError):
                path.unlink()
    finally:
        os.close(fd)  # closing releases the lock
