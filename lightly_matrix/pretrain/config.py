"""Every setting of a pretraining run, resolved once into one frozen object (saved in checkpoints,
checked on ``--resume``): method defaults (the papers' ImageNet runs) < ``--preset`` < ``--hp`` <
flags. Batch sizes are GLOBAL (over all devices and nodes, as the papers)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightly_matrix.errors import UserError
from lightly_matrix.presets import PRESETS, RUN_KEYS

#: Module arguments the run derives (not ``--hp``): see :meth:`RunConfig.module_hparams`.
DERIVED_HPARAMS = ("num_classes", "batch_size_per_device", "image_size", "gather_distributed")
#: Flags that set module hyper-parameters.
HPARAM_FLAGS = ("backbone", "optimizer", "lr", "weight_decay", "warmup_epochs")
#: Settings ``--resume`` may change: how long and on what hardware, not what is trained.
RESUMABLE = ("epochs", "precision", "limit_train_batches", "devices", "num_nodes")
#: Version of the record saved in checkpoints; another one is refused on ``--resume``.
RECORD_FORMAT = 3
#: field -> (flag, minimum, why): checked whether set by a flag, a preset or a checkpoint.
_LOWER_BOUNDS = {
    "epochs": ("--epochs", 1, ""),
    "global_batch_size": ("--batch-size", 2, " (the losses need 2 rows)"),
    "image_size": ("--image-size", 8, ""),
}


def parse_hp(key: str, text: str, annotation: Any) -> Any:
    """A ``--hp`` value as the constructor argument's type; a ``UserError`` if not one or finite."""
    kinds = typing.get_args(annotation) or (annotation,)
    kind = next(k for k in kinds if k is not type(None))
    lowered = text.strip().lower()
    try:
        if lowered in ("none", "null") and type(None) in kinds:  # else a str's "none" (lr_scaling)
            return None
        if kind is bool:
            if lowered in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                return lowered in ("1", "true", "yes", "on")
            raise ValueError
        if kind is int:
            return int(text)
        if kind is float:
            if not math.isfinite(float(text)):
                raise UserError(f"--hp {key}={text}: the value must be a finite number")
            return float(text)
    except ValueError:
        raise UserError(
            f"--hp {key}={text}: not a valid {kind.__name__}; give one, or drop it for the default"
        ) from None
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


