from __future__ import annotations

import inspect
import re
import warnings

import pytest
import torch
from reference_losses import matrix_ssl_reference
from torch.autograd import gradcheck

from lightly_matrix.loss import MatrixSSLLoss

SHAPES = [(8, 24), (16, 16), (40, 12)]  # m < d, m = d, m > d
HYPER = [  # gamma, lamda, mu
    (1.0, 1.0, 1.0),
    (0.5, 0.5, 0.5),
    (2.0, 1.0, 1.5),
]


def _views(m: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(m, d, generator=g, dtype=torch.float64)
    online = target + 0.7 * torch.randn(m, d, generator=g, dtype=torch.float64)
    return online, target


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().norm() / b.detach().norm().clamp(min=1e-300))


@pytest.mark.parametrize("m,d", SHAPES)
@pytest.mark.parametrize("gamma,lamda,mu", HYPER)
@pytest.mark.parametrize("order", [4, 2, None])
def test_value_and_gradient_match_dense_reference(m, d, gamma, lamda, mu, order) -> None:
    online, target = _views(m, d)
    target.requires_grad_(True)
    online_ref = online.clone().requires_grad_(True)
    target_ref = target.detach().clone().requires_grad_(True)
    online.requires_grad_(True)

    loss = MatrixSSLLoss(gamma=gamma, target_scale=lamda, ridge=mu, taylor_order=order)(
        online, target
    )
    ref = matrix_ssl_reference(online_ref, target_ref, gamma, lamda, mu, order)
    assert loss.dtype == torch.float64
    assert _rel(loss, ref) <= 1e-6
    g_online, g_target = torch.autograd.grad(loss, (online, target))
    r_online, r_target = torch.autograd.grad(ref, (online_ref, target_ref))
    assert _rel(g_online, r_online) <= 1e-5
    assert _rel(g_target, r_target) <= 1e-5


@pytest.mark.parametrize("order", [4, None])
@pytest.mark.parametrize("m,d", [(4, 7), (9, 5)])
def test_gradcheck(order, m, d) -> None:
    online, target = _views(m, d, seed=3)
    loss_fn = MatrixSSLLoss(ridge=0.9, taylor_order=order)
    assert gradcheck(loss_fn, (online.requires_grad_(), target.requires_grad_()))


def test_two_view_symmetrised_loss_is_the_papers_objective() -> None:
    # 0.5 * [U(p2,z1) + U(p1,z2) + gamma (A(p2,z1) + A(p1,z2))] with p = teacher, z = online.
    z1, p2 = _views(16, 32, seed=1)
    z2, p1 = _views(16, 32, seed=2)
    loss_fn = MatrixSSLLoss(gamma=0.3)
    loss = 0.5 * (loss_fn(z1, p2) + loss_fn(z2, p1))
    ref = 0.5 * (
        matrix_ssl_reference(z1, p2, 0.3, 1.0, 1.0, 4)
        + matrix_ssl_reference(z2, p1, 0.3, 1.0, 1.0, 4)
    )
    assert _rel(loss, ref) <= 1e-6


def test_gamma_zero_is_uniformity_only() -> None:
    online, target = _views(8, 16)
    uni = MatrixSSLLoss(gamma=0.0)(online, target)
    ref = matrix_ssl_reference(online, target, 0.0, 1.0, 1.0, 4)
    assert _rel(uni, ref) <= 1e-6


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("order", [4, None])
def test_low_precision_inputs_within_two_percent(dtype, order) -> None:
    online, target = (t.float() for t in _views(64, 256, seed=5))
    loss_fn = MatrixSSLLoss(taylor_order=order)
    ref = loss_fn(online, target)
    low = loss_fn(online.to(dtype), target.to(dtype))
    assert torch.isfinite(low)
    assert low.dtype == torch.float32
    assert abs(float(low - ref)) <= 0.02 * abs(float(ref))


def test_under_autocast() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 128)
    x, y = torch.randn(32, 64), torch.randn(32, 64)
    loss_fn = MatrixSSLLoss()
    ref = loss_fn(layer(x), layer(x + 0.3 * y))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        online, target = layer(x), layer(x + 0.3 * y)
        assert online.dtype == torch.bfloat16
        loss = loss_fn(online, target)
    loss.backward()
    assert torch.isfinite(loss)
    assert abs(float(loss - ref)) <= 0.02 * abs(float(ref))
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


def _degenerate_batches() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    v = torch.randn(1, 32, generator=g, dtype=torch.float64)
    collapsed = v + 1e-7 * torch.randn(24, 32, generator=g, dtype=torch.float64)
    identical = v.repeat(24, 1)
    low_rank = torch.randn(24, 3, generator=g, dtype=torch.float64) @ torch.randn(
        3, 32, generator=g, dtype=torch.float64
    )
    orthonormal = torch.eye(32, dtype=torch.float64)[:24]  # Gram = I: all eigenvalues repeat
    return {
        "collapsed": (collapsed, collapsed.flip(0)),
        "identical": (identical, identical.clone()),
        "low_rank": (low_rank, low_rank + 1e-3),
        "orthonormal": (orthonormal, orthonormal.roll(1, 0)),
        "tall_low_rank": (low_rank[:, :4].repeat(4, 1), low_rank[:, :4].repeat(4, 1)),
    }


