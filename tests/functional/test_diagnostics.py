from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lightly_matrix.functional import covariance_spectrum, effective_rank, matrix_entropy


def test_matrix_entropy_extremes() -> None:
    assert float(matrix_entropy(torch.ones(8, 16))) == pytest.approx(0.0, abs=1e-9)
    assert float(matrix_entropy(torch.eye(8)[:, :8] * 3.0)) == pytest.approx(math.log(8))
    tall = torch.randn(4096, 4)
    assert float(matrix_entropy(tall)) == pytest.approx(math.log(4), abs=0.01)


def test_matrix_entropy_against_numpy() -> None:
    x = torch.randn(10, 6, dtype=torch.float64)
    f = x / x.norm(dim=1, keepdim=True)
    rho = (f.T @ f / 10).numpy()
    w = np.clip(np.linalg.eigvalsh(rho), 0, None)
    w = w[w > 0]
    assert float(matrix_entropy(x)) == pytest.approx(float(-(w * np.log(w)).sum()), rel=1e-10)


def test_effective_rank_against_numpy_svd() -> None:
    x = torch.randn(32, 12, dtype=torch.float64)
    s = np.linalg.svd((x - x.mean(0)).numpy(), compute_uv=False)
    p = s / s.sum()
    expected = float(np.exp(-(p * np.log(p)).sum()))
    assert float(effective_rank(x)) == pytest.approx(expected, rel=1e-10)


def test_effective_rank_detects_collapse() -> None:
    full = torch.randn(256, 32)
    collapsed = torch.randn(256, 2) @ torch.randn(2, 32)
    assert float(effective_rank(full)) > 25
    assert float(effective_rank(collapsed)) < 2.01
    assert float(effective_rank(torch.ones(5, 3))) == 1.0


def test_diagnostics_reject_bad_shapes() -> None:
    with pytest.raises(ValueError, match="batch >= 2"):
        matrix_entropy(torch.randn(1, 4))
    with pytest.raises(ValueError, match="batch >= 2"):
        effective_rank(torch.randn(4, 2, 2))


@pytest.mark.parametrize("shape", [(40, 6), (5, 9)])
def test_covariance_spectrum_against_numpy(shape: tuple[int, int]) -> None:
    x = torch.randn(*shape, dtype=torch.float64)
    expected = np.sort(np.linalg.eigvalsh(np.cov(x.numpy(), rowvar=False)))[::-1]
    spectrum = covariance_spectrum(x)
    assert spectrum.shape == (min(shape),)
    np.testing.assert_allclose(spectrum.numpy(), expected[: min(shape)], atol=1e-12)
    assert bool((spectrum[:-1] >= spectrum[1:]).all())


def test_covariance_spectrum_shows_dimensional_collapse() -> None:
    collapsed = torch.randn(256, 3) @ torch.randn(3, 32)
    spectrum = covariance_spectrum(collapsed)
    assert float(spectrum[2]) > 1e-3 and float(spectrum[3:].abs().max()) < 1e-9
    with pytest.raises(ValueError, match="batch >= 2"):
        covariance_spectrum(torch.randn(1, 4))
