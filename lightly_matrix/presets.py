"""Named pretraining settings: the authors' runs, value by value, and a short run on the digits.

A preset maps each method it covers to settings. Keys in :data:`RUN_KEYS` configure the run (data
transform, input size, GLOBAL batch, epochs, precision, backbone); all other keys are constructor
arguments of the method's LightningModule. Command-line flags override a preset; a preset overrides
the module's defaults. ``lightly-matrix pretrain --list-presets`` prints them and ``--dry-run``
prints everything a run resolves to.

Every value of a paper preset carries its source in the authors' code (repository, file, line of
the revision read on 2026-12-02); facts, not code:

- ``MSSL``: yifanzhang-pro/Matrix-SSL (``main_pretrain.py``, ``mec/builder.py``, ``README.md``);
- ``CIM``: serdarozsoy/corinfomax-ssl (``README.md`` commands, ``cifars-tiny/``, ``imagenet1k/``,
  ``imagenet100_resnet*/pretrain/``);
- ``MMAE``: yifanzhang-pro/M-MAE (``pretrain.sh``, ``main_pretrain.py``, ``engine_pretrain.py``,
  ``models_mae.py``, ``loss_func.py``, ``util/lr_sched.py``).

Batch sizes are the TOTAL over all GPUs in every one of those scripts (and here). Where the
authors' code differs from their paper the code is followed. Method defaults that already equal
the authors' value are not repeated (see each method's docstring).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Settings of the run itself rather than of the LightningModule.
RUN_KEYS = frozenset(
    {"backbone", "image_size", "batch_size", "epochs", "precision", "transform", "crop_min_scale"}
)

#: The optimisation the digits search (benchmarks/tune_digits.py) ran with: Lightly's per-step
#: warm-up + cosine, lr per 256 images, biases and norms not decayed, torchvision's init.
_DIGITS_RESNET = {
    "zero_init_residual": False,
    "decay_norm_and_bias": False,
    "lr_scaling": "linear",
    "lr_interval": "step",
    "warmup_style": "fraction",
    "warmup_start_lr": 0.0,
    "final_lr": 0.0,
}

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

# CorInfoMax's per-epoch schedule (CIM cifars-tiny/parsing_file.py:38-40 defaults, used by every
# README command that does not set them; imagenet1k/parsing_file_dist.py:42-44): SGD momentum 0.9,
# lr ABSOLUTE (optim_utils.py:make_optimizer takes --learning_rate as is), warm-up from 3e-3 over
# 10 epochs (LRscheduler.py: reaches the base lr at epoch 9), cosine to --min_lr, weight decay on
# model.parameters() (all). These are the CorInfoMax module's defaults; presets set the rest.

# M-MAE's published run (MMAE pretrain.sh): 8 GPUs x 128 = 1024 images per step. Its all-gather
# (loss_func.py GatherLayer.backward) returns only the local gradient slice, so after DDP's
# average the regulariser's gradient was 1/8 of the loss it prints. Our gather keeps every rank's
# gradient (the correct one), so the published run's effective strength is lamb 0.01 / 8.
_MMAE_WORLD = 8
_MMAE_LAMB = 0.01 / _MMAE_WORLD
_MMAE_COMMON = {
    "image_size": 224,  # MMAE main_pretrain.py:52 --input_size
    "batch_size": 1024,  # MMAE pretrain.sh: --batch_size 128 per GPU x --nproc_per_node=8
    "epochs": 200,  # MMAE pretrain.sh --epochs 200
    "warmup_epochs": 40.0,  # MMAE pretrain.sh --warmup_epochs 40
    "lr": 1.5e-4,  # MMAE pretrain.sh --blr; main_pretrain.py:214 lr = blr * 1024 / 256 = 6e-4
    "weight_decay": 0.05,  # MMAE pretrain.sh --weight_decay
    "mask_ratio": 0.75,  # MMAE pretrain.sh --mask_ratio
    "precision": "16-mixed",  # MMAE engine_pretrain.py:43 torch.cuda.amp.autocast + GradScaler
    "transform": "mae",  # MMAE main_pretrain.py:135-139: crop (0.2, 1) bicubic, flip
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
            "ours: offline digits, 32 px, batch 64, 5 epochs (the demo's length: 1-4 minutes on 2 "
            "CPU cores), lr and main weight of the ResNet methods chosen on the validation split "
            "by "
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
                # 1,257 training images: Lightly's ImageNet k of 200 would vote over 1/6 of them.
                "knn_k": 20,
                "knn_t": 0.1,
            },
            methods={
                "matrix_ssl": {
                    **_DIGITS_RESNET,
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
                    **_DIGITS_RESNET,
                    "hidden_dim": 1024,
                    "output_dim": 64,
                    "proj_batch_norm": False,
                    # Validation search: lr {0.5, 1.5} (per 256) x alpha {250, 1000}; lr stays 0.5.
                    "lr": 0.5,
                    "alpha": 1000.0,
                    "cov_momentum": 0.01,
                    "mean_momentum": 0.01,
                },
                # Validation search: lr {0.2, 0.6} x lambda {5e-3, 2e-2}; lambda stays 5e-3.
                "barlowtwins": {
                    **_DIGITS_RESNET,
                    "hidden_dim": 1024,
                    "output_dim": 1024,
                    "lr": 0.6,
                },
                # Validation search: lr {0.3, 0.9} x (lambda, mu, nu) {(25, 25, 1), (10, 10, 1)};
                # the weights stay the paper's (25, 25, 1).
                "vicreg": {
                    **_DIGITS_RESNET,
                    "hidden_dim": 1024,
                    "output_dim": 1024,
                    "lr": 0.9,
                    "weight_decay": 1e-4,  # what the search ran with (the old class default)
                },
                "mmae": dict(_DIGITS_VIT),
                "umae": dict(_DIGITS_VIT),
                "mae": dict(_DIGITS_VIT),
                # Untuned: matrix_ssl's heads, teacher and lr, so the three twins differ only in
                # their loss (and BYOL's head layout).
                "byol": {
                    **_DIGITS_RESNET,
                    "hidden_dim": 1024,
                    "output_dim": 1024,
                    "pred_hidden_dim": 256,
                    "momentum_start": 0.99,
                    "lr": 3.0,
                },
                "mec": {
                    **_DIGITS_RESNET,
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
            "CorInfoMax CIFAR-10 ResNet-18 (authors' README command): CIFAR stem, projector "
            "2048-2048-64, alpha 250, la 0.01, batch 512, 1000 epochs, SGD lr 0.5 (absolute), wd "
            "1e-4, per-epoch warm-up 10 + cosine to 1e-6, bicubic crops, CIFAR-10 mean/std",
            common={
                "backbone": "resnet18",  # CIM README CIFAR-10: --model_name resnet18
                "image_size": 32,  # CIM cifars-tiny/transform_utils.py:31 random_crop_size 32
                "transform": "corinfomax_cifar10",  # CIM transform_utils.py:22-60 (bicubic, 0.08)
                # CIM cifars-tiny/model_base_resnet.py:16-19: 3x3 stride-1 conv, no max-pool,
                # resnet18(zero_init_residual=True) (not mmdet-loadable).
                "stem": "cifar",
            },
            methods={
                "corinfomax": {
                    "batch_size": 512,  # CIM README: --batch_size 512 (one GPU)
                    "epochs": 1000,  # CIM README: --epochs 1000
                    "hidden_dim": 2048,  # CIM README: --projector 2048-2048-64
                    "output_dim": 64,
                    "proj_batch_norm": False,  # BN hidden layers are the ImageNet-1k setting only
                    "alpha": 250.0,  # CIM README: --sim_loss_weight 250.0
                    "cov_momentum": 0.01,  # CIM README: --la_R 0.01 --la_mu 0.01
                    "mean_momentum": 0.01,
                    "lr": 0.5,  # CIM README: --learning_rate 0.5 (absolute)
                    "weight_decay": 1e-4,  # CIM README: --w_decay 1e-4
                    "final_lr": 1e-6,  # CIM README: --min_lr 1e-6
                },
            },
        ),
        Preset(
            "cifar100_r18",
            "CorInfoMax CIFAR-100 ResNet-18 (authors' README command): CIFAR stem, projector "
            "4096-4096-128, alpha 1000, la 0.01, batch 512, 1000 epochs, SGD lr 0.5 (absolute), "
            "wd 1e-4, per-epoch warm-up 10 + cosine to 1e-6, CIFAR-100 mean/std",
            common={
                "backbone": "resnet18",  # CIM README CIFAR-100: --model_name resnet18
                "image_size": 32,
                "transform": "corinfomax_cifar100",  # CIM transform_utils.py:26-29 (CIFAR-100)
                "stem": "cifar",  # CIM model_base_resnet.py:16-19
            },
            methods={
                "corinfomax": {
                    "batch_size": 512,  # CIM README: --batch_size 512
                    "epochs": 1000,  # CIM README: --epochs 1000
                    "hidden_dim": 4096,  # CIM README: --projector 4096-4096-128
                    "output_dim": 128,
                    "proj_batch_norm": False,  # BN hidden layers are the ImageNet-1k setting only
                    "alpha": 1000.0,  # CIM README: --sim_loss_weight 1000.0
                    "cov_momentum": 0.01,
                    "mean_momentum": 0.01,
                    "lr": 0.5,  # CIM README: --learning_rate 0.5
                    "weight_decay": 1e-4,  # CIM README: --w_decay 1e-4
                    "final_lr": 1e-6,  # CIM README: --min_lr 1e-6
                },
            },
        ),
        Preset(
            "tinyimagenet_r50",
            "CorInfoMax Tiny-ImageNet ResNet-50 (authors' README command): 64 px, projector "
            "4096-4096-128, alpha 500, la 0.1, batch 1024, 800 epochs, SGD lr 0.5 (absolute), wd "
            "1e-4, warm-up 10 + cosine to 1e-6",
            common={
                "backbone": "resnet50",  # CIM README Tiny ImageNet: --model_name resnet50
                "image_size": 64,  # CIM transform_utils.py:35 random_crop_size 64
                "transform": "corinfomax",  # CIM transform_utils.py: ImageNet mean/std, bicubic
            },
            methods={
                "corinfomax": {
                    "batch_size": 1024,  # CIM README: --batch_size 1024
                    "epochs": 800,  # CIM README: --epochs 800
                    "hidden_dim": 4096,  # CIM README: --projector 4096-4096-128
                    "output_dim": 128,
                    "proj_batch_norm": False,  # BN hidden layers are the ImageNet-1k setting only
                    "alpha": 500.0,  # CIM README: --sim_loss_weight 500.0
                    "cov_momentum": 0.1,  # CIM README: --la_R 0.1 --la_mu 0.1
                    "mean_momentum": 0.1,
                    "lr": 0.5,  # CIM README: --learning_rate 0.5
                    "warmup_epochs": 10.0,  # CIM README: --warmup_epochs 10
                    "weight_decay": 1e-4,
                    "final_lr": 1e-6,  # CIM README: --min_lr 1e-6
                },
            },
        ),
        Preset(
            "imagenet100_r18",
            "CorInfoMax ImageNet-100 ResNet-18 (authors' README command, torchrun 8 GPUs): "
            "projector 4096-4096-128, alpha 500, la 0.01, total batch 1024, 400 epochs, SGD lr 1.0 "
            "(absolute), wd 1e-4, warm-up 10 + cosine to 5e-3",
            common={"backbone": "resnet18", "image_size": 224, "transform": "corinfomax"},
            methods={
                "corinfomax": {
                    # CIM imagenet100_resnet18/pretrain/main_traintest_cov_online_multi3_lin_img100_
                    # wmse_resnet18.py:46-47: per-GPU batch = --batch_size // world_size.
                    "batch_size": 1024,  # CIM README: --batch_size 1024
                    "epochs": 400,  # CIM README: --epochs 400
                    "hidden_dim": 4096,  # CIM README: --projector 4096-4096-128
                    "output_dim": 128,
                    "proj_batch_norm": False,  # BN hidden layers are the ImageNet-1k setting only
                    "alpha": 500.0,  # CIM README: --sim_loss_weight 500.0
                    "cov_momentum": 0.01,
                    "mean_momentum": 0.01,
                    "lr": 1.0,  # CIM README: --learning_rate 1.0
                    "warmup_epochs": 10.0,  # CIM .../parsing_file_dist.py:43 default
                    "weight_decay": 1e-4,
                    "final_lr": 5e-3,  # CIM README: --min_lr 5e-3
                },
            },
        ),
        Preset(
            "imagenet100_r50",
            "CorInfoMax ImageNet-100 ResNet-50 (authors' README command, torchrun 8 GPUs): "
            "projector 4096-4096-128, alpha 500, la 0.01, total batch 1024, 200 epochs, SGD lr 1.0 "
            "(absolute), wd 1e-4, warm-up 5 + cosine to 5e-3",
            common={"backbone": "resnet50", "image_size": 224, "transform": "corinfomax"},
            methods={
                "corinfomax": {
                    "batch_size": 1024,  # CIM README: --batch_size 1024 (total, as above)
                    "epochs": 200,  # CIM README: --epochs 200
                    "hidden_dim": 4096,  # CIM README: --projector 4096-4096-128
                    "output_dim": 128,
                    "proj_batch_norm": False,  # BN hidden layers are the ImageNet-1k setting only
                    "alpha": 500.0,  # CIM README: --sim_loss_weight 500.0
                    "cov_momentum": 0.01,
                    "mean_momentum": 0.01,
                    "lr": 1.0,  # CIM README: --learning_rate 1.0
                    "warmup_epochs": 5.0,  # CIM README: --warmup_epochs 5
                    "weight_decay": 1e-4,
                    "final_lr": 5e-3,  # CIM README: --min_lr 5e-3
                },
            },
        ),
        Preset(
            "imagenet_r50",
            "ImageNet-1k ResNet-50, 100 epochs: Matrix-SSL (authors' script: batch 1024, SGD "
            "0.5 x batch/256 = 2.0, wd 1e-5 on all, warm-up 10 + cosine to 0 per step, crops "
            "0.2), CorInfoMax (authors' command: batch 1536, SGD lr 0.2 absolute, wd 1e-4, "
            "8192-8192-512 BN, alpha 2000, la 0.1, AMP), Lightly's BarlowTwins/VICReg",
            common={
                "backbone": "resnet50",  # MSSL README -a resnet50; CIM README --model_name
                "image_size": 224,
                "epochs": 100,  # MSSL main_pretrain.py:57 default; CIM README --epochs 100
                "warmup_epochs": 10.0,  # MSSL main_pretrain.py:303; CIM parsing_file_dist.py:44
            },
            methods={
                "matrix_ssl": {
                    "batch_size": 1024,  # MSSL main_pretrain.py:61 (total over all GPUs)
                    "lr": 0.5,  # MSSL main_pretrain.py:66,191: init_lr = 0.5 * 1024 / 256
                    "weight_decay": 1e-5,  # MSSL main_pretrain.py:70, on model.parameters()
                    "hidden_dim": 2048,  # MSSL mec/builder.py: 3-layer 2048 projector
                    "output_dim": 2048,  # MSSL main_pretrain.py:95 --dim 2048
                    "pred_hidden_dim": 512,  # MSSL main_pretrain.py:101 --pred-dim 512
                    "momentum_start": 0.996,  # MSSL main_pretrain.py:118, cosine to 1 (:299)
                    "target_scale": 1.0,  # MSSL README: --mce_lambd 1.0 (argparse default 0.5)
                    "ridge": 1.0,  # MSSL README: --mce_mu 1.0 (argparse default 0.5)
                    "gamma": 1.0,  # MSSL README: --gamma 1.0
                    "taylor_order": 4,  # MSSL main_pretrain.py:113 --mce_order 4
                    "transform": "mocov3",  # MSSL main_pretrain.py:253-277: crops (0.2, 1)
                    "precision": "32-true",  # MSSL: no autocast in main_pretrain.py
                },
                "corinfomax": {
                    "batch_size": 1536,  # CIM README ImageNet-1K: --batch_size 1536 (total)
                    "lr": 0.2,  # CIM README: --learning_rate 0.2 (absolute)
                    "weight_decay": 1e-4,  # CIM README: --w_decay 1e-4
                    "final_lr": 1e-6,  # CIM README: --min_lr 1e-6
                    "hidden_dim": 8192,  # CIM README: --projector 8192-8192-512
                    "output_dim": 512,
                    # CIM imagenet1k/model_base_resnet_bn.py: Linear-BN-ReLU hidden layers
                    "proj_batch_norm": True,
                    "alpha": 2000.0,  # CIM README: --sim_loss_weight 2000.0
                    "cov_momentum": 0.1,  # CIM README: --la_R 0.1 --la_mu 0.1
                    "mean_momentum": 0.1,
                    "precision": "16-mixed",  # CIM README: --amp (GradScaler)
                    "transform": "corinfomax",  # CIM imagenet1k/transform_utils3.py (bicubic)
                },
                # MEC (xinliu20/MEC main_pretrain.py, mec/builder.py; the same files as in
                # MSSL): the Matrix-SSL recipe above with MEC's loss (eps^2 64, order 4).
                "mec": {
                    "batch_size": 1024,  # MEC main_pretrain.py -b 1024 (total)
                    "lr": 0.5,  # MEC main_pretrain.py --lr 0.5 x batch / 256
                    "weight_decay": 1e-5,  # MEC main_pretrain.py --wd 1e-5, on all parameters
                    "hidden_dim": 2048,
                    "output_dim": 2048,  # MEC --dim 2048
                    "pred_hidden_dim": 512,  # MEC --pred-dim 512
                    "momentum_start": 0.996,  # MEC --teacher-momentum 0.996, cosine to 1
                    "eps_squared": 64.0,  # MEC --eps 64
                    "transform": "mocov3",  # MEC main_pretrain.py: MoCo v3 views, crops (0.2, 1)
                    "precision": "32-true",
                },
                # Ours: BYOL's loss and heads on the Matrix-SSL recipe (the twin of matrix_ssl).
                "byol": {"batch_size": 1024, "transform": "mocov3", "precision": "32-true"},
                "barlowtwins": {"batch_size": 1024, "transform": "byol"},
                "vicreg": {"batch_size": 1024, "transform": "vicreg"},
            },
        ),
        Preset(
            "imagenet_vitb16",
            "ImageNet-1k ViT-B/16 with the M-MAE authors' ViT-L recipe (ours: they publish "
            "ViT-L): batch 1024, 200 epochs, 40 warm-up, AdamW 1.5e-4 x batch/256, wd 0.05, "
            "fp16 AMP, mask 0.75; M-MAE (mu 3, double norm), U-MAE, MAE; lamb 0.01/8 (the "
            "published 8-GPU run's effective strength)",
            common={"backbone": "vit_base_patch16_224", **_MMAE_COMMON},
            methods={
                "mmae": {
                    "reg_weight": _MMAE_LAMB,
                    "gram_scale": 3.0,
                    "centering": False,
                    "double_norm": True,
                },
                "umae": {"reg_weight": _MMAE_LAMB, "double_norm": True},
                "mae": {},
            },
        ),
        Preset(
            "imagenet_vitl16",
            "ImageNet-1k ViT-L/16 (the M-MAE authors' pretrain.sh): batch 1024 (128 x 8 GPUs), "
            "200 epochs, 40 warm-up, AdamW 1.5e-4 x batch/256 = 6e-4, wd 0.05, fp16 AMP, mask "
            "0.75, TCR mu 3, no centering, double norm, lamb 0.01/8 (their gather's effective "
            "strength with a correct gradient)",
            common={
                "backbone": "vit_large_patch16_224",  # MMAE pretrain.sh --model mae_vit_large
                **_MMAE_COMMON,
            },
            methods={
                "mmae": {
                    "reg_weight": _MMAE_LAMB,  # MMAE pretrain.sh --lamb 1e-2, divided by 8 (above)
                    "gram_scale": 3.0,  # MMAE pretrain.sh --uniformity_mu 3
                    "centering": False,  # MMAE pretrain.sh --centering False
                    "double_norm": True,  # MMAE models_mae.py:230 self.norm(latent)
                },
                "umae": {"reg_weight": _MMAE_LAMB, "double_norm": True},
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
