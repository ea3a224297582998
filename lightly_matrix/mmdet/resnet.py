"""mmdet ResNet pieces of MoCo's detection recipe: an init that loads an export or gives ResNet's
default (``Pretrained`` cannot hold ``checkpoint=None``; ``init_cfg=None`` takes no
``--cfg-options`` override), and the R50-C4 RoI shared head with a BatchNorm after res5."""

from __future__ import annotations

from typing import Any

from mmcv.cnn import build_norm_layer
from mmdet.models.backbones import ResNet
from mmdet.models.backbones.resnet import BasicBlock, Bottleneck
from mmdet.models.roi_heads.shared_heads import ResLayer
from mmdet.registry import MODELS
from mmengine.model import PretrainedInit, constant_init, initialize
from mmengine.registry import WEIGHT_INITIALIZERS
from torch import Tensor, nn

#: What mmdet's ResNet and ResLayer apply when built without ``init_cfg``.
_RESNET_DEFAULT_INIT = [
    dict(type="Kaiming", layer="Conv2d"),
    dict(type="Constant", val=1, layer=["_BatchNorm", "GroupNorm"]),
]


@WEIGHT_INITIALIZERS.register_module()
class PretrainedOrDefault(PretrainedInit):
    """mmengine's ``Pretrained`` when ``checkpoint`` is set, else the ``init_cfg=None`` init of
    mmdet's ``ResNet`` and RoI ``ResLayer`` (other modules keep their constructed weights).

    Args:
        checkpoint: Exported file (see :func:`lightly_matrix.export.export_backbone`) or any
            checkpoint mmengine reads; ``None``: no weights are loaded.
        prefix: Part of the checkpoint to load, e.g. ``'backbone.'``.
        map_location: Where tensors are loaded.

    Examples:
        >>> from mmdet.models.backbones import ResNet
        >>> from mmengine.model import initialize
        >>> import lightly_matrix.mmdet
        >>> resnet = ResNet(18)
        >>> initialize(resnet, dict(type="PretrainedOrDefault", checkpoint=None))
        >>> float(resnet.layer1[0].norm2.weight.abs().sum())  # zero_init_residual, as by default
        0.0
    """

    def __call__(self, module: nn.Module) -> None:
        """Load ``checkpoint`` into ``module``, or give it its default random initialisation."""
        if self.checkpoint is not None:
            super().__call__(module)
        elif isinstance(module, ResNet | ResLayer):
            initialize(module, _RESNET_DEFAULT_INIT)
            if getattr(module, "zero_init_residual", False):
                for block in module.modules():
                    if isinstance(block, Bottleneck):
                        constant_init(block.norm3, 0)
                    elif isinstance(block, BasicBlock):
                        constant_init(block.norm2, 0)

    def _get_init_info(self) -> str:
        if self.checkpoint is None:
            return f"{self.__class__.__name__}: default initialisation (no checkpoint)"
        return super()._get_init_info()


@MODELS.register_module()
class ResLayerExtraNorm(ResLayer):
    """mmdet's ``ResLayer`` shared head and a new norm layer after res5, as MoCo's C4 recipe.

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
