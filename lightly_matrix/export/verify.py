"""Check that converted weights cover an mmdet model exactly.

mmengine loads ``init_cfg=dict(type='Pretrained', ...)`` with ``strict=False`` and only logs
mismatched keys, so a wrong prefix or layout would silently fine-tune a random backbone. These
checks build the very modules that will load the file and compare key sets and shapes first.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from lightly_matrix.errors import UserError, first_line
from lightly_matrix.export.convert import Backbone, listing

#: How to get MMDetection, for messages where it is missing.
MMDET_INSTALL_HINT = (
    'pip install "lightly-matrix[mmdet]" (mmcv 2.1.0 has no wheel for this torch and is compiled'
    ' from source; see the README, "Use it in your own project")'
)


class ExportError(UserError):
    """Converted weights do not fit the mmdet model they are meant for."""


def quiet_pkg_resources_warning() -> None:
    """Hide the ``pkg_resources`` deprecation warning of importing mmengine and mmcv."""
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)


def mmdet_import_error() -> str | None:
    """Why MMDetection (mmengine, mmcv, mmdet) cannot be imported, or ``None`` if it can."""
    try:
        import mmcv  # noqa: F401
        import mmdet  # noqa: F401
        import mmengine  # noqa: F401
    except Exception as err:  # ImportError, or mmdet's assertion on the mmcv version
        return first_line(err)
    return None


def require_mmdet(what: str) -> None:
    """Refuse (UserError) in one line saying how to install MMDetection, if it is missing."""
    reason = mmdet_import_error()
    if reason is not None:
        raise UserError(
            f"{what} needs MMDetection, which cannot be imported ({reason}); {MMDET_INSTALL_HINT}"
        )


def expected_keys(cfg: Mapping[str, Any]) -> dict[str, torch.Size]:
    """The parameters and buffers, with shapes, that a checkpoint must give the mmdet module
    ``cfg`` (built without ``init_cfg``); a module's ``pretrained_keys()`` leaves out its new
    layers (feature pyramid, extra norm, ViTDet's relative position tables)."""
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
        model_cfg: A detector ``model`` config to check against: the keys it loads through
            ``prefix='backbone.'``, its backbone's and, for C4 models, its RoI shared head's
            (res5 lives there). By default the backbone ``backbone.backbone_cfg`` describes.

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
            " that the config's backbone matches its architecture"
        )
