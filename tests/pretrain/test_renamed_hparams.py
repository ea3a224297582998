"""Hyper-parameters renamed after main e00eb37: the old ``--hp`` names still work (with a
deprecation warning), and checkpoints written by that main still resume and export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lightly_matrix.cli import main
from lightly_matrix.errors import UserError
from lightly_matrix.methods import METHOD_CLASSES
from lightly_matrix.pretrain.checkpoints import RUN_KEY
from lightly_matrix.pretrain.config import resolve_run

from .test_config import parse

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(
    "method,old,new,value",
    [
        ("matrix_ssl", "lamda", "target_scale", 2.0),
        ("matrix_ssl", "mu", "ridge", 0.5),
        ("corinfomax", "la_R", "cov_momentum", 0.3),
        ("corinfomax", "R_ini", "cov_init", 2.0),
        ("mmae", "lamb", "reg_weight", 0.5),
        ("mmae", "mu", "gram_scale", 3.0),
    ],
)
def test_old_hp_names_set_the_new_ones(method: str, old: str, new: str, value: float) -> None:
    args = parse("--method", method, "--hp", f"{old}={value}")
    with pytest.warns(DeprecationWarning, match=f"'{old}'.*'{new}'"):
        config = resolve_run(args, METHOD_CLASSES[method])
    assert config.hparams[new] == value and old not in config.hparams


@pytest.mark.parametrize("order", [("lamda", "target_scale"), ("target_scale", "lamda")])
def test_an_old_and_a_new_hp_name_together_are_refused(order: tuple[str, str]) -> None:
    first, second = order
    args = parse("--method", "matrix_ssl", "--hp", f"{first}=2", "--hp", f"{second}=3")
    with pytest.warns(DeprecationWarning), pytest.raises(UserError, match="lamda is the old name"):
        resolve_run(args, METHOD_CLASSES["matrix_ssl"])
    # The same name twice stays allowed (the later wins, as with any repeated flag).
    args = parse("--method", "matrix_ssl", "--hp", "target_scale=2", "--hp", "target_scale=3")
    assert resolve_run(args, METHOD_CLASSES["matrix_ssl"]).hparams["target_scale"] == 3.0


# Tiny runs like the ones the fixtures were written by (see each fixture's "note").
TINY = {
    "matrix_ssl": ["--hp", "hidden_dim=64", "--hp", "output_dim=64"],
    "corinfomax": ["--hp", "hidden_dim=64", "--hp", "output_dim=16"],
    "mmae": [
        *("--backbone", "vit_tiny_patch16_224", "--hp", "decoder_dim=32"),
        *("--hp", "decoder_depth=1", "--hp", "decoder_num_heads=2"),
    ],
}
RENAMED_IN = {
    "matrix_ssl": {"lamda": "target_scale", "mu": "ridge"},
    "corinfomax": {"la_R": "cov_momentum", "la_mu": "mean_momentum", "R_ini": "cov_init"},
    "mmae": {"lamb": "reg_weight", "mu": "gram_scale"},
}


def old_checkpoint(tmp_path: Path, method: str) -> tuple[Path, dict]:
    """A checkpoint as main e00eb37 wrote it: its record, hparams (old names) and scheduler state
    from the fixture, grafted on the tensors of a tiny run of the same architecture."""
    new = tmp_path / "new"
    argv = ["pretrain", "--method", method, "--image-size", "16", "--batch-size", "16"]
    argv += ["--no-eval", "--no-report", "--no-progress", "--epochs", "1"]
    argv += ["--limit-train-batches", "2", "--out", str(new), *TINY[method]]
    assert main(argv) == 0
    saved = json.loads((DATA / f"main_e00eb37_{method}.json").read_text())
    ckpt = torch.load(new / "last.ckpt", map_location="cpu", weights_only=False)
    ckpt[RUN_KEY] = saved[RUN_KEY]
    ckpt["hyper_parameters"] = saved["hyper_parameters"]
    ckpt["lr_schedulers"] = saved["lr_schedulers"]
    old = tmp_path / "old"
    old.mkdir()
    torch.save(ckpt, old / "last.ckpt")
    return old, saved["hyper_parameters"]


@pytest.mark.slow
@pytest.mark.parametrize("method", list(TINY))
def test_a_checkpoint_of_main_e00eb37_resumes_and_exports(tmp_path: Path, method: str) -> None:
    old, saved = old_checkpoint(tmp_path, method)
    assert set(RENAMED_IN[method]) <= set(saved)  # the fixture really holds the old names

    # The module loads as Lightning loads it (the saved hparams as keyword arguments).
    module = METHOD_CLASSES[method].load_from_checkpoint(old / "last.ckpt", map_location="cpu")
    for before, after in RENAMED_IN[method].items():
        assert module.hparams[after] == saved[before] and before not in module.hparams

    assert main(["pretrain", "--resume", str(old), "--epochs", "2", "--no-progress"]) == 0
    resumed = torch.load(old / "last.ckpt", map_location="cpu", weights_only=True)
    assert resumed["global_step"] > 0 and resumed[RUN_KEY]["epochs"] == 2
    for before, after in RENAMED_IN[method].items():
        assert resumed["hyper_parameters"][after] == saved[before]
        assert before not in resumed["hyper_parameters"]
    # A resume flag given with the old name is compared with the saved value, not refused.
    hp_old = next(iter(RENAMED_IN[method]))
    again = ["pretrain", "--resume", str(old), "--epochs", "2", "--no-progress"]
    assert main([*again, "--hp", f"{hp_old}={saved[hp_old]}"]) == 0

    out = tmp_path / "backbone.pth"
    args = ["export", str(old / "last.ckpt"), "--out", str(out)]
    if method == "mmae":
        args += ["--format", "timm"]
    assert main(args) == 0 and out.stat().st_size > 0
