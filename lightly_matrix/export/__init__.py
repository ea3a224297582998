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
from pathlib import Path
from typing import Any

from torch import nn

from lightly_matrix import __version__
from lightly_matrix.errors import UserError
from lightly_matrix.export.backbone import (
    EXPORT_FORMAT,
    EXPORT_FORMAT_VERSION,
    Backbone,
    check_finite,
)
from lightly_matrix.export.convert import convert_state_dict, load_backbone
from lightly_matrix.export.safe_load import TRUST_PICKLE_RISK, read_checkpoint, sha256_of
from lightly_matrix.export.verify import (
    MMDET_INSTALL_HINT,
    ExportError,
    build_mmdet_module,
    check_coverage,
    expected_keys,
    mmdet_import_error,
    model_expected_keys,
    require_mmdet,
)
from lightly_matrix.utils.io import atomic_torch_save

__all__ = [
    "EXPORT_FORMAT",
    "TRUST_PICKLE_RISK",
    "Backbone",
    "ExportError",
    "build_mmdet_module",
    "check_coverage",
    "check_finite",
    "check_out_file",
    "convert_state_dict",
    "expected_keys",
    "export_backbone",
    "load_backbone",
    "mmdet_import_error",
    "model_expected_keys",
    "read_checkpoint",
    "require_mmdet",
    "save_backbone",
    "sha256_of",
    "verify_backbone",
]


def verify_backbone(backbone: Backbone, model_cfg: Mapping[str, Any] | None = None) -> None:
    """Check that the converted weights cover the mmdet module(s) they are meant for.

    Args:
        backbone: Converted weights.
        model_cfg: A detector ``model`` config to check against (its backbone and, for C4, its
            shared head); by default the full backbone described by ``backbone.backbone_cfg``.

    Raises:
        ExportError: Missing or unexpected keys, or shape mismatches (all listed).
    """
    if model_cfg is None:
        targets = expected_keys(build_mmdet_module(backbone.backbone_cfg))
        what = f"mmdet's {backbone.backbone_cfg['type']} ({backbone.architecture})"
    else:
        targets = model_expected_keys(model_cfg)
        what = f"the config's backbone ({model_cfg['backbone'].get('type')})"
    check_coverage(backbone.state_dict, targets, what)


def check_out_file(out: str | Path, force: bool = False, src: Any = None) -> Path:
    """Refuse an ``out`` that cannot be written, or whose writing would lose a file.

    Args:
        out: Output file.
        force: Replace ``out`` if it exists (never the input itself).
        src: The input, when it is a path: writing over it is refused, ``force`` or not.

    Raises:
        UserError: ``out`` is a folder, the input, an existing file without ``force``, or under a
            path that is a file.
    """
    out = Path(out)
    if out.is_dir():
        raise UserError(
            f"--out {out} is a folder; give the file to write, e.g. {out / 'backbone.pth'}"
        )
    if isinstance(src, str | Path) and out.exists() and os.path.samefile(src, out):
        raise UserError(
            f"--out {out} is the input checkpoint; writing the export over it would lose the"
            " original (--force never replaces the input): choose another --out"
        )
    if out.exists() and not force:
        raise UserError(
            f"{out} already exists; not overwriting it (choose another --out or pass --force)"
        )
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"--out {out}: {parent} is a file, not a folder; choose another --out")
    return out


def save_backbone(backbone: Backbone, out: str | Path, force: bool = False) -> Path:
    """Write converted weights in the export format (atomically; never over an existing file).

    Args:
        backbone: Converted (and verified) weights.
        out: Output file.
        force: Replace ``out`` if it exists.

    Returns:
        The written path.

    Raises:
        UserError: ``out`` exists and ``force`` is false, or a weight is NaN or infinite.
    """
    out = check_out_file(out, force)
    meta = {
        **backbone.meta,
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "architecture": backbone.architecture,
        "backbone_cfg": dict(backbone.backbone_cfg),
        "num_tensors": len(backbone.state_dict),
        "lightly_matrix_version": __version__,
    }
    payload = {
        # Own, contiguous storage per tensor: a view would drag its whole source storage along.
        "state_dict": {
            f"backbone.{k}": v.detach().clone().contiguous() for k, v in backbone.state_dict.items()
        },
        "meta": meta,
    }
    check_finite(backbone.state_dict)
    return save_payload(payload, out)


def save_payload(payload: Any, out: Path) -> Path:
    """``torch.save`` to ``out`` atomically (:func:`lightly_matrix.utils.io.atomic_write`).

    Raises:
        UserError: ``out``'s folder cannot be created or written (read-only, no permission, full).
    """
    try:
        return atomic_torch_save(payload, out)
    except OSError as err:
        raise UserError(
            f"cannot write {out}: {err.strerror or err}; choose another --out"
        ) from None


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
        src: Our Lightning checkpoint (any method; its online ``backbone.`` only), a Lightly
            ``nn.Sequential`` ResNet, a torchvision ResNet, a timm ViT or lightly's
            ``MaskedVisionTransformerTIMM`` (file, module or state dict), or a file exported before.
        out: Output file; an existing one is an error unless ``force``.
        force: Overwrite ``out``.
        model_cfg: Also check against this detector ``model`` config (see :func:`verify_backbone`).
        verify: Check the weights against mmdet's backbone; ``None`` (default): when MMDetection
            is installed, else skipped with a warning (the file is written either way).
        trust_pickle: Accept a file holding a whole pickled ``nn.Module``; loading it runs code
            from the file, so only for files you made or trust.
        arch: The architecture, for weights that do not record it (a plain timm ViT state dict:
            its number of heads cannot be read from the weights), see :func:`load_backbone`.

    Returns:
        The converted :class:`Backbone` (``meta`` as written).

    Raises:
        UserError: Unreadable input, unknown layout, non-finite weights, weights that do not
            cover the mmdet backbone (:class:`ExportError`), an existing ``out`` or the input
            itself as ``out``.
    """
    out = check_out_file(out, force, src)
    backbone = load_backbone(src, trust_pickle=trust_pickle, arch=arch)
    if verify is None:
        reason = mmdet_import_error()
        verify = reason is None
        if not verify:
            warnings.warn(
                f"MMDetection cannot be imported ({reason}): {out} is written without checking"
                f" it against mmdet's backbone; {MMDET_INSTALL_HINT}",
                stacklevel=2,
            )
    if verify:
        verify_backbone(backbone)
    if model_cfg is not None:
        verify_backbone(backbone, model_cfg)
    save_backbone(backbone, out, force=force)
    return backbone
