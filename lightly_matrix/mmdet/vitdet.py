"""ViTDet's changes to a plain ViT for detection (Li et al., 2022 [0]), on timm's building blocks.

Window attention except in the last block of each quarter, zero-initialised relative position
biases and layer-wise lr decay, on timm's Segment-Anything blocks, whose parameter names equal
``VisionTransformer``'s: MAE weights load unchanged, only ``rel_pos_*`` is new.

[0] Li, Mao, Girshick, He. "Exploring Plain Vision Transformer Backbones for Object Detection",
ECCV 2022, arXiv 2203.16527.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from typing import Any

from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.optim import DefaultOptimWrapperConstructor
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer_sam import Block as WindowBlock
from torch import Tensor, nn

#: Parameter names that get no weight decay beyond the 1-D ones (biases, norms).
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


def windowed_blocks(
    vit: Any,
    window_size: int,
    global_attn_indexes: Sequence[int] | None,
    use_rel_pos: bool,
    grid_size: int,
) -> nn.Sequential:
    """ViTDet blocks carrying the weights of a timm ``VisionTransformer``'s blocks.

    Args:
        vit: The timm ViT; its blocks' design and weights are kept.
        window_size: Tokens per window side; ``0``: global attention everywhere.
        global_attn_indexes: Blocks with global attention (``None``: :func:`global_block_indexes`).
        use_rel_pos: Add (zero-initialised) decomposed relative position biases to attention.
        grid_size: Token grid side of the detector input (ViTDet: 1024 / 16 = 64).

    Returns:
        Blocks taking and returning ``(batch, height, width, dim)`` token maps.

    Raises:
        ValueError: Bad window size or global block index, or blocks of another design.
    """
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
        norm: Any = old.norm1
        norm_layer: Any = functools.partial(norm.__class__, eps=norm.eps)
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
    height, width = int(x.shape[1]), int(x.shape[2])
    prefix = 0 if vit.no_embed_class else int(vit.num_prefix_tokens)
    pos = resample_abs_pos_embed(
        vit.pos_embed,
        new_size=[height, width],
        old_size=list(vit.patch_embed.grid_size),
        num_prefix_tokens=prefix,
    )[:, prefix:]
    x = x + pos.reshape(1, height, width, -1)
    return vit.norm_pre(vit.pos_drop(x))


def block_depth(name: str, num_layers: int) -> int:
    """ViTDet's layer id of a detector parameter: 0 for the patch and position embeddings,
    ``i + 1`` for backbone block ``i``, ``num_layers + 1`` for all else (pyramid, heads)."""
    name = name.removeprefix("module.")
    if not name.startswith("backbone."):
        return num_layers + 1
    if (match := _BLOCK_INDEX.search(name)) is not None:
        return int(match.group(1)) + 1
    if any(part in name for part in ("patch_embed", "pos_embed", "cls_token", "reg_token")):
        return 0
    return num_layers + 1


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ViTLayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise lr decay for a ViT detector backbone, as ViTDet fine-tunes (paper [0]).

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
        decay_rate = float(cfg.pop("decay_rate", 1.0))
        num_layers = cfg.pop("num_layers", None)
        if cfg:
            raise ValueError(
                f"ViTLayerDecayOptimizerConstructor: unsupported paramwise_cfg keys {sorted(cfg)};"
                " it takes decay_rate and num_layers"
            )
        if not 0.0 < decay_rate <= 1.0 or not math.isfinite(decay_rate):
            raise ValueError(f"decay_rate must be in (0, 1], got {decay_rate}")
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if num_layers is None:
            backbone = [n for n, _ in named if n.removeprefix("module.").startswith("backbone.")]
            blocks = [int(m.group(1)) + 1 for n in backbone if (m := _BLOCK_INDEX.search(n))]
            num_layers = max(blocks, default=None)
            if num_layers is None:
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
