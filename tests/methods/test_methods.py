"""Each pretraining module trains on CPU with a falling loss and keeps the checkpoint contract."""

from __future__ import annotations

import pytest
import torch
from method_helpers import EMA_TEACHER_METHODS, STEPS, make_module, train_steps
from pytorch_lightning import seed_everything

from lightly_matrix.methods import METHOD_CLASSES, build_backbone


@pytest.mark.parametrize("method", list(METHOD_CLASSES))
def test_loss_falls(method: str) -> None:
    seed_everything(0, verbose=False)
    losses = train_steps(make_module(method), STEPS)
    assert len(losses) == STEPS
    assert all(torch.isfinite(torch.tensor(losses)))
    # Skip 3 steps: CorInfoMax's running covariance starts at cov_init * I (flatters early losses).
    first, last = sum(losses[3:6]) / 3, sum(losses[-3:]) / 3
    assert last < first, (method, losses)


@pytest.mark.parametrize("method", list(METHOD_CLASSES))
def test_checkpoint_contract(method: str) -> None:
    module = make_module(method)
    assert module.hparams["method"] == method
    backbone = module.hparams["backbone"]
    keys = module.state_dict().keys()
    if METHOD_CLASSES[method].masked:
        assert backbone == "vit_tiny_patch16_224"
        assert any(k.startswith("backbone.vit.blocks.") for k in keys)
    else:
        assert backbone == "resnet18"
        assert "backbone.0.weight" in keys and "backbone.1.running_mean" in keys
        assert any(k.startswith("backbone.7.") for k in keys)
        assert any(k.startswith("projection_head.") for k in keys)
    assert any(k.startswith("online_classifier.") for k in keys)
    if method in EMA_TEACHER_METHODS:
        assert any(k.startswith("teacher_backbone.0.") for k in keys)
        assert any(k.startswith("teacher_projection_head.") for k in keys)
        assert not any(p.requires_grad for p in module.teacher_backbone.parameters())
    if method == "corinfomax":
        buffers = {k: v for k, v in module.state_dict().items() if k.startswith("criterion.")}
        assert buffers and all(v.dtype == torch.float64 for v in buffers.values())


def test_cli_method_names_are_the_registered_methods() -> None:
    # The torch-free registry (a fast --help) lists the classes in the CLI's order.
    from lightly_matrix.registry import method_names

    assert tuple(METHOD_CLASSES) == method_names()
    for name, cls in METHOD_CLASSES.items():
        assert cls.method == name


def test_resnet_backbone_has_imagenet_stem() -> None:
    backbone, dim = build_backbone("resnet18")
    assert dim == 512
    assert backbone[0].kernel_size == (7, 7) and backbone[0].stride == (2, 2)
    assert isinstance(backbone[3], torch.nn.MaxPool2d)
    assert backbone(torch.randn(2, 3, 32, 32)).flatten(1).shape == (2, 512)


def test_masked_methods_need_a_vit() -> None:
    with pytest.raises(ValueError, match="ViT"):
        METHOD_CLASSES["mmae"](backbone="resnet18")


def test_regularizers() -> None:
    from lightly_matrix.loss import MatrixEntropyLoss, UMAELoss

    assert make_module("mae").criterion is None
    assert isinstance(make_module("mmae").criterion, MatrixEntropyLoss)
    assert isinstance(make_module("umae").criterion, UMAELoss)
    assert make_module("mmae").hparams["reg_weight"] == 0.01
    assert make_module("mae").hparams["reg_weight"] == 0.0


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


@pytest.mark.parametrize("method", [m for m, c in METHOD_CLASSES.items() if not c.masked])
def test_stem_is_a_hyper_parameter_of_every_resnet_method(method: str) -> None:
    """`--hp stem=cifar` reaches the backbone and the checkpoint's hyper-parameters."""
    assert METHOD_CLASSES[method].hparam_defaults()["stem"] == "imagenet"
    assert make_module(method).hparams["stem"] == "imagenet"
    module = make_module(method, stem="cifar")
    assert module.hparams["stem"] == "cifar" and module.backbone[0].kernel_size == (3, 3)
    if method in EMA_TEACHER_METHODS:  # the teacher is a copy of the same backbone
        assert module.teacher_backbone[0].kernel_size == (3, 3)


def test_presets_pick_the_papers_stems() -> None:
    from lightly_matrix.presets import PRESETS, RUN_KEYS

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
            accepted = set(METHOD_CLASSES[method].hparam_defaults()) | set(RUN_KEYS)
            assert set(preset.settings(method)) <= accepted, (preset.name, method)


def test_build_backbone_example_runs() -> None:
    import doctest

    import lightly_matrix.methods.base

    result = doctest.testmod(lightly_matrix.methods.base)
    assert result.attempted > 0 and result.failed == 0


def test_vicreg_weight_decay_is_lightlys_and_the_authors() -> None:
    # Lightly's benchmarks/imagenet/resnet50/vicreg.py and the VICReg paper: LARS, wd 1e-6.
    defaults = METHOD_CLASSES["vicreg"].hparam_defaults()
    assert (defaults["optimizer"], defaults["weight_decay"]) == ("lars", 1e-6)
