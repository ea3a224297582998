"""Evaluation of frozen backbone features: Lightly's kNN, and linear and few-label probes
(scikit-learn logistic regressions on standardised features; on the digits kNN saturates)."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lightly.utils.benchmarking import knn_predict
from pytorch_lightning import Callback, LightningModule, Trainer
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lightly_matrix.errors import UserError
from lightly_matrix.user_files import METRICS_FILE, SPECTRUM_FILE
from lightly_matrix.utils.io import write_json_atomic

EVAL_COLUMNS = (
    ("epoch", "epoch"),
    ("knn_top1", "kNN top-1 (%)"),
    ("linear_top1", "linear top-1 (%)"),
    ("few_label_top1", "10 labels/class top-1 (%)"),
    ("eval_s", "eval time (s)"),
)


@dataclass
class ProbeData:
    """Labelled images the probes are fitted on (``train``) and scored on (``test``)."""

    train: Dataset
    test: Dataset
    num_classes: int


@torch.no_grad()
def extract_features(
    encoder: Callable[[Tensor], Tensor],
    dataset: Dataset,
    batch_size: int = 256,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """Float32 features ``(n, d)`` and int64 labels of ``(image, label)`` pairs, on the CPU."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    features, labels = [], []
    for images, targets in loader:
        features.append(encoder(images.to(device)).flatten(start_dim=1).float().cpu())
        labels.append(torch.as_tensor(targets))
    return torch.cat(features), torch.cat(labels).long()


