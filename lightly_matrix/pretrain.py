"""``lightly-matrix pretrain``: self-supervised pretraining with Lightly and PyTorch Lightning.

Examples::

    lightly-matrix pretrain --method matrix_ssl --data digits --out runs/demo
    lightly-matrix pretrain --method corinfomax --data /data/cifar10/train --preset cifar10_r18 \
        --devices 4 --out runs/cim
    lightly-matrix pretrain --method matrix_ssl --data digits --out runs/demo --resume runs/demo

Settings are resolved as: command-line flags > ``--hp KEY=VALUE`` > ``--preset`` > the module's
defaults (the papers' ImageNet settings). ``--data digits`` uses the ``digits`` preset by default.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

from lightly_matrix.cli import UserError

METHOD_NAMES = ("matrix_ssl", "corinfomax", "mmae", "umae", "mae", "barlowtwins", "vicreg")
PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "64-true")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``pretrain`` options to ``parser``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Run folder: last.ckpt (every epoch), metrics.json (kNN / linear / few-label top-1 of the "
        "frozen "
        "backbone), csv/ and tensorboard/ logs. Settings: flags > --hp > --preset > method "
        "defaults."
    )
    g = parser.add_argument_group("what to train")
    g.add_argument(
        "--method", metavar="{" + ",".join(METHOD_NAMES) + "}", help="pretraining method"
    )
    g.add_argument(
        "--data", default="digits", help="'digits' (offline, default) or an image folder"
    )
    g.add_argument(
        "--backbone", help="resnet18, resnet50 or a timm ViT name (e.g. vit_tiny_patch16_224)"
    )
    g.add_argument("--preset", help="named settings of a paper run (see --list-presets)")
    g.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    g.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a method hyper-parameter (repeatable), e.g. --hp alpha=500",
    )

    g = parser.add_argument_group("training")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int, help="batch size per device")
    g.add_argument("--image-size", type=int)
    g.add_argument("--optimizer", choices=("sgd", "lars", "adamw"))
    g.add_argument(
        "--lr", type=float, help="learning rate per 256 images (scaled with the global batch)"
    )
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--warmup-epochs", type=float)
    g.add_argument(
        "--transform", choices=("digits", "byol", "vicreg", "mae"), help="augmentation recipe"
    )
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--num-workers",
        type=int,
        help="data-loading workers per device (default: 0 for digits, else min(8, cores))",
    )
    g.add_argument(
        "--limit-train-batches",
        type=float,
        help="train on this many batches per epoch (int) or fraction (<1)",
    )

    g = parser.add_argument_group("hardware")
    g.add_argument(
        "--devices", type=int, default=1, help="devices (GPUs or CPU processes) per node"
    )
    g.add_argument("--num-nodes", type=int, default=1)
    g.add_argument("--accelerator", default="auto", choices=("auto", "cpu", "gpu", "cuda", "mps"))
    g.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="e.g. 16-mixed or bf16-mixed on GPUs (default 32-true)",
    )

    g = parser.add_argument_group("output and evaluation")
    g.add_argument(
        "--out", help="run folder (default runs/<method>); must be empty unless --resume"
    )
    g.add_argument(
        "--resume",
        metavar="CKPT",
        help="checkpoint (or run folder, meaning its last.ckpt) to continue",
    )
    g.add_argument(
        "--keep-every",
        type=int,
        default=0,
        metavar="N",
        help="also keep a checkpoint every N epochs in OUT/checkpoints/",
    )
    g.add_argument(
        "--eval-every", type=int, default=0, metavar="N", help="also evaluate every N epochs"
    )
    g.add_argument("--no-eval", action="store_true", help="skip the frozen-feature evaluation")
    g.add_argument(
        "--eval-data", help="labelled image folder to score the probes on (default: a 30%% split)"
    )
    g.add_argument(
        "--eval-max-images",
        type=int,
        default=10000,
        help="cap on images used by the probes of a folder",
    )
    g.add_argument("--log-every-n-steps", type=int)
    g.add_argument(
        "--no-progress", action="store_true", help="no progress bar (for logs and batch jobs)"
    )


# ------------------------------------------------------------------------------------------ config
def _coerce(key: str, text: str, default: Any) -> Any:
    """Parses ``--hp`` values to the type of the constructor default."""
    lowered = text.strip().lower()
    if lowered in ("none", "null"):
        return None
    try:
        if isinstance(default, bool):
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float) or default is None:
            return (
                float(text) if default is not None or "." in text or "e" in lowered else int(text)
            )
    except ValueError:
        raise UserError(f"--hp {key}={text}: expected a {type(default).__name__}") from None
    return text


def module_defaults(cls: type) -> dict[str, Any]:
    """Constructor arguments of a method module with their defaults."""
    return {
        name: param.default
        for name, param in inspect.signature(cls).parameters.items()
        if name != "self" and param.default is not inspect.Parameter.empty
    }


def resolve_settings(args: argparse.Namespace, cls: type) -> tuple[dict[str, Any], dict[str, Any]]:
    """Merges defaults, preset, ``--hp`` and flags into run settings and module hyper-parameters."""
    from lightly_matrix.methods import MASKED_METHODS
    from lightly_matrix.presets import PRESETS, RUN_KEYS

    method = args.method
    preset_name = args.preset or ("digits" if args.data == "digits" else None)
    preset: dict[str, Any] = {}
    if preset_name is not None:
        if preset_name not in PRESETS:
            raise UserError(
                f"unknown preset {preset_name!r}; choose one of: {', '.join(PRESETS)} (see "
                f"--list-presets)"
            )
        try:
            preset = PRESETS[preset_name].settings(method)
        except KeyError:
            covered = ", ".join(PRESETS[preset_name].methods)
            raise UserError(
                f"preset {preset_name!r} has no settings for {method!r} (it covers: {covered}); "
                f"drop --preset or pick another"
            ) from None
    masked = method in MASKED_METHODS
    run: dict[str, Any] = {
        "backbone": "vit_base_patch16_224" if masked else "resnet18",
        "image_size": 224,
        "batch_size": 256,
        "epochs": 100,
        "precision": "32-true",
        "transform": "mae" if masked else "byol",
    }
    defaults = module_defaults(cls)
    hparams: dict[str, Any] = {}
    for key, value in preset.items():
        (run if key in RUN_KEYS else hparams)[key] = value
    for item in args.hp:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in defaults:
            valid = ", ".join(
                k
                for k in defaults
                if k
                not in (
                    "backbone",
                    "num_classes",
                    "batch_size_per_device",
                    "image_size",
                    "gather_distributed",
                )
            )
            raise UserError(
                f"--hp {item!r}: not KEY=VALUE with a known key; {method} accepts: {valid}"
            )
        hparams[key] = _coerce(key, text, defaults[key])
    flags = {
        "backbone": args.backbone,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "precision": args.precision,
        "transform": args.transform,
    }
    run.update({k: v for k, v in flags.items() if v is not None})
    for key in ("optimizer", "lr", "weight_decay", "warmup_epochs"):
        if getattr(args, key) is not None:
            hparams[key] = getattr(args, key)
    run["preset"] = preset_name
    if run["epochs"] < 1 or run["batch_size"] < 2 or run["image_size"] < 8:
        raise UserError("--epochs must be >= 1, --batch-size >= 2 and --image-size >= 8")
    if masked and not run["backbone"].startswith("vit"):
        raise UserError(
            f"--method {method} needs a ViT backbone, e.g. --backbone vit_tiny_patch16_224"
        )
    return run, hparams


def _check_out_dir(out: Path, resume: str | None) -> None:
    if resume is None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(
            f"output folder {str(out)!r} is not empty; pass --resume {out} to continue that run, "
            "or choose a new --out (existing runs are never overwritten)"
        )


def _resolve_resume(resume: str | None) -> Path | None:
    if resume is None:
        return None
    path = Path(resume)
    if path.is_dir():
        path = path / "last.ckpt"
    if not path.is_file():
        raise UserError(
            f"--resume {resume!r}: no checkpoint there (expected a .ckpt file or a run folder "
            f"with last.ckpt)"
        )
    return path


# -------------------------------------------------------------------------------------------- data
def build_data(
    args: argparse.Namespace, run: dict[str, Any], num_views: int
) -> tuple[Any, Any, Any, int, int]:
    """Builds (train set, validation set or None, probe data or None, num_classes, num_workers)."""
    from lightly_matrix.data.transforms import build_eval_transform, build_train_transform
    from lightly_matrix.evaluation import ProbeData

    size = run["image_size"]
    train_transform = build_train_transform(run["transform"], size, num_views)
    if args.data == "digits":
        from lightly_matrix.data.digits import NUM_CLASSES, DigitsDataset

        eval_transform = build_eval_transform(size, resize=False)
        train: Any = DigitsDataset("train", train_transform, image_size=size)
        test = DigitsDataset("test", eval_transform, image_size=size)
        probe = ProbeData(
            DigitsDataset("train", eval_transform, image_size=size), test, NUM_CLASSES
        )
        workers = 0 if args.num_workers is None else args.num_workers
        return train, test, probe, NUM_CLASSES, workers

    from lightly_matrix.data.folder import ImageFolderDataset

    workers = min(8, os.cpu_count() or 1) if args.num_workers is None else args.num_workers
    train = ImageFolderDataset(args.data, train_transform)
    eval_transform = build_eval_transform(size)
    num_classes = train.num_classes
    if args.eval_data is not None:
        held_out = ImageFolderDataset(args.eval_data)
        if held_out.classes != train.classes:
            raise UserError(
                f"--eval-data {args.eval_data!r} must have the same class sub-folders as --data"
            )
        probe_train = train.subset(_even_subset(len(train), args.eval_max_images), eval_transform)
        probe_test = held_out.subset(
            _even_subset(len(held_out), args.eval_max_images), eval_transform
        )
    elif num_classes > 1:
        train_idx, test_idx = _probe_split(train.labels, args.eval_max_images, args.seed)
        probe_train, probe_test = (
            train.subset(train_idx, eval_transform),
            train.subset(test_idx, eval_transform),
        )
    else:
        return train, None, None, 0, workers
    return train, probe_test, ProbeData(probe_train, probe_test, num_classes), num_classes, workers


def _even_subset(n: int, limit: int) -> list[int]:
    step = max(1, n // max(1, limit))
    return list(range(0, n, step))[:limit]


def _probe_split(labels: Any, limit: int, seed: int) -> tuple[list[int], list[int]]:
    """A fixed 70/30 split (stratified if possible) of at most ``limit`` images."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    if len(index) > limit:
        index = np.random.default_rng(seed).choice(index, size=limit, replace=False)
    counts = np.bincount(labels[index])
    stratify = labels[index] if counts[counts > 0].min() >= 2 else None
    train_idx, test_idx = train_test_split(
        index, test_size=0.3, random_state=seed, stratify=stratify
    )
    return sorted(train_idx.tolist()), sorted(test_idx.tolist())


