"""Paths a user names: checkpoints handed in, and places to write into (torch-free)."""

from __future__ import annotations

import argparse
import os
import stat
import tempfile
from pathlib import Path

from lightly_matrix.errors import UserError

#: First bytes of what ``torch.save`` writes: a zip archive, or a pickle (its legacy format).
_TORCH_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x80")
_KINDS = {
    stat.S_IFREG: "a file",
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}
#: What a pretraining run saves of its evaluations (written by the probes, read by the report).
METRICS_FILE = "metrics.json"
SPECTRUM_FILE = "spectrum.json"


def path_kind(path: str | Path) -> str | None:
    """What is at ``path`` (``"a file"``, ``"a named pipe (FIFO)"``, ...), ``None`` if nothing.

    Examples:
        >>> path_kind("/dev/null"), path_kind("no/such/file")
        ('a character device', None)
    """
    try:
        return _KINDS.get(stat.S_IFMT(os.stat(path).st_mode), "a special file")
    except OSError:
        return None


def path_text(text: str) -> str:
    """An ``argparse`` ``type=`` for a path: an empty one (an unset shell variable) is an error."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path (an unset shell variable?)")
    if text.startswith("~"):  # quoted, so the shell left it: a folder named '~' is a trap
        raise argparse.ArgumentTypeError(f"{text!r}: the shell expands ~ only unquoted; use $HOME")
    return text


def check_checkpoint_file(path: str | Path, what: str = "checkpoint") -> Path:
    """Refuse, in one line naming it as ``what``, a path that cannot be a ``torch.save`` file
    (before ``torch.load`` reports "weights only load failed"); returns it as a Path.

    Examples:
        >>> check_checkpoint_file("no/such/file.ckpt")
        Traceback (most recent call last):
        ...
        lightly_matrix.errors.UserError: checkpoint no/such/file.ckpt does not exist
    """
    path = Path(path)
    if path.is_dir():
        inside = next((p for p in (path / "last.ckpt", path / "backbone.pth") if p.is_file()), None)
        hint = f"; did you mean {inside}?" if inside else "; pass the checkpoint file in it"
        raise UserError(f"{what} {path} is a folder, not a checkpoint file{hint}")
    if not path.is_file():
        kind = path_kind(path)
        raise UserError(
            f"{what} {path} " + (f"is {kind}, not a file" if kind else "does not exist")
        )
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as err:
        raise UserError(f"{what} {path} cannot be read ({err.strerror or err})") from None
    if not head:
        raise UserError(
            f"{what} {path} is an empty file, not a checkpoint (an interrupted copy?); pass the "
            "run's last.ckpt, or a checkpoint from an earlier save"
        )
    if not head.startswith(_TORCH_MAGIC):
        why = "a truncated download, or another kind of file?"
        if head[8:] == b"{":  # safetensors: an 8-byte header length, then its JSON
            why = "safetensors: torch.save(safetensors.torch.load_file(FILE), 'x.pth') converts it"
        raise UserError(
            f"{what} {path} is not a checkpoint: torch.save writes a zip archive or a pickle, and"
            f" this file is neither ({why})"
        )
    return path


def check_writable(path: str | Path, what: str) -> None:
    """Refuse, in one line and leaving nothing behind (a nameless temporary file tries it), a folder
    that cannot be made and written; ``what`` names it in the message, e.g. ``"--out runs/x"``.

    Raises:
        UserError: A part of the path is a file or a dangling link; a read-only or forbidden place.
    """
    existing = Path(path)
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():
            raise UserError(
                f"{what}: {existing} is a symbolic link to {os.readlink(existing)!r}, which does"
                " not exist; create that folder or choose another place"
            )
        existing = existing.parent
    reason = f"{existing} is {path_kind(existing)}, not a folder"
    try:
        if existing.is_dir():
            with tempfile.TemporaryFile(dir=existing):
                return
    except OSError as err:
        reason = err.strerror or type(err).__name__
    raise UserError(f"{what}: cannot write there ({reason}); choose another place")
