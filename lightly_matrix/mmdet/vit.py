"""A timm Vision Transformer with a simple feature pyramid, as an mmdet backbone, and ViTDet [0].

mmdet 3.3.0 packages no ViT detection backbone. The pyramid turns the last map into strides 4 to
64. ViTDet (window attention, relative position biases, layer-wise lr decay) runs on timm's
Segment-Anything blocks, whose parameter names equal ``VisionTransformer``'s.

- [0] Li, Mao, Girshick, He. "Exploring Plain Vision Transformer Backbones for Object Detection",
  ECCV 2022, https://arxiv.org/abs/2203.16527
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from typing import Any

import timm
from mmcv.cnn import build_norm_layer
from mmdet.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.model import BaseModule
from mmengine.optim import DefaultOptimWrapperConstructor
from timm.layers import LayerNorm2d as TimmLayerNorm2d
from timm.models.vision_transformer_sam import Block as WindowBlock
from torch import Tensor, nn
from torch.nn import functional as F

from lightly_matrix.utils.checks import check_number

#: The registry name of :class:`LayerNorm2d` (mmdet's ViTDet project takes ``LN2d``).
LN2D = "LightlyMatrixLN2d"


@MODELS.register_module(LN2D)
class LayerNorm2d(TimmLayerNorm2d):
    """timm's channel ``LayerNorm2d`` of NCHW maps at mmcv's ``eps=1e-5`` (Detectron2: 1e-6).

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


#: The tokens and position embedding: layer 0 with the patch embedding, and no weight decay.
_NO_DECAY_NAMES = ("pos_embed", "cls_token", "reg_token")
_BLOCK_INDEX = re.compile(r"(?:^|\.)blocks\.(\d+)\.")


