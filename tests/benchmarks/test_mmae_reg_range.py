"""benchmarks/mmae_reg_range.py: every measured value lies within the closed-form bounds."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import mmae_reg_range  # noqa: E402

from lightly_matrix.loss import MatrixEntropyLoss  # noqa: E402


@pytest.mark.parametrize(("m", "d"), [(8, 32), (16, 12)])
def test_cases_lie_between_the_closed_form_bounds(m, d):
    mu, w = 3.0, 0.01
    loss = MatrixEntropyLoss(gram_scale=mu, weight=w)
    low, high = mmae_reg_range.lower_bound(m, d, mu, w), -w * math.log1p(mu * m / d)
    for name, draw in mmae_reg_range.cases(m, d).items():
        if name.startswith("orthogonal") and m > d:
            continue
        row = mmae_reg_range.measure(loss, draw, batches=3, seed=0)
        assert low - 1e-9 <= row["min"] <= row["max"] <= high + 1e-9, name
        assert math.isfinite(row["grad"]) and row["grad"] >= 0
    if m <= d:
        assert low == pytest.approx(-w * m * math.log1p(mu / d), rel=1e-12)
    collapsed = mmae_reg_range.measure(loss, mmae_reg_range.cases(m, d)["rank 4"], 1, 0)
    assert collapsed["max"] > low  # partial collapse is above the orthogonal minimum


def test_prints_the_table(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["x", "--batch", "4", "--dim", "8", "--batches", "2"])
    torch.manual_seed(0)
    assert mmae_reg_range.main() == 0
    out = capsys.readouterr().out
    assert "| closed form, all rows equal |" in out and "rank 1" in out
    assert f"{-0.01 * math.log1p(3 * 4 / 8):.6f}" in out
