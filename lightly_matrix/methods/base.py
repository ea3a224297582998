"""What every pretraining module shares: backbones, optimiser and schedule, online probe, collapse
diagnostics, and the registry (defining a :class:`PretrainModule` subclass registers a method)."""

from __future__ import annotations

import inspect
import math
import pickle
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, TypedDict

import torch
import torchvision
from lightly.models.modules.masked_vision_transformer_timm import MaskedVisionTransformerTIMM
from lightly.models.utils import get_weight_decay_parameters
from lightly.utils.benchmarking import OnlineLinearClassifier
from lightly.utils.lars import LARS
from pytorch_lightning import LightningModule
from torch import Tensor, nn

from lightly_matrix.data.transforms import build_train_transform
from lightly_matrix.errors import UserError
from lightly_matrix.functional import effective_rank, matrix_entropy
from lightly_matrix.registry import register
from lightly_matrix.user_files import check_checkpoint_file
from lightly_matrix.utils.checks import check_number, check_positive_int

RESNETS = {"resnet18": torchvision.models.resnet18, "resnet50": torchvision.models.resnet50}
STEMS = ("imagenet", "cifar")
SGD_MOMENTUM = 0.9
FLOAT32_MAX = float(torch.finfo(torch.float32).max)
ADAMW_BETAS = (0.9, 0.95)
#: Shared arguments that only a ResNet has (the masked ViT methods do not take them).
RESNET_ARGS = ("stem", "zero_init_residual")


