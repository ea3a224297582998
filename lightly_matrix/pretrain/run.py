"""``lightly-matrix pretrain``: check, resume, build, train, report, or print the ``--dry-run``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightly_matrix.errors import UserError
from lightly_matrix.pretrain.args import validate_args

if TYPE_CHECKING:  # the rest is imported when a run starts: --help stays free of torch
    from lightly_matrix.pretrain.checkpoints import ResumePlan


def _resume_after_requeue(args: argparse.Namespace) -> None:
    """A SLURM job requeued after preemption re-runs its command: continue, don't refuse."""
    requeued = os.environ.get("SLURM_RESTART_COUNT", "0") not in ("", "0")
    if args.resume is None and args.out is not None and requeued:
        from lightly_matrix.pretrain.checkpoints import has_checkpoint

        if has_checkpoint(Path(args.out)):
            print(f"SLURM requeue (SLURM_RESTART_COUNT > 0): resuming {args.out}", flush=True)
            args.resume = args.out


def _check_out_dir(out: Path, plan: ResumePlan | None, named: str, dry_run: bool = False) -> None:
    """A new run needs an empty folder (or a failed start's); a resumed one may use its own."""
    from lightly_matrix.pretrain.checkpoints import has_checkpoint
    from lightly_matrix.pretrain.outdir import foreign_file, is_failed_start, reuse_failed_start

    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if plan is None and is_failed_start(out):  # no dead end after a run that never saved
        if not dry_run:
            print(reuse_failed_start(out), flush=True)
        return
    if plan is not None and out.resolve() == plan.run_dir.resolve():
        return
    if plan is not None:
        hint = "choose an empty --out for the continued run"
    elif has_checkpoint(out) or not out.is_dir():
        hint = f"pass --resume {out} to continue that run, or choose a new --out"
    else:  # --resume would find no checkpoint: don't send the user there
        stray = foreign_file(out)
        what = f"files that are not a run ({stray})" if stray else "no checkpoint to --resume"
        hint = f"it holds {what}; choose a new --out"
    raise UserError(f"{named} is not empty; {hint} (existing runs are never overwritten)")


def resolve(args: argparse.Namespace) -> tuple[Any, ResumePlan | None]:
    """The run of this command line (new or resumed), checked; nothing is written."""
    from lightly_matrix.methods import method_class
    from lightly_matrix.pretrain.checkpoints import plan_resume
    from lightly_matrix.pretrain.config import resolve_resumed, resolve_run

    _resume_after_requeue(args)
    plan = plan_resume(args) if args.resume else None
    if plan is not None:
        if args.method is not None and args.method != plan.saved.method:
            raise UserError(
                f"--resume continues a {plan.saved.method} run, not --method {args.method}; drop "
                "--method, or start a new run with a new --out"
            )
        args.method = plan.saved.method
    else:
        args.data = args.data or "digits"
        args.seed = 0 if args.seed is None else args.seed
    validate_args(args)
    cls = method_class(args.method)
    if plan is None:
        return resolve_run(args, cls), None
    config, notes = resolve_resumed(args, plan.saved, cls)
    plan.notes += notes
    return config, plan


