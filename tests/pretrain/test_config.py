"""The resolved run (``pretrain --dry-run``): the authors' recipes value by value, global batch
sizes on any number of devices, and a JSON that equals what training builds."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from lightly_matrix.cli import UserError, main
from lightly_matrix.methods import METHOD_CLASSES
from lightly_matrix.pretrain.args import add_arguments
from lightly_matrix.pretrain.config import resolve_run
from lightly_matrix.pretrain.run import _summary, build_module, describe_run


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(list(argv))
    args.data = args.data or "digits"
    args.seed = 0 if args.seed is None else args.seed
    return args


def dry_run(*argv: str, num_images: int = 1_281_167, num_classes: int = 1000) -> dict[str, Any]:
    """``describe_run`` of a command line (no data read: the number of images is given)."""
    args = parse(*argv)
    config = resolve_run(args, METHOD_CLASSES[args.method])
    return describe_run(config, METHOD_CLASSES[args.method], num_classes, num_images)


def cli_dry_run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["pretrain", *argv, "--dry-run"]) == 0
    return json.loads(capsys.readouterr().out)


# The authors' values, read off their code (see lightly_matrix/presets.py for file and line):
# MSSL = yifanzhang-pro/Matrix-SSL, CIM = serdarozsoy/corinfomax-ssl, MMAE = yifanzhang-pro/M-MAE.
AUTHORS = {
    ("matrix_ssl", "imagenet_r50"): {
        "global_batch_size": 1024,  # MSSL main_pretrain.py -b 1024 (total)
        "epochs": 100,
        "precision": "32-true",
        ("backbone", "name"): "resnet50",
        ("backbone", "zero_init_residual"): True,  # MSSL mec/builder.py
        ("optimizer", "name"): "sgd",
        ("optimizer", "lr"): 2.0,  # 0.5 * 1024 / 256
        ("optimizer", "momentum"): 0.9,
        ("optimizer", "weight_decay"): 1e-5,
        ("optimizer", "undecayed_tensors"): 0,  # model.parameters(): BN and biases decayed too
        # ResNet-50 159 + projector 7 + predictor 5: the last projector bias is frozen
        # (MSSL mec/builder.py:31 requires_grad = False).
        ("optimizer", "decayed_tensors"): 171,
        ("lr_schedule", "interval"): "step",
        ("lr_schedule", "warmup_epochs"): 10,
        ("lr_schedule", "warmup_start_lr"): 0.0,
        ("lr_schedule", "final_lr"): 0.0,
        ("teacher_momentum", "start"): 0.996,
        ("teacher_momentum", "end"): 1.0,
        # MSSL pretrain.sh --mce_lambd 0.5 --mce_mu 0.5 (the README's 1.0 does not run as written)
        ("hparams", "target_scale"): 0.5,
        ("hparams", "ridge"): 0.5,
        ("hparams", "gamma"): 1.0,
        ("hparams", "taylor_order"): 4,
        ("hparams", "output_dim"): 2048,
        ("hparams", "pred_hidden_dim"): 512,
    },
    ("corinfomax", "cifar10_r18"): {
        "global_batch_size": 512,  # CIM README
        "epochs": 1000,
        ("backbone", "stem"): "cifar",
        ("backbone", "zero_init_residual"): True,
        ("optimizer", "lr"): 0.5,  # absolute
        ("optimizer", "weight_decay"): 1e-4,
        ("optimizer", "undecayed_tensors"): 0,
        ("lr_schedule", "interval"): "epoch",
        ("lr_schedule", "warmup_epochs"): 10,
        ("lr_schedule", "warmup_start_lr"): 3e-3,
        ("lr_schedule", "final_lr"): 1e-6,
        ("hparams", "alpha"): 250.0,
        ("hparams", "output_dim"): 64,
        "teacher_momentum": None,
    },
    ("corinfomax", "imagenet_r50"): {
        "global_batch_size": 1536,
        "precision": "16-mixed",
        ("optimizer", "lr"): 0.2,
        ("optimizer", "weight_decay"): 1e-4,
        ("hparams", "alpha"): 2000.0,
        ("hparams", "cov_momentum"): 0.1,
        ("hparams", "hidden_dim"): 8192,
        ("hparams", "output_dim"): 512,
        ("hparams", "proj_batch_norm"): True,
        # ResNet-50 159 + two biased Linear-BN hidden layers (8) + the last Linear's weight
        # (CIM imagenet1k/model_base_resnet_bn.py: nn.Linear(..., bias=True) before each BN).
        ("optimizer", "decayed_tensors"): 168,
    },
    ("corinfomax", "imagenet100_r50"): {
        "global_batch_size": 1024,
        "epochs": 200,
        ("optimizer", "lr"): 1.0,
        ("lr_schedule", "warmup_epochs"): 5,
        ("lr_schedule", "final_lr"): 5e-3,
    },
    ("corinfomax", "imagenet100_r18"): {
        "global_batch_size": 1024,
        "epochs": 400,
        ("optimizer", "lr"): 1.0,
        ("lr_schedule", "final_lr"): 5e-3,
    },
    ("corinfomax", "tinyimagenet_r50"): {
        "global_batch_size": 1024,
        "epochs": 800,
        "image_size": 64,
        ("optimizer", "lr"): 0.5,
        ("hparams", "alpha"): 500.0,
        ("hparams", "mean_momentum"): 0.1,
    },
    ("mmae", "imagenet_vitl16"): {
        "global_batch_size": 1024,  # 128 x 8 GPUs (MMAE pretrain.sh)
        "epochs": 200,
        "precision": "16-mixed",
        ("optimizer", "name"): "adamw",
        ("optimizer", "lr"): 6e-4,  # 1.5e-4 * 1024 / 256
        ("optimizer", "weight_decay"): 0.05,
        ("lr_schedule", "warmup_epochs"): 40,
        ("lr_schedule", "final_lr"): 0.0,
        ("lr_schedule", "warmup_style"): "fraction",
        ("hparams", "gram_scale"): 3.0,
        ("hparams", "centering"): False,
        ("hparams", "double_norm"): True,
        ("hparams", "mask_ratio"): 0.75,
        ("hparams", "decoder_dim"): 512,
        ("hparams", "decoder_depth"): 8,
        ("hparams", "decoder_num_heads"): 16,
        # lamb 1e-2 with a gather that kept 1/8 of the gradient: 1e-2 / 8 with a correct one.
        ("hparams", "reg_weight"): 0.01 / 8,
    },
}


def lookup(document: dict[str, Any], key: str | tuple[str, str]) -> Any:
    if isinstance(key, tuple):
        return document[key[0]][key[1]]
    return document[key]


@pytest.mark.parametrize(("method", "preset"), list(AUTHORS))
def test_presets_equal_the_authors_values(method: str, preset: str) -> None:
    document = dry_run("--method", method, "--preset", preset)
    for key, expected in AUTHORS[(method, preset)].items():
        got = lookup(document, key)
        if isinstance(expected, float):
            assert got == pytest.approx(expected, rel=1e-12), (key, got)
        else:
            assert got == expected, (key, got)


def test_matrix_ssl_views_crop_from_20_percent() -> None:
    views = dry_run("--method", "matrix_ssl", "--preset", "imagenet_r50")["views"]
    assert len(views) == 2
    assert [v["crop_min_scale"] for v in views] == [0.2, 0.2]
    assert [v["blur_prob"] for v in views] == [1.0, 0.1]  # MSSL main_pretrain.py:260,272
    assert [v["solarize_prob"] for v in views] == [0.0, 0.2]


def test_corinfomax_cifar_views_bicubic_with_cifar_statistics() -> None:
    views = dry_run("--method", "corinfomax", "--preset", "cifar10_r18")["views"]
    for view in views:
        assert view["interpolation"] == "bicubic"
        assert view["crop_min_scale"] == 0.08
        assert view["normalize_mean"] == [0.4914, 0.4822, 0.4465]
        assert view["normalize_std"] == [0.247, 0.243, 0.261]


@pytest.mark.parametrize(
    ("method", "preset"),
    [("matrix_ssl", "imagenet_r50"), ("mmae", "imagenet_vitl16"), ("corinfomax", "imagenet_r50")],
)
def test_devices_and_nodes_never_change_what_is_trained(method: str, preset: str) -> None:
    documents = [
        dry_run("--method", method, "--preset", preset, "--devices", str(d), "--num-nodes", str(n))
        for d, n in ((1, 1), (2, 1), (8, 1), (4, 2))
    ]
    global_batch = documents[0]["global_batch_size"]
    for document in documents:
        world = document.pop("world_size")
        assert document.pop("per_device_batch_size") * world == global_batch
    assert all(document == documents[0] for document in documents[1:])


def test_batch_that_does_not_divide_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--method", "matrix_ssl", "--batch-size", "100", "--devices", "3", "--dry-run"]
    status = main(["pretrain", *argv, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert "100" in err and "3 processes" in err
    assert not (tmp_path / "run").exists()


def test_dry_run_prints_only_json_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    document = cli_dry_run(
        capsys, "--method", "matrix_ssl", "--preset", "imagenet_r50", "--out", str(out)
    )
    assert document["optimizer"]["lr"] == pytest.approx(2.0)
    assert document["num_images"] == 1257  # the digits training split
    assert not out.exists()


def test_dry_run_is_fast_from_the_command_line(tmp_path: Path) -> None:
    """ViT-L's dry run costs little beyond importing the stack (PyTorch, Lightning, Lightly):
    the module is built on the meta device. (Absolute: ~7 s on 2 idle cores, see the README.)"""

    def timed(*argv: str) -> tuple[float, subprocess.CompletedProcess[str]]:
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, *argv], capture_output=True, text=True, timeout=300, cwd=tmp_path
        )
        return time.perf_counter() - start, done

    imports, _ = timed("-c", "import lightly_matrix.methods, lightly_matrix.pretrain.run")
    command = ["-m", "lightly_matrix", "pretrain", "--method", "mmae"]
    elapsed, done = timed(*command, "--preset", "imagenet_vitl16", "--devices", "8", "--dry-run")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)  # stdout holds the JSON and nothing else
    assert document["optimizer"]["lr"] == pytest.approx(6e-4)
    assert document["per_device_batch_size"] == 128
    assert elapsed - imports < 5, (elapsed, imports)
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------ the JSON equals the optimizer and scheduler
def authors_lr(document: dict[str, Any], index: int, total: int, units_per_epoch: float) -> float:
    """The lr as each author's script computes it (independent of lightly_matrix's helpers)."""
    schedule = document["lr_schedule"]
    peak = document["optimizer"]["lr"]
    start, final = schedule["warmup_start_lr"], schedule["final_lr"]
    warm = round(schedule["warmup_epochs"] * units_per_epoch)
    if schedule["warmup_style"] == "linspace":
        # np.linspace(start, peak, warm) (Matrix-SSL cosine_scheduler; CorInfoMax closed form)
        if index < warm:
            return float(np.linspace(start, peak, warm)[index])
    elif index < warm:  # M-MAE util/lr_sched.py: lr * epoch / warmup_epochs
        return peak * index / warm
    return final + 0.5 * (peak - final) * (1 + math.cos(math.pi * (index - warm) / (total - warm)))


def fake_trainer(world_size: int, epochs: int, steps_per_epoch: int) -> SimpleNamespace:
    return SimpleNamespace(
        world_size=world_size,
        max_epochs=epochs,
        estimated_stepping_batches=epochs * steps_per_epoch,
    )


CASES = [
    ("matrix_ssl", "imagenet_r50", 8, 20, 7),
    ("corinfomax", "cifar10_r18", 1, 30, 4),
    ("mae", "imagenet_vitb16", 8, 50, 3),
]


@pytest.mark.parametrize(("method", "preset", "world", "epochs", "steps"), CASES)
def test_real_optimizer_and_scheduler_equal_the_json(
    method: str, preset: str, world: int, epochs: int, steps: int
) -> None:
    # Small heads keep the real (CPU) module cheap; the recipe is the preset's.
    small = ["--hp", "hidden_dim=32", "--hp", "output_dim=16"] if method != "mae" else []
    if method == "matrix_ssl":
        small += ["--hp", "pred_hidden_dim=8", "--backbone", "resnet18"]
    if method == "mae":
        small += [
            "--backbone",
            "vit_tiny_patch16_224",
            "--image-size",
            "32",
            "--hp",
            "patch_size=8",
        ]
        small += [
            "--hp",
            "decoder_dim=16",
            "--hp",
            "decoder_depth=1",
            "--hp",
            "decoder_num_heads=2",
        ]
    argv = [
        "--method",
        method,
        "--preset",
        preset,
        "--devices",
        str(world),
        "--epochs",
        str(epochs),
    ]
    args = parse(*argv, *small)
    config = resolve_run(args, METHOD_CLASSES[method])
    document = describe_run(config, METHOD_CLASSES[method], 10, num_images=10**6)
    module = build_module(config, METHOD_CLASSES[method], 10, device="cpu")
    module.trainer = fake_trainer(world, epochs, steps)  # type: ignore[assignment]
    [optimizer], [scheduler_cfg] = module.configure_optimizers()
    groups = {group["name"]: group for group in optimizer.param_groups}
    assert len(groups["weights"]["params"]) == document["optimizer"]["decayed_tensors"]
    undecayed = groups.get("no_weight_decay", {"params": []})["params"]
    assert len(undecayed) == document["optimizer"]["undecayed_tensors"]
    assert groups["weights"]["weight_decay"] == document["optimizer"]["weight_decay"]
    assert scheduler_cfg["interval"] == document["lr_schedule"]["interval"]
    per_epoch = steps if scheduler_cfg["interval"] == "step" else 1
    total = epochs * per_epoch
    scheduler = scheduler_cfg["scheduler"]
    checked = {0, 1, per_epoch * 3, total // 2, total - 1}
    for index in range(total):
        if index in checked:
            expected = authors_lr(document, index, total, per_epoch)
            assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-9, abs=1e-15)
        optimizer.step()
        scheduler.step()
    peak_index = round(document["lr_schedule"]["warmup_epochs"] * per_epoch)
    assert authors_lr(document, peak_index, total, per_epoch) == pytest.approx(
        document["optimizer"]["lr"]
    )


def test_tiny_run_follows_the_dry_run_schedule(tmp_path: Path) -> None:
    """A real CPU run: the lr and teacher momentum Lightning logged at each step equal the
    schedule the dry-run document describes."""
    import csv

    out = tmp_path / "run"
    argv = [
        "--method", "matrix_ssl", "--image-size", "16", "--batch-size", "16", "--epochs", "2",
        "--limit-train-batches", "3", "--no-eval", "--log-every-n-steps", "1",
        "--hp", "hidden_dim=32", "--hp", "output_dim=32", "--hp", "pred_hidden_dim=8",
        "--warmup-epochs", "1", "--hp", "warmup_style=linspace", "--hp", "final_lr=0.01",
    ]  # fmt: skip
    args = parse(*argv)
    config = resolve_run(args, METHOD_CLASSES["matrix_ssl"])
    document = describe_run(config, METHOD_CLASSES["matrix_ssl"], 10, num_images=1257)
    assert main(["pretrain", *argv, "--out", str(out)]) == 0
    with open(out / "csv" / "version_0" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    lrs = [float(r["lr-SGD/weights"]) for r in rows if r.get("lr-SGD/weights")]
    momenta = [float(r["momentum"]) for r in rows if r.get("momentum")]
    total, per_epoch = 6, 3
    assert len(lrs) == total and len(momenta) == total
    expected = [authors_lr(document, i, total, per_epoch) for i in range(total)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-6)
    start, end = document["teacher_momentum"]["start"], document["teacher_momentum"]["end"]
    # Matrix-SSL main_pretrain.py cosine_scheduler(0.996, 1, epochs, iters): per step, over all.
    reference = [end + 0.5 * (start - end) * (1 + math.cos(math.pi * i / total)) for i in range(6)]
    np.testing.assert_allclose(momenta, reference, rtol=1e-7)  # logged as float32


# ------------------------------------------------------------------------------------- resuming
def saved_run(method: str, **hparams: Any) -> Any:
    args = parse("--method", method, *[f"--hp={k}={v}" for k, v in hparams.items()])
    return resolve_run(args, METHOD_CLASSES[method])


@pytest.mark.parametrize(
    ("method", "saved", "given"),
    [
        ("corinfomax", {"alpha": "1000.0"}, "alpha=1000"),
        ("matrix_ssl", {"taylor_order": "none"}, "taylor_order=none"),
        ("matrix_ssl", {"taylor_order": "none"}, "taylor_order=None"),
        ("matrix_ssl", {"zero_init_residual": "false"}, "zero_init_residual=0"),
        ("matrix_ssl", {"lr": "3"}, "lr=3.0e0"),
    ],
)
def test_resume_compares_parsed_values(method: str, saved: dict[str, str], given: str) -> None:
    from lightly_matrix.pretrain.config import resolve_resumed

    run = saved_run(method, **saved)
    args = parse("--resume", "x", "--hp", given)
    args.data = args.seed = None
    resumed, notes = resolve_resumed(args, run, METHOD_CLASSES[method])
    assert resumed == run and notes == []


def test_resume_refuses_a_changed_setting_and_keeps_the_global_batch() -> None:
    from lightly_matrix.cli import UserError
    from lightly_matrix.pretrain.config import resolve_resumed

    run = saved_run("corinfomax", alpha="1000")
    args = parse("--hp", "alpha=999", "--batch-size", "32")
    args.data = args.seed = None
    with pytest.raises(UserError, match="alpha") as err:
        resolve_resumed(args, run, METHOD_CLASSES["corinfomax"])
    assert "--batch-size 32" in str(err.value)
    args = parse("--devices", "4", "--epochs", "9", "--no-eval")
    args.data = args.seed = None
    resumed, notes = resolve_resumed(args, run, METHOD_CLASSES["corinfomax"])
    assert resumed.global_batch_size == run.global_batch_size == 64
    assert resumed.per_device_batch_size == 16 and resumed.epochs == 9 and resumed.no_eval
    assert any("devices: 1 -> 4" in note for note in notes)


def test_resume_keeps_no_eval() -> None:
    from lightly_matrix.pretrain.config import resolve_resumed

    run = resolve_run(parse("--method", "matrix_ssl", "--no-eval"), METHOD_CLASSES["matrix_ssl"])
    args = parse()
    args.data = args.seed = None
    resumed, _ = resolve_resumed(args, run, METHOD_CLASSES["matrix_ssl"])
    assert resumed.no_eval


def test_a_checkpoint_of_an_earlier_record_format_is_refused_in_one_line() -> None:
    from lightly_matrix.pretrain.config import RECORD_FORMAT, from_checkpoint

    cls = METHOD_CLASSES["matrix_ssl"]
    config = resolve_run(parse("--method", "matrix_ssl"), cls)
    hparams = {**config.module_hparams(10), "method": "matrix_ssl"}
    assert from_checkpoint(config.record(), hparams, cls) == config
    for record, saved in (
        ({**config.record(), "format": RECORD_FORMAT - 1}, hparams),
        ({**config.record(), "format": None}, hparams),
        (config.record(), {**hparams, "lamda": 1.0}),  # a former argument name
    ):
        with pytest.raises(UserError, match="earlier development version") as err:
            from_checkpoint(record, saved, cls)
        assert "\n" not in str(err.value)


def test_resuming_a_snapshot_never_overwrites_another_runs_last_ckpt(tmp_path: Path) -> None:
    """--resume of a snapshot whose folder's last.ckpt is another run, even a shorter one."""
    import torch

    from lightly_matrix.cli import UserError
    from lightly_matrix.pretrain.checkpoints import RUN_KEY, ResumePlan

    def fake(method: str, step: int) -> dict[str, Any]:
        record = {"method": method, "data": "digits", "image_size": 32, "seed": 0}
        hparams = {"backbone": "resnet18", "method": method}
        return {"state_dict": {}, "loops": {}, "global_step": step, RUN_KEY: record,
                "hyper_parameters": hparams}  # fmt: skip

    torch.save(fake("corinfomax", 1), tmp_path / "last.ckpt")
    snapshot = tmp_path / "checkpoints" / "epoch0004.ckpt"
    plan = ResumePlan(
        checkpoint=snapshot, run_dir=tmp_path, global_step=5, where="", saved=None,  # type: ignore[arg-type]
        saved_hparams={}, identity=("matrix_ssl", "digits", "resnet18", 32, 0),
    )  # fmt: skip
    with pytest.raises(UserError, match="different runs"):
        plan.check_no_newer_checkpoint(tmp_path)
    torch.save(fake("matrix_ssl", 1), tmp_path / "last.ckpt")  # the same run, behind: continue
    plan.check_no_newer_checkpoint(tmp_path)


