"""Our channel LayerNorm for NCHW maps in mmdet's registry, under a name no other project uses.

Configs name it ``LightlyMatrixLN2d``. ``LN2d`` (the name our configs used before, and the one
mmdet's ViTDet project registers for its own class) keeps working without a clash: it resolves
to ours only where nobody else registered it (see :func:`register_legacy_name`).
"""

from __future__ import annotations

from typing import Any

from mmcv.cnn import build_norm_layer
from mmdet.registry import MODELS
from mmengine.registry import MODELS as ROOT_MODELS
from timm.layers import LayerNorm2d as TimmLayerNorm2d
from torch import nn

#: Our registered name.
NAME = "LightlyMatrixLN2d"
#: The name configs written before used; also registered by mmdet's ``projects/ViTDet``.
LEGACY_NAME = "LN2d"


@MODELS.register_module(NAME)
class LayerNorm2d(TimmLayerNorm2d):
    """LayerNorm over the channels of an NCHW map (ViTDet's pyramid and head norm).

    timm's ``LayerNorm2d`` with ``eps=1e-5`` instead of timm's and Detectron2's ViTDet's
    ``1e-6``: 1e-5 is what mmcv's ``build_norm_layer`` gives every norm a config builds (the
    box and mask heads' here, and in mmdet's own ViTDet port), so pyramid and heads agree, and
    detectors fine-tuned before this class existed give the same outputs for the same weights.
    On unit-variance features the two values change outputs by about 5e-6 (relative); set
    ``norm_cfg=dict(type='LightlyMatrixLN2d', eps=1e-6)`` for Detectron2's value.

    Args:
        num_channels: Channels of the input map.
        eps: Added to the variance.
        affine: Learnable per-channel scale and shift.

    Examples:
        >>> import torch
        >>> norm = LayerNorm2d(8)
        >>> y = norm(torch.randn(2, 8, 4, 4) * 3 + 1)
        >>> bool(y.mean(1).abs().max() < 1e-5)
        True
    """

    def __init__(self, num_channels: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__(num_channels, eps=eps, affine=affine)


def register_legacy_name() -> bool:
    """Let ``type='LN2d'`` build our class, unless another module owns that name.

    mmengine raises on a second registration of a name in one registry, so ``LN2d`` is not put
    into mmdet's registry (where mmdet's ViTDet project registers its ``LN2d``, before or after
    us) but into mmengine's root registry, which mmdet's falls back to: in mmdet's scope another
    ``LN2d`` wins, and neither import fails. Skipped if the root registry already has one.

    Returns:
        Whether ``LN2d`` now names our class in the root registry.
    """
    if LEGACY_NAME in ROOT_MODELS.module_dict:
        return ROOT_MODELS.module_dict[LEGACY_NAME] is LayerNorm2d
    ROOT_MODELS.register_module(LEGACY_NAME, module=LayerNorm2d)
    return True


register_legacy_name()


def build_norm(norm_cfg: dict[str, Any], channels: int) -> nn.Module:
    """A norm of our backbone: both of our names give our class, whoever else owns ``LN2d``."""
    cfg = dict(norm_cfg)
    if cfg["type"] in (NAME, LEGACY_NAME):
        cfg["type"] = LayerNorm2d
    return build_norm_layer(cfg, channels)[1]


__all__ = ["LEGACY_NAME", "NAME", "LayerNorm2d", "build_norm", "register_legacy_name"]
