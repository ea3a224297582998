"""The prologue every loss of this package shares: input checks, fp32 island, gather."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightly.utils import dist as lightly_dist
from torch import Tensor, nn
from torch.amp import is_autocast_available

from lightly_matrix.utils.checks import check_number, check_positive_int

__all__ = ["BatchLoss", "check_number", "check_positive_int"]


class BatchLoss(nn.Module):
    """Base of the losses: checks the inputs and runs the matrix math on the global batch.

    The losses return a float32 scalar (float64 for float64 inputs). Inputs are not checked for
    inf/NaN (a host sync per step): a loss that factorises a matrix raises a ``ValueError``, the
    others return NaN, which the training loop stops before the backward pass.

    Attributes:
        gather_distributed: Gather all processes' rows first (no process group: local, as Lightly).
    """

    def __init__(self, gather_distributed: bool = False) -> None:
        super().__init__()
        if gather_distributed and not dist.is_available():
            raise ValueError(
                "gather_distributed=True but torch.distributed is not available in this PyTorch "
                "build; set gather_distributed=False or install a PyTorch with distributed support."
            )
        self.gather_distributed = gather_distributed
        self._warned: set[str] = set()

    def warn_once(self, kind: str, message: str) -> None:
        """``message`` as a ``UserWarning`` at the line calling the loss, once per ``kind``."""
        if kind not in self._warned:
            self._warned.add(kind)
            # Past this method, forward and nn.Module's two call frames.
            warnings.warn(f"{type(self).__name__}: {message} (warned once)", stacklevel=5)

    def resolve_alias(
        self, name: str, value: float, alias: str, alias_value: float | None
    ) -> float:
        """``value``, or ``alias_value`` if the argument was given under its ``alias``."""
        if alias_value is None:
            return value
        if value != inspect.signature(type(self).__init__).parameters[name].default:
            raise TypeError(f"{type(self).__name__}() got {alias!r} and {name!r}; pass one")
        return alias_value

    @contextmanager
    def global_batch(self, *inputs: Tensor, normalize: bool = True) -> Iterator[list[Tensor]]:
        """The checked inputs in float32 (float64 if any is), gathered, rows L2-normalised; the
        block runs with autocast off (logdet, eigh and logs need fp32 or fp64).

        Raises:
            ValueError: Inputs that are not 2-D floating-point tensors of one shape, of dim 0, or a
                (global) batch of fewer than 2 rows; the block's, with the loss and shapes in front.
        """
        name = type(self).__name__
        for x in inputs:
            floating = isinstance(x, Tensor) and x.is_floating_point()
            if not floating or x.ndim != 2:
                is_tensor = isinstance(x, Tensor)
                got = f"shape {tuple(x.shape)}, {x.dtype}" if is_tensor else type(x).__name__
                fix = "flatten the features first, e.g. x.flatten(start_dim=1)"
                if not floating:
                    fix = "pass a floating-point torch.Tensor, e.g. torch.as_tensor(x).float()"
                raise ValueError(
                    f"{name} expects 2-D floating-point inputs (batch, dim), got {got}; {fix}."
                )
        shapes = " and ".join(str(tuple(x.shape)) for x in inputs)
        if len({x.shape for x in inputs}) > 1:
            raise ValueError(
                f"{name} expects inputs of equal shape, got {shapes}; both views must come from "
                "the same batch and the same head output size."
            )
        if inputs[0].shape[1] == 0:
            raise ValueError(
                f"{name} got features of dim 0 ({shapes}); check the projector's output size."
            )
        dtype = torch.float64 if any(x.dtype == torch.float64 for x in inputs) else torch.float32
        device = inputs[0].device.type
        amp = is_autocast_available(device)
        with torch.autocast(device, enabled=False) if amp else nullcontext():
            rows = [self._gather(x.to(dtype)) for x in inputs]
            if rows[0].shape[0] < 2:
                raise ValueError(
                    f"{name} needs a batch of at least 2 rows (over all processes) to estimate "
                    f"covariances, got {rows[0].shape[0]} ({inputs[0].shape[0]} per process); "
                    "increase the batch size."
                )
            try:
                yield [F.normalize(r, dim=1) for r in rows] if normalize else rows
            except ValueError as err:
                if str(err).startswith(name):
                    raise
                raise ValueError(f"{name} on inputs of shape {shapes}: {err}") from err

    def _gather(self, x: Tensor) -> Tensor:
        # Lightly's gather sums every rank's gradient (M-MAE's code keeps the local one only).
        local = not self.gather_distributed or lightly_dist.world_size() == 1
        return x if local else torch.cat(lightly_dist.gather(x.contiguous()), dim=0)


# Where it is documented and imported from: the losses' "Bases:" line links there.
BatchLoss.__module__ = "lightly_matrix.loss"
