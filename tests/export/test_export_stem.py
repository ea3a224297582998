"""The exporter refuses ResNets whose stem mmdet's ResNet (7x7 stride-2 conv + max-pool) cannot
load, with one line saying why and what to do; what weights cannot show is documented here."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from lightly_matrix.cli import UserError
from lightly_matrix.cli import main as cli_main
from lightly_matrix.export import export_backbone, load_backbone
from lightly_matrix.methods import METHOD_CLASSES, build_backbone

WHY = "7x7 stride-2 stem with max-pool"
WHAT = "pretrain with the ImageNet stem"


def module_checkpoint(path, stem: str):
    """A checkpoint with what our Lightning modules really save: state dict + hyper-parameters."""
    module = METHOD_CLASSES["corinfomax"](
        backbone="resnet18", num_classes=0, hidden_dim=16, output_dim=8, stem=stem
    )
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


def assert_one_line(err: UserError, *fragments: str) -> None:
    text = str(err)
    assert "\n" not in text
    for fragment in fragments:
        assert fragment in text, text


def test_checkpoint_records_the_stem_and_the_imagenet_one_exports(tmp_path):
    ckpt, module = module_checkpoint(tmp_path / "imagenet.ckpt", "imagenet")
    assert torch.load(ckpt, weights_only=True)["hyper_parameters"]["stem"] == "imagenet"
    backbone = export_backbone(ckpt, tmp_path / "r18.pth")
    assert backbone.backbone_cfg == {"type": "ResNet", "depth": 18}
    torch.testing.assert_close(backbone.state_dict["conv1.weight"], module.backbone[0].weight)


def test_cifar_stem_checkpoint_is_refused_by_its_hyper_parameters(tmp_path, capsys):
    ckpt, _ = module_checkpoint(tmp_path / "cifar.ckpt", "cifar")
    assert torch.load(ckpt, weights_only=True)["hyper_parameters"]["stem"] == "cifar"
    out = tmp_path / "r18.pth"
    with pytest.raises(UserError) as info:
        export_backbone(ckpt, out)
    assert_one_line(info.value, "stem='cifar'", WHY, WHAT)
    assert not out.exists()
    # The command line: exit status 2, the same single line, nothing written.
    assert cli_main(["export", str(ckpt), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "stem='cifar'" in err and not out.exists()


def test_cifar_stem_lightly_sequential_is_refused_by_its_conv1_kernel(tmp_path):
    """Without hyper-parameters (a bare module or state dict), conv1's 3x3 kernel gives it away."""
    backbone, _ = build_backbone("resnet18", stem="cifar")
    with pytest.raises(UserError) as info:
        export_backbone(backbone, tmp_path / "x.pth")
    assert_one_line(info.value, "conv1 is a 3x3 convolution", WHY, WHAT)


def test_torchvision_state_dict_with_3x3_conv1_is_refused(tmp_path):
    resnet = torchvision.models.resnet50()
    resnet.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    torch.save(resnet.state_dict(), tmp_path / "tv.pth")
    with pytest.raises(UserError) as info:
        load_backbone(tmp_path / "tv.pth")
    assert_one_line(info.value, "conv1 is a 3x3 convolution", WHY, WHAT)


def test_lightly_sequential_without_max_pool_child_is_refused(tmp_path):
    """Dropping the max-pool child shifts layer1..4 to children 3..6 (key '3.' is impossible)."""
    children = list(torchvision.models.resnet18().children())[:-1]
    del children[3]  # the max-pool
    with pytest.raises(UserError) as info:
        load_backbone(nn.Sequential(*children))
    assert_one_line(info.value, "unexpected key '3.", "max-pool", WHY, WHAT)


def test_max_pool_replaced_by_identity_cannot_be_seen_in_the_weights(tmp_path):
    """A documented limit: identity max-pool + 7x7 conv1 has exactly the ImageNet weights."""
    resnet = torchvision.models.resnet18()
    resnet.maxpool = nn.Identity()  # type: ignore[assignment]
    backbone = export_backbone(resnet.state_dict(), tmp_path / "r18.pth")
    assert backbone.architecture == "resnet18"
    assert set(backbone.state_dict) == {
        k for k in torchvision.models.resnet18().state_dict() if not k.startswith("fc.")
    }
