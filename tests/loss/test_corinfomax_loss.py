from __future__ import annotations

import io
import warnings

import pytest
import torch
from reference_losses import CorInfoMaxReference

from lightly_matrix.loss import CorInfoMaxLoss


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().norm() / b.detach().norm().clamp(min=1e-300))


def _batches(n: int, d: int, steps: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        z1 = torch.randn(n, d, generator=g, dtype=torch.float64)
        out.append((z1, z1 + 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64)))
    return out


@pytest.mark.parametrize("n,d", [(8, 24), (16, 16), (40, 12)])
@pytest.mark.parametrize(
    "alpha,la_R,la_mu,R_ini,eps,cov_weight",
    [
        (250.0, 0.01, 0.01, 1.0, 1e-8, 1.0),
        (500.0, 0.1, 0.1, 1.0, 1e-8, 1.0),
        (10.0, 0.5, 0.2, 2.0, 1e-4, 0.5),
    ],
)
def test_three_consecutive_steps_match_reference(
    n, d, alpha, la_R, la_mu, R_ini, eps, cov_weight
) -> None:
    loss_fn = CorInfoMaxLoss(
        d,
        alpha=alpha,
        cov_weight=cov_weight,
        cov_momentum=la_R,
        mean_momentum=la_mu,
        cov_init=R_ini,
        eps=eps,
    )
    ref = CorInfoMaxReference(d, alpha, la_R, la_mu, R_ini, eps)
    for z1, z2 in _batches(n, d, steps=3):
        a1, a2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
        b1, b2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
        loss = loss_fn(a1, a2)
        expected = ref.step(b1, b2, cov_weight=cov_weight)
        assert _rel(loss, expected) <= 1e-6
        ga = torch.autograd.grad(loss, (a1, a2))
        gb = torch.autograd.grad(expected, (b1, b2))
        for x, y in zip(ga, gb, strict=True):
            assert _rel(x, y) <= 1e-5
        # the state after the step is the reference's state
        assert _rel(loss_fn.running_cov_a, ref.R[0]) <= 1e-12
        assert _rel(loss_fn.running_cov_b, ref.R[1]) <= 1e-12
        assert _rel(loss_fn.running_mean_a, ref.mu[0]) <= 1e-12


def test_eval_mode_reads_but_does_not_update_state() -> None:
    loss_fn = CorInfoMaxLoss(16)
    (z1, z2), (y1, y2) = _batches(8, 16, steps=2)
    loss_fn(z1, z2)
    state = {k: v.clone() for k, v in loss_fn.state_dict().items()}
    loss_fn.eval()
    ref = CorInfoMaxReference(16, 250.0, 0.01, 0.01, 1.0, 1e-8)
    ref.step(z1, z2)
    value = loss_fn(y1, y2)
    assert _rel(value, ref.step(y1, y2, update=False)) <= 1e-6
    for k, v in loss_fn.state_dict().items():
        assert torch.equal(v, state[k])


def test_state_is_float64_buffers_saved_and_restored() -> None:
    loss_fn = CorInfoMaxLoss(8)
    z1, z2 = _batches(6, 8, steps=1)[0]
    loss_fn(z1.float(), z2.float())
    keys = set(loss_fn.state_dict())
    assert keys == {"running_mean_a", "running_mean_b", "running_cov_a", "running_cov_b"}
    buf = io.BytesIO()
    torch.save(loss_fn.state_dict(), buf)
    buf.seek(0)
    restored = CorInfoMaxLoss(8)
    restored.load_state_dict(torch.load(buf))
    for k, v in restored.state_dict().items():
        assert v.dtype == torch.float64
        assert torch.equal(v, loss_fn.state_dict()[k])
    # .half() / .to(bfloat16) on a whole model must not degrade the statistics
    restored.to(torch.bfloat16)
    restored.half()
    assert all(v.dtype == torch.float64 for v in restored.state_dict().values())
    assert torch.equal(restored.running_cov_a, loss_fn.running_cov_a)


