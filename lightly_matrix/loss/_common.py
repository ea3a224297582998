"""Input checks and the distributed gather shared by every loss in this package."""

from __future__ import annotations

import contextlib
import math
import numbers

import torch
import torch.distributed as dist
from lightly.utils import dist as lightly_dist
from torch import Tensor

from lightly_matrix.functional._linalg import compute_dtype


def check_gather_available(gather_distributed: bool) -> None:
    """Raise at construction when gathering is asked for but torch has no distributed support."""
    if gather_distributed and not dist.is_available():
        raise ValueError(
            "gather_distributed=True but torch.distributed is not available in this PyTorch "
            "build; set gather_distributed=False or install a PyTorch with distributed support."
        )


def check_number(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    hint: str = "",
) -> float:
    """Return ``value`` as a float if it is a finite real number in the given range, else raise.

    NaN passes every ``<``/``>`` comparison as False, so a plain range check lets it through:
    finiteness is checked first.

    Raises:
        ValueError: Naming the argument, the valid range and ``hint``.
    """
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high:g}")
    valid = "a finite number" + (f" {' and '.join(bounds)}" if bounds else "")
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = math.isfinite(v)
        if ok and low is not None:
            ok = v > low if low_open else v >= low
        if ok and high is not None:
            ok = v < high if high_open else v <= high
    if not ok:
        raise ValueError(f"{name} must be {valid}, got {value!r}" + (f"; {hint}" if hint else "."))
    return v


def check_batch(name: str, *tensors: Tensor, min_rows: int = 2) -> None:
    """Every input is a 2-D (batch, dim) float tensor with ``min_rows`` rows; all share one shape.

    With ``gather_distributed`` the losses pass ``min_rows=1`` here and check the gathered
    (global) batch with :func:`check_global_batch`.
    """
    for t in tensors:
        if not isinstance(t, Tensor):
            raise ValueError(f"{name} expects torch.Tensor inputs, got {type(t).__name__}.")
        if t.ndim != 2:
            raise ValueError(
                f"{name} expects 2-D inputs of shape (batch, dim), got shape {tuple(t.shape)}; "
                "flatten the features first, e.g. x.flatten(start_dim=1)."
            )
        if t.shape[0] < min_rows:
            raise ValueError(
                f"{name} needs a batch of at least {min_rows} row{'s' if min_rows > 1 else ''} "
                f"to estimate covariances, got shape {tuple(t.shape)}; increase the batch size."
            )
        if not (t.is_floating_point()):
            raise ValueError(f"{name} expects floating-point inputs, got dtype {t.dtype}.")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise ValueError(
            f"{name} expects inputs of equal shape, got {' and '.join(str(s) for s in shapes)}; "
            "both views must come from the same batch and the same head output size."
        )


def check_global_batch(name: str, gathered: Tensor, local_rows: int) -> None:
    """The batch after gathering over processes has at least 2 rows (one row per rank is fine)."""
    if gathered.shape[0] < 2:
        raise ValueError(
            f"{name} needs a batch of at least 2 rows over all processes to estimate "
            f"covariances, got {gathered.shape[0]} ({local_rows} per process); increase the "
            "batch size."
        )


def gather_rows(x: Tensor, gather_distributed: bool) -> Tensor:
    """Concatenate ``x`` from all processes along the batch, with gradients flowing back.

    Like Lightly's own losses (BarlowTwins, VICReg, NTXent), and without a warning as they do,
    this returns the local batch when no process group is initialised or it has one process:
    ``gather_distributed=True`` then runs unchanged on one device. Uses Lightly's
    autograd-aware all-gather, whose backward sums the gradient contributions of every rank
    (the M-MAE reference code keeps only the local one and is off by the world size).
    """
    if not gather_distributed or lightly_dist.world_size() == 1:
        return x
    return torch.cat(lightly_dist.gather(x.contiguous()), dim=0)


def to_compute_dtype(*tensors: Tensor) -> list[Tensor]:
    """Cast to float64 if any input is float64, else float32.

    float16/bfloat16 (and autocast outputs) are upcast: logdet, eigh and logs need fp32 or fp64.
    """
    dtype = max((compute_dtype(t) for t in tensors), key=lambda d: torch.finfo(d).bits)
    return [t.to(dtype) for t in tensors]


def no_autocast(x: Tensor) -> contextlib.AbstractContextManager:
    """Disable autocast on the device of ``x`` so the matrix math stays in fp32/fp64."""
    return torch.autocast(device_type=x.device.type, enabled=False)
