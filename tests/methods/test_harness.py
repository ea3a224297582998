"""Our modules in Lightly's benchmark harness (benchmarks/imagenet/resnet50/main.py): its
``METHODS`` entry shape, and every method built from exactly the harness's arguments."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_lightning import Callback, Trainer
from torch.utils.data import DataLoader, TensorDataset

from lightly_matrix.data.transforms import RECIPES
from lightly_matrix.methods import METHOD_CLASSES, METHODS
from lightly_matrix.methods.base import is_vit
from lightly_matrix.presets import PRESETS

# What the harness passes to every model class (main.py: model_kwargs).
HARNESS_KWARGS = {"batch_size_per_device": 4, "num_classes": 10}


def test_entries_have_lightlys_shape() -> None:
    assert list(METHODS) == list(METHOD_CLASSES)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), np.uint8))
    for name, entry in METHODS.items():
        assert set(entry) == {"model", "transform"}
        assert entry["model"] is METHOD_CLASSES[name]
        views = entry["transform"](image)  # what LightlyDataset calls
        assert len(views) == entry["model"].num_views == (1 if entry["model"].masked else 2)
        assert all(v.shape == (3, 224, 224) for v in views)


@pytest.mark.parametrize("name", list(METHOD_CLASSES))
def test_default_transform_is_the_paper_runs_recipe(name: str) -> None:
    cls = METHOD_CLASSES[name]
    assert cls.default_transform in RECIPES
    preset = PRESETS["imagenet_vitb16" if cls.masked else "imagenet_r50"]
    expected = preset.settings(name).get("transform")
    if expected is not None:
        assert cls.default_transform == expected


@pytest.mark.parametrize("name", list(METHOD_CLASSES))
def test_defaults_are_the_imagenet_run(name: str) -> None:
    # The harness builds with only batch size and classes: every method must then be its
    # ImageNet-1k run, not a CIFAR one (CorInfoMax's defaults were its CIFAR-10 run).
    defaults = METHOD_CLASSES[name].hparam_defaults()
    assert defaults["image_size"] == 224
    assert defaults["num_classes"] == 1000
    assert defaults["backbone"] == (
        "vit_base_patch16_224" if METHOD_CLASSES[name].masked else "resnet50"
    )
    assert defaults.get("stem", "imagenet") == "imagenet"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(METHOD_CLASSES))
def test_builds_from_the_harness_arguments_and_trains_a_step(name: str) -> None:
    torch.manual_seed(0)
    model = METHODS[name]["model"](**HARNESS_KWARGS)
    # Tiny images for the ResNets; a ViT's position embeddings fix its input at 224 px.
    size = 224 if is_vit(model.hparams["backbone"]) else 32
    views = model.num_views
    images = [torch.randn(4, 3, size, size) for _ in range(views)]
    data = TensorDataset(*images, torch.arange(4) % 10)
    loader = DataLoader(data, batch_size=4, collate_fn=lambda rows: _collate(rows, views))
    grads = BackboneGradients()
    trainer = Trainer(
        max_steps=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[grads],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small-batch and Lightning hints, not the point here
        trainer.fit(model, loader)
    assert trainer.global_step == 1
    assert torch.isfinite(trainer.callback_metrics["train_loss_step"])
    # The first warm-up step may have lr 0, so the backbone's gradient is what shows training.
    assert grads.norms and all(math.isfinite(n) for n in grads.norms) and grads.norms[0] > 0


class BackboneGradients(Callback):
    """The backbone's gradient norm before each optimizer step."""

    def __init__(self) -> None:
        self.norms: list[float] = []

    def on_before_optimizer_step(self, trainer: Trainer, module: Any, optimizer: Any) -> None:
        grads = [p.grad for p in module.backbone.parameters() if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))


def _collate(rows: list[tuple[torch.Tensor, ...]], views: int) -> tuple:
    columns = list(zip(*rows, strict=True))
    return [torch.stack(c) for c in columns[:views]], torch.stack(columns[views])
