"""BYOL and MEC runs from the CLI export their online backbone to mmdet, never the teacher."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightly_matrix.cli import main


@pytest.mark.parametrize("method", ["byol", "mec"])
def test_cli_run_exports_the_online_backbone(tmp_path: Path, method: str, capsys) -> None:
    run = tmp_path / "run"
    tiny = ["--image-size", "32", "--batch-size", "16", "--epochs", "1"]
    tiny += ["--limit-train-batches", "2", "--no-eval"]
    heads = ["--hp", "hidden_dim=64", "--hp", "output_dim=64", "--hp", "pred_hidden_dim=16"]
    assert main(["pretrain", "--method", method, *tiny, *heads, "--out", str(run)]) == 0
    out = tmp_path / f"{method}.pth"
    assert main(["export", str(run / "last.ckpt"), "--out", str(out)]) == 0
    capsys.readouterr()

    ckpt = torch.load(run / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    payload = torch.load(out, map_location="cpu", weights_only=True)
    sd, meta = payload["state_dict"], payload["meta"]
    assert meta["method"] == method and meta["architecture"] == "resnet18"
    online, teacher = ckpt["backbone.0.weight"], ckpt["teacher_backbone.0.weight"]
    assert not torch.equal(online, teacher)  # two steps apart: the teacher lags
    torch.testing.assert_close(sd["backbone.conv1.weight"], online, rtol=0, atol=0)
    torch.testing.assert_close(sd["backbone.layer4.1.bn2.weight"], ckpt["backbone.7.1.bn2.weight"])
    online_keys = [k for k in ckpt if k.startswith("backbone.")]
    assert len(sd) == len(online_keys)
