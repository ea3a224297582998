"""``lightly-matrix transfer``: input checks before training, and a short train-and-test run."""

from __future__ import annotations

import argparse
import json
import re

import pytest
import torch
import torchvision
from messages import assert_names
from mmdet_blocker import run_without_mmdet
from mmengine.config import Config
from torch import nn

from lightly_matrix import transfer
from lightly_matrix.cli import UserError
from lightly_matrix.cli import main as cli_main
from lightly_matrix.data.coco_shapes import make_coco_shapes
from lightly_matrix.transfer import build, cfg_options, checks


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
    with pytest.raises(UserError) as info:
        checks.resolve_work_dir(parse("--work-dir", str(tmp_path / "w")), "cfg")
    assert_names(info, str(tmp_path / "w"), "--work-dir")
    assert (tmp_path / "w" / "results.json").read_text() == "{}"  # left as it was
    # Without --work-dir every run gets a fresh timestamped directory.
    fresh = checks.resolve_work_dir(parse(), "cfg")
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
    # An epoch-based config: 24 epochs, steps at 16 and 22.
    cfg = Config.fromfile(str(transfer.resolve_config("mask-rcnn_r50_fpn_ms-2x_coco")))
    build.iteration_schedule(cfg, 240)
    assert cfg.train_cfg == dict(type="IterBasedTrainLoop", max_iters=240, val_interval=240)
    warmup, steps = cfg.param_scheduler
    assert warmup["end"] == 60 and steps["milestones"] == [160, 220] and not steps["by_epoch"]
    # An iteration-based config: 180k iterations, steps at 120k and 160k, warm-up 1000.
    cfg = Config.fromfile(str(transfer.resolve_config("mask-rcnn_r50-c4_ms-2x_coco")))
    build.iteration_schedule(cfg, 240)
    assert cfg.train_cfg == dict(type="IterBasedTrainLoop", max_iters=240, val_interval=240)
    warmup, steps = cfg.param_scheduler
    assert (warmup["begin"], warmup["end"]) == (0, 60)  # capped at a quarter of the run
    assert steps["milestones"] == [160, 213] and (steps["begin"], steps["end"]) == (0, 240)
    assert cfg.custom_hooks == [dict(type="PreciseBNHook", num_iters=200)]
    build.iteration_schedule(cfg, 2)
    assert cfg.custom_hooks == [dict(type="PreciseBNHook", num_iters=2)]  # no more than trained


@pytest.mark.slow
def test_short_train_and_test_writes_results(tmp_path):
    """A few iterations of the demo config from an exported ResNet-18 on tiny generated COCO."""
    root = make_coco_shapes(tmp_path / "shapes", num_train=4, num_val=2, image_size=64)
    ckpt = resnet18_checkpoint(tmp_path / "last.ckpt")
    work_dir = tmp_path / "work"
    args = parse(
        str(ckpt), "--config", transfer.DEMO_CONFIG, "--coco-root", str(root),
        "--work-dir", str(work_dir), "--max-iters", "2", "--batch-size", "2",
    )  # fmt: skip
    assert transfer.run(args) == 0
    results = json.loads((work_dir / "results.json").read_text())
    for iou_type in ("bbox", "segm"):
        assert set(results[iou_type]) == {"mAP", "AP50", "AP75", "APs", "APm", "APl"}
        # AP per category of boxes and of masks (ClasswiseCocoMetric), nan where none was found.
        for name in ("rectangle", "ellipse", "triangle"):
            assert f"coco/{iou_type}_{name}_precision" in results["metrics"]
    # What the report shows: the test's first images drawn by mmdet's visualizer, and the page.
    drawn = list(work_dir.glob("*/vis_test/*.jpg"))
    assert len(drawn) == 2  # both validation images (at most REPORT_IMAGES)
    report = (work_dir / "report.html").read_text()
    assert report.count("data:image/jpeg;base64") == 2 and "AP per category" in report
    assert results["method"] == "matrix_ssl" and results["architecture"] == "resnet18"
    assert results["schedule"] == {"type": "IterBasedTrainLoop", "max_iters": 2}
    assert results["markdown_row"].startswith("| matrix_ssl | resnet18 | 2 |")
    # The backbone was exported into the work dir and is what init_cfg loaded.
    assert (
        torch.load(work_dir / "backbone.pth", weights_only=True)["meta"]["method"] == "matrix_ssl"
    )
    # A second run into the same directory is refused.
    before = (work_dir / "results.json").read_bytes()
    with pytest.raises(UserError) as info:
        transfer.run(args)
    assert_names(info, "results")
    assert (work_dir / "results.json").read_bytes() == before


