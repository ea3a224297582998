"""Exporter: every supported source into mmdet's layout, fully covered, never overwriting."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from lightly_matrix.cli import UserError
from lightly_matrix.cli import main as cli_main
from lightly_matrix.export import EXPORT_FORMAT, ExportError, export_backbone, load_backbone


def lightly_resnet(name: str = "resnet18") -> nn.Sequential:
    """A ResNet as Lightly's examples build it (torchvision children without fc)."""
    torch.manual_seed(0)
    resnet = getattr(torchvision.models, name)()
    return nn.Sequential(*list(resnet.children())[:-1])


def lightning_checkpoint(path, backbone: nn.Module, method: str, arch: str, epoch: int = 9):
    """A checkpoint shaped like our Lightning ones: online backbone + parts to be dropped."""
    online = backbone.state_dict()
    state = {f"backbone.{k}": v for k, v in online.items()}
    # Teacher/momentum copies and heads must never reach the export.
    state.update({f"teacher_backbone.{k}": torch.zeros_like(v) for k, v in online.items()})
    state.update({f"backbone_momentum.{k}": torch.zeros_like(v) for k, v in online.items()})
    state["projection_head.layers.0.weight"] = torch.zeros(8, 8)
    state["criterion.running_cov"] = torch.zeros(4, 4)
    torch.save(
        {
            "state_dict": state,
            "hyper_parameters": {"method": method, "backbone": arch, "lr": 0.1},
            "epoch": epoch,
            "global_step": 100,
            "pytorch-lightning_version": "2.5.0",
        },
        path,
    )
    return path


def test_lightning_resnet18_round_trip(tmp_path):
    seq = lightly_resnet()
    ckpt = lightning_checkpoint(tmp_path / "last.ckpt", seq, "matrix_ssl", "resnet18")
    out = tmp_path / "r18.pth"
    backbone = export_backbone(ckpt, out)
    assert backbone.architecture == "resnet18"
    # The payload loads under weights_only=True, as mmengine's torch.load does with torch >= 2.6.
    payload = torch.load(out, map_location="cpu", weights_only=True)
    sd, meta = payload["state_dict"], payload["meta"]
    assert all(k.startswith("backbone.") for k in sd)
    assert not any("teacher" in k or "momentum" in k or "projection" in k for k in sd)
    torch.testing.assert_close(sd["backbone.conv1.weight"], seq[0].weight)
    torch.testing.assert_close(sd["backbone.layer4.1.bn2.running_var"], seq[7][1].bn2.running_var)
    assert len(sd) == len(seq.state_dict())
    assert meta["format"] == EXPORT_FORMAT
    assert meta["method"] == "matrix_ssl" and meta["architecture"] == "resnet18"
    assert meta["epochs"] == 10 and len(meta["source_sha256"]) == 64
    assert meta["backbone_cfg"] == {"type": "ResNet", "depth": 18}


def test_never_overwrites(tmp_path):
    ckpt = lightning_checkpoint(tmp_path / "a.ckpt", lightly_resnet(), "vicreg", "resnet18")
    out = tmp_path / "out.pth"
    out.write_bytes(b"precious")
    with pytest.raises(UserError, match="already exists"):
        export_backbone(ckpt, out)
    assert out.read_bytes() == b"precious"
    export_backbone(ckpt, out, force=True)
    assert torch.load(out, weights_only=True)["meta"]["method"] == "vicreg"


def test_partial_checkpoint_is_an_error_listing_keys(tmp_path):
    seq = lightly_resnet()
    ckpt = lightning_checkpoint(tmp_path / "p.ckpt", seq, "barlowtwins", "resnet18")
    data = torch.load(ckpt, weights_only=False)
    data["state_dict"] = {k: v for k, v in data["state_dict"].items() if "backbone.7.1." not in k}
    torch.save(data, ckpt)
    with pytest.raises(ExportError, match=r"missing keys: layer4\.1\.bn1\.bias"):
        export_backbone(ckpt, tmp_path / "p.pth")
    assert not (tmp_path / "p.pth").exists()


