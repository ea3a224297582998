"""Stop a transfer whose loss is not finite or has exploded, before it writes any results."""

from __future__ import annotations

import math
from typing import Any

from mmdet.registry import HOOKS
from mmengine.hooks import Hook

from lightly_matrix.errors import UserError

#: A loss this many times its first value has diverged (Mask R-CNN starts near 3-5).
DIVERGED = 1e4


@HOOKS.register_module(force=True)
class DivergenceHook(Hook):
    """Raise a one-line ``UserError`` on a non-finite or exploded training loss (mmdet's
    ``CheckInvalidLossHook`` only checks ``isfinite`` every 50 iterations)."""

    priority = "VERY_LOW"
    first: float | None = None  # the first iteration's loss

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        loss = float((outputs or {}).get("loss", 0.0))  # a tensor: its item
        self.first = loss if self.first is None else self.first
        if not math.isfinite(loss) or abs(loss) > DIVERGED * max(abs(self.first), 1e-3):
            raise UserError(
                f"the training loss is {loss:.4g} at iteration {runner.iter + 1} (first"
                f" {self.first:.4g}): training diverged, no results written; lower the lr"
                " (optim_wrapper.optimizer.lr) or check the data and the checkpoint"
            )