def test_gpus_launch_torchrun_once_prepared(tmp_path, monkeypatch):
    """--gpus N exports once, then hands the prepared run to torchrun (--launcher pytorch)."""
    calls = []
    monkeypatch.setattr(transfer.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    root = make_coco_shapes(tmp_path / "shapes", num_train=2, num_val=1, image_size=64)
    ckpt = resnet18_checkpoint(tmp_path / "r18.ckpt")
    work_dir = tmp_path / "w"
    args = parse(
        str(ckpt), "--config", transfer.DEMO_CONFIG, "--coco-root", str(root),
        "--work-dir", str(work_dir), "--gpus", "4", "--batch-size", "2", "--allow-cpu-ddp",
    )  # fmt: skip
    assert transfer.run(args) == 0
    (command,) = calls
    assert command[1:4] == ["-m", "torch.distributed.run", "--nproc_per_node=4"]
    assert command[command.index("-m", 3) + 1] == "lightly_matrix.transfer"
    assert command[command.index("--launcher") + 1] == "pytorch"
    # The children get the exported file, not the training checkpoint.
    assert str(work_dir / "backbone.pth") in command and str(ckpt) not in command


# --- nothing a user made is written to, and every option is checked first ---------------------


def snapshot(root):
    """Every file under ``root`` with its bytes and mode (directories listed too)."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None, p.stat().st_mode)
        for p in sorted(root.rglob("*"))
    }


def fake_real_coco(root):
    """A user's COCO with the file names the generator uses (real COCO has such ids)."""
    (root / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        (root / f"{split}2017").mkdir()
        (root / f"{split}2017" / "000000000001.jpg").write_bytes(b"user image " + split.encode())
        data = {"images": [{"id": 1}], "annotations": [], "categories": [], "user": split}
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))
    return root


def test_demo_never_writes_into_a_real_coco(tmp_path, capsys):
    coco = fake_real_coco(tmp_path / "coco")
    before = snapshot(coco)
    argv = ["transfer", "--demo", "--coco-root", str(coco), "--work-dir", str(tmp_path / "w")]
    assert cli_main(argv) == 2
    assert_names(capsys.readouterr().err, str(coco), "--coco-root")
    assert snapshot(coco) == before
    assert not (tmp_path / "w").exists()


def test_work_dir_with_a_users_files_is_refused(tmp_path, capsys):
    root = make_coco_shapes(tmp_path / "shapes", num_train=2, num_val=1, image_size=64)
    ckpt = resnet18_checkpoint(tmp_path / "r18.ckpt")
    work = tmp_path / "mine"
    work.mkdir()
    (work / "backbone.pth").write_bytes(b"the user's own backbone")
    argv = ["transfer", str(ckpt), "--config", transfer.DEMO_CONFIG, "--coco-root", str(root),
            "--work-dir", str(work)]  # fmt: skip
    assert cli_main(argv) == 2
    assert "not created by lightly-matrix transfer" in capsys.readouterr().err
    assert (work / "backbone.pth").read_bytes() == b"the user's own backbone"
    assert sorted(p.name for p in work.iterdir()) == ["backbone.pth"]


def test_a_bad_option_is_reported_before_anything_is_written(tmp_path, capsys):
    """Demo data and work dir are created only once every option has been checked."""
    demo_root, work = tmp_path / "demo_data", tmp_path / "w"
    argv = ["transfer", "--demo", "--coco-root", str(demo_root), "--work-dir", str(work),
            "--cfg-options", "train_dataloader.batchsize=2"]  # fmt: skip
    assert cli_main(argv) == 2
    assert "did you mean train_dataloader.batch_size" in capsys.readouterr().err
    assert not demo_root.exists() and not work.exists()


