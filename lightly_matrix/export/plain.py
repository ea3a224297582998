"""Export a pretrained backbone for plain PyTorch: a torchvision ResNet or a timm ViT state dict.

>>> from lightly_matrix.export.plain import export_plain
>>> export_plain("runs/corinfomax/last.ckpt", "r50.pth", "torchvision")  # doctest: +SKIP
>>> model = torchvision.models.resnet50()  # doctest: +SKIP
>>> model.load_state_dict(torch.load("r50.pth"), strict=False)  # doctest: +SKIP

Only ``fc.*`` is missing then. The file holds only tensors (``torch.load(...,
weights_only=True)`` reads it). The mmdet format (:func:`lightly_matrix.export.export_backbone`)
stays the default of ``lightly-matrix export``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightly_matrix.errors import UserError, first_line
from lightly_matrix.export import check_out_file, save_payload
from lightly_matrix.export.backbone import Backbone
from lightly_matrix.export.convert import load_backbone

#: ``lightly-matrix export --format`` choices; ``mmdet`` is the default.
FORMATS = ("mmdet", "torchvision", "timm")
#: What to change in torchvision's ResNet before loading a CIFAR-stem backbone.
CIFAR_STEM_CHANGE = (
    "model.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False); "
    "model.maxpool = torch.nn.Identity()"
)


@dataclass
class PlainExport:
    """A backbone as a plain PyTorch library names it, and how to build its model.

    Attributes:
        state_dict: Keys of the torchvision ResNet / timm ViT (no head).
        architecture: ``resnet50``, ... or the timm model name.
        timm_kwargs: Sizes to pass to ``timm.create_model`` besides ``num_classes=0`` (ViTs).
        cifar_stem: A ResNet with the 3x3 stride-1 CIFAR stem and no max-pool.
    """

    state_dict: dict[str, torch.Tensor]
    architecture: str
    timm_kwargs: dict[str, int] = field(default_factory=dict)
    cifar_stem: bool = False

    @property
    def build(self) -> str:
        """The Python line that builds the model the state dict loads into."""
        if self.architecture.startswith("resnet"):
            line = f"model = torchvision.models.{self.architecture}()"
            return line + ("; " + CIFAR_STEM_CHANGE if self.cifar_stem else "")
        args = [repr(self.architecture), "num_classes=0"]
        args += [f"{k}={v}" for k, v in self.timm_kwargs.items()]
        return f"model = timm.create_model({', '.join(args)})"


def to_plain(backbone: Backbone, fmt: str) -> PlainExport:
    """The torchvision (ResNet) or timm (ViT) state dict of a converted backbone.

    Raises:
        UserError: The format does not fit the architecture.
    """
    if fmt == "torchvision":
        if backbone.family != "resnet":
            raise UserError(
                f"--format torchvision is for ResNets, this backbone is {backbone.architecture};"
                " use --format timm for a ViT"
            )
        cifar = tuple(backbone.state_dict["conv1.weight"].shape[-2:]) != (7, 7)
        # mmdet's ResNet keys are torchvision's (conv1, bn1, layer1..4, downsample.0/1).
        return PlainExport(dict(backbone.state_dict), backbone.architecture, cifar_stem=cifar)
    if fmt == "timm":
        if backbone.family != "vit":
            raise UserError(
                f"--format timm is for ViTs, this backbone is {backbone.architecture}; use"
                " --format torchvision for a ResNet"
            )
        sd = {re.sub(r"^vit\.", "", k): v for k, v in backbone.state_dict.items()}
        sizes = {k: int(backbone.backbone_cfg[k]) for k in ("img_size", "patch_size")}
        return PlainExport(sd, backbone.architecture, timm_kwargs=sizes)
    raise UserError(f"unknown --format {fmt!r}; choose one of: {', '.join(FORMATS)}")


def build_model(plain: PlainExport) -> nn.Module:
    """The randomly initialised torchvision / timm model that ``plain.state_dict`` loads into."""
    if plain.timm_kwargs or not plain.architecture.startswith("resnet"):
        import timm

        return timm.create_model(
            plain.architecture, pretrained=False, num_classes=0, **plain.timm_kwargs
        )
    import torchvision

    model = getattr(torchvision.models, plain.architecture)()
    if plain.cifar_stem:
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    return model


def check_loads(plain: PlainExport) -> None:
    """The state dict loads into :func:`build_model` with nothing unexpected, only ``fc.*`` left.

    Raises:
        UserError: A key is unexpected or missing, or a shape differs.
    """
    model = build_model(plain)
    try:
        result = model.load_state_dict(plain.state_dict, strict=False)
    except RuntimeError as err:  # a shape differs
        raise UserError(f"the weights do not fit `{plain.build}`: {first_line(err)}") from None
    missing = [k for k in result.missing_keys if not k.startswith("fc.")]
    if missing or result.unexpected_keys:
        raise UserError(
            f"the weights do not fit `{plain.build}`: missing {missing[:5]}, unexpected "
            f"{result.unexpected_keys[:5]}"
        )


def export_plain(
    src: str | Path | nn.Module | Mapping[str, Any],
    out: str | Path,
    fmt: str,
    *,
    force: bool = False,
    trust_pickle: bool = False,
    arch: str | None = None,
) -> PlainExport:
    """Convert a pretrained backbone to a torchvision/timm state dict, check it loads, write it.

    Args:
        src: Any source :func:`lightly_matrix.export.load_backbone` reads.
        out: Output file; an existing one is an error unless ``force`` (never the input).
        fmt: ``"torchvision"`` (ResNets) or ``"timm"`` (ViTs).
        force: Overwrite ``out``.
        trust_pickle: Accept a whole pickled ``nn.Module`` (runs code from the file).
        arch: The architecture for weights that do not record it (a plain ViT state dict).

    Returns:
        The :class:`PlainExport` written.

    Raises:
        UserError: Unreadable input, a format that does not fit the backbone, weights that do
            not load into the model, an existing ``out``.
    """
    if fmt not in FORMATS[1:]:
        raise UserError(f"unknown --format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    out = check_out_file(out, force, src)
    backbone = load_backbone(src, trust_pickle=trust_pickle, arch=arch, allow_cifar_stem=True)
    plain = to_plain(backbone, fmt)
    check_loads(plain)
    payload = {k: v.detach().clone().contiguous() for k, v in plain.state_dict.items()}
    save_payload(payload, Path(out))
    return plain
