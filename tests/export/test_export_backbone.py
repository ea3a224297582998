"""Exporter: every supported source into mmdet's layout, fully covered, never overwriting."""

from __future__ import annotations

import os
import shlex
import stat

import pytest
import torch
import torchvision
from messages import assert_names
from mmdet_blocker import run_without_mmdet
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
    with pytest.raises(UserError) as info:
        export_backbone(ckpt, out)
    assert_names(info, str(out))
    assert out.read_bytes() == b"precious"
    export_backbone(ckpt, out, force=True)
    assert torch.load(out, weights_only=True)["meta"]["method"] == "vicreg"


def test_partial_checkpoint_is_an_error_listing_keys(tmp_path):
    seq = lightly_resnet()
    ckpt = lightning_checkpoint(tmp_path / "p.ckpt", seq, "barlowtwins", "resnet18")
    data = torch.load(ckpt, weights_only=False)
    data["state_dict"] = {k: v for k, v in data["state_dict"].items() if "backbone.7.1." not in k}
    torch.save(data, ckpt)
    with pytest.raises(ExportError) as info:
        export_backbone(ckpt, tmp_path / "p.pth")
    assert_names(info, "missing", "layer4.1.bn1.bias", one_line=False)
    assert not (tmp_path / "p.pth").exists()


def test_wrong_shapes_and_unknown_layouts(tmp_path):
    # A 4-channel input conv does not fit mmdet's RGB ResNet (stems: test_export_stem.py).
    seq = lightly_resnet()
    seq[0] = nn.Conv2d(4, 64, 7, stride=2, padding=3, bias=False)
    with pytest.raises(ExportError) as info:
        export_backbone(seq, tmp_path / "x.pth")
    assert_names(info, "shape", "conv1.weight", one_line=False)
    with pytest.raises(UserError, match=r"no 'backbone\.' weights"):
        torch.save(
            {"state_dict": {"encoder.weight": torch.zeros(1)}, "hyper_parameters": {}},
            tmp_path / "enc.ckpt",
        )
        load_backbone(tmp_path / "enc.ckpt")
    with pytest.raises(UserError) as info:
        load_backbone({"linear.weight": torch.zeros(2, 2)})
    assert_names(info, "ResNet", "ViT")
    with pytest.raises(UserError) as info:
        load_backbone(tmp_path / "missing.ckpt")
    assert_names(info, str(tmp_path / "missing.ckpt"))


def test_inconsistent_architecture_name(tmp_path):
    ckpt = lightning_checkpoint(tmp_path / "m.ckpt", lightly_resnet(), "mae", "resnet50")
    with pytest.raises(UserError) as info:
        load_backbone(ckpt)
    assert_names(info, "'resnet50'", "resnet18")


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


class _Payload:
    """Unpickling this creates ``marker``: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def payload_checkpoint(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    state = {f"backbone.{k}": v for k, v in lightly_resnet().state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {"x": _Payload(marker)}}, path)
    return path, marker


def test_pickle_payload_is_never_run(tmp_path, capsys):
    path, marker = payload_checkpoint(tmp_path)
    assert cli_main(["export", str(path), "--out", str(tmp_path / "out.pth")]) == 2
    err = capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "out.pth").exists()
    assert_names(err, "--trust-pickle", "io.open")  # names what the file would run (io.open)
    with pytest.raises(UserError, match="--trust-pickle"):
        load_backbone(path)
    assert not marker.exists()


def test_whole_module_file_needs_trust_pickle(tmp_path, capsys):
    resnet = torchvision.models.resnet18()
    torch.save(resnet, tmp_path / "model.pt")
    out = tmp_path / "r18.pth"
    assert cli_main(["export", str(tmp_path / "model.pt"), "--out", str(out)]) == 2
    assert "--trust-pickle" in capsys.readouterr().err and not out.exists()
    argv = ["export", str(tmp_path / "model.pt"), "--out", str(out), "--trust-pickle"]
    assert cli_main(argv) == 0
    sd = torch.load(out, weights_only=True)["state_dict"]
    torch.testing.assert_close(sd["backbone.layer2.0.conv1.weight"], resnet.layer2[0].conv1.weight)


def test_lightning_checkpoint_with_plain_hyper_parameters_loads_weights_only(tmp_path):
    """Everything our checkpoints hold (hparams, loops, optimizer state) is plain data."""
    seq = lightly_resnet()
    ckpt = lightning_checkpoint(tmp_path / "l.ckpt", seq, "vicreg", "resnet18")
    data = torch.load(ckpt, weights_only=True)
    data["loops"] = {"fit_loop": {"epoch_progress": {"current": {"completed": 3}}}}
    data["optimizer_states"] = [torch.optim.SGD(seq.parameters(), lr=0.1).state_dict()]
    data["callbacks"] = {"ModelCheckpoint{}": {"best_model_score": torch.tensor(0.5)}}
    torch.save(data, ckpt)
    assert load_backbone(ckpt).meta["epochs"] == 3


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, bad):
    seq = lightly_resnet()
    with torch.no_grad():
        seq[5][1].bn1.running_var[3] = bad
    ckpt = lightning_checkpoint(tmp_path / "n.ckpt", seq, "matrix_ssl", "resnet18")
    with pytest.raises(UserError) as info:
        export_backbone(ckpt, tmp_path / "n.pth")
    assert_names(info, "layer2.1.bn1.running_var", "NaN")  # the weight and what is wrong
    assert not (tmp_path / "n.pth").exists()


def test_exported_file_respects_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        export_backbone(lightly_resnet(), tmp_path / "a.pth")
        os.umask(0o077)
        export_backbone(lightly_resnet(), tmp_path / "b.pth")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.pth").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.pth").stat().st_mode) == 0o600


def test_cli_prints_mmdets_train_command(tmp_path, capsys):
    from lightly_matrix.transfer.configs import resolve_config

    ckpt = lightning_checkpoint(tmp_path / "c.ckpt", lightly_resnet(), "corinfomax", "resnet18")
    out = tmp_path / "c.pth"
    assert cli_main(["export", str(ckpt), "--out", str(out)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("  python "))
    command = shlex.split(line)
    assert command[0] == "python" and command[1].endswith("mmdet/.mim/tools/train.py")
    assert os.path.isfile(command[1])
    assert command[2] == str(resolve_config("mask-rcnn_r18-c4_ms-1x_coco"))
    assert command[3:] == [
        "--cfg-options",
        f"model.backbone.init_cfg.checkpoint={out}",
        f"model.roi_head.shared_head.init_cfg.checkpoint={out}",
    ]


def test_export_without_mmdet_writes_and_says_it_skipped_the_check(tmp_path):
    seq = lightly_resnet()
    ckpt = lightning_checkpoint(tmp_path / "c.ckpt", seq, "matrix_ssl", "resnet18")
    out = tmp_path / "c.pth"
    done = run_without_mmdet("export", str(ckpt), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "check against mmdet's backbone was skipped" in done.stdout
    assert 'pip install "lightly-matrix[mmdet]"' in done.stdout
    sd = torch.load(out, weights_only=True)["state_dict"]
    torch.testing.assert_close(sd["backbone.conv1.weight"], seq[0].weight)
