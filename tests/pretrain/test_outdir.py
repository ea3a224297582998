"""``--out`` and ``--resume`` of ``lightly-matrix pretrain`` on folders that are not a clean run:
a failed start, checkpoints of two runs, unwritable places, files that are not checkpoints."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from messages import assert_names, cli_error

from lightly_matrix.cli import UserError, main
from lightly_matrix.data.folder import scan_folder_stats
from lightly_matrix.pretrain.outdir import is_failed_start
from lightly_matrix.user_files import check_checkpoint_file

TINY = [
    "--image-size", "16", "--batch-size", "16", "--no-eval", "--limit-train-batches", "2",
    "--hp", "hidden_dim=32", "--hp", "output_dim=32",
]  # fmt: skip
MATRIX = ["--method", "matrix_ssl", *TINY, "--hp", "pred_hidden_dim=16"]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A matrix_ssl run (1 epoch) and a corinfomax run (2 epochs, snapshots kept)."""
    root = tmp_path_factory.mktemp("runs")
    matrix, corinfomax = root / "matrix", root / "corinfomax"
    assert main(["pretrain", *MATRIX, "--epochs", "1", "--out", str(matrix)]) == 0
    corinfo = ["--method", "corinfomax", *TINY, "--epochs", "2", "--keep-every", "1"]
    assert main(["pretrain", *corinfo, "--out", str(corinfomax)]) == 0
    return matrix, corinfomax


