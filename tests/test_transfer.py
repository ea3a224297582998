"""``lightly-matrix transfer``: input checks before training, and a short train-and-test run."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
import torchvision
from mmengine.config import Config
from torch import nn

from lightly_matrix import transfer
from lightly_matrix.cli import UserError
from lightly_matrix.cli import main as cli_main
from lightly_matrix.data.coco_shapes import make_coco_shapes


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    transfer.add_arguments(parser)
    return parser.parse_args(list(argv))


def resnet18_checkpoint(path):
    """One of our Lightning checkpoints with a Lightly-style ResNet-18."""
    seq = nn.Sequential(*list(torchvision.models.resnet18().children())[:-1])
    state = {f"backbone.{k}": v for k, v in seq.state_dict().items()}
    state |= {f"backbone_momentum.{k}": v for k, v in seq.state_dict().items()}
    hparams = {"method": "matrix_ssl", "backbone": "resnet18"}
    torch.save({"state_dict": state, "hyper_parameters": hparams, "epoch": 1}, path)
    return path


def test_missing_coco_files_reported_before_training(tmp_path, capsys):
    (tmp_path / "coco" / "annotations").mkdir(parents=True)
    (tmp_path / "coco" / "annotations" / "instances_val2017.json").write_text("{}")
    argv = ["transfer", "--coco-root", str(tmp_path / "coco"), "--work-dir", str(tmp_path / "w")]
    assert cli_main(argv) == 2
    missing = capsys.readouterr().err.split("missing: ")[1].split(";")[0]
    assert missing == "annotations/instances_train2017.json, train2017, val2017"
    assert not (tmp_path / "w").exists()


def test_results_are_never_overwritten(tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "results.json").write_text("{}")
    with pytest.raises(UserError, match="already holds results"):
        transfer.resolve_work_dir(parse("--work-dir", str(tmp_path / "w")), "cfg")
    # Without --work-dir every run gets a fresh timestamped directory.
    fresh = transfer.resolve_work_dir(parse(), "cfg")
    assert fresh.parent.name == "cfg" and not fresh.exists()


def test_config_choice_follows_the_architecture():
    assert transfer.default_config("resnet50", demo=False) == "mask-rcnn_r50-c4_ms-1x_coco"
    assert transfer.default_config("resnet18", demo=False) == "mask-rcnn_r18-c4_ms-1x_coco"
    assert transfer.default_config("vit_base_patch16_224", demo=False).startswith("mask-rcnn_vit")
    assert transfer.default_config(None, demo=True) == transfer.DEMO_CONFIG
    for name in transfer.DEFAULT_CONFIGS.values():
        assert transfer.resolve_config(name).is_file()
    with pytest.raises(UserError, match="not found"):
        transfer.resolve_config("mask-rcnn_r51_fpn")


def test_wrong_architecture_for_config_fails_before_training(tmp_path, capsys):
    ckpt = resnet18_checkpoint(tmp_path / "r18.ckpt")
    root = make_coco_shapes(tmp_path / "shapes", num_train=2, num_val=1, image_size=64)
    argv = ["transfer", str(ckpt), "--config", "mask-rcnn_r50_fpn_ms-1x_coco",
            "--coco-root", str(root), "--work-dir", str(tmp_path / "w")]  # fmt: skip
    assert cli_main(argv) == 2
    assert "resnet18 checkpoint vs mask-rcnn_r50_fpn_ms-1x_coco" in capsys.readouterr().err


def test_iteration_schedule_scales_milestones():
    cfg = Config.fromfile(str(transfer.resolve_config("mask-rcnn_r50-c4_ms-2x_coco")))
    transfer._iteration_schedule(cfg, 240)
    assert cfg.train_cfg == dict(type="IterBasedTrainLoop", max_iters=240, val_interval=240)
    warmup, steps = cfg.param_scheduler
    assert warmup["end"] == 60 and steps["milestones"] == [160, 220] and not steps["by_epoch"]


@pytest.mark.slow
def test_short_train_and_test_writes_results(tmp_path):
    """A few iterations of the demo config from an exported ResNet-18 on tiny generated COCO."""
    root = make_coco_shapes(tmp_path / "shapes", num_train=4, num_val=2, image_size=64)
    ckpt = resnet18_checkpoint(tmp_path / "last.ckpt")
    work_dir = tmp_path / "work"
    args = parse(
        str(ckpt), "--config", transfer.DEMO_CONFIG, "--coco-root", str(root),
        "--work-dir", str(work_dir), "--max-iters", "2", "--batch-size", "2",
        "--cfg-options", "default_hooks.visualization.draw=False",
    )  # fmt: skip
    assert transfer.run(args) == 0
    results = json.loads((work_dir / "results.json").read_text())
    for iou_type in ("bbox", "segm"):
        assert set(results[iou_type]) == {"mAP", "AP50", "AP75", "APs", "APm", "APl"}
    assert results["method"] == "matrix_ssl" and results["architecture"] == "resnet18"
    assert results["schedule"] == {"type": "IterBasedTrainLoop", "max_iters": 2}
    assert results["markdown_row"].startswith("| matrix_ssl | resnet18 | 2 |")
    # The backbone was exported into the work dir and is what init_cfg loaded.
    assert (
        torch.load(work_dir / "backbone.pth", weights_only=True)["meta"]["method"] == "matrix_ssl"
    )
    # A second run into the same directory is refused.
    with pytest.raises(UserError, match="already holds results"):
        transfer.run(args)


def test_gpus_launch_torchrun_once_prepared(tmp_path, monkeypatch):
    """--gpus N exports once, then hands the prepared run to torchrun (--launcher pytorch)."""
    calls = []
    monkeypatch.setattr(transfer.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    root = make_coco_shapes(tmp_path / "shapes", num_train=2, num_val=1, image_size=64)
    ckpt = resnet18_checkpoint(tmp_path / "r18.ckpt")
    work_dir = tmp_path / "w"
    args = parse(
        str(ckpt), "--config", transfer.DEMO_CONFIG, "--coco-root", str(root),
        "--work-dir", str(work_dir), "--gpus", "4", "--batch-size", "2",
    )  # fmt: skip
    assert transfer.run(args) == 0
    (command,) = calls
    assert command[1:4] == ["-m", "torch.distributed.run", "--nproc_per_node=4"]
    assert command[command.index("-m", 3) + 1] == "lightly_matrix.transfer"
    assert command[command.index("--launcher") + 1] == "pytorch"
    # The children get the exported file, not the training checkpoint.
    assert str(work_dir / "backbone.pth") in command and str(ckpt) not in command
