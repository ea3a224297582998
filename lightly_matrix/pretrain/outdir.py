"""The run folder ``--out``: which folders a new run may use (empty, or a start that stopped
before its first checkpoint, where ``--resume`` finds nothing), and that it can be written."""

from __future__ import annotations

import json
import os
from pathlib import Path

from lightly_matrix.data.folder import INDEX_DIR
from lightly_matrix.errors import UserError
from lightly_matrix.user_files import METRICS_FILE, SPECTRUM_FILE, check_writable

#: Folders a run writes before its first checkpoint (Lightning never reuses a ``version_N``).
LOG_DIRS = ("csv", "tensorboard", INDEX_DIR)
#: The probes' split of an image folder, kept so that a resumed run scores the same images.
SPLIT_FILE = "probe_split.json"
#: The evaluations a run writes before training: renamed aside when a new run reuses the folder.
EVALUATIONS = {METRICS_FILE: "history", SPECTRUM_FILE: "evaluations"}


def _only_random_init(path: Path, key: str) -> bool:
    """Whether an evaluation file holds only the random-initialisation one (epoch 0)."""
    try:
        rows = json.loads(path.read_text()).get(key, [])
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(rows, list) and all(isinstance(r, dict) and r.get("epoch") == 0 for r in rows)


def is_failed_start(out: Path) -> bool:
    """Whether ``out`` holds only what a run writes before its first checkpoint (and the lock)."""
    if not out.is_dir():
        return False
    for entry in out.iterdir():
        name = entry.name
        if name.startswith(".") or name == SPLIT_FILE or (name in LOG_DIRS and entry.is_dir()):
            continue
        key = EVALUATIONS.get(entry.name)
        if key is None or not entry.is_file() or not _only_random_init(entry, key):
            return False
    return not any(p.suffix == ".ckpt" for p in out.rglob("*"))


def foreign_file(out: Path) -> str | None:
    """A file of ``out`` if nothing in it is a run's (a folder of the user's), else ``None``."""
    names = sorted(entry.name for entry in out.iterdir() if not entry.name.startswith("."))
    ours = {*LOG_DIRS, SPLIT_FILE, *EVALUATIONS}  # every run writes its logs first
    return None if ours.intersection(names) else next(iter(names), None)


def reuse_failed_start(out: Path) -> str:
    """Readies a failed start's folder for a new run (its evaluations, which the run would append
    to, become ``*.failed_start.json``); returns the note to print."""
    for name in EVALUATIONS:
        if (out / name).is_file():
            os.replace(out / name, out / name.replace(".json", ".failed_start.json"))
    return (
        f"note: {out} holds only the logs of a run that stopped before its first checkpoint; "
        "starting afresh in it (those logs are kept)"
    )


def ensure_writable(out: Path, named: str) -> None:
    """:func:`check_writable`, and a UTF-8 path (TensorBoard cannot write elsewhere)."""
    check_writable(out, named)
    if os.fsencode(out).decode("utf-8", "ignore") != str(out):
        raise UserError(
            f"--out {out!r} is not a UTF-8 path, which TensorBoard needs; choose another name"
        )
