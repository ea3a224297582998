"""Export a pretrained backbone for plain PyTorch: a torchvision ResNet or a timm ViT state dict,
which loads strictly into the model without its classifier::

    model = torchvision.models.resnet50(); model.fc = torch.nn.Identity()
    model.load_state_dict(torch.load("r50.pth", weights_only=True))

>>> from lightly_matrix.export.plain import export_plain
>>> export_plain("runs/corinfomax/last.ckpt", "r50.pth", "torchvision")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightly_matrix.errors import UserError
from lightly_matrix.export import check_fit, check_out_file, load_backbone, save_payload

#: ``lightly-matrix export --format`` choices; ``mmdet`` is the default.
FORMATS = ("mmdet", "torchvision", "timm")
#: ``timm.create_model`` size arguments that a ViT's ``backbone_cfg`` may record.
SIZES = ("img_size", "patch_size", "in_chans")


@dataclass
class PlainExport:
    """A backbone as a plain PyTorch library names it, and how to build its model.

    Attributes:
        state_dict: Keys of the torchvision ResNet / timm ViT without its classifier.
        architecture: ``resnet50``, ... or the timm model name.
        timm_kwargs: Sizes to pass to ``timm.create_model`` besides ``num_classes=0`` (ViTs).
        cifar_stem: A ResNet with the 3x3 stride-1 CIFAR stem and no max-pool.
    """

    state_dict: dict[str, torch.Tensor]
    architecture: str
    timm_kwargs: dict[str, Any] = field(default_factory=dict)
    cifar_stem: bool = False

    @property
    def build(self) -> str:
        """The Python line that builds the model the state dict loads into with ``strict=True``."""
        if self.architecture.startswith("vit"):
            args = [repr(self.architecture), "num_classes=0"]
            args += [f"{k}={v}" for k, v in self.timm_kwargs.items()]
            return f"model = timm.create_model({', '.join(args)})"
        stem = (
            "model.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False);"
            " model.maxpool = torch.nn.Identity(); "
        )
        build = f"model = torchvision.models.{self.architecture}(); "
        return build + (stem if self.cifar_stem else "") + "model.fc = torch.nn.Identity()"


def build_model(plain: PlainExport) -> nn.Module:
    """The randomly initialised model of ``plain.build``, which ``plain.state_dict`` loads into."""
    if plain.architecture.startswith("vit"):
        import timm

        return timm.create_model(plain.architecture, num_classes=0, **plain.timm_kwargs)
    import torchvision

    model = torchvision.models.get_model(plain.architecture)
    if plain.cifar_stem:
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    model.fc = nn.Identity()
    return model


def export_plain(
    src: str | Path | nn.Module | Mapping[str, Any],
    out: str | Path,
    fmt: str,
    *,
    force: bool = False,
    trust_pickle: bool = False,
    arch: str | None = None,
) -> PlainExport:
    """Convert a backbone to a torchvision/timm state dict, check it loads strictly, and write it.

    Args:
        src: Any source :func:`lightly_matrix.export.load_backbone` reads.
        out: Output file; an existing one is an error unless ``force`` (never the input).
        fmt: ``"torchvision"`` (ResNets) or ``"timm"`` (ViTs).
        force: Replace ``out`` if it is an existing regular file.
        trust_pickle: Accept a whole pickled ``nn.Module`` (runs code from the file).
        arch: The timm model name of ViT weights that do not record it.

    Returns:
        The :class:`PlainExport` written; :attr:`PlainExport.build` builds its model.

    Raises:
        UserError: Unreadable input, a format for another family, a failed load, a refused out.
    """
    if fmt not in FORMATS[1:]:
        raise UserError(f"unknown --format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    out = check_out_file(out, force, src)
    backbone = load_backbone(src, trust_pickle=trust_pickle, arch=arch, allow_cifar_stem=True)
    if backbone.family != {"torchvision": "resnet", "timm": "vit"}[fmt]:
        right = "timm" if fmt == "torchvision" else "torchvision"
        raise UserError(f"--format {fmt} is not for {backbone.architecture}; use --format {right}")
    if fmt == "torchvision":
        # mmdet's ResNet keys are torchvision's (conv1, bn1, layer1..4, downsample.0/1).
        cifar = backbone.state_dict["conv1.weight"].shape[-2:] != (7, 7)
        plain = PlainExport(dict(backbone.state_dict), backbone.architecture, cifar_stem=cifar)
    else:
        cfg = backbone.backbone_cfg
        sd = {k.removeprefix("vit."): v for k, v in backbone.state_dict.items()}
        plain = PlainExport(sd, backbone.architecture, {k: int(cfg[k]) for k in SIZES if k in cfg})
    shapes = {k: v.shape for k, v in build_model(plain).state_dict().items()}
    hint = f"that it is a {plain.architecture} (else name it with --arch)"
    check_fit(plain.state_dict, shapes, f"`{plain.build}`", hint)
    payload = {k: v.detach().clone().contiguous() for k, v in plain.state_dict.items()}
    save_payload(payload, out, force, backbone.meta.get("source"))
    return plain
