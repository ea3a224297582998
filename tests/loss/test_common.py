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


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_non_finite_inputs_give_nan_or_a_value_error_naming_the_loss(name: str, bad) -> None:
    # BatchLoss's documented contract: no host sync to check; NaN for the guard, or one
    # ValueError that says which loss and which inputs when a factorisation fails.
    build, n_inputs = LOSSES[name]
    inputs = [torch.randn(24, 16) for _ in range(n_inputs)]
    inputs[0][3, 2] = bad
    loss_fn = build(False)
    try:
        assert torch.isnan(loss_fn(*inputs))
    except ValueError as err:
        prefix = (
            f"{type(loss_fn).__name__} on inputs of shape {' and '.join(['(24, 16)'] * n_inputs)}: "
        )
        assert str(err).startswith(prefix) and "inf/NaN" in str(err)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_zero_width_features_are_refused(name: str) -> None:
    build, n_inputs = LOSSES[name]
    with pytest.raises(ValueError, match=r"dim 0 \(\(8, 0\).*projector's output size"):
        build(False)(*[torch.randn(8, 0, requires_grad=True) for _ in range(n_inputs)])


@pytest.mark.parametrize(
    ("to_input", "fix"),
    [
        (lambda x: x.tolist(), "as_tensor"),
        (lambda x: x.numpy(), "as_tensor"),
        (lambda x: x.long(), "as_tensor"),  # was told to flatten a 2-D tensor
        (lambda x: x.to(torch.complex64), "as_tensor"),
        (lambda x: x[:, :, None], "flatten"),
    ],
)
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_lists_and_arrays_get_the_type_message(name: str, to_input, fix: str) -> None:
    build, n_inputs = LOSSES[name]
    with pytest.raises(ValueError, match=rf"expects 2-D floating-point inputs.*got .*; .*{fix}"):
        build(False)(*[to_input(torch.randn(8, 16)) for _ in range(n_inputs)])