def resolved_data(data: str) -> str:
    """``digits``, or the folder's absolute path: a resumed run reads it from anywhere."""
    return data if data == "digits" else str(Path(data).resolve())


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides what a pretraining run trains.

    Attributes:
        method: ``--method`` name.
        preset: The preset applied, or ``None``.
        data: ``digits`` or an image folder's absolute path.
        global_batch_size: Images per optimizer step over all processes.
        image_size: Input size.
        transform: The views' set (:data:`lightly_matrix.data.transforms.RECIPES`).
        hparams: The method's constructor arguments, except :data:`DERIVED_HPARAMS`.
        epochs, precision, crop_min_scale, devices, num_nodes, seed, eval_data, eval_split,
            no_eval, skip_bad_images, limit_train_batches: As the flags.
    """

    method: str
    preset: str | None
    data: str
    global_batch_size: int
    image_size: int
    transform: str
    hparams: dict[str, Any] = field(default_factory=dict)
    epochs: int = 100
    precision: str = "32-true"
    crop_min_scale: float | None = None
    devices: int = 1
    num_nodes: int = 1
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
    def method_class(self) -> Any:
        from lightly_matrix.methods import method_class

        return method_class(self.method)

    @property
    def views(self) -> tuple[Any, ...]:
        from lightly_matrix.data.transforms import recipe_views

        return recipe_views(self.transform, self.method_class.num_views, self.crop_min_scale)

    def module_hparams(self, num_classes: int) -> dict[str, Any]:
        """The arguments the method module is built with."""
        return {
            **self.hparams,
            "num_classes": num_classes,
            "batch_size_per_device": self.per_device_batch_size,
            "image_size": self.image_size,
            "gather_distributed": self.world_size > 1,
        }

    def steps_per_epoch(self, num_images: int) -> int:
        """Optimizer steps per epoch on ``num_images``; a ``UserError`` if that is none."""
        if num_images < self.global_batch_size:
            raise UserError(
                f"{num_images} training images are fewer than one global batch "
                f"({self.global_batch_size}); lower --batch-size"
            )
        steps = num_images // self.global_batch_size
        limit = self.limit_train_batches
        if limit is None:
            return steps
        if limit >= 1:
            return min(steps, int(limit))
        if int(steps * limit) < 1:
            raise UserError(
                f"--limit-train-batches {limit} of {steps} batches is less than one batch; "
                f"use at least {1 / steps:.4g}, or a whole number of batches"
            )
        return int(steps * limit)

    def record(self) -> dict[str, Any]:
        """Plain values for the checkpoint (``weights_only`` loads them)."""
        return {
            "format": RECORD_FORMAT,
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
            "hparams": dict(self.hparams),
            # Top level too, where the report and the metrics file read them.
            "backbone": self.hparams["backbone"],
            "world_size": self.world_size,
            "per_device_batch_size": self.per_device_batch_size,
        }

    def check(self) -> None:
        """Raises ``UserError`` for a run that cannot be trained as resolved."""
        for key, (flag, low, why) in _LOWER_BOUNDS.items():
            if getattr(self, key) < low:
                raise UserError(f"{flag} must be >= {low}{why}, got {getattr(self, key)}")
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
        from lightly_matrix.methods.base import ADAMW_BETAS, FLOAT32_MAX, scaled_lr

        try:
            hparams = self.method_class.check_hparams(self.module_hparams(num_classes=0))
            _ = self.views
        except (TypeError, ValueError) as err:
            message = str(err)
            came = [k for k in _preset_settings(self.preset, self.method) if f"{k}=" in message]
            if came:  # a value the user did not type: say where it came from
                message += f"; {came[0]} is --preset {self.preset}'s: drop --preset or pick another"
            raise UserError(message) from None
        # A batch-scaled lr can overflow float32 in the first step (AdamW divides by 1 - beta1).
        peak, limit = scaled_lr(hparams, self.world_size), FLOAT32_MAX
        if hparams["optimizer"] == "adamw":
            limit *= 1 - ADAMW_BETAS[0]
        if peak > limit:
            scaled = f" after scaling to the global batch {self.global_batch_size}"
            raise UserError(
                f"the lr is {peak:g}{scaled if hparams['lr_scaling'] == 'linear' else ''}, more "
                f"than {hparams['optimizer']} can apply to float32 weights without overflow "
                f"({limit:.3g}); lower --lr"
            )


# --------------------------------------------------------------------------------- resolution
def _preset_settings(name: str | None, method: str) -> dict[str, Any]:
    if name is None:
        return {}
    if name not in PRESETS:
        raise UserError(
            f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)} (see --list-presets)"
        )
    if method not in PRESETS[name].methods:
        covered = ", ".join(PRESETS[name].methods)
        raise UserError(
            f"preset {name!r} has no settings for {method!r} (it covers: {covered}); drop "
            "--preset or pick another"
        )
    return PRESETS[name].settings(method)


def _parse_hps(items: list[str], cls: Any) -> dict[str, Any]:
    """``--hp KEY=VALUE`` items as typed values (a repeated key: the last one)."""
    types = cls.hparam_types()
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in types or key in DERIVED_HPARAMS:
            valid = ", ".join(k for k in types if k not in DERIVED_HPARAMS)
            raise UserError(
                f"--hp {item!r}: not KEY=VALUE with a known key; {cls.method} accepts: {valid}"
            )
        parsed[key] = parse_hp(key, text, types[key])
    return parsed


def resolve_run(args: argparse.Namespace, cls: Any) -> RunConfig:
    """A new run from the command line: defaults < preset < ``--hp`` < flags."""
    defaults = cls.hparam_defaults()
    # --data digits implies the digits preset where it covers the method.
    preset_name = args.preset or (
        "digits" if args.data == "digits" and args.method in PRESETS["digits"].methods else None
    )
    # Without a preset: the module's defaults (its paper's ImageNet run) and its paper's views.
    run: dict[str, Any] = {
        "image_size": defaults["image_size"],
        "global_batch_size": defaults["batch_size_per_device"],
        "transform": cls.default_transform,
    }
    hparams = {k: v for k, v in defaults.items() if k not in DERIVED_HPARAMS}
    for key, value in _preset_settings(preset_name, args.method).items():
        if key in RUN_KEYS:
            run[RUN_KEYS[key]] = value
        else:
            hparams[key] = value
    hparams.update(_parse_hps(args.hp, cls))
    given = {flag: value for flag, value in vars(args).items() if value is not None}
    run.update({key: given[flag] for flag, key in RUN_KEYS.items() if flag in given})
    hparams.update({flag: given[flag] for flag in HPARAM_FLAGS if flag in given})
    config = RunConfig(
        method=args.method,
        preset=preset_name,
        data=resolved_data(args.data),
        devices=args.devices,
        num_nodes=args.num_nodes,
        hparams=hparams,
        seed=args.seed,
        eval_data=args.eval_data and resolved_data(args.eval_data),
        eval_split=args.eval_split or "test",
        no_eval=bool(args.no_eval),
        skip_bad_images=bool(args.skip_bad_images),
        limit_train_batches=args.limit_train_batches,
        **run,
    )
    config.check()
    return config


def from_checkpoint(
    saved_run: dict[str, Any], saved_hparams: dict[str, Any], cls: Any
) -> RunConfig:
    """The run a checkpoint was trained with; a ``UserError`` for another record version."""
    defaults = cls.hparam_defaults()
    if saved_run.get("format") != RECORD_FORMAT or not set(saved_hparams) <= {*defaults, "method"}:
        raise UserError(
            f"the checkpoint was written by an earlier development version of lightly-matrix "
            f"(run record format {saved_run.get('format')}, this version reads {RECORD_FORMAT}); "
            "start a new run with a new --out"
        )
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    hparams = {k: v for k, v in saved_hparams.items() if k in defaults and k not in DERIVED_HPARAMS}
    return RunConfig(**{**{k: v for k, v in saved_run.items() if k in fields}, "hparams": hparams})


def resolve_resumed(
    args: argparse.Namespace, saved: RunConfig, cls: Any
) -> tuple[RunConfig, list[str]]:
    """The saved run with what the command line may change, and notes on what changed; refuses
    what it may not (compared as values: ``--data ./imgs`` is the saved absolute path)."""
    # What the command line may not change: flag (its argparse name) -> the saved value.
    fixed = {key: getattr(saved, key) for key in ("method", "data", "seed", "eval_data", "preset")}
    fixed.update(eval_split=saved.eval_split)
    fixed.update({f: getattr(saved, k) for f, k in RUN_KEYS.items() if k not in RESUMABLE})
    fixed.update({flag: saved.hparams.get(flag) for flag in HPARAM_FLAGS})
    conflicts: list[str] = []
    for key, saved_value in fixed.items():
        given = getattr(args, key, None)
        value = resolved_data(given) if key in ("data", "eval_data") and given else given
        if given is not None and not same_value(value, saved_value):
            conflicts.append(f"--{key.replace('_', '-')} {given} (checkpoint: {saved_value})")
    for key, value in _parse_hps(args.hp, cls).items():
        if not same_value(value, saved.hparams.get(key)):
            conflicts.append(f"--hp {key}={value} (checkpoint: {saved.hparams.get(key)})")
    if conflicts:
        raise UserError(
            "--resume continues the saved run with its own settings, and these flags differ from "
            f"it: {'; '.join(conflicts)}. Drop them, or start a new run with a new --out"
        )
    changes: dict[str, Any] = {
        "no_eval": saved.no_eval or bool(args.no_eval),
        "skip_bad_images": saved.skip_bad_images or bool(args.skip_bad_images),
    }
    changes.update({k: getattr(args, k) for k in RESUMABLE if getattr(args, k, None) is not None})
    notes = [
        f"{key}: {getattr(saved, key)} -> {value}"
        for key, value in changes.items()
        if key in RESUMABLE and key != "limit_train_batches"
        if not same_value(value, getattr(saved, key))
    ]
    resumed = dataclasses.replace(saved, **changes)
    resumed.check()
    return resumed, notes