def test_demo_data_go_into_a_directory_the_tool_owns(tmp_path):
    root = tmp_path / "shapes"
    assert checks.check_demo_root(root) is False  # absent: to be generated
    root.mkdir()
    assert checks.check_demo_root(root) is False  # empty: may be claimed
    (root / "notes.txt").write_text("mine")
    with pytest.raises(UserError) as info:
        checks.check_demo_root(root)
    assert_names(info, str(root))
    assert [p.name for p in root.iterdir()] == ["notes.txt"]
    ours = make_coco_shapes(tmp_path / "ours", num_train=2, num_val=1, image_size=32)
    assert (ours / ".lightly_matrix_coco_shapes").is_file()
    with pytest.raises(UserError, match="made with"):
        checks.check_demo_root(ours)  # ours, but not the demo's size


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_gpus_without_cuda_is_one_line_before_torchrun(tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(transfer.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    root = make_coco_shapes(tmp_path / "shapes", num_train=2, num_val=1, image_size=64)
    argv = ["transfer", "--coco-root", str(root), "--gpus", "2", "--work-dir", str(tmp_path / "w")]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "no CUDA GPU" in err and "--allow-cpu-ddp" in err
    assert not calls and not (tmp_path / "w").exists()


@pytest.mark.parametrize(
    ("breakage", "tokens"),
    [
        ("empty_train", ("train2017", "missing")),
        ("empty_val", ("val2017", "missing")),
        ("invalid_json", ("instances_train2017.json", "JSON")),
        ("not_an_object", ("instances_val2017.json", "JSON")),
        ("no_categories", ("instances_train2017.json", "categories")),
    ],
)
def test_broken_coco_is_one_line_naming_the_file(tmp_path, capsys, breakage, tokens):
    root = make_coco_shapes(tmp_path / "coco", num_train=2, num_val=1, image_size=32)
    train_json = root / "annotations" / "instances_train2017.json"
    if breakage.startswith("empty"):
        split = breakage.split("_")[1]
        for image in (root / f"{split}2017").iterdir():
            image.unlink()
    elif breakage == "invalid_json":
        train_json.write_text(train_json.read_text()[:-20])  # a truncated download
    elif breakage == "not_an_object":
        (root / "annotations" / "instances_val2017.json").write_text("[]")
    else:
        data = json.loads(train_json.read_text())
        del data["categories"]
        train_json.write_text(json.dumps(data))
    argv = ["transfer", "--config", transfer.DEMO_CONFIG, "--coco-root", str(root)]
    assert cli_main([*argv, "--work-dir", str(tmp_path / "w")]) == 2
    assert_names(capsys.readouterr().err, *tokens)
    assert not (tmp_path / "w").exists()


def test_pickle_payload_checkpoint_is_never_run(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    ckpt = resnet18_checkpoint(tmp_path / "r18.ckpt")
    data = torch.load(ckpt, weights_only=True)
    data["hyper_parameters"]["trap"] = Payload()
    torch.save(data, ckpt)
    root = make_coco_shapes(tmp_path / "shapes", num_train=2, num_val=1, image_size=64)
    argv = ["transfer", str(ckpt), "--coco-root", str(root), "--work-dir", str(tmp_path / "w")]
    assert cli_main(argv) == 2
    assert_names(capsys.readouterr().err, str(ckpt), "--trust-pickle")
    assert not marker.exists() and not (tmp_path / "w").exists()


# --- --cfg-options ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_cfg():
    return Config.fromfile(str(transfer.resolve_config(transfer.DEMO_CONFIG)))


@pytest.mark.parametrize(
    ("option", "suggestion"),
    [
        ("train_dataloader.batchsize=4", "train_dataloader.batch_size"),
        ("model.backbone.frozen_stage=1", "model.backbone.frozen_stages"),
        ("optim_wrapper.optimizer.weight_decy=0.1", "optim_wrapper.optimizer.weight_decay"),
        ("train_cfg.max_epoch=2", "train_cfg.max_epochs"),
        ("max_epoch=2", "max_epochs"),
    ],
)
def test_unknown_cfg_options_are_errors_with_close_matches(demo_cfg, option, suggestion):
    options = cfg_options.parse_cfg_options([option])
    with pytest.raises(UserError) as info:
        cfg_options.check_cfg_options(demo_cfg, options)
    text = assert_names(info, option.split("=")[0])
    assert re.search(rf"{re.escape(suggestion)}\b", text.split(option.split("=")[0], 1)[1]), text


def test_new_keys_that_mmdet_accepts_pass(demo_cfg):
    options = cfg_options.parse_cfg_options(
        [
            "model.backbone.with_cp=True",  # a ResNet argument the config does not set
            "model.backbone.init_cfg.checkpoint=x.pth",  # inside the init_cfg dict
            "train_dataloader.pin_memory=True",  # torch DataLoader
            "default_hooks.visualization.draw=False",
            "randomness.deterministic=True",
            "model.test_cfg.rcnn.mask_thr_binary=0.4",
            "model.backbone.type=ResNeXt",  # a new type brings its own arguments
            "model.backbone.groups=32",
            "resume=True",
            "train_dataloader.dataset.pipeline.3.prob=0.3",  # list index
            "model.roi_head.bbox_head.num_classes=3",
        ]
    )
    cfg_options.check_cfg_options(demo_cfg, options)
    with pytest.raises(UserError) as info:
        cfg_options.check_cfg_options(demo_cfg, {"model.backbone.groups": 32})
    assert_names(info, "groups", "model.backbone")
    with pytest.raises(UserError) as info:  # heads follow the config's 3 classes
        cfg_options.check_cfg_options(demo_cfg, {"model.roi_head.mask_head.num_classes": 5})
    assert_names(info, "num_classes=5", "3 classes", "metainfo.classes")


def test_cfg_options_cannot_replace_the_checked_checkpoint(tmp_path, capsys):
    root = make_coco_shapes(tmp_path / "shapes", num_train=2, num_val=1, image_size=64)
    argv = ["transfer", "--config", transfer.DEMO_CONFIG, "--coco-root", str(root),
            "--work-dir", str(tmp_path / "w"),
            "--cfg-options", "model.backbone.init_cfg.checkpoint=x.pth"]  # fmt: skip
    assert cli_main(argv) == 2
    assert "loads pretrained weights from its CHECKPOINT argument" in capsys.readouterr().err


def test_transfer_without_mmdet_is_one_line_with_the_install_command(tmp_path):
    done = run_without_mmdet("transfer", "--demo", "--work-dir", str(tmp_path / "w"), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert 'pip install "lightly-matrix[mmdet]"' in line and "compiled" in line
    assert list(tmp_path.iterdir()) == []


# --- hostile input (issue 21): refused in one line before anything is built or written ----------


@pytest.mark.parametrize(
    ("flags", "tokens"),
    [
        (["--max-iters", "0"], ("--max-iters", "0", "1")),
        (["--max-iters", "-1"], ("--max-iters", "-1", "1")),
        (["--batch-size", "0"], ("--batch-size", "0", "1")),
        (["--batch-size", "-2"], ("--batch-size", "-2", "1")),
        (["--val-interval", "-3"], ("--val-interval", "-3")),
        (["--seed", "-1"], ("--seed", "-1")),
        (["--master-port", "70000"], ("--master-port", "70000")),
        (["--nnodes", "2", "--node-rank", "2"], ("--node-rank", "--nnodes")),
        (
            ["--cfg-options", "optim_wrapper.optimizer.lr"],
            ("optimizer.lr", "KEY=VALUE"),
        ),
        (
            ["--cfg-options", "optim_wrapper.optimizer.lr=abc"],
            ("optimizer.lr", "abc"),
        ),
        (["--cfg-options", "train_dataloader.batch_size=four"], ("batch_size", "four")),
        (["--cfg-options", "train_dataloader.batch_size=-2"], ("batch_size", "-2", "1")),
        (["--cfg-options", "train_cfg.max_epochs=0"], ("max_epochs", "0", "1")),
    ],
)
def test_counts_and_cfg_options_out_of_range_are_one_line(tmp_path, capsys, flags, tokens):
    demo_root, work = tmp_path / "demo_data", tmp_path / "w"
    argv = ["transfer", "--demo", "--coco-root", str(demo_root), "--work-dir", str(work), *flags]
    assert cli_main(argv) == 2
    err = assert_names(capsys.readouterr().err, *tokens)
    assert "Traceback" not in err
    assert not demo_root.exists() and not work.exists()


def test_checkpoint_that_is_a_folder_or_random_bytes(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    resnet18_checkpoint(run / "last.ckpt")
    argv = ["transfer", str(run), "--demo", "--coco-root", str(tmp_path / "d")]
    assert cli_main([*argv, "--work-dir", str(tmp_path / "w")]) == 2
    assert_names(capsys.readouterr().err, "folder", str(run / "last.ckpt"))
    (tmp_path / "noise.ckpt").write_bytes(b"\x13\x37" * 300)
    argv = ["transfer", str(tmp_path / "noise.ckpt"), "--demo", "--coco-root", str(tmp_path / "d")]
    assert cli_main([*argv, "--work-dir", str(tmp_path / "w")]) == 2
    err = assert_names(capsys.readouterr().err, str(tmp_path / "noise.ckpt"))
    assert "trust" not in err  # random bytes are not a pickle to trust
    assert not (tmp_path / "w").exists() and not (tmp_path / "d").exists()


def test_unwritable_work_dir_or_demo_root_is_one_line(tmp_path, capsys, unwritable_dir):
    (tmp_path / "afile").write_text("x")
    for work, root in [
        (unwritable_dir / "w", tmp_path / "d"),
        (tmp_path / "afile" / "w", tmp_path / "d"),
        (tmp_path / "w", unwritable_dir / "d"),
    ]:
        argv = ["transfer", "--demo", "--coco-root", str(root), "--work-dir", str(work)]
        assert cli_main(argv) == 2
        assert_names(capsys.readouterr().err, str(work if root == tmp_path / "d" else root))
    assert not (tmp_path / "d").exists() and not (tmp_path / "w").exists()
