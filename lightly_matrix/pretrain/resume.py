"""``--resume``: which checkpoint, which settings, and what the command line may still change.

A resumed run takes its method, data, seed, architecture and hyper-parameters from the
checkpoint, so ``lightly-matrix pretrain --resume RUN`` is enough. Flags that would change what
is being trained (lr, batch size, ``--hp``, data, seed...) and differ from the checkpoint are an
error; flags that only change how it runs (``--epochs``, devices, precision, workers, logging)
are applied and printed.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightly_matrix.cli import UserError

#: Run settings stored by :class:`RunCheckpoint` that must match when given again.
_FIXED_RUN = ("method", "data", "seed", "transform", "preset", "eval_data", "eval_split")
#: Flags that map to module hyper-parameters (flag -> hparam).
_FIXED_HPARAMS = {
    "backbone": "backbone",
    "image_size": "image_size",
    "batch_size": "batch_size_per_device",
    "optimizer": "optimizer",
    "lr": "lr",
    "weight_decay": "weight_decay",
    "warmup_epochs": "warmup_epochs",
}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return bool(a == b)


@dataclass
class ResumePlan:
    """What ``--resume`` continues from. Built by :func:`plan_resume`."""

    checkpoint: Path
    run_dir: Path
    global_step: int
    where: str
    saved_hparams: dict[str, Any]
    saved_run: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def check_no_newer_checkpoint(self, out: Path) -> None:
        """Refuses to continue an older checkpoint in a folder whose last.ckpt is further on."""
        from lightly_matrix.pretrain.checkpoints import LAST, load_training_checkpoint

        last = out / LAST
        if not last.is_file() or last.resolve() == self.checkpoint.resolve():
            return
        try:
            newer = int(load_training_checkpoint(last).get("global_step", 0))
        except UserError:
            return
        if newer > self.global_step:
            raise UserError(
                f"{last} is further on (step {newer}) than --resume {self.checkpoint} (step "
                f"{self.global_step}); continuing in {out} would overwrite it: pass an empty --out"
            )

    def apply(
        self, run_cfg: dict[str, Any], hparams: dict[str, Any], cls: type
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The checkpoint's architecture and hyper-parameters, with the run's new epochs etc."""
        from lightly_matrix.pretrain.settings import module_defaults

        defaults = module_defaults(cls)
        hparams = {k: v for k, v in self.saved_hparams.items() if k in defaults}
        run_cfg = dict(run_cfg)
        run_cfg["backbone"] = hparams.get("backbone", run_cfg["backbone"])
        run_cfg["image_size"] = hparams.get("image_size", run_cfg["image_size"])
        run_cfg["batch_size"] = hparams.get("batch_size_per_device", run_cfg["batch_size"])
        for key in ("transform", "preset"):
            if key in self.saved_run:
                run_cfg[key] = self.saved_run[key]
        for key in ("epochs", "precision"):
            saved = self.saved_run.get(key)
            if saved is not None and run_cfg[key] != saved:
                self.notes.append(f"{key}: {saved} -> {run_cfg[key]}")
        return run_cfg, hparams

    def check_data(self, num_classes: int, world_size: int) -> None:
        """Labelled vs unlabelled data must match the checkpoint's online probe."""
        saved = self.saved_hparams.get("num_classes")
        if saved is not None and int(saved) != num_classes:
            raise UserError(
                f"--resume: the checkpoint was trained on data with {saved} classes, this --data "
                f"has {num_classes} (0 = unlabelled); resume with the run's own data"
            )
        old_world = self.saved_run.get("world_size")
        if old_world is not None and int(old_world) != world_size:
            self.notes.append(
                f"processes: {old_world} -> {world_size} (the global batch and the lr scaled with "
                "it change from here on)"
            )

    def summary(self) -> str:
        lines = [f"resuming from {self.checkpoint} ({self.where})"]
        lines += [f"  changed on resume: {note}" for note in self.notes]
        return "\n".join(lines)


def _run_dir_of(checkpoint: Path) -> Path:
    parent = checkpoint.parent
    return parent.parent if parent.name == "checkpoints" else parent


def plan_resume(args: argparse.Namespace) -> ResumePlan:
    """Finds the checkpoint, fills unset flags from it and refuses conflicting ones."""
    from lightly_matrix.pretrain.checkpoints import RUN_KEY, describe, find_resume_checkpoint

    path, ckpt, skipped = find_resume_checkpoint(args.resume)
    hparams: dict[str, Any] = dict(ckpt.get("hyper_parameters") or {})
    saved_run: dict[str, Any] = dict(ckpt.get(RUN_KEY) or {})
    saved_run.setdefault("method", hparams.get("method"))
    if args.method is None and saved_run.get("method") is None:
        raise UserError(f"--resume {args.resume!r}: the checkpoint does not say its method")
    conflicts = []
    for key in _FIXED_RUN:
        given, saved = getattr(args, key), saved_run.get(key)
        if given is not None and saved is not None and not _same(given, saved):
            conflicts.append(f"--{key.replace('_', '-')} {given} (checkpoint: {saved})")
    for flag, key in _FIXED_HPARAMS.items():
        given, saved = getattr(args, flag), hparams.get(key)
        if given is not None and saved is not None and not _same(given, saved):
            conflicts.append(f"--{flag.replace('_', '-')} {given} (checkpoint: {saved})")
    for item in args.hp:
        key, _, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if key in hparams and str(hparams[key]) != text.strip():
            conflicts.append(f"--hp {item} (checkpoint: {hparams[key]})")
    if conflicts:
        raise UserError(
            "--resume continues the saved run with its own settings, and these flags differ from "
            f"it: {'; '.join(conflicts)}. Drop them, or start a new run with a new --out"
        )
    for key in ("method", "data", "seed", "eval_data", "eval_split"):
        if getattr(args, key) is None and saved_run.get(key) is not None:
            setattr(args, key, saved_run[key])
    if not args.skip_bad_images and saved_run.get("skip_bad_images"):
        args.skip_bad_images = True
    for key in ("epochs", "limit_train_batches"):  # how long: may change, kept if not given
        if getattr(args, key) is None and saved_run.get(key) is not None:
            setattr(args, key, saved_run[key])
    return ResumePlan(
        checkpoint=path,
        run_dir=Path(args.resume) if Path(args.resume).is_dir() else _run_dir_of(path),
        global_step=int(ckpt.get("global_step", 0)),
        where=describe(ckpt),
        saved_hparams=hparams,
        saved_run=saved_run,
        notes=list(skipped),
    )
