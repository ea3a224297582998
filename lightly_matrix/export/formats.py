"""Tell what a loaded file is (our export, a Lightning checkpoint, a state dict) and which
backbone layout its keys have, with the key helpers the renamers share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch

from lightly_matrix.export.backbone import EXPORT_FORMAT

# Wrapper prefixes that can sit in front of a whole state dict: DDP, torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")

Source = Literal["export", "lightning", "other"]
Layout = Literal["lightly_resnet", "resnet", "vit"]


def is_state_dict(obj: Any) -> bool:
    """A non-empty mapping of names to tensors."""
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def strip_wrappers(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove a DDP/compile prefix that every key carries."""
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if sd and all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix) :]: v for k, v in sd.items()}
                changed = True
    return sd


def select_prefix(sd: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keys under exactly ``prefix`` (e.g. ``backbone.`` but not ``teacher_backbone.``)."""
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def top_level(keys: Any, limit: int = 12) -> str:
    """The first names of dotted keys, for messages: ``backbone, head, ... (3 more)``."""
    names = sorted({k.split(".", 1)[0] for k in keys})
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def source_kind(obj: Mapping[str, Any]) -> Source:
    """``export`` (a file :func:`~lightly_matrix.export.export_backbone` wrote), ``lightning``
    (a Lightning checkpoint) or ``other`` (a state dict, possibly under ``state_dict``/``model``).
    """
    meta = obj.get("meta")
    if isinstance(meta, Mapping) and meta.get("format") == EXPORT_FORMAT:
        return "export"
    if isinstance(obj.get("state_dict"), Mapping) and (
        "hyper_parameters" in obj or "pytorch-lightning_version" in obj
    ):
        return "lightning"
    return "other"


def backbone_layout(sd: Mapping[str, torch.Tensor]) -> Layout | None:
    """Which backbone the keys (wrappers stripped) belong to, ``None`` if none we know.

    ``lightly_resnet``: Lightly's ``nn.Sequential`` of a torchvision ResNet's children (``0.``,
    ``1.``, ``4.``-``7.``); ``resnet``: torchvision/mmdet names (``conv1.``, ``layer1.``);
    ``vit``: timm ViT names (``patch_embed.``, ``blocks.``), possibly under ``vit.``.
    """
    if sd and all(k[0].isdigit() for k in sd):
        return "lightly_resnet"
    if "conv1.weight" in sd and any(k.startswith("layer1.") for k in sd):
        return "resnet"
    vit_sd = select_prefix(sd, "vit.") or sd
    if "patch_embed.proj.weight" in vit_sd and any(k.startswith("blocks.") for k in vit_sd):
        return "vit"
    return None
