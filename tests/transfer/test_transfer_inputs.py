"""``transfer`` never writes outside --work-dir, never replaces an input, runs no user module,
and stops a diverging fine-tuning before it writes results."""

from __future__ import annotations

import errno
import os
import sys

import pytest
import torch
import torchvision
from messages import assert_names

from lightly_matrix.cli import main as cli_main
from lightly_matrix.data.coco_shapes import make_coco_shapes
from lightly_matrix.transfer import DEMO_CONFIG
from lightly_matrix.transfer.checks import WORK_DIR_MARKER
from lightly_matrix.utils.lock import folder_lock


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_coco_shapes(
        tmp_path_factory.mktemp("d") / "c", num_train=4, num_val=2, image_size=64
    )


def transfer(root, work, *flags):
    argv = ["transfer", "--config", DEMO_CONFIG, "--coco-root", str(root), "--work-dir", str(work)]
    return cli_main([*argv, "--max-iters", "2", "--batch-size", "2", "--no-report", *flags])


@pytest.mark.parametrize(
    "option",
    [
        "work_dir={user}",
        "default_hooks.checkpoint.out_dir={user}",
        "test_evaluator.outfile_prefix={user}/p",
        "default_hooks.visualization.test_out_dir={user}",
        "visualizer.vis_backends.0.save_dir={user}",
        "default_hooks.checkpoint.filename_tmpl={user}/c_{{}}.pth",
    ],
)
def test_output_paths_in_cfg_options_are_refused(root, tmp_path, capsys, option):
    user = tmp_path / "user"
    user.mkdir()
    (user / "results.json").write_text("mine")
    key = option.split("=")[0]
    assert transfer(root, tmp_path / "w", "--cfg-options", option.format(user=user)) == 2
    assert_names(capsys.readouterr().err, key, "--work-dir")
    assert [p.name for p in user.iterdir()] == ["results.json"]
    assert (user / "results.json").read_text() == "mine" and not (tmp_path / "w").exists()


@pytest.mark.parametrize(
    ("option", "tokens"),
    [
        ("custom_imports.imports=[lightly_matrix.mmdet,evilmod]", ("custom_imports", "code")),
        ("model.backbone.init_cfg.prefix=module.", ("init_cfg.prefix", "CHECKPOINT")),
        ("model.backbone.init_cfg.type=Kaiming", ("init_cfg.type", "CHECKPOINT")),
        ("load_from=/tmp/x.pth", ("load_from", "CHECKPOINT")),
        ("resume=True", ("resume", "tools/train.py")),
        ("optim_wrapper.optimizer.lr=nan", ("optimizer.lr", "nan", "finite")),
        ("optim_wrapper.optimizer.lr=inf", ("optimizer.lr", "inf", "finite")),
        ("visualizer.vis_backends=[dict(type='X')]", ("vis_backends", "key by key")),
        ("visualizer.vis_backends=[dict(type='X',a=1)]", ("vis_backends", "a.b.c=1")),
    ],
)
def test_code_weights_and_non_finite_options_are_one_line(
    root, tmp_path, capsys, monkeypatch, option, tokens
):
    (tmp_path / "evilmod.py").write_text(f"open({str(tmp_path / 'pwned')!r}, 'w')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert transfer(root, tmp_path / "w", "--cfg-options", option) == 2
    err = assert_names(capsys.readouterr().err, *tokens)
    assert "Traceback" not in err and "evilmod" not in sys.modules
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "w").exists()


def test_a_checkpoint_where_the_export_goes_is_never_replaced(root, tmp_path, capsys):
    work = tmp_path / "w"  # an unfinished transfer of ours
    work.mkdir()
    (work / WORK_DIR_MARKER).write_text("created by lightly-matrix transfer\n")
    users = work / "backbone.pth"
    torch.save(torchvision.models.resnet18().state_dict(), users)
    before = users.read_bytes()
    assert transfer(root, work, users.as_posix()) == 2  # positional CHECKPOINT after the flags
    assert_names(capsys.readouterr().err, str(users), "--work-dir")
    assert users.read_bytes() == before
    os.link(users, tmp_path / "link.pth")  # the same file under another name
    assert transfer(root, work, str(tmp_path / "link.pth")) == 2
    err = assert_names(capsys.readouterr().err, "link.pth", "--work-dir")
    assert "--out" not in err and users.read_bytes() == before