class SharedArgs(TypedDict, total=False):
    """The keyword-only constructor arguments of every method.

    Their defaults (:attr:`PretrainModule.shared_defaults`) are each method's paper run (harness).

    Attributes:
        backbone: ``resnet18``, ``resnet50`` or a timm ViT name (``vit_*``).
        num_classes: Classes of the online linear probe (0 or 1: no probe).
        batch_size_per_device: Batch on each device; the global batch is this x the world size.
        image_size: Input size (the ViT position embeddings).
        patch_size: ViT patch size (``None``: the model's own at >= 128 px, else image_size / 8).
        stem: ``imagenet`` (mmdet-loadable) or ``cifar`` (3x3 stride-1 conv, no max-pool; 32 px).
        zero_init_residual: Zero-initialise the last BatchNorm of each residual block.
        optimizer: ``sgd``, ``lars`` or ``adamw``.
        lr: Per 256 images of the global batch (``lr_scaling="linear"``) or as given (``"none"``).
        weight_decay: Weight decay.
        warmup_epochs: Linear warm-up length in epochs.
        lr_scaling: ``"linear"`` or ``"none"``, see ``lr``.
        lr_interval: Step the lr schedule per optimizer ``"step"`` or per ``"epoch"``.
        warmup_style: Peak at the last warm-up unit (``"linspace"``) or after it (``"fraction"``).
        warmup_start_lr: The lr at the first warm-up unit.
        final_lr: The lr the cosine decays to at the end of the run.
        decay_norm_and_bias: Decay every parameter, or leave biases and norms out (Lightly's).
        gather_distributed: Gather embeddings over all processes in the loss (DDP).
        knn_k: Neighbours of the kNN probe (as Lightly's ``BenchmarkModule``).
        knn_t: Temperature of the kNN probe's votes.
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


def is_vit(name: str) -> bool:
    """Whether ``name`` is a timm Vision Transformer (``vit_*``), not a torchvision ResNet."""
    return name.startswith("vit")


def default_patch_size(name: str, image_size: int) -> int:
    """The ViT patch size: the model's own at >= 128 px, else ``image_size // 8`` (64 tokens)."""
    if image_size >= 128:
        return int(name.split("patch")[1].split("_")[0]) if "patch" in name else 16
    return max(1, image_size // 8)


def check_backbone(
    name: str,
    image_size: int = 224,
    patch_size: int | None = None,
    stem: str = "imagenet",
    zero_init_residual: bool = False,
) -> int | None:
    """A ViT's patch size (``None``: a ResNet); ``ValueError`` for a backbone it cannot build."""
    known = name in RESNETS
    if not known and is_vit(name):
        import timm

        known = timm.is_model(name)
    if not known:
        raise ValueError(
            f"unknown backbone {name!r}; use resnet18, resnet50 or a timm ViT such as "
            "vit_tiny_patch16_224"
        )
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; use one of {', '.join(STEMS)}")
    if not is_vit(name):
        if patch_size is not None:
            raise ValueError(f"patch_size applies to ViTs only; drop it for {name}")
        return None
    if stem != "imagenet":
        raise ValueError(
            f"stem={stem!r} applies to ResNets only; a ViT's input layer is its patch embedding"
            " (set patch_size instead)"
        )
    if zero_init_residual:
        raise ValueError("zero_init_residual applies to ResNets only; set it to False for a ViT")
    # timm would drop the remainder rows and columns silently, and Lightly's patchify asserts.
    patch = default_patch_size(name, image_size) if patch_size is None else patch_size
    check_positive_int("patch_size", patch, hint="or None: automatic")
    if image_size % patch:
        fits = [n * patch for n in (image_size // patch, image_size // patch + 1) if n * patch >= 8]
        raise ValueError(
            f"image size {image_size} is not a multiple of the ViT patch size {patch}; use image "
            f"size {' or '.join(map(str, fits)) or 8 * patch}, or a patch_size that divides it"
        )
    return patch


def _backbone_options(hparams: dict[str, Any]) -> dict[str, Any]:
    """The :func:`build_backbone` arguments among ``hparams`` (a ViT method has no ResNet's)."""
    return {k: hparams[k] for k in ("image_size", "patch_size", *RESNET_ARGS) if k in hparams}


def build_backbone(
    name: str,
    image_size: int = 224,
    patch_size: int | None = None,
    stem: str = "imagenet",
    zero_init_residual: bool = False,
) -> tuple[nn.Module, int]:
    """Builds a randomly initialised backbone in Lightly's layout; arguments as :class:`SharedArgs`.

    ResNets are torchvision's ``children()[:-1]`` in an ``nn.Sequential`` (``backbone.4``..``7``:
    layer1..4, what the mmdet exporter maps); ViTs are timm models in Lightly's
    ``MaskedVisionTransformerTIMM`` (keys ``backbone.vit.*``).

    Returns:
        The backbone (output ``(batch, dim)`` after ``flatten(1)``) and its feature dimension.

    Raises:
        ValueError: For an unknown name, an option of the other kind of backbone, or an image
            size that is not a multiple of the ViT patch size.

    Examples:
        >>> backbone, dim = build_backbone("resnet18", stem="cifar")
        >>> backbone[0].kernel_size, type(backbone[3]).__name__, dim
        ((3, 3), 'Identity', 512)
    """
    patch_size = check_backbone(name, image_size, patch_size, stem, zero_init_residual)
    if name in RESNETS:
        resnet = RESNETS[name](zero_init_residual=zero_init_residual)
        if stem == "cifar":
            resnet.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            nn.init.kaiming_normal_(resnet.conv1.weight, mode="fan_out", nonlinearity="relu")
            resnet.maxpool = nn.Identity()  # type: ignore[assignment]
        return nn.Sequential(*list(resnet.children())[:-1]), int(resnet.fc.in_features)
    import timm

    vit: Any = timm.create_model(
        name, pretrained=False, num_classes=0, img_size=image_size, patch_size=patch_size
    )
    backbone = MaskedVisionTransformerTIMM(vit=vit)
    # Tokens are dropped, never replaced: the mask token gets no gradient, and DDP must not wait.
    backbone.mask_token.requires_grad_(False)
    return backbone, int(vit.embed_dim)


def cosine(index: float, total: float, start: float, end: float) -> float:
    """Half-cycle cosine from ``start`` (index 0) to ``end`` (index ``total`` and after)."""
    progress = min(max(index / total, 0.0), 1.0) if total > 0 else 1.0
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(
    index: int,
    total: int,
    warmup: int,
    peak: float,
    start: float = 0.0,
    final: float = 0.0,
    style: str = "linspace",
) -> float:
    """The authors' schedules: linear warm-up over ``warmup`` units, then cosine to ``final``.

    ``"linspace"`` peaks at the last warm-up unit, ``start + (peak - start) * i / (W - 1)``
    (Matrix-SSL, CorInfoMax); ``"fraction"`` at the next one, ``... * i / W`` (MAE, M-MAE).

    Examples:
        >>> [round(warmup_cosine(i, 10, 3, 1.0), 3) for i in (0, 1, 2, 3, 10)]
        [0.0, 0.5, 1.0, 1.0, 0.0]
        >>> round(warmup_cosine(1, 10, 4, 1.0, style="fraction"), 3)
        0.25
    """
    warmup = min(warmup, total)
    if index < warmup:
        span = warmup - 1 if style == "linspace" else warmup
        return peak if span <= 0 else start + (peak - start) * index / span
    return cosine(index - warmup, total - warmup, peak, final)


def _is_a(value: Any, kind: type) -> bool:
    """``isinstance``, but a ``bool`` is no number and an ``int`` is a ``float``."""
    if isinstance(value, bool) != (kind is bool):
        return False
    return isinstance(value, int | float if kind is float else kind)


def scaled_lr(hparams: Mapping[str, Any], world_size: int) -> float:
    """The lr reached after warm-up: ``lr`` scaled to the global batch unless absolute."""
    lr = float(hparams["lr"])
    if hparams["lr_scaling"] == "none":
        return lr
    return lr * int(hparams["batch_size_per_device"]) * world_size / 256


#: ``--method`` name -> module class, in definition order (the built-in ones in the CLI's order).
METHOD_CLASSES: dict[str, type[PretrainModule]] = {}
#: Entries for Lightly's benchmark harness (``benchmarks/imagenet/resnet50/main.py``), each
#: ``{"model": cls, "transform": train_transform}`` with the method's default transform at 224 px.
METHODS: dict[str, dict[str, Any]] = {}


class PretrainModule(LightningModule):
    """Base of the pretraining modules; a subclass with a ``method`` name registers itself.

    A method's ``__init__`` takes its own keyword-only hyper-parameters and ``**shared``
    (:class:`SharedArgs`); ``super().__init__()`` completes, checks and records them in
    ``self.hparams``, builds ``backbone`` and the probe; the method adds heads and ``criterion``.
    """

    #: Name of the method in the CLI and in checkpoints (``hparams["method"]``).
    method: ClassVar[str] = ""
    #: One masked view of a ViT (MAE family) instead of two augmented views of any backbone.
    masked: ClassVar[bool] = False
    #: Views per image (1 for masked methods, else 2; set from ``masked``).
    num_views: ClassVar[int] = 2
    #: The paper run's views, a key of :data:`lightly_matrix.data.transforms.RECIPES`.
    default_transform: ClassVar[str] = "byol"
    #: Defaults of the :class:`SharedArgs` (or an extension such as :class:`TeacherArgs`); a
    #: subclass lists what its paper run changes, merged over its parents'.
    shared_defaults: ClassVar[dict[str, Any]] = {
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
        "knn_k": 200,  # Lightly's BenchmarkModule
        "knn_t": 0.1,
    }
    backbone: nn.Module
    feature_dim: int
    projection_head: nn.Module
    criterion: nn.Module | None
    online_classifier: OnlineLinearClassifier | None

    def __init__(self) -> None:
        super().__init__()
        # Lightning collects the arguments of the calling subclasses' constructors.
        self.save_hyperparameters()
        hparams = self.check_hparams(dict(self.hparams))
        self.save_hyperparameters(hparams)
        self.backbone, self.feature_dim = build_backbone(
            hparams["backbone"], **_backbone_options(hparams)
        )
        num_classes = hparams["num_classes"]
        # The online probe trains on detached features (Lightly's benchmarks); it needs labels.
        self.online_classifier = (
            OnlineLinearClassifier(self.feature_dim, num_classes, topk=(1, min(5, num_classes)))
            if num_classes > 1
            else None
        )
        self._last_embeddings: dict[str, Tensor] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        merged: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            merged.update(vars(klass).get("shared_defaults", {}))
        cls.shared_defaults = merged
        cls.num_views = 1 if cls.masked else 2
        if "method" in vars(cls) and cls.method:
            METHOD_CLASSES[cls.method] = cls
            transform = build_train_transform(
                cls.default_transform, merged["image_size"], cls.num_views
            )
            METHODS[cls.method] = {"model": cls, "transform": transform}
            register(cls.method, f"{cls.__module__}:{cls.__qualname__}")

    @classmethod
    def hparam_defaults(cls) -> dict[str, Any]:
        """Every hyper-parameter with its default: the shared ones, then the method's own."""
        params = inspect.signature(cls.__init__).parameters.values()
        own = {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
        skip = RESNET_ARGS if cls.masked else ()
        return {**{k: v for k, v in cls.shared_defaults.items() if k not in skip}, **own}

    @classmethod
    def hparam_types(cls) -> dict[str, Any]:
        """Every hyper-parameter's annotation (``float``, ``int | None``, ...)."""
        hints = typing.get_type_hints(cls.__init__)
        (shared,) = typing.get_args(hints.pop("shared"))  # Unpack[SharedArgs or a subclass]
        hints.update(typing.get_type_hints(shared))
        return {key: hints[key] for key in cls.hparam_defaults()}

    @classmethod
    def check_hparams(cls, given: dict[str, Any]) -> dict[str, Any]:
        """``given`` completed with the defaults and checked (before a run makes its folder).

        Raises:
            TypeError: For an argument the method does not take.
            ValueError: For a value it cannot train with.
        """
        given = dict(given)
        method = given.pop("method", cls.method)  # load_from_checkpoint passes it back
        if method != cls.method:
            other = getattr(METHOD_CLASSES.get(method), "__name__", "its class")
            raise ValueError(f"{cls.__name__} got the hyper-parameters of {method!r}; use {other}")
        defaults = cls.hparam_defaults()
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise TypeError(
                f"{cls.__name__}() got an unexpected keyword argument {unknown[0]!r}; "
                f"it accepts: {', '.join(defaults)}"
            )
        hparams = {**defaults, **given}
        for key, annotation in cls.hparam_types().items():
            kinds = typing.get_args(annotation) or (annotation,)
            if not any(_is_a(hparams[key], kind) for kind in kinds):
                names = " or ".join("None" if k is type(None) else k.__name__ for k in kinds)
                raise ValueError(f"{cls.__name__}: {key} must be {names}, got {hparams[key]!r}")
        check_positive_int("batch_size_per_device", hparams["batch_size_per_device"])
        for key, allowed in (
            ("optimizer", ("sgd", "lars", "adamw")),
            ("lr_scaling", ("linear", "none")),
            ("lr_interval", ("step", "epoch")),
            ("warmup_style", ("linspace", "fraction")),
        ):
            if hparams[key] not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {hparams[key]!r}")
        for key in ("lr", "weight_decay", "warmup_epochs", "warmup_start_lr", "final_lr"):
            value = hparams[key]
            # The optimizer applies the lr to float32 weights: a larger one cannot even be stepped.
            if not 0 <= value <= FLOAT32_MAX:  # a number: checked above
                raise ValueError(f"{key} must be a number in [0, {FLOAT32_MAX:.3g}], got {value!r}")
        check_positive_int("knn_k", hparams["knn_k"], hint="Lightly uses 200")
        check_number("knn_t", hparams["knn_t"], low=0.0, low_open=True, hint="Lightly uses 0.1")
        backbone = hparams["backbone"]
        if cls.masked and not is_vit(backbone):
            raise ValueError(
                f"{cls.method} needs a ViT backbone, e.g. vit_tiny_patch16_224 (--backbone on the "
                f"command line), got {backbone!r}"
            )
        check_backbone(backbone, **_backbone_options(hparams))
        return {**hparams, "method": cls.method}

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls, checkpoint_path: Any, *args: Any, **kwargs: Any
    ) -> Any:
        """Lightning's loader, with one line for a file that is not this method's checkpoint.

        Raises:
            ValueError: A folder; a missing, empty or foreign file; another method's checkpoint.
        """
        try:
            if not hasattr(checkpoint_path, "read") and "://" not in str(checkpoint_path):
                check_checkpoint_file(checkpoint_path)
            return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)
        except UserError as err:
            raise ValueError(str(err)) from None
        except (KeyError, pickle.UnpicklingError) as err:  # the latter: e.g. an mmdet checkpoint
            if isinstance(err, KeyError) and "pytorch-lightning_version" not in str(err):
                raise
        raise ValueError(
            f"{checkpoint_path} is not a Lightning checkpoint of a pretraining run (an exported "
            "backbone or a detector's checkpoint?); pass a run's .ckpt, or read an export with"
            " torch.load"
        )

    def forward(self, x: Tensor) -> Tensor:
        """Frozen-feature view of the online backbone: ``(batch, feature_dim)``."""
        return self.backbone(x).flatten(start_dim=1)

    def training_step(self, batch: tuple[list[Tensor], Tensor], batch_idx: int) -> Tensor:
        """One step on two views: ``criterion(z1, z2)`` of the projections, plus the probe."""
        views, targets = batch[0], batch[1]
        features_1 = self.forward(views[0])
        projection_1 = self.projection_head(features_1)
        projection_2 = self.projection_head(self.forward(views[1]))
        assert self.criterion is not None
        loss = self.criterion(projection_1, projection_2)
        return self.finish_step(loss, targets, batch_idx, features_1, projection_1)

    def finish_step(
        self, loss: Tensor, targets: Tensor, batch_idx: int, features: Tensor, *projection: Tensor
    ) -> Tensor:
        """Logs ``loss``, keeps the embeddings for the diagnostics, adds the online probe's loss (it
        trains on detached features; none without labels)."""
        self.log_loss("train_loss", loss, len(targets), prog_bar=True)
        embeddings = dict(zip(("backbone", "projection"), (features, *projection), strict=False))
        self._last_embeddings = {name: value.detach() for name, value in embeddings.items()}
        if self.online_classifier is None or bool((targets < 0).any()):
            return loss
        cls_loss, cls_log = self.online_classifier.training_step(
            (features.detach(), targets), batch_idx
        )
        self.log_dict(cls_log, sync_dist=True, batch_size=len(targets))
        return loss + cls_loss

    def log_loss(self, name: str, value: Tensor, batch_size: int, prog_bar: bool = False) -> None:
        """Logs a scalar per step and per epoch."""
        every: dict[str, Any] = {"on_step": True, "on_epoch": True, "sync_dist": True}
        self.log(name, value, prog_bar=prog_bar, batch_size=batch_size, **every)

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

    def peak_lr(self, world_size: int) -> float:
        """The lr reached after warm-up: ``lr`` scaled to the global batch unless absolute."""
        return scaled_lr(self.hparams, world_size)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The optimizer's groups: decayed, not decayed (unless all are), the online probe."""
        # The main loss's modules: all but the online probe and the frozen copies.
        modules = [
            module
            for name, module in self.named_children()
            if name != "online_classifier" and any(p.requires_grad for p in module.parameters())
        ]
        if self.hparams["decay_norm_and_bias"]:
            params, no_decay = [p for m in modules for p in m.parameters()], []
        else:
            params, no_decay = get_weight_decay_parameters(modules)
        weights = [p for p in params if p.requires_grad]
        groups: list[dict[str, Any]] = [{"name": "weights", "params": weights}]
        if no_decay:
            trainable = [p for p in no_decay if p.requires_grad]
            groups.append({"name": "no_weight_decay", "params": trainable, "weight_decay": 0.0})
        if self.online_classifier is not None:
            probe = list(self.online_classifier.parameters())
            groups.append({"name": "online_classifier", "params": probe, "weight_decay": 0.0})
        return groups

    def configure_optimizers(self) -> Any:
        """SGD, LARS or AdamW with the warm-up + cosine schedule, per step or per epoch."""
        hp = self.hparams
        peak = self.peak_lr(self.trainer.world_size)
        kind = {"sgd": torch.optim.SGD, "lars": LARS, "adamw": torch.optim.AdamW}[hp["optimizer"]]
        extra = {"betas": ADAMW_BETAS} if kind is torch.optim.AdamW else {"momentum": SGD_MOMENTUM}
        optimizer = kind(self.parameter_groups(), lr=peak, weight_decay=hp["weight_decay"], **extra)
        interval = hp["lr_interval"]
        epochs = max(1, self.trainer.max_epochs or 1)
        steps = int(self.trainer.estimated_stepping_batches)
        total, per_epoch = (epochs, 1.0) if interval == "epoch" else (steps, steps / epochs)
        warmup = round(per_epoch * float(hp["warmup_epochs"]))
        start, final = float(hp["warmup_start_lr"]), float(hp["final_lr"])

        # A closure, not a callable object: a resumed run's state must not restore the old length.
        def factor(index: int) -> float:
            lr = warmup_cosine(index, total, warmup, peak, start, final, hp["warmup_style"])
            return lr / peak if peak > 0 else 0.0

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return [optimizer], [{"scheduler": scheduler, "interval": interval}]
