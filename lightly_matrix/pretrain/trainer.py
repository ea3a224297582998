"""The Lightning ``Trainer`` of a pretraining run: checkpoints, guards, loggers, DDP."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import LearningRateMonitor, Timer
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.strategies import DDPStrategy

from lightly_matrix.pretrain.checkpoints import LAST, AtomicCheckpointIO, RunCheckpoint
from lightly_matrix.pretrain.config import RunConfig
from lightly_matrix.pretrain.guards import Interrupted, NonFiniteGuard


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


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
    """A Trainer of ``config`` writing into ``out``; see :mod:`lightly_matrix.pretrain.checkpoints`.

    ``args`` only sets how the run is carried out (accelerator, checkpoint cadence, logging).
    """
    from lightly_matrix.evaluation import FrozenEvaluation

    run_info = config.record()
    world_size = config.world_size
    lr = config.hparams.get("lr")
    callbacks: list[Any] = [
        NonFiniteGuard(
            out / LAST,
            hint="lower --lr"
            + (f" (now {lr}, peak {peak_lr:g})" if lr is not None and peak_lr else "")
            + " or check --hp values",
        ),
        LearningRateMonitor(logging_interval="step"),
        # Its state rides in the checkpoint: a resumed run's time covers every session.
        Timer(),
        RunCheckpoint(
            out,
            run_info,
            every_steps=args.checkpoint_every_steps,
            every_minutes=args.checkpoint_every_minutes,
            keep_every=args.keep_every,
            interrupted=interrupted,
        ),
    ]
    if probe is not None and not config.no_eval:
        callbacks.append(
            FrozenEvaluation(probe, out, args.eval_every, run_info=run_info, num_workers=workers)
        )
    steps = num_images // config.global_batch_size
    limit = config.limit_train_batches
    if limit:
        steps = int(limit) if limit >= 1 else max(1, int(steps * limit))
    accelerator = args.accelerator
    strategy: Any = "auto"
    cpu = accelerator == "cpu" or (accelerator == "auto" and not _cuda_available())
    if world_size > 1:
        strategy = DDPStrategy(process_group_backend="gloo" if cpu else None)
    return Trainer(
        max_epochs=config.epochs,
        accelerator=accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=strategy,
        # PyTorch's SyncBatchNorm runs on GPUs only; CPU processes keep per-process statistics.
        sync_batchnorm=world_size > 1 and not cpu,
        precision=config.precision,
        default_root_dir=out,
        plugins=[AtomicCheckpointIO()],
        # RunCheckpoint replaces ModelCheckpoint (which never writes last.ckpt mid-run).
        enable_checkpointing=True,
        callbacks=callbacks,
        logger=[
            TensorBoardLogger(save_dir=out, name="tensorboard"),
            CSVLogger(save_dir=out, name="csv"),
        ],
        log_every_n_steps=args.log_every_n_steps or max(1, min(50, steps)),
        limit_train_batches=int(limit) if limit and limit >= 1 else (limit or 1.0),
        limit_val_batches=1.0 if val is not None else 0,
        num_sanity_val_steps=0,
        # The data module re-seeds and re-shards each epoch (exact resume); see data/module.py.
        reload_dataloaders_every_n_epochs=1,
        use_distributed_sampler=False,
        enable_model_summary=False,
        enable_progress_bar=not args.no_progress,
    )
