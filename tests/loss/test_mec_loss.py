from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from reference_losses import mec_reference
from torch.autograd import gradcheck

from lightly_matrix.functional import logdet_identity_plus_cross
from lightly_matrix.loss import MatrixSSLLoss, MECLoss

SHAPES = [(8, 24), (16, 16), (40, 12)]  # m < d, m = d, m > d


def _views(m: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(m, d, generator=g, dtype=torch.float64)
    online = target + 0.7 * torch.randn(m, d, generator=g, dtype=torch.float64)
    return online, target


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().norm() / b.detach().norm().clamp(min=1e-300))


@pytest.mark.parametrize("m,d", SHAPES)
@pytest.mark.parametrize("eps_squared", [64.0, 4.0, 0.5])
@pytest.mark.parametrize("order", [4, 1, 7, None])
def test_value_and_gradient_match_dense_reference(m, d, eps_squared, order) -> None:
    online, target = _views(m, d)
    online.requires_grad_(True)
    target.requires_grad_(True)
    online_ref = online.detach().clone().requires_grad_(True)
    target_ref = target.detach().clone().requires_grad_(True)

    loss = MECLoss(eps_squared=eps_squared, taylor_order=order)(online, target)
    ref = mec_reference(online_ref, target_ref, eps_squared, order)
    assert loss.dtype == torch.float64
    assert _rel(loss, ref) <= 1e-9
    g_online, g_target = torch.autograd.grad(loss, (online, target))
    r_online, r_target = torch.autograd.grad(ref, (online_ref, target_ref))
    assert _rel(g_online, r_online) <= 1e-8
    assert _rel(g_target, r_target) <= 1e-8


@pytest.mark.parametrize("m,d", [(8, 24), (40, 12)])
def test_series_converges_to_the_exact_log_determinant_for_small_lamda(m, d) -> None:
    g = torch.Generator().manual_seed(1)
    # A shared direction gives lamda p^T z one large eigenvalue: the series converges slowly.
    target = torch.randn(1, d, generator=g, dtype=torch.float64)
    target = target + 0.8 * torch.randn(m, d, generator=g, dtype=torch.float64)
    online = target + 0.3 * torch.randn(m, d, generator=g, dtype=torch.float64)
    eps_squared = d / 0.9  # lamda * m = 0.9
    p, z = F.normalize(target, dim=1), F.normalize(online, dim=1)
    lamda = d / (m * eps_squared)
    cross = lamda * p.T @ z
    rho = float(torch.linalg.eigvals(cross).abs().max())
    assert 0.3 < rho < 0.9
    exact = float(torch.logdet(torch.eye(d, dtype=torch.float64) + cross))
    for order in (1, 2, 4, 8, 16, 32, 64):
        loss = MECLoss(eps_squared=eps_squared, taylor_order=order)(online, target)
        error = abs(float(-loss * m * lamda) - exact)
        # The tail sum_{k > order} rho^k / k over min(m, d) eigenvalues bounds the error.
        bound = min(m, d) * rho ** (order + 1) / ((order + 1) * (1 - rho))
        assert error <= bound + 1e-14 * abs(exact), (order, error, bound)
    assert error <= 1e-14 * abs(exact)


def test_first_order_term_is_byols_negative_cosine_similarity() -> None:
    online, target = _views(16, 32, seed=2)
    cosine = F.cosine_similarity(online, target, dim=1).mean()
    for eps_squared in (64.0, 512.0, 1.0):
        loss = MECLoss(eps_squared=eps_squared, taylor_order=1)(online, target)
        torch.testing.assert_close(loss, -cosine, rtol=1e-12, atol=1e-14)


def test_paper_objective_and_authors_scaling() -> None:
    # Paper: -mu logdet(I + lamda Z1^T Z2); the authors' loss is it divided by mu * m * lamda.
    m, d, eps_squared = 12, 20, 64.0
    online, target = _views(m, d, seed=3)
    lamda, mu = d / (m * eps_squared), (m + d) / 2  # the MEC paper's Eqn. 2
    p, z = F.normalize(target, dim=1), F.normalize(online, dim=1)
    paper = -mu * logdet_identity_plus_cross(p, z, lamda, taylor_order=4)
    loss = MECLoss(eps_squared=eps_squared)(online, target)
    torch.testing.assert_close(loss * mu * m * lamda, paper, rtol=1e-12, atol=0.0)


def test_symmetric_in_its_arguments_and_eps_squared_override() -> None:
    online, target = _views(10, 30, seed=4)
    loss_fn = MECLoss()
    torch.testing.assert_close(loss_fn(online, target), loss_fn(target, online), rtol=1e-12, atol=0)
    warm = loss_fn(online, target, eps_squared=8 * 64.0)
    torch.testing.assert_close(warm, MECLoss(eps_squared=512.0)(online, target), rtol=0, atol=0)
    assert loss_fn.eps_squared == 64.0  # the override does not stick


