"""The run folder ``--out``: which folders a new run may use, and that it can be written.

A new run needs an empty folder, or one left by a run that stopped before its first checkpoint
(a crash or divergence in the first steps): such a folder holds only our logs (``csv/``,
``tensorboard/``, whose ``version_N`` sub-folders Lightning never reuses) and at most the
random-initialisation evaluation in ``metrics.json``. Nothing in it is a result, and refusing it
while ``--resume`` finds no checkpoint would leave the user no way forward.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lightly_matrix.data.index import INDEX_DIR
from lightly_matrix.user_files import check_writable

#: What a run writes before its first checkpoint; log folders are never overwritten (the
#: folder index of lightly_matrix.data.index is reused by the next start).
LOG_DIRS = ("csv", "tensorboard", INDEX_DIR)
METRICS = "metrics.json"
#: Where the random-init evaluation of a failed start is moved when its folder is reused.
STALE_METRICS = "metrics.failed_start.json"


def _only_random_init(metrics: Path) -> bool:
    """Whether ``metrics.json`` holds no evaluation after training began (epoch 0 only)."""
    try:
        history = json.loads(metrics.read_text()).get("history", [])
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(history, list) and all(
        isinstance(row, dict) and row.get("epoch") == 0 for row in history
    )


def is_failed_start(out: Path) -> bool:
    """Whether ``out`` holds only what a run writes before its first checkpoint.

    Hidden files (e.g. a temporary checkpoint of a killed save) are ignored; any other file,
    a checkpoint or an evaluation after epoch 0 makes it a run to keep.
    """
    if not out.is_dir():
        return False
    entries = [p for p in out.iterdir() if not p.name.startswith(".")]
    for entry in entries:
        if entry.name in LOG_DIRS and entry.is_dir():
            continue
        if entry.name == METRICS and entry.is_file() and _only_random_init(entry):
            continue
        return False
    return not any(p.suffix == ".ckpt" for p in out.rglob("*"))


def reuse_failed_start(out: Path) -> str:
    """Makes a failed start's folder ready for a new run; returns the note to print.

    Its logs stay (the new run logs to new ``version_N`` folders); its random-init
    ``metrics.json``, which a new run would otherwise append to, is renamed aside.
    """
    metrics = out / METRICS
    if metrics.is_file():
        os.replace(metrics, out / STALE_METRICS)
    return (
        f"note: {out} holds only the logs of a run that stopped before its first checkpoint; "
        "starting afresh in it (those logs are kept)"
    )


def ensure_writable(out: Path) -> None:
    """Checks, leaving nothing behind, that the run folder can be made and written.

    Raises:
        UserError: A part of the path is a file, or the place is read-only / not permitted.
    """
    check_writable(out, f"--out {out}")
