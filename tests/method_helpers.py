"""Tiny method modules and a CPU training loop shared by the tests of tests/methods/."""

from __future__ import annotations

from typing import Any

import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from torch.utils.data import DataLoader, Dataset

from lightly_matrix.methods import METHOD_CLASSES

TINY_VIT = {
    "backbone": "vit_tiny_patch16_224",
    "patch_size": 4,
    "decoder_dim": 32,
    "decoder_depth": 1,
    "decoder_num_heads": 2,
}
# Small heads; learning rates high enough to move in a dozen steps of 16 images (lr is per 256).
TINY: dict[str, dict[str, Any]] = {
    "matrix_ssl": {"hidden_dim": 128, "output_dim": 128, "pred_hidden_dim": 32, "lr": 2.0},
    "corinfomax": {"hidden_dim": 128, "output_dim": 8, "lr": 0.5},
    "barlowtwins": {"hidden_dim": 128, "output_dim": 128, "optimizer": "sgd", "lr": 2.0},
    "vicreg": {"hidden_dim": 128, "output_dim": 128, "optimizer": "sgd", "lr": 2.0},
    "byol": {"hidden_dim": 128, "output_dim": 128, "pred_hidden_dim": 32, "lr": 2.0},
    "mec": {"hidden_dim": 128, "output_dim": 128, "pred_hidden_dim": 32, "lr": 2.0},
    "mmae": {**TINY_VIT, "lr": 0.05},
    "umae": {**TINY_VIT, "lr": 0.05},
    "mae": {**TINY_VIT, "lr": 0.05},
}
BATCH, SIZE, STEPS = 16, 32, 14
EMA_TEACHER_METHODS = ("matrix_ssl", "byol", "mec")


def make_module(method: str, **overrides: Any) -> LightningModule:
    kwargs = {
        "backbone": "resnet18",
        "num_classes": 4,
        "batch_size_per_device": BATCH,
        "image_size": SIZE,
        "warmup_epochs": 0.0,
        **TINY[method],
        **overrides,
    }
    return METHOD_CLASSES[method](**kwargs)


class RepeatedBatch(Dataset):
    """The same 16 images (views: image + small noise) at every step: the loss must fall."""

    def __init__(self, num_views: int, length: int) -> None:
        generator = torch.Generator().manual_seed(0)
        images = torch.randn(BATCH, 3, SIZE, SIZE, generator=generator)
        self.views = [
            images + 0.2 * torch.randn(images.shape, generator=generator) for _ in range(num_views)
        ]
        self.labels = torch.arange(BATCH) % 4
        self.length = length

    def __len__(self) -> int:
        return self.length * BATCH

    def __getitem__(self, index: int) -> tuple[list[torch.Tensor], int]:
        i = index % BATCH
        return [v[i] for v in self.views], int(self.labels[i])


class RecordMetrics(Callback):
    """The logged value of each named metric after every training step."""

    def __init__(self, *names: str) -> None:
        self.values: dict[str, list[float]] = {name: [] for name in names}

    def on_train_batch_end(self, trainer: Trainer, *args: Any) -> None:
        for name, values in self.values.items():
            values.append(float(trainer.callback_metrics[name]))


def fit(
    module: LightningModule, steps: int, *names: str, max_epochs: int = 1
) -> dict[str, list[float]]:
    """Trains ``max_epochs`` epochs of ``steps`` steps on :class:`RepeatedBatch`; the metrics."""
    num_views = module.num_views
    loader = DataLoader(RepeatedBatch(num_views, steps), batch_size=BATCH, shuffle=False)
    record = RecordMetrics(*names)
    trainer = Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[record],
    )
    trainer.fit(module, loader)
    return record.values


def train_steps(module: LightningModule, steps: int) -> list[float]:
    """The per-step training losses of one epoch of ``steps`` steps."""
    return fit(module, steps, "train_loss_step")["train_loss_step"]
