"""Export pretrained backbones as checkpoints that mmdet's ``init_cfg`` loads.

>>> from lightly_matrix.export import export_backbone
>>> export_backbone("runs/matrix_ssl/last.ckpt", "backbone_r18.pth")  # doctest: +SKIP

The written file is ``{'state_dict': {'backbone.<mmdet key>': tensor}, 'meta': {...}}`` with
only tensors and plain Python values (it loads with ``torch.load(..., weights_only=True)``, as
mmengine 0.10.7 does under torch >= 2.6). Point a config at it with::

    model.backbone.init_cfg = dict(type='Pretrained', checkpoint=FILE, prefix='backbone.')
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from torch import nn

from lightly_matrix import __version__
from lightly_matrix.errors import UserError
from lightly_matrix.export.convert import Backbone, check_weights, load_backbone
from lightly_matrix.export.verify import (
    MMDET_INSTALL_HINT,
    ExportError,
    mmdet_import_error,
    verify_backbone,
)
from lightly_matrix.user_files import check_writable, path_kind
from lightly_matrix.utils.io import atomic_torch_save
from lightly_matrix.utils.lock import LOCK_NAME, folder_lock

__all__ = [
    "EXPORT_FORMAT",
    "Backbone",
    "ExportError",
    "export_backbone",
    "load_backbone",
    "save_backbone",
    "verify_backbone",
]

#: ``meta['format']`` of the files :func:`export_backbone` writes; :func:`load_backbone` reads
#: them back (keeping their provenance).
EXPORT_FORMAT = "lightly_matrix.mmdet_backbone"
#: ``meta['format_version']``: raised when the file's layout changes.
EXPORT_FORMAT_VERSION = 1


def check_out_file(out: str | Path, force: bool = False, src: Any = None) -> Path:
    """Refuse in one line an ``out`` that is a folder, the input ``src`` (``force`` or not), no
    regular file (a device, FIFO, socket, dangling link), an existing file without ``force``, or
    in a place that cannot be written."""
    if str(out).endswith(("/", os.sep)) or os.path.isdir(out):
        raise UserError(
            f"--out {out} names a folder; give a file, e.g. {Path(out, 'backbone.pth')}"
        )
    out = Path(out)
    if out.name == LOCK_NAME:
        raise UserError(f"--out {out} is the name of the folder's lock file; choose another --out")
    both = isinstance(src, str | Path) and os.path.exists(out) and os.path.exists(src)
    if both and out.samefile(src):
        raise UserError(
            f"--out {out} is the input checkpoint; writing the export over it would lose the"
            " original (--force never replaces the input): choose another --out"
        )
    if os.path.lexists(out):
        if not os.path.isfile(out):
            kind = path_kind(out) or "a dangling symbolic link"
            raise UserError(f"--out {out} is {kind}, not a regular file; choose another --out")
        if not force:
            raise UserError(
                f"{out} already exists; not overwriting it (choose another --out or pass --force)"
            )
    check_writable(out.parent, f"--out {out}")
    return out


def save_payload(payload: Any, out: str | Path, force: bool, src: Any, lock: bool = True) -> Path:
    """``torch.save`` to ``out`` atomically, re-checking ``out`` under its folder's lock (``lock``:
    off where the caller holds it) so that two writers never both claim one file; on a failed
    write, one line, and a previous file there is unchanged."""
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with folder_lock(out.parent) if lock else nullcontext():
            check_out_file(out, force, src)
            return atomic_torch_save(payload, out)
    except (OSError, RuntimeError) as err:  # RuntimeError: torch's zip writer on a failed write
        why = getattr(err, "strerror", None) or "the disk is full or a file size limit was hit"
        raise UserError(
            f"cannot write {out} ({why}); any previous file there is unchanged: free space or"
            " choose another --out"
        ) from None


def save_backbone(
    backbone: Backbone, out: str | Path, force: bool = False, lock: bool = False
) -> Path:
    """Write converted weights in the export format, atomically: never over the file they were
    read from, nor over an existing file unless ``force``.

    Args:
        backbone: Converted weights, e.g. from :func:`load_backbone`.
        out: Output file.
        force: Replace ``out`` if it is an existing regular file (never the input).
        lock: Hold ``out``'s folder lock while writing (off where the caller holds it).

    Raises:
        UserError: ``out`` is refused or cannot be written (one line; a previous file there is
            unchanged), or a weight is NaN or infinite.
    """
    check_weights(backbone.state_dict)
    meta = {
        **backbone.meta,
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "architecture": backbone.architecture,
        "backbone_cfg": dict(backbone.backbone_cfg),
        "num_tensors": len(backbone.state_dict),
        "lightly_matrix_version": __version__,
    }
    # Own, contiguous storage per tensor: a view would drag its whole source storage along.
    sd = {f"backbone.{k}": v.detach().clone().contiguous() for k, v in backbone.state_dict.items()}
    return save_payload({"state_dict": sd, "meta": meta}, out, force, meta.get("source"), lock)


def export_backbone(
    src: str | Path | nn.Module | Mapping[str, Any],
    out: str | Path,
    *,
    force: bool = False,
    model_cfg: Mapping[str, Any] | None = None,
    verify: bool | None = None,
    trust_pickle: bool = False,
    arch: str | None = None,
) -> Backbone:
    """Convert a pretrained backbone, check it against mmdet, and write it for ``init_cfg``.

    Args:
        src: Any source :func:`load_backbone` reads: our Lightning checkpoint (its online
            ``backbone.`` only), a Lightly or torchvision ResNet, a timm ViT or lightly's
            ``MaskedVisionTransformerTIMM`` (file, module or state dict), or an export.
        out: Output file; an existing one is an error unless ``force``.
        force: Replace ``out`` if it is an existing regular file (never the input).
        model_cfg: Also check against this detector ``model`` config (:func:`verify_backbone`).
        verify: Check the weights against mmdet's backbone; ``None`` (default): when MMDetection
            can be imported, else skipped with a warning (the file is written either way).
        trust_pickle: Accept a file holding a whole pickled ``nn.Module`` (runs its code).
        arch: The timm model name of ViT weights that do not record it.

    Returns:
        The converted :class:`Backbone` (``meta`` as written).

    Raises:
        UserError: Unreadable input, unknown layout, non-finite weights, weights that do not
            cover the mmdet backbone (:class:`ExportError`), or a refused ``out``.
    """
    out = check_out_file(out, force, src)
    backbone = load_backbone(src, trust_pickle=trust_pickle, arch=arch)
    if verify is None:
        reason = mmdet_import_error()
        verify = reason is None
        if reason is not None:
            warnings.warn(
                f"MMDetection cannot be imported ({reason}): {out} is written without checking"
                f" it against mmdet's backbone; {MMDET_INSTALL_HINT}",
                stacklevel=2,
            )
    if verify:
        verify_backbone(backbone)
    if model_cfg is not None:
        verify_backbone(backbone, model_cfg)
    save_backbone(backbone, out, force=force, lock=True)
    return backbone
