"""``pretrain --dry-run``: the resolved run as one JSON document.

The optimiser and schedule values are read from the method module itself (built on PyTorch's
``meta`` device: no memory, no initialisation cost), through the same methods that
``configure_optimizers`` uses, so the document cannot drift from what training does.
"""

from __future__ import annotations

from typing import Any

from lightly_matrix.pretrain.config import RunConfig


def build_module(config: RunConfig, cls: type, num_classes: int, device: str = "meta") -> Any:
    """The method module of ``config`` (on ``device``)."""
    import torch

    with torch.device(device):
        return cls(**config.module_hparams(num_classes))


def describe_run(config: RunConfig, cls: type, num_classes: int, num_images: int) -> dict[str, Any]:
    """Everything the run trains with, as plain JSON values."""
    from lightly_matrix.methods.base import ADAMW_BETAS, SGD_MOMENTUM, is_vit

    module = build_module(config, cls, num_classes)
    hp = module.hparams
    tensors = {g["name"]: len(g["params"]) for g in module.parameter_groups()}
    adamw, vit = hp["optimizer"] == "adamw", is_vit(hp["backbone"])
    run = ("seed", "world_size", "global_batch_size", "per_device_batch_size")
    return {
        **{key: getattr(config, key) for key in ("method", "preset", "data")},
        "num_images": num_images,
        "num_classes": num_classes,
        **{key: getattr(config, key) for key in run},
        "steps_per_epoch": config.steps_per_epoch(num_images),
        **{key: getattr(config, key) for key in ("epochs", "precision")},
        # Lightning's sync_batchnorm is set whenever more than one GPU process trains.
        "sync_batchnorm": "when distributed on GPUs",
        "drop_last": True,
        "image_size": config.image_size,
        "backbone": {
            "name": hp["backbone"],
            **{key: None if vit else hp[key] for key in ("stem", "zero_init_residual")},
            "patch_size": hp["patch_size"] if vit else None,
        },
        "optimizer": {
            "name": hp["optimizer"],
            "lr": module.peak_lr(config.world_size),
            "base_lr": hp["lr"],
            "lr_scaling": hp["lr_scaling"],
            "momentum": ADAMW_BETAS[0] if adamw else SGD_MOMENTUM,
            **({"betas": list(ADAMW_BETAS)} if adamw else {}),
            "weight_decay": hp["weight_decay"],
            "decay_norm_and_bias": hp["decay_norm_and_bias"],
            "decayed_tensors": tensors.get("weights", 0),
            "undecayed_tensors": tensors.get("no_weight_decay", 0),
            "online_probe_tensors": tensors.get("online_classifier", 0),
        },
        "lr_schedule": {
            **{key: hp[key] for key in ("warmup_epochs", "warmup_style", "warmup_start_lr")},
            "interval": hp["lr_interval"],
            "final_lr": hp["final_lr"],
        },
        "teacher_momentum": (
            {
                "start": hp["momentum_start"],
                "end": hp["momentum_end"],
                "schedule": "cosine per step, applied after each optimizer step",
            }
            if "momentum_start" in hp
            else None
        ),
        "transform": config.transform,
        "views": [view.to_dict() for view in config.views],
        "evaluation": {
            "enabled": not config.no_eval,
            **{key: getattr(config, key) for key in ("eval_data", "eval_split")},
        },
        # The per-device batch and gather_distributed (world_size > 1) are derived, above.
        "hparams": {
            k: v
            for k, v in sorted(config.module_hparams(num_classes).items())
            if k not in ("batch_size_per_device", "gather_distributed")
        },
    }