# --------------------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    """Runs ``lightly-matrix pretrain``; returns the exit status."""
    if args.list_presets:
        from lightly_matrix.presets import describe_presets

        print(describe_presets())
        return 0
    if args.method is None:
        raise UserError(f"--method is required; choose one of: {', '.join(METHOD_NAMES)}")
    if args.method not in METHOD_NAMES:
        raise UserError(f"unknown method {args.method!r}; choose one of: {', '.join(METHOD_NAMES)}")
    if args.devices < 1 or args.num_nodes < 1:
        raise UserError("--devices and --num-nodes must be >= 1")

    out = Path(args.out or f"runs/{args.method}")
    resume = _resolve_resume(args.resume)
    # Lightning's DDP launcher re-runs this command in each extra process (LOCAL_RANK > 0); those
    # must not refuse the folder that rank 0 is already writing.
    if os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0":
        _check_out_dir(out, args.resume)

    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    import pytorch_lightning as pl
    import torch

    from lightly_matrix.data.folder import UnreadableImageError
    from lightly_matrix.methods import MASKED_METHODS, METHODS

    cls = METHODS[args.method]
    run_cfg, hparams = resolve_settings(args, cls)
    if resume is not None:
        # The checkpoint decides the architecture; flags can still change epochs and hardware.
        saved = torch.load(resume, map_location="cpu", weights_only=False).get(
            "hyper_parameters", {}
        )
        if saved.get("method") not in (None, args.method):
            raise UserError(
                f"--resume {str(resume)!r} is a {saved['method']} run, not {args.method}; pass "
                f"--method {saved['method']}"
            )
        defaults = module_defaults(cls)
        hparams = {k: v for k, v in saved.items() if k in defaults}
        run_cfg["backbone"] = hparams.get("backbone", run_cfg["backbone"])
        run_cfg["image_size"] = hparams.get("image_size", run_cfg["image_size"])
        run_cfg["batch_size"] = hparams.get("batch_size_per_device", run_cfg["batch_size"])

    from lightly_matrix.methods.base import check_backbone

    try:
        check_backbone(run_cfg["backbone"])
    except ValueError as err:
        raise UserError(str(err)) from None

    pl.seed_everything(args.seed, workers=False, verbose=False)
    num_views = 1 if args.method in MASKED_METHODS else 2
    train, val, probe, num_classes, workers = build_data(args, run_cfg, num_views)
    world_size = args.devices * args.num_nodes
    hparams.update(
        backbone=run_cfg["backbone"],
        num_classes=num_classes,
        batch_size_per_device=run_cfg["batch_size"],
        image_size=run_cfg["image_size"],
        gather_distributed=world_size > 1,
    )
    try:
        model = cls(**hparams)
    except ValueError as err:
        raise UserError(str(err)) from None

    from lightning_fabric.utilities.exceptions import MisconfigurationException

    try:
        trainer = _build_trainer(args, run_cfg, out, probe, val, workers, len(train), world_size)
    except MisconfigurationException as err:  # e.g. 16-mixed on CPU, more devices than exist
        raise UserError(" ".join(str(err).split())) from None
    from lightly_matrix.data.module import PretrainDataModule

    datamodule = PretrainDataModule(train, val, run_cfg["batch_size"], workers, args.seed)
    if trainer.is_global_zero:
        summary = ", ".join(
            f"{k}={v}" for k, v in {**run_cfg, **hparams}.items() if k != "num_classes"
        )
        print(
            f"pretrain {args.method} on {args.data} ({len(train)} images) -> {out}: {summary}",
            flush=True,
        )
    if len(train) < run_cfg["batch_size"] * world_size:
        raise UserError(
            f"{len(train)} training images are fewer than one batch ({run_cfg['batch_size']} x "
            f"{world_size}); lower --batch-size"
        )

    start = time.perf_counter()
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume)
    except UnreadableImageError:
        raise
    except Exception as err:
        # DataLoader workers re-raise a dataset error with the worker's traceback in the message.
        if "UnreadableImageError" in type(err).__name__ or "UnreadableImageError" in str(err):
            raise UserError(
                str(err).strip().splitlines()[-1].split("UnreadableImageError: ")[-1]
            ) from None
        raise
    wall = time.perf_counter() - start
    if trainer.is_global_zero:
        _report(out, wall, trainer)
    return 0