def test_alignment_weight_and_mse() -> None:
    z = torch.randn(8, 4, dtype=torch.float64)
    a = CorInfoMaxLoss(4, alpha=1.0, cov_weight=0.0, normalize=False)
    assert torch.allclose(a(z, z + 1.0), torch.tensor(1.0, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_within_two_percent(dtype) -> None:
    z1, z2 = (t.float() for t in _batches(64, 32, steps=1, seed=4)[0])
    ref = CorInfoMaxLoss(32)(z1, z2)
    low = CorInfoMaxLoss(32)(z1.to(dtype), z2.to(dtype))
    assert torch.isfinite(low)
    assert abs(float(low - ref)) <= 0.02 * abs(float(ref))


def test_under_autocast_finite_with_gradients() -> None:
    layer = torch.nn.Linear(16, 32)
    x = torch.randn(32, 16)
    loss_fn = CorInfoMaxLoss(32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_fn(layer(x), layer(x + 0.1))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


@pytest.mark.parametrize("kind", ["collapsed", "low_rank"])
def test_degenerate_batches_finite(kind) -> None:
    g = torch.Generator().manual_seed(0)
    if kind == "collapsed":
        z = torch.randn(1, 32, generator=g).repeat(16, 1) + 1e-7 * torch.randn(16, 32, generator=g)
    else:
        z = torch.randn(16, 2, generator=g) @ torch.randn(2, 32, generator=g)
    z.requires_grad_(True)
    loss_fn = CorInfoMaxLoss(32, cov_momentum=0.0, mean_momentum=0.0, eps=1e-6)
    loss = loss_fn(z, z.flip(0))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()


def test_singular_covariance_raises_instead_of_nan() -> None:
    z = torch.ones(4, 8)
    loss_fn = CorInfoMaxLoss(8, cov_momentum=0.0, mean_momentum=0.0, eps=0.0, normalize=False)
    with pytest.raises(ValueError, match="not positive definite"):
        loss_fn(z, z)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"dim": 0}, "dim"),
        ({"dim": 8, "cov_momentum": 1.0}, "cov_momentum"),
        ({"dim": 8, "mean_momentum": -0.1}, "mean_momentum"),
        ({"dim": 8, "cov_init": 0.0}, "cov_init"),
        ({"dim": 8, "alpha": -1.0}, "alpha"),
        ({"dim": 8, "eps": -1.0}, "eps"),
    ],
)
def test_invalid_hyper_parameters(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        CorInfoMaxLoss(**kwargs)


def test_bad_inputs() -> None:
    loss_fn = CorInfoMaxLoss(8)
    with pytest.raises(ValueError, match="dim=8"):
        loss_fn(torch.randn(4, 16), torch.randn(4, 16))
    with pytest.raises(ValueError, match="equal shape"):
        loss_fn(torch.randn(4, 8), torch.randn(5, 8))
    with pytest.raises(ValueError, match="at least 2 rows"):
        loss_fn(torch.randn(1, 8), torch.randn(1, 8))
    with pytest.raises(ValueError, match="2-D"):
        loss_fn(torch.randn(4, 8, 1), torch.randn(4, 8, 1))


def test_warns_once_when_the_batch_is_smaller_than_dim() -> None:
    loss_fn = CorInfoMaxLoss(16)
    (z1, z2), (y1, y2) = _batches(8, 16, steps=2)
    with pytest.warns(UserWarning, match=r"batch has 8 rows .* dim=16"):
        loss_fn(z1, z2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second small batch is not warned again
        loss_fn(y1, y2)
        CorInfoMaxLoss(16)(*_batches(16, 16, steps=1)[0])  # batch == dim: no warning


def test_statistics_on_another_device_raise_with_the_fix() -> None:
    # The buffers live on the CPU; inputs on the "meta" device stand in for a GPU here.
    loss_fn = CorInfoMaxLoss(8)
    z = torch.randn(16, 8, device="meta")
    with pytest.raises(ValueError, match=r"on cpu but got embeddings on meta.*criterion\.to"):
        loss_fn(z, z)
    # .to() moves the statistics and keeps them float64
    loss_fn.to("meta")
    assert loss_fn.running_cov_a.device.type == "meta"
    assert loss_fn.running_cov_a.dtype == torch.float64
    with pytest.raises(ValueError, match=r"meta tensors .*cpu or cuda"):  # no data to evaluate
        loss_fn(z, z)
