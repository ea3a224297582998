"""Run settings and method hyper-parameters: flags > ``--hp`` > ``--preset`` > module defaults."""

from __future__ import annotations

import argparse
import inspect
import math
from typing import Any

from lightly_matrix.cli import UserError

#: Module arguments set by the run itself, not by ``--hp``.
RUN_ARGUMENTS = (
    "backbone",
    "num_classes",
    "batch_size_per_device",
    "image_size",
    "gather_distributed",
)


def _coerce(key: str, text: str, default: Any) -> Any:
    """Parses ``--hp`` values to the type of the constructor default."""
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
            return (
                float(text) if default is not None or "." in text or "e" in lowered else int(text)
            )
    except ValueError:
        raise UserError(f"--hp {key}={text}: expected a {type(default).__name__}") from None
    return text


def module_defaults(cls: type) -> dict[str, Any]:
    """Constructor arguments of a method module with their defaults."""
    return {
        name: param.default
        for name, param in inspect.signature(cls).parameters.items()
        if name != "self" and param.default is not inspect.Parameter.empty
    }


def resolve_settings(args: argparse.Namespace, cls: type) -> tuple[dict[str, Any], dict[str, Any]]:
    """Merges defaults, preset, ``--hp`` and flags into run settings and module hyper-parameters."""
    from lightly_matrix.methods import MASKED_METHODS
    from lightly_matrix.presets import PRESETS, RUN_KEYS

    method = args.method
    preset_name = args.preset or ("digits" if args.data == "digits" else None)
    preset: dict[str, Any] = {}
    if preset_name is not None:
        if preset_name not in PRESETS:
            raise UserError(
                f"unknown preset {preset_name!r}; choose one of: {', '.join(PRESETS)} (see "
                f"--list-presets)"
            )
        try:
            preset = PRESETS[preset_name].settings(method)
        except KeyError:
            covered = ", ".join(PRESETS[preset_name].methods)
            raise UserError(
                f"preset {preset_name!r} has no settings for {method!r} (it covers: {covered}); "
                f"drop --preset or pick another"
            ) from None
    masked = method in MASKED_METHODS
    run: dict[str, Any] = {
        "backbone": "vit_base_patch16_224" if masked else "resnet18",
        "image_size": 224,
        "batch_size": 256,
        "epochs": 100,
        "precision": "32-true",
        "transform": "mae" if masked else "byol",
    }
    defaults = module_defaults(cls)
    hparams: dict[str, Any] = {}
    for key, value in preset.items():
        (run if key in RUN_KEYS else hparams)[key] = value
    for item in args.hp:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in defaults:
            valid = ", ".join(k for k in defaults if k not in RUN_ARGUMENTS)
            raise UserError(
                f"--hp {item!r}: not KEY=VALUE with a known key; {method} accepts: {valid}"
            )
        value = _coerce(key, text, defaults[key])
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"--hp {item!r}: the value must be a finite number")
        hparams[key] = value
    flags = {
        "backbone": args.backbone,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "precision": args.precision,
        "transform": args.transform,
    }
    run.update({k: v for k, v in flags.items() if v is not None})
    for key in ("optimizer", "lr", "weight_decay", "warmup_epochs"):
        if getattr(args, key) is not None:
            hparams[key] = getattr(args, key)
    run["preset"] = preset_name
    if run["epochs"] < 1 or run["batch_size"] < 2 or run["image_size"] < 8:
        raise UserError("--epochs must be >= 1, --batch-size >= 2 and --image-size >= 8")
    if masked and not run["backbone"].startswith("vit"):
        raise UserError(
            f"--method {method} needs a ViT backbone, e.g. --backbone vit_tiny_patch16_224"
        )
    return run, hparams