def test_wrong_shapes_and_unknown_layouts(tmp_path):
    # A CIFAR-style 3x3 stem does not fit mmdet's 7x7 ImageNet stem.
    seq = lightly_resnet()
    seq[0] = nn.Conv2d(3, 64, 3, padding=1, bias=False)
    with pytest.raises(ExportError, match=r"shape mismatches: conv1\.weight"):
        export_backbone(seq, tmp_path / "x.pth")
    with pytest.raises(UserError, match=r"no 'backbone\.' weights"):
        torch.save(
            {"state_dict": {"encoder.weight": torch.zeros(1)}, "hyper_parameters": {}},
            tmp_path / "enc.ckpt",
        )
        load_backbone(tmp_path / "enc.ckpt")
    with pytest.raises(UserError, match="no ResNet or ViT"):
        load_backbone({"linear.weight": torch.zeros(2, 2)})
    with pytest.raises(UserError, match="does not exist"):
        load_backbone(tmp_path / "missing.ckpt")


def test_inconsistent_architecture_name(tmp_path):
    ckpt = lightning_checkpoint(tmp_path / "m.ckpt", lightly_resnet(), "mae", "resnet50")
    with pytest.raises(UserError, match="says its backbone is 'resnet50'"):
        load_backbone(ckpt)


def test_torchvision_resnet50_state_dict_with_ddp_prefix(tmp_path):
    resnet = torchvision.models.resnet50()
    sd = {f"module.{k}": v for k, v in resnet.state_dict().items()}
    torch.save(sd, tmp_path / "tv.pth")
    backbone = export_backbone(tmp_path / "tv.pth", tmp_path / "r50.pth")
    assert backbone.architecture == "resnet50"
    assert "fc.weight" not in backbone.state_dict
    torch.testing.assert_close(
        backbone.state_dict["layer3.5.conv3.weight"], resnet.layer3[5].conv3.weight
    )


def test_lightly_sequential_module_and_reexport(tmp_path):
    seq = lightly_resnet()
    first = export_backbone(seq, tmp_path / "one.pth")
    assert first.meta["source_format"] == "module"
    # A file exported before is accepted again (e.g. by transfer) with its provenance.
    again = load_backbone(tmp_path / "one.pth")
    assert again.meta["format"] == EXPORT_FORMAT and again.architecture == "resnet18"
    assert set(again.state_dict) == set(first.state_dict)


def test_masked_vit_from_lightning_checkpoint(tmp_path):
    timm = pytest.importorskip("timm")
    from lightly.models.modules import MaskedVisionTransformerTIMM

    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64)
    backbone = MaskedVisionTransformerTIMM(vit=vit)
    ckpt = lightning_checkpoint(tmp_path / "mmae.ckpt", backbone, "mmae", "vit_tiny_patch16_224")
    exported = export_backbone(ckpt, tmp_path / "vit.pth")
    assert exported.family == "vit"
    assert exported.backbone_cfg["model_name"] == "vit_tiny_patch16_224"
    assert exported.backbone_cfg["img_size"] == 64 and exported.backbone_cfg["patch_size"] == 16
    sd = torch.load(tmp_path / "vit.pth", weights_only=True)["state_dict"]
    assert "backbone.vit.blocks.11.mlp.fc2.weight" in sd and "backbone.mask_token" not in sd
    torch.testing.assert_close(sd["backbone.vit.pos_embed"], vit.pos_embed)


def test_cli(tmp_path, capsys):
    ckpt = lightning_checkpoint(tmp_path / "c.ckpt", lightly_resnet(), "corinfomax", "resnet18")
    out = tmp_path / "c.pth"
    assert cli_main(["export", str(ckpt), "--out", str(out)]) == 0
    assert "resnet18" in capsys.readouterr().out
    assert cli_main(["export", str(ckpt), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
