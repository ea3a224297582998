"""A run's image folder: checked once per run folder and rank; small classes; later damage."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from messages import assert_names
from PIL import Image

from lightly_matrix.cli import UserError, main
from lightly_matrix.methods import METHOD_CLASSES
from lightly_matrix.pretrain.args import add_arguments
from lightly_matrix.pretrain.config import resolve_run
from lightly_matrix.pretrain.data import _probe_split, build_data
from lightly_matrix.pretrain.run import describe_run

TINY = ["--image-size", "16", "--batch-size", "8", "--epochs", "1", "--no-progress"]
TINY += ["--hp", "hidden_dim=32", "--hp", "output_dim=32", "--hp", "pred_hidden_dim=16"]


def _folder(root: Path, classes: int, per_class: int) -> Path:
    for c in range(classes):
        (root / f"c{c:03d}").mkdir(parents=True)
        for i in range(per_class):
            pixels = np.random.default_rng(1000 * c + i).integers(0, 256, (20, 20, 3), np.uint8)
            Image.fromarray(pixels).save(root / f"c{c:03d}" / f"{i}.png")
    return root


def _damage_keeping_size_and_mtime(path: Path) -> None:
    """What the index cannot see: same size, same modification time, pixel data zeroed."""
    stat = path.stat()
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3 :] = bytes(len(raw) - len(raw) // 3)
    path.write_bytes(bytes(raw))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _args(data: Path, **overrides: object) -> argparse.Namespace:
    """The parsed command line of a tiny matrix_ssl run on ``data``."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = ["--method", "matrix_ssl", "--data", str(data), "--seed", "0", "--num-workers", "0"]
    args = parser.parse_args([*argv, "--image-size", "16", "--batch-size", "2"])
    return argparse.Namespace(**{**vars(args), **overrides})


def _build(args: argparse.Namespace, out: Path | None) -> tuple[Any, ...]:
    return build_data(args, resolve_run(args, METHOD_CLASSES["matrix_ssl"]), out)


# ------------------------------------------------------------------------------- probe split
def test_probe_split_holds_out_30_percent_of_every_class() -> None:
    sizes = [1, 2, 3, 10, 57]
    labels = np.repeat(np.arange(len(sizes)), sizes)
    fit, held_out = _probe_split(labels, limit=10_000, seed=3)
    assert sorted(fit + held_out) == list(range(len(labels))) and not set(fit) & set(held_out)
    out_per_class = np.bincount(labels[held_out], minlength=len(sizes))
    # round(0.3 n), but at least one on each side once a class has two images
    assert out_per_class.tolist() == [0, 1, 1, 3, 17]
    assert _probe_split(labels, 10_000, seed=3) == (fit, held_out)  # fixed by the seed
    assert _probe_split(labels, 10_000, seed=4) != (fit, held_out)


def test_probe_split_of_a_capped_sample() -> None:
    labels = np.repeat(np.arange(100), 50)
    fit, held_out = _probe_split(labels, limit=1000, seed=0)
    assert len(fit) + len(held_out) == 1000
    assert 0.25 < len(held_out) / 1000 < 0.35


def test_probe_split_with_only_single_images_says_what_to_do() -> None:
    with pytest.raises(UserError) as info:
        _probe_split(np.arange(5), limit=10_000, seed=0)
    assert_names(info, "--eval-data", "--no-eval")  # both ways out


def test_hundred_classes_of_two_images(tmp_path: Path) -> None:
    """The reported folder: 200 images, 100 classes (sklearn's split needed >= 100 test images)."""
    data = _folder(tmp_path / "data", classes=100, per_class=2)
    train, val, probe, num_classes, _ = _build(_args(data), tmp_path / "run")
    assert num_classes == 100 and len(train) == 200
    assert (len(probe.train), len(probe.test)) == (100, 100) and val is probe.test
    assert sorted(probe.test.labels.tolist()) == list(range(100))

    train, val, probe, num_classes, _ = _build(_args(data, no_eval=True), None)
    assert (val, probe, num_classes, len(train)) == (None, None, 100, 200)


@pytest.mark.parametrize("flag", ["--data", "--eval-data"])
def test_an_empty_folder_names_its_flag(tmp_path: Path, flag: str) -> None:
    data = _folder(tmp_path / "data", classes=2, per_class=2)
    (tmp_path / "empty").mkdir()
    args = _args(data)
    setattr(args, flag[2:].replace("-", "_"), str(tmp_path / "empty"))
    with pytest.raises(UserError) as info:
        _build(args, None)
    assert str(info.value).startswith(f"{flag}: no images found in {str(tmp_path / 'empty')!r}")


def test_no_eval_does_not_read_the_eval_folder(tmp_path: Path) -> None:
    data = _folder(tmp_path / "data", classes=2, per_class=2)
    args = _args(data, no_eval=True, eval_data=str(tmp_path / "missing"))
    assert _build(args, None)[1:3] == (None, None)
    with pytest.raises(UserError) as info:
        _build(_args(data, eval_data=str(tmp_path / "missing")), None)
    assert_names(info, str(tmp_path / "missing"))
    assert not (tmp_path / "missing").exists()


