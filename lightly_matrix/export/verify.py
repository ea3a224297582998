"""Check that converted weights cover an mmdet model exactly.

mmengine loads ``init_cfg=dict(type='Pretrained', ...)`` with ``strict=False`` and only logs
mismatched keys, so a wrong prefix or layout would silently fine-tune a random backbone. These
checks build the very modules that will load the file and compare key sets and shapes first.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from lightly_matrix.errors import UserError, first_line

#: How to get MMDetection, for messages where it is missing.
MMDET_INSTALL_HINT = (
    'pip install "lightly-matrix[mmdet]" (mmcv 2.1.0 has no wheel for this torch and is compiled'
    ' from source; see the README, "Use it in your own project")'
)


def quiet_pkg_resources_warning() -> None:
    """Hide the deprecation warning mmengine and mmcv cause by importing ``pkg_resources``.

    The project pins setuptools < 81 for them; for the command line only, so that its output
    (and one-line errors) are not buried under it.
    """
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)


class ExportError(UserError):
    """Converted weights do not fit the mmdet model they are meant for."""


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
    """Fail with one line saying how to install MMDetection if it is missing.

    Args:
        what: What needs it, e.g. ``"transfer"``.

    Raises:
        UserError: mmengine, mmcv or mmdet cannot be imported.
    """
    reason = mmdet_import_error()
    if reason is not None:
        raise UserError(
            f"{what} needs MMDetection, which cannot be imported ({reason}); {MMDET_INSTALL_HINT}"
        )


def build_mmdet_module(cfg: Mapping[str, Any]) -> nn.Module:
    """Build one module from mmdet's ``MODELS`` registry (our modules registered too).

    Args:
        cfg: Module config with ``type``; its ``init_cfg`` is ignored (nothing is loaded).

    Returns:
        The module with freshly initialised weights.
    """
    require_mmdet("checking weights against mmdet's modules")
    from mmdet.registry import MODELS

    import lightly_matrix.mmdet  # noqa: F401 - registers our backbone and shared head

    module_cfg = copy.deepcopy(dict(cfg))
    module_cfg.pop("init_cfg", None)
    module_cfg.pop("pretrained", None)
    return MODELS.build(module_cfg)


def expected_keys(module: nn.Module, prefix: str = "") -> dict[str, torch.Size]:
    """Parameters and buffers a pretrained checkpoint must provide, with their shapes.

    Modules with a ``pretrained_keys()`` method (our ViT wrapper, the extra-norm shared head)
    name their own subset; new layers such as a feature pyramid, the extra norm or ViTDet's
    relative position tables (zero-initialised; no pretrained ViT has them) are not expected.
    """
    sd = module.state_dict()
    own = getattr(module, "pretrained_keys", None)
    keys: Iterable[str] = own() if callable(own) else sd
    return {prefix + k: sd[k].shape for k in keys}


def _listing(keys: Iterable[str], limit: int = 8) -> str:
    keys = sorted(keys)
    more = f" ... ({len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def check_coverage(
    state_dict: Mapping[str, torch.Tensor],
    targets: Mapping[str, torch.Size],
    what: str = "the mmdet backbone",
) -> None:
    """Fail unless ``state_dict`` has exactly the ``targets`` keys with the same shapes.

    Args:
        state_dict: Converted weights (without the ``backbone.`` prefix).
        targets: Expected keys and shapes (see :func:`expected_keys`).
        what: Names the model in the error message.

    Raises:
        ExportError: Listing missing keys, unexpected keys and shape mismatches.
    """
    missing = set(targets) - set(state_dict)
    unexpected = set(state_dict) - set(targets)
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(targets[k])}"
        for k in sorted(set(targets) & set(state_dict))
        if state_dict[k].shape != targets[k]
    ]
    if not (missing or unexpected or mismatched):
        return
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}")
    if mismatched:
        more = f" ... ({len(mismatched) - 8} more)" if len(mismatched) > 8 else ""
        problems.append(f"{len(mismatched)} shape mismatches: {', '.join(mismatched[:8])}{more}")
    raise ExportError(
        f"the weights do not fit {what} ({len(targets)} tensors expected,"
        f" {len(state_dict)} given): "
        + "; ".join(problems)
        + ". Check that the checkpoint holds the backbone you meant and that the config's backbone"
        " matches its architecture"
    )


def model_expected_keys(model_cfg: Mapping[str, Any]) -> dict[str, torch.Size]:
    """Keys a detector config loads from an exported file through ``prefix='backbone.'``.

    That is the backbone's and, for C4 models, the RoI shared head's (res5 lives there).

    Args:
        model_cfg: The detector's ``model`` config.

    Returns:
        Expected keys (without ``backbone.``) and shapes; a shared head's keys that the
        backbone also has must agree in shape.
    """
    keys = expected_keys(build_mmdet_module(model_cfg["backbone"]))
    shared = (model_cfg.get("roi_head") or {}).get("shared_head")
    if shared is not None:
        for key, shape in expected_keys(build_mmdet_module(shared)).items():
            if keys.setdefault(key, shape) != shape:
                raise ExportError(f"backbone and shared head disagree on {key}")
    return keys