# ---------------------------------------------------------------- checkpoints of another run
def test_a_foreign_checkpoint_in_the_run_folder_is_refused_not_resumed(
    two_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    matrix, corinfomax = two_runs
    run = tmp_path / "r"
    shutil.copytree(matrix, run)
    (run / "checkpoints").mkdir()
    shutil.copy(corinfomax / "checkpoints" / "epoch0001.ckpt", run / "checkpoints")
    before = tree(run)
    status = main(["pretrain", "--resume", str(run), "--epochs", "3"])
    last = cli_error(capsys, status)
    assert "matrix_ssl on digits" in last and "corinfomax on digits" in last
    assert str(run / "last.ckpt") in last and "epoch0001.ckpt" in last
    assert tree(run) == before  # nothing trained, nothing overwritten


def test_snapshots_of_the_same_run_still_resume(
    two_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "r"
    shutil.copytree(two_runs[1], run)
    assert main(["pretrain", "--resume", str(run), "--epochs", "3"]) == 0
    assert "resuming from" in capsys.readouterr().out
    ckpt = torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 6


# ---------------------------------------------------------------- a run that fails at once
def test_patch_size_that_does_not_divide_the_image_is_refused_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["--method", "mmae", "--backbone", "vit_tiny_patch16_224", "--image-size", "40",
            "--hp", "patch_size=7", "--batch-size", "16", "--out", str(out)]  # fmt: skip
    status = main(["pretrain", *argv])
    cli_error(capsys, status, "patch", "7", "35", "42")  # the sizes that fit
    assert not out.exists() or not any(out.iterdir())


def test_a_folder_left_by_a_failed_start_is_reused_and_resume_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    # What a run that died in its first step leaves: logs and the random-init evaluation.
    (out / "csv" / "version_0").mkdir(parents=True)
    (out / "csv" / "version_0" / "hparams.yaml").write_text("lr: 0.1\n")
    (out / "tensorboard" / "version_0").mkdir(parents=True)
    random_init = {"history": [{"epoch": 0, "knn_top1": 0.1}]}
    (out / "metrics.json").write_text(json.dumps(random_init))
    assert is_failed_start(out)

    status = main(["pretrain", "--resume", str(out)])
    cli_error(capsys, status, str(out), "--resume")

    assert main(["pretrain", *MATRIX, "--epochs", "1", "--out", str(out)]) == 0
    assert "holds only the logs of a run that stopped" in capsys.readouterr().out
    assert (out / "last.ckpt").is_file()
    # The old logs are kept, the new ones go beside them.
    assert (out / "csv" / "version_0" / "hparams.yaml").read_text() == "lr: 0.1\n"
    assert (out / "csv" / "version_1").is_dir()
    assert json.loads((out / "metrics.failed_start.json").read_text()) == random_init


@pytest.mark.parametrize(
    "keep",
    [
        "results",  # an evaluation after training started
        "user_file",  # anything that is not ours
        "checkpoint",  # a checkpoint, even a snapshot only
    ],
)
def test_folders_that_hold_a_result_are_still_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keep: str
) -> None:
    out = tmp_path / "run"
    (out / "csv").mkdir(parents=True)
    if keep == "results":
        (out / "metrics.json").write_text(json.dumps({"history": [{"epoch": 0}, {"epoch": 5}]}))
    elif keep == "user_file":
        (out / "notes.txt").write_text("mine")
    else:
        (out / "checkpoints").mkdir()
        torch.save({"x": torch.zeros(1)}, out / "checkpoints" / "epoch0004.ckpt")
    before = tree(out)
    last = cli_error(capsys, main(["pretrain", *MATRIX, "--out", str(out)]), "not empty")
    assert tree(out) == before
    # --resume is advised only where it finds a checkpoint to continue from.
    assert ("pass --resume" in last) == (keep == "checkpoint"), last


def test_only_a_run_folder_the_user_did_not_name_is_called_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """R05 (issue 32): an existing --out is named as the user gave it, never "the default"."""
    monkeypatch.chdir(tmp_path)
    for out in (tmp_path / "given", tmp_path / "runs" / "matrix_ssl"):
        out.mkdir(parents=True)
        (out / "notes.txt").write_text("mine")
    given = ["pretrain", *MATRIX, "--dry-run", "--out", str(tmp_path / "given")]
    last = cli_error(capsys, main(given), f"--out {tmp_path / 'given'} is not empty")
    assert "default" not in last
    last = cli_error(capsys, main(["pretrain", *MATRIX, "--dry-run"]), "not empty")
    assert "the default run folder runs/matrix_ssl is not empty" in last


def test_a_folder_that_is_not_a_run_is_not_sent_to_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    status = main(["pretrain", *MATRIX, "--out", str(out)])
    last = cli_error(capsys, status, str(out), "files that are not a run (notes.txt)", "new --out")
    assert "--resume" not in last
    assert tree(out) == {"notes.txt": b"mine"}


# ---------------------------------------------------------------- where --out cannot be written
def test_out_under_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile.txt").write_text("x")
    status = main(["pretrain", *MATRIX, "--out", str(tmp_path / "afile.txt" / "sub")])
    cli_error(capsys, status, str(tmp_path / "afile.txt"))
    assert (tmp_path / "afile.txt").read_text() == "x"


def test_out_in_a_read_only_place_is_one_line(
    unwritable_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["pretrain", *MATRIX, "--out", str(unwritable_dir / "run")])
    cli_error(capsys, status, "--out", str(unwritable_dir / "run"))


# ---------------------------------------------------------------- files that are not checkpoints
def test_random_bytes_are_not_called_pickled_objects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "last.ckpt"
    path.write_bytes(os.urandom(4096).replace(b"\x80", b"\x00").replace(b"PK", b"pk"))
    last = cli_error(capsys, main(["pretrain", "--resume", str(path)]), "not a checkpoint")
    assert "pickled" not in last and "trust" not in last


@pytest.mark.parametrize("name", ["resnet18.safetensors", "renamed.pth"])
def test_a_safetensors_file_says_how_to_convert_it(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(len(b'{"a":1}').to_bytes(8, "little") + b'{"a":1}')  # safetensors' header
    with pytest.raises(UserError) as info:
        check_checkpoint_file(path)
    assert_names(info, "not a checkpoint", "safetensors.torch.load_file(FILE)", "converts it")


def test_a_quoted_tilde_in_data_is_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for argv in (["--data", "~/imgs"], ["--out", "~/runs/x"], ["--resume", "~/runs/x"]):
        with pytest.raises(SystemExit):
            main(["pretrain", *MATRIX, *argv])
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert f"{argv[0]}: '{argv[1]}': the shell expands ~ only unquoted; use $HOME" in err
    assert list(tmp_path.iterdir()) == []  # no folder named '~'
    with pytest.raises(SystemExit):
        main(["check-coco", "~/coco"])
    assert "'~/coco': the shell expands ~ only unquoted" in capsys.readouterr().err


def test_a_preset_value_that_does_not_fit_a_flag_names_the_preset(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--preset", "cifar10_r18", "--method", "corinfomax", "--dry-run"]
    status = main(["pretrain", *argv, "--backbone", "vit_tiny_patch16_224"])
    last = cli_error(capsys, status, "stem='cifar' applies to ResNets only")
    assert "stem is --preset cifar10_r18's: drop --preset or pick another" in last
    # A value the user typed (or none from a preset): the message alone (p43: an IndexError).
    status = main(["pretrain", "--method", "corinfomax", "--hp", "optimizer=adam", "--dry-run"])
    last = cli_error(capsys, status, "optimizer must be one of sgd, lars, adamw, got 'adam'")
    assert "--preset" not in last
    status = main(["pretrain", "--preset", "digits", "--method", "mmae", "--image-size", "30"])
    cli_error(capsys, status, "image size 30 is not a multiple of the ViT patch size 4")


def test_missing_eval_data_folder_names_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "train" / "a").mkdir(parents=True)
    argv = [*MATRIX, "--data", str(tmp_path / "train"), "--eval-data", str(tmp_path / "nope")]
    last = cli_error(capsys, main(["pretrain", *argv, "--out", str(tmp_path / "o")]))
    assert "--eval-data" in last and str(tmp_path / "nope") in last and "digits" not in last


@pytest.mark.slow
def test_a_run_that_diverged_before_its_first_checkpoint_starts_afresh(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It leaves the random-init evaluation (metrics.json, spectrum.json), the probe split and
    logs: the same command starts afresh, --resume says there is nothing to resume."""
    from PIL import Image

    data, out = tmp_path / "data", tmp_path / "run"
    for c in range(2):
        (data / f"c{c}").mkdir(parents=True)
        for i in range(16):
            Image.new("RGB", (20, 20), (15 * i, 100 * c, 0)).save(data / f"c{c}" / f"{i}.png")
    evaluated = [a for a in MATRIX if a != "--no-eval"]
    command = ["pretrain", *evaluated, "--data", str(data), "--lr", "1e30", "--epochs", "1"]
    command += ["--batch-size", "4", "--limit-train-batches", "8", "--out", str(out)]
    cli_error(capsys, main(command), "diverged")
    assert (out / "spectrum.json").is_file() and not list(out.rglob("*.ckpt"))
    assert is_failed_start(out)
    cli_error(capsys, main(["pretrain", "--resume", str(out)]), "before its first checkpoint")
    last = cli_error(capsys, main(command), "diverged")  # started again, not "not empty"
    assert "not empty" not in last
    assert (out / "spectrum.failed_start.json").is_file()


def test_out_that_is_not_utf8_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / os.fsdecode(b"run\xff")
    cli_error(capsys, main(["pretrain", *MATRIX, "--out", str(out)]), "UTF-8")
    assert not out.exists()


# -------------------------------------------------------------- inputs that are not files
def test_a_named_pipe_is_called_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "pipe.ckpt"
    os.mkfifo(fifo)
    cli_error(capsys, main(["pretrain", "--resume", str(fifo)]), str(fifo), "named pipe")
    for check in (check_checkpoint_file, scan_folder_stats):
        with pytest.raises(UserError) as info:
            check(fifo)
        assert_names(info, str(fifo), "is a named pipe (FIFO), not a")


def test_a_moved_data_folder_is_resumed_as_the_advice_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    old, new, run = tmp_path / "old" / "imgs", tmp_path / "new", tmp_path / "run"
    for c in range(2):
        (old / f"c{c}").mkdir(parents=True)
        for i in range(8):
            Image.new("RGB", (20, 20), (c * 99, i * 20, 0)).save(old / f"c{c}" / f"{i}.png")
    assert main(["pretrain", *MATRIX, "--epochs", "1", "--data", str(old), "--out", str(run)]) == 0
    old.rename(new)
    capsys.readouterr()
    for extra in ([], ["--data", str(new)]):  # the new place passed or not: the same advice
        argv = ["pretrain", "--resume", str(run), "--epochs", "2", *extra]
        cli_error(capsys, main(argv), str(old), f"ln -s NEWPLACE {old}")
    old.symlink_to(new)  # what the advice says
    assert main(["pretrain", "--resume", str(run), "--epochs", "2"]) == 0