def global_block_indexes(depth: int) -> tuple[int, ...]:
    """ViTDet's global-attention blocks: the last of each quarter (else the last block only).

    Examples:
        >>> global_block_indexes(12), global_block_indexes(24)
        ((2, 5, 8, 11), (5, 11, 17, 23))
    """
    if depth < 4 or depth % 4:
        return (depth - 1,) if depth > 0 else ()
    return tuple(depth // 4 * (q + 1) - 1 for q in range(4))


def _windowed_blocks(
    vit: Any,
    window_size: int,
    global_attn_indexes: Sequence[int] | None,
    use_rel_pos: bool,
    grid_size: int,
) -> nn.Sequential:
    """ViTDet blocks holding the weights of ``vit``'s, on ``(B, H, W, dim)`` token maps."""
    depth = len(vit.blocks)
    if window_size < 0:
        raise ValueError(f"window_size must be >= 0 (0: global attention), got {window_size}")
    indexes = (
        global_block_indexes(depth) if global_attn_indexes is None else tuple(global_attn_indexes)
    )
    if any(not 0 <= i < depth for i in indexes):
        raise ValueError(f"global_attn_indexes {indexes} must lie in 0..{depth - 1}")
    blocks = []
    for i, old in enumerate(vit.blocks):
        attn = old.attn
        norm_layer: Any = functools.partial(old.norm1.__class__, eps=old.norm1.eps)
        block = WindowBlock(
            dim=int(vit.embed_dim),
            num_heads=int(attn.num_heads),
            mlp_ratio=old.mlp.fc1.out_features / vit.embed_dim,
            qkv_bias=attn.qkv.bias is not None,
            qk_norm=not isinstance(attn.q_norm, nn.Identity),
            # Layer scale: any value; the copied gamma replaces it.
            init_values=1.0 if hasattr(old.ls1, "gamma") else None,
            drop_path=float(getattr(old.drop_path1, "drop_prob", 0.0)),
            act_layer=type(old.mlp.act),
            norm_layer=norm_layer,
            use_rel_pos=use_rel_pos,
            window_size=0 if i in indexes else window_size,
            input_size=(grid_size, grid_size),
        )
        result = block.load_state_dict(old.state_dict(), strict=False)
        new = [k for k in result.missing_keys if not k.startswith("attn.rel_pos_")]
        if new or result.unexpected_keys:
            raise ValueError(
                f"block {i} of {type(vit).__name__} is not a plain ViT block (unmatched weights:"
                f" {sorted(new + list(result.unexpected_keys))[:4]}); ViTDet needs a standard ViT"
            )
        blocks.append(block)
    return nn.Sequential(*blocks)


def token_map(vit: Any, x: Tensor) -> Tensor:
    """Patch tokens plus interpolated position embedding, no prefix tokens: ``(B, H, W, dim)``."""
    x = vit.patch_embed(x)  # NHWC (timm with dynamic_img_size), padded to whole patches
    tokens = vit._pos_embed(x)[:, vit.num_prefix_tokens :]  # resized to this grid by timm
    return vit.norm_pre(tokens.reshape(x.shape))


@MODELS.register_module()
class TimmViTSimplePyramid(BaseModule):
    """timm ViT + simple feature pyramid, returning five maps (strides 4 to 64).

    Pretrained weights load under ``vit.`` (timm's names); the pyramid is new. ViTDet mode (window
    attention or ``use_rel_pos``) loads the same file; class token and final norm stay frozen.

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

    Raises:
        ValueError: A patch size that cannot reach the strides, a negative window size, a
            global block index out of range, or ViT blocks of another design than timm's.
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
        norm_cfg = dict(norm_cfg or dict(type=LN2D))
        if norm_cfg["type"] == LN2D:  # resolved here: the default scope may not be mmdet's
            norm_cfg["type"] = LayerNorm2d
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
        if not final_norm:
            self.vit.norm = nn.Identity()  # forward_intermediates(norm=True) then skips it
        self.vitdet = window_size != 0 or use_rel_pos
        if self.vitdet:
            grid_size = math.ceil(det_img_size / patch_size)
            self.vit.blocks = _windowed_blocks(
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
                ops += [build_norm_layer(norm_cfg, channels)[1], nn.GELU()] if i else []
                ops.append(nn.ConvTranspose2d(channels, channels // 2, 2, stride=2))
                channels //= 2
            ops += [
                nn.Conv2d(channels, out_channels, 1, bias=False),
                build_norm_layer(norm_cfg, out_channels)[1],
                nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                build_norm_layer(norm_cfg, out_channels)[1],
            ]
            self.pyramid.append(nn.Sequential(*ops))

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Feature maps at strides 4, 8, 16, 32 and 64 of the padded input."""
        if self.vitdet:
            vit: Any = self.vit
            feat = vit.blocks(token_map(vit, x)).permute(0, 3, 1, 2)
        else:
            (feat,) = self.vit.forward_intermediates(  # type: ignore[operator]
                x, indices=1, norm=True, output_fmt="NCHW", intermediates_only=True
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


def block_depth(name: str, num_layers: int) -> int:
    """ViTDet's layer id of a detector parameter: 0 for the patch and position embeddings,
    ``i + 1`` for backbone block ``i``, ``num_layers + 1`` for all else (pyramid, heads)."""
    name = name.removeprefix("module.")
    if name.startswith("backbone."):
        if (match := _BLOCK_INDEX.search(name)) is not None:
            return int(match.group(1)) + 1
        if any(part in name for part in ("patch_embed", *_NO_DECAY_NAMES)):
            return 0
    return num_layers + 1


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ViTLayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise lr decay for a ViT detector backbone, as ViTDet fine-tunes [0].

    Layer id ``l`` (``block_depth``) trains at ``lr * decay_rate ** (num_layers + 1 - l)``; 1-D
    parameters and tokens get no weight decay (mmdet's constructor knows only ConvNeXt's names).
    ``paramwise_cfg``: ``decay_rate`` (ViTDet: 0.7 ViT-B, 0.8 ViT-L/H), ``num_layers`` (counted).

    Examples:
        >>> optim_wrapper = dict(  # in an mmdet config
        ...     constructor="ViTLayerDecayOptimizerConstructor",
        ...     optimizer=dict(type="AdamW", lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
        ...     paramwise_cfg=dict(decay_rate=0.7),
        ... )
    """

    def add_params(self, params: list[dict[str, Any]], module: nn.Module, **kwargs: Any) -> None:
        cfg = dict(self.paramwise_cfg)
        decay_rate = check_number("decay_rate", cfg.pop("decay_rate", 1.0), 0.0, 1.0, low_open=True)
        num_layers = cfg.pop("num_layers", None)
        if cfg:
            raise ValueError(
                f"ViTLayerDecayOptimizerConstructor: unsupported paramwise_cfg keys {sorted(cfg)};"
                " it takes decay_rate and num_layers"
            )
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if num_layers is None:  # the deepest backbone block (block_depth gives others 0 here)
            num_layers = max((block_depth(name, -1) for name, _ in named), default=0)
            if not num_layers:
                raise ValueError(
                    "no backbone.*blocks.<i> parameters found; ViTLayerDecayOptimizerConstructor is"
                    " for ViT backbones (set paramwise_cfg.num_layers or use another constructor)"
                )
        groups: dict[tuple[int, bool], dict[str, Any]] = {}
        for name, param in named:
            layer = block_depth(name, int(num_layers))
            no_decay = param.ndim <= 1 or name.rsplit(".", 1)[-1] in _NO_DECAY_NAMES
            lr = self.base_lr * decay_rate ** (num_layers + 1 - layer)
            group = groups.setdefault((layer, no_decay), {"params": [], "lr": lr})
            if no_decay:
                group["weight_decay"] = 0.0
            group["params"].append(param)
        params.extend(groups[key] for key in sorted(groups))
