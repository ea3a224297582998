from __future__ import annotations

import subprocess
import sys

import pytest

import lightly_matrix
from lightly_matrix.cli import SUBCOMMANDS, main


def test_version(capsys) -> None:
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.strip() == f"lightly-matrix {lightly_matrix.__version__}"


def test_help_lists_subcommands(capsys) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


def test_console_script_installed() -> None:
    # the console script from pyproject.toml, next to this interpreter
    exe = str(__import__("pathlib").Path(sys.executable).with_name("lightly-matrix"))
    done = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True)
    assert "pretrain" in done.stdout and "export" in done.stdout
    done = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert lightly_matrix.__version__ in done.stdout


def test_unknown_subcommand_is_an_argparse_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lightly_matrix", "frobnicate"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["export", "run/last.ckpt", "--out", ""],
        ["export", "", "--out", "backbone.pth"],
        ["report", "run", "--out", ""],
        ["report", ""],
    ],
)
def test_an_empty_path_is_called_empty_not_dot(argv: list[str], capsys) -> None:
    """``--out "$OUT"`` with OUT unset used to say "--out . is a folder"."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert "an empty path (an unset shell variable?)" in capsys.readouterr().err
