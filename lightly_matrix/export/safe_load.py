"""Read a user's checkpoint file without running code from it (``weights_only`` unless trusted)."""

from __future__ import annotations

import hashlib
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from lightly_matrix.errors import UserError, first_line
from lightly_matrix.user_files import check_checkpoint_file

#: Shown wherever a file needs ``--trust-pickle``: what the flag risks.
TRUST_PICKLE_RISK = "runs code from the file; only for files you made or trust"


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_checkpoint(path: str | Path, trust_pickle: bool = False) -> Any:
    """``torch.load`` a user's file safely: tensors and plain Python values only.

    Our Lightning checkpoints, exported files and state dicts hold nothing else and load with
    ``weights_only=True``. A whole pickled ``nn.Module`` (``torch.save(model)``) can only be
    rebuilt by running code named in the file, so it needs ``trust_pickle``.

    Args:
        path: The file.
        trust_pickle: Unpickle arbitrary objects (``weights_only=False``); this runs code from
            the file, so only for files you made or trust.

    Returns:
        What the file holds.

    Raises:
        UserError: Missing or unreadable file, or pickled objects without ``trust_pickle``
            (one line naming the flag).
    """
    path = check_checkpoint_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as err:
        needed = re.search(r"GLOBAL ([\w.]+)", str(err))
        if trust_pickle or needed is None:  # not objects to trust: a broken file
            raise UserError(f"cannot read {path} as a torch checkpoint: {first_line(err)}") from err
        raise UserError(
            f"{path} holds pickled Python objects (it needs {needed.group(1)}), e.g. a whole"
            " nn.Module saved with"
            " torch.save(model), and is not loaded: save model.state_dict() instead, or pass"
            f" --trust-pickle, which {TRUST_PICKLE_RISK}"
        ) from err
    except Exception as err:
        raise UserError(f"cannot read {path} as a torch checkpoint: {first_line(err)}") from err
