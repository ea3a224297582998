"""The checkpoint files of a pretraining run: atomic writes, one writer, safe resuming
(``weights_only=True`` loads: pickled Python objects are refused, never run)."""

from __future__ import annotations

import argparse
import contextlib
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning import Callback, LightningModule, Trainer

from lightly_matrix.errors import UserError, first_line
from lightly_matrix.export.convert import EXPORT_FORMAT
from lightly_matrix.pretrain.config import RunConfig, from_checkpoint
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
    """``TorchCheckpointIO`` writing atomically: a kill or a full disk keeps the previous file."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        try:
            atomic_torch_save(checkpoint, Path(path))
        except (OSError, RuntimeError) as err:  # torch's zip writer: RuntimeError "enforce fail"
            if isinstance(err, RuntimeError) and "inline_container" not in str(err):
                raise
            run = Path(path).parent  # or its snapshots' folder inside it
            saved = has_checkpoint(run.parent if run.name == SNAPSHOT_DIR else run)
            then = "continue with --resume" if saved else "start the run again"
            raise UserError(
                f"cannot write the checkpoint {path} ({first_line(err)}): the disk is full or a"
                " file size limit (ulimit -f) was hit; any previous file there is intact; free"
                f" space and {then}"
            ) from None


class RunFolderLock(Callback):
    """Holds the ``--out`` folder's lock from :meth:`acquire` (before the loggers write) until the
    fit ends; a new run re-checks, locked, that no other one saved there."""

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
    if EXPORT_FORMAT in str(obj.get("meta")):
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
    """(path, content, skipped files) of ``resume``, or its most trained (newest) checkpoint."""
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
    """Refuses checkpoints of different runs in one folder (a value not recorded cannot differ)."""
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


@dataclass
class ResumePlan:
    """What ``--resume`` continues from: the checkpoint and the whole run it was trained with."""

    checkpoint: Path
    run_dir: Path
    global_step: int
    where: str
    saved: RunConfig
    saved_hparams: dict[str, Any]
    identity: tuple[Any, ...]
    notes: list[str] = field(default_factory=list)

    def check_no_newer_checkpoint(self, out: Path) -> None:
        """Refuses to continue in a folder whose last.ckpt is further on, or of another run."""
        last = out / LAST
        if not last.is_file() or last.resolve() == self.checkpoint.resolve():
            return
        try:
            other = load_training_checkpoint(last)
        except UserError:
            return
        check_one_run(str(out), {self.checkpoint: self.identity, last: run_identity(other)})
        newer = int(other.get("global_step", 0))
        if newer > self.global_step:
            raise UserError(
                f"{last} is further on (step {newer}) than --resume {self.checkpoint} (step "
                f"{self.global_step}); continuing in {out} would overwrite it: pass an empty --out"
            )

    def check_data(self, num_classes: int) -> None:
        """Labelled vs unlabelled data must match the checkpoint's online probe."""
        saved = self.saved_hparams.get("num_classes")
        if saved is not None and int(saved) != num_classes:
            raise UserError(
                f"--resume: the checkpoint was trained on data with {saved} classes, this --data "
                f"has {num_classes} (0 = unlabelled); resume with the run's own data"
            )

    def summary(self) -> str:
        notes = [f"\n  changed on resume: {note}" for note in self.notes]
        return f"resuming from {self.checkpoint} ({self.where})" + "".join(notes)


def plan_resume(args: argparse.Namespace) -> ResumePlan:
    """Finds the checkpoint and reads the run it was trained with."""
    from lightly_matrix.methods import METHOD_CLASSES

    path, ckpt, skipped = find_resume_checkpoint(args.resume)
    hparams: dict[str, Any] = dict(ckpt.get("hyper_parameters") or {})
    saved_run: dict[str, Any] = dict(ckpt.get(RUN_KEY) or {})
    method = saved_run["method"] = saved_run.get("method") or hparams.get("method")
    if method not in METHOD_CLASSES:
        raise UserError(
            f"--resume {args.resume!r}: the checkpoint names no method of this tool ({method!r})"
        )
    saved = from_checkpoint(saved_run, hparams, METHOD_CLASSES[method])
    run_dir = Path(args.resume) if Path(args.resume).is_dir() else path.parent
    if run_dir.name == SNAPSHOT_DIR:  # a snapshot's run is the folder above
        run_dir = run_dir.parent
    evaluated = not (saved.no_eval or getattr(args, "no_eval", False))
    for key in ("data", "eval_data") if evaluated else ("data",):
        folder = getattr(saved, key)
        # --data cannot change on resume: a moved folder is found through a link at its old place.
        if folder not in (None, "digits") and not Path(folder).is_dir():
            raise UserError(
                f"--resume: the run's --{key.replace('_', '-')} folder {folder} is gone; a resumed"
                f" run reads its images from there: move them back, or link their new place there"
                f" (ln -s NEWPLACE {folder}) and pass --resume {run_dir} alone"
            )
    return ResumePlan(
        checkpoint=path,
        run_dir=run_dir,
        global_step=int(ckpt.get("global_step", 0)),
        where=describe(ckpt),
        saved=saved,
        saved_hparams=hparams,
        notes=list(skipped),
        identity=run_identity(ckpt),
    )