@pytest.mark.slow
def test_small_classes_run_with_no_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _folder(tmp_path / "data", classes=100, per_class=2)
    command = ["pretrain", "--method", "matrix_ssl", "--data", str(data), *TINY, "--no-eval"]
    status = main([*command, "--limit-train-batches", "1", "--out", str(tmp_path / "run")])
    assert status == 0, capsys.readouterr().err[-2000:]


# ---------------------------------------------------------- the check, once per run folder
@pytest.mark.slow
def test_failed_start_leaves_only_the_index_and_the_next_start_reuses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = _folder(tmp_path / "data", classes=2, per_class=8), tmp_path / "run"
    common = ["pretrain", "--method", "matrix_ssl", "--data", str(data), *TINY, "--no-eval"]
    common += ["--num-workers", "2", "--out", str(out)]
    assert main([*common, "--batch-size", "64"]) == 2  # more than the 16 images
    first = capsys.readouterr()
    assert "read 16 new or changed image headers" in first.out
    assert [p.name for p in out.iterdir()] == ["data_index"]

    # Damaged where the index cannot see it: the load names it, in one line, from a worker.
    victim = data / "c001" / "3.png"
    _damage_keeping_size_and_mtime(victim)
    assert main(common) == 2
    second = capsys.readouterr()
    assert "all headers known from the index" in second.out
    last = second.err.strip().splitlines()[-1]
    assert "Traceback" not in second.err and str(victim) in last and "--skip-bad-images" in last

    # With --skip-bad-images the run skips it (named in a warning) and finishes.
    skip = tmp_path / "skip"
    common[-1] = str(skip)
    with pytest.warns(UserWarning, match=r"3\.png"):
        assert main([*common, "--num-workers", "0", "--skip-bad-images"]) == 0
    assert (skip / "last.ckpt").is_file()


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_checks_the_folder_once(tmp_path: Path) -> None:
    """``--devices 2``: rank 0 reads the headers, rank 1 takes rank 0's index and reads none."""
    data, out = _folder(tmp_path / "data", classes=2, per_class=12), tmp_path / "run"
    command = [sys.executable, "-m", "lightly_matrix", "pretrain", "--method", "matrix_ssl"]
    command += ["--data", str(data), *TINY, "--no-eval", "--limit-train-batches", "1"]
    command += ["--devices", "2", "--accelerator", "cpu", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    assert log.count("read 24 new or changed image headers") == 1, log[-3000:]
    assert log.count("LOCAL_RANK=1 took the checked files from rank 0's index") == 1, log[-3000:]
    assert "all headers known" not in log
    assert len(list((out / "data_index").iterdir())) == 1


# ---------------------------------------------------------- the probes' split on --resume
def test_resume_scores_the_same_probe_images_after_images_were_added(tmp_path: Path) -> None:
    data, out = _folder(tmp_path / "data", classes=2, per_class=10), tmp_path / "run"
    first = _build(_args(data), out)[2]
    _folder(tmp_path / "more", classes=2, per_class=5)
    for new in (tmp_path / "more").rglob("*.png"):
        new.rename(data / new.parent.name / f"new_{new.name}")
    resumed = _build(_args(data, resume=str(out)), out)[2]
    assert (resumed.train.files, resumed.test.files) == (first.train.files, first.test.files)
    assert _build(_args(data), out)[2].test.files != first.test.files  # a new run redraws

    _build(_args(data), tmp_path / "again")
    gone = Path(
        _build(_args(data, resume=str(tmp_path / "again")), tmp_path / "again")[2].test.files[0]
    )
    gone.unlink()
    with pytest.raises(UserError) as info:
        _build(_args(data, resume=str(tmp_path / "again")), tmp_path / "again")
    assert_names(info, gone.name, "--out")


# ---------------------------------------------------------- folders that are hard to list
def test_a_symbolic_link_loop_is_one_line(tmp_path: Path) -> None:
    data = _folder(tmp_path / "data", classes=2, per_class=2)
    (data / "c001" / "loop").symlink_to("..")
    with pytest.raises(UserError) as info:
        _build(_args(data), None)
    assert_names(info, str(data / "c001" / "loop"), "link")


@pytest.mark.parametrize("where", ["c001", "."])
@pytest.mark.parametrize(
    "links",
    [{"self": "self"}, {"x": "y", "y": "x"}, {"a.png": "b.png", "b.png": "a.png"}, {"a.png": "-"}],
)
def test_links_that_cannot_be_followed_are_one_line(
    tmp_path: Path, where: str, links: dict
) -> None:
    data = _folder(tmp_path / "data", classes=2, per_class=2)
    for name, target in links.items():
        (data / where / name).symlink_to(target)
    with pytest.raises(UserError) as info:
        _build(_args(data), None)
    assert_names(info, "symbolic link", "remove or fix")


@pytest.mark.parametrize("where", ["c001", "."])
def test_a_fifo_named_like_an_image_is_one_line(tmp_path: Path, where: str) -> None:
    """It used to be skipped without a word (and opening it would wait for a writer)."""
    data = _folder(tmp_path / "data", classes=2, per_class=2)
    os.mkfifo(data / where / "pipe.png")
    with pytest.raises(UserError) as info:
        _build(_args(data), None)
    assert_names(info, "pipe.png", "a named pipe (FIFO)", "move it out")


@pytest.mark.parametrize("name", [os.fsdecode(b"imgs\xff"), "a" * 250])
def test_folder_names_that_are_not_utf8_or_very_long(tmp_path: Path, name: str) -> None:
    data, out = _folder(tmp_path / name, classes=2, per_class=4), tmp_path / "run"
    train, _, probe, num_classes, _ = _build(_args(data), out)
    assert (len(train), num_classes) == (8, 2) and len(probe.test) == 2
    assert len(list((out / "data_index").iterdir())) == 1
    assert _build(_args(data, resume=str(out)), out)[2].test.files == probe.test.files


# ------------------------------------------------------- which images the probes use (issue 32)
def test_unlabelled_data_with_a_labelled_eval_folder_probes_that_folder(tmp_path: Path) -> None:
    flat, labelled = tmp_path / "flat", _folder(tmp_path / "labelled", classes=2, per_class=5)
    flat.mkdir()
    for i in range(6):
        Image.new("RGB", (20, 20), (i * 30, 0, 0)).save(flat / f"{i}.png")
    run = tmp_path / "run"
    train, val, probe, num_classes, _ = _build(_args(flat, eval_data=str(labelled)), run)
    assert (len(train), num_classes, val) == (6, 0, None)  # no labels to train an online probe on
    assert probe is not None and probe.num_classes == 2
    fitted = {Path(f).parent.name for f in probe.train.files}
    assert fitted == {"c000", "c001"} and set(probe.test.files).isdisjoint(probe.train.files)
    resumed = _build(_args(flat, eval_data=str(labelled), resume=str(run)), run)[2]
    assert (resumed.train.files, resumed.test.files) == (probe.train.files, probe.test.files)


def test_a_single_class_folder_says_there_is_no_evaluation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _folder(tmp_path / "one", classes=1, per_class=4)
    assert _build(_args(data), None)[1:4] == (None, None, 0)
    note = capsys.readouterr().out.strip().splitlines()[-1]
    assert_names(note, "no evaluation", str(data), "--eval-data", "--no-eval")
    assert _build(_args(data, no_eval=True), None)[1:3] == (None, None)
    assert "no evaluation" not in capsys.readouterr().out


def test_images_beside_class_folders_say_why_the_folder_is_unlabelled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _folder(tmp_path / "mix", classes=2, per_class=3)
    Image.new("RGB", (20, 20)).save(data / "loose.png")
    assert _build(_args(data), None)[1:4] == (None, None, 0)
    note = capsys.readouterr().out.strip().splitlines()[-1]
    assert_names(note, "no evaluation", "images directly in a folder make all of it unlabelled")
    cls = METHOD_CLASSES["matrix_ssl"]
    dry = describe_run(resolve_run(_args(data), cls), cls, num_classes=0, num_images=7)
    assert dry["evaluation"]["enabled"] is False


def test_classes_under_10_images_say_the_few_label_probe_fits_on_fewer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    probe = _build(_args(_folder(tmp_path / "many", classes=6, per_class=3)), None)[2]
    assert probe.num_classes == 6
    note = capsys.readouterr().out.strip().splitlines()[-1]
    assert_names(note, "'10 labels/class' probe fits on fewer", "smallest class has 2")
    _build(_args(_folder(tmp_path / "enough", classes=2, per_class=16)), None)
    assert "fits on fewer" not in capsys.readouterr().out


def test_eval_data_probe_images_of_one_class_are_refused_in_one_line(tmp_path: Path) -> None:
    """Issue 32: a separate --eval-data folder gets the main data's two-class check: 20 images
    drawn evenly from 40 of one class and 1 of another held one class (sklearn's traceback)."""
    data = _folder(tmp_path / "data", classes=2, per_class=4)
    skewed = _folder(tmp_path / "eval", classes=1, per_class=40)
    _folder(tmp_path / "eval_b", classes=2, per_class=1)
    (tmp_path / "eval_b" / "c001").rename(skewed / "c001")
    with pytest.raises(UserError) as info:
        _build(_args(data, eval_data=str(skewed), eval_max_images=20), None)
    assert_names(info, "20 images of --eval-data", "one of the 2 classes", "--eval-max-images")
    probe = _build(_args(data, eval_data=str(skewed)), None)[2]  # all 41 images: both classes
    assert sorted(set(probe.test.labels.tolist())) == [0, 1]
