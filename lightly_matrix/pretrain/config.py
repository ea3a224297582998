"""The resolved run: every setting of a pretraining run, decided once, in one frozen object.

Resolution order: method defaults < ``--preset`` < ``--hp KEY=VALUE`` < flags. Batch sizes are
GLOBAL (over all devices and nodes, as in every author's script); the per-device batch is derived,
so ``--devices`` and ``--num-nodes`` never change what is trained. The object is saved in every
checkpoint (:meth:`RunConfig.record`), compared on ``--resume`` (:func:`resolve_resumed`),
printed by ``--dry-run`` (:func:`describe_run`), and every training component is built from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

from lightly_matrix.errors import UserError
from lightly_matrix.utils.deprecation import warn_renamed

#: Module arguments set by the run itself, not by ``--hp``.
RUN_ARGUMENTS = (
    "backbone",
    "num_classes",
    "batch_size_per_device",
    "image_size",
    "gather_distributed",
)
#: Version of the record saved in checkpoints (absent: written before the global batch).
RECORD_FORMAT = 2
#: Settings that may change on ``--resume`` (how long and on what hardware, not what is trained).
RESUMABLE_CHANGES = ("epochs", "devices", "num_nodes", "precision", "limit_train_batches")


def module_defaults(cls: type) -> dict[str, Any]:
    """Hyper-parameters of a method module with their defaults (shared and its own)."""
    return cls.hparam_defaults()  # type: ignore[attr-defined, no-any-return]


def coerce_hp(key: str, text: str, default: Any) -> Any:
    """Parses a ``--hp`` value to the type of the constructor default."""
    lowered = text.strip().lower()
    if lowered in ("none", "null"):
        return None
    try:
        if isinstance(default, bool):
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float) or default is None:
            value = (
                float(text) if default is not None or "." in text or "e" in lowered else int(text)
            )
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"--hp {key}={text}: the value must be a finite number")
            return value
    except ValueError:
        raise UserError(f"--hp {key}={text}: expected a {type(default).__name__}") from None
    return text.strip()


def same_value(a: Any, b: Any) -> bool:
    """Equality of parsed settings: 1000 == 1000.0, None == None, tuples == lists."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides what a pretraining run trains.

    Attributes:
        method: ``--method`` name.
        preset: The preset applied, or ``None``.
        data: ``digits`` or an image folder.
        global_batch_size: Images per optimizer step over all processes.
        devices: Processes per node.
        num_nodes: Nodes.
        epochs: Epochs of the whole run.
        precision: Lightning precision.
        image_size: Input size.
        transform: Augmentation recipe (:data:`lightly_matrix.data.transforms.RECIPES`).
        crop_min_scale: Override of every view's crop scale, or ``None``.
        hparams: The method's constructor arguments, all of them, except :data:`RUN_ARGUMENTS`.
        seed, eval_data, eval_split, no_eval, skip_bad_images, limit_train_batches: As the flags.
    """

    method: str
    preset: str | None
    data: str
    global_batch_size: int
    devices: int
    num_nodes: int
    epochs: int
    precision: str
    image_size: int
    transform: str
    crop_min_scale: float | None
    hparams: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    eval_data: str | None = None
    eval_split: str = "test"
    no_eval: bool = False
    skip_bad_images: bool = False
    limit_train_batches: float | None = None

    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes

    @property
    def per_device_batch_size(self) -> int:
        return self.global_batch_size // self.world_size

    @property
    def num_views(self) -> int:
        from lightly_matrix.methods import MASKED_METHODS

        return 1 if self.method in MASKED_METHODS else 2

    @property
    def views(self) -> tuple[Any, ...]:
        from lightly_matrix.data.transforms import recipe_views

        return recipe_views(self.transform, self.num_views, self.crop_min_scale)

    def module_hparams(self, num_classes: int) -> dict[str, Any]:
        """The arguments the method module is built with."""
        return {
            **self.hparams,
            "num_classes": num_classes,
            "batch_size_per_device": self.per_device_batch_size,
            "image_size": self.image_size,
            "gather_distributed": self.world_size > 1,
        }

    def record(self) -> dict[str, Any]:
        """Plain values for the checkpoint (``weights_only`` loads them)."""
        return {
            "format": RECORD_FORMAT,
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
            "hparams": dict(self.hparams),
            # Top level too, where readers of the older record (and the report) find it.
            "backbone": self.hparams["backbone"],
            "world_size": self.world_size,
            "per_device_batch_size": self.per_device_batch_size,
        }

    def check(self) -> None:
        """Raises ``UserError`` for a run that cannot be trained as resolved."""
        if self.epochs < 1 or self.global_batch_size < 2 or self.image_size < 8:
            raise UserError("--epochs must be >= 1, --batch-size >= 2 and --image-size >= 8")
        if self.global_batch_size % self.world_size:
            raise UserError(
                f"the global batch {self.global_batch_size} does not divide into "
                f"{self.world_size} processes ({self.devices} devices x {self.num_nodes} nodes); "
                "pick a --batch-size that is a multiple of the process count"
            )
        if self.per_device_batch_size < 2:
            raise UserError(
                f"the global batch {self.global_batch_size} leaves {self.per_device_batch_size} "
                f"image per process on {self.world_size} processes; BatchNorm needs >= 2"
            )
        from lightly_matrix.methods import MASKED_METHODS
        from lightly_matrix.methods.base import check_backbone, check_recipe

        backbone = self.hparams["backbone"]
        if self.method in MASKED_METHODS and not backbone.startswith("vit"):
            raise UserError(
                f"--method {self.method} needs a ViT backbone, e.g. --backbone vit_tiny_patch16_224"
            )
        try:
            check_backbone(backbone)
            check_recipe(self.hparams)
            _ = self.views
        except ValueError as err:
            raise UserError(str(err)) from None


# --------------------------------------------------------------------------------- resolution
def _preset_settings(name: str | None, method: str) -> dict[str, Any]:
    from lightly_matrix.presets import PRESETS

    if name is None:
        return {}
    if name not in PRESETS:
        raise UserError(
            f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)} (see --list-presets)"
        )
    try:
        return PRESETS[name].settings(method)
    except KeyError:
        covered = ", ".join(PRESETS[name].methods)
        raise UserError(
            f"preset {name!r} has no settings for {method!r} (it covers: {covered}); drop "
            "--preset or pick another"
        ) from None


def _parse_hp(items: list[str], method: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """``--hp KEY=VALUE`` items as typed values."""
    from lightly_matrix.methods import METHOD_CLASSES

    renamed = METHOD_CLASSES[method].renamed
    parsed: dict[str, Any] = {}
    spelled: dict[str, str] = {}  # key -> the name it was given under
    for item in items:
        key, sep, text = item.partition("=")
        key = given = key.strip().replace("-", "_")
        if key in renamed:
            warn_renamed(f"--hp (method {method})", key, renamed[key])
            key = renamed[key]
        if spelled.setdefault(key, given) != given:
            raise UserError(
                f"--hp {spelled[key]}=... and --hp {given}=... set the same hyper-parameter "
                f"({spelled[key] if key == given else given} is the old name of {key}); "
                f"give it once, as --hp {key}=VALUE"
            )
        if not sep or key not in defaults or key in RUN_ARGUMENTS:
            valid = ", ".join(k for k in defaults if k not in RUN_ARGUMENTS)
            raise UserError(
                f"--hp {item!r}: not KEY=VALUE with a known key; {method} accepts: {valid}"
            )
        parsed[key] = coerce_hp(key, text, defaults[key])
    return parsed


#: Flags that set run settings (flag attribute -> RunConfig field).
_RUN_FLAGS = {
    "image_size": "image_size",
    "batch_size": "global_batch_size",
    "epochs": "epochs",
    "precision": "precision",
    "transform": "transform",
    "crop_min_scale": "crop_min_scale",
}
#: Flags that set module hyper-parameters.
_HPARAM_FLAGS = ("backbone", "optimizer", "lr", "weight_decay", "warmup_epochs")


def resolve_run(args: argparse.Namespace, cls: type) -> RunConfig:
    """A new run from the command line: defaults < preset < ``--hp`` < flags."""
    from lightly_matrix.presets import RUN_KEYS

    method = args.method
    defaults = module_defaults(cls)
    preset_name = args.preset or ("digits" if args.data == "digits" else None)
    # Without a preset: the module's defaults (its paper's ImageNet run) and its paper's views.
    run: dict[str, Any] = {
        "image_size": 224,
        "global_batch_size": 256,
        "epochs": 100,
        "precision": "32-true",
        "transform": cls.default_transform,  # type: ignore[attr-defined]
        "crop_min_scale": None,
    }
    hparams = {k: v for k, v in defaults.items() if k not in RUN_ARGUMENTS}
    hparams["backbone"] = defaults["backbone"]
    for key, value in _preset_settings(preset_name, method).items():
        if key == "backbone" or key not in RUN_KEYS:
            hparams[key] = value
        else:
            run["global_batch_size" if key == "batch_size" else key] = value
    hparams.update(_parse_hp(args.hp, method, defaults))
    for flag, key in _RUN_FLAGS.items():
        if getattr(args, flag, None) is not None:
            run[key] = getattr(args, flag)
    for flag in _HPARAM_FLAGS:
        if getattr(args, flag, None) is not None:
            hparams[flag] = getattr(args, flag)
    config = RunConfig(
        method=method,
        preset=preset_name,
        data=args.data,
        devices=args.devices,
        num_nodes=args.num_nodes,
        hparams=hparams,
        seed=args.seed,
        eval_data=args.eval_data,
        eval_split=args.eval_split or "test",
        no_eval=bool(args.no_eval),
        skip_bad_images=bool(args.skip_bad_images),
        limit_train_batches=args.limit_train_batches,
        **run,
    )
    config.check()
    return config


def from_checkpoint(
    saved_run: dict[str, Any], saved_hparams: dict[str, Any], cls: type
) -> RunConfig:
    """The run a checkpoint was trained with, also for checkpoints written before this record.

    Older checkpoints stored the PER-DEVICE batch (``batch_size``) and ``world_size``; their
    global batch is the product. Settings they predate get the values they trained with
    (:data:`lightly_matrix.methods.base.LEGACY_HPARAMS`).
    """
    from lightly_matrix.methods.base import LEGACY_HPARAMS

    defaults = module_defaults(cls)
    # Checkpoints written before the renames hold the old names: read them as the new ones.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        saved_hparams = cls.rename_hparams(saved_hparams)  # type: ignore[attr-defined]
    hparams = {k: v for k, v in saved_hparams.items() if k in defaults and k not in RUN_ARGUMENTS}
    hparams["backbone"] = saved_hparams.get("backbone", saved_run.get("backbone"))
    legacy = saved_run.get("format") is None
    for key, value in LEGACY_HPARAMS.items():
        if key in defaults and key not in hparams:
            # knn_k/knn_t came after the record format 2: every older run had k 20, t 0.1.
            hparams[key] = value if legacy or key.startswith("knn_") else defaults[key]
    for key, value in defaults.items():  # arguments added later keep their defaults
        if key not in RUN_ARGUMENTS:
            hparams.setdefault(key, value)
    world = int(saved_run.get("world_size") or 1)
    if legacy:
        per_device = int(saved_hparams.get("batch_size_per_device") or saved_run["batch_size"])
        global_batch = per_device * world
    else:
        global_batch = int(saved_run["global_batch_size"])
    return RunConfig(
        method=saved_run.get("method") or saved_hparams["method"],
        preset=saved_run.get("preset"),
        data=saved_run.get("data") or "digits",
        global_batch_size=global_batch,
        devices=int(saved_run.get("devices") or world),
        num_nodes=int(saved_run.get("num_nodes") or 1),
        epochs=int(saved_run.get("epochs") or 1),
        precision=saved_run.get("precision") or "32-true",
        image_size=int(saved_hparams.get("image_size") or saved_run.get("image_size") or 224),
        transform=saved_run.get("transform") or "byol",
        crop_min_scale=saved_run.get("crop_min_scale"),
        hparams=hparams,
        seed=int(saved_run.get("seed") or 0),
        eval_data=saved_run.get("eval_data"),
        eval_split=saved_run.get("eval_split") or "test",
        no_eval=bool(saved_run.get("no_eval", False)),
        skip_bad_images=bool(saved_run.get("skip_bad_images", False)),
        limit_train_batches=saved_run.get("limit_train_batches"),
    )


def resolve_resumed(
    args: argparse.Namespace, saved: RunConfig, cls: type
) -> tuple[RunConfig, list[str]]:
    """The saved run with what the command line may change; refuses what it may not.

    Every given setting is parsed first and compared as a value (``--hp alpha=1000`` equals a
    saved 1000.0, ``--hp taylor_order=none`` a saved None).

    Returns:
        The run to continue and notes on what changed.
    """
    defaults = module_defaults(cls)
    conflicts: list[str] = []
    notes: list[str] = []

    def compare(flag: str, given: Any, saved_value: Any) -> None:
        if given is not None and not same_value(given, saved_value):
            conflicts.append(f"{flag} (checkpoint: {saved_value})")

    for key in ("method", "data", "seed", "eval_data", "preset"):
        given = getattr(args, key, None)
        compare(f"--{key.replace('_', '-')} {given}", given, getattr(saved, key))
    if args.eval_split is not None:
        compare(f"--eval-split {args.eval_split}", args.eval_split, saved.eval_split)
    for flag, key in _RUN_FLAGS.items():
        if key in RESUMABLE_CHANGES:
            continue
        given = getattr(args, flag, None)
        compare(f"--{flag.replace('_', '-')} {given}", given, getattr(saved, key))
    for flag in _HPARAM_FLAGS:
        given = getattr(args, flag, None)
        compare(f"--{flag.replace('_', '-')} {given}", given, saved.hparams.get(flag))
    for key, value in _parse_hp(args.hp, saved.method, defaults).items():
        compare(f"--hp {key}={value}", value, saved.hparams.get(key))
    if conflicts:
        raise UserError(
            "--resume continues the saved run with its own settings, and these flags differ from "
            f"it: {'; '.join(conflicts)}. Drop them, or start a new run with a new --out"
        )
    changes: dict[str, Any] = {
        "devices": args.devices,
        "num_nodes": args.num_nodes,
        "no_eval": saved.no_eval or bool(args.no_eval),
        "skip_bad_images": saved.skip_bad_images or bool(args.skip_bad_images),
    }
    for key in ("epochs", "precision", "limit_train_batches"):
        if getattr(args, key, None) is not None:
            changes[key] = getattr(args, key)
    for key in ("epochs", "precision", "devices", "num_nodes"):
        if key in changes and not same_value(changes[key], getattr(saved, key)):
            notes.append(f"{key}: {getattr(saved, key)} -> {changes[key]}")
    resumed = dataclasses.replace(saved, **changes)
    resumed.check()
    return resumed, notes