def _build_trainer(
    args: argparse.Namespace,
    run_cfg: dict[str, Any],
    out: Path,
    probe: Any,
    val: Any,
    workers: int,
    num_images: int,
    world_size: int,
) -> Any:
    from pytorch_lightning import Trainer
    from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
    from pytorch_lightning.strategies import DDPStrategy

    from lightly_matrix.evaluation import FrozenEvaluation

    callbacks: list[Any] = [
        # Only last.ckpt, rewritten after every epoch: a stopped run loses at most the current
        # epoch.
        ModelCheckpoint(
            dirpath=out,
            save_last=True,
            save_top_k=0,
            every_n_epochs=1,
            save_on_train_epoch_end=True,
        ),
        LearningRateMonitor(logging_interval="step"),
    ]
    if args.keep_every > 0:
        _SnapshotCheckpoint = _snapshot_checkpoint_class()
        # Permanent snapshots, named by the 0-based index of the epoch just finished.
        callbacks.append(
            _SnapshotCheckpoint(
                dirpath=out / "checkpoints",
                filename="epoch{epoch:04d}",
                auto_insert_metric_name=False,
                every_n_epochs=args.keep_every,
                save_top_k=-1,
                save_on_train_epoch_end=True,
            )
        )
    if probe is not None and not args.no_eval:
        run_info = {"method": args.method, "data": args.data, **run_cfg}
        callbacks.append(
            FrozenEvaluation(probe, out, args.eval_every, run_info=run_info, num_workers=workers)
        )
    steps = num_images // (run_cfg["batch_size"] * world_size)
    if args.limit_train_batches:
        limit = args.limit_train_batches
        steps = int(limit) if limit >= 1 else max(1, int(steps * limit))
    accelerator = args.accelerator
    strategy: Any = "auto"
    cpu = accelerator == "cpu" or (accelerator == "auto" and not _cuda_available())
    if world_size > 1:
        strategy = DDPStrategy(process_group_backend="gloo" if cpu else None)
    return Trainer(
        max_epochs=run_cfg["epochs"],
        accelerator=accelerator,
        devices=args.devices,
        num_nodes=args.num_nodes,
        strategy=strategy,
        # PyTorch's SyncBatchNorm runs on GPUs only; CPU processes keep per-process statistics.
        sync_batchnorm=world_size > 1 and not cpu,
        precision=run_cfg["precision"],
        default_root_dir=out,
        callbacks=callbacks,
        logger=[
            TensorBoardLogger(save_dir=out, name="tensorboard"),
            CSVLogger(save_dir=out, name="csv"),
        ],
        log_every_n_steps=args.log_every_n_steps or max(1, min(50, steps)),
        limit_train_batches=int(args.limit_train_batches)
        if args.limit_train_batches and args.limit_train_batches >= 1
        else (args.limit_train_batches or 1.0),
        limit_val_batches=1.0 if val is not None else 0,
        num_sanity_val_steps=0,
        # The data module re-seeds and re-shards each epoch (exact resume); see data/module.py.
        reload_dataloaders_every_n_epochs=1,
        use_distributed_sampler=False,
        enable_model_summary=False,
        enable_progress_bar=not args.no_progress,
    )