def run(args: argparse.Namespace) -> int:
    """Runs ``lightly-matrix pretrain``; returns the exit status."""
    if args.list_presets:
        from lightly_matrix.presets import describe_presets

        print(describe_presets())
        return 0
    config, plan = resolve(args)
    out = Path(args.out or (plan.run_dir if plan else f"runs/{config.method}"))
    if plan is not None:
        plan.check_no_newer_checkpoint(out)
    from lightly_matrix.data.folder import other_rank_from_env

    if not other_rank_from_env():  # Lightning's launcher re-runs this command in other processes
        from lightly_matrix.pretrain.outdir import ensure_writable

        # Messages call the folder what the user gave: --out, the --resume run, or no name (R05).
        named = f"--out {out}" if args.out else f"the {'' if plan else 'default '}run folder {out}"
        _check_out_dir(out, plan, named, dry_run=args.dry_run)
        ensure_writable(out, named)  # a read-only place, a file in the path: one line, nothing left

    # Lightning's advertising tips and warnings that do not apply to our runs.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(lambda record: "Tip:" not in record.getMessage())
    import pytorch_lightning as pl

    from lightly_matrix.pretrain.data import build_data, count_data

    cls = config.method_class
    if args.dry_run:  # the resolved run as one JSON document on stdout; nothing written
        num_images, num_classes = count_data(config)
        if plan is not None:
            plan.check_data(num_classes)
        print(json.dumps(describe_run(config, cls, num_classes, num_images), indent=2))
        return 0
    pl.seed_everything(config.seed, workers=False, verbose=False)
    train, val, probe, num_classes, workers = build_data(args, config, out)
    if plan is not None:
        plan.check_data(num_classes)
    steps = config.steps_per_epoch(len(train))
    model = build_module(config, cls, num_classes, device="cpu")

    from lightning_fabric.utilities.exceptions import MisconfigurationException

    from lightly_matrix.data.module import PretrainDataModule
    from lightly_matrix.pretrain.trainer import Interrupted, build_trainer

    interrupted = Interrupted()
    try:
        trainer = build_trainer(args, config, out, model, probe, val, workers, steps, interrupted)
    except MisconfigurationException as err:  # e.g. no GPU, more devices than exist
        fix = "; use --accelerator cpu or auto" if "gpu backend" in str(err) else ""
        raise UserError(" ".join(str(err).rstrip("!").split()) + fix) from None
    datamodule = PretrainDataModule(train, val, config.per_device_batch_size, workers, config.seed)
    if trainer.is_global_zero:
        print(
            f"pretrain {config.method} on {config.data} ({len(train)} images) -> {out}: "
            f"{_summary(config, model)}"
        )
        warmup = config.hparams["warmup_epochs"]
        if warmup >= config.epochs:  # warmup_cosine clamps it to the run: no decay at all
            print(
                f"note: warm-up ({warmup:g} epochs) covers the whole {config.epochs}-epoch run: "
                "the lr only ramps up; lower --warmup-epochs",
                flush=True,
            )
        if plan is not None:
            print(plan.summary(), flush=True)

    start = time.perf_counter()
    if status := _fit(trainer, model, datamodule, plan, out, interrupted):
        return status
    if trainer.is_global_zero:
        _report(out, time.perf_counter() - start, trainer)
        from lightly_matrix.report import report_after_run

        report_after_run(out, enabled=not args.no_report)
    return 0


def build_module(config: Any, cls: type, num_classes: int, device: str = "meta") -> Any:
    """The method module of ``config`` (on ``device``); what it refuses, as a ``UserError``."""
    import torch

    try:
        with torch.device(device):
            return cls(**config.module_hparams(num_classes))
    except ValueError as err:
        raise UserError(str(err)) from None


