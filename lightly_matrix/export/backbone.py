"""The result of every conversion: a backbone's tensors in mmdet's key layout, with provenance."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from lightly_matrix.errors import UserError

#: ``meta['format']`` of the files written by :func:`lightly_matrix.export.export_backbone`.
EXPORT_FORMAT = "lightly_matrix.mmdet_backbone"
EXPORT_FORMAT_VERSION = 1


@dataclass
class Backbone:
    """A backbone state dict in mmdet's key layout, with what is known about it.

    Attributes:
        state_dict: Tensors keyed as the mmdet backbone names them (without ``backbone.``).
        architecture: ``resnet18``, ``resnet50``, ... or a timm ViT name.
        backbone_cfg: Keyword arguments for the mmdet backbone (``type`` included) that the
            weights fit, e.g. ``{'type': 'ResNet', 'depth': 50}``.
        meta: Plain-typed provenance (method, epochs, source, checksum, ...).
    """

    state_dict: dict[str, torch.Tensor]
    architecture: str
    backbone_cfg: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> str:
        """``'resnet'`` or ``'vit'``."""
        return "vit" if self.backbone_cfg["type"] != "ResNet" else "resnet"


def check_finite(state_dict: Mapping[str, torch.Tensor]) -> None:
    """Fail on NaN or infinite values, naming the first tensor holding any.

    Raises:
        UserError: A floating-point tensor is not finite everywhere.
    """
    for key, value in state_dict.items():
        if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex()):
            finite = torch.isfinite(value)
            if not bool(finite.all()):
                bad = int((~finite).sum())
                raise UserError(
                    f"weight {key!r} has {bad} NaN or infinite value(s) of {value.numel()}; the"
                    " checkpoint is broken (diverged training?), export an earlier one"
                )