@pytest.mark.parametrize("name", list(_degenerate_batches()))
@pytest.mark.parametrize("order", [4, None])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_degenerate_batches_give_finite_values_and_gradients(name, order, dtype) -> None:
    online, target = (t.to(dtype) for t in _degenerate_batches()[name])
    online.requires_grad_(True)
    loss = MatrixSSLLoss(taylor_order=order)(online, target)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(online.grad).all()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"gamma": -1.0}, "gamma"),
        ({"target_scale": 0.0}, "target_scale"),
        ({"ridge": 0.0}, "ridge"),
        ({"taylor_order": 0}, "taylor_order"),
        ({"taylor_order": 2.5}, "taylor_order"),
    ],
)
def test_invalid_hyper_parameters(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        MatrixSSLLoss(**kwargs)


@pytest.mark.parametrize(
    "online,target,match",
    [
        (torch.randn(8, 16), torch.randn(8, 32), "equal shape"),
        (torch.randn(8, 16), torch.randn(4, 16), "equal shape"),
        (torch.randn(1, 16), torch.randn(1, 16), "at least 2 rows"),
        (torch.randn(8, 4, 4), torch.randn(8, 4, 4), "2-D"),
        (torch.randn(16), torch.randn(16), "2-D"),
    ],
)
def test_bad_inputs_raise_clear_errors(online, target, match) -> None:
    with pytest.raises(ValueError, match=match):
        MatrixSSLLoss()(online, target)


def test_letters_agree_with_the_paper_docstring_and_signature() -> None:
    # The paper and the authors' code: z = online output (gets the gradient), p = EMA-teacher
    # target; the call is loss_fn(z, p) == loss_fn(online=z, target=p).
    doc = MatrixSSLLoss.__doc__ or ""
    assert "``z`` is the ONLINE" in doc and "``p`` the TARGET" in doc
    examples = doc.split("Examples:")[1]
    with_grad = re.findall(r"(\w+) = torch\.randn\([^)]*requires_grad=True\)", examples)
    assert with_grad and all(name.startswith("z") for name in with_grad)
    calls = re.findall(r"loss_fn\((\w+), (\w+)\)", examples)
    assert calls and all(a.startswith("z") and b.startswith("p") for a, b in calls)
    assert list(inspect.signature(MatrixSSLLoss.forward).parameters)[1:] == ["online", "target"]


def test_positional_and_keyword_calls_agree_and_the_loss_is_not_symmetric() -> None:
    g = torch.Generator().manual_seed(7)
    p = torch.randn(16, 32, generator=g, dtype=torch.float64)
    # a low-rank online batch: its covariance differs a lot from the target's
    z = p[:, :3] @ torch.randn(3, 32, generator=g, dtype=torch.float64)
    loss_fn = MatrixSSLLoss()
    positional = loss_fn(z, p)
    assert torch.equal(positional, loss_fn(online=z, target=p))
    assert torch.equal(positional, loss_fn(target=p, online=z))
    ref = matrix_ssl_reference(online=z, target=p, gamma=1.0, lamda=1.0, mu=1.0, order=4)
    assert _rel(positional, ref) <= 1e-6
    assert _rel(loss_fn(p, z), positional) > 0.05  # swapping the roles changes the loss


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_exact_path_is_a_value_error_taylor_path_is_nan(bad) -> None:
    online, target = _views(8, 6)
    online[3, 2] = bad
    # The exact path factorises (eigh): one clear ValueError, as MatrixEntropyLoss / CorInfoMaxLoss.
    with pytest.raises(ValueError, match="inf/NaN"):
        MatrixSSLLoss(taylor_order=None)(online, target)
    # The Taylor path has nothing to factorise: NaN, as Lightly's losses (the run's guard stops).
    assert not torch.isfinite(MatrixSSLLoss(taylor_order=4)(online, target))


def test_teacher_first_warns_once_naming_the_online_argument() -> None:
    # Lightly's benchmark byol.py calls its criterion as (teacher, student): that swaps the
    # roles of this asymmetric loss, so it warns where the call is made.
    online, target = _views(8, 16)
    student = online.clone().requires_grad_(True)
    loss_fn = MatrixSSLLoss()
    with pytest.warns(UserWarning, match=r"loss_fn\(online, target\).*online \(student\)") as rec:
        loss_fn(target, student)
    assert len(rec) == 1 and rec[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss_fn(target, student)  # once per loss
        fresh = MatrixSSLLoss()
        fresh(student, target)  # the right order
        fresh(online, target)  # no gradient anywhere (evaluation)
        fresh(student, target.clone().requires_grad_(True))  # both with gradient


@pytest.mark.parametrize("devices", [("meta", "meta"), ("meta", "cpu"), ("cpu", "meta")])
def test_meta_tensors_are_a_one_line_value_error(devices) -> None:
    # Probe L7: torch's own error was an .item() RuntimeError (or a meta loss that fails later).
    inputs = [torch.randn(8, 16, device=device) for device in devices]
    with pytest.raises(ValueError, match=r"^MatrixSSLLoss cannot evaluate meta tensors") as err:
        MatrixSSLLoss()(*inputs)
    assert "\n" not in str(err.value) and "cpu or cuda" in str(err.value)
