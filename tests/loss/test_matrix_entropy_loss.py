from __future__ import annotations

import math

import pytest
import torch
from reference_losses import tcr_reference, umae_reference

from lightly_matrix.loss import MatrixEntropyLoss, UMAELoss


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().norm() / b.detach().norm().clamp(min=1e-300))


@pytest.mark.parametrize("m,d", [(8, 24), (16, 16), (40, 12)])
@pytest.mark.parametrize("mu,centering", [(1.0, False), (3.0, False), (0.5, True)])
def test_tcr_matches_dense_reference(m, d, mu, centering) -> None:
    x = torch.randn(m, d, dtype=torch.float64, requires_grad=True)
    y = x.detach().clone().requires_grad_(True)
    value = MatrixEntropyLoss(gram_scale=mu, centering=centering)(x)
    ref = tcr_reference(y, mu, centering)
    assert _rel(value, ref) <= 1e-6
    (g,) = torch.autograd.grad(value, x)
    (r,) = torch.autograd.grad(ref, y)
    assert _rel(g, r) <= 1e-5


def test_tcr_of_orthonormal_rows_is_closed_form() -> None:
    # F F^T = I_m for orthonormal rows: -logdet(I + mu/d I_m) = -m log(1 + mu / d)
    m, d, mu = 6, 10, 3.0
    f = torch.eye(d, dtype=torch.float64)[:m]
    expected = -m * torch.log1p(torch.tensor(mu / d, dtype=torch.float64))
    assert torch.allclose(MatrixEntropyLoss(gram_scale=mu)(f), expected)


def test_umae_second_order_term_of_tcr() -> None:
    # logdet(I + eps K) = eps tr K - eps^2/2 tr K^2 + O(eps^3) with K = F F^T (tr K = m), and
    # tr K^2 = m^2 * mean((F F^T)^2): the U-MAE term is the TCR's second-order term.
    x = torch.randn(12, 20, dtype=torch.float64)
    m, d, mu = 12, 20, 1e-3
    tcr = MatrixEntropyLoss(gram_scale=mu)(x)
    eps = mu / d
    second = (-eps * m + 0.5 * eps**2 * m**2 * UMAELoss()(x)).item()
    assert abs(tcr.item() - second) <= 1e-3 * abs(eps**2 * m**2 * 0.5 * UMAELoss()(x).item())


@pytest.mark.parametrize("m,d", [(5, 9), (9, 5)])
def test_umae_matches_reference(m, d) -> None:
    x = torch.randn(m, d, dtype=torch.float64, requires_grad=True)
    y = x.detach().clone().requires_grad_(True)
    value, ref = UMAELoss()(x), umae_reference(y)
    assert _rel(value, ref) <= 1e-6
    assert _rel(torch.autograd.grad(value, x)[0], torch.autograd.grad(ref, y)[0]) <= 1e-5


@pytest.mark.parametrize("loss_cls", [MatrixEntropyLoss, UMAELoss])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_within_two_percent(loss_cls, dtype) -> None:
    x = torch.randn(64, 192)
    ref = loss_cls()(x)
    low = loss_cls()(x.to(dtype))
    assert torch.isfinite(low) and low.dtype == torch.float32
    assert abs(float(low - ref)) <= 0.02 * abs(float(ref))


@pytest.mark.parametrize("loss_cls", [MatrixEntropyLoss, UMAELoss])
def test_autocast_and_degenerate_batches(loss_cls) -> None:
    layer = torch.nn.Linear(8, 32)
    collapsed = torch.ones(16, 8) + 1e-7 * torch.randn(16, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss_cls()(layer(collapsed))
    value.backward()
    assert torch.isfinite(value)
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())
    zeros = torch.zeros(4, 8, requires_grad=True)
    value = loss_cls(**({"centering": True} if loss_cls is MatrixEntropyLoss else {}))(zeros)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(zeros.grad).all()


def test_errors() -> None:
    with pytest.raises(ValueError, match="gram_scale"):
        MatrixEntropyLoss(gram_scale=0.0)
    for loss_fn in (MatrixEntropyLoss(), UMAELoss()):
        with pytest.raises(ValueError, match="2-D"):
            loss_fn(torch.randn(4, 3, 2))
        with pytest.raises(ValueError, match="at least 2 rows"):
            loss_fn(torch.randn(1, 3))


def test_value_range_is_the_closed_form_the_readme_quotes() -> None:
    # L2-normalised rows: -w * m * log(1 + mu/d) for orthogonal rows, -w * log(1 + mu m/d) for
    # collapsed ones; at m=32, d=768, mu=3, w=0.01 that is -0.001248 and -0.001178 (README).
    m, d, mu, w = 32, 768, 3.0, 0.01
    loss_fn = MatrixEntropyLoss(gram_scale=mu, weight=w)
    orthogonal = torch.eye(d, dtype=torch.float64)[:m] * 5.0  # any row scale: rows are normalised
    collapsed = torch.ones(m, d, dtype=torch.float64)
    low = -w * m * math.log1p(mu / d)
    high = -w * math.log1p(mu * m / d)
    torch.testing.assert_close(loss_fn(orthogonal), torch.tensor(low, dtype=torch.float64))
    torch.testing.assert_close(loss_fn(collapsed), torch.tensor(high, dtype=torch.float64))
    assert round(low, 6) == -0.001248 and round(high, 6) == -0.001178
    torch.manual_seed(0)
    value = float(loss_fn(torch.randn(m, d, dtype=torch.float64)))
    assert low <= value <= high


def test_meta_tensors_are_refused_in_one_line() -> None:
    z = torch.randn(16, 8, device="meta")
    with pytest.raises(ValueError, match=r"meta tensors .*cpu or cuda"):
        MatrixEntropyLoss()(z)
