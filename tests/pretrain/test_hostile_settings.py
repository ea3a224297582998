"""Settings a hostile but realistic user tries: each is refused in one line or works as meant."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from lightly_matrix.cli import UserError, main
from lightly_matrix.methods import METHOD_CLASSES, CorInfoMax
from lightly_matrix.pretrain.args import add_arguments
from lightly_matrix.pretrain.config import resolve_resumed, resolve_run


def parse(*argv: str, data: str | None = "digits") -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(list(argv))
    args.data = args.data or data
    args.seed = 0 if args.seed is None else args.seed
    return args


def resolve(*argv: str) -> object:
    args = parse(*argv)
    return resolve_run(args, METHOD_CLASSES[args.method])


@pytest.mark.parametrize(
    ("method", "hp", "message"),
    [
        ("corinfomax", "proj_batch_norm=none", "not a valid bool"),
        ("corinfomax", "lr=none", "not a valid float"),
        ("corinfomax", "weight_decay=null", "not a valid float"),
        ("matrix_ssl", "warmup_epochs=none", "not a valid float"),
        ("matrix_ssl", "hidden_dim=none", "not a valid int"),
        ("corinfomax", "patch_size=16", "patch_size applies to ViTs only"),
        ("barlowtwins", "lr=nan", "finite"),
    ],
)
def test_hp_values_a_method_cannot_take_are_one_line(method: str, hp: str, message: str) -> None:
    with pytest.raises(UserError, match=message) as err:
        resolve("--method", method, "--hp", hp)
    assert "\n" not in str(err.value)


def test_none_is_accepted_where_the_argument_takes_it() -> None:
    config = resolve("--method", "matrix_ssl", "--hp", "taylor_order=none")
    assert config.hparams["taylor_order"] is None  # type: ignore[attr-defined]
    config = resolve("--method", "mmae", "--hp", "reg_weight=none", "--hp", "patch_size=4")
    assert config.hparams["patch_size"] == 4  # type: ignore[attr-defined]
    # A str argument takes "none" as itself: lr_scaling=none is an absolute lr.
    config = resolve("--method", "barlowtwins", "--hp", "lr_scaling=none")
    assert config.hparams["lr_scaling"] == "none"  # type: ignore[attr-defined]


def test_patch_size_on_a_resnet_is_refused_by_the_module_too() -> None:
    with pytest.raises(ValueError, match="ViTs only"):
        CorInfoMax(backbone="resnet18", patch_size=16)


def test_a_limit_below_one_batch_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["pretrain", "--method", "corinfomax", "--limit-train-batches", "0.0001", "--dry-run"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--limit-train-batches 0.0001" in err and "\n" not in err


def test_the_data_folder_is_stored_resolved_and_matched_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "imgs").mkdir()
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path)
    args = parse("--method", "corinfomax", "--data", "imgs")
    saved = resolve_run(args, CorInfoMax)
    assert saved.data == str(tmp_path / "imgs")
    spellings = ("./imgs", "imgs/", str(tmp_path / "imgs"), os.path.join("other", "..", "imgs"))
    for spelling in spellings:
        resumed = parse("--data", spelling, data=None)
        resumed.method, resumed.seed = None, None
        config, _ = resolve_resumed(resumed, saved, CorInfoMax)
        assert config.data == saved.data
    other = parse("--data", "other", data=None)
    other.method, other.seed = None, None
    with pytest.raises(UserError, match="--data other"):
        resolve_resumed(other, saved, CorInfoMax)
    # From another working directory the run reads the same folder.
    monkeypatch.chdir(tmp_path / "other")
    resumed = parse(data=None)
    resumed.method, resumed.seed = None, None
    assert resolve_resumed(resumed, saved, CorInfoMax)[0].data == str(tmp_path / "imgs")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"state_dict": {"backbone.conv1.weight": torch.zeros(1)}, "meta": {}}, "not a Lightning"),
        (b"", "an empty file, not a checkpoint .*; pass the run's last.ckpt"),  # was EOFError('')
        (None, "is a folder, not a checkpoint file"),  # was IsADirectoryError
        ({"meta": Path("x")}, "not a Lightning .* or a detector's"),  # was torch's UnpicklingError
        ("barlowtwins", "CorInfoMax got the hyper-parameters of 'barlowtwins'; use BarlowTwins"),
    ],
)
def test_loading_what_is_not_this_methods_checkpoint_is_one_line(
    content: object, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "run.ckpt"
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        hparams = {"method": content, "backbone": "resnet18", "num_classes": 0}
        keys = {"hyper_parameters": hparams, "state_dict": {}, "pytorch-lightning_version": "2"}
        torch.save(keys if isinstance(content, str) else content, path)
    with pytest.raises(ValueError, match=message) as err:
        CorInfoMax.load_from_checkpoint(path)
    assert "\n" not in str(err.value)


def test_an_lr_beyond_float32_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 32: ``--lr 1e300`` ended in SGD's overflow traceback."""
    tiny = ["pretrain", "--method", "matrix_ssl", "--image-size", "16", "--no-eval", "--no-report"]
    tiny += ["--hp", "hidden_dim=16", "--hp", "output_dim=16", "--hp", "pred_hidden_dim=8"]
    assert main([*tiny, "--lr", "1e300", "--out", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err.strip()
    assert "lr must be a number in [0, 3.4e+38], got 1e+300" in err and "\n" not in err
    assert not (tmp_path / "refused").exists()
    # Within float32 per 256 images, beyond it once scaled to a batch of 512: one line too.
    scaled = ["--lr", "3e38", "--batch-size", "512", "--warmup-epochs", "0"]
    out = ["--limit-train-batches", "1", "--epochs", "1", "--out", str(tmp_path / "scaled")]
    assert main([*tiny, *scaled, *out]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "without overflow" in err and "6e+38 after scaling" in err and "--lr" in err


def test_an_lr_that_would_overflow_is_refused_from_its_value_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 32: the overflow is found from the lr and the optimizer, not from torch's error text,
    so a --dry-run refuses it too and no run folder is made."""
    dry = ["pretrain", "--method", "matrix_ssl", "--dry-run", "--out", str(tmp_path / "r")]
    assert main([*dry, "--lr", "3e38", "--batch-size", "512"]) == 2
    err = capsys.readouterr().err.strip()
    assert "the lr is 6e+38 after scaling to the global batch 512" in err and "\n" not in err
    assert "without overflow" in err and "lower --lr" in err
    # AdamW's first step divides the lr by 1 - beta1 = 0.1: ten times less fits into float32.
    absolute = ["--optimizer", "adamw", "--hp", "lr_scaling=none"]
    assert main([*dry, *absolute, "--lr", "1e38"]) == 2
    err = capsys.readouterr().err.strip()
    assert "the lr is 1e+38, more than adamw can apply" in err and "lower --lr" in err
    assert main([*dry, *absolute, "--lr", "3e37"]) == 0
    assert not (tmp_path / "r").exists()


def test_too_few_probe_images_are_refused_with_the_minimum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 32: ``--eval-max-images 2`` could leave one class to fit: a traceback of sklearn."""
    data = tmp_path / "folder"
    for label in ("a", "b"):
        (data / label).mkdir(parents=True)
    argv = ["pretrain", "--method", "corinfomax", "--data", str(data), "--eval-max-images", "2"]
    assert main([*argv, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--eval-max-images must be >= 20, got 2" in err and "\n" not in err


def test_a_warm_up_longer_than_the_run_is_noted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A warm-up clamped to the run never decays the lr: said once, at the start."""
    tiny = ["pretrain", "--method", "matrix_ssl", "--image-size", "16", "--batch-size", "16"]
    tiny += ["--hp", "hidden_dim=16", "--hp", "output_dim=16", "--hp", "pred_hidden_dim=8"]
    tiny += ["--epochs", "1", "--warmup-epochs", "5", "--limit-train-batches", "1", "--no-eval"]
    assert main([*tiny, "--no-report", "--no-progress", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    note = "note: warm-up (5 epochs) covers the whole 1-epoch run: the lr only ramps up; lower"
    assert out.count(note) == 1, out


def test_probe_images_of_one_class_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """60 images of one class and 1 of another: the 20 drawn for the probes held one class, and
    sklearn's logistic regression ended the run in a traceback."""
    data = tmp_path / "folder"
    for label, count in (("a", 60), ("b", 1)):
        (data / label).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (8, 8), (i, 0, 0)).save(data / label / f"{i}.png")
    argv = ["pretrain", "--method", "corinfomax", "--data", str(data), "--eval-max-images", "20"]
    assert (
        main([*argv, "--image-size", "16", "--batch-size", "8", "--out", str(tmp_path / "r")]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "hold one of the 2 classes; raise --eval-max-images, add images to" in err, err
