"""Export pretrained backbones as checkpoints that mmdet's ``init_cfg`` loads.

>>> from lightly_matrix.export import export_backbone
>>> export_backbone("runs/matrix_ssl/last.ckpt", "backbone_r18.pth")  # doctest: +SKIP

The file, ``{'state_dict': {'backbone.<mmdet key>': tensor}, 'meta': {...}}`` (``weights_only``
loads it), is for ``init_cfg = dict(type='Pretrained', checkpoint=FILE, prefix='backbone.')``.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightly_matrix import __version__
from lightly_matrix.errors import UserError, first_line
from lightly_matrix.export.convert import (
    EXPORT_FORMAT,
    EXPORT_FORMAT_VERSION,
    Backbone,
    check_weights,
    listing,
    load_backbone,
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

#: How to get MMDetection, for messages where it is missing.
MMDET_INSTALL_HINT = (
    'pip install "lightly-matrix[mmdet]" (mmcv 2.1.0 has no wheel for this torch and is compiled'
    ' from source; see the README, "Use it in your own project")'
)


class ExportError(UserError):
    """Converted weights do not fit the mmdet model they are meant for."""


def mmdet_import_error() -> str | None:
    """Why MMDetection (mmengine, mmcv, mmdet) cannot be imported, or ``None`` if it can."""
    # Importing mmengine and mmcv warns that pkg_resources is deprecated: not the user's concern.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    try:
        import mmcv  # noqa: F401
        import mmdet  # noqa: F401
        import mmengine  # noqa: F401
    except Exception as err:  # ImportError, or mmdet's assertion on the mmcv version
        return first_line(err)
    return None


def require_mmdet(what: str) -> None:
    """Refuse (UserError) in one line saying how to install MMDetection, if it is missing."""
    if (reason := mmdet_import_error()) is not None:
        raise UserError(
            f"{what} needs MMDetection, which cannot be imported ({reason}); {MMDET_INSTALL_HINT}"
        )


# mmengine's ``Pretrained`` init only logs mismatched keys (a wrong layout would silently fine-tune
# a random backbone): so build the very modules that will load the file and compare first.
def expected_keys(cfg: Mapping[str, Any]) -> dict[str, torch.Size]:
    """Parameter and buffer shapes a checkpoint must give the mmdet module ``cfg`` (built without
    ``init_cfg``), less the new layers a module's ``pretrained_keys()`` leaves out."""
    require_mmdet("checking weights against mmdet's modules")
    from mmdet.registry import MODELS

    import lightly_matrix.mmdet  # noqa: F401 - registers our backbone and shared head

    module_cfg = {k: v for k, v in cfg.items() if k not in ("init_cfg", "pretrained")}
    try:
        module: nn.Module = MODELS.build(copy.deepcopy(module_cfg))
    except (ValueError, TypeError, KeyError, AssertionError) as err:  # what the modules refuse
        raise ExportError(
            f"mmdet's {cfg.get('type')} cannot take these weights ({first_line(err)}); --format"
            " torchvision|timm exports them for plain PyTorch"
        ) from None
    sd = module.state_dict()
    own = getattr(module, "pretrained_keys", None)
    return {k: sd[k].shape for k in (own() if callable(own) else sd)}


def verify_backbone(backbone: Backbone, model_cfg: Mapping[str, Any] | None = None) -> None:
    """Check that the converted weights cover the mmdet module(s) they are meant for.

    Args:
        backbone: Converted weights.
        model_cfg: A detector ``model`` config: check its backbone and a C4 model's RoI shared
            head (res5). Default: the module ``backbone.backbone_cfg`` describes.

    Raises:
        ExportError: Missing or unexpected keys, or shape mismatches (all listed).
    """
    sd = backbone.state_dict
    if model_cfg is None:
        targets = expected_keys(backbone.backbone_cfg)
        what = f"mmdet's {backbone.backbone_cfg['type']} ({backbone.architecture})"
    else:
        targets = expected_keys(model_cfg["backbone"])
        shared = (model_cfg.get("roi_head") or {}).get("shared_head")
        for key, shape in (expected_keys(shared) if shared else {}).items():
            if targets.setdefault(key, shape) != shape:
                raise ExportError(f"backbone and shared head disagree on {key}")
        what = f"the config's backbone ({model_cfg['backbone'].get('type')})"
    check_fit(sd, targets, what, "that the config's backbone matches its architecture")


def check_fit(
    sd: Mapping[str, torch.Tensor], targets: Mapping[str, Any], what: str, check: str
) -> None:
    """Raises :class:`ExportError` naming the keys of ``sd`` missing from or unlike ``targets``."""
    missing, unexpected = set(targets) - set(sd), set(sd) - set(targets)
    mismatched = [
        f"{k} {tuple(sd[k].shape)} vs {tuple(targets[k])}"
        for k in set(targets) & set(sd)
        if sd[k].shape != targets[k]
    ]
    found = {"missing keys": missing, "unexpected keys": unexpected, "shape mismatches": mismatched}
    problems = [f"{len(names)} {kind}: {listing(names)}" for kind, names in found.items() if names]
    if problems:
        raise ExportError(
            f"the weights do not fit {what} ({len(targets)} tensors expected, {len(sd)} given):"
            f" {'; '.join(problems)}. Check that the checkpoint holds the backbone you meant and"
            f" {check}"
        )


def check_out_file(out: str | Path, force: bool = False, src: Any = None) -> Path:
    """Refuse in one line an ``out`` that is a folder, the input ``src``, no regular file (device,
    FIFO, socket, dangling link), an existing file without ``force``, or an unwritable place."""
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
    """``torch.save`` to ``out`` atomically, re-checking ``out`` under its folder's ``lock`` (two
    writers never both claim one file); a failed write: one line, a previous file unchanged."""
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
    """Writes converted weights atomically, never over their source nor (unless ``force``) a file.

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
        src: Any source :func:`load_backbone` reads (our Lightning checkpoint: its online
            ``backbone.`` only).
        out: Output file; an existing one is an error unless ``force``.
        force: Replace ``out`` if it is an existing regular file (never the input).
        model_cfg: Also check against this detector ``model`` config (:func:`verify_backbone`).
        verify: Check the weights against mmdet's backbone; ``None``: if MMDetection imports,
            else warn (the file is written either way).
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
        verify = (reason := mmdet_import_error()) is None
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
