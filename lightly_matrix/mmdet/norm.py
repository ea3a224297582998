"""Our channel LayerNorm for NCHW maps, registered in mmdet's ``MODELS`` as ``LightlyMatrixLN2d``.

The name is our own: mmdet's ViTDet project registers ``LN2d`` for its class, and mmengine
refuses a second registration of one name, so both projects import side by side.
"""

from __future__ import annotations

from typing import Any

from mmcv.cnn import build_norm_layer
from mmdet.registry import MODELS
from timm.layers import LayerNorm2d as TimmLayerNorm2d
from torch import nn

NAME = "LightlyMatrixLN2d"


@MODELS.register_module(NAME)
class LayerNorm2d(TimmLayerNorm2d):
    """LayerNorm over the channels of an NCHW map (ViTDet's pyramid and head norm).

    timm's ``LayerNorm2d`` at mmcv's ``eps=1e-5``, as the heads' norms (Detectron2: 1e-6).

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


def build_norm(norm_cfg: dict[str, Any], channels: int) -> nn.Module:
    """mmcv's ``build_norm_layer``, our name resolved here (the default scope may not be mmdet)."""
    cfg = dict(norm_cfg)
    if cfg["type"] == NAME:
        cfg["type"] = LayerNorm2d
    return build_norm_layer(cfg, channels)[1]
