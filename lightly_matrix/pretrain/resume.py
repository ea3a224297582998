"""``--resume``: which checkpoint, and the run it was trained with (its whole
:class:`~lightly_matrix.pretrain.config.RunConfig`, so ``--resume RUN`` alone is enough)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightly_matrix.errors import UserError
from lightly_matrix.pretrain.config import RunConfig


@dataclass
class ResumePlan:
    """What ``--resume`` continues from. Built by :func:`plan_resume`."""

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
        from lightly_matrix.pretrain import checkpoints

        last = out / checkpoints.LAST
        if not last.is_file() or last.resolve() == self.checkpoint.resolve():
            return
        try:
            other = checkpoints.load_training_checkpoint(last)
        except UserError:
            return
        # Continuing here would overwrite another run's last.ckpt.
        identities = {self.checkpoint: self.identity, last: checkpoints.run_identity(other)}
        checkpoints.check_one_run(str(out), identities)
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
        lines = [f"resuming from {self.checkpoint} ({self.where})"]
        lines += [f"  changed on resume: {note}" for note in self.notes]
        return "\n".join(lines)


def plan_resume(args: argparse.Namespace) -> ResumePlan:
    """Finds the checkpoint and reads the run it was trained with."""
    from lightly_matrix.methods import METHOD_CLASSES
    from lightly_matrix.pretrain import checkpoints
    from lightly_matrix.pretrain.config import from_checkpoint

    path, ckpt, skipped = checkpoints.find_resume_checkpoint(args.resume)
    hparams: dict[str, Any] = dict(ckpt.get("hyper_parameters") or {})
    saved_run: dict[str, Any] = dict(ckpt.get(checkpoints.RUN_KEY) or {})
    method = saved_run.get("method") or hparams.get("method")
    if method not in METHOD_CLASSES:
        raise UserError(
            f"--resume {args.resume!r}: the checkpoint does not name a method of this tool "
            f"({method!r})"
        )
    saved_run["method"] = method
    saved = from_checkpoint(saved_run, hparams, METHOD_CLASSES[method])
    run_dir = Path(args.resume) if Path(args.resume).is_dir() else path.parent
    if run_dir.name == checkpoints.SNAPSHOT_DIR:  # a snapshot's run is the folder above
        run_dir = run_dir.parent
    evaluated = not (saved.no_eval or getattr(args, "no_eval", False))
    for key in ("data", "eval_data") if evaluated else ("data",):
        folder = getattr(saved, key)
        # --data cannot change on resume (another folder would be another run): a moved folder
        # is found again through a link at its recorded place.
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
        where=checkpoints.describe(ckpt),
        saved=saved,
        saved_hparams=hparams,
        notes=list(skipped),
        identity=checkpoints.run_identity(ckpt),
    )
