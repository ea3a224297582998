"""``--protocol``, the iteration schedules under other batch sizes, and the reference numbers."""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path

import pytest
from messages import assert_names
from mmengine.config import Config

from lightly_matrix import transfer
from lightly_matrix.cli import UserError
from lightly_matrix.cli import main as cli_main
from lightly_matrix.transfer import build, results

ROOT = Path(__file__).resolve().parents[2]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    transfer.add_arguments(parser)
    return parser.parse_args(list(argv))


def load(name: str) -> Config:
    return Config.fromfile(str(transfer.resolve_config(name)))


# --- which config a protocol picks ------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "architecture", "config"),
    [
        (None, "resnet50", "mask-rcnn_r50-c4_ms-1x_coco"),  # the default: matrix_ssl
        (None, None, "mask-rcnn_r50-c4_ms-1x_coco"),  # random-init baseline
        ("matrix_ssl", "resnet50", "mask-rcnn_r50-c4_ms-1x_coco"),
        ("matrix_ssl", "resnet18", "mask-rcnn_r18-c4_ms-1x_coco"),
        ("corinfomax", "resnet50", "mask-rcnn_r50-c4_ms-2x_coco"),
        ("corinfomax", None, "mask-rcnn_r50-c4_ms-2x_coco"),
        ("corinfomax", "resnet18", "mask-rcnn_r18-c4_ms-2x_coco"),
        ("mmselfsup_fpn", "resnet50", "mask-rcnn_r50_fpn_ms-1x_coco"),
        ("mmselfsup_fpn", "resnet18", "mask-rcnn_r18_fpn_ms-1x_coco"),
    ],
)
def test_protocol_picks_its_config(protocol, architecture, config):
    assert transfer.default_config(architecture, demo=False, protocol=protocol) == config
    assert transfer.resolve_config(config).is_file()
    assert transfer.config_protocol(config) == (protocol or transfer.DEFAULT_PROTOCOL)
    # The config says which protocol it is, in the line `lightly-matrix configs` shows.
    description = transfer.configs.describe_config(transfer.resolve_config(config))
    assert (protocol or "matrix_ssl") in description


def test_configs_outside_the_protocols_have_none():
    for name in ("mask-rcnn_r50_fpn_ms-2x_coco", transfer.DEMO_CONFIG, "/x/my_config.py"):
        assert transfer.config_protocol(name) is None
    assert transfer.config_protocol("/somewhere/mask-rcnn_r50-c4_ms-2x_coco.py") == "corinfomax"


def test_protocol_errors_are_one_line():
    with pytest.raises(UserError) as info:
        transfer.default_config("vit_base_patch16_224", demo=False, protocol="matrix_ssl")
    assert_names(info, "vit_base_patch16_224", "matrix_ssl", "ResNet")
    with pytest.raises(UserError) as info:
        transfer.default_config(None, demo=True, protocol="corinfomax")
    assert_names(info, "--protocol", "--demo")
    with pytest.raises(UserError) as info:
        transfer.default_config("resnet50", demo=False, protocol="moco")
    assert_names(info, "'moco'", *transfer.PROTOCOLS)
    with pytest.raises(SystemExit):
        parse("--protocol", "moco")  # argparse's choices


def test_protocol_and_config_together_are_refused_before_anything_is_written(tmp_path, capsys):
    argv = ["transfer", "--protocol", "corinfomax", "--config", "mask-rcnn_r50-c4_ms-1x_coco",
            "--coco-root", str(tmp_path / "coco"), "--work-dir", str(tmp_path / "w")]  # fmt: skip
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "give --protocol or --config, not both" in err
    assert not (tmp_path / "w").exists()


# --- iteration schedules: --max-iters, other total batch sizes, --cfg-options -----------------


def built(tmp_path, *argv: str, config: str = "mask-rcnn_r50-c4_ms-1x_coco") -> Config:
    args = parse("--work-dir", str(tmp_path / "w"), *argv)
    path = transfer.resolve_config(config)
    return build.build_config(args, path, tmp_path / "w", tmp_path / "coco", None, None)


def schedule(cfg: Config) -> tuple:
    warmup, steps = cfg.param_scheduler
    return cfg.train_cfg.max_iters, warmup["end"], steps["milestones"], steps["end"]