def linear_probe_top1(
    train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], seed: int = 0
) -> float:
    """Top-1 (%) on ``test`` of a logistic regression fitted on ``train`` (features, labels)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    with warnings.catch_warnings():
        # A probe stopped at max_iter is still a fair, fixed-budget probe for every method.
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(train[0].double().numpy(), train[1].numpy())
    return 100.0 * float(probe.score(test[0].double().numpy(), test[1].numpy()))


def evaluate_features(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    num_classes: int,
    max_linear_train: int = 20000,
    knn_k: int = 20,
    knn_t: float = 0.1,
) -> dict[str, float]:
    """kNN, linear and few-label top-1 (%) of frozen features.

    Args:
        train_x: Features the probes are fitted on, ``(n, d)``.
        train_y: Their labels.
        test_x: Features the probes are scored on.
        test_y: Their labels.
        num_classes: Number of classes.
        max_linear_train: Fit the linear probe on at most this many (evenly spaced) samples.
        knn_k: Neighbours of the kNN probe.
        knn_t: Temperature of its weighted votes.

    Returns:
        ``{"knn_top1", "linear_top1", "few_label_top1"}``; few-label: the mean of 5 fixed draws
        of 10 labels per class.
    """
    bank = F.normalize(train_x, dim=1).t().contiguous()
    predicted = knn_predict(
        F.normalize(test_x, dim=1), bank, train_y, num_classes, min(knn_k, len(train_x)), knn_t
    )[:, 0]
    linear = torch.linspace(0, len(train_x) - 1, min(len(train_x), max_linear_train)).long()
    rng, labels = np.random.default_rng(0), train_y.numpy()
    few_label = []
    for _ in range(5):
        chosen = [rng.permutation(np.flatnonzero(labels == c))[:10] for c in np.unique(labels)]
        index = torch.as_tensor(np.concatenate(chosen))
        few_label.append(linear_probe_top1((train_x[index], train_y[index]), (test_x, test_y)))
    return {
        "knn_top1": 100.0 * float((predicted == test_y).float().mean()),
        "linear_top1": linear_probe_top1((train_x[linear], train_y[linear]), (test_x, test_y)),
        "few_label_top1": float(np.mean(few_label)),
    }


def _probe_features(
    encoder: Callable[[Tensor], Tensor], data: ProbeData, device: Any, num_workers: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    train = extract_features(encoder, data.train, device=device, num_workers=num_workers)
    test = extract_features(encoder, data.test, device=device, num_workers=num_workers)
    return *train, *test


def evaluate_encoder(
    encoder: Callable[[Tensor], Tensor],
    data: ProbeData,
    device: torch.device | str = "cpu",
    num_workers: int = 0,
) -> dict[str, float]:
    """Extracts features of ``data`` with ``encoder``; scores them (:func:`evaluate_features`)."""
    return evaluate_features(
        *_probe_features(encoder, data, device, num_workers), num_classes=data.num_classes
    )


def feature_spectrum(features: Tensor) -> dict[str, Any]:
    """The covariance spectrum of frozen features, with effective rank and matrix entropy.

    Returns:
        ``{"num_images", "feature_dim", "eigenvalues" (descending, 6 significant digits),
        "effective_rank", "matrix_entropy"}``, JSON-ready.
    """
    from lightly_matrix.functional import covariance_spectrum, effective_rank, matrix_entropy

    eigenvalues = covariance_spectrum(features).clamp(min=0.0)
    return {
        "num_images": int(features.shape[0]),
        "feature_dim": int(features.shape[1]),
        "eigenvalues": [float(f"{value:.6g}") for value in eigenvalues.tolist()],
        "effective_rank": float(effective_rank(features)),
        "matrix_entropy": float(matrix_entropy(features)),
    }


class FrozenEvaluation(Callback):
    """Scores the frozen online backbone before training, every N epochs and at the end.

    Writes ``metrics.json``, ``spectrum.json`` (a resumed run appends) and logs ``eval/*``, on
    global zero only; the module's ``knn_k`` / ``knn_t`` hyper-parameters set the kNN probe.

    Args:
        data: Labelled probe data.
        out_dir: Run directory.
        every_n_epochs: Evaluate every N epochs (0: only before and after training).
        at_start: Evaluate the untrained backbone when a run starts from scratch.
        run_info: Written under ``run`` in the metrics file.
        num_workers: Data-loading workers for feature extraction.
    """

    def __init__(
        self,
        data: ProbeData,
        out_dir: str | Path,
        every_n_epochs: int = 0,
        at_start: bool = True,
        run_info: dict[str, Any] | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.data, self.every_n_epochs, self.at_start = data, every_n_epochs, at_start
        self.path = Path(out_dir) / METRICS_FILE
        self.spectrum_path = self.path.with_name(SPECTRUM_FILE)
        self.run_info, self.num_workers = dict(run_info or {}), num_workers
        self.history: list[dict[str, Any]] = _read(self.path, "history")
        self.spectra: list[dict[str, Any]] = _read(self.spectrum_path, "evaluations")

    def evaluate(self, trainer: Trainer, module: LightningModule, epoch: int) -> None:
        """Evaluates the backbone after ``epoch`` completed epochs and records the result."""
        if not trainer.is_global_zero or any(row["epoch"] == epoch for row in self.history):
            return
        start = time.perf_counter()
        was_training = module.training
        module.eval()
        try:
            with torch.autocast(device_type=module.device.type, enabled=False):
                features = _probe_features(module, self.data, module.device, self.num_workers)
        finally:
            module.train(was_training)
        rows = torch.cat(features[::2])
        if bad := int((~torch.isfinite(rows)).any(dim=1).sum()):
            raise UserError(
                f"evaluation at epoch {epoch}: the backbone's features of {bad} of {len(rows)} "
                "probe images are not finite (NaN or inf); lower --lr or check the --hp values (a "
                "diverged run) or the starting weights"
            )
        hp = getattr(module, "hparams", {})
        knn = {key: hp[key] for key in ("knn_k", "knn_t") if key in hp}
        metrics = evaluate_features(*features, self.data.num_classes, **knn)
        step = trainer.global_step
        self.history.append(
            {"epoch": epoch, "step": step, **metrics, "eval_s": time.perf_counter() - start}
        )
        if len(features[0]) >= 2:
            self.spectra.append({"epoch": epoch, "step": step, **feature_spectrum(features[0])})
        for logger in trainer.loggers:
            logger.log_metrics({f"eval/{k}": v for k, v in metrics.items()}, step=step)
        self.write()

    def write(self) -> None:
        """Writes ``metrics.json`` and ``spectrum.json``."""
        history = sorted(self.history, key=lambda row: row["epoch"])
        final = history[-1] if history else None
        write_json_atomic(self.path, {"run": self.run_info, "history": history, "final": final})
        if self.spectra:
            spectra = sorted(self.spectra, key=lambda row: row["epoch"])
            write_json_atomic(
                self.spectrum_path,
                {"features": "backbone, probe training images", "evaluations": spectra},
            )

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.at_start and trainer.global_step == 0:
            self.evaluate(trainer, pl_module, epoch=0)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        every = self.every_n_epochs
        if every > 0 and epoch % every == 0 and epoch < (trainer.max_epochs or 0):
            self.evaluate(trainer, pl_module, epoch)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.evaluate(trainer, pl_module, trainer.current_epoch)


def _read(path: Path, key: str) -> list[dict[str, Any]]:
    return json.loads(path.read_text()).get(key, []) if path.exists() else []
