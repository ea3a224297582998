"""The Lightning ``Trainer`` of a pretraining run and its callbacks: the checkpoint cadence, the
clean stops (Ctrl-C / SIGTERM, a loss or weight that is not finite), loggers, DDP."""

from __future__ import annotations

import argparse
import math
import signal
import threading
import time
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import Checkpoint, LearningRateMonitor, ModelCheckpoint, Timer
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.strategies import DDPStrategy

from lightly_matrix.data.folder import other_rank_from_env
from lightly_matrix.errors import UserError
from lightly_matrix.pretrain.checkpoints import (
    LAST,
    RUN_KEY,
    SNAPSHOT_DIR,
    AtomicCheckpointIO,
    RunFolderLock,
)
from lightly_matrix.pretrain.config import RunConfig


class RunStopped(Exception):  # noqa: N818 (a stop, not an error)
    """Raised after the interrupt checkpoint is saved."""

    def __init__(self, signum: int, checkpoint: Path, trainer: Trainer) -> None:
        where = f"epoch {trainer.current_epoch + 1}, step {trainer.global_step}"
        super().__init__(f"{signal.Signals(signum).name} at {where}")
        self.signum = signum
        self.checkpoint = checkpoint


class Interrupted:
    """Records the first SIGINT / SIGTERM (save and stop after this step); a second Ctrl-C stops."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signum is None:
            print(
                f"\n{signal.Signals(signum).name} received: saving after this step "
                "(Ctrl-C again to stop at once)",
                flush=True,
            )
        self.signum = signum

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)

    def take_over(self) -> None:
        """Handles SIGTERM again after Lightning's fit installed its own (no save of ours)."""
        if self._previous and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._handle)

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}


class Diverged(UserError):  # noqa: N818 (reported to the user as one line)
    """Training produced a non-finite loss or weight."""


def check_weights_finite(module: torch.nn.Module, step: int, keeping: Path | None = None) -> None:
    """Raises :class:`Diverged` naming the first parameter or buffer that is not finite."""
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            keep = f"; kept the last good checkpoint {keeping}" if keeping else ""
            raise Diverged(
                f"training diverged at step {step}: weight {name!r} is not finite{keep}; "
                "lower --lr or check the --hp values"
            )


class RunCheckpoint(Checkpoint):
    """Writes ``OUT/last.ckpt`` (``run_info`` under :data:`RUN_KEY`) each epoch, ``every_steps``,
    ``every_minutes`` (0: off) and if ``interrupted``, at a step's end (a bit-exact resume); stops
    at the first non-finite loss, before its backward pass (EarlyStopping waits for epoch ends)."""

    def __init__(
        self,
        out: Path,
        run_info: dict[str, Any],
        every_steps: int,
        every_minutes: float,
        interrupted: Interrupted,
        hint: str,
    ) -> None:
        self.last_path = Path(out) / LAST
        self.run_info = run_info
        self.every_steps = every_steps
        self.every_seconds = every_minutes * 60.0
        self.interrupted = interrupted
        self.hint = hint
        self._last_save = time.monotonic()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._last_save = time.monotonic()
        self.interrupted.take_over()

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # Every save passes here (snapshots and SLURM's too): none is made of diverged weights.
        keeping = self.last_path if self.last_path.exists() else None
        check_weights_finite(pl_module, trainer.global_step, keeping)
        checkpoint[RUN_KEY] = dict(self.run_info)

    def on_before_backward(
        self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor
    ) -> None:
        value = float(loss.detach())
        if not math.isfinite(value):
            last = f"the last good checkpoint is {self.last_path}"
            saved = last if self.last_path.exists() else "no checkpoint was saved yet"
            raise Diverged(
                f"training diverged at step {trainer.global_step} (epoch "
                f"{trainer.current_epoch + 1}): loss is {value}; {saved}; {self.hint}"
            )

    def _save(self, trainer: Trainer) -> None:
        trainer.save_checkpoint(self.last_path, weights_only=False)
        self._last_save = time.monotonic()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # One collective decision per step, so that every process saves (a collective) together.
        since = time.monotonic() - self._last_save
        flags = torch.tensor([self.interrupted.signum is not None, 0 < self.every_seconds <= since])
        if trainer.world_size > 1:
            flags = trainer.strategy.reduce(flags.float(), reduce_op="max")
        stop, time_due = (bool(flag) for flag in flags.tolist())
        if stop:
            self._save(trainer)
            raise RunStopped(self.interrupted.signum or signal.SIGINT, self.last_path, trainer)
        # The epoch-end save follows the last batch (a save there too would be redundant).
        last_batch = batch_idx + 1 >= trainer.num_training_batches
        step_due = self.every_steps > 0 and trainer.global_step % self.every_steps == 0
        if (step_due or time_due) and not last_batch:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.world_size > 1:
            # Epoch metrics sync at their first read (rank 0's progress bar): read on all ranks.
            _ = trainer.progress_bar_metrics
        self._save(trainer)


def build_trainer(
    args: argparse.Namespace,
    config: RunConfig,
    out: Path,
    model: Any,
    probe: Any,
    val: Any,
    workers: int,
    steps: int,
    interrupted: Interrupted,
) -> Trainer:
    """A Trainer of ``config`` writing into ``out`` (locked until the fit ends), as ``args`` set."""
    from lightly_matrix.evaluation import FrozenEvaluation

    run_info = config.record()
    peak = f"now {config.hparams['lr']}, peak {model.peak_lr(config.world_size):g}"
    hint = f"lower --lr ({peak}) or check --hp values"
    lock = RunFolderLock(out)
    saves = (args.checkpoint_every_steps, args.checkpoint_every_minutes)
    callbacks: list[Any] = [
        lock,
        LearningRateMonitor(logging_interval="step"),
        Timer(),  # its state rides in the checkpoint: a resumed run's time covers every session
        RunCheckpoint(out, run_info, *saves, interrupted, hint),
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
    cpu = args.accelerator == "cpu" or (
        args.accelerator == "auto" and not torch.cuda.is_available()
    )
    if cpu and config.precision == "16-mixed":  # Lightning would run bf16-mixed instead
        raise UserError("--precision 16-mixed needs a GPU; use bf16-mixed or 32-true on CPU")
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
