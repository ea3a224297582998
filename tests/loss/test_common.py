"""gather_distributed=True without a process group: the local batch, as Lightly's losses do."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
import torch.distributed as dist
from torch import nn

from lightly_matrix.loss import (
    CorInfoMaxLoss,
    MatrixEntropyLoss,
    MatrixSSLLoss,
    MECLoss,
    UMAELoss,
)

# name -> (builder taking gather_distributed, number of inputs)
LOSSES: dict[str, tuple[Callable[[bool], nn.Module], int]] = {
    "matrix_ssl": (lambda g: MatrixSSLLoss(gather_distributed=g), 2),
    "matrix_entropy": (lambda g: MatrixEntropyLoss(gather_distributed=g), 1),
    "umae": (lambda g: UMAELoss(gather_distributed=g), 1),
    "mec": (lambda g: MECLoss(gather_distributed=g), 2),
    "corinfomax": (lambda g: CorInfoMaxLoss(16, gather_distributed=g), 2),
}


def _value_and_grads(loss_fn: nn.Module, inputs: list[torch.Tensor]) -> tuple:
    leaves = [x.clone().requires_grad_(True) for x in inputs]
    loss = loss_fn(*leaves)
    loss.backward()
    return loss.detach(), [x.grad for x in leaves]


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gather_without_process_group_uses_the_local_batch(name: str) -> None:
    # Lightly's BarlowTwins/VICReg/NTXent losses gather only `if dist.is_initialized()`; its
    # benchmark modules hard-code gather_distributed=True, so one-device runs must work.
    assert not dist.is_initialized()
    build, n_inputs = LOSSES[name]
    torch.manual_seed(0)
    inputs = [torch.randn(24, 16, dtype=torch.float64) for _ in range(n_inputs)]
    local_value, local_grads = _value_and_grads(build(False), inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Lightly does not warn here either
        value, grads = _value_and_grads(build(True), inputs)
    torch.testing.assert_close(value, local_value)
    for g, g_local in zip(grads, local_grads, strict=True):
        torch.testing.assert_close(g, g_local)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gather_without_process_group_still_needs_two_rows(name: str) -> None:
    # With gathering the per-process check allows one row; the global one must still refuse it.
    build, n_inputs = LOSSES[name]
    with pytest.raises(ValueError, match="2 rows"):
        build(True)(*[torch.randn(1, 16) for _ in range(n_inputs)])
