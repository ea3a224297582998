"""Rename ResNet weights (Lightly's ``nn.Sequential`` or torchvision names) to mmdet's ResNet and
read their depth."""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from lightly_matrix.errors import UserError
from lightly_matrix.export.backbone import Backbone

# Children of a torchvision ResNet as Lightly wraps it (nn.Sequential of children()[:-1]):
# 2 (relu), 3 (maxpool) and 8 (avgpool) hold no weights; fc is not part of the wrapper.
_LIGHTLY_RESNET_CHILDREN = {
    "0": "conv1",
    "1": "bn1",
    "4": "layer1",
    "5": "layer2",
    "6": "layer3",
    "7": "layer4",
}
# (bottleneck?, blocks per stage) -> depth, as in torchvision and mmdet's ResNet.arch_settings.
_RESNET_DEPTHS: dict[tuple[bool, tuple[int, ...]], int] = {
    (False, (2, 2, 2, 2)): 18,
    (False, (3, 4, 6, 3)): 34,
    (True, (3, 4, 6, 3)): 50,
    (True, (3, 4, 23, 3)): 101,
    (True, (3, 8, 36, 3)): 152,
}

#: Why a ResNet with another stem cannot go to mmdet, and what to do instead (for messages).
STEM_HINT = (
    "mmdet's ResNet has a 7x7 stride-2 stem with max-pool, so a CIFAR-stem backbone cannot be"
    " loaded without changing the detector's stem; pretrain with the ImageNet stem (--hp"
    " stem=imagenet, the default) for detection transfer; --format torchvision exports it for"
    " plain PyTorch"
)


def _check_stem_kernel(sd: Mapping[str, torch.Tensor]) -> None:
    """Refuse a ResNet whose conv1 is not 7x7 (e.g. a CIFAR 3x3 stem), which mmdet cannot load.

    A max-pool replaced by ``nn.Identity`` holds no weights and cannot be detected here.
    """
    conv1 = sd.get("conv1.weight")
    if conv1 is not None and conv1.ndim == 4 and tuple(conv1.shape[-2:]) != (7, 7):
        kh, kw = (int(n) for n in conv1.shape[-2:])
        raise UserError(
            f"the ResNet's conv1 is a {kh}x{kw} convolution (a CIFAR-style stem); " + STEM_HINT
        )


def from_lightly_sequential(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Torchvision names for Lightly's ``nn.Sequential`` ResNet keys (``4.0.conv1`` ->
    ``layer1.0.conv1``)."""
    out = {}
    for key, value in sd.items():
        child, _, rest = key.partition(".")
        if child not in _LIGHTLY_RESNET_CHILDREN:
            raise UserError(
                f"unexpected key {key!r} in a Lightly-style nn.Sequential ResNet (torchvision's"
                " children hold weights at 0, 1 and 4-7; one was removed, e.g. the max-pool of a"
                " CIFAR-style stem); " + STEM_HINT
            )
        out[f"{_LIGHTLY_RESNET_CHILDREN[child]}.{rest}"] = value
    return out


def resnet_backbone(
    sd: Mapping[str, torch.Tensor], name_hint: str | None, allow_cifar_stem: bool = False
) -> Backbone:
    """A torchvision/mmdet-named ResNet state dict (fc dropped) and its depth."""
    sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    if not allow_cifar_stem:
        _check_stem_kernel(sd)
    bottleneck = "layer1.0.conv3.weight" in sd
    blocks = []
    for stage in range(1, 5):
        indices = {int(m.group(1)) for k in sd if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
        blocks.append(max(indices) + 1 if indices else 0)
    depth = _RESNET_DEPTHS.get((bottleneck, tuple(blocks)))
    if depth is None:
        # Incomplete weights: take the named (or smallest fitting) depth, so that verification
        # lists exactly what is missing.
        hinted = re.fullmatch(r"resnet(\d+)", name_hint or "")
        fitting = [
            d
            for (b, layout), d in _RESNET_DEPTHS.items()
            if b == bottleneck and all(n <= m for n, m in zip(blocks, layout, strict=True))
        ]
        depth = int(hinted.group(1)) if hinted else min(fitting, default=None)
    if depth not in _RESNET_DEPTHS.values():
        raise UserError(
            f"the ResNet weights have an unknown layout "
            f"({'Bottleneck' if bottleneck else 'BasicBlock'} blocks per stage {blocks});"
            " mmdet's ResNet supports depths 18, 34, 50, 101, 152"
        )
    architecture = f"resnet{depth}"
    if name_hint and name_hint.startswith("resnet") and name_hint != architecture:
        raise UserError(
            f"the checkpoint says its backbone is {name_hint!r} but its weights are a"
            f" {architecture}; the checkpoint is inconsistent, export another one"
        )
    return Backbone(sd, architecture, {"type": "ResNet", "depth": depth})
