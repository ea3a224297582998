from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from torch.autograd import gradcheck

from lightly_matrix.functional import (
    logdet_identity_plus_gram,
    logdet_spd,
    matrix_cross_entropy,
    matrix_log,
    matrix_log_taylor,
    trace_powers,
)


def _spd(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    return a @ a.T / n + 0.5 * torch.eye(n, dtype=torch.float64)


def test_matrix_log_matches_scipy() -> None:
    q = _spd(7)
    expected = torch.from_numpy(np.real(scipy.linalg.logm(q.numpy())))
    torch.testing.assert_close(matrix_log(q), expected, rtol=1e-10, atol=1e-12)


def test_matrix_log_gradcheck_distinct_and_repeated_eigenvalues() -> None:
    assert gradcheck(matrix_log, (_spd(5).requires_grad_(),))
    # mu * I plus a rank-one term: three eigenvalues repeat exactly; eigh's own gradient is NaN here
    v = torch.randn(4, 1, dtype=torch.float64)
    q = (torch.eye(4, dtype=torch.float64) + v @ v.T).requires_grad_()
    (grad,) = torch.autograd.grad(
        torch.trace(torch.randn(4, 4, dtype=torch.float64) @ matrix_log(q)), q
    )
    assert torch.isfinite(grad).all()
    assert gradcheck(lambda x: matrix_log(x + x.T), (0.5 * q.detach().clone().requires_grad_(),))


def test_taylor_log_converges_to_scipy() -> None:
    q = torch.eye(5, dtype=torch.float64) + 0.1 * _spd(5, seed=1)
    expected = torch.from_numpy(np.real(scipy.linalg.logm(q.numpy())))
    err4 = (matrix_log_taylor(q, 4) - expected).abs().max()
    err30 = (matrix_log_taylor(q, 30) - expected).abs().max()
    assert err30 < 1e-12 < err4 < 1e-3


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5, 8])
def test_trace_powers_nonsymmetric(order) -> None:
    k = torch.randn(6, 6, dtype=torch.float64)
    got = trace_powers(k, order)
    for j, value in enumerate(got, start=1):
        torch.testing.assert_close(value, torch.trace(torch.linalg.matrix_power(k, j)))


def test_matrix_cross_entropy_closed_form() -> None:
    # MCE(P, Q) = -tr(P log Q); for commuting diagonal matrices it is -sum p_i log q_i
    p = torch.diag(torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64))
    q = torch.diag(torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64))
    expected = -(0.2 * np.log(0.5) + 0.3 * np.log(0.25) + 0.5 * np.log(0.25))
    assert abs(float(matrix_cross_entropy(p, q, taylor_order=None)) - expected) < 1e-12


@pytest.mark.parametrize("m,d", [(5, 20), (20, 5), (8, 8)])
def test_logdet_identity_plus_gram_both_sides(m, d) -> None:
    f = torch.randn(m, d, dtype=torch.float64, requires_grad=True)
    dense = torch.logdet(torch.eye(d, dtype=torch.float64) + 0.7 * f.T @ f)
    value = logdet_identity_plus_gram(f, 0.7)
    torch.testing.assert_close(value, dense)
    torch.testing.assert_close(torch.autograd.grad(value, f)[0], torch.autograd.grad(dense, f)[0])


def test_logdet_spd_raises_on_indefinite() -> None:
    with pytest.raises(ValueError, match="not positive definite"):
        logdet_spd(-torch.eye(3))
    with pytest.raises(ValueError, match="order"):
        matrix_log_taylor(torch.eye(2), 0)
