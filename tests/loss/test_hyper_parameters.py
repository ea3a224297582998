"""Every float hyper-parameter of every loss is checked at construction, NaN and inf included."""

from __future__ import annotations

import warnings

import pytest
import torch
from reference_losses import tcr_reference, umae_reference

from lightly_matrix.loss import (
    CorInfoMaxLoss,
    MatrixEntropyLoss,
    MatrixSSLLoss,
    MECLoss,
    UMAELoss,
)

# (loss class, required arguments, float argument, the valid range as the message states it)
FLOAT_ARGS = [
    (MatrixSSLLoss, {}, "gamma", ">= 0"),
    (MatrixSSLLoss, {}, "target_scale", "> 0"),
    (MatrixSSLLoss, {}, "ridge", "> 0"),
    (CorInfoMaxLoss, {"dim": 8}, "alpha", ">= 0"),
    (CorInfoMaxLoss, {"dim": 8}, "cov_weight", ">= 0"),
    (CorInfoMaxLoss, {"dim": 8}, "cov_momentum", ">= 0 and < 1"),
    (CorInfoMaxLoss, {"dim": 8}, "mean_momentum", ">= 0 and < 1"),
    (CorInfoMaxLoss, {"dim": 8}, "cov_init", "> 0"),
    (CorInfoMaxLoss, {"dim": 8}, "eps", ">= 0"),
    (MatrixEntropyLoss, {}, "gram_scale", "> 0"),
    (MatrixEntropyLoss, {}, "weight", ">= 0"),
    (UMAELoss, {}, "weight", ">= 0"),
    (MECLoss, {}, "eps_squared", "> 0"),
]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("loss_cls,required,name,valid", FLOAT_ARGS)
def test_non_finite_values_are_refused(loss_cls, required, name, valid, value) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be a finite number {valid}, got"):
        loss_cls(**required, **{name: value})


@pytest.mark.parametrize("loss_cls,required,name,valid", FLOAT_ARGS)
def test_out_of_range_and_non_numbers_are_refused(loss_cls, required, name, valid) -> None:
    below = -1e-3 if ">= 0" in valid else 0.0
    for bad in (below, "1.0", None, True):
        with pytest.raises(ValueError, match=rf"^{name} must be a finite number {valid}"):
            loss_cls(**required, **{name: bad})
    if "< 1" in valid:
        with pytest.raises(ValueError, match=name):
            loss_cls(**required, **{name: 1.0})


@pytest.mark.parametrize("loss_cls,required,name,valid", FLOAT_ARGS)
def test_valid_values_are_kept_as_floats(loss_cls, required, name, valid) -> None:
    value = 0.5 if "< 1" in valid else 2
    loss_fn = loss_cls(**required, **{name: value})
    assert getattr(loss_fn, name) == value and isinstance(getattr(loss_fn, name), float)


def test_weight_scales_the_regularisers() -> None:
    x = torch.randn(12, 20, dtype=torch.float64)
    torch.testing.assert_close(
        MatrixEntropyLoss(gram_scale=3.0, weight=0.01)(x), 0.01 * tcr_reference(x, 3.0, False)
    )
    torch.testing.assert_close(UMAELoss(weight=0.25)(x), 0.25 * umae_reference(x))
    assert MatrixEntropyLoss(weight=0.0)(x) == 0.0


@pytest.mark.parametrize(
    "cls,required,alias,name,value",
    [
        (MatrixSSLLoss, {}, "lamda", "target_scale", 2.0),
        (MatrixSSLLoss, {}, "mu", "ridge", 0.5),
        (CorInfoMaxLoss, {"dim": 4}, "la_R", "cov_momentum", 0.3),
        (CorInfoMaxLoss, {"dim": 4}, "la_mu", "mean_momentum", 0.2),
        (CorInfoMaxLoss, {"dim": 4}, "R_ini", "cov_init", 2.0),
        (MatrixEntropyLoss, {}, "mu", "gram_scale", 3.0),
    ],
)
def test_the_authors_letters_are_plain_aliases(cls, required, alias, name, value) -> None:
    # Code ported from the authors' repositories keeps their letters, without any warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = cls(**required, **{alias: value})
    assert getattr(loss, name) == value
    x, y = torch.randn(8, 4, dtype=torch.float64), torch.randn(8, 4, dtype=torch.float64)
    args = (x,) if cls is MatrixEntropyLoss else (x, y)
    torch.testing.assert_close(loss(*args), cls(**required, **{name: value})(*args), rtol=0, atol=0)
    with pytest.raises(TypeError, match=rf"'{alias}' and '{name}'; pass one"):
        cls(**required, **{alias: value, name: value})
    with pytest.raises(ValueError, match=rf"^{name} must be a finite number"):
        cls(**required, **{alias: float("nan")})
    with pytest.raises(TypeError, match="unexpected keyword"):
        cls(**required, lamdba=1.0)