@pytest.mark.parametrize("method", list(METHOD_CLASSES))
def test_a_folder_run_without_preset_is_the_methods_paper_run(method: str) -> None:
    cls = METHOD_CLASSES[method]
    config = resolve_run(parse("--method", method, "--data", "/some/folder"), cls)
    assert config.preset is None
    assert config.hparams["backbone"] == cls.hparam_defaults()["backbone"]
    assert config.transform == cls.default_transform
    assert config.hparams["knn_k"] == 200  # Lightly's; the digits preset sets 20


def test_the_vit_patch_size_shown_is_the_one_built(capsys: pytest.CaptureFixture[str]) -> None:
    """``patch_size=None`` picks one from the image size: the run says which (not None)."""
    vit = ["--method", "mae", "--backbone", "vit_tiny_patch16_224", "--image-size", "30"]
    vit += ["--batch-size", "8", "--hp", "patch_size=none"]  # not the digits preset's 4
    assert dry_run(*vit)["backbone"]["patch_size"] == 3
    assert cli_dry_run(capsys, *vit)["backbone"]["patch_size"] == 3
    config = resolve_run(parse(*vit), METHOD_CLASSES["mae"])
    model = build_module(config, METHOD_CLASSES["mae"], 10)
    assert "patch_size=3," in _summary(config, model)