def test_spreading_the_batch_lowers_the_loss_at_equal_alignment() -> None:
    # Identical views (cos = 1 everywhere): a collapsed batch pays the higher-order terms.
    d = 32
    spread = torch.eye(d, dtype=torch.float64)[:16]
    collapsed = torch.ones(16, d, dtype=torch.float64)
    loss_fn = MECLoss(eps_squared=4.0)
    assert float(loss_fn(spread, spread)) < float(loss_fn(collapsed, collapsed))


@pytest.mark.parametrize("order", [4, None])
@pytest.mark.parametrize("m,d", [(4, 7), (9, 5)])
def test_gradcheck(order, m, d) -> None:
    online, target = _views(m, d, seed=5)
    loss_fn = MECLoss(eps_squared=2.0, taylor_order=order)
    assert gradcheck(loss_fn, (online.requires_grad_(), target.requires_grad_()))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("order", [4, None])
def test_low_precision_inputs_within_one_percent(dtype, order) -> None:
    online, target = (t.float() for t in _views(64, 256, seed=6))
    loss_fn = MECLoss(taylor_order=order)
    ref = loss_fn(online, target)
    low = loss_fn(online.to(dtype), target.to(dtype))
    assert torch.isfinite(low) and low.dtype == torch.float32
    assert abs(float(low - ref)) <= 0.01 * abs(float(ref))


def test_under_autocast() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 128)
    x, y = torch.randn(32, 64), torch.randn(32, 64)
    loss_fn = MECLoss(eps_squared=4.0)
    ref = loss_fn(layer(x), layer(x + 0.3 * y))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        online, target = layer(x), layer(x + 0.3 * y)
        assert online.dtype == torch.bfloat16
        loss = loss_fn(online, target)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert abs(float(loss.detach() - ref.detach())) <= 0.02 * abs(float(ref.detach()))
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_degenerate_batches_give_finite_values_and_gradients(dtype) -> None:
    g = torch.Generator().manual_seed(0)
    v = torch.randn(1, 32, generator=g, dtype=torch.float64)
    batches = [
        v.repeat(24, 1),  # fully collapsed: lamda * m = d / eps^2 is the top eigenvalue
        torch.randn(24, 3, generator=g, dtype=torch.float64)
        @ torch.randn(3, 32, generator=g, dtype=torch.float64),
        torch.zeros(24, 32, dtype=torch.float64),  # F.normalize keeps zero rows at zero
    ]
    for batch in batches:
        online = batch.to(dtype).requires_grad_(True)
        loss = MECLoss()(online, batch.to(dtype).flip(0))
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(online.grad).all()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_inputs_give_a_non_finite_loss_like_matrix_ssl(bad) -> None:
    online, target = (t.float() for t in _views(8, 16))
    online[3, 5] = bad
    assert not torch.isfinite(MECLoss()(online, target))
    assert not torch.isfinite(MatrixSSLLoss()(online, target))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"eps_squared": 0.0}, "eps_squared"),
        ({"eps_squared": -64.0}, "eps_squared"),
        ({"eps_squared": float("nan")}, "eps_squared"),
        ({"eps_squared": float("inf")}, "eps_squared"),
        ({"eps_squared": "64"}, "eps_squared"),
        ({"taylor_order": 0}, "taylor_order"),
        ({"taylor_order": 2.5}, "taylor_order"),
        ({"taylor_order": True}, "taylor_order"),
    ],
)
def test_invalid_hyper_parameters(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        MECLoss(**kwargs)


@pytest.mark.parametrize(
    "online,target,match",
    [
        (torch.randn(8, 16), torch.randn(8, 32), "equal shape"),
        (torch.randn(8, 16), torch.randn(4, 16), "equal shape"),
        (torch.randn(1, 16), torch.randn(1, 16), "at least 2 rows"),
        (torch.randn(8, 4, 4), torch.randn(8, 4, 4), "2-D"),
        (torch.randint(0, 9, (8, 16)), torch.randint(0, 9, (8, 16)), "floating-point"),
    ],
)
def test_bad_inputs_raise_clear_errors(online, target, match) -> None:
    with pytest.raises(ValueError, match=match):
        MECLoss()(online, target)


def test_bad_eps_squared_override_is_refused() -> None:
    with pytest.raises(ValueError, match="eps_squared"):
        MECLoss()(torch.randn(8, 16), torch.randn(8, 16), eps_squared=0.0)
