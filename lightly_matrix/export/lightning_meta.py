"""The online backbone of one of our Lightning checkpoints and what the checkpoint says about it
(method, backbone name, stem, epochs and steps trained)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from lightly_matrix.errors import UserError
from lightly_matrix.export.formats import select_prefix, top_level
from lightly_matrix.export.resnet_keys import STEM_HINT
from lightly_matrix.utils.loop_progress import checkpoint_progress


def _hparams(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    hparams = ckpt.get("hyper_parameters") or {}
    return dict(hparams) if isinstance(hparams, Mapping) else vars(hparams)


def lightning_provenance(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """Plain-typed ``meta`` of a Lightning checkpoint: ``method``, ``epochs`` (finished),
    ``global_step``, ``backbone_name`` (``None`` where unknown) and ``source_format``."""
    hparams = _hparams(ckpt)
    progress = checkpoint_progress(ckpt)
    name = hparams.get("backbone")
    return {
        "method": str(hparams["method"]) if "method" in hparams else None,
        "epochs": progress.epochs_done,
        "global_step": progress.global_step,
        "source_format": "lightning",
        "backbone_name": str(name) if name is not None else None,
    }


def lightning_backbone(
    ckpt: Mapping[str, Any], allow_cifar_stem: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The online backbone's tensors (``backbone.`` stripped) and :func:`lightning_provenance`.

    Raises:
        UserError: No ``backbone.`` weights, or a CIFAR stem without ``allow_cifar_stem``.
    """
    # Exactly `backbone.`: teacher/momentum copies, heads, decoders and loss buffers are dropped.
    sd = select_prefix(ckpt["state_dict"], "backbone.")
    if not sd:
        raise UserError(
            "the Lightning checkpoint has no 'backbone.' weights (top-level keys: "
            f"{top_level(ckpt['state_dict'])}); only the online backbone is exported"
        )
    # Our modules record the ResNet stem (checkpoints from before it existed used ImageNet's).
    stem = _hparams(ckpt).get("stem", "imagenet")
    if stem != "imagenet" and not allow_cifar_stem:
        raise UserError(f"the checkpoint was pretrained with stem={stem!r}; " + STEM_HINT)
    return sd, lightning_provenance(ckpt)
