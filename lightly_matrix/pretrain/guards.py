"""What stops a run cleanly: Ctrl-C / SIGTERM, and losses or weights that stop being finite."""

from __future__ import annotations

import math
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from pytorch_lightning import Callback, LightningModule, Trainer

from lightly_matrix.errors import UserError


class RunStopped(Exception):  # noqa: N818 (a stop, not an error)
    """Raised after the interrupt checkpoint is saved."""

    def __init__(self, signum: int, checkpoint: Path, where: str) -> None:
        super().__init__(f"{signal.Signals(signum).name} at {where}")
        self.signum = signum
        self.checkpoint = checkpoint


class Interrupted:
    """Records the first SIGINT / SIGTERM: the run saves and stops after the current step; a
    second Ctrl-C stops at once (``KeyboardInterrupt``), leaving the previous checkpoint intact."""

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

    def exception(self, trainer: Trainer, checkpoint: Path) -> RunStopped:
        where = f"epoch {trainer.current_epoch + 1}, step {trainer.global_step}"
        return RunStopped(self.signum or signal.SIGINT, checkpoint, where)


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


class NonFiniteGuard(Callback):
    """Stops at the first non-finite loss, before its backward pass changes any weight (one host
    sync per step; Lightning's ``EarlyStopping(check_finite=True)`` checks only at epoch ends)."""

    def __init__(self, checkpoint: Path, hint: str) -> None:
        self.checkpoint = checkpoint
        self.hint = hint

    def on_before_backward(
        self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor
    ) -> None:
        value = float(loss.detach())
        if not math.isfinite(value):
            saved = "no checkpoint was saved yet"
            if self.checkpoint.exists():
                saved = f"the last good checkpoint is {self.checkpoint}"
            raise Diverged(
                f"training diverged at step {trainer.global_step} (epoch "
                f"{trainer.current_epoch + 1}): loss is {value}; {saved}; {self.hint}"
            )
