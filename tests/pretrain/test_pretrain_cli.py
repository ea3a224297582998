"""``lightly-matrix pretrain``: user errors, end-to-end runs, exact resume, and DDP on CPU."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from messages import cli_error
from PIL import Image

from lightly_matrix.cli import main
from lightly_matrix.data.folder import ImageFolderDataset, scan_folder_stats

TINY = ["--image-size", "16", "--batch-size", "16", "--epochs", "1", "--limit-train-batches", "2"]
TINY_HEADS = ["--hp", "hidden_dim=64", "--hp", "output_dim=64"]


def pretrain(*args: str) -> int:
    return main(["pretrain", *args])


def write_images(folder: Path, count: int, size: int = 20, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:03d}.png")


# ------------------------------------------------------------------------------------ user errors
def test_unknown_method(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = pretrain("--method", "simclr", "--out", str(tmp_path / "run"))
    cli_error(capsys, status, "unknown method 'simclr'", "matrix_ssl")


def test_missing_method(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli_error(capsys, pretrain("--out", str(tmp_path / "run")), "--method")


def test_missing_data_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = pretrain(
        "--method", "matrix_ssl", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run")
    )
    cli_error(capsys, status, str(tmp_path / "nope"))


def test_empty_data_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    status = pretrain(
        "--method", "matrix_ssl", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "run")
    )
    cli_error(capsys, status, str(tmp_path / "empty"))


def test_unreadable_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_images(tmp_path / "data" / "a", 3)
    (tmp_path / "data" / "a" / "broken.jpg").write_bytes(b"this is not a jpeg")
    status = pretrain(
        "--method", "matrix_ssl", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run")
    )
    cli_error(capsys, status, "broken.jpg")


def test_refuses_non_empty_out_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.ckpt").write_bytes(b"a previous run")
    status = pretrain("--method", "matrix_ssl", "--out", str(out))
    cli_error(capsys, status, "not empty", "--resume")
    assert (out / "last.ckpt").read_bytes() == b"a previous run"


def test_resume_without_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = pretrain(
        "--method", "matrix_ssl", "--out", str(tmp_path), "--resume", str(tmp_path / "x.ckpt")
    )
    cli_error(capsys, status, "no checkpoint")


@pytest.mark.parametrize(
    ("args", "tokens"),
    [
        (["--method", "matrix_ssl", "--preset", "nope"], ("'nope'", "digits")),  # and the choices
        (["--method", "mmae", "--preset", "cifar10_r18"], ("cifar10_r18", "mmae")),
        (["--method", "mae", "--backbone", "resnet18"], ("mae", "ViT", "--backbone")),
        (["--method", "matrix_ssl", "--backbone", "resnet7"], ("resnet7", "resnet18")),
        (["--method", "corinfomax", "--hp", "alfa=3"], ("alfa", "alpha")),  # a close match
        (["--method", "corinfomax", "--hp", "alpha=lots"], ("alpha", "lots")),
        (["--method", "mec", "--hp", "eps_squared=0"], ("eps_squared", "0")),
        (["--method", "mec", "--hp", "eps_warmup_factor=0.5"], ("eps_warmup_factor", "0.5")),
        (
            ["--method", "matrix_ssl", "--data", "imgs", "--eval-split", "val"],
            ("--eval-split val", "--data digits"),
        ),
    ],
)
def test_bad_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], tokens: tuple[str, ...]
) -> None:
    cli_error(capsys, pretrain(*args, "--out", str(tmp_path / "run")), *tokens)
    assert not (tmp_path / "run").exists()


def test_list_presets(capsys: pytest.CaptureFixture[str]) -> None:
    assert pretrain("--list-presets") == 0
    out = capsys.readouterr().out
    for name in (
        "digits",
        "cifar10_r18",
        "cifar100_r18",
        "tinyimagenet_r50",
        "imagenet100_r18",
        "imagenet_r50",
        "imagenet_vitl16",
    ):
        assert name in out


def test_eval_split_val_never_reads_the_test_split() -> None:
    """Tuning data: pretrain and fit the probes on train_minus_val, score them on val."""
    import argparse

    from lightly_matrix.data.digits import load_digits_images
    from lightly_matrix.methods import METHOD_CLASSES
    from lightly_matrix.pretrain.config import resolve_run
    from lightly_matrix.pretrain.data import build_data

    args = argparse.Namespace(
        method="matrix_ssl", data="digits", eval_split="val", num_workers=None, preset=None,
        hp=[], image_size=8, batch_size=None, epochs=None, precision=None, transform=None,
        crop_min_scale=None, backbone=None, optimizer=None, lr=None, weight_decay=None,
        warmup_epochs=None, devices=1, num_nodes=1, seed=0, eval_data=None, no_eval=False,
        skip_bad_images=False, limit_train_batches=None, eval_max_images=10000,
    )  # fmt: skip
    config = resolve_run(args, METHOD_CLASSES["matrix_ssl"])
    train, held_out, probe, num_classes, _ = build_data(args, config)
    assert (len(train), len(probe.train), len(held_out)) == (1005, 1005, 252)
    assert held_out is probe.test and num_classes == 10
    val_images, val_labels = load_digits_images("val", image_size=8)
    assert probe.test.labels.tolist() == val_labels.tolist()
    assert all(
        a.tobytes() == b.tobytes() for a, b in zip(probe.test.images, val_images, strict=True)
    )
    args.eval_split = None  # default: the whole training split, scored on test
    config = resolve_run(args, METHOD_CLASSES["matrix_ssl"])
    train, held_out, _, _, _ = build_data(args, config)
    assert (len(train), len(held_out)) == (1257, 540)


# -------------------------------------------------------------------------------------- folders
def test_folder_layouts(tmp_path: Path) -> None:
    write_images(tmp_path / "labelled" / "cat", 2)
    write_images(tmp_path / "labelled" / "dog" / "nested", 3)
    scan = scan_folder_stats(tmp_path / "labelled")
    assert scan.classes == ["cat", "dog"] and scan.labels == [0, 0, 1, 1, 1]
    assert len(scan.paths) == 5

    write_images(tmp_path / "flat", 4)
    dataset = ImageFolderDataset(tmp_path / "flat")
    assert dataset.num_classes == 0 and len(dataset) == 4
    image, label = dataset[0]
    assert image.mode == "RGB" and label == -1


# ------------------------------------------------------------------------------- end to end runs
def test_digits_run_writes_checkpoint_logs_and_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert (
        pretrain(
            "--method",
            "matrix_ssl",
            *TINY,
            *TINY_HEADS,
            "--hp",
            "pred_hidden_dim=16",
            "--out",
            str(out),
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "linear top-1" in printed and "random init" in printed

    metrics = json.loads((out / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics["history"]] == [0, 1]
    for key in ("knn_top1", "linear_top1", "few_label_top1"):
        assert 0.0 <= metrics["final"][key] <= 100.0
    assert metrics["run"]["train_wall_s"] > 0

    ckpt = torch.load(out / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["hyper_parameters"]["method"] == "matrix_ssl"
    assert ckpt["hyper_parameters"]["backbone"] == "resnet18"
    assert (
        "backbone.0.weight" in ckpt["state_dict"]
        and "teacher_backbone.0.weight" in ckpt["state_dict"]
    )
    assert ckpt["optimizer_states"] and ckpt["lr_schedulers"]

    header = (out / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    for column in (
        "train_loss_step",
        "diag/backbone_effective_rank",
        "diag/projection_matrix_entropy",
        "val_online_cls_top1",
    ):
        assert column in header
    assert any((out / "tensorboard" / "version_0").glob("events.out.tfevents.*"))

    # The run ends with its report, every figure drawn from what it saved (lightly_matrix.report).
    assert printed.rstrip().endswith(f"report: {out / 'report.html'}")
    spectra = json.loads((out / "spectrum.json").read_text())["evaluations"]
    assert [e["epoch"] for e in spectra] == [0, 1] and len(spectra[0]["eigenvalues"]) == 512
    report = (out / "report.html").read_text()
    assert 'class="na"' not in report  # nothing missing: probes, spectrum and all the curves
    assert report.count("data:image/png;base64") == 3


def test_image_folder_run(tmp_path: Path) -> None:
    for name, seed in (("a", 0), ("b", 1)):
        write_images(tmp_path / "data" / name, 12, seed=seed)
    out = tmp_path / "run"
    args = [
        "--image-size",
        "16",
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--limit-train-batches",
        "1",
    ]
    assert (
        pretrain(
            "--method",
            "barlowtwins",
            "--data",
            str(tmp_path / "data"),
            *args,
            *TINY_HEADS,
            "--no-report",
            "--out",
            str(out),
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["final"]["epoch"] == 1 and metrics["run"]["data"] == str(tmp_path / "data")
    assert (out / "last.ckpt").is_file() and not (out / "report.html").exists()


def _losses(csv_file: Path) -> list[float]:
    with csv_file.open() as f:
        return [
            float(row["train_loss_step"]) for row in csv.DictReader(f) if row.get("train_loss_step")
        ]


RESUME_CASES = [
    pytest.param("matrix_ssl", [*TINY_HEADS, "--hp", "pred_hidden_dim=16"], id="matrix_ssl"),
    pytest.param("corinfomax", ["--hp", "hidden_dim=64", "--hp", "output_dim=8"], id="corinfomax"),
    pytest.param("byol", [*TINY_HEADS, "--hp", "pred_hidden_dim=16"], id="byol"),
    # The digits preset's 2 warm-up epochs: eps^2 is still warming up where the run resumes.
    pytest.param("mec", [*TINY_HEADS, "--hp", "pred_hidden_dim=16"], id="mec"),
    pytest.param(
        "mmae",
        ["--hp", "decoder_dim=32", "--hp", "decoder_depth=1", "--hp", "decoder_num_heads=2"],
        id="mmae",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize(("method", "extra"), RESUME_CASES)
def test_resume_reproduces_next_steps(tmp_path: Path, method: str, extra: list[str]) -> None:
    common = [
        "--method",
        method,
        "--image-size",
        "16",
        "--batch-size",
        "16",
        "--limit-train-batches",
        "3",
        "--no-eval",
        "--log-every-n-steps",
        "1",
        *extra,
    ]
    if method == "mmae":
        common += ["--backbone", "vit_tiny_patch16_224"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert pretrain(*common, "--epochs", "2", "--keep-every", "1", "--out", str(straight)) == 0
    # As if the run had stopped after its first epoch: continue from that epoch's checkpoint.
    snapshot = straight / "checkpoints" / "epoch0000.ckpt"
    assert pretrain(*common, "--epochs", "2", "--out", str(resumed), "--resume", str(snapshot)) == 0

    reference = _losses(straight / "csv" / "version_0" / "metrics.csv")
    continued = _losses(resumed / "csv" / "version_0" / "metrics.csv")
    assert len(reference) == 6 and len(continued) == 3
    np.testing.assert_allclose(continued, reference[3:], rtol=1e-5)
    # The training time continues too (metrics.json's train_wall_s): the resumed run's clock
    # starts at the snapshot's, not at zero.
    before, after = _train_time(snapshot), _train_time(resumed / "last.ckpt")
    assert 0 < before < after


def _train_time(checkpoint: Path) -> float:
    """The training seconds in a checkpoint's Lightning ``Timer`` state."""
    states = torch.load(checkpoint, map_location="cpu", weights_only=False)["callbacks"]
    (timer,) = (state for key, state in states.items() if key.startswith("Timer"))
    return float(timer["time_elapsed"]["train"])


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_two_cpu_processes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "lightly_matrix",
        "pretrain",
        "--method",
        "matrix_ssl",
        "--devices",
        "2",
        "--accelerator",
        "cpu",
        "--image-size",
        "16",
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--limit-train-batches",
        "2",
        "--no-eval",
        # a mid-epoch save in DDP: a collective decision and save on every rank
        "--checkpoint-every-steps",
        "1",
        *TINY_HEADS,
        "--hp",
        "pred_hidden_dim=16",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    ckpt = torch.load(out / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["hyper_parameters"]["gather_distributed"] is True
    assert ckpt["global_step"] == 2
