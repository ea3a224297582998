from __future__ import annotations

import numpy as np
import pytest
from method_helpers import fit, make_module
from pytorch_lightning import seed_everything

from lightly_matrix.loss import MECLoss
from lightly_matrix.methods import MEC
from lightly_matrix.methods.mec import warmup_eps_squared
from lightly_matrix.models.modules import MatrixSSLPredictionHead, MatrixSSLProjectionHead


def authors_lamda_inv(lamda: float, total: int, warmup: int) -> np.ndarray:
    """``lamda_scheduler(8 / lamda, 1 / lamda, ...)`` of xinliu20/MEC, written from its formula."""
    ramp = np.linspace(8 / lamda, 1 / lamda, warmup)
    return np.concatenate([ramp, np.full(total - warmup, 1 / lamda)])


@pytest.mark.parametrize("warmup", [0, 2, 10])
def test_eps_warmup_is_the_authors_lamda_schedule(warmup: int) -> None:
    m, d, eps_squared, total = 1024, 2048, 64.0, 25
    lamda = d / (m * eps_squared)
    expected = authors_lamda_inv(lamda, total, warmup) * d / m  # 1/lamda = m eps^2 / d
    ours = [warmup_eps_squared(s, warmup, eps_squared, 8.0) for s in range(total)]
    np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_defaults_are_the_authors_imagenet_run() -> None:
    defaults = MEC.hparam_defaults()
    expected = {
        "backbone": "resnet50",
        "optimizer": "sgd",
        "lr": 0.5,
        "weight_decay": 1e-5,
        "warmup_epochs": 10.0,
        "hidden_dim": 2048,
        "output_dim": 2048,
        "pred_hidden_dim": 512,
        "eps_squared": 64.0,
        "eps_warmup_factor": 8.0,
        "taylor_order": 4,
        "momentum_start": 0.996,
        "momentum_end": 1.0,
    }
    assert {k: defaults[k] for k in expected} == expected
    module = make_module("mec")
    assert isinstance(module.projection_head, MatrixSSLProjectionHead)
    assert isinstance(module.prediction_head, MatrixSSLPredictionHead)
    assert isinstance(module.criterion, MECLoss) and module.criterion.eps_squared == 64.0


def test_training_logs_and_uses_the_warmed_up_eps_squared() -> None:
    seed_everything(0, verbose=False)
    # 2 epochs of 4 steps, 1 warm-up epoch: eps^2 = 8x, 5.67x, 3.33x, then 1x from step 3 on.
    module = make_module("mec", warmup_epochs=1.0, eps_squared=16.0)
    calls: list[float | None] = []
    forward = module.criterion.forward

    def spy(online, target, eps_squared=None):
        calls.append(eps_squared)
        return forward(online, target, eps_squared=eps_squared)

    module.criterion.forward = spy  # type: ignore[method-assign]
    logged = fit(module, 4, "eps_squared", "train_loss_step", max_epochs=2)
    expected = [warmup_eps_squared(s, 4, 16.0, 8.0) for s in range(8)]
    np.testing.assert_allclose(logged["eps_squared"], expected, rtol=1e-6)
    np.testing.assert_allclose(expected[:4], [128.0, 16 * (8 - 7 / 3), 16 * (8 - 14 / 3), 16.0])
    assert calls == [e for e in expected for _ in range(2)]  # both view pairs, every step
    assert all(np.isfinite(logged["train_loss_step"]))


@pytest.mark.parametrize("bad", [0.5, float("nan"), float("inf"), "8"])
def test_bad_eps_warmup_factor_is_refused(bad) -> None:
    with pytest.raises(ValueError, match="eps_warmup_factor"):
        make_module("mec", eps_warmup_factor=bad)


def test_bad_loss_settings_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="eps_squared"):
        make_module("mec", eps_squared=0.0)
    with pytest.raises(ValueError, match="taylor_order"):
        make_module("mec", taylor_order=0)
