"""Orchestration of ``lightly-matrix pretrain``: check, resume, build, train, report."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import time
import warnings
from pathlib import Path
from typing import Any

from lightly_matrix.cli import UserError
from lightly_matrix.pretrain.args import validate_args
from lightly_matrix.pretrain.resume import ResumePlan, plan_resume


def _quiet_lightning() -> None:
    """Drops Lightning's advertising tips and warnings that do not apply to our runs."""
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")

    class _NoTips(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "Tip:" not in record.getMessage()

    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_NoTips())


def _is_launcher_child() -> bool:
    # Lightning's DDP launcher re-runs this command in each extra process (LOCAL_RANK > 0).
    return os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0"


def _resume_after_requeue(args: argparse.Namespace) -> None:
    """A SLURM job requeued after preemption re-runs its command: continue, don't refuse."""
    requeued = os.environ.get("SLURM_RESTART_COUNT", "0") not in ("", "0")
    if args.resume is None and args.out is not None and requeued:
        from lightly_matrix.pretrain.checkpoints import has_checkpoint

        if has_checkpoint(Path(args.out)):
            print(f"SLURM requeue (SLURM_RESTART_COUNT > 0): resuming {args.out}", flush=True)
            args.resume = args.out


def _check_out_dir(out: Path, plan: ResumePlan | None) -> None:
    """A new run needs an empty folder; a resumed one may also continue in its own folder."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if plan is not None and out.resolve() == plan.run_dir.resolve():
        return
    hint = (
        f"pass --resume {out} to continue that run, or choose a new --out"
        if plan is None
        else "choose an empty --out for the continued run"
    )
    raise UserError(
        f"output folder {str(out)!r} is not empty; {hint} (existing runs are never overwritten)"
    )


def run(args: argparse.Namespace) -> int:
    """Runs ``lightly-matrix pretrain``; returns the exit status."""
    if args.list_presets:
        from lightly_matrix.presets import describe_presets

        print(describe_presets())
        return 0
    _resume_after_requeue(args)
    plan = plan_resume(args) if args.resume else None  # fills settings from the checkpoint
    if args.data is None:
        args.data = "digits"
    if args.seed is None:
        args.seed = 0
    validate_args(args)
    out = Path(args.out or (plan.run_dir if plan else f"runs/{args.method}"))
    if plan is not None:
        plan.check_no_newer_checkpoint(out)
    if not _is_launcher_child():
        _check_out_dir(out, plan)

    _quiet_lightning()
    import pytorch_lightning as pl

    from lightly_matrix.methods import MASKED_METHODS, METHODS
    from lightly_matrix.methods.base import check_backbone
    from lightly_matrix.pretrain.data import build_data
    from lightly_matrix.pretrain.settings import resolve_settings

    cls = METHODS[args.method]
    run_cfg, hparams = resolve_settings(args, cls)
    if plan is not None:
        run_cfg, hparams = plan.apply(run_cfg, hparams, cls)
    try:
        check_backbone(run_cfg["backbone"])
    except ValueError as err:
        raise UserError(str(err)) from None

    pl.seed_everything(args.seed, workers=False, verbose=False)
    num_views = 1 if args.method in MASKED_METHODS else 2
    train, val, probe, num_classes, workers = build_data(args, run_cfg, num_views)
    world_size = args.devices * args.num_nodes
    if plan is not None:
        plan.check_data(num_classes, world_size)
    hparams.update(
        backbone=run_cfg["backbone"],
        num_classes=num_classes,
        batch_size_per_device=run_cfg["batch_size"],
        image_size=run_cfg["image_size"],
        gather_distributed=world_size > 1,
    )
    if len(train) < run_cfg["batch_size"] * world_size:
        raise UserError(
            f"{len(train)} training images are fewer than one batch ({run_cfg['batch_size']} x "
            f"{world_size}); lower --batch-size"
        )
    try:
        model = cls(**hparams)
    except ValueError as err:
        raise UserError(str(err)) from None

    from lightning_fabric.utilities.exceptions import MisconfigurationException

    from lightly_matrix.data.module import PretrainDataModule
    from lightly_matrix.pretrain.guards import Interrupted
    from lightly_matrix.pretrain.trainer import build_trainer

    interrupted = Interrupted()
    run_info = {
        "method": args.method,
        "data": args.data,
        "eval_data": args.eval_data,
        "eval_split": args.eval_split or "test",
        "seed": args.seed,
        "skip_bad_images": args.skip_bad_images,
        "limit_train_batches": args.limit_train_batches,
        **run_cfg,
    }
    try:
        trainer = build_trainer(
            args,
            run_cfg,
            run_info,
            out,
            probe,
            val,
            workers,
            len(train),
            world_size,
            interrupted,
            lr=hparams.get("lr"),
        )
    except MisconfigurationException as err:  # e.g. 16-mixed on CPU, more devices than exist
        raise UserError(" ".join(str(err).split())) from None
    datamodule = PretrainDataModule(train, val, run_cfg["batch_size"], workers, args.seed)
    if trainer.is_global_zero:
        summary = ", ".join(
            f"{k}={v}" for k, v in {**run_cfg, **hparams}.items() if k != "num_classes"
        )
        print(f"pretrain {args.method} on {args.data} ({len(train)} images) -> {out}: {summary}")
        if plan is not None:
            print(plan.summary(), flush=True)

    start = time.perf_counter()
    status = _fit(trainer, model, datamodule, plan, out, interrupted)
    if status:
        return status
    wall = time.perf_counter() - start
    if trainer.is_global_zero:
        _report(out, wall, trainer)
        from lightly_matrix.report import report_after_run

        report_after_run(out, enabled=not args.no_report)
    return 0


def _fit(
    trainer: Any, model: Any, datamodule: Any, plan: ResumePlan | None, out: Path, stop: Any
) -> int:
    """``trainer.fit`` with signals turned into a saved checkpoint and exit status 128 + signal."""
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    from lightly_matrix.pretrain.guards import Diverged, RunStopped, check_weights_finite

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
        _raise_data_error(err)
        raise
    finally:
        stop.uninstall()
    return 0


def _raise_data_error(err: Exception) -> None:
    """DataLoader workers re-raise a data set's UserError inside another exception's message."""
    for name in ("UnreadableImageError", "UserError"):
        if name in type(err).__name__ or f"{name}: " in str(err):
            raise UserError(str(err).strip().splitlines()[-1].split(f"{name}: ")[-1]) from None


def _report(out: Path, wall: float, trainer: Any) -> None:
    """Adds the wall time to metrics.json and prints the evaluation table."""
    from lightly_matrix.evaluation import EVAL_COLUMNS, METRICS_FILE, format_table

    path = out / METRICS_FILE
    print(
        f"finished {trainer.current_epoch} epochs in {wall:.1f} s; checkpoint {out / 'last.ckpt'}"
    )
    if not path.exists():
        return
    metrics = json.loads(path.read_text())
    metrics.setdefault("run", {})["train_wall_s"] = round(wall, 1)
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    rows = [
        dict(row, epoch=f"{row['epoch']} (random init)" if row["epoch"] == 0 else row["epoch"])
        for row in metrics["history"]
    ]
    print("\nFrozen-backbone evaluation (" + str(path) + "):\n" + format_table(rows, EVAL_COLUMNS))
