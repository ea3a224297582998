"""The ``lightly-matrix pretrain`` options and their checks (no torch import here: ``--help`` is
fast, and every value is checked before a folder is made)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from lightly_matrix.errors import UserError
from lightly_matrix.registry import METHOD_NAMES

PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "64-true")
#: Checkpoint cadence defaults, for multi-hour GPU runs: at most this much training is lost.
DEFAULT_CHECKPOINT_MINUTES = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``pretrain`` options to ``parser``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Run folder: last.ckpt (the newest state, rewritten atomically at every epoch end and "
        "--checkpoint-every-steps / --checkpoint-every-minutes), metrics.json (kNN / linear / "
        "few-label top-1 of the frozen backbone), spectrum.json (its feature covariance "
        "spectrum), csv/ and tensorboard/ logs, report.html (figures; lightly-matrix report "
        "RUN redraws it). Ctrl-C or SIGTERM "
        "saves and prints the resume command. Settings: flags > --hp > --preset > method defaults."
    )
    g = parser.add_argument_group("what to train")
    g.add_argument(
        "--method", metavar="{" + ",".join(METHOD_NAMES) + "}", help="pretraining method"
    )
    g.add_argument("--data", type=_path_text, help="'digits' (offline, default) or an image folder")
    g.add_argument(
        "--backbone", help="resnet18, resnet50 or a timm ViT name (e.g. vit_tiny_patch16_224)"
    )
    g.add_argument("--preset", help="named settings of a paper run (see --list-presets)")
    g.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    g.add_argument(
        "--dry-run",
        action="store_true",
        help="resolve every setting, check the data, print the run as JSON on stdout and exit "
        "(nothing is written)",
    )
    g.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a method hyper-parameter (repeatable), e.g. --hp alpha=500",
    )
    g.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="leave out image files that cannot be decoded (reports how many) instead of failing",
    )

    g = parser.add_argument_group("training")
    g.add_argument("--epochs", type=int)
    g.add_argument(
        "--batch-size",
        type=int,
        help="GLOBAL batch size, over all devices and nodes (as in the papers); each process "
        "gets batch / (devices x nodes)",
    )
    g.add_argument("--image-size", type=int)
    g.add_argument("--optimizer", choices=("sgd", "lars", "adamw"))
    g.add_argument(
        "--lr",
        type=float,
        help="base learning rate: per 256 images of the global batch, or absolute for methods "
        "with lr_scaling=none (CorInfoMax); --dry-run prints the peak lr applied",
    )
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--warmup-epochs", type=float)
    g.add_argument(
        "--transform",
        help="augmentation recipe: digits, byol, mocov3, corinfomax, corinfomax_cifar10, "
        "corinfomax_cifar100, vicreg or mae (--dry-run prints every view)",
    )
    g.add_argument(
        "--crop-min-scale",
        type=float,
        help="smallest random-resized-crop scale of every view (overrides the recipe's)",
    )
    g.add_argument("--seed", type=int, help="random seed of the run (default 0)")
    g.add_argument(
        "--num-workers",
        type=int,
        help="data-loading workers per device (default: 0 for digits, else the cores per device "
        "minus one, at most 16)",
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

    g = parser.add_argument_group("checkpoints and resuming")
    g.add_argument(
        "--out",
        type=_path_text,
        help="run folder (default runs/<method>); must be empty unless --resume",
    )
    g.add_argument(
        "--resume",
        metavar="RUN_OR_CKPT",
        type=_path_text,
        help="continue a run: its folder (the newest valid checkpoint in it is used) or a .ckpt",
    )
    g.add_argument(
        "--checkpoint-every-steps",
        type=int,
        default=0,
        metavar="N",
        help="also rewrite last.ckpt every N training steps (default 0: off)",
    )
    g.add_argument(
        "--checkpoint-every-minutes",
        type=float,
        default=DEFAULT_CHECKPOINT_MINUTES,
        metavar="M",
        help=f"also rewrite last.ckpt after M minutes of training since the previous save "
        f"(default {DEFAULT_CHECKPOINT_MINUTES:g}; 0: off)",
    )
    g.add_argument(
        "--keep-every",
        type=int,
        default=0,
        metavar="N",
        help="also keep a checkpoint every N epochs in OUT/checkpoints/",
    )

    g = parser.add_argument_group("evaluation and logging")
    g.add_argument(
        "--eval-every", type=int, default=0, metavar="N", help="also evaluate every N epochs"
    )
    g.add_argument("--no-eval", action="store_true", help="skip the frozen-feature evaluation")
    g.add_argument(
        "--eval-data",
        type=_path_text,
        help="labelled image folder to score the probes on (default: a 30%% split)",
    )
    g.add_argument(
        "--eval-split",
        choices=("test", "val"),
        help="digits only: 'val' pretrains on 1,005 training images and scores the probes on the "
        "252 held-out ones (for choosing hyper-parameters); default 'test'",
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
    g.add_argument(
        "--no-report", action="store_true", help="do not write OUT/report.html at the end"
    )


def _path_text(text: str) -> str:
    """A path flag's value; an empty one (an unset shell variable) is an error, not "unset"."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path (an unset shell variable?)")
    return text


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def validate_args(args: argparse.Namespace) -> None:
    """Checks every value that can be checked without torch, before anything is written."""
    if args.method is None:
        raise UserError(f"--method is required; choose one of: {', '.join(METHOD_NAMES)}")
    if args.method not in METHOD_NAMES:
        raise UserError(f"unknown method {args.method!r}; choose one of: {', '.join(METHOD_NAMES)}")
    _check(args.devices >= 1 and args.num_nodes >= 1, "--devices and --num-nodes must be >= 1")
    # Lightning replaces a seed outside numpy's range by a random one: the run would not repeat.
    _check(
        args.seed is None or 0 <= args.seed < 2**32,
        f"--seed must be in [0, 2**32 - 1], got {args.seed}",
    )
    for flag in ("lr", "weight_decay", "warmup_epochs"):
        value = getattr(args, flag)
        name = "--" + flag.replace("_", "-")
        _check(
            value is None or math.isfinite(value),
            f"{name} must be a finite number, got {value}",
        )
    _check(args.lr is None or args.lr > 0, f"--lr must be > 0, got {args.lr}")
    for flag in ("weight_decay", "warmup_epochs"):
        value = getattr(args, flag)
        _check(
            value is None or value >= 0,
            f"--{flag.replace('_', '-')} must be >= 0, got {value}",
        )
    for flag in ("num_workers", "keep_every", "eval_every", "checkpoint_every_steps"):
        value = getattr(args, flag)
        _check(value is None or value >= 0, f"--{flag.replace('_', '-')} must be >= 0, got {value}")
    minutes = args.checkpoint_every_minutes
    _check(
        math.isfinite(minutes) and minutes >= 0,
        f"--checkpoint-every-minutes must be >= 0 (0: off), got {minutes}",
    )
    limit = args.limit_train_batches
    _check(
        limit is None or (math.isfinite(limit) and limit > 0 and (limit < 1 or limit.is_integer())),
        f"--limit-train-batches must be a whole number of batches >= 1 or a fraction in (0, 1), "
        f"got {limit}",
    )
    _check(
        args.log_every_n_steps is None or args.log_every_n_steps >= 1,
        f"--log-every-n-steps must be >= 1, got {args.log_every_n_steps}",
    )
    _check(
        args.eval_split in (None, "test") or args.data in (None, "digits"),
        "--eval-split val is for --data digits; for an image folder pass --eval-data FOLDER",
    )
    _check(args.eval_max_images >= 2, f"--eval-max-images must be >= 2, got {args.eval_max_images}")
    for flag in ("epochs", "batch_size", "image_size"):
        value = getattr(args, flag)
        _check(value is None or value >= 1, f"--{flag.replace('_', '-')} must be >= 1")
    _check(
        args.eval_data is None or args.data not in (None, "digits"),
        "--eval-data is for an image-folder --data; digits scores the probes on its own test split"
        " (or --eval-split val)",
    )
    for flag, value in (("--data", args.data), ("--eval-data", args.eval_data)):
        if value is None or (flag == "--data" and value == "digits"):
            continue
        what = "is not a folder" if Path(value).exists() else "does not exist"
        fix = (
            "pass 'digits' or a folder of images"
            if flag == "--data"
            else ("pass a folder of images with the same class sub-folders as --data")
        )
        _check(Path(value).is_dir(), f"{flag} {value!r} {what}; {fix}")
    if args.out is not None:
        out = Path(args.out)
        _check(
            not out.exists() or out.is_dir(),
            f"--out {args.out!r} is a file, not a folder; choose a folder for the run",
        )
