"""Map timm ViT weights onto our mmdet ViT backbone (``TimmViTSimplePyramid``) and read its
sizes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from lightly_matrix.errors import UserError
from lightly_matrix.export.backbone import Backbone

# Standard ViT widths -> timm size name (with the depth that name implies), for state dicts
# that do not say which timm model they came from.
_VIT_SIZES = {192: ("tiny", 12), 384: ("small", 12), 768: ("base", 12), 1024: ("large", 24)}
# Parts of a ViT checkpoint that a detector never uses: classifier, MAE-style mask token.
_VIT_DROPPED = re.compile(r"^(head\.|head_drop\.|fc_norm\.|mask_token$)")


def vit_backbone(sd: Mapping[str, torch.Tensor], name_hint: str | None) -> Backbone:
    """A timm VisionTransformer state dict, and the timm model name and sizes it fits."""
    sd = {k: v for k, v in sd.items() if not _VIT_DROPPED.match(k)}
    proj = sd["patch_embed.proj.weight"]
    embed_dim, in_chans, patch_size = int(proj.shape[0]), int(proj.shape[1]), int(proj.shape[2])
    depth = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k)))
    num_prefix = int("cls_token" in sd) + (
        int(sd["reg_token"].shape[1]) if "reg_token" in sd else 0
    )
    cfg: dict[str, Any] = {"type": "TimmViTSimplePyramid", "patch_size": patch_size}
    if "pos_embed" in sd:
        tokens = int(sd["pos_embed"].shape[1])
        # timm keeps prefix tokens in pos_embed unless no_embed_class; try both.
        for grid_tokens in (tokens - num_prefix, tokens):
            side = round(grid_tokens**0.5)
            if side * side == grid_tokens:
                cfg["img_size"] = side * patch_size
                break
    if in_chans != 3:
        cfg["in_chans"] = in_chans
    cfg["final_norm"] = "norm.weight" in sd
    if not (name_hint and name_hint.startswith("vit")):
        # The number of heads only splits qkv, it leaves no trace in the weights: never guess it.
        size = _VIT_SIZES.get(embed_dim)
        example = f"vit_{size[0]}_patch{patch_size}_224" if size and size[1] == depth else "vit_..."
        raise UserError(
            f"the ViT weights (width {embed_dim}, depth {depth}) do not record which timm model"
            " they are, and its number of heads cannot be read from weights; pass --arch with the"
            f" timm model name it was trained as, e.g. --arch {example}"
        )
    model_name = name_hint
    cfg["model_name"] = model_name
    # Our mmdet wrapper holds the timm model as `vit`.
    return Backbone({f"vit.{k}": v for k, v in sd.items()}, model_name, cfg)
