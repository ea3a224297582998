"""Load a pretrained backbone from any supported source and convert it to mmdet's key layout.

The steps live in modules of their own: :mod:`.safe_load` reads the file, :mod:`.formats` tells
what it holds, :mod:`.lightning_meta` takes our Lightning checkpoints apart, :mod:`.resnet_keys`
and :mod:`.vit_keys` rename the weights. Only torch is needed here; checking the result against
an mmdet model lives in :mod:`lightly_matrix.export.verify`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightly_matrix.errors import UserError
from lightly_matrix.export.backbone import Backbone, check_finite
from lightly_matrix.export.formats import (
    backbone_layout,
    is_state_dict,
    select_prefix,
    source_kind,
    strip_wrappers,
    top_level,
)
from lightly_matrix.export.lightning_meta import lightning_backbone
from lightly_matrix.export.resnet_keys import from_lightly_sequential, resnet_backbone
from lightly_matrix.export.safe_load import read_checkpoint, sha256_of
from lightly_matrix.export.vit_keys import vit_backbone


def convert_state_dict(
    sd: Mapping[str, torch.Tensor], name_hint: str | None = None, allow_cifar_stem: bool = False
) -> Backbone:
    """Rename one backbone's state dict to mmdet's layout.

    Recognised layouts: Lightly ``nn.Sequential`` ResNets (``0.``, ``1.``, ``4.``-``7.``),
    torchvision/mmdet ResNets (``conv1.``, ``layer1.`` ...; ``fc.`` dropped), lightly's
    ``MaskedVisionTransformerTIMM`` (``vit.`` + timm keys) and plain timm ViTs; a DDP
    ``module.`` or ``torch.compile`` prefix is removed first.

    Args:
        sd: The backbone's tensors (no ``backbone.`` prefix).
        name_hint: Architecture name from the checkpoint, when it has one (a timm ViT name is
            needed to know its number of heads; ResNets are recognised from their weights).
        allow_cifar_stem: Accept a ResNet with a 3x3 conv1 (torchvision export; mmdet cannot
            load one).

    Returns:
        The converted :class:`Backbone` (``meta`` empty).

    Raises:
        UserError: The layout is not one of the above.
    """
    sd = strip_wrappers(dict(sd))
    layout = backbone_layout(sd)
    if layout == "lightly_resnet":
        return resnet_backbone(from_lightly_sequential(sd), name_hint, allow_cifar_stem)
    if layout == "resnet":
        return resnet_backbone(sd, name_hint, allow_cifar_stem)
    if layout == "vit":
        return vit_backbone(select_prefix(sd, "vit.") or sd, name_hint)
    raise UserError(
        "no ResNet or ViT backbone found (top-level keys: "
        f"{top_level(sd)}); expected a Lightly nn.Sequential ResNet, a torchvision ResNet or a"
        " timm ViT"
    )


def load_backbone(
    src: str | Path | nn.Module | Mapping[str, Any],
    *,
    trust_pickle: bool = False,
    arch: str | None = None,
    allow_cifar_stem: bool = False,
) -> Backbone:
    """Load a pretrained backbone from any supported source and convert it to mmdet's layout.

    Args:
        src: A file (our Lightning checkpoint, a file written by :func:`export_backbone`, a saved
            state dict or ``nn.Module``, a ``{'state_dict'|'model': ...}`` checkpoint), an
            ``nn.Module`` or a state dict.
        trust_pickle: Allow a file holding a whole pickled ``nn.Module``; loading it runs code
            from the file (see :func:`read_checkpoint`).
        arch: The architecture (``resnet50``, a timm ViT name) for weights that do not record
            it; a plain timm ViT state dict needs it (its heads cannot be read from the weights).
            One recorded in the checkpoint, or a ResNet depth read from the weights, must agree.
        allow_cifar_stem: Accept a CIFAR-stem ResNet (for the torchvision export; mmdet's
            ResNet cannot load one).

    Returns:
        The converted :class:`Backbone` with ``meta`` filled in (``architecture_source``: where
        the architecture came from: ``checkpoint``, ``--arch`` or ``weights``).

    Raises:
        UserError: The file is missing, unreadable or needs ``trust_pickle``, holds no
            recognisable backbone, or holds NaN or infinite weights.
    """
    meta: dict[str, Any] = {"method": None, "epochs": None}
    if isinstance(src, str | Path):
        path = Path(src)
        obj = read_checkpoint(path, trust_pickle=trust_pickle)
        meta.update(source=str(path.resolve()), source_sha256=sha256_of(path))
    else:
        obj = src
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
        meta["source_format"] = "module"
    if not isinstance(obj, Mapping):
        raise UserError(f"expected a checkpoint dict or a state dict, found {type(obj).__name__}")

    name_hint = None
    kind = source_kind(obj)
    if kind == "export":
        # A file we exported before: keep its provenance, re-check its weights.
        own_meta = obj["meta"]
        sd = select_prefix(obj["state_dict"], "backbone.")
        meta.update({k: v for k, v in own_meta.items() if k not in ("source", "source_sha256")})
        meta["exported_from"] = own_meta.get("source")
        name_hint = own_meta.get("architecture")
    elif kind == "lightning":
        sd, lightning_meta = lightning_backbone(obj, allow_cifar_stem)
        meta.update(lightning_meta)
        name_hint = lightning_meta["backbone_name"]
    else:
        for key in ("state_dict", "model"):
            if is_state_dict(obj.get(key)):
                obj = obj[key]
                break
        if not is_state_dict(obj):
            raise UserError(
                f"no state dict found (top-level keys: {top_level(obj)}); expected a Lightning"
                " checkpoint, a state dict, or a dict with 'state_dict' or 'model'"
            )
        sd = strip_wrappers(dict(obj))
        # mmdet/mmselfsup-style checkpoints of a whole model: keep its backbone only.
        sd = select_prefix(sd, "backbone.") or sd
        meta.setdefault("source_format", "state_dict")
    if arch is not None and name_hint is not None and arch != name_hint:
        raise UserError(
            f"--arch {arch}: the checkpoint records its backbone as {name_hint}; drop --arch"
        )
    source = "checkpoint" if name_hint else ("--arch" if arch else "weights")
    # A ResNet's depth is read from its weights; --arch only names what a ViT cannot show.
    vit_arch = arch if arch is not None and arch.startswith("vit") else None
    backbone = convert_state_dict(sd, name_hint or vit_arch, allow_cifar_stem)
    if arch is not None and backbone.architecture != arch:
        raise UserError(f"--arch {arch}: the weights are a {backbone.architecture}")
    check_finite(backbone.state_dict)
    meta["architecture"] = backbone.architecture
    meta["architecture_source"] = source
    backbone.meta = meta
    return backbone
