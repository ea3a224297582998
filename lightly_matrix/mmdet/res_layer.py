"""The R50-C4 RoI shared head with an extra BatchNorm after res5 (MoCo's detection recipe)."""

from __future__ import annotations

from typing import Any

from mmcv.cnn import build_norm_layer
from mmdet.models.backbones import ResNet
from mmdet.models.roi_heads.shared_heads import ResLayer
from mmdet.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class ResLayerExtraNorm(ResLayer):
    """mmdet's ``ResLayer`` shared head followed by one more normalisation layer.

    MoCo's C4 recipe adds a BN on res5's output; it is new (not pretrained).

    Args:
        depth: ResNet depth (18, 34, 50, 101, 152).
        norm_cfg: Normalisation of res5 and of the extra layer, e.g. ``dict(type='SyncBN')``.
        **kwargs: Passed on to mmdet's ``ResLayer`` (``stage``, ``stride``, ``style`` ...).
    """

    def __init__(self, depth: int, norm_cfg: dict[str, Any] | None = None, **kwargs: Any) -> None:
        norm_cfg = norm_cfg or dict(type="BN", requires_grad=True)
        super().__init__(depth, norm_cfg=norm_cfg, **kwargs)
        block, _ = ResNet.arch_settings[depth]
        out_channels = 64 * 2**self.stage * block.expansion
        self.norm_name, norm = build_norm_layer(norm_cfg, out_channels, postfix="_extra")
        self.add_module(self.norm_name, norm)

    def forward(self, x: Tensor) -> Tensor:
        """res5 (the stage after the backbone) and the extra norm."""
        return getattr(self, self.norm_name)(super().forward(x))

    def pretrained_keys(self) -> list[str]:
        """State-dict keys a pretrained backbone provides (res5's; the extra norm is new)."""
        return [k for k in self.state_dict() if not k.startswith(f"{self.norm_name}.")]
