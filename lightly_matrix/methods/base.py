"""What every pretraining module shares: backbones, the optimiser and schedule, the online probe,
and the per-epoch collapse diagnostics.

Each method file (``matrix_ssl.py``, ``corinfomax.py``, ...) defines only its architecture, its own
hyper-parameters and its ``training_step``, in the style of Lightly's benchmark modules. The
arguments every method shares (backbone, batch, optimiser, schedule) are declared and documented
once, in :class:`SharedArgs`; a method's ``recipe`` gives its paper's values for them. All
hyper-parameters are stored with ``save_hyperparameters`` in every checkpoint next to ``method``
and ``backbone`` (the contract the mmdet exporter reads).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar, TypedDict

import torch
import torchvision
from lightly.models.modules.masked_vision_transformer_timm import MaskedVisionTransformerTIMM
from lightly.models.utils import get_weight_decay_parameters, update_momentum
from lightly.utils.benchmarking import OnlineLinearClassifier
from lightly.utils.lars import LARS
from pytorch_lightning import LightningModule
from torch import Tensor, nn

from lightly_matrix.functional import effective_rank, matrix_entropy
from lightly_matrix.methods._schedules import WARMUP_STYLES, cosine, warmup_cosine
from lightly_matrix.utils.checks import check_positive_int
from lightly_matrix.utils.deprecation import rename_kwargs, resolve_renamed

RESNETS = {"resnet18": torchvision.models.resnet18, "resnet50": torchvision.models.resnet50}
OPTIMIZERS = ("sgd", "lars", "adamw")
#: ``lr`` is per 256 images of the global batch (``"linear"``) or used as given (``"none"``).
LR_SCALINGS = ("linear", "none")
#: The lr schedule is stepped after every optimizer step or after every epoch.
LR_INTERVALS = ("step", "epoch")
#: What a checkpoint written before these settings existed trained with (its hparams lack them).
LEGACY_HPARAMS: dict[str, Any] = {
    "zero_init_residual": False,
    "lr_scaling": "linear",
    "decay_norm_and_bias": False,
    "lr_interval": "step",
    "warmup_style": "fraction",
    "warmup_start_lr": 0.0,
    "final_lr": 0.0,
    # The kNN probe of the CLI's frozen evaluation used k 20, t 0.1 before they were arguments.
    "knn_k": 20,
    "knn_t": 0.1,
}
SGD_MOMENTUM = 0.9
ADAMW_BETAS = (0.9, 0.95)
#: ResNet input stems: torchvision's ImageNet stem (7x7 stride-2 conv + max-pool, what mmdet's
#: ResNet loads) or the CIFAR stem of CorInfoMax's CIFAR code (3x3 stride-1 conv, no max-pool).
STEMS = ("imagenet", "cifar")


class SharedArgs(TypedDict, total=False):
    """The constructor arguments every method accepts (keyword-only), declared once.

    Their defaults are :data:`SHARED_DEFAULTS`, overridden per method by its ``recipe`` (the
    paper's ImageNet run), so that a module built with only the arguments of Lightly's benchmark
    harness (``batch_size_per_device``, ``num_classes``) is its paper's run.

    Attributes:
        backbone: ``resnet18``, ``resnet50`` or a timm ViT name (``vit_*``).
        num_classes: Classes of the online linear probe (0 or 1: no probe).
        batch_size_per_device: Batch on each device; the global batch is this x the world size.
        image_size: Input size (the ViT position embeddings).
        patch_size: ViT patch size (``None``: the model's own at >= 128 px, else image_size / 8).
        stem: ResNet stem: ``imagenet`` (7x7 stride-2 conv + max-pool; what mmdet's ResNet
            loads) or ``cifar`` (3x3 stride-1 conv, no max-pool; 32 px images, not
            transferable). ResNet methods only.
        zero_init_residual: Zero-initialise the last BatchNorm of each residual block. ResNet
            methods only.
        optimizer: ``sgd``, ``lars`` or ``adamw``.
        lr: Learning rate: per 256 images of the global batch (``lr_scaling="linear"``) or the
            peak lr as given (``"none"``).
        weight_decay: Weight decay.
        warmup_epochs: Linear warm-up length in epochs.
        lr_scaling: ``"linear"`` or ``"none"``, see ``lr``.
        lr_interval: Step the lr schedule per optimizer ``"step"`` or per ``"epoch"``.
        warmup_style: ``"linspace"`` (the peak at the last warm-up unit) or ``"fraction"`` (the
            peak right after it); see :mod:`lightly_matrix.methods._schedules`.
        warmup_start_lr: The lr at the first warm-up unit.
        final_lr: The lr the cosine decays to at the end of the run.
        decay_norm_and_bias: Weight-decay every parameter (``True``) or leave biases and norm
            parameters out (``False``, Lightly's rule).
        gather_distributed: Gather embeddings over all processes in the loss (DDP); without a
            process group the local batch is used, as in Lightly's losses.
        knn_k: Neighbours of the kNN probe (Lightly's ``BenchmarkModule`` argument; the CLI's
            frozen evaluation uses it).
        knn_t: Temperature of the kNN probe's weighted votes (likewise).
    """

    backbone: str
    num_classes: int
    batch_size_per_device: int
    image_size: int
    patch_size: int | None
    stem: str
    zero_init_residual: bool
    optimizer: str
    lr: float
    weight_decay: float
    warmup_epochs: float
    lr_scaling: str
    lr_interval: str
    warmup_style: str
    warmup_start_lr: float
    final_lr: float
    decay_norm_and_bias: bool
    gather_distributed: bool
    knn_k: int
    knn_t: float


#: Defaults of :class:`SharedArgs`; every method's ``recipe`` sets at least ``lr`` and
#: ``weight_decay`` on top. ``knn_k``/``knn_t`` are Lightly's ``BenchmarkModule`` defaults.
SHARED_DEFAULTS: dict[str, Any] = {
    "backbone": "resnet50",
    "num_classes": 1000,
    "batch_size_per_device": 256,
    "image_size": 224,
    "patch_size": None,
    "stem": "imagenet",
    "zero_init_residual": False,
    "optimizer": "sgd",
    "warmup_epochs": 10.0,
    "lr_scaling": "linear",
    "lr_interval": "step",
    "warmup_style": "fraction",
    "warmup_start_lr": 0.0,
    "final_lr": 0.0,
    "decay_norm_and_bias": False,
    "gather_distributed": False,
    "knn_k": 200,
    "knn_t": 0.1,
}
#: Shared arguments that only a ResNet has (the masked ViT methods do not take them).
RESNET_ARGS = ("stem", "zero_init_residual")


def is_vit(name: str) -> bool:
    """Whether ``name`` is a timm Vision Transformer (``vit_*``), not a torchvision ResNet."""
    return name.startswith("vit")


def check_backbone(name: str) -> None:
    """Raises ``ValueError`` unless ``name`` is resnet18, resnet50 or a timm ``vit_*`` model."""
    if name in RESNETS:
        return
    if is_vit(name):
        import timm

        if timm.is_model(name):
            return
    raise ValueError(
        f"unknown backbone {name!r}; use resnet18, resnet50 or a timm ViT such as "
        f"vit_tiny_patch16_224"
    )


def default_patch_size(name: str, image_size: int) -> int:
    """The ViT patch size: the model's own at >= 128 px, else ``image_size // 8`` (64 tokens)."""
    if image_size >= 128:
        return int(name.split("patch")[1].split("_")[0]) if "patch" in name else 16
    return max(1, image_size // 8)


def check_patch_size(image_size: int, patch_size: int) -> None:
    """Raises ``ValueError`` unless ``image_size`` is a whole number of ``patch_size`` patches.

    timm would drop the remainder rows and columns silently, and Lightly's MAE patchify asserts.
    """
    check_positive_int("patch_size", patch_size, hint="or None: automatic")
    if image_size % patch_size:
        fits = [n * patch_size for n in (image_size // patch_size, image_size // patch_size + 1)]
        sizes = " or ".join(str(n) for n in fits if n >= 8)
        raise ValueError(
            f"image size {image_size} is not a multiple of the ViT patch size {patch_size}; use"
            f" image size {sizes or 8 * patch_size}, or a patch_size that divides {image_size}"
        )


def check_stem(stem: str, name: str) -> None:
    """Raises ``ValueError`` unless ``stem`` is one of :data:`STEMS` and fits backbone ``name``."""
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; use one of {', '.join(STEMS)}")
    if stem != "imagenet" and is_vit(name):
        raise ValueError(
            f"stem={stem!r} applies to ResNets only; a ViT's input layer is its patch embedding"
            " (set patch_size instead)"
        )


def check_recipe(hparams: dict[str, Any]) -> None:
    """Raises ``ValueError`` for optimiser or schedule settings no module can train with."""
    checks = (
        ("optimizer", OPTIMIZERS),
        ("lr_scaling", LR_SCALINGS),
        ("lr_interval", LR_INTERVALS),
        ("warmup_style", WARMUP_STYLES),
    )
    for key, allowed in checks:
        if key in hparams and hparams[key] not in allowed:
            raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {hparams[key]!r}")
    for key in ("lr", "weight_decay", "warmup_epochs", "warmup_start_lr", "final_lr"):
        value = hparams.get(key)
        if value is not None and not (value >= 0 and value < float("inf")):
            raise ValueError(f"{key} must be a finite number >= 0, got {value}")
    knn_k, knn_t = hparams.get("knn_k", 1), hparams.get("knn_t", 1.0)
    check_positive_int("knn_k", knn_k, hint="Lightly uses 200")
    if not (knn_t > 0 and knn_t < float("inf")):
        raise ValueError(f"knn_t must be a finite number > 0 (Lightly uses 0.1), got {knn_t!r}")


def build_backbone(
    name: str,
    image_size: int = 224,
    patch_size: int | None = None,
    stem: str = "imagenet",
    zero_init_residual: bool = False,
) -> tuple[nn.Module, int]:
    """Builds a randomly initialised backbone in Lightly's layout.

    ResNets are ``nn.Sequential(*children()[:-1])`` of torchvision's model, so ``backbone.0`` is
    conv1, ``backbone.1`` bn1 and ``backbone.4``..``backbone.7`` layer1..4. With the default
    ImageNet stem (7x7 stride-2 conv + max-pool) this is what the mmdet exporter maps. The CIFAR
    stem replaces conv1 by a 3x3 stride-1 conv and the max-pool (``backbone.3``) by an identity,
    as CorInfoMax's CIFAR code does; it keeps 32 px images at 32x32 in layer1 instead of 8x8,
    but mmdet's ResNet cannot load it. ViTs are timm models wrapped in Lightly's
    ``MaskedVisionTransformerTIMM`` (keys ``backbone.vit.*``), which accepts token masks.

    Args:
        name: ``resnet18``, ``resnet50`` or a timm ViT name, e.g. ``vit_tiny_patch16_224``.
        image_size: Input size; sets the ViT's position embeddings.
        patch_size: ViT patch size; ``None`` picks :func:`default_patch_size`.
        stem: ResNet stem, ``"imagenet"`` or ``"cifar"`` (ViTs: ``"imagenet"`` only).
        zero_init_residual: Zero the last BatchNorm of every residual block (torchvision's
            option; what the Matrix-SSL and CorInfoMax authors' ResNets use). ResNets only.

    Returns:
        The backbone (output ``(batch, dim)`` after ``flatten(1)``) and its feature dimension.

    Raises:
        ValueError: Unknown backbone or stem, the CIFAR stem with a ViT, or an image size that
            is not a multiple of the patch size.

    Examples:
        >>> backbone, dim = build_backbone("resnet18", stem="cifar")
        >>> backbone[0].kernel_size, type(backbone[3]).__name__, dim
        ((3, 3), 'Identity', 512)
    """
    check_backbone(name)
    check_stem(stem, name)
    if zero_init_residual and is_vit(name):
        raise ValueError("zero_init_residual applies to ResNets only; set it to False for a ViT")
    if name in RESNETS:
        resnet = RESNETS[name](zero_init_residual=zero_init_residual)
        if stem == "cifar":
            resnet.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            # torchvision's initialisation of its convolutions.
            nn.init.kaiming_normal_(resnet.conv1.weight, mode="fan_out", nonlinearity="relu")
            resnet.maxpool = nn.Identity()  # type: ignore[assignment]
        return nn.Sequential(*list(resnet.children())[:-1]), int(resnet.fc.in_features)
    import timm

    # 0 is a wrong value to refuse, not "automatic" (that is None).
    patch_size = default_patch_size(name, image_size) if patch_size is None else patch_size
    check_patch_size(image_size, patch_size)
    vit: Any = timm.create_model(
        name, pretrained=False, num_classes=0, img_size=image_size, patch_size=patch_size
    )
    backbone = MaskedVisionTransformerTIMM(vit=vit)
    # Tokens are dropped (idx_keep), never replaced, so the encoder's mask token gets no gradient;
    # freezing it keeps DDP from waiting for it.
    backbone.mask_token.requires_grad_(False)
    return backbone, int(vit.embed_dim)


class PretrainModule(LightningModule):
    """Base of the pretraining modules.

    A method's ``__init__`` takes its own hyper-parameters as keyword-only arguments and the
    :class:`SharedArgs` as ``**shared``; it calls ``super().__init__()``,
    ``self.save_hyperparameters()`` and then :meth:`_init_common`, which completes, renames and
    checks the hyper-parameters, and builds the backbone and the online probe. After that the
    method reads every value from ``self.hparams``.

    Subclasses set ``self.backbone`` (online backbone), ``self.online_classifier`` (or ``None``),
    and implement ``training_step``, calling :meth:`online_probe` and :meth:`track_embeddings`.
    Methods with an EMA teacher list their (student, teacher) pairs in :meth:`ema_pairs`; the
    teacher is updated after every optimizer step (as the Matrix-SSL authors' script does) with
    the cosine momentum of :meth:`teacher_momentum`.

    The optimisation hyper-parameters read here: ``batch_size_per_device``, ``optimizer``,
    ``lr`` (per 256 images of the global batch with ``lr_scaling="linear"``, absolute with
    ``"none"``), ``weight_decay`` and ``decay_norm_and_bias`` (decay every parameter, or leave
    biases and norms out as Lightly does), and the schedule: ``warmup_epochs``,
    ``warmup_start_lr``, ``final_lr``, ``warmup_style`` and ``lr_interval`` (see
    :mod:`lightly_matrix.methods._schedules`). Checkpoints written before a setting existed
    resume with :data:`LEGACY_HPARAMS`.
    """

    #: Name of the method in the CLI and in checkpoints (``hparams["method"]``).
    method: ClassVar[str] = ""
    #: The augmentation recipe of the method's paper run (a key of
    #: :data:`lightly_matrix.data.transforms.RECIPES`); ``METHODS[name]["transform"]`` builds it.
    default_transform: ClassVar[str] = ""
    #: The method's paper run: its values of the :class:`SharedArgs` (at least lr and decay).
    recipe: ClassVar[dict[str, Any]] = {}
    #: Old hyper-parameter names -> new ones; the old still work, with a DeprecationWarning.
    renamed: ClassVar[dict[str, str]] = {}
    #: Whether the method trains a ViT only (it then takes no ResNet-only shared argument).
    vit_only: ClassVar[bool] = False
    backbone: nn.Module
    online_classifier: OnlineLinearClassifier | None

    @classmethod
    def hparam_defaults(cls) -> dict[str, Any]:
        """Every hyper-parameter with its default: the shared ones (with the recipe), then the
        method's own (its keyword-only constructor arguments)."""
        shared = {**SHARED_DEFAULTS, **cls.recipe}
        if cls.vit_only:
            shared = {k: v for k, v in shared.items() if k not in RESNET_ARGS}
        own = {
            name: param.default
            for name, param in inspect.signature(cls.__init__).parameters.items()
            if param.kind is inspect.Parameter.KEYWORD_ONLY
        }
        return {**shared, **own}

    @classmethod
    def rename_hparams(cls, hparams: Mapping[str, Any], stacklevel: int = 2) -> dict[str, Any]:
        """``hparams`` with deprecated names replaced (a ``DeprecationWarning`` for each)."""
        return rename_kwargs(cls.__name__, cls.renamed, hparams, stacklevel=stacklevel + 1)

    def _init_common(self) -> int:
        """Completes ``self.hparams`` (renamed, shared defaults, ``method``) and checks it; builds
        the backbone and the online probe. Returns the backbone's feature dimension."""
        given = dict(self.hparams)
        method = given.pop("method", self.method)  # load_from_checkpoint passes it back
        if method != self.method:
            raise ValueError(f"hparams of method {method!r} given to {type(self).__name__}")
        defaults = self.hparam_defaults()
        # Own arguments are all in hparams (at their defaults if not given); old names came in
        # through **shared.
        old = {k: given.pop(k) for k in list(given) if k in self.renamed}
        new = {n: given.get(n, defaults[n]) for n in self.renamed.values()}
        given.update(
            resolve_renamed(type(self).__name__, self.renamed, old, new, defaults, stacklevel=3)
        )
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got an unexpected keyword argument {unknown[0]!r}; "
                f"it accepts: {', '.join(defaults)}"
            )
        hparams = {**defaults, **given, "method": self.method}
        self.hparams.clear()  # save_hyperparameters(dict) updates: drop the old names first
        self.save_hyperparameters(hparams)
        check_recipe(hparams)
        if self.vit_only and not is_vit(hparams["backbone"]):
            raise ValueError(
                f"{self.method} needs a ViT backbone (e.g. vit_tiny_patch16_224), "
                f"got {hparams['backbone']!r}"
            )
        self.backbone, feature_dim = build_backbone(
            hparams["backbone"],
            hparams["image_size"],
            hparams["patch_size"],
            hparams.get("stem", "imagenet"),
            hparams.get("zero_init_residual", False),
        )
        num_classes = hparams["num_classes"]
        # The online probe trains on detached features (Lightly's benchmarks); it needs labels.
        self.online_classifier = (
            OnlineLinearClassifier(
                feature_dim=feature_dim, num_classes=num_classes, topk=(1, min(5, num_classes))
            )
            if num_classes > 1
            else None
        )
        self._last_embeddings: dict[str, Tensor] = {}
        self._momentum: float | None = None
        return feature_dim

    def setting(self, key: str) -> Any:
        """An optimisation hyper-parameter, or its legacy value for an older checkpoint."""
        return self.hparams[key] if key in self.hparams else LEGACY_HPARAMS[key]

    def forward(self, x: Tensor) -> Tensor:
        """Frozen-feature view of the online backbone: ``(batch, feature_dim)``."""
        return self.backbone(x).flatten(start_dim=1)

    # ----------------------------------------------------------------------------- training helpers
    def online_probe(self, features: Tensor, targets: Tensor, batch_idx: int) -> Tensor:
        """Trains the online probe on detached features; returns its loss (0 without labels)."""
        if self.online_classifier is None or bool((targets < 0).any()):
            return features.new_zeros(())
        cls_loss, cls_log = self.online_classifier.training_step(
            (features.detach(), targets), batch_idx
        )
        self.log_dict(cls_log, sync_dist=True, batch_size=len(targets))
        return cls_loss

    def log_loss(self, name: str, value: Tensor, batch_size: int, prog_bar: bool = False) -> None:
        """Logs a scalar per step and per epoch."""
        self.log(
            name,
            value,
            prog_bar=prog_bar,
            sync_dist=True,
            batch_size=batch_size,
            on_step=True,
            on_epoch=True,
        )

    def track_embeddings(self, **embeddings: Tensor) -> None:
        """Keeps the last batch's embeddings for the end-of-epoch collapse diagnostics."""
        self._last_embeddings = {name: value.detach() for name, value in embeddings.items()}

    def on_train_epoch_end(self) -> None:
        """Logs matrix entropy and effective rank of the last batch's embeddings (collapse)."""
        for name, value in self._last_embeddings.items():
            value = value.float()
            if value.ndim != 2 or value.shape[0] < 2:
                continue
            self.log(f"diag/{name}_matrix_entropy", matrix_entropy(value).float(), sync_dist=True)
            self.log(f"diag/{name}_effective_rank", effective_rank(value).float(), sync_dist=True)
        self._last_embeddings = {}

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """Evaluates the online probe on held-out images (when the data has labels)."""
        images, targets = batch[0], batch[1]
        if self.online_classifier is None or bool((targets < 0).any()):
            return
        _, cls_log = self.online_classifier.validation_step(
            (self.forward(images).detach(), targets), batch_idx
        )
        self.log_dict(cls_log, prog_bar=True, sync_dist=True, batch_size=len(targets))

    # ------------------------------------------------------------------------------- EMA teacher
    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(student, teacher) module pairs updated by EMA after each step; none by default."""
        return []

    def teacher_momentum(self, step: int) -> float:
        """Cosine from ``momentum_start`` (step 0) to ``momentum_end`` (the last step)."""
        total = int(self.trainer.estimated_stepping_batches)
        return cosine(step, total, self.hparams["momentum_start"], self.hparams["momentum_end"])

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Fixes this step's teacher momentum (from the global step, so a resume continues)."""
        if self.ema_pairs():
            self._momentum = self.teacher_momentum(self.trainer.global_step)
            self.log("momentum", self._momentum, batch_size=1)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The optimizer step, then the teacher's EMA update (before any checkpoint is written)."""
        super().optimizer_step(*args, **kwargs)
        if self._momentum is not None:
            for student, teacher in self.ema_pairs():
                update_momentum(student, teacher, m=self._momentum)

    # -------------------------------------------------------------------------------- optimisation
    def trainable_modules(self) -> list[nn.Module]:
        """Modules optimised by the main loss: all but the online probe and frozen copies."""
        return [
            module
            for name, module in self.named_children()
            if name != "online_classifier" and any(p.requires_grad for p in module.parameters())
        ]

    def peak_lr(self, world_size: int) -> float:
        """The lr reached after warm-up: ``lr`` scaled to the global batch unless absolute."""
        lr = float(self.hparams["lr"])
        if self.setting("lr_scaling") == "none":
            return lr
        return lr * int(self.hparams["batch_size_per_device"]) * world_size / 256

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The optimizer's groups: decayed, not decayed (unless all are), the online probe."""
        if self.setting("decay_norm_and_bias"):
            params = [p for m in self.trainable_modules() for p in m.parameters()]
            no_decay: list[nn.Parameter] = []
        else:
            params, no_decay = get_weight_decay_parameters(self.trainable_modules())
        groups: list[dict[str, Any]] = [
            {"name": "weights", "params": [p for p in params if p.requires_grad]}
        ]
        if no_decay:
            groups.append(
                {
                    "name": "no_weight_decay",
                    "params": [p for p in no_decay if p.requires_grad],
                    "weight_decay": 0.0,
                }
            )
        if self.online_classifier is not None:
            groups.append(
                {
                    "name": "online_classifier",
                    "params": list(self.online_classifier.parameters()),
                    "weight_decay": 0.0,
                }
            )
        return groups

    def lr_at(self, index: int, total: int, units_per_epoch: float, world_size: int) -> float:
        """The lr at step (or epoch) ``index`` of ``total``: warm-up, then cosine."""
        return warmup_cosine(
            index,
            total,
            warmup=round(units_per_epoch * float(self.hparams["warmup_epochs"])),
            peak=self.peak_lr(world_size),
            start=float(self.setting("warmup_start_lr")),
            final=float(self.setting("final_lr")),
            style=self.setting("warmup_style"),
        )

    def configure_optimizers(self) -> Any:
        """SGD, LARS or AdamW with the warm-up + cosine schedule, per step or per epoch."""
        hp = self.hparams
        check_recipe(dict(hp))
        world_size = self.trainer.world_size
        peak = self.peak_lr(world_size)
        groups = self.parameter_groups()
        if hp["optimizer"] == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                groups, lr=peak, momentum=SGD_MOMENTUM, weight_decay=hp["weight_decay"]
            )
        elif hp["optimizer"] == "lars":
            optimizer = LARS(
                groups, lr=peak, momentum=SGD_MOMENTUM, weight_decay=hp["weight_decay"]
            )
        else:
            optimizer = torch.optim.AdamW(
                groups, lr=peak, betas=ADAMW_BETAS, weight_decay=hp["weight_decay"]
            )
        interval = self.setting("lr_interval")
        epochs = max(1, self.trainer.max_epochs or 1)
        steps = int(self.trainer.estimated_stepping_batches)
        total, per_epoch = (epochs, 1.0) if interval == "epoch" else (steps, steps / epochs)

        # A closure (not a callable object), so that a resumed run's scheduler state does not
        # bring back the old run's length: --resume with more epochs stretches the schedule.
        def factor(index: int) -> float:
            return self.lr_at(index, total, per_epoch, world_size) / peak if peak > 0 else 0.0

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return [optimizer], [{"scheduler": scheduler, "interval": interval}]
