"""The frozen-backbone evaluation saves the covariance spectrum of its features (spectrum.json)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from pytorch_lightning import LightningModule
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from lightly_matrix.errors import UserError
from lightly_matrix.evaluation import FrozenEvaluation, ProbeData, feature_spectrum
from lightly_matrix.functional import effective_rank, matrix_entropy
from lightly_matrix.user_files import SPECTRUM_FILE


class Encoder(LightningModule):
    def __init__(self, dim: int, collapse: bool = False, poison: float | None = None) -> None:
        super().__init__()
        self.net = nn.Linear(3 * 4 * 4, dim)
        self.collapse, self.poison = collapse, poison

    def forward(self, x: Tensor) -> Tensor:
        features = self.net(x.flatten(1))
        if self.poison is not None:
            features[::3, 0] = self.poison
        return torch.ones_like(features) if self.collapse else features


def probe_data(n: int = 40) -> ProbeData:
    g = torch.Generator().manual_seed(0)
    images, labels = torch.randn(n, 3, 4, 4, generator=g), torch.arange(n) % 2
    return ProbeData(TensorDataset(images, labels), TensorDataset(images[:10], labels[:10]), 2)


def trainer(step: int) -> SimpleNamespace:
    return SimpleNamespace(is_global_zero=True, global_step=step, loggers=[])


def test_feature_spectrum_against_numpy() -> None:
    x = torch.randn(50, 8, dtype=torch.float64)
    spectrum = feature_spectrum(x)
    expected = np.sort(np.linalg.eigvalsh(np.cov(x.numpy(), rowvar=False)))[::-1]
    np.testing.assert_allclose(spectrum["eigenvalues"], expected, rtol=1e-5)
    assert spectrum["effective_rank"] == pytest.approx(float(effective_rank(x)))
    assert spectrum["matrix_entropy"] == pytest.approx(float(matrix_entropy(x)))
    assert (spectrum["num_images"], spectrum["feature_dim"]) == (50, 8)
    json.dumps(spectrum)  # JSON-ready
    # Collapsed features: a zero spectrum, effective rank 1, no NaN.
    collapsed = feature_spectrum(torch.ones(6, 4))
    assert collapsed["eigenvalues"] == [0.0] * 4 and collapsed["effective_rank"] == 1.0


def test_each_evaluation_saves_a_spectrum_and_a_resume_appends(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = Encoder(dim=16)
    evaluation = FrozenEvaluation(probe_data(), tmp_path)
    evaluation.evaluate(trainer(0), module, epoch=0)
    evaluation.evaluate(trainer(5), module, epoch=1)
    evaluation.evaluate(trainer(5), module, epoch=1)  # an epoch is evaluated once
    # A resumed run (a new callback on the same folder) appends; a collapsed backbone shows.
    resumed = FrozenEvaluation(probe_data(), tmp_path)
    resumed.evaluate(trainer(10), Encoder(dim=16, collapse=True), epoch=2)

    saved = json.loads((tmp_path / SPECTRUM_FILE).read_text())["evaluations"]
    assert [(e["epoch"], e["step"]) for e in saved] == [(0, 0), (1, 5), (2, 10)]
    features = module(probe_data().train.tensors[0]).detach()
    np.testing.assert_allclose(
        saved[1]["eigenvalues"], feature_spectrum(features)["eigenvalues"], rtol=1e-5
    )
    assert len(saved[0]["eigenvalues"]) == 16 and saved[0]["num_images"] == 40
    assert saved[2]["effective_rank"] == 1.0 and max(saved[2]["eigenvalues"]) == 0.0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics["history"]] == [0, 1, 2]


def test_knn_probe_takes_k_and_t_and_k1_is_the_nearest_cosine_neighbour() -> None:
    from lightly_matrix.evaluation import evaluate_features

    gen = torch.Generator().manual_seed(0)
    train_x, test_x = torch.randn(60, 8, generator=gen), torch.randn(30, 8, generator=gen)
    train_y, test_y = torch.arange(60) % 3, torch.arange(30) % 3
    # Independent 1-NN by cosine similarity.
    sim = (
        torch.nn.functional.normalize(test_x, dim=1)
        @ torch.nn.functional.normalize(train_x, dim=1).T
    )
    expected = 100.0 * float((train_y[sim.argmax(dim=1)] == test_y).float().mean())
    got = evaluate_features(train_x, train_y, test_x, test_y, 3, knn_k=1, knn_t=0.1)
    assert got["knn_top1"] == pytest.approx(expected)


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_features_that_are_not_finite_are_one_line_and_write_nothing(tmp_path, poison) -> None:
    evaluation = FrozenEvaluation(probe_data(), tmp_path)
    with pytest.raises(UserError) as info:
        evaluation.evaluate(trainer(7), Encoder(dim=4, poison=poison), epoch=3)
    message = str(info.value)
    assert "\n" not in message and "epoch 3" in message and "18 of 50 probe images" in message
    assert "not finite" in message and "--lr" in message
    assert list(tmp_path.iterdir()) == []