def describe_run(config: Any, cls: type, num_classes: int, num_images: int) -> dict[str, Any]:
    """Everything the run trains with, as JSON values read off the module (on the ``meta`` device)
    as ``configure_optimizers`` does, so that it cannot drift from training."""
    from lightly_matrix.methods.base import ADAMW_BETAS, SGD_MOMENTUM, is_vit

    module = build_module(config, cls, num_classes)
    hp = module.hparams
    tensors = {g["name"]: len(g["params"]) for g in module.parameter_groups()}
    adamw, vit = hp["optimizer"] == "adamw", is_vit(hp["backbone"])
    run = ("seed", "world_size", "global_batch_size", "per_device_batch_size")
    teacher = {"start": hp.get("momentum_start"), "end": hp.get("momentum_end")}
    teacher["schedule"] = "cosine per step, applied after each optimizer step"
    return {
        **{key: getattr(config, key) for key in ("method", "preset", "data")},
        "num_images": num_images,
        "num_classes": num_classes,
        **{key: getattr(config, key) for key in run},
        "steps_per_epoch": config.steps_per_epoch(num_images),
        **{key: getattr(config, key) for key in ("epochs", "precision")},
        "sync_batchnorm": "when distributed on GPUs",
        "drop_last": True,
        "image_size": config.image_size,
        "backbone": {
            "name": hp["backbone"],
            **{key: None if vit else hp[key] for key in ("stem", "zero_init_residual")},
            "patch_size": _patch_size(module),
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
        "teacher_momentum": teacher if "momentum_start" in hp else None,
        "transform": config.transform,
        "views": [view.to_dict() for view in config.views],
        "evaluation": {
            "enabled": not config.no_eval and (num_classes > 1 or config.eval_data is not None),
            **{key: getattr(config, key) for key in ("eval_data", "eval_split")},
        },
        # The per-device batch and gather_distributed (world_size > 1) are derived, above.
        "hparams": {
            k: v
            for k, v in sorted(config.module_hparams(num_classes).items())
            if k not in ("batch_size_per_device", "gather_distributed")
        },
    }


def _summary(config: Any, model: Any) -> str:
    """One line of what is trained (``--dry-run`` prints all of it)."""
    run = ("preset", "global_batch_size", "per_device_batch_size", "world_size", "epochs")
    parts = {key: getattr(config, key) for key in (*run, "precision", "transform")}
    parts["peak_lr"] = f"{model.peak_lr(config.world_size):g}"
    hparams = {**config.hparams, "patch_size": _patch_size(model)}
    return ", ".join(f"{k}={v}" for k, v in {**parts, **hparams}.items())


def _patch_size(module: Any) -> int | None:
    """The ViT patch size the module was built with (``patch_size=None`` picks one), else None."""
    vit = getattr(module.backbone, "vit", None)
    return None if vit is None else int(vit.patch_embed.patch_size[0])


def _fit(
    trainer: Any, model: Any, datamodule: Any, plan: ResumePlan | None, out: Path, stop: Any
) -> int:
    """``trainer.fit`` with signals turned into a saved checkpoint and exit status 128 + signal."""
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    from lightly_matrix.pretrain.trainer import Diverged, RunStopped, check_weights_finite

    last = out / "last.ckpt"
    resume_hint = f"resume with: lightly-matrix pretrain --resume {out}"
    stop.install()
    try:
        trainer.fit(
            model,
            datamodule=datamodule,
            ckpt_path=str(plan.checkpoint) if plan else None,
            weights_only=True,
        )
    except RunStopped as stopped:
        if trainer.is_global_zero:
            print(f"interrupted ({stopped}); saved {stopped.checkpoint}; {resume_hint}", flush=True)
        return 128 + int(stopped.signum)
    except (SIGTERMException, SystemExit, KeyboardInterrupt) as err:
        # Lightning's own SIGTERM exit (after an epoch-end save) or a second Ctrl-C (no save).
        signum = stop.signum or (signal.SIGTERM if isinstance(err, SIGTERMException) else 2)
        if trainer.is_global_zero:
            saved = f"the newest checkpoint is {last}" if last.exists() else "no checkpoint yet"
            print(f"interrupted; {saved}; {resume_hint}", flush=True)
        return 128 + int(signum)
    except UserError:  # Diverged, unreadable images, ...: one line
        raise
    except Exception as err:
        # A diverged run often fails inside the loss (eigh, Cholesky) before the loss is NaN.
        try:
            check_weights_finite(model, trainer.global_step, last if last.exists() else None)
        except Diverged as diverged:
            raise diverged from err
        # DataLoader workers re-raise a data set's UserError inside another exception's message.
        for name in ("UnreadableImageError", "UserError"):
            if name in type(err).__name__ or f"{name}: " in str(err):
                raise UserError(str(err).strip().splitlines()[-1].split(f"{name}: ")[-1]) from None
        raise
    finally:
        stop.uninstall()
    return 0


def _report(out: Path, wall: float, trainer: Any) -> None:
    """Adds the wall times (all sessions, this one) to metrics.json; prints the evaluations."""
    from pytorch_lightning.callbacks import Timer

    from lightly_matrix.evaluation import EVAL_COLUMNS
    from lightly_matrix.user_files import METRICS_FILE
    from lightly_matrix.utils.io import write_json_atomic
    from lightly_matrix.utils.text import markdown_table

    total = next(c for c in trainer.callbacks if isinstance(c, Timer)).time_elapsed("train")
    path = out / METRICS_FILE
    resumed = f" ({total:.1f} s over all sessions)" if total > wall else ""
    epochs = trainer.current_epoch
    print(
        f"finished {epochs} epoch{'s' * (epochs != 1)} in {wall:.1f} s{resumed}; "
        f"checkpoint {out / 'last.ckpt'}"
    )
    if not path.exists():
        return
    metrics = json.loads(path.read_text())
    metrics.setdefault("run", {}).update(
        train_wall_s=round(total, 1), session_wall_s=round(wall, 1)
    )
    write_json_atomic(path, metrics)
    rows = [
        dict(row, epoch=f"{row['epoch']} (random init)" if row["epoch"] == 0 else row["epoch"])
        for row in metrics["history"]
    ]
    print(f"\nFrozen-backbone evaluation ({path}):\n{markdown_table(rows, EVAL_COLUMNS)}")
