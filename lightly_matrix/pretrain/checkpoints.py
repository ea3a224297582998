"""Checkpoints of a pretraining run: atomic writes, a regular cadence, one writer, safe resuming.

``OUT/last.ckpt`` is rewritten (through a renamed temporary file, never from non-finite weights) at
every epoch end, the ``--checkpoint-every-*`` cadence and on Ctrl-C / SIGTERM. ``--keep-every``
snapshots are Lightning's ``ModelCheckpoint``, SLURM requeue saves its ``hpc_ckpt_N.ckpt``.
``--resume`` loads with ``weights_only=True``: pickled Python objects are refused, never run.
"""

from __future__ import annotations

import contextlib
import pickle
import time
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.callbacks import Checkpoint

from lightly_matrix.errors import UserError, first_line
from lightly_matrix.pretrain.guards import Interrupted, check_weights_finite
from lightly_matrix.pretrain.outdir import is_failed_start
from lightly_matrix.user_files import check_checkpoint_file, path_kind
from lightly_matrix.utils.io import atomic_torch_save
from lightly_matrix.utils.lock import folder_lock
from lightly_matrix.utils.loop_progress import checkpoint_progress

LAST = "last.ckpt"
SNAPSHOT_DIR = "checkpoints"
#: Key of our own record in every checkpoint: the run's settings, for ``--resume``.
RUN_KEY = "lightly_matrix"
#: What makes two checkpoints the same run (a hand-copied file of another run differs here).
RUN_IDENTITY = ("method", "data", "backbone", "image_size", "seed")


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` writing through a renamed temporary file: Lightning's own writes in
    place, so a kill or a full disk during a save would destroy the previous checkpoint."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        try:
            atomic_torch_save(checkpoint, Path(path))
        except (OSError, RuntimeError) as err:  # torch's zip writer: RuntimeError "enforce fail"
            if isinstance(err, RuntimeError) and "inline_container" not in str(err):
                raise
            raise UserError(
                f"cannot write the checkpoint {path} ({first_line(err)}): the disk is full or a"
                " file size limit (ulimit -f) was hit; the previous file there is intact; free"
                " space and continue with --resume"
            ) from None


class RunCheckpoint(Checkpoint):
    """Writes ``OUT/last.ckpt`` at every epoch end, every ``every_steps`` steps and
    ``every_minutes`` minutes (0: off), and when ``interrupted``, with ``run_info`` under
    :data:`RUN_KEY`. Lightning's ``ModelCheckpoint`` takes one cadence at a time and its SIGTERM
    stop comes before the step's callbacks: resuming bit-exactly needs this save at a step's end.
    """

    def __init__(
        self,
        out: Path,
        run_info: dict[str, Any],
        every_steps: int,
        every_minutes: float,
        interrupted: Interrupted,
    ) -> None:
        self.last_path = Path(out) / LAST
        self.run_info = run_info
        self.every_steps = every_steps
        self.every_seconds = every_minutes * 60.0
        self.interrupted = interrupted
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
            raise self.interrupted.exception(trainer, self.last_path)
        # The epoch-end save follows the last batch (a save there too would be redundant).
        last_batch = batch_idx + 1 >= trainer.num_training_batches
        step_due = self.every_steps > 0 and trainer.global_step % self.every_steps == 0
        if (step_due or time_due) and not last_batch:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.world_size > 1:
            # Lightning syncs epoch metrics at their first read, which on rank 0 the progress bar
            # has just done: reading them on every rank keeps the collectives in the same order.
            _ = trainer.progress_bar_metrics
        self._save(trainer)


class RunFolderLock(Callback):
    """Holds the ``--out`` folder's lock from :meth:`acquire` (before the loggers create their
    folders) until the fit ends; a new run re-checks, locked, that no other one saved there."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._held = contextlib.ExitStack()

    def acquire(self, new_run: bool) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self._held.enter_context(folder_lock(self.out))
        if new_run and has_checkpoint(self.out):
            self._held.close()
            raise UserError(
                f"--out {self.out} received another run's checkpoint while this one started; "
                f"choose another --out, or pass --resume {self.out} to continue that run"
            )

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._held.close()

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        self._held.close()


# ----------------------------------------------------------------------------------------- resume
def _describe_foreign(obj: Any) -> str:
    if isinstance(obj, torch.Tensor):
        return "a single tensor"
    if not isinstance(obj, dict):
        return f"a {type(obj).__name__}"
    if "lightly_matrix.mmdet_backbone" in str(obj.get("meta")):
        return "a backbone exported for mmdet (lightly-matrix export), not a training checkpoint"
    return f"a dict with keys {', '.join(list(map(str, obj))[:6])} (no Lightning training state)"


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
        raise UserError(
            f"--resume {str(path)!r}: the file is corrupted or truncated ({first_line(err)}); "
            "resume from another checkpoint of the run (e.g. its folder, or "
            "checkpoints/epochNNNN.ckpt)"
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
    """The path, content and notes on skipped files of the checkpoint to continue from:
    ``resume`` itself, or the most trained valid one in a folder (then the newest)."""
    path = Path(resume)
    if path.is_file():
        return path, load_training_checkpoint(path), []
    if not path.is_dir():
        kind = path_kind(path)
        what = f"it is {kind}, not a file or run folder" if kind else "no such file or run folder"
        raise UserError(f"--resume {resume!r}: no checkpoint there ({what})")
    loaded: dict[Path, dict[str, Any]] = {}
    notes = []
    for candidate in _candidates(path):
        try:
            loaded[candidate] = load_training_checkpoint(candidate)
        except UserError as err:
            notes.append(f"skipped {candidate}: {str(err).split(': ', 1)[-1]}")
    if not loaded:
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
    check_one_run(resume, {p: run_identity(ckpt) for p, ckpt in loaded.items()})
    best = max(loaded, key=lambda p: (int(loaded[p].get("global_step", 0)), p.stat().st_mtime))
    return best, loaded[best], notes


def run_identity(ckpt: dict[str, Any]) -> tuple[Any, ...]:
    """``(method, data, backbone, image_size, seed)`` of a checkpoint (``None`` where unknown)."""
    run, known = ckpt.get(RUN_KEY), dict(ckpt.get("hyper_parameters") or {})
    if isinstance(run, dict):
        known.update(run.get("hparams") or {}, **run)
    return tuple(known.get(key) for key in RUN_IDENTITY)


def check_one_run(resume: str, runs: dict[Path, tuple[Any, ...]]) -> None:
    """Refuses checkpoints of different runs in one folder, listing them (continuing the most
    trained would overwrite the others' ``last.ckpt``)."""
    # A value a checkpoint does not record cannot disagree.
    known = [{v for v in values if v is not None} for values in zip(*runs.values(), strict=True)]
    if all(len(values) <= 1 for values in known):
        return
    listed = "; ".join(
        f"{path}: {method} on {data}, {backbone} at {size} px, seed {seed}"
        for path, (method, data, backbone, size, seed) in runs.items()
    )
    raise UserError(
        f"--resume {resume!r}: the folder holds checkpoints of different runs ({listed}); move"
        " the ones of other runs out of it, or pass --resume FILE.ckpt with an empty --out"
    )


def describe(ckpt: dict[str, Any]) -> str:
    """``epoch E, step S`` of a checkpoint (E = finished epochs)."""
    progress = checkpoint_progress(ckpt)
    return f"epoch {progress.epochs_done}, step {progress.global_step}"
