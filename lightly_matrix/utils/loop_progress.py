"""Where a Lightning fit loop stands, from a checkpoint dict or a live trainer (the one reader of
Lightning's loop progress counters: it has no public "epochs finished")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LoopProgress:
    """A fit loop's position; ``None`` where the source does not record it."""

    #: Lightning's ``current_epoch`` (at the end-of-training save, already the next).
    epoch: int | None = None
    epochs_done: int | None = None  #: Epochs whose end hooks have run.
    batches_done: int | None = None  #: Training batches finished in ``epoch``.
    global_step: int | None = None  #: Optimizer steps taken.


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _processed(counter: Any) -> int | None:
    # ``completed`` lags ``processed`` by one in a checkpoint saved from the end hooks.
    current = counter.get("current") if isinstance(counter, Mapping) else None
    if not isinstance(current, Mapping):
        return None
    return _int_or_none(current.get("processed", current.get("completed")))


def checkpoint_progress(ckpt: Mapping[str, Any]) -> LoopProgress:
    """The position of a Lightning checkpoint dict (``None`` for missing or odd entries; without
    loop state, as in a hand-made checkpoint, ``epochs_done`` is ``epoch + 1``).

    Examples:
        >>> checkpoint_progress({"epoch": 2, "global_step": 30}).epochs_done
        3
        >>> fit = {"epoch_progress": {"current": {"processed": 3, "completed": 2}}}
        >>> checkpoint_progress({"epoch": 2, "loops": {"fit_loop": fit}}).epochs_done
        3
    """
    loops = ckpt.get("loops")
    fit = loops.get("fit_loop") if isinstance(loops, Mapping) else None
    fit = fit if isinstance(fit, Mapping) else {}
    epoch = _int_or_none(ckpt.get("epoch"))
    epochs_done = _processed(fit.get("epoch_progress"))
    if epochs_done is None and epoch is not None:
        epochs_done = epoch + 1
    return LoopProgress(
        epoch=epoch,
        epochs_done=epochs_done,
        batches_done=_processed(fit.get("epoch_loop.batch_progress")),
        global_step=_int_or_none(ckpt.get("global_step")),
    )


def trainer_progress(trainer: Any) -> LoopProgress:
    """The position of a live ``pytorch_lightning.Trainer`` (the same counters a save writes)."""
    fit = trainer.fit_loop
    return LoopProgress(
        epoch=int(trainer.current_epoch),
        epochs_done=int(fit.epoch_progress.current.processed),
        batches_done=int(fit.epoch_loop.batch_progress.current.processed),
        global_step=int(trainer.global_step),
    )
