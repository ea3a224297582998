"""A timm Vision Transformer with a simple feature pyramid, as an mmdet backbone (ViTDet style).

mmdet 3.3.0 has no ViT detection backbone: a simple feature pyramid (Li et al., 2022) turns the
last map into the strides 4 to 64 of mmdet's FPN heads, so no neck is needed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import timm
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.nn import functional as F

from lightly_matrix.mmdet.norm import NAME as LN2D
from lightly_matrix.mmdet.norm import build_norm
from lightly_matrix.mmdet.vitdet import token_map, windowed_blocks


@MODELS.register_module()
class TimmViTSimplePyramid(BaseModule):
    """timm ViT + simple feature pyramid, returning five maps (strides 4 to 64).

    Pretrained weights load under ``vit.`` (timm's key names); the pyramid is new.

    ViTDet mode (``window_size > 0`` or ``use_rel_pos``): ViTDet's blocks; the same file loads,
    the class token and final norm stay unused (frozen).

    Args:
        model_name: timm model name, e.g. ``'vit_base_patch16_224'``.
        img_size: Pretraining image size (sets the stored position-embedding grid).
        patch_size: Patch size; must make the strides 4-32 reachable by factors of 2.
        in_chans: Input channels.
        final_norm: The ViT has a final LayerNorm (MAE-style encoders do).
        out_channels: Channels of every pyramid level.
        norm_cfg: Norm of the pyramid (default ``dict(type='LightlyMatrixLN2d')``) or any mmcv norm.
        drop_path_rate: Stochastic depth of the ViT blocks.
        window_size: ViTDet window attention, tokens per window side (ViT-B: 14); 0: global.
        global_attn_indexes: Blocks keeping global attention; ``None``: the last of each quarter.
        use_rel_pos: ViTDet's relative position biases (new, zero-initialised parameters).
        det_img_size: Detector input side the relative position tables are sized for (1024).
        init_cfg: mmengine initialisation config.
    """

    strides: tuple[int, ...] = (4, 8, 16, 32)

    def __init__(
        self,
        model_name: str = "vit_base_patch16_224",
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        final_norm: bool = True,
        out_channels: int = 256,
        norm_cfg: dict[str, Any] | None = None,
        drop_path_rate: float = 0.0,
        window_size: int = 0,
        global_attn_indexes: Sequence[int] | None = None,
        use_rel_pos: bool = False,
        det_img_size: int = 1024,
        init_cfg: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(init_cfg)
        norm_cfg = norm_cfg or dict(type=LN2D)
        # dynamic_img_size: position embeddings are resized to each (padded) detection input.
        self.vit = timm.create_model(
            model_name,
            pretrained=False,
            num_classes=0,
            img_size=img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            drop_path_rate=drop_path_rate,
            dynamic_img_size=True,
            dynamic_img_pad=True,
        )
        # timm initialised it; mmengine's init_weights would run after init_cfg loaded weights.
        object.__setattr__(self.vit, "is_init", True)
        self.final_norm = final_norm
        if not final_norm:
            self.vit.norm = nn.Identity()
        self.vitdet = window_size != 0 or use_rel_pos
        if self.vitdet:
            grid_size = math.ceil(det_img_size / patch_size)
            self.vit.blocks = windowed_blocks(
                self.vit, window_size, global_attn_indexes, use_rel_pos, grid_size
            )
            # Loaded with the encoder, unused by ViTDet: frozen, so DDP and the optimiser skip them.
            for name in ("cls_token", "reg_token"):
                if isinstance(getattr(self.vit, name, None), nn.Parameter):
                    getattr(self.vit, name).requires_grad_(False)
            self.vit.norm.requires_grad_(False)
        self.pyramid = nn.ModuleList()
        for stride in self.strides:
            steps = math.log2(patch_size / stride)  # > 0: upsample, < 0: downsample
            if steps != int(steps):
                raise ValueError(f"patch size {patch_size} cannot reach stride {stride}")
            ops: list[nn.Module] = [nn.MaxPool2d(2) for _ in range(int(-steps))]
            channels = int(self.vit.embed_dim)  # type: ignore[arg-type]
            for i in range(int(steps)):
                ops += [build_norm(norm_cfg, channels), nn.GELU()] if i else []
                ops.append(nn.ConvTranspose2d(channels, channels // 2, 2, stride=2))
                channels //= 2
            ops += [
                nn.Conv2d(channels, out_channels, 1, bias=False),
                build_norm(norm_cfg, out_channels),
                nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                build_norm(norm_cfg, out_channels),
            ]
            self.pyramid.append(nn.Sequential(*ops))

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Feature maps at strides 4, 8, 16, 32 and 64 of the padded input."""
        if self.vitdet:
            vit: Any = self.vit
            feat = vit.blocks(token_map(vit, x)).permute(0, 3, 1, 2)
        else:
            (feat,) = self.vit.forward_intermediates(  # type: ignore[operator]
                x, indices=1, norm=self.final_norm, output_fmt="NCHW", intermediates_only=True
            )
        outs = [level(feat) for level in self.pyramid]
        # Stride 64 for the RPN's largest anchors, as ViTDet's LastLevelMaxPool.
        outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return tuple(outs)

    def pretrained_keys(self) -> list[str]:
        """State-dict keys a pretrained checkpoint must provide: the ViT's but ``new_keys``."""
        new = set(self.new_keys())
        return [k for k in self.state_dict() if k.startswith("vit.") and k not in new]

    def new_keys(self) -> list[str]:
        """The ViT's parameters no pretrained ViT has: ViTDet's relative position tables."""
        return [k for k in self.state_dict() if re.search(r"\.attn\.rel_pos_[hw]$", k)]
