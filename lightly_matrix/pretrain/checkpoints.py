"""Checkpoints of a pretraining run: atomic writes, a regular cadence, and safe resuming.

Guarantees (what the README promises):

- ``OUT/last.ckpt`` is the newest state of the run. It is rewritten at every epoch end, every
  ``--checkpoint-every-steps`` steps and ``--checkpoint-every-minutes`` minutes, and when the run is
  interrupted (Ctrl-C, SIGTERM). Every write goes to a temporary file in the same folder that is
  renamed over the old one, so a kill at any moment leaves the previous checkpoint intact.
- A checkpoint is never written from non-finite weights (see :mod:`.guards`).
- ``--resume`` loads with ``torch.load(weights_only=True)``: a file holding pickled Python objects
  (which could run code) is refused, never executed.
"""

from __future__ import annotations

import pickle
import time
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import Checkpoint

from lightly_matrix.errors import UserError, first_line
from lightly_matrix.pretrain.guards import Interrupted, check_weights_finite
from lightly_matrix.pretrain.outdir import is_failed_start
from lightly_matrix.user_files import check_checkpoint_file
from lightly_matrix.utils.io import atomic_copy, atomic_torch_save
from lightly_matrix.utils.loop_progress import checkpoint_progress

LAST = "last.ckpt"
SNAPSHOT_DIR = "checkpoints"
#: Key of our own record in every checkpoint: the run's settings, for ``--resume``.
RUN_KEY = "lightly_matrix"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` with atomic local writes (Lightning writes in place)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        atomic_torch_save(checkpoint, Path(path))


class RunCheckpoint(Checkpoint):
    """Writes ``OUT/last.ckpt`` at every epoch end, on a step / time cadence and on interrupts.

    Args:
        out: The run folder.
        run_info: Settings of the run stored in every checkpoint under ``"lightly_matrix"``.
        every_steps: Also save every this many training steps (0: off).
        every_minutes: Also save after this many minutes since the last save (0: off).
        keep_every: Also keep ``OUT/checkpoints/epochNNNN.ckpt`` every this many epochs (0: off).
        interrupted: Set by the signal handlers; checked after every step.
    """

    def __init__(
        self,
        out: Path,
        run_info: dict[str, Any],
        every_steps: int = 0,
        every_minutes: float = 0.0,
        keep_every: int = 0,
        interrupted: Interrupted | None = None,
    ) -> None:
        self.out = Path(out)
        self.run_info = run_info
        self.every_steps = every_steps
        self.every_seconds = every_minutes * 60.0
        self.keep_every = keep_every
        self.interrupted = interrupted or Interrupted()
        self._last_save = time.monotonic()

    @property
    def last_path(self) -> Path:
        return self.out / LAST

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._last_save = time.monotonic()
        self.interrupted.take_over()  # SIGTERM saves and stops like Ctrl-C (issue 21)

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[RUN_KEY] = dict(self.run_info)

    def _save(self, trainer: Trainer, pl_module: LightningModule) -> None:
        check_weights_finite(pl_module, trainer.global_step, self.last_path)
        trainer.save_checkpoint(self.last_path, weights_only=False)
        self._last_save = time.monotonic()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # One collective decision per step, so that every process saves (a collective) together.
        local = [
            float(self.interrupted.signum is not None),
            float(
                self.every_seconds > 0 and time.monotonic() - self._last_save >= self.every_seconds
            ),
        ]
        if trainer.world_size > 1:
            decided = trainer.strategy.reduce(torch.tensor(local), reduce_op="max")
            local = [float(v) for v in decided.tolist()]
        stop, time_due = bool(local[0]), bool(local[1])
        if stop:
            self._save(trainer, pl_module)
            raise self.interrupted.exception(trainer, self.last_path)
        # The epoch-end save follows the last batch; a save there too would be redundant.
        last_batch = batch_idx + 1 >= trainer.num_training_batches
        step_due = self.every_steps > 0 and trainer.global_step % self.every_steps == 0
        if (step_due or time_due) and not last_batch:
            self._save(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.world_size > 1:
            # Lightning syncs epoch metrics lazily, at their first read: on rank 0 the progress bar
            # has just read them (collectives), the other ranks would only do so after this hook.
            # Reading them here on every rank keeps the collectives in the same order everywhere,
            # so the save's barrier below does not meet a metric's all-reduce.
            _ = trainer.progress_bar_metrics
        self._save(trainer, pl_module)
        epoch = trainer.current_epoch  # 0-based index of the epoch just finished
        if self.keep_every and (epoch + 1) % self.keep_every == 0 and trainer.is_global_zero:
            atomic_copy(self.last_path, self.out / SNAPSHOT_DIR / f"epoch{epoch:04d}.ckpt")


# ----------------------------------------------------------------------------------------- resume
def _describe_foreign(obj: Any) -> str:
    if isinstance(obj, torch.Tensor):
        return "a single tensor"
    if isinstance(obj, dict):
        meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
        if meta.get("format") == "lightly_matrix.mmdet_backbone":
            return (
                "a backbone exported for mmdet (lightly-matrix export), not a training checkpoint"
            )
        keys = ", ".join(list(map(str, obj))[:6])
        return f"a dict with keys {keys} (no Lightning training state)"
    return f"a {type(obj).__name__}"


def load_training_checkpoint(path: Path) -> dict[str, Any]:
    """Loads a Lightning training checkpoint safely; one-line ``UserError`` for anything else."""
    check_checkpoint_file(path, "--resume")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL " in str(err):  # objects to rebuild by running code, not broken bytes
            raise UserError(
                f"--resume {str(path)!r}: refusing to load, the file holds pickled Python objects "
                "that could run code (a Lightning checkpoint of this tool holds only tensors and "
                "plain values)"
            ) from None
        raise UserError(f"--resume {str(path)!r}: not a readable checkpoint ({err})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        reason = first_line(err)
        raise UserError(
            f"--resume {str(path)!r}: the file is corrupted or truncated ({reason}); resume from "
            "another checkpoint of the run (e.g. its folder, or checkpoints/epochNNNN.ckpt)"
        ) from None
    if not (isinstance(ckpt, dict) and "state_dict" in ckpt and "loops" in ckpt):
        raise UserError(
            f"--resume {str(path)!r} is {_describe_foreign(ckpt)}; pass a run folder or a "
            ".ckpt written by lightly-matrix pretrain"
        )
    return ckpt


def _candidates(folder: Path) -> list[Path]:
    found = [folder / LAST, *sorted((folder / SNAPSHOT_DIR).glob("*.ckpt"))]
    found += sorted(folder.glob("hpc_ckpt_*.ckpt"))  # Lightning's SLURM requeue saves
    return [p for p in found if p.is_file()]


def has_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` holds a checkpoint file ``--resume`` would consider."""
    return folder.is_dir() and bool(_candidates(folder))


def find_resume_checkpoint(resume: str) -> tuple[Path, dict[str, Any], list[str]]:
    """The checkpoint to continue from: ``resume`` itself, or the newest valid one in a folder.

    "Newest" is the most trained (highest ``global_step``; the newest file on a tie). Files that
    fail to load are skipped and reported.

    Returns:
        The path, the loaded checkpoint and notes on skipped files.
    """
    path = Path(resume)
    if path.is_file():
        return path, load_training_checkpoint(path), []
    if not path.is_dir():
        raise UserError(f"--resume {resume!r}: no checkpoint there (no such file or run folder)")
    best: tuple[tuple[int, float], Path, dict[str, Any]] | None = None
    notes = []
    runs: dict[Path, tuple[Any, ...]] = {}
    for candidate in _candidates(path):
        try:
            ckpt = load_training_checkpoint(candidate)
        except UserError as err:
            notes.append(f"skipped {candidate}: {str(err).split(': ', 1)[-1]}")
            continue
        runs[candidate] = run_identity(ckpt)
        key = (int(ckpt.get("global_step", 0)), candidate.stat().st_mtime)
        if best is None or key > best[0]:
            best = (key, candidate, ckpt)
    if best is None:
        if is_failed_start(path):
            raise UserError(
                f"--resume {resume!r}: that run stopped before its first checkpoint, there is"
                " nothing to resume; start it again without --resume (the same --out is accepted,"
                " its logs are kept)"
            )
        detail = f" ({'; '.join(notes)})" if notes else ""
        raise UserError(
            f"--resume {resume!r}: no valid checkpoint in that folder (looked for {LAST}, "
            f"{SNAPSHOT_DIR}/*.ckpt, hpc_ckpt_*.ckpt){detail}"
        )
    check_one_run(resume, runs)
    return best[1], best[2], notes


#: What makes two checkpoints the same run (a hand-copied file of another run differs here).
RUN_IDENTITY = ("method", "data", "backbone", "image_size", "seed")


def run_identity(ckpt: dict[str, Any]) -> tuple[Any, ...]:
    """``(method, data, backbone, image_size, seed)`` of a checkpoint (``None`` where unknown)."""
    run = ckpt.get(RUN_KEY) if isinstance(ckpt.get(RUN_KEY), dict) else {}
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt.get("hyper_parameters"), dict) else {}
    return tuple(run.get(key, hparams.get(key)) for key in RUN_IDENTITY)


def check_one_run(resume: str, runs: dict[Path, tuple[Any, ...]]) -> None:
    """Refuses a run folder whose checkpoints belong to different runs, listing them.

    Continuing "the most trained" of them would overwrite the others' ``last.ckpt``.
    """
    # Older checkpoints may not record every field: only values both sides know can disagree.
    known = [{v for v in values if v is not None} for values in zip(*runs.values(), strict=True)]
    if all(len(values) <= 1 for values in known):
        return

    def name(identity: tuple[Any, ...]) -> str:
        parts = dict(zip(RUN_IDENTITY, identity, strict=True))
        return (
            f"{parts['method']} on {parts['data']}, {parts['backbone']} at {parts['image_size']}"
            f" px, seed {parts['seed']}"
        )

    listed = "; ".join(f"{path}: {name(identity)}" for path, identity in runs.items())
    raise UserError(
        f"--resume {resume!r}: the folder holds checkpoints of different runs ({listed}); move"
        " the ones of other runs out of it, or pass --resume FILE.ckpt with an empty --out"
    )


def describe(ckpt: dict[str, Any]) -> str:
    """``epoch E, step S`` of a checkpoint (E = finished epochs, mid-epoch shown as a fraction)."""
    progress = checkpoint_progress(ckpt)
    return f"epoch {progress.epochs_done}, step {progress.global_step}"


__all__ = [
    "LAST",
    "RUN_KEY",
    "AtomicCheckpointIO",
    "RunCheckpoint",
    "atomic_torch_save",
    "describe",
    "find_resume_checkpoint",
    "load_training_checkpoint",
]
