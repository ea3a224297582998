"""``lightly-matrix configs``: list the shipped configs, write one out for mmdet's own tools."""

from __future__ import annotations

import pytest
from mmengine.config import Config

from lightly_matrix.cli import main as cli_main
from lightly_matrix.transfer.configs import available_configs, config_dir, resolve_config

C4 = "mask-rcnn_r18-c4_ms-1x_coco"


def test_lists_every_config_with_its_protocol(capsys):
    assert cli_main(["configs"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("mask-rcnn")}
    assert sorted(rows) == available_configs() and len(rows) >= 10
    assert "MoCo / Matrix-SSL fine-tuning protocol" in rows["mask-rcnn_r50-c4_ms-1x_coco"]
    assert "mmselfsup model-zoo fine-tuning protocol" in rows["mask-rcnn_r50_fpn_ms-1x_coco"]
    assert str(config_dir()) in out


def test_name_alone_prints_the_installed_path(capsys):
    assert cli_main(["configs", C4]) == 0
    assert capsys.readouterr().out.strip() == str(resolve_config(C4))


@pytest.mark.parametrize("resolved", [False, True], ids=["copy", "resolved"])
def test_written_config_loads_from_anywhere_and_equals_ours(tmp_path, monkeypatch, resolved):
    out = tmp_path / "deep" / "mine.py"
    monkeypatch.chdir(tmp_path)
    argv = ["configs", C4, "--out", str(out)] + (["--resolved"] if resolved else [])
    assert cli_main(argv) == 0
    text = out.read_text()
    # The copy inherits from the installed file; the resolved one has no base left.
    assert ("_base_" in text) is not resolved and "ruff" not in text
    if resolved:
        assert "custom_imports = dict(" in text  # our modules still get registered
    else:
        assert f'_base_ = "{config_dir() / "mask-rcnn_r50-c4_ms-1x_coco.py"}"' in text
    assert Config.fromfile(str(out)).to_dict() == Config.fromfile(str(resolve_config(C4))).to_dict()


def test_never_overwrites_and_refuses_bad_combinations(tmp_path, capsys):
    out = tmp_path / "taken.py"
    out.write_text("precious = True\n")
    assert cli_main(["configs", C4, "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_text() == "precious = True\n"
    assert cli_main(["configs", "--out", str(tmp_path / "x.py")]) == 2
    assert cli_main(["configs", C4, "--resolved"]) == 2
    assert cli_main(["configs", "mask-rcnn_r51"]) == 2
    assert "not found" in capsys.readouterr().err


def test_unwritable_out_is_one_line(tmp_path, capsys, unwritable_dir):
    (tmp_path / "afile").write_text("x")
    for out in (unwritable_dir / "c4.py", tmp_path / "afile" / "c4.py", tmp_path):
        assert cli_main(["configs", C4, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert "choose another" in err and str(out) in err
    assert (tmp_path / "afile").read_text() == "x"


def test_a_full_disk_leaves_no_file_and_the_retry_works(tmp_path, capsys, monkeypatch):
    import errno
    import os

    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, fd, mode):
            self.file = real_fdopen(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    out = tmp_path / "c4.py"
    argv = ["configs", "mask-rcnn_r50-c4_ms-1x_coco", "--out", str(out)]
    monkeypatch.setattr(os, "fdopen", FullDisk)
    assert cli_main(argv) == 2
    assert str(out) in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one
    monkeypatch.undo()
    assert cli_main(argv) == 0  # the retry is not refused as "already exists"
    assert out.read_text().startswith("# ")


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("model = dict(\n", ("SyntaxError", "never closed")),
        ("_base_ = ['./nonexistent_base.py']\n", ("nonexistent_base.py",)),
    ],
)
def test_a_config_mmengine_cannot_read_is_one_line(tmp_path, capsys, text, tokens):
    config = tmp_path / "broken.py"
    config.write_text(text)
    argv = ["configs", str(config), "--out", str(tmp_path / "o.py"), "--resolved"]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert str(config) in err and all(t in err for t in tokens) and "fix the file" in err
    assert not (tmp_path / "o.py").exists()


def test_a_file_that_is_not_python_is_no_config(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list\n")
    assert cli_main(["configs", str(notes), "--out", str(tmp_path / "c.py")]) == 2
    assert "notes.txt' is not a .py file" in capsys.readouterr().err
    assert not (tmp_path / "c.py").exists()


def test_a_dangling_link_as_out_is_named_and_left_alone(tmp_path, capsys):
    link = tmp_path / "c4.py"
    link.symlink_to(tmp_path / "nowhere.py")
    assert cli_main(["configs", C4, "--out", str(link)]) == 2
    assert "is a dangling symbolic link; not overwriting it" in capsys.readouterr().err
    assert link.is_symlink() and not (tmp_path / "nowhere.py").exists()


@pytest.mark.parametrize("out", ["c4.json", "c4.yaml", "", "."])
def test_out_must_name_a_py_file(tmp_path, capsys, monkeypatch, out):
    monkeypatch.chdir(tmp_path)  # mmengine reads a config by its suffix: ours are Python
    assert cli_main(["configs", C4, "--out", out, "--resolved"]) == 2
    assert f"--out {out!r} is not a .py file name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
