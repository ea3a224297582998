"""Each pretraining module trains on CPU with a falling loss and keeps the checkpoint contract."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pytorch_lightning import Callback, LightningModule, Trainer, seed_everything
from torch.utils.data import DataLoader, Dataset

from lightly_matrix.methods import MASKED_METHODS, METHODS, build_backbone

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
    "mmae": {**TINY_VIT, "lr": 0.05},
    "umae": {**TINY_VIT, "lr": 0.05},
    "mae": {**TINY_VIT, "lr": 0.05},
}
BATCH, SIZE, STEPS = 16, 32, 14


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
    return METHODS[method](**kwargs)


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


class RecordLoss(Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer: Trainer, *args: Any) -> None:
        self.losses.append(float(trainer.callback_metrics["train_loss_step"]))


def train_steps(module: LightningModule, steps: int) -> list[float]:
    num_views = 1 if module.method in MASKED_METHODS else 2
    loader = DataLoader(RepeatedBatch(num_views, steps), batch_size=BATCH, shuffle=False)
    record = RecordLoss()
    trainer = Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[record],
    )
    trainer.fit(module, loader)
    return record.losses


@pytest.mark.parametrize("method", list(METHODS))
def test_loss_falls(method: str) -> None:
    seed_everything(0, verbose=False)
    losses = train_steps(make_module(method), STEPS)
    assert len(losses) == STEPS
    assert all(torch.isfinite(torch.tensor(losses)))
    # Skip 3 steps: CorInfoMax's running covariance starts at R_ini * I (flatters early losses).
    first, last = sum(losses[3:6]) / 3, sum(losses[-3:]) / 3
    assert last < first, (method, losses)


@pytest.mark.parametrize("method", list(METHODS))
def test_checkpoint_contract(method: str) -> None:
    module = make_module(method)
    assert module.hparams["method"] == method
    backbone = module.hparams["backbone"]
    keys = module.state_dict().keys()
    if method in MASKED_METHODS:
        assert backbone == "vit_tiny_patch16_224"
        assert any(k.startswith("backbone.vit.blocks.") for k in keys)
    else:
        assert backbone == "resnet18"
        assert "backbone.0.weight" in keys and "backbone.1.running_mean" in keys
        assert any(k.startswith("backbone.7.") for k in keys)
        assert any(k.startswith("projection_head.") for k in keys)
    assert any(k.startswith("online_classifier.") for k in keys)
    if method == "matrix_ssl":
        assert any(k.startswith("teacher_backbone.0.") for k in keys)
        assert any(k.startswith("teacher_projection_head.") for k in keys)
        assert not any(p.requires_grad for p in module.teacher_backbone.parameters())
    if method == "corinfomax":
        buffers = {k: v for k, v in module.state_dict().items() if k.startswith("criterion.")}
        assert buffers and all(v.dtype == torch.float64 for v in buffers.values())


def test_resnet_backbone_has_imagenet_stem() -> None:
    backbone, dim = build_backbone("resnet18")
    assert dim == 512
    assert backbone[0].kernel_size == (7, 7) and backbone[0].stride == (2, 2)
    assert isinstance(backbone[3], torch.nn.MaxPool2d)
    assert backbone(torch.randn(2, 3, 32, 32)).flatten(1).shape == (2, 512)


def test_masked_methods_need_a_vit() -> None:
    with pytest.raises(ValueError, match="ViT"):
        METHODS["mmae"](backbone="resnet18")


def test_regularizers() -> None:
    from lightly_matrix.loss import MatrixEntropyLoss, UMAELoss

    assert make_module("mae").criterion is None
    assert isinstance(make_module("mmae").criterion, MatrixEntropyLoss)
    assert isinstance(make_module("umae").criterion, UMAELoss)
    assert make_module("mmae").hparams["lamb"] == 0.01
    assert make_module("mae").hparams["lamb"] == 0.0


def test_cifar_stem_keeps_32px_maps_and_the_key_layout() -> None:
    imagenet, _ = build_backbone("resnet18")
    cifar, dim = build_backbone("resnet18", stem="cifar")
    assert dim == 512
    assert cifar[0].kernel_size == (3, 3) and cifar[0].stride == (1, 1)
    assert cifar[0].padding == (1, 1) and cifar[0].bias is None
    assert isinstance(cifar[3], torch.nn.Identity)
    # Same keys, so our checkpoints keep one layout; only conv1's kernel differs.
    assert imagenet.state_dict().keys() == cifar.state_dict().keys()
    assert tuple(cifar.state_dict()["0.weight"].shape) == (64, 3, 3, 3)
    # 32 px: ImageNet stem /4 then /8 in layers 2-4 gives 1x1; the CIFAR stem keeps 4x4 in layer4.
    x = torch.randn(2, 3, 32, 32)
    assert cifar[:-1](x).shape == (2, 512, 4, 4)
    assert imagenet[:-1](x).shape == (2, 512, 1, 1)
    assert cifar(x).flatten(1).shape == (2, 512)


def test_bad_stems_are_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown stem 'tiny'"):
        build_backbone("resnet18", stem="tiny")
    with pytest.raises(ValueError, match="ResNets only"):
        build_backbone("vit_tiny_patch16_224", image_size=32, stem="cifar")


@pytest.mark.parametrize("method", [m for m in METHODS if m not in MASKED_METHODS])
def test_stem_is_a_hyper_parameter_of_every_resnet_method(method: str) -> None:
    """`--hp stem=cifar` reaches the backbone and the checkpoint's hyper-parameters."""
    from lightly_matrix.pretrain.config import module_defaults

    assert module_defaults(METHODS[method])["stem"] == "imagenet"
    assert make_module(method).hparams["stem"] == "imagenet"
    module = make_module(method, stem="cifar")
    assert module.hparams["stem"] == "cifar" and module.backbone[0].kernel_size == (3, 3)
    if method == "matrix_ssl":  # the teacher is a copy of the same backbone
        assert module.teacher_backbone[0].kernel_size == (3, 3)


def test_presets_pick_the_papers_stems() -> None:
    from lightly_matrix.presets import PRESETS, RUN_KEYS
    from lightly_matrix.pretrain.config import module_defaults

    for name in ("cifar10_r18", "cifar100_r18"):
        assert PRESETS[name].settings("corinfomax")["stem"] == "cifar"
        assert "CIFAR stem" in PRESETS[name].description
    # The digits backbones go on to the mmdet demo, which needs the ImageNet stem.
    for method in PRESETS["digits"].methods:
        assert PRESETS["digits"].settings(method).get("stem", "imagenet") == "imagenet"
    assert "ImageNet stem" in PRESETS["digits"].description
    # Every preset key is a run setting or a constructor argument of the method it is for.
    for preset in PRESETS.values():
        for method in preset.methods:
            accepted = set(module_defaults(METHODS[method])) | RUN_KEYS
            assert set(preset.settings(method)) <= accepted, (preset.name, method)


def test_build_backbone_example_runs() -> None:
    import doctest

    import lightly_matrix.methods.base

    result = doctest.testmod(lightly_matrix.methods.base)
    assert result.attempted > 0 and result.failed == 0
