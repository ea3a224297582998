"""The Lightning ``Trainer`` of a pretraining run: checkpoints, guards, loggers, DDP."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint, Timer
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.strategies import DDPStrategy

from lightly_matrix.data.folder import other_rank_from_env
from lightly_matrix.pretrain.checkpoints import (
    LAST,
    SNAPSHOT_DIR,
    AtomicCheckpointIO,
    RunCheckpoint,
    RunFolderLock,
)
from lightly_matrix.pretrain.config import RunConfig
from lightly_matrix.pretrain.guards import Interrupted, NonFiniteGuard


def build_trainer(
    args: argparse.Namespace,
    config: RunConfig,
    out: Path,
    probe: Any,
    val: Any,
    workers: int,
    num_images: int,
    interrupted: Interrupted,
    peak_lr: float | None = None,
) -> Trainer:
    """A Trainer of ``config`` writing into ``out``, which it locks until the fit ends; ``args``
    sets how the run is carried out (accelerator, checkpoint cadence, logging)."""
    import torch

    from lightly_matrix.evaluation import FrozenEvaluation

    run_info = config.record()
    lr = config.hparams.get("lr")
    peak = f" (now {lr}, peak {peak_lr:g})" if lr is not None and peak_lr else ""
    lock = RunFolderLock(out)
    callbacks: list[Any] = [
        lock,
        NonFiniteGuard(out / LAST, hint=f"lower --lr{peak} or check --hp values"),
        LearningRateMonitor(logging_interval="step"),
        Timer(),  # its state rides in the checkpoint: a resumed run's time covers every session
        RunCheckpoint(
            out, run_info, args.checkpoint_every_steps, args.checkpoint_every_minutes, interrupted
        ),
    ]
    # A resume finds its snapshots there, may continue elsewhere or change --keep-every: intended.
    for message in ("Checkpoint directory", "The dirpath has changed", "Be aware that when using"):
        warnings.filterwarnings("ignore", message)
    if args.keep_every:
        callbacks.append(
            ModelCheckpoint(
                dirpath=out / SNAPSHOT_DIR,
                filename="epoch{epoch:04d}",
                auto_insert_metric_name=False,
                every_n_epochs=args.keep_every,
                save_top_k=-1,
                save_on_train_epoch_end=True,
                enable_version_counter=False,
            )
        )
    if probe is not None and not config.no_eval:
        callbacks.append(
            FrozenEvaluation(probe, out, args.eval_every, run_info=run_info, num_workers=workers)
        )
    limit = config.limit_train_batches
    steps = num_images // config.global_batch_size
    if limit:
        steps = int(limit) if limit >= 1 else max(1, int(steps * limit))
    cpu = args.accelerator == "cpu" or (
        args.accelerator == "auto" and not torch.cuda.is_available()
    )
    multi = config.world_size > 1
    trainer = Trainer(
        max_epochs=config.epochs,
        accelerator=args.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=DDPStrategy(process_group_backend="gloo" if cpu else None) if multi else "auto",
        # PyTorch's SyncBatchNorm runs on GPUs only; CPU processes keep per-process statistics.
        sync_batchnorm=multi and not cpu,
        precision=config.precision,  # type: ignore[arg-type]  # a str Lightning checks itself
        default_root_dir=out,
        # A SLURM job gets Lightning's SLURMEnvironment (auto_requeue) on its own.
        plugins=[AtomicCheckpointIO()],
        callbacks=callbacks,
        logger=[
            TensorBoardLogger(save_dir=out, name="tensorboard"),
            CSVLogger(save_dir=out, name="csv"),
        ],
        log_every_n_steps=args.log_every_n_steps or max(1, min(50, steps)),
        # None, not 1.0, for "all": Lightning prints a line for an explicit 1.0.
        limit_train_batches=int(limit) if limit and limit >= 1 else (limit or None),
        limit_val_batches=None if val is not None else 0,
        num_sanity_val_steps=0,
        # The data module re-seeds and re-shards each epoch (exact resume); see data/module.py.
        reload_dataloaders_every_n_epochs=1,
        use_distributed_sampler=False,
        enable_model_summary=False,
        enable_progress_bar=not args.no_progress,
    )
    if not other_rank_from_env():  # global rank 0 writes the run folder
        lock.acquire(new_run=args.resume is None)
    return trainer
