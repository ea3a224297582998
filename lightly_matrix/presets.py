"""Named pretraining settings: the authors' runs, value by value, and a short run on the digits.

Keys in :data:`RUN_KEYS` configure the run, the others are the method's constructor arguments.
A paper value's comment is its source (shown in the docs): ``MSSL`` yifanzhang-pro/Matrix-SSL,
``CIM`` serdarozsoy/corinfomax-ssl, ``MMAE`` yifanzhang-pro/M-MAE, read on 2026-12-02. Batch sizes
are TOTAL over all GPUs; where the sources disagree, the published code wins (docs/presets.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Settings of the run, not the module: preset key (and flag) -> field of
#: :class:`~lightly_matrix.pretrain.config.RunConfig`.
RUN_KEYS = {
    "image_size": "image_size",
    "batch_size": "global_batch_size",
    "epochs": "epochs",
    "precision": "precision",
    "transform": "transform",
    "crop_min_scale": "crop_min_scale",
}

#: The optimisation the digits search (benchmarks/tune_digits.py) ran with.
_DIGITS_RESNET = {
    "zero_init_residual": False,
    "decay_norm_and_bias": False,
    "lr_scaling": "linear",
    "lr_interval": "step",
    "warmup_style": "fraction",
    "warmup_start_lr": 0.0,
    "final_lr": 0.0,
    "hidden_dim": 1024,
    "output_dim": 1024,
}
#: The teacher methods on the digits: Matrix-SSL's tuned settings (BYOL and MEC are untuned).
_DIGITS_TEACHER = {
    **_DIGITS_RESNET,
    "pred_hidden_dim": 256,
    # A teacher starting at 0.996 barely leaves its random init in ~100 steps.
    "momentum_start": 0.99,
    # Validation search (benchmarks/results/tune_digits-5ep): lr {1, 3} x gamma {1, 0.5}.
    "lr": 3.0,
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


def _corinfomax(
    projector: str, alpha: float, la: float, lr: float, final_lr: float, **more: Any
) -> dict[str, dict[str, Any]]:
    """CIM README's ``--projector H-H-D --sim_loss_weight alpha --la_R la --la_mu la
    --learning_rate lr --min_lr final_lr --w_decay 1e-4``."""
    hidden, _, output = projector.rpartition("-")
    settings = {
        "hidden_dim": int(hidden.split("-")[0]),
        "output_dim": int(output),
        "proj_batch_norm": False,
        "alpha": alpha,
        "cov_momentum": la,
        "mean_momentum": la,
        "lr": lr,
        "weight_decay": 1e-4,
        "final_lr": final_lr,
    }
    return {"corinfomax": {**settings, **more}}


_IMAGENET100 = {
    "image_size": 224,
    "transform": "corinfomax",
    # CIM README --batch_size 1024, the TOTAL: imagenet100_resnet18/pretrain/main_traintest_cov_
    # online_multi3_lin_img100_wmse_resnet18.py:46-47 gives each GPU --batch_size // world_size.
    "batch_size": 1024,
}

# M-MAE's all-gather (MMAE loss_func.py GatherLayer.backward) keeps only the local gradient, so
# over 8 GPUs its regulariser acted with lamb 0.01 / 8; our gather keeps every rank's gradient.
_MMAE_LAMB = 0.01 / 8
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
_MMAE_METHODS = {
    "mmae": {
        "reg_weight": _MMAE_LAMB,  # MMAE pretrain.sh --lamb 1e-2, divided by 8 (above)
        "gram_scale": 3.0,  # MMAE pretrain.sh --uniformity_mu 3
        # pretrain.sh gives this store_true flag a stray "False"; the script runs its default.
        "centering": False,  # MMAE main_pretrain.py: the store_true flag's default
        "double_norm": True,  # MMAE models_mae.py:230 self.norm(latent)
    },
    "umae": {"reg_weight": _MMAE_LAMB, "double_norm": True},
    "mae": {},
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
        return {**self.common, **self.methods[method]}


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in [
        Preset(
            "digits",
            "ours: offline digits, 32 px, 5 epochs (1-4 minutes on 2 CPU cores), lr and weight "
            "tuned on the validation split; ResNet-18 (ImageNet stem), ViT-Tiny with 4 px patches",
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
                # The search ran with the README command's target_scale/ridge 1.0 and kept gamma 1.
                "matrix_ssl": {**_DIGITS_TEACHER, "target_scale": 1.0, "ridge": 1.0},
                # Validation search: lr {0.5, 1.5} (per 256) x alpha {250, 1000}; lr stays 0.5.
                "corinfomax": {
                    **_DIGITS_RESNET,
                    "output_dim": 64,
                    "proj_batch_norm": False,
                    "lr": 0.5,
                    "alpha": 1000.0,
                    "cov_momentum": 0.01,
                    "mean_momentum": 0.01,
                },
                # Validation search: lr {0.2, 0.6} x lambda {5e-3, 2e-2}; lambda stays 5e-3.
                "barlowtwins": {**_DIGITS_RESNET, "lr": 0.6},
                # Search at wd 1e-4: lr {0.3, 0.9} x (lambda, mu, nu) {(25, 25, 1), (10, 10, 1)}.
                "vicreg": {**_DIGITS_RESNET, "lr": 0.9, "weight_decay": 1e-4},
                **dict.fromkeys(("mmae", "umae", "mae"), _DIGITS_VIT),
                **dict.fromkeys(("byol", "mec"), _DIGITS_TEACHER),
            },
        ),
        Preset(
            "cifar10_r18",
            "CorInfoMax CIFAR-10 ResNet-18 (authors' README command; CIFAR stem)",
            common={
                "backbone": "resnet18",  # CIM README CIFAR-10: --model_name resnet18
                "image_size": 32,  # CIM cifars-tiny/transform_utils.py:31 random_crop_size 32
                "transform": "corinfomax_cifar10",  # CIM transform_utils.py:22-60 (bicubic, 0.08)
                # CIM cifars-tiny/model_base_resnet.py:16-19: 3x3 stride-1 conv, no max-pool,
                # resnet18(zero_init_residual=True) (not mmdet-loadable).
                "stem": "cifar",
                "batch_size": 512,  # CIM README: --batch_size 512 (one GPU)
                "epochs": 1000,  # CIM README: --epochs 1000
            },
            methods=_corinfomax("2048-2048-64", 250.0, 0.01, lr=0.5, final_lr=1e-6),
        ),
        Preset(
            "cifar100_r18",
            "CorInfoMax CIFAR-100 ResNet-18 (authors' README command; CIFAR stem)",
            common={
                "backbone": "resnet18",  # CIM README CIFAR-100: --model_name resnet18
                "image_size": 32,
                "transform": "corinfomax_cifar100",  # CIM transform_utils.py:26-29 (CIFAR-100)
                "stem": "cifar",  # CIM model_base_resnet.py:16-19
                "batch_size": 512,  # CIM README: --batch_size 512
                "epochs": 1000,  # CIM README: --epochs 1000
            },
            methods=_corinfomax("4096-4096-128", 1000.0, 0.01, lr=0.5, final_lr=1e-6),
        ),
        Preset(
            "tinyimagenet_r50",
            "CorInfoMax Tiny-ImageNet ResNet-50, 64 px (authors' README command)",
            common={
                "backbone": "resnet50",  # CIM README Tiny ImageNet: --model_name resnet50
                "image_size": 64,  # CIM transform_utils.py:35 random_crop_size 64
                "transform": "corinfomax",  # CIM transform_utils.py: ImageNet mean/std, bicubic
                "batch_size": 1024,  # CIM README: --batch_size 1024
                "epochs": 800,  # CIM README: --epochs 800
            },
            methods=_corinfomax("4096-4096-128", 500.0, 0.1, lr=0.5, final_lr=1e-6),
        ),
        Preset(
            "imagenet100_r18",
            "CorInfoMax ImageNet-100 ResNet-18 (authors' README command, 8 GPUs)",
            common={"backbone": "resnet18", **_IMAGENET100, "epochs": 400},  # CIM README
            methods=_corinfomax("4096-4096-128", 500.0, 0.01, lr=1.0, final_lr=5e-3),
        ),
        Preset(
            "imagenet100_r50",
            "CorInfoMax ImageNet-100 ResNet-50 (authors' README command, 8 GPUs)",
            common={"backbone": "resnet50", **_IMAGENET100, "epochs": 200},  # CIM README
            methods=_corinfomax(
                "4096-4096-128", 500.0, 0.01, lr=1.0, final_lr=5e-3, warmup_epochs=5.0
            ),
        ),
        Preset(
            "imagenet_r50",
            "ImageNet-1k ResNet-50, 100 epochs: Matrix-SSL (authors' pretrain.sh), CorInfoMax "
            "(authors' command), MEC and BYOL on Matrix-SSL's recipe, Lightly's BarlowTwins/VICReg",
            common={
                "backbone": "resnet50",  # MSSL README -a resnet50; CIM README --model_name
                "image_size": 224,
                "epochs": 100,  # MSSL main_pretrain.py:57 default; CIM README --epochs 100
                "warmup_epochs": 10.0,  # MSSL main_pretrain.py:303; CIM parsing_file_dist.py:44
                "batch_size": 1024,  # MSSL main_pretrain.py:61, MEC -b 1024 (total)
            },
            methods={
                # lr 0.5 per 256 (MSSL main_pretrain.py:66,191), wd 1e-5 on model.parameters()
                # (:70), heads 2048-2048-2048 / 512 (mec/builder.py, --dim, --pred-dim), teacher
                # 0.996 -> 1 (:118, :299), Taylor order 4 (:113), target_scale = ridge = 0.5
                # (pretrain.sh --mce_lambd 0.5 --mce_mu 0.5), gamma 1: the module's defaults.
                "matrix_ssl": {
                    "transform": "mocov3",  # MSSL main_pretrain.py:253-277: crops (0.2, 1)
                    "precision": "32-true",  # MSSL: no autocast in main_pretrain.py
                },
                "corinfomax": {
                    "batch_size": 1536,  # CIM README ImageNet-1K: --batch_size 1536 (total)
                    "final_lr": 1e-6,  # CIM README: --min_lr 1e-6
                    # lr 0.2, wd 1e-4, projector 8192-8192-512 with BN (model_base_resnet_bn.py),
                    # alpha 2000, la_R = la_mu = 0.1: the module's defaults.
                    "precision": "16-mixed",  # CIM README: --amp (GradScaler)
                    "transform": "corinfomax",  # CIM imagenet1k/transform_utils3.py (bicubic)
                },
                # MEC (xinliu20/MEC main_pretrain.py, mec/builder.py; the same files as in MSSL):
                # the Matrix-SSL recipe with MEC's loss (eps^2 64, order 4), the module's defaults.
                "mec": {"transform": "mocov3", "precision": "32-true"},
                # Ours: BYOL's loss and heads on the Matrix-SSL recipe (the twin of matrix_ssl).
                "byol": {"transform": "mocov3", "precision": "32-true"},
                "barlowtwins": {"transform": "byol"},
                "vicreg": {"transform": "vicreg"},
            },
        ),
        Preset(
            "imagenet_vitb16",
            "ImageNet-1k ViT-B/16 on the M-MAE authors' ViT-L recipe: M-MAE, U-MAE, MAE",
            common={"backbone": "vit_base_patch16_224", **_MMAE_COMMON},
            methods=_MMAE_METHODS,
        ),
        Preset(
            "imagenet_vitl16",
            "ImageNet-1k ViT-L/16: M-MAE (the authors' pretrain.sh), U-MAE, MAE",
            # MMAE pretrain.sh --model mae_vit_large
            common={"backbone": "vit_large_patch16_224", **_MMAE_COMMON},
            methods=_MMAE_METHODS,
        ),
    ]
}


def describe_presets() -> str:
    """Each preset: its name and description, then every method's settings."""
    lines = []
    for preset in PRESETS.values():
        lines.append(f"{preset.name}: {preset.description}")
        for method in preset.methods:
            settings = ", ".join(f"{k}={v}" for k, v in preset.settings(method).items())
            lines.append(f"  {method}: {settings}")
    return "\n".join(lines)
