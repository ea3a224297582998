"""`lightly-matrix pretrain` values that used to be taken silently: refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightly_matrix.cli import main

TINY = ["--method", "matrix_ssl", "--image-size", "16", "--batch-size", "16", "--no-eval"]
VIT = ["--method", "mmae", "--backbone", "vit_tiny_patch16_224", "--image-size", "32"]


@pytest.mark.parametrize("flag", ["--resume", "--out", "--data", "--eval-data"])
def test_an_empty_path_is_an_error_not_unset(
    flag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--resume "$RUN"`` with RUN unset used to start a new run in runs/<method>."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        main(["pretrain", *TINY, flag, ""])
    assert stopped.value.code == 2
    assert "an empty path" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        # Lightning replaces such a seed by a random one: the run would not repeat.
        ([*TINY, "--seed", "-1"], "--seed"),
        ([*TINY, "--seed", str(2**32)], "--seed"),
        # Digits has its own test split: --eval-data was ignored without a word.
        ([*TINY, "--eval-data", "."], "--eval-data"),
        # 0 used to mean "automatic" (the model's own patch size).
        ([*VIT, "--hp", "patch_size=0"], "patch_size"),
        ([*VIT, "--hp", "patch_size=-4"], "patch_size"),
        ([*TINY, "--eval-every", "1"], "--no-eval turns --eval-every off; drop one"),
        # Lightning ran bf16-mixed, and the banner and checkpoint said 16-mixed.
        ([*TINY, "--accelerator", "cpu", "--precision", "16-mixed"], "use bf16-mixed or 32-true"),
        pytest.param(
            [*TINY, "--accelerator", "gpu"],
            "use --accelerator cpu or auto",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is there"),
        ),
    ],
)
def test_values_that_were_taken_silently_are_refused(
    argv: list[str], fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["pretrain", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and fragment in err.splitlines()[-1], err
    assert not out.exists()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        # The minimum used to be 1 here and 8 in a second check, which named no flag.
        ("--image-size", "0", "--image-size must be >= 8, got 0"),
        ("--image-size", "7", "--image-size must be >= 8, got 7"),
        ("--batch-size", "1", "--batch-size must be >= 2 (the losses need 2 rows), got 1"),
        ("--epochs", "0", "--epochs must be >= 1, got 0"),
    ],
)
def test_one_lower_bound_per_flag_named_with_the_value(
    flag: str, value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["pretrain", *TINY, flag, value, "--out", str(out), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(message) and "\n" not in err, err
    assert not out.exists()
