"""``export --format torchvision|timm``: state dicts a plain PyTorch user loads into
torchvision's ResNet or timm's ViT, giving the pretraining module's backbone features."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from messages import assert_names
from torch import nn

from lightly_matrix.cli import main as cli_main
from lightly_matrix.errors import UserError
from lightly_matrix.export.plain import build_model, export_plain
from lightly_matrix.methods import METHOD_CLASSES

TINY_VIT = {"backbone": "vit_tiny_patch16_224", "image_size": 32, "patch_size": 4}


def _checkpoint(path, method: str, **kwargs):
    """What our Lightning modules save: state dict + hyper-parameters."""
    torch.manual_seed(0)
    module = METHOD_CLASSES[method](num_classes=0, **kwargs).eval()
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "epoch": 0,
            "pytorch-lightning_version": "2.5.0",
        },
        path,
    )
    return path, module


def _resnet_module(tmp_path, stem: str):
    return _checkpoint(
        tmp_path / f"{stem}.ckpt",
        "corinfomax",
        backbone="resnet18",
        hidden_dim=16,
        output_dim=8,
        stem=stem,
        zero_init_residual=False,  # non-zero residual branches: every weight shows in the output
    )


def _perturb_bn_stats(module: nn.Module) -> None:
    # Fresh BN statistics are 0/1; move them so that a dropped running_mean would show.
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)


def test_torchvision_resnet_loads_with_only_fc_missing_and_same_features(tmp_path, capsys):
    torch.manual_seed(0)
    module = METHOD_CLASSES["corinfomax"](
        backbone="resnet18", num_classes=0, hidden_dim=16, output_dim=8, zero_init_residual=False
    ).eval()
    _perturb_bn_stats(module)
    ckpt = tmp_path / "m.ckpt"
    torch.save(
        {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "epoch": 0},
        ckpt,
    )
    out = tmp_path / "r18_torchvision.pth"
    assert cli_main(["export", str(ckpt), "--out", str(out), "--format", "torchvision"]) == 0
    assert "torchvision.models.resnet18()" in capsys.readouterr().out
    model = torchvision.models.resnet18()
    result = model.load_state_dict(torch.load(out, weights_only=True), strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"]
    assert result.unexpected_keys == []
    model.fc = nn.Identity()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), module(x))


def test_cifar_stem_resnet_says_what_to_change_and_matches(tmp_path, capsys):
    ckpt, module = _resnet_module(tmp_path, "cifar")
    out = tmp_path / "r18_cifar.pth"
    assert cli_main(["export", str(ckpt), "--out", str(out), "--format", "torchvision"]) == 0
    printed = capsys.readouterr().out
    assert "kernel_size=3, stride=1" in printed and "maxpool = torch.nn.Identity()" in printed
    # What the printed lines say to do, written out by hand.
    model = torchvision.models.resnet18()
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    result = model.load_state_dict(torch.load(out, weights_only=True), strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"] and not result.unexpected_keys
    model.fc = nn.Identity()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), module(x))
    # The mmdet format still refuses it (mmdet's ResNet has the 7x7 stem).
    assert cli_main(["export", str(ckpt), "--out", str(tmp_path / "mmdet.pth")]) == 2


@pytest.mark.parametrize("method", ["mae", "mmae"])
def test_timm_vit_loads_strictly_and_gives_the_same_features(tmp_path, capsys, method):
    ckpt, module = _checkpoint(tmp_path / f"{method}.ckpt", method, **TINY_VIT)
    out = tmp_path / "vit_timm.pth"
    assert cli_main(["export", str(ckpt), "--out", str(out), "--format", "timm"]) == 0
    printed = capsys.readouterr().out
    assert "timm.create_model('vit_tiny_patch16_224', num_classes=0" in printed
    model = timm.create_model("vit_tiny_patch16_224", num_classes=0, img_size=32, patch_size=4)
    model.load_state_dict(torch.load(out, weights_only=True), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), module(x))


def test_format_must_fit_the_architecture(tmp_path):
    resnet, _ = _resnet_module(tmp_path, "imagenet")
    vit, _ = _checkpoint(tmp_path / "vit.ckpt", "mae", **TINY_VIT)
    with pytest.raises(UserError, match="--format torchvision"):
        export_plain(resnet, tmp_path / "a.pth", "timm")
    with pytest.raises(UserError, match="--format timm"):
        export_plain(vit, tmp_path / "b.pth", "torchvision")
    with pytest.raises(UserError) as info:
        export_plain(vit, tmp_path / "c.pth", "onnx")
    assert_names(info, "onnx", "mmdet", "torchvision", "timm")
    assert not any((tmp_path / n).exists() for n in ("a.pth", "b.pth", "c.pth"))


def test_an_existing_file_is_never_overwritten(tmp_path):
    ckpt, _ = _resnet_module(tmp_path, "imagenet")
    out = tmp_path / "kept.pth"
    out.write_bytes(b"user data")
    assert cli_main(["export", str(ckpt), "--out", str(out), "--format", "torchvision"]) == 2
    assert out.read_bytes() == b"user data"
    plain = export_plain(ckpt, out, "torchvision", force=True)
    loaded = torch.load(out, weights_only=True)
    assert loaded.keys() == plain.state_dict.keys()
    assert isinstance(build_model(plain), torchvision.models.ResNet)


def test_a_partial_or_misshaped_state_dict_lists_what_does_not_fit(tmp_path):
    weights = torchvision.models.resnet18().state_dict()
    partial = {k: v for k, v in weights.items() if not k.startswith("layer4")}
    misshaped = {**weights, "layer1.0.conv1.weight": torch.zeros(32, 64, 3, 3)}
    for name, sd, tokens in (
        ("partial", partial, ("30 missing keys", "layer4.0.bn1.bias", "--arch")),
        ("misshaped", misshaped, ("1 shape mismatches", "(32, 64, 3, 3) vs (64, 64, 3, 3)")),
    ):
        torch.save(sd, tmp_path / f"{name}.pth")
        with pytest.raises(UserError) as info:
            export_plain(tmp_path / f"{name}.pth", tmp_path / f"{name}-out.pth", "torchvision")
        assert_names(info, "resnet18", "backbone you meant", *tokens)
        assert not (tmp_path / f"{name}-out.pth").exists()


def test_a_ddp_wrapped_whole_model_exports_its_backbone(tmp_path):
    """The sixth probe: ``module.backbone.*`` (DDP around a whole model) was 'no backbone found'."""
    weights = torchvision.models.resnet18().state_dict()
    torch.save(
        {"state_dict": {f"module.backbone.{k}": v for k, v in weights.items()}}, tmp_path / "w.pth"
    )
    plain = export_plain(tmp_path / "w.pth", tmp_path / "out.pth", "torchvision")
    assert plain.state_dict.keys() == weights.keys() - {"fc.weight", "fc.bias"}
    assert all(torch.equal(plain.state_dict[k], weights[k]) for k in plain.state_dict)