def test_a_work_dir_in_use_is_refused(root, tmp_path, capsys):
    work = tmp_path / "w"
    work.mkdir()
    (work / WORK_DIR_MARKER).write_text("created by lightly-matrix transfer\n")
    with folder_lock(work, "--work-dir"):
        assert transfer(root, work) == 2
    assert_names(capsys.readouterr().err, str(work), "in use")
    assert [p.name for p in work.iterdir()] == [WORK_DIR_MARKER]


@pytest.mark.slow
def test_a_diverging_loss_stops_the_transfer_without_results(root, tmp_path, capsys):
    work = tmp_path / "w"
    flags = ["--cfg-options", "optim_wrapper.optimizer.lr=1e4"]
    assert transfer(root, work, "--max-iters", "4", *flags) == 2
    err = assert_names(capsys.readouterr().err, "diverged", "lr")
    assert "Traceback" not in err
    assert not (work / "results.json").exists()


def test_a_model_that_detects_nothing_says_so(root, tmp_path, capsys):
    flags = ["--max-iters", "1", "--cfg-options", "model.test_cfg.rcnn.score_thr=1.0"]
    assert transfer(root, tmp_path / "w", *flags) == 0
    note = [line for line in capsys.readouterr().out.splitlines() if "no detections" in line]
    assert len(note) == 1 and "--max-iters" in note[0]


def test_a_full_disk_during_training_is_one_line(root, tmp_path, capsys, monkeypatch):
    from mmengine.runner import Runner

    def full(self):
        raise OSError(errno.EFBIG, "File too large", str(tmp_path / "w" / "iter_2.pth"))

    monkeypatch.setattr(Runner, "train", full)
    assert transfer(root, tmp_path / "w") == 2
    err = assert_names(capsys.readouterr().err, "iter_2.pth", "disk is full", "--work-dir")
    assert "Traceback" not in err and not (tmp_path / "w" / "results.json").exists()


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("model = dict(\n", ("SyntaxError", "never closed")),
        ("_base_ = ['./nonexistent_base.py']\n", ("nonexistent_base.py",)),
    ],
)
def test_a_config_mmengine_cannot_read_is_one_line(root, tmp_path, capsys, text, tokens):
    config = tmp_path / "mine.py"
    config.write_text(text)
    argv = ["transfer", "--config", str(config), "--coco-root", str(root)]
    assert cli_main([*argv, "--work-dir", str(tmp_path / "w")]) == 2
    err = assert_names(capsys.readouterr().err, str(config), *tokens, "fix the file")
    assert "Traceback" not in err and not (tmp_path / "w").exists()


def test_a_coco_root_that_is_a_file_says_so(tmp_path, capsys):
    afile = tmp_path / "coco.txt"
    afile.write_text("x")
    assert transfer(afile, tmp_path / "w") == 2
    assert_names(capsys.readouterr().err, f"{afile} is a file, not a folder")


EMPTY = [["--work-dir", ""], [""], ["--coco-root", ""], ["--config", ""]]


@pytest.mark.parametrize("argv", [["transfer", *a] for a in EMPTY] + [["check-coco", ""]])
def test_an_empty_path_is_refused_not_taken_as_unset(capsys, argv):
    with pytest.raises(SystemExit) as stopped:
        cli_main(argv)
    assert stopped.value.code == 2
    assert "an empty path (an unset shell variable?)" in capsys.readouterr().err


def test_a_count_out_of_range_says_omit_it(root, tmp_path, capsys):
    assert transfer(root, tmp_path / "w", "--max-iters", "0") == 2
    assert_names(capsys.readouterr().err, "--max-iters must be >= 1, got 0 (omit it for")
