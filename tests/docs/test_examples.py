"""Every script of examples/ trains for 2 steps on the CPU on the embedded digits."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*/*.py"))
NAMES = [f"{p.parent.name}/{p.name}" for p in EXAMPLES]


def test_both_layouts_have_every_method():
    methods = ("matrix_ssl", "corinfomax", "mmae")
    expected = {f"{kind}/{m}.py" for kind in ("pytorch", "pytorch_lightning") for m in methods}
    assert expected <= set(NAMES)


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=NAMES)
def test_example_runs_two_steps(script, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # Lightning writes lightning_logs/ here
    batch = "64" if script.stem == "corinfomax" else "16"  # CorInfoMax wants a batch >= its dim
    monkeypatch.setattr(sys, "argv", [str(script), "--steps", "2", "--batch-size", batch])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    names = runpy.run_path(str(script), run_name="__main__")
    if script.parent.name == "pytorch":
        assert names["step"] == 2
        assert "epoch: 00, loss:" in capsys.readouterr().out
    else:
        assert names["trainer"].global_step == 2
    loss = names["loss"] if "loss" in names else names["trainer"].callback_metrics["train_loss"]
    assert torch.isfinite(loss)