def _snapshot_checkpoint_class() -> type:
    from pytorch_lightning.callbacks import ModelCheckpoint

    class SnapshotCheckpoint(ModelCheckpoint):
        """A second ``ModelCheckpoint`` (kept snapshots) with its own state key."""

        @property
        def state_key(self) -> str:
            return self._generate_state_key(kind="snapshots", every_n_epochs=self._every_n_epochs)

    return SnapshotCheckpoint


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _report(out: Path, wall: float, trainer: Any) -> None:
    """Adds the wall time to metrics.json and prints the evaluation table."""
    from lightly_matrix.evaluation import EVAL_COLUMNS, METRICS_FILE, format_table

    path = out / METRICS_FILE
    print(
        f"finished {trainer.current_epoch} epochs in {wall:.1f} s; checkpoint {out / 'last.ckpt'}"
    )
    if not path.exists():
        return
    metrics = json.loads(path.read_text())
    metrics.setdefault("run", {})["train_wall_s"] = round(wall, 1)
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    rows = [
        dict(row, epoch=f"{row['epoch']} (random init)" if row["epoch"] == 0 else row["epoch"])
        for row in metrics["history"]
    ]
    print("\nFrozen-backbone evaluation (" + str(path) + "):\n" + format_table(rows, EVAL_COLUMNS))
