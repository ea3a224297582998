"""Named pretraining settings: the papers' runs, and a short run on the offline digits.

A preset maps each method it covers to settings. Keys in :data:`RUN_KEYS` configure the run (data
transform, input size, batch, epochs, precision, backbone); all other keys are constructor arguments
of the method's LightningModule. Command-line flags override a preset; a preset overrides the
module's defaults. ``lightly-matrix pretrain --list-presets`` prints them.

Sources: methods.md of this project (read off the authors' code); the CIFAR presets' stem (3x3
stride-1 conv, no max-pool) is that of CorInfoMax's CIFAR model code. Where the papers do not
state a value (CorInfoMax's optimiser; ImageNet-100 batch and epochs; M-MAE ViT-B's ``mu``) the
choice here is marked ``ours``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Settings of the run itself rather than of the LightningModule.
RUN_KEYS = frozenset({"backbone", "image_size", "batch_size", "epochs", "precision", "transform"})

_DIGITS_VIT = {
    "backbone": "vit_tiny_patch16_224",
    "patch_size": 4,
    "decoder_dim": 128,
    "decoder_depth": 2,
    "decoder_num_heads": 4,
    # MAE's 1.5e-4 per 256 is tuned for hundreds of epochs; a 10-epoch run needs a larger step.
    "lr": 1.5e-3,
    "warmup_epochs": 2.0,
}


@dataclass(frozen=True)
class Preset:
    """A named group of settings per method.

    Attributes:
        name: The ``--preset`` name.
        description: One line for ``--list-presets``.
        common: Settings shared by every covered method.
        methods: Method name -> its own settings (override ``common``).
    """

    name: str
    description: str
    common: dict[str, Any] = field(default_factory=dict)
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)

    def settings(self, method: str) -> dict[str, Any]:
        """Merged settings for ``method``.

        Raises:
            KeyError: If the preset does not cover ``method``.
        """
        if method not in self.methods:
            raise KeyError(method)
        return {**self.common, **self.methods[method]}


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in [
        Preset(
            "digits",
            "offline digits, 32 px, batch 64, 5 epochs (the demo's length: 1-4 minutes on 2 CPU "
            "cores), lr and main weight of the ResNet methods chosen on the validation split by "
            "benchmarks/tune_digits.py (the default for --data digits; ViT-Tiny with 4 px patches "
            "for the MAE family; ResNets keep the ImageNet stem so the demo can transfer them)",
            common={
                "backbone": "resnet18",
                "image_size": 32,
                # Small batches: more updates per CPU-second, which a short run needs most.
                "batch_size": 64,
                "epochs": 5,
                "transform": "digits",
                "warmup_epochs": 2.0,
            },
            methods={
                "matrix_ssl": {
                    "hidden_dim": 1024,
                    "output_dim": 1024,
                    "pred_hidden_dim": 256,
                    # A teacher starting at 0.996 barely leaves its random init in ~100 steps.
                    "momentum_start": 0.99,
                    # Validation search (benchmarks/results/tune_digits-5ep): lr {1, 3} x gamma
                    # {1, 0.5}; gamma stays the paper's 1.
                    "lr": 3.0,
                },
                "corinfomax": {
                    "hidden_dim": 1024,
                    "output_dim": 64,
                    # Validation search: lr {0.5, 1.5} x alpha {250, 1000}; lr stays 0.5.
                    "alpha": 1000.0,
                    "la_R": 0.01,
                    "la_mu": 0.01,
                },
                # Validation search: lr {0.2, 0.6} x lambda {5e-3, 2e-2}; lambda stays 5e-3.
                "barlowtwins": {"hidden_dim": 1024, "output_dim": 1024, "lr": 0.6},
                # Validation search: lr {0.3, 0.9} x (lambda, mu, nu) {(25, 25, 1), (10, 10, 1)};
                # the weights stay the paper's (25, 25, 1).
                "vicreg": {"hidden_dim": 1024, "output_dim": 1024, "lr": 0.9},
                "mmae": dict(_DIGITS_VIT),
                "umae": dict(_DIGITS_VIT),
                "mae": dict(_DIGITS_VIT),
                # Untuned: matrix_ssl's heads, teacher and lr, so the three twins differ only in
                # their loss (and BYOL's head layout).
                "byol": {
                    "hidden_dim": 1024,
                    "output_dim": 1024,
                    "pred_hidden_dim": 256,
                    "momentum_start": 0.99,
                    "lr": 3.0,
                },
                "mec": {
                    "hidden_dim": 1024,
                    "output_dim": 1024,
                    "pred_hidden_dim": 256,
                    "momentum_start": 0.99,
                    "lr": 3.0,
                },
            },
        ),
        Preset(
            "cifar10_r18",
            "CorInfoMax CIFAR-10 ResNet-18, CIFAR stem: projector 2048-2048-64, alpha 250, la "
            "0.01, batch 512, 1000 epochs",
            common={
                "backbone": "resnet18",
                "image_size": 32,
                "transform": "byol",
                # The authors' CIFAR code: 3x3 stride-1 conv, no max-pool (not mmdet-loadable).
                "stem": "cifar",
            },
            methods={
                "corinfomax": {
                    "hidden_dim": 2048,
                    "output_dim": 64,
                    "alpha": 250.0,
                    "la_R": 0.01,
                    "la_mu": 0.01,
                    "batch_size": 512,
                    "epochs": 1000,
                },
            },
        ),
        Preset(
            "cifar100_r18",
            "CorInfoMax CIFAR-100 ResNet-18, CIFAR stem: projector 4096-4096-128, alpha 1000, la "
            "0.01, batch 512, 1000 epochs",
            common={
                "backbone": "resnet18",
                "image_size": 32,
                "transform": "byol",
                # The authors' CIFAR code: 3x3 stride-1 conv, no max-pool (not mmdet-loadable).
                "stem": "cifar",
            },
            methods={
                "corinfomax": {
                    "hidden_dim": 4096,
                    "output_dim": 128,
                    "alpha": 1000.0,
                    "la_R": 0.01,
                    "la_mu": 0.01,
                    "batch_size": 512,
                    "epochs": 1000,
                },
            },
        ),
        Preset(
            "tinyimagenet_r50",
            "CorInfoMax Tiny-ImageNet ResNet-50: projector 4096-4096-128, alpha 500, la 0.1, "
            "batch 1024, 800 epochs",
            common={"backbone": "resnet50", "image_size": 64, "transform": "byol"},
            methods={
                "corinfomax": {
                    "hidden_dim": 4096,
                    "output_dim": 128,
                    "alpha": 500.0,
                    "la_R": 0.1,
                    "la_mu": 0.1,
                    "batch_size": 1024,
                    "epochs": 800,
                },
            },
        ),
        Preset(
            "imagenet100_r18",
            "CorInfoMax ImageNet-100 ResNet-18: projector 4096-4096-128, alpha 500, la 0.01 "
            "(batch 512, 400 epochs: ours)",
            common={"backbone": "resnet18", "image_size": 224, "transform": "byol"},
            methods={
                "corinfomax": {
                    "hidden_dim": 4096,
                    "output_dim": 128,
                    "alpha": 500.0,
                    "la_R": 0.01,
                    "la_mu": 0.01,
                    "batch_size": 512,
                    "epochs": 400,
                },
            },
        ),
        Preset(
            "imagenet100_r50",
            "CorInfoMax ImageNet-100 ResNet-50: projector 4096-4096-128, alpha 500, la 0.01 "
            "(batch 512, 400 epochs: ours)",
            common={"backbone": "resnet50", "image_size": 224, "transform": "byol"},
            methods={
                "corinfomax": {
                    "hidden_dim": 4096,
                    "output_dim": 128,
                    "alpha": 500.0,
                    "la_R": 0.01,
                    "la_mu": 0.01,
                    "batch_size": 512,
                    "epochs": 400,
                },
            },
        ),
        Preset(
            "imagenet_r50",
            "ImageNet-1k ResNet-50, 100 epochs: Matrix-SSL (SGD 0.5/256, wd 1e-5, batch 1024), "
            "CorInfoMax (8192-8192-512 BN, alpha 2000, la 0.1, batch 1536, AMP), Lightly's "
            "BarlowTwins/VICReg",
            common={
                "backbone": "resnet50",
                "image_size": 224,
                "epochs": 100,
                "transform": "byol",
                "warmup_epochs": 10.0,
            },
            methods={
                "matrix_ssl": {
                    "batch_size": 1024,
                    "hidden_dim": 2048,
                    "output_dim": 2048,
                    "pred_hidden_dim": 512,
                    "optimizer": "sgd",
                    "lr": 0.5,
                    "weight_decay": 1e-5,
                },
                "corinfomax": {
                    "batch_size": 1536,
                    "hidden_dim": 8192,
                    "output_dim": 512,
                    "proj_batch_norm": True,
                    "alpha": 2000.0,
                    "la_R": 0.1,
                    "la_mu": 0.1,
                    "precision": "16-mixed",
                },
                "barlowtwins": {"batch_size": 1024},
                "vicreg": {"batch_size": 1024, "transform": "vicreg"},
            },
        ),
        Preset(
            "imagenet_vitb16",
            "ImageNet-1k ViT-B/16, 200 epochs, batch 1024, mask 0.75, AdamW 1.5e-4/256, 40 "
            "warm-up: M-MAE (lamb 0.01, mu 3: ours), U-MAE (lamb 0.01), MAE",
            common={
                "backbone": "vit_base_patch16_224",
                "image_size": 224,
                "batch_size": 1024,
                "epochs": 200,
                "transform": "mae",
                "warmup_epochs": 40.0,
                "lr": 1.5e-4,
                "mask_ratio": 0.75,
            },
            methods={"mmae": {"lamb": 0.01, "mu": 3.0}, "umae": {"lamb": 0.01}, "mae": {}},
        ),
        Preset(
            "imagenet_vitl16",
            "ImageNet-1k ViT-L/16 (the M-MAE authors' run): lamb 0.01, mu 3, no centering, batch "
            "1024, 200 epochs, 40 warm-up, AdamW 1.5e-4/256",
            common={
                "backbone": "vit_large_patch16_224",
                "image_size": 224,
                "batch_size": 1024,
                "epochs": 200,
                "transform": "mae",
                "warmup_epochs": 40.0,
                "lr": 1.5e-4,
                "mask_ratio": 0.75,
            },
            methods={
                "mmae": {"lamb": 0.01, "mu": 3.0, "centering": False},
                "umae": {"lamb": 0.01},
                "mae": {},
            },
        ),
    ]
}


def describe_presets() -> str:
    """One block per preset: name, methods covered, description."""
    lines = []
    for preset in PRESETS.values():
        lines.append(f"{preset.name:18s} [{', '.join(preset.methods)}]")
        lines.append(f"{'':18s} {preset.description}")
    return "\n".join(lines)