@pytest.mark.parametrize(
    ("world", "batch", "expected"),
    [
        ("8", "2", (90000, 1000, [60000, 80000], 90000)),  # the published total batch 16
        ("4", "2", (180000, 2000, [120000, 160000], 180000)),  # half the batch: twice the steps
        ("16", "4", (22500, 250, [15000, 20000], 22500)),  # total 64
    ],
)
def test_iteration_schedule_follows_the_total_batch(tmp_path, monkeypatch, world, batch, expected):
    """Detectron2's REFERENCE_WORLD_SIZE rule: images seen and lr per image stay the same."""
    monkeypatch.setenv("WORLD_SIZE", world)
    cfg = built(tmp_path, "--batch-size", batch)
    assert schedule(cfg) == expected
    assert cfg.auto_scale_lr == dict(base_batch_size=16, enable=True)  # the lr, scaled by mmengine
    factor = 16 / (int(world) * int(batch))
    assert cfg.default_hooks.checkpoint.interval == round(10000 * factor)
    precise_bn, divergence = cfg.custom_hooks
    assert precise_bn == dict(type="PreciseBNHook", num_iters=200)
    assert divergence == dict(type="DivergenceHook")  # stops a non-finite or exploding loss


def test_single_process_and_overrides(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    # One process at the config's batch 2: 8 times the iterations (12 epochs, as before).
    assert schedule(built(tmp_path))[0] == 720000
    assert schedule(built(tmp_path, "--gpus", "8"))[0] == 90000  # the parent of 8 torchrun children
    # --no-auto-scale-lr keeps the config's numbers.
    assert schedule(built(tmp_path, "--no-auto-scale-lr")) == (90000, 1000, [60000, 80000], 90000)
    # A batch size given as --cfg-options counts as well.
    cfg = built(tmp_path, "--gpus", "2", "--cfg-options", "train_dataloader.batch_size=4")
    assert schedule(cfg)[0] == 180000 and cfg.train_dataloader.batch_size == 4
    # --cfg-options apply after the scaling, as given.
    options = ["train_cfg.max_iters=1000", "custom_hooks.0.num_iters=50",
               "optim_wrapper.paramwise_cfg.norm_decay_mult=1.0"]  # fmt: skip
    cfg = built(tmp_path, "--gpus", "8", "--cfg-options", *options)
    assert cfg.train_cfg.max_iters == 1000 and cfg.custom_hooks[0].num_iters == 50
    assert cfg.optim_wrapper.paramwise_cfg.norm_decay_mult == 1.0
    with pytest.raises(UserError) as info:
        built(tmp_path, "--cfg-options", "custom_hooks.0.num_iter=5")
    assert_names(info, "custom_hooks.0.num_iter", "custom_hooks.0.num_iters")
    # --max-iters wins over the batch rule.
    assert schedule(built(tmp_path, "--max-iters", "400")) == (400, 100, [267, 356], 400)
    # Epoch-based configs keep their epochs.
    fpn = built(tmp_path, config="mask-rcnn_r50_fpn_ms-1x_coco")
    assert fpn.train_cfg.max_epochs == 12 and fpn.param_scheduler[1].milestones == [8, 11]


# --- reference numbers -------------------------------------------------------------------------


def test_reference_file_ships_in_the_wheel_and_is_well_formed():
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    assert results.REFERENCES_FILE in package_data["lightly_matrix.transfer"]
    packaged = ROOT / "lightly_matrix" / "transfer" / results.REFERENCES_FILE
    data = results.load_references()
    assert data == json.loads(packaged.read_text())
    for protocol, entry in data["protocols"].items():
        assert transfer.PROTOCOLS[protocol]["resnet50"] == entry["config"]
    for entry in data["references"]:
        source = entry["source"]
        assert entry["protocol"] in transfer.PROTOCOLS and set(results.METRICS) <= set(entry)
        assert {"url", "table", "short", "kind"} <= set(source)
        # Pinned sources: a commit or a release tag in every address.
        assert source["commit"] in source["url"] or "/v0.11.0/" in source["url"]
        assert isinstance(entry["pretrain_epochs"], int)
        assert entry["AP_bb"] is not None and entry["AP_mk"] is not None


def test_reference_numbers_agree_with_the_project_notes():
    """Box / mask AP of mmselfsup's FPN rows as docs/transfer.md lists them (another reading)."""
    notes = {"MoCo v2": (40.2, 36.1), "BYOL": (40.9, 36.8), "SimCLR": (38.7, 34.9),
             "SwAV": (40.2, 36.3), "SimSiam": (38.8, 34.9)}  # fmt: skip
    rows = {
        e["method"]: (e["AP_bb"], e["AP_mk"])
        for e in results.references_for("mmselfsup_fpn")
        if e["pretrain_epochs"] == 200
    }
    assert rows == notes


def test_comparison_table_puts_our_row_above_the_protocols_rows():
    ours = {"protocol": "mmselfsup_fpn", "architecture": "resnet50", "method": "matrix_ssl",
            "pretrain_epochs": 400, "checkpoint": "x.ckpt",
            "bbox": {"mAP": 0.4123, "AP50": 0.61, "AP75": 0.449},
            "segm": {"mAP": 0.37, "AP50": 0.58, "AP75": -1.0}}  # fmt: skip
    table = results.comparison_table(ours)
    lines = table.splitlines()
    row = "| ours: matrix_ssl | 400 | 41.2 | 61.0 | 44.9 | 37.0 | 58.0 | - | this run |"
    assert lines[4] == row
    assert "| BYOL | 200 | 40.9 | 61.0 | 44.6 | 36.8 | 58.1 | 39.5 | mmselfsup model zoo |" in lines
    assert "InsLoc" not in table  # other protocols' rows stay out
    assert "not comparable" not in table and "--max-iters" not in table
    short = results.comparison_table({**ours, "architecture": "resnet18"}, full_schedule=False)
    assert "a resnet18, so the numbers are not comparable" in short and "--max-iters" in short
    c4 = results.comparison_table({**ours, "protocol": "matrix_ssl"})
    assert "| MoCo v2 | 800 | 39.3 | - | - | 34.3 | - | - | InsLoc README (third-party run) |" in c4
    assert "not in this file yet" in c4
    assert results.comparison_table({**ours, "protocol": None}) == ""


# --- a short run of the C4 protocol config ---------------------------------------------------


@pytest.mark.slow
def test_short_c4_run_recomputes_bn_and_prints_the_references(tmp_path, capsys, monkeypatch):
    """ResNet-18 C4 1x for 2 iterations on tiny generated COCO, images kept small by options."""
    import torch
    import torchvision
    from torch import nn

    from lightly_matrix.data.coco_shapes import make_coco_shapes
    from lightly_matrix.mmdet.precise_bn import PreciseBNHook

    calls = []
    original = PreciseBNHook.recompute
    monkeypatch.setattr(
        PreciseBNHook, "recompute", lambda self, runner: calls.append(self.num_iters)
        or original(self, runner)
    )  # fmt: skip
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    root = make_coco_shapes(tmp_path / "shapes", num_train=4, num_val=2, image_size=64)
    for split in ("train", "val"):  # COCO's class names, which the COCO configs select
        path = root / "annotations" / f"instances_{split}2017.json"
        data = json.loads(path.read_text())
        for category, name in zip(data["categories"], ("person", "bicycle", "car"), strict=True):
            category["name"] = name
        path.write_text(json.dumps(data))
    seq = nn.Sequential(*list(torchvision.models.resnet18().children())[:-1])
    state = {f"backbone.{k}": v for k, v in seq.state_dict().items()}
    ckpt = tmp_path / "last.ckpt"
    hparams = {"method": "matrix_ssl", "backbone": "resnet18"}
    torch.save({"state_dict": state, "hyper_parameters": hparams, "epoch": 3}, ckpt)
    work_dir = tmp_path / "work"
    args = parse(
        str(ckpt), "--protocol", "matrix_ssl", "--coco-root", str(root),
        "--work-dir", str(work_dir), "--max-iters", "2", "--batch-size", "2",
        "--cfg-options", "default_hooks.visualization.draw=False",
        "train_dataloader.dataset.pipeline.2.scales=[(96,64),(112,80)]",
        "test_dataloader.dataset.pipeline.1.scale=(96,64)",
        "train_dataloader.num_workers=0", "train_dataloader.persistent_workers=False",
        "test_dataloader.num_workers=0", "test_dataloader.persistent_workers=False",
        # 3 classes; few RoIs through res5 (the C4 head's cost on a CPU).
        "model.roi_head.bbox_head.num_classes=3", "model.roi_head.mask_head.num_classes=3",
        "train_dataloader.dataset.metainfo.classes=[person,bicycle,car]",
        "test_dataloader.dataset.metainfo.classes=[person,bicycle,car]",
        "model.train_cfg.rpn_proposal.max_per_img=64", "model.train_cfg.rcnn.sampler.num=16",
        "model.test_cfg.rpn.max_per_img=16",
    )  # fmt: skip
    assert transfer.run(args) == 0
    results = json.loads((work_dir / "results.json").read_text())
    assert results["config"] == "mask-rcnn_r18-c4_ms-1x_coco"
    assert results["protocol"] == "matrix_ssl"
    assert results["schedule"] == {"type": "IterBasedTrainLoop", "max_iters": 2}
    assert calls == [2]  # precise BN once, capped at the 2 iterations trained
    out = capsys.readouterr().out
    assert "Published numbers for protocol matrix_ssl" in out
    assert "| ours: matrix_ssl | 4 |" in out and "not comparable" in out
    # The saved detector holds recomputed statistics, not the exported ones.
    saved = torch.load(work_dir / "iter_2.pth", map_location="cpu", weights_only=False)
    running = saved["state_dict"]["backbone.layer1.0.bn1.running_mean"]
    assert not torch.allclose(running, seq[4][0].bn1.running_mean)
